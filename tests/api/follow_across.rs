//! FollowLogs: every log matching a filter across runs, exactly once, in
//! commit order, resumable by cursor on any replica; bounds and bad input.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use std::sync::Arc;

use logwell::model::{LogFilter, RetentionPolicy};
use logwell::proto::v1::follow_logs_request::Start;
use logwell::proto::v1::follow_logs_response::Event;
use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::log_stream_service_client::LogStreamServiceClient;
use logwell::proto::v1::{self as pb};
use logwell::retention::{Retention, RetentionSettings};
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestServer, assert_invalid, entry, job_entry, task_entry};
use crate::streams::{FOLLOWS_RUNTIME_TASKS, wait_for_metric};

conformance!(
    a_filtered_follow_across_runs_resumes_exactly_at_its_cursor,
    heartbeats_carry_a_cursor_past_skipped_logs,
    a_cursor_older_than_retention_is_told_so,
    a_follow_from_a_time_starts_with_the_logs_received_then,
    the_shared_tail_decides_filters_as_the_database_does,
    a_commit_mark_lies_before_every_log_received_after_it_and_retention_prunes_them,
    bad_follows_across_runs_name_the_field,
    followers_across_runs_are_bounded_and_leave_nothing_behind,
    thousands_of_follows_across_runs_opened_and_cancelled_leave_nothing_behind,
    a_follower_behind_the_shared_tail_misses_nothing,
    every_follower_across_runs_sees_exactly_the_committed_logs,
);

fn follow(filter: pb::LogFilter, start: Start) -> pb::FollowLogsRequest {
    pb::FollowLogsRequest { filter: Some(filter), start: Some(start) }
}

/// A log as a follower across runs received it.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    log: pb::Log,
    cursor: String,
}

/// Reads `stream` until it has `count` logs (heartbeats pass by), within
/// a minute however many heartbeats come; the cursor of the last message
/// read, log or heartbeat, comes back too.
async fn read_logs(
    stream: &mut tonic::Streaming<pb::FollowLogsResponse>,
    count: usize,
) -> (Vec<Received>, Option<String>) {
    let (mut logs, mut cursor) = (Vec::new(), None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while logs.len() < count {
        let Ok(message) = tokio::time::timeout_at(deadline, stream.message()).await else {
            panic!("{} of {count} logs came within a minute: {logs:?}", logs.len());
        };
        match message.expect("stream failed").and_then(|response| response.event) {
            Some(Event::Log(followed)) => {
                cursor = Some(followed.cursor.clone());
                logs.push(Received { log: followed.log.expect("a log"), cursor: followed.cursor });
            }
            Some(Event::Heartbeat(heartbeat)) => cursor = Some(heartbeat.cursor),
            Some(Event::Expired(expired)) => panic!("unexpected {expired:?}"),
            None => panic!("the stream ended"),
        }
    }
    (logs, cursor)
}

/// The next heartbeat's cursor, asserting no log comes first.
async fn next_heartbeat(stream: &mut tonic::Streaming<pb::FollowLogsResponse>) -> String {
    let message = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.expect("a heartbeat");
    match message.expect("stream failed").and_then(|response| response.event) {
        Some(Event::Heartbeat(heartbeat)) => heartbeat.cursor,
        other => panic!("expected a heartbeat, got {other:?}"),
    }
}

fn at(level: pb::LogLevel, mut log: pb::LogEntry) -> pb::LogEntry {
    log.level = level.into();
    log
}

async fn a_filtered_follow_across_runs_resumes_exactly_at_its_cursor(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let before = job_entry(first, "before the follow");
    server.job().write_job_log(pb::WriteJobLogRequest { log: Some(at(pb::LogLevel::Error, before)) }).await.expect("w");
    let warnings = pb::LogFilter { min_level: pb::LogLevel::Warn.into(), ..Default::default() };
    let mut stream = client_stream(&server, follow(warnings.clone(), Start::FromNow(true))).await;
    next_heartbeat(&mut stream).await;

    // Logs of every type, in two runs, some below the filter.
    let writes: Vec<(pb::LogLevel, &str)> = vec![
        (pb::LogLevel::Warn, "system warn"),
        (pb::LogLevel::Info, "job info"),
        (pb::LogLevel::Error, "job error"),
        (pb::LogLevel::Fatal, "task fatal"),
        (pb::LogLevel::Debug, "task debug"),
        (pb::LogLevel::Warn, "second run warn"),
    ];
    for (index, (level, message)) in writes.iter().enumerate() {
        let task = Uuid::now_v7();
        match index {
            0 => {
                let log = Some(at(*level, entry(message)));
                server.system().write_system_log(pb::WriteSystemLogRequest { log }).await.expect("system");
            }
            1 | 2 => {
                let log = Some(at(*level, job_entry(first, message)));
                server.job().write_job_log(pb::WriteJobLogRequest { log }).await.expect("job");
            }
            3 | 4 => {
                let log = Some(at(*level, task_entry(first, task, message)));
                server.task().write_task_log(pb::WriteTaskLogRequest { log }).await.expect("task");
            }
            _ => {
                let log = Some(at(*level, job_entry(second, message)));
                server.job().write_job_log(pb::WriteJobLogRequest { log }).await.expect("job");
            }
        }
    }
    let (received, _) = read_logs(&mut stream, 4).await;
    let messages: Vec<&str> = received.iter().map(|received| received.log.message.as_str()).collect();
    assert_eq!(messages, ["system warn", "job error", "task fatal", "second run warn"], "in commit order");

    // Resuming after the second log delivers exactly the rest, with the
    // same cursors, and nothing from before the follow started.
    let resumed = follow(warnings.clone(), Start::AfterCursor(received[1].cursor.clone()));
    let mut again = client_stream(&server, resumed).await;
    let (rest, _) = read_logs(&mut again, 2).await;
    assert_eq!(rest, received[2..], "the same logs, at the same cursors");
    next_heartbeat(&mut again).await;

    // From the start: every stored warning, the one before the follow first.
    let mut everything = client_stream(&server, follow(warnings.clone(), Start::FromStart(true))).await;
    let (all, _) = read_logs(&mut everything, 5).await;
    assert_eq!(all[0].log.message, "before the follow");
    assert_eq!(all[1..], received[..]);
    // Its heartbeat's cursor is past them all: resuming there, nothing.
    let cursor = next_heartbeat(&mut everything).await;
    let mut after_heartbeat = client_stream(&server, follow(warnings, Start::AfterCursor(cursor))).await;
    next_heartbeat(&mut after_heartbeat).await;
}

fn timestamp(time: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 }
}

