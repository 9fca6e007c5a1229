//! Upgrading a filled SQLite file: `logwell migrate` killed with SIGKILL at
//! any moment of an upgrade leaves a file that the next run finishes
//! upgrading, with every log still there. (SQLite's pending migrations are
//! applied in one transaction, so a kill leaves the old schema or the new.)

use std::path::Path;
use std::time::Duration;

use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::{self as pb};
use sqlx::{Connection, Executor};
use uuid::Uuid;

use crate::helpers::{job_entry, logwell, send_signal, start_serving};

const LOGS: usize = 20_000;
/// How long after its start each interrupted `logwell migrate` is killed:
/// from before it opens the file to after it would have finished.
const KILL_AFTER_MILLIS: [u64; 8] = [0, 2, 5, 10, 20, 40, 80, 160];

/// A file written by the current schema, then taken back to the schema
/// before the last migration (0005: the job runs' deletion time), as an
/// older logwell would have left it.
async fn filled_file_one_migration_behind(folder: &Path) -> String {
    let url = format!("sqlite:{}", folder.join("filled.db").display());
    let (mut server, address, _log) = start_serving(&url).await;
    let mut writer = JobLogServiceClient::connect(address).await.expect("connect");
    let run = Uuid::now_v7();
    for batch in 0..LOGS / 1_000 {
        let logs = (0..1_000).map(|i| job_entry(run, &format!("batch {batch} log {i}"))).collect();
        writer.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    }
    send_signal(&server, "TERM").await;
    assert!(server.wait().await.expect("wait").success());
    let mut connection = sqlx::SqliteConnection::connect(&url).await.expect("open");
    connection
        .execute("ALTER TABLE job_runs DROP COLUMN deleted_at; DELETE FROM logwell_migrations WHERE version = 5;")
        .await
        .expect("take the schema back to migration 0004");
    connection.close().await.expect("close");
    url
}

/// The SQLite file behind `url`, and its write-ahead log if it has one.
fn files(url: &str) -> Vec<String> {
    let file = url.trim_start_matches("sqlite:").to_string();
    [file.clone(), format!("{file}-wal")].into_iter().filter(|path| Path::new(path).exists()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_killed_at_any_moment_finishes_at_the_next_run_losing_nothing() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let original = filled_file_one_migration_behind(folder.path()).await;
    for (attempt, millis) in KILL_AFTER_MILLIS.into_iter().enumerate() {
        let url = format!("sqlite:{}", folder.path().join(format!("upgrade-{attempt}.db")).display());
        for source in files(&original) {
            let target = source.replace("filled.db", &format!("upgrade-{attempt}.db"));
            std::fs::copy(&source, &target).expect("copy the filled file");
        }
        let mut interrupted = logwell().args(["migrate", "--database-url", &url]).spawn().expect("spawn migrate");
        tokio::time::sleep(Duration::from_millis(millis)).await;
        let _ = interrupted.start_kill();
        interrupted.wait().await.expect("wait");

        let finished = logwell().args(["migrate", "--database-url", &url]).output().await.expect("migrate");
        assert!(
            finished.status.success(),
            "after a kill at {millis} ms: {}",
            String::from_utf8_lossy(&finished.stderr)
        );
        let mut connection = sqlx::SqliteConnection::connect(&url).await.expect("open");
        let (logs, versions): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM logs), (SELECT count(*) FROM logwell_migrations WHERE version = 5)",
        )
        .fetch_one(&mut connection)
        .await
        .expect("count");
        assert_eq!((logs, versions), (LOGS as i64, 1), "after a kill at {millis} ms");
        sqlx::query("SELECT deleted_at FROM job_runs LIMIT 1")
            .fetch_optional(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("after a kill at {millis} ms the upgrade is whole: {error}"));
    }
}
