//! `logwell run -- CMD ARGS...`: runs a command as it would run without
//! logwell (its output still reaches the terminal, signals still reach it,
//! its exit status is logwell's), and stores each line it prints as a log
//! of a job run, with the stream it came on. At the end the run is
//! completed with an outcome from the exit status.

use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use chrono::Utc;
use nix::sys::signal::Signal;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::SignalKind;
use tokio::sync::mpsc;

use super::connection::{Client, ClientArgs};
use super::error::exit;
use super::lines::LineSplitter;
use super::push::{LogArgs, LogTemplate};
use super::retry::{Backoff, retryable};
use super::shipper::{Shipped, Shipper};
use super::{CliError, names};
use crate::model::{Level, Outcome, Stream};
use crate::proto::v1 as pb;
use crate::proto::v1::job_run_service_client::JobRunServiceClient;

/// How long output may still come after the command exits (from processes
/// it left running that hold its output open).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);
/// The exit status when the command could not be started, as shells say.
const EXIT_NOT_STARTED: u8 = 127;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  logwell run -- make test
  logwell run --name nightly-build --label branch=main -- ./build.sh --release
  logwell run --run 0193a1b2-0c3d-7e4f-8a9b-0c1d2e3f4a5b --task-run TASK -- pytest -x
  logwell run --no-complete --run RUN -- sh -c 'step one && step two'

Without --run, a new job run is made (its id is printed on standard error). SIGTERM, SIGHUP,
SIGUSR1 and SIGUSR2 are passed on to the command; so are SIGINT and SIGQUIT unless logwell runs
in the foreground of a terminal, which sends those to the command itself. logwell exits with the
command's exit status (128 + N if signal N killed it, 127 if it could not be started).")]
pub struct RunArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// The name of a new job run (shown by `logwell runs list`).
    #[arg(long)]
    pub name: Option<String>,
    /// A label of a new job run, KEY=VALUE; repeat for several.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = super::runs::label)]
    pub labels: Vec<(String, String)>,
    /// Leave the job run open when the command ends (more steps will write to it).
    #[arg(long)]
    pub no_complete: bool,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

pub async fn run(mut args: RunArgs) -> Result<u8, CliError> {
    let client = args.client.connect_lazily()?;
    let new_run = args.log.job_run.is_none();
    let job_run = args.log.job_run.get_or_insert_with(|| uuid::Uuid::now_v7().to_string()).clone();
    prepare(&client, &args, &job_run, new_run).await?;
    if new_run {
        eprintln!("logwell: job run {job_run}");
    }
    let template = args.log.template(None);
    let shipper = Shipper::start(client.clone(), template.log_type);
    let mut signals = Signals::watch()?;
    let program = args.command[0].to_string_lossy().to_string();

    let spawned = tokio::process::Command::new(&args.command[0])
        .args(&args.command[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let ended = match spawned {
        Err(error) => {
            eprintln!("logwell: cannot run {program}: {error}");
            Ended::NotStarted(error)
        }
        Ok(child) => Ended::Exited(supervise(child, &template, &shipper, &mut signals).await?),
    };

    let (level, outcome, metadata) = ended.as_log();
    let summary = format!("{program} {}", ended.describe());
    shipper.send(template.with(level, metadata).entry(summary.clone(), Stream::System, Utc::now()));
    let shipped = flush(shipper, &mut signals).await?;
    tracing::debug!(stored = shipped.stored, duplicates = shipped.duplicates, "logs stored");
    if !args.no_complete && args.log.task_run.is_none() {
        complete(&client, &job_run, outcome, summary).await?;
    }
    Ok(ended.exit_status())
}

/// Waits for the command to exit, copying its output and passing signals on
/// meanwhile, then for the rest of its output.
async fn supervise(
    mut child: tokio::process::Child,
    template: &LogTemplate,
    shipper: &Shipper,
    signals: &mut Signals,
) -> Result<ExitStatus, CliError> {
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(CliError::Io(std::io::Error::other("the command's output was not piped")));
    };
    let output = async {
        tokio::join!(
            copy(stdout, tokio::io::stdout(), Stream::Stdout, template, shipper),
            copy(stderr, tokio::io::stderr(), Stream::Stderr, template, shipper)
        )
    };
    tokio::pin!(output);
    let mut output_ended = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            Some(signal) = signals.next() => signals.forward(signal, child.id()),
            _ = &mut output, if !output_ended => output_ended = true,
        }
    };
    if !output_ended {
        // Output still in the pipes is the command's too; processes it left
        // behind may hold them open, so not for ever.
        let _ = tokio::time::timeout(OUTPUT_GRACE, &mut output).await;
    }
    Ok(status)
}

