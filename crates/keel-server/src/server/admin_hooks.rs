//! The dispatcher's admin hooks, kept out of `conn.rs`: which commands CLIENT PAUSE
//! WRITE holds, CLIENT REPLY's muting rules, and feeding SLOWLOG/LATENCY.

use std::sync::Arc;

use bytes::Bytes;
use keel_engine::command::flags;

use super::client::ClientHandle;
use super::client_admin::reply_mode;
use super::commands::Cmd;
use super::Shared;
use crate::clock::unix_now;
use crate::resp::Protocol;

/// True if `c` changes data (held by CLIENT PAUSE WRITE).
pub fn is_write(c: Cmd) -> bool {
    match c {
        Cmd::Engine(spec) => spec.is_write(),
        Cmd::Server(sc) => sc.flags & flags::WRITE != 0,
    }
}

/// The RESP version number.
pub fn resp_number(p: Protocol) -> u8 {
    match p {
        Protocol::Resp2 => 2,
        Protocol::Resp3 => 3,
    }
}

/// Whether the reply of a command is dropped, given the mode before and after it ran.
pub fn mute(before: u8, after: u8) -> bool {
    match before {
        // CLIENT REPLY ON answers OK even when replies were off.
        reply_mode::OFF => after != reply_mode::ON,
        reply_mode::SKIP_NEXT => true,
        _ => after == reply_mode::OFF || after == reply_mode::SKIP_THIS_AND_NEXT,
    }
}

/// The mode after a command, given the mode before and after it ran.
pub fn next_mode(before: u8, after: u8) -> u8 {
    match after {
        reply_mode::SKIP_THIS_AND_NEXT => reply_mode::SKIP_NEXT,
        // The skipped command used up the skip (unless it set a new mode itself).
        reply_mode::SKIP_NEXT if before == reply_mode::SKIP_NEXT => reply_mode::ON,
        m => m,
    }
}

/// Records a finished command in SLOWLOG and LATENCY if it qualifies.
pub fn observe_slow(sh: &Shared, h: &Arc<ClientHandle>, args: &[Bytes], usec: u64) {
    if !sh.slowlog.qualifies(usec) {
        return;
    }
    let name = h.name.lock().clone().unwrap_or_default();
    sh.slowlog
        .observe(args, usec, unix_now(), &h.addr.to_string(), &name);
}
