//! The many-runs shape: what a job system does. Hundreds of writers write
//! into a thousand job runs at once, job and task logs mixed, through unary
//! batches of 10 to 100 logs, one-log RPCs and IngestLogs streams; beside a
//! raw baseline of the same shape in a fresh database (the same rows spread
//! over as many runs, in transactions of logwell's own mean group size).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::log_ingest_service_client::LogIngestServiceClient;
use logwell::proto::v1::task_log_service_client::TaskLogServiceClient;
use logwell::proto::v1::{self as pb};
use sqlx::{ConnectOptions, Connection};
use tokio::time::Instant;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::raw::{self, Row};
use crate::support::Server;

/// Task runs per job run; half the writes are task logs.
const TASKS_PER_RUN: usize = 4;
/// Batches each IngestLogs writer keeps in flight when it writes as fast as
/// it is answered, and at most when it writes on a schedule.
const STREAM_IN_FLIGHT: usize = 4;
const STREAM_MAX_IN_FLIGHT: usize = 256;

/// The shape of the load.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub runs: usize,
    pub writers: usize,
    pub seconds: u64,
    pub content: Content,
    /// Logs a second offered by all writers together, each writer starting
    /// its writes on a schedule; 0: each writes as fast as it is answered.
    pub rate: u64,
}

/// What each log carries.
#[derive(Debug, Clone, Copy)]
pub struct Content {
    pub message_bytes: usize,
    /// The seeds' context in metadata (worker, stage, attempt, request), or
    /// no metadata.
    pub context: bool,
}

/// How a writer writes: every fourth writer one log per RPC, every fourth
/// an IngestLogs stream, the rest unary batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Batches,
    OneLog,
    Stream,
}

impl Kind {
    fn of(writer: usize) -> Kind {
        match writer % 4 {
            1 => Kind::OneLog,
            3 => Kind::Stream,
            _ => Kind::Batches,
        }
    }
}

/// The runs one writer writes to, in turn; with their task runs.
#[derive(Clone)]
struct Runs(Vec<(Uuid, [Uuid; TASKS_PER_RUN])>);

impl Runs {
    /// Writer `writer` of `writers` takes every `writers`-th of `runs`, so
    /// that together they write to every run all the time.
    fn of(writer: usize, writers: usize, all: &[(Uuid, [Uuid; TASKS_PER_RUN])]) -> Runs {
        Runs(all.iter().skip(writer).step_by(writers).copied().collect())
    }

    /// The entries of write number `write`: to the next run in turn, job logs
    /// on even writes and one task's logs on odd ones.
    fn entries(&self, write: usize, count: usize, content: Content) -> (pb::LogType, Vec<pb::LogEntry>) {
        let (run, tasks) = self.0[write % self.0.len()];
        let task = (write % 2 == 1).then(|| tasks[(write / 2) % TASKS_PER_RUN]);
        let log_type = if task.is_some() { pb::LogType::Task } else { pb::LogType::Job };
        let entries = (0..count)
            .map(|index| pb::LogEntry {
                job_run_id: run.to_string(),
                task_run_id: task.map(|task| task.to_string()).unwrap_or_default(),
                message: crate::message(content.message_bytes, index),
                metadata: content.context.then(|| context_struct(write, index)),
                ..Default::default()
            })
            .collect();
        (log_type, entries)
    }
}

/// The context a job system's log carries, as the seed systems' logs did:
/// the worker, the stage, the attempt and the request.
fn context(write: usize, index: usize) -> [(&'static str, serde_json::Value); 4] {
    const STAGES: [&str; 3] = ["build", "test", "deploy"];
    [
        ("worker_id", format!("gpu-{}", write % 50).into()),
        ("stage", STAGES[index % STAGES.len()].into()),
        ("attempt", (1 + index % 3).into()),
        ("request_id", format!("r-{write}-{index}").into()),
    ]
}

fn context_struct(write: usize, index: usize) -> prost_types::Struct {
    use prost_types::value::Kind;
    let field = |value: serde_json::Value| {
        let kind = match value {
            serde_json::Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or_default()),
            other => Kind::StringValue(other.as_str().unwrap_or_default().to_string()),
        };
        prost_types::Value { kind: Some(kind) }
    };
    let fields = context(write, index).into_iter().map(|(key, value)| (key.to_string(), field(value)));
    prost_types::Struct { fields: fields.collect() }
}

