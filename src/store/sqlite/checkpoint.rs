//! Checkpoints off the writer's path. By default SQLite's committing
//! connection copies the write-ahead log back into the database file itself
//! once the log passes 1,000 pages: with a thousand runs written at once
//! that is nearly every commit, and every writer waiting on that commit
//! waits for the copy too. Here a connection of its own checkpoints in the
//! background (PASSIVE: it never blocks the writer), and the writer's own
//! checkpoint stays only as a backstop, far later, should the background
//! one fall behind (readers holding old snapshots, say).
//!
//! A PASSIVE checkpoint copies the log but cannot rewind it: SQLite starts
//! the log over only when a write begins after every frame was copied, and
//! under steady writes some commit always lands during the copy. The log
//! then grew until the writer's backstop copied 10,000 pages itself, 40 to
//! 100 ms in which no write was answered (docs/benchmarks.md). So once the
//! log is long, a second PASSIVE pass copies what was committed during the
//! first, and a RESTART follows: it holds writers back only while it copies
//! the few frames committed since (1 to 15 ms measured), and the next write
//! starts the log over. Its wait for the writer's lock and for readers is
//! bounded by a short busy timeout; a busy RESTART is tried again at the next
//! tick.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

/// Pages of write-ahead log after which the writer checkpoints by itself:
/// the backstop, about 40 MiB with 4 KiB pages.
pub(super) const WRITER_BACKSTOP_PAGES: &str = "10000";

/// How often the background connection checkpoints.
const INTERVAL: Duration = Duration::from_millis(200);

/// Frames in the log after which a checkpoint also rewinds it (16 MiB with
/// 4 KiB pages, under half the backstop).
const RESTART_FRAMES: i64 = 4_000;

/// How long a RESTART checkpoint may wait for the writer or for readers.
const RESTART_PATIENCE: Duration = Duration::from_millis(20);

/// Checkpoints the database behind `options` every `INTERVAL`, on a
/// connection of its own, until aborted. Never creates the file: one that
/// was deleted stays gone, for health to see.
pub(super) async fn checkpoint_forever(options: SqliteConnectOptions, path: PathBuf) {
    let options = options.create_if_missing(false).busy_timeout(RESTART_PATIENCE);
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
        let checkpoint = match checkpoint(open, "PASSIVE").await {
            Ok((_, frames, _)) if frames >= RESTART_FRAMES => match checkpoint(open, "PASSIVE").await {
                Ok(_) => checkpoint(open, "RESTART").await,
                failed => failed,
            },
            passive => passive,
        };
        if let Err(error) = checkpoint {
            tracing::debug!(%error, path = %path.display(), "background checkpoint failed; reconnecting");
            connection = None;
        }
    }
}

/// Runs a checkpoint in `mode`: (busy, frames in the log, frames copied).
async fn checkpoint(connection: &mut sqlx::SqliteConnection, mode: &str) -> Result<(i64, i64, i64), sqlx::Error> {
    sqlx::query_as(&format!("PRAGMA wal_checkpoint({mode})")).fetch_one(connection).await
}
