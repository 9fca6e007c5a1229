//! Indexes that cost writes and serve one feature, built only when it is
//! wanted: the text index (`--text-index`: a `pg_trgm` GIN index on the
//! messages, serving the `LIKE`/`ILIKE` that substring searches are spelled
//! as) and the expiry index (a retention limit: each type's oldest logs).
//! At every start each is made to match the settings (set them the same on
//! every replica): built without blocking writers when turned on, dropped
//! when turned off. `logs` is partitioned, and PostgreSQL builds no index on
//! a partitioned table `CONCURRENTLY`; so the index is declared on each
//! partitioned table alone (`ON ONLY`, not valid yet), built `CONCURRENTLY`
//! on each partition that holds rows, and attached, partition by
//! partition: once all are, it is valid, and partitions made later get it
//! with their other indexes.

use std::time::Instant;

use sqlx::PgPool;

use crate::store::StoreError;

/// An index built on demand.
pub(super) struct OptionalIndex {
    pub name: &'static str,
    /// What it needs first, if anything (creating `pg_trgm` needs the CREATE
    /// privilege on the database; it is a trusted extension).
    pub prerequisite: Option<&'static str>,
    /// Its method and columns, after `CREATE INDEX name ON table`.
    pub columns: &'static str,
}

pub(super) const TEXT: OptionalIndex = OptionalIndex {
    name: "logs_message_trigrams",
    prerequisite: Some("CREATE EXTENSION IF NOT EXISTS pg_trgm"),
    columns: "USING gin (message gin_trgm_ops)",
};

pub(super) const EXPIRY: OptionalIndex =
    OptionalIndex { name: "logs_expiry", prerequisite: None, columns: "(type, received_at)" };

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
    let valid = validity(connection, index.name).await?;
    let started = Instant::now();
    match (valid, wanted) {
        (Some(true), true) | (None, false) => {}
        (_, true) => {
            if let Some(prerequisite) = index.prerequisite {
                sqlx::raw_sql(prerequisite).execute(&mut *connection).await?;
            }
            build(connection, index, "logs", index.name).await?;
            tracing::info!(index = index.name, seconds = started.elapsed().as_secs_f64(), "built an index");
        }
        (Some(_), false) => {
            // With every partition's copy.
            sqlx::raw_sql(&format!("DROP INDEX {}", index.name)).execute(&mut *connection).await?;
            tracing::info!(index = index.name, "dropped an index no longer wanted");
        }
    }
    Ok(())
}

/// Whether the index `name` is valid; None if it does not exist.
async fn validity(connection: &mut sqlx::PgConnection, name: &str) -> Result<Option<bool>, StoreError> {
    Ok(sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)")
        .bind(name)
        .fetch_optional(&mut *connection)
        .await?)
}

/// Builds `index` as `name` on `table` and, if it is partitioned, on each of
/// its partitions, attaching theirs to it. What an interrupted build left
/// is kept where valid and built again where not.
async fn build(
    connection: &mut sqlx::PgConnection,
    index: &OptionalIndex,
    table: &str,
    name: &str,
) -> Result<(), StoreError> {
    let partitioned: bool = sqlx::query_scalar("SELECT relkind = 'p' FROM pg_class WHERE oid = $1::regclass")
        .bind(table)
        .fetch_one(&mut *connection)
        .await?;
    match validity(connection, name).await? {
        Some(true) => return Ok(()),
        Some(false) if !partitioned => {
            sqlx::raw_sql(&format!("DROP INDEX CONCURRENTLY {name}")).execute(&mut *connection).await?;
        }
        _ => {}
    }
    if !partitioned {
        let create = format!("CREATE INDEX CONCURRENTLY {name} ON {table} {}", index.columns);
        sqlx::raw_sql(&create).execute(&mut *connection).await?;
        return Ok(());
    }
    let create = format!("CREATE INDEX IF NOT EXISTS {name} ON ONLY {table} {}", index.columns);
    sqlx::raw_sql(&create).execute(&mut *connection).await?;
    let partitions: Vec<String> = sqlx::query_scalar(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = $1::regclass ORDER BY 1",
    )
    .bind(table)
    .fetch_all(&mut *connection)
    .await?;
    for partition in partitions {
        let partition_index = format!("{partition}_{}", index.name);
        Box::pin(build(connection, index, &partition, &partition_index)).await?;
        let attached: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM pg_inherits WHERE inhrelid = $1::regclass AND inhparent = $2::regclass)",
        )
        .bind(&partition_index)
        .bind(name)
        .fetch_one(&mut *connection)
        .await?;
        if !attached {
            sqlx::raw_sql(&format!("ALTER INDEX {name} ATTACH PARTITION {partition_index}"))
                .execute(&mut *connection)
                .await?;
        }
    }
    Ok(())
}
