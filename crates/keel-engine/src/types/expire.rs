//! Expiry commands (EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX/XX/GT/LT; TTL, PTTL,
//! EXPIRETIME, PEXPIRETIME; PERSIST) and the active expiry cycle.
//!
//! An expiry is an absolute ms timestamp in the key's metadata, mirrored in the E index
//! (kept in step by `Exec::put_meta`). Time is the log entry's, so every replica expires
//! the same keys at the same entry. A time at or before the entry's time deletes the key
//! at once, as Redis does.

use bytes::Bytes;
use keel_storage::Direction;

use crate::args::{eq_ci, int_arg};
use crate::command::{flags::*, CommandSpec, Handler};
use crate::error::{fail, CmdError, CmdResult, Result};
use crate::exec::Exec;
use crate::keys;
use crate::reply::Reply;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary,
        handler,
    }
}

/// The expiry commands.
pub static COMMANDS: &[CommandSpec] = &[
    spec(
        "expire",
        -3,
        WRITE | FAST,
        "Sets the expiration time of a key in seconds.",
        expire,
    ),
    spec(
        "pexpire",
        -3,
        WRITE | FAST,
        "Sets the expiration time of a key in milliseconds.",
        pexpire,
    ),
    spec(
        "expireat",
        -3,
        WRITE | FAST,
        "Sets the expiration time of a key to a Unix timestamp.",
        expireat,
    ),
    spec(
        "pexpireat",
        -3,
        WRITE | FAST,
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        pexpireat,
    ),
    spec(
        "ttl",
        2,
        READONLY | FAST | NO_TOUCH,
        "Returns the expiration time in seconds of a key.",
        ttl,
    ),
    spec(
        "pttl",
        2,
        READONLY | FAST | NO_TOUCH,
        "Returns the expiration time in milliseconds of a key.",
        pttl,
    ),
    spec(
        "expiretime",
        2,
        READONLY | FAST | NO_TOUCH,
        "Returns the expiration time of a key as a Unix timestamp.",
        expiretime,
    ),
    spec(
        "pexpiretime",
        2,
        READONLY | FAST | NO_TOUCH,
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
        pexpiretime,
    ),
    spec(
        "persist",
        2,
        WRITE | FAST,
        "Removes the expiration time of a key.",
        persist,
    ),
];

/// How the EXPIRE family reads its time argument.
#[derive(Clone, Copy)]
enum When {
    /// Seconds from now.
    RelSecs,
    /// Milliseconds from now.
    RelMs,
    /// Unix time in seconds.
    AbsSecs,
    /// Unix time in milliseconds.
    AbsMs,
}

fn expire(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    expire_generic(ex, args, When::RelSecs, "expire")
}

fn pexpire(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    expire_generic(ex, args, When::RelMs, "pexpire")
}

fn expireat(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    expire_generic(ex, args, When::AbsSecs, "expireat")
}

fn pexpireat(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    expire_generic(ex, args, When::AbsMs, "pexpireat")
}

fn expire_generic(ex: &mut Exec, args: &[Bytes], when: When, name: &str) -> CmdResult<Reply> {
    let key = &args[1];
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        if eq_ci(opt, "NX") {
            nx = true;
        } else if eq_ci(opt, "XX") {
            xx = true;
        } else if eq_ci(opt, "GT") {
            gt = true;
        } else if eq_ci(opt, "LT") {
            lt = true;
        } else {
            return fail(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(opt)
            ));
        }
    }
    if nx && (xx || gt || lt) {
        return fail("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return fail("ERR GT and LT options at the same time are not compatible");
    }
    let n = int_arg(&args[2])?;
    let invalid = || format!("ERR invalid expire time in '{name}' command");
    let ms = match when {
        When::RelSecs | When::AbsSecs => n
            .checked_mul(1000)
            .ok_or_else(|| CmdError::Reply(Reply::err(invalid())))?,
        When::RelMs | When::AbsMs => n,
    };
    let base = match when {
        When::RelSecs | When::RelMs => i64::try_from(ex.now_ms).unwrap_or(i64::MAX),
        When::AbsSecs | When::AbsMs => 0,
    };
    let Some(at) = ms.checked_add(base) else {
        return fail(invalid());
    };
    let Some(old) = ex.meta(key)? else {
        return Ok(Reply::Int(0));
    };
    let current = old.expire_at;
    let at_ms = at; // may be negative: then it is in the past
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| at_ms <= c as i64))
        || (lt && current.is_some_and(|c| at_ms >= c as i64));
    if refused {
        return Ok(Reply::Int(0));
    }
    if at_ms <= i64::try_from(ex.now_ms).unwrap_or(i64::MAX) {
        ex.delete_key(key, &old)?;
        ex.notify('g', "del", key);
        return Ok(Reply::Int(1));
    }
    let mut meta = old.clone();
    meta.expire_at = Some(at_ms as u64);
    ex.put_meta(key, &meta, Some(&old))?;
    ex.notify('g', "expire", key);
    Ok(Reply::Int(1))
}

