//! Per-connection state ([`ClientState`], owned by the connection task) and the
//! registry of connected clients ([`ClientRegistry`], shared: INFO clients, maxclients,
//! and later CLIENT LIST/KILL).
//!
//! Extension points: MULTI queues, the WATCH set, subscriptions and blocking state
//! belong in [`ClientState`] (add fields; `reset` must clear them for RESET); what
//! other connections need to see or signal (CLIENT LIST fields, CLIENT KILL, pub/sub
//! delivery, unblocking) belongs in [`ClientHandle`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::acl::UserSlot;
use crate::resp::Protocol;

/// Client flags (Redis's CLIENT LIST letters come from these later).
pub mod client_flags {
    /// Closed after the reply to the current request (QUIT).
    pub const CLOSE_AFTER_REPLY: u32 = 1 << 0;
    /// Inside MULTI (reserved for the transactions helper).
    pub const MULTI: u32 = 1 << 1;
    /// In subscribe mode (reserved for pub/sub).
    pub const PUBSUB: u32 = 1 << 2;
    /// Blocked in a blocking command (reserved).
    pub const BLOCKED: u32 = 1 << 3;
}

/// The shared, cross-connection view of one client.
#[derive(Debug)]
pub struct ClientHandle {
    /// Unique id (CLIENT ID).
    pub id: u64,
    /// Peer address.
    pub addr: SocketAddr,
    /// When it connected ([`crate::clock::mono_ns`]).
    pub created_ns: u64,
    /// Selected database (mirrored for CLIENT LIST).
    pub db: AtomicU8,
    /// CLIENT SETNAME / HELLO SETNAME.
    pub name: Mutex<Option<String>>,
    /// Last command time, ms since `created_ns`.
    pub last_interaction_ms: AtomicU64,
    /// Signalled to close the connection (CLIENT KILL, shutdown).
    pub kill: Notify,
    /// CLIENT LIST details and CLIENT switches.
    pub admin: super::client_admin::ClientAdmin,
    /// Its push queue, for messages other clients send it (client-side caching
    /// redirects); set once its state is made.
    pub pushes: std::sync::OnceLock<std::sync::Weak<super::pubsub::Sink>>,
    /// The ACL user it is authenticated as (CLIENT LIST, CLIENT KILL USER, ACL
    /// DELUSER); set once its state is made.
    pub user: Mutex<Option<Arc<UserSlot>>>,
}

impl ClientHandle {
    /// Records activity at `now_ns` (a [`crate::clock::mono_ns`] reading the caller
    /// already made).
    pub fn touch_at(&self, now_ns: u64) {
        let ms = now_ns.saturating_sub(self.created_ns) / 1_000_000;
        self.last_interaction_ms.store(ms, Ordering::Relaxed);
    }

    /// Milliseconds since the client connected.
    pub fn age_ms(&self) -> u64 {
        crate::clock::mono_ns().saturating_sub(self.created_ns) / 1_000_000
    }
}

/// State owned by one connection task.
#[derive(Debug)]
pub struct ClientState {
    /// The shared view.
    pub handle: Arc<ClientHandle>,
    /// Selected database.
    pub db: u8,
    /// Protocol negotiated by HELLO.
    pub protocol: Protocol,
    /// AUTH passed (or the default user needs no password).
    pub authenticated: bool,
    /// The ACL user its commands are checked against.
    pub user: Arc<UserSlot>,
    /// Bitset of [`client_flags`].
    pub flags: u32,
    /// MULTI queue and WATCHed keys (see `server::multi`).
    pub txn: super::multi::TxnState,
    /// Subscriptions, MONITOR and the push queue (`server::pubsub`).
    pub pubsub: super::pubsub::ClientPubSub,
    /// Client-side caching settings while tracking is on (`server::tracking`).
    pub tracking: Option<Arc<super::tracking::Tracker>>,
    /// CLIENT CACHING yes/no came right before the command being run.
    pub caching: bool,
}

impl ClientState {
    /// Fresh state as `user` (the default user); `authenticated` unless it needs AUTH.
    pub fn new(handle: Arc<ClientHandle>, user: Arc<UserSlot>, needs_auth: bool) -> Self {
        *handle.user.lock() = Some(Arc::clone(&user));
        ClientState {
            pubsub: super::pubsub::ClientPubSub::new(Arc::clone(&handle)),
            handle,
            db: 0,
            protocol: Protocol::Resp2,
            authenticated: !needs_auth,
            user,
            flags: 0,
            txn: Default::default(),
            tracking: None,
            caching: false,
        }
    }

    /// RESET: back to a fresh connection's state (keeps the id), as `user`.
    pub fn reset(&mut self, user: Arc<UserSlot>, needs_auth: bool) {
        self.db = 0;
        self.handle.db.store(0, Ordering::Relaxed);
        self.protocol = Protocol::Resp2;
        self.authenticated = !needs_auth;
        self.set_user(user);
        self.flags = 0;
        *self.handle.name.lock() = None;
        self.handle.admin.reset();
    }

    /// Authenticated as `user` (AUTH, HELLO AUTH).
    pub fn set_user(&mut self, user: Arc<UserSlot>) {
        *self.handle.user.lock() = Some(Arc::clone(&user));
        self.user = user;
    }

    /// Selects database `db`.
    pub fn select(&mut self, db: u8) {
        self.db = db;
        self.handle.db.store(db, Ordering::Relaxed);
    }
}

/// Every connected client.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    clients: Mutex<HashMap<u64, Arc<ClientHandle>>>,
    next_id: AtomicU64,
}

impl ClientRegistry {
    /// Registers a new client from `addr`.
    pub fn add(&self, addr: SocketAddr) -> Arc<ClientHandle> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let h = Arc::new(ClientHandle {
            id,
            addr,
            created_ns: crate::clock::mono_ns(),
            db: AtomicU8::new(0),
            name: Mutex::new(None),
            last_interaction_ms: AtomicU64::new(0),
            kill: Notify::new(),
            admin: Default::default(),
            pushes: std::sync::OnceLock::new(),
            user: Mutex::new(None),
        });
        self.clients.lock().insert(id, Arc::clone(&h));
        h
    }

    /// The connected client `id`.
    pub fn get(&self, id: u64) -> Option<Arc<ClientHandle>> {
        self.clients.lock().get(&id).cloned()
    }

    /// Removes client `id`.
    pub fn remove(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    /// Connected clients.
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    /// True when nobody is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the handles (for CLIENT LIST and shutdown).
    pub fn all(&self) -> Vec<Arc<ClientHandle>> {
        self.clients.lock().values().cloned().collect()
    }
}
