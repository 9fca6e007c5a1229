//! Indexes that cost writes and serve one feature, built only when it is
//! wanted: the text index (`--text-index`: a `pg_trgm` GIN index on the
//! messages, serving the `LIKE`/`ILIKE` that substring searches are spelled
//! as) and the expiry index (a retention limit: each type's oldest logs).
//! At every start each is made to match the settings (set them the same on
//! every replica): built without blocking writers (`CONCURRENTLY`) when
//! turned on, dropped when turned off.

use std::time::Instant;

use sqlx::PgPool;

use crate::store::StoreError;

/// An index built on demand.
pub(super) struct OptionalIndex {
    pub name: &'static str,
    /// What it needs first, if anything (creating `pg_trgm` needs the CREATE
    /// privilege on the database; it is a trusted extension).
    pub prerequisite: Option<&'static str>,
    /// Its definition after `CREATE INDEX CONCURRENTLY name`.
    pub definition: &'static str,
}

pub(super) const TEXT: OptionalIndex = OptionalIndex {
    name: "logs_message_trigrams",
    prerequisite: Some("CREATE EXTENSION IF NOT EXISTS pg_trgm"),
    definition: "ON logs USING gin (message gin_trgm_ops)",
};

pub(super) const EXPIRY: OptionalIndex =
    OptionalIndex { name: "logs_expiry", prerequisite: None, definition: "ON logs (type, received_at)" };

/// Serializes replicas that start together.
const LOCK: i64 = 0x6c6f_6777_656c_6c54; // "logwellT"

/// Builds or drops each index so that it exists exactly when wanted.
pub(super) async fn reconcile(pool: &PgPool, indexes: &[(&OptionalIndex, bool)]) -> Result<(), StoreError> {
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
    let mut result = Ok(());
    for (index, wanted) in indexes {
        result = apply(&mut connection, index, *wanted).await;
        if result.is_err() {
            break;
        }
    }
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(LOCK).execute(&mut *connection).await?;
    result
}

async fn apply(connection: &mut sqlx::PgConnection, index: &OptionalIndex, wanted: bool) -> Result<(), StoreError> {
    let valid: Option<bool> = sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)")
        .bind(index.name)
        .fetch_optional(&mut *connection)
        .await?;
    let started = Instant::now();
    let drop = format!("DROP INDEX CONCURRENTLY {}", index.name);
    match (valid, wanted) {
        (Some(true), true) | (None, false) => {}
        (exists, true) => {
            if exists.is_some() {
                // A build that was interrupted leaves an invalid index behind.
                sqlx::raw_sql(&drop).execute(&mut *connection).await?;
            }
            if let Some(prerequisite) = index.prerequisite {
                sqlx::raw_sql(prerequisite).execute(&mut *connection).await?;
            }
            sqlx::raw_sql(&format!("CREATE INDEX CONCURRENTLY {} {}", index.name, index.definition))
                .execute(&mut *connection)
                .await?;
            tracing::info!(index = index.name, seconds = started.elapsed().as_secs_f64(), "built an index");
        }
        (Some(_), false) => {
            sqlx::raw_sql(&drop).execute(&mut *connection).await?;
            tracing::info!(index = index.name, "dropped an index no longer wanted");
        }
    }
    Ok(())
}
