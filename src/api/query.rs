//! LogQueryService: filtered listings with keyset paging, single logs, and
//! counts.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::access::principal;
use super::convert::{context_draft, count_draft, counts_to_proto, filter_draft, log_to_proto, query_draft};
use super::error::ApiError;
use super::page_token;
use crate::auth::Principal;
use crate::model::{Cursor, Log, LogFilter, LogQuery, SortOrder, Violations, required_id};
use crate::proto::v1 as pb;
use crate::proto::v1::log_query_service_server::LogQueryService;
use crate::query::context::context;
use crate::query::count::{CountError, count};
use crate::query::export::{DEFAULT_CHUNK, MAX_CHUNK, export};
use crate::store::LogStore;

/// Serves LogQueryService.
#[derive(Clone)]
pub struct LogReader {
    store: Arc<dyn LogStore>,
    /// Cancelled when the server starts shutting down: exports then end,
    /// telling the client to resume elsewhere.
    stopping: CancellationToken,
}

impl LogReader {
    pub fn new(store: Arc<dyn LogStore>, stopping: CancellationToken) -> Self {
        LogReader { store, stopping }
    }

    async fn list(
        &self,
        principal: &Principal,
        mut request: pb::ListLogsRequest,
    ) -> Result<pb::ListLogsResponse, ApiError> {
        let mut violations = Violations::default();
        let page_token = std::mem::take(&mut request.page_token);
        let draft = query_draft(request, &mut violations);
        let (filter, order, page_size) = violations.judge(draft.validate())?;
        principal.may_read(filter.job_run_id(), filter.task_run_id())?;
        let after = if page_token.is_empty() {
            None
        } else {
            Some(
                page_token::decode(&page_token, &filter, order)
                    .map_err(|reason| Violations::one("page_token", reason))?,
            )
        };
        // One row more than a page tells whether another page follows.
        let query = LogQuery { filter, order, after, limit: page_size + 1 };
        let mut logs = self.store.list(&query).await?;
        let next_page_token = if logs.len() > page_size {
            logs.truncate(page_size);
            logs.last()
                .map(|last| page_token::encode(Cursor::of(last, query.filter.ordering()), &query.filter, order))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::ListLogsResponse { logs: logs.into_iter().map(log_to_proto).collect(), next_page_token })
    }

    async fn count(
        &self,
        principal: &Principal,
        request: pb::CountLogsRequest,
    ) -> Result<pb::CountLogsResponse, ApiError> {
        let mut violations = Violations::default();
        let draft = count_draft(request, &mut violations);
        let request = violations.judge(draft.validate())?;
        principal.may_read(request.filter.job_run_id(), request.filter.task_run_id())?;
        match count(self.store.as_ref(), &request).await {
            Ok(counts) => Ok(counts_to_proto(counts)),
            Err(CountError::Store(error)) => Err(error.into()),
            Err(too_many @ CountError::TooManyBuckets { .. }) => {
                let mut violations = Violations::default();
                violations.add("bucket_width", format!("{too_many}: widen it, or narrow the filter's time range"));
                Err(violations.into())
            }
        }
    }

    async fn context(
        &self,
        principal: &Principal,
        request: pb::GetLogContextRequest,
    ) -> Result<pb::GetLogContextResponse, ApiError> {
        let request = context_draft(request).validate()?;
        match context(self.store.as_ref(), &request).await? {
            // As with GetLog, a log outside a job-run token's reach is absent.
            Some(found) if principal.may_read(found.log.owner.job_run_id(), found.log.owner.task_run_id()).is_ok() => {
                // A token bound to one task run sees only that task's neighbours.
                let readable = |log: &crate::model::Log| {
                    principal.may_read(log.owner.job_run_id(), log.owner.task_run_id()).is_ok()
                };
                let logs = |logs: Vec<crate::model::Log>| logs.into_iter().filter(readable).map(log_to_proto).collect();
                Ok(pb::GetLogContextResponse {
                    before: logs(found.before),
                    log: Some(log_to_proto(found.log)),
                    after: logs(found.after),
                })
            }
            Some(_) | None => Err(ApiError::NotFound("no such log".into())),
        }
    }

    /// The export's filter, starting point and chunk size.
    fn export_request(
        principal: &Principal,
        request: pb::ExportLogsRequest,
    ) -> Result<(LogFilter, Option<Cursor>, usize), ApiError> {
        let mut violations = Violations::default();
        let draft = request.filter.map(|filter| filter_draft(filter, "filter", &mut violations)).unwrap_or_default();
        let filter = draft.validate("filter.", &mut violations);
        let chunk = match usize::try_from(request.chunk_size) {
            Ok(0) => DEFAULT_CHUNK,
            Ok(size) if size <= MAX_CHUNK => size,
            _ => {
                let bound =
                    format!("{} is out of range: 0 (default {DEFAULT_CHUNK}) to {MAX_CHUNK}", request.chunk_size);
                violations.add("chunk_size", bound);
                DEFAULT_CHUNK
            }
        };
        let after = match request.cursor.as_str() {
            "" => None,
            cursor => match page_token::decode(cursor, &filter, SortOrder::Ascending) {
                Ok(cursor) => Some(cursor),
                Err(reason) => {
                    violations.add("cursor", reason);
                    None
                }
            },
        };
        let validated = violations.into_result((filter, after, chunk))?;
        principal.may_read(validated.0.job_run_id(), validated.0.task_run_id())?;
        Ok(validated)
    }

