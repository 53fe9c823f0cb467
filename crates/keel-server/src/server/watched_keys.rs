//! WATCH: which clients watch which (db, key), and the apply hook that marks them dirty.
//!
//! The hook runs inside the write funnel after every entry, and EXEC's `Op::Multi` is a
//! guarded write checked under the same funnel lock, so "dirty" is decided in log order: a
//! write applied before the transaction always aborts it, one applied after never does.
//!
//! Expiry: a key that existed at WATCH time and is deleted by expiry makes the watch
//! dirty (Redis 7); deleting a key that was already expired when it was watched (a
//! "stale" key) does not, as nothing a client could see changed. A key that expired but
//! has not been deleted yet is found by EXEC's own check ([`WatchSet::expired_since`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use keel_engine::{Applied, Engine, Op, Reply};
use parking_lot::Mutex;

use crate::clock::unix_now_ms;

/// One client's watch on one key.
#[derive(Debug, Clone)]
struct Watcher {
    client: u64,
    dirty: Arc<AtomicBool>,
    /// The key was live when WATCH ran.
    existed: bool,
}

/// Every (db, key) somebody watches, shared by all connections and the apply hook.
#[derive(Debug, Default)]
pub struct WatchRegistry {
    keys: Mutex<HashMap<(u8, Bytes), Vec<Watcher>>>,
    /// `keys.len()`, stored under the lock by every change, so that the hook skips the
    /// lock while nobody watches (see [`WatchRegistry::on_applied`]).
    watched: AtomicUsize,
}

impl WatchRegistry {
    /// Marks the watchers of every key `applied` touched as dirty.
    pub fn on_applied(&self, op: &Op, applied: &Applied) {
        if applied.touched.is_empty() {
            return;
        }
        // Sequentially consistent with the store in `add`: a write whose hook reads 0
        // here comes before the watch in that order, as it would had it taken the lock
        // first. The lock's acquire and release were two atomic read-modify-writes per
        // write, a barrier each (~1% of LPUSH -P 16's cycles).
        if self.watched.load(Ordering::SeqCst) == 0 {
            return;
        }
        let expiry = matches!(op, Op::ExpireDue { .. } | Op::ExpireCycle { .. });
        let keys = self.keys.lock();
        for (db, key) in &applied.touched {
            let Some(ws) = keys.get(&(*db, Bytes::copy_from_slice(key))) else {
                continue;
            };
            for w in ws {
                if !expiry || w.existed {
                    w.dirty.store(true, Ordering::Release);
                }
            }
        }
    }

    /// The key turned out live when `client` watched it: its expiry counts.
    fn mark_present(&self, db: u8, key: &Bytes, client: u64) {
        if let Some(ws) = self.keys.lock().get_mut(&(db, key.clone())) {
            for w in ws.iter_mut().filter(|w| w.client == client) {
                w.existed = true;
            }
        }
    }

    fn add(&self, db: u8, key: Bytes, w: Watcher) {
        let mut keys = self.keys.lock();
        keys.entry((db, key)).or_default().push(w);
        self.watched.store(keys.len(), Ordering::SeqCst);
    }

    fn remove(&self, client: u64, watched: &[WatchedKey]) {
        let mut keys = self.keys.lock();
        for wk in watched {
            let k = (wk.db, wk.key.clone());
            if let Some(ws) = keys.get_mut(&k) {
                ws.retain(|w| w.client != client);
                if ws.is_empty() {
                    keys.remove(&k);
                }
            }
        }
        self.watched.store(keys.len(), Ordering::SeqCst);
    }

    /// Keys watched by anyone (for tests and INFO).
    pub fn len(&self) -> usize {
        self.keys.lock().len()
    }

    /// True when nobody watches anything.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One watched key as its client remembers it.
#[derive(Debug, Clone)]
struct WatchedKey {
    db: u8,
    key: Bytes,
    /// It had a TTL when watched: EXEC checks whether it has expired since.
    had_ttl: bool,
}

/// A client's watches.
#[derive(Debug, Default)]
pub struct WatchSet {
    keys: Vec<WatchedKey>,
    dirty: Arc<AtomicBool>,
}

impl WatchSet {
    /// True if nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The flag the apply hook sets; EXEC's guarded write aborts on it.
    pub fn dirty_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.dirty)
    }

    /// Watches `key` of `db` for `client`; `engine` tells whether it is live now.
    /// Returns keys found expired, for the caller to log their deletion.
    pub fn watch(
        &mut self,
        reg: &WatchRegistry,
        engine: &Engine,
        client: u64,
        db: u8,
        key: Bytes,
    ) -> Vec<(u8, Bytes)> {
        if self.keys.iter().any(|w| w.db == db && w.key == key) {
            return Vec::new();
        }
        // Read, register, read again: a change after registration is caught by the
        // hook; the second read catches a key created in between (live after all).
        let (before, mut expired) = pttl(engine, db, &key);
        reg.add(
            db,
            key.clone(),
            Watcher {
                client,
                dirty: Arc::clone(&self.dirty),
                existed: before != -2,
            },
        );
        let (after, more) = pttl(engine, db, &key);
        expired.extend(more);
        if before == -2 && after != -2 {
            reg.mark_present(db, &key, client);
        }
        let pttl = if after == -2 { before } else { after };
        self.keys.push(WatchedKey {
            db,
            key,
            had_ttl: pttl >= 0,
        });
        expired
    }

    /// True if a key that had a TTL when watched is gone now (expired, possibly not
    /// yet deleted). Returns the keys found expired too, for the caller to log.
    pub fn expired_since(&self, engine: &Engine) -> (bool, Vec<(u8, Bytes)>) {
        let mut gone = false;
        let mut all = Vec::new();
        for w in self.keys.iter().filter(|w| w.had_ttl) {
            let (p, expired) = pttl(engine, w.db, &w.key);
            gone |= p == -2;
            all.extend(expired);
        }
        (gone, all)
    }

    /// Forgets every watch (UNWATCH, EXEC, DISCARD, RESET, disconnect).
    pub fn clear(&mut self, reg: &WatchRegistry, client: u64) {
        if !self.keys.is_empty() {
            reg.remove(client, &self.keys);
            self.keys.clear();
        }
        // A fresh flag: a hook still holding the old one cannot dirty the next WATCH.
        self.dirty = Arc::default();
    }
}

/// PTTL of `key` now (-2 absent, -1 no TTL) and the keys the read found expired.
fn pttl(engine: &Engine, db: u8, key: &Bytes) -> (i64, Vec<(u8, Bytes)>) {
    let args = [Bytes::from_static(b"PTTL"), key.clone()];
    match engine.read(db, unix_now_ms(), &args) {
        Ok(r) => match r.reply {
            Reply::Int(n) => (n, r.expired),
            _ => (-2, r.expired),
        },
        Err(e) => {
            tracing::warn!(error = %e, "WATCH: reading the key's TTL failed");
            (-2, Vec::new())
        }
    }
}
