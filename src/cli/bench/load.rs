//! The load itself: writers that write as fast as they are answered, each
//! on a connection of its own, recording every write's size and round trip.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::cli::connection::Client;
use crate::proto::v1 as pb;
use crate::proto::v1::job_log_service_client::JobLogServiceClient;
use crate::proto::v1::job_run_service_client::JobRunServiceClient;
use crate::proto::v1::log_ingest_service_client::LogIngestServiceClient;

/// Batches of one IngestLogs stream in flight at once.
const STREAM_IN_FLIGHT: usize = 16;

/// Each write's logs and round trip.
#[derive(Clone, Default)]
pub struct Acks(Arc<Mutex<Vec<(usize, Duration)>>>);

impl Acks {
    pub fn record(&self, logs: usize, round_trip: Duration) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push((logs, round_trip));
    }

    fn take(&self) -> Vec<(usize, Duration)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

/// What a load measured.
pub struct Measured {
    /// Logs (or calls) acknowledged.
    pub count: usize,
    pub elapsed: Duration,
    /// Round trips, sorted.
    pub round_trips: Vec<Duration>,
}

impl Measured {
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    /// The round trip at `fraction` (0.5 for the median), in milliseconds.
    pub fn millis_at(&self, fraction: f64) -> f64 {
        quantile_millis(&self.round_trips, fraction)
    }
}

/// The value at `fraction` of sorted durations, in milliseconds.
pub fn quantile_millis(sorted: &[Duration], fraction: f64) -> f64 {
    let index = ((sorted.len().max(1) - 1) as f64 * fraction).round() as usize;
    sorted.get(index).map_or(f64::NAN, |duration| duration.as_secs_f64() * 1_000.0)
}

/// Runs `writer` on each client until `duration` is over.
pub async fn drive<F, Fut>(clients: &[Client], duration: Duration, writer: F) -> Measured
where
    F: Fn(Client, Instant, Acks) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let acks = Acks::default();
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> =
        clients.iter().map(|client| tokio::spawn(writer(client.clone(), deadline, acks.clone()))).collect();
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    let mut acks = acks.take();
    acks.sort_by_key(|(_, round_trip)| *round_trip);
    Measured {
        count: acks.iter().map(|(logs, _)| logs).sum(),
        elapsed,
        round_trips: acks.into_iter().map(|(_, round_trip)| round_trip).collect(),
    }
}

/// `count` logs of `run` with messages of `bytes` bytes.
pub fn entries(run: Uuid, count: usize, bytes: usize) -> Vec<pb::LogEntry> {
    (0..count)
        .map(|index| {
            let head = format!("bench line {index} ");
            pb::LogEntry {
                job_run_id: run.to_string(),
                message: format!("{head}{}", "x".repeat(bytes.saturating_sub(head.len()))),
                ..Default::default()
            }
        })
        .collect()
}

/// A new job run, started under the name `logwell-bench` and labelled with
/// the mode that writes it, so that `logwell runs list --name logwell-bench`
/// finds what a benchmark left on a server.
pub async fn bench_run(client: &Client, mode: &str) -> Uuid {
    let run = Uuid::now_v7();
    let request = pb::StartJobRunRequest {
        job_run_id: run.to_string(),
        name: "logwell-bench".into(),
        labels: [("mode".to_string(), mode.to_string())].into(),
    };
    // A refusal shows in the writes that follow.
    let _ = JobRunServiceClient::new(client.channel.clone()).start_job_run(client.request(request)).await;
    run
}

/// Unary batches of `batch` logs into a run of its own.
pub async fn batches(client: Client, deadline: Instant, acks: Acks, batch: usize, bytes: usize) {
    let (mut writer, run) = (JobLogServiceClient::new(client.channel.clone()), bench_run(&client, "batches").await);
    while Instant::now() < deadline {
        let sent = Instant::now();
        let request = client.request(pb::WriteJobLogsRequest { logs: entries(run, batch, bytes) });
        if writer.write_job_logs(request).await.is_err() {
            return;
        }
        acks.record(batch, sent.elapsed());
    }
}

/// One log per RPC into a run of its own.
pub async fn single(client: Client, deadline: Instant, acks: Acks, bytes: usize) {
    let (mut writer, run) = (JobLogServiceClient::new(client.channel.clone()), bench_run(&client, "single").await);
    while Instant::now() < deadline {
        let sent = Instant::now();
        let request = client.request(pb::WriteJobLogRequest { log: entries(run, 1, bytes).pop() });
        if writer.write_job_log(request).await.is_err() {
            return;
        }
        acks.record(1, sent.elapsed());
    }
}

/// Health checks: calls that touch no storage, for the RPC ceiling.
pub async fn health_checks(client: Client, deadline: Instant, acks: Acks) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(client.channel.clone());
    while Instant::now() < deadline {
        let sent = Instant::now();
        let request = client.request(tonic_health::pb::HealthCheckRequest::default());
        if health.check(request).await.is_err() {
            return;
        }
        acks.record(1, sent.elapsed());
    }
}

/// An IngestLogs stream of batches of `batch` logs into a run of its own,
/// `STREAM_IN_FLIGHT` batches in flight.
pub async fn stream(client: Client, deadline: Instant, acks: Acks, batch: usize, bytes: usize) {
    let run = bench_run(&client, "stream").await;
    let (sender, receiver) = tokio::sync::mpsc::channel(STREAM_IN_FLIGHT);
    let request = client.streaming_request(tokio_stream::wrappers::ReceiverStream::new(receiver));
    let Ok(answers) = LogIngestServiceClient::new(client.channel.clone()).ingest_logs(request).await else { return };
    let mut answers = answers.into_inner();
    let in_flight = Arc::new(Semaphore::new(STREAM_IN_FLIGHT));
    let sent_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let producer = {
        let (in_flight, sent_at) = (in_flight.clone(), sent_at.clone());
        tokio::spawn(async move {
            let mut number = 0u64;
            while Instant::now() < deadline {
                let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
                permit.forget();
                let logs = entries(run, batch, bytes);
                sent_at.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(Instant::now());
                let request = pb::IngestLogsRequest { batch_number: number, r#type: pb::LogType::Job.into(), logs };
                if sender.send(request).await.is_err() {
                    return;
                }
                number += 1;
            }
        })
    };
    while let Ok(Some(answer)) = answers.message().await {
        let sent =
            sent_at.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(answer.batch_number as usize).copied();
        if let (None, Some(sent)) = (answer.refusal, sent) {
            acks.record(answer.receipts.len(), sent.elapsed());
        }
        in_flight.add_permits(1);
    }
    let _ = producer.await;
}
