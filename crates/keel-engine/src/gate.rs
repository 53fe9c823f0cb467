//! Call gates: a check of each command a script runs against the permissions of the
//! client that ran the script (the front-end's ACL), which the engine does not know.
//!
//! A gated entry (`Op::AsUser`) carries its caller's name and rules; the engine asks the
//! registered [`CallGates`] for the gate those describe, on the live path and on replay
//! alike. The decision depends only on the entry's bytes, so a replay, or a follower,
//! refuses the same calls whatever the users are by then.

use std::sync::Arc;

use bytes::Bytes;

/// Why a gate refused a call, in the front-end's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The error message without code (`User u has no permissions to run the 'set'
    /// command`); the script's error reply wraps it as Redis does.
    pub message: String,
    /// The front-end's name for the kind of refusal (`command`, `key`, `channel`).
    pub reason: &'static str,
    /// What was refused: the command's full name, the key or the channel.
    pub object: Bytes,
}

/// A check of one command (`args[0]` and its arguments) before a script runs it.
pub trait CallGate: Send + Sync {
    /// None when the call may run, else why not.
    fn refuse(&self, args: &[Bytes]) -> Option<Refusal>;
}

/// Turns a gated entry's user and rules into its gate.
pub trait CallGates: Send + Sync {
    /// The gate of user `user` with rules `rules` (as the front-end wrote them into the
    /// entry). Must be a function of its arguments: a replay has to decide alike.
    fn gate(&self, user: &Bytes, rules: &Bytes) -> Arc<dyn CallGate>;
}

/// The gate of an entry when no [`CallGates`] is registered (a tool reading a log): a
/// gated entry was limited, so nothing it calls is assumed allowed.
#[derive(Debug)]
pub struct DenyAll;

impl CallGate for DenyAll {
    fn refuse(&self, args: &[Bytes]) -> Option<Refusal> {
        let name = args.first().cloned().unwrap_or_default();
        Some(Refusal {
            message: format!(
                "no permission check is registered for the '{}' command",
                String::from_utf8_lossy(&name)
            ),
            reason: "command",
            object: name,
        })
    }
}
