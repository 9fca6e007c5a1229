//! Conversions between the proto contract and the model. Decoding records
//! what it cannot decode as field violations; the model checks the rest.

use chrono::{DateTime, Utc};
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Timestamp};
use serde_json::{Map, Number, Value};

use crate::auth::{GrantDraft, Scope};
use crate::model::{
    CompletionDraft, ContextDraft, CountDraft, FilterDraft, FollowDraft, Grouping, JobRun, Level, Log, LogDraft,
    LogType, MetadataConditionDraft, MetadataTest, Outcome, QueryDraft, Receipt, RunQueryDraft, RunState, SortOrder,
    Start, StartDraft, Stream, Violations,
};
use crate::proto::v1 as pb;

/// The largest integer a double holds exactly; integral numbers below it
/// are stored as JSON integers (`2`, not `2.0`).
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

pub(super) fn log_draft(entry: pb::LogEntry, violations: &mut Violations) -> LogDraft {
    LogDraft {
        id: entry.id,
        job_run_id: entry.job_run_id,
        task_run_id: entry.task_run_id,
        time: entry.time.and_then(|time| time_from_proto(violations, "time", time)),
        level: level_from_proto(violations, "level", entry.level),
        stream: stream_from_proto(violations, "stream", entry.stream),
        source: entry.source,
        message: entry.message,
        metadata: entry
            .metadata
            .map(|metadata| object_from_proto(violations, "metadata", metadata))
            .unwrap_or_default(),
    }
}

