//! A PostgreSQL outage: the test stops the real server under a running
//! logwell and starts it again. While it is down, health is NOT_SERVING,
//! writes are UNAVAILABLE with nothing half-stored, and followers' streams end
//! with UNAVAILABLE; once it is back, logwell recovers by itself.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logwell::proto::v1 as pb;
use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

use crate::helpers::{
    TestDatabase, TestServer, error_ending, eventually, job_entry, start_serving, start_serving_with, test_settings,
};
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

/// What the README promises with the default flags: NOT_SERVING within the
/// check interval plus the check timeout (2 s + 1 s) of an outage, SERVING
/// within as long of the database's return, and no flapping either side.
const DEFAULT_HEALTH_BOUND: Duration = Duration::from_secs(3);
/// For the poll (100 ms) and the scheduling of this busy machine.
const SLACK: Duration = Duration::from_millis(700);

/// When each health answer came, and what it was (`None`: no answer).
type Answers = Arc<Mutex<Vec<(Instant, Option<ServingStatus>)>>>;

/// Polls health every 100 ms, recording each answer, until dropped.
struct HealthPoller {
    answers: Answers,
    task: tokio::task::JoinHandle<()>,
}

impl HealthPoller {
    fn start(channel: Channel) -> HealthPoller {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let recorded = answers.clone();
        let task = tokio::spawn(async move {
            let mut client = HealthClient::new(channel);
            loop {
                let status = match client.check(HealthCheckRequest::default()).await {
                    Ok(answer) => ServingStatus::try_from(answer.into_inner().status).ok(),
                    Err(_) => None,
                };
                recorded.lock().expect("answers").push((Instant::now(), status));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        HealthPoller { answers, task }
    }

    /// The first answer at or after `since` that was `status`.
    fn first(&self, status: ServingStatus, since: Instant) -> Option<Instant> {
        let answers = self.answers.lock().expect("answers");
        answers.iter().find(|(at, answer)| *at >= since && *answer == Some(status)).map(|(at, _)| *at)
    }

    /// Every answer from `from` until `until`.
    fn between(&self, from: Instant, until: Instant) -> Vec<Option<ServingStatus>> {
        let answers = self.answers.lock().expect("answers");
        answers.iter().filter(|(at, _)| *at >= from && *at < until).map(|(_, answer)| *answer).collect()
    }

    async fn wait_for(&self, status: ServingStatus, since: Instant, within: Duration) -> Instant {
        eventually(&format!("health {status:?}"), within, || async { self.first(status, since) }).await
    }
}

impl Drop for HealthPoller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn health_follows_a_postgres_outage_within_its_bound_on_the_default_flags() {
    let mut cluster = PrivateCluster::start();
    let (mut server, address, _log) = start_serving(cluster.admin_url()).await;
    let channel = Channel::from_shared(address).expect("uri").connect().await.expect("connect");
    let poller = HealthPoller::start(channel.clone());
    poller.wait_for(ServingStatus::Serving, Instant::now(), WITHIN).await;

    let stopping = Instant::now();
    cluster.stop_server().await;
    let not_serving = poller.wait_for(ServingStatus::NotServing, stopping, WITHIN).await;
    let detection = not_serving - stopping;
    println!("NOT_SERVING {detection:?} after the stop began");
    assert!(detection <= DEFAULT_HEALTH_BOUND + SLACK, "took {detection:?}");
    tokio::time::sleep_until((stopping + Duration::from_secs(5)).into()).await;

    cluster.start_server().await;
    let back = Instant::now();
    let serving = poller.wait_for(ServingStatus::Serving, not_serving, WITHIN).await;
    let outage_answers = poller.between(not_serving, back);
    assert!(
        outage_answers.iter().all(|answer| *answer == Some(ServingStatus::NotServing)),
        "NOT_SERVING throughout the outage: {outage_answers:?}"
    );
    let recovery = serving.saturating_duration_since(back);
    println!("SERVING {recovery:?} after the database was back");
    assert!(recovery <= DEFAULT_HEALTH_BOUND + SLACK, "took {recovery:?}");

    let run = Uuid::now_v7();
    let mut writer = JobLogServiceClient::new(channel);
    writer.write_job_log(pb::WriteJobLogRequest { log: Some(job_entry(run, "after")) }).await.expect("write");
    let settled = Instant::now();
    tokio::time::sleep(DEFAULT_HEALTH_BOUND).await;
    let after = poller.between(serving, settled + DEFAULT_HEALTH_BOUND);
    assert!(after.iter().all(|answer| *answer == Some(ServingStatus::Serving)), "no flapping afterwards: {after:?}");
    server.kill().await.expect("kill");
}

/// With checks too rare to notice anything, the requests alone move health:
/// the first that meets the outage turns it NOT_SERVING, the first that
/// succeeds after it turns it SERVING.
#[tokio::test]
async fn requests_turn_health_at_once() {
    let mut cluster = PrivateCluster::start();
    let flags = ["--health-check-interval", "1h", "--database-acquire-timeout", "1s"];
    let (mut server, address, _log) = start_serving_with(cluster.admin_url(), &flags, &[]).await;
    let channel = Channel::from_shared(address).expect("uri").connect().await.expect("connect");
    let poller = HealthPoller::start(channel.clone());
    poller.wait_for(ServingStatus::Serving, Instant::now(), WITHIN).await;
    let run = Uuid::now_v7();
    let writer = JobLogServiceClient::new(channel);
    let write = |message: &'static str| {
        let request = pb::WriteJobLogRequest { log: Some(job_entry(run, message)) };
        let mut writer = writer.clone();
        async move { writer.write_job_log(request).await }
    };

    cluster.stop_server().await;
    let stopped = Instant::now();
    let refused = write("during").await.expect_err("the database is down");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let failed = Instant::now();
    // The server turns health NOT_SERVING as its call fails, a moment before
    // the refusal reaches this client: leave that moment out.
    let before_the_answer = failed - Duration::from_millis(100);
    let polled = poller.between(stopped, before_the_answer);
    assert_eq!(polled.iter().flatten().last(), Some(&ServingStatus::Serving), "no check ran");
    poller.wait_for(ServingStatus::NotServing, failed, Duration::from_millis(500)).await;

    cluster.start_server().await;
    let written = eventually("a write succeeds", WITHIN, || async { write("after").await.ok() }).await;
    assert!(!written.into_inner().receipt.expect("receipt").duplicate);
    poller.wait_for(ServingStatus::Serving, Instant::now(), Duration::from_millis(500)).await;
    server.kill().await.expect("kill");
}
