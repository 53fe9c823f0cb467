//! String commands: GET/SET and the SET family, MGET/MSET, GETEX/GETDEL/GETSET, ranges,
//! the INCR family and LCS. (Bit commands live in `bits`.)
//!
//! Layout: a string is its metadata record; the value sits inline in [`Meta`] (no
//! sub-keys), so every string command is one point read and at most one point write.

mod longdouble;

use bytes::{Bytes, BytesMut};

use crate::args::{eq_ci, int_arg, parse_i64};
use crate::command::{flags::*, CommandSpec, Handler};
use crate::error::{fail, CmdResult};
use crate::exec::Exec;
use crate::meta::{Body, KeyType, Meta};
use crate::reply::{errors, Reply};

/// Largest string a command may build (Redis's default proto-max-bulk-len, 512 MiB).
pub const MAX_STRING_LEN: u64 = 512 * 1024 * 1024;

/// A table entry of the "string" group.
#[allow(clippy::too_many_arguments)]
pub(crate) const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    first_key: i32,
    last_key: i32,
    step: i32,
    summary: &'static str,
    handler: Handler,
) -> CommandSpec {
    spec_in(
        "string", name, arity, flags, first_key, last_key, step, summary, handler,
    )
}

/// A table entry of command group `group`.
#[allow(clippy::too_many_arguments)]
pub(crate) const fn spec_in(
    group: &'static str,
    name: &'static str,
    arity: i32,
    flags: u32,
    first_key: i32,
    last_key: i32,
    step: i32,
    summary: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key,
        last_key,
        step,
        group,
        summary,
        handler,
    }
}

/// The string commands.
pub static COMMANDS: &[CommandSpec] = &[
    spec(
        "get",
        2,
        READONLY | FAST | POINT_READ,
        1,
        1,
        1,
        "Returns the string value of a key.",
        get,
    ),
    spec(
        "set",
        -3,
        WRITE | DENYOOM,
        1,
        1,
        1,
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
        set,
    ),
    spec(
        "setnx",
        3,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "Set the string value of a key only when the key doesn't exist.",
        setnx,
    ),
    spec(
        "setex",
        4,
        WRITE | DENYOOM,
        1,
        1,
        1,
        "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
        setex,
    ),
    spec(
        "psetex",
        4,
        WRITE | DENYOOM,
        1,
        1,
        1,
        "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
        psetex,
    ),
    spec(
        "mget",
        -2,
        READONLY | FAST,
        1,
        -1,
        1,
        "Atomically returns the string values of one or more keys.",
        mget,
    ),
    spec(
        "mset",
        -3,
        WRITE | DENYOOM,
        1,
        -1,
        2,
        "Atomically creates or modifies the string values of one or more keys.",
        mset,
    ),
    spec(
        "msetnx",
        -3,
        WRITE | DENYOOM,
        1,
        -1,
        2,
        "Atomically modifies the string values of one or more keys only when all keys don't exist.",
        msetnx,
    ),
    spec(
        "getset",
        3,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "Returns the previous string value of a key after setting it to a new value.",
        getset,
    ),
    spec(
        "getdel",
        2,
        WRITE | FAST,
        1,
        1,
        1,
        "Returns the string value of a key after deleting the key.",
        getdel,
    ),
    spec(
        "getex",
        -2,
        WRITE | FAST,
        1,
        1,
        1,
        "Returns the string value of a key after setting its expiration time.",
        getex,
    ),
    spec(
        "append",
        3,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "Appends a string to the value of a key. Creates the key if it doesn't exist.",
        append,
    ),
    spec(
        "strlen",
        2,
        READONLY | FAST | POINT_READ,
        1,
        1,
        1,
        "Returns the length of a string value.",
        strlen,
    ),
    spec(
        "getrange",
        4,
        READONLY,
        1,
        1,
        1,
        "Returns a substring of the string stored at a key.",
        getrange,
    ),
    spec(
        "substr",
        4,
        READONLY,
        1,
        1,
        1,
        "Returns a substring from a string value (deprecated alias of GETRANGE).",
        getrange,
    ),
    spec(
        "setrange",
        4,
        WRITE | DENYOOM,
        1,
        1,
        1,
        "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
        setrange,
    ),
    spec(
        "incr",
        2,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        incr,
    ),
    spec(
        "decr",
        2,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        decr,
    ),
    spec(
        "incrby",
        3,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        incrby,
    ),
    spec(
        "decrby",
        3,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
        decrby,
    ),
    spec(
        "incrbyfloat",
        3,
        WRITE | DENYOOM | FAST,
        1,
        1,
        1,
        "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        incrbyfloat,
    ),
    spec(
        "lcs",
        -3,
        READONLY,
        1,
        2,
        1,
        "Finds the longest common substring.",
        lcs,
    ),
];

