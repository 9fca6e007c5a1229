//! Which logs a read returns: the filters every read shares (listings now;
//! counts, exports and follows build on the same type). Each condition that
//! is set must hold; sets match any of their members.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::kinds::{Level, LogType, Stream};
use super::log::Log;
use super::validation::{Violations, check_source, optional_uuid, storable_time};

/// Members of one set filter (runs, task runs, sources), at most.
pub const MAX_SET_MEMBERS: usize = 100;
/// Metadata conditions in one filter, at most.
pub const MAX_METADATA_CONDITIONS: usize = 16;
/// Bytes of a metadata key in a condition, at most.
pub const MAX_METADATA_KEY_BYTES: usize = 256;
/// Values of a `one_of` condition, at most.
pub const MAX_ONE_OF_VALUES: usize = 100;
/// Bytes of text a search, or a string a metadata condition, may hold.
pub const MAX_SEARCH_BYTES: usize = 1_024;

/// Which logs a read returns. Empty sets match everything; sets are sorted
/// and hold each member once, so that equal filters compare equal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    pub types: Vec<LogType>,
    /// One run pins the read to that run's sequence (seq order).
    pub job_run_ids: Vec<Uuid>,
    /// One task run pins the read to it (seq order within its job run).
    pub task_run_ids: Vec<Uuid>,
    pub levels: Vec<Level>,
    pub streams: Vec<Stream>,
    pub sources: Vec<String>,
    /// Inclusive.
    pub start_time: Option<DateTime<Utc>>,
    /// Exclusive.
    pub end_time: Option<DateTime<Utc>>,
    pub text: Option<TextSearch>,
    pub metadata: Vec<MetadataCondition>,
    /// Only logs after this seq of the one pinned sequence.
    pub after_seq: Option<i64>,
}

/// How a store folds letters in a text search that ignores case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseFolding {
    /// ASCII letters only: SQLite, and PostgreSQL with the C collation.
    Ascii,
    /// Beyond ASCII, as a PostgreSQL database's collation does.
    Collation,
}

/// Text to find in messages, taken literally (no wildcards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSearch {
    pub text: String,
    /// ASCII letters match either case on SQLite; on PostgreSQL, letters
    /// fold as the database's collation folds them.
    pub ignore_case: bool,
    /// Also match logs whose top-level metadata values hold the text.
    pub include_metadata: bool,
}

/// A condition on one top-level metadata key.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataCondition {
    pub key: String,
    pub test: MetadataTest,
}

/// What a metadata condition asks of its key's value. Values are JSON
/// scalars (string, number or bool) and compare typed: `42` is not `"42"`.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataTest {
    Equals(Value),
    OneOf(Vec<Value>),
    /// `true`: the key is present, whatever its value (null included);
    /// `false`: it is absent.
    Exists(bool),
}

impl LogFilter {
    /// Why `matches` cannot decide this filter exactly as a store that
    /// folds case by `folding` does, naming the field: metadata values
    /// searched as text (each database renders numbers and nested values
    /// its own way), and case folded beyond ASCII by a collation. `None`:
    /// it decides it.
    pub fn undecided_in_memory(&self, folding: CaseFolding) -> Option<(&'static str, &'static str)> {
        let search = self.text.as_ref()?;
        if search.include_metadata {
            return Some((
                "include_metadata",
                "metadata values are searched as the database renders them as text, which only it can do: \
                 follow without include_metadata, or search with ListLogs",
            ));
        }
        if search.ignore_case && folding == CaseFolding::Collation {
            return Some((
                "ignore_case",
                "this PostgreSQL database folds letters beyond ASCII by its collation, which only it can \
                 apply: follow with the case as written, or search with ListLogs",
            ));
        }
        None
    }

    /// Every log of one job run, or of the system sequence.
    pub fn sequence(job_run_id: Option<Uuid>) -> LogFilter {
        match job_run_id {
            Some(id) => LogFilter { job_run_ids: vec![id], ..LogFilter::default() },
            None => LogFilter { types: vec![LogType::System], ..LogFilter::default() },
        }
    }

