//! The follow loop: one job run, or the system logs, live and exact.
//!
//! A follower subscribes to wake-ups first, then reads "after my cursor" in
//! one loop that serves history, live tail and catch-up alike: a log
//! committed while the follow switches from history to live is read on the
//! next pass, and a slow follower simply reads more next time. Reads come
//! from the hub's shared tail when it holds the next seq, else from storage.
//! A follower's memory is one read batch and a small channel, whatever its
//! lag. Every entry point (a gRPC stream today) starts followers here and
//! only converts the events it receives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::SharedLog;
use super::across::{AcrossCount, AcrossEvent, AcrossFollow, AcrossStarter};
use super::commit_tail::CommitTail;
use super::events::{EventSender, EventStream, channel};
use super::hub::{Hub, Subscription, Tail};
use crate::auth::{AuthError, Denied, JobRunTokens, Principal};
use crate::model::{Follow, Followed, JobRun, Log, LogQuery, RetentionPolicy, SortOrder, Start};
use crate::store::{LogStore, StoreError};

/// Rows one read takes from storage, at most.
const READ_BATCH: usize = 256;
/// Logs one pass takes from the shared tail, at most: a lagging follower's
/// batches stay small, so its waiting events do too.
const TAIL_BATCH: usize = 64;

/// What a follower receives, in order.
#[derive(Debug, Clone)]
pub enum FollowEvent {
    /// The next matching log.
    Log(Arc<SharedLog>),
    /// Retention removed the logs after `after_seq`; the follow goes on
    /// from `first_retained_seq`.
    Expired { after_seq: i64, first_retained_seq: i64 },
    /// Nothing new for a while: every matching log through
    /// `delivered_through_seq` has been delivered, and `last_seq` is the
    /// highest seq known to be committed.
    Heartbeat { delivered_through_seq: i64, last_seq: i64, time: DateTime<Utc> },
    /// The run is complete and every matching log was delivered; the last
    /// event.
    Completed(Box<JobRun>),
}

/// Why a follow was refused or ended.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "this sequence has {followers} followers on this server, the most --max-followers-per-job-run ({limit}) allows"
    )]
    TooManyFollowers { followers: usize, limit: usize },
    #[error(
        "this server follows {limit} logs across runs already, the most --max-cross-run-followers allows; \
         narrow the follow to a job run (StreamLogs) or try another server"
    )]
    TooManyAcross { limit: usize },
    /// A filter of a follow across runs that only the database can decide.
    #[error("a follow across runs matches each log in memory as it commits, and {reason}")]
    Undecided { field: &'static str, reason: &'static str },
    #[error("after_seq {after_seq} is beyond the last seq {last_seq} of job run {job_run_id}, which is complete")]
    BeyondCompletedRun { after_seq: i64, last_seq: i64, job_run_id: uuid::Uuid },
    /// The server is shutting down: the follower follows again elsewhere.
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// What every follower of this server shares.
pub struct FollowersConfig {
    pub heartbeat_interval: Duration,
    /// Storage reads of followers at once, at most.
    pub concurrent_reads: usize,
    /// Revocations, to end the follows of revoked job-run tokens.
    pub job_run_tokens: Option<Arc<JobRunTokens>>,
    /// Followers of one sequence in this process, at most.
    pub max_followers: usize,
    /// Followers across runs in this process, at most.
    pub max_across: usize,
    /// What retention keeps, to tell a follower resuming from a cursor
    /// older than it.
    pub retention: RetentionPolicy,
}

/// Starts followers.
#[derive(Clone)]
pub struct Followers {
    store: Arc<dyn LogStore>,
    hub: Arc<Hub>,
    heartbeat_interval: Duration,
    /// Followers' reads queue here rather than time out waiting for a
    /// database connection when thousands of them wake at once.
    reads: Arc<Semaphore>,
    /// Storage reads of followers of single sequences so far: the reads
    /// the shared tails did not spare.
    storage_reads: Arc<AtomicU64>,
    job_run_tokens: Option<Arc<JobRunTokens>>,
    max_followers: usize,
    across: Arc<AcrossCount>,
    max_across: usize,
    retention: RetentionPolicy,
    /// The logs committed anywhere lately, for followers across runs.
    tail: Arc<CommitTail>,
    /// Cancelled when the server starts shutting down: every follower then
    /// ends, so that the server can stop.
    stopping: CancellationToken,
}

