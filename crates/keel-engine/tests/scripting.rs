//! Lua scripts on every storage engine: replies converted by Redis's rules, Redis's error
//! texts (with the script's SHA1 and line), the script cache and its persistence as
//! records, read-only scripts, the sandbox, the instruction budget, cjson, cmsgpack
//! and bit.
//! Expected texts are redis-server 7.0's answers to the same scripts.

mod common;

use bytes::Bytes;
use common::{b, cmd, T};
use keel_engine::{ApplyCtx, Engine, Op, Reply};
use keel_storage::EngineKind;

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn err(s: &str) -> Reply {
    Reply::Error(s.to_owned())
}

fn eval(t: &mut T, script: &str) -> Reply {
    t.w(&["EVAL", script, "0"])
}

fn sha1(s: &str) -> String {
    keel_engine::script::sha1_hex(s.as_bytes())
}

fn replies_convert_as_in_redis(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(
        eval(&mut t, "return 3.99"),
        Reply::Int(3),
        "numbers truncate"
    );
    assert_eq!(eval(&mut t, "return -3.99"), Reply::Int(-3));
    assert_eq!(eval(&mut t, "return 'x'"), bulk("x"));
    assert_eq!(eval(&mut t, "return true"), Reply::Int(1));
    assert_eq!(eval(&mut t, "return false"), Reply::Nil);
    assert_eq!(eval(&mut t, "return nil"), Reply::Nil);
    assert_eq!(
        eval(&mut t, "return {1, 'a', {2}, nil, 4}"),
        Reply::Array(vec![
            Reply::Int(1),
            bulk("a"),
            Reply::Array(vec![Reply::Int(2)])
        ]),
        "an array ends at its first nil"
    );
    assert_eq!(
        eval(&mut t, "return {1, false, 'x'}"),
        Reply::Array(vec![Reply::Int(1), Reply::Nil, bulk("x")])
    );
    assert_eq!(
        eval(&mut t, "return redis.status_reply('FINE')"),
        Reply::Simple("FINE".into())
    );
    assert_eq!(
        eval(&mut t, "return {ok='FINE'}"),
        Reply::Simple("FINE".into())
    );
    assert_eq!(
        eval(&mut t, "return redis.error_reply('My Error')"),
        err("My Error")
    );
    assert_eq!(eval(&mut t, "return {err='ERR x'}"), err("ERR x"));
    assert_eq!(
        eval(&mut t, "return redis.error_reply('')"),
        err("ERR"),
        "an error needs a code"
    );
    assert_eq!(
        eval(&mut t, "return 1, 2"),
        Reply::Int(1),
        "only the first value"
    );
    assert_eq!(
        eval(&mut t, "return redis.sha1hex('')"),
        bulk("da39a3ee5e6b4b0d3255bfef95601890afd80709")
    );

    // Command replies as the script sees them (RESP2): nil is false, status a table.
    t.w(&["HSET", "h", "a", "1"]);
    assert_eq!(
        eval(
            &mut t,
            "local r = redis.call('get', 'nokey') return type(r) .. tostring(r)"
        ),
        bulk("booleanfalse")
    );
    assert_eq!(
        eval(&mut t, "return redis.call('set', 'k', 'v').ok"),
        bulk("OK")
    );
    assert_eq!(
        eval(&mut t, "return redis.call('hgetall', 'h')"),
        Reply::Array(vec![bulk("a"), bulk("1")])
    );
    assert_eq!(
        eval(&mut t, "return redis.call('incrbyfloat', 'f', '1.5')"),
        bulk("1.5")
    );
    // RESP3 once the script asks for it: maps, doubles, null.
    assert_eq!(
        eval(
            &mut t,
            "redis.setresp(3) local m = redis.call('hgetall', 'h').map return m.a"
        ),
        bulk("1")
    );
    t.w(&["ZADD", "z", "1.5", "m"]);
    assert_eq!(
        eval(
            &mut t,
            "redis.setresp(3) return redis.call('zscore', 'z', 'm').double * 2"
        ),
        Reply::Int(3)
    );
    assert_eq!(
        eval(
            &mut t,
            "redis.setresp(3) return tostring(redis.call('get', 'nokey'))"
        ),
        bulk("nil")
    );
    assert_eq!(
        eval(&mut t, "redis.setresp(3) return {double=3.5}"),
        Reply::Double(3.5)
    );
    assert_eq!(
        eval(&mut t, "return redis.setresp(4)"),
        err(&format!(
            "ERR RESP version must be 2 or 3. script: {}, on @user_script:1.",
            sha1("return redis.setresp(4)")
        ))
    );
}

