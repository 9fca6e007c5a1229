//! PostgreSQL's day partitions (migration 0011): days are made ahead, once,
//! however many replicas start together; retention empties a type's day
//! whose every log expired, with its runs' counts, drops a day left empty,
//! and deletes row by row what a day still holding a recent log keeps; a
//! run written after its day went, or before its day was made, keeps its
//! logs readable and in order.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, TimeDelta, Utc};
use logwell::model::{LogType, RetentionPolicy};
use logwell::proto::v1::{self as pb};
use logwell::retention::{Retention, RetentionSettings, RetentionStats};
use sqlx::Connection;
use uuid::Uuid;

use crate::helpers::{Backend, TestDatabase, TestServer, connect_options, entry, job_entry, task_entry};

/// Every type kept a day.
fn daily() -> RetentionSettings {
    let day = Some(TimeDelta::days(1));
    RetentionSettings {
        policy: RetentionPolicy { system: day, job: day, task: day },
        interval: Duration::from_secs(3600),
        batch_logs: 100,
    }
}

async fn today(connection: &mut sqlx::PgConnection) -> NaiveDate {
    sqlx::query_scalar("SELECT (now() AT TIME ZONE 'UTC')::date").fetch_one(connection).await.expect("today")
}

async fn exists(connection: &mut sqlx::PgConnection, table: &str) -> bool {
    sqlx::query_scalar::<_, Option<String>>("SELECT to_regclass($1)::text")
        .bind(table)
        .fetch_one(connection)
        .await
        .expect("look up")
        .is_some()
}

fn partition(day: NaiveDate) -> String {
    format!("logs_{}", day.format("%Y%m%d"))
}

/// Moves `runs` (and, if asked, the system logs) `days` back: their rows
/// and logs to that day's partitions, their logs received that much
/// earlier, but for the `keep_recent` newest seqs of each run.
pub async fn age(connection: &mut sqlx::PgConnection, runs: &[Uuid], days: i64, keep_recent: i64, system: bool) {
    let mut transaction = connection.begin().await.expect("begin");
    sqlx::query("SELECT logwell_create_partitions((now() AT TIME ZONE 'UTC')::date - $1::int)")
        .bind(days as i32)
        .execute(&mut *transaction)
        .await
        .expect("create the day");
    let day = "(now() AT TIME ZONE 'UTC')::date - $2::int";
    sqlx::query(&format!("UPDATE job_runs SET partition_day = {day} WHERE id = ANY($1)"))
        .bind(runs)
        .bind(days as i32)
        .execute(&mut *transaction)
        .await
        .expect("age the runs");
    sqlx::query(&format!(
        "UPDATE logs SET partition_day = {day}, received_at = CASE WHEN seq > \
         (SELECT next_seq - 1 - $3 FROM job_runs WHERE id = logs.job_run_id) THEN received_at \
         ELSE received_at - make_interval(days => $2::int) END WHERE job_run_id = ANY($1)"
    ))
    .bind(runs)
    .bind(days as i32)
    .bind(keep_recent)
    .execute(&mut *transaction)
    .await
    .expect("age the runs' logs");
    if system {
        sqlx::query(
            "UPDATE logs SET partition_day = (now() AT TIME ZONE 'UTC')::date - $1::int, \
             received_at = received_at - make_interval(days => $1::int) WHERE type = 'system'",
        )
        .bind(days as i32)
        .execute(&mut *transaction)
        .await
        .expect("age the system logs");
    }
    transaction.commit().await.expect("commit");
}

async fn write_run(server: &TestServer, jobs: usize, tasks: usize) -> Uuid {
    let (run, task) = (Uuid::now_v7(), Uuid::now_v7());
    let logs = (0..jobs).map(|_| job_entry(run, "job")).collect();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    if tasks > 0 {
        let logs = (0..tasks).map(|_| task_entry(run, task, "task")).collect();
        server.task().write_task_logs(pb::WriteTaskLogsRequest { logs }).await.expect("write");
    }
    run
}

async fn job_run(server: &TestServer, run: Uuid) -> pb::JobRun {
    let get = pb::GetJobRunRequest { job_run_id: run.to_string() };
    server.job_runs().get_job_run(get).await.expect("get").into_inner().job_run.expect("the run")
}

async fn seqs(server: &TestServer, run: Uuid) -> Vec<i64> {
    let page = pb::ListLogsRequest { job_run_id: run.to_string(), page_size: 1_000, ..Default::default() };
    server.query().list_logs(page).await.expect("list").into_inner().logs.iter().map(|log| log.seq).collect()
}

