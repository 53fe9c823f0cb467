//! BITFIELD and BITFIELD_RO (Redis's bitops.c): signed and unsigned integers of 1 to 64
//! bits (unsigned up to 63) at any bit offset of a string, read (GET), written (SET)
//! and incremented (INCRBY) in one command, with the overflow policy (WRAP, SAT, FAIL)
//! that OVERFLOW sets for the writes after it.
//!
//! Bits are numbered as SETBIT numbers them: bit 0 is the most significant bit of byte
//! 0. A write grows the string to its highest written bit first (zero bytes), as Redis
//! does, and the key keeps its TTL.

use bytes::{Bytes, BytesMut};

use crate::args::{eq_ci, parse_i64};
use crate::command::{flags::*, CommandSpec};
use crate::error::{fail, CmdResult};
use crate::exec::Exec;
use crate::reply::{errors, Reply};
use crate::types::string::{spec_in, store_string, string_value, MAX_STRING_LEN};

/// BITFIELD and BITFIELD_RO.
pub static COMMANDS: &[CommandSpec] = &[
    spec_in(
        "bitmap",
        "bitfield",
        -2,
        WRITE | DENYOOM,
        1,
        1,
        1,
        "Performs arbitrary bitfield integer operations on strings.",
        bitfield,
    ),
    spec_in(
        "bitmap",
        "bitfield_ro",
        -2,
        READONLY | FAST,
        1,
        1,
        1,
        "Performs arbitrary read-only bitfield integer operations on strings.",
        bitfield_ro,
    ),
];

const BAD_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const BAD_OVERFLOW: &str = "ERR Invalid OVERFLOW type specified";
const RO_GET_ONLY: &str = "ERR BITFIELD_RO only supports the GET subcommand";

/// What happens when a write does not fit its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    /// Modulo 2^bits (two's complement for signed fields).
    Wrap,
    /// Clamped to the field's smallest or largest value.
    Sat,
    /// Not written; the reply is nil.
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// One GET, SET or INCRBY.
#[derive(Debug, Clone, Copy)]
struct FieldOp {
    kind: Kind,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

/// `i1`..`i64` or `u1`..`u63`.
fn field_type(arg: &[u8]) -> CmdResult<(bool, u32)> {
    let signed = match arg.first() {
        Some(b'i' | b'I') => true,
        Some(b'u' | b'U') => false,
        _ => return fail(BAD_TYPE),
    };
    let bits = parse_i64(&arg[1..])
        .and_then(|b| u32::try_from(b).ok())
        .filter(|b| *b >= 1 && (*b <= 64 && signed || *b <= 63 && !signed));
    match bits {
        Some(b) => Ok((signed, b)),
        None => fail(BAD_TYPE),
    }
}

/// A bit offset, or `#n` for the n-th field of this width; the field must end inside a
/// string of the longest length a string may have.
fn field_offset(arg: &[u8], bits: u32) -> CmdResult<u64> {
    let (n, scale) = match arg.strip_prefix(b"#") {
        Some(rest) => (rest, u64::from(bits)),
        None => (arg, 1),
    };
    parse_i64(n)
        .and_then(|o| u64::try_from(o).ok())
        .and_then(|o| o.checked_mul(scale))
        .filter(|o| (o >> 3) < MAX_STRING_LEN)
        .map_or_else(|| fail(BAD_OFFSET), Ok)
}

fn parse(args: &[Bytes], readonly: bool) -> CmdResult<Vec<FieldOp>> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        // (is a write, takes a value): SET and INCRBY name their value after the offset.
        let write = if eq_ci(a, "GET") && left >= 2 {
            false
        } else if (eq_ci(a, "SET") || eq_ci(a, "INCRBY")) && left >= 3 {
            true
        } else if eq_ci(a, "OVERFLOW") && left >= 1 {
            let o = &args[j + 1];
            overflow = if eq_ci(o, "WRAP") {
                Overflow::Wrap
            } else if eq_ci(o, "SAT") {
                Overflow::Sat
            } else if eq_ci(o, "FAIL") {
                Overflow::Fail
            } else {
                return fail(BAD_OVERFLOW);
            };
            j += 2;
            continue;
        } else {
            return fail(errors::SYNTAX);
        };
        if readonly && write {
            return fail(RO_GET_ONLY);
        }
        let (signed, bits) = field_type(&args[j + 1])?;
        let offset = field_offset(&args[j + 2], bits)?;
        let kind = if !write {
            Kind::Get
        } else {
            let Some(v) = parse_i64(&args[j + 3]) else {
                return fail(errors::NOT_INTEGER);
            };
            if eq_ci(a, "SET") {
                Kind::Set(v)
            } else {
                Kind::IncrBy(v)
            }
        };
        ops.push(FieldOp {
            kind,
            signed,
            bits,
            offset,
            overflow,
        });
        j += if kind == Kind::Get { 3 } else { 4 };
    }
    Ok(ops)
}

/// The field's bits as an unsigned number (bits past the end of `v` read as 0).
fn read_bits(v: &[u8], offset: u64, bits: u32) -> u64 {
    (0..u64::from(bits)).fold(0u64, |acc, j| {
        let at = offset + j;
        let bit = v
            .get((at >> 3) as usize)
            .is_some_and(|b| b & (0x80 >> (at & 7)) != 0);
        (acc << 1) | u64::from(bit)
    })
}

