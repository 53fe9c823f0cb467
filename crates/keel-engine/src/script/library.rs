//! Function libraries (Redis 7's FUNCTION LOAD): a library's metadata line, running its
//! code so that it registers its functions, and the registered functions each thread
//! keeps.
//!
//! Loading touches no data: the code sees only `redis.register_function`, `redis.log`
//! and the version fields, and it is stopped at a fixed count of instructions, so a
//! library loads the same way on every thread and in every replay. That is why a thread
//! may load a library again whenever it needs one (see `Vm::library`): the stored code
//! is the library; what a thread compiled from it is only a cache.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use mlua::{Function, Lua, Table, Value, Variadic};

use super::vm::{Vm, HOOK_EVERY};

/// Lua instructions a library's loading code may run (Redis gives it 500 ms).
pub const LOAD_MAX_INSTRUCTIONS: u64 = 100_000_000;

/// The flags a function may declare, in the order FUNCTION LIST shows them (Redis's
/// `scripts_flags_def`).
pub const FLAG_NAMES: [&str; 5] = [
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];

/// Redis's text for a library or function name that is not `[A-Za-z0-9_]+`.
pub const BAD_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// Libraries kept compiled per thread; past this the cache starts over.
const MAX_LIBRARIES: usize = 1_000;

/// What a library registered of one function, besides its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    /// Its name as registered.
    pub name: String,
    /// Its description, if it gave one.
    pub description: Option<Bytes>,
    /// Bits of [`FLAG_NAMES`] it declared.
    pub flags: u8,
}

/// One function a library registered.
pub struct LibFunction {
    /// Its name, description and flags.
    pub info: FunctionInfo,
    /// Its callback.
    pub f: Function,
}

impl FunctionInfo {
    /// Whether it declared `no-writes`.
    pub fn no_writes(&self) -> bool {
        self.flags & 1 != 0
    }

    /// The names of the flags it declared, in Redis's order.
    pub fn flag_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        FLAG_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.flags & (1 << i) != 0)
            .map(|(_, n)| *n)
    }
}

/// A loaded library: its functions in the order it registered them.
pub struct Library {
    /// The functions.
    pub functions: Vec<LibFunction>,
}

impl Library {
    /// The function named `name`, whatever its case (function names are
    /// case-insensitive, as in Redis).
    pub fn function(&self, name: &[u8]) -> Option<&LibFunction> {
        self.functions
            .iter()
            .find(|f| f.info.name.as_bytes().eq_ignore_ascii_case(name))
    }
}

/// The first line of a library, `#!<engine> name=<name>`, and the code after it.
pub struct Metadata<'a> {
    /// The engine named (keel has Lua only, as Redis).
    pub engine: String,
    /// The library's name.
    pub name: String,
    /// The code, from the end of the metadata line (its newline kept, so that line
    /// numbers in errors are the library's own).
    pub code: &'a [u8],
}

/// Reads a library's metadata line (split as Redis splits it, quotes and all), with
/// Redis's error texts (without "ERR ").
pub fn parse_metadata(payload: &[u8]) -> Result<Metadata<'_>, String> {
    if !payload.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let Some(end) = payload.iter().position(|&b| b == b'\n') else {
        return Err("Invalid library metadata".into());
    };
    let parts = crate::split_args::split_args(&payload[..end])
        .filter(|p| !p.is_empty())
        .ok_or("Invalid library metadata")?;
    let engine = parts[0].get(2..).unwrap_or_default();
    let mut name = None;
    for part in &parts[1..] {
        match part.get(..5) {
            Some(key) if key.eq_ignore_ascii_case(b"name=") => {
                if name.is_some() {
                    return Err(
                        "Invalid metadata value, name argument was given multiple times".into(),
                    );
                }
                name = Some(String::from_utf8_lossy(&part[5..]).into_owned());
            }
            _ => {
                return Err(format!(
                    "Invalid metadata value given: {}",
                    String::from_utf8_lossy(part)
                ))
            }
        }
    }
    let Some(name) = name else {
        return Err("Library name was not given".into());
    };
    Ok(Metadata {
        engine: String::from_utf8_lossy(engine).into_owned(),
        name,
        code: &payload[end..],
    })
}

/// Whether `name` is a valid library or function name: `[A-Za-z0-9_]+`.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// Where `redis.register_function` puts what it registers: `Some` only while a library
/// loads.
pub(crate) type Registry = Rc<RefCell<Option<Vec<LibFunction>>>>;

