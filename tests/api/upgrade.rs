//! Upgrading a filled database. On SQLite, `logwell migrate` killed with
//! SIGKILL at any moment of an upgrade leaves a file that the next run
//! finishes upgrading, with every log still there. (SQLite's pending
//! migrations are applied in one transaction, so a kill leaves the old
//! schema or the new.) On PostgreSQL, a migration's backfill is checked.

use std::path::Path;
use std::time::Duration;

use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::job_run_service_client::JobRunServiceClient;
use logwell::proto::v1::log_query_service_client::LogQueryServiceClient;
use logwell::proto::v1::{self as pb};
use sqlx::{ConnectOptions, Connection, Executor};
use uuid::Uuid;

use crate::helpers::{Backend, TestDatabase, job_entry, logwell, send_signal, start_serving};

const RUNS: usize = 40;
const LOGS_PER_RUN: usize = 500;
const SYSTEM_LOGS: usize = 100;
const LOGS: usize = RUNS * LOGS_PER_RUN + SYSTEM_LOGS;
/// The last migration an older logwell applied: 0005, before job runs had
/// integer keys (0006).
const OLDER_VERSION: i64 = 5;
/// How long after its start each interrupted `logwell migrate` is killed:
/// from before it opens the file to after it would have finished.
const KILL_AFTER_MILLIS: [u64; 8] = [0, 2, 5, 10, 20, 40, 80, 160];

/// Each run's first task run; half of a run's logs are this task's.
fn task_of(run: Uuid) -> Uuid {
    Uuid::from_u128(run.as_u128() ^ 1)
}

/// A file as a logwell of migration 0005 left it: its migrations applied and
/// recorded as logwell records them, then filled through its layout (the one
/// that writer knew) with `RUNS` job runs, half job and half task logs, the
/// first run completed, and system logs. Answers its URL and the runs.
async fn filled_older_file(folder: &Path) -> (String, Vec<Uuid>) {
    let url = format!("sqlite:{}", folder.join("filled.db").display());
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("url");
    let mut connection = options.create_if_missing(true).connect().await.expect("create");
    connection.execute("PRAGMA journal_mode = WAL").await.expect("WAL");
    connection
        .execute(
            "CREATE TABLE logwell_migrations (version INTEGER PRIMARY KEY NOT NULL, description TEXT NOT NULL, \
             checksum BLOB NOT NULL, applied_at INTEGER NOT NULL) STRICT",
        )
        .await
        .expect("migrations table");
    let migrator = sqlx::migrate!("migrations/sqlite");
    for migration in migrator.iter().filter(|migration| migration.version <= OLDER_VERSION) {
        sqlx::raw_sql(&migration.sql).execute(&mut connection).await.expect("an older migration");
        sqlx::query("INSERT INTO logwell_migrations VALUES (?, ?, ?, 0)")
            .bind(migration.version)
            .bind(&*migration.description)
            .bind(&*migration.checksum)
            .execute(&mut connection)
            .await
            .expect("record it");
    }
    let runs: Vec<Uuid> = (0..RUNS).map(|_| Uuid::now_v7()).collect();
    let mut transaction = connection.begin().await.expect("begin");
    for (index, run) in runs.iter().enumerate() {
        let completed = (index == 0).then_some(1_700_000_001_000_000i64);
        sqlx::query(
            "INSERT INTO job_runs (id, next_seq, first_log_time, last_log_time, completed_at, outcome) \
             VALUES (?, ?, 1700000000000000, 1700000000000000, ?, ?)",
        )
        .bind(run.to_string())
        .bind(LOGS_PER_RUN as i64 + 1)
        .bind(completed)
        .bind(completed.map(|_| "succeeded"))
        .execute(&mut *transaction)
        .await
        .expect("a job run");
    }
    let system_sequence = Uuid::nil().to_string();
    sqlx::query("INSERT INTO job_runs (id, next_seq) VALUES (?, ?)")
        .bind(&system_sequence)
        .bind(SYSTEM_LOGS as i64 + 1)
        .execute(&mut *transaction)
        .await
        .expect("the system sequence");
    // Interleaved across runs, as a many-runs writer leaves them.
    for seq in 1..=LOGS_PER_RUN as i64 {
        for run in &runs {
            let task = (seq % 2 == 0).then(|| task_of(*run).to_string());
            insert_older_log(&mut transaction, Some(run.to_string()), task, seq).await;
        }
    }
    for seq in 1..=SYSTEM_LOGS as i64 {
        insert_older_log(&mut transaction, None, None, seq).await;
    }
    transaction.commit().await.expect("commit");
    connection.close().await.expect("close");
    (url, runs)
}

