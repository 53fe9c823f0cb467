//! The Lua 5.1 interpreter scripts run in: one per thread, kept between scripts, with
//! Redis's sandbox (the libraries Redis offers, read-only globals) and its compiled
//! scripts cached by SHA1.
//!
//! Why one per thread: the apply loop runs EVAL and the I/O threads run EVAL_RO, each
//! on its own thread, and a Lua state may only be used by one thread at a time. Kept
//! between scripts because opening the libraries and compiling a script cost far more
//! than a short script's run.
//!
//! Why read-only globals: the state outlives the script, so whatever one script left
//! in it would be seen by the next. Scripts see an empty proxy (`_G`) whose reads go to
//! the real globals and whose writes fail with Redis's text; the libraries are read-only
//! proxies too. A script that gets around that (`rawset(_G, …)`) has its leftovers
//! cleared after it ends.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;

use mlua::{Function, HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};

use super::rand48::Rand48;

/// Lua VM instructions a script may run before it is stopped. Deterministic, unlike a
/// time limit, so that a replayed or replicated script stops at the same point. About
/// a few seconds of pure Lua; a command a script calls counts as one instruction.
pub const MAX_INSTRUCTIONS: u64 = 1_000_000_000;

/// Memory one thread's interpreter may hold (its scripts' tables and strings, and the
/// compiled scripts), so that one script cannot exhaust the server.
pub const MEMORY_LIMIT: usize = 1 << 30;

/// Instructions between two checks of the budget.
pub(super) const HOOK_EVERY: u32 = 100_000;

/// Compiled scripts kept per thread; past this the cache starts over.
const MAX_COMPILED: usize = 1_000;

/// The Lua side of the sandbox, run once per interpreter. It receives the real
/// globals' contents (`base`, which scripts read through the proxy `env`), the proxy,
/// the globals proxy of function libraries (`libenv`) and what their loading code may
/// see of `redis` (`loadfields`); it returns the switch between loading and running
/// libraries and the caller of a registered function.
const SANDBOX: &str = r#"
local base, env, libenv, loadfields = ...
local setfenv, loadstring, load, rawset = setfenv, loadstring, load, rawset
local error, tostring, setmetatable = error, tostring, setmetatable
-- The read-only tables, which rawset must not write either.
local guarded = setmetatable({[env] = true}, {__mode = "k"})
local function refuse() error("Attempt to modify a readonly table", 2) end
-- What getmetatable answers for a read-only table: an empty read-only table.
local locked = {}
guarded[locked] = true
setmetatable(locked, {__newindex = refuse, __metatable = locked})

local function readonly(real)
  local t = {}
  guarded[t] = true
  return setmetatable(t, {
    __index = real,
    __newindex = refuse,
    __metatable = locked,
  })
end

setmetatable(env, {
  __index = function(_, k)
    local v = base[k]
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = refuse,
  __metatable = locked,
})

for _, name in ipairs({"string", "table", "math", "coroutine", "redis", "bit", "cjson", "cmsgpack"}) do
  base[name] = readonly(base[name])
end
base._G = env
base.rawset = function(t, k, v)
  if guarded[t] then error("Attempt to modify a readonly table", 0) end
  return rawset(t, k, v)
end
base.setmetatable = function(t, mt)
  if guarded[t] then error("Attempt to modify a readonly table", 0) end
  return setmetatable(t, mt)
