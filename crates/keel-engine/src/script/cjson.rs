//! The `cjson` table Redis gives scripts (lua-cjson 2.1 with Redis's defaults):
//! `cjson.encode`, `cjson.decode` and `cjson.null`, with lua-cjson's output and
//! error texts, and its settings (`encode_max_depth` and the rest). A setting lasts
//! for the script that makes it: lua-cjson keeps it in the interpreter for every later
//! script, which in keel would make a script's output depend on which thread ran
//! scripts before it, and a replay could differ.

use std::cell::Cell;
use std::rc::Rc;

use mlua::{LightUserData, Lua, Table, Value, Variadic};

use super::vm::Raised as raise_kind;

/// An error lua-cjson raises with `luaL_error`: the error handler prefixes where in
/// the script the call was.
fn raise(msg: String) -> mlua::Error {
    raise_kind::at_caller(msg)
}

/// What encoding does with NaN and infinities (`encode_invalid_numbers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invalid {
    /// Refuse them (the default).
    Off,
    /// Write them as `nan`, `inf`, `-inf`.
    On,
    /// Write them as `null`.
    Null,
}

/// lua-cjson's settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    encode_max_depth: usize,
    decode_max_depth: usize,
    invalid: Invalid,
    /// Excessively sparse arrays: encode them as objects instead of refusing them.
    sparse_convert: bool,
    /// More than this many times as many slots as items (0: never sparse)…
    sparse_ratio: usize,
    /// …and past this index, an array is excessively sparse.
    sparse_safe: usize,
    /// Significant digits of an encoded number.
    precision: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            invalid: Invalid::Off,
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            precision: 14,
        }
    }
}

/// The `cjson` table, its settings in `cfg` (which the interpreter resets before each
/// script).
pub fn create(lua: &Lua, cfg: &Rc<Cell<Config>>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let c = Rc::clone(cfg);
    t.raw_set(
        "encode",
        lua.create_function(move |lua, v: Value| {
            let mut out = Vec::new();
            encode(&c.get(), &v, 0, &mut out)?;
            lua.create_string(out)
        })?,
    )?;
    let c = Rc::clone(cfg);
    t.raw_set(
        "decode",
        lua.create_function(move |lua, s: mlua::String| {
            let bytes = s.as_bytes();
            let max_depth = c.get().decode_max_depth;
            let mut p = Parser {
                lua,
                s: &bytes,
                at: 0,
                max_depth,
            };
            let v = p.value(0)?;
            p.skip_ws();
            if p.at < p.s.len() {
                return Err(p.expected("the end", p.at));
            }
            Ok(v)
        })?,
    )?;
    t.raw_set("null", null())?;
    settings(lua, &t, cfg)?;
    Ok(t)
}

