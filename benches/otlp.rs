//! The ingestion benchmark's OTLP mode: OpenTelemetry exports of 512
//! records (the SDKs' default batch) over gRPC and over HTTP, beside
//! IngestLogs streams of batches of the same logs (the rows the exports
//! become: message, level, stream, source and the 3 metadata keys of the
//! mapping) on the same server in the same run; then the acknowledgement
//! latency of one-record exports beside one-log WriteJobLog calls.

use logwell::proto::opentelemetry::proto::collector::logs::v1::ExportLogsServiceRequest;
use logwell::proto::opentelemetry::proto::collector::logs::v1::logs_service_client::LogsServiceClient;
use logwell::proto::opentelemetry::proto::common::v1::{AnyValue, KeyValue, any_value};
use logwell::proto::opentelemetry::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use logwell::proto::opentelemetry::proto::resource::v1::Resource;
use logwell::proto::v1::job_log_service_client::JobLogServiceClient;
use logwell::proto::v1::{self as pb};
use prost::Message;
use tokio::time::Instant;
use uuid::Uuid;

use crate::support::Server;
use crate::support::http_client::http_client;
use crate::{Args, ClientIds, INGEST_IN_FLIGHT, Measured, drive, entries, ingest_streams, message, report_against};

/// Records an OpenTelemetry SDK's batch processor exports at once, at most.
const SDK_BATCH: usize = 512;
/// Connections the one-record exports and one-log writes come from, one
/// call in flight each.
const SMALL_SENDERS: usize = 16;

/// An export of `count` records of job run `run`, as a CI runner's SDK
/// sends them: the run id and service name on the resource, the message
/// as the body, the stream as an attribute.
fn export(run: Uuid, count: usize, bytes: usize) -> ExportLogsServiceRequest {
    let text = |value: String| Some(AnyValue { value: Some(any_value::Value::StringValue(value)) });
    let attribute = |key: &str, value: String| KeyValue { key: key.into(), value: text(value) };
    let records = (0..count)
        .map(|index| LogRecord {
            severity_number: 9,
            body: text(message(bytes, index)),
            attributes: vec![attribute("log.iostream", "stdout".into())],
            ..Default::default()
        })
        .collect();
    let resource = vec![attribute("service.name", "runner".into()), attribute("cicd.pipeline.run.id", run.to_string())];
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource { attributes: resource, ..Default::default() }),
            scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
            ..Default::default()
        }],
    }
}

/// The logs `export` becomes, as IngestLogs entries: the same message,
/// level, stream, source and metadata, so that both store the same rows.
fn converted(run: Uuid, count: usize, bytes: usize) -> Vec<pb::LogEntry> {
    let text = |value: &str| prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(value.into())) };
    let metadata = prost_types::Struct {
        fields: [
            ("log.iostream", text("stdout")),
            ("resource.service.name", text("runner")),
            ("resource.cicd.pipeline.run.id", text(&run.to_string())),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect(),
    };
    (0..count)
        .map(|index| pb::LogEntry {
            job_run_id: run.to_string(),
            level: pb::LogLevel::Info.into(),
            stream: pb::LogStream::Stdout.into(),
            source: "runner".into(),
            message: message(bytes, index),
            metadata: Some(metadata.clone()),
            ..Default::default()
        })
        .collect()
}

/// OTLP/gRPC exports of `count` records: `connections` connections with
/// `in_flight` exports each, one job run per connection.
async fn grpc_exports(server: &Server, args: &Args, connections: usize, in_flight: usize, count: usize) -> Measured {
    let bytes = args.message_bytes;
    drive(server, connections, args.seconds, move |channel, deadline, acks| async move {
        let run = Uuid::now_v7();
        let exporters: Vec<_> = (0..in_flight)
            .map(|_| {
                let (mut client, acks) = (LogsServiceClient::new(channel.clone()), acks.clone());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let request = export(run, count, bytes);
                        let sent = Instant::now();
                        let answer = client.export(request).await.expect("export").into_inner();
                        assert_eq!(answer.partial_success, None, "every record stored");
                        acks.lock().expect("acks").push((count, sent.elapsed()));
                    }
                })
            })
            .collect();
        for exporter in exporters {
            exporter.await.expect("exporter");
        }
    })
    .await
}

/// OTLP/HTTP protobuf exports of `count` records, as `grpc_exports` sends
/// them; each connection's exports in flight on HTTP/1.1 connections of
/// their own.
async fn http_exports(server: &Server, args: &Args, connections: usize, in_flight: usize, count: usize) -> Measured {
    let (bytes, url) = (args.message_bytes, server.otlp_http_logs());
    drive(server, connections, args.seconds, move |_channel, deadline, acks| {
        let url = url.clone();
        async move {
            let (run, client) = (Uuid::now_v7(), http_client(None));
            let exporters: Vec<_> = (0..in_flight)
                .map(|_| {
                    let (client, url, acks) = (client.clone(), url.clone(), acks.clone());
                    tokio::spawn(async move {
                        while Instant::now() < deadline {
                            let body = export(run, count, bytes).encode_to_vec();
                            let sent = Instant::now();
                            let answer = client
                                .post(&url)
                                .header("content-type", "application/x-protobuf")
                                .body(body)
                                .send()
                                .await
                                .expect("export");
                            assert_eq!(answer.status(), reqwest::StatusCode::OK);
                            answer.bytes().await.expect("the answer");
                            acks.lock().expect("acks").push((count, sent.elapsed()));
                        }
                    })
                })
                .collect();
            for exporter in exporters {
                exporter.await.expect("exporter");
            }
        }
    })
    .await
}

