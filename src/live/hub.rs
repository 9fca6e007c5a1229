//! The subscription hub: who follows which sequence, wake-ups when it has new
//! commits, and a shared tail of its most recent committed logs.
//!
//! A wake-up carries no logs, only "look again". Followers read "after my
//! cursor": from the shared tail when it holds the next seq, else from
//! storage, which stays the only authority. The tail holds logs this
//! process committed, and other processes' commits that the commit tail
//! read for the follows across runs (it reads every commit while anyone
//! follows across runs), contiguous in seq order; a commit it did not see
//! leaves a gap, and a follower facing a gap reads storage. So thousands
//! of followers of one run share one copy of its tail instead of each
//! querying the database, and a slow follower simply reads more on its
//! next pass, from the tail or from storage.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use tokio::sync::watch;
use uuid::Uuid;

use super::SharedLog;
use super::commit_tail::{CommitTail, Shown};
use super::shared_log::held_bytes;
use crate::model::{Log, NewLog, SYSTEM_SEQUENCE};
use crate::store::{ChangesElsewhere, CommitSpan};

/// What the shared tails of this process hold, at most, shared evenly by
/// the followed sequences, each up to `SEQUENCE_TAIL_BYTES`: followers that
/// lag (a crowd behind a burst) catch up from memory, without reading
/// storage, as far as this allows; those further behind read storage.
const TAILS_BYTES: usize = 256 * 1024 * 1024;
const SEQUENCE_TAIL_BYTES: usize = 16 * 1024 * 1024;

/// What changed in a sequence, as counters a follower compares with what it
/// saw last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signal {
    /// Commits already in the shared tail: this process's, or another's
    /// that the commit tail read.
    pub local: u64,
    /// Anything the tail cannot show: another replica's commits that the
    /// commit tail does not read, a lost connection's missed notifications,
    /// a completion. Followers read storage when it moves.
    pub storage: u64,
}

#[derive(Debug)]
struct Sequence {
    signal: watch::Sender<Signal>,
    tail: RwLock<TailLogs>,
}

/// A sequence's most recent committed logs, contiguous in seq order.
#[derive(Debug, Default)]
struct TailLogs {
    logs: VecDeque<Arc<SharedLog>>,
    /// What they hold in memory, roughly (`held_bytes`).
    bytes: usize,
}

#[derive(Debug, Default)]
pub struct Hub {
    sequences: Mutex<HashMap<Uuid, Arc<Sequence>>>,
    followers: AtomicUsize,
    /// Moves at every commit this process makes or hears of, in any
    /// sequence: the wake-up of follows across runs.
    commits: watch::Sender<u64>,
    /// The logs committed anywhere lately, for follows across runs.
    tail: Arc<CommitTail>,
    /// Moves at every commit the commit tail was not given: its reader then
    /// reads storage.
    tail_unread: watch::Sender<u64>,
}

/// A follower's registration. Dropping it unregisters the follower, and the
/// sequence with its last follower.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    sequence_id: Uuid,
    sequence: Arc<Sequence>,
    receiver: Option<watch::Receiver<Signal>>,
    /// The signal as of the last wake-up handled.
    seen: Signal,
}

/// The followed sequences among a commit's logs, each with its logs in seq
/// order; the rest are dropped.
#[derive(Default)]
struct Followed {
    groups: Vec<(Arc<Sequence>, Vec<Log>)>,
    /// Each followed sequence's place in `groups`: a read of the commit
    /// tail may hold thousands of runs' logs.
    places: HashMap<Uuid, usize>,
}

impl Followed {
    /// The group of sequence `id`, if it is followed.
    fn group(&mut self, registered: &HashMap<Uuid, Arc<Sequence>>, id: Uuid) -> Option<usize> {
        if let Some(known) = self.places.get(&id) {
            return Some(*known);
        }
        let sequence = registered.get(&id)?;
        self.groups.push((sequence.clone(), Vec::new()));
        self.places.insert(id, self.groups.len() - 1);
        Some(self.groups.len() - 1)
    }

    fn push(&mut self, group: usize, log: Log) {
        self.groups[group].1.push(log);
    }

