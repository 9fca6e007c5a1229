//! The embedded default: one SQLite file in WAL mode. One writer connection
//! (SQLite has one writer at a time anyway, and a single connection never
//! waits on its own lock) and a pool of readers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteArguments, SqliteAutoVacuum, SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Executor, QueryBuilder, Sqlite};
use uuid::Uuid;

use super::list_sql::{self, LOG_COLUMNS, Param};
use super::{
    Appended, COMMITTED_WINDOW, CommitSpan, CommittedPage, CountRow, EmptiedPartitions, ExpiryEstimate, Horizon,
    JobRunRow, LogStore, NO_LOGS, SELECT_STORED_IDS, StoreError, StoredIdRow, StoredRow, job_run_columns, run_sql,
    sequence,
};
use crate::model::{
    CaseFolding, Completion, Grouping, JobRun, Log, LogFilter, LogQuery, LogType, NewLog, Position, RunIdentity,
    RunQuery, SYSTEM_SEQUENCE, activity_at,
};

mod checkpoint;
pub(super) mod dialect;
mod metadata_index;
mod optional_index;
mod writer;

use dialect::SqliteDialect;
use writer::Writer;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

const SQLITE_BUSY: &str = "5";

/// Free pages an expiry batch gives back to the file system, at most (4 MiB
/// of 4 KiB pages): more than a batch of logs frees.
const RECLAIMED_PAGES_PER_BATCH: i64 = 1_024;

/// Rows per INSERT statement: 13 parameters each, well under SQLite's limit
/// of 32,766 parameters per statement.
const ROWS_PER_INSERT: usize = 500;

/// Reserves seqs for the sequences of a write in one statement (the rows of
/// VALUES follow): for each, `count` seqs (bound as `count + 1`), widening
/// its time range, counting its logs per level and moving its activity
/// (which changes once a second, so the activity index changes no more
/// often). Returns each sequence's next free seq (its first reserved seq is
/// that minus its count) and whether the run was already complete.
const ALLOCATE_SEQS: &str = "INSERT INTO job_runs (id, next_seq, first_log_time, last_log_time, trace_logs, \
     debug_logs, info_logs, warn_logs, error_logs, fatal_logs, active_at) ";
const ALLOCATE_SEQS_UPSERT: &str = " ON CONFLICT (id) DO UPDATE SET next_seq = job_runs.next_seq + excluded.next_seq - 1, \
     first_log_time = coalesce(min(job_runs.first_log_time, excluded.first_log_time), excluded.first_log_time), \
     last_log_time = coalesce(max(job_runs.last_log_time, excluded.last_log_time), excluded.last_log_time), \
     trace_logs = job_runs.trace_logs + excluded.trace_logs, debug_logs = job_runs.debug_logs + excluded.debug_logs, \
     info_logs = job_runs.info_logs + excluded.info_logs, warn_logs = job_runs.warn_logs + excluded.warn_logs, \
     error_logs = job_runs.error_logs + excluded.error_logs, fatal_logs = job_runs.fatal_logs + excluded.fatal_logs, \
     active_at = max(job_runs.active_at, excluded.active_at) \
     RETURNING id, next_seq, completed_at IS NOT NULL, key";

/// Logs as the writer inserts them: the columns every read selects, and
/// their job run's key.
const INSERT_LOG: &str = "INSERT INTO logs (id, type, job_run_id, run_key, task_run_id, seq, event_time, \
     received_at, level, stream, source, message, metadata, commit_position) ";

/// Takes `?1` commit positions; answers the first. The writing transaction
/// holds SQLite's one write lock, so positions follow commit order.
const TAKE_COMMIT_POSITIONS: &str = "UPDATE commit_order SET next = next + ?1 RETURNING next - ?1";

/// Every log committed so far has a commit position below this.
const COMMIT_HORIZON: &str = "SELECT next FROM commit_order";

/// Deletes the marks before the last one at or before a time.
const PRUNE_COMMIT_MARKS: &str =
    "DELETE FROM commit_marks WHERE at < (SELECT max(at) FROM commit_marks WHERE at <= ?1)";

/// Completes a run unless it already is; returns a row only if it changed.
const COMPLETE_JOB_RUN: &str = "INSERT INTO job_runs (id, next_seq, completed_at, outcome, summary, active_at) \
     VALUES (?1, 1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (id) DO UPDATE SET completed_at = excluded.completed_at, outcome = excluded.outcome, \
     summary = excluded.summary, active_at = max(job_runs.active_at, excluded.active_at) \
     WHERE job_runs.completed_at IS NULL \
     RETURNING id";

/// Starts a run, or names one its first log began, unless it was started
/// or completed already; returns a row only if it changed.
const START_JOB_RUN: &str = "INSERT INTO job_runs (id, next_seq, name, labels, started_at, active_at) \
     VALUES (?1, 1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, labels = excluded.labels, \
     started_at = excluded.started_at, active_at = max(job_runs.active_at, excluded.active_at) \
     WHERE job_runs.started_at IS NULL AND job_runs.completed_at IS NULL \
     RETURNING id";

