//! Writing each log type: the model's rules through the API, atomic batches,
//! gap-free seqs under concurrency, faithful round trips.

use std::collections::BTreeSet;

use logwell::model::{LogDraft, LogFilter, LogType, NewLog};
use logwell::proto::v1::{self as pb};
use logwell::server::ServerSettings;
use prost_types::Timestamp;
use tonic::Code;
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestServer, assert_invalid, entry, job_entry, task_entry};

conformance!(
    resending_a_log_with_its_id_stores_it_once,
    a_resent_batch_stores_only_what_is_new,
    a_full_write_queue_answers_resource_exhausted,
    one_group_commit_stores_each_batch_whole_or_not_at_all,
    a_run_completed_by_another_process_refuses_only_its_own_writes,
    each_type_round_trips,
    forbidden_combinations_name_the_field,
    bad_values_name_the_field,
    nothing_is_stored_from_a_refused_batch,
    a_failing_transaction_stores_nothing_and_leaves_no_gap,
    seqs_have_no_gaps_under_concurrent_writers,
    extreme_times_and_rich_metadata_round_trip,
    a_large_batch_round_trips_exactly,
);

async fn each_type_round_trips(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (run, task) = (Uuid::now_v7(), Uuid::now_v7());

    let system = server.system().write_system_log(pb::WriteSystemLogRequest { log: Some(entry("booted")) }).await;
    let system = system.expect("system log").into_inner().receipt.expect("receipt");
    let job = pb::LogEntry { level: pb::LogLevel::Warn.into(), source: "runner-1".into(), ..job_entry(run, "started") };
    let job = server.job().write_job_log(pb::WriteJobLogRequest { log: Some(job) }).await;
    let job = job.expect("job log").into_inner().receipt.expect("receipt");
    let task_log = pb::LogEntry { stream: pb::LogStream::Stderr.into(), ..task_entry(run, task, "compiling") };
    let task_log = server.task().write_task_log(pb::WriteTaskLogRequest { log: Some(task_log) }).await;
    let task_log = task_log.expect("task log").into_inner().receipt.expect("receipt");

    assert_eq!((system.seq, job.seq, task_log.seq), (1, 1, 2), "system logs count apart from the run");

    let get = |id: String| {
        let mut query = server.query();
        async move { query.get_log(pb::GetLogRequest { id }).await.expect("get").into_inner().log.expect("log") }
    };
    let stored = get(system.id.clone()).await;
    assert_eq!(stored.r#type(), pb::LogType::System);
    assert_eq!(stored.stream(), pb::LogStream::System);
    assert_eq!(stored.level(), pb::LogLevel::Info, "level defaults to info");
    assert_eq!((stored.job_run_id.as_str(), stored.task_run_id.as_str()), ("", ""));
    assert_eq!(stored.time, stored.received_at, "time defaults to receipt time");
    assert_eq!(stored.received_at, system.received_at);

    let stored = get(job.id.clone()).await;
    assert_eq!(stored.r#type(), pb::LogType::Job);
    assert_eq!(stored.job_run_id, run.to_string());
    assert_eq!(stored.task_run_id, "");
    assert_eq!(stored.stream(), pb::LogStream::Stdout, "job streams default to stdout");
    assert_eq!(
        (stored.level(), stored.source.as_str(), stored.message.as_str()),
        (pb::LogLevel::Warn, "runner-1", "started")
    );

    let stored = get(task_log.id.clone()).await;
    assert_eq!(stored.r#type(), pb::LogType::Task);
    assert_eq!((stored.job_run_id.clone(), stored.task_run_id.clone()), (run.to_string(), task.to_string()));
    assert_eq!(stored.stream(), pb::LogStream::Stderr);
    assert_eq!(stored.seq, 2);
}

async fn forbidden_combinations_name_the_field(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (run, task) = (Uuid::now_v7(), Uuid::now_v7());
    let stdout = pb::LogStream::Stdout as i32;

    let system = |log: pb::LogEntry| {
        let mut client = server.system();
        async move { client.write_system_log(pb::WriteSystemLogRequest { log: Some(log) }).await }
    };
    assert_invalid(system(job_entry(run, "x")).await, &["log.job_run_id"]);
    assert_invalid(system(pb::LogEntry { task_run_id: task.to_string(), ..entry("x") }).await, &["log.task_run_id"]);
    assert_invalid(system(pb::LogEntry { stream: stdout, ..entry("x") }).await, &["log.stream"]);

    let job = |log: pb::LogEntry| {
        let mut client = server.job();
        async move { client.write_job_log(pb::WriteJobLogRequest { log: Some(log) }).await }
    };
    assert_invalid(job(entry("x")).await, &["log.job_run_id"]);
    assert_invalid(job(task_entry(run, task, "x")).await, &["log.task_run_id"]);

    let task_write = |log: pb::LogEntry| {
        let mut client = server.task();
        async move { client.write_task_log(pb::WriteTaskLogRequest { log: Some(log) }).await }
    };
    assert_invalid(task_write(job_entry(run, "x")).await, &["log.task_run_id"]);
    assert_invalid(task_write(pb::LogEntry { task_run_id: task.to_string(), ..entry("x") }).await, &["log.job_run_id"]);
    assert_invalid(task_write(entry("x")).await, &["log.job_run_id", "log.task_run_id"]);

    let missing = server.job().write_job_log(pb::WriteJobLogRequest { log: None }).await;
    assert_invalid(missing, &["log"]);

    assert!(server.list_all(pb::ListLogsRequest::default()).await.is_empty(), "nothing was stored");
    let accepted = system(entry("still serving")).await.expect("the server keeps serving");
    assert_eq!(accepted.into_inner().receipt.expect("receipt").seq, 1);
}

async fn bad_values_name_the_field(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let job = |log: pb::LogEntry| {
        let mut client = server.job();
        async move { client.write_job_log(pb::WriteJobLogRequest { log: Some(log) }).await }
    };
    let year_10000 = Timestamp { seconds: 253_402_300_800, nanos: 0 };
    let before_year_1 = Timestamp { seconds: -62_135_596_801, nanos: 0 };
    let cases: Vec<(pb::LogEntry, &str)> = vec![
        (job_entry(Uuid::nil(), "x"), "log.job_run_id"),
        (pb::LogEntry { job_run_id: "run-42".into(), ..entry("x") }, "log.job_run_id"),
        (pb::LogEntry { level: 42, ..job_entry(run, "x") }, "log.level"),
        (pb::LogEntry { stream: -3, ..job_entry(run, "x") }, "log.stream"),
        (job_entry(run, ""), "log.message"),
        (job_entry(run, "nul \0 byte"), "log.message"),
        (pb::LogEntry { source: "tab\there".into(), ..job_entry(run, "x") }, "log.source"),
        (pb::LogEntry { source: "s".repeat(257), ..job_entry(run, "x") }, "log.source"),
        (pb::LogEntry { time: Some(year_10000), ..job_entry(run, "x") }, "log.time"),
        (pb::LogEntry { time: Some(before_year_1), ..job_entry(run, "x") }, "log.time"),
        (pb::LogEntry { time: Some(Timestamp { seconds: 0, nanos: -1 }), ..job_entry(run, "x") }, "log.time"),
        (pb::LogEntry { time: Some(Timestamp { seconds: i64::MAX, nanos: 0 }), ..job_entry(run, "x") }, "log.time"),
        (
            pb::LogEntry { metadata: Some(metadata(&[("ratio", number(f64::NAN))])), ..job_entry(run, "x") },
            "log.metadata.ratio",
        ),
        (pb::LogEntry { metadata: Some(metadata(&[("k", text("a\0b"))])), ..job_entry(run, "x") }, "log.metadata"),
    ];
    for (log, field) in cases {
        let described = format!("{log:?}");
        let status = job(log).await.expect_err(&described);
        assert_eq!(status.code(), Code::InvalidArgument, "{described}: {status:?}");
        assert_eq!(crate::helpers::violated_fields(&status), [field], "{described}");
    }
    assert!(server.list_all(pb::ListLogsRequest::default()).await.is_empty(), "nothing was stored");
}

async fn nothing_is_stored_from_a_refused_batch(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let mut logs: Vec<pb::LogEntry> = (0..5).map(|i| job_entry(run, &format!("line {i}"))).collect();
    logs[2].message.clear();
    logs[4].job_run_id = "nope".into();
    let refused = server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await;
    assert_invalid(refused, &["logs[2].message", "logs[4].job_run_id"]);
    assert_invalid(server.job().write_job_logs(pb::WriteJobLogsRequest { logs: vec![] }).await, &["logs"]);
    let too_many = (0..1_001).map(|i| job_entry(run, &format!("{i}"))).collect();
    assert_invalid(server.job().write_job_logs(pb::WriteJobLogsRequest { logs: too_many }).await, &["logs"]);

    let run_logs = pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() };
    assert!(server.list_all(run_logs.clone()).await.is_empty());

    let logs = (0..1_000).map(|i| job_entry(run, &format!("line {i}"))).collect();
    let receipts =
        server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("batch").into_inner().receipts;
    let seqs: Vec<i64> = receipts.iter().map(|receipt| receipt.seq).collect();
    assert_eq!(seqs, (1..=1_000).collect::<Vec<_>>(), "a batch takes seqs in request order");
    let stored = server.list_all(run_logs).await;
    assert_eq!(stored.len(), 1_000);
    assert!(stored.iter().all(|log| log.message == format!("line {}", log.seq - 1)));
}

/// A batch that the database itself refuses midway (here: a row that breaks a
/// CHECK constraint, handed straight to the store) leaves nothing behind, not
/// even the seqs it had reserved.
async fn a_failing_transaction_stores_nothing_and_leaves_no_gap(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let valid = |message: &str| -> NewLog {
        LogDraft { job_run_id: run.to_string(), message: message.into(), ..LogDraft::default() }
            .validate(LogType::Job, chrono::Utc::now(), &logwell::model::Limits::default())
            .expect("valid log")
    };
    let mut broken = valid("broken");
    broken.message.clear();
    let batch = [valid("first"), valid("second"), broken, valid("fourth")];
    let error = server.store.append_batches(&[&batch]).await.expect_err("the database refuses the batch");
    assert!(error.to_string().contains("message"), "{error}");

    let run_logs = pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() };
    assert!(server.list_all(run_logs.clone()).await.is_empty(), "no part of the batch was stored");
    let appended = server.store.append_batches(&[&[valid("after")]]).await.expect("next write");
    let receipts = appended.batches.into_iter().next().expect("one batch").expect("stored");
    assert_eq!(receipts[0].seq, 1, "the failed batch's seqs were rolled back with it");
}

async fn resending_a_log_with_its_id_stores_it_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (run, other_run) = (Uuid::now_v7(), Uuid::now_v7());
    let id = Uuid::now_v7().to_string();
    let log = pb::LogEntry { id: id.clone(), ..job_entry(run, "once") };
    let write = |log: pb::LogEntry| {
        let mut client = server.job();
        async move { client.write_job_log(pb::WriteJobLogRequest { log: Some(log) }).await }
    };
    let first = write(log.clone()).await.expect("write").into_inner().receipt.expect("receipt");
    let again = write(log.clone()).await.expect("resend").into_inner().receipt.expect("receipt");
    assert_eq!((first.id.as_str(), first.seq, first.duplicate), (id.as_str(), 1, false));
    assert_eq!((again.id, again.seq, again.duplicate, again.received_at), (id.clone(), 1, true, first.received_at));

    let request = pb::CompleteJobRunRequest {
        job_run_id: run.to_string(),
        outcome: pb::JobRunOutcome::Succeeded.into(),
        summary: String::new(),
    };
    server.job_runs().complete_job_run(request).await.expect("complete");
    let after_completion = write(log.clone()).await.expect("a resend is still a resend after completion");
    assert!(after_completion.into_inner().receipt.expect("receipt").duplicate);

    let elsewhere = write(pb::LogEntry { job_run_id: other_run.to_string(), ..log.clone() }).await;
    assert_eq!(elsewhere.expect_err("an id names one log").code(), Code::AlreadyExists);
    assert_invalid(write(pb::LogEntry { id: "not-a-uuid".into(), ..log }).await, &["log.id"]);
    let stored = server.list_all(pb::ListLogsRequest::default()).await;
    assert_eq!(stored.iter().map(|log| log.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
}

async fn a_resent_batch_stores_only_what_is_new(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let with_id = |message: &str| pb::LogEntry { id: Uuid::now_v7().to_string(), ..job_entry(run, message) };
    let (a, b, c, d) = (with_id("a"), with_id("b"), with_id("c"), with_id("d"));
    let write = |logs: Vec<pb::LogEntry>| {
        let mut client = server.job();
        async move { client.write_job_logs(pb::WriteJobLogsRequest { logs }).await }
    };
    write(vec![a.clone(), b.clone()]).await.expect("first batch");
    let receipts = write(vec![a.clone(), c.clone(), b.clone(), d.clone()]).await.expect("resend").into_inner().receipts;
    let answered: Vec<(&str, i64, bool)> =
        receipts.iter().map(|receipt| (receipt.id.as_str(), receipt.seq, receipt.duplicate)).collect();
    assert_eq!(
        answered,
        [(a.id.as_str(), 1, true), (c.id.as_str(), 3, false), (b.id.as_str(), 2, true), (d.id.as_str(), 4, false)]
    );
    let stored = server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await;
    assert_eq!(stored.iter().map(|log| log.message.as_str()).collect::<Vec<_>>(), ["a", "b", "c", "d"]);

    assert_invalid(write(vec![with_id("e"), c.clone(), c.clone()]).await, &["logs[2].id"]);
}

/// Batches committed together (group commit) still succeed or fail alone: a
/// batch that writes to a completed run is refused, the others are stored.
async fn one_group_commit_stores_each_batch_whole_or_not_at_all(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (open, done) = (Uuid::now_v7(), Uuid::now_v7());
    let log = |run: Uuid, message: &str| -> NewLog {
        LogDraft { job_run_id: run.to_string(), message: message.into(), ..LogDraft::default() }
            .validate(LogType::Job, chrono::Utc::now(), &logwell::model::Limits::default())
            .expect("valid log")
    };
    let request = pb::CompleteJobRunRequest {
        job_run_id: done.to_string(),
        outcome: pb::JobRunOutcome::Succeeded.into(),
        summary: String::new(),
    };
    server.job_runs().complete_job_run(request).await.expect("complete");
    let first = [log(open, "a"), log(open, "b")];
    let second = [log(open, "c"), log(done, "late")];
    let third = [log(open, "d")];
    let appended = server.store.append_batches(&[&first, &second, &third]).await.expect("the group commits");
    let results = &appended.batches;
    let seqs: Vec<Option<Vec<i64>>> = results
        .iter()
        .map(|result| result.as_ref().ok().map(|receipts| receipts.iter().map(|r| r.seq).collect()))
        .collect();
    assert_eq!(seqs, [Some(vec![1, 2]), None, Some(vec![3])]);
    assert!(matches!(results[1], Err(logwell::store::StoreError::JobRunComplete(run)) if run == done));
    let stored = server.list_all(pb::ListLogsRequest { job_run_id: open.to_string(), ..Default::default() }).await;
    assert_eq!(stored.iter().map(|log| log.message.as_str()).collect::<Vec<_>>(), ["a", "b", "d"]);

    // SQLite's one writer knows at once where the new logs lie in the
    // commit order (the commit tail takes them without reading storage);
    // PostgreSQL knows only once older transactions end.
    match (backend, appended.span) {
        (Backend::Sqlite, Some(span)) => {
            let page = server.store.read_committed(&LogFilter::default(), span.after, 10).await.expect("read");
            let read: Vec<_> = page.logs.iter().map(|(position, log)| (*position, log.message.as_str())).collect();
            let told: Vec<_> = span.positions.iter().copied().zip(["a", "b", "d"]).collect();
            assert_eq!(read, told, "the span names every log after it, in order");
            assert_eq!(page.read_through, span.through, "and nothing lies past it");
        }
        (Backend::Postgres, None) => {}
        (backend, span) => panic!("{backend:?} answered the span {span:?}"),
    }
}

/// A run completed behind this server's back (by another replica; here by
/// raw SQL) is refused to the writes that name it, while concurrent writes
/// to another run, which may share their group commits, are all stored.
async fn a_run_completed_by_another_process_refuses_only_its_own_writes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (open, done) = (Uuid::now_v7(), Uuid::now_v7());
    let write = |run: Uuid, message: String| {
        let mut job = server.job();
        async move { job.write_job_log(pb::WriteJobLogRequest { log: Some(job_entry(run, &message)) }).await }
    };
    write(done, "before".into()).await.expect("the run is open");
    let completed_at = match backend {
        Backend::Sqlite => "1700000000000000",
        Backend::Postgres => "now()",
    };
    let complete =
        format!("UPDATE job_runs SET completed_at = {completed_at}, outcome = 'succeeded' WHERE id = '{done}'");
    server.database.execute_raw(&complete).await.expect("complete the run directly");
    // A batch of the largest size is refused the same way, whole.
    let large = |run: Uuid| pb::WriteJobLogsRequest {
        logs: (0..1_000).map(|i| job_entry(run, &format!("large {i}"))).collect(),
    };
    let refused = server.job().write_job_logs(large(done)).await.expect_err("a large batch to the completed run");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    server.job().write_job_logs(large(open)).await.expect("a large batch to the open run");

    let writes: Vec<_> =
        (0..40).map(|i| tokio::spawn(write(if i % 2 == 0 { open } else { done }, format!("write {i}")))).collect();
    for (i, write) in writes.into_iter().enumerate() {
        match (i % 2, write.await.expect("writer").map_err(|status| status.code())) {
            (0, Ok(_)) | (1, Err(Code::FailedPrecondition)) => {}
            (_, other) => panic!("write {i}: {other:?}"),
        }
    }
    for (run, wanted) in [(open, (1..=1_020).collect::<Vec<i64>>()), (done, vec![1])] {
        let stored = server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await;
        assert_eq!(stored.iter().map(|log| log.seq).collect::<Vec<_>>(), wanted, "run {run}");
    }
}

async fn a_full_write_queue_answers_resource_exhausted(backend: Backend) {
    use tonic_types::StatusExt;
    let database = crate::helpers::TestDatabase::create(backend).await;
    let settings = ServerSettings { write_queue_logs: 5, ..crate::helpers::test_settings() };
    let server = TestServer::start_with(database, settings).await;
    let run = Uuid::now_v7();
    let batch =
        |size: usize| pb::WriteJobLogsRequest { logs: (0..size).map(|i| job_entry(run, &format!("{i}"))).collect() };
    let status = server.job().write_job_logs(batch(6)).await.expect_err("more than the queue holds");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let retry = status.get_details_retry_info().expect("a retry hint");
    assert!(retry.retry_delay.is_some_and(|delay| delay > std::time::Duration::ZERO));
    assert_eq!(server.metric("logwell_overloaded_writes_total").await, 1.0);
    assert!(
        server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await.is_empty()
    );
    server.job().write_job_logs(batch(5)).await.expect("what fits is taken");
    assert_eq!(server.metric("logwell_committed_logs_total").await, 5.0);
    assert_eq!(server.metric("logwell_commit_duration_seconds_count").await, 1.0);
    assert!(server.metric("logwell_commit_duration_seconds_sum").await > 0.0);
    assert_eq!(server.metric("logwell_write_queue_logs").await, 0.0);
}

async fn seqs_have_no_gaps_under_concurrent_writers(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let writers = 8;
    let writes_per_writer = 25;
    let mut handles = Vec::new();
    for writer in 0..writers {
        let mut job = server.job();
        let mut task = server.task();
        handles.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for write in 0..writes_per_writer {
                let message = format!("writer {writer} write {write}");
                if write % 3 == 0 {
                    let logs = (0..4).map(|i| job_entry(run, &format!("{message} #{i}"))).collect();
                    let receipts = job.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("batch");
                    let receipts = receipts.into_inner().receipts;
                    let batch: Vec<i64> = receipts.iter().map(|receipt| receipt.seq).collect();
                    assert!(batch.windows(2).all(|pair| pair[1] == pair[0] + 1), "a batch is contiguous: {batch:?}");
                    seqs.extend(batch);
                } else {
                    let log = task_entry(run, Uuid::now_v7(), &message);
                    let receipt = task.write_task_log(pb::WriteTaskLogRequest { log: Some(log) }).await.expect("write");
                    seqs.push(receipt.into_inner().receipt.expect("receipt").seq);
                }
            }
            seqs
        }));
    }
    let mut acknowledged = BTreeSet::new();
    for handle in handles {
        for seq in handle.await.expect("writer") {
            assert!(acknowledged.insert(seq), "seq {seq} acknowledged twice");
        }
    }
    let total = i64::try_from(acknowledged.len()).expect("count");
    assert_eq!(acknowledged, (1..=total).collect(), "acknowledged seqs are 1..={total} without gaps");
    let stored: Vec<i64> = server
        .list_all(pb::ListLogsRequest { job_run_id: run.to_string(), page_size: 1_000, ..Default::default() })
        .await
        .iter()
        .map(|log| log.seq)
        .collect();
    assert_eq!(stored, (1..=total).collect::<Vec<_>>());
}

