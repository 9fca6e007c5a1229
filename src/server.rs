//! Assembles the gRPC server: logwell's services, health and reflection, on
//! a listener the caller bound, until a shutdown signal.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_web::GrpcWebLayer;

use crate::api::{
    AccessLayer, AccessPolicy, JobRuns, LogIngester, LogReader, LogStreamer, LogWriter, ObserveLayer, RpcMetrics,
    Tokens, rename_oversize,
};
use crate::auth::{JobRunTokens, TokensFile};
use crate::connections::{self, FollowsRuntime};
use crate::ingest::{Admission, Ingest};
use crate::live::{Followers, FollowersConfig, Hub, mark_commit_order};
use crate::model::Limits;
use crate::otlp::{DescriptorsError, Exports, OtlpHttp, OtlpJson, OtlpLogs};
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::opentelemetry::proto::collector::logs::v1::logs_service_server::LogsServiceServer;
use crate::proto::v1::job_log_service_server::JobLogServiceServer;
use crate::proto::v1::job_run_service_server::JobRunServiceServer;
use crate::proto::v1::log_ingest_service_server::LogIngestServiceServer;
use crate::proto::v1::log_query_service_server::LogQueryServiceServer;
use crate::proto::v1::system_log_service_server::SystemLogServiceServer;
use crate::proto::v1::task_log_service_server::TaskLogServiceServer;
use crate::proto::v1::token_service_server::TokenServiceServer;
use crate::proto::v1_encoded_streams::log_stream_service_server::LogStreamServiceServer;
use crate::rate_limit::RateLimiter;
use crate::retention::{Retention, RetentionSettings, RetentionStats};
use crate::store::{Availability, LogStore, Observed};
use crate::tls::{self, ReloadableTls};
use crate::web::{BrowserOrigins, OriginLayer, ViewerLayer};
use crate::{health, metrics, reload};

/// How the server behaves, apart from where it listens and stores.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// How often the database is checked for the health service.
    pub health_check_interval: Duration,
    /// How long one health check may take before it counts as failed.
    pub health_check_timeout: Duration,
    /// How long in-flight requests may take to finish after a shutdown
    /// signal before the server closes regardless.
    pub shutdown_grace: Duration,
    /// How long a stream may stay silent before it gets a heartbeat.
    pub stream_heartbeat_interval: Duration,
    /// How often the server pings each HTTP/2 connection, so that idle
    /// streams survive proxies and dead peers are noticed.
    pub http2_keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    pub http2_keepalive_timeout: Duration,
    /// Concurrent streams (RPCs) per HTTP/2 connection, at most.
    pub max_concurrent_streams: u32,
    /// Followers' storage reads running at once, at most (the others queue).
    pub concurrent_stream_reads: usize,
    /// Logs waiting to be committed, at most; writes beyond are refused
    /// with RESOURCE_EXHAUSTED.
    pub write_queue_logs: usize,
    /// Who may call what.
    pub access: AccessPolicy,
    /// Which web pages may call, over gRPC-Web.
    pub browser_origins: BrowserOrigins,
    /// How often revocations made on other replicas are read.
    pub revocation_refresh_interval: Duration,
    /// Bounds on logs and batches.
    pub limits: Limits,
    /// Bytes in one request message, at most.
    pub max_request_bytes: usize,
    /// Followers of one job run (or of the system logs) on this server, at most.
    pub max_followers_per_job_run: usize,
    /// Follows across runs at once, at most.
    pub max_cross_run_followers: usize,
    /// Each caller's write rate, if limited.
    pub rate_limit: Option<Arc<RateLimiter>>,
    /// TLS for the gRPC listener; plaintext if `None`.
    pub tls: Option<Arc<ReloadableTls>>,
    /// How often the TLS files are checked for changes.
    pub tls_reload_interval: Duration,
    /// The tokens file, reloaded when it changes, if there is one.
    pub tokens_file: Option<Arc<TokensFile>>,
    pub tokens_reload_interval: Duration,
    /// How long logs are kept, and how retention runs.
    pub retention: RetentionSettings,
}

