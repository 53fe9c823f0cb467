//! Bit commands on strings: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP.
//!
//! Bits are numbered as Redis numbers them: bit 0 is the most significant bit of byte 0.
//! Strings keep the layout of `string` (value inline in the metadata record).

use bytes::{Bytes, BytesMut};

use crate::args::{eq_ci, int_arg, parse_i64};
use crate::command::{flags::*, CommandSpec};
use crate::error::{fail, CmdResult};
use crate::exec::Exec;
use crate::meta::Body;
use crate::reply::{errors, Reply};
use crate::types::string::{spec_in, store_string, string_value, MAX_STRING_LEN};

/// The bit commands.
pub static COMMANDS: &[CommandSpec] = &[
    spec_in(
        "bitmap",
        "setbit",
        4,
        WRITE | DENYOOM,
        1,
        1,
        1,
        "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.",
        setbit,
    ),
    spec_in(
        "bitmap",
        "getbit",
        3,
        READONLY | FAST,
        1,
        1,
        1,
        "Returns a bit value by offset.",
        getbit,
    ),
    spec_in(
        "bitmap",
        "bitcount",
        -2,
        READONLY,
        1,
        1,
        1,
        "Counts the number of set bits (population counting) in a string.",
        bitcount,
    ),
    spec_in(
        "bitmap",
        "bitpos",
        -3,
        READONLY,
        1,
        1,
        1,
        "Finds the first set (1) or clear (0) bit in a string.",
        bitpos,
    ),
    spec_in(
        "bitmap",
        "bitop",
        -4,
        WRITE | DENYOOM,
        2,
        -1,
        1,
        "Performs bitwise operations on multiple strings, and stores the result.",
        bitop,
    ),
];

/// Parses a bit offset: 0 ..= 2^32 - 1 (a 512 MiB string's bits).
fn bit_offset(arg: &[u8]) -> CmdResult<u64> {
    match parse_i64(arg) {
        Some(o) if o >= 0 && ((o as u64) >> 3) < MAX_STRING_LEN => Ok(o as u64),
        _ => fail("ERR bit offset is not an integer or out of range"),
    }
}

fn setbit(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let offset = bit_offset(&args[2])?;
    let on = match parse_i64(&args[3]) {
        Some(v @ (0 | 1)) => v == 1,
        _ => return fail("ERR bit is not an integer or out of range"),
    };
    let old = string_value(ex, key)?;
    let byte = (offset >> 3) as usize; // below MAX_STRING_LEN, checked above
    let mask = 0x80u8 >> (offset & 7);
    let (old_meta, value) = match old {
        Some((m, v)) => (Some(m), v),
        None => (None, Bytes::new()),
    };
    let old_bit = value.get(byte).is_some_and(|b| b & mask != 0);
    let grows = old_meta.is_none() || byte >= value.len();
    if !grows && old_bit == on {
        return Ok(Reply::Int(i64::from(old_bit)));
    }
    let mut buf = BytesMut::zeroed(value.len().max(byte + 1));
    buf[..value.len()].copy_from_slice(&value);
    if on {
        buf[byte] |= mask;
    } else {
        buf[byte] &= !mask;
    }
    let expire_at = old_meta.as_ref().and_then(|m| m.expire_at);
    store_string(ex, key, &buf, expire_at, old_meta.as_ref())?;
    ex.notify('$', "setbit", key);
    Ok(Reply::Int(i64::from(old_bit)))
}

fn getbit(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let offset = bit_offset(&args[2])?;
    let Some((_, v)) = string_value(ex, &args[1])? else {
        return Ok(Reply::Int(0));
    };
    let set = v
        .get((offset >> 3) as usize)
        .is_some_and(|b| b & (0x80 >> (offset & 7)) != 0);
    Ok(Reply::Int(i64::from(set)))
}

