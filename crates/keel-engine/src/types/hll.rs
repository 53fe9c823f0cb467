//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE over string values in Redis's byte
//! format (see [`crate::hyperloglog`]).
//!
//! One difference from Redis, by design: PFCOUNT is a read, served from a snapshot like
//! every read, so it never writes the cardinality it computed back into the value's
//! cache (Redis does, which makes its PFCOUNT a write in disguise: it touches WATCHed
//! keys and is replicated). A cached cardinality that is valid is still used, and
//! PFADD and PFMERGE mark it stale as Redis does.

use bytes::Bytes;

use crate::command::{flags::*, CommandSpec};
use crate::error::{fail, CmdResult};
use crate::exec::Exec;
use crate::hyperloglog::{self as hll, Corrupt};
use crate::meta::Meta;
use crate::reply::Reply;
use crate::types::string::{store_string, string_value};

/// The HyperLogLog commands.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "pfadd",
        arity: -2,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "hyperloglog",
        summary: "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.",
        handler: pfadd,
    },
    CommandSpec {
        name: "pfcount",
        arity: -2,
        flags: READONLY,
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "hyperloglog",
        summary:
            "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).",
        handler: pfcount,
    },
    CommandSpec {
        name: "pfmerge",
        arity: -2,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "hyperloglog",
        summary: "Merges one or more HyperLogLog values into a single key.",
        handler: pfmerge,
    },
];

const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

impl From<Corrupt> for crate::error::CmdError {
    fn from(_: Corrupt) -> Self {
        crate::error::CmdError::Reply(Reply::err(CORRUPT))
    }
}

/// The HyperLogLog at `key` (None if absent); WRONGTYPE for another type or a string
/// that is not one.
fn load(ex: &mut Exec, key: &[u8]) -> CmdResult<Option<(Meta, Bytes)>> {
    match string_value(ex, key)? {
        Some((meta, v)) if hll::is_hll(&v) => Ok(Some((meta, v))),
        Some(_) => fail(NOT_HLL),
        None => Ok(None),
    }
}

/// Stores `v` at `key`, keeping the key's expiry.
fn save(ex: &mut Exec, key: &[u8], v: &[u8], old: Option<&Meta>) -> CmdResult<()> {
    let expire_at = old.and_then(|m| m.expire_at);
    store_string(ex, key, v, expire_at, old)?;
    ex.notify('s', "pfadd", key);
    Ok(())
}

fn pfadd(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let (old, mut v, mut updated) = match load(ex, key)? {
        Some((meta, v)) => (Some(meta), v.to_vec(), false),
        None => (None, hll::new_value(), true),
    };
    for element in &args[2..] {
        // A corrupt value answers the error and is left as it was.
        updated |= hll::add(&mut v, element)?;
    }
    if !updated {
        return Ok(Reply::Int(0));
    }
    hll::invalidate(&mut v);
    save(ex, key, &v, old.as_ref())?;
    Ok(Reply::Int(1))
}

fn pfcount(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    if args.len() > 2 {
        let mut max = vec![0u8; hll::REGISTERS];
        for key in &args[1..] {
            if let Some((_, v)) = load(ex, key)? {
                hll::merge_into(&mut max, &v)?;
            }
        }
        return Ok(Reply::Int(hll::count_registers(&max) as i64));
    }
    let Some((_, v)) = load(ex, &args[1])? else {
        return Ok(Reply::Int(0));
    };
    let card = match hll::cached(&v) {
        Some(c) => c,
        None => hll::count(&v)?,
    };
    Ok(Reply::Int(card as i64))
}

fn pfmerge(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let mut max = vec![0u8; hll::REGISTERS];
    let mut dense = false;
    // The destination is read as a source too (and so type-checked first).
    let mut dst: Option<(Meta, Bytes)> = None;
    for (i, key) in args[1..].iter().enumerate() {
        let Some((meta, v)) = load(ex, key)? else {
            continue;
        };
        dense |= hll::is_dense(&v);
        hll::merge_into(&mut max, &v)?;
        if i == 0 {
            dst = Some((meta, v));
        }
    }
    let (old, mut v) = match dst {
        Some((meta, v)) => (Some(meta), v.to_vec()),
        None => (None, hll::new_value()),
    };
    if dense {
        hll::to_dense(&mut v)?;
    }
    for (i, m) in max.iter().enumerate() {
        if *m > 0 {
            // A register the destination already holds at least as high is kept.
            hll::raise(&mut v, i, *m)?;
        }
    }
    hll::invalidate(&mut v);
    save(ex, &args[1], &v, old.as_ref())?;
    Ok(Reply::Ok)
}
