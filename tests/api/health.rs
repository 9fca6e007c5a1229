//! Health follows the database, for the server and for each service.

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::conformance;
use crate::helpers::{Backend, TestServer};

conformance!(health_turns_not_serving_when_the_database_is_gone);

const SERVICES: [&str; 9] = [
    "",
    "logwell.v1.SystemLogService",
    "logwell.v1.JobLogService",
    "logwell.v1.TaskLogService",
    "logwell.v1.LogQueryService",
    "logwell.v1.LogStreamService",
    "logwell.v1.JobRunService",
    "logwell.v1.TokenService",
    "logwell.v1.LogIngestService",
];

async fn statuses(server: &TestServer) -> Vec<ServingStatus> {
    let mut statuses = Vec::new();
    for service in SERVICES {
        let request = HealthCheckRequest { service: service.to_string() };
        let response = server.health().check(request).await.expect("health check").into_inner();
        statuses.push(response.status());
    }
    statuses
}

/// Polls until every service reports `wanted`, for at most ten seconds.
async fn wait_for(server: &TestServer, wanted: ServingStatus) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = statuses(server).await;
        if now.iter().all(|status| *status == wanted) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {now:?}, wanted {wanted:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn health_turns_not_serving_when_the_database_is_gone(backend: Backend) {
    let server = TestServer::start(backend).await;
    wait_for(&server, ServingStatus::Serving).await;
    server.database.destroy().await;
    wait_for(&server, ServingStatus::NotServing).await;
}