    /// The one job run the filter pins, if it pins one.
    pub fn job_run_id(&self) -> Option<Uuid> {
        single(&self.job_run_ids)
    }

    /// The one task run the filter pins, if it pins one.
    pub fn task_run_id(&self) -> Option<Uuid> {
        single(&self.task_run_ids)
    }

    /// Whether only system logs can match.
    pub fn system_only(&self) -> bool {
        self.types == [LogType::System]
    }

    /// Whether `log` matches every condition but `after_seq`, in memory: the
    /// rule the SQL of both backends spells out.
    pub fn matches(&self, log: &Log) -> bool {
        let within = |set: &[Uuid], id: Option<Uuid>| set.is_empty() || id.is_some_and(|id| set.contains(&id));
        (self.types.is_empty() || self.types.contains(&log.owner.log_type()))
            && within(&self.job_run_ids, log.owner.job_run_id())
            && within(&self.task_run_ids, log.owner.task_run_id())
            && (self.levels.is_empty() || self.levels.contains(&log.level))
            && (self.streams.is_empty() || self.streams.contains(&log.stream))
            && (self.sources.is_empty() || self.sources.contains(&log.source))
            && self.start_time.is_none_or(|start| log.time >= start)
            && self.end_time.is_none_or(|end| log.time < end)
            && self.text.as_ref().is_none_or(|search| search.matches(log))
            && self.metadata.iter().all(|condition| condition.matches(&log.metadata))
    }

    /// Logs that match both filters. Sets intersect; an intersection that
    /// is empty could only ever match nothing, and is refused, naming the
    /// field of `other` (whose fields are named under `prefix`). Checks that
    /// only the combination can fail run when nothing else was refused.
    pub fn and(self, other: LogFilter, prefix: &str, violations: &mut Violations) -> LogFilter {
        let field = |name: &str| format!("{prefix}{name}");
        let sound_so_far = violations.is_empty();
        let text = match (self.text, other.text) {
            (Some(_), Some(_)) => {
                violations.add(field("text"), "a search is already set by message_contains: set it in one place");
                None
            }
            (mine, theirs) => mine.or(theirs),
        };
        let mut metadata = self.metadata;
        metadata.extend(other.metadata);
        if metadata.len() > MAX_METADATA_CONDITIONS {
            violations.add(field("metadata"), format!("more than {MAX_METADATA_CONDITIONS} conditions in all"));
        }
        let filter = LogFilter {
            types: intersect(self.types, other.types, &field("types"), violations),
            job_run_ids: intersect(self.job_run_ids, other.job_run_ids, &field("job_run_ids"), violations),
            task_run_ids: intersect(self.task_run_ids, other.task_run_ids, &field("task_run_ids"), violations),
            levels: intersect(self.levels, other.levels, &field("levels"), violations),
            streams: intersect(self.streams, other.streams, &field("streams"), violations),
            sources: intersect(self.sources, other.sources, &field("sources"), violations),
            start_time: self.start_time.max(other.start_time),
            end_time: match (self.end_time, other.end_time) {
                (Some(mine), Some(theirs)) => Some(mine.min(theirs)),
                (mine, theirs) => mine.or(theirs),
            },
            text,
            metadata,
            after_seq: self.after_seq.or(other.after_seq),
        };
        if sound_so_far {
            if let (Some(start), Some(end)) = (filter.start_time, filter.end_time)
                && end <= start
            {
                violations.add(field("end_time"), format!("{end} must be after the start time {start}"));
            }
            filter.check_model(prefix, violations);
        }
        filter
    }

