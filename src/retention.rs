//! Retention: logs past their type's age limit go, by one process at a time
//! (a lease in the database), while logwell serves and on demand (`logwell
//! retention`): whole partitions first where the backend has them
//! (PostgreSQL's days), then the rest in short batches of row deletes, so
//! that writers get the database between them.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::model::{LogType, RetentionPolicy};
use crate::store::{ExpiryEstimate, LogStore, StoreError};

/// The lease that decides which process runs retention.
const LEASE: &str = "retention";

/// How long a lease lasts unless renewed: a process that dies mid-pass
/// hands retention on after this. Renewed before every batch.
const LEASE_TERM: TimeDelta = TimeDelta::minutes(2);

/// A rest between batches, so that queued writes commit between them.
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// How retention runs.
#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    pub policy: RetentionPolicy,
    /// How often a pass starts, while serving.
    pub interval: Duration,
    /// Logs deleted per transaction.
    pub batch_logs: usize,
}

/// What retention has done since the process started, for metrics.
#[derive(Debug)]
pub struct RetentionStats {
    /// Logs expired, per type (`LogType as usize`).
    expired: [AtomicU64; 3],
    /// Partitions emptied, per type.
    emptied_partitions: [AtomicU64; 3],
    /// When the oldest log of each limited type left after the last pass
    /// was received, in microseconds from the epoch (`NO_LOGS`: none).
    oldest: [AtomicI64; 3],
    passes: AtomicU64,
}

/// `oldest` of a type with no logs, or not yet looked at.
const NO_LOGS: i64 = i64::MIN;

impl Default for RetentionStats {
    fn default() -> Self {
        RetentionStats {
            expired: Default::default(),
            emptied_partitions: Default::default(),
            oldest: [NO_LOGS, NO_LOGS, NO_LOGS].map(AtomicI64::new),
            passes: AtomicU64::new(0),
        }
    }
}

impl RetentionStats {
    pub fn expired(&self, log_type: LogType) -> u64 {
        self.expired[log_type as usize].load(Ordering::Relaxed)
    }

    pub fn emptied_partitions(&self, log_type: LogType) -> u64 {
        self.emptied_partitions[log_type as usize].load(Ordering::Relaxed)
    }

    /// When the oldest log of `log_type` that the last pass left was
    /// received; None before a pass, or if none was left.
    pub fn oldest(&self, log_type: LogType) -> Option<DateTime<Utc>> {
        match self.oldest[log_type as usize].load(Ordering::Relaxed) {
            NO_LOGS => None,
            micros => DateTime::from_timestamp_micros(micros),
        }
    }

    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }
}

/// Why a pass stopped short.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("another process holds the retention lease (it runs retention now); try again later")]
    LeaseHeld,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Expires logs for one process; `holder` names it in the lease.
pub struct Retention {
    store: Arc<dyn LogStore>,
    settings: RetentionSettings,
    holder: Uuid,
    stats: Arc<RetentionStats>,
}

impl Retention {
    pub fn new(store: Arc<dyn LogStore>, settings: RetentionSettings, stats: Arc<RetentionStats>) -> Retention {
        Retention { store, settings, holder: Uuid::new_v4(), stats }
    }

    /// What a pass at `now` would delete, per limited type.
    pub async fn estimate(&self, now: DateTime<Utc>) -> Result<Vec<(LogType, ExpiryEstimate)>, StoreError> {
        let mut estimates = Vec::new();
        for (log_type, before) in self.settings.policy.cutoffs(now) {
            estimates.push((log_type, self.store.expiry_estimate(log_type, before).await?));
        }
        Ok(estimates)
    }

    /// Deletes every log past its limit at `now`, batch by batch, holding
    /// the lease throughout and letting it go at the end; answers how many
    /// of each limited type went. Stops early if the lease is lost.
    pub async fn pass(&self, now: DateTime<Utc>) -> Result<Vec<(LogType, u64)>, RetentionError> {
        let expired = self.expire_all(now).await?;
        // Let go: the next pass is whichever process asks first.
        let released = Utc::now();
        self.store.take_lease(LEASE, self.holder, released, released).await?;
        Ok(expired)
    }

    async fn expire_all(&self, now: DateTime<Utc>) -> Result<Vec<(LogType, u64)>, RetentionError> {
        let mut expired = Vec::new();
        for (log_type, before) in self.settings.policy.cutoffs(now) {
            self.renew_lease().await?;
            let emptied = self.store.expire_partitions(log_type, before).await?;
            self.stats.emptied_partitions[log_type as usize].fetch_add(emptied.partitions, Ordering::Relaxed);
            self.stats.expired[log_type as usize].fetch_add(emptied.logs, Ordering::Relaxed);
            let mut total = emptied.logs;
            loop {
                self.renew_lease().await?;
                let deleted = self.store.expire(log_type, before, self.settings.batch_logs).await?;
                total += deleted;
                self.stats.expired[log_type as usize].fetch_add(deleted, Ordering::Relaxed);
                if deleted < self.settings.batch_logs as u64 {
                    break;
                }
                tokio::time::sleep(BATCH_PAUSE).await;
            }
            expired.push((log_type, total));
            let oldest = self.store.oldest_log(log_type).await?;
            self.stats.oldest[log_type as usize]
                .store(oldest.map_or(NO_LOGS, |time| time.timestamp_micros()), Ordering::Relaxed);
        }
        // A follow from before every stored log starts at the last mark
        // before them all: earlier marks serve no one.
        if let Some(before) = self.settings.policy.all_gone_before(now) {
            self.store.prune_commit_marks(before).await?;
        }
        self.stats.passes.fetch_add(1, Ordering::Relaxed);
        Ok(expired)
    }

    async fn renew_lease(&self) -> Result<(), RetentionError> {
        let now = Utc::now();
        match self.store.take_lease(LEASE, self.holder, now, now + LEASE_TERM).await? {
            true => Ok(()),
            false => Err(RetentionError::LeaseHeld),
        }
    }

    /// Runs a pass every interval until `stopping`; a pass whose lease
    /// another process holds is skipped.
    pub async fn run(self, stopping: CancellationToken) {
        let mut ticks = tokio::time::interval(self.settings.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopping.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let pass = tokio::select! {
                () = stopping.cancelled() => return,
                pass = self.pass(Utc::now()) => pass,
            };
            match pass {
                Ok(expired) => {
                    for (log_type, logs) in expired.into_iter().filter(|(_, logs)| *logs > 0) {
                        tracing::info!(r#type = %log_type, logs, "expired logs past their retention");
                    }
                }
                Err(RetentionError::LeaseHeld) => tracing::debug!("another process runs retention"),
                Err(error) => tracing::warn!(%error, "retention pass failed; retrying at the next interval"),
            }
        }
    }
}
