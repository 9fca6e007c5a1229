//! Opaque cursors of follows across runs: a position in the commit order,
//! when it was reached (to tell a cursor older than retention), the
//! database it belongs to, and a checksum. A cursor from another
//! database (whose positions mean other logs), or one that was edited or
//! cut, is refused rather than silently followed from the wrong place. The
//! checksum is not a secret: a forged position only reads what the same
//! filter allows.

use super::page_token::{CHECKSUM_BYTES, checksum};
use crate::model::Position;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
/// Bytes of the database's tag.
const TAG_BYTES: usize = 4;
/// Version, tag, commit, index, time, checksum.
const CURSOR_BYTES: usize = 1 + TAG_BYTES + 8 + 4 + 8 + CHECKSUM_BYTES;
const DAMAGED: &str =
    "is not a cursor of this server: it was edited or cut; send it as a message of FollowLogs gave it";
const FOREIGN: &str = "belongs to another logwell database: its positions mean other logs there; follow from_now or \
     from_start instead";

/// `position`, reached at `time` (a log's receipt, a heartbeat's sending),
/// as a cursor of the database named `database`.
pub(super) fn encode(position: Position, time: DateTime<Utc>, database: &str) -> String {
    let mut bytes = Vec::with_capacity(CURSOR_BYTES);
    bytes.push(VERSION);
    bytes.extend(tag(database));
    bytes.extend(position.commit.to_be_bytes());
    bytes.extend(position.index.to_be_bytes());
    bytes.extend(time.timestamp_micros().to_be_bytes());
    let checksum = checksum(&bytes, database);
    bytes.extend(checksum);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The position in `cursor` and when it was reached, or why it cannot be
/// followed in `database`.
pub(super) fn decode(cursor: &str, database: &str) -> Result<(Position, DateTime<Utc>), &'static str> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| DAMAGED)?;
    if bytes.len() != CURSOR_BYTES || bytes[0] != VERSION {
        return Err(DAMAGED);
    }
    let (payload, checksum_bytes) = bytes.split_at(CURSOR_BYTES - CHECKSUM_BYTES);
    let (tag_bytes, rest) = payload[1..].split_at(TAG_BYTES);
    if checksum_bytes != checksum(payload, database) {
        return Err(if tag_bytes == tag(database) { DAMAGED } else { FOREIGN });
    }
    let (commit, rest) = rest.split_at(8);
    let (index, time) = rest.split_at(4);
    let position = Position {
        commit: i64::from_be_bytes(commit.try_into().map_err(|_| DAMAGED)?),
        index: i32::from_be_bytes(index.try_into().map_err(|_| DAMAGED)?),
    };
    let micros = i64::from_be_bytes(time.try_into().map_err(|_| DAMAGED)?);
    Ok((position, DateTime::from_timestamp_micros(micros).ok_or(DAMAGED)?))
}

/// A short tag of the database, to tell a foreign cursor from a damaged one.
fn tag(database: &str) -> [u8; TAG_BYTES] {
    let digest = Sha256::new().chain_update(b"logwell database").chain_update(database.as_bytes()).finalize();
    let mut tag = [0; TAG_BYTES];
    tag.copy_from_slice(&digest[..TAG_BYTES]);
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_in_their_database_only() {
        let position = Position { commit: 1_234_567, index: 41 };
        let time = DateTime::from_timestamp_micros(1_795_000_000_123_456).unwrap();
        let cursor = encode(position, time, "db-a");
        assert_eq!(decode(&cursor, "db-a"), Ok((position, time)));
        assert_eq!(decode(&cursor, "db-b"), Err(FOREIGN));
        assert_eq!(decode(&encode(Position::START, time, "db-a"), "db-a"), Ok((Position::START, time)));
    }

    #[test]
    fn edited_or_cut_cursors_are_refused() {
        let cursor = encode(Position { commit: 99, index: 0 }, Utc::now(), "db");
        let mut bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        bytes[1 + TAG_BYTES + 7] ^= 1;
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode(&bytes), "db"), Err(DAMAGED), "an edited commit");
        assert_eq!(decode(&cursor[..cursor.len() - 2], "db"), Err(DAMAGED), "a cut cursor");
        assert_eq!(decode("not a cursor!", "db"), Err(DAMAGED));
        assert_eq!(decode("", "db"), Err(DAMAGED));
    }
}
