//! Indexes that cost writes and serve one feature, built only when wanted:
//! the expiry index, for retention, and the text index.
//!
//! The text index (`--text-index`) is an FTS5 table with the trigram
//! tokenizer over the logs' messages, so that a substring search reads the
//! logs holding the text's trigrams instead of every log. It takes its text
//! from `logs` (external content: messages are not stored twice) and is kept
//! by triggers in the writing transaction; it costs writes, so it is off
//! unless asked for. At every start the table is made to match the flag:
//! built from the stored logs when turned on, dropped when turned off.
//!
//! It refers to logs by rowid, which SQLite's `VACUUM` may renumber: logwell
//! never runs `VACUUM`, and after an operator's, the index is rebuilt by
//! starting once without the flag and again with it.

use std::time::Instant;

use sqlx::SqliteConnection;

use crate::store::StoreError;

const CREATE: &str = "
CREATE VIRTUAL TABLE logs_text USING fts5(
    message, content = 'logs', content_rowid = 'rowid', tokenize = 'trigram'
);
CREATE TRIGGER logs_text_insert AFTER INSERT ON logs BEGIN
    INSERT INTO logs_text (rowid, message) VALUES (new.rowid, new.message);
END;
CREATE TRIGGER logs_text_delete AFTER DELETE ON logs BEGIN
    INSERT INTO logs_text (logs_text, rowid, message) VALUES ('delete', old.rowid, old.message);
END;
INSERT INTO logs_text (logs_text) VALUES ('rebuild');
";

const DROP: &str = "
DROP TRIGGER logs_text_insert;
DROP TRIGGER logs_text_delete;
DROP TABLE logs_text;
";

/// Builds or drops the expiry index (a retention limit: each type's oldest
/// logs) so that it exists exactly when `wanted`: it costs every write, so
/// only retention pays for it.
pub(super) async fn reconcile_expiry(connection: &mut SqliteConnection, wanted: bool) -> Result<(), StoreError> {
    let statement = if wanted {
        "CREATE INDEX IF NOT EXISTS logs_expiry ON logs (type, received_at)"
    } else {
        "DROP INDEX IF EXISTS logs_expiry"
    };
    sqlx::raw_sql(statement).execute(connection).await?;
    Ok(())
}

/// Builds or drops the text index so that it exists exactly when `enabled`.
pub(super) async fn reconcile_text(connection: &mut SqliteConnection, enabled: bool) -> Result<(), StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT count(*) > 0 FROM sqlite_schema WHERE name = 'logs_text'")
        .fetch_one(&mut *connection)
        .await?;
    let started = Instant::now();
    match (exists, enabled) {
        (false, true) => {
            let mut transaction = sqlx::Connection::begin(&mut *connection).await?;
            sqlx::raw_sql(CREATE).execute(&mut *transaction).await?;
            transaction.commit().await?;
            tracing::info!(seconds = started.elapsed().as_secs_f64(), "built the text index");
        }
        (true, false) => {
            let mut transaction = sqlx::Connection::begin(&mut *connection).await?;
            sqlx::raw_sql(DROP).execute(&mut *transaction).await?;
            transaction.commit().await?;
            tracing::info!("dropped the text index (--text-index is off)");
        }
        _ => {}
    }
    Ok(())
}
