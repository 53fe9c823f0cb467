//! Replies under `appendfsync always`: a round hands its replies here once its entries
//! are written to the WAL, and this thread sends them after an fdatasync covers them.
//!
//! Why a thread of its own: when the apply thread ran each round's fdatasync itself,
//! nothing was applied or written while it waited, and every round needed that thread
//! woken (measured at SET -P 1, 50 clients: 18.8 writes per fdatasync, one round every
//! 385 µs for an fdatasync of 234 µs; 0.82x Redis). Now the submitting connection's
//! thread runs a round inline, as under `everysec`, and the fdatasync of one batch of
//! rounds overlaps the applying and writing of the next.
//!
//! A reply still leaves only after its entry is durable, and in the order the rounds
//! were written. A failed fdatasync latches in the WAL (later rounds fail to write) and
//! fails the node; the replies it was to cover become the MISCONF error.
//!
//! The thread does not send the replies itself: it hands each fdatasync's replies to a
//! task on the server's runtime, which sends them there. Sent from this thread, each
//! reply woke the connection's task from outside the runtime; when the runtime's thread
//! was idle, that wake was a write to its eventfd, after which the kernel often ran the
//! woken thread at once, which answered that one connection and went idle again before
//! this thread sent the next reply. Some runs fell into that pattern (SET -P 1, 50
//! clients: ~7,000 eventfd writes and three times the context switches per 50,000
//! requests, at 0.8-0.9x the rate). Now one wake carries a whole fdatasync's replies, and
//! the connections' tasks are woken from inside the runtime. Replies the task had not
//! taken when the runtime stopped are dropped, so their callers hear that the server
//! is shutting down; the thread sends the rest itself.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::apply_loop::{failure_reply, Pending};
use super::state::NodeState;
use crate::wal::WalSyncHandle;

/// The acknowledgement thread's end of the funnel.
pub(super) struct Acks {
    /// Rounds' replies, in the order their entries were written; `None` once closed.
    tx: Option<Sender<Vec<Pending>>>,
    thread: Option<JoinHandle<()>>,
}

impl Acks {
    /// Starts the thread, which makes the WAL durable through `sync`, fails the node in
    /// `state` when it cannot, and sends the replies through a task on `runtime` (on
    /// the thread itself without one).
    pub fn spawn(
        sync: WalSyncHandle,
        state: Arc<NodeState>,
        runtime: Option<Handle>,
    ) -> std::io::Result<Acks> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let deliver = runtime.map(|rt| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Vec<Pending>>>();
            rt.spawn(async move {
                while let Some(rounds) = rx.recv().await {
                    rounds.into_iter().flatten().for_each(Pending::send);
                }
            });
            tx
        });
        let thread = std::thread::Builder::new()
            .name("keel-wal-ack".into())
            .spawn(move || run(&rx, &sync, &state, deliver.as_ref()))?;
        Ok(Acks {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Hands over a round's replies; its entries must already be written to the WAL.
    pub fn defer(&self, replies: Vec<Pending>) {
        if replies.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            // The thread ends only when `tx` is dropped, so this cannot fail; if it
            // did, the replies' senders drop and their callers hear "shutting down".
            let _ = tx.send(replies);
        }
    }

    /// Sends every reply handed over (after a last fdatasync) and ends the thread.
    pub fn close(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the WAL acknowledgement thread panicked");
            }
        }
    }
}

impl Drop for Acks {
    fn drop(&mut self) {
        self.close();
    }
}

/// The longest an fdatasync waits for more rounds to gather (see `run`).
const MAX_GATHER: Duration = Duration::from_millis(2);