fn keys_argv_and_writes(kind: EngineKind) {
    let mut t = T::new(kind);
    let script =
        "redis.call('set', KEYS[1], ARGV[1]) return redis.call('incrby', KEYS[2], ARGV[2])";
    assert_eq!(
        t.w(&["EVAL", script, "2", "a", "n", "va", "5"]),
        Reply::Int(5)
    );
    assert_eq!(t.r(&["GET", "a"]), bulk("va"));
    assert_eq!(
        t.w(&["EVALSHA", &sha1(script), "2", "b", "n", "vb", "2"]),
        Reply::Int(7)
    );
    assert_eq!(t.r(&["GET", "b"]), bulk("vb"));
    // Numbers reach commands as Redis 7.2 passes them.
    eval(&mut t, "redis.call('set', 'x', 3.14159265358979) redis.call('set', 'y', 1e21) redis.call('set', 'i', 1e15)");
    assert_eq!(t.r(&["GET", "x"]), bulk("3.14159265358979"));
    assert_eq!(t.r(&["GET", "y"]), bulk("1e+21"));
    assert_eq!(t.r(&["GET", "i"]), bulk("1000000000000000"));
    // SELECT inside a script is the script's own.
    eval(
        &mut t,
        "redis.call('select', 3) redis.call('set', 'in3', '1')",
    );
    assert_eq!(t.r_db(3, &["GET", "in3"]), bulk("1"));
    assert_eq!(t.r(&["EXISTS", "in3"]), Reply::Int(0));
    // TIME is the entry's time, so that a replay answers the same.
    let now = t.now;
    assert_eq!(
        eval(&mut t, "return redis.call('time')"),
        Reply::Array(vec![
            bulk(&(now / 1000).to_string()),
            bulk(&((now % 1000) * 1000).to_string())
        ])
    );
    // Counted for the numkeys arguments.
    assert_eq!(
        t.w(&["EVAL", "return 1", "-1"]),
        err("ERR Number of keys can't be negative")
    );
    assert_eq!(
        t.w(&["EVAL", "return 1", "2", "a"]),
        err("ERR Number of keys can't be greater than number of args")
    );
    assert_eq!(
        t.w(&["EVAL", "return 1", "x"]),
        err("ERR value is not an integer or out of range")
    );
}

fn errors_name_the_script_and_line(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "s", "a"]);
    let with = |script: &str, text: &str, line: u32| {
        format!("{text} script: {}, on @user_script:{line}.", sha1(script))
    };
    let cases: &[(&str, &str, u32)] = &[
        // A tail call into redis.call keeps the script's frame, as Redis's C function does.
        (
            "return redis.call('incr','s')",
            "ERR value is not an integer or out of range",
            1,
        ),
        (
            "local x = 1\nredis.call('incr','s')\nreturn x",
            "ERR value is not an integer or out of range",
            2,
        ),
        (
            "a = 5",
            "ERR user_script:1: Attempt to modify a readonly table",
            1,
        ),
        (
            "return x",
            "ERR user_script:1: Script attempted to access nonexistent global variable 'x'",
            1,
        ),
        (
            "return redis.call('nosuch')",
            "ERR Unknown Redis command called from script",
            1,
        ),
        (
            "return redis.call('get')",
            "ERR Wrong number of args calling Redis command from script",
            1,
        ),
        (
            "return redis.call('eval', 'return 1', 0)",
            "ERR This Redis command is not allowed from script",
            1,
        ),
        (
            "return redis.call()",
            "ERR Please specify at least one argument for this redis lib call",
            1,
        ),
        (
            "return redis.call('get', {})",
            "ERR Lua redis lib command arguments must be strings or integers",
            1,
        ),
        (
            "return redis.call('select', 99)",
            "ERR DB index is out of range",
            1,
        ),
        ("error('boom')", "ERR user_script:1: boom", 1),
        ("error('x', 0)", "ERR x", 1),
        ("error({err='X boom'})", "X boom", 1),
        (
            "return math.random(0)",
            "ERR user_script:1: bad argument #1 to 'random' (interval is empty)",
            1,
        ),
        (
            "rawset(_G, 'zz', 1)",
            "ERR Attempt to modify a readonly table",
            1,
        ),
    ];
    for (script, text, line) in cases {
        assert_eq!(
            eval(&mut t, script),
            err(&with(script, text, *line)),
            "{script}"
        );
    }
    assert_eq!(
        eval(&mut t, "return syntax error here"),
        err("ERR Error compiling script (new function): user_script:1: '<eof>' expected near 'error'")
    );
    // pcall hands the error back as a table.
    assert_eq!(
        eval(&mut t, "return redis.pcall('incr', 's')"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        eval(&mut t, "return type(redis.pcall('nosuch'))"),
        bulk("table")
    );
}

