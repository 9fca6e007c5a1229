//! The day partitions of `logs` (migration 0011): each log's partition day,
//! the runs' days that let a run's reads touch one day, partitions made
//! days ahead, and whole expired days emptied by retention.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::model::{LogType, NewLog, SYSTEM_SEQUENCE};
use crate::store::{EmptiedPartitions, StoreError, sequence};

/// Days made ahead of today: creating a partition locks `logs` for a
/// moment, so it is done well before any log needs it, and a replica that
/// cannot take the lock now has days to try again.
const DAYS_AHEAD: i64 = 3;

/// How often the days ahead are checked.
pub(super) const UPKEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// How long creating or emptying a partition waits for its lock before it
/// gives up until the next try: while it waits, the reads and writes queued
/// behind it wait too.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '500ms'";

/// The partition day of each of `logs`: its run's (`days`, in the order of
/// the group's sequences, as `slots` numbers them), or for a system log the
/// UTC day it was received, as `logwell_append` files them.
pub(super) fn days_of(
    logs: &[&NewLog],
    slots: &sequence::Slots,
    days: &[NaiveDate],
) -> Result<Vec<NaiveDate>, StoreError> {
    logs.iter()
        .zip(&slots.positions)
        .map(|(log, position)| match log.owner.job_run_id() {
            None => Ok(log.received_at.date_naive()),
            Some(_) => usize::try_from(*position - 1)
                .ok()
                .and_then(|index| days.get(index).copied())
                .ok_or(StoreError::Internal("a log's sequence got no partition day")),
        })
        .collect()
}

/// Runs' partition days, remembered: a run's day never changes once its row
/// exists.
#[derive(Default)]
pub(super) struct RunDays(std::sync::Mutex<HashMap<Uuid, NaiveDate>>);

impl RunDays {
    /// Runs remembered at most; then the map starts over.
    const CAPACITY: usize = 100_000;

    /// The partition days of those of `runs` that have a row.
    pub(super) async fn known(&self, pool: &PgPool, runs: &[Uuid]) -> Result<HashMap<Uuid, NaiveDate>, StoreError> {
        let (mut known, mut missing): (HashMap<Uuid, NaiveDate>, Vec<Uuid>) = match self.0.lock() {
            Ok(remembered) => {
                let known = runs.iter().filter_map(|run| Some((*run, *remembered.get(run)?))).collect();
                (known, runs.iter().filter(|run| !remembered.contains_key(run)).copied().collect())
            }
            Err(_) => (HashMap::new(), runs.to_vec()),
        };
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(known);
        }
        let found: Vec<(Uuid, NaiveDate)> = sqlx::query_as("SELECT id, partition_day FROM job_runs WHERE id = ANY($1)")
            .bind(&missing)
            .fetch_all(pool)
            .await?;
        if let Ok(mut remembered) = self.0.lock() {
            if remembered.len() + found.len() > Self::CAPACITY {
                remembered.clear();
            }
            remembered.extend(found.iter().copied());
        }
        known.extend(found);
        Ok(known)
    }
}

/// Creates the partitions of today (the database's UTC day) and the days
/// after it that are not there yet; answers how many days it created.
pub(super) async fn create_ahead(pool: &PgPool) -> Result<u64, StoreError> {
    let today: NaiveDate = sqlx::query_scalar("SELECT (now() AT TIME ZONE 'UTC')::date").fetch_one(pool).await?;
    let mut created = 0;
    for ahead in 0..=DAYS_AHEAD {
        let day = today + TimeDelta::days(ahead);
        let mut transaction = pool.begin().await?;
        sqlx::query(LOCK_TIMEOUT).execute(&mut *transaction).await?;
        let made: bool =
            sqlx::query_scalar("SELECT logwell_create_partitions($1)").bind(day).fetch_one(&mut *transaction).await?;
        transaction.commit().await?;
        if made {
            tracing::info!(%day, "created the day's partitions");
            created += 1;
        }
    }
    Ok(created)
}

/// Keeps days ahead every `UPKEEP_INTERVAL` from now, until aborted.
pub(super) async fn keep_ahead(pool: PgPool, created: Arc<AtomicU64>) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + UPKEEP_INTERVAL, UPKEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        keep_ahead_once(&pool, &created).await;
    }
}

/// Creates the days ahead that are missing, counting them into `created`;
/// a failure is told and left for the next try.
pub(super) async fn keep_ahead_once(pool: &PgPool, created: &AtomicU64) {
    match create_ahead(pool).await {
        Ok(days) => {
            created.fetch_add(days, Ordering::Relaxed);
        }
        Err(error) => tracing::warn!(%error, "could not create the partitions of the days ahead; retrying in an hour"),
    }
}

