//! What a merge copies: one walk over the index in key order lists every version the
//! merge set still holds (two threads taking turns at pieces of the key space for a
//! large index), each segment's list is sorted by offset, and the lists are shared out
//! between the copy threads.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use super::super::record;
use super::super::{Inner, Loc};
use super::{join, CHUNK, PARALLEL_MIN};
use crate::error::{Result, StorageError};

/// Pieces of the key space the two walk threads take turns at: enough that keys
/// crowded into a few of them (say hex digits, which leave the bytes between '9' and
/// 'a' empty) still give both threads about half.
const WALK_PIECES: usize = 32;

/// A rewritten version waiting to be pointed at its new place. Its key is
/// `keys[key_at..key_at + key_len]` of its [`Part`].
#[derive(Clone, Copy)]
pub(super) struct Reloc {
    pub(super) key_at: usize,
    pub(super) key_len: u32,
    pub(super) old: Loc,
}

/// A record to copy, with what the copy checks it against, so the copy (in file order)
/// touches nothing else that was built in key order.
#[derive(Clone, Copy, Default)]
pub(super) struct Job {
    pub(super) offset: u32,
    /// Its place in its segment's list as the walk made it (key order), which is where
    /// its new location goes in [`Part::placed`].
    pub(super) reloc: u32,
    pub(super) seq: u64,
    /// [`fingerprint`] of the key the index holds for it.
    pub(super) fp: u64,
    pub(super) klen: u32,
    pub(super) vlen: u32,
}

impl Job {
    pub(super) fn len(&self) -> u64 {
        record::record_len(self.klen as usize, self.vlen)
    }
}

