//! Who may call what: every RPC against every kind of credential, job-run
//! tokens for this run and for another included, with the exact status;
//! job-run tokens' lifetime and revocation; health and reflection open unless
//! configured otherwise; the refusal to serve a network address without
//! tokens.

use std::sync::Arc;
use std::time::Duration;

use logwell::api::AccessPolicy;
use logwell::auth::{Authentication, JobRunTokens, TokenSet, token_hash};
use logwell::proto::opentelemetry::proto::collector::logs::v1::logs_service_client::LogsServiceClient;
use logwell::proto::v1 as pb;
use logwell::server::ServerSettings;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_request::MessageRequest};
use uuid::Uuid;

use crate::helpers::{
    Backend, TestDatabase, TestServer, error_ending, eventually, job_entry, logwell, start_serving_with, task_entry,
    with_authorization,
};

const READER: &str = "lw_reader_token";
const WRITER: &str = "lw_writer_token";
const ADMIN: &str = "lw_admin_token";

/// The credentials each RPC is tried with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Credential {
    None,
    Wrong,
    NotBearer,
    Reader,
    Writer,
    Admin,
    /// A job-run token (read and write) for the run the calls are about.
    ThisRun(String),
    /// A job-run token (read and write) for another run.
    OtherRun(String),
}

impl Credential {
    fn header(&self) -> Option<String> {
        match self {
            Credential::None => None,
            Credential::Wrong => Some("Bearer lw_not_a_token".into()),
            Credential::NotBearer => Some(format!("Basic {READER}")),
            Credential::Reader => Some(format!("Bearer {READER}")),
            Credential::Writer => Some(format!("Bearer {WRITER}")),
            Credential::Admin => Some(format!("Bearer {ADMIN}")),
            Credential::ThisRun(token) | Credential::OtherRun(token) => Some(format!("Bearer {token}")),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Credential::None => "no token",
            Credential::Wrong => "a wrong token",
            Credential::NotBearer => "a non-bearer header",
            Credential::Reader => "the read token",
            Credential::Writer => "the write token",
            Credential::Admin => "the admin token",
            Credential::ThisRun(_) => "this run's job-run token",
            Credential::OtherRun(_) => "another run's job-run token",
        }
    }
}

fn request<T>(message: T, credential: &Credential) -> tonic::Request<T> {
    match credential.header() {
        Some(header) => with_authorization(message, &header),
        None => tonic::Request::new(message),
    }
}

/// Configured read, write and admin tokens, and job-run tokens signed with a
/// test key.
fn tokens_policy() -> AccessPolicy {
    AccessPolicy { job_run_tokens: Some(signing_key()), ..static_tokens_policy() }
}

fn signing_key() -> Arc<JobRunTokens> {
    Arc::new(JobRunTokens::new(b"a test key of at least 32 bytes!").expect("key"))
}

fn static_tokens_policy() -> AccessPolicy {
    let mut tokens = TokenSet::default();
    let lines = format!(
        "reader read {}\nwriter write {}\nadmin admin {}",
        token_hash(READER),
        token_hash(WRITER),
        token_hash(ADMIN)
    );
    tokens.add("test", &lines).expect("tokens");
    AccessPolicy { authentication: Authentication::Tokens(tokens), ..AccessPolicy::open() }
}

async fn server_with(access: AccessPolicy) -> TestServer {
    let database = TestDatabase::create(Backend::Sqlite).await;
    TestServer::start_with(database, ServerSettings { access, ..crate::helpers::test_settings() }).await
}

/// Mints a job-run token with the admin token.
async fn mint(server: &TestServer, request_body: pb::MintJobRunTokenRequest) -> pb::MintJobRunTokenResponse {
    server.tokens().mint_job_run_token(request(request_body, &Credential::Admin)).await.expect("mint").into_inner()
}

fn for_run(run: Uuid) -> pb::MintJobRunTokenRequest {
    pb::MintJobRunTokenRequest { job_run_id: run.to_string(), ..Default::default() }
}

fn code<T>(result: Result<T, tonic::Status>) -> Code {
    result.map(|_| Code::Ok).unwrap_or_else(|status| status.code())
}

