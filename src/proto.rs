//! The generated code of the public contract (`proto/logwell/v1`).

#[allow(clippy::doc_lazy_continuation, clippy::doc_overindented_list_items, clippy::large_enum_variant)]
pub mod v1 {
    tonic::include_proto!("logwell.v1");
}

/// Every message and service of the contract, with comments, for server
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("logwell_descriptor");
