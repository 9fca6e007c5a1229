//! Reading logs back: what the seeds' REST reads did, filters, ordering,
//! keyset paging (also while a run is being written), refused queries.

use std::collections::BTreeSet;

use logwell::proto::v1::{self as pb};
use prost_types::Timestamp;
use tonic::Code;
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestServer, assert_invalid, entry, job_entry, task_entry};

conformance!(
    reads_by_job_run_task_run_and_type,
    filters_narrow_a_listing,
    descending_order_and_after_seq,
    pages_never_repeat_or_skip,
    paging_while_a_run_is_written_returns_every_log_once,
    bad_queries_name_the_field,
    get_log_answers_not_found,
);

/// Two job runs with a task each, and two system logs.
async fn seed(server: &TestServer) -> (Uuid, Uuid, Uuid) {
    let (run_a, run_b, task_a) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let system = vec![entry("scheduler up"), entry("config loaded")];
    server.system().write_system_logs(pb::WriteSystemLogsRequest { logs: system }).await.expect("system");
    for run in [run_a, run_b] {
        let logs = vec![job_entry(run, "job started"), job_entry(run, "job finished")];
        server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("job");
    }
    let logs = vec![task_entry(run_a, task_a, "task line 1"), task_entry(run_a, task_a, "task line 2")];
    server.task().write_task_logs(pb::WriteTaskLogsRequest { logs }).await.expect("task");
    let other_task = task_entry(run_b, Uuid::now_v7(), "other task");
    server.task().write_task_log(pb::WriteTaskLogRequest { log: Some(other_task) }).await.expect("task");
    (run_a, run_b, task_a)
}

fn messages(logs: &[pb::Log]) -> Vec<&str> {
    logs.iter().map(|log| log.message.as_str()).collect()
}

