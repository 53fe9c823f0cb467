//! SAVE, BGSAVE, LASTSAVE and SHUTDOWN.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use keel_engine::reply::errors;
use keel_engine::Reply;

use super::{eq_ci, err, Outcome};
use crate::server::conn::Session;

pub(super) fn save(_s: &mut Session, _args: &[Bytes]) -> Outcome {
    Outcome::Save
}

pub(super) fn bgsave(_s: &mut Session, args: &[Bytes]) -> Outcome {
    match args {
        [_] => Outcome::Bgsave { aof: false },
        [_, o] if eq_ci(o, "SCHEDULE") => Outcome::Bgsave { aof: false },
        _ => err(errors::SYNTAX),
    }
}

/// BGREWRITEAOF: keel compacts its log by snapshotting and cutting the WAL before the
/// snapshot, so the rewrite Redis users ask for is a background snapshot.
pub(super) fn bgrewriteaof(_s: &mut Session, _args: &[Bytes]) -> Outcome {
    Outcome::Bgsave { aof: true }
}

pub(super) fn lastsave(s: &mut Session, _args: &[Bytes]) -> Outcome {
    let t = s
        .shared
        .coord
        .state()
        .last_save_unix
        .load(Ordering::Relaxed);
    Outcome::Reply(Reply::Int(i64::try_from(t).unwrap_or(i64::MAX)))
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: with the WAL on, every acknowledged
/// write is durable per policy, so the default does not snapshot; with it off, the
/// default snapshots when save points are set (Redis's rule). SAVE always does.
pub(super) fn shutdown(_s: &mut Session, args: &[Bytes]) -> Outcome {
    let mut save = false;
    let mut nosave = false;
    for a in &args[1..] {
        if eq_ci(a, "SAVE") {
            save = true;
        } else if eq_ci(a, "NOSAVE") {
            nosave = true;
        } else if eq_ci(a, "NOW") || eq_ci(a, "FORCE") {
        } else if eq_ci(a, "ABORT") {
            return err("ERR No shutdown in progress.");
        } else {
            return err(errors::SYNTAX);
        }
    }
    let save = match (save, nosave) {
        (true, true) => return err(errors::SYNTAX),
        (true, false) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    };
    Outcome::Shutdown { save }
}
