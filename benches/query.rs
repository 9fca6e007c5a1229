//! The query benchmark: millions of logs in thousands of runs, written
//! through logwell, then read back through its API beside the same SQL run
//! directly against the same database in the same run.
//!
//! `cargo bench --bench query -- --logs 5000000 --runs 10000`

mod support;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use clap::Parser;
use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::job_run_service_client::JobRunServiceClient;
use logwell::proto::v1::log_query_service_client::LogQueryServiceClient;
use logwell::proto::v1::{self as pb};
use prost_types::value::Kind;
use sqlx::{Connection, Executor};
use support::{Backends, Server};
use tokio::time::Instant;
use tonic::transport::Channel;
use uuid::Uuid;

#[derive(Debug, Clone, Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "both")]
    backend: Backends,
    /// Logs written before the queries.
    #[arg(long, default_value_t = 5_000_000)]
    logs: usize,
    /// Job runs they are spread over; the first holds `long_run` of them.
    #[arg(long, default_value_t = 10_000)]
    runs: usize,
    /// Logs of the one long run.
    #[arg(long, default_value_t = 100_000)]
    long_run: usize,
    /// Times each query runs, for p50 and p99.
    #[arg(long, default_value_t = 30)]
    repeat: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Logs per write while filling.
const BATCH: usize = 1_000;
/// Concurrent writers while filling.
const WRITERS: usize = 4;
/// Of every this many logs one is an error, and its message mentions a timeout.
const ERROR_EVERY: usize = 100;