pub(super) struct SqliteStore {
    writer: Writer,
    reader: SqlitePool,
    path: PathBuf,
    checkpointer: tokio::task::AbortHandle,
    read_timeout: Duration,
    /// Whether the opt-in text index (`optional_index`) exists.
    text_index: bool,
}

impl SqliteStore {
    pub(super) async fn open(url: &str, options: &super::ConnectOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let path = connect.get_filename().to_path_buf();
        if path == Path::new(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::InMemorySqlite);
        }
        if let Some(folder) = path.parent().filter(|folder| !folder.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)
                .map_err(|source| StoreError::DataFolder { path: folder.display().to_string(), source })?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(
                connect
                    .clone()
                    // Lets retention give freed pages back to the file
                    // system (`expire`). It takes effect only in a file that
                    // has no tables yet: older files keep their free pages
                    // for new logs.
                    .auto_vacuum(SqliteAutoVacuum::Incremental)
                    .pragma("wal_autocheckpoint", checkpoint::WRITER_BACKSTOP_PAGES)
                    // A multi-row INSERT keeps a statement journal, by default
                    // in a temporary file created and deleted for every
                    // statement. Readers keep files: a GROUP BY over millions
                    // of logs sorts through temporary storage, which in
                    // memory grew the server by hundreds of MiB.
                    .pragma("temp_store", "memory"),
            )
            .await?;
        enable_wal(&writer).await?;
        migrate(&writer).await?;
        metadata_index::reconcile(&mut *writer.acquire().await?, &options.metadata_index_keys).await?;
        optional_index::reconcile_text(&mut *writer.acquire().await?, options.text_index).await?;
        optional_index::reconcile_expiry(&mut *writer.acquire().await?, options.expiry_index).await?;
        // Every reader is opened now and kept. A SQLite connection is a
        // thread, which takes the scheduling of the thread that opens it:
        // one opened for a follow would serve every later read, the commit
        // tail's and queries', at the follows' lower priority.
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .min_connections(options.max_connections)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        let checkpointer = tokio::spawn(checkpoint::checkpoint_forever(connect, path.clone())).abort_handle();
        Ok(SqliteStore {
            writer: Writer::new(writer),
            reader,
            path,
            checkpointer,
            read_timeout: options.read_timeout,
            text_index: options.text_index,
        })
    }
}

