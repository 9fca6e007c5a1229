//! OTLP log records onto logwell's model, record by record: a record that
//! breaks the model is rejected alone, with its reason.
//!
//! | OTLP | logwell |
//! |---|---|
//! | `cicd.pipeline.run.id` (record, else resource attribute) | job run: a job log |
//! | with `cicd.pipeline.task.run.id` | task run: a task log |
//! | neither | a system log |
//! | `log.iostream` `stdout` / `stderr` | stream (else the type's default) |
//! | `severity_number` 1–24, else `severity_text` | level |
//! | `time_unix_nano`, else `observed_time_unix_nano` | time (else receipt) |
//! | body: a string; anything else as JSON | message |
//! | `service.name` (`/service.instance.id`) | source |
//! | record attributes | metadata, as they are |
//! | resource attributes | metadata `resource.<key>` |
//! | scope name, version | metadata `otel.scope.name`, `otel.scope.version` |
//! | trace id, span id, flags | metadata `trace_id`, `span_id` (hex), `trace_flags` |
//! | `severity_text`, `event_name` | metadata `otel.severity_text`, `event.name` |
//! | `logwell.id` attribute | the log's id (a resend is stored once) |

use std::collections::HashMap;

use base64::Engine;
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use crate::ingest::Submitted;
use crate::model::{Level, LogDraft, LogType, Stream, Violations};
use crate::proto::opentelemetry::proto::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::opentelemetry::proto::common::v1::{AnyValue, KeyValue, any_value};
use crate::proto::opentelemetry::proto::logs::v1::LogRecord;

/// The OpenTelemetry semantic conventions' CI/CD run ids.
const RUN_ID: &str = "cicd.pipeline.run.id";
const TASK_RUN_ID: &str = "cicd.pipeline.task.run.id";
/// The stream a record was written to (OpenTelemetry's log conventions).
const IOSTREAM: &str = "log.iostream";
/// A client's id for the record, honoured as the write services' ids are.
const CLIENT_ID: &str = "logwell.id";
const SERVICE_NAME: &str = "service.name";
const SERVICE_INSTANCE: &str = "service.instance.id";

/// Names run ids that are not UUIDs (a CI system's numbers or names) as
/// UUIDv5s in logwell's namespace: the same id, the same run.
const RUN_NAMESPACE: Uuid = Uuid::from_u128(0x6c6f_6777_656c_6c2d_8000_0000_6f74_6c70);

/// One record of an export: where it was, and what it became.
pub struct Record {
    /// `resource_logs[r].scope_logs[s].log_records[l]`.
    pub place: String,
    pub log: Result<(LogType, Submitted), String>,
}

/// Every record of `request`, in order.
pub fn records(request: ExportLogsServiceRequest) -> Vec<Record> {
    let mut records = Vec::new();
    for (r, resource_logs) in request.resource_logs.into_iter().enumerate() {
        let resource = resource_logs.resource.map(|resource| resource.attributes).unwrap_or_default();
        let resource = attributes(resource);
        for (s, scope_logs) in resource_logs.scope_logs.into_iter().enumerate() {
            let scope = scope_logs.scope.unwrap_or_default();
            for (l, record) in scope_logs.log_records.into_iter().enumerate() {
                let place = format!("resource_logs[{r}].scope_logs[{s}].log_records[{l}]");
                let log = convert(record, &resource, (&scope.name, &scope.version));
                records.push(Record { place, log });
            }
        }
    }
    records
}

/// Attributes by key, as JSON; a later repeat of a key wins.
fn attributes(pairs: Vec<KeyValue>) -> HashMap<String, Value> {
    pairs.into_iter().map(|pair| (pair.key, pair.value.map_or(Value::Null, json))).collect()
}

