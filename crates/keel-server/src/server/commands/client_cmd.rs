//! CLIENT: ID, SETNAME, GETNAME, LIST, INFO, KILL, UNBLOCK, PAUSE, UNPAUSE, REPLY,
//! NO-EVICT, NO-TOUCH, SETINFO, HELP; TRACKING, CACHING, GETREDIR and TRACKINGINFO are
//! in `tracking_cmd`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use keel_engine::args::parse_i64;
use keel_engine::reply::errors;
use keel_engine::Reply;

use super::{eq_ci, err, Outcome};
use crate::server::blocking::Unblock;
use crate::server::client::ClientHandle;
use crate::server::client_admin::reply_mode;
use crate::server::conn::Session;

const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

const HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "    * ID <client-id> [<client-id> ...]",
    "      Return clients of specified IDs only.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "NO-TOUCH (ON|OFF)",
    "    Will not touch LRU/LFU stats when this mode is on.",
    "HELP",
    "    Print this help.",
];

fn ok() -> Outcome {
    Outcome::Reply(Reply::Ok)
}

fn unknown(sub: &[u8]) -> Outcome {
    err(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
        String::from_utf8_lossy(sub)
    ))
}

fn valid_name(v: &[u8]) -> bool {
    v.iter().all(|b| *b > b' ' && *b <= b'~')
}

