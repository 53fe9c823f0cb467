//! Replies written together at the end of a runtime thread's pass, as Redis writes
//! every client's replies in `beforeSleep` after one pass over the ready sockets.
//!
//! Why: a connection task that wrote its replies the moment they were ready woke the
//! client once per write. Under load the replies of a funnel round reach several
//! connections of one thread, and each task then parsed, ran and encoded before its
//! `send`, so a fast client had caught up and gone to sleep before the next reply came:
//! redis-benchmark -P 16 was woken 35,000-39,000 times per million INCRs against keel and
//! 2,400 times against Redis, and waking it (`sock_def_readable`) was 17% of keel's
//! samples. Sends issued back to back find the client still busy with the first.
//!
//! A connection hands its encoded replies to its [`Outbox`] ([`Outbox::defer`]), which
//! joins its thread's list; the runtime's `on_thread_park` hook ([`end_of_pass`]) writes
//! every listed outbox when the thread has no task left to run. A list that grows past
//! [`MAX_LISTED`] outboxes or [`MAX_LISTED_BYTES`] is written at once (after the
//! write funnels noted on the pass, see `unawaited`), so a thread that never runs out
//! of work still applies and sends. Only a thread whose runtime has the hook (it has
//! run it once) defers; elsewhere the connection writes itself, as it does for
//! everything the socket did not take at once ([`Outbox::take`]).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Waker;

use bytes::{Buf, BytesMut};
use parking_lot::Mutex;
use tokio::net::tcp::OwnedWriteHalf;

use super::conn::KEEP_OUT;

/// Outboxes listed on one thread before the list is written without waiting for the
/// end of the pass.
const MAX_LISTED: usize = 64;
/// Bytes listed on one thread before the list is written at once.
const MAX_LISTED_BYTES: usize = 1 << 20;

/// One connection's socket (write half) and the replies waiting for its thread's pass
/// to end.
pub struct Outbox {
    /// The socket did not take all of `buf`, or failed: the connection must write the
    /// rest itself (it may wait; the pass may not). Read without the lock on every
    /// poll of the connection's `select!` ([`Outbox::in_trouble`]).
    trouble: AtomicBool,
    inner: Mutex<Inner>,
}

struct Inner {
    /// The socket; `None` while the connection writes itself ([`Outbox::take`]).
    wr: Option<OwnedWriteHalf>,
    /// Encoded replies not yet written.
    buf: BytesMut,
    /// On some thread's list.
    listed: bool,
    /// The connection task, from its last [`Outbox::defer`]: woken on trouble.
    waker: Option<Waker>,
}

/// The outboxes one thread has to write when its pass ends.
#[derive(Default)]
struct Pass {
    /// The runtime of this thread calls [`end_of_pass`].
    hooked: bool,
    /// Servers whose write funnel has writes of this pass's connections queued, run
    /// before the outboxes are written (their replies go out with the rest).
    funnels: Vec<Arc<super::Shared>>,
    listed: Vec<Arc<Outbox>>,
    bytes: usize,
}

thread_local! {
    static PASS: RefCell<Pass> = RefCell::new(Pass::default());
}

/// What to give a runtime builder's `on_thread_park`: writes the replies the tasks of
/// this thread deferred. Also marks the thread as one whose tasks may defer.
pub fn end_of_pass() {
    PASS.with(|p| p.borrow_mut().hooked = true);
    write_pass();
}

/// Runs the write funnels noted on this thread's pass, then writes its outboxes.
fn write_pass() {
    let funnels = PASS.with(|p| {
        let mut p = p.borrow_mut();
        if p.funnels.is_empty() {
            p.flush();
            return None;
        }
        Some(std::mem::take(&mut p.funnels))
    });
    let Some(mut funnels) = funnels else {
        return;
    };
    // Outside the borrow: a round delivers replies, which list their outboxes here.
    for shared in funnels.drain(..) {
        shared.coord.run_queued();
    }
    PASS.with(|p| {
        let mut p = p.borrow_mut();
        p.flush();
        if p.funnels.is_empty() {
            p.funnels = funnels;
        }
    });
}

