//! The `cmsgpack` table Redis gives scripts: MessagePack encoding and decoding with
//! `pack`, `unpack`, `unpack_one` and `unpack_limit`, following lua-cmsgpack 0.4.0 as
//! Redis bundles it (built for Lua 5.1) byte for byte: the encodings it picks, its
//! quirks (a uint64 comes back through a signed integer; `unpack_limit(s, 0)` unpacks
//! everything), and its error texts.
//!
//! lua-cmsgpack's limits come from the Lua stack of the C function: 16 levels of
//! tables when packing (deeper ones pack as nil, which is how circular references end),
//! and 8000 stack slots (`LUAI_MAXCSTACK`), which bound how many values one call
//! unpacks, how deep unpacked data may nest and how many arguments `pack` takes. Those
//! are reproduced slot for slot, so that the same data fails with the same error as in
//! Redis.
//!
//! Two limits are keel's own, both on what one unpacking call returns, because mlua
//! returns the values from Rust: at most [`RESULT_SLOTS`] slots of arguments and values
//! (Redis has 8000), and at most [`MAX_HELD_RESULTS`] strings and tables. Past them the
//! call fails with Redis's error for too many values.

use std::borrow::Cow;

use mlua::{Lua, MultiValue, Table, Value};

use super::vm::Raised;

/// Table nesting past which `pack` writes nil instead of the table.
const MAX_NESTING: usize = 16;

/// Stack slots a C function may use in Lua 5.1 (`LUAI_MAXCSTACK`): lua-cmsgpack's
/// stack checks fail past it.
const STACK_SLOTS: usize = 8000;

/// The part of [`STACK_SLOTS`] an unpacking call's arguments and results may take:
/// mlua needs some of the slots to return the results, and fails with its own error
/// when they are not there.
const RESULT_SLOTS: usize = STACK_SLOTS - 64;

/// Strings and tables one unpacking call may return (Redis allows up to 7999 values
/// of any kind). Each one returned is an mlua reference, and mlua has about 8000 for
/// the whole interpreter (the compiled scripts hold some) and panics when they run out;
/// so past this the call fails as Redis's does when its stack is full.
const MAX_HELD_RESULTS: usize = 4000;

/// What lua-cmsgpack's stack check says when unpacking returns too many values.
const TOO_MANY_VALUES: &str =
    "too many return values at once; use unpack_one or unpack_limit instead.";

/// Input that ends inside a value.
const MISSING_BYTES: &str = "Missing bytes in input.";

/// Input with a byte that starts no value lua-cmsgpack decodes.
const BAD_FORMAT: &str = "Bad data format in input.";

