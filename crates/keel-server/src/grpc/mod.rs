//! The gRPC front-end (package `keel.v1`, generated in the keel-proto crate): typed
//! multi-key reads and writes ([`kv`]) and optimistic transactions ([`txn`]) on the
//! same keys RESP serves.
//!
//! Like every front-end it never touches storage: writes go through
//! `Coordinator::write` as log entries (WAL, replay, apply hooks), reads run on engine
//! snapshots. Server-held state (open transactions, scan snapshots) sits in bounded,
//! idle-expiring [`handles`] tables swept by a background task. Every service sits
//! behind the [`auth`] interceptor; server reflection (v1 and v1alpha) is served from
//! the descriptor set keel-proto embeds. Started by `server::Server` on `grpc-port`
//! (same bind address as RESP) unless `grpc-enabled` is false.

pub mod auth;
pub mod calls;
pub mod handles;
pub mod kv;
pub mod selector;
pub mod status;
pub mod txn;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use keel_engine::txn::Txn;
use keel_engine::Engine;
use keel_proto::v1::kv_server::KvServer;
use keel_proto::v1::txn_server::TxnServer;
use keel_proto::v1::KeySelector;
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;

use crate::server::Shared;
use handles::HandleTable;

/// A Kv.Scan's server-held state: its snapshot and what it scans.
pub struct ScanSnapshot {
    /// A read-only transaction: the snapshot and the engine's merged string scan.
    pub txn: Txn,
    /// The db of the first call.
    pub db: u32,
    /// The selector of the first call.
    pub selector: Option<KeySelector>,
    /// The bounds it names.
    pub bounds: selector::Bounds,
    /// Expiry is judged at the first call's time, so every page sees one point in time.
    pub now_ms: u64,
}

/// What the gRPC services share.
pub struct GrpcState {
    /// The server's shared state (config, coordinator, counters).
    pub shared: Arc<Shared>,
    /// Open transactions.
    pub txns: HandleTable<txn::OpenTxn>,
    /// Open Kv.Scan snapshots.
    pub scans: HandleTable<ScanSnapshot>,
    /// Calls per method.
    pub calls: calls::CallCounters,
}

impl GrpcState {
    /// State for a server over `shared`, sized by its gRPC configuration.
    pub fn new(shared: Arc<Shared>) -> Self {
        let (max, idle) = {
            let c = shared.config.read();
            (c.grpc.max_txns, c.grpc.txn_timeout)
        };
        GrpcState {
            shared,
            txns: HandleTable::new(max, idle),
            scans: HandleTable::new(max, idle),
            calls: Default::default(),
        }
    }

    /// The engine (reads on snapshots).
    pub fn engine(&self) -> &Engine {
        self.shared.coord.engine()
    }
}

/// How often expired handles are swept: often enough that an abandoned transaction's
/// snapshot is released soon after its timeout.
fn sweep_period(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Serves keel.v1 (and reflection) on `listener` until `shutdown` resolves, then lets
/// in-flight calls finish.
pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let max_msg = shared.config.read().grpc.max_message_bytes;
    let auth = auth::Auth::new(Arc::clone(&shared.acl));
    let st = Arc::new(GrpcState::new(Arc::clone(&shared)));
    let kv = KvServer::new(kv::KvService::new(Arc::clone(&st)))
        .max_decoding_message_size(max_msg)
        .max_encoding_message_size(max_msg);
    let txn = TxnServer::new(txn::TxnService::new(Arc::clone(&st)))
        .max_decoding_message_size(max_msg)
        .max_encoding_message_size(max_msg);
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(keel_proto::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1();
    let reflection_v1alpha = reflection().build_v1alpha();
    let sweeper = tokio::spawn(sweep_loop(Arc::clone(&st)));
    let result = match (reflection_v1, reflection_v1alpha) {
        (Ok(r1), Ok(r1a)) => {
            tonic::transport::Server::builder()
                .add_service(InterceptedService::new(kv, auth.clone()))
                .add_service(InterceptedService::new(txn, auth.clone()))
                .add_service(InterceptedService::new(r1, auth.clone()))
                .add_service(InterceptedService::new(r1a, auth))
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    shutdown,
                )
                .await
        }
        (Err(e), _) | (_, Err(e)) => {
            // The descriptor set is compiled in, so this is a build defect: serve without
            // reflection rather than not at all.
            tracing::error!(error = %e, "gRPC reflection unavailable");
            tonic::transport::Server::builder()
                .add_service(InterceptedService::new(kv, auth.clone()))
                .add_service(InterceptedService::new(txn, auth))
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    shutdown,
                )
                .await
        }
    };
    sweeper.abort();
    result
}

async fn sweep_loop(st: Arc<GrpcState>) {
    let period = sweep_period(st.txns.idle());
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (t, s) = (st.txns.sweep(), st.scans.sweep());
        if t > 0 {
            tracing::debug!(expired = t, "gRPC transactions expired");
        }
        if s > 0 {
            tracing::debug!(expired = s, "gRPC scan snapshots expired");
        }
    }
}
