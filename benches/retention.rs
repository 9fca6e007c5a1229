//! Retention benchmark: a database holding `--logs` logs (5 million by
//! default) received over 10 simulated days (UTC days, a day's runs within
//! it), then the oldest day expired by a running `logwell serve` while
//! writers write. It prints the pass's duration and rate, the writers'
//! acknowledgement p50/p99 during it beside the same writers with retention
//! idle (the same database, the same run), and the database's size before
//! and after, with bytes per log. PostgreSQL runs twice: with its logs in
//! their day partitions, where the day goes by TRUNCATE, and with the same
//! logs in `logs_before_partitions` (as a database upgraded from before
//! partitions holds them), where they go by row deletes.
//!
//!     cargo bench --bench retention
//!     cargo bench --bench retention -- --backend sqlite --logs 1000000 --rate 5000
//!
//! The logs are filled directly (batched INSERTs on SQLite, COPY on
//! PostgreSQL) with their job runs, as logwell stores them, because logwell
//! stamps every log it takes with the time it took it. Each day has its own
//! 1,000 runs of job and task logs; a run's logs are spread over its day.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use clap::Parser;
use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::{self as pb};
use sqlx::{Connection, Executor};
use support::{Backends, Server};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone, Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "both")]
    backend: Backends,
    /// Logs filled, over 10 days.
    #[arg(long, default_value_t = 5_000_000)]
    logs: usize,
    /// Logs a second the writers offer together, in batches of 10.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// Concurrent writers, each on a connection and a run of its own.
    #[arg(long, default_value_t = 20)]
    writers: usize,
    /// How long the writers write with retention idle, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const DAYS: usize = 10;
const RUNS_PER_DAY: usize = 1_000;
const TASKS_PER_RUN: usize = 4;
const LOGS_PER_WRITE: usize = 10;
/// Rows per statement on SQLite, rows per COPY on PostgreSQL.
const FILL_CHUNK: usize = 500;
const FILL_TRANSACTION: usize = 20_000;
/// Of every 20 logs: 17 info, 2 warn, 1 error.
const LEVELS: [&str; 20] = [
    "info", "info", "info", "info", "info", "info", "info", "info", "info", "info", "info", "info", "info", "info",
    "info", "info", "info", "warn", "warn", "error",
];

/// One filled run: its day, its id and task runs, and its logs.
struct FilledRun {
    id: Uuid,
    tasks: [Uuid; TASKS_PER_RUN],
    /// When its first log was received; the rest follow a second apart,
    /// wrapping within the day.
    start: DateTime<Utc>,
    logs: usize,
}

impl FilledRun {
    fn received(&self, seq: usize) -> DateTime<Utc> {
        self.start + TimeDelta::seconds((seq % 80_000) as i64)
    }

    fn level_counts(&self) -> (i64, i64, i64) {
        let count = |level: &str| (0..self.logs).filter(|seq| LEVELS[seq % LEVELS.len()] == level).count() as i64;
        (count("info"), count("warn"), count("error"))
    }

    /// (type, task run) of its log `seq`: odd seqs are task logs.
    fn owner(&self, seq: usize) -> (&'static str, Option<Uuid>) {
        match seq % 2 {
            1 => ("task", Some(self.tasks[(seq / 2) % TASKS_PER_RUN])),
            _ => ("job", None),
        }
    }
}

/// The runs of the 10 UTC days before `today`: day 0, the oldest, is what
/// retention expires (`expiring_limit`). A day's runs begin a minute after
/// its midnight, 80 s apart, and each writes a log a second, all within
/// the day.
fn runs(today: NaiveDate, logs: usize) -> Vec<FilledRun> {
    let per_run = logs.div_ceil(DAYS * RUNS_PER_DAY);
    (0..DAYS * RUNS_PER_DAY)
        .map(|index| {
            let (day, in_day) = (index / RUNS_PER_DAY, index % RUNS_PER_DAY);
            let midnight = (today - TimeDelta::days((DAYS - day) as i64)).and_time(NaiveTime::MIN).and_utc();
            let day_start = midnight + TimeDelta::minutes(1);
            FilledRun {
                id: Uuid::now_v7(),
                tasks: std::array::from_fn(|_| Uuid::now_v7()),
                start: day_start + TimeDelta::seconds(in_day as i64 * 80),
                logs: per_run,
            }
        })
        .collect()
}

fn message(seq: usize) -> String {
    format!("{seq:08} {}", "step output with a few words of what happened ".repeat(4))
}

