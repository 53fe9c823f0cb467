//! The writes waiting for the funnel's next round: a deque behind a lock, with its
//! length beside it for the looks that only ask whether anything waits.
//!
//! Why not a channel: nobody ever blocks on this queue (the funnel's holder takes what
//! is there, and a thread that finds the funnel taken leaves its write to the holder),
//! so a channel's wake-up machinery is never used, and its costs are paid on every
//! write. crossbeam's unbounded channel took ~340 instructions per write of a SET at
//! -P 1 (callgrind: `send` 189, a third of it allocating and zeroing a block of 31
//! message slots once per 31 writes; `try_recv` 98; `is_empty` 55), where one write is
//! one message.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::Request;

/// Writes waiting for the funnel, oldest first.
#[derive(Default)]
pub(super) struct WriteQueue {
    items: Mutex<VecDeque<Request>>,
    /// `items.len()`, stored under the lock after every change. The funnel orders a
    /// push and its holder's look after unlocking with SeqCst fences (see
    /// `Funnel::run_queued`), which order this count's relaxed store and load as well.
    len: AtomicUsize,
}

impl WriteQueue {
    /// Queues `req` behind the writes already waiting; returns how many messages wait.
    pub fn push(&self, req: Request) -> usize {
        let mut items = self.items.lock();
        items.push_back(req);
        let n = items.len();
        self.len.store(n, Ordering::Relaxed);
        n
    }

    /// True when no write waits.
    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    /// Moves waiting messages to the back of `into`, oldest first, until they count
    /// `max` requests or more (a message of several writes counts each) or none is
    /// left; returns the requests moved.
    pub fn take_into(&self, into: &mut VecDeque<Request>, max: usize) -> usize {
        if self.is_empty() {
            return 0;
        }
        let mut items = self.items.lock();
        let mut taken = 0;
        while taken < max {
            let Some(req) = items.pop_front() else {
                break;
            };
            taken += req.weight();
            into.push_back(req);
        }
        self.len.store(items.len(), Ordering::Relaxed);
        taken
    }

    /// Drops every waiting write: their callers read the dropped reply channels as
    /// "shutting down".
    pub fn clear(&self) {
        let dropped = {
            let mut items = self.items.lock();
            self.len.store(0, Ordering::Relaxed);
            std::mem::take(&mut *items)
        };
        drop(dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_engine::Op;
    use tokio::sync::oneshot;

    fn write(key: &str) -> (Request, oneshot::Receiver<super::super::WriteResult>) {
        let (tx, rx) = oneshot::channel();
        let op = Op::Command {
            db: 0,
            args: vec![
                bytes::Bytes::from_static(b"DEL"),
                bytes::Bytes::copy_from_slice(key.as_bytes()),
            ],
        };
        let req = Request::Write {
            op,
            denyoom: false,
            spec: None,
            reply: Some(tx),
            origin: 0,
        };
        (req, rx)
    }

    fn key_of(req: &Request) -> Vec<u8> {
        match req {
            Request::Write {
                op: Op::Command { args, .. },
                ..
            } => args[1].to_vec(),
            _ => panic!("not a test write"),
        }
    }

    #[test]
    fn takes_in_order_up_to_the_bound_and_counts_what_is_left() {
        let q = WriteQueue::default();
        assert!(q.is_empty());
        let mut receivers = Vec::new();
        for i in 0..5 {
            let (req, rx) = write(&format!("k{i}"));
            q.push(req);
            receivers.push(rx);
        }
        assert!(!q.is_empty());
        let mut inbox = VecDeque::new();
        assert_eq!(q.take_into(&mut inbox, 3), 3);
        assert!(!q.is_empty(), "two are left");
        assert_eq!(q.take_into(&mut inbox, 3), 2);
        assert!(q.is_empty());
        assert_eq!(q.take_into(&mut inbox, 3), 0);
        let keys: Vec<Vec<u8>> = inbox.iter().map(key_of).collect();
        let want: Vec<Vec<u8>> = (0..5).map(|i| format!("k{i}").into_bytes()).collect();
        assert_eq!(keys, want);
    }

    #[test]
    fn clear_drops_the_reply_channels() {
        let q = WriteQueue::default();
        let (req, mut rx) = write("k");
        q.push(req);
        q.clear();
        assert!(q.is_empty());
        assert!(
            matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed)),
            "a cleared write's caller hears that it will get no reply"
        );
    }
}
