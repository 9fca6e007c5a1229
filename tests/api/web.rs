//! logwell for browsers, on the gRPC port: gRPC-Web unary and
//! server-streaming calls over HTTP/1.1 with tonic-web's client, under the
//! same tokens as gRPC; CORS for the configured origins and logwell's own
//! page, and a 403 with nothing served to any other page; the viewer's
//! files, served without a token. The viewer itself is driven in a real
//! browser in `viewer.rs`.

use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use logwell::auth::{Authentication, TokenSet, token_hash};
use logwell::proto::v1 as pb;
use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::log_query_service_client::LogQueryServiceClient;
use logwell::proto::v1::log_stream_service_client::LogStreamServiceClient;
use logwell::server::ServerSettings;
use logwell::web::BrowserOrigins;
use prost::Message;
use reqwest::StatusCode;
use tonic_web::GrpcWebClientLayer;
use uuid::Uuid;

use crate::helpers::{Backend, TestDatabase, TestServer, job_entry, test_settings, with_authorization};
use crate::http_client::{http_client, http_client_builder};

const PAGE: &str = "https://ci.example.com";

/// A gRPC-Web client: tonic-web's layer over an HTTP/1.1 client.
type GrpcWebChannel = tonic_web::GrpcWebClientService<Client<HttpConnector, tonic_web::GrpcWebCall<tonic::body::Body>>>;

/// A tonic-web client channel to `server`, and its address.
fn grpc_web(server: &TestServer) -> (GrpcWebChannel, http::Uri) {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let service = tower::ServiceBuilder::new().layer(GrpcWebClientLayer::new()).service(client);
    (service, format!("http://{}", server.address).parse().expect("uri"))
}

async fn server_with(browser_origins: BrowserOrigins, authentication: Authentication) -> TestServer {
    let access = logwell::api::AccessPolicy { authentication, ..logwell::api::AccessPolicy::open() };
    let settings = ServerSettings { browser_origins, access, ..test_settings() };
    TestServer::start_with(TestDatabase::create(Backend::Sqlite).await, settings).await
}

#[tokio::test]
async fn unary_and_streaming_calls_work_over_grpc_web() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (channel, uri) = grpc_web(&server);
    let run = Uuid::now_v7();
    let mut writer = JobLogServiceClient::with_origin(channel.clone(), uri.clone());
    for message in ["first", "second"] {
        writer.write_job_log(pb::WriteJobLogRequest { log: Some(job_entry(run, message)) }).await.expect("write");
    }
    let listing = pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() };
    let logs = LogQueryServiceClient::with_origin(channel.clone(), uri.clone())
        .list_logs(listing)
        .await
        .expect("list over gRPC-Web")
        .into_inner()
        .logs;
    assert_eq!(logs.iter().map(|log| log.message.as_str()).collect::<Vec<_>>(), ["first", "second"]);

    let follow = pb::StreamLogsRequest { job_run_id: run.to_string(), ..Default::default() };
    let mut stream = LogStreamServiceClient::with_origin(channel, uri).stream_logs(follow).await.expect("follow");
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.get_mut().message())
            .await
            .expect("a message in time")
            .expect("the stream goes on")
            .expect("a message");
        if let Some(pb::stream_logs_response::Event::Log(log)) = message.event {
            seqs.push(log.seq);
            if seqs.len() == 2 {
                // Live, after the history: written over plain gRPC.
                server
                    .job()
                    .write_job_log(pb::WriteJobLogRequest { log: Some(job_entry(run, "live")) })
                    .await
                    .expect("write");
            }
        }
    }
    assert_eq!(seqs, [1, 2, 3], "history, then live, each once");
}

#[tokio::test]
async fn grpc_web_calls_need_the_same_tokens() {
    let mut tokens = TokenSet::default();
    tokens.add("test", &format!("reader read {}", token_hash("lw_reader"))).expect("tokens");
    let server = server_with(BrowserOrigins::default(), Authentication::Tokens(tokens)).await;
    let (channel, uri) = grpc_web(&server);
    let mut query = LogQueryServiceClient::with_origin(channel, uri);
    let refused = query.list_logs(pb::ListLogsRequest::default()).await.expect_err("no token");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let request = with_authorization(pb::ListLogsRequest::default(), "Bearer lw_reader");
    query.list_logs(request).await.expect("the read token reads");
    let request =
        with_authorization(pb::WriteJobLogRequest { log: Some(job_entry(Uuid::now_v7(), "x")) }, "Bearer lw_reader");
    let (channel, uri) = grpc_web(&server);
    let denied =
        JobLogServiceClient::with_origin(channel, uri).write_job_log(request).await.expect_err("no write scope");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}

/// A gRPC-Web request as a page's fetch sends it: one length-prefixed frame.
fn grpc_web_body(message: &impl Message) -> Vec<u8> {
    let encoded = message.encode_to_vec();
    let mut body = vec![0];
    body.extend(u32::try_from(encoded.len()).expect("small").to_be_bytes());
    body.extend(encoded);
    body
}