/// Switches the file to WAL mode (a lasting property of the file). The switch
/// takes a lock that SQLite's busy timeout does not wait for, so a process
/// that starts beside another one retries for a while instead of failing.
async fn enable_wal(pool: &SqlitePool) -> Result<(), StoreError> {
    const ATTEMPTS: u32 = 250;
    for _ in 1..ATTEMPTS {
        match sqlx::query_scalar::<_, String>("PRAGMA journal_mode = WAL").fetch_one(pool).await {
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some(SQLITE_BUSY) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(StoreError::Migrate(format!("cannot switch to WAL: the journal mode stays {mode}")));
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(StoreError::Unavailable(format!("the data file stayed locked for {} seconds", ATTEMPTS / 50)))
}

/// Applies pending migrations inside one `BEGIN IMMEDIATE` transaction. The
/// write lock is taken first, so of two processes starting on a fresh file
/// one migrates while the other waits and then finds nothing left to do
/// (sqlx's own migrator takes no lock on SQLite).
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let mut connection = pool.acquire().await?;
    connection.execute("BEGIN IMMEDIATE").await?;
    match apply_pending(&mut connection).await {
        Ok(()) => {
            connection.execute("COMMIT").await?;
            Ok(())
        }
        Err(error) => {
            connection.execute("ROLLBACK").await?;
            Err(error)
        }
    }
}

async fn apply_pending(connection: &mut SqliteConnection) -> Result<(), StoreError> {
    connection
        .execute(
            "CREATE TABLE IF NOT EXISTS logwell_migrations (
                version INTEGER PRIMARY KEY NOT NULL,
                description TEXT NOT NULL,
                checksum BLOB NOT NULL,
                applied_at INTEGER NOT NULL
            ) STRICT",
        )
        .await?;
    let applied: BTreeMap<i64, Vec<u8>> = sqlx::query_as("SELECT version, checksum FROM logwell_migrations")
        .fetch_all(&mut *connection)
        .await?
        .into_iter()
        .collect();
    for migration in MIGRATIONS.iter() {
        match applied.get(&migration.version) {
            Some(checksum) if checksum[..] == migration.checksum[..] => continue,
            Some(_) => {
                return Err(StoreError::Migrate(format!(
                    "migration {} ({}) changed after it was applied",
                    migration.version, migration.description
                )));
            }
            None => {}
        }
        sqlx::raw_sql(&migration.sql).execute(&mut *connection).await?;
        sqlx::query("INSERT INTO logwell_migrations (version, description, checksum, applied_at) VALUES (?, ?, ?, ?)")
            .bind(migration.version)
            .bind(&*migration.description)
            .bind(&*migration.checksum)
            .bind(Utc::now().timestamp_micros())
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// A row as SQLite stores it: ids as text, times as microseconds, metadata
/// as JSON text.
#[derive(sqlx::FromRow)]
struct SqliteRow {
    id: String,
    #[sqlx(rename = "type")]
    log_type: String,
    job_run_id: Option<String>,
    task_run_id: Option<String>,
    seq: i64,
    event_time: i64,
    received_at: i64,
    level: String,
    stream: String,
    source: String,
    message: String,
    metadata: String,
}

impl TryFrom<SqliteRow> for Log {
    type Error = StoreError;

    fn try_from(row: SqliteRow) -> Result<Log, StoreError> {
        let id = Uuid::try_parse(&row.id)
            .map_err(|_| StoreError::CorruptRow { id: Uuid::nil(), what: format!("id {:?} is not a UUID", row.id) })?;
        let corrupt = |what: String| StoreError::CorruptRow { id, what };
        let uuid = |text: Option<String>| {
            text.map(|text| Uuid::try_parse(&text).map_err(|_| corrupt(format!("{text:?} is not a UUID")))).transpose()
        };
        let time = |micros: i64| {
            DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt(format!("time {micros} is out of range")))
        };
        Log::try_from(StoredRow {
            id,
            log_type: row.log_type,
            job_run_id: uuid(row.job_run_id)?,
            task_run_id: uuid(row.task_run_id)?,
            seq: row.seq,
            event_time: time(row.event_time)?,
            received_at: time(row.received_at)?,
            level: row.level,
            stream: row.stream,
            source: row.source,
            message: row.message,
            metadata: serde_json::from_str(&row.metadata).map_err(|e| corrupt(format!("metadata: {e}")))?,
        })
    }
}

impl SqliteStore {
    /// Runs a read on a reader connection, interrupted once it runs past
    /// `read_timeout` (SQLite has no statement timeout; its progress handler
    /// is asked every few thousand steps whether to go on).
    async fn read<'q>(
        &self,
        select: sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>,
    ) -> Result<Vec<sqlx::sqlite::SqliteRow>, StoreError> {
        let mut connection = self.reader.acquire().await?;
        let (rows, handler_removed) = self.bounded(&mut connection, select).await;
        if !handler_removed {
            // A connection whose handler stayed would stop every later read:
            // close it rather than return it to the pool.
            drop(connection.detach());
        }
        rows
    }

    /// Runs `select` on `connection`, interrupted once it runs past
    /// `read_timeout`; answers the rows, and whether the progress handler
    /// came off again.
    async fn bounded<'q>(
        &self,
        connection: &mut SqliteConnection,
        select: sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>,
    ) -> (Result<Vec<sqlx::sqlite::SqliteRow>, StoreError>, bool) {
        const STEPS_BETWEEN_CHECKS: i32 = 10_000;
        let deadline = std::time::Instant::now() + self.read_timeout;
        match connection.lock_handle().await {
            Ok(mut handle) => {
                handle.set_progress_handler(STEPS_BETWEEN_CHECKS, move || std::time::Instant::now() < deadline)
            }
            Err(error) => return (Err(error.into()), true),
        }
        let rows = select.fetch_all(&mut *connection).await;
        let removed = match connection.lock_handle().await {
            Ok(mut handle) => {
                handle.remove_progress_handler();
                true
            }
            Err(_) => false,
        };
        (rows.map_err(|error| StoreError::of_read(error, self.read_timeout)), removed)
    }

    /// What narrows this store's reads: its text index, if built.
    fn read_scope(&self) -> list_sql::ReadScope<'static> {
        list_sql::ReadScope { text_index: self.text_index, ..list_sql::ReadScope::default() }
    }

    /// The plan of `statement` (`EXPLAIN QUERY PLAN`), one step a line.
    async fn explain(&self, statement: list_sql::Statement) -> Result<String, StoreError> {
        let explain = format!("EXPLAIN QUERY PLAN {}", statement.sql);
        let steps = self.read(bind(sqlx::query(&explain), statement.params)).await?;
        let details: Vec<String> =
            steps.iter().map(|step| sqlx::Row::try_get(step, "detail")).collect::<Result<_, _>>()?;
        Ok(details.join("\n"))
    }

    /// The pages of `LogStore::export`, inside the read transaction that
    /// `connection` holds; false if the connection must not go back to the
    /// pool.
    async fn export_pages(
        &self,
        connection: &mut SqliteConnection,
        query: LogQuery,
        chunks: &tokio::sync::mpsc::Sender<Result<Vec<Log>, StoreError>>,
    ) -> bool {
        let mut next = Some(query);
        while let Some(query) = next.take() {
            let statement = list_sql::list_statement::<SqliteDialect>(&query, self.read_scope());
            let (rows, reusable) = self.bounded(connection, bind(sqlx::query(&statement.sql), statement.params)).await;
            let page = rows.and_then(|rows| logs(&rows));
            let logs: Vec<Log> = match page {
                Ok(logs) => logs,
                Err(error) => {
                    let _ = chunks.send(Err(error)).await;
                    return reusable;
                }
            };
            next = super::next_page(query, &logs);
            if !reusable || logs.is_empty() || chunks.send(Ok(logs)).await.is_err() {
                return reusable;
            }
        }
        true
    }
}

