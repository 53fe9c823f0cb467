//! Admin commands through real sockets: CLIENT, INFO, SLOWLOG, CONFIG, DEBUG, ROLE,
//! WAIT. Every wait is bounded by `WAIT`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::raw::resp;
use common::{InProc, WAIT};
use keel_server::Config;
use redis::Value;

fn q<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

fn q_err(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<Value>(con) {
        Err(e) => e.to_string(),
        Ok(v) => panic!("{args:?} succeeded with {v:?}"),
    }
}

fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> Option<String> {
    let text: String = q(con, &["INFO", section]);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
}

/// Polls `f` until it holds or `WAIT` passes.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn client_id_names_list_and_info() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let id: i64 = q(&mut con, &["CLIENT", "ID"]);
    assert!(id > 0);
    let e = q_err(&mut con, &["CLIENT", "SETNAME", "a b"]);
    assert!(
        e.contains("Client names cannot contain spaces, newlines or special characters."),
        "{e}"
    );
    let none: Option<String> = q(&mut con, &["CLIENT", "GETNAME"]);
    assert_eq!(none, None);
    let _: () = q(&mut con, &["CLIENT", "SETNAME", "worker-1"]);
    let name: String = q(&mut con, &["CLIENT", "GETNAME"]);
    assert_eq!(name, "worker-1");
    let _: () = q(&mut con, &["CLIENT", "SETINFO", "LIB-NAME", "keeltest"]);
    let mut other = srv.client();
    let other_id: i64 = q(&mut other, &["CLIENT", "ID"]);
    let list: String = q(&mut con, &["CLIENT", "LIST"]);
    let mine = list
        .lines()
        .find(|l| l.starts_with(&format!("id={id} ")))
        .unwrap_or_else(|| panic!("own line missing in {list}"));
    for f in [
        "addr=",
        " laddr=",
        " fd=",
        " name=worker-1 ",
        " age=",
        " idle=",
        " flags=N",
        " db=0",
        " sub=0",
        " psub=0",
        " multi=",
        " qbuf=",
        " omem=",
        " tot-mem=",
        " cmd=client",
        " user=default",
        " resp=",
        " lib-name=keeltest",
        " lib-ver=",
    ] {
        assert!(mine.contains(f), "{f} missing in {mine}");
    }
    assert!(list.contains(&format!("id={other_id} ")), "{list}");
    let only: String = q(&mut con, &["CLIENT", "LIST", "ID", &other_id.to_string()]);
    assert_eq!(only.lines().count(), 1, "{only}");
    assert!(only.starts_with(&format!("id={other_id} ")));
    let replicas: String = q(&mut con, &["CLIENT", "LIST", "TYPE", "replica"]);
    assert!(replicas.is_empty());
    let info: String = q(&mut con, &["CLIENT", "INFO"]);
    assert!(info.starts_with(&format!("id={id} addr=")), "{info}");
    assert!(info.contains("name=worker-1"));
    // Tracking shows in the flags (t, B for BCAST) and redir (Redis's CLIENT LIST).
    let _: () = q(&mut con, &["CLIENT", "TRACKING", "on", "BCAST"]);
    let mine: String = q(&mut con, &["CLIENT", "INFO"]);
    assert!(
        mine.contains(" flags=tB ") && mine.contains(" redir=0 "),
        "{mine}"
    );
    let _: () = q(&mut con, &["CLIENT", "TRACKING", "off"]);
    let mine: String = q(&mut con, &["CLIENT", "INFO"]);
    assert!(
        mine.contains(" flags=N ") && mine.contains(" redir=-1 "),
        "{mine}"
    );
    let e = q_err(&mut con, &["CLIENT", "NOSUCH"]);
    assert!(e.contains("Try CLIENT HELP"), "{e}");
    let help: Vec<String> = q(&mut con, &["CLIENT", "HELP"]);
    assert!(help.iter().any(|l| l.starts_with("PAUSE")));
}