    /// Appends each group's logs to its sequence's tail, each tail keeping
    /// `share` bytes at most, and wakes the sequence's followers if that
    /// added any.
    fn extend_tails(self, share: usize) {
        for (sequence, logs) in self.groups {
            let mut tail = sequence.tail.write().unwrap_or_else(PoisonError::into_inner);
            let mut added = false;
            for log in logs {
                match tail.logs.back() {
                    // Given already: the committer and the commit tail's
                    // reads may both give this process's commits.
                    Some(last) if last.seq >= log.seq => continue,
                    // A gap (a commit this process has not seen): start afresh.
                    Some(last) if last.seq + 1 != log.seq => *tail = TailLogs::default(),
                    _ => {}
                }
                added = true;
                tail.bytes += held_bytes(&log);
                tail.logs.push_back(Arc::new(SharedLog::new(log)));
                // The newest log stays, whatever its size.
                while tail.bytes > share && tail.logs.len() > 1 {
                    if let Some(oldest) = tail.logs.pop_front() {
                        tail.bytes -= held_bytes(&oldest);
                    }
                }
            }
            drop(tail);
            if added {
                sequence.signal.send_modify(|signal| signal.local = signal.local.wrapping_add(1));
            }
        }
    }
}

/// What each followed sequence's tail may hold.
fn tail_share(registered: &HashMap<Uuid, Arc<Sequence>>) -> usize {
    TAILS_BYTES.checked_div(registered.len()).unwrap_or(0).min(SEQUENCE_TAIL_BYTES)
}

/// What the shared tail says about the logs after a cursor.
#[derive(Debug, PartialEq)]
pub enum Tail {
    /// The next logs after the cursor, in seq order.
    Next(Vec<Arc<SharedLog>>),
    /// The cursor is the last log this process committed.
    AtEnd,
    /// The tail does not reach the cursor: read storage.
    Unknown,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    fn sequences(&self) -> MutexGuard<'_, HashMap<Uuid, Arc<Sequence>>> {
        // The map stays consistent whatever panicked while holding it.
        self.sequences.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a follower of `sequence`. Subscribe before reading storage:
    /// a commit after this point is then either read or signalled.
    pub fn subscribe(self: &Arc<Self>, sequence_id: Uuid) -> Subscription {
        let sequence = self
            .sequences()
            .entry(sequence_id)
            .or_insert_with(|| {
                Arc::new(Sequence { signal: watch::channel(Signal::default()).0, tail: RwLock::default() })
            })
            .clone();
        let mut receiver = sequence.signal.subscribe();
        let seen = *receiver.borrow_and_update();
        self.followers.fetch_add(1, Ordering::Relaxed);
        Subscription { hub: self.clone(), sequence_id, sequence, receiver: Some(receiver), seen }
    }

    /// Publishes logs this process committed, each with its seq, to the
    /// followers of their sequences, and to the commit tail with where they
    /// lie in the commit order (`span`), if the store could tell. Call in
    /// commit order. While no one follows, the logs are not even looked at.
    pub fn committed(&self, logs: impl IntoIterator<Item = (NewLog, i64)>, span: Option<CommitSpan>) {
        self.commits.send_modify(|commits| *commits = commits.wrapping_add(1));
        // The commit tail's copies, when it can take them: each kind of
        // follow has its own wire form (`SharedLog`).
        let mut across = span.filter(|_| self.tail.is_live()).map(|span| (span, Vec::new()));
        let mut followed = Followed::default();
        let share;
        {
            let sequences = self.sequences();
            share = tail_share(&sequences);
            for (log, seq) in logs {
                let sequence = followed.group(&sequences, log.owner.job_run_id().unwrap_or(SYSTEM_SEQUENCE));
                match (sequence, &mut across) {
                    (None, None) => {}
                    (None, Some((_, tail))) => tail.push(Arc::new(SharedLog::new(Log::committed(log, seq)))),
                    (Some(group), None) => followed.push(group, Log::committed(log, seq)),
                    (Some(group), Some((_, tail))) => {
                        let log = Log::committed(log, seq);
                        tail.push(Arc::new(SharedLog::new(log.clone())));
                        followed.push(group, log);
                    }
                }
            }
        }
        followed.extend_tails(share);
        let fed = across.is_some_and(|(span, logs)| self.tail.take(span, logs));
        if !fed {
            self.commit_tail_must_read();
        }
    }

    /// Passes what the commit tail's read showed to the followers of single
    /// sequences: its logs (other processes' commits, on PostgreSQL) go to
    /// their sequences' tails, so that their followers read memory, not
    /// storage; the followers of what it should have shown and did not read
    /// storage.
    pub(super) fn shown_by_commit_tail(&self, shown: Shown) {
        let mut followed = Followed::default();
        let share;
        {
            let sequences = self.sequences();
            share = tail_share(&sequences);
            for log in &shown.logs {
                if let Some(group) = followed.group(&sequences, log.owner.job_run_id().unwrap_or(SYSTEM_SEQUENCE)) {
                    followed.push(group, Log::clone(log));
                }
            }
        }
        followed.extend_tails(share);
        for sequences in shown.unshown {
            match sequences {
                Some(sequences) => self.signal_storage(sequences),
                None => self.signal_storage_everywhere(),
            }
        }
    }

