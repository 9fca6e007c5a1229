use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::kinds::{Level, Outcome};
use super::validation::{Violations, required_uuid};

/// Bytes of UTF-8 in a completion summary, at most.
pub const MAX_SUMMARY_BYTES: usize = 4 * 1024;

/// How and when a job run was completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub outcome: Outcome,
    pub summary: String,
    pub completed_at: DateTime<Utc>,
}

/// Bytes of UTF-8 in a job run's name, at most.
pub const MAX_NAME_BYTES: usize = 256;
/// Labels on one job run, at most.
pub const MAX_LABELS: usize = 32;
/// Bytes of a label's key, at most.
pub const MAX_LABEL_KEY_BYTES: usize = 63;
/// Bytes of a label's value, at most.
pub const MAX_LABEL_VALUE_BYTES: usize = 256;

/// A job run's state and the extent of its logs. Seqs have no gaps, so the
/// last seq is also the number of logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    pub id: Uuid,
    pub last_seq: i64,
    pub first_log_time: Option<DateTime<Utc>>,
    pub last_log_time: Option<DateTime<Utc>>,
    pub completion: Option<Completion>,
    /// When its logs were deleted; a deleted run is complete and holds none.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Its name and labels, as given by StartJobRun; empty otherwise.
    pub identity: RunIdentity,
    /// When StartJobRun started it; `None` for a run begun by its first log.
    pub started_at: Option<DateTime<Utc>>,
    /// How many of its logs have each level.
    pub level_counts: LevelCounts,
    /// When it last started, took logs or completed (server time, to the
    /// second: `ACTIVITY_RESOLUTION`).
    pub last_activity: DateTime<Utc>,
    /// The seq of its earliest log still stored; 0 if it holds none.
    pub first_retained_seq: i64,
}

/// How finely a run's last activity is kept. Coarser than every write, so
/// that a run written many times a second moves in the activity index once
/// a second, not once a commit.
pub const ACTIVITY_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// `time` as a run's last activity: at `ACTIVITY_RESOLUTION`.
pub fn activity_at(time: DateTime<Utc>) -> DateTime<Utc> {
    chrono::DurationRound::duration_trunc(time, ACTIVITY_RESOLUTION).unwrap_or(time)
}

/// What a run is called: a name shared by the runs of one job (e.g.
/// `nightly-build`) and labels to tell them apart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RunIdentity {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// Logs per level, indexed by `Level as usize`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelCounts(pub [i64; Level::ALL.len()]);

impl LevelCounts {
    /// Counts one more log of `level`.
    pub fn add(&mut self, level: Level) {
        self.add_count(level, 1);
    }

    /// Counts `count` more logs of `level`.
    pub fn add_count(&mut self, level: Level, count: i64) {
        self.0[level as usize] += count;
    }

    pub fn of(&self, level: Level) -> i64 {
        self.0[level as usize]
    }

    /// Logs of every level.
    pub fn total(&self) -> i64 {
        self.0.iter().sum()
    }
}

impl JobRun {
    /// Where a reader past `seq` goes on, if logs after `seq` are gone
    /// (expired, or deleted with the run): the first stored seq, or past
    /// the last seq when none is stored.
    pub fn gone_after(&self, seq: i64) -> Option<i64> {
        let first_stored = if self.first_retained_seq > 0 { self.first_retained_seq } else { self.last_seq + 1 };
        (first_stored > seq + 1).then_some(first_stored)
    }

    /// Whether completing this run with `completion` again is a harmless
    /// retry rather than a conflicting second ending.
    pub fn completed_as(&self, completion: &Completion) -> bool {
        self.completion
            .as_ref()
            .is_some_and(|done| done.outcome == completion.outcome && done.summary == completion.summary)
    }
}

/// A start as the client sent it, before validation.
#[derive(Debug, Clone, Default)]
pub struct StartDraft {
    pub job_run_id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl StartDraft {
    pub fn validate(self) -> Result<(Uuid, RunIdentity), Violations> {
        let mut violations = Violations::default();
        let job_run_id = required_uuid(&mut violations, "job_run_id", &self.job_run_id);
        check_text(&mut violations, "name", &self.name, MAX_NAME_BYTES);
        if self.labels.len() > MAX_LABELS {
            violations.add("labels", format!("{} labels; at most {MAX_LABELS}", self.labels.len()));
        }
        for (key, value) in &self.labels {
            check_label(&mut violations, key, value);
        }
        match job_run_id {
            Some(id) if violations.is_empty() => Ok((id, RunIdentity { name: self.name, labels: self.labels })),
            _ => Err(violations),
        }
    }
}

/// A label key: 1 to 63 bytes of letters, digits, `.`, `_`, `-` and `/`
/// (Kubernetes' label keys fit), so that keys read the same in every
/// client and in a URL; a value: any text up to 256 bytes.
pub(crate) fn check_label(violations: &mut Violations, key: &str, value: &str) {
    let field = format!("labels[{key:?}]");
    if key.is_empty() || key.len() > MAX_LABEL_KEY_BYTES {
        violations.add(&field, format!("the key must be 1 to {MAX_LABEL_KEY_BYTES} bytes long"));
    } else if !key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')) {
        violations.add(&field, "the key may hold only ASCII letters, digits, '.', '_', '-' and '/'");
    }
    check_text(violations, &field, value, MAX_LABEL_VALUE_BYTES);
}

fn check_text(violations: &mut Violations, field: &str, text: &str, max_bytes: usize) {
    if text.len() > max_bytes {
        violations.add(field, format!("is {} bytes long; at most {max_bytes} are allowed", text.len()));
    }
    if text.chars().any(char::is_control) {
        violations.add(field, "must not contain control characters");
    }
}

/// A completion as the client sent it, before validation.
#[derive(Debug, Clone, Default)]
pub struct CompletionDraft {
    pub job_run_id: String,
    pub outcome: Option<Outcome>,
    pub summary: String,
}

impl CompletionDraft {
    pub fn validate(self, completed_at: DateTime<Utc>) -> Result<(Uuid, Completion), Violations> {
        let mut violations = Violations::default();
        let job_run_id = required_uuid(&mut violations, "job_run_id", &self.job_run_id);
        if self.outcome.is_none() {
            violations.add(
                "outcome",
                "is required: JOB_RUN_OUTCOME_SUCCEEDED, JOB_RUN_OUTCOME_FAILED or JOB_RUN_OUTCOME_CANCELLED",
            );
        }
        if self.summary.len() > MAX_SUMMARY_BYTES {
            violations.add(
                "summary",
                format!("is {} bytes long; at most {MAX_SUMMARY_BYTES} are allowed", self.summary.len()),
            );
        }
        if self.summary.contains('\0') {
            violations.add("summary", "must not contain NUL characters");
        }
        let completed_at = DateTime::from_timestamp_micros(completed_at.timestamp_micros()).unwrap_or(completed_at);
        match (job_run_id, self.outcome) {
            (Some(id), Some(outcome)) if violations.is_empty() => {
                Ok((id, Completion { outcome, summary: self.summary, completed_at }))
            }
            _ => Err(violations),
        }
    }
}
