//! The generated code of the public contract (`proto/logwell/v1`), and of
//! the OpenTelemetry protocol's logs that logwell also serves.

#[allow(clippy::doc_lazy_continuation, clippy::doc_overindented_list_items, clippy::large_enum_variant)]
pub mod v1 {
    tonic::include_proto!("logwell.v1");
}

/// The OpenTelemetry protocol's logs (`proto/opentelemetry`), which the
/// OTLP source serves; nested as their packages are, for the generated
/// code's paths between them.
#[allow(clippy::doc_lazy_continuation, clippy::doc_overindented_list_items)]
pub mod opentelemetry {
    pub mod proto {
        pub mod common {
            pub mod v1 {
                tonic::include_proto!("opentelemetry.proto.common.v1");
            }
        }
        pub mod resource {
            pub mod v1 {
                tonic::include_proto!("opentelemetry.proto.resource.v1");
            }
        }
        pub mod logs {
            pub mod v1 {
                tonic::include_proto!("opentelemetry.proto.logs.v1");
            }
        }
        pub mod collector {
            pub mod logs {
                pub mod v1 {
                    tonic::include_proto!("opentelemetry.proto.collector.logs.v1");
                }
            }
        }
    }
}

/// LogStreamService's server, its streamed responses encoded ahead
/// (`crate::api::Encoded`); its messages are `v1`'s (see `build.rs`).
pub mod v1_encoded_streams {
    include!(concat!(env!("OUT_DIR"), "/encoded_streams/logwell.v1.rs"));
}

/// Every message and service of the contract, with comments, for server
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("logwell_descriptor");
