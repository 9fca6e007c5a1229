//! `logwell stats`: how many logs match, grouped by what the user names,
//! and over time as a histogram, like the seed systems' error summaries.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Local, TimeDelta, Utc};
use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use serde_json::{Value, json};

use super::CliError;
use super::connection::ClientArgs;
use super::filter::FilterArgs;
use super::output::value_json;
use super::time;
use crate::proto::v1 as pb;
use crate::proto::v1::log_query_service_client::LogQueryServiceClient;

/// Buckets in a histogram, at most (the server's bound too).
const MAX_BUCKETS: usize = 1_000;

/// Characters in the longest bar of a histogram.
const BAR_WIDTH: usize = 40;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  logwell stats --by level --since 1day
  logwell stats --type system --by source --min-level error
  logwell stats --by meta.worker_id --by level --top 20
  logwell stats --min-level error --every 1h --since 2days
  logwell stats --run RUN --by task-run --output csv")]
pub struct StatsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Group by level, type, stream, source, run, task-run or meta.KEY (a
    /// metadata key); repeat for up to three, in that order.
    #[arg(long = "by", value_name = "GROUPING", value_parser = grouping)]
    pub by: Vec<Grouping>,
    /// Count per time bucket of this width (e.g. 5m, 1h, 1day), drawn as a
    /// histogram.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub every: Option<Duration>,
    /// The largest groups to show; the others are summed as "(other)".
    #[arg(long, default_value_t = 10)]
    pub top: u32,
    /// Times in UTC rather than the local time zone.
    #[arg(long)]
    pub utc: bool,
    /// A table (with bars for --every), or rows for programs.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: StatsFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsFormat {
    Table,
    Ndjson,
    Csv,
}

/// One thing to group by, with the name its column shows.
#[derive(Debug, Clone)]
pub struct Grouping {
    name: String,
    wire: pb::CountGrouping,
}

fn grouping(text: &str) -> Result<Grouping, String> {
    use pb::count_grouping::By;
    let field = match text {
        "level" => pb::CountField::Level,
        "type" => pb::CountField::Type,
        "stream" => pb::CountField::Stream,
        "source" => pb::CountField::Source,
        "run" => pb::CountField::JobRun,
        "task-run" => pb::CountField::TaskRun,
        _ => match text.strip_prefix("meta.") {
            Some(key) if !key.is_empty() => {
                let wire = pb::CountGrouping { by: Some(By::MetadataKey(key.to_string())) };
                return Ok(Grouping { name: text.to_string(), wire });
            }
            _ => return Err("group by level, type, stream, source, run, task-run or meta.KEY".to_string()),
        },
    };
    Ok(Grouping { name: text.to_string(), wire: pb::CountGrouping { by: Some(By::Field(field as i32)) } })
}

pub async fn run(args: StatsArgs) -> Result<(), CliError> {
    if args.by.len() > 3 {
        return Err(CliError::Usage("--by takes at most three groupings".into()));
    }
    let client = args.client.connect().await?;
    let mut query = LogQueryServiceClient::new(client.channel.clone());
    let now = Utc::now();
    let filter = args.filter.to_proto(now);
    if let Some(every) = args.every {
        check_buckets(&filter, every, now)?;
    }
    let request = pb::CountLogsRequest {
        filter: Some(filter.clone()),
        group_by: args.by.iter().map(|grouping| grouping.wire.clone()).collect(),
        buckets: args.every.map(|every| {
            let width = prost_types::Duration { seconds: every.as_secs() as i64, nanos: every.subsec_nanos() as i32 };
            pb::count_logs_request::Buckets::BucketWidth(width)
        }),
        top: args.top as i32,
    };
    let counts = query.count_logs(client.request(request)).await?.into_inner();
    let view = View { args: &args, range: (time::from_proto(filter.start_time.as_ref()), filter.end_time.is_none()) };
    match args.output {
        StatsFormat::Ndjson => view.rows(&counts, |row| println!("{row}")),
        StatsFormat::Csv => view.csv(&counts)?,
        StatsFormat::Table if args.every.is_some() => println!("{}", view.histogram(&counts, now)),
        StatsFormat::Table => println!("{}", view.groups(&counts)),
    }
    Ok(())
}

/// How the counts are shown.
struct View<'a> {
    args: &'a StatsArgs,
    /// The filter's start, and whether it runs up to now (no end time).
    range: (Option<DateTime<Utc>>, bool),
}

