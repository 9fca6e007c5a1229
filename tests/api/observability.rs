//! Per-RPC metrics and request ids: every RPC counted by service, method and
//! status code and timed per method; the caller's `x-request-id` returned,
//! or a new one; paths that are no RPC of ours under one label.

use logwell::proto::v1::{self as pb};
use uuid::Uuid;

use crate::helpers::{Backend, TestServer, job_entry};

fn requests(service: &str, method: &str, code: &str) -> String {
    format!("logwell_grpc_requests_total{{code=\"{code}\",method=\"{method}\",service=\"{service}\"}}")
}

#[tokio::test]
async fn every_rpc_is_counted_timed_and_given_a_request_id() {
    let server = TestServer::start(Backend::Sqlite).await;
    let run = Uuid::now_v7();
    let mut writer = server.job();
    for _ in 0..2 {
        let log = Some(job_entry(run, "counted"));
        writer.write_job_log(pb::WriteJobLogRequest { log }).await.expect("write");
    }
    let refused = writer.write_job_log(pb::WriteJobLogRequest { log: Some(job_entry(run, "")) }).await;
    assert_eq!(refused.expect_err("empty message").code(), tonic::Code::InvalidArgument);

    let mut request = tonic::Request::new(pb::WriteJobLogRequest { log: Some(job_entry(run, "traced")) });
    request.metadata_mut().insert("x-request-id", "build-42/step-3".parse().expect("metadata"));
    let answered = writer.write_job_log(request).await.expect("write");
    assert_eq!(answered.metadata().get("x-request-id").and_then(|id| id.to_str().ok()), Some("build-42/step-3"));
    let unnamed = writer.write_job_log(pb::WriteJobLogRequest { log: Some(job_entry(run, "new id")) }).await;
    let generated =
        unnamed.expect("write").metadata().get("x-request-id").map(|id| id.to_str().unwrap_or("").to_string());
    assert!(generated.is_some_and(|id| Uuid::parse_str(&id).is_ok()), "a new UUID when the caller sent none");
    let refusal_id = writer.write_job_log(pb::WriteJobLogRequest { log: Some(job_entry(run, "")) }).await;
    assert!(refusal_id.expect_err("refused").metadata().get("x-request-id").is_some(), "refusals carry it too");

    // A follow counts once it ends: here when the run completes.
    let follow = pb::StreamLogsRequest { job_run_id: run.to_string(), ..Default::default() };
    let mut stream = server.stream().stream_logs(follow).await.expect("follow").into_inner();
    let complete = pb::CompleteJobRunRequest {
        job_run_id: run.to_string(),
        outcome: pb::JobRunOutcome::Succeeded as i32,
        summary: String::new(),
    };
    server.job_runs().complete_job_run(complete).await.expect("complete");
    while stream.message().await.expect("stream").is_some() {}

    // A path that is no RPC of ours: one label, whatever it is.
    let mut stranger = tonic::client::Grpc::new(server.channel.clone());
    stranger.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/made.up.Service/Anything");
    let codec = tonic_prost::ProstCodec::<pb::WriteJobLogRequest, pb::WriteJobLogResponse>::default();
    let unknown = stranger.unary(tonic::Request::new(pb::WriteJobLogRequest::default()), path, codec).await;
    assert_eq!(unknown.expect_err("no such RPC").code(), tonic::Code::Unimplemented);

    let service = "logwell.v1.JobLogService";
    assert_eq!(server.metric(&requests(service, "WriteJobLog", "Ok")).await, 4.0);
    assert_eq!(server.metric(&requests(service, "WriteJobLog", "InvalidArgument")).await, 2.0);
    assert_eq!(server.metric(&requests("logwell.v1.LogStreamService", "StreamLogs", "Ok")).await, 1.0);
    assert_eq!(server.metric(&requests("unknown", "unknown", "Unimplemented")).await, 1.0);
    let timed =
        "logwell_grpc_request_duration_seconds_count{method=\"WriteJobLog\",service=\"logwell.v1.JobLogService\"}";
    assert_eq!(server.metric(timed).await, 6.0);
}

/// One request followed through logwell's own logs: the line a call logs
/// carries its request id and the caller's token name, never the token.
#[tokio::test]
async fn a_call_logs_under_its_request_id_and_caller() {
    const ADMIN: &str = "lw_admin_token_for_the_observability_test";
    let folder = tempfile::tempdir().expect("folder");
    let url = format!("sqlite:{}", folder.path().join("observe.db").display());
    let tokens = format!("operator admin,write {}", logwell::auth::token_hash(ADMIN));
    let (mut server, address, mut lines) =
        crate::helpers::start_serving_with(&url, &[], &[("LOGWELL_TOKENS", &tokens)]).await;
    let channel = tonic::transport::Channel::from_shared(address).expect("uri").connect().await.expect("connect");
    let run = Uuid::now_v7();
    let complete = pb::CompleteJobRunRequest {
        job_run_id: run.to_string(),
        outcome: pb::JobRunOutcome::Succeeded as i32,
        summary: String::new(),
    };
    let mut request = tonic::Request::new(complete);
    request.metadata_mut().insert("authorization", format!("Bearer {ADMIN}").parse().expect("metadata"));
    request.metadata_mut().insert("x-request-id", "deploy-7".parse().expect("metadata"));
    logwell::proto::v1::job_run_service_client::JobRunServiceClient::new(channel)
        .complete_job_run(request)
        .await
        .expect("complete");
    let line = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains("job run completed") {
                return line;
            }
        }
        panic!("logwell exited")
    })
    .await
    .expect("the completion is logged");
    let record: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    let span = &record["span"];
    assert_eq!(span["name"], "rpc", "{line}");
    assert_eq!(span["request_id"], "deploy-7", "{line}");
    assert_eq!(span["caller"], "operator", "{line}");
    assert_eq!(span["method"], "/logwell.v1.JobRunService/CompleteJobRun", "{line}");
    assert!(!line.contains(ADMIN), "never the token: {line}");
    server.kill().await.expect("kill");
}