/// Calls `rpc` with `credential`; answers the status code (for IngestLogs, a
/// refused batch's code).
async fn call(server: &TestServer, rpc: &str, credential: &Credential, run: Uuid, log_id: &str) -> Code {
    let task = Uuid::now_v7();
    match rpc {
        "WriteSystemLog" => {
            let log = Some(crate::helpers::entry("system"));
            code(server.system().write_system_log(request(pb::WriteSystemLogRequest { log }, credential)).await)
        }
        "WriteSystemLogs" => {
            let logs = vec![crate::helpers::entry("system")];
            code(server.system().write_system_logs(request(pb::WriteSystemLogsRequest { logs }, credential)).await)
        }
        "WriteJobLog" => {
            let log = Some(job_entry(run, "job"));
            code(server.job().write_job_log(request(pb::WriteJobLogRequest { log }, credential)).await)
        }
        "WriteJobLogs" => {
            let logs = vec![job_entry(run, "job")];
            code(server.job().write_job_logs(request(pb::WriteJobLogsRequest { logs }, credential)).await)
        }
        "WriteTaskLog" => {
            let log = Some(task_entry(run, task, "task"));
            code(server.task().write_task_log(request(pb::WriteTaskLogRequest { log }, credential)).await)
        }
        "WriteTaskLogs" => {
            let logs = vec![task_entry(run, task, "task")];
            code(server.task().write_task_logs(request(pb::WriteTaskLogsRequest { logs }, credential)).await)
        }
        "Export" => {
            let request_body = crate::otlp::export_of(run, "exported");
            let mut client = LogsServiceClient::new(server.channel.clone());
            code(client.export(request(request_body, credential)).await)
        }
        "POST /v1/logs" => {
            let body = prost::Message::encode_to_vec(&crate::otlp::export_of(run, "exported over HTTP"));
            let authorization = credential.header();
            let mut headers = vec![("content-type", "application/x-protobuf")];
            headers.extend(authorization.as_deref().map(|header| ("authorization", header)));
            match crate::otlp_http::post(server, "/v1/logs", &headers, body).await.status.as_u16() {
                200 => Code::Ok,
                401 => Code::Unauthenticated,
                403 => Code::PermissionDenied,
                other => panic!("OTLP/HTTP answered {other}"),
            }
        }
        "IngestLogs" => {
            let batch = pb::IngestLogsRequest {
                batch_number: 1,
                r#type: pb::LogType::Job.into(),
                logs: vec![job_entry(run, "ingested")],
            };
            let mut client = server.ingest();
            match client.ingest_logs(request(tokio_stream::iter([batch]), credential)).await {
                Ok(answers) => {
                    let answer = answers.into_inner().message().await.expect("answer").expect("one answer");
                    answer.refusal.map(|refusal| Code::from_i32(refusal.code)).unwrap_or(Code::Ok)
                }
                Err(status) => status.code(),
            }
        }
        "ListLogs" => {
            let query = pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() };
            code(server.query().list_logs(request(query, credential)).await)
        }
        "GetLog" => code(server.query().get_log(request(pb::GetLogRequest { id: log_id.into() }, credential)).await),
        "GetLogContext" => {
            let anchor = Some(pb::get_log_context_request::Anchor::Id(log_id.into()));
            let around = pb::GetLogContextRequest { anchor, ..Default::default() };
            code(server.query().get_log_context(request(around, credential)).await)
        }
        "CountLogs" => {
            let filter = Some(pb::LogFilter { job_run_ids: vec![run.to_string()], ..Default::default() });
            code(
                server
                    .query()
                    .count_logs(request(pb::CountLogsRequest { filter, ..Default::default() }, credential))
                    .await,
            )
        }
        "ExportLogs" => {
            let filter = Some(pb::LogFilter { job_run_ids: vec![run.to_string()], ..Default::default() });
            match server
                .query()
                .export_logs(request(pb::ExportLogsRequest { filter, ..Default::default() }, credential))
                .await
            {
                Ok(stream) => {
                    let first = stream.into_inner().message().await.expect("chunk").expect("one chunk");
                    assert!(!first.logs.is_empty());
                    Code::Ok
                }
                Err(status) => status.code(),
            }
        }
        "FollowLogs" => {
            let follow = pb::FollowLogsRequest {
                start: Some(pb::follow_logs_request::Start::FromStart(true)),
                ..Default::default()
            };
            match server.stream().follow_logs(request(follow, credential)).await {
                Ok(stream) => {
                    let first = stream.into_inner().message().await.expect("event").expect("one event");
                    assert!(matches!(first.event, Some(pb::follow_logs_response::Event::Log(_))), "{first:?}");
                    Code::Ok
                }
                Err(status) => status.code(),
            }
        }
        "StreamLogs" => {
            let follow = pb::StreamLogsRequest {
                job_run_id: run.to_string(),
                start: Some(pb::stream_logs_request::Start::Last(1)),
                ..Default::default()
            };
            match server.stream().stream_logs(request(follow, credential)).await {
                Ok(stream) => {
                    let first = stream.into_inner().message().await.expect("event").expect("one event");
                    assert!(matches!(first.event, Some(pb::stream_logs_response::Event::Log(_))), "{first:?}");
                    Code::Ok
                }
                Err(status) => status.code(),
            }
        }
        "GetJobRun" => {
            let run = pb::GetJobRunRequest { job_run_id: run.to_string() };
            code(server.job_runs().get_job_run(request(run, credential)).await)
        }
        "StartJobRun" => {
            let start =
                pb::StartJobRunRequest { job_run_id: run.to_string(), name: "auth".into(), ..Default::default() };
            code(server.job_runs().start_job_run(request(start, credential)).await)
        }
        // What each token sees is tested in run_listing.rs.
        "ListJobRuns" => {
            code(server.job_runs().list_job_runs(request(pb::ListJobRunsRequest::default(), credential)).await)
        }
        "CompleteJobRun" => {
            let completion = pb::CompleteJobRunRequest {
                job_run_id: Uuid::now_v7().to_string(),
                outcome: pb::JobRunOutcome::Succeeded.into(),
                summary: String::new(),
            };
            code(server.job_runs().complete_job_run(request(completion, credential)).await)
        }
        "DeleteJobRun" => {
            let completed = Uuid::now_v7();
            let completion = pb::CompleteJobRunRequest {
                job_run_id: completed.to_string(),
                outcome: pb::JobRunOutcome::Failed.into(),
                summary: String::new(),
            };
            server.job_runs().complete_job_run(request(completion, &Credential::Admin)).await.expect("complete");
            let delete = pb::DeleteJobRunRequest { job_run_id: completed.to_string() };
            code(server.job_runs().delete_job_run(request(delete, credential)).await)
        }
        "MintJobRunToken" => {
            let mut tokens = server.tokens();
            code(tokens.mint_job_run_token(request(for_run(run), credential)).await)
        }
        "RevokeJobRunToken" => {
            let revoke = pb::RevokeJobRunTokenRequest { token_id: Uuid::now_v7().to_string() };
            code(server.tokens().revoke_job_run_token(request(revoke, credential)).await)
        }
        other => panic!("no call for {other}"),
    }
}