/// The metadata and value of a string key (None if absent); WRONGTYPE for other types.
pub fn string_value(ex: &mut Exec, key: &[u8]) -> CmdResult<Option<(Meta, Bytes)>> {
    match ex.typed(key, KeyType::String)? {
        // The value is moved out, not cloned: the first clone of a value read from
        // storage allocates a shared header. The metadata keeps an empty body; callers
        // pass it on as the record being replaced, which only its expiry matters for.
        Some(mut m) => match std::mem::replace(&mut m.body, Body::String(Bytes::new())) {
            Body::String(v) => Ok(Some((m, v))),
            Body::Collection { .. } => fail(errors::WRONGTYPE),
        },
        None => Ok(None),
    }
}

fn get(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    Ok(Reply::opt_bulk(string_value(ex, &args[1])?.map(|(_, v)| v)))
}

/// The expiry options of SET and GETEX as Redis's `parseExtendedStringArgumentsOrReply`
/// accepts them: one unit among EX/PX/EXAT/PXAT (repeating the same unit is allowed, the
/// last amount wins), KEEPTTL (SET only) or PERSIST (GETEX only), never mixed.
#[derive(Default)]
struct ExpiryOpts {
    /// The unit word and its amount, unvalidated.
    unit: Option<(Bytes, Bytes)>,
    keep: bool,
    persist: bool,
}

impl ExpiryOpts {
    /// Consumes the option at `args[*i]` if it is an expiry option allowed here, moving
    /// `*i` past its amount; false if it is not one (the caller then tries others).
    fn take(&mut self, args: &[Bytes], i: &mut usize, for_set: bool) -> bool {
        let a = &args[*i];
        if eq_ci(a, "KEEPTTL") && for_set && self.unit.is_none() {
            self.keep = true;
            return true;
        }
        if eq_ci(a, "PERSIST") && !for_set && self.unit.is_none() {
            self.persist = true;
            return true;
        }
        let is_unit = ["EX", "PX", "EXAT", "PXAT"].iter().any(|u| eq_ci(a, u));
        let same_unit = self
            .unit
            .as_ref()
            .is_none_or(|(u, _)| u.eq_ignore_ascii_case(a));
        if is_unit && same_unit && !self.keep && !self.persist && *i + 1 < args.len() {
            self.unit = Some((a.clone(), args[*i + 1].clone()));
            *i += 1;
            return true;
        }
        false
    }