impl View<'_> {
    /// Each group's count and share of the total.
    fn groups(&self, counts: &pb::CountLogsResponse) -> Table {
        let mut table = new_table();
        let mut header: Vec<String> = self.args.by.iter().map(|grouping| grouping.name.clone()).collect();
        header.extend(["logs".to_string(), "share".to_string()]);
        table.set_header(header);
        for count in &counts.counts {
            let mut row = group_cells(count, self.args.by.len());
            row.push(count.count.to_string());
            row.push(share(count.count, counts.total));
            table.add_row(row);
        }
        let mut total = vec![String::new(); self.args.by.len()];
        if let Some(first) = total.first_mut() {
            *first = "total".into();
        }
        total.extend([counts.total.to_string(), String::new()]);
        table.add_row(total);
        align_numbers(&mut table, self.args.by.len(), 2);
        table
    }

    /// One row per bucket from the first to the last (empty ones too): the
    /// count of each group, the total, and a bar.
    fn histogram(&self, counts: &pb::CountLogsResponse, now: DateTime<Utc>) -> Table {
        let width = counts.bucket_width.map_or(TimeDelta::hours(1), |width| {
            TimeDelta::new(width.seconds, width.nanos as u32).unwrap_or(TimeDelta::hours(1))
        });
        let mut groups: Vec<String> = Vec::new();
        let mut cells: BTreeMap<DateTime<Utc>, BTreeMap<usize, i64>> = BTreeMap::new();
        for count in &counts.counts {
            let name = group_cells(count, self.args.by.len()).join(" ");
            let column = groups.iter().position(|group| *group == name).unwrap_or_else(|| {
                groups.push(name);
                groups.len() - 1
            });
            if let Some(start) = time::from_proto(count.bucket_start.as_ref()) {
                *cells.entry(start).or_default().entry(column).or_default() += count.count;
            }
        }
        let first = cells.keys().next().copied();
        let first = self.range.0.map(|start| align(start, width)).into_iter().chain(first).min();
        let last = cells.keys().next_back().copied();
        let last = if self.range.1 { Some(align(now, width)) } else { None }.into_iter().chain(last).max();
        let totals: Vec<(DateTime<Utc>, i64)> = buckets(first, last, width)
            .map(|start| (start, cells.get(&start).map_or(0, |groups| groups.values().sum())))
            .collect();
        let highest = totals.iter().map(|(_, total)| *total).max().unwrap_or(0);

        let mut table = new_table();
        let mut header = vec!["from".to_string()];
        if !self.args.by.is_empty() {
            header.extend(groups.iter().cloned());
        }
        header.extend(["logs".to_string(), String::new()]);
        table.set_header(header);
        for (start, total) in &totals {
            let mut row = vec![self.time(*start, width)];
            if !self.args.by.is_empty() {
                let bucket = cells.get(start);
                row.extend((0..groups.len()).map(|column| {
                    bucket.and_then(|bucket| bucket.get(&column)).map_or("·".to_string(), i64::to_string)
                }));
            }
            row.push(total.to_string());
            row.push(bar(*total, highest));
            table.add_row(row);
        }
        let numbers = if self.args.by.is_empty() { 1 } else { groups.len() + 1 };
        align_numbers(&mut table, 1, numbers);
        table
    }

    /// Each count as a JSON object.
    fn rows(&self, counts: &pb::CountLogsResponse, mut emit: impl FnMut(Value)) {
        for count in &counts.counts {
            let group: serde_json::Map<String, Value> = self
                .args
                .by
                .iter()
                .zip(&count.group)
                .map(|(grouping, value)| (grouping.name.clone(), value_json(value)))
                .collect();
            let mut row = json!({ "group": group, "count": count.count });
            if count.rest {
                row["rest"] = Value::Bool(true);
            }
            if let Some(start) = time::from_proto(count.bucket_start.as_ref()) {
                row["bucket_start"] = Value::String(start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
            emit(row);
        }
    }

    /// One CSV record per count: the groups, the bucket's start, the count.
    fn csv(&self, counts: &pb::CountLogsResponse) -> Result<(), CliError> {
        let mut writer = csv::Writer::from_writer(std::io::stdout().lock());
        let mut header: Vec<&str> = self.args.by.iter().map(|grouping| grouping.name.as_str()).collect();
        header.extend(["bucket_start", "count"]);
        writer.write_record(&header).map_err(std::io::Error::from)?;
        for count in &counts.counts {
            let mut record = group_cells(count, self.args.by.len());
            let start = time::from_proto(count.bucket_start.as_ref());
            record
                .push(start.map(|start| start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default());
            record.push(count.count.to_string());
            writer.write_record(&record).map_err(std::io::Error::from)?;
        }
        writer.flush()?;
        Ok(())
    }

    /// A bucket's start: to the minute, or the second for narrower buckets.
    fn time(&self, start: DateTime<Utc>, width: TimeDelta) -> String {
        let pattern = if width < TimeDelta::minutes(1) { "%Y-%m-%d %H:%M:%S" } else { "%Y-%m-%d %H:%M" };
        match self.args.utc {
            true => start.format(pattern).to_string(),
            false => start.with_timezone(&Local).format(pattern).to_string(),
        }
    }
}

/// Refuses, before asking, a histogram of more buckets than a screen (and
/// the server) can take over the filter's range.
fn check_buckets(filter: &pb::LogFilter, every: Duration, now: DateTime<Utc>) -> Result<(), CliError> {
    let Some(start) = time::from_proto(filter.start_time.as_ref()) else { return Ok(()) };
    let end = time::from_proto(filter.end_time.as_ref()).unwrap_or(now);
    let range = (end - start).to_std().unwrap_or_default();
    let buckets = range.as_secs_f64() / every.as_secs_f64().max(f64::MIN_POSITIVE);
    if buckets > MAX_BUCKETS as f64 {
        return Err(CliError::Usage(format!(
            "--every {} makes {buckets:.0} buckets of the range; at most {MAX_BUCKETS}: widen --every or narrow the \
             range",
            humantime::format_duration(every)
        )));
    }
    Ok(())
}

fn new_table() -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic);
    table
}

