//! `grpc.health.v1.Health` follows the database: SERVING only while it
//! answers, for the whole server ("") and for each logwell service; and
//! NOT_SERVING from the moment the server starts shutting down.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::{JobRuns, LogIngester, LogReader, LogStreamer, LogWriter, Tokens};
use crate::proto::v1::job_log_service_server::JobLogServiceServer;
use crate::proto::v1::job_run_service_server::JobRunServiceServer;
use crate::proto::v1::log_ingest_service_server::LogIngestServiceServer;
use crate::proto::v1::log_query_service_server::LogQueryServiceServer;
use crate::proto::v1::system_log_service_server::SystemLogServiceServer;
use crate::proto::v1::task_log_service_server::TaskLogServiceServer;
use crate::proto::v1::token_service_server::TokenServiceServer;
use crate::proto::v1_encoded_streams::log_stream_service_server::LogStreamServiceServer;
use crate::store::{Availability, LogStore};

/// A name whose status is SERVING for as long as the process answers,
/// whatever the database does: for liveness probes, which must not restart
/// every replica during a database outage ("" is for readiness).
pub const LIVENESS: &str = "liveness";

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

/// Reports what the process knows of the database until `stopping` is
/// cancelled: each storage call's verdict as it comes (`availability`), and
/// a check every `interval`, failed if it takes longer than `timeout`
/// (keep it well under the interval), so that a database that
/// no request touches is still watched. Turns NOT_SERVING at once when
/// `stopping` is cancelled, so that load balancers drain this server while
/// it finishes its requests, and ends health watchers' streams.
pub(crate) async fn follow_database(
    store: Arc<dyn LogStore>,
    mut reporter: HealthReporter,
    availability: Availability,
    interval: Duration,
    timeout: Duration,
    stopping: CancellationToken,
) {
    let mut verdicts = availability.watch();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut reported = None;
    loop {
        tokio::select! {
            biased;
            () = stopping.cancelled() => break,
            _ = ticks.tick() => {
                let check = tokio::time::timeout(timeout, store.check_health());
                let outcome = tokio::select! {
                    biased;
                    () = stopping.cancelled() => break,
                    outcome = check => outcome,
                };
                let failure = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(error.to_string()),
                    Err(_) => {
                        availability.record(false);
                        Some(format!("no answer within {timeout:?}"))
                    }
                };
                if let Some(reason) = failure
                    && reported != Some(ServingStatus::NotServing)
                {
                    tracing::warn!(%reason, "database health check failed");
                }
            }
            changed = verdicts.changed() => if changed.is_err() { break },
        }
        let status = match *verdicts.borrow_and_update() {
            Some(true) => ServingStatus::Serving,
            Some(false) | None => ServingStatus::NotServing,
        };
        if reported != Some(status) {
            tracing::info!(?status, "health changed");
            report(&reporter, status).await;
            reported = Some(status);
        }
    }
    report(&reporter, ServingStatus::NotServing).await;
    // Health watchers (clients that check health with Watch) get NOT_SERVING,
    // then their streams end, so that they do not hold the shutdown open.
    for service in SERVICES {
        reporter.clear_service_status(service).await;
    }
}