/// How the command ended.
enum Ended {
    NotStarted(std::io::Error),
    Exited(ExitStatus),
}

impl Ended {
    /// logwell's exit status: the command's, as a shell reports it.
    fn exit_status(&self) -> u8 {
        use std::os::unix::process::ExitStatusExt;
        match self {
            Ended::NotStarted(_) => EXIT_NOT_STARTED,
            Ended::Exited(status) => match (status.code(), status.signal()) {
                (Some(code), _) => u8::try_from(code).unwrap_or(exit::FAILED),
                (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(exit::FAILED),
                (None, None) => exit::FAILED,
            },
        }
    }

    /// "exited with status 3", "was killed by SIGTERM".
    fn describe(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        let status = match self {
            Ended::NotStarted(error) => return format!("could not be started: {error}"),
            Ended::Exited(status) => status,
        };
        match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => match Signal::try_from(signal) {
                Ok(name) => format!("was killed by {name}"),
                Err(_) => format!("was killed by signal {signal}"),
            },
            (None, None) => "ended".to_string(),
        }
    }

    /// The level of the last log, the run's outcome, and the metadata that
    /// says how the command ended.
    fn as_log(&self) -> (Level, Outcome, Vec<(String, prost_types::Value)>) {
        use std::os::unix::process::ExitStatusExt;
        let Ended::Exited(status) = self else { return (Level::Error, Outcome::Failed, vec![]) };
        match (status.code(), status.signal()) {
            (Some(0), _) => (Level::Info, Outcome::Succeeded, vec![("exit_code".into(), 0.0.into())]),
            (Some(code), _) => (Level::Error, Outcome::Failed, vec![("exit_code".into(), f64::from(code).into())]),
            (None, Some(signal)) => {
                (Level::Warn, Outcome::Cancelled, vec![("signal".into(), f64::from(signal).into())])
            }
            (None, None) => (Level::Warn, Outcome::Cancelled, vec![]),
        }
    }
}

/// Before the command runs: a new run is started (with its name and
/// labels), a given one must not be complete. A refusal (a token without
/// the scope, a complete run) stops here, before the command runs; an
/// unreachable server does not: the logs wait for it.
async fn prepare(client: &Client, args: &RunArgs, job_run: &str, new_run: bool) -> Result<(), CliError> {
    let mut runs = JobRunServiceClient::new(client.channel.clone());
    let answer = if new_run || args.name.is_some() || !args.labels.is_empty() {
        let request = pb::StartJobRunRequest {
            job_run_id: job_run.to_string(),
            name: args.name.clone().unwrap_or_default(),
            labels: args.labels.iter().cloned().collect(),
        };
        runs.start_job_run(client.request(request)).await.map(|started| started.into_inner().job_run)
    } else {
        let request = pb::GetJobRunRequest { job_run_id: job_run.to_string() };
        runs.get_job_run(client.request(request)).await.map(|found| found.into_inner().job_run)
    };
    match answer {
        Ok(Some(run)) if run.state == pb::JobRunState::Complete as i32 => {
            Err(CliError::Usage(format!("job run {job_run} is complete and takes no more logs")))
        }
        Ok(_) => Ok(()),
        Err(status) if status.code() == tonic::Code::NotFound => Ok(()),
        Err(status) if retryable(&status) => {
            eprintln!("logwell: the server does not answer ({}); the logs will wait for it", status.message());
            Ok(())
        }
        Err(status) => Err(status.into()),
    }
}

