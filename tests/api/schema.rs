//! The schema on its own: CHECK constraints refuse what the API refuses,
//! whoever writes; migrations are safe twice and from two processes at once.

use std::sync::atomic::{AtomicI64, Ordering};

use logwell::live::Hub;
use logwell::store::connect;
use sqlx::Connection;

use crate::conformance;
use crate::helpers::{Backend, TestDatabase, connect_options};

conformance!(check_constraints_refuse_raw_sql, migrations_run_twice_and_concurrently);

const RUN: &str = "'0191e4a0-0000-7000-8000-000000000001'";
const TASK: &str = "'0191e4a0-0000-7000-8000-000000000002'";

/// One row for a raw INSERT; everything not named is valid.
#[derive(Clone, Copy)]
struct RawRow {
    log_type: &'static str,
    job_run_id: &'static str,
    task_run_id: &'static str,
    stream: &'static str,
    level: &'static str,
    message: &'static str,
    metadata: &'static str,
    /// SQLite's `run_key`, when not the one that matches `job_run_id`.
    run_key: Option<&'static str>,
}

impl RawRow {
    fn new(log_type: &'static str, job_run_id: &'static str, task_run_id: &'static str, stream: &'static str) -> Self {
        RawRow { log_type, job_run_id, task_run_id, stream, level: "info", message: "m", metadata: "{}", run_key: None }
    }

    /// The INSERT, spelled for the backend.
    fn insert(&self, backend: Backend) -> String {
        let time = match backend {
            Backend::Sqlite => "1700000000000000",
            Backend::Postgres => "'2023-11-14T22:13:20Z'",
        };
        // Every row its own seq, so that only the constraint under test can refuse it.
        static NEXT_SEQ: AtomicI64 = AtomicI64::new(1);
        let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
        let id = uuid::Uuid::now_v7();
        let RawRow { log_type, job_run_id, task_run_id, stream, level, message, metadata, run_key } = self;
        // SQLite's logs also carry their job run's integer key; PostgreSQL's
        // their partition day.
        let (key_column, key) = match backend {
            Backend::Sqlite => {
                let matching = if *job_run_id == "NULL" { "NULL" } else { "1" };
                (", run_key", format!(", {}", run_key.unwrap_or(matching)))
            }
            Backend::Postgres => (", partition_day", ", (now() AT TIME ZONE 'UTC')::date".to_string()),
        };
        format!(
            "INSERT INTO logs (id, type, job_run_id, task_run_id, seq, event_time, received_at, level, stream, \
             source, message, metadata{key_column}) VALUES ('{id}', '{log_type}', {job_run_id}, {task_run_id}, {seq}, \
             {time}, {time}, '{level}', '{stream}', 'raw', '{message}', '{metadata}'{key})"
        )
    }
}

async fn check_constraints_refuse_raw_sql(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    connect(&database.url, &connect_options(), Hub::new()).await.expect("migrate").close().await;
    let row = RawRow::new;

    // The statements are sound: with valid values each type is accepted.
    for valid in
        [row("system", "NULL", "NULL", "system"), row("job", RUN, "NULL", "stderr"), row("task", RUN, TASK, "stdout")]
    {
        let statement = valid.insert(backend);
        database.execute_raw(&statement).await.unwrap_or_else(|error| panic!("{statement}: {error}"));
    }

    let job = row("job", RUN, "NULL", "stdout");
    let mut refused = vec![
        (row("system", RUN, "NULL", "system"), "logs_system_shape"),
        (row("system", "NULL", TASK, "system"), "logs_system_shape"),
        (row("system", "NULL", "NULL", "stdout"), "logs_system_shape"),
        (row("job", "NULL", "NULL", "stdout"), "logs_job_shape"),
        (row("job", RUN, TASK, "stdout"), "logs_job_shape"),
        (row("task", RUN, "NULL", "stdout"), "logs_task_shape"),
        (row("task", "NULL", TASK, "stdout"), "logs_task_shape"),
        (row("audit", "NULL", "NULL", "system"), "type"),
        (row("job", RUN, "NULL", "console"), "stream"),
        (RawRow { level: "warning", ..job }, "level"),
        (RawRow { message: "", ..job }, "message"),
        (RawRow { metadata: "[1, 2]", ..job }, "metadata"),
    ];
    if backend == Backend::Sqlite {
        refused.push((RawRow { run_key: Some("NULL"), ..job }, "run_key"));
        refused.push((RawRow { run_key: Some("7"), ..row("system", "NULL", "NULL", "system") }, "run_key"));
    }
    for (row, constraint) in refused {
        let statement = row.insert(backend);
        let error = database.execute_raw(&statement).await.expect_err(&statement);
        assert!(error.contains("check constraint") || error.contains("CHECK constraint"), "{statement}: {error}");
        assert!(error.contains(constraint), "{statement}: expected {constraint} in {error}");
    }
}

#[tokio::test]
async fn sqlite_file_is_created_with_its_folder_in_wal_mode() {
    let database = TestDatabase::create(Backend::Sqlite).await;
    connect(&database.url, &connect_options(), Hub::new()).await.expect("open").close().await;
    // Without create_if_missing, this connection fails unless the file exists.
    let mut connection = sqlx::SqliteConnection::connect(&database.url).await.expect("the data file exists");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut connection).await.expect("pragma");
    assert_eq!(mode, "wal");
}

async fn migrations_run_twice_and_concurrently(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let options = connect_options();
    let (first, second) =
        tokio::join!(connect(&database.url, &options, Hub::new()), connect(&database.url, &options, Hub::new()));
    first.expect("first concurrent migration").close().await;
    second.expect("second concurrent migration").close().await;
    let again = connect(&database.url, &options, Hub::new()).await.expect("migrating an up-to-date database");
    again.check_health().await.expect("healthy after migrations");
    again.close().await;
}
