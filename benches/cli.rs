//! The command line's benchmark, against a local `logwell serve` on SQLite
//! (the release build):
//!
//! - `logwell export` of one run into .ndjson, .csv and .txt, beside the
//!   export stream read by a client that discards it (the API's ceiling),
//!   measured in the same run;
//! - `logwell run` overhead: a command printing 200,000 lines, timed alone
//!   and under `logwell run`, at a pace like a busy test suite's and as fast
//!   as it can; every line must be stored once, in order.
//!
//! `cargo bench --bench cli -- --logs 1000000 --lines 200000 --pace 50000`

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Parser;
use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::log_query_service_client::LogQueryServiceClient;
use logwell::proto::v1::{self as pb};
use support::Server;
use tonic::transport::Channel;
use uuid::Uuid;

#[derive(Debug, Clone, Parser)]
struct Args {
    /// Logs of the exported run.
    #[arg(long, default_value_t = 1_000_000)]
    logs: usize,
    /// Lines the command prints.
    #[arg(long, default_value_t = 200_000)]
    lines: usize,
    /// Lines per second of the paced command.
    #[arg(long, default_value_t = 50_000)]
    pace: usize,
    /// Be the command: print this many lines and exit.
    #[arg(long, hide = true)]
    print_lines: Option<usize>,
    /// As the command: lines per second, 0 for as fast as possible.
    #[arg(long, hide = true, default_value_t = 0)]
    rate: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const LOGWELL: &str = env!("CARGO_BIN_EXE_logwell");

/// Prints `lines` numbered lines, `rate` a second (in steps of 1,000), as a
/// command with output to store would.
fn print_lines(lines: usize, rate: usize) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let started = Instant::now();
    for line in 1..=lines {
        let _ = writeln!(out, "line {line}: a test passed, its output as long as a test's output often is");
        if line % 1_000 == 0 {
            let _ = out.flush();
            if rate > 0 {
                let due = Duration::from_secs_f64(line as f64 / rate as f64);
                std::thread::sleep(due.saturating_sub(started.elapsed()));
            }
        }
    }
    let _ = out.flush();
}

