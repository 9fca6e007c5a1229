//! Sends logs read by a client command (`push`, `run`) to the server:
//! batched (a batch leaves when it is full or its oldest log has waited
//! `LINGER`), each log with a client id, one batch at a time so that the
//! stored order is the order read, and each batch sent again until it is
//! acknowledged. Resent logs keep their ids, so a batch stored before its
//! answer was lost is not stored twice. While the server is away, logs wait
//! in a backlog that spills to disk.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::CliError;
use super::backlog::Backlog;
use super::connection::Client;
use super::retry::{Backoff, retryable};
use crate::model::LogType;
use crate::proto::v1 as pb;

/// How long a log may wait for others to fill its batch.
const LINGER: Duration = Duration::from_millis(100);
/// Logs in one batch, at most: the server's default bound.
const MAX_BATCH_LOGS: usize = 1_000;
/// Encoded bytes in one batch, at most (well under the server's default
/// bound on a request, 16 MiB), unless one log alone is larger.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Encoded bytes of logs kept in memory while they wait; more go to disk.
const MEMORY_BACKLOG_BYTES: usize = 32 << 20;

/// What was stored.
#[derive(Debug, Default, Clone, Copy)]
pub struct Shipped {
    /// Logs the server acknowledged.
    pub stored: u64,
    /// Of those, logs it already held (a resend after a lost answer).
    pub duplicates: u64,
}

pub struct Shipper {
    shared: Arc<Shared>,
    task: JoinHandle<Result<Shipped, CliError>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
}

struct State {
    backlog: Backlog,
    /// Since when the oldest waiting log has waited.
    waiting_since: Option<Instant>,
    /// No more logs will come.
    closed: bool,
    /// The server refused a batch for good: further logs are not kept.
    refused: bool,
    /// Logs that could not even be kept (the disk failed) or came after a refusal.
    dropped: usize,
}

impl Shipper {
    /// Starts sending logs of `log_type` through `client`.
    pub fn start(client: Client, log_type: LogType) -> Shipper {
        let state = State {
            backlog: Backlog::new(MEMORY_BACKLOG_BYTES),
            waiting_since: None,
            closed: false,
            refused: false,
            dropped: 0,
        };
        let shared = Arc::new(Shared { state: Mutex::new(state), wake: Notify::new() });
        let task = tokio::spawn(ship(client, log_type, shared.clone()));
        Shipper { shared, task }
    }

    /// Queues a log; gives it a client id (a UUIDv7) if it has none. Never
    /// waits on the server.
    pub fn send(&self, mut entry: pb::LogEntry) {
        if entry.id.is_empty() {
            entry.id = uuid::Uuid::now_v7().to_string();
        }
        let mut state = self.shared.lock();
        if state.refused {
            state.dropped += 1;
            return;
        }
        let was_spilling = state.backlog.spill_path().is_some();
        if let Err(error) = state.backlog.push(entry) {
            if state.dropped == 0 {
                eprintln!("logwell: cannot keep logs on disk ({error}); logs are being lost");
            }
            state.dropped += 1;
            return;
        }
        if let (false, Some(path)) = (was_spilling, state.backlog.spill_path()) {
            eprintln!(
                "logwell: {} logs waiting; keeping more in {} until they are stored",
                state.backlog.len(),
                path.display()
            );
        }
        let waiting = state.backlog.len();
        if state.waiting_since.is_none() {
            state.waiting_since = Some(Instant::now());
            self.shared.wake.notify_one();
        } else if waiting == MAX_BATCH_LOGS {
            self.shared.wake.notify_one();
        }
    }

    /// A view of how many logs are not yet stored, that outlives `finish`.
    pub fn waiting(&self) -> Waiting {
        Waiting(self.shared.clone())
    }

    /// Sends what is left and waits until all of it is stored.
    pub async fn finish(self) -> Result<Shipped, CliError> {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        match self.task.await {
            Ok(result) => result,
            Err(error) => Err(CliError::Io(std::io::Error::other(error))),
        }
    }
}

