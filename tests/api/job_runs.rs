//! Job runs: state, completion, and the logs a completed run refuses.

use logwell::proto::v1::{self as pb};
use prost_types::Timestamp;
use tonic::Code;
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestServer, assert_invalid, job_entry, task_entry};

conformance!(
    state_follows_the_logs,
    completion_rules,
    a_completed_run_takes_no_more_logs,
    a_completed_run_can_be_deleted
);

fn completion(run: Uuid, outcome: pb::JobRunOutcome, summary: &str) -> pb::CompleteJobRunRequest {
    pb::CompleteJobRunRequest { job_run_id: run.to_string(), outcome: outcome.into(), summary: summary.into() }
}

async fn state_follows_the_logs(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let get = |run: String| {
        let mut client = server.job_runs();
        async move { client.get_job_run(pb::GetJobRunRequest { job_run_id: run }).await }
    };
    assert_eq!(get(run.to_string()).await.expect_err("unknown").code(), Code::NotFound);
    assert_invalid(get("nope".into()).await, &["job_run_id"]);

    let at = |seconds| Some(Timestamp { seconds, nanos: 0 });
    let logs = [
        pb::LogEntry { time: at(2_000), ..job_entry(run, "b") },
        pb::LogEntry { time: at(1_000), ..job_entry(run, "a") },
        pb::LogEntry { time: at(3_000), ..task_entry(run, Uuid::now_v7(), "c") },
    ];
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs: logs[..2].to_vec() }).await.expect("write");
    let task_log = pb::WriteTaskLogRequest { log: Some(logs[2].clone()) };
    server.task().write_task_log(task_log).await.expect("write");

    let state = get(run.to_string()).await.expect("state").into_inner().job_run.expect("run");
    assert_eq!(state.state(), pb::JobRunState::Open);
    assert_eq!(state.outcome(), pb::JobRunOutcome::Unspecified);
    assert_eq!((state.log_count, state.last_seq), (3, 3));
    assert_eq!((state.first_log_time, state.last_log_time), (at(1_000), at(3_000)));
    assert_eq!(state.completed_at, None);
}

async fn completion_rules(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let complete = |request: pb::CompleteJobRunRequest| {
        let mut client = server.job_runs();
        async move { client.complete_job_run(request).await }
    };
    assert_invalid(complete(completion(run, pb::JobRunOutcome::Unspecified, "")).await, &["outcome"]);
    assert_invalid(
        complete(pb::CompleteJobRunRequest { outcome: 9, ..completion(run, pb::JobRunOutcome::Failed, "") }).await,
        &["outcome"],
    );
    assert_invalid(complete(completion(run, pb::JobRunOutcome::Failed, "a\0b")).await, &["summary"]);
    assert_invalid(complete(completion(Uuid::nil(), pb::JobRunOutcome::Failed, "")).await, &["job_run_id"]);

    let first = complete(completion(run, pb::JobRunOutcome::Failed, "3 tests failed")).await.expect("complete");
    let first = first.into_inner().job_run.expect("run");
    assert_eq!(
        (first.state(), first.outcome(), first.log_count),
        (pb::JobRunState::Complete, pb::JobRunOutcome::Failed, 0)
    );
    assert!(first.completed_at.is_some(), "a run that never logged can be completed");

    let retry = complete(completion(run, pb::JobRunOutcome::Failed, "3 tests failed")).await.expect("a retry is fine");
    assert_eq!(retry.into_inner().job_run.expect("run"), first, "and changes nothing");
    let other = complete(completion(run, pb::JobRunOutcome::Succeeded, "3 tests failed")).await;
    assert_eq!(other.expect_err("another outcome").code(), Code::FailedPrecondition);
    let other = complete(completion(run, pb::JobRunOutcome::Failed, "another summary")).await;
    assert_eq!(other.expect_err("another summary").code(), Code::FailedPrecondition);
}