async fn fill_sqlite(url: &str, runs: &[FilledRun]) {
    let mut connection = sqlx::SqliteConnection::connect(url).await.expect("connect");
    for chunk in runs.chunks(FILL_CHUNK) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO job_runs (id, next_seq, first_log_time, last_log_time, completed_at, outcome, \
             info_logs, warn_logs, error_logs, active_at) ",
        );
        insert.push_values(chunk, |mut row, run| {
            let (info, warn, error) = run.level_counts();
            let last = run.received(run.logs).timestamp_micros();
            row.push_bind(run.id.to_string())
                .push_bind(run.logs as i64 + 1)
                .push_bind(run.start.timestamp_micros())
                .push_bind(last)
                .push_bind(last)
                .push_bind("succeeded")
                .push_bind(info)
                .push_bind(warn)
                .push_bind(error)
                .push_bind(last);
        });
        insert.build().execute(&mut connection).await.expect("insert runs");
    }
    let keys: std::collections::HashMap<String, i64> = sqlx::query_as("SELECT id, key FROM job_runs")
        .fetch_all(&mut connection)
        .await
        .expect("keys")
        .into_iter()
        .collect();
    let rows: Vec<(&FilledRun, usize)> =
        runs.iter().flat_map(|run| (1..=run.logs).map(move |seq| (run, seq))).collect();
    for transaction_rows in rows.chunks(FILL_TRANSACTION) {
        let mut transaction = connection.begin().await.expect("begin");
        for chunk in transaction_rows.chunks(FILL_CHUNK) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO logs (id, type, job_run_id, run_key, task_run_id, seq, event_time, received_at, level, \
                 stream, message) ",
            );
            insert.push_values(chunk, |mut row, (run, seq)| {
                let (log_type, task) = run.owner(*seq);
                let received = run.received(*seq).timestamp_micros();
                row.push_bind(Uuid::now_v7().to_string())
                    .push_bind(log_type)
                    .push_bind(run.id.to_string())
                    .push_bind(keys.get(&run.id.to_string()).copied())
                    .push_bind(task.map(|task| task.to_string()))
                    .push_bind(*seq as i64)
                    .push_bind(received)
                    .push_bind(received)
                    .push_bind(LEVELS[seq % LEVELS.len()])
                    .push_bind("stdout")
                    .push_bind(message(*seq));
            });
            insert.build().execute(&mut *transaction).await.expect("insert logs");
        }
        transaction.commit().await.expect("commit");
    }
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").await.expect("checkpoint");
}

/// Where PostgreSQL's filled logs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// In their runs' day partitions, as logwell files them.
    Days,
    /// In `logs_before_partitions`, as a database upgraded from before
    /// partitions holds them.
    BeforePartitions,
}

async fn fill_postgres(url: &str, runs: &[FilledRun], layout: Layout) {
    let mut connection = sqlx::PgConnection::connect(url).await.expect("connect");
    let time = |time: DateTime<Utc>| time.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
    let day = |run: &FilledRun| match layout {
        Layout::Days => run.start.date_naive(),
        Layout::BeforePartitions => NaiveDate::from_ymd_opt(1970, 1, 1).expect("the upgrade's day"),
    };
    let mut days: Vec<NaiveDate> = runs.iter().map(day).collect();
    days.dedup();
    // logs_before_partitions is there already.
    for partition_day in days.into_iter().filter(|_| layout == Layout::Days) {
        sqlx::query("SELECT logwell_create_partitions($1)")
            .bind(partition_day)
            .execute(&mut connection)
            .await
            .expect("create a day's partitions");
    }
    let mut text = String::new();
    for run in runs {
        let (info, warn, error) = run.level_counts();
        let last = time(run.received(run.logs));
        text.push_str(&format!(
            "{}\t{}\t{}\t{last}\t{last}\tsucceeded\t{info}\t{warn}\t{error}\t{last}\t{}\n",
            run.id,
            run.logs + 1,
            time(run.start),
            day(run)
        ));
    }
    let mut copy = connection
        .copy_in_raw(
            "COPY job_runs (id, next_seq, first_log_time, last_log_time, completed_at, outcome, info_logs, \
             warn_logs, error_logs, active_at, partition_day) FROM STDIN",
        )
        .await
        .expect("copy runs");
    copy.send(text.as_bytes()).await.expect("send");
    copy.finish().await.expect("finish");
    let rows: Vec<(&FilledRun, usize)> =
        runs.iter().flat_map(|run| (1..=run.logs).map(move |seq| (run, seq))).collect();
    for chunk in rows.chunks(FILL_TRANSACTION) {
        let mut text = String::new();
        for (run, seq) in chunk {
            let (log_type, task) = run.owner(*seq);
            let task = task.map_or("\\N".to_string(), |task| task.to_string());
            let received = time(run.received(*seq));
            text.push_str(&format!(
                "{}\t{log_type}\t{}\t{task}\t{seq}\t{received}\t{received}\t{}\tstdout\t{}\t{}\n",
                Uuid::now_v7(),
                run.id,
                LEVELS[seq % LEVELS.len()],
                message(*seq),
                day(run)
            ));
        }
        let mut copy = connection
            .copy_in_raw(
                "COPY logs (id, type, job_run_id, task_run_id, seq, event_time, received_at, level, stream, message, \
                 partition_day) FROM STDIN",
            )
            .await
            .expect("copy logs");
        copy.send(text.as_bytes()).await.expect("send");
        copy.finish().await.expect("finish");
    }
    connection.execute("VACUUM ANALYZE").await.expect("vacuum");
    connection.execute("CHECKPOINT").await.expect("checkpoint (the benchmark role needs superuser)");
}

