//! Starts the real server on an ephemeral port against a fresh database of
//! the chosen backend, and hands out real gRPC clients.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Once};
use std::time::Duration;

use logwell::live::Hub;
use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::job_run_service_client::JobRunServiceClient;
use logwell::proto::v1::log_ingest_service_client::LogIngestServiceClient;
use logwell::proto::v1::log_query_service_client::LogQueryServiceClient;
use logwell::proto::v1::log_stream_service_client::LogStreamServiceClient;
use logwell::proto::v1::system_log_service_client::SystemLogServiceClient;
use logwell::proto::v1::task_log_service_client::TaskLogServiceClient;
use logwell::proto::v1::token_service_client::TokenServiceClient;
use logwell::proto::v1::{self as pb};
use logwell::server::{Listeners, ServerSettings};
use logwell::store::{ConnectOptions, LogStore};
use sqlx::{Connection, Executor};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

use crate::postgres_cluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend for each named `async fn(Backend)` of the
/// calling module: `<module>::sqlite::<name>` and `<module>::postgres::<name>`.
#[macro_export]
macro_rules! conformance {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::helpers::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::helpers::Backend::Postgres).await;
                }
            )+
        }
    };
}

/// A database of its own for one test, removed when the test ends.
pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    /// The SQLite data file, or the PostgreSQL database name.
    location: Location,
}

enum Location {
    SqliteFile {
        _folder: tempfile::TempDir,
        file: PathBuf,
    },
    PostgresDatabase {
        admin_url: String,
        name: String,
    },
    /// A private cluster's own database: the cluster goes with its test.
    PrivateCluster,
    /// Another handle's database: that handle removes it.
    Shared,
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let folder = tempfile::tempdir().expect("temporary folder");
                // A folder that does not exist yet: the store must create it.
                let file = folder.path().join("nested").join("logwell.db");
                let url = format!("sqlite:{}", file.display());
                TestDatabase { backend, url, location: Location::SqliteFile { _folder: folder, file } }
            }
            Backend::Postgres => {
                let admin_url = postgres_cluster::admin_url();
                let name = format!("logwell_test_{}", Uuid::new_v4().simple());
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("connect as admin");
                admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create test database");
                let url = postgres_cluster::with_database(&admin_url, &name);
                TestDatabase { backend, url, location: Location::PostgresDatabase { admin_url, name } }
            }
        }
    }

    /// The `postgres` database of a test's private cluster.
    pub fn on_private_cluster(cluster: &postgres_cluster::PrivateCluster) -> TestDatabase {
        TestDatabase {
            backend: Backend::Postgres,
            url: cluster.admin_url().to_string(),
            location: Location::PrivateCluster,
        }
    }

    /// Another handle on this database, for a second server (a replica);
    /// this one still removes it.
    pub fn shared(&self) -> TestDatabase {
        TestDatabase { backend: self.backend, url: self.url.clone(), location: Location::Shared }
    }

    /// Makes the database disappear under a running server: the SQLite data
    /// file is deleted, the PostgreSQL database dropped (its sessions killed).
    pub async fn destroy(&self) {
        match &self.location {
            Location::SqliteFile { file, .. } => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
                }
            }
            Location::PostgresDatabase { admin_url, name } => drop_postgres_database(admin_url, name).await,
            Location::PrivateCluster => panic!("stop a private cluster's server instead"),
            Location::Shared => panic!("destroy the database through the handle that made it"),
        }
    }

    /// Runs one statement directly against the database, bypassing logwell.
    pub async fn execute_raw(&self, sql: &str) -> Result<(), String> {
        let result = match self.backend {
            Backend::Sqlite => {
                let mut connection = sqlx::SqliteConnection::connect(&self.url).await.map_err(|e| e.to_string())?;
                connection.execute(sql).await.map(drop)
            }
            Backend::Postgres => {
                let mut connection = sqlx::PgConnection::connect(&self.url).await.map_err(|e| e.to_string())?;
                connection.execute(sql).await.map(drop)
            }
        };
        result.map_err(|error| error.to_string())
    }
}

async fn drop_postgres_database(admin_url: &str, name: &str) {
    let mut admin = sqlx::PgConnection::connect(admin_url).await.expect("connect as admin");
    admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await.expect("drop database");
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Location::PostgresDatabase { admin_url, name } = &self.location {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop cannot await; a short-lived runtime on its own thread can.
            let dropped = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(drop_postgres_database(&admin_url, &name));
            })
            .join();
            if dropped.is_err() && !std::thread::panicking() {
                panic!("could not drop the test database");
            }
        }
    }
}