end
-- Code a script loads runs in the same sandbox, and only as source: compiled chunks
-- (string.dump's) could break the interpreter.
local function sandboxed(s, name)
  if s:sub(1, 1) == "\27" then return nil, "binary code loading is disabled" end
  local f, e = loadstring(s, name)
  if f then setfenv(f, env) end
  return f, e
end
base.loadstring = sandboxed
base.load = function(fn, name)
  local parts = {}
  while true do
    local p = fn()
    if p == nil or p == "" then break end
    parts[#parts + 1] = p
  end
  return sandboxed(table.concat(parts), name)
end
getmetatable("").__metatable = locked

-- Function libraries (FUNCTION LOAD). A library's code runs with nothing in sight but
-- a `redis` of registration and logging; the functions it registers run later, with
-- the scripts' globals. Both see `libenv`, whose lookups follow `loading`.
local loading = false
local function missing(k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 3)
end
local loadredis = {}
guarded[loadredis] = true
setmetatable(loadredis, {
  __index = function(_, k)
    local v = loadfields[k]
    if v == nil then missing(k) end
    return v
  end,
  __newindex = refuse,
  __metatable = locked,
})
guarded[libenv] = true
setmetatable(libenv, {
  __index = function(_, k)
    local v
    if loading then
      if k == "redis" then v = loadredis end
    else
      v = base[k]
    end
    if v == nil then missing(k) end
    return v
  end,
  __newindex = refuse,
  __metatable = locked,
})
local function set_loading(on) loading = on end
-- xpcall of Lua 5.1 passes no arguments: the closure carries them (and, being the
-- sandbox's, is skipped when an error looks for the line that raised it).
local function call_function(f, handler, keys, args)
  return xpcall(function() return f(keys, args) end, handler)
end
return set_loading, call_function
"#;

/// Globals Redis removes from the base library.
const REMOVED: &[&str] = &[
    "dofile", "loadfile", "print", "setfenv", "getfenv", "newproxy", "module", "require", "debug",
    "os", "io", "package",
];

/// One thread's interpreter.
pub(crate) struct Vm {
    pub lua: Lua,
    /// What scripts see as their globals: an empty read-only proxy.
    pub env: Table,
    /// The globals behind `env`: the libraries, KEYS and ARGV.
    pub base: Table,
    /// The error handler every script runs under.
    pub handler: Function,
    /// `xpcall`, which runs a script under `handler`.
    pub xpcall: Function,
    /// Compiled scripts by SHA1.
    compiled: HashMap<String, Function>,
    /// What function libraries see as their globals (see `SANDBOX`).
    pub libenv: Table,
    /// Switches `libenv` between loading a library and running its functions.
    pub set_loading: Function,
    /// Calls a registered function with its keys and arguments under `xpcall`.
    pub call_function: Function,
    /// What `redis.register_function` registers into while a library loads.
    pub registry: super::library::Registry,
    /// Loaded libraries by the SHA1 of their code.
    pub libraries: HashMap<String, Rc<super::library::Library>>,
    /// Instructions left to the running script, in hook periods.
    pub budget: Rc<Cell<u64>>,
    /// Set when the running script was stopped for running too long.
    pub stopped: Rc<Cell<bool>>,
    /// math.random's generator, seeded before every script from the entry's seed.
    pub rng: Rc<Cell<Rand48>>,
    /// The protocol the running script asked for (`redis.setresp`), 2 until it does.
    pub resp: Rc<Cell<u8>>,
    /// cjson's settings, back to lua-cjson's defaults for every script.
    cjson: Rc<Cell<super::cjson::Config>>,
}

impl Vm {
    /// A new interpreter with Redis's libraries and sandbox.
    pub fn new() -> mlua::Result<Vm> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        lua.set_memory_limit(MEMORY_LIMIT)?;
        let globals = lua.globals();
        let base = lua.create_table()?;
        for pair in globals.pairs::<Value, Value>() {
            let (k, v) = pair?;
            base.raw_set(k, v)?;
        }
        for name in REMOVED {
            base.raw_set(*name, Value::Nil)?;
        }
        let rng = Rc::new(Cell::new(Rand48::seeded(0)));
        install_random(&lua, &base, &rng)?;
        let resp = Rc::new(Cell::new(2u8));
        let redis = super::redis_lib::create(&lua, &resp)?;
        // SAFETY: both follow the Lua C API's protocol (see `call_bridge`).
        redis.raw_set("call", unsafe { lua.create_c_function(redis_call)? })?;
        redis.raw_set("pcall", unsafe { lua.create_c_function(redis_pcall)? })?;
        redis.raw_set(
            "acl_check_cmd",
            lua.create_function(|lua, args: mlua::Variadic<Value>| {
                let check: Function = lua.named_registry_value(ACL_CHECK_KEY)?;
                check.call::<bool>(args)
            })?,
        )?;
        base.raw_set("redis", redis.clone())?;
        base.raw_set("bit", super::redis_lib::create_bit(&lua)?)?;
        let cjson = Rc::new(Cell::new(super::cjson::Config::default()));
        base.raw_set("cjson", super::cjson::create(&lua, &cjson)?)?;
        base.raw_set("cmsgpack", super::cmsgpack::create(&lua)?)?;
        let env = lua.create_table()?;
        let libenv = lua.create_table()?;
        let registry: super::library::Registry = Rc::default();
        let loadfields = lua.create_table()?;
        loadfields.raw_set(
            "register_function",
            super::library::register_function(&lua, &registry)?,
        )?;
        for name in [
            "log",
            "LOG_DEBUG",
            "LOG_VERBOSE",
            "LOG_NOTICE",
            "LOG_WARNING",
            "REDIS_VERSION",
            "REDIS_VERSION_NUM",
        ] {
            loadfields.raw_set(name, redis.raw_get::<Value>(name)?)?;
        }
        let (set_loading, call_function): (Function, Function) = lua
            .load(SANDBOX)
            .set_name("=sandbox")
            .call((base.clone(), env.clone(), libenv.clone(), loadfields))?;
        let handler = error_handler(&lua)?;
        let xpcall: Function = globals.get("xpcall")?;
        let budget = Rc::new(Cell::new(0u64));
        let stopped = Rc::new(Cell::new(false));
        install_budget(&lua, &budget, &stopped)?;
        Ok(Vm {
            lua,
            env,
            base,
            handler,
            xpcall,
            compiled: HashMap::new(),
            libenv,
            set_loading,
            call_function,
            registry,
            libraries: HashMap::new(),
            budget,
            stopped,
            rng,
            resp,
            cjson,
        })
    }

    /// The compiled function of the script `code` whose SHA1 is `sha`: from the cache,
    /// or compiled now (the error is Lua's message).
    pub fn function(&mut self, sha: &str, code: &[u8]) -> Result<Function, String> {
        if let Some(f) = self.compiled.get(sha) {
            return Ok(f.clone());
        }
        let f = self
            .lua
            .load(code)
            .set_name("@user_script")
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| match e {
                mlua::Error::SyntaxError { message, .. } => message,
                other => other.to_string(),
            })?;
        if self.compiled.len() >= MAX_COMPILED {
            self.compiled.clear();
        }
        self.compiled.insert(sha.to_owned(), f.clone());
        Ok(f)
    }

    /// Readies the interpreter for one script or function: a full budget, the
    /// generator at `seed`, and `globals` as KEYS and ARGV; none for a function, which
    /// gets its keys and arguments as parameters and, as in Redis, has no such globals.
    pub fn prepare(&self, globals: Option<(Table, Table)>, seed: i32) -> mlua::Result<()> {
        self.start_budget(MAX_INSTRUCTIONS / u64::from(HOOK_EVERY))?;
        self.rng.set(Rand48::seeded(seed));
        self.resp.set(2);
        self.cjson.set(super::cjson::Config::default());
        let (keys, argv) = match globals {
            Some((k, a)) => (Value::Table(k), Value::Table(a)),
            None => (Value::Nil, Value::Nil),
        };
        self.base.raw_set("KEYS", keys)?;
        self.base.raw_set("ARGV", argv)
    }

    /// Gives the code about to run `periods` hook periods of instructions.
    pub fn start_budget(&self, periods: u64) -> mlua::Result<()> {
        self.budget.set(periods);
        if self.stopped.replace(false) {
            install_budget(&self.lua, &self.budget, &self.stopped)?;
        }
        Ok(())
    }

    /// Clears what a script left that must not outlive it: the bridge to its command
    /// and its ACL check.
    pub fn clean(&self) -> mlua::Result<()> {
        // KEYS and ARGV stay until the next script replaces them. The proxy needs no
        // sweep: `rawset` and `setmetatable` refuse it, and scripts have nothing else
        // that writes past `__newindex`.
        self.lua.set_named_registry_value(RUN_KEY, Value::Nil)?;
        self.lua.set_named_registry_value(ACL_CHECK_KEY, Value::Nil)
    }
}

/// Where a run's command bridge is, in the registry: `redis_call` finds it there.
pub const RUN_KEY: &str = "keel.run";
/// Where a run's `redis.acl_check_cmd` finds the bridge's check, in the registry.
pub const ACL_CHECK_KEY: &str = "keel.acl_check";
const RUN_KEY_C: &std::ffi::CStr = c"keel.run";

/// `redis.call`: runs the command its arguments name through the run's bridge, and
/// raises the error table the bridge answers for a failed command.
///
/// A C function, not a Lua one, because Lua 5.1 turns `return f(…)` into a tail call
/// that drops the caller's frame when `f` is a Lua function, and Redis's error names
/// the script line that called (`on @user_script:3.`); a C function keeps the frame.
///
/// # Safety
///
/// Called by Lua with its arguments on the stack; see [`call_bridge`].
unsafe extern "C-unwind" fn redis_call(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    if !call_bridge(state) {
        mlua::ffi::lua_error(state);
    }
    1
}

/// `redis.pcall`: as `redis.call`, but a failed command's error table is returned.
///
/// # Safety
///
/// Called by Lua with its arguments on the stack; see [`call_bridge`].
unsafe extern "C-unwind" fn redis_pcall(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    call_bridge(state);
    1
}

/// Calls the run's bridge with the arguments on the stack, leaving its reply (or error
/// table) on top; whether the command succeeded.
///
/// # Safety
///
/// `state` is the state Lua called a C function with, its arguments on the stack. The
/// arguments are packed into a table (thousands of them, `unpack`ed, would not fit on
/// the stack of the Rust callback), the bridge (a function, checked) is pushed and
/// called with their count and the table. `lua_call` and `lua_error` unwind by Lua's
/// own means through these frames, which own nothing to drop.
unsafe fn call_bridge(state: *mut mlua::ffi::lua_State) -> bool {
    use mlua::ffi;
    let n = ffi::lua_gettop(state);
    ffi::lua_createtable(state, n, 0);
    ffi::lua_insert(state, 1);
    for i in (1..=n).rev() {
        ffi::lua_rawseti(state, 1, ffi::lua_Integer::from(i));
    }
    if ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, RUN_KEY_C.as_ptr()) != ffi::LUA_TFUNCTION {
        ffi::lua_pushstring(state, c"redis.call used outside a script".as_ptr());
        ffi::lua_error(state);
    }
    ffi::lua_insert(state, 1);
    ffi::lua_pushinteger(state, n as ffi::lua_Integer);
    ffi::lua_insert(state, 2);
    ffi::lua_call(state, 2, 2);
    ffi::lua_toboolean(state, -2) != 0
}

