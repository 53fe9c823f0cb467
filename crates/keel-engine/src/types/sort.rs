//! SORT and SORT_RO (Redis's sort.c): the elements of a list, set or sorted set,
//! sorted as numbers or (ALPHA) as bytes, optionally by weights read from other keys
//! (`BY pattern`), windowed by LIMIT, projected through other keys (`GET pattern`),
//! and returned or stored as a list (`STORE`, SORT only).
//!
//! The collection and the pattern lookups are read through the other types' own
//! commands (LRANGE, SMEMBERS, ZRANGE, GET, HGET, found in the command table), so SORT
//! reads exactly what those commands read, with their type checks and lazy expiry.
//!
//! The keys BY and GET patterns name are not in the command's key spec: a node reads
//! them from its own keyspace (Redis refuses such patterns in cluster mode).

use std::cmp::Ordering;

use bytes::Bytes;

use crate::args::{eq_ci, parse_f64, parse_i64};
use crate::command::{flags::*, lookup, CommandSpec};
use crate::error::{fail, CmdError, CmdResult};
use crate::exec::Exec;
use crate::meta::KeyType;
use crate::reply::{errors, Reply};

/// SORT and SORT_RO.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "sort",
        arity: -2,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary:
            "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
        handler: sort,
    },
    CommandSpec {
        name: "sort_ro",
        arity: -2,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Returns the sorted elements of a list, a set, or a sorted set.",
        handler: sort_ro,
    },
];

const NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";

/// An element's (or its weight's) number, read as Redis's SORT reads it with `strtod`:
/// an empty string is 0 and leading whitespace is skipped (`"", " 2"` sort as 0 and 2),
/// while anything left over, a blank string included, is not a number.
fn sort_score(w: &[u8]) -> Option<f64> {
    if w.is_empty() {
        return Some(0.0);
    }
    let start = w
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))?;
    parse_f64(&w[start..]).filter(|v| !v.is_nan())
}

/// SORT's options as parsed.
#[derive(Default)]
struct Options {
    desc: bool,
    alpha: bool,
    /// LIMIT offset count (Redis's defaults: 0 and -1, everything).
    limit: Option<(i64, i64)>,
    store: Option<Bytes>,
    by: Option<Bytes>,
    /// A BY pattern without `*`: no sorting and no weight look-ups.
    dont_sort: bool,
    gets: Vec<Bytes>,
}

fn parse(args: &[Bytes], readonly: bool) -> CmdResult<Options> {
    let mut o = Options::default();
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if eq_ci(a, "ASC") {
            o.desc = false;
        } else if eq_ci(a, "DESC") {
            o.desc = true;
        } else if eq_ci(a, "ALPHA") {
            o.alpha = true;
        } else if eq_ci(a, "LIMIT") && left >= 2 {
            let n =
                |b: &Bytes| parse_i64(b).ok_or(CmdError::Reply(Reply::err(errors::NOT_INTEGER)));
            o.limit = Some((n(&args[j + 1])?, n(&args[j + 2])?));
            j += 2;
        } else if !readonly && eq_ci(a, "STORE") && left >= 1 {
            o.store = Some(args[j + 1].clone());
            j += 1;
        } else if eq_ci(a, "BY") && left >= 1 {
            let p = args[j + 1].clone();
            o.dont_sort = !p.contains(&b'*');
            o.by = Some(p);
            j += 1;
        } else if eq_ci(a, "GET") && left >= 1 {
            o.gets.push(args[j + 1].clone());
            j += 1;
        } else {
            return fail(errors::SYNTAX);
        }
        j += 1;
    }
    Ok(o)
}

/// Runs another command of the table on `ex` (LRANGE, GET, RPUSH, …).
fn call(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let Some(spec) = args.first().and_then(|n| lookup(n)) else {
        return fail("ERR SORT could not find a command it runs through");
    };
    (spec.handler)(ex, args)
}

