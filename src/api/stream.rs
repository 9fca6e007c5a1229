//! LogStreamService: follows a job run, or the system logs, live.
//!
//! A follower subscribes to wake-ups first, then reads "after my cursor" in
//! one loop that serves history, live tail and catch-up alike: a log
//! committed while the stream switches from history to live is read on the
//! next pass, and a slow follower simply reads more next time. Reads come
//! from the hub's shared tail when it holds the next seq, else from storage.
//! A follower's memory is one read batch and a small channel, whatever its
//! lag.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::access::principal;
use super::convert::{follow_draft, job_run_to_proto, log_to_proto, time_to_proto};
use super::error::ApiError;
use crate::auth::{AuthError, JobRunTokens, Principal};
use crate::live::{Hub, Subscription, Tail};
use crate::model::{Follow, Followed, JobRun, Log, LogQuery, SortOrder, Start, Violations};
use crate::proto::v1 as pb;
use crate::proto::v1::log_stream_service_server::LogStreamService;
use crate::proto::v1::stream_logs_response::Event;
use crate::store::LogStore;

/// Rows one read takes from storage, at most.
const READ_BATCH: usize = 256;
/// Messages waiting for a slow client, per follower, at most; when they are
/// full the follower stops reading until the client catches up.
const CHANNEL_CAPACITY: usize = 16;

/// Serves LogStreamService.
#[derive(Clone)]
pub struct LogStreamer {
    store: Arc<dyn LogStore>,
    hub: Arc<Hub>,
    heartbeat_interval: Duration,
    /// Followers' reads queue here rather than time out waiting for a
    /// database connection when thousands of them wake at once.
    reads: Arc<Semaphore>,
    /// Revocations, to end the streams of revoked job-run tokens.
    job_run_tokens: Option<Arc<JobRunTokens>>,
    /// Followers of one sequence in this process, at most.
    max_followers: usize,
    /// Cancelled when the server starts shutting down: every follower then
    /// ends its stream, so that the server can stop.
    stopping: CancellationToken,
}

impl LogStreamer {
    pub fn new(
        store: Arc<dyn LogStore>,
        hub: Arc<Hub>,
        heartbeat_interval: Duration,
        concurrent_reads: usize,
        job_run_tokens: Option<Arc<JobRunTokens>>,
        max_followers: usize,
        stopping: CancellationToken,
    ) -> Self {
        let reads = Arc::new(Semaphore::new(concurrent_reads.max(1)));
        LogStreamer { store, hub, heartbeat_interval, reads, job_run_tokens, max_followers, stopping }
    }

    async fn start(&self, principal: Principal, request: pb::StreamLogsRequest) -> Result<Follower, ApiError> {
        let mut violations = Violations::default();
        let draft = follow_draft(request, &mut violations);
        let follow = violations.judge(draft.validate())?;
        let job_run_id = match follow.followed {
            Followed::JobRun(id) => Some(id),
            Followed::System => None,
        };
        principal.may_read(job_run_id, follow.task_run_id)?;
        // Subscribe before the first read, so that no commit falls between.
        let subscription = self.hub.subscribe(follow.followed.sequence());
        let followers = subscription.followers_of_sequence();
        if followers > self.max_followers {
            return Err(ApiError::TooManyFollowers { followers: followers - 1, limit: self.max_followers });
        }
        let cursor = self.start_cursor(&follow).await?;
        Ok(Follower {
            store: self.store.clone(),
            reads: self.reads.clone(),
            heartbeat_interval: self.heartbeat_interval,
            follow,
            cursor,
            subscription,
            principal,
            job_run_tokens: self.job_run_tokens.clone(),
        })
    }

    /// The seq after which the follower starts.
    async fn start_cursor(&self, follow: &Follow) -> Result<i64, ApiError> {
        match follow.start {
            Start::AfterSeq(seq) => Ok(seq),
            Start::FromNow => Ok(self.store.job_run(follow.followed.sequence()).await?.map_or(0, |run| run.last_seq)),
            Start::Last(count) => {
                let wanted = usize::try_from(count).unwrap_or(0);
                let query = LogQuery {
                    filter: follow.filter_after(0),
                    order: SortOrder::Descending,
                    after: None,
                    limit: wanted,
                };
                let newest = self.store.list(&query).await?;
                Ok(match newest.last() {
                    Some(oldest_wanted) if newest.len() == wanted => oldest_wanted.seq - 1,
                    _ => 0,
                })
            }
        }
    }
}

#[tonic::async_trait]
impl LogStreamService for LogStreamer {
    type StreamLogsStream = ReceiverStream<Result<pb::StreamLogsResponse, Status>>;

