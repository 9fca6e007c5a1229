use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::limits::{Limits, TRUNCATED_FROM_BYTES};

/// The earliest time logwell stores: protobuf's Timestamp range, which both
/// backends hold with microsecond precision.
pub const MIN_TIME: DateTime<Utc> = match NaiveDate::from_ymd_opt(1, 1, 1) {
    Some(date) => date.and_time(chrono::NaiveTime::MIN).and_utc(),
    None => panic!("0001-01-01 is a valid date"),
};
/// The latest time logwell stores.
pub const MAX_TIME: DateTime<Utc> = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(date) => match date.and_hms_micro_opt(23, 59, 59, 999_999) {
        Some(time) => time.and_utc(),
        None => panic!("23:59:59.999999 is a valid time"),
    },
    None => panic!("9999-12-31 is a valid date"),
};

/// One field of a request that breaks a rule, named the way the client sent
/// it (for example `logs[3].task_run_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// Every rule a request breaks, collected so that the caller learns about all
/// of them at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// A single violation.
    pub fn one(field: impl Into<String>, description: impl Into<String>) -> Violations {
        let mut violations = Violations::default();
        violations.add(field, description);
        violations
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation { field: field.into(), description: description.into() });
    }

    /// The same violations, with field names relative to `prefix`.
    pub fn under(self, prefix: &str) -> Violations {
        let nested = self.0.into_iter().map(|violation| FieldViolation {
            field: format!("{prefix}.{}", violation.field),
            description: violation.description,
        });
        Violations(nested.collect())
    }

    /// Adds every violation of `other` whose field has none yet: a field
    /// that could not even be decoded is reported once, as undecodable.
    pub fn merge(&mut self, other: Violations) {
        for violation in other.0 {
            if !self.0.iter().any(|known| known.field == violation.field) {
                self.0.push(violation);
            }
        }
    }

    /// The result of validating what was decoded with these violations.
    pub fn judge<T>(mut self, validated: Result<T, Violations>) -> Result<T, Violations> {
        match validated {
            Ok(value) => self.into_result(value),
            Err(model) => {
                self.merge(model);
                Err(self)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &FieldViolation> {
        self.0.iter()
    }

    /// `Ok(value)` if nothing was violated.
    pub fn into_result<T>(self, value: T) -> Result<T, Violations> {
        if self.is_empty() { Ok(value) } else { Err(self) }
    }
}

impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let described: Vec<String> = self.0.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
        f.write_str(&described.join("; "))
    }
}

/// Parses an id that the request must carry.
pub(crate) fn required_uuid(violations: &mut Violations, field: &str, text: &str) -> Option<Uuid> {
    if text.is_empty() {
        violations.add(field, "is required");
        return None;
    }
    optional_uuid(violations, field, text)
}

/// Parses the one id a request is about, or says why it cannot.
pub fn required_id(field: &str, text: &str) -> Result<Uuid, Violations> {
    let mut violations = Violations::default();
    let id = required_uuid(&mut violations, field, text);
    id.ok_or(violations)
}

/// Parses an id that may be empty.
pub(crate) fn optional_uuid(violations: &mut Violations, field: &str, text: &str) -> Option<Uuid> {
    if text.is_empty() {
        return None;
    }
    match Uuid::try_parse(text) {
        Ok(id) if id.is_nil() => {
            violations.add(field, "must not be the nil UUID");
            None
        }
        Ok(id) => Some(id),
        Err(_) => {
            violations.add(field, format!("{text:?} is not a UUID"));
            None
        }
    }
}

/// Checks that a time lies in the stored range and truncates it to the
/// stored (microsecond) precision.
pub(crate) fn storable_time(violations: &mut Violations, field: &str, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let truncated =
        DateTime::from_timestamp_micros(time.timestamp_micros()).filter(|time| (MIN_TIME..=MAX_TIME).contains(time));
    if truncated.is_none() {
        violations.add(field, format!("{time} is outside the supported range {MIN_TIME} .. {MAX_TIME}"));
    }
    truncated
}

pub(crate) fn check_source(violations: &mut Violations, field: &str, source: &str, max_bytes: usize) {
    if source.len() > max_bytes {
        violations.add(field, format!("is {} bytes long; at most {max_bytes} are allowed", source.len()));
    }
    if source.chars().any(char::is_control) {
        violations.add(field, "must not contain control characters");
    }
}

/// Checks a message; a message over the bound is cut to it (at a character
/// boundary) if the limits say so. Answers the length it was sent with, if cut.
pub(crate) fn check_message(
    violations: &mut Violations,
    field: &str,
    message: &mut String,
    limits: &Limits,
) -> Option<usize> {
    let mut truncated_from = None;
    if message.is_empty() {
        violations.add(field, "is required and must not be empty");
    } else if message.len() > limits.message_bytes {
        // The longest prefix of whole characters that fits; none may fit.
        let cut = (0..=limits.message_bytes).rev().find(|&index| message.is_char_boundary(index)).unwrap_or(0);
        if limits.truncate_messages && cut > 0 {
            truncated_from = Some(message.len());
            message.truncate(cut);
        } else {
            violations
                .add(field, format!("is {} bytes long; at most {} are allowed", message.len(), limits.message_bytes));
        }
    }
    if message.contains('\0') {
        violations.add(field, "must not contain NUL characters");
    }
    truncated_from
}