/// Quick health checks and heartbeats, so that tests need not wait long.
pub fn test_settings() -> ServerSettings {
    ServerSettings {
        health_check_interval: Duration::from_millis(50),
        health_check_timeout: Duration::from_millis(40),
        shutdown_grace: Duration::from_secs(5),
        stream_heartbeat_interval: Duration::from_millis(200),
        http2_keepalive_interval: Duration::from_secs(30),
        http2_keepalive_timeout: Duration::from_secs(20),
        max_concurrent_streams: 4096,
        concurrent_stream_reads: 5,
        write_queue_logs: 100_000,
        access: logwell::api::AccessPolicy::open(),
        browser_origins: logwell::web::BrowserOrigins::default(),
        revocation_refresh_interval: Duration::from_millis(100),
        limits: logwell::model::Limits::default(),
        max_request_bytes: 16 * 1024 * 1024,
        max_followers_per_job_run: 10_000,
        max_cross_run_followers: 100,
        rate_limit: None,
        tls: None,
        tls_reload_interval: Duration::from_millis(100),
        tokens_file: None,
        tokens_reload_interval: Duration::from_millis(100),
        retention: logwell::retention::RetentionSettings {
            policy: logwell::model::RetentionPolicy::default(),
            interval: Duration::from_secs(3600),
            batch_logs: 500,
        },
    }
}

pub fn connect_options() -> ConnectOptions {
    ConnectOptions {
        max_connections: 5,
        acquire_timeout: Duration::from_secs(5),
        metadata_index_keys: Vec::new(),
        read_timeout: Duration::from_secs(10),
        text_index: false,
        expiry_index: false,
    }
}

/// A running logwell server with its own database.
pub struct TestServer {
    pub channel: Channel,
    /// The server's own store, for tests that check storage directly.
    pub store: Arc<dyn LogStore>,
    pub database: TestDatabase,
    /// Where the server's Prometheus metrics are.
    pub metrics_address: SocketAddr,
    /// Where it serves gRPC.
    pub address: SocketAddr,
    /// Where it serves OTLP over HTTP.
    pub otlp_http_address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    _watchdog: Watchdog,
}

/// How long a test may run with a server before the test binary gives up.
const TEST_LIMIT: Duration = Duration::from_secs(600);

/// Ends the test binary, naming the test, if a test holds its server past
/// `TEST_LIMIT`: a test that waits forever fails the run in minutes,
/// rather than holding CI until its own limit with nothing said. Dropping
/// it (its sender) lets its thread end.
struct Watchdog {
    _done: std::sync::mpsc::Sender<()>,
}

impl Watchdog {
    fn start() -> Watchdog {
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if finished.recv_timeout(TEST_LIMIT) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                // Straight to stderr: the test harness captures eprintln!.
                let said = format!("\n{test} ran past {TEST_LIMIT:?}: ending the test binary\n");
                let _ = std::io::Write::write_all(&mut std::io::stderr(), said.as_bytes());
                std::process::abort();
            }
        });
        Watchdog { _done: done }
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        let database = TestDatabase::create(backend).await;
        TestServer::start_with(database, test_settings()).await
    }

    /// A server with its own settings on a database of the caller's.
    pub async fn start_with(database: TestDatabase, settings: ServerSettings) -> TestServer {
        init_test_logging();
        let hub = Hub::new();
        let store = logwell::store::connect(&database.url, &connect_options(), hub.clone()).await.expect("open store");
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = grpc.local_addr().expect("address");
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let metrics_address = metrics.local_addr().expect("address");
        let otlp_http = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let otlp_http_address = otlp_http.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = Listeners { grpc, metrics: Some(metrics), health: None, otlp_http: Some(otlp_http) };
        tokio::spawn(logwell::server::serve(listeners, store.clone(), hub, settings, async {
            let _ = stopped.await;
        }));
        // Lazily: a TLS server is not for a plaintext channel, but its tests
        // make their own.
        let channel = Channel::from_shared(format!("http://{address}")).expect("uri").connect_lazy();
        TestServer {
            channel,
            store,
            database,
            metrics_address,
            address,
            otlp_http_address,
            stop: Some(stop),
            _watchdog: Watchdog::start(),
        }
    }

    /// The value of one metric, read over HTTP from the metrics endpoint.
    pub async fn metric(&self, name: &str) -> f64 {
        crate::scrape::metric(self.metrics_address, name).await
    }

    pub fn system(&self) -> SystemLogServiceClient<Channel> {
        SystemLogServiceClient::new(self.channel.clone())
    }

    pub fn job(&self) -> JobLogServiceClient<Channel> {
        JobLogServiceClient::new(self.channel.clone())
    }

    pub fn task(&self) -> TaskLogServiceClient<Channel> {
        TaskLogServiceClient::new(self.channel.clone())
    }

    pub fn query(&self) -> LogQueryServiceClient<Channel> {
        LogQueryServiceClient::new(self.channel.clone())
    }

    pub fn stream(&self) -> LogStreamServiceClient<Channel> {
        LogStreamServiceClient::new(self.channel.clone())
    }

    pub fn job_runs(&self) -> JobRunServiceClient<Channel> {
        JobRunServiceClient::new(self.channel.clone())
    }

    pub fn ingest(&self) -> LogIngestServiceClient<Channel> {
        LogIngestServiceClient::new(self.channel.clone())
    }

    pub fn tokens(&self) -> TokenServiceClient<Channel> {
        TokenServiceClient::new(self.channel.clone())
    }

    pub fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel.clone())
    }

    /// Every log that `request` lists, following page tokens to the end.
    pub async fn list_all(&self, mut request: pb::ListLogsRequest) -> Vec<pb::Log> {
        let mut logs = Vec::new();
        loop {
            let page = self.query().list_logs(request.clone()).await.expect("list logs").into_inner();
            logs.extend(page.logs);
            if page.next_page_token.is_empty() {
                return logs;
            }
            request.page_token = page.next_page_token;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `TEST_LOG=1 cargo test` shows the server's own logs.
fn init_test_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
        }
    });
}