async fn a_follow_from_a_time_starts_with_the_logs_received_then(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let write = async |message: &str| {
        let log = Some(job_entry(run, message));
        server.job().write_job_log(pb::WriteJobLogRequest { log }).await.expect("write");
    };
    write("before").await;
    let from = chrono::Utc::now();
    write("after").await;
    let log = Some(entry("system after"));
    server.system().write_system_log(pb::WriteSystemLogRequest { log }).await.expect("system");

    // The logs received since the time, then live ones.
    let everything = pb::LogFilter::default();
    let mut stream = client_stream(&server, follow(everything.clone(), Start::FromTime(timestamp(from)))).await;
    let (received, _) = read_logs(&mut stream, 2).await;
    let messages: Vec<&str> = received.iter().map(|received| received.log.message.as_str()).collect();
    assert_eq!(messages, ["after", "system after"]);
    write("live").await;
    let (live, _) = read_logs(&mut stream, 1).await;
    assert_eq!(live[0].log.message, "live");
    next_heartbeat(&mut stream).await;

    // From before the first mark (taken when the database was made): from
    // the first log, each once.
    let long_ago = chrono::DateTime::from_timestamp(946_684_800, 0).expect("2000-01-01");
    let mut all = client_stream(&server, follow(everything.clone(), Start::FromTime(timestamp(long_ago)))).await;
    let (received, _) = read_logs(&mut all, 4).await;
    let messages: Vec<&str> = received.iter().map(|received| received.log.message.as_str()).collect();
    assert_eq!(messages, ["before", "after", "system after", "live"]);
    next_heartbeat(&mut all).await;

    // The follow starts at the last mark before the time: one planted
    // here, past every log and older than the time, makes it skip them.
    let planted = (from - chrono::TimeDelta::minutes(1)).timestamp_micros();
    let mark = match backend {
        Backend::Sqlite => format!("INSERT INTO commit_marks (at, position) VALUES ({planted}, 1000000000000)"),
        Backend::Postgres => {
            format!("INSERT INTO commit_marks (at, position) VALUES (to_timestamp({planted} / 1e6), 1000000000000)")
        }
    };
    server.database.execute_raw(&mark).await.expect("plant a mark");
    let mut skipping = client_stream(&server, follow(everything, Start::FromTime(timestamp(from)))).await;
    next_heartbeat(&mut skipping).await;
}

async fn a_commit_mark_lies_before_every_log_received_after_it_and_retention_prunes_them(backend: Backend) {
    let server = TestServer::start(backend).await;
    let store = &server.store;
    let run = Uuid::now_v7();
    let write = async |message: &str| {
        let log = Some(job_entry(run, message));
        server.job().write_job_log(pb::WriteJobLogRequest { log }).await.expect("write");
    };
    write("before the mark").await;
    let unmarked = chrono::Utc::now();
    store.mark_commit_order().await.expect("mark");
    let marked = chrono::Utc::now();
    write("after the mark").await;
    let mark = store.commit_mark(marked).await.expect("read the mark").expect("a mark");
    let page = store.read_committed(&LogFilter::default(), mark, 10).await.expect("read");
    let messages: Vec<&str> = page.logs.iter().map(|(_, log)| log.message.as_str()).collect();
    assert_eq!(messages, ["after the mark"], "the mark is past the log before it, before the one after");

    // A pass that finds every type past its limit keeps only the last
    // mark before the limit (this one, or the server's own if it marked
    // since): a follow from earlier starts there.
    let limit = Some(chrono::TimeDelta::hours(1));
    let policy = RetentionPolicy { system: limit, job: limit, task: limit };
    let settings = RetentionSettings { policy, interval: Duration::from_secs(3600), batch_logs: 100 };
    let later = marked + chrono::TimeDelta::hours(2);
    Retention::new(store.clone(), settings, Arc::default()).pass(later).await.expect("pass");
    let kept = store.commit_mark(later).await.expect("read").expect("the last mark stays");
    assert!(kept >= mark);
    assert_eq!(store.commit_mark(unmarked).await.expect("read"), None, "the earlier marks went");
}

