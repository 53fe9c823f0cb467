//! CONFIG GET / SET / RESETSTAT / REWRITE.
//!
//! GET matches glob patterns against every known name. SET changes the settings that
//! can change at runtime (maxmemory, maxmemory-policy, maxmemory-samples, maxclients,
//! timeout, requirepass); the rest are immutable. A few Redis settings that test suites
//! commonly set are accepted and ignored (kept so GET reports what was set).

use bytes::Bytes;
use keel_engine::glob::glob_match;
use keel_engine::Reply;

use super::{eq_ci, err, Outcome};
use crate::config::{parse_policy, parse_size, Config};
use crate::server::conn::Session;

/// Redis settings accepted by CONFIG SET without effect in keel, with their defaults.
const IGNORED: &[(&str, &str)] = &[
    ("save", ""),
    ("appendonly", "yes"),
    ("hz", "10"),
    ("activedefrag", "no"),
    ("lazyfree-lazy-eviction", "no"),
    ("lazyfree-lazy-expire", "no"),
    ("lazyfree-lazy-server-del", "no"),
    ("lazyfree-lazy-user-del", "no"),
    ("lazyfree-lazy-user-flush", "no"),
    ("latency-tracking", "yes"),
    ("latency-monitor-threshold", "0"),
    ("slowlog-log-slower-than", "10000"),
    ("slowlog-max-len", "128"),
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
    ("lua-time-limit", "5000"),
    ("busy-reply-threshold", "5000"),
    ("lfu-log-factor", "10"),
    ("lfu-decay-time", "1"),
    ("databases", "16"),
];

/// Every (name, value) keel reports.
fn current(s: &Session) -> Vec<(String, String)> {
    let c: Config = s.shared.config.read().clone();
    let mut v: Vec<(String, String)> = vec![
        ("port".into(), c.port.to_string()),
        ("bind".into(), c.bind.to_string()),
        ("dir".into(), c.dir.display().to_string()),
        ("engine".into(), c.engine.to_string()),
        ("appendfsync".into(), c.appendfsync.to_string()),
        (
            "requirepass".into(),
            c.requirepass.clone().unwrap_or_default(),
        ),
        ("maxmemory".into(), c.maxmemory.to_string()),
        (
            "maxmemory-policy".into(),
            c.maxmemory_policy.as_str().into(),
        ),
        ("maxmemory-samples".into(), c.maxmemory_samples.to_string()),
        ("maxclients".into(), c.maxclients.to_string()),
        ("timeout".into(), c.timeout.to_string()),
        (
            "proto-max-bulk-len".into(),
            c.proto_max_bulk_len.to_string(),
        ),
        (
            "client-query-buffer-limit".into(),
            c.client_query_buffer_limit.to_string(),
        ),
        (
            "auto-snapshot-wal-bytes".into(),
            c.auto_snapshot_wal_bytes.to_string(),
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
        return Outcome::Reply(Reply::Ok);
    }
    if eq_ci(sub, "REWRITE") && rest.is_empty() {
        return err("ERR CONFIG REWRITE is not supported by keel; edit the config file");
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
            "requirepass" => {
                next.requirepass = (!value.is_empty()).then_some(value);
            }
            "notify-keyspace-events" => match crate::server::pubsub::notify::parse(&value) {
                Some(f) => next.notify_keyspace_events = f,
                None => return bad("Invalid event class character. Use 'Ag$lshzxeKEtmdn'."),
            },
            "client-output-buffer-limit" => match pubsub_limit(&value) {
                Ok(Some(l)) => next.client_output_buffer_limit_pubsub = l,
                Ok(None) => {}
                Err(e) => return bad(&e),
            },
            "port" | "bind" | "dir" | "engine" | "appendfsync" | "proto-max-bulk-len"
            | "client-query-buffer-limit" | "auto-snapshot-wal-bytes" | "loglevel" => {
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
        .pubsub
        .set_limit(next.client_output_buffer_limit_pubsub);
    *s.shared.config.write() = next;
    let mut g = s.shared.ignored_config.lock();
    for (k, v) in ignored {
        g.insert(k, v);
    }
    Outcome::Reply(Reply::Ok)
}
