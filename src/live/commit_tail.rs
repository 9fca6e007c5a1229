//! The commit tail: the most recent logs committed anywhere, in commit
//! order, kept once per process for every follower across runs.
//!
//! The committer hands it this process's commits when the store can tell
//! where they lie in the commit order (SQLite's one writer). One task reads
//! storage after the tail's end at every other commit it hears of (another
//! process's; every commit on PostgreSQL, and shortly again while running
//! transactions hold the horizon back), unfiltered. Followers match the
//! logs in memory: ten followers of `level >= warn` cost at most one read
//! per commit, not ten, and a narrow follow costs the matching, not a
//! database scan. The tail holds a window bounded in logs and in memory; a
//! follower behind it reads storage itself. While no one follows across
//! runs, the task waits and reads nothing (past two reads at start, which
//! make the store's plans), and the committer hands nothing; when
//! followers return, it starts afresh from now.

use std::collections::VecDeque;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::SharedLog;
use super::shared_log::held_bytes;
use crate::model::{LogFilter, Position};
use crate::store::{CommitSpan, LogStore};

/// Logs the tail keeps, at most: enough for followers that lag a little.
const TAIL_LOGS: usize = 16_384;
/// Memory the tail's logs hold, at most (`held_bytes`): 16,384 logs of
/// 64 KiB would otherwise hold 2 GiB.
const TAIL_BYTES: usize = 64 * 1024 * 1024;
/// Rows one read takes, at most.
const READ_LOGS: usize = 2_048;
/// How soon the tail reads again after a read held back by running
/// transactions, or after a failed read.
const HELD_BACK_RETRY: Duration = Duration::from_millis(10);
const FAILED_RETRY: Duration = Duration::from_millis(200);
/// How often the tail reads with nothing heard of: a backstop.
const BACKSTOP: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Window {
    /// Logs with positions in (`start`, `read_through`], in order.
    logs: VecDeque<(Position, Arc<SharedLog>)>,
    /// What they hold in memory, roughly (`held_bytes`).
    bytes: usize,
    start: Position,
    read_through: Position,
    /// The last read failed: followers read storage themselves, and meet
    /// the failure there.
    failed: bool,
    /// The window is from an earlier time with followers; the next reader
    /// starts it afresh from now.
    stale: bool,
    /// Where the window last started afresh: commits before it were never
    /// read into it.
    began: Position,
    /// Reads begun so far.
    reads: u64,
    /// Other processes' appends that the next reads are to show, for the
    /// followers of their sequences.
    expected: Vec<Expected>,
}

/// Another process's append, told of by a notification.
#[derive(Debug)]
struct Expected {
    /// Its transaction (`Position::commit`).
    commit: i64,
    /// The sequences it appended to (`None`: too many to name).
    sequences: Option<Vec<Uuid>>,
    /// `Window::reads` when it was expected: a read begun later should
    /// show it.
    reads: u64,
}

/// What the tail holds for a follower at some position.
#[derive(Debug)]
pub(super) enum Matches {
    /// The matching logs after the position, at most the limit, and the
    /// position through which the window was searched.
    Found { logs: Vec<(Position, Arc<SharedLog>)>, through: Position },
    /// The window does not reach back to the position, or the tail failed:
    /// read storage.
    Unknown,
}

/// The shared tail of one process.
#[derive(Debug)]
pub(super) struct CommitTail {
    window: RwLock<Window>,
    /// Moves whenever the window grows or the tail fails.
    changed: watch::Sender<u64>,
    /// Told when a follower arrives, so that an idle reader wakes.
    wanted: Notify,
}

impl Default for CommitTail {
    fn default() -> CommitTail {
        let window = Window {
            logs: VecDeque::new(),
            bytes: 0,
            start: Position::START,
            read_through: Position::START,
            failed: false,
            stale: true,
            began: Position::START,
            reads: 0,
            expected: Vec::new(),
        };
        CommitTail { window: RwLock::new(window), changed: watch::channel(0).0, wanted: Notify::new() }
    }
}

impl Window {
    /// Adds the next log, and lets the oldest go past the bounds.
    fn push(&mut self, position: Position, log: Arc<SharedLog>) {
        self.bytes += held_bytes(&log);
        self.logs.push_back((position, log));
        // The newest log stays, whatever its size.
        while (self.logs.len() > TAIL_LOGS || self.bytes > TAIL_BYTES) && self.logs.len() > 1 {
            if let Some((dropped, log)) = self.logs.pop_front() {
                self.bytes -= held_bytes(&log);
                self.start = dropped;
            }
        }
    }