/// Every RPC of logwell's contract: the configured token that may call it,
/// and what job-run tokens for the calls' run and for another run get.
const RPCS: [(&str, Credential, Code, Code); 26] = [
    ("WriteSystemLog", Credential::Writer, Code::PermissionDenied, Code::PermissionDenied),
    ("WriteSystemLogs", Credential::Writer, Code::PermissionDenied, Code::PermissionDenied),
    ("WriteJobLog", Credential::Writer, Code::Ok, Code::PermissionDenied),
    ("WriteJobLogs", Credential::Writer, Code::Ok, Code::PermissionDenied),
    ("WriteTaskLog", Credential::Writer, Code::Ok, Code::PermissionDenied),
    ("WriteTaskLogs", Credential::Writer, Code::Ok, Code::PermissionDenied),
    ("IngestLogs", Credential::Writer, Code::Ok, Code::PermissionDenied),
    // OpenTelemetry's LogsService/Export, a record of the calls' run.
    ("Export", Credential::Writer, Code::Ok, Code::PermissionDenied),
    ("POST /v1/logs", Credential::Writer, Code::Ok, Code::PermissionDenied),
    ("ListLogs", Credential::Reader, Code::Ok, Code::PermissionDenied),
    // Another run's token cannot tell a log outside its run from no log.
    ("GetLog", Credential::Reader, Code::Ok, Code::NotFound),
    ("GetLogContext", Credential::Reader, Code::Ok, Code::NotFound),
    ("CountLogs", Credential::Reader, Code::Ok, Code::PermissionDenied),
    ("ExportLogs", Credential::Reader, Code::Ok, Code::PermissionDenied),
    ("StreamLogs", Credential::Reader, Code::Ok, Code::PermissionDenied),
    // A job-run token may not follow across runs, even its own.
    ("FollowLogs", Credential::Reader, Code::PermissionDenied, Code::PermissionDenied),
    ("GetJobRun", Credential::Reader, Code::Ok, Code::PermissionDenied),
    ("StartJobRun", Credential::Writer, Code::Ok, Code::PermissionDenied),
    // Another run's token lists its own run only; here, none.
    ("ListJobRuns", Credential::Reader, Code::Ok, Code::Ok),
    ("CompleteJobRun", Credential::Admin, Code::PermissionDenied, Code::PermissionDenied),
    ("DeleteJobRun", Credential::Admin, Code::PermissionDenied, Code::PermissionDenied),
    ("MintJobRunToken", Credential::Admin, Code::PermissionDenied, Code::PermissionDenied),
    ("RevokeJobRunToken", Credential::Admin, Code::PermissionDenied, Code::PermissionDenied),
    // Again, so that order does not matter: a refused call changes nothing.
    ("WriteJobLog", Credential::Writer, Code::Ok, Code::PermissionDenied),
    ("ListLogs", Credential::Reader, Code::Ok, Code::PermissionDenied),
    ("CompleteJobRun", Credential::Admin, Code::PermissionDenied, Code::PermissionDenied),
];

