//! Property tests of what every request passes through: decoding, proto to
//! model conversion and validation. Whatever a client sends, these never
//! panic; what they accept keeps every rule of the model and survives a round
//! trip through the proto unchanged. CI runs proptest's default 256 cases per
//! property; run longer with `PROPTEST_CASES=100000 cargo test --lib properties`.

use chrono::Utc;
use proptest::prelude::*;
use prost::Message;
use prost_types::value::Kind;
use uuid::Uuid;

use super::codec::undecodable;
use super::convert::{log_to_proto, query_draft};
use super::page_token;
use super::write::submitted;
use crate::ingest::validate_log;
use crate::model::{Cursor, Limits, Log, LogType, MAX_TIME, MIN_TIME, Ordering, SortOrder, Violations};
use crate::proto::v1 as pb;

const TYPES: [LogType; 3] = [LogType::System, LogType::Job, LogType::Task];

/// Text as clients send it: anything, UUIDs, or awkward characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        Just(String::new()),
        "[a-z \\t\\n\\x00\\x1b%_'\"\\\\]{0,12}",
    ]
}

/// An id field: mostly a UUID, sometimes empty, nil or junk.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        2 => Just(String::new()),
        1 => Just(Uuid::nil().to_string()),
        1 => any::<String>(),
    ]
}

/// Mostly what a log of `log_type` carries in an id field it must (or must
/// not) have, sometimes anything.
fn id_for(required: bool) -> impl Strategy<Value = String> {
    let usual = if required {
        any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()).boxed()
    } else {
        Just(String::new()).boxed()
    };
    prop_oneof![8 => usual, 2 => id()]
}

/// A message: mostly plain, sometimes anything.
fn message() -> impl Strategy<Value = String> {
    prop_oneof![6 => "[a-zA-Z0-9 \t\n✓€]{1,90}", 4 => text()]
}

fn timestamp() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
    let seconds = prop_oneof![
        1 => any::<i64>(),
        4 => MIN_TIME.timestamp() - 2..MAX_TIME.timestamp() + 2,
        1 => Just(MIN_TIME.timestamp()),
        1 => Just(MAX_TIME.timestamp()),
    ];
    let nanos = prop_oneof![1 => any::<i32>(), 4 => 0..1_000_000_000i32];
    proptest::option::of((seconds, nanos).prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }))
}

fn enum_value() -> impl Strategy<Value = i32> {
    prop_oneof![4 => 0..8i32, 1 => any::<i32>()]
}

fn json_value() -> impl Strategy<Value = prost_types::Value> {
    let leaf = prop_oneof![
        Just(Kind::NullValue(0)),
        any::<bool>().prop_map(Kind::BoolValue),
        any::<f64>().prop_map(Kind::NumberValue),
        text().prop_map(Kind::StringValue),
    ];
    leaf.prop_map(|kind| prost_types::Value { kind: Some(kind) }).prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|values| Kind::ListValue(prost_types::ListValue { values })),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|fields| Kind::StructValue(prost_types::Struct { fields })),
        ]
        .prop_map(|kind| prost_types::Value { kind: Some(kind) })
    })
}

fn entry(log_type: LogType) -> impl Strategy<Value = pb::LogEntry> {
    (
        (
            id_for(log_type != LogType::System),
            id_for(log_type == LogType::Task),
            timestamp(),
            enum_value(),
            enum_value(),
        ),
        (
            prop_oneof![3 => "[a-z-]{0,10}", 1 => text()],
            message(),
            proptest::option::of(prop::collection::btree_map(text(), json_value(), 0..4)),
            prop_oneof![Just(String::new()), id()],
        ),
    )
        .prop_map(|((job_run_id, task_run_id, time, level, stream), (source, message, metadata, id))| {
            pb::LogEntry {
                job_run_id,
                task_run_id,
                time,
                level,
                stream,
                source,
                message,
                metadata: metadata.map(|fields| prost_types::Struct { fields }),
                id,
            }
        })
}

/// Small limits, so that both sides of each bound are often met.
fn limits() -> impl Strategy<Value = Limits> {
    (1..100usize, any::<bool>(), 0..20usize, 2..400usize, 1..6usize).prop_map(
        |(message_bytes, truncate_messages, source_bytes, metadata_bytes, metadata_depth)| Limits {
            message_bytes,
            truncate_messages,
            source_bytes,
            metadata_bytes,
            metadata_depth,
            ..Limits::default()
        },
    )
}

