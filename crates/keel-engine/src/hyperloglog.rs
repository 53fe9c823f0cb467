//! HyperLogLog values in Redis's own byte format, so that a value GET from keel and
//! SET into Redis (or the other way) still counts: a 16-byte header (`HYLL`, the
//! encoding, three unused bytes, the cached cardinality little-endian with its top bit
//! set when stale) and 16,384 six-bit registers, stored either dense (12,288 bytes,
//! packed) or sparse (run-length opcodes) while that is smaller.
//!
//! Sparse opcodes: `00xxxxxx` a run of 1-64 zero registers, `01xxxxxx yyyyyyyy` a run
//! of 1-16,384 zeros, `1vvvvvxx` a run of 1-4 registers of value 1-32. A sparse value
//! turns dense when a register would exceed 32 or the value would grow past
//! [`SPARSE_MAX_BYTES`]. Every byte sequence is handled without panicking: one that
//! does not describe exactly 16,384 registers is [`Corrupt`].
//!
//! The element hash (MurmurHash64A, seed 0xadc83b19), the register choice and the
//! cardinality estimator (Ertl's, from the register histogram) are Redis's, so both
//! servers give the same counts and the same bytes for the same additions.

/// Registers per value (2^14).
pub const REGISTERS: usize = 1 << P;
/// Header bytes.
pub const HEADER: usize = 16;
/// Bytes of a dense value.
pub const DENSE_SIZE: usize = HEADER + (REGISTERS * 6).div_ceil(8);
/// Largest sparse value before it turns dense (Redis's `hll-sparse-max-bytes` default).
pub const SPARSE_MAX_BYTES: usize = 3000;

/// Index bits of the hash.
const P: u32 = 14;
/// Bits of the hash whose run of zeros a register counts.
const Q: usize = 64 - P as usize;
/// Largest register value.
const REGISTER_MAX: u8 = 63;
/// Encoding byte of a dense value.
const DENSE: u8 = 0;
/// Encoding byte of a sparse value.
const SPARSE: u8 = 1;
/// Largest value a sparse VAL opcode holds.
const SPARSE_VAL_MAX: u8 = 32;
/// Longest run of a VAL opcode.
const SPARSE_VAL_MAX_LEN: usize = 4;
/// Longest run of a one-byte ZERO opcode.
const SPARSE_ZERO_MAX_LEN: usize = 64;
/// 0.5 / ln 2: the estimator's constant for many registers.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// The bytes are a HyperLogLog value whose registers cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// Whether `v` has a HyperLogLog's header (and a dense one its exact length); Redis
/// answers other strings with WRONGTYPE.
pub fn is_hll(v: &[u8]) -> bool {
    v.len() >= HEADER
        && &v[..4] == b"HYLL"
        && v[4] <= SPARSE
        && (v[4] != DENSE || v.len() == DENSE_SIZE)
}

/// Whether a value (one [`is_hll`] accepted) is dense.
pub fn is_dense(v: &[u8]) -> bool {
    v.get(4) == Some(&DENSE)
}

/// A new, empty value: sparse, one run of 16,384 zeros, cardinality 0 cached.
pub fn new_value() -> Vec<u8> {
    let mut v = vec![0u8; HEADER];
    v[..4].copy_from_slice(b"HYLL");
    v[4] = SPARSE;
    push_zeros(&mut v, REGISTERS);
    v
}

/// The cached cardinality, when it is not stale.
pub fn cached(v: &[u8]) -> Option<u64> {
    let card: [u8; 8] = v.get(8..16)?.try_into().ok()?;
    (card[7] & 0x80 == 0).then(|| u64::from_le_bytes(card))
}

/// Marks the cached cardinality stale.
pub fn invalidate(v: &mut [u8]) {
    if let Some(b) = v.get_mut(15) {
        *b |= 0x80;
    }
}

