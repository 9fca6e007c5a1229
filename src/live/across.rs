//! The follow across runs: every log that matches a filter, in the commit
//! order of all logs (`Position`), from a start position, live.
//!
//! The loop is the run follow's: wake-ups say "look again", and the follower
//! reads storage after its position, so history, live and catch-up are one
//! path and a slow follower reads more next time. Storage reads only what
//! has surely committed (below the horizon), so a commit that lands late
//! lands past every position already read: nothing is skipped. When
//! commits were still running at a read, the follower reads again shortly,
//! since a commit of a program other than logwell wakes no one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::SharedLog;
use super::commit_tail::{CommitTail, Matches};
use super::events::{EventSender, EventStream, channel};
use super::follower::{FollowError, deliver, until_stopped};
use crate::model::{LogFilter, LogType, Position, RetentionPolicy};
use crate::store::{Horizon, LogStore};

/// Rows one read takes from storage, at most.
const READ_BATCH: usize = 256;
/// Logs one pass takes from the shared tail, at most (see the run
/// follower's).
const TAIL_BATCH: usize = 64;
/// How soon a follower reads again after a read that commits still running
/// held back.
const HELD_BACK_RETRY: Duration = Duration::from_millis(10);
/// How far replicas' clocks may disagree: a follow from a time starts at a
/// mark taken this long before it, since the mark may come from another
/// replica than the logs' receipt times.
const CLOCK_SKEW: TimeDelta = TimeDelta::seconds(5);

/// Where a follow across runs starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcrossStart {
    /// After this position (a cursor), reached at `reached_at`.
    After { position: Position, reached_at: DateTime<Utc> },
    /// With the logs received from this time on.
    FromTime(DateTime<Utc>),
    /// With the logs committed from now on.
    FromNow,
    /// With the first stored log.
    FromStart,
}

/// A validated follow across runs.
#[derive(Debug, Clone)]
pub struct AcrossFollow {
    pub filter: LogFilter,
    pub start: AcrossStart,
}

/// What a follower across runs receives, in order.
#[derive(Debug, Clone)]
pub enum AcrossEvent {
    /// The next matching log, at `position`.
    Log { log: Arc<SharedLog>, position: Position },
    /// Nothing new for a while: every matching log before `through` has
    /// been delivered.
    Heartbeat { through: Position, time: DateTime<Utc> },
    /// Logs of `log_type` received before `before` are past the retention
    /// limit, and the cursor followed from is older: some after it may be
    /// gone. First, before any log.
    Expired { log_type: LogType, before: DateTime<Utc> },
}

/// Counts the followers across runs of this process; one is released when
/// its follow ends.
#[derive(Debug, Default)]
pub(super) struct AcrossCount(AtomicUsize);

/// One follower's place in the count.
struct Counted(Arc<AcrossCount>);

impl AcrossCount {
    /// Counts one more follower, unless `limit` are counted already.
    fn admit(self: &Arc<Self>, limit: usize) -> Result<Counted, FollowError> {
        let before = self.0.fetch_add(1, Ordering::AcqRel);
        let counted = Counted(self.clone());
        if before >= limit {
            return Err(FollowError::TooManyAcross { limit });
        }
        Ok(counted)
    }

    pub(super) fn now(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What starting a follow across runs needs.
pub(super) struct AcrossStarter<'a> {
    pub store: &'a Arc<dyn LogStore>,
    pub reads: &'a Arc<Semaphore>,
    pub count: &'a Arc<AcrossCount>,
    pub limit: usize,
    pub heartbeat_interval: Duration,
    pub retention: RetentionPolicy,
    pub commits: watch::Receiver<u64>,
    pub tail: &'a Arc<CommitTail>,
    pub stopping: &'a CancellationToken,
}

impl AcrossStarter<'_> {
    pub(super) async fn start(self, follow: AcrossFollow) -> Result<EventStream<AcrossEvent>, FollowError> {
        // Each follower matches the shared tail in memory: a filter only
        // the database can decide would read storage at every commit.
        if let Some((field, reason)) = follow.filter.undecided_in_memory(self.store.case_folding()) {
            return Err(FollowError::Undecided { field, reason });
        }
        let counted = self.count.admit(self.limit)?;
        self.tail.want();
        let notices = expired(&follow.filter, follow.start, &self.retention, Utc::now());
        // The wake-ups were subscribed before the horizon is read, so that
        // no commit falls between.
        let (position, earlier) = match follow.start {
            AcrossStart::After { position, .. } => (position, None),
            AcrossStart::FromStart => (Position::START, None),
            // Before every mark: the marks began after the logs from then
            // were stored, so read them all.
            AcrossStart::FromTime(time) => {
                let mark_time = time.checked_sub_signed(CLOCK_SKEW).unwrap_or(DateTime::<Utc>::MIN_UTC);
                (self.store.commit_mark(mark_time).await?.unwrap_or(Position::START), None)
            }
            AcrossStart::FromNow => {
                let horizon = self.store.commit_horizon().await?;
                (horizon.position, Some(horizon))
            }
        };
        let follower = AcrossFollower {
            store: self.store.clone(),
            reads: self.reads.clone(),
            heartbeat_interval: self.heartbeat_interval,
            filter: follow.filter,
            position,
            earlier,
            received_from: match follow.start {
                AcrossStart::FromTime(time) => Some(time),
                _ => None,
            },
            commits: self.commits,
            tail_changes: self.tail.changes(),
            tail: self.tail.clone(),
            _counted: counted,
        };
        let (sender, events) = channel();
        tokio::spawn(follower.run(sender, notices, self.stopping.clone()));
        Ok(events)
    }
}