#[tokio::test]
async fn every_rpc_answers_each_credential_with_the_exact_status() {
    let server = server_with(tokens_policy()).await;
    let run = Uuid::now_v7();
    let written = server
        .job()
        .write_job_log(request(pb::WriteJobLogRequest { log: Some(job_entry(run, "first")) }, &Credential::Writer))
        .await
        .expect("writer writes")
        .into_inner();
    let log_id = written.receipt.expect("receipt").id;
    let this_run = mint(&server, for_run(run)).await.token;
    let other_run = mint(&server, for_run(Uuid::now_v7())).await.token;
    let credentials = [
        Credential::None,
        Credential::Wrong,
        Credential::NotBearer,
        Credential::Reader,
        Credential::Writer,
        Credential::Admin,
        Credential::ThisRun(this_run),
        Credential::OtherRun(other_run),
    ];
    let mut mismatches = Vec::new();
    for (rpc, allowed, this_run_gets, other_run_gets) in RPCS {
        for credential in &credentials {
            let expected = match credential {
                Credential::None | Credential::Wrong | Credential::NotBearer => Code::Unauthenticated,
                Credential::ThisRun(_) => this_run_gets,
                Credential::OtherRun(_) => other_run_gets,
                granted if *granted == allowed => Code::Ok,
                _ => Code::PermissionDenied,
            };
            let actual = call(&server, rpc, credential, run, &log_id).await;
            if actual != expected {
                mismatches.push(format!("{rpc} with {}: expected {expected:?}, got {actual:?}", credential.name()));
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    // Refused writes stored nothing: the run holds the first log and what the
    // write token and this run's token sent (WriteJobLog twice, WriteJobLogs,
    // IngestLogs, Export, POST /v1/logs and two task logs, each).
    let listing = pb::ListLogsRequest { job_run_id: run.to_string(), page_size: 100, ..Default::default() };
    let stored = server.query().list_logs(request(listing, &Credential::Reader)).await.expect("list").into_inner();
    assert_eq!(stored.logs.len(), 17, "{:?}", stored.logs.iter().map(|log| &log.message).collect::<Vec<_>>());
}

#[tokio::test]
async fn refusals_say_what_is_missing_and_nothing_about_the_data() {
    let server = server_with(tokens_policy()).await;
    let list = |credential| {
        let mut query = server.query();
        async move {
            let query_for_unknown_run =
                pb::ListLogsRequest { job_run_id: Uuid::now_v7().to_string(), ..Default::default() };
            query.list_logs(request(query_for_unknown_run, &credential)).await.expect_err("refused")
        }
    };
    let missing = list(Credential::None).await;
    assert_eq!(missing.message(), "no credentials: send the metadata `authorization: Bearer <token>`");
    assert_eq!(list(Credential::Wrong).await.message(), "the bearer token is not valid");
    assert_eq!(
        list(Credential::Writer).await.message(),
        "this token lacks the read scope, which logwell.v1.LogQueryService/ListLogs needs"
    );
}

#[tokio::test]
async fn health_and_reflection_are_open_unless_configured_otherwise() {
    let reflect = |server: &TestServer| {
        let mut client = ServerReflectionClient::new(server.channel.clone());
        async move {
            let ask = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            match client.server_reflection_info(tokio_stream::iter([ask])).await {
                Ok(answers) => code(answers.into_inner().message().await),
                Err(status) => status.code(),
            }
        }
    };
    let open = server_with(tokens_policy()).await;
    assert_eq!(code(open.health().check(HealthCheckRequest::default()).await), Code::Ok);
    assert_eq!(reflect(&open).await, Code::Ok);

    let closed = server_with(AccessPolicy { public_health: false, public_reflection: false, ..tokens_policy() }).await;
    assert_eq!(code(closed.health().check(HealthCheckRequest::default()).await), Code::Unauthenticated);
    assert_eq!(reflect(&closed).await, Code::Unauthenticated);
    let with_token = request(HealthCheckRequest::default(), &Credential::Reader);
    assert_eq!(code(closed.health().check(with_token).await), Code::Ok);
}

#[tokio::test]
async fn a_network_address_without_tokens_is_refused_at_start() {
    let folder = tempfile::tempdir().expect("folder");
    let database = format!("sqlite:{}", folder.path().join("open.db").display());
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        logwell().args(["serve", "--listen", "0.0.0.0:0", "--database-url", &database]).output(),
    )
    .await
    .expect("exits in time")
    .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0:0 without authentication"), "{stderr}");

    let (mut child, _, mut lines) = start_serving_with(&database, &["--insecure-no-auth"], &[]).await;
    let warning = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.expect("stderr") {
            if line.contains("AUTHENTICATION IS OFF") {
                return line;
            }
        }
        panic!("no warning before exit")
    })
    .await
    .expect("the warning comes at start");
    assert!(warning.contains("\"level\":\"WARN\""), "{warning}");
    child.kill().await.expect("kill");
}

