//! LogStreamService: follows a job run, or the system logs, live. The
//! follow loop lives in `live`; this edge validates the request and turns
//! the loop's events into messages.

use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::access::principal;
use super::convert::{follow_draft, job_run_to_proto, log_to_proto, time_to_proto};
use super::error::ApiError;
use crate::live::{FollowError, FollowEvent, Followers};
use crate::model::{Log, Violations};
use crate::proto::v1 as pb;
use crate::proto::v1::log_stream_service_server::LogStreamService;
use crate::proto::v1::stream_logs_response::Event;

/// Serves LogStreamService.
#[derive(Clone)]
pub struct LogStreamer {
    followers: Followers,
}

impl LogStreamer {
    pub fn new(followers: Followers) -> Self {
        LogStreamer { followers }
    }
}

/// A follow's events as messages.
type Messages = tokio_stream::adapters::Map<
    ReceiverStream<Result<FollowEvent, FollowError>>,
    fn(Result<FollowEvent, FollowError>) -> Result<pb::StreamLogsResponse, Status>,
>;

#[tonic::async_trait]
impl LogStreamService for LogStreamer {
    type StreamLogsStream = Messages;

    async fn stream_logs(
        &self,
        request: Request<pb::StreamLogsRequest>,
    ) -> Result<Response<Self::StreamLogsStream>, Status> {
        let principal = principal(&request)?;
        let mut violations = Violations::default();
        let draft = follow_draft(request.into_inner(), &mut violations);
        let follow = violations.judge(draft.validate()).map_err(ApiError::from)?;
        let events = self.followers.follow(principal, follow).await.map_err(ApiError::from)?;
        Ok(Response::new(ReceiverStream::new(events).map(to_message as fn(_) -> _)))
    }
}

/// The message of one follow event, or the status that ends the stream.
fn to_message(event: Result<FollowEvent, FollowError>) -> Result<pb::StreamLogsResponse, Status> {
    Ok(message(event.map_err(ApiError::from)?))
}

/// The message of one follow event.
fn message(event: FollowEvent) -> pb::StreamLogsResponse {
    let event = match event {
        FollowEvent::Log(log) => Event::Log(log_to_proto(Log::clone(&log))),
        FollowEvent::Expired { after_seq, first_retained_seq } => {
            Event::Expired(pb::StreamExpired { after_seq, first_retained_seq })
        }
        FollowEvent::Heartbeat { delivered_through_seq, last_seq, time } => {
            Event::Heartbeat(pb::StreamHeartbeat { delivered_through_seq, last_seq, time: Some(time_to_proto(time)) })
        }
        FollowEvent::Completed(run) => Event::Completed(pb::StreamCompletion { job_run: Some(job_run_to_proto(*run)) }),
    };
    pb::StreamLogsResponse { event: Some(event) }
}