    /// Starts afresh from `horizon`, reading nothing before it.
    fn restart(&mut self, horizon: Position) -> Vec<Option<Vec<Uuid>>> {
        self.logs.clear();
        self.bytes = 0;
        (self.start, self.read_through, self.began) = (horizon, horizon, horizon);
        (self.stale, self.failed) = (false, false);
        self.forget_expected()
    }

    /// The sequences of every expected append: their followers read
    /// storage instead.
    fn forget_expected(&mut self) -> Vec<Option<Vec<Uuid>>> {
        self.expected.drain(..).map(|expected| expected.sequences).collect()
    }

    /// After the read numbered `read`: forgets the expected appends it
    /// showed, and answers the sequences of those that a read begun after
    /// them should have shown and did not, if this read `caught_up` (a
    /// running transaction holds the horizon back before them) or is the
    /// second such (the tail is far behind): their followers read storage
    /// rather than wait longer.
    fn settle_expected(&mut self, read: u64, caught_up: bool) -> Vec<Option<Vec<Uuid>>> {
        let read_through = self.read_through.commit;
        let mut overdue = Vec::new();
        self.expected.retain_mut(|expected| {
            if expected.commit < read_through {
                return false;
            }
            let reads_since = read.saturating_sub(expected.reads);
            if reads_since >= 2 || (caught_up && reads_since == 1) {
                overdue.push(expected.sequences.take());
                return false;
            }
            true
        });
        overdue
    }
}

impl CommitTail {
    /// Whether the window is being kept: someone follows across runs.
    pub(super) fn is_live(&self) -> bool {
        let window = self.window.read().unwrap_or_else(PoisonError::into_inner);
        !window.stale && !window.failed
    }

    /// Takes a commit's logs from the committer, without reading storage,
    /// if they continue the window: if it ends at `span.after`. Otherwise
    /// (another process or replica committed in between, or the reader is
    /// behind) answers false, and the reader reads storage.
    pub(super) fn take(&self, span: CommitSpan, logs: Vec<Arc<SharedLog>>) -> bool {
        if span.positions.len() != logs.len() {
            return false;
        }
        {
            let mut window = self.window.write().unwrap_or_else(PoisonError::into_inner);
            if window.stale || window.failed || window.read_through != span.after {
                return false;
            }
            for (position, log) in span.positions.into_iter().zip(logs) {
                window.push(position, log);
            }
            window.read_through = span.through;
        }
        self.changed.send_modify(|changes| *changes = changes.wrapping_add(1));
        true
    }

    /// Another process appended logs to `sequences` in the transaction
    /// `commit`. Answers `Ok` if the tail's reads show them (already, or in
    /// a read to come, which hands them on), or `Err` with the sequences
    /// whose followers must read storage: the window is not kept, or began
    /// after that commit.
    pub(super) fn expect(&self, commit: i64, sequences: Option<Vec<Uuid>>) -> Result<(), Option<Vec<Uuid>>> {
        let mut window = self.window.write().unwrap_or_else(PoisonError::into_inner);
        if window.stale || window.failed || commit < window.began.commit {
            return Err(sequences);
        }
        if commit >= window.read_through.commit {
            let reads = window.reads;
            window.expected.push(Expected { commit, sequences, reads });
        }
        Ok(())
    }

    /// Wake-ups at every change of the window from now on.
    pub(super) fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// A follower arrived.
    pub(super) fn want(&self) {
        self.wanted.notify_one();
    }

    /// The logs after `position` that `filter` matches (it must be decided
    /// in memory), at most `limit`.
    pub(super) fn matches_after(&self, position: Position, filter: &LogFilter, limit: usize) -> Matches {
        let window = self.window.read().unwrap_or_else(PoisonError::into_inner);
        if window.failed || window.stale || position < window.start {
            return Matches::Unknown;
        }
        let first = window.logs.partition_point(|(logged, _)| *logged <= position);
        let mut logs = Vec::new();
        let mut searched = position;
        for (logged, log) in window.logs.range(first..) {
            if logs.len() == limit {
                return Matches::Found { logs, through: searched };
            }
            if filter.matches(log) {
                logs.push((*logged, log.clone()));
            }
            searched = *logged;
        }
        Matches::Found { logs, through: position.max(window.read_through) }
    }