/// What a follow from `start` must be told first: each log type `filter`
/// covers whose retention limit, as of `now`, lies after the cursor.
fn expired(
    filter: &LogFilter,
    start: AcrossStart,
    retention: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Vec<AcrossEvent> {
    let reached_at = match start {
        AcrossStart::After { reached_at, .. } | AcrossStart::FromTime(reached_at) => reached_at,
        AcrossStart::FromNow | AcrossStart::FromStart => return Vec::new(),
    };
    retention
        .cutoffs(now)
        .into_iter()
        .filter(|(log_type, cutoff)| {
            (filter.types.is_empty() || filter.types.contains(log_type)) && reached_at < *cutoff
        })
        .map(|(log_type, before)| AcrossEvent::Expired { log_type, before })
        .collect()
}

struct AcrossFollower {
    store: Arc<dyn LogStore>,
    reads: Arc<Semaphore>,
    heartbeat_interval: Duration,
    filter: LogFilter,
    /// Every matching log before this position has been delivered.
    position: Position,
    /// Following from now: the horizon then, whose commits that had
    /// already ended are skipped.
    earlier: Option<Horizon>,
    /// Following from a time: the logs received before it, read since the
    /// mark before it, are skipped. To the microsecond, as storage keeps
    /// times.
    received_from: Option<DateTime<Utc>>,
    /// Moves at every commit this process makes or hears of.
    commits: watch::Receiver<u64>,
    /// The shared tail, read when it reaches back to the position and
    /// the filter is decided in memory; and its wake-ups.
    tail: Arc<CommitTail>,
    tail_changes: watch::Receiver<u64>,
    _counted: Counted,
}

/// One pass's logs, and how far they take the follower.
struct Pass {
    logs: Vec<(Position, Arc<SharedLog>)>,
    through: Position,
    /// More is waiting: read again at once.
    full: bool,
    /// Read from storage with commits still running: read again shortly.
    held_back: bool,
    /// Read from the shared tail: wait for it to grow.
    from_tail: bool,
}

type Sender = EventSender<AcrossEvent>;

impl AcrossFollower {
    /// Tells `notices` first, then follows.
    async fn run(mut self, sender: Sender, notices: Vec<AcrossEvent>, stopping: CancellationToken) {
        if sender.send(notices).await {
            until_stopped(self.follow(&sender), &sender, &stopping).await;
        }
    }

    /// Delivers until the receiver leaves (Ok) or something fails.
    async fn follow(&mut self, sender: &Sender) -> Result<(), FollowError> {
        let mut quiet_since = Instant::now();
        loop {
            self.commits.borrow_and_update();
            self.tail_changes.borrow_and_update();
            // A place for the batch first: a follower whose client lags
            // waits before reading anything.
            let Some(slot) = sender.reserve().await else { return Ok(()) };
            let pass = self.pass().await?;
            let mut matching = Vec::with_capacity(pass.logs.len());
            for (position, log) in pass.logs {
                self.position = position;
                let before_start = self.earlier.as_ref().is_some_and(|earlier| earlier.committed_before(position))
                    || self
                        .received_from
                        .is_some_and(|from| log.received_at.timestamp_micros() < from.timestamp_micros());
                if !before_start {
                    matching.push(AcrossEvent::Log { log, position });
                }
            }
            if slot.send(matching) {
                quiet_since = Instant::now();
            }
            self.position = self.position.max(pass.through);
            if self.earlier.as_ref().is_some_and(|earlier| self.position.commit >= earlier.next) {
                self.earlier = None;
            }
            if pass.full {
                continue;
            }
            tokio::select! {
                changed = self.commits.changed(), if !pass.from_tail => {
                    if changed.is_err() {
                        // The hub is gone: the server is stopping.
                        return Err(FollowError::ShuttingDown);
                    }
                }
                _ = self.tail_changes.changed(), if pass.from_tail => {}
                () = tokio::time::sleep(HELD_BACK_RETRY), if pass.held_back => {}
                () = tokio::time::sleep_until(quiet_since + self.heartbeat_interval) => {
                    let heartbeat = AcrossEvent::Heartbeat { through: self.position, time: Utc::now() };
                    if !deliver(sender, vec![heartbeat], &mut quiet_since).await {
                        return Ok(());
                    }
                }
                () = sender.closed() => return Ok(()),
            }
        }
    }

    /// The next logs: from the shared tail if it can tell, else from
    /// storage with the filter applied there.
    async fn pass(&self) -> Result<Pass, FollowError> {
        // Followers start only with filters decided in memory.
        if let Matches::Found { logs, through } = self.tail.matches_after(self.position, &self.filter, TAIL_BATCH) {
            let full = logs.len() == TAIL_BATCH;
            return Ok(Pass { logs, through, full, held_back: false, from_tail: true });
        }
        // The semaphore is never closed: a permit always comes.
        let _permit = self.reads.acquire().await.ok();
        let page = self.store.read_committed(&self.filter, self.position, READ_BATCH).await?;
        let full = page.more;
        let logs = page.logs.into_iter().map(|(position, log)| (position, Arc::new(SharedLog::new(log)))).collect();
        Ok(Pass { logs, through: page.read_through, full, held_back: page.held_back, from_tail: false })
    }
}
