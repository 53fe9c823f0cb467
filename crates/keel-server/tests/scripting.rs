//! Lua scripts through real clients: the redis crate's `Script` (EVALSHA, then SCRIPT
//! LOAD on NOSCRIPT), WATCH and MULTI around EVAL, COMMAND's view of EVAL, and the
//! real binary killed with SIGKILL: a script's writes, its random draws and the script
//! cache all come back from the log, and so do function libraries and their calls.

mod common;

use common::{connect, spawn_binary, InProc};
use keel_server::Config;
use redis::Commands;

/// A field of INFO memory.
fn memory_field(con: &mut redis::Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg("memory").query(con).expect("info");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .trim()
        .to_string()
}

#[test]
fn a_client_library_script_loads_itself_and_runs() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let script = redis::Script::new(
        "redis.call('set', KEYS[1], ARGV[1]) return redis.call('incrby', KEYS[2], ARGV[2])",
    );
    let n: i64 = script
        .key("k")
        .key("n")
        .arg("v")
        .arg(5)
        .invoke(&mut con)
        .expect("invoke");
    assert_eq!(n, 5);
    let n: i64 = script
        .key("k2")
        .key("n")
        .arg("w")
        .arg(2)
        .invoke(&mut con)
        .expect("invoke again, by EVALSHA");
    assert_eq!(n, 7);
    let v: String = con.get("k2").expect("get");
    assert_eq!(v, "w");
    let exists: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(script.get_hash())
        .query(&mut con)
        .expect("script exists");
    assert_eq!(exists, vec![1]);
    // An error comes back as the client's error, with Redis's text.
    let e = redis::cmd("EVAL")
        .arg("return redis.call('incr', KEYS[1])")
        .arg(1)
        .arg("k")
        .query::<i64>(&mut con)
        .expect_err("incr of a string");
    assert!(
        e.to_string()
            .contains("value is not an integer or out of range"),
        "{e}"
    );
    // COMMAND GETKEYS finds a script's keys after numkeys.
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("EVAL")
        .arg("return 1")
        .arg(2)
        .arg("a")
        .arg("b")
        .arg("c")
        .query(&mut con)
        .expect("getkeys");
    assert_eq!(keys, ["a", "b"]);
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("EVAL")
        .arg("return 1")
        .arg(0)
        .query(&mut con)
        .expect("getkeys of a script without keys");
    assert!(keys.is_empty(), "{keys:?}");
    let e = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("ZUNION")
        .arg(3)
        .arg("a")
        .arg("b")
        .query::<Vec<String>>(&mut con)
        .expect_err("more keys counted than given");
    assert!(
        e.to_string()
            .contains("Invalid arguments specified for command"),
        "{e}"
    );
    // The library's script and the EVAL above are cached; SCRIPT FLUSH empties it.
    assert_eq!(memory_field(&mut con, "number_of_cached_scripts"), "2");
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut con)
        .expect("flush");
    assert_eq!(memory_field(&mut con, "number_of_cached_scripts"), "0");
}

#[test]
fn eval_touches_watched_keys_and_queues_in_multi() {
    let srv = InProc::start(Config::default());
    let mut a = srv.client();
    let mut b = srv.client();
    let _: () = redis::cmd("WATCH").arg("w").query(&mut a).expect("watch");
    let _: () = redis::cmd("EVAL")
        .arg("redis.call('set', KEYS[1], 'by script')")
        .arg(1)
        .arg("w")
        .query(&mut b)
        .expect("eval");
    let r: Option<Vec<String>> = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("w")
        .arg("by tx")
        .query(&mut a)
        .expect("exec");
    assert_eq!(r, None, "the script's write aborts the transaction");
    let got: Vec<i64> = redis::pipe()
        .atomic()
        .cmd("EVAL")
        .arg("return redis.call('incr', KEYS[1])")
        .arg(1)
        .arg("c")
        .cmd("EVAL")
        .arg("return redis.call('incr', KEYS[1])")
        .arg(1)
        .arg("c")
        .query(&mut a)
        .expect("multi");
    assert_eq!(got, vec![1, 2]);
}

#[test]
fn scripts_their_draws_and_the_cache_survive_sigkill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let args = ["--appendfsync", "always"];
    let srv = spawn_binary(&dir, &args);
    let mut con = connect(srv.addr);
    let body = "local n = math.random(1000000000) redis.call('rpush', KEYS[1], n) return n";
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(body)
        .query(&mut con)
        .expect("load");
    let mut drawn = Vec::new();
    for _ in 0..20 {
        let n: i64 = redis::cmd("EVALSHA")
            .arg(&sha)
            .arg(1)
            .arg("draws")
            .query(&mut con)
            .expect("evalsha");
        drawn.push(n);
    }
    let flushed = "return 'flushed'";
    let _: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(flushed)
        .query(&mut con)
        .expect("load");
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut con)
        .expect("flush");
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(body)
        .query(&mut con)
        .expect("load again");
    srv.kill9();

    let srv = spawn_binary(&dir, &args);
    let mut con = connect(srv.addr);
    let stored: Vec<i64> = con.lrange("draws", 0, -1).expect("lrange");
    assert_eq!(stored, drawn, "replayed scripts draw what they drew");
    let distinct: std::collections::HashSet<i64> = drawn.iter().copied().collect();
    assert!(distinct.len() > 1, "each run draws anew: {drawn:?}");
    let exists: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .arg(keel_engine::script::sha1_hex(flushed.as_bytes()))
        .query(&mut con)
        .expect("exists");
    assert_eq!(exists, vec![1, 0], "the cache as it was, flush included");
    let _: i64 = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(1)
        .arg("draws")
        .query(&mut con)
        .expect("evalsha after the restart");
    let len: i64 = con.llen("draws").expect("llen");
    assert_eq!(len, 21);
    srv.kill9();
}

