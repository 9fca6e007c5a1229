//! The writer pipeline: callers queue their batches; one committer per
//! process drains the queue into shared transactions (group commit), so that
//! a thousand one-log writes cost a few commits, not a thousand; each caller
//! is answered once its part has committed, and the hub is told of the
//! logs, in commit order, for their followers.
//!
//! No artificial wait is needed to form groups: while one group commits, the
//! next accumulates. The queue is bounded in logs; a write that does not fit
//! is refused at once (the caller retries) rather than accepted and dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::live::Hub;
use crate::model::{NewLog, Receipt};
use crate::store::{Appended, CommitSpan, LogStore, StoreError};

/// Logs committed in one transaction, at most.
const MAX_GROUP_LOGS: usize = 10_000;

/// Why a write was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The queue is full; nothing was stored; retry after a short pause.
    #[error("the write queue is full ({queued} logs waiting); retry shortly")]
    Overloaded { queued: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the writer pipeline stopped")]
    Stopped,
}

/// What a write does when the queue has no room for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Refuse at once (the caller retries): unary writes.
    Refuse,
    /// Wait for room, so that the caller's flow control slows its producer:
    /// streaming ingestion.
    Wait,
}

/// Counters of the pipeline, for metrics.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Microseconds spent in group transactions, from begin to commit.
    pub commit_micros: AtomicU64,
    pub commits: AtomicU64,
    pub committed_logs: AtomicU64,
    pub overloaded_writes: AtomicU64,
}

/// A caller's batch, waiting in the queue with its share of the capacity.
struct Pending {
    logs: Vec<NewLog>,
    reply: oneshot::Sender<Result<Vec<Receipt>, StoreError>>,
    _capacity: OwnedSemaphorePermit,
}

/// The handle writers use.
pub struct Ingest {
    queue: mpsc::UnboundedSender<Pending>,
    capacity: Arc<Semaphore>,
    queue_logs: usize,
    stats: Arc<IngestStats>,
}

/// The committer, on a thread and runtime of its own.
pub struct Committer {
    /// Told when the committer has answered everything; dropped unsent if
    /// it panicked.
    finished: oneshot::Receiver<()>,
    closing: CancellationToken,
}

impl Committer {
    /// Closes the queue (later writes fail with `Stopped`), commits and
    /// answers everything queued before, and waits for the committer to end.
    pub async fn finish(self) {
        self.closing.cancel();
        if self.finished.await.is_err() {
            tracing::error!("the committer failed");
        }
    }
}

impl Ingest {
    /// Starts the committer. It runs until it is told to finish, or every
    /// `Ingest` handle is dropped, and the queue is drained.
    ///
    /// It runs on a thread and runtime of its own: a commit is several
    /// round trips between the committer and the database, and on the
    /// server's runtime each waited behind every task ready to run, in a
    /// fan-out thousands of followers' deliveries (a commit of 140 logs
    /// took 270 ms with 10,000 followers of its run, and writers' acks
    /// waited up to 780 ms).
    pub fn start(
        store: Arc<dyn LogStore>,
        hub: Arc<Hub>,
        queue_logs: usize,
    ) -> Result<(Ingest, Committer), std::io::Error> {
        let (queue, receiver) = mpsc::unbounded_channel();
        let stats = Arc::new(IngestStats::default());
        let closing = CancellationToken::new();
        let committer = GroupCommitter { store, hub, stats: stats.clone() };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (done, finished) = oneshot::channel();
        let commit_until = closing.clone();
        std::thread::Builder::new().name("logwell-committer".into()).spawn(move || {
            // Where the kernel refuses, the committer keeps the default slice.
            let _ = crate::scheduling::favour_latency();
            runtime.block_on(committer.commit_forever(receiver, commit_until));
            let _ = done.send(());
        })?;
        let capacity = Arc::new(Semaphore::new(queue_logs));
        Ok((Ingest { queue, capacity, queue_logs, stats }, Committer { finished, closing }))
    }

    /// Stores `logs` atomically, in order; answers once they are committed.
    /// When the queue has no room: refuses at once, or waits for room.
    pub async fn write(&self, logs: Vec<NewLog>, when_full: WhenFull) -> Result<Vec<Receipt>, IngestError> {
        let wanted = u32::try_from(logs.len()).unwrap_or(u32::MAX);
        let room = match when_full {
            WhenFull::Wait if logs.len() <= self.queue_logs => {
                self.capacity.clone().acquire_many_owned(wanted).await.ok()
            }
            WhenFull::Wait | WhenFull::Refuse => self.capacity.clone().try_acquire_many_owned(wanted).ok(),
        };
        let Some(capacity) = room else {
            self.stats.overloaded_writes.fetch_add(1, Ordering::Relaxed);
            return Err(IngestError::Overloaded { queued: self.queued_logs() });
        };
        let (reply, answer) = oneshot::channel();
        self.queue.send(Pending { logs, reply, _capacity: capacity }).map_err(|_| IngestError::Stopped)?;
        Ok(answer.await.map_err(|_| IngestError::Stopped)??)
    }

