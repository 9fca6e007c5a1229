use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::kinds::{Level, LogType, Owner, Stream};
use super::limits::Limits;
use super::validation::{
    Violations, check_message, check_metadata, check_source, mark_truncated, optional_uuid, required_uuid,
    storable_time,
};

/// A log as its emitter sent it, before validation. Enumerations arrive
/// decoded; `None` means the emitter left the field unset.
#[derive(Debug, Clone, Default)]
pub struct LogDraft {
    /// The client's id for the log; empty: the server assigns one.
    pub id: String,
    pub job_run_id: String,
    pub task_run_id: String,
    pub time: Option<DateTime<Utc>>,
    pub level: Option<Level>,
    pub stream: Option<Stream>,
    pub source: String,
    pub message: String,
    pub metadata: Map<String, Value>,
}

/// A validated log, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLog {
    pub id: Uuid,
    /// Whether the client chose the id, so that it may already be stored
    /// (a resend). Server-chosen ids are new by construction.
    pub client_id: bool,
    pub owner: Owner,
    pub time: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub level: Level,
    pub stream: Stream,
    pub source: String,
    pub message: String,
    pub metadata: Map<String, Value>,
}

/// A stored log.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub id: Uuid,
    pub owner: Owner,
    /// Position in its job run, or in the system sequence: 1, 2, 3, … in
    /// commit order.
    pub seq: i64,
    pub time: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub level: Level,
    pub stream: Stream,
    pub source: String,
    pub message: String,
    pub metadata: Map<String, Value>,
}

/// What the store assigned to a log it committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub id: Uuid,
    pub seq: i64,
    pub received_at: DateTime<Utc>,
    /// The log was already stored under this id; nothing new was stored.
    pub duplicate: bool,
}

impl Log {
    /// The stored form of `log`, committed with `seq`.
    pub fn committed(log: NewLog, seq: i64) -> Log {
        let NewLog { id, client_id: _, owner, time, received_at, level, stream, source, message, metadata } = log;
        Log { id, owner, seq, time, received_at, level, stream, source, message, metadata }
    }
}

/// A UUIDv7 id carries the time it was made: one older than its type's
/// retention may name a log that expired, and a resend of it would be stored
/// again under a new seq. Ids of other versions carry no usable time.
fn check_id_within_retention(
    violations: &mut Violations,
    id: Uuid,
    log_type: LogType,
    limit: chrono::TimeDelta,
    received_at: DateTime<Utc>,
) {
    let Some(made) =
        id.get_timestamp().filter(|_| id.get_version() == Some(uuid::Version::SortRand)).and_then(|timestamp| {
            let (seconds, nanos) = timestamp.to_unix();
            DateTime::from_timestamp(i64::try_from(seconds).ok()?, nanos)
        })
    else {
        return;
    };
    if made < received_at - limit {
        violations.add(
            "id",
            format!(
                "is a UUIDv7 made at {}, longer ago than {log_type} logs are kept ({}): its log may have expired, \
                 and a resend would store it again as a new log",
                made.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                humantime::format_duration(limit.to_std().unwrap_or_default())
            ),
        );
    }
}

impl LogDraft {
    /// Validates the draft as a log of `log_type`, received at `received_at`.
    /// Every broken rule is reported, each under the field that breaks it.
    pub fn validate(
        mut self,
        log_type: LogType,
        received_at: DateTime<Utc>,
        limits: &Limits,
    ) -> Result<NewLog, Violations> {
        let mut violations = Violations::default();
        let client_id = optional_uuid(&mut violations, "id", &self.id);
        if let (Some(id), Some(limit)) = (client_id, limits.retention.limit(log_type)) {
            check_id_within_retention(&mut violations, id, log_type, limit, received_at);
        }
        let owner = self.owner(log_type, &mut violations);
        let received_at = storable_time(&mut violations, "received_at", received_at);
        let time = match self.time {
            Some(time) => storable_time(&mut violations, "time", time),
            None => received_at,
        };
        let stream = match (owner, self.stream) {
            (Some(owner), None) => Some(owner.default_stream()),
            (Some(owner), Some(stream)) if !owner.allows_stream(stream) => {
                violations.add("stream", format!("{log_type} logs are always on the system stream, not {stream}"));
                None
            }
            (_, stream) => stream,
        };
        check_source(&mut violations, "source", &self.source, limits.source_bytes);
        // The mark counts against the metadata bound, so that what is stored
        // is always within the limits (and a resend of it is accepted as is).
        if let Some(bytes) = check_message(&mut violations, "message", &mut self.message, limits) {
            mark_truncated(&mut self.metadata, bytes);
        }
        check_metadata(&mut violations, "metadata", &self.metadata, limits);

        match (owner, time, received_at, stream) {
            (Some(owner), Some(time), Some(received_at), Some(stream)) if violations.is_empty() => Ok(NewLog {
                id: client_id.unwrap_or_else(Uuid::now_v7),
                client_id: client_id.is_some(),
                owner,
                time,
                received_at,
                level: self.level.unwrap_or(Level::Info),
                stream,
                source: self.source,
                message: self.message,
                metadata: self.metadata,
            }),
            _ => Err(violations),
        }
    }

