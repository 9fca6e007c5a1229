//! Counting logs: what to group by, how to bucket time, how many groups to
//! keep. The counting itself (choosing a width, folding the rest) lives in
//! `crate::query::count`.

use chrono::TimeDelta;

use super::filter::{FilterDraft, LogFilter, MAX_METADATA_KEY_BYTES};
use super::validation::Violations;

/// Groupings in one count, at most.
pub const MAX_GROUPINGS: usize = 3;
/// Time buckets in one count, at most.
pub const MAX_BUCKETS: i64 = 1_000;
/// Groups returned when the request names no number.
pub const DEFAULT_TOP: usize = 10;
/// Groups returned, at most (the rest are summed).
pub const MAX_TOP: usize = 1_000;

/// One thing to group counts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    Level,
    Type,
    Stream,
    Source,
    JobRun,
    TaskRun,
    /// A top-level metadata key; its values group as JSON.
    Metadata(String),
}

/// How to cut time into buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buckets {
    Width(TimeDelta),
    /// About this many buckets over the range.
    Target(i64),
}

/// A validated count request.
#[derive(Debug, Clone, PartialEq)]
pub struct CountRequest {
    pub filter: LogFilter,
    pub group_by: Vec<Grouping>,
    pub buckets: Option<Buckets>,
    pub top: usize,
}

/// A count request as the client sent it, before validation.
#[derive(Debug, Clone, Default)]
pub struct CountDraft {
    pub filter: FilterDraft,
    /// `None`: a grouping that names nothing.
    pub group_by: Vec<Option<Grouping>>,
    pub bucket_width: Option<TimeDelta>,
    pub target_buckets: Option<i32>,
    pub top: i32,
}

impl CountDraft {
    pub fn validate(self) -> Result<CountRequest, Violations> {
        let mut violations = Violations::default();
        let filter = self.filter.validate("filter.", &mut violations);
        if self.group_by.len() > MAX_GROUPINGS {
            violations.add("group_by", format!("{} groupings; at most {MAX_GROUPINGS}", self.group_by.len()));
        }
        let mut group_by = Vec::with_capacity(self.group_by.len());
        for (index, grouping) in self.group_by.into_iter().enumerate() {
            match grouping {
                None => violations.add(format!("group_by[{index}]"), "names nothing: set field or metadata_key"),
                Some(Grouping::Metadata(key)) => {
                    let field = format!("group_by[{index}].metadata_key");
                    if key.is_empty() || key.len() > MAX_METADATA_KEY_BYTES {
                        violations.add(field, format!("must have 1 to {MAX_METADATA_KEY_BYTES} bytes"));
                    } else if key.contains(['"', '\0']) {
                        violations.add(field, "must not contain '\"' or NUL: such keys cannot be grouped by");
                    } else {
                        group_by.push(Grouping::Metadata(key));
                    }
                }
                Some(grouping) if group_by.contains(&grouping) => {
                    violations.add(format!("group_by[{index}]"), "repeats an earlier grouping");
                }
                Some(grouping) => group_by.push(grouping),
            }
        }
        let buckets = match (self.bucket_width, self.target_buckets) {
            (Some(width), _) if width < TimeDelta::seconds(1) => {
                violations.add("bucket_width", "must be at least 1 second");
                None
            }
            (Some(width), _) => Some(Buckets::Width(width)),
            (None, Some(target)) if !(1..=MAX_BUCKETS).contains(&i64::from(target)) => {
                violations.add("target_buckets", format!("{target} is out of range: 1 to {MAX_BUCKETS}"));
                None
            }
            (None, Some(target)) => Some(Buckets::Target(i64::from(target))),
            (None, None) => None,
        };
        let top = match usize::try_from(self.top) {
            Ok(0) => DEFAULT_TOP,
            Ok(top) if top <= MAX_TOP => top,
            _ => {
                violations.add("top", format!("{} is out of range: 0 (default {DEFAULT_TOP}) to {MAX_TOP}", self.top));
                DEFAULT_TOP
            }
        };
        violations.into_result(CountRequest { filter, group_by, buckets, top })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(draft: CountDraft) -> Vec<String> {
        draft.validate().expect_err("refused").iter().map(|violation| violation.field.clone()).collect()
    }

    #[test]
    fn bad_counts_name_the_field_and_bound() {
        let grouped = |group_by| CountDraft { group_by, ..CountDraft::default() };
        assert_eq!(fields(grouped(vec![None])), ["group_by[0]"]);
        assert_eq!(fields(grouped(vec![Some(Grouping::Level), Some(Grouping::Level)])), ["group_by[1]"]);
        assert_eq!(fields(grouped(vec![Some(Grouping::Metadata(String::new()))])), ["group_by[0].metadata_key"]);
        assert_eq!(fields(grouped(vec![Some(Grouping::Metadata("a\"b".into()))])), ["group_by[0].metadata_key"]);
        let four = vec![Some(Grouping::Level), Some(Grouping::Type), Some(Grouping::Stream), Some(Grouping::Source)];
        assert_eq!(fields(grouped(four)), ["group_by"]);
        let zero_width = CountDraft { bucket_width: Some(TimeDelta::zero()), ..CountDraft::default() };
        assert_eq!(fields(zero_width), ["bucket_width"]);
        assert_eq!(fields(CountDraft { target_buckets: Some(1_001), ..CountDraft::default() }), ["target_buckets"]);
        assert_eq!(fields(CountDraft { top: 1_001, ..CountDraft::default() }), ["top"]);
        let defaults = CountDraft::default().validate().expect("valid");
        assert_eq!((defaults.top, defaults.buckets), (DEFAULT_TOP, None));
    }
}
