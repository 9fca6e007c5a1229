//! Compiles the public contract with `protox`, so no system `protoc` is needed,
//! and keeps the descriptor set (with comments) for server reflection.

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
    "proto/logwell/v1/log_stream_service.proto",
    "proto/logwell/v1/log_ingest_service.proto",
    "proto/logwell/v1/token_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = protox::Compiler::new(["proto"])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(PROTOS)?
        .file_descriptor_set();
    let descriptor_path =
        PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR not set")?).join("logwell_descriptor.bin");
    std::fs::write(&descriptor_path, descriptors.encode_to_vec())?;

    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        // Undecodable requests are INVALID_ARGUMENT, not tonic-prost's INTERNAL.
        .codec_path("crate::api::StrictCodec")
        .compile_protos(PROTOS, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds the migrations: a new file must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    Ok(())
}