#[test]
fn a_script_publishes_once_its_entry_is_stored() {
    let srv = InProc::start(Config::default());
    let mut sub_con = srv.client();
    let mut ps = sub_con.as_pubsub();
    ps.subscribe("news").expect("subscribe");
    ps.set_read_timeout(Some(common::WAIT)).expect("timeout");
    let mut con = srv.client();
    let r: i64 = redis::cmd("EVAL")
        .arg("redis.call('publish', KEYS[1], 'one') redis.call('set', 'k', 'v') return redis.call('publish', KEYS[1], ARGV[1])")
        .arg(1)
        .arg("news")
        .arg("two")
        .query(&mut con)
        .expect("eval");
    assert_eq!(r, 0, "the receivers are not known inside the script");
    for want in ["one", "two"] {
        let msg = ps.get_message().expect("message");
        assert_eq!(msg.get_channel_name(), "news");
        assert_eq!(msg.get_payload::<String>().expect("payload"), want);
    }
    let e = redis::cmd("EVAL_RO")
        .arg("return redis.call('publish', 'news', 'x')")
        .arg(0)
        .query::<i64>(&mut con)
        .expect_err("read-only");
    assert!(
        e.to_string().contains("not allowed from read-only scripts"),
        "{e}"
    );
}

#[test]
fn over_maxmemory_a_script_is_refused_whole_and_a_read_only_one_runs() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let _: () = con.set("k", "v").expect("set");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query(&mut con)
        .expect("config");
    let e = redis::cmd("EVAL")
        .arg("return redis.call('get', KEYS[1])")
        .arg(1)
        .arg("k")
        .query::<String>(&mut con)
        .expect_err("over maxmemory");
    assert!(e.to_string().contains("OOM"), "{e}");
    let v: String = redis::cmd("EVAL_RO")
        .arg("return redis.call('get', KEYS[1])")
        .arg(1)
        .arg("k")
        .query(&mut con)
        .expect("eval_ro");
    assert_eq!(v, "v");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query(&mut con)
        .expect("config");
    let v: String = redis::cmd("EVAL")
        .arg("return redis.call('get', KEYS[1])")
        .arg(1)
        .arg("k")
        .query(&mut con)
        .expect("eval");
    assert_eq!(v, "v");
}

#[test]
fn function_libraries_and_their_calls_survive_sigkill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let args = ["--appendfsync", "always"];
    let srv = spawn_binary(&dir, &args);
    let mut con = connect(srv.addr);
    let load = |con: &mut redis::Connection, opts: &[&str], code: &str| -> String {
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg(opts)
            .arg(code)
            .query(con)
            .expect("function load")
    };
    let v1 = "#!lua name=draws\nredis.register_function('draw', function(keys)\n\
        local n = math.random(1000000000)\nredis.call('RPUSH', keys[1], n)\nreturn n\nend)";
    assert_eq!(load(&mut con, &[], v1), "draws");
    let mut drawn = Vec::new();
    for _ in 0..20 {
        let n: i64 = redis::cmd("FCALL")
            .arg("draw")
            .arg(1)
            .arg("list")
            .query(&mut con)
            .expect("fcall");
        drawn.push(n);
    }
    let v2 = "#!lua name=draws\nredis.register_function('draw2', function() return 'v2' end)";
    assert_eq!(load(&mut con, &["REPLACE"], v2), "draws");
    let gone = "#!lua name=gone\nredis.register_function('gone', function() return 1 end)";
    assert_eq!(load(&mut con, &[], gone), "gone");
    let _: () = redis::cmd("FUNCTION")
        .arg("DELETE")
        .arg("gone")
        .query(&mut con)
        .expect("delete");
    srv.kill9();

    let srv = spawn_binary(&dir, &args);
    let mut con = connect(srv.addr);
    let stored: Vec<i64> = con.lrange("list", 0, -1).expect("lrange");
    assert_eq!(stored, drawn, "replayed calls draw what they drew");
    let distinct: std::collections::HashSet<i64> = drawn.iter().copied().collect();
    assert!(distinct.len() > 1, "each call draws anew: {drawn:?}");
    let v: String = redis::cmd("FCALL")
        .arg("draw2")
        .arg(0)
        .query(&mut con)
        .expect("the replaced library's function");
    assert_eq!(v, "v2");
    for name in ["draw", "gone"] {
        let e = redis::cmd("FCALL")
            .arg(name)
            .arg(0)
            .query::<String>(&mut con)
            .expect_err("replaced or deleted");
        assert!(e.to_string().contains("Function not found"), "{name}: {e}");
    }
    assert_eq!(memory_field(&mut con, "number_of_libraries"), "1");
    assert_eq!(memory_field(&mut con, "number_of_functions"), "1");
    srv.kill9();
}
