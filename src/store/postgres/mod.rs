//! PostgreSQL, for production: one pool. A group of batches goes in as
//! arrays through one call of `logwell_append` (migrations 0006 and 0007),
//! one round trip and one transaction; a large group by binary COPY, in a
//! transaction that first reserves its seqs with `logwell_allocate`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sqlx::Postgres;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgDatabaseError, PgListener, PgPool, PgPoolOptions, PgRow};
use uuid::Uuid;

mod copy;
pub(super) mod dialect;
mod optional_index;
mod partitions;

use dialect::PostgresDialect;

use super::list_sql::{self, LOG_COLUMNS, Param};
use super::{
    Appended, COMMITTED_WINDOW, ChangesElsewhere, CommittedPage, CountRow, EmptiedPartitions, ExpiryEstimate, Horizon,
    JobRunRow, LogStore, NO_LOGS, SELECT_STORED_IDS, StoreError, StoredIdRow, StoredRow, job_run_columns, run_sql,
    sequence,
};
use crate::model::{
    CaseFolding, Completion, Grouping, JobRun, Log, LogFilter, LogQuery, LogType, NewLog, Position, RunIdentity,
    RunQuery, SYSTEM_SEQUENCE, activity_at,
};

/// sqlx's migrator holds a PostgreSQL advisory lock while it runs, so
/// replicas that start together migrate one after the other.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Completes a run unless it already is; returns a row only if it changed.
const COMPLETE_JOB_RUN: &str = "INSERT INTO job_runs (id, next_seq, completed_at, outcome, summary, active_at) \
     VALUES ($1, 1, $2, $3, $4, $5) \
     ON CONFLICT (id) DO UPDATE SET completed_at = excluded.completed_at, outcome = excluded.outcome, \
     summary = excluded.summary, active_at = GREATEST(job_runs.active_at, excluded.active_at) \
     WHERE job_runs.completed_at IS NULL \
     RETURNING id";

/// Starts a run, or names one its first log began, unless it was started
/// or completed already; returns a row only if it changed.
const START_JOB_RUN: &str = "INSERT INTO job_runs (id, next_seq, name, labels, started_at, active_at) \
     VALUES ($1, 1, $2, $3::jsonb, $4, $5) \
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, labels = excluded.labels, \
     started_at = excluded.started_at, active_at = GREATEST(job_runs.active_at, excluded.active_at) \
     WHERE job_runs.started_at IS NULL AND job_runs.completed_at IS NULL \
     RETURNING id";

/// The channel on which every replica learns which sequences others
/// committed to. It carries wake-ups only, never logs. (`logwell_append`,
/// migration 0006, names it too.)
const COMMITS_CHANNEL: &str = "logwell_commits";

/// What a transaction changed, for the other replicas' followers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// It appended logs, which reads in commit order show.
    Appended,
    /// Anything else (a completion, a deletion): followers read storage.
    Other,
}

/// Stores a group in one statement, so that it costs one round trip; see
/// migration 0006.
const APPEND: &str = "SELECT logwell_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
     $16, $17, $18, $19, $20)";

/// Reserves a large group's seqs, in the transaction that then copies its
/// rows (migration 0007), and answers each sequence's partition day
/// (migration 0011).
const ALLOCATE: &str = "SELECT firsts, days FROM logwell_allocate($1, $2, $3, $4, $5, $6)";

/// Groups of at least this many logs go in by COPY: with a thousand runs
/// written at once, a group of 8,000 logs commits in 56-67 ms that way
/// against 77-80 ms through `logwell_append`. Smaller groups keep the single
/// round trip; COPY's four more (begin, reserve, copy, commit) would cost
/// them more than it saves.
const COPY_FROM_LOGS: usize = 1_000;

/// Connections of the reads in commit order and of the horizon: the commit
/// tail's one reader, and followers across runs behind it or starting.
const COMMIT_READ_CONNECTIONS: u32 = 2;

/// The SQLSTATE `logwell_append` and `logwell_allocate` raise when a run of
/// the group is complete.
const JOB_RUN_COMPLETE: &str = "LW001";

/// The SQLSTATE `logwell_allocate` raises when a transaction that began
/// later wrote one of the group's runs first (migration 0012): the group
/// is written again, under a later transaction id.
const OVERTAKEN: &str = "LW002";

/// A unique index refused a row.
const UNIQUE_VIOLATION: &str = "23505";

/// Attempts at a group whose client ids another replica keeps storing
/// between the lookup and the append (each attempt finds those it stored),
/// or whose runs another replica keeps overtaking.
const RACE_ATTEMPTS: usize = 8;

/// Runs this process has seen complete, so that a write to one is refused
/// before it reaches the database and fails the rest of its group. Runs
/// never reopen, so the set is never wrong, only incomplete: one it misses
/// costs a failed group, retried batch by batch.
#[derive(Default)]
struct CompletedRuns(std::sync::Mutex<BTreeSet<Uuid>>);

impl CompletedRuns {
    /// Runs remembered at most; then the set starts over.
    const CAPACITY: usize = 100_000;

    fn add(&self, run: Uuid) {
        if let Ok(mut runs) = self.0.lock() {
            if runs.len() >= Self::CAPACITY {
                runs.clear();
            }
            runs.insert(run);
        }
    }

    /// The runs among `sequences` known to be complete.
    fn among(&self, sequences: &BTreeSet<Uuid>) -> BTreeSet<Uuid> {
        self.0.lock().map(|runs| sequences.intersection(&runs).copied().collect()).unwrap_or_default()
    }
}