/// Empties, with TRUNCATE, each partition of `log_type` whose every log was
/// received before `before`, taking its logs off their runs' counts in the
/// same transaction; then drops days left with no logs at all. A partition
/// that a log was received in since stays, for row deletes; one whose lock
/// is not had within the timeout, for the next pass.
pub(super) async fn empty_expired(
    pool: &PgPool,
    log_type: LogType,
    before: DateTime<Utc>,
) -> Result<EmptiedPartitions, StoreError> {
    let mut emptied = EmptiedPartitions::default();
    // A day's logs were received on that day or after it.
    let days = days_before(pool, before.date_naive()).await?;
    for day in &days {
        let partition = format!("{day}_{log_type}");
        match empty_if_expired(pool, &partition, before).await {
            Ok(Some(logs)) => {
                emptied.partitions += 1;
                emptied.logs += logs;
            }
            Ok(None) => {}
            Err(StoreError::Unavailable(reason)) => {
                tracing::info!(partition, reason, "cannot empty a partition now; trying at the next pass");
            }
            Err(error) => return Err(error),
        }
    }
    for day in &days {
        match drop_if_empty(pool, day).await {
            Ok(()) | Err(StoreError::Unavailable(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(emptied)
}

/// The day partitions (`logs_YYYYMMDD`) for days before `day`, oldest first.
async fn days_before(pool: &PgPool, day: NaiveDate) -> Result<Vec<String>, StoreError> {
    let days: Vec<String> = sqlx::query_scalar(
        "SELECT child.relname::text FROM pg_inherits JOIN pg_class child ON child.oid = inhrelid \
         WHERE inhparent = 'logs'::regclass AND child.relname ~ '^logs_[0-9]{8}$' ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let day_of = |name: &str| NaiveDate::parse_from_str(name.strip_prefix("logs_")?, "%Y%m%d").ok();
    Ok(days.into_iter().filter(|name| day_of(name).is_some_and(|partition_day| partition_day < day)).collect())
}

/// Empties `partition` if every log in it was received before `before`;
/// answers how many logs went, or None if it kept them.
async fn empty_if_expired(pool: &PgPool, partition: &str, before: DateTime<Utc>) -> Result<Option<u64>, StoreError> {
    let mut transaction = pool.begin().await?;
    sqlx::query(LOCK_TIMEOUT).execute(&mut *transaction).await?;
    // Writers wait (readers do not) while its logs are counted, so that
    // none is added between the count and the TRUNCATE.
    sqlx::query(&format!("LOCK TABLE {partition} IN SHARE ROW EXCLUSIVE MODE")).execute(&mut *transaction).await?;
    let groups: Vec<(Uuid, String, i64, DateTime<Utc>)> = sqlx::query_as(&format!(
        "SELECT coalesce(job_run_id, $1), level, count(*), max(received_at) FROM {partition} GROUP BY 1, 2"
    ))
    .bind(SYSTEM_SEQUENCE)
    .fetch_all(&mut *transaction)
    .await?;
    if groups.is_empty() || groups.iter().any(|(_, _, _, newest)| *newest >= before) {
        return Ok(None);
    }
    let gone = crate::store::tally_gone(groups.iter().map(|(run, level, count, _)| (*run, level.as_str(), *count)))?;
    super::subtract_gone(&mut transaction, &gone).await?;
    sqlx::query(&format!("TRUNCATE {partition}")).execute(&mut *transaction).await?;
    transaction.commit().await?;
    let logs = groups.iter().map(|(_, _, count, _)| *count).sum::<i64>();
    tracing::info!(partition, logs, "emptied an expired partition");
    Ok(Some(u64::try_from(logs).unwrap_or(0)))
}

/// Drops the day partition `day` if it holds no logs of any type. Dropping
/// it locks `logs` for a moment.
async fn drop_if_empty(pool: &PgPool, day: &str) -> Result<(), StoreError> {
    let mut transaction = pool.begin().await?;
    sqlx::query(LOCK_TIMEOUT).execute(&mut *transaction).await?;
    // Writers to the day wait from here, so it stays empty.
    sqlx::query(&format!("LOCK TABLE {day} IN SHARE ROW EXCLUSIVE MODE")).execute(&mut *transaction).await?;
    let empty: bool =
        sqlx::query_scalar(&format!("SELECT NOT EXISTS (SELECT FROM {day})")).fetch_one(&mut *transaction).await?;
    if empty {
        sqlx::query(&format!("DROP TABLE {day}")).execute(&mut *transaction).await?;
        transaction.commit().await?;
        tracing::info!(partition = day, "dropped an emptied day");
    }
    Ok(())
}
