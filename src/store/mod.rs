//! Storage: one trait, one module per backend, each with its own SQL and its
//! own migrations folder.

mod availability;
mod error;
mod list_sql;
mod postgres;
mod run_sql;
mod sequence;
mod sqlite;
mod url;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::model::{
    CaseFolding, Completion, Grouping, JobRun, LevelCounts, Log, LogFilter, LogQuery, LogType, NewLog, Owner, Position,
    Receipt, RunIdentity, RunQuery, SYSTEM_SEQUENCE,
};

pub use availability::{Availability, Observed};
pub use error::StoreError;

/// The logs of one group (and one bucket) of a count, as the store counts
/// them: each grouping's value as text (JSON text for metadata keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountRow {
    pub group: Vec<Option<String>>,
    /// The bucket's index from the Unix epoch, when counted in buckets.
    pub bucket: Option<i64>,
    pub count: i64,
}

impl CountRow {
    /// Decodes a row of `list_sql::count_statement` with `groups` groupings.
    fn decode<R: sqlx::Row>(row: &R, groups: usize, bucketed: bool) -> Result<CountRow, StoreError>
    where
        for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        usize: sqlx::ColumnIndex<R>,
        for<'a> &'a str: sqlx::ColumnIndex<R>,
    {
        let group = (0..groups).map(|index| row.try_get(index)).collect::<Result<_, _>>()?;
        let bucket = if bucketed { row.try_get("bucket")? } else { None };
        Ok(CountRow { group, bucket, count: row.try_get("count")? })
    }
}

/// What an expiry would delete of one log type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiryEstimate {
    pub logs: u64,
    /// Approximately: the text of messages, sources and metadata, and
    /// `ROW_OVERHEAD_BYTES` a log for its other columns and index entries.
    pub bytes: u64,
    /// Received times of the oldest and newest of them.
    pub oldest: Option<DateTime<Utc>>,
    pub newest: Option<DateTime<Utc>>,
}

/// What emptying expired partitions did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EmptiedPartitions {
    pub partitions: u64,
    pub logs: u64,
}

/// A log's bytes besides its texts, in its row and its index entries,
/// roughly (ids, times, seq, level, stream; five or six index entries).
const ROW_OVERHEAD_BYTES: i64 = 300;

/// Logs gone, counted per run (the system sequence for system logs) and
/// level, from the (run, level, how many) of each group of them.
fn tally_gone<'a, Run: Ord>(
    gone: impl IntoIterator<Item = (Run, &'a str, i64)>,
) -> Result<BTreeMap<Run, LevelCounts>, StoreError> {
    let mut tally: BTreeMap<Run, LevelCounts> = BTreeMap::new();
    for (run, level, count) in gone {
        let level = level.parse().map_err(|e| StoreError::CorruptJobRun { what: format!("{e}") })?;
        tally.entry(run).or_default().add_count(level, count);
    }
    Ok(tally)
}

/// Takes an expiry's counts (the `gone` rows) off its runs' counts.
const SUBTRACT_GONE: &str = "trace_logs = trace_logs - gone.trace, debug_logs = debug_logs - gone.debug, \
     info_logs = info_logs - gone.info, warn_logs = warn_logs - gone.warn, error_logs = error_logs - gone.error, \
     fatal_logs = fatal_logs - gone.fatal";

/// Leases are held until a time; a holder renews its own.
const TAKE_LEASE_UPSERT: &str = "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
     expires_at = excluded.expires_at WHERE leases.holder = excluded.holder OR leases.expires_at < ";

/// Logs in commit order after a position (`LogStore::read_committed`).
#[derive(Debug)]
pub struct CommittedPage {
    pub logs: Vec<(Position, Log)>,
    /// Every matching log before this position is in `logs` or was before
    /// the position read after.
    pub read_through: Position,
    /// More is stored below the horizon: the page is full, or its read
    /// stopped at the end of its window.
    pub more: bool,
    /// Transactions were running when the read began: when they commit,
    /// their logs land at or past `read_through`, and a transaction of
    /// another program on the database commits without any wake-up. A
    /// follower that saw this reads again shortly.
    pub held_back: bool,
}

