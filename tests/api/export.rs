//! ExportLogs: a whole run in chunks, exactly once and in order; resuming
//! from a cursor after a dropped stream; an export across runs matching the
//! listing; messages kept near 1 MiB; refused requests.

use logwell::proto::v1::{self as pb};
use prost::Message;
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestServer, assert_invalid, job_entry};

conformance!(
    an_export_reads_one_snapshot,
    an_export_streams_a_run_once_and_resumes_from_a_cursor,
    an_export_keeps_messages_small,
    bad_exports_name_the_field
);

async fn write_run(server: &TestServer, run: Uuid, logs: usize) {
    for start in (0..logs).step_by(1_000) {
        let batch = (start..logs.min(start + 1_000)).map(|line| job_entry(run, &format!("line {line}"))).collect();
        server.job().write_job_logs(pb::WriteJobLogsRequest { logs: batch }).await.expect("write");
    }
}

fn of_run(run: Uuid) -> Option<pb::LogFilter> {
    Some(pb::LogFilter { job_run_ids: vec![run.to_string()], ..Default::default() })
}

async fn an_export_streams_a_run_once_and_resumes_from_a_cursor(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (run, other) = (Uuid::now_v7(), Uuid::now_v7());
    write_run(&server, run, 2_500).await;
    write_run(&server, other, 300).await;
    let request = pb::ExportLogsRequest { filter: of_run(run), chunk_size: 1_000, ..Default::default() };
    let mut stream = server.query().export_logs(request.clone()).await.expect("export").into_inner();
    let mut seqs = Vec::new();
    let mut sizes = Vec::new();
    while let Some(message) = stream.message().await.expect("message") {
        sizes.push(message.logs.len());
        seqs.extend(message.logs.iter().map(|log| log.seq));
    }
    assert_eq!(sizes, [1_000, 1_000, 500]);
    assert_eq!(seqs, (1..=2_500).collect::<Vec<i64>>(), "every log of the run once, in seq order");

    // A reader that drops the stream after the first message resumes with its cursor.
    let mut stream = server.query().export_logs(request.clone()).await.expect("export").into_inner();
    let first = stream.message().await.expect("message").expect("a first message");
    drop(stream);
    let resumed = pb::ExportLogsRequest { cursor: first.cursor, ..request };
    let mut stream = server.query().export_logs(resumed).await.expect("resume").into_inner();
    let mut rest = Vec::new();
    while let Some(message) = stream.message().await.expect("message") {
        rest.extend(message.logs.iter().map(|log| log.seq));
    }
    assert_eq!(rest, (1_001..=2_500).collect::<Vec<i64>>());

    // Across runs (event-time order) an export holds what the listing holds.
    let everything = pb::ExportLogsRequest { chunk_size: 700, ..Default::default() };
    let mut stream = server.query().export_logs(everything).await.expect("export").into_inner();
    let mut exported = Vec::new();
    while let Some(message) = stream.message().await.expect("message") {
        exported.extend(message.logs.into_iter().map(|log| log.id));
    }
    let listed: Vec<String> = server
        .list_all(pb::ListLogsRequest { page_size: 1_000, ..Default::default() })
        .await
        .into_iter()
        .map(|log| log.id)
        .collect();
    assert_eq!(exported.len(), 2_800);
    assert_eq!(exported, listed);
}

/// Logs committed while an export across runs is under way, with times
/// that sort after its cursor, are not in it: it reads what the database
/// held when it began.
async fn an_export_reads_one_snapshot(backend: Backend) {
    let server = TestServer::start(backend).await;
    let at = |seconds: i64| Some(prost_types::Timestamp { seconds: 1_795_996_800 + seconds, nanos: 0 });
    // Messages of about 10 KiB: HTTP/2 flow control keeps the server a few
    // messages ahead of the reader, mid-export when the new logs commit.
    let padding = "x".repeat(1_000);
    let timed =
        |run, seconds, label: &str| pb::LogEntry { time: at(seconds), ..job_entry(run, &format!("{label} {padding}")) };
    let before: Vec<pb::LogEntry> = (0..1_000).map(|second| timed(Uuid::now_v7(), second, "before")).collect();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs: before }).await.expect("write");
    let request = pb::ExportLogsRequest { chunk_size: 10, ..Default::default() };
    let mut stream = server.query().export_logs(request).await.expect("export").into_inner();
    let mut messages: Vec<String> = Vec::new();
    let first = stream.message().await.expect("message").expect("a first chunk");
    messages.extend(first.logs.into_iter().map(|log| log.message));
    let during: Vec<pb::LogEntry> = (2_000..2_005).map(|second| timed(Uuid::now_v7(), second, "during")).collect();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs: during }).await.expect("write");
    while let Some(message) = stream.message().await.expect("message") {
        messages.extend(message.logs.into_iter().map(|log| log.message));
    }
    assert_eq!(messages.len(), 1_000, "only what the database held when the export began");
    assert!(messages.iter().all(|message| message.starts_with("before")));
}

async fn an_export_keeps_messages_small(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let big = "x".repeat(60_000);
    let logs: Vec<pb::LogEntry> = (0..40).map(|_| job_entry(run, &big)).collect();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    let request = pb::ExportLogsRequest { filter: of_run(run), ..Default::default() };
    let mut stream = server.query().export_logs(request).await.expect("export").into_inner();
    let (mut messages, mut logs) = (0, 0);
    while let Some(message) = stream.message().await.expect("message") {
        assert!(message.encoded_len() < 1_100_000, "a message of {} bytes", message.encoded_len());
        messages += 1;
        logs += message.logs.len();
    }
    assert_eq!(logs, 40);
    assert!(messages >= 3, "2.4 MB of logs in {messages} messages");
}

async fn bad_exports_name_the_field(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    write_run(&server, run, 3).await;
    let mut query = server.query();
    let too_big = pb::ExportLogsRequest { chunk_size: 10_001, ..Default::default() };
    assert_invalid(query.export_logs(too_big).await, &["chunk_size"]);
    let garbage = pb::ExportLogsRequest { cursor: "not-a-cursor".into(), ..Default::default() };
    assert_invalid(query.export_logs(garbage).await, &["cursor"]);
    let request = pb::ExportLogsRequest { filter: of_run(run), chunk_size: 1, ..Default::default() };
    let mut stream = query.export_logs(request).await.expect("export").into_inner();
    let cursor = stream.message().await.expect("message").expect("first").cursor;
    drop(stream);
    let elsewhere = pb::ExportLogsRequest { filter: of_run(Uuid::now_v7()), cursor, ..Default::default() };
    assert_invalid(query.export_logs(elsewhere).await, &["cursor"]);
    let bad_filter = pb::ExportLogsRequest {
        filter: Some(pb::LogFilter { levels: vec![0], ..Default::default() }),
        ..Default::default()
    };
    assert_invalid(query.export_logs(bad_filter).await, &["filter.levels[0]"]);
}
