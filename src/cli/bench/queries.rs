//! A mix of the reads people make, over a run the benchmark writes first:
//! each query repeated, its latencies' median and 99th percentile.

use std::time::{Duration, Instant};

use super::load::{entries, quantile_millis};
use crate::cli::connection::Client;
use crate::proto::v1 as pb;
use crate::proto::v1::job_log_service_client::JobLogServiceClient;
use crate::proto::v1::job_run_service_client::JobRunServiceClient;
use crate::proto::v1::log_query_service_client::LogQueryServiceClient;

/// Logs per write while filling the run.
const FILL_BATCH: usize = 1_000;

/// One query's latencies, sorted.
pub struct Timed {
    pub name: &'static str,
    pub latencies: Vec<Duration>,
    pub failures: usize,
}

impl Timed {
    pub fn millis_at(&self, fraction: f64) -> f64 {
        quantile_millis(&self.latencies, fraction)
    }
}

/// Writes a run of `logs` logs, then times each query `repeat` times.
pub async fn queries(client: &Client, logs: usize, repeat: usize) -> Result<Vec<Timed>, tonic::Status> {
    let run = super::load::bench_run(client, "query").await;
    let mut writer = JobLogServiceClient::new(client.channel.clone());
    for first in (0..logs).step_by(FILL_BATCH) {
        let mut batch = entries(run, FILL_BATCH.min(logs - first), 200);
        for (offset, entry) in batch.iter_mut().enumerate() {
            if (first + offset) % 100 == 0 {
                entry.level = pb::LogLevel::Error.into();
            }
        }
        writer.write_job_logs(client.request(pb::WriteJobLogsRequest { logs: batch })).await?;
    }
    let of_run = pb::LogFilter { job_run_ids: vec![run.to_string()], ..Default::default() };
    let page = |filter: pb::LogFilter, order: pb::SortOrder| pb::ListLogsRequest {
        filter: Some(filter),
        page_size: 100,
        order: order.into(),
        ..Default::default()
    };
    let listings = [
        ("a run's first page (100 logs)", page(of_run.clone(), pb::SortOrder::Ascending)),
        ("a run's last page, newest first", page(of_run.clone(), pb::SortOrder::Descending)),
        (
            "a run's errors",
            page(pb::LogFilter { min_level: pb::LogLevel::Error.into(), ..of_run.clone() }, pb::SortOrder::Ascending),
        ),
        (
            "a run's text search",
            page(
                pb::LogFilter { text: format!("bench line {} ", FILL_BATCH / 2), ..of_run.clone() },
                pb::SortOrder::Ascending,
            ),
        ),
    ];
    let query = LogQueryServiceClient::new(client.channel.clone());
    let mut timed = Vec::new();
    for (name, listing) in listings {
        timed.push(
            time(name, repeat, || {
                let (request, mut query) = (client.request(listing.clone()), query.clone());
                async move { query.list_logs(request).await.map(drop) }
            })
            .await,
        );
    }
    let by_level = pb::CountGrouping { by: Some(pb::count_grouping::By::Field(pb::CountField::Level.into())) };
    let counts = pb::CountLogsRequest { filter: Some(of_run), group_by: vec![by_level], ..Default::default() };
    timed.push(
        time("a run's counts by level", repeat, || {
            let (request, mut query) = (client.request(counts.clone()), query.clone());
            async move { query.count_logs(request).await.map(drop) }
        })
        .await,
    );
    let runs = JobRunServiceClient::new(client.channel.clone());
    let since = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    let start_time = Some(prost_types::Timestamp { seconds: since.timestamp(), nanos: 0 });
    let recent = pb::ListJobRunsRequest { start_time, page_size: 100, ..Default::default() };
    timed.push(
        time("runs active in the last hour (ListJobRuns)", repeat, || {
            let (request, mut runs) = (client.request(recent.clone()), runs.clone());
            async move { runs.list_job_runs(request).await.map(drop) }
        })
        .await,
    );
    Ok(timed)
}

/// Runs `call` `repeat` times, one after another.
async fn time<F, Fut>(name: &'static str, repeat: usize, call: F) -> Timed
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), tonic::Status>>,
{
    let mut latencies = Vec::with_capacity(repeat);
    let mut failures = 0;
    for _ in 0..repeat {
        let started = Instant::now();
        match call().await {
            Ok(()) => latencies.push(started.elapsed()),
            Err(_) => failures += 1,
        }
    }
    latencies.sort();
    Timed { name, latencies, failures }
}
