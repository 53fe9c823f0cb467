//! The real binary: durability across SIGKILL on every engine, SAVE truncating the WAL,
//! SHUTDOWN and SIGTERM exiting cleanly.

mod common;

use std::path::Path;

use common::{connect, spawn_binary, wal_segments};
use redis::Commands;

const N: usize = 300;

fn write_keys(addr: std::net::SocketAddr, from: usize, to: usize) {
    let mut con = connect(addr);
    // Half one by one, half pipelined: both are acknowledged only once durable.
    let mid = from + (to - from) / 2;
    for i in from..mid {
        let _: () = con
            .set(format!("key:{i}"), format!("value:{i}"))
            .expect("set");
    }
    let mut p = redis::pipe();
    for i in mid..to {
        p.cmd("SET")
            .arg(format!("key:{i}"))
            .arg(format!("value:{i}"));
        p.cmd("RPUSH").arg("list").arg(i);
    }
    let _: () = p.query(&mut con).expect("pipeline");
}

fn check_keys(addr: std::net::SocketAddr, to: usize) {
    let mut con = connect(addr);
    for i in 0..to {
        let v: Option<String> = con.get(format!("key:{i}")).expect("get");
        assert_eq!(v.as_deref(), Some(format!("value:{i}").as_str()), "key:{i}");
    }
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).expect("dbsize");
    assert_eq!(n as usize, to + 1, "the keys and the list");
}

fn kill_and_recover(engine: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let srv = spawn_binary(&dir, &["--engine", engine, "--appendfsync", "always"]);
    write_keys(srv.addr, 0, N);
    srv.kill9();
    let srv = spawn_binary(&dir, &["--engine", engine, "--appendfsync", "always"]);
    check_keys(srv.addr, N);
    // Still writable after recovery, at the right index.
    write_keys(srv.addr, N, N + 10);
    srv.kill9();
    let srv = spawn_binary(&dir, &["--engine", engine, "--appendfsync", "always"]);
    check_keys(srv.addr, N + 10);
    let mut con = connect(srv.addr);
    let len: i64 = con.llen("list").expect("llen");
    assert_eq!(len as usize, (N - N / 2) + 5);
}

#[test]
fn sigkill_loses_nothing_acknowledged_memory() {
    kill_and_recover("memory");
}

#[test]
fn sigkill_loses_nothing_acknowledged_bitcask() {
    kill_and_recover("bitcask");
}

#[test]
fn sigkill_loses_nothing_acknowledged_lsm() {
    kill_and_recover("lsm");
}

fn first_index_of(seg: &Path) -> u64 {
    let name = seg.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    keel_server::wal::segment::parse_segment_name(name).expect("segment name")
}

#[test]
fn save_truncates_the_wal_and_restart_keeps_everything() {
    for engine in ["memory", "bitcask"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let srv = spawn_binary(&dir, &["--engine", engine, "--appendfsync", "always"]);
        write_keys(srv.addr, 0, N);
        let mut con = connect(srv.addr);
        let _: () = redis::cmd("SAVE").query(&mut con).expect("save");
        let segs = wal_segments(&dir);
        assert_eq!(
            segs.len(),
            1,
            "{engine}: only the fresh segment remains: {segs:?}"
        );
        assert!(
            first_index_of(&segs[0]) > N as u64,
            "{engine}: the remaining segment starts after the snapshot: {segs:?}"
        );
        // Writes after the snapshot come back from the WAL tail.
        write_keys(srv.addr, N, N + 20);
        srv.kill9();
        let srv = spawn_binary(&dir, &["--engine", engine]);
        check_keys(srv.addr, N + 20);
        let mut con = connect(srv.addr);
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(&mut con)
            .expect("info");
        let recovered = info
            .lines()
            .find_map(|l| l.strip_prefix("keel_recovered_entries:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .expect("keel_recovered_entries");
        // The tail is 10 single SETs and 10 pipelined SET+RPUSH pairs: 30 entries. The
        // memory engine replays exactly those; bitcask may hold some already.
        let tail = 30;
        if engine == "memory" {
            assert_eq!(
                recovered, tail,
                "only the tail after the snapshot is replayed"
            );
        } else {
            assert!(recovered <= tail, "{engine}: replayed {recovered} > {tail}");
        }
    }
}

#[test]
fn shutdown_command_and_sigterm_exit_zero() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut srv = spawn_binary(&dir, &[]);
    write_keys(srv.addr, 0, 50);
    let mut con = connect(srv.addr);
    // SHUTDOWN closes the connection without a reply.
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut con);
    let st = srv.wait_exit();
    assert!(st.success(), "SHUTDOWN exit status {st:?}");
    // everysec, but a clean shutdown commits and syncs the WAL.
    let mut srv = spawn_binary(&dir, &[]);
    check_keys(srv.addr, 50);
    let pid = rustix::process::Pid::from_raw(srv.child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("sigterm");
    let st = srv.wait_exit();
    assert!(st.success(), "SIGTERM exit status {st:?}");
    let lines = srv.drain_lines().join("\n");
    assert!(lines.contains("wal and storage closed"), "{lines}");
}

#[test]
fn maxmemory_with_lsm_is_refused_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keel-server"))
        .arg("--port")
        .arg("0")
        .arg("--dir")
        .arg(tmp.path())
        .args(["--engine", "lsm", "--maxmemory", "100mb"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("maxmemory") && err.contains("lsm"), "{err}");
}

#[test]
fn a_store_ahead_of_the_wal_starts_the_wal_after_it() {
    for engine in ["bitcask", "lsm"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let mut srv = spawn_binary(&dir, &["--engine", engine]);
        write_keys(srv.addr, 0, 40);
        let mut con = connect(srv.addr);
        let _ = redis::cmd("SHUTDOWN").query::<()>(&mut con);
        assert!(srv.wait_exit().success());
        // What an everysec crash can leave: the store holds entries the log lost (the
        // log keeps a prefix, so its next index would otherwise clash with the store's).
        let segs = wal_segments(&dir);
        let last = segs.last().expect("a segment");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(last)
            .expect("open");
        let len = f.metadata().expect("meta").len();
        assert!(len > 0);
        f.set_len(len / 2).expect("cut the log");
        let srv = spawn_binary(&dir, &["--engine", engine, "--appendfsync", "always"]);
        let log = srv.startup.join("\n");
        assert!(log.contains("starting the wal after it"), "{engine}: {log}");
        check_keys(srv.addr, 40);
        write_keys(srv.addr, 40, 60);
        srv.kill9();
        let srv = spawn_binary(&dir, &["--engine", engine]);
        check_keys(srv.addr, 60);
    }
}

#[test]
fn shutdown_save_snapshots_and_truncates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut srv = spawn_binary(&dir, &[]);
    write_keys(srv.addr, 0, N);
    let mut con = connect(srv.addr);
    let _ = redis::cmd("SHUTDOWN").arg("SAVE").query::<()>(&mut con);
    assert!(srv.wait_exit().success());
    let segs = wal_segments(&dir);
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert!(first_index_of(&segs[0]) > N as u64, "{segs:?}");
    let srv = spawn_binary(&dir, &[]);
    check_keys(srv.addr, N);
}
