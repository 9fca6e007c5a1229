//! `logwell bench`, run as a user runs it: against a throwaway server of its
//! own, and against a server it is given.

use logwell::proto::v1::{self as pb};

use crate::helpers::{Backend, TestServer, logwell};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_prints_its_figures_against_a_throwaway_server() {
    let output = logwell()
        .args(["bench", "--seconds", "1", "--followers", "5", "--follow-rate", "200", "--query-logs", "2000"])
        .args(["--repeat", "3", "--single-connections", "4", "--connections", "2", "--batch", "100"])
        .output()
        .await
        .expect("run logwell bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("logwell bench against a throwaway server at 127.0.0.1:"), "{stdout}");
    let figure = |name: &str| -> f64 {
        let line = stdout.lines().find(|line| line.contains(name)).unwrap_or_else(|| panic!("{name}: {stdout}"));
        let rate = line[line.find(name).expect("name") + name.len()..].split_whitespace().next().expect("figure");
        rate.parse().unwrap_or_else(|_| panic!("a figure after {name}: {line}"))
    };
    assert!(figure("unary batches of 100, 2 connections") > 0.0);
    assert!(figure("one log per RPC, 4 connections") > 0.0);
    assert!(figure("RPC ceiling, 4 connections") > 0.0);
    assert!(figure("IngestLogs streams, batches of 100, 2 streams") > 0.0);
    assert!(stdout.contains("server CPU"), "the throwaway server's resources: {stdout}");
    assert!(stdout.contains("5/5 followers got all 200 logs once, in order"), "{stdout}");
    for query in ["a run's first page", "a run's counts by level", "runs active in the last hour"] {
        let line = stdout.lines().find(|line| line.contains(query)).unwrap_or_else(|| panic!("{query}: {stdout}"));
        assert!(line.contains("p50") && line.contains("p99") && !line.contains("failed"), "{line}");
    }
}

#[tokio::test]
async fn against_a_given_server_it_writes_runs_named_logwell_bench() {
    let server = TestServer::start(Backend::Sqlite).await;
    let output = logwell()
        .args(["bench", "--server", &server.address.to_string(), "--mode", "batches", "--seconds", "1"])
        .args(["--connections", "2", "--batch", "50"])
        .output()
        .await
        .expect("run logwell bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.starts_with(&format!("logwell bench against {}", server.address)), "{stdout}");
    assert!(!stdout.contains("server CPU"), "no figures of a server it did not start: {stdout}");
    assert!(!stdout.contains("IngestLogs"), "only the modes asked for: {stdout}");
    let request = pb::ListJobRunsRequest { name: "logwell-bench".into(), ..Default::default() };
    let runs = server.job_runs().list_job_runs(request).await.expect("list").into_inner().job_runs;
    assert_eq!(runs.len(), 2, "one run per connection");
    assert!(runs.iter().all(|run| run.labels.get("mode").map(String::as_str) == Some("batches") && run.log_count > 0));
}

#[tokio::test]
async fn an_unreachable_server_is_one_line_and_status_3() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = closed.local_addr().expect("address").to_string();
    drop(closed);
    let output = logwell().args(["bench", "--server", &address]).output().await.expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(&format!("logwell: cannot reach {address}")), "{stderr}");
}