    async fn get(&self, principal: &Principal, request: pb::GetLogRequest) -> Result<pb::GetLogResponse, ApiError> {
        let id = required_id("id", &request.id)?;
        match self.store.get(id).await? {
            // A log outside a job-run token's reach is as absent as one never
            // written: the answer must not tell them apart.
            Some(log) if principal.may_read(log.owner.job_run_id(), log.owner.task_run_id()).is_ok() => {
                Ok(pb::GetLogResponse { log: Some(log_to_proto(log)) })
            }
            Some(_) | None => Err(ApiError::NotFound(format!("no log has id {id}"))),
        }
    }
}

/// Bytes of logs per export message, about: well under the 4 MiB most
/// gRPC clients accept by default.
const EXPORT_MESSAGE_BYTES: usize = 1024 * 1024;

/// A chunk as messages of about `EXPORT_MESSAGE_BYTES`, each with the
/// cursor of its last log.
fn export_messages(logs: Vec<Log>, filter: &LogFilter) -> Vec<pb::ExportLogsResponse> {
    use prost::Message;
    let ordering = filter.ordering();
    let mut messages = Vec::new();
    let (mut current, mut bytes, mut last) = (Vec::new(), 0, None);
    for log in logs {
        let cursor = Cursor::of(&log, ordering);
        let proto = log_to_proto(log);
        bytes += proto.encoded_len();
        current.push(proto);
        last = Some(cursor);
        if bytes >= EXPORT_MESSAGE_BYTES {
            let cursor = page_token::encode(cursor, filter, SortOrder::Ascending);
            messages.push(pb::ExportLogsResponse { logs: std::mem::take(&mut current), cursor });
            bytes = 0;
        }
    }
    if let (false, Some(cursor)) = (current.is_empty(), last) {
        messages.push(pb::ExportLogsResponse {
            logs: current,
            cursor: page_token::encode(cursor, filter, SortOrder::Ascending),
        });
    }
    messages
}

#[tonic::async_trait]
impl LogQueryService for LogReader {
    type ExportLogsStream = ReceiverStream<Result<pb::ExportLogsResponse, Status>>;

    async fn export_logs(
        &self,
        request: Request<pb::ExportLogsRequest>,
    ) -> Result<Response<Self::ExportLogsStream>, Status> {
        let principal = principal(&request)?;
        let (filter, after, chunk) = Self::export_request(&principal, request.into_inner())?;
        let mut chunks = export(self.store.clone(), filter.clone(), after, chunk);
        let (sender, receiver) = mpsc::channel(1);
        let stopping = self.stopping.clone();
        tokio::spawn(async move {
            loop {
                let chunk = tokio::select! {
                    chunk = chunks.recv() => chunk,
                    () = stopping.cancelled() => {
                        let then = "export again, on another server, with the last cursor you received";
                        // A slow client's wait is bounded by the shutdown's grace period.
                        let _ = sender.send(Err(ApiError::ShuttingDown { then }.into())).await;
                        return;
                    }
                };
                let Some(chunk) = chunk else { return };
                let messages = match chunk {
                    Ok(logs) => export_messages(logs, &filter).into_iter().map(Ok).collect(),
                    Err(error) => vec![Err(Status::from(ApiError::from(error)))],
                };
                for message in messages {
                    if sender.send(message).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn list_logs(&self, request: Request<pb::ListLogsRequest>) -> Result<Response<pb::ListLogsResponse>, Status> {
        Ok(Response::new(self.list(&principal(&request)?, request.into_inner()).await?))
    }

    async fn get_log(&self, request: Request<pb::GetLogRequest>) -> Result<Response<pb::GetLogResponse>, Status> {
        Ok(Response::new(self.get(&principal(&request)?, request.into_inner()).await?))
    }

    async fn get_log_context(
        &self,
        request: Request<pb::GetLogContextRequest>,
    ) -> Result<Response<pb::GetLogContextResponse>, Status> {
        Ok(Response::new(self.context(&principal(&request)?, request.into_inner()).await?))
    }

    async fn count_logs(
        &self,
        request: Request<pb::CountLogsRequest>,
    ) -> Result<Response<pb::CountLogsResponse>, Status> {
        Ok(Response::new(self.count(&principal(&request)?, request.into_inner()).await?))
    }
}
