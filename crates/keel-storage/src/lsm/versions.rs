//! Reading keel's versions out of fjall: for every key, the newest version at or below
//! the reader's sequence number.
//!
//! The resolution works on any ordered stream of `(stored key, value)` pairs, so the
//! unit tests drive it with plain vectors and the engine with fjall iterators.

use bytes::Bytes;

use super::keys::{self, Kind};

/// One stored entry as the resolver sees it.
pub type Entry = (Vec<u8>, Bytes);

/// What the resolver yields: a live key and its value, or a stored key it cannot parse.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// The key's newest version at or below the read sequence is a put.
    Live(Bytes, Bytes),
    /// A stored key that is not a well-formed version (reported, not guessed at).
    Malformed(Vec<u8>),
}

/// The candidate for the key being walked in reverse.
struct Pending {
    prefix: Vec<u8>,
    /// The newest version ≤ the read sequence seen so far, None when there is none yet.
    best: Option<(Kind, Bytes)>,
}

/// Shadowed or too-new versions of one key a forward walk steps over before it seeks past
/// them instead (see [`Resolver::with_reseek`]).
const SKIPS_BEFORE_SEEK: usize = 32;

/// Opens the stream again at a stored key (inclusive), keeping its end.
pub type Reseek<I> = Box<dyn FnMut(Vec<u8>) -> I + Send>;

/// Turns a stream of stored versions in fjall order (or reversed) into live keys at `seq`.
pub struct Resolver<I> {
    inner: I,
    seq: u64,
    reverse: bool,
    /// Forward only: how to open the stream again further on (None: walk every version).
    reseek: Option<Reseek<I>>,
    /// Forward: prefix of the key already decided (its newer versions were skipped or its
    /// newest visible version was taken), so its older versions are skipped.
    decided: Option<Vec<u8>>,
    /// Reverse: the key being collected (versions arrive oldest first).
    pending: Option<Pending>,
    done: bool,
}

impl<I> Resolver<I> {
    /// Resolves `inner`, which yields versions in ascending (or, with `reverse`, descending)
    /// stored-key order, as of sequence number `seq`.
    pub fn new(inner: I, seq: u64, reverse: bool) -> Self {
        Resolver {
            inner,
            seq,
            reverse,
            reseek: None,
            decided: None,
            pending: None,
            done: false,
        }
    }
}

fn live(prefix: &[u8], kind: Kind, value: Bytes) -> Option<Resolved> {
    match kind {
        Kind::Tombstone => None,
        Kind::Put => Some(match keys::decode_prefix(prefix) {
            Some(k) => Resolved::Live(Bytes::from(k), value),
            None => Resolved::Malformed(prefix.to_vec()),
        }),
    }
}

impl<I> Resolver<I> {
    /// A forward walk that, after stepping over [`SKIPS_BEFORE_SEEK`] versions of one key
    /// (older ones of a key already decided, or ones above the read sequence), opens the
    /// stream again past them with `reseek`. keel keeps every version until a
    /// compaction drops it, and a hot key's run of them in a memtable made HGETALL of a
    /// hot YCSB record walk thousands of entries. A seek costs about a point read.
    pub fn with_reseek(mut self, reseek: Reseek<I>) -> Self {
        if !self.reverse {
            self.reseek = Some(reseek);
        }
        self
    }
}

