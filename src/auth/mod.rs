//! Who may do what. Callers present bearer tokens; a token names a principal
//! with scopes. Which scope each RPC needs is decided at the gRPC edge
//! (`api::access`); what a principal may touch inside a scope (a job-run
//! token's one run) is decided here, in plain Rust.

mod job_run_tokens;
mod tokens;

use std::fmt;

use chrono::Utc;
use uuid::Uuid;

use crate::model::Owner;

pub use job_run_tokens::{
    DEFAULT_TTL, GrantDraft, InvalidToken, JOB_RUN_TOKEN_PREFIX, JobRunGrant, JobRunTokens, MAX_TTL, ShortKey,
};
pub use tokens::{TokenError, TokenSet, TokensFile, generate_token, token_hash};

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Send logs.
    Write,
    /// Query and stream logs, and read job runs.
    Read,
    /// Complete job runs and manage tokens.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Write, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Write => "write",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes. No scope implies another: an admin token that should
/// also read says so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & Scopes::bit(scope) != 0
    }

    pub fn with(self, scope: Scope) -> Scopes {
        Scopes(self.0 | Scopes::bit(scope))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn bit(scope: Scope) -> u8 {
        1 << scope as u8
    }

    /// Parses "read,write": comma-separated scope names.
    pub fn parse(text: &str) -> Result<Scopes, String> {
        text.split(',').map(str::trim).try_fold(Scopes::default(), |scopes, name| {
            Scope::parse(name).map(|scope| scopes.with(scope)).ok_or_else(|| {
                format!("unknown scope {name:?}; scopes are {}", Scope::ALL.map(Scope::as_str).join(", "))
            })
        })
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(scopes: I) -> Scopes {
        scopes.into_iter().fold(Scopes::default(), Scopes::with)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> =
            Scope::ALL.into_iter().filter(|scope| self.contains(*scope)).map(Scope::as_str).collect();
        f.write_str(&names.join(","))
    }
}

/// Who is calling, once their token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Authentication is off (loopback, or `--insecure-no-auth`): anything goes.
    Anyone,
    /// A configured token, by its name.
    Token { name: String, scopes: Scopes },
    /// A job-run token: its scopes, within its run (or task run) only.
    JobRun(JobRunGrant),
}