pub(super) struct PostgresStore {
    /// Writes, completions, deletions, health, notifications.
    pool: PgPool,
    /// Reads: its connections stop any statement past `read_timeout`
    /// (`statement_timeout`, set once per connection).
    reads: PgPool,
    /// The reads in commit order (`read_committed`).
    commit_reads: PgPool,
    listener: tokio::task::AbortHandle,
    /// Names this process in its notifications, so that it can skip its own.
    replica: Uuid,
    completed_runs: CompletedRuns,
    run_days: partitions::RunDays,
    /// Keeps the partitions of the days ahead.
    upkeep: tokio::task::AbortHandle,
    partitions_created: Arc<AtomicU64>,
    read_timeout: std::time::Duration,
    case_folding: CaseFolding,
}

impl PostgresStore {
    pub(super) async fn open(
        url: &str,
        options: &super::ConnectOptions,
        elsewhere: Arc<dyn ChangesElsewhere>,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await?;
        MIGRATIONS.run(&pool).await?;
        let timeout = format!("{}ms", options.read_timeout.as_millis().max(1));
        let reads = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(url.parse::<PgConnectOptions>()?.options([("statement_timeout", timeout.as_str())]))
            .await?;
        // Planned once for any values unless a read says otherwise: in
        // one round trip, where a transaction setting it costs four.
        let commit_read_options = [("statement_timeout", timeout.as_str()), ("plan_cache_mode", "force_generic_plan")];
        let commit_reads = PgPoolOptions::new()
            .max_connections(COMMIT_READ_CONNECTIONS)
            // Kept, with the plans they made.
            .idle_timeout(None)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(url.parse::<PgConnectOptions>()?.options(commit_read_options));
        optional_index::reconcile(
            &pool,
            &[(&optional_index::TEXT, options.text_index), (&optional_index::EXPIRY, options.expiry_index)],
        )
        .await?;
        if !options.metadata_index_keys.is_empty() {
            tracing::warn!("--metadata-index-keys has no effect on PostgreSQL: its GIN index serves every key");
        }
        // ILIKE folds as lower() does under the database's collation: the
        // C collation folds ASCII letters only.
        let folds_beyond_ascii: bool = sqlx::query_scalar("SELECT lower('Ä') <> 'Ä'").fetch_one(&pool).await?;
        let case_folding = if folds_beyond_ascii { CaseFolding::Collation } else { CaseFolding::Ascii };
        let partitions_created = Arc::new(AtomicU64::new(0));
        // Before any write: logs of a day without partitions would wait in
        // logs_default until its partitions are made.
        partitions::keep_ahead_once(&pool, &partitions_created).await;
        let upkeep = tokio::spawn(partitions::keep_ahead(pool.clone(), partitions_created.clone())).abort_handle();
        let replica = Uuid::new_v4();
        let listener = listen(&pool).await?;
        let listener = tokio::spawn(forward_notifications(pool.clone(), listener, elsewhere, replica)).abort_handle();
        Ok(PostgresStore {
            pool,
            reads,
            commit_reads,
            listener,
            replica,
            completed_runs: CompletedRuns::default(),
            run_days: partitions::RunDays::default(),
            upkeep,
            partitions_created,
            read_timeout: options.read_timeout,
            case_folding,
        })
    }

