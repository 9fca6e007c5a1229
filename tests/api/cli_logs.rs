//! `logwell logs`, run as a user runs it: the real binary against a real
//! server, its output read back in every format.

use std::collections::BTreeMap;
use std::process::Output;

use logwell::proto::v1::{self as pb};
use uuid::Uuid;

use crate::helpers::{Backend, TestServer, job_entry, logwell};

/// Messages that formats get wrong: separators, quotes, line breaks, escape
/// codes and text beyond ASCII.
const AWKWARD: [&str; 5] =
    ["plain words", "a, comma and \"quotes\"", "two\nlines", "\u{1b}[31mred\u{1b}[0m text", "ünïcødé ✓"];

async fn logs(server: &TestServer, args: &[&str], environment: &[(&str, &str)]) -> Output {
    logwell()
        .arg("logs")
        .args(["--server", &server.address.to_string()])
        .args(args)
        .envs(environment.iter().copied())
        .output()
        .await
        .expect("run logwell logs")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "logwell logs failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

/// A run of the awkward messages, with metadata on each, as written.
async fn awkward_run(server: &TestServer) -> (Uuid, Vec<pb::Log>) {
    let run = Uuid::now_v7();
    let entries = AWKWARD
        .iter()
        .enumerate()
        .map(|(index, message)| {
            let mut entry = job_entry(run, message);
            entry.source = "builder".into();
            entry.metadata = Some(prost_types::Struct {
                fields: BTreeMap::from([
                    ("attempt".to_string(), prost_types::Value::from(index as f64)),
                    ("worker_id".to_string(), prost_types::Value::from(format!("gpu-{index}"))),
                ]),
            });
            entry
        })
        .collect();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs: entries }).await.expect("write");
    let stored = server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await;
    (run, stored)
}

#[tokio::test]
async fn every_format_carries_what_list_logs_returns() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (run, stored) = awkward_run(&server).await;
    let run = run.to_string();
    let messages: Vec<&str> = stored.iter().map(|log| log.message.as_str()).collect();
    assert_eq!(messages, AWKWARD);

    let ndjson = stdout(&logs(&server, &["--run", &run, "--output", "ndjson"], &[]).await);
    let objects: Vec<serde_json::Value> =
        ndjson.lines().map(|line| serde_json::from_str(line).expect("one JSON object per line")).collect();
    assert_eq!(objects.len(), stored.len());
    for (object, log) in objects.iter().zip(&stored) {
        assert_eq!(object["id"], log.id.as_str());
        assert_eq!(object["message"], log.message.as_str());
        assert_eq!(object["seq"], log.seq);
        assert_eq!(object["type"], "job");
        assert_eq!(object["level"], "info");
        assert_eq!(object["stream"], "stdout");
        assert_eq!(object["source"], "builder");
        assert_eq!(object["job_run_id"], run.as_str());
    }
    assert_eq!(objects[3]["metadata"], serde_json::json!({"attempt": 3, "worker_id": "gpu-3"}));

    let json = stdout(&logs(&server, &["--run", &run, "--output", "json"], &[]).await);
    let array: Vec<serde_json::Value> = serde_json::from_str(&json).expect("one JSON array");
    assert_eq!(array, objects);

    let csv_text = stdout(&logs(&server, &["--run", &run, "--output", "csv"], &[]).await);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers().expect("header").clone();
    assert_eq!(header.get(10), Some("message"));
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().expect("RFC 4180 rows");
    let csv_messages: Vec<&str> = rows.iter().filter_map(|row| row.get(10)).collect();
    assert_eq!(csv_messages, AWKWARD, "commas, quotes, newlines and escape codes survive the round trip");
    assert_eq!(rows[1].get(4), Some("2"), "the seq column");

    let raw = stdout(&logs(&server, &["--run", &run, "--output", "raw"], &[]).await);
    assert_eq!(raw, format!("{}\n", AWKWARD.join("\n")), "messages byte for byte");
}

