//! Ingestion benchmark: how fast logwell takes logs, beside what the database
//! itself absorbs in the same run (raw COPY into the same PostgreSQL table,
//! raw batched INSERTs into the same SQLite table). Starts real `logwell
//! serve` processes (the release build) and drives them with real clients.
//!
//! The headline is the many-runs mode, the shape job systems write in:
//! 200 writers into 1,000 runs at once (see `many_runs`).
//!
//!     cargo bench --bench ingest                          # both backends, every mode
//!     cargo bench --bench ingest -- --mode runs --runs 1000 --writers 200
//!     cargo bench --bench ingest -- --backend postgres --mode single --connections 64
//!     cargo bench --bench ingest -- --backend postgres --mode batch --client-ids none,v7,v4
//!     cargo bench --bench ingest -- --mode otlp --seconds 5

mod many_runs;
mod otlp;
mod raw;
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::log_ingest_service_client::LogIngestServiceClient;
use logwell::proto::v1::{self as pb};
use sqlx::Connection;
use support::{Backends, Server};
use tokio::time::Instant;
use tonic::transport::Channel;
use uuid::Uuid;

#[derive(Debug, Clone, Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "both")]
    backend: Backends,
    #[arg(long, value_enum, default_value = "all")]
    mode: Mode,
    /// How long each mode writes, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Client connections in the one-log mode, one RPC in flight each.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Client connections in the batch mode and streams in the stream mode.
    #[arg(long, default_value_t = 4)]
    batch_connections: usize,
    /// Logs per batch in the batch and stream modes.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Bytes per message.
    #[arg(long, default_value_t = 200)]
    message_bytes: usize,
    /// Job runs written at once in the many-runs mode.
    #[arg(long, default_value_t = 1_000)]
    runs: usize,
    /// Concurrent writers in the many-runs mode, each on a connection of its own.
    #[arg(long, default_value_t = 200)]
    writers: usize,
    /// Logs a second the many-runs writers offer together in its second
    /// round, for acknowledgement latency at a given load (0: skip it).
    #[arg(long, default_value_t = 50_000)]
    rate: u64,
    /// Which ids the clients give their logs; each kind in the list runs
    /// every mode again, so their costs compare within one run.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "none")]
    client_ids: Vec<ClientIds>,
    /// Many-runs logs carry no metadata (the shape measured before 25 Nov
    /// 2026) instead of the seeds' context.
    #[arg(long)]
    no_context: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    All,
    /// `writers` writers into `runs` job runs at once, job and task logs
    /// mixed: unary batches of 10 to 100 logs, one-log RPCs and IngestLogs
    /// streams. The headline.
    Runs,
    /// Unary WriteJobLogs of `batch` logs, `batch_connections` connections.
    Batch,
    /// Unary WriteJobLog of one log, `connections` connections; then health
    /// checks over as many, the RPC ceiling it is measured against.
    Single,
    /// IngestLogs streams of `batch`-log batches, `batch_connections` streams, 16 in flight each.
    Stream,
    /// OTLP exports of 512 records over gRPC and HTTP beside IngestLogs
    /// batches of 512; one-record exports beside one-log writes.
    Otlp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClientIds {
    /// No client ids: logwell gives each log a v7 id.
    None,
    /// Time-ordered UUIDv7 client ids, as the proto recommends.
    V7,
    /// Random UUIDv4 client ids.
    V4,
}

impl ClientIds {
    fn generate(self) -> String {
        match self {
            ClientIds::None => String::new(),
            ClientIds::V7 => Uuid::now_v7().to_string(),
            ClientIds::V4 => Uuid::new_v4().to_string(),
        }
    }
}

pub(crate) fn message(bytes: usize, index: usize) -> String {
    let head = format!("line {index} ");
    format!("{head}{}", "x".repeat(bytes.saturating_sub(head.len())))
}

/// Each write's size in logs and its round trip.
type Acks = Arc<Mutex<Vec<(usize, Duration)>>>;

/// Batches an IngestLogs stream keeps in flight.
const INGEST_IN_FLIGHT: usize = 16;

/// What `drive` measured: logs acknowledged, the time taken, each write's
/// size and round trip, and the server's CPU seconds and peak memory.
type Measured = (usize, Duration, Vec<(usize, Duration)>, (f64, u64));

/// Prints a mode's figures and its ratio to the raw baseline; answers its
/// rate in logs a second.
fn report(name: &str, measured: Measured, args: &Args, baseline: f64) -> f64 {
    report_against(name, measured, args, Some(("the raw baseline", baseline)))
}

