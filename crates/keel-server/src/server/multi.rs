//! MULTI/EXEC: the per-client queue and EXEC, which sends every queued data command as
//! ONE `Op::Multi` (one log entry, one storage batch: readers never see half of it).
//!
//! Redis 7 rules kept here: MULTI, EXEC, DISCARD, WATCH, QUIT and RESET run at once
//! inside MULTI; everything else is queued (+QUEUED). A command refused at queue time
//! (unknown, wrong arity, NOAUTH, or one keel cannot run in a transaction) flags the
//! transaction and EXEC answers EXECABORT without running anything. Runtime errors
//! inside EXEC only fail their own command (the engine rolls back just that one).
//!
//! Server commands in a transaction: connection-level ones (PING, ECHO, SELECT, TIME,
//! CONFIG, INFO, UNWATCH, …) are queued and run at EXEC time, in queue order, AFTER the
//! `Op::Multi` (they do not touch data, so only their replies' positions matter). SELECT
//! also changes the database of the data commands queued after it. SAVE, BGSAVE,
//! SHUTDOWN, HELLO and the commands that need the connection's stream (MONITOR,
//! SUBSCRIBE…) are refused at queue time.
//!
//! WATCH: EXEC's `Op::Multi` is a guarded write aborted inside the write funnel when the
//! client's dirty flag is set (see [`super::watched_keys`]); a dirty EXEC answers a nil array.

use bytes::Bytes;
use keel_engine::args::parse_i64;
use keel_engine::command::flags;
use keel_engine::keys::DATABASES;
use keel_engine::{Op, Reply};

use super::client::{client_flags, ClientState};
use super::commands::{Cmd, Outcome, ServerCommand};
use super::conn::Session;
use super::watched_keys::WatchSet;
use crate::coordinator::resolve_write;

/// Commands that run at once even inside MULTI.
const IMMEDIATE: &[&str] = &["multi", "exec", "discard", "watch", "quit", "reset"];

/// The refusal of a command MULTI cannot queue (Redis's text, which names no command).
const NOT_IN_MULTI: &str = "ERR Command not allowed inside a transaction";

/// Server commands keel refuses inside MULTI.
const REFUSED: &[&str] = &[
    "save",
    "bgsave",
    "bgrewriteaof",
    "shutdown",
    "hello",
    "monitor",
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "unsubscribe",
    "punsubscribe",
    "sunsubscribe",
    "sync",
    "psync",
    "replicaof",
    "slaveof",
    "failover",
];

/// One queued command.
#[derive(Debug)]
enum Queued {
    /// A data command, with the database it runs in.
    Engine {
        db: u8,
        args: Vec<Bytes>,
        denyoom: bool,
    },
    /// A server command, run after the `Op::Multi`.
    Server {
        cmd: &'static ServerCommand,
        args: Vec<Bytes>,
    },
}

/// A client's transaction state.
#[derive(Debug, Default)]
pub struct TxnState {
    queue: Vec<Queued>,
    /// A command was refused at queue time: EXEC aborts.
    error: bool,
    /// Database of the next queued data command (SELECT inside MULTI changes it).
    queue_db: u8,
    /// WATCHed keys.
    pub watch: WatchSet,
}

/// True if the client is inside MULTI.
pub fn in_multi(c: &ClientState) -> bool {
    c.flags & client_flags::MULTI != 0
}

/// Flags the transaction after a refused command (no-op outside MULTI).
pub fn flag_error(c: &mut ClientState) {
    if in_multi(c) {
        c.txn.error = true;
    }
}

/// True if `cmd`, inside MULTI, is queued rather than run.
pub fn queues(cmd: Cmd) -> bool {
    !IMMEDIATE.contains(&cmd.name())
}

/// True when a command that may grow memory would be refused with OOM now (Redis 7
/// refuses it at queue time, which flags the transaction).
fn over_memory(s: &Session) -> bool {
    let (max, policy) = {
        let c = s.shared.config.read();
        (c.maxmemory, c.maxmemory_policy)
    };
    if max == 0 || policy != keel_engine::EvictionPolicy::NoEviction {
        // With an eviction policy the write funnel makes room at EXEC.
        return false;
    }
    let verdict =
        s.shared
            .coord
            .engine()
            .memory_pressure(max, policy, 1, crate::clock::unix_now_ms(), 0);
    matches!(verdict, Ok(keel_engine::MemoryVerdict::Oom))
}

/// Queues `args` and returns the reply (+QUEUED or the refusal, which flags the
/// transaction).
pub fn queue(s: &mut Session, cmd: Cmd, args: Vec<Bytes>) -> Reply {
    if matches!(cmd, Cmd::Engine(spec) if spec.flags & flags::DENYOOM != 0) && over_memory(s) {
        s.client.txn.error = true;
        return Reply::err(keel_engine::reply::errors::OOM);
    }
    let c = &mut s.client;
    match cmd {
        Cmd::Engine(spec) => {
            c.txn.queue.push(Queued::Engine {
                db: c.txn.queue_db,
                args,
                denyoom: spec.flags & flags::DENYOOM != 0,
            });
        }
        Cmd::Server(sc) if REFUSED.contains(&sc.name) => {
            c.txn.error = true;
            return Reply::err(NOT_IN_MULTI);
        }
        Cmd::Server(sc) => {
            if sc.name == "select" {
                if let Some(db) = args
                    .get(1)
                    .and_then(|a| parse_i64(a))
                    .and_then(|n| u8::try_from(n).ok())
                    .filter(|db| *db < DATABASES)
                {
                    c.txn.queue_db = db;
                }
            }
            c.txn.queue.push(Queued::Server { cmd: sc, args });
        }
    }
    Reply::Simple("QUEUED".into())
}

