//! The gRPC edge: one file per service, converting proto to model and back,
//! with every error mapped to a status in one place (`error`).

mod access;
mod codec;
mod convert;
mod encoded;
mod error;
mod follow_cursor;
mod ingest_stream;
mod job_runs;
mod observe;
mod page_token;
#[cfg(test)]
mod properties;
mod query;
mod request_size;
mod stream;
mod tokens;
mod write;

pub(crate) use access::principal;
pub use access::{AccessLayer, AccessPolicy};
pub use codec::StrictCodec;
pub use encoded::Encoded;
pub use error::ApiError;
pub use ingest_stream::LogIngester;
pub use job_runs::JobRuns;
pub use observe::{ObserveLayer, REQUEST_ID, RpcMetrics};
pub use query::LogReader;
pub use request_size::rename_oversize;
pub use stream::LogStreamer;
pub use tokens::Tokens;
pub use write::LogWriter;

/// The inner service a layer's `call` should use: the one that was polled
/// ready, leaving a fresh clone in its place for the next `poll_ready`
/// (tower's rule for services that are cloned into their futures).
fn take_ready<S: Clone>(inner: &mut S) -> S {
    let fresh = inner.clone();
    std::mem::replace(inner, fresh)
}
