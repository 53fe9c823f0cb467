//! String commands.

use bytes::Bytes;

use crate::args::{eq_ci, int_arg};
use crate::command::{flags::*, CommandSpec};
use crate::error::{fail, CmdResult};
use crate::exec::Exec;
use crate::meta::{Body, KeyType, Meta};
use crate::reply::{errors, Reply};

/// The string commands.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "get",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Returns the string value of a key.",
        handler: get,
    },
    CommandSpec {
        name: "set",
        arity: -3,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "string",
        summary: "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
        handler: set,
    },
];

/// The value of a string key (None if absent); WRONGTYPE for other types.
pub fn string_value(ex: &mut Exec, key: &[u8]) -> CmdResult<Option<(Meta, Bytes)>> {
    match ex.typed(key, KeyType::String)? {
        Some(m) => match &m.body {
            Body::String(v) => {
                let v = v.clone();
                Ok(Some((m, v)))
            }
            Body::Collection { .. } => fail(errors::WRONGTYPE),
        },
        None => Ok(None),
    }
}

fn get(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    Ok(Reply::opt_bulk(string_value(ex, &args[1])?.map(|(_, v)| v)))
}

/// Expiry requested by SET-like options.
enum ExpiryOpt {
    /// Leave as the write normally does (SET clears it).
    Clear,
    /// KEEPTTL.
    Keep,
    /// Absolute ms timestamp.
    At(u64),
}

/// Parses an EX/PX/EXAT/PXAT amount into an absolute ms timestamp, with Redis's checks.
pub fn expire_at_from(ex: &Exec, unit: &[u8], amount: &[u8], cmd: &str) -> CmdResult<u64> {
    let n = int_arg(amount)?;
    let invalid = || format!("ERR invalid expire time in '{cmd}' command");
    if n <= 0 {
        return fail(invalid());
    }
    let now = ex.now_ms as i64;
    let at = if eq_ci(unit, "EX") {
        n.checked_mul(1000).and_then(|ms| ms.checked_add(now))
    } else if eq_ci(unit, "PX") {
        n.checked_add(now)
    } else if eq_ci(unit, "EXAT") {
        n.checked_mul(1000)
    } else {
        Some(n)
    };
    match at {
        Some(at) if at > 0 => Ok(at as u64),
        _ => fail(invalid()),
    }
}

fn set(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let value = args[2].clone();
    let (mut nx, mut xx, mut get_old) = (false, false, false);
    let mut expiry = ExpiryOpt::Clear;
    let mut expiry_given = false;
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        if eq_ci(a, "NX") && !xx {
            nx = true;
        } else if eq_ci(a, "XX") && !nx {
            xx = true;
        } else if eq_ci(a, "GET") {
            get_old = true;
        } else if eq_ci(a, "KEEPTTL") && !expiry_given {
            expiry = ExpiryOpt::Keep;
            expiry_given = true;
        } else if ["EX", "PX", "EXAT", "PXAT"].iter().any(|u| eq_ci(a, u))
            && !expiry_given
            && i + 1 < args.len()
        {
            expiry = ExpiryOpt::At(expire_at_from(ex, a, &args[i + 1], "set")?);
            expiry_given = true;
            i += 1;
        } else {
            return fail(errors::SYNTAX);
        }
        i += 1;
    }
    let old = ex.meta(key)?;
    let old_value = match (&old, get_old) {
        (Some(m), true) => match &m.body {
            Body::String(v) => Some(v.clone()),
            Body::Collection { .. } => return fail(errors::WRONGTYPE),
        },
        _ => None,
    };
    let exists = old.is_some();
    if (nx && exists) || (xx && !exists) {
        return Ok(if get_old {
            Reply::opt_bulk(old_value)
        } else {
            Reply::Nil
        });
    }
    let mut meta = Meta::string(value);
    meta.expire_at = match expiry {
        ExpiryOpt::Clear => None,
        ExpiryOpt::Keep => old.as_ref().and_then(|m| m.expire_at),
        ExpiryOpt::At(at) => Some(at),
    };
    if let Some(o) = &old {
        if o.kind != KeyType::String {
            // Overwriting a collection: its members become orphans.
            ex.delete_key(key, o)?;
            ex.put_meta(key, &meta, None)?;
        } else {
            ex.put_meta(key, &meta, Some(o))?;
        }
    } else {
        ex.put_meta(key, &meta, None)?;
    }
    if let Some(at) = meta.expire_at {
        if at <= ex.now_ms {
            // An absolute time in the past: Redis sets and expires at once.
            ex.delete_key(key, &meta)?;
        }
    }
    Ok(if get_old {
        Reply::opt_bulk(old_value)
    } else {
        Reply::Ok
    })
}
