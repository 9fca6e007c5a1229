//! The filter flags of the commands that read logs (`logs`, `export`,
//! `stats`): every filter the API has, spelled for a command line.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{names, time};
use crate::model::{Level, LogType, Stream};
use crate::proto::v1 as pb;

#[derive(Debug, Clone, clap::Args)]
pub struct FilterArgs {
    /// Only logs of this type (system, job, task); repeat for several.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<LogType>,
    /// Only logs of this job run; repeat for several.
    #[arg(long = "run", short = 'r', value_name = "ID")]
    pub runs: Vec<String>,
    /// Only logs of this task run; repeat for several.
    #[arg(long = "task-run", value_name = "ID")]
    pub task_runs: Vec<String>,
    /// Only logs at exactly this level; repeat for several.
    #[arg(long = "level", value_name = "LEVEL")]
    pub levels: Vec<Level>,
    /// Only logs at this level or above (trace, debug, info, warn, error, fatal).
    #[arg(long, value_name = "LEVEL")]
    pub min_level: Option<Level>,
    /// Only logs of this stream (stdout, stderr, system); repeat for several.
    #[arg(long = "stream", value_name = "STREAM")]
    pub streams: Vec<Stream>,
    /// Only logs from this source; repeat for several.
    #[arg(long = "source", value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// A metadata condition: KEY=VALUE (VALUE as JSON if it parses, else as
    /// text), KEY=[A,B] for any of several values, or KEY alone for "has the
    /// key"; repeat for several, all of which must hold.
    #[arg(long = "meta", short = 'm', value_name = "CONDITION", value_parser = metadata_condition)]
    pub metadata: Vec<pb::MetadataCondition>,
    /// Only logs whose message contains this text.
    #[arg(long, short = 'q')]
    pub text: Option<String>,
    /// Match --text regardless of ASCII case.
    #[arg(long, short = 'i')]
    pub ignore_case: bool,
    /// Match --text in the metadata's values too.
    #[arg(long)]
    pub search_metadata: bool,
    /// Only logs of the last DURATION (e.g. 15m, 1h, 2days).
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "from")]
    pub since: Option<Duration>,
    /// Only logs at or after this time (RFC 3339, e.g. 2026-11-25T08:00:00Z).
    #[arg(long, value_parser = rfc3339)]
    pub from: Option<DateTime<Utc>>,
    /// Only logs before this time (RFC 3339).
    #[arg(long, value_parser = rfc3339)]
    pub to: Option<DateTime<Utc>>,
}

impl FilterArgs {
    /// The filter as the API takes it; `--since` counts back from `now`.
    pub fn to_proto(&self, now: DateTime<Utc>) -> pb::LogFilter {
        let start = self.since.map(|since| now - since).or(self.from);
        pb::LogFilter {
            types: self.types.iter().map(|log_type| names::log_type(*log_type) as i32).collect(),
            job_run_ids: self.runs.clone(),
            task_run_ids: self.task_runs.clone(),
            levels: self.levels.iter().map(|level| names::level(*level) as i32).collect(),
            min_level: self.min_level.map_or(0, |level| names::level(level) as i32),
            streams: self.streams.iter().map(|stream| names::stream(*stream) as i32).collect(),
            sources: self.sources.clone(),
            start_time: start.map(time::to_proto),
            end_time: self.to.map(time::to_proto),
            text: self.text.clone().unwrap_or_default(),
            ignore_case: self.ignore_case,
            include_metadata: self.search_metadata,
            metadata: self.metadata.clone(),
        }
    }
}

pub fn rfc3339(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| format!("{error}: give a time like 2026-11-25T08:00:00Z"))
}

/// `KEY=VALUE`, `KEY=[A,B]` or `KEY`, as a metadata condition.
pub fn metadata_condition(text: &str) -> Result<pb::MetadataCondition, String> {
    use pb::metadata_condition::Condition;
    let (key, condition) = match text.split_once('=') {
        None => (text, Condition::Exists(true)),
        Some((key, value)) => match serde_json::from_str::<serde_json::Value>(value) {
            Ok(serde_json::Value::Array(values)) => {
                let values = values.into_iter().map(proto_value).collect();
                (key, Condition::OneOf(prost_types::ListValue { values }))
            }
            Ok(value) if !value.is_object() => (key, Condition::Equals(proto_value(value))),
            _ => (key, Condition::Equals(proto_value(serde_json::Value::String(value.to_string())))),
        },
    };
    if key.is_empty() {
        return Err("a metadata condition needs a key: KEY=VALUE, KEY=[A,B] or KEY".into());
    }
    Ok(pb::MetadataCondition { key: key.to_string(), condition: Some(condition) })
}

pub fn proto_value(value: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(flag) => Kind::BoolValue(flag),
        serde_json::Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or_default()),
        serde_json::Value::String(text) => Kind::StringValue(text),
        serde_json::Value::Array(values) => {
            Kind::ListValue(prost_types::ListValue { values: values.into_iter().map(proto_value).collect() })
        }
        serde_json::Value::Object(fields) => Kind::StructValue(prost_types::Struct {
            fields: fields.into_iter().map(|(key, value)| (key, proto_value(value))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::value::Kind;

    #[test]
    fn metadata_conditions_read_as_documented() {
        let equals = metadata_condition("attempt=2").expect("valid");
        assert_eq!(equals.key, "attempt");
        let Some(pb::metadata_condition::Condition::Equals(value)) = equals.condition else { panic!("equals") };
        assert_eq!(value.kind, Some(Kind::NumberValue(2.0)));
        let text = metadata_condition("worker_id=gpu-3").expect("valid");
        let Some(pb::metadata_condition::Condition::Equals(value)) = text.condition else { panic!("equals") };
        assert_eq!(value.kind, Some(Kind::StringValue("gpu-3".into())));
        let any = metadata_condition(r#"stage=["build","test"]"#).expect("valid");
        let Some(pb::metadata_condition::Condition::OneOf(list)) = any.condition else { panic!("one of") };
        assert_eq!(list.values.len(), 2);
        let exists = metadata_condition("request_id").expect("valid");
        assert_eq!(exists.condition, Some(pb::metadata_condition::Condition::Exists(true)));
        assert!(metadata_condition("=x").is_err());
    }
}
