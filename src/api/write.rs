//! The three write services. The log type follows from the service; entries
//! that carry another type's fields are refused, naming the field.

use tonic::{Request, Response, Status};

use super::access::principal;
use super::convert::{log_draft, receipt_to_proto};
use super::error::ApiError;
use crate::auth::Principal;
use crate::ingest::{Admission, Naming, Submitted, WhenFull};
use crate::model::{LogType, Violations};
use crate::proto::v1 as pb;
use crate::proto::v1::job_log_service_server::JobLogService;
use crate::proto::v1::system_log_service_server::SystemLogService;
use crate::proto::v1::task_log_service_server::TaskLogService;

/// Serves SystemLogService, JobLogService and TaskLogService.
#[derive(Clone)]
pub struct LogWriter {
    admission: Admission,
}

impl LogWriter {
    pub fn new(admission: Admission) -> Self {
        LogWriter { admission }
    }

    async fn write_one(
        &self,
        principal: &Principal,
        log_type: LogType,
        entry: Option<pb::LogEntry>,
    ) -> Result<pb::LogReceipt, ApiError> {
        let Some(entry) = entry else {
            let mut violations = Violations::default();
            violations.add("log", "is required");
            return Err(violations.into());
        };
        let logs = vec![submitted(entry)];
        let receipts = self.admission.write(principal, log_type, logs, Naming::One, WhenFull::Refuse).await?;
        receipts.into_iter().next().map(receipt_to_proto).ok_or(ApiError::Internal("the store acknowledged no log"))
    }

    /// Stores one batch of `log_type`; what happens when the write queue is
    /// full is the caller's choice.
    pub(super) async fn write_batch(
        &self,
        principal: &Principal,
        log_type: LogType,
        entries: Vec<pb::LogEntry>,
        when_full: WhenFull,
    ) -> Result<Vec<pb::LogReceipt>, ApiError> {
        let logs = entries.into_iter().map(submitted).collect();
        let receipts = self.admission.write(principal, log_type, logs, Naming::Batch, when_full).await?;
        Ok(receipts.into_iter().map(receipt_to_proto).collect())
    }
}

/// An entry decoded into a draft, with what decoding found wrong.
pub(super) fn submitted(entry: pb::LogEntry) -> Submitted {
    let mut decoding = Violations::default();
    let draft = log_draft(entry, &mut decoding);
    Submitted { draft, decoding }
}

#[tonic::async_trait]
impl SystemLogService for LogWriter {
    async fn write_system_log(
        &self,
        request: Request<pb::WriteSystemLogRequest>,
    ) -> Result<Response<pb::WriteSystemLogResponse>, Status> {
        let receipt = self.write_one(&principal(&request)?, LogType::System, request.into_inner().log).await?;
        Ok(Response::new(pb::WriteSystemLogResponse { receipt: Some(receipt) }))
    }

    async fn write_system_logs(
        &self,
        request: Request<pb::WriteSystemLogsRequest>,
    ) -> Result<Response<pb::WriteSystemLogsResponse>, Status> {
        let receipts = self
            .write_batch(&principal(&request)?, LogType::System, request.into_inner().logs, WhenFull::Refuse)
            .await?;
        Ok(Response::new(pb::WriteSystemLogsResponse { receipts }))
    }
}

#[tonic::async_trait]
impl JobLogService for LogWriter {
    async fn write_job_log(
        &self,
        request: Request<pb::WriteJobLogRequest>,
    ) -> Result<Response<pb::WriteJobLogResponse>, Status> {
        let receipt = self.write_one(&principal(&request)?, LogType::Job, request.into_inner().log).await?;
        Ok(Response::new(pb::WriteJobLogResponse { receipt: Some(receipt) }))
    }

    async fn write_job_logs(
        &self,
        request: Request<pb::WriteJobLogsRequest>,
    ) -> Result<Response<pb::WriteJobLogsResponse>, Status> {
        let receipts =
            self.write_batch(&principal(&request)?, LogType::Job, request.into_inner().logs, WhenFull::Refuse).await?;
        Ok(Response::new(pb::WriteJobLogsResponse { receipts }))
    }
}

#[tonic::async_trait]
impl TaskLogService for LogWriter {
    async fn write_task_log(
        &self,
        request: Request<pb::WriteTaskLogRequest>,
    ) -> Result<Response<pb::WriteTaskLogResponse>, Status> {
        let receipt = self.write_one(&principal(&request)?, LogType::Task, request.into_inner().log).await?;
        Ok(Response::new(pb::WriteTaskLogResponse { receipt: Some(receipt) }))
    }

    async fn write_task_logs(
        &self,
        request: Request<pb::WriteTaskLogsRequest>,
    ) -> Result<Response<pb::WriteTaskLogsResponse>, Status> {
        let receipts =
            self.write_batch(&principal(&request)?, LogType::Task, request.into_inner().logs, WhenFull::Refuse).await?;
        Ok(Response::new(pb::WriteTaskLogsResponse { receipts }))
    }
}