#[test]
fn client_kill_closes_another_connection() {
    let srv = InProc::start(Config::default());
    let mut admin = srv.client();
    let mut victim = srv.client();
    let victim_id: i64 = q(&mut victim, &["CLIENT", "ID"]);
    let e = q_err(&mut admin, &["CLIENT", "KILL", "10.1.2.3:1"]);
    assert!(e.contains("No such client"), "{e}");
    let n: i64 = q(
        &mut admin,
        &["CLIENT", "KILL", "ID", &victim_id.to_string()],
    );
    assert_eq!(n, 1);
    // The kill reaches the victim's task asynchronously; it closes within WAIT.
    assert!(eventually(|| redis::cmd("PING")
        .query::<String>(&mut victim)
        .is_err()));
    assert!(eventually(|| {
        let list: String = q(&mut admin, &["CLIENT", "LIST"]);
        !list.contains(&format!("id={victim_id} "))
    }));
    // SKIPME defaults to yes: killing by our own address kills nobody.
    let info: String = q(&mut admin, &["CLIENT", "INFO"]);
    let addr = info
        .split(' ')
        .find_map(|f| f.strip_prefix("addr="))
        .expect("addr field")
        .to_string();
    let n: i64 = q(&mut admin, &["CLIENT", "KILL", "ADDR", &addr]);
    assert_eq!(n, 0);
    let pong: String = q(&mut admin, &["PING"]);
    assert_eq!(pong, "PONG");
}

#[test]
fn client_pause_write_holds_writes_but_not_reads() {
    let srv = InProc::start(Config::default());
    let mut admin = srv.client();
    let _: () = q(&mut admin, &["SET", "k", "before"]);
    let _: () = q(&mut admin, &["CLIENT", "PAUSE", "60000", "WRITE"]);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut writer = srv.client();
    let t = std::thread::spawn(move || {
        let r: redis::RedisResult<()> = redis::cmd("SET").arg("k").arg("after").query(&mut writer);
        let _ = tx.send(r.is_ok());
    });
    let mut reader = srv.client();
    // The writer's SET has arrived and waits (CLIENT LIST shows it with cmd=set).
    assert!(eventually(|| {
        let list: String = q(&mut reader, &["CLIENT", "LIST"]);
        list.lines().any(|l| l.contains(" cmd=set "))
    }));
    let v: String = q(&mut reader, &["GET", "k"]);
    assert_eq!(v, "before");
    // The pause lasts a minute; the write cannot have been applied yet.
    let v: String = q(&mut reader, &["GET", "k"]);
    assert_eq!(v, "before");
    assert!(
        rx.try_recv().is_err(),
        "the write went through a WRITE pause"
    );
    let _: () = q(&mut admin, &["CLIENT", "UNPAUSE"]);
    assert_eq!(rx.recv_timeout(WAIT), Ok(true));
    t.join().expect("writer thread");
    let v: String = q(&mut reader, &["GET", "k"]);
    assert_eq!(v, "after");
}

