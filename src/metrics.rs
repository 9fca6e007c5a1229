//! Prometheus metrics over plain HTTP (`GET /metrics`), on their own
//! listener so that scraping needs no gRPC.

use std::fmt::Write;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::ingest::Ingest;
use crate::live::{Followers, Hub};
use crate::model::LogType;
use crate::retention::RetentionStats;
use crate::store::LogStore;

/// What the metrics are read from.
pub struct Sources {
    pub hub: Arc<Hub>,
    pub followers: Followers,
    pub ingest: Arc<Ingest>,
    pub retention: Arc<RetentionStats>,
    pub rpc: Arc<crate::api::RpcMetrics>,
    pub store: Arc<dyn LogStore>,
    /// The server's runtimes by name: its own, and the followers'.
    pub runtimes: [(&'static str, tokio::runtime::Handle); 2],
}

/// The text exposition of every metric.
pub async fn render(sources: &Sources) -> String {
    let mut text = String::new();
    let mut metric = |kind: &str, name: &str, help: &str, value: u64| {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    let count = |value: usize| u64::try_from(value).unwrap_or(u64::MAX);
    let hub = &sources.hub;
    metric("gauge", "logwell_stream_followers", "StreamLogs followers connected now.", count(hub.followers()));
    metric(
        "gauge",
        "logwell_followed_sequences",
        "Job runs (and the system log sequence) with at least one follower now.",
        count(hub.followed_sequences()),
    );
    metric(
        "gauge",
        "logwell_cross_run_followers",
        "FollowLogs followers (across runs) connected now.",
        count(sources.followers.following_across()),
    );
    metric(
        "counter",
        "logwell_follower_storage_reads_total",
        "Reads of the database by StreamLogs followers; their other reads come from shared tails in memory.",
        sources.followers.storage_reads(),
    );
    let ingest = &sources.ingest;
    let stats = ingest.stats();
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    metric("gauge", "logwell_write_queue_logs", "Logs queued or being committed now.", count(ingest.queued_logs()));
    metric("counter", "logwell_commits_total", "Write transactions committed.", load(&stats.commits));
    metric("counter", "logwell_committed_logs_total", "Logs committed.", load(&stats.committed_logs));
    metric(
        "counter",
        "logwell_overloaded_writes_total",
        "Writes refused with RESOURCE_EXHAUSTED because the queue was full.",
        load(&stats.overloaded_writes),
    );
    let retention = &sources.retention;
    metric(
        "counter",
        "logwell_retention_passes_total",
        "Retention passes this process ran to the end.",
        retention.passes(),
    );
    metric(
        "counter",
        "logwell_partitions_created_total",
        "Day partitions this process created ahead of time (PostgreSQL).",
        sources.store.partitions_created(),
    );
    per_type(
        &mut text,
        ("counter", "logwell_expired_logs_total", "Logs deleted by retention in this process, by type."),
        |log_type| Some(retention.expired(log_type).to_string()),
    );
    per_type(
        &mut text,
        (
            "counter",
            "logwell_emptied_partitions_total",
            "Partitions emptied whole by retention in this process, by type (PostgreSQL's days).",
        ),
        |log_type| Some(retention.emptied_partitions(log_type).to_string()),
    );
    per_type(
        &mut text,
        (
            "gauge",
            "logwell_oldest_log_timestamp_seconds",
            "When the oldest log of a type with a retention limit was received, as the last retention pass left it.",
        ),
        |log_type| retention.oldest(log_type).map(|oldest| (oldest.timestamp_micros() as f64 / 1e6).to_string()),
    );
    let _ = writeln!(
        text,
        "# HELP logwell_commit_duration_seconds Time spent in write transactions, begin to commit.\n\
         # TYPE logwell_commit_duration_seconds summary\n\
         logwell_commit_duration_seconds_sum {}\nlogwell_commit_duration_seconds_count {}",
        load(&stats.commit_micros) as f64 / 1e6,
        load(&stats.commits)
    );
    let runtimes = &sources.runtimes;
    labelled(
        &mut text,
        ("gauge", "logwell_runtime_alive_tasks", "Tasks alive on each of the server's runtimes."),
        "runtime",
        runtimes.iter().map(|(name, runtime)| (name, runtime.metrics().num_alive_tasks().to_string())),
    );
    labelled(
        &mut text,
        (
            "gauge",
            "logwell_runtime_global_queue_depth",
            "Tasks waiting in each runtime's shared queue: a queue that stays long means late answers (server) or \
             lagging followers (follows).",
        ),
        "runtime",
        runtimes.iter().map(|(name, runtime)| (name, runtime.metrics().global_queue_depth().to_string())),
    );
    text.push_str(&sources.rpc.render());
    match sources.store.database_bytes().await {
        Ok(bytes) => {
            let _ = writeln!(
                text,
                "# HELP logwell_database_size_bytes The database's size on disk.\n\
                 # TYPE logwell_database_size_bytes gauge\nlogwell_database_size_bytes {bytes}"
            );
        }
        Err(error) => tracing::debug!(%error, "cannot read the database's size for the metrics"),
    }
    text
}

/// A metric (its kind, name and help) with a value per log type, or none
/// where `value` gives none.
fn per_type(text: &mut String, metric: (&str, &str, &str), value: impl Fn(LogType) -> Option<String>) {
    let values = LogType::ALL.iter().filter_map(|log_type| Some((log_type, value(*log_type)?)));
    labelled(text, metric, "type", values);
}

/// A metric (its kind, name and help) with a value for each value of one
/// label.
fn labelled<L: std::fmt::Display>(
    text: &mut String,
    (kind, name, help): (&str, &str, &str),
    label: &str,
    values: impl IntoIterator<Item = (L, String)>,
) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (label_value, value) in values {
        let _ = writeln!(text, "{name}{{{label}=\"{label_value}\"}} {value}");
    }
}

pub async fn serve(
    listener: TcpListener,
    sources: Sources,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sources = Arc::new(sources);
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let sources = sources.clone();
            async move { render(&sources).await }
        }),
    );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