fn context_json(write: usize, index: usize) -> String {
    serde_json::Value::Object(context(write, index).into_iter().map(|(key, value)| (key.to_string(), value)).collect())
        .to_string()
}

/// A size from 10 to 100 that varies from write to write (55 on average).
fn batch_size(write: usize) -> usize {
    10 + (write * 37) % 91
}

/// The mean logs per write of a writer of each kind.
fn mean_logs_per_write(kind: Kind) -> f64 {
    match kind {
        Kind::OneLog => 1.0,
        Kind::Batches | Kind::Stream => 55.0,
    }
}

/// Each write's logs and round trip.
type Acks = Arc<Mutex<Vec<(usize, Duration)>>>;

/// Logs of unary writes that logwell shed with RESOURCE_EXHAUSTED (its write
/// queue full: more offered than it stores) since the last report. Counted,
/// not retried: the shape's offered rate stays what it says.
static SHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// When a writer starts its writes.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// One write every so often, whether or not the last was answered (an
    /// offered load); latency counts from the scheduled start, so a slow
    /// server cannot hide its queue.
    Every(Duration),
    /// The next write once the last is answered (as fast as it goes).
    Answered,
}

/// Yields each write's number and scheduled start until the deadline.
struct Schedule {
    ticks: Option<tokio::time::Interval>,
    deadline: Instant,
    next: usize,
}

impl Schedule {
    /// Writer `writer` of `writers` starts `writer / writers` of an
    /// interval late, so that the writers' writes spread over time instead
    /// of arriving together.
    fn new(pace: Pace, deadline: Instant, writer: usize, writers: usize) -> Schedule {
        let ticks = match pace {
            Pace::Every(every) => {
                let phase = every.mul_f64(writer as f64 / writers as f64);
                Some(tokio::time::interval_at(Instant::now() + phase, every))
            }
            Pace::Answered => None,
        };
        Schedule { ticks, deadline, next: 0 }
    }

    async fn next(&mut self) -> Option<(usize, Instant)> {
        let start = match &mut self.ticks {
            Some(ticks) => ticks.tick().await,
            None => Instant::now(),
        };
        (start < self.deadline).then(|| {
            self.next += 1;
            (self.next - 1, start)
        })
    }

    fn paced(&self) -> bool {
        self.ticks.is_some()
    }
}