#[test]
fn client_reply_off_and_skip_drop_replies() {
    let srv = InProc::start(Config::default());
    let mut sock = TcpStream::connect(srv.addr).expect("connect");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut req = Vec::new();
    for a in [
        &["CLIENT", "REPLY", "SKIP"][..],
        &["SET", "a", "1"],
        &["ECHO", "one"],
        &["CLIENT", "REPLY", "OFF"],
        &["ECHO", "hidden"],
        &["SET", "b", "2"],
        &["CLIENT", "REPLY", "ON"],
        &["GET", "b"],
    ] {
        req.extend(resp(a));
    }
    sock.write_all(&req).expect("write");
    let want = b"$3\r\none\r\n+OK\r\n$1\r\n2\r\n";
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < want.len() {
        let n = sock.read(&mut buf).expect("read");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

/// A numeric field of INFO storage.
fn storage_figure(con: &mut redis::Connection, field: &str) -> u64 {
    info_field(con, "storage", field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO storage has no numeric {field}"))
}

/// Writes 2 MiB under `prefix` and waits (bounded) until INFO storage counts a writeback
/// of the engine's log, which a thread of its own starts past each MiB.
fn assert_writeback_starts(con: &mut redis::Connection, prefix: &str) {
    let value = "w".repeat(64 * 1024);
    for i in 0..32 {
        let _: () = q(con, &["SET", &format!("{prefix}:{i}"), &value]);
    }
    let deadline = Instant::now() + WAIT;
    while storage_figure(con, "storage_writebacks") == 0 {
        assert!(Instant::now() < deadline, "no writeback in INFO storage");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn info_storage_shows_the_engine_and_its_value_cache() {
    let srv = InProc::start(Config {
        engine: keel_storage::EngineKind::Bitcask,
        ..Config::default()
    });
    let mut con = srv.client();
    assert_eq!(
        info_field(&mut con, "storage", "storage_engine").as_deref(),
        Some("bitcask")
    );
    assert_eq!(
        info_field(&mut con, "storage", "storage_state").as_deref(),
        Some("ready")
    );
    let keys0 = storage_figure(&mut con, "storage_live_keys");
    let hits0 = storage_figure(&mut con, "storage_cache_hits");
    let _: () = q(&mut con, &["SET", "info:storage", "v"]);
    for _ in 0..3 {
        let v: String = q(&mut con, &["GET", "info:storage"]);
        assert_eq!(v, "v");
    }
    assert!(storage_figure(&mut con, "storage_live_keys") > keys0);
    assert!(storage_figure(&mut con, "storage_disk_bytes") > 0);
    // Three reads of one value: at least the later two come from the cache.
    assert!(storage_figure(&mut con, "storage_cache_hits") >= hits0 + 2);
    let ratio: f64 = info_field(&mut con, "storage", "storage_garbage_ratio")
        .and_then(|v| v.parse().ok())
        .expect("storage_garbage_ratio");
    assert!((0.0..=1.0).contains(&ratio), "garbage ratio {ratio}");
    assert_writeback_starts(&mut con, "bitcask:wb");
    let all: String = q(&mut con, &["INFO"]);
    assert!(
        all.contains("# Storage\r\n"),
        "storage is in the default set"
    );
}

#[test]
fn info_storage_counts_the_lsm_row_cache() {
    let srv = InProc::start(Config {
        engine: keel_storage::EngineKind::Lsm,
        ..Config::default()
    });
    let mut con = srv.client();
    assert_eq!(
        info_field(&mut con, "storage", "storage_engine").as_deref(),
        Some("lsm")
    );
    let hits0 = storage_figure(&mut con, "storage_row_cache_hits");
    let _: () = q(&mut con, &["SET", "rows:hot", "v"]);
    for _ in 0..3 {
        let v: String = q(&mut con, &["GET", "rows:hot"]);
        assert_eq!(v, "v");
    }
    // The SET stored the key's newest value in the row cache: the GETs are hits.
    assert!(storage_figure(&mut con, "storage_row_cache_hits") >= hits0 + 3);
    assert!(storage_figure(&mut con, "storage_row_cache_bytes") > 0);
    let misses0 = storage_figure(&mut con, "storage_row_cache_misses");
    let none: Option<String> = q(&mut con, &["GET", "rows:never-written"]);
    assert_eq!(none, None);
    assert!(storage_figure(&mut con, "storage_row_cache_misses") > misses0);
}

#[test]
fn info_storage_shows_the_lsm_background_work() {
    let srv = InProc::start(Config {
        engine: keel_storage::EngineKind::Lsm,
        ..Config::default()
    });
    let mut con = srv.client();
    let threads = storage_figure(&mut con, "storage_background_threads");
    assert!((2..=4).contains(&threads), "fjall workers: {threads}");
    let buffered0 = storage_figure(&mut con, "storage_write_buffer_bytes");
    let _: () = q(&mut con, &["SET", "lsm:buffered", &"v".repeat(4096)]);
    assert!(storage_figure(&mut con, "storage_write_buffer_bytes") >= buffered0 + 4096);
    for field in [
        "storage_pending_flushes",
        "storage_tables",
        "storage_active_compactions",
        "storage_compactions_completed",
    ] {
        storage_figure(&mut con, field);
    }
    assert_writeback_starts(&mut con, "lsm:wb");
    drop(srv);
    // Engines without background threads of their own say 0.
    let mem = InProc::start(Config::default());
    let mut con = mem.client();
    assert_eq!(storage_figure(&mut con, "storage_background_threads"), 0);
    assert_eq!(storage_figure(&mut con, "storage_write_buffer_bytes"), 0);
    assert_eq!(storage_figure(&mut con, "storage_writebacks"), 0);
}

#[test]
fn cache_size_zero_sends_every_bitcask_read_to_the_file() {
    let srv = InProc::start(Config {
        engine: keel_storage::EngineKind::Bitcask,
        cache_size: 0,
        ..Config::default()
    });
    let mut con = srv.client();
    let got: Vec<(String, String)> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("cache-size")
        .query(&mut con)
        .expect("CONFIG GET");
    assert_eq!(got, vec![("cache-size".to_string(), "0".to_string())]);
    let misses0 = storage_figure(&mut con, "storage_cache_misses");
    let _: () = q(&mut con, &["SET", "nocache", "v"]);
    for _ in 0..3 {
        let v: String = q(&mut con, &["GET", "nocache"]);
        assert_eq!(v, "v");
    }
    assert_eq!(storage_figure(&mut con, "storage_cache_hits"), 0);
    assert!(storage_figure(&mut con, "storage_cache_misses") >= misses0 + 3);
    let e = redis::cmd("CONFIG")
        .arg("SET")
        .arg("cache-size")
        .arg("1mb")
        .query::<()>(&mut con)
        .expect_err("cache-size is fixed at start");
    assert!(e.to_string().contains("immutable"), "{e}");
}

#[test]
fn info_sections_fields_and_command_counts() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let all: String = q(&mut con, &["INFO", "all"]);
    for f in [
        "# Server",
        "redis_version:",
        "redis_mode:standalone",
        "os:",
        "arch_bits:",
        "process_id:",
        "tcp_port:",
        "uptime_in_seconds:",
        "uptime_in_days:",
        "executable:",
        "config_file:",
        "# Clients",
        "connected_clients:",
        "blocked_clients:",
        "maxclients:",
        "# Memory",
        "used_memory:",
        "used_memory_human:",
        "used_memory_rss:",
        "used_memory_peak:",
        "maxmemory:",
        "maxmemory_human:",
        "maxmemory_policy:",
        "mem_fragmentation_ratio:",
        "# Persistence",
        "loading:0",
        "async_loading:0",
        "rdb_changes_since_last_save:",
        "rdb_bgsave_in_progress:",
        "rdb_last_save_time:",
        "rdb_last_bgsave_status:ok",
        "aof_enabled:1",
        "aof_rewrite_in_progress:0",
        "aof_last_write_status:ok",
        "wal_bytes:",
        "wal_writebacks:",
        "keel_state:",
        "# Stats",
        "total_connections_received:",
        "total_commands_processed:",
        "instantaneous_ops_per_sec:",
        "total_net_input_bytes:",
        "total_net_output_bytes:",
        "rejected_connections:",
        "expired_keys:",
        "evicted_keys:",
        "keyspace_hits:",
        "keyspace_misses:",
        "# Replication",
        "role:master",
        "connected_slaves:0",
        "master_replid:",
        "master_repl_offset:",
        "# CPU",
        "used_cpu_sys:",
        "used_cpu_user:",
        "# Commandstats",
        "# Errorstats",
        "# Keyspace",
    ] {
        assert!(all.contains(f), "{f} missing from INFO all");
    }
    let default: String = q(&mut con, &["INFO"]);
    assert!(!default.contains("# Commandstats"));
    assert!(default.contains("# CPU"));
    let pid: u32 = info_field(&mut con, "server", "process_id")
        .and_then(|v| v.parse().ok())
        .expect("process_id");
    assert_eq!(pid, std::process::id());
    let port: u16 = info_field(&mut con, "server", "tcp_port")
        .and_then(|v| v.parse().ok())
        .expect("tcp_port");
    assert_eq!(port, srv.addr.port());
    let rss: u64 = info_field(&mut con, "memory", "used_memory_rss")
        .and_then(|v| v.parse().ok())
        .expect("rss");
    assert!(rss > 0);

    for i in 0..7 {
        let _: String = q(&mut con, &["ECHO", &i.to_string()]);
    }
    let _ = q_err(&mut con, &["ECHO"]);
    let _ = q_err(&mut con, &["NOSUCHCOMMAND"]);
    let _: () = q(&mut con, &["SET", "s", "x"]);
    let _ = q_err(&mut con, &["LPUSH", "s", "y"]);
    let echo = info_field(&mut con, "commandstats", "cmdstat_echo").expect("cmdstat_echo");
    assert!(echo.starts_with("calls=7,usec="), "{echo}");
    assert!(echo.ends_with(",rejected_calls=1,failed_calls=0"), "{echo}");
    let lpush = info_field(&mut con, "commandstats", "cmdstat_lpush").expect("cmdstat_lpush");
    assert!(lpush.starts_with("calls=1,"), "{lpush}");
    assert!(lpush.ends_with("failed_calls=1"), "{lpush}");
    let wrongtype = info_field(&mut con, "errorstats", "errorstat_WRONGTYPE");
    assert_eq!(wrongtype.as_deref(), Some("count=1"));
    let errs: u64 = info_field(&mut con, "errorstats", "errorstat_ERR")
        .and_then(|v| v.strip_prefix("count=").and_then(|n| n.parse().ok()))
        .expect("errorstat_ERR");
    assert_eq!(errs, 2);
    let _: () = q(&mut con, &["CONFIG", "RESETSTAT"]);
    assert_eq!(info_field(&mut con, "commandstats", "cmdstat_echo"), None);
    assert_eq!(info_field(&mut con, "errorstats", "errorstat_ERR"), None);
    // Counting goes on from zero after a reset.
    let _: String = q(&mut con, &["ECHO", "again"]);
    let echo = info_field(&mut con, "commandstats", "cmdstat_echo").expect("cmdstat_echo");
    assert!(echo.starts_with("calls=1,usec="), "{echo}");
    assert!(echo.ends_with(",rejected_calls=0,failed_calls=0"), "{echo}");
}

#[test]
fn slowlog_records_with_threshold_zero() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let _: () = q(&mut con, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    let _: () = q(&mut con, &["SLOWLOG", "RESET"]);
    let _: String = q(&mut con, &["ECHO", "slow-one"]);
    // A write is logged too when every command is (its arguments are kept for it).
    let _: () = q(&mut con, &["SET", "slow-key", "v"]);
    let len: i64 = q(&mut con, &["SLOWLOG", "LEN"]);
    assert!(len >= 3, "{len}");
    let entries: Vec<Value> = q(&mut con, &["SLOWLOG", "GET", "-1"]);
    let has_set = entries.iter().any(|e| match e {
        Value::Array(f) => matches!(f.get(3), Some(Value::Array(a))
            if a.len() == 3
                && matches!(&a[1], Value::BulkString(b) if b == b"slow-key")),
        _ => false,
    });
    assert!(has_set, "{entries:?}");
    let entries: Vec<Value> = q(&mut con, &["SLOWLOG", "GET", "-1"]);
    let has_echo = entries.iter().any(|e| match e {
        Value::Array(f) => matches!(f.get(3), Some(Value::Array(a))
            if a.len() == 2
                && matches!(&a[1], Value::BulkString(b) if b == b"slow-one")),
        _ => false,
    });
    assert!(has_echo, "{entries:?}");
    let _: () = q(&mut con, &["CONFIG", "SET", "slowlog-max-len", "1"]);
    let len: i64 = q(&mut con, &["SLOWLOG", "LEN"]);
    assert_eq!(len, 1);
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "slowlog-log-slower-than", "-1"],
    );
    let _: () = q(&mut con, &["SLOWLOG", "RESET"]);
    let _: String = q(&mut con, &["ECHO", "fast"]);
    let len: i64 = q(&mut con, &["SLOWLOG", "LEN"]);
    assert_eq!(len, 0);
    let latest: Vec<Value> = q(&mut con, &["LATENCY", "LATEST"]);
    assert!(latest.is_empty());
}

#[test]
fn config_get_set_resetstat_rewrite() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let e = q_err(&mut con, &["CONFIG", "REWRITE"]);
    assert!(
        e.contains("The server is running without a config file"),
        "{e}"
    );
    drop(con);
    drop(srv);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("keel.toml");
    std::fs::write(&path, "maxmemory = 0\ntimeout = 0\n").expect("write config");
    let srv = InProc::start(Config {
        config_file: Some(path.clone()),
        ..Config::default()
    });
    let mut con = srv.client();
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory", "2mb", "timeout", "300"],
    );
    let got: Vec<String> = q(&mut con, &["CONFIG", "GET", "maxmemory", "time*"]);
    assert_eq!(got, vec!["maxmemory", "2097152", "timeout", "300"]);
    let e = q_err(&mut con, &["CONFIG", "SET", "port", "1"]);
    assert!(e.contains("can't set immutable config"), "{e}");
    // Save points change at runtime; the log is turned on or off only at start.
    let got: Vec<String> = q(&mut con, &["CONFIG", "GET", "save"]);
    assert_eq!(got, vec!["save", "3600 1 300 100 60 10000"]);
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "save", "900 1", "appendonly", "yes"],
    );
    let e = q_err(&mut con, &["CONFIG", "SET", "appendonly", "no"]);
    assert!(e.contains("only at start"), "{e}");
    let e = q_err(&mut con, &["CONFIG", "SET", "save", "900"]);
    assert!(e.contains("Invalid save parameters"), "{e}");
    let got: Vec<String> = q(&mut con, &["CONFIG", "GET", "appendonly", "save"]);
    assert_eq!(got, vec!["appendonly", "yes", "save", "900 1"]);
    let _: () = q(&mut con, &["CONFIG", "REWRITE"]);
    let text = std::fs::read_to_string(&path).expect("read rewritten");
    let table: toml::Table = text.parse().expect("valid toml");
    assert_eq!(
        table.get("maxmemory").and_then(|v| v.as_integer()),
        Some(2_097_152)
    );
    assert_eq!(table.get("timeout").and_then(|v| v.as_integer()), Some(300));
    let file: keel_server::config::FileConfig = toml::from_str(&text).expect("keel reads it");
    assert_eq!(file.timeout, Some(300));
    assert_eq!(file.save.as_deref(), Some("900 1"));
    assert_eq!(file.appendonly.as_deref(), Some("yes"));
    let _: () = q(&mut con, &["CONFIG", "RESETSTAT"]);
    let cmds: u64 = info_field(&mut con, "stats", "total_commands_processed")
        .and_then(|v| v.parse().ok())
        .expect("total_commands_processed");
    assert!(cmds <= 2, "{cmds}");
}

