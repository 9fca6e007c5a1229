//! The gRPC edge: one file per service, converting proto to model and back,
//! with every error mapped to a status in one place (`error`).

mod convert;
mod error;
mod page_token;
mod query;
mod write;

pub use error::ApiError;
pub use query::LogReader;
pub use write::LogWriter;
