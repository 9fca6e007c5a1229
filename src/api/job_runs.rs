//! JobRunService: completing job runs and reading their state.

use std::sync::Arc;

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::access::principal;
use super::convert::{completion_draft, job_run_to_proto};
use super::error::ApiError;
use crate::auth::Principal;
use crate::model::{Violations, required_id};
use crate::proto::v1 as pb;
use crate::proto::v1::job_run_service_server::JobRunService;
use crate::store::LogStore;

/// Serves JobRunService.
#[derive(Clone)]
pub struct JobRuns {
    store: Arc<dyn LogStore>,
}

impl JobRuns {
    pub fn new(store: Arc<dyn LogStore>) -> Self {
        JobRuns { store }
    }

    async fn complete(&self, request: pb::CompleteJobRunRequest) -> Result<pb::JobRun, ApiError> {
        let mut violations = Violations::default();
        let draft = completion_draft(request, &mut violations);
        let (id, completion) = violations.judge(draft.validate(Utc::now()))?;
        let run = self.store.complete_job_run(id, &completion).await?;
        tracing::info!(job_run_id = %id, outcome = %completion.outcome, "job run completed");
        Ok(job_run_to_proto(run))
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

    async fn get_job_run(
        &self,
        request: Request<pb::GetJobRunRequest>,
    ) -> Result<Response<pb::GetJobRunResponse>, Status> {
        let job_run = self.get(&principal(&request)?, request.into_inner()).await?;
        Ok(Response::new(pb::GetJobRunResponse { job_run: Some(job_run) }))
    }
}
