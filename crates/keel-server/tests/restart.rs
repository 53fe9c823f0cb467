//! The real binary: durability across SIGKILL on every engine, SAVE truncating the WAL,
//! SHUTDOWN and SIGTERM exiting cleanly, process settings made at start.

mod common;

use std::path::Path;

use common::{connect, persistence_field, spawn_binary, wal_segments, wal_segments_settled};
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

/// What a crash between a snapshot and the WAL thread's deletion of the segments it
/// covers leaves: those segments on disk. Recovery replays only past the store's
/// applied index, and the next snapshot's truncation deletes them.
#[test]
fn covered_segments_a_crash_left_undeleted_are_harmless() {
    for engine in ["memory", "bitcask"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let srv = spawn_binary(&dir, &["--engine", engine]);
        write_keys(srv.addr, 0, N);
        // Under everysec each round is written to the file: the copy holds all N keys.
        let covered = wal_segments(&dir);
        assert_eq!(covered.len(), 1, "{engine}: {covered:?}");
        let kept = tmp.path().join("covered.log");
        std::fs::copy(&covered[0], &kept).expect("copy the segment");
        let mut con = connect(srv.addr);
        let _: () = redis::cmd("SAVE").query(&mut con).expect("save");
        let segs = wal_segments_settled(&dir, 1);
        assert_eq!(segs.len(), 1, "{engine}: {segs:?}");
        assert_ne!(
            segs[0], covered[0],
            "{engine}: the covered segment is deleted"
        );
        std::fs::copy(&kept, &covered[0]).expect("put the segment back");
        write_keys(srv.addr, N, N + 20);
        srv.kill9();
        let srv = spawn_binary(&dir, &["--engine", engine]);
        check_keys(srv.addr, N + 20);
        let mut con = connect(srv.addr);
        if engine == "memory" {
            // 10 single SETs and 10 SET+RPUSH pairs after the snapshot, nothing before.
            assert_eq!(
                persistence_field(&mut con, "keel_recovered_entries"),
                "30",
                "only the tail after the snapshot is replayed"
            );
        }
        let _: () = redis::cmd("SAVE").query(&mut con).expect("save");
        let segs = wal_segments_settled(&dir, 1);
        assert_eq!(
            segs.len(),
            1,
            "{engine}: the next truncation deletes it: {segs:?}"
        );
    }
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
        let segs = wal_segments_settled(&dir, 1);
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

/// The `THP_enabled` field of a process's status (0 once the process turned THP off).
fn thp_enabled(pid: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no THP_enabled in /proc/{pid}/status"))
}

#[test]
fn transparent_huge_pages_are_off_unless_disable_thp_is_no() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let srv = spawn_binary(&tmp.path().join("a"), &[]);
    assert_eq!(thp_enabled(&srv.child.id().to_string()), "0");
    let mut con = connect(srv.addr);
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("disable-thp")
        .query(&mut con)
        .expect("config get");
    assert_eq!(got, ["disable-thp", "yes"]);
    let refused = redis::cmd("CONFIG")
        .arg("SET")
        .arg("disable-thp")
        .arg("no")
        .query::<()>(&mut con)
        .expect_err("immutable");
    assert!(refused.to_string().contains("immutable"), "{refused}");
    // Off, the server keeps what it inherited from this process.
    let srv = spawn_binary(&tmp.path().join("b"), &["--disable-thp", "no"]);
    assert_eq!(
        thp_enabled(&srv.child.id().to_string()),
        thp_enabled("self")
    );
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

/// Bytes in the WAL directory's segments.
fn wal_bytes(dir: &Path) -> u64 {
    wal_segments(dir)
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

#[test]
fn appendonly_no_persists_by_save_points_and_logs_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let no_log = ["--appendonly", "no", "--save", "1 1"];
    let srv = spawn_binary(&dir, &no_log);
    let mut con = connect(srv.addr);
    assert_eq!(persistence_field(&mut con, "aof_enabled"), "0");
    write_keys(srv.addr, 0, N);
    // "1 1": a snapshot once a change is more than a second past the last save.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while persistence_field(&mut con, "rdb_changes_since_last_save") != "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot at the save point"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // No more save points: what follows is acknowledged but never persisted.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("save")
        .arg("")
        .query(&mut con)
        .expect("config set save");
    let _: () = con.set("late", "lost").expect("set late");
    assert_eq!(wal_bytes(&dir), 0, "nothing may reach the WAL");
    srv.kill9();

    let srv = spawn_binary(&dir, &no_log);
    check_keys(srv.addr, N);
    let mut con = connect(srv.addr);
    let late: Option<String> = con.get("late").expect("get late");
    assert_eq!(
        late, None,
        "a write after the last snapshot survived without a log"
    );
    // SHUTDOWN without SAVE/NOSAVE snapshots when save points are set (Redis's rule)...
    let _: () = con.set("kept", "1").expect("set kept");
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut con);
    let mut srv = srv;
    assert!(srv.wait_exit().success());

    // ...and not when there are none.
    let srv = spawn_binary(&dir, &["--appendonly", "no", "--save", ""]);
    let mut con = connect(srv.addr);
    let kept: Option<String> = con.get("kept").expect("get kept");
    assert_eq!(
        kept.as_deref(),
        Some("1"),
        "SHUTDOWN with save points set saved"
    );
    let _: () = con.set("unsaved", "1").expect("set unsaved");
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut con);
    let mut srv = srv;
    assert!(srv.wait_exit().success());

    // Back to the log: the WAL starts after the store and keeps every write again.
    let srv = spawn_binary(&dir, &["--appendfsync", "always"]);
    let mut con = connect(srv.addr);
    let unsaved: Option<String> = con.get("unsaved").expect("get unsaved");
    assert_eq!(unsaved, None, "SHUTDOWN without save points saved");
    let _: () = con.set("logged", "1").expect("set logged");
    srv.kill9();
    let srv = spawn_binary(&dir, &["--appendfsync", "always"]);
    let mut con = connect(srv.addr);
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).expect("dbsize");
    assert_eq!(n as usize, N + 3, "the keys, the list, kept and logged");
    let logged: Option<String> = con.get("logged").expect("get logged");
    assert_eq!(logged.as_deref(), Some("1"));
    assert_eq!(persistence_field(&mut con, "aof_enabled"), "1");
}