    fn commit_tail_must_read(&self) {
        self.tail_unread.send_modify(|unread| *unread = unread.wrapping_add(1));
    }

    /// Tells the followers of each sequence to read storage: it changed in a
    /// way the tail does not show.
    pub fn storage_changed(&self, sequences: impl IntoIterator<Item = Uuid>) {
        self.commits.send_modify(|commits| *commits = commits.wrapping_add(1));
        self.commit_tail_must_read();
        self.signal_storage(sequences);
    }

    /// Tells every follower to read storage: wake-ups may have been lost
    /// (a replica's listening connection dropped).
    pub fn storage_changed_everywhere(&self) {
        self.commits.send_modify(|commits| *commits = commits.wrapping_add(1));
        self.commit_tail_must_read();
        self.signal_storage_everywhere();
    }

    fn signal_storage(&self, sequences: impl IntoIterator<Item = Uuid>) {
        let registered = self.sequences();
        for id in sequences {
            if let Some(sequence) = registered.get(&id) {
                sequence.signal.send_modify(|signal| signal.storage = signal.storage.wrapping_add(1));
            }
        }
    }

    fn signal_storage_everywhere(&self) {
        for sequence in self.sequences().values() {
            sequence.signal.send_modify(|signal| signal.storage = signal.storage.wrapping_add(1));
        }
    }

    /// Wake-ups at every commit, in any sequence, from now on.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// The commit tail, and wake-ups at every commit it must read from
    /// storage.
    pub(super) fn commit_tail(&self) -> (Arc<CommitTail>, watch::Receiver<u64>) {
        (self.tail.clone(), self.tail_unread.subscribe())
    }

    /// Followers registered now.
    pub fn followers(&self) -> usize {
        self.followers.load(Ordering::Relaxed)
    }

    /// Sequences with at least one follower now.
    pub fn followed_sequences(&self) -> usize {
        self.sequences().len()
    }
}

impl ChangesElsewhere for Hub {
    fn changed(&self, sequences: Vec<Uuid>) {
        self.storage_changed(sequences);
    }

    /// While the commit tail reads every commit anyway (someone follows
    /// across runs), its read hands the logs on to the followers of their
    /// sequences: one read for all of them, where each would read storage.
    fn appended(&self, sequences: Option<Vec<Uuid>>, commit: i64) {
        self.commits.send_modify(|commits| *commits = commits.wrapping_add(1));
        self.commit_tail_must_read();
        match self.tail.expect(commit, sequences) {
            Ok(()) => {}
            Err(Some(sequences)) => self.signal_storage(sequences),
            Err(None) => self.signal_storage_everywhere(),
        }
    }

    fn maybe_missed(&self) {
        self.storage_changed_everywhere();
    }
}

impl Subscription {
    /// Resolves at the next signal since the last call (at once if one came
    /// in between), with whether storage must be read.
    pub async fn woken(&mut self) -> bool {
        let Some(receiver) = &mut self.receiver else { return true };
        if receiver.changed().await.is_err() {
            // The hub never drops a sequence while a receiver exists.
            std::future::pending::<()>().await;
        }
        let now = *receiver.borrow_and_update();
        let storage_changed = now.storage != self.seen.storage;
        self.seen = now;
        storage_changed
    }

    /// How many follow this subscription's sequence in this process, this
    /// one included.
    pub fn followers_of_sequence(&self) -> usize {
        self.sequence.signal.receiver_count()
    }

