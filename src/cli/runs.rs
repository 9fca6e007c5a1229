//! `logwell runs`: list job runs, show one, complete one, delete one.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use serde_json::json;

use super::CliError;
use super::connection::{Client, ClientArgs};
use super::{names, time};
use crate::model::{Level, Outcome};
use crate::proto::v1 as pb;
use crate::proto::v1::job_run_service_client::JobRunServiceClient;

/// The most runs one page asks for (the server's own maximum).
const PAGE_SIZE: usize = 1_000;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  logwell runs list --state open
  logwell runs show 0193a1b2-0c3d-7e4f-8a9b-0c1d2e3f4a5b
  logwell runs complete RUN --outcome failed --summary '3 tests failed'
  logwell runs delete RUN")]
pub struct RunsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: RunsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RunsCommand {
    /// List job runs, most recently active first.
    #[command(after_help = "Examples:
  logwell runs list --state open
  logwell runs list --outcome failed --since 1day --name nightly-build
  logwell runs list --label branch=main --has-errors --output ndjson")]
    List(ListArgs),
    /// Show one job run: state, outcome, counts by level, times.
    Show {
        /// The job run's id.
        run: String,
        /// How to print it.
        #[arg(long, short = 'o', value_enum, default_value = "text")]
        output: RunFormat,
    },
    /// Complete a job run with an outcome (needs the admin scope).
    Complete {
        /// The job run's id.
        run: String,
        /// succeeded, failed or cancelled.
        #[arg(long)]
        outcome: Outcome,
        /// A line on how it went.
        #[arg(long, default_value = "")]
        summary: String,
    },
    /// Delete a completed job run's logs (needs the admin scope).
    Delete {
        /// The job run's id.
        run: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only open or only complete runs.
    #[arg(long, value_enum)]
    pub state: Option<State>,
    /// Only runs that ended so (succeeded, failed, cancelled); repeat for several.
    #[arg(long = "outcome", value_name = "OUTCOME")]
    pub outcomes: Vec<Outcome>,
    /// Only runs of this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only runs with this label, KEY=VALUE; repeat for several.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label)]
    pub labels: Vec<(String, String)>,
    /// Only runs active in the last DURATION (e.g. 1h, 2days).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
    /// Only runs with logs at this level or above.
    #[arg(long, value_name = "LEVEL", conflicts_with = "has_errors")]
    pub min_level: Option<Level>,
    /// Only runs with error or fatal logs (as --min-level error).
    #[arg(long)]
    pub has_errors: bool,
    /// How many runs to list at most; 0 lists every match.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// How to print them.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: RunFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum State {
    Open,
    Complete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunFormat {
    /// A table for people.
    Text,
    /// One JSON object per run, a line each.
    Ndjson,
}

pub async fn run(args: RunsArgs) -> Result<u8, CliError> {
    let client = args.client.connect().await?;
    let mut runs = JobRunServiceClient::new(client.channel.clone());
    match args.command {
        RunsCommand::List(list) => print_list(&client, &mut runs, &list).await?,
        RunsCommand::Show { run, output } => {
            let request = client.request(pb::GetJobRunRequest { job_run_id: run });
            let run = runs.get_job_run(request).await?.into_inner().job_run.unwrap_or_default();
            match output {
                RunFormat::Text => print_one(&run),
                RunFormat::Ndjson => println!("{}", run_json(&run)),
            }
        }
        RunsCommand::Complete { run, outcome, summary } => {
            let outcome = names::outcome(outcome) as i32;
            let request = client.request(pb::CompleteJobRunRequest { job_run_id: run, outcome, summary });
            let run = runs.complete_job_run(request).await?.into_inner().job_run.unwrap_or_default();
            print_one(&run);
        }
        RunsCommand::Delete { run } => {
            let request = client.request(pb::DeleteJobRunRequest { job_run_id: run.clone() });
            let deleted = runs.delete_job_run(request).await?.into_inner();
            println!("deleted the logs of job run {run}: {}", deleted.deleted_logs);
        }
    }
    Ok(0)
}

async fn print_list(
    client: &Client,
    runs: &mut JobRunServiceClient<tonic::transport::Channel>,
    args: &ListArgs,
) -> Result<(), CliError> {
    let min_level = if args.has_errors { Some(Level::Error) } else { args.min_level };
    let mut request = pb::ListJobRunsRequest {
        state: match args.state {
            None => pb::JobRunState::Unspecified,
            Some(State::Open) => pb::JobRunState::Open,
            Some(State::Complete) => pb::JobRunState::Complete,
        } as i32,
        outcomes: args.outcomes.iter().map(|outcome| names::outcome(*outcome) as i32).collect(),
        start_time: args.since.map(|since| time::to_proto(Utc::now() - since)),
        name: args.name.clone().unwrap_or_default(),
        labels: args.labels.iter().cloned().collect::<HashMap<_, _>>(),
        min_level: min_level.map_or(0, |level| names::level(level) as i32),
        ..Default::default()
    };
    let mut listed = Vec::new();
    loop {
        let wanted = if args.limit == 0 { PAGE_SIZE } else { (args.limit - listed.len()).min(PAGE_SIZE) };
        request.page_size = wanted as i32;
        let page = runs.list_job_runs(client.request(request.clone())).await?.into_inner();
        listed.extend(page.job_runs);
        request.page_token = page.next_page_token;
        if request.page_token.is_empty() || (args.limit != 0 && listed.len() >= args.limit) {
            break;
        }
    }
    match args.output {
        RunFormat::Ndjson => {
            for run in &listed {
                println!("{}", run_json(run));
            }
        }
        RunFormat::Text => {
            let mut table = Table::new();
            table.load_preset(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic);
            table.set_header(["job run", "name", "state", "logs", "warn", "error", "fatal", "last activity"]);
            for run in &listed {
                let counts = run.level_counts.unwrap_or_default();
                table.add_row([
                    run.job_run_id.clone(),
                    run.name.clone(),
                    state(run),
                    run.log_count.to_string(),
                    counts.warn.to_string(),
                    counts.error.to_string(),
                    counts.fatal.to_string(),
                    time(run.last_activity_time.as_ref()),
                ]);
            }
            println!("{table}");
        }
    }
    if !request.page_token.is_empty() {
        eprintln!("logwell: more runs match than --limit {}; --limit 0 lists them all", args.limit);
    }
    Ok(())
}

/// "open", or the outcome of a completed run.
fn state(run: &pb::JobRun) -> String {
    let outcome = pb::JobRunOutcome::try_from(run.outcome).ok().map(|outcome| outcome.as_str_name());
    match names::of(outcome, "JOB_RUN_OUTCOME_") {
        outcome if outcome.is_empty() => "open".into(),
        outcome => outcome,
    }
}

fn print_one(run: &pb::JobRun) {
    let counts = run.level_counts.unwrap_or_default();
    println!("job run       {}", run.job_run_id);
    if !run.name.is_empty() {
        println!("name          {}", run.name);
    }
    let mut labels: Vec<_> = run.labels.iter().map(|(key, value)| format!("{key}={value}")).collect();
    labels.sort();
    if !labels.is_empty() {
        println!("labels        {}", labels.join(", "));
    }
    println!("state         {}", state(run));
    if !run.summary.is_empty() {
        println!("summary       {}", run.summary);
    }
    println!("logs          {} (seqs up to {})", run.log_count, run.last_seq);
    println!(
        "by level      trace {}, debug {}, info {}, warn {}, error {}, fatal {}",
        counts.trace, counts.debug, counts.info, counts.warn, counts.error, counts.fatal
    );
    println!("started       {}", time(run.started_at.as_ref()));
    println!("completed     {}", time(run.completed_at.as_ref()));
    println!("last activity {}", time(run.last_activity_time.as_ref()));
}

fn run_json(run: &pb::JobRun) -> serde_json::Value {
    let counts = run.level_counts.unwrap_or_default();
    json!({
        "job_run_id": run.job_run_id,
        "name": run.name,
        "labels": run.labels,
        "state": state(run),
        "summary": run.summary,
        "log_count": run.log_count,
        "last_seq": run.last_seq,
        "level_counts": {
            "trace": counts.trace, "debug": counts.debug, "info": counts.info,
            "warn": counts.warn, "error": counts.error, "fatal": counts.fatal,
        },
        "started_at": json_time(run.started_at.as_ref()),
        "completed_at": json_time(run.completed_at.as_ref()),
        "last_activity_time": json_time(run.last_activity_time.as_ref()),
    })
}

/// RFC 3339 to the second, or "-" for a time the run does not have yet.
fn time(time: Option<&prost_types::Timestamp>) -> String {
    json_time(time).unwrap_or_else(|| "-".into())
}

fn json_time(time: Option<&prost_types::Timestamp>) -> Option<String> {
    time::from_proto(time).map(|time| time.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// `KEY=VALUE`, as a label condition.
/// `KEY=VALUE`, as a label (of a run to start, or to find).
pub(super) fn label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err("a label is KEY=VALUE".into()),
    }
}
