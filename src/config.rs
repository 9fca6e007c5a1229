//! Every setting in one place: a flag, its `LOGWELL_*` environment variable
//! and its default. Read once at start and passed down.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::AccessPolicy;
use std::sync::Arc;

use crate::auth::{Authentication, JobRunTokens, Scopes, ShortKey, TokenError, TokenSet, TokensFile};
use chrono::TimeDelta;

use crate::model::{Limits, MAX_METADATA_KEY_BYTES, MIN_RETENTION, RetentionPolicy};
use crate::rate_limit::RateLimiter;
use crate::retention::RetentionSettings;
use crate::server::ServerSettings;
use crate::store::ConnectOptions;
use crate::tls::{ReloadableTls, TlsError, TlsFiles};
use crate::web::{BrowserOrigins, NotAnOrigin};

/// Where logwell stores when no database is named: a file in ./data,
/// created with its folder.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:data/logwell.db";

/// logwell: gRPC log collection for job systems.
#[derive(Debug, Parser)]
#[command(name = "logwell", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub logging: LoggingArgs,
}

// Parsed once at start: the size of the serve variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve gRPC until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Apply pending migrations and exit.
    Migrate(DatabaseArgs),
    /// Delete the logs past their retention now and exit; with --dry-run, only say what would go.
    Retention(RetentionCommand),
    /// Make bearer tokens for the tokens file.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the logs that match a filter, from a running server.
    Logs(crate::cli::logs::LogsArgs),
    /// Measure a server (by default a throwaway local one): writes, followers and queries, with the benchmarks' figures.
    Bench(crate::cli::bench::BenchArgs),
    /// Export every log matching a filter into a .txt, .ndjson, .json or .csv file.
    Export(crate::cli::export::ExportArgs),
    /// Send each line of standard input as a log of a job run, a task run or the system logs.
    Push(crate::cli::push::PushArgs),
    /// Run a command, storing each line it prints as a log of a job run, and complete the run with its exit status.
    Run(crate::cli::run::RunArgs),
    /// Count the logs matching a filter, by level, type, stream, source, run or metadata, over time.
    Stats(crate::cli::stats::StatsArgs),
    /// Follow a job run's logs (or the system logs) live, exactly, across reconnections.
    Tail(crate::cli::tail::TailArgs),
    /// List, show, complete and delete job runs.
    Runs(crate::cli::runs::RunsArgs),
    /// Print a completion script for a shell, e.g.
    /// `logwell completions bash > /etc/bash_completion.d/logwell`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Generate a random token; print it and its tokens-file line.
    New {
        /// The token's name in the tokens file and in logwell's own logs.
        #[arg(long)]
        name: String,
        /// Comma-separated scopes: write, read, admin.
        #[arg(long, value_parser = Scopes::parse)]
        scopes: Scopes,
    },
    /// Read a token on standard input; print its SHA-256, as the tokens file holds it.
    Hash,
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Unreadable { path: String, source: std::io::Error },
    #[error(transparent)]
    SigningKey(#[from] ShortKey),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Origin(#[from] NotAnOrigin),
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error("{flag} must be at least 1")]
    Zero { flag: &'static str },
    #[error("--rate-limit-burst-logs ({burst}) must be at least --max-batch-logs ({batch})")]
    BurstUnderBatch { burst: u32, batch: u32 },
    #[error("--max-batch-logs ({batch}) must fit in --write-queue-logs ({queue})")]
    BatchOverQueue { batch: usize, queue: usize },
    #[error("--health-check-timeout ({timeout:?}) must be above zero and under --health-check-interval ({interval:?})")]
    HealthCheckTimeout { timeout: Duration, interval: Duration },
    #[error("{flag} {} is shorter than the shortest retention, 1h", humantime::format_duration(*.value))]
    RetentionTooShort { flag: &'static str, value: Duration },
    #[error("{flag} must be longer than zero")]
    ZeroDuration { flag: &'static str },
    #[error("tokens were configured, but none were found in them")]
    NoTokensFound,
    #[error("--insecure-no-auth contradicts the configured tokens; drop one")]
    InsecureWithTokens,
    #[error(
        "refusing to listen on {listen} without authentication: configure tokens (--tokens-file) or \
         client certificates (--tls-client-ca-file), listen on loopback, or pass --insecure-no-auth"
    )]
    OpenToNetwork { listen: SocketAddr },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on for gRPC (HTTP/2; TLS with --tls-cert-file, plaintext otherwise).
    #[arg(long, env = "LOGWELL_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// How often the database is checked for the health service (requests also report what they meet, at once).
    #[arg(long, env = "LOGWELL_HEALTH_CHECK_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub health_check_interval: Duration,
    /// How long one health check (a connection and a statement) may take before it counts as failed; under the interval.
    #[arg(long, env = "LOGWELL_HEALTH_CHECK_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub health_check_timeout: Duration,
    /// How long in-flight requests may run after SIGINT/SIGTERM before the server closes anyway.
    #[arg(long, env = "LOGWELL_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Address for Prometheus metrics over HTTP (GET /metrics); off unless set.
    #[arg(long, env = "LOGWELL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Address of a plaintext listener that serves only grpc.health.v1.Health, without tokens: for probes that cannot speak TLS (Kubernetes' grpc probes); off unless set.
    #[arg(long, env = "LOGWELL_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,
    /// Origins of web pages (scheme://host[:port], comma-separated) allowed to call logwell from a browser over gRPC-Web, beside its own viewer; none by default. Requests from any other page get 403.
    #[arg(long, env = "LOGWELL_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
    /// Address for OTLP over HTTP (POST /v1/logs, protobuf or JSON), for OpenTelemetry senders that cannot use gRPC; TLS and tokens as on the gRPC port; off unless set (OTLP's own port is 4318).
    #[arg(long, env = "LOGWELL_OTLP_HTTP_LISTEN")]
    pub otlp_http_listen: Option<SocketAddr>,
    /// Load and check the configuration (flags, environment, the files they name, the database URL's form), say what would be served, and exit: no database is opened and no port bound.
    #[arg(long)]
    pub check_config: bool,
    /// How long a StreamLogs or FollowLogs stream may stay silent before it gets a heartbeat.
    #[arg(long, env = "LOGWELL_STREAM_HEARTBEAT_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub stream_heartbeat_interval: Duration,
    /// How often the server pings each HTTP/2 connection (keeps idle streams alive through proxies).
    #[arg(long, env = "LOGWELL_HTTP2_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub http2_keepalive_interval: Duration,
    /// How long a keep-alive ping may go unanswered before the connection is closed.
    #[arg(long, env = "LOGWELL_HTTP2_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub http2_keepalive_timeout: Duration,
    /// Concurrent streams (RPCs, followers included) per HTTP/2 connection, at most.
    #[arg(long, env = "LOGWELL_MAX_CONCURRENT_STREAMS", default_value_t = 1024)]
    pub max_concurrent_streams: u32,
    /// Logs waiting to be committed, at most; writes beyond it get RESOURCE_EXHAUSTED.
    #[arg(long, env = "LOGWELL_WRITE_QUEUE_LOGS", default_value_t = 100_000)]
    pub write_queue_logs: usize,
    /// File of accepted bearer tokens, one per line: NAME SCOPES SHA256-HEX (`logwell token new` makes them).
    #[arg(long, env = "LOGWELL_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Accepted bearer tokens in the tokens file's format; entries separated by newlines or `;`.
    #[arg(long, env = "LOGWELL_TOKENS", hide_env_values = true)]
    pub tokens: Option<String>,
    /// Serve without authentication on a non-loopback address: anyone who reaches the port reads and writes every log.
    #[arg(long, env = "LOGWELL_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Require a token for the health service too.
    #[arg(long, env = "LOGWELL_AUTHENTICATE_HEALTH")]
    pub authenticate_health: bool,
    /// Require a token for reflection too.
    #[arg(long, env = "LOGWELL_AUTHENTICATE_REFLECTION")]
    pub authenticate_reflection: bool,
    /// File of the keys of job-run tokens, one per line, each at least 32 bytes, the same on every replica: the first signs, all verify (rotate by putting a new key first); reloaded when it changes.
    #[arg(long, env = "LOGWELL_TOKEN_SIGNING_KEY_FILE")]
    pub token_signing_key_file: Option<PathBuf>,
    /// Bytes in one request message, at most; larger requests get RESOURCE_EXHAUSTED.
    #[arg(long, env = "LOGWELL_MAX_REQUEST_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Logs in one batch write, at most.
    #[arg(long, env = "LOGWELL_MAX_BATCH_LOGS", default_value_t = Limits::default().batch_logs)]
    pub max_batch_logs: usize,
    /// Bytes of UTF-8 in one message, at most.
    #[arg(long, env = "LOGWELL_MAX_MESSAGE_BYTES", default_value_t = Limits::default().message_bytes)]
    pub max_message_bytes: usize,
    /// Cut longer messages to --max-message-bytes instead of refusing them; their metadata says so.
    #[arg(long, env = "LOGWELL_TRUNCATE_LONG_MESSAGES")]
    pub truncate_long_messages: bool,
    /// Bytes of UTF-8 in a log's source, at most.
    #[arg(long, env = "LOGWELL_MAX_SOURCE_BYTES", default_value_t = Limits::default().source_bytes)]
    pub max_source_bytes: usize,
    /// Bytes of a log's metadata as JSON, at most.
    #[arg(long, env = "LOGWELL_MAX_METADATA_BYTES", default_value_t = Limits::default().metadata_bytes)]
    pub max_metadata_bytes: usize,
    /// Levels of nesting in a log's metadata, at most (the metadata object is level 1).
    #[arg(long, env = "LOGWELL_MAX_METADATA_DEPTH", default_value_t = Limits::default().metadata_depth)]
    pub max_metadata_depth: usize,
    /// Followers of one job run (or of the system logs) on this server, at most.
    #[arg(long, env = "LOGWELL_MAX_FOLLOWERS_PER_JOB_RUN", default_value_t = 10_000)]
    pub max_followers_per_job_run: usize,
    /// Follows across runs (FollowLogs) on this server at once, at most: each reads storage at every commit.
    #[arg(long, env = "LOGWELL_MAX_CROSS_RUN_FOLLOWERS", default_value_t = 100)]
    pub max_cross_run_followers: usize,
    /// Logs per second each caller (token, job-run token) may write; 0 means no limit.
    #[arg(long, env = "LOGWELL_RATE_LIMIT_LOGS_PER_SECOND", default_value_t = 0)]
    pub rate_limit_logs_per_second: u32,
    /// Logs a caller may write at once after a pause; default: the rate or --max-batch-logs, whichever is more.
    #[arg(long, env = "LOGWELL_RATE_LIMIT_BURST_LOGS")]
    pub rate_limit_burst_logs: Option<u32>,
    /// Serve gRPC over TLS with this certificate chain (PEM, leaf first); needs --tls-key-file.
    #[arg(long, env = "LOGWELL_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The TLS private key (PEM).
    #[arg(long, env = "LOGWELL_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS.
    #[arg(long, env = "LOGWELL_TLS_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// How often the tokens file and the signing key file are checked for changes (they also reload on SIGHUP); a file that fails to load keeps what was loaded before.
    #[arg(long, env = "LOGWELL_TOKENS_RELOAD_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub tokens_reload_interval: Duration,
    /// How often the TLS files are checked for changes (they also reload on SIGHUP).
    #[arg(long, env = "LOGWELL_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub tls_reload_interval: Duration,
    /// How often each server reads revocations of job-run tokens made on other replicas.
    #[arg(long, env = "LOGWELL_REVOCATION_REFRESH_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub revocation_refresh_interval: Duration,
}

