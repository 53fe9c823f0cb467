//! What one call touches, as the ACL check needs it: its keys (from the one command
//! table) with the access each needs (for `%R~` / `%W~` patterns, see [`key_access`])
//! and its channels.

use bytes::Bytes;
use keel_engine::command::flags::READONLY;
use keel_engine::command::key_indices;
use smallvec::SmallVec;

use super::key_access;
use super::user::{Call, KeyAccess};
use crate::server::commands::Cmd;

/// Keys of a call, at most this many kept inline.
type Keys = SmallVec<[(usize, KeyAccess); 8]>;
/// Channels of a call.
type Channels = SmallVec<[(usize, bool); 4]>;

/// The keys and channels of one call.
#[derive(Debug, Default)]
pub struct Parts {
    keys: Keys,
    channels: Channels,
}

impl Parts {
    /// What `cmd` called with `args` touches.
    pub fn of(cmd: Cmd, args: &[Bytes]) -> Self {
        let mut parts = Parts::default();
        let name = cmd.name();
        match cmd {
            Cmd::Engine(spec) => {
                let fallback = if spec.flags & READONLY != 0 {
                    KeyAccess::Read
                } else {
                    KeyAccess::ReadWrite
                };
                let specs = key_access::specs(name, args);
                for (n, at) in spec.key_indices(args).enumerate() {
                    let access = specs.and_then(|s| s.nth(n)).unwrap_or(fallback);
                    parts.keys.push((at, access));
                }
            }
            Cmd::Server(sc) => {
                let specs = key_access::specs(name, args);
                let keys = key_indices(sc.name, sc.first_key, sc.last_key, sc.step, args);
                for (n, at) in keys.enumerate() {
                    let access = specs.and_then(|s| s.nth(n)).unwrap_or(KeyAccess::Read);
                    parts.keys.push((at, access));
                }
            }
        }
        match name {
            "publish" | "spublish" => parts.channels.push((1, false)),
            "subscribe" | "ssubscribe" => {
                parts.channels.extend((1..args.len()).map(|i| (i, false)))
            }
            "psubscribe" => parts.channels.extend((1..args.len()).map(|i| (i, true))),
            _ => {}
        }
        parts
    }

    /// The call to check.
    pub fn call<'a>(&'a self, name: &'a str, args: &'a [Bytes]) -> Call<'a> {
        Call {
            name,
            args,
            keys: &self.keys,
            channels: &self.channels,
        }
    }
}
