//! The shared filter (`filter` in ListLogs): metadata conditions typed like
//! JSON, sets of runs, task runs, levels, streams and sources, text search
//! with its options, paging under filters, and refusals naming the field.

use logwell::proto::v1::{self as pb};
use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde_json::json;
use uuid::Uuid;

use chrono::{Duration, Utc};
use logwell::live::Hub;
use logwell::model::{Level, LogFilter, LogQuery, MetadataCondition, MetadataTest, SortOrder};

use crate::conformance;
use crate::helpers::{
    Backend, TestDatabase, TestServer, assert_invalid, connect_options, entry, job_entry, send_signal,
    start_serving_with, task_entry,
};

conformance!(
    metadata_conditions_compare_typed_like_json,
    sets_and_searches_narrow_across_runs,
    filtered_pages_never_repeat_or_skip,
    bad_filters_name_the_field_and_bound,
    indexed_reads_use_their_indexes,
    a_read_past_the_query_timeout_is_stopped_clearly,
);

/// A protobuf Value from JSON.
pub fn value(json: serde_json::Value) -> Value {
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(flag) => Kind::BoolValue(flag),
        serde_json::Value::Number(number) => Kind::NumberValue(number.as_f64().expect("a number")),
        serde_json::Value::String(text) => Kind::StringValue(text),
        serde_json::Value::Array(items) => {
            Kind::ListValue(ListValue { values: items.into_iter().map(value).collect() })
        }
        serde_json::Value::Object(object) => {
            Kind::StructValue(Struct { fields: object.into_iter().map(|(key, item)| (key, value(item))).collect() })
        }
    };
    Value { kind: Some(kind) }
}

pub fn with_metadata(mut log: pb::LogEntry, metadata: serde_json::Value) -> pb::LogEntry {
    let Kind::StructValue(object) = value(metadata).kind.expect("kind") else { panic!("metadata is an object") };
    log.metadata = Some(object);
    log
}

pub fn equals(key: &str, wanted: serde_json::Value) -> pb::MetadataCondition {
    pb::MetadataCondition { key: key.into(), condition: Some(pb::metadata_condition::Condition::Equals(value(wanted))) }
}

pub fn one_of(key: &str, wanted: Vec<serde_json::Value>) -> pb::MetadataCondition {
    let values = wanted.into_iter().map(value).collect();
    pb::MetadataCondition {
        key: key.into(),
        condition: Some(pb::metadata_condition::Condition::OneOf(ListValue { values })),
    }
}

pub fn exists(key: &str, present: bool) -> pb::MetadataCondition {
    pb::MetadataCondition { key: key.into(), condition: Some(pb::metadata_condition::Condition::Exists(present)) }
}

fn filtered(filter: pb::LogFilter) -> pb::ListLogsRequest {
    pb::ListLogsRequest { filter: Some(filter), ..Default::default() }
}

fn messages(logs: &[pb::Log]) -> Vec<&str> {
    logs.iter().map(|log| log.message.as_str()).collect()
}