#[tokio::test]
async fn a_generated_token_works_once_its_line_is_configured() {
    let made = logwell().args(["token", "new", "--name", "ci", "--scopes", "write,read"]).output().await.expect("run");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let stdout = String::from_utf8(made.stdout).expect("UTF-8");
    let token = stdout.lines().find_map(|line| line.strip_prefix("token: ")).expect("token line").to_string();
    let line = stdout.lines().find_map(|line| line.strip_prefix("tokens-file line: ")).expect("config line");
    assert!(line.starts_with("ci write,read "), "{line}");

    let mut hashing = logwell()
        .arg("token")
        .arg("hash")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    use tokio::io::AsyncWriteExt;
    hashing.stdin.take().expect("stdin").write_all(format!("{token}\n").as_bytes()).await.expect("write");
    let hashed = hashing.wait_with_output().await.expect("hash");
    assert_eq!(String::from_utf8_lossy(&hashed.stdout).trim(), line.rsplit(' ').next().expect("hash"));

    let folder = tempfile::tempdir().expect("folder");
    let database = format!("sqlite:{}", folder.path().join("tokens.db").display());
    let (mut child, address, _lines) = start_serving_with(&database, &[], &[("LOGWELL_TOKENS", line)]).await;
    let channel = tonic::transport::Channel::from_shared(address).expect("uri").connect().await.expect("connect");
    let mut client = logwell::proto::v1::job_log_service_client::JobLogServiceClient::new(channel);
    let log = || pb::WriteJobLogRequest { log: Some(job_entry(Uuid::now_v7(), "hello")) };
    assert_eq!(code(client.write_job_log(log()).await), Code::Unauthenticated);
    let mut authorized = tonic::Request::new(log());
    authorized.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    assert_eq!(code(client.write_job_log(authorized).await), Code::Ok);
    child.kill().await.expect("kill");
}

#[tokio::test]
async fn a_token_bound_to_a_task_run_reaches_that_task_run_only() {
    let server = server_with(tokens_policy()).await;
    let (run, task, other_task) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let bound = pb::MintJobRunTokenRequest {
        task_run_id: task.to_string(),
        scopes: vec![pb::TokenScope::Write.into(), pb::TokenScope::Read.into()],
        ..for_run(run)
    };
    let token = Credential::ThisRun(mint(&server, bound).await.token);
    let write = |log: pb::LogEntry| {
        let mut client = server.task();
        let credential = token.clone();
        async move { code(client.write_task_log(request(pb::WriteTaskLogRequest { log: Some(log) }, &credential)).await) }
    };
    assert_eq!(write(task_entry(run, task, "mine")).await, Code::Ok);
    assert_eq!(write(task_entry(run, other_task, "not mine")).await, Code::PermissionDenied);
    let job_log = pb::WriteJobLogRequest { log: Some(job_entry(run, "the job's, not the task's")) };
    assert_eq!(code(server.job().write_job_log(request(job_log, &token)).await), Code::PermissionDenied);

    let list = |task_run_id: String| {
        let mut client = server.query();
        let credential = token.clone();
        let query = pb::ListLogsRequest { job_run_id: run.to_string(), task_run_id, ..Default::default() };
        async move { client.list_logs(request(query, &credential)).await }
    };
    let listed = list(task.to_string()).await.expect("its own task run").into_inner();
    assert_eq!(listed.logs.iter().map(|log| log.message.as_str()).collect::<Vec<_>>(), ["mine"]);
    let whole_run = list(String::new()).await.expect_err("the whole run is out of reach");
    assert_eq!(whole_run.code(), Code::PermissionDenied);
    assert!(whole_run.message().contains(&format!("task run {task}")), "{}", whole_run.message());
}

