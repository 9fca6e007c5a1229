//! TokenService: minting and revoking job-run tokens.

use std::sync::Arc;

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::convert::{grant_draft, time_to_proto};
use super::error::ApiError;
use crate::auth::{JobRunTokens, MAX_TTL};
use crate::model::{Violations, required_id};
use crate::proto::v1 as pb;
use crate::proto::v1::token_service_server::TokenService;
use crate::store::LogStore;

/// Serves TokenService.
#[derive(Clone)]
pub struct Tokens {
    store: Arc<dyn LogStore>,
    /// `None` without a signing key: then both RPCs are FAILED_PRECONDITION.
    job_run_tokens: Option<Arc<JobRunTokens>>,
}

impl Tokens {
    pub fn new(store: Arc<dyn LogStore>, job_run_tokens: Option<Arc<JobRunTokens>>) -> Self {
        Tokens { store, job_run_tokens }
    }

    fn signer(&self) -> Result<&JobRunTokens, ApiError> {
        self.job_run_tokens.as_deref().ok_or(ApiError::NoSigningKey)
    }

    fn mint(&self, request: pb::MintJobRunTokenRequest) -> Result<pb::MintJobRunTokenResponse, ApiError> {
        let signer = self.signer()?;
        let mut violations = Violations::default();
        let draft = grant_draft(request, &mut violations);
        let grant = violations.judge(draft.validate(Utc::now()))?;
        tracing::info!(
            token_id = %grant.token_id,
            job_run_id = %grant.job_run_id,
            task_run_id = ?grant.task_run_id,
            scopes = %grant.scopes,
            expires_at = %grant.expires_at,
            "job-run token minted"
        );
        Ok(pb::MintJobRunTokenResponse {
            token: signer.mint(&grant),
            token_id: grant.token_id.to_string(),
            expires_at: Some(time_to_proto(grant.expires_at)),
        })
    }

    async fn revoke(&self, request: pb::RevokeJobRunTokenRequest) -> Result<(), ApiError> {
        let signer = self.signer()?;
        let token_id = required_id("token_id", &request.token_id)?;
        // No token outlives MAX_TTL from now, so neither need its revocation.
        let until = Utc::now() + chrono::Duration::from_std(MAX_TTL).unwrap_or(chrono::Duration::MAX);
        self.store.revoke_token(token_id, until).await?;
        signer.revoke(token_id);
        tracing::info!(%token_id, "job-run token revoked");
        Ok(())
    }
}

#[tonic::async_trait]
impl TokenService for Tokens {
    async fn mint_job_run_token(
        &self,
        request: Request<pb::MintJobRunTokenRequest>,
    ) -> Result<Response<pb::MintJobRunTokenResponse>, Status> {
        Ok(Response::new(self.mint(request.into_inner())?))
    }

    async fn revoke_job_run_token(
        &self,
        request: Request<pb::RevokeJobRunTokenRequest>,
    ) -> Result<Response<pb::RevokeJobRunTokenResponse>, Status> {
        self.revoke(request.into_inner()).await?;
        Ok(Response::new(pb::RevokeJobRunTokenResponse {}))
    }
}
