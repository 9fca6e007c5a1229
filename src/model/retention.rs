//! How long logs are kept: an age limit per log type, measured on when
//! logwell received them.

use chrono::{DateTime, TimeDelta, Utc};

use super::kinds::LogType;

/// The shortest retention accepted: shorter, a slow client's resend or a
/// follower a few minutes behind would find its logs gone.
pub const MIN_RETENTION: TimeDelta = TimeDelta::hours(1);

/// Each log type's age limit; `None` keeps that type forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub system: Option<TimeDelta>,
    pub job: Option<TimeDelta>,
    pub task: Option<TimeDelta>,
}

impl RetentionPolicy {
    /// Whether every type is kept forever.
    pub fn keeps_everything(&self) -> bool {
        self.limits().next().is_none()
    }

    /// Each limited type, and the received time before which its logs go
    /// at `now`.
    pub fn cutoffs(&self, now: DateTime<Utc>) -> Vec<(LogType, DateTime<Utc>)> {
        self.limits().map(|(log_type, limit)| (log_type, now - limit)).collect()
    }

    /// When every type is limited: the received time before which every
    /// log has gone at `now`.
    pub fn all_gone_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let limits: Vec<TimeDelta> = self.limits().map(|(_, limit)| limit).collect();
        let longest = limits.iter().max().filter(|_| limits.len() == 3)?;
        Some(now - *longest)
    }

    /// `log_type`'s age limit, if it has one.
    pub fn limit(&self, log_type: LogType) -> Option<TimeDelta> {
        match log_type {
            LogType::System => self.system,
            LogType::Job => self.job,
            LogType::Task => self.task,
        }
    }

    fn limits(&self) -> impl Iterator<Item = (LogType, TimeDelta)> {
        [(LogType::System, self.system), (LogType::Job, self.job), (LogType::Task, self.task)]
            .into_iter()
            .filter_map(|(log_type, limit)| limit.map(|limit| (log_type, limit)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limited_type_has_its_cutoff() {
        let now = Utc::now();
        let policy = RetentionPolicy { system: Some(TimeDelta::hours(48)), task: Some(TimeDelta::days(30)), job: None };
        assert_eq!(
            policy.cutoffs(now),
            [(LogType::System, now - TimeDelta::hours(48)), (LogType::Task, now - TimeDelta::days(30))]
        );
        assert!(!policy.keeps_everything());
        assert!(RetentionPolicy::default().keeps_everything());
        assert_eq!(policy.all_gone_before(now), None, "job logs are kept forever");
        let all = RetentionPolicy { job: Some(TimeDelta::days(7)), ..policy };
        assert_eq!(all.all_gone_before(now), Some(now - TimeDelta::days(30)), "the longest limit");
    }
}