fn convert(
    record: LogRecord,
    resource: &HashMap<String, Value>,
    (scope_name, scope_version): (&str, &str),
) -> Result<(LogType, Submitted), String> {
    let own = attributes(record.attributes);
    let attribute = |key: &str| own.get(key).or_else(|| resource.get(key));
    let run = attribute(RUN_ID).map(|value| run_id(RUN_ID, value, None)).transpose()?;
    let task = attribute(TASK_RUN_ID).map(|value| run_id(TASK_RUN_ID, value, run)).transpose()?;
    let log_type = match (run, task) {
        (None, None) => LogType::System,
        (Some(_), None) => LogType::Job,
        (Some(_), Some(_)) => LogType::Task,
        (None, Some(_)) => return Err(format!("has {TASK_RUN_ID} but no {RUN_ID}: a task runs in a job run")),
    };
    let stream = match attribute(IOSTREAM) {
        None => None,
        Some(Value::String(name)) if name == "stdout" => Some(Stream::Stdout),
        Some(Value::String(name)) if name == "stderr" => Some(Stream::Stderr),
        Some(other) => return Err(format!("{IOSTREAM} is {other}; stdout or stderr is expected")),
    };
    let level = level(record.severity_number, &record.severity_text)?;
    let time = [record.time_unix_nano, record.observed_time_unix_nano]
        .into_iter()
        .find(|nanos| *nanos > 0)
        .map(|nanos| i64::try_from(nanos).map(chrono::DateTime::from_timestamp_nanos))
        .transpose()
        .map_err(|_| "its time is past the year 2262".to_string())?;
    let message = match record.body.map(json) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text,
        Some(structured) => structured.to_string(),
    };
    let source = match (attribute(SERVICE_NAME), attribute(SERVICE_INSTANCE)) {
        (Some(name), Some(instance)) => format!("{}/{}", text(name), text(instance)),
        (Some(name), None) => text(name),
        (None, _) => String::new(),
    };
    let id = match own.get(CLIENT_ID) {
        None => String::new(),
        Some(Value::String(id)) => id.clone(),
        Some(other) => return Err(format!("{CLIENT_ID} is {other}; a UUID string is expected")),
    };

    let mut metadata: Map<String, Value> = own.into_iter().filter(|(key, _)| key != CLIENT_ID).collect();
    for (key, value) in resource {
        metadata.insert(format!("resource.{key}"), value.clone());
    }
    let mut note = |key: &str, value: Value| {
        metadata.insert(key.into(), value);
    };
    if !scope_name.is_empty() {
        note("otel.scope.name", scope_name.into());
    }
    if !scope_version.is_empty() {
        note("otel.scope.version", scope_version.into());
    }
    if !record.trace_id.is_empty() {
        note("trace_id", hex(&record.trace_id).into());
    }
    if !record.span_id.is_empty() {
        note("span_id", hex(&record.span_id).into());
    }
    if record.flags & 0xff != 0 {
        note("trace_flags", (record.flags & 0xff).into());
    }
    if !record.severity_text.is_empty() {
        note("otel.severity_text", record.severity_text.into());
    }
    if !record.event_name.is_empty() {
        note("event.name", record.event_name.into());
    }
    let draft = LogDraft {
        id,
        job_run_id: run.map(|id| id.to_string()).unwrap_or_default(),
        task_run_id: task.map(|id| id.to_string()).unwrap_or_default(),
        time,
        level: Some(level),
        stream,
        source,
        message,
        metadata,
    };
    Ok((log_type, Submitted { draft, decoding: Violations::default() }))
}

/// A run id attribute as a UUID: a UUID as it is, any other string or an
/// integer as the UUIDv5 of its text (a task's within its run's).
fn run_id(key: &str, value: &Value, run: Option<Uuid>) -> Result<Uuid, String> {
    let text = match value {
        Value::String(text) if !text.trim().is_empty() => text.trim().to_string(),
        Value::Number(number) if number.is_i64() || number.is_u64() => number.to_string(),
        other => return Err(format!("{key} is {other}; a UUID, a name or a number is expected")),
    };
    if let Ok(id) = Uuid::try_parse(&text) {
        return Ok(id);
    }
    let name = match run {
        Some(run) => format!("{run}/{text}"),
        None => text,
    };
    Ok(Uuid::new_v5(&RUN_NAMESPACE, name.as_bytes()))
}

