//! CONFIG GET / SET / RESETSTAT / REWRITE.
//!
//! GET matches glob patterns against every known name. SET changes the settings that
//! can change at runtime (maxmemory, maxmemory-policy, maxmemory-samples, maxclients,
//! timeout, requirepass, save); the rest are immutable (`appendonly` accepts its current
//! value, as suites set it, and refuses a change: the log is turned on or off at start).
//! A few Redis settings that test suites commonly set are accepted and ignored (kept so
//! GET reports what was set).
//!
//! Runtime keys owned by the admin commands (kept in [`crate::server::slowlog`]):
//! slowlog-log-slower-than, slowlog-max-len, latency-monitor-threshold; and
//! tracking-table-max-keys, kept in [`crate::server::tracking`].
//! `notify-keyspace-events` is only stored and returned here (in [`IGNORED`]).

use std::sync::atomic::Ordering;

use bytes::Bytes;
use keel_engine::glob::glob_match;
use keel_engine::Reply;

use super::{eq_ci, err, Outcome};
use crate::config::{
    parse_policy, parse_save_points, parse_size, parse_yes_no, render_save_points, Config,
};
use crate::server::conn::Session;

/// Redis settings accepted by CONFIG SET without effect in keel, with their defaults.
const IGNORED: &[(&str, &str)] = &[
    ("hz", "10"),
    ("activedefrag", "no"),
    ("lazyfree-lazy-eviction", "no"),
    ("lazyfree-lazy-expire", "no"),
    ("lazyfree-lazy-server-del", "no"),
    ("lazyfree-lazy-user-del", "no"),
    ("lazyfree-lazy-user-flush", "no"),
    ("latency-tracking", "yes"),
    ("list-max-listpack-size", "-2"),
    ("list-max-ziplist-size", "-2"),
    ("list-compress-depth", "0"),
    ("hash-max-listpack-entries", "128"),
    ("hash-max-ziplist-entries", "128"),
    ("hash-max-listpack-value", "64"),
    ("hash-max-ziplist-value", "64"),
    ("set-max-intset-entries", "512"),
    ("set-max-listpack-entries", "128"),
    ("set-max-listpack-value", "64"),
    ("zset-max-listpack-entries", "128"),
    ("zset-max-ziplist-entries", "128"),
    ("zset-max-listpack-value", "64"),
    ("zset-max-ziplist-value", "64"),
    // Streams have no nodes in keel: `~` trims by runs of 100 entries whatever these say
    // (ARCHITECTURE.md, Streams).
    ("stream-node-max-entries", "100"),
    ("stream-node-max-bytes", "4096"),
    ("lua-time-limit", "5000"),
    ("busy-reply-threshold", "5000"),
    ("lfu-log-factor", "10"),
    ("lfu-decay-time", "1"),
    ("databases", "16"),
];

/// Redis's rendering of a boolean setting.
fn yes_no(v: bool) -> &'static str {
    if v {
        "yes"
    } else {
        "no"
    }
}

