//! Case-insensitive lookup of command names without allocation.
//!
//! Every request looks its command up (the front-end to dispatch, the engine again when
//! it applies the log entry), so the lookup is on the hot path: the name is lower-cased
//! into a stack buffer and hashed with FNV-1a. The table is fixed at start-up, so a
//! client choosing names cannot degrade it (there is nothing to flood).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Longest name the table can hold; longer inputs are never a command.
const MAX_NAME: usize = 32;

/// FNV-1a, 64 bit: a few instructions per byte for names of a few bytes.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A fixed map from lower-case names to values, looked up case-insensitively.
#[derive(Debug)]
pub struct NameTable<T> {
    map: HashMap<&'static [u8], T, BuildHasherDefault<Fnv>>,
}

impl<T: Copy> NameTable<T> {
    /// Builds the table; names longer than the lookup buffer are skipped.
    pub fn new(entries: impl IntoIterator<Item = (&'static str, T)>) -> Self {
        let map = entries
            .into_iter()
            .filter(|(n, _)| n.len() <= MAX_NAME)
            .map(|(n, v)| (n.as_bytes(), v))
            .collect();
        NameTable { map }
    }

    /// The value for `name` in any letter case.
    pub fn get(&self, name: &[u8]) -> Option<T> {
        if name.len() > MAX_NAME {
            return None;
        }
        let mut buf = [0u8; MAX_NAME];
        let lower = &mut buf[..name.len()];
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        self.map.get(&*lower).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_any_case_and_rejects_others() {
        let t = NameTable::new([("get", 1), ("set", 2), ("zrangebyscore", 3)]);
        assert_eq!(t.get(b"GET"), Some(1));
        assert_eq!(t.get(b"sEt"), Some(2));
        assert_eq!(t.get(b"ZRANGEBYSCORE"), Some(3));
        assert_eq!(t.get(b"ge"), None);
        assert_eq!(t.get(b"gett"), None);
        assert_eq!(t.get(&[0xff, 0xfe]), None);
        assert_eq!(t.get(&[b'g'; 100]), None);
    }
}