#[tokio::test]
async fn days_are_made_ahead_once_by_replicas_starting_together() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let options = connect_options();
    let replica = || logwell::store::connect(&database.url, &options, logwell::live::Hub::new());
    let (first, second, third, fourth) = tokio::join!(replica(), replica(), replica(), replica());
    let mut created = 0;
    for replica in [first, second, third, fourth] {
        let store = replica.expect("a replica opens");
        created += store.partitions_created();
        store.close().await;
    }
    assert_eq!(created, 4, "today and three days ahead, made once among them");
    let mut connection = sqlx::PgConnection::connect(&database.url).await.expect("connect");
    let today = today(&mut connection).await;
    for ahead in 0..4 {
        let day = partition(today + TimeDelta::days(ahead));
        for leaf in ["", "_system", "_job", "_task"] {
            assert!(exists(&mut connection, &format!("{day}{leaf}")).await, "{day}{leaf}");
        }
    }
    assert!(!exists(&mut connection, &partition(today + TimeDelta::days(4))).await);
}

#[tokio::test]
async fn expired_days_are_emptied_and_dropped_and_the_rest_deleted_by_rows() {
    let server = TestServer::start(Backend::Postgres).await;
    let mut connection = sqlx::PgConnection::connect(&server.database.url).await.expect("connect");
    let today = today(&mut connection).await;
    // Run A and the system logs ten days back, all received then; run B
    // nine days back, its last log received now.
    let old = write_run(&server, 10, 5).await;
    let system = (0..3).map(|_| entry("system")).collect();
    server.system().write_system_logs(pb::WriteSystemLogsRequest { logs: system }).await.expect("write");
    let late = write_run(&server, 4, 0).await;
    age(&mut connection, &[old], 10, 0, true).await;
    age(&mut connection, &[late], 9, 1, false).await;

    let options = logwell::store::ConnectOptions { expiry_index: true, ..connect_options() };
    let store = logwell::store::connect(&server.database.url, &options, logwell::live::Hub::new()).await.expect("open");
    let stats = Arc::new(RetentionStats::default());
    let expired = Retention::new(store, daily(), stats.clone()).pass(Utc::now()).await.expect("pass");
    assert_eq!(expired, [(LogType::System, 3), (LogType::Job, 10 + 3), (LogType::Task, 5)]);
    let emptied = [LogType::System, LogType::Job, LogType::Task].map(|log_type| stats.emptied_partitions(log_type));
    assert_eq!(emptied, [1, 1, 1], "ten days back, each type's partition, whole");

    // Ten days back is empty of every type: gone. Nine days back keeps B's
    // recent log; its older ones went by rows.
    assert!(!exists(&mut connection, &partition(today - TimeDelta::days(10))).await);
    assert!(exists(&mut connection, &partition(today - TimeDelta::days(9))).await);
    let run = job_run(&server, old).await;
    assert_eq!((run.log_count, run.last_seq, run.first_retained_seq), (0, 15, 0));
    let run = job_run(&server, late).await;
    assert_eq!((run.log_count, run.last_seq, run.first_retained_seq), (1, 4, 4));
    assert_eq!(seqs(&server, late).await, [4]);

    // A run written after its day went: its log waits in logs_default, and
    // reads of the run find it, after its seqs.
    server
        .job()
        .write_job_logs(pb::WriteJobLogsRequest { logs: vec![job_entry(old, "late")] })
        .await
        .expect("write after the day went");
    assert_eq!(seqs(&server, old).await, [16]);
    let waiting: i64 =
        sqlx::query_scalar("SELECT count(*) FROM logs_default").fetch_one(&mut connection).await.expect("count");
    assert_eq!(waiting, 1);
}

#[tokio::test]
async fn logs_written_before_their_day_is_made_move_into_it() {
    let server = TestServer::start(Backend::Postgres).await;
    let mut connection = sqlx::PgConnection::connect(&server.database.url).await.expect("connect");
    let today = today(&mut connection).await;
    // A run whose day is past the days made ahead.
    let run = Uuid::now_v7();
    let start = pb::StartJobRunRequest { job_run_id: run.to_string(), ..Default::default() };
    server.job_runs().start_job_run(start).await.expect("start");
    sqlx::query("UPDATE job_runs SET partition_day = $2 WHERE id = $1")
        .bind(run)
        .bind(today + TimeDelta::days(6))
        .execute(&mut connection)
        .await
        .expect("move its day");
    let logs = (0..3).map(|_| job_entry(run, "early")).collect();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    assert_eq!(seqs(&server, run).await, [1, 2, 3]);

    let made: bool = sqlx::query_scalar("SELECT logwell_create_partitions($1)")
        .bind(today + TimeDelta::days(6))
        .fetch_one(&mut connection)
        .await
        .expect("make the day");
    assert!(made);
    let (waiting, moved): (i64, i64) = sqlx::query_as(&format!(
        "SELECT (SELECT count(*) FROM logs_default), (SELECT count(*) FROM {}_job)",
        partition(today + TimeDelta::days(6))
    ))
    .fetch_one(&mut connection)
    .await
    .expect("count");
    assert_eq!((waiting, moved), (0, 3));
    assert_eq!(seqs(&server, run).await, [1, 2, 3]);
}