/// FNV-1a of a key: compared against the key in the record read back, in place of the
/// key itself (which sits in key order, far from the record's place in file order).
pub(super) fn fingerprint(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What one walk over a range of keys found, and where its versions were copied to.
#[derive(Default)]
pub(super) struct Part {
    pub(super) keys: Vec<u8>,
    pub(super) relocs: Vec<Reloc>,
    /// Per segment of the merge set (by position in it): the records to copy from it,
    /// sorted by offset once the walk is done.
    pub(super) jobs: Vec<Vec<Job>>,
    /// Per segment of the merge set: the bytes of those records.
    pub(super) bytes: Vec<u64>,
    /// (key_at, key_len, seq) of tombstones to rewrite.
    pub(super) tombs: Vec<(usize, u32, u64)>,
    /// (piece number, first relocation, end) of each piece of the key space this part
    /// walked, in walking (and key) order.
    pub(super) pieces: Vec<(usize, usize, usize)>,
    /// Per segment of the merge set, per record in key order (`Job::reloc`): where its
    /// copy went, as output id << 32 | offset (output ids start at 1, so 0 means not
    /// copied). The copy threads store into it directly; per segment, so those stores
    /// stay within a small array instead of landing all over one big one.
    pub(super) placed: Vec<Vec<AtomicU64>>,
}

impl Part {
    pub(super) fn key(&self, at: usize, len: u32) -> &[u8] {
        self.keys.get(at..at + len as usize).unwrap_or(&[])
    }
}

/// What a merge copied: one part per walk thread.
pub(super) type Plan = Vec<Part>;

/// One segment's share of a copy thread: the segment, its position in the merge set
/// and, per part, its records (ascending by offset).
pub(super) type SegWork<'a> = (u32, usize, [(&'a [Job], &'a Part); 2]);

/// Sorts `jobs` by offset. A least-significant-digit radix sort of (offset, index)
/// pairs, 8 bits a pass, skipping digits every offset shares, then one gather: a
/// segment's offsets come in key order, i.e. at random, and sorting them with a
/// comparison sort (or moving whole jobs in every pass) cost several times as much.
fn sort_by_offset(jobs: &mut Vec<Job>, scratch: &mut SortScratch) {
    if jobs.len() < 64 {
        jobs.sort_unstable_by_key(|j| j.offset);
        return;
    }
    let n = jobs.len();
    let SortScratch { keys, tmp, spare } = scratch;
    keys.clear();
    keys.extend(
        jobs.iter()
            .enumerate()
            .map(|(i, j)| (u64::from(j.offset) << 32) | i as u64),
    );
    tmp.clear();
    tmp.resize(n, 0);
    let mut in_keys = true;
    for shift in [32u32, 40, 48, 56] {
        let (src, dst): (&[u64], &mut [u64]) = if in_keys { (keys, tmp) } else { (tmp, keys) };
        let mut counts = [0usize; 256];
        for k in src {
            counts[((k >> shift) & 0xff) as usize] += 1;
        }
        if counts.contains(&n) {
            continue;
        }
        let mut at = 0;
        for c in counts.iter_mut() {
            let here = *c;
            *c = at;
            at += here;
        }
        for &k in src {
            let d = ((k >> shift) & 0xff) as usize;
            if let Some(slot) = dst.get_mut(counts[d]) {
                *slot = k;
            }
            counts[d] += 1;
        }
        in_keys = !in_keys;
    }
    let sorted: &[u64] = if in_keys { keys } else { tmp };
    spare.clear();
    spare.extend(
        sorted
            .iter()
            .filter_map(|&k| jobs.get(k as u32 as usize).copied()),
    );
    // The unsorted list's memory becomes the next gather's.
    std::mem::swap(jobs, spare);
}

/// Buffers [`sort_by_offset`] reuses from one segment's list to the next, so sorting
/// them all touches little fresh memory.
#[derive(Default)]
struct SortScratch {
    keys: Vec<u64>,
    tmp: Vec<u64>,
    spare: Vec<Job>,
}

/// Up to `n - 1` keys, rising, strictly after `a` and at most `b`, spread evenly between
/// them when keys are read as big-endian fractions (after their common prefix): where
/// walks over the index are cut into pieces. Even for uniformly spread keys (hashes,
/// random ids, numbers of equal width); skewed keys only make some pieces bigger.
/// Finding keys of known rank would mean walking the tree first.
fn split_points(a: &[u8], b: &[u8], n: usize) -> Vec<Vec<u8>> {
    if a >= b || n < 2 {
        return Vec::new();
    }
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let word = |k: &[u8]| {
        let mut w = [0u8; 8];
        for (d, s) in w.iter_mut().zip(k.iter().skip(common)) {
            *d = *s;
        }
        u128::from(u64::from_be_bytes(w))
    };
    let (x, y) = (word(a), word(b));
    let Some(prefix) = b.get(..common) else {
        return Vec::new();
    };
    let mut out: Vec<Vec<u8>> = Vec::new();
    for i in 1..n as u128 {
        let at = x + y.saturating_sub(x) * i / n as u128;
        let mut key = prefix.to_vec();
        key.extend_from_slice(&(at as u64).to_be_bytes());
        while key.len() > common && key.last() == Some(&0) {
            key.pop();
        }
        let after_last = out.last().map_or(a, |l| l.as_slice());
        if after_last < key.as_slice() && key.as_slice() <= b {
            out.push(key);
        }
    }
    out
}

/// The copy threads' shares of `plan`: per segment, the two parts' lists of records;
/// a large merge is split between two copy threads in file order (segment, offset)
/// where half of the bytes to copy are behind.
pub(super) fn copy_shares<'a>(
    plan: &'a Plan,
    merge_set: &[u32],
) -> Result<(Vec<SegWork<'a>>, Vec<SegWork<'a>>)> {
    let (p0, p1) = match plan.as_slice() {
        [p0, p1] => (p0, p1),
        _ => {
            return Err(StorageError::InvalidArgument(
                "merge walk produced no parts".into(),
            ))
        }
    };
    fn list(p: &Part, i: usize) -> &[Job] {
        p.jobs.get(i).map_or(&[], |v| v.as_slice())
    }
    let seg_bytes = |i: usize| -> u64 {
        p0.bytes.get(i).copied().unwrap_or(0) + p1.bytes.get(i).copied().unwrap_or(0)
    };
    let total: u64 = (0..merge_set.len()).map(seg_bytes).sum();
    let copies = p0.relocs.len() + p1.relocs.len();
    let half = if copies >= PARALLEL_MIN {
        total / 2
    } else {
        total
    };
    let mut first: Vec<SegWork> = Vec::new();
    let mut second: Vec<SegWork> = Vec::new();
    let mut before = 0u64;
    for (i, &id) in merge_set.iter().enumerate() {
        let (a, b) = (list(p0, i), list(p1, i));
        if a.is_empty() && b.is_empty() {
            continue;
        }
        let bytes = seg_bytes(i);
        if before >= half {
            second.push((id, i, [(a, p0), (b, p1)]));
        } else if before + bytes <= half {
            first.push((id, i, [(a, p0), (b, p1)]));
        } else {
            // The split falls in this segment: find the offset where it does.
            let (mut x, mut y) = (0usize, 0usize);
            let mut acc = before;
            while acc < half {
                let next = match (a.get(x), b.get(y)) {
                    (Some(j), Some(k)) if j.offset <= k.offset => {
                        x += 1;
                        j
                    }
                    (Some(j), None) => {
                        x += 1;
                        j
                    }
                    (_, Some(k)) => {
                        y += 1;
                        k
                    }
                    (None, None) => break,
                };
                acc += next.len();
            }
            let (a1, a2) = a.split_at(x);
            let (b1, b2) = b.split_at(y);
            first.push((id, i, [(a1, p0), (b1, p1)]));
            second.push((id, i, [(a2, p0), (b2, p1)]));
        }
        before += bytes;
    }
    Ok((first, second))
}

