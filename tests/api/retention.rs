//! Retention: logs past their type's age limit go, in batches, with their
//! runs' counts; nothing younger goes; one process at a time holds the
//! lease; the command line says what would go and refuses unsafe limits.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use logwell::model::{LogType, RetentionPolicy};
use logwell::proto::v1::{self as pb};
use logwell::retention::{Retention, RetentionSettings, RetentionStats};
use sqlx::Connection;
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{
    Backend, TestDatabase, TestServer, connect_options, entry, eventually, job_entry, logwell, task_entry,
    test_settings,
};

conformance!(
    retention_during_a_stressed_follow_leaves_it_exact,
    ids_older_than_their_retention_are_refused,
    expired_logs_go_in_batches_with_their_counts,
    one_process_at_a_time_holds_the_lease,
    the_server_runs_retention_in_the_background
);

const SYSTEM_LOGS: usize = 30;
const JOB_LOGS: usize = 25;
const TASK_LOGS: usize = 20;

/// Tasks kept an hour, system logs an hour, job logs forever.
fn hourly(batch_logs: usize) -> RetentionSettings {
    RetentionSettings {
        policy: RetentionPolicy { system: Some(TimeDelta::hours(1)), job: None, task: Some(TimeDelta::hours(1)) },
        interval: Duration::from_secs(3600),
        batch_logs,
    }
}

fn at_level(log: pb::LogEntry, index: usize) -> pb::LogEntry {
    let levels = [pb::LogLevel::Info, pb::LogLevel::Warn, pb::LogLevel::Error];
    pb::LogEntry { level: levels[index % levels.len()].into(), ..log }
}

/// Writes the three types' logs; answers the job run.
async fn fill(server: &TestServer) -> Uuid {
    let (run, task) = (Uuid::now_v7(), Uuid::now_v7());
    let system = (0..SYSTEM_LOGS).map(|index| at_level(entry("system"), index)).collect();
    server.system().write_system_logs(pb::WriteSystemLogsRequest { logs: system }).await.expect("write");
    let jobs = (0..JOB_LOGS).map(|index| at_level(job_entry(run, "job"), index)).collect();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs: jobs }).await.expect("write");
    let tasks = (0..TASK_LOGS).map(|index| at_level(task_entry(run, task, "task"), index)).collect();
    server.task().write_task_logs(pb::WriteTaskLogsRequest { logs: tasks }).await.expect("write");
    run
}

