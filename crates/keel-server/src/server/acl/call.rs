//! What one call touches, as the ACL check needs it: its keys (from the one command
//! table) with the access each needs (for `%R~` / `%W~` patterns, see [`key_access`])
//! and its channels.

use bytes::Bytes;
use keel_engine::command::flags::READONLY;
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
                for (n, at) in spec.key_indices(args).enumerate() {
                    let access = key_access::access(name, args, n).unwrap_or(fallback);
                    parts.keys.push((at, access));
                }
            }
            Cmd::Server(sc) => {
                if sc.first_key > 0 {
                    let last = if sc.last_key < 0 {
                        args.len() as i64 + i64::from(sc.last_key)
                    } else {
                        i64::from(sc.last_key)
                    };
                    let step = usize::try_from(sc.step.max(1)).unwrap_or(1);
                    let first = usize::try_from(sc.first_key).unwrap_or(1);
                    let last = usize::try_from(last)
                        .unwrap_or(0)
                        .min(args.len().saturating_sub(1));
                    for (n, at) in (first..=last).step_by(step).enumerate() {
                        let access = key_access::access(name, args, n).unwrap_or(KeyAccess::Read);
                        parts.keys.push((at, access));
                    }
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
