//! Deliveries paced so that a crowd of followers slows itself, never the
//! writers.
//!
//! Ten thousand followers of a busy run ask for more deliveries than the
//! machine can make; every delivery is work queued on the runtime, and a
//! writer's acknowledgement, a few tasks' work, waits behind all of it.
//! The pacer hands out deliveries tick by tick, and measures how late its
//! own tick wakes: a late tick means the runtime's queue is long, so fewer
//! deliveries go out in the next; a punctual one, more. Followers then lag
//! (their shared tail holds what they have not sent yet) instead of the
//! writers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often deliveries are handed out, and the runtime's lag measured.
const TICK: Duration = Duration::from_millis(5);
/// A tick this late means the queue makes everyone wait: fewer deliveries.
const LAG_TOO_LONG: Duration = Duration::from_millis(3);
/// A tick this punctual means there is room: more deliveries.
const LAG_SHORT: Duration = Duration::from_millis(1);
/// Deliveries per tick, at least (100,000 a second: followers are never
/// stopped) and at most (no pacing on any machine this serves).
const LEAST_PER_TICK: usize = 500;
const MOST_PER_TICK: usize = 100_000;
/// Deliveries per tick at start (400,000 a second).
const FIRST_PER_TICK: usize = 2_000;

/// The deliveries followers may make now, as semaphore permits followers
/// take before sending and the pacer adds.
#[derive(Debug, Clone)]
pub(super) struct Pacer(Arc<Semaphore>);

impl Pacer {
    pub(super) fn new() -> Pacer {
        Pacer(Arc::new(Semaphore::new(FIRST_PER_TICK)))
    }

    /// Waits until `count` deliveries may go out, and takes them (none:
    /// at once).
    pub(super) async fn take(&self, count: usize) {
        if count == 0 {
            return;
        }
        let count = u32::try_from(count.min(LEAST_PER_TICK)).unwrap_or(1);
        // The semaphore is never closed.
        if let Ok(deliveries) = self.0.acquire_many(count).await {
            deliveries.forget();
        }
    }

    /// Hands out deliveries every tick until `stopping`.
    pub(super) async fn run(self, stopping: CancellationToken) {
        tokio::select! {
            () = self.pace() => {}
            () = stopping.cancelled() => {}
        }
    }

    async fn pace(&self) {
        let mut per_tick = FIRST_PER_TICK;
        loop {
            let due = Instant::now() + TICK;
            tokio::time::sleep_until(due).await;
            per_tick = next_per_tick(per_tick, Instant::now().saturating_duration_since(due));
            // Unused deliveries do not pile up: at most one tick's worth.
            let available = self.0.available_permits();
            if available < per_tick {
                self.0.add_permits(per_tick - available);
            }
        }
    }
}

/// Deliveries for the next tick, after one that woke `lag` late.
fn next_per_tick(per_tick: usize, lag: Duration) -> usize {
    if lag > LAG_TOO_LONG {
        // By how late: a tick 100 ms late found a queue 21 ticks long,
        // and the next gets a 21st of the deliveries.
        let ticks_waited = (TICK + lag).as_secs_f64() / TICK.as_secs_f64();
        ((per_tick as f64 / ticks_waited) as usize).max(LEAST_PER_TICK)
    } else if lag <= LAG_SHORT {
        (per_tick + per_tick / 8).min(MOST_PER_TICK)
    } else {
        per_tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_ticks_cut_deliveries_and_punctual_ones_restore_them() {
        assert_eq!(next_per_tick(21_000, Duration::from_millis(100)), 1_000, "in proportion to the lag");
        assert_eq!(next_per_tick(4_000, Duration::from_millis(5)), 2_000);
        let mut per_tick = FIRST_PER_TICK;
        for _ in 0..100 {
            per_tick = next_per_tick(per_tick, Duration::from_millis(20));
        }
        assert_eq!(per_tick, LEAST_PER_TICK, "never below the floor");
        assert_eq!(next_per_tick(per_tick, Duration::from_millis(2)), per_tick, "between the bounds: held");
        for _ in 0..100 {
            per_tick = next_per_tick(per_tick, Duration::ZERO);
        }
        assert_eq!(per_tick, MOST_PER_TICK, "never above the ceiling");
    }
}