async fn expired_logs_go_in_batches_with_their_counts(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = fill(&server).await;
    // As a server with a retention limit opens it: with the expiry index.
    let options = logwell::store::ConnectOptions { expiry_index: true, ..connect_options() };
    let store = logwell::store::connect(&server.database.url, &options, logwell::live::Hub::new()).await.expect("open");
    let stats = Arc::new(RetentionStats::default());
    let retention = Retention::new(store, hourly(7), stats.clone());

    // Nothing younger than its limit goes.
    let now = retention.pass(Utc::now()).await.expect("pass");
    assert_eq!(now, [(LogType::System, 0), (LogType::Task, 0)]);

    // Two hours on, system and task logs have passed their hour.
    let later = Utc::now() + TimeDelta::hours(2);
    let estimates = retention.estimate(later).await.expect("estimate");
    let counted: Vec<(LogType, u64)> =
        estimates.iter().map(|(log_type, estimate)| (*log_type, estimate.logs)).collect();
    assert_eq!(counted, [(LogType::System, SYSTEM_LOGS as u64), (LogType::Task, TASK_LOGS as u64)]);
    for (_, estimate) in &estimates {
        assert!(estimate.bytes > 300 * estimate.logs, "{estimate:?}");
        assert!(estimate.oldest <= estimate.newest && estimate.oldest.is_some(), "{estimate:?}");
    }
    let expired = retention.pass(later).await.expect("pass");
    assert_eq!(expired, [(LogType::System, SYSTEM_LOGS as u64), (LogType::Task, TASK_LOGS as u64)]);
    assert_eq!(stats.expired(LogType::System), SYSTEM_LOGS as u64);
    assert_eq!(stats.passes(), 2);

    let listed = |log_type: pb::LogType| {
        let mut query = server.query();
        async move {
            let request = pb::ListLogsRequest { r#type: log_type.into(), page_size: 1_000, ..Default::default() };
            query.list_logs(request).await.expect("list").into_inner().logs.len()
        }
    };
    assert_eq!(listed(pb::LogType::System).await, 0);
    assert_eq!(listed(pb::LogType::Task).await, 0);
    assert_eq!(listed(pb::LogType::Job).await, JOB_LOGS);

    // The run counts what it holds now; its seqs go on where they were.
    let get = pb::GetJobRunRequest { job_run_id: run.to_string() };
    let state = server.job_runs().get_job_run(get).await.expect("get").into_inner().job_run.expect("run");
    let counts = state.level_counts.expect("counts");
    assert_eq!([counts.info, counts.warn, counts.error], [9, 8, 8], "the job logs' levels");
    assert_eq!(state.log_count, JOB_LOGS as i64);
    assert_eq!(state.last_seq, (JOB_LOGS + TASK_LOGS) as i64);
    // Job logs took seqs 1 to 25 and were kept; task logs took 26 to 45.
    assert_eq!(state.first_retained_seq, 1);
    let more = pb::WriteJobLogRequest { log: Some(job_entry(run, "after the expiry")) };
    let receipt = server.job().write_job_log(more).await.expect("write").into_inner().receipt.expect("receipt");
    assert_eq!(receipt.seq, (JOB_LOGS + TASK_LOGS + 1) as i64, "no seq is given out twice");
    assert!(retention.pass(later).await.expect("again").iter().all(|(_, logs)| *logs == 0));

    // Job logs kept an hour, as of an hour after the 25th was received: the
    // run's first 25 seqs go, and reading from its start begins after them.
    let page = pb::ListLogsRequest { job_run_id: run.to_string(), page_size: 1_000, ..Default::default() };
    let logs = server.query().list_logs(page.clone()).await.expect("list").into_inner().logs;
    let received = logs[JOB_LOGS - 1].received_at.expect("received_at");
    let received = chrono::DateTime::from_timestamp(received.seconds, received.nanos as u32).expect("a time");
    let jobs = RetentionSettings {
        policy: RetentionPolicy { job: Some(TimeDelta::hours(1)), ..RetentionPolicy::default() },
        ..hourly(7)
    };
    let store = server.store.clone();
    let expired = Retention::new(store, jobs, Arc::default())
        .pass(received + TimeDelta::hours(1) + TimeDelta::microseconds(1))
        .await
        .expect("pass");
    assert_eq!(expired, [(LogType::Job, JOB_LOGS as u64)]);
    let get = pb::GetJobRunRequest { job_run_id: run.to_string() };
    let state = server.job_runs().get_job_run(get).await.expect("get").into_inner().job_run.expect("run");
    assert_eq!((state.first_retained_seq, state.log_count), ((JOB_LOGS + TASK_LOGS + 1) as i64, 1));
    let left = server.query().list_logs(page).await.expect("list").into_inner().logs;
    let first_retained = (JOB_LOGS + TASK_LOGS + 1) as i64;
    assert_eq!(left.iter().map(|log| log.seq).collect::<Vec<_>>(), [first_retained]);

    // A follower from before the gap is told, then goes on from the first
    // stored log; one already past it is told nothing.
    for (after_seq, told) in [(0, true), (30, true), (first_retained - 1, false)] {
        let follow = pb::StreamLogsRequest {
            job_run_id: run.to_string(),
            start: Some(pb::stream_logs_request::Start::AfterSeq(after_seq)),
            ..Default::default()
        };
        let mut stream = server.stream().stream_logs(follow).await.expect("stream").into_inner();
        let mut delivered = crate::streams::Delivered::default();
        crate::streams::read_stream(&mut stream, &mut delivered, |delivered| !delivered.logs.is_empty()).await;
        let expected: Vec<pb::StreamExpired> =
            if told { vec![pb::StreamExpired { after_seq, first_retained_seq: first_retained }] } else { Vec::new() };
        assert_eq!(delivered.expired, expected, "after_seq {after_seq}");
        assert_eq!(delivered.seqs(), [first_retained]);
    }
}

async fn one_process_at_a_time_holds_the_lease(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let now = Utc::now();
    let until = now + TimeDelta::minutes(2);
    let store = &server.store;
    assert!(store.take_lease("retention", first, now, until).await.expect("take"));
    assert!(!store.take_lease("retention", second, now, until).await.expect("held"), "held by the first");
    assert!(store.take_lease("retention", first, now, until).await.expect("renew"), "renewed by its holder");
    assert!(store.take_lease("other", second, now, until).await.expect("another lease"));
    let lapsed = until + TimeDelta::seconds(1);
    assert!(store.take_lease("retention", second, lapsed, lapsed + TimeDelta::minutes(2)).await.expect("lapsed"));
    assert!(!store.take_lease("retention", first, lapsed, lapsed).await.expect("now the second's"));

    // A pass needs the lease: while another process holds it, none runs.
    let retention = Retention::new(server.store.clone(), hourly(100), Arc::default());
    let held = retention.pass(Utc::now()).await.expect_err("the lease is the second's");
    assert!(held.to_string().contains("another process holds the retention lease"), "{held}");
}

async fn the_server_runs_retention_in_the_background(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let settings = logwell::server::ServerSettings {
        retention: RetentionSettings { interval: Duration::from_millis(50), ..hourly(100) },
        ..test_settings()
    };
    let server = TestServer::start_with(database, settings).await;
    fill(&server).await;
    eventually("retention passes", Duration::from_secs(10), || async {
        (server.metric("logwell_retention_passes_total").await >= 2.0).then_some(())
    })
    .await;
    // An hour has not passed: everything is still there.
    let request = pb::ListLogsRequest { r#type: pb::LogType::System.into(), page_size: 1_000, ..Default::default() };
    assert_eq!(server.query().list_logs(request).await.expect("list").into_inner().logs.len(), SYSTEM_LOGS);
    // The oldest log left of each limited type, and the database's size.
    let oldest = server.metric("logwell_oldest_log_timestamp_seconds{type=\"system\"}").await;
    let age = Utc::now().timestamp_micros() as f64 / 1e6 - oldest;
    assert!((0.0..60.0).contains(&age), "the system logs were written in this test, {age} s ago");
    assert!(server.metric("logwell_database_size_bytes").await > 4_096.0);
    assert_eq!(server.metric("logwell_emptied_partitions_total{type=\"task\"}").await, 0.0);
}

#[tokio::test]
async fn the_command_line_says_what_would_go_and_refuses_unsafe_limits() {
    let database = TestDatabase::create(Backend::Sqlite).await;
    let server = TestServer::start_with(database, test_settings()).await;
    fill(&server).await;
    let url = server.database.url.clone();
    let retention = |args: &[&str]| logwell().arg("retention").args(["--database-url", &url]).args(args).output();

    let later = (Utc::now() + TimeDelta::hours(2)).to_rfc3339();
    let dry = retention(&["--retention-task", "1h", "--dry-run", "--as-of", &later]).await.expect("run");
    let printed = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    assert!(printed.contains(&format!("{:<6} {TASK_LOGS:>12} logs", "task")), "{printed}");

    let now = retention(&["--retention-task", "1h", "--retention-system", "2h"]).await.expect("run");
    let printed = String::from_utf8_lossy(&now.stdout);
    assert!(now.status.success(), "{}", String::from_utf8_lossy(&now.stderr));
    for log_type in ["system", "task"] {
        assert!(printed.contains(&format!("{log_type:<6} {:>12} logs", 0)), "{printed}");
    }

    let short = retention(&["--retention-system", "30m"]).await.expect("run");
    assert_eq!(short.status.code(), Some(1));
    let said = String::from_utf8_lossy(&short.stderr);
    assert!(said.contains("--retention-system 30m is shorter than the shortest retention, 1h"), "{said}");

    let unparsable = retention(&["--retention-job", "a while"]).await.expect("run");
    assert_eq!(unparsable.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&unparsable.stderr).contains("--retention-job"));

    // Deleting as of another time would delete logs before their time.
    let backdated = retention(&["--retention-task", "1h", "--as-of", &later]).await.expect("run");
    assert_eq!(backdated.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&backdated.stderr).contains("--dry-run"));
}

