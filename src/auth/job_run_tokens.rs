//! Job-run tokens: signed, self-contained grants to one job run (and
//! optionally one task run), so that a server checks them without a database
//! lookup. Format: `lwr_` + base64url(JSON claims) + `.` + base64url(HMAC-SHA256
//! of the encoded claims under the server's signing key).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Scope, Scopes};
use crate::model::{Violations, optional_uuid, required_uuid};

/// What marks a job-run token.
pub const JOB_RUN_TOKEN_PREFIX: &str = "lwr_";
/// A signing key's shortest length.
pub const MIN_KEY_BYTES: usize = 32;
/// How long a token lives unless asked otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a token may live, at most; also how long a revocation is kept.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a job-run token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRunGrant {
    pub token_id: Uuid,
    pub job_run_id: Uuid,
    /// If set, only this task run of the job run.
    pub task_run_id: Option<Uuid>,
    /// Read and/or write; never admin.
    pub scopes: Scopes,
    pub expires_at: DateTime<Utc>,
}

/// A request for a grant, as received.
#[derive(Debug, Clone, Default)]
pub struct GrantDraft {
    pub job_run_id: String,
    pub task_run_id: String,
    /// `None` means the default lifetime.
    pub ttl: Option<Duration>,
    /// Scopes asked for; `None` entries are unspecified values, refused.
    pub scopes: Vec<Option<Scope>>,
}

impl GrantDraft {
    pub fn validate(self, now: DateTime<Utc>) -> Result<JobRunGrant, Violations> {
        let mut violations = Violations::default();
        let job_run_id = required_uuid(&mut violations, "job_run_id", &self.job_run_id);
        let task_run_id = optional_uuid(&mut violations, "task_run_id", &self.task_run_id);
        let ttl = self.ttl.unwrap_or(DEFAULT_TTL);
        if ttl.is_zero() || ttl > MAX_TTL {
            violations.add(
                "ttl",
                format!("is {}; it must be more than 0 and at most 7 days", humantime::format_duration(ttl)),
            );
        }
        let mut scopes = Scopes::default();
        for (index, scope) in self.scopes.iter().enumerate() {
            match scope {
                Some(scope @ (Scope::Read | Scope::Write)) => scopes = scopes.with(*scope),
                Some(Scope::Admin) | None => {
                    violations.add(format!("scopes[{index}]"), "must be TOKEN_SCOPE_WRITE or TOKEN_SCOPE_READ")
                }
            }
        }
        if self.scopes.is_empty() {
            scopes = Scopes::default().with(Scope::Read).with(Scope::Write);
        }
        let expires_at = chrono::Duration::from_std(ttl).ok().and_then(|ttl| now.checked_add_signed(ttl));
        match (job_run_id, expires_at, violations.is_empty()) {
            (Some(job_run_id), Some(expires_at), true) => {
                Ok(JobRunGrant { token_id: Uuid::now_v7(), job_run_id, task_run_id, scopes, expires_at })
            }
            _ => Err(violations),
        }
    }
}

/// Why a presented job-run token is not accepted. Callers see one answer for
/// all of them ("not valid"); the reason goes to logwell's own log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    #[error("malformed")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("revoked")]
    Revoked,
}

#[derive(Debug, thiserror::Error)]
#[error("the token signing key must be at least {MIN_KEY_BYTES} bytes; it has {0}")]
pub struct ShortKey(usize);

/// Mints and checks job-run tokens, and remembers revocations. The first
/// key signs; every key verifies, so that a key can be rotated in (put the
/// new one first) while tokens signed by the old one live out their time.
pub struct JobRunTokens {
    keys: RwLock<Vec<Hmac<Sha256>>>,
    revoked: RwLock<HashSet<Uuid>>,
    /// The key file, and the SHA-256 of what was loaded from it, if the keys
    /// came from one: it is reloaded when it changes.
    file: Option<(PathBuf, RwLock<[u8; 32]>)>,
}

impl std::fmt::Debug for JobRunTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRunTokens").finish_non_exhaustive()
    }
}

impl JobRunTokens {
    pub fn new(key: &[u8]) -> Result<JobRunTokens, ShortKey> {
        Ok(JobRunTokens { keys: RwLock::new(vec![hmac_key(key)?]), revoked: RwLock::default(), file: None })
    }

    /// The keys of a key file: one per line, the first signing, each at least
    /// `MIN_KEY_BYTES`; reloaded when the file changes.
    pub fn from_file(path: PathBuf, contents: &[u8]) -> Result<JobRunTokens, ShortKey> {
        let keys = keys(contents)?;
        let digest = Sha256::digest(contents).into();
        Ok(JobRunTokens {
            keys: RwLock::new(keys),
            revoked: RwLock::default(),
            file: Some((path, RwLock::new(digest))),
        })
    }

