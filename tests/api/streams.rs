//! StreamLogs: exactly once, in order, resumable; completion; heartbeats;
//! cancellation; bad input.

use std::time::Duration;

use logwell::proto::v1::log_stream_service_client::LogStreamServiceClient;
use logwell::proto::v1::stream_logs_request::Start;
use logwell::proto::v1::stream_logs_response::Event;
use logwell::proto::v1::{self as pb};
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestServer, assert_invalid, entry, job_entry, task_entry};

conformance!(
    history_then_live_then_completion,
    start_options_and_filters,
    heartbeats_report_progress_past_filtered_logs,
    an_unknown_run_waits_for_its_first_log,
    bad_stream_requests_name_the_field,
    every_follower_sees_exactly_the_committed_sequence,
    cancelled_streams_leave_nothing_behind,
);

pub fn follow(job_run_id: Uuid, start: Option<Start>) -> pb::StreamLogsRequest {
    pb::StreamLogsRequest { job_run_id: job_run_id.to_string(), start, ..Default::default() }
}

/// What a stream delivered before it ended.
#[derive(Debug, Default)]
pub struct Delivered {
    pub logs: Vec<pb::Log>,
    pub heartbeats: Vec<pb::StreamHeartbeat>,
    pub completion: Option<pb::JobRun>,
    /// Gaps the stream said were expired or deleted.
    pub expired: Vec<pb::StreamExpired>,
}

impl Delivered {
    pub fn seqs(&self) -> Vec<i64> {
        self.logs.iter().map(|log| log.seq).collect()
    }
}

/// Reads `stream` until it ends (it must end OK) or `enough` says stop.
pub async fn read_stream(
    stream: &mut tonic::Streaming<pb::StreamLogsResponse>,
    delivered: &mut Delivered,
    enough: impl Fn(&Delivered) -> bool,
) {
    while !enough(delivered) {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.message()).await.expect("stream stalled");
        match message.expect("stream failed").and_then(|response| response.event) {
            Some(Event::Log(log)) => delivered.logs.push(log),
            Some(Event::Heartbeat(heartbeat)) => delivered.heartbeats.push(heartbeat),
            Some(Event::Expired(expired)) => delivered.expired.push(expired),
            Some(Event::Completed(completed)) => {
                delivered.completion = completed.job_run;
                assert!(stream.message().await.expect("ends OK").is_none(), "nothing follows the completion");
                return;
            }
            None => return,
        }
    }
}

async fn open(server: &TestServer, request: pb::StreamLogsRequest) -> tonic::Streaming<pb::StreamLogsResponse> {
    server.stream().stream_logs(request).await.expect("stream").into_inner()
}

async fn write_job_logs(server: &TestServer, run: Uuid, messages: std::ops::Range<usize>) {
    let logs = messages.map(|i| job_entry(run, &format!("line {i}"))).collect();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
}

async fn complete(server: &TestServer, run: Uuid, outcome: pb::JobRunOutcome) -> pb::JobRun {
    let request =
        pb::CompleteJobRunRequest { job_run_id: run.to_string(), outcome: outcome.into(), summary: "done".into() };
    server.job_runs().complete_job_run(request).await.expect("complete").into_inner().job_run.expect("run")
}

async fn history_then_live_then_completion(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    write_job_logs(&server, run, 0..5).await;
    let mut stream = open(&server, follow(run, None)).await;
    let mut delivered = Delivered::default();
    read_stream(&mut stream, &mut delivered, |delivered| delivered.logs.len() == 5).await;
    write_job_logs(&server, run, 5..8).await;
    read_stream(&mut stream, &mut delivered, |delivered| delivered.logs.len() == 8).await;
    assert_eq!(delivered.seqs(), (1..=8).collect::<Vec<_>>());
    assert_eq!(delivered.logs[6].message, "line 6");

    complete(&server, run, pb::JobRunOutcome::Failed).await;
    read_stream(&mut stream, &mut delivered, |_| false).await;
    let completion = delivered.completion.expect("completion after the last log");
    assert_eq!(
        (completion.outcome(), completion.last_seq, completion.summary.as_str()),
        (pb::JobRunOutcome::Failed, 8, "done")
    );

    let late = server.job().write_job_log(pb::WriteJobLogRequest { log: Some(job_entry(run, "too late")) }).await;
    assert_eq!(late.expect_err("refused").code(), Code::FailedPrecondition);

    let mut replay = Delivered::default();
    read_stream(&mut open(&server, follow(run, Some(Start::AfterSeq(6)))).await, &mut replay, |_| false).await;
    assert_eq!(replay.seqs(), [7, 8], "following a completed run replays what is asked for");
    assert_eq!(replay.completion.expect("then the outcome").outcome(), pb::JobRunOutcome::Failed);
}

