//! Pub/sub commands (SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, the
//! sharded SSUBSCRIBE, SUNSUBSCRIBE and SPUBLISH, PUBSUB), MONITOR, and the
//! subscribe-mode rules the connection applies before dispatch.
//!
//! Shard channels work as in a standalone Redis: a namespace apart from ordinary
//! channels (PUBLISH never reaches an SSUBSCRIBE, nor SPUBLISH a SUBSCRIBE or a
//! pattern), delivered as `smessage`, with confirmations counting shard channels only.

use bytes::Bytes;
use keel_engine::Reply;

use super::{eq_ci, err, Cmd, Outcome};
use crate::resp::{encode, Protocol};
use crate::server::conn::Session;
use crate::server::pubsub::ClientPubSub;
use crate::server::pubsub::PubSub;

/// Commands a RESP2 client in subscribe mode may run.
const ALLOWED_SUBSCRIBED: &[&str] = &[
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "unsubscribe",
    "punsubscribe",
    "sunsubscribe",
    "ping",
    "quit",
    "reset",
];

/// What the connection checks before running `cmd`: the subscribe-mode restriction and
/// PING's subscribe-mode reply (RESP2), RESET dropping subscriptions, and the MONITOR
/// feed. Some(reply) answers the request instead of running it.
pub fn before_dispatch(s: &mut Session, cmd: Cmd, args: &[Bytes]) -> Option<Reply> {
    let pubsub = &s.shared.pubsub;
    if s.client.pubsub.subscribed() && s.client.protocol == Protocol::Resp2 {
        let name = cmd.name();
        if !ALLOWED_SUBSCRIBED.contains(&name) {
            return Some(Reply::err(format!(
                "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
            )));
        }
        if name == "ping" && args.len() <= 2 {
            feed(s, cmd, args);
            let msg = args.get(1).cloned().unwrap_or_default();
            return Some(Reply::Array(vec![Reply::bulk("pong"), Reply::Bulk(msg)]));
        }
    }
    if cmd.name() == "reset" {
        pubsub.drop_client(&mut s.client.pubsub);
    }
    feed(s, cmd, args);
    None
}

/// Shows the command to MONITOR clients, unless it is one Redis keeps from them: the
/// administrative commands (CONFIG, ACL SETUSER, DEBUG, …: Redis's `admin` flag, which
/// every command of the @admin category but LASTSAVE and ROLE carries).
fn feed(s: &Session, cmd: Cmd, args: &[Bytes]) {
    let pubsub = &s.shared.pubsub;
    if !pubsub.has_monitors() {
        return;
    }
    let name = cmd.name();
    let admin = crate::server::acl::categories::of(name, args.get(1).map(|a| &a[..]))
        & crate::server::acl::categories::ADMIN
        != 0;
    if admin && !matches!(name, "lastsave" | "role") {
        return;
    }
    pubsub.feed_monitors(s.client.db, s.client.handle.addr, args);
}

/// Appends every reply but the last to the output and returns the last (a server command
/// answers with one `Outcome`; the subscribe family answers once per name).
fn replies(s: &mut Session, mut frames: Vec<Reply>) -> Outcome {
    let last = frames.pop().unwrap_or(Reply::Nil);
    for f in &frames {
        encode(f, s.client.protocol, &mut s.out);
    }
    Outcome::Reply(last)
}

fn frame(kind: &str, name: Reply, count: usize) -> Reply {
    Reply::Push(vec![Reply::bulk(kind), name, Reply::Int(count as i64)])
}

type Change = fn(&PubSub, &mut ClientPubSub, &Bytes) -> usize;

fn change(s: &mut Session, names: &[Bytes], kind: &str, op: Change) -> Outcome {
    s.client.pubsub.set_protocol(s.client.protocol);
    let ps = std::sync::Arc::clone(&s.shared.pubsub);
    let frames = names
        .iter()
        .map(|n| {
            let count = op(&ps, &mut s.client.pubsub, n);
            frame(kind, Reply::Bulk(n.clone()), count)
        })
        .collect();
    replies(s, frames)
}

pub(super) fn subscribe(s: &mut Session, args: &[Bytes]) -> Outcome {
    change(s, &args[1..], "subscribe", PubSub::subscribe)
}

pub(super) fn psubscribe(s: &mut Session, args: &[Bytes]) -> Outcome {
    change(s, &args[1..], "psubscribe", PubSub::psubscribe)
}