/// Rows of a listing (`LOG_COLUMNS`) as logs.
fn logs(rows: &[sqlx::sqlite::SqliteRow]) -> Result<Vec<Log>, StoreError> {
    rows.iter().map(|row| Log::try_from(<SqliteRow as sqlx::FromRow<_>>::from_row(row)?)).collect()
}

/// The positions in the commit order of `rows`.
fn positions(rows: &[sqlx::sqlite::SqliteRow]) -> Result<Vec<Position>, StoreError> {
    let position = |row| {
        Ok::<_, sqlx::Error>(Position {
            commit: sqlx::Row::try_get(row, "log_commit")?,
            index: sqlx::Row::try_get(row, "log_commit_index")?,
        })
    };
    Ok(rows.iter().map(position).collect::<Result<_, _>>()?)
}

/// `select` with `params` bound in SQLite's column types.
fn bind<'q>(
    mut select: sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>,
    params: Vec<Param>,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    for param in params {
        select = match param {
            Param::Id(id) => select.bind(id.to_string()),
            Param::Int(value) => select.bind(value),
            Param::Real(value) => select.bind(value),
            Param::Text(text) => select.bind(text),
            Param::Time(time) => select.bind(time.timestamp_micros()),
        };
    }
    select
}

/// A run as the writer's transaction sees it, if it exists.
async fn find_job_run(connection: &mut SqliteConnection, id: Uuid) -> Result<Option<JobRun>, StoreError> {
    let row: Option<SqliteJobRunRow> =
        sqlx::query_as(&format!("SELECT {} FROM job_runs WHERE id = ?", job_run_columns::<SqliteDialect>()))
            .bind(id.to_string())
            .fetch_optional(connection)
            .await?;
    row.map(JobRun::try_from).transpose()
}

/// A run the writer's transaction has just written.
async fn select_job_run(connection: &mut SqliteConnection, id: Uuid) -> Result<JobRun, StoreError> {
    find_job_run(connection, id).await?.ok_or(StoreError::Internal("a run just written is gone"))
}

/// The logs already stored under any of `ids`.
async fn stored_ids(
    connection: &mut SqliteConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, sequence::StoredId>, StoreError> {
    let mut stored = HashMap::new();
    // Within SQLite's limit of parameters per statement.
    for chunk in ids.chunks(ROWS_PER_INSERT * 12) {
        let mut select = QueryBuilder::<Sqlite>::new(format!("{SELECT_STORED_IDS} ("));
        let mut separated = select.separated(", ");
        for id in chunk {
            separated.push_bind(id.to_string());
        }
        select.push(")");
        let rows: Vec<SqliteStoredIdRow> = select.build_query_as().fetch_all(&mut *connection).await?;
        for row in rows {
            let corrupt = |what: String| StoreError::CorruptRow { id: Uuid::nil(), what };
            let uuid = |text: &str| Uuid::try_parse(text).map_err(|_| corrupt(format!("{text:?} is not a UUID")));
            let row = StoredIdRow {
                id: uuid(&row.id)?,
                seq: row.seq,
                received_at: DateTime::from_timestamp_micros(row.received_at)
                    .ok_or_else(|| corrupt(format!("time {}", row.received_at)))?,
                log_type: row.log_type,
                job_run_id: row.job_run_id.as_deref().map(uuid).transpose()?,
                task_run_id: row.task_run_id.as_deref().map(uuid).transpose()?,
            };
            let known = sequence::StoredId::try_from(row)?;
            stored.insert(known.receipt.id, known);
        }
    }
    Ok(stored)
}

/// What identifies a stored log, as SQLite stores it.
#[derive(sqlx::FromRow)]
struct SqliteStoredIdRow {
    id: String,
    seq: i64,
    received_at: i64,
    #[sqlx(rename = "type")]
    log_type: String,
    job_run_id: Option<String>,
    task_run_id: Option<String>,
}

/// A `job_runs` row as SQLite stores it.
#[derive(sqlx::FromRow)]
struct SqliteJobRunRow {
    id: String,
    last_seq: i64,
    first_log_time: Option<i64>,
    last_log_time: Option<i64>,
    completed_at: Option<i64>,
    outcome: Option<String>,
    summary: String,
    deleted_at: Option<i64>,
    name: String,
    labels: String,
    started_at: Option<i64>,
    trace_logs: i64,
    debug_logs: i64,
    info_logs: i64,
    warn_logs: i64,
    error_logs: i64,
    fatal_logs: i64,
    active_at: i64,
    first_retained_seq: i64,
}

impl TryFrom<SqliteJobRunRow> for JobRun {
    type Error = StoreError;

    fn try_from(row: SqliteJobRunRow) -> Result<JobRun, StoreError> {
        let corrupt = |what: String| StoreError::CorruptJobRun { what };
        let time = |micros: Option<i64>| {
            micros
                .map(|micros| DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt(format!("time {micros}"))))
                .transpose()
        };
        JobRun::try_from(JobRunRow {
            id: Uuid::try_parse(&row.id).map_err(|_| corrupt(format!("id {:?} is not a UUID", row.id)))?,
            last_seq: row.last_seq,
            first_log_time: time(row.first_log_time)?,
            last_log_time: time(row.last_log_time)?,
            completed_at: time(row.completed_at)?,
            outcome: row.outcome,
            summary: row.summary,
            deleted_at: time(row.deleted_at)?,
            name: row.name,
            labels: serde_json::from_str(&row.labels).map_err(|e| corrupt(format!("labels: {e}")))?,
            started_at: time(row.started_at)?,
            trace_logs: row.trace_logs,
            debug_logs: row.debug_logs,
            info_logs: row.info_logs,
            warn_logs: row.warn_logs,
            error_logs: row.error_logs,
            fatal_logs: row.fatal_logs,
            active_at: time(Some(row.active_at))?.unwrap_or_default(),
            first_retained_seq: row.first_retained_seq,
        })
    }
}