async fn a_completed_run_takes_no_more_logs(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (done, open) = (Uuid::now_v7(), Uuid::now_v7());
    server
        .job()
        .write_job_log(pb::WriteJobLogRequest { log: Some(job_entry(done, "only line")) })
        .await
        .expect("write");
    server.job_runs().complete_job_run(completion(done, pb::JobRunOutcome::Succeeded, "")).await.expect("complete");

    let job = server.job().write_job_log(pb::WriteJobLogRequest { log: Some(job_entry(done, "late")) }).await;
    assert_eq!(job.expect_err("late job log").code(), Code::FailedPrecondition);
    let task = pb::WriteTaskLogRequest { log: Some(task_entry(done, Uuid::now_v7(), "late")) };
    assert_eq!(server.task().write_task_log(task).await.expect_err("late task log").code(), Code::FailedPrecondition);
    let mixed = pb::WriteJobLogsRequest { logs: vec![job_entry(open, "fine"), job_entry(done, "late")] };
    let status = server.job().write_job_logs(mixed).await.expect_err("a batch with a late log");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains(&done.to_string()), "{}", status.message());

    let open_logs = pb::ListLogsRequest { job_run_id: open.to_string(), ..Default::default() };
    assert!(server.list_all(open_logs).await.is_empty(), "nothing of the refused batch was stored");
    let done_logs = server.list_all(pb::ListLogsRequest { job_run_id: done.to_string(), ..Default::default() }).await;
    assert_eq!(done_logs.len(), 1);
    let state = server.job_runs().get_job_run(pb::GetJobRunRequest { job_run_id: done.to_string() }).await;
    assert_eq!(state.expect("state").into_inner().job_run.expect("run").last_seq, 1, "refused writes left no seqs");
}

async fn a_completed_run_can_be_deleted(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (run, other) = (Uuid::now_v7(), Uuid::now_v7());
    let task = Uuid::now_v7();
    let logs = [job_entry(run, "one"), job_entry(run, "two"), task_entry(run, task, "three")];
    let kept = pb::WriteTaskLogRequest { log: Some(task_entry(other, task, "kept")) };
    server.task().write_task_log(kept).await.expect("another run's log");
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs: logs[..2].to_vec() }).await.expect("write");
    let written = server.task().write_task_log(pb::WriteTaskLogRequest { log: Some(logs[2].clone()) }).await;
    let log_id = written.expect("write").into_inner().receipt.expect("receipt").id;
    let delete = |job_run_id: Uuid| {
        let mut client = server.job_runs();
        async move { client.delete_job_run(pb::DeleteJobRunRequest { job_run_id: job_run_id.to_string() }).await }
    };

    let open = delete(run).await.expect_err("an open run");
    assert_eq!(open.code(), Code::FailedPrecondition, "{open:?}");
    assert_eq!(delete(Uuid::now_v7()).await.expect_err("an unknown run").code(), Code::NotFound);
    assert_invalid(delete(Uuid::nil()).await, &["job_run_id"]);
    assert_eq!(
        server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await.len(),
        3
    );

    let completion = pb::CompleteJobRunRequest {
        job_run_id: run.to_string(),
        outcome: pb::JobRunOutcome::Succeeded.into(),
        summary: String::new(),
    };
    server.job_runs().complete_job_run(completion).await.expect("complete");
    let deleted = delete(run).await.expect("delete").into_inner();
    assert_eq!(deleted.deleted_logs, 3);
    let state = deleted.job_run.expect("run");
    assert!(state.deleted_at.is_some());
    assert_eq!((state.state, state.log_count, state.last_seq), (pb::JobRunState::Complete.into(), 0, 3));

    assert!(
        server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await.is_empty()
    );
    let gone = server.query().get_log(pb::GetLogRequest { id: log_id }).await.expect_err("deleted");
    assert_eq!(gone.code(), Code::NotFound);
    let late = server.job().write_job_log(pb::WriteJobLogRequest { log: Some(job_entry(run, "late")) }).await;
    assert_eq!(late.expect_err("a deleted run stays complete").code(), Code::FailedPrecondition);
    let again = delete(run).await.expect("deleting again is harmless").into_inner();
    assert_eq!((again.deleted_logs, again.job_run.expect("run").deleted_at), (0, state.deleted_at));
    let fetched = server.job_runs().get_job_run(pb::GetJobRunRequest { job_run_id: run.to_string() }).await;
    assert_eq!(fetched.expect("get").into_inner().job_run.expect("run").deleted_at, state.deleted_at);

    // Following it finds no logs: it is told they are gone, then its end.
    let follow = pb::StreamLogsRequest { job_run_id: run.to_string(), ..Default::default() };
    let mut stream = server.stream().stream_logs(follow).await.expect("follow").into_inner();
    let first = stream.message().await.expect("event").expect("an event");
    let gone = pb::StreamExpired { after_seq: 0, first_retained_seq: 4 };
    assert_eq!(first.event, Some(pb::stream_logs_response::Event::Expired(gone)), "{first:?}");
    let second = stream.message().await.expect("event").expect("an event");
    assert!(matches!(second.event, Some(pb::stream_logs_response::Event::Completed(_))), "{second:?}");

    let kept = server.list_all(pb::ListLogsRequest { job_run_id: other.to_string(), ..Default::default() }).await;
    assert_eq!(kept.len(), 1, "other runs keep their logs");
}
