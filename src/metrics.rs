//! Prometheus metrics over plain HTTP (`GET /metrics`), on their own
//! listener so that scraping needs no gRPC.

use std::fmt::Write;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::live::Hub;

/// The text exposition of every metric.
pub fn render(hub: &Hub) -> String {
    let mut text = String::new();
    let mut gauge = |name: &str, help: &str, value: usize| {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    };
    gauge("logwell_stream_followers", "StreamLogs followers connected now.", hub.followers());
    gauge(
        "logwell_followed_sequences",
        "Job runs (and the system log sequence) with at least one follower now.",
        hub.followed_sequences(),
    );
    text
}

pub async fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route("/metrics", get(move || std::future::ready(render(&hub))));
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