#[async_trait::async_trait]
impl LogStore for SqliteStore {
    async fn append_batches(&self, batches: &[&[NewLog]]) -> Result<Appended, StoreError> {
        let (logs, seqs, plans, first_position) = self
            .writer
            .transaction(async |transaction| {
                let sequences = sequence::sequences(batches);
                let mut completed =
                    QueryBuilder::<Sqlite>::new("SELECT id FROM job_runs WHERE completed_at IS NOT NULL AND id IN (");
                let mut ids = completed.separated(", ");
                for sequence in &sequences {
                    ids.push_bind(sequence.to_string());
                }
                completed.push(")");
                let completed: BTreeSet<Uuid> = completed
                    .build_query_scalar::<String>()
                    .fetch_all(&mut *transaction)
                    .await?
                    .iter()
                    .filter_map(|id| Uuid::try_parse(id).ok())
                    .collect();
                let stored = stored_ids(transaction, &sequence::client_ids(batches)).await?;
                let (logs, plans) = sequence::plan(batches, &completed, &stored);
                let metadata =
                    logs.iter().map(|log| serde_json::to_string(&log.metadata)).collect::<Result<Vec<_>, _>>()?;
                let demand = sequence::demand(&logs);
                let mut allocated = Vec::with_capacity(demand.len());
                let mut run_keys = HashMap::with_capacity(demand.len());
                let wanted: Vec<_> = demand.iter().collect();
                for chunk in wanted.chunks(ROWS_PER_INSERT) {
                    let mut allocate = QueryBuilder::<Sqlite>::new(ALLOCATE_SEQS);
                    allocate.push_values(chunk, |mut row, (sequence, wanted)| {
                        row.push_bind(sequence.to_string())
                            .push_bind(wanted.count + 1)
                            .push_bind(wanted.earliest.timestamp_micros())
                            .push_bind(wanted.latest.timestamp_micros());
                        for count in wanted.levels.0 {
                            row.push_bind(count);
                        }
                        row.push_bind(wanted.active_at().timestamp_micros());
                    });
                    allocate.push(ALLOCATE_SEQS_UPSERT);
                    let rows: Vec<(String, i64, bool, i64)> =
                        allocate.build_query_as().fetch_all(&mut *transaction).await?;
                    for (id, next, completed, key) in rows {
                        let id = Uuid::try_parse(&id)
                            .map_err(|_| StoreError::CorruptJobRun { what: format!("id {id:?} is not a UUID") })?;
                        allocated.push((id, next, completed));
                        run_keys.insert(id, key);
                    }
                }
                let seqs = sequence::slots(&logs, &demand).seqs(&sequence::firsts(&demand, allocated)?)?;
                let first_position: i64 = sqlx::query_scalar(TAKE_COMMIT_POSITIONS)
                    .bind(i64::try_from(logs.len()).unwrap_or(i64::MAX))
                    .fetch_one(&mut *transaction)
                    .await?;
                let rows: Vec<_> = logs.iter().zip(&seqs).zip(&metadata).zip(first_position..).collect();
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    let mut insert = QueryBuilder::<Sqlite>::new(INSERT_LOG);
                    insert.push_values(chunk, |mut row, (((log, seq), metadata), position)| {
                        let job_run_id = log.owner.job_run_id();
                        row.push_bind(log.id.to_string())
                            .push_bind(log.owner.log_type().as_str())
                            .push_bind(job_run_id.map(|id| id.to_string()))
                            .push_bind(job_run_id.and_then(|id| run_keys.get(&id)).copied())
                            .push_bind(log.owner.task_run_id().map(|id| id.to_string()))
                            .push_bind(**seq)
                            .push_bind(log.time.timestamp_micros())
                            .push_bind(log.received_at.timestamp_micros())
                            .push_bind(log.level.as_str())
                            .push_bind(log.stream.as_str())
                            .push_bind(log.source.as_str())
                            .push_bind(log.message.as_str())
                            .push_bind(metadata.as_str())
                            .push_bind(*position);
                    });
                    insert.build().execute(&mut *transaction).await?;
                }
                Ok((logs, seqs, plans, first_position))
            })
            .await?;
        let next_position = first_position + i64::try_from(logs.len()).unwrap_or(i64::MAX);
        let span = CommitSpan {
            after: Position::before(first_position),
            positions: (first_position..next_position).map(|commit| Position { commit, index: 0 }).collect(),
            through: Position::before(next_position),
        };
        Ok(Appended { batches: sequence::answers(plans, &sequence::receipts(&logs, seqs)), span: Some(span) })
    }

    async fn read_committed(
        &self,
        filter: &LogFilter,
        after: Position,
        limit: usize,
    ) -> Result<CommittedPage, StoreError> {
        // The horizon first: every position below it has committed, so the
        // page, read on a later snapshot, sees all of them.
        let horizon = self.commit_horizon().await?;
        let through = if super::needs_window(filter) {
            let end = list_sql::window_end_statement::<SqliteDialect>(after, horizon.position, COMMITTED_WINDOW);
            let rows = self.read(bind(sqlx::query(&end.sql), end.params)).await?;
            positions(&rows)?.first().copied().unwrap_or(horizon.position)
        } else {
            horizon.position
        };
        let statement =
            list_sql::committed_statement::<SqliteDialect>(filter, after, through, limit, self.read_scope());
        let rows = self.read(bind(sqlx::query(&statement.sql), statement.params)).await?;
        Ok(super::committed_page(logs(&rows)?, positions(&rows)?, after, limit, through, horizon))
    }

    async fn commit_horizon(&self) -> Result<Horizon, StoreError> {
        let next: i64 = sqlx::query_scalar(COMMIT_HORIZON).fetch_one(&self.reader).await?;
        Ok(Horizon { position: Position::before(next), next, running: Vec::new() })
    }

    fn case_folding(&self) -> CaseFolding {
        // lower() folds ASCII letters only without the ICU extension.
        CaseFolding::Ascii
    }

    async fn mark_commit_order(&self) -> Result<(), StoreError> {
        // On the one writer: nothing commits between reading the counter
        // and the clock.
        self.writer
            .transaction(async |transaction| {
                let next: i64 = sqlx::query_scalar(COMMIT_HORIZON).fetch_one(&mut *transaction).await?;
                sqlx::query("INSERT INTO commit_marks (at, position) VALUES (?, ?)")
                    .bind(Utc::now().timestamp_micros())
                    .bind(next)
                    .execute(&mut *transaction)
                    .await?;
                Ok(())
            })
            .await
    }

    async fn commit_mark(&self, at: DateTime<Utc>) -> Result<Option<Position>, StoreError> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM commit_marks WHERE at <= ? ORDER BY at DESC LIMIT 1")
                .bind(at.timestamp_micros())
                .fetch_optional(&self.reader)
                .await?;
        Ok(position.map(Position::before))
    }

    async fn prune_commit_marks(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.writer
            .transaction(async |transaction| {
                Ok(sqlx::query(PRUNE_COMMIT_MARKS)
                    .bind(before.timestamp_micros())
                    .execute(&mut *transaction)
                    .await?
                    .rows_affected())
            })
            .await
    }

    async fn database_identity(&self) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM database_identity").fetch_one(&self.reader).await?)
    }

    async fn list(&self, query: &LogQuery) -> Result<Vec<Log>, StoreError> {
        let statement = list_sql::list_statement::<SqliteDialect>(query, self.read_scope());
        let rows = self.read(bind(sqlx::query(&statement.sql), statement.params)).await?;
        logs(&rows)
    }

    async fn plan(&self, query: &LogQuery) -> Result<String, StoreError> {
        self.explain(list_sql::list_statement::<SqliteDialect>(query, self.read_scope())).await
    }

    async fn plan_job_runs(&self, query: &RunQuery) -> Result<String, StoreError> {
        self.explain(run_sql::job_runs_statement::<SqliteDialect>(query)).await
    }

    async fn count(
        &self,
        filter: &LogFilter,
        group_by: &[Grouping],
        bucket_micros: Option<i64>,
    ) -> Result<Vec<CountRow>, StoreError> {
        let statement = list_sql::count_statement::<SqliteDialect>(filter, group_by, bucket_micros, self.read_scope());
        let rows = self.read(bind(sqlx::query(&statement.sql), statement.params)).await?;
        rows.iter().map(|row| CountRow::decode(row, group_by.len(), bucket_micros.is_some())).collect()
    }

    async fn export(&self, query: LogQuery, chunks: tokio::sync::mpsc::Sender<Result<Vec<Log>, StoreError>>) {
        let mut connection = match self.reader.acquire().await {
            Ok(connection) => connection,
            Err(error) => {
                let _ = chunks.send(Err(error.into())).await;
                return;
            }
        };
        // A deferred transaction takes its snapshot at the first read and
        // keeps it to the end; WAL readers never block the writer.
        if let Err(error) = connection.execute("BEGIN").await {
            let _ = chunks.send(Err(error.into())).await;
            return;
        }
        let reusable = self.export_pages(&mut connection, query, &chunks).await;
        if !reusable || connection.execute("COMMIT").await.is_err() {
            drop(connection.detach());
        }
    }

    async fn time_range(&self, filter: &LogFilter) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        let statement = list_sql::time_range_statement::<SqliteDialect>(filter, self.read_scope());
        let row = self.read(bind(sqlx::query(&statement.sql), statement.params)).await?;
        let time = |column: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
            let micros: Option<i64> = sqlx::Row::try_get(&row[0], column)?;
            Ok(micros.and_then(DateTime::from_timestamp_micros))
        };
        Ok(time("first")?.zip(time("last")?))
    }

    async fn get(&self, id: Uuid) -> Result<Option<Log>, StoreError> {
        sqlx::query_as::<_, SqliteRow>(&format!("SELECT {LOG_COLUMNS} FROM logs WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .map(Log::try_from)
            .transpose()
    }

    async fn job_run(&self, sequence: Uuid) -> Result<Option<JobRun>, StoreError> {
        let row: Option<SqliteJobRunRow> =
            sqlx::query_as(&format!("SELECT {} FROM job_runs WHERE id = ?", job_run_columns::<SqliteDialect>()))
                .bind(sequence.to_string())
                .fetch_optional(&self.reader)
                .await?;
        row.map(JobRun::try_from).transpose()
    }

    async fn complete_job_run(&self, id: Uuid, completion: &Completion) -> Result<JobRun, StoreError> {
        let (changed, run) = self
            .writer
            .transaction(async |transaction| {
                let changed = sqlx::query(COMPLETE_JOB_RUN)
                    .bind(id.to_string())
                    .bind(completion.completed_at.timestamp_micros())
                    .bind(completion.outcome.as_str())
                    .bind(&completion.summary)
                    .bind(activity_at(completion.completed_at).timestamp_micros())
                    .fetch_optional(&mut *transaction)
                    .await?
                    .is_some();
                let run = select_job_run(transaction, id).await?;
                Ok((changed, run))
            })
            .await?;
        super::settle_completion(changed, run, completion)
    }

    async fn start_job_run(&self, id: Uuid, identity: &RunIdentity, now: DateTime<Utc>) -> Result<JobRun, StoreError> {
        let (changed, run) = self
            .writer
            .transaction(async |transaction| {
                let changed = sqlx::query(START_JOB_RUN)
                    .bind(id.to_string())
                    .bind(&identity.name)
                    .bind(serde_json::to_string(&identity.labels)?)
                    .bind(now.timestamp_micros())
                    .bind(activity_at(now).timestamp_micros())
                    .fetch_optional(&mut *transaction)
                    .await?
                    .is_some();
                let run = select_job_run(transaction, id).await?;
                Ok((changed, run))
            })
            .await?;
        super::settle_start(changed, run, identity)
    }

    async fn list_job_runs(&self, query: &RunQuery) -> Result<Vec<JobRun>, StoreError> {
        let statement = run_sql::job_runs_statement::<SqliteDialect>(query);
        let rows = self.read(bind(sqlx::query(&statement.sql), statement.params)).await?;
        rows.iter().map(|row| JobRun::try_from(<SqliteJobRunRow as sqlx::FromRow<_>>::from_row(row)?)).collect()
    }

    async fn delete_job_run(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<(JobRun, u64)>, StoreError> {
        self.writer
            .transaction(async |transaction| {
                let Some(run) = find_job_run(transaction, id).await? else {
                    return Ok(None);
                };
                if run.completion.is_none() {
                    return Err(StoreError::JobRunOpen(id));
                }
                let deleted = sqlx::query("DELETE FROM logs WHERE run_key = (SELECT key FROM job_runs WHERE id = ?)")
                    .bind(id.to_string())
                    .execute(&mut *transaction)
                    .await?
                    .rows_affected();
                sqlx::query(&format!(
                    "UPDATE job_runs SET deleted_at = coalesce(deleted_at, ?), {NO_LOGS} WHERE id = ?"
                ))
                .bind(now.timestamp_micros())
                .bind(id.to_string())
                .execute(&mut *transaction)
                .await?;
                let run = select_job_run(transaction, id).await?;
                Ok(Some((run, deleted)))
            })
            .await
    }

    async fn expire(&self, log_type: LogType, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        let deleted = self
            .writer
            .transaction(async |transaction| {
                let deleted: Vec<(String, String)> = sqlx::query_as(
                    "DELETE FROM logs WHERE rowid IN (SELECT rowid FROM logs WHERE type = ?1 AND received_at < ?2 \
             ORDER BY received_at LIMIT ?3) RETURNING coalesce(job_run_id, ?4), level",
                )
                .bind(log_type.as_str())
                .bind(before.timestamp_micros())
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .bind(SYSTEM_SEQUENCE.to_string())
                .fetch_all(&mut *transaction)
                .await?;
                let tally: Vec<_> = super::tally_gone(deleted.iter().map(|(run, level)| (run, level.as_str(), 1)))?
                    .into_iter()
                    .collect();
                for chunk in tally.chunks(ROWS_PER_INSERT) {
                    let mut update =
                        QueryBuilder::<Sqlite>::new("WITH gone (id, trace, debug, info, warn, error, fatal) AS (");
                    update.push_values(chunk, |mut row, (run, counts)| {
                        row.push_bind(run.as_str());
                        for count in counts.0 {
                            row.push_bind(count);
                        }
                    });
                    update.push(format!(
                        ") UPDATE job_runs SET {} FROM gone WHERE job_runs.id = gone.id",
                        super::SUBTRACT_GONE
                    ));
                    update.build().execute(&mut *transaction).await?;
                }
                Ok(deleted)
            })
            .await?;
        // Gives up to this many free pages back to the file system, a few
        // at a time between writes (nothing in a file made before auto_vacuum).
        let vacuum = format!("PRAGMA incremental_vacuum({RECLAIMED_PAGES_PER_BATCH})");
        self.writer.connection(async |connection| Ok(sqlx::query(&vacuum).execute(connection).await?)).await?;
        Ok(deleted.len() as u64)
    }

    async fn expire_partitions(&self, _: LogType, _: DateTime<Utc>) -> Result<EmptiedPartitions, StoreError> {
        // One table: retention deletes rows (`expire`).
        Ok(EmptiedPartitions::default())
    }

    fn partitions_created(&self) -> u64 {
        0
    }

    async fn oldest_log(&self, log_type: LogType) -> Result<Option<DateTime<Utc>>, StoreError> {
        let micros: Option<i64> = sqlx::query_scalar("SELECT min(received_at) FROM logs WHERE type = ?1")
            .bind(log_type.as_str())
            .fetch_one(&self.reader)
            .await?;
        Ok(micros.and_then(DateTime::from_timestamp_micros))
    }

    async fn database_bytes(&self) -> Result<u64, StoreError> {
        // The main file; the write-ahead log beside it is checkpointed every
        // 200 ms, and stays small.
        let bytes: i64 =
            sqlx::query_scalar("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
                .fetch_one(&self.reader)
                .await?;
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    async fn expiry_estimate(&self, log_type: LogType, before: DateTime<Utc>) -> Result<ExpiryEstimate, StoreError> {
        let (logs, bytes, oldest, newest): (i64, Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT count(*), sum(length(CAST(message AS BLOB)) + length(CAST(source AS BLOB)) \
             + length(CAST(metadata AS BLOB)) + ?3), min(received_at), max(received_at) \
             FROM logs WHERE type = ?1 AND received_at < ?2",
        )
        .bind(log_type.as_str())
        .bind(before.timestamp_micros())
        .bind(super::ROW_OVERHEAD_BYTES)
        .fetch_one(&self.reader)
        .await?;
        let time = |micros: Option<i64>| micros.and_then(DateTime::from_timestamp_micros);
        Ok(ExpiryEstimate {
            logs: logs as u64,
            bytes: bytes.unwrap_or(0) as u64,
            oldest: time(oldest),
            newest: time(newest),
        })
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let upsert = format!(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3) {} ?4 RETURNING holder",
            super::TAKE_LEASE_UPSERT
        );
        let taken = self
            .writer
            .connection(async |connection| {
                Ok(sqlx::query(&upsert)
                    .bind(name)
                    .bind(holder.to_string())
                    .bind(until.timestamp_micros())
                    .bind(now.timestamp_micros())
                    .fetch_optional(connection)
                    .await?)
            })
            .await?;
        Ok(taken.is_some())
    }

    async fn revoke_token(&self, token_id: Uuid, expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        self.writer
            .transaction(async |transaction| {
                sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < ?")
                    .bind(Utc::now().timestamp_micros())
                    .execute(&mut *transaction)
                    .await?;
                sqlx::query("INSERT INTO revoked_tokens (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING")
                    .bind(token_id.to_string())
                    .bind(expires_at.timestamp_micros())
                    .execute(&mut *transaction)
                    .await?;
                Ok(())
            })
            .await
    }

    async fn revoked_tokens(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM revoked_tokens WHERE expires_at >= ?")
            .bind(now.timestamp_micros())
            .fetch_all(&self.reader)
            .await?;
        ids.iter()
            .map(|id| Uuid::try_parse(id).map_err(|_| StoreError::Internal("a revoked token id is not a UUID")))
            .collect()
    }

    async fn check_health(&self) -> Result<(), StoreError> {
        // An open connection keeps working on a data file that was deleted or
        // unmounted, so writes would vanish at the next start: check the path.
        if !tokio::fs::try_exists(&self.path).await.unwrap_or(false) {
            return Err(StoreError::Unavailable(format!("the data file {} is gone", self.path.display())));
        }
        sqlx::query("SELECT 1 FROM job_runs LIMIT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn close(&self) {
        self.checkpointer.abort();
        self.writer.close().await;
        self.reader.close().await;
    }
}