/// Prints a mode's figures and, if given, its ratio to a baseline (its name
/// and rate); answers the mode's rate in logs a second.
fn report_against(
    name: &str,
    (logs, elapsed, acks, server): Measured,
    args: &Args,
    against: Option<(&str, f64)>,
) -> f64 {
    let rate = logs as f64 / elapsed.as_secs_f64();
    let mut latencies: Vec<f64> = acks.iter().map(|(_, latency)| latency.as_secs_f64() * 1_000.0).collect();
    latencies.sort_by(f64::total_cmp);
    let at = |fraction: f64| {
        latencies.get(((latencies.len().max(1) - 1) as f64 * fraction) as usize).copied().unwrap_or(f64::NAN)
    };
    println!(
        "  {name:<44} {rate:>9.0} logs/s {:>6.1} MB/s   ack p50 {:>7.2} ms p99 {:>7.2} ms max {:>7.2} ms   server CPU {:>4.0}%  peak {:>5.0} MiB",
        rate * args.message_bytes as f64 / 1e6,
        at(0.5),
        at(0.99),
        at(1.0),
        100.0 * server.0 / elapsed.as_secs_f64(),
        server.1 as f64 / (1024.0 * 1024.0)
    );
    if let Some((baseline_name, baseline)) = against {
        println!("    ratio to {baseline_name}: {:.2}", rate / baseline);
    }
    rate
}

/// Runs `writer` on each of `connections` connections of its own until the
/// time is up.
async fn drive<F, Fut>(server: &Server, connections: usize, seconds: u64, writer: F) -> Measured
where
    F: Fn(Channel, Instant, Acks) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let acks: Acks = Arc::default();
    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(server.channel().await);
    }
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> =
        channels.into_iter().map(|channel| tokio::spawn(writer(channel, deadline, acks.clone()))).collect();
    for task in tasks {
        task.await.expect("writer");
    }
    let elapsed = started.elapsed();
    let (cpu_after, (_, peak)) = (server.cpu_seconds(), server.memory());
    let acks = std::mem::take(&mut *acks.lock().expect("acks"));
    let logs = acks.iter().map(|(logs, _)| logs).sum();
    (logs, elapsed, acks, (cpu_after - cpu_before, peak))
}

fn entries(run: Uuid, count: usize, bytes: usize, ids: ClientIds) -> Vec<pb::LogEntry> {
    (0..count)
        .map(|i| pb::LogEntry {
            id: ids.generate(),
            job_run_id: run.to_string(),
            message: message(bytes, i),
            ..Default::default()
        })
        .collect()
}

async fn run_modes(server: &Server, args: &Args, baseline: f64) {
    for &ids in &args.client_ids {
        if args.client_ids.len() > 1 {
            println!("  client ids: {ids:?}");
        }
        run_modes_with(server, args, baseline, ids).await;
    }
    if args.wants(Mode::Otlp) {
        otlp::otlp_mode(server, args).await;
    }
}

impl Args {
    fn wants(&self, mode: Mode) -> bool {
        self.mode == Mode::All || self.mode == mode
    }

    /// What the logs carry, for the report.
    fn content(&self) -> String {
        let metadata = if self.no_context { "no metadata" } else { "many-runs logs with 4 metadata keys of context" };
        format!("{}-byte messages, {metadata}", self.message_bytes)
    }

    fn shape(&self) -> many_runs::Shape {
        many_runs::Shape {
            runs: self.runs,
            writers: self.writers,
            seconds: self.seconds,
            content: many_runs::Content { message_bytes: self.message_bytes, context: !self.no_context },
            rate: 0,
        }
    }
}

/// Makes PostgreSQL write out everything so far, so that a phase does not
/// pay for the one before it (PostgreSQL checkpoints by itself as its
/// write-ahead log grows, at moments no phase chooses).
async fn checkpoint(url: &str) {
    let mut connection = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query("CHECKPOINT").execute(&mut connection).await.expect("checkpoint (the benchmark role needs superuser)");
}