    /// Commits `transaction`, telling the other replicas which sequences it
    /// changed, and whether by appending logs (`Change::Appended`): one
    /// notification per transaction, since PostgreSQL serializes the
    /// commits of transactions that notified. (This replica's followers
    /// learn of it from whoever committed, without the round trip.)
    async fn commit_and_notify(
        &self,
        mut transaction: sqlx::Transaction<'_, sqlx::Postgres>,
        sequences: Vec<Uuid>,
        change: Change,
    ) -> Result<(), StoreError> {
        if !sequences.is_empty() {
            let appended = change == Change::Appended;
            let template = sequence::notification_template(self.replica, sequences.into_iter(), appended);
            sqlx::query("SELECT pg_notify($1, format($2, pg_current_xact_id()))")
                .bind(COMMITS_CHANNEL)
                .bind(template)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// The logs already stored under the client ids of `batches`. A log
    /// stored by another replica after this looked makes the append fail on
    /// the primary key (`IdRace`); looking again finds it.
    ///
    /// A resend goes to the log's run, so its id is looked for in the run's
    /// day's partitions only (the system logs' in theirs): looking in every
    /// partition of 30 days for each id took groups of 1,000 from 101,000 to
    /// 5,900 logs/s. So an id reused for a log of a run begun on another day
    /// is not found, and both logs are stored.
    async fn stored_ids(&self, batches: &[&[NewLog]]) -> Result<HashMap<Uuid, sequence::StoredId>, StoreError> {
        let client_logs = || batches.iter().flat_map(|batch| batch.iter()).filter(|log| log.client_id);
        let runs: Vec<Uuid> = client_logs().filter_map(|log| log.owner.job_run_id()).collect();
        let days = self.run_days.known(&self.pool, &runs).await?;
        let (mut run_ids, mut run_days, mut system_ids) = (Vec::new(), Vec::new(), Vec::new());
        for log in client_logs() {
            match log.owner.job_run_id() {
                None => system_ids.push(log.id),
                Some(run) => {
                    run_ids.push(log.id);
                    match days.get(&run) {
                        Some(day) => run_days.push(*day),
                        // A run without a row has no logs, and gets today's
                        // day (the database's, so either side of the
                        // server's): an id it reuses from another run of
                        // that day is found there.
                        None => {
                            let today = Utc::now().date_naive();
                            run_days.extend([today - TimeDelta::days(1), today, today + TimeDelta::days(1)]);
                        }
                    }
                }
            }
        }
        run_days.sort_unstable();
        run_days.dedup();
        let mut rows = Vec::new();
        if !run_ids.is_empty() {
            let select = format!(
                "{SELECT_STORED_IDS} (SELECT unnest($1::uuid[])) AND type IN ('job', 'task') \
                 AND partition_day = ANY($2)"
            );
            rows.extend(
                sqlx::query_as::<_, StoredIdRow>(&select).bind(&run_ids).bind(&run_days).fetch_all(&self.pool).await?,
            );
        }
        if !system_ids.is_empty() {
            let select = format!("{SELECT_STORED_IDS} (SELECT unnest($1::uuid[])) AND type = 'system'");
            rows.extend(sqlx::query_as::<_, StoredIdRow>(&select).bind(&system_ids).fetch_all(&self.pool).await?);
        }
        rows.into_iter()
            .map(|row| sequence::StoredId::try_from(row).map(|stored| (stored.receipt.id, stored)))
            .collect()
    }

    /// Stores `logs` and notifies the other replicas in one transaction;
    /// answers each log's seq once committed.
    async fn append(&self, logs: &[&NewLog]) -> Result<Vec<i64>, StoreError> {
        let demand = sequence::demand(logs);
        let slots = sequence::slots(logs, &demand);
        if logs.len() >= COPY_FROM_LOGS {
            self.append_by_copy(logs, &demand, slots).await
        } else {
            self.append_in_one_statement(logs, &demand, slots).await
        }
    }

    /// A large group: reserves its seqs, copies its rows, notifies, commits.
    async fn append_by_copy(
        &self,
        logs: &[&NewLog],
        demand: &BTreeMap<Uuid, sequence::Demand>,
        slots: sequence::Slots,
    ) -> Result<Vec<i64>, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let (firsts, days): (Vec<i64>, Vec<NaiveDate>) =
            reserving(ALLOCATE, demand).fetch_one(&mut *transaction).await.map_err(|error| self.refusal(error))?;
        let seqs = slots.seqs(&firsts)?;
        let days = partitions::days_of(logs, &slots, &days)?;
        let rows = copy::rows(logs, &seqs, &days)?;
        let mut copying = transaction.copy_in_raw(copy::COPY_LOGS).await?;
        copying.send(rows).await.map_err(|error| self.refusal(error))?;
        copying.finish().await.map_err(|error| self.refusal(error))?;
        self.commit_and_notify(transaction, demand.keys().copied().collect(), Change::Appended).await?;
        Ok(seqs)
    }

    /// A smaller group, in one statement and its own transaction.
    async fn append_in_one_statement(
        &self,
        logs: &[&NewLog],
        demand: &BTreeMap<Uuid, sequence::Demand>,
        slots: sequence::Slots,
    ) -> Result<Vec<i64>, StoreError> {
        let metadata = logs.iter().map(|log| serde_json::to_string(&log.metadata)).collect::<Result<Vec<_>, _>>()?;
        let notification = sequence::notification_template(self.replica, demand.keys().copied(), true);
        let (firsts,): (Vec<i64>,) = reserving(APPEND, demand)
            .bind(logs.iter().map(|log| log.id).collect::<Vec<Uuid>>())
            .bind(logs.iter().map(|log| log.owner.log_type().as_str()).collect::<Vec<&str>>())
            .bind(logs.iter().map(|log| log.owner.job_run_id()).collect::<Vec<Option<Uuid>>>())
            .bind(logs.iter().map(|log| log.owner.task_run_id()).collect::<Vec<Option<Uuid>>>())
            .bind(&slots.positions)
            .bind(&slots.offsets)
            .bind(logs.iter().map(|log| log.time).collect::<Vec<DateTime<Utc>>>())
            .bind(logs.iter().map(|log| log.received_at).collect::<Vec<DateTime<Utc>>>())
            .bind(logs.iter().map(|log| log.level.as_str()).collect::<Vec<&str>>())
            .bind(logs.iter().map(|log| log.stream.as_str()).collect::<Vec<&str>>())
            .bind(logs.iter().map(|log| log.source.as_str()).collect::<Vec<&str>>())
            .bind(logs.iter().map(|log| log.message.as_str()).collect::<Vec<&str>>())
            .bind(&metadata)
            .bind(notification)
            .fetch_one(&self.pool)
            .await
            .map_err(|error| self.refusal(error))?;
        slots.seqs(&firsts)
    }

    /// Turns a refusal of `logwell_append` or `logwell_allocate` into
    /// `JobRunComplete`, remembering the run, a clash on the logs' primary
    /// key into `IdRace`, and an overtaken transaction into `Overtaken`.
    fn refusal(&self, error: sqlx::Error) -> StoreError {
        let Some(database) =
            error.as_database_error().and_then(|database| database.try_downcast_ref::<PgDatabaseError>())
        else {
            return StoreError::from(error);
        };
        // The primary key of a partition of logs (logs_YYYYMMDD_job_pkey…):
        // the logs' ids.
        let log_ids = database.table().is_some_and(|table| table.starts_with("logs"))
            && database.constraint().is_some_and(|constraint| constraint.ends_with("_pkey"));
        if database.code() == UNIQUE_VIOLATION && log_ids {
            return StoreError::IdRace;
        }
        if database.code() == OVERTAKEN {
            return StoreError::Overtaken;
        }
        match database.detail().and_then(|detail| Uuid::try_parse(detail).ok()) {
            Some(run) if database.code() == JOB_RUN_COMPLETE => {
                self.completed_runs.add(run);
                StoreError::JobRunComplete(run)
            }
            _ => StoreError::from(error),
        }
    }
}

/// `sql` (`logwell_allocate` or `logwell_append`, migration 0011) with its
/// first six parameters bound: each sequence's id, count of seqs wanted,
/// earliest and latest time, and logs per level (six a sequence, in one flat
/// array); and the group's activity time.
fn reserving<'q, Answer>(
    sql: &'q str,
    demand: &BTreeMap<Uuid, sequence::Demand>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, Answer, sqlx::postgres::PgArguments>
where
    Answer: for<'r> sqlx::FromRow<'r, PgRow>,
{
    sqlx::query_as(sql)
        .bind(demand.keys().copied().collect::<Vec<Uuid>>())
        .bind(demand.values().map(|wanted| wanted.count).collect::<Vec<i64>>())
        .bind(demand.values().map(|wanted| wanted.earliest).collect::<Vec<DateTime<Utc>>>())
        .bind(demand.values().map(|wanted| wanted.latest).collect::<Vec<DateTime<Utc>>>())
        .bind(demand.values().flat_map(|wanted| wanted.levels.0).collect::<Vec<i64>>())
        .bind(demand.values().map(sequence::Demand::active_at).max())
}

/// One listening connection per process, whatever the number of followers.
impl PostgresStore {
    /// A read-only transaction on one snapshot (REPEATABLE READ), each
    /// statement bounded by the read timeout (the readers' pool's).
    async fn snapshot(&self) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        let mut transaction = self.reads.begin().await?;
        sqlx::Executor::execute(&mut *transaction, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        Ok(transaction)
    }

