//! The real binary driven by the real Redis command-line clients: redis-cli (one-shot,
//! --raw, -n, -3, --pipe, --scan) and redis-benchmark. scripts/ci-deps.sh installs them;
//! a missing tool fails these tests (CI must not silently skip them).

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{spawn_binary, Binary, WAIT};

/// Output of a finished tool run.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Fails the test with a message naming the installer when `tool` is not on PATH.
fn require(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "`{tool}` is not installed: run scripts/ci-deps.sh (it installs redis-tools) before the tests"
    );
}

/// Runs `tool args`, feeding `input`, killed if it outlives `limit`.
fn run(tool: &str, args: &[&str], input: &[u8], limit: Duration) -> Run {
    require(tool);
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {tool}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{tool} {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = feeder.join();
    let stdout = String::from_utf8_lossy(&out_t.join().expect("stdout reader")).into_owned();
    let stderr = String::from_utf8_lossy(&err_t.join().expect("stderr reader")).into_owned();
    Run {
        code: status.code(),
        stdout,
        stderr,
    }
}

fn start() -> (tempfile::TempDir, Binary) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let srv = spawn_binary(&tmp.path().join("data"), &[]);
    (tmp, srv)
}

/// redis-cli against `addr` with `args`; asserts it exits 0 and returns stdout.
fn cli(addr: SocketAddr, args: &[&str]) -> String {
    cli_input(addr, args, b"")
}

fn cli_input(addr: SocketAddr, args: &[&str], input: &[u8]) -> String {
    let port = addr.port().to_string();
    let mut all = vec!["-h", "127.0.0.1", "-p", port.as_str()];
    all.extend_from_slice(args);
    let r = run("redis-cli", &all, input, WAIT);
    assert_eq!(
        r.code,
        Some(0),
        "redis-cli {args:?} failed: {}{}",
        r.stdout,
        r.stderr
    );
    r.stdout
}

#[test]
fn redis_cli_one_shot_commands() {
    let (_tmp, srv) = start();
    let a = srv.addr;
    assert_eq!(cli(a, &["PING"]), "PONG\n");
    assert_eq!(cli(a, &["SET", "greeting", "hello world"]), "OK\n");
    assert_eq!(cli(a, &["GET", "greeting"]), "hello world\n");
    assert_eq!(cli(a, &["INCRBY", "n", "41"]), "41\n");
    assert_eq!(cli(a, &["RPUSH", "l", "a", "b", "c"]), "3\n");
    assert_eq!(cli(a, &["LRANGE", "l", "0", "-1"]), "a\nb\nc\n");
    // Errors come back on stdout, with the exit code still 0 for a server error.
    let wrong = cli(a, &["LPUSH", "greeting", "x"]);
    assert!(wrong.starts_with("WRONGTYPE"), "{wrong:?}");
    // --raw prints bulk strings verbatim (newlines included) and integers bare.
    cli(a, &["SET", "multi", "line1\nline2"]);
    assert_eq!(cli(a, &["--raw", "GET", "multi"]), "line1\nline2\n");
    assert_eq!(cli(a, &["--raw", "STRLEN", "multi"]), "11\n");
    // A missing key is an empty line in raw mode.
    assert_eq!(cli(a, &["--raw", "GET", "missing"]), "\n");
    // Arguments from stdin with -x.
    assert_eq!(cli_input(a, &["-x", "SET", "fromstdin"], b"piped"), "OK\n");
    assert_eq!(cli(a, &["GET", "fromstdin"]), "piped\n");
    // The binary names the allocator it installed.
    let memory = cli(a, &["INFO", "memory"]);
    assert!(memory.contains("mem_allocator:mimalloc"), "{memory}");
}

#[test]
fn redis_cli_selects_databases_with_n() {
    let (_tmp, srv) = start();
    let a = srv.addr;
    assert_eq!(cli(a, &["-n", "3", "SET", "k", "in-db3"]), "OK\n");
    assert_eq!(cli(a, &["-n", "3", "GET", "k"]), "in-db3\n");
    assert_eq!(cli(a, &["-n", "0", "--raw", "GET", "k"]), "\n");
    assert_eq!(cli(a, &["-n", "3", "DBSIZE"]), "1\n");
    assert_eq!(cli(a, &["DBSIZE"]), "0\n");
}

