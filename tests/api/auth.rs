//! Who may call what: every RPC against every kind of credential, with the
//! exact status; health and reflection open unless configured otherwise; the
//! refusal to serve a network address without tokens.

use std::time::Duration;

use logwell::api::AccessPolicy;
use logwell::auth::{Authentication, TokenSet, token_hash};
use logwell::proto::v1 as pb;
use logwell::proto::v1::log_ingest_service_client::LogIngestServiceClient;
use logwell::server::ServerSettings;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_request::MessageRequest};
use uuid::Uuid;

use crate::helpers::{Backend, TestDatabase, TestServer, job_entry, logwell, start_serving_with, task_entry};

const READER: &str = "lw_reader_token";
const WRITER: &str = "lw_writer_token";
const ADMIN: &str = "lw_admin_token";

/// The credentials each RPC is tried with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    None,
    Wrong,
    NotBearer,
    Reader,
    Writer,
    Admin,
}

impl Credential {
    const ALL: [Credential; 6] = [
        Credential::None,
        Credential::Wrong,
        Credential::NotBearer,
        Credential::Reader,
        Credential::Writer,
        Credential::Admin,
    ];

    fn header(self) -> Option<String> {
        match self {
            Credential::None => None,
            Credential::Wrong => Some("Bearer lw_not_a_token".into()),
            Credential::NotBearer => Some(format!("Basic {READER}")),
            Credential::Reader => Some(format!("Bearer {READER}")),
            Credential::Writer => Some(format!("Bearer {WRITER}")),
            Credential::Admin => Some(format!("Bearer {ADMIN}")),
        }
    }
}

fn request<T>(message: T, credential: Credential) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(header) = credential.header() {
        request.metadata_mut().insert("authorization", MetadataValue::try_from(header).expect("header"));
    }
    request
}

fn tokens_policy() -> AccessPolicy {
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

fn code<T>(result: Result<T, tonic::Status>) -> Code {
    result.map(|_| Code::Ok).unwrap_or_else(|status| status.code())
}

/// Calls `rpc` with `credential`; answers the status code.
async fn call(server: &TestServer, rpc: &str, credential: Credential, run: Uuid, log_id: &str) -> Code {
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
        "IngestLogs" => {
            let batch = pb::IngestLogsRequest {
                batch_number: 1,
                r#type: pb::LogType::Job.into(),
                logs: vec![job_entry(run, "ingested")],
            };
            let mut client = LogIngestServiceClient::new(server.channel.clone());
            match client.ingest_logs(request(tokio_stream::iter([batch]), credential)).await {
                Ok(answers) => {
                    let answer = answers.into_inner().message().await.expect("answer").expect("one answer");
                    assert_eq!(answer.refusal, None);
                    Code::Ok
                }
                Err(status) => status.code(),
            }
        }
        "ListLogs" => {
            let query = pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() };
            code(server.query().list_logs(request(query, credential)).await)
        }
        "GetLog" => code(server.query().get_log(request(pb::GetLogRequest { id: log_id.into() }, credential)).await),
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
        "CompleteJobRun" => {
            let completion = pb::CompleteJobRunRequest {
                job_run_id: Uuid::now_v7().to_string(),
                outcome: pb::JobRunOutcome::Succeeded.into(),
                summary: String::new(),
            };
            code(server.job_runs().complete_job_run(request(completion, credential)).await)
        }
        other => panic!("no call for {other}"),
    }
}

/// Every RPC of logwell's contract, with the scope it needs.
const RPCS: [(&str, Credential); 15] = [
    ("WriteSystemLog", Credential::Writer),
    ("WriteSystemLogs", Credential::Writer),
    ("WriteJobLog", Credential::Writer),
    ("WriteJobLogs", Credential::Writer),
    ("WriteTaskLog", Credential::Writer),
    ("WriteTaskLogs", Credential::Writer),
    ("IngestLogs", Credential::Writer),
    ("ListLogs", Credential::Reader),
    ("GetLog", Credential::Reader),
    ("StreamLogs", Credential::Reader),
    ("GetJobRun", Credential::Reader),
    ("CompleteJobRun", Credential::Admin),
    // Twice more, so that order does not matter: a refused call changes nothing.
    ("WriteJobLog", Credential::Writer),
    ("ListLogs", Credential::Reader),
    ("CompleteJobRun", Credential::Admin),
];

#[tokio::test]
async fn every_rpc_answers_each_credential_with_the_exact_status() {
    let server = server_with(tokens_policy()).await;
    let run = Uuid::now_v7();
    let written = server
        .job()
        .write_job_log(request(pb::WriteJobLogRequest { log: Some(job_entry(run, "first")) }, Credential::Writer))
        .await
        .expect("writer writes")
        .into_inner();
    let log_id = written.receipt.expect("receipt").id;
    let mut mismatches = Vec::new();
    for (rpc, allowed) in RPCS {
        for credential in Credential::ALL {
            let expected = match credential {
                Credential::None | Credential::Wrong | Credential::NotBearer => Code::Unauthenticated,
                granted if granted == allowed => Code::Ok,
                _ => Code::PermissionDenied,
            };
            let actual = call(&server, rpc, credential, run, &log_id).await;
            if actual != expected {
                mismatches.push(format!("{rpc} with {credential:?}: expected {expected:?}, got {actual:?}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    // Refused writes stored nothing: the run holds the first log and what the
    // writer sent (WriteJobLog twice, WriteJobLogs, IngestLogs, two task logs).
    let stored = server
        .query()
        .list_logs(request(
            pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() },
            Credential::Reader,
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(stored.logs.len(), 7, "{:?}", stored.logs.iter().map(|log| &log.message).collect::<Vec<_>>());
}

#[tokio::test]
async fn refusals_say_what_is_missing_and_nothing_about_the_data() {
    let server = server_with(tokens_policy()).await;
    let list = |credential| {
        let mut query = server.query();
        async move {
            let query_for_unknown_run =
                pb::ListLogsRequest { job_run_id: Uuid::now_v7().to_string(), ..Default::default() };
            query.list_logs(request(query_for_unknown_run, credential)).await.expect_err("refused")
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
    let with_token = request(HealthCheckRequest::default(), Credential::Reader);
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
