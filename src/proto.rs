//! The generated code of the public contract (`proto/logwell/v1`).

#[allow(clippy::doc_lazy_continuation, clippy::doc_overindented_list_items, clippy::large_enum_variant)]
pub mod v1 {
    tonic::include_proto!("logwell.v1");
}

/// LogStreamService's server, its streamed responses encoded ahead
/// (`crate::api::Encoded`); its messages are `v1`'s (see `build.rs`).
pub mod v1_encoded_streams {
    include!(concat!(env!("OUT_DIR"), "/encoded_streams/logwell.v1.rs"));
}

/// Every message and service of the contract, with comments, for server
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("logwell_descriptor");