async fn start_options_and_filters(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (run, task) = (Uuid::now_v7(), Uuid::now_v7());
    let logs = (1..=10)
        .map(|i| {
            let level = if i % 2 == 0 { pb::LogLevel::Error } else { pb::LogLevel::Info };
            pb::LogEntry { level: level.into(), ..task_entry(run, task, &format!("task {i}")) }
        })
        .collect();
    server.task().write_task_logs(pb::WriteTaskLogsRequest { logs }).await.expect("write");
    write_job_logs(&server, run, 0..2).await;
    complete(&server, run, pb::JobRunOutcome::Succeeded).await;

    let seqs = |request: pb::StreamLogsRequest| async {
        let mut delivered = Delivered::default();
        read_stream(&mut open(&server, request).await, &mut delivered, |_| false).await;
        assert!(delivered.completion.is_some());
        delivered.seqs()
    };
    assert_eq!(seqs(follow(run, Some(Start::AfterSeq(9)))).await, [10, 11, 12]);
    assert_eq!(seqs(follow(run, Some(Start::Last(3)))).await, [10, 11, 12]);
    assert_eq!(seqs(follow(run, Some(Start::Last(50)))).await, (1..=12).collect::<Vec<_>>());
    assert!(seqs(follow(run, Some(Start::FromNow(true)))).await.is_empty());
    let errors = pb::StreamLogsRequest { min_level: pb::LogLevel::Error.into(), ..follow(run, Some(Start::Last(2))) };
    assert_eq!(seqs(errors).await, [8, 10], "the last N matching logs");
    let of_task = pb::StreamLogsRequest { task_run_id: task.to_string(), ..follow(run, Some(Start::AfterSeq(7))) };
    assert_eq!(seqs(of_task).await, [8, 9, 10]);

    let system_logs = pb::WriteSystemLogsRequest { logs: vec![entry("a"), entry("b")] };
    server.system().write_system_logs(system_logs).await.expect("system logs");
    let mut stream = open(&server, pb::StreamLogsRequest { system: true, ..Default::default() }).await;
    let mut delivered = Delivered::default();
    read_stream(&mut stream, &mut delivered, |delivered| delivered.logs.len() == 2).await;
    assert_eq!(delivered.seqs(), [1, 2]);
    assert!(delivered.logs.iter().all(|log| log.r#type() == pb::LogType::System));
}

async fn heartbeats_report_progress_past_filtered_logs(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let fatal_only = pb::StreamLogsRequest { min_level: pb::LogLevel::Fatal.into(), ..follow(run, None) };
    let mut stream = open(&server, fatal_only).await;
    write_job_logs(&server, run, 0..3).await;
    let mut delivered = Delivered::default();
    read_stream(&mut stream, &mut delivered, |delivered| {
        delivered.heartbeats.last().is_some_and(|heartbeat| heartbeat.delivered_through_seq == 3)
    })
    .await;
    let heartbeat = delivered.heartbeats.last().expect("heartbeat");
    assert_eq!(heartbeat.last_seq, 3, "the run's current seq, so a follower can tell idle from stuck");
    assert!(delivered.logs.is_empty());
}

async fn an_unknown_run_waits_for_its_first_log(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let mut stream = open(&server, follow(run, Some(Start::AfterSeq(2)))).await;
    let mut delivered = Delivered::default();
    read_stream(&mut stream, &mut delivered, |delivered| !delivered.heartbeats.is_empty()).await;
    assert_eq!(delivered.heartbeats[0].last_seq, 0, "waiting, not refused");
    write_job_logs(&server, run, 0..4).await;
    read_stream(&mut stream, &mut delivered, |delivered| delivered.logs.len() == 2).await;
    assert_eq!(delivered.seqs(), [3, 4], "a resume point beyond the end waits for the run to reach it");

    complete(&server, run, pb::JobRunOutcome::Cancelled).await;
    let beyond = server.stream().stream_logs(follow(run, Some(Start::AfterSeq(9)))).await;
    let status = match beyond {
        Ok(response) => response.into_inner().message().await.expect_err("beyond a completed run"),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
}

async fn bad_stream_requests_name_the_field(backend: Backend) {
    let server = TestServer::start(backend).await;
    let stream = |request: pb::StreamLogsRequest| {
        let mut client = server.stream();
        async move { client.stream_logs(request).await.map(|_| ()) }
    };
    let run = Uuid::now_v7();
    assert_invalid(stream(pb::StreamLogsRequest::default()).await, &["job_run_id"]);
    assert_invalid(
        stream(pb::StreamLogsRequest { job_run_id: "run-1".into(), ..Default::default() }).await,
        &["job_run_id"],
    );
    assert_invalid(stream(follow(run, Some(Start::Last(-1)))).await, &["last"]);
    assert_invalid(stream(follow(run, Some(Start::Last(10_001)))).await, &["last"]);
    assert_invalid(stream(follow(run, Some(Start::AfterSeq(-4)))).await, &["after_seq"]);
    let system_and_run = pb::StreamLogsRequest { system: true, ..follow(run, None) };
    assert_invalid(stream(system_and_run).await, &["job_run_id"]);
    assert_invalid(stream(pb::StreamLogsRequest { min_level: 12, ..follow(run, None) }).await, &["min_level"]);
}

/// One follower's plan in the stress test.
#[derive(Debug, Clone, Copy)]
struct Plan {
    start_delay: Duration,
    after_seq: i64,
    slow: bool,
    reconnect_every: Option<usize>,
}

/// Follows `run` by plan until completion, reconnecting with the last seq it
/// saw whenever the plan says so; returns every seq it received.
async fn follow_by_plan(channel: Channel, run: Uuid, plan: Plan) -> (Vec<i64>, pb::JobRun) {
    tokio::time::sleep(plan.start_delay).await;
    let mut client = LogStreamServiceClient::new(channel);
    let mut seqs: Vec<i64> = Vec::new();
    loop {
        let after = seqs.last().copied().unwrap_or(plan.after_seq);
        let mut stream =
            client.stream_logs(follow(run, Some(Start::AfterSeq(after)))).await.expect("stream").into_inner();
        let mut delivered = Delivered::default();
        let budget = plan.reconnect_every.unwrap_or(usize::MAX);
        while delivered.completion.is_none() && delivered.logs.len() < budget {
            let before = delivered.logs.len();
            read_stream(&mut stream, &mut delivered, |delivered| {
                delivered.logs.len() > before || delivered.completion.is_some()
            })
            .await;
            if plan.slow {
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
        seqs.extend(delivered.seqs());
        if let Some(completion) = delivered.completion {
            return (seqs, completion);
        }
    }
}

/// Several writers into one run, through `writers`; followers through
/// `followers` starting at staggered moments from various cursors, some slow,
/// some reconnecting; then the run completes. Every follower must have
/// received exactly the committed seqs after its start, in order.
pub async fn stress(writers: Vec<Channel>, followers: Vec<Channel>) {
    let run = Uuid::now_v7();
    let mut follower_tasks = Vec::new();
    for index in 0..12usize {
        let plan = Plan {
            start_delay: Duration::from_millis((index as u64 * 37) % 400),
            after_seq: [0, 0, 5, 40, 150][index % 5],
            slow: index % 3 == 0,
            reconnect_every: [None, Some(17), None, Some(60)][index % 4],
        };
        let channel = followers[index % followers.len()].clone();
        follower_tasks.push((plan, tokio::spawn(follow_by_plan(channel, run, plan))));
    }
    let mut writer_tasks = Vec::new();
    for index in 0..4usize {
        let channel = writers[index % writers.len()].clone();
        writer_tasks.push(tokio::spawn(async move {
            let mut job = logwell::proto::v1::job_log_service_client::JobLogServiceClient::new(channel.clone());
            let mut task = logwell::proto::v1::task_log_service_client::TaskLogServiceClient::new(channel);
            for write in 0..40usize {
                let message = format!("writer {index} write {write}");
                if write % 4 == 0 {
                    let logs = (0..=write % 5).map(|i| job_entry(run, &format!("{message} #{i}"))).collect();
                    job.write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("batch");
                } else {
                    let log = task_entry(run, Uuid::now_v7(), &message);
                    task.write_task_log(pb::WriteTaskLogRequest { log: Some(log) }).await.expect("write");
                }
                if write % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for writer in writer_tasks {
        writer.await.expect("writer");
    }
    let mut job_runs = logwell::proto::v1::job_run_service_client::JobRunServiceClient::new(writers[0].clone());
    let request = pb::CompleteJobRunRequest {
        job_run_id: run.to_string(),
        outcome: pb::JobRunOutcome::Succeeded.into(),
        summary: String::new(),
    };
    let completed = job_runs.complete_job_run(request).await.expect("complete").into_inner().job_run.expect("run");
    let total = completed.last_seq;
    assert!(total > 150, "the writers wrote {total} logs");
    for (plan, follower) in follower_tasks {
        let (seqs, completion) = follower.await.expect("follower");
        let expected: Vec<i64> = (plan.after_seq + 1..=total).collect();
        assert_eq!(seqs, expected, "{plan:?}");
        assert_eq!(completion.last_seq, total);
    }
}

async fn every_follower_sees_exactly_the_committed_sequence(backend: Backend) {
    let server = TestServer::start(backend).await;
    stress(vec![server.channel.clone()], vec![server.channel.clone()]).await;
}

async fn cancelled_streams_leave_nothing_behind(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    write_job_logs(&server, run, 0..3).await;

    let mut held = Vec::new();
    for _ in 0..50 {
        held.push(open(&server, follow(run, None)).await);
    }
    wait_for_metric(&server, "logwell_stream_followers", 50.0).await;
    assert_eq!(server.metric("logwell_followed_sequences").await, 1.0);
    // Each follow's stream and its follow loop run on the follows runtime.
    let follow_tasks = server.metric(FOLLOWS_RUNTIME_TASKS).await;
    assert!(follow_tasks >= 100.0, "{follow_tasks} tasks on the follows runtime for 50 follows");
    drop(held);
    wait_for_metric(&server, "logwell_stream_followers", 0.0).await;
    wait_for_metric(&server, FOLLOWS_RUNTIME_TASKS, 0.0).await;

    let cycles = 2_000;
    let mut workers = Vec::new();
    for worker in 0..8 {
        let mut client = server.stream();
        workers.push(tokio::spawn(async move {
            for cycle in (worker..cycles).step_by(8) {
                let mut stream = client.stream_logs(follow(run, None)).await.expect("stream").into_inner();
                if cycle % 2 == 0 {
                    stream.message().await.expect("first message");
                }
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    wait_for_metric(&server, "logwell_stream_followers", 0.0).await;
    assert_eq!(server.metric("logwell_followed_sequences").await, 0.0);
    wait_for_metric(&server, FOLLOWS_RUNTIME_TASKS, 0.0).await;
}

/// Tasks alive on the server's runtime for follows.
pub const FOLLOWS_RUNTIME_TASKS: &str = "logwell_runtime_alive_tasks{runtime=\"follows\"}";

/// Polls a metric until it has `wanted`, for at most ten seconds.
pub async fn wait_for_metric(server: &TestServer, name: &str, wanted: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let value = server.metric(name).await;
        if value == wanted {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} is {value}, wanted {wanted}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two `logwell serve` processes sharing one PostgreSQL database: logs
/// written through either reach followers on both, exactly once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_deliver_exactly_the_committed_sequence() {
    let database = crate::helpers::TestDatabase::create(Backend::Postgres).await;
    let (mut first, first_address, _first_log) = crate::helpers::start_serving(&database.url).await;
    let (mut second, second_address, _second_log) = crate::helpers::start_serving(&database.url).await;
    let connect =
        |address: String| async move { Channel::from_shared(address).expect("uri").connect().await.expect("connect") };
    let (first_channel, second_channel) = (connect(first_address).await, connect(second_address).await);
    stress(vec![first_channel.clone(), second_channel.clone()], vec![second_channel, first_channel]).await;
    first.kill().await.expect("kill");
    second.kill().await.expect("kill");
}

/// While a replica has a follower across runs, its commit tail reads every
/// commit anyway, and hands another replica's logs to the followers of
/// their runs: they get each log exactly once, in order, without reading
/// the database at each notification. Without one, each notification sends
/// them to the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commit_tail_hands_another_replicas_logs_to_run_followers() {
    const STORAGE_READS: &str = "logwell_follower_storage_reads_total";
    const WRITES: usize = 40;
    // A cluster of its own: every transaction running in a cluster, other
    // tests' included, holds back what reads in commit order can show.
    let cluster = crate::postgres_cluster::PrivateCluster::start();
    let database = crate::helpers::TestDatabase::on_private_cluster(&cluster);
    let writer = TestServer::start_with(database, crate::helpers::test_settings()).await;
    // Heartbeats read storage as a backstop: none within the test.
    let settings = logwell::server::ServerSettings {
        stream_heartbeat_interval: Duration::from_secs(600),
        ..crate::helpers::test_settings()
    };
    let reader = TestServer::start_with(writer.database.shared(), settings).await;
    let across = pb::FollowLogsRequest {
        filter: Some(pb::LogFilter::default()),
        start: Some(pb::follow_logs_request::Start::FromNow(true)),
    };
    let across = reader.stream().follow_logs(across).await.expect("follow across runs").into_inner();
    let run = Uuid::now_v7();
    let mut stream = open(&reader, follow(run, None)).await;
    wait_for_metric(&reader, "logwell_stream_followers", 1.0).await;
    let mut delivered = Delivered::default();
    // Each log is written once the last has arrived: one notification each.
    let mut write_and_receive = async |messages: std::ops::Range<usize>| {
        for message in messages {
            write_job_logs(&writer, run, message..message + 1).await;
            read_stream(&mut stream, &mut delivered, |delivered| delivered.logs.len() > message).await;
        }
    };
    // The commit tail starts its window once the follow across runs has
    // arrived; notifications before send the run's followers to storage.
    let mut written = 0;
    loop {
        let reads_before = reader.metric(STORAGE_READS).await;
        write_and_receive(written..written + 1).await;
        written += 1;
        if reader.metric(STORAGE_READS).await == reads_before {
            break;
        }
        assert!(written < 100, "every notification sent the run follower to storage");
    }

    let reads_before = reader.metric(STORAGE_READS).await;
    write_and_receive(written..written + WRITES).await;
    let reads_with_tail = reader.metric(STORAGE_READS).await - reads_before;
    assert!(reads_with_tail < (WRITES / 4) as f64, "{reads_with_tail} storage reads for {WRITES} notifications");
    written += WRITES;

    drop(across);
    wait_for_metric(&reader, "logwell_cross_run_followers", 0.0).await;
    let reads_before = reader.metric(STORAGE_READS).await;
    write_and_receive(written..written + WRITES).await;
    let reads_without_tail = reader.metric(STORAGE_READS).await - reads_before;
    assert!(reads_without_tail >= WRITES as f64, "{reads_without_tail} storage reads for {WRITES} notifications");
    written += WRITES;

    complete(&writer, run, pb::JobRunOutcome::Succeeded).await;
    read_stream(&mut stream, &mut delivered, |delivered| delivered.completion.is_some()).await;
    let total = i64::try_from(written).expect("a count");
    assert_eq!(delivered.seqs(), (1..=total).collect::<Vec<_>>(), "each log once, in order");
    assert_eq!(delivered.completion.map(|run| run.last_seq), Some(total));
}

/// Notifications sent while a replica's listening connection is down are
/// lost; so once it has reconnected, every follower of that replica is told
/// to re-read storage from its cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_a_replicas_listener_makes_its_followers_reread_storage() {
    use sqlx::Connection;
    let database = crate::helpers::TestDatabase::create(Backend::Postgres).await;
    let hub = logwell::live::Hub::new();
    let store =
        logwell::store::connect(&database.url, &crate::helpers::connect_options(), hub.clone()).await.expect("open");
    let mut follower = hub.subscribe(Uuid::now_v7());
    let mut admin = sqlx::PgConnection::connect(&crate::postgres_cluster::admin_url()).await.expect("connect");
    let name = database.url.rsplit('/').next().expect("database name").to_string();
    let cut =
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'";
    let terminated: i64 = sqlx::query_scalar(cut).bind(&name).fetch_one(&mut admin).await.expect("terminate");
    assert_eq!(terminated, 1, "one listening connection per process");
    let storage_changed = tokio::time::timeout(Duration::from_secs(10), follower.woken()).await;
    assert_eq!(storage_changed, Ok(true), "followers re-read storage once the listener is back");
    store.close().await;
}
