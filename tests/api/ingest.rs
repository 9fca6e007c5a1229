//! Streaming ingestion: an answer per batch once committed, refusals that
//! name the field, and a reconnecting producer that ends with every log once.

use std::collections::{BTreeMap, BTreeSet};

use logwell::proto::v1::{self as pb};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestServer, entry, job_entry, task_entry};

conformance!(every_batch_is_answered_once_committed, a_reconnecting_producer_stores_every_log_once);

fn batch(batch_number: u64, log_type: pb::LogType, logs: Vec<pb::LogEntry>) -> pb::IngestLogsRequest {
    pb::IngestLogsRequest { batch_number, r#type: log_type.into(), logs }
}

/// Opens an ingest stream; returns where to send batches and the answers.
async fn open(server: &TestServer) -> (mpsc::Sender<pb::IngestLogsRequest>, tonic::Streaming<pb::IngestLogsResponse>) {
    let (sender, receiver) = mpsc::channel(128);
    let mut client = server.ingest();
    let answers = client.ingest_logs(ReceiverStream::new(receiver)).await.expect("ingest stream").into_inner();
    (sender, answers)
}

async fn every_batch_is_answered_once_committed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (run, task) = (Uuid::now_v7(), Uuid::now_v7());
    let (sender, mut answers) = open(&server).await;
    let mut expected_logs = 0;
    for number in 0..60u64 {
        let request = match number % 3 {
            0 => batch(number, pb::LogType::Job, (0..5).map(|i| job_entry(run, &format!("{number}.{i}"))).collect()),
            1 => batch(number, pb::LogType::Task, vec![task_entry(run, task, &format!("{number}"))]),
            _ if number == 17 => batch(number, pb::LogType::Job, vec![job_entry(run, "")]),
            _ => batch(number, pb::LogType::System, vec![entry(&format!("{number}"))]),
        };
        if number != 17 {
            expected_logs += request.logs.len();
        }
        sender.send(request).await.expect("send");
    }
    sender.send(batch(60, pb::LogType::Unspecified, vec![entry("typeless")])).await.expect("send");
    drop(sender);

    let mut answered = BTreeMap::new();
    while let Some(answer) = answers.message().await.expect("answers") {
        assert!(answered.insert(answer.batch_number, answer).is_none(), "a batch answered twice");
    }
    assert_eq!(answered.keys().copied().collect::<Vec<_>>(), (0..=60).collect::<Vec<_>>(), "every batch answered");
    let refused = answered[&17].refusal.as_ref().expect("the empty message is refused");
    assert_eq!((refused.code, refused.retryable), (tonic::Code::InvalidArgument as i32, false));
    assert_eq!(refused.field_violations[0].field, "logs[0].message");
    assert!(answered[&17].receipts.is_empty());
    let typeless = answered[&60].refusal.as_ref().expect("a batch needs a type");
    assert_eq!(typeless.field_violations[0].field, "type");
    assert_eq!(answered[&0].receipts.len(), 5);
    let receipts: usize = answered.values().map(|answer| answer.receipts.len()).sum();
    assert_eq!(receipts, expected_logs);
    assert_eq!(
        server.list_all(pb::ListLogsRequest::default()).await.len(),
        expected_logs,
        "what was answered is stored"
    );
}

async fn a_reconnecting_producer_stores_every_log_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let batches: Vec<pb::IngestLogsRequest> = (0..30u64)
        .map(|number| {
            let logs = (0..10)
                .map(|i| pb::LogEntry { id: Uuid::now_v7().to_string(), ..job_entry(run, &format!("{number}.{i}")) })
                .collect();
            batch(number, pb::LogType::Job, logs)
        })
        .collect();

    // First connection: send everything, hear back about a third, hang up.
    let (sender, mut answers) = open(&server).await;
    for request in &batches {
        sender.send(request.clone()).await.expect("send");
    }
    let mut answered = BTreeSet::new();
    while answered.len() < 10 {
        let answer = answers.message().await.expect("answer").expect("more answers");
        assert!(answer.refusal.is_none());
        answered.insert(answer.batch_number);
    }
    drop(sender);
    drop(answers);

    // Second connection: resend whatever was not answered.
    let (sender, mut answers) = open(&server).await;
    let unanswered: Vec<&pb::IngestLogsRequest> =
        batches.iter().filter(|request| !answered.contains(&request.batch_number)).collect();
    for request in &unanswered {
        sender.send((*request).clone()).await.expect("resend");
    }
    drop(sender);
    while let Some(answer) = answers.message().await.expect("answers") {
        assert!(answer.refusal.is_none(), "{:?}", answer.refusal);
        answered.insert(answer.batch_number);
    }
    assert_eq!(answered.len(), 30);

    let stored = server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await;
    let ids: BTreeSet<&str> = stored.iter().map(|log| log.id.as_str()).collect();
    assert_eq!((stored.len(), ids.len()), (300, 300), "every log exactly once");
    assert_eq!(stored.iter().map(|log| log.seq).collect::<Vec<_>>(), (1..=300).collect::<Vec<_>>());
}
