//! The OpenTelemetry source: OTLP log exports in, through the same
//! admission as every other write. Conversion (`convert`: OTLP records onto
//! logwell's model) and the export itself (`export`) are apart from the
//! transports (`grpc`; `http` with its `json`).

mod convert;
mod export;
mod grpc;
mod http;
mod json;

pub use export::Exports;
pub use grpc::OtlpLogs;
pub use http::{LOGS_PATH, OtlpHttp};
pub use json::{DescriptorsError, OtlpJson};
