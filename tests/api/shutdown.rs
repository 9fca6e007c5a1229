//! `logwell serve` stopping while people follow and write: on SIGTERM health
//! turns NOT_SERVING and every open stream ends (with UNAVAILABLE) at once, the process exits within its
//! bound whatever clients do, nothing acknowledged is lost, and followers
//! resume on the next server without missing or repeating a log. A second
//! signal exits at once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::job_run_service_client::JobRunServiceClient;
use logwell::proto::v1::log_ingest_service_client::LogIngestServiceClient;
use logwell::proto::v1::log_query_service_client::LogQueryServiceClient;
use logwell::proto::v1::log_stream_service_client::LogStreamServiceClient;
use logwell::proto::v1::stream_logs_response::Event;
use logwell::proto::v1::{self as pb};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestDatabase, eventually, job_entry, send_signal, start_serving_with};

conformance!(
    sigterm_ends_every_stream_and_loses_nothing,
    an_export_ends_at_shutdown_and_resumes_on_the_next_server,
    a_stuck_follower_holds_the_server_no_longer_than_its_grace,
    a_second_signal_exits_at_once
);

const FOLLOWERS: usize = 100;
const GRACE: Duration = Duration::from_secs(3);
/// What `serve` promises beyond the grace period: the database closing
/// (5 s at most) and the runtime stopping (1 s at most).
const CLOSING: Duration = Duration::from_secs(6);

async fn channel(address: &str) -> Channel {
    Channel::from_shared(address.to_string()).expect("uri").connect().await.expect("connect")
}

/// A follower's logs and how its stream ended.
type Followed = (Vec<i64>, tonic::Status);

/// Follows `run` after `after_seq` until the stream ends with an error,
/// counting the logs in `received`; a stream that ends otherwise fails the
/// test.
fn follow(channel: Channel, run: Uuid, after_seq: i64, received: Arc<AtomicUsize>) -> JoinHandle<Followed> {
    tokio::spawn(async move {
        let request = pb::StreamLogsRequest {
            job_run_id: run.to_string(),
            start: Some(pb::stream_logs_request::Start::AfterSeq(after_seq)),
            ..Default::default()
        };
        let mut stream = LogStreamServiceClient::new(channel).stream_logs(request).await.expect("follow").into_inner();
        let mut seqs = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(pb::StreamLogsResponse { event: Some(Event::Log(log)) })) => {
                    seqs.push(log.seq);
                    received.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Some(pb::StreamLogsResponse { event: Some(Event::Completed(_)) })) => {
                    return (seqs, tonic::Status::ok("completed"));
                }
                Ok(Some(_heartbeat)) => {}
                Ok(None) => panic!("a follower's stream ended without completion or error"),
                Err(status) => return (seqs, status),
            }
        }
    })
}

/// Writes batches to `run` until refused, reporting each acknowledged id.
fn write_until_refused(channel: Channel, run: Uuid, writer: usize, acknowledged: mpsc::UnboundedSender<String>) {
    tokio::spawn(async move {
        let mut client = JobLogServiceClient::new(channel);
        for write in 0.. {
            let logs = (0..=write % 5).map(|i| job_entry(run, &format!("writer {writer} write {write}.{i}"))).collect();
            let Ok(response) = client.write_job_logs(pb::WriteJobLogsRequest { logs }).await else { return };
            for receipt in response.into_inner().receipts {
                let _ = acknowledged.send(receipt.id);
            }
        }
    });
}