/// Remaining ms of `key`'s expiry: -2 missing, -1 persistent.
fn remaining_ms(ex: &mut Exec, key: &[u8]) -> CmdResult<i64> {
    Ok(match ex.meta(key)? {
        None => -2,
        Some(m) => match m.expire_at {
            None => -1,
            Some(at) => i64::try_from(at.saturating_sub(ex.now_ms)).unwrap_or(i64::MAX),
        },
    })
}

fn ttl(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let ms = remaining_ms(ex, &args[1])?;
    // Redis rounds to the nearest second.
    Ok(Reply::Int(if ms < 0 { ms } else { (ms + 500) / 1000 }))
}

fn pttl(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    Ok(Reply::Int(remaining_ms(ex, &args[1])?))
}

/// Absolute expiry of `key` in ms: -2 missing, -1 persistent.
fn absolute_ms(ex: &mut Exec, key: &[u8]) -> CmdResult<i64> {
    Ok(match ex.meta(key)? {
        None => -2,
        Some(m) => m
            .expire_at
            .map_or(-1, |at| i64::try_from(at).unwrap_or(i64::MAX)),
    })
}

fn expiretime(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let ms = absolute_ms(ex, &args[1])?;
    Ok(Reply::Int(if ms < 0 { ms } else { ms / 1000 }))
}

fn pexpiretime(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    Ok(Reply::Int(absolute_ms(ex, &args[1])?))
}

fn persist(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let Some(old) = ex.meta(key)? else {
        return Ok(Reply::Int(0));
    };
    if old.expire_at.is_none() {
        return Ok(Reply::Int(0));
    }
    let mut meta = old.clone();
    meta.expire_at = None;
    ex.put_meta(key, &meta, Some(&old))?;
    ex.notify('g', "persist", key);
    Ok(Reply::Int(1))
}

/// Deletes up to `max` keys whose expiry time is at or before the entry's time, oldest
/// first, by walking the expiry index. Returns how many were deleted.
pub fn expire_cycle(ex: &mut Exec, max: usize) -> Result<usize> {
    let mut due: Vec<(u8, bytes::Bytes)> = Vec::new();
    // The index is ordered by (db, time): per database, the due entries come first.
    'dbs: for db in 0..keys::DATABASES {
        let lo = keys::expiry_key(db, 0, b"");
        let hi = keys::expiry_key(db, ex.now_ms.saturating_add(1), b"");
        let range = keel_storage::ScanRange::new(lo.as_ref()..hi.as_ref());
        for item in ex.scan(range, Direction::Forward) {
            let (k, _) = item?;
            if let Some((db, _, key)) = keys::parse_expiry_key(&k) {
                due.push((db, bytes::Bytes::copy_from_slice(key)));
                if due.len() >= max {
                    break 'dbs;
                }
            }
        }
    }
    let mut n = 0;
    for (db, key) in due {
        match ex.meta_in(db, &key) {
            // meta_in deleted it inside this entry if it was due.
            Ok(None) => n += 1,
            Ok(Some(_)) => {}
            Err(CmdError::Engine(e)) => return Err(e),
            Err(CmdError::Reply(_)) => {}
        }
    }
    Ok(n)
}
