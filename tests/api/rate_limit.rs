//! Per-caller write rates: a unary write over its caller's rate is
//! RESOURCE_EXHAUSTED with a retry hint and stores nothing; other callers are
//! unaffected; a streaming writer is slowed instead of refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use logwell::api::AccessPolicy;
use logwell::auth::{Authentication, TokenSet, token_hash};
use logwell::proto::v1 as pb;
use logwell::rate_limit::RateLimiter;
use logwell::server::ServerSettings;
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::{Backend, TestDatabase, TestServer, job_entry, test_settings, with_authorization};

/// A server where each token may write `logs_per_second`, 100 at once.
async fn rate_limited_server(logs_per_second: u32) -> TestServer {
    let mut tokens = TokenSet::default();
    tokens
        .add("test", &format!("a write,read {}\nb write {}", token_hash("token-a"), token_hash("token-b")))
        .expect("tokens");
    let settings = ServerSettings {
        access: AccessPolicy { authentication: Authentication::Tokens(tokens), ..AccessPolicy::open() },
        rate_limit: Some(Arc::new(RateLimiter::new(logs_per_second, 100))),
        ..test_settings()
    };
    TestServer::start_with(TestDatabase::create(Backend::Sqlite).await, settings).await
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    with_authorization(message, &format!("Bearer {token}"))
}

fn batch(run: Uuid, count: usize) -> pb::WriteJobLogsRequest {
    pb::WriteJobLogsRequest { logs: (0..count).map(|i| job_entry(run, &format!("log {i}"))).collect() }
}

#[tokio::test]
async fn a_caller_over_its_rate_is_told_when_to_retry() {
    // Slow enough that the bucket cannot refill while the burst is written,
    // however busy the machine.
    let server = rate_limited_server(2).await;
    let run = Uuid::now_v7();
    server.job().write_job_logs(with_token(batch(run, 100), "token-a")).await.expect("the whole burst");
    let over = server.job().write_job_logs(with_token(batch(run, 1), "token-a")).await.expect_err("over the rate");
    assert_eq!(over.code(), Code::ResourceExhausted);
    assert!(over.message().starts_with("token a is over its write rate of 2 logs/s"), "{}", over.message());
    let retry_after = over.get_details_retry_info().and_then(|info| info.retry_delay).expect("a retry hint");
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_millis(500), "{retry_after:?}");

    server.job().write_job_logs(with_token(batch(run, 100), "token-b")).await.expect("b has a bucket of its own");
    tokio::time::sleep(retry_after).await;
    server.job().write_job_logs(with_token(batch(run, 1), "token-a")).await.expect("after the hinted pause");

    let listing = pb::ListLogsRequest { job_run_id: run.to_string(), page_size: 1_000, ..Default::default() };
    let stored = server.query().list_logs(with_token(listing, "token-a")).await.expect("list").into_inner();
    assert_eq!(stored.logs.len(), 201, "the refused write stored nothing");
}

#[tokio::test]
async fn a_streaming_writer_is_slowed_not_refused() {
    let server = rate_limited_server(100).await;
    let run = Uuid::now_v7();
    let batches = (0..3u64).map(move |number| pb::IngestLogsRequest {
        batch_number: number,
        r#type: pb::LogType::Job.into(),
        logs: batch(run, 100).logs,
    });
    let started = Instant::now();
    let mut answers = server
        .ingest()
        .ingest_logs(with_token(tokio_stream::iter(batches), "token-a"))
        .await
        .expect("stream")
        .into_inner();
    let mut answered = 0;
    while let Some(answer) = answers.message().await.expect("answer") {
        assert_eq!(answer.refusal, None, "batch {} refused", answer.batch_number);
        answered += 1;
    }
    assert_eq!(answered, 3);
    // 300 logs at 100 logs/s with a burst of 100 take at least 2 s.
    assert!(started.elapsed() >= Duration::from_millis(1_900), "{:?}", started.elapsed());
}
