//! The model's lower-case names for the proto's enumerations, both ways:
//! `info` is `LOG_LEVEL_INFO` on the wire.

use crate::model::{Level, LogType, Outcome, Stream};
use crate::proto::v1 as pb;

pub fn level(level: Level) -> pb::LogLevel {
    pb::LogLevel::from_str_name(&format!("LOG_LEVEL_{}", level.as_str().to_uppercase()))
        .unwrap_or(pb::LogLevel::Unspecified)
}

pub fn log_type(log_type: LogType) -> pb::LogType {
    pb::LogType::from_str_name(&format!("LOG_TYPE_{}", log_type.as_str().to_uppercase()))
        .unwrap_or(pb::LogType::Unspecified)
}

pub fn stream(stream: Stream) -> pb::LogStream {
    pb::LogStream::from_str_name(&format!("LOG_STREAM_{}", stream.as_str().to_uppercase()))
        .unwrap_or(pb::LogStream::Unspecified)
}

pub fn outcome(outcome: Outcome) -> pb::JobRunOutcome {
    pb::JobRunOutcome::from_str_name(&format!("JOB_RUN_OUTCOME_{}", outcome.as_str().to_uppercase()))
        .unwrap_or(pb::JobRunOutcome::Unspecified)
}

/// The lower-case name of a proto enumeration's value: `LOG_LEVEL_INFO`
/// under `LOG_LEVEL_` is `info`; an unknown or unset value is empty.
pub fn of(wire_name: Option<&str>, prefix: &str) -> String {
    wire_name
        .and_then(|name| name.strip_prefix(prefix))
        .filter(|name| *name != "UNSPECIFIED")
        .map(str::to_lowercase)
        .unwrap_or_default()
}

pub fn level_of(log: &pb::Log) -> String {
    of(pb::LogLevel::try_from(log.level).ok().map(|level| level.as_str_name()), "LOG_LEVEL_")
}

pub fn type_of(log: &pb::Log) -> String {
    of(pb::LogType::try_from(log.r#type).ok().map(|log_type| log_type.as_str_name()), "LOG_TYPE_")
}

pub fn stream_of(log: &pb::Log) -> String {
    of(pb::LogStream::try_from(log.stream).ok().map(|stream| stream.as_str_name()), "LOG_STREAM_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_name_has_its_wire_value_and_back() {
        for value in Level::ALL {
            let log = pb::Log { level: level(*value) as i32, ..Default::default() };
            assert_eq!(level_of(&log), value.as_str());
        }
        for value in LogType::ALL {
            let log = pb::Log { r#type: log_type(*value) as i32, ..Default::default() };
            assert_eq!(type_of(&log), value.as_str());
        }
        for value in Stream::ALL {
            let log = pb::Log { stream: stream(*value) as i32, ..Default::default() };
            assert_eq!(stream_of(&log), value.as_str());
        }
        assert_eq!(level_of(&pb::Log::default()), "");
        for value in Outcome::ALL {
            let wire = outcome(*value).as_str_name();
            assert_eq!(of(Some(wire), "JOB_RUN_OUTCOME_"), value.as_str());
        }
    }
}