/// Streams batches to `run` through IngestLogs; answers the acknowledged ids
/// and the status the stream ended with.
fn ingest_until_ended(
    channel: Channel,
    run: Uuid,
    acknowledged: mpsc::UnboundedSender<String>,
) -> JoinHandle<tonic::Status> {
    tokio::spawn(async move {
        let (batches, receiver) = mpsc::channel(8);
        let mut answers = LogIngestServiceClient::new(channel)
            .ingest_logs(ReceiverStream::new(receiver))
            .await
            .expect("ingest stream")
            .into_inner();
        tokio::spawn(async move {
            for batch_number in 0.. {
                let logs = (0..10).map(|i| job_entry(run, &format!("ingested {batch_number}.{i}"))).collect();
                let batch = pb::IngestLogsRequest { batch_number, r#type: pb::LogType::Job.into(), logs };
                if batches.send(batch).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        loop {
            match answers.message().await {
                Ok(Some(answer)) => {
                    assert!(answer.refusal.is_none(), "{answer:?}");
                    for receipt in answer.receipts {
                        let _ = acknowledged.send(receipt.id);
                    }
                }
                Ok(None) => panic!("the ingest stream ended with OK"),
                Err(status) => return status,
            }
        }
    })
}

async fn sigterm_ends_every_stream_and_loses_nothing(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let grace = format!("{}s", GRACE.as_secs());
    let (mut child, address, _lines) = start_serving_with(&database.url, &["--shutdown-grace", &grace], &[]).await;
    let run = Uuid::now_v7();
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(channel(&address).await);
    }

    let received = Arc::new(AtomicUsize::new(0));
    let followers: Vec<JoinHandle<Followed>> =
        (0..FOLLOWERS).map(|i| follow(connections[i % 4].clone(), run, 0, received.clone())).collect();
    let (acknowledged_sender, mut acknowledged) = mpsc::unbounded_channel();
    for (writer, connection) in connections.iter().enumerate() {
        write_until_refused(connection.clone(), run, writer, acknowledged_sender.clone());
    }
    let ingesting = ingest_until_ended(connections[0].clone(), run, acknowledged_sender.clone());
    drop(acknowledged_sender);
    let mut ids = BTreeSet::new();
    while ids.len() < 500 {
        ids.insert(acknowledged.recv().await.expect("the writers are writing"));
    }
    eventually("every follower receives logs", Duration::from_secs(30), || async {
        (received.load(Ordering::Relaxed) >= FOLLOWERS * 100).then_some(())
    })
    .await;

    let mut health = HealthClient::new(connections[1].clone())
        .watch(HealthCheckRequest::default())
        .await
        .expect("watch health")
        .into_inner();
    let serving = health.message().await.expect("health").expect("a status");
    assert_eq!(serving.status(), ServingStatus::Serving);

    let signalled = Instant::now();
    send_signal(&child, "TERM").await;
    let not_serving = health.message().await.expect("health").expect("a status");
    assert_eq!(not_serving.status(), ServingStatus::NotServing, "health turns first");
    assert!(health.message().await.expect("the watch ends cleanly").is_none(), "and the watch ends");
    let status = tokio::time::timeout(GRACE + CLOSING, child.wait()).await.expect("exits within its bound");
    let took = signalled.elapsed();
    assert!(status.expect("wait").success(), "a clean exit");
    assert!(took < GRACE, "nothing held the shutdown, yet it took {took:?}");

    let mut resume_points = Vec::new();
    for follower in followers {
        let (seqs, status) = follower.await.expect("follower");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(status.message().contains("shutting down"), "{}", status.message());
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "each follower got a gap-free prefix");
        resume_points.push(seqs);
    }
    let ended = ingesting.await.expect("ingest");
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    while let Some(id) = acknowledged.recv().await {
        ids.insert(id);
    }

    // The next server: every acknowledged log is there, and every follower
    // resumes from its last seq and gets the rest of the run exactly once.
    let (mut next, address, _lines) = start_serving_with(&database.url, &[], &[]).await;
    let connection = channel(&address).await;
    let mut reader = LogQueryServiceClient::new(connection.clone());
    let mut stored = Vec::new();
    let mut request = pb::ListLogsRequest { job_run_id: run.to_string(), page_size: 1_000, ..Default::default() };
    loop {
        let page = reader.list_logs(request.clone()).await.expect("list").into_inner();
        stored.extend(page.logs.into_iter().map(|log| (log.seq, log.id)));
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    let stored_ids: BTreeSet<String> = stored.iter().map(|(_, id)| id.clone()).collect();
    let lost = ids.difference(&stored_ids).count();
    assert_eq!(lost, 0, "{lost} of {} acknowledged logs were lost", ids.len());
    let last_seq = stored.len() as i64;
    assert_eq!(stored.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), (1..=last_seq).collect::<Vec<_>>());

    let resumed: Vec<(Vec<i64>, JoinHandle<Followed>)> = resume_points
        .into_iter()
        .map(|seqs| {
            let after = seqs.last().copied().unwrap_or(0);
            (seqs, follow(connection.clone(), run, after, Arc::new(AtomicUsize::new(0))))
        })
        .collect();
    let completion = pb::CompleteJobRunRequest {
        job_run_id: run.to_string(),
        outcome: pb::JobRunOutcome::Succeeded.into(),
        summary: String::new(),
    };
    JobRunServiceClient::new(connection).complete_job_run(completion).await.expect("complete");
    for (mut seqs, follower) in resumed {
        let (rest, status) = follower.await.expect("resumed follower");
        assert_eq!(status.code(), Code::Ok, "the resumed follower sees the completion: {status:?}");
        seqs.extend(rest);
        assert_eq!(seqs, (1..=last_seq).collect::<Vec<_>>(), "every log exactly once across the restart");
    }
    next.kill().await.expect("kill");
}

/// A server's standard error, to be read or held: dropping it closes the pipe.
type ServerLog = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>;

/// Starts a server with `grace`, writes 2,000 logs of 1 KB to `run`, and
/// opens a follower of it that takes 1 KiB and then stops reading: the
/// server cannot finish that stream, so it holds the graceful shutdown.
async fn serve_a_stuck_follower(
    database: &TestDatabase,
    grace: &str,
    run: Uuid,
) -> (Child, tonic::Streaming<pb::StreamLogsResponse>, ServerLog) {
    let (child, address, lines) = start_serving_with(&database.url, &["--shutdown-grace", grace], &[]).await;
    let line = "x".repeat(1_000);
    let mut writer = JobLogServiceClient::new(channel(&address).await);
    for _ in 0..2 {
        let logs = (0..1_000).map(|_| job_entry(run, &line)).collect();
        writer.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    }
    let narrow = Channel::from_shared(address)
        .expect("uri")
        .initial_stream_window_size(Some(1_024))
        .connect()
        .await
        .expect("connect");
    let request = pb::StreamLogsRequest { job_run_id: run.to_string(), ..Default::default() };
    let mut stuck = LogStreamServiceClient::new(narrow).stream_logs(request).await.expect("follow").into_inner();
    stuck.message().await.expect("first log").expect("a log");
    // Not a readiness wait: time for the follower to fill the buffers (it
    // takes milliseconds). Too little would make the shutdown quick and fail
    // the tests' assertions, never pass them wrongly.
    tokio::time::sleep(Duration::from_millis(500)).await;
    (child, stuck, lines)
}

/// An export under way when SIGTERM comes ends with UNAVAILABLE (after what
/// the server had already sent), the server exits well within its grace,
/// and the export resumes on the next server from the last cursor with the
/// rest, exactly once.
async fn an_export_ends_at_shutdown_and_resumes_on_the_next_server(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let (mut child, address, _log) = start_serving_with(&database.url, &["--shutdown-grace", "30s"], &[]).await;
    let run = Uuid::now_v7();
    let line = "x".repeat(1_000);
    let mut writer = JobLogServiceClient::new(channel(&address).await);
    for _ in 0..5 {
        let logs = (0..1_000).map(|_| job_entry(run, &line)).collect();
        writer.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    }
    let filter = Some(pb::LogFilter { job_run_ids: vec![run.to_string()], ..Default::default() });
    let request = pb::ExportLogsRequest { filter, chunk_size: 100, ..Default::default() };
    let mut export = LogQueryServiceClient::new(channel(&address).await)
        .export_logs(request.clone())
        .await
        .expect("export")
        .into_inner();
    let (mut seqs, mut cursor) = (Vec::new(), String::new());
    let first = export.message().await.expect("message").expect("a first chunk");
    seqs.extend(first.logs.iter().map(|log| log.seq));
    cursor.clone_from(&first.cursor);
    let signalled = Instant::now();
    send_signal(&child, "TERM").await;
    let ended = loop {
        match export.message().await {
            Ok(Some(message)) => {
                seqs.extend(message.logs.iter().map(|log| log.seq));
                cursor = message.cursor;
            }
            Ok(None) => panic!("the export ended without saying why, after {} logs", seqs.len()),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert!(ended.message().contains("last cursor"), "{}", ended.message());
    assert!(seqs.len() < 5_000, "the export was under way at the signal");
    let status = tokio::time::timeout(CLOSING, child.wait()).await.expect("exits").expect("wait");
    assert!(status.success());
    assert!(signalled.elapsed() < Duration::from_secs(10), "took {:?}", signalled.elapsed());

    let (mut next, address, _lines) = start_serving_with(&database.url, &[], &[]).await;
    let resumed = pb::ExportLogsRequest { cursor, ..request };
    let mut export =
        LogQueryServiceClient::new(channel(&address).await).export_logs(resumed).await.expect("resume").into_inner();
    while let Some(message) = export.message().await.expect("message") {
        seqs.extend(message.logs.iter().map(|log| log.seq));
    }
    assert_eq!(seqs, (1..=5_000).collect::<Vec<i64>>(), "every log once, in order, across the two servers");
    send_signal(&next, "TERM").await;
    assert!(next.wait().await.expect("wait").success());
}

/// However a client behaves, the server is gone within its grace period
/// plus the closing bound, exiting cleanly.
async fn a_stuck_follower_holds_the_server_no_longer_than_its_grace(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let (mut child, _stuck, _log) = serve_a_stuck_follower(&database, "2s", Uuid::now_v7()).await;
    let signalled = Instant::now();
    send_signal(&child, "TERM").await;
    let status = tokio::time::timeout(Duration::from_secs(2) + CLOSING, child.wait()).await.expect("exits in time");
    assert!(status.expect("wait").success());
    assert!(signalled.elapsed() >= Duration::from_secs(2), "the stream held it until the grace ended");
}

/// A second SIGTERM does not wait for a stuck stream, and loses nothing.
async fn a_second_signal_exits_at_once(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let run = Uuid::now_v7();
    let (mut child, stuck, _log) = serve_a_stuck_follower(&database, "60s", run).await;
    send_signal(&child, "TERM").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let early = child.try_wait().expect("try_wait");
    assert!(early.is_none(), "the unread stream holds the graceful shutdown, yet it exited: {early:?}");
    let signalled = Instant::now();
    send_signal(&child, "TERM").await;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits").expect("wait");
    assert!(signalled.elapsed() < Duration::from_secs(2), "took {:?}", signalled.elapsed());
    assert_eq!(status.code(), Some(130), "{status}");
    drop(stuck);

    let (mut next, address, _lines) = start_serving_with(&database.url, &[], &[]).await;
    let mut reader = LogQueryServiceClient::new(channel(&address).await);
    let run_state = JobRunServiceClient::new(channel(&address).await)
        .get_job_run(pb::GetJobRunRequest { job_run_id: run.to_string() })
        .await
        .expect("get run")
        .into_inner();
    assert_eq!(run_state.job_run.expect("run").log_count, 2_000, "every acknowledged log is there");
    let last = reader
        .list_logs(pb::ListLogsRequest { job_run_id: run.to_string(), after_seq: 1_999, ..Default::default() })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(last.logs.len(), 1);
    next.kill().await.expect("kill");
}

/// Whoever reads the server's standard error may go away (a log shipper
/// that crashed): logging then fails quietly, and the server still stops.
#[tokio::test]
async fn a_closed_log_pipe_does_not_hold_the_shutdown() {
    let database = TestDatabase::create(Backend::Sqlite).await;
    let (mut child, _address, log) = start_serving_with(&database.url, &[], &[]).await;
    drop(log);
    send_signal(&child, "TERM").await;
    let status = tokio::time::timeout(GRACE, child.wait()).await.expect("exits in time").expect("wait");
    assert!(status.success(), "{status}");
}
