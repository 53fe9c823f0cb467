//! SCAN-family cursors on an ordered keyspace. A cursor is a number (clients parse it as
//! one) that names the last key returned; the table maps numbers to resume keys. Resuming
//! strictly after the last returned key in key order returns every element present for
//! the whole scan at least once, whatever writes happen in between. A cursor evicted from
//! the bounded table restarts the scan: duplicates, never misses.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use parking_lot::Mutex;

/// Most cursors remembered at once; older ones are forgotten first.
pub const MAX_CURSORS: usize = 16 * 1024;

/// The cursor table shared by the readers of one engine.
#[derive(Debug, Default)]
pub struct CursorTable {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    map: HashMap<u64, Bytes>,
    order: VecDeque<u64>,
}

impl CursorTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `resume_after` and returns its cursor number (never 0).
    pub fn save(&self, resume_after: Bytes) -> u64 {
        let mut g = self.inner.lock();
        g.next = g.next.wrapping_add(1).max(1);
        let id = g.next;
        g.map.insert(id, resume_after);
        g.order.push_back(id);
        while g.order.len() > MAX_CURSORS {
            if let Some(old) = g.order.pop_front() {
                g.map.remove(&old);
            }
        }
        id
    }

    /// The resume key of `cursor` (None for 0 or a forgotten cursor: start over).
    pub fn resume(&self, cursor: u64) -> Option<Bytes> {
        if cursor == 0 {
            return None;
        }
        self.inner.lock().map.get(&cursor).cloned()
    }
}

/// Parses a cursor argument as Redis does ("ERR invalid cursor" on garbage).
pub fn parse_cursor(b: &[u8]) -> Result<u64, crate::reply::Reply> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| crate::reply::Reply::err("ERR invalid cursor"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_resume_and_bound() {
        let t = CursorTable::new();
        let c = t.save(Bytes::from_static(b"k1"));
        assert_ne!(c, 0);
        assert_eq!(t.resume(c), Some(Bytes::from_static(b"k1")));
        assert_eq!(t.resume(0), None);
        for i in 0..MAX_CURSORS {
            t.save(Bytes::from(format!("x{i}")));
        }
        assert_eq!(t.resume(c), None, "oldest cursor forgotten");
        assert!(parse_cursor(b"12").is_ok());
        assert!(parse_cursor(b"-1").is_err());
    }
}