/// Writes the low `bits` bits of `value` at `offset` (`v` holds the field).
fn write_bits(v: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..u64::from(bits) {
        let at = offset + j;
        let mask = 0x80u8 >> (at & 7);
        let on = (value >> (u64::from(bits) - 1 - j)) & 1 == 1;
        let byte = &mut v[(at >> 3) as usize];
        if on {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }
}

/// The field's value: sign-extended for a signed field.
fn field_value(v: &[u8], op: &FieldOp) -> i128 {
    let raw = read_bits(v, op.offset, op.bits);
    if op.signed && op.bits < 64 && raw >> (op.bits - 1) == 1 {
        i128::from(raw) - (1i128 << op.bits)
    } else if op.signed {
        i128::from(raw as i64)
    } else {
        i128::from(raw)
    }
}

/// `want` fitted into the field as the overflow policy says: None when it does not fit
/// and the policy is FAIL.
fn fit(want: i128, op: &FieldOp) -> Option<i128> {
    let (min, max) = if op.signed {
        (-(1i128 << (op.bits - 1)), (1i128 << (op.bits - 1)) - 1)
    } else {
        (0, (1i128 << op.bits) - 1)
    };
    if (min..=max).contains(&want) {
        return Some(want);
    }
    match op.overflow {
        Overflow::Fail => None,
        Overflow::Sat => Some(want.clamp(min, max)),
        Overflow::Wrap => {
            let span = 1i128 << op.bits;
            let low = want.rem_euclid(span);
            Some(if op.signed && low > max {
                low - span
            } else {
                low
            })
        }
    }
}

fn bitfield(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    run(ex, args, false)
}

fn bitfield_ro(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    run(ex, args, true)
}

fn run(ex: &mut Exec, args: &[Bytes], readonly: bool) -> CmdResult<Reply> {
    let ops = parse(args, readonly)?;
    let key = &args[1];
    let (meta, value) = match string_value(ex, key)? {
        Some((m, v)) => (Some(m), v),
        None => (None, Bytes::new()),
    };
    // The writes' highest bit decides the length, before any of them runs.
    let need = ops
        .iter()
        .filter(|o| o.kind != Kind::Get)
        .map(|o| ((o.offset + u64::from(o.bits) - 1) >> 3) as usize + 1)
        .max();
    let Some(need) = need else {
        let out = ops
            .iter()
            .map(|o| Reply::Int(field_value(&value, o) as i64))
            .collect();
        return Ok(Reply::Array(out));
    };
    let grown = meta.is_none() || need > value.len();
    let mut buf = BytesMut::zeroed(value.len().max(need));
    buf[..value.len()].copy_from_slice(&value);
    let mut changed = false;
    let mut out = Vec::with_capacity(ops.len());
    for op in &ops {
        let old = field_value(&buf, op);
        let (want, reply_new) = match op.kind {
            Kind::Get => {
                out.push(Reply::Int(old as i64));
                continue;
            }
            Kind::Set(v) if op.signed => (i128::from(v), false),
            // An unsigned field takes the value's 64 bits as unsigned, as Redis does.
            Kind::Set(v) => (i128::from(v as u64), false),
            Kind::IncrBy(d) => (old + i128::from(d), true),
        };
        match fit(want, op) {
            Some(new) => {
                write_bits(&mut buf, op.offset, op.bits, new as u64);
                changed |= grown || new != old;
                out.push(Reply::Int(if reply_new { new } else { old } as i64));
            }
            None => out.push(Reply::Nil),
        }
    }
    if changed {
        let expire_at = meta.as_ref().and_then(|m| m.expire_at);
        store_string(ex, key, &buf, expire_at, meta.as_ref())?;
        ex.notify('$', "setbit", key);
    }
    Ok(Reply::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(signed: bool, bits: u32, overflow: Overflow) -> FieldOp {
        FieldOp {
            kind: Kind::Get,
            signed,
            bits,
            offset: 0,
            overflow,
        }
    }

    #[test]
    fn overflow_policies_follow_redis() {
        let i8w = op(true, 8, Overflow::Wrap);
        assert_eq!(fit(128, &i8w), Some(-128));
        assert_eq!(fit(-129, &i8w), Some(127));
        assert_eq!(fit(300, &i8w), Some(44));
        let u8s = op(false, 8, Overflow::Sat);
        assert_eq!(fit(256, &u8s), Some(255));
        assert_eq!(fit(-1, &u8s), Some(0));
        assert_eq!(fit(i128::from(u64::MAX), &u8s), Some(255));
        let i64w = op(true, 64, Overflow::Wrap);
        assert_eq!(
            fit(i128::from(i64::MAX) + 1, &i64w),
            Some(i128::from(i64::MIN))
        );
        assert_eq!(fit(1000, &op(false, 2, Overflow::Fail)), None);
        assert_eq!(fit(3, &op(false, 2, Overflow::Fail)), Some(3));
    }

    #[test]
    fn fields_read_and_write_msb_first_across_bytes() {
        let mut v = vec![0u8; 3];
        write_bits(&mut v, 5, 8, 0xA5);
        assert_eq!(v, [0b0000_0101, 0b0010_1000, 0]);
        assert_eq!(read_bits(&v, 5, 8), 0xA5);
        let signed = FieldOp {
            offset: 5,
            ..op(true, 8, Overflow::Wrap)
        };
        assert_eq!(field_value(&v, &signed), 0xA5 - 256);
        assert_eq!(read_bits(&v, 20, 16), 0, "past the end reads zeros");
    }
}