impl Inner {
    /// Walks the index for what `merge_set` holds that is still referenced: on two
    /// threads for a large index, taking turns at pieces of the key space cut between
    /// its first and last key. Always two parts (the second empty when one walked).
    pub(super) fn plan(&self, merge_set: &[u32]) -> Result<Plan> {
        let points = if self.index.entries() >= PARALLEL_MIN {
            self.index
                .first_and_last_keys()
                .map_or_else(Vec::new, |(a, b)| split_points(&a, &b, WALK_PIECES))
        } else {
            Vec::new()
        };
        let mut bounds: Vec<Option<Vec<u8>>> = vec![None];
        bounds.extend(points.into_iter().map(Some));
        bounds.push(None);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let plan: Plan = if bounds.len() <= 2 {
            vec![self.walk(merge_set, &bounds, &next)?, Part::default()]
        } else {
            let (a, b) = std::thread::scope(|s| {
                let other = s.spawn(|| self.walk(merge_set, &bounds, &next));
                let this = self.walk(merge_set, &bounds, &next);
                (this, join(other, "a merge walk thread panicked"))
            });
            vec![a?, b?]
        };
        Ok(plan)
    }

    /// Lists, in key order, what the index references in `merge_set` over the pieces of
    /// the key space it takes from `next` (piece `i` runs from `bounds[i]` to below
    /// `bounds[i + 1]`, None meaning the ends), then sorts each segment's records by
    /// offset. Several threads can share `next`; each gets its pieces in rising order.
    fn walk(
        &self,
        merge_set: &[u32],
        bounds: &[Option<Vec<u8>>],
        next: &std::sync::atomic::AtomicUsize,
    ) -> Result<Part> {
        // Room for this thread's share up front: growing these by doubling copied them
        // over and over. Capacity is only address space until it is written.
        let share = self.index.entries() / if bounds.len() > 2 { 2 } else { 1 };
        let per_seg = share / merge_set.len().max(1);
        let mut part = Part {
            relocs: Vec::with_capacity(share),
            jobs: (0..merge_set.len())
                .map(|_| Vec::with_capacity(per_seg))
                .collect(),
            bytes: vec![0; merge_set.len()],
            ..Part::default()
        };
        loop {
            let piece = next.fetch_add(1, Ordering::Relaxed);
            let (Some(from), Some(to)) = (bounds.get(piece), bounds.get(piece + 1)) else {
                break;
            };
            let start = part.relocs.len();
            self.walk_piece(merge_set, from.as_deref(), to.as_deref(), &mut part)?;
            part.pieces.push((piece, start, part.relocs.len()));
        }
        if part.relocs.len() > u32::MAX as usize {
            return Err(StorageError::InvalidArgument(
                "too many versions for one merge".into(),
            ));
        }
        let mut scratch = SortScratch::default();
        for jobs in &mut part.jobs {
            sort_by_offset(jobs, &mut scratch);
        }
        part.placed = part
            .jobs
            .iter()
            .map(|j| (0..j.len()).map(|_| AtomicU64::new(0)).collect())
            .collect();
        Ok(part)
    }