    /// Reads storage into the window at every commit `unread` tells of,
    /// while `followers` says anyone follows; waits when no one does. Hands
    /// what each read shows to `hand_on`, for the followers of single
    /// sequences. Runs until `stopping`.
    pub(super) async fn read_until(
        self: Arc<Self>,
        store: Arc<dyn LogStore>,
        unread: watch::Receiver<u64>,
        followers: impl Fn() -> usize,
        hand_on: impl Fn(Shown),
        stopping: tokio_util::sync::CancellationToken,
    ) {
        tokio::select! {
            () = self.read_forever(store, unread, followers, hand_on) => {}
            () = stopping.cancelled() => {}
        }
    }

    async fn read_forever(
        &self,
        store: Arc<dyn LogStore>,
        mut unread: watch::Receiver<u64>,
        followers: impl Fn() -> usize,
        hand_on: impl Fn(Shown),
    ) {
        let everything = LogFilter::default();
        // Two reads at once, finding nothing, before anyone follows: each
        // connection of the store's reads in commit order makes its plan
        // now (over every partition on PostgreSQL, 100 ms on a busy
        // machine), not while the first followers wait.
        if let Ok(horizon) = store.commit_horizon().await {
            let warm = || store.read_committed(&everything, horizon.position, READ_LOGS);
            let _ = tokio::join!(warm(), warm());
        }
        loop {
            if followers() == 0 {
                let unshown = {
                    let mut window = self.window.write().unwrap_or_else(PoisonError::into_inner);
                    window.stale = true;
                    window.forget_expected()
                };
                hand_on(Shown { logs: Vec::new(), unshown });
                tokio::select! {
                    () = self.wanted.notified() => {}
                    () = tokio::time::sleep(BACKSTOP) => {}
                }
                continue;
            }
            unread.borrow_and_update();
            let (outcome, shown) = self.read_once(store.as_ref(), &everything).await;
            hand_on(shown);
            let retry = match outcome {
                Ok(ReadOutcome::More) => continue,
                Ok(ReadOutcome::CaughtUp { held_back }) => held_back.then_some(HELD_BACK_RETRY),
                Err(()) => Some(FAILED_RETRY),
            };
            tokio::select! {
                _ = unread.changed() => {}
                () = tokio::time::sleep(retry.unwrap_or(BACKSTOP)) => {}
            }
        }
    }

    /// One read after the window's end; starts the window afresh from now
    /// if it is stale. Answers what it showed, as well.
    async fn read_once(&self, store: &dyn LogStore, everything: &LogFilter) -> (Result<ReadOutcome, ()>, Shown) {
        let (stale, after, read) = {
            let mut window = self.window.write().unwrap_or_else(PoisonError::into_inner);
            window.reads += 1;
            (window.stale, window.read_through, window.reads)
        };
        let mut shown = Shown::default();
        let outcome = if stale {
            store.commit_horizon().await.map(|horizon| {
                let mut window = self.window.write().unwrap_or_else(PoisonError::into_inner);
                shown.unshown = window.restart(horizon.position);
                ReadOutcome::CaughtUp { held_back: horizon.held_back() }
            })
        } else {
            store.read_committed(everything, after, READ_LOGS).await.map(|page| {
                let mut window = self.window.write().unwrap_or_else(PoisonError::into_inner);
                for (position, log) in page.logs {
                    // The committer may have given it meanwhile.
                    if position > window.read_through {
                        let log = Arc::new(SharedLog::new(log));
                        shown.logs.push(log.clone());
                        window.push(position, log);
                    }
                }
                window.read_through = window.read_through.max(page.read_through);
                window.failed = false;
                shown.unshown = window.settle_expected(read, !page.more);
                if page.more { ReadOutcome::More } else { ReadOutcome::CaughtUp { held_back: page.held_back } }
            })
        };
        let outcome = outcome.map_err(|error| {
            tracing::warn!(%error, "the commit tail could not read; followers read storage themselves");
            let mut window = self.window.write().unwrap_or_else(PoisonError::into_inner);
            window.failed = true;
            shown.unshown = window.forget_expected();
        });
        self.changed.send_modify(|changes| *changes = changes.wrapping_add(1));
        (outcome, shown)
    }
}

/// What a read of the commit tail passes on to the followers of single
/// sequences.
#[derive(Debug, Default)]
pub(super) struct Shown {
    /// The logs it added to the window, in commit order.
    pub(super) logs: Vec<Arc<SharedLog>>,
    /// The sequences of expected appends it did not show (`None`: some,
    /// too many to name): their followers read storage instead.
    pub(super) unshown: Vec<Option<Vec<Uuid>>>,
}

enum ReadOutcome {
    /// A full read: more is waiting.
    More,
    /// The window reaches the horizon; `held_back` as the read said.
    CaughtUp { held_back: bool },
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::live::Hub;
    use crate::model::{Limits, LogDraft, LogType, NewLog};