/// Where committed logs end now (`LogStore::commit_horizon`).
#[derive(Debug, Clone)]
pub struct Horizon {
    /// Every commit before this position has ended.
    pub position: Position,
    /// The commits from `position` on that had not begun (PostgreSQL:
    /// transaction ids from this one), or were still running (`running`):
    /// those between `position` and `next` but not running had already
    /// committed, and a follow from now skips them.
    pub next: i64,
    pub running: Vec<i64>,
}

impl Horizon {
    /// Whether commits were running when the horizon was taken (as
    /// `CommittedPage::held_back`).
    pub fn held_back(&self) -> bool {
        self.position.commit < self.next
    }

    /// Whether a log at `position` was committed before the horizon was
    /// taken.
    pub fn committed_before(&self, position: Position) -> bool {
        position.commit < self.next && !self.running.contains(&position.commit)
    }
}

/// One batch's answer within a group commit.
pub type BatchResult = Result<Vec<Receipt>, StoreError>;

/// What a group commit stored.
#[derive(Debug)]
pub struct Appended {
    /// Each batch's answer, in order.
    pub batches: Vec<BatchResult>,
    /// Where the group's new logs lie in the commit order, when the store
    /// knows at once: on SQLite, whose one writer numbers logs as it commits
    /// them. None on PostgreSQL, where a position is known to be readable
    /// only once every older transaction has ended.
    pub span: Option<CommitSpan>,
}

/// The positions a group's new logs took: in the order of their batches,
/// they are every log with a position in (`after`, `through`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSpan {
    pub after: Position,
    pub positions: Vec<Position>,
    pub through: Position,
}

