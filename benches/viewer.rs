//! The viewer's benchmark: headless Chromium over WebDriver against a real
//! `logwell serve` (the release build, SQLite), each figure beside a gRPC
//! client doing the same in the same run.
//!
//! - Acknowledgement to screen: lines written one at a time at a steady
//!   rate; for each, the time from its write's acknowledgement to its row
//!   in the page (the DOM change of the frame that paints it), beside the
//!   time to its receipt by a gRPC follower of the run.
//! - Opening a long run: the time from navigation to the first line on
//!   screen and to every line loaded, beside a gRPC StreamLogs' first and
//!   last message from the same run.
//! - Scrolling it: a scripted scroll (jumps, then a long glide) while the
//!   browser reports long tasks (the main thread busy over 50 ms) and frame
//!   intervals, beside the same scroll through the short run.
//!
//! ```text
//! cargo bench --bench viewer
//! cargo bench --bench viewer -- --lines 1000 --rate 100 --long-run 100000
//! ```

// The tests' browser; the benchmark uses a part of it.
#[allow(dead_code)]
#[path = "../tests/api/browser.rs"]
mod browser;
mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use browser::Browser;
use clap::Parser;
use logwell::proto::v1 as pb;
use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::log_stream_service_client::LogStreamServiceClient;
use serde_json::Value;
use support::Server;
use tokio::time::Instant;
use uuid::Uuid;

#[derive(Debug, Parser)]
struct Args {
    /// Lines written one at a time for the acknowledgement-to-screen figure.
    #[arg(long, default_value_t = 1_000)]
    lines: usize,
    /// Their rate, lines a second.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Lines of the long run that is opened and scrolled.
    #[arg(long, default_value_t = 100_000)]
    long_run: usize,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Milliseconds since the Unix epoch, as the page's
/// `performance.timeOrigin + performance.now()` counts them.
fn wall_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_secs_f64() * 1e3).unwrap_or_default()
}

fn percentiles(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    let at =
        |fraction: f64| values.get(((values.len().max(1) - 1) as f64 * fraction) as usize).copied().unwrap_or(f64::NAN);
    format!("p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms  ({} lines)", at(0.5), at(0.99), at(1.0), values.len())
}

fn entry(run: Uuid, message: String) -> pb::LogEntry {
    pb::LogEntry { job_run_id: run.to_string(), message, ..Default::default() }
}

/// Records when each row first appears in the page, by its message.
const WATCH_ROWS: &str = "window.__seen = {};
    new MutationObserver((records) => {
      const now = performance.timeOrigin + performance.now();
      for (const record of records) for (const node of record.addedNodes) {
        const text = node.querySelector?.('.message')?.textContent;
        if (text !== undefined && !(text in window.__seen)) window.__seen[text] = now;
      }
    }).observe(document.querySelector('.viewport'), { childList: true });
    return true;";

/// Follows `run` over gRPC from its start, recording when each message came.
fn grpc_follower(server: &Server, run: Uuid) -> tokio::task::JoinHandle<HashMap<String, f64>> {
    let address = server.address().to_string();
    tokio::spawn(async move {
        let mut client = LogStreamServiceClient::connect(address).await.expect("connect");
        let request = pb::StreamLogsRequest { job_run_id: run.to_string(), ..Default::default() };
        let mut stream = client.stream_logs(request).await.expect("follow").into_inner();
        let mut seen = HashMap::new();
        while let Ok(Some(message)) = stream.message().await {
            if let Some(pb::stream_logs_response::Event::Log(log)) = message.event {
                seen.insert(log.message, wall_ms());
            }
        }
        seen
    })
}

async fn ack_to_screen(server: &Server, browser: &Browser, args: &Args) -> Uuid {
    let run = Uuid::now_v7();
    browser.goto(&format!("{}/ui/#/runs/{run}", server.address())).await;
    browser
        .until("the page following", "return document.querySelector('.status')?.textContent;", |status| {
            status == "live"
        })
        .await;
    browser.run(WATCH_ROWS).await;
    let follower = grpc_follower(server, run);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut writer = JobLogServiceClient::new(server.channel().await);
    let mut acked = Vec::with_capacity(args.lines);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    for line in 0..args.lines {
        ticks.tick().await;
        let message = format!("line {line:05}");
        writer.write_job_log(pb::WriteJobLogRequest { log: Some(entry(run, message.clone())) }).await.expect("write");
        acked.push((message, wall_ms()));
    }
    let count = format!("return Object.keys(window.__seen).length >= {};", args.lines);
    browser.until("every line on screen", &count, |done| done == true).await;
    let seen = browser.run("return window.__seen;").await;
    let completion = pb::CompleteJobRunRequest {
        job_run_id: run.to_string(),
        outcome: pb::JobRunOutcome::Succeeded.into(),
        ..Default::default()
    };
    logwell::proto::v1::job_run_service_client::JobRunServiceClient::new(server.channel().await)
        .complete_job_run(completion)
        .await
        .expect("complete");
    let received = follower.await.expect("follower");
    let on_screen: Vec<f64> = acked.iter().filter_map(|(message, ack)| Some(seen[message].as_f64()? - ack)).collect();
    let over_grpc: Vec<f64> = acked.iter().filter_map(|(message, ack)| Some(received.get(message)? - ack)).collect();
    println!("acknowledgement to screen, {} lines at {} lines/s:", args.lines, args.rate);
    println!("  the viewer (row in the page)        {}", percentiles(on_screen));
    println!("  a gRPC follower (baseline)          {}", percentiles(over_grpc));
    run
}