/// Redis's error handler: an error becomes `{err = text, source, line}`, where `text`
/// is the error's own for `{err = …}` and "ERR " and its string otherwise, and
/// `source` and `line` are where it was raised.
fn error_handler(lua: &Lua) -> mlua::Result<Function> {
    let tostring: Function = lua.globals().get("tostring")?;
    lua.create_function(move |lua, err: Value| {
        let text = match &err {
            Value::Table(t) => match t.raw_get::<Value>("err")? {
                Value::String(s) => Some(s),
                _ => None,
            },
            // An error a Rust function of the sandbox raised: its own message, without
            // mlua's wrapping and traceback.
            Value::Error(e) => {
                let (msg, positioned) = innermost(e);
                let place = if positioned {
                    caller_place(lua)
                } else {
                    String::new()
                };
                Some(lua.create_string(format!("ERR {place}{msg}"))?)
            }
            _ => None,
        };
        let text = match text {
            Some(s) => s,
            None => {
                let shown: mlua::String = tostring.call(err)?;
                let mut b = b"ERR ".to_vec();
                b.extend_from_slice(&shown.as_bytes());
                lua.create_string(b)?
            }
        };
        let out = lua.create_table()?;
        out.raw_set("err", text)?;
        // Redis's handler looks one frame up, or two past a C function.
        if let Some(frame) = first_lua_frame(lua) {
            out.raw_set("source", frame.source)?;
            out.raw_set("line", frame.line)?;
        }
        Ok(out)
    })
}

