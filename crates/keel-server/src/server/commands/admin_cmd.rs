//! Diagnostics and standalone-node answers: SLOWLOG, LATENCY, DEBUG (SLEEP, RELOAD,
//! SET-ACTIVE-EXPIRE, OBJECT), ROLE, WAIT and READONLY/READWRITE.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use keel_engine::args::parse_i64;
use keel_engine::reply::errors;
use keel_engine::Reply;

use super::{eq_ci, err, Deferred, Outcome};
use crate::clock::unix_now_ms;
use crate::server::conn::Session;

/// Redis's default SLOWLOG GET count.
const SLOWLOG_DEFAULT_GET: usize = 10;

fn int(n: u64) -> Reply {
    Reply::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn help(lines: &[&str]) -> Outcome {
    Outcome::Reply(Reply::Array(
        lines.iter().map(|l| Reply::Simple((*l).into())).collect(),
    ))
}

fn unknown(cmd: &str, sub: &[u8]) -> Outcome {
    err(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {cmd} HELP.",
        String::from_utf8_lossy(sub)
    ))
}

pub(super) fn slowlog(s: &mut Session, args: &[Bytes]) -> Outcome {
    let sub = &args[1];
    let log = &s.shared.slowlog;
    if eq_ci(sub, "GET") && args.len() <= 3 {
        let n = match args.get(2) {
            None => SLOWLOG_DEFAULT_GET,
            Some(a) => match parse_i64(a) {
                Some(-1) => usize::MAX,
                Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
                _ => return err("ERR count should be greater than or equal to -1"),
            },
        };
        let rows = log
            .get(n)
            .into_iter()
            .map(|e| {
                Reply::Array(vec![
                    int(e.id),
                    int(e.unix),
                    int(e.usec),
                    Reply::Array(e.args.into_iter().map(Reply::Bulk).collect()),
                    Reply::bulk(e.addr),
                    Reply::bulk(e.name),
                ])
            })
            .collect();
        return Outcome::Reply(Reply::Array(rows));
    }
    if eq_ci(sub, "LEN") && args.len() == 2 {
        return Outcome::Reply(int(log.len() as u64));
    }
    if eq_ci(sub, "RESET") && args.len() == 2 {
        log.reset();
        return Outcome::Reply(Reply::Ok);
    }
    if eq_ci(sub, "HELP") && args.len() == 2 {
        return help(&[
            "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
            "HELP",
            "    Print this help.",
        ]);
    }
    unknown("SLOWLOG", sub)
}

pub(super) fn latency(s: &mut Session, args: &[Bytes]) -> Outcome {
    let sub = &args[1];
    let log = &s.shared.slowlog;
    if eq_ci(sub, "LATEST") && args.len() == 2 {
        let rows = log
            .latency_latest()
            .into_iter()
            .map(|(ev, t, ms, max)| Reply::Array(vec![Reply::bulk(ev), int(t), int(ms), int(max)]))
            .collect();
        return Outcome::Reply(Reply::Array(rows));
    }
    if eq_ci(sub, "HISTORY") && args.len() == 3 {
        let ev = String::from_utf8_lossy(&args[2]).to_ascii_lowercase();
        let rows = log
            .latency_history(&ev)
            .into_iter()
            .map(|(t, ms)| Reply::Array(vec![int(t), int(ms)]))
            .collect();
        return Outcome::Reply(Reply::Array(rows));
    }
    if eq_ci(sub, "RESET") {
        let evs: Vec<String> = args[2..]
            .iter()
            .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
            .collect();
        return Outcome::Reply(int(log.latency_reset(&evs) as u64));
    }
    if eq_ci(sub, "HELP") && args.len() == 2 {
        return help(&[
            "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HELP",
            "    Print this help.",
        ]);
    }
    unknown("LATENCY", sub)
}

