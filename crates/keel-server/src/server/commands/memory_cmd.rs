//! The process's side of MEMORY: STATS, DOCTOR, MALLOC-STATS and PURGE. MEMORY is one
//! entry of the engine's command table, whose handler answers USAGE and HELP from the
//! data; these four need figures of the process (resident size, the scripts' and
//! functions' caches, keys per database), which only the server has, so the connection
//! answers them before the engine would ([`answer`]). Queued in MULTI they reach the
//! engine, which does not know them.

use bytes::Bytes;
use keel_engine::keys::DATABASES;
use keel_engine::Reply;

use super::{eq_ci, info, info_extra};
use crate::server::Shared;

/// The figures STATS and DOCTOR report, in bytes unless named otherwise.
struct Figures {
    /// `used_memory`: stored bytes plus a per-key estimate (the engine's count).
    used: u64,
    peak: u64,
    rss: u64,
    scripts: u64,
    functions: u64,
    keys: u64,
}

fn figures(sh: &Shared) -> Figures {
    let engine = sh.coord.engine();
    let used = engine.used_memory();
    let scripts = engine.cached_scripts().map_or(0, |(_, bytes)| bytes);
    let functions = engine.function_libraries().map_or(0, |(_, bytes, _)| bytes);
    let keys = (0..DATABASES)
        .map(|db| u64::try_from(info::dbsize(sh, db)).unwrap_or(0))
        .sum();
    Figures {
        used,
        peak: info_extra::peak(used),
        rss: info_extra::rss().unwrap_or(0),
        scripts,
        functions,
        keys,
    }
}

/// The reply to MEMORY `args[1]` when it is one of the process's subcommands; None
/// leaves the call to the engine's MEMORY.
pub fn answer(sh: &Shared, args: &[Bytes]) -> Option<Reply> {
    let sub = args.get(1)?;
    let known = ["STATS", "DOCTOR", "MALLOC-STATS", "PURGE"]
        .into_iter()
        .find(|s| eq_ci(sub, s))?;
    if args.len() != 2 {
        return Some(Reply::err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try MEMORY HELP.",
            known.to_ascii_lowercase()
        )));
    }
    Some(match known {
        "STATS" => stats(&figures(sh)),
        "DOCTOR" => Reply::bulk(doctor(&figures(sh))),
        "MALLOC-STATS" => Reply::bulk("Stats not supported for the current allocator"),
        // keel's allocator returns freed pages to the system on its own.
        _ => Reply::Ok,
    })
}

/// MEMORY STATS: Redis 7.2's fields, in its order. What keel does not have (replicas,
/// cluster links, an AOF buffer) is 0; what it does not measure apart (the clients'
/// buffers, the keyspace's overhead beside the data) is counted in the dataset.
fn stats(f: &Figures) -> Reply {
    let overhead = f.scripts + f.functions;
    let dataset = f.used.saturating_sub(overhead);
    let pct = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 * 100.0 / whole as f64
        }
    };
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let int = |n: u64| Reply::Int(i64::try_from(n).unwrap_or(i64::MAX));
    // keel has no allocator figures apart from the resident size: the allocator's
    // overhead and the process's are one, reported twice as Redis's fields ask.
    let rss_over = i64::try_from(i128::from(f.rss) - i128::from(f.used)).unwrap_or(i64::MAX);
    let rss_ratio = ratio(f.rss, f.used);
    let fields: Vec<(&str, Reply)> = vec![
        ("peak.allocated", int(f.peak)),
        ("total.allocated", int(f.used)),
        ("startup.allocated", int(0)),
        ("replication.backlog", int(0)),
        ("clients.slaves", int(0)),
        ("clients.normal", int(0)),
        ("cluster.links", int(0)),
        ("aof.buffer", int(0)),
        ("lua.caches", int(f.scripts)),
        ("functions.caches", int(f.functions)),
        ("overhead.total", int(overhead)),
        ("keys.count", int(f.keys)),
        (
            "keys.bytes-per-key",
            int(f.used.checked_div(f.keys).unwrap_or(0)),
        ),
        ("dataset.bytes", int(dataset)),
        ("dataset.percentage", Reply::Double(pct(dataset, f.used))),
        ("peak.percentage", Reply::Double(pct(f.used, f.peak))),
        ("allocator.allocated", int(f.used)),
        ("allocator.active", int(f.used)),
        ("allocator.resident", int(f.rss)),
        ("allocator-fragmentation.ratio", Reply::Double(1.0)),
        ("allocator-fragmentation.bytes", int(0)),
        ("allocator.rss-ratio", Reply::Double(rss_ratio)),
        ("allocator.rss-bytes", Reply::Int(rss_over)),
        ("rss-overhead.ratio", Reply::Double(1.0)),
        ("rss-overhead.bytes", int(0)),
        ("fragmentation", Reply::Double(rss_ratio)),
        ("fragmentation.bytes", Reply::Int(rss_over)),
    ];
    Reply::Map(
        fields
            .into_iter()
            .map(|(k, v)| (Reply::bulk(k), v))
            .collect(),
    )
}

/// Resident size this far above `used_memory` is worth a word, past this much memory.
const DOCTOR_MIN_RSS: u64 = 64 << 20;
/// The ratio of resident size to `used_memory` DOCTOR remarks on.
const DOCTOR_RATIO: f64 = 1.4;

/// MEMORY DOCTOR: a short report in keel's words (Redis's is a letter to "Sam"), on the
/// figures STATS gives.
fn doctor(f: &Figures) -> String {
    let ratio = f.rss as f64 / f.used.max(1) as f64;
    let summary = format!(
        "used_memory {} bytes, resident {} bytes (ratio {ratio:.2}), peak {} bytes, {} keys.",
        f.used, f.rss, f.peak, f.keys
    );
    if f.used < 5 << 20 {
        return format!(
            "keel memory doctor: too little data for a diagnosis (under 5 MB). {summary}"
        );
    }
    let mut findings = Vec::new();
    if f.peak > f.used.saturating_mul(3) / 2 {
        findings.push(
            " * The peak is more than 1.5 times today's use: memory freed since then is \
             returned to the system as the allocator finds whole pages free, so watch the \
             resident size."
                .to_string(),
        );
    }
    if f.rss > DOCTOR_MIN_RSS && ratio > DOCTOR_RATIO {
        findings.push(format!(
            " * The resident size is {ratio:.2} times used_memory. used_memory counts \
             stored bytes plus a per-key estimate, so part of the difference is the \
             index's own structures; a ratio that keeps growing under a steady dataset \
             is fragmentation."
        ));
    }
    if findings.is_empty() {
        return format!("keel memory doctor: no memory issue found. {summary}");
    }
    format!("keel memory doctor: {summary}\n{}\n", findings.join("\n"))
}
