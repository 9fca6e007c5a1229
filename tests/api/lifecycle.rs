//! The `logwell` binary itself: `migrate`, and `serve` stopping cleanly on
//! SIGTERM with everything it acknowledged still there at the next start.

use std::time::Duration;

use logwell::proto::v1::log_query_service_client::LogQueryServiceClient;
use logwell::proto::v1::system_log_service_client::SystemLogServiceClient;
use logwell::proto::v1::{self as pb};
use tokio::process::Command;

use crate::conformance;
use crate::helpers::{Backend, TestDatabase, entry, logwell, start_serving};

conformance!(migrate_command_is_repeatable, serve_stops_cleanly_on_sigterm);

async fn migrate_command_is_repeatable(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let migrate = || logwell().args(["migrate", "--database-url", &database.url]).output();
    let (first, second) = tokio::join!(migrate(), migrate());
    let third = migrate().await;
    for (run, output) in [("first", first), ("concurrent second", second), ("third", third)] {
        let output = output.expect("run logwell migrate");
        assert!(output.status.success(), "{run} migrate: {}", String::from_utf8_lossy(&output.stderr));
    }
}

/// SIGTERM while writers are busy: the server stops accepting, finishes what
/// is in flight and exits cleanly; every write it acknowledged is stored.
async fn serve_stops_cleanly_on_sigterm(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let (mut child, address, mut lines) = start_serving(&database.url).await;
    let (acknowledged_sender, mut acknowledged) = tokio::sync::mpsc::unbounded_channel();
    for writer in 0..4 {
        let mut client = SystemLogServiceClient::connect(address.clone()).await.expect("connect");
        let acknowledged = acknowledged_sender.clone();
        tokio::spawn(async move {
            for write in 0.. {
                let log = entry(&format!("writer {writer} write {write}"));
                match client.write_system_log(pb::WriteSystemLogRequest { log: Some(log) }).await {
                    Ok(response) => {
                        let _ = acknowledged.send(response.into_inner().receipt.expect("receipt").id);
                    }
                    Err(_) => return,
                }
            }
        });
    }
    drop(acknowledged_sender);
    let mut ids = Vec::new();
    while ids.len() < 200 {
        ids.push(acknowledged.recv().await.expect("writers are writing"));
    }

    let pid = child.id().expect("pid").to_string();
    let signal = Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill");
    assert!(signal.success());
    let status =
        tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("exits in time").expect("wait");
    assert!(status.success(), "exit status {status}");
    while let Some(id) = acknowledged.recv().await {
        ids.push(id);
    }
    let mut messages = Vec::new();
    while let Some(line) = lines.next_line().await.expect("read stderr") {
        let record: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        messages.push(record["fields"]["message"].as_str().unwrap_or_default().to_string());
    }
    assert!(messages.iter().any(|message| message == "stopped"), "{messages:?}");

    let (mut child, address, _lines) = start_serving(&database.url).await;
    let mut reader = LogQueryServiceClient::connect(address).await.expect("connect");
    for id in &ids {
        let stored = reader.get_log(pb::GetLogRequest { id: id.clone() }).await;
        assert!(stored.is_ok(), "acknowledged log {id} is gone: {stored:?}");
    }
    child.kill().await.expect("kill");
}