async fn metadata_conditions_compare_typed_like_json(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (run, other_run) = (Uuid::now_v7(), Uuid::now_v7());
    let logs = vec![
        with_metadata(job_entry(run, "gpu-7 cycle 42"), json!({"worker_id": "gpu-7", "cycle": 42})),
        with_metadata(job_entry(run, "gpu-7 cycle \"42\""), json!({"worker_id": "gpu-7", "cycle": "42"})),
        with_metadata(job_entry(run, "gpu-1 retried"), json!({"worker_id": "gpu-1", "cycle": 43, "retry": true})),
        with_metadata(job_entry(run, "half cycle"), json!({"cycle": 42.5, "note": null})),
        with_metadata(job_entry(run, "nested"), json!({"cycle": {"n": 42}, "retry": 1})),
        with_metadata(job_entry(run, "odd keys"), json!({"say \"hi\"": "yes", "it's": 1, "a.b": [1]})),
        with_metadata(job_entry(run, "array-like string"), json!({"a.b": "[1]"})),
    ];
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    let logs = vec![with_metadata(job_entry(other_run, "timed out"), json!({"error_type": "Timeout", "cycle": 42}))];
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    let system = vec![with_metadata(entry("scheduler"), json!({"worker_id": "gpu-7"}))];
    server.system().write_system_logs(pb::WriteSystemLogsRequest { logs: system }).await.expect("write");

    let find = |conditions: Vec<pb::MetadataCondition>| {
        let request = filtered(pb::LogFilter { metadata: conditions, ..Default::default() });
        let server = &server;
        async move {
            let mut found: Vec<String> = server.list_all(request).await.into_iter().map(|log| log.message).collect();
            found.sort();
            found
        }
    };
    assert_eq!(find(vec![equals("worker_id", json!("gpu-7")), equals("cycle", json!(42))]).await, ["gpu-7 cycle 42"]);
    assert_eq!(find(vec![equals("cycle", json!("42"))]).await, ["gpu-7 cycle \"42\""]);
    assert_eq!(find(vec![equals("cycle", json!(42.0))]).await, ["gpu-7 cycle 42", "timed out"]);
    assert_eq!(find(vec![equals("cycle", json!(42.5))]).await, ["half cycle"]);
    assert_eq!(
        find(vec![one_of("cycle", vec![json!(43), json!("42")])]).await,
        ["gpu-1 retried", "gpu-7 cycle \"42\""]
    );
    assert_eq!(find(vec![equals("retry", json!(true))]).await, ["gpu-1 retried"]);
    assert_eq!(find(vec![equals("retry", json!(1))]).await, ["nested"]);
    assert_eq!(find(vec![exists("note", true)]).await, ["half cycle"]);
    assert_eq!(find(vec![exists("error_type", true)]).await, ["timed out"]);
    assert_eq!(
        find(vec![exists("worker_id", false), exists("error_type", false), exists("a.b", false)]).await,
        ["half cycle", "nested"]
    );
    assert_eq!(find(vec![equals("worker_id", json!("gpu-9"))]).await, Vec::<String>::new());
    // Keys that need quoting in a JSON path or in SQL.
    assert_eq!(find(vec![equals("say \"hi\"", json!("yes"))]).await, ["odd keys"]);
    assert_eq!(find(vec![equals("it's", json!(1)), exists("a.b", true)]).await, ["odd keys"]);
    assert_eq!(find(vec![equals("a.b", json!("[1]"))]).await, ["array-like string"]);

    // With a run pinned, in seq order; and combined with the top-level shorthands.
    let of_run = pb::ListLogsRequest {
        job_run_id: run.to_string(),
        filter: Some(pb::LogFilter { metadata: vec![equals("worker_id", json!("gpu-7"))], ..Default::default() }),
        ..Default::default()
    };
    assert_eq!(messages(&server.list_all(of_run).await), ["gpu-7 cycle 42", "gpu-7 cycle \"42\""]);
    let system_only = pb::ListLogsRequest {
        r#type: pb::LogType::System.into(),
        filter: Some(pb::LogFilter { metadata: vec![equals("worker_id", json!("gpu-7"))], ..Default::default() }),
        ..Default::default()
    };
    assert_eq!(messages(&server.list_all(system_only).await), ["scheduler"]);
}

