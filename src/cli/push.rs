//! `logwell push`: each line of standard input becomes a log of a job run,
//! a task run or the system logs, like `systemd-cat` for logwell.

use std::collections::BTreeMap;

use chrono::Utc;
use tokio::io::AsyncReadExt;

use super::connection::ClientArgs;
use super::filter::proto_value;
use super::lines::LineSplitter;
use super::shipper::Shipper;
use super::{CliError, names, time};
use crate::model::{Level, LogType, Stream};
use crate::proto::v1 as pb;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  echo 'deploy started' | logwell push --source deployer
  tail -F /var/log/app.log | logwell push --run 0193a1b2-0c3d-7e4f-8a9b-0c1d2e3f4a5b --stream stderr
  make 2>&1 | logwell push --run RUN --task-run TASK -m step=build
  logwell push --level warn -m host=db-1 < warnings.txt")]
pub struct PushArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// The stream of the logs (default: stdout for a run, system for the
    /// system logs).
    #[arg(long)]
    pub stream: Option<Stream>,
}

/// Whose logs a command writes, and what each carries.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// The job run the logs belong to (default for push: the system logs).
    #[arg(long = "run", short = 'r', visible_alias = "job-run", value_name = "ID")]
    pub job_run: Option<String>,
    /// The task run of the job run the logs belong to.
    #[arg(long, value_name = "ID", requires = "job_run")]
    pub task_run: Option<String>,
    /// The level of every log.
    #[arg(long, default_value = "info")]
    pub level: Level,
    /// The source of every log: the service, worker or host.
    #[arg(long)]
    pub source: Option<String>,
    /// Metadata on every log: KEY=VALUE (VALUE as JSON if it parses, else
    /// as text); repeat for several.
    #[arg(long = "meta", short = 'm', value_name = "KEY=VALUE", value_parser = metadata_field)]
    pub metadata: Vec<(String, prost_types::Value)>,
}

pub async fn run(args: PushArgs) -> Result<(), CliError> {
    let template = args.log.template(args.stream);
    if template.log_type == LogType::System && template.stream != Stream::System {
        return Err(CliError::Usage("system logs have the system stream only: give --run for stdout or stderr".into()));
    }
    let client = args.client.connect_lazily()?;
    let shipper = Shipper::start(client, template.log_type);
    let mut stdin = tokio::io::stdin();
    let mut splitter = LineSplitter::default();
    let mut chunk = vec![0; 1 << 16];
    loop {
        let read = stdin.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        let now = Utc::now();
        splitter.push(&chunk[..read], |message| shipper.send(template.entry(message, template.stream, now)));
    }
    splitter.finish(|message| shipper.send(template.entry(message, template.stream, Utc::now())));
    let shipped = shipper.finish().await?;
    let again = match shipped.duplicates {
        0 => String::new(),
        duplicates => format!(" ({duplicates} of them were already stored)"),
    };
    eprintln!("logwell: stored {} logs{again}", shipped.stored);
    Ok(())
}

/// What every log a command writes has in common.
pub struct LogTemplate {
    pub log_type: LogType,
    pub stream: Stream,
    job_run_id: String,
    task_run_id: String,
    level: Level,
    source: String,
    metadata: prost_types::Struct,
}

impl LogArgs {
    /// The template of these logs; `stream` by default stdout for a run,
    /// system for the system logs.
    pub fn template(&self, stream: Option<Stream>) -> LogTemplate {
        let log_type = match (&self.job_run, &self.task_run) {
            (None, _) => LogType::System,
            (Some(_), None) => LogType::Job,
            (Some(_), Some(_)) => LogType::Task,
        };
        let default_stream = if log_type == LogType::System { Stream::System } else { Stream::Stdout };
        LogTemplate {
            log_type,
            stream: stream.unwrap_or(default_stream),
            job_run_id: self.job_run.clone().unwrap_or_default(),
            task_run_id: self.task_run.clone().unwrap_or_default(),
            level: self.level,
            source: self.source.clone().unwrap_or_default(),
            metadata: prost_types::Struct { fields: self.metadata.iter().cloned().collect::<BTreeMap<_, _>>() },
        }
    }
}

impl LogTemplate {
    /// A log of `message` on `stream`, read at `read_at`.
    pub fn entry(&self, message: String, stream: Stream, read_at: chrono::DateTime<Utc>) -> pb::LogEntry {
        pb::LogEntry {
            job_run_id: self.job_run_id.clone(),
            task_run_id: self.task_run_id.clone(),
            time: Some(time::to_proto(read_at)),
            level: names::level(self.level) as i32,
            stream: names::stream(stream) as i32,
            source: self.source.clone(),
            message,
            metadata: (!self.metadata.fields.is_empty()).then(|| self.metadata.clone()),
            id: String::new(),
        }
    }

    /// The same logs at another level with more metadata.
    pub fn with(&self, level: Level, metadata: impl IntoIterator<Item = (String, prost_types::Value)>) -> LogTemplate {
        let mut fields = self.metadata.fields.clone();
        fields.extend(metadata);
        LogTemplate {
            log_type: self.log_type,
            stream: self.stream,
            job_run_id: self.job_run_id.clone(),
            task_run_id: self.task_run_id.clone(),
            level,
            source: self.source.clone(),
            metadata: prost_types::Struct { fields },
        }
    }
}

/// `KEY=VALUE`, the value as JSON if it parses, else as text.
pub fn metadata_field(text: &str) -> Result<(String, prost_types::Value), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => {
            let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
            Ok((key.to_string(), proto_value(value)))
        }
        _ => Err("metadata is KEY=VALUE".into()),
    }
}