/// Every (name, value) keel reports.
fn current(s: &Session) -> Vec<(String, String)> {
    let c: Config = s.shared.config.read().clone();
    let mut v: Vec<(String, String)> = vec![
        ("port".into(), c.port.to_string()),
        ("bind".into(), c.bind.to_string()),
        ("dir".into(), c.dir.display().to_string()),
        ("engine".into(), c.engine.to_string()),
        ("appendfsync".into(), c.appendfsync.to_string()),
        ("appendonly".into(), yes_no(c.appendonly).into()),
        ("save".into(), render_save_points(&c.save_points)),
        (
            "requirepass".into(),
            c.requirepass.clone().unwrap_or_default(),
        ),
        (
            "aclfile".into(),
            c.aclfile
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        ("acllog-max-len".into(), c.acllog_max_len.to_string()),
        ("maxmemory".into(), c.maxmemory.to_string()),
        (
            "maxmemory-policy".into(),
            c.maxmemory_policy.as_str().into(),
        ),
        ("maxmemory-samples".into(), c.maxmemory_samples.to_string()),
        ("maxclients".into(), c.maxclients.to_string()),
        ("threads".into(), c.threads.to_string()),
        ("io-threads".into(), c.io_threads.to_string()),
        ("timeout".into(), c.timeout.to_string()),
        (
            "proto-max-bulk-len".into(),
            c.proto_max_bulk_len.to_string(),
        ),
        ("disable-thp".into(), yes_no(c.disable_thp).into()),
        ("cache-size".into(), c.cache_size.to_string()),
        (
            "client-query-buffer-limit".into(),
            c.client_query_buffer_limit.to_string(),
        ),
        (
            "auto-snapshot-wal-bytes".into(),
            c.auto_snapshot_wal_bytes.to_string(),
        ),
        (
            "auto-snapshot-wal-percentage".into(),
            c.auto_snapshot_wal_percentage.to_string(),
        ),
        // Redis's name for the same rule (its log rewrite is keel's snapshot).
        (
            "auto-aof-rewrite-percentage".into(),
            c.auto_snapshot_wal_percentage.to_string(),
        ),
        ("loglevel".into(), c.loglevel.clone()),
        (
            "notify-keyspace-events".into(),
            crate::server::pubsub::notify::render(c.notify_keyspace_events),
        ),
        (
            "client-output-buffer-limit".into(),
            format!(
                "normal 0 0 0 slave 268435456 67108864 60 pubsub {}",
                c.client_output_buffer_limit_pubsub.render()
            ),
        ),
    ];
    let log = &s.shared.slowlog;
    v.push((
        "slowlog-log-slower-than".into(),
        log.slower_than.load(Ordering::Relaxed).to_string(),
    ));
    v.push((
        "slowlog-max-len".into(),
        log.max_len.load(Ordering::Relaxed).to_string(),
    ));
    v.push((
        "latency-monitor-threshold".into(),
        log.latency_threshold.load(Ordering::Relaxed).to_string(),
    ));
    v.push((
        "tracking-table-max-keys".into(),
        s.shared.tracking.max_keys().to_string(),
    ));
    let set = s.shared.ignored_config.lock();
    for (k, d) in IGNORED {
        let val = set.get(*k).cloned().unwrap_or_else(|| (*d).to_string());
        v.push(((*k).to_string(), val));
    }
    v
}

pub(super) fn config(s: &mut Session, args: &[Bytes]) -> Outcome {
    let sub = &args[1];
    let rest = &args[2..];
    if eq_ci(sub, "GET") && !rest.is_empty() {
        let all = current(s);
        let mut out = Vec::new();
        for (k, v) in &all {
            if rest
                .iter()
                .any(|p| glob_match(&p.to_ascii_lowercase(), k.as_bytes()))
            {
                out.push((Reply::bulk(k), Reply::bulk(v)));
            }
        }
        return Outcome::Reply(Reply::Map(out));
    }
    if eq_ci(sub, "SET") && !rest.is_empty() && rest.len().is_multiple_of(2) {
        return set(s, rest);
    }
    if eq_ci(sub, "RESETSTAT") && rest.is_empty() {
        s.shared.stats.reset();
        s.shared.cmd_stats.reset();
        return Outcome::Reply(Reply::Ok);
    }
    if eq_ci(sub, "REWRITE") && rest.is_empty() {
        return rewrite(s);
    }
    err(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.",
        String::from_utf8_lossy(sub)
    ))
}

/// Redis's "<class> <hard> <soft> <secs> ..." value: the pubsub class's limit if given
/// (the normal and replica classes are accepted and have no effect in keel).
fn pubsub_limit(value: &str) -> Result<Option<crate::config::OutputLimit>, String> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    if parts.is_empty() || !parts.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    let mut found = None;
    for group in parts.chunks(4) {
        let class = group[0].to_ascii_lowercase();
        if !matches!(class.as_str(), "normal" | "slave" | "replica" | "pubsub") {
            return Err("Invalid client class specified in buffer limit configuration.".into());
        }
        let limit = crate::config::OutputLimit::parse(&group[1..].join(" ")).map_err(|_| {
            "Error in hard, soft or soft_seconds setting in buffer limit configuration."
        })?;
        if class == "pubsub" {
            found = Some(limit);
        }
    }
    Ok(found)
}