/// An error a library function of the sandbox raises the way Lua's `luaL_error` does,
/// with where the script called it before the message (Redis's own functions raise
/// theirs without).
#[derive(Debug)]
pub struct Raised(pub String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

impl Raised {
    /// The error for `msg`, positioned at the calling script line.
    pub fn at_caller(msg: String) -> mlua::Error {
        mlua::Error::external(Raised(msg))
    }
}

/// The message of the error a Rust callback returned, under the callback layers mlua
/// adds, and whether it wants the caller's position before it.
fn innermost(e: &mlua::Error) -> (String, bool) {
    match e {
        mlua::Error::CallbackError { cause, .. } => innermost(cause),
        mlua::Error::RuntimeError(msg) => (msg.clone(), false),
        mlua::Error::ExternalError(ext) => match ext.downcast_ref::<Raised>() {
            Some(r) => (r.0.clone(), true),
            None => (ext.to_string(), false),
        },
        other => (other.to_string(), false),
    }
}

/// `luaL_where`'s "source:line: " of the innermost Lua frame, seen from an error
/// handler (empty when there is none).
fn caller_place(lua: &Lua) -> String {
    first_lua_frame(lua).map_or_else(String::new, |f| format!("{}:{}: ", f.short_src, f.line))
}

/// A frame of Lua code: its chunk's name, as Lua prints it, and the line running.
struct Frame {
    source: String,
    short_src: String,
    line: usize,
}

/// The innermost frame of Lua code on the stack, past C functions and the sandbox's
/// own Lua.
fn first_lua_frame(lua: &Lua) -> Option<Frame> {
    for level in 0..200 {
        let frame = lua.inspect_stack(level, |d| {
            let src = d.source();
            match (src.what, src.source) {
                ("C", _) => None,
                (_, Some(s)) if s != "=sandbox" => Some(Frame {
                    source: s.into_owned(),
                    short_src: src.short_src.map(|s| s.into_owned()).unwrap_or_default(),
                    line: d.current_line().unwrap_or(0),
                }),
                _ => None,
            }
        })?;
        if frame.is_some() {
            return frame;
        }
    }
    None
}

/// The hook that counts a script's instructions against its budget. Once the budget is
/// spent it stops the script, and from then on fails every instruction, so that a
/// `pcall` in the script cannot catch the stop and go on.
fn install_budget(lua: &Lua, budget: &Rc<Cell<u64>>, stopped: &Rc<Cell<bool>>) -> mlua::Result<()> {
    let (budget, stopped) = (Rc::clone(budget), Rc::clone(stopped));
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |lua, _| {
            let left = budget.get();
            if left > 0 {
                budget.set(left - 1);
                return Ok(VmState::Continue);
            }
            stopped.set(true);
            lua.set_hook(HookTriggers::new().every_nth_instruction(1), |_, _| {
                Err(mlua::Error::runtime("script stopped"))
            })?;
            Err(mlua::Error::runtime("script stopped"))
        },
    )
}

