//! A PostgreSQL outage: the test stops the real server under a running
//! logwell and starts it again. While it is down, health is NOT_SERVING,
//! writes are UNAVAILABLE with nothing half-stored, and followers' streams end
//! with UNAVAILABLE; once it is back, logwell recovers by itself.

use std::time::Duration;

use logwell::proto::v1 as pb;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use uuid::Uuid;

use crate::helpers::{TestDatabase, TestServer, error_ending, eventually, job_entry, test_settings};
use crate::postgres_cluster::PrivateCluster;

/// How long each change may take to show.
const WITHIN: Duration = Duration::from_secs(30);

async fn health(server: &TestServer) -> Option<ServingStatus> {
    let answer = server.health().check(HealthCheckRequest::default()).await.ok()?;
    ServingStatus::try_from(answer.into_inner().status).ok()
}

#[tokio::test]
async fn logwell_rides_out_a_postgres_restart() {
    let mut cluster = PrivateCluster::start();
    let server = TestServer::start_with(TestDatabase::on_private_cluster(&cluster), test_settings()).await;
    let run = Uuid::now_v7();
    let write = |message: &'static str| {
        let mut client = server.job();
        async move { client.write_job_log(pb::WriteJobLogRequest { log: Some(job_entry(run, message)) }).await }
    };
    write("before").await.expect("write while up");
    eventually("health SERVING", WITHIN, || async {
        (health(&server).await == Some(ServingStatus::Serving)).then_some(())
    })
    .await;
    let follow = pb::StreamLogsRequest { job_run_id: run.to_string(), ..Default::default() };
    let mut follower = server.stream().stream_logs(follow).await.expect("follow").into_inner();
    let first = follower.message().await.expect("first event").expect("an event");
    assert!(matches!(first.event, Some(pb::stream_logs_response::Event::Log(_))), "{first:?}");

    cluster.stop_server().await;

    eventually("health NOT_SERVING", WITHIN, || async {
        (health(&server).await == Some(ServingStatus::NotServing)).then_some(())
    })
    .await;
    let refused = write("during").await.expect_err("the database is down");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("nothing was stored, retry"), "{}", refused.message());
    let ended = error_ending(&mut follower, WITHIN).await;
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");

    cluster.start_server().await;

    eventually("health SERVING again", WITHIN, || async {
        (health(&server).await == Some(ServingStatus::Serving)).then_some(())
    })
    .await;
    eventually("writes work again", WITHIN, || async { write("after").await.ok() }).await;
    let stored = server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await;
    let stored: Vec<(i64, &str)> = stored.iter().map(|log| (log.seq, log.message.as_str())).collect();
    assert_eq!(stored, [(1, "before"), (2, "after")], "the refused write left nothing, not even a seq");
    // A follower resumes where it stopped.
    let resume = pb::StreamLogsRequest {
        job_run_id: run.to_string(),
        start: Some(pb::stream_logs_request::Start::AfterSeq(1)),
        ..Default::default()
    };
    let mut resumed = server.stream().stream_logs(resume).await.expect("follow again").into_inner();
    let next = resumed.message().await.expect("event").expect("an event");
    let Some(pb::stream_logs_response::Event::Log(log)) = next.event else { panic!("{next:?}") };
    assert_eq!((log.seq, log.message.as_str()), (2, "after"));
}
