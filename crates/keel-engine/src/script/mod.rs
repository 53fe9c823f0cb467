//! Lua scripts (EVAL and its kin): running a script against the keyspace, with the
//! commands it calls run as the engine runs any command.
//!
//! A script runs inside the command that started it: EVAL inside the log entry being
//! applied, so it sees and makes writes as one command does and nothing else writes
//! while it runs; EVAL_RO on the read path's snapshot, where a write is refused.
//! Because EVAL is logged and replayed (after a restart, on a replica) rather than its
//! effects, a script must do the same thing every time it runs on the same data: its
//! random numbers are Redis's seeded generator, TIME answers the entry's time, and it
//! is stopped after a fixed count of Lua instructions, not after a time.
//!
//! An error stops the script and is its reply; what it wrote before stays written, as
//! in Redis. A command a script calls that fails changes nothing, as when sent alone.

mod cjson;
mod cmsgpack;
mod convert;
pub mod library;
mod rand48;
mod redis_lib;
mod vm;

use std::borrow::Cow;
use std::cell::RefCell;

use bytes::Bytes;
use mlua::{MultiValue, Value};

use crate::command::{flags, lookup};
use crate::error::{fail, CmdError, CmdResult, EngineError};
use crate::exec::Exec;
use crate::reply::{errors, Reply};

pub use vm::{MAX_INSTRUCTIONS, MEMORY_LIMIT};

/// The reply to a script that ran past [`MAX_INSTRUCTIONS`].
pub const STOPPED: &str =
    "ERR Script stopped after running 1000000000 Lua instructions (keel stops scripts at a fixed count, as they hold up every write while they run)";

/// The reply to a script that ran out of the interpreter's memory ([`MEMORY_LIMIT`]).
pub const OUT_OF_MEMORY: &str =
    "ERR Script ran out of memory (keel gives each thread's scripts 1073741824 bytes)";

/// Interpreter memory past which the garbage is collected after a script.
const COLLECT_ABOVE: usize = 64 << 20;

/// The lower-case hexadecimal SHA1 of `body`, the name EVALSHA calls a script by.
pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

/// What a script's first line (`#!lua flags=…`) says.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScriptFlags {
    /// `no-writes`: the script may not call a write command, wherever it runs.
    pub no_writes: bool,
}

/// Reads the shebang line of `body`, if any: its flags and the code to compile (the
/// line blanked, so that line numbers in errors stay the script's).
pub fn parse_shebang(body: &[u8]) -> Result<(ScriptFlags, Cow<'_, [u8]>), String> {
    if !body.starts_with(b"#!") {
        return Ok((ScriptFlags::default(), Cow::Borrowed(body)));
    }
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    let line = String::from_utf8_lossy(&body[..end]);
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    if parts.next() != Some("#!lua") {
        return Err(format!("ERR Unexpected engine in script shebang: {line}"));
    }
    let mut out = ScriptFlags::default();
    for part in parts {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(format!("ERR Unknown lua shebang option: {part}"));
        };
        for flag in list.split(',').filter(|f| !f.is_empty()) {
            match flag {
                "no-writes" => out.no_writes = true,
                "allow-oom" | "allow-stale" | "no-cluster" | "allow-cross-slot-keys" => {}
                other => return Err(format!("ERR Unexpected flag in script shebang: {other}")),
            }
        }
    }
    Ok((out, Cow::Owned(body[end..].to_vec())))
}

thread_local! {
    /// This thread's interpreter, made by its first script.
    static VM: RefCell<Option<vm::Vm>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's interpreter.
fn with_vm<T>(f: impl FnOnce(&mut vm::Vm) -> CmdResult<T>) -> CmdResult<T> {
    VM.with(|cell| {
        // A script cannot start a script (EVAL is NOSCRIPT), so this is never borrowed.
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return fail("ERR This Redis command is not allowed from script");
        };
        if slot.is_none() {
            *slot = Some(vm::Vm::new().map_err(|e| lua_failure("start", &e))?);
        }
        match slot.as_mut() {
            Some(vm) => f(vm),
            None => fail("ERR scripting unavailable"),
        }
    })
}

