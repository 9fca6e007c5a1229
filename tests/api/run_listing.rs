//! Job runs as things to list: StartJobRun's names and labels, counts by
//! level kept as logs are written, and ListJobRuns' filters and paging.

use std::collections::HashMap;
use std::time::Duration;

use logwell::model::{Outcome, RunCursor, RunFilter, RunQuery, RunState};
use logwell::proto::v1::{self as pb};
use prost_types::Timestamp;
use tonic::Code;
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestServer, assert_invalid, entry, job_entry, task_entry};

conformance!(
    the_run_listing_reads_the_activity_index,
    starting_names_a_run_once,
    counts_by_level_follow_the_writes,
    listings_filter_by_state_outcome_name_labels_and_level,
    listings_page_by_activity_each_run_once
);

fn start(run: Uuid, name: &str, labels: &[(&str, &str)]) -> pb::StartJobRunRequest {
    pb::StartJobRunRequest {
        job_run_id: run.to_string(),
        name: name.into(),
        labels: labels.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect(),
    }
}

fn at_level(log: pb::LogEntry, level: pb::LogLevel) -> pb::LogEntry {
    pb::LogEntry { level: level.into(), ..log }
}

async fn write(server: &TestServer, logs: Vec<pb::LogEntry>) {
    let (jobs, tasks): (Vec<_>, Vec<_>) = logs.into_iter().partition(|log| log.task_run_id.is_empty());
    if !jobs.is_empty() {
        server.job().write_job_logs(pb::WriteJobLogsRequest { logs: jobs }).await.expect("write");
    }
    if !tasks.is_empty() {
        server.task().write_task_logs(pb::WriteTaskLogsRequest { logs: tasks }).await.expect("write");
    }
}

async fn write_system(server: &TestServer, message: &str) {
    let log = pb::WriteSystemLogRequest { log: Some(entry(message)) };
    server.system().write_system_log(log).await.expect("write");
}

async fn complete(server: &TestServer, run: Uuid, outcome: pb::JobRunOutcome) {
    let completion =
        pb::CompleteJobRunRequest { job_run_id: run.to_string(), outcome: outcome.into(), summary: "".into() };
    server.job_runs().complete_job_run(completion).await.expect("complete");
}

async fn list(server: &TestServer, request: pb::ListJobRunsRequest) -> Result<pb::ListJobRunsResponse, tonic::Status> {
    server.job_runs().list_job_runs(request).await.map(tonic::Response::into_inner)
}

/// The ids listed, in order, on one page.
async fn listed(server: &TestServer, request: pb::ListJobRunsRequest) -> Vec<String> {
    let page = list(server, request).await.expect("list");
    page.job_runs.into_iter().map(|run| run.job_run_id).collect()
}

async fn starting_names_a_run_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut runs = server.job_runs();
    let run = Uuid::now_v7();
    let labels = [("branch", "main"), ("trigger", "cron")];
    let started = runs.start_job_run(start(run, "nightly-build", &labels)).await.expect("start");
    let started = started.into_inner().job_run.expect("run");
    assert_eq!((started.name.as_str(), started.labels.len()), ("nightly-build", 2));
    assert_eq!((started.state(), started.log_count), (pb::JobRunState::Open, 0));
    assert!(started.started_at.is_some() && started.last_activity_time.is_some());

    let retried = runs.start_job_run(start(run, "nightly-build", &labels)).await.expect("a retry is fine");
    assert_eq!(retried.into_inner().job_run, Some(started.clone()), "and changes nothing");
    let renamed = runs.start_job_run(start(run, "other", &labels)).await.expect_err("another name");
    assert_eq!(renamed.code(), Code::FailedPrecondition);
    assert!(renamed.message().contains("nightly-build"), "{}", renamed.message());
    let relabelled = runs.start_job_run(start(run, "nightly-build", &labels[..1])).await;
    assert_eq!(relabelled.expect_err("other labels").code(), Code::FailedPrecondition);

    // A run its first logs began takes a name later, and keeps its logs.
    let early = Uuid::now_v7();
    write(&server, vec![job_entry(early, "before the start")]).await;
    let named = runs.start_job_run(start(early, "late-start", &[])).await.expect("start").into_inner();
    let named = named.job_run.expect("run");
    assert_eq!((named.name.as_str(), named.log_count), ("late-start", 1));
    // A run completed without a start cannot be started any more.
    let finished = Uuid::now_v7();
    complete(&server, finished, pb::JobRunOutcome::Succeeded).await;
    let late = runs.start_job_run(start(finished, "too-late", &[])).await.expect_err("complete");
    assert_eq!(late.code(), Code::FailedPrecondition);
    // Writing to a started run goes on as usual.
    write(&server, vec![job_entry(run, "first line")]).await;
    let state = runs.get_job_run(pb::GetJobRunRequest { job_run_id: run.to_string() }).await.expect("get");
    assert_eq!(state.into_inner().job_run.expect("run").log_count, 1);

    let long_name = "n".repeat(257);
    assert_invalid(runs.start_job_run(start(run, &long_name, &[])).await, &["name"]);
    assert_invalid(runs.start_job_run(start(run, "a\nb", &[])).await, &["name"]);
    assert_invalid(runs.start_job_run(start(Uuid::nil(), "x", &[])).await, &["job_run_id"]);
    assert_invalid(runs.start_job_run(start(run, "x", &[("bad key", "v")])).await, &["labels[\"bad key\"]"]);
    assert_invalid(runs.start_job_run(start(run, "x", &[("", "v")])).await, &["labels[\"\"]"]);
    let long_value = "v".repeat(257);
    assert_invalid(runs.start_job_run(start(run, "x", &[("k", &long_value)])).await, &["labels[\"k\"]"]);
    let many: Vec<(String, String)> = (0..33).map(|index| (format!("k{index}"), "v".into())).collect();
    let too_many = pb::StartJobRunRequest { labels: many.into_iter().collect(), ..start(run, "x", &[]) };
    assert_invalid(runs.start_job_run(too_many).await, &["labels"]);
}

