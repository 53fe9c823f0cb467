//! The RESP front-end: the TCP listener ([`Server`]), one task per connection
//! ([`conn`]), per-connection state ([`client`]) and the server's own commands
//! ([`commands`]), which share one lookup with the engine's data commands.
//!
//! Where other features hook in:
//! - MULTI/EXEC/WATCH ([`multi`], [`watched_keys`], `commands/transaction.rs`): the
//!   queue lives in `ClientState::txn`, `Session::execute` queues before dispatch, EXEC
//!   sends one guarded `Op::Multi` that the write funnel aborts when a watched key
//!   changed (an apply hook marks watchers dirty from `Applied::touched`).
//! - Blocking pops ([`blocking`]): `Session::execute` parks the client in
//!   `Session::blocked`, the connection loop waits (still reading its socket), and the
//!   same apply hook wakes the first waiter of each touched key.
//! - Pub/sub, keyspace notifications and MONITOR ([`pubsub`], `commands/pubsub_cmd.rs`):
//!   a registry in `Shared::pubsub`, per-client state in `ClientState::pubsub` with a
//!   bounded push queue the connection task selects on beside its reads (output buffer
//!   limits disconnect slow subscribers), and an apply-thread event hook.
//! - INFO / CONFIG / CLIENT: `commands/info.rs`, `commands/config_cmd.rs`,
//!   `client::ClientRegistry`.

pub mod acl;
pub mod admin_hooks;
pub mod blocking;
pub mod client;
pub mod client_admin;
pub mod closing;
pub mod commands;
pub mod conn;
pub mod gate;
pub mod io_threads;
pub mod multi;
pub mod outbox;
pub mod pause;
pub mod pubsub;
pub mod pushes;
pub mod secrets;
pub mod slowlog;
pub mod stats;
pub mod striped;
pub mod tracking;
pub mod unawaited;
pub mod watched_keys;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::coordinator::{Coordinator, StartError};
use client::ClientRegistry;

/// How long shutdown waits for connections to finish their in-flight commands.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Recovery failed.
    #[error("recovery failed: {0}")]
    Start(#[from] StartError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The `io-threads` threads could not be started.
    #[error("cannot start the I/O threads: {0}")]
    IoThreads(std::io::Error),
    /// The ACL file could not be loaded.
    #[error("cannot load the ACL file: {0}")]
    Acl(#[from] acl::AclFileError),
    /// WAL or storage did not close cleanly.
    #[error("shutdown: {0}")]
    Shutdown(String),
}

/// Server-wide counters (INFO stats).
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub total_connections: AtomicU64,
    /// Connections refused by maxclients.
    pub rejected_connections: AtomicU64,
    /// Commands processed.
    pub total_commands: striped::StripedU64,
    /// Bytes read from clients.
    pub net_input_bytes: striped::StripedU64,
    /// Bytes written to clients.
    pub net_output_bytes: striped::StripedU64,
}

impl ServerStats {
    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        for c in [&self.total_connections, &self.rejected_connections] {
            c.store(0, Ordering::Relaxed);
        }
        for c in [
            &self.total_commands,
            &self.net_input_bytes,
            &self.net_output_bytes,
        ] {
            c.reset();
        }
    }
}

/// What every connection shares.
pub struct Shared {
    /// The configuration; CONFIG SET changes the runtime-settable fields.
    pub config: Arc<RwLock<Config>>,
    /// The write funnel and the engine.
    pub coord: Coordinator,
    /// Connected clients.
    pub clients: ClientRegistry,
    /// Counters.
    pub stats: ServerStats,
    /// Flips to true when the server stops (connections finish and close).
    pub shutdown: watch::Sender<bool>,
    /// SHUTDOWN's choice: Some(save) once requested.
    pub shutdown_request: Mutex<Option<Option<bool>>>,
    /// The bound address.
    pub local_addr: SocketAddr,
    /// When the server started.
    pub started: Instant,
    /// Worker threads of the runtime the server was bound on (INFO's `runtime_workers`).
    pub runtime_workers: usize,
    /// Redis settings accepted by CONFIG SET but without effect in keel.
    pub ignored_config: Mutex<std::collections::BTreeMap<String, String>>,
    /// Per-command and per-error counters (INFO commandstats/errorstats).
    pub cmd_stats: stats::CommandStats,
    /// SLOWLOG and LATENCY.
    pub slowlog: slowlog::SlowLog,
    /// CLIENT PAUSE.
    pub pause: pause::Pause,
    /// WATCHed keys of every client (marked dirty by an apply hook).
    pub watches: Arc<watched_keys::WatchRegistry>,
    /// Clients blocked in BLPOP and friends (woken by an apply hook).
    pub blocked: Arc<blocking::BlockRegistry>,
    /// Client-side caching: tracked keys and prefixes (`CLIENT TRACKING`).
    pub tracking: Arc<tracking::Tracking>,
    /// Pub/sub subscribers, MONITOR clients, keyspace notifications.
    pub pubsub: Arc<pubsub::PubSub>,
    /// ACL users, ACL LOG and the ACL file.
    pub acl: Arc<acl::Acl>,
}

