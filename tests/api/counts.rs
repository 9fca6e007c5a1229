//! CountLogs: counts by level for a run, errors by a metadata key per hour,
//! the largest groups with the rest summed, error counts per run, and
//! refusals naming the field and bound.

use logwell::proto::v1::{self as pb};
use prost_types::Timestamp;
use prost_types::value::Kind;
use serde_json::json;
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestServer, assert_invalid, entry, job_entry};

conformance!(
    counts_group_a_run_by_level,
    counts_bucket_a_metadata_key_by_hour,
    counts_keep_the_largest_groups_and_sum_the_rest,
    bad_counts_name_the_field_and_bound,
);

const HOUR: i64 = 3_600;
/// 2026-11-25T00:00:00Z: an hour boundary.
const MIDNIGHT: i64 = 1_795_996_800;

fn log(run: Uuid, level: pb::LogLevel, seconds: i64, metadata: serde_json::Value) -> pb::LogEntry {
    let fields = metadata
        .as_object()
        .map(|object| {
            object
                .iter()
                .map(|(key, value)| {
                    let kind = match value {
                        serde_json::Value::String(text) => Kind::StringValue(text.clone()),
                        other => Kind::NumberValue(other.as_f64().expect("a number")),
                    };
                    (key.clone(), prost_types::Value { kind: Some(kind) })
                })
                .collect()
        })
        .unwrap_or_default();
    pb::LogEntry {
        level: level.into(),
        time: Some(Timestamp { seconds, nanos: 0 }),
        metadata: Some(prost_types::Struct { fields }),
        ..job_entry(run, "line")
    }
}

fn field(field: pb::CountField) -> pb::CountGrouping {
    pb::CountGrouping { by: Some(pb::count_grouping::By::Field(field.into())) }
}

fn metadata_key(key: &str) -> pb::CountGrouping {
    pb::CountGrouping { by: Some(pb::count_grouping::By::MetadataKey(key.into())) }
}

fn of_run(run: Uuid) -> Option<pb::LogFilter> {
    Some(pb::LogFilter { job_run_ids: vec![run.to_string()], ..Default::default() })
}

/// Each count as (group values as JSON, rest, bucket start seconds, count).
fn shape(response: &pb::CountLogsResponse) -> Vec<(Vec<serde_json::Value>, bool, Option<i64>, i64)> {
    let json = |value: &prost_types::Value| match &value.kind {
        Some(Kind::StringValue(text)) => json!(text),
        Some(Kind::NumberValue(number)) => json!(number),
        Some(Kind::NullValue(_)) | None => serde_json::Value::Null,
        Some(other) => panic!("unexpected group value {other:?}"),
    };
    response
        .counts
        .iter()
        .map(|count| {
            (
                count.group.iter().map(json).collect(),
                count.rest,
                count.bucket_start.map(|start| start.seconds),
                count.count,
            )
        })
        .collect()
}

async fn counts_group_a_run_by_level(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (run, other) = (Uuid::now_v7(), Uuid::now_v7());
    use pb::LogLevel::{Error, Info, Warn};
    let logs = [Info, Info, Info, Error, Warn, Info, Error].map(|level| log(run, level, MIDNIGHT, json!({}))).to_vec();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    let noise = vec![log(other, Error, MIDNIGHT, json!({}))];
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs: noise }).await.expect("write");
    server.system().write_system_log(pb::WriteSystemLogRequest { log: Some(entry("up")) }).await.expect("write");

    let request = pb::CountLogsRequest {
        filter: of_run(run),
        group_by: vec![field(pb::CountField::Level)],
        ..Default::default()
    };
    let counts = server.query().count_logs(request).await.expect("count").into_inner();
    assert_eq!(counts.total, 7);
    assert_eq!(
        shape(&counts),
        [
            (vec![json!("info")], false, None, 4),
            (vec![json!("error")], false, None, 2),
            (vec![json!("warn")], false, None, 1),
        ]
    );
    // Everything, in one group; and error counts per job run (system logs have none).
    let all = server.query().count_logs(pb::CountLogsRequest::default()).await.expect("count").into_inner();
    assert_eq!((all.total, shape(&all)), (9, vec![(vec![], false, None, 9)]));
    let errors_by_run = pb::CountLogsRequest {
        filter: Some(pb::LogFilter { min_level: Error.into(), ..Default::default() }),
        group_by: vec![field(pb::CountField::JobRun)],
        ..Default::default()
    };
    let by_run = server.query().count_logs(errors_by_run).await.expect("count").into_inner();
    assert_eq!(
        shape(&by_run),
        [(vec![json!(run.to_string())], false, None, 2), (vec![json!(other.to_string())], false, None, 1)]
    );
    let by_type = pb::CountLogsRequest { group_by: vec![field(pb::CountField::TaskRun)], ..Default::default() };
    let by_task = server.query().count_logs(by_type).await.expect("count").into_inner();
    assert_eq!(shape(&by_task), [(vec![serde_json::Value::Null], false, None, 9)], "no log has a task run");
}

