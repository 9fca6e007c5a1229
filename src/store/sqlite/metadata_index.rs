//! Indexes on metadata keys that the operator declares
//! (`--metadata-index-keys`). SQLite has no index that serves every key
//! cheaply: a (key, value) side table would add a row per key to every
//! write. An expression index on one key costs only the logs that carry it
//! (it is partial), and serves that key's `equals` and `one_of` conditions,
//! whose SQL spells the same expression (`dialect::metadata_value`). At
//! every start the declared set is made so: missing indexes are built (a
//! scan of the table, once), undeclared ones dropped.

use std::collections::BTreeMap;
use std::time::Instant;

use sqlx::SqliteConnection;

use super::dialect::metadata_path;
use crate::store::StoreError;

const PREFIX: &str = "logs_metadata_";

/// Makes the metadata indexes on `logs` exactly those of `keys`.
pub(super) async fn reconcile(connection: &mut SqliteConnection, keys: &[String]) -> Result<(), StoreError> {
    let mut wanted = BTreeMap::new();
    for key in keys {
        let (value, _) = metadata_path(key).ok_or_else(|| {
            StoreError::Migrate(format!("metadata key {key:?} cannot be indexed: a JSON path cannot quote '\"'"))
        })?;
        wanted.insert(format!("{PREFIX}{}", hex(key)), (key, value));
    }
    let existing: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'logs' AND name LIKE ?")
            .bind(format!("{PREFIX}%"))
            .fetch_all(&mut *connection)
            .await?;
    for name in existing.iter().filter(|name| !wanted.contains_key(*name)) {
        sqlx::raw_sql(&format!("DROP INDEX \"{name}\"")).execute(&mut *connection).await?;
        tracing::info!(index = %name, "dropped the index of a metadata key no longer declared");
    }
    for (name, (key, value)) in wanted.iter().filter(|(name, _)| !existing.contains(name)) {
        let started = Instant::now();
        let create = format!("CREATE INDEX \"{name}\" ON logs ({value}) WHERE {value} IS NOT NULL");
        sqlx::raw_sql(&create).execute(&mut *connection).await?;
        tracing::info!(%key, index = %name, seconds = started.elapsed().as_secs_f64(), "indexed a metadata key");
    }
    Ok(())
}

fn hex(key: &str) -> String {
    key.bytes().map(|byte| format!("{byte:02x}")).collect()
}
