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
use super::info_extra;
use super::Outcome;
use crate::clock::unix_now_ms;
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
    ("storage", true, storage),
    ("cpu", true, info_extra::cpu),
    ("commandstats", false, info_extra::commandstats),
    ("errorstats", false, info_extra::errorstats),
    ("cluster", true, info_extra::cluster),
    ("keyspace", true, keyspace),
];

pub(super) fn info(s: &mut Session, args: &[Bytes]) -> Outcome {
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let every = wanted.iter().any(|w| w == "all" || w == "everything");
    let defaults = wanted.is_empty() || wanted.iter().any(|w| w == "default");
    let mut out = String::new();
    for (name, default, write) in SECTIONS {
        if every || (defaults && *default) || wanted.iter().any(|w| w == name) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            let mut title = name.to_string();
            if title == "cpu" {
                title.make_ascii_uppercase();
            } else if let Some(f) = title.get_mut(0..1) {
                f.make_ascii_uppercase();
            }
            let _ = write!(out, "# {title}\r\n");
            write(&s.shared, &mut out);
        }
    }
    Outcome::Reply(Reply::Bulk(Bytes::from(out)))
}

pub(super) fn kv(out: &mut String, k: &str, v: impl std::fmt::Display) {
    let _ = write!(out, "{k}:{v}\r\n");
}