#[test]
fn redis_cli_speaks_resp3() {
    let (_tmp, srv) = start();
    let a = srv.addr;
    assert_eq!(cli(a, &["-3", "SET", "k", "v"]), "OK\n");
    assert_eq!(cli(a, &["-3", "GET", "k"]), "v\n");
    cli(a, &["-3", "HSET", "h", "f1", "v1", "f2", "v2"]);
    // A RESP3 map: redis-cli prints "key value" per entry (a RESP2 array would be one
    // element per line).
    let map = cli(a, &["-3", "--raw", "HGETALL", "h"]);
    let mut lines: Vec<&str> = map.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["f1 v1", "f2 v2"], "{map:?}");
    let hello = cli(a, &["-3", "--raw", "HELLO", "3"]);
    assert!(hello.lines().any(|l| l == "proto 3"), "{hello:?}");
    // A RESP3 null.
    assert_eq!(cli(a, &["-3", "--no-raw", "GET", "missing"]), "(nil)\n");
}

#[test]
fn redis_cli_pipe_mode_mass_insert() {
    let (_tmp, srv) = start();
    let a = srv.addr;
    const N: usize = 5000;
    let mut input = Vec::new();
    for i in 0..N {
        let k = format!("mass:{i}");
        let v = format!("value-{i}");
        input.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
                k.len(),
                v.len()
            )
            .as_bytes(),
        );
    }
    // One failing command among them is counted as an error, not fatal.
    input.extend_from_slice(b"*3\r\n$5\r\nLPUSH\r\n$6\r\nmass:0\r\n$1\r\nx\r\n");
    let port = a.port().to_string();
    let r = run(
        "redis-cli",
        &["-h", "127.0.0.1", "-p", &port, "--pipe"],
        &input,
        WAIT,
    );
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains(&format!("errors: 1, replies: {}", N + 1)),
        "pipe summary: {all}"
    );
    assert_eq!(cli(a, &["DBSIZE"]), format!("{N}\n"));
    assert_eq!(cli(a, &["GET", "mass:4999"]), "value-4999\n");
}

#[test]
fn redis_cli_scan_with_pattern() {
    let (_tmp, srv) = start();
    let a = srv.addr;
    let mut input = Vec::new();
    for i in 0..300 {
        let k = if i % 3 == 0 {
            format!("user:{i}")
        } else {
            format!("other:{i}")
        };
        input.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n$1\r\nv\r\n", k.len()).as_bytes(),
        );
    }
    let port = a.port().to_string();
    let r = run(
        "redis-cli",
        &["-h", "127.0.0.1", "-p", &port, "--pipe"],
        &input,
        WAIT,
    );
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    // redis-cli iterates SCAN with its default COUNT: many cursor round trips for 300 keys.
    let out = cli(a, &["--scan", "--pattern", "user:*"]);
    let mut got: Vec<&str> = out.lines().collect();
    got.sort_unstable();
    got.dedup();
    let mut want: Vec<String> = (0..300)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("user:{i}"))
        .collect();
    want.sort_unstable();
    assert_eq!(got, want);
}

#[test]
fn redis_benchmark_completes_every_test() {
    let (_tmp, srv) = start();
    let port = srv.addr.port().to_string();
    let tests = [
        "set", "get", "incr", "lpush", "rpush", "lpop", "rpop", "sadd", "hset", "spop", "zadd",
        "zpopmin",
    ];
    let list = tests.join(",");
    let r = run(
        "redis-benchmark",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-q",
            "-n",
            "2000",
            "-c",
            "8",
            "-P",
            "16",
            "-t",
            &list,
        ],
        b"",
        Duration::from_secs(120),
    );
    assert_eq!(
        r.code,
        Some(0),
        "redis-benchmark failed: {}{}",
        r.stdout,
        r.stderr
    );
    // -q rewrites a progress line with \r; the final line of each test ends in "requests
    // per second".
    let finals: Vec<&str> = r
        .stdout
        .split(['\r', '\n'])
        .filter(|l| l.contains("requests per second"))
        .collect();
    for t in tests {
        let name = t.to_uppercase();
        assert!(
            finals
                .iter()
                .any(|l| l.starts_with(&format!("{name}:")) || l.starts_with(&format!("{name} "))),
            "no result line for {name} in:\n{}",
            r.stdout
        );
    }
    // Writes really happened: the benchmark's counter key exists.
    let n = cli(srv.addr, &["GET", "counter:__rand_int__"]);
    assert!(n.trim().parse::<u64>().is_ok_and(|n| n > 0), "{n:?}");
}