/// Applies every pair or none (Redis's CONFIG SET is atomic too).
fn set(s: &mut Session, pairs: &[Bytes]) -> Outcome {
    let mut next = s.shared.config.read().clone();
    let mut ignored = Vec::new();
    let mut slow_than = None;
    let mut slow_len = None;
    let mut lat = None;
    let mut tracking_max = None;
    let mut new_pass: Option<Option<String>> = None;
    for pair in pairs.chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        let value = String::from_utf8_lossy(&pair[1]).into_owned();
        let bad = |why: &str| {
            err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
            ))
        };
        match name.as_str() {
            "maxmemory" => match parse_size(&value) {
                Ok(n) => next.maxmemory = n,
                Err(e) => return bad(&e),
            },
            "maxmemory-policy" => match parse_policy(&value) {
                Ok(p) => next.maxmemory_policy = p,
                Err(_) => return bad("argument(s) must be one of the following: volatile-lru, allkeys-lru, volatile-lfu, allkeys-lfu, volatile-random, allkeys-random, volatile-ttl, noeviction"),
            },
            "maxmemory-samples" => match value.parse::<usize>() {
                Ok(n) if n > 0 => next.maxmemory_samples = n,
                _ => return bad("argument must be between 1 and 64 inclusive"),
            },
            "maxclients" => match value.parse::<usize>() {
                Ok(n) if n > 0 => next.maxclients = n,
                _ => return bad("argument must be a positive integer"),
            },
            "timeout" => match value.parse::<u64>() {
                Ok(n) => next.timeout = n,
                Err(_) => return bad("argument couldn't be parsed into an integer"),
            },
            "auto-snapshot-wal-percentage" | "auto-aof-rewrite-percentage" => {
                match value.parse::<u64>() {
                    Ok(n) => next.auto_snapshot_wal_percentage = n,
                    Err(_) => return bad("argument couldn't be parsed into an integer"),
                }
            }
            "slowlog-log-slower-than" => match value.parse::<i64>() {
                Ok(n) => slow_than = Some(n),
                Err(_) => return bad("argument couldn't be parsed into an integer"),
            },
            "slowlog-max-len" => match value.parse::<u64>() {
                Ok(n) if i64::try_from(n).is_ok() => slow_len = Some(n),
                _ => return bad("argument must be between 0 and 9223372036854775807 inclusive"),
            },
            "latency-monitor-threshold" => match value.parse::<u64>() {
                Ok(n) if i64::try_from(n).is_ok() => lat = Some(n),
                _ => return bad("argument must be between 0 and 9223372036854775807 inclusive"),
            },
            "tracking-table-max-keys" => match value.parse::<u64>() {
                Ok(n) if i64::try_from(n).is_ok() => tracking_max = Some(n),
                _ => return bad("argument must be between 0 and 9223372036854775807 inclusive"),
            },
            "requirepass" => {
                next.requirepass = (!value.is_empty()).then_some(value);
                new_pass = Some(next.requirepass.clone());
            }
            "acllog-max-len" => match value.parse::<usize>() {
                Ok(n) if i64::try_from(n).is_ok() => next.acllog_max_len = n,
                _ => return bad("argument must be between 0 and 9223372036854775807 inclusive"),
            },
            "notify-keyspace-events" => match crate::server::pubsub::notify::parse(&value) {
                Some(f) => next.notify_keyspace_events = f,
                None => return bad("Invalid event class character. Use 'Ag$lshzxeKEtmdn'."),
            },
            "save" => match parse_save_points(&value) {
                Ok(p) => next.save_points = p,
                Err(_) => return bad("Invalid save parameters"),
            },
            "appendonly" => match parse_yes_no(&value) {
                Ok(v) if v == next.appendonly => {}
                Ok(_) => {
                    return bad("keel turns its write log on or off only at start (--appendonly)")
                }
                Err(_) => return bad("argument must be 'yes' or 'no'"),
            },
            "client-output-buffer-limit" => match pubsub_limit(&value) {
                Ok(Some(l)) => next.client_output_buffer_limit_pubsub = l,
                Ok(None) => {}
                Err(e) => return bad(&e),
            },
            "port" | "bind" | "dir" | "engine" | "appendfsync" | "proto-max-bulk-len"
            | "cache-size" | "disable-thp" | "client-query-buffer-limit"
            | "auto-snapshot-wal-bytes" | "loglevel" | "io-threads" | "threads" | "aclfile" => {
                return bad("can't set immutable config")
            }
            n if IGNORED.iter().any(|(k, _)| *k == n) => ignored.push((name, value)),
            _ => {
                return err(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                ))
            }
        }
    }
    if let Err(e) = next.check() {
        return err(format!("ERR CONFIG SET failed - {e}"));
    }
    s.shared
        .pubsub
        .set_notify_flags(next.notify_keyspace_events);
    s.shared
        .coord
        .engine()
        .record_events(crate::server::pubsub::events_wanted(
            next.notify_keyspace_events,
        ));
    s.shared
        .pubsub
        .set_limit(next.client_output_buffer_limit_pubsub);
    s.shared
        .coord
        .engine()
        .access()
        .set_lfu(next.maxmemory_policy.is_lfu());
    *s.shared.config.write() = next;
    let log = &s.shared.slowlog;
    if let Some(n) = slow_than {
        log.slower_than.store(n, Ordering::Relaxed);
    }
    if let Some(n) = slow_len {
        log.set_max_len(n);
    }
    if let Some(n) = lat {
        log.latency_threshold.store(n, Ordering::Relaxed);
    }
    if let Some(n) = tracking_max {
        s.shared.tracking.set_max_keys(n, &s.shared.outlet());
    }
    if let Some(p) = new_pass {
        s.shared.acl.set_default_password(p.as_deref());
    }
    s.shared
        .acl
        .set_log_max(s.shared.config.read().acllog_max_len);
    let mut g = s.shared.ignored_config.lock();
    for (k, v) in ignored {
        g.insert(k, v);
    }
    Outcome::Reply(Reply::Ok)
}

