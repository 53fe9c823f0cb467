//! INFO fields that need process figures (`/proc`), the per-command counters, or a
//! sample kept between calls: cpu, commandstats, errorstats, cluster, the memory and
//! stats additions, run id and ops/sec.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Instant;

use parking_lot::Mutex;

use super::info::{human, kv};
use crate::server::Shared;

/// Page size assumed for `/proc/self/statm` (Linux on the platforms keel targets).
const PAGE: u64 = 4096;
/// Clock ticks per second assumed for `/proc/self/stat` (USER_HZ is 100 on Linux).
const TICKS: f64 = 100.0;

/// A 40-hex-digit id fixed for the process (run_id, master_replid).
pub(super) fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        (0..40)
            .map(|_| {
                let d: u32 = rand::random::<u32>() % 16;
                char::from_digit(d, 16).unwrap_or('0')
            })
            .collect()
    })
}

/// The largest `used_memory` seen by INFO or MEMORY STATS so far, `used` included
/// (Redis samples it on every allocation; keel when asked).
pub(super) fn peak(used: u64) -> u64 {
    static PEAK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    PEAK.fetch_max(used, Ordering::Relaxed).max(used)
}

/// Resident set size in bytes, if `/proc` tells.
pub(super) fn rss() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(PAGE)
}

/// Total memory of the machine in bytes, if `/proc` tells.
fn total_system_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// (user, system) CPU seconds of the process from `/proc/self/stat`.
fn cpu_times() -> Option<(f64, f64)> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; the fields after its ')' are fixed.
    let after = text.get(text.rfind(')')? + 1..)?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 overall, 12 and 13 after the name.
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut / TICKS, st / TICKS))
}

pub(super) fn memory_more(used: u64, out: &mut String) {
    let peak = peak(used);
    let rss = rss().unwrap_or(0);
    kv(out, "used_memory_rss", rss);
    kv(out, "used_memory_rss_human", human(rss));
    kv(out, "used_memory_peak", peak);
    kv(out, "used_memory_peak_human", human(peak));
    kv(out, "used_memory_dataset", used);
    kv(out, "used_memory_startup", 0);
    let total = total_system_memory().unwrap_or(0);
    kv(out, "total_system_memory", total);
    kv(out, "total_system_memory_human", human(total));
    let ratio = if used > 0 {
        rss as f64 / used as f64
    } else {
        0.0
    };
    kv(out, "mem_fragmentation_ratio", format!("{ratio:.2}"));
    kv(
        out,
        "mem_fragmentation_bytes",
        i128::from(rss) - i128::from(used),
    );
}

/// Commands per second since the previous INFO (Redis samples on a timer instead).
pub(super) fn ops_per_sec(total: u64) -> u64 {
    static LAST: Mutex<Option<(Instant, u64, u64)>> = Mutex::new(None);
    let mut g = LAST.lock();
    let now = Instant::now();
    let rate = match *g {
        Some((t, n, r)) => {
            let secs = now.duration_since(t).as_secs_f64();
            if secs < 0.1 {
                *g = Some((t, n, r));
                return r;
            }
            (total.saturating_sub(n) as f64 / secs) as u64
        }
        None => 0,
    };
    *g = Some((now, total, rate));
    rate
}

pub(super) fn stats_more(sh: &Shared, out: &mut String) {
    kv(out, "instantaneous_input_kbps", "0.00");
    kv(out, "instantaneous_output_kbps", "0.00");
    kv(out, "expired_stale_perc", "0.00");
    kv(out, "expired_time_cap_reached_count", 0);
    kv(out, "evicted_clients", 0);
    kv(out, "total_eviction_exceeded_time", 0);
    kv(out, "keyspace_hits", 0);
    kv(out, "keyspace_misses", 0);
    kv(out, "pubsub_channels", sh.pubsub.channel_count());
    kv(out, "pubsub_patterns", sh.pubsub.numpat());
    kv(out, "pubsubshard_channels", sh.pubsub.shard_channel_count());
    kv(out, "latest_fork_usec", 0);
    kv(out, "total_forks", 0);
    kv(out, "migrate_cached_sockets", 0);
    let t = sh.tracking.stats();
    kv(out, "tracking_total_keys", t.keys);
    kv(out, "tracking_total_items", t.items);
    kv(out, "tracking_total_prefixes", t.prefixes);
    kv(out, "unexpected_error_replies", 0);
    kv(out, "total_error_replies", sh.cmd_stats.total_errors());
    kv(out, "dump_payload_sanitizations", 0);
    let d = &sh.acl.denials;
    kv(
        out,
        "acl_access_denied_auth",
        d.auth.load(Ordering::Relaxed),
    );
    kv(out, "acl_access_denied_cmd", d.cmd.load(Ordering::Relaxed));
    kv(out, "acl_access_denied_key", d.key.load(Ordering::Relaxed));
    kv(
        out,
        "acl_access_denied_channel",
        d.channel.load(Ordering::Relaxed),
    );
    kv(
        out,
        "keel_active_expire_enabled",
        u8::from(sh.coord.state().active_expire.load(Ordering::Relaxed)),
    );
}

pub(super) fn cpu(_sh: &Shared, out: &mut String) {
    let (user, sys) = cpu_times().unwrap_or((0.0, 0.0));
    kv(out, "used_cpu_sys", format!("{sys:.6}"));
    kv(out, "used_cpu_user", format!("{user:.6}"));
    kv(out, "used_cpu_sys_children", "0.000000");
    kv(out, "used_cpu_user_children", "0.000000");
}

pub(super) fn commandstats(sh: &Shared, out: &mut String) {
    for (name, calls, usec, rejected, failed) in sh.cmd_stats.snapshot() {
        let per = if calls > 0 {
            usec as f64 / calls as f64
        } else {
            0.0
        };
        kv(
            out,
            &format!("cmdstat_{name}"),
            format!(
                "calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={rejected},failed_calls={failed}"
            ),
        );
    }
}

pub(super) fn errorstats(sh: &Shared, out: &mut String) {
    for (code, n) in sh.cmd_stats.errors() {
        kv(out, &format!("errorstat_{code}"), format!("count={n}"));
    }
}

pub(super) fn cluster(_sh: &Shared, out: &mut String) {
    kv(out, "cluster_enabled", 0);
}
