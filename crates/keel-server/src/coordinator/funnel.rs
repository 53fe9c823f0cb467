//! Who runs the write funnel's rounds: the funnel's state ([`ApplyLoop`]) sits behind
//! one lock, and writes wait in a queue in front of it.
//!
//! A thread that queues a write tries the lock and, when it is free, runs the rounds
//! itself (flat combining): its own write and whatever other connections queued
//! meanwhile, then the replies. Why: handing every write to a dedicated thread and back
//! cost two cross-thread wake-ups per round, which at pipeline 1 were a third of a
//! SET's CPU time (measured: SET P1 11.6 µs of server CPU per request against GET's
//! 7.0). A thread that finds the lock taken leaves its write to the holder, which looks
//! at the queue again after letting go of the lock, so no write is left behind; a
//! thread that has run [`INLINE_ROUNDS`] rounds hands what is left to the apply thread
//! instead of starving its own connections.
//!
//! A connection's writes that end its input are only queued (`Funnel::queue_only`): the
//! end of its thread's pass runs them (see the server's `unawaited`), so one round takes
//! every such write of the pass without the gathering yield below.
//!
//! Under `always` too: a round writes its entries to the WAL and hands its replies to the
//! acknowledgement thread (`acks`), which fdatasyncs for them, so no round waits for the
//! disk. The apply thread keeps the expiry timer (every 100 ms), starts and finishes
//! snapshots, shuts down, and drains the queue on each tick, a backstop for any write
//! queued without a hand-off. A due tick (active expiry, save points) runs on whichever
//! thread holds the funnel next, between two rounds; the apply thread only tries the
//! lock for it (see [`Funnel::run`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use super::apply_loop::ApplyLoop;
use super::write_queue::WriteQueue;
use super::{Control, Request};

/// Rounds a submitting thread runs before it hands the rest to the apply thread.
const INLINE_ROUNDS: usize = 4;
/// Single-submitter rounds in a row after which writes stop being gathered.
const LONE_ROUNDS: u32 = 16;
/// Once writes stop being gathered, one write in this many lone rounds yields anyway, to
/// see whether other connections' writes would join its round. Without it nothing could
/// end the lone state on a single runtime thread, where no round takes two connections'
/// writes unless one of them yielded first: the few stragglers at the end of one
/// benchmark left every later P1 write ungathered.
const PROBE_PERIOD: u32 = 64;
/// Unawaited messages queued before the one that queues the next has them run at once
/// rather than at the end of its thread's pass (a thread that never runs out of work
/// must still apply its writes).
const UNAWAITED_BATCH: usize = 64;
/// Active expiry period.
const EXPIRE_PERIOD: Duration = Duration::from_millis(100);
/// How long shutdown waits for a running snapshot.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);
/// How often shutdown looks at a running snapshot while it waits.
const SHUTDOWN_POLL: Duration = Duration::from_millis(10);

/// The queue of writes and the lock around the funnel's state.
pub(super) struct Funnel {
    /// The state; `None` once shut down (queued writes are then dropped, which their
    /// callers read as "shutting down").
    state: Mutex<Option<ApplyLoop>>,
    /// The writes waiting (the state takes them from it too).
    queue: Arc<WriteQueue>,
    ctrl: Sender<Control>,
    /// A `Control::Drain` is on its way to the apply thread: one wake-up serves every
    /// write queued until it runs.
    woken: AtomicBool,
    /// Rounds in a row that took a single message: below [`LONE_ROUNDS`], writes arrive
    /// concurrently and gathering them pays (`submit_gathered`); from there it counts
    /// up to the next probe ([`PROBE_PERIOD`]), where it drops just below again.
    lone_rounds: AtomicU32,
    /// Every write yields before its round, lone or not: true under `always`, where a
    /// reply waits for an fdatasync of a few hundred µs anyway and a round saved is a
    /// WAL write saved.
    gather_every_write: bool,
    /// The expiry timer went off: whoever holds the funnel next runs the tick (see
    /// [`Funnel::run`]).
    tick_due: AtomicBool,
}

