//! How client commands print logs: for people (`text`, coloured by level on
//! a terminal), for pipes (`raw`: messages only), and for programs (`json`,
//! `ndjson`, `csv` per RFC 4180).

use std::io::Write;

use anstyle::{AnsiColor, Style};
use chrono::{Local, SecondsFormat};
use serde_json::{Map, Value};

use super::{names, time};
use crate::proto::v1 as pb;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Time, level, run/task run, source and message, for people.
    Text,
    /// The message alone.
    Raw,
    /// One JSON array of log objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// CSV with a header row (RFC 4180).
    Csv,
}

/// The output flags of the commands that print logs.
#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// How to print the logs.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Format,
    /// Text output: the whole date and time, not only the time of day.
    #[arg(long)]
    pub timestamps: bool,
    /// Text output: times in UTC rather than the local time zone.
    #[arg(long)]
    pub utc: bool,
}

impl OutputArgs {
    pub fn printer(&self) -> Printer {
        Printer::new(self.output, TextTimes { full: self.timestamps, utc: self.utc })
    }
}

/// How text output shows times.
#[derive(Debug, Clone, Copy)]
pub struct TextTimes {
    /// The whole date and time, not only the time of day.
    pub full: bool,
    /// In UTC rather than the local time zone.
    pub utc: bool,
}

/// Writes logs in one format to standard output or a file.
pub struct Printer {
    format: Format,
    times: TextTimes,
    out: Sink,
    printed: u64,
}

/// Where a printer's bytes go: CSV keeps one writer across rows, so that it
/// quotes each field as RFC 4180 wants without a new writer per row.
enum Sink {
    Plain(Box<dyn Write>),
    Csv(Box<csv::Writer<Box<dyn Write>>>),
}

/// The columns of CSV output, in order.
const CSV_HEADER: [&str; 12] = [
    "id",
    "type",
    "job_run_id",
    "task_run_id",
    "seq",
    "time",
    "received_at",
    "level",
    "stream",
    "source",
    "message",
    "metadata",
];

impl Printer {
    /// A printer to standard output. Text has colour only where `anstream`
    /// finds a terminal that wants it (not piped, no `NO_COLOR`); elsewhere
    /// it strips escape codes, messages' own included. The other formats
    /// pass messages through byte for byte.
    pub fn new(format: Format, times: TextTimes) -> Printer {
        let stdout = std::io::stdout().lock();
        let out: Box<dyn Write> = match format {
            Format::Text => Box::new(anstream::AutoStream::auto(stdout)),
            _ => Box::new(std::io::BufWriter::new(stdout)),
        };
        Printer::with_sink(format, times, out)
    }

    /// A printer into a file: text without escape codes, as if piped.
    pub fn to_file(format: Format, times: TextTimes, file: std::fs::File) -> Printer {
        let buffered: Box<dyn Write> = Box::new(std::io::BufWriter::with_capacity(1 << 16, file));
        let out: Box<dyn Write> = match format {
            Format::Text => Box::new(anstream::StripStream::new(buffered)),
            _ => buffered,
        };
        Printer::with_sink(format, times, out)
    }

    fn with_sink(format: Format, times: TextTimes, out: Box<dyn Write>) -> Printer {
        let out = match format {
            Format::Csv => Sink::Csv(Box::new(csv::Writer::from_writer(out))),
            _ => Sink::Plain(out),
        };
        Printer { format, times, out, printed: 0 }
    }

    /// How many logs were printed.
    pub fn printed(&self) -> u64 {
        self.printed
    }

    pub fn print(&mut self, log: &pb::Log) -> std::io::Result<()> {
        let mut line = match self.format {
            Format::Text => self.text(log),
            Format::Raw => log.message.clone(),
            Format::Ndjson => LogJson::of(log).line(),
            Format::Json => format!("{}{}", if self.printed == 0 { "[" } else { "," }, LogJson::of(log).line()),
            Format::Csv => return self.csv_row(log),
        };
        if self.format != Format::Json {
            line.push('\n');
        }
        self.printed += 1;
        self.plain()?.write_all(line.as_bytes())
    }

