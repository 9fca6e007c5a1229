//! TLS with certificates the tests make (rcgen): handshakes, mutual TLS, and
//! reloading certificates when their files change or on SIGHUP, without
//! dropping established connections.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use logwell::proto::v1 as pb;
use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::server::ServerSettings;
use logwell::tls::{ReloadableTls, TlsFiles};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use uuid::Uuid;

use crate::browser::Browser;
use crate::helpers::{
    Backend, TestDatabase, TestServer, eventually, job_entry, send_signal, start_serving_with, test_settings,
};
use crate::http_client::http_client;

/// A CA, and what it signed.
struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key, in PEM.
struct Issued {
    cert: String,
    key: String,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Authority { cert: params.self_signed(&key).expect("CA certificate"), key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    fn issue(&self, names: &[&str]) -> Issued {
        let key = KeyPair::generate().expect("key");
        let params =
            CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).expect("params");
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("certificate");
        Issued { cert: cert.pem(), key: key.serialize_pem() }
    }
}

/// The server's certificate files in a folder of their own.
struct Files {
    folder: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files { folder: tempfile::tempdir().expect("folder") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    /// Writes the server's certificate and key (replacing, as an operator's
    /// tooling does: write aside, then rename).
    fn install(&self, server: &Issued, client_ca: Option<&Authority>) {
        replace(&self.path("server.pem"), &server.cert);
        replace(&self.path("server.key"), &server.key);
        if let Some(authority) = client_ca {
            replace(&self.path("clients-ca.pem"), &authority.pem());
        }
    }

    fn tls_files(&self, mutual: bool) -> TlsFiles {
        TlsFiles {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: mutual.then(|| self.path("clients-ca.pem")),
        }
    }
}

fn replace(path: &Path, contents: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, contents).expect("write");
    std::fs::rename(&aside, path).expect("rename");
}

async fn tls_server(files: &Files, mutual: bool) -> TestServer {
    let tls = Arc::new(ReloadableTls::new(files.tls_files(mutual)).expect("TLS files load"));
    let settings = ServerSettings { tls: Some(tls), ..test_settings() };
    TestServer::start_with(TestDatabase::create(Backend::Sqlite).await, settings).await
}

/// A client that trusts `ca` and, for mutual TLS, shows `identity`.
async fn connect(address: &str, ca: &Authority, identity: Option<&Issued>) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.pem())).domain_name("localhost");
    if let Some(identity) = identity {
        tls = tls.identity(Identity::from_pem(&identity.cert, &identity.key));
    }
    Channel::from_shared(address.to_string()).expect("uri").tls_config(tls)?.connect().await
}

async fn write(channel: Channel) -> Result<(), tonic::Status> {
    let log = Some(job_entry(Uuid::now_v7(), "over TLS"));
    JobLogServiceClient::new(channel).write_job_log(pb::WriteJobLogRequest { log }).await.map(drop)
}

fn https(server: &TestServer) -> String {
    format!("https://{}", server.address)
}

#[tokio::test]
async fn tls_serves_clients_that_trust_its_ca_and_no_others() {
    let (ca, files) = (Authority::new("logwell test CA"), Files::new());
    files.install(&ca.issue(&["localhost", "127.0.0.1"]), None);
    let server = tls_server(&files, false).await;

    let channel = connect(&https(&server), &ca, None).await.expect("TLS handshake");
    write(channel).await.expect("a write over TLS");
    assert!(connect(&https(&server), &Authority::new("another CA"), None).await.is_err(), "an unknown CA");
    let plaintext = write(server.channel.clone()).await.expect_err("plaintext is not served");
    assert!(plaintext.message().contains("transport error"), "{plaintext:?}");
}

#[tokio::test]
async fn otlp_http_is_served_over_the_same_tls() {
    let (ca, files) = (Authority::new("logwell test CA"), Files::new());
    files.install(&ca.issue(&["localhost"]), None);
    let server = tls_server(&files, false).await;
    let post = |client: reqwest::Client, scheme: &str| {
        let body = prost::Message::encode_to_vec(&crate::otlp::export_of(Uuid::now_v7(), "OTLP/HTTP over TLS"));
        let url = format!("{scheme}://localhost:{}/v1/logs", server.otlp_http_address.port());
        async move { client.post(url).header("content-type", "application/x-protobuf").body(body).send().await }
    };
    let answer = post(http_client(Some(&ca.pem())), "https").await.expect("an HTTPS answer");
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    assert!(post(http_client(None), "https").await.is_err(), "a client that does not trust the CA");
    assert!(post(http_client(None), "http").await.is_err(), "plaintext is not served");
}