async fn sets_and_searches_narrow_across_runs(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (first, second, third) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let (task_a, task_b) = (Uuid::now_v7(), Uuid::now_v7());
    let log = |base: pb::LogEntry, level: pb::LogLevel, stream: pb::LogStream, source: &str| pb::LogEntry {
        level: level.into(),
        stream: stream.into(),
        source: source.into(),
        ..base
    };
    use pb::{LogLevel as L, LogStream as S};
    let jobs = vec![
        log(job_entry(first, "Build STARTED"), L::Info, S::Stdout, "builder"),
        log(job_entry(second, "disk almost full"), L::Warn, S::Stderr, "monitor"),
        with_metadata(
            log(job_entry(third, "request failed"), L::Error, S::Stderr, "api"),
            json!({"error": "upstream Timeout after 30s", "attempt": 3}),
        ),
    ];
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs: jobs }).await.expect("write");
    let tasks = vec![
        log(task_entry(first, task_a, "step one"), L::Debug, S::Stdout, "runner"),
        log(task_entry(second, task_a, "step one again"), L::Info, S::Stdout, "runner"),
        log(task_entry(second, task_b, "other task"), L::Fatal, S::Stderr, "runner"),
    ];
    server.task().write_task_logs(pb::WriteTaskLogsRequest { logs: tasks }).await.expect("write");

    let sorted = |logs: Vec<pb::Log>| {
        let mut found: Vec<String> = logs.into_iter().map(|log| log.message).collect();
        found.sort();
        found
    };
    let find = |filter: pb::LogFilter| {
        let server = &server;
        async move { sorted(server.list_all(filtered(filter)).await) }
    };
    let ids = |runs: &[Uuid]| runs.iter().map(Uuid::to_string).collect::<Vec<_>>();
    let two_runs = pb::LogFilter {
        job_run_ids: ids(&[first, second]),
        types: vec![pb::LogType::Job.into()],
        ..Default::default()
    };
    assert_eq!(find(two_runs).await, ["Build STARTED", "disk almost full"]);
    // A task run traced across the job runs it appears in.
    let trace = pb::LogFilter { task_run_ids: ids(&[task_a]), ..Default::default() };
    assert_eq!(find(trace).await, ["step one", "step one again"]);
    let levels = pb::LogFilter { levels: vec![L::Warn.into(), L::Fatal.into()], ..Default::default() };
    assert_eq!(find(levels).await, ["disk almost full", "other task"]);
    let min_and_set = pb::LogFilter {
        min_level: L::Error.into(),
        levels: vec![L::Info.into(), L::Fatal.into()],
        ..Default::default()
    };
    assert_eq!(find(min_and_set).await, ["other task"]);
    let streams_and_sources = pb::LogFilter {
        streams: vec![S::Stderr.into()],
        sources: vec!["api".into(), "runner".into()],
        ..Default::default()
    };
    assert_eq!(find(streams_and_sources).await, ["other task", "request failed"]);
    let exact_case = pb::LogFilter { text: "started".into(), ..Default::default() };
    assert_eq!(find(exact_case).await, Vec::<String>::new());
    let any_case = pb::LogFilter { text: "started".into(), ignore_case: true, ..Default::default() };
    assert_eq!(find(any_case).await, ["Build STARTED"]);
    let in_metadata =
        pb::LogFilter { text: "timeout".into(), ignore_case: true, include_metadata: true, ..Default::default() };
    assert_eq!(find(in_metadata).await, ["request failed"]);
    let number_in_metadata = pb::LogFilter { text: "3".into(), include_metadata: true, ..Default::default() };
    assert_eq!(find(number_in_metadata).await, ["request failed"]);
    let messages_only = pb::LogFilter { text: "Timeout".into(), ..Default::default() };
    assert_eq!(find(messages_only).await, Vec::<String>::new());
}

async fn filtered_pages_never_repeat_or_skip(backend: Backend) {
    let server = TestServer::start(backend).await;
    let runs: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    for (index, run) in runs.iter().enumerate() {
        let logs = (0..20)
            .map(|line| {
                with_metadata(
                    job_entry(*run, &format!("run {index} line {line}")),
                    json!({"worker_id": format!("gpu-{}", line % 3), "line": line}),
                )
            })
            .collect();
        server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    }
    let filter = pb::LogFilter { metadata: vec![equals("worker_id", json!("gpu-1"))], ..Default::default() };
    let request = pb::ListLogsRequest { page_size: 4, ..filtered(filter.clone()) };
    let logs = server.list_all(request.clone()).await;
    let mut expected: Vec<String> = (0..5)
        .flat_map(|index| (0..20).filter(|line| line % 3 == 1).map(move |line| format!("run {index} line {line}")))
        .collect();
    let mut found: Vec<String> = logs.iter().map(|log| log.message.clone()).collect();
    assert_eq!(found.len(), expected.len(), "every matching log once");
    found.sort();
    expected.sort();
    assert_eq!(found, expected);

    // A page token belongs to its filter: another filter refuses it.
    let first = server.query().list_logs(request.clone()).await.expect("first page").into_inner();
    let other = pb::LogFilter { metadata: vec![equals("worker_id", json!("gpu-2"))], ..filter };
    let mixed = pb::ListLogsRequest { page_token: first.next_page_token, filter: Some(other), ..request };
    assert_invalid(server.query().list_logs(mixed).await, &["page_token"]);
}

