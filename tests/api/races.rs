//! Two replicas on one PostgreSQL answering the same resend at the same
//! moment (a client that retried through a load balancer, or hedged): one
//! stores it, the other answers with the stored log as a duplicate; an id
//! reused for another run is ALREADY_EXISTS. Never INTERNAL, whatever the
//! interleaving.

use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::log_ingest_service_client::LogIngestServiceClient;
use logwell::proto::v1::log_query_service_client::LogQueryServiceClient;
use logwell::proto::v1::{self as pb};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::helpers::{Backend, TestDatabase, job_entry, start_serving};

const ROUNDS: usize = 100;
const LOGS_PER_BATCH: usize = 5;
const LARGE_ROUNDS: usize = 10;
const LARGE_BATCH: usize = 1_000;

/// A batch of new logs with client ids, in `run`.
fn batch_with_ids(run: Uuid, ids: &[Uuid]) -> Vec<pb::LogEntry> {
    ids.iter().map(|id| pb::LogEntry { id: id.to_string(), ..job_entry(run, &format!("log {id}")) }).collect()
}

/// Asserts that two answers to the same batch describe one stored copy:
/// the same ids and seqs, each log new in exactly one answer.
#[track_caller]
fn assert_one_copy(round: usize, first: &[pb::LogReceipt], second: &[pb::LogReceipt]) {
    assert_eq!(first.len(), second.len(), "round {round}");
    for (a, b) in first.iter().zip(second) {
        assert_eq!((&a.id, a.seq), (&b.id, b.seq), "round {round}: one log, one seq");
        assert!(a.duplicate != b.duplicate, "round {round}: stored once, a duplicate once: {a:?} {b:?}");
    }
}

/// An ingest stream: where to send batches, and the answers.
struct Ingester {
    batches: mpsc::Sender<pb::IngestLogsRequest>,
    answers: tonic::Streaming<pb::IngestLogsResponse>,
}

impl Ingester {
    async fn open(channel: Channel) -> Ingester {
        let (batches, receiver) = mpsc::channel(4);
        let answers = LogIngestServiceClient::new(channel)
            .ingest_logs(ReceiverStream::new(receiver))
            .await
            .expect("ingest stream")
            .into_inner();
        Ingester { batches, answers }
    }