async fn extreme_times_and_rich_metadata_round_trip(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let earliest = Timestamp { seconds: -62_135_596_800, nanos: 0 };
    let latest = Timestamp { seconds: 253_402_300_799, nanos: 999_999_999 };
    let precise = Timestamp { seconds: 1_700_000_000, nanos: 123_456_789 };
    let rich = metadata(&[
        ("attempt", number(2.0)),
        ("ratio", number(0.25)),
        (
            "tags",
            prost_types::Value {
                kind: Some(prost_types::value::Kind::ListValue(prost_types::ListValue {
                    values: vec![text("a"), text("ü ✓")],
                })),
            },
        ),
        (
            "nested",
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StructValue(metadata(&[(
                    "ok",
                    prost_types::Value { kind: Some(prost_types::value::Kind::BoolValue(true)) },
                )]))),
            },
        ),
    ]);
    let logs = vec![
        pb::LogEntry { time: Some(earliest), ..job_entry(run, "earliest") },
        pb::LogEntry { time: Some(latest), ..job_entry(run, "latest") },
        pb::LogEntry {
            time: Some(precise),
            metadata: Some(rich.clone()),
            ..job_entry(run, "tabs\tnewlines\n\u{1b}[31mcolour ✓")
        },
    ];
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    let stored = server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await;
    assert_eq!(stored[0].time, Some(earliest));
    assert_eq!(
        stored[1].time,
        Some(Timestamp { seconds: 253_402_300_799, nanos: 999_999_000 }),
        "microsecond precision"
    );
    assert_eq!(stored[2].time, Some(Timestamp { seconds: 1_700_000_000, nanos: 123_456_000 }));
    assert_eq!(stored[2].message, "tabs\tnewlines\n\u{1b}[31mcolour ✓");
    assert_eq!(stored[2].metadata, Some(rich));
    assert_eq!(stored[0].metadata, Some(prost_types::Struct::default()), "metadata defaults to an empty object");
}