/// `logwell retention`.
#[derive(Debug, Args)]
pub struct RetentionCommand {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Print what would be deleted, per log type (logs, approximate bytes, oldest and newest), and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: as if it were this time (RFC 3339, e.g. 2026-12-01T00:00:00Z), to see what will go by then.
    #[arg(long, requires = "dry_run")]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
}

/// How long logs are kept. Measured on when logwell received them; unset keeps that type forever.
#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// Delete system logs received longer ago than this (e.g. 48h), at least 1h; unset keeps them.
    #[arg(long, env = "LOGWELL_RETENTION_SYSTEM", value_parser = humantime::parse_duration)]
    pub retention_system: Option<Duration>,
    /// Delete job logs received longer ago than this (e.g. 30days), at least 1h; unset keeps them.
    #[arg(long, env = "LOGWELL_RETENTION_JOB", value_parser = humantime::parse_duration)]
    pub retention_job: Option<Duration>,
    /// Delete task logs received longer ago than this (e.g. 30days), at least 1h; unset keeps them.
    #[arg(long, env = "LOGWELL_RETENTION_TASK", value_parser = humantime::parse_duration)]
    pub retention_task: Option<Duration>,
    /// How often retention runs while serving (on one replica at a time).
    #[arg(long, env = "LOGWELL_RETENTION_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub retention_interval: Duration,
    /// Logs deleted per transaction: small, so that writers commit between
    /// batches (200 kept SQLite writers' p99 at 10 ms during expiry, 500 at
    /// 18–20 ms: docs/benchmarks.md).
    #[arg(long, env = "LOGWELL_RETENTION_BATCH_LOGS", default_value_t = 200)]
    pub retention_batch_logs: usize,
}

