//! How a follower's events reach its entry point: in batches (a pass's
//! logs at once), so that delivering a log costs a share of one channel
//! operation rather than one each, and read one by one as a stream.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::sync::mpsc;
use tokio_stream::Stream;

use super::follower::FollowError;

/// Batches waiting for a slow client, per follower, besides the one it is
/// sending and the one its follower is making: a follower holds a few read
/// batches at most, whatever its lag.
const WAITING_BATCHES: usize = 1;

/// What passes between a follower and its client: events, or the error
/// that ends the follow (boxed: the channel's slots stay small).
type Batch<E> = Result<Vec<E>, Box<FollowError>>;

/// A follower's side: sends batches of events.
pub(super) struct EventSender<E>(mpsc::Sender<Batch<E>>);

/// The events of one follow, in order; an error, if any, is the last.
pub struct EventStream<E> {
    batches: mpsc::Receiver<Batch<E>>,
    batch: std::vec::IntoIter<E>,
}

/// A new follower's two ends.
pub(super) fn channel<E>() -> (EventSender<E>, EventStream<E>) {
    let (sender, batches) = mpsc::channel(WAITING_BATCHES);
    (EventSender(sender), EventStream { batches, batch: Vec::new().into_iter() })
}

impl<E> EventSender<E> {
    /// Sends `events` (none: nothing is sent), waiting while the client is
    /// behind; false once the client has gone.
    pub(super) async fn send(&self, events: Vec<E>) -> bool {
        events.is_empty() || self.0.send(Ok(events)).await.is_ok()
    }

    /// A place for the next batch, once the client has taken the one
    /// before; None once the client has gone.
    pub(super) async fn reserve(&self) -> Option<Slot<'_, E>> {
        self.0.reserve().await.ok().map(Slot)
    }

    /// Sends the error that ends the follow.
    pub(super) async fn fail(&self, error: FollowError) {
        let _ = self.0.send(Err(Box::new(error))).await;
    }

    /// Resolves once the client has gone.
    pub(super) async fn closed(&self) {
        self.0.closed().await;
    }
}

/// A place reserved for one batch.
pub(super) struct Slot<'a, E>(mpsc::Permit<'a, Batch<E>>);

impl<E> Slot<'_, E> {
    /// Sends `events`, if any (none: the place is given back); whether
    /// anything was sent.
    pub(super) fn send(self, events: Vec<E>) -> bool {
        let sent = !events.is_empty();
        if sent {
            self.0.send(Ok(events));
        }
        sent
    }
}

// Nothing in it is pinned: the events are moved out, never polled.
impl<E> Unpin for EventStream<E> {}

impl<E> Stream for EventStream<E> {
    type Item = Result<E, FollowError>;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(event) = this.batch.next() {
                return Poll::Ready(Some(Ok(event)));
            }
            match ready!(this.batches.poll_recv(context)) {
                Some(Ok(batch)) => this.batch = batch.into_iter(),
                Some(Err(error)) => return Poll::Ready(Some(Err(*error))),
                None => return Poll::Ready(None),
            }
        }
    }
}