/// Followers across runs match the shared tail in memory: for texts and
/// metadata conditions that only typed, exact comparison tells apart, they
/// get exactly what ListLogs (the database) returns; live, and from the
/// start (read from storage).
async fn the_shared_tail_decides_filters_as_the_database_does(backend: Backend) {
    use crate::filters::{equals, exists, one_of, with_metadata};
    use serde_json::json;
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let texts = |text: &str, ignore_case: bool| pb::LogFilter { text: text.into(), ignore_case, ..Default::default() };
    let conditions = |metadata: Vec<pb::MetadataCondition>| pb::LogFilter { metadata, ..Default::default() };
    let mut filters = vec![
        texts("rger", false),
        texts("ÄR", false),
        texts("Straße", false),
        conditions(vec![equals("v", json!(42))]),
        conditions(vec![equals("v", json!(42.5))]),
        conditions(vec![equals("v", json!("42"))]),
        conditions(vec![equals("v", json!(true))]),
        conditions(vec![equals("v", json!(1))]),
        conditions(vec![one_of("v", vec![json!(false), json!(0)])]),
        conditions(vec![exists("v", true)]),
        conditions(vec![exists("v", false)]),
        conditions(vec![equals("v", json!("Ä"))]),
        conditions(vec![equals("dotted.key", json!("x"))]),
        conditions(vec![exists("v", true), equals("w", json!(42))]),
    ];
    // Where the database folds letters as logwell can (ASCII only).
    if server.store.case_folding() == logwell::model::CaseFolding::Ascii {
        filters.extend([texts("error", true), texts("k", true), texts("ärger", true), texts("STRASSE", true)]);
    }
    let in_run = |filter: &pb::LogFilter| pb::LogFilter { job_run_ids: vec![run.to_string()], ..filter.clone() };
    let mut live = Vec::new();
    for filter in &filters {
        let mut stream = client_stream(&server, follow(in_run(filter), Start::FromNow(true))).await;
        next_heartbeat(&mut stream).await;
        live.push(stream);
    }

    let corpus = [
        ("Straße", json!({"v": 42, "w": 42})),
        ("STRASSE", json!({"v": 42.5})),
        ("ÄRGER", json!({"v": "42", "w": 42.0})),
        ("ärger", json!({"v": true})),
        ("Kelvin \u{212A}", json!({"v": false})),
        ("an error", json!({"v": 1})),
        ("an Error", json!({"v": 0})),
        ("ERROR", json!({"v": null})),
        ("a list", json!({"v": [42]})),
        ("an object", json!({"v": {"a": 42}})),
        ("Ä in metadata", json!({"v": "Ä"})),
        ("ä in metadata", json!({"v": "ä"})),
        ("a dotted key", json!({"dotted.key": "x"})),
        ("nothing", json!({})),
    ];
    let logs =
        corpus.iter().map(|(message, metadata)| with_metadata(job_entry(run, message), metadata.clone())).collect();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");

    for (filter, stream) in filters.iter().zip(&mut live) {
        let request = pb::ListLogsRequest { filter: Some(in_run(filter)), page_size: 100, ..Default::default() };
        let listed = server.query().list_logs(request).await.expect("list").into_inner().logs;
        let messages = |logs: &[Received]| logs.iter().map(|received| received.log.message.clone()).collect::<Vec<_>>();
        let expected: Vec<String> = listed.iter().map(|log| log.message.clone()).collect();
        let (followed, _) = read_logs(stream, listed.len()).await;
        assert_eq!(messages(&followed), expected, "live, {filter:?}");
        next_heartbeat(stream).await;
        let mut from_start = client_stream(&server, follow(in_run(filter), Start::FromStart(true))).await;
        let (stored, _) = read_logs(&mut from_start, listed.len()).await;
        assert_eq!(messages(&stored), expected, "from the start, {filter:?}");
        next_heartbeat(&mut from_start).await;
    }
}