/// Where the server listens.
pub struct Listeners {
    pub grpc: TcpListener,
    /// Prometheus metrics over HTTP, if wanted.
    pub metrics: Option<TcpListener>,
    /// Health alone, in plaintext, if wanted (`--health-listen`).
    pub health: Option<TcpListener>,
    /// OTLP over HTTP, if wanted (`--otlp-http-listen`).
    pub otlp_http: Option<TcpListener>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("cannot register the RPC metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot start the committer's thread or the follows runtime: {0}")]
    Threads(#[from] std::io::Error),
    #[error(transparent)]
    Descriptors(#[from] DescriptorsError),
}

/// How long, after the grace period (or the last request, if sooner), the
/// queued writes may take to commit and the database to close, at most.
const CLOSING_BOUND: Duration = Duration::from_secs(5);

/// Serves on `listener` until `shutdown` resolves. Then, at once: health
/// turns NOT_SERVING, no new connections are accepted, and open streams end
/// with UNAVAILABLE (followers resume elsewhere with `after_seq`, producers
/// resend unanswered batches). Requests in flight finish, within the grace
/// period; queued writes are committed and answered; the store closes. Ends
/// within the grace period plus `CLOSING_BOUND`, whatever clients do.
pub async fn serve(
    listeners: Listeners,
    store: Arc<dyn LogStore>,
    hub: Arc<Hub>,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health::report(&health_reporter, ServingStatus::NotServing).await;
    health_reporter.set_service_status(health::LIVENESS, ServingStatus::Serving).await;
    let availability = Availability::default();
    let store: Arc<dyn LogStore> = Arc::new(Observed::new(store, availability.clone()));
    // Both reflection versions describe everything a client may meet:
    // logwell's contract, health, both reflection services, and the
    // google.rpc error details, so that grpcurl can print BadRequest details.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
    };
    let stopping = CancellationToken::new();
    let follows = FollowsRuntime::start()?;
    let (ingest, committer) = Ingest::start(store.clone(), hub.clone(), settings.write_queue_logs)?;
    let ingest = Arc::new(ingest);
    let admission = Admission::new(ingest.clone(), settings.limits, settings.rate_limit.clone());
    let writer = LogWriter::new(admission.clone());
    let exports = Exports::new(admission);
    let reader = LogReader::new(store.clone(), stopping.clone());
    let followers = FollowersConfig {
        heartbeat_interval: settings.stream_heartbeat_interval,
        concurrent_reads: settings.concurrent_stream_reads,
        job_run_tokens: settings.access.job_run_tokens.clone(),
        max_followers: settings.max_followers_per_job_run,
        max_across: settings.max_cross_run_followers,
        retention: settings.retention.policy,
    };
    let followers = Followers::new(store.clone(), hub.clone(), followers, stopping.clone());
    let streamer = LogStreamer::new(followers.clone(), store.clone());
    // tonic's refusal of an oversized request happens before any handler.
    macro_rules! limited {
        ($service:expr) => {
            $service.max_decoding_message_size(settings.max_request_bytes)
        };
    }
    let rpc_metrics = Arc::new(RpcMetrics::new(&[
        FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ])?);
    let routes = Routes::new(health_service.clone())
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .add_service(limited!(SystemLogServiceServer::new(writer.clone())))
        .add_service(limited!(JobLogServiceServer::new(writer.clone())))
        .add_service(limited!(TaskLogServiceServer::new(writer.clone())))
        .add_service(limited!(LogIngestServiceServer::new(LogIngester::new(writer, stopping.clone()))))
        .add_service(limited!(LogsServiceServer::new(OtlpLogs::new(exports.clone()))))
        .add_service(limited!(LogQueryServiceServer::new(reader)))
        .add_service(limited!(LogStreamServiceServer::new(streamer)))
        .add_service(limited!(JobRunServiceServer::new(JobRuns::new(store.clone(), hub.clone()))))
        .add_service(limited!(TokenServiceServer::new(Tokens::new(
            store.clone(),
            settings.access.job_run_tokens.clone()
        ))));
    let service = tower::ServiceBuilder::new()
        // Outermost: a page not allowed gets nothing, not even a span.
        .layer(OriginLayer::new(settings.browser_origins.clone()))
        .layer(settings.browser_origins.cors())
        // The viewer's files, before gRPC-Web, which answers nothing else.
        .layer(ViewerLayer::new())
        // gRPC-Web is translated before the rest sees the call, so that it
        // is observed, authorised and limited as any gRPC call.
        .layer(GrpcWebLayer::new())
        // The span and the clock start before anything else.
        .layer(ObserveLayer::new(rpc_metrics.clone()))
        .layer(AccessLayer::new(settings.access.clone()))
        .layer(tower::util::MapResponseLayer::new(rename_oversize))
        .service(routes);

    let health_task = tokio::spawn(health::follow_database(
        store.clone(),
        health_reporter,
        availability,
        settings.health_check_interval,
        settings.health_check_timeout,
        stopping.clone(),
    ));
    tokio::spawn(mark_commit_order(store.clone(), stopping.clone()));
    if let Some(job_run_tokens) = settings.access.job_run_tokens.clone() {
        tokio::spawn(refresh_revocations(
            store.clone(),
            job_run_tokens,
            settings.revocation_refresh_interval,
            stopping.clone().cancelled_owned(),
        ));
    }
    {
        let stopping = stopping.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(grace = ?settings.shutdown_grace, "shutting down: not serving; ending streams; finishing in-flight requests");
            stopping.cancel();
        });
    }

    let retention_stats = Arc::new(RetentionStats::default());
    if !settings.retention.policy.keeps_everything() {
        let retention = Retention::new(store.clone(), settings.retention, retention_stats.clone());
        tokio::spawn(retention.run(stopping.clone()));
    }
    if let Some(tokens_file) = settings.tokens_file.clone() {
        let stopped = stopping.clone().cancelled_owned();
        tokio::spawn(reload::reload_when_asked(tokens_file, settings.tokens_reload_interval, stopped));
    }
    if let Some(job_run_tokens) = settings.access.job_run_tokens.clone() {
        let stopped = stopping.clone().cancelled_owned();
        tokio::spawn(reload::reload_when_asked(job_run_tokens, settings.tokens_reload_interval, stopped));
    }
    if let Some(listener) = listeners.health {
        let stopped = stopping.clone().cancelled_owned();
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tokio::spawn(async move {
            let serving = Server::builder().add_service(health_service).serve_with_incoming_shutdown(incoming, stopped);
            if let Err(error) = serving.await {
                tracing::error!(%error, "the health listener failed");
            }
        });
    }
    let otlp_http = match listeners.otlp_http {
        Some(listener) => {
            let json = OtlpJson::new()?;
            let metrics = rpc_metrics.clone();
            let otlp = OtlpHttp::new(exports, settings.access.clone(), json, metrics, settings.max_request_bytes);
            let stopped = stopping.clone().cancelled_owned();
            Some(tokio::spawn(serve_otlp_http(listener, settings.tls.clone(), otlp, stopped)))
        }
        None => None,
    };
    if let Some(listener) = listeners.metrics {
        let stopped = stopping.clone().cancelled_owned();
        let sources = metrics::Sources {
            hub,
            followers,
            ingest: ingest.clone(),
            retention: retention_stats,
            rpc: rpc_metrics,
            store: store.clone(),
            runtimes: [("server", tokio::runtime::Handle::current()), ("follows", follows.handle())],
        };
        tokio::spawn(async move {
            if let Err(error) = metrics::serve(listener, sources, stopped).await {
                tracing::error!(%error, "the metrics endpoint failed");
            }
        });
    }
    let http2 = connections::Http2Settings {
        keepalive_interval: settings.http2_keepalive_interval,
        keepalive_timeout: settings.http2_keepalive_timeout,
        max_concurrent_streams: settings.max_concurrent_streams,
    };
    let serving: Pin<Box<dyn Future<Output = ()> + Send>> = match &settings.tls {
        Some(reloadable) => {
            tokio::spawn(reload::reload_when_asked(
                reloadable.clone(),
                settings.tls_reload_interval,
                stopping.clone().cancelled_owned(),
            ));
            let incoming = tls::incoming(listeners.grpc, reloadable.clone());
            Box::pin(connections::serve(incoming, service, http2, follows.handle(), stopping.clone().cancelled_owned()))
        }
        None => {
            let incoming = TcpIncoming::from(listeners.grpc).with_nodelay(Some(true));
            Box::pin(connections::serve(incoming, service, http2, follows.handle(), stopping.clone().cancelled_owned()))
        }
    };
    let grace_over = async {
        stopping.cancelled().await;
        tokio::time::sleep(settings.shutdown_grace).await;
    };
    tokio::select! {
        () = serving => {}
        () = grace_over => {
            tracing::warn!(grace = ?settings.shutdown_grace, "requests still running after the grace period; closing");
        }
    }
    // Serving ends at the signal or when the listener closes: stop the rest too.
    stopping.cancel();
    let closing = async {
        // Its exports in flight are answered before the queue closes.
        if let Some(serving) = otlp_http
            && let Err(error) = serving.await
        {
            tracing::error!(%error, "the OTLP/HTTP listener's task failed");
        }
        committer.finish().await;
        if let Err(error) = health_task.await {
            tracing::error!(%error, "health task failed");
        }
        store.close().await;
    };
    match tokio::time::timeout(CLOSING_BOUND, closing).await {
        Ok(()) => tracing::info!("stopped"),
        Err(_) => tracing::warn!(bound = ?CLOSING_BOUND, "the database did not close in time; stopping anyway"),
    }
    Ok(())
}