impl Shared {
    /// Where client-side caching messages go.
    pub fn outlet(&self) -> tracking::Outlet<'_> {
        tracking::Outlet {
            clients: &self.clients,
            pubsub: &self.pubsub,
        }
    }

    /// Asks the server to stop (SHUTDOWN); `save` as [`commands::Outcome::Shutdown`] has it.
    pub fn request_shutdown(&self, save: Option<bool>) {
        let mut g = self.shutdown_request.lock();
        if g.is_none() {
            *g = Some(save);
        }
        let _ = self.shutdown.send(true);
    }
}

/// A recovered node with its listener bound, ready to serve.
pub struct Server {
    shared: Arc<Shared>,
    listener: TcpListener,
    /// The gRPC listener, unless gRPC is turned off.
    grpc: Option<TcpListener>,
    /// The `io-threads` event loops (None: connections run on the shared runtime).
    io: Option<io_threads::IoThreads>,
}

impl Server {
    /// Recovers the node from `config.dir` and binds the listener.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let started = Instant::now();
        let addr = SocketAddr::new(config.bind, config.port);
        let acl = Arc::new(acl::Acl::new(
            config.requirepass.as_deref(),
            config.aclfile.clone(),
            config.acllog_max_len,
        )?);
        let config = Arc::new(RwLock::new(config));
        let cfg = Arc::clone(&config);
        let gates: Arc<dyn keel_engine::gate::CallGates> = Arc::new(acl::gate::AclGates::default());
        let (coord, report) =
            tokio::task::spawn_blocking(move || Coordinator::start_with_gates(cfg, Some(gates)))
                .await
                .map_err(|e| ServerError::Shutdown(format!("recovery task: {e}")))??;
        {
            let c = config.read();
            tracing::info!(
                engine = %c.engine,
                dir = %c.dir.display(),
                appendonly = c.appendonly,
                appendfsync = %c.appendfsync,
                storage_index = report.storage_index,
                recovered_entries = report.replayed,
                last_index = report.last_index,
                took_ms = report.took.as_millis() as u64,
                "recovered"
            );
        }
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(source) => {
                close_after_failed_start(coord).await;
                return Err(ServerError::Bind { addr, source });
            }
        };
        let local_addr = listener.local_addr().unwrap_or(addr);
        let grpc_cfg = {
            let c = config.read();
            c.grpc
                .enabled
                .then(|| SocketAddr::new(c.bind, c.grpc_port()))
        };
        let grpc = match bind_grpc(grpc_cfg).await {
            Ok(g) => g,
            Err(e) => {
                close_after_failed_start(coord).await;
                return Err(e);
            }
        };
        let io_threads = config.read().io_threads;
        let io = match io_threads {
            0 => None,
            n => match io_threads::IoThreads::start(n) {
                Ok(io) => Some(io),
                Err(e) => {
                    close_after_failed_start(coord).await;
                    return Err(ServerError::IoThreads(e));
                }
            },
        };
        let (shutdown, _) = watch::channel(false);
        let pubsub = {
            let c = config.read();
            Arc::new(pubsub::PubSub::new(
                c.client_output_buffer_limit_pubsub,
                c.notify_keyspace_events,
            ))
        };
        coord
            .engine()
            .record_events(pubsub::events_wanted(pubsub.notify_flags()));
        coord
            .engine()
            .access()
            .set_lfu(config.read().maxmemory_policy.is_lfu());
        let ps = Arc::downgrade(&pubsub);
        coord.state().event_hook.set(Box::new(move |events| {
            if let Some(ps) = ps.upgrade() {
                ps.keyspace_events(events);
            }
        }));
        let shared = Arc::new(Shared {
            config,
            coord,
            clients: ClientRegistry::default(),
            stats: ServerStats::default(),
            shutdown,
            shutdown_request: Mutex::new(None),
            local_addr,
            started,
            runtime_workers: tokio::runtime::Handle::current().metrics().num_workers(),
            ignored_config: Mutex::new(Default::default()),
            cmd_stats: Default::default(),
            slowlog: Default::default(),
            pause: Default::default(),
            watches: Arc::default(),
            blocked: Arc::default(),
            tracking: Arc::default(),
            pubsub,
            acl,
        });
        let (watches, blocked, tracking) = (
            Arc::clone(&shared.watches),
            Arc::clone(&shared.blocked),
            Arc::clone(&shared.tracking),
        );
        let refusals_to = Arc::downgrade(&shared);
        shared
            .coord
            .add_apply_hook(Arc::new(move |op, applied, origin| {
                watches.on_applied(op, applied);
                blocked.on_applied(op, applied);
                tracking.on_applied(op, applied, origin);
                // A limited user's script had calls refused: ACL LOG names its client.
                if matches!(op, keel_engine::Op::AsUser { .. }) {
                    if let Some(sh) = refusals_to.upgrade() {
                        acl::gate::log_refusals(&sh, &applied.events, origin);
                    }
                }
            }));
        // The registry is looked at first: upgrading the weak reference is two atomic
        // read-modify-writes, which every round would pay.
        let (weak, tracking) = (Arc::downgrade(&shared), Arc::clone(&shared.tracking));
        shared.coord.state().visible_hook.set(Box::new(move || {
            if tracking.has_pending() {
                if let Some(sh) = weak.upgrade() {
                    sh.tracking.deliver(&sh.outlet());
                }
            }
        }));
        if let Some(g) = grpc.as_ref().and_then(|g| g.local_addr().ok()) {
            tracing::info!(addr = %g, "gRPC API listening on {g}");
        }
        tracing::info!(
            addr = %local_addr,
            workers = shared.runtime_workers,
            io_threads,
            startup_ms = started.elapsed().as_millis() as u64,
            "ready to accept connections on {local_addr}"
        );
        Ok(Server {
            shared,
            listener,
            grpc,
            io,
        })
    }

    /// The address the gRPC listener is bound to (None when gRPC is off).
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().and_then(|g| g.local_addr().ok())
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The shared state (for embedding and tests).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Serves until `signal` resolves or a client sends SHUTDOWN, then stops accepting,
    /// lets connections finish their in-flight commands, commits and closes WAL and
    /// storage.
    pub async fn serve(self, signal: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            shared,
            listener,
            grpc,
            mut io,
        } = self;
        let mut stop = shared.shutdown.subscribe();
        let grpc_task = grpc.map(|l| {
            let mut stop = shared.shutdown.subscribe();
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            tokio::spawn(crate::grpc::serve(Arc::clone(&shared), l, stopped))
        });
        let mut tasks = JoinSet::new();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                _ = &mut signal => {
                    tracing::info!("signal received, shutting down");
                    break;
                }
                _ = stop.wait_for(|s| *s) => break,
                accepted = listener.accept() => {
                    while tasks.try_join_next().is_some() {}
                    match accepted {
                        Ok((sock, peer)) => accept(&shared, &mut tasks, io.as_mut(), sock, peer),
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            }
        }
        drop(listener);
        let _ = shared.shutdown.send(true);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("connections still open after the drain timeout; closing anyway");
            tasks.abort_all();
        }
        if let Some(io) = io {
            let _ = tokio::task::spawn_blocking(move || io.stop()).await;
        }
        if let Some(mut t) = grpc_task {
            match tokio::time::timeout(DRAIN_TIMEOUT, &mut t).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::error!(error = %e, "gRPC server stopped with an error"),
                Ok(Err(e)) => tracing::error!(error = %e, "gRPC server task failed"),
                Err(_) => {
                    tracing::warn!("gRPC calls still running after the drain timeout");
                    t.abort();
                }
            }
        }
        // A signal or a SHUTDOWN without SAVE/NOSAVE takes the configured default.
        let save = shared
            .shutdown_request
            .lock()
            .flatten()
            .unwrap_or_else(|| shared.config.read().saves_on_exit());
        let sh = Arc::clone(&shared);
        let closed = tokio::task::spawn_blocking(move || sh.coord.shutdown(save))
            .await
            .map_err(|e| ServerError::Shutdown(format!("shutdown task: {e}")))?;
        closed.map_err(ServerError::Shutdown)?;
        tracing::info!("keel is now ready to exit, bye bye...");
        Ok(())
    }
}