/// The entry a client would send to write `log` again.
fn entry_of(log: &pb::Log) -> pb::LogEntry {
    pb::LogEntry {
        job_run_id: log.job_run_id.clone(),
        task_run_id: log.task_run_id.clone(),
        time: log.time,
        level: log.level,
        stream: log.stream,
        source: log.source.clone(),
        message: log.message.clone(),
        metadata: log.metadata.clone(),
        id: log.id.clone(),
    }
}

proptest! {
    #[test]
    fn accepted_entries_keep_the_rules_and_round_trip(
        (log_type, entry) in (0..3usize).prop_flat_map(|index| (Just(TYPES[index]), entry(TYPES[index]))),
        limits in limits(),
    ) {
        let Ok(log) = validate_log(submitted(entry.clone()), log_type, "log", &limits) else { return Ok(()) };
        prop_assert_eq!(log.owner.log_type(), log_type);
        prop_assert!(!log.message.is_empty() && log.message.len() <= limits.message_bytes);
        prop_assert!(!log.message.contains('\0'));
        prop_assert!(log.source.len() <= limits.source_bytes && !log.source.chars().any(char::is_control));
        prop_assert!((MIN_TIME..=MAX_TIME).contains(&log.time));
        prop_assert_eq!(log.client_id, !entry.id.is_empty());
        if log.message != entry.message {
            prop_assert!(limits.truncate_messages && entry.message.starts_with(&log.message));
        }
        // What is stored comes back as it went in, and validates again unchanged.
        let stored = log_to_proto(Log::committed(log.clone(), 1));
        let again = validate_log(submitted(entry_of(&stored)), log_type, "log", &limits);
        let again = again.map_err(|violations| TestCaseError::fail(format!("stored log refused: {violations}")))?;
        prop_assert_eq!(again.id, log.id);
        prop_assert_eq!(again.owner, log.owner);
        prop_assert_eq!(again.time, log.time);
        prop_assert_eq!((again.level, again.stream), (log.level, log.stream));
        prop_assert_eq!(&again.source, &log.source);
        prop_assert_eq!(&again.message, &log.message);
        prop_assert_eq!(&again.metadata, &log.metadata);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_write_path(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(request) = pb::WriteJobLogsRequest::decode(bytes.as_slice()) {
            for entry in request.logs {
                let _ = validate_log(submitted(entry), LogType::Job, "logs[0]", &Limits::default());
            }
        }
        if let Err(error) = pb::WriteJobLogsRequest::decode(bytes.as_slice()) {
            prop_assert_eq!(undecodable(&error.to_string()).iter().count(), 1);
        }
    }

    #[test]
    fn accepted_queries_are_bounded(
        (job_run_id, task_run_id, source, message_contains) in (id(), id(), text(), text()),
        (log_type, min_level, stream, order) in (enum_value(), enum_value(), enum_value(), enum_value()),
        (start_time, end_time) in (timestamp(), timestamp()),
        (after_seq, page_size) in (any::<i64>(), prop_oneof![-2..1_002i32, any::<i32>()]),
        page_token in text(),
    ) {
        let request = pb::ListLogsRequest {
            r#type: log_type, job_run_id, task_run_id, min_level, stream, source, start_time, end_time,
            message_contains, after_seq, order, page_size, page_token: page_token.clone(), filter: None,
        };
        let mut violations = Violations::default();
        let draft = query_draft(request, &mut violations);
        if let Ok((filter, order, size)) = violations.judge(draft.validate()) {
            prop_assert!((1..=1_000).contains(&size));
            if let (Some(start), Some(end)) = (filter.start_time, filter.end_time) {
                prop_assert!(start < end);
            }
            // A token the server did not make is refused, never trusted.
            prop_assert!(page_token.is_empty() || page_token::decode(&page_token, &filter, order).is_err());
            // Cursors come from stored logs: microsecond times.
            let time = chrono::DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_default();
            let cursor = match filter.ordering() {
                Ordering::RunSeq | Ordering::SystemSeq => Cursor::Seq(after_seq),
                Ordering::TaskRunSeq => Cursor::RunSeq { job_run_id: Uuid::now_v7(), seq: after_seq },
                Ordering::Time => Cursor::Time { time, id: Uuid::now_v7() },
            };
            let token = page_token::encode(cursor, &filter, order);
            prop_assert_eq!(page_token::decode(&token, &filter, order), Ok(cursor));
            let reversed = match order { SortOrder::Ascending => SortOrder::Descending, SortOrder::Descending => SortOrder::Ascending };
            prop_assert!(page_token::decode(&token, &filter, reversed).is_err(), "a token binds its order");
        }
    }
}