/// CONFIG REWRITE: writes keel's settings into the TOML file the server started with.
/// Keys the file had are kept (comments are not); keel's own keys get the running
/// values. The file is replaced atomically (write a sibling, rename).
fn rewrite(s: &mut Session) -> Outcome {
    let c: Config = s.shared.config.read().clone();
    let Some(path) = c.config_file.clone() else {
        return err("ERR The server is running without a config file");
    };
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        err(format!(
            "ERR Rewriting config file: {what} {}: {e}",
            path.display()
        ))
    };
    let mut table = match std::fs::read_to_string(&path) {
        Ok(text) => match text.parse::<toml::Table>() {
            Ok(t) => t,
            Err(e) => return fail("cannot parse", &e),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
        Err(e) => return fail("cannot read", &e),
    };
    let int = |n: u64| toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    let text = |t: String| toml::Value::String(t);
    // Underscore spellings are aliases of these keys; drop them so one value remains.
    for k in [
        "maxmemory_policy",
        "maxmemory_samples",
        "proto_max_bulk_len",
        "cache_size",
        "disable_thp",
        "io_threads",
        "client_query_buffer_limit",
        "auto_snapshot_wal_bytes",
        "auto_snapshot_wal_percentage",
    ] {
        table.remove(k);
    }
    table.insert("port".into(), int(u64::from(c.port)));
    table.insert("bind".into(), text(c.bind.to_string()));
    table.insert("dir".into(), text(c.dir.display().to_string()));
    table.insert("engine".into(), text(c.engine.to_string()));
    table.insert("appendfsync".into(), text(c.appendfsync.to_string()));
    table.insert("appendonly".into(), text(yes_no(c.appendonly).into()));
    table.insert("save".into(), text(render_save_points(&c.save_points)));
    match &c.requirepass {
        Some(p) => {
            table.insert("requirepass".into(), text(p.clone()));
        }
        None => {
            table.remove("requirepass");
        }
    }
    table.insert("maxmemory".into(), int(c.maxmemory));
    table.insert(
        "maxmemory-policy".into(),
        text(c.maxmemory_policy.as_str().into()),
    );
    table.insert("maxmemory-samples".into(), int(c.maxmemory_samples as u64));
    table.insert("maxclients".into(), int(c.maxclients as u64));
    table.insert("threads".into(), int(c.threads as u64));
    table.insert("io-threads".into(), int(c.io_threads as u64));
    table.insert("timeout".into(), int(c.timeout));
    table.insert("proto-max-bulk-len".into(), int(c.proto_max_bulk_len));
    table.insert("cache-size".into(), int(c.cache_size));
    table.insert("disable-thp".into(), text(yes_no(c.disable_thp).into()));
    table.insert(
        "client-query-buffer-limit".into(),
        int(c.client_query_buffer_limit),
    );
    table.insert(
        "auto-snapshot-wal-bytes".into(),
        int(c.auto_snapshot_wal_bytes),
    );
    table.insert(
        "auto-snapshot-wal-percentage".into(),
        int(c.auto_snapshot_wal_percentage),
    );
    table.insert("loglevel".into(), text(c.loglevel.clone()));
    let body = match toml::to_string(&table) {
        Ok(b) => b,
        Err(e) => return fail("cannot render", &e),
    };
    let tmp = path.with_extension("rewrite.tmp");
    if let Err(e) = std::fs::write(&tmp, body) {
        return fail("cannot write", &e);
    }
    if let Err(e) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_file(&tmp);
        return fail("cannot replace", &e);
    }
    Outcome::Reply(Reply::Ok)
}