impl RetentionArgs {
    /// Whether any type has a limit.
    pub fn is_set(&self) -> bool {
        self.retention_system.is_some() || self.retention_job.is_some() || self.retention_task.is_some()
    }

    pub fn settings(&self) -> Result<RetentionSettings, ConfigError> {
        let limit = |flag: &'static str, value: Option<Duration>| -> Result<Option<TimeDelta>, ConfigError> {
            let Some(value) = value else { return Ok(None) };
            match TimeDelta::from_std(value) {
                Ok(limit) if limit >= MIN_RETENTION => Ok(Some(limit)),
                _ => Err(ConfigError::RetentionTooShort { flag, value }),
            }
        };
        Ok(RetentionSettings {
            policy: RetentionPolicy {
                system: limit("--retention-system", self.retention_system)?,
                job: limit("--retention-job", self.retention_job)?,
                task: limit("--retention-task", self.retention_task)?,
            },
            interval: positive_duration("--retention-interval", self.retention_interval)?,
            batch_logs: positive("--retention-batch-logs", self.retention_batch_logs)?,
        })
    }
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database: sqlite:PATH (created with its folder) or postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, env = "LOGWELL_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Retention's limits decide whether its index exists, so every command that opens the database takes them.
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Connections per database pool, at most; SQLite's readers are all opened at start and kept.
    #[arg(long, env = "LOGWELL_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// How long a request waits for a free database connection before failing with UNAVAILABLE.
    #[arg(long, env = "LOGWELL_DATABASE_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub database_acquire_timeout: Duration,
    /// Top-level metadata keys whose equals and one_of filters an index serves, comma-separated (SQLite; on
    /// PostgreSQL one GIN index serves every key). Built at start when added, dropped when removed.
    #[arg(long, env = "LOGWELL_METADATA_INDEX_KEYS", value_delimiter = ',', value_parser = metadata_index_key)]
    pub metadata_index_keys: Vec<String>,
    /// Index messages for substring search (PostgreSQL: pg_trgm GIN; SQLite: FTS5 trigram), at a cost to every
    /// write (see the README's figures). Built at start when turned on, dropped when turned off.
    #[arg(long, env = "LOGWELL_TEXT_INDEX")]
    pub text_index: bool,
    /// How long a read may run before it is stopped with DEADLINE_EXCEEDED (a filter no index serves, over many logs).
    #[arg(long, env = "LOGWELL_QUERY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub query_timeout: Duration,
}