/// Unary writes, of batches or of one log: one at a time, or on a schedule
/// with as many in flight as it takes.
async fn write_unary(channel: Channel, runs: Runs, kind: Kind, mut schedule: Schedule, content: Content, acks: Acks) {
    let clients = (JobLogServiceClient::new(channel.clone()), TaskLogServiceClient::new(channel));
    let mut in_flight = tokio::task::JoinSet::new();
    while let Some((write, start)) = schedule.next().await {
        let count = if kind == Kind::OneLog { 1 } else { batch_size(write) };
        let (log_type, mut logs) = runs.entries(write, count, content);
        let ((mut jobs, mut tasks), acks) = (clients.clone(), acks.clone());
        let request = async move {
            let written = match (log_type, count) {
                (pb::LogType::Task, 1) => {
                    tasks.write_task_log(pb::WriteTaskLogRequest { log: logs.pop() }).await.map(drop)
                }
                (pb::LogType::Task, _) => tasks.write_task_logs(pb::WriteTaskLogsRequest { logs }).await.map(drop),
                (_, 1) => jobs.write_job_log(pb::WriteJobLogRequest { log: logs.pop() }).await.map(drop),
                _ => jobs.write_job_logs(pb::WriteJobLogsRequest { logs }).await.map(drop),
            };
            match written {
                Ok(()) => acks.lock().expect("acks").push((count, start.elapsed())),
                Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                    SHED.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
                }
                Err(status) => panic!("write: {status:?}"),
            }
        };
        if schedule.paced() {
            in_flight.spawn(request);
        } else {
            request.await;
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// An IngestLogs stream of batches: a few in flight, or on a schedule.
async fn write_stream(channel: Channel, runs: Runs, mut schedule: Schedule, content: Content, acks: Acks) {
    let in_flight = if schedule.paced() { STREAM_MAX_IN_FLIGHT } else { STREAM_IN_FLIGHT };
    let (sender, receiver) = tokio::sync::mpsc::channel(in_flight);
    let mut answers = LogIngestServiceClient::new(channel)
        .ingest_logs(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .expect("ingest")
        .into_inner();
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let started_at: Arc<Mutex<std::collections::HashMap<u64, Instant>>> = Arc::default();
    let producer = {
        let (started_at, slots) = (started_at.clone(), slots.clone());
        tokio::spawn(async move {
            while let Some((write, start)) = schedule.next().await {
                slots.acquire().await.expect("slots").forget();
                let (log_type, logs) = runs.entries(write, batch_size(write), content);
                let batch_number = write as u64;
                started_at.lock().expect("started").insert(batch_number, start);
                let batch = pb::IngestLogsRequest { batch_number, r#type: log_type.into(), logs };
                if sender.send(batch).await.is_err() {
                    return;
                }
            }
        })
    };
    while let Some(answer) = answers.message().await.expect("answers") {
        assert!(answer.refusal.is_none(), "{:?}", answer.refusal);
        let start = started_at.lock().expect("started").remove(&answer.batch_number).expect("a sent batch");
        acks.lock().expect("acks").push((answer.receipts.len(), start.elapsed()));
        slots.add_permits(1);
    }
    producer.await.expect("producer");
}

/// What logwell did in this shape.
pub struct Measured {
    pub logs: usize,
    pub elapsed: Duration,
    /// Each kind of writer's acknowledged writes: logs and round trip.
    acks: Vec<(Kind, Vec<(usize, Duration)>)>,
    /// Logs per group commit, on average.
    pub mean_group: f64,
    /// Time in a group's transaction, on average.
    mean_commit: Duration,
    /// The server's CPU share and peak memory.
    cpu: f64,
    peak_bytes: u64,
}

/// Drives `server` in `shape` and measures it.
pub async fn drive(server: &Server, shape: Shape) -> Measured {
    assert!(shape.runs >= shape.writers, "every writer needs a run of its own: --runs at least --writers");
    let all: Vec<(Uuid, [Uuid; TASKS_PER_RUN])> =
        (0..shape.runs).map(|_| (Uuid::now_v7(), std::array::from_fn(|_| Uuid::now_v7()))).collect();
    let mut channels = Vec::with_capacity(shape.writers);
    for _ in 0..shape.writers {
        channels.push(server.channel().await);
    }
    let kinds = [Kind::Batches, Kind::OneLog, Kind::Stream];
    let acks: Vec<Acks> = kinds.iter().map(|_| Acks::default()).collect();
    // Every writer starts as many writes a second; the batch writers carry
    // the volume, the one-log writers the RPC count.
    let mean_logs = (0..shape.writers).map(|writer| mean_logs_per_write(Kind::of(writer))).sum::<f64>();
    let pace = match shape.rate {
        0 => Pace::Answered,
        rate => Pace::Every(Duration::from_secs_f64(mean_logs / rate as f64)),
    };
    let counters = ["logwell_commits_total", "logwell_committed_logs_total", "logwell_commit_duration_seconds_sum"];
    let mut before = Vec::new();
    for counter in counters {
        before.push(server.metric(counter).await);
    }
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(shape.seconds);
    let tasks: Vec<_> = channels
        .into_iter()
        .enumerate()
        .map(|(writer, channel)| {
            let runs = Runs::of(writer, shape.writers, &all);
            let kind = Kind::of(writer);
            let acks = acks[kinds.iter().position(|known| *known == kind).unwrap_or(0)].clone();
            let (schedule, content) = (Schedule::new(pace, deadline, writer, shape.writers), shape.content);
            match kind {
                Kind::Batches | Kind::OneLog => tokio::spawn(write_unary(channel, runs, kind, schedule, content, acks)),
                Kind::Stream => tokio::spawn(write_stream(channel, runs, schedule, content, acks)),
            }
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
    let elapsed = started.elapsed();
    let cpu = (server.cpu_seconds() - cpu_before) / elapsed.as_secs_f64();
    let mut counted = Vec::new();
    for (counter, before) in counters.into_iter().zip(before) {
        counted.push(server.metric(counter).await - before);
    }
    let (commits, committed, committing) = (counted[0].max(1.0), counted[1], counted[2]);
    let acks: Vec<(Kind, Vec<(usize, Duration)>)> =
        kinds.iter().zip(acks).map(|(kind, acks)| (*kind, std::mem::take(&mut *acks.lock().expect("acks")))).collect();
    let logs = acks.iter().flat_map(|(_, acks)| acks.iter().map(|(logs, _)| logs)).sum();
    let mean_group = committed / commits;
    let mean_commit = Duration::from_secs_f64(committing / commits);
    Measured { logs, elapsed, acks, mean_group, mean_commit, cpu, peak_bytes: server.memory().1 }
}

/// The `fraction` quantile of round trips, in milliseconds.
fn quantile(acks: &[&(usize, Duration)], fraction: f64) -> f64 {
    let mut millis: Vec<f64> = acks.iter().map(|(_, latency)| latency.as_secs_f64() * 1_000.0).collect();
    millis.sort_by(f64::total_cmp);
    millis.get(((millis.len().max(1) - 1) as f64 * fraction) as usize).copied().unwrap_or(f64::NAN)
}

/// Prints logwell's figures beside the baseline's rate.
pub fn report(measured: &Measured, shape: Shape, baseline: Option<f64>) {
    // On a schedule, every write started within the window is answered
    // (stored or shed, counted below; any other failure fails the
    // benchmark): the window is what the logs took; the time after it only
    // waits for the last answers.
    let window = match shape.rate {
        0 => measured.elapsed,
        _ => Duration::from_secs(shape.seconds),
    };
    let rate = measured.logs as f64 / window.as_secs_f64();
    let all: Vec<&(usize, Duration)> = measured.acks.iter().flat_map(|(_, acks)| acks).collect();
    let offered = match shape.rate {
        0 => "as fast as answered".to_string(),
        rate => format!("{rate} logs/s offered"),
    };
    println!(
        "  {:<44} {rate:>9.0} logs/s   ack p50 {:>7.2} ms p99 {:>7.2} ms   {:.0} logs per commit in {:.1} ms   server CPU {:>4.0}%  peak {:>5.0} MiB",
        format!("{} writers into {} runs, {offered}", shape.writers, shape.runs),
        quantile(&all, 0.5),
        quantile(&all, 0.99),
        measured.mean_group,
        measured.mean_commit.as_secs_f64() * 1_000.0,
        100.0 * measured.cpu,
        measured.peak_bytes as f64 / (1024.0 * 1024.0)
    );
    for (kind, acks) in &measured.acks {
        let acks: Vec<&(usize, Duration)> = acks.iter().collect();
        let logs: usize = acks.iter().map(|(logs, _)| logs).sum();
        println!(
            "    {:<42} {:>9.0} logs/s   ack p50 {:>7.2} ms p99 {:>7.2} ms",
            match kind {
                Kind::Batches => "of which unary batches of 10-100",
                Kind::OneLog => "of which one log per RPC",
                Kind::Stream => "of which IngestLogs, batches of 10-100",
            },
            logs as f64 / window.as_secs_f64(),
            quantile(&acks, 0.5),
            quantile(&acks, 0.99),
        );
    }
    let shed = SHED.swap(0, std::sync::atomic::Ordering::Relaxed);
    if shed > 0 {
        println!("    {shed} logs shed with RESOURCE_EXHAUSTED (write queue full): more offered than stored");
    }
    if let Some(baseline) = baseline {
        println!("    ratio to the raw baseline of the same shape: {:.2}", rate / baseline);
    }
}

/// The baseline's rows, in the writers' shape: batches of 10 to 100 rows,
/// each to the next of `runs` runs in turn, job logs and one task's logs
/// alternating, each row with its run's next seq.
struct Rows {
    runs: Vec<(Uuid, [Uuid; TASKS_PER_RUN], i64)>,
    content: Content,
    batches: usize,
}

impl Rows {
    fn new(runs: usize, content: Content) -> Rows {
        let runs = (0..runs).map(|_| (Uuid::now_v7(), std::array::from_fn(|_| Uuid::now_v7()), 0)).collect();
        Rows { runs, content, batches: 0 }
    }

    /// The next `wanted` rows or more: whole batches.
    fn take(&mut self, wanted: usize) -> Vec<Row> {
        let mut rows = Vec::with_capacity(wanted + 100);
        while rows.len() < wanted {
            let batch = self.batches;
            self.batches += 1;
            let count = self.runs.len();
            let (run, tasks, seq) = &mut self.runs[batch % count];
            let round = batch / count;
            let task = (round % 2 == 1).then(|| tasks[(round / 2) % TASKS_PER_RUN]);
            let log_type = if task.is_some() { "task" } else { "job" };
            for index in 0..batch_size(batch) {
                *seq += 1;
                rows.push(Row {
                    log_type,
                    run: *run,
                    task,
                    seq: *seq,
                    message: crate::message(self.content.message_bytes, index),
                    metadata: if self.content.context { context_json(batch, index) } else { "{}".into() },
                });
            }
        }
        rows
    }
}

/// Raw COPY into a fresh database's `logs`, one COPY per transaction of
/// `group` rows; answers rows a second.
pub async fn postgres_baseline(url: &str, shape: Shape, group: usize, total: usize) -> f64 {
    let mut connection = sqlx::PgConnection::connect(url).await.expect("connect");
    let mut rows = Rows::new(shape.runs, shape.content);
    let (started, mut stored) = (Instant::now(), 0);
    while stored < total {
        let batch = rows.take(group);
        stored += batch.len();
        raw::copy(&mut connection, &batch).await;
    }
    let rate = stored as f64 / started.elapsed().as_secs_f64();
    println!(
        "  {:<44} {rate:>9.0} logs/s (baseline: raw COPY of {stored} rows over {} runs, {group} per transaction)",
        "raw COPY, the same shape", shape.runs
    );
    rate
}

/// Raw batched INSERTs into a fresh database's `logs` (500 rows a
/// statement), one transaction of `group` rows at a time; answers rows a
/// second.
pub async fn sqlite_baseline(url: &str, shape: Shape, group: usize, total: usize) -> f64 {
    // As logwell's writer connects: synchronous=FULL (sqlx's default), WAL
    // (the file's mode), statement journals in memory.
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("url");
    let mut connection = options.pragma("temp_store", "memory").connect().await.expect("connect");
    let mut rows = Rows::new(shape.runs, shape.content);
    let (started, mut stored) = (Instant::now(), 0);
    while stored < total {
        let batch = rows.take(group);
        stored += batch.len();
        let mut transaction = connection.begin().await.expect("begin");
        raw::insert(&mut transaction, &batch).await;
        transaction.commit().await.expect("commit");
    }
    let rate = stored as f64 / started.elapsed().as_secs_f64();
    println!(
        "  {:<44} {rate:>9.0} logs/s (baseline: raw batched INSERTs of {stored} rows over {} runs, {group} per transaction)",
        "raw INSERTs, the same shape", shape.runs
    );
    rate
}