async fn bad_filters_name_the_field_and_bound(backend: Backend) {
    let server = TestServer::start(backend).await;
    let list = |request: pb::ListLogsRequest| {
        let mut query = server.query();
        async move { query.list_logs(request).await }
    };
    let refused = |filter: pb::LogFilter, fields: &'static [&'static str]| {
        let list = &list;
        async move { assert_invalid(list(filtered(filter)).await, fields) }
    };
    refused(pb::LogFilter { metadata: vec![exists("", true)], ..Default::default() }, &["filter.metadata[0].key"])
        .await;
    refused(
        pb::LogFilter { metadata: vec![exists(&"k".repeat(257), true)], ..Default::default() },
        &["filter.metadata[0].key"],
    )
    .await;
    refused(
        pb::LogFilter { metadata: vec![equals("worker", json!({"a": 1}))], ..Default::default() },
        &["filter.metadata[0].equals"],
    )
    .await;
    refused(
        pb::LogFilter { metadata: vec![equals("worker", json!(null))], ..Default::default() },
        &["filter.metadata[0].equals"],
    )
    .await;
    refused(
        pb::LogFilter { metadata: vec![one_of("cycle", Vec::new())], ..Default::default() },
        &["filter.metadata[0].one_of"],
    )
    .await;
    refused(
        pb::LogFilter { metadata: vec![one_of("cycle", (0..101).map(|n| json!(n)).collect())], ..Default::default() },
        &["filter.metadata[0].one_of"],
    )
    .await;
    let no_condition = pb::MetadataCondition { key: "stage".into(), condition: None };
    refused(pb::LogFilter { metadata: vec![no_condition], ..Default::default() }, &["filter.metadata[0]"]).await;
    let too_many = (0..17).map(|index| exists(&format!("k{index}"), true)).collect();
    refused(pb::LogFilter { metadata: too_many, ..Default::default() }, &["filter.metadata"]).await;
    let many_runs = (0..101).map(|_| Uuid::now_v7().to_string()).collect();
    refused(pb::LogFilter { job_run_ids: many_runs, ..Default::default() }, &["filter.job_run_ids"]).await;
    refused(pb::LogFilter { job_run_ids: vec!["x".into()], ..Default::default() }, &["filter.job_run_ids[0]"]).await;
    refused(pb::LogFilter { levels: vec![0], ..Default::default() }, &["filter.levels[0]"]).await;
    refused(pb::LogFilter { streams: vec![9], ..Default::default() }, &["filter.streams[0]"]).await;
    refused(
        pb::LogFilter {
            min_level: pb::LogLevel::Error.into(),
            levels: vec![pb::LogLevel::Info.into()],
            ..Default::default()
        },
        &["filter.levels"],
    )
    .await;
    refused(pb::LogFilter { ignore_case: true, ..Default::default() }, &["filter.text"]).await;
    refused(
        pb::LogFilter {
            types: vec![pb::LogType::System.into()],
            streams: vec![pb::LogStream::Stdout.into()],
            ..Default::default()
        },
        &["filter.streams"],
    )
    .await;

    // The top-level shorthands and the filter must not contradict each other.
    let run = Uuid::now_v7().to_string();
    let other_run = pb::ListLogsRequest {
        job_run_id: run,
        filter: Some(pb::LogFilter { job_run_ids: vec![Uuid::now_v7().to_string()], ..Default::default() }),
        ..Default::default()
    };
    assert_invalid(list(other_run).await, &["filter.job_run_ids"]);
    let two_searches = pb::ListLogsRequest {
        message_contains: "a".into(),
        filter: Some(pb::LogFilter { text: "b".into(), ..Default::default() }),
        ..Default::default()
    };
    assert_invalid(list(two_searches).await, &["filter.text"]);
    let system_stream = pb::ListLogsRequest {
        r#type: pb::LogType::System.into(),
        filter: Some(pb::LogFilter { streams: vec![pb::LogStream::Stderr.into()], ..Default::default() }),
        ..Default::default()
    };
    assert_invalid(list(system_stream).await, &["filter.streams"]);
}