async fn open_long_run(server: &Server, browser: &Browser, args: &Args) -> Uuid {
    let run = Uuid::now_v7();
    let mut writer = JobLogServiceClient::new(server.channel().await);
    for batch in 0..args.long_run.div_ceil(1_000) {
        let logs = (batch * 1_000..((batch + 1) * 1_000).min(args.long_run))
            .map(|line| entry(run, format!("long run line {line:06} {}", "x".repeat(60))))
            .collect();
        writer.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    }
    let started = Instant::now();
    let mut follower = LogStreamServiceClient::new(server.channel().await);
    let request = pb::StreamLogsRequest { job_run_id: run.to_string(), ..Default::default() };
    let mut stream = follower.stream_logs(request).await.expect("follow").into_inner();
    let (mut first, mut count) = (None, 0);
    while count < args.long_run {
        if let Some(pb::stream_logs_response::Event::Log(_)) =
            stream.message().await.expect("stream").and_then(|message| message.event)
        {
            first.get_or_insert(started.elapsed());
            count += 1;
        }
    }
    let grpc = (first.unwrap_or_default(), started.elapsed());

    browser.goto("about:blank").await;
    browser.goto(&format!("{}/ui/#/runs/{run}", server.address())).await;
    let shown = format!(
        "return document.querySelector('.shown')?.textContent === '{0} of {0} lines shown' ? performance.now() : null;",
        args.long_run
    );
    let loaded = browser.until("every line loaded", &shown, |now| now.is_number()).await;
    let first_line =
        browser.run("return performance.getEntriesByName('logwell:first-line')[0]?.startTime ?? null;").await;
    println!("opening a run of {} lines:", args.long_run);
    println!(
        "  the viewer: first line on screen {:>7.1} ms, every line loaded {:>7.1} ms (from navigation)",
        first_line.as_f64().unwrap_or(f64::NAN),
        loaded.as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "  a gRPC StreamLogs (baseline): first message {:>7.1} ms, last {:>7.1} ms",
        grpc.0.as_secs_f64() * 1e3,
        grpc.1.as_secs_f64() * 1e3
    );
    run
}

/// Scrolls the run page's lines as a reader would (jumps, then a glide of
/// a screen a frame) while the browser reports long tasks; answers a line
/// of figures.
const SCROLL: &str = "const done = arguments[arguments.length - 1];
    const viewport = document.querySelector('.viewport');
    const long = [];
    const observer = new PerformanceObserver((list) => { for (const entry of list.getEntries()) long.push(entry.duration); });
    observer.observe({ type: 'longtask' });
    const frames = [];
    let last = performance.now();
    let step = 0;
    const jumps = 60, glides = 240;
    function frame(now) {
      frames.push(now - last);
      last = now;
      const height = viewport.scrollHeight - viewport.clientHeight;
      if (step < jumps) viewport.scrollTop = ((step * 7919) % 1000) / 1000 * height;
      else viewport.scrollTop = ((step - jumps) / glides) * height;
      step += 1;
      if (step < jumps + glides) requestAnimationFrame(frame);
      else setTimeout(() => { observer.disconnect(); done({ long, frames: frames.slice(1), rows: viewport.querySelectorAll('.row').length }); }, 200);
    }
    requestAnimationFrame(frame);";

async fn scroll(browser: &Browser, server: &Server, run: Uuid, lines: usize, name: &str) {
    browser.goto("about:blank").await;
    browser.goto(&format!("{}/ui/#/runs/{run}", server.address())).await;
    let shown = format!("return document.querySelector('.shown')?.textContent === '{lines} of {lines} lines shown';");
    browser.until("the run loaded", &shown, |done| done == true).await;
    let result = browser.client.execute_async(SCROLL, Vec::new()).await.expect("scroll");
    let durations = |key: &str| {
        result[key]
            .as_array()
            .map(|values| values.iter().filter_map(Value::as_f64).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let (long, mut frames) = (durations("long"), durations("frames"));
    frames.sort_by(f64::total_cmp);
    let p99 = frames.get(((frames.len().max(1) - 1) as f64 * 0.99) as usize).copied().unwrap_or(f64::NAN);
    println!(
        "  {name:<38} long tasks {} (over 100 ms: {}, longest {:.0} ms); frame interval p99 {p99:.1} ms, max {:.1} ms; rows in the page {}",
        long.len(),
        long.iter().filter(|duration| **duration > 100.0).count(),
        long.iter().copied().fold(0.0, f64::max),
        frames.last().copied().unwrap_or(f64::NAN),
        result["rows"]
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let folder = tempfile::tempdir().expect("folder");
    let server = Server::start(&format!("sqlite:{}", folder.path().join("viewer.db").display()), &[]).await;
    let browser = Browser::start().await;
    println!("The viewer in headless Chromium, SQLite, this machine:");
    let short = ack_to_screen(&server, &browser, &args).await;
    let long = open_long_run(&server, &browser, &args).await;
    println!("a scripted scroll (60 jumps, then a glide through the whole run, a step a frame):");
    scroll(&browser, &server, long, args.long_run, &format!("the run of {} lines", args.long_run)).await;
    scroll(&browser, &server, short, args.lines, &format!("the run of {} lines (baseline)", args.lines)).await;
    browser.close().await;
}
