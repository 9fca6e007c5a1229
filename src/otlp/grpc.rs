//! `opentelemetry.proto.collector.logs.v1.LogsService/Export` on logwell's
//! gRPC port: any OpenTelemetry SDK or Collector ships logs with no logwell
//! client. Answered once the records are committed; records that break the
//! model are rejected alone, in `partial_success`.

use tonic::{Code, Request, Response, Status};

use super::convert::{Record, records};
use crate::api::{ApiError, principal};
use crate::ingest::{Admission, AdmissionError, WhenFull};
use crate::model::Violations;
use crate::proto::opentelemetry::proto::collector::logs::v1::logs_service_server::LogsService;
use crate::proto::opentelemetry::proto::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};

/// Rejected records whose reasons `partial_success` spells out, at most.
const REASONS_SPELLED_OUT: usize = 20;

/// Serves the OTLP LogsService.
#[derive(Clone)]
pub struct OtlpLogs {
    admission: Admission,
}

impl OtlpLogs {
    pub fn new(admission: Admission) -> OtlpLogs {
        OtlpLogs { admission }
    }
}

#[tonic::async_trait]
impl LogsService for OtlpLogs {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let principal = principal(&request)?;
        let records = records(request.into_inner());
        if records.is_empty() {
            let mut violations = Violations::default();
            violations.add("resource_logs", "holds no log records");
            return Err(ApiError::InvalidArgument(violations).into());
        }
        let mut rejected = Vec::new();
        let mut logs = Vec::with_capacity(records.len());
        for Record { place, log } in records {
            match log {
                Ok((log_type, log)) => logs.push((place, log_type, log)),
                Err(reason) => rejected.push(format!("{place} {reason}")),
            }
        }
        let admitted = self
            .admission
            .write_each(&principal, "resource_logs", logs, WhenFull::Refuse)
            .await
            .map_err(otlp_status)?;
        rejected.extend(admitted.refused.iter().map(Violations::to_string));
        let partial_success = (!rejected.is_empty()).then(|| ExportLogsPartialSuccess {
            rejected_log_records: rejected.len() as i64,
            error_message: reasons(&rejected),
        });
        Ok(Response::new(ExportLogsServiceResponse { partial_success }))
    }
}

/// The rejected records' reasons, the first ones spelled out.
fn reasons(rejected: &[String]) -> String {
    let mut message = rejected.iter().take(REASONS_SPELLED_OUT).cloned().collect::<Vec<_>>().join("; ");
    if rejected.len() > REASONS_SPELLED_OUT {
        message.push_str(&format!("; and {} more", rejected.len() - REASONS_SPELLED_OUT));
    }
    message
}

/// The status of a refused export. A full queue or a caller past its rate
/// is UNAVAILABLE with RetryInfo, which every OTLP sender retries after the
/// delay; RESOURCE_EXHAUSTED would make some drop the data.
fn otlp_status(error: AdmissionError) -> Status {
    let status = Status::from(ApiError::from(error));
    match status.code() {
        Code::ResourceExhausted => {
            Status::with_details(Code::Unavailable, status.message(), status.details().to_vec().into())
        }
        _ => status,
    }
}