    /// Sends what was printed on at once: a follower shows each line as it
    /// comes.
    pub fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Sink::Plain(out) => out.flush(),
            Sink::Csv(csv) => csv.flush(),
        }
    }

    /// Closes what the format opened (JSON's array) and flushes.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if self.format == Format::Json {
            let end: &[u8] = if self.printed == 0 { b"[]\n" } else { b"]\n" };
            self.plain()?.write_all(end)?;
        }
        self.flush()
    }

    fn plain(&mut self) -> std::io::Result<&mut dyn Write> {
        match &mut self.out {
            Sink::Plain(out) => Ok(out),
            Sink::Csv(_) => Err(std::io::Error::other("a CSV printer writes records only")),
        }
    }

    /// One CSV record (the header first).
    fn csv_row(&mut self, log: &pb::Log) -> std::io::Result<()> {
        let Sink::Csv(writer) = &mut self.out else {
            return Err(std::io::Error::other("only a CSV printer writes records"));
        };
        if self.printed == 0 {
            writer.write_record(CSV_HEADER)?;
        }
        writer.write_record([
            log.id.as_str(),
            &names::type_of(log),
            &log.job_run_id,
            &log.task_run_id,
            &log.seq.to_string(),
            &rfc3339(log.time.as_ref()),
            &rfc3339(log.received_at.as_ref()),
            &names::level_of(log),
            &names::stream_of(log),
            &log.source,
            &log.message,
            &metadata_json(log.metadata.as_ref()).to_string(),
        ])?;
        self.printed += 1;
        Ok(())
    }

    fn text(&self, log: &pb::Log) -> String {
        let level = names::level_of(log);
        let style = level_style(&level);
        let owner = match (short(&log.job_run_id), short(&log.task_run_id)) {
            ("", _) => "system".to_string(),
            (run, "") => run.to_string(),
            (run, task) => format!("{run}/{task}"),
        };
        let source = if log.source.is_empty() { String::new() } else { format!(" [{}]", log.source) };
        format!(
            "{} {style}{:<5}{style:#} {owner}{source} {}",
            self.time(log.time.as_ref()),
            level.to_uppercase(),
            log.message
        )
    }

    fn time(&self, time: Option<&prost_types::Timestamp>) -> String {
        let Some(time) = time::from_proto(time) else { return "-".into() };
        let pattern = if self.times.full { "%Y-%m-%dT%H:%M:%S%.3f%:z" } else { "%H:%M:%S%.3f" };
        match self.times.utc {
            true => time.format(pattern).to_string(),
            false => time.with_timezone(&Local).format(pattern).to_string(),
        }
    }
}

/// A UUID's first 8 characters: enough to tell runs apart on a screen.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn level_style(level: &str) -> Style {
    let colour = |colour: AnsiColor| Style::new().fg_color(Some(colour.into()));
    match level {
        "trace" => Style::new().dimmed(),
        "debug" => colour(AnsiColor::Blue),
        "info" => colour(AnsiColor::Green),
        "warn" => colour(AnsiColor::Yellow),
        "error" => colour(AnsiColor::Red),
        "fatal" => colour(AnsiColor::Red).bold(),
        _ => Style::new(),
    }
}

fn rfc3339(time: Option<&prost_types::Timestamp>) -> String {
    time::from_proto(time).map(|time| time.to_rfc3339_opts(SecondsFormat::Micros, true)).unwrap_or_default()
}

/// A log as a JSON object, with the model's names and RFC 3339 times;
/// serialized straight from the log, without building a JSON tree.
#[derive(serde::Serialize)]
struct LogJson<'a> {
    id: &'a str,
    r#type: String,
    job_run_id: &'a str,
    task_run_id: &'a str,
    seq: i64,
    time: String,
    received_at: String,
    level: String,
    stream: String,
    source: &'a str,
    message: &'a str,
    metadata: StructJson<'a>,
}

impl<'a> LogJson<'a> {
    fn of(log: &'a pb::Log) -> LogJson<'a> {
        LogJson {
            id: &log.id,
            r#type: names::type_of(log),
            job_run_id: &log.job_run_id,
            task_run_id: &log.task_run_id,
            seq: log.seq,
            time: rfc3339(log.time.as_ref()),
            received_at: rfc3339(log.received_at.as_ref()),
            level: names::level_of(log),
            stream: names::stream_of(log),
            source: &log.source,
            message: &log.message,
            metadata: StructJson(log.metadata.as_ref()),
        }
    }

    /// The object as one line of JSON.
    fn line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Metadata as a JSON object (`{}` when absent).
struct StructJson<'a>(Option<&'a prost_types::Struct>);

impl serde::Serialize for StructJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = self.0.map(|metadata| &metadata.fields);
        let mut map = serializer.serialize_map(fields.map(|fields| fields.len()))?;
        for (key, value) in fields.into_iter().flatten() {
            map.serialize_entry(key, &value_json(value))?;
        }
        map.end()
    }
}

fn metadata_json(metadata: Option<&prost_types::Struct>) -> Value {
    let fields = metadata.map(|metadata| &metadata.fields);
    Value::Object(
        fields.into_iter().flatten().map(|(key, value)| (key.clone(), value_json(value))).collect::<Map<_, _>>(),
    )
}

pub fn value_json(value: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(flag)) => Value::Bool(*flag),
        // Struct numbers are doubles; whole ones print as integers, as sent.
        Some(Kind::NumberValue(number)) if number.fract() == 0.0 && number.abs() < 9.0e15 => {
            Value::from(*number as i64)
        }
        Some(Kind::NumberValue(number)) => serde_json::Number::from_f64(*number).map_or(Value::Null, Value::Number),
        Some(Kind::StringValue(text)) => Value::String(text.clone()),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(value_json).collect()),
        Some(Kind::StructValue(object)) => metadata_json(Some(object)),
    }
}
