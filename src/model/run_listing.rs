//! Listing job runs: which runs, in which order, a page at a time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::job_run::{JobRun, check_label};
use super::kinds::{Level, Outcome};
use super::query::page_size;
use super::validation::{Violations, storable_time};

/// Whether a run still takes logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    Open,
    Complete,
}

/// Which runs a listing returns. Every condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RunFilter {
    /// Only these runs (a job-run token's own); empty for every run.
    pub ids: Vec<Uuid>,
    pub state: Option<RunState>,
    /// Complete runs that ended one of these ways; empty for any.
    pub outcomes: Vec<Outcome>,
    /// Runs last active at or after this time.
    pub active_from: Option<DateTime<Utc>>,
    /// Runs last active before this time.
    pub active_until: Option<DateTime<Utc>>,
    pub name: Option<String>,
    /// Runs carrying each of these labels with these values.
    pub labels: BTreeMap<String, String>,
    /// Runs holding at least one log at or above this level.
    pub min_level: Option<Level>,
}

/// Where a page of runs ends: runs are listed by last activity, most recent
/// first, ties by id, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunCursor {
    pub last_activity: DateTime<Utc>,
    pub id: Uuid,
}

impl RunCursor {
    pub fn of(run: &JobRun) -> RunCursor {
        RunCursor { last_activity: run.last_activity, id: run.id }
    }
}

/// One page of a run listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunQuery {
    pub filter: RunFilter,
    pub after: Option<RunCursor>,
    pub limit: usize,
}

/// A run listing as the client sent it, before validation.
#[derive(Debug, Clone, Default)]
pub struct RunQueryDraft {
    pub state: Option<RunState>,
    pub outcomes: Vec<Outcome>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub min_level: Option<Level>,
    pub page_size: i32,
}

impl RunQueryDraft {
    /// The filter and page size, or every rule the request breaks.
    pub fn validate(self) -> Result<(RunFilter, usize), Violations> {
        let mut violations = Violations::default();
        let active_from = self.start_time.and_then(|time| storable_time(&mut violations, "start_time", time));
        let active_until = self.end_time.and_then(|time| storable_time(&mut violations, "end_time", time));
        if let (Some(start), Some(end)) = (active_from, active_until)
            && end <= start
        {
            violations.add("end_time", format!("{end} must be after start_time {start}"));
        }
        if self.state == Some(RunState::Open) && !self.outcomes.is_empty() {
            violations.add("outcomes", "only complete runs have an outcome, and state asks for open runs");
        }
        if self.labels.len() > super::job_run::MAX_LABELS {
            violations.add("labels", format!("{} labels; at most {}", self.labels.len(), super::job_run::MAX_LABELS));
        }
        for (key, value) in &self.labels {
            check_label(&mut violations, key, value);
        }
        let page_size = page_size(&mut violations, self.page_size);
        let mut outcomes = self.outcomes;
        outcomes.sort();
        outcomes.dedup();
        let filter = RunFilter {
            ids: Vec::new(),
            // Asking for an outcome asks for complete runs.
            state: if outcomes.is_empty() { self.state } else { Some(RunState::Complete) },
            outcomes,
            active_from,
            active_until,
            name: Some(self.name).filter(|name| !name.is_empty()),
            labels: self.labels,
            // Trace and above is "has any logs": still a condition.
            min_level: self.min_level,
        };
        violations.into_result((filter, page_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_asks_for_complete_runs() {
        let draft = RunQueryDraft { outcomes: vec![Outcome::Failed, Outcome::Failed], ..RunQueryDraft::default() };
        let (filter, page_size) = draft.validate().unwrap();
        assert_eq!(filter.state, Some(RunState::Complete));
        assert_eq!(filter.outcomes, vec![Outcome::Failed]);
        assert_eq!(page_size, crate::model::DEFAULT_PAGE_SIZE);
    }

    #[test]
    fn contradictions_and_bounds_name_their_fields() {
        let now = Utc::now();
        let draft = RunQueryDraft {
            state: Some(RunState::Open),
            outcomes: vec![Outcome::Failed],
            start_time: Some(now),
            end_time: Some(now),
            labels: BTreeMap::from([("bad key".into(), "x".into())]),
            page_size: 1_001,
            ..RunQueryDraft::default()
        };
        let violations = draft.validate().unwrap_err();
        let fields: Vec<&str> = violations.iter().map(|violation| violation.field.as_str()).collect();
        assert_eq!(fields, ["end_time", "outcomes", "labels[\"bad key\"]", "page_size"]);
    }
}