#[test]
fn bgrewriteaof_compacts_the_wal_in_the_background() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let srv = spawn_binary(&dir, &["--appendfsync", "always"]);
    write_keys(srv.addr, 0, N);
    let mut con = connect(srv.addr);
    let started: String = redis::cmd("BGREWRITEAOF")
        .query(&mut con)
        .expect("bgrewriteaof");
    assert_eq!(started, "Background append only file rewriting started");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while persistence_field(&mut con, "rdb_saves") == "0"
        || persistence_field(&mut con, "rdb_bgsave_in_progress") != "0"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the rewrite never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let segs = wal_segments_settled(&dir, 1);
    assert_eq!(segs.len(), 1, "only the fresh segment remains: {segs:?}");
    assert!(first_index_of(&segs[0]) > N as u64, "{segs:?}");
    srv.kill9();
    let srv = spawn_binary(&dir, &[]);
    check_keys(srv.addr, N);
}

/// A background snapshot taken while increments go on holds exactly the entries it says
/// it holds: after a SIGKILL, replaying the log after it neither skips nor repeats one.
/// Restarted after each of several snapshots. A checkpoint without the index fails every
/// round; one whose index misses a write applied just as it starts reading fails only
/// when such a write comes (`tests/applied_index.rs` in keel-engine pins that down).
#[test]
fn increments_during_a_background_snapshot_are_replayed_exactly_once() {
    const ROUNDS: usize = 4;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let args = ["--appendfsync", "always"];
    let mut srv = spawn_binary(&dir, &args);
    let mut con = connect(srv.addr);
    // Enough keys that the checkpoint takes a while to scan.
    let mut p = redis::pipe();
    for i in 0..20_000 {
        p.cmd("SET").arg(format!("fill:{i}")).arg("x").ignore();
    }
    let _: () = p.query(&mut con).expect("fill");
    let mut total = 0;
    for round in 0..ROUNDS {
        total += increments_across_a_snapshot(srv.addr);
        srv.kill9();
        srv = spawn_binary(&dir, &args);
        let mut con = connect(srv.addr);
        let n: u64 = con.get("n").expect("get n");
        assert_eq!(
            n, total,
            "round {round}: every acknowledged increment, once"
        );
    }
}

/// Runs pipelined INCRs of `n` on several connections around one BGSAVE and returns
/// how many were acknowledged (all of them, by the time it returns).
fn increments_across_a_snapshot(addr: std::net::SocketAddr) -> u64 {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    const WRITERS: usize = 4;
    const PIPELINE: u64 = 8;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(15);
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (stop, acked) = (Arc::clone(&stop), Arc::clone(&acked));
            std::thread::spawn(move || {
                let mut con = connect(addr);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let mut p = redis::pipe();
                    for _ in 0..PIPELINE {
                        p.cmd("INCR").arg("n").ignore();
                    }
                    let _: () = p.query(&mut con).expect("incr");
                    acked.fetch_add(PIPELINE, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut con = connect(addr);
    // Writes are under way before the snapshot starts, and go on while it runs.
    while acked.load(Ordering::Relaxed) < 100 {
        assert!(Instant::now() < deadline, "no increments");
        std::thread::sleep(Duration::from_millis(5));
    }
    let saves = persistence_field(&mut con, "rdb_saves");
    let _: String = redis::cmd("BGSAVE").query(&mut con).expect("bgsave");
    let at_start = acked.load(Ordering::Relaxed);
    while persistence_field(&mut con, "rdb_saves") == saves
        || persistence_field(&mut con, "rdb_bgsave_in_progress") != "0"
    {
        assert!(Instant::now() < deadline, "the snapshot never finished");
        std::thread::sleep(Duration::from_millis(1));
    }
    let during = acked.load(Ordering::Relaxed) - at_start;
    assert_eq!(persistence_field(&mut con, "rdb_last_bgsave_status"), "ok");
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    assert!(during > 0, "no increment while the snapshot ran");
    acked.load(Ordering::Relaxed)
}
