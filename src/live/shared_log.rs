//! A committed log as its followers share it.

use std::ops::Deref;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::model::Log;

/// A committed log that many followers deliver, with the bytes an entry
/// point sends for it: made by the first follower that sends it, reused by
/// every other. Converting and encoding each log once per follower was most
/// of what thousands of followers of one run cost.
///
/// One shared tail serves one kind of follow (the hub's tails the run
/// follows, the commit tail the follows across runs), so each log has one
/// wire form.
#[derive(Debug)]
pub struct SharedLog {
    log: Log,
    wire: OnceLock<Bytes>,
}

impl SharedLog {
    pub fn new(log: Log) -> SharedLog {
        SharedLog { log, wire: OnceLock::new() }
    }

    /// The log's wire form: `encode`'s, the first time it is asked for.
    pub fn wire(&self, encode: impl FnOnce(&Log) -> Bytes) -> Bytes {
        self.wire.get_or_init(|| encode(&self.log)).clone()
    }
}

impl Deref for SharedLog {
    type Target = Log;

    fn deref(&self) -> &Log {
        &self.log
    }
}

impl PartialEq for SharedLog {
    fn eq(&self, other: &SharedLog) -> bool {
        self.log == other.log
    }
}

/// The memory a log in a shared tail holds, roughly: its text twice (the
/// log, and the wire form its first follower makes), and its fixed parts.
pub(super) fn held_bytes(log: &Log) -> usize {
    let text = log.source.len() + log.message.len() + metadata_bytes(&log.metadata);
    2 * text + std::mem::size_of::<SharedLog>() + 128
}

fn metadata_bytes(metadata: &serde_json::Map<String, serde_json::Value>) -> usize {
    metadata.iter().map(|(key, value)| key.len() + value_bytes(value)).sum()
}

fn value_bytes(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::String(text) => text.len() + 16,
        Value::Array(values) => values.iter().map(value_bytes).sum::<usize>() + 16,
        Value::Object(map) => metadata_bytes(map) + 16,
        Value::Null | Value::Bool(_) | Value::Number(_) => 16,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::model::{Limits, LogDraft, LogType};

    #[test]
    fn the_wire_form_is_made_once() {
        let draft = LogDraft { message: "m".into(), ..LogDraft::default() };
        let new = draft.validate(LogType::System, Utc::now(), &Limits::default()).unwrap();
        let shared = SharedLog::new(Log::committed(new, 1));
        let mut encodings = 0;
        for _ in 0..3 {
            let bytes = shared.wire(|_| {
                encodings += 1;
                Bytes::from_static(b"encoded")
            });
            assert_eq!(bytes, Bytes::from_static(b"encoded"));
        }
        assert_eq!(encodings, 1);
    }
}
