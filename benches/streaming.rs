//! Streaming benchmark: how fast a committed log reaches followers, and what
//! thousands of followers cost. Starts real `logwell serve` processes (the
//! release binary) and drives them with real gRPC clients.
//!
//!     cargo bench --bench streaming                      # every scenario
//!     cargo bench --bench streaming -- --scenario fanout --followers 10000
//!     cargo bench --bench streaming -- --scenario across --runs 1000
//!
//! PostgreSQL comes from LOGWELL_TEST_DATABASE_URL, or a throwaway cluster
//! started like the tests' one.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::job_run_service_client::JobRunServiceClient;
use logwell::proto::v1::log_stream_service_client::LogStreamServiceClient;
use logwell::proto::v1::stream_logs_request::Start;
use logwell::proto::v1::stream_logs_response::Event;
use logwell::proto::v1::{self as pb};
use support::Server;
use tokio::time::Instant;
use tonic::transport::Channel;
use uuid::Uuid;

/// Enough concurrent streams per connection for the fan-out's followers.
const STREAMS: &[&str] = &["--max-concurrent-streams", "2048"];

#[derive(Debug, Clone, Parser)]
struct Args {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value = "all")]
    scenario: Scenario,
    /// Followers in the latency scenarios.
    #[arg(long, default_value_t = 10)]
    latency_followers: usize,
    /// Followers in the fan-out scenario.
    #[arg(long, default_value_t = 10_000)]
    followers: usize,
    /// Client connections the fan-out followers share.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Logs per second the writer sends.
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Logs per write RPC (a batch when more than one).
    #[arg(long, default_value_t = 1)]
    logs_per_write: u64,
    /// Runs written at once in the scenario across runs, each at 10 logs/s.
    #[arg(long, default_value_t = 1_000)]
    runs: usize,
    /// Followers of each run (StreamLogs) in the scenario across runs.
    #[arg(long, default_value_t = 2)]
    run_followers: usize,
    /// Followers across runs (FollowLogs, level warn and above) in the
    /// scenario across runs.
    #[arg(long, default_value_t = 10)]
    across_followers: usize,
    /// How long the writer writes, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    All,
    Latency,
    Replicas,
    Fanout,
    Across,
}

/// When each seq was sent and acknowledged.
type Writes = Arc<Mutex<Vec<(i64, Instant, Instant)>>>;

/// Writes `rate` logs per second for `seconds`, `per_write` logs per RPC,
/// each RPC on its own task so that a slow answer does not delay the next;
/// then completes the run. Returns every log's seq and times.
async fn write_paced(channel: Channel, run: Uuid, args: &Args) -> Vec<(i64, Instant, Instant)> {
    let writes: Writes = Arc::default();
    let per_write = args.logs_per_write.max(1);
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 * per_write / args.rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut in_flight = Vec::new();
    for write in 0..args.rate * args.seconds / per_write {
        ticker.tick().await;
        let mut client = JobLogServiceClient::new(channel.clone());
        let writes = writes.clone();
        in_flight.push(tokio::spawn(async move {
            let logs = (0..per_write)
                .map(|index| pb::LogEntry {
                    job_run_id: run.to_string(),
                    message: format!("benchmark write {write} line {index} {}", "x".repeat(150)),
                    ..Default::default()
                })
                .collect();
            let sent = Instant::now();
            let receipts = client.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
            let acknowledged = Instant::now();
            let mut writes = writes.lock().expect("writes");
            writes.extend(receipts.into_inner().receipts.iter().map(|receipt| (receipt.seq, sent, acknowledged)));
        }));
    }
    for write in in_flight {
        write.await.expect("writer");
    }
    let request = pb::CompleteJobRunRequest {
        job_run_id: run.to_string(),
        outcome: pb::JobRunOutcome::Succeeded.into(),
        summary: String::new(),
    };
    JobRunServiceClient::new(channel).complete_job_run(request).await.expect("complete");
    let mut writes = std::mem::take(&mut *writes.lock().expect("writes"));
    writes.sort_by_key(|(seq, _, _)| *seq);
    writes
}

