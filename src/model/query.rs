use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::filter::{FilterDraft, LogFilter, MAX_SEARCH_BYTES, TextSearch};
use super::kinds::{Level, LogType, Stream};
use super::log::Log;
use super::validation::{Violations, check_source, optional_uuid, storable_time};

/// Logs per page when the request names no page size.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Logs per page, at most.
pub const MAX_PAGE_SIZE: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    Ascending,
    Descending,
}

/// What a listing is ordered by. It follows from the filter: when the filter
/// pins one sequence, seq order is commit order and so an exact cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// `seq` within the one job run the filter names.
    RunSeq,
    /// `seq` within the system sequence.
    SystemSeq,
    /// `(job_run_id, seq)`: a task run's logs, which lie in one job run.
    TaskRunSeq,
    /// `(time, id)`: any other listing.
    Time,
}

/// The position of the last log of a page, in the listing's ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Seq(i64),
    RunSeq { job_run_id: Uuid, seq: i64 },
    Time { time: DateTime<Utc>, id: Uuid },
}

impl Cursor {
    /// The position of `log` in a listing ordered by `ordering`.
    pub fn of(log: &Log, ordering: Ordering) -> Cursor {
        match (ordering, log.owner.job_run_id()) {
            (Ordering::RunSeq | Ordering::SystemSeq, _) => Cursor::Seq(log.seq),
            (Ordering::TaskRunSeq, Some(job_run_id)) => Cursor::RunSeq { job_run_id, seq: log.seq },
            (Ordering::TaskRunSeq, None) | (Ordering::Time, _) => Cursor::Time { time: log.time, id: log.id },
        }
    }
}

/// One page's worth of a listing, as the store runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogQuery {
    pub filter: LogFilter,
    pub order: SortOrder,
    /// Continue after this position (exclusive).
    pub after: Option<Cursor>,
    /// Rows to return, at most.
    pub limit: usize,
}

/// The page size a client asked for: 0 for `DEFAULT_PAGE_SIZE`, at most
/// `MAX_PAGE_SIZE`. Listings of logs and of job runs share it.
pub(crate) fn page_size(violations: &mut Violations, requested: i32) -> usize {
    match usize::try_from(requested) {
        Ok(0) => DEFAULT_PAGE_SIZE,
        Ok(size) if size <= MAX_PAGE_SIZE => size,
        _ => {
            violations.add(
                "page_size",
                format!("{requested} is out of range: 0 (default {DEFAULT_PAGE_SIZE}) to {MAX_PAGE_SIZE}"),
            );
            0
        }
    }
}

/// A listing request as the client sent it, before validation.
#[derive(Debug, Clone, Default)]
pub struct QueryDraft {
    pub log_type: Option<LogType>,
    pub job_run_id: String,
    pub task_run_id: String,
    pub min_level: Option<Level>,
    pub stream: Option<Stream>,
    pub source: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub message_contains: String,
    pub after_seq: i64,
    pub order: Option<SortOrder>,
    pub page_size: i32,
    /// Every other filter, in the shape every read shares.
    pub filter: FilterDraft,
}

impl LogFilter {
    pub fn ordering(&self) -> Ordering {
        if self.job_run_id().is_some() {
            Ordering::RunSeq
        } else if self.task_run_id().is_some() {
            Ordering::TaskRunSeq
        } else if self.system_only() {
            Ordering::SystemSeq
        } else {
            Ordering::Time
        }
    }
}