    /// Refuses combinations the model rules out, which could only ever
    /// match nothing and are more likely a client's mistake.
    fn check_model(&self, prefix: &str, violations: &mut Violations) {
        let field = |name: &str| format!("{prefix}{name}");
        if self.system_only() {
            if !self.job_run_ids.is_empty() {
                violations.add(field("job_run_ids"), "system logs have no job run");
            }
            if !self.task_run_ids.is_empty() {
                violations.add(field("task_run_ids"), "system logs have no task run");
            }
            if !self.streams.is_empty() && !self.streams.contains(&Stream::System) {
                violations.add(field("streams"), "system logs are only on the system stream");
            }
        }
        if self.types == [LogType::Job] && !self.task_run_ids.is_empty() {
            violations.add(field("task_run_ids"), "job logs have no task run");
        }
    }
}

impl TextSearch {
    fn matches(&self, log: &Log) -> bool {
        let found = |haystack: &str| {
            if self.ignore_case {
                haystack.to_ascii_lowercase().contains(&self.text.to_ascii_lowercase())
            } else {
                haystack.contains(&self.text)
            }
        };
        found(&log.message)
            || (self.include_metadata
                && log.metadata.values().any(|value| match value {
                    Value::String(text) => found(text),
                    other => found(&other.to_string()),
                }))
    }
}

impl MetadataCondition {
    fn matches(&self, metadata: &serde_json::Map<String, Value>) -> bool {
        let value = metadata.get(&self.key);
        match &self.test {
            MetadataTest::Exists(wanted) => value.is_some() == *wanted,
            MetadataTest::Equals(wanted) => value.is_some_and(|value| same_scalar(value, wanted)),
            MetadataTest::OneOf(wanted) => value.is_some_and(|value| wanted.iter().any(|one| same_scalar(value, one))),
        }
    }
}

/// JSON equality of scalars, numbers by value (`42` equals `42.0`), as
/// both databases compare them: integers exactly, even past 2^53.
fn same_scalar(stored: &Value, wanted: &Value) -> bool {
    match (stored, wanted) {
        (Value::Number(stored), Value::Number(wanted)) => match (integer(stored), integer(wanted)) {
            (Some(stored), Some(wanted)) => stored == wanted,
            _ => stored.as_f64() == wanted.as_f64(),
        },
        (stored, wanted) => stored == wanted,
    }
}

/// A number's exact integer value, if it has one.
fn integer(number: &serde_json::Number) -> Option<i128> {
    if let Some(value) = number.as_i64() {
        return Some(value.into());
    }
    if let Some(value) = number.as_u64() {
        return Some(value.into());
    }
    // Below 2^64 in size, a float with no fraction is an integer exactly.
    let float = number.as_f64()?;
    (float.fract() == 0.0 && float.abs() < 18_446_744_073_709_551_616.0).then_some(float as i128)
}

fn single<T: Copy>(set: &[T]) -> Option<T> {
    match set {
        [one] => Some(*one),
        _ => None,
    }
}

fn intersect<T: Ord>(mine: Vec<T>, theirs: Vec<T>, field: &str, violations: &mut Violations) -> Vec<T> {
    match (mine.is_empty(), theirs.is_empty()) {
        (true, _) => theirs,
        (_, true) => mine,
        (false, false) => {
            let both: Vec<T> = mine.into_iter().filter(|member| theirs.contains(member)).collect();
            if both.is_empty() {
                violations.add(field, "contradicts the other filters: no value is allowed by both");
            }
            both
        }
    }
}

/// Sorted, each member once.
fn canonical<T: Ord>(mut set: Vec<T>) -> Vec<T> {
    set.sort();
    set.dedup();
    set
}

/// A filter as the client sent it, before validation.
#[derive(Debug, Clone, Default)]
pub struct FilterDraft {
    pub types: Vec<LogType>,
    pub job_run_ids: Vec<String>,
    pub task_run_ids: Vec<String>,
    pub min_level: Option<Level>,
    pub levels: Vec<Level>,
    pub streams: Vec<Stream>,
    pub sources: Vec<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub text: String,
    pub ignore_case: bool,
    pub include_metadata: bool,
    pub metadata: Vec<MetadataConditionDraft>,
}