    /// The absolute expiry the unit option asks for (validated as `cmd`), if any.
    fn expire_at(&self, ex: &Exec, cmd: &str) -> CmdResult<Option<u64>> {
        match &self.unit {
            Some((unit, amount)) => Ok(Some(expire_at_from(ex, unit, amount, cmd)?)),
            None => Ok(None),
        }
    }
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
    let (key, value) = (&args[1], &args[2]);
    let (mut nx, mut xx, mut get_old) = (false, false, false);
    let mut opts = ExpiryOpts::default();
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        if eq_ci(a, "NX") && !xx {
            nx = true;
        } else if eq_ci(a, "XX") && !nx {
            xx = true;
        } else if eq_ci(a, "GET") {
            get_old = true;
        } else if !opts.take(args, &mut i, true) {
            return fail(errors::SYNTAX);
        }
        i += 1;
    }
    // Redis validates the time after the whole syntax, before looking at the key.
    let at = opts.expire_at(ex, "set")?;
    // Without GET the old value is replaced unseen: only its header is read.
    let old = if get_old {
        ex.meta(key)?
    } else {
        ex.meta_head(key)?
    };
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
    let expire_at = if opts.keep {
        old.as_ref().and_then(|m| m.expire_at)
    } else {
        at
    };
    store_string(ex, key, value, expire_at, old.as_ref())?;
    ex.notify('$', "set", key);
    if at.is_some() {
        ex.notify('g', "expire", key);
    }
    Ok(if get_old {
        Reply::opt_bulk(old_value)
    } else {
        Reply::Ok
    })
}

/// Writes `value` as the string at `key` with `expire_at`, replacing `old` (the key's live
/// metadata, if any): a collection it held is released, an expiry time already past
/// deletes the key at once (Redis sets and expires in one step).
pub fn store_string(
    ex: &mut Exec,
    key: &[u8],
    value: &[u8],
    expire_at: Option<u64>,
    old: Option<&Meta>,
) -> CmdResult<()> {
    match old {
        Some(o) if o.kind != KeyType::String => {
            // Overwriting a collection: its members become orphans.
            ex.delete_key(key, o)?;
            ex.put_string(key, value, expire_at, None)?;
        }
        other => ex.put_string(key, value, expire_at, other)?,
    }
    if let Some(at) = expire_at {
        if at <= ex.now_ms {
            // Deleting reads only the metadata's type and expiry, not the value.
            ex.delete_key(key, &Meta::string_record_head(expire_at))?;
        }
    }
    Ok(())
}

/// Redis's `checkStringLength`: a string of `size` bytes growing by `append` must stay
/// within [`MAX_STRING_LEN`].
pub fn check_string_length(size: u64, append: u64) -> CmdResult<()> {
    match size.checked_add(append) {
        Some(total) if total <= MAX_STRING_LEN => Ok(()),
        _ => fail(errors::STRING_TOO_LONG),
    }
}

fn setnx(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    if ex.meta_head(key)?.is_some() {
        return Ok(Reply::Int(0));
    }
    store_string(ex, key, &args[2], None, None)?;
    ex.notify('$', "set", key);
    Ok(Reply::Int(1))
}

/// SETEX / PSETEX: `unit` is "EX" or "PX", `cmd` names the command in the error.
fn set_with_expiry(ex: &mut Exec, args: &[Bytes], unit: &str, cmd: &str) -> CmdResult<Reply> {
    let key = &args[1];
    let at = expire_at_from(ex, unit.as_bytes(), &args[2], cmd)?;
    let old = ex.meta(key)?;
    store_string(ex, key, &args[3], Some(at), old.as_ref())?;
    ex.notify('$', "set", key);
    ex.notify('g', "expire", key);
    Ok(Reply::Ok)
}

fn setex(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    set_with_expiry(ex, args, "EX", "setex")
}

fn psetex(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    set_with_expiry(ex, args, "PX", "psetex")
}

fn mget(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let mut out = Vec::with_capacity(args.len() - 1);
    for key in &args[1..] {
        out.push(match ex.meta(key)?.map(|m| m.body) {
            Some(Body::String(v)) => Reply::Bulk(v),
            _ => Reply::Nil,
        });
    }
    Ok(Reply::Array(out))
}