/// The plans of the indexed reads, read with EXPLAIN on a filled database:
/// a schema change that turned one into a scan fails here. On SQLite the
/// metadata key is declared for indexing, as an operator would.
async fn indexed_reads_use_their_indexes(backend: Backend) {
    const RUNS: usize = 50;
    const LOGS_PER_RUN: usize = 400;
    let server = TestServer::start(backend).await;
    let runs: Vec<Uuid> = (0..RUNS).map(|_| Uuid::now_v7()).collect();
    let task = Uuid::now_v7();
    for (index, run) in runs.iter().enumerate() {
        let logs: Vec<pb::LogEntry> = (0..LOGS_PER_RUN)
            .map(|line| {
                let log = if line % 4 == 0 { task_entry(*run, task, "step") } else { job_entry(*run, "line") };
                // Run i wrote i hours ago: "the last hour" is one run of fifty.
                let time = Utc::now() - Duration::hours(index as i64) + Duration::milliseconds(line as i64);
                pb::LogEntry {
                    level: if line % 100 == 0 { pb::LogLevel::Error.into() } else { pb::LogLevel::Info.into() },
                    time: Some(prost_types::Timestamp { seconds: time.timestamp(), nanos: 0 }),
                    ..with_metadata(log, json!({"worker_id": format!("gpu-{index}"), "line": line}))
                }
            })
            .collect();
        let (jobs, tasks): (Vec<_>, Vec<_>) =
            logs.into_iter().partition(|log: &pb::LogEntry| log.task_run_id.is_empty());
        server.job().write_job_logs(pb::WriteJobLogsRequest { logs: jobs }).await.expect("write");
        server.task().write_task_logs(pb::WriteTaskLogsRequest { logs: tasks }).await.expect("write");
    }
    // Enough system logs that an index beats a sort (PostgreSQL's system
    // partition holds nothing else).
    let system_logs = (0..1_000).map(|_| entry("up")).collect();
    server.system().write_system_logs(pb::WriteSystemLogsRequest { logs: system_logs }).await.expect("write");
    server.database.execute_raw("ANALYZE").await.expect("analyze");
    let store = match backend {
        Backend::Postgres => server.store.clone(),
        Backend::Sqlite => {
            let options =
                logwell::store::ConnectOptions { metadata_index_keys: vec!["worker_id".into()], ..connect_options() };
            logwell::store::connect(&server.database.url, &options, Hub::new())
                .await
                .expect("reopen with the key indexed")
        }
    };
    let page = |filter: LogFilter, order: SortOrder| LogQuery { filter, order, after: None, limit: 101 };
    // PostgreSQL reads its day partitions' copies of each index, named
    // after the partition and the columns (logs_20261126_job_job_run_id_seq_idx).
    let (run_index, task_index, system_index, time_index, metadata_index) = match backend {
        Backend::Sqlite => (
            "logs_run_seq",
            "logs_task_run_seq",
            "logs_system_seq",
            "logs_event_time",
            format!("logs_metadata_{}", hex("worker_id")),
        ),
        Backend::Postgres => (
            "_job_job_run_id_seq_idx",
            "_task_task_run_id_job_run_id_seq_idx",
            "_system_seq_idx",
            "event_time_id_idx",
            "metadata_idx".to_string(),
        ),
    };
    let gpu_7 = MetadataCondition { key: "worker_id".into(), test: MetadataTest::Equals(json!("gpu-7")) };
    let cases = [
        ("a run's first page", page(LogFilter::sequence(Some(runs[3])), SortOrder::Ascending), run_index.to_string()),
        ("a run's last page", page(LogFilter::sequence(Some(runs[3])), SortOrder::Descending), run_index.to_string()),
        (
            "a task run",
            page(LogFilter { task_run_ids: vec![task], ..LogFilter::default() }, SortOrder::Ascending),
            task_index.to_string(),
        ),
        ("the system logs", page(LogFilter::sequence(None), SortOrder::Ascending), system_index.to_string()),
        (
            "errors across runs in the last hour",
            page(
                LogFilter {
                    levels: vec![Level::Error, Level::Fatal],
                    start_time: Some(Utc::now() - Duration::hours(1)),
                    ..LogFilter::default()
                },
                SortOrder::Descending,
            ),
            time_index.to_string(),
        ),
        (
            "a metadata value across runs",
            page(LogFilter { metadata: vec![gpu_7], ..LogFilter::default() }, SortOrder::Ascending),
            metadata_index,
        ),
    ];
    let metadata_query = cases[5].1.clone();
    for (what, query, index) in cases {
        let plan = store.plan(&query).await.expect("plan");
        assert!(plan.contains(&index), "{what} should read {index}; the plan:\n{plan}");
        let found = store.list(&query).await.expect("list");
        assert!(!found.is_empty(), "{what} finds logs");
    }
    if backend == Backend::Sqlite {
        // A key no longer declared loses its index, and still filters.
        let indexed = store.list(&metadata_query).await.expect("list");
        store.close().await;
        let store =
            logwell::store::connect(&server.database.url, &connect_options(), Hub::new()).await.expect("reopen");
        let plan = store.plan(&metadata_query).await.expect("plan");
        assert!(!plan.contains("logs_metadata_"), "the index is gone: {plan}");
        assert_eq!(store.list(&metadata_query).await.expect("list"), indexed);
    }
}