/// One log as migration 0005's layout stores it; its message names its seq.
async fn insert_older_log(
    connection: &mut sqlx::SqliteConnection,
    job_run_id: Option<String>,
    task_run_id: Option<String>,
    seq: i64,
) {
    let (log_type, stream) = match (&job_run_id, &task_run_id) {
        (None, _) => ("system", "system"),
        (Some(_), None) => ("job", "stdout"),
        (Some(_), Some(_)) => ("task", "stderr"),
    };
    sqlx::query(
        "INSERT INTO logs (id, type, job_run_id, task_run_id, seq, event_time, received_at, level, stream, \
         message) VALUES (?, ?, ?, ?, ?, 1700000000000000, 1700000000000000, 'info', ?, ?)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(log_type)
    .bind(job_run_id)
    .bind(task_run_id)
    .bind(seq)
    .bind(stream)
    .bind(format!("log {seq}"))
    .execute(connection)
    .await
    .expect("an older log");
}

/// The SQLite file behind `url`, and its write-ahead log if it has one.
fn files(url: &str) -> Vec<String> {
    let file = url.trim_start_matches("sqlite:").to_string();
    [file.clone(), format!("{file}-wal")].into_iter().filter(|path| Path::new(path).exists()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_killed_at_any_moment_finishes_at_the_next_run_losing_nothing() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let (original, runs) = filled_older_file(folder.path()).await;
    let mut upgraded = Vec::new();
    for (attempt, millis) in KILL_AFTER_MILLIS.into_iter().enumerate() {
        let url = format!("sqlite:{}", folder.path().join(format!("upgrade-{attempt}.db")).display());
        for source in files(&original) {
            let target = source.replace("filled.db", &format!("upgrade-{attempt}.db"));
            std::fs::copy(&source, &target).expect("copy the filled file");
        }
        let mut interrupted = logwell().args(["migrate", "--database-url", &url]).spawn().expect("spawn migrate");
        tokio::time::sleep(Duration::from_millis(millis)).await;
        let _ = interrupted.start_kill();
        interrupted.wait().await.expect("wait");

        let finished = logwell().args(["migrate", "--database-url", &url]).output().await.expect("migrate");
        assert!(
            finished.status.success(),
            "after a kill at {millis} ms: {}",
            String::from_utf8_lossy(&finished.stderr)
        );
        let mut connection = sqlx::SqliteConnection::connect(&url).await.expect("open");
        let (logs, keyed, newer_versions): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM logs), \
             (SELECT count(*) FROM logs JOIN job_runs ON job_runs.key = logs.run_key AND job_runs.id = logs.job_run_id), \
             (SELECT count(*) FROM logwell_migrations WHERE version > ?)",
        )
        .bind(OLDER_VERSION)
        .fetch_one(&mut connection)
        .await
        .unwrap_or_else(|error| panic!("after a kill at {millis} ms the upgrade is whole: {error}"));
        assert_eq!(logs, LOGS as i64, "after a kill at {millis} ms");
        assert_eq!(keyed, (RUNS * LOGS_PER_RUN) as i64, "every run's log carries its run's key");
        assert!(newer_versions >= 1, "after a kill at {millis} ms");
        a_file_keeps_its_checks_without_in_lists(&mut connection).await;
        connection.close().await.expect("close");
        upgraded.push(url);
    }
    an_upgraded_file_serves_its_runs(upgraded.last().expect("an upgraded file"), &runs).await;
}

