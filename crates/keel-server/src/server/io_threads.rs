//! `io-threads N`: connections served by N threads that each run their own event loop
//! (a single-threaded runtime with its own epoll) and keep every connection given to
//! them, instead of the shared runtime, whose workers share one poller and steal tasks
//! from each other.
//!
//! Why it is an option and not the default (measured in docs/benchmarks-history.md,
//! "I/O threads"): with `io-threads 2` on a 2-core machine that also runs redis-benchmark,
//! pipelined throughput (-P 16) rose by 9-26% for the write tests (`bench/ab.sh`),
//! because the machine stood idle 15% of the time instead of 24%; but when a thread is
//! preempted its connections wait for it, nobody steals them, and the p99 at pipeline 1
//! was 1.3-2x as long. A
//! server whose cores are its own gains the first and not the second.
//!
//! Connections are dealt round-robin at accept. The socket is taken off the accepting
//! runtime's poller and registered with its thread's on that thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::client::ClientHandle;
use super::{run_connection, Shared};

/// Most I/O threads `io-threads` accepts.
pub const MAX_IO_THREADS: usize = 128;

/// The running I/O threads.
pub(super) struct IoThreads {
    handles: Vec<Handle>,
    /// Dropping one ends its thread's event loop.
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    next: usize,
}

impl IoThreads {
    /// Starts `n` threads (named keel-io-0, keel-io-1, ...), each with its runtime.
    pub fn start(n: usize) -> std::io::Result<IoThreads> {
        let mut io = IoThreads {
            handles: Vec::with_capacity(n),
            stops: Vec::with_capacity(n),
            threads: Vec::with_capacity(n),
            next: 0,
        };
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_park(super::outbox::end_of_pass)
                .build()?;
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            io.handles.push(rt.handle().clone());
            // On an error the threads started so far stop when `io` is dropped.
            let thread = std::thread::Builder::new()
                .name(format!("keel-io-{i}"))
                .spawn(move || {
                    // Connection tasks run while this waits; a closed sender ends it.
                    let _ = rt.block_on(stop_rx);
                })?;
            io.stops.push(stop_tx);
            io.threads.push(thread);
        }
        Ok(io)
    }

    /// Serves `sock` on the next thread; the task joins `tasks` (drained at shutdown).
    pub fn serve(
        &mut self,
        shared: &Arc<Shared>,
        tasks: &mut JoinSet<()>,
        sock: tokio::net::TcpStream,
        handle: Arc<ClientHandle>,
        peer: SocketAddr,
    ) {
        let id = handle.id;
        let sock = match sock.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, %peer, "cannot hand the connection to an I/O thread");
                shared.clients.remove(id);
                return;
            }
        };
        let rt = &self.handles[self.next % self.handles.len()];
        self.next = self.next.wrapping_add(1);
        let sh = Arc::clone(shared);
        tasks.spawn_on(
            async move {
                // Registers the socket with this thread's poller.
                match tokio::net::TcpStream::from_std(sock) {
                    Ok(sock) => run_connection(sh, sock, handle).await,
                    Err(e) => {
                        tracing::warn!(error = %e, %peer, "cannot register the connection");
                        sh.clients.remove(id);
                    }
                }
            },
            rt,
        );
    }

    /// Ends the threads' event loops (dropping what still runs on them) and waits for
    /// the threads. Blocking: call it off the async runtime.
    pub fn stop(mut self) {
        self.stops.clear();
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("an I/O thread panicked");
            }
        }
    }
}