    async fn stream_logs(
        &self,
        request: Request<pb::StreamLogsRequest>,
    ) -> Result<Response<Self::StreamLogsStream>, Status> {
        let follower = self.start(principal(&request)?, request.into_inner()).await?;
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(follower.run(sender, self.stopping.clone()));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

struct Follower {
    store: Arc<dyn LogStore>,
    reads: Arc<Semaphore>,
    heartbeat_interval: Duration,
    follow: Follow,
    /// Every matching log up to this seq has been delivered.
    cursor: i64,
    subscription: Subscription,
    /// Checked again at each storage read (every heartbeat at least), and
    /// at its token's expiry.
    principal: Principal,
    job_run_tokens: Option<Arc<JobRunTokens>>,
}

type Sender = mpsc::Sender<Result<pb::StreamLogsResponse, Status>>;

impl Follower {
    /// Follows until the run completes, the client leaves, something fails,
    /// or the server shuts down; the stream then ends with the reason.
    async fn run(mut self, sender: Sender, stopping: CancellationToken) {
        let followed = tokio::select! {
            result = self.follow(&sender) => result,
            () = stopping.cancelled() => Err(ApiError::ShuttingDown {
                then: "follow again, on another server, with after_seq set to the last seq you received",
            }),
        };
        if let Err(error) = followed {
            // Waits for a client that reads slowly; a shutdown's grace period
            // bounds the wait.
            let _ = sender.send(Err(error.into())).await;
        }
    }

    /// Delivers until the run completes (Ok) or the client leaves (Ok, with
    /// nobody to tell). Reads the shared tail when it holds the next seq, and
    /// storage at the start, on a gap, when storage changed in a way the tail
    /// cannot show (other replicas' commits, completion), and at each
    /// heartbeat as a backstop.
    async fn follow(&mut self, sender: &Sender) -> Result<(), ApiError> {
        let mut quiet_since = Instant::now();
        let mut read_storage = true;
        // The highest seq known to be committed in the run.
        let mut last_seq = 0;
        loop {
            if !read_storage {
                match self.subscription.tail_after(self.cursor, READ_BATCH) {
                    Tail::Next(logs) => {
                        for log in logs {
                            self.cursor = log.seq;
                            if self.follow.matches(&log) {
                                if !send(sender, Event::Log(log_to_proto(Log::clone(&log)))).await {
                                    return Ok(());
                                }
                                quiet_since = Instant::now();
                            }
                        }
                        last_seq = last_seq.max(self.cursor);
                        continue;
                    }
                    Tail::AtEnd => {}
                    Tail::Unknown => read_storage = true,
                }
            }
            if read_storage {
                self.principal.still_valid(self.job_run_tokens.as_deref())?;
                let (run, logs) = self.read().await?;
                if let Some(gap) = run.as_ref().and_then(|run| run.gone_after(self.cursor)) {
                    let expired = pb::StreamExpired { after_seq: self.cursor, first_retained_seq: gap };
                    if !send(sender, Event::Expired(expired)).await {
                        return Ok(());
                    }
                    self.cursor = gap - 1;
                    quiet_since = Instant::now();
                }
                let more_waiting = logs.len() == READ_BATCH;
                for log in logs {
                    self.cursor = log.seq;
                    if !send(sender, Event::Log(log_to_proto(log))).await {
                        return Ok(());
                    }
                    quiet_since = Instant::now();
                }
                if more_waiting {
                    continue;
                }
                // The read saw everything committed before `run` was read, so
                // the follower has passed every seq up to its last, matching
                // or not.
                last_seq = last_seq.max(run.as_ref().map_or(0, |run| run.last_seq));
                self.cursor = self.cursor.max(run.as_ref().map_or(0, |run| run.last_seq));
                if let Some(run) = run.filter(|run| run.completion.is_some()) {
                    if self.cursor > run.last_seq {
                        return Err(ApiError::OutOfRange(format!(
                            "after_seq {} is beyond the last seq {} of job run {}, which is complete",
                            self.cursor, run.last_seq, run.id
                        )));
                    }
                    let completed = pb::StreamCompletion { job_run: Some(job_run_to_proto(run)) };
                    send(sender, Event::Completed(completed)).await;
                    return Ok(());
                }
            }
            let expiry = self.principal.expires_at();
            tokio::select! {
                storage_changed = self.subscription.woken() => read_storage = storage_changed,
                () = sleep_until_time(expiry) => return Err(AuthError::Expired.into()),
                () = tokio::time::sleep_until(quiet_since + self.heartbeat_interval) => {
                    let heartbeat = pb::StreamHeartbeat {
                        delivered_through_seq: self.cursor,
                        last_seq,
                        time: Some(time_to_proto(Utc::now())),
                    };
                    if !send(sender, Event::Heartbeat(heartbeat)).await {
                        return Ok(());
                    }
                    quiet_since = Instant::now();
                    read_storage = true;
                }
                () = sender.closed() => return Ok(()),
            }
        }
    }

    /// The followed sequence's state, then the matching logs after the
    /// cursor, in that order.
    async fn read(&self) -> Result<(Option<JobRun>, Vec<Log>), ApiError> {
        let _permit = self.reads.acquire().await.map_err(|_| ApiError::Internal("the read queue closed"))?;
        let run = self.store.job_run(self.follow.followed.sequence()).await?;
        let query = LogQuery {
            filter: self.follow.filter_after(self.cursor),
            order: SortOrder::Ascending,
            after: None,
            limit: READ_BATCH,
        };
        let logs = self.store.list(&query).await?;
        Ok((run, logs))
    }
}

/// Sleeps until `time`, or forever if there is none.
async fn sleep_until_time(time: Option<chrono::DateTime<Utc>>) {
    match time {
        Some(time) => tokio::time::sleep((time - Utc::now()).to_std().unwrap_or_default()).await,
        None => std::future::pending().await,
    }
}

/// Sends one event; false once the client has gone.
async fn send(sender: &Sender, event: Event) -> bool {
    sender.send(Ok(pb::StreamLogsResponse { event: Some(event) })).await.is_ok()
}