async fn heartbeats_carry_a_cursor_past_skipped_logs(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let errors = pb::LogFilter { levels: vec![pb::LogLevel::Error.into()], ..Default::default() };
    let mut stream = client_stream(&server, follow(errors, Start::FromNow(true))).await;
    let logs = (0..20).map(|index| job_entry(run, &format!("info {index}"))).collect();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    // The second heartbeat after the write comes after the follower read
    // past the skipped logs: a follow of everything from its cursor starts
    // after them.
    next_heartbeat(&mut stream).await;
    let cursor = next_heartbeat(&mut stream).await;
    let log = Some(at(pb::LogLevel::Error, job_entry(run, "the error")));
    server.job().write_job_log(pb::WriteJobLogRequest { log }).await.expect("write");
    let mut everything = client_stream(&server, follow(pb::LogFilter::default(), Start::AfterCursor(cursor))).await;
    let (received, _) = read_logs(&mut everything, 1).await;
    assert_eq!(received[0].log.message, "the error", "the infos were passed");
    let (live, _) = read_logs(&mut stream, 1).await;
    assert_eq!(live, received, "the live follower got the same log at the same cursor");
}

async fn a_cursor_older_than_retention_is_told_so(backend: Backend) {
    let mut settings = crate::helpers::test_settings();
    settings.retention.policy.task = Some(chrono::TimeDelta::hours(1));
    let server = TestServer::start_with(crate::helpers::TestDatabase::create(backend).await, settings).await;
    // The pass the server runs at start must be over before the logs are
    // aged, or it deletes them.
    crate::helpers::eventually("the first retention pass", Duration::from_secs(30), || async {
        (server.metric("logwell_retention_passes_total").await >= 1.0).then_some(())
    })
    .await;
    let (run, task) = (Uuid::now_v7(), Uuid::now_v7());
    for message in ["old task log", "newer task log"] {
        let log = Some(task_entry(run, task, message));
        server.task().write_task_log(pb::WriteTaskLogRequest { log }).await.expect("write");
    }
    server.job().write_job_log(pb::WriteJobLogRequest { log: Some(job_entry(run, "job log")) }).await.expect("write");
    // Received two hours ago, past the task logs' hour (the retention pass
    // ran at start and runs again in an hour: nothing is deleted).
    let two_hours_ago = match backend {
        Backend::Postgres => "UPDATE logs SET received_at = received_at - interval '2 hours'",
        Backend::Sqlite => "UPDATE logs SET received_at = received_at - 7200000000",
    };
    server.database.execute_raw(two_hours_ago).await.expect("age the logs");
    let mut everything = client_stream(&server, follow(pb::LogFilter::default(), Start::FromStart(true))).await;
    let (received, _) = read_logs(&mut everything, 3).await;

    let mut resumed =
        client_stream(&server, follow(pb::LogFilter::default(), Start::AfterCursor(received[0].cursor.clone()))).await;
    let first = tokio::time::timeout(Duration::from_secs(10), resumed.message()).await.expect("a first message");
    let first = first.expect("a message").and_then(|response| response.event);
    let Some(Event::Expired(expired)) = first else { panic!("expected the expiry first, got {first:?}") };
    assert_eq!(expired.r#type, pb::LogType::Task as i32);
    let before = expired.expired_before.expect("a time").seconds;
    let an_hour_ago = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).timestamp();
    assert!((before - an_hour_ago).abs() <= 5, "the task logs' limit: {before} against {an_hour_ago}");
    let (rest, _) = read_logs(&mut resumed, 2).await;
    assert_eq!(rest, received[1..], "the logs still stored follow");

    // Job logs are kept: a follow of them alone is told nothing.
    let jobs = pb::LogFilter { types: vec![pb::LogType::Job.into()], ..Default::default() };
    let mut job_logs = client_stream(&server, follow(jobs, Start::AfterCursor(received[0].cursor.clone()))).await;
    let (logs, _) = read_logs(&mut job_logs, 1).await;
    assert_eq!(logs[0].log.message, "job log");
}