#[tokio::test]
async fn the_viewer_follows_a_run_over_tls_in_a_real_browser() {
    let (ca, files) = (Authority::new("logwell test CA"), Files::new());
    files.install(&ca.issue(&["localhost"]), None);
    let server = tls_server(&files, false).await;
    let channel = connect(&https(&server).replace("127.0.0.1", "localhost"), &ca, None).await.expect("TLS handshake");
    let run = Uuid::now_v7();
    let log = Some(job_entry(run, "over TLS, in a browser"));
    JobLogServiceClient::new(channel).write_job_log(pb::WriteJobLogRequest { log }).await.expect("write");
    // The test CA is not the browser's: it is told to accept the certificate.
    let browser = Browser::start_with(&["--ignore-certificate-errors"]).await;
    browser.goto(&format!("https://localhost:{}/ui/#/runs/{run}", server.address.port())).await;
    let rows = "return [...document.querySelectorAll('.viewport .row .message')].map((cell) => cell.textContent);";
    browser
        .until("the line, over HTTP/2 and TLS", rows, |rows| rows == &serde_json::json!(["over TLS, in a browser"]))
        .await;
    let protocol = browser.run("return performance.getEntriesByType('navigation')[0].nextHopProtocol;").await;
    assert_eq!(protocol, "h2", "the browser chose HTTP/2 by ALPN");
    browser.close().await;
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_from_the_clients_ca() {
    let (ca, clients_ca, files) = (Authority::new("server CA"), Authority::new("clients CA"), Files::new());
    files.install(&ca.issue(&["localhost"]), Some(&clients_ca));
    let server = tls_server(&files, true).await;

    let client = clients_ca.issue(&["runner-7"]);
    let channel = connect(&https(&server), &ca, Some(&client)).await.expect("mutual TLS handshake");
    write(channel).await.expect("a write with a client certificate");

    let refused = |channel: Result<Channel, tonic::transport::Error>| async move {
        match channel {
            Err(_) => true,
            Ok(channel) => write(channel).await.is_err(),
        }
    };
    assert!(refused(connect(&https(&server), &ca, None).await).await, "no client certificate");
    let stranger = Authority::new("a stranger's CA").issue(&["runner-7"]);
    assert!(refused(connect(&https(&server), &ca, Some(&stranger)).await).await, "a certificate from another CA");
}

#[tokio::test]
async fn changed_files_reload_without_dropping_connections() {
    let (old_ca, new_ca, files) = (Authority::new("old CA"), Authority::new("new CA"), Files::new());
    files.install(&old_ca.issue(&["localhost"]), None);
    let server = tls_server(&files, false).await;
    let established = connect(&https(&server), &old_ca, None).await.expect("handshake with the old certificate");
    write(established.clone()).await.expect("write");

    files.install(&new_ca.issue(&["localhost"]), None);
    let reloaded = eventually("new handshakes using the new certificate", Duration::from_secs(10), || async {
        connect(&https(&server), &new_ca, None).await.ok()
    })
    .await;
    write(reloaded).await.expect("write over the new certificate");
    // The old connection was not dropped: a new one would meet the new
    // certificate, which this client does not trust.
    write(established).await.expect("the established connection still works");
    assert!(connect(&https(&server), &old_ca, None).await.is_err(), "new handshakes no longer use the old one");
}

#[tokio::test]
async fn sighup_reloads_the_certificates_of_a_running_server() {
    let (old_ca, new_ca, files) = (Authority::new("old CA"), Authority::new("new CA"), Files::new());
    files.install(&old_ca.issue(&["localhost"]), None);
    let database = format!("sqlite:{}", files.path("logwell.db").display());
    let (cert, key) = (files.path("server.pem"), files.path("server.key"));
    let flags = [
        "--tls-cert-file",
        cert.to_str().expect("path"),
        "--tls-key-file",
        key.to_str().expect("path"),
        // Only the signal reloads within this test.
        "--tls-reload-interval",
        "1h",
    ];
    let (child, address, _lines) = start_serving_with(&database, &flags, &[]).await;
    let address = address.replace("http://", "https://");
    write(connect(&address, &old_ca, None).await.expect("old certificate")).await.expect("write");

    files.install(&new_ca.issue(&["localhost"]), None);
    assert!(connect(&address, &new_ca, None).await.is_err(), "nothing reloads before the signal");
    send_signal(&child, "HUP").await;
    let reloaded = eventually("the signal reloading the certificates", Duration::from_secs(10), || async {
        connect(&address, &new_ca, None).await.ok()
    })
    .await;
    write(reloaded).await.expect("write over the new certificate");
    drop(child);
}

/// The command line over mutual TLS: `--ca-file`, `--cert-file`, `--key-file`.
#[tokio::test]
async fn the_command_line_speaks_mutual_tls() {
    let (ca, clients_ca, files) = (Authority::new("server CA"), Authority::new("clients CA"), Files::new());
    files.install(&ca.issue(&["localhost"]), Some(&clients_ca));
    let server = tls_server(&files, true).await;
    let client = clients_ca.issue(&["runner-7"]);
    std::fs::write(files.path("ca.pem"), ca.pem()).expect("write");
    std::fs::write(files.path("client.pem"), &client.cert).expect("write");
    std::fs::write(files.path("client.key"), &client.key).expect("write");
    let address = format!("https://localhost:{}", server.address.port());
    let path = |name: &str| files.path(name).display().to_string();
    let tls = ["--server", &address, "--ca-file", &path("ca.pem"), "--cert-file", &path("client.pem")];
    let run = Uuid::now_v7().to_string();

    let mut push = crate::helpers::logwell()
        .args(["push", "--run", &run])
        .args(tls)
        .args(["--key-file", &path("client.key")])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn logwell push");
    let mut stdin = push.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"over TLS from the command line\n").await.expect("write");
    drop(stdin);
    let pushed = push.wait_with_output().await.expect("push");
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));

    let listed = crate::helpers::logwell()
        .args(["logs", "--run", &run, "-o", "raw"])
        .args(tls)
        .args(["--key-file", &path("client.key")])
        .output()
        .await
        .expect("logwell logs");
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "over TLS from the command line\n");

    let without_ca = crate::helpers::logwell().args(["logs", "--server", &address]).output().await.expect("run");
    let stderr = String::from_utf8_lossy(&without_ca.stderr);
    assert_eq!(without_ca.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs --ca-file"), "{stderr}");
    let no_identity = crate::helpers::logwell()
        .args(["logs", "--server", &address, "--ca-file", &path("ca.pem")])
        .output()
        .await
        .expect("run");
    assert_ne!(no_identity.status.code(), Some(0), "mutual TLS refuses a client without a certificate");
    assert_eq!(String::from_utf8_lossy(&no_identity.stderr).lines().count(), 1);
}