/// A metadata key an index can be built on.
fn metadata_index_key(key: &str) -> Result<String, String> {
    if key.is_empty() || key.len() > MAX_METADATA_KEY_BYTES {
        Err(format!("a metadata key has 1 to {MAX_METADATA_KEY_BYTES} bytes"))
    } else if key.contains(['"', '\0']) {
        Err("a metadata key to index must not contain '\"' or NUL".into())
    } else {
        Ok(key.to_string())
    }
}

#[derive(Debug, Args)]
pub struct LoggingArgs {
    /// Format of logwell's own logs (written to stderr).
    #[arg(long, global = true, env = "LOGWELL_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Which of logwell's own logs to write, as tracing filter directives (e.g. "info,sqlx=warn").
    #[arg(long, global = true, env = "LOGWELL_LOG", default_value = "info")]
    pub log_filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl DatabaseArgs {
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            max_connections: self.database_max_connections,
            acquire_timeout: self.database_acquire_timeout,
            metadata_index_keys: self.metadata_index_keys.clone(),
            text_index: self.text_index,
            expiry_index: self.retention.is_set(),
            read_timeout: self.query_timeout,
        }
    }
}

impl ServeArgs {
    pub fn server_settings(&self) -> Result<ServerSettings, ConfigError> {
        let (tokens, tokens_file) = self.tokens()?;
        let access = self.access_policy(tokens)?;
        let tls = self.tls()?;
        // A page naming logwell by a DNS name is logwell's own only if an
        // attacker's rebound name could not pass: tokens, or a certificate.
        let trust_host_names = matches!(access.authentication, Authentication::Tokens(_)) || tls.is_some();
        Ok(ServerSettings {
            health_check_interval: self.health_check_interval,
            health_check_timeout: self.health_check_timeout()?,
            shutdown_grace: self.shutdown_grace,
            stream_heartbeat_interval: self.stream_heartbeat_interval,
            http2_keepalive_interval: self.http2_keepalive_interval,
            http2_keepalive_timeout: self.http2_keepalive_timeout,
            max_concurrent_streams: self.max_concurrent_streams,
            concurrent_stream_reads: usize::try_from(self.database.database_max_connections).unwrap_or(1),
            write_queue_logs: self.write_queue_logs,
            browser_origins: BrowserOrigins::new(&self.cors_allowed_origins, trust_host_names)?,
            access,
            tokens_file,
            tokens_reload_interval: self.tokens_reload_interval,
            revocation_refresh_interval: self.revocation_refresh_interval,
            limits: self.limits()?,
            max_request_bytes: positive("--max-request-bytes", self.max_request_bytes)?,
            max_followers_per_job_run: positive("--max-followers-per-job-run", self.max_followers_per_job_run)?,
            max_cross_run_followers: positive("--max-cross-run-followers", self.max_cross_run_followers)?,
            rate_limit: self.rate_limit()?,
            tls,
            tls_reload_interval: self.tls_reload_interval,
            retention: self.database.retention.settings()?,
        })
    }