/// A new SQLite file gives the pages of expired logs back to the file
/// system (auto_vacuum=INCREMENTAL, and incremental_vacuum after each batch).
#[tokio::test]
async fn sqlite_gives_expired_pages_back() {
    let server = TestServer::start(Backend::Sqlite).await;
    let message = "x".repeat(500);
    for _ in 0..20 {
        let logs = (0..1_000).map(|_| entry(&message)).collect();
        server.system().write_system_logs(pb::WriteSystemLogsRequest { logs }).await.expect("write");
    }
    let pages = || async {
        let mut connection = sqlx::SqliteConnection::connect(&server.database.url).await.expect("open");
        let (mode,): (i64,) = sqlx::query_as("PRAGMA auto_vacuum").fetch_one(&mut connection).await.expect("mode");
        assert_eq!(mode, 2, "incremental");
        let (pages,): (i64,) = sqlx::query_as("PRAGMA page_count").fetch_one(&mut connection).await.expect("pages");
        pages
    };
    let before = pages().await;
    let retention = Retention::new(server.store.clone(), hourly(500), Arc::default());
    retention.pass(Utc::now() + TimeDelta::hours(2)).await.expect("pass");
    let after = pages().await;
    assert!(after * 4 < before, "{before} pages before, {after} after");
}

