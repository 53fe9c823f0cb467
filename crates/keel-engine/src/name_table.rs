//! Case-insensitive lookup of command names without allocation or hashing.
//!
//! Every request looks its command up (the front-end to dispatch, the engine again when
//! it applies the log entry), so the lookup is on the hot path. Names are bucketed by
//! length and first letter; a bucket holds a handful of names at most, compared with
//! `eq_ignore_ascii_case`. The table is fixed at start-up, so nothing a client sends
//! can make a bucket longer.

/// Longest name the table can hold; longer inputs are never a command.
const MAX_NAME: usize = 32;
/// Buckets per length: 'a'..='z' and one for anything else.
const LETTERS: usize = 27;

fn bucket_of(name: &[u8]) -> Option<usize> {
    let first = *name.first()?;
    if name.len() > MAX_NAME {
        return None;
    }
    let letter = match first.to_ascii_lowercase() {
        c @ b'a'..=b'z' => usize::from(c - b'a'),
        _ => LETTERS - 1,
    };
    Some(name.len() * LETTERS + letter)
}

/// A fixed map from names to values, looked up case-insensitively.
#[derive(Debug)]
pub struct NameTable<T> {
    buckets: Vec<Vec<(&'static [u8], T)>>,
}

impl<T: Copy> NameTable<T> {
    /// Builds the table; a later entry with the same name replaces an earlier one, and
    /// names longer than [`MAX_NAME`] are skipped.
    pub fn new(entries: impl IntoIterator<Item = (&'static str, T)>) -> Self {
        let mut buckets: Vec<Vec<(&'static [u8], T)>> =
            (0..(MAX_NAME + 1) * LETTERS).map(|_| Vec::new()).collect();
        for (name, value) in entries {
            let name = name.as_bytes();
            let Some(b) = bucket_of(name).and_then(|i| buckets.get_mut(i)) else {
                continue;
            };
            match b.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some(slot) => slot.1 = value,
                None => b.push((name, value)),
            }
        }
        NameTable { buckets }
    }

    /// The value for `name` in any letter case.
    pub fn get(&self, name: &[u8]) -> Option<T> {
        self.entry(name).map(|(_, v)| v)
    }

    /// [`NameTable::get`] that first compares `name` with the entry this thread found
    /// last in `last`: a pipeline, and the write funnel's run of entries, mostly repeat
    /// one command, and one compare costs a fifth of a lookup.
    #[inline]
    pub fn get_remembered(&self, last: &'static LastFound<T>, name: &[u8]) -> Option<T> {
        if let Some((n, v)) = last.get() {
            if n.eq_ignore_ascii_case(name) {
                return Some(v);
            }
        }
        let found = self.entry(name)?;
        last.set(Some(found));
        Some(found.1)
    }

    #[inline]
    fn entry(&self, name: &[u8]) -> Option<(&'static [u8], T)> {
        let bucket = self.buckets.get(bucket_of(name)?)?;
        bucket
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .copied()
    }
}

/// A thread's last entry found by [`NameTable::get_remembered`] (name and value).
pub type Remembered<T> = std::cell::Cell<Option<(&'static [u8], T)>>;

/// The thread-local holding a [`Remembered`] entry.
pub type LastFound<T> = std::thread::LocalKey<Remembered<T>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_any_case_and_rejects_others() {
        let t = NameTable::new([
            ("get", 1),
            ("set", 2),
            ("zrangebyscore", 3),
            ("sadd", 4),
            ("scan", 5),
            ("get", 6),
        ]);
        assert_eq!(
            t.get(b"GET"),
            Some(6),
            "a later entry replaces an earlier one"
        );
        assert_eq!(t.get(b"sEt"), Some(2));
        assert_eq!(t.get(b"ZRANGEBYSCORE"), Some(3));
        assert_eq!(t.get(b"SADD"), Some(4));
        assert_eq!(t.get(b"scan"), Some(5));
        assert_eq!(t.get(b"scam"), None);
        assert_eq!(t.get(b"ge"), None);
        assert_eq!(t.get(b"gett"), None);
        assert_eq!(t.get(b""), None);
        assert_eq!(t.get(&[0xff, 0xfe]), None);
        assert_eq!(t.get(&[b'g'; 100]), None);
    }
}