    /// Logs queued or being committed now.
    pub fn queued_logs(&self) -> usize {
        self.queue_logs - self.capacity.available_permits()
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }
}

/// What the committer task holds.
struct GroupCommitter {
    store: Arc<dyn LogStore>,
    hub: Arc<Hub>,
    stats: Arc<IngestStats>,
}

impl GroupCommitter {
    async fn commit_forever(self, mut queue: mpsc::UnboundedReceiver<Pending>, closing: CancellationToken) {
        loop {
            let next = tokio::select! {
                next = queue.recv() => next,
                () = closing.cancelled(), if !queue.is_closed() => {
                    // What is queued still comes out; nothing more goes in.
                    queue.close();
                    continue;
                }
            };
            let Some(first) = next else { return };
            let mut logs = first.logs.len();
            let mut group = vec![first];
            while logs < MAX_GROUP_LOGS {
                let Ok(next) = queue.try_recv() else { break };
                logs += next.logs.len();
                group.push(next);
            }
            self.commit(group).await;
        }
    }

    /// Commits a group and answers its callers. If the group as a whole
    /// fails for a reason that is not the database being away, one caller's
    /// batch may be to blame: each batch is then retried alone, so that only
    /// its own caller gets the error.
    async fn commit(&self, group: Vec<Pending>) {
        // The queue's room is given back once the group is answered.
        let (logs, answers): (Vec<Vec<NewLog>>, Vec<_>) =
            group.into_iter().map(|pending| (pending.logs, (pending.reply, pending._capacity))).unzip();
        let replies = answers.into_iter().map(|(reply, _capacity)| reply);
        let batches: Vec<&[NewLog]> = logs.iter().map(Vec::as_slice).collect();
        let started = std::time::Instant::now();
        let outcome = self.store.append_batches(&batches).await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats.commit_micros.fetch_add(micros, Ordering::Relaxed);
        match outcome {
            Ok(Appended { batches: results, span }) => {
                let seqs = self.stored(&results);
                // Writers first: telling the hub wakes every follower of the
                // group's runs, thousands perhaps, and a writer woken after
                // them would wait behind them all.
                for (reply, result) in replies.zip(results) {
                    let _ = reply.send(result);
                }
                self.publish(logs, seqs, span);
            }
            Err(error) if batches.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(error));
                }
            }
            Err(StoreError::Unavailable(reason)) => {
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(reason.clone())));
                }
            }
            Err(_) => {
                for (batch, reply) in logs.into_iter().zip(replies) {
                    let result = self.append_alone(batch).await;
                    let _ = reply.send(result);
                }
            }
        }
    }

    async fn append_alone(&self, logs: Vec<NewLog>) -> Result<Vec<Receipt>, StoreError> {
        let Appended { batches: mut results, span } = self.store.append_batches(&[&logs]).await?;
        let seqs = self.stored(&results);
        self.publish(vec![logs], seqs, span);
        results.pop().unwrap_or(Err(StoreError::Internal("the store answered no batch")))
    }

    /// Counts what was stored, and answers the seq of each log the hub is
    /// to be told of, batch by batch: the logs stored now, not those
    /// already stored under their ids (None).
    fn stored(&self, results: &[Result<Vec<Receipt>, StoreError>]) -> Vec<Vec<Option<i64>>> {
        record(&self.stats, results);
        results
            .iter()
            .map(|result| match result {
                Ok(receipts) => receipts.iter().map(|receipt| (!receipt.duplicate).then_some(receipt.seq)).collect(),
                Err(_) => Vec::new(),
            })
            .collect()
    }

    /// Tells the hub of `batches`' logs that `seqs` names, in the order
    /// they took their seqs: each sequence's ascending, as the hub's tails
    /// are; and where they lie in the commit order, if the store knows.
    fn publish(&self, batches: Vec<Vec<NewLog>>, seqs: Vec<Vec<Option<i64>>>, span: Option<CommitSpan>) {
        let stored = batches
            .into_iter()
            .zip(seqs)
            .flat_map(|(logs, seqs)| logs.into_iter().zip(seqs).filter_map(|(log, seq)| Some((log, seq?))));
        self.hub.committed(stored, span);
    }
}

fn record(stats: &IngestStats, results: &[Result<Vec<Receipt>, StoreError>]) {
    let logs: usize = results.iter().filter_map(|result| result.as_ref().ok()).map(Vec::len).sum();
    if logs > 0 {
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.committed_logs.fetch_add(logs as u64, Ordering::Relaxed);
    }
}