/// Compiles the script `body` (named `sha`), keeping it for later runs: the error reply
/// Redis gives when it does not compile.
pub fn compile(sha: &str, body: &[u8]) -> CmdResult<()> {
    let (_, code) = parse_shebang(body).or_else(fail)?;
    with_vm(|vm| {
        vm.function(sha, &code)
            .map(drop)
            .or_else(|msg| fail(format!("ERR Error compiling script (new function): {msg}")))
    })
}

/// How a script is being run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// EVAL_RO, EVALSHA_RO: write commands are refused.
    pub read_only: bool,
}

/// Runs the script `body` (whose SHA1 is `sha`) with `keys` and `argv`: its reply, or
/// the error that stopped it.
pub fn run(
    ex: &mut Exec,
    sha: &str,
    body: &[u8],
    keys: &[Bytes],
    argv: &[Bytes],
    opts: RunOptions,
) -> CmdResult<Reply> {
    let (flags, code) = parse_shebang(body).or_else(fail)?;
    let read_only = opts.read_only || flags.no_writes || !ex.is_write();
    with_vm(|vm| {
        let f = vm
            .function(sha, &code)
            .or_else(|msg| fail(format!("ERR Error compiling script (new function): {msg}")))?;
        invoke(ex, vm, Callee::Script(f), sha, keys, argv, read_only)
    })
}

/// Runs the function `name` of the library whose code (after its metadata line) is
/// `code` with `keys` and `args`; `ro_command` for FCALL_RO, which only runs functions
/// flagged `no-writes`.
pub fn run_function(
    ex: &mut Exec,
    code: &[u8],
    name: &[u8],
    keys: &[Bytes],
    args: &[Bytes],
    ro_command: bool,
) -> CmdResult<Reply> {
    with_vm(|vm| {
        let lib = vm
            .library(&sha1_hex(code), code)
            .or_else(|msg| fail(format!("ERR {msg}")))?;
        let Some(func) = lib.function(name) else {
            return fail("ERR Function not found");
        };
        if ro_command && !func.info.no_writes() {
            return fail("ERR Can not execute a script with write flag using *_ro command.");
        }
        let read_only = ro_command || func.info.no_writes() || !ex.is_write();
        let callee = Callee::Function(func.f.clone());
        invoke(ex, vm, callee, &func.info.name, keys, args, read_only)
    })
}

/// The functions the library whose code (after its metadata line) is `code`
/// registers, in their order; the error is Redis's reply to a library that does not
/// load.
pub fn library_functions(code: &[u8]) -> CmdResult<Vec<library::FunctionInfo>> {
    with_vm(|vm| {
        let lib = vm
            .library(&sha1_hex(code), code)
            .or_else(|msg| fail(format!("ERR {msg}")))?;
        Ok(lib.functions.iter().map(|f| f.info.clone()).collect())
    })
}

/// What [`invoke`] calls: a script's chunk (keys and arguments in KEYS and ARGV) or a
/// library's function (keys and arguments as its two parameters).
enum Callee {
    Script(mlua::Function),
    Function(mlua::Function),
}