    /// The partition days of the job runs `filter` names (none: it names
    /// no run, and every day is read), or None if none of them has a row
    /// and so no log: a run's logs are all in its day's partitions, and its
    /// row is made with its first logs. A read that finds no row answers as
    /// a read a moment earlier, before the run's first commit, would.
    async fn run_days(&self, filter: &LogFilter) -> Result<Option<Vec<NaiveDate>>, StoreError> {
        if filter.job_run_ids.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut days: Vec<NaiveDate> =
            self.run_days.known(&self.pool, &filter.job_run_ids).await?.into_values().collect();
        days.sort_unstable();
        days.dedup();
        Ok(if days.is_empty() { None } else { Some(days) })
    }

    /// The plan of `statement`, one step a line.
    async fn explain(&self, statement: list_sql::Statement) -> Result<String, StoreError> {
        let explain = format!("EXPLAIN {}", statement.sql);
        let lines = self.read(bind(sqlx::query(&explain), statement.params)).await?;
        let lines: Vec<String> = lines.iter().map(|line| sqlx::Row::try_get(line, 0)).collect::<Result<_, _>>()?;
        Ok(lines.join("\n"))
    }

    /// Runs a read on the readers' pool, stopped once it runs past
    /// `read_timeout`: one round trip, as the follow loop's reads need.
    async fn read(&self, select: sqlx::query::Query<'_, Postgres, PgArguments>) -> Result<Vec<PgRow>, StoreError> {
        select.fetch_all(&self.reads).await.map_err(|error| StoreError::of_read(error, self.read_timeout))
    }

    /// Runs a read of logs matching `filter`, as `read` does, but planned
    /// for its values if its filter needs that (`plans_per_values`).
    async fn read_logs(
        &self,
        filter: &LogFilter,
        select: sqlx::query::Query<'_, Postgres, PgArguments>,
    ) -> Result<Vec<PgRow>, StoreError> {
        match plans_per_values(filter) {
            true => self.read_planned(PLAN_PER_VALUES, select).await,
            false => self.read(select).await,
        }
    }

    /// Runs a read as `read` does, in a transaction planned as `planning`
    /// says (`PLAN_PER_VALUES` or `PLAN_ONCE`).
    async fn read_planned(
        &self,
        planning: &str,
        select: sqlx::query::Query<'_, Postgres, PgArguments>,
    ) -> Result<Vec<PgRow>, StoreError> {
        self.read_planned_on(&self.reads, planning, select).await
    }

    /// A read in commit order, on the connections kept for them. Planned
    /// once per connection unless values decide the plan (`per_values`):
    /// no day is named, and planning every partition each time costs more
    /// than the read. On connections of their own, few, so that a plan
    /// over every partition (52 ms idle, 250-350 ms on a busy machine) is
    /// made once on each rather than on every reader's.
    async fn read_in_commit_order(
        &self,
        per_values: bool,
        select: sqlx::query::Query<'_, Postgres, PgArguments>,
    ) -> Result<Vec<PgRow>, StoreError> {
        match per_values {
            true => self.read_planned_on(&self.commit_reads, PLAN_PER_VALUES, select).await,
            false => select
                .fetch_all(&self.commit_reads)
                .await
                .map_err(|error| StoreError::of_read(error, self.read_timeout)),
        }
    }

