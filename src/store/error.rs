use uuid::Uuid;

use crate::model::JobRun;

/// What can go wrong in storage, classified by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL, redacted.
    #[error("unsupported database URL {0:?}: use sqlite:PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("the database URL cannot be read: {0}")]
    BadUrl(String),
    #[error("in-memory SQLite is not supported: logwell needs a file that several connections share")]
    InMemorySqlite,
    #[error("cannot create the data folder {path}: {source}")]
    DataFolder { path: String, source: std::io::Error },
    /// The database cannot be reached right now; retrying later can succeed.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("the database failed: {0}")]
    Database(sqlx::Error),
    #[error("migrating the database failed: {0}")]
    Migrate(String),
    #[error("cannot encode metadata as JSON: {0}")]
    EncodeMetadata(#[from] serde_json::Error),
    /// A write to a job run that was completed; it takes no more logs.
    #[error("job run {0} is complete and takes no more logs")]
    JobRunComplete(Uuid),
    /// A client id already names a log of another job run, task run or type.
    #[error("log id {0} is already used by another log")]
    IdTaken(Uuid),
    /// Another process stored one of a group's client ids while the group
    /// was being written, again and again; nothing was stored, and a retry
    /// finds what it stored.
    #[error("another writer stored the same log ids at the same moment; nothing was stored, retry")]
    IdRace,
    /// Another replica's transaction wrote one of the group's runs first,
    /// though it began later, again and again: nothing was stored; retry.
    #[error("another replica wrote the same job runs at the same moment, again and again; nothing was stored, retry")]
    Overtaken,
    /// A deletion of a run that is still open.
    #[error("job run {0} is open")]
    JobRunOpen(Uuid),
    /// A completion of a run that was already completed differently.
    #[error("job run {} was already completed", .0.id)]
    JobRunAlreadyComplete(Box<JobRun>),
    /// A start of a run that was already started under another name or
    /// other labels.
    #[error("job run {} was already started", .0.id)]
    JobRunStarted(Box<JobRun>),
    /// A read ran past the server's limit and was stopped.
    #[error("the read ran longer than {} s and was stopped", .limit.as_secs_f64())]
    ReadTimedOut { limit: std::time::Duration },
    /// logwell broke one of its own promises: a bug.
    #[error("internal storage error: {0}")]
    Internal(&'static str),
    #[error("stored row is invalid: {what}")]
    CorruptJobRun { what: String },
    #[error("stored log {id} is invalid: {what}")]
    CorruptRow { id: Uuid, what: String },
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_transient(&error) { StoreError::Unavailable(error.to_string()) } else { StoreError::Database(error) }
    }
}

impl StoreError {
    /// The error of a read bounded by `limit`: an interrupted statement
    /// (SQLite's INTERRUPT, PostgreSQL's query_canceled) is the limit at work.
    pub(super) fn of_read(error: sqlx::Error, limit: std::time::Duration) -> StoreError {
        match &error {
            sqlx::Error::Database(database) if matches!(database.code().as_deref(), Some("9" | "57014")) => {
                StoreError::ReadTimedOut { limit }
            }
            _ => StoreError::from(error),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        match error {
            sqlx::migrate::MigrateError::Execute(inner) if is_transient(&inner) => StoreError::from(inner),
            other => StoreError::Migrate(other.to_string()),
        }
    }
}

/// Errors that say "not now" rather than "never": lost or refused
/// connections, an exhausted pool, a database that is shutting down, busy or
/// gone, a transaction the server chose to abort.
fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(database) => database.code().is_some_and(|code| is_transient_code(&code)),
        _ => false,
    }
}

fn is_transient_code(code: &str) -> bool {
    // PostgreSQL SQLSTATEs: 08 connection exceptions, 57P0x shutdowns,
    // 3D000 database gone, 55000 database not accepting connections, 55P03
    // lock not available, 53 insufficient resources, 40001/40P01 aborts.
    const POSTGRES: &[&str] = &["08", "57P", "3D000", "55000", "55P03", "53", "40001", "40P01"];
    // SQLite primary result codes: BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN.
    const SQLITE: &[i64] = &[5, 6, 8, 10, 13, 14];
    match code.parse::<i64>() {
        Ok(sqlite_code) if code.len() != 5 => SQLITE.contains(&(sqlite_code & 0xff)),
        _ => POSTGRES.iter().any(|prefix| code.starts_with(prefix)),
    }
}

#[cfg(test)]
mod tests {
    use super::is_transient_code;

    #[test]
    fn classifies_codes_of_both_backends() {
        assert!(is_transient_code("08006"));
        assert!(is_transient_code("57P01"));
        assert!(is_transient_code("3D000"));
        assert!(!is_transient_code("23514"), "check violation is permanent");
        assert!(!is_transient_code("23505"), "unique violation is permanent");
        assert!(is_transient_code("5"), "SQLITE_BUSY");
        assert!(is_transient_code("261"), "SQLITE_BUSY_RECOVERY");
        assert!(!is_transient_code("275"), "SQLITE_CONSTRAINT_CHECK");
        assert!(!is_transient_code("19"), "SQLITE_CONSTRAINT");
    }
}
