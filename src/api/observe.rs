//! Every RPC, observed at the edge: counted by service, method and status
//! code, timed per method (a stream until it ends), and run inside a
//! tracing span that carries the method, the caller's token name and a
//! request id: the caller's `x-request-id`, else a new UUIDv7, returned in
//! the response's metadata either way. An operator can then follow one
//! request through logwell's own logs.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};
use tracing::Instrument;

/// The metadata key of the request id, both ways.
pub const REQUEST_ID: &str = "x-request-id";
/// The longest request id taken from a caller; a longer or unprintable one
/// is replaced.
const MAX_REQUEST_ID_BYTES: usize = 128;
/// Latency buckets, in seconds: a one-log write to a long export.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];
/// The label of paths that are no RPC of this server: their number is
/// unbounded, a label's must not be.
const UNKNOWN: &str = "unknown";

/// The per-RPC metrics.
pub struct RpcMetrics {
    registry: Registry,
    requests: IntCounterVec,
    durations: HistogramVec,
    /// OTLP/HTTP exports, by HTTP status, and their times.
    otlp_http_requests: IntCounterVec,
    otlp_http_durations: HistogramVec,
    /// `/service/method` of every RPC served.
    known: HashSet<String>,
}

/// A histogram of request times in seconds, over `BUCKETS`.
fn time_histogram(name: &str, help: &str, labels: &[&str]) -> Result<HistogramVec, prometheus::Error> {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()), labels)
}

impl RpcMetrics {
    /// Metrics for the RPCs that `descriptor_sets` describe.
    pub fn new(descriptor_sets: &[&[u8]]) -> Result<RpcMetrics, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new("logwell_grpc_requests_total", "RPCs answered, by service, method and gRPC status code."),
            &["service", "method", "code"],
        )?;
        let durations = time_histogram(
            "logwell_grpc_request_duration_seconds",
            "Time from an RPC's arrival to its status (a stream's end), by service and method.",
            &["service", "method"],
        )?;
        let otlp_http_requests = IntCounterVec::new(
            Opts::new(
                "logwell_otlp_http_requests_total",
                "OTLP/HTTP exports (POST /v1/logs) answered, by HTTP status.",
            ),
            &["code"],
        )?;
        let otlp_http_durations = time_histogram(
            "logwell_otlp_http_request_duration_seconds",
            "Time from an OTLP/HTTP export's arrival to its answer.",
            &[],
        )?;
        let registry = Registry::new();
        for metric in [&requests, &otlp_http_requests] {
            registry.register(Box::new(metric.clone()))?;
        }
        for metric in [&durations, &otlp_http_durations] {
            registry.register(Box::new(metric.clone()))?;
        }
        let known = known_paths(descriptor_sets);
        Ok(RpcMetrics { registry, requests, durations, otlp_http_requests, otlp_http_durations, known })
    }

    /// Counts and times an OTLP/HTTP export answered with `status`.
    pub fn observe_otlp_http(&self, status: http::StatusCode, elapsed: std::time::Duration) {
        self.otlp_http_requests.with_label_values(&[status.as_str()]).inc();
        self.otlp_http_durations.with_label_values(&[] as &[&str]).observe(elapsed.as_secs_f64());
    }

    /// The metrics in Prometheus's text format.
    pub fn render(&self) -> String {
        let mut text = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut text);
        String::from_utf8(text).unwrap_or_default()
    }

    /// The labels of `path`: its service and method if it is one of ours.
    fn labels<'a>(&self, path: &'a str) -> (&'a str, &'a str) {
        match path.trim_start_matches('/').split_once('/') {
            Some((service, method)) if self.known.contains(path) => (service, method),
            _ => (UNKNOWN, UNKNOWN),
        }
    }
}

/// Every `/package.Service/Method` in the descriptor sets.
fn known_paths(descriptor_sets: &[&[u8]]) -> HashSet<String> {
    use prost::Message;
    let mut paths = HashSet::new();
    for bytes in descriptor_sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(*bytes) else { continue };
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let service_name = service.name.unwrap_or_default();
                for method in service.method {
                    paths.insert(format!("/{package}.{service_name}/{}", method.name.unwrap_or_default()));
                }
            }
        }
    }
    paths
}

