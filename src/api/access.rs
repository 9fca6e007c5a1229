//! Authentication and scopes at the gRPC edge: a tower layer in front of every
//! service reads the bearer token, checks the scope the RPC needs, and hands
//! the principal to the handler in the request's extensions. Unauthorized
//! calls never reach a handler, so their answer cannot depend on what is
//! stored.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;

use super::error::ApiError;
use crate::auth::{AuthError, Authentication, JobRunTokens, Principal, Scope};

/// Who may call what.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    pub authentication: Authentication,
    /// Mints and checks job-run tokens, if a signing key is configured (also
    /// when authentication is off: minting still works).
    pub job_run_tokens: Option<Arc<JobRunTokens>>,
    /// The health service answers without a token.
    pub public_health: bool,
    /// Reflection answers without a token (it describes the API, not data).
    pub public_reflection: bool,
}

impl AccessPolicy {
    /// No authentication: anyone may call anything.
    pub fn open() -> AccessPolicy {
        AccessPolicy {
            authentication: Authentication::Off,
            job_run_tokens: None,
            public_health: true,
            public_reflection: true,
        }
    }

    /// The principal calling `path`, if the call may go on; `None` for a
    /// public service.
    fn admit(&self, path: &str, headers: &http::HeaderMap) -> Result<Option<Principal>, AuthError> {
        let needed = match requirement(path) {
            Requirement::Health if self.public_health => return Ok(None),
            Requirement::Reflection if self.public_reflection => return Ok(None),
            Requirement::Health | Requirement::Reflection | Requirement::Token => None,
            Requirement::Scope(scope) => Some(scope),
        };
        match needed {
            Some(scope) => self.authorise(scope, path.trim_start_matches('/'), headers).map(Some),
            None => self.authenticate(headers).map(Some),
        }
    }

    /// The principal calling `what`, which needs `scope`: for entry points
    /// other than gRPC calls too (OTLP/HTTP).
    pub(crate) fn authorise(
        &self,
        scope: Scope,
        what: &str,
        headers: &http::HeaderMap,
    ) -> Result<Principal, AuthError> {
        let principal = self.authenticate(headers)?;
        principal.require(scope, what)?;
        Ok(principal)
    }

    fn authenticate(&self, headers: &http::HeaderMap) -> Result<Principal, AuthError> {
        self.authentication.authenticate(bearer(headers)?, self.job_run_tokens.as_deref())
    }
}

/// What a call to a gRPC path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requirement {
    Health,
    Reflection,
    Scope(Scope),
    /// Any valid token: paths that name no service of ours (they end in
    /// UNIMPLEMENTED, but only for callers who may know that).
    Token,
}

fn requirement(path: &str) -> Requirement {
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or_default();
    match (service, method) {
        ("grpc.health.v1.Health", _) => Requirement::Health,
        ("grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection", _) => {
            Requirement::Reflection
        }
        (
            "logwell.v1.SystemLogService"
            | "logwell.v1.JobLogService"
            | "logwell.v1.TaskLogService"
            | "logwell.v1.LogIngestService"
            | "opentelemetry.proto.collector.logs.v1.LogsService",
            _,
        ) => Requirement::Scope(Scope::Write),
        ("logwell.v1.LogQueryService" | "logwell.v1.LogStreamService", _) => Requirement::Scope(Scope::Read),
        ("logwell.v1.JobRunService", "GetJobRun" | "ListJobRuns") => Requirement::Scope(Scope::Read),
        ("logwell.v1.JobRunService", "StartJobRun") => Requirement::Scope(Scope::Write),
        ("logwell.v1.JobRunService", "CompleteJobRun" | "DeleteJobRun") | ("logwell.v1.TokenService", _) => {
            Requirement::Scope(Scope::Admin)
        }
        _ => Requirement::Token,
    }
}

/// The token in `authorization: Bearer <token>`, if the header is there.
fn bearer(headers: &http::HeaderMap) -> Result<Option<&str>, AuthError> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(AuthError::MalformedHeader),
    }
}

/// The principal a handler serves, put there by the layer.
pub(crate) fn principal<T>(request: &tonic::Request<T>) -> Result<Principal, ApiError> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or(ApiError::Internal("a call reached a handler unauthenticated"))
}

/// Puts `AccessPolicy` in front of a service.
#[derive(Debug, Clone)]
pub struct AccessLayer {
    policy: Arc<AccessPolicy>,
}

impl AccessLayer {
    pub fn new(policy: AccessPolicy) -> AccessLayer {
        AccessLayer { policy: Arc::new(policy) }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> AccessService<S> {
        AccessService { inner, policy: self.policy.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct AccessService<S> {
    inner: S,
    policy: Arc<AccessPolicy>,
}

impl<S, B> tower::Service<http::Request<B>> for AccessService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.policy.admit(request.uri().path(), request.headers()) {
            Ok(principal) => {
                if let Some(principal) = principal {
                    // Into the RPC's span (api::observe): who called, never the token.
                    if let Some(caller) = principal.caller_name() {
                        tracing::Span::current().record("caller", caller.as_str());
                    }
                    request.extensions_mut().insert(principal);
                }
                Box::pin(super::take_ready(&mut self.inner).call(request))
            }
            Err(error) => {
                let status = Status::from(ApiError::from(error));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// Every RPC in the contract has a scope of its own: a new RPC cannot
    /// fall through to "any token" unnoticed.
    #[test]
    fn every_rpc_names_its_scope() {
        let files = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut checked = 0;
        for file in files.file.iter() {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    assert!(matches!(requirement(&path), Requirement::Scope(_)), "{path} has no scope");
                    checked += 1;
                }
            }
        }
        assert!(checked >= 12, "only {checked} RPCs found");
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(bearer(&headers), Ok(None));
        headers.insert("authorization", "Bearer lw_abc".parse().unwrap());
        assert_eq!(bearer(&headers), Ok(Some("lw_abc")));
        headers.insert("authorization", "bearer  lw_abc ".parse().unwrap());
        assert_eq!(bearer(&headers), Ok(Some("lw_abc")));
        for malformed in ["Basic dXNlcg==", "Bearer", "Bearer   ", "lw_abc"] {
            headers.insert("authorization", malformed.parse().unwrap());
            assert_eq!(bearer(&headers), Err(AuthError::MalformedHeader), "{malformed}");
        }
    }
}