/// Copies the command's output to ours as it comes, and makes logs of its
/// lines, each timestamped when read.
async fn copy(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    stream: Stream,
    template: &LogTemplate,
    shipper: &Shipper,
) {
    let mut splitter = LineSplitter::default();
    let mut chunk = vec![0; 1 << 16];
    // Once our own output is gone (`logwell run -- cmd | head`), the logs
    // still are stored.
    let mut passing_on = true;
    while let Ok(read) = from.read(&mut chunk).await {
        if read == 0 {
            break;
        }
        if passing_on {
            passing_on = to.write_all(&chunk[..read]).await.is_ok() && to.flush().await.is_ok();
        }
        let now = Utc::now();
        splitter.push(&chunk[..read], |message| shipper.send(template.entry(message, stream, now)));
    }
    splitter.finish(|message| shipper.send(template.entry(message, stream, Utc::now())));
}

/// Waits until every log is stored; a signal meanwhile gives up, saying how
/// many were not.
async fn flush(shipper: Shipper, signals: &mut Signals) -> Result<Shipped, CliError> {
    let waiting = shipper.waiting();
    tokio::select! {
        shipped = shipper.finish() => shipped,
        Some(_) = signals.next() => {
            let status = tonic::Status::cancelled("interrupted while waiting for the server");
            Err(CliError::NotStored { logs: waiting.count(), status })
        }
    }
}

/// Completes the run, trying again while the server is away.
async fn complete(client: &Client, job_run: &str, outcome: Outcome, summary: String) -> Result<(), CliError> {
    let mut runs = JobRunServiceClient::new(client.channel.clone());
    let mut backoff = Backoff::default();
    loop {
        let request = pb::CompleteJobRunRequest {
            job_run_id: job_run.to_string(),
            outcome: names::outcome(outcome) as i32,
            summary: summary.clone(),
        };
        match runs.complete_job_run(client.request(request)).await {
            Ok(_) => return Ok(()),
            Err(status) if status.code() == tonic::Code::PermissionDenied => {
                eprintln!("logwell: the job run is left open: {} (--no-complete skips this)", status.message());
                return Ok(());
            }
            Err(status) if retryable(&status) => {
                let wait = backoff.after(&status);
                eprintln!(
                    "logwell: cannot complete the run ({}); trying again in {:.1} s",
                    status.message(),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
            }
            Err(status) => return Err(status.into()),
        }
    }
}

/// The signals logwell passes on to the command.
struct Signals {
    received: mpsc::UnboundedReceiver<Signal>,
    /// SIGINT and SIGQUIT come from the terminal to the command too.
    terminal_foreground: bool,
}

impl Signals {
    fn watch() -> Result<Signals, CliError> {
        let (sender, received) = mpsc::unbounded_channel();
        let kinds = [
            (SignalKind::terminate(), Signal::SIGTERM),
            (SignalKind::hangup(), Signal::SIGHUP),
            (SignalKind::user_defined1(), Signal::SIGUSR1),
            (SignalKind::user_defined2(), Signal::SIGUSR2),
            (SignalKind::interrupt(), Signal::SIGINT),
            (SignalKind::quit(), Signal::SIGQUIT),
        ];
        for (kind, signal) in kinds {
            let mut watched = tokio::signal::unix::signal(kind)?;
            let sender = sender.clone();
            tokio::spawn(async move { while watched.recv().await.is_some() && sender.send(signal).is_ok() {} });
        }
        Ok(Signals { received, terminal_foreground: in_terminal_foreground() })
    }

    async fn next(&mut self) -> Option<Signal> {
        self.received.recv().await
    }

    fn forward(&self, signal: Signal, child: Option<u32>) {
        let from_terminal = matches!(signal, Signal::SIGINT | Signal::SIGQUIT) && self.terminal_foreground;
        if let (false, Some(pid)) = (from_terminal, child.and_then(|pid| i32::try_from(pid).ok())) {
            // The command may have just exited: nothing to pass on then.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }
}

/// Whether logwell's process group is the foreground of the terminal on
/// its standard input (where Ctrl-C reaches every process of the group).
fn in_terminal_foreground() -> bool {
    nix::unistd::tcgetpgrp(std::io::stdin()).is_ok_and(|foreground| foreground == nix::unistd::getpgrp())
}