/// The thread: waits for a round's replies, takes every other round queued behind it,
/// fdatasyncs once for all of them and sends their replies.
///
/// Before an fdatasync it waits, for at most as long as the last one took, until as
/// many messages wait as the last one acknowledged: those clients are on their way
/// back. Why: fdatasyncs begun as soon as anything was written covered few writes each
/// (14.5 per fdatasync at 50 clients against Redis's 28.9), and each costs ~100 µs of
/// kernel CPU. A lone client never waits (it is the one acknowledged), and a client
/// that went away costs one wait, after which the count follows.
fn run(
    rx: &Receiver<Vec<Pending>>,
    sync: &WalSyncHandle,
    state: &NodeState,
    deliver: Option<&mpsc::UnboundedSender<Vec<Vec<Pending>>>>,
) {
    let mut rounds: Vec<Vec<Pending>> = Vec::new();
    let mut last_acked = 0;
    let mut last_sync = Duration::ZERO;
    while let Ok(first) = rx.recv() {
        let mut waiting = first.len();
        rounds.push(first);
        let deadline = Instant::now() + last_sync.min(MAX_GATHER);
        loop {
            for more in rx.try_iter() {
                waiting += more.len();
                rounds.push(more);
            }
            if waiting >= last_acked {
                break;
            }
            match rx.recv_deadline(deadline) {
                Ok(more) => {
                    waiting += more.len();
                    rounds.push(more);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        if let Err(e) = sync.sync() {
            let err = failure_reply(state, format!("wal commit: {e}"));
            for p in rounds.iter_mut().flatten() {
                p.fail(&err);
            }
        }
        last_sync = started.elapsed();
        last_acked = waiting;
        let batch = std::mem::take(&mut rounds);
        // Without the task (no runtime, or it has stopped), the replies go from here.
        let left = match deliver {
            Some(task) => task.send(batch).err().map(|e| e.0),
            None => Some(batch),
        };
        left.into_iter().flatten().flatten().for_each(Pending::send);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{Wal, WalError, WalOptions};
    use keel_engine::engine::Replies;
    use keel_engine::Reply;
    use keel_storage::SyncPolicy;
    use tokio::sync::oneshot;

    fn replies(n: i64) -> Replies {
        std::iter::once(Reply::Int(n)).collect()
    }

    fn open() -> (tempfile::TempDir, Wal, Arc<NodeState>, Acks) {
        open_on(None)
    }

    /// As [`open`], the replies sent through a task on `runtime`.
    fn open_on(runtime: Option<Handle>) -> (tempfile::TempDir, Wal, Arc<NodeState>, Acks) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (wal, _) =
            Wal::open(tmp.path(), WalOptions::default().sync(SyncPolicy::Always)).expect("open");
        let state = Arc::new(NodeState::new());
        let acks = Acks::spawn(wal.sync_handle(), Arc::clone(&state), runtime).expect("spawn");
        (tmp, wal, state, acks)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("runtime")
    }

    #[test]
    fn replies_go_through_the_runtime_in_order_once_durable() {
        let rt = runtime();
        let (_tmp, mut wal, _state, acks) = open_on(Some(rt.handle().clone()));
        // Handed over in bursts, so that one fdatasync covers several rounds.
        for burst in 0..20u64 {
            let rxs: Vec<_> = (1..=10)
                .map(|i| write_and_defer(&mut wal, &acks, burst * 10 + i))
                .collect();
            for (i, rx) in (burst * 10 + 1..).zip(rxs) {
                let res = rx.blocking_recv().expect("a reply");
                assert_eq!(res.expect("ok")[0], Reply::Int(i as i64));
                assert!(
                    wal.last_synced_index() >= i,
                    "reply {i} before its fdatasync"
                );
            }
        }
    }

    #[test]
    fn replies_still_leave_once_the_runtime_is_gone() {
        let rt = runtime();
        let (_tmp, mut wal, _state, mut acks) = open_on(Some(rt.handle().clone()));
        let rx = write_and_defer(&mut wal, &acks, 1);
        assert!(rx.blocking_recv().expect("reply").is_ok());
        rt.shutdown_timeout(std::time::Duration::from_secs(5));
        let rxs: Vec<_> = (2..=20u64)
            .map(|i| write_and_defer(&mut wal, &acks, i))
            .collect();
        for (i, rx) in (2..).zip(rxs) {
            let res = rx.blocking_recv().expect("sent from the thread");
            assert_eq!(res.expect("ok")[0], Reply::Int(i));
        }
        acks.close();
    }

    /// Writes entry `i` and hands over a reply for it, returning the reply's receiver.
    fn write_and_defer(
        wal: &mut Wal,
        acks: &Acks,
        i: u64,
    ) -> oneshot::Receiver<crate::coordinator::WriteResult> {
        wal.append(i, format!("entry {i}").as_bytes())
            .expect("append");
        wal.flush().expect("flush");
        let (tx, rx) = oneshot::channel();
        acks.defer(vec![Pending::One(tx, Ok(replies(i as i64)))]);
        rx
    }

    #[test]
    fn a_reply_leaves_only_once_its_entry_is_durable() {
        let (_tmp, mut wal, state, acks) = open();
        for i in 1..=200u64 {
            let rx = write_and_defer(&mut wal, &acks, i);
            let res = rx.blocking_recv().expect("a reply");
            assert_eq!(res.expect("ok")[0], Reply::Int(i as i64));
            assert!(
                wal.last_synced_index() >= i,
                "reply {i} before its fdatasync"
            );
        }
        assert!(state.misconf().is_none());
    }

    #[test]
    fn close_sends_every_reply_handed_over() {
        let (_tmp, mut wal, _state, mut acks) = open();
        let rxs: Vec<_> = (1..=50u64)
            .map(|i| write_and_defer(&mut wal, &acks, i))
            .collect();
        acks.close();
        for (i, rx) in (1..).zip(rxs) {
            let res = rx.blocking_recv().expect("sent before close returned");
            assert_eq!(res.expect("ok")[0], Reply::Int(i));
        }
        assert_eq!(wal.last_synced_index(), 50);
    }

    #[test]
    fn a_failed_fdatasync_fails_the_node_and_its_replies() {
        let (tmp, mut wal, state, acks) = open();
        let rx = write_and_defer(&mut wal, &acks, 1);
        assert!(rx.blocking_recv().expect("reply").is_ok());
        wal.append(2, b"two").expect("append");
        wal.flush().expect("flush");
        wal.inject_failure(&WalError::io(
            "fdatasync",
            tmp.path(),
            9,
            std::io::Error::other("injected"),
        ));
        let (tx, rx) = oneshot::channel();
        let (tx_err, rx_err) = oneshot::channel();
        acks.defer(vec![
            Pending::Many(tx, vec![Ok(replies(2)), Ok(replies(3))]),
            Pending::One(tx_err, Err(Reply::err("ERR not logged"))),
        ]);
        let results = rx.blocking_recv().expect("replies");
        let Some(text) = state.misconf() else {
            panic!("the node did not fail");
        };
        assert!(
            text.starts_with("MISCONF") && text.contains("injected"),
            "{text}"
        );
        for r in results {
            assert_eq!(r, Err(Reply::Error(text.clone())));
        }
        // An error reply stays what it was.
        assert_eq!(
            rx_err.blocking_recv().expect("reply"),
            Err(Reply::err("ERR not logged"))
        );
        assert_eq!(wal.last_synced_index(), 1);
    }
}