/// MurmurHash64A, as Redis hashes elements (little-endian words).
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut k = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate() {
            h ^= u64::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element goes to and the value it offers: one more than the run of
/// zero bits above the index bits.
fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, 0xadc8_3b19);
    let index = (hash as usize) & (REGISTERS - 1);
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let (byte, fb) = (i * 6 / 8, (i * 6) & 7);
    let b0 = u32::from(regs.get(byte).copied().unwrap_or(0));
    let b1 = u32::from(regs.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) & u32::from(REGISTER_MAX)) as u8
}

fn dense_put(regs: &mut [u8], i: usize, val: u8) {
    let (byte, fb) = (i * 6 / 8, (i * 6) & 7);
    let v = u32::from(val);
    let mask = u32::from(REGISTER_MAX);
    if let Some(b) = regs.get_mut(byte) {
        *b &= !((mask << fb) as u8);
        *b |= (v << fb) as u8;
    }
    // The last register's high bits stop inside its first byte.
    if let Some(b) = regs.get_mut(byte + 1) {
        *b &= !((mask >> (8 - fb)) as u8);
        *b |= (v >> (8 - fb)) as u8;
    }
}

/// Raises register `i` of a dense value to `count`; true when it grew.
fn dense_raise(v: &mut [u8], i: usize, count: u8) -> bool {
    let regs = &mut v[HEADER..];
    if count > dense_get(regs, i) {
        dense_put(regs, i, count);
        true
    } else {
        false
    }
}

/// What a sparse opcode at `v[p]` covers: (registers, opcode bytes, value). A long
/// zero run cut off at the end reads its missing byte as 0, as Redis reads the string's
/// terminator.
fn opcode(v: &[u8], p: usize) -> (usize, usize, u8) {
    let b = v[p];
    if b & 0xc0 == 0 {
        (usize::from(b & 0x3f) + 1, 1, 0)
    } else if b & 0x80 != 0 {
        (usize::from(b & 0x3) + 1, 1, ((b >> 2) & 0x1f) + 1)
    } else {
        let lo = v.get(p + 1).copied().unwrap_or(0);
        ((usize::from(b & 0x3f) << 8 | usize::from(lo)) + 1, 2, 0)
    }
}

fn val_op(val: u8, len: usize) -> u8 {
    ((val - 1) << 2 | (len as u8 - 1)) | 0x80
}

/// Appends opcodes for a run of `len` zeros (at most 16,384).
fn push_zeros(out: &mut Vec<u8>, len: usize) {
    if len > SPARSE_ZERO_MAX_LEN {
        let l = len - 1;
        out.push((l >> 8) as u8 | 0x40);
        out.push((l & 0xff) as u8);
    } else {
        out.push((len - 1) as u8);
    }
}

/// Calls `visit(first register, run length, value)` for each opcode of a sparse value;
/// the number of registers they covered.
fn sparse_runs(v: &[u8], mut visit: impl FnMut(usize, usize, u8) -> bool) -> usize {
    let (mut p, mut idx) = (HEADER, 0usize);
    while p < v.len() {
        let (run, len, val) = opcode(v, p);
        if !visit(idx, run, val) {
            break;
        }
        idx += run;
        p += len;
    }
    idx
}

/// Rewrites a sparse value as dense (a dense one is left as it is).
pub fn to_dense(v: &mut Vec<u8>) -> Result<(), Corrupt> {
    if is_dense(v) {
        return Ok(());
    }
    let regs = registers(v)?;
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HEADER].copy_from_slice(&v[..HEADER]);
    dense[4] = DENSE;
    for (i, r) in regs.into_iter().enumerate().filter(|(_, r)| *r > 0) {
        dense_put(&mut dense[HEADER..], i, r);
    }
    *v = dense;
    Ok(())
}

