//! GetLogContext: the logs around a line, by id or by position, in its job
//! run, its task run or the system logs; absent logs and bad windows.

use logwell::proto::v1::{self as pb};
use tonic::Code;
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestServer, assert_invalid, entry, job_entry, task_entry};

conformance!(context_surrounds_a_line_in_its_sequence, context_of_what_is_not_there);

fn seqs(logs: &[pb::Log]) -> Vec<i64> {
    logs.iter().map(|log| log.seq).collect()
}

fn around(
    anchor: pb::get_log_context_request::Anchor,
    before: Option<i32>,
    after: Option<i32>,
) -> pb::GetLogContextRequest {
    pb::GetLogContextRequest { anchor: Some(anchor), before, after, same_task_run: false }
}

fn position(job_run_id: &str, seq: i64) -> pb::get_log_context_request::Anchor {
    pb::get_log_context_request::Anchor::Position(pb::SequencePosition { job_run_id: job_run_id.into(), seq })
}

async fn context_surrounds_a_line_in_its_sequence(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (run, task) = (Uuid::now_v7(), Uuid::now_v7());
    let mut ids = Vec::new();
    for seq in 1..=20 {
        let receipt = if seq % 2 == 0 {
            let log = task_entry(run, task, &format!("line {seq}"));
            let written =
                server.task().write_task_log(pb::WriteTaskLogRequest { log: Some(log) }).await.expect("write");
            written.into_inner().receipt
        } else {
            let log = job_entry(run, &format!("line {seq}"));
            server
                .job()
                .write_job_log(pb::WriteJobLogRequest { log: Some(log) })
                .await
                .expect("write")
                .into_inner()
                .receipt
        };
        ids.push(receipt.expect("receipt").id);
    }
    let by_id = pb::get_log_context_request::Anchor::Id(ids[9].clone());
    let context = server.query().get_log_context(around(by_id.clone(), Some(3), Some(2))).await.expect("context");
    let context = context.into_inner();
    assert_eq!(
        (seqs(&context.before), context.log.map(|log| log.seq), seqs(&context.after)),
        (vec![7, 8, 9], Some(10), vec![11, 12])
    );

    let same_task = pb::GetLogContextRequest { same_task_run: true, ..around(by_id, Some(3), Some(2)) };
    let context = server.query().get_log_context(same_task).await.expect("context").into_inner();
    assert_eq!((seqs(&context.before), seqs(&context.after)), (vec![4, 6, 8], vec![12, 14]));

    let first = around(position(&run.to_string(), 1), Some(5), None);
    let context = server.query().get_log_context(first).await.expect("context").into_inner();
    assert_eq!(
        (seqs(&context.before), seqs(&context.after)),
        (vec![], (2..=11).collect::<Vec<_>>()),
        "10 after by default"
    );
    let last = around(position(&run.to_string(), 20), None, Some(5));
    let context = server.query().get_log_context(last).await.expect("context").into_inner();
    assert_eq!((seqs(&context.before), seqs(&context.after)), ((10..=19).collect::<Vec<_>>(), vec![]));

    let system = (1..=3).map(|n| entry(&format!("system {n}"))).collect();
    server.system().write_system_logs(pb::WriteSystemLogsRequest { logs: system }).await.expect("write");
    let middle = around(position("", 2), Some(1), Some(1));
    let context = server.query().get_log_context(middle).await.expect("context").into_inner();
    let messages: Vec<String> =
        context.before.iter().chain(context.log.iter()).chain(&context.after).map(|log| log.message.clone()).collect();
    assert_eq!(messages, ["system 1", "system 2", "system 3"]);
}

async fn context_of_what_is_not_there(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    server.job().write_job_log(pb::WriteJobLogRequest { log: Some(job_entry(run, "only")) }).await.expect("write");
    let absent = [
        around(pb::get_log_context_request::Anchor::Id(Uuid::now_v7().to_string()), None, None),
        around(position(&run.to_string(), 2), None, None),
        around(position(&Uuid::now_v7().to_string(), 1), None, None),
    ];
    for request in absent {
        let status = server.query().get_log_context(request).await.expect_err("absent");
        assert_eq!(status.code(), Code::NotFound);
    }
    let mut query = server.query();
    let id = pb::get_log_context_request::Anchor::Id(Uuid::now_v7().to_string());
    assert_invalid(query.get_log_context(around(id.clone(), Some(1_001), None)).await, &["before"]);
    assert_invalid(query.get_log_context(around(id, None, Some(-1))).await, &["after"]);
    assert_invalid(query.get_log_context(pb::GetLogContextRequest::default()).await, &["anchor"]);
    assert_invalid(
        query.get_log_context(around(position("x", 0), None, None)).await,
        &["position.job_run_id", "position.seq"],
    );
}
