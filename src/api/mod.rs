//! The gRPC edge: one file per service, converting proto to model and back,
//! with every error mapped to a status in one place (`error`).

mod access;
mod convert;
mod error;
mod ingest_stream;
mod job_runs;
mod page_token;
mod query;
mod stream;
mod tokens;
mod write;

pub use access::{AccessLayer, AccessPolicy};
pub use error::ApiError;
pub use ingest_stream::LogIngester;
pub use job_runs::JobRuns;
pub use query::LogReader;
pub use stream::LogStreamer;
pub use tokens::Tokens;
pub use write::LogWriter;