pub(super) fn debug(s: &mut Session, args: &[Bytes]) -> Outcome {
    let sub = &args[1];
    if eq_ci(sub, "SLEEP") && args.len() == 3 {
        let secs = std::str::from_utf8(&args[2])
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|f| f.is_finite() && *f >= 0.0);
        let Some(secs) = secs else {
            return err("ERR value is not a valid float");
        };
        let d = Duration::from_secs_f64(secs.min(1e9));
        return Outcome::Deferred(Deferred(Box::pin(async move {
            tokio::time::sleep(d).await;
            Reply::Ok
        })));
    }
    if eq_ci(sub, "RELOAD") {
        // keel's reload is a snapshot: the WAL already makes every write durable and a
        // re-open of the memory engine would replay what is in memory anyway.
        let rx = s.shared.coord.snapshot();
        return Outcome::Deferred(Deferred(Box::pin(async move {
            match rx.await {
                Ok(Ok(())) => Reply::Ok,
                Ok(Err(e)) => Reply::err(e),
                Err(_) => Reply::err("ERR server is shutting down"),
            }
        })));
    }
    if eq_ci(sub, "SET-ACTIVE-EXPIRE") && args.len() == 3 {
        let on = match parse_i64(&args[2]) {
            Some(0) => false,
            Some(1) => true,
            _ => return err(errors::SYNTAX),
        };
        s.shared
            .coord
            .state()
            .active_expire
            .store(on, Ordering::Relaxed);
        return Outcome::Reply(Reply::Ok);
    }
    if eq_ci(sub, "OBJECT") && args.len() == 3 {
        return debug_object(s, &args[2]);
    }
    if eq_ci(sub, "HELP") && args.len() == 2 {
        return help(&[
            "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "OBJECT <key>",
            "    Show low level info about the key and associated value.",
            "RELOAD",
            "    Save the dataset (keel: a snapshot; the WAL keeps every write).",
            "SET-ACTIVE-EXPIRE <0|1>",
            "    Setting it to 0 disables expiring keys in background.",
            "SLEEP <seconds>",
            "    Stop the server for <seconds>. Decimals allowed.",
            "HELP",
            "    Print this help.",
        ]);
    }
    unknown("DEBUG", sub)
}

fn debug_object(s: &mut Session, key: &Bytes) -> Outcome {
    let engine = s.shared.coord.engine();
    let now = unix_now_ms();
    let db = s.client.db;
    let ask = |a: &[&[u8]]| -> Option<Reply> {
        let mut v: Vec<Bytes> = a.iter().map(|x| Bytes::copy_from_slice(x)).collect();
        v.push(key.clone());
        engine.read(db, now, &v).ok().map(|r| r.reply)
    };
    let encoding = match ask(&[b"OBJECT", b"ENCODING"]) {
        Some(Reply::Bulk(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => return err("ERR no such key"),
    };
    let size = match ask(&[b"MEMORY", b"USAGE"]) {
        Some(Reply::Int(n)) => n,
        _ => 0,
    };
    let idle = match ask(&[b"OBJECT", b"IDLETIME"]) {
        Some(Reply::Int(n)) => n,
        _ => 0,
    };
    let line = format!(
        "Value at:0x0 refcount:1 encoding:{encoding} serializedlength:{size} lru:0 lru_seconds_idle:{idle}"
    );
    Outcome::Reply(Reply::Simple(line))
}

pub(super) fn role(_s: &mut Session, _args: &[Bytes]) -> Outcome {
    Outcome::Reply(Reply::Array(vec![
        Reply::bulk("master"),
        Reply::Int(0),
        Reply::Array(Vec::new()),
    ]))
}

/// WAIT numreplicas timeout: a standalone node has no replica to wait for.
pub(super) fn wait(_s: &mut Session, args: &[Bytes]) -> Outcome {
    if parse_i64(&args[1]).is_none() {
        return err(errors::NOT_INTEGER);
    }
    match parse_i64(&args[2]) {
        None => err("ERR timeout is not an integer or out of range"),
        Some(t) if t < 0 => err("ERR timeout is negative"),
        Some(_) => Outcome::Reply(Reply::Int(0)),
    }
}

pub(super) fn ok(_s: &mut Session, _args: &[Bytes]) -> Outcome {
    Outcome::Reply(Reply::Ok)
}
