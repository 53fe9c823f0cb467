//! A list's elements packed into storage records ("chunks"): the layer between the list
//! commands' absolute indices and the store.
//!
//! With the list's `chunk_shift` s, the element at absolute index `i` is slot
//! `i & (2^s - 1)` of chunk `i >> s` (an arithmetic shift, so negative indices work), and
//! the chunk is the record
//!
//! ```text
//! keys::sub_key(db, key, version, enc_index(chunk))
//!   s = 0 (lists written before packing): the element itself
//!   s > 0: first_slot u8 | (len varint | bytes){count}   slots first_slot.. in order, no holes
//! ```
//!
//! Why: with a record per element, every push made a new hash entry and tree item and
//! every pop deleted one, each a cache miss in a long list's tables (LPUSH and RPOP at
//! -P 16 ran at 0.64x Redis with 1.09x its instructions). A push now rewrites the end
//! chunk it finds in cache, as Redis's listpack append does. The chunk holds at most
//! 2^s elements whatever their size, so a push copies at most 2^s - 1 neighbours.
//!
//! A command opens the chunks it changes ([`Chunks`]); [`Chunks::flush`] writes them
//! back once, so a push of many elements or a shift inside LINSERT/LREM rewrites each
//! chunk once, and removing whole chunks (LTRIM, popping a count) deletes their records
//! unread.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use smallvec::SmallVec;

use crate::codec::{put_varint, varint_len};
use crate::error::{CmdResult, EngineError, Result};
use crate::exec::Exec;
use crate::keys;
use crate::types::list::enc_index;
use keel_storage::Direction;

/// Chunk shift of lists created from now on: 16 elements to a record. Redis packs up to
/// 8 KiB per listpack node; 16 64-byte elements are ~1 KiB, so a push copies ~0.5 KiB on
/// average while the tables hold 1/16 of the records.
pub const NEW_LIST_SHIFT: u8 = 4;

/// A record's storage key (the list's key and database are not part of it: see
/// `keys`).
type RecordKey = [u8; keys::INDEXED_SUB_KEY_LEN];

/// A chunk as a command sees it: one optional element per slot.
type Slots = Vec<Option<Bytes>>;

/// A chunk a command has opened for change.
#[derive(Debug)]
enum Open {
    /// Still a packed record (shift > 0), changed at its ends only: a push copies the
    /// record once, a pop from the right copies nothing (perf: decoding every chunk into
    /// slots cost LPUSH -P 16 28% more instructions than a record per element).
    Packed {
        /// The record, first slot byte included; just the byte when emptied.
        rec: Bytes,
        /// Elements it holds, when counted (see [`known_count`]; a push onto the front of
        /// a stored record does not count them).
        count: Option<usize>,
        /// Where its last element lies, when known (a pop from the right forgets it).
        last: Option<Span>,
    },
    /// Decoded, for changes anywhere.
    Slots(Slots),
}

/// Where an element lies in a packed record: its length prefix, its bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    len_at: usize,
    start: usize,
    end: usize,
}

impl Span {
    /// The span after `removed` bytes before it gave way to `added` ones.
    fn moved(self, added: usize, removed: usize) -> Span {
        let at = |x: usize| x + added - removed;
        Span {
            len_at: at(self.len_at),
            start: at(self.start),
            end: at(self.end),
        }
    }
}

/// A packed record's element count and its first and last elements' spans.
fn framing(shift: u8, rec: &[u8]) -> std::result::Result<(usize, Span, Span), &'static str> {
    let (mut count, mut first, mut last) = (0, Span::default(), Span::default());
    let mut len_at = 1;
    walk(shift, rec, |_, start, end| {
        last = Span { len_at, start, end };
        if count == 0 {
            first = last;
        }
        count += 1;
        len_at = end;
        true
    })?;
    Ok((count, first, last))
}

/// The element count of the packed record `rec` (of storage key `rk`), counted now when
/// `count` does not hold it; its last element's span is noted in `last` on the way.
fn known_count(
    shift: u8,
    rk: &RecordKey,
    rec: &[u8],
    count: &mut Option<usize>,
    last: &mut Option<Span>,
) -> Result<usize> {
    if let Some(n) = *count {
        return Ok(n);
    }
    if rec.len() <= 1 {
        *count = Some(0);
        return Ok(0);
    }
    let (n, _, tail) = framing(shift, rec).map_err(|w| damaged(rk, w))?;
    *count = Some(n);
    last.get_or_insert(tail);
    Ok(n)
}

