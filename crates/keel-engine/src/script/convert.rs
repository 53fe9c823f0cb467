//! Conversions between command replies and Lua values, by Redis's rules (the
//! "Data type conversion" section of its scripting documentation).

use bytes::Bytes;
use mlua::{Lua, Table, Value};

use crate::reply::Reply;

/// Deepest nesting of tables a script's reply may have.
const MAX_DEPTH: usize = 1_000;

/// A command's reply as the script sees it, under protocol `resp` (2 or 3, as the
/// script chose with `redis.setresp`). Errors become `{err = text}`.
pub fn reply_to_lua(lua: &Lua, reply: &Reply, resp: u8) -> mlua::Result<Value> {
    let resp3 = resp == 3;
    Ok(match reply {
        Reply::Ok => status(lua, "OK")?,
        Reply::Simple(s) => status(lua, s)?,
        Reply::Error(e) => {
            let t = lua.create_table()?;
            t.raw_set("err", lua.create_string(e)?)?;
            Value::Table(t)
        }
        Reply::Int(i) => Value::Number(*i as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(b)?),
        Reply::Nil | Reply::NilArray => {
            if resp3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        Reply::Set(items) if resp3 => {
            let set = lua.create_table()?;
            for r in items {
                set.raw_set(reply_to_lua(lua, r, resp)?, true)?;
            }
            wrapped(lua, "set", Value::Table(set))?
        }
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) => {
            array(lua, items.iter().map(|r| reply_to_lua(lua, r, resp)))?
        }
        Reply::BulkSet(_) | Reply::BulkMap(_) => reply_to_lua(lua, &reply.expanded(), resp)?,
        Reply::Bulks(list) => array(
            lua,
            list.iter().map(|b| lua.create_string(b).map(Value::String)),
        )?,
        Reply::Double(d) | Reply::HumanDouble(d) => {
            if resp3 {
                wrapped(lua, "double", Value::Number(*d))?
            } else {
                let text = match reply {
                    Reply::HumanDouble(_) => crate::args::format_human_ld(*d),
                    _ => crate::args::format_f64(*d),
                };
                Value::String(lua.create_string(text)?)
            }
        }
        Reply::Bool(b) => {
            if resp3 {
                Value::Boolean(*b)
            } else {
                Value::Number(if *b { 1.0 } else { 0.0 })
            }
        }
        // A map in RESP3 (XREAD's too); RESP2 flattens a map and nests XREAD's pairs.
        Reply::Map(pairs) | Reply::PairMap(pairs) if resp3 => {
            let map = lua.create_table()?;
            for (k, v) in pairs {
                map.raw_set(reply_to_lua(lua, k, resp)?, reply_to_lua(lua, v, resp)?)?;
            }
            wrapped(lua, "map", Value::Table(map))?
        }
        Reply::Map(pairs) => flat_pairs(lua, pairs, resp)?,
        // RESP3 nests ZRANGE … WITHSCORES's pairs; RESP2 flattens them.
        Reply::Pairs(pairs) if !resp3 => flat_pairs(lua, pairs, resp)?,
        Reply::Pairs(pairs) | Reply::PairMap(pairs) => array(
            lua,
            pairs.iter().map(|(a, b)| {
                array(
                    lua,
                    [reply_to_lua(lua, a, resp), reply_to_lua(lua, b, resp)].into_iter(),
                )
            }),
        )?,
    })
}

fn status(lua: &Lua, s: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("ok", lua.create_string(s)?)?;
    Ok(Value::Table(t))
}

fn wrapped(lua: &Lua, field: &str, v: Value) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(field, v)?;
    Ok(Value::Table(t))
}

fn array(lua: &Lua, items: impl Iterator<Item = mlua::Result<Value>>) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    for (i, v) in items.enumerate() {
        t.raw_set(i + 1, v?)?;
    }
    Ok(Value::Table(t))
}

fn flat_pairs(lua: &Lua, pairs: &[(Reply, Reply)], resp: u8) -> mlua::Result<Value> {
    array(
        lua,
        pairs
            .iter()
            .flat_map(|(a, b)| [a, b])
            .map(|r| reply_to_lua(lua, r, resp)),
    )
}

/// A script's result as the reply the client gets.
pub fn lua_to_reply(v: &Value) -> Reply {
    to_reply(v, 0)
}

fn to_reply(v: &Value, depth: usize) -> Reply {
    match v {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(true) => Reply::Int(1),
        Value::Integer(i) => Reply::Int(*i),
        // C's cast, as Redis converts: truncated, saturated past the ends.
        Value::Number(n) => Reply::Int(*n as i64),
        Value::Table(t) => table_to_reply(t, depth),
        _ => Reply::Nil,
    }
}

fn table_to_reply(t: &Table, depth: usize) -> Reply {
    if depth >= MAX_DEPTH {
        return Reply::err("ERR reached lua stack limit");
    }
    let text = |field: &str| match t.raw_get::<Value>(field) {
        Ok(Value::String(s)) => Some(s.to_string_lossy()),
        _ => None,
    };
    if let Some(e) = text("err") {
        // An error reply needs a code: Redis answers a bare "ERR" for an empty one.
        return Reply::Error(if e.is_empty() { "ERR".to_owned() } else { e });
    }
    if let Some(s) = text("ok") {
        return Reply::Simple(s);
    }
    if let Ok(Value::Number(d)) = t.raw_get::<Value>("double") {
        return Reply::Double(d);
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
        let pairs = m
            .pairs::<Value, Value>()
            .filter_map(|p| p.ok())
            .map(|(k, v)| (to_reply(&k, depth + 1), to_reply(&v, depth + 1)))
            .collect();
        return Reply::Map(pairs);
    }
    if let Ok(Value::Table(s)) = t.raw_get::<Value>("set") {
        let items = s
            .pairs::<Value, Value>()
            .filter_map(|p| p.ok())
            .map(|(k, _)| to_reply(&k, depth + 1))
            .collect();
        return Reply::Set(items);
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(to_reply(&v, depth + 1)),
        }
    }
    Reply::Array(items)
}