fn main() {
    let args = Args::parse();
    if let Some(lines) = args.print_lines {
        print_lines(lines, args.rate);
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(benchmark(args));
}

async fn benchmark(args: Args) {
    let folder = tempfile::tempdir().expect("temporary folder");
    let server = Server::start(&format!("sqlite:{}", folder.path().join("cli.db").display()), &[]).await;
    let channel = server.channel().await;
    export(&server, channel.clone(), folder.path(), &args).await;
    run_overhead(&server, channel, &args).await;
}

/// Fills one run, then exports it through the stream and through the CLI.
async fn export(server: &Server, channel: Channel, folder: &Path, args: &Args) {
    let run = Uuid::now_v7();
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let mut client = JobLogServiceClient::new(channel.clone());
            let logs = args.logs;
            tokio::spawn(async move {
                for first in (writer * 1_000..logs).step_by(2_000) {
                    let entries = (first..(first + 1_000).min(logs))
                        .map(|index| pb::LogEntry {
                            job_run_id: run.to_string(),
                            message: format!("line {index}: compiling module {index} of the export benchmark"),
                            ..Default::default()
                        })
                        .collect();
                    client.write_job_logs(pb::WriteJobLogsRequest { logs: entries }).await.expect("write");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    println!("logwell export of a run of {} logs, SQLite:", args.logs);

    // Once to warm the caches, once measured.
    stream_and_discard(channel.clone(), run, args.logs).await;
    let baseline = stream_and_discard(channel, run, args.logs).await;
    println!("  {:<44} {baseline:>9.0} logs/s  (baseline)", "ExportLogs stream, read and discarded");

    for extension in ["ndjson", "csv", "txt"] {
        let file = folder.join(format!("export.{extension}"));
        let started = Instant::now();
        let status = tokio::process::Command::new(LOGWELL)
            .args(["export", "--server", server.address(), "--run", &run.to_string(), "-o"])
            .arg(&file)
            .stderr(Stdio::null())
            .status()
            .await
            .expect("logwell export");
        let rate = args.logs as f64 / started.elapsed().as_secs_f64();
        assert!(status.success());
        let size = std::fs::metadata(&file).expect("the file").len();
        let target = if extension == "ndjson" { "  (target: at least 200,000)" } else { "" };
        println!(
            "  {:<44} {rate:>9.0} logs/s  {:.2}x  {} MiB{target}",
            format!("logwell export -o run.{extension}"),
            rate / baseline,
            size >> 20
        );
    }
    let lines = std::fs::read_to_string(folder.join("export.ndjson")).expect("file").lines().count();
    assert_eq!(lines, args.logs, "every log exported once");
}

/// Reads the run's export stream and drops it; returns logs per second.
async fn stream_and_discard(channel: Channel, run: Uuid, logs: usize) -> f64 {
    let started = Instant::now();
    let mut streamed = 0;
    export_stream(channel, &run.to_string(), |_| streamed += 1).await;
    assert_eq!(streamed, logs);
    streamed as f64 / started.elapsed().as_secs_f64()
}

/// Hands each log of the run's export stream to `each`.
async fn export_stream(channel: Channel, run: &str, mut each: impl FnMut(pb::Log)) {
    let mut query = LogQueryServiceClient::new(channel);
    let filter = pb::LogFilter { job_run_ids: vec![run.to_string()], ..Default::default() };
    let request = pb::ExportLogsRequest { filter: Some(filter), chunk_size: 10_000, ..Default::default() };
    let mut stream = query.export_logs(request).await.expect("export").into_inner();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        chunk.logs.into_iter().for_each(&mut each);
    }
}

/// The command alone and under `logwell run`, paced and as fast as it can.
async fn run_overhead(server: &Server, channel: Channel, args: &Args) {
    println!("logwell run, a command printing {} lines, SQLite:", args.lines);
    let this = std::env::current_exe().expect("this benchmark's path");
    for (pace, rate) in [(format!("at {} lines/s", args.pace), args.pace), ("as fast as it can".to_string(), 0)] {
        let command = [
            this.display().to_string(),
            "--print-lines".into(),
            args.lines.to_string(),
            "--rate".into(),
            rate.to_string(),
        ];
        let started = Instant::now();
        let status = tokio::process::Command::new(&command[0])
            .args(&command[1..])
            .stdout(Stdio::null())
            .status()
            .await
            .expect("the command");
        let alone = started.elapsed().as_secs_f64();
        assert!(status.success());

        let started = Instant::now();
        let output = tokio::process::Command::new(LOGWELL)
            .args(["run", "--server", server.address(), "--"])
            .args(&command)
            .stdout(Stdio::null())
            .output()
            .await
            .expect("logwell run");
        let under = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let run = stderr.lines().find_map(|line| line.strip_prefix("logwell: job run ")).expect("the run").to_string();
        stored_once_in_order(channel.clone(), &run, args.lines).await;
        println!(
            "  {pace:<20} alone {alone:>6.2} s, under logwell run {under:>6.2} s: {:.2}x{}; {} lines stored once, in \
             order ({:.0} lines/s)",
            under / alone,
            if rate > 0 { " (target: at most 1.2x)" } else { "" },
            args.lines,
            args.lines as f64 / under
        );
    }
}

/// Checks that the run holds each line once, in the order printed, and the
/// line that says how the command ended.
async fn stored_once_in_order(channel: Channel, run: &str, lines: usize) {
    let mut next = 1;
    export_stream(channel, run, |log| {
        if next <= lines {
            assert!(log.message.starts_with(&format!("line {next}:")), "line {next} is {:?}", log.message);
        } else {
            assert!(log.message.contains("exited with status 0"), "{:?}", log.message);
        }
        next += 1;
    })
    .await;
    assert_eq!(next, lines + 2, "every line and the exit, once");
}