/// The level of a severity number (its range), else of its text.
fn level(number: i32, text: &str) -> Result<Level, String> {
    Ok(match number {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21..=24 => Level::Fatal,
        0 => match text.trim().to_ascii_lowercase().as_str() {
            "trace" | "finest" | "finer" => Level::Trace,
            "debug" | "fine" | "config" => Level::Debug,
            "" | "info" | "information" | "informational" | "notice" => Level::Info,
            "warn" | "warning" => Level::Warn,
            "error" | "err" | "severe" => Level::Error,
            "fatal" | "critical" | "crit" | "alert" | "emerg" | "emergency" | "panic" => Level::Fatal,
            _ => return Err(format!("severity_text {text:?} names no level, and severity_number is unset")),
        },
        other => return Err(format!("severity_number {other} is not 0 to 24")),
    })
}

/// An OTLP value as JSON: bytes as base64, lists and maps as arrays and
/// objects; a double that JSON cannot hold (NaN, infinite) as its text.
fn json(value: AnyValue) -> Value {
    match value.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(text)) => Value::String(text),
        Some(any_value::Value::BoolValue(flag)) => Value::Bool(flag),
        Some(any_value::Value::IntValue(number)) => Value::Number(number.into()),
        Some(any_value::Value::DoubleValue(number)) => {
            Number::from_f64(number).map_or_else(|| Value::String(number.to_string()), Value::Number)
        }
        Some(any_value::Value::ArrayValue(list)) => Value::Array(list.values.into_iter().map(json).collect()),
        Some(any_value::Value::KvlistValue(map)) => {
            Value::Object(map.values.into_iter().map(|pair| (pair.key, pair.value.map_or(Value::Null, json))).collect())
        }
        Some(any_value::Value::BytesValue(bytes)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

/// A scalar attribute as text: a string as it is, anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_numbers_map_by_range_and_texts_by_their_usual_names() {
        let levels: Vec<Level> =
            [1, 4, 5, 9, 13, 16, 17, 21, 24].iter().map(|number| level(*number, "").unwrap()).collect();
        use Level::*;
        assert_eq!(levels, [Trace, Trace, Debug, Info, Warn, Warn, Error, Fatal, Fatal]);
        for (text, expected) in [("WARNING", Warn), ("err", Error), ("Critical", Fatal), ("", Info), ("notice", Info)] {
            assert_eq!(level(0, text), Ok(expected), "{text}");
        }
        assert!(level(25, "").unwrap_err().contains("severity_number 25"));
        assert!(level(-1, "").is_err());
        assert!(level(0, "loud").unwrap_err().contains("\"loud\""));
    }

    #[test]
    fn run_ids_that_are_not_uuids_name_the_same_run_every_time() {
        let uuid = Uuid::now_v7();
        assert_eq!(run_id(RUN_ID, &Value::String(uuid.to_string()), None), Ok(uuid));
        let named = run_id(RUN_ID, &Value::String("build-42".into()), None).unwrap();
        assert_eq!(run_id(RUN_ID, &Value::String(" build-42 ".into()), None), Ok(named));
        assert_eq!(run_id(RUN_ID, &Value::Number(42.into()), None), run_id(RUN_ID, &Value::String("42".into()), None));
        let task = |run| run_id(TASK_RUN_ID, &Value::String("compile".into()), Some(run)).unwrap();
        assert_ne!(task(named), task(uuid), "a task's name is its run's");
        for unusable in [Value::Bool(true), Value::String(" ".into()), serde_json::json!(1.5), serde_json::json!([1])] {
            assert!(run_id(RUN_ID, &unusable, None).is_err(), "{unusable}");
        }
    }

    #[test]
    fn values_become_json() {
        let list = AnyValue {
            value: Some(any_value::Value::ArrayValue(crate::proto::opentelemetry::proto::common::v1::ArrayValue {
                values: vec![
                    AnyValue { value: Some(any_value::Value::BytesValue(vec![0, 255])) },
                    AnyValue { value: Some(any_value::Value::DoubleValue(f64::NAN)) },
                    AnyValue { value: None },
                ],
            })),
        };
        assert_eq!(json(list), serde_json::json!(["AP8=", "NaN", null]));
    }
}
