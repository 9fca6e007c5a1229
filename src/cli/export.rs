//! `logwell export`: every log matching a filter, through the export
//! stream, into a file. The stream's cursor says where each message ends;
//! after a dropped connection the export goes on from the last cursor
//! written, so no log is written twice and none is missed. The file appears
//! under its name only once it is complete.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};

use super::CliError;
use super::connection::{Client, ClientArgs};
use super::filter::FilterArgs;
use super::output::{Format, Printer, TextTimes};
use super::retry::{Backoff, retryable};
use crate::proto::v1 as pb;
use crate::proto::v1::log_query_service_client::LogQueryServiceClient;

/// Logs per message of the export stream: the server's largest chunk.
const CHUNK_LOGS: i32 = 10_000;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  logwell export --run 0193a1b2-0c3d-7e4f-8a9b-0c1d2e3f4a5b -o run.txt
  logwell export --type system --since 1day -o system.ndjson
  logwell export --min-level error --from 2026-11-25T00:00:00Z -o errors.csv
  logwell export --run RUN --format ndjson -o - | jq .message")]
pub struct ExportArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// The file to write (replaced once the export is complete), or - for
    /// standard output.
    #[arg(long = "output", short = 'o', value_name = "FILE")]
    pub file: PathBuf,
    /// The file's format; by default from its extension: .txt (text),
    /// .ndjson or .jsonl, .json, .csv.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Text: times in the local time zone rather than UTC.
    #[arg(long)]
    pub local_time: bool,
}

pub async fn run(args: ExportArgs) -> Result<(), CliError> {
    let format = args.format()?;
    let times = TextTimes { full: true, utc: !args.local_time };
    let to_stdout = args.file.as_os_str() == "-";
    let (mut printer, file) = if to_stdout {
        (Printer::new(format, times), None)
    } else {
        let file = unfinished_file(&args.file)?;
        let handle = file.as_file().try_clone()?;
        (Printer::to_file(format, times, handle), Some(file))
    };
    let client = args.client.connect().await?;
    let filter = args.filter.to_proto(Utc::now());
    let progress = progress_bar(&client, &filter, to_stdout).await;
    let started = Instant::now();
    export(&client, filter, &mut printer, &progress).await?;
    printer.finish()?;
    progress.finish_and_clear();
    let written = printer.printed();
    if let Some(file) = file {
        file.persist(&args.file).map_err(|error| error.error)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let target = if to_stdout { "standard output".to_string() } else { args.file.display().to_string() };
    eprintln!("logwell: exported {written} logs to {target} in {seconds:.1} s");
    Ok(())
}

/// Writes every log the export stream sends, resuming from the last cursor
/// after each retryable failure.
async fn export(
    client: &Client,
    filter: pb::LogFilter,
    printer: &mut Printer,
    progress: &ProgressBar,
) -> Result<(), CliError> {
    let mut query = LogQueryServiceClient::new(client.channel.clone());
    let mut cursor = String::new();
    let mut backoff = Backoff::default();
    loop {
        let request =
            pb::ExportLogsRequest { filter: Some(filter.clone()), cursor: cursor.clone(), chunk_size: CHUNK_LOGS };
        let failure = match query.export_logs(client.streaming_request(request)).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(chunk)) => {
                            backoff.reset();
                            for log in &chunk.logs {
                                printer.print(log)?;
                            }
                            progress.inc(chunk.logs.len() as u64);
                            cursor = chunk.cursor;
                        }
                        Ok(None) => return Ok(()),
                        Err(status) => break status,
                    }
                }
            }
            Err(status) => status,
        };
        if !retryable(&failure) {
            return Err(failure.into());
        }
        let wait = backoff.after(&failure);
        progress.suspend(|| {
            eprintln!(
                "logwell: connection lost ({:?}: {}); resuming after {} logs in {:.1} s",
                failure.code(),
                failure.message(),
                printer.printed(),
                wait.as_secs_f64()
            )
        });
        tokio::time::sleep(wait).await;
    }
}

impl ExportArgs {
    fn format(&self) -> Result<Format, CliError> {
        if let Some(format) = self.format {
            return Ok(format);
        }
        let extension = self.file.extension().and_then(|extension| extension.to_str()).unwrap_or_default();
        match extension.to_ascii_lowercase().as_str() {
            "txt" | "log" => Ok(Format::Text),
            "ndjson" | "jsonl" => Ok(Format::Ndjson),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            _ => Err(CliError::Usage(format!(
                "cannot tell the format of {:?} from its extension: name it .txt, .ndjson, .json or .csv, or give \
                 --format",
                self.file.display().to_string()
            ))),
        }
    }
}

/// A file beside `path` to write into; renamed to `path` once complete, and
/// removed if the export fails, so `path` never holds half an export.
fn unfinished_file(path: &Path) -> Result<tempfile::NamedTempFile, CliError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|name| name.to_string_lossy().to_string()).unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(directory)
        .map_err(|error| CliError::Usage(format!("cannot write into {}: {error}", directory.display())))
}

/// A progress bar on standard error when it is a terminal (indicatif draws
/// nothing otherwise): logs written, the rate, and an ETA from a count of
/// what matches. Without a count (it failed or took too long) it shows no
/// ETA.
async fn progress_bar(client: &Client, filter: &pb::LogFilter, to_stdout: bool) -> ProgressBar {
    /// How long the count may take before the export starts without it.
    const COUNT_WAIT: Duration = Duration::from_secs(5);
    if to_stdout || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let mut query = LogQueryServiceClient::new(client.channel.clone());
    let request = pb::CountLogsRequest { filter: Some(filter.clone()), ..Default::default() };
    let total = tokio::time::timeout(COUNT_WAIT, query.count_logs(client.request(request))).await;
    let (bar, template) = match total {
        Ok(Ok(counted)) => (
            ProgressBar::new(u64::try_from(counted.into_inner().total).unwrap_or(0)),
            "{bar:30} {human_pos}/{human_len} logs  {per_sec}  ETA {eta}",
        ),
        _ => (ProgressBar::no_length(), "{spinner} {human_pos} logs  {per_sec}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
