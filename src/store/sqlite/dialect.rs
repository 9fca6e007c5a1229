//! SQLite's spelling of the shared listing SQL.

use serde_json::Value;

use crate::model::{MetadataCondition, MetadataTest};
use crate::store::list_sql::{Bind, Dialect, Param};

pub(in crate::store) struct SqliteDialect;

/// A top-level metadata value of `json_each` as text: strings as they are,
/// other values as JSON, nulls as NULL (json_each gives booleans as 1 and 0).
const ENTRY_TEXT: &str = "CASE entry.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE entry.value END";

impl Dialect for SqliteDialect {
    fn placeholder(index: usize) -> String {
        // Numbered, so that a placeholder may appear twice.
        format!("?{index}")
    }

    fn contains(haystack: &str, needle: &str) -> String {
        format!("instr({haystack}, {needle}) > 0")
    }

    fn metadata_value(contains: &dyn Fn(&str) -> String) -> String {
        format!("EXISTS (SELECT 1 FROM json_each(logs.metadata) AS entry WHERE {})", contains(ENTRY_TEXT))
    }

    fn metadata_condition(condition: &MetadataCondition, bind: Bind) -> String {
        let key = bind(Param::Text(condition.key.clone()));
        let entry = |test: String| {
            format!("EXISTS (SELECT 1 FROM json_each(logs.metadata) AS entry WHERE entry.key = {key}{test})")
        };
        let mut equals = |value: &Value| match value {
            Value::String(text) => {
                format!("(entry.type = 'text' AND entry.atom = {})", bind(Param::Text(text.clone())))
            }
            Value::Number(number) => {
                let param =
                    number.as_i64().map_or_else(|| Param::Real(number.as_f64().unwrap_or(f64::NAN)), Param::Int);
                format!("(entry.type IN ('integer', 'real') AND entry.atom = {})", bind(param))
            }
            Value::Bool(true) => "entry.type = 'true'".into(),
            Value::Bool(false) => "entry.type = 'false'".into(),
            // Validation admits scalars only; anything else equals nothing.
            Value::Null | Value::Array(_) | Value::Object(_) => "FALSE".into(),
        };
        match &condition.test {
            MetadataTest::Equals(value) => entry(format!(" AND {}", equals(value))),
            MetadataTest::OneOf(values) => {
                let any: Vec<String> = values.iter().map(&mut equals).collect();
                entry(format!(" AND ({})", any.join(" OR ")))
            }
            MetadataTest::Exists(true) => entry(String::new()),
            MetadataTest::Exists(false) => format!("NOT {}", entry(String::new())),
        }
    }

    const RUN_KEY: &'static str = "run_key";

    fn run_key(placeholder: &str) -> String {
        format!("(SELECT key FROM job_runs WHERE id = {placeholder})")
    }

    fn runs_in(placeholders: &[String]) -> String {
        format!("run_key IN (SELECT key FROM job_runs WHERE id IN ({}))", placeholders.join(", "))
    }
}