/// A metadata condition as the client sent it; values already decoded.
#[derive(Debug, Clone)]
pub struct MetadataConditionDraft {
    pub key: String,
    /// `None`: the client set no condition.
    pub test: Option<MetadataTest>,
}

impl FilterDraft {
    /// Validates into a filter, naming fields under `prefix` (`filter.`, or
    /// empty for a request's own top-level fields).
    pub fn validate(self, prefix: &str, violations: &mut Violations) -> LogFilter {
        let field = |name: &str| format!("{prefix}{name}");
        let uuids = |violations: &mut Violations, name: &str, texts: Vec<String>| {
            check_set_size(violations, &field(name), texts.len());
            let ids = texts
                .iter()
                .enumerate()
                .filter_map(|(index, text)| optional_uuid(violations, &format!("{}[{index}]", field(name)), text));
            canonical(ids.collect())
        };
        let job_run_ids = uuids(violations, "job_run_ids", self.job_run_ids);
        let task_run_ids = uuids(violations, "task_run_ids", self.task_run_ids);
        check_set_size(violations, &field("sources"), self.sources.len());
        for (index, source) in self.sources.iter().enumerate() {
            // No length bound: a longer source than any stored matches nothing.
            check_source(violations, &format!("{}[{index}]", field("sources")), source, usize::MAX);
        }
        let start_time = self.start_time.and_then(|time| storable_time(violations, &field("start_time"), time));
        let end_time = self.end_time.and_then(|time| storable_time(violations, &field("end_time"), time));
        if let (Some(start), Some(end)) = (start_time, end_time)
            && end <= start
        {
            violations.add(field("end_time"), format!("{end} must be after start_time {start}"));
        }
        let levels = match self.min_level {
            None => canonical(self.levels),
            Some(min_level) => {
                let above: Vec<Level> = min_level.and_above().to_vec();
                intersect(above, canonical(self.levels), &field("levels"), violations)
            }
        };
        if self.metadata.len() > MAX_METADATA_CONDITIONS {
            violations.add(
                field("metadata"),
                format!("{} conditions; at most {MAX_METADATA_CONDITIONS}", self.metadata.len()),
            );
        }
        let metadata = self
            .metadata
            .into_iter()
            .enumerate()
            .filter_map(|(index, condition)| condition.validate(&format!("{}[{index}]", field("metadata")), violations))
            .collect();
        let filter = LogFilter {
            types: canonical(self.types),
            job_run_ids,
            task_run_ids,
            // Every level is no filter at all.
            levels: if levels.len() == Level::ALL.len() { Vec::new() } else { levels },
            streams: canonical(self.streams),
            sources: canonical(self.sources),
            start_time,
            end_time,
            text: search(self.text, self.ignore_case, self.include_metadata, &field("text"), violations),
            metadata,
            after_seq: None,
        };
        filter.check_model(prefix, violations);
        filter
    }
}

impl MetadataConditionDraft {
    fn validate(self, field: &str, violations: &mut Violations) -> Option<MetadataCondition> {
        let before = violations.iter().count();
        if self.key.is_empty() {
            violations.add(format!("{field}.key"), "must not be empty");
        } else if self.key.len() > MAX_METADATA_KEY_BYTES {
            violations.add(format!("{field}.key"), format!("is longer than {MAX_METADATA_KEY_BYTES} bytes"));
        } else if self.key.contains('\0') {
            violations.add(format!("{field}.key"), "must not contain NUL characters");
        }
        match &self.test {
            None => violations.add(field, "sets no condition: set one of equals, one_of, exists"),
            Some(MetadataTest::Equals(value)) => check_scalar(violations, &format!("{field}.equals"), value),
            Some(MetadataTest::OneOf(values)) => {
                if values.is_empty() {
                    violations.add(format!("{field}.one_of"), "must hold at least one value");
                } else if values.len() > MAX_ONE_OF_VALUES {
                    violations.add(
                        format!("{field}.one_of"),
                        format!("{} values; at most {MAX_ONE_OF_VALUES}", values.len()),
                    );
                }
                for (index, value) in values.iter().enumerate() {
                    check_scalar(violations, &format!("{field}.one_of[{index}]"), value);
                }
            }
            Some(MetadataTest::Exists(_)) => {}
        }
        let test = self.test?;
        (violations.iter().count() == before).then_some(MetadataCondition { key: self.key, test })
    }
}

