//! The coordinator: THE write funnel of a shard. Standalone today (own WAL, group
//! commit, snapshots that truncate the log); a Raft coordinator plugs in later behind
//! the same handle ([`Coordinator::write`] takes an `Op` and resolves to its replies
//! once the entry is durable per policy).
//!
//! - [`recovery`]: start-up (open storage + engine + WAL, replay).
//! - [`apply_loop`]: the funnel's state, the one owner of the WAL and caller of
//!   `Engine::apply`.
//! - [`funnel`]: the lock around that state and who runs it (the submitting thread when
//!   it finds the funnel free, or the apply thread).
//! - `acks`: under `appendfsync always`, the thread that fdatasyncs for the rounds
//!   written and then sends their replies.
//! - [`state`]: lifecycle (Recovering/Ready/Snapshotting/Failed) and persistence
//!   figures, shared with the front-end for INFO and the MISCONF refusal.
//!
//! Extension points: MULTI/EXEC submits one `Op::Multi` through [`Coordinator::write`];
//! WATCH-based optimistic transactions submit `Op::TxnCommit`; blocking pops, WATCH
//! and keyspace notifications see each entry's `Applied` (its touched keys and events)
//! through the apply hooks, in the funnel.
//! Reads never come here: the front-end calls `Engine::read` on a snapshot.

mod acks;
pub mod apply_loop;
mod funnel;
pub mod recovery;
pub mod state;
mod write_queue;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use keel_engine::command::{flags, CommandSpec};
use keel_engine::engine::Replies;
use keel_engine::{Applied, Engine, Op, Reply};
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use crate::config::Config;
use crate::wal::{WalStats, WalStatsHandle};
pub use recovery::{Recovered, StartError};
pub use state::{Lifecycle, NodeState};

/// A write's outcome: its replies (one; one per queued command of a MULTI), or an error
/// reply (MISCONF, OOM, …). The keys it touched and the events it raised stay in the
/// funnel, whose hooks use them: the connections need only the replies, and a round's
/// results cross to them in one vector, which was 128 bytes per write with them.
pub type WriteResult = Result<Replies, Reply>;

/// Where a snapshot's outcome goes (error text is a full error reply).
pub type SnapshotReply = oneshot::Sender<Result<(), String>>;

/// Called under the write funnel's lock after every applied entry (WATCH, blocking
/// pops, client-side caching) with the id of the client that sent it (0: none, as for
/// expiry): it must be quick and never block, as every write waits for it, and it may
/// run on a connection's runtime thread.
pub type ApplyHook = Arc<dyn Fn(&Op, &Applied, u64) + Send + Sync>;

/// The hooks the write funnel calls, registered by the front-end after start.
pub type ApplyHooks = Arc<HookList>;

/// The registered apply hooks, with a count of registrations so that the apply loop
/// re-reads the list only when it changed: taking its lock for every entry was two
/// atomic read-modify-writes per write, each a barrier between the writes' misses.
#[derive(Default)]
pub struct HookList {
    list: RwLock<Vec<ApplyHook>>,
    registered: AtomicU64,
}

impl HookList {
    /// Adds `hook`; entries applied from now on call it.
    pub fn add(&self, hook: ApplyHook) {
        self.list.write().push(hook);
        self.registered.fetch_add(1, Ordering::Release);
    }

    /// The hooks, when registrations since `seen` made them differ from the caller's
    /// copy (then `seen` moves on).
    pub fn changed_since(&self, seen: &mut u64) -> Option<Vec<ApplyHook>> {
        let now = self.registered.load(Ordering::Acquire);
        if now == *seen {
            return None;
        }
        *seen = now;
        Some(self.list.read().clone())
    }
}