impl QueryDraft {
    /// Validates the draft into a filter, a sort order and a page size.
    pub fn validate(self) -> Result<(LogFilter, SortOrder, usize), Violations> {
        let mut violations = Violations::default();
        let job_run_id = optional_uuid(&mut violations, "job_run_id", &self.job_run_id);
        let task_run_id = optional_uuid(&mut violations, "task_run_id", &self.task_run_id);
        let start_time = self.start_time.and_then(|time| storable_time(&mut violations, "start_time", time));
        let end_time = self.end_time.and_then(|time| storable_time(&mut violations, "end_time", time));
        if let (Some(start), Some(end)) = (start_time, end_time)
            && end <= start
        {
            violations.add("end_time", format!("{end} must be after start_time {start}"));
        }
        self.check_type_combinations(&mut violations);
        // No length bound: a longer source than any stored matches nothing.
        check_source(&mut violations, "source", &self.source, usize::MAX);
        if self.message_contains.len() > MAX_SEARCH_BYTES {
            violations.add("message_contains", format!("is longer than {MAX_SEARCH_BYTES} bytes"));
        }
        if self.message_contains.contains('\0') {
            violations.add("message_contains", "must not contain NUL characters");
        }
        let page_size = page_size(&mut violations, self.page_size);
        let top_level = LogFilter {
            types: self.log_type.into_iter().collect(),
            job_run_ids: job_run_id.into_iter().collect(),
            task_run_ids: task_run_id.into_iter().collect(),
            // Every level is no filter at all.
            levels: self
                .min_level
                .filter(|level| level.and_above().len() < Level::ALL.len())
                .map(|level| level.and_above().to_vec())
                .unwrap_or_default(),
            streams: self.stream.into_iter().collect(),
            sources: Some(self.source).filter(|text| !text.is_empty()).into_iter().collect(),
            start_time,
            end_time,
            text: Some(self.message_contains).filter(|text| !text.is_empty()).map(|text| TextSearch {
                text,
                ignore_case: false,
                include_metadata: false,
            }),
            metadata: Vec::new(),
            after_seq: (self.after_seq != 0).then_some(self.after_seq),
        };
        let nested = self.filter.validate("filter.", &mut violations);
        let filter = top_level.and(nested, "filter.", &mut violations);
        if self.after_seq < 0 {
            violations.add("after_seq", format!("{} must not be negative", self.after_seq));
        } else if self.after_seq > 0 && !matches!(filter.ordering(), Ordering::RunSeq | Ordering::SystemSeq) {
            violations.add("after_seq", "needs one sequence to count in: set job_run_id, or type system");
        }
        violations.into_result((filter, self.order.unwrap_or_default(), page_size))
    }

    /// Refuses filters that contradict the model, which could only ever match
    /// nothing and are more likely a client's mistake.
    fn check_type_combinations(&self, violations: &mut Violations) {
        match self.log_type {
            Some(LogType::System) => {
                if !self.job_run_id.is_empty() {
                    violations.add("job_run_id", "system logs have no job run");
                }
                if !self.task_run_id.is_empty() {
                    violations.add("task_run_id", "system logs have no task run");
                }
                if self.stream.is_some_and(|stream| stream != Stream::System) {
                    violations.add("stream", "system logs are only on the system stream");
                }
            }
            Some(LogType::Job) if !self.task_run_id.is_empty() => {
                violations.add("task_run_id", "job logs have no task run");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violated_fields(draft: QueryDraft) -> Vec<String> {
        draft.validate().expect_err("draft should be refused").iter().map(|v| v.field.clone()).collect()
    }

    #[test]
    fn ordering_follows_the_pinned_sequence() {
        let id = Uuid::now_v7();
        let by_run = LogFilter { task_run_ids: vec![id], ..LogFilter::sequence(Some(id)) };
        assert_eq!(by_run.ordering(), Ordering::RunSeq);
        let by_task = LogFilter { task_run_ids: vec![id], ..LogFilter::default() };
        assert_eq!(by_task.ordering(), Ordering::TaskRunSeq);
        assert_eq!(LogFilter::sequence(None).ordering(), Ordering::SystemSeq);
        let errors = LogFilter { levels: vec![Level::Error], ..LogFilter::default() };
        assert_eq!(errors.ordering(), Ordering::Time);
        let two_runs = LogFilter { job_run_ids: vec![id, Uuid::now_v7()], ..LogFilter::default() };
        assert_eq!(two_runs.ordering(), Ordering::Time);
    }

    #[test]
    fn page_size_defaults_and_is_bounded() {
        let size = |page_size| QueryDraft { page_size, ..QueryDraft::default() }.validate().map(|(_, _, size)| size);
        assert_eq!(size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(size(1), Ok(1));
        assert_eq!(size(1_000), Ok(MAX_PAGE_SIZE));
        assert!(size(1_001).is_err());
        assert!(size(-1).is_err());
    }

    #[test]
    fn contradictory_filters_name_the_field() {
        let id = Uuid::now_v7().to_string();
        let system_with_run =
            QueryDraft { log_type: Some(LogType::System), job_run_id: id.clone(), ..QueryDraft::default() };
        assert_eq!(violated_fields(system_with_run), ["job_run_id"]);
        let job_with_task = QueryDraft { log_type: Some(LogType::Job), task_run_id: id, ..QueryDraft::default() };
        assert_eq!(violated_fields(job_with_task), ["task_run_id"]);
        let after_seq_without_run = QueryDraft { after_seq: 5, ..QueryDraft::default() };
        assert_eq!(violated_fields(after_seq_without_run), ["after_seq"]);
        let backwards = QueryDraft {
            start_time: DateTime::from_timestamp(200, 0),
            end_time: DateTime::from_timestamp(100, 0),
            ..QueryDraft::default()
        };
        assert_eq!(violated_fields(backwards), ["end_time"]);
    }
}
