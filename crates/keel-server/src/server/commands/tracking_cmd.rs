//! CLIENT TRACKING, CACHING, GETREDIR and TRACKINGINFO: client-side caching's commands,
//! with Redis 7.2's options, checks and error texts (the state is `server::tracking`).

use std::sync::Arc;

use bytes::Bytes;
use keel_engine::args::parse_i64;
use keel_engine::reply::errors;
use keel_engine::Reply;

use super::{eq_ci, err, Outcome};
use crate::server::conn::Session;
use crate::server::tracking::{check_prefixes, opts};

/// CLIENT TRACKING (on|off) [REDIRECT id] [BCAST] [PREFIX p]... [OPTIN] [OPTOUT] [NOLOOP].
pub(super) fn tracking(s: &mut Session, rest: &[Bytes]) -> Outcome {
    let mut redirect: u64 = 0;
    let mut o: u8 = 0;
    let mut prefixes: Vec<Bytes> = Vec::new();
    let mut i = 1;
    while i < rest.len() {
        let a = &rest[i];
        let more = i + 1 < rest.len();
        if eq_ci(a, "REDIRECT") && more {
            i += 1;
            if redirect != 0 {
                return err("ERR A client can only redirect to a single other client");
            }
            let Some(id) = parse_i64(&rest[i]) else {
                return err(errors::NOT_INTEGER);
            };
            // Checked now, though it may go later (Redis's sanity check).
            let exists = u64::try_from(id)
                .ok()
                .filter(|id| *id != 0 && s.shared.clients.get(*id).is_some());
            let Some(id) = exists else {
                return err("ERR The client ID you want redirect to does not exist");
            };
            redirect = id;
        } else if eq_ci(a, "BCAST") {
            o |= opts::BCAST;
        } else if eq_ci(a, "OPTIN") {
            o |= opts::OPTIN;
        } else if eq_ci(a, "OPTOUT") {
            o |= opts::OPTOUT;
        } else if eq_ci(a, "NOLOOP") {
            o |= opts::NOLOOP;
        } else if eq_ci(a, "PREFIX") && more {
            i += 1;
            prefixes.push(rest[i].clone());
        } else {
            return err(errors::SYNTAX);
        }
        i += 1;
    }
    if eq_ci(&rest[0], "ON") {
        if let Err(e) = check_on(s, o, &prefixes) {
            return err(e);
        }
        let first = s.client.tracking.is_none();
        let tr = s.shared.tracking.enable(
            s.client.handle.id,
            &s.client.pubsub.sink,
            redirect,
            o,
            &prefixes,
        );
        s.client.tracking = Some(tr);
        if first {
            // A write whose apply hook still saw this client untracked must be in
            // storage before this client's first tracked read.
            s.shared.coord.barrier();
        }
    } else if eq_ci(&rest[0], "OFF") {
        s.stop_tracking();
    } else {
        return err(errors::SYNTAX);
    }
    Outcome::Reply(Reply::Ok)
}

/// CLIENT TRACKING ON's rules for options given together and against the modes the
/// client tracks with now.
fn check_on(s: &Session, o: u8, prefixes: &[Bytes]) -> Result<(), String> {
    if o & opts::BCAST == 0 && !prefixes.is_empty() {
        return Err("ERR PREFIX option requires BCAST mode to be enabled".into());
    }
    let now = s.client.tracking.as_ref().map_or(0, |t| t.opts);
    if s.client.tracking.is_some() && (now & opts::BCAST) != (o & opts::BCAST) {
        return Err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.".into());
    }
    if o & opts::BCAST != 0 && o & (opts::OPTIN | opts::OPTOUT) != 0 {
        return Err("ERR OPTIN and OPTOUT are not compatible with BCAST".into());
    }
    if o & opts::OPTIN != 0 && o & opts::OPTOUT != 0 {
        return Err("ERR You can't specify both OPTIN mode and OPTOUT mode".into());
    }
    if (o & opts::OPTIN != 0 && now & opts::OPTOUT != 0)
        || (o & opts::OPTOUT != 0 && now & opts::OPTIN != 0)
    {
        return Err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.".into());
    }
    if o & opts::BCAST != 0 {
        let existing = s
            .client
            .tracking
            .as_ref()
            .map(|t| &t.prefixes[..])
            .unwrap_or_default();
        check_prefixes(existing, prefixes)?;
    }
    Ok(())
}

/// CLIENT CACHING yes|no: whether the next command's reads are remembered (OPTIN,
/// OPTOUT).
pub(super) fn caching(s: &mut Session, arg: &[u8]) -> Outcome {
    let Some(tr) = s.client.tracking.as_ref() else {
        return err("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
    };
    if eq_ci(arg, "YES") {
        if !tr.has(opts::OPTIN) {
            return err(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            );
        }
    } else if eq_ci(arg, "NO") {
        if !tr.has(opts::OPTOUT) {
            return err(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            );
        }
    } else {
        return err(errors::SYNTAX);
    }
    s.client.caching = true;
    Outcome::Reply(Reply::Ok)
}

/// CLIENT GETREDIR: the redirect target's id, 0 without one, -1 when not tracking.
pub(super) fn getredir(s: &Session) -> Outcome {
    let id = s
        .client
        .tracking
        .as_ref()
        .map_or(-1, |t| i64::try_from(t.redirect).unwrap_or(i64::MAX));
    Outcome::Reply(Reply::Int(id))
}

/// CLIENT TRACKINGINFO: flags, redirect and prefixes, as Redis lists them.
pub(super) fn trackinginfo(s: &Session) -> Outcome {
    let tr: Option<&Arc<_>> = s.client.tracking.as_ref();
    let mut flags = vec![Reply::bulk(if tr.is_some() { "on" } else { "off" })];
    let mut redirect = -1;
    let mut prefixes = Vec::new();
    if let Some(t) = tr {
        let named = [
            (opts::BCAST, "bcast"),
            (opts::OPTIN, "optin"),
            (opts::OPTOUT, "optout"),
        ];
        for (bit, name) in named {
            if t.has(bit) {
                flags.push(Reply::bulk(name));
                if s.client.caching && bit == opts::OPTIN {
                    flags.push(Reply::bulk("caching-yes"));
                }
                if s.client.caching && bit == opts::OPTOUT {
                    flags.push(Reply::bulk("caching-no"));
                }
            }
        }
        if t.has(opts::NOLOOP) {
            flags.push(Reply::bulk("noloop"));
        }
        if t.broken() {
            flags.push(Reply::bulk("broken_redirect"));
        }
        redirect = i64::try_from(t.redirect).unwrap_or(i64::MAX);
        prefixes = t.prefixes.iter().cloned().map(Reply::Bulk).collect();
    }
    Outcome::Reply(Reply::Map(vec![
        (Reply::bulk("flags"), Reply::Set(flags)),
        (Reply::bulk("redirect"), Reply::Int(redirect)),
        (Reply::bulk("prefixes"), Reply::Array(prefixes)),
    ]))
}