impl Principal {
    /// Who called, for logs: a token's configured name, or a job-run token's
    /// id (never the token itself); None when authentication is off.
    pub fn caller_name(&self) -> Option<String> {
        match self {
            Principal::Anyone => None,
            Principal::Token { name, .. } => Some(name.clone()),
            Principal::JobRun(grant) => Some(format!("job-run token {}", grant.token_id)),
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        match self {
            Principal::Anyone => true,
            Principal::Token { scopes, .. } => scopes.contains(scope),
            Principal::JobRun(grant) => grant.scopes.contains(scope),
        }
    }

    /// Whether this principal may write a log of `owner`; `field` names the
    /// log's place in the request, and is made only for a refusal.
    pub fn may_write(&self, owner: &Owner, field: impl FnOnce() -> String) -> Result<(), Denied> {
        match self {
            Principal::Anyone | Principal::Token { .. } => Ok(()),
            Principal::JobRun(grant) => grant.covers(owner.job_run_id(), owner.task_run_id(), field),
        }
    }

    /// Whether this principal may read what a query pinned to these ids (or
    /// to none) returns.
    pub fn may_read(&self, job_run_id: Option<Uuid>, task_run_id: Option<Uuid>) -> Result<(), Denied> {
        match self {
            Principal::Anyone | Principal::Token { .. } => Ok(()),
            Principal::JobRun(grant) => grant.covers(job_run_id, task_run_id, || "job_run_id".into()),
        }
    }

    /// Names the caller for its write rate and in refusals.
    pub fn caller(&self) -> String {
        match self {
            Principal::Anyone => "everyone (no authentication)".into(),
            Principal::Token { name, .. } => format!("token {name}"),
            Principal::JobRun(grant) => format!("job-run token {}", grant.token_id),
        }
    }

    /// Whether a principal admitted earlier still holds: a long stream
    /// outlives its job-run token's expiry or revocation only until the next
    /// check.
    pub fn still_valid(&self, job_run_tokens: Option<&JobRunTokens>) -> Result<(), AuthError> {
        let Principal::JobRun(grant) = self else { return Ok(()) };
        if grant.expires_at <= Utc::now() {
            return Err(AuthError::Expired);
        }
        match job_run_tokens {
            Some(tokens) if tokens.is_revoked(grant.token_id) => Err(AuthError::Revoked),
            _ => Ok(()),
        }
    }

    /// When this principal's token expires, if it does.
    pub fn expires_at(&self) -> Option<chrono::DateTime<Utc>> {
        match self {
            Principal::JobRun(grant) => Some(grant.expires_at),
            Principal::Anyone | Principal::Token { .. } => None,
        }
    }

    /// The one job run this principal may see, if it is held to one.
    pub fn own_job_run(&self) -> Option<Uuid> {
        match self {
            Principal::Anyone | Principal::Token { .. } => None,
            Principal::JobRun(grant) => Some(grant.job_run_id),
        }
    }

    /// Whether this principal may read across runs: not a job-run token.
    pub fn may_read_across_runs(&self) -> Result<(), Denied> {
        match self {
            Principal::Anyone | Principal::Token { .. } => Ok(()),
            Principal::JobRun(grant) => Err(Denied::AcrossRuns { grant: grant.describe() }),
        }
    }

    /// Whether this principal may read a job run's state.
    pub fn may_read_job_run(&self, job_run_id: Uuid) -> Result<(), Denied> {
        match self {
            Principal::Anyone | Principal::Token { .. } => Ok(()),
            Principal::JobRun(grant) if grant.job_run_id == job_run_id => Ok(()),
            Principal::JobRun(grant) => {
                Err(Denied::OutsideGrant { grant: grant.describe(), field: "job_run_id".into() })
            }
        }
    }

    /// Succeeds if this principal holds `scope`; `action` names what needs it.
    pub fn require(&self, scope: Scope, action: &str) -> Result<(), Denied> {
        if self.has(scope) { Ok(()) } else { Err(Denied::MissingScope { scope, action: action.into() }) }
    }
}

impl JobRunGrant {
    /// Whether a request pinned to these ids stays inside the grant.
    fn covers(
        &self,
        job_run_id: Option<Uuid>,
        task_run_id: Option<Uuid>,
        field: impl FnOnce() -> String,
    ) -> Result<(), Denied> {
        let outside = |field: String| Err(Denied::OutsideGrant { grant: self.describe(), field });
        if job_run_id != Some(self.job_run_id) {
            return outside(field());
        }
        match self.task_run_id {
            Some(task) if task_run_id != Some(task) => outside(field().replace("job_run_id", "task_run_id")),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        match self.task_run_id {
            Some(task) => format!("job run {} task run {task}", self.job_run_id),
            None => format!("job run {}", self.job_run_id),
        }
    }
}

/// How the server tells callers apart.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// Every caller is `Principal::Anyone`.
    Off,
    /// Every caller presents one of these tokens, or a job-run token if a
    /// signing key is configured.
    Tokens(TokenSet),
}

impl Authentication {
    /// Who presents `bearer` (the token from `authorization: Bearer …`);
    /// `job_run_tokens` checks job-run tokens, if a signing key is configured.
    pub fn authenticate(
        &self,
        bearer: Option<&str>,
        job_run_tokens: Option<&JobRunTokens>,
    ) -> Result<Principal, AuthError> {
        match self {
            Authentication::Off => Ok(Principal::Anyone),
            Authentication::Tokens(tokens) => {
                let token = bearer.ok_or(AuthError::MissingToken)?;
                match job_run_tokens {
                    Some(job_run_tokens) if token.starts_with(JOB_RUN_TOKEN_PREFIX) => {
                        match job_run_tokens.verify(token, Utc::now()) {
                            Ok(grant) => Ok(Principal::JobRun(grant)),
                            Err(reason) => {
                                tracing::info!(%reason, "job-run token refused");
                                Err(AuthError::UnknownToken)
                            }
                        }
                    }
                    _ => tokens.verify(token).ok_or(AuthError::UnknownToken),
                }
            }
        }
    }
}

/// Why a call was not let in. None of these says whether a job run or a log
/// exists: they are decided before anything is looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send the metadata `authorization: Bearer <token>`")]
    MissingToken,
    #[error("the authorization metadata must read `Bearer <token>`")]
    MalformedHeader,
    #[error("the bearer token is not valid")]
    UnknownToken,
    #[error("the job-run token expired")]
    Expired,
    #[error("the job-run token was revoked")]
    Revoked,
    #[error(transparent)]
    Denied(#[from] Denied),
}

/// Why a principal may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this token lacks the {scope} scope, which {action} needs")]
    MissingScope { scope: Scope, action: String },
    #[error("this token is bound to {grant}; {field} names something outside it")]
    OutsideGrant { grant: String, field: String },
    #[error("this token is bound to {grant}, and a follow across runs reads beyond it; follow the run with StreamLogs")]
    AcrossRuns { grant: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_only_when_configured() {
        assert_eq!(Authentication::Off.authenticate(None, None), Ok(Principal::Anyone));
        let mut tokens = TokenSet::default();
        tokens.add("test", &format!("reader read {}", token_hash("secret"))).unwrap();
        let tokens = Authentication::Tokens(tokens);
        assert_eq!(tokens.authenticate(None, None), Err(AuthError::MissingToken));
        assert_eq!(tokens.authenticate(Some("guess"), None), Err(AuthError::UnknownToken));
        let reader = tokens.authenticate(Some("secret"), None).unwrap();
        assert_eq!(reader.require(Scope::Read, "ListLogs"), Ok(()));
        assert_eq!(
            reader.require(Scope::Write, "WriteJobLog").unwrap_err().to_string(),
            "this token lacks the write scope, which WriteJobLog needs"
        );
    }

    #[test]
    fn a_job_run_token_reaches_its_run_only() {
        let (run, task) = (Uuid::now_v7(), Uuid::now_v7());
        let grant = |task_run_id| {
            let scopes = Scopes::default().with(Scope::Read).with(Scope::Write);
            let expires_at = Utc::now() + chrono::Duration::hours(1);
            Principal::JobRun(JobRunGrant {
                token_id: Uuid::now_v7(),
                job_run_id: run,
                task_run_id,
                scopes,
                expires_at,
            })
        };
        let whole_run = grant(None);
        assert_eq!(whole_run.may_write(&Owner::Job { job_run_id: run }, || "log.job_run_id".into()), Ok(()));
        assert_eq!(whole_run.may_write(&Owner::Task { job_run_id: run, task_run_id: task }, || "log".into()), Ok(()));
        let elsewhere = whole_run.may_write(&Owner::Job { job_run_id: Uuid::now_v7() }, || "logs[2].job_run_id".into());
        assert_eq!(
            elsewhere.unwrap_err().to_string(),
            format!("this token is bound to job run {run}; logs[2].job_run_id names something outside it")
        );
        assert!(whole_run.may_write(&Owner::System, || "log.job_run_id".into()).is_err());
        assert_eq!(whole_run.may_read(Some(run), None), Ok(()));
        assert!(whole_run.may_read(None, None).is_err(), "a listing across runs");
        assert_eq!(whole_run.may_read_job_run(run), Ok(()));

        let one_task = grant(Some(task));
        assert_eq!(
            one_task.may_write(&Owner::Task { job_run_id: run, task_run_id: task }, || "log.job_run_id".into()),
            Ok(())
        );
        let job_log = one_task.may_write(&Owner::Job { job_run_id: run }, || "log.job_run_id".into()).unwrap_err();
        assert!(job_log.to_string().contains("log.task_run_id names"), "{job_log}");
        assert!(one_task.may_read(Some(run), None).is_err());
        assert_eq!(one_task.may_read(Some(run), Some(task)), Ok(()));
    }

    #[test]
    fn scopes_parse_and_print() {
        let scopes = Scopes::parse("write, read").unwrap();
        assert!(scopes.contains(Scope::Read) && scopes.contains(Scope::Write) && !scopes.contains(Scope::Admin));
        assert_eq!(scopes.to_string(), "write,read");
        assert!(Scopes::parse("read,root").unwrap_err().contains("\"root\""));
    }
}