/// Whether adding an element in `slot` puts it just before the first element of the
/// packed record `rec`, which holds some: a push onto the front, which needs neither
/// the record's count nor its last element.
fn is_prepend(rec: &[u8], slot: usize) -> bool {
    rec.len() > 1 && slot + 1 == usize::from(rec[0])
}

/// The packed record `rec` (holding `count` elements, the last at `last` if known) with
/// `v` added in `slot`, and where its last element then lies; None unless `slot` is
/// just before its first element or just after its last (or it is empty). `count` may
/// be unknown only for a push onto the front.
fn grow(
    rec: &[u8],
    count: Option<usize>,
    last: Option<Span>,
    slot: usize,
    v: &[u8],
) -> Option<(Bytes, Option<Span>)> {
    let appended = |rec: &[u8]| {
        let grown = spliced(rec, Some(v), &[]);
        let span = Span {
            len_at: rec.len(),
            start: grown.len() - v.len(),
            end: grown.len(),
        };
        (grown, Some(span))
    };
    let first = *rec.first()? as usize;
    if rec.len() == 1 {
        Some(appended(&[slot as u8]))
    } else if slot + 1 == first {
        let grown = spliced(&[slot as u8], Some(v), &rec[1..]);
        let moved = last.map(|l| l.moved(grown.len(), rec.len()));
        Some((grown, moved))
    } else if count.is_some_and(|n| slot == first + n) {
        Some(appended(rec))
    } else {
        None
    }
}

/// `prefix`, then `v` with its length prefix (if any), then `suffix`, in one buffer of
/// exactly that size.
fn spliced(prefix: &[u8], v: Option<&[u8]>, suffix: &[u8]) -> Bytes {
    let vlen = v.map_or(0, |v| varint_len(v.len() as u64) + v.len());
    let mut out = BytesMut::with_capacity(prefix.len() + vlen + suffix.len());
    out.put_slice(prefix);
    if let Some(v) = v {
        put_varint(&mut out, v.len() as u64);
        out.put_slice(v);
    }
    out.put_slice(suffix);
    out.freeze()
}

/// The chunks of one list (one version) a command has changed, until written back.
#[derive(Debug)]
pub struct Chunks {
    version: u64,
    shift: u8,
    /// Chunks opened for change, in the order opened (a command touches few), with
    /// their record keys. One inline: a push or pop opens one chunk, and the vector's
    /// allocation and growth were ~250 of RPOP -P 16's 6,315 instructions per request.
    open: SmallVec<[(i64, RecordKey, Open); 1]>,
    /// Ranges of chunk ids whose records go entirely (inclusive), unless reopened.
    cleared: Vec<(i64, i64)>,
}

impl Chunks {
    /// The chunks of the list `version` packed `2^shift` to a record.
    #[inline(always)]
    pub fn new(version: u64, shift: u8) -> Chunks {
        Chunks {
            version,
            shift,
            open: SmallVec::new(),
            cleared: Vec::new(),
        }
    }

    /// The list's version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The list's chunk shift.
    pub fn shift(&self) -> u8 {
        self.shift
    }

    fn id(&self, abs: i64) -> i64 {
        abs >> self.shift
    }

    fn slot(&self, abs: i64) -> usize {
        (abs & ((1i64 << self.shift) - 1)) as usize
    }

    fn record_key(&self, id: i64) -> RecordKey {
        keys::indexed_sub_key(self.version, enc_index(id))
    }

    fn is_cleared(&self, id: i64) -> bool {
        self.cleared.iter().any(|&(a, b)| (a..=b).contains(&id))
    }

    /// A chunk with nothing in it.
    fn empty(&self) -> Slots {
        vec![None; 1 << self.shift]
    }

    fn is_open(&self, id: i64) -> bool {
        self.open.iter().any(|(i, ..)| *i == id)
    }

    /// Chunk `id`'s first absolute index, and the part of `from..to` inside the chunk.
    fn bounds(&self, id: i64, from: i64, to: i64) -> (i64, i64, i64) {
        let base = id << self.shift;
        (
            base,
            from.max(base),
            to.min(base.saturating_add(1 << self.shift)),
        )
    }