/// One write of a connection's pipeline: the entry and the command it runs, as the
/// connection resolved it.
pub type GatheredWrite = (Op, &'static CommandSpec);

/// The results of one [`Request::Unawaited`] message, one per write, in order.
pub type Results = smallvec::SmallVec<[WriteResult; 1]>;

/// Where the results of a connection's writes go when the connection does not wait for
/// them: the round that applies them hands them over on whatever thread it runs.
pub trait ResultSink: Send + Sync {
    /// The writes' results, in order, once committed (under `always`, once durable).
    fn deliver(&self, results: Results);
    /// The writes were dropped unapplied (the server is shutting down).
    fn lost(&self);
}

/// A sink's claim on one message's results: delivered once, or reported lost when the
/// message is dropped unapplied.
pub struct SinkTicket(Option<Arc<dyn ResultSink>>);

impl SinkTicket {
    /// A ticket for results that go to `sink`.
    pub fn new(sink: Arc<dyn ResultSink>) -> Self {
        SinkTicket(Some(sink))
    }

    /// Hands `results` to the sink.
    pub(crate) fn deliver(mut self, results: Results) {
        if let Some(sink) = self.0.take() {
            sink.deliver(results);
        }
    }
}

impl Drop for SinkTicket {
    fn drop(&mut self) {
        if let Some(sink) = self.0.take() {
            sink.lost();
        }
    }
}

/// The writes of one [`Request::Unawaited`] message.
pub type UnawaitedWrites = smallvec::SmallVec<[GatheredWrite; 1]>;

/// A write queued for the funnel.
pub enum Request {
    /// Log and apply `op`; `denyoom` asks for the maxmemory check first. No reply
    /// channel: fire-and-forget (lazy expiry).
    Write {
        /// The entry's content.
        op: Op,
        /// The command may grow memory.
        denyoom: bool,
        /// The command, when a connection resolved it (which keys to prefetch).
        spec: Option<&'static CommandSpec>,
        /// Where the result goes.
        reply: Option<oneshot::Sender<WriteResult>>,
        /// The client that sent it (0: none).
        origin: u64,
    },
    /// Several writes of one connection's pipeline, in order, answered together: one
    /// message and one reply channel instead of one per write.
    Writes {
        /// Each entry's content and the command it runs (whether it may grow memory;
        /// which keys to prefetch).
        ops: Vec<GatheredWrite>,
        /// Where the results go, one per op, in order.
        reply: oneshot::Sender<Vec<WriteResult>>,
        /// The client that sent them.
        origin: u64,
    },
    /// A connection's writes whose results it does not wait for: the round hands them
    /// to `sink` (see `Coordinator::queue_unawaited`).
    Unawaited {
        /// Each entry's content and the command it runs.
        ops: UnawaitedWrites,
        /// Where the results go.
        sink: SinkTicket,
        /// The client that sent them.
        origin: u64,
    },
    /// Like `Write`, but answered `Err(Reply::NilArray)` without logging anything when
    /// `abort` is set when the funnel reaches it (EXEC with a dirty WATCH: the check and the
    /// apply are one step, so no write can slip in between).
    GuardedWrite {
        /// The entry's content.
        op: Op,
        /// The command may grow memory.
        denyoom: bool,
        /// Set by an apply hook when a watched key changed.
        abort: Arc<std::sync::atomic::AtomicBool>,
        /// Where the result goes.
        reply: oneshot::Sender<WriteResult>,
        /// The client that sent it.
        origin: u64,
    },
}

impl Request {
    /// How many requests this message counts for in a round (each write of `Writes`).
    fn weight(&self) -> usize {
        match self {
            Request::Writes { ops, .. } => ops.len().max(1),
            Request::Unawaited { ops, .. } => ops.len().max(1),
            _ => 1,
        }
    }

    /// The writes it carries, with their commands where the connection resolved them.
    fn writes(&self) -> impl Iterator<Item = (&Op, Option<&'static CommandSpec>)> + Clone {
        let (one, many) = match self {
            Request::Write { op, spec, .. } => (Some((op, *spec)), &[][..]),
            Request::GuardedWrite { op, .. } => (Some((op, None)), &[][..]),
            Request::Writes { ops, .. } => (None, &ops[..]),
            Request::Unawaited { ops, .. } => (None, &ops[..]),
        };
        one.into_iter()
            .chain(many.iter().map(|(op, spec)| (op, Some(*spec))))
    }
}

/// A message to the apply thread.
pub enum Control {
    /// Take a snapshot (SAVE, BGSAVE).
    Snapshot {
        /// Where the outcome goes.
        reply: Option<SnapshotReply>,
    },
    /// The snapshot thread finished; truncate the WAL before `covered + 1` if it worked.
    SnapshotDone {
        /// Last index the snapshot holds.
        covered: u64,
        /// Its outcome.
        result: Result<(), String>,
        /// The requester.
        reply: Option<SnapshotReply>,
    },
    /// Finish queued work, optionally snapshot, close WAL and storage, stop.
    Shutdown {
        /// Snapshot first (SHUTDOWN SAVE).
        save: bool,
        /// Outcome of the close.
        reply: SnapshotReply,
    },
    /// Writes are queued that no running thread will apply: drain the queue.
    Drain,
}

/// Handle to the running coordinator, shared by every connection.
pub struct Coordinator {
    funnel: Arc<funnel::Funnel>,
    engine: Engine,
    state: Arc<NodeState>,
    wal_stats: WalStatsHandle,
    hooks: ApplyHooks,
    apply_thread: Mutex<Option<JoinHandle<()>>>,
    gc: Mutex<Option<(Arc<std::sync::atomic::AtomicBool>, JoinHandle<()>)>>,
}

/// How often background GC of dropped collections runs, and its work bound per round.
const GC_PERIOD: Duration = Duration::from_millis(100);
const GC_KEYS_PER_STEP: usize = 1024;
const GC_STEPS_PER_ROUND: usize = 8;

impl Coordinator {
    /// Recovers from `config.dir` and starts the apply and GC threads.
    pub fn start(config: Arc<RwLock<Config>>) -> Result<(Coordinator, RecoveryReport), StartError> {
        Coordinator::start_with_gates(config, None)
    }

    /// [`Coordinator::start`] with the gates that check a limited caller's script calls
    /// (`Op::AsUser`), registered before the log is replayed.
    pub fn start_with_gates(
        config: Arc<RwLock<Config>>,
        gates: Option<Arc<dyn keel_engine::gate::CallGates>>,
    ) -> Result<(Coordinator, RecoveryReport), StartError> {
        let cfg = config.read().clone();
        let state = Arc::new(NodeState::new());
        let rec = recovery::recover(&cfg, gates)?;
        let report = RecoveryReport {
            storage_index: rec.storage_index,
            replayed: rec.replayed,
            last_index: rec.last_index,
            took: rec.took,
        };
        state
            .recovered_entries
            .store(rec.replayed, Ordering::Relaxed);
        state.applied_index.store(rec.last_index, Ordering::Relaxed);
        let queue = Arc::new(write_queue::WriteQueue::default());
        let (ctrl_tx, ctrl_rx) = crossbeam_channel::unbounded();
        let acks = if cfg.appendfsync == keel_storage::SyncPolicy::Always && cfg.appendonly {
            let acks = acks::Acks::spawn(
                rec.wal.sync_handle(),
                Arc::clone(&state),
                tokio::runtime::Handle::try_current().ok(),
            )
            .map_err(|source| StartError::Thread {
                name: "keel-wal-ack",
                source,
            })?;
            Some(acks)
        } else {
            None
        };
        let gather_every_write = acks.is_some();
        let engine = rec.engine.clone();
        let wal_stats = rec.wal.stats_handle();
        let hooks: ApplyHooks = Arc::default();
        let lp = apply_loop::ApplyLoop::new(
            rec.engine,
            rec.wal,
            Arc::clone(&state),
            config,
            Arc::clone(&queue),
            ctrl_tx.clone(),
            rec.last_index,
            rec.last_now_ms,
            rec.storage_dir,
            Arc::clone(&hooks),
            acks,
        );
        let funnel = Arc::new(funnel::Funnel::new(lp, queue, ctrl_tx, gather_every_write));
        let apply_thread =
            funnel::spawn(Arc::clone(&funnel), ctrl_rx).map_err(|source| StartError::Thread {
                name: "keel-apply",
                source,
            })?;
        let gc = spawn_gc(engine.clone(), Arc::clone(&state))?;
        state.set(Lifecycle::Ready);
        Ok((
            Coordinator {
                funnel,
                engine,
                state,
                wal_stats,
                hooks,
                apply_thread: Mutex::new(Some(apply_thread)),
                gc: Mutex::new(Some(gc)),
            },
            report,
        ))
    }

    /// The engine (for reads on snapshots).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Lifecycle and persistence figures.
    pub fn state(&self) -> &Arc<NodeState> {
        &self.state
    }

    /// The WAL's counters.
    pub fn wal_stats(&self) -> WalStats {
        self.wal_stats.get()
    }

    /// Queues `op`; the receiver resolves once it is applied and committed. Callers that
    /// pipeline submit several and await them in order.
    pub fn submit(&self, op: Op, denyoom: bool) -> oneshot::Receiver<WriteResult> {
        self.submit_from(op, denyoom, 0)
    }

    /// [`Coordinator::submit`] for client `origin`.
    pub fn submit_from(
        &self,
        op: Op,
        denyoom: bool,
        origin: u64,
    ) -> oneshot::Receiver<WriteResult> {
        let (tx, rx) = oneshot::channel();
        // After shutdown the funnel drops `tx`, which the receiver reports as shutting down.
        self.funnel.submit(Request::Write {
            op,
            denyoom,
            spec: None,
            reply: Some(tx),
            origin,
        });
        rx
    }

    /// [`Coordinator::submit`] for a connection's task: other tasks on its thread get to
    /// queue their writes first, so one round serves them all.
    /// `origin` is the sending client's id.
    pub async fn submit_gathered(
        &self,
        write: GatheredWrite,
        origin: u64,
    ) -> oneshot::Receiver<WriteResult> {
        let (op, spec) = write;
        let (tx, rx) = oneshot::channel();
        self.funnel
            .submit_gathered(Request::Write {
                op,
                denyoom: spec.flags & flags::DENYOOM != 0,
                spec: Some(spec),
                reply: Some(tx),
                origin,
            })
            .await;
        rx
    }

    /// Queues a connection's consecutive writes as one message (see `submit_gathered`);
    /// the receiver resolves to their results, in order, once all are applied and
    /// committed.
    pub async fn submit_many_gathered(
        &self,
        ops: Vec<GatheredWrite>,
        origin: u64,
    ) -> oneshot::Receiver<Vec<WriteResult>> {
        let (tx, rx) = oneshot::channel();
        self.funnel
            .submit_gathered(Request::Writes {
                ops,
                reply: tx,
                origin,
            })
            .await;
        rx
    }

    /// Queues a connection's writes without running them or waiting for them: their
    /// results go to `sink`. The caller sees that they run: [`Coordinator::run_queued`]
    /// soon (the end of its runtime thread's pass), or at once when this returns true
    /// (enough writes wait that one round should take them now).
    pub fn queue_unawaited(&self, ops: UnawaitedWrites, sink: SinkTicket, origin: u64) -> bool {
        self.funnel
            .queue_only(Request::Unawaited { ops, sink, origin })
    }

    /// Runs the queued writes (on this thread if the funnel is free, else by its holder
    /// or the apply thread).
    pub fn run_queued(&self) {
        self.funnel.run_queued_now();
    }

    /// Registers `hook`, called after every entry applied from now on.
    pub fn add_apply_hook(&self, hook: ApplyHook) {
        self.hooks.add(hook);
    }

    /// Queues `op` of client `origin` unless `abort` is set when its turn comes in the
    /// funnel; an aborted write resolves to `Err(Reply::NilArray)`.
    pub fn submit_guarded(
        &self,
        op: Op,
        denyoom: bool,
        abort: Arc<std::sync::atomic::AtomicBool>,
        origin: u64,
    ) -> oneshot::Receiver<WriteResult> {
        let (tx, rx) = oneshot::channel();
        self.funnel.submit(Request::GuardedWrite {
            op,
            denyoom,
            abort,
            reply: tx,
            origin,
        });
        rx
    }

    /// Logs and applies `op`, resolving to its result.
    pub async fn write(&self, op: Op, denyoom: bool) -> WriteResult {
        self.write_from(op, denyoom, 0).await
    }

    /// [`Coordinator::write`] for client `origin`.
    pub async fn write_from(&self, op: Op, denyoom: bool, origin: u64) -> WriteResult {
        resolve_write(self.submit_from(op, denyoom, origin)).await
    }

    /// Returns once no round is running: every entry applied before the call is in
    /// storage. Blocks the calling thread for at most the round in progress.
    pub fn barrier(&self) {
        self.funnel.barrier();
    }

    /// Logs an `ExpireDue` for keys a reader found expired (fire-and-forget).
    pub fn expire_due(&self, expired: Vec<(u8, Bytes)>) {
        let mut by_db: std::collections::BTreeMap<u8, Vec<Bytes>> = Default::default();
        for (db, k) in expired {
            by_db.entry(db).or_default().push(k);
        }
        for (db, keys) in by_db {
            self.funnel.submit(Request::Write {
                op: Op::ExpireDue { db, keys },
                denyoom: false,
                spec: None,
                reply: None,
                origin: 0,
            });
        }
    }

    /// Starts a snapshot; the receiver resolves when it is written and the WAL truncated.
    pub fn snapshot(&self) -> oneshot::Receiver<Result<(), String>> {
        let (tx, rx) = oneshot::channel();
        self.funnel.control(Control::Snapshot { reply: Some(tx) });
        rx
    }

    /// Finishes queued writes, optionally snapshots, commits and closes WAL and storage,
    /// and stops the threads. Blocking; call it once, off the async runtime.
    pub fn shutdown(&self, save: bool) -> Result<(), String> {
        // GC writes to storage outside the log: stop it before the store closes.
        if let Some((stop, h)) = self.gc.lock().take() {
            stop.store(true, Ordering::Release);
            let _ = h.join();
        }
        let (tx, rx) = oneshot::channel();
        let sent = self.funnel.control(Control::Shutdown { save, reply: tx });
        let result = if sent {
            rx.blocking_recv()
                .unwrap_or_else(|_| Err("apply thread ended without reporting".into()))
        } else {
            Err("apply thread already stopped".into())
        };
        if let Some(h) = self.apply_thread.lock().take() {
            let _ = h.join();
        }
        result
    }
}

impl Drop for Coordinator {
    /// A coordinator dropped without `shutdown` (an embedding that panicked) still stops
    /// its threads and closes the store; it does not wait, as it may be on a runtime.
    fn drop(&mut self) {
        if self.apply_thread.lock().take().is_none() {
            return;
        }
        if let Some((stop, _)) = self.gc.lock().take() {
            stop.store(true, Ordering::Release);
        }
        let (tx, _rx) = oneshot::channel();
        self.funnel.control(Control::Shutdown {
            save: false,
            reply: tx,
        });
    }
}

/// The reply to a write the funnel never answered (dropped unapplied at shutdown).
pub fn shutting_down() -> Reply {
    Reply::err("ERR server is shutting down")
}

/// Awaits a submitted write.
pub async fn resolve_write(rx: oneshot::Receiver<WriteResult>) -> WriteResult {
    rx.await.unwrap_or_else(|_| Err(shutting_down()))
}

/// Awaits `n` writes submitted with [`Coordinator::submit_many_gathered`].
pub async fn resolve_writes(rx: oneshot::Receiver<Vec<WriteResult>>, n: usize) -> Vec<WriteResult> {
    match rx.await {
        Ok(results) => results,
        Err(_) => (0..n).map(|_| Err(shutting_down())).collect(),
    }
}

/// What recovery did, for the start-up log line.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryReport {
    /// Applied index found in storage.
    pub storage_index: u64,
    /// Entries replayed from the WAL.
    pub replayed: u64,
    /// Last index after replay.
    pub last_index: u64,
    /// Time taken.
    pub took: Duration,
}

fn spawn_gc(
    engine: Engine,
    state: Arc<NodeState>,
) -> Result<(Arc<std::sync::atomic::AtomicBool>, JoinHandle<()>), StartError> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let h = std::thread::Builder::new()
        .name("keel-gc".into())
        .spawn(move || {
            while !flag.load(Ordering::Acquire) {
                std::thread::sleep(GC_PERIOD);
                if state.lifecycle() == Lifecycle::Failed {
                    continue;
                }
                for _ in 0..GC_STEPS_PER_ROUND {
                    match engine.gc_step(GC_KEYS_PER_STEP) {
                        Ok(p) if p.more => {}
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "background gc step failed");
                            break;
                        }
                    }
                }
            }
        })
        .map_err(|source| StartError::Thread {
            name: "keel-gc",
            source,
        })?;
    Ok((stop, h))
}