#[derive(Clone)]
pub struct ObserveLayer {
    metrics: Arc<RpcMetrics>,
}

impl ObserveLayer {
    pub fn new(metrics: Arc<RpcMetrics>) -> ObserveLayer {
        ObserveLayer { metrics }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;

    fn layer(&self, inner: S) -> ObserveService<S> {
        ObserveService { inner, metrics: self.metrics.clone() }
    }
}

#[derive(Clone)]
pub struct ObserveService<S> {
    inner: S,
    metrics: Arc<RpcMetrics>,
}

impl<S, B> tower::Service<http::Request<B>> for ObserveService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let request_id = request_id(request.headers().get(REQUEST_ID));
        request.headers_mut().insert(REQUEST_ID, request_id.clone());
        let path = request.uri().path().to_string();
        let span = tracing::info_span!(
            "rpc",
            method = %path,
            request_id = %request_id.to_str().unwrap_or_default(),
            caller = tracing::field::Empty,
        );
        let mut inner = super::take_ready(&mut self.inner);
        let answer = span.in_scope(|| inner.call(request));
        let call = Call { metrics: self.metrics.clone(), path, started, span: span.clone() };
        Box::pin(
            async move {
                let mut response = answer.await?;
                response.headers_mut().insert(REQUEST_ID, request_id);
                // A refusal comes as headers alone; an answer's status
                // follows its body, in the trailers.
                match response.headers().get("grpc-status").cloned() {
                    Some(code) => {
                        call.finish(code.to_str().unwrap_or_default());
                        Ok(response)
                    }
                    None => Ok(response.map(|body| tonic::body::Body::new(ObservedBody { body, call: Some(call) }))),
                }
            }
            .instrument(span),
        )
    }
}

/// The caller's request id if it is printable and short, else a new one.
fn request_id(sent: Option<&HeaderValue>) -> HeaderValue {
    let usable = |value: &&HeaderValue| {
        value.len() <= MAX_REQUEST_ID_BYTES
            && !value.is_empty()
            && value.as_bytes().iter().all(|byte| byte.is_ascii_graphic())
    };
    match sent.filter(usable) {
        Some(value) => value.clone(),
        None => HeaderValue::try_from(uuid::Uuid::now_v7().to_string()).unwrap_or(HeaderValue::from_static("-")),
    }
}

/// One RPC until its status is known.
struct Call {
    metrics: Arc<RpcMetrics>,
    path: String,
    started: Instant,
    span: tracing::Span,
}

impl Call {
    /// Counts and times the call, with `code` as the numeric `grpc-status`.
    fn finish(self, code: &str) {
        let code = tonic::Code::from_bytes(code.as_bytes());
        let (service, method) = self.metrics.labels(&self.path);
        let elapsed = self.started.elapsed();
        let name = format!("{code:?}");
        self.metrics.requests.with_label_values(&[service, method, &name]).inc();
        self.metrics.durations.with_label_values(&[service, method]).observe(elapsed.as_secs_f64());
        tracing::debug!(parent: &self.span, code = %name, millis = elapsed.as_secs_f64() * 1e3, "rpc finished");
    }
}

/// A response body that reports the call's status when its trailers pass,
/// or CANCELLED if it is dropped before (the caller went away).
struct ObservedBody {
    body: tonic::body::Body,
    call: Option<Call>,
}

impl Body for ObservedBody {
    type Data = <tonic::body::Body as Body>::Data;
    type Error = <tonic::body::Body as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(context);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(|trailers| {
                trailers.get("grpc-status").and_then(|code| code.to_str().ok()).unwrap_or("2").to_string()
            }),
            Poll::Ready(Some(Err(_))) => Some((tonic::Code::Internal as i32).to_string()),
            Poll::Ready(None) => Some("0".to_string()),
            Poll::Pending => None,
        };
        if let Some(code) = code
            && let Some(call) = self.call.take()
        {
            call.finish(&code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish(&(tonic::Code::Cancelled as i32).to_string());
        }
    }
}