async fn reads_by_job_run_task_run_and_type(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (run_a, _, task_a) = seed(&server).await;

    let of_run = server.list_all(pb::ListLogsRequest { job_run_id: run_a.to_string(), ..Default::default() }).await;
    assert_eq!(messages(&of_run), ["job started", "job finished", "task line 1", "task line 2"]);
    assert_eq!(of_run.iter().map(|log| log.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);

    let job_only =
        pb::ListLogsRequest { job_run_id: run_a.to_string(), r#type: pb::LogType::Job.into(), ..Default::default() };
    assert_eq!(messages(&server.list_all(job_only).await), ["job started", "job finished"]);

    let of_task = server.list_all(pb::ListLogsRequest { task_run_id: task_a.to_string(), ..Default::default() }).await;
    assert_eq!(messages(&of_task), ["task line 1", "task line 2"]);

    let system =
        server.list_all(pb::ListLogsRequest { r#type: pb::LogType::System.into(), ..Default::default() }).await;
    assert_eq!(messages(&system), ["scheduler up", "config loaded"]);
    assert_eq!(system.iter().map(|log| log.seq).collect::<Vec<_>>(), [1, 2]);

    let tasks = server.list_all(pb::ListLogsRequest { r#type: pb::LogType::Task.into(), ..Default::default() }).await;
    assert_eq!(messages(&tasks), ["task line 1", "task line 2", "other task"]);
    assert!(tasks.iter().all(|log| log.r#type() == pb::LogType::Task));

    let everything = server.list_all(pb::ListLogsRequest::default()).await;
    assert_eq!(everything.len(), 9);
}

async fn filters_narrow_a_listing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let at = |seconds| Some(Timestamp { seconds, nanos: 0 });
    let log = |message: &str, level: pb::LogLevel, stream: pb::LogStream, source: &str, seconds| pb::LogEntry {
        level: level.into(),
        stream: stream.into(),
        source: source.into(),
        time: at(seconds),
        ..job_entry(run, message)
    };
    let logs = vec![
        log("debugging 50%_off", pb::LogLevel::Debug, pb::LogStream::Stdout, "worker-1", 1_000),
        log("all good", pb::LogLevel::Info, pb::LogStream::Stdout, "worker-1", 2_000),
        log("disk almost full", pb::LogLevel::Warn, pb::LogStream::Stderr, "worker-2", 3_000),
        log("crashed: 50% done", pb::LogLevel::Fatal, pb::LogStream::Stderr, "worker-2", 4_000),
        log("retrying", pb::LogLevel::Error, pb::LogStream::System, "runner", 5_000),
    ];
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    let base = pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() };
    let list = |request: pb::ListLogsRequest| server.list_all(request);

    let warn_up = pb::ListLogsRequest { min_level: pb::LogLevel::Warn.into(), ..base.clone() };
    assert_eq!(messages(&list(warn_up).await), ["disk almost full", "crashed: 50% done", "retrying"]);
    let stderr = pb::ListLogsRequest { stream: pb::LogStream::Stderr.into(), ..base.clone() };
    assert_eq!(messages(&list(stderr).await), ["disk almost full", "crashed: 50% done"]);
    let source = pb::ListLogsRequest { source: "worker-1".into(), ..base.clone() };
    assert_eq!(messages(&list(source).await), ["debugging 50%_off", "all good"]);
    let window = pb::ListLogsRequest { start_time: at(2_000), end_time: at(4_000), ..base.clone() };
    assert_eq!(messages(&list(window).await), ["all good", "disk almost full"], "start inclusive, end exclusive");
    let literal = pb::ListLogsRequest { message_contains: "50%_".into(), ..base.clone() };
    assert_eq!(messages(&list(literal).await), ["debugging 50%_off"], "% and _ are literal");
    let case = pb::ListLogsRequest { message_contains: "ALL".into(), ..base.clone() };
    assert!(list(case).await.is_empty(), "search is case-sensitive");
    let combined =
        pb::ListLogsRequest { min_level: pb::LogLevel::Error.into(), message_contains: "50%".into(), ..base.clone() };
    assert_eq!(messages(&list(combined).await), ["crashed: 50% done"]);
    let across_runs = pb::ListLogsRequest { min_level: pb::LogLevel::Fatal.into(), ..Default::default() };
    assert_eq!(messages(&list(across_runs).await), ["crashed: 50% done"]);
}

async fn descending_order_and_after_seq(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let logs = (1..=10).map(|i| job_entry(run, &format!("{i}"))).collect();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    let base = pb::ListLogsRequest { job_run_id: run.to_string(), page_size: 3, ..Default::default() };

    let newest_first = pb::ListLogsRequest { order: pb::SortOrder::Descending.into(), ..base.clone() };
    let seqs: Vec<i64> = server.list_all(newest_first).await.iter().map(|log| log.seq).collect();
    assert_eq!(seqs, (1..=10).rev().collect::<Vec<_>>());

    let after_seven = pb::ListLogsRequest { after_seq: 7, ..base.clone() };
    let seqs: Vec<i64> = server.list_all(after_seven).await.iter().map(|log| log.seq).collect();
    assert_eq!(seqs, [8, 9, 10]);
    let after_end = pb::ListLogsRequest { after_seq: 10, ..base.clone() };
    assert!(server.list_all(after_end).await.is_empty());

    let last_page = server.query().list_logs(pb::ListLogsRequest { after_seq: 7, ..base }).await.expect("list");
    assert!(last_page.into_inner().next_page_token.is_empty(), "an exactly full last page has no next page");
}

/// Time-ordered listings across runs, with ties in time, page without
/// repeats or gaps in both directions.
async fn pages_never_repeat_or_skip(backend: Backend) {
    let server = TestServer::start(backend).await;
    let same_time = Some(Timestamp { seconds: 1_700_000_000, nanos: 0 });
    for batch in 0..5 {
        let logs = (0..10)
            .map(|i| pb::LogEntry { time: same_time, ..job_entry(Uuid::now_v7(), &format!("{batch}-{i}")) })
            .collect();
        server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    }
    for order in [pb::SortOrder::Ascending, pb::SortOrder::Descending] {
        let request = pb::ListLogsRequest { page_size: 7, order: order.into(), ..Default::default() };
        let logs = server.list_all(request).await;
        let ids: BTreeSet<&str> = logs.iter().map(|log| log.id.as_str()).collect();
        assert_eq!((logs.len(), ids.len()), (50, 50), "{order:?}: every log once");
        let mut expected: Vec<&str> = logs.iter().map(|log| log.id.as_str()).collect();
        expected.sort_unstable();
        if order == pb::SortOrder::Descending {
            expected.reverse();
        }
        assert_eq!(logs.iter().map(|log| log.id.as_str()).collect::<Vec<_>>(), expected, "ties broken by id");
    }
}

async fn paging_while_a_run_is_written_returns_every_log_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let total = 400;
    let mut job = server.job();
    let writer = tokio::spawn(async move {
        let mut written = 0;
        while written < total {
            let size = (written % 7) + 1;
            let logs = (written..(written + size).min(total)).map(|i| job_entry(run, &format!("line {i}"))).collect();
            written +=
                job.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write").into_inner().receipts.len();
        }
    });

    let mut seen = Vec::new();
    let mut request = pb::ListLogsRequest { job_run_id: run.to_string(), page_size: 9, ..Default::default() };
    loop {
        // Read before the page: a writer that had finished then wrote everything the page can see.
        let writer_done = writer.is_finished();
        let page = server.query().list_logs(request.clone()).await.expect("page").into_inner();
        seen.extend(page.logs.iter().map(|log| log.seq));
        if !page.next_page_token.is_empty() {
            request.page_token = page.next_page_token;
            continue;
        }
        // Caught up with the writer: continue after the last seq we have.
        if writer_done && page.logs.is_empty() && request.page_token.is_empty() {
            break;
        }
        request.page_token.clear();
        request.after_seq = seen.last().copied().unwrap_or(0);
    }
    writer.await.expect("writer");
    assert_eq!(seen, (1..=total as i64).collect::<Vec<_>>(), "every log exactly once, in seq order");
}

async fn bad_queries_name_the_field(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7().to_string();
    let list = |request: pb::ListLogsRequest| {
        let mut query = server.query();
        async move { query.list_logs(request).await }
    };
    let by_run = pb::ListLogsRequest { job_run_id: run.clone(), page_size: 2, ..Default::default() };
    assert_invalid(list(pb::ListLogsRequest { page_size: -1, ..by_run.clone() }).await, &["page_size"]);
    assert_invalid(list(pb::ListLogsRequest { page_size: 1_001, ..by_run.clone() }).await, &["page_size"]);
    assert_invalid(list(pb::ListLogsRequest { job_run_id: "x".into(), ..Default::default() }).await, &["job_run_id"]);
    assert_invalid(list(pb::ListLogsRequest { task_run_id: "x".into(), ..Default::default() }).await, &["task_run_id"]);
    assert_invalid(list(pb::ListLogsRequest { r#type: 7, ..Default::default() }).await, &["type"]);
    assert_invalid(list(pb::ListLogsRequest { min_level: 9, ..Default::default() }).await, &["min_level"]);
    assert_invalid(list(pb::ListLogsRequest { order: 3, ..Default::default() }).await, &["order"]);
    let system_of_run = pb::ListLogsRequest { r#type: pb::LogType::System.into(), ..by_run.clone() };
    assert_invalid(list(system_of_run).await, &["job_run_id"]);
    assert_invalid(list(pb::ListLogsRequest { after_seq: -1, ..by_run.clone() }).await, &["after_seq"]);
    assert_invalid(list(pb::ListLogsRequest { after_seq: 3, ..Default::default() }).await, &["after_seq"]);
    let far_future = Some(Timestamp { seconds: 253_402_300_800, nanos: 0 });
    assert_invalid(list(pb::ListLogsRequest { start_time: far_future, ..Default::default() }).await, &["start_time"]);
    let backwards = pb::ListLogsRequest {
        start_time: Some(Timestamp { seconds: 20, nanos: 0 }),
        end_time: Some(Timestamp { seconds: 10, nanos: 0 }),
        ..Default::default()
    };
    assert_invalid(list(backwards).await, &["end_time"]);
    assert_invalid(
        list(pb::ListLogsRequest { message_contains: "\0".into(), ..Default::default() }).await,
        &["message_contains"],
    );

    let logs = (0..5).map(|i| job_entry(run.parse().expect("uuid"), &format!("{i}"))).collect();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    let token = list(by_run.clone()).await.expect("first page").into_inner().next_page_token;
    assert!(!token.is_empty());
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 3;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    assert_invalid(list(pb::ListLogsRequest { page_token: tampered, ..by_run.clone() }).await, &["page_token"]);
    assert_invalid(
        list(pb::ListLogsRequest { page_token: "not a token".into(), ..by_run.clone() }).await,
        &["page_token"],
    );
    let other_query =
        pb::ListLogsRequest { page_token: token.clone(), min_level: pb::LogLevel::Warn.into(), ..by_run.clone() };
    assert_invalid(list(other_query).await, &["page_token"]);
    let bigger_pages = pb::ListLogsRequest { page_token: token, page_size: 10, ..by_run };
    let rest = list(bigger_pages).await.expect("page size may change between pages").into_inner();
    assert_eq!(rest.logs.iter().map(|log| log.seq).collect::<Vec<_>>(), [3, 4, 5]);
}

async fn get_log_answers_not_found(backend: Backend) {
    let server = TestServer::start(backend).await;
    let missing = server.query().get_log(pb::GetLogRequest { id: Uuid::now_v7().to_string() }).await;
    assert_eq!(missing.expect_err("absent").code(), Code::NotFound);
    assert_invalid(server.query().get_log(pb::GetLogRequest { id: "42".into() }).await, &["id"]);
    assert_invalid(server.query().get_log(pb::GetLogRequest { id: String::new() }).await, &["id"]);
}
