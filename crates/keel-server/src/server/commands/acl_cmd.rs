//! ACL and its subcommands: users (SETUSER, GETUSER, DELUSER, USERS, LIST, WHOAMI),
//! categories (CAT), DRYRUN, GENPASS, LOG, and the ACL file (SAVE, LOAD).

use std::sync::Arc;

use bytes::Bytes;
use keel_engine::args::parse_i64;
use keel_engine::command::arity_fits;
use keel_engine::reply::errors;
use keel_engine::Reply;
use rand::RngCore;

use super::{eq_ci, lookup, Outcome};
use crate::server::acl::user::{Call, Denied, User};
use crate::server::acl::{categories, refuse, UserSlot, DEFAULT_USER};
use crate::server::client::ClientHandle;
use crate::server::conn::Session;

/// ACL's subcommands and their arities (Redis's convention, counting `ACL` and the
/// subcommand).
const ARITY: &[(&str, i32)] = &[
    ("cat", -2),
    ("deluser", -3),
    ("dryrun", -4),
    ("genpass", -2),
    ("getuser", 3),
    ("help", 2),
    ("list", 2),
    ("load", 2),
    ("log", -2),
    ("save", 2),
    ("setuser", -3),
    ("users", 2),
    ("whoami", 2),
];

/// Longest password ACL GENPASS makes, in bits.
const GENPASS_MAX_BITS: i64 = 4096;

const HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Print this help.",
];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// ACL's dispatch over its subcommands.
pub(super) fn acl(s: &mut Session, args: &[Bytes]) -> Outcome {
    let sub = &args[1];
    let rest = &args[2..];
    let n = rest.len();
    // Whether this connection's own user went away (ACL DELUSER, ACL LOAD).
    let mut closes = false;
    let reply = if eq_ci(sub, "SETUSER") && n >= 1 {
        let (reply, mine) = setuser(s, rest);
        closes = mine;
        reply
    } else if eq_ci(sub, "DELUSER") && n >= 1 {
        let (reply, mine) = deluser(s, rest);
        closes = mine;
        reply
    } else if eq_ci(sub, "GETUSER") && n == 1 {
        let name = text(&rest[0]);
        s.shared
            .acl
            .get(&name)
            .map_or(Reply::Nil, |slot| slot.user().getuser_reply())
    } else if eq_ci(sub, "USERS") && n == 0 {
        Reply::Array(s.shared.acl.names().into_iter().map(Reply::bulk).collect())
    } else if eq_ci(sub, "LIST") && n == 0 {
        Reply::Array(
            s.shared
                .acl
                .describe_all()
                .into_iter()
                .map(Reply::bulk)
                .collect(),
        )
    } else if eq_ci(sub, "WHOAMI") && n == 0 {
        Reply::bulk(s.client.user.name())
    } else if (eq_ci(sub, "SAVE") || eq_ci(sub, "LOAD")) && n == 0 {
        let (reply, mine) = file(s, eq_ci(sub, "SAVE"));
        closes = mine;
        reply
    } else if eq_ci(sub, "CAT") && n <= 1 {
        cat(rest)
    } else if eq_ci(sub, "GENPASS") && n <= 1 {
        genpass(rest)
    } else if eq_ci(sub, "LOG") && n <= 1 {
        log(s, rest)
    } else if eq_ci(sub, "DRYRUN") && n >= 2 {
        dryrun(s, rest)
    } else if eq_ci(sub, "HELP") && n == 0 {
        Reply::Array(HELP.iter().map(|l| Reply::Simple((*l).into())).collect())
    } else {
        let name = text(sub).to_ascii_lowercase();
        match ARITY.iter().find(|(n, _)| *n == name) {
            // Redis checks a subcommand's arity before running it.
            Some((_, arity)) if !arity_fits(*arity, args.len()) => Reply::err(format!(
                "ERR wrong number of arguments for 'acl|{name}' command"
            )),
            Some(_) => Reply::err(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.",
                text(sub)
            )),
            None => Reply::err(format!(
                "ERR unknown subcommand '{}'. Try ACL HELP.",
                text(sub)
            )),
        }
    };
    if closes {
        return Outcome::ReplyThenClose(reply);
    }
    Outcome::Reply(reply)
}

