//! CLIENT PAUSE / UNPAUSE: while a pause is in force, commands it covers (all of them,
//! or only writes) wait in the dispatcher until it ends or is lifted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The server-wide pause.
#[derive(Debug, Default)]
pub struct Pause {
    /// (until, writes only).
    state: Mutex<Option<(Instant, bool)>>,
    lifted: Notify,
    /// Set while a pause may be in force: every command checks it, so the common case
    /// (no pause) costs one load instead of a lock, a clock read and a waiter.
    armed: AtomicBool,
}

impl Pause {
    /// Pauses for `d`; a pause already in force is extended, never shortened, and
    /// ALL wins over WRITE (Redis's rules).
    pub fn pause(&self, d: Duration, write_only: bool) {
        let until = Instant::now() + d;
        let mut g = self.state.lock();
        self.armed.store(true, Ordering::Release);
        *g = Some(match *g {
            Some((u, w)) if u > Instant::now() => (u.max(until), w && write_only),
            _ => (until, write_only),
        });
    }

    /// CLIENT UNPAUSE.
    pub fn unpause(&self) {
        *self.state.lock() = None;
        self.armed.store(false, Ordering::Release);
        self.lifted.notify_waiters();
    }

    /// The end of the pause that covers a command (`is_write` says whether it writes).
    fn covering(&self, is_write: bool) -> Option<Instant> {
        let g = self.state.lock();
        match *g {
            Some((until, write_only)) if until > Instant::now() && (is_write || !write_only) => {
                Some(until)
            }
            _ => None,
        }
    }

    /// True while a pause may be in force (cheap: one atomic load).
    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// Waits while a pause covers the command; returns at once when none does.
    pub async fn wait(&self, is_write: bool) {
        if !self.armed.load(Ordering::Acquire) {
            return;
        }
        loop {
            // Registered before the check so an UNPAUSE in between is not missed.
            let lifted = self.lifted.notified();
            tokio::pin!(lifted);
            lifted.as_mut().enable();
            let Some(until) = self.covering(is_write) else {
                return;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = lifted => {}
            }
        }
    }
}
