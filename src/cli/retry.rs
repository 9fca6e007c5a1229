//! When and how soon a client command tries a call again: after failures of
//! the connection or of the server's availability, never after a refusal,
//! waiting longer after each failure in a row.

use std::time::Duration;

use tonic_types::StatusExt;

/// The first wait, doubled after each failure in a row up to `MAX`.
const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(5);

/// The wait before the next attempt.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: FIRST }
    }
}

impl Backoff {
    /// How long to wait before trying again after `status`: the server's
    /// own `RetryInfo` if it sent one, else the next step of the backoff.
    pub fn after(&mut self, status: &tonic::Status) -> Duration {
        let wait = status.get_details_retry_info().and_then(|info| info.retry_delay).unwrap_or(self.next);
        self.next = (self.next * 2).min(MAX);
        wait
    }

    /// A call got through: the next failure waits the shortest time again.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }
}

/// Failures of the connection or the server's availability, and a full
/// write queue or rate limit: not refusals of the request itself.
pub fn retryable(status: &tonic::Status) -> bool {
    use tonic::Code;
    match status.code() {
        Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled | Code::Aborted => true,
        Code::DeadlineExceeded => true,
        // Backpressure; a request over --max-request-bytes is refused for good.
        Code::ResourceExhausted => !status.message().contains("--max-request-bytes"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn waits_double_up_to_the_bound_and_honour_retry_info() {
        let mut backoff = Backoff::default();
        let unavailable = tonic::Status::unavailable("down");
        let waits: Vec<Duration> = (0..8).map(|_| backoff.after(&unavailable)).collect();
        assert_eq!(waits[0], FIRST);
        assert_eq!(waits[1], FIRST * 2);
        assert_eq!(waits[7], MAX);
        backoff.reset();
        assert_eq!(backoff.after(&unavailable), FIRST);
        let details = ErrorDetails::with_retry_info(Some(Duration::from_millis(750)));
        let limited = tonic::Status::with_error_details(tonic::Code::ResourceExhausted, "rate limited", details);
        assert_eq!(backoff.after(&limited), Duration::from_millis(750));
        assert!(retryable(&limited));
        assert!(!retryable(&tonic::Status::resource_exhausted("the request is 5 bytes; --max-request-bytes allows 4")));
        assert!(!retryable(&tonic::Status::invalid_argument("bad")));
        assert!(!retryable(&tonic::Status::permission_denied("no")));
    }
}