async fn counts_by_level_follow_the_writes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (run, task) = (Uuid::now_v7(), Uuid::now_v7());
    let levels = [
        (pb::LogLevel::Trace, 1),
        (pb::LogLevel::Debug, 2),
        (pb::LogLevel::Info, 5),
        (pb::LogLevel::Warn, 3),
        (pb::LogLevel::Error, 4),
        (pb::LogLevel::Fatal, 1),
    ];
    let mut logs = Vec::new();
    for (level, count) in levels {
        for index in 0..count {
            let log = if index % 2 == 0 { job_entry(run, "job line") } else { task_entry(run, task, "task line") };
            logs.push(pb::LogEntry { id: Uuid::now_v7().to_string(), ..at_level(log, level) });
        }
    }
    write(&server, logs.clone()).await;
    // Resends store nothing, and count nothing.
    write(&server, logs[..6].to_vec()).await;
    // Through IngestLogs too.
    let ingested = pb::IngestLogsRequest {
        r#type: pb::LogType::Job.into(),
        logs: vec![at_level(job_entry(run, "ingested"), pb::LogLevel::Error)],
        ..Default::default()
    };
    let answers = server.ingest().ingest_logs(tokio_stream::iter([ingested])).await.expect("ingest");
    let answer = answers.into_inner().message().await.expect("answer").expect("one answer");
    assert!(answer.refusal.is_none(), "{answer:?}");
    write_system(&server, "system logs are not a run").await;

    let get = || {
        let mut client = server.job_runs();
        async move {
            let run = client.get_job_run(pb::GetJobRunRequest { job_run_id: run.to_string() }).await.expect("get");
            run.into_inner().job_run.expect("run")
        }
    };
    let state = get().await;
    let counts = state.level_counts.expect("counts");
    assert_eq!([counts.trace, counts.debug, counts.info, counts.warn, counts.error, counts.fatal], [1, 2, 5, 3, 5, 1]);
    assert_eq!(state.log_count, 17, "the counts add up to the logs");

    complete(&server, run, pb::JobRunOutcome::Failed).await;
    let deletion = pb::DeleteJobRunRequest { job_run_id: run.to_string() };
    server.job_runs().delete_job_run(deletion).await.expect("delete");
    let deleted = get().await;
    assert_eq!(deleted.level_counts, Some(pb::LevelCounts::default()), "a deleted run holds no logs");
}

