//! The ACL check of the commands a limited user's script runs (the engine's
//! [`CallGates`]).
//!
//! A script's calls run inside the write funnel, so the connection cannot check them
//! beforehand. The connection instead sends a limited user's EVAL as a gated entry
//! (`Op::AsUser`) that carries the user's name and [`User::permissions`]; the engine
//! asks [`AclGates`] for the user those describe and checks each call against it, live
//! and on replay alike. So a replay refuses the same calls even after the user changed
//! or was deleted: the entry, not the ACL as it is now, decides.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use keel_engine::exec::{KeyEvent, REFUSED_CALL};
use keel_engine::gate::{CallGate, CallGates, DenyAll, Refusal};
use keel_engine::Op;
use parking_lot::Mutex;

use super::log::{Context, Reason, Refusal as LogEntry};
use super::refuse::check;
use super::user::{Denied, User};
use crate::server::commands::{self, client_line_in, user_name};
use crate::server::Shared;

/// Gates kept for reuse (a user's rules parsed once, not per EVAL); past this many the
/// cache starts over.
const CACHED: usize = 64;

/// Makes gated entries' users from their rules, keeping the last ones made.
#[derive(Default)]
pub struct AclGates {
    cache: Mutex<HashMap<(Bytes, Bytes), Arc<AclGate>>>,
}

impl CallGates for AclGates {
    fn gate(&self, user: &Bytes, rules: &Bytes) -> Arc<dyn CallGate> {
        let key = (user.clone(), rules.clone());
        if let Some(g) = self.cache.lock().get(&key) {
            return Arc::clone(g) as Arc<dyn CallGate>;
        }
        let name = String::from_utf8_lossy(user);
        let Ok(user) = User::from_permissions(&name, rules) else {
            // Rules this build cannot read (written by another version): refuse all.
            return Arc::new(DenyAll);
        };
        let gate = Arc::new(AclGate { user });
        let mut cache = self.cache.lock();
        if cache.len() >= CACHED {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&gate));
        gate
    }
}

/// One gated entry's user.
pub struct AclGate {
    user: User,
}

impl CallGate for AclGate {
    fn refuse(&self, args: &[Bytes]) -> Option<Refusal> {
        // An unknown command or a wrong arity is the engine's to answer.
        let cmd = commands::lookup(args.first()?)?;
        if !cmd.arity_ok(args.len()) {
            return None;
        }
        let refused = check(&self.user, cmd, args).err()?;
        Some(Refusal {
            message: refused.text(self.user.name(), false),
            reason: reason_of(refused.denied).name(),
            object: Bytes::from(refused.object),
        })
    }
}

fn reason_of(denied: Denied) -> Reason {
    match denied {
        Denied::Command => Reason::Command,
        Denied::Key(_) => Reason::Key,
        Denied::Channel(_) => Reason::Channel,
    }
}

/// `op` as the entry of a client whose user is `user`: gated when it runs a script or a
/// function and the user is limited (an unlimited user's calls need no check).
pub fn gated(op: Op, user: &User) -> Op {
    // The read-only forms too: queued in MULTI they run in the funnel as well.
    let runs_script = |args: &[Bytes]| {
        args.first()
            .is_some_and(|n| keel_engine::command::runs_script(n))
    };
    let scripted = match &op {
        Op::Command { args, .. } => runs_script(args),
        Op::Multi { cmds } => cmds.iter().any(|(_, args)| runs_script(args)),
        _ => false,
    };
    if !scripted || user.unrestricted() {
        return op;
    }
    let (user, rules) = gate_words(user);
    Op::AsUser {
        user,
        rules,
        op: Box::new(op),
    }
}

/// The name and permissions a gate is made of, for a gated entry or a read-only script.
pub fn gate_words(user: &User) -> (Bytes, Bytes) {
    (
        Bytes::copy_from_slice(user.name().as_bytes()),
        Bytes::from(user.permissions()),
    )
}

/// Logs (ACL LOG, context `lua`) and counts the calls a script of client `origin`
/// had refused, found among an entry's `events`.
pub fn log_refusals(shared: &Shared, events: &[KeyEvent], origin: u64) {
    let client = shared.clients.get(origin);
    for ev in events.iter().filter(|e| e.class == REFUSED_CALL) {
        let d = &shared.acl.denials;
        let (counter, reason) = match ev.event {
            "key" => (&d.key, Reason::Key),
            "channel" => (&d.channel, Reason::Channel),
            _ => (&d.cmd, Reason::Command),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        shared.acl.log(LogEntry {
            reason,
            context: Context::Lua,
            object: String::from_utf8_lossy(&ev.key).into_owned(),
            username: client.as_deref().map_or_else(String::new, user_name),
            client_info: client
                .as_deref()
                .map_or_else(String::new, |h| client_line_in(shared, h)),
        });
    }
}