impl Funnel {
    /// Wraps `state`, which must take its writes from `queue`; `gather_every_write`
    /// makes even a lone writer yield before its round (for `always`).
    pub fn new(
        state: ApplyLoop,
        queue: Arc<WriteQueue>,
        ctrl: Sender<Control>,
        gather_every_write: bool,
    ) -> Self {
        Funnel {
            state: Mutex::new(Some(state)),
            queue,
            ctrl,
            woken: AtomicBool::new(false),
            lone_rounds: AtomicU32::new(LONE_ROUNDS),
            gather_every_write,
            tick_due: AtomicBool::new(false),
        }
    }

    /// Queues a write and sees that it runs: on this thread if the funnel is free,
    /// otherwise by the lock's holder or the apply thread.
    pub fn submit(&self, req: Request) {
        self.queue.push(req);
        self.run_queued();
    }

    /// Like [`Funnel::submit`], but while writes arrive from several connections it
    /// first yields to the runtime, which polls its sockets and runs the other ready
    /// connections of this thread (they queue their writes), so one round, one WAL
    /// write and one storage batch serve them all, as one pass of Redis's event loop
    /// does. A lone writer skips the detour: it would pay an I/O poll for nothing
    /// (measured: a tenth of one client's SET rate), which is what `lone_rounds` tells,
    /// but for one probe every [`PROBE_PERIOD`] rounds; except under `always`, where
    /// that poll is small beside the fdatasync and a lone round per write had each SET
    /// -P 1 pay a WAL write of its own (200k for 200k; with the yield 92k, and SET -P 1
    /// at 50 clients 1.144x the rate, 0.867x the CPU).
    pub async fn submit_gathered(&self, req: Request) {
        self.queue.push(req);
        if self.gathers() {
            tokio::task::yield_now().await;
        }
        self.run_queued();
    }

    /// Queues a write that the caller has run later ([`Funnel::run_queued_now`]); true
    /// when [`UNAWAITED_BATCH`] messages wait, and it should be now.
    pub fn queue_only(&self, req: Request) -> bool {
        self.queue.push(req) >= UNAWAITED_BATCH
    }

    /// Sees that the queued writes run (see [`Funnel::run_queued`]).
    pub fn run_queued_now(&self) {
        if !self.queue.is_empty() {
            self.run_queued();
        }
    }

    /// True when the next gathered write yields before its round.
    fn gathers(&self) -> bool {
        self.gather_every_write || self.lone_rounds.load(Ordering::Relaxed) < LONE_ROUNDS
    }

    /// Sees that the queued writes run: on this thread if it can take the funnel, else
    /// by the funnel's holder, else (after [`INLINE_ROUNDS`]) by the apply thread.
    fn run_queued(&self) {
        // The push must be visible before the lock is tried: the holder's look at the
        // queue after unlocking and this thread's try are ordered by the fences.
        fence(Ordering::SeqCst);
        if !self.drive(INLINE_ROUNDS) {
            self.wake();
        }
    }

    /// Waits for the lock once, so that the round running now, if any, has ended.
    pub fn barrier(&self) {
        drop(self.state.lock());
    }

    /// Sends a control request to the apply thread.
    pub fn control(&self, req: Control) -> bool {
        self.ctrl.send(req).is_ok()
    }

    /// Runs rounds while this thread can take the lock and writes wait, at most
    /// `max_rounds`, and the expiry tick when it is due. True when every queued write
    /// (and a due tick) is run or has a holder that will look at the queue after it;
    /// false when this thread stopped with writes left.
    fn drive(&self, max_rounds: usize) -> bool {
        let mut rounds = 0;
        loop {
            let Some(mut state) = self.state.try_lock() else {
                return true;
            };
            loop {
                if self.tick_due.load(Ordering::Relaxed)
                    && self.tick_due.swap(false, Ordering::AcqRel)
                {
                    if let Some(lp) = state.as_mut() {
                        guarded(lp, ApplyLoop::tick);
                    }
                }
                if self.queue.is_empty() {
                    break;
                }
                if rounds == max_rounds {
                    return false;
                }
                rounds += 1;
                self.round(&mut state);
            }
            drop(state);
            fence(Ordering::SeqCst);
            if self.queue.is_empty() && !self.tick_due.load(Ordering::Relaxed) {
                return true;
            }
        }
    }

