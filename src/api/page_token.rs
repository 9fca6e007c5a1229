//! Opaque keyset page tokens. A token holds the position of the last log of
//! a page, and a checksum over that position and the query it belongs to:
//! a token that was edited, truncated, or taken from another query is
//! refused instead of silently returning the wrong page. The checksum is
//! not a secret: a forged position only reads what the same filters allow.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::DateTime;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::model::{Cursor, LogFilter, RunCursor, RunFilter, SortOrder};

const VERSION: u8 = 1;
pub(super) const CHECKSUM_BYTES: usize = 8;
const KIND_SEQ: u8 = 1;
const KIND_RUN_SEQ: u8 = 2;
const KIND_TIME: u8 = 3;
const KIND_RUN_ACTIVITY: u8 = 4;
const DAMAGED: &str = "is not a page token that this server issued";
const FOREIGN: &str = "does not belong to this query: send every field as in the request that returned it";

pub(super) fn encode(cursor: Cursor, filter: &LogFilter, order: SortOrder) -> String {
    let mut bytes = vec![VERSION];
    match cursor {
        Cursor::Seq(seq) => {
            bytes.push(KIND_SEQ);
            bytes.extend(seq.to_be_bytes());
        }
        Cursor::RunSeq { job_run_id, seq } => {
            bytes.push(KIND_RUN_SEQ);
            bytes.extend(job_run_id.as_bytes());
            bytes.extend(seq.to_be_bytes());
        }
        Cursor::Time { time, id } => {
            bytes.push(KIND_TIME);
            bytes.extend(time.timestamp_micros().to_be_bytes());
            bytes.extend(id.as_bytes());
        }
    }
    seal(bytes, &log_query(filter, order))
}

/// A page token for the run listing after `cursor`.
pub(super) fn encode_runs(cursor: RunCursor, filter: &RunFilter) -> String {
    let mut bytes = vec![VERSION, KIND_RUN_ACTIVITY];
    bytes.extend(cursor.last_activity.timestamp_micros().to_be_bytes());
    bytes.extend(cursor.id.as_bytes());
    seal(bytes, &format!("{filter:?}"))
}

/// The run cursor in `token`, or why the token cannot be used with `filter`.
pub(super) fn decode_runs(token: &str, filter: &RunFilter) -> Result<RunCursor, &'static str> {
    match unseal(token, &format!("{filter:?}"))?.as_slice() {
        [VERSION, KIND_RUN_ACTIVITY, rest @ ..] if rest.len() == 24 => {
            let (micros, id) = rest.split_at(8);
            Ok(RunCursor {
                last_activity: DateTime::from_timestamp_micros(i64::from_be_bytes(
                    micros.try_into().map_err(|_| DAMAGED)?,
                ))
                .ok_or(DAMAGED)?,
                id: Uuid::from_slice(id).map_err(|_| DAMAGED)?,
            })
        }
        _ => Err(DAMAGED),
    }
}

/// `payload` with its checksum over itself and `query`, as a token.
fn seal(mut payload: Vec<u8>, query: &str) -> String {
    let checksum = checksum(&payload, query);
    payload.extend(checksum);
    URL_SAFE_NO_PAD.encode(payload)
}

/// The payload of a token sealed for `query`.
fn unseal(token: &str, query: &str) -> Result<Vec<u8>, &'static str> {
    let mut bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| DAMAGED)?;
    let payload_len = bytes.len().checked_sub(CHECKSUM_BYTES).ok_or(DAMAGED)?;
    if bytes[payload_len..] != checksum(&bytes[..payload_len], query) {
        return Err(FOREIGN);
    }
    bytes.truncate(payload_len);
    Ok(bytes)
}