async fn counts_bucket_a_metadata_key_by_hour(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    use pb::LogLevel::Error;
    let logs = vec![
        log(run, Error, MIDNIGHT + 10, json!({"error_type": "Timeout"})),
        log(run, Error, MIDNIGHT + 20, json!({"error_type": "Timeout"})),
        log(run, Error, MIDNIGHT + HOUR + 5, json!({"error_type": "Timeout"})),
        log(run, Error, MIDNIGHT + HOUR + 6, json!({"error_type": "OOM"})),
        log(run, Error, MIDNIGHT + 2 * HOUR + 7, json!({"error_type": 42})),
        log(run, Error, MIDNIGHT + 2 * HOUR + 8, json!({"error_type": "42"})),
        log(run, Error, MIDNIGHT + 2 * HOUR + 9, json!({})),
    ];
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    let day = pb::LogFilter {
        job_run_ids: vec![run.to_string()],
        start_time: Some(Timestamp { seconds: MIDNIGHT, nanos: 0 }),
        end_time: Some(Timestamp { seconds: MIDNIGHT + 3 * HOUR, nanos: 0 }),
        ..Default::default()
    };
    let hourly = pb::CountLogsRequest {
        filter: Some(day.clone()),
        group_by: vec![metadata_key("error_type")],
        buckets: Some(pb::count_logs_request::Buckets::BucketWidth(prost_types::Duration { seconds: HOUR, nanos: 0 })),
        ..Default::default()
    };
    let counts = server.query().count_logs(hourly).await.expect("count").into_inner();
    assert_eq!(counts.bucket_width.map(|width| width.seconds), Some(HOUR));
    assert_eq!(
        shape(&counts),
        [
            (vec![json!("Timeout")], false, Some(MIDNIGHT), 2),
            (vec![json!("Timeout")], false, Some(MIDNIGHT + HOUR), 1),
            // Ties in the order of their JSON text ("42" before "OOM" before 42), no value last.
            (vec![json!("42")], false, Some(MIDNIGHT + 2 * HOUR), 1),
            (vec![json!("OOM")], false, Some(MIDNIGHT + HOUR), 1),
            (vec![json!(42.0)], false, Some(MIDNIGHT + 2 * HOUR), 1),
            (vec![serde_json::Value::Null], false, Some(MIDNIGHT + 2 * HOUR), 1),
        ]
    );
    // About three buckets over the three hours: the width is an hour; and
    // with no time range, the range is the logs' own.
    for filter in [day, pb::LogFilter { job_run_ids: vec![run.to_string()], ..Default::default() }] {
        let aimed = pb::CountLogsRequest {
            filter: Some(filter),
            buckets: Some(pb::count_logs_request::Buckets::TargetBuckets(3)),
            ..Default::default()
        };
        let counts = server.query().count_logs(aimed).await.expect("count").into_inner();
        assert_eq!(counts.bucket_width.map(|width| width.seconds), Some(HOUR));
        assert_eq!(
            shape(&counts),
            [
                (vec![], false, Some(MIDNIGHT), 2),
                (vec![], false, Some(MIDNIGHT + HOUR), 2),
                (vec![], false, Some(MIDNIGHT + 2 * HOUR), 3)
            ]
        );
    }
}

async fn counts_keep_the_largest_groups_and_sum_the_rest(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let mut logs = Vec::new();
    for (source, count) in [("api", 5), ("db", 4), ("cache", 3), ("queue", 2), ("mail", 1)] {
        for _ in 0..count {
            logs.push(pb::LogEntry { source: source.into(), ..log(run, pb::LogLevel::Info, MIDNIGHT, json!({})) });
        }
    }
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    let request = pb::CountLogsRequest { group_by: vec![field(pb::CountField::Source)], top: 2, ..Default::default() };
    let counts = server.query().count_logs(request).await.expect("count").into_inner();
    assert_eq!(counts.total, 15);
    assert_eq!(
        shape(&counts),
        [(vec![json!("api")], false, None, 5), (vec![json!("db")], false, None, 4), (vec![], true, None, 6)]
    );
}

async fn bad_counts_name_the_field_and_bound(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let logs = vec![
        log(run, pb::LogLevel::Info, MIDNIGHT, json!({})),
        log(run, pb::LogLevel::Info, MIDNIGHT + HOUR, json!({})),
    ];
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    let count = |request: pb::CountLogsRequest| {
        let mut query = server.query();
        async move { query.count_logs(request).await }
    };
    let grouped = |group_by| pb::CountLogsRequest { group_by, ..Default::default() };
    assert_invalid(count(grouped(vec![pb::CountGrouping { by: None }])).await, &["group_by[0]"]);
    assert_invalid(count(grouped(vec![field(pb::CountField::Unspecified)])).await, &["group_by[0]"]);
    assert_invalid(count(grouped(vec![metadata_key("")])).await, &["group_by[0].metadata_key"]);
    assert_invalid(count(grouped(vec![metadata_key("say \"hi\"")])).await, &["group_by[0].metadata_key"]);
    let four = vec![
        field(pb::CountField::Level),
        field(pb::CountField::Type),
        field(pb::CountField::Stream),
        field(pb::CountField::Source),
    ];
    assert_invalid(count(grouped(four)).await, &["group_by"]);
    let width = |seconds| pb::CountLogsRequest {
        buckets: Some(pb::count_logs_request::Buckets::BucketWidth(prost_types::Duration { seconds, nanos: 0 })),
        ..Default::default()
    };
    assert_invalid(count(width(0)).await, &["bucket_width"]);
    // A second's buckets over the logs' hour are 3,601: too many.
    assert_invalid(count(width(1)).await, &["bucket_width"]);
    let target = pb::CountLogsRequest {
        buckets: Some(pb::count_logs_request::Buckets::TargetBuckets(1_001)),
        ..Default::default()
    };
    assert_invalid(count(target).await, &["target_buckets"]);
    assert_invalid(count(pb::CountLogsRequest { top: 1_001, ..Default::default() }).await, &["top"]);
    let bad_filter = pb::CountLogsRequest {
        filter: Some(pb::LogFilter { job_run_ids: vec!["x".into()], ..Default::default() }),
        ..Default::default()
    };
    assert_invalid(count(bad_filter).await, &["filter.job_run_ids[0]"]);
}