/// Marks metadata whose message was cut from `bytes` long.
pub(crate) fn mark_truncated(metadata: &mut Map<String, Value>, bytes: usize) {
    metadata.insert(TRUNCATED_FROM_BYTES.into(), Value::from(bytes));
}

pub(crate) fn check_metadata(violations: &mut Violations, field: &str, metadata: &Map<String, Value>, limits: &Limits) {
    let size = serde_json::to_string(metadata).map_or(usize::MAX, |json| json.len());
    if size > limits.metadata_bytes {
        violations.add(field, format!("is {size} bytes as JSON; at most {} are allowed", limits.metadata_bytes));
    }
    let depth = 1 + metadata.values().map(depth).max().unwrap_or(0);
    if depth > limits.metadata_depth {
        violations.add(field, format!("nests {depth} levels deep; at most {} are allowed", limits.metadata_depth));
    }
    if object_contains_nul(metadata) {
        violations.add(field, "must not contain NUL characters in keys or strings");
    }
}

/// Levels of objects and arrays in `value`: 0 for a scalar.
fn depth(value: &Value) -> usize {
    match value {
        Value::Object(object) => 1 + object.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn object_contains_nul(object: &Map<String, Value>) -> bool {
    object.iter().any(|(key, value)| key.contains('\0') || value_contains_nul(value))
}

fn value_contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(value_contains_nul),
        Value::Object(object) => object_contains_nul(object),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_non_nil_uuids() {
        let mut violations = Violations::default();
        assert_eq!(required_uuid(&mut violations, "a", ""), None);
        assert_eq!(required_uuid(&mut violations, "b", "not-a-uuid"), None);
        assert_eq!(required_uuid(&mut violations, "c", &Uuid::nil().to_string()), None);
        let id = Uuid::now_v7();
        assert_eq!(required_uuid(&mut violations, "d", &id.to_string()), Some(id));
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["a", "b", "c"]);
    }

    #[test]
    fn times_are_bounded_and_truncated_to_microseconds() {
        let mut violations = Violations::default();
        let precise = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let stored = storable_time(&mut violations, "time", precise).unwrap();
        assert_eq!(stored.timestamp_subsec_nanos(), 123_456_000);
        assert_eq!(storable_time(&mut violations, "time", MAX_TIME), Some(MAX_TIME));
        assert_eq!(storable_time(&mut violations, "time", MIN_TIME), Some(MIN_TIME));
        assert!(violations.is_empty());
        let last_nanosecond = MAX_TIME + chrono::TimeDelta::nanoseconds(999);
        assert_eq!(storable_time(&mut violations, "time", last_nanosecond), Some(MAX_TIME));
        assert!(violations.is_empty());
        let too_late = MAX_TIME + chrono::TimeDelta::microseconds(1);
        assert_eq!(storable_time(&mut violations, "time", too_late), None);
        assert_eq!(violations.iter().count(), 1);
    }

    #[test]
    fn nul_anywhere_in_metadata_is_refused() {
        let mut violations = Violations::default();
        let nested: Map<String, Value> = serde_json::from_str(r#"{"a": [{"b": "x\u0000y"}]}"#).unwrap();
        check_metadata(&mut violations, "metadata", &nested, &Limits::default());
        let clean: Map<String, Value> = serde_json::from_str(r#"{"a": [{"b": "xy"}]}"#).unwrap();
        check_metadata(&mut violations, "clean", &clean, &Limits::default());
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["metadata"]);
    }

    #[test]
    fn messages_must_be_non_empty_and_nul_free() {
        let mut violations = Violations::default();
        let limits = Limits::default();
        check_message(&mut violations, "empty", &mut String::new(), &limits);
        check_message(&mut violations, "nul", &mut "a\0b".into(), &limits);
        check_message(&mut violations, "fine", &mut "tab\tand newline\n and \u{1b}[31mcolour".into(), &limits);
        check_message(&mut violations, "huge", &mut "x".repeat(limits.message_bytes + 1), &limits);
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["empty", "nul", "huge"]);
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary_if_wanted() {
        let limits = Limits { message_bytes: 5, truncate_messages: true, ..Limits::default() };
        let mut violations = Violations::default();
        let mut message = "abcdé€".to_string();
        assert_eq!(check_message(&mut violations, "message", &mut message, &limits), Some(9));
        assert_eq!(message, "abcd");
        let mut exact = "abcde".to_string();
        assert_eq!(check_message(&mut violations, "message", &mut exact, &limits), None);
        assert!(violations.is_empty());
        // Found by the property tests: a cut that keeps nothing would leave
        // an empty message.
        let one_byte = Limits { message_bytes: 1, ..limits };
        assert_eq!(check_message(&mut violations, "wide", &mut "€".to_string(), &one_byte), None);
        assert_eq!(violations.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(), ["wide"]);
    }

    #[test]
    fn metadata_depth_is_bounded() {
        let limits = Limits { metadata_depth: 3, ..Limits::default() };
        let at_bound: Map<String, Value> = serde_json::from_str(r#"{"a": {"b": [1]}}"#).unwrap();
        let past: Map<String, Value> = serde_json::from_str(r#"{"a": {"b": [[1]]}}"#).unwrap();
        let mut violations = Violations::default();
        check_metadata(&mut violations, "at_bound", &at_bound, &limits);
        check_metadata(&mut violations, "past", &past, &limits);
        let described: Vec<String> = violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect();
        assert_eq!(described, ["past: nests 4 levels deep; at most 3 are allowed"]);
    }
}
