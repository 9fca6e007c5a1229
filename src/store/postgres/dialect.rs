//! PostgreSQL's spelling of the shared listing SQL.

use serde_json::{Map, Value};

use crate::model::{MetadataCondition, MetadataTest, TextSearch};
use crate::store::list_sql::{Bind, Dialect, Param};

pub(in crate::store) struct PostgresDialect;

impl Dialect for PostgresDialect {
    fn placeholder(index: usize) -> String {
        format!("${index}")
    }

    fn contains(haystack: &str, needle: &str) -> String {
        format!("strpos({haystack}, {needle}) > 0")
    }

    fn message_contains(search: &TextSearch, _text_index: bool, bind: Bind) -> String {
        // LIKE, which the opt-in pg_trgm index serves when it exists (the
        // planner finds it by itself); escaped, so the text is literal.
        let escaped = search.text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let pattern = bind(Param::Text(format!("%{escaped}%")));
        let operator = if search.ignore_case { "ILIKE" } else { "LIKE" };
        format!("message {operator} {pattern}")
    }

    fn metadata_value(contains: &dyn Fn(&str) -> String) -> String {
        // jsonb_each_text gives strings unquoted, other values as JSON, and
        // nulls as NULL.
        format!("EXISTS (SELECT 1 FROM jsonb_each_text(logs.metadata) AS entry WHERE {})", contains("entry.value"))
    }

    fn metadata_condition(condition: &MetadataCondition, bind: Bind) -> String {
        // Containment of {key: value} is JSON equality for a scalar (numbers
        // by value), and the GIN index on metadata serves it.
        let mut contains = |value: &Value| {
            let object = Value::Object(Map::from_iter([(condition.key.clone(), value.clone())]));
            format!("logs.metadata @> {}::jsonb", bind(Param::Text(object.to_string())))
        };
        match &condition.test {
            MetadataTest::Equals(value) => contains(value),
            MetadataTest::OneOf(values) => {
                let any: Vec<String> = values.iter().map(&mut contains).collect();
                format!("({})", any.join(" OR "))
            }
            MetadataTest::Exists(present) => {
                let key = bind(Param::Text(condition.key.clone()));
                if *present { format!("logs.metadata ? {key}") } else { format!("NOT (logs.metadata ? {key})") }
            }
        }
    }

    const COMMIT: &'static str = "commit_xid";

    const COMMIT_INDEX: &'static str = "commit_index";

    const COMMIT_ORDER: &'static str = "commit_xid, commit_index";

    const RUN_KEY: &'static str = "job_run_id";

    // The day too, so that each run's lookup reads its day's partitions.
    const LOGS_OF_JOB_RUNS_ROW: &'static str =
        "logs.job_run_id = job_runs.id AND logs.partition_day = job_runs.partition_day";

    fn run_key(placeholder: &str) -> String {
        placeholder.into()
    }

    fn runs_in(placeholders: &[String]) -> String {
        format!("job_run_id IN ({})", placeholders.join(", "))
    }

    fn id_text(column: &str) -> String {
        format!("{column}::text")
    }

    fn metadata_json(key: &str) -> String {
        format!("(logs.metadata -> '{}')::text", key.replace('\'', "''"))
    }

    fn labels_include(labels: &std::collections::BTreeMap<String, String>, bind: Bind) -> String {
        let labels: Map<String, Value> =
            labels.iter().map(|(key, value)| (key.clone(), Value::String(value.clone()))).collect();
        format!("labels @> {}::jsonb", bind(Param::Text(Value::Object(labels).to_string())))
    }

    fn bucket(width: &str) -> String {
        format!("floor(extract(epoch FROM event_time) * 1000000 / {width})::bigint")
    }
}