/// The largest batch, every field set and awkward, comes back exactly as
/// sent, each log with its receipt's seq and time.
async fn a_large_batch_round_trips_exactly(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let tasks = [Uuid::now_v7(), Uuid::now_v7()];
    let awkward = ["back\\slash \\N \\.", "tab\there\nnewline\r\n", "ü ✓ 日本 🎉", "'quotes' \"and\" ,commas,", "x"];
    let times = [-62_135_596_800, 0, 1_700_000_000, 253_402_300_799];
    let sent: Vec<pb::LogEntry> = (0..1_000)
        .map(|i| pb::LogEntry {
            id: Uuid::now_v7().to_string(),
            job_run_id: run.to_string(),
            task_run_id: tasks[i % 2].to_string(),
            time: Some(Timestamp { seconds: times[i % times.len()], nanos: (i as i32 % 1_000) * 1_000 }),
            level: [pb::LogLevel::Trace, pb::LogLevel::Warn, pb::LogLevel::Fatal][i % 3].into(),
            stream: [pb::LogStream::Stdout, pb::LogStream::Stderr, pb::LogStream::System][i % 3].into(),
            source: if i % 4 == 0 { String::new() } else { format!("worker-{i}") },
            message: format!("{i} {}", awkward[i % awkward.len()]),
            metadata: Some(metadata(&[("i", number(i as f64)), ("text", text(awkward[i % awkward.len()]))])),
        })
        .collect();
    let receipts = server
        .task()
        .write_task_logs(pb::WriteTaskLogsRequest { logs: sent.clone() })
        .await
        .expect("write")
        .into_inner()
        .receipts;
    assert_eq!(receipts.iter().map(|receipt| receipt.seq).collect::<Vec<_>>(), (1..=1_000).collect::<Vec<i64>>());
    let stored = server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await;
    assert_eq!(stored.len(), sent.len());
    for ((log, entry), receipt) in stored.iter().zip(&sent).zip(&receipts) {
        let as_sent = (&entry.id, &entry.task_run_id, entry.time, entry.level, entry.stream);
        assert_eq!((&log.id, &log.task_run_id, log.time, log.level, log.stream), as_sent, "seq {}", log.seq);
        assert_eq!((&log.source, &log.message, &log.metadata), (&entry.source, &entry.message, &entry.metadata));
        assert_eq!((log.seq, log.r#type), (receipt.seq, pb::LogType::Task.into()));
        assert_eq!(log.received_at, receipt.received_at);
    }
}

pub fn metadata(fields: &[(&str, prost_types::Value)]) -> prost_types::Struct {
    prost_types::Struct { fields: fields.iter().map(|(key, value)| (key.to_string(), value.clone())).collect() }
}

pub fn number(value: f64) -> prost_types::Value {
    prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(value)) }
}

pub fn text(value: &str) -> prost_types::Value {
    prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(value.to_string())) }
}
