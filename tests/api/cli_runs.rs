//! `logwell runs`, run as a user runs it: the real binary against a real
//! server.

use std::process::Output;

use logwell::proto::v1::{self as pb};
use uuid::Uuid;

use crate::helpers::{Backend, TestServer, job_entry, logwell};

async fn runs(server: &TestServer, args: &[&str]) -> Output {
    // The connection flags after the subcommand, as people type them.
    logwell()
        .arg("runs")
        .args(args)
        .args(["--server", &server.address.to_string()])
        .output()
        .await
        .expect("run logwell runs")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "logwell runs failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

fn ids(ndjson: &str) -> Vec<String> {
    ndjson
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).expect("JSON")["job_run_id"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn runs_are_listed_shown_completed_and_deleted() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (quiet, noisy, nightly) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut error = job_entry(noisy, "it broke");
    error.level = pb::LogLevel::Error as i32;
    let logs = vec![job_entry(quiet, "fine"), error, job_entry(nightly, "building")];
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    server
        .job_runs()
        .start_job_run(pb::StartJobRunRequest {
            job_run_id: nightly.to_string(),
            name: "nightly-build".into(),
            labels: [("branch".to_string(), "main".to_string())].into(),
        })
        .await
        .expect("start");

    let completed = stdout(
        &runs(&server, &["complete", &nightly.to_string(), "--outcome", "failed", "--summary", "3 tests failed"]).await,
    );
    assert!(completed.contains("state         failed"), "{completed}");
    assert!(completed.contains("summary       3 tests failed"), "{completed}");

    let everything = stdout(&runs(&server, &["list", "--output", "ndjson"]).await);
    assert_eq!(ids(&everything).len(), 3);
    let failed = stdout(&runs(&server, &["list", "--outcome", "failed", "--output", "ndjson"]).await);
    assert_eq!(ids(&failed), [nightly.to_string()]);
    let labelled =
        stdout(&runs(&server, &["list", "--label", "branch=main", "--name", "nightly-build", "-o", "ndjson"]).await);
    assert_eq!(ids(&labelled), [nightly.to_string()]);
    let with_errors = stdout(&runs(&server, &["list", "--has-errors", "--output", "ndjson"]).await);
    assert_eq!(ids(&with_errors), [noisy.to_string()]);
    let open = stdout(&runs(&server, &["list", "--state", "open", "--since", "1h", "-o", "ndjson"]).await);
    assert_eq!(ids(&open).len(), 2);
    let one = stdout(&runs(&server, &["list", "--limit", "1", "-o", "ndjson"]).await);
    assert_eq!(ids(&one).len(), 1);

    let table = stdout(&runs(&server, &["list"]).await);
    assert!(table.contains("job run") && table.contains("last activity"), "a header: {table}");
    assert!(table.contains(&noisy.to_string()) && table.contains("nightly-build"), "{table}");

    let shown = stdout(&runs(&server, &["show", &noisy.to_string()]).await);
    assert!(shown.contains("state         open"), "{shown}");
    assert!(shown.contains("trace 0, debug 0, info 0, warn 0, error 1, fatal 0"), "{shown}");
    let as_json = stdout(&runs(&server, &["show", &nightly.to_string(), "-o", "ndjson"]).await);
    let object: serde_json::Value = serde_json::from_str(as_json.trim()).expect("JSON");
    assert_eq!(object["labels"], serde_json::json!({"branch": "main"}));
    assert_eq!(object["level_counts"]["info"], 1);

    let deleted = stdout(&runs(&server, &["delete", &nightly.to_string()]).await);
    assert_eq!(deleted, format!("deleted the logs of job run {nightly}: 1\n"));
}

#[tokio::test]
async fn bad_input_and_unknown_runs_are_one_line_and_a_documented_status() {
    let server = TestServer::start(Backend::Sqlite).await;
    let unknown = Uuid::now_v7().to_string();
    let cases: [(&[&str], i32, &str); 4] = [
        (&["complete", &unknown, "--outcome", "maybe"], 2, "unknown outcome"),
        (&["list", "--label", "main"], 2, "KEY=VALUE"),
        (&["show", &unknown], 5, "NotFound"),
        (&["delete", &unknown], 5, "NotFound"),
    ];
    for (args, status, names) in cases {
        let output = runs(&server, args).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(status), "{args:?}: {stderr}");
        assert!(stderr.contains(names), "{args:?} names the problem: {stderr}");
    }
}