/// lua-cjson's setting functions: each sets what it is given and answers the setting.
fn settings(lua: &Lua, t: &Table, cfg: &Rc<Cell<Config>>) -> mlua::Result<()> {
    let depth = |name: &'static str, get: fn(&Config) -> usize, set: fn(&mut Config, usize)| {
        let c = Rc::clone(cfg);
        lua.create_function(move |_, n: Option<f64>| {
            let mut now = c.get();
            if let Some(n) = n {
                if !(1.0..=2_147_483_647.0).contains(&n) {
                    return Err(raise(format!(
                        "bad argument #1 to '{name}' (expected integer between 1 and 2147483647)"
                    )));
                }
                set(&mut now, n as usize);
                c.set(now);
            }
            Ok(get(&now))
        })
    };
    t.raw_set(
        "encode_max_depth",
        depth(
            "encode_max_depth",
            |c| c.encode_max_depth,
            |c, n| c.encode_max_depth = n,
        )?,
    )?;
    t.raw_set(
        "decode_max_depth",
        depth(
            "decode_max_depth",
            |c| c.decode_max_depth,
            |c, n| c.decode_max_depth = n,
        )?,
    )?;
    let c = Rc::clone(cfg);
    t.raw_set(
        "encode_number_precision",
        lua.create_function(move |_, n: Option<f64>| {
            let mut now = c.get();
            if let Some(n) = n {
                if !(1.0..=14.0).contains(&n) {
                    return Err(raise(
                        "bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)".into(),
                    ));
                }
                now.precision = n as usize;
                c.set(now);
            }
            Ok(now.precision)
        })?,
    )?;
    let c = Rc::clone(cfg);
    t.raw_set(
        "encode_invalid_numbers",
        lua.create_function(move |lua, v: Option<Value>| {
            let mut now = c.get();
            if let Some(v) = v {
                now.invalid = match v {
                    Value::Boolean(true) => Invalid::On,
                    Value::Boolean(false) => Invalid::Off,
                    Value::String(s) if s.as_bytes().as_ref() == b"on" => Invalid::On,
                    Value::String(s) if s.as_bytes().as_ref() == b"off" => Invalid::Off,
                    Value::String(s) if s.as_bytes().as_ref() == b"null" => Invalid::Null,
                    _ => {
                        return Err(raise(
                            "bad argument #1 to 'encode_invalid_numbers' (invalid option)".into(),
                        ))
                    }
                };
                c.set(now);
            }
            Ok(match now.invalid {
                Invalid::On => Value::Boolean(true),
                Invalid::Off => Value::Boolean(false),
                Invalid::Null => Value::String(lua.create_string("null")?),
            })
        })?,
    )?;
    let c = Rc::clone(cfg);
    t.raw_set(
        "encode_sparse_array",
        lua.create_function(
            move |_, (convert, ratio, safe): (Option<bool>, Option<f64>, Option<f64>)| {
                let mut now = c.get();
                if let Some(v) = convert {
                    now.sparse_convert = v;
                }
                if let Some(r) = ratio {
                    now.sparse_ratio = r.max(0.0) as usize;
                }
                if let Some(s) = safe {
                    now.sparse_safe = s.max(0.0) as usize;
                }
                c.set(now);
                Ok((now.sparse_convert, now.sparse_ratio, now.sparse_safe))
            },
        )?,
    )?;
    // Buffer reuse between calls: a speed setting of lua-cjson, no change in output.
    t.raw_set(
        "encode_keep_buffer",
        lua.create_function(|_, _: Variadic<Value>| Ok(true))?,
    )?;
    Ok(())
}

/// `cjson.null`: the NULL light userdata.
fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

fn cannot(kind: &str, reason: &str) -> mlua::Error {
    raise(format!("Cannot serialise {kind}: {reason}"))
}

fn encode(cfg: &Config, v: &Value, depth: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(u) if u.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => number(cfg, *i as f64, out)?,
        Value::Number(n) => number(cfg, *n, out)?,
        Value::String(s) => string(&s.as_bytes(), out),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > cfg.encode_max_depth {
                return Err(raise(format!(
                    "Cannot serialise, excessive nesting ({depth})"
                )));
            }
            match array_length(cfg, t)? {
                Some(len) if len > 0 => {
                    out.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            out.push(b',');
                        }
                        encode(cfg, &t.raw_get::<Value>(i)?, depth, out)?;
                    }
                    out.push(b']');
                }
                _ => {
                    out.push(b'{');
                    for (i, pair) in t.pairs::<Value, Value>().enumerate() {
                        let (k, v) = pair?;
                        if i > 0 {
                            out.push(b',');
                        }
                        match &k {
                            Value::Number(_) | Value::Integer(_) => {
                                out.push(b'"');
                                let n = match k {
                                    Value::Integer(i) => i as f64,
                                    Value::Number(n) => n,
                                    _ => 0.0,
                                };
                                number(cfg, n, out)?;
                                out.push(b'"');
                            }
                            Value::String(s) => string(&s.as_bytes(), out),
                            other => {
                                return Err(cannot(
                                    other.type_name(),
                                    "table key must be a number or string",
                                ))
                            }
                        }
                        out.push(b':');
                        encode(cfg, &v, depth, out)?;
                    }
                    out.push(b'}');
                }
            }
        }
        other => return Err(cannot(other.type_name(), "type not supported")),
    }
    Ok(())
}