    /// Adds to `part`, in key order, what the index references in `merge_set` over the
    /// keys from `from` and below `to`.
    fn walk_piece(
        &self,
        merge_set: &[u32],
        from: Option<&[u8]>,
        to: Option<&[u8]>,
        part: &mut Part,
    ) -> Result<()> {
        let mut resume: Option<Vec<u8>> = None;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(StorageError::Closed);
            }
            let lo = match (&resume, from) {
                (Some(r), _) => Bound::Excluded(r.as_slice()),
                (None, Some(f)) => Bound::Included(f),
                (None, None) => Bound::Unbounded,
            };
            let last = self
                .index
                .visit_versions_in(lo, to, CHUNK, |key, versions| {
                    let mut key_at = None;
                    let mut fp = 0;
                    let key_len = key.len() as u32;
                    for (seq, v) in versions {
                        match v {
                            Some(loc) => {
                                let Ok(pos) = merge_set.binary_search(&loc.segment) else {
                                    continue;
                                };
                                let at = match key_at {
                                    Some(at) => at,
                                    None => {
                                        let at = part.keys.len();
                                        part.keys.extend_from_slice(key);
                                        fp = fingerprint(key);
                                        key_at = Some(at);
                                        at
                                    }
                                };
                                let job = Job {
                                    offset: loc.offset,
                                    reloc: part.jobs.get(pos).map_or(0, |j| j.len() as u32),
                                    seq: *seq,
                                    fp,
                                    klen: key_len,
                                    vlen: loc.vlen,
                                };
                                if let (Some(jobs), Some(bytes)) =
                                    (part.jobs.get_mut(pos), part.bytes.get_mut(pos))
                                {
                                    *bytes += job.len();
                                    jobs.push(job);
                                }
                                part.relocs.push(Reloc {
                                    key_at: at,
                                    key_len,
                                    old: *loc,
                                });
                            }
                            // A deletion matters only above a version being rewritten.
                            None => {
                                if let Some(at) = key_at {
                                    part.tombs.push((at, key_len, *seq));
                                }
                            }
                        }
                    }
                });
            match last {
                Some(k) => resume = Some(k),
                None => break,
            }
        }
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_rise_between_the_ends() {
        let p = split_points(b"key000000", b"key999999", 4);
        assert_eq!(p.len(), 3);
        assert!(p[0].as_slice() > b"key2".as_slice() && p[0].as_slice() < b"key3".as_slice());
        assert!(p[1].as_slice() > b"key4".as_slice() && p[1].as_slice() < b"key5".as_slice());
        for (a, b) in [
            (&b"a"[..], &b"b"[..]),
            (b"a", b"a\0"),
            (b"", b"\x01"),
            (b"abc", b"abd"),
            (b"x\xff\xff", b"y"),
            (b"0000", b"ffff"),
        ] {
            let p = split_points(a, b, 32);
            let mut prev = a.to_vec();
            for k in &p {
                assert!(
                    prev.as_slice() < k.as_slice() && k.as_slice() <= b,
                    "{a:?} {k:?} {b:?}"
                );
                prev = k.clone();
            }
        }
        assert!(split_points(b"b", b"a", 8).is_empty());
        assert!(split_points(b"a", b"a", 8).is_empty());
        assert!(split_points(b"a", b"z", 1).is_empty());
    }

    #[test]
    fn radix_sort_orders_by_offset_and_keeps_every_job() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        // One scratch for every size, as the walk uses it.
        let mut scratch = SortScratch::default();
        for n in [0usize, 1, 63, 64, 1000, 20_000] {
            for mask in [0xffu32, 0xff_ffff, u32::MAX] {
                let jobs: Vec<Job> = (0..n)
                    .map(|i| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        Job {
                            offset: (x as u32) & mask,
                            reloc: i as u32,
                            ..Job::default()
                        }
                    })
                    .collect();
                let mut sorted = jobs.clone();
                sort_by_offset(&mut sorted, &mut scratch);
                let mut want: Vec<(u32, u32)> = jobs.iter().map(|j| (j.offset, j.reloc)).collect();
                want.sort_unstable();
                let mut got: Vec<(u32, u32)> = sorted.iter().map(|j| (j.offset, j.reloc)).collect();
                assert!(
                    got.windows(2).all(|w| w[0].0 <= w[1].0),
                    "n {n} mask {mask:#x}"
                );
                got.sort_unstable();
                assert_eq!(got, want, "n {n} mask {mask:#x}");
            }
        }
    }
}
