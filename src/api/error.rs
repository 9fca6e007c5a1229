use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::auth::{AuthError, Denied};
use crate::ingest::{AdmissionError, IngestError, RateLimited};
use crate::live::FollowError;
use crate::model::Violations;
use crate::store::StoreError;

/// How long an overloaded writer is told to wait before retrying.
const OVERLOAD_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// Why a request failed, as the services see it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request breaks rules; each violation names its field.
    #[error("invalid request: {0}")]
    InvalidArgument(Violations),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    OutOfRange(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("no token signing key is configured (--token-signing-key-file)")]
    NoSigningKey,
    #[error(
        "this sequence has {followers} followers on this server, the most --max-followers-per-job-run ({limit}) allows"
    )]
    TooManyFollowers { followers: usize, limit: usize },
    /// A bound of this server is reached; the message says which.
    #[error("{0}")]
    Exhausted(String),
    #[error("the request is {bytes} bytes; --max-request-bytes allows at most {limit}")]
    RequestTooLarge { bytes: usize, limit: usize },
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The server is shutting down; `then` says how the client carries on.
    #[error("the server is shutting down; {then}")]
    ShuttingDown { then: &'static str },
    /// logwell broke one of its own promises: a bug, not the client's fault.
    #[error("{0}")]
    Internal(&'static str),
}

impl From<AdmissionError> for ApiError {
    fn from(error: AdmissionError) -> Self {
        match error {
            AdmissionError::Invalid(violations) => ApiError::InvalidArgument(violations),
            AdmissionError::Denied(denied) => denied.into(),
            AdmissionError::RateLimited(limited) => ApiError::RateLimited(limited),
            AdmissionError::Ingest(error) => ApiError::Ingest(error),
        }
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        ApiError::Auth(AuthError::Denied(denied))
    }
}

impl From<FollowError> for ApiError {
    fn from(error: FollowError) -> Self {
        match error {
            FollowError::Denied(denied) => denied.into(),
            FollowError::Auth(error) => ApiError::Auth(error),
            FollowError::Store(error) => ApiError::Store(error),
            FollowError::TooManyFollowers { followers, limit } => ApiError::TooManyFollowers { followers, limit },
            too_many @ FollowError::TooManyAcross { .. } => ApiError::Exhausted(too_many.to_string()),
            undecided @ FollowError::Undecided { field, .. } => {
                let mut violations = Violations::default();
                violations.add(format!("filter.{field}"), undecided.to_string());
                ApiError::InvalidArgument(violations)
            }
            beyond @ FollowError::BeyondCompletedRun { .. } => ApiError::OutOfRange(beyond.to_string()),
            FollowError::ShuttingDown => ApiError::ShuttingDown {
                then: "follow again, on another server, with after_seq set to the last seq you received",
            },
        }
    }
}

impl From<Violations> for ApiError {
    fn from(violations: Violations) -> Self {
        ApiError::InvalidArgument(violations)
    }
}

/// The one place where errors become gRPC statuses. Field violations travel
/// as `google.rpc.BadRequest` details; storage faults the client can retry
/// are UNAVAILABLE; anything else is logged and answered without internals.
impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        match error {
            ApiError::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for violation in violations.iter() {
                    details.add_bad_request_violation(&violation.field, &violation.description);
                }
                Status::with_error_details(Code::InvalidArgument, format!("invalid request: {violations}"), details)
            }
            ApiError::NotFound(what) => Status::not_found(what),
            ApiError::Auth(denied @ AuthError::Denied(_)) => Status::permission_denied(denied.to_string()),
            ApiError::Auth(unauthenticated) => Status::unauthenticated(unauthenticated.to_string()),
            ApiError::NoSigningKey => Status::failed_precondition(error.to_string()),
            ApiError::TooManyFollowers { .. } | ApiError::RequestTooLarge { .. } | ApiError::Exhausted(_) => {
                Status::resource_exhausted(error.to_string())
            }
            ApiError::RateLimited(RateLimited { retry_after, .. }) => {
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(retry_after));
                Status::with_error_details(Code::ResourceExhausted, error.to_string(), details)
            }
            ApiError::Store(StoreError::Unavailable(reason)) => {
                tracing::warn!(%reason, "database unavailable");
                Status::unavailable("the database is unavailable; nothing was stored, retry later")
            }
            ApiError::Store(StoreError::JobRunComplete(id)) => {
                Status::failed_precondition(format!("job run {id} is complete and takes no more logs"))
            }
            ApiError::Store(StoreError::IdTaken(id)) => Status::already_exists(format!(
                "log id {id} is already used by a log of another job run, task run or type; ids name one log forever"
            )),
            ApiError::Store(race @ (StoreError::IdRace | StoreError::Overtaken)) => Status::aborted(race.to_string()),
            ApiError::Store(StoreError::ReadTimedOut { limit }) => Status::deadline_exceeded(format!(
                "the read ran longer than this server's limit of {} s and was stopped: narrow it with a filter an \
                 index serves (one job run or task run, a time range, an indexed metadata key)",
                limit.as_secs_f64()
            )),
            ApiError::Store(StoreError::JobRunOpen(id)) => Status::failed_precondition(format!(
                "job run {id} is open; complete it first, so that no write races the deletion"
            )),
            ApiError::Store(StoreError::JobRunAlreadyComplete(run)) => {
                let outcome = run.completion.map(|completion| completion.outcome.as_str()).unwrap_or_default();
                Status::failed_precondition(format!(
                    "job run {} was already completed as {outcome}, with another outcome or summary",
                    run.id
                ))
            }
            ApiError::Store(StoreError::JobRunStarted(run)) => Status::failed_precondition(format!(
                "job run {} was already started as {:?} with labels {:?}; a run is started once, with one name \
                 and one set of labels",
                run.id, run.identity.name, run.identity.labels
            )),
            ApiError::OutOfRange(what) => Status::out_of_range(what),
            ApiError::Ingest(IngestError::Store(error)) => ApiError::Store(error).into(),
            ApiError::Ingest(overloaded @ IngestError::Overloaded { .. }) => {
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(OVERLOAD_RETRY_DELAY));
                details.set_resource_info("write queue", "logwell", "", "full; nothing was stored");
                Status::with_error_details(Code::ResourceExhausted, overloaded.to_string(), details)
            }
            ApiError::ShuttingDown { .. } => Status::unavailable(error.to_string()),
            ApiError::Ingest(IngestError::Stopped) => {
                Status::unavailable("the server is shutting down; nothing was stored, retry on another server")
            }
            ApiError::Internal(what) => {
                tracing::error!(what, "internal error");
                Status::internal("internal error; see the server log")
            }
            ApiError::Store(other) => {
                tracing::error!(error = %other, "storage failed");
                Status::internal("storage failed; see the server log")
            }
        }
    }
}
