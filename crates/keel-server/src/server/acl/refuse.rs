//! Refusing a call its user may not make: the check, Redis's NOPERM replies, the ACL LOG
//! entry and the INFO counters.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use keel_engine::Reply;

use super::call::Parts;
use super::log::{Context, Reason, Refusal};
use super::user::{Denied, User};
use crate::server::commands::{client_info_line, eq_ci, Cmd};
use crate::server::conn::Session;
use crate::server::multi;

/// Why `user` may not make a call, and what was refused: the command's full name, the
/// key or the channel.
#[derive(Debug)]
pub struct Refused {
    /// What the check refused.
    pub denied: Denied,
    /// The command (`config|get`), key or channel refused.
    pub object: String,
}

impl Refused {
    /// Redis's text for it: terse for a reply, naming the user and the object for ACL
    /// DRYRUN (`verbose`).
    pub fn text(&self, user: &str, verbose: bool) -> String {
        let o = &self.object;
        match (self.denied, verbose) {
            (Denied::Command, _) => {
                format!("User {user} has no permissions to run the '{o}' command")
            }
            (Denied::Key(_), false) => "No permissions to access a key".into(),
            (Denied::Key(_), true) => {
                format!("User {user} has no permissions to access the '{o}' key")
            }
            (Denied::Channel(_), false) => "No permissions to access a channel".into(),
            (Denied::Channel(_), true) => {
                format!("User {user} has no permissions to access the '{o}' channel")
            }
        }
    }
}

/// Checks `cmd` called with `args` against `user`.
pub fn check(user: &User, cmd: Cmd, args: &[Bytes]) -> Result<(), Refused> {
    let parts = Parts::of(cmd, args);
    user.check(&parts.call(cmd.name(), args))
        .map_err(|denied| Refused {
            denied,
            object: match denied {
                Denied::Command => full_name(cmd, args),
                Denied::Key(at) | Denied::Channel(at) => arg_text(args, at),
            },
        })
}

impl Session {
    /// The refusal of `cmd` called with `args` by this connection's user, if it may not;
    /// logged and counted.
    pub(crate) fn acl_refusal(&self, cmd: Cmd, args: &[Bytes]) -> Option<Reply> {
        let context = if multi::in_multi(&self.client) && multi::queues(cmd) {
            Context::Multi
        } else {
            Context::Toplevel
        };
        self.refusal(cmd, args, context, false)
    }

    /// The refusal of a command queued in MULTI when EXEC runs it: the user's rules may
    /// have changed since it was queued (Redis's text says so).
    pub(crate) fn acl_refusal_at_exec(&self, cmd: Cmd, args: &[Bytes]) -> Option<Reply> {
        self.refusal(cmd, args, Context::Multi, true)
    }

    /// Whether this connection's user may make the call (nothing logged): the fast
    /// path's question, which leaves a refusal to [`Session::acl_refusal`].
    #[inline]
    pub(crate) fn acl_allows(&self, cmd: Cmd, args: &[Bytes]) -> bool {
        let user = self.client.user.borrow();
        check(&user, cmd, args).is_ok() && sort_patterns_refused(&user, cmd, args).is_none()
    }

    fn refusal(&self, cmd: Cmd, args: &[Bytes], context: Context, at_exec: bool) -> Option<Reply> {
        let slot = &self.client.user;
        let user = slot.borrow();
        let refused = match check(&user, cmd, args) {
            Ok(()) => return sort_patterns_refused(&user, cmd, args),
            Err(r) => r,
        };
        let d = &self.shared.acl.denials;
        let (counter, reason, why) = match refused.denied {
            Denied::Command => (
                &d.cmd,
                Reason::Command,
                "no permission to execute the command or subcommand",
            ),
            Denied::Key(_) => (
                &d.key,
                Reason::Key,
                "no permission to touch the specified keys",
            ),
            Denied::Channel(_) => (
                &d.channel,
                Reason::Channel,
                "no permission to access one of the channels used as arguments",
            ),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let text = if at_exec {
            format!("NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {why}")
        } else {
            format!("NOPERM {}", refused.text(slot.name(), false))
        };
        self.shared.acl.log(Refusal {
            reason,
            context,
            object: refused.object,
            username: slot.name().to_owned(),
            client_info: client_info_line(self, &self.client.handle),
        });
        Some(Reply::err(text))
    }

    /// Logs and counts a failed authentication naming `user` (`cmd`: AUTH or HELLO as
    /// sent).
    pub(crate) fn acl_auth_failed(&self, cmd: &[u8], user: &[u8]) {
        let acl = &self.shared.acl;
        acl.denials.auth.fetch_add(1, Ordering::Relaxed);
        acl.log(Refusal {
            reason: Reason::Auth,
            context: Context::Toplevel,
            object: String::from_utf8_lossy(cmd).into_owned(),
            username: String::from_utf8_lossy(user).into_owned(),
            client_info: client_info_line(self, &self.client.handle),
        });
    }
}

/// SORT's BY (with a pattern) and GET options read keys their patterns name: only a
/// user reading every key may use them, as in Redis.
fn sort_patterns_refused(user: &User, cmd: Cmd, args: &[Bytes]) -> Option<Reply> {
    if !matches!(cmd.name(), "sort" | "sort_ro") {
        return None;
    }
    let mut i = 2;
    let mut option = None;
    // Options are stepped over with their arguments, so that a STORE destination
    // named "get" is not taken for the option.
    while i + 1 < args.len() {
        let a = &args[i];
        if eq_ci(a, "BY") && args[i + 1].contains(&b'*') {
            option = Some("BY");
            break;
        }
        if eq_ci(a, "GET") {
            option = Some("GET");
            break;
        }
        i += if eq_ci(a, "LIMIT") {
            3
        } else if eq_ci(a, "BY") || eq_ci(a, "STORE") {
            2
        } else {
            1
        };
    }
    let option = option?;
    let parts = Parts::of(cmd, args);
    if user.reads_every_key_for(&parts.call(cmd.name(), args)) {
        return None;
    }
    Some(Reply::err(format!(
        "ERR {option} option of SORT denied due to insufficient ACL permissions."
    )))
}

/// The command as ACL rules and replies name it: `config|get` for a subcommand.
fn full_name(cmd: Cmd, args: &[Bytes]) -> String {
    let name = cmd.name();
    args.get(1)
        .and_then(|sub| super::categories::lookup(name)?.subcommand(sub))
        .map_or(name, |s| s.full_name)
        .to_owned()
}

fn arg_text(args: &[Bytes], at: usize) -> String {
    args.get(at)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .unwrap_or_default()
}