/// `url` with logwell's schema applied, including the metadata indexes, the
/// text index and the expiry index the servers of this run are given
/// (`LOGWELL_METADATA_INDEX_KEYS`, `LOGWELL_TEXT_INDEX`, `LOGWELL_RETENTION_*`,
/// which they inherit), so that a baseline writes into the same indexes.
async fn migrated(url: String) -> String {
    let metadata_index_keys = std::env::var("LOGWELL_METADATA_INDEX_KEYS")
        .map(|keys| keys.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let options = logwell::store::ConnectOptions {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        metadata_index_keys,
        read_timeout: Duration::from_secs(10),
        // As clap reads the server's flag: set and not a "false" word.
        text_index: std::env::var("LOGWELL_TEXT_INDEX")
            .is_ok_and(|value| !["false", "no", "off", "0", "n", "f", ""].contains(&value.to_lowercase().as_str())),
        expiry_index: ["LOGWELL_RETENTION_SYSTEM", "LOGWELL_RETENTION_JOB", "LOGWELL_RETENTION_TASK"]
            .iter()
            .any(|name| std::env::var_os(name).is_some()),
    };
    logwell::store::connect(&url, &options, logwell::live::Hub::new()).await.expect("migrate").close().await;
    url
}

/// A fresh SQLite database with logwell's schema, in `folder`.
async fn sqlite_database(folder: &std::path::Path, name: &str) -> String {
    migrated(format!("sqlite:{}", folder.join(name).display())).await
}

/// Runs `writers` into `runs` on a fresh database as fast as they are
/// answered, then the raw baseline of the same shape on another fresh one,
/// in transactions of logwell's mean group size; then the writers again at
/// the offered `rate`, for latency under a given load.
async fn many_runs_mode(logwell_url: &str, baseline_url: &str, postgres: bool, args: &Args) {
    let shape = args.shape();
    if postgres {
        checkpoint(logwell_url).await;
    }
    let server = Server::start(logwell_url, &[]).await;
    let measured = many_runs::drive(&server, shape).await;
    let paced_shape = many_runs::Shape { rate: args.rate, ..shape };
    let paced = if args.rate > 0 { Some(many_runs::drive(&server, paced_shape).await) } else { None };
    drop(server);
    let group = measured.mean_group.round().max(1.0) as usize;
    let baseline = if postgres {
        checkpoint(baseline_url).await;
        many_runs::postgres_baseline(baseline_url, shape, group, measured.logs).await
    } else {
        many_runs::sqlite_baseline(baseline_url, shape, group, measured.logs).await
    };
    many_runs::report(&measured, shape, Some(baseline));
    if let Some(paced) = paced {
        many_runs::report(&paced, paced_shape, None);
    }
}

async fn run_modes_with(server: &Server, args: &Args, baseline: f64, ids: ClientIds) {
    let wanted = |mode| args.wants(mode);
    if wanted(Mode::Batch) {
        let (batch, bytes) = (args.batch, args.message_bytes);
        let measured = drive(server, args.batch_connections, args.seconds, move |channel, deadline, acks| async move {
            let (mut client, run) = (JobLogServiceClient::new(channel), Uuid::now_v7());
            while Instant::now() < deadline {
                let sent = Instant::now();
                client
                    .write_job_logs(pb::WriteJobLogsRequest { logs: entries(run, batch, bytes, ids) })
                    .await
                    .expect("write");
                acks.lock().expect("acks").push((batch, sent.elapsed()));
            }
        })
        .await;
        report(&format!("unary batches of {batch}, {} connections", args.batch_connections), measured, args, baseline);
    }
    if wanted(Mode::Single) {
        let bytes = args.message_bytes;
        let measured = drive(server, args.connections, args.seconds, move |channel, deadline, acks| async move {
            let (mut client, run) = (JobLogServiceClient::new(channel), Uuid::now_v7());
            while Instant::now() < deadline {
                let sent = Instant::now();
                let log = entries(run, 1, bytes, ids).pop();
                client.write_job_log(pb::WriteJobLogRequest { log }).await.expect("write");
                acks.lock().expect("acks").push((1, sent.elapsed()));
            }
        })
        .await;
        let rate = report(&format!("one log per RPC, {} connections", args.connections), measured, args, baseline);
        let ceiling = rpc_ceiling(server, args).await;
        println!("    ratio to the RPC ceiling: {:.2}", rate / ceiling);
    }
    if wanted(Mode::Stream) {
        let (batch, bytes) = (args.batch, args.message_bytes);
        let measured = ingest_streams(server, args, move |run| entries(run, batch, bytes, ids)).await;
        report(
            &format!("IngestLogs streams, batches of {}, {} streams", args.batch, args.batch_connections),
            measured,
            args,
            baseline,
        );
    }
}

/// IngestLogs streams of the batches `batch` makes for a job run,
/// `batch_connections` streams with 16 batches in flight each, one job run
/// each.
async fn ingest_streams<F>(server: &Server, args: &Args, batch: F) -> Measured
where
    F: Fn(Uuid) -> Vec<pb::LogEntry> + Copy + Send + 'static,
{
    drive(server, args.batch_connections, args.seconds, move |channel, deadline, acks| async move {
        let run = Uuid::now_v7();
        let (sender, receiver) = tokio::sync::mpsc::channel(INGEST_IN_FLIGHT);
        let mut answers = LogIngestServiceClient::new(channel)
            .ingest_logs(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
            .expect("ingest")
            .into_inner();
        let sent_at: Arc<Mutex<std::collections::HashMap<u64, Instant>>> = Arc::default();
        let producer = {
            let sent_at = sent_at.clone();
            tokio::spawn(async move {
                let mut number = 0u64;
                while Instant::now() < deadline {
                    let request = pb::IngestLogsRequest {
                        batch_number: number,
                        r#type: pb::LogType::Job.into(),
                        logs: batch(run),
                    };
                    sent_at.lock().expect("sent").insert(number, Instant::now());
                    if sender.send(request).await.is_err() {
                        break;
                    }
                    number += 1;
                }
            })
        };
        while let Some(answer) = answers.message().await.expect("answers") {
            assert!(answer.refusal.is_none(), "{:?}", answer.refusal);
            let sent = sent_at.lock().expect("sent").remove(&answer.batch_number).expect("sent batch");
            acks.lock().expect("acks").push((answer.receipts.len(), sent.elapsed()));
        }
        producer.await.expect("producer");
    })
    .await
}

/// The rate of unary RPCs that do no storage work (health checks) from the
/// one-log mode's connections: what gRPC itself manages on this machine,
/// with client and server sharing its cores.
async fn rpc_ceiling(server: &Server, args: &Args) -> f64 {
    let measured = drive(server, args.connections, args.seconds, move |channel, deadline, acks| async move {
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        while Instant::now() < deadline {
            let sent = Instant::now();
            client.check(tonic_health::pb::HealthCheckRequest::default()).await.expect("check");
            acks.lock().expect("acks").push((1, sent.elapsed()));
        }
    })
    .await;
    let rate = measured.0 as f64 / measured.1.as_secs_f64();
    println!(
        "  {:<44} {rate:>9.0} RPCs/s (baseline: health checks, no storage, {} connections)",
        "RPC ceiling", args.connections
    );
    rate
}

/// `batch` rows of one run, seqs from `first_seq`, as the earlier modes write.
fn one_run_rows(run: Uuid, first_seq: usize, args: &Args) -> Vec<raw::Row> {
    (0..args.batch)
        .map(|index| raw::Row {
            log_type: "job",
            run,
            task: None,
            seq: (first_seq + index) as i64,
            message: message(args.message_bytes, index),
            metadata: "{}".into(),
        })
        .collect()
}

/// Raw COPY of generated rows (as logwell would store them) into `logs`.
async fn postgres_baseline(url: &str, args: &Args) -> f64 {
    let mut connection = sqlx::PgConnection::connect(url).await.expect("connect");
    let total = args.batch * 200;
    let run = Uuid::now_v7();
    let started = Instant::now();
    for chunk in 0..total / args.batch {
        raw::copy(&mut connection, &one_run_rows(run, chunk * args.batch + 1, args)).await;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!(
        "  {:<44} {rate:>9.0} logs/s (baseline: raw COPY of {total} rows, {} per COPY)",
        "raw COPY into the same table", args.batch
    );
    rate
}

/// Raw batched INSERTs (500 rows a statement, one transaction a batch).
async fn sqlite_baseline(url: &str, args: &Args) -> f64 {
    let mut connection = sqlx::SqliteConnection::connect(url).await.expect("connect");
    let total = args.batch * 100;
    let run = Uuid::now_v7();
    let started = Instant::now();
    for chunk in 0..total / args.batch {
        let mut transaction = connection.begin().await.expect("begin");
        raw::insert(&mut transaction, &one_run_rows(run, chunk * args.batch + 1, args)).await;
        transaction.commit().await.expect("commit");
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!(
        "  {:<44} {rate:>9.0} logs/s (baseline: raw batched INSERTs of {total} rows, {} per transaction)",
        "raw INSERTs into the same table", args.batch
    );
    rate
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let other_modes = args.mode != Mode::Runs;
    if args.backend != Backends::Postgres {
        let folder = tempfile::tempdir().expect("temporary folder");
        println!("SQLite ({} s per mode, {}):", args.seconds, args.content());
        if args.wants(Mode::Runs) {
            let logwell = sqlite_database(folder.path(), "many-runs.db").await;
            let baseline = sqlite_database(folder.path(), "many-runs-baseline.db").await;
            many_runs_mode(&logwell, &baseline, false, &args).await;
        }
        if other_modes {
            let url = sqlite_database(folder.path(), "ingest.db").await;
            let baseline = sqlite_baseline(&url, &args).await;
            let server = Server::start(&url, &[]).await;
            run_modes(&server, &args, baseline).await;
        }
    }
    if args.backend != Backends::Sqlite {
        println!(
            "PostgreSQL ({} s per mode, {}, the partitions of {} past days made):",
            args.seconds,
            args.content(),
            support::KEPT_DAYS
        );
        if args.wants(Mode::Runs) {
            let logwell = support::with_kept_days(support::postgres_database().await).await;
            let baseline = migrated(support::with_kept_days(support::postgres_database().await).await).await;
            many_runs_mode(&logwell, &baseline, true, &args).await;
        }
        if other_modes {
            let url = support::with_kept_days(support::postgres_database().await).await;
            let server = Server::start(&url, &[]).await;
            let baseline = postgres_baseline(&url, &args).await;
            run_modes(&server, &args, baseline).await;
        }
    }
}
