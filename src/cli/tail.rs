//! `logwell tail`: follow a job run (or the system logs) exactly. The stream
//! orders a run by seq, and every log and heartbeat says how far the
//! follower got; after any connection failure the follow starts again after
//! that seq, so no line is shown twice and none is skipped.

use super::CliError;
use super::connection::ClientArgs;
use super::error::exit;
use super::names;
use super::output::{OutputArgs, Printer};
use super::retry::{Backoff, retryable};
use crate::model::{Level, Stream};
use crate::proto::v1 as pb;
use crate::proto::v1::log_stream_service_client::LogStreamServiceClient;
use crate::proto::v1::stream_logs_request::Start;
use crate::proto::v1::stream_logs_response::Event;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  logwell tail 0193a1b2-0c3d-7e4f-8a9b-0c1d2e3f4a5b
  logwell tail RUN --last 20 --min-level warn
  logwell tail RUN --after-seq 1200 --output ndjson
  logwell tail RUN --exit-status && echo the run succeeded
  logwell tail --system")]
pub struct TailArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The job run to follow.
    #[arg(required_unless_present = "system", conflicts_with = "system")]
    pub run: Option<String>,
    /// Follow the system logs instead of a job run.
    #[arg(long)]
    pub system: bool,
    /// Only logs of this task run of the job run.
    #[arg(long, value_name = "ID")]
    pub task_run: Option<String>,
    /// Only logs at this level or above.
    #[arg(long, value_name = "LEVEL")]
    pub min_level: Option<Level>,
    /// Only logs of this stream (stdout, stderr, system).
    #[arg(long, value_name = "STREAM")]
    pub stream: Option<Stream>,
    /// Start with the last N logs already written (default: from the first).
    #[arg(long, value_name = "N", conflicts_with = "after_seq")]
    pub last: Option<i64>,
    /// Start after this seq: where an earlier follow stopped.
    #[arg(long, value_name = "SEQ")]
    pub after_seq: Option<i64>,
    /// Exit with status 6 if the run failed, 7 if it was cancelled.
    #[arg(long)]
    pub exit_status: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// How a follow ended.
enum Ended {
    /// The run completed with this outcome.
    Completed(Box<pb::JobRun>),
    /// The connection failed in a way worth trying again.
    Lost(tonic::Status),
}

pub async fn run(args: TailArgs) -> Result<u8, CliError> {
    let client = args.client.connect().await?;
    let mut streams = LogStreamServiceClient::new(client.channel.clone());
    let mut printer = args.output.printer();
    // The seq through which everything matching was shown; None until the
    // first log or heartbeat says where the follow is.
    let mut position = args.after_seq;
    let mut backoff = Backoff::default();
    loop {
        let start = match (position, args.last) {
            (Some(seq), _) => Start::AfterSeq(seq),
            (None, Some(last)) => Start::Last(last),
            (None, None) => Start::AfterSeq(0),
        };
        let request = client.streaming_request(args.request(start));
        let ended = match streams.stream_logs(request).await {
            Ok(response) => follow(response.into_inner(), &mut printer, &mut position, &mut backoff).await?,
            Err(status) if retryable(&status) => Ended::Lost(status),
            Err(status) => return Err(status.into()),
        };
        match ended {
            Ended::Completed(run) => return Ok(completed(&run, args.exit_status)),
            Ended::Lost(status) => {
                let after = position.map_or("the start".to_string(), |seq| format!("seq {seq}"));
                let wait = backoff.after(&status);
                eprintln!(
                    "logwell: connection lost ({:?}: {}); resuming after {after} in {:.1} s",
                    status.code(),
                    status.message(),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

impl TailArgs {
    fn request(&self, start: Start) -> pb::StreamLogsRequest {
        pb::StreamLogsRequest {
            job_run_id: self.run.clone().unwrap_or_default(),
            system: self.system,
            task_run_id: self.task_run.clone().unwrap_or_default(),
            min_level: self.min_level.map_or(0, |level| names::level(level) as i32),
            stream: self.stream.map_or(0, |stream| names::stream(stream) as i32),
            start: Some(start),
        }
    }
}

/// Prints what `stream` sends until it ends; moves `position` with every
/// log and heartbeat, and resets `backoff` once the stream answers.
async fn follow(
    mut stream: tonic::Streaming<pb::StreamLogsResponse>,
    printer: &mut Printer,
    position: &mut Option<i64>,
    backoff: &mut Backoff,
) -> Result<Ended, CliError> {
    loop {
        let message = match stream.message().await {
            Ok(Some(message)) => message,
            // A stream the server closed without completion (shutting down).
            Ok(None) => return Ok(Ended::Lost(tonic::Status::unavailable("the server closed the stream"))),
            Err(status) if retryable(&status) => return Ok(Ended::Lost(status)),
            Err(status) => return Err(status.into()),
        };
        backoff.reset();
        match message.event {
            Some(Event::Log(log)) => {
                printer.print(&log)?;
                printer.flush()?;
                *position = Some(log.seq);
            }
            Some(Event::Heartbeat(heartbeat)) => {
                *position = Some(position.unwrap_or(0).max(heartbeat.delivered_through_seq));
            }
            Some(Event::Expired(expired)) => eprintln!(
                "logwell: the logs after seq {} up to seq {} expired; going on from there",
                expired.after_seq, expired.first_retained_seq
            ),
            Some(Event::Completed(completion)) => {
                printer.finish()?;
                return Ok(Ended::Completed(Box::new(completion.job_run.unwrap_or_default())));
            }
            None => {}
        }
    }
}

/// Says how the run ended; the exit status with `--exit-status`.
fn completed(run: &pb::JobRun, exit_status: bool) -> u8 {
    let outcome = pb::JobRunOutcome::try_from(run.outcome).unwrap_or(pb::JobRunOutcome::Unspecified);
    let name = names::of(Some(outcome.as_str_name()), "JOB_RUN_OUTCOME_");
    let summary = if run.summary.is_empty() { String::new() } else { format!(": {}", run.summary) };
    eprintln!("logwell: job run {} completed, {name}{summary}", run.job_run_id);
    match (exit_status, outcome) {
        (true, pb::JobRunOutcome::Failed) => exit::RUN_FAILED,
        (true, pb::JobRunOutcome::Cancelled) => exit::RUN_CANCELLED,
        _ => 0,
    }
}
