use uuid::Uuid;

use super::filter::LogFilter;
use super::kinds::{Level, Stream};
use super::log::Log;
use super::validation::{Violations, optional_uuid};

/// The sequence key of the system logs, which follow no job run. The model
/// refuses the nil UUID as a job run id, so it cannot collide with a run.
pub const SYSTEM_SEQUENCE: Uuid = Uuid::nil();

/// Logs a follower may ask for with `Start::Last`, at most.
pub const MAX_LAST: i64 = 10_000;

/// Where a follower starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After this seq (0: from the beginning).
    AfterSeq(i64),
    /// The last N matching logs, then live.
    Last(i64),
    /// Only logs committed from now on.
    FromNow,
}

/// What a follower follows: one job run, or the system sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Followed {
    System,
    JobRun(Uuid),
}

/// A validated follow request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follow {
    pub followed: Followed,
    pub task_run_id: Option<Uuid>,
    pub min_level: Option<Level>,
    pub stream: Option<Stream>,
    pub start: Start,
}

/// A follow request as the client sent it, before validation.
#[derive(Debug, Clone, Default)]
pub struct FollowDraft {
    pub job_run_id: String,
    pub system: bool,
    pub task_run_id: String,
    pub min_level: Option<Level>,
    pub stream: Option<Stream>,
    pub start: Option<Start>,
}

impl FollowDraft {
    pub fn validate(self) -> Result<Follow, Violations> {
        let mut violations = Violations::default();
        let followed = if self.system {
            for (field, value) in [("job_run_id", &self.job_run_id), ("task_run_id", &self.task_run_id)] {
                if !value.is_empty() {
                    violations.add(field, "must be empty when following the system logs");
                }
            }
            if self.stream.is_some_and(|stream| stream != Stream::System) {
                violations.add("stream", "system logs are only on the system stream");
            }
            Some(Followed::System)
        } else {
            if self.job_run_id.is_empty() {
                violations.add(
                    "job_run_id",
                    "is required to follow a job run; or set system: true to follow the system logs",
                );
            }
            optional_uuid(&mut violations, "job_run_id", &self.job_run_id).map(Followed::JobRun)
        };
        let task_run_id = optional_uuid(&mut violations, "task_run_id", &self.task_run_id);
        let start = match self.start {
            None => Start::AfterSeq(0),
            Some(Start::Last(0)) => Start::FromNow,
            Some(start) => start,
        };
        match start {
            Start::AfterSeq(seq) if seq < 0 => violations.add("after_seq", format!("{seq} must not be negative")),
            Start::Last(count) if !(0..=MAX_LAST).contains(&count) => {
                violations.add("last", format!("{count} is out of range: 0 to {MAX_LAST}"));
            }
            _ => {}
        }
        match followed {
            Some(followed) if violations.is_empty() => {
                Ok(Follow { followed, task_run_id, min_level: self.min_level, stream: self.stream, start })
            }
            _ => Err(violations),
        }
    }
}

impl Followed {
    /// The key of its sequence in the store and the live hub.
    pub fn sequence(self) -> Uuid {
        match self {
            Followed::System => SYSTEM_SEQUENCE,
            Followed::JobRun(id) => id,
        }
    }
}

impl Follow {
    /// Whether a log of the followed sequence matches the follower's
    /// filters: the same rule as `filter_after`, in memory.
    pub fn matches(&self, log: &Log) -> bool {
        self.task_run_id.is_none_or(|task| log.owner.task_run_id() == Some(task))
            && self.min_level.is_none_or(|level| log.level >= level)
            && self.stream.is_none_or(|stream| log.stream == stream)
    }

    /// The listing filter for "matching logs after `cursor`".
    pub fn filter_after(&self, cursor: i64) -> LogFilter {
        let sequence = match self.followed {
            Followed::System => None,
            Followed::JobRun(id) => Some(id),
        };
        LogFilter {
            task_run_ids: self.task_run_id.into_iter().collect(),
            levels: self.min_level.map(|level| level.and_above().to_vec()).unwrap_or_default(),
            streams: self.stream.into_iter().collect(),
            after_seq: (cursor > 0).then_some(cursor),
            ..LogFilter::sequence(sequence)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Ordering;

    fn violated_fields(draft: FollowDraft) -> Vec<String> {
        draft.validate().expect_err("refused").iter().map(|violation| violation.field.clone()).collect()
    }

    #[test]
    fn a_job_run_or_the_system_logs_must_be_named() {
        assert_eq!(violated_fields(FollowDraft::default()), ["job_run_id"]);
        let unnamed = FollowDraft::default().validate().expect_err("refused").to_string();
        assert!(unnamed.contains("system: true"), "the refusal says how to follow the system logs: {unnamed}");
        let system_with_run =
            FollowDraft { system: true, job_run_id: Uuid::now_v7().to_string(), ..FollowDraft::default() };
        assert_eq!(violated_fields(system_with_run), ["job_run_id"]);
        let negative = FollowDraft { system: true, start: Some(Start::Last(-1)), ..FollowDraft::default() };
        assert_eq!(violated_fields(negative), ["last"]);
        let negative = FollowDraft { system: true, start: Some(Start::AfterSeq(-5)), ..FollowDraft::default() };
        assert_eq!(violated_fields(negative), ["after_seq"]);
    }

    #[test]
    fn follows_read_in_sequence_order() {
        let run = Uuid::now_v7();
        let follow = FollowDraft { job_run_id: run.to_string(), ..FollowDraft::default() }.validate().unwrap();
        assert_eq!(follow.start, Start::AfterSeq(0));
        assert_eq!(follow.followed.sequence(), run);
        assert_eq!(follow.filter_after(0).ordering(), Ordering::RunSeq);
        assert_eq!(follow.filter_after(7).after_seq, Some(7));
        let system = FollowDraft { system: true, ..FollowDraft::default() }.validate().unwrap();
        assert_eq!(system.filter_after(3).ordering(), Ordering::SystemSeq);
        assert_eq!(system.followed.sequence(), Uuid::nil());
    }
}
