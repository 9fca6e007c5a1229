//! What the benchmarks share: real `logwell serve` processes (the release
//! build), their resource use, and PostgreSQL databases to run them on.

// Each benchmark uses a part of it.
#![allow(dead_code)]

use std::process::Stdio;

use sqlx::{Connection, Executor};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;
use uuid::Uuid;

#[path = "../tests/api/scrape.rs"]
mod scrape;

#[path = "../tests/api/postgres_cluster.rs"]
mod postgres_cluster;

#[path = "../tests/api/http_client.rs"]
pub mod http_client;

/// Which backends a benchmark runs on (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backends {
    Both,
    Sqlite,
    Postgres,
}

/// A `logwell serve` process.
pub struct Server {
    child: Child,
    address: String,
    /// Where it serves Prometheus metrics.
    metrics: String,
    /// Where it serves OTLP/HTTP: `http://127.0.0.1:PORT`.
    otlp_http: String,
}

impl Server {
    /// Starts `logwell serve` on an ephemeral port with `extra` flags.
    pub async fn start(database_url: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_logwell"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--log-filter", "warn,logwell=info"])
            .args(["--metrics-listen", "127.0.0.1:0", "--otlp-http-listen", "127.0.0.1:0"])
            .args(["--database-url", database_url])
            .args(extra)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn logwell serve");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let (address, metrics, otlp_http) = loop {
            let line = lines.next_line().await.expect("read stderr").expect("logwell exited before serving");
            let record: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if record["fields"]["message"] == "logwell serving" {
                let field = |name: &str| record["fields"][name].as_str().expect("address").to_string();
                // Logged as Options: `Some(127.0.0.1:PORT)`.
                let optional = |name: &str| field(name).trim_start_matches("Some(").trim_end_matches(')').to_string();
                break (field("address"), optional("metrics"), optional("otlp_http"));
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server { child, address: format!("http://{address}"), metrics, otlp_http: format!("http://{otlp_http}") }
    }

    /// The value of one of its metrics now.
    pub async fn metric(&self, name: &str) -> f64 {
        scrape::metric(&self.metrics, name).await
    }

    /// Where it serves gRPC: `http://127.0.0.1:PORT`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Where it takes OTLP/HTTP exports: `http://127.0.0.1:PORT/v1/logs`.
    pub fn otlp_http_logs(&self) -> String {
        format!("{}/v1/logs", self.otlp_http)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.address.clone()).expect("uri").connect().await.expect("connect")
    }

    fn proc_file(&self, name: &str) -> String {
        let pid = self.child.id().expect("running");
        std::fs::read_to_string(format!("/proc/{pid}/{name}")).expect("read /proc")
    }

    /// Resident memory now and at its peak, in bytes.
    pub fn memory(&self) -> (u64, u64) {
        let status = self.proc_file("status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .map_or(0, |kib| kib * 1024)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// CPU seconds (user and system) used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = self.proc_file("stat");
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
        let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }
}

/// A fresh PostgreSQL database: on LOGWELL_TEST_DATABASE_URL's server, or a
/// throwaway cluster started like the tests' one.
pub async fn postgres_database() -> String {
    let admin_url = postgres_cluster::admin_url();
    let name = format!("logwell_bench_{}", Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("connect as admin");
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create database");
    postgres_cluster::with_database(&admin_url, &name)
}

/// Past days whose partitions a PostgreSQL database keeping 30 days holds.
pub const KEPT_DAYS: i32 = 30;

/// Migrates the database at `url` with `logwell migrate` and makes the
/// partitions of the `KEPT_DAYS` days before today, so that writes and id
/// lookups meet as many partitions as in production.
pub async fn with_kept_days(url: String) -> String {
    let migrated = tokio::process::Command::new(env!("CARGO_BIN_EXE_logwell"))
        .args(["migrate", "--database-url", &url])
        .output()
        .await
        .expect("run logwell migrate");
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let mut connection = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::query(
        "SELECT logwell_create_partitions((now() AT TIME ZONE 'UTC')::date - day) FROM generate_series(1, $1) AS day",
    )
    .bind(KEPT_DAYS)
    .execute(&mut connection)
    .await
    .expect("make the kept days' partitions");
    url
}