/// `write_paced` on a runtime and a connection of its own, so that the
/// followers this process drains neither delay its pace nor share its
/// connection: a job runner writes apart from the crowd that watches it.
async fn write_apart(address: &str, run: Uuid, args: &Args) -> Vec<(i64, Instant, Instant)> {
    let (address, args) = (address.to_owned(), args.clone());
    let writer = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let channel = Channel::from_shared(address).expect("uri").connect().await.expect("connect");
            write_paced(channel, run, &args).await
        })
    });
    tokio::task::spawn_blocking(move || writer.join().expect("writer")).await.expect("writer")
}

/// Opens a follower of `run` from now on; returns once the server has
/// registered it.
async fn open_follower(channel: Channel, run: Uuid) -> tonic::Streaming<pb::StreamLogsResponse> {
    let request =
        pb::StreamLogsRequest { job_run_id: run.to_string(), start: Some(Start::FromNow(true)), ..Default::default() };
    LogStreamServiceClient::new(channel).stream_logs(request).await.expect("follow").into_inner()
}

/// Reads a follower to the run's completion; returns when each seq arrived
/// (or, if `timed` is false, only how many arrived).
async fn drain(mut stream: tonic::Streaming<pb::StreamLogsResponse>, timed: bool) -> (usize, Vec<(i64, Instant)>) {
    let mut count = 0;
    let mut arrivals = Vec::new();
    while let Some(response) = stream.message().await.expect("stream") {
        match response.event {
            Some(Event::Log(log)) => {
                count += 1;
                if timed {
                    arrivals.push((log.seq, Instant::now()));
                }
            }
            Some(Event::Completed(_)) => break,
            _ => {}
        }
    }
    (count, arrivals)
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

/// Latency from acknowledgement (and from sending) to each follower's
/// receipt, with the write round trip measured in the same run as baseline.
async fn latency(title: &str, writer: Channel, follower_channel: Channel, args: &Args) {
    let run = Uuid::now_v7();
    let mut followers = Vec::new();
    for _ in 0..args.latency_followers {
        followers.push(tokio::spawn(drain(open_follower(follower_channel.clone(), run).await, true)));
    }
    let writes = write_paced(writer, run, args).await;
    let mut after_ack = Vec::new();
    let mut after_send = Vec::new();
    let mut before_ack = 0usize;
    for follower in followers {
        let (count, arrivals) = follower.await.expect("follower");
        assert_eq!(count, writes.len(), "a follower missed lines");
        for ((seq, arrived), (written_seq, sent, acknowledged)) in arrivals.into_iter().zip(&writes) {
            assert_eq!(seq, *written_seq, "out of order");
            after_send.push(millis(arrived.duration_since(*sent)));
            if arrived < *acknowledged {
                before_ack += 1;
            }
            after_ack.push(millis(arrived.saturating_duration_since(*acknowledged)));
        }
    }
    let mut round_trips: Vec<f64> = writes.iter().map(|(_, sent, acked)| millis(acked.duration_since(*sent))).collect();
    for samples in [&mut after_ack, &mut after_send, &mut round_trips] {
        samples.sort_by(f64::total_cmp);
    }
    println!(
        "{title}: {} followers, {} logs/s ({} per write) for {} s ({} logs, every follower got every line in order)",
        args.latency_followers,
        args.rate,
        args.logs_per_write,
        args.seconds,
        writes.len()
    );
    let row = |name: &str, samples: &[f64]| {
        println!(
            "  {name:<34} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
            percentile(samples, 0.5),
            percentile(samples, 0.99),
            percentile(samples, 1.0)
        );
    };
    row("write round trip (baseline)", &round_trips);
    row("acknowledged -> follower received", &after_ack);
    row("sent -> follower received", &after_send);
    println!(
        "  ratio, sent->received p99 / write round trip p99: {:.2}; {:.1}% of deliveries arrived before the writer's ack",
        percentile(&after_send, 0.99) / percentile(&round_trips, 0.99),
        100.0 * before_ack as f64 / after_ack.len().max(1) as f64
    );
}

/// Thousands of followers of one run on one process: every follower must get
/// every line; prints the server's memory, idle (baseline) and at its peak.
async fn fanout(server: &Server, args: &Args) {
    // The writer's pace and round trips with no follower: the baseline.
    let alone = Instant::now();
    let quiet = write_apart(server.address(), Uuid::now_v7(), args).await;
    let alone = alone.elapsed();
    let run = Uuid::now_v7();
    let mut channels = Vec::new();
    for _ in 0..args.connections {
        channels.push(server.channel().await);
    }
    let (idle, _) = server.memory();
    let opening = Instant::now();
    let mut followers = Vec::new();
    for index in 0..args.followers {
        let stream = open_follower(channels[index % channels.len()].clone(), run).await;
        followers.push(tokio::spawn(drain(stream, false)));
    }
    let opened = opening.elapsed();
    // The memory figure below is only meaningful with every follower in.
    let registered = server.metric("logwell_stream_followers").await;
    assert_eq!(registered as usize, args.followers, "the server holds every follower");
    let (connected, _) = server.memory();
    let (writing, cpu_before) = (Instant::now(), server.cpu_seconds());
    let writes = write_apart(server.address(), run, args).await;
    let written = writing.elapsed();
    let mut complete = 0;
    for follower in followers {
        let (count, _) = follower.await.expect("follower");
        assert_eq!(count, writes.len(), "a follower missed lines");
        complete += 1;
    }
    let drained = writing.elapsed();
    let cpu = server.cpu_seconds() - cpu_before;
    let (_, peak) = server.memory();
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let per_follower = |bytes: u64| bytes.saturating_sub(idle) as f64 / args.followers as f64 / 1024.0;
    println!(
        "fan-out, SQLite, one process: {} followers over {} connections, {} logs/s ({} per write) for {} s ({} logs)",
        args.followers,
        args.connections,
        args.rate,
        args.logs_per_write,
        args.seconds,
        writes.len()
    );
    println!(
        "  followers opened in {:.1} s; every one of {complete} got all {} lines",
        opened.as_secs_f64(),
        writes.len()
    );
    println!(
        "  writing took {:.1} s (alone: {:.1} s); the last follower had every line {:.1} s after writing began \
         ({} deliveries, {:.0} a second)",
        written.as_secs_f64(),
        alone.as_secs_f64(),
        drained.as_secs_f64(),
        writes.len() * args.followers,
        (writes.len() * args.followers) as f64 / drained.as_secs_f64()
    );
    for (name, writes) in
        [("the writer's acks alone (baseline)", &quiet), ("the writer's acks in the fan-out", &writes)]
    {
        let mut round_trips: Vec<f64> =
            writes.iter().map(|(_, sent, acked)| millis(acked.duration_since(*sent))).collect();
        round_trips.sort_by(f64::total_cmp);
        println!(
            "  {name:<36} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
            percentile(&round_trips, 0.5),
            percentile(&round_trips, 0.99),
            percentile(&round_trips, 1.0)
        );
    }
    // Whether slow acks come at once (a stall) or throughout (a long queue).
    let start = writes.first().map(|(_, sent, _)| *sent).expect("writes");
    let slow: std::collections::BTreeSet<u128> = writes
        .iter()
        .filter(|(_, sent, acked)| acked.duration_since(*sent) > Duration::from_millis(20))
        .map(|(_, sent, _)| sent.duration_since(start).as_millis() / 250)
        .collect();
    println!(
        "  acks over 20 ms came in {} of the {} quarter-seconds of writing",
        slow.len(),
        written.as_millis().div_ceil(250)
    );
    println!(
        "  server memory: idle {:.1} MiB (baseline), followers connected {:.1} MiB, peak {:.1} MiB (target < 1024)",
        mib(idle),
        mib(connected),
        mib(peak)
    );
    println!(
        "  per follower over baseline: {:.1} KiB connected, {:.1} KiB at peak",
        per_follower(connected),
        per_follower(peak)
    );
    println!(
        "  server CPU while writing and delivering: {cpu:.0} s over {:.0} s ({:.0} deliveries per CPU second)",
        drained.as_secs_f64(),
        (writes.len() * args.followers) as f64 / cpu.max(f64::EPSILON)
    );
}

/// One log per run every 100 ms for `seconds`, every fourth at warn; each
/// write's log id with when it was acknowledged, and how many logs were warn.
async fn write_runs(channel: Channel, runs: &[Uuid], seconds: u64) -> (Vec<(String, Instant)>, usize) {
    let mut writers = Vec::new();
    for (index, run) in runs.iter().copied().enumerate() {
        let mut client = JobLogServiceClient::new(channel.clone());
        writers.push(tokio::spawn(async move {
            // Spread the runs' writes over the 100 ms.
            tokio::time::sleep(Duration::from_micros(100_000 * index as u64 / 1_000)).await;
            let mut ticker = tokio::time::interval(Duration::from_millis(100));
            let mut acknowledged = Vec::new();
            let mut warnings = 0;
            for write in 0..seconds * 10 {
                ticker.tick().await;
                let level = if write % 4 == 0 { pb::LogLevel::Warn } else { pb::LogLevel::Info };
                warnings += usize::from(level == pb::LogLevel::Warn);
                let log = pb::LogEntry {
                    job_run_id: run.to_string(),
                    level: level.into(),
                    message: format!("run {index} write {write} {}", "x".repeat(150)),
                    ..Default::default()
                };
                let receipt = client.write_job_log(pb::WriteJobLogRequest { log: Some(log) }).await.expect("write");
                let id = receipt.into_inner().receipt.expect("receipt").id;
                if level == pb::LogLevel::Warn {
                    acknowledged.push((id, Instant::now()));
                }
            }
            (acknowledged, warnings)
        }));
    }
    let (mut acknowledged, mut warnings) = (Vec::new(), 0);
    for writer in writers {
        let (acked, warned) = writer.await.expect("writer");
        acknowledged.extend(acked);
        warnings += warned;
    }
    (acknowledged, warnings)
}

/// Reads a follower across runs until it has `wanted` logs; when each id
/// arrived. Tells `started` once the server has answered the follow: it
/// follows from the commits after its answer.
async fn drain_across(
    channel: Channel,
    started: tokio::sync::mpsc::Sender<()>,
    wanted: tokio::sync::watch::Receiver<Option<usize>>,
) -> Vec<(String, Instant)> {
    use logwell::proto::v1::follow_logs_response::Event as AcrossEvent;
    let filter = pb::LogFilter { min_level: pb::LogLevel::Warn.into(), ..Default::default() };
    let request = pb::FollowLogsRequest {
        filter: Some(filter),
        start: Some(logwell::proto::v1::follow_logs_request::Start::FromNow(true)),
    };
    let mut stream = LogStreamServiceClient::new(channel).follow_logs(request).await.expect("follow").into_inner();
    started.send(()).await.expect("the benchmark waits for every follower");
    let mut arrivals = Vec::new();
    while wanted.borrow().is_none_or(|wanted| arrivals.len() < wanted) {
        let message = tokio::time::timeout(Duration::from_secs(60), stream.message()).await.expect("stalled");
        if let Some(AcrossEvent::Log(followed)) = message.expect("stream").and_then(|response| response.event) {
            arrivals.push((followed.log.expect("log").id, Instant::now()));
        }
    }
    arrivals
}

/// Many runs written at once, each with its own followers, and followers
/// across runs of the warnings: acknowledged -> received of the latter.
async fn across(title: &str, writer: &Server, reader: &Server, args: &Args) {
    let runs: Vec<Uuid> = (0..args.runs).map(|_| Uuid::now_v7()).collect();
    let (write_channel, read_channel) = (writer.channel().await, reader.channel().await);
    let mut run_followers = Vec::new();
    for run in &runs {
        for _ in 0..args.run_followers {
            let stream = open_follower(read_channel.clone(), *run).await;
            run_followers.push(tokio::spawn(drain(stream, false)));
        }
    }
    let (tell_wanted, wanted) = tokio::sync::watch::channel(None);
    let (tell_started, mut started) = tokio::sync::mpsc::channel(args.across_followers.max(1));
    let mut followers = Vec::new();
    for _ in 0..args.across_followers {
        followers.push(tokio::spawn(drain_across(read_channel.clone(), tell_started.clone(), wanted.clone())));
    }
    // Every follower across runs has started before the first write: one
    // the server counts may still be reading where "now" is, and would
    // rightly miss what is written meanwhile.
    for _ in 0..args.across_followers {
        started.recv().await.expect("a follower across runs started");
    }
    let cpu_before = (writer.cpu_seconds(), reader.cpu_seconds());
    let writing = Instant::now();
    let (acknowledged, warnings) = write_runs(write_channel.clone(), &runs, args.seconds).await;
    let written = writing.elapsed();
    tell_wanted.send_replace(Some(warnings));
    let acked_at: std::collections::HashMap<String, Instant> = acknowledged.into_iter().collect();
    let mut after_ack = Vec::new();
    for follower in followers {
        let arrivals = follower.await.expect("follower");
        assert_eq!(arrivals.len(), warnings, "a follower across runs got every warning, once");
        for (id, arrived) in arrivals {
            let acked = acked_at.get(&id).expect("a warning that was written");
            after_ack.push(millis(arrived.saturating_duration_since(*acked)));
        }
    }
    let cpu = (writer.cpu_seconds() - cpu_before.0, reader.cpu_seconds() - cpu_before.1);
    for run in &runs {
        let request = pb::CompleteJobRunRequest {
            job_run_id: run.to_string(),
            outcome: pb::JobRunOutcome::Succeeded.into(),
            summary: String::new(),
        };
        JobRunServiceClient::new(write_channel.clone()).complete_job_run(request).await.expect("complete");
    }
    let per_run = (args.seconds * 10) as usize;
    for follower in run_followers {
        assert_eq!(follower.await.expect("run follower").0, per_run, "a run follower got every line");
    }
    after_ack.sort_by(f64::total_cmp);
    println!(
        "{title}: {} runs at 10 logs/s each for {} s ({} logs in {:.1} s), {} followers per run, {} followers across runs of warn and above ({warnings} warnings, every one to each)",
        args.runs,
        args.seconds,
        per_run * args.runs,
        written.as_secs_f64(),
        args.run_followers,
        args.across_followers,
    );
    println!(
        "  acknowledged -> follower across runs received   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        percentile(&after_ack, 0.5),
        percentile(&after_ack, 0.99),
        percentile(&after_ack, 1.0)
    );
    println!(
        "  server CPU while writing: {:.1} s over {:.1} s{}",
        cpu.0 + if std::ptr::eq(writer, reader) { 0.0 } else { cpu.1 },
        written.as_secs_f64(),
        if std::ptr::eq(writer, reader) {
            String::new()
        } else {
            format!(" (writer {:.1} s, reader {:.1} s)", cpu.0, cpu.1)
        }
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let folder = tempfile::tempdir().expect("temporary folder");
    let sqlite_url = format!("sqlite:{}", folder.path().join("bench.db").display());
    let wanted = |scenario| args.scenario == Scenario::All || args.scenario == scenario;
    if wanted(Scenario::Latency) {
        let server = Server::start(&sqlite_url, STREAMS).await;
        latency("latency, SQLite, one process", server.channel().await, server.channel().await, &args).await;
    }
    if wanted(Scenario::Replicas) {
        let url = support::with_kept_days(support::postgres_database().await).await;
        let (writer, reader) = (Server::start(&url, STREAMS).await, Server::start(&url, STREAMS).await);
        let title = "latency, PostgreSQL with 30 past days' partitions, two replicas (written through one, followed on the other)";
        latency(title, writer.channel().await, reader.channel().await, &args).await;
    }
    if wanted(Scenario::Across) {
        let server = Server::start(&sqlite_url, STREAMS).await;
        across("across runs, SQLite, one process", &server, &server, &args).await;
        let url = support::with_kept_days(support::postgres_database().await).await;
        let (writer, reader) = (Server::start(&url, STREAMS).await, Server::start(&url, STREAMS).await);
        let title = "across runs, PostgreSQL with 30 past days' partitions, two replicas (written through one, followed on the other)";
        across(title, &writer, &reader, &args).await;
    }
    if wanted(Scenario::Fanout) {
        let server = Server::start(&sqlite_url, STREAMS).await;
        let fanout_args = Args { seconds: args.seconds.min(5), ..args };
        fanout(&server, &fanout_args).await;
    }
}
