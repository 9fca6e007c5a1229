//! Compiles the public contract, and the OpenTelemetry protocol's logs that
//! logwell also serves, with `protox`, so no system `protoc` is needed, and
//! keeps the descriptor set (with comments) for server reflection.

use std::path::PathBuf;

use protox::prost::Message;

const PROTOS: &[&str] = &[
    "proto/logwell/v1/log.proto",
    "proto/logwell/v1/filter.proto",
    "proto/logwell/v1/system_log_service.proto",
    "proto/logwell/v1/job_log_service.proto",
    "proto/logwell/v1/task_log_service.proto",
    "proto/logwell/v1/log_query_service.proto",
    "proto/logwell/v1/job_run_service.proto",
    STREAM_SERVICE,
    "proto/logwell/v1/log_ingest_service.proto",
    "proto/logwell/v1/token_service.proto",
    "proto/opentelemetry/proto/collector/logs/v1/logs_service.proto",
];

const STREAM_SERVICE: &str = "proto/logwell/v1/log_stream_service.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = protox::Compiler::new(["proto"])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(PROTOS)?
        .file_descriptor_set();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR not set")?);
    let descriptor_path = out_dir.join("logwell_descriptor.bin");
    std::fs::write(&descriptor_path, descriptors.encode_to_vec())?;

    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        // Undecodable requests are INVALID_ARGUMENT, not tonic-prost's INTERNAL.
        .codec_path("crate::api::StrictCodec")
        .compile_protos(PROTOS, &["proto"])?;

    // LogStreamService's server once more, alone, its streamed responses as
    // messages encoded ahead (`crate::api::Encoded`): every follower of a
    // log sends the same bytes, encoded once. Its messages are the ones
    // above; clients and reflection use the contract as it is.
    let mut stream_service = descriptors.clone();
    stream_service.file.retain(|file| file.name() == STREAM_SERVICE.trim_start_matches("proto/"));
    for file in &mut stream_service.file {
        file.message_type.clear();
        file.enum_type.clear();
    }
    let encoded_streams = out_dir.join("encoded_streams");
    std::fs::create_dir_all(&encoded_streams)?;
    tonic_prost_build::configure()
        .build_client(false)
        .out_dir(&encoded_streams)
        .codec_path("crate::api::StrictCodec")
        .extern_path(".logwell.v1", "crate::proto::v1")
        .extern_path(".logwell.v1.StreamLogsResponse", "crate::api::Encoded<crate::proto::v1::StreamLogsResponse>")
        .extern_path(".logwell.v1.FollowLogsResponse", "crate::api::Encoded<crate::proto::v1::FollowLogsResponse>")
        .compile_fds(stream_service)?;
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds the migrations: a new file must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}