pub(super) fn human(bytes: u64) -> String {
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
    kv(out, "redis_git_sha1", "00000000");
    kv(out, "redis_git_dirty", 0);
    kv(out, "redis_build_id", "0");
    kv(out, "multiplexing_api", "tokio");
    kv(out, "runtime_workers", sh.runtime_workers);
    kv(out, "atomicvar_api", "c11-builtin");
    kv(out, "run_id", info_extra::run_id());
    kv(out, "hz", 10);
    kv(out, "configured_hz", 10);
    kv(out, "lru_clock", crate::clock::unix_now() & 0xFF_FFFF);
    kv(
        out,
        "executable",
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
    kv(
        out,
        "config_file",
        c.config_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
    kv(out, "storage_engine", c.engine);
    kv(out, "data_dir", c.dir.display());
}

fn clients(sh: &Shared, out: &mut String) {
    kv(out, "connected_clients", sh.clients.len());
    kv(out, "maxclients", sh.config.read().maxclients);
    kv(out, "blocked_clients", sh.blocked.blocked_clients());
    kv(out, "cluster_connections", 0);
    kv(out, "client_recent_max_input_buffer", 0);
    kv(out, "client_recent_max_output_buffer", 0);
    kv(out, "tracking_clients", sh.tracking.stats().clients);
    kv(out, "pubsub_clients", 0);
    kv(out, "watching_clients", 0);
    kv(out, "clients_in_timeout_table", 0);
    kv(out, "total_watched_keys", 0);
    let (blocking_keys, on_nokey) = sh.blocked.blocking_keys();
    kv(out, "total_blocking_keys", blocking_keys);
    kv(out, "total_blocking_keys_on_nokey", on_nokey);
}

fn memory(sh: &Shared, out: &mut String) {
    let used = sh.coord.engine().used_memory();
    let c = sh.config.read();
    kv(out, "used_memory", used);
    kv(out, "used_memory_human", human(used));
    info_extra::memory_more(used, out);
    kv(out, "maxmemory", c.maxmemory);
    kv(out, "maxmemory_human", human(c.maxmemory));
    kv(out, "maxmemory_policy", c.maxmemory_policy.as_str());
    kv(out, "mem_allocator", crate::alloc::name());
    // Scans of the script and library records: INFO is not a hot path, and they are few.
    let (scripts, script_bytes) = sh.coord.engine().cached_scripts().unwrap_or((0, 0));
    kv(out, "number_of_cached_scripts", scripts);
    kv(out, "used_memory_scripts_eval", script_bytes);
    let (libraries, library_bytes, functions) =
        sh.coord.engine().function_libraries().unwrap_or((0, 0, 0));
    kv(out, "number_of_functions", functions);
    kv(out, "number_of_libraries", libraries);
    kv(out, "used_memory_functions", library_bytes);
    kv(out, "lazyfree_pending_objects", 0);
    kv(out, "lazyfreed_objects", 0);
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
    kv(out, "rdb_last_bgsave_time_sec", -1);
    kv(out, "rdb_current_bgsave_time_sec", -1);
    kv(out, "rdb_last_cow_size", 0);
    kv(out, "aof_enabled", u8::from(sh.config.read().appendonly));
    kv(out, "aof_rewrite_in_progress", 0);
    kv(out, "aof_rewrite_scheduled", 0);
    kv(out, "aof_last_rewrite_time_sec", -1);
    kv(out, "aof_current_rewrite_time_sec", -1);
    kv(out, "aof_last_bgrewrite_status", "ok");
    kv(out, "aof_rewrites", 0);
    kv(out, "module_fork_in_progress", 0);
    kv(out, "aof_last_write_status", ok(wal.failed.is_none()));
    kv(out, "appendfsync", sh.config.read().appendfsync);
    kv(out, "wal_bytes", wal.bytes_on_disk);
    kv(out, "wal_segments", wal.segments);
    kv(out, "wal_last_index", wal.last_index);
    kv(out, "wal_last_synced_index", wal.last_synced_index);
    kv(out, "wal_fsyncs", wal.fsyncs);
    kv(out, "wal_last_fsync_us", wal.last_fsync.as_micros());
    kv(out, "wal_writebacks", wal.writebacks);
    for (name, counter) in [
        ("keel_funnel_rounds", &st.funnel_rounds),
        ("keel_funnel_writes", &st.funnel_writes),
        ("keel_funnel_batches", &st.funnel_batches),
        ("keel_applied_index", &st.applied_index),
        ("keel_recovered_entries", &st.recovered_entries),
    ] {
        kv(out, name, counter.load(Ordering::Relaxed));
    }
    let base = st.snapshot_base_bytes.load(Ordering::Relaxed);
    kv(out, "keel_snapshot_base_bytes", base);
    kv(
        out,
        "keel_snapshot_trigger_wal_bytes",
        crate::coordinator::apply_loop::snapshot_trigger_bytes(&sh.config.read(), base),
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
    kv(out, "total_commands_processed", s.total_commands.get());
    kv(
        out,
        "instantaneous_ops_per_sec",
        info_extra::ops_per_sec(s.total_commands.get()),
    );
    kv(out, "total_net_input_bytes", s.net_input_bytes.get());
    kv(out, "total_net_output_bytes", s.net_output_bytes.get());
    kv(out, "rejected_connections", r(&s.rejected_connections));
    kv(out, "expired_keys", r(&st.expired_keys));
    kv(out, "evicted_keys", r(&st.evicted_keys));
    info_extra::stats_more(sh, out);
}

/// The storage engine's own figures (keel only; Redis has no such section).
fn storage(sh: &Shared, out: &mut String) {
    let s = sh.coord.engine().storage().stats();
    kv(out, "storage_engine", s.engine.as_str());
    kv(out, "storage_state", s.state.as_str());
    kv(out, "storage_last_seq", s.last_seq);
    kv(out, "storage_live_keys", s.live_keys);
    kv(out, "storage_live_bytes", s.live_bytes);
    kv(out, "storage_disk_bytes", s.disk_bytes);
    kv(
        out,
        "storage_garbage_ratio",
        format_args!("{:.4}", s.garbage_ratio),
    );
    kv(out, "storage_cache_hits", s.cache_hits);
    kv(out, "storage_cache_misses", s.cache_misses);
    kv(out, "storage_row_cache_hits", s.row_cache_hits);
    kv(out, "storage_row_cache_misses", s.row_cache_misses);
    kv(out, "storage_row_cache_bytes", s.row_cache_bytes);
    kv(out, "storage_open_snapshots", s.open_snapshots);
    kv(out, "storage_retained_versions", s.retained_versions);
    kv(out, "storage_torn_bytes_dropped", s.torn_bytes_dropped);
    kv(out, "storage_background_threads", s.background_threads);
    kv(out, "storage_write_buffer_bytes", s.write_buffer_bytes);
    kv(out, "storage_pending_flushes", s.pending_flushes);
    kv(out, "storage_tables", s.tables);
    kv(out, "storage_active_compactions", s.active_compactions);
    kv(
        out,
        "storage_compactions_completed",
        s.compactions_completed,
    );
    kv(out, "storage_writebacks", s.writebacks);
}

fn replication(sh: &Shared, out: &mut String) {
    kv(out, "role", "master");
    kv(out, "connected_slaves", 0);
    kv(out, "master_failover_state", "no-failover");
    kv(out, "master_replid", info_extra::run_id());
    kv(
        out,
        "master_replid2",
        "0000000000000000000000000000000000000000",
    );
    kv(
        out,
        "master_repl_offset",
        sh.coord.state().applied_index.load(Ordering::Relaxed),
    );
    kv(out, "second_repl_offset", -1);
    kv(out, "repl_backlog_active", 0);
    kv(out, "repl_backlog_size", 1_048_576);
    kv(out, "repl_backlog_first_byte_offset", 0);
    kv(out, "repl_backlog_histlen", 0);
}

/// Live keys of database `db`, as DBSIZE counts them (a scan: O(keys)).
pub(super) fn dbsize(sh: &Shared, db: u8) -> i64 {
    match sh
        .coord
        .engine()
        .read(db, unix_now_ms(), &[Bytes::from_static(b"DBSIZE")])
    {
        Ok(r) => match r.reply {
            Reply::Int(n) => n,
            _ => 0,
        },
        Err(_) => 0,
    }
}

/// Per database: live keys (as DBSIZE counts them) and keys with an expiry. Both are
/// scans (O(keys)); fine for INFO's use, noted for a later counter.
fn keyspace(sh: &Shared, out: &mut String) {
    let engine = sh.coord.engine();
    let snap = engine.storage().snapshot();
    for db in 0..DATABASES {
        let n = dbsize(sh, db);
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
