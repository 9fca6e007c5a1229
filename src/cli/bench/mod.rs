//! `logwell bench`: the load generator of logwell's benchmarks, against any
//! server (by default a throwaway local one), so that users measure their
//! own deployment: write modes, followers, and a mix of queries.

mod follow;
mod load;
mod queries;
mod server;

use std::time::Duration;

use super::CliError;
use super::connection::{Client, ClientArgs};
use load::{Measured, drive};
use server::LocalServer;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  logwell bench
  logwell bench --mode batches --mode stream --seconds 10
  logwell bench --server https://logwell.example.com:443 --ca-file ca.pem --token-file token --mode follow
  logwell bench --database-url postgres://logwell@localhost/bench

Against a server of yours, the benchmark writes into job runs of its own (named logwell-bench), which
stay there like any other: `logwell runs list --name logwell-bench` finds them. It needs the write
and read scopes.")]
pub struct BenchArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to measure; repeat for several.
    #[arg(long = "mode", value_enum, default_value = "all")]
    pub modes: Vec<Mode>,
    /// Seconds each write mode runs (and the follow's writer).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Connections of the batch and stream modes, one writer each.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Connections of the one-log mode (and of the RPC ceiling).
    #[arg(long, default_value_t = 64)]
    pub single_connections: usize,
    /// Logs per batch.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Bytes per message.
    #[arg(long, default_value_t = 200)]
    pub message_bytes: usize,
    /// Followers of the follow mode.
    #[arg(long, default_value_t = 100)]
    pub followers: usize,
    /// Logs per second written while they follow.
    #[arg(long, default_value_t = 1_000)]
    pub follow_rate: usize,
    /// Logs of the run the queries read.
    #[arg(long, default_value_t = 100_000)]
    pub query_logs: usize,
    /// Times each query runs.
    #[arg(long, default_value_t = 30)]
    pub repeat: usize,
    /// The throwaway server's database (default: a temporary SQLite file);
    /// ignored with --server.
    #[arg(long)]
    pub database_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    All,
    /// Unary batches.
    Batches,
    /// One log per RPC, beside the RPC ceiling (health checks).
    Single,
    /// IngestLogs streams.
    Stream,
    /// Followers of a run being written.
    Follow,
    /// A mix of queries.
    Query,
}