    fn health_check_timeout(&self) -> Result<Duration, ConfigError> {
        let (timeout, interval) = (self.health_check_timeout, self.health_check_interval);
        if timeout.is_zero() || timeout >= interval {
            return Err(ConfigError::HealthCheckTimeout { timeout, interval });
        }
        Ok(timeout)
    }

    fn rate_limit(&self) -> Result<Option<Arc<RateLimiter>>, ConfigError> {
        if self.rate_limit_logs_per_second == 0 {
            return Ok(None);
        }
        let batch = u32::try_from(self.max_batch_logs).unwrap_or(u32::MAX);
        let burst = self.rate_limit_burst_logs.unwrap_or(self.rate_limit_logs_per_second.max(batch));
        if burst < batch {
            // A full batch could never be written.
            return Err(ConfigError::BurstUnderBatch { burst, batch });
        }
        Ok(Some(Arc::new(RateLimiter::new(self.rate_limit_logs_per_second, burst))))
    }

    fn tls(&self) -> Result<Option<Arc<ReloadableTls>>, ConfigError> {
        let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) else { return Ok(None) };
        let files = TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: self.tls_client_ca_file.clone() };
        Ok(Some(Arc::new(ReloadableTls::new(files)?)))
    }

    fn limits(&self) -> Result<Limits, ConfigError> {
        if self.max_batch_logs > self.write_queue_logs {
            return Err(ConfigError::BatchOverQueue { batch: self.max_batch_logs, queue: self.write_queue_logs });
        }
        Ok(Limits {
            batch_logs: positive("--max-batch-logs", self.max_batch_logs)?,
            message_bytes: positive("--max-message-bytes", self.max_message_bytes)?,
            truncate_messages: self.truncate_long_messages,
            source_bytes: self.max_source_bytes,
            metadata_bytes: positive("--max-metadata-bytes", self.max_metadata_bytes)?,
            metadata_depth: positive("--max-metadata-depth", self.max_metadata_depth)?,
            retention: self.database.retention.settings()?.policy,
        })
    }

    fn job_run_tokens(&self) -> Result<Option<Arc<JobRunTokens>>, ConfigError> {
        let Some(path) = &self.token_signing_key_file else { return Ok(None) };
        let keys = std::fs::read(path)
            .map_err(|source| ConfigError::Unreadable { path: path.display().to_string(), source })?;
        Ok(Some(Arc::new(JobRunTokens::from_file(path.clone(), &keys)?)))
    }

    /// The accepted tokens: from the tokens file (reloaded when it changes,
    /// hence also returned) and the inline ones.
    fn tokens(&self) -> Result<(TokenSet, Option<Arc<TokensFile>>), ConfigError> {
        let Some(path) = &self.tokens_file else {
            let mut tokens = TokenSet::default();
            if let Some(text) = &self.tokens {
                tokens.add("LOGWELL_TOKENS", text)?;
            }
            return Ok((tokens, None));
        };
        std::fs::metadata(path)
            .map_err(|source| ConfigError::Unreadable { path: path.display().to_string(), source })?;
        let file = TokensFile::load(path.clone(), self.tokens.clone())?;
        Ok((file.set(), Some(Arc::new(file))))
    }

    /// The addresses that take logs and queries: the gRPC port, and the
    /// OTLP/HTTP one if set.
    fn written_to(&self) -> impl Iterator<Item = SocketAddr> {
        std::iter::once(self.listen).chain(self.otlp_http_listen)
    }

    /// Who may call: with tokens if any are configured. Without them the
    /// server is open, which it allows only on loopback unless told
    /// `--insecure-no-auth`.
    fn access_policy(&self, tokens: TokenSet) -> Result<AccessPolicy, ConfigError> {
        let configured = self.tokens_file.is_some() || self.tokens.is_some();
        let authentication = match (configured, self.insecure_no_auth) {
            (true, true) => return Err(ConfigError::InsecureWithTokens),
            (true, false) if tokens.is_empty() => return Err(ConfigError::NoTokensFound),
            (true, false) => Authentication::Tokens(tokens),
            (false, true) => Authentication::Off,
            // Every client proves itself with a certificate from the CA.
            (false, false) if self.tls_client_ca_file.is_some() => Authentication::Off,
            (false, false) => match self.written_to().find(|listen| !listen.ip().is_loopback()) {
                Some(listen) => return Err(ConfigError::OpenToNetwork { listen }),
                None => Authentication::Off,
            },
        };
        Ok(AccessPolicy {
            authentication,
            job_run_tokens: self.job_run_tokens()?,
            public_health: !self.authenticate_health,
            public_reflection: !self.authenticate_reflection,
        })
    }
}