/// Migration 0009 rewrote the CHECKs of `logs` in place: the file is
/// whole, its table has no `IN` list left, and the rewritten CHECKs refuse
/// what the lists refused and take what they took.
async fn a_file_keeps_its_checks_without_in_lists(connection: &mut sqlx::SqliteConnection) {
    let integrity: String =
        sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut *connection).await.expect("check");
    assert_eq!(integrity, "ok");
    let table: String = sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'logs'")
        .fetch_one(&mut *connection)
        .await
        .expect("the logs table");
    assert!(!table.contains(" IN ("), "{table}");
    // Seqs far past the filled file's system logs.
    let insert = |seq: i64, log_type: &'static str, level: &'static str, stream: &'static str| {
        sqlx::query(
            "INSERT INTO logs (id, type, seq, event_time, received_at, level, stream, message) \
             VALUES (?, ?, ?, 0, 0, ?, ?, 'checked')",
        )
        .bind(Uuid::from_u128(seq as u128).to_string())
        .bind(log_type)
        .bind(seq)
        .bind(level)
        .bind(stream)
    };
    let refused = [("system", "loud", "system"), ("system", "info", "stdin"), ("service", "info", "system")];
    for (offset, (log_type, level, stream)) in refused.into_iter().enumerate() {
        let error = insert(1_000_000 + offset as i64, log_type, level, stream)
            .execute(&mut *connection)
            .await
            .expect_err("a value outside the model");
        assert!(error.to_string().contains("CHECK constraint failed"), "{log_type}/{level}/{stream}: {error}");
    }
    let mut taken = sqlx::Connection::begin(&mut *connection).await.expect("begin");
    for (offset, level) in ["trace", "debug", "info", "warn", "error", "fatal"].into_iter().enumerate() {
        insert(2_000_000 + offset as i64, "system", level, "system")
            .execute(&mut *taken)
            .await
            .unwrap_or_else(|error| panic!("level {level}: {error}"));
    }
    taken.rollback().await.expect("rollback");
}

/// The upgraded runs read back whole and in order, by run and by task run,
/// and go on taking logs from the seq they had reached; the completed one
/// stays closed.
async fn an_upgraded_file_serves_its_runs(url: &str, runs: &[Uuid]) {
    let (mut server, address, _log) = start_serving(url).await;
    let mut query = LogQueryServiceClient::connect(address.clone()).await.expect("connect");
    let mut writer = JobLogServiceClient::connect(address.clone()).await.expect("connect");
    let mut job_runs = JobRunServiceClient::connect(address).await.expect("connect");
    for run in &runs[..3] {
        let page = query
            .list_logs(pb::ListLogsRequest { job_run_id: run.to_string(), page_size: 1_000, ..Default::default() })
            .await
            .expect("list a run")
            .into_inner();
        let seqs: Vec<i64> = page.logs.iter().map(|log| log.seq).collect();
        assert_eq!(seqs, (1..=LOGS_PER_RUN as i64).collect::<Vec<_>>(), "run {run}");
        assert!(page.logs.iter().all(|log| log.message == format!("log {}", log.seq)));
        let task = query
            .list_logs(pb::ListLogsRequest {
                task_run_id: task_of(*run).to_string(),
                page_size: 1_000,
                ..Default::default()
            })
            .await
            .expect("list a task run")
            .into_inner();
        let task_seqs: Vec<i64> = task.logs.iter().map(|log| log.seq).collect();
        assert_eq!(task_seqs, (2..=LOGS_PER_RUN as i64).step_by(2).collect::<Vec<_>>(), "task run of {run}");
    }
    let refused = writer
        .write_job_logs(pb::WriteJobLogsRequest { logs: vec![job_entry(runs[0], "after completion")] })
        .await
        .expect_err("the completed run takes no more logs");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    let written = writer
        .write_job_logs(pb::WriteJobLogsRequest {
            logs: vec![job_entry(runs[1], "after the upgrade"), job_entry(runs[1], "and another")],
        })
        .await
        .expect("an upgraded run takes more logs")
        .into_inner();
    let seqs: Vec<i64> = written.receipts.iter().map(|receipt| receipt.seq).collect();
    assert_eq!(seqs, vec![LOGS_PER_RUN as i64 + 1, LOGS_PER_RUN as i64 + 2]);
    // Migration 0007 counted the older logs by level, and took each run's
    // activity from them; counting goes on from there.
    let listing = job_runs.list_job_runs(pb::ListJobRunsRequest::default()).await.expect("list").into_inner();
    assert_eq!(listing.job_runs.len(), runs.len(), "every run, and not the system sequence");
    let written_to = listing.job_runs.first().expect("a run");
    assert_eq!(written_to.job_run_id, runs[1].to_string(), "the run written after the upgrade is the most recent");
    assert_eq!(written_to.level_counts.as_ref().map(|counts| counts.info), Some(LOGS_PER_RUN as i64 + 2));
    let completed = listing.job_runs.iter().find(|run| run.job_run_id == runs[0].to_string()).expect("listed");
    let activity = completed.last_activity_time.as_ref().map(|time| time.seconds);
    assert_eq!(activity, Some(1_700_000_001), "its completion, later than its logs");
    send_signal(&server, "TERM").await;
    assert!(server.wait().await.expect("wait").success());
}

