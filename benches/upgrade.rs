//! Upgrade benchmark: a PostgreSQL database as logwell left it before day
//! partitions (migration 0010), filled with `--logs` logs (5 million by
//! default) of 1,000 job runs, then upgraded by the real `logwell migrate`.
//! It prints how long the upgrade took beside how long the fill did (one
//! COPY pass over the same rows, the cost of moving them), and checks that
//! every log is still there.
//!
//!     cargo bench --bench upgrade
//!     cargo bench --bench upgrade -- --logs 1000000

mod support;

use std::time::{Duration, Instant};

use clap::Parser;
use sqlx::{Connection, Executor};
use uuid::Uuid;

#[derive(Debug, Clone, Parser)]
struct Args {
    /// Logs filled before the upgrade.
    #[arg(long, default_value_t = 5_000_000)]
    logs: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The last migration before day partitions.
const BEFORE_PARTITIONS: i64 = 10;
const RUNS: usize = 1_000;
const LOGS_PER_COPY: usize = 20_000;

/// Applies logwell's migrations up to `BEFORE_PARTITIONS`, recorded as sqlx
/// records them, as that version of logwell left a database.
async fn older_schema(connection: &mut sqlx::PgConnection) {
    connection
        .execute(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, \
             execution_time BIGINT NOT NULL)",
        )
        .await
        .expect("migrations table");
    let migrator = sqlx::migrate!("migrations/postgres");
    for migration in migrator.iter().filter(|migration| migration.version <= BEFORE_PARTITIONS) {
        sqlx::raw_sql(&migration.sql).execute(&mut *connection).await.expect("an older migration");
        sqlx::query("INSERT INTO _sqlx_migrations VALUES ($1, $2, now(), true, $3, 0)")
            .bind(migration.version)
            .bind(&*migration.description)
            .bind(&*migration.checksum)
            .execute(&mut *connection)
            .await
            .expect("record it");
    }
}

/// `logs` logs of `RUNS` runs, job and task logs alternating, with their
/// runs' rows; answers how long the logs' COPYs took.
async fn fill(connection: &mut sqlx::PgConnection, logs: usize) -> Duration {
    let runs: Vec<Uuid> = (0..RUNS).map(|_| Uuid::now_v7()).collect();
    let per_run = logs.div_ceil(RUNS);
    let rows: String = runs.iter().map(|run| format!("{run}\t{}\n", per_run + 1)).collect();
    let mut copy = connection.copy_in_raw("COPY job_runs (id, next_seq) FROM STDIN").await.expect("copy runs");
    copy.send(rows.as_bytes()).await.expect("send");
    copy.finish().await.expect("finish");
    let started = Instant::now();
    let all: Vec<(Uuid, usize)> = runs.iter().flat_map(|run| (1..=per_run).map(move |seq| (*run, seq))).collect();
    for chunk in all.chunks(LOGS_PER_COPY) {
        let mut text = String::new();
        for (run, seq) in chunk {
            let (log_type, task) = if seq % 2 == 1 { ("task", run.to_string()) } else { ("job", "\\N".to_string()) };
            text.push_str(&format!(
                "{}\t{log_type}\t{run}\t{task}\t{seq}\t2026-11-01 10:00:00+00\t2026-11-01 10:00:00+00\tinfo\tstdout\t\
                 {seq:08} step output with a few words of what happened, as a build prints it\t{{\"worker\": \"w-1\"}}\n",
                Uuid::now_v7()
            ));
        }
        let mut copy = connection
            .copy_in_raw(
                "COPY logs (id, type, job_run_id, task_run_id, seq, event_time, received_at, level, stream, message, \
                 metadata) FROM STDIN",
            )
            .await
            .expect("copy logs");
        copy.send(text.as_bytes()).await.expect("send");
        copy.finish().await.expect("finish");
    }
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let url = support::postgres_database().await;
    let mut connection = sqlx::PgConnection::connect(&url).await.expect("connect");
    older_schema(&mut connection).await;
    let filled = fill(&mut connection, args.logs).await;
    connection.execute("VACUUM ANALYZE").await.expect("vacuum");
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM logs").fetch_one(&mut connection).await.expect("count");

    let started = Instant::now();
    let migrated = tokio::process::Command::new(env!("CARGO_BIN_EXE_logwell"))
        .args(["migrate", "--database-url", &url])
        .output()
        .await
        .expect("run logwell migrate");
    let upgrade = started.elapsed();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let (after, in_place): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE tableoid = 'logs_before_partitions'::regclass) FROM logs",
    )
    .fetch_one(&mut connection)
    .await
    .expect("count");
    assert_eq!((after, in_place), (before, before), "every log, where it was");
    println!("PostgreSQL, {before} logs of {RUNS} runs, as migration {BEFORE_PARTITIONS} left them:");
    println!(
        "  filled by COPY in {:.1} s ({:.0} logs/s): about what moving every log once would cost",
        filled.as_secs_f64(),
        before as f64 / filled.as_secs_f64()
    );
    println!(
        "  logwell migrate to day partitions: {:.1} s ({:.0} logs/s), every log kept in logs_before_partitions",
        upgrade.as_secs_f64(),
        before as f64 / upgrade.as_secs_f64()
    );
}
