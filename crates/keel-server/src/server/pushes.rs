//! The connection's receiving end of pub/sub pushes, polled in every `select!` of the
//! connection loop behind a [`Gate`]: a client that gets no pushes pays one atomic load
//! per wake-up instead of a channel poll and a waker registration.

use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::gate::Gate;

/// Frames other connections queued for this one.
pub struct Pushes {
    rx: Option<mpsc::Receiver<Bytes>>,
    gate: Gate,
}

impl Pushes {
    /// Wraps the queue's receiver (None: this connection never gets pushes).
    pub fn new(rx: Option<mpsc::Receiver<Bytes>>) -> Self {
        Pushes {
            rx,
            gate: Gate::default(),
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Pending;
        };
        let polled = self.gate.poll(cx, |icx| rx.poll_recv(icx));
        if let Poll::Ready(Some(_)) = polled {
            // More may be queued behind it without a new wake-up.
            self.gate.rearm();
        }
        polled
    }

    /// The next frame; pending forever without a queue, None once it is closed.
    pub async fn next(&mut self) -> Option<Bytes> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Appends `first` and whatever else is queued, up to one write's worth, to `out`;
    /// returns the bytes appended.
    pub fn drain_into(&mut self, first: Bytes, out: &mut BytesMut) -> u64 {
        super::pubsub::drain_pushes(first, &mut self.rx, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn delivers_frames_sent_while_pending_and_after_items() {
        // In a spawned task, as connections run: its waker stays the same across polls,
        // so the gate really skips polls (the test body's waker may not).
        tokio::spawn(frames_scenario())
            .await
            .expect("scenario task");
    }

    async fn frames_scenario() {
        let (tx, rx) = mpsc::channel(8);
        let mut p = Pushes::new(Some(rx));
        // Polled while empty (as every request does).
        for _ in 0..3 {
            let r = tokio::time::timeout(Duration::from_millis(10), p.next()).await;
            assert!(r.is_err(), "nothing queued yet");
        }
        // Two frames queued at once: the channel wakes the gate's waker once.
        tx.try_send(Bytes::from_static(b"a")).expect("send a");
        tx.try_send(Bytes::from_static(b"b")).expect("send b");
        let first = tokio::time::timeout(Duration::from_secs(5), p.next())
            .await
            .expect("woken by the send");
        assert_eq!(first.as_deref(), Some(&b"a"[..]));
        // Already queued: must come without a further wake-up.
        let second = tokio::time::timeout(Duration::from_secs(1), p.next())
            .await
            .expect("second frame without a new wake-up");
        assert_eq!(second.as_deref(), Some(&b"b"[..]));
        let r = tokio::time::timeout(Duration::from_millis(10), p.next()).await;
        assert!(r.is_err(), "nothing more queued");
        // A frame sent while the gate is closed still wakes it.
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            tx.send(Bytes::from_static(b"c")).await.expect("send c");
            tx
        });
        let third = tokio::time::timeout(Duration::from_secs(5), p.next())
            .await
            .expect("woken by the later send");
        assert_eq!(third.as_deref(), Some(&b"c"[..]));
        drop(sender.await.expect("sender task"));
        let closed = tokio::time::timeout(Duration::from_secs(5), p.next())
            .await
            .expect("closed channel resolves");
        assert_eq!(closed, None);
    }
}