impl<I, E> Resolver<I>
where
    I: Iterator<Item = Result<Entry, E>>,
{
    fn next_forward(&mut self) -> Option<Result<Resolved, E>> {
        let mut skipped = 0;
        loop {
            let (stored, value) = match self.inner.next()? {
                Ok(e) => e,
                Err(e) => return Some(Err(e)),
            };
            let Some(p) = keys::parse(&stored) else {
                return Some(Ok(Resolved::Malformed(stored)));
            };
            let decided = self.decided.as_deref() == Some(p.prefix);
            if p.seq > self.seq || decided {
                skipped += 1;
                if skipped >= SKIPS_BEFORE_SEEK {
                    if let Some(reseek) = &mut self.reseek {
                        // Past the decided key's versions, or to the newest of this one's
                        // at or below the read sequence: both lie ahead of this entry.
                        let to = if decided {
                            keys::prefix_upper(p.prefix.to_vec())
                        } else {
                            keys::prefix_seek(p.prefix.to_vec(), self.seq)
                        };
                        self.inner = reseek(to);
                        skipped = 0;
                    }
                }
                continue;
            }
            // Newest first: this is the key's newest version at or below `seq`.
            match &mut self.decided {
                Some(d) => {
                    d.clear();
                    d.extend_from_slice(p.prefix);
                }
                None => self.decided = Some(p.prefix.to_vec()),
            }
            if let Some(r) = live(p.prefix, p.kind, value) {
                return Some(Ok(r));
            }
        }
    }

    fn next_reverse(&mut self) -> Option<Result<Resolved, E>> {
        loop {
            let item = match self.inner.next() {
                Some(Ok(e)) => Some(e),
                Some(Err(e)) => return Some(Err(e)),
                None => None,
            };
            let Some((stored, value)) = item else {
                let p = self.pending.take()?;
                match p.best.and_then(|(kind, v)| live(&p.prefix, kind, v)) {
                    Some(r) => return Some(Ok(r)),
                    None => continue,
                }
            };
            let Some(parsed) = keys::parse(&stored) else {
                return Some(Ok(Resolved::Malformed(stored)));
            };
            let same = self
                .pending
                .as_ref()
                .is_some_and(|p| p.prefix == parsed.prefix);
            let mut finished = None;
            if !same {
                let fresh = Pending {
                    prefix: parsed.prefix.to_vec(),
                    best: None,
                };
                finished = self.pending.replace(fresh);
            }
            // Oldest first: every later version at or below `seq` is newer and wins.
            if parsed.seq <= self.seq {
                if let Some(p) = &mut self.pending {
                    p.best = Some((parsed.kind, value));
                }
            }
            if let Some(p) = finished {
                if let Some(r) = p.best.and_then(|(kind, v)| live(&p.prefix, kind, v)) {
                    return Some(Ok(r));
                }
            }
        }
    }
}

impl<I, E> Iterator for Resolver<I>
where
    I: Iterator<Item = Result<Entry, E>>,
{
    type Item = Result<Resolved, E>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = if self.reverse {
            self.next_reverse()
        } else {
            self.next_forward()
        };
        if !matches!(r, Some(Ok(Resolved::Live(..)))) {
            self.done = true;
        }
        r
    }
}