/// The database's size on disk in bytes (SQLite's log checkpointed into
/// the file first), and the logs it holds.
async fn size(url: &str) -> (u64, i64) {
    let count = "SELECT count(*) FROM logs";
    if let Some(path) = url.strip_prefix("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(url).await.expect("connect");
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").await.expect("checkpoint");
        let logs: i64 = sqlx::query_scalar(count).fetch_one(&mut connection).await.expect("count");
        return (std::fs::metadata(path).map_or(0, |metadata| metadata.len()), logs);
    }
    let mut connection = sqlx::PgConnection::connect(url).await.expect("connect");
    let logs: i64 = sqlx::query_scalar(count).fetch_one(&mut connection).await.expect("count");
    let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&mut connection)
        .await
        .expect("size");
    (bytes as u64, logs)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Acknowledged writes: when each was due, and its round trip.
type Acks = Arc<Mutex<Vec<(Instant, Duration)>>>;

/// `writers` writers, each into a run of its own on a connection of its
/// own, together offering `rate` logs a second in writes of
/// `LOGS_PER_WRITE`, staggered over the interval, until `stop`.
async fn start_writers(server: &Server, args: &Args, stop: CancellationToken) -> (Acks, Vec<JoinHandle<()>>) {
    let acks = Acks::default();
    let interval = Duration::from_secs_f64(args.writers as f64 * LOGS_PER_WRITE as f64 / args.rate as f64);
    let mut tasks = Vec::with_capacity(args.writers);
    for writer in 0..args.writers {
        let mut client = JobLogServiceClient::new(server.channel().await);
        let (acks, stop) = (acks.clone(), stop.clone());
        let mut due = Instant::now() + interval.mul_f64(writer as f64 / args.writers as f64);
        tasks.push(tokio::spawn(async move {
            let run = Uuid::now_v7().to_string();
            while !stop.is_cancelled() {
                tokio::time::sleep_until(due).await;
                let logs = (0..LOGS_PER_WRITE)
                    .map(|index| pb::LogEntry {
                        job_run_id: run.clone(),
                        message: message(index),
                        ..Default::default()
                    })
                    .collect();
                client.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
                acks.lock().expect("acks").push((due, due.elapsed()));
                due += interval;
            }
        }));
    }
    (acks, tasks)
}

/// p50 and p99 of the round trips of writes due within `window`, in ms.
fn quantiles(acks: &Acks, window: std::ops::Range<Instant>) -> (f64, f64, usize) {
    let mut times: Vec<Duration> =
        acks.lock().expect("acks").iter().filter(|(due, _)| window.contains(due)).map(|(_, time)| *time).collect();
    times.sort();
    let at = |fraction: f64| {
        times
            .get(((times.len() as f64 * fraction) as usize).min(times.len().saturating_sub(1)))
            .map_or(0.0, |time| time.as_secs_f64() * 1e3)
    };
    (at(0.5), at(0.99), times.len())
}

/// A limit that expires day 0 and nothing after it: from now back to the
/// midnight that ends day 0, a minute before day 1's first run.
fn expiring_limit(today: NaiveDate) -> String {
    let end_of_day_0 = (today - TimeDelta::days(DAYS as i64 - 1)).and_time(NaiveTime::MIN).and_utc();
    format!("{}s", (Utc::now() - end_of_day_0).num_seconds())
}

