//! `logwell stats`, run as a user runs it: counts grouped and over time,
//! read back from its table, CSV and NDJSON output.

use std::collections::BTreeMap;
use std::process::Output;

use chrono::{DateTime, TimeDelta, Utc};
use logwell::proto::v1::{self as pb};
use uuid::Uuid;

use crate::helpers::{Backend, TestServer, job_entry, logwell};

async fn stats(server: &TestServer, args: &[&str]) -> Output {
    logwell().arg("stats").args(["--server", &server.address.to_string()]).args(args).output().await.expect("run")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "logwell stats failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

/// 2 hours of logs of one run, 08:00 to 10:00 with nothing from 09:00 to
/// 10:00: levels and workers in known numbers.
async fn fill(server: &TestServer, start: DateTime<Utc>) -> Uuid {
    let run = Uuid::now_v7();
    let mut logs = Vec::new();
    for index in 0..60i64 {
        let mut entry = job_entry(run, &format!("line {index}"));
        entry.level = if index % 3 == 0 { pb::LogLevel::Error } else { pb::LogLevel::Info } as i32;
        let time =
            start + TimeDelta::minutes(index) + if index >= 40 { TimeDelta::hours(1) } else { TimeDelta::zero() };
        entry.time = Some(prost_types::Timestamp { seconds: time.timestamp(), nanos: 0 });
        let worker = format!("gpu-{}", index % 2);
        entry.metadata = Some(prost_types::Struct {
            fields: BTreeMap::from([("worker_id".to_string(), prost_types::Value::from(worker))]),
        });
        logs.push(entry);
    }
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    run
}

#[tokio::test]
async fn counts_group_and_bucket_as_asked() {
    let server = TestServer::start(Backend::Sqlite).await;
    let start = DateTime::parse_from_rfc3339("2026-11-25T08:00:00Z").expect("time").with_timezone(&Utc);
    let run = fill(&server, start).await.to_string();

    let table = stdout(&stats(&server, &["--run", &run, "--by", "level"]).await);
    let row = |name: &str| {
        table.lines().find(|line| line.contains(name)).map(|line| line.split_whitespace().collect::<Vec<_>>())
    };
    assert_eq!(row(" info "), Some(vec!["│", "info", "40", "66.7%", "│"]), "{table}");
    assert_eq!(row(" error "), Some(vec!["│", "error", "20", "33.3%", "│"]), "{table}");
    assert_eq!(row("total"), Some(vec!["│", "total", "60", "│"]), "{table}");

    let ndjson =
        stdout(&stats(&server, &["--run", &run, "--by", "meta.worker_id", "--by", "level", "-o", "ndjson"]).await);
    let mut counted: Vec<(String, String, i64)> = ndjson
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON"))
        .map(|row| {
            let group = &row["group"];
            let text = |key: &str| group[key].as_str().expect("text").to_string();
            (text("meta.worker_id"), text("level"), row["count"].as_i64().expect("count"))
        })
        .collect();
    counted.sort();
    let expected = [("gpu-0", "error", 10), ("gpu-0", "info", 20), ("gpu-1", "error", 10), ("gpu-1", "info", 20)];
    let expected: Vec<(String, String, i64)> =
        expected.iter().map(|(worker, level, count)| (worker.to_string(), level.to_string(), *count)).collect();
    assert_eq!(counted, expected);

    let every = ["--run", &run, "--every", "30m", "--from", "2026-11-25T08:00:00Z", "--to", "2026-11-25T10:00:00Z"];
    let histogram = stdout(&stats(&server, &[&every[..], &["--utc"]].concat()).await);
    let rows: Vec<&str> = histogram.lines().filter(|line| line.contains("2026-11-25")).collect();
    assert_eq!(rows.len(), 4, "every bucket of the range, the empty one too: {histogram}");
    assert!(rows[0].contains("08:00") && rows[0].contains(" 30 ") && rows[0].contains(&"█".repeat(40)), "{histogram}");
    assert!(rows[1].contains("08:30") && rows[1].contains(" 10 "), "{histogram}");
    assert!(rows[2].contains("09:00") && rows[2].contains(" 0 ") && !rows[2].contains('█'), "{histogram}");
    assert!(rows[3].contains("09:30") && rows[3].contains(" 20 "), "{histogram}");

    let csv_text = stdout(&stats(&server, &[&every[..], &["--by", "level", "-o", "csv"]].concat()).await);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(reader.headers().expect("header").iter().collect::<Vec<_>>(), ["level", "bucket_start", "count"]);
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().expect("rows");
    let sum: i64 = rows.iter().map(|row| row[2].parse::<i64>().expect("a count")).sum();
    assert_eq!(sum, 60);
    assert!(rows.iter().any(|row| &row[0] == "error" && &row[1] == "2026-11-25T08:00:00Z" && &row[2] == "10"));
}

#[tokio::test]
async fn an_unknown_grouping_or_too_many_buckets_is_one_clear_line() {
    let server = TestServer::start(Backend::Sqlite).await;
    let output = stats(&server, &["--by", "colour"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("group by level, type, stream, source, run, task-run or meta.KEY"), "{stderr}");

    let output = stats(&server, &["--every", "1s", "--since", "30days"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--every 1s makes 2592000 buckets") && stderr.contains("widen --every"), "{stderr}");

    // Without a range, the server bounds the buckets between the logs found.
    let run = Uuid::now_v7();
    let mut logs = vec![job_entry(run, "early"), job_entry(run, "late")];
    logs[0].time = Some(prost_types::Timestamp { seconds: 1_000_000_000, nanos: 0 });
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    let output = stats(&server, &["--every", "1h", "--run", &run.to_string()]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("InvalidArgument") && stderr.contains("bucket"), "{stderr}");
}