/// A PostgreSQL database as migration 0008 left it, with runs and logs,
/// upgraded by `logwell migrate`: migration 0009 counts each run's logs by
/// level and takes its activity from its last log or its completion.
#[tokio::test]
async fn a_postgres_upgrade_counts_the_runs_logs_by_level() {
    let (database, mut connection) = postgres_at(8).await;
    let (logged, completed) = (Uuid::now_v7(), Uuid::now_v7());
    let levels = ["info", "info", "error", "warn"];
    let allocate = "SELECT logwell_allocate(ARRAY[$1, $2]::uuid[], ARRAY[4, 0]::bigint[], \
         ARRAY['2023-11-14T22:13:20Z', '2023-11-14T22:13:20Z']::timestamptz[], \
         ARRAY['2023-11-14T22:13:20Z', '2023-11-14T22:13:20Z']::timestamptz[])";
    sqlx::query(allocate).bind(logged).bind(completed).execute(&mut connection).await.expect("older allocation");
    for (index, level) in levels.iter().enumerate() {
        sqlx::query(
            "INSERT INTO logs (id, type, job_run_id, seq, event_time, received_at, level, stream, message) \
             VALUES ($1, 'job', $2, $3, '2023-11-14T22:13:20Z', '2023-11-14T22:13:20.5Z', $4, 'stdout', 'line')",
        )
        .bind(Uuid::now_v7())
        .bind(logged)
        .bind(index as i64 + 1)
        .bind(level)
        .execute(&mut connection)
        .await
        .expect("an older log");
    }
    sqlx::query("UPDATE job_runs SET completed_at = '2023-11-15T00:00:00.7Z', outcome = 'failed' WHERE id = $1")
        .bind(completed)
        .execute(&mut connection)
        .await
        .expect("an older completion");

    let migrated = logwell().args(["migrate", "--database-url", &database.url]).output().await.expect("migrate");
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let counts: Vec<(Uuid, i64, i64, i64, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT id, info_logs, warn_logs, error_logs, active_at FROM job_runs WHERE id IN ($1, $2) ORDER BY id",
    )
    .bind(logged)
    .bind(completed)
    .fetch_all(&mut connection)
    .await
    .expect("read the runs");
    let second = |text: &str| text.parse::<chrono::DateTime<chrono::Utc>>().expect("a time");
    assert_eq!(
        counts,
        [(logged, 2, 1, 1, second("2023-11-14T22:13:20Z")), (completed, 0, 0, 0, second("2023-11-15T00:00:00Z")),]
    );
}

/// A PostgreSQL database as a logwell of migration `version` left it, with
/// a connection to it.
async fn postgres_at(version: i64) -> (TestDatabase, sqlx::PgConnection) {
    let database = TestDatabase::create(Backend::Postgres).await;
    let mut connection = sqlx::PgConnection::connect(&database.url).await.expect("connect");
    connection
        .execute(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, \
             execution_time BIGINT NOT NULL)",
        )
        .await
        .expect("migrations table");
    for migration in sqlx::migrate!("migrations/postgres").iter().filter(|migration| migration.version <= version) {
        sqlx::raw_sql(&migration.sql).execute(&mut connection).await.expect("an older migration");
        sqlx::query("INSERT INTO _sqlx_migrations VALUES ($1, $2, now(), true, $3, 0)")
            .bind(migration.version)
            .bind(&*migration.description)
            .bind(&*migration.checksum)
            .execute(&mut connection)
            .await
            .expect("record it");
    }
    (database, connection)
}