/// The data set: runs, and the day its event times span.
struct DataSet {
    runs: Vec<Uuid>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl DataSet {
    fn new(args: &Args) -> DataSet {
        let end = DateTime::from_timestamp(Utc::now().timestamp() / 3_600 * 3_600, 0).expect("now");
        DataSet { runs: (0..args.runs).map(|_| Uuid::now_v7()).collect(), start: end - TimeDelta::days(1), end }
    }

    /// The run of log number `line`: the long run's first, then 100 at a
    /// time to each other run in turn.
    fn run_of(&self, line: usize, args: &Args) -> Uuid {
        match line.checked_sub(args.long_run) {
            None => self.runs[0],
            Some(after) => self.runs[1 + (after / 100) % (self.runs.len() - 1)],
        }
    }

    /// Batch number `batch`, its times spread evenly over the day.
    fn batch(&self, batch: usize, args: &Args) -> Vec<pb::LogEntry> {
        let span = (self.end - self.start).num_microseconds().unwrap_or(1);
        (0..BATCH)
            .map(|index| {
                let line = batch * BATCH + index;
                let run = self.run_of(line, args);
                let worker = run.as_u128() % 50;
                let time = self.start + TimeDelta::microseconds(span * line as i64 / args.logs as i64);
                let error = line.is_multiple_of(ERROR_EVERY);
                let metadata = [
                    ("worker_id", Kind::StringValue(format!("gpu-{worker}"))),
                    ("request_id", Kind::StringValue(format!("r-{line}"))),
                    ("stage", Kind::StringValue(["build", "test", "deploy"][line % 3].into())),
                    ("attempt", Kind::NumberValue((1 + line % 3) as f64)),
                ];
                pb::LogEntry {
                    job_run_id: run.to_string(),
                    level: if error { pb::LogLevel::Error.into() } else { pb::LogLevel::Info.into() },
                    time: Some(prost_types::Timestamp {
                        seconds: time.timestamp(),
                        nanos: time.timestamp_subsec_nanos() as i32,
                    }),
                    message: if error {
                        format!("line {line}: upstream call failed after a timeout of 30 s")
                    } else {
                        format!("line {line}: step finished, {} items processed", line % 997)
                    },
                    metadata: Some(prost_types::Struct {
                        fields: metadata
                            .into_iter()
                            .map(|(key, kind)| (key.to_string(), prost_types::Value { kind: Some(kind) }))
                            .collect(),
                    }),
                    ..Default::default()
                }
            })
            .collect()
    }
}

/// Writes the data set through logwell, `WRITERS` writers each taking
/// every `WRITERS`-th batch; answers logs a second.
async fn fill(server: &Server, data: &std::sync::Arc<DataSet>, args: &Args) -> f64 {
    let started = Instant::now();
    let batches = args.logs / BATCH;
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let mut client = JobLogServiceClient::new(server.channel().await);
        let (data, args) = (data.clone(), args.clone());
        writers.spawn(async move {
            for batch in (writer..batches).step_by(WRITERS) {
                let logs = data.batch(batch, &args);
                client.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer");
    }
    (batches * BATCH) as f64 / started.elapsed().as_secs_f64()
}

/// Names, labels and completes every run but the long one, as a job system
/// would: `job-0` to `job-19`, half on branch `main`, one in ten failed.
async fn complete_runs(server: &Server, data: &std::sync::Arc<DataSet>) {
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..WRITERS {
        let mut client = JobRunServiceClient::new(server.channel().await);
        let data = data.clone();
        callers.spawn(async move {
            for index in (1 + caller..data.runs.len()).step_by(WRITERS) {
                let run = data.runs[index].to_string();
                let branch = if index.is_multiple_of(2) { "main" } else { "dev" };
                let start = pb::StartJobRunRequest {
                    job_run_id: run.clone(),
                    name: format!("job-{}", index % 20),
                    labels: [("branch".to_string(), branch.to_string())].into(),
                };
                client.start_job_run(start).await.expect("start");
                let outcome =
                    if index.is_multiple_of(10) { pb::JobRunOutcome::Failed } else { pb::JobRunOutcome::Succeeded };
                let completion =
                    pb::CompleteJobRunRequest { job_run_id: run, outcome: outcome.into(), summary: String::new() };
                client.complete_job_run(completion).await.expect("complete");
            }
        });
    }
    while let Some(done) = callers.join_next().await {
        done.expect("caller");
    }
}

/// Latencies of `repeat` calls of `call`, sorted.
async fn timed<F, Fut>(repeat: usize, mut call: F) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut times = Vec::with_capacity(repeat);
    for round in 0..repeat {
        let started = Instant::now();
        let rows = call(round).await;
        times.push(started.elapsed());
        assert!(rows > 0, "a query found nothing");
    }
    times.sort();
    times
}

fn percentile(times: &[Duration], fraction: f64) -> f64 {
    let index = ((times.len() as f64 * fraction).ceil() as usize).clamp(1, times.len()) - 1;
    times[index].as_secs_f64() * 1_000.0
}

fn report(what: &str, logwell: &[Duration], direct: &[Duration]) {
    let (p50, p99) = (percentile(logwell, 0.5), percentile(logwell, 0.99));
    let (direct_p50, direct_p99) = (percentile(direct, 0.5), percentile(direct, 0.99));
    println!(
        "  {what:<44} p50 {p50:>8.2} ms  p99 {p99:>8.2} ms   direct SQL p50 {direct_p50:>8.2} ms  p99 {direct_p99:>8.2} ms   ratio {:.2}",
        p50 / direct_p50.max(0.001)
    );
}

/// The columns every listing selects.
const LOG_COLUMNS: &str =
    "id, type, job_run_id, task_run_id, seq, event_time, received_at, level, stream, source, message, metadata";

/// The direct SQL of each query, spelled for the backend.
struct Sql {
    backend: Backend,
    columns: &'static str,
    /// Whether logwell was started with `--text-index`.
    text_index: bool,
}

impl Sql {
    /// A condition on one run.
    fn run(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "job_run_id = $1",
            Backend::Sqlite => "run_key = (SELECT key FROM job_runs WHERE id = $1)",
        }
    }

    fn worker(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "metadata @> '{\"worker_id\": \"gpu-7\"}'",
            Backend::Sqlite => {
                "json_extract(metadata, '$.\"worker_id\"') = 'gpu-7' AND json_type(metadata, '$.\"worker_id\"') = 'text'"
            }
        }
    }

    fn hour_bucket(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "floor(extract(epoch FROM event_time) / 3600)",
            Backend::Sqlite => "event_time / 3600000000",
        }
    }
}