    pub fn mint(&self, grant: &JobRunGrant) -> String {
        let claims = json!({
            "v": 1,
            "id": grant.token_id.to_string(),
            "run": grant.job_run_id.to_string(),
            "task": grant.task_run_id.map(|task| task.to_string()),
            "exp": grant.expires_at.timestamp(),
            "scp": grant.scopes.to_string(),
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signature = URL_SAFE_NO_PAD.encode(self.sign(&claims).finalize().into_bytes());
        format!("{JOB_RUN_TOKEN_PREFIX}{claims}.{signature}")
    }

    /// `claims` signed with the first key.
    fn sign(&self, claims: &str) -> Hmac<Sha256> {
        let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut mac = keys[0].clone();
        mac.update(claims.as_bytes());
        mac
    }

    /// Whether any key signed `claims` with `signature`.
    fn signed(&self, claims: &str, signature: &[u8]) -> bool {
        let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.iter().any(|key| {
            let mut mac = key.clone();
            mac.update(claims.as_bytes());
            mac.verify_slice(signature).is_ok()
        })
    }

    /// The grant `token` carries, if it is genuine, unexpired and unrevoked.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<JobRunGrant, InvalidToken> {
        let body = token.strip_prefix(JOB_RUN_TOKEN_PREFIX).ok_or(InvalidToken::Malformed)?;
        let (claims, signature) = body.split_once('.').ok_or(InvalidToken::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| InvalidToken::Malformed)?;
        if !self.signed(claims, &signature) {
            return Err(InvalidToken::BadSignature);
        }
        // Signed by us, so the claims are ours; still parsed defensively.
        let claims = URL_SAFE_NO_PAD.decode(claims).map_err(|_| InvalidToken::Malformed)?;
        let claims: serde_json::Value = serde_json::from_slice(&claims).map_err(|_| InvalidToken::Malformed)?;
        let uuid = |name: &str| claims[name].as_str().and_then(|text| Uuid::try_parse(text).ok());
        let grant = JobRunGrant {
            token_id: uuid("id").ok_or(InvalidToken::Malformed)?,
            job_run_id: uuid("run").ok_or(InvalidToken::Malformed)?,
            task_run_id: if claims["task"].is_null() {
                None
            } else {
                Some(uuid("task").ok_or(InvalidToken::Malformed)?)
            },
            scopes: claims["scp"].as_str().and_then(|text| Scopes::parse(text).ok()).ok_or(InvalidToken::Malformed)?,
            expires_at: claims["exp"]
                .as_i64()
                .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
                .ok_or(InvalidToken::Malformed)?,
        };
        if claims["v"] != 1 || grant.scopes.contains(Scope::Admin) {
            return Err(InvalidToken::Malformed);
        }
        if grant.expires_at <= now {
            return Err(InvalidToken::Expired(grant.expires_at));
        }
        if self.is_revoked(grant.token_id) {
            return Err(InvalidToken::Revoked);
        }
        Ok(grant)
    }

    pub fn revoke(&self, token_id: Uuid) {
        self.revoked.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(token_id);
    }

    /// Adds the revocations storage holds (other replicas' included). Never
    /// forgets one: a refresh that read storage just before a local
    /// revocation was stored must not undo it.
    pub fn add_revoked(&self, revoked: impl IntoIterator<Item = Uuid>) {
        self.revoked.write().unwrap_or_else(std::sync::PoisonError::into_inner).extend(revoked);
    }

    pub fn is_revoked(&self, token_id: Uuid) -> bool {
        self.revoked.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&token_id)
    }
}

/// One key as an HMAC key, refused if shorter than `MIN_KEY_BYTES`.
fn hmac_key(key: &[u8]) -> Result<Hmac<Sha256>, ShortKey> {
    if key.len() < MIN_KEY_BYTES {
        return Err(ShortKey(key.len()));
    }
    Hmac::<Sha256>::new_from_slice(key).map_err(|_| ShortKey(key.len()))
}

/// The keys of a key file: its non-empty lines, trimmed; at least one.
fn keys(contents: &[u8]) -> Result<Vec<Hmac<Sha256>>, ShortKey> {
    let keys: Vec<Hmac<Sha256>> = contents
        .split(|byte| *byte == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
        .map(hmac_key)
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err(ShortKey(0));
    }
    Ok(keys)
}

