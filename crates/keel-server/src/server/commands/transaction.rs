//! Transaction commands: MULTI, EXEC, DISCARD, WATCH and UNWATCH (logic in
//! [`crate::server::multi`] and [`crate::server::watched_keys`]).

use bytes::Bytes;
use keel_engine::Reply;

use super::Outcome;
use crate::server::conn::Session;
use crate::server::multi;

pub(super) fn multi_cmd(s: &mut Session, _args: &[Bytes]) -> Outcome {
    Outcome::Reply(multi::multi(&mut s.client))
}

pub(super) fn exec(_s: &mut Session, _args: &[Bytes]) -> Outcome {
    // Awaits the coordinator: carried out by the connection.
    Outcome::Exec
}

pub(super) fn discard(s: &mut Session, _args: &[Bytes]) -> Outcome {
    Outcome::Reply(multi::discard(s))
}

pub(super) fn watch(s: &mut Session, args: &[Bytes]) -> Outcome {
    Outcome::Reply(multi::watch(s, args.get(1..).unwrap_or_default()))
}

pub(super) fn unwatch(s: &mut Session, _args: &[Bytes]) -> Outcome {
    multi::unwatch(s);
    Outcome::Reply(Reply::Ok)
}
