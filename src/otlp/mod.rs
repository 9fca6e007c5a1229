//! The OpenTelemetry source: OTLP log exports in, through the same
//! admission as every other write. Conversion (`convert`: OTLP records onto
//! logwell's model) is apart from transport (`grpc`).

mod convert;
mod grpc;

pub use grpc::OtlpLogs;