#[tokio::test]
async fn revoked_expired_and_forged_job_run_tokens_are_refused() {
    let server = server_with(tokens_policy()).await;
    let run = Uuid::now_v7();
    let get_run = |token: String| {
        let mut client = server.job_runs();
        let credential = Credential::ThisRun(token);
        async move {
            let get = pb::GetJobRunRequest { job_run_id: run.to_string() };
            client.get_job_run(request(get, &credential)).await.map(|_| Code::Ok).unwrap_or_else(|status| status.code())
        }
    };
    // The run does not exist yet: a valid token gets NOT_FOUND, not a refusal.
    let minted = mint(&server, for_run(run)).await;
    assert_eq!(get_run(minted.token.clone()).await, Code::NotFound);

    let revoke = pb::RevokeJobRunTokenRequest { token_id: minted.token_id.clone() };
    let mut tokens = server.tokens();
    tokens.revoke_job_run_token(request(revoke.clone(), &Credential::Admin)).await.expect("revoke");
    assert_eq!(get_run(minted.token.clone()).await, Code::Unauthenticated, "revoked");
    tokens.revoke_job_run_token(request(revoke, &Credential::Admin)).await.expect("revoking again is harmless");

    let short =
        pb::MintJobRunTokenRequest { ttl: Some(prost_types::Duration { seconds: 1, nanos: 0 }), ..for_run(run) };
    let short = mint(&server, short).await;
    eventually("the one-second token expires", Duration::from_secs(5), || async {
        (get_run(short.token.clone()).await == Code::Unauthenticated).then_some(())
    })
    .await;

    let forger = JobRunTokens::new(b"another key, also 32 bytes long!").expect("key");
    let grant = logwell::auth::GrantDraft { job_run_id: run.to_string(), ..Default::default() }
        .validate(chrono::Utc::now())
        .expect("grant");
    assert_eq!(get_run(forger.mint(&grant)).await, Code::Unauthenticated, "forged");

    let too_long = pb::MintJobRunTokenRequest {
        ttl: Some(prost_types::Duration { seconds: 8 * 24 * 3600, nanos: 0 }),
        ..for_run(run)
    };
    let refused = tokens.mint_job_run_token(request(too_long, &Credential::Admin)).await;
    crate::helpers::assert_invalid(refused, &["ttl"]);
}

#[tokio::test]
async fn minting_needs_a_signing_key() {
    let server = server_with(static_tokens_policy()).await;
    let mut tokens = server.tokens();
    let refused = tokens.mint_job_run_token(request(for_run(Uuid::now_v7()), &Credential::Admin)).await;
    let status = refused.expect_err("no key");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("--token-signing-key-file"), "{}", status.message());
}

