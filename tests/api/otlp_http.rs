//! OTLP over HTTP (`POST /v1/logs`): protobuf and JSON, gzip or not,
//! answered in the request's encoding; refusals as the OTLP/HTTP
//! specification has them, with a google.rpc.Status body; nothing of a
//! refused export stored. The records' mapping is the gRPC export's
//! (`otlp.rs`); authorisation is in `auth.rs`'s matrix, TLS in `tls.rs`.

use std::io::Write;
use std::sync::Arc;

use flate2::Compression;
use flate2::write::GzEncoder;
use logwell::auth::{Authentication, TokenSet, token_hash};
use logwell::proto::opentelemetry::proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use logwell::proto::v1 as pb;
use logwell::rate_limit::RateLimiter;
use logwell::server::ServerSettings;
use prost::Message;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TestDatabase, TestServer, test_settings};
use crate::http_client::http_client;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// An answer from `/v1/logs`.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    fn content_type(&self) -> &str {
        self.headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The refusal's message, from the body in either encoding.
    fn status_message(&self) -> String {
        match self.content_type() {
            JSON => self.json()["message"].as_str().expect("a message").to_owned(),
            _ => self.rpc_status().message,
        }
    }

    fn rpc_status(&self) -> tonic_types::pb::Status {
        tonic_types::pb::Status::decode(&self.body[..]).expect("a protobuf google.rpc.Status")
    }
}

/// Posts `body` to `server`'s OTLP/HTTP `path` with `headers` (name, value).
pub async fn post(server: &TestServer, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let mut request = http_client(None).post(format!("http://{}{path}", server.otlp_http_address)).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("an HTTP answer");
    let (status, headers) = (response.status(), response.headers().clone());
    Answer { status, headers, body: response.bytes().await.expect("the body").to_vec() }
}

async fn post_protobuf(server: &TestServer, request: &ExportLogsServiceRequest) -> Answer {
    post(server, "/v1/logs", &[("content-type", PROTOBUF)], request.encode_to_vec()).await
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(body).expect("compress");
    encoder.finish().expect("compress")
}

/// Records of job run `run` in OTLP/JSON, as JavaScript SDKs send them:
/// camelCase names, 64-bit integers as strings, ids in hex. The second
/// record's severity is off the scale.
fn json_export(run: Uuid, message: &str) -> Vec<u8> {
    let export = json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "web"}},
            {"key": "cicd.pipeline.run.id", "value": {"stringValue": run.to_string()}}]},
        "scopeLogs": [{"scope": {"name": "browser"}, "logRecords": [
            {"timeUnixNano": "1700000000123456789", "severityNumber": 13, "severityText": "WARN",
             "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
             "body": {"stringValue": message},
             "attributes": [{"key": "log.iostream", "value": {"stringValue": "stderr"}},
                            {"key": "attempt", "value": {"intValue": "3"}}],
             "someFutureField": {"ignored": true}},
            {"severityNumber": 30, "body": {"stringValue": "off the scale"}}]}]}]});
    serde_json::to_vec(&export).expect("JSON")
}

async fn logs_of_run(server: &TestServer, run: &str) -> Vec<pb::Log> {
    let request = pb::ListLogsRequest { job_run_id: run.into(), page_size: 100, ..Default::default() };
    server.query().list_logs(request).await.expect("list").into_inner().logs
}

fn metadata(log: &pb::Log, key: &str) -> Option<prost_types::value::Kind> {
    log.metadata.as_ref()?.fields.get(key)?.kind.clone()
}