    /// One round on the held state, or dropping the queue once shut down.
    fn round(&self, state: &mut Option<ApplyLoop>) {
        match state {
            Some(lp) => {
                let Some(messages) = guarded(lp, ApplyLoop::round) else {
                    return;
                };
                let lone = match messages {
                    0 => return,
                    1 => match self.lone_rounds.load(Ordering::Relaxed) + 1 {
                        n if n >= LONE_ROUNDS + PROBE_PERIOD => LONE_ROUNDS - 1,
                        n => n,
                    },
                    _ => 0,
                };
                self.lone_rounds.store(lone, Ordering::Relaxed);
            }
            None => self.queue.clear(),
        }
    }

    /// Asks the apply thread to drain the queue, unless it has been asked already.
    fn wake(&self) {
        if !self.woken.swap(true, Ordering::SeqCst) {
            let _ = self.ctrl.send(Control::Drain);
        }
    }

    /// The apply thread: control requests, the expiry timer, and draining the queue
    /// when woken. Returns after a shutdown.
    ///
    /// Why the timer and a drain only try the lock: waiting for it, this thread took the
    /// funnel from a connection's thread that ran a round per write, then ran the tick
    /// and the queued rounds on a core it shared with the clients; every write meanwhile
    /// was left to it, and its being preempted stalled them all (SET -P 1, 50 clients:
    /// the worker idle in epoll_wait for up to 3 ms; the run's maximum latency 4.5 ms
    /// against 2.1 ms now, medians of 8 runs; p99 unchanged). Now a due tick is a flag
    /// the funnel's next holder acts on, here or on a connection's thread between two
    /// rounds, as Redis's event loop runs its cron between requests.
    pub fn run(&self, ctrl: Receiver<Control>) {
        let mut next_expire = Instant::now() + EXPIRE_PERIOD;
        loop {
            let wait = next_expire.saturating_duration_since(Instant::now());
            let msg = match ctrl.recv_timeout(wait) {
                Ok(Control::Shutdown { save, reply }) => {
                    let _ = reply.send(self.shutdown(&ctrl, save));
                    return;
                }
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.shutdown(&ctrl, false);
                    return;
                }
            };
            // Cleared before draining: a write queued after this asks again.
            self.woken.store(false, Ordering::SeqCst);
            if Instant::now() >= next_expire {
                self.tick_due.store(true, Ordering::SeqCst);
                next_expire = Instant::now() + EXPIRE_PERIOD;
            }
            match msg {
                None | Some(Control::Drain) => {}
                // Snapshots start and finish here (rare): worth waiting for the lock.
                Some(m) => {
                    let mut state = self.state.lock();
                    let Some(lp) = state.as_mut() else {
                        return;
                    };
                    guarded(lp, |lp| lp.control(m));
                }
            }
            fence(Ordering::SeqCst);
            // A holder that is not this thread looks at the queue and the tick after it
            // lets go (see `drive`), so nothing waits for this thread's next wake-up.
            if !self.drive(usize::MAX) {
                self.wake();
            }
        }
    }

    /// Lets a running snapshot report back (writes keep running meanwhile), then
    /// applies what is queued and closes the WAL and the store.
    fn shutdown(&self, ctrl: &Receiver<Control>, save: bool) -> Result<(), String> {
        let deadline = Instant::now() + SNAPSHOT_WAIT;
        let result = loop {
            let mut state = self.state.lock();
            let Some(lp) = state.as_mut() else {
                break Err("ERR the write funnel is already closed".to_string());
            };
            guarded(lp, ApplyLoop::drain);
            if !lp.snapshot_running() || Instant::now() >= deadline {
                match state.take() {
                    Some(lp) => {
                        let finished = catch_unwind(AssertUnwindSafe(|| lp.finish(save)));
                        break finished.unwrap_or_else(|panic| {
                            Err(format!("closing panicked: {}", panic_text(panic.as_ref())))
                        });
                    }
                    None => break Ok(()),
                }
            }
            drop(state);
            match ctrl.recv_timeout(SHUTDOWN_POLL) {
                Ok(Control::Shutdown { reply, .. }) => {
                    let _ = reply.send(Err("ERR shutdown already in progress".into()));
                }
                Ok(m) => {
                    if let Some(lp) = self.state.lock().as_mut() {
                        guarded(lp, |lp| lp.control(m));
                    }
                }
                Err(_) => {}
            }
        };
        // Writes queued while closing are dropped: their callers hear "shutting down".
        fence(Ordering::SeqCst);
        self.drive(usize::MAX);
        result
    }
}

