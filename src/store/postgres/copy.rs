//! Logs as the rows of a binary `COPY logs FROM STDIN`: PostgreSQL takes
//! them in bulk, and the binary format needs no escaping, whatever bytes a
//! message holds. Each field is its length and its value in the type's
//! binary send format.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use uuid::Uuid;

use crate::model::NewLog;

/// The statement the rows are for; its columns in this order.
pub(super) const COPY_LOGS: &str = "COPY logs (id, type, job_run_id, task_run_id, seq, event_time, received_at, \
     level, stream, source, message, metadata, partition_day, commit_index) FROM STDIN (FORMAT binary)";

const COLUMNS: i16 = 14;
/// The signature, flags and header extension length of every binary COPY.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// A field count of -1 ends the data.
const TRAILER: i16 = -1;
/// PostgreSQL counts time from 2000-01-01T00:00:00Z.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// The same day, counted as chrono counts days (0001-01-01 is day 1).
const POSTGRES_EPOCH_DAY_FROM_CE: i32 = 730_120;
/// The version byte before a jsonb value's text.
const JSONB_VERSION: u8 = 1;

/// The binary COPY data of `logs`, `seqs[i]` the seq of `logs[i]` and
/// `days[i]` its partition day; each log's place in the transaction is its
/// index (the commit order of its logs).
pub(super) fn rows(logs: &[&NewLog], seqs: &[i64], days: &[NaiveDate]) -> Result<Vec<u8>, serde_json::Error> {
    let mut data = Vec::with_capacity(HEADER.len() + logs.len() * 400);
    data.extend_from_slice(HEADER);
    for (index, ((log, &seq), &day)) in logs.iter().zip(seqs).zip(days).enumerate() {
        data.extend_from_slice(&COLUMNS.to_be_bytes());
        uuid(&mut data, Some(log.id));
        text(&mut data, log.owner.log_type().as_str());
        uuid(&mut data, log.owner.job_run_id());
        uuid(&mut data, log.owner.task_run_id());
        field(&mut data, &seq.to_be_bytes());
        time(&mut data, log.time);
        time(&mut data, log.received_at);
        text(&mut data, log.level.as_str());
        text(&mut data, log.stream.as_str());
        text(&mut data, &log.source);
        text(&mut data, &log.message);
        let metadata = serde_json::to_vec(&log.metadata)?;
        let length = i32::try_from(metadata.len() + 1).unwrap_or(i32::MAX);
        data.extend_from_slice(&length.to_be_bytes());
        data.push(JSONB_VERSION);
        data.extend_from_slice(&metadata);
        date(&mut data, day);
        field(&mut data, &i32::try_from(index).unwrap_or(i32::MAX).to_be_bytes());
    }
    data.extend_from_slice(&TRAILER.to_be_bytes());
    Ok(data)
}

/// One field: its length, then its bytes. Fields are bounded far below 2
/// GiB by the limits on messages and metadata.
fn field(data: &mut Vec<u8>, value: &[u8]) {
    let length = i32::try_from(value.len()).unwrap_or(i32::MAX);
    data.extend_from_slice(&length.to_be_bytes());
    data.extend_from_slice(value);
}

fn text(data: &mut Vec<u8>, value: &str) {
    field(data, value.as_bytes());
}

/// A uuid, or NULL (length -1, no bytes).
fn uuid(data: &mut Vec<u8>, value: Option<Uuid>) {
    match value {
        Some(id) => field(data, id.as_bytes()),
        None => data.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

fn time(data: &mut Vec<u8>, value: DateTime<Utc>) {
    field(data, &(value.timestamp_micros() - POSTGRES_EPOCH_MICROS).to_be_bytes());
}

fn date(data: &mut Vec<u8>, value: NaiveDate) {
    field(data, &(value.num_days_from_ce() - POSTGRES_EPOCH_DAY_FROM_CE).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_has_the_binary_copy_frame() {
        let data = rows(&[], &[], &[]).expect("rows");
        assert_eq!(&data[..11], b"PGCOPY\n\xff\r\n\0", "the signature");
        assert_eq!(&data[11..19], &[0; 8], "no flags, no header extension");
        assert_eq!(&data[19..], &(-1i16).to_be_bytes(), "the trailer");
    }

    #[test]
    fn times_count_from_the_postgres_epoch() {
        let mut data = Vec::new();
        time(&mut data, DateTime::from_timestamp(946_684_800, 0).expect("2000-01-01"));
        assert_eq!(data, [&8i32.to_be_bytes()[..], &0i64.to_be_bytes()].concat());
        let mut data = Vec::new();
        date(&mut data, NaiveDate::from_ymd_opt(1999, 12, 31).expect("a day"));
        assert_eq!(data, [&4i32.to_be_bytes()[..], &(-1i32).to_be_bytes()].concat());
    }
}
