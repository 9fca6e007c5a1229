use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::kinds::Outcome;
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
}

impl JobRun {
    /// Whether completing this run with `completion` again is a harmless
    /// retry rather than a conflicting second ending.
    pub fn completed_as(&self, completion: &Completion) -> bool {
        self.completion
            .as_ref()
            .is_some_and(|done| done.outcome == completion.outcome && done.summary == completion.summary)
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
