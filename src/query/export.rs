//! ExportLogs: every log a filter matches, read in keyset chunks from a
//! cursor, from one snapshot of the database, and handed over one chunk at
//! a time, so that memory stays at a chunk or two whatever the reader's
//! speed.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::model::{Cursor, Log, LogFilter, LogQuery, SortOrder};
use crate::store::{LogStore, StoreError};

/// Logs per chunk when the request names no number.
pub const DEFAULT_CHUNK: usize = 1_000;
/// Logs per chunk, at most.
pub const MAX_CHUNK: usize = 10_000;

/// One chunk of logs, in order.
pub type Chunk = Result<Vec<Log>, StoreError>;

/// Starts reading the logs `filter` matches after `after`, in ascending
/// order, `chunk` at a time, from one snapshot of the database. The reader
/// waits until the previous chunk was taken (a channel of one), and stops
/// once the receiver is dropped.
pub fn export(
    store: Arc<dyn LogStore>,
    filter: LogFilter,
    after: Option<Cursor>,
    chunk: usize,
) -> mpsc::Receiver<Chunk> {
    let (sender, receiver) = mpsc::channel(1);
    let query = LogQuery { filter, order: SortOrder::Ascending, after, limit: chunk };
    tokio::spawn(async move { store.export(query, sender).await });
    receiver
}