/// The array length lua-cjson gives a table: its largest index when every key is a
/// positive integer, None when it is an object (an error when too sparse).
fn array_length(cfg: &Config, t: &Table) -> mlua::Result<Option<usize>> {
    let (mut max, mut items) = (0usize, 0usize);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        let k = match k {
            Value::Number(n) if n >= 1.0 && n.floor() == n => n,
            Value::Integer(i) if i >= 1 => i as f64,
            _ => return Ok(None),
        };
        max = max.max(k.min(usize::MAX as f64) as usize);
        items += 1;
    }
    if cfg.sparse_ratio > 0 && max > items.saturating_mul(cfg.sparse_ratio) && max > cfg.sparse_safe
    {
        if !cfg.sparse_convert {
            return Err(cannot("table", "excessively sparse array"));
        }
        return Ok(None);
    }
    Ok(Some(max))
}

/// A number as lua-cjson writes it: `%.14g` (the precision set).
fn number(cfg: &Config, n: f64, out: &mut Vec<u8>) -> mlua::Result<()> {
    if !n.is_finite() {
        match cfg.invalid {
            Invalid::Off => return Err(cannot("number", "must not be NaN or Inf")),
            Invalid::Null => {
                out.extend_from_slice(b"null");
                return Ok(());
            }
            Invalid::On if n.is_nan() => {
                out.extend_from_slice(b"nan");
                return Ok(());
            }
            Invalid::On => {}
        }
    }
    out.extend_from_slice(format_g(n, cfg.precision).as_bytes());
    Ok(())
}

/// C's `%.<precision>g`.
pub fn format_g(x: f64, precision: usize) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let p = precision.max(1);
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i64 {
        let m = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (p as i64 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_owned()
    }
}

/// A decimal's trailing zeros after its point, and the point if nothing follows it.
fn trim_zeros(s: &str) -> &str {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.')
}