async fn bench(url: String, args: &Args, layout: Layout) {
    let today = Utc::now().date_naive();
    let runs = runs(today, args.logs);
    let filled = runs.iter().map(|run| run.logs).sum::<usize>();
    let started = Instant::now();
    if url.starts_with("sqlite:") {
        fill_sqlite(&url, &runs).await;
    } else {
        fill_postgres(&url, &runs, layout).await;
    }
    let (filled_bytes, _) = size(&url).await;
    println!(
        "  filled {filled} logs over {DAYS} days in {:.0} s; {:.0} MiB, {:.0} bytes per log",
        started.elapsed().as_secs_f64(),
        mib(filled_bytes),
        filled_bytes as f64 / filled as f64
    );

    // Retention on in both phases, so both have its index: first with a
    // limit that expires nothing, then with one that expires the oldest day.
    let idle_flags = ["--retention-job", "30d", "--retention-task", "30d", "--retention-interval", "1h"];
    let server = Server::start(&url, &idle_flags).await;
    let stop = CancellationToken::new();
    let (acks, writers) = start_writers(&server, args, stop.clone()).await;
    let idle_start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let idle = quantiles(&acks, idle_start + Duration::from_secs(1)..Instant::now());
    stop.cancel();
    for writer in writers {
        writer.await.expect("writer");
    }
    drop(server);
    let before = size(&url).await;

    let limit = expiring_limit(today);
    let expiring = ["--retention-job", &limit, "--retention-task", &limit, "--retention-interval", "1h"];
    let server = Server::start(&url, &expiring).await;
    let (pass_start, cpu_start) = (Instant::now(), server.cpu_seconds());
    let stop = CancellationToken::new();
    let (acks, writers) = start_writers(&server, args, stop.clone()).await;
    while server.metric("logwell_retention_passes_total").await < 1.0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pass = pass_start.elapsed();
    let cpu = (server.cpu_seconds() - cpu_start) / pass.as_secs_f64();
    let (_, peak) = server.memory();
    let expired = server.metric("logwell_expired_logs_total{type=\"job\"}").await
        + server.metric("logwell_expired_logs_total{type=\"task\"}").await;
    let emptied = server.metric("logwell_emptied_partitions_total{type=\"job\"}").await
        + server.metric("logwell_emptied_partitions_total{type=\"task\"}").await;
    let during = quantiles(&acks, pass_start..pass_start + pass);
    stop.cancel();
    for writer in writers {
        writer.await.expect("writer");
    }
    drop(server);
    let after = size(&url).await;
    println!(
        "  expired the oldest day, {expired:.0} logs ({emptied:.0} partitions emptied whole), in {:.1} s \
         ({:.0} logs/s); server CPU {:.0}%, peak {} MiB",
        pass.as_secs_f64(),
        expired / pass.as_secs_f64(),
        cpu * 100.0,
        peak >> 20
    );
    println!(
        "  writers at {} logs/s: ack p50 {:.2} ms p99 {:.2} ms during expiry ({} writes), beside p50 {:.2} ms p99 {:.2} ms idle ({} writes)",
        args.rate, during.0, during.1, during.2, idle.0, idle.1, idle.2
    );
    println!(
        "  size {:.0} MiB with {} logs before the pass, {:.0} MiB with {} logs after it (the writers' logs included)",
        mib(before.0),
        before.1,
        mib(after.0),
        after.1
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.backend != Backends::Postgres {
        let folder = tempfile::tempdir().expect("temporary folder");
        println!("SQLite, {} logs over {DAYS} days, writers at {} logs/s:", args.logs, args.rate);
        let url = format!("sqlite:{}", folder.path().join("retention.db").display());
        bench(migrated(url).await, &args, Layout::Days).await;
    }
    if args.backend != Backends::Sqlite {
        for (layout, what) in
            [(Layout::Days, "in day partitions"), (Layout::BeforePartitions, "in logs_before_partitions, as upgraded")]
        {
            println!("PostgreSQL, {} logs over {DAYS} days {what}, writers at {} logs/s:", args.logs, args.rate);
            bench(migrated(support::postgres_database().await).await, &args, layout).await;
        }
    }
}

/// Creates logwell's schema (with retention's index) at `url`.
async fn migrated(url: String) -> String {
    let options = logwell::store::ConnectOptions {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        metadata_index_keys: Vec::new(),
        read_timeout: Duration::from_secs(10),
        text_index: false,
        expiry_index: true,
    };
    logwell::store::connect(&url, &options, logwell::live::Hub::new()).await.expect("migrate").close().await;
    url
}