/// A UUIDv7 client id older than its type's retention may name a log that
/// expired: a resend would store it again, under a new seq, so it is refused.
async fn ids_older_than_their_retention_are_refused(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let mut settings = test_settings();
    settings.limits.retention = hourly(100).policy;
    let server = TestServer::start_with(database, settings).await;
    let made = |ago: TimeDelta| {
        let time = Utc::now() - ago;
        let timestamp = uuid::Timestamp::from_unix(
            uuid::NoContext,
            u64::try_from(time.timestamp()).expect("after 1970"),
            time.timestamp_subsec_nanos(),
        );
        Uuid::new_v7(timestamp).to_string()
    };
    let (run, task) = (Uuid::now_v7(), Uuid::now_v7());
    let task_log = |id: String| pb::WriteTaskLogsRequest {
        logs: vec![pb::LogEntry { id, ..task_entry(run, task, "late resend") }],
    };
    let refused = server.task().write_task_logs(task_log(made(TimeDelta::hours(2)))).await;
    let status = refused.expect_err("older than task logs are kept");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(crate::helpers::violated_fields(&status), ["logs[0].id"]);
    assert!(status.message().contains("longer ago than task logs are kept (1h)"), "{}", status.message());
    server.task().write_task_logs(task_log(made(TimeDelta::minutes(30)))).await.expect("within the hour");
    server.task().write_task_logs(task_log(Uuid::new_v4().to_string())).await.expect("a v4 id carries no time");
    // Job logs are kept forever here: any id will do.
    let job_log =
        pb::WriteJobLogRequest { log: Some(pb::LogEntry { id: made(TimeDelta::days(400)), ..job_entry(run, "old") }) };
    server.job().write_job_log(job_log).await.expect("job logs have no limit");
}

/// Logs of another run, received ten days ago, expire while writers write a
/// run and followers follow it (the stream stress test): on PostgreSQL
/// their day's partitions are emptied and dropped, on SQLite their rows
/// deleted in batches, and every follower still gets every log once, in
/// order.
async fn retention_during_a_stressed_follow_leaves_it_exact(backend: Backend) {
    let server = TestServer::start(backend).await;
    let old = Uuid::now_v7();
    for _ in 0..5 {
        let logs = (0..1_000).map(|_| job_entry(old, "old")).collect();
        server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    }
    match backend {
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&server.database.url).await.expect("connect");
            crate::partitions::age(&mut connection, &[old], 10, 0, false).await;
        }
        Backend::Sqlite => {
            let ten_days = TimeDelta::days(10).num_microseconds().expect("micros");
            let age = format!("UPDATE logs SET received_at = received_at - {ten_days} WHERE job_run_id = '{old}'");
            server.database.execute_raw(&age).await.expect("age the run");
        }
    }
    let options = logwell::store::ConnectOptions { expiry_index: true, ..connect_options() };
    let store = logwell::store::connect(&server.database.url, &options, logwell::live::Hub::new()).await.expect("open");
    let daily = RetentionSettings {
        policy: RetentionPolicy { job: Some(TimeDelta::days(1)), ..RetentionPolicy::default() },
        ..hourly(100)
    };
    let retention = Retention::new(store, daily, Arc::new(RetentionStats::default()));
    let expiring = tokio::spawn(async move {
        // Once the followers follow and the writers write.
        tokio::time::sleep(Duration::from_millis(200)).await;
        retention.pass(Utc::now()).await.expect("pass")
    });
    crate::streams::stress(vec![server.channel.clone()], vec![server.channel.clone()]).await;
    assert_eq!(expiring.await.expect("retention"), [(LogType::Job, 5_000)]);
    let run = server
        .job_runs()
        .get_job_run(pb::GetJobRunRequest { job_run_id: old.to_string() })
        .await
        .expect("get")
        .into_inner()
        .job_run
        .expect("the run");
    assert_eq!((run.log_count, run.last_seq), (0, 5_000));
}