/// MSET / MSETNX: pairs after the name; with `nx` nothing is written if any key exists.
fn mset_generic(ex: &mut Exec, args: &[Bytes], nx: bool, cmd: &str) -> CmdResult<Reply> {
    if args.len().is_multiple_of(2) {
        return fail(errors::wrong_args(cmd));
    }
    if nx {
        for pair in args[1..].chunks_exact(2) {
            if ex.meta_head(&pair[0])?.is_some() {
                return Ok(Reply::Int(0));
            }
        }
    }
    for pair in args[1..].chunks_exact(2) {
        let old = ex.meta_head(&pair[0])?;
        store_string(ex, &pair[0], &pair[1], None, old.as_ref())?;
        ex.notify('$', "set", &pair[0]);
    }
    Ok(if nx { Reply::Int(1) } else { Reply::Ok })
}

fn mset(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    mset_generic(ex, args, false, "mset")
}

fn msetnx(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    mset_generic(ex, args, true, "msetnx")
}

fn getset(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let old = string_value(ex, key)?;
    let (old_meta, old_value) = match old {
        Some((m, v)) => (Some(m), Some(v)),
        None => (None, None),
    };
    store_string(ex, key, &args[2], None, old_meta.as_ref())?;
    ex.notify('$', "set", key);
    Ok(Reply::opt_bulk(old_value))
}

fn getdel(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    match string_value(ex, key)? {
        Some((m, v)) => {
            ex.delete_key(key, &m)?;
            ex.notify('g', "del", key);
            Ok(Reply::Bulk(v))
        }
        None => Ok(Reply::Nil),
    }
}

fn getex(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let mut opts = ExpiryOpts::default();
    let mut i = 2;
    while i < args.len() {
        if !opts.take(args, &mut i, false) {
            return fail(errors::SYNTAX);
        }
        i += 1;
    }
    // Redis looks the key up before validating the time: a missing key is nil regardless.
    let Some((meta, value)) = string_value(ex, key)? else {
        return Ok(Reply::Nil);
    };
    let expire_at = match opts.expire_at(ex, "getex")? {
        Some(at) => Some(at),
        None if opts.persist => None,
        None => return Ok(Reply::Bulk(value)),
    };
    if expire_at != meta.expire_at {
        store_string(ex, key, &value, expire_at, Some(&meta))?;
    }
    // Redis raises the event even when the expiry stays the same.
    ex.notify(
        'g',
        if expire_at.is_some() {
            "expire"
        } else {
            "persist"
        },
        key,
    );
    Ok(Reply::Bulk(value))
}

fn append(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let (old, new) = match string_value(ex, key)? {
        None => (None, args[2].clone()),
        Some((m, v)) => {
            check_string_length(v.len() as u64, args[2].len() as u64)?;
            let mut b = BytesMut::with_capacity(v.len() + args[2].len());
            b.extend_from_slice(&v);
            b.extend_from_slice(&args[2]);
            (Some(m), b.freeze())
        }
    };
    let len = new.len() as i64;
    let expire_at = old.as_ref().and_then(|m| m.expire_at);
    store_string(ex, key, &new, expire_at, old.as_ref())?;
    ex.notify('$', "append", key);
    Ok(Reply::Int(len))
}

fn strlen(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let len = string_value(ex, &args[1])?.map_or(0, |(_, v)| v.len());
    Ok(Reply::Int(len as i64))
}

/// Clamps Redis-style inclusive `start..=end` (negative counts from the end) to a
/// string of `len` units; None when the range is empty.
pub fn clamp_range(start: i64, end: i64, len: i64) -> Option<(i64, i64)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    (start <= end && len > 0).then_some((start, end))
}

fn getrange(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let start = int_arg(&args[2])?;
    let end = int_arg(&args[3])?;
    let Some((_, v)) = string_value(ex, &args[1])? else {
        return Ok(Reply::Bulk(Bytes::new()));
    };
    Ok(match clamp_range(start, end, v.len() as i64) {
        Some((s, e)) => Reply::Bulk(v.slice(s as usize..e as usize + 1)),
        None => Reply::Bulk(Bytes::new()),
    })
}