async fn bad_follows_across_runs_name_the_field(backend: Backend) {
    let server = TestServer::start(backend).await;
    let bad_run = pb::LogFilter { job_run_ids: vec!["not-a-uuid".into()], ..Default::default() };
    assert_invalid(refusal(&server, follow(bad_run, Start::FromNow(true))).await, &["filter.job_run_ids[0]"]);
    let damaged = follow(pb::LogFilter::default(), Start::AfterCursor("AAAA-not-a-cursor".into()));
    assert_invalid(refusal(&server, damaged).await, &["after_cursor"]);
    // Filters only the database can decide: refused, not read from storage
    // at every commit.
    let in_metadata = pb::LogFilter { text: "gpu".into(), include_metadata: true, ..Default::default() };
    let status = refusal(&server, follow(in_metadata, Start::FromNow(true))).await;
    assert_invalid(status, &["filter.include_metadata"]);
    let any_case = pb::LogFilter { text: "gpu".into(), ignore_case: true, ..Default::default() };
    let status = refusal(&server, follow(any_case, Start::FromNow(true))).await;
    match server.store.case_folding() {
        logwell::model::CaseFolding::Ascii => status.expect("ASCII folding is decided in memory"),
        logwell::model::CaseFolding::Collation => assert_invalid(status, &["filter.ignore_case"]),
    }
    let no_time = prost_types::Timestamp { seconds: 0, nanos: -1 };
    assert_invalid(refusal(&server, follow(pb::LogFilter::default(), Start::FromTime(no_time))).await, &["from_time"]);

    // A cursor of this database, edited: refused as damaged.
    server.system().write_system_log(pb::WriteSystemLogRequest { log: Some(entry("one")) }).await.expect("write");
    let mut stream = client_stream(&server, follow(pb::LogFilter::default(), Start::FromStart(true))).await;
    let (received, _) = read_logs(&mut stream, 1).await;
    let mut edited = received[0].cursor.clone().into_bytes();
    let last = edited.len() - 3;
    edited[last] = if edited[last] == b'A' { b'B' } else { b'A' };
    let edited = follow(pb::LogFilter::default(), Start::AfterCursor(String::from_utf8(edited).expect("text")));
    let status = refusal(&server, edited).await.expect_err("refused");
    assert!(status.message().contains("edited or cut"), "{}", status.message());

    // A cursor of another database: refused as foreign.
    let other = TestServer::start(backend).await;
    other.system().write_system_log(pb::WriteSystemLogRequest { log: Some(entry("two")) }).await.expect("write");
    let mut elsewhere = client_stream(&other, follow(pb::LogFilter::default(), Start::FromStart(true))).await;
    let (foreign, _) = read_logs(&mut elsewhere, 1).await;
    let foreign = follow(pb::LogFilter::default(), Start::AfterCursor(foreign[0].cursor.clone()));
    let status = refusal(&server, foreign).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("another logwell database"), "{}", status.message());
}

/// The answer to opening a follow, without its stream.
async fn refusal(server: &TestServer, request: pb::FollowLogsRequest) -> Result<(), tonic::Status> {
    server.stream().follow_logs(request).await.map(|_| ())
}

async fn client_stream(
    server: &TestServer,
    request: pb::FollowLogsRequest,
) -> tonic::Streaming<pb::FollowLogsResponse> {
    server.stream().follow_logs(request).await.expect("follow").into_inner()
}

async fn followers_across_runs_are_bounded_and_leave_nothing_behind(backend: Backend) {
    let settings = logwell::server::ServerSettings { max_cross_run_followers: 3, ..crate::helpers::test_settings() };
    let database = crate::helpers::TestDatabase::create(backend).await;
    let server = TestServer::start_with(database, settings).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(client_stream(&server, follow(pb::LogFilter::default(), Start::FromNow(true))).await);
    }
    let status = server
        .stream()
        .follow_logs(follow(pb::LogFilter::default(), Start::FromNow(true)))
        .await
        .expect_err("a fourth is refused");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("--max-cross-run-followers"), "{}", status.message());
    wait_for_metric(&server, "logwell_cross_run_followers", 3.0).await;
    // Each follow's stream and its follow loop run on the follows runtime.
    let follow_tasks = server.metric(FOLLOWS_RUNTIME_TASKS).await;
    assert!(follow_tasks >= 6.0, "{follow_tasks} tasks on the follows runtime for 3 follows");
    drop(held);
    wait_for_metric(&server, "logwell_cross_run_followers", 0.0).await;
    wait_for_metric(&server, FOLLOWS_RUNTIME_TASKS, 0.0).await;

    let _ = client_stream(&server, follow(pb::LogFilter::default(), Start::FromNow(true))).await;
}