/// Raises register `index` of a sparse value to `count` (Redis's `hllSparseSet`):
/// splits the opcode that covers it, merges equal neighbours back, and turns the value
/// dense when `count` exceeds what sparse holds or the value would grow too large.
fn sparse_raise(v: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    if count > SPARSE_VAL_MAX {
        return promote(v, index, count);
    }
    // Step 1: the opcode covering `index`, and the one before it.
    let (mut p, mut first, mut prev, mut span) = (HEADER, 0usize, None, 0usize);
    while p < v.len() {
        let (run, len, _) = opcode(v, p);
        span = run;
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += len;
        first += span;
    }
    if span == 0 || p >= v.len() {
        return Err(Corrupt);
    }
    let (runlen, oplen, cur) = opcode(v, p);
    if p + oplen > v.len() {
        // A long zero run cut after its first byte.
        return Err(Corrupt);
    }
    let is_val = v[p] & 0x80 != 0;
    let mut simple = false;
    if is_val {
        if cur >= count {
            return Ok(false);
        }
        simple = runlen == 1;
    } else if oplen == 1 && runlen == 1 {
        simple = true;
    }
    if simple {
        v[p] = val_op(count, 1);
    } else {
        // Step 2: the run split around the register.
        let last = first + span - 1;
        let mut seq: Vec<u8> = Vec::with_capacity(5);
        if is_val {
            if index != first {
                seq.push(val_op(cur, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(cur, last - index));
            }
        } else {
            if index != first {
                push_zeros(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        }
        if seq.len() > oplen && v.len() + seq.len() - oplen > SPARSE_MAX_BYTES {
            return promote(v, index, count);
        }
        // Step 3: the split run in place of the old opcode.
        v.splice(p..p + oplen, seq);
    }
    // Step 4: equal VAL runs side by side become one, looking at five opcodes at most.
    let mut q = prev.unwrap_or(HEADER);
    let mut budget = 5;
    while q < v.len() && budget > 0 {
        budget -= 1;
        let b = v[q];
        if b & 0x80 == 0 {
            q += if b & 0x40 != 0 { 2 } else { 1 };
            continue;
        }
        if let Some(&n) = v.get(q + 1) {
            if n & 0x80 != 0 {
                let (l1, _, v1) = opcode(v, q);
                let (l2, _, v2) = opcode(v, q + 1);
                if v1 == v2 && l1 + l2 <= SPARSE_VAL_MAX_LEN {
                    v[q + 1] = val_op(v1, l1 + l2);
                    v.remove(q);
                    continue;
                }
            }
        }
        q += 1;
    }
    invalidate(v);
    Ok(true)
}

/// Turns a sparse value dense and raises the register there.
fn promote(v: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(v)?;
    Ok(dense_raise(v, index, count))
}

/// Raises register `index` to `count` if it is lower; true when it changed.
pub fn raise(v: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    match v.get(4) {
        Some(&DENSE) => Ok(dense_raise(v, index, count)),
        Some(&SPARSE) => sparse_raise(v, index, count),
        _ => Err(Corrupt),
    }
}

/// Adds `element`; true when a register changed (the count may have).
pub fn add(v: &mut Vec<u8>, element: &[u8]) -> Result<bool, Corrupt> {
    let (index, count) = pattern(element);
    raise(v, index, count)
}

/// Raises each of `max`'s registers to `v`'s where that is higher.
pub fn merge_into(max: &mut [u8], v: &[u8]) -> Result<(), Corrupt> {
    if is_dense(v) {
        let regs = &v[HEADER..];
        for (i, m) in max.iter_mut().enumerate().take(REGISTERS) {
            *m = (*m).max(dense_get(regs, i));
        }
        return Ok(());
    }
    let covered = sparse_runs(v, |first, run, val| {
        if val == 0 {
            return true;
        }
        if first + run > REGISTERS {
            return false;
        }
        for m in &mut max[first..first + run] {
            *m = (*m).max(val);
        }
        true
    });
    if covered == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// The estimated number of distinct elements added to `v`.
pub fn count(v: &[u8]) -> Result<u64, Corrupt> {
    let mut histo = [0u64; 64];
    if is_dense(v) {
        // Three bytes hold four registers, least significant bits first.
        for c in v[HEADER..].chunks_exact(3) {
            let w = u32::from(c[0]) | u32::from(c[1]) << 8 | u32::from(c[2]) << 16;
            for shift in [0, 6, 12, 18] {
                histo[((w >> shift) & u32::from(REGISTER_MAX)) as usize] += 1;
            }
        }
    } else {
        let covered = sparse_runs(v, |_, run, val| {
            histo[usize::from(val)] += run as u64;
            true
        });
        if covered != REGISTERS {
            return Err(Corrupt);
        }
    }
    Ok(estimate(&histo))
}

/// The estimate of registers held one per byte (a merge of several values).
pub fn count_registers(regs: &[u8]) -> u64 {
    let mut histo = [0u64; 64];
    for r in regs {
        histo[usize::from(*r & REGISTER_MAX)] += 1;
    }
    estimate(&histo)
}

/// Ertl's estimator from the register histogram ("New cardinality estimation
/// algorithms for HyperLogLog sketches", 2017), as Redis computes it.
fn estimate(histo: &[u64; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if z == before {
            return z / 3.0;
        }
    }
}

/// Each register's value (16,384 of them), one per byte.
pub fn registers(v: &[u8]) -> Result<Vec<u8>, Corrupt> {
    let mut regs = vec![0u8; REGISTERS];
    merge_into(&mut regs, v)?;
    Ok(regs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_value_is_redis_s() {
        let v = new_value();
        assert_eq!(v.len(), 18);
        assert_eq!(&v[..5], b"HYLL\x01");
        assert_eq!(&v[16..], &[0x7f, 0xff]);
        assert_eq!(cached(&v), Some(0));
        assert_eq!(count(&v), Ok(0));
        assert!(is_hll(&v));
    }

    #[test]
    fn sparse_and_dense_agree() {
        let mut sparse = new_value();
        let mut dense = new_value();
        to_dense(&mut dense).expect("valid");
        assert_eq!(dense.len(), DENSE_SIZE);
        for i in 0..2_000u32 {
            let e = i.to_string();
            let a = add(&mut sparse, e.as_bytes()).expect("valid");
            let b = add(&mut dense, e.as_bytes()).expect("valid");
            assert_eq!(a, b, "{e}");
            assert_eq!(registers(&sparse), registers(&dense));
        }
        assert_eq!(count(&sparse), count(&dense));
        let n = count(&dense).expect("valid");
        assert!((1_960..=2_040).contains(&n), "{n}");
    }

    #[test]
    fn the_last_register_packs_into_the_last_byte() {
        let mut v = new_value();
        to_dense(&mut v).expect("valid");
        assert!(raise(&mut v, REGISTERS - 1, 63).expect("valid"));
        assert!(raise(&mut v, REGISTERS - 2, 5).expect("valid"));
        let regs = registers(&v).expect("valid");
        assert_eq!((regs[REGISTERS - 2], regs[REGISTERS - 1]), (5, 63));
        // Register 16,383 fills the top six bits of the last byte; 16,382's top two bits
        // (zero for 5) sit below them.
        assert_eq!(v[DENSE_SIZE - 1], 0xfc);
    }

    #[test]
    fn broken_values_are_corrupt_not_panics() {
        let mut v = new_value();
        for e in ["a", "b", "c"] {
            add(&mut v, e.as_bytes()).expect("valid");
        }
        let mut tail = v.clone();
        tail.extend_from_slice(b"hello");
        assert_eq!(count(&tail), Err(Corrupt));
        // Every one-byte change and every cut counts, or is Corrupt, without a panic.
        for at in HEADER..v.len() {
            for byte in [0u8, 0x3f, 0x40, 0x7f, 0x80, 0xff] {
                let mut w = v.clone();
                w[at] = byte;
                let _ = count(&w);
                let _ = add(&mut w.clone(), b"x");
                let _ = to_dense(&mut w);
            }
            let _ = count(&v[..at]);
        }
    }
}
