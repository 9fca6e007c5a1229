//! `opentelemetry.proto.collector.logs.v1.LogsService/Export` on logwell's
//! gRPC port: any OpenTelemetry SDK or Collector ships logs with no logwell
//! client.

use tonic::{Code, Request, Response, Status};

use super::Exports;
use crate::api::{ApiError, principal};
use crate::proto::opentelemetry::proto::collector::logs::v1::logs_service_server::LogsService;
use crate::proto::opentelemetry::proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};

/// Serves the OTLP LogsService.
#[derive(Clone)]
pub struct OtlpLogs {
    exports: Exports,
}

impl OtlpLogs {
    pub fn new(exports: Exports) -> OtlpLogs {
        OtlpLogs { exports }
    }
}

#[tonic::async_trait]
impl LogsService for OtlpLogs {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let principal = principal(&request)?;
        match self.exports.export(&principal, request.into_inner()).await {
            Ok(response) => Ok(Response::new(response)),
            Err(error) => Err(otlp_status(error)),
        }
    }
}

/// The status of a refused export. A full queue or a caller past its rate
/// is UNAVAILABLE with RetryInfo, which every OTLP/gRPC sender retries
/// after the delay; RESOURCE_EXHAUSTED would make some drop the data.
fn otlp_status(error: ApiError) -> Status {
    let status = Status::from(error);
    match status.code() {
        Code::ResourceExhausted => {
            Status::with_details(Code::Unavailable, status.message(), status.details().to_vec().into())
        }
        _ => status,
    }
}
