//! The opt-in text index (`--text-index`): a `pg_trgm` GIN index on the
//! logs' messages, which serves the `LIKE`/`ILIKE` that substring searches
//! are spelled as. It costs writes, so it is off unless asked for. At every
//! start the index is made to match the flag (set it the same on every
//! replica): built without blocking writers (`CONCURRENTLY`) when turned on,
//! dropped when turned off. Creating the `pg_trgm` extension needs the
//! CREATE privilege on the database (it is a trusted extension).

use std::time::Instant;

use sqlx::PgPool;

use crate::store::StoreError;

/// Serializes replicas that start together.
const LOCK: i64 = 0x6c6f_6777_656c_6c54; // "logwellT"

/// Builds or drops the text index so that it exists exactly when `enabled`.
pub(super) async fn reconcile(pool: &PgPool, enabled: bool) -> Result<(), StoreError> {
    let mut connection = pool.acquire().await?;
    // Polled rather than waited for: a session waiting inside
    // pg_advisory_lock holds a snapshot, which CREATE INDEX CONCURRENTLY in
    // the session holding the lock would wait for in turn.
    while !sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK)
        .fetch_one(&mut *connection)
        .await?
    {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let result = apply(&mut connection, enabled).await;
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(LOCK).execute(&mut *connection).await?;
    result
}

async fn apply(connection: &mut sqlx::PgConnection, enabled: bool) -> Result<(), StoreError> {
    let valid: Option<bool> =
        sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('logs_message_trigrams')")
            .fetch_optional(&mut *connection)
            .await?;
    let started = Instant::now();
    match (valid, enabled) {
        (Some(true), true) | (None, false) => {}
        (exists, true) => {
            if exists.is_some() {
                // A build that was interrupted leaves an invalid index behind.
                sqlx::raw_sql("DROP INDEX CONCURRENTLY logs_message_trigrams").execute(&mut *connection).await?;
            }
            sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute(&mut *connection).await?;
            sqlx::raw_sql("CREATE INDEX CONCURRENTLY logs_message_trigrams ON logs USING gin (message gin_trgm_ops)")
                .execute(&mut *connection)
                .await?;
            tracing::info!(seconds = started.elapsed().as_secs_f64(), "built the text index");
        }
        (Some(_), false) => {
            sqlx::raw_sql("DROP INDEX CONCURRENTLY logs_message_trigrams").execute(&mut *connection).await?;
            tracing::info!("dropped the text index (--text-index is off)");
        }
    }
    Ok(())
}
