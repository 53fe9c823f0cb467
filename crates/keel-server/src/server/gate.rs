//! Polling a long-lived inner future only when it has signalled.
//!
//! A connection's `select!` polls every branch each time its task wakes, i.e. on every
//! request. Futures that almost never fire (shutdown, CLIENT KILL, pub/sub pushes) cost
//! a tenth of a pipelined GET's instructions when polled for real each time, mostly in
//! registering the task's waker again. A [`Gate`] hands the inner future a waker of its
//! own instead, and polls it again only when that waker fired or the task's waker
//! changed; otherwise a poll is one atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;

/// Set by the inner future's wake-ups; forwards them to the connection's task.
#[derive(Default)]
struct Signal {
    fired: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        if let Some(w) = self.task.lock().as_ref() {
            w.wake_by_ref();
        }
    }
}

/// Decides when an inner future is worth polling; see the module comment.
pub struct Gate {
    signal: Arc<Signal>,
    inner_waker: Waker,
    /// The task waker last handed to `signal`, to notice a change cheaply.
    last: Option<Waker>,
}

impl Default for Gate {
    fn default() -> Self {
        let signal = Arc::new(Signal::default());
        Gate {
            inner_waker: Waker::from(Arc::clone(&signal)),
            signal,
            last: None,
        }
    }
}

impl Gate {
    /// Runs `poll_inner` with the gate's own waker if the inner future signalled since
    /// its last poll (or this is a new task waker); else Pending without polling it.
    pub fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll_inner: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        let same_task = self.last.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if !same_task {
            *self.signal.task.lock() = Some(cx.waker().clone());
            self.last = Some(cx.waker().clone());
        } else if !self.signal.fired.load(Ordering::Acquire) {
            // Nothing happened since the inner future last registered our waker.
            return Poll::Pending;
        }
        // Cleared before polling, so a wake-up during the poll is seen next time.
        self.signal.fired.store(false, Ordering::Release);
        let mut inner_cx = Context::from_waker(&self.inner_waker);
        poll_inner(&mut inner_cx)
    }

    /// Makes the next [`Gate::poll`] poll the inner future even without a wake-up (after
    /// it yielded an item and may have more ready).
    pub fn rearm(&self) {
        self.signal.fired.store(true, Ordering::Release);
    }
}