/// Parses an optional BYTE|BIT unit word (true for BIT).
fn unit_is_bit(arg: &[u8]) -> CmdResult<bool> {
    if eq_ci(arg, "BIT") {
        Ok(true)
    } else if eq_ci(arg, "BYTE") {
        Ok(false)
    } else {
        fail(errors::SYNTAX)
    }
}

/// Clamps an inclusive Redis range to `total` units the way BITCOUNT/BITPOS do
/// (negative indexes from the end; the end clamped to the last unit). The result may be
/// empty (start > end); it is never out of bounds when non-empty.
fn clamp(start: i64, end: i64, total: i64) -> (i64, i64) {
    let mut s = if start < 0 { total + start } else { start };
    let mut e = if end < 0 { total + end } else { end };
    s = s.max(0);
    e = e.max(0);
    if e >= total {
        e = total - 1;
    }
    (s, e)
}

/// Reads bit `i` (0 = most significant of byte 0) of `v`.
fn bit_at(v: &[u8], i: u64) -> bool {
    v.get((i >> 3) as usize)
        .is_some_and(|b| b & (0x80 >> (i & 7)) != 0)
}

/// Set bits in `bytes`, eight bytes at a time.
fn popcount(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    let mut n: u64 = 0;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        n += u64::from(u64::from_ne_bytes(w).count_ones());
    }
    n + chunks
        .remainder()
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum::<u64>()
}

/// Counts the set bits in the inclusive bit range `s..=e` (within `v`).
fn count_bits(v: &[u8], s: u64, e: u64) -> u64 {
    let (sb, eb) = ((s >> 3) as usize, (e >> 3) as usize);
    let mut n = popcount(&v[sb..=eb]);
    // Remove the bits of the edge bytes outside the range.
    let head = !(0xFFu8 >> (s & 7));
    let tail = 0xFFu8.checked_shr((e & 7) as u32 + 1).unwrap_or(0);
    n -= u64::from((v[sb] & head).count_ones());
    n -= u64::from((v[eb] & tail).count_ones());
    n
}

fn bitcount(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    // Redis 7 looks the key up first: a missing key counts 0 whatever the arguments
    // (Redis 8 validates them first).
    let Some((_, v)) = string_value(ex, &args[1])? else {
        return Ok(Reply::Int(0));
    };
    let mut range = None;
    match args.len() {
        2 => {}
        4 | 5 => {
            let start = int_arg(&args[2])?;
            let end = int_arg(&args[3])?;
            let bit = args.len() == 5 && unit_is_bit(&args[4])?;
            range = Some((start, end, bit));
        }
        _ => return fail(errors::SYNTAX),
    }
    let len = v.len() as i64;
    let (s, e) = match range {
        None => (0, len * 8 - 1),
        Some((start, end, bit)) => {
            if start < 0 && end < 0 && start > end {
                return Ok(Reply::Int(0));
            }
            let total = if bit { len * 8 } else { len };
            let (s, e) = clamp(start, end, total);
            if s > e {
                return Ok(Reply::Int(0));
            }
            if bit {
                (s, e)
            } else {
                (s * 8, e * 8 + 7)
            }
        }
    };
    if s > e {
        return Ok(Reply::Int(0));
    }
    Ok(Reply::Int(count_bits(&v, s as u64, e as u64) as i64))
}

