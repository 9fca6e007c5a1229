//! The `logwell` binary itself: `migrate`, and `serve` stopping cleanly on
//! SIGTERM with everything it acknowledged still there at the next start.

use std::process::Stdio;
use std::time::Duration;

use logwell::proto::v1::log_query_service_client::LogQueryServiceClient;
use logwell::proto::v1::system_log_service_client::SystemLogServiceClient;
use logwell::proto::v1::{self as pb};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::conformance;
use crate::helpers::{Backend, TestDatabase, entry};

conformance!(migrate_command_is_repeatable, serve_stops_cleanly_on_sigterm);

fn logwell() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_logwell"));
    command.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).kill_on_drop(true);
    command
}

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

/// Starts `logwell serve` on an ephemeral port; returns it and its address,
/// read from its JSON start-up log line.
async fn start_serving(
    database_url: &str,
) -> (Child, String, tokio::io::Lines<BufReader<tokio::process::ChildStderr>>) {
    let mut child = logwell()
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", database_url, "--log-format", "json"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logwell serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            let record: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
            if record["fields"]["message"] == "logwell serving" {
                return record["fields"]["address"].as_str().expect("address").to_string();
            }
        }
        panic!("logwell exited before serving");
    })
    .await
    .expect("logwell started in time");
    (child, format!("http://{address}"), lines)
}

async fn serve_stops_cleanly_on_sigterm(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let (mut child, address, mut lines) = start_serving(&database.url).await;
    let mut writer = SystemLogServiceClient::connect(address.clone()).await.expect("connect");
    let receipt = writer
        .write_system_log(pb::WriteSystemLogRequest { log: Some(entry("before shutdown")) })
        .await
        .expect("write")
        .into_inner()
        .receipt
        .expect("receipt");

    let pid = child.id().expect("pid").to_string();
    let signal = Command::new("kill").args(["-TERM", &pid]).status().await.expect("kill");
    assert!(signal.success());
    let status =
        tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("exits in time").expect("wait");
    assert!(status.success(), "exit status {status}");
    let mut messages = Vec::new();
    while let Some(line) = lines.next_line().await.expect("read stderr") {
        let record: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        messages.push(record["fields"]["message"].as_str().unwrap_or_default().to_string());
    }
    assert!(messages.iter().any(|message| message == "stopped"), "{messages:?}");

    let (mut child, address, _lines) = start_serving(&database.url).await;
    let mut reader = LogQueryServiceClient::connect(address).await.expect("connect");
    let stored = reader.get_log(pb::GetLogRequest { id: receipt.id }).await.expect("still stored").into_inner();
    assert_eq!(stored.log.expect("log").message, "before shutdown");
    child.kill().await.expect("kill");
}