/// Runs `callee` (named `name` in its errors) with `keys` and `argv`: its reply, or the
/// error that stopped it.
fn invoke(
    ex: &mut Exec,
    vm: &mut vm::Vm,
    callee: Callee,
    name: &str,
    keys: &[Bytes],
    argv: &[Bytes],
    read_only: bool,
) -> CmdResult<Reply> {
    // From the entry's generator: a replay draws the same numbers, and two runs of
    // a script draw different ones, as Redis 7's do.
    let seed = ex.rng.next_u64() as i32;
    let lua = &vm.lua;
    let strings = |items: &[Bytes]| -> mlua::Result<mlua::Table> {
        lua.create_sequence_from(
            items
                .iter()
                .map(|b| lua.create_string(b))
                .collect::<mlua::Result<Vec<_>>>()?,
        )
    };
    let tables = strings(keys).and_then(|k| Ok((k, strings(argv)?)));
    let (ktable, atable) = tables.map_err(|e| lua_failure("prepare", &e))?;
    let globals = match callee {
        Callee::Script(_) => Some((ktable.clone(), atable.clone())),
        Callee::Function(_) => None,
    };
    vm.prepare(globals, seed)
        .map_err(|e| lua_failure("prepare", &e))?;
    let db = ex.db;
    let bridge = RefCell::new(Bridge {
        ex,
        db,
        read_only,
        failed: None,
    });
    let resp = std::rc::Rc::clone(&vm.resp);
    let outcome = lua.scope(|scope| {
        let run = scope.create_function(|lua, (n, args): (usize, mlua::Table)| {
            let mut b = bridge.borrow_mut();
            let reply = b.call(n, &args);
            let ok = !matches!(reply, Reply::Error(_));
            let v = convert::reply_to_lua(lua, &reply, resp.get())?;
            Ok((ok, v))
        })?;
        lua.set_named_registry_value(vm::RUN_KEY, run)?;
        let check = scope.create_function(|_, args: mlua::Variadic<Value>| {
            let b = bridge.borrow();
            b.acl_check(args.into_iter().collect())
                .map_err(mlua::Error::runtime)
        })?;
        lua.set_named_registry_value(vm::ACL_CHECK_KEY, check)?;
        match &callee {
            Callee::Script(f) => vm.xpcall.call::<MultiValue>((f, vm.handler.clone())),
            Callee::Function(f) => {
                vm.call_function
                    .call::<MultiValue>((f, vm.handler.clone(), ktable, atable))
            }
        }
    });
    let stopped = vm.stopped.get();
    let cleaned = vm.clean();
    if vm.lua.used_memory() > COLLECT_ABOVE {
        // A script's garbage would otherwise wait for the thread's next script.
        vm.lua.gc_collect().ok();
    }
    let Bridge {
        ex, db: _, failed, ..
    } = bridge.into_inner();
    ex.db = db;
    if let Some(e) = failed {
        return Err(CmdError::Engine(e));
    }
    // Commands may have written by now: from here on every outcome is a reply, as
    // an error result would undo the last command's writes.
    if let Err(e) = cleaned {
        return Ok(Reply::Error(format!("ERR scripting failed to clean: {e}")));
    }
    if stopped {
        return Ok(Reply::err(STOPPED));
    }
    let values = match outcome {
        Ok(v) => v,
        Err(e) => return Ok(Reply::Error(format!("ERR {e}"))),
    };
    let mut values = values.into_iter();
    match values.next() {
        Some(Value::Boolean(true)) => {
            Ok(convert::lua_to_reply(&values.next().unwrap_or(Value::Nil)))
        }
        _ => Ok(script_error(values.next(), name)),
    }
}

/// The reply to a script that raised `err` (the sandbox's error handler made it
/// `{err, source, line}`): Redis's "<error> script: <sha>, on @user_script:<line>.".
fn script_error(err: Option<Value>, sha: &str) -> Reply {
    let t = match err {
        Some(Value::Table(t)) => t,
        // Lua does not call the handler when memory runs out; it gives its own message.
        Some(Value::String(s)) if s.as_bytes().as_ref() == b"not enough memory" => {
            return Reply::err(OUT_OF_MEMORY)
        }
        Some(Value::String(s)) => {
            return Reply::Error(format!("ERR {} script: {sha}", s.to_string_lossy()))
        }
        _ => return Reply::Error(format!("ERR unknown error script: {sha}")),
    };
    let text = match t.raw_get::<Value>("err") {
        Ok(Value::String(s)) => s.to_string_lossy(),
        _ => "ERR unknown error".to_owned(),
    };
    let source = t.raw_get::<Option<String>>("source").ok().flatten();
    let line = t.raw_get::<Option<i64>>("line").ok().flatten();
    match (source, line) {
        (Some(src), Some(line)) => Reply::Error(format!("{text} script: {sha}, on {src}:{line}.")),
        _ => Reply::Error(format!("{text} script: {sha}")),
    }
}