/// [`call`] with borrowed arguments.
fn run(ex: &mut Exec, args: &[&[u8]]) -> CmdResult<Reply> {
    let owned: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
    call(ex, &owned)
}

/// The bulk strings of a multi-value reply, in order.
fn values(r: Reply) -> Vec<Bytes> {
    match r {
        Reply::Bulks(b) | Reply::BulkSet(b) => b.iter().map(Bytes::copy_from_slice).collect(),
        Reply::Array(v) | Reply::Set(v) => v
            .into_iter()
            .filter_map(|r| match r {
                Reply::Bulk(b) => Some(b),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Redis's `lookupKeyByPattern`: `#` is the element itself; otherwise the first `*`
/// becomes the element and the key is read as a string, or with `->field` as a hash
/// field. None when the pattern has no `*`, the key is missing or of another type.
fn lookup_pattern(ex: &mut Exec, pattern: &[u8], elem: &Bytes) -> CmdResult<Option<Bytes>> {
    if pattern == b"#" {
        return Ok(Some(elem.clone()));
    }
    let Some(star) = pattern.iter().position(|b| *b == b'*') else {
        return Ok(None);
    };
    let after = &pattern[star + 1..];
    let (rest, field) = match after.windows(2).position(|w| w == b"->") {
        Some(at) if at + 2 < after.len() => (&after[..at], Some(&after[at + 2..])),
        _ => (after, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + elem.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(rest);
    let want = if field.is_some() {
        KeyType::Hash
    } else {
        KeyType::String
    };
    if ex.meta(&key)?.map(|m| m.kind) != Some(want) {
        return Ok(None);
    }
    let reply = match field {
        Some(f) => run(ex, &[b"hget", &key, f])?,
        None => run(ex, &[b"get", &key])?,
    };
    Ok(match reply {
        Reply::Bulk(b) => Some(b),
        _ => None,
    })
}

/// One element to sort and what it sorts by.
struct Item {
    elem: Bytes,
    score: f64,
    /// ALPHA with BY: the weight (None sorts first).
    by: Option<Bytes>,
}

fn sort(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    sort_generic(ex, args, false)
}

fn sort_ro(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    sort_generic(ex, args, true)
}

fn sort_generic(ex: &mut Exec, args: &[Bytes], readonly: bool) -> CmdResult<Reply> {
    let mut o = parse(args, readonly)?;
    let key = &args[1];
    let kind = ex.meta(key)?.map(|m| m.kind);
    let mut elems = match kind {
        None => Vec::new(),
        Some(KeyType::List) => values(run(ex, &[b"lrange", key, b"0", b"-1"])?),
        Some(KeyType::Set) => values(run(ex, &[b"smembers", key])?),
        Some(KeyType::ZSet) => values(run(ex, &[b"zrange", key, b"0", b"-1"])?),
        Some(_) => return fail(errors::WRONGTYPE),
    };
    // A set stored without sorting is sorted as bytes, so what is stored does not hang
    // on the set's internal order (Redis does the same).
    if o.dont_sort && kind == Some(KeyType::Set) && o.store.is_some() {
        o.dont_sort = false;
        o.alpha = true;
        o.by = None;
    }
    if o.dont_sort {
        // Lists and sorted sets keep their own order, reversed by DESC.
        if o.desc && kind != Some(KeyType::Set) {
            elems.reverse();
        }
    } else {
        elems = sorted(ex, elems, &o)?;
    }
    let window = limit_window(elems.len(), o.limit);
    let picked = &elems[window];
    let mut out: Vec<Option<Bytes>> = Vec::with_capacity(picked.len() * o.gets.len().max(1));
    for e in picked {
        if o.gets.is_empty() {
            out.push(Some(e.clone()));
        }
        for g in &o.gets {
            out.push(lookup_pattern(ex, g, e)?);
        }
    }
    match o.store {
        None => Ok(Reply::Array(
            out.into_iter()
                .map(|v| v.map_or(Reply::Nil, Reply::Bulk))
                .collect(),
        )),
        Some(dst) => store(ex, &dst, out),
    }
}

/// Sorts `elems` as SORT's options say: by number (the element, or its BY weight;
/// equal numbers by the elements' bytes) or by bytes (ALPHA).
fn sorted(ex: &mut Exec, elems: Vec<Bytes>, o: &Options) -> CmdResult<Vec<Bytes>> {
    let mut items = Vec::with_capacity(elems.len());
    for elem in elems {
        let weight = match &o.by {
            Some(p) => lookup_pattern(ex, p, &elem)?,
            None => Some(elem.clone()),
        };
        let mut item = Item {
            elem,
            score: 0.0,
            by: None,
        };
        if o.alpha {
            if o.by.is_some() {
                item.by = weight;
            }
        } else if let Some(w) = weight {
            // A missing weight counts as 0, as in Redis.
            item.score = sort_score(&w).ok_or(CmdError::Reply(Reply::err(NOT_DOUBLE)))?;
        }
        items.push(item);
    }
    let cmp = |a: &Item, b: &Item| -> Ordering {
        let c = if !o.alpha {
            a.score
                .partial_cmp(&b.score)
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.elem.cmp(&b.elem))
        } else if o.by.is_some() {
            // None (no weight) before any weight, as Redis compares NULLs.
            a.by.cmp(&b.by)
        } else {
            a.elem.cmp(&b.elem)
        };
        if o.desc {
            c.reverse()
        } else {
            c
        }
    };
    items.sort_by(cmp);
    Ok(items.into_iter().map(|i| i.elem).collect())
}

/// The elements LIMIT offset count selects out of `len` (Redis's clamping: a negative
/// offset is 0, a negative count is everything after the offset).
fn limit_window(len: usize, limit: Option<(i64, i64)>) -> std::ops::Range<usize> {
    let Some((offset, count)) = limit else {
        return 0..len;
    };
    let start = usize::try_from(offset.max(0))
        .unwrap_or(usize::MAX)
        .min(len);
    let end = match usize::try_from(count) {
        Ok(c) => start.saturating_add(c).min(len),
        Err(_) => len,
    };
    start..end
}

/// STORE: the result replaces `dst` as a list (nil values stored as empty strings), or
/// deletes it when empty; the reply is the stored length.
fn store(ex: &mut Exec, dst: &Bytes, out: Vec<Option<Bytes>>) -> CmdResult<Reply> {
    let n = out.len();
    if n == 0 {
        // DEL raises Redis's "del" event when the key was there.
        run(ex, &[b"del", dst])?;
        // WATCH sees the destination written even when nothing was there (Redis's
        // "EXEC fail on WATCHed key modified by SORT with STORE even if the result is
        // empty").
        ex.touch(dst);
        return Ok(Reply::Int(0));
    }
    // One "sortstore" event instead of DEL's and RPUSH's own.
    let record = std::mem::replace(&mut ex.record_events, false);
    let mut push: Vec<Bytes> = Vec::with_capacity(n + 2);
    push.push(Bytes::from_static(b"rpush"));
    push.push(dst.clone());
    push.extend(out.into_iter().map(Option::unwrap_or_default));
    let result = run(ex, &[b"del", dst]).and_then(|_| call(ex, &push));
    ex.record_events = record;
    result?;
    ex.notify('l', "sortstore", dst);
    Ok(Reply::Int(n as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_clamps_as_redis_does() {
        assert_eq!(limit_window(5, None), 0..5);
        assert_eq!(limit_window(5, Some((1, 2))), 1..3);
        assert_eq!(limit_window(5, Some((-3, 2))), 0..2);
        assert_eq!(limit_window(5, Some((2, -1))), 2..5);
        assert_eq!(limit_window(5, Some((7, 2))), 5..5);
        assert_eq!(limit_window(5, Some((3, i64::MAX))), 3..5);
        assert_eq!(limit_window(0, Some((0, 1))), 0..0);
    }
}
