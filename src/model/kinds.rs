use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A name that is not one of an enumeration's canonical names (for example a
/// `level` column holding something the schema should have refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

/// Defines a closed enumeration with its canonical lower-case names, which are
/// also what the database stores and its CHECK constraints allow.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, lowest first.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical name, as stored.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(name: &str) -> Result<Self, UnknownName> {
                match name {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName { kind: $kind, name: name.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// Which kind of emitter a log belongs to.
    LogType, "log type", { System => "system", Job => "job", Task => "task" }
);

named_enum!(
    /// Severity, lowest to highest (the OpenTelemetry severity ranges).
    Level, "level", {
        Trace => "trace", Debug => "debug", Info => "info",
        Warn => "warn", Error => "error", Fatal => "fatal",
    }
);

named_enum!(
    /// The output stream a line came from.
    Stream, "stream", { Stdout => "stdout", Stderr => "stderr", System => "system" }
);

named_enum!(
    /// How a job run ended.
    Outcome, "outcome", { Succeeded => "succeeded", Failed => "failed", Cancelled => "cancelled" }
);

impl Level {
    /// This level and every level above it.
    pub fn and_above(self) -> &'static [Level] {
        &Level::ALL[self as usize..]
    }
}

/// Whom a log belongs to. Each type carries exactly the ids it must carry, so
/// a system log with a job run, or a task log without a task run, cannot be
/// represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    System,
    Job { job_run_id: Uuid },
    Task { job_run_id: Uuid, task_run_id: Uuid },
}

impl Owner {
    pub fn log_type(self) -> LogType {
        match self {
            Owner::System => LogType::System,
            Owner::Job { .. } => LogType::Job,
            Owner::Task { .. } => LogType::Task,
        }
    }

    pub fn job_run_id(self) -> Option<Uuid> {
        match self {
            Owner::System => None,
            Owner::Job { job_run_id } | Owner::Task { job_run_id, .. } => Some(job_run_id),
        }
    }

    pub fn task_run_id(self) -> Option<Uuid> {
        match self {
            Owner::Task { task_run_id, .. } => Some(task_run_id),
            Owner::System | Owner::Job { .. } => None,
        }
    }

    /// The streams a log of this owner may be written to.
    pub fn allows_stream(self, stream: Stream) -> bool {
        !matches!(self, Owner::System) || stream == Stream::System
    }

    /// The stream a log goes to when its emitter names none.
    pub fn default_stream(self) -> Stream {
        match self {
            Owner::System => Stream::System,
            Owner::Job { .. } | Owner::Task { .. } => Stream::Stdout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_for_every_value() {
        for level in Level::ALL {
            assert_eq!(level.as_str().parse::<Level>(), Ok(*level));
        }
        for stream in Stream::ALL {
            assert_eq!(stream.as_str().parse::<Stream>(), Ok(*stream));
        }
        for log_type in LogType::ALL {
            assert_eq!(log_type.as_str().parse::<LogType>(), Ok(*log_type));
        }
        assert_eq!("warning".parse::<Level>(), Err(UnknownName { kind: "level", name: "warning".into() }));
    }

    #[test]
    fn and_above_starts_at_the_level() {
        assert_eq!(Level::Warn.and_above(), &[Level::Warn, Level::Error, Level::Fatal]);
        assert_eq!(Level::Trace.and_above().len(), 6);
        assert_eq!(Level::Fatal.and_above(), &[Level::Fatal]);
    }

    #[test]
    fn only_system_logs_are_confined_to_the_system_stream() {
        let job = Owner::Job { job_run_id: Uuid::now_v7() };
        assert!(job.allows_stream(Stream::Stderr));
        assert!(Owner::System.allows_stream(Stream::System));
        assert!(!Owner::System.allows_stream(Stream::Stdout));
    }
}
