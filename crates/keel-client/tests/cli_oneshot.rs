//! keel-cli one-shot mode against an in-process server: output formats (TTY form via
//! --no-raw, raw form on a pipe), RESP3, database selection, auth, repeat and -x.

mod common;

use common::{query, run_cli, InProc};
use keel_client::Value;
use keel_server::Config;

#[test]
fn tty_format_for_integers_nil_arrays_and_errors() {
    let s = InProc::start_default();
    assert_eq!(s.cli(&["--no-raw", "SET", "k", "v"]).stdout, "OK\n");
    assert_eq!(s.cli(&["--no-raw", "INCR", "n"]).stdout, "(integer) 1\n");
    assert_eq!(s.cli(&["--no-raw", "GET", "missing"]).stdout, "(nil)\n");
    assert_eq!(s.cli(&["--no-raw", "GET", "k"]).stdout, "\"v\"\n");
    s.cli(&["RPUSH", "l", "a", "b c", "q\"\n"]);
    assert_eq!(
        s.cli(&["--no-raw", "LRANGE", "l", "0", "-1"]).stdout,
        "1) \"a\"\n2) \"b c\"\n3) \"q\\\"\\n\"\n"
    );
    assert_eq!(
        s.cli(&["--no-raw", "LRANGE", "none", "0", "-1"]).stdout,
        "(empty array)\n"
    );
    let err = s.cli(&["--no-raw", "NOSUCHCOMMAND"]);
    assert!(
        err.stdout
            .starts_with("(error) ERR unknown command 'NOSUCHCOMMAND'"),
        "{err:?}"
    );
}

#[test]
fn nested_arrays_are_numbered_and_indented() {
    let s = InProc::start_default();
    s.cli(&["ZADD", "z", "1", "a", "2", "b"]);
    // RESP3 ZRANGE WITHSCORES is an array of [member, score] pairs.
    let out = s.cli(&["-3", "--no-raw", "ZRANGE", "z", "0", "-1", "WITHSCORES"]);
    assert_eq!(
        out.stdout,
        "1) 1) \"a\"\n   2) (double) 1\n2) 1) \"b\"\n   2) (double) 2\n"
    );
}

#[test]
fn raw_when_stdout_is_not_a_terminal_and_with_raw() {
    let s = InProc::start_default();
    s.cli(&["RPUSH", "l", "a", "b"]);
    // stdout is a pipe here: redis-cli's rule picks the raw form.
    assert_eq!(s.cli(&["LRANGE", "l", "0", "-1"]).stdout, "a\nb\n");
    assert_eq!(s.cli(&["--raw", "LLEN", "l"]).stdout, "2\n");
    assert_eq!(s.cli(&["GET", "missing"]).stdout, "\n");
    let err = s.cli(&["NOSUCHCOMMAND"]);
    assert!(err.stdout.starts_with("ERR unknown command"), "{err:?}");
    assert!(err.stdout.ends_with("\n\n"), "{err:?}");
}

#[test]
fn resp3_map_set_and_double() {
    let s = InProc::start_default();
    s.cli(&["HSET", "h", "f", "v"]);
    s.cli(&["SADD", "s", "m"]);
    s.cli(&["ZADD", "z", "1.5", "a"]);
    assert_eq!(
        s.cli(&["-3", "--no-raw", "HGETALL", "h"]).stdout,
        "1# \"f\" => \"v\"\n"
    );
    assert_eq!(s.cli(&["-3", "HGETALL", "h"]).stdout, "f v\n");
    assert_eq!(
        s.cli(&["-3", "--no-raw", "SMEMBERS", "s"]).stdout,
        "1~ \"m\"\n"
    );
    assert_eq!(
        s.cli(&["-3", "--no-raw", "ZSCORE", "z", "a"]).stdout,
        "(double) 1.5\n"
    );
    assert_eq!(
        s.cli(&["-3", "--no-raw", "HGETALL", "none"]).stdout,
        "(empty hash)\n"
    );
    // Without -3 the same map is a flat array.
    assert_eq!(
        s.cli(&["--no-raw", "HGETALL", "h"]).stdout,
        "1) \"f\"\n2) \"v\"\n"
    );
}

#[test]
fn n_selects_the_database() {
    let s = InProc::start_default();
    assert_eq!(s.cli(&["-n", "3", "SET", "k", "in3"]).stdout, "OK\n");
    assert_eq!(s.cli(&["-n", "3", "GET", "k"]).stdout, "in3\n");
    assert_eq!(s.cli(&["GET", "k"]).stdout, "\n");
    assert_eq!(query(s.addr, &["DBSIZE"]), Value::Int(0));
}

#[test]
fn auth_with_a_flag_and_environment() {
    let cfg = Config {
        requirepass: Some("s3cret".into()),
        ..Config::default()
    };
    let s = InProc::start(cfg);
    let port = s.port();
    let noauth = run_cli(&["-p", &port, "--no-raw", "PING"], None, &[]);
    assert!(noauth.stdout.starts_with("(error) NOAUTH"), "{noauth:?}");
    let ok = run_cli(&["-p", &port, "-a", "s3cret", "PING"], None, &[]);
    assert_eq!(ok.stdout, "PONG\n");
    assert!(ok.stderr.contains("Warning: Using a password"), "{ok:?}");
    let quiet = run_cli(
        &["-p", &port, "-a", "s3cret", "--no-auth-warning", "PING"],
        None,
        &[],
    );
    assert_eq!(
        (quiet.stdout.as_str(), quiet.stderr.as_str()),
        ("PONG\n", "")
    );
    let env = run_cli(&["-p", &port, "PING"], None, &[("KEEL_AUTH", "s3cret")]);
    assert_eq!(env.stdout, "PONG\n");
    let env2 = run_cli(&["-p", &port, "PING"], None, &[("REDISCLI_AUTH", "s3cret")]);
    assert_eq!(env2.stdout, "PONG\n");
    let bad = run_cli(&["-p", &port, "-a", "wrong", "PING"], None, &[]);
    assert!(!bad.status.success());
    assert!(bad.stderr.contains("AUTH failed"), "{bad:?}");
}

#[test]
fn repeat_and_interval() {
    let s = InProc::start_default();
    let out = s.cli(&["-r", "4", "-i", "0.01", "INCR", "c"]);
    assert_eq!(out.stdout, "1\n2\n3\n4\n");
    assert_eq!(query(s.addr, &["GET", "c"]), Value::bulk(&b"4"[..]));
}

#[test]
fn x_reads_the_last_argument_from_stdin() {
    let s = InProc::start_default();
    let out = s.cli_stdin(&["-x", "SET", "doc"], b"line one\nline two\n");
    assert_eq!(out.stdout, "OK\n");
    assert_eq!(
        query(s.addr, &["GET", "doc"]),
        Value::bulk(&b"line one\nline two\n"[..])
    );
}

#[test]
fn unreachable_server_fails_with_redis_cli_message() {
    let s = InProc::start_default();
    let port = s.port();
    drop(s);
    let out = run_cli(&["-p", &port, "PING"], None, &[]);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .starts_with(&format!("Could not connect to keel at 127.0.0.1:{port}:")),
        "{out:?}"
    );
}
