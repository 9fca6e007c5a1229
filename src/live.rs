//! The subscription hub: who follows which sequence, and wake-ups when a
//! sequence has new commits. A wake-up carries no logs, only "look again":
//! followers always read storage after their own cursor, so a slow follower
//! reads more next time instead of holding a buffer or losing lines, and a
//! burst of commits costs each follower one wake-up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use uuid::Uuid;

#[derive(Debug, Default)]
pub struct Hub {
    /// One channel per followed sequence; its value only counts wake-ups.
    sequences: Mutex<HashMap<Uuid, watch::Sender<u64>>>,
    followers: AtomicUsize,
}

/// A follower's registration. Dropping it unregisters the follower, and the
/// sequence's channel with its last follower.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Hub>,
    sequence: Uuid,
    receiver: Option<watch::Receiver<u64>>,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    fn sequences(&self) -> MutexGuard<'_, HashMap<Uuid, watch::Sender<u64>>> {
        // The map stays consistent whatever panicked while holding it.
        self.sequences.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a follower of `sequence`. Subscribe before reading storage:
    /// a commit after this point is then either read or signalled.
    pub fn subscribe(self: &Arc<Self>, sequence: Uuid) -> Subscription {
        let receiver = self.sequences().entry(sequence).or_insert_with(|| watch::channel(0).0).subscribe();
        self.followers.fetch_add(1, Ordering::Relaxed);
        Subscription { hub: self.clone(), sequence, receiver: Some(receiver) }
    }

    /// Wakes the followers of each sequence that has new commits.
    pub fn wake(&self, sequences: impl IntoIterator<Item = Uuid>) {
        let registered = self.sequences();
        for sequence in sequences {
            if let Some(sender) = registered.get(&sequence) {
                sender.send_modify(|wake_ups| *wake_ups = wake_ups.wrapping_add(1));
            }
        }
    }

    /// Wakes every follower: after wake-ups may have been lost (a replica's
    /// listening connection dropped), each re-reads from its cursor.
    pub fn wake_all(&self) {
        for sender in self.sequences().values() {
            sender.send_modify(|wake_ups| *wake_ups = wake_ups.wrapping_add(1));
        }
    }

    /// Followers registered now.
    pub fn followers(&self) -> usize {
        self.followers.load(Ordering::Relaxed)
    }

    /// Sequences with at least one follower now.
    pub fn followed_sequences(&self) -> usize {
        self.sequences().len()
    }
}

impl Subscription {
    /// Resolves at the next wake-up since the last call (at once if one
    /// came in between).
    pub async fn woken(&mut self) {
        if let Some(receiver) = &mut self.receiver
            && receiver.changed().await.is_err()
        {
            // The hub dropped the channel, which it never does while a
            // receiver exists; wait for nothing rather than spin.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let mut sequences = self.hub.sequences();
        if sequences.get(&self.sequence).is_some_and(|sender| sender.receiver_count() == 0) {
            sequences.remove(&self.sequence);
        }
        drop(sequences);
        self.hub.followers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_wake_up_between_subscribe_and_wait_is_not_lost() {
        let hub = Hub::new();
        let run = Uuid::now_v7();
        let mut subscription = hub.subscribe(run);
        hub.wake([run]);
        tokio::time::timeout(Duration::from_secs(1), subscription.woken()).await.expect("woken");
        let other = Uuid::now_v7();
        hub.wake([other]);
        assert!(tokio::time::timeout(Duration::from_millis(50), subscription.woken()).await.is_err());
        hub.wake_all();
        tokio::time::timeout(Duration::from_secs(1), subscription.woken()).await.expect("woken by wake_all");
    }

    #[tokio::test]
    async fn dropping_the_last_subscription_releases_its_sequence() {
        let hub = Hub::new();
        let run = Uuid::now_v7();
        let first = hub.subscribe(run);
        let second = hub.subscribe(run);
        assert_eq!((hub.followers(), hub.followed_sequences()), (2, 1));
        drop(first);
        assert_eq!((hub.followers(), hub.followed_sequences()), (1, 1));
        drop(second);
        assert_eq!((hub.followers(), hub.followed_sequences()), (0, 0));
    }
}
