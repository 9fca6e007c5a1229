//! Whether the database answers, as every storage call sees it: a store
//! that wraps another and records, for each call, whether the database
//! answered or was unreachable. Health follows this record, so a failure any
//! request meets turns it NOT_SERVING at once, and the first success after
//! an outage turns it SERVING at once, without waiting for the next check.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use super::{Appended, CommittedPage, CountRow, EmptiedPartitions, ExpiryEstimate, Horizon, LogStore, StoreError};
use crate::model::{
    CaseFolding, Completion, Grouping, JobRun, Log, LogFilter, LogQuery, LogType, NewLog, Position, RunIdentity,
    RunQuery,
};

/// The last word on the database: `None` until something has been tried.
#[derive(Debug, Clone)]
pub struct Availability(Arc<watch::Sender<Option<bool>>>);

impl Default for Availability {
    fn default() -> Self {
        Availability(Arc::new(watch::channel(None).0))
    }
}

impl Availability {
    /// Records whether the database answered; wakes watchers on a change only.
    pub fn record(&self, available: bool) {
        if *self.0.borrow() == Some(available) {
            return;
        }
        self.0.send_if_modified(|now| now.replace(available) != Some(available));
    }

    /// Follows every change from now on.
    pub fn watch(&self) -> watch::Receiver<Option<bool>> {
        self.0.subscribe()
    }

    /// What `result` says of the database: it answered, unless it could not
    /// be reached. Other errors (a completed run, a corrupt row) say nothing
    /// about reachability and leave the record alone.
    fn observe<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Ok(_) => self.record(true),
            Err(StoreError::Unavailable(_)) => self.record(false),
            Err(_) => {}
        }
        result
    }
}

/// A span for one storage call, inside the RPC's span when an RPC made it
/// (writes run in the group committer's, which serves many RPCs at once).
fn operation(name: &'static str) -> tracing::Span {
    tracing::debug_span!("store", operation = name)
}

/// A store that records each call's verdict on the database in
/// `Availability`, each call in a span of its own.
pub struct Observed {
    inner: Arc<dyn LogStore>,
    availability: Availability,
}

impl Observed {
    pub fn new(inner: Arc<dyn LogStore>, availability: Availability) -> Self {
        Observed { inner, availability }
    }
}

#[async_trait::async_trait]
impl LogStore for Observed {
    async fn append_batches(&self, batches: &[&[NewLog]]) -> Result<Appended, StoreError> {
        self.availability.observe(self.inner.append_batches(batches).instrument(operation("append_batches")).await)
    }

    async fn list(&self, query: &LogQuery) -> Result<Vec<Log>, StoreError> {
        self.availability.observe(self.inner.list(query).instrument(operation("list")).await)
    }

    async fn read_committed(
        &self,
        filter: &LogFilter,
        after: Position,
        limit: usize,
    ) -> Result<CommittedPage, StoreError> {
        self.availability
            .observe(self.inner.read_committed(filter, after, limit).instrument(operation("read_committed")).await)
    }

    async fn commit_horizon(&self) -> Result<Horizon, StoreError> {
        self.availability.observe(self.inner.commit_horizon().instrument(operation("commit_horizon")).await)
    }

    fn case_folding(&self) -> CaseFolding {
        self.inner.case_folding()
    }

    async fn mark_commit_order(&self) -> Result<(), StoreError> {
        self.availability.observe(self.inner.mark_commit_order().instrument(operation("mark_commit_order")).await)
    }

    async fn commit_mark(&self, at: DateTime<Utc>) -> Result<Option<Position>, StoreError> {
        self.availability.observe(self.inner.commit_mark(at).instrument(operation("commit_mark")).await)
    }

    async fn prune_commit_marks(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.availability
            .observe(self.inner.prune_commit_marks(before).instrument(operation("prune_commit_marks")).await)
    }

    async fn database_identity(&self) -> Result<String, StoreError> {
        self.availability.observe(self.inner.database_identity().instrument(operation("database_identity")).await)
    }

    async fn plan(&self, query: &LogQuery) -> Result<String, StoreError> {
        self.availability.observe(self.inner.plan(query).instrument(operation("plan")).await)
    }

    async fn plan_job_runs(&self, query: &RunQuery) -> Result<String, StoreError> {
        self.availability.observe(self.inner.plan_job_runs(query).instrument(operation("plan_job_runs")).await)
    }

    async fn count(
        &self,
        filter: &LogFilter,
        group_by: &[Grouping],
        bucket_micros: Option<i64>,
    ) -> Result<Vec<CountRow>, StoreError> {
        self.availability
            .observe(self.inner.count(filter, group_by, bucket_micros).instrument(operation("count")).await)
    }