/// `redis.register_function`, as the loading code sees it: Redis's two forms,
/// `(name, callback)` and `{function_name=, callback=, flags=, description=}`.
pub(crate) fn register_function(lua: &Lua, registry: &Registry) -> mlua::Result<Function> {
    let registry = Rc::clone(registry);
    lua.create_function(move |_, args: Variadic<Value>| {
        let mut slot = registry.borrow_mut();
        let Some(registered) = slot.as_mut() else {
            return Err(mlua::Error::runtime(
                "redis.register_function can only be called on FUNCTION LOAD command",
            ));
        };
        let f = match args.len() {
            1 => named_args(&args[0])?,
            2 => positional_args(&args[0], &args[1])?,
            _ => {
                return Err(mlua::Error::runtime(
                    "wrong number of arguments to redis.register_function",
                ))
            }
        };
        if !valid_name(f.info.name.as_bytes()) {
            return Err(mlua::Error::runtime(BAD_NAME));
        }
        if registered.iter().any(|r| r.info.name == f.info.name) {
            return Err(mlua::Error::runtime(
                "Function already exists in the library",
            ));
        }
        registered.push(f);
        Ok(())
    })
}

/// A string argument as Lua's `lua_isstring` takes it (a number is one too).
fn string_arg(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(i) => Some(i.to_string().into_bytes()),
        Value::Number(n) => Some(crate::args::format_f64(*n).into_bytes()),
        _ => None,
    }
}

fn positional_args(name: &Value, callback: &Value) -> mlua::Result<LibFunction> {
    let Some(name) = string_arg(name) else {
        return Err(mlua::Error::runtime(
            "first argument to redis.register_function must be a string",
        ));
    };
    let Value::Function(f) = callback else {
        return Err(mlua::Error::runtime(
            "second argument to redis.register_function must be a function",
        ));
    };
    Ok(LibFunction {
        info: FunctionInfo {
            name: String::from_utf8_lossy(&name).into_owned(),
            description: None,
            flags: 0,
        },
        f: f.clone(),
    })
}

fn named_args(table: &Value) -> mlua::Result<LibFunction> {
    let Value::Table(t) = table else {
        return Err(mlua::Error::runtime(
            "calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).",
        ));
    };
    let (mut name, mut description, mut callback, mut flags) = (None, None, None, 0u8);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, v) = pair?;
        let Some(key) = string_arg(&k) else {
            return Err(mlua::Error::runtime(
                "named argument key given to redis.register_function is not a string",
            ));
        };
        let key = String::from_utf8_lossy(&key).to_ascii_lowercase();
        match key.as_str() {
            "function_name" => match string_arg(&v) {
                Some(n) => name = Some(String::from_utf8_lossy(&n).into_owned()),
                None => {
                    return Err(mlua::Error::runtime(
                        "function_name argument given to redis.register_function must be a string",
                    ))
                }
            },
            "description" => match string_arg(&v) {
                Some(d) => description = Some(Bytes::from(d)),
                None => {
                    return Err(mlua::Error::runtime(
                        "description argument given to redis.register_function must be a string",
                    ))
                }
            },
            "callback" => match v {
                Value::Function(f) => callback = Some(f),
                _ => {
                    return Err(mlua::Error::runtime(
                        "callback argument given to redis.register_function must be a function",
                    ))
                }
            },
            "flags" => match v {
                Value::Table(list) => flags = read_flags(&list)?,
                _ => {
                    return Err(mlua::Error::runtime(
                        "flags argument to redis.register_function must be a table representing function flags",
                    ))
                }
            },
            _ => {
                return Err(mlua::Error::runtime(
                    "unknown argument given to redis.register_function",
                ))
            }
        }
    }
    let Some(name) = name else {
        return Err(mlua::Error::runtime(
            "redis.register_function must get a function name argument",
        ));
    };
    let Some(f) = callback else {
        return Err(mlua::Error::runtime(
            "redis.register_function must get a callback argument",
        ));
    };
    Ok(LibFunction {
        info: FunctionInfo {
            name,
            description,
            flags,
        },
        f,
    })
}