fn check_scalar(violations: &mut Violations, field: &str, value: &Value) {
    match value {
        Value::String(text) if text.len() > MAX_SEARCH_BYTES => {
            violations.add(field, format!("is longer than {MAX_SEARCH_BYTES} bytes"));
        }
        Value::String(text) if text.contains('\0') => violations.add(field, "must not contain NUL characters"),
        Value::String(_) | Value::Number(_) | Value::Bool(_) => {}
        Value::Null | Value::Array(_) | Value::Object(_) => {
            violations.add(field, "must be a string, a number or a bool (use exists to ask for a key)");
        }
    }
}

fn check_set_size(violations: &mut Violations, field: &str, size: usize) {
    if size > MAX_SET_MEMBERS {
        violations.add(field, format!("{size} members; at most {MAX_SET_MEMBERS}"));
    }
}

fn search(
    text: String,
    ignore_case: bool,
    include_metadata: bool,
    field: &str,
    violations: &mut Violations,
) -> Option<TextSearch> {
    if text.len() > MAX_SEARCH_BYTES {
        violations.add(field, format!("is longer than {MAX_SEARCH_BYTES} bytes"));
    }
    if text.contains('\0') {
        violations.add(field, "must not contain NUL characters");
    }
    if text.is_empty() && (ignore_case || include_metadata) {
        violations.add(field, "is empty, but ignore_case or include_metadata asks how to search it");
    }
    (!text.is_empty()).then_some(TextSearch { text, ignore_case, include_metadata })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(violations: &Violations) -> Vec<String> {
        violations.iter().map(|violation| violation.field.clone()).collect()
    }

    fn validate(draft: FilterDraft) -> (LogFilter, Violations) {
        let mut violations = Violations::default();
        let filter = draft.validate("filter.", &mut violations);
        (filter, violations)
    }

    fn condition(key: &str, test: MetadataTest) -> MetadataConditionDraft {
        MetadataConditionDraft { key: key.into(), test: Some(test) }
    }

    #[test]
    fn sets_are_canonical_and_one_run_pins_it() {
        let run = Uuid::now_v7();
        let draft = FilterDraft {
            job_run_ids: vec![run.to_string(), run.to_string()],
            streams: vec![Stream::Stderr, Stream::Stdout, Stream::Stderr],
            min_level: Some(Level::Trace),
            ..FilterDraft::default()
        };
        let (filter, violations) = validate(draft);
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(filter.job_run_id(), Some(run));
        assert_eq!(filter.streams, [Stream::Stdout, Stream::Stderr]);
        assert!(filter.levels.is_empty(), "every level is no filter");
    }

    #[test]
    fn min_level_and_levels_intersect_or_contradict() {
        let draft = FilterDraft {
            min_level: Some(Level::Warn),
            levels: vec![Level::Info, Level::Error],
            ..FilterDraft::default()
        };
        assert_eq!(validate(draft).0.levels, [Level::Error]);
        let draft = FilterDraft { min_level: Some(Level::Error), levels: vec![Level::Info], ..FilterDraft::default() };
        assert_eq!(fields(&validate(draft).1), ["filter.levels"]);
    }

    #[test]
    fn bad_conditions_name_their_field_and_bound() {
        let draft = FilterDraft {
            metadata: vec![
                condition("", MetadataTest::Exists(true)),
                condition(&"k".repeat(MAX_METADATA_KEY_BYTES + 1), MetadataTest::Exists(true)),
                condition("worker", MetadataTest::Equals(json!({"nested": true}))),
                condition("cycle", MetadataTest::OneOf(Vec::new())),
                MetadataConditionDraft { key: "stage".into(), test: None },
                condition("ok", MetadataTest::OneOf(vec![json!("a"), json!(1), json!(true)])),
            ],
            job_run_ids: vec!["not-a-uuid".into()],
            ..FilterDraft::default()
        };
        let (filter, violations) = validate(draft);
        assert_eq!(
            fields(&violations),
            [
                "filter.job_run_ids[0]",
                "filter.metadata[0].key",
                "filter.metadata[1].key",
                "filter.metadata[2].equals",
                "filter.metadata[3].one_of",
                "filter.metadata[4]",
            ]
        );
        assert_eq!(filter.metadata.len(), 1);
        let too_many = FilterDraft {
            metadata: (0..=MAX_METADATA_CONDITIONS)
                .map(|index| condition(&format!("k{index}"), MetadataTest::Exists(true)))
                .collect(),
            sources: vec!["s".into(); MAX_SET_MEMBERS + 1],
            ..FilterDraft::default()
        };
        assert_eq!(fields(&validate(too_many).1), ["filter.sources", "filter.metadata"]);
    }

    #[test]
    fn combining_filters_intersects_and_refuses_contradictions() {
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        let mut violations = Violations::default();
        let top = LogFilter { job_run_ids: vec![first], ..LogFilter::default() };
        let nested = LogFilter { job_run_ids: canonical(vec![first, second]), ..LogFilter::default() };
        assert_eq!(top.clone().and(nested, "filter.", &mut violations).job_run_id(), Some(first));
        assert!(violations.is_empty());
        let other = LogFilter { job_run_ids: vec![second], ..LogFilter::default() };
        top.and(other, "filter.", &mut violations);
        assert_eq!(fields(&violations), ["filter.job_run_ids"]);

        let mut violations = Violations::default();
        let system = LogFilter { types: vec![LogType::System], ..LogFilter::default() };
        let stdout = LogFilter { streams: vec![Stream::Stdout], ..LogFilter::default() };
        system.and(stdout, "filter.", &mut violations);
        assert_eq!(fields(&violations), ["filter.streams"]);
    }

    #[test]
    fn metadata_conditions_compare_typed_like_json() {
        let log_metadata = json!({"cycle": 42, "worker": "gpu-7", "retry": true, "gone": null});
        let metadata = log_metadata.as_object().expect("object");
        let holds = |key: &str, test: MetadataTest| MetadataCondition { key: key.into(), test }.matches(metadata);
        assert!(holds("cycle", MetadataTest::Equals(json!(42))));
        assert!(holds("cycle", MetadataTest::Equals(json!(42.0))));
        assert!(!holds("cycle", MetadataTest::Equals(json!("42"))));
        assert!(holds("worker", MetadataTest::OneOf(vec![json!("gpu-1"), json!("gpu-7")])));
        assert!(!holds("retry", MetadataTest::Equals(json!(1))));
        assert!(holds("gone", MetadataTest::Exists(true)));
        assert!(!holds("absent", MetadataTest::Exists(true)));
        assert!(holds("absent", MetadataTest::Exists(false)));
        // Integers compare exactly, as the databases compare them, even
        // where a float cannot tell them apart.
        let big = json!({"id": 9_007_199_254_740_993_u64});
        let big = big.as_object().expect("object");
        let id = |wanted| MetadataCondition { key: "id".into(), test: MetadataTest::Equals(wanted) }.matches(big);
        assert!(id(json!(9_007_199_254_740_993_u64)));
        assert!(!id(json!(9_007_199_254_740_992_u64)));
        assert!(!id(json!(9_007_199_254_740_992.0)));
    }
}