impl Followers {
    /// Starts the shared commit tail's reader too, until `stopping`.
    pub fn new(store: Arc<dyn LogStore>, hub: Arc<Hub>, config: FollowersConfig, stopping: CancellationToken) -> Self {
        let across = Arc::<AcrossCount>::default();
        let (tail, unread) = hub.commit_tail();
        let counted = across.clone();
        let handed = hub.clone();
        let hand_on = move |shown| handed.shown_by_commit_tail(shown);
        let reader = tail.clone().read_until(store.clone(), unread, move || counted.now(), hand_on, stopping.clone());
        tokio::spawn(reader);
        Followers {
            store,
            hub,
            heartbeat_interval: config.heartbeat_interval,
            reads: Arc::new(Semaphore::new(config.concurrent_reads.max(1))),
            storage_reads: Arc::default(),
            job_run_tokens: config.job_run_tokens,
            max_followers: config.max_followers,
            across,
            max_across: config.max_across,
            retention: config.retention,
            tail,
            stopping,
        }
    }

    /// Starts following across runs for `principal`, or refuses at once;
    /// the follow runs until the receiver is dropped, something fails, or
    /// the server shuts down.
    pub async fn follow_across(
        &self,
        principal: &Principal,
        follow: AcrossFollow,
    ) -> Result<EventStream<AcrossEvent>, FollowError> {
        principal.may_read_across_runs()?;
        let starter = AcrossStarter {
            store: &self.store,
            reads: &self.reads,
            count: &self.across,
            limit: self.max_across,
            heartbeat_interval: self.heartbeat_interval,
            retention: self.retention,
            commits: self.hub.commits(),
            tail: &self.tail,
            stopping: &self.stopping,
        };
        starter.start(follow).await
    }

    /// Followers across runs now.
    pub fn following_across(&self) -> usize {
        self.across.now()
    }

    /// Storage reads of followers of single sequences so far.
    pub fn storage_reads(&self) -> u64 {
        self.storage_reads.load(Ordering::Relaxed)
    }

    /// Starts following for `principal`, or refuses at once; the follow
    /// runs until the run completes, the receiver is dropped, something
    /// fails, or the server shuts down.
    pub async fn follow(&self, principal: Principal, follow: Follow) -> Result<EventStream<FollowEvent>, FollowError> {
        let job_run_id = match follow.followed {
            Followed::JobRun(id) => Some(id),
            Followed::System => None,
        };
        principal.may_read(job_run_id, follow.task_run_id)?;
        // Subscribe before the first read, so that no commit falls between.
        let subscription = self.hub.subscribe(follow.followed.sequence());
        let followers = subscription.followers_of_sequence();
        if followers > self.max_followers {
            return Err(FollowError::TooManyFollowers { followers: followers - 1, limit: self.max_followers });
        }
        let cursor = self.start_cursor(&follow).await?;
        let follower = Follower {
            store: self.store.clone(),
            reads: self.reads.clone(),
            storage_reads: self.storage_reads.clone(),
            heartbeat_interval: self.heartbeat_interval,
            follow,
            cursor,
            subscription,
            principal,
            job_run_tokens: self.job_run_tokens.clone(),
        };
        let (sender, events) = channel();
        tokio::spawn(follower.run(sender, self.stopping.clone()));
        Ok(events)
    }