/// One-log WriteJobLog calls from `SMALL_SENDERS` connections.
async fn one_log_writes(server: &Server, args: &Args) -> Measured {
    let bytes = args.message_bytes;
    drive(server, SMALL_SENDERS, args.seconds, move |channel, deadline, acks| async move {
        let (mut client, run) = (JobLogServiceClient::new(channel), Uuid::now_v7());
        while Instant::now() < deadline {
            let log = entries(run, 1, bytes, ClientIds::None).pop();
            let sent = Instant::now();
            client.write_job_log(pb::WriteJobLogRequest { log }).await.expect("write");
            acks.lock().expect("acks").push((1, sent.elapsed()));
        }
    })
    .await
}

/// The throughput phases, each measured twice: in order, then in reverse
/// order (the database grows through the run, so a phase measured late
/// meets bigger indexes; the two passes cancel that out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// IngestLogs of the rows the exports become.
    SameLogs,
    /// IngestLogs of the same messages without metadata.
    Bare,
    Grpc,
    Http,
}

const PHASES: [Phase; 4] = [Phase::SameLogs, Phase::Bare, Phase::Grpc, Phase::Http];

async fn measure(phase: Phase, server: &Server, args: &Args) -> Measured {
    let (connections, bytes) = (args.batch_connections, args.message_bytes);
    match phase {
        Phase::SameLogs => ingest_streams(server, args, move |run| converted(run, SDK_BATCH, bytes)).await,
        Phase::Bare => ingest_streams(server, args, move |run| entries(run, SDK_BATCH, bytes, ClientIds::None)).await,
        Phase::Grpc => grpc_exports(server, args, connections, INGEST_IN_FLIGHT, SDK_BATCH).await,
        Phase::Http => http_exports(server, args, connections, INGEST_IN_FLIGHT, SDK_BATCH).await,
    }
}

/// Two measurements of a phase as one.
fn merge(first: Measured, second: Measured) -> Measured {
    let (logs, elapsed, mut acks, (cpu, peak)) = first;
    acks.extend(second.2);
    (logs + second.0, elapsed + second.1, acks, (cpu + second.3.0, peak.max(second.3.1)))
}

pub async fn otlp_mode(server: &Server, args: &Args) {
    let mut measured: [Option<Measured>; PHASES.len()] = Default::default();
    for phase in PHASES.iter().chain(PHASES.iter().rev()) {
        let at = PHASES.iter().position(|each| each == phase).unwrap_or_default();
        let this = measure(*phase, server, args).await;
        measured[at] = Some(match measured[at].take() {
            Some(before) => merge(before, this),
            None => this,
        });
    }
    let [same_logs, bare, grpc, http] = measured.map(|phase| phase.expect("each phase measured"));
    let in_flight = format!("{} x {INGEST_IN_FLIGHT} in flight", args.batch_connections);
    println!("  throughput phases run twice, in order and reversed; figures over both:");
    let same_logs =
        report_against(&format!("IngestLogs of {SDK_BATCH} the same logs, {in_flight}"), same_logs, args, None);
    let bare = report_against(&format!("IngestLogs of {SDK_BATCH}, no metadata, {in_flight}"), bare, args, None);
    let ratios = |rate: f64| {
        println!(
            "    ratio to IngestLogs of the same logs: {:.2}; without their metadata: {:.2}",
            rate / same_logs,
            rate / bare
        );
    };
    ratios(report_against(&format!("OTLP/gRPC Export of {SDK_BATCH}, {in_flight}"), grpc, args, None));
    ratios(report_against(&format!("OTLP/HTTP protobuf of {SDK_BATCH}, {in_flight}"), http, args, None));

    let name = format!("WriteJobLog of 1 log, {SMALL_SENDERS} connections");
    let one_log = Some(("one-log WriteJobLog", report_against(&name, one_log_writes(server, args).await, args, None)));
    let name = format!("OTLP/gRPC Export of 1 record, {SMALL_SENDERS} connections");
    report_against(&name, grpc_exports(server, args, SMALL_SENDERS, 1, 1).await, args, one_log);
    let name = format!("OTLP/HTTP protobuf of 1 record, {SMALL_SENDERS} connections");
    report_against(&name, http_exports(server, args, SMALL_SENDERS, 1, 1).await, args, one_log);
}