/// MULTI.
pub fn multi(c: &mut ClientState) -> Reply {
    if in_multi(c) {
        return Reply::err("ERR MULTI calls can not be nested");
    }
    c.flags |= client_flags::MULTI;
    c.txn.queue.clear();
    c.txn.error = false;
    c.txn.queue_db = c.db;
    Reply::Ok
}

/// DISCARD.
pub fn discard(s: &mut Session) -> Reply {
    if !in_multi(&s.client) {
        return Reply::err("ERR DISCARD without MULTI");
    }
    end(s);
    Reply::Ok
}

/// WATCH key [key ...].
pub fn watch(s: &mut Session, keys: &[Bytes]) -> Reply {
    if in_multi(&s.client) {
        return Reply::err("ERR WATCH inside MULTI is not allowed");
    }
    let shared = std::sync::Arc::clone(&s.shared);
    let (id, db) = (s.client.handle.id, s.client.db);
    let mut expired = Vec::new();
    for k in keys {
        expired.extend(s.client.txn.watch.watch(
            &shared.watches,
            shared.coord.engine(),
            id,
            db,
            k.clone(),
        ));
    }
    if !expired.is_empty() {
        shared.coord.expire_due(expired);
    }
    Reply::Ok
}

/// UNWATCH (and the cleanup of EXEC, DISCARD, RESET, disconnect).
pub fn unwatch(s: &mut Session) {
    let id = s.client.handle.id;
    s.client.txn.watch.clear(&s.shared.watches, id);
}

/// Leaves MULTI and drops the queue and the watches.
fn end(s: &mut Session) {
    s.client.flags &= !client_flags::MULTI;
    s.client.txn.queue.clear();
    s.client.txn.error = false;
    unwatch(s);
}

/// RESET and disconnect: no transaction, no watches.
pub fn forget(s: &mut Session) {
    end(s);
}

/// EXEC: answers EXECABORT, a nil array (dirty WATCH), or one reply per queued command.
pub async fn exec(s: &mut Session) {
    if !in_multi(&s.client) {
        s.reply(&Reply::err("ERR EXEC without MULTI")).await;
        return;
    }
    s.client.flags &= !client_flags::MULTI;
    let queue = std::mem::take(&mut s.client.txn.queue);
    if std::mem::take(&mut s.client.txn.error) {
        unwatch(s);
        s.reply(&Reply::err(
            "EXECABORT Transaction discarded because of previous errors.",
        ))
        .await;
        return;
    }
    let shared = std::sync::Arc::clone(&s.shared);
    let abort = s.client.txn.watch.dirty_flag();
    if !s.client.txn.watch.is_empty() {
        let (gone, expired) = s.client.txn.watch.expired_since(shared.coord.engine());
        if gone {
            abort.store(true, std::sync::atomic::Ordering::Release);
        }
        if !expired.is_empty() {
            shared.coord.expire_due(expired);
        }
    }
    s.settle().await;
    if s.client.tracking.is_some() {
        // Remembered before the transaction reads them (see `server::tracking`).
        for q in &queue {
            if let Queued::Engine { args, .. } = q {
                if let Ok(spec) = keel_engine::engine::resolve(args) {
                    s.track_read(spec, args);
                }
            }
        }
    }
    // Checked again: the user's rules may have changed since the commands were queued.
    // A refused command is answered with its refusal and the others run, as in Redis.
    let refused: Vec<Option<Reply>> = if s.client.user.open() {
        Vec::new()
    } else {
        queue
            .iter()
            .map(|q| match q {
                Queued::Engine { args, .. } => keel_engine::engine::resolve(args)
                    .ok()
                    .and_then(|spec| s.acl_refusal_at_exec(Cmd::Engine(spec), args)),
                Queued::Server { cmd, args } => s.acl_refusal_at_exec(Cmd::Server(cmd), args),
            })
            .collect()
    };
    let is_refused = |i: usize| refused.get(i).is_some_and(Option::is_some);
    let mut denyoom = false;
    let cmds: Vec<(u8, Vec<Bytes>)> = queue
        .iter()
        .enumerate()
        .filter(|(i, _)| !is_refused(*i))
        .filter_map(|(_, q)| match q {
            Queued::Engine {
                db,
                args,
                denyoom: d,
            } => {
                denyoom |= *d;
                Some((*db, args.clone()))
            }
            Queued::Server { .. } => None,
        })
        .collect();
    let result = if cmds.is_empty() {
        if abort.load(std::sync::atomic::Ordering::Acquire) {
            Err(Reply::NilArray)
        } else {
            Ok(Vec::new())
        }
    } else {
        let mut op = Op::Multi { cmds };
        if !s.client.user.open() {
            op = crate::server::acl::gate::gated(op, &s.client.user.borrow());
        }
        let rx = shared
            .coord
            .submit_guarded(op, denyoom, abort, s.client.handle.id);
        resolve_write(rx).await.map(|r| r.into_vec())
    };
    unwatch(s);
    let replies = match result {
        Ok(r) => r,
        Err(e) => {
            s.reply(&e).await;
            return;
        }
    };
    let mut data = replies.into_iter();
    let mut out = Vec::with_capacity(queue.len());
    let mut refused = refused.into_iter();
    for q in queue {
        if let Some(r) = refused.next().flatten() {
            out.push(r);
            continue;
        }
        let r = match q {
            Queued::Engine { .. } => data.next().unwrap_or(Reply::Nil),
            Queued::Server { cmd, args } => match (cmd.handler)(s, &args) {
                Outcome::Reply(r) | Outcome::ReplyThenClose(r) => r,
                _ => Reply::err(NOT_IN_MULTI),
            },
        };
        out.push(r);
    }
    s.reply(&Reply::Array(out)).await;
}