    /// The seq after which the follower starts.
    async fn start_cursor(&self, follow: &Follow) -> Result<i64, FollowError> {
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

struct Follower {
    store: Arc<dyn LogStore>,
    reads: Arc<Semaphore>,
    storage_reads: Arc<AtomicU64>,
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

type Sender = EventSender<FollowEvent>;

impl Follower {
    /// Follows until the run completes, the receiver leaves, something
    /// fails, or the server shuts down; the events then end with the reason.
    async fn run(mut self, sender: Sender, stopping: CancellationToken) {
        until_stopped(self.follow(&sender), &sender, &stopping).await;
    }

    /// Delivers until the run completes (Ok) or the receiver leaves (Ok,
    /// with nobody to tell). Reads the shared tail when it holds the next
    /// seq, and storage at the start, on a gap, when storage changed in a
    /// way the tail cannot show (other replicas' commits, completion), and
    /// at each heartbeat as a backstop.
    async fn follow(&mut self, sender: &Sender) -> Result<(), FollowError> {
        let mut quiet_since = Instant::now();
        let mut read_storage = true;
        // The highest seq known to be committed in the run.
        let mut last_seq = 0;
        loop {
            if !read_storage {
                // A place for the batch first: a follower whose client lags
                // waits before it reads.
                let Some(slot) = sender.reserve().await else { return Ok(()) };
                match self.subscription.tail_after(self.cursor, TAIL_BATCH) {
                    Tail::Next(logs) => {
                        let mut matching = Vec::with_capacity(logs.len());
                        for log in logs {
                            self.cursor = log.seq;
                            if self.follow.matches(&log) {
                                matching.push(FollowEvent::Log(log));
                            }
                        }
                        if slot.send(matching) {
                            quiet_since = Instant::now();
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
                    let expired = FollowEvent::Expired { after_seq: self.cursor, first_retained_seq: gap };
                    if !deliver(sender, vec![expired], &mut quiet_since).await {
                        return Ok(());
                    }
                    self.cursor = gap - 1;
                }
                let more_waiting = logs.len() == READ_BATCH;
                self.cursor = logs.last().map_or(self.cursor, |last| last.seq);
                let logs: Vec<_> =
                    logs.into_iter().map(|log| FollowEvent::Log(Arc::new(SharedLog::new(log)))).collect();
                if !deliver(sender, logs, &mut quiet_since).await {
                    return Ok(());
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
                        return Err(FollowError::BeyondCompletedRun {
                            after_seq: self.cursor,
                            last_seq: run.last_seq,
                            job_run_id: run.id,
                        });
                    }
                    sender.send(vec![FollowEvent::Completed(Box::new(run))]).await;
                    return Ok(());
                }
            }
            let expiry = self.principal.expires_at();
            tokio::select! {
                storage_changed = self.subscription.woken() => read_storage = storage_changed,
                () = sleep_until_time(expiry) => return Err(AuthError::Expired.into()),
                () = tokio::time::sleep_until(quiet_since + self.heartbeat_interval) => {
                    let heartbeat =
                        FollowEvent::Heartbeat { delivered_through_seq: self.cursor, last_seq, time: Utc::now() };
                    if !deliver(sender, vec![heartbeat], &mut quiet_since).await {
                        return Ok(());
                    }
                    read_storage = true;
                }
                () = sender.closed() => return Ok(()),
            }
        }
    }

    /// The followed sequence's state, then the matching logs after the
    /// cursor, in that order.
    async fn read(&self) -> Result<(Option<JobRun>, Vec<Log>), FollowError> {
        // The semaphore is never closed: a permit always comes.
        let _permit = self.reads.acquire().await.ok();
        self.storage_reads.fetch_add(1, Ordering::Relaxed);
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

/// Runs `follow` until it ends or the server starts shutting down; why it
/// ended, if it failed, is the last event `sender` sends.
pub(super) async fn until_stopped<E>(
    follow: impl Future<Output = Result<(), FollowError>>,
    sender: &EventSender<E>,
    stopping: &CancellationToken,
) {
    let followed = tokio::select! {
        result = follow => result,
        () = stopping.cancelled() => Err(FollowError::ShuttingDown),
    };
    if let Err(error) = followed {
        // Waits for a receiver that reads slowly; a shutdown's grace period
        // bounds the wait.
        sender.fail(error).await;
    }
}

/// Sleeps until `time`, or forever if there is none.
async fn sleep_until_time(time: Option<DateTime<Utc>>) {
    match time {
        Some(time) => tokio::time::sleep((time - Utc::now()).to_std().unwrap_or_default()).await,
        None => std::future::pending().await,
    }
}

/// Sends `events`, if any, as one batch, and the heartbeat then waits
/// from now; false once the receiver has gone.
pub(super) async fn deliver<E>(sender: &EventSender<E>, events: Vec<E>, quiet_since: &mut Instant) -> bool {
    if events.is_empty() {
        return true;
    }
    *quiet_since = Instant::now();
    sender.send(events).await
}