    /// `read_planned` on the connections of `pool`.
    async fn read_planned_on(
        &self,
        pool: &PgPool,
        planning: &str,
        select: sqlx::query::Query<'_, Postgres, PgArguments>,
    ) -> Result<Vec<PgRow>, StoreError> {
        let mut transaction = pool.begin().await?;
        sqlx::query(planning).execute(&mut *transaction).await?;
        let rows =
            select.fetch_all(&mut *transaction).await.map_err(|error| StoreError::of_read(error, self.read_timeout))?;
        transaction.commit().await?;
        Ok(rows)
    }
}

/// The oldest transaction still running (or the next to start, if none
/// runs), the next to start, and those running: logs of transactions below
/// the first are all committed or never will be.
const COMMIT_HORIZON: &str = "SELECT pg_snapshot_xmin(now)::text::bigint, pg_snapshot_xmax(now)::text::bigint, \
     ARRAY(SELECT running::text::bigint FROM pg_snapshot_xip(now) AS running) FROM pg_current_snapshot() AS now";

/// Plans the transaction's statements for their values.
const PLAN_PER_VALUES: &str = "SET LOCAL plan_cache_mode = force_custom_plan";

/// Plans the transaction's statements once for any values. For run
/// listings: planning each run's first retained seq for its values visits
/// every day partition (27 ms with 30 days kept), where the plan made once
/// prunes them as it runs (2 ms). PostgreSQL would switch to it after five
/// executions on a connection, but a pool spreads calls over many.
const PLAN_ONCE: &str = "SET LOCAL plan_cache_mode = force_generic_plan";

/// Whether a read of `filter` must be planned for its values rather than
/// once for any: such a plan cannot tell a text or a metadata value in one
/// log from one in every log, and scanned 5,000,000 logs in time order for
/// one match that the text index finds in milliseconds.
fn plans_per_values(filter: &LogFilter) -> bool {
    filter.text.is_some() || !filter.metadata.is_empty()
}

/// What narrows a read: its runs' partition days.
fn scope(run_days: &[NaiveDate]) -> list_sql::ReadScope<'_> {
    list_sql::ReadScope { text_index: false, run_days }
}

/// Takes `gone`, logs per run (the system sequence for system logs) and
/// level, off their runs' counts.
async fn subtract_gone(
    transaction: &mut sqlx::Transaction<'static, Postgres>,
    gone: &BTreeMap<Uuid, crate::model::LevelCounts>,
) -> Result<(), StoreError> {
    let level = |index: usize| gone.values().map(|counts| counts.0[index]).collect::<Vec<i64>>();
    sqlx::query(&format!(
        "UPDATE job_runs SET {} FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], \
         $6::bigint[], $7::bigint[]) AS gone (id, trace, debug, info, warn, error, fatal) \
         WHERE job_runs.id = gone.id",
        super::SUBTRACT_GONE
    ))
    .bind(gone.keys().copied().collect::<Vec<Uuid>>())
    .bind(level(0))
    .bind(level(1))
    .bind(level(2))
    .bind(level(3))
    .bind(level(4))
    .bind(level(5))
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// A run, if it exists; `suffix` ends the statement (a row lock).
async fn find_job_run<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    id: Uuid,
    suffix: &str,
) -> Result<Option<JobRun>, StoreError> {
    let select = format!("SELECT {} FROM job_runs WHERE id = $1{suffix}", job_run_columns::<PostgresDialect>());
    let row: Option<JobRunRow> = sqlx::query_as(&select).bind(id).fetch_optional(executor).await?;
    row.map(JobRun::try_from).transpose()
}

/// A run this transaction has just written.
async fn select_job_run(
    transaction: &mut sqlx::Transaction<'static, Postgres>,
    id: Uuid,
) -> Result<JobRun, StoreError> {
    find_job_run(&mut **transaction, id, "").await?.ok_or(StoreError::Internal("a run just written is gone"))
}

/// Rows of a listing (`LOG_COLUMNS`) as logs.
fn logs(rows: &[PgRow]) -> Result<Vec<Log>, StoreError> {
    rows.iter().map(|row| Log::try_from(<StoredRow as sqlx::FromRow<_>>::from_row(row)?)).collect()
}

/// The positions in the commit order of `rows`.
fn positions(rows: &[PgRow]) -> Result<Vec<Position>, StoreError> {
    let position = |row| {
        Ok::<_, sqlx::Error>(Position {
            commit: sqlx::Row::try_get(row, "log_commit")?,
            index: sqlx::Row::try_get(row, "log_commit_index")?,
        })
    };
    Ok(rows.iter().map(position).collect::<Result<_, _>>()?)
}

/// `select` with `params` bound in PostgreSQL's column types.
fn bind(
    mut select: sqlx::query::Query<'_, Postgres, PgArguments>,
    params: Vec<Param>,
) -> sqlx::query::Query<'_, Postgres, PgArguments> {
    for param in params {
        select = match param {
            Param::Id(id) => select.bind(id),
            Param::Int(value) => select.bind(value),
            Param::Real(value) => select.bind(value),
            Param::Text(text) => select.bind(text),
            Param::Time(time) => select.bind(time),
        };
    }
    select
}

async fn listen(pool: &PgPool) -> Result<PgListener, StoreError> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(COMMITS_CHANNEL).await?;
    Ok(listener)
}

