//! SQLite's spelling of the shared listing SQL.

use serde_json::Value;

use crate::model::{MetadataCondition, MetadataTest, TextSearch};
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

    fn message_contains(search: &TextSearch, text_index: bool, bind: Bind) -> String {
        let needle = bind(Param::Text(search.text.clone()));
        let exact = if search.ignore_case {
            format!("instr(lower(message), lower({needle})) > 0")
        } else {
            format!("instr(message, {needle}) > 0")
        };
        // The trigram index finds the logs holding every trigram of the text
        // (a phrase of them), ignoring case; instr keeps the exact matches.
        // A text of fewer than three characters has no trigram to look up,
        // and a search of metadata values too reads every log anyway.
        if text_index && !search.include_metadata && search.text.chars().count() >= 3 {
            format!(
                "(logs.rowid IN (SELECT rowid FROM logs_text WHERE logs_text MATCH \
                 ('\"' || replace({needle}, '\"', '\"\"') || '\"')) AND {exact})"
            )
        } else {
            exact
        }
    }

    fn metadata_value(contains: &dyn Fn(&str) -> String) -> String {
        format!("EXISTS (SELECT 1 FROM json_each(logs.metadata) AS entry WHERE {})", contains(ENTRY_TEXT))
    }

    fn metadata_condition(condition: &MetadataCondition, bind: Bind) -> String {
        match metadata_path(&condition.key) {
            Some(path) => by_path(&path, &condition.test, bind),
            None => by_entries(condition, bind),
        }
    }

    const COMMIT: &'static str = "commit_position";

    const COMMIT_INDEX: &'static str = "0";

    const COMMIT_ORDER: &'static str = "commit_position";

    const RUN_KEY: &'static str = "run_key";

    const LOGS_OF_JOB_RUNS_ROW: &'static str = "logs.run_key = job_runs.key";

    fn run_key(placeholder: &str) -> String {
        format!("(SELECT key FROM job_runs WHERE id = {placeholder})")
    }

    fn runs_in(placeholders: &[String]) -> String {
        format!("run_key IN (SELECT key FROM job_runs WHERE id IN ({}))", placeholders.join(", "))
    }

    fn id_text(column: &str) -> String {
        column.into()
    }

    fn metadata_json(key: &str) -> String {
        // `->` gives JSON text: "a" quoted, true as true, [1] as [1].
        format!("(logs.metadata -> '$.\"{}\"')", key.replace('\'', "''"))
    }

    fn labels_include(labels: &std::collections::BTreeMap<String, String>, bind: Bind) -> String {
        // Label keys hold no quotes (`check_label`), so each fits a path.
        let each: Vec<String> = labels
            .iter()
            .map(|(key, value)| format!("json_extract(labels, '$.\"{key}\"') = {}", bind(Param::Text(value.clone()))))
            .collect();
        each.join(" AND ")
    }

    fn bucket(width: &str) -> String {
        // Integer division truncates towards zero; times before 1970 need
        // the floor.
        format!("(event_time - (((event_time % {width}) + {width}) % {width})) / {width}")
    }
}

/// `json_extract(metadata, '$."key"')` and its type: the value expression
/// is the one the operator's metadata indexes are built on
/// (`metadata_index`), so that SQLite's planner matches them. `None` for a
/// key a JSON path cannot quote.
pub(super) fn metadata_path(key: &str) -> Option<(String, String)> {
    if key.contains('"') {
        return None;
    }
    let path = format!("'$.\"{}\"'", key.replace('\'', "''"));
    Some((format!("json_extract(metadata, {path})"), format!("json_type(metadata, {path})")))
}

/// The condition through the key's path: an equality on the extracted
/// value (which an index on it serves), guarded by the JSON type, since
/// json_extract gives `true` as 1 and the string "[1]" as the array [1] does.
fn by_path((value, kind): &(String, String), test: &MetadataTest, bind: Bind) -> String {
    let mut equals = |wanted: &Value| match wanted {
        Value::String(text) => format!("({value} = {} AND {kind} = 'text')", bind(Param::Text(text.clone()))),
        Value::Number(number) => {
            format!("({value} = {} AND {kind} IN ('integer', 'real'))", bind(number_param(number)))
        }
        Value::Bool(true) => format!("({value} = 1 AND {kind} = 'true')"),
        Value::Bool(false) => format!("({value} = 0 AND {kind} = 'false')"),
        // Validation admits scalars only; anything else equals nothing.
        Value::Null | Value::Array(_) | Value::Object(_) => "FALSE".into(),
    };
    match test {
        MetadataTest::Equals(wanted) => equals(wanted),
        MetadataTest::OneOf(wanted) => {
            let any: Vec<String> = wanted.iter().map(&mut equals).collect();
            format!("({})", any.join(" OR "))
        }
        // json_type gives 'null' for a null value and NULL for no key.
        MetadataTest::Exists(true) => format!("{kind} IS NOT NULL"),
        MetadataTest::Exists(false) => format!("{kind} IS NULL"),
    }
}

/// The condition through json_each, for a key a path cannot quote.
fn by_entries(condition: &MetadataCondition, bind: Bind) -> String {
    let key = bind(Param::Text(condition.key.clone()));
    let entry = |test: String| {
        format!("EXISTS (SELECT 1 FROM json_each(logs.metadata) AS entry WHERE entry.key = {key}{test})")
    };
    let mut equals = |value: &Value| match value {
        Value::String(text) => format!("(entry.type = 'text' AND entry.atom = {})", bind(Param::Text(text.clone()))),
        Value::Number(number) => {
            format!("(entry.type IN ('integer', 'real') AND entry.atom = {})", bind(number_param(number)))
        }
        Value::Bool(true) => "entry.type = 'true'".into(),
        Value::Bool(false) => "entry.type = 'false'".into(),
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

fn number_param(number: &serde_json::Number) -> Param {
    number.as_i64().map_or_else(|| Param::Real(number.as_f64().unwrap_or(f64::NAN)), Param::Int)
}
