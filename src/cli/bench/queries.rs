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
    let mut timed = Vec::new();
    let list = |order: pb::SortOrder| pb::ListLogsRequest {
        job_run_id: run.to_string(),
        page_size: 100,
        order: order.into(),
        ..Default::default()
    };
    let by_level = || vec![pb::CountGrouping { by: Some(pb::count_grouping::By::Field(pb::CountField::Level.into())) }];
    let query = LogQueryServiceClient::new(client.channel.clone());
    let runs = JobRunServiceClient::new(client.channel.clone());

    timed.push(
        time("a run's first page (100 logs)", repeat, || {
            let request = client.request(list(pb::SortOrder::Ascending));
            let mut query = query.clone();
            async move { query.list_logs(request).await.map(drop) }
        })
        .await,
    );
    timed.push(
        time("a run's last page, newest first", repeat, || {
            let request = client.request(list(pb::SortOrder::Descending));
            let mut query = query.clone();
            async move { query.list_logs(request).await.map(drop) }
        })
        .await,
    );
    timed.push(
        time("a run's errors", repeat, || {
            let filter = pb::LogFilter { min_level: pb::LogLevel::Error.into(), ..of_run.clone() };
            let request =
                client.request(pb::ListLogsRequest { filter: Some(filter), page_size: 100, ..Default::default() });
            let mut query = query.clone();
            async move { query.list_logs(request).await.map(drop) }
        })
        .await,
    );
    timed.push(
        time("a run's counts by level", repeat, || {
            let request = client.request(pb::CountLogsRequest {
                filter: Some(of_run.clone()),
                group_by: by_level(),
                ..Default::default()
            });
            let mut query = query.clone();
            async move { query.count_logs(request).await.map(drop) }
        })
        .await,
    );
    timed.push(
        time("a run's text search", repeat, || {
            let filter = pb::LogFilter { text: format!("bench line {} ", FILL_BATCH / 2), ..of_run.clone() };
            let request =
                client.request(pb::ListLogsRequest { filter: Some(filter), page_size: 100, ..Default::default() });
            let mut query = query.clone();
            async move { query.list_logs(request).await.map(drop) }
        })
        .await,
    );
    timed.push(
        time("runs active in the last hour (ListJobRuns)", repeat, || {
            let since = chrono::Utc::now() - chrono::TimeDelta::hours(1);
            let start_time = Some(prost_types::Timestamp { seconds: since.timestamp(), nanos: 0 });
            let request = client.request(pb::ListJobRunsRequest { start_time, page_size: 100, ..Default::default() });
            let mut runs = runs.clone();
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
