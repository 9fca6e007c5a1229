//! The OTLP LogsService: OpenTelemetry records onto logwell's model, each
//! field where the README's table says; records that break the model
//! rejected alone in partial_success.

use logwell::proto::opentelemetry::proto::collector::logs::v1::logs_service_client::LogsServiceClient;
use logwell::proto::opentelemetry::proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use logwell::proto::opentelemetry::proto::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use logwell::proto::opentelemetry::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use logwell::proto::opentelemetry::proto::resource::v1::Resource;
use logwell::proto::v1::{self as pb};
use uuid::Uuid;

use crate::conformance;
use crate::helpers::{Backend, TestServer, assert_invalid};

conformance!(
    records_map_onto_the_model_and_bad_ones_are_rejected_alone,
    a_record_past_the_limits_is_rejected_alone,
    an_empty_export_is_refused
);

fn text(value: &str) -> AnyValue {
    AnyValue { value: Some(Value::StringValue(value.into())) }
}

fn attribute(key: &str, value: AnyValue) -> KeyValue {
    KeyValue { key: key.into(), value: Some(value) }
}

fn resource_logs(
    resource: Vec<KeyValue>,
    scope: Option<InstrumentationScope>,
    records: Vec<LogRecord>,
) -> ResourceLogs {
    ResourceLogs {
        resource: Some(Resource { attributes: resource, ..Default::default() }),
        scope_logs: vec![ScopeLogs { scope, log_records: records, ..Default::default() }],
        ..Default::default()
    }
}

async fn export(server: &TestServer, resource_logs: Vec<ResourceLogs>) -> ExportLogsServiceResponse {
    let request = ExportLogsServiceRequest { resource_logs };
    LogsServiceClient::new(server.channel.clone()).export(request).await.expect("export").into_inner()
}

async fn logs_of(server: &TestServer, filter: pb::LogFilter) -> Vec<pb::Log> {
    let request = pb::ListLogsRequest { filter: Some(filter), page_size: 100, ..Default::default() };
    server.query().list_logs(request).await.expect("list").into_inner().logs
}

fn metadata(log: &pb::Log, key: &str) -> Option<prost_types::value::Kind> {
    log.metadata.as_ref()?.fields.get(key)?.kind.clone()
}

fn string(value: &str) -> Option<prost_types::value::Kind> {
    Some(prost_types::value::Kind::StringValue(value.into()))
}