/// A connection for the direct SQL, and how to run one query on it.
enum Direct {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Direct {
    async fn connect(backend: Backend, url: &str) -> Direct {
        match backend {
            Backend::Sqlite => Direct::Sqlite(sqlx::SqliteConnection::connect(url).await.expect("connect")),
            Backend::Postgres => Direct::Postgres(sqlx::PgConnection::connect(url).await.expect("connect")),
        }
    }

    /// Runs `sql` with `$1` bound to `run` and `$2` to `time` as the
    /// backend stores it, each if the SQL uses it; answers the rows.
    async fn rows(&mut self, sql: &str, run: Uuid, time: DateTime<Utc>) -> usize {
        let (uses_run, uses_time) = (sql.contains("$1"), sql.contains("$2"));
        // Placeholders are numbered from 1 in the order bound.
        let time_placeholder = if uses_run { "2" } else { "1" };
        match self {
            Direct::Postgres(connection) => {
                let sql = sql.replace("$2", &format!("${time_placeholder}"));
                let mut query = sqlx::query(&sql);
                if uses_run {
                    query = query.bind(run);
                }
                if uses_time {
                    query = query.bind(time);
                }
                query.fetch_all(&mut *connection).await.expect("direct SQL").len()
            }
            Direct::Sqlite(connection) => {
                let sql = sql.replace("$1", "?1").replace("$2", &format!("?{time_placeholder}"));
                let mut query = sqlx::query(&sql);
                if uses_run {
                    query = query.bind(run.to_string());
                }
                if uses_time {
                    query = query.bind(time.timestamp_micros());
                }
                query.fetch_all(&mut *connection).await.expect("direct SQL").len()
            }
        }
    }

    /// Streams every row of `sql` (with `$1` the run), counting them.
    async fn stream(&mut self, sql: &str, run: Uuid) -> usize {
        use tokio_stream::StreamExt;
        match self {
            Direct::Postgres(connection) => {
                let mut rows = sqlx::query(sql).bind(run).fetch(&mut *connection);
                let mut count = 0;
                while let Some(row) = rows.next().await {
                    row.expect("row");
                    count += 1;
                }
                count
            }
            Direct::Sqlite(connection) => {
                let sql = sql.replace("$1", "?1");
                let mut rows = sqlx::query(&sql).bind(run.to_string()).fetch(&mut *connection);
                let mut count = 0;
                while let Some(row) = rows.next().await {
                    row.expect("row");
                    count += 1;
                }
                count
            }
        }
    }
}

fn timestamp(time: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: time.timestamp(), nanos: 0 })
}