/// The flags of `{ 'no-writes', … }`, read as Redis reads them (up to the first nil).
fn read_flags(list: &Table) -> mlua::Result<u8> {
    let mut flags = 0u8;
    for i in 1.. {
        let v: Value = list.raw_get(i)?;
        if v.is_nil() {
            break;
        }
        let bit = string_arg(&v).and_then(|s| {
            FLAG_NAMES
                .iter()
                .position(|n| n.as_bytes().eq_ignore_ascii_case(&s))
        });
        match bit {
            Some(b) => flags |= 1 << b,
            None => return Err(mlua::Error::runtime("unknown flag given")),
        }
    }
    Ok(flags)
}

impl Vm {
    /// The library whose code (after its metadata line) is `code`, named by the SHA1
    /// `sha` of that code: from this thread's cache, or loaded now. The error is Redis's
    /// text without "ERR ".
    pub fn library(&mut self, sha: &str, code: &[u8]) -> Result<Rc<Library>, String> {
        if let Some(lib) = self.libraries.get(sha) {
            return Ok(Rc::clone(lib));
        }
        let lib = Rc::new(self.load_library(code)?);
        if self.libraries.len() >= MAX_LIBRARIES {
            self.libraries.clear();
        }
        self.libraries.insert(sha.to_owned(), Rc::clone(&lib));
        Ok(lib)
    }

    fn load_library(&mut self, code: &[u8]) -> Result<Library, String> {
        let chunk = self
            .lua
            .load(code)
            .set_name("@user_function")
            .set_environment(self.libenv.clone())
            .into_function()
            .map_err(|e| match e {
                mlua::Error::SyntaxError { message, .. } => {
                    format!("Error compiling function: {message}")
                }
                other => format!("Error compiling function: {other}"),
            })?;
        self.start_budget(LOAD_MAX_INSTRUCTIONS / u64::from(HOOK_EVERY))
            .map_err(|e| format!("Error registering functions: {e}"))?;
        *self.registry.borrow_mut() = Some(Vec::new());
        let switched = self.set_loading.call::<()>(true);
        let outcome = switched.and_then(|()| {
            self.xpcall
                .call::<mlua::MultiValue>((chunk, self.handler.clone()))
        });
        let back = self.set_loading.call::<()>(false);
        let registered = self.registry.borrow_mut().take().unwrap_or_default();
        if self.stopped.get() {
            return Err("Error registering functions: FUNCTION LOAD timeout".into());
        }
        let values = outcome
            .and_then(|v| back.map(|()| v))
            .map_err(|e| format!("Error registering functions: {e}"))?;
        let mut values = values.into_iter();
        if !matches!(values.next(), Some(Value::Boolean(true))) {
            let msg = match values.next() {
                Some(Value::Table(t)) => match t.raw_get::<Value>("err") {
                    Ok(Value::String(s)) => s.to_string_lossy(),
                    _ => "unknown error".to_owned(),
                },
                Some(Value::String(s)) => s.to_string_lossy(),
                _ => "unknown error".to_owned(),
            };
            let msg = msg.strip_prefix("ERR ").unwrap_or(&msg);
            return Err(format!("Error registering functions: {msg}"));
        }
        if registered.is_empty() {
            return Err("No functions registered".into());
        }
        Ok(Library {
            functions: registered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_line_is_read_as_redis_reads_it() {
        let m = parse_metadata(b"#!lua name=mylib\nreturn 1").expect("valid");
        assert_eq!((m.engine.as_str(), m.name.as_str()), ("lua", "mylib"));
        assert_eq!(m.code, b"\nreturn 1");
        let err = |p: &[u8]| parse_metadata(p).err().unwrap_or_default();
        assert_eq!(err(b"return 1"), "Missing library metadata");
        assert_eq!(err(b"#!lua name=x"), "Invalid library metadata");
        assert_eq!(err(b"#!lua\n"), "Library name was not given");
        let quoted = parse_metadata(b"#! name=\"x\"\n").expect("valid");
        assert_eq!((quoted.engine.as_str(), quoted.name.as_str()), ("", "x"));
        assert_eq!(err(b"#!lua name=\"x\n"), "Invalid library metadata");
        assert_eq!(
            err(b"#!lua foo=bar\n"),
            "Invalid metadata value given: foo=bar"
        );
        assert_eq!(
            err(b"#!lua name=a name=b\n"),
            "Invalid metadata value, name argument was given multiple times"
        );
    }

    #[test]
    fn names_are_letters_digits_and_underscores() {
        assert!(valid_name(b"lib_1"));
        assert!(!valid_name(b""));
        assert!(!valid_name(b"bad\0name"));
        assert!(!valid_name(b"a-b"));
    }
}
