//! ExportLogs: every log a filter matches, read in keyset chunks from a
//! cursor and handed over one chunk at a time, so that memory stays at a
//! chunk or two whatever the reader's speed.

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
/// order, `chunk` at a time. The reader waits until the previous chunk was
/// taken (a channel of one), and stops once the receiver is dropped.
pub fn export(
    store: Arc<dyn LogStore>,
    filter: LogFilter,
    after: Option<Cursor>,
    chunk: usize,
) -> mpsc::Receiver<Chunk> {
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        let ordering = filter.ordering();
        let mut query = LogQuery { filter, order: SortOrder::Ascending, after, limit: chunk };
        loop {
            let logs = match store.list(&query).await {
                Ok(logs) => logs,
                Err(error) => {
                    let _ = sender.send(Err(error)).await;
                    return;
                }
            };
            let Some(last) = logs.last() else { return };
            let cursor = Cursor::of(last, ordering);
            let whole = logs.len() == chunk;
            if sender.send(Ok(logs)).await.is_err() || !whole {
                return;
            }
            query.after = Some(cursor);
        }
    });
    receiver
}