/// An interpreter failure outside any script (out of memory while setting up, say).
fn lua_failure(step: &str, e: &mlua::Error) -> CmdError {
    CmdError::Reply(Reply::Error(format!("ERR scripting failed to {step}: {e}")))
}

/// What `redis.call` and `redis.pcall` reach: the running command's context.
struct Bridge<'e, 'a> {
    ex: &'e mut Exec<'a>,
    /// The script's database (SELECT inside a script changes it for the script only).
    db: u8,
    read_only: bool,
    /// A storage failure met by a command: the script is ended and the failure is the
    /// command's, as for any command.
    failed: Option<EngineError>,
}

impl Bridge<'_, '_> {
    /// Runs the command whose `n` arguments are `args[1..=n]` for the script: its reply,
    /// an error reply when refused.
    fn call(&mut self, n: usize, args: &mlua::Table) -> Reply {
        if self.failed.is_some() {
            return Reply::err("ERR storage error");
        }
        if n == 0 {
            return Reply::err("ERR Please specify at least one argument for this redis lib call");
        }
        let mut argv = Vec::with_capacity(n);
        for i in 1..=n {
            match arg_bytes(args.raw_get::<Value>(i).unwrap_or(Value::Nil)) {
                Some(b) => argv.push(b),
                None => return Reply::err(ARGS_TYPE),
            }
        }
        let name = argv[0].to_ascii_lowercase();
        if let Some(refusal) = self.ex.gate.as_ref().and_then(|g| g.refuse(&argv)) {
            // Redis's scriptVerifyACL: logged for the client, and the script sees
            // "ACL failure in script: …" (an error redis.pcall can catch).
            self.ex.note_refused_call(&refusal);
            return Reply::Error(format!("ERR ACL failure in script: {}", refusal.message));
        }
        if let Some(reply) = self.connection_command(&name, &argv) {
            return reply;
        }
        let Some(spec) = lookup(&name) else {
            return Reply::err("ERR Unknown Redis command called from script");
        };
        if spec.flags & flags::NOSCRIPT != 0 {
            return Reply::err("ERR This Redis command is not allowed from script");
        }
        if !spec.arity_ok(argv.len()) {
            return Reply::err("ERR Wrong number of args calling Redis command from script");
        }
        if spec.is_write() && self.read_only {
            return Reply::err("ERR Write commands are not allowed from read-only scripts.");
        }
        if crate::types::stream::entries::asks_to_block(&argv) {
            return Reply::err(format!(
                "ERR {} command is not allowed with BLOCK option from scripts",
                String::from_utf8_lossy(&argv[0])
            ));
        }
        if spec.flags & flags::READONLY != 0 {
            // For client-side caching: the keys a script read are the client's reads.
            for k in spec.keys_in(&argv) {
                self.ex.note_script_read(k.clone());
            }
        }
        match crate::engine::run_spec(self.ex, self.db, &argv, spec) {
            Ok(r) => r,
            Err(e) => {
                self.failed = Some(e);
                Reply::err("ERR storage error")
            }
        }
    }

