//! `logwell tail`, run as a user runs it: the real binary following a run
//! on a real server, across the server's restart.

use std::process::Stdio;
use std::time::Duration;

use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::job_run_service_client::JobRunServiceClient;
use logwell::proto::v1::{self as pb};
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

use crate::helpers::{Backend, TestServer, free_port, job_entry, logwell, serve_on};

async fn write_lines(port: u16, run: Uuid, lines: std::ops::Range<usize>) {
    let mut writer = JobLogServiceClient::connect(format!("http://127.0.0.1:{port}")).await.expect("connect");
    let logs = lines.map(|line| job_entry(run, &format!("line {line}"))).collect();
    writer.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
}

async fn complete(channel: tonic::transport::Channel, run: Uuid, outcome: pb::JobRunOutcome) {
    JobRunServiceClient::new(channel)
        .complete_job_run(pb::CompleteJobRunRequest {
            job_run_id: run.to_string(),
            outcome: outcome as i32,
            summary: "the end".into(),
        })
        .await
        .expect("complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_across_a_server_restart_shows_every_line_once() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite:{}", folder.path().join("tail.db").display());
    let port = free_port();
    let mut server = serve_on(&url, port).await;
    let run = Uuid::now_v7();
    write_lines(port, run, 0..100).await;

    let mut tail = logwell()
        .args(["tail", &run.to_string(), "--output", "raw", "--exit-status"])
        .args(["--server", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logwell tail");
    let mut shown = BufReader::new(tail.stdout.take().expect("stdout")).lines();
    let mut lines = Vec::new();
    let within = Duration::from_secs(30);
    while lines.len() < 100 {
        let line = tokio::time::timeout(within, shown.next_line()).await.expect("in time").expect("read");
        lines.push(line.expect("a line before the end"));
    }

    server.start_kill().expect("kill the server");
    server.wait().await.expect("wait");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut server = serve_on(&url, port).await;
    write_lines(port, run, 100..150).await;
    write_lines(port, run, 150..200).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).expect("uri");
    complete(channel.connect().await.expect("connect"), run, pb::JobRunOutcome::Failed).await;

    while let Some(line) = tokio::time::timeout(within, shown.next_line()).await.expect("in time").expect("read") {
        lines.push(line);
    }
    let status = tokio::time::timeout(within, tail.wait()).await.expect("tail ends").expect("wait");
    let expected: Vec<String> = (0..200).map(|line| format!("line {line}")).collect();
    assert_eq!(lines, expected, "every line, in order, exactly once");
    assert_eq!(status.code(), Some(6), "--exit-status of a failed run");
    let mut notices = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut tail.stderr.take().expect("stderr"), &mut notices)
        .await
        .expect("stderr");
    assert!(notices.contains("resuming after seq 100"), "says it reconnects: {notices}");
    assert!(notices.contains("completed, failed: the end"), "says how the run ended: {notices}");
    server.start_kill().expect("stop");
}

#[tokio::test]
async fn the_exit_status_follows_the_outcome_only_when_asked() {
    let server = TestServer::start(Backend::Sqlite).await;
    let cases = [
        (pb::JobRunOutcome::Succeeded, true, 0),
        (pb::JobRunOutcome::Failed, true, 6),
        (pb::JobRunOutcome::Cancelled, true, 7),
        (pb::JobRunOutcome::Failed, false, 0),
    ];
    for (outcome, asked, expected) in cases {
        let run = Uuid::now_v7();
        server
            .job()
            .write_job_logs(pb::WriteJobLogsRequest { logs: vec![job_entry(run, "work")] })
            .await
            .expect("write");
        complete(server.channel.clone(), run, outcome).await;
        let mut tail = logwell();
        tail.args(["tail", &run.to_string(), "--output", "raw", "--server", &server.address.to_string()]);
        if asked {
            tail.arg("--exit-status");
        }
        let output = tail.output().await.expect("run logwell tail");
        assert_eq!(output.status.code(), Some(expected), "{outcome:?}, --exit-status {asked}");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "work\n");
    }
    let unknown = logwell()
        .args(["tail", "not-a-run", "--server", &server.address.to_string()])
        .output()
        .await
        .expect("run logwell tail");
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("job_run_id"), "names the field: {stderr}");
}

#[tokio::test]
async fn logs_follow_is_a_tail_and_names_the_filters_it_cannot_follow() {
    let server = TestServer::start(Backend::Sqlite).await;
    let run = Uuid::now_v7();
    let mut logs = vec![job_entry(run, "quiet"), job_entry(run, "loud")];
    logs[1].level = pb::LogLevel::Warn as i32;
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    complete(server.channel.clone(), run, pb::JobRunOutcome::Succeeded).await;
    let address = server.address.to_string();
    let output = logwell()
        .args(["logs", "-f", "--run", &run.to_string(), "--min-level", "warn", "-o", "raw", "--server", &address])
        .output()
        .await
        .expect("run logwell logs -f");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "loud\n", "followed to the run's completion, filtered");

    for (flags, names) in
        [(&["--text", "x"][..], "--text"), (&["--run", "0193a1b2-0c3d-7e4f-8a9b-0c1d2e3f4a5b"][..], "one --run")]
    {
        let output = logwell()
            .args(["logs", "-f", "--run", &run.to_string(), "--server", &address])
            .args(flags)
            .output()
            .await
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(names), "{stderr}");
    }
}