/// A log entry with just a message; the tests set what they need on it.
pub fn entry(message: &str) -> pb::LogEntry {
    pb::LogEntry { message: message.to_string(), ..pb::LogEntry::default() }
}

pub fn job_entry(job_run_id: Uuid, message: &str) -> pb::LogEntry {
    pb::LogEntry { job_run_id: job_run_id.to_string(), ..entry(message) }
}

pub fn task_entry(job_run_id: Uuid, task_run_id: Uuid, message: &str) -> pb::LogEntry {
    pb::LogEntry { task_run_id: task_run_id.to_string(), ..job_entry(job_run_id, message) }
}

/// The fields named by a status's BadRequest details.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad_request| bad_request.field_violations.into_iter().map(|violation| violation.field).collect())
        .unwrap_or_default()
}

/// Asserts that `result` failed with INVALID_ARGUMENT naming exactly `fields`.
#[track_caller]
pub fn assert_invalid<T: std::fmt::Debug>(result: Result<T, tonic::Status>, fields: &[&str]) {
    let status = result.expect_err("request should have been refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_fields(&status), fields, "{}", status.message());
}

/// Retries `attempt` every 50 ms until it gives a value; fails the test if
/// that takes longer than `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads `stream` past its heartbeats until it ends with an error, within
/// `within`; a stream that ends with OK fails the test.
pub async fn error_ending<T>(stream: &mut tonic::Streaming<T>, within: Duration) -> tonic::Status {
    let ending = async {
        loop {
            match stream.message().await {
                Ok(Some(_heartbeat)) => continue,
                Ok(None) => panic!("the stream ended with OK"),
                Err(status) => return status,
            }
        }
    };
    tokio::time::timeout(within, ending).await.expect("the stream ends in time")
}

/// `message` with `authorization: <header>` metadata.
pub fn with_authorization<T>(message: T, header: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", header.parse().expect("an ASCII header"));
    request
}

/// The `logwell` binary, with a clean environment.
pub fn logwell() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_logwell"));
    command.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).kill_on_drop(true);
    command
}

/// Sends `signal` (`TERM`, `HUP`, …) to a `logwell` process.
pub async fn send_signal(child: &Child, signal: &str) {
    let pid = child.id().expect("the process is running").to_string();
    let sent = Command::new("kill").args([format!("-{signal}"), pid]).status().await.expect("kill");
    assert!(sent.success(), "kill -{signal} failed");
}

/// A port free at the time of asking, for a server that restarts on it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|free| free.local_addr()).expect("a free port").port()
}

/// `logwell serve` on `port` over the SQLite file at `url`, once it answers.
pub async fn serve_on(url: &str, port: u16) -> Child {
    let child = logwell()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", url])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn logwell serve");
    for _ in 0..300 {
        if JobLogServiceClient::connect(format!("http://127.0.0.1:{port}")).await.is_ok() {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("logwell serve did not answer on port {port}");
}

/// Starts `logwell serve` on an ephemeral port; returns it and its address,
/// read from its JSON start-up log line.
pub async fn start_serving(
    database_url: &str,
) -> (Child, String, tokio::io::Lines<BufReader<tokio::process::ChildStderr>>) {
    start_serving_with(database_url, &[], &[]).await
}

/// `start_serving` with more flags and environment variables.
pub async fn start_serving_with(
    database_url: &str,
    flags: &[&str],
    environment: &[(&str, &str)],
) -> (Child, String, tokio::io::Lines<BufReader<tokio::process::ChildStderr>>) {
    let mut child = logwell()
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", database_url, "--log-format", "json"])
        .args(flags)
        .envs(environment.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logwell serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            let record: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
            if record["fields"]["message"] == "logwell serving" {
                return record["fields"]["address"].as_str().expect("address").to_string();
            }
        }
        panic!("logwell exited before serving");
    })
    .await
    .expect("logwell started in time");
    (child, format!("http://{address}"), lines)
}