fn bitpos(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let want = match int_arg(&args[2])? {
        b @ (0 | 1) => b == 1,
        _ => return fail("ERR The bit argument must be 1 or 0."),
    };
    // Redis 7 looks the key up before parsing the range (Redis 8 parses first).
    let Some((_, v)) = string_value(ex, &args[1])? else {
        // A missing key is an endless run of zeros.
        return Ok(Reply::Int(if want { -1 } else { 0 }));
    };
    let mut range = None;
    match args.len() {
        3 => {}
        4..=6 => {
            let start = int_arg(&args[3])?;
            let bit = args.len() == 6 && unit_is_bit(&args[5])?;
            let end = if args.len() >= 5 {
                Some(int_arg(&args[4])?)
            } else {
                None
            };
            range = Some((start, end, bit));
        }
        _ => return fail(errors::SYNTAX),
    }
    let len = v.len() as i64;
    let end_given = range.is_some_and(|(_, e, _)| e.is_some());
    let (s, e) = match range {
        None => (0, len * 8 - 1),
        Some((start, end, bit)) => {
            let total = if bit { len * 8 } else { len };
            let (s, e) = clamp(start, end.unwrap_or(total - 1), total);
            if s > e {
                return Ok(Reply::Int(-1));
            }
            if bit {
                (s, e)
            } else {
                (s * 8, e * 8 + 7)
            }
        }
    };
    if s > e {
        return Ok(Reply::Int(-1));
    }
    if let Some(pos) = find_bit(&v, s as u64, e as u64, want) {
        return Ok(Reply::Int(pos as i64));
    }
    // Looking for a 0 without an explicit end: the string continues with zero padding.
    Ok(Reply::Int(if !want && !end_given { e + 1 } else { -1 }))
}

/// The first bit equal to `want` in the inclusive bit range `s..=e` of `v`.
fn find_bit(v: &[u8], s: u64, e: u64, want: bool) -> Option<u64> {
    let mut i = s;
    while i <= e {
        // Skip whole words, then whole bytes, that cannot contain the bit.
        if i & 63 == 0 && i + 63 <= e {
            let at = (i >> 3) as usize;
            let skip = v.get(at..at + 8).is_some_and(|w| {
                let mut b = [0u8; 8];
                b.copy_from_slice(w);
                u64::from_ne_bytes(b) == if want { 0 } else { u64::MAX }
            });
            if skip {
                i += 64;
                continue;
            }
        }
        if i & 7 == 0 && i + 7 <= e {
            let byte = v.get((i >> 3) as usize).copied().unwrap_or(0);
            let skip = if want { byte == 0 } else { byte == 0xFF };
            if skip {
                i += 8;
                continue;
            }
        }
        if bit_at(v, i) == want {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Which BITOP.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

fn bitop(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let op = if eq_ci(&args[1], "AND") {
        BitOp::And
    } else if eq_ci(&args[1], "OR") {
        BitOp::Or
    } else if eq_ci(&args[1], "XOR") {
        BitOp::Xor
    } else if eq_ci(&args[1], "NOT") {
        BitOp::Not
    } else {
        return fail(errors::SYNTAX);
    };
    if op == BitOp::Not && args.len() != 4 {
        return fail("ERR BITOP NOT must be called with a single source key.");
    }
    let dest = &args[2];
    let mut srcs = Vec::with_capacity(args.len() - 3);
    for key in &args[3..] {
        srcs.push(match ex.meta(key)?.map(|m| m.body) {
            Some(Body::String(v)) => v,
            Some(Body::Collection { .. }) => return fail(errors::WRONGTYPE),
            None => Bytes::new(),
        });
    }
    let max = srcs.iter().map(Bytes::len).max().unwrap_or(0);
    let old = ex.meta(dest)?;
    if max == 0 {
        if let Some(m) = old {
            ex.delete_key(dest, &m)?;
            ex.notify('g', "del", dest);
        }
        return Ok(Reply::Int(0));
    }
    let byte = |v: &Bytes, i: usize| v.get(i).copied().unwrap_or(0);
    let mut out = BytesMut::zeroed(max);
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = srcs.first().map_or(0, |v| byte(v, i));
        if op == BitOp::Not {
            acc = !acc;
        }
        for v in srcs.iter().skip(1) {
            match op {
                BitOp::And => acc &= byte(v, i),
                BitOp::Or => acc |= byte(v, i),
                BitOp::Xor => acc ^= byte(v, i),
                BitOp::Not => {}
            }
        }
        *o = acc;
    }
    // Like SET: the destination loses any expiry and any previous type.
    store_string(ex, dest, &out, None, old.as_ref())?;
    ex.notify('$', "set", dest);
    Ok(Reply::Int(max as i64))
}