/// Right-aligns `count` columns from `first`.
fn align_numbers(table: &mut Table, first: usize, count: usize) {
    for index in first..first + count {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// A group's values as text: "(none)" where a log has none, "(other)" for
/// the sum of the groups beyond --top.
fn group_cells(count: &pb::LogCount, groupings: usize) -> Vec<String> {
    if count.rest {
        return vec!["(other)".to_string(); groupings];
    }
    count
        .group
        .iter()
        .map(|value| match value_json(value) {
            Value::Null => "(none)".to_string(),
            Value::String(text) => text,
            other => other.to_string(),
        })
        .collect()
}

fn share(count: i64, total: i64) -> String {
    if total == 0 { String::new() } else { format!("{:.1}%", count as f64 * 100.0 / total as f64) }
}

/// The start of the bucket holding `time` (buckets are aligned to the epoch).
fn align(time: DateTime<Utc>, width: TimeDelta) -> DateTime<Utc> {
    let width = width.num_microseconds().unwrap_or(i64::MAX).max(1);
    let micros = time.timestamp_micros();
    DateTime::from_timestamp_micros(micros - micros.rem_euclid(width)).unwrap_or(time)
}

/// Every bucket start from `first` to `last`, both included; at most
/// `MAX_BUCKETS`.
fn buckets(
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    width: TimeDelta,
) -> impl Iterator<Item = DateTime<Utc>> {
    let starts = first.zip(last).map(|(first, last)| {
        std::iter::successors(Some(first), move |start| Some(*start + width)).take_while(move |start| *start <= last)
    });
    starts.into_iter().flatten().take(MAX_BUCKETS)
}

/// A bar of eighths of a character, `BAR_WIDTH` long at `highest`.
fn bar(value: i64, highest: i64) -> String {
    const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    if highest <= 0 || value <= 0 {
        return String::new();
    }
    let eighths = ((value as f64 / highest as f64) * (BAR_WIDTH * 8) as f64).round().max(1.0) as usize;
    let mut bar = "█".repeat(eighths / 8);
    match EIGHTHS[eighths % 8] {
        ' ' => bar,
        part => {
            bar.push(part);
            bar
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_highest_and_never_vanish() {
        assert_eq!(bar(100, 100).chars().count(), BAR_WIDTH);
        assert_eq!(bar(50, 100), "█".repeat(BAR_WIDTH / 2));
        assert_eq!(bar(1, 1_000_000), "▏", "a bucket with logs shows");
        assert_eq!(bar(0, 100), "");
    }

    #[test]
    fn groupings_read_as_documented() {
        assert_eq!(grouping("task-run").expect("known").name, "task-run");
        let meta = grouping("meta.worker_id").expect("a metadata key");
        assert_eq!(meta.wire.by, Some(pb::count_grouping::By::MetadataKey("worker_id".into())));
        assert!(grouping("meta.").is_err());
        assert!(grouping("colour").unwrap_err().contains("level, type, stream"));
    }

    #[test]
    fn buckets_align_to_the_epoch_and_fill_the_range() {
        let hour = TimeDelta::hours(1);
        let start = DateTime::parse_from_rfc3339("2026-11-25T08:42:00Z").expect("time").with_timezone(&Utc);
        let aligned = align(start, hour);
        assert_eq!(aligned.to_rfc3339(), "2026-11-25T08:00:00+00:00");
        assert_eq!(buckets(Some(aligned), Some(aligned + hour * 3), hour).count(), 4);
        assert_eq!(buckets(None, Some(aligned), hour).count(), 0);
    }
}