    async fn export(&self, query: LogQuery, chunks: tokio::sync::mpsc::Sender<Result<Vec<Log>, StoreError>>) {
        // Each chunk's outcome is observed as it passes.
        let (observed, mut inner) = tokio::sync::mpsc::channel(1);
        let forward = async {
            while let Some(chunk) = inner.recv().await {
                if chunks.send(self.availability.observe(chunk)).await.is_err() {
                    return;
                }
            }
        };
        tokio::join!(self.inner.export(query, observed), forward);
    }

    async fn time_range(&self, filter: &LogFilter) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        self.availability.observe(self.inner.time_range(filter).instrument(operation("time_range")).await)
    }

    async fn get(&self, id: Uuid) -> Result<Option<Log>, StoreError> {
        self.availability.observe(self.inner.get(id).instrument(operation("get")).await)
    }

    async fn job_run(&self, sequence: Uuid) -> Result<Option<JobRun>, StoreError> {
        self.availability.observe(self.inner.job_run(sequence).instrument(operation("job_run")).await)
    }

    async fn start_job_run(&self, id: Uuid, identity: &RunIdentity, now: DateTime<Utc>) -> Result<JobRun, StoreError> {
        self.availability
            .observe(self.inner.start_job_run(id, identity, now).instrument(operation("start_job_run")).await)
    }

    async fn list_job_runs(&self, query: &RunQuery) -> Result<Vec<JobRun>, StoreError> {
        self.availability.observe(self.inner.list_job_runs(query).instrument(operation("list_job_runs")).await)
    }

    async fn complete_job_run(&self, id: Uuid, completion: &Completion) -> Result<JobRun, StoreError> {
        self.availability
            .observe(self.inner.complete_job_run(id, completion).instrument(operation("complete_job_run")).await)
    }

    async fn delete_job_run(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<(JobRun, u64)>, StoreError> {
        self.availability.observe(self.inner.delete_job_run(id, now).instrument(operation("delete_job_run")).await)
    }

    async fn expire(&self, log_type: LogType, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        self.availability.observe(self.inner.expire(log_type, before, limit).instrument(operation("expire")).await)
    }

    async fn expire_partitions(
        &self,
        log_type: LogType,
        before: DateTime<Utc>,
    ) -> Result<EmptiedPartitions, StoreError> {
        self.availability
            .observe(self.inner.expire_partitions(log_type, before).instrument(operation("expire_partitions")).await)
    }

    fn partitions_created(&self) -> u64 {
        self.inner.partitions_created()
    }

    async fn oldest_log(&self, log_type: LogType) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.availability.observe(self.inner.oldest_log(log_type).instrument(operation("oldest_log")).await)
    }

    async fn database_bytes(&self) -> Result<u64, StoreError> {
        self.availability.observe(self.inner.database_bytes().instrument(operation("database_bytes")).await)
    }

    async fn expiry_estimate(&self, log_type: LogType, before: DateTime<Utc>) -> Result<ExpiryEstimate, StoreError> {
        self.availability
            .observe(self.inner.expiry_estimate(log_type, before).instrument(operation("expiry_estimate")).await)
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.availability
            .observe(self.inner.take_lease(name, holder, now, until).instrument(operation("take_lease")).await)
    }

    async fn revoke_token(&self, token_id: Uuid, expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        self.availability
            .observe(self.inner.revoke_token(token_id, expires_at).instrument(operation("revoke_token")).await)
    }

    async fn revoked_tokens(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        self.availability.observe(self.inner.revoked_tokens(now).instrument(operation("revoked_tokens")).await)
    }

    /// A failed check means "not serving" whatever its cause (a database
    /// that answers without logwell's schema included).
    async fn check_health(&self) -> Result<(), StoreError> {
        let result = self.inner.check_health().await;
        self.availability.record(result.is_ok());
        result
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reachability_changes_the_record_and_watchers_wake_on_changes_only() {
        let availability = Availability::default();
        let mut watcher = availability.watch();
        assert_eq!(*watcher.borrow_and_update(), None);
        let _ = availability.observe(Err::<(), _>(StoreError::Unavailable("gone".into())));
        assert!(watcher.has_changed().unwrap());
        assert_eq!(*watcher.borrow_and_update(), Some(false));
        let _ = availability.observe(Err::<(), _>(StoreError::JobRunComplete(Uuid::nil())));
        let _ = availability.observe(Err::<(), _>(StoreError::Unavailable("still gone".into())));
        assert!(!watcher.has_changed().unwrap(), "no change, no wake-up");
        let _ = availability.observe(Ok(()));
        assert_eq!(*watcher.borrow_and_update(), Some(true));
    }
}