/// Redis's math.random and math.randomseed: its own generator (rand48), so that a
/// script draws the same numbers wherever and whenever it runs.
fn install_random(lua: &Lua, base: &Table, rng: &Rc<Cell<Rand48>>) -> mlua::Result<()> {
    let math: Table = base.raw_get("math")?;
    let gen = Rc::clone(rng);
    let random = lua.create_function(move |_, args: mlua::Variadic<f64>| {
        let mut r48 = gen.get();
        let r = r48.unit();
        gen.set(r48);
        let int = |i: usize| args.get(i).map_or(0, |v| *v as i32);
        match args.len() {
            0 => Ok(r),
            1 => {
                let u = int(0);
                if u < 1 {
                    return Err(Raised::at_caller(
                        "bad argument #1 to 'random' (interval is empty)".into(),
                    ));
                }
                Ok((r * f64::from(u)).floor() + 1.0)
            }
            2 => {
                let (l, u) = (int(0), int(1));
                if l > u {
                    return Err(Raised::at_caller(
                        "bad argument #2 to 'random' (interval is empty)".into(),
                    ));
                }
                Ok((r * (f64::from(u) - f64::from(l) + 1.0)).floor() + f64::from(l))
            }
            _ => Err(Raised::at_caller("wrong number of arguments".into())),
        }
    })?;
    let gen = Rc::clone(rng);
    let randomseed = lua.create_function(move |_, seed: f64| {
        gen.set(Rand48::seeded(seed as i32));
        Ok(())
    })?;
    math.raw_set("random", random)?;
    math.raw_set("randomseed", randomseed)
}
