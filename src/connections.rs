//! The gRPC port's connections, served with hyper, with the streams of
//! follows on a runtime of their own whose threads yield to the server's.
//!
//! A commit wakes every follower of its run at once, ten thousand perhaps,
//! and each follower's HTTP/2 stream is a task. On one runtime the writer's
//! acknowledgement, woken by the same commit, waited in the same queue
//! behind them all: in the fan-out benchmark its p99 was 200–500 ms (2 ms
//! with no follower), though its commit took a few. Counting deliveries
//! (a pacer) did not help: it could not see the streams' own work.
//!
//! tonic's `Server` spawns every stream on the runtime serving its
//! connection, so logwell serves the connections itself, with hyper as
//! tonic does: hyper hands each new HTTP/2 stream to `Streams`, which
//! spawns a follow's (StreamLogs, FollowLogs) on the follows runtime and
//! every other call on the server's. The follows runtime's threads run at a
//! lower priority, so the kernel gives the server's threads the CPU first:
//! a crowd of followers slows itself, never the writers.
//!
//! Unlike tonic's `Server`, nothing here enforces `grpc-timeout`: clients
//! reset their streams at their deadlines, which drops the call here.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use http::{Request, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::{Handle, Runtime};
use tokio_stream::{Stream, StreamExt};
use tonic::body::Body;
use tower::ServiceExt;

/// The calls that follow, each stream living as long as its follower.
const FOLLOWS: [&str; 2] = ["/logwell.v1.LogStreamService/StreamLogs", "/logwell.v1.LogStreamService/FollowLogs"];

/// How long to wait after a connection could not be accepted.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

thread_local! {
    /// Whether the stream hyper spawns next on this thread is a follow: set
    /// when hyper hands its request to the service, and taken when hyper
    /// spawns its task, right after, on the same thread.
    static FOLLOW_NEXT: Cell<bool> = const { Cell::new(false) };
}

/// How HTTP/2 connections behave.
#[derive(Debug, Clone, Copy)]
pub struct Http2Settings {
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    pub max_concurrent_streams: u32,
}

/// Spawns each HTTP/2 stream's task: a follow's on the follows runtime,
/// the rest on the current one.
#[derive(Debug, Clone)]
struct Streams {
    follows: Handle,
}

impl<F> hyper::rt::Executor<F> for Streams
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, stream: F) {
        if FOLLOW_NEXT.take() {
            self.follows.spawn(stream);
        } else {
            tokio::spawn(stream);
        }
    }
}

/// The tower service, called as hyper wants, noting which calls follow.
#[derive(Debug, Clone)]
struct Classified<S>(S);

impl<S> hyper::service::Service<Request<Incoming>> for Classified<S>
where
    S: tower::Service<Request<Body>> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tower::util::Oneshot<S, Request<Body>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        // HTTP/1.1 calls run in their connection's task: nothing to spawn.
        let follows = request.version() == Version::HTTP_2 && FOLLOWS.contains(&request.uri().path());
        FOLLOW_NEXT.set(follows);
        self.0.clone().oneshot(request.map(Body::new))
    }
}

/// Serves `service` on every connection `incoming` yields until `stopped`;
/// then accepts no more, asks each connection to finish (HTTP/2 GOAWAY), and
/// returns once all have closed.
pub async fn serve<I, IO, S, B>(
    incoming: I,
    service: S,
    http2: Http2Settings,
    follows: Handle,
    stopped: impl Future<Output = ()>,
) where
    I: Stream<Item = Result<IO, std::io::Error>>,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(Streams { follows });
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(http2.keepalive_interval)
        .keep_alive_timeout(http2.keepalive_timeout)
        .max_concurrent_streams(http2.max_concurrent_streams);
    // hyper enforces its HTTP/1 header read timeout only with a timer.
    builder.http1().timer(TokioTimer::new());
    let service = Classified(service);
    let graceful = GracefulShutdown::new();
    {
        let (mut incoming, mut stopped) = (pin!(incoming), pin!(stopped));
        loop {
            let io = tokio::select! {
                () = &mut stopped => break,
                accepted = incoming.next() => match accepted {
                    Some(Ok(io)) => io,
                    Some(Err(error)) => {
                        // Out of file descriptors, say: wait rather than spin.
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(ACCEPT_RETRY).await;
                        continue;
                    }
                    None => break,
                },
            };
            let connection = builder.serve_connection(TokioIo::new(io), service.clone()).into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "connection ended with an error");
                }
            });
        }
    }
    graceful.shutdown().await;
}

/// The runtime the streams of follows run on, as many threads as the
/// server's, each at a lower priority. Dropping it ends it without waiting
/// for its tasks (the server ended its follows before).
pub struct FollowsRuntime {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl FollowsRuntime {
    pub fn start() -> std::io::Result<FollowsRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("logwell-follows")
            .on_thread_start(crate::scheduling::yield_to_server)
            .enable_all()
            .build()?;
        Ok(FollowsRuntime { handle: runtime.handle().clone(), runtime: Some(runtime) })
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for FollowsRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime waits for its threads, which an async
            // caller may not do.
            runtime.shutdown_background();
        }
    }
}
