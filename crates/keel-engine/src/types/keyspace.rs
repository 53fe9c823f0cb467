//! Generic key commands: DEL, UNLINK, EXISTS, TYPE, RENAME, RENAMENX, COPY, MOVE, SWAPDB,
//! RANDOMKEY, KEYS, SCAN, DBSIZE, FLUSHDB, FLUSHALL, OBJECT, DUMP, RESTORE, MEMORY USAGE,
//! TOUCH.
//!
//! Everything here is type-agnostic: a collection is its metadata plus every storage key
//! under `S|db|key|version` and `Z|db|key|version` (see `keys`). Moving a collection
//! (RENAME, COPY, MOVE, SWAPDB, RESTORE) copies those sub-keys under a fresh version of
//! the destination and drops the source in O(1) (its old version is queued for GC).
//!
//! Costs that differ from Redis, because the key name is part of every sub-key:
//! - RENAME, RENAMENX, MOVE and COPY of a collection are O(n) in its size (Redis: O(1)
//!   for RENAME/MOVE); the whole copy is one log entry's batch.
//! - SWAPDB is O(n) in the size of both databases (Redis: O(1)) and holds both
//!   databases' key names in memory while it runs.
//! - FLUSHDB/FLUSHALL are O(number of keys): each key's metadata is deleted (collections'
//!   sub-keys are left to background GC). Keys are visited in batches of [`BATCH`]; the
//!   deletions themselves accumulate in the entry's write batch. ASYNC and SYNC behave
//!   alike.
//! - DBSIZE and RANDOMKEY walk the database's metadata: O(n) (Redis: O(1)). RANDOMKEY is
//!   uniform over the live keys.
//! - KEYS and SCAN with a pattern that starts with literal bytes only visit keys with that
//!   prefix.
//!
//! SCAN: the cursor names the last key returned; the next call resumes strictly after it
//! in key order, so a key present for the whole scan is returned exactly once unless the
//! cursor is forgotten (then the scan restarts: duplicates, never misses). COUNT is the
//! number of keys examined per call. Cursor numbers come from a per-engine table, so in
//! the apply path (SCAN inside MULTI) replicas may hand out different numbers; the keys
//! returned are the same.
//!
//! OBJECT ENCODING is computed from the type and current contents with Redis 7's default
//! thresholds (Redis never converts back to the compact encoding when a big collection
//! shrinks; keel reports what the current contents would use). It reads the members'
//! layout the type modules document: hash fields and set/zset members are the S suffix,
//! hash values and list elements the S value. OBJECT IDLETIME and FREQ read the engine's
//! fixed-size access table (`crate::eviction::AccessTable`): approximate, node-local,
//! never written through the log.
//!
//! MEMORY USAGE reports the bytes of the storage records a key occupies (keys + values
//! of its metadata, expiry index entry and sub-keys), sampling `SAMPLES` sub-keys (default
//! 5, 0 = all) and extrapolating like Redis; engine overheads are not counted.

use std::ops::Bound;

use bytes::{BufMut, Bytes, BytesMut};
use keel_storage::{Direction, KvPair, ScanRange};

use crate::args::{eq_ci, int_arg, parse_i64};
use crate::command::{flags::*, CommandSpec, Handler};
use crate::cursor::parse_cursor;
use crate::dump::{self, Encoder, PayloadError};
use crate::error::{fail, CmdError, CmdResult};
use crate::exec::Exec;
use crate::glob::glob_match;
use crate::keys;
use crate::meta::{Body, KeyType, Meta};
use crate::reply::{errors, Reply};
use crate::types::list_chunk;

/// Keys visited per storage scan by the walks of this module.
pub const BATCH: usize = 1024;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    group: &'static str,
    summary: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        group,
        summary,
        handler,
    }
}

