//! `logwell logs`: the logs matching a filter, page after page, printed.

use chrono::Utc;

use super::CliError;
use super::connection::ClientArgs;
use super::filter::FilterArgs;
use super::output::OutputArgs;
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
  logwell logs --from 2026-11-25T08:00:00Z --to 2026-11-25T09:00:00Z --output csv")]
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