/// Serves OTLP/HTTP on `listener`, over TLS if the gRPC port has it, until
/// `stopped`; then finishes the exports in flight.
async fn serve_otlp_http(
    listener: TcpListener,
    tls: Option<Arc<ReloadableTls>>,
    otlp: OtlpHttp,
    stopped: WaitForCancellationFutureOwned,
) {
    let mut server = Server::builder().accept_http1(true);
    let router = server.add_routes(Routes::from(otlp.router()));
    let served = match tls {
        Some(tls) => router.serve_with_incoming_shutdown(tls::incoming(listener, tls), stopped).await,
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            router.serve_with_incoming_shutdown(incoming, stopped).await
        }
    };
    if let Err(error) = served {
        tracing::error!(%error, "the OTLP/HTTP listener failed");
    }
}

/// Reads revocations made on other replicas into this server's set, until
/// the server stops.
async fn refresh_revocations(
    store: Arc<dyn LogStore>,
    job_run_tokens: Arc<JobRunTokens>,
    interval: Duration,
    stopped: impl Future<Output = ()>,
) {
    let refreshing = async {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            match store.revoked_tokens(chrono::Utc::now()).await {
                Ok(revoked) => job_run_tokens.add_revoked(revoked),
                Err(error) => tracing::warn!(%error, "cannot read token revocations; retrying"),
            }
        }
    };
    tokio::select! {
        () = refreshing => {}
        () = stopped => {}
    }
}