/// The keyspace commands.
pub static COMMANDS: &[CommandSpec] = &[
    spec(
        "del",
        -2,
        WRITE,
        (1, -1, 1),
        "generic",
        "Deletes one or more keys.",
        del,
    ),
    spec(
        "unlink",
        -2,
        WRITE | FAST,
        (1, -1, 1),
        "generic",
        "Deletes one or more keys; their memory is reclaimed in the background.",
        del,
    ),
    spec(
        "exists",
        -2,
        READONLY | FAST | NO_TOUCH,
        (1, -1, 1),
        "generic",
        "Counts how many of the given keys exist.",
        exists,
    ),
    spec(
        "touch",
        -2,
        READONLY | FAST,
        (1, -1, 1),
        "generic",
        "Returns the number of existing keys out of those specified.",
        exists,
    ),
    spec(
        "type",
        2,
        READONLY | FAST | NO_TOUCH,
        (1, 1, 1),
        "generic",
        "Returns the type of the value stored at a key.",
        type_cmd,
    ),
    spec(
        "rename",
        3,
        WRITE,
        (1, 2, 1),
        "generic",
        "Renames a key and overwrites the destination.",
        rename,
    ),
    spec(
        "renamenx",
        3,
        WRITE | FAST,
        (1, 2, 1),
        "generic",
        "Renames a key only when the target key name doesn't exist.",
        renamenx,
    ),
    spec(
        "copy",
        -3,
        WRITE | DENYOOM,
        (1, 2, 1),
        "generic",
        "Copies the value of a key to a new key.",
        copy,
    ),
    spec(
        "move",
        3,
        WRITE | FAST,
        (1, 1, 1),
        "generic",
        "Moves a key to another database.",
        move_cmd,
    ),
    spec(
        "swapdb",
        3,
        WRITE | FAST,
        (0, 0, 0),
        "server",
        "Swaps two Redis databases.",
        swapdb,
    ),
    spec(
        "randomkey",
        1,
        READONLY | RANDOM,
        (0, 0, 0),
        "generic",
        "Returns a random key name from the database.",
        randomkey,
    ),
    spec(
        "keys",
        2,
        READONLY,
        (0, 0, 0),
        "generic",
        "Returns all key names that match a pattern.",
        keys_cmd,
    ),
    spec(
        "scan",
        -2,
        READONLY,
        (0, 0, 0),
        "generic",
        "Iterates over the key names in the database.",
        scan,
    ),
    spec(
        "dbsize",
        1,
        READONLY | FAST,
        (0, 0, 0),
        "server",
        "Returns the number of keys in the database.",
        dbsize,
    ),
    spec(
        "flushdb",
        -1,
        WRITE,
        (0, 0, 0),
        "server",
        "Removes all keys from the current database.",
        flushdb,
    ),
    spec(
        "flushall",
        -1,
        WRITE,
        (0, 0, 0),
        "server",
        "Removes all keys from all databases.",
        flushall,
    ),
    spec(
        "object",
        -2,
        READONLY | NO_TOUCH,
        (2, 2, 1),
        "generic",
        "A container for object introspection commands.",
        object,
    ),
    spec(
        "dump",
        2,
        READONLY,
        (1, 1, 1),
        "generic",
        "Returns a serialized representation of the value stored at a key.",
        dump_cmd,
    ),
    spec(
        "restore",
        -4,
        WRITE | DENYOOM,
        (1, 1, 1),
        "generic",
        "Creates a key from the serialized representation of a value.",
        restore,
    ),
    spec(
        "memory",
        -2,
        READONLY,
        (2, 2, 1),
        "server",
        "A container for memory diagnostics commands.",
        memory,
    ),
];

/// Redis's reply when source and destination are the same (COPY, MOVE).
const SAME_OBJECT: &str = "ERR source and destination objects are the same";

// ---------------------------------------------------------------------------------------
// Shared walks
// ---------------------------------------------------------------------------------------

/// Up to `n` pairs of `range` strictly after `after` (or from its start).
pub fn scan_after(
    ex: &Exec,
    range: &ScanRange,
    after: Option<&Bytes>,
    n: usize,
) -> CmdResult<Vec<KvPair>> {
    let mut r = range.clone();
    if let Some(a) = after {
        let past_start = match &r.start {
            Bound::Included(s) => a >= s,
            Bound::Excluded(s) => a > s,
            Bound::Unbounded => true,
        };
        if past_start {
            r.start = Bound::Excluded(a.clone());
        }
    }
    let mut out = Vec::new();
    for item in ex.scan(r, Direction::Forward).take(n) {
        out.push(item?);
    }
    Ok(out)
}

/// Decodes the metadata `raw` of `key` in `db`; None if expired (a reader reports it so
/// the server deletes it through the log).
fn live_meta(ex: &mut Exec, db: u8, storage_key: &[u8], raw: Bytes) -> CmdResult<Option<Meta>> {
    let m = Meta::decode(storage_key, raw)?;
    if m.is_expired(ex.now_ms) {
        if !ex.is_write() {
            if let Some(k) = keys::user_key_of_meta(db, storage_key) {
                ex.expired.push((db, Bytes::copy_from_slice(k)));
            }
        }
        return Ok(None);
    }
    Ok(Some(m))
}

