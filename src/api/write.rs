//! The three write services. The log type follows from the service; entries
//! that carry another type's fields are refused, naming the field.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::access::principal;
use super::convert::{log_draft, receipt_to_proto};
use super::error::ApiError;
use crate::auth::Principal;
use crate::ingest::{Ingest, WhenFull};
use crate::model::{Limits, LogType, NewLog, Violations};
use crate::proto::v1 as pb;
use crate::proto::v1::job_log_service_server::JobLogService;
use crate::proto::v1::system_log_service_server::SystemLogService;
use crate::proto::v1::task_log_service_server::TaskLogService;
use crate::rate_limit::RateLimiter;

/// Serves SystemLogService, JobLogService and TaskLogService.
#[derive(Clone)]
pub struct LogWriter {
    ingest: Arc<Ingest>,
    limits: Limits,
    rate: Option<Arc<RateLimiter>>,
}

impl LogWriter {
    pub fn new(ingest: Arc<Ingest>, limits: Limits, rate: Option<Arc<RateLimiter>>) -> Self {
        LogWriter { ingest, limits, rate }
    }

    /// Charges `logs` to the caller's write rate: refuses at once, or waits
    /// (so that a stream's flow control slows its producer).
    async fn charge(&self, principal: &Principal, logs: usize, when_full: WhenFull) -> Result<(), ApiError> {
        let Some(rate) = &self.rate else { return Ok(()) };
        let caller = principal.caller();
        loop {
            match rate.take(&caller, logs, Instant::now()) {
                Ok(()) => return Ok(()),
                Err(retry_after) if when_full == WhenFull::Wait => tokio::time::sleep(retry_after).await,
                Err(retry_after) => {
                    return Err(ApiError::RateLimited { caller, logs_per_second: rate.logs_per_second, retry_after });
                }
            }
        }
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
        let log = validate_entry(entry, log_type, "log", &self.limits)?;
        principal.may_write(&log.owner, || "log.job_run_id".into())?;
        self.charge(principal, 1, WhenFull::Refuse).await?;
        let receipts = self.ingest.write(vec![log], WhenFull::Refuse).await?;
        receipts.into_iter().next().map(receipt_to_proto).ok_or(ApiError::Internal("the store acknowledged no log"))
    }

    /// Validates and stores one batch of `log_type`; what happens when the
    /// write queue is full is the caller's choice.
    pub(super) async fn write_batch(
        &self,
        principal: &Principal,
        log_type: LogType,
        entries: Vec<pb::LogEntry>,
        when_full: WhenFull,
    ) -> Result<Vec<pb::LogReceipt>, ApiError> {
        let mut violations = Violations::default();
        if entries.is_empty() {
            violations.add("logs", "must hold at least one entry");
        } else if entries.len() > self.limits.batch_logs {
            let (count, limit) = (entries.len(), self.limits.batch_logs);
            violations.add("logs", format!("holds {count} entries; at most {limit} are allowed"));
        }
        if !violations.is_empty() {
            return Err(violations.into());
        }
        let mut logs = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            match validate_entry(entry, log_type, &format!("logs[{index}]"), &self.limits) {
                Ok(log) => logs.push(log),
                Err(entry_violations) => violations.merge(entry_violations),
            }
        }
        let mut first_with_id = std::collections::HashMap::new();
        for (index, log) in logs.iter().enumerate().filter(|(_, log)| log.client_id) {
            if let Some(first) = first_with_id.insert(log.id, index) {
                violations.add(format!("logs[{index}].id"), format!("repeats logs[{first}].id; ids name one log"));
            }
        }
        if !violations.is_empty() {
            return Err(violations.into());
        }
        for (index, log) in logs.iter().enumerate() {
            principal.may_write(&log.owner, || format!("logs[{index}].job_run_id"))?;
        }
        self.charge(principal, logs.len(), when_full).await?;
        let receipts = self.ingest.write(logs, when_full).await?;
        Ok(receipts.into_iter().map(receipt_to_proto).collect())
    }
}

/// Decodes and validates one entry; violations are named under `prefix`.
pub(super) fn validate_entry(
    entry: pb::LogEntry,
    log_type: LogType,
    prefix: &str,
    limits: &Limits,
) -> Result<NewLog, Violations> {
    let mut decoding = Violations::default();
    let draft = log_draft(entry, &mut decoding);
    decoding.judge(draft.validate(log_type, Utc::now(), limits)).map_err(|violations| violations.under(prefix))
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