#[tokio::test]
async fn text_is_coloured_on_a_terminal_only() {
    let server = TestServer::start(Backend::Sqlite).await;
    let run = Uuid::now_v7();
    let mut warning = job_entry(run, "disk almost full");
    warning.level = pb::LogLevel::Warn as i32;
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs: vec![warning] }).await.expect("write");
    let run = run.to_string();

    let piped = stdout(&logs(&server, &["--run", &run, "--utc"], &[]).await);
    assert!(!piped.contains('\u{1b}'), "no escape codes into a pipe: {piped:?}");
    let line = piped.trim_end();
    assert!(line.ends_with(&format!("WARN  {} disk almost full", &run[..8])), "{line:?}");

    // `script` gives the command a pseudo-terminal, as a person's shell does.
    let on_terminal = |no_color: bool| {
        let command = format!("{} logs --server {} --run {run} --utc", env!("CARGO_BIN_EXE_logwell"), server.address);
        let mut script = tokio::process::Command::new("script");
        script.args(["--quiet", "--return", "--command", &command, "/dev/null"]).env("TERM", "xterm");
        script.env_remove("NO_COLOR").env_remove("CLICOLOR").env_remove("CLICOLOR_FORCE");
        if no_color {
            script.env("NO_COLOR", "1");
        }
        script.output()
    };
    let coloured = on_terminal(false).await.expect("script");
    let coloured = String::from_utf8_lossy(&coloured.stdout);
    assert!(coloured.contains("\u{1b}[33mWARN "), "warn in yellow on a terminal: {coloured:?}");
    let plain = on_terminal(true).await.expect("script");
    let plain = String::from_utf8_lossy(&plain.stdout);
    assert!(plain.contains("WARN  ") && !plain.contains("\u{1b}[33m"), "NO_COLOR is honoured: {plain:?}");
}

#[tokio::test]
async fn filters_limits_and_paging_reach_the_server() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (run, _) = awkward_run(&server).await;
    let run = run.to_string();
    let many = Uuid::now_v7();
    for chunk in 0..3 {
        let entries = (0..1_000).map(|index| job_entry(many, &format!("line {}", chunk * 1_000 + index))).collect();
        server.job().write_job_logs(pb::WriteJobLogsRequest { logs: entries }).await.expect("write");
    }
    let many = many.to_string();

    let everything = stdout(&logs(&server, &["--run", &many, "--limit", "0", "--output", "raw"], &[]).await);
    let expected: Vec<String> = (0..3_000).map(|index| format!("line {index}")).collect();
    assert_eq!(everything.lines().collect::<Vec<_>>(), expected, "every page, in order, once");

    let newest = logs(&server, &["--run", &many, "--limit", "3", "--order", "desc", "--output", "raw"], &[]).await;
    assert_eq!(stdout(&newest).lines().collect::<Vec<_>>(), ["line 2999", "line 2998", "line 2997"]);
    let notice = String::from_utf8_lossy(&newest.stderr);
    assert!(notice.contains("--limit 0"), "says that more match: {notice:?}");

    let by_metadata = stdout(&logs(&server, &["--run", &run, "-m", "worker_id=gpu-1", "--output", "raw"], &[]).await);
    assert_eq!(by_metadata, "a, comma and \"quotes\"\n");
    let by_number = stdout(&logs(&server, &["--run", &run, "-m", "attempt=[0,4]", "--output", "raw"], &[]).await);
    assert_eq!(by_number, "plain words\nünïcødé ✓\n");
    let by_text = stdout(&logs(&server, &["--run", &run, "--text", "RED", "-i", "--output", "raw"], &[]).await);
    assert_eq!(by_text, "\u{1b}[31mred\u{1b}[0m text\n");
    let recent = stdout(&logs(&server, &["--run", &run, "--since", "1h", "--output", "raw"], &[]).await);
    assert_eq!(recent.lines().count(), AWKWARD.len() + 1, "a message of two lines prints as two");
    let future = stdout(&logs(&server, &["--from", "2999-01-01T00:00:00Z", "--output", "raw"], &[]).await);
    assert_eq!(future, "");
    let warnings = stdout(&logs(&server, &["--run", &run, "--min-level", "warn"], &[]).await);
    assert_eq!(warnings, "");
}

#[tokio::test]
async fn bad_input_is_one_line_and_a_documented_exit_status() {
    let server = TestServer::start(Backend::Sqlite).await;
    let cases: [(&[&str], i32, &str); 5] = [
        (&["-m", "=gpu-3"], 2, "needs a key"),
        (&["--since", "banana"], 2, "--since"),
        (&["--from", "yesterday"], 2, "2026-11-25T08:00:00Z"),
        (&["--level", "loud"], 2, "unknown level"),
        (&["--run", "not-a-uuid"], 2, "filter.job_run_ids[0]"),
    ];
    for (args, status, names) in cases {
        let output = logs(&server, args, &[]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(status), "{args:?}: {stderr}");
        assert!(stderr.contains(names), "{args:?} names the problem: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
        assert_eq!(stderr.matches(names).count(), 1, "said once: {stderr}");
    }

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = closed.local_addr().expect("address").to_string();
    drop(closed);
    let output = logwell().args(["logs", "--server", &address]).output().await.expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with(&format!("logwell: cannot reach {address}")), "{stderr}");
}
