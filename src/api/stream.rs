//! LogStreamService: follows a job run or the system logs (StreamLogs), or
//! every log matching a filter across runs (FollowLogs), live. The follow
//! loops live in `live`; this edge validates requests, turns the loops'
//! events into messages and positions into cursors.

use std::sync::Arc;

use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use super::access::principal;
use super::convert::{
    filter_draft, follow_draft, job_run_to_proto, log_to_proto, log_type_to_proto, time_from_proto, time_to_proto,
};
use super::encoded::Encoded;
use super::error::ApiError;
use super::follow_cursor;
use crate::live::{AcrossEvent, AcrossFollow, AcrossStart, EventStream, FollowError, FollowEvent, Followers};
use crate::model::Violations;
use crate::proto::v1 as pb;
use crate::proto::v1::stream_logs_response::Event;
use crate::proto::v1_encoded_streams::log_stream_service_server::LogStreamService;
use crate::store::LogStore;

/// Serves LogStreamService.
#[derive(Clone)]
pub struct LogStreamer {
    followers: Followers,
    store: Arc<dyn LogStore>,
    /// The database's identity, which cursors carry: read at the first
    /// follow across runs, since the database may be away at start.
    database: Arc<tokio::sync::OnceCell<String>>,
}

impl LogStreamer {
    pub fn new(followers: Followers, store: Arc<dyn LogStore>) -> Self {
        LogStreamer { followers, store, database: Arc::default() }
    }

    async fn database(&self) -> Result<String, ApiError> {
        Ok(self.database.get_or_try_init(|| self.store.database_identity()).await?.clone())
    }

    /// A validated follow across runs.
    async fn across_follow(&self, request: pb::FollowLogsRequest) -> Result<(AcrossFollow, String), ApiError> {
        use pb::follow_logs_request::Start;
        let mut violations = Violations::default();
        let draft = request.filter.map(|filter| filter_draft(filter, "filter", &mut violations)).unwrap_or_default();
        let filter = draft.validate("filter.", &mut violations);
        let database = self.database().await?;
        let start = match request.start {
            None | Some(Start::FromNow(_)) => AcrossStart::FromNow,
            Some(Start::FromStart(_)) => AcrossStart::FromStart,
            Some(Start::FromTime(time)) => {
                time_from_proto(&mut violations, "from_time", time).map_or(AcrossStart::FromNow, AcrossStart::FromTime)
            }
            Some(Start::AfterCursor(cursor)) => match follow_cursor::decode(&cursor, &database) {
                Ok((position, reached_at)) => AcrossStart::After { position, reached_at },
                Err(reason) => {
                    violations.add("after_cursor", reason);
                    AcrossStart::FromNow
                }
            },
        };
        violations.into_result(())?;
        Ok((AcrossFollow { filter, start }, database))
    }
}

/// A follow's events as messages.
type Messages = tokio_stream::adapters::Map<
    EventStream<FollowEvent>,
    fn(Result<FollowEvent, FollowError>) -> Result<Encoded<pb::StreamLogsResponse>, Status>,
>;

/// A follow across runs' events as messages.
type AcrossMessages = tokio_stream::adapters::Map<
    EventStream<AcrossEvent>,
    Box<dyn FnMut(Result<AcrossEvent, FollowError>) -> Result<Encoded<pb::FollowLogsResponse>, Status> + Send>,
>;

#[tonic::async_trait]
impl LogStreamService for LogStreamer {
    type StreamLogsStream = Messages;
    type FollowLogsStream = AcrossMessages;

    async fn follow_logs(
        &self,
        request: Request<pb::FollowLogsRequest>,
    ) -> Result<Response<Self::FollowLogsStream>, Status> {
        let principal = principal(&request)?;
        let (follow, database) = self.across_follow(request.into_inner()).await?;
        let events = self.followers.follow_across(&principal, follow).await.map_err(ApiError::from)?;
        let to_message = move |event: Result<AcrossEvent, FollowError>| {
            Ok(across_message(event.map_err(ApiError::from)?, &database))
        };
        Ok(Response::new(events.map(Box::new(to_message) as Box<_>)))
    }

    async fn stream_logs(
        &self,
        request: Request<pb::StreamLogsRequest>,
    ) -> Result<Response<Self::StreamLogsStream>, Status> {
        let principal = principal(&request)?;
        let mut violations = Violations::default();
        let draft = follow_draft(request.into_inner(), &mut violations);
        let follow = violations.judge(draft.validate()).map_err(ApiError::from)?;
        let events = self.followers.follow(principal, follow).await.map_err(ApiError::from)?;
        Ok(Response::new(events.map(to_message as fn(_) -> _)))
    }
}

/// The message of one follow event, or the status that ends the stream.
fn to_message(event: Result<FollowEvent, FollowError>) -> Result<Encoded<pb::StreamLogsResponse>, Status> {
    Ok(message(event.map_err(ApiError::from)?))
}

/// The message of one event of a follow across runs, in `database`.
fn across_message(event: AcrossEvent, database: &str) -> Encoded<pb::FollowLogsResponse> {
    use pb::follow_logs_response::Event;
    let event = match event {
        // Every follower of the shared tail sends the log at the same
        // position: its cursor is the same too.
        AcrossEvent::Log { log, position } => {
            return Encoded::shared(&log, |log| {
                let followed = pb::FollowedLog {
                    cursor: follow_cursor::encode(position, log.received_at, database),
                    log: Some(log_to_proto(log.clone())),
                };
                pb::FollowLogsResponse { event: Some(Event::Log(followed)) }
            });
        }
        AcrossEvent::Heartbeat { through, time } => Event::Heartbeat(pb::FollowHeartbeat {
            cursor: follow_cursor::encode(through, time, database),
            time: Some(time_to_proto(time)),
        }),
        AcrossEvent::Expired { log_type, before } => Event::Expired(pb::FollowExpired {
            r#type: log_type_to_proto(log_type).into(),
            expired_before: Some(time_to_proto(before)),
        }),
    };
    Encoded::new(&pb::FollowLogsResponse { event: Some(event) })
}

/// The message of one follow event.
fn message(event: FollowEvent) -> Encoded<pb::StreamLogsResponse> {
    let event = match event {
        FollowEvent::Log(log) => {
            return Encoded::shared(&log, |log| pb::StreamLogsResponse {
                event: Some(Event::Log(log_to_proto(log.clone()))),
            });
        }
        FollowEvent::Expired { after_seq, first_retained_seq } => {
            Event::Expired(pb::StreamExpired { after_seq, first_retained_seq })
        }
        FollowEvent::Heartbeat { delivered_through_seq, last_seq, time } => {
            Event::Heartbeat(pb::StreamHeartbeat { delivered_through_seq, last_seq, time: Some(time_to_proto(time)) })
        }
        FollowEvent::Completed(run) => Event::Completed(pb::StreamCompletion { job_run: Some(job_run_to_proto(*run)) }),
    };
    Encoded::new(&pb::StreamLogsResponse { event: Some(event) })
}
