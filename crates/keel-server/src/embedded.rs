//! A keel server on its own thread and runtime, for embedding and for tests: started
//! with [`EmbeddedServer::start`], stopped (cleanly, like SHUTDOWN) by
//! [`EmbeddedServer::stop`] or on drop.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Config, Server, ServerError};

/// Why an embedded server did not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The server failed to bind or recover.
    #[error("{0}")]
    Server(#[from] ServerError),
    /// The runtime or the thread could not be created.
    #[error("cannot start the server thread: {0}")]
    Thread(std::io::Error),
    /// It neither listened nor failed within the wait.
    #[error("the server did not start within {0:?}")]
    Timeout(Duration),
    /// The server thread panicked.
    #[error("the server thread panicked")]
    Panicked,
}

type Addrs = (SocketAddr, Option<SocketAddr>);

/// A running server; its addresses are known once `start` returns.
pub struct EmbeddedServer {
    addr: SocketAddr,
    grpc_addr: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServerError>>>,
}

impl EmbeddedServer {
    /// Binds and recovers `cfg` on a new thread with a `workers`-thread runtime, waiting
    /// at most `wait` for it to listen. Port 0 (RESP or gRPC) picks a free port.
    pub fn start(cfg: Config, workers: usize, wait: Duration) -> Result<Self, EmbedError> {
        let (addr_tx, addr_rx) = mpsc::channel::<Addrs>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("keel-embedded".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers.max(1))
                    .thread_name("keel-net")
                    .on_thread_park(crate::server::outbox::end_of_pass)
                    .enable_all()
                    .build()
                    .map_err(|e| ServerError::Shutdown(format!("runtime: {e}")))?;
                rt.block_on(async move {
                    let server = Server::bind(cfg).await?;
                    let _ = addr_tx.send((server.local_addr(), server.grpc_addr()));
                    server
                        .serve(async {
                            let _ = stop_rx.await;
                        })
                        .await
                })
            })
            .map_err(EmbedError::Thread)?;
        match addr_rx.recv_timeout(wait) {
            Ok((addr, grpc_addr)) => Ok(EmbeddedServer {
                addr,
                grpc_addr,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            // The thread ended before listening: its result says why.
            Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
                Ok(Err(e)) => Err(EmbedError::Server(e)),
                Ok(Ok(())) | Err(_) => Err(EmbedError::Panicked),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {
                drop(stop_tx);
                Err(EmbedError::Timeout(wait))
            }
        }
    }

    /// The RESP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gRPC address (None when the configuration turned gRPC off).
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
    }

    /// Stops the server and returns how its shutdown went.
    pub fn stop(mut self) -> Result<(), EmbedError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), EmbedError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => match t.join() {
                Ok(r) => r.map_err(EmbedError::Server),
                Err(_) => Err(EmbedError::Panicked),
            },
            None => Ok(()),
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}