    /// The chunk `id` as it stands in this command: opened, cleared, or as stored.
    fn current(&self, ex: &Exec, id: i64) -> Result<Slots> {
        match self.open.iter().find(|(i, ..)| *i == id) {
            Some((_, _, Open::Slots(s))) => return Ok(s.clone()),
            Some((_, _, Open::Packed { rec, .. })) if rec.len() <= 1 => return Ok(self.empty()),
            Some((_, rk, Open::Packed { rec, .. })) => return decode(self.shift, rk, rec.clone()),
            None => {}
        }
        if self.is_cleared(id) {
            return Ok(self.empty());
        }
        let rk = self.record_key(id);
        match ex.get(&rk)? {
            Some(v) => decode(self.shift, &rk, v),
            None => Ok(self.empty()),
        }
    }

    /// Opens chunk `id` as it stands, packed where it can stay so.
    fn open_any(&mut self, ex: &Exec, id: i64) -> Result<usize> {
        if let Some(at) = self.open.iter().position(|(i, ..)| *i == id) {
            return Ok(at);
        }
        let rk = self.record_key(id);
        let open = if self.shift == 0 || self.is_cleared(id) {
            Open::Slots(self.current(ex, id)?)
        } else {
            match ex.get(&rk)? {
                Some(rec) => {
                    let (count, _, last) =
                        framing(self.shift, &rec).map_err(|w| damaged(&rk, w))?;
                    Open::Packed {
                        rec,
                        count: Some(count),
                        last: Some(last),
                    }
                }
                None => Open::Packed {
                    rec: Bytes::from_static(&[0]),
                    count: Some(0),
                    last: None,
                },
            }
        };
        self.open.push((id, rk, open));
        Ok(self.open.len() - 1)
    }

    /// Opens chunk `id` decoded into slots.
    fn open(&mut self, ex: &Exec, id: i64) -> Result<&mut Slots> {
        let at = self.open_any(ex, id)?;
        if let Open::Packed { .. } = &self.open[at].2 {
            let slots = self.current(ex, id)?;
            self.open[at].2 = Open::Slots(slots);
        }
        let rk = self.open[at].1;
        match &mut self.open[at].2 {
            Open::Slots(s) => Ok(s),
            Open::Packed { .. } => Err(damaged(&rk, "still packed after decoding")),
        }
    }

    /// The element at absolute index `abs`, None if there is none.
    pub fn get(&self, ex: &Exec, abs: i64) -> Result<Option<Bytes>> {
        let id = self.id(abs);
        if self.is_open(id) || self.is_cleared(id) {
            return Ok(self.current(ex, id)?.swap_remove(self.slot(abs)));
        }
        let rk = self.record_key(id);
        match ex.get(&rk)? {
            Some(v) => element_at(self.shift, &rk, v, self.slot(abs)),
            None => Ok(None),
        }
    }

    /// Puts `v` at absolute index `abs`. Lent, not given: a packed chunk copies it,
    /// and only an unpacked one keeps a handle (each clone and drop of a request's
    /// argument is an atomic on the read buffer's count).
    pub fn set(&mut self, ex: &Exec, abs: i64, v: &Bytes) -> Result<()> {
        let (id, slot, shift) = (self.id(abs), self.slot(abs), self.shift);
        if !self.is_open(id) && shift > 0 && !self.is_cleared(id) {
            // A push onto a stored record grows it straight from where it lies: one copy
            // of the record, not one out of storage and another to grow it. A push onto
            // its front does not walk it either (~200 of LPUSH -P 16's ~6,350
            // instructions); the record is checked by the reads that walk it.
            let rk = self.record_key(id);
            let fused = ex
                .read_value(&rk, |rec| {
                    if is_prepend(rec, slot) {
                        return Ok(grow(rec, None, None, slot, v).map(|(g, l)| (g, None, l)));
                    }
                    let (count, _, last) = framing(shift, rec)?;
                    Ok(grow(rec, Some(count), Some(last), slot, v)
                        .map(|(g, l)| (g, Some(count + 1), l)))
                })?
                .transpose()
                .map_err(|w: &str| damaged(&rk, w))?
                .flatten();
            if let Some((rec, count, last)) = fused {
                self.open.push((id, rk, Open::Packed { rec, count, last }));
                return Ok(());
            }
        }
        let at = self.open_any(ex, id)?;
        if let (_, rk, Open::Packed { rec, count, last }) = &mut self.open[at] {
            if !is_prepend(rec, slot) {
                known_count(shift, rk, rec, count, last)?;
            }
            if let Some((grown, span)) = grow(rec, *count, *last, slot, v) {
                *rec = grown;
                *last = span;
                *count = count.map(|n| n + 1);
                return Ok(());
            }
        }
        self.open(ex, id)?[slot] = Some(v.clone());
        Ok(())
    }

