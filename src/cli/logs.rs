//! `logwell logs`: the logs matching a filter, page after page, printed.

use chrono::Utc;

use super::CliError;
use super::connection::ClientArgs;
use super::filter::FilterArgs;
use super::output::OutputArgs;
use super::tail::TailArgs;
use crate::model::LogType;
use crate::proto::v1 as pb;
use crate::proto::v1::log_query_service_client::LogQueryServiceClient;

/// The most logs one page asks for (the server's own maximum).
const PAGE_SIZE: usize = 1_000;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  logwell logs --run 0193a1b2-0c3d-7e4f-8a9b-0c1d2e3f4a5b
  logwell logs --type system --min-level warn --since 1h
  logwell logs -m worker_id=gpu-3 -m stage=build --text timeout -i
  logwell logs --run RUN --limit 0 --output ndjson > run.ndjson
  logwell logs --from 2026-11-25T08:00:00Z --to 2026-11-25T09:00:00Z --output csv
  logwell logs -f --run RUN --min-level warn")]
pub struct LogsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// How many logs to print at most; 0 prints every match, page after page.
    #[arg(long, default_value_t = 1_000)]
    pub limit: usize,
    /// Oldest first (asc) or newest first (desc).
    #[arg(long, value_enum, default_value = "asc")]
    pub order: Order,
    /// Follow: print what matches, then new logs as they come, as `logwell
    /// tail` does (one --run, or --type system; with --task-run,
    /// --min-level and --stream).
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    Asc,
    Desc,
}

pub async fn run(args: LogsArgs) -> Result<(), CliError> {
    let client = args.client.connect().await?;
    let mut query = LogQueryServiceClient::new(client.channel.clone());
    let mut printer = args.output.printer();
    let filter = args.filter.to_proto(Utc::now());
    let order = match args.order {
        Order::Asc => pb::SortOrder::Ascending,
        Order::Desc => pb::SortOrder::Descending,
    };
    let mut printed = 0;
    let mut page_token = String::new();
    loop {
        let wanted = if args.limit == 0 { PAGE_SIZE } else { (args.limit - printed).min(PAGE_SIZE) };
        let request = pb::ListLogsRequest {
            filter: Some(filter.clone()),
            order: order as i32,
            page_size: wanted as i32,
            page_token: std::mem::take(&mut page_token),
            ..Default::default()
        };
        let page = query.list_logs(client.request(request)).await?.into_inner();
        for log in &page.logs {
            printer.print(log)?;
        }
        printed += page.logs.len();
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
        if args.limit != 0 && printed >= args.limit {
            printer.finish()?;
            eprintln!("logwell: more logs match than --limit {}; --limit 0 prints them all", args.limit);
            return Ok(());
        }
    }
    printer.finish()?;
    Ok(())
}

impl LogsArgs {
    /// `logs -f` as the `tail` it is; refuses the filters a follow cannot
    /// apply, naming them.
    pub fn into_tail(self) -> Result<TailArgs, CliError> {
        let filter = &self.filter;
        let system = filter.types == [LogType::System];
        let unsupported = [
            (!filter.levels.is_empty(), "--level"),
            (!filter.sources.is_empty(), "--source"),
            (!filter.metadata.is_empty(), "--meta"),
            (filter.text.is_some(), "--text"),
            (filter.since.is_some() || filter.from.is_some() || filter.to.is_some(), "--since/--from/--to"),
            (filter.task_runs.len() > 1, "more than one --task-run"),
            (filter.streams.len() > 1, "more than one --stream"),
            (!system && !filter.types.is_empty(), "--type other than system"),
            (self.order == Order::Desc, "--order desc"),
        ];
        if let Some((_, flag)) = unsupported.iter().find(|(given, _)| *given) {
            return Err(CliError::Usage(format!(
                "logs -f follows one --run (or --type system) with --task-run, --min-level and --stream; it cannot \
                 apply {flag}"
            )));
        }
        let run = match (filter.runs.as_slice(), system) {
            ([run], false) => Some(run.clone()),
            ([], true) => None,
            _ => return Err(CliError::Usage("logs -f follows one --run, or --type system".into())),
        };
        Ok(TailArgs {
            client: self.client,
            run,
            system,
            task_run: filter.task_runs.first().cloned(),
            min_level: filter.min_level,
            stream: filter.streams.first().copied(),
            last: None,
            after_seq: None,
            exit_status: false,
            output: self.output,
        })
    }
}