fn setrange(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let offset = int_arg(&args[2])?;
    if offset < 0 {
        return fail("ERR offset is out of range");
    }
    let offset = offset as u64;
    let patch = &args[3];
    let old = string_value(ex, key)?;
    let old_len = old.as_ref().map_or(0, |(_, v)| v.len());
    if patch.is_empty() {
        // Nothing to write: Redis neither creates nor touches the key.
        return Ok(Reply::Int(old_len as i64));
    }
    check_string_length(offset, patch.len() as u64)?;
    // Both bounds are within MAX_STRING_LEN now, so they fit usize.
    let offset = offset as usize;
    let new_len = old_len.max(offset + patch.len());
    let mut buf = BytesMut::zeroed(new_len);
    if let Some((_, v)) = &old {
        buf[..v.len()].copy_from_slice(v);
    }
    buf[offset..offset + patch.len()].copy_from_slice(patch);
    let old_meta = old.map(|(m, _)| m);
    let expire_at = old_meta.as_ref().and_then(|m| m.expire_at);
    store_string(ex, key, &buf, expire_at, old_meta.as_ref())?;
    ex.notify('$', "setrange", key);
    Ok(Reply::Int(new_len as i64))
}

/// INCR family: adds `delta` to the integer at `key`, keeping its expiry.
fn incr_by(ex: &mut Exec, key: &[u8], delta: i64) -> CmdResult<Reply> {
    // The number is parsed where the record lies: the old text is never copied out.
    let (old_meta, current) = match ex.meta_and(key, parse_i64)? {
        Some((m, _)) if m.kind != KeyType::String => return fail(errors::WRONGTYPE),
        Some((m, Some(v))) => (Some(m), v),
        Some((_, None)) => return fail(errors::NOT_INTEGER),
        None => (None, 0),
    };
    let Some(new) = current.checked_add(delta) else {
        return fail(errors::OVERFLOW);
    };
    let expire_at = old_meta.as_ref().and_then(|m| m.expire_at);
    // itoa rather than `to_string`: no formatter machinery, and the digits stay on the
    // stack, as the record is encoded from a borrowed value.
    let mut digits = itoa::Buffer::new();
    let text = digits.format(new).as_bytes();
    store_string(ex, key, text, expire_at, old_meta.as_ref())?;
    ex.notify('$', "incrby", key);
    Ok(Reply::Int(new))
}

fn incr(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    incr_by(ex, &args[1], 1)
}

fn decr(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    incr_by(ex, &args[1], -1)
}

fn incrby(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let delta = int_arg(&args[2])?;
    incr_by(ex, &args[1], delta)
}

fn decrby(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let delta = int_arg(&args[2])?;
    if delta == i64::MIN {
        return fail("ERR decrement would overflow");
    }
    incr_by(ex, &args[1], -delta)
}

fn incrbyfloat(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let old = string_value(ex, key)?;
    // Redis checks the stored value before the increment.
    let current = match &old {
        Some((_, v)) => longdouble::LongDouble::parse(v),
        None => Some(longdouble::LongDouble::ZERO),
    };
    let (Some(current), Some(incr)) = (current, longdouble::LongDouble::parse(&args[2])) else {
        return fail(errors::NOT_FLOAT);
    };
    let Some(sum) = current.add(&incr) else {
        return fail("ERR increment would produce NaN or Infinity");
    };
    let text = Bytes::from(sum.format_human());
    let old_meta = old.map(|(m, _)| m);
    let expire_at = old_meta.as_ref().and_then(|m| m.expire_at);
    store_string(ex, key, &text, expire_at, old_meta.as_ref())?;
    ex.notify('$', "incrbyfloat", key);
    Ok(Reply::Bulk(text))
}

/// Transient memory LCS may use for its table, as Redis bounds it.
const LCS_TABLE_LIMIT: u64 = MAX_STRING_LEN;