/// Runs the benchmark; `server_given` says whether the user named a server
/// (else a throwaway local one is started).
pub async fn run(args: BenchArgs, server_given: bool) -> Result<(), CliError> {
    let local = match server_given {
        true => None,
        false => Some(LocalServer::start(args.database_url.as_deref()).await?),
    };
    let target = match &local {
        Some(local) => {
            ClientArgs { server: local.address.clone(), token: None, token_file: None, ..args.client.clone() }
        }
        None => args.client.clone(),
    };
    let described = local.as_ref().map_or_else(|| target.server.clone(), LocalServer::describe);
    println!("logwell bench against {described}: {} s per mode, {}-byte messages", args.seconds, args.message_bytes);
    let duration = Duration::from_secs(args.seconds);
    let wants = |mode| args.modes.contains(&Mode::All) || args.modes.contains(&mode);
    let report = Report { args: &args, local: local.as_ref() };
    if wants(Mode::Batches) {
        let clients = connect(&target, args.connections).await?;
        let (batch, bytes) = (args.batch, args.message_bytes);
        let measured = report
            .measure(|| {
                drive(&clients, duration, move |client, deadline, acks| {
                    load::batches(client, deadline, acks, batch, bytes)
                })
            })
            .await;
        report.writes(&format!("unary batches of {batch}, {} connections", args.connections), &measured);
    }
    if wants(Mode::Single) {
        let clients = connect(&target, args.single_connections).await?;
        let bytes = args.message_bytes;
        let ceiling = drive(&clients, duration, load::health_checks).await;
        println!(
            "  {:<48} {:>9.0} RPCs/s (baseline: health checks, no storage)",
            format!("RPC ceiling, {} connections", args.single_connections),
            ceiling.rate()
        );
        let measured = report
            .measure(|| {
                drive(&clients, duration, move |client, deadline, acks| load::single(client, deadline, acks, bytes))
            })
            .await;
        report.writes(&format!("one log per RPC, {} connections", args.single_connections), &measured);
        println!("    {:.2} of the RPC ceiling", measured.0.rate() / ceiling.rate());
    }
    if wants(Mode::Stream) {
        let clients = connect(&target, args.connections).await?;
        let (batch, bytes) = (args.batch, args.message_bytes);
        let measured = report
            .measure(|| {
                drive(&clients, duration, move |client, deadline, acks| {
                    load::stream(client, deadline, acks, batch, bytes)
                })
            })
            .await;
        report.writes(&format!("IngestLogs streams, batches of {batch}, {} streams", args.connections), &measured);
    }
    if wants(Mode::Follow) {
        let writer = target.connect().await?;
        let connections = connect(&target, args.followers.div_ceil(100).max(1)).await?;
        let followed = follow::follow(&writer, &connections, args.followers, args.follow_rate, duration).await;
        println!(
            "  {:<48} {}/{} followers got all {} logs once, in order; acknowledged → received p50 {:.2} ms p99 {:.2} ms \
             (baseline: write round trip p50 {:.2} ms p99 {:.2} ms)",
            format!("{} followers of a run written at {} logs/s", args.followers, args.follow_rate),
            followed.complete,
            followed.followers,
            followed.logs,
            followed.delay_millis(0.5),
            followed.delay_millis(0.99),
            followed.round_trip_millis(0.5),
            followed.round_trip_millis(0.99)
        );
    }
    if wants(Mode::Query) {
        let client = target.connect().await?;
        println!("  queries over a run of {} logs, {} times each:", args.query_logs, args.repeat);
        for timed in queries::queries(&client, args.query_logs, args.repeat).await? {
            let failed = if timed.failures == 0 { String::new() } else { format!(", {} failed", timed.failures) };
            println!(
                "    {:<46} p50 {:>8.2} ms p99 {:>8.2} ms{failed}",
                timed.name,
                timed.millis_at(0.5),
                timed.millis_at(0.99)
            );
        }
    }
    if let Some(local) = local {
        local.stop().await;
    }
    Ok(())
}

/// `count` connections of their own.
async fn connect(target: &ClientArgs, count: usize) -> Result<Vec<Client>, CliError> {
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        clients.push(target.connect().await?);
    }
    Ok(clients)
}

/// Prints figures, with the throwaway server's CPU and memory when there is one.
struct Report<'a> {
    args: &'a BenchArgs,
    local: Option<&'a LocalServer>,
}

impl Report<'_> {
    /// Runs a load, noting the server's CPU time around it.
    async fn measure<F, Fut>(&self, load: F) -> (Measured, Option<f64>)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Measured>,
    {
        let before = self.local.map(LocalServer::cpu_seconds);
        let measured = load().await;
        let cpu = before.zip(self.local.map(LocalServer::cpu_seconds)).map(|(before, after)| after - before);
        (measured, cpu)
    }

    fn writes(&self, name: &str, (measured, cpu): &(Measured, Option<f64>)) {
        let server = match (cpu, self.local) {
            (Some(cpu), Some(local)) => format!(
                "   server CPU {:>4.0}%, peak {:>4} MiB",
                100.0 * cpu / measured.elapsed.as_secs_f64(),
                local.peak_memory() >> 20
            ),
            _ => String::new(),
        };
        println!(
            "  {name:<48} {:>9.0} logs/s {:>6.1} MB/s   ack p50 {:>7.2} ms p99 {:>7.2} ms max {:>7.2} ms{server}",
            measured.rate(),
            measured.rate() * self.args.message_bytes as f64 / 1e6,
            measured.millis_at(0.5),
            measured.millis_at(0.99),
            measured.millis_at(1.0)
        );
    }
}