pub(super) fn unsubscribe(s: &mut Session, args: &[Bytes]) -> Outcome {
    let names = given_or_held(args, &s.client.pubsub.channels);
    leave(
        s,
        &names,
        "unsubscribe",
        ClientPubSub::count,
        PubSub::unsubscribe,
    )
}

pub(super) fn punsubscribe(s: &mut Session, args: &[Bytes]) -> Outcome {
    let names = given_or_held(args, &s.client.pubsub.patterns);
    leave(
        s,
        &names,
        "punsubscribe",
        ClientPubSub::count,
        PubSub::punsubscribe,
    )
}

pub(super) fn ssubscribe(s: &mut Session, args: &[Bytes]) -> Outcome {
    change(s, &args[1..], "ssubscribe", PubSub::ssubscribe)
}

pub(super) fn sunsubscribe(s: &mut Session, args: &[Bytes]) -> Outcome {
    let names = given_or_held(args, &s.client.pubsub.shard_channels);
    leave(
        s,
        &names,
        "sunsubscribe",
        ClientPubSub::shard_count,
        PubSub::sunsubscribe,
    )
}

/// The names an UNSUBSCRIBE form was given, or without any, all the client `held`.
fn given_or_held(args: &[Bytes], held: &std::collections::HashSet<Bytes>) -> Vec<Bytes> {
    if args.len() > 1 {
        args[1..].to_vec()
    } else {
        held.iter().cloned().collect()
    }
}

/// Leaves `names`; with none to leave, one frame with a nil name and the client's
/// `count` of that kind, as Redis answers.
fn leave(
    s: &mut Session,
    names: &[Bytes],
    kind: &str,
    count: fn(&ClientPubSub) -> usize,
    op: Change,
) -> Outcome {
    if names.is_empty() {
        let n = count(&s.client.pubsub);
        return Outcome::Reply(frame(kind, Reply::Nil, n));
    }
    change(s, names, kind, op)
}

pub(super) fn publish(s: &mut Session, args: &[Bytes]) -> Outcome {
    let n = s.shared.pubsub.publish(&args[1], &args[2]);
    Outcome::Reply(Reply::Int(n as i64))
}

pub(super) fn spublish(s: &mut Session, args: &[Bytes]) -> Outcome {
    let n = s.shared.pubsub.spublish(&args[1], &args[2]);
    Outcome::Reply(Reply::Int(n as i64))
}

pub(super) fn pubsub(s: &mut Session, args: &[Bytes]) -> Outcome {
    let sub = &args[1];
    let ps = &s.shared.pubsub;
    if eq_ci(sub, "CHANNELS") && args.len() <= 3 {
        let chans = ps.channels(args.get(2).map(|p| &p[..]));
        return Outcome::Reply(Reply::bulks(chans));
    }
    if eq_ci(sub, "NUMSUB") {
        let mut out = Vec::with_capacity(2 * (args.len() - 2));
        for ch in &args[2..] {
            out.push(Reply::Bulk(ch.clone()));
            out.push(Reply::Int(ps.numsub(ch) as i64));
        }
        return Outcome::Reply(Reply::Array(out));
    }
    if eq_ci(sub, "NUMPAT") && args.len() == 2 {
        return Outcome::Reply(Reply::Int(ps.numpat() as i64));
    }
    if eq_ci(sub, "SHARDCHANNELS") && args.len() <= 3 {
        let chans = ps.shard_channels(args.get(2).map(|p| &p[..]));
        return Outcome::Reply(Reply::bulks(chans));
    }
    if eq_ci(sub, "SHARDNUMSUB") {
        let mut out = Vec::with_capacity(2 * (args.len() - 2));
        for ch in &args[2..] {
            out.push(Reply::Bulk(ch.clone()));
            out.push(Reply::Int(ps.shard_numsub(ch) as i64));
        }
        return Outcome::Reply(Reply::Array(out));
    }
    if eq_ci(sub, "HELP") && args.len() == 2 {
        return Outcome::Reply(Reply::Array(
            [
                "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|l| Reply::Simple((*l).into()))
            .collect(),
        ));
    }
    err(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
        String::from_utf8_lossy(sub)
    ))
}

pub(super) fn monitor(s: &mut Session, _args: &[Bytes]) -> Outcome {
    s.client.pubsub.set_protocol(s.client.protocol);
    let ps = std::sync::Arc::clone(&s.shared.pubsub);
    ps.monitor(&mut s.client.pubsub);
    Outcome::Reply(Reply::Ok)
}