fn lcs(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let not_strings = "ERR The specified keys must contain string values";
    let a = match ex.meta(&args[1])?.map(|m| m.body) {
        Some(Body::String(v)) => v,
        Some(Body::Collection { .. }) => return fail(not_strings),
        None => Bytes::new(),
    };
    let b = match ex.meta(&args[2])?.map(|m| m.body) {
        Some(Body::String(v)) => v,
        Some(Body::Collection { .. }) => return fail(not_strings),
        None => Bytes::new(),
    };
    let (mut get_len, mut get_idx, mut with_len) = (false, false, false);
    let mut min_len: u64 = 0;
    let mut i = 3;
    while i < args.len() {
        let o = &args[i];
        if eq_ci(o, "IDX") {
            get_idx = true;
        } else if eq_ci(o, "LEN") {
            get_len = true;
        } else if eq_ci(o, "WITHMATCHLEN") {
            with_len = true;
        } else if eq_ci(o, "MINMATCHLEN") && i + 1 < args.len() {
            min_len = int_arg(&args[i + 1])?.max(0) as u64;
            i += 1;
        } else {
            return fail(errors::SYNTAX);
        }
        i += 1;
    }
    if get_idx && get_len {
        return fail("ERR If you want both the length and indexes, please just use IDX.");
    }
    let (alen, blen) = (a.len(), b.len());
    if alen as u64 >= u64::from(u32::MAX) - 1 || blen as u64 >= u64::from(u32::MAX) - 1 {
        return fail("ERR String too long for LCS");
    }
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    if cells * 4 > LCS_TABLE_LIMIT {
        return fail(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        );
    }
    // table[i * (blen + 1) + j] = LCS length of a[..i] and b[..j].
    let w = blen + 1;
    let mut table = vec![0u32; cells as usize];
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * w + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * w + j - 1] + 1
            } else {
                table[(i - 1) * w + j].max(table[i * w + j - 1])
            };
        }
    }
    let total = table[alen * w + blen];
    if get_len {
        return Ok(Reply::Int(i64::from(total)));
    }
    // Walk back from the end, as Redis does, so matches come out last-first.
    let mut result = vec![0u8; total as usize];
    let mut idx = total as usize;
    let mut matches = Vec::new();
    let mut range: Option<(usize, usize, usize, usize)> = None; // a_start, a_end, b_start, b_end
    let (mut i, mut j) = (alen, blen);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            // The walk meets exactly `total` matches, so the slot always exists.
            if let Some(slot) = idx.checked_sub(1).and_then(|k| result.get_mut(k)) {
                *slot = a[i - 1];
            }
            match &mut range {
                None => range = Some((i - 1, i - 1, j - 1, j - 1)),
                Some(r) if r.0 == i && r.2 == j => {
                    r.0 -= 1;
                    r.2 -= 1;
                }
                Some(_) => emit = true,
            }
            if range.is_some_and(|r| r.0 == 0 || r.2 == 0) {
                emit = true;
            }
            idx = idx.saturating_sub(1);
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * w + j] > table[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = range.is_some();
        }
        if emit {
            if let Some((as_, ae, bs, be)) = range.take() {
                let mlen = (ae - as_ + 1) as u64;
                if get_idx && (min_len == 0 || mlen >= min_len) {
                    let mut m = vec![
                        Reply::Array(vec![Reply::Int(as_ as i64), Reply::Int(ae as i64)]),
                        Reply::Array(vec![Reply::Int(bs as i64), Reply::Int(be as i64)]),
                    ];
                    if with_len {
                        m.push(Reply::Int(mlen as i64));
                    }
                    matches.push(Reply::Array(m));
                }
            }
        }
    }
    if get_idx {
        return Ok(Reply::Map(vec![
            (Reply::bulk("matches"), Reply::Array(matches)),
            (Reply::bulk("len"), Reply::Int(i64::from(total))),
        ]));
    }
    Ok(Reply::Bulk(Bytes::from(result)))
}