    /// Derives the owner from the type and the ids, naming each id that the
    /// type requires but lacks, or carries but must not.
    fn owner(&self, log_type: LogType, violations: &mut Violations) -> Option<Owner> {
        let forbid = |violations: &mut Violations, field: &str, text: &str| {
            if !text.is_empty() {
                let service = match field {
                    "task_run_id" => "TaskLogService",
                    _ => "JobLogService or TaskLogService",
                };
                violations.add(field, format!("{log_type} logs must not carry a {field}; send such logs to {service}"));
            }
        };
        match log_type {
            LogType::System => {
                forbid(violations, "job_run_id", &self.job_run_id);
                forbid(violations, "task_run_id", &self.task_run_id);
                Some(Owner::System)
            }
            LogType::Job => {
                let job_run_id = required_uuid(violations, "job_run_id", &self.job_run_id);
                forbid(violations, "task_run_id", &self.task_run_id);
                Some(Owner::Job { job_run_id: job_run_id? })
            }
            LogType::Task => {
                let job_run_id = required_uuid(violations, "job_run_id", &self.job_run_id);
                let task_run_id = required_uuid(violations, "task_run_id", &self.task_run_id);
                Some(Owner::Task { job_run_id: job_run_id?, task_run_id: task_run_id? })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(job_run_id: &str, task_run_id: &str) -> LogDraft {
        LogDraft {
            job_run_id: job_run_id.into(),
            task_run_id: task_run_id.into(),
            message: "hello".into(),
            ..LogDraft::default()
        }
    }

    fn violated_fields(result: Result<NewLog, Violations>) -> Vec<String> {
        result.expect_err("draft should be refused").iter().map(|v| v.field.clone()).collect()
    }

    #[test]
    fn each_type_requires_and_forbids_its_ids() {
        let id = Uuid::now_v7().to_string();
        let now = Utc::now();
        assert_eq!(violated_fields(draft(&id, "").validate(LogType::System, now, &Limits::default())), ["job_run_id"]);
        assert_eq!(violated_fields(draft("", &id).validate(LogType::System, now, &Limits::default())), ["task_run_id"]);
        assert_eq!(violated_fields(draft("", "").validate(LogType::Job, now, &Limits::default())), ["job_run_id"]);
        assert_eq!(violated_fields(draft(&id, &id).validate(LogType::Job, now, &Limits::default())), ["task_run_id"]);
        assert_eq!(violated_fields(draft(&id, "").validate(LogType::Task, now, &Limits::default())), ["task_run_id"]);
        assert_eq!(violated_fields(draft("", &id).validate(LogType::Task, now, &Limits::default())), ["job_run_id"]);

        let task = draft(&id, &id).validate(LogType::Task, now, &Limits::default()).unwrap();
        assert_eq!(task.owner.log_type(), LogType::Task);
        assert_eq!(task.stream, Stream::Stdout);
        assert_eq!(task.level, Level::Info);
        let system = draft("", "").validate(LogType::System, now, &Limits::default()).unwrap();
        assert_eq!(system.stream, Stream::System);
    }

    #[test]
    fn client_ids_are_kept_and_checked() {
        let id = Uuid::now_v7();
        let log = LogDraft { id: id.to_string(), ..draft("", "") }
            .validate(LogType::System, Utc::now(), &Limits::default())
            .unwrap();
        assert_eq!((log.id, log.client_id), (id, true));
        let assigned = draft("", "").validate(LogType::System, Utc::now(), &Limits::default()).unwrap();
        assert!(!assigned.client_id);
        assert_eq!(
            violated_fields(LogDraft { id: "x".into(), ..draft("", "") }.validate(
                LogType::System,
                Utc::now(),
                &Limits::default()
            )),
            ["id"]
        );
    }

    #[test]
    fn system_logs_refuse_output_streams() {
        let mut system = draft("", "");
        system.stream = Some(Stream::Stderr);
        assert_eq!(violated_fields(system.validate(LogType::System, Utc::now(), &Limits::default())), ["stream"]);
    }

    #[test]
    fn time_defaults_to_receipt_time() {
        let now = Utc::now();
        let log = draft("", "").validate(LogType::System, now, &Limits::default()).unwrap();
        assert_eq!(log.time, log.received_at);
        assert_eq!(log.received_at.timestamp_micros(), now.timestamp_micros());
    }

    #[test]
    fn all_violations_are_reported_together() {
        let mut bad = draft("nope", "");
        bad.message.clear();
        bad.source = "line\nbreak".into();
        assert_eq!(
            violated_fields(bad.validate(LogType::Task, Utc::now(), &Limits::default())),
            ["job_run_id", "task_run_id", "source", "message"]
        );
    }
}