async fn post_from(server: &TestServer, origin: &str, path: &str, body: Vec<u8>) -> reqwest::Response {
    http_client(None)
        .post(format!("http://{}{path}", server.address))
        .header("origin", origin)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(body)
        .send()
        .await
        .expect("an answer")
}

async fn preflight(server: &TestServer, origin: &str) -> reqwest::Response {
    http_client(None)
        .request(reqwest::Method::OPTIONS, format!("http://{}/logwell.v1.LogQueryService/ListLogs", server.address))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type,x-grpc-web")
        .send()
        .await
        .expect("an answer")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn cors_serves_the_configured_pages_and_logwells_own_and_refuses_the_rest() {
    let origins = BrowserOrigins::new(&[PAGE.to_string()], false).expect("origins");
    let server = server_with(origins, Authentication::Off).await;
    let own_page = format!("http://{}", server.address);

    for page in [PAGE, own_page.as_str()] {
        let answer = preflight(&server, page).await;
        assert_eq!(answer.status(), StatusCode::OK, "{page}");
        assert_eq!(header(&answer, "access-control-allow-origin"), page);
        assert!(header(&answer, "access-control-allow-headers").contains("authorization"), "{page}");
    }
    let write =
        pb::WriteSystemLogRequest { log: Some(pb::LogEntry { message: "from a page".into(), ..Default::default() }) };
    let path = "/logwell.v1.SystemLogService/WriteSystemLog";
    let answer = post_from(&server, PAGE, path, grpc_web_body(&write)).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(header(&answer, "access-control-allow-origin"), PAGE);
    assert!(header(&answer, "access-control-expose-headers").contains("grpc-status"));
    let body = answer.bytes().await.expect("body");
    assert_eq!(body.first(), Some(&0), "a data frame first");

    // Any other page: 403, nothing served, nothing done.
    for stranger in ["https://evil.example.com", "http://127.0.0.1:1", "null"] {
        let answer = preflight(&server, stranger).await;
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{stranger}");
        assert_eq!(header(&answer, "access-control-allow-origin"), "", "{stranger}");
        let write =
            pb::WriteSystemLogRequest { log: Some(pb::LogEntry { message: stranger.into(), ..Default::default() }) };
        let answer = post_from(&server, stranger, path, grpc_web_body(&write)).await;
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{stranger}");
        assert!(answer.bytes().await.expect("body").is_empty(), "{stranger}: nothing served");
    }
    let stored = server.query().list_logs(pb::ListLogsRequest::default()).await.expect("list").into_inner().logs;
    assert_eq!(stored.iter().map(|log| log.message.as_str()).collect::<Vec<_>>(), ["from a page"]);
}

#[tokio::test]
async fn a_page_naming_logwell_by_a_host_name_needs_tokens_to_be_its_own() {
    // Without authentication, a DNS name could be an attacker's, rebound to
    // logwell's address: the page is refused.
    let server = server_with(BrowserOrigins::new(&[], false).expect("origins"), Authentication::Off).await;
    let port = server.address.port();
    let answer = http_client(None)
        .post(format!("http://{}/logwell.v1.LogQueryService/ListLogs", server.address))
        .header("host", format!("logwell.internal:{port}"))
        .header("origin", format!("http://logwell.internal:{port}"))
        .header("content-type", "application/grpc-web+proto")
        .body(grpc_web_body(&pb::ListLogsRequest::default()))
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_viewer_is_served_without_a_token_and_revalidated_by_its_tag() {
    let mut tokens = TokenSet::default();
    tokens.add("test", &format!("reader read {}", token_hash("lw_reader"))).expect("tokens");
    let server = server_with(BrowserOrigins::default(), Authentication::Tokens(tokens)).await;
    let client = http_client_builder(None).redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let get = |path: &str| client.get(format!("http://{}{path}", server.address)).send();

    let root = get("/").await.expect("an answer");
    assert!(root.status().is_redirection(), "{:?}", root.status());
    assert_eq!(header(&root, "location"), "/ui/");
    let page = get("/ui/").await.expect("an answer");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert!(header(&page, "content-security-policy").contains("script-src 'self'"));
    let tag = header(&page, "etag").to_string();
    assert!(page.text().await.expect("html").contains(r#"<script type="module" src="viewer.js"></script>"#));
    for (file, kind) in [("viewer.js", "text/javascript"), ("viewer.css", "text/css")] {
        let asset = get(&format!("/ui/{file}")).await.expect("an answer");
        assert_eq!(asset.status(), StatusCode::OK, "{file}");
        assert!(header(&asset, "content-type").starts_with(kind), "{file}");
        assert!(asset.bytes().await.expect("body").len() > 1000, "{file}");
    }
    let again = client.get(format!("http://{}/ui/", server.address)).header("if-none-match", &tag).send().await;
    assert_eq!(again.expect("an answer").status(), StatusCode::NOT_MODIFIED);
    assert_eq!(get("/ui/secrets.txt").await.expect("an answer").status(), StatusCode::NOT_FOUND);
}
