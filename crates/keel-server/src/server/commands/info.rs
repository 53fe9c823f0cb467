//! INFO: Redis's section layout and field names, plus keel's own fields (prefixed
//! `keel_` or `wal_`) where Redis has no equivalent. New sections: add a writer function
//! and a line in [`SECTIONS`].

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use keel_engine::keys::{self, DATABASES};
use keel_engine::Reply;
use keel_storage::{Direction, ScanRange};

use super::connection::REDIS_COMPAT_VERSION;
use super::Outcome;
use crate::coordinator::state::unix_now_ms;
use crate::server::conn::Session;
use crate::server::Shared;

type Section = fn(&Shared, &mut String);

/// (name, in the default set, writer).
const SECTIONS: &[(&str, bool, Section)] = &[
    ("server", true, server),
    ("clients", true, clients),
    ("memory", true, memory),
    ("persistence", true, persistence),
    ("stats", true, stats),
    ("replication", true, replication),
    ("keyspace", true, keyspace),
];

pub(super) fn info(s: &mut Session, args: &[Bytes]) -> Outcome {
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "all" || w == "everything" || w == "default");
    let mut out = String::new();
    for (name, default, write) in SECTIONS {
        if (all && *default) || wanted.iter().any(|w| w == name) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            let mut title = name.to_string();
            if let Some(f) = title.get_mut(0..1) {
                f.make_ascii_uppercase();
            }
            let _ = write!(out, "# {title}\r\n");
            write(&s.shared, &mut out);
        }
    }
    Outcome::Reply(Reply::Bulk(Bytes::from(out)))
}

fn kv(out: &mut String, k: &str, v: impl std::fmt::Display) {
    let _ = write!(out, "{k}:{v}\r\n");
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.2}{}", UNITS[i])
    }
}

fn server(sh: &Shared, out: &mut String) {
    let c = sh.config.read();
    let up = sh.started.elapsed().as_secs();
    kv(out, "redis_version", REDIS_COMPAT_VERSION);
    kv(out, "keel_version", env!("CARGO_PKG_VERSION"));
    kv(out, "redis_mode", "standalone");
    kv(out, "os", std::env::consts::OS);
    kv(out, "arch_bits", usize::BITS);
    kv(out, "process_id", std::process::id());
    kv(out, "tcp_port", sh.local_addr.port());
    kv(out, "uptime_in_seconds", up);
    kv(out, "uptime_in_days", up / 86_400);
    kv(out, "storage_engine", c.engine);
    kv(out, "data_dir", c.dir.display());
}

fn clients(sh: &Shared, out: &mut String) {
    kv(out, "connected_clients", sh.clients.len());
    kv(out, "maxclients", sh.config.read().maxclients);
    kv(out, "blocked_clients", sh.blocked.blocked_clients());
}

fn memory(sh: &Shared, out: &mut String) {
    let used = sh.coord.engine().used_memory();
    let c = sh.config.read();
    kv(out, "used_memory", used);
    kv(out, "used_memory_human", human(used));
    kv(out, "maxmemory", c.maxmemory);
    kv(out, "maxmemory_human", human(c.maxmemory));
    kv(out, "maxmemory_policy", c.maxmemory_policy.as_str());
    kv(
        out,
        "keel_memory_note",
        "used_memory counts stored bytes plus a per-key estimate",
    );
}

fn persistence(sh: &Shared, out: &mut String) {
    let st = sh.coord.state();
    let wal = sh.coord.wal_stats();
    let ok = |b: bool| if b { "ok" } else { "err" };
    kv(out, "loading", 0);
    kv(out, "async_loading", 0);
    kv(
        out,
        "rdb_changes_since_last_save",
        st.changes_since_save.load(Ordering::Relaxed),
    );
    kv(
        out,
        "rdb_bgsave_in_progress",
        u8::from(st.snapshot_in_progress.load(Ordering::Relaxed)),
    );
    kv(
        out,
        "rdb_last_save_time",
        st.last_save_unix.load(Ordering::Relaxed),
    );
    kv(
        out,
        "rdb_last_bgsave_status",
        ok(st.last_save_ok.load(Ordering::Relaxed)),
    );
    kv(out, "rdb_saves", st.snapshots.load(Ordering::Relaxed));
    kv(out, "aof_enabled", 1);
    kv(out, "aof_rewrite_in_progress", 0);
    kv(out, "aof_last_write_status", ok(wal.failed.is_none()));
    kv(out, "appendfsync", sh.config.read().appendfsync);
    kv(out, "wal_bytes", wal.bytes_on_disk);
    kv(out, "wal_segments", wal.segments);
    kv(out, "wal_last_index", wal.last_index);
    kv(out, "wal_last_synced_index", wal.last_synced_index);
    kv(out, "wal_fsyncs", wal.fsyncs);
    kv(out, "wal_last_fsync_us", wal.last_fsync.as_micros());
    kv(
        out,
        "keel_applied_index",
        st.applied_index.load(Ordering::Relaxed),
    );
    kv(
        out,
        "keel_recovered_entries",
        st.recovered_entries.load(Ordering::Relaxed),
    );
    kv(out, "keel_state", st.lifecycle().as_str());
    kv(
        out,
        "keel_failure_reason",
        st.failure().unwrap_or_default().replace(['\r', '\n'], " "),
    );
}

fn stats(sh: &Shared, out: &mut String) {
    let s = &sh.stats;
    let st = sh.coord.state();
    let r = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    kv(out, "total_connections_received", r(&s.total_connections));
    kv(out, "total_commands_processed", r(&s.total_commands));
    kv(out, "total_net_input_bytes", r(&s.net_input_bytes));
    kv(out, "total_net_output_bytes", r(&s.net_output_bytes));
    kv(out, "rejected_connections", r(&s.rejected_connections));
    kv(out, "expired_keys", r(&st.expired_keys));
    kv(out, "evicted_keys", r(&st.evicted_keys));
}

fn replication(_sh: &Shared, out: &mut String) {
    kv(out, "role", "master");
    kv(out, "connected_slaves", 0);
}

/// Per database: live keys (as DBSIZE counts them) and keys with an expiry. Both are
/// scans (O(keys)); fine for INFO's use, noted for a later counter.
fn keyspace(sh: &Shared, out: &mut String) {
    let engine = sh.coord.engine();
    let now = unix_now_ms();
    let snap = engine.storage().snapshot();
    for db in 0..DATABASES {
        let n = match engine.read(db, now, &[Bytes::from_static(b"DBSIZE")]) {
            Ok(r) => match r.reply {
                Reply::Int(n) => n,
                _ => 0,
            },
            Err(_) => 0,
        };
        if n == 0 {
            continue;
        }
        let lo = keys::expiry_key(db, 0, b"");
        let hi = keys::expiry_key(db, u64::MAX, b"");
        let expires = snap
            .scan(ScanRange::new(lo.as_ref()..hi.as_ref()), Direction::Forward)
            .filter(|r| r.is_ok())
            .count();
        let _ = write!(out, "db{db}:keys={n},expires={expires},avg_ttl=0\r\n");
    }
}