/// A string with lua-cjson's escapes (it escapes `/` and DEL too); other bytes as they
/// are.
fn string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// A JSON text being decoded.
struct Parser<'a> {
    lua: &'a Lua,
    s: &'a [u8],
    at: usize,
    max_depth: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.at < self.s.len() && matches!(self.s[self.at], b' ' | b'\t' | b'\n' | b'\r') {
            self.at += 1;
        }
    }

    /// lua-cjson's "Expected … but found … at character N" (1-based).
    fn expected(&self, what: &str, at: usize) -> mlua::Error {
        let found = match self.s.get(at) {
            None => "T_END",
            Some(b'{') => "T_OBJ_BEGIN",
            Some(b'}') => "T_OBJ_END",
            Some(b'[') => "T_ARR_BEGIN",
            Some(b']') => "T_ARR_END",
            Some(b',') => "T_COMMA",
            Some(b':') => "T_COLON",
            Some(b'"') => "T_STRING",
            Some(b'-' | b'0'..=b'9') => "T_NUMBER",
            Some(_) if self.s[at..].starts_with(b"true") || self.s[at..].starts_with(b"false") => {
                "T_BOOLEAN"
            }
            Some(_) if self.s[at..].starts_with(b"null") => "T_NULL",
            Some(_) => "invalid token",
        };
        raise(format!(
            "Expected {what} but found {found} at character {}",
            at + 1
        ))
    }

    fn value(&mut self, depth: usize) -> mlua::Result<Value> {
        self.skip_ws();
        let start = self.at;
        match self.s.get(self.at) {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(self.lua.create_string(self.string()?)?)),
            Some(b't') if self.s[self.at..].starts_with(b"true") => {
                self.at += 4;
                Ok(Value::Boolean(true))
            }
            Some(b'f') if self.s[self.at..].starts_with(b"false") => {
                self.at += 5;
                Ok(Value::Boolean(false))
            }
            Some(b'n') if self.s[self.at..].starts_with(b"null") => {
                self.at += 4;
                Ok(null())
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.expected("value", start)),
        }
    }

    fn nest(&self, depth: usize) -> mlua::Result<()> {
        if depth > self.max_depth {
            return Err(raise(format!(
                "Found too many nested data structures ({depth}) at character {}",
                self.at + 1
            )));
        }
        Ok(())
    }

    fn object(&mut self, depth: usize) -> mlua::Result<Value> {
        self.nest(depth)?;
        self.at += 1;
        let t = self.lua.create_table()?;
        self.skip_ws();
        if self.s.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Ok(Value::Table(t));
        }
        loop {
            self.skip_ws();
            if self.s.get(self.at) != Some(&b'"') {
                return Err(self.expected("object key string", self.at));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.s.get(self.at) != Some(&b':') {
                return Err(self.expected("colon", self.at));
            }
            self.at += 1;
            let v = self.value(depth)?;
            t.raw_set(self.lua.create_string(key)?, v)?;
            self.skip_ws();
            match self.s.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Table(t));
                }
                _ => return Err(self.expected("comma or object end", self.at)),
            }
        }
    }

    fn array(&mut self, depth: usize) -> mlua::Result<Value> {
        self.nest(depth)?;
        self.at += 1;
        let t = self.lua.create_table()?;
        self.skip_ws();
        if self.s.get(self.at) == Some(&b']') {
            self.at += 1;
            return Ok(Value::Table(t));
        }
        for i in 1.. {
            let v = self.value(depth)?;
            t.raw_set(i, v)?;
            self.skip_ws();
            match self.s.get(self.at) {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    break;
                }
                _ => return Err(self.expected("comma or array end", self.at)),
            }
        }
        Ok(Value::Table(t))
    }

    fn number(&mut self) -> mlua::Result<Value> {
        let start = self.at;
        while self.at < self.s.len()
            && matches!(
                self.s[self.at],
                b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
            )
        {
            self.at += 1;
        }
        std::str::from_utf8(&self.s[start..self.at])
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .map(Value::Number)
            .ok_or_else(|| self.expected("value", start))
    }

    /// A string token (at its opening quote): its bytes, escapes decoded.
    fn string(&mut self) -> mlua::Result<Vec<u8>> {
        let start = self.at;
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.at) else {
                return Err(self.expected("value", start));
            };
            self.at += 1;
            match b {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.s.get(self.at) else {
                        return Err(self.expected("value", start));
                    };
                    self.at += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let c = self
                                .unicode_escape()
                                .ok_or_else(|| self.expected("value", start))?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(self.expected("value", start)),
                    }
                }
                _ => out.push(b),
            }
        }
    }

    /// The character of a `\uXXXX` escape (after its `u`), a surrogate pair taken whole.
    fn unicode_escape(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) {
            if self.s.get(self.at..self.at + 2)? != b"\\u" {
                return None;
            }
            self.at += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return None;
            }
            return char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
        }
        char::from_u32(hi)
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = std::str::from_utf8(self.s.get(self.at..self.at + 4)?).ok()?;
        let v = u32::from_str_radix(digits, 16).ok()?;
        self.at += 4;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::format_g;

    #[test]
    fn format_g_is_cs() {
        for (x, p, want) in [
            (1e15, 14, "1e+15"),
            (1.0 / 3.0, 14, "0.33333333333333"),
            (123456789012345.0, 14, "1.2345678901234e+14"),
            (100.0, 14, "100"),
            (0.0001, 14, "0.0001"),
            (0.00001, 14, "1e-05"),
            (-2.5, 14, "-2.5"),
            (1234.5678, 3, "1.23e+03"),
            (99999999999999.0, 14, "99999999999999"),
            (1e100, 14, "1e+100"),
        ] {
            assert_eq!(format_g(x, p), want, "{x} at {p}");
        }
    }
}