/// A PostgreSQL database as migration 0010 left it, upgraded to day
/// partitions (0011): its logs stay where they were (the partition
/// logs_before_partitions), read back whole; its runs go on from their seqs
/// there; a new run's logs go to its day.
#[tokio::test]
async fn a_postgres_upgrade_to_partitions_keeps_every_log_in_place() {
    let (database, mut connection) = postgres_at(10).await;
    let old = Uuid::now_v7();
    sqlx::query(
        "SELECT logwell_allocate(ARRAY[$1, '00000000-0000-0000-0000-000000000000']::uuid[], ARRAY[3, 2]::bigint[], \
         ARRAY[now(), now()], ARRAY[now(), now()], ARRAY[0, 0, 3, 0, 0, 0, 0, 0, 2, 0, 0, 0]::bigint[], now())",
    )
    .bind(old)
    .execute(&mut connection)
    .await
    .expect("older allocation");
    for (run, seq) in [(Some(old), 1), (Some(old), 2), (Some(old), 3), (None, 1), (None, 2)] {
        sqlx::query(
            "INSERT INTO logs (id, type, job_run_id, seq, event_time, received_at, level, stream, message) \
             VALUES ($1, CASE WHEN $2::uuid IS NULL THEN 'system' ELSE 'job' END, $2, $3, now(), now(), 'info', \
             CASE WHEN $2::uuid IS NULL THEN 'system' ELSE 'stdout' END, 'before')",
        )
        .bind(Uuid::now_v7())
        .bind(run)
        .bind(seq)
        .execute(&mut connection)
        .await
        .expect("an older log");
    }

    let migrated = logwell().args(["migrate", "--database-url", &database.url]).output().await.expect("migrate");
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let (mut server, address, _log) = start_serving(&database.url).await;
    let mut writer = JobLogServiceClient::connect(address.clone()).await.expect("connect");
    let query = LogQueryServiceClient::connect(address).await.expect("connect");
    let new = Uuid::now_v7();
    let written = writer
        .write_job_logs(pb::WriteJobLogsRequest { logs: vec![job_entry(old, "after"), job_entry(new, "new")] })
        .await
        .expect("write after the upgrade")
        .into_inner();
    let seqs: Vec<i64> = written.receipts.iter().map(|receipt| receipt.seq).collect();
    assert_eq!(seqs, [4, 1], "the old run goes on from its seq");
    let listed = |run: Option<Uuid>| {
        let request = pb::ListLogsRequest {
            job_run_id: run.map(|run| run.to_string()).unwrap_or_default(),
            r#type: if run.is_none() { pb::LogType::System.into() } else { pb::LogType::Unspecified.into() },
            page_size: 100,
            ..Default::default()
        };
        let mut query = query.clone();
        async move {
            let logs = query.list_logs(request).await.expect("list").into_inner().logs;
            logs.iter().map(|log| (log.seq, log.message.clone())).collect::<Vec<_>>()
        }
    };
    let before = |seq: i64| (seq, "before".to_string());
    assert_eq!(listed(Some(old)).await, [before(1), before(2), before(3), (4, "after".to_string())]);
    assert_eq!(listed(Some(new)).await, [(1, "new".to_string())]);
    assert_eq!(listed(None).await, [before(1), before(2)]);
    let partitions: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT job_run_id, tableoid::regclass::text FROM logs WHERE message <> 'before' ORDER BY 2 DESC",
    )
    .fetch_all(&mut connection)
    .await
    .expect("where they are");
    assert_eq!(partitions[0], (old, "logs_before_partitions".to_string()));
    assert!(partitions[1].1.starts_with("logs_2") && partitions[1].1.ends_with("_job"), "{partitions:?}");
    send_signal(&server, "TERM").await;
    assert!(server.wait().await.expect("wait").success());
}