fn positive(flag: &'static str, value: usize) -> Result<usize, ConfigError> {
    if value == 0 { Err(ConfigError::Zero { flag }) } else { Ok(value) }
}

fn positive_duration(flag: &'static str, value: Duration) -> Result<Duration, ConfigError> {
    if value.is_zero() { Err(ConfigError::ZeroDuration { flag }) } else { Ok(value) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_needs_no_flags() {
        let cli = Cli::try_parse_from(["logwell", "serve"]).unwrap();
        let Command::Serve(serve) = cli.command else { panic!("expected serve") };
        assert_eq!(serve.listen, "127.0.0.1:50051".parse().unwrap());
        assert_eq!(serve.database.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(cli.logging.log_format, LogFormat::Text);
    }

    fn access(args: &[&str]) -> Result<AccessPolicy, ConfigError> {
        let cli = Cli::try_parse_from([&["logwell", "serve"], args].concat()).unwrap();
        let Command::Serve(serve) = cli.command else { panic!("expected serve") };
        serve.access_policy(serve.tokens()?.0)
    }

    #[test]
    fn without_tokens_only_loopback_is_served() {
        assert!(matches!(access(&[]).unwrap().authentication, Authentication::Off));
        assert!(matches!(access(&["--listen", "[::1]:50051"]).unwrap().authentication, Authentication::Off));
        let open = access(&["--listen", "0.0.0.0:50051"]).unwrap_err();
        assert!(open.to_string().starts_with("refusing to listen on 0.0.0.0:50051 without authentication"));
        let open = access(&["--otlp-http-listen", "0.0.0.0:4318"]).unwrap_err();
        assert!(open.to_string().starts_with("refusing to listen on 0.0.0.0:4318 without authentication"));
        let insecure = access(&["--listen", "0.0.0.0:50051", "--insecure-no-auth"]).unwrap();
        assert!(matches!(insecure.authentication, Authentication::Off));
    }

    #[test]
    fn tokens_turn_authentication_on_anywhere() {
        let tokens = format!("ci write {}", crate::auth::token_hash("t"));
        let policy = access(&["--listen", "0.0.0.0:50051", "--tokens", &tokens]).unwrap();
        assert!(matches!(policy.authentication, Authentication::Tokens(_)));
        assert!(policy.public_health && policy.public_reflection);
        let policy = access(&["--tokens", &tokens, "--authenticate-health", "--authenticate-reflection"]).unwrap();
        assert!(!policy.public_health && !policy.public_reflection);
        assert!(matches!(access(&["--tokens", &tokens, "--insecure-no-auth"]), Err(ConfigError::InsecureWithTokens)));
        assert!(matches!(access(&["--tokens", "# nobody"]), Err(ConfigError::NoTokensFound)));
        assert!(matches!(access(&["--tokens-file", "/nonexistent/tokens"]), Err(ConfigError::Unreadable { .. })));
    }

    #[test]
    fn a_rate_limit_burst_holds_a_full_batch() {
        let serve = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["logwell", "serve"], args].concat()).unwrap();
            let Command::Serve(serve) = cli.command else { panic!("expected serve") };
            serve.rate_limit()
        };
        assert!(serve(&[]).unwrap().is_none(), "off by default");
        let limiter = serve(&["--rate-limit-logs-per-second", "50"]).unwrap().unwrap();
        assert_eq!((limiter.logs_per_second, limiter.burst_logs), (50, 1_000));
        let small = serve(&["--rate-limit-logs-per-second", "50", "--rate-limit-burst-logs", "999"]);
        assert!(matches!(small, Err(ConfigError::BurstUnderBatch { burst: 999, batch: 1_000 })));
    }
}