/// Two servers on one PostgreSQL: a token minted on one works on the other,
/// and a revocation on the first reaches the second within its refresh
/// interval.
#[tokio::test]
async fn revocations_reach_other_replicas() {
    let database = TestDatabase::create(Backend::Postgres).await;
    let url = database.url.clone();
    let first =
        TestServer::start_with(database, ServerSettings { access: tokens_policy(), ..crate::helpers::test_settings() })
            .await;
    let folder = tempfile::tempdir().expect("folder");
    let key_file = folder.path().join("signing.key");
    std::fs::write(&key_file, b"a test key of at least 32 bytes!\n").expect("key file");
    let tokens_line = format!("admin admin {}", token_hash(ADMIN));
    let flags = [
        "--token-signing-key-file",
        key_file.to_str().expect("path"),
        "--tokens",
        &tokens_line,
        "--revocation-refresh-interval",
        "100ms",
    ];
    let (mut second, address, _lines) = start_serving_with(&url, &flags, &[]).await;
    let channel = tonic::transport::Channel::from_shared(address).expect("uri").connect().await.expect("connect");
    let mut second_query = logwell::proto::v1::log_query_service_client::LogQueryServiceClient::new(channel);

    let run = Uuid::now_v7();
    let minted = mint(&first, for_run(run)).await;
    let token = Credential::ThisRun(minted.token);
    let list = pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() };
    assert_eq!(code(second_query.list_logs(request(list.clone(), &token)).await), Code::Ok);

    let revoke = pb::RevokeJobRunTokenRequest { token_id: minted.token_id };
    first.tokens().revoke_job_run_token(request(revoke, &Credential::Admin)).await.expect("revoke");
    eventually("the second server refusing the revoked token", Duration::from_secs(5), || {
        let (mut query, list) = (second_query.clone(), list.clone());
        let token = token.clone();
        async move { (code(query.list_logs(request(list, &token)).await) == Code::Unauthenticated).then_some(()) }
    })
    .await;
    second.kill().await.expect("kill");
}

/// A follower's stream ends with UNAUTHENTICATED when its job-run token
/// expires, or at its next heartbeat after the token is revoked.
#[tokio::test]
async fn streams_end_when_their_token_expires_or_is_revoked() {
    let server = server_with(tokens_policy()).await;
    let run = Uuid::now_v7();
    let follow = |token: String| {
        let mut client = server.stream();
        async move {
            let from_now = pb::StreamLogsRequest {
                job_run_id: run.to_string(),
                start: Some(pb::stream_logs_request::Start::FromNow(true)),
                ..Default::default()
            };
            let mut stream =
                client.stream_logs(request(from_now, &Credential::ThisRun(token))).await.expect("follow").into_inner();
            error_ending(&mut stream, Duration::from_secs(10)).await
        }
    };
    let short =
        pb::MintJobRunTokenRequest { ttl: Some(prost_types::Duration { seconds: 1, nanos: 0 }), ..for_run(run) };
    let expired = follow(mint(&server, short).await.token).await;
    assert_eq!((expired.code(), expired.message()), (Code::Unauthenticated, "the job-run token expired"));

    let minted = mint(&server, for_run(run)).await;
    let following = tokio::spawn(follow(minted.token));
    eventually("the follower is registered", Duration::from_secs(10), || async {
        (server.metric("logwell_stream_followers").await == 1.0).then_some(())
    })
    .await;
    let revoke = pb::RevokeJobRunTokenRequest { token_id: minted.token_id };
    server.tokens().revoke_job_run_token(request(revoke, &Credential::Admin)).await.expect("revoke");
    let revoked = following.await.expect("follower");
    assert_eq!((revoked.code(), revoked.message()), (Code::Unauthenticated, "the job-run token was revoked"));
}

#[tokio::test]
async fn a_job_run_token_lists_its_own_run_only() {
    let server = server_with(tokens_policy()).await;
    let (own, other) = (Uuid::now_v7(), Uuid::now_v7());
    for run in [own, other] {
        let write = pb::WriteJobLogRequest { log: Some(job_entry(run, "line")) };
        server.job().write_job_log(request(write, &Credential::Writer)).await.expect("write");
    }
    let listing = |credential: Credential| {
        let mut client = server.job_runs();
        async move {
            let listed = client.list_job_runs(request(pb::ListJobRunsRequest::default(), &credential)).await;
            let ids: Vec<String> =
                listed.expect("list").into_inner().job_runs.into_iter().map(|run| run.job_run_id).collect();
            ids
        }
    };
    assert_eq!(listing(Credential::Reader).await, [other.to_string(), own.to_string()], "a reader sees both");
    let token = mint(&server, for_run(own)).await.token;
    assert_eq!(listing(Credential::ThisRun(token)).await, [own.to_string()]);
}