    /// `redis.acl_check_cmd(cmd, arg…)`: whether the running user may run the command
    /// (checked by the gate without logging a refusal, as Redis checks it); an error for
    /// a command keel does not have.
    fn acl_check(&self, args: Vec<Value>) -> Result<bool, String> {
        let Some(argv) = args.into_iter().map(arg_bytes).collect::<Option<Vec<_>>>() else {
            return Err(ARGS_TYPE.trim_start_matches("ERR ").to_owned());
        };
        let known = argv.first().is_some_and(|name| {
            let name = name.to_ascii_lowercase();
            let spec = lookup(&name);
            spec.is_some_and(|s| s.arity_ok(argv.len()))
                || (spec.is_none() && CONNECTION_COMMANDS.contains(&name.as_slice()))
        });
        if !known {
            return Err("Invalid command passed to redis.acl_check_cmd()".to_owned());
        }
        Ok(self
            .ex
            .gate
            .as_ref()
            .is_none_or(|g| g.refuse(&argv).is_none()))
    }

    /// The server's commands a script may call and the engine answers itself: PING,
    /// ECHO, SELECT, WAIT, PUBLISH, and TIME (the entry's time, so that a replay answers the same).
    fn connection_command(&mut self, name: &[u8], argv: &[Bytes]) -> Option<Reply> {
        let wrong = || Reply::err("ERR Wrong number of args calling Redis command from script");
        Some(match name {
            b"ping" => match argv.len() {
                1 => Reply::Simple("PONG".into()),
                2 => Reply::Bulk(argv[1].clone()),
                _ => wrong(),
            },
            b"echo" => match argv.len() {
                2 => Reply::Bulk(argv[1].clone()),
                _ => wrong(),
            },
            b"time" => match argv.len() {
                1 => {
                    let ms = self.ex.now_ms;
                    Reply::Array(vec![
                        Reply::bulk((ms / 1000).to_string()),
                        Reply::bulk(((ms % 1000) * 1000).to_string()),
                    ])
                }
                _ => wrong(),
            },
            // Delivered once the entry is stored; the engine does not see the
            // subscribers, so the count of receivers Redis answers is not known here.
            b"publish" => match argv.len() {
                3 if self.read_only => {
                    Reply::err("ERR Write commands are not allowed from read-only scripts.")
                }
                3 => {
                    self.ex.publish(argv[1].clone(), argv[2].clone());
                    Reply::Int(0)
                }
                _ => wrong(),
            },
            // keel has no replicas to wait for; Redis answers 0 too when it has none.
            b"wait" => match argv.len() {
                3 => Reply::Int(0),
                _ => wrong(),
            },
            b"select" => match argv.len() {
                2 => match crate::args::parse_i64(&argv[1]) {
                    Some(db) if (0..i64::from(crate::keys::DATABASES)).contains(&db) => {
                        self.db = db as u8;
                        Reply::Ok
                    }
                    Some(_) => Reply::err(errors::DB_INDEX),
                    None => Reply::err(errors::NOT_INTEGER),
                },
                _ => wrong(),
            },
            _ => return None,
        })
    }
}

/// The commands [`Bridge::connection_command`] answers.
const CONNECTION_COMMANDS: &[&[u8]] = &[b"ping", b"echo", b"time", b"publish", b"wait", b"select"];

/// A `redis.call` argument as the command gets it: a string, or a number as Redis 7.2
/// passes it; None for any other value.
fn arg_bytes(v: Value) -> Option<Bytes> {
    Some(match v {
        Value::String(s) => Bytes::copy_from_slice(&s.as_bytes()),
        Value::Number(n) => Bytes::from(number_arg(n)),
        Value::Integer(i) => Bytes::from(i.to_string()),
        _ => return None,
    })
}

/// A number passed to a command as Redis 7.2 passes it: an integral value as an
/// integer, any other in its shortest round-trip form (`fpconv_dtoa`), not Lua's
/// 14-digit `tostring`.
fn number_arg(n: f64) -> String {
    if n == 0.0 {
        return "0".to_owned();
    }
    crate::args::format_f64(n)
}

/// A `redis.call` argument that is neither a string nor a number.
const ARGS_TYPE: &str = "ERR Lua redis lib command arguments must be strings or integers";
