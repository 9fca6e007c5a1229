//! Health follows the database, for the server and for each service.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

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
    // Liveness is the process's, not the database's: no restarts in an outage.
    assert_eq!(status(&server.health(), "liveness").await, ServingStatus::Serving);
}

async fn status(health: &HealthClient<tonic::transport::Channel>, service: &str) -> ServingStatus {
    let request = HealthCheckRequest { service: service.to_string() };
    health.clone().check(request).await.expect("health check").into_inner().status()
}

/// `--health-listen`: health alone, in plaintext, without the other services.
#[tokio::test]
async fn health_listens_on_a_plaintext_port_of_its_own() {
    let folder = tempfile::tempdir().expect("folder");
    let database = format!("sqlite:{}", folder.path().join("health.db").display());
    let mut child = crate::helpers::logwell()
        .args(["serve", "--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--database-url", &database])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn logwell serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let address = loop {
        let line = lines.next_line().await.expect("read").expect("logwell exited before serving");
        let record: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        if record["fields"]["message"] == "logwell serving" {
            // Logged as an Option: `Some(127.0.0.1:PORT)`.
            let health = record["fields"]["health"].as_str().expect("the health address");
            break health.trim_start_matches("Some(").trim_end_matches(')').to_string();
        }
    };
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}")).expect("uri");
    let health = HealthClient::new(channel.connect().await.expect("connect"));
    assert_eq!(status(&health, "liveness").await, ServingStatus::Serving, "alive from the start");
    // Ready once the first check of the database answered.
    crate::helpers::eventually("ready", Duration::from_secs(10), || async {
        (status(&health, "").await == ServingStatus::Serving).then_some(())
    })
    .await;
    let writer = logwell::proto::v1::job_log_service_client::JobLogServiceClient::new(
        tonic::transport::Channel::from_shared(format!("http://{address}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect"),
    );
    let refused = writer.clone().write_job_log(logwell::proto::v1::WriteJobLogRequest::default()).await;
    assert_eq!(refused.expect_err("only health").code(), tonic::Code::Unimplemented);
    child.kill().await.expect("kill");
}

/// `serve --check-config` loads every setting and the files they name, and
/// opens nothing: no database file appears, no port is bound.
#[tokio::test]
async fn check_config_checks_and_opens_nothing() {
    let folder = tempfile::tempdir().expect("folder");
    let database = format!("sqlite:{}", folder.path().join("never.db").display());
    let output = crate::helpers::logwell()
        .args([
            "serve",
            "--check-config",
            "--listen",
            "0.0.0.0:50051",
            "--insecure-no-auth",
            "--database-url",
            &database,
        ])
        .output()
        .await
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("configuration ok: gRPC on 0.0.0.0:50051 (plaintext)"), "{stdout}");
    assert!(!folder.path().join("never.db").exists(), "no database was opened");

    let missing = folder.path().join("missing.pem").display().to_string();
    let refusals: [(&[&str], &str); 3] = [
        (&["--tls-cert-file", &missing, "--tls-key-file", &missing], "missing.pem"),
        (&["--listen", "0.0.0.0:50051"], "without authentication"),
        (&["--database-url", "mysql://root:hunter2@db/logs"], "unsupported database URL"),
    ];
    for (flags, says) in refusals {
        let output =
            crate::helpers::logwell().args(["serve", "--check-config"]).args(flags).output().await.expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flags:?}");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "no password in errors: {stderr}");
    }
}
