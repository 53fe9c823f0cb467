//! The `redis` table scripts call (all but `call` and `pcall`, which the sandbox adds
//! over each run's command bridge) and the `bit` library Redis bundles (LuaBitOp).

use std::cell::Cell;
use std::rc::Rc;

use mlua::{Lua, Table, Value, Variadic};

use crate::REDIS_COMPAT_VERSION as REDIS_VERSION;

/// The `redis` table. `resp` is the protocol the running script asked for with
/// `redis.setresp` (2 until it does).
pub fn create(lua: &Lua, resp: &Rc<Cell<u8>>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "sha1hex",
        lua.create_function(|lua, args: Variadic<Value>| match args.first() {
            Some(v) if args.len() == 1 => match lua.coerce_string(v.clone())? {
                Some(s) => Ok(super::sha1_hex(&s.as_bytes())),
                None => Err(mlua::Error::runtime("wrong number of arguments")),
            },
            _ => Err(mlua::Error::runtime("wrong number of arguments")),
        })?,
    )?;
    // {ok = s} and {err = s}: the tables a script returns for a status or an error.
    for (name, field) in [("status_reply", "ok"), ("error_reply", "err")] {
        t.raw_set(
            name,
            lua.create_function(move |lua, s: mlua::String| {
                let r = lua.create_table()?;
                r.raw_set(field, s)?;
                Ok(r)
            })?,
        )?;
    }
    t.raw_set(
        "log",
        lua.create_function(|lua, (level, parts): (i64, Variadic<Value>)| {
            if parts.is_empty() {
                return Err(mlua::Error::runtime(
                    "redis.log() requires two arguments or more.",
                ));
            }
            let mut text = String::new();
            for (i, p) in parts.into_iter().enumerate() {
                if i > 0 {
                    text.push(' ');
                }
                match lua.coerce_string(p)? {
                    Some(s) => text.push_str(&s.to_string_lossy()),
                    None => return Err(mlua::Error::runtime("Invalid log level.")),
                }
            }
            match level {
                0 => tracing::debug!(target: "keel::script", "{text}"),
                1 | 2 => tracing::info!(target: "keel::script", "{text}"),
                3 => tracing::warn!(target: "keel::script", "{text}"),
                _ => return Err(mlua::Error::runtime("Invalid debug level.")),
            }
            Ok(())
        })?,
    )?;
    for (name, v) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
    ] {
        t.raw_set(name, v)?;
    }
    let proto = Rc::clone(resp);
    t.raw_set(
        "setresp",
        lua.create_function(move |_, v: i64| match v {
            2 | 3 => {
                proto.set(v as u8);
                Ok(())
            }
            _ => Err(mlua::Error::runtime("RESP version must be 2 or 3.")),
        })?,
    )?;
    // Redis 7 always replicates a script's effects; these remain for old scripts.
    t.raw_set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    t.raw_set("set_repl", lua.create_function(|_, _: Value| Ok(()))?)?;
    for (name, v) in [
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        t.raw_set(name, v)?;
    }
    t.raw_set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
    t.raw_set(
        "debug",
        lua.create_function(|_, _: Variadic<Value>| Ok(()))?,
    )?;
    t.raw_set("REDIS_VERSION", REDIS_VERSION)?;
    t.raw_set("REDIS_VERSION_NUM", version_num(REDIS_VERSION))?;
    Ok(t)
}

/// `0x00MMmmpp` of a "M.m.p" version, as Redis's REDIS_VERSION_NUM.
fn version_num(v: &str) -> i64 {
    v.split('.')
        .map(|p| p.parse::<i64>().unwrap_or(0))
        .chain(std::iter::repeat(0))
        .take(3)
        .fold(0, |acc, p| (acc << 8) | (p & 0xff))
}

/// LuaBitOp's `bit` table: 32-bit operations on numbers, as Redis bundles it.
pub fn create_bit(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let fold = |lua: &Lua, name: &str, init: i32, op: fn(i32, i32) -> i32| -> mlua::Result<()> {
        let f = lua.create_function(move |_, args: Variadic<f64>| {
            Ok(f64::from(
                args.iter().fold(init, |acc, v| op(acc, tobit(*v))),
            ))
        })?;
        t.raw_set(name, f)
    };
    fold(lua, "band", -1, |a, b| a & b)?;
    fold(lua, "bor", 0, |a, b| a | b)?;
    fold(lua, "bxor", 0, |a, b| a ^ b)?;
    let shift = |lua: &Lua, name: &str, op: fn(i32, u32) -> i32| -> mlua::Result<()> {
        let f = lua.create_function(move |_, (x, n): (f64, f64)| {
            Ok(f64::from(op(tobit(x), (tobit(n) & 31) as u32)))
        })?;
        t.raw_set(name, f)
    };
    shift(lua, "lshift", |x, n| ((x as u32) << n) as i32)?;
    shift(lua, "rshift", |x, n| ((x as u32) >> n) as i32)?;
    shift(lua, "arshift", |x, n| x >> n)?;
    shift(lua, "rol", |x, n| (x as u32).rotate_left(n) as i32)?;
    shift(lua, "ror", |x, n| (x as u32).rotate_right(n) as i32)?;
    t.raw_set(
        "tobit",
        lua.create_function(|_, x: f64| Ok(f64::from(tobit(x))))?,
    )?;
    t.raw_set(
        "bnot",
        lua.create_function(|_, x: f64| Ok(f64::from(!tobit(x))))?,
    )?;
    t.raw_set(
        "bswap",
        lua.create_function(|_, x: f64| Ok(f64::from(tobit(x).swap_bytes())))?,
    )?;
    t.raw_set(
        "tohex",
        lua.create_function(|_, (x, n): (f64, Option<f64>)| {
            let n = n.map_or(8, tobit);
            let (upper, width) = if n < 0 {
                (true, n.unsigned_abs())
            } else {
                (false, n as u32)
            };
            let width = width.min(8);
            let v = (tobit(x) as u32) as u64;
            let masked = if width >= 8 {
                v
            } else {
                v & ((1u64 << (4 * width)) - 1)
            };
            let s = if upper {
                format!("{masked:0w$X}", w = width as usize)
            } else {
                format!("{masked:0w$x}", w = width as usize)
            };
            Ok(s)
        })?,
    )?;
    Ok(t)
}

/// LuaBitOp's normalisation of a number to a signed 32-bit integer: the number's
/// integer part modulo 2^32 (it adds 2^52+2^51 and takes the low word, which rounds
/// to nearest even; numbers scripts pass are integers).
fn tobit(x: f64) -> i32 {
    if !x.is_finite() {
        return 0;
    }
    let r = x.round_ties_even();
    (r.rem_euclid(4_294_967_296.0) as u64 as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tobit_wraps_like_luabitop() {
        assert_eq!(tobit(0xffff_ffffu32 as f64), -1);
        assert_eq!(tobit(4_294_967_296.0 + 5.0), 5);
        assert_eq!(tobit(-1.0), -1);
        assert_eq!(tobit(2_147_483_648.0), i32::MIN);
    }

    #[test]
    fn version_num_packs_three_bytes() {
        assert_eq!(version_num("7.2.0"), 0x07_02_00);
        assert_eq!(version_num("7.0.15"), 0x07_00_0f);
    }
}
