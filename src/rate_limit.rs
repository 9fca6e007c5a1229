//! Per-caller write rates: a token bucket of logs for each principal (each
//! configured token, each job-run token, or everyone when authentication is
//! off), so that one noisy job cannot take the whole server's write capacity.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Buckets kept before idle (full) ones are forgotten.
const PRUNE_ABOVE: usize = 10_000;

/// Logs per second per caller, with bursts.
#[derive(Debug)]
pub struct RateLimiter {
    /// Logs added to each bucket per second.
    pub logs_per_second: u32,
    /// A bucket's size: the most a caller may write at once after a pause.
    pub burst_logs: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    logs: f64,
    refilled: Instant,
}

impl RateLimiter {
    pub fn new(logs_per_second: u32, burst_logs: u32) -> RateLimiter {
        RateLimiter { logs_per_second, burst_logs, buckets: Mutex::default() }
    }

    /// Takes `logs` from `caller`'s bucket; if it holds too few, takes
    /// nothing and answers how long until it will hold enough.
    pub fn take(&self, caller: &str, logs: usize, now: Instant) -> Result<(), Duration> {
        let (rate, burst) = (f64::from(self.logs_per_second), f64::from(self.burst_logs));
        let wanted = logs as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, bucket| bucket.logs + now.duration_since(bucket.refilled).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(caller.to_string()).or_insert(Bucket { logs: burst, refilled: now });
        bucket.logs = (bucket.logs + now.saturating_duration_since(bucket.refilled).as_secs_f64() * rate).min(burst);
        bucket.refilled = now;
        if bucket.logs >= wanted {
            bucket.logs -= wanted;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((wanted - bucket.logs) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = RateLimiter::new(10, 20);
        let start = Instant::now();
        assert_eq!(limiter.take("a", 20, start), Ok(()));
        assert_eq!(limiter.take("a", 1, start), Err(Duration::from_millis(100)));
        assert_eq!(limiter.take("b", 20, start), Ok(()), "callers have buckets of their own");
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.take("a", 5, later), Ok(()));
        assert_eq!(limiter.take("a", 1, later), Err(Duration::from_millis(100)));
        let much_later = start + Duration::from_secs(60);
        assert_eq!(limiter.take("a", 20, much_later), Ok(()), "a bucket holds its burst at most");
        assert!(limiter.take("a", 1, much_later).is_err());
    }
}