/// The `cmsgpack` table: `pack`, `unpack`, `unpack_one`, `unpack_limit`, and the
/// library's `_NAME`, `_VERSION`, `_COPYRIGHT` and `_DESCRIPTION`.
pub fn create(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", lua.create_function(pack)?)?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, args: MultiValue| {
            let s = check_string(lua, &args, 1)?;
            // Every argument stays on the C function's stack, taking room from results.
            unpack(lua, &s.as_bytes(), 0, 0, args.len())
        })?,
    )?;
    t.raw_set(
        "unpack_one",
        lua.create_function(|lua, args: MultiValue| {
            let offset = opt_integer(lua, &args, 2, 0)?;
            let s = check_string(lua, &args, 1)?;
            unpack(lua, &s.as_bytes(), 1, offset, 1)
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(|lua, args: MultiValue| {
            let limit = check_integer(lua, &args, 2)?;
            let offset = opt_integer(lua, &args, 3, 0)?;
            let s = check_string(lua, &args, 1)?;
            unpack(lua, &s.as_bytes(), limit, offset, 1)
        })?,
    )?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

/// An error lua-cmsgpack raises with `luaL_error`: the script's line goes before it.
fn raise(msg: impl Into<String>) -> mlua::Error {
    Raised::at_caller(msg.into())
}

/// The error of a failed `luaL_checkstack`.
fn stack_overflow(what: &str) -> mlua::Error {
    raise(format!("stack overflow ({what})"))
}

/// lua-cmsgpack's `luaL_checkstack(L, extra, what)` with `height` slots in use.
fn reserve(height: usize, extra: usize, what: &str) -> mlua::Result<()> {
    if height + extra > STACK_SLOTS {
        return Err(stack_overflow(what));
    }
    Ok(())
}

/// `luaL_argerror`: names the function as the caller called it (`'?'` when it has no
/// name there, as under `pcall`), and does not count `self` in a method call.
fn arg_error(lua: &Lua, mut narg: i64, msg: &str) -> mlua::Error {
    let called = lua.inspect_stack(0, |d| {
        let names = d.names();
        (names.name.map(Cow::into_owned), names.name_what)
    });
    let Some((name, what)) = called else {
        return raise(format!("bad argument #{narg} ({msg})"));
    };
    let name = name.unwrap_or_else(|| "?".to_owned());
    if what == Some("method") {
        narg -= 1;
        if narg == 0 {
            return raise(format!("calling '{name}' on bad self ({msg})"));
        }
    }
    raise(format!("bad argument #{narg} to '{name}' ({msg})"))
}

/// Lua 5.1's name for the type of argument `v` (`luaL_typename`), which says
/// "userdata" for light userdata too.
fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// `luaL_checklstring` of argument `n` (1-based): a string, or a number as Lua writes it.
fn check_string(lua: &Lua, args: &MultiValue, n: usize) -> mlua::Result<mlua::String> {
    let arg = args.get(n - 1);
    let s = match arg {
        Some(v @ (Value::String(_) | Value::Integer(_) | Value::Number(_))) => {
            lua.coerce_string(v.clone())?
        }
        _ => None,
    };
    s.ok_or_else(|| {
        let msg = format!("string expected, got {}", type_name(arg));
        arg_error(lua, n as i64, &msg)
    })
}

/// `luaL_checkinteger` of argument `n`: a number or a numeric string, truncated.
fn check_integer(lua: &Lua, args: &MultiValue, n: usize) -> mlua::Result<i64> {
    let arg = args.get(n - 1);
    let number = match arg {
        Some(v) => lua.coerce_number(v.clone())?,
        None => None,
    };
    match number {
        Some(x) => Ok(truncate(x)),
        None => {
            let msg = format!("number expected, got {}", type_name(arg));
            Err(arg_error(lua, n as i64, &msg))
        }
    }
}

/// `luaL_optinteger`: `default` when argument `n` is absent or nil.
fn opt_integer(lua: &Lua, args: &MultiValue, n: usize, default: i64) -> mlua::Result<i64> {
    match args.get(n - 1) {
        None | Some(Value::Nil) => Ok(default),
        Some(_) => check_integer(lua, args, n),
    }
}

/// A number made an integer as Lua 5.1 does on x86-64, where what does not fit (and
/// NaN) becomes the lowest integer, not the nearest as with Rust's `as`.
fn truncate(x: f64) -> i64 {
    if x.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&x) {
        i64::MIN
    } else {
        x as i64
    }
}

/// `cmsgpack.pack(v1, v2, …)`: each argument packed, one after the other.
fn pack(lua: &Lua, args: MultiValue) -> mlua::Result<mlua::String> {
    let nargs = args.len();
    if nargs == 0 {
        return Err(arg_error(lua, 0, "MessagePack pack needs input."));
    }
    // lua-cmsgpack asks for as many slots again as it has arguments.
    if 2 * nargs > STACK_SLOTS {
        return Err(arg_error(
            lua,
            0,
            "Too many arguments for MessagePack pack.",
        ));
    }
    let mut out = Vec::new();
    for (i, v) in args.iter().enumerate() {
        // On the stack: the arguments, the `i` pieces packed so far, then this value.
        reserve(nargs + i, 1, "in function mp_check")?;
        encode(&mut out, v, 0, nargs + i + 1)?;
    }
    lua.create_string(out)
}

/// Appends the MessagePack form of `v`, a table `level` deep, to `out`. `height` is
/// how many stack slots lua-cmsgpack would use with `v` on top.
fn encode(out: &mut Vec<u8>, v: &Value, level: usize, height: usize) -> mlua::Result<()> {
    match v {
        Value::Nil => out.push(0xc0),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_int(out, *i),
        Value::Number(n) => encode_number(out, *n),
        Value::String(s) => encode_bytes(out, &s.as_bytes()),
        Value::Table(t) if level < MAX_NESTING => encode_table(out, t, level, height)?,
        // A table too deep (how a circular one ends), or a type MessagePack has no form
        // for (functions, userdata, threads): lua-cmsgpack writes nil for both.
        _ => out.push(0xc0),
    }
    Ok(())
}

/// A number: as an integer when a 64-bit integer holds it exactly, else as a float
/// when a 32-bit one does, else as a double.
fn encode_number(out: &mut Vec<u8>, n: f64) {
    let integral = n.is_finite()
        && n.trunc() == n
        && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&n);
    if integral {
        encode_int(out, n as i64);
        return;
    }
    let single = n as f32;
    if f64::from(single) == n {
        out.push(0xca);
        out.extend_from_slice(&single.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// An integer in its shortest form: the unsigned forms for n ≥ 0, the signed ones
/// below.
fn encode_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        match n {
            0..=0x7f => out.push(n as u8),
            0x80..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                out.push(0xcf);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
    } else {
        match n {
            -32..=-1 => out.push(n as u8),
            -128..=-33 => out.extend_from_slice(&[0xd0, n as u8]),
            -32768..=-129 => {
                out.push(0xd1);
                out.extend_from_slice(&(n as i16).to_be_bytes());
            }
            -2_147_483_648..=-32769 => {
                out.push(0xd2);
                out.extend_from_slice(&(n as i32).to_be_bytes());
            }
            _ => {
                out.push(0xd3);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
    }
}

/// A string: fixstr, str8, str16 or str32 by length.
fn encode_bytes(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    match len {
        0..=31 => out.push(0xa0 | len as u8),
        32..=0xff => out.extend_from_slice(&[0xd9, len as u8]),
        0x100..=0xffff => {
            out.push(0xda);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        // The interpreter's memory limit keeps strings far below 4 GiB.
        _ => {
            out.push(0xdb);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(s);
}

/// A container's header: the fix form (`fix` | n) up to 15 items, else the 16-bit form
/// (`wide`), else the 32-bit one (`wide` + 1).
fn encode_header(out: &mut Vec<u8>, fix: u8, wide: u8, n: usize) {
    match n {
        0..=15 => out.push(fix | n as u8),
        16..=0xffff => {
            out.push(wide);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        // A table of 4 billion items does not fit in the interpreter's memory.
        _ => {
            out.push(wide + 1);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
}

/// A table: an array when its keys are exactly 1..n, a map otherwise (in `next`'s
/// order, as lua-cmsgpack walks it).
fn encode_table(out: &mut Vec<u8>, t: &Table, level: usize, height: usize) -> mlua::Result<()> {
    reserve(height, 2, "in function table_is_an_array")?;
    if let Some(len) = sequence_len(t)? {
        encode_header(out, 0x90, 0xdc, len);
        reserve(height, 1, "in function mp_encode_lua_table_as_array")?;
        for i in 1..=len {
            // Raw: every key 1..n is there, so lua-cmsgpack's `lua_gettable` never
            // reaches a metamethod either.
            let v: Value = t.raw_get(i)?;
            encode(out, &v, level + 1, height + 1)?;
        }
        return Ok(());
    }
    reserve(height, 3, "in function mp_encode_lua_table_as_map")?;
    // Counted first, as the header comes before the pairs; no Lua code runs while
    // packing, so the table cannot change in between.
    let mut len = 0;
    for pair in t.pairs::<Value, Value>() {
        pair?;
        len += 1;
    }
    encode_header(out, 0x80, 0xde, len);
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        // lua-cmsgpack packs a copy of the key above the key and the value.
        encode(out, &k, level + 1, height + 3)?;
        encode(out, &v, level + 1, height + 2)?;
    }
    Ok(())
}

/// n when the keys of `t` are exactly the integers 1..n (keys an `int` cannot hold
/// count as not integers, as in lua-cmsgpack), else None.
fn sequence_len(t: &Table) -> mlua::Result<Option<usize>> {
    let (mut count, mut max) = (0usize, 0usize);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        if !(n > 0.0 && n <= f64::from(i32::MAX) && n.trunc() == n) {
            return Ok(None);
        }
        max = max.max(n as usize);
        count += 1;
    }
    Ok((count == max).then_some(count))
}

/// lua-cmsgpack's `mp_unpack_full`: values decoded from `s` from `offset`, at most
/// `limit` of them, with the offset to go on from (-1 at the end) before them; or all of
/// them and no offset when both are 0. `base` is the stack slots the arguments take.
fn unpack(lua: &Lua, s: &[u8], limit: i64, offset: i64, base: usize) -> mlua::Result<MultiValue> {
    let len = s.len();
    // Redis prints these through C `int`s, and the input's length where it says limit.
    if offset < 0 || limit < 0 {
        return Err(raise(format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32, len as i32
        )));
    }
    if offset as u64 > len as u64 {
        return Err(raise(format!(
            "Start offset {} greater than input length {}.",
            offset as i32, len as i32
        )));
    }
    let everything = limit == 0 && offset == 0;
    let limit = if everything {
        i64::from(i32::MAX)
    } else {
        limit
    };
    let mut dec = Decoder::new(lua, s, offset as usize);
    let mut values = Vec::new();
    let mut held = 0;
    while dec.pos < len && (values.len() as i64) < limit {
        if base + values.len() + 1 > RESULT_SLOTS {
            return Err(stack_overflow(TOO_MANY_VALUES));
        }
        let v = dec.value(base + values.len())?;
        if matches!(v, Value::String(_) | Value::Table(_)) {
            held += 1;
            if held > MAX_HELD_RESULTS {
                return Err(stack_overflow(TOO_MANY_VALUES));
            }
        }
        values.push(v);
    }
    if everything {
        return Ok(MultiValue::from_vec(values));
    }
    if base + values.len() + 1 > RESULT_SLOTS {
        return Err(stack_overflow("in function mp_unpack_full"));
    }
    let next = if dec.pos == len { -1 } else { dec.pos as i64 };
    let mut out = MultiValue::with_capacity(values.len() + 1);
    out.push_back(Value::Integer(next));
    out.extend(values);
    Ok(out)
}

/// What one item of the input starts.
enum Item {
    /// A whole value.
    Value(Value),
    /// An array of this many values.
    Array(usize),
    /// A map of this many pairs.
    Map(usize),
}

/// Where decoding goes on after a value is put in its place.
enum Settled {
    /// With the next item, at this stack height.
    Next(usize),
    /// It was a whole top-level value.
    Done(Value),
}

/// A container being decoded.
struct Frame {
    /// lua-cmsgpack's stack height with the container's table on top.
    height: usize,
    /// Items (pairs for a map) still to come.
    left: usize,
    kind: Kind,
}

/// What a container is, and where its next value goes.
enum Kind {
    /// An array: the index the next value goes to.
    Array { next: i64 },
    /// A map, with the key of the pair being decoded.
    Map { key: Key },
}

/// A map's key while its value is being decoded.
enum Key {
    /// No key yet: the next value is one.
    Awaited,
    /// Decoded and kept in the spill table.
    Held,
    /// Decoded, and a key Lua refuses (its error, raised once the value is decoded, as
    /// `lua_settable` does).
    Refused(&'static str),
}

/// Decodes values from `input`, one at a time.
///
/// Nesting is followed without recursion, and the open containers' tables and pending
/// keys are kept in a Lua table (`spill`), not as Rust handles: data may nest 4000 deep
/// (nearly 8000 through map keys), and every handle is one of mlua's few thousand
/// references. Only the innermost table is also held (`current`).
struct Decoder<'a> {
    lua: &'a Lua,
    input: &'a [u8],
    pos: usize,
    frames: Vec<Frame>,
    /// Container `d` (1-based depth) at index 2d-1, its pending key at 2d.
    spill: Option<Table>,
    /// The innermost open container's table, once fetched.
    current: Option<Table>,
}

impl<'a> Decoder<'a> {
    fn new(lua: &'a Lua, input: &'a [u8], pos: usize) -> Decoder<'a> {
        Decoder {
            lua,
            input,
            pos,
            frames: Vec::new(),
            spill: None,
            current: None,
        }
    }

    /// The next whole value, with `height` stack slots in use below it.
    fn value(&mut self, height: usize) -> mlua::Result<Value> {
        let mut at = height;
        loop {
            let v = match self.item(at)? {
                Item::Value(v) => v,
                // Tables start empty, whatever size the header claims: they grow with
                // the items actually there, so a lying header allocates nothing.
                Item::Array(len) => {
                    let t = self.lua.create_table()?;
                    reserve(at + 1, 1, "in function mp_decode_to_lua_array")?;
                    if len > 0 {
                        // Each value is decoded above the table and its index.
                        self.open(t, at + 1, len, Kind::Array { next: 1 })?;
                        at += 2;
                        continue;
                    }
                    Value::Table(t)
                }
                Item::Map(len) => {
                    let t = self.lua.create_table()?;
                    if len > 0 {
                        self.open(t, at + 1, len, Kind::Map { key: Key::Awaited })?;
                        at += 1;
                        continue;
                    }
                    Value::Table(t)
                }
            };
            match self.settle(v)? {
                Settled::Next(height) => at = height,
                Settled::Done(v) => return Ok(v),
            }
        }
    }

    /// Reads the header of the next item, at stack height `height`: a scalar or string
    /// whole, or a container's size.
    fn item(&mut self, height: usize) -> mlua::Result<Item> {
        let Some(&tag) = self.input.get(self.pos) else {
            return Err(raise(MISSING_BYTES));
        };
        reserve(height, 1, TOO_MANY_VALUES)?;
        let number = |x: f64| Ok(Item::Value(Value::Number(x)));
        match tag {
            0x00..=0x7f => {
                self.pos += 1;
                number(f64::from(tag))
            }
            0x80..=0x8f => {
                self.pos += 1;
                Ok(Item::Map(usize::from(tag & 0x0f)))
            }
            0x90..=0x9f => {
                self.pos += 1;
                Ok(Item::Array(usize::from(tag & 0x0f)))
            }
            0xa0..=0xbf => self.string(0, usize::from(tag & 0x1f)),
            0xc0 => {
                self.pos += 1;
                Ok(Item::Value(Value::Nil))
            }
            0xc2 | 0xc3 => {
                self.pos += 1;
                Ok(Item::Value(Value::Boolean(tag == 0xc3)))
            }
            0xca => number(f64::from(f32::from_be_bytes(self.fixed()?))),
            0xcb => number(f64::from_be_bytes(self.fixed()?)),
            0xcc => number(f64::from(u8::from_be_bytes(self.fixed()?))),
            0xcd => number(f64::from(u16::from_be_bytes(self.fixed()?))),
            0xce => number(f64::from(u32::from_be_bytes(self.fixed()?))),
            // Redis pushes it through a signed integer: 2^64-1 comes back as -1.
            0xcf => number(u64::from_be_bytes(self.fixed()?) as i64 as f64),
            0xd0 => number(f64::from(i8::from_be_bytes(self.fixed()?))),
            0xd1 => number(f64::from(i16::from_be_bytes(self.fixed()?))),
            0xd2 => number(f64::from(i32::from_be_bytes(self.fixed()?))),
            0xd3 => number(i64::from_be_bytes(self.fixed()?) as f64),
            0xd9 => {
                let [n] = self.peek()?;
                self.string(1, usize::from(n))
            }
            0xda => {
                let n = u16::from_be_bytes(self.peek()?);
                self.string(2, usize::from(n))
            }
            0xdb => {
                let n = u32::from_be_bytes(self.peek()?);
                self.string(4, n as usize)
            }
            0xdc => Ok(Item::Array(usize::from(u16::from_be_bytes(self.fixed()?)))),
            0xdd => Ok(Item::Array(u32::from_be_bytes(self.fixed()?) as usize)),
            0xde => Ok(Item::Map(usize::from(u16::from_be_bytes(self.fixed()?)))),
            0xdf => Ok(Item::Map(u32::from_be_bytes(self.fixed()?) as usize)),
            0xe0..=0xff => {
                self.pos += 1;
                number(f64::from(tag as i8))
            }
            // Bin, ext and the reserved byte: lua-cmsgpack decodes none of them.
            _ => Err(raise(BAD_FORMAT)),
        }
    }

    /// The N bytes after the tag.
    fn peek<const N: usize>(&self) -> mlua::Result<[u8; N]> {
        let start = self.pos + 1;
        self.input
            .get(start..start + N)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| raise(MISSING_BYTES))
    }

    /// The N bytes after the tag, consumed with it.
    fn fixed<const N: usize>(&mut self) -> mlua::Result<[u8; N]> {
        let b = self.peek()?;
        self.pos += 1 + N;
        Ok(b)
    }

    /// A string of `len` bytes after the tag and a length field of `width` bytes.
    fn string(&mut self, width: usize, len: usize) -> mlua::Result<Item> {
        let start = self.pos + 1 + width;
        let body = start
            .checked_add(len)
            .and_then(|end| self.input.get(start..end))
            .ok_or_else(|| raise(MISSING_BYTES))?;
        let s = self.lua.create_string(body)?;
        self.pos = start + len;
        Ok(Item::Value(Value::String(s)))
    }

    /// The spill table, made on first use.
    fn spill(&mut self) -> mlua::Result<&Table> {
        let t = match self.spill.take() {
            Some(t) => t,
            None => self.lua.create_table()?,
        };
        Ok(self.spill.insert(t))
    }

    /// The innermost open container's table.
    fn current(&mut self) -> mlua::Result<&Table> {
        let t = match self.current.take() {
            Some(t) => t,
            None => {
                let slot = table_slot(self.frames.len());
                self.spill()?.raw_get(slot)?
            }
        };
        Ok(self.current.insert(t))
    }

    /// Starts decoding into container `t` of `len` items, its table at stack `height`.
    fn open(&mut self, t: Table, height: usize, len: usize, kind: Kind) -> mlua::Result<()> {
        self.frames.push(Frame {
            height,
            left: len,
            kind,
        });
        let slot = table_slot(self.frames.len());
        self.spill()?.raw_set(slot, &t)?;
        self.current = Some(t);
        Ok(())
    }

    /// Puts the decoded `v` where it belongs, closing the containers it completes.
    fn settle(&mut self, mut v: Value) -> mlua::Result<Settled> {
        loop {
            let depth = self.frames.len();
            let Some(frame) = self.frames.last_mut() else {
                return Ok(Settled::Done(v));
            };
            let height = frame.height;
            match &mut frame.kind {
                Kind::Array { next } => {
                    let index = *next;
                    *next += 1;
                    frame.left -= 1;
                    let more = frame.left > 0;
                    self.current()?.raw_set(index, v)?;
                    if more {
                        return Ok(Settled::Next(height + 1));
                    }
                }
                Kind::Map { key } => match *key {
                    Key::Awaited => {
                        *key = match &v {
                            Value::Nil => Key::Refused("table index is nil"),
                            Value::Number(n) if n.is_nan() => Key::Refused("table index is NaN"),
                            _ => Key::Held,
                        };
                        self.spill()?.raw_set(key_slot(depth), v)?;
                        // The value is decoded above the table and the key.
                        return Ok(Settled::Next(height + 1));
                    }
                    // Lua's own error, which names no script line.
                    Key::Refused(msg) => return Err(mlua::Error::runtime(msg)),
                    Key::Held => {
                        *key = Key::Awaited;
                        frame.left -= 1;
                        let more = frame.left > 0;
                        let spill = self.spill()?;
                        let k: Value = spill.raw_get(key_slot(depth))?;
                        spill.raw_set(key_slot(depth), Value::Nil)?;
                        self.current()?.raw_set(k, v)?;
                        if more {
                            return Ok(Settled::Next(height));
                        }
                    }
                },
            }
            v = self.close()?;
        }
    }

    /// Ends the innermost container: its table.
    fn close(&mut self) -> mlua::Result<Value> {
        let slot = table_slot(self.frames.len());
        let t = match self.current.take() {
            Some(t) => t,
            None => self.spill()?.raw_get(slot)?,
        };
        self.spill()?.raw_set(slot, Value::Nil)?;
        self.frames.pop();
        Ok(Value::Table(t))
    }
}

/// Where container `depth` keeps its table in the spill table.
fn table_slot(depth: usize) -> i64 {
    2 * depth as i64 - 1
}

/// Where container `depth` keeps its pending key in the spill table.
fn key_slot(depth: usize) -> i64 {
    2 * depth as i64
}

#[cfg(test)]
mod tests {
    //! Expected bytes and error texts are redis-server 7.0's answers to the same scripts.

    use mlua::{Function, Lua, MultiValue, Value};

    use super::{create, Raised};

    /// A state with the table as the global `cmsgpack`, and Lua helpers: `hex(s)`, and
    /// `same(a, b)`, deep equality.
    fn state() -> Lua {
        let lua = Lua::new();
        let t = create(&lua).expect("create");
        lua.globals().set("cmsgpack", t).expect("register");
        lua.load(
            r#"
            function hex(s)
              return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))
            end
            function same(a, b)
              if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end
              for k, v in pairs(a) do if not same(v, b[k]) then return false end end
              for k in pairs(b) do if a[k] == nil then return false end end
              return true
            end
            "#,
        )
        .exec()
        .expect("helpers");
        lua
    }

    /// What `code` returns.
    fn eval<T: mlua::FromLuaMulti>(lua: &Lua, code: &str) -> T {
        lua.load(code)
            .eval()
            .unwrap_or_else(|e| panic!("{code}: {e}"))
    }

    /// The packed `args` (a Lua argument list), in hex.
    fn packed(lua: &Lua, args: &str) -> String {
        eval(lua, &format!("return hex(cmsgpack.pack({args}))"))
    }

    /// The message of error `e` as the script's error handler gets it, and whether the
    /// calling line goes before it (as for `luaL_error`).
    fn message(e: &mlua::Error) -> (String, bool) {
        match e {
            mlua::Error::CallbackError { cause, .. } => message(cause),
            mlua::Error::ExternalError(x) => match x.downcast_ref::<Raised>() {
                Some(r) => (r.0.clone(), true),
                None => (x.to_string(), false),
            },
            mlua::Error::RuntimeError(m) => (m.clone(), false),
            other => (other.to_string(), false),
        }
    }

    /// The error `code` raises.
    fn error(lua: &Lua, code: &str) -> (String, bool) {
        match lua.load(code).exec() {
            Ok(()) => panic!("{code}: no error"),
            Err(e) => message(&e),
        }
    }

    /// Asserts `code` raises `want` as `luaL_error` does.
    fn raises(lua: &Lua, code: &str, want: &str) {
        assert_eq!(error(lua, code), (want.to_owned(), true), "{code}");
    }

    #[test]
    fn integers_at_every_size_boundary() {
        let lua = state();
        for (args, want) in [
            ("0, -0, 1", "000001"),
            (
                "127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, 2^53",
                "7fcc80ccffcd0100cdffffce00010000ceffffffffcf0000000100000000cf0020000000000000",
            ),
            (
                "-1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649, -2^53",
                "ffe0d0dfd080d1ff7fd18000d2ffff7fffd280000000d3ffffffff7fffffffd3ffe0000000000000",
            ),
            ("-1099511627776", "d3ffffff0000000000"),
            ("-2^63", "d38000000000000000"),
            // Not an int64, so a float: lua-cmsgpack's test is a cast that overflows.
            ("2^63, 2^64", "ca5f000000ca5f800000"),
        ] {
            assert_eq!(packed(&lua, args), want, "{args}");
        }
    }

    #[test]
    fn floats_and_doubles() {
        let lua = state();
        for (args, want) in [
            ("0.5, 1/3, -0.5", "ca3f000000cb3fd5555555555555cabf000000"),
            ("0.1", "cb3fb999999999999a"),
            ("1/0, -1/0", "ca7f800000caff800000"),
            ("1e20", "cb4415af1d78b58c40"),
        ] {
            assert_eq!(packed(&lua, args), want, "{args}");
        }
        let nan: String = packed(&lua, "0/0");
        assert!(nan.starts_with("cb") && nan.len() == 18, "{nan}");
    }

    #[test]
    fn strings_by_length() {
        let lua = state();
        assert_eq!(packed(&lua, "''"), "a0");
        assert_eq!(packed(&lua, "'abc'"), "a3616263");
        for (len, header) in [
            (31, "bf"),
            (32, "d920"),
            (255, "d9ff"),
            (256, "da0100"),
            (65535, "daffff"),
            (65536, "db00010000"),
        ] {
            let hex = packed(&lua, &format!("string.rep('x', {len})"));
            assert_eq!(&hex[..header.len()], header, "{len}");
            assert_eq!(hex.len(), header.len() + 2 * len, "{len}");
            assert!(hex[header.len()..].bytes().eq("78".repeat(len).bytes()));
        }
    }

    #[test]
    fn scalars_and_several_arguments() {
        let lua = state();
        assert_eq!(packed(&lua, "1, 'a', nil, true, false"), "01a161c0c3c2");
        // Types MessagePack has no form for are packed as nil.
        assert_eq!(packed(&lua, "tostring, {tostring}"), "c091c0");
        assert_eq!(packed(&lua, "coroutine.create(function() end)"), "c0");
    }

    #[test]
    fn tables_as_arrays_or_maps() {
        let lua = state();
        for (args, want) in [
            ("{1, 2, 3}", "93010203"),
            ("{}", "90"),
            ("{[2] = 2, [1] = 1}", "920102"),
            // A hole, a key an int cannot hold, a fraction: maps.
            ("{[1] = 1, [3] = 3}", "8201010303"),
            ("{[2^31] = 1}", "81ce8000000001"),
            ("{[1.5] = 1}", "81ca3fc0000001"),
            ("{[0] = 1}", "810001"),
            (
                "{a = 1, b = 2, c = {1, 2}, d = {x = true}}",
                "84a16101a16481a178c3a163920102a16202",
            ),
            ("{1, {2, {3}}, 'x'}", "9301920291 03a178"),
        ] {
            assert_eq!(packed(&lua, args), want.replace(' ', ""), "{args}");
        }
        let sixteen: String = eval(
            &lua,
            "local t = {} for i = 1, 16 do t[i] = i end return hex(cmsgpack.pack(t))",
        );
        assert!(sixteen.starts_with("dc00100102"), "{sixteen}");
        let big: String = eval(
            &lua,
            "local t = {} for i = 1, 70000 do t[i] = 1 end return hex(cmsgpack.pack(t):sub(1, 6))",
        );
        assert_eq!(big, "dd0001117001");
    }

    #[test]
    fn nesting_past_sixteen_tables_is_nil() {
        let lua = state();
        let selfish: String = eval(&lua, "local a = {} a[1] = a return hex(cmsgpack.pack(a))");
        assert_eq!(selfish, format!("{}c0", "91".repeat(16)));
        // Redis's test "EVAL - cmsgpack can pack and unpack circular references?".
        let circular: String = eval(
            &lua,
            "local a = {x=nil,y=5}; local b = {x=a}; a['x'] = b; local encoded = cmsgpack.pack(a); \
             local h = ''; for i = 1, #encoded do h = h .. string.format('%02x',string.byte(encoded, i)) end \
             return h",
        );
        assert_eq!(
            circular,
            "82a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a178c0"
        );
    }

    #[test]
    fn round_trips() {
        let lua = state();
        // Redis's tests for negative int64 and 0.1.
        let back: f64 = eval(
            &lua,
            "return cmsgpack.unpack(cmsgpack.pack(-1099511627776))",
        );
        assert_eq!(back, -1_099_511_627_776.0);
        let exact: bool = eval(&lua, "return cmsgpack.unpack(cmsgpack.pack(0.1)) == 0.1");
        assert!(exact);
        for value in [
            "{1, 2, {a = {b = {c = 'd'}}}, 'x', -5, 0.5, true, false}",
            "{[-1] = 1, [0] = 2, [1.5] = 3, [true] = 4, k = {}, [100] = {1, 2}}",
            "-2^63, 2^53, -2^31, 1/3, 1e300, -1/0",
            "string.rep('z', 70000), '', {string.rep('q', 300)}",
        ] {
            let ok: bool = eval(
                &lua,
                &format!(
                    "local a = {{{value}}} local b = {{cmsgpack.unpack(cmsgpack.pack({value}))}} \
                     return #a == #b and same(a, b)"
                ),
            );
            assert!(ok, "{value}");
        }
    }

    #[test]
    fn smoke_test_with_big_arrays_and_maps() {
        let lua = state();
        let ok: bool = eval(
            &lua,
            r#"
            local big_array, big_map = {}, {}
            for i = 1, 100000 do big_array[i] = i; big_map[tostring(i)] = i end
            local t = {
              s1 = string.rep('x', 30), s2 = string.rep('x', 250), s3 = string.rep('x', 65530),
              s4 = string.rep('x', 100000), d1 = 0.1, i1 = 1, i2 = 250, i3 = 65530, i4 = 100000,
              i5 = 2^40, i6 = -1, i7 = -120, i8 = -32000, i9 = -1200000000, b1 = true, b2 = false,
              a1 = {1, 2, 3, 4, 5}, a2 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17},
              a3 = big_array, m1 = {a = 1, b = 2}, m2 = big_map,
            }
            return same(t, cmsgpack.unpack(cmsgpack.pack(t)))
            "#,
        );
        assert!(ok);
    }

    #[test]
    fn decodes_every_form() {
        let lua = state();
        let all: String = eval(
            &lua,
            r#"return table.concat({cmsgpack.unpack(
              '\206\255\255\255\255\210\255\255\255\254\209\128\1\208\128\204\255\205\255\255' ..
              '\202\63\0\0\0\203\63\185\153\153\153\153\153\154\7\224\192')}, ' ')"#,
        );
        assert_eq!(all, "4294967295 -2 -32767 -128 255 65535 0.5 0.1 7 -32");
        // A uint64 goes through a signed integer, as in Redis.
        let wrapped: f64 = eval(
            &lua,
            r"return cmsgpack.unpack('\207\255\255\255\255\255\255\255\255')",
        );
        assert_eq!(wrapped, -1.0);
        let strings: String = eval(
            &lua,
            r"return table.concat({cmsgpack.unpack('\218\0\3abc\217\2hi\163xyz\160\219\0\0\0\1!')}, ',')",
        );
        assert_eq!(strings, "abc,hi,xyz,,!");
        let containers: bool = eval(
            &lua,
            r"local a, b, c, d, e, f = cmsgpack.unpack('\220\0\2\1\2\221\0\0\0\1\3\222\0\1\1\2\223\0\0\0\1\4\5\144\128')
              return same(a, {1, 2}) and same(b, {3}) and same(c, {2}) and same(d, {[4] = 5})
                and same(e, {}) and same(f, {})",
        );
        assert!(containers);
        // A nil in an array leaves a hole; a repeated map key keeps the last value.
        let holes: bool = eval(
            &lua,
            r"return same(cmsgpack.unpack('\147\1\192\3'), {1, nil, 3})
                and same(cmsgpack.unpack('\130\1\2\1\3'), {3})
                and same(cmsgpack.unpack('\130\1\192\2\3'), {[2] = 3})",
        );
        assert!(holes);
        // A number given for the string is unpacked as Lua writes it: "1.5".
        let digits: String = eval(&lua, "return table.concat({cmsgpack.unpack(1.5)}, ',')");
        assert_eq!(digits, "49,46,53");
        let meta: String = eval(&lua, "return cmsgpack._NAME .. ' ' .. cmsgpack._VERSION");
        assert_eq!(meta, "cmsgpack lua-cmsgpack 0.4.0");
    }

    /// What `code` returns, all of it, as text.
    fn all(lua: &Lua, code: &str) -> String {
        let values: MultiValue = eval(lua, code);
        values
            .iter()
            .map(|v| match v {
                Value::Integer(i) => i.to_string(),
                Value::Number(n) => n.to_string(),
                Value::String(s) => format!("{:?}", s.to_string_lossy()),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn offsets_of_unpack_one_and_unpack_limit() {
        let lua = state();
        for (code, want) in [
            (r"cmsgpack.unpack_one('\1\2')", "1 1"),
            (r"cmsgpack.unpack_one('\1\2', 1)", "-1 2"),
            (r"cmsgpack.unpack_one('\1\2', 2)", "-1"),
            (r"cmsgpack.unpack_one('\1\2', nil)", "1 1"),
            (r"cmsgpack.unpack_one('\1\2', 1.9)", "-1 2"),
            (r"cmsgpack.unpack_one('\1\2', '1')", "-1 2"),
            (r"cmsgpack.unpack_one('')", "-1"),
            (r"cmsgpack.unpack('')", ""),
            (r"cmsgpack.unpack_limit('\1\2\3', 2)", "2 1 2"),
            (r"cmsgpack.unpack_limit('\1\2\3', 2, 1)", "-1 2 3"),
            (r"cmsgpack.unpack_limit('\1\2\3', 5)", "-1 1 2 3"),
            (r"cmsgpack.unpack_limit('\1\2\3', 0, 1)", "1"),
            (r"cmsgpack.unpack_limit('\1\2\3', 1, 3)", "-1"),
            // Limit and offset both 0 is lua-cmsgpack's "everything, no offset".
            (r"cmsgpack.unpack_limit('\1\2\3', 0)", "1 2 3"),
            (r"cmsgpack.unpack_limit('\1\2', -0.5, 0)", "1 2"),
        ] {
            assert_eq!(all(&lua, &format!("return {code}")), want, "{code}");
        }
    }

    #[test]
    fn error_texts() {
        let lua = state();
        for (code, want) in [
            (r"cmsgpack.unpack('\193')", "Bad data format in input."),
            (r"cmsgpack.unpack('\196\1\1')", "Bad data format in input."),
            (r"cmsgpack.unpack('\212\1\1')", "Bad data format in input."),
            (r"cmsgpack.unpack('\1\193')", "Bad data format in input."),
            (r"cmsgpack.unpack('\146\1')", "Missing bytes in input."),
            (r"cmsgpack.unpack('\217')", "Missing bytes in input."),
            (
                r"cmsgpack.unpack('\219\0\0\0\5abc')",
                "Missing bytes in input.",
            ),
            (
                r"cmsgpack.unpack('\221\255\255\255\255\1')",
                "Missing bytes in input.",
            ),
            (
                r"cmsgpack.unpack('\223\255\255\255\255\1\193')",
                "Bad data format in input.",
            ),
            (
                r"cmsgpack.unpack('\220\0\9\1\193')",
                "Bad data format in input.",
            ),
            (
                "cmsgpack.pack()",
                "bad argument #0 to 'pack' (MessagePack pack needs input.)",
            ),
            (
                "local p = cmsgpack.pack p()",
                "bad argument #0 to 'p' (MessagePack pack needs input.)",
            ),
            (
                "cmsgpack.unpack()",
                "bad argument #1 to 'unpack' (string expected, got no value)",
            ),
            (
                "cmsgpack.unpack({})",
                "bad argument #1 to 'unpack' (string expected, got table)",
            ),
            (
                "cmsgpack:unpack()",
                "calling 'unpack' on bad self (string expected, got table)",
            ),
            (
                "cmsgpack.unpack_one(nil, 5)",
                "bad argument #1 to 'unpack_one' (string expected, got nil)",
            ),
            (
                r"cmsgpack.unpack_one('\1', 'x')",
                "bad argument #2 to 'unpack_one' (number expected, got string)",
            ),
            (
                r"cmsgpack.unpack_limit('\1')",
                "bad argument #2 to 'unpack_limit' (number expected, got no value)",
            ),
            (
                r"cmsgpack.unpack_limit('\1', 1, {})",
                "bad argument #3 to 'unpack_limit' (number expected, got table)",
            ),
            // lua-cmsgpack prints the input's length where it says limit.
            (
                r"cmsgpack.unpack_limit('\1', -1)",
                "Invalid request to unpack with offset of 0 and limit of 1.",
            ),
            (
                r"cmsgpack.unpack_one('\1\2', -1)",
                "Invalid request to unpack with offset of -1 and limit of 2.",
            ),
            (
                r"cmsgpack.unpack_one('\1\2', 0/0)",
                "Invalid request to unpack with offset of 0 and limit of 2.",
            ),
            (
                r"cmsgpack.unpack_limit('\1\2', 1, 5)",
                "Start offset 5 greater than input length 2.",
            ),
            (
                r"cmsgpack.unpack_one('\1\2', 5000000000)",
                "Start offset 705032704 greater than input length 2.",
            ),
        ] {
            raises(&lua, code, want);
        }
        // Lua's own errors, which name no line.
        for (code, want) in [
            (r"cmsgpack.unpack('\129\192\1')", "table index is nil"),
            (
                r"cmsgpack.unpack('\129\203\255\248\0\0\0\0\0\0\1')",
                "table index is NaN",
            ),
            // A count beyond the input is not refused up front: what comes first fails.
            (r"cmsgpack.unpack('\132\192\1')", "table index is nil"),
        ] {
            assert_eq!(error(&lua, code), (want.to_owned(), false), "{code}");
        }
        // The value is decoded before the key is refused.
        raises(
            &lua,
            r"cmsgpack.unpack('\129\192')",
            "Missing bytes in input.",
        );
        let unnamed: (bool, String) = lua
            .load("local ok, e = pcall(cmsgpack.pack) return ok, tostring(e)")
            .eval()
            .expect("pcall");
        assert!(
            !unnamed.0 && unnamed.1.contains("bad argument #0 to '?'"),
            "{}",
            unnamed.1
        );
    }

    #[test]
    fn stack_limits_as_in_redis() {
        let lua = state();
        let returns = "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)";
        let arrays = "stack overflow (in function mp_decode_to_lua_array)";
        // Arrays nest up to 3999 deep.
        let depth = "local t = cmsgpack.unpack(s) local d = 0 while type(t) == 'table' do t = t[1] d = d + 1 end return d";
        let deepest: i64 = eval(
            &lua,
            &format!(r"local s = string.rep('\145', 3999) .. '\1' {depth}"),
        );
        assert_eq!(deepest, 3999);
        raises(
            &lua,
            r"cmsgpack.unpack(string.rep('\145', 4000) .. '\1')",
            arrays,
        );
        raises(
            &lua,
            r"cmsgpack.unpack(string.rep('\145', 3999) .. '\144')",
            arrays,
        );
        raises(
            &lua,
            r"cmsgpack.unpack(string.rep('\129\1', 4000) .. '\1')",
            returns,
        );
        // Through map keys, nearly 8000 deep.
        let keys = "local t = cmsgpack.unpack(s) local d = 0 while type(t) == 'table' do t = next(t) d = d + 1 end return d";
        let deepest: i64 = eval(
            &lua,
            &format!(
                r"local s = string.rep('\129', 7997) .. '\1' .. string.rep('\1', 7997) {keys}"
            ),
        );
        assert_eq!(deepest, 7997);
        raises(
            &lua,
            r"cmsgpack.unpack(string.rep('\129', 7998) .. '\1' .. string.rep('\1', 7998))",
            returns,
        );
        raises(
            &lua,
            r"cmsgpack.unpack(string.rep('\129', 7998) .. '\145\1' .. string.rep('\1', 7998))",
            arrays,
        );
        // pack takes up to 4000 arguments; the last ones cannot be tables.
        let len: i64 = eval(
            &lua,
            "local t = {} for i = 1, 4000 do t[i] = i end return #cmsgpack.pack(unpack(t))",
        );
        assert_eq!(len, 11618);
        raises(
            &lua,
            "local t = {} for i = 1, 4001 do t[i] = i end cmsgpack.pack(unpack(t))",
            "bad argument #0 to 'pack' (Too many arguments for MessagePack pack.)",
        );
        raises(
            &lua,
            "local t = {} for i = 1, 4000 do t[i] = {} end cmsgpack.pack(unpack(t))",
            "stack overflow (in function table_is_an_array)",
        );
        raises(
            &lua,
            "local t = {} for i = 1, 4000 do t[i] = i end t[3998] = {a = 1} cmsgpack.pack(unpack(t))",
            "stack overflow (in function mp_encode_lua_table_as_map)",
        );
    }

    #[test]
    fn result_limits_of_keel() {
        let lua = state();
        let returns = "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)";
        let n: i64 = eval(
            &lua,
            r"return select('#', cmsgpack.unpack(string.rep('\1', 7935)))",
        );
        assert_eq!(n, 7935);
        raises(&lua, r"cmsgpack.unpack(string.rep('\1', 7936))", returns);
        let n: i64 = eval(
            &lua,
            r"return select('#', cmsgpack.unpack_limit(string.rep('\1', 7940), 7934))",
        );
        assert_eq!(n, 7935);
        raises(
            &lua,
            r"cmsgpack.unpack_limit(string.rep('\1', 7940), 7935)",
            "stack overflow (in function mp_unpack_full)",
        );
        let n: i64 = eval(
            &lua,
            r"return select('#', cmsgpack.unpack(string.rep('\160', 4000)))",
        );
        assert_eq!(n, 4000);
        raises(&lua, r"cmsgpack.unpack(string.rep('\160', 4001))", returns);
        raises(&lua, r"cmsgpack.unpack(string.rep('\144', 4001))", returns);
    }

    #[test]
    fn deep_data_holds_few_references() {
        let lua = state();
        // The interpreter's other handles (its compiled scripts) take some of mlua's
        // ~8000 references; decoding thousands deep must still not run out, nor
        // returning the most strings allowed.
        let held: Vec<mlua::String> = (0..3000)
            .map(|i| lua.create_string(i.to_string()).expect("string"))
            .collect();
        let deepest: i64 = eval(
            &lua,
            r"local s = string.rep('\129', 7997) .. '\161k' .. string.rep('\161v', 7997)
              local t = cmsgpack.unpack(s) local d = 0
              while type(t) == 'table' do t = next(t) d = d + 1 end return d",
        );
        assert_eq!(deepest, 7997);
        let deepest: i64 = eval(
            &lua,
            r"local s = string.rep('\146\160', 3998) .. '\144'
              local t = cmsgpack.unpack(s) local d = 0
              while type(t) == 'table' do t = t[2] d = d + 1 end return d",
        );
        assert_eq!(deepest, 3999);
        let n: i64 = eval(
            &lua,
            r"return select('#', cmsgpack.unpack(string.rep('\161x', 4000)))",
        );
        assert_eq!(n, 4000);
        drop(held);
    }

    /// `unpack(input)` through the Lua function: Ok, or one of lua-cmsgpack's errors.
    fn unpack_safely(unpack: &Function, lua: &Lua, input: &[u8], what: &str) -> bool {
        let s = lua.create_string(input).expect("string");
        match unpack.call::<MultiValue>(s) {
            Ok(_) => true,
            Err(e) => {
                let (msg, _) = message(&e);
                let known = [
                    "Missing bytes in input.",
                    "Bad data format in input.",
                    "table index is nil",
                    "table index is NaN",
                ];
                assert!(
                    known.contains(&msg.as_str()) || msg.starts_with("stack overflow ("),
                    "{what} {input:02x?}: {msg}"
                );
                false
            }
        }
    }

    #[test]
    fn truncated_and_corrupt_input_errors() {
        let lua = state();
        let sample: mlua::String = eval(
            &lua,
            r"return cmsgpack.pack({1, -200, 70000, -5000000000, 0.5, 1/3, 'abc', string.rep('s', 40),
                string.rep('m', 300), {x = {y = {true, false, nil}}}, [20] = 2^60})",
        );
        let sample = sample.as_bytes().to_vec();
        let unpack: Function = eval(&lua, "return cmsgpack.unpack");
        assert!(unpack_safely(&unpack, &lua, &sample, "whole"));
        // A single value: every shorter prefix is missing bytes.
        for end in 1..sample.len() {
            let s = lua.create_string(&sample[..end]).expect("string");
            let e = unpack.call::<MultiValue>(s).expect_err("prefix decoded");
            assert_eq!(
                message(&e),
                ("Missing bytes in input.".to_owned(), true),
                "prefix {end}"
            );
        }
        // Changed bytes: decoded or refused, never a panic.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut input = sample.clone();
            for _ in 0..=next() % 3 {
                let at = (next() % input.len() as u64) as usize;
                input[at] = next() as u8;
            }
            if next() % 4 == 0 {
                input.truncate((next() % input.len() as u64) as usize);
            }
            unpack_safely(&unpack, &lua, &input, "changed");
        }
        for _ in 0..3000 {
            let len = (next() % 24) as usize;
            let input: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            unpack_safely(&unpack, &lua, &input, "random");
        }
        // Counts far beyond the input allocate nothing up front.
        for input in [
            &b"\xdd\xff\xff\xff\xff"[..],
            b"\xdf\xff\xff\xff\xff\x01",
            b"\xdb\xff\xff\xff\xffab",
            b"\xdc\xff\xff\x90",
        ] {
            assert!(!unpack_safely(&unpack, &lua, input, "count"));
        }
    }
}
