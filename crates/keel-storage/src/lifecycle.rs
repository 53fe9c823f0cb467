//! The lifecycle of a store: Recovering → Ready ⇄ Compacting, and Failed after an
//! unrecoverable I/O error. Writes check it first; reads ignore it.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

use parking_lot::Mutex;

use crate::error::{Result, StorageError};

/// Where a store is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleState {
    /// Reading its files on open; not yet serving.
    Recovering,
    /// Serving reads and writes.
    Ready,
    /// Serving reads and writes while a merge/compaction runs.
    Compacting,
    /// An unrecoverable I/O error happened: writes are refused, reads are served.
    Failed,
}

impl LifecycleState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => LifecycleState::Recovering,
            1 => LifecycleState::Ready,
            2 => LifecycleState::Compacting,
            _ => LifecycleState::Failed,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            LifecycleState::Recovering => 0,
            LifecycleState::Ready => 1,
            LifecycleState::Compacting => 2,
            LifecycleState::Failed => 3,
        }
    }

    /// Lower-case name, as shown in INFO and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleState::Recovering => "recovering",
            LifecycleState::Ready => "ready",
            LifecycleState::Compacting => "compacting",
            LifecycleState::Failed => "failed",
        }
    }
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Shared, thread-safe lifecycle cell of one store.
#[derive(Debug)]
pub struct Lifecycle {
    state: AtomicU8,
    reason: Mutex<Option<String>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// A lifecycle in the Recovering state.
    pub fn new() -> Self {
        Lifecycle {
            state: AtomicU8::new(LifecycleState::Recovering.as_u8()),
            reason: Mutex::new(None),
        }
    }

    /// The current state.
    pub fn state(&self) -> LifecycleState {
        LifecycleState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Why the store failed, if it did.
    pub fn failure_reason(&self) -> Option<String> {
        self.reason.lock().clone()
    }

    /// Recovering → Ready (end of open).
    pub fn set_ready(&self) {
        let _ = self.state.compare_exchange(
            LifecycleState::Recovering.as_u8(),
            LifecycleState::Ready.as_u8(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Ready → Compacting; false if not Ready (already compacting, or failed).
    pub fn begin_compaction(&self) -> bool {
        self.state
            .compare_exchange(
                LifecycleState::Ready.as_u8(),
                LifecycleState::Compacting.as_u8(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Compacting → Ready (a failure that happened meanwhile stays).
    pub fn end_compaction(&self) {
        let _ = self.state.compare_exchange(
            LifecycleState::Compacting.as_u8(),
            LifecycleState::Ready.as_u8(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Moves to Failed for good, remembering the first reason.
    pub fn fail(&self, reason: impl Into<String>) {
        let mut r = self.reason.lock();
        if r.is_none() {
            let reason = reason.into();
            tracing::error!(%reason, "storage moved to Failed; writes are refused from now on");
            *r = Some(reason);
        }
        self.state
            .store(LifecycleState::Failed.as_u8(), Ordering::Release);
    }

    /// The write funnel's gate: an error when writes must be refused.
    pub fn check_writable(&self) -> Result<()> {
        match self.state() {
            LifecycleState::Ready | LifecycleState::Compacting => Ok(()),
            LifecycleState::Recovering => Err(StorageError::InvalidArgument(
                "storage is still recovering".into(),
            )),
            LifecycleState::Failed => Err(StorageError::Failed {
                reason: self
                    .failure_reason()
                    .unwrap_or_else(|| "unknown I/O error".into()),
            }),
        }
    }

    /// Passes `res` through, moving to Failed first if it carries a fatal I/O error.
    pub fn guard<T>(&self, res: Result<T>) -> Result<T> {
        if let Err(e) = &res {
            if e.is_fatal_io() {
                self.fail(e.to_string());
            }
        }
        res
    }
}