/// Binds the gRPC listener at `addr` (None: gRPC is off).
async fn bind_grpc(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, ServerError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Closes the coordinator of a server that failed to start.
async fn close_after_failed_start(coord: Coordinator) {
    let closed = tokio::task::spawn_blocking(move || coord.shutdown(false)).await;
    if let Ok(Err(e)) = closed {
        tracing::error!(error = %e, "closing after a failed start");
    }
}

/// Serves an accepted connection: on an I/O thread when there are some, else as a task
/// of the shared runtime.
fn accept(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    io: Option<&mut io_threads::IoThreads>,
    mut sock: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let maxclients = shared.config.read().maxclients;
    if shared.clients.len() >= maxclients {
        shared
            .stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        tasks.spawn(async move {
            let _ = sock
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
            let _ = sock.shutdown().await;
        });
        return;
    }
    shared
        .stats
        .total_connections
        .fetch_add(1, Ordering::Relaxed);
    let _ = sock.set_nodelay(true);
    let handle = shared.clients.add(peer);
    if let Some(io) = io {
        io.serve(shared, tasks, sock, handle, peer);
        return;
    }
    tasks.spawn(run_connection(Arc::clone(shared), sock, handle));
}

/// Serves one connection, then takes it off the client registry.
async fn run_connection(
    shared: Arc<Shared>,
    sock: tokio::net::TcpStream,
    handle: Arc<client::ClientHandle>,
) {
    let id = handle.id;
    conn::serve_connection(Arc::clone(&shared), sock, handle).await;
    shared.clients.remove(id);
}

/// Recovers, binds and serves until `signal` resolves or SHUTDOWN (see
/// [`Server::serve`]).
pub async fn run(config: Config, signal: impl Future<Output = ()>) -> Result<(), ServerError> {
    Server::bind(config).await?.serve(signal).await
}