/// Where logs live. Every implementation passes the same conformance suite
/// (`tests/api`).
#[async_trait::async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Stores independent batches in one transaction (group commit). Each
    /// batch is stored whole, in order, or not at all: one that writes to a
    /// completed job run is refused with `JobRunComplete` while the others
    /// are stored; a run completed by another process may instead fail the
    /// whole group with `JobRunComplete`, and the caller retries each batch
    /// alone. Each log gets the next seq of its job run (or of the system
    /// sequence), allocated inside the transaction so that seq order is
    /// commit order. Any other failure fails the whole group.
    async fn append_batches(&self, batches: &[&[NewLog]]) -> Result<Appended, StoreError>;

    /// Runs one page of a listing.
    async fn list(&self, query: &LogQuery) -> Result<Vec<Log>, StoreError>;

    /// Up to `limit` logs matching `filter` after `after` in the commit
    /// order of all logs, and how far the read is complete: a follow across
    /// runs reads this, and resumes from any replica.
    async fn read_committed(
        &self,
        filter: &LogFilter,
        after: Position,
        limit: usize,
    ) -> Result<CommittedPage, StoreError>;

    /// A position after every log committed so far: where a follow from now
    /// starts.
    async fn commit_horizon(&self) -> Result<Horizon, StoreError>;

    /// How text searches that ignore case fold letters.
    fn case_folding(&self) -> CaseFolding;

    /// Records where the commit order stands now: a mark that every log
    /// received from now on lies at or after (read before the time is
    /// taken, so that a commit between the two errs early).
    async fn mark_commit_order(&self) -> Result<(), StoreError>;

    /// The position of the last mark taken at or before `at`: every log
    /// received from `at` on lies at or after it. `None` if none is that
    /// old.
    async fn commit_mark(&self, at: DateTime<Utc>) -> Result<Option<Position>, StoreError>;

    /// Deletes the marks that the last mark at or before `before` makes
    /// needless; answers how many went.
    async fn prune_commit_marks(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// A name of this database, the same for every replica and stable
    /// across restarts, that follow cursors carry.
    async fn database_identity(&self) -> Result<String, StoreError>;

    /// The database's plan for one page of a listing (`EXPLAIN`), one step
    /// a line: which indexes it reads.
    async fn plan(&self, query: &LogQuery) -> Result<String, StoreError>;

    /// The database's plan for one page of a run listing, as `plan`.
    async fn plan_job_runs(&self, query: &RunQuery) -> Result<String, StoreError>;

    /// Counts the logs matching `filter` per distinct values of `group_by`,
    /// and per bucket of `bucket_micros` from the Unix epoch when given.
    async fn count(
        &self,
        filter: &LogFilter,
        group_by: &[Grouping],
        bucket_micros: Option<i64>,
    ) -> Result<Vec<CountRow>, StoreError>;

    /// Sends every log matching `query.filter` after `query.after`, in
    /// `query.order`, `query.limit` logs at a time, all read from one
    /// snapshot of the database (one read transaction), so that an export
    /// across runs is what the database held when it began. Each page is
    /// bounded by the read timeout; sending waits for the receiver, and a
    /// dropped receiver ends the export.
    async fn export(&self, query: LogQuery, chunks: tokio::sync::mpsc::Sender<Result<Vec<Log>, StoreError>>);

    /// The earliest and latest event times of the logs matching `filter`;
    /// `None` if none match.
    async fn time_range(&self, filter: &LogFilter) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, StoreError>;

    /// One log by id.
    async fn get(&self, id: Uuid) -> Result<Option<Log>, StoreError>;

    /// A sequence's state: a job run's, or the system logs' (key
    /// `SYSTEM_SEQUENCE`). `None` if it has neither logged nor completed.
    async fn job_run(&self, sequence: Uuid) -> Result<Option<JobRun>, StoreError>;

    /// Starts a job run under a name and labels, or gives them to a run its
    /// first log began. Starting again with the same name and labels returns
    /// the run unchanged; otherwise `JobRunStarted`. A run that is complete
    /// and was never started is `JobRunComplete`.
    async fn start_job_run(&self, id: Uuid, identity: &RunIdentity, now: DateTime<Utc>) -> Result<JobRun, StoreError>;

    /// One page of job runs (never the system sequence), most recent
    /// activity first.
    async fn list_job_runs(&self, query: &RunQuery) -> Result<Vec<JobRun>, StoreError>;

    /// Completes a job run, atomically with respect to writes: a write that
    /// commits first is part of the run, one that commits later is refused
    /// with `JobRunComplete`. Completing again with the same outcome and
    /// summary returns the run unchanged; otherwise `JobRunAlreadyComplete`.
    async fn complete_job_run(&self, id: Uuid, completion: &Completion) -> Result<JobRun, StoreError>;

    /// Deletes a completed run's logs and marks it deleted; answers the run
    /// and how many logs went. `JobRunOpen` if it is not complete, `None` if
    /// it does not exist.
    async fn delete_job_run(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<(JobRun, u64)>, StoreError>;

    /// Deletes up to `limit` of the oldest logs of `log_type` received before
    /// `before`, in one short transaction, taking them off their runs'
    /// counts by level; answers how many went (fewer than `limit`: none
    /// older are left).
    async fn expire(&self, log_type: LogType, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError>;

    /// Empties whole partitions of `log_type` whose every log was received
    /// before `before` (PostgreSQL's day partitions; SQLite has none),
    /// taking their logs off their runs' counts; what is left past the limit
    /// goes by `expire`.
    async fn expire_partitions(
        &self,
        log_type: LogType,
        before: DateTime<Utc>,
    ) -> Result<EmptiedPartitions, StoreError>;

    /// Day partitions this process created ahead of time (PostgreSQL).
    fn partitions_created(&self) -> u64;

    /// When the oldest stored log of `log_type` was received.
    async fn oldest_log(&self, log_type: LogType) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// The database's size on disk, in bytes.
    async fn database_bytes(&self) -> Result<u64, StoreError>;

    /// What `expire` would delete of `log_type` before `before`, all told.
    async fn expiry_estimate(&self, log_type: LogType, before: DateTime<Utc>) -> Result<ExpiryEstimate, StoreError>;

    /// Takes the lease `name` for `holder` until `until`, if it is free,
    /// lapsed by `now`, or already `holder`'s; answers whether it did.
    async fn take_lease(
        &self,
        name: &str,
        holder: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records that a job-run token is revoked until `expires_at` (again is
    /// harmless), and forgets revocations whose tokens have expired.
    async fn revoke_token(&self, token_id: Uuid, expires_at: DateTime<Utc>) -> Result<(), StoreError>;

    /// The revoked tokens that have not expired by `now`.
    async fn revoked_tokens(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError>;

    /// Succeeds while the database answers and holds logwell's schema.
    async fn check_health(&self) -> Result<(), StoreError>;

    /// Closes every connection, waiting for those in use to be returned.
    async fn close(&self);
}

/// Logs one read in commit order passes at most, matching or not: a narrow
/// filter catching up from far back reads history a window at a time,
/// each read short, rather than in one scan to the end.
const COMMITTED_WINDOW: usize = 16_384;

/// Whether a read in commit order with `filter` needs a window: one with no
/// filter returns every row it passes, so its limit bounds it already.
fn needs_window(filter: &LogFilter) -> bool {
    filter != &LogFilter::default()
}

/// The page of `logs` (at `positions`) that a read of at most `limit` after
/// `after` and up to `through` (at most the horizon) found: complete
/// through its last log if full, else through `through`.
fn committed_page(
    logs: Vec<Log>,
    positions: Vec<Position>,
    after: Position,
    limit: usize,
    through: Position,
    horizon: Horizon,
) -> CommittedPage {
    let logs: Vec<(Position, Log)> = positions.into_iter().zip(logs).collect();
    let full = logs.len() == limit;
    let read_through = match logs.last() {
        Some((last, _)) if full => *last,
        _ => through.max(after),
    };
    CommittedPage { logs, read_through, more: full || through < horizon.position, held_back: horizon.held_back() }
}

/// The page after `logs` (the page `query` read), or `None` once a page
/// came back short: the paging of `LogStore::export` in both backends.
fn next_page(mut query: LogQuery, logs: &[Log]) -> Option<LogQuery> {
    let last = logs.last().filter(|_| logs.len() == query.limit)?;
    query.after = Some(crate::model::Cursor::of(last, query.filter.ordering()));
    Some(query)
}

/// How to connect, whichever the backend.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Connections per pool, at most.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing with
    /// UNAVAILABLE.
    pub acquire_timeout: Duration,
    /// Top-level metadata keys to index (SQLite; PostgreSQL's GIN index
    /// serves every key).
    pub metadata_index_keys: Vec<String>,
    /// How long a read may run before it is stopped with `ReadTimedOut`.
    pub read_timeout: Duration,
    /// Whether substring searches get an index of their own (pg_trgm on
    /// PostgreSQL, FTS5 trigram on SQLite), at a cost to every write.
    pub text_index: bool,
    /// Whether retention's index (each type's oldest logs) is kept: when a
    /// retention limit is set. It costs every write.
    pub expiry_index: bool,
}

pub use url::{check_url, redacted};

/// Told of changes other processes made to the database (on PostgreSQL,
/// other replicas' notifications), so that whoever follows those sequences
/// reads storage again. The store knows nothing of who listens; this
/// process's own changes are published by whoever made them.
pub trait ChangesElsewhere: Send + Sync {
    /// Another process changed these sequences in a way other than by
    /// appending logs (a completion, a deletion).
    fn changed(&self, sequences: Vec<Uuid>);
    /// Another process appended logs to these sequences (`None`: to some,
    /// too many to name) in the transaction `commit`: a read in commit
    /// order past that commit (`Position::commit`) shows them.
    fn appended(&self, sequences: Option<Vec<Uuid>>, commit: i64);
    /// Changes may have been missed (the listening connection dropped):
    /// every sequence may have changed.
    fn maybe_missed(&self);
}

/// Opens the database named by `url` (`sqlite:…` or `postgres://…`) and
/// applies pending migrations. The store tells `elsewhere` of other
/// processes' commits (a SQLite file has one writing process: none).
pub async fn connect(
    url: &str,
    options: &ConnectOptions,
    elsewhere: Arc<dyn ChangesElsewhere>,
) -> Result<Arc<dyn LogStore>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::open(url, options, elsewhere).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redacted(url)))
    }
}

