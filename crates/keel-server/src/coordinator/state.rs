//! The node's lifecycle and persistence figures, shared between the apply thread (which
//! changes them) and the front-end (INFO, LASTSAVE, the MISCONF refusal).

use crate::clock::unix_now;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

/// Where the node is in its life (DESIGN.md: Recovering → Ready ⇄ Snapshotting, Failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Replaying the WAL; not serving yet.
    Recovering,
    /// Serving reads and writes.
    Ready,
    /// Serving, with a snapshot being written in the background.
    Snapshotting,
    /// An I/O error stopped writes; reads are still served.
    Failed,
}

impl Lifecycle {
    /// Lower-case name for INFO.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Recovering => "recovering",
            Lifecycle::Ready => "ready",
            Lifecycle::Snapshotting => "snapshotting",
            Lifecycle::Failed => "failed",
        }
    }
}

/// Shared node state.
#[derive(Debug)]
pub struct NodeState {
    inner: Mutex<(Lifecycle, Option<String>)>,
    /// Mirrors `inner`'s Failed, so that the funnel's check before every write is one
    /// plain load, not a lock (whose atomics are barriers between writes' cache misses).
    failed: AtomicBool,
    /// Unix seconds of the last successful snapshot (start time if none yet).
    pub last_save_unix: AtomicU64,
    /// Whether the last snapshot attempt succeeded.
    pub last_save_ok: AtomicBool,
    /// A snapshot is being written.
    pub snapshot_in_progress: AtomicBool,
    /// Log index of the last applied entry.
    pub applied_index: AtomicU64,
    /// Entries that changed a key since the last snapshot (INFO
    /// rdb_changes_since_last_save).
    pub changes_since_save: AtomicU64,
    /// Entries replayed from the WAL at start.
    pub recovered_entries: AtomicU64,
    /// Keys deleted by active or lazy expiry.
    pub expired_keys: AtomicU64,
    /// Keys deleted by eviction.
    pub evicted_keys: AtomicU64,
    /// Snapshots written since start.
    pub snapshots: AtomicU64,
    /// Bytes the last snapshot wrote (the memory engine's checkpoint; 0 for the engines
    /// whose snapshot is a sync): the WAL-size trigger scales with it (INFO
    /// keel_snapshot_base_bytes).
    pub snapshot_base_bytes: AtomicU64,
    /// Write-funnel rounds that took writes: one WAL commit each (INFO
    /// keel_funnel_rounds). Written only by the funnel's holder.
    pub funnel_rounds: AtomicU64,
    /// Storage batches the rounds wrote: a round writes its group when it holds
    /// `Group::MAX_KEYS` keys, before a command that finds members by position, and at
    /// its end (INFO keel_funnel_batches). Written only by the funnel's holder.
    pub funnel_batches: AtomicU64,
    /// Writes those rounds took, each write of a connection's batch counted (INFO
    /// keel_funnel_writes; over keel_funnel_rounds, the writes one round served).
    pub funnel_writes: AtomicU64,
    /// The active expiry cycle runs (DEBUG SET-ACTIVE-EXPIRE).
    pub active_expire: AtomicBool,
    /// Receives the keyspace events of every applied entry (keyspace notifications).
    pub event_hook: EventHook,
    /// Called after every storage write of applied entries (client-side caching
    /// sends its invalidations once the writes can be read).
    pub visible_hook: VisibleHook,
}

/// A callback the apply thread runs, set once the front-end is up (the first `set`
/// wins): keyspace events ([`EventHook`]) and storage writes ([`VisibleHook`]).
pub struct Callback<F: ?Sized>(std::sync::OnceLock<Box<F>>);

impl<F: ?Sized> Default for Callback<F> {
    fn default() -> Self {
        Callback(std::sync::OnceLock::new())
    }
}

impl<F: ?Sized> Callback<F> {
    /// Installs `f` (the first call wins).
    pub fn set(&self, f: Box<F>) {
        let _ = self.0.set(f);
    }

    /// The callback, once set.
    pub fn get(&self) -> Option<&F> {
        self.0.get().map(|f| &**f)
    }
}

impl<F: ?Sized> std::fmt::Debug for Callback<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Callback(set)"
        } else {
            "Callback(unset)"
        })
    }
}

/// Receives the keyspace events of applied entries once they are in storage.
pub type EventHook = Callback<dyn Fn(&[keel_engine::exec::KeyEvent]) + Send + Sync>;

/// Runs after every storage write of applied entries.
pub type VisibleHook = Callback<dyn Fn() + Send + Sync>;

impl Default for NodeState {
    fn default() -> Self {
        NodeState::new()
    }
}

impl NodeState {
    /// A node that is recovering.
    pub fn new() -> Self {
        NodeState {
            inner: Mutex::new((Lifecycle::Recovering, None)),
            failed: AtomicBool::new(false),
            last_save_unix: AtomicU64::new(unix_now()),
            last_save_ok: AtomicBool::new(true),
            snapshot_in_progress: AtomicBool::new(false),
            applied_index: AtomicU64::new(0),
            changes_since_save: AtomicU64::new(0),
            recovered_entries: AtomicU64::new(0),
            expired_keys: AtomicU64::new(0),
            evicted_keys: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            snapshot_base_bytes: AtomicU64::new(0),
            funnel_rounds: AtomicU64::new(0),
            funnel_batches: AtomicU64::new(0),
            funnel_writes: AtomicU64::new(0),
            active_expire: AtomicBool::new(true),
            event_hook: EventHook::default(),
            visible_hook: VisibleHook::default(),
        }
    }

    /// The state now.
    pub fn lifecycle(&self) -> Lifecycle {
        self.inner.lock().0
    }

    /// Why the node failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.inner.lock().1.clone()
    }

    /// Moves to `to` unless the node has failed (Failed is final for this process).
    pub fn set(&self, to: Lifecycle) {
        let mut g = self.inner.lock();
        if g.0 != Lifecycle::Failed {
            g.0 = to;
        }
    }

    /// Latches Failed with the first reason.
    pub fn fail(&self, reason: impl Into<String>) {
        let mut g = self.inner.lock();
        if g.0 != Lifecycle::Failed {
            let reason = reason.into();
            tracing::error!(%reason, "node failed: writes are refused until restart");
            *g = (Lifecycle::Failed, Some(reason));
            self.failed.store(true, Ordering::Release);
        }
    }

    /// The MISCONF error writes get while Failed.
    pub fn misconf(&self) -> Option<String> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        let g = self.inner.lock();
        (g.0 == Lifecycle::Failed).then(|| {
            format!(
                "MISCONF keel is unable to persist to disk: {}; writes are refused until the \
                 problem is fixed",
                g.1.as_deref().unwrap_or("unknown error")
            )
        })
    }

    /// Records a finished snapshot attempt.
    pub fn note_snapshot(&self, ok: bool) {
        self.last_save_ok.store(ok, Ordering::Relaxed);
        if ok {
            self.last_save_unix.store(unix_now(), Ordering::Relaxed);
            self.changes_since_save.store(0, Ordering::Relaxed);
            self.snapshots.fetch_add(1, Ordering::Relaxed);
        }
    }
}