    /// Takes the element at absolute index `abs` out of the list.
    pub fn take(&mut self, ex: &Exec, abs: i64) -> Result<Option<Bytes>> {
        let (id, slot, shift) = (self.id(abs), self.slot(abs), self.shift);
        let at = self.open_any(ex, id)?;
        if let (_, rk, Open::Packed { rec, count, last }) = &mut self.open[at] {
            let first = rec[0] as usize;
            let n = known_count(shift, rk, rec, count, last)?;
            if n > 0 && (slot == first || slot + 1 == first + n) {
                let front = slot == first;
                let known = if front { None } else { *last };
                let span = match known {
                    Some(span) => span,
                    None => {
                        let (_, head, tail) = framing(shift, rec).map_err(|w| damaged(rk, w))?;
                        if front {
                            head
                        } else {
                            tail
                        }
                    }
                };
                let taken = rec.slice(span.start..span.end);
                *count = Some(n - 1);
                if front {
                    // The next element starts the record: a new first slot byte.
                    let rest = spliced(&[(first + 1) as u8], None, &rec[span.end..]);
                    *last = last
                        .filter(|_| n > 1)
                        .map(|l| l.moved(rest.len(), rec.len()));
                    *rec = rest;
                } else {
                    // Shortened in place: a slice of it and the old handle's drop were two
                    // atomic read-modify-writes per pop, each a full barrier.
                    rec.truncate(span.len_at);
                    *last = None;
                }
                return Ok(Some(taken));
            }
        }
        Ok(self.open(ex, id)?[slot].take())
    }

    /// Removes the elements at absolute indices `from..to`; chunks wholly inside are
    /// dropped without being read.
    pub fn clear(&mut self, ex: &Exec, from: i64, to: i64) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        let (first, last) = (self.id(from), self.id(to - 1));
        let whole_from = if self.slot(from) == 0 {
            first
        } else {
            first + 1
        };
        let whole_to = if self.slot(to - 1) == (1 << self.shift) - 1 {
            last
        } else {
            last - 1
        };
        for abs in [from, to - 1] {
            let id = self.id(abs);
            if id < whole_from || id > whole_to {
                let (base, lo, hi) = self.bounds(id, from, to);
                let slots = self.open(ex, id)?;
                for i in lo..hi {
                    slots[(i - base) as usize] = None;
                }
            }
        }
        if whole_from <= whole_to {
            self.open
                .retain(|(i, ..)| !(whole_from..=whole_to).contains(i));
            self.cleared.push((whole_from, whole_to));
        }
        Ok(())
    }

    /// Elements at absolute indices `from..to` in `dir` order, as this command sees them;
    /// a missing one is a corrupt-record error (lists have no holes).
    pub fn range<'a, 'e>(
        &'a self,
        ex: &'a Exec<'e>,
        from: i64,
        to: i64,
        dir: Direction,
    ) -> Elements<'a, 'e> {
        let (next, last) = if from < to {
            match dir {
                Direction::Forward => (self.id(from), self.id(to - 1)),
                Direction::Reverse => (self.id(to - 1), self.id(from)),
            }
        } else {
            (0, -1)
        };
        Elements {
            chunks: self,
            ex,
            from,
            to,
            dir,
            next,
            last,
            done: from >= to,
            buf: VecDeque::new(),
        }
    }

    /// Calls `f` on each element at absolute indices `from..to`, in order, where it lies
    /// in storage (nothing copied out of unchanged chunks); returns how many there were,
    /// which the caller checks against `to - from`.
    pub fn visit(&self, ex: &Exec, from: i64, to: i64, f: &mut dyn FnMut(&[u8])) -> Result<usize> {
        let mut seen = 0;
        if from >= to {
            return Ok(seen);
        }
        for id in self.id(from)..=self.id(to - 1) {
            let (base, lo, hi) = self.bounds(id, from, to);
            let changed = self.is_open(id) || self.is_cleared(id);
            if changed || self.shift == 0 {
                for e in self.current(ex, id)?[(lo - base) as usize..(hi - base) as usize]
                    .iter()
                    .flatten()
                {
                    f(e);
                    seen += 1;
                }
                continue;
            }
            let rk = self.record_key(id);
            let (lo, hi) = ((lo - base) as usize, (hi - base) as usize);
            ex.read_value(&rk, |v| {
                walk(self.shift, v, |slot, s, e| {
                    if slot >= lo && slot < hi {
                        f(&v[s..e]);
                        seen += 1;
                    }
                    slot + 1 < hi
                })
            })?
            .transpose()
            .map_err(|w| damaged(&rk, w))?;
        }
        Ok(seen)
    }

    /// Writes every changed chunk back (or deletes it when emptied) and forgets them.
    pub fn flush(&mut self, ex: &mut Exec) -> CmdResult<()> {
        for (a, b) in std::mem::take(&mut self.cleared) {
            for id in a..=b {
                if !self.is_open(id) {
                    ex.delete_slice(&self.record_key(id))?;
                }
            }
        }
        for (_, rk, open) in std::mem::take(&mut self.open) {
            let slots = match open {
                Open::Packed { rec, .. } if rec.len() > 1 => {
                    ex.put_slice(&rk, rec)?;
                    continue;
                }
                Open::Packed { .. } => {
                    ex.delete_slice(&rk)?;
                    continue;
                }
                Open::Slots(s) => s,
            };
            match encode(self.shift, &slots) {
                Some(v) => ex.put_slice(&rk, v)?,
                None if slots.iter().all(Option::is_none) => ex.delete_slice(&rk)?,
                None => return Err(damaged(&rk, "hole left inside a chunk").into()),
            }
        }
        Ok(())
    }
}