/// A stored row with each column in its domain type, before the model
/// checks that the columns fit together.
#[derive(Debug, sqlx::FromRow)]
struct StoredRow {
    id: Uuid,
    #[sqlx(rename = "type")]
    log_type: String,
    job_run_id: Option<Uuid>,
    task_run_id: Option<Uuid>,
    seq: i64,
    event_time: DateTime<Utc>,
    received_at: DateTime<Utc>,
    level: String,
    stream: String,
    source: String,
    message: String,
    metadata: Value,
}

impl TryFrom<StoredRow> for Log {
    type Error = StoreError;

    fn try_from(row: StoredRow) -> Result<Log, StoreError> {
        let corrupt = |what: String| StoreError::CorruptRow { id: row.id, what };
        let owner = match (row.log_type.parse::<LogType>(), row.job_run_id, row.task_run_id) {
            (Ok(LogType::System), None, None) => Owner::System,
            (Ok(LogType::Job), Some(job_run_id), None) => Owner::Job { job_run_id },
            (Ok(LogType::Task), Some(job_run_id), Some(task_run_id)) => Owner::Task { job_run_id, task_run_id },
            (log_type, _, _) => {
                return Err(corrupt(format!("type {log_type:?} does not fit its ids")));
            }
        };
        let Value::Object(metadata) = row.metadata else {
            return Err(corrupt("metadata is not a JSON object".into()));
        };
        Ok(Log {
            id: row.id,
            owner,
            seq: row.seq,
            time: row.event_time,
            received_at: row.received_at,
            level: row.level.parse().map_err(|e| corrupt(format!("{e}")))?,
            stream: row.stream.parse().map_err(|e| corrupt(format!("{e}")))?,
            source: row.source,
            message: row.message,
            metadata,
        })
    }
}

