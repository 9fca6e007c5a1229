//! How big what clients send may be, and how old the ids they give may be.
//! Each bound is a flag of `logwell serve`; the defaults suit logs, not blobs.

use super::retention::RetentionPolicy;

/// The bounds a log and a batch must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Logs in one batch write, at most.
    pub batch_logs: usize,
    /// Bytes of UTF-8 in one message, at most.
    pub message_bytes: usize,
    /// Cut longer messages to `message_bytes` instead of refusing them; the
    /// log's metadata then says so (`TRUNCATED_FROM_BYTES`).
    pub truncate_messages: bool,
    /// Bytes of UTF-8 in a source, at most.
    pub source_bytes: usize,
    /// Bytes of a log's metadata serialized as JSON, at most.
    pub metadata_bytes: usize,
    /// Levels of nesting in a log's metadata, at most; the metadata object
    /// itself is level 1.
    pub metadata_depth: usize,
    /// How long each type's logs are kept: a UUIDv7 client id older than
    /// its type's retention is refused, since its log may have expired and
    /// a resend would store it again as a new log.
    pub retention: RetentionPolicy,
}

/// The metadata key that marks a truncated message; its value is the
/// message's length in bytes as sent.
pub const TRUNCATED_FROM_BYTES: &str = "logwell.truncated_from_bytes";

impl Default for Limits {
    fn default() -> Self {
        Limits {
            batch_logs: 1_000,
            message_bytes: 1024 * 1024,
            truncate_messages: false,
            source_bytes: 256,
            metadata_bytes: 64 * 1024,
            metadata_depth: 32,
            retention: RetentionPolicy::default(),
        }
    }
}