impl crate::reload::Reloadable for JobRunTokens {
    fn what(&self) -> &'static str {
        "job-run token signing keys"
    }

    fn changed_on_disk(&self) -> bool {
        let Some((path, loaded)) = &self.file else { return false };
        let digest: Option<[u8; 32]> = std::fs::read(path).ok().map(|bytes| Sha256::digest(&bytes).into());
        digest.is_some_and(|digest| digest != *loaded.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn reload(&self) -> Result<(), String> {
        let Some((path, loaded)) = &self.file else { return Ok(()) };
        let contents = std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))?;
        let keys = keys(&contents).map_err(|error| format!("{}: {error}", path.display()))?;
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        *loaded.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Sha256::digest(&contents).into();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> JobRunTokens {
        JobRunTokens::new(&[7u8; 32]).unwrap()
    }

    fn grant(now: DateTime<Utc>) -> JobRunGrant {
        GrantDraft { job_run_id: Uuid::now_v7().to_string(), ..GrantDraft::default() }.validate(now).unwrap()
    }

    #[test]
    fn a_minted_token_verifies_to_its_grant() {
        let now = Utc::now();
        let tokens = tokens();
        let grant = grant(now);
        let token = tokens.mint(&grant);
        assert!(token.starts_with("lwr_"), "{token}");
        let verified = tokens.verify(&token, now).unwrap();
        assert_eq!(verified.job_run_id, grant.job_run_id);
        assert_eq!(verified.scopes, Scopes::default().with(Scope::Read).with(Scope::Write));
        assert_eq!(verified.expires_at, DateTime::from_timestamp(grant.expires_at.timestamp(), 0).unwrap());
    }

    #[test]
    fn forged_expired_and_revoked_tokens_fail() {
        let now = Utc::now();
        let tokens = tokens();
        let grant = grant(now);
        let token = tokens.mint(&grant);
        let other_key = JobRunTokens::new(&[8u8; 32]).unwrap();
        assert_eq!(other_key.verify(&token, now), Err(InvalidToken::BadSignature));
        // Claims edited to another run keep the old signature.
        let (claims, signature) = token.strip_prefix("lwr_").unwrap().split_once('.').unwrap();
        let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        let edited = decoded.replace(&grant.job_run_id.to_string(), &Uuid::now_v7().to_string());
        let forged = format!("lwr_{}.{signature}", URL_SAFE_NO_PAD.encode(edited));
        assert_eq!(tokens.verify(&forged, now), Err(InvalidToken::BadSignature));
        for malformed in ["lwr_", "lwr_abc", "lwr_a.b", "lw_abc.def", ""] {
            assert_eq!(tokens.verify(malformed, now), Err(InvalidToken::Malformed), "{malformed}");
        }
        let later = grant.expires_at + chrono::Duration::seconds(1);
        assert!(matches!(tokens.verify(&token, later), Err(InvalidToken::Expired(_))));
        tokens.revoke(grant.token_id);
        assert_eq!(tokens.verify(&token, now), Err(InvalidToken::Revoked));
        let elsewhere = tokens.mint(&super::tests::grant(now));
        tokens.add_revoked([tokens.verify(&elsewhere, now).unwrap().token_id]);
        assert_eq!(tokens.verify(&elsewhere, now), Err(InvalidToken::Revoked));
    }

    #[test]
    fn drafts_name_what_is_wrong() {
        let now = Utc::now();
        let draft = GrantDraft {
            job_run_id: "nope".into(),
            task_run_id: String::new(),
            ttl: Some(MAX_TTL + Duration::from_secs(1)),
            scopes: vec![Some(Scope::Read), None, Some(Scope::Admin)],
        };
        let violations = draft.validate(now).unwrap_err();
        let fields: Vec<&str> = violations.iter().map(|violation| violation.field.as_str()).collect();
        assert_eq!(fields, ["job_run_id", "ttl", "scopes[1]", "scopes[2]"]);
        assert!(JobRunTokens::new(&[0u8; 31]).is_err());
    }
}

#[cfg(test)]
mod rotation {
    use super::*;
    use crate::reload::Reloadable;

    #[test]
    fn a_new_first_key_signs_and_the_old_one_still_verifies_until_it_goes() {
        let folder = tempfile::tempdir().expect("folder");
        let path = folder.path().join("keys");
        let (old, new) = ("the old key, at least thirty-two bytes", "the new key, at least thirty-two bytes");
        std::fs::write(&path, format!("{old}\n")).expect("write");
        let tokens = JobRunTokens::from_file(path.clone(), &std::fs::read(&path).expect("read")).expect("keys");
        let now = Utc::now();
        let grant = JobRunGrant {
            token_id: Uuid::now_v7(),
            job_run_id: Uuid::now_v7(),
            task_run_id: None,
            scopes: Scopes::parse("write").expect("scopes"),
            expires_at: now + chrono::TimeDelta::hours(1),
        };
        let signed_by_old = tokens.mint(&grant);
        assert!(!tokens.changed_on_disk());

        std::fs::write(&path, format!("{new}\n{old}\n")).expect("write");
        assert!(tokens.changed_on_disk());
        tokens.reload().expect("reload");
        let signed_by_new = tokens.mint(&grant);
        assert_ne!(signed_by_new, signed_by_old, "the new first key signs");
        assert!(tokens.verify(&signed_by_old, now).is_ok(), "the old key still verifies");
        assert!(tokens.verify(&signed_by_new, now).is_ok());

        std::fs::write(&path, format!("{new}\n")).expect("write");
        tokens.reload().expect("reload");
        assert!(matches!(tokens.verify(&signed_by_old, now), Err(InvalidToken::BadSignature)), "the old key is gone");

        std::fs::write(&path, "short\n").expect("write");
        assert!(tokens.reload().is_err(), "a short key is refused");
        assert!(tokens.verify(&signed_by_new, now).is_ok(), "the keys loaded before stay");
    }
}