async fn run_queries(backend: Backend, url: &str, server: &Server, data: &DataSet, args: &Args) {
    let channel: Channel = server.channel().await;
    let query = LogQueryServiceClient::new(channel.clone());
    let job_runs = JobRunServiceClient::new(channel);
    let mut direct = Direct::connect(backend, url).await;
    if let Direct::Postgres(connection) = &mut direct {
        connection.execute("ANALYZE").await.expect("analyze");
    }
    let sql = Sql { backend, columns: LOG_COLUMNS, text_index: false };
    let runs = &data.runs;
    let some_run = |round: usize| runs[1 + (round * 7919) % (runs.len() - 1)];
    let hour_ago = data.end - TimeDelta::hours(1);
    let repeat = args.repeat;

    macro_rules! pair {
        ($what:expr, $grpc:expr, $direct:expr) => {{
            let logwell = timed(repeat, |round| {
                let mut query = query.clone();
                let run = some_run(round);
                async move { $grpc(&mut query, run).await }
            })
            .await;
            let mut times = Vec::new();
            for round in 0..repeat {
                let started = Instant::now();
                let rows = direct.rows(&$direct, some_run(round), hour_ago).await;
                times.push(started.elapsed());
                assert!(rows > 0, "direct SQL found nothing");
            }
            times.sort();
            report($what, &logwell, &times);
        }};
    }

    pair!(
        "a run's first page (100)",
        |query: &mut LogQueryServiceClient<Channel>, run: Uuid| {
            let request = pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() };
            let mut query = query.clone();
            async move { query.list_logs(request).await.expect("list").into_inner().logs.len() }
        },
        format!("SELECT {} FROM logs WHERE {} ORDER BY seq LIMIT 101", sql.columns, sql.run())
    );
    let long_run = runs[0];
    pair!(
        "the last page of a 100,000-log run",
        |query: &mut LogQueryServiceClient<Channel>, _run: Uuid| {
            let request = pb::ListLogsRequest {
                job_run_id: long_run.to_string(),
                order: pb::SortOrder::Descending.into(),
                ..Default::default()
            };
            let mut query = query.clone();
            async move { query.list_logs(request).await.expect("list").into_inner().logs.len() }
        },
        format!("SELECT {} FROM logs WHERE {} ORDER BY seq DESC LIMIT 101", sql.columns, sql.run())
            .replace("$1", &format!("'{long_run}'"))
    );
    pair!(
        "errors across runs in the last hour",
        |query: &mut LogQueryServiceClient<Channel>, _run: Uuid| {
            let request = pb::ListLogsRequest {
                order: pb::SortOrder::Descending.into(),
                filter: Some(pb::LogFilter {
                    levels: vec![pb::LogLevel::Error.into(), pb::LogLevel::Fatal.into()],
                    start_time: timestamp(hour_ago),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let mut query = query.clone();
            async move { query.list_logs(request).await.expect("list").into_inner().logs.len() }
        },
        format!(
            "SELECT {} FROM logs WHERE level IN ('error', 'fatal') AND event_time >= $2 ORDER BY event_time DESC, id DESC LIMIT 101",
            sql.columns
        )
    );
    pair!(
        "a metadata value across runs (worker_id)",
        |query: &mut LogQueryServiceClient<Channel>, _run: Uuid| {
            let condition = pb::MetadataCondition {
                key: "worker_id".into(),
                condition: Some(pb::metadata_condition::Condition::Equals(prost_types::Value {
                    kind: Some(Kind::StringValue("gpu-7".into())),
                })),
            };
            let request = pb::ListLogsRequest {
                filter: Some(pb::LogFilter { metadata: vec![condition], ..Default::default() }),
                ..Default::default()
            };
            let mut query = query.clone();
            async move { query.list_logs(request).await.expect("list").into_inner().logs.len() }
        },
        format!("SELECT {} FROM logs WHERE {} ORDER BY event_time, id LIMIT 101", sql.columns, sql.worker())
    );
    pair!(
        "counts by level for one run",
        |query: &mut LogQueryServiceClient<Channel>, run: Uuid| {
            let request = pb::CountLogsRequest {
                filter: Some(pb::LogFilter { job_run_ids: vec![run.to_string()], ..Default::default() }),
                group_by: vec![pb::CountGrouping {
                    by: Some(pb::count_grouping::By::Field(pb::CountField::Level.into())),
                }],
                ..Default::default()
            };
            let mut query = query.clone();
            async move { query.count_logs(request).await.expect("count").into_inner().counts.len() }
        },
        format!("SELECT level, count(*) FROM logs WHERE {} GROUP BY level", sql.run())
    );
    let (day_start, day_end) = (data.start, data.end);
    pair!(
        "an hourly histogram over the day",
        |query: &mut LogQueryServiceClient<Channel>, _run: Uuid| {
            let request = pb::CountLogsRequest {
                filter: Some(pb::LogFilter {
                    start_time: timestamp(day_start),
                    end_time: timestamp(day_end),
                    ..Default::default()
                }),
                buckets: Some(pb::count_logs_request::Buckets::BucketWidth(prost_types::Duration {
                    seconds: 3_600,
                    nanos: 0,
                })),
                ..Default::default()
            };
            let mut query = query.clone();
            async move { query.count_logs(request).await.expect("count").into_inner().counts.len() }
        },
        format!("SELECT {} AS hour, count(*) FROM logs WHERE event_time >= $2 GROUP BY hour", sql.hour_bucket())
            .replace(
                "$2",
                &match backend {
                    Backend::Postgres => format!("'{day_start}'"),
                    Backend::Sqlite => day_start.timestamp_micros().to_string(),
                }
            )
    );
    for (needle, matches) in searches(args) {
        let what = format!("substring search, no text index ({matches})");
        substring_search(&query, &mut direct, &sql, &needle, &what, repeat).await;
    }
    let day_ago = Utc::now() - TimeDelta::days(1);
    let since = match backend {
        Backend::Postgres => format!("'{day_ago}'"),
        Backend::Sqlite => day_ago.timestamp_micros().to_string(),
    };
    let run_columns = "id, next_seq - 1 AS last_seq, first_log_time, last_log_time, completed_at, outcome, summary, \
         deleted_at, name, labels, started_at, trace_logs, debug_logs, info_logs, warn_logs, error_logs, fatal_logs, \
         active_at";
    let listing = |request: pb::ListJobRunsRequest| {
        let mut job_runs = job_runs.clone();
        async move { job_runs.list_job_runs(request).await.expect("list runs").into_inner().job_runs.len() }
    };
    pair!(
        "failed runs of the last day (100 of 1,000)",
        |_query: &mut LogQueryServiceClient<Channel>, _run: Uuid| listing(pb::ListJobRunsRequest {
            outcomes: vec![pb::JobRunOutcome::Failed.into()],
            start_time: timestamp(day_ago),
            ..Default::default()
        }),
        format!(
            "SELECT {run_columns} FROM job_runs WHERE id <> '{}' AND outcome = 'failed' \
             AND active_at >= {since} ORDER BY active_at DESC, id DESC LIMIT 100",
            Uuid::nil()
        )
    );
    pair!(
        "failed job-10 runs on main of the last day",
        |_query: &mut LogQueryServiceClient<Channel>, _run: Uuid| listing(pb::ListJobRunsRequest {
            outcomes: vec![pb::JobRunOutcome::Failed.into()],
            name: "job-10".into(),
            labels: [("branch".to_string(), "main".to_string())].into(),
            start_time: timestamp(day_ago),
            ..Default::default()
        }),
        format!(
            "SELECT {run_columns} FROM job_runs WHERE id <> '{}' AND outcome = 'failed' \
             AND active_at >= {since} AND name = 'job-10' AND {} ORDER BY active_at DESC, id DESC LIMIT 100",
            Uuid::nil(),
            match backend {
                Backend::Postgres => "labels @> '{\"branch\": \"main\"}'",
                Backend::Sqlite => "json_extract(labels, '$.\"branch\"') = 'main'",
            }
        )
    );

    // Exports, to a client that discards, against streaming the same rows.
    let export = |filter: pb::LogFilter| {
        let mut query = query.clone();
        async move {
            let started = Instant::now();
            let request = pb::ExportLogsRequest { filter: Some(filter), chunk_size: 10_000, ..Default::default() };
            let mut stream = query.export_logs(request).await.expect("export").into_inner();
            let mut logs = 0;
            while let Some(message) = stream.message().await.expect("message") {
                logs += message.logs.len();
            }
            (logs, started.elapsed().as_secs_f64())
        }
    };
    let (logs, seconds) = export(pb::LogFilter { job_run_ids: vec![long_run.to_string()], ..Default::default() }).await;
    let started = Instant::now();
    let rows =
        direct.stream(&format!("SELECT {} FROM logs WHERE {} ORDER BY seq", sql.columns, sql.run()), long_run).await;
    let direct_rate = rows as f64 / started.elapsed().as_secs_f64();
    println!(
        "  {:<44} {:>9.0} logs/s ({logs} logs)   direct SQL {direct_rate:>9.0} rows/s   ratio {:.2}",
        "export of the 100,000-log run",
        logs as f64 / seconds,
        logs as f64 / seconds / direct_rate
    );
    let (logs, seconds) =
        export(pb::LogFilter { start_time: timestamp(day_start), end_time: timestamp(day_end), ..Default::default() })
            .await;
    println!("  {:<44} {:>9.0} logs/s ({logs} logs)", "export of the day", logs as f64 / seconds);
}

/// The substring searches: a common word (one log in a hundred), and one
/// log's own line number.
fn searches(args: &Args) -> [(String, String); 2] {
    [("timeout".to_string(), "1% match".to_string()), (format!("line {}:", args.logs / 2 + 1), "one match".to_string())]
}

/// A substring search for `needle` through logwell beside the same SQL,
/// spelled as logwell spells it with the text index when `sql` says it
/// exists.
async fn substring_search(
    query: &LogQueryServiceClient<Channel>,
    direct: &mut Direct,
    sql: &Sql,
    needle: &str,
    what: &str,
    repeat: usize,
) {
    let logwell = timed(repeat, |_| {
        let mut query = query.clone();
        let request = pb::ListLogsRequest {
            filter: Some(pb::LogFilter { text: needle.into(), ..Default::default() }),
            ..Default::default()
        };
        async move { query.list_logs(request).await.expect("list").into_inner().logs.len() }
    })
    .await;
    let condition = match (sql.backend, sql.text_index) {
        (Backend::Postgres, _) => format!("message LIKE '%{needle}%'"),
        (Backend::Sqlite, false) => format!("instr(message, '{needle}') > 0"),
        (Backend::Sqlite, true) => format!(
            "logs.rowid IN (SELECT rowid FROM logs_text WHERE logs_text MATCH '\"{needle}\"') \
             AND instr(message, '{needle}') > 0"
        ),
    };
    let statement = format!("SELECT {} FROM logs WHERE {condition} ORDER BY event_time, id LIMIT 101", sql.columns);
    let mut times = Vec::new();
    for _ in 0..repeat {
        let started = Instant::now();
        assert!(direct.rows(&statement, Uuid::nil(), Utc::now()).await > 0, "direct SQL found nothing");
        times.push(started.elapsed());
    }
    times.sort();
    report(what, &logwell, &times);
}

/// Restarts logwell on the filled database with `--text-index` (which
/// builds it) and searches again.
async fn with_text_index(backend: Backend, url: &str, args: &Args) {
    let started = Instant::now();
    let server = Server::start(url, &["--text-index"]).await;
    let built = started.elapsed().as_secs_f64();
    let query = LogQueryServiceClient::new(server.channel().await);
    let mut direct = Direct::connect(backend, url).await;
    if let Direct::Postgres(connection) = &mut direct {
        // Moves the new index's pending entries in, as autovacuum would.
        connection.execute("VACUUM ANALYZE logs").await.expect("vacuum");
    }
    let sql = Sql { backend, columns: LOG_COLUMNS, text_index: true };
    println!("  the text index: built in {built:.0} s at start");
    for (needle, matches) in searches(args) {
        let what = format!("substring search, text index ({matches})");
        substring_search(&query, &mut direct, &sql, &needle, &what, args.repeat).await;
    }
}

async fn bench(backend: Backend, url: String, args: &Args) {
    let extra: &[&str] = match backend {
        Backend::Sqlite => &["--metadata-index-keys", "worker_id"],
        Backend::Postgres => &[],
    };
    let server = Server::start(&url, extra).await;
    let data = std::sync::Arc::new(DataSet::new(args));
    let rate = fill(&server, &data, args).await;
    complete_runs(&server, &data).await;
    let commits = server.metric("logwell_commits_total").await;
    println!(
        "{backend:?}: {} logs in {} runs (one of {}), written through logwell at {rate:.0} logs/s in {commits} commits; \
         each query {} times",
        args.logs, args.runs, args.long_run, args.repeat
    );
    let cpu_before = server.cpu_seconds();
    run_queries(backend, &url, &server, &data, args).await;
    let (now, peak) = server.memory();
    println!(
        "  server: {:.1} CPU seconds for the queries and exports; memory {} MiB now, {} MiB at peak (the fill included)",
        server.cpu_seconds() - cpu_before,
        now / (1024 * 1024),
        peak / (1024 * 1024)
    );
    drop(server);
    with_text_index(backend, &url, args).await;
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let folder = tempfile::tempdir().expect("folder");
        if matches!(args.backend, Backends::Both | Backends::Sqlite) {
            bench(Backend::Sqlite, format!("sqlite:{}", folder.path().join("query.db").display()), &args).await;
        }
        if matches!(args.backend, Backends::Both | Backends::Postgres) {
            bench(Backend::Postgres, support::with_kept_days(support::postgres_database().await).await, &args).await;
        }
    });
}
