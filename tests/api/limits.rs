//! Every configurable limit at its bound (accepted, and stored faithfully)
//! and one past it (refused with a status that names the limit and the
//! value), on both backends.

use std::time::Duration;

use logwell::model::Limits;
use logwell::proto::v1 as pb;
use logwell::server::ServerSettings;
use tonic::Code;
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestDatabase, TestServer, assert_invalid, eventually, job_entry, test_settings};
use crate::writes::{metadata, text};

conformance!(
    each_limit_holds_at_its_bound_and_refuses_past_it,
    long_messages_are_truncated_and_marked_when_configured,
    requests_over_the_size_limit_are_resource_exhausted,
    followers_per_job_run_are_bounded,
);

const LIMITS: Limits = Limits {
    batch_logs: 3,
    message_bytes: 64,
    truncate_messages: false,
    source_bytes: 8,
    metadata_bytes: 40,
    metadata_depth: 3,
    retention: logwell::model::RetentionPolicy { system: None, job: None, task: None },
};

async fn server(backend: Backend, settings: ServerSettings) -> TestServer {
    TestServer::start_with(TestDatabase::create(backend).await, settings).await
}

/// Metadata `{"k":"…"}` of exactly `bytes` bytes as JSON.
fn metadata_of(bytes: usize) -> prost_types::Struct {
    metadata(&[("k", text(&"v".repeat(bytes - r#"{"k":""}"#.len())))])
}

/// Metadata nested `levels` deep: `{"k": {"k": … {}}}`.
fn nested(levels: usize) -> prost_types::Struct {
    (1..levels).fold(prost_types::Struct::default(), |inner, _| {
        let value = prost_types::Value { kind: Some(prost_types::value::Kind::StructValue(inner)) };
        metadata(&[("k", value)])
    })
}

async fn each_limit_holds_at_its_bound_and_refuses_past_it(backend: Backend) {
    let server = server(backend, ServerSettings { limits: LIMITS, ..test_settings() }).await;
    let run = Uuid::now_v7();
    let write = |log: pb::LogEntry| {
        let mut client = server.job();
        async move { client.write_job_log(pb::WriteJobLogRequest { log: Some(log) }).await }
    };
    let at_bound =
        pb::LogEntry { source: "s".repeat(8), metadata: Some(metadata_of(40)), ..job_entry(run, &"m".repeat(64)) };
    write(at_bound.clone()).await.expect("every field at its bound");
    let deep = pb::LogEntry { metadata: Some(nested(3)), ..job_entry(run, "three levels") };
    write(deep).await.expect("metadata at the depth bound");

    let message = write(job_entry(run, &"m".repeat(65))).await;
    assert_invalid(message, &["log.message"]);
    let source = write(pb::LogEntry { source: "s".repeat(9), ..job_entry(run, "x") }).await;
    assert_invalid(source, &["log.source"]);
    let size = write(pb::LogEntry { metadata: Some(metadata_of(41)), ..job_entry(run, "x") }).await;
    assert_invalid(size, &["log.metadata"]);
    let depth = write(pb::LogEntry { metadata: Some(nested(4)), ..job_entry(run, "x") }).await;
    let depth = depth.expect_err("too deep");
    assert_eq!(depth.code(), Code::InvalidArgument);
    assert!(depth.message().contains("nests 4 levels deep; at most 3 are allowed"), "{}", depth.message());

    let batch = |count: usize| {
        let mut client = server.job();
        let logs = (0..count).map(|i| job_entry(run, &format!("batch {i}"))).collect();
        async move { client.write_job_logs(pb::WriteJobLogsRequest { logs }).await }
    };
    batch(3).await.expect("a batch at the bound");
    let over = batch(4).await.expect_err("one log too many");
    assert_eq!(crate::helpers::violated_fields(&over), ["logs"]);
    assert!(over.message().contains("holds 4 entries; at most 3 are allowed"), "{}", over.message());

    let stored = server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await;
    assert_eq!(stored.len(), 5, "the two logs and the batch at their bounds, nothing else");
    assert_eq!(stored[0].message, at_bound.message);
    assert_eq!(stored[0].source, at_bound.source);
    assert_eq!(stored[0].metadata, at_bound.metadata);
}

async fn long_messages_are_truncated_and_marked_when_configured(backend: Backend) {
    let limits = Limits { truncate_messages: true, metadata_bytes: 100, ..LIMITS };
    let server = server(backend, ServerSettings { limits, ..test_settings() }).await;
    let run = Uuid::now_v7();
    // 63 ASCII bytes and a 3-byte character: the cut keeps whole characters.
    let long = format!("{}€ and more", "a".repeat(63));
    let log = pb::LogEntry { metadata: Some(metadata(&[("k", text("v"))])), ..job_entry(run, &long) };
    server.job().write_job_log(pb::WriteJobLogRequest { log: Some(log) }).await.expect("truncated, not refused");
    let stored = server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await;
    assert_eq!(stored[0].message, "a".repeat(63));
    let fields = &stored[0].metadata.as_ref().expect("metadata").fields;
    assert_eq!(fields["k"], text("v"));
    assert_eq!(fields[logwell::model::TRUNCATED_FROM_BYTES], crate::writes::number(long.len() as f64));
}

async fn requests_over_the_size_limit_are_resource_exhausted(backend: Backend) {
    let server = server(backend, ServerSettings { max_request_bytes: 4_096, ..test_settings() }).await;
    let run = Uuid::now_v7();
    let sized = |message_bytes: usize| pb::WriteJobLogRequest { log: Some(job_entry(run, &"m".repeat(message_bytes))) };
    // A request of exactly 4,096 bytes passes; one byte more does not.
    let bytes = |message_bytes| prost::Message::encoded_len(&sized(message_bytes));
    let at_bound = (0..4_096).find(|&message_bytes| bytes(message_bytes) == 4_096).expect("a 4,096-byte request");
    assert_eq!(bytes(at_bound + 1), 4_097);
    server.job().write_job_log(sized(at_bound)).await.expect("a request at the bound");
    let over = server.job().write_job_log(sized(at_bound + 1)).await.expect_err("one byte over");
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
    assert_eq!(over.message(), "the request is 4097 bytes; --max-request-bytes allows at most 4096");

    // A stream: the batch before is answered, then the stream ends with the status.
    let batch = |number: u64, message_bytes: usize| pb::IngestLogsRequest {
        batch_number: number,
        r#type: pb::LogType::Job.into(),
        logs: vec![job_entry(run, &"i".repeat(message_bytes))],
    };
    let mut answers = server
        .ingest()
        .ingest_logs(tokio_stream::iter([batch(1, 10), batch(2, 5_000)]))
        .await
        .expect("stream")
        .into_inner();
    let first = answers.message().await.expect("first answer").expect("an answer");
    assert_eq!((first.batch_number, first.refusal), (1, None));
    let ended = answers.message().await.expect_err("the oversized batch ends the stream");
    assert_eq!(ended.code(), Code::ResourceExhausted, "{ended:?}");
    assert!(ended.message().contains("--max-request-bytes allows at most 4096"), "{}", ended.message());
}

/// The HTTP/2 bound on streams per connection: a call past it waits for a
/// slot (the client queues it) rather than failing, and starts once one frees.
#[tokio::test]
async fn streams_per_connection_are_bounded() {
    let settings = ServerSettings { max_concurrent_streams: 2, ..test_settings() };
    let server = server(Backend::Sqlite, settings).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.address))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let follow = |channel: tonic::transport::Channel| async move {
        let request = pb::StreamLogsRequest {
            job_run_id: Uuid::now_v7().to_string(),
            start: Some(pb::stream_logs_request::Start::FromNow(true)),
            ..Default::default()
        };
        logwell::proto::v1::log_stream_service_client::LogStreamServiceClient::new(channel).stream_logs(request).await
    };
    let first = follow(channel.clone()).await.expect("first stream");
    let _second = follow(channel.clone()).await.expect("second stream");
    let mut third = Box::pin(follow(channel.clone()));
    let waited = tokio::time::timeout(Duration::from_millis(500), &mut third).await;
    assert!(waited.is_err(), "a third stream started on a connection that allows two");
    drop(first);
    let started = tokio::time::timeout(Duration::from_secs(10), third).await.expect("the third starts once one ends");
    started.expect("third stream");
}

async fn followers_per_job_run_are_bounded(backend: Backend) {
    let server = server(backend, ServerSettings { max_followers_per_job_run: 2, ..test_settings() }).await;
    let run = Uuid::now_v7();
    let follow = |job_run_id: Uuid| {
        let mut client = server.stream();
        let request = pb::StreamLogsRequest {
            job_run_id: job_run_id.to_string(),
            start: Some(pb::stream_logs_request::Start::FromNow(true)),
            ..Default::default()
        };
        async move { client.stream_logs(request).await }
    };
    let first = follow(run).await.expect("first follower");
    let _second = follow(run).await.expect("second follower");
    let third = follow(run).await.expect_err("one follower too many");
    assert_eq!(third.code(), Code::ResourceExhausted);
    assert!(third.message().contains("has 2 followers"), "{}", third.message());
    follow(Uuid::now_v7()).await.expect("another run has room");
    drop(first);
    eventually("a follower that left freeing its place", Duration::from_secs(5), || async { follow(run).await.ok() })
        .await;
}