/// [`Chunks::range`]'s iterator: `(absolute index, element)`.
pub struct Elements<'a, 'e> {
    chunks: &'a Chunks,
    ex: &'a Exec<'e>,
    from: i64,
    to: i64,
    dir: Direction,
    next: i64,
    last: i64,
    done: bool,
    buf: VecDeque<(i64, Bytes)>,
}

impl Elements<'_, '_> {
    /// Loads the next chunk's elements inside `from..to` into `buf`.
    fn refill(&mut self) -> Result<()> {
        let id = self.next;
        let forward = self.dir == Direction::Forward;
        self.done = id == self.last;
        // Unused once `done`, where it may pass the end of the index space.
        self.next = if forward {
            id.wrapping_add(1)
        } else {
            id.wrapping_sub(1)
        };
        let slots = self.chunks.current(self.ex, id)?;
        let (base, lo, hi) = self.chunks.bounds(id, self.from, self.to);
        for abs in lo..hi {
            match &slots[(abs - base) as usize] {
                Some(v) if forward => self.buf.push_back((abs, v.clone())),
                Some(v) => self.buf.push_front((abs, v.clone())),
                None => {
                    let why = format!("no element at index {abs} inside head..tail");
                    return Err(damaged(&self.chunks.record_key(id), &why));
                }
            }
        }
        Ok(())
    }
}