#[test]
fn debug_role_wait_and_active_expire_switch() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let _: () = q(&mut con, &["DEBUG", "SLEEP", "0"]);
    let role: Value = q(&mut con, &["ROLE"]);
    assert_eq!(
        role,
        Value::Array(vec![
            Value::BulkString(b"master".to_vec()),
            Value::Int(0),
            Value::Array(vec![]),
        ])
    );
    let acked: i64 = q(&mut con, &["WAIT", "1", "0"]);
    assert_eq!(acked, 0);
    let _: () = q(&mut con, &["READONLY"]);
    let _: () = q(&mut con, &["READWRITE"]);
    let _: () = q(&mut con, &["SET", "obj", "12345"]);
    let line: String = q(&mut con, &["DEBUG", "OBJECT", "obj"]);
    assert!(line.starts_with("Value at:"), "{line}");
    assert!(line.contains(" encoding:int "), "{line}");
    let e = q_err(&mut con, &["DEBUG", "OBJECT", "nosuch"]);
    assert!(e.contains("no such key"), "{e}");

    let expired = |con: &mut redis::Connection| -> u64 {
        info_field(con, "stats", "expired_keys")
            .and_then(|v| v.parse().ok())
            .expect("expired_keys")
    };
    let _: () = q(&mut con, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    let _: () = q(&mut con, &["SET", "t", "v", "PX", "1"]);
    // Several expiry periods (100 ms each) pass; with the cycle off nothing expires.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(expired(&mut con), 0);
    let gone: Option<String> = q(&mut con, &["GET", "t"]);
    assert_eq!(gone, None);
    assert!(eventually(|| expired(&mut con) == 1));
    let _: () = q(&mut con, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
    let _: () = q(&mut con, &["SET", "t2", "v", "PX", "1"]);
    assert!(eventually(|| expired(&mut con) == 2));
    let _: () = q(&mut con, &["DEBUG", "RELOAD"]);
    let _: () = q(&mut con, &["FUNCTION", "FLUSH"]);
    let _: () = q(&mut con, &["SCRIPT", "FLUSH"]);
}

#[test]
fn object_freq_and_idletime_follow_the_maxmemory_policy() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let _: () = q(&mut con, &["SET", "k", "v"]);
    let _: String = q(&mut con, &["GET", "k"]);
    let idle: i64 = q(&mut con, &["OBJECT", "IDLETIME", "k"]);
    assert!((0..=1).contains(&idle), "{idle}");
    let e = q_err(&mut con, &["OBJECT", "FREQ", "k"]);
    assert!(e.contains("An LFU maxmemory policy is not selected"), "{e}");

    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
    );
    for _ in 0..50 {
        let _: String = q(&mut con, &["GET", "k"]);
    }
    let freq: i64 = q(&mut con, &["OBJECT", "FREQ", "k"]);
    assert!(
        freq > 0,
        "GETs under an LFU policy raise the counter: {freq}"
    );
    let e = q_err(&mut con, &["OBJECT", "IDLETIME", "k"]);
    assert!(e.contains("An LFU maxmemory policy is selected"), "{e}");

    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    );
    let idle: i64 = q(&mut con, &["OBJECT", "IDLETIME", "k"]);
    assert!((0..=1).contains(&idle), "{idle}");
    drop(con);
    drop(srv);

    // The policy given at start counts too.
    let srv = InProc::start(Config {
        maxmemory_policy: keel_engine::eviction::EvictionPolicy::VolatileLfu,
        ..Config::default()
    });
    let mut con = srv.client();
    let _: () = q(&mut con, &["SET", "k", "v"]);
    let freq: i64 = q(&mut con, &["OBJECT", "FREQ", "k"]);
    assert!(freq >= 5, "{freq}");
}

