//! Checkpoints off the writer's path. By default SQLite's committing
//! connection copies the write-ahead log back into the database file itself
//! once the log passes 1,000 pages: with a thousand runs written at once
//! that is nearly every commit, and every writer waiting on that commit
//! waits for the copy too. Here a connection of its own checkpoints in the
//! background (PASSIVE: it never blocks the writer), and the writer's own
//! checkpoint stays only as a backstop, far later, should the background
//! one fall behind (readers holding old snapshots, say).

use std::path::PathBuf;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

/// Pages of write-ahead log after which the writer checkpoints by itself:
/// the backstop, about 40 MiB with 4 KiB pages.
pub(super) const WRITER_BACKSTOP_PAGES: &str = "10000";

/// How often the background connection checkpoints.
const INTERVAL: Duration = Duration::from_millis(200);

/// Checkpoints the database behind `options` every `INTERVAL`, on a
/// connection of its own, until aborted. Never creates the file: one that
/// was deleted stays gone, for health to see.
pub(super) async fn checkpoint_forever(options: SqliteConnectOptions, path: PathBuf) {
    let options = options.create_if_missing(false);
    let mut connection = None;
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if connection.is_none() {
            connection = options.connect().await.ok();
        }
        let Some(open) = connection.as_mut() else { continue };
        // (busy, frames in the log, frames copied): a busy or partial
        // checkpoint simply continues at the next tick.
        let checkpoint = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(open).await;
        if let Err(error) = checkpoint {
            tracing::debug!(%error, path = %path.display(), "background checkpoint failed; reconnecting");
            connection = None;
        }
    }
}