/// Runs `f` on the funnel's state; a panic (a bug) fails the node instead of leaving
/// the state half-applied for the next round or unwinding through a connection's task.
fn guarded<R>(lp: &mut ApplyLoop, f: impl FnOnce(&mut ApplyLoop) -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(|| f(lp))) {
        Ok(r) => Some(r),
        Err(panic) => {
            lp.abandon_round(panic_text(panic.as_ref()));
            None
        }
    }
}

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Starts the apply thread on `funnel`.
pub(super) fn spawn(
    funnel: Arc<Funnel>,
    ctrl: Receiver<Control>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("keel-apply".into())
        .spawn(move || funnel.run(ctrl))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use keel_engine::Op;
    use parking_lot::RwLock;

    use super::{LONE_ROUNDS, PROBE_PERIOD};
    use crate::config::Config;
    use crate::coordinator::Coordinator;

    /// A coordinator with default settings on a temporary directory (kept alive by the
    /// returned guard).
    fn started() -> (Coordinator, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let (coord, _) = Coordinator::start(Arc::new(RwLock::new(config))).expect("start");
        (coord, dir)
    }

    #[test]
    fn a_tick_due_while_the_funnel_is_held_runs_when_its_holder_drives() {
        let (coord, _dir) = started();
        // Long enough that no tick can expire them before the test holds the funnel.
        let ttl = Duration::from_millis(300);
        let set_at = Instant::now();
        for i in 0..10 {
            let args = ["SET", &format!("k{i}"), "v", "PX", "300"]
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect();
            let done = coord
                .submit(Op::Command { db: 0, args }, false)
                .blocking_recv();
            assert!(matches!(done, Ok(Ok(_))), "SET PX: {done:?}");
        }
        let expired = || coord.state().expired_keys.load(Ordering::Relaxed);
        let funnel = &coord.funnel;
        let held = funnel.state.lock();
        std::thread::sleep(
            (set_at + ttl + Duration::from_millis(50)).saturating_duration_since(Instant::now()),
        );
        // The apply thread's timer goes off and finds the funnel taken: it does not
        // wait for it, it leaves the tick to the holder.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !funnel.tick_due.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the expiry timer never went off");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(expired(), 0, "a tick ran while the funnel was held");
        drop(held);
        // Right after the timer, the apply thread sleeps ~100 ms: this drive is the one
        // that runs the tick.
        assert!(funnel.drive(usize::MAX));
        assert_eq!(expired(), 10, "the holder's drive ran the due tick");
        assert!(!funnel.tick_due.load(Ordering::SeqCst));
        coord.shutdown(false).expect("shutdown");
    }

    /// A SET of `key` as the funnel's write.
    fn set(key: &str) -> Op {
        let args = ["SET", key, "v"]
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        Op::Command { db: 0, args }
    }

    #[test]
    fn lone_writes_stop_gathering_but_probe_and_two_writers_resume_it() {
        let (coord, _dir) = started();
        let funnel = &coord.funnel;
        // One writer, one write at a time: every round takes one message.
        let rounds = LONE_ROUNDS + 2 * PROBE_PERIOD;
        let mut gathered = 0;
        for i in 0..rounds {
            gathered += u32::from(funnel.gathers());
            let done = coord.submit(set(&format!("k{i}")), false).blocking_recv();
            assert!(matches!(done, Ok(Ok(_))), "SET: {done:?}");
        }
        assert_eq!(gathered, 2, "one probe per {PROBE_PERIOD} lone rounds");
        // Two writes queued while the funnel is held make one round of two messages.
        let held = funnel.state.lock();
        let first = coord.submit(set("a"), false);
        let second = coord.submit(set("b"), false);
        drop(held);
        assert!(funnel.drive(usize::MAX));
        for done in [first, second] {
            assert!(matches!(done.blocking_recv(), Ok(Ok(_))));
        }
        assert!(
            funnel.gathers(),
            "a round of two writers turns gathering back on"
        );
        coord.shutdown(false).expect("shutdown");
    }
}