impl Iterator for Elements<'_, '_> {
    type Item = Result<(i64, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.buf.is_empty() {
            if self.done {
                return None;
            }
            if let Err(e) = self.refill() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

/// The elements of the chunk record `rk` (value `v`) by slot.
pub fn decode(shift: u8, rk: &[u8], v: Bytes) -> Result<Slots> {
    let mut slots = vec![None; 1 << shift];
    if shift == 0 {
        slots[0] = Some(v);
        return Ok(slots);
    }
    walk(shift, &v, |slot, s, e| {
        slots[slot] = Some(v.slice(s..e));
        true
    })
    .map_err(|w| damaged(rk, w))?;
    Ok(slots)
}

/// The element in `slot` of the chunk record `rk` (value `v`), decoding nothing else.
fn element_at(shift: u8, rk: &[u8], v: Bytes, slot: usize) -> Result<Option<Bytes>> {
    if shift == 0 {
        return Ok(Some(v));
    }
    let mut found = None;
    walk(shift, &v, |at, s, e| {
        if at == slot {
            found = Some((s, e));
        }
        at < slot
    })
    .map_err(|w| damaged(rk, w))?;
    Ok(found.map(|(s, e)| v.slice(s..e)))
}

/// The `(absolute index, element)` pairs a chunk record holds: `id` is the chunk id
/// decoded from its key.
pub fn elements_of(shift: u8, rk: &[u8], id: i64, v: Bytes) -> Result<Vec<(i64, Bytes)>> {
    let base = id
        .checked_mul(1 << shift)
        .ok_or_else(|| EngineError::corrupt("list chunk", rk, "chunk id out of range"))?;
    Ok(decode(shift, rk, v)?
        .into_iter()
        .enumerate()
        .filter_map(|(slot, e)| e.map(|e| (base + slot as i64, e)))
        .collect())
}

/// The corrupt-record error of the chunk record `rk`.
fn damaged(rk: &[u8], why: &str) -> EngineError {
    EngineError::corrupt("list chunk", rk, why)
}

/// Calls `f(slot, start, end)` for each element of a packed record until it returns
/// false; checks the record's framing and says what is wrong with it (the caller names
/// the record: building its key for every walk would cost a pop an allocation).
fn walk(
    shift: u8,
    v: &[u8],
    mut f: impl FnMut(usize, usize, usize) -> bool,
) -> std::result::Result<(), &'static str> {
    let first = *v.first().ok_or("empty record")? as usize;
    let mut pos = 1;
    let mut slot = first;
    while pos < v.len() {
        if slot >= 1 << shift {
            return Err("more elements than slots");
        }
        let mut len = u64::from(v[pos]);
        pos += 1;
        // Elements under 128 bytes, the common case, have a one-byte length.
        if len >= 0x80 {
            len &= 0x7f;
            let mut bits = 7;
            loop {
                let b = *v.get(pos).ok_or("truncated length")?;
                pos += 1;
                len |= u64::from(b & 0x7f) << bits;
                if b & 0x80 == 0 {
                    break;
                }
                bits += 7;
                if bits > 56 {
                    return Err("length overflows");
                }
            }
        }
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= v.len())
            .ok_or("element runs past the record")?;
        if !f(slot, pos, end) {
            return Ok(());
        }
        pos = end;
        slot += 1;
    }
    if slot == first {
        return Err("no element");
    }
    Ok(())
}

/// The record of a chunk, None when it holds nothing or has a hole.
fn encode(shift: u8, slots: &[Option<Bytes>]) -> Option<Bytes> {
    let first = slots.iter().position(Option::is_some)?;
    let last = slots.iter().rposition(Option::is_some)?;
    let held = &slots[first..=last];
    if shift == 0 {
        return held[0].clone();
    }
    let mut size = 1;
    for e in held {
        let n = e.as_ref()?.len();
        size += varint_len(n as u64) + n;
    }
    let mut out = BytesMut::with_capacity(size);
    out.put_u8(first as u8);
    for e in held.iter().flatten() {
        put_varint(&mut out, e.len() as u64);
        out.put_slice(e);
    }
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(shift: u8, at: &[(usize, &str)]) -> Slots {
        let mut s = vec![None; 1 << shift];
        for (i, v) in at {
            s[*i] = Some(Bytes::copy_from_slice(v.as_bytes()));
        }
        s
    }

    #[test]
    fn records_round_trip() {
        let big = "x".repeat(300);
        for s in [
            slots(4, &[(0, "a")]),
            slots(4, &[(15, "")]),
            slots(4, &[(3, "a"), (4, ""), (5, big.as_str())]),
            slots(1, &[(0, "a"), (1, "b")]),
        ] {
            let shift = (s.len() as f64).log2() as u8;
            let rec = encode(shift, &s).expect("encodes");
            assert_eq!(decode(shift, b"k", rec.clone()).ok(), Some(s.clone()));
            for (i, e) in s.iter().enumerate() {
                assert_eq!(
                    element_at(shift, b"k", rec.clone(), i).ok(),
                    Some(e.clone())
                );
            }
        }
        // One element per record: the record is the element.
        let s = slots(0, &[(0, "e")]);
        assert_eq!(encode(0, &s), Some(Bytes::from_static(b"e")));
        assert_eq!(decode(0, b"k", Bytes::from_static(b"e")).ok(), Some(s));
    }

    #[test]
    fn empty_and_holed_chunks_do_not_encode() {
        assert_eq!(encode(4, &slots(4, &[])), None);
        assert_eq!(encode(4, &slots(4, &[(1, "a"), (3, "b")])), None);
    }

    #[test]
    fn damaged_records_are_reported() {
        for bad in [
            &b""[..],          // no first slot
            b"\x00",           // no element
            b"\x00\x05ab",     // element past the end
            b"\x0f\x01a\x01b", // two elements from the last slot
            b"\x00\xff",       // truncated length
            b"\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        ] {
            let err = decode(4, b"rec", Bytes::copy_from_slice(bad));
            assert!(
                matches!(
                    err,
                    Err(EngineError::CorruptRecord {
                        what: "list chunk",
                        ..
                    })
                ),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn elements_carry_their_absolute_indices() {
        let rec = encode(4, &slots(4, &[(14, "a"), (15, "b")])).expect("encodes");
        let got = elements_of(4, b"k", -1, rec).expect("decodes");
        assert_eq!(
            got,
            vec![
                (-2, Bytes::from_static(b"a")),
                (-1, Bytes::from_static(b"b"))
            ]
        );
    }
}