fn an_error_keeps_earlier_writes_and_undoes_the_failed_command(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "s", "a"]);
    let r = eval(
        &mut t,
        "redis.call('set', 'done', '1') redis.call('incr', 's')",
    );
    assert!(
        matches!(r, Reply::Error(ref e) if e.starts_with("ERR value is not an integer")),
        "{r:?}"
    );
    assert_eq!(
        t.r(&["GET", "done"]),
        bulk("1"),
        "written before the error: kept, as in Redis"
    );
    assert_eq!(t.r(&["GET", "s"]), bulk("a"));
    // A MULTI around a failing script still runs the rest.
    let applied = t.apply(Op::Multi {
        cmds: vec![
            (0, cmd(&["EVAL", "error('no')", "0"])),
            (0, cmd(&["SET", "after", "1"])),
        ],
    });
    assert!(matches!(&applied.replies[0], Reply::Error(_)));
    assert_eq!(applied.replies[1], Reply::Ok);
    assert_eq!(
        applied
            .touched
            .iter()
            .map(|(_, k)| k.to_vec())
            .collect::<Vec<_>>(),
        vec![b"after".to_vec()]
    );
    let applied = t.apply(Op::Command {
        db: 0,
        args: cmd(&["EVAL", "redis.call('set', KEYS[1], 'x')", "1", "w"]),
    });
    assert_eq!(
        applied
            .touched
            .iter()
            .map(|(_, k)| k.to_vec())
            .collect::<Vec<_>>(),
        vec![b"w".to_vec()],
        "a script's writes touch their keys (WATCH)"
    );
}