/// The owner a stored row's type and ids describe.
fn decode_owner(
    id: Uuid,
    log_type: &str,
    job_run_id: Option<Uuid>,
    task_run_id: Option<Uuid>,
) -> Result<Owner, StoreError> {
    match (log_type.parse::<LogType>(), job_run_id, task_run_id) {
        (Ok(LogType::System), None, None) => Ok(Owner::System),
        (Ok(LogType::Job), Some(job_run_id), None) => Ok(Owner::Job { job_run_id }),
        (Ok(LogType::Task), Some(job_run_id), Some(task_run_id)) => Ok(Owner::Task { job_run_id, task_run_id }),
        (log_type, _, _) => Err(StoreError::CorruptRow { id, what: format!("type {log_type:?} does not fit its ids") }),
    }
}

/// The columns that identify a stored log for a resend, in domain types.
#[derive(Debug, sqlx::FromRow)]
struct StoredIdRow {
    id: Uuid,
    seq: i64,
    received_at: DateTime<Utc>,
    #[sqlx(rename = "type")]
    log_type: String,
    job_run_id: Option<Uuid>,
    task_run_id: Option<Uuid>,
}

impl TryFrom<StoredIdRow> for sequence::StoredId {
    type Error = StoreError;

    fn try_from(row: StoredIdRow) -> Result<Self, StoreError> {
        Ok(sequence::StoredId {
            receipt: Receipt { id: row.id, seq: row.seq, received_at: row.received_at, duplicate: true },
            owner: decode_owner(row.id, &row.log_type, row.job_run_id, row.task_run_id)?,
        })
    }
}

/// Selects what identifies stored logs, by id.
const SELECT_STORED_IDS: &str = "SELECT id, seq, received_at, type, job_run_id, task_run_id FROM logs WHERE id IN ";

