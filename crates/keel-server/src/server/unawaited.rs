//! A connection's last writes of an input, answered by the funnel round that applies
//! them instead of by the connection, as Redis answers every command within one pass
//! of its event loop.
//!
//! Why: a connection that waited for its writes' results was polled twice per write
//! (once to read and queue it, once more to encode the reply), and each write carried
//! a reply channel. The writes that end an input (every write at pipeline 1, and the
//! last batch of a pipeline) have nothing behind them that must wait, so the connection
//! queues them with its [`UnawaitedReplies`] and goes back to reading; its thread runs
//! the funnel when its pass ends, the round encodes the replies into the connection's
//! outbox, and the pass writes them with the rest. The next input, or the connection's
//! end, waits until they have landed ([`UnawaitedReplies::landed`]), so replies keep
//! request order and a read sees its own connection's writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};

use parking_lot::Mutex;

use super::outbox::Outbox;
use super::Shared;
use crate::coordinator::{shutting_down, ResultSink, Results, WriteResult};
use crate::resp::{encode, Protocol};
use keel_engine::Reply;

/// Where one connection's unawaited writes are answered.
pub struct UnawaitedReplies {
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    /// Writes were handed over and their replies have not landed in the outbox yet.
    in_flight: AtomicBool,
    state: Mutex<State>,
}

/// What the replies of the writes in flight need.
struct State {
    /// The command of each write in flight (commandstats' failed calls).
    names: Vec<&'static str>,
    /// The client's protocol when it sent them.
    protocol: Protocol,
    /// The connection's task, waiting in [`UnawaitedReplies::landed`].
    waiter: Option<Waker>,
}

impl UnawaitedReplies {
    /// The replies of the connection writing through `outbox`.
    pub fn new(shared: &Arc<Shared>, outbox: &Arc<Outbox>) -> Arc<UnawaitedReplies> {
        Arc::new(UnawaitedReplies {
            shared: Arc::clone(shared),
            outbox: Arc::clone(outbox),
            in_flight: AtomicBool::new(false),
            state: Mutex::new(State {
                names: Vec::new(),
                protocol: Protocol::Resp2,
                waiter: None,
            }),
        })
    }

    /// Marks writes named `names` as in flight, answered in `protocol`; `names` takes
    /// back the previous list's allocation.
    pub fn hand_over(&self, names: &mut Vec<&'static str>, protocol: Protocol) {
        let mut st = self.state.lock();
        std::mem::swap(&mut st.names, names);
        names.clear();
        st.protocol = protocol;
        self.in_flight.store(true, Ordering::Release);
    }

    /// True while handed-over writes have not been answered.
    pub fn in_flight(&self) -> bool {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Resolves once the writes in flight are answered (at once when none are).
    pub async fn landed(&self) {
        std::future::poll_fn(|cx| {
            if !self.in_flight() {
                return Poll::Ready(());
            }
            let mut st = self.state.lock();
            if !st.waiter.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.waiter = Some(cx.waker().clone());
            }
            // Checked again under the lock `answer` clears it under.
            if self.in_flight() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }

    /// Encodes `results` into the outbox, counts their errors, and wakes a waiter.
    fn answer(&self, results: impl Iterator<Item = WriteResult>) {
        let waiter = {
            let mut st = self.state.lock();
            let State {
                names, protocol, ..
            } = &*st;
            let stats = &self.shared.cmd_stats;
            let n = self.outbox.append(|buf| {
                for (i, result) in results.enumerate() {
                    let reply = match result {
                        Ok(replies) => replies.into_iter().next().unwrap_or(Reply::Nil),
                        Err(r) => r,
                    };
                    if let Reply::Error(e) = &reply {
                        stats.record_error(e);
                        if let Some(n) = names.get(i) {
                            stats.record_failed(n);
                        }
                    }
                    encode(&reply, *protocol, buf);
                }
            });
            self.shared.stats.net_output_bytes.add(n as u64);
            self.in_flight.store(false, Ordering::Release);
            st.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
    }
}

impl ResultSink for UnawaitedReplies {
    fn deliver(&self, results: Results) {
        self.answer(results.into_iter());
    }

    fn lost(&self) {
        let n = self.state.lock().names.len();
        self.answer((0..n).map(|_| Err(shutting_down())));
    }
}