/// Every argument of every SLOWLOG entry, as text.
fn slowlog_args(con: &mut redis::Connection) -> Vec<Vec<String>> {
    let entries: Vec<Value> = q(con, &["SLOWLOG", "GET", "-1"]);
    entries
        .iter()
        .filter_map(|e| match e {
            Value::Array(f) => match f.get(3) {
                Some(Value::Array(a)) => Some(
                    a.iter()
                        .map(|v| match v {
                            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                            other => format!("{other:?}"),
                        })
                        .collect(),
                ),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn passwords_stay_out_of_slowlog_and_monitor_and_admin_commands_out_of_monitor() {
    let srv = InProc::start(Config::default());
    let mut mon = common::raw::Raw::connect(&srv);
    assert_eq!(mon.call(&["MONITOR"]), common::raw::V::Simple("OK".into()));
    let mut con = srv.client();
    let _: () = q(&mut con, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    let _: () = q(&mut con, &["SLOWLOG", "RESET"]);
    // Refused or not, each is logged with its arguments.
    q_err(&mut con, &["AUTH", "secret-1"]);
    let _: () = q(
        &mut con,
        &["ACL", "SETUSER", "bob", "on", ">secret-2", "~*", "+@all"],
    );
    q_err(&mut con, &["CONFIG", "SET", "masterauth", "secret-3"]);
    let _: Value = q(&mut con, &["HELLO", "2", "AUTH", "bob", "secret-2"]);
    let _: String = q(&mut con, &["ECHO", "the-end"]);
    let logged = slowlog_args(&mut con);
    let flat = logged.concat().join(" ");
    assert!(
        !flat.contains("secret-"),
        "SLOWLOG shows a password: {logged:?}"
    );
    for expected in [
        vec!["AUTH", "(redacted)"],
        vec![
            "ACL",
            "SETUSER",
            "(redacted)",
            "(redacted)",
            "(redacted)",
            "(redacted)",
            "(redacted)",
        ],
        vec!["CONFIG", "SET", "masterauth", "(redacted)"],
        vec!["HELLO", "2", "AUTH", "(redacted)", "(redacted)"],
    ] {
        assert!(
            logged.iter().any(|a| *a == expected),
            "no SLOWLOG entry {expected:?} in {logged:?}"
        );
    }
    // MONITOR: up to the ECHO, which comes last.
    let mut lines = Vec::new();
    for _ in 0..50 {
        let l = mon.line();
        let end = l.contains("\"the-end\"");
        lines.push(l);
        if end {
            break;
        }
    }
    assert!(
        lines.last().is_some_and(|l| l.contains("the-end")),
        "{lines:?}"
    );
    let all = lines.join("\n");
    assert!(!all.contains("secret-"), "MONITOR shows a password: {all}");
    // Administrative commands are not shown at all (as in Redis), the others redacted.
    assert!(!all.to_ascii_lowercase().contains("\"setuser\""), "{all}");
    assert!(!all.to_ascii_lowercase().contains("\"config\""), "{all}");
    assert!(all.contains("\"AUTH\" \"(redacted)\""), "{all}");
    assert!(
        all.contains("\"HELLO\" \"2\" \"AUTH\" \"(redacted)\" \"(redacted)\""),
        "{all}"
    );
}

#[test]
fn memory_stats_and_doctor_report_the_process_and_usage_still_reads_the_key() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    for i in 0..30 {
        let _: () = q(&mut con, &["SET", &format!("k{i}"), "some value"]);
    }
    let _: () = q(&mut con, &["SELECT", "3"]);
    let _: () = q(&mut con, &["SET", "other", "v"]);
    let stats: Vec<Value> = q(&mut con, &["MEMORY", "STATS"]);
    let field = |name: &str| -> i64 {
        let at = stats
            .iter()
            .position(|v| matches!(v, Value::BulkString(b) if b == name.as_bytes()))
            .unwrap_or_else(|| panic!("no {name} in {stats:?}"));
        match &stats[at + 1] {
            Value::Int(n) => *n,
            other => panic!("{name}: {other:?}"),
        }
    };
    assert_eq!(field("keys.count"), 31, "keys of every database");
    let total = field("total.allocated");
    assert!(total > 0 && field("peak.allocated") >= total, "{stats:?}");
    assert!(field("allocator.resident") > 0, "{stats:?}");
    assert_eq!(field("keys.bytes-per-key"), total / 31);
    let doctor: String = q(&mut con, &["MEMORY", "DOCTOR"]);
    assert!(
        doctor.starts_with("keel memory doctor:") && doctor.contains("31 keys"),
        "{doctor}"
    );
    let e = q_err(&mut con, &["MEMORY", "STATS", "extra"]);
    assert!(
        e.ends_with(
            "unknown subcommand or wrong number of arguments for 'stats'. Try MEMORY HELP."
        ),
        "{e}"
    );
    let _: () = q(&mut con, &["MEMORY", "PURGE"]);
    let usage: i64 = q(&mut con, &["MEMORY", "USAGE", "other"]);
    assert!(usage > 0, "{usage}");
}