/// ACL SETUSER's reply, and whether this connection lost a subscription's permission.
fn setuser(s: &mut Session, rest: &[Bytes]) -> (Reply, bool) {
    const BAD_NAME: &str = "ERR Usernames can't contain spaces or null characters";
    let name = &rest[0];
    if name.iter().any(|b| b.is_ascii_whitespace() || *b == 0) {
        return (Reply::err(BAD_NAME), false);
    }
    let Ok(name) = std::str::from_utf8(name) else {
        return (Reply::err(BAD_NAME), false);
    };
    let rules: Vec<&[u8]> = rest[1..].iter().map(|r| r.as_ref()).collect();
    match s.shared.acl.set_user(name, &rules) {
        Ok(()) => (Reply::Ok, kill_lost_subscribers(s, name)),
        Err(e) => (Reply::err(e.to_string()), false),
    }
}

/// ACL DELUSER's reply, and whether this connection's user was deleted.
fn deluser(s: &mut Session, rest: &[Bytes]) -> (Reply, bool) {
    let names: Vec<String> = rest.iter().map(|n| text(n)).collect();
    if names.iter().any(|n| n == DEFAULT_USER) {
        return (
            Reply::err("ERR The 'default' user cannot be removed"),
            false,
        );
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let removed = s.shared.acl.delete(&refs);
    let count = removed.len();
    let mine = disconnect_users(s, &removed);
    (Reply::Int(i64::try_from(count).unwrap_or(i64::MAX)), mine)
}

/// Disconnects the clients authenticated as one of `slots` (users deleted or replaced by
/// ACL LOAD) but this one; returns whether this one is among them (it closes after its
/// reply).
fn disconnect_users(s: &Session, slots: &[Arc<UserSlot>]) -> bool {
    disconnect_where(s, slots, |_| true)
}

/// Disconnects the clients authenticated as one of `slots` that `doomed` picks, but
/// this one; returns whether this one was picked (it closes after its reply).
fn disconnect_where(
    s: &Session,
    slots: &[Arc<UserSlot>],
    doomed: impl Fn(&ClientHandle) -> bool,
) -> bool {
    if slots.is_empty() {
        return false;
    }
    let me = s.client.handle.id;
    let mut mine = false;
    for h in s.shared.clients.all() {
        let theirs = h
            .user
            .lock()
            .as_ref()
            .is_some_and(|u| slots.iter().any(|g| Arc::ptr_eq(g, u)));
        if !theirs || !doomed(&h) {
            continue;
        }
        if h.id == me {
            mine = true;
        } else {
            // Dropped from CLIENT LIST at once (its task finishes closing it), so that
            // the reply of the command that did it is followed by a list without it.
            h.kill.notify_one();
            s.shared.clients.remove(h.id);
        }
    }
    mine
}

/// After ACL SETUSER: disconnects the subscribers of user `name` whose subscriptions
/// its channel rules no longer allow, as Redis does (a subscriber would otherwise go on
/// receiving what it may no longer subscribe to).
fn kill_lost_subscribers(s: &Session, name: &str) -> bool {
    let Some(slot) = s.shared.acl.get(name) else {
        return false;
    };
    let user = slot.user();
    disconnect_where(s, &[slot], |h| {
        let (channels, patterns, shard) = s.shared.pubsub.subscriptions_of(h.id);
        let allowed = channels
            .iter()
            .all(|c| allows_channel(&user, "SUBSCRIBE", c))
            && patterns
                .iter()
                .all(|p| allows_channel(&user, "PSUBSCRIBE", p))
            && shard.iter().all(|c| allows_channel(&user, "SSUBSCRIBE", c));
        !allowed
    })
}

/// Whether `user`'s channel rules allow `channel` as subscribed with `cmd` (SUBSCRIBE,
/// SSUBSCRIBE, or PSUBSCRIBE, whose patterns are compared as written).
fn allows_channel(user: &User, cmd: &'static str, channel: &Bytes) -> bool {
    let args = [Bytes::from_static(cmd.as_bytes()), channel.clone()];
    let name = cmd.to_ascii_lowercase();
    let call = Call {
        name: &name,
        args: &args,
        keys: &[],
        channels: &[(1, cmd == "PSUBSCRIBE")],
    };
    !matches!(user.check(&call), Err(Denied::Channel(_)))
}

/// ACL SAVE's or LOAD's reply, and whether this connection's user was replaced.
fn file(s: &mut Session, save: bool) -> (Reply, bool) {
    let acl = Arc::clone(&s.shared.acl);
    if save {
        let reply = match acl.save() {
            Ok(()) => Reply::Ok,
            Err(e) => {
                tracing::warn!(error = %e, "ACL SAVE failed");
                match e {
                    crate::server::acl::AclFileError::NotConfigured => Reply::err(e.to_string()),
                    _ => Reply::err("ERR There was an error trying to save the ACLs. Please check the server logs for more information"),
                }
            }
        };
        return (reply, false);
    }
    match acl.load() {
        Ok(replaced) => (Reply::Ok, disconnect_users(s, &replaced)),
        Err(e) => {
            let t = e.to_string();
            let t = if t.starts_with("ERR ") {
                t
            } else {
                format!("ERR {t}")
            };
            (Reply::err(t), false)
        }
    }
}

fn cat(rest: &[Bytes]) -> Reply {
    let Some(name) = rest.first() else {
        return Reply::Array(categories::NAMES.iter().map(|c| Reply::bulk(*c)).collect());
    };
    match std::str::from_utf8(name)
        .ok()
        .and_then(categories::category)
    {
        Some(c) => Reply::Array(
            categories::commands_in(c)
                .into_iter()
                .map(Reply::bulk)
                .collect(),
        ),
        None => Reply::err(format!("ERR Unknown category '{}'", text(name))),
    }
}

fn genpass(rest: &[Bytes]) -> Reply {
    let bits = match rest.first() {
        None => 256,
        Some(b) => match parse_i64(b) {
            Some(n) => n,
            None => return Reply::err(errors::NOT_INTEGER),
        },
    };
    if bits <= 0 || bits > GENPASS_MAX_BITS {
        return Reply::err(format!("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to {GENPASS_MAX_BITS}"));
    }
    let chars = usize::try_from((bits + 3) / 4).unwrap_or(64);
    let mut raw = vec![0u8; chars.div_ceil(2)];
    rand::thread_rng().fill_bytes(&mut raw);
    let mut hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(chars);
    Reply::bulk(hex)
}

fn log(s: &mut Session, rest: &[Bytes]) -> Reply {
    let count = match rest.first() {
        None => 10,
        Some(a) if eq_ci(a, "RESET") => {
            s.shared.acl.log_book().reset();
            return Reply::Ok;
        }
        Some(a) => match parse_i64(a) {
            Some(n) => usize::try_from(n).unwrap_or(0),
            None => return Reply::err(errors::NOT_INTEGER),
        },
    };
    s.shared.acl.log_book().reply(count)
}

fn dryrun(s: &mut Session, rest: &[Bytes]) -> Reply {
    let name = text(&rest[0]);
    let Some(slot) = s.shared.acl.get(&name) else {
        return Reply::err(format!("ERR User '{name}' not found"));
    };
    let call = &rest[1..];
    let Some(cmd) = lookup(&call[0]) else {
        return Reply::err(format!("ERR Command '{}' not found", text(&call[0])));
    };
    if !cmd.arity_ok(call.len()) {
        return Reply::err(format!(
            "ERR wrong number of arguments for '{}' command",
            cmd.name()
        ));
    }
    match refuse::check(&slot.user(), cmd, call) {
        Ok(()) => Reply::Ok,
        Err(r) => Reply::bulk(r.text(&name, true)),
    }
}
