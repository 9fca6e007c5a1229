//! Every setting in one place: a flag, its `LOGWELL_*` environment variable
//! and its default. Read once at start and passed down.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::server::ServerSettings;
use crate::store::ConnectOptions;

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve gRPC until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Apply pending migrations and exit.
    Migrate(DatabaseArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on for gRPC (plaintext HTTP/2).
    #[arg(long, env = "LOGWELL_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// How often the database is checked for the health service.
    #[arg(long, env = "LOGWELL_HEALTH_CHECK_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub health_check_interval: Duration,
    /// How long in-flight requests may run after SIGINT/SIGTERM before the server closes anyway.
    #[arg(long, env = "LOGWELL_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Address for Prometheus metrics over HTTP (GET /metrics); off unless set.
    #[arg(long, env = "LOGWELL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// How long a StreamLogs stream may stay silent before it gets a heartbeat.
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
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database: sqlite:PATH (created with its folder) or postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    #[arg(long, env = "LOGWELL_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Connections per database pool, at most.
    #[arg(long, env = "LOGWELL_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// How long a request waits for a free database connection before failing with UNAVAILABLE.
    #[arg(long, env = "LOGWELL_DATABASE_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub database_acquire_timeout: Duration,
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
        }
    }
}

impl ServeArgs {
    pub fn server_settings(&self) -> ServerSettings {
        ServerSettings {
            health_check_interval: self.health_check_interval,
            shutdown_grace: self.shutdown_grace,
            stream_heartbeat_interval: self.stream_heartbeat_interval,
            http2_keepalive_interval: self.http2_keepalive_interval,
            http2_keepalive_timeout: self.http2_keepalive_timeout,
            max_concurrent_streams: self.max_concurrent_streams,
            concurrent_stream_reads: usize::try_from(self.database.database_max_connections).unwrap_or(1),
            write_queue_logs: self.write_queue_logs,
        }
    }
}

/// The database URL without its password, for logs.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let user_info = &url[scheme_end + 3..at];
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
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

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redacted("postgres://app:s3cret@db:5432/logs"), "postgres://app:***@db:5432/logs");
        assert_eq!(redacted("sqlite:data/logwell.db"), "sqlite:data/logwell.db");
    }
}
