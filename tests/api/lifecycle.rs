//! The `logwell` binary itself: `migrate`, and `serve` stopping cleanly on
//! SIGTERM with everything it acknowledged still there at the next start.

use std::time::Duration;

use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::log_query_service_client::LogQueryServiceClient;
use logwell::proto::v1::system_log_service_client::SystemLogServiceClient;
use logwell::proto::v1::{self as pb};

use crate::conformance;
use crate::helpers::{Backend, TestDatabase, entry, job_entry, logwell, send_signal, start_serving};

conformance!(migrate_command_is_repeatable, serve_stops_cleanly_on_sigterm, kill_9_loses_no_acknowledged_log);

/// logwell's own log lines from `logwell migrate`, run through `script` so
/// that its standard error is a terminal when `terminal` is set.
async fn own_log_output(terminal: bool, environment: &[(&str, &str)]) -> String {
    let folder = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite:{}", folder.path().join("colour.db").display());
    let binary = env!("CARGO_BIN_EXE_logwell");
    let mut command = if terminal {
        let mut command = tokio::process::Command::new("script");
        command.args([
            "--quiet",
            "--return",
            "--command",
            &format!("{binary} migrate --database-url {url}"),
            "/dev/null",
        ]);
        command
    } else {
        let mut command = tokio::process::Command::new(binary);
        command.args(["migrate", "--database-url", &url]);
        command
    };
    command.env_remove("NO_COLOR").envs(environment.iter().copied());
    let output = command.output().await.expect("run logwell migrate");
    assert!(output.status.success(), "{output:?}");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("migrations applied"), "{text}");
    text
}

#[tokio::test]
async fn own_logs_are_coloured_only_on_a_terminal_without_no_color() {
    const ESCAPE: &str = "\u{1b}[";
    assert!(own_log_output(true, &[]).await.contains(ESCAPE), "a terminal gets colour");
    assert!(!own_log_output(true, &[("NO_COLOR", "1")]).await.contains(ESCAPE), "NO_COLOR turns it off");
    assert!(!own_log_output(false, &[]).await.contains(ESCAPE), "a pipe gets none");
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

    send_signal(&child, "TERM").await;
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

/// `kill -9` in the middle of a write load: after a restart, every log the
/// server acknowledged is there, and the run's seqs still have no gaps.
async fn kill_9_loses_no_acknowledged_log(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let (mut child, address, _lines) = start_serving(&database.url).await;
    let run = uuid::Uuid::now_v7();
    let (acknowledged_sender, mut acknowledged) = tokio::sync::mpsc::unbounded_channel::<Vec<String>>();
    for writer in 0..4 {
        let mut client = JobLogServiceClient::connect(address.clone()).await.expect("connect");
        let acknowledged = acknowledged_sender.clone();
        tokio::spawn(async move {
            for write in 0.. {
                let logs =
                    (0..=write % 7).map(|i| job_entry(run, &format!("writer {writer} write {write} #{i}"))).collect();
                match client.write_job_logs(pb::WriteJobLogsRequest { logs }).await {
                    Ok(response) => {
                        let ids = response.into_inner().receipts.into_iter().map(|receipt| receipt.id).collect();
                        let _ = acknowledged.send(ids);
                    }
                    Err(_) => return,
                }
            }
        });
    }
    drop(acknowledged_sender);
    let mut ids = Vec::new();
    while ids.len() < 500 {
        ids.extend(acknowledged.recv().await.expect("writers are writing"));
    }
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("killed");
    while let Some(more) = acknowledged.recv().await {
        ids.extend(more);
    }

    let (mut child, address, _lines) = start_serving(&database.url).await;
    let mut reader = LogQueryServiceClient::connect(address).await.expect("connect");
    let mut stored = std::collections::HashSet::new();
    let mut seqs = Vec::new();
    let mut request = pb::ListLogsRequest { job_run_id: run.to_string(), page_size: 1_000, ..Default::default() };
    loop {
        let page = reader.list_logs(request.clone()).await.expect("list").into_inner();
        for log in page.logs {
            seqs.push(log.seq);
            stored.insert(log.id);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    let lost: Vec<&String> = ids.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged logs lost, e.g. {:?}", lost.len(), ids.len(), lost.first());
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "seqs have no gaps after the crash");
    child.kill().await.expect("kill");
}