    fn new_log(message: &str) -> NewLog {
        LogDraft { job_run_id: Uuid::now_v7().to_string(), message: message.into(), ..LogDraft::default() }
            .validate(LogType::Job, Utc::now(), &Limits::default())
            .unwrap()
    }

    /// What SQLite's writer answers for `count` logs from position `first`.
    fn span(first: i64, count: i64) -> CommitSpan {
        CommitSpan {
            after: Position::before(first),
            positions: (first..first + count).map(|commit| Position { commit, index: 0 }).collect(),
            through: Position::before(first + count),
        }
    }

    fn messages(tail: &CommitTail, after: Position) -> Vec<String> {
        match tail.matches_after(after, &LogFilter::default(), 100) {
            Matches::Found { logs, .. } => logs.iter().map(|(_, log)| log.message.clone()).collect(),
            Matches::Unknown => panic!("the window does not reach {after:?}"),
        }
    }

    #[test]
    fn the_committer_gives_the_tail_what_continues_it_and_the_reader_reads_the_rest() {
        let hub = Hub::new();
        let (tail, mut unread) = hub.commit_tail();
        unread.borrow_and_update();
        hub.committed(vec![(new_log("before anyone follows"), 1)], Some(span(1, 1)));
        assert!(unread.has_changed().unwrap(), "no one follows: the reader starts afresh when someone does");
        unread.borrow_and_update();
        {
            // What the reader's first read leaves: a live window, ending at
            // the horizon.
            let mut window = tail.window.write().unwrap();
            (window.start, window.read_through, window.stale) = (Position::before(2), Position::before(2), false);
        }
        hub.committed(vec![(new_log("a"), 2), (new_log("b"), 3)], Some(span(2, 2)));
        assert!(!unread.has_changed().unwrap(), "the tail took them: nothing to read");
        assert_eq!(messages(&tail, Position::before(2)), ["a", "b"]);

        hub.committed(vec![(new_log("after a gap"), 4)], Some(span(6, 1)));
        assert!(unread.has_changed().unwrap(), "another process committed 4 and 5: the reader reads storage");
        assert_eq!(messages(&tail, Position::before(2)), ["a", "b"], "nothing past the gap is taken");
        unread.borrow_and_update();
        hub.committed(vec![(new_log("c"), 5)], None);
        assert!(unread.has_changed().unwrap(), "a store that cannot tell where its logs lie: the reader reads");
    }

    #[test]
    fn expected_appends_are_shown_by_a_later_read_or_sent_to_storage() {
        let tail = CommitTail::default();
        let run = Uuid::now_v7();
        assert_eq!(tail.expect(5, Some(vec![run])), Err(Some(vec![run])), "no window is kept");
        let unshown = tail.window.write().unwrap().restart(Position::before(10));
        assert!(unshown.is_empty());
        assert_eq!(tail.expect(9, Some(vec![run])), Err(Some(vec![run])), "committed before the window began");
        // Told of while the first read is under way.
        tail.window.write().unwrap().reads = 1;
        assert_eq!(tail.expect(10, Some(vec![run])), Ok(()));
        assert_eq!(tail.expect(12, None), Ok(()));

        let mut window = tail.window.write().unwrap();
        window.read_through = Position::before(11);
        assert!(window.settle_expected(1, true).is_empty(), "10 is shown; 12 came after that read began");
        window.reads += 1;
        assert!(window.settle_expected(2, false).is_empty(), "a full page: more reads follow at once");
        window.reads += 1;
        assert_eq!(window.settle_expected(3, true), [None], "12 is held back: its followers read storage");
        assert!(window.expected.is_empty());
        drop(window);

        assert_eq!(tail.expect(13, Some(vec![run])), Ok(()));
        let mut window = tail.window.write().unwrap();
        window.reads += 1;
        assert!(window.settle_expected(4, false).is_empty(), "one full page since");
        window.reads += 1;
        assert_eq!(window.settle_expected(5, false), [Some(vec![run])], "two full pages: the tail is far behind");
        drop(window);

        assert_eq!(tail.expect(10, Some(vec![run])), Ok(()), "shown already: nothing to wait for");
        assert!(tail.window.read().unwrap().expected.is_empty());
        assert_eq!(tail.expect(11, Some(vec![run])), Ok(()));
        let mut window = tail.window.write().unwrap();
        window.stale = true;
        assert_eq!(window.forget_expected(), [Some(vec![run])], "no one follows any more");
    }
}