/// Copies every sub-key (S and Z) of (`src`, `version`) in `src_db` to (`dst`,
/// `new_version`) in `dst_db`, in batches.
pub fn copy_sub_keys(
    ex: &mut Exec,
    src_db: u8,
    src: &[u8],
    version: u64,
    dst_db: u8,
    dst: &[u8],
    new_version: u64,
) -> CmdResult<()> {
    for tag in [keys::SUB, keys::ZSCORE_IDX] {
        let sp = keys::sub_prefix(tag, src_db, src, version);
        let plen = sp.len();
        let range = ScanRange::prefix(&sp);
        let dp = keys::sub_prefix(tag, dst_db, dst, new_version);
        let mut after: Option<Bytes> = None;
        loop {
            let batch = scan_after(ex, &range, after.as_ref(), BATCH)?;
            let Some((last, _)) = batch.last() else {
                break;
            };
            after = Some(last.clone());
            for (k, v) in batch {
                let Some(suffix) = k.get(plen..) else {
                    continue;
                };
                let mut nk = BytesMut::with_capacity(dp.len() + suffix.len());
                nk.put_slice(&dp);
                nk.put_slice(suffix);
                ex.put(nk.freeze(), v)?;
            }
        }
    }
    Ok(())
}

/// A copy of `meta` (key `src` in `src_db`) for key `dst` in `dst_db`: a collection's
/// sub-keys are copied under a fresh version (COPY, RESTORE-like paths). The source is
/// left as it is. Moves (RENAME, MOVE, SWAPDB) keep the version instead.
pub fn relocate(
    ex: &mut Exec,
    src_db: u8,
    src: &[u8],
    meta: &Meta,
    dst_db: u8,
    dst: &[u8],
) -> CmdResult<Meta> {
    let mut nm = meta.clone();
    if let Body::Collection { version, .. } = &mut nm.body {
        let nv = ex.new_version();
        copy_sub_keys(ex, src_db, src, *version, dst_db, dst, nv)?;
        *version = nv;
    }
    Ok(nm)
}

/// Parses a database index argument: integer (Redis's int range), then in range.
fn db_arg(b: &[u8]) -> CmdResult<u8> {
    let n = int_arg(b)?;
    if n < i64::from(i32::MIN) || n > i64::from(i32::MAX) {
        return fail(errors::NOT_INTEGER);
    }
    if n < 0 || n >= i64::from(keys::DATABASES) {
        return fail(errors::DB_INDEX);
    }
    Ok(n as u8)
}