pub(super) fn query_draft(request: pb::ListLogsRequest, violations: &mut Violations) -> QueryDraft {
    QueryDraft {
        log_type: log_type_from_proto(violations, "type", request.r#type),
        job_run_id: request.job_run_id,
        task_run_id: request.task_run_id,
        min_level: level_from_proto(violations, "min_level", request.min_level),
        stream: stream_from_proto(violations, "stream", request.stream),
        source: request.source,
        start_time: request.start_time.and_then(|time| time_from_proto(violations, "start_time", time)),
        end_time: request.end_time.and_then(|time| time_from_proto(violations, "end_time", time)),
        message_contains: request.message_contains,
        after_seq: request.after_seq,
        order: sort_order_from_proto(violations, "order", request.order),
        page_size: request.page_size,
        filter: request.filter.map(|filter| filter_draft(filter, "filter", violations)).unwrap_or_default(),
    }
}

/// The shared filter of every read; `field` names it in the request.
pub(super) fn filter_draft(filter: pb::LogFilter, field: &str, violations: &mut Violations) -> FilterDraft {
    /// Decodes each member of an enum list; unset members are refused.
    fn members<T>(
        violations: &mut Violations,
        field: &str,
        raw: Vec<i32>,
        decode: fn(&mut Violations, &str, i32) -> Option<T>,
    ) -> Vec<T> {
        let mut decoded = Vec::with_capacity(raw.len());
        for (index, value) in raw.into_iter().enumerate() {
            let member = format!("{field}[{index}]");
            match decode(violations, &member, value) {
                Some(value) => decoded.push(value),
                None if value == 0 => violations.add(member, "is unspecified: name a value"),
                None => {}
            }
        }
        decoded
    }
    FilterDraft {
        types: members(violations, &format!("{field}.types"), filter.types, log_type_from_proto),
        job_run_ids: filter.job_run_ids,
        task_run_ids: filter.task_run_ids,
        levels: members(violations, &format!("{field}.levels"), filter.levels, level_from_proto),
        min_level: level_from_proto(violations, &format!("{field}.min_level"), filter.min_level),
        streams: members(violations, &format!("{field}.streams"), filter.streams, stream_from_proto),
        sources: filter.sources,
        start_time: filter
            .start_time
            .and_then(|time| time_from_proto(violations, &format!("{field}.start_time"), time)),
        end_time: filter.end_time.and_then(|time| time_from_proto(violations, &format!("{field}.end_time"), time)),
        text: filter.text,
        ignore_case: filter.ignore_case,
        include_metadata: filter.include_metadata,
        metadata: filter
            .metadata
            .into_iter()
            .enumerate()
            .map(|(index, condition)| metadata_condition(condition, &format!("{field}.metadata[{index}]"), violations))
            .collect(),
    }
}

pub(super) fn count_draft(request: pb::CountLogsRequest, violations: &mut Violations) -> CountDraft {
    use pb::count_grouping::By;
    use pb::count_logs_request::Buckets;
    let group_by = request
        .group_by
        .into_iter()
        .enumerate()
        .map(|(index, grouping)| match grouping.by {
            None => None,
            Some(By::MetadataKey(key)) => Some(Grouping::Metadata(key)),
            Some(By::Field(raw)) => {
                decode_enum(violations, &format!("group_by[{index}].field"), raw, |field| match field {
                    pb::CountField::Unspecified => None,
                    pb::CountField::Level => Some(Grouping::Level),
                    pb::CountField::Type => Some(Grouping::Type),
                    pb::CountField::Stream => Some(Grouping::Stream),
                    pb::CountField::Source => Some(Grouping::Source),
                    pb::CountField::JobRun => Some(Grouping::JobRun),
                    pb::CountField::TaskRun => Some(Grouping::TaskRun),
                })
            }
        })
        .collect();
    let (bucket_width, target_buckets) = match request.buckets {
        None => (None, None),
        Some(Buckets::TargetBuckets(target)) => (None, Some(target)),
        Some(Buckets::BucketWidth(width)) => {
            let width = chrono::TimeDelta::new(width.seconds, u32::try_from(width.nanos).unwrap_or(u32::MAX));
            if width.is_none() {
                violations.add("bucket_width", "is not a valid duration");
            }
            // A refused width still counts as asked for, so that validation
            // does not fall back to target_buckets.
            (Some(width.unwrap_or_default()), None)
        }
    };
    CountDraft {
        filter: request.filter.map(|filter| filter_draft(filter, "filter", violations)).unwrap_or_default(),
        group_by,
        bucket_width,
        target_buckets,
        top: request.top,
    }
}

pub(super) fn context_draft(request: pb::GetLogContextRequest) -> ContextDraft {
    use pb::get_log_context_request::Anchor;
    let (id, position) = match request.anchor {
        None => (None, None),
        Some(Anchor::Id(id)) => (Some(id), None),
        Some(Anchor::Position(position)) => (None, Some((position.job_run_id, position.seq))),
    };
    ContextDraft { id, position, before: request.before, after: request.after, same_task_run: request.same_task_run }
}

pub(super) fn counts_to_proto(counts: crate::query::count::Counts) -> pb::CountLogsResponse {
    let duration =
        |width: chrono::TimeDelta| prost_types::Duration { seconds: width.num_seconds(), nanos: width.subsec_nanos() };
    pb::CountLogsResponse {
        total: counts.total,
        counts: counts
            .counts
            .into_iter()
            .map(|count| pb::LogCount {
                group: count.group.into_iter().map(json_to_proto).collect(),
                rest: count.rest,
                bucket_start: count.bucket_start.map(time_to_proto),
                count: count.count,
            })
            .collect(),
        bucket_width: counts.bucket_width.map(duration),
    }
}

fn metadata_condition(
    condition: pb::MetadataCondition,
    field: &str,
    violations: &mut Violations,
) -> MetadataConditionDraft {
    use pb::metadata_condition::Condition;
    let test = condition.condition.map(|test| match test {
        Condition::Equals(value) => {
            MetadataTest::Equals(json_from_proto(violations, &format!("{field}.equals"), value.kind))
        }
        Condition::OneOf(list) => MetadataTest::OneOf(
            list.values
                .into_iter()
                .enumerate()
                .map(|(index, value)| json_from_proto(violations, &format!("{field}.one_of[{index}]"), value.kind))
                .collect(),
        ),
        Condition::Exists(present) => MetadataTest::Exists(present),
    });
    MetadataConditionDraft { key: condition.key, test }
}

pub(super) fn follow_draft(request: pb::StreamLogsRequest, violations: &mut Violations) -> FollowDraft {
    use pb::stream_logs_request::Start as ProtoStart;
    FollowDraft {
        job_run_id: request.job_run_id,
        system: request.system,
        task_run_id: request.task_run_id,
        min_level: level_from_proto(violations, "min_level", request.min_level),
        stream: stream_from_proto(violations, "stream", request.stream),
        start: request.start.map(|start| match start {
            ProtoStart::AfterSeq(seq) => Start::AfterSeq(seq),
            ProtoStart::FromNow(true) => Start::FromNow,
            ProtoStart::Last(count) => Start::Last(count),
            ProtoStart::FromNow(false) => Start::AfterSeq(0),
        }),
    }
}

pub(super) fn completion_draft(request: pb::CompleteJobRunRequest, violations: &mut Violations) -> CompletionDraft {
    CompletionDraft {
        job_run_id: request.job_run_id,
        outcome: outcome_from_proto(violations, "outcome", request.outcome),
        summary: request.summary,
    }
}

pub(super) fn start_draft(request: pb::StartJobRunRequest) -> StartDraft {
    StartDraft { job_run_id: request.job_run_id, name: request.name, labels: request.labels.into_iter().collect() }
}

/// A run listing's draft, and its page token.
pub(super) fn run_query_draft(request: pb::ListJobRunsRequest, violations: &mut Violations) -> (RunQueryDraft, String) {
    let mut outcomes = Vec::with_capacity(request.outcomes.len());
    for (index, raw) in request.outcomes.into_iter().enumerate() {
        let field = format!("outcomes[{index}]");
        match outcome_from_proto(violations, &field, raw) {
            Some(outcome) => outcomes.push(outcome),
            None if raw == 0 => violations.add(field, "is unspecified: name a value"),
            None => {}
        }
    }
    let draft = RunQueryDraft {
        state: decode_enum(violations, "state", request.state, |value| match value {
            pb::JobRunState::Unspecified => None,
            pb::JobRunState::Open => Some(RunState::Open),
            pb::JobRunState::Complete => Some(RunState::Complete),
        }),
        outcomes,
        start_time: request.start_time.and_then(|time| time_from_proto(violations, "start_time", time)),
        end_time: request.end_time.and_then(|time| time_from_proto(violations, "end_time", time)),
        name: request.name,
        labels: request.labels.into_iter().collect(),
        min_level: level_from_proto(violations, "min_level", request.min_level),
        page_size: request.page_size,
    };
    (draft, request.page_token)
}

fn outcome_from_proto(violations: &mut Violations, field: &str, raw: i32) -> Option<Outcome> {
    decode_enum(violations, field, raw, |value| match value {
        pb::JobRunOutcome::Unspecified => None,
        pb::JobRunOutcome::Succeeded => Some(Outcome::Succeeded),
        pb::JobRunOutcome::Failed => Some(Outcome::Failed),
        pb::JobRunOutcome::Cancelled => Some(Outcome::Cancelled),
    })
}

pub(super) fn grant_draft(request: pb::MintJobRunTokenRequest, violations: &mut Violations) -> GrantDraft {
    let ttl = request.ttl.and_then(|ttl| match std::time::Duration::try_from(ttl) {
        Ok(ttl) => Some(ttl),
        Err(_) => {
            violations.add("ttl", format!("{}s {}ns is not a positive duration", ttl.seconds, ttl.nanos));
            None
        }
    });
    let scopes = request
        .scopes
        .iter()
        .map(|raw| match pb::TokenScope::try_from(*raw) {
            Ok(pb::TokenScope::Write) => Some(Scope::Write),
            Ok(pb::TokenScope::Read) => Some(Scope::Read),
            Ok(pb::TokenScope::Unspecified) | Err(_) => None,
        })
        .collect();
    GrantDraft { job_run_id: request.job_run_id, task_run_id: request.task_run_id, ttl, scopes }
}

pub(super) fn job_run_to_proto(run: JobRun) -> pb::JobRun {
    let (state, outcome, summary, completed_at) = match run.completion {
        Some(completion) => (
            pb::JobRunState::Complete,
            match completion.outcome {
                Outcome::Succeeded => pb::JobRunOutcome::Succeeded,
                Outcome::Failed => pb::JobRunOutcome::Failed,
                Outcome::Cancelled => pb::JobRunOutcome::Cancelled,
            },
            completion.summary,
            Some(time_to_proto(completion.completed_at)),
        ),
        None => (pb::JobRunState::Open, pb::JobRunOutcome::Unspecified, String::new(), None),
    };
    pb::JobRun {
        job_run_id: run.id.to_string(),
        state: state.into(),
        outcome: outcome.into(),
        summary,
        completed_at,
        log_count: run.level_counts.total(),
        last_seq: run.last_seq,
        first_log_time: run.first_log_time.map(time_to_proto),
        last_log_time: run.last_log_time.map(time_to_proto),
        deleted_at: run.deleted_at.map(time_to_proto),
        name: run.identity.name,
        labels: run.identity.labels.into_iter().collect(),
        started_at: run.started_at.map(time_to_proto),
        level_counts: Some(pb::LevelCounts {
            trace: run.level_counts.of(Level::Trace),
            debug: run.level_counts.of(Level::Debug),
            info: run.level_counts.of(Level::Info),
            warn: run.level_counts.of(Level::Warn),
            error: run.level_counts.of(Level::Error),
            fatal: run.level_counts.of(Level::Fatal),
        }),
        last_activity_time: Some(time_to_proto(run.last_activity)),
        first_retained_seq: run.first_retained_seq,
    }
}

pub(super) fn log_to_proto(log: Log) -> pb::Log {
    let id_text = |id: Option<uuid::Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    pb::Log {
        id: log.id.to_string(),
        r#type: log_type_to_proto(log.owner.log_type()).into(),
        job_run_id: id_text(log.owner.job_run_id()),
        task_run_id: id_text(log.owner.task_run_id()),
        seq: log.seq,
        time: Some(time_to_proto(log.time)),
        received_at: Some(time_to_proto(log.received_at)),
        level: level_to_proto(log.level).into(),
        stream: stream_to_proto(log.stream).into(),
        source: log.source,
        message: log.message,
        metadata: Some(object_to_proto(log.metadata)),
    }
}

pub(super) fn receipt_to_proto(receipt: Receipt) -> pb::LogReceipt {
    pb::LogReceipt {
        id: receipt.id.to_string(),
        seq: receipt.seq,
        received_at: Some(time_to_proto(receipt.received_at)),
        duplicate: receipt.duplicate,
    }
}

/// Decodes a proto3 enum field: the zero value means "unset" (`None`), and
/// a number the contract does not define is a violation.
fn decode_enum<P: TryFrom<i32>, T>(
    violations: &mut Violations,
    field: &str,
    raw: i32,
    convert: impl FnOnce(P) -> Option<T>,
) -> Option<T> {
    match P::try_from(raw) {
        Ok(value) => convert(value),
        Err(_) => {
            violations.add(field, format!("{raw} is not a defined value"));
            None
        }
    }
}

fn log_type_from_proto(violations: &mut Violations, field: &str, raw: i32) -> Option<LogType> {
    decode_enum(violations, field, raw, |value| match value {
        pb::LogType::Unspecified => None,
        pb::LogType::System => Some(LogType::System),
        pb::LogType::Job => Some(LogType::Job),
        pb::LogType::Task => Some(LogType::Task),
    })
}

fn level_from_proto(violations: &mut Violations, field: &str, raw: i32) -> Option<Level> {
    decode_enum(violations, field, raw, |value| match value {
        pb::LogLevel::Unspecified => None,
        pb::LogLevel::Trace => Some(Level::Trace),
        pb::LogLevel::Debug => Some(Level::Debug),
        pb::LogLevel::Info => Some(Level::Info),
        pb::LogLevel::Warn => Some(Level::Warn),
        pb::LogLevel::Error => Some(Level::Error),
        pb::LogLevel::Fatal => Some(Level::Fatal),
    })
}

fn stream_from_proto(violations: &mut Violations, field: &str, raw: i32) -> Option<Stream> {
    decode_enum(violations, field, raw, |value| match value {
        pb::LogStream::Unspecified => None,
        pb::LogStream::Stdout => Some(Stream::Stdout),
        pb::LogStream::Stderr => Some(Stream::Stderr),
        pb::LogStream::System => Some(Stream::System),
    })
}

fn sort_order_from_proto(violations: &mut Violations, field: &str, raw: i32) -> Option<SortOrder> {
    decode_enum(violations, field, raw, |value| match value {
        pb::SortOrder::Unspecified => None,
        pb::SortOrder::Ascending => Some(SortOrder::Ascending),
        pb::SortOrder::Descending => Some(SortOrder::Descending),
    })
}

pub(super) fn log_type_to_proto(log_type: LogType) -> pb::LogType {
    match log_type {
        LogType::System => pb::LogType::System,
        LogType::Job => pb::LogType::Job,
        LogType::Task => pb::LogType::Task,
    }
}

fn level_to_proto(level: Level) -> pb::LogLevel {
    match level {
        Level::Trace => pb::LogLevel::Trace,
        Level::Debug => pb::LogLevel::Debug,
        Level::Info => pb::LogLevel::Info,
        Level::Warn => pb::LogLevel::Warn,
        Level::Error => pb::LogLevel::Error,
        Level::Fatal => pb::LogLevel::Fatal,
    }
}

fn stream_to_proto(stream: Stream) -> pb::LogStream {
    match stream {
        Stream::Stdout => pb::LogStream::Stdout,
        Stream::Stderr => pb::LogStream::Stderr,
        Stream::System => pb::LogStream::System,
    }
}

pub(super) fn time_from_proto(violations: &mut Violations, field: &str, time: Timestamp) -> Option<DateTime<Utc>> {
    let decoded = u32::try_from(time.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000)
        .and_then(|nanos| DateTime::from_timestamp(time.seconds, nanos));
    if decoded.is_none() {
        violations.add(
            field,
            format!(
                "seconds {} and nanos {} are not a valid timestamp (nanos must be 0 to 999,999,999, \
                 and the time within 0001-01-01 to 9999-12-31)",
                time.seconds, time.nanos
            ),
        );
    }
    decoded
}

pub(super) fn time_to_proto(time: DateTime<Utc>) -> Timestamp {
    Timestamp { seconds: time.timestamp(), nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(999_999_999) }
}

fn object_from_proto(violations: &mut Violations, field: &str, object: Struct) -> Map<String, Value> {
    object
        .fields
        .into_iter()
        .map(|(key, value)| {
            let json = json_from_proto(violations, &format!("{field}.{key}"), value.kind);
            (key, json)
        })
        .collect()
}

fn json_from_proto(violations: &mut Violations, field: &str, kind: Option<Kind>) -> Value {
    match kind {
        Some(Kind::NullValue(_)) => Value::Null,
        // Protobuf's JSON mapping has no meaning for a Value with no kind;
        // storing it as null would hide a client's bug (a Node object
        // written with snake_case names, say).
        None => {
            violations.add(
                field,
                "has no value: set one of null_value, number_value, string_value, bool_value, struct_value, list_value",
            );
            Value::Null
        }
        Some(Kind::BoolValue(flag)) => Value::Bool(flag),
        Some(Kind::StringValue(text)) => Value::String(text),
        Some(Kind::NumberValue(number)) if number.fract() == 0.0 && number.abs() < MAX_EXACT_INTEGER => {
            // Exact: the number is integral and within the exact-integer range.
            Value::from(number as i64)
        }
        Some(Kind::NumberValue(number)) => Number::from_f64(number).map(Value::Number).unwrap_or_else(|| {
            violations.add(field, format!("{number} is not a finite number"));
            Value::Null
        }),
        Some(Kind::ListValue(list)) => Value::Array(
            list.values
                .into_iter()
                .enumerate()
                .map(|(index, item)| json_from_proto(violations, &format!("{field}[{index}]"), item.kind))
                .collect(),
        ),
        Some(Kind::StructValue(object)) => Value::Object(object_from_proto(violations, field, object)),
    }
}

fn object_to_proto(object: Map<String, Value>) -> Struct {
    Struct { fields: object.into_iter().map(|(key, value)| (key, json_to_proto(value))).collect() }
}

fn json_to_proto(value: Value) -> prost_types::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(prost_types::NullValue::NullValue.into()),
        Value::Bool(flag) => Kind::BoolValue(flag),
        Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or(f64::NAN)),
        Value::String(text) => Kind::StringValue(text),
        Value::Array(items) => Kind::ListValue(ListValue { values: items.into_iter().map(json_to_proto).collect() }),
        Value::Object(object) => Kind::StructValue(object_to_proto(object)),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(value: f64) -> prost_types::Value {
        prost_types::Value { kind: Some(Kind::NumberValue(value)) }
    }

    #[test]
    fn metadata_numbers_keep_integers_and_refuse_non_finite_and_unset_values() {
        let mut violations = Violations::default();
        let metadata =
            Struct { fields: [("attempt".to_string(), number(2.0)), ("ratio".to_string(), number(0.5))].into() };
        let json = object_from_proto(&mut violations, "metadata", metadata);
        assert_eq!(serde_json::to_string(&json).unwrap(), r#"{"attempt":2,"ratio":0.5}"#);
        assert!(violations.is_empty());

        let bad = Struct { fields: [("x".to_string(), number(f64::INFINITY))].into() };
        object_from_proto(&mut violations, "metadata", bad);
        assert_eq!(violations.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(), ["metadata.x"]);

        let mut violations = Violations::default();
        let empty = prost_types::Value { kind: None };
        let list = prost_types::Value { kind: Some(Kind::ListValue(ListValue { values: vec![empty.clone()] })) };
        let unset = Struct { fields: [("a".to_string(), empty), ("b".to_string(), list)].into() };
        object_from_proto(&mut violations, "metadata", unset);
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["metadata.a", "metadata.b[0]"], "a value without a kind is refused, not stored as null");
    }

    #[test]
    fn metadata_round_trips_through_proto() {
        let json: Map<String, Value> = serde_json::from_str(r#"{"a":[1,"two",null,true,{"b":2.5}],"c":{}}"#).unwrap();
        let mut violations = Violations::default();
        let back = object_from_proto(&mut violations, "metadata", object_to_proto(json.clone()));
        assert_eq!(back, json);
    }

    #[test]
    fn unknown_enum_numbers_and_bad_timestamps_are_violations() {
        let mut violations = Violations::default();
        let entry = pb::LogEntry {
            level: 99,
            stream: -1,
            time: Some(Timestamp { seconds: 0, nanos: 1_000_000_000 }),
            ..pb::LogEntry::default()
        };
        log_draft(entry, &mut violations);
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["time", "level", "stream"]);
    }
}
