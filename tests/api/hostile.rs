//! Hostile input: bytes that are not UTF-8, metadata nested past what the
//! decoder follows, duplicate ids inside one batch, empty batches, and search
//! text full of SQL and wildcards. Each is refused with INVALID_ARGUMENT naming
//! the field, or matched literally, the same on both backends; none is
//! INTERNAL, and a refused batch stores nothing. (NUL bytes, control
//! characters, extreme times and tampered page tokens are covered with the
//! writes and queries they belong to.)

use logwell::proto::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestServer, assert_invalid, job_entry};
use crate::writes::metadata;

conformance!(
    duplicate_ids_and_empty_batches_are_refused_whole,
    strings_that_are_not_utf8_name_their_field,
    metadata_nested_past_the_decoder_is_invalid_argument,
    search_text_is_literal,
);

/// `LogEntry` as the wire sees it, with `message` as raw bytes, so that the
/// test can send what no generated client would.
#[derive(Clone, PartialEq, prost::Message)]
struct RawEntry {
    #[prost(string, tag = "1")]
    job_run_id: String,
    #[prost(bytes = "vec", tag = "6")]
    source: Vec<u8>,
    #[prost(bytes = "vec", tag = "7")]
    message: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawWriteJobLogRequest {
    #[prost(message, optional, tag = "1")]
    log: Option<RawEntry>,
}

async fn write_raw(server: &TestServer, entry: RawEntry) -> Result<pb::WriteJobLogResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    grpc.ready().await.map_err(|error| tonic::Status::unknown(error.to_string()))?;
    let path = http::uri::PathAndQuery::from_static("/logwell.v1.JobLogService/WriteJobLog");
    let codec = tonic_prost::ProstCodec::<RawWriteJobLogRequest, pb::WriteJobLogResponse>::default();
    let request = tonic::Request::new(RawWriteJobLogRequest { log: Some(entry) });
    grpc.unary(request, path, codec).await.map(tonic::Response::into_inner)
}

async fn duplicate_ids_and_empty_batches_are_refused_whole(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let id = Uuid::now_v7().to_string();
    let with_id = |message: &str| pb::LogEntry { id: id.clone(), ..job_entry(run, message) };
    let twice = vec![job_entry(run, "no id"), with_id("first"), with_id("second")];
    let refused = server.job().write_job_logs(pb::WriteJobLogsRequest { logs: twice.clone() }).await;
    assert_invalid(refused, &["logs[2].id"]);
    assert_invalid(server.job().write_job_logs(pb::WriteJobLogsRequest { logs: Vec::new() }).await, &["logs"]);

    let batch = |batch_number: u64, logs: Vec<pb::LogEntry>| pb::IngestLogsRequest {
        batch_number,
        r#type: pb::LogType::Job.into(),
        logs,
    };
    let mut answers = server
        .ingest()
        .ingest_logs(tokio_stream::iter([batch(1, twice), batch(2, Vec::new()), batch(3, vec![with_id("alone")])]))
        .await
        .expect("stream")
        .into_inner();
    let mut refusals = std::collections::BTreeMap::new();
    while let Some(answer) = answers.message().await.expect("answer") {
        refusals.insert(answer.batch_number, answer.refusal.map(|refusal| (refusal.code, refusal.field_violations)));
    }
    let field = |number: u64| refusals[&number].as_ref().map(|(code, fields)| (*code, fields[0].field.clone()));
    assert_eq!(field(1), Some((Code::InvalidArgument as i32, "logs[2].id".to_string())));
    assert_eq!(field(2), Some((Code::InvalidArgument as i32, "logs".to_string())));
    assert_eq!(refusals[&3], None, "a good batch after refused ones is stored");

    let stored = server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await;
    let stored: Vec<&str> = stored.iter().map(|log| log.message.as_str()).collect();
    assert_eq!(stored, ["alone"], "refused batches stored nothing");
}

async fn strings_that_are_not_utf8_name_their_field(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7().to_string();
    let valid = RawEntry { job_run_id: run.clone(), source: b"ok".to_vec(), message: "fine ✓".as_bytes().to_vec() };
    write_raw(&server, valid.clone()).await.expect("valid UTF-8 is stored");
    for (entry, field) in [
        (RawEntry { message: vec![b'a', 0xff, 0xfe, b'b'], ..valid.clone() }, "log.message"),
        (RawEntry { message: vec![0xe2, 0x82], ..valid.clone() }, "log.message"),
        (RawEntry { source: vec![0xc0, 0x80], ..valid.clone() }, "log.source"),
    ] {
        let status = write_raw(&server, entry).await.expect_err("not UTF-8");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(crate::helpers::violated_fields(&status), [field], "{}", status.message());
        assert!(status.message().contains("not UTF-8"), "{}", status.message());
    }
    let stored = server.list_all(pb::ListLogsRequest { job_run_id: run, ..Default::default() }).await;
    assert_eq!(stored.len(), 1, "only the valid log");
}

async fn metadata_nested_past_the_decoder_is_invalid_argument(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    // prost follows at most 100 levels of messages; each level of Struct
    // nesting is three (Struct, its map entry, Value).
    let deep = (0..150).fold(prost_types::Struct::default(), |inner, _| {
        metadata(&[("k", prost_types::Value { kind: Some(prost_types::value::Kind::StructValue(inner)) })])
    });
    let log = pb::LogEntry { metadata: Some(deep), ..job_entry(run, "deep") };
    let status = server.job().write_job_log(pb::WriteJobLogRequest { log: Some(log) }).await.expect_err("too deep");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields = crate::helpers::violated_fields(&status);
    assert!(fields.len() == 1 && fields[0].starts_with("log.metadata"), "{fields:?}: {}", status.message());
    assert!(status.message().contains("recursion limit"), "{}", status.message());
}

async fn search_text_is_literal(backend: Backend) {
    let server = TestServer::start(backend).await;
    let run = Uuid::now_v7();
    let messages = [
        "'; DROP TABLE logs; --",
        "100% done",
        "1000 done",
        "a_b",
        "axb",
        r"back\slash",
        "quote \" and ' and `",
        "$1 and ?1 and :name",
    ];
    let logs = messages.iter().map(|message| job_entry(run, message)).collect();
    server.job().write_job_logs(pb::WriteJobLogsRequest { logs }).await.expect("write");
    for (search, expected) in [
        ("'; DROP TABLE logs; --", vec!["'; DROP TABLE logs; --"]),
        ("%", vec!["100% done"]),
        ("0%", vec!["100% done"]),
        ("_", vec!["a_b"]),
        (r"\", vec![r"back\slash"]),
        ("\"", vec!["quote \" and ' and `"]),
        ("$1", vec!["$1 and ?1 and :name"]),
        ("?1", vec!["$1 and ?1 and :name"]),
        ("*", vec![]),
    ] {
        let query =
            pb::ListLogsRequest { job_run_id: run.to_string(), message_contains: search.into(), ..Default::default() };
        let found = server.list_all(query).await;
        let found: Vec<&str> = found.iter().map(|log| log.message.as_str()).collect();
        assert_eq!(found, expected, "searching {search:?}");
    }
    let all = server.list_all(pb::ListLogsRequest { job_run_id: run.to_string(), ..Default::default() }).await;
    assert_eq!(all.len(), messages.len(), "the table is still there, whole");
}