/// The literal bytes a glob pattern's matches must start with (up to its first
/// wildcard), to narrow a walk to one key prefix.
pub fn literal_prefix(pattern: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'*' | b'?' | b'[' => break,
            b'\\' => match pattern.get(i + 1) {
                Some(&c) => {
                    out.push(c);
                    i += 2;
                }
                None => break,
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The metadata range of `db` holding every key that can match `pattern`.
fn pattern_range(db: u8, pattern: Option<&[u8]>) -> ScanRange {
    match pattern.map(literal_prefix) {
        Some(lit) if !lit.is_empty() => ScanRange::prefix(keys::meta_key(db, &lit)),
        _ => keys::meta_range(db),
    }
}

/// Calls `f` for every live key of `db` in `range`, in key order, in batches.
fn for_each_live(
    ex: &mut Exec,
    db: u8,
    range: &ScanRange,
    mut f: impl FnMut(&[u8], &Meta) -> bool,
) -> CmdResult<()> {
    let mut after: Option<Bytes> = None;
    loop {
        let batch = scan_after(ex, range, after.as_ref(), BATCH)?;
        let Some((last, _)) = batch.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        for (sk, raw) in batch {
            let Some(m) = live_meta(ex, db, &sk, raw)? else {
                continue;
            };
            let Some(key) = keys::user_key_of_meta(db, &sk) else {
                continue;
            };
            if !f(key, &m) {
                return Ok(());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// DEL, EXISTS, TYPE
// ---------------------------------------------------------------------------------------

/// DEL / UNLINK: both are O(1) per key here (collections are collected in the background).
fn del(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let mut n = 0;
    for key in &args[1..] {
        if let Some(meta) = ex.meta(key)? {
            ex.delete_key(key, &meta)?;
            ex.notify('g', "del", key);
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

/// EXISTS / TOUCH (keel keeps no access time, so TOUCH only counts).
fn exists(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let mut n = 0;
    for key in &args[1..] {
        if ex.meta(key)?.is_some() {
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

fn type_cmd(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let name = ex.meta(&args[1])?.map_or("none", |m| m.kind.name());
    Ok(Reply::Simple(name.into()))
}

// ---------------------------------------------------------------------------------------
// RENAME, RENAMENX, COPY, MOVE, SWAPDB
// ---------------------------------------------------------------------------------------

fn rename(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    rename_generic(ex, args, false)
}

fn renamenx(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    rename_generic(ex, args, true)
}

fn rename_generic(ex: &mut Exec, args: &[Bytes], nx: bool) -> CmdResult<Reply> {
    let (src, dst) = (&args[1], &args[2]);
    let Some(sm) = ex.meta(src)? else {
        return fail(errors::NO_SUCH_KEY);
    };
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { Reply::Ok });
    }
    let dm = ex.meta(dst)?;
    if nx && dm.is_some() {
        return Ok(Reply::Int(0));
    }
    // O(1): the collection keeps its version, only the metadata record moves.
    if let Some(d) = &dm {
        ex.delete_key(dst, d)?;
    }
    let db = ex.db;
    ex.forget_key_in(db, src, &sm)?;
    ex.put_meta(dst, &sm, None)?;
    ex.notify('g', "rename_from", src);
    ex.notify('g', "rename_to", dst);
    Ok(if nx { Reply::Int(1) } else { Reply::Ok })
}

fn copy(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let (src, dst) = (&args[1], &args[2]);
    let src_db = ex.db;
    let mut dst_db = src_db;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if eq_ci(&args[i], "REPLACE") {
            replace = true;
        } else if eq_ci(&args[i], "DB") && i + 1 < args.len() {
            dst_db = db_arg(&args[i + 1])?;
            i += 1;
        } else {
            return fail(errors::SYNTAX);
        }
        i += 1;
    }
    if src_db == dst_db && src == dst {
        return fail(SAME_OBJECT);
    }
    let Some(sm) = ex.meta(src)? else {
        return Ok(Reply::Int(0));
    };
    let dm = ex.meta_in(dst_db, dst)?;
    if dm.is_some() && !replace {
        return Ok(Reply::Int(0));
    }
    let nm = relocate(ex, src_db, src, &sm, dst_db, dst)?;
    if let Some(d) = &dm {
        ex.delete_key_in(dst_db, dst, d)?;
    }
    ex.put_meta_in(dst_db, dst, &nm, None)?;
    ex.notify_in(dst_db, 'g', "copy_to", dst);
    Ok(Reply::Int(1))
}

fn move_cmd(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let dst_db = db_arg(&args[2])?;
    let src_db = ex.db;
    if src_db == dst_db {
        return fail(SAME_OBJECT);
    }
    let Some(sm) = ex.meta(key)? else {
        return Ok(Reply::Int(0));
    };
    if ex.meta_in(dst_db, key)?.is_some() {
        return Ok(Reply::Int(0));
    }
    // O(1): the collection keeps its version, only the metadata record moves.
    ex.forget_key_in(src_db, key, &sm)?;
    ex.put_meta_in(dst_db, key, &sm, None)?;
    ex.notify_in(src_db, 'g', "move_from", key);
    ex.notify_in(dst_db, 'g', "move_to", key);
    Ok(Reply::Int(1))
}

/// Every key of `db` with its metadata (expired keys are deleted, not listed).
fn all_keys_of(ex: &mut Exec, db: u8) -> CmdResult<Vec<(Bytes, Meta)>> {
    let range = keys::meta_range(db);
    let mut out = Vec::new();
    let mut after: Option<Bytes> = None;
    loop {
        let batch = scan_after(ex, &range, after.as_ref(), BATCH)?;
        let Some((last, _)) = batch.last() else {
            return Ok(out);
        };
        after = Some(last.clone());
        for (sk, raw) in batch {
            let Some(key) = keys::user_key_of_meta(db, &sk) else {
                continue;
            };
            let key = Bytes::copy_from_slice(key);
            let m = Meta::decode(&sk, raw)?;
            if m.is_expired(ex.now_ms) {
                ex.delete_key_in(db, &key, &m)?;
            } else {
                out.push((key, m));
            }
        }
    }
}

fn swapdb(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let parse = |b: &[u8], what: &str| -> CmdResult<i64> {
        match parse_i64(b) {
            Some(n) if n >= i64::from(i32::MIN) && n <= i64::from(i32::MAX) => Ok(n),
            _ => fail(format!("ERR invalid {what} DB index")),
        }
    };
    let a = parse(&args[1], "first")?;
    let b = parse(&args[2], "second")?;
    let range = 0..i64::from(keys::DATABASES);
    if !range.contains(&a) || !range.contains(&b) {
        return fail(errors::DB_INDEX);
    }
    let (a, b) = (a as u8, b as u8);
    if a == b {
        return Ok(Reply::Ok);
    }
    let in_a = all_keys_of(ex, a)?;
    let in_b = all_keys_of(ex, b)?;
    // Only metadata moves (collections keep their versions): remove both sides' records,
    // then write each into the other database. O(keys), independent of collection sizes.
    for (db, list) in [(a, &in_a), (b, &in_b)] {
        for (k, m) in list {
            ex.forget_key_in(db, k, m)?;
        }
    }
    for (to, list) in [(b, &in_a), (a, &in_b)] {
        for (k, m) in list {
            ex.put_meta_in(to, k, m, None)?;
        }
    }
    Ok(Reply::Ok)
}

// ---------------------------------------------------------------------------------------
// RANDOMKEY, KEYS, SCAN, DBSIZE
// ---------------------------------------------------------------------------------------

fn randomkey(ex: &mut Exec, _args: &[Bytes]) -> CmdResult<Reply> {
    let db = ex.db;
    let range = keys::meta_range(db);
    let mut n: u64 = 0;
    for_each_live(ex, db, &range, |_, _| {
        n += 1;
        true
    })?;
    if n == 0 {
        return Ok(Reply::Nil);
    }
    let mut pick = ex.rng.below(n);
    let mut found: Option<Bytes> = None;
    for_each_live(ex, db, &range, |k, _| {
        if pick == 0 {
            found = Some(Bytes::copy_from_slice(k));
            return false;
        }
        pick -= 1;
        true
    })?;
    Ok(Reply::opt_bulk(found))
}

fn keys_cmd(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let pattern = &args[1];
    let db = ex.db;
    let all = pattern.as_ref() == b"*";
    let range = pattern_range(db, Some(pattern));
    let mut out = Vec::new();
    for_each_live(ex, db, &range, |k, _| {
        if all || glob_match(pattern, k) {
            out.push(Reply::bulk(k));
        }
        true
    })?;
    Ok(Reply::Array(out))
}

fn scan(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let cursor = parse_cursor(&args[1]).map_err(CmdError::Reply)?;
    let mut pattern: Option<Bytes> = None;
    let mut count: usize = 10;
    let mut type_filter: Option<Option<KeyType>> = None;
    let mut i = 2;
    while i < args.len() {
        let Some(val) = args.get(i + 1) else {
            return fail(errors::SYNTAX);
        };
        if eq_ci(&args[i], "MATCH") {
            pattern = Some(val.clone());
        } else if eq_ci(&args[i], "COUNT") {
            let n = int_arg(val)?;
            if n < 1 {
                return fail(errors::SYNTAX);
            }
            count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if eq_ci(&args[i], "TYPE") {
            // An unknown type name matches nothing (Redis 7.2).
            type_filter = Some(KeyType::from_name(val));
        } else {
            return fail(errors::SYNTAX);
        }
        i += 2;
    }
    let db = ex.db;
    let range = pattern_range(db, pattern.as_deref());
    let after = ex.cursors.resume(cursor).map(|k| keys::meta_key(db, &k));
    let mut batch = scan_after(ex, &range, after.as_ref(), count.saturating_add(1))?;
    let more = batch.len() > count;
    batch.truncate(count);
    let mut out = Vec::new();
    let mut last_key: Option<Bytes> = None;
    for (sk, raw) in batch {
        let Some(key) = keys::user_key_of_meta(db, &sk) else {
            continue;
        };
        last_key = Some(Bytes::copy_from_slice(key));
        let Some(m) = live_meta(ex, db, &sk, raw)? else {
            continue;
        };
        if let Some(p) = &pattern {
            if !glob_match(p, key) {
                continue;
            }
        }
        if let Some(t) = type_filter {
            if t != Some(m.kind) {
                continue;
            }
        }
        out.push(Reply::bulk(key));
    }
    let next = match (more, last_key) {
        (true, Some(k)) => ex.cursors.save(k),
        _ => 0,
    };
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(out),
    ]))
}

fn dbsize(ex: &mut Exec, _args: &[Bytes]) -> CmdResult<Reply> {
    let db = ex.db;
    let mut n = 0i64;
    for_each_live(ex, db, &keys::meta_range(db), |_, _| {
        n += 1;
        true
    })?;
    Ok(Reply::Int(n))
}

// ---------------------------------------------------------------------------------------
// FLUSHDB, FLUSHALL
// ---------------------------------------------------------------------------------------

fn flush_option(args: &[Bytes]) -> CmdResult<()> {
    match args {
        [_] => Ok(()),
        [_, o] if eq_ci(o, "ASYNC") || eq_ci(o, "SYNC") => Ok(()),
        _ => fail(errors::SYNTAX),
    }
}

/// Deletes every key of `db`: metadata and expiry entries now, collections' sub-keys by
/// background GC.
fn flush_db(ex: &mut Exec, db: u8) -> CmdResult<()> {
    let range = keys::meta_range(db);
    let mut after: Option<Bytes> = None;
    loop {
        let batch = scan_after(ex, &range, after.as_ref(), BATCH)?;
        let Some((last, _)) = batch.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        for (sk, raw) in batch {
            let Some(key) = keys::user_key_of_meta(db, &sk) else {
                continue;
            };
            let m = Meta::decode(&sk, raw)?;
            ex.delete_key_in(db, key, &m)?;
        }
    }
}

fn flushdb(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    flush_option(args)?;
    let db = ex.db;
    flush_db(ex, db)?;
    Ok(Reply::Ok)
}

fn flushall(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    flush_option(args)?;
    for db in 0..keys::DATABASES {
        flush_db(ex, db)?;
    }
    Ok(Reply::Ok)
}

// ---------------------------------------------------------------------------------------
// OBJECT, MEMORY
// ---------------------------------------------------------------------------------------

/// Redis 7 defaults of the compact-encoding thresholds.
mod limits {
    pub const LIST_LISTPACK_BYTES: usize = 8 * 1024;
    pub const HASH_LISTPACK_ENTRIES: u64 = 128;
    pub const HASH_LISTPACK_VALUE: usize = 64;
    pub const SET_INTSET_ENTRIES: u64 = 512;
    pub const SET_LISTPACK_ENTRIES: u64 = 128;
    pub const SET_LISTPACK_VALUE: usize = 64;
    pub const ZSET_LISTPACK_ENTRIES: u64 = 128;
    pub const ZSET_LISTPACK_VALUE: usize = 64;
    /// Redis shares the integer objects 0..10000 (OBJ_SHARED_INTEGERS).
    pub const SHARED_INTEGERS: i64 = 10_000;
    /// REFCOUNT of a shared object (OBJ_SHARED_REFCOUNT).
    pub const SHARED_REFCOUNT: i64 = i32::MAX as i64;
    /// Longest string stored embedded (OBJ_ENCODING_EMBSTR_SIZE_LIMIT).
    pub const EMBSTR_LIMIT: usize = 44;
}

/// The encoding name Redis 7 would report for `meta`'s current contents.
fn encoding_of(ex: &Exec, db: u8, key: &[u8], meta: &Meta) -> CmdResult<&'static str> {
    let (version, len) = match &meta.body {
        Body::String(v) => {
            return Ok(if v.len() <= 20 && parse_i64(v).is_some() {
                "int"
            } else if v.len() <= limits::EMBSTR_LIMIT {
                "embstr"
            } else {
                "raw"
            });
        }
        Body::Collection { version, len, .. } => (*version, *len),
    };
    let plen = keys::sub_prefix_len(key);
    let members = ex.scan(keys::sub_range(db, key, version), Direction::Forward);
    Ok(match meta.kind {
        KeyType::List => {
            let shift = match &meta.body {
                Body::Collection { list: Some(l), .. } => l.chunk_shift,
                _ => 0,
            };
            let mut bytes = 0usize;
            for item in members {
                let (k, v) = item?;
                // Each listpack entry carries a couple of header bytes besides its data;
                // counted per element, however keel packs them.
                for e in list_chunk::decode(shift, &k, v)?.iter().flatten() {
                    bytes = bytes.saturating_add(e.len() + 2);
                }
                if bytes > limits::LIST_LISTPACK_BYTES {
                    return Ok("quicklist");
                }
            }
            "listpack"
        }
        KeyType::Hash => {
            if len > limits::HASH_LISTPACK_ENTRIES {
                return Ok("hashtable");
            }
            for item in members {
                let (k, v) = item?;
                let field = k.len().saturating_sub(plen);
                if field > limits::HASH_LISTPACK_VALUE || v.len() > limits::HASH_LISTPACK_VALUE {
                    return Ok("hashtable");
                }
            }
            "listpack"
        }
        KeyType::Set => {
            let mut all_int = len <= limits::SET_INTSET_ENTRIES;
            let mut small = len <= limits::SET_LISTPACK_ENTRIES;
            if all_int || small {
                for item in members {
                    let (k, _) = item?;
                    let m = k.get(plen..).unwrap_or_default();
                    all_int &= parse_i64(m).is_some();
                    small &= m.len() <= limits::SET_LISTPACK_VALUE;
                    if !all_int && !small {
                        break;
                    }
                }
            }
            if all_int {
                "intset"
            } else if small {
                "listpack"
            } else {
                "hashtable"
            }
        }
        KeyType::ZSet => {
            if len > limits::ZSET_LISTPACK_ENTRIES {
                return Ok("skiplist");
            }
            for item in members {
                let (k, _) = item?;
                if k.len().saturating_sub(plen) > limits::ZSET_LISTPACK_VALUE {
                    return Ok("skiplist");
                }
            }
            "listpack"
        }
        KeyType::Stream => "stream",
        KeyType::String => "raw",
    })
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Print this help.",
];

const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "STATS",
    "    Return information about the memory usage of the server.",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "HELP",
    "    Print this help.",
];

fn help(lines: &[&str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::Simple((*l).into())).collect())
}

fn unknown_subcommand(args: &[Bytes]) -> CmdError {
    CmdError::Reply(Reply::err(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(&args[1]),
        String::from_utf8_lossy(&args[0]).to_ascii_uppercase()
    )))
}

fn sub_arity(args: &[Bytes], ok: bool) -> CmdResult<()> {
    if ok {
        return Ok(());
    }
    let name = format!(
        "{}|{}",
        String::from_utf8_lossy(&args[0]),
        String::from_utf8_lossy(&args[1])
    );
    fail(errors::wrong_args(&name))
}

fn object(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let sub = &args[1];
    if eq_ci(sub, "HELP") {
        sub_arity(args, args.len() == 2)?;
        return Ok(help(OBJECT_HELP));
    }
    if !["ENCODING", "IDLETIME", "FREQ", "REFCOUNT"]
        .iter()
        .any(|s| eq_ci(sub, s))
    {
        return Err(unknown_subcommand(args));
    }
    sub_arity(args, args.len() == 3)?;
    let key = &args[2];
    let Some(m) = ex.meta(key)? else {
        return Ok(Reply::Nil);
    };
    if eq_ci(sub, "ENCODING") {
        let db = ex.db;
        return Ok(Reply::bulk(encoding_of(ex, db, key, &m)?));
    }
    if eq_ci(sub, "REFCOUNT") {
        let shared = match &m.body {
            Body::String(v) if v.len() <= 20 => {
                parse_i64(v).is_some_and(|n| (0..limits::SHARED_INTEGERS).contains(&n))
            }
            _ => false,
        };
        return Ok(Reply::Int(if shared { limits::SHARED_REFCOUNT } else { 1 }));
    }
    // IDLETIME / FREQ come from the engine's access table (approximate, like Redis's).
    let db = ex.db;
    let Some(access) = ex.access_table.as_ref() else {
        return Ok(Reply::Int(0));
    };
    // Redis keeps recency or frequency, by policy, and refuses to report the other.
    if eq_ci(sub, "IDLETIME") {
        if access.tracks_lfu() {
            return fail(errors::LFU_NO_IDLETIME);
        }
        Ok(Reply::Int(
            (access.idle_ms(db, key, ex.now_ms) / 1000) as i64,
        ))
    } else {
        if !access.tracks_lfu() {
            return fail(errors::NO_LFU_FREQ);
        }
        Ok(Reply::Int(i64::from(access.freq(db, key, ex.now_ms))))
    }
}

/// Storage bytes of the records of (`key`, `meta`) in `db`, sampling `samples` sub-keys
/// per prefix (0 = all).
fn usage_of(ex: &Exec, db: u8, key: &[u8], meta: &Meta, samples: u64) -> CmdResult<u64> {
    let mk = keys::meta_key(db, key);
    let mut total = (mk.len() + meta.encode().len()) as u64;
    if let Some(at) = meta.expire_at {
        total += keys::expiry_key(db, at, key).len() as u64;
    }
    if let Body::Collection { version, len, .. } = meta.body {
        for tag in [keys::SUB, keys::ZSCORE_IDX] {
            let range = ScanRange::prefix(keys::sub_prefix(tag, db, key, version));
            let (mut seen, mut bytes) = (0u64, 0u64);
            let mut exhausted = true;
            for item in ex.scan(range, Direction::Forward) {
                if samples != 0 && seen == samples {
                    exhausted = false;
                    break;
                }
                let (k, v) = item?;
                seen += 1;
                bytes += (k.len() + v.len()) as u64;
            }
            total += if exhausted || seen == 0 {
                bytes
            } else {
                bytes.saturating_mul(len) / seen
            };
        }
    }
    Ok(total)
}

fn memory(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let sub = &args[1];
    if eq_ci(sub, "HELP") {
        sub_arity(args, args.len() == 2)?;
        return Ok(help(MEMORY_HELP));
    }
    if !eq_ci(sub, "USAGE") {
        return Err(unknown_subcommand(args));
    }
    sub_arity(args, args.len() >= 3)?;
    let mut samples: u64 = 5;
    let mut i = 3;
    while i < args.len() {
        if eq_ci(&args[i], "SAMPLES") && i + 1 < args.len() {
            let n = int_arg(&args[i + 1])?;
            if n < 0 {
                return fail(errors::SYNTAX);
            }
            samples = n as u64;
            i += 2;
        } else {
            return fail(errors::SYNTAX);
        }
    }
    let key = &args[2];
    let Some(m) = ex.meta(key)? else {
        return Ok(Reply::Nil);
    };
    let db = ex.db;
    let n = usage_of(ex, db, key, &m, samples)?;
    Ok(Reply::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

// ---------------------------------------------------------------------------------------
// DUMP, RESTORE
// ---------------------------------------------------------------------------------------

fn dump_cmd(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let Some(m) = ex.meta(key)? else {
        return Ok(Reply::Nil);
    };
    let (version, len, list) = match &m.body {
        Body::String(v) => return Ok(Reply::Bulk(Encoder::string(v).finish())),
        Body::Collection { version, len, list } => (*version, *len, *list),
    };
    let mut enc = Encoder::collection(m.kind, len, list);
    let db = ex.db;
    for tag in [keys::SUB, keys::ZSCORE_IDX] {
        let prefix = keys::sub_prefix(tag, db, key, version);
        let plen = prefix.len();
        for item in ex.scan(ScanRange::prefix(prefix), Direction::Forward) {
            let (k, v) = item?;
            enc.entry(tag, k.get(plen..).unwrap_or_default(), &v);
        }
    }
    Ok(Reply::Bulk(enc.finish()))
}

fn restore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let (mut replace, mut absttl) = (false, false);
    let (mut idle_given, mut freq_given) = (false, false);
    let mut i = 4;
    while i < args.len() {
        let has_val = i + 1 < args.len();
        if eq_ci(&args[i], "REPLACE") {
            replace = true;
        } else if eq_ci(&args[i], "ABSTTL") {
            absttl = true;
        } else if eq_ci(&args[i], "IDLETIME") && has_val && !freq_given {
            if int_arg(&args[i + 1])? < 0 {
                return fail("ERR Invalid IDLETIME value, must be >= 0");
            }
            idle_given = true;
            i += 1;
        } else if eq_ci(&args[i], "FREQ") && has_val && !idle_given {
            let f = int_arg(&args[i + 1])?;
            if !(0..=255).contains(&f) {
                return fail("ERR Invalid FREQ value, must be >= 0 and <= 255");
            }
            freq_given = true;
            i += 1;
        } else {
            return fail(errors::SYNTAX);
        }
        i += 1;
    }
    let old = ex.meta(key)?;
    if old.is_some() && !replace {
        return fail("BUSYKEY Target key name already exists.");
    }
    let ttl = int_arg(&args[2])?;
    if ttl < 0 {
        return fail("ERR Invalid TTL value, must be >= 0");
    }
    let decoded = match dump::decode(&args[3]) {
        Ok(d) => d,
        Err(PayloadError::VersionOrChecksum) => {
            return fail("ERR DUMP payload version or checksum are wrong")
        }
        Err(PayloadError::BadFormat) => return fail("ERR Bad data format"),
    };
    let expire_at = match (ttl, absttl) {
        (0, _) => None,
        (t, true) => Some(t as u64),
        (t, false) => match (t as u64).checked_add(ex.now_ms) {
            Some(at) if at <= i64::MAX as u64 => Some(at),
            _ => return fail("ERR invalid expire time in 'restore' command"),
        },
    };
    if let Some(o) = &old {
        ex.delete_key(key, o)?;
    }
    if expire_at.is_some_and(|at| at <= ex.now_ms) {
        // Already expired: Redis replies OK and leaves the key absent.
        return Ok(Reply::Ok);
    }
    let db = ex.db;
    let body = match decoded.value {
        // The payload is one buffer; store a compact copy, not a slice of it.
        Some(v) => Body::String(Bytes::copy_from_slice(&v)),
        None => {
            let version = ex.new_version();
            for (tag, suffix, value) in &decoded.entries {
                let mut k = keys::sub_prefix(*tag, db, key, version);
                k.put_slice(suffix);
                ex.put(k.freeze(), Bytes::copy_from_slice(value))?;
            }
            Body::Collection {
                version,
                len: decoded.len,
                list: decoded.list,
            }
        }
    };
    let meta = Meta {
        kind: decoded.kind,
        expire_at,
        body,
    };
    ex.put_meta(key, &meta, None)?;
    Ok(Reply::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix(b"user:*"), b"user:".to_vec());
        assert_eq!(literal_prefix(b"*x"), b"".to_vec());
        assert_eq!(literal_prefix(b"a\\*b?"), b"a*b".to_vec());
        assert_eq!(literal_prefix(b"ab[cd]"), b"ab".to_vec());
        assert_eq!(literal_prefix(b"abc"), b"abc".to_vec());
        assert_eq!(literal_prefix(b"ab\\"), b"ab".to_vec());
    }
}