#[tokio::test]
async fn protobuf_json_and_gzip_exports_are_stored_and_answered_in_their_encoding() {
    let server = TestServer::start(Backend::Sqlite).await;
    let run = Uuid::now_v7();

    let answer = post_protobuf(&server, &crate::otlp::export_of(run, "in protobuf")).await;
    assert_eq!((answer.status, answer.content_type()), (StatusCode::OK, PROTOBUF));
    let response = ExportLogsServiceResponse::decode(&answer.body[..]).expect("an ExportLogsServiceResponse");
    assert_eq!(response.partial_success, None);

    let answer =
        post(&server, "/v1/logs", &[("content-type", "application/json; charset=utf-8")], json_export(run, "in JSON"))
            .await;
    assert_eq!((answer.status, answer.content_type()), (StatusCode::OK, JSON));
    let partial = &answer.json()["partialSuccess"];
    assert_eq!(partial["rejectedLogRecords"], "1", "{partial}");
    let reason = partial["errorMessage"].as_str().expect("a reason");
    assert!(reason.contains("log_records[1] severity_number 30 is not 0 to 24"), "{reason}");

    let headers = [("content-type", PROTOBUF), ("content-encoding", "gzip")];
    let compressed = gzip(&crate::otlp::export_of(run, "gzipped protobuf").encode_to_vec());
    assert_eq!(post(&server, "/v1/logs", &headers, compressed).await.status, StatusCode::OK);
    let headers = [("content-type", JSON), ("content-encoding", "gzip")];
    assert_eq!(
        post(&server, "/v1/logs", &headers, gzip(&json_export(run, "gzipped JSON"))).await.status,
        StatusCode::OK
    );

    let logs = logs_of_run(&server, &run.to_string()).await;
    let mut messages: Vec<&str> = logs.iter().map(|log| log.message.as_str()).collect();
    messages.sort_unstable();
    assert_eq!(messages, ["gzipped JSON", "gzipped protobuf", "in JSON", "in protobuf"]);
    let from_json = logs.iter().find(|log| log.message == "in JSON").expect("the JSON record");
    assert_eq!((from_json.level, from_json.stream), (pb::LogLevel::Warn as i32, pb::LogStream::Stderr as i32));
    assert_eq!((from_json.source.as_str(), from_json.time.map(|time| time.nanos)), ("web", Some(123_456_000)));
    let hex = |text: &str| Some(prost_types::value::Kind::StringValue(text.into()));
    assert_eq!(metadata(from_json, "trace_id"), hex("5b8efff798038103d269b633813fc60c"), "hex ids read as hex");
    assert_eq!(metadata(from_json, "span_id"), hex("eee19b7ec3c1b174"));
    assert_eq!(metadata(from_json, "attempt"), Some(prost_types::value::Kind::NumberValue(3.0)));
}

#[tokio::test]
async fn refusals_are_http_statuses_with_a_status_body_in_the_request_encoding() {
    let settings = ServerSettings { max_request_bytes: 64 * 1024, ..test_settings() };
    let server = TestServer::start_with(TestDatabase::create(Backend::Sqlite).await, settings).await;
    let run = Uuid::now_v7();

    let empty = ExportLogsServiceRequest { resource_logs: vec![Default::default()] };
    let answer = post_protobuf(&server, &empty).await;
    assert_eq!((answer.status, answer.content_type()), (StatusCode::BAD_REQUEST, PROTOBUF));
    let status = answer.rpc_status();
    assert_eq!(status.code, tonic::Code::InvalidArgument as i32);
    assert!(status.message.contains("resource_logs: holds no log records"), "{}", status.message);
    assert_eq!(status.details[0].type_url, "type.googleapis.com/google.rpc.BadRequest", "the field, as over gRPC");

    let answer = post(&server, "/v1/logs", &[("content-type", JSON)], b"{\"resourceLogs\": [{}]}".to_vec()).await;
    assert_eq!((answer.status, answer.content_type()), (StatusCode::BAD_REQUEST, JSON));
    let status = answer.json();
    assert_eq!(status["code"], 3, "{status}");
    assert_eq!(status["details"][0]["@type"], "type.googleapis.com/google.rpc.BadRequest", "{status}");
    assert_eq!(status["details"][0]["fieldViolations"][0]["field"], "resource_logs", "{status}");

    let refusals: [Refused; 8] = [
        (
            "not JSON",
            &[("content-type", JSON)],
            b"{\"resourceLogs\": [".to_vec(),
            StatusCode::BAD_REQUEST,
            "the body is not JSON",
        ),
        (
            "a wrong shape",
            &[("content-type", JSON)],
            b"{\"resourceLogs\": 7}".to_vec(),
            StatusCode::BAD_REQUEST,
            "not an OTLP ExportLogsServiceRequest",
        ),
        (
            "not protobuf",
            &[("content-type", PROTOBUF)],
            b"\xff\xff\xff".to_vec(),
            StatusCode::BAD_REQUEST,
            "not a protobuf ExportLogsServiceRequest",
        ),
        (
            "invalid UTF-8",
            &[("content-type", PROTOBUF)],
            invalid_utf8_body(),
            StatusCode::BAD_REQUEST,
            "invalid string value",
        ),
        (
            "another type",
            &[("content-type", "text/plain")],
            b"hello".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be",
        ),
        (
            "another coding",
            &[("content-type", PROTOBUF), ("content-encoding", "br")],
            vec![1],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Encoding \"br\"",
        ),
        (
            "corrupt gzip",
            &[("content-type", PROTOBUF), ("content-encoding", "gzip")],
            b"not gzip".to_vec(),
            StatusCode::BAD_REQUEST,
            "the gzip body is corrupt",
        ),
        (
            "too large",
            &[("content-type", PROTOBUF)],
            crate::otlp::export_of(run, &"x".repeat(70_000)).encode_to_vec(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than 65536 bytes",
        ),
    ];
    for (what, headers, body, expected, reason) in refusals {
        let answer = post(&server, "/v1/logs", headers, body).await;
        assert_eq!(answer.status, expected, "{what}");
        let message = answer.status_message();
        assert!(message.contains(reason), "{what}: {reason:?} in {message:?}");
    }
    // A gzip bomb: 64 KiB compressed to almost nothing expands past the bound.
    let bomb = gzip(&crate::otlp::export_of(run, &"x".repeat(70_000)).encode_to_vec());
    assert!(bomb.len() < 1024);
    let answer = post(&server, "/v1/logs", &[("content-type", PROTOBUF), ("content-encoding", "gzip")], bomb).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "decompressed past the bound");

    assert_eq!(post(&server, "/v1/traces", &[("content-type", PROTOBUF)], vec![]).await.status, StatusCode::NOT_FOUND);
    let get = http_client(None).get(format!("http://{}/v1/logs", server.otlp_http_address)).send().await;
    let get = get.expect("an answer");
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(logs_of_run(&server, &run.to_string()).await.is_empty(), "nothing of a refused export stored");
    // Operators see each answer by its status.
    for (code, count) in [("400", 7.0), ("413", 2.0), ("415", 2.0)] {
        assert_eq!(
            server.metric(&format!("logwell_otlp_http_requests_total{{code=\"{code}\"}}")).await,
            count,
            "{code}"
        );
    }
}