/// The value a point read at `seq` finds in `first`, the first stored entry at or after
/// the key's seek target: the key's newest version at or below `seq` if `first` belongs to
/// the key (`prefix`) and is a put, else None.
pub fn first_visible(prefix: &[u8], seq: u64, first: Option<(&[u8], Bytes)>) -> Option<Bytes> {
    let (stored, value) = first?;
    let p = keys::parse(stored)?;
    if p.prefix != prefix || p.seq > seq {
        return None;
    }
    match p.kind {
        Kind::Put => Some(value),
        Kind::Tombstone => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keys::version_key;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn stream() -> Vec<Entry> {
        // key a: put@1, put@5, tomb@8 ; key b: put@3, tomb@4 ; key c: put@9 ; key "": put@2
        let mut v = vec![
            (version_key(b"a", 1, Kind::Put), Bytes::from("a1")),
            (version_key(b"a", 5, Kind::Put), Bytes::from("a5")),
            (version_key(b"a", 8, Kind::Tombstone), Bytes::new()),
            (version_key(b"b", 3, Kind::Put), Bytes::from("b3")),
            (version_key(b"b", 4, Kind::Tombstone), Bytes::new()),
            (version_key(b"c", 9, Kind::Put), Bytes::from("c9")),
            (version_key(b"", 2, Kind::Put), Bytes::from("e2")),
        ];
        v.sort();
        v
    }

    fn resolve(seq: u64, reverse: bool) -> Vec<(String, String)> {
        let mut s = stream();
        if reverse {
            s.reverse();
        }
        Resolver::new(s.into_iter().map(Ok::<_, ()>), seq, reverse)
            .map(|r| match r {
                Ok(Resolved::Live(k, v)) => (
                    String::from_utf8_lossy(&k).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                ),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn newest_version_at_or_below_seq_in_both_directions() {
        let cases: [(u64, Vec<(String, String)>); 6] = [
            (0, kv(&[])),
            (1, kv(&[("a", "a1")])),
            (3, kv(&[("", "e2"), ("a", "a1"), ("b", "b3")])),
            (4, kv(&[("", "e2"), ("a", "a1")])),
            (7, kv(&[("", "e2"), ("a", "a5")])),
            (9, kv(&[("", "e2"), ("c", "c9")])),
        ];
        for (seq, expected) in cases {
            assert_eq!(resolve(seq, false), expected, "forward at {seq}");
            let mut rev = expected.clone();
            rev.reverse();
            assert_eq!(resolve(seq, true), rev, "reverse at {seq}");
        }
    }

    type Counted = Box<dyn Iterator<Item = Result<Entry, ()>> + Send>;

    /// `all[start..]`, counting every entry pulled in `pulled`.
    fn tail(all: &Arc<Vec<Entry>>, pulled: &Arc<AtomicUsize>, start: usize) -> Counted {
        let (all, pulled) = (Arc::clone(all), Arc::clone(pulled));
        Box::new((start..all.len()).map(move |i| {
            pulled.fetch_add(1, Ordering::Relaxed);
            Ok(all[i].clone())
        }))
    }

    /// Keys a, b, c with 100 versions each (seq 1..=100 for a, 101..=200 for b, ...),
    /// every tenth a delete, resolved at several numbers with and without reseeks: the
    /// same keys and values, and with them far fewer entries pulled.
    #[test]
    fn reseeks_past_long_runs_of_versions_change_nothing_but_the_walk() {
        let mut all: Vec<Entry> = Vec::new();
        for (i, key) in [&b"a"[..], b"b", b"c"].into_iter().enumerate() {
            for n in 1..=100u64 {
                let seq = i as u64 * 100 + n;
                let kind = if n % 10 == 0 {
                    Kind::Tombstone
                } else {
                    Kind::Put
                };
                all.push((version_key(key, seq, kind), Bytes::from(format!("{seq}"))));
            }
        }
        all.sort();
        let all = Arc::new(all);
        let pulled = Arc::new(AtomicUsize::new(0));
        for seq in [0, 5, 10, 99, 150, 201, 255, 300, 1000] {
            let plain: Vec<_> = Resolver::new(tail(&all, &pulled, 0), seq, false).collect();
            let walked = pulled.swap(0, Ordering::Relaxed);
            let (index, counter) = (Arc::clone(&all), Arc::clone(&pulled));
            let reseek = move |to: Vec<u8>| -> Counted {
                let at = index.partition_point(|(k, _)| *k < to);
                tail(&index, &counter, at)
            };
            let seeking: Vec<_> = Resolver::new(tail(&all, &pulled, 0), seq, false)
                .with_reseek(Box::new(reseek))
                .collect();
            let sought = pulled.swap(0, Ordering::Relaxed);
            assert_eq!(seeking, plain, "at {seq}");
            if (150..=255).contains(&seq) {
                // a's older versions are passed by a seek, and so are b's or c's above seq.
                assert!(
                    sought < walked / 2,
                    "at {seq}: {sought} pulled against {walked}"
                );
            }
        }
        // At 155: a's newest (100) is a delete, b's is 155; c has none yet.
        let at_155: Vec<_> = Resolver::new(tail(&all, &pulled, 0), 155, false).collect();
        assert_eq!(
            at_155,
            vec![Ok(Resolved::Live(Bytes::from("b"), Bytes::from("155")))]
        );
    }

    #[test]
    fn point_read_takes_the_seek_result_only_for_its_key() {
        let s = stream();
        let seek = |key: &[u8], seq: u64| {
            let target = keys::seek_key(key, seq);
            let first = s.iter().find(|(k, _)| *k >= target);
            first_visible(
                &keys::key_prefix(key),
                seq,
                first.map(|(k, v)| (k.as_slice(), v.clone())),
            )
        };
        assert_eq!(seek(b"a", 0), None);
        assert_eq!(seek(b"a", 4), Some(Bytes::from("a1")));
        assert_eq!(seek(b"a", 5), Some(Bytes::from("a5")));
        assert_eq!(seek(b"a", 8), None);
        assert_eq!(seek(b"b", 2), None, "must not take c's version");
        assert_eq!(seek(b"c", 100), Some(Bytes::from("c9")));
        assert_eq!(seek(b"d", 100), None);
    }

    #[test]
    fn malformed_entries_stop_the_walk() {
        let s = vec![
            Ok::<_, ()>((version_key(b"a", 1, Kind::Put), Bytes::from("x"))),
            Ok((vec![keys::TAG, 9], Bytes::new())),
            Ok((version_key(b"b", 1, Kind::Put), Bytes::from("y"))),
        ];
        let out: Vec<_> = Resolver::new(s.into_iter(), 5, false).collect();
        assert_eq!(out.len(), 2);
        assert!(matches!(out[1], Ok(Resolved::Malformed(_))));
    }
}
