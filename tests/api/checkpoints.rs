//! SQLite's write-ahead log is copied back into the data file in the
//! background, not by the committing writer: the data file takes the logs
//! even while nobody writes.

use std::time::Duration;

use logwell::proto::v1 as pb;
use uuid::Uuid;

use crate::helpers::{Backend, TestServer, eventually, job_entry};

fn file_size(path: &str) -> u64 {
    std::fs::metadata(path).map(|metadata| metadata.len()).unwrap_or(0)
}

#[tokio::test]
async fn the_write_ahead_log_is_checkpointed_in_the_background() {
    let server = TestServer::start(Backend::Sqlite).await;
    let data_file = server.database.url.trim_start_matches("sqlite:").to_string();
    let before = file_size(&data_file);
    let line = "x".repeat(200);
    for batch in 0..10 {
        let logs = (0..500).map(|i| job_entry(Uuid::now_v7(), &format!("{batch}.{i} {line}"))).collect();
        server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    }
    // 5,000 logs fill about 3 MB: far below the writer's own checkpoint
    // (10,000 pages), so only the background checkpoint puts them in the
    // data file.
    eventually("the data file takes the logs", Duration::from_secs(10), || async {
        (file_size(&data_file) > before + 2_000_000).then_some(())
    })
    .await;
}
