//! Server-held handles that expire when idle: open transactions and scan snapshots.
//!
//! A table maps an opaque random token to a shared value. It holds at most `max`
//! entries; an entry unused for longer than `idle` is gone (checked on every lookup, so
//! expiry never depends on the sweep's timing, and removed by [`HandleTable::sweep`],
//! which a background task runs). Every value pins a storage snapshot, so both bounds
//! keep old MVCC versions from piling up behind abandoned clients.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::RngCore;

/// Why an insert was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many open handles (limit {max})")]
pub struct TableFull {
    /// The limit.
    pub max: usize,
}

struct Slot<T> {
    value: Arc<T>,
    last_used: Instant,
}

/// A bounded table of idle-expiring handles.
pub struct HandleTable<T> {
    slots: Mutex<HashMap<String, Slot<T>>>,
    idle: Duration,
    max: usize,
}

impl<T> HandleTable<T> {
    /// An empty table of at most `max` entries that expire after `idle`.
    pub fn new(max: usize, idle: Duration) -> Self {
        HandleTable {
            slots: Mutex::new(HashMap::new()),
            idle,
            max,
        }
    }

    /// The idle timeout.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Stores `value` under a fresh token; expired entries are dropped first when full.
    pub fn insert(&self, value: T) -> Result<String, TableFull> {
        self.insert_arc(Arc::new(value))
    }

    /// [`HandleTable::insert`] of a value already shared.
    pub fn insert_arc(&self, value: Arc<T>) -> Result<String, TableFull> {
        let token = new_token();
        let now = Instant::now();
        let mut slots = self.slots.lock();
        if slots.len() >= self.max {
            slots.retain(|_, s| now.duration_since(s.last_used) <= self.idle);
            if slots.len() >= self.max {
                return Err(TableFull { max: self.max });
            }
        }
        slots.insert(
            token.clone(),
            Slot {
                value,
                last_used: now,
            },
        );
        Ok(token)
    }

    /// The live value under `token`, marking it used.
    pub fn get(&self, token: &str) -> Option<Arc<T>> {
        let now = Instant::now();
        let mut slots = self.slots.lock();
        let slot = slots.get_mut(token)?;
        if now.duration_since(slot.last_used) > self.idle {
            slots.remove(token);
            return None;
        }
        slot.last_used = now;
        Some(Arc::clone(&slot.value))
    }

    /// Takes the value under `token` out of the table (None when unknown or expired).
    pub fn remove(&self, token: &str) -> Option<Arc<T>> {
        let slot = self.slots.lock().remove(token)?;
        (slot.last_used.elapsed() <= self.idle).then_some(slot.value)
    }

    /// Drops every expired entry; returns how many went.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let expired: Vec<Slot<T>> = {
            let mut slots = self.slots.lock();
            let keys: Vec<String> = slots
                .iter()
                .filter(|(_, s)| now.duration_since(s.last_used) > self.idle)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| slots.remove(k)).collect()
        };
        // Values (and the snapshots they pin) are released outside the lock.
        expired.len()
    }

    /// Entries currently held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.slots.lock().len()
    }

    /// True when the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// 128 random bits in hex: unguessable, so one client cannot use another's handle.
fn new_token() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_expiring() {
        let t = HandleTable::new(2, Duration::from_millis(30));
        let a = t.insert(1).expect("first");
        let b = t.insert(2).expect("second");
        assert_ne!(a, b);
        assert_eq!(t.insert(3), Err(TableFull { max: 2 }));
        assert_eq!(t.get(&a).as_deref(), Some(&1));
        assert_eq!(t.remove(&b).as_deref(), Some(&2));
        assert!(t.get(&b).is_none(), "removed");
        assert!(t.get("nope").is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.get(&a).is_none(), "idle past the timeout");
        let c = t.insert(4).expect("room again");
        let d = t.insert(5).expect("room again");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.sweep(), 2);
        assert!(t.is_empty());
        assert!(t.get(&c).is_none() && t.get(&d).is_none());
    }
}