/// Passes other replicas' notifications on. While the listening
/// connection is down, notifications are lost; so once it is back, it says
/// changes may have been missed.
async fn forward_notifications(
    pool: PgPool,
    mut listener: PgListener,
    elsewhere: Arc<dyn ChangesElsewhere>,
    replica: Uuid,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => match sequence::parse_notification(notification.payload()) {
                sequence::Notification::From { replica: sender, .. } if sender == replica => {}
                sequence::Notification::From { sequences, appended_by: Some(transaction), .. } => {
                    elsewhere.appended(sequences, transaction);
                }
                sequence::Notification::From { sequences: Some(sequences), .. } => elsewhere.changed(sequences),
                sequence::Notification::From { sequences: None, .. } | sequence::Notification::Unreadable => {
                    elsewhere.maybe_missed();
                }
            },
            result => {
                if let Err(error) = result {
                    tracing::warn!(%error, "lost the notification connection; reconnecting");
                }
                listener = loop {
                    match listen(&pool).await {
                        Ok(listener) => break listener,
                        Err(error) => {
                            tracing::warn!(%error, "cannot listen for notifications; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                };
                elsewhere.maybe_missed();
            }
        }
    }
}

#[async_trait::async_trait]
impl LogStore for PostgresStore {
    async fn append_batches(&self, batches: &[&[NewLog]]) -> Result<Appended, StoreError> {
        let completed = self.completed_runs.among(&sequence::sequences(batches));
        let mut attempt = 1;
        loop {
            let stored = self.stored_ids(batches).await?;
            let (logs, plans) = sequence::plan(batches, &completed, &stored);
            if logs.is_empty() {
                return Ok(Appended { batches: sequence::answers(plans, &[]), span: None });
            }
            match self.append(&logs).await {
                Ok(seqs) => {
                    let batches = sequence::answers(plans, &sequence::receipts(&logs, seqs));
                    return Ok(Appended { batches, span: None });
                }
                // Another replica stored one of these ids after the lookup,
                // and has committed: looking again finds it. Or it overtook
                // this transaction in one of the runs: a new one comes after.
                Err(StoreError::IdRace | StoreError::Overtaken) if attempt < RACE_ATTEMPTS => attempt += 1,
                Err(error) => return Err(error),
            }
        }
    }

    async fn read_committed(
        &self,
        filter: &LogFilter,
        after: Position,
        limit: usize,
    ) -> Result<CommittedPage, StoreError> {
        // The horizon first: every transaction below it has ended, so the
        // page, read on a later snapshot, sees all that committed.
        let horizon = self.commit_horizon().await?;
        let Some(days) = self.run_days(filter).await? else {
            let through = horizon.position;
            return Ok(super::committed_page(Vec::new(), Vec::new(), after, limit, through, horizon));
        };
        let through = if super::needs_window(filter) {
            let end = list_sql::window_end_statement::<PostgresDialect>(after, horizon.position, COMMITTED_WINDOW);
            let end = bind(sqlx::query(&end.sql), end.params);
            let rows = self.read_in_commit_order(false, end).await?;
            positions(&rows)?.first().copied().unwrap_or(horizon.position)
        } else {
            horizon.position
        };
        let statement = list_sql::committed_statement::<PostgresDialect>(filter, after, through, limit, scope(&days));
        let select = bind(sqlx::query(&statement.sql), statement.params);
        let rows = self.read_in_commit_order(plans_per_values(filter), select).await?;
        Ok(super::committed_page(logs(&rows)?, positions(&rows)?, after, limit, through, horizon))
    }

    async fn commit_horizon(&self) -> Result<Horizon, StoreError> {
        // On the connections of reads in commit order, which read it before
        // each page: the readers' pool may have thousands of run followers'
        // reads queued for it.
        let (oldest_running, next, running): (i64, i64, Vec<i64>) =
            sqlx::query_as(COMMIT_HORIZON).fetch_one(&self.commit_reads).await?;
        Ok(Horizon { position: Position::before(oldest_running), next, running })
    }

    fn case_folding(&self) -> CaseFolding {
        self.case_folding
    }

    async fn mark_commit_order(&self) -> Result<(), StoreError> {
        // The oldest running transaction first, the clock after: a log
        // received later is written by a transaction that began later.
        let horizon = self.commit_horizon().await?;
        sqlx::query("INSERT INTO commit_marks (at, position) VALUES ($1, $2)")
            .bind(Utc::now())
            .bind(horizon.position.commit)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn commit_mark(&self, at: DateTime<Utc>) -> Result<Option<Position>, StoreError> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM commit_marks WHERE at <= $1 ORDER BY at DESC LIMIT 1")
                .bind(at)
                .fetch_optional(&self.reads)
                .await?;
        Ok(position.map(Position::before))
    }

    async fn prune_commit_marks(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM commit_marks WHERE at < (SELECT max(at) FROM commit_marks WHERE at <= $1)")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn database_identity(&self) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar("SELECT id::text FROM database_identity").fetch_one(&self.reads).await?)
    }

    async fn list(&self, query: &LogQuery) -> Result<Vec<Log>, StoreError> {
        let Some(days) = self.run_days(&query.filter).await? else {
            return Ok(Vec::new());
        };
        let statement = list_sql::list_statement::<PostgresDialect>(query, scope(&days));
        let rows = self.read_logs(&query.filter, bind(sqlx::query(&statement.sql), statement.params)).await?;
        logs(&rows)
    }

    async fn plan(&self, query: &LogQuery) -> Result<String, StoreError> {
        let days = self.run_days(&query.filter).await?.unwrap_or_default();
        self.explain(list_sql::list_statement::<PostgresDialect>(query, scope(&days))).await
    }

    async fn plan_job_runs(&self, query: &RunQuery) -> Result<String, StoreError> {
        self.explain(run_sql::job_runs_statement::<PostgresDialect>(query)).await
    }

    async fn count(
        &self,
        filter: &LogFilter,
        group_by: &[Grouping],
        bucket_micros: Option<i64>,
    ) -> Result<Vec<CountRow>, StoreError> {
        let Some(days) = self.run_days(filter).await? else {
            return Ok(Vec::new());
        };
        let statement = list_sql::count_statement::<PostgresDialect>(filter, group_by, bucket_micros, scope(&days));
        let rows = self.read_logs(filter, bind(sqlx::query(&statement.sql), statement.params)).await?;
        rows.iter().map(|row| CountRow::decode(row, group_by.len(), bucket_micros.is_some())).collect()
    }

    async fn export(&self, query: LogQuery, chunks: tokio::sync::mpsc::Sender<Result<Vec<Log>, StoreError>>) {
        let started = async {
            let Some(days) = self.run_days(&query.filter).await? else {
                return Ok(None);
            };
            let mut transaction = self.snapshot().await?;
            if plans_per_values(&query.filter) {
                sqlx::query(PLAN_PER_VALUES).execute(&mut *transaction).await?;
            }
            Ok::<_, StoreError>(Some((days, transaction)))
        };
        let (days, mut transaction) = match started.await {
            Ok(Some(started)) => started,
            // The filter's runs have no row, so no logs: the export is empty.
            Ok(None) => return,
            Err(error) => {
                let _ = chunks.send(Err(error)).await;
                return;
            }
        };
        let mut next = Some(query);
        while let Some(query) = next.take() {
            let statement = list_sql::list_statement::<PostgresDialect>(&query, scope(&days));
            let page = bind(sqlx::query(&statement.sql), statement.params)
                .fetch_all(&mut *transaction)
                .await
                .map_err(|error| StoreError::of_read(error, self.read_timeout))
                .and_then(|rows| logs(&rows));
            let logs: Vec<Log> = match page {
                Ok(logs) => logs,
                Err(error) => {
                    let _ = chunks.send(Err(error)).await;
                    return;
                }
            };
            next = super::next_page(query, &logs);
            if logs.is_empty() || chunks.send(Ok(logs)).await.is_err() {
                return;
            }
        }
        // Read-only: ending it changes nothing, and dropping it would too.
        let _ = transaction.commit().await;
    }

    async fn time_range(&self, filter: &LogFilter) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        let Some(days) = self.run_days(filter).await? else {
            return Ok(None);
        };
        let statement = list_sql::time_range_statement::<PostgresDialect>(filter, scope(&days));
        let row = self.read_logs(filter, bind(sqlx::query(&statement.sql), statement.params)).await?;
        let first: Option<DateTime<Utc>> = sqlx::Row::try_get(&row[0], "first")?;
        let last: Option<DateTime<Utc>> = sqlx::Row::try_get(&row[0], "last")?;
        Ok(first.zip(last))
    }

    async fn get(&self, id: Uuid) -> Result<Option<Log>, StoreError> {
        sqlx::query_as::<_, StoredRow>(&format!("SELECT {LOG_COLUMNS} FROM logs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(Log::try_from)
            .transpose()
    }

    async fn job_run(&self, sequence: Uuid) -> Result<Option<JobRun>, StoreError> {
        // The run's row, then its first retained seq in its day's
        // partitions: the subquery of `job_run_columns` opens every day's
        // (a follower reads the run at every wake-up). Two statements: a
        // seq stored or expired between them moves `first_retained_seq`
        // as it would a moment later, which a follower handles alike.
        let select = format!("SELECT {} FROM job_runs WHERE id = $1", super::job_run_columns_with("0::bigint"));
        let row: Option<JobRunRow> = sqlx::query_as(&select).bind(sequence).fetch_optional(&self.reads).await?;
        let Some(mut run) = row.map(JobRun::try_from).transpose()? else {
            return Ok(None);
        };
        let first: Option<i64> = if sequence == SYSTEM_SEQUENCE {
            sqlx::query_scalar("SELECT min(seq) FROM logs WHERE type = 'system' AND job_run_id IS NULL")
                .fetch_one(&self.reads)
                .await?
        } else {
            match self.run_days.known(&self.pool, &[sequence]).await?.get(&sequence) {
                // The day written in, not bound, as `list_sql` does.
                Some(day) => {
                    let select = format!(
                        "SELECT min(seq) FROM logs WHERE job_run_id = $1 AND partition_day = DATE '{day}' \
                         AND type IN ('job', 'task')"
                    );
                    sqlx::query_scalar(&select).bind(sequence).fetch_one(&self.reads).await?
                }
                None => None,
            }
        };
        run.first_retained_seq = first.unwrap_or(0);
        Ok(Some(run))
    }

    async fn complete_job_run(&self, id: Uuid, completion: &Completion) -> Result<JobRun, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let changed = sqlx::query(COMPLETE_JOB_RUN)
            .bind(id)
            .bind(completion.completed_at)
            .bind(completion.outcome.as_str())
            .bind(&completion.summary)
            .bind(activity_at(completion.completed_at))
            .fetch_optional(&mut *transaction)
            .await?
            .is_some();
        let run = select_job_run(&mut transaction, id).await?;
        self.commit_and_notify(transaction, vec![id], Change::Other).await?;
        self.completed_runs.add(id);
        super::settle_completion(changed, run, completion)
    }

    async fn start_job_run(&self, id: Uuid, identity: &RunIdentity, now: DateTime<Utc>) -> Result<JobRun, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let changed = sqlx::query(START_JOB_RUN)
            .bind(id)
            .bind(&identity.name)
            .bind(serde_json::to_string(&identity.labels)?)
            .bind(now)
            .bind(activity_at(now))
            .fetch_optional(&mut *transaction)
            .await?
            .is_some();
        let run = select_job_run(&mut transaction, id).await?;
        transaction.commit().await?;
        super::settle_start(changed, run, identity)
    }

    async fn list_job_runs(&self, query: &RunQuery) -> Result<Vec<JobRun>, StoreError> {
        let statement = run_sql::job_runs_statement::<PostgresDialect>(query);
        let rows = self.read_planned(PLAN_ONCE, bind(sqlx::query(&statement.sql), statement.params)).await?;
        rows.iter().map(|row| JobRun::try_from(<JobRunRow as sqlx::FromRow<_>>::from_row(row)?)).collect()
    }

    async fn delete_job_run(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<(JobRun, u64)>, StoreError> {
        let mut transaction = self.pool.begin().await?;
        // The row lock orders this after any write still allocating seqs.
        let Some(run) = find_job_run(&mut *transaction, id, " FOR UPDATE").await? else {
            return Ok(None);
        };
        if run.completion.is_none() {
            return Err(StoreError::JobRunOpen(id));
        }
        let deleted = sqlx::query(
            "DELETE FROM logs WHERE job_run_id = $1 \
             AND partition_day = (SELECT partition_day FROM job_runs WHERE id = $1)",
        )
        .bind(id)
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        sqlx::query(&format!("UPDATE job_runs SET deleted_at = coalesce(deleted_at, $1), {NO_LOGS} WHERE id = $2"))
            .bind(now)
            .bind(id)
            .execute(&mut *transaction)
            .await?;
        let run = select_job_run(&mut transaction, id).await?;
        self.commit_and_notify(transaction, vec![id], Change::Other).await?;
        Ok(Some((run, deleted)))
    }

    async fn expire(&self, log_type: LogType, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        let mut transaction = self.pool.begin().await?;
        let deleted: Vec<(Uuid, String)> = sqlx::query_as(
            "DELETE FROM logs WHERE type = $1 AND id IN (SELECT id FROM logs WHERE type = $1 AND received_at < $2 \
             ORDER BY received_at LIMIT $3) RETURNING coalesce(job_run_id, $4), level",
        )
        .bind(log_type.as_str())
        .bind(before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(SYSTEM_SEQUENCE)
        .fetch_all(&mut *transaction)
        .await?;
        let gone = super::tally_gone(deleted.iter().map(|(run, level)| (*run, level.as_str(), 1)))?;
        subtract_gone(&mut transaction, &gone).await?;
        transaction.commit().await?;
        Ok(deleted.len() as u64)
    }

    async fn expire_partitions(
        &self,
        log_type: LogType,
        before: DateTime<Utc>,
    ) -> Result<EmptiedPartitions, StoreError> {
        partitions::empty_expired(&self.pool, log_type, before).await
    }

    fn partitions_created(&self) -> u64 {
        self.partitions_created.load(Ordering::Relaxed)
    }

    async fn oldest_log(&self, log_type: LogType) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(sqlx::query_scalar("SELECT min(received_at) FROM logs WHERE type = $1")
            .bind(log_type.as_str())
            .fetch_one(&self.reads)
            .await?)
    }

    async fn database_bytes(&self) -> Result<u64, StoreError> {
        let bytes: i64 =
            sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(&self.pool).await?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    async fn expiry_estimate(&self, log_type: LogType, before: DateTime<Utc>) -> Result<ExpiryEstimate, StoreError> {
        let (logs, bytes, oldest, newest): (i64, Option<i64>, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            sqlx::query_as(
                "SELECT count(*), sum(octet_length(message) + octet_length(source) + octet_length(metadata::text) \
                 + $3)::bigint, min(received_at), max(received_at) FROM logs WHERE type = $1 AND received_at < $2",
            )
            .bind(log_type.as_str())
            .bind(before)
            .bind(super::ROW_OVERHEAD_BYTES)
            .fetch_one(&self.pool)
            .await?;
        Ok(ExpiryEstimate { logs: logs as u64, bytes: bytes.unwrap_or(0) as u64, oldest, newest })
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let taken = sqlx::query(&format!(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) {} $4 RETURNING holder",
            super::TAKE_LEASE_UPSERT
        ))
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(taken.is_some())
    }

    async fn revoke_token(&self, token_id: Uuid, expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < now()").execute(&mut *transaction).await?;
        sqlx::query("INSERT INTO revoked_tokens (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
            .bind(token_id)
            .bind(expires_at)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn revoked_tokens(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM revoked_tokens WHERE expires_at >= $1")
            .bind(now)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn check_health(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM job_runs LIMIT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.listener.abort();
        self.upkeep.abort();
        self.reads.close().await;
        self.commit_reads.close().await;
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_runs_are_remembered_up_to_their_capacity() {
        let runs = CompletedRuns::default();
        let (first, open) = (Uuid::now_v7(), Uuid::now_v7());
        runs.add(first);
        assert_eq!(runs.among(&BTreeSet::from([first, open])), BTreeSet::from([first]));
        for _ in 1..CompletedRuns::CAPACITY {
            runs.add(Uuid::now_v7());
        }
        let last = Uuid::now_v7();
        runs.add(last);
        assert!(runs.among(&BTreeSet::from([first])).is_empty(), "a full set starts over");
        assert_eq!(runs.among(&BTreeSet::from([last])), BTreeSet::from([last]));
    }
}
