//! Admission: the one path a write takes from any entry point (the write
//! services, IngestLogs, OpenTelemetry) to the queue. Entry points decode
//! their messages into drafts; here a write's bounds, each log's rules, its
//! id's uniqueness in the batch, the caller's right to write each log's
//! run, the caller's write rate and room in the queue are decided, the same
//! for all of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::commit::{Ingest, IngestError, WhenFull};
use crate::auth::{Denied, Principal};
use crate::model::{Limits, LogDraft, LogType, NewLog, Receipt, Violations};
use crate::rate_limit::RateLimiter;

/// One log as its entry point decoded it: the draft, and what decoding
/// already found wrong, its fields named from the log.
#[derive(Debug)]
pub struct Submitted {
    pub draft: LogDraft,
    pub decoding: Violations,
}

/// How a write's logs are named in refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// One log: `log`.
    One,
    /// A batch: `logs[i]`.
    Batch,
}

impl Naming {
    fn of(self, index: usize) -> String {
        match self {
            Naming::One => "log".into(),
            Naming::Batch => format!("logs[{index}]"),
        }
    }
}

/// A caller past its write rate.
#[derive(Debug, thiserror::Error)]
#[error(
    "{caller} is over its write rate of {logs_per_second} logs/s (--rate-limit-logs-per-second); \
     nothing was stored; retry in {:.2} s", retry_after.as_secs_f64()
)]
pub struct RateLimited {
    pub caller: String,
    pub logs_per_second: u32,
    pub retry_after: Duration,
}

/// Why a write was not admitted, or not stored.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The write breaks rules; each violation names its field.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// What `Admission::write_each` stored and refused.
#[derive(Debug)]
pub struct Admitted {
    /// The stored logs' receipts, in order.
    pub receipts: Vec<Receipt>,
    /// Each refused log's violations, named under its field.
    pub refused: Vec<Violations>,
}

/// Admits writes into the pipeline.
#[derive(Clone)]
pub struct Admission {
    ingest: Arc<Ingest>,
    limits: Limits,
    rate: Option<Arc<RateLimiter>>,
}

impl Admission {
    pub fn new(ingest: Arc<Ingest>, limits: Limits, rate: Option<Arc<RateLimiter>>) -> Admission {
        Admission { ingest, limits, rate }
    }

    /// Admits `logs` of `log_type` from `principal` as one write, named by
    /// `naming`: stored together once committed, or refused together.
    /// What happens when the queue is full is the entry point's choice.
    pub async fn write(
        &self,
        principal: &Principal,
        log_type: LogType,
        logs: Vec<Submitted>,
        naming: Naming,
        when_full: WhenFull,
    ) -> Result<Vec<Receipt>, AdmissionError> {
        if naming == Naming::Batch {
            if logs.is_empty() {
                let mut violations = Violations::default();
                violations.add("logs", "must hold at least one entry");
                return Err(AdmissionError::Invalid(violations));
            }
            self.check_size("logs", logs.len())?;
        }
        let named = logs.into_iter().enumerate().map(|(index, log)| (naming.of(index), log_type, log));
        let mut violations = Violations::default();
        let mut valid = Vec::new();
        for checked in self.validate_each(named) {
            match checked {
                Ok(log) => valid.push(log),
                Err(log_violations) => violations.merge(log_violations),
            }
        }
        let valid = violations.into_result(valid).map_err(AdmissionError::Invalid)?;
        self.store(principal, valid, when_full).await
    }

    /// Admits each of `logs` (named by their fields, of their types) on its
    /// own merits: one that breaks a rule, or repeats an earlier one's id,
    /// is refused alone; the rest are stored together, once committed. The
    /// write's size (its logs are under `whole`), the caller's right to
    /// write each log's run, its rate and room in the queue are decided for
    /// the write as a whole.
    pub async fn write_each(
        &self,
        principal: &Principal,
        whole: &str,
        logs: Vec<(String, LogType, Submitted)>,
        when_full: WhenFull,
    ) -> Result<Admitted, AdmissionError> {
        self.check_size(whole, logs.len())?;
        let (valid, refused): (Vec<_>, Vec<_>) = self.validate_each(logs).into_iter().partition(Result::is_ok);
        let valid: Vec<(String, NewLog)> = valid.into_iter().filter_map(Result::ok).collect();
        let refused = refused.into_iter().filter_map(Result::err).collect();
        let receipts = if valid.is_empty() { Vec::new() } else { self.store(principal, valid, when_full).await? };
        Ok(Admitted { receipts, refused })
    }

    /// A write of `count` logs (under `whole`) holds no more than a batch
    /// may.
    fn check_size(&self, whole: &str, count: usize) -> Result<(), AdmissionError> {
        let mut violations = Violations::default();
        if count > self.limits.batch_logs {
            let limit = self.limits.batch_logs;
            violations.add(whole, format!("holds {count} entries; at most {limit} are allowed (--max-batch-logs)"));
        }
        violations.into_result(()).map_err(AdmissionError::Invalid)
    }

    /// Each log validated under its field, in order; a log whose id an
    /// earlier one in the write has is refused.
    fn validate_each(
        &self,
        logs: impl IntoIterator<Item = (String, LogType, Submitted)>,
    ) -> Vec<Result<(String, NewLog), Violations>> {
        let mut first_with_id = HashMap::new();
        let mut checked = Vec::new();
        for (field, log_type, log) in logs {
            checked.push(validate_log(log, log_type, &field, &self.limits).and_then(|log| {
                match log.client_id.then(|| first_with_id.insert(log.id, field.clone())).flatten() {
                    Some(first) => {
                        let mut violations = Violations::default();
                        violations.add(format!("{field}.id"), format!("repeats {first}.id; ids name one log"));
                        Err(violations)
                    }
                    None => Ok((field, log)),
                }
            }));
        }
        checked
    }

    /// Stores valid logs for `principal`, if it may write each one's run and
    /// its rate and the queue allow.
    async fn store(
        &self,
        principal: &Principal,
        logs: Vec<(String, NewLog)>,
        when_full: WhenFull,
    ) -> Result<Vec<Receipt>, AdmissionError> {
        for (field, log) in &logs {
            principal.may_write(&log.owner, || format!("{field}.job_run_id"))?;
        }
        let logs: Vec<NewLog> = logs.into_iter().map(|(_, log)| log).collect();
        self.charge(principal, logs.len(), when_full).await?;
        Ok(self.ingest.write(logs, when_full).await?)
    }

    /// Charges `logs` to the caller's write rate: refuses at once, or waits
    /// (so that a stream's flow control slows its producer).
    async fn charge(&self, principal: &Principal, logs: usize, when_full: WhenFull) -> Result<(), RateLimited> {
        let Some(rate) = &self.rate else { return Ok(()) };
        let caller = principal.caller();
        loop {
            match rate.take(&caller, logs, Instant::now()) {
                Ok(()) => return Ok(()),
                Err(retry_after) if when_full == WhenFull::Wait => tokio::time::sleep(retry_after).await,
                Err(retry_after) => {
                    return Err(RateLimited { caller, logs_per_second: rate.logs_per_second, retry_after });
                }
            }
        }
    }
}

/// Validates one submitted log of `log_type`, received now; violations are
/// named under `field`.
pub fn validate_log(log: Submitted, log_type: LogType, field: &str, limits: &Limits) -> Result<NewLog, Violations> {
    let Submitted { draft, decoding } = log;
    decoding.judge(draft.validate(log_type, Utc::now(), limits)).map_err(|violations| violations.under(field))
}
