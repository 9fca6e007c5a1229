//! The one connection that writes, held between writes. A pool hands a
//! connection back through a task it spawns on the runtime, and pings it
//! before handing it out again: two trips through a runtime that hundreds of
//! writers keep busy, 350–450 µs of every 2 ms group commit at 50,000 logs/s
//! (docs/benchmarks.md). Held here, the next write starts at once. The pool
//! of one stays what opens the connection, and reopens it: a connection whose
//! work failed as unavailable goes back to the pool, whose ping before the
//! next use replaces it if it died.

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::Mutex;

use crate::store::StoreError;

pub(super) struct Writer {
    pool: SqlitePool,
    held: Mutex<Option<PoolConnection<Sqlite>>>,
}

impl Writer {
    pub(super) fn new(pool: SqlitePool) -> Writer {
        Writer { pool, held: Mutex::new(None) }
    }

    /// Runs `work` in a transaction that holds the write lock from its start,
    /// and commits it if `work` succeeds. A deferred transaction that read
    /// first could not wait for the lock later: SQLite answers BUSY at once
    /// to a reader that wants to write while the background checkpointer
    /// holds the lock for a RESTART.
    pub(super) async fn transaction<T>(
        &self,
        work: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.connection(async |connection| {
            let mut transaction = connection.begin_with("BEGIN IMMEDIATE").await?;
            let value = work(&mut transaction).await?;
            transaction.commit().await?;
            Ok(value)
        })
        .await
    }

    /// Runs `work` on the writer outside a transaction: statements that
    /// commit on their own.
    pub(super) async fn connection<T>(
        &self,
        work: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut held = self.held.lock().await;
        if held.is_none() {
            *held = Some(self.pool.acquire().await?);
        }
        let Some(connection) = held.as_mut() else {
            return Err(StoreError::Internal("the writer's connection was not kept"));
        };
        let result = work(connection).await;
        if let Err(StoreError::Unavailable(_)) = result {
            *held = None;
        }
        result
    }

    pub(super) async fn close(&self) {
        self.held.lock().await.take();
        self.pool.close().await;
    }
}