/// A tokens file that changes (a rotated Kubernetes Secret) is reloaded
/// without a restart; one that breaks keeps the tokens loaded before.
#[tokio::test]
async fn a_changed_tokens_file_is_reloaded_and_a_broken_one_ignored() {
    const OLD: &str = "lw_the_old_token_of_the_reload_test";
    const NEW: &str = "lw_the_new_token_of_the_reload_test";
    let folder = tempfile::tempdir().expect("folder");
    let tokens = folder.path().join("tokens");
    let replace = |text: String| {
        let aside = folder.path().join("tokens.new");
        std::fs::write(&aside, text).expect("write");
        std::fs::rename(&aside, &tokens).expect("rename");
    };
    replace(format!("runner write,read {}\n", token_hash(OLD)));
    let url = format!("sqlite:{}", folder.path().join("reload.db").display());
    let flags = ["--tokens-file", tokens.to_str().expect("path"), "--tokens-reload-interval", "100ms"];
    let (mut server, address, mut lines) = start_serving_with(&url, &flags, &[]).await;
    let channel = tonic::transport::Channel::from_shared(address).expect("uri").connect().await.expect("connect");
    let list = |token: &'static str| {
        let channel = channel.clone();
        async move {
            let mut request = tonic::Request::new(pb::ListLogsRequest::default());
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
            let answer = logwell::proto::v1::log_query_service_client::LogQueryServiceClient::new(channel)
                .list_logs(request)
                .await;
            answer.map(drop).map_err(|status| status.code())
        }
    };
    assert_eq!(list(OLD).await, Ok(()));
    assert_eq!(list(NEW).await, Err(Code::Unauthenticated));

    replace(format!("runner write,read {}\n", token_hash(NEW)));
    eventually("the new file is loaded", Duration::from_secs(10), || async {
        (list(NEW).await.is_ok() && list(OLD).await == Err(Code::Unauthenticated)).then_some(())
    })
    .await;

    replace("runner write,read not-a-hash\n".to_string());
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains("not reloaded") {
                return line;
            }
        }
        panic!("logwell exited")
    })
    .await
    .expect("the broken file is reported");
    assert!(refused.contains("tokens") && refused.contains("64 hex digits"), "{refused}");
    assert_eq!(list(NEW).await, Ok(()), "the tokens loaded before stay");
    server.kill().await.expect("kill");
}

/// Signing keys rotate without a restart: a new first key signs, the old one
/// verifies until it is removed from the file.
#[tokio::test]
async fn signing_keys_rotate_without_a_restart() {
    let folder = tempfile::tempdir().expect("folder");
    let keys = folder.path().join("keys");
    let replace = |text: String| {
        let aside = folder.path().join("keys.new");
        std::fs::write(&aside, text).expect("write");
        std::fs::rename(&aside, &keys).expect("rename");
    };
    let (old, new) = ("the old signing key of at least 32 bytes", "the new signing key of at least 32 bytes");
    replace(format!("{old}\n"));
    let url = format!("sqlite:{}", folder.path().join("keys.db").display());
    let flags = ["--token-signing-key-file", keys.to_str().expect("path"), "--tokens-reload-interval", "100ms"];
    let tokens_line = format!("admin admin {}", token_hash(ADMIN));
    let (mut server, address, mut lines) = start_serving_with(&url, &flags, &[("LOGWELL_TOKENS", &tokens_line)]).await;
    let channel = tonic::transport::Channel::from_shared(address).expect("uri").connect().await.expect("connect");
    let run = Uuid::now_v7();
    let mint = || {
        let channel = channel.clone();
        async move {
            let mut minter = logwell::proto::v1::token_service_client::TokenServiceClient::new(channel);
            minter.mint_job_run_token(request(for_run(run), &Credential::Admin)).await.expect("mint").into_inner().token
        }
    };
    let write = |token: String| {
        let channel = channel.clone();
        async move {
            let log = Some(job_entry(run, "signed"));
            let answer = logwell::proto::v1::job_log_service_client::JobLogServiceClient::new(channel)
                .write_job_log(request(pb::WriteJobLogRequest { log }, &Credential::ThisRun(token)))
                .await;
            code(answer)
        }
    };
    let by_old = mint().await;
    assert_eq!(write(by_old.clone()).await, Code::Ok);

    replace(format!("{new}\n{old}\n"));
    let reloaded = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains("reloaded") && line.contains("signing keys") {
                return;
            }
        }
        panic!("logwell exited")
    });
    reloaded.await.expect("the key file is reloaded");
    let by_new = mint().await;
    assert_eq!(write(by_new.clone()).await, Code::Ok);
    assert_eq!(write(by_old.clone()).await, Code::Ok, "the old key still verifies");

    replace(format!("{new}\n"));
    eventually("the old key is gone", Duration::from_secs(10), || async {
        (write(by_old.clone()).await == Code::Unauthenticated).then_some(())
    })
    .await;
    assert_eq!(write(by_new).await, Code::Ok);
    server.kill().await.expect("kill");
}
