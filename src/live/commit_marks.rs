//! Marks where the commit order stands every few seconds, so that a follow
//! across runs from a time starts at the last mark before it rather than
//! at the first stored log (`LogStore::commit_mark`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::LogStore;

/// How often a mark is taken. A follow from a time reads at most this
/// much of the commit order, and `CLOCK_SKEW`, before its time.
const MARK_INTERVAL: Duration = Duration::from_secs(10);

/// Marks the commit order every interval until `stopping`. Every replica
/// marks: a mark needs no lease, and a replica's marks serve all.
pub async fn mark_commit_order(store: Arc<dyn LogStore>, stopping: CancellationToken) {
    let mut ticks = tokio::time::interval(MARK_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(error) = store.mark_commit_order().await {
            tracing::debug!(%error, "marking the commit order failed; marking at the next interval");
        }
    }
}
