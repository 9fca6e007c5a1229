//! The opt-in text index: built from the logs already stored, kept by every
//! write and deletion after, it finds exactly what a scan finds, and the
//! planner reads it for a substring search.

use logwell::live::Hub;
use logwell::model::{LogFilter, LogQuery, SortOrder, TextSearch};
use logwell::proto::v1::{self as pb};
use logwell::store::{ConnectOptions, LogStore};
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestServer, connect_options, job_entry};

conformance!(the_text_index_finds_what_a_scan_finds);

const RUNS: usize = 40;
const LOGS_PER_RUN: usize = 500;

/// The message of a run's line: mostly common words, and now and then one
/// of the texts searched for.
fn message(run: usize, line: usize) -> String {
    match line % 250 {
        7 => format!("Upstream call TIMEOUT after {line} ms (run {run})"),
        8 => format!("upstream timeout, retrying {line}"),
        9 => "price: 50%_off \"quoted\" café".to_string(),
        _ => format!("step {line} of run {run}: compiling module {}", line % 17),
    }
}

/// Writes a run's lines, noting each (run, id, message) in `written`.
async fn write_run(server: &TestServer, run: Uuid, index: usize, written: &mut Vec<(Uuid, Uuid, String)>) {
    let logs: Vec<pb::LogEntry> = (0..LOGS_PER_RUN)
        .map(|line| {
            let text = message(index, line);
            let id = Uuid::now_v7();
            written.push((run, id, text.clone()));
            pb::LogEntry { id: id.to_string(), ..job_entry(run, &text) }
        })
        .collect();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
}

async fn store_with_text_index(url: &str, text_index: bool) -> std::sync::Arc<dyn LogStore> {
    let options = ConnectOptions { text_index, ..connect_options() };
    logwell::store::connect(url, &options, Hub::new()).await.expect("open with the text index")
}

fn search(text: &str, ignore_case: bool) -> LogQuery {
    LogQuery {
        filter: LogFilter {
            text: Some(TextSearch { text: text.into(), ignore_case, include_metadata: false }),
            ..LogFilter::default()
        },
        order: SortOrder::Ascending,
        after: None,
        limit: 1_000,
    }
}

async fn the_text_index_finds_what_a_scan_finds(backend: Backend) {
    let server = TestServer::start(backend).await;
    let runs: Vec<Uuid> = (0..RUNS).map(|_| Uuid::now_v7()).collect();
    let mut written = Vec::new();
    for (index, run) in runs.iter().enumerate().take(RUNS / 2) {
        write_run(&server, *run, index, &mut written).await;
    }
    // Built from what is stored; then kept by writes and deletions.
    let indexed = store_with_text_index(&server.database.url, true).await;
    for (index, run) in runs.iter().enumerate().skip(RUNS / 2) {
        write_run(&server, *run, index, &mut written).await;
    }
    let deleted = runs[3];
    let completion = pb::CompleteJobRunRequest {
        job_run_id: deleted.to_string(),
        outcome: pb::JobRunOutcome::Succeeded.into(),
        summary: String::new(),
    };
    server.job_runs().complete_job_run(completion).await.expect("complete");
    let deletion = pb::DeleteJobRunRequest { job_run_id: deleted.to_string() };
    server.job_runs().delete_job_run(deletion).await.expect("delete");
    written.retain(|(run, _, _)| *run != deleted);
    // Logs written after the deletion (SQLite may give them the deleted
    // rows' rowids) are found by their own text.
    let late_run = Uuid::now_v7();
    write_run(&server, late_run, 3, &mut written).await;
    // VACUUM also moves the GIN index's pending entries into the index, as
    // autovacuum does; until then PostgreSQL costs reading them high.
    let analyze = if backend == Backend::Postgres { "VACUUM ANALYZE" } else { "ANALYZE" };
    server.database.execute_raw(analyze).await.expect("analyze");

    for text in ["TIMEOUT", "timeout", "50%_off", "\"quoted\"", "café", "(run 3)", "ms", "no such text"] {
        for ignore_case in [false, true] {
            let mut expected: Vec<Uuid> = written
                .iter()
                .filter(|(_, _, message)| {
                    if ignore_case {
                        message.to_lowercase().contains(&text.to_lowercase())
                    } else {
                        message.contains(text)
                    }
                })
                .map(|(_, id, _)| *id)
                .collect();
            let mut found: Vec<Uuid> = Vec::new();
            let mut query = search(text, ignore_case);
            loop {
                let page = indexed.list(&query).await.expect("search");
                found.extend(page.iter().map(|log| log.id));
                if page.len() < query.limit {
                    break;
                }
                query.after = page.last().map(|log| logwell::model::Cursor::of(log, query.filter.ordering()));
            }
            found.sort();
            expected.sort();
            assert_eq!(found.len(), expected.len(), "{text:?} ignoring case: {ignore_case}");
            assert_eq!(found, expected, "{text:?} ignoring case: {ignore_case}");
        }
    }
    let index = match backend {
        Backend::Sqlite => "logs_text",
        Backend::Postgres => "logs_message_trigrams",
    };
    let plan = indexed.plan(&search("TIMEOUT after", false)).await.expect("plan");
    assert!(plan.contains(index), "a substring search should read {index}; the plan:\n{plan}");
    indexed.close().await;

    // Turned off, the index goes, and searches scan as before.
    let unindexed = store_with_text_index(&server.database.url, false).await;
    let plan = unindexed.plan(&search("TIMEOUT after", false)).await.expect("plan");
    assert!(!plan.contains(index), "the index is gone: {plan}");
    let found = unindexed.list(&search("TIMEOUT after", false)).await.expect("search");
    assert_eq!(found.len(), RUNS * 2, "two lines a run");
}