/// True when this thread's runtime runs [`end_of_pass`].
pub fn hooked() -> bool {
    PASS.with(|p| p.borrow().hooked)
}

/// Has `shared`'s write funnel run its queued writes when this thread's pass ends.
pub fn run_funnel_at_end_of_pass(shared: &Arc<super::Shared>) {
    PASS.with(|p| {
        let mut p = p.borrow_mut();
        if !p.funnels.iter().any(|s| Arc::ptr_eq(s, shared)) {
            p.funnels.push(Arc::clone(shared));
        }
    });
}

impl Pass {
    /// Writes every listed outbox (flushing runs no task, so nothing lists meanwhile).
    fn flush(&mut self) {
        self.bytes = 0;
        for outbox in self.listed.drain(..) {
            outbox.flush();
        }
    }
}

impl Outbox {
    /// An outbox around a connection's write half.
    pub fn new(wr: OwnedWriteHalf) -> Arc<Outbox> {
        Arc::new(Outbox {
            trouble: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                wr: Some(wr),
                buf: BytesMut::new(),
                listed: false,
                waker: None,
            }),
        })
    }

    /// Takes `out` (left empty) to be written at the end of this thread's pass; `waker`
    /// is the calling task's, woken if the write runs into trouble. False, with `out`
    /// untouched, when the connection must write itself: this thread's runtime has no
    /// end-of-pass hook, the socket is out ([`Outbox::take`]), or an earlier write ran
    /// into trouble.
    pub fn defer(self: &Arc<Self>, out: &mut BytesMut, waker: &Waker) -> bool {
        // A thread that never runs out of work writes its pass every so often; when its
        // connections left writes to the pass, those run first (outside this borrow).
        let mut funnels_due = false;
        let deferred = PASS.with(|p| {
            let mut p = p.borrow_mut();
            if !p.hooked || self.trouble.load(Ordering::Acquire) {
                return false;
            }
            if p.listed.len() >= MAX_LISTED || p.bytes >= MAX_LISTED_BYTES {
                if p.funnels.is_empty() {
                    p.flush();
                } else {
                    funnels_due = true;
                }
            }
            let n = out.len();
            let list = {
                let mut inner = self.inner.lock();
                if inner.wr.is_none() || self.trouble.load(Ordering::Acquire) {
                    return false;
                }
                if inner.buf.is_empty() {
                    // The buffers change places: neither is copied or allocated.
                    std::mem::swap(&mut inner.buf, out);
                } else {
                    inner.buf.extend_from_slice(out);
                    out.clear();
                }
                if !inner.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    inner.waker = Some(waker.clone());
                }
                !std::mem::replace(&mut inner.listed, true)
            };
            p.bytes += n;
            if list {
                p.listed.push(Arc::clone(self));
            }
            true
        });
        if funnels_due {
            write_pass();
        }
        deferred
    }

    /// Appends what `encode` writes behind the replies waiting, to go out at the end of
    /// this thread's pass; on a thread without one (or with the socket out) the
    /// connection is woken to write it itself. Returns the bytes appended.
    pub fn append(self: &Arc<Self>, encode: impl FnOnce(&mut BytesMut)) -> usize {
        PASS.with(|p| {
            let mut p = p.borrow_mut();
            let (n, list, trouble) = {
                let mut inner = self.inner.lock();
                let before = inner.buf.len();
                encode(&mut inner.buf);
                let n = inner.buf.len() - before;
                let trouble = !p.hooked || inner.wr.is_none() || self.in_trouble();
                let list = !trouble && !std::mem::replace(&mut inner.listed, true);
                if trouble {
                    self.raise_trouble(&mut inner);
                }
                (n, list, trouble)
            };
            if !trouble {
                p.bytes += n;
                if list {
                    p.listed.push(Arc::clone(self));
                }
            }
            n
        })
    }

    /// Writes what is waiting, as far as the socket takes it without waiting; the rest
    /// is left to the connection, which is woken.
    fn flush(&self) {
        let mut inner = self.inner.lock();
        inner.listed = false;
        let Inner { wr, buf, .. } = &mut *inner;
        let Some(wr) = wr.as_ref() else {
            return;
        };
        let mut done = 0;
        let mut failed = false;
        while done < buf.len() {
            match wr.try_write(&buf[done..]) {
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if done == buf.len() && !failed {
            // Cleared, not advanced: the next replies are encoded from the buffer's
            // start instead of making it reclaim the space first.
            buf.clear();
            if buf.capacity() > KEEP_OUT {
                *buf = BytesMut::new();
            }
            return;
        }
        buf.advance(done);
        self.raise_trouble(&mut inner);
    }

    /// Leaves what `inner` holds to the connection: flags the outbox and wakes the task
    /// of the last [`Outbox::defer`].
    fn raise_trouble(&self, inner: &mut Inner) {
        self.trouble.store(true, Ordering::Release);
        if let Some(w) = inner.waker.take() {
            w.wake();
        }
    }

    /// A deferred write ran into trouble: the connection must take the socket
    /// ([`Outbox::take`]) and write the rest itself. The trouble wakes the task of the
    /// last [`Outbox::defer`], which came before it.
    pub fn in_trouble(&self) -> bool {
        self.trouble.load(Ordering::Acquire)
    }

    /// Takes the socket out for the connection to write itself, with what is still
    /// waiting put in front of `out` (it was encoded first). `None` if it is already
    /// out. Give it back with [`Outbox::put_back`].
    pub fn take(&self, out: &mut BytesMut) -> Option<OwnedWriteHalf> {
        let mut inner = self.inner.lock();
        let wr = inner.wr.take()?;
        self.trouble.store(false, Ordering::Release);
        if !inner.buf.is_empty() {
            inner.buf.extend_from_slice(out);
            std::mem::swap(&mut inner.buf, out);
            inner.buf.clear();
        }
        Some(wr)
    }

    /// Returns the socket after [`Outbox::take`].
    pub fn put_back(&self, wr: OwnedWriteHalf) {
        self.inner.lock().wr = Some(wr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Poll;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const WAIT: Duration = Duration::from_secs(10);

    fn runtime(hooked: bool) -> tokio::runtime::Runtime {
        let mut b = tokio::runtime::Builder::new_current_thread();
        b.enable_all();
        if hooked {
            b.on_thread_park(end_of_pass);
        }
        b.build().expect("runtime")
    }

    /// A connected pair: the server side's outbox and the client side.
    async fn pair() -> (Arc<Outbox>, tokio::net::tcp::OwnedReadHalf, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = l.accept().await.expect("accept");
        let (rd, wr) = server.into_split();
        (Outbox::new(wr), rd, client)
    }

    /// [`Outbox::defer`] with the calling task's waker.
    async fn defer(outbox: &Arc<Outbox>, out: &mut BytesMut) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(outbox.defer(out, cx.waker()))).await
    }

    /// Lets the runtime run out of work, so that it parks (and runs its hook).
    async fn idle() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    #[test]
    fn deferred_replies_go_out_when_the_thread_parks_and_keep_their_order() {
        runtime(true).block_on(async {
            idle().await;
            let (outbox, _rd, mut client) = pair().await;
            let mut out = BytesMut::from(&b"+A\r\n"[..]);
            assert!(defer(&outbox, &mut out).await, "a hooked thread defers");
            assert!(out.is_empty(), "the reply was taken");
            out.extend_from_slice(b"+B\r\n");
            assert!(defer(&outbox, &mut out).await);
            let mut buf = [0u8; 16];
            // Loopback delivers inside `send`: had either been written, it would be here.
            match client.try_read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                other => panic!("written before the pass ended: {other:?}"),
            }
            idle().await;
            let mut got = [0u8; 8];
            tokio::time::timeout(WAIT, client.read_exact(&mut got))
                .await
                .expect("written once the thread parked")
                .expect("read");
            assert_eq!(&got, b"+A\r\n+B\r\n");
        });
    }

    #[test]
    fn a_thread_whose_runtime_has_no_hook_writes_itself() {
        runtime(false).block_on(async {
            idle().await;
            let (outbox, _rd, _client) = pair().await;
            let mut out = BytesMut::from(&b"+OK\r\n"[..]);
            assert!(!defer(&outbox, &mut out).await);
            assert_eq!(&out[..], b"+OK\r\n", "left to the caller");
        });
    }

    #[test]
    fn appended_replies_follow_deferred_ones_or_fall_to_the_connection_without_a_pass() {
        runtime(true).block_on(async {
            idle().await;
            let (outbox, _rd, mut client) = pair().await;
            let mut out = BytesMut::from(&b"+A\r\n"[..]);
            assert!(defer(&outbox, &mut out).await);
            assert_eq!(outbox.append(|buf| buf.extend_from_slice(b"+B\r\n")), 4);
            assert!(!outbox.in_trouble());
            idle().await;
            let mut got = [0u8; 8];
            tokio::time::timeout(WAIT, client.read_exact(&mut got))
                .await
                .expect("written once the thread parked")
                .expect("read");
            assert_eq!(&got, b"+A\r\n+B\r\n");
        });
        // A round on a thread without a pass (the apply thread) leaves the write to the
        // connection: the outbox is flagged and what was appended comes back in front.
        // (A thread of its own: this one has run the hook above.)
        std::thread::spawn(|| {
            runtime(false).block_on(async {
                let (outbox, _rd, _client) = pair().await;
                outbox.append(|buf| buf.extend_from_slice(b"+C\r\n"));
                assert!(outbox.in_trouble());
                let mut out = BytesMut::from(&b"+D\r\n"[..]);
                assert!(outbox.take(&mut out).is_some());
                assert_eq!(&out[..], b"+C\r\n+D\r\n");
            })
        })
        .join()
        .expect("the thread without a pass");
    }

    #[test]
    fn what_the_socket_does_not_take_comes_back_in_order() {
        runtime(true).block_on(async {
            idle().await;
            let (outbox, _rd, mut client) = pair().await;
            // Far more than loopback's socket buffers hold while the client reads nothing.
            let big: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
            let mut out = BytesMut::from(&big[..]);
            assert!(defer(&outbox, &mut out).await);
            let trouble = std::future::poll_fn(|_| {
                if outbox.in_trouble() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            });
            tokio::time::timeout(WAIT, trouble)
                .await
                .expect("the flush reports what the socket did not take");
            // Trouble stops deferring: the connection writes the rest itself.
            let mut more = BytesMut::from(&b"+PONG\r\n"[..]);
            assert!(!defer(&outbox, &mut more).await);
            let mut wr = outbox.take(&mut more).expect("the socket");
            assert!(more.len() < big.len() + 7, "part was written");
            assert!(more.ends_with(b"+PONG\r\n"));
            let reader = tokio::spawn(async move {
                let mut got = vec![0u8; 32 << 20 | 7];
                client.read_exact(&mut got).await.map(|_| got)
            });
            wr.write_all(&more).await.expect("rest written");
            outbox.put_back(wr);
            let got = tokio::time::timeout(WAIT, reader)
                .await
                .expect("reader done")
                .expect("reader task")
                .expect("read");
            assert!(got[..big.len()] == big[..], "the reply came back changed");
            assert_eq!(&got[big.len()..], b"+PONG\r\n");
        });
    }
}
