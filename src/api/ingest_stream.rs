//! LogIngestService: batches in on one stream, an answer per batch out once
//! it is committed. Many batches may be in flight; past that the server stops
//! reading and HTTP/2 flow control slows the producer.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::StatusExt;

use super::access::principal;
use super::error::ApiError;
use super::request_size::oversize;
use super::write::LogWriter;
use crate::auth::Principal;
use crate::ingest::WhenFull;
use crate::model::{LogType, Violations};
use crate::proto::v1 as pb;
use crate::proto::v1::log_ingest_service_server::LogIngestService;

/// Batches of one stream being validated or committed at once, at most.
const IN_FLIGHT_BATCHES: usize = 64;

/// Serves LogIngestService.
#[derive(Clone)]
pub struct LogIngester {
    writer: LogWriter,
    /// Cancelled when the server starts shutting down: streams then stop
    /// reading, answer the batches they have read, and end.
    stopping: CancellationToken,
}

impl LogIngester {
    pub fn new(writer: LogWriter, stopping: CancellationToken) -> Self {
        LogIngester { writer, stopping }
    }

    async fn answer(&self, principal: &Principal, batch: pb::IngestLogsRequest) -> pb::IngestLogsResponse {
        let batch_number = batch.batch_number;
        let result = match log_type(batch.r#type) {
            Ok(log_type) => self.writer.write_batch(principal, log_type, batch.logs, WhenFull::Wait).await,
            Err(violations) => Err(violations.into()),
        };
        match result {
            Ok(receipts) => pb::IngestLogsResponse { batch_number, receipts, refusal: None },
            Err(error) => pb::IngestLogsResponse { batch_number, receipts: Vec::new(), refusal: Some(refusal(error)) },
        }
    }
}

fn log_type(raw: i32) -> Result<LogType, Violations> {
    match pb::LogType::try_from(raw) {
        Ok(pb::LogType::System) => Ok(LogType::System),
        Ok(pb::LogType::Job) => Ok(LogType::Job),
        Ok(pb::LogType::Task) => Ok(LogType::Task),
        Ok(pb::LogType::Unspecified) | Err(_) => {
            let mut violations = Violations::default();
            violations
                .add("type", format!("{raw} is not a log type: use LOG_TYPE_SYSTEM, LOG_TYPE_JOB or LOG_TYPE_TASK"));
            Err(violations)
        }
    }
}

/// The same verdict a write service would give, as a per-batch answer.
fn refusal(error: ApiError) -> pb::BatchRefusal {
    let status = Status::from(error);
    let field_violations = status
        .get_details_bad_request()
        .map(|details| details.field_violations)
        .unwrap_or_default()
        .into_iter()
        .map(|violation| pb::FieldViolation { field: violation.field, description: violation.description })
        .collect();
    pb::BatchRefusal {
        code: status.code() as i32,
        message: status.message().to_string(),
        field_violations,
        retryable: matches!(status.code(), Code::Unavailable | Code::ResourceExhausted | Code::Aborted),
    }
}

#[tonic::async_trait]
impl LogIngestService for LogIngester {
    type IngestLogsStream = ReceiverStream<Result<pb::IngestLogsResponse, Status>>;

    async fn ingest_logs(
        &self,
        request: Request<Streaming<pb::IngestLogsRequest>>,
    ) -> Result<Response<Self::IngestLogsStream>, Status> {
        let principal = principal(&request)?;
        let mut batches = request.into_inner();
        let (answers, receiver) = mpsc::channel(IN_FLIGHT_BATCHES);
        let ingester = self.clone();
        tokio::spawn(async move {
            let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_BATCHES));
            // Why the stream ends early, told after the answers in flight.
            let mut ending = None;
            loop {
                // Not reading while the batches in flight are many is what
                // lets flow control slow the producer.
                let Ok(slot) = in_flight.clone().acquire_owned().await else { return };
                let message = tokio::select! {
                    biased;
                    () = ingester.stopping.cancelled() => {
                        let then = "resend the batches that have no answer, to another server";
                        ending = Some(ApiError::ShuttingDown { then }.into());
                        break;
                    }
                    message = batches.message() => message,
                };
                let batch = match message {
                    Ok(Some(batch)) => batch,
                    Ok(None) => break,
                    Err(status) => {
                        // A batch that does not decode or is too large ends the
                        // stream with its status.
                        tracing::debug!(%status, "ingest stream ends on a bad request");
                        ending = Some(oversize(&status).map_or(status, Status::from));
                        break;
                    }
                };
                let (ingester, answers, principal) = (ingester.clone(), answers.clone(), principal.clone());
                tokio::spawn(async move {
                    let answer = ingester.answer(&principal, batch).await;
                    let _ = answers.send(Ok(answer)).await;
                    drop(slot);
                });
            }
            // Every answer goes out before the stream ends.
            let _ = in_flight.acquire_many(IN_FLIGHT_BATCHES as u32).await;
            if let Some(status) = ending {
                let _ = answers.send(Err(status)).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}