async fn records_map_onto_the_model_and_bad_ones_are_rejected_alone(backend: Backend) {
    let server = TestServer::start(backend).await;
    let task = Uuid::now_v7();
    let at = 1_700_000_000_123_456_789_u64;
    let service = vec![
        attribute("service.name", text("api")),
        attribute("service.instance.id", text("pod-1")),
        attribute("host.name", text("h1")),
    ];
    let scope = Some(InstrumentationScope { name: "app.http".into(), version: "1.2".into(), ..Default::default() });
    let structured = AnyValue {
        value: Some(Value::KvlistValue(KeyValueList {
            values: vec![
                attribute("event", text("slow")),
                attribute("ms", AnyValue { value: Some(Value::IntValue(1500)) }),
            ],
        })),
    };
    let system = vec![
        LogRecord {
            time_unix_nano: at,
            severity_number: 9,
            body: Some(text("started")),
            attributes: vec![attribute("http.route", text("/x"))],
            trace_id: (1..=16).collect(),
            span_id: (1..=8).collect(),
            flags: 1,
            ..Default::default()
        },
        LogRecord { severity_text: "WARNING".into(), body: Some(structured), ..Default::default() },
        LogRecord {
            body: Some(text("a task without its run")),
            attributes: vec![attribute("cicd.pipeline.task.run.id", text("t1"))],
            ..Default::default()
        },
        LogRecord { severity_number: 30, body: Some(text("off the scale")), ..Default::default() },
    ];
    let runner = vec![attribute("service.name", text("runner")), attribute("cicd.pipeline.run.id", text("build-42"))];
    let job = vec![
        LogRecord {
            severity_number: 17,
            body: Some(text("compile failed")),
            attributes: vec![attribute("log.iostream", text("stderr"))],
            ..Default::default()
        },
        LogRecord {
            severity_number: 5,
            body: Some(text("task step")),
            attributes: vec![attribute("cicd.pipeline.task.run.id", text(&task.to_string()))],
            ..Default::default()
        },
    ];
    let answer =
        export(&server, vec![resource_logs(service, scope, system), resource_logs(runner.clone(), None, job)]).await;

    // The two bad records, each named with its reason; the rest stored.
    let partial = answer.partial_success.expect("partial success");
    assert_eq!(partial.rejected_log_records, 2, "{}", partial.error_message);
    for reason in [
        "resource_logs[0].scope_logs[0].log_records[2] has cicd.pipeline.task.run.id but no cicd.pipeline.run.id",
        "resource_logs[0].scope_logs[0].log_records[3] severity_number 30 is not 0 to 24",
    ] {
        assert!(partial.error_message.contains(reason), "{reason:?} in {}", partial.error_message);
    }

    let systems =
        logs_of(&server, pb::LogFilter { types: vec![pb::LogType::System.into()], ..Default::default() }).await;
    let messages: Vec<&str> = systems.iter().map(|log| log.message.as_str()).collect();
    assert_eq!(messages, ["started", r#"{"event":"slow","ms":1500}"#]);
    let started = &systems[0];
    assert_eq!(started.level, pb::LogLevel::Info as i32);
    assert_eq!(started.stream, pb::LogStream::System as i32);
    assert_eq!(started.source, "api/pod-1");
    let time = started.time.expect("time");
    assert_eq!((time.seconds, time.nanos), (1_700_000_000, 123_456_000), "to the microsecond");
    assert_eq!(metadata(started, "http.route"), string("/x"));
    assert_eq!(metadata(started, "resource.host.name"), string("h1"));
    assert_eq!(metadata(started, "otel.scope.name"), string("app.http"));
    assert_eq!(metadata(started, "otel.scope.version"), string("1.2"));
    assert_eq!(metadata(started, "trace_id"), string("0102030405060708090a0b0c0d0e0f10"));
    assert_eq!(metadata(started, "span_id"), string("0102030405060708"));
    assert_eq!(metadata(started, "trace_flags"), Some(prost_types::value::Kind::NumberValue(1.0)));
    assert_eq!(systems[1].level, pb::LogLevel::Warn as i32, "from severity_text");
    assert_eq!(metadata(&systems[1], "otel.severity_text"), string("WARNING"));

    // The run id "build-42" is no UUID: a stable one stands for it, and the
    // original stays in metadata.
    let jobs = logs_of(&server, pb::LogFilter { sources: vec!["runner".into()], ..Default::default() }).await;
    assert_eq!(jobs.len(), 2);
    let find = |message: &str| jobs.iter().find(|log| log.message == message).expect(message);
    let (failed, step) = (find("compile failed"), find("task step"));
    assert_eq!(
        (failed.r#type, failed.level, failed.stream),
        (pb::LogType::Job as i32, pb::LogLevel::Error as i32, pb::LogStream::Stderr as i32)
    );
    assert_eq!(metadata(failed, "resource.cicd.pipeline.run.id"), string("build-42"));
    assert_eq!((step.r#type, step.level), (pb::LogType::Task as i32, pb::LogLevel::Debug as i32));
    assert_eq!(step.task_run_id, task.to_string());
    assert_eq!(step.job_run_id, failed.job_run_id);
    let again = vec![LogRecord { body: Some(text("again")), ..Default::default() }];
    let answer = export(&server, vec![resource_logs(runner, None, again)]).await;
    assert_eq!(answer.partial_success, None, "every record stored");
    let run = pb::LogFilter { job_run_ids: vec![failed.job_run_id.clone()], ..Default::default() };
    assert_eq!(logs_of(&server, run).await.len(), 3, "the same run id, the same run");
}

async fn a_record_past_the_limits_is_rejected_alone(backend: Backend) {
    let server = TestServer::start(backend).await;
    // Nested past what protobuf decoding takes (and past the metadata
    // bound): the export is refused whole, as undecodable.
    let deep = (0..40).fold(text("bottom"), |inner, _| AnyValue {
        value: Some(Value::KvlistValue(KeyValueList { values: vec![attribute("in", inner)] })),
    });
    let too_deep =
        LogRecord { body: Some(text("too deep")), attributes: vec![attribute("nested", deep)], ..Default::default() };
    let request = ExportLogsServiceRequest { resource_logs: vec![resource_logs(Vec::new(), None, vec![too_deep])] };
    let status = LogsServiceClient::new(server.channel.clone()).export(request).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("recursion limit"), "{}", status.message());

    let long = "x".repeat(2 * 1024 * 1024);
    let records = vec![
        LogRecord {
            body: Some(text("not a UUID id")),
            attributes: vec![attribute("logwell.id", text("not-a-uuid"))],
            ..Default::default()
        },
        LogRecord { body: Some(text("fine")), ..Default::default() },
        LogRecord { body: Some(text(&long)), ..Default::default() },
    ];
    let answer = export(&server, vec![resource_logs(Vec::new(), None, records)]).await;
    let stored = logs_of(&server, pb::LogFilter::default()).await;
    // The bad id and the message past the 1 MiB bound (refused, as the
    // write services refuse it by default) go; the fine one is stored.
    let partial = answer.partial_success.expect("partial success");
    assert_eq!(partial.rejected_log_records, 2, "{}", partial.error_message);
    for field in ["log_records[0].id", "log_records[2].message"] {
        assert!(partial.error_message.contains(field), "{field} in {}", partial.error_message);
    }
    assert_eq!(stored.iter().map(|log| log.message.as_str()).collect::<Vec<_>>(), ["fine"], "nothing of the rejected");
}

/// An export of one record of job run `run`.
pub fn export_of(run: Uuid, message: &str) -> ExportLogsServiceRequest {
    let record = LogRecord {
        body: Some(text(message)),
        attributes: vec![attribute("cicd.pipeline.run.id", text(&run.to_string()))],
        ..Default::default()
    };
    ExportLogsServiceRequest { resource_logs: vec![resource_logs(Vec::new(), None, vec![record])] }
}

async fn an_empty_export_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let empty = ExportLogsServiceRequest { resource_logs: vec![ResourceLogs::default()] };
    let refusal = LogsServiceClient::new(server.channel.clone()).export(empty).await;
    assert_invalid(refusal, &["resource_logs"]);
}
