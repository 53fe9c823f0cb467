//! keel-cli's typed gRPC verbs end to end against an in-process server with its gRPC
//! front-end: kv set/get/del/scan/txn and metrics, and what RESP sees of them.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::{query, run_cli, InProc, WAIT};
use keel_client::Value;
use keel_server::Config;

fn bulk(s: &str) -> Value {
    Value::bulk(s.as_bytes().to_vec())
}

#[test]
fn set_get_del_round_trip_and_resp_sees_it() {
    let s = InProc::start_default();
    assert_eq!(
        s.cli(&["kv", "set", "a=1", "b=x=y", "empty="]).stdout,
        "OK\n"
    );
    // Raw form on a pipe: one value per key, empty line for a missing key.
    assert_eq!(
        s.cli(&["kv", "get", "a", "b", "missing"]).stdout,
        "1\nx=y\n\n"
    );
    assert_eq!(
        s.cli(&["--no-raw", "kv", "get", "a", "missing"]).stdout,
        "\"a\" => \"1\"\n\"missing\" => (nil)\n"
    );
    assert_eq!(query(s.addr, &["GET", "b"]), bulk("x=y"));
    assert_eq!(query(s.addr, &["GET", "empty"]), bulk(""));
    query(s.addr, &["SET", "fromresp", "r"]);
    assert_eq!(s.cli(&["kv", "get", "fromresp"]).stdout, "r\n");
    assert_eq!(s.cli(&["kv", "del", "a", "missing"]).stdout, "1\n");
    assert_eq!(
        s.cli(&["--no-raw", "kv", "del", "b"]).stdout,
        "(integer) 1\n"
    );
    assert_eq!(query(s.addr, &["EXISTS", "a", "b"]), Value::Int(0));
    // -n picks the database on gRPC too.
    assert_eq!(s.cli(&["-n", "2", "kv", "set", "d=2"]).stdout, "OK\n");
    assert_eq!(s.cli(&["-n", "2", "GET", "d"]).stdout, "2\n");
    assert_eq!(s.cli(&["GET", "d"]).stdout, "\n");
}

#[test]
fn set_with_ttl_expires_keys() {
    let s = InProc::start_default();
    assert_eq!(s.cli(&["kv", "set", "t=v", "--ttl", "100s"]).stdout, "OK\n");
    let ttl = query(s.addr, &["TTL", "t"]).as_int().expect("ttl");
    assert!((1..=100).contains(&ttl), "ttl {ttl}");
    let bad = s.cli(&["kv", "set", "t=v", "--ttl", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
    let no_eq = s.cli(&["kv", "set", "novalue"]);
    assert_eq!(no_eq.status.code(), Some(2));
    assert!(no_eq.stderr.contains("key=value"), "{no_eq:?}");
}

#[test]
fn scan_pages_through_a_prefix_in_key_order() {
    let s = InProc::start_default();
    let mut pairs: Vec<String> = (0..35).map(|i| format!("user:{i:03}={i}")).collect();
    pairs.extend((0..5).map(|i| format!("other:{i}=o")));
    let mut args = vec!["kv", "set"];
    args.extend(pairs.iter().map(String::as_str));
    assert_eq!(s.cli(&args).stdout, "OK\n");
    let out = s.cli(&["kv", "scan", "--prefix", "user:", "--page-size", "4"]);
    assert!(out.status.success(), "{out:?}");
    let want: Vec<String> = (0..35).map(|i| format!("user:{i:03}\t{i}")).collect();
    let got: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(got, want);
    let limited = s.cli(&[
        "kv",
        "scan",
        "--prefix",
        "user:",
        "--limit",
        "10",
        "--page-size",
        "3",
    ]);
    assert_eq!(limited.stdout.lines().count(), 10);
    assert!(limited.stdout.starts_with("user:000\t0\n"));
    let all = s.cli(&["--no-raw", "kv", "scan"]);
    assert_eq!(all.stdout.lines().count(), 40);
    assert!(all.stdout.starts_with("\"other:0\" => \"o\"\n"), "{all:?}");
}

#[test]
fn txn_applies_stdin_ops_atomically() {
    let s = InProc::start_default();
    s.cli(&["kv", "set", "gone=1", "keep=2"]);
    let script = "# comment\nput x 'hello world'\nget x keep\ndel gone\nput y 2\n";
    let out = s.cli_stdin(&["kv", "txn"], script.as_bytes());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, "hello world\n2\nOK (3 written)\n");
    assert_eq!(query(s.addr, &["GET", "x"]), bulk("hello world"));
    assert_eq!(query(s.addr, &["EXISTS", "gone"]), Value::Int(0));

    // A bad line rolls everything back.
    let bad = s.cli_stdin(&["kv", "txn"], b"put z 1\nfrobnicate\n");
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(bad.stderr.contains("line 2"), "{bad:?}");
    assert_eq!(query(s.addr, &["EXISTS", "z"]), Value::Int(0));
}

#[test]
fn txn_conflict_prints_aborted_with_the_key_and_fails() {
    let s = InProc::start_default();
    s.cli(&["kv", "set", "acct=100"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel-cli"))
        .args(s.argv(&["kv", "txn"]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The txn's read proves its snapshot exists before the competing write.
    stdin.write_all(b"get acct\n").expect("write");
    assert_eq!(rx.recv_timeout(WAIT).expect("get reply"), "100");
    query(s.addr, &["SET", "acct", "50"]);
    stdin.write_all(b"put acct 90\n").expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(!out.status.success(), "conflict must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ABORTED") && err.contains("acct"), "{err}");
    assert_eq!(query(s.addr, &["GET", "acct"]), bulk("50"));
}

#[test]
fn metrics_report_keys_and_command_counts() {
    let s = InProc::start_default();
    s.cli(&["kv", "set", "m1=a", "m2=b"]);
    s.cli(&["SET", "m3", "c"]);
    let out = s.cli(&["metrics"]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.lines().any(|l| l == "keys:3"), "{out:?}");
    assert!(out.stdout.lines().any(|l| l == "set:1"), "{out:?}");
    assert!(
        out.stdout.lines().any(|l| l == "/keel.v1.Kv/Set:1"),
        "{out:?}"
    );
}

#[test]
fn grpc_verbs_authenticate_with_the_password() {
    let s = InProc::start(Config {
        requirepass: Some("pw".into()),
        ..Config::default()
    });
    let base = s.argv(&[]);
    let mut args: Vec<&str> = base.iter().map(String::as_str).collect();
    args.extend(["kv", "get", "a"]);
    let denied = run_cli(&args, None, &[]);
    assert!(!denied.status.success());
    assert!(denied.stderr.contains("Unauthenticated"), "{denied:?}");
    let ok = run_cli(&args, None, &[("KEEL_AUTH", "pw")]);
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(ok.stdout, "\n");
}

#[test]
fn unreachable_grpc_port_is_reported() {
    let s = InProc::start_default();
    let out = run_cli(
        &["-p", &s.port(), "--grpc-port", "1", "kv", "get", "a"],
        None,
        &[],
    );
    assert!(!out.status.success());
    assert!(
        out.stderr
            .starts_with("Could not connect to keel gRPC at 127.0.0.1:1"),
        "{out:?}"
    );
}