pub(super) fn client(s: &mut Session, args: &[Bytes]) -> Outcome {
    let sub = &args[1];
    let rest = &args[2..];
    let upper = String::from_utf8_lossy(sub).to_ascii_uppercase();
    match (upper.as_str(), rest.len()) {
        ("ID", 0) => Outcome::Reply(Reply::Int(
            i64::try_from(s.client.handle.id).unwrap_or(i64::MAX),
        )),
        ("GETNAME", 0) => Outcome::Reply(
            s.client
                .handle
                .name
                .lock()
                .clone()
                .map_or(Reply::Nil, Reply::bulk),
        ),
        ("SETNAME", 1) => {
            let v = &rest[0];
            if !valid_name(v) {
                return err(BAD_NAME);
            }
            *s.client.handle.name.lock() =
                (!v.is_empty()).then(|| String::from_utf8_lossy(v).into_owned());
            ok()
        }
        ("INFO", 0) => {
            let line = client_line(s, &s.client.handle);
            Outcome::Reply(Reply::Bulk(Bytes::from(line)))
        }
        ("LIST", _) => list(s, rest),
        ("KILL", _) => kill(s, sub, rest),
        ("UNBLOCK", 1 | 2) => unblock(s, rest),
        ("PAUSE", 1 | 2) => pause(s, rest),
        ("UNPAUSE", 0) => {
            s.shared.pause.unpause();
            ok()
        }
        ("REPLY", 1) => {
            let m = if eq_ci(&rest[0], "ON") {
                reply_mode::ON
            } else if eq_ci(&rest[0], "OFF") {
                reply_mode::OFF
            } else if eq_ci(&rest[0], "SKIP") {
                reply_mode::SKIP_THIS_AND_NEXT
            } else {
                return err(errors::SYNTAX);
            };
            s.client.handle.admin.reply.store(m, Ordering::Relaxed);
            ok()
        }
        ("NO-EVICT", 1) => on_off(&rest[0], &s.client.handle.admin.no_evict),
        ("NO-TOUCH", 1) => on_off(&rest[0], &s.client.handle.admin.no_touch),
        ("SETINFO", 2) => {
            let v = &rest[1];
            let target = if eq_ci(&rest[0], "LIB-NAME") {
                &s.client.handle.admin.lib_name
            } else if eq_ci(&rest[0], "LIB-VER") {
                &s.client.handle.admin.lib_ver
            } else {
                return err(format!(
                    "ERR Unrecognized option '{}'",
                    String::from_utf8_lossy(&rest[0])
                ));
            };
            if !valid_name(v) {
                return err(format!(
                    "ERR {} cannot contain spaces, newlines or special characters.",
                    String::from_utf8_lossy(&rest[0]).to_ascii_uppercase()
                ));
            }
            *target.lock() = String::from_utf8_lossy(v).into_owned();
            ok()
        }
        ("TRACKING", n) if n >= 1 => super::tracking_cmd::tracking(s, rest),
        ("CACHING", 1) => super::tracking_cmd::caching(s, &rest[0]),
        ("TRACKINGINFO", 0) => super::tracking_cmd::trackinginfo(s),
        ("GETREDIR", 0) => super::tracking_cmd::getredir(s),
        ("HELP", 0) => Outcome::Reply(Reply::Array(
            HELP.iter().map(|l| Reply::Simple((*l).into())).collect(),
        )),
        _ => unknown(sub),
    }
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: 1 if the client was blocked and now is not.
/// The reason is checked before the id, as Redis does.
fn unblock(s: &Session, rest: &[Bytes]) -> Outcome {
    let how = match rest.get(1) {
        None => Unblock::Timeout,
        Some(r) if eq_ci(r, "TIMEOUT") => Unblock::Timeout,
        Some(r) if eq_ci(r, "ERROR") => Unblock::Error,
        Some(_) => return err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    let Some(id) = parse_i64(&rest[0]) else {
        return err(errors::NOT_INTEGER);
    };
    let done = u64::try_from(id).is_ok_and(|id| s.shared.blocked.unblock(id, how));
    Outcome::Reply(Reply::Int(i64::from(done)))
}

fn on_off(v: &[u8], flag: &std::sync::atomic::AtomicBool) -> Outcome {
    if eq_ci(v, "ON") {
        flag.store(true, Ordering::Relaxed);
    } else if eq_ci(v, "OFF") {
        flag.store(false, Ordering::Relaxed);
    } else {
        return err(errors::SYNTAX);
    }
    ok()
}

/// The name of the user `h` is authenticated as.
pub(crate) fn user_name(h: &ClientHandle) -> String {
    h.user.lock().as_ref().map_or_else(
        || crate::server::acl::DEFAULT_USER.to_owned(),
        |u| u.name().to_owned(),
    )
}

/// One CLIENT LIST line (without the trailing newline).
pub(crate) fn client_line(s: &Session, h: &ClientHandle) -> String {
    client_line_in(&s.shared, h)
}

/// [`client_line`] for a client found by id, outside its connection.
pub(crate) fn client_line_in(shared: &crate::server::Shared, h: &ClientHandle) -> String {
    let age_ms = h.age_ms();
    let idle = age_ms.saturating_sub(h.last_interaction_ms.load(Ordering::Relaxed)) / 1000;
    let a = &h.admin;
    let resp = match a.resp.load(Ordering::Relaxed) {
        0 => 2,
        n => n,
    };
    let [sub, psub, ssub] = h
        .pushes
        .get()
        .and_then(std::sync::Weak::upgrade)
        .map_or([0; 3], |p| p.subscription_counts());
    let mut flags = String::new();
    if sub + psub + ssub > 0 {
        flags.push('P');
    }
    if a.in_multi.load(Ordering::Relaxed) {
        flags.push('x');
    }
    let tracker = shared.tracking.tracker(h.id);
    if let Some(t) = &tracker {
        flags.push('t');
        if t.broken() {
            flags.push('R');
        }
        if t.has(crate::server::tracking::opts::BCAST) {
            flags.push('B');
        }
    }
    if a.no_evict.load(Ordering::Relaxed) {
        flags.push('e');
    }
    if a.no_touch.load(Ordering::Relaxed) {
        flags.push('T');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let cmd = a.last_cmd();
    let mut line = String::new();
    let _ = write!(
        line,
        "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={} db={} sub={} psub={} \
         ssub={} multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 obl=0 oll=0 omem=0 \
         tot-mem=0 events=r cmd={} user={} redir={} resp={} lib-name={} lib-ver={}",
        h.id,
        h.addr,
        shared.local_addr,
        h.name.lock().clone().unwrap_or_default(),
        age_ms / 1000,
        idle,
        flags,
        h.db.load(Ordering::Relaxed),
        sub,
        psub,
        ssub,
        if cmd.is_empty() { "NULL" } else { cmd },
        user_name(h),
        tracker.map_or(-1, |t| i64::try_from(t.redirect).unwrap_or(i64::MAX)),
        resp,
        a.lib_name.lock(),
        a.lib_ver.lock(),
    );
    line.push('\n');
    line
}

/// A client type of CLIENT LIST and CLIENT KILL's TYPE filter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    PubSub,
    /// master, replica, slave: keel has none.
    Nobody,
}

fn kind_of(v: &[u8]) -> Result<Kind, Outcome> {
    if eq_ci(v, "normal") {
        Ok(Kind::Normal)
    } else if eq_ci(v, "pubsub") {
        Ok(Kind::PubSub)
    } else if eq_ci(v, "master") || eq_ci(v, "replica") || eq_ci(v, "slave") {
        Ok(Kind::Nobody)
    } else {
        Err(err(format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(v)
        )))
    }
}

/// The type of client `h`: pub/sub while it has a subscription, as in Redis.
fn kind(h: &ClientHandle) -> Kind {
    let subscribed = h
        .pushes
        .get()
        .and_then(std::sync::Weak::upgrade)
        .is_some_and(|p| p.subscribed());
    if subscribed {
        Kind::PubSub
    } else {
        Kind::Normal
    }
}

fn sorted_clients(s: &Session) -> Vec<Arc<ClientHandle>> {
    let mut all = s.shared.clients.all();
    all.sort_by_key(|h| h.id);
    all
}

fn list(s: &mut Session, rest: &[Bytes]) -> Outcome {
    let mut ids: Option<Vec<u64>> = None;
    let mut only = None;
    let mut i = 0;
    while i < rest.len() {
        if eq_ci(&rest[i], "TYPE") && i + 1 < rest.len() {
            match kind_of(&rest[i + 1]) {
                Ok(k) => only = Some(k),
                Err(e) => return e,
            }
            i += 2;
        } else if eq_ci(&rest[i], "ID") && i + 1 < rest.len() {
            let mut v = Vec::new();
            i += 1;
            while i < rest.len() {
                match parse_i64(&rest[i]).and_then(|n| u64::try_from(n).ok()) {
                    Some(n) if n > 0 => v.push(n),
                    _ => return err("ERR Invalid client ID"),
                }
                i += 1;
            }
            ids = Some(v);
        } else {
            return err(errors::SYNTAX);
        }
    }
    let mut out = String::new();
    for h in sorted_clients(s) {
        if ids.as_ref().is_none_or(|v| v.contains(&h.id)) && only.is_none_or(|k| k == kind(&h)) {
            out.push_str(&client_line(s, &h));
        }
    }
    Outcome::Reply(Reply::Bulk(Bytes::from(out)))
}

fn kill(s: &mut Session, sub: &[u8], rest: &[Bytes]) -> Outcome {
    let me = s.client.handle.id;
    if rest.len() == 1 {
        // The old form: one address, OK or an error.
        let addr = String::from_utf8_lossy(&rest[0]).into_owned();
        return match sorted_clients(s)
            .into_iter()
            .find(|h| h.addr.to_string() == addr)
        {
            Some(h) => {
                h.kill.notify_one();
                ok()
            }
            None => err("ERR No such client"),
        };
    }
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return unknown(sub);
    }
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut user = None;
    let mut skipme = true;
    let mut only = None;
    for pair in rest.chunks(2) {
        let (k, v) = (&pair[0], &pair[1]);
        let text = String::from_utf8_lossy(v).into_owned();
        if eq_ci(k, "ID") {
            match parse_i64(v).and_then(|n| u64::try_from(n).ok()) {
                Some(n) if n > 0 => id = Some(n),
                _ => return err("ERR client-id should be greater than 0"),
            }
        } else if eq_ci(k, "ADDR") {
            addr = Some(text);
        } else if eq_ci(k, "LADDR") {
            laddr = Some(text);
        } else if eq_ci(k, "USER") {
            user = Some(text);
        } else if eq_ci(k, "TYPE") {
            match kind_of(v) {
                Ok(k) => only = Some(k),
                Err(e) => return e,
            }
        } else if eq_ci(k, "SKIPME") {
            if eq_ci(v, "yes") {
                skipme = true;
            } else if eq_ci(v, "no") {
                skipme = false;
            } else {
                return err(errors::SYNTAX);
            }
        } else if eq_ci(k, "MAXAGE") {
            match parse_i64(v) {
                Some(_) => {}
                None => return err(errors::SYNTAX),
            }
        } else {
            return err(errors::SYNTAX);
        }
    }
    if let Some(u) = &user {
        if s.shared.acl.get(u).is_none() {
            return err(format!("ERR No such user '{u}'"));
        }
    }
    let local = s.shared.local_addr.to_string();
    let mut killed = 0i64;
    for h in sorted_clients(s) {
        let matches = id.is_none_or(|i| i == h.id)
            && addr.as_ref().is_none_or(|a| *a == h.addr.to_string())
            && laddr.as_ref().is_none_or(|a| *a == local)
            && user.as_ref().is_none_or(|u| *u == user_name(&h))
            && only.is_none_or(|k| k == kind(&h))
            && !(skipme && h.id == me);
        if matches {
            h.kill.notify_one();
            killed += 1;
        }
    }
    Outcome::Reply(Reply::Int(killed))
}

fn pause(s: &mut Session, rest: &[Bytes]) -> Outcome {
    let Some(ms) = parse_i64(&rest[0]) else {
        return err("ERR timeout is not an integer or out of range");
    };
    if ms < 0 {
        return err("ERR timeout is negative");
    }
    let write_only = match rest.get(1) {
        None => false,
        Some(m) if eq_ci(m, "ALL") => false,
        Some(m) if eq_ci(m, "WRITE") => true,
        Some(_) => return err(errors::SYNTAX),
    };
    s.shared
        .pause
        .pause(Duration::from_millis(ms.unsigned_abs()), write_only);
    ok()
}
