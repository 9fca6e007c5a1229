//! Followers of one run while a writer writes to it at a steady rate: every
//! follower must get every log once, in order; the figure is the time from
//! a write's acknowledgement to each follower's receipt of its logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::load::{entries, quantile_millis};
use crate::cli::connection::Client;
use crate::proto::v1 as pb;
use crate::proto::v1::job_log_service_client::JobLogServiceClient;
use crate::proto::v1::log_stream_service_client::LogStreamServiceClient;
use crate::proto::v1::stream_logs_request::Start;
use crate::proto::v1::stream_logs_response::Event;

/// Logs per write of the paced writer.
const LOGS_PER_WRITE: usize = 10;
/// How long followers may take to receive the last logs after the writer stops.
const DRAIN_WAIT: Duration = Duration::from_secs(10);

pub struct Followed {
    pub followers: usize,
    /// Followers that got every log once, in order.
    pub complete: usize,
    pub logs: usize,
    /// Acknowledged → received, sorted.
    pub delays: Vec<Duration>,
    /// The writes' round trips, sorted: the baseline.
    pub round_trips: Vec<Duration>,
}

/// `followers` followers spread over `connections`, and a writer at `rate`
/// logs a second for `duration`.
pub async fn follow(
    writer: &Client,
    connections: &[Client],
    followers: usize,
    rate: usize,
    duration: Duration,
) -> Followed {
    let run = super::load::bench_run(writer, "follow").await;
    let total = (rate * duration.as_secs() as usize / LOGS_PER_WRITE).max(1) * LOGS_PER_WRITE;
    let mut readers = Vec::new();
    for index in 0..followers {
        let client = &connections[index % connections.len()];
        let request = pb::StreamLogsRequest {
            job_run_id: run.to_string(),
            start: Some(Start::FromNow(true)),
            ..Default::default()
        };
        let Ok(stream) =
            LogStreamServiceClient::new(client.channel.clone()).stream_logs(client.streaming_request(request)).await
        else {
            continue;
        };
        readers.push(tokio::spawn(read(stream.into_inner(), total)));
    }
    let (acked, round_trips) = write_paced(writer, run, rate, total).await;
    let mut delays = Vec::new();
    let mut complete = 0;
    for reader in readers {
        let Ok(Ok(arrivals)) = tokio::time::timeout(DRAIN_WAIT, reader).await else { continue };
        let in_order = arrivals.iter().enumerate().all(|(index, (seq, _))| *seq == index as i64 + 1);
        if in_order && arrivals.len() == total {
            complete += 1;
        }
        delays.extend(
            arrivals.iter().filter_map(|(seq, arrived)| Some(arrived.saturating_duration_since(*acked.get(seq)?))),
        );
    }
    delays.sort();
    Followed { followers, complete, logs: total, delays, round_trips }
}

/// Every log's seq and arrival, until `total` arrived or the stream ended.
async fn read(mut stream: tonic::Streaming<pb::StreamLogsResponse>, total: usize) -> Vec<(i64, Instant)> {
    let mut arrivals = Vec::with_capacity(total);
    while arrivals.len() < total {
        match stream.message().await {
            Ok(Some(pb::StreamLogsResponse { event: Some(Event::Log(log)) })) => {
                arrivals.push((log.seq, Instant::now()))
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    arrivals
}

/// When each seq was acknowledged, and each write's round trip.
type Written = (HashMap<i64, Instant>, Vec<Duration>);

/// Writes `total` logs at `rate` a second, each write on a task of its own
/// so a slow answer does not delay the next; when each seq was acknowledged,
/// and the round trips.
async fn write_paced(client: &Client, run: Uuid, rate: usize, total: usize) -> Written {
    let acked: Arc<Mutex<Written>> = Arc::default();
    let interval = Duration::from_secs_f64(LOGS_PER_WRITE as f64 / rate.max(1) as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut writes = Vec::new();
    for _ in 0..total / LOGS_PER_WRITE {
        ticker.tick().await;
        let (client, acked) = (client.clone(), acked.clone());
        writes.push(tokio::spawn(async move {
            let request = client.request(pb::WriteJobLogsRequest { logs: entries(run, LOGS_PER_WRITE, 200) });
            let sent = Instant::now();
            let Ok(answer) = JobLogServiceClient::new(client.channel.clone()).write_job_logs(request).await else {
                return;
            };
            let now = Instant::now();
            let mut acked = acked.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            acked.0.extend(answer.into_inner().receipts.iter().map(|receipt| (receipt.seq, now)));
            acked.1.push(now - sent);
        }));
    }
    for write in writes {
        let _ = write.await;
    }
    let (seqs, mut round_trips) = std::mem::take(&mut *acked.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    round_trips.sort();
    (seqs, round_trips)
}

impl Followed {
    pub fn delay_millis(&self, fraction: f64) -> f64 {
        quantile_millis(&self.delays, fraction)
    }

    pub fn round_trip_millis(&self, fraction: f64) -> f64 {
        quantile_millis(&self.round_trips, fraction)
    }
}