async fn listings_filter_by_state_outcome_name_labels_and_level(backend: Backend) {
    let server = TestServer::start(backend).await;
    write_system(&server, "the system sequence is never listed").await;
    let mut runs = server.job_runs();
    let nightly = |branch: &str| start(Uuid::nil(), "nightly-build", &[("branch", branch)]);
    // Seven runs: name, labels, outcome, and the worst level each logged.
    let cases = [
        ("nightly main failed", nightly("main"), Some(pb::JobRunOutcome::Failed), pb::LogLevel::Error),
        ("nightly main ok", nightly("main"), Some(pb::JobRunOutcome::Succeeded), pb::LogLevel::Warn),
        ("nightly dev failed", nightly("dev"), Some(pb::JobRunOutcome::Failed), pb::LogLevel::Fatal),
        ("nightly dev open", nightly("dev"), None, pb::LogLevel::Info),
        ("deploy cancelled", start(Uuid::nil(), "deploy", &[]), Some(pb::JobRunOutcome::Cancelled), pb::LogLevel::Info),
        ("unnamed open", start(Uuid::nil(), "", &[]), None, pb::LogLevel::Error),
        (
            "unnamed failed, no logs",
            start(Uuid::nil(), "", &[]),
            Some(pb::JobRunOutcome::Failed),
            pb::LogLevel::Unspecified,
        ),
    ];
    let mut ids: HashMap<&str, String> = HashMap::new();
    for (what, request, outcome, worst) in cases {
        let run = Uuid::now_v7();
        if !request.name.is_empty() {
            runs.start_job_run(pb::StartJobRunRequest { job_run_id: run.to_string(), ..request }).await.expect("start");
        }
        if worst != pb::LogLevel::Unspecified {
            write(&server, vec![job_entry(run, "fine"), at_level(job_entry(run, what), worst)]).await;
        }
        if let Some(outcome) = outcome {
            complete(&server, run, outcome).await;
        }
        ids.insert(what, run.to_string());
    }
    let expect = |names: &[&str]| -> Vec<String> {
        let mut expected: Vec<String> = names.iter().map(|name| ids[name].clone()).collect();
        // Runs written within one second tie on activity, highest id first;
        // ids are v7 UUIDs, so that is newest first within the second.
        expected.sort_by(|a, b| b.cmp(a));
        expected
    };
    let sorted = |mut got: Vec<String>| {
        got.sort_by(|a, b| b.cmp(a));
        got
    };
    let all = listed(&server, pb::ListJobRunsRequest::default()).await;
    assert_eq!(sorted(all.clone()), expect(&ids.keys().copied().collect::<Vec<_>>()), "every run, once");

    let open = pb::ListJobRunsRequest { state: pb::JobRunState::Open.into(), ..Default::default() };
    assert_eq!(sorted(listed(&server, open).await), expect(&["nightly dev open", "unnamed open"]));
    let failed = pb::ListJobRunsRequest { outcomes: vec![pb::JobRunOutcome::Failed.into()], ..Default::default() };
    assert_eq!(
        sorted(listed(&server, failed).await),
        expect(&["nightly main failed", "nightly dev failed", "unnamed failed, no logs"])
    );
    let failed_nightly_main = pb::ListJobRunsRequest {
        outcomes: vec![pb::JobRunOutcome::Failed.into(), pb::JobRunOutcome::Cancelled.into()],
        name: "nightly-build".into(),
        labels: [("branch".to_string(), "main".to_string())].into(),
        ..Default::default()
    };
    assert_eq!(listed(&server, failed_nightly_main).await, expect(&["nightly main failed"]));
    let with_errors = pb::ListJobRunsRequest { min_level: pb::LogLevel::Error.into(), ..Default::default() };
    assert_eq!(
        sorted(listed(&server, with_errors).await),
        expect(&["nightly main failed", "nightly dev failed", "unnamed open"])
    );
    let with_logs = pb::ListJobRunsRequest { min_level: pb::LogLevel::Trace.into(), ..Default::default() };
    assert_eq!(listed(&server, with_logs).await.len(), 6, "every run that logged");
    let dev = pb::ListJobRunsRequest { labels: [("branch".into(), "dev".into())].into(), ..Default::default() };
    assert_eq!(sorted(listed(&server, dev).await), expect(&["nightly dev failed", "nightly dev open"]));
    let nobody = pb::ListJobRunsRequest { name: "no-such-job".into(), ..Default::default() };
    assert!(listed(&server, nobody).await.is_empty());

    // Activity windows: everything happened in the last minute.
    let now = chrono::Utc::now();
    let at = |time: chrono::DateTime<chrono::Utc>| Some(Timestamp { seconds: time.timestamp(), nanos: 0 });
    let recent = pb::ListJobRunsRequest { start_time: at(now - chrono::Duration::minutes(1)), ..Default::default() };
    assert_eq!(listed(&server, recent).await.len(), 7);
    let older = pb::ListJobRunsRequest { end_time: at(now - chrono::Duration::minutes(1)), ..Default::default() };
    assert!(listed(&server, older).await.is_empty());
    let future = pb::ListJobRunsRequest { start_time: at(now + chrono::Duration::minutes(1)), ..Default::default() };
    assert!(listed(&server, future).await.is_empty());

    // Bad input names its field.
    let contradiction = pb::ListJobRunsRequest {
        state: pb::JobRunState::Open.into(),
        outcomes: vec![pb::JobRunOutcome::Failed.into()],
        ..Default::default()
    };
    assert_invalid(list(&server, contradiction).await, &["outcomes"]);
    let unset = pb::ListJobRunsRequest { outcomes: vec![0], ..Default::default() };
    assert_invalid(list(&server, unset).await, &["outcomes[0]"]);
    let backwards = pb::ListJobRunsRequest { start_time: at(now), end_time: at(now), ..Default::default() };
    assert_invalid(list(&server, backwards).await, &["end_time"]);
    assert_invalid(
        list(&server, pb::ListJobRunsRequest { page_size: 1001, ..Default::default() }).await,
        &["page_size"],
    );
    assert_invalid(list(&server, pb::ListJobRunsRequest { min_level: 99, ..Default::default() }).await, &["min_level"]);
    let bad_label = pb::ListJobRunsRequest { labels: [("a b".into(), "c".into())].into(), ..Default::default() };
    assert_invalid(list(&server, bad_label).await, &["labels[\"a b\"]"]);
}