async fn thousands_of_follows_across_runs_opened_and_cancelled_leave_nothing_behind(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.system().write_system_log(pb::WriteSystemLogRequest { log: Some(entry("one")) }).await.expect("write");
    let cycles = 2_000;
    let mut workers = Vec::new();
    for worker in 0..8 {
        let mut client = server.stream();
        workers.push(tokio::spawn(async move {
            for cycle in (worker..cycles).step_by(8) {
                let request = || follow(pb::LogFilter::default(), Start::FromStart(true));
                // A cancelled follow frees its place when its follower next
                // looks (after a read at most): on a loaded machine the
                // bound (100) may be met for a moment.
                let mut stream = loop {
                    match client.follow_logs(request()).await {
                        Ok(stream) => break stream.into_inner(),
                        Err(status) if status.code() == Code::ResourceExhausted => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(status) => panic!("follow: {status:?}"),
                    }
                };
                if cycle % 2 == 0 {
                    let first = tokio::time::timeout(Duration::from_secs(30), stream.message()).await;
                    first.expect("a first message within 30 s").expect("first message");
                }
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    wait_for_metric(&server, "logwell_cross_run_followers", 0.0).await;
    wait_for_metric(&server, FOLLOWS_RUNTIME_TASKS, 0.0).await;
}

/// A follower that stops reading while 20,000 logs are written falls
/// behind the shared tail (16,384 logs) and the channel: it reads storage,
/// and still gets every log once, in order.
async fn a_follower_behind_the_shared_tail_misses_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut stream = client_stream(&server, follow(pb::LogFilter::default(), Start::FromNow(true))).await;
    next_heartbeat(&mut stream).await;
    let run = Uuid::now_v7();
    // A few errors, about the end of the first window a catching-up read
    // passes (16,384 logs).
    let errors = [0, 16_382, 16_383, 16_384, 16_385, 19_999];
    for batch in 0..20 {
        let logs = (0..1_000)
            .map(|index| {
                let number = batch * 1_000 + index;
                let level = if errors.contains(&number) { pb::LogLevel::Error } else { pb::LogLevel::Info };
                at(level, job_entry(run, &format!("log {number}")))
            })
            .collect();
        server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    }
    let (received, _) = read_logs(&mut stream, 20_000).await;
    let seqs: Vec<i64> = received.iter().map(|received| received.log.seq).collect();
    assert_eq!(seqs, (1..=20_000).collect::<Vec<i64>>(), "every log once, in order");
    next_heartbeat(&mut stream).await;

    // A narrow follow from the start reads storage a window at a time: the
    // errors, each once, across the windows' ends.
    let only_errors = pb::LogFilter { levels: vec![pb::LogLevel::Error.into()], ..Default::default() };
    let mut narrow = client_stream(&server, follow(only_errors, Start::FromStart(true))).await;
    let (received, _) = read_logs(&mut narrow, errors.len()).await;
    let seqs: Vec<i64> = received.iter().map(|received| received.log.seq).collect();
    assert_eq!(seqs, errors.map(|number| number as i64 + 1));
    next_heartbeat(&mut narrow).await;
}

/// The resident memory of process `pid`, in bytes.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process's status");
    let kib = status.lines().find_map(|line| line.strip_prefix("VmRSS:")).expect("VmRSS");
    kib.split_whitespace().next().and_then(|kib| kib.parse::<u64>().ok()).expect("a size") * 1024
}

/// A follower across runs that stops reading while writers write 160 MB
/// in ten runs: the server's memory stops growing once the shared tail is
/// full (what the follower holds is bounded: a batch read, one queued, and
/// the connection's buffers), and when it reads again, it gets every log
/// once, in each run's order. A server process of its own, for its memory.
#[tokio::test]
async fn a_stalled_follower_across_runs_holds_bounded_memory_and_misses_nothing() {
    const RUNS: usize = 10;
    const LOGS_PER_WRITE: usize = 400;
    let folder = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite:{}", folder.path().join("stalled.db").display());
    let (server, address, _log) =
        crate::helpers::start_serving_with(&url, &["--stream-heartbeat-interval", "200ms"], &[]).await;
    let pid = server.id().expect("running");
    let channel = async || Channel::from_shared(address.clone()).expect("address").connect().await.expect("connect");
    let mut follower = LogStreamServiceClient::new(channel().await)
        .follow_logs(follow(pb::LogFilter::default(), Start::FromNow(true)))
        .await
        .expect("follow")
        .into_inner();
    next_heartbeat(&mut follower).await;

    let runs: Vec<Uuid> = (0..RUNS).map(|_| Uuid::now_v7()).collect();
    let mut writer = JobLogServiceClient::new(channel().await);
    let padding = "x".repeat(4_000);
    let mut written = 0;
    let mut write = async |writes: usize| {
        for _ in 0..writes {
            let run = runs[written % RUNS];
            let logs = (0..LOGS_PER_WRITE).map(|index| job_entry(run, &format!("{index} {padding}"))).collect();
            writer.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
            written += 1;
        }
    };
    // 80 MB: past what the shared tail keeps (64 MiB), so that what follows
    // measures the follower's cost, not the tail filling.
    write(50).await;
    let filled = resident_bytes(pid);
    write(70).await;
    let grown = resident_bytes(pid).saturating_sub(filled);
    assert!(grown < 32 * 1024 * 1024, "{} MiB more after 112 MB more written", grown / (1024 * 1024));

    let total = 120 * LOGS_PER_WRITE;
    let (received, _) = read_logs(&mut follower, total).await;
    let mut seqs: HashMap<String, Vec<i64>> = HashMap::new();
    for received in &received {
        seqs.entry(received.log.job_run_id.clone()).or_default().push(received.log.seq);
    }
    assert_eq!(seqs.len(), RUNS);
    for (run, seqs) in seqs {
        assert_eq!(seqs, (1..=(total / RUNS) as i64).collect::<Vec<_>>(), "run {run}: every log once, in order");
    }
    next_heartbeat(&mut follower).await;
}

/// A follower's filter in the stress test, and the same rule in memory.
#[derive(Debug, Clone)]
struct Wanted {
    name: &'static str,
    filter: pb::LogFilter,
    matches: fn(&pb::Log, &[Uuid]) -> bool,
}

fn stress_filters(runs: &[Uuid]) -> Vec<Wanted> {
    vec![
        Wanted { name: "everything", filter: pb::LogFilter::default(), matches: |_, _| true },
        Wanted {
            name: "warn and above",
            filter: pb::LogFilter { min_level: pb::LogLevel::Warn.into(), ..Default::default() },
            matches: |log, _| log.level >= pb::LogLevel::Warn as i32,
        },
        Wanted {
            name: "task logs",
            filter: pb::LogFilter { types: vec![pb::LogType::Task.into()], ..Default::default() },
            matches: |log, _| log.r#type == pb::LogType::Task as i32,
        },
        Wanted {
            name: "two runs",
            filter: pb::LogFilter {
                job_run_ids: runs[..2].iter().map(Uuid::to_string).collect(),
                ..Default::default()
            },
            matches: |log, runs| runs[..2].iter().any(|run| run.to_string() == log.job_run_id),
        },
        Wanted {
            name: "a text",
            filter: pb::LogFilter { text: "write 1".into(), ..Default::default() },
            matches: |log, _| log.message.contains("write 1"),
        },
        Wanted {
            name: "a metadata value",
            filter: pb::LogFilter {
                metadata: vec![crate::filters::equals("write_parity", serde_json::json!(1))],
                ..Default::default()
            },
            matches: |log, _| {
                let parity = log.metadata.as_ref().and_then(|metadata| metadata.fields.get("write_parity"));
                parity.and_then(|value| value.kind.clone()) == Some(prost_types::value::Kind::NumberValue(1.0))
            },
        },
        Wanted {
            name: "one source",
            filter: pb::LogFilter { sources: vec!["writer-1".into()], ..Default::default() },
            matches: |log, _| log.source == "writer-1",
        },
    ]
}

/// How a follower in the stress test starts and reconnects.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Start after the reference's n-th log (0: from the start).
    after: usize,
    reconnect_every: usize,
}

/// Follows by plan through `channels` (a reconnect goes to the next one),
/// until it has `expected` logs and then a heartbeat: a log delivered
/// twice or beyond the expected would have come before it.
async fn follow_by_plan(
    channels: Vec<Channel>,
    request: pb::FollowLogsRequest,
    plan: Plan,
    expected: tokio::sync::watch::Receiver<Option<usize>>,
) -> Vec<Received> {
    let mut received: Vec<Received> = Vec::new();
    let mut start = request.start.clone().expect("a start");
    for connection in 0.. {
        let channel = channels[connection % channels.len()].clone();
        let request = pb::FollowLogsRequest { start: Some(start.clone()), ..request.clone() };
        let mut stream = LogStreamServiceClient::new(channel).follow_logs(request).await.expect("follow").into_inner();
        let mut this_connection = 0;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), stream.message())
                .await
                .unwrap_or_else(|_| panic!("stalled at {} logs", received.len()))
                .expect("stream failed");
            match message.and_then(|response| response.event) {
                Some(Event::Log(followed)) => {
                    start = Start::AfterCursor(followed.cursor.clone());
                    received.push(Received { log: followed.log.expect("log"), cursor: followed.cursor });
                    this_connection += 1;
                    if this_connection == plan.reconnect_every {
                        break;
                    }
                }
                Some(Event::Expired(expired)) => panic!("unexpected {expired:?}"),
                Some(Event::Heartbeat(heartbeat)) => {
                    if expected.borrow().is_some_and(|expected| received.len() >= expected) {
                        return received;
                    }
                    start = Start::AfterCursor(heartbeat.cursor);
                    if plan.reconnect_every <= 2 {
                        // Resume from a heartbeat's cursor too.
                        break;
                    }
                }
                None => panic!("the stream ended"),
            }
        }
    }
    received
}

