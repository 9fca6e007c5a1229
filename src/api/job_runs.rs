//! JobRunService: starting, listing and completing job runs, and reading
//! their state.

use std::sync::Arc;

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::access::principal;
use super::convert::{completion_draft, job_run_to_proto, run_query_draft, start_draft};
use super::error::ApiError;
use super::page_token;
use crate::auth::Principal;
use crate::live::Hub;
use crate::model::{Owner, RunCursor, RunQuery, Violations, required_id};
use crate::proto::v1 as pb;
use crate::proto::v1::job_run_service_server::JobRunService;
use crate::store::LogStore;

/// Serves JobRunService.
#[derive(Clone)]
pub struct JobRuns {
    store: Arc<dyn LogStore>,
    /// Told of completions and deletions, which followers read from storage.
    hub: Arc<Hub>,
}

impl JobRuns {
    pub fn new(store: Arc<dyn LogStore>, hub: Arc<Hub>) -> Self {
        JobRuns { store, hub }
    }

    async fn complete(&self, request: pb::CompleteJobRunRequest) -> Result<pb::JobRun, ApiError> {
        let mut violations = Violations::default();
        let draft = completion_draft(request, &mut violations);
        let (id, completion) = violations.judge(draft.validate(Utc::now()))?;
        let run = self.store.complete_job_run(id, &completion).await?;
        self.hub.storage_changed([id]);
        tracing::info!(job_run_id = %id, outcome = %completion.outcome, "job run completed");
        Ok(job_run_to_proto(run))
    }

    async fn start(&self, principal: &Principal, request: pb::StartJobRunRequest) -> Result<pb::JobRun, ApiError> {
        let (id, identity) = start_draft(request).validate()?;
        principal.may_write(&Owner::Job { job_run_id: id }, || "job_run_id".into())?;
        let run = self.store.start_job_run(id, &identity, Utc::now()).await?;
        tracing::info!(job_run_id = %id, name = %identity.name, "job run started");
        Ok(job_run_to_proto(run))
    }

    async fn list(
        &self,
        principal: &Principal,
        request: pb::ListJobRunsRequest,
    ) -> Result<pb::ListJobRunsResponse, ApiError> {
        let mut violations = Violations::default();
        let (draft, page_token) = run_query_draft(request, &mut violations);
        let (mut filter, limit) = violations.judge(draft.validate())?;
        // A job-run token lists its own run, whatever else it asks.
        filter.ids = principal.own_job_run().into_iter().collect();
        let after = match page_token.as_str() {
            "" => None,
            token => Some(
                page_token::decode_runs(token, &filter).map_err(|problem| Violations::one("page_token", problem))?,
            ),
        };
        let query = RunQuery { filter, after, limit };
        let runs = self.store.list_job_runs(&query).await?;
        let next_page_token = match runs.last() {
            Some(last) if runs.len() == limit => page_token::encode_runs(RunCursor::of(last), &query.filter),
            _ => String::new(),
        };
        Ok(pb::ListJobRunsResponse { job_runs: runs.into_iter().map(job_run_to_proto).collect(), next_page_token })
    }

    async fn get(&self, principal: &Principal, request: pb::GetJobRunRequest) -> Result<pb::JobRun, ApiError> {
        let id = required_id("job_run_id", &request.job_run_id)?;
        principal.may_read_job_run(id)?;
        match self.store.job_run(id).await? {
            Some(run) => Ok(job_run_to_proto(run)),
            None => Err(ApiError::NotFound(format!("job run {id} has neither logged nor been completed"))),
        }
    }
}

impl JobRuns {
    async fn delete(&self, request: pb::DeleteJobRunRequest) -> Result<pb::DeleteJobRunResponse, ApiError> {
        let id = required_id("job_run_id", &request.job_run_id)?;
        let Some((run, deleted)) = self.store.delete_job_run(id, Utc::now()).await? else {
            return Err(ApiError::NotFound(format!("job run {id} has neither logged nor been completed")));
        };
        self.hub.storage_changed([id]);
        tracing::info!(job_run_id = %id, deleted, "job run's logs deleted");
        let deleted_logs = i64::try_from(deleted).unwrap_or(i64::MAX);
        Ok(pb::DeleteJobRunResponse { job_run: Some(job_run_to_proto(run)), deleted_logs })
    }
}

#[tonic::async_trait]
impl JobRunService for JobRuns {
    async fn delete_job_run(
        &self,
        request: Request<pb::DeleteJobRunRequest>,
    ) -> Result<Response<pb::DeleteJobRunResponse>, Status> {
        Ok(Response::new(self.delete(request.into_inner()).await?))
    }

    async fn complete_job_run(
        &self,
        request: Request<pb::CompleteJobRunRequest>,
    ) -> Result<Response<pb::CompleteJobRunResponse>, Status> {
        let job_run = self.complete(request.into_inner()).await?;
        Ok(Response::new(pb::CompleteJobRunResponse { job_run: Some(job_run) }))
    }

    async fn start_job_run(
        &self,
        request: Request<pb::StartJobRunRequest>,
    ) -> Result<Response<pb::StartJobRunResponse>, Status> {
        let job_run = self.start(&principal(&request)?, request.into_inner()).await?;
        Ok(Response::new(pb::StartJobRunResponse { job_run: Some(job_run) }))
    }

    async fn list_job_runs(
        &self,
        request: Request<pb::ListJobRunsRequest>,
    ) -> Result<Response<pb::ListJobRunsResponse>, Status> {
        Ok(Response::new(self.list(&principal(&request)?, request.into_inner()).await?))
    }

    async fn get_job_run(
        &self,
        request: Request<pb::GetJobRunRequest>,
    ) -> Result<Response<pb::GetJobRunResponse>, Status> {
        let job_run = self.get(&principal(&request)?, request.into_inner()).await?;
        Ok(Response::new(pb::GetJobRunResponse { job_run: Some(job_run) }))
    }
}