/// How many logs a shipper has not yet stored.
pub struct Waiting(Arc<Shared>);

impl Waiting {
    pub fn count(&self) -> usize {
        self.0.lock().backlog.len()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the backlog whole: go on.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next batch once it is due, or None once closed and empty.
    async fn next_batch(&self) -> Result<Option<Vec<pb::LogEntry>>, CliError> {
        loop {
            let wait = {
                let mut state = self.lock();
                let waiting = state.backlog.len();
                let waited = state.waiting_since.map_or(Duration::ZERO, |since| since.elapsed());
                if waiting == 0 && state.closed {
                    return Ok(None);
                }
                if waiting > 0 && (waiting >= MAX_BATCH_LOGS || state.closed || waited >= LINGER) {
                    let batch = state.backlog.take(MAX_BATCH_LOGS, MAX_BATCH_BYTES)?;
                    if state.backlog.len() == 0 {
                        state.waiting_since = None;
                    }
                    return Ok(Some(batch));
                }
                (waiting > 0).then(|| LINGER - waited)
            };
            match wait {
                Some(wait) => _ = tokio::time::timeout(wait, self.wake.notified()).await,
                None => self.wake.notified().await,
            }
        }
    }
}

async fn ship(client: Client, log_type: LogType, shared: Arc<Shared>) -> Result<Shipped, CliError> {
    let mut shipped = Shipped::default();
    let mut backoff = Backoff::default();
    while let Some(batch) = shared.next_batch().await? {
        let mut failures = 0;
        loop {
            match write(&client, log_type, batch.clone()).await {
                Ok(receipts) => {
                    shipped.stored += receipts.len() as u64;
                    shipped.duplicates += receipts.iter().filter(|receipt| receipt.duplicate).count() as u64;
                    if failures > 0 {
                        eprintln!("logwell: storing logs again; {} waiting", shared.lock().backlog.len());
                    }
                    backoff.reset();
                    break;
                }
                Err(status) if retryable(&status) => {
                    failures += 1;
                    let wait = backoff.after(&status);
                    let waiting = batch.len() + shared.lock().backlog.len();
                    eprintln!(
                        "logwell: cannot store logs ({:?}: {}); {waiting} waiting, trying again in {:.1} s",
                        status.code(),
                        status.message(),
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(status) => {
                    let mut state = shared.lock();
                    state.refused = true;
                    let logs = batch.len() + state.backlog.len() + state.dropped;
                    return Err(CliError::NotStored { logs, status });
                }
            }
        }
    }
    let dropped = shared.lock().dropped;
    if dropped > 0 {
        let status = tonic::Status::data_loss("the disk refused the backlog");
        return Err(CliError::NotStored { logs: dropped, status });
    }
    Ok(shipped)
}

/// One batch through the write service of its type.
async fn write(
    client: &Client,
    log_type: LogType,
    logs: Vec<pb::LogEntry>,
) -> Result<Vec<pb::LogReceipt>, tonic::Status> {
    use crate::proto::v1::job_log_service_client::JobLogServiceClient;
    use crate::proto::v1::system_log_service_client::SystemLogServiceClient;
    use crate::proto::v1::task_log_service_client::TaskLogServiceClient;
    let channel = client.channel.clone();
    let receipts = match log_type {
        LogType::System => {
            let request = client.request(pb::WriteSystemLogsRequest { logs });
            SystemLogServiceClient::new(channel).write_system_logs(request).await?.into_inner().receipts
        }
        LogType::Job => {
            let request = client.request(pb::WriteJobLogsRequest { logs });
            JobLogServiceClient::new(channel).write_job_logs(request).await?.into_inner().receipts
        }
        LogType::Task => {
            let request = client.request(pb::WriteTaskLogsRequest { logs });
            TaskLogServiceClient::new(channel).write_task_logs(request).await?.into_inner().receipts
        }
    };
    Ok(receipts)
}