    /// The shared tail's logs after `cursor`, at most `limit` of them.
    pub fn tail_after(&self, cursor: i64, limit: usize) -> Tail {
        let tail = &self.sequence.tail.read().unwrap_or_else(PoisonError::into_inner).logs;
        let (Some(first), Some(last)) = (tail.front(), tail.back()) else { return Tail::Unknown };
        if cursor == last.seq {
            return Tail::AtEnd;
        }
        if cursor < first.seq - 1 || cursor > last.seq {
            return Tail::Unknown;
        }
        let start = usize::try_from(cursor + 1 - first.seq).unwrap_or(usize::MAX);
        Tail::Next(tail.iter().skip(start).take(limit).cloned().collect())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let mut sequences = self.hub.sequences();
        if self.sequence.signal.receiver_count() == 0 {
            sequences.remove(&self.sequence_id);
        }
        drop(sequences);
        self.hub.followers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::model::{LogDraft, LogType};

    fn new_log(run: Uuid) -> NewLog {
        LogDraft { job_run_id: run.to_string(), message: "m".into(), ..LogDraft::default() }
            .validate(LogType::Job, Utc::now(), &crate::model::Limits::default())
            .unwrap()
    }

    fn seqs(tail: Tail) -> Vec<i64> {
        match tail {
            Tail::Next(logs) => logs.iter().map(|log| log.seq).collect(),
            other => panic!("expected logs, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn commits_reach_the_tail_and_wake_followers() {
        let hub = Hub::new();
        let run = Uuid::now_v7();
        let mut subscription = hub.subscribe(run);
        assert_eq!(subscription.tail_after(0, 10), Tail::Unknown);
        hub.committed(vec![(new_log(run), 1), (new_log(run), 2), (new_log(run), 3)], None);
        let storage = tokio::time::timeout(Duration::from_secs(1), subscription.woken()).await.expect("woken");
        assert!(!storage, "the tail shows local commits");
        assert_eq!(seqs(subscription.tail_after(0, 10)), [1, 2, 3]);
        assert_eq!(seqs(subscription.tail_after(1, 1)), [2]);
        assert_eq!(subscription.tail_after(3, 10), Tail::AtEnd);
        assert_eq!(subscription.tail_after(7, 10), Tail::Unknown);

        hub.committed(vec![(new_log(run), 9)], None);
        assert_eq!(subscription.tail_after(3, 10), Tail::Unknown, "a gap sends followers to storage");
        assert_eq!(seqs(subscription.tail_after(8, 10)), [9]);

        hub.storage_changed([run]);
        let storage = tokio::time::timeout(Duration::from_secs(1), subscription.woken()).await.expect("woken");
        assert!(storage);
        hub.storage_changed_everywhere();
        assert!(tokio::time::timeout(Duration::from_secs(1), subscription.woken()).await.expect("woken"));
    }

    #[test]
    fn a_tail_keeps_its_share_of_memory() {
        let hub = Hub::new();
        let run = Uuid::now_v7();
        let subscription = hub.subscribe(run);
        let big = |seq| {
            let mut log = new_log(run);
            log.message = "x".repeat(1024 * 1024);
            (log, seq)
        };
        hub.committed((1..=20).map(big), None);
        let kept = seqs(subscription.tail_after(13, 20));
        assert_eq!(kept, (14..=20).collect::<Vec<_>>(), "the newest logs within 16 MiB (2 MiB and more each)");
        assert_eq!(subscription.tail_after(12, 20), Tail::Unknown, "older ones went: storage serves them");
        let held = subscription.sequence.tail.read().unwrap().bytes;
        assert!(held <= SEQUENCE_TAIL_BYTES, "{held} bytes held");
    }

    #[tokio::test]
    async fn unfollowed_sequences_cost_nothing_and_the_last_follower_releases_its_sequence() {
        let hub = Hub::new();
        let (run, other) = (Uuid::now_v7(), Uuid::now_v7());
        let first = hub.subscribe(run);
        let second = hub.subscribe(run);
        hub.committed(vec![(new_log(other), 1)], None);
        assert_eq!(first.tail_after(0, 10), Tail::Unknown, "another run's commit is not in this tail");
        assert_eq!((hub.followers(), hub.followed_sequences()), (2, 1));
        drop(first);
        assert_eq!((hub.followers(), hub.followed_sequences()), (1, 1));
        drop(second);
        assert_eq!((hub.followers(), hub.followed_sequences()), (0, 0));
    }

    #[tokio::test]
    async fn the_commit_tails_reads_extend_the_tails_the_committer_began() {
        let hub = Hub::new();
        let (run, unfollowed) = (Uuid::now_v7(), Uuid::now_v7());
        let mut subscription = hub.subscribe(run);
        hub.committed(vec![(new_log(run), 1), (new_log(run), 2)], None);
        assert!(!subscription.woken().await);
        let read = |seqs: &[(Uuid, i64)]| Shown {
            logs: seqs.iter().map(|(id, seq)| Arc::new(SharedLog::new(Log::committed(new_log(*id), *seq)))).collect(),
            unshown: Vec::new(),
        };
        // The commit tail read this process's commits too, and another's.
        hub.shown_by_commit_tail(read(&[(run, 1), (unfollowed, 1), (run, 2), (run, 3)]));
        let storage = tokio::time::timeout(Duration::from_secs(1), subscription.woken()).await.expect("woken");
        assert!(!storage, "the tail shows them");
        assert_eq!(seqs(subscription.tail_after(0, 10)), [1, 2, 3], "each seq once");

        hub.shown_by_commit_tail(read(&[(run, 2), (run, 3)]));
        assert!(!subscription.receiver.as_mut().unwrap().has_changed().unwrap(), "nothing new: no wake-up");
        hub.shown_by_commit_tail(Shown { logs: Vec::new(), unshown: vec![Some(vec![run])] });
        assert!(subscription.woken().await, "what the read did not show, storage does");
    }
}