/// The columns of `job_runs` every read of runs selects, in `JobRunRow`
/// order, and the seq of the run's earliest log still stored (an index
/// lookup: `min` of the run's seq index, or of the system logs' for the
/// system sequence).
fn job_run_columns<D: list_sql::Dialect>() -> String {
    job_run_columns_with(&format!(
        "coalesce(CASE WHEN job_runs.id = '{SYSTEM_SEQUENCE}' THEN (SELECT min(seq) FROM logs WHERE type = 'system' \
         AND job_run_id IS NULL) ELSE (SELECT min(seq) FROM logs WHERE {}) END, 0)",
        D::LOGS_OF_JOB_RUNS_ROW
    ))
}

/// The columns of `job_runs` every read of runs selects, with
/// `first_retained_seq` as given.
fn job_run_columns_with(first_retained_seq: &str) -> String {
    format!(
        "id, next_seq - 1 AS last_seq, first_log_time, last_log_time, completed_at, outcome, summary, deleted_at, \
         name, labels, started_at, trace_logs, debug_logs, info_logs, warn_logs, error_logs, fatal_logs, active_at, \
         {first_retained_seq} AS first_retained_seq"
    )
}

/// Sets a run's counts per level to none, as its logs are deleted.
const NO_LOGS: &str = "trace_logs = 0, debug_logs = 0, info_logs = 0, warn_logs = 0, error_logs = 0, fatal_logs = 0";

/// A `job_runs` row with each column in its domain type.
#[derive(Debug, sqlx::FromRow)]
struct JobRunRow {
    id: Uuid,
    last_seq: i64,
    first_log_time: Option<DateTime<Utc>>,
    last_log_time: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
    summary: String,
    deleted_at: Option<DateTime<Utc>>,
    name: String,
    labels: Value,
    started_at: Option<DateTime<Utc>>,
    trace_logs: i64,
    debug_logs: i64,
    info_logs: i64,
    warn_logs: i64,
    error_logs: i64,
    fatal_logs: i64,
    active_at: DateTime<Utc>,
    first_retained_seq: i64,
}

impl TryFrom<JobRunRow> for JobRun {
    type Error = StoreError;

    fn try_from(row: JobRunRow) -> Result<JobRun, StoreError> {
        let completion = match (row.completed_at, row.outcome) {
            (Some(completed_at), Some(outcome)) => Some(Completion {
                outcome: outcome.parse().map_err(|e| StoreError::CorruptJobRun { what: format!("{e}") })?,
                summary: row.summary,
                completed_at,
            }),
            (None, None) => None,
            _ => return Err(StoreError::CorruptJobRun { what: format!("run {} is half complete", row.id) }),
        };
        let labels = serde_json::from_value(row.labels)
            .map_err(|e| StoreError::CorruptJobRun { what: format!("run {}'s labels: {e}", row.id) })?;
        Ok(JobRun {
            id: row.id,
            last_seq: row.last_seq,
            first_log_time: row.first_log_time,
            last_log_time: row.last_log_time,
            completion,
            deleted_at: row.deleted_at,
            identity: RunIdentity { name: row.name, labels },
            started_at: row.started_at,
            level_counts: LevelCounts([
                row.trace_logs,
                row.debug_logs,
                row.info_logs,
                row.warn_logs,
                row.error_logs,
                row.fatal_logs,
            ]),
            last_activity: row.active_at,
            first_retained_seq: row.first_retained_seq,
        })
    }
}

/// The answer to a start, given whether it changed the row and the run as
/// it is now.
fn settle_start(changed: bool, run: JobRun, identity: &RunIdentity) -> Result<JobRun, StoreError> {
    match run.started_at {
        _ if changed => Ok(run),
        Some(_) if run.identity == *identity => Ok(run),
        Some(_) => Err(StoreError::JobRunStarted(Box::new(run))),
        None => Err(StoreError::JobRunComplete(run.id)),
    }
}

/// The answer to a completion, given whether it changed the row and the run
/// as it is now.
fn settle_completion(changed: bool, run: JobRun, completion: &Completion) -> Result<JobRun, StoreError> {
    if changed || run.completed_as(completion) {
        Ok(run)
    } else {
        Err(StoreError::JobRunAlreadyComplete(Box::new(run)))
    }
}
