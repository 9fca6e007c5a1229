//! `logwell export`, run as a user runs it: 100,000 logs into each format,
//! read back and compared with ListLogs; and an export that goes on across
//! the server's restart.

use std::process::Stdio;
use std::time::Duration;

use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::{self as pb};
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

use crate::helpers::{Backend, TestServer, free_port, job_entry, logwell, serve_on};

/// Messages that formats get wrong: separators, quotes, line breaks and text
/// beyond ASCII.
const AWKWARD: [&str; 4] = ["plain words", "a, comma and \"quotes\"", "two\nlines", "ünïcødé ✓"];

/// Writes `count` logs into one run, each message numbered and awkward.
async fn fill(writer: &mut JobLogServiceClient<tonic::transport::Channel>, run: Uuid, count: usize) {
    for first in (0..count).step_by(1_000) {
        let logs = (first..(first + 1_000).min(count))
            .map(|index| job_entry(run, &format!("{index} {}", AWKWARD[index % AWKWARD.len()])))
            .collect();
        writer.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    }
}

async fn export(server: &TestServer, args: &[&str]) -> String {
    let output = logwell()
        .args(["export", "--server", &server.address.to_string()])
        .args(args)
        .output()
        .await
        .expect("run logwell export");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "logwell export failed: {stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_of_100_000_logs_equals_list_logs_in_every_format() {
    let server = TestServer::start(Backend::Sqlite).await;
    let run = Uuid::now_v7();
    fill(&mut server.job(), run, 100_000).await;
    let stored = server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await;
    assert_eq!(stored.len(), 100_000);
    let folder = tempfile::tempdir().expect("temporary folder");
    let file = |name: &str| folder.path().join(name).display().to_string();
    let run = run.to_string();

    let said = export(&server, &["--run", &run, "-o", &file("run.ndjson")]).await;
    assert!(said.contains("exported 100000 logs to"), "says what it did: {said}");
    let ndjson = std::fs::read_to_string(file("run.ndjson")).expect("the file");
    let objects: Vec<serde_json::Value> =
        ndjson.lines().map(|line| serde_json::from_str(line).expect("JSON")).collect();
    assert_eq!(objects.len(), stored.len());
    for (object, log) in objects.iter().zip(&stored) {
        assert_eq!((object["id"].as_str(), object["seq"].as_i64()), (Some(log.id.as_str()), Some(log.seq)));
        assert_eq!(object["message"], log.message.as_str());
    }

    export(&server, &["--run", &run, "-o", &file("run.csv")]).await;
    let mut reader = csv::Reader::from_path(file("run.csv")).expect("the file");
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().expect("RFC 4180 rows");
    assert_eq!(rows.len(), stored.len());
    for (row, log) in rows.iter().zip(&stored) {
        assert_eq!((row.get(0), row.get(10)), (Some(log.id.as_str()), Some(log.message.as_str())));
    }

    export(&server, &["--run", &run, "-o", &file("run.txt")]).await;
    let text = std::fs::read_to_string(file("run.txt")).expect("the file");
    let expected_lines: usize = stored.iter().map(|log| log.message.lines().count()).sum();
    assert_eq!(text.lines().count(), expected_lines, "one line per log, and the lines of multi-line messages");
    let first = text.lines().next().expect("a first line");
    assert!(first.ends_with(&format!("INFO  {} {}", &run[..8], stored[0].message)), "{first:?}");
    assert!(first.starts_with(&chrono::Utc::now().format("%Y-").to_string()), "full UTC times: {first:?}");

    export(&server, &["--run", &run, "--format", "json", "-o", &file("run.data")]).await;
    let array: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(file("run.data")).expect("file")).expect("a JSON array");
    assert_eq!(array, objects);
    let names: Vec<String> = std::fs::read_dir(folder.path())
        .expect("list")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names.len(), 4, "no unfinished files are left: {names:?}");
}

#[tokio::test]
async fn a_file_it_cannot_name_or_a_refused_filter_fails_cleanly() {
    let server = TestServer::start(Backend::Sqlite).await;
    let folder = tempfile::tempdir().expect("temporary folder");
    let target = folder.path().join("run.bin").display().to_string();
    let output =
        logwell().args(["export", "--server", &server.address.to_string(), "-o", &target]).output().await.expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot tell the format") && stderr.contains("--format"), "{stderr}");

    let target = folder.path().join("run.csv").display().to_string();
    let output = logwell()
        .args(["export", "--server", &server.address.to_string(), "--run", "not-a-uuid", "-o", &target])
        .output()
        .await
        .expect("run");
    assert_eq!(output.status.code(), Some(2), "INVALID_ARGUMENT is a usage error");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("InvalidArgument") && stderr.contains("job_run_ids"), "{stderr}");
    assert_eq!(std::fs::read_dir(folder.path()).expect("list").count(), 0, "nothing half-written is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_goes_on_across_a_server_restart_without_duplicates() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite:{}", folder.path().join("export.db").display());
    let port = free_port();
    let mut server = serve_on(&url, port).await;
    let run = Uuid::now_v7();
    let mut writer = JobLogServiceClient::connect(format!("http://127.0.0.1:{port}")).await.expect("connect");
    fill(&mut writer, run, 30_000).await;

    // Read slowly: the export waits on the pipe with most logs still unsent
    // while the server goes away and comes back.
    let mut exporting = logwell()
        .args(["export", "--run", &run.to_string(), "--format", "raw", "-o", "-"])
        .args(["--server", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logwell export");
    let mut lines = BufReader::new(exporting.stdout.take().expect("stdout")).lines();
    let mut shown = Vec::new();
    let within = Duration::from_secs(30);
    while shown.len() < 100 {
        shown.push(
            tokio::time::timeout(within, lines.next_line()).await.expect("in time").expect("read").expect("a line"),
        );
    }
    server.start_kill().expect("kill the server");
    server.wait().await.expect("wait");
    let mut server = serve_on(&url, port).await;
    while let Some(line) = tokio::time::timeout(within, lines.next_line()).await.expect("in time").expect("read") {
        shown.push(line);
    }
    let status = exporting.wait().await.expect("wait");
    let mut notices = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut exporting.stderr.take().expect("stderr"), &mut notices)
        .await
        .expect("stderr");
    assert!(status.success(), "{notices}");
    assert!(notices.contains("resuming after"), "the export lost its connection and said so: {notices}");
    let expected: Vec<String> = (0..30_000)
        .flat_map(|index| {
            format!("{index} {}", AWKWARD[index % AWKWARD.len()]).lines().map(String::from).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(shown.len(), expected.len(), "no duplicates, no gaps");
    assert!(shown == expected, "every log once, in order");
    server.start_kill().expect("stop");
}
