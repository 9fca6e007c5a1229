//! `grpc.health.v1.Health` follows the database: SERVING only while it
//! answers, for the whole server ("") and for each logwell service.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::{JobRuns, LogIngester, LogReader, LogStreamer, LogWriter, Tokens};
use crate::proto::v1::job_log_service_server::JobLogServiceServer;
use crate::proto::v1::job_run_service_server::JobRunServiceServer;
use crate::proto::v1::log_ingest_service_server::LogIngestServiceServer;
use crate::proto::v1::log_query_service_server::LogQueryServiceServer;
use crate::proto::v1::log_stream_service_server::LogStreamServiceServer;
use crate::proto::v1::system_log_service_server::SystemLogServiceServer;
use crate::proto::v1::task_log_service_server::TaskLogServiceServer;
use crate::proto::v1::token_service_server::TokenServiceServer;
use crate::store::LogStore;

/// The names whose status the health service reports; "" is the server.
const SERVICES: [&str; 9] = [
    "",
    <SystemLogServiceServer<LogWriter> as NamedService>::NAME,
    <JobLogServiceServer<LogWriter> as NamedService>::NAME,
    <TaskLogServiceServer<LogWriter> as NamedService>::NAME,
    <LogQueryServiceServer<LogReader> as NamedService>::NAME,
    <LogStreamServiceServer<LogStreamer> as NamedService>::NAME,
    <JobRunServiceServer<JobRuns> as NamedService>::NAME,
    <LogIngestServiceServer<LogIngester> as NamedService>::NAME,
    <TokenServiceServer<Tokens> as NamedService>::NAME,
];

pub(crate) async fn report(reporter: &HealthReporter, status: ServingStatus) {
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Checks the database every `interval` until `stopping` turns true, and
/// reports each change; reports NOT_SERVING on the way out, so that load
/// balancers drain this server while it finishes its requests.
pub(crate) async fn watch_database(
    store: Arc<dyn LogStore>,
    reporter: HealthReporter,
    interval: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    let check_timeout = interval.max(Duration::from_secs(1));
    let mut reported = None;
    while !*stopping.borrow() {
        let status = match tokio::time::timeout(check_timeout, store.check_health()).await {
            Ok(Ok(())) => ServingStatus::Serving,
            Ok(Err(error)) => {
                if reported != Some(ServingStatus::NotServing) {
                    tracing::warn!(%error, "database health check failed");
                }
                ServingStatus::NotServing
            }
            Err(_) => {
                if reported != Some(ServingStatus::NotServing) {
                    tracing::warn!(timeout = ?check_timeout, "database health check timed out");
                }
                ServingStatus::NotServing
            }
        };
        if reported != Some(status) {
            tracing::info!(?status, "health changed");
            report(&reporter, status).await;
            reported = Some(status);
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stopping.changed() => {}
        }
    }
    report(&reporter, ServingStatus::NotServing).await;
}