fn hex(key: &str) -> String {
    key.bytes().map(|byte| format!("{byte:02x}")).collect()
}

/// A read that no index serves, over many logs, on a server whose query
/// timeout is tiny: DEADLINE_EXCEEDED saying what to do, and the server
/// goes on (reads that an index serves finish far below the default 10 s;
/// under 1 ms they cannot be promised on a loaded machine).
async fn a_read_past_the_query_timeout_is_stopped_clearly(backend: Backend) {
    use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
    use logwell::proto::v1::log_query_service_client::LogQueryServiceClient;
    let database = TestDatabase::create(backend).await;
    let (mut server, address, _log) = start_serving_with(&database.url, &["--query-timeout", "1ms"], &[]).await;
    let mut writer = JobLogServiceClient::connect(address.clone()).await.expect("connect");
    let run = Uuid::now_v7();
    for batch in 0..20 {
        let logs = (0..1_000)
            .map(|line| with_metadata(job_entry(run, &format!("batch {batch} line {line}")), json!({"line": line})))
            .collect();
        writer.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    }
    let mut query = LogQueryServiceClient::connect(address).await.expect("connect");
    let scan = filtered(pb::LogFilter { text: "no such text".into(), include_metadata: true, ..Default::default() });
    let status = query.list_logs(scan).await.expect_err("a scan of 20,000 logs takes longer than 1 ms");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("narrow it"), "{}", status.message());
    let after = writer.write_job_logs(pb::WriteJobLogsRequest { logs: vec![job_entry(run, "after")] }).await;
    assert_eq!(after.expect("the server goes on").into_inner().receipts[0].seq, 20_001);
    send_signal(&server, "TERM").await;
    assert!(server.wait().await.expect("wait").success());
}