async fn listings_page_by_activity_each_run_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let runs: Vec<Uuid> = (0..12).map(|_| Uuid::now_v7()).collect();
    for run in &runs {
        write(&server, vec![job_entry(*run, "line")]).await;
    }
    // A second later the oldest run logs again: it is the most recent now.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    write(&server, vec![job_entry(runs[0], "again")]).await;
    let first = listed(&server, pb::ListJobRunsRequest { page_size: 1, ..Default::default() }).await;
    assert_eq!(first, [runs[0].to_string()], "most recent activity first");

    let whole = listed(&server, pb::ListJobRunsRequest::default()).await;
    assert_eq!(whole.len(), 12);
    // Pages of five, while runs keep logging: a run is never listed twice.
    let mut seen: Vec<String> = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let request = pb::ListJobRunsRequest { page_size: 5, page_token: page_token.clone(), ..Default::default() };
        let page = list(&server, request).await.expect("page");
        seen.extend(page.job_runs.into_iter().map(|run| run.job_run_id));
        pages += 1;
        if pages == 1 {
            // A run of a later page becomes active: it moves to the top,
            // ahead of the pages still to come.
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            write(&server, vec![job_entry(runs[1], "late")]).await;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no run twice: {seen:?}");
    assert_eq!(seen.len(), 11, "all but the run that moved ahead of the cursor");
    assert!(!seen.contains(&runs[1].to_string()));
    let expected: Vec<String> = whole.into_iter().filter(|id| *id != runs[1].to_string()).collect();
    assert_eq!(seen, expected, "in the listing's order");

    // A token belongs to its query.
    let first_page = list(&server, pb::ListJobRunsRequest { page_size: 5, ..Default::default() }).await.expect("page");
    let other_query = pb::ListJobRunsRequest {
        page_size: 5,
        state: pb::JobRunState::Open.into(),
        page_token: first_page.next_page_token.clone(),
        ..Default::default()
    };
    assert_invalid(list(&server, other_query).await, &["page_token"]);
    let mut tampered = first_page.next_page_token.into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = pb::ListJobRunsRequest {
        page_size: 5,
        page_token: String::from_utf8(tampered).expect("ASCII"),
        ..Default::default()
    };
    assert_invalid(list(&server, tampered).await, &["page_token"]);
}

/// The listing's plan on a table of many runs, read with EXPLAIN: a schema
/// change that turned it into a scan and a sort fails here.
async fn the_run_listing_reads_the_activity_index(backend: Backend) {
    const RUNS: usize = 20_000;
    let server = TestServer::start(backend).await;
    let runs: Vec<Uuid> = (0..RUNS).map(|_| Uuid::now_v7()).collect();
    for chunk in runs.chunks(1_000) {
        let logs = chunk.iter().map(|run| job_entry(*run, "line")).collect();
        server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    }
    // One run in ten failed, as in a busy CI.
    for run in runs.iter().step_by(10) {
        complete(&server, *run, pb::JobRunOutcome::Failed).await;
    }
    server.database.execute_raw("ANALYZE").await.expect("analyze");
    let recent = RunQuery { filter: RunFilter::default(), after: None, limit: 100 };
    let failed = RunQuery {
        filter: RunFilter { outcomes: vec![Outcome::Failed], state: Some(RunState::Complete), ..RunFilter::default() },
        after: Some(RunCursor { last_activity: chrono::Utc::now(), id: Uuid::max() }),
        limit: 100,
    };
    for query in [recent, failed] {
        let plan = server.store.plan_job_runs(&query).await.expect("plan");
        assert!(plan.contains("job_runs_activity"), "the listing reads the activity index; the plan:\n{plan}");
        assert!(!plan.to_lowercase().contains("sort"), "and needs no sort; the plan:\n{plan}");
    }
    assert_eq!(listed(&server, pb::ListJobRunsRequest::default()).await.len(), 100);
}