    /// Sends one batch and waits for its answer.
    async fn send(&mut self, batch_number: u64, logs: Vec<pb::LogEntry>) -> pb::IngestLogsResponse {
        let batch = pb::IngestLogsRequest { batch_number, r#type: pb::LogType::Job.into(), logs };
        self.batches.send(batch).await.expect("send");
        let answer = self.answers.message().await.expect("answer").expect("an answer");
        assert_eq!(answer.batch_number, batch_number);
        answer
    }
}

/// A `logwell serve` process on the shared database, with a unary writer and
/// an ingest stream of its own.
struct Replica {
    channel: Channel,
    writer: JobLogServiceClient<Channel>,
    ingester: Ingester,
    _server: tokio::process::Child,
    _log: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
}

impl Replica {
    async fn start(database: &TestDatabase) -> Replica {
        let (_server, address, _log) = start_serving(&database.url).await;
        let channel = Channel::from_shared(address).expect("uri").connect().await.expect("connect");
        let (writer, ingester) = (JobLogServiceClient::new(channel.clone()), Ingester::open(channel.clone()).await);
        Replica { channel, writer, ingester, _server, _log }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_resends_through_two_replicas_answer_with_the_stored_log() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let (mut first, mut second) = (Replica::start(&database).await, Replica::start(&database).await);
    let mut runs = Vec::new();

    for round in 0..ROUNDS {
        let run = Uuid::now_v7();
        runs.push(run);
        let ids: Vec<Uuid> = (0..LOGS_PER_BATCH).map(|_| Uuid::now_v7()).collect();
        let request = pb::WriteJobLogsRequest { logs: batch_with_ids(run, &ids) };
        let (a, b) = tokio::join!(first.writer.write_job_logs(request.clone()), second.writer.write_job_logs(request));
        let (a, b) = (a.expect("first replica").into_inner(), b.expect("second replica").into_inner());
        assert_eq!(a.receipts.len(), LOGS_PER_BATCH, "round {round}");
        assert_one_copy(round, &a.receipts, &b.receipts);

        // The same through IngestLogs: answered in-band, never refused.
        let run = Uuid::now_v7();
        runs.push(run);
        let ids: Vec<Uuid> = (0..LOGS_PER_BATCH).map(|_| Uuid::now_v7()).collect();
        let logs = batch_with_ids(run, &ids);
        let number = round as u64;
        let (a, b) = tokio::join!(first.ingester.send(number, logs.clone()), second.ingester.send(number, logs));
        assert!(a.refusal.is_none() && b.refusal.is_none(), "round {round}: {a:?} {b:?}");
        assert_eq!(a.receipts.len(), LOGS_PER_BATCH, "round {round}");
        assert_one_copy(round, &a.receipts, &b.receipts);
    }

    // Large batches: the clash happens deep inside a long insert.
    for round in 0..LARGE_ROUNDS {
        let run = Uuid::now_v7();
        let ids: Vec<Uuid> = (0..LARGE_BATCH).map(|_| Uuid::now_v7()).collect();
        let request = pb::WriteJobLogsRequest { logs: batch_with_ids(run, &ids) };
        let (a, b) = tokio::join!(first.writer.write_job_logs(request.clone()), second.writer.write_job_logs(request));
        let (a, b) = (a.expect("first replica").into_inner(), b.expect("second replica").into_inner());
        assert_eq!(a.receipts.len(), LARGE_BATCH, "large round {round}");
        assert_one_copy(round, &a.receipts, &b.receipts);
    }

    // Every run holds its batch once, seqs 1..=5.
    let mut reader = LogQueryServiceClient::new(first.channel);
    for run in runs {
        let listing = pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() };
        let logs = reader.list_logs(listing).await.expect("list").into_inner().logs;
        assert_eq!(logs.iter().map(|log| log.seq).collect::<Vec<_>>(), (1..=LOGS_PER_BATCH as i64).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_reusing_ids_for_other_runs_get_already_exists() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let (mut first, mut second) = (Replica::start(&database).await, Replica::start(&database).await);

    for round in 0..ROUNDS / 2 {
        let ids: Vec<Uuid> = (0..LOGS_PER_BATCH).map(|_| Uuid::now_v7()).collect();
        let this = pb::WriteJobLogsRequest { logs: batch_with_ids(Uuid::now_v7(), &ids) };
        let other = pb::WriteJobLogsRequest { logs: batch_with_ids(Uuid::now_v7(), &ids) };
        let (a, b) = tokio::join!(first.writer.write_job_logs(this), second.writer.write_job_logs(other));
        let (stored, refused) = match (a, b) {
            (Ok(stored), Err(refused)) | (Err(refused), Ok(stored)) => (stored.into_inner(), refused),
            other => panic!("round {round}: one run gets the ids, the other is refused: {other:?}"),
        };
        assert!(stored.receipts.iter().all(|receipt| !receipt.duplicate), "round {round}");
        assert_eq!(refused.code(), Code::AlreadyExists, "round {round}: {refused:?}");

        let ids: Vec<Uuid> = (0..LOGS_PER_BATCH).map(|_| Uuid::now_v7()).collect();
        let (this, other) = (batch_with_ids(Uuid::now_v7(), &ids), batch_with_ids(Uuid::now_v7(), &ids));
        let number = round as u64;
        let (a, b) = tokio::join!(first.ingester.send(number, this), second.ingester.send(number, other));
        let (stored, refusal) = match (a.refusal, b.refusal) {
            (None, Some(refusal)) => (a.receipts, refusal),
            (Some(refusal), None) => (b.receipts, refusal),
            other => panic!("round {round}: one run gets the ids, the other is refused: {other:?}"),
        };
        assert_eq!(stored.len(), LOGS_PER_BATCH, "round {round}");
        assert_eq!(
            (refusal.code, refusal.retryable),
            (Code::AlreadyExists as i32, false),
            "round {round}: {refusal:?}"
        );
    }
}