/// The cursor in `token`, or why the token cannot be used with this query.
pub(super) fn decode(token: &str, filter: &LogFilter, order: SortOrder) -> Result<Cursor, &'static str> {
    let payload = unseal(token, &log_query(filter, order))?;
    let cursor = match payload.as_slice() {
        [VERSION, KIND_SEQ, seq @ ..] => Cursor::Seq(i64::from_be_bytes(seq.try_into().map_err(|_| DAMAGED)?)),
        [VERSION, KIND_RUN_SEQ, rest @ ..] if rest.len() == 24 => {
            let (id, seq) = rest.split_at(16);
            Cursor::RunSeq {
                job_run_id: Uuid::from_slice(id).map_err(|_| DAMAGED)?,
                seq: i64::from_be_bytes(seq.try_into().map_err(|_| DAMAGED)?),
            }
        }
        [VERSION, KIND_TIME, rest @ ..] if rest.len() == 24 => {
            let (micros, id) = rest.split_at(8);
            Cursor::Time {
                time: DateTime::from_timestamp_micros(i64::from_be_bytes(micros.try_into().map_err(|_| DAMAGED)?))
                    .ok_or(DAMAGED)?,
                id: Uuid::from_slice(id).map_err(|_| DAMAGED)?,
            }
        }
        _ => return Err(DAMAGED),
    };
    let expected_kind = match filter.ordering() {
        crate::model::Ordering::RunSeq | crate::model::Ordering::SystemSeq => {
            matches!(cursor, Cursor::Seq(_))
        }
        crate::model::Ordering::TaskRunSeq => matches!(cursor, Cursor::RunSeq { .. }),
        crate::model::Ordering::Time => matches!(cursor, Cursor::Time { .. }),
    };
    if !expected_kind {
        return Err(DAMAGED);
    }
    Ok(cursor)
}

/// Every field that decides which logs a listing returns (all of the
/// filter's, as its Debug form spells them), and in which order; page_size
/// may change between pages.
fn log_query(filter: &LogFilter, order: SortOrder) -> String {
    format!("{filter:?}|{order:?}")
}

/// A checksum of `payload` and the `context` it belongs to (a query, a
/// database): follow cursors are sealed the same way.
pub(super) fn checksum(payload: &[u8], context: &str) -> [u8; CHECKSUM_BYTES] {
    let digest = Sha256::new().chain_update(payload).chain_update(context.as_bytes()).finalize();
    let mut checksum = [0; CHECKSUM_BYTES];
    checksum.copy_from_slice(&digest[..CHECKSUM_BYTES]);
    checksum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;

    fn run_filter() -> LogFilter {
        LogFilter::sequence(Some(Uuid::now_v7()))
    }

    #[test]
    fn round_trips_every_cursor_kind() {
        let run = run_filter();
        let token = encode(Cursor::Seq(41), &run, SortOrder::Ascending);
        assert_eq!(decode(&token, &run, SortOrder::Ascending), Ok(Cursor::Seq(41)));

        let task = LogFilter { task_run_ids: vec![Uuid::now_v7()], ..LogFilter::default() };
        let cursor = Cursor::RunSeq { job_run_id: Uuid::now_v7(), seq: 7 };
        assert_eq!(decode(&encode(cursor, &task, SortOrder::Descending), &task, SortOrder::Descending), Ok(cursor));

        let any = LogFilter::default();
        let cursor =
            Cursor::Time { time: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(), id: Uuid::now_v7() };
        assert_eq!(decode(&encode(cursor, &any, SortOrder::Ascending), &any, SortOrder::Ascending), Ok(cursor));
    }

    #[test]
    fn run_tokens_round_trip_and_are_bound_to_their_filter() {
        let filter = RunFilter { name: Some("nightly".into()), ..RunFilter::default() };
        let cursor =
            RunCursor { last_activity: DateTime::from_timestamp(1_700_000_000, 0).unwrap(), id: Uuid::now_v7() };
        let token = encode_runs(cursor, &filter);
        assert_eq!(decode_runs(&token, &filter), Ok(cursor));
        assert_eq!(decode_runs(&token, &RunFilter::default()), Err(FOREIGN));
        let log_token = encode(Cursor::Seq(1), &LogFilter::default(), SortOrder::Ascending);
        assert!(decode_runs(&log_token, &filter).is_err());
    }

    #[test]
    fn refuses_tokens_of_other_queries_and_edited_tokens() {
        let run = run_filter();
        let token = encode(Cursor::Seq(41), &run, SortOrder::Ascending);
        assert!(decode(&token, &run, SortOrder::Descending).is_err());
        let narrower = LogFilter { levels: vec![Level::Error, Level::Fatal], ..run.clone() };
        assert!(decode(&token, &narrower, SortOrder::Ascending).is_err());

        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[9] ^= 1;
        assert!(decode(&URL_SAFE_NO_PAD.encode(&bytes), &run, SortOrder::Ascending).is_err());
        for garbage in ["", "!!!", "AAAA", &token[..token.len() - 1]] {
            assert!(decode(garbage, &run, SortOrder::Ascending).is_err(), "{garbage:?} accepted");
        }
    }
}