/// Writers in many runs (and system logs) through `writers`; a reference
/// follower of everything from the start; followers with different filters
/// from different cursors, reconnecting to the channels in turn. Every
/// follower must receive exactly the matching logs after its start, in the
/// reference's order, once; and the reference exactly what is stored, each
/// run's logs in seq order.
pub async fn stress(writers: Vec<Channel>, followers: Vec<Channel>) {
    let runs: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
    let (tell_expected, expected) = tokio::sync::watch::channel(None::<usize>);
    let everything = follow(pb::LogFilter::default(), Start::FromStart(true));
    let reference = tokio::spawn(follow_by_plan(
        followers.clone(),
        everything,
        Plan { after: 0, reconnect_every: usize::MAX },
        expected.clone(),
    ));

    let mut writer_tasks = Vec::new();
    for index in 0..4usize {
        let channel = writers[index % writers.len()].clone();
        let runs = runs.clone();
        writer_tasks.push(tokio::spawn(async move {
            let mut job = logwell::proto::v1::job_log_service_client::JobLogServiceClient::new(channel.clone());
            let mut task = logwell::proto::v1::task_log_service_client::TaskLogServiceClient::new(channel.clone());
            let mut system = logwell::proto::v1::system_log_service_client::SystemLogServiceClient::new(channel);
            let levels = [pb::LogLevel::Debug, pb::LogLevel::Info, pb::LogLevel::Warn, pb::LogLevel::Error];
            let mut written = 0;
            for write in 0..60usize {
                let run = runs[(index + write) % runs.len()];
                let level = levels[(index * 7 + write) % levels.len()];
                let message = format!("writer {index} write {write}");
                let source = |log: pb::LogEntry| {
                    let parity = serde_json::json!({"write_parity": write % 2});
                    let log = crate::filters::with_metadata(
                        pb::LogEntry { source: format!("writer-{index}"), ..log },
                        parity,
                    );
                    at(level, log)
                };
                match write % 3 {
                    0 => {
                        let logs =
                            (0..=write % 4).map(|i| source(job_entry(run, &format!("{message} #{i}")))).collect();
                        written += 1 + write % 4;
                        job.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("batch");
                    }
                    1 => {
                        let log = Some(source(task_entry(run, Uuid::now_v7(), &message)));
                        written += 1;
                        task.write_task_log(pb::WriteTaskLogRequest { log }).await.expect("task");
                    }
                    _ => {
                        let log = Some(source(entry(&message)));
                        written += 1;
                        system.write_system_log(pb::WriteSystemLogRequest { log }).await.expect("system");
                    }
                }
                if write % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            }
            written
        }));
    }

    let mut written = 0;
    for writer in writer_tasks {
        written += writer.await.expect("writer");
    }
    tell_expected.send_replace(Some(written));
    let reference = reference.await.expect("reference");
    assert_eq!(reference.len(), written, "the reference got every log, once");
    let ids: HashSet<&str> = reference.iter().map(|received| received.log.id.as_str()).collect();
    assert_eq!(ids.len(), written, "no log twice");
    let mut last_seq: HashMap<String, i64> = HashMap::new();
    for received in &reference {
        // A run's job and task logs share its seqs; system logs theirs.
        let seq = last_seq.entry(received.log.job_run_id.clone()).or_default();
        assert!(
            received.log.seq > *seq,
            "each sequence's logs in seq order: {} of {:?} after {}",
            received.log.seq,
            received.log.job_run_id,
            *seq
        );
        *seq = received.log.seq;
    }

    // Followers with each filter, from the start and from the reference's
    // cursors, reconnecting often, through the channels in turn.
    let mut follower_tasks = Vec::new();
    for (index, wanted) in stress_filters(&runs).into_iter().enumerate() {
        for plan in [
            Plan { after: 0, reconnect_every: 7 + index },
            Plan { after: written / 3 + index, reconnect_every: 23 },
            Plan { after: written - 5, reconnect_every: 2 },
        ] {
            let start = match plan.after {
                0 => Start::FromStart(true),
                after => Start::AfterCursor(reference[after - 1].cursor.clone()),
            };
            let expected: Vec<Received> = reference[plan.after..]
                .iter()
                .filter(|received| (wanted.matches)(&received.log, &runs))
                .cloned()
                .collect();
            let (_, count) = tokio::sync::watch::channel(Some(expected.len()));
            let request = follow(wanted.filter.clone(), start);
            let mut channels = followers.clone();
            channels.rotate_left(index % followers.len());
            let task = tokio::spawn(follow_by_plan(channels, request, plan, count));
            follower_tasks.push((wanted.name, plan, expected, task));
        }
    }
    for (name, plan, expected, task) in follower_tasks {
        let received = task.await.expect("follower");
        assert_eq!(received.len(), expected.len(), "{name} {plan:?}: how many");
        assert!(received == expected, "{name} {plan:?}: exactly the matching logs, in commit order, at their cursors");
    }
}

async fn every_follower_across_runs_sees_exactly_the_committed_logs(backend: Backend) {
    let server = TestServer::start(backend).await;
    stress(vec![server.channel.clone()], vec![server.channel.clone()]).await;
}

/// Two replicas on one PostgreSQL database: writers through both, followers
/// reconnecting to either; the cursors mean the same logs on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_follow_across_runs_exactly() {
    let database = crate::helpers::TestDatabase::create(Backend::Postgres).await;
    // Quick heartbeats: a follower ends at the first heartbeat after its logs.
    let flags = ["--stream-heartbeat-interval", "200ms"];
    let (mut first, first_address, _first_log) = crate::helpers::start_serving_with(&database.url, &flags, &[]).await;
    let (mut second, second_address, _second_log) =
        crate::helpers::start_serving_with(&database.url, &flags, &[]).await;
    let connect =
        |address: String| async move { Channel::from_shared(address).expect("uri").connect().await.expect("connect") };
    let (first_channel, second_channel) = (connect(first_address).await, connect(second_address).await);
    stress(vec![first_channel.clone(), second_channel.clone()], vec![second_channel, first_channel]).await;
    first.kill().await.expect("kill");
    second.kill().await.expect("kill");
}