/// A refused request: what it is, its headers and body; the HTTP status
/// and a part of the message expected.
type Refused<'a> = (&'a str, &'a [(&'a str, &'a str)], Vec<u8>, StatusCode, &'a str);

/// A record whose body's string is not UTF-8, which protobuf decoding refuses.
fn invalid_utf8_body() -> Vec<u8> {
    let mut body = crate::otlp::export_of(Uuid::now_v7(), "MARK").encode_to_vec();
    let at = body.windows(4).position(|window| window == b"MARK").expect("the marker");
    body[at] = 0xff;
    body
}

#[tokio::test]
async fn an_export_past_the_callers_rate_is_429_with_retry_after() {
    let mut tokens = TokenSet::default();
    tokens.add("test", &format!("sender write {}", token_hash("token"))).expect("tokens");
    let settings = ServerSettings {
        access: logwell::api::AccessPolicy {
            authentication: Authentication::Tokens(tokens),
            ..logwell::api::AccessPolicy::open()
        },
        rate_limit: Some(Arc::new(RateLimiter::new(1, 10))),
        ..test_settings()
    };
    let server = TestServer::start_with(TestDatabase::create(Backend::Sqlite).await, settings).await;
    let headers = [("content-type", PROTOBUF), ("authorization", "Bearer token")];
    let body = |message: &str| crate::otlp::export_of(Uuid::now_v7(), message).encode_to_vec();
    let mut answers = Vec::new();
    for attempt in 0..12 {
        answers.push(post(&server, "/v1/logs", &headers, body(&format!("attempt {attempt}"))).await);
    }
    let limited = answers.iter().find(|answer| answer.status != StatusCode::OK).expect("a refusal past the burst");
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "retryable, per OTLP/HTTP");
    let retry_after: u64 = limited.headers[RETRY_AFTER].to_str().expect("text").parse().expect("seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let details = &limited.rpc_status().details;
    assert!(details.iter().any(|detail| detail.type_url == "type.googleapis.com/google.rpc.RetryInfo"), "{details:?}");
}