fn the_script_cache_is_kept_as_records(kind: EngineKind) {
    let mut t = T::new(kind);
    let body = "return 'hi'";
    let sha = sha1(body);
    assert_eq!(sha, "2f31ba2bb6d6a0f42cc159d2e2dad55440778de3");
    assert_eq!(
        t.w(&["EVALSHA", &sha, "0"]),
        err("NOSCRIPT No matching script. Please use EVAL.")
    );
    assert_eq!(
        t.w(&["EVALSHA", "abc", "0"]),
        err("NOSCRIPT No matching script. Please use EVAL.")
    );
    assert_eq!(t.w(&["SCRIPT", "LOAD", body]), bulk(&sha));
    assert_eq!(
        t.w(&["SCRIPT", "EXISTS", &sha, &sha.to_uppercase(), "abc"]),
        Reply::Array(vec![Reply::Int(1), Reply::Int(1), Reply::Int(0)])
    );
    assert_eq!(t.w(&["EVALSHA", &sha.to_uppercase(), "0"]), bulk("hi"));
    assert_eq!(t.r(&["EVALSHA_RO", &sha, "0"]), bulk("hi"));
    t.w(&["FLUSHALL"]);
    assert_eq!(t.r(&["DBSIZE"]), Reply::Int(0), "scripts are not keys");
    assert_eq!(
        t.w(&["EVALSHA", &sha, "0"]),
        bulk("hi"),
        "FLUSHALL leaves scripts"
    );
    assert_eq!(t.w(&["SCRIPT", "FLUSH"]), Reply::Ok);
    assert_eq!(
        t.w(&["SCRIPT", "EXISTS", &sha]),
        Reply::Array(vec![Reply::Int(0)])
    );
    assert_eq!(
        t.w(&["EVALSHA", &sha, "0"]),
        err("NOSCRIPT No matching script. Please use EVAL."),
        "the thread's compiled copy is only a cache"
    );
    eval(&mut t, body);
    assert_eq!(
        t.w(&["EVALSHA", &sha, "0"]),
        bulk("hi"),
        "EVAL caches its script"
    );
    assert_eq!(t.w(&["SCRIPT", "FLUSH", "ASYNC"]), Reply::Ok);
    assert_eq!(
        t.w(&["SCRIPT", "FLUSH", "foo"]),
        err("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    );
    assert_eq!(
        t.w(&["SCRIPT", "KILL"]),
        err("NOTBUSY No scripts in execution right now.")
    );
    assert_eq!(
        t.w(&["SCRIPT", "foo"]),
        err("ERR unknown subcommand 'foo'. Try SCRIPT HELP.")
    );
    assert_eq!(
        t.w(&["SCRIPT", "LOAD", "return +"]),
        err("ERR Error compiling script (new function): user_script:1: unexpected symbol near '+'")
    );
    assert_eq!(
        t.w(&["SCRIPT", "EXISTS", &sha1("return +")]),
        Reply::Array(vec![Reply::Int(0)]),
        "a script that does not compile is not kept"
    );
}

fn read_only_scripts_refuse_writes(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "k", "v"]);
    assert_eq!(
        t.r(&["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "k"]),
        bulk("v")
    );
    let script = "return redis.call('set','a','b')";
    assert_eq!(
        t.r(&["EVAL_RO", script, "0"]),
        err(&format!(
            "ERR Write commands are not allowed from read-only scripts. script: {}, on @user_script:1.",
            sha1(script)
        ))
    );
    let flagged = "#!lua flags=no-writes\nreturn redis.call('set','a','b')";
    assert_eq!(
        eval(&mut t, flagged),
        err(&format!(
            "ERR Write commands are not allowed from read-only scripts. script: {}, on @user_script:2.",
            sha1(flagged)
        )),
        "no-writes holds on the write path too; the shebang keeps line numbers"
    );
    assert_eq!(t.r(&["EXISTS", "a"]), Reply::Int(0));
    assert_eq!(eval(&mut t, "#!lua\nreturn 1"), Reply::Int(1));
    assert_eq!(
        eval(&mut t, "#!foo\nreturn 1"),
        err("ERR Unexpected engine in script shebang: #!foo")
    );
    assert_eq!(
        eval(&mut t, "#!lua flags=bad\nreturn 1"),
        err("ERR Unexpected flag in script shebang: bad")
    );
    assert_eq!(
        t.w(&["EVAL_RO", script, "0"]),
        err(&format!(
            "ERR Write commands are not allowed from read-only scripts. script: {}, on @user_script:1.",
            sha1(script)
        )),
        "EVAL_RO inside the log (MULTI) refuses too"
    );
}

fn the_sandbox_keeps_scripts_apart(kind: EngineKind) {
    let mut t = T::new(kind);
    for g in [
        "dofile", "loadfile", "print", "setfenv", "getfenv", "debug", "os", "io", "require",
        "module", "newproxy",
    ] {
        let script = format!("return type({g})");
        assert_eq!(
            eval(&mut t, &script),
            err(&format!(
                "ERR user_script:1: Script attempted to access nonexistent global variable '{g}' script: {}, on @user_script:1.",
                sha1(&script)
            )),
            "{g} is removed"
        );
    }
    for (g, ty) in [
        ("loadstring", "function"),
        ("cjson", "table"),
        ("bit", "table"),
        ("_G", "table"),
        ("unpack", "function"),
        ("coroutine", "table"),
    ] {
        assert_eq!(eval(&mut t, &format!("return type({g})")), bulk(ty), "{g}");
    }
    for trick in [
        "setmetatable(_G, {})",
        "local g = getmetatable(_G) g.__index = {}",
        "getmetatable('').__index = {}",
    ] {
        assert!(
            matches!(eval(&mut t, trick), Reply::Error(ref e) if e.contains("Attempt to modify a readonly table")),
            "{trick}"
        );
    }
    assert!(
        matches!(
            eval(&mut t, "return loadstring(string.dump(function() return 1 end))()"),
            Reply::Error(ref e) if e.contains("attempt to call a nil value")
        ),
        "compiled chunks are not loaded"
    );
    assert!(matches!(eval(&mut t, "string.rep = nil"), Reply::Error(_)));
    assert!(matches!(
        eval(&mut t, "rawset(string, 'rep', nil)"),
        Reply::Error(_)
    ));
    assert!(matches!(
        eval(&mut t, "setmetatable(_G, nil)"),
        Reply::Error(_)
    ));
    assert!(matches!(
        eval(&mut t, "getmetatable('').__index.rep = nil"),
        Reply::Error(_)
    ));
    assert_eq!(
        eval(&mut t, "return string.rep('a', 3)"),
        bulk("aaa"),
        "the library survived"
    );
    assert!(
        matches!(
            eval(&mut t, "return loadstring('q = 1')()"),
            Reply::Error(_)
        ),
        "loaded code is sandboxed too"
    );
    assert_eq!(
        eval(&mut t, "return loadstring('return 1 + 1')()"),
        Reply::Int(2)
    );
    // Thousands of arguments to one command.
    assert_eq!(
        eval(&mut t, "local a = {} for i = 1, 7999 do a[i] = 'm' .. i end return redis.call('sadd', 'big', unpack(a))"),
        Reply::Int(7999)
    );
    assert_eq!(
        eval(&mut t, "return redis.call('wait', 0, 0)"),
        Reply::Int(0)
    );
    // KEYS and ARGV are the running script's own.
    assert_eq!(
        t.w(&["EVAL", "return #KEYS + #ARGV", "1", "k", "a", "b"]),
        Reply::Int(3)
    );
    assert_eq!(eval(&mut t, "return #KEYS + #ARGV"), Reply::Int(0));
}

fn a_runaway_script_is_stopped(kind: EngineKind) {
    let mut t = T::new(kind);
    let stopped = err(keel_engine::script::STOPPED);
    assert_eq!(
        eval(&mut t, "redis.call('set', 'before', '1') while true do end"),
        stopped
    );
    assert_eq!(
        t.r(&["GET", "before"]),
        bulk("1"),
        "its writes stay, as after any error"
    );
    assert_eq!(
        eval(
            &mut t,
            "while true do pcall(function() while true do end end) end"
        ),
        stopped,
        "pcall cannot catch the stop"
    );
    assert_eq!(
        eval(
            &mut t,
            "local n = 0 for i = 1, 1000 do n = n + i end return n"
        ),
        Reply::Int(500500),
        "the next script runs"
    );
    assert_eq!(
        eval(&mut t, "local t = {} for i = 1, 1e9 do t[i] = i end"),
        err(keel_engine::script::OUT_OF_MEMORY)
    );
    assert_eq!(eval(&mut t, "return 1"), Reply::Int(1));
}

fn cjson_cmsgpack_and_bit_as_redis_bundles_them(kind: EngineKind) {
    let mut t = T::new(kind);
    let cases: &[(&str, &str)] = &[
        ("return cjson.encode({1,2,3})", "[1,2,3]"),
        ("return cjson.encode({a=1})", r#"{"a":1}"#),
        ("return cjson.encode({})", "{}"),
        ("return cjson.encode('a/b\"c\\\\d\\n\\1\\127')", r#""a\/b\"c\\d\n\u0001\u007f""#),
        ("return cjson.encode({1.5, 1e15, 0.1, -3, 1/3, 123456789012345})", "[1.5,1e+15,0.1,-3,0.33333333333333,1.2345678901234e+14]"),
        ("return cjson.encode({[1]=1,[3]=2})", "[1,null,2]"),
        ("return cjson.encode({cjson.null, true})", "[null,true]"),
        ("return cjson.encode(cjson.decode('[1e3, -0.5, 2.5e-3]'))", "[1000,-0.5,0.0025]"),
        ("local t = cjson.decode('{\"a\":[1,{\"b\":null}],\"c\":\"x\\\\u00e9\"}') return tostring(t.a[2].b == cjson.null) .. t.c", "truexé"),
        ("return cjson.decode('\"\\\\ud83d\\\\ude00\"')", "😀"),
        ("return bit.tohex(bit.band(0xff, 0x0f)) .. bit.tohex(255, -2)", "0000000fFF"),
        ("return tostring(bit.lshift(1, 31)) .. ' ' .. bit.bxor(5, 3)", "-2147483648 6"),
        // redis-server's bytes for the same values.
        ("return (cmsgpack.pack({1, -1, 300, 'ab', true}):gsub('.', function(c) return string.format('%02x', c:byte()) end))", "9501ffcd012ca26162c3"),
        ("local t = cmsgpack.unpack(cmsgpack.pack({a = {1.5, -1099511627776}})) return t.a[1] .. ' ' .. t.a[2]", "1.5 -1099511627776"),
    ];
    for (script, want) in cases {
        assert_eq!(eval(&mut t, script), bulk(want), "{script}");
    }
    // Settings hold for the script that makes them, then are lua-cjson's defaults again.
    let deep = "return cjson.encode({{{1}}})";
    assert!(matches!(
        eval(&mut t, &format!("cjson.encode_max_depth(2) {deep}")),
        Reply::Error(ref e) if e.contains("excessive nesting (3)")
    ));
    assert_eq!(eval(&mut t, deep), bulk("[[[1]]]"));
    assert_eq!(
        eval(&mut t, "cjson.encode_invalid_numbers('null') cjson.encode_number_precision(3) return cjson.encode({0/0, 1/3})"),
        bulk("[null,0.333]")
    );
    assert_eq!(
        eval(
            &mut t,
            "cjson.encode_sparse_array(true) return cjson.encode({[1]=1,[20]=2})"
        ),
        bulk(r#"{"1":1,"20":2}"#)
    );
    let fails: &[(&str, &str)] = &[
        (
            "return cjson.encode({[1]=1,[20]=2})",
            "ERR user_script:1: Cannot serialise table: excessively sparse array",
        ),
        (
            "return cjson.encode(0/0)",
            "ERR user_script:1: Cannot serialise number: must not be NaN or Inf",
        ),
        (
            "return cjson.decode('[1,2')",
            "ERR user_script:1: Expected comma or array end but found T_END at character 5",
        ),
        (
            "return cjson.decode('{\"a\" 1}')",
            "ERR user_script:1: Expected colon but found T_NUMBER at character 6",
        ),
        (
            "return cjson.decode(string.rep('[', 1001))",
            "ERR user_script:1: Found too many nested data structures (1001) at character 1001",
        ),
    ];
    for (script, text) in fails {
        assert_eq!(
            eval(&mut t, script),
            err(&format!(
                "{text} script: {}, on @user_script:1.",
                sha1(script)
            )),
            "{script}"
        );
    }
}

/// The same script, applied at the same log index with the same seed, draws the same
/// numbers: replay and replicas agree. Two runs draw different ones.
fn random_draws_follow_the_entry(kind: EngineKind) {
    let run = |seed: u64| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            keel_storage::open(dir.path(), &keel_storage::OpenOptions::new(kind)).expect("open");
        let engine = Engine::new(store).expect("engine");
        let ctx = ApplyCtx {
            seq: 1,
            now_ms: 1_700_000_000_000,
            seed,
        };
        let op = Op::Command {
            db: 0,
            args: cmd(&[
                "EVAL",
                "return {math.random(1000000), math.random(1000000)}",
                "0",
            ]),
        };
        let applied = engine.apply(&ctx, &op).expect("apply");
        applied.replies[0].clone()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

/// A gate that refuses every call naming a key that starts with "secret" (its `rules`),
/// as the front-end's ACL would.
struct PrefixGate(Bytes);

impl keel_engine::gate::CallGate for PrefixGate {
    fn refuse(&self, args: &[Bytes]) -> Option<keel_engine::gate::Refusal> {
        let key = args.iter().skip(1).find(|a| a.starts_with(&self.0))?;
        Some(keel_engine::gate::Refusal {
            message: "No permissions to access a key".into(),
            reason: "key",
            object: key.clone(),
        })
    }
}

struct PrefixGates;

impl keel_engine::gate::CallGates for PrefixGates {
    fn gate(
        &self,
        _user: &Bytes,
        rules: &Bytes,
    ) -> std::sync::Arc<dyn keel_engine::gate::CallGate> {
        std::sync::Arc::new(PrefixGate(rules.clone()))
    }
}

fn gated_entries_have_each_script_call_checked(kind: EngineKind) {
    let script = "redis.call('SET', 'open', 1); return redis.call('SET', 'secret:1', 2)";
    let gated = |args: &[&str]| Op::AsUser {
        user: Bytes::from_static(b"app"),
        rules: Bytes::from_static(b"secret"),
        op: Box::new(Op::Command {
            db: 0,
            args: cmd(args),
        }),
    };
    // No gates registered (a tool reading a log): a gated entry's calls are all refused.
    let mut t = T::new(kind);
    let applied = t.apply(gated(&["EVAL", script, "0"]));
    assert!(
        matches!(&applied.replies[0], Reply::Error(e) if e.starts_with("ERR ACL failure in script: ")),
        "{:?}",
        applied.replies
    );
    assert_eq!(t.r(&["EXISTS", "open"]), Reply::Int(0));

    assert!(t.engine.set_call_gates(std::sync::Arc::new(PrefixGates)));
    assert!(
        !t.engine.set_call_gates(std::sync::Arc::new(PrefixGates)),
        "set once"
    );
    let applied = t.apply(gated(&["EVAL", script, "0"]));
    assert_eq!(
        applied.replies[0],
        err(&format!(
            "ERR ACL failure in script: No permissions to access a key script: {}, on @user_script:1.",
            sha1(script)
        ))
    );
    assert_eq!(
        t.r(&["GET", "open"]),
        bulk("1"),
        "the write before the refusal stays"
    );
    assert_eq!(t.r(&["EXISTS", "secret:1"]), Reply::Int(0));
    let refused: Vec<_> = applied
        .events
        .iter()
        .filter(|e| e.class == keel_engine::exec::REFUSED_CALL)
        .map(|e| (e.event, e.key.clone()))
        .collect();
    assert_eq!(refused, vec![("key", Bytes::from_static(b"secret:1"))]);
    // The same entry ungated runs whole; a gated MULTI checks its scripts too.
    assert_eq!(t.w(&["EVAL", script, "0"]), Reply::Simple("OK".into()));
    let multi = Op::AsUser {
        user: Bytes::from_static(b"app"),
        rules: Bytes::from_static(b"secret"),
        op: Box::new(Op::Multi {
            cmds: vec![
                (0, cmd(&["SET", "secret:2", "direct"])),
                (
                    0,
                    cmd(&["EVAL", "return redis.call('GET', 'secret:1')", "0"]),
                ),
            ],
        }),
    };
    let applied = t.apply(multi);
    assert_eq!(
        applied.replies[0],
        Reply::Ok,
        "only a script's calls are gated"
    );
    assert!(matches!(&applied.replies[1], Reply::Error(e) if e.contains("ACL failure")));
}

/// A library named `name` whose one function `f` runs `body` with (keys, args).
fn library(name: &str, f: &str, body: &str) -> String {
    format!("#!lua name={name}\nredis.register_function('{f}', function(keys, args)\n{body}\nend)")
}

fn functions_are_kept_as_records(kind: EngineKind) {
    let mut t = T::new(kind);
    let lib = "#!lua name=lib1\n\
        redis.register_function('setget', function(keys, args)\n\
          redis.call('SET', keys[1], args[1])\n\
          return redis.call('GET', keys[1])\n\
        end)\n\
        redis.register_function{function_name='peek', description='reads',\n\
          callback=function(keys) return redis.call('GET', keys[1]) end,\n\
          flags={'no-writes', 'allow-oom'}}";
    assert_eq!(t.w(&["FUNCTION", "LOAD", lib]), bulk("lib1"));
    assert_eq!(t.w(&["FCALL", "setget", "1", "k", "v"]), bulk("v"));
    assert_eq!(
        t.w(&["FCALL", "SETGET", "1", "k", "w"]),
        bulk("w"),
        "function names are case-insensitive"
    );
    assert_eq!(t.r(&["FCALL_RO", "peek", "1", "k"]), bulk("w"));
    assert_eq!(
        t.r(&["FCALL_RO", "setget", "1", "k", "x"]),
        err("ERR Can not execute a script with write flag using *_ro command.")
    );
    assert_eq!(t.w(&["FCALL", "nope", "0"]), err("ERR Function not found"));
    assert_eq!(
        t.w(&["FCALL", "peek", "x"]),
        err("ERR Bad number of keys provided")
    );
    assert_eq!(
        t.w(&["FCALL", "peek", "2", "k"]),
        err("ERR Number of keys can't be greater than number of args")
    );
    assert_eq!(
        t.w(&["FUNCTION", "LIST"]),
        Reply::Array(vec![Reply::Map(vec![
            (bulk("library_name"), bulk("lib1")),
            (bulk("engine"), bulk("LUA")),
            (
                bulk("functions"),
                Reply::Array(vec![
                    Reply::Map(vec![
                        (bulk("name"), bulk("setget")),
                        (bulk("description"), Reply::Nil),
                        (bulk("flags"), Reply::Set(vec![])),
                    ]),
                    Reply::Map(vec![
                        (bulk("name"), bulk("peek")),
                        (bulk("description"), bulk("reads")),
                        (
                            bulk("flags"),
                            Reply::Set(vec![
                                Reply::Simple("no-writes".into()),
                                Reply::Simple("allow-oom".into()),
                            ])
                        ),
                    ]),
                ])
            ),
        ])])
    );
    // Collisions, in Redis's words.
    assert_eq!(
        t.w(&["FUNCTION", "LOAD", lib]),
        err("ERR Library 'lib1' already exists")
    );
    assert_eq!(
        t.w(&["FUNCTION", "LOAD", &library("lib2", "PEEK", "return 1")]),
        err("ERR Function PEEK already exists")
    );
    assert_eq!(
        t.w(&["FUNCTION", "LOAD", &library("lib2", "f2", "return 2")]),
        bulk("lib2")
    );
    // REPLACE drops the functions the library no longer registers.
    assert_eq!(
        t.w(&[
            "FUNCTION",
            "LOAD",
            "REPLACE",
            &library("lib1", "only", "return 'new'")
        ]),
        bulk("lib1")
    );
    assert_eq!(t.w(&["FCALL", "only", "0"]), bulk("new"));
    assert_eq!(
        t.w(&["FCALL", "setget", "1", "k", "v"]),
        err("ERR Function not found")
    );
    t.w(&["FLUSHALL"]);
    assert_eq!(t.r(&["DBSIZE"]), Reply::Int(0), "libraries are not keys");
    assert_eq!(
        t.w(&["FCALL", "f2", "0"]),
        Reply::Int(2),
        "FLUSHALL leaves them"
    );

    // DUMP and RESTORE, all or nothing.
    let Reply::Bulk(payload) = t.w(&["FUNCTION", "DUMP"]) else {
        panic!("dump is a bulk")
    };
    let restore = |t: &mut T, payload: &Bytes, policy: &[&str]| {
        let mut args = vec![b("FUNCTION"), b("RESTORE"), payload.clone()];
        args.extend(policy.iter().map(|p| b(p)));
        t.apply(Op::Command { db: 0, args }).replies.remove(0)
    };
    assert_eq!(t.w(&["FUNCTION", "DELETE", "lib2"]), Reply::Ok);
    assert_eq!(
        t.w(&["FUNCTION", "DELETE", "lib2"]),
        err("ERR Library not found")
    );
    assert_eq!(t.w(&["FCALL", "f2", "0"]), err("ERR Function not found"));
    assert_eq!(
        restore(&mut t, &payload, &[]),
        err("ERR Library lib1 already exists"),
        "APPEND by default"
    );
    assert_eq!(
        t.w(&["FCALL", "f2", "0"]),
        err("ERR Function not found"),
        "nothing restored"
    );
    assert_eq!(restore(&mut t, &payload, &["REPLACE"]), Reply::Ok);
    assert_eq!(t.w(&["FCALL", "f2", "0"]), Reply::Int(2));
    let mut damaged = payload.to_vec();
    damaged[3] ^= 1;
    assert_eq!(
        restore(&mut t, &Bytes::from(damaged), &["FLUSH"]),
        err("ERR DUMP payload version or checksum are wrong")
    );
    assert_eq!(
        restore(&mut t, &payload, &["SOME"]),
        err("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.")
    );
    assert_eq!(t.w(&["FUNCTION", "FLUSH"]), Reply::Ok);
    assert_eq!(t.w(&["FUNCTION", "LIST"]), Reply::Array(vec![]));
    assert_eq!(restore(&mut t, &payload, &["FLUSH"]), Reply::Ok);
    assert_eq!(t.w(&["FCALL", "only", "0"]), bulk("new"));
    assert_eq!(
        t.w(&["FUNCTION", "STATS"]),
        Reply::Map(vec![
            (bulk("running_script"), Reply::Nil),
            (
                bulk("engines"),
                Reply::Map(vec![(
                    bulk("LUA"),
                    Reply::Map(vec![
                        (bulk("libraries_count"), Reply::Int(2)),
                        (bulk("functions_count"), Reply::Int(2)),
                    ])
                )])
            ),
        ])
    );
}

fn libraries_load_apart_from_data_and_functions_name_their_errors(kind: EngineKind) {
    let mut t = T::new(kind);
    let load = |t: &mut T, code: &str| t.w(&["FUNCTION", "LOAD", code]);
    assert_eq!(
        load(&mut t, "return 1"),
        err("ERR Missing library metadata")
    );
    assert_eq!(
        load(&mut t, "#!js name=x\nreturn 1"),
        err("ERR Engine 'js' not found")
    );
    assert_eq!(
        load(&mut t, "#!lua name=a-b\nreturn 1"),
        err("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long")
    );
    assert_eq!(
        load(&mut t, "#!lua name=x\nreturn 1"),
        err("ERR No functions registered")
    );
    assert_eq!(
        load(&mut t, "#!lua name=x\nreturn +"),
        err("ERR Error compiling function: user_function:2: unexpected symbol near '+'")
    );
    assert_eq!(
        load(&mut t, "#!lua name=x\nreturn math.random()"),
        err("ERR Error registering functions: user_function:2: Script attempted to access nonexistent global variable 'math'"),
        "loading code sees only the registration API"
    );
    assert_eq!(
        load(&mut t, "#!lua name=x\nredis.call('SET', 'k', 1)"),
        err("ERR Error registering functions: user_function:2: Script attempted to access nonexistent global variable 'call'")
    );
    assert_eq!(
        load(&mut t, "#!lua name=x\nredis.register_function('f')"),
        err("ERR Error registering functions: calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).")
    );
    assert_eq!(
        load(&mut t, "#!lua name=x\nredis.register_function{function_name='f', callback=function() end, flags={'bad'}}"),
        err("ERR Error registering functions: unknown flag given")
    );
    assert_eq!(
        load(&mut t, "#!lua name=x\nwhile true do end"),
        err("ERR Error registering functions: FUNCTION LOAD timeout"),
        "a load is stopped at a fixed count"
    );
    assert_eq!(t.r(&["DBSIZE"]), Reply::Int(0));
    assert_eq!(
        t.w(&["FUNCTION", "LIST"]),
        Reply::Array(vec![]),
        "nothing failed was kept"
    );

    let code = "#!lua name=lib\n\
        local helper = function() return redis.call('INCR', 'n') end\n\
        redis.register_function('count', function(keys, args) return helper() end)\n\
        redis.register_function('fails', function(keys, args)\n\
          redis.call('SET', 'before', 1)\n\
          return redis.call('INCR', keys[1])\n\
        end)\n\
        redis.register_function('globals', function() return KEYS end)\n\
        redis.register_function('again', function() redis.register_function('g', function() end) end)";
    assert_eq!(load(&mut t, code), bulk("lib"));
    assert_eq!(t.w(&["FCALL", "count", "0"]), Reply::Int(1));
    assert_eq!(
        t.w(&["FCALL", "count", "0"]),
        Reply::Int(2),
        "the library's locals stay"
    );
    t.w(&["SET", "s", "text"]);
    assert_eq!(
        t.w(&["FCALL", "fails", "1", "s"]),
        err("ERR value is not an integer or out of range script: fails, on @user_function:6.")
    );
    assert_eq!(
        t.r(&["GET", "before"]),
        bulk("1"),
        "earlier writes stay, as in Redis"
    );
    assert_eq!(
        t.w(&["FCALL", "globals", "0"]),
        err("ERR user_function:8: Script attempted to access nonexistent global variable 'KEYS' script: globals, on @user_function:8.")
    );
    assert!(
        matches!(t.w(&["FCALL", "again", "0"]), Reply::Error(e) if e.contains("attempt to call field 'register_function' (a nil value)")),
        "no registering outside a load"
    );
}

fn a_gated_fcall_has_each_call_checked(kind: EngineKind) {
    let mut t = T::new(kind);
    assert!(t.engine.set_call_gates(std::sync::Arc::new(PrefixGates)));
    let code = "#!lua name=lib\nredis.register_function('f', function()\n\
        redis.call('SET', 'open', 1)\nreturn redis.call('SET', 'secret:1', 2)\nend)";
    assert_eq!(t.w(&["FUNCTION", "LOAD", code]), bulk("lib"));
    let applied = t.apply(Op::AsUser {
        user: Bytes::from_static(b"app"),
        rules: Bytes::from_static(b"secret"),
        op: Box::new(Op::Command {
            db: 0,
            args: cmd(&["FCALL", "f", "0"]),
        }),
    });
    assert!(
        matches!(&applied.replies[0], Reply::Error(e) if e.starts_with("ERR ACL failure in script: ")),
        "{:?}",
        applied.replies
    );
    assert_eq!(
        t.r(&["GET", "open"]),
        bulk("1"),
        "the call before the refusal ran"
    );
    assert_eq!(t.r(&["EXISTS", "secret:1"]), Reply::Int(0));
}

all_engines!(
    gated_entries_have_each_script_call_checked,
    functions_are_kept_as_records,
    libraries_load_apart_from_data_and_functions_name_their_errors,
    a_gated_fcall_has_each_call_checked,
    replies_convert_as_in_redis,
    keys_argv_and_writes,
    errors_name_the_script_and_line,
    an_error_keeps_earlier_writes_and_undoes_the_failed_command,
    the_script_cache_is_kept_as_records,
    read_only_scripts_refuse_writes,
    the_sandbox_keeps_scripts_apart,
    a_runaway_script_is_stopped,
    cjson_cmsgpack_and_bit_as_redis_bundles_them,
    random_draws_follow_the_entry,
);
