//! GetLogContext: a log and the logs around it in its sequence, read as two
//! keyset pages from its seq, so the cost does not grow with the run.

use crate::model::{Anchor, ContextRequest, Cursor, Log, LogFilter, LogQuery, SortOrder};
use crate::store::{LogStore, StoreError};

/// A log with its neighbours, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub before: Vec<Log>,
    pub log: Log,
    pub after: Vec<Log>,
}

/// The context `request` asks for; `None` if the log does not exist.
pub async fn context(store: &dyn LogStore, request: &ContextRequest) -> Result<Option<Context>, StoreError> {
    let Some(log) = anchor(store, request.anchor).await? else { return Ok(None) };
    let mut filter = LogFilter::sequence(log.owner.job_run_id());
    if request.same_task_run {
        filter.task_run_ids = log.owner.task_run_id().into_iter().collect();
    }
    let page = |order, limit| LogQuery { filter: filter.clone(), order, after: Some(Cursor::Seq(log.seq)), limit };
    let mut before =
        if request.before == 0 { Vec::new() } else { store.list(&page(SortOrder::Descending, request.before)).await? };
    before.reverse();
    let after =
        if request.after == 0 { Vec::new() } else { store.list(&page(SortOrder::Ascending, request.after)).await? };
    Ok(Some(Context { before, log, after }))
}

async fn anchor(store: &dyn LogStore, anchor: Anchor) -> Result<Option<Log>, StoreError> {
    match anchor {
        Anchor::Id(id) => store.get(id).await,
        Anchor::Position { job_run_id, seq } => {
            let at = LogFilter { after_seq: Some(seq - 1), ..LogFilter::sequence(job_run_id) };
            let found =
                store.list(&LogQuery { filter: at, order: SortOrder::Ascending, after: None, limit: 1 }).await?;
            Ok(found.into_iter().next().filter(|log| log.seq == seq))
        }
    }
}
