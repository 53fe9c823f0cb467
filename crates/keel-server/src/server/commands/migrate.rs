//! MIGRATE: moves keys to another server by DUMP here, RESTORE there, then deletes them
//! here (unless COPY), with Redis 7.2's syntax, replies and error texts.
//!
//! What differs from Redis, and why:
//! - The payloads are keel's DUMP format, so the target must be keel: Redis refuses them
//!   ("DUMP payload version or checksum are wrong", passed back as the target's error).
//! - Only the calling client waits. Redis blocks the whole server for the transfer;
//!   here the connection's task awaits the target while every other client goes on.
//! - So a key may be written here while it travels. The deletion is conditional: each
//!   key's modification index is read *before* its DUMP, and the deletion is one
//!   `Op::TxnCommit` that deletes it only if that index is unchanged. A key written in
//!   between stays here (the target has the value as of the DUMP or later); no write is
//!   lost. A key kept that way is logged, and the reply is still OK, as the target took
//!   every key.
//! - No connection cache (Redis keeps one per target for 10 s): every MIGRATE connects,
//!   and INFO's `migrate_cached_sockets` stays 0.
//! - Inside MULTI it is refused at EXEC, like the other server commands that wait.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use keel_engine::reply::errors;
use keel_engine::txn::TxnKeyWrite;
use keel_engine::{Op, Reply};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::{eq_ci, Deferred, Outcome};
use crate::clock::unix_now_ms;
use crate::resp::{encode, Protocol};
use crate::server::conn::Session;
use crate::server::Shared;

/// Longest reply line read from the target: its replies to AUTH, SELECT and RESTORE are
/// status or error lines; anything longer is not a server answering those.
const MAX_LINE: usize = 64 * 1024;

/// The credentials of AUTH (username None) or AUTH2.
type Auth = (Option<Bytes>, Bytes);

/// What MIGRATE was asked to do.
#[derive(Debug)]
struct Plan {
    host: String,
    /// None when the argument is not a port: the connection then fails, as in Redis
    /// (which reads it with `atoi`).
    port: Option<u16>,
    db: i64,
    timeout: Duration,
    copy: bool,
    replace: bool,
    auth: Option<Auth>,
    keys: Vec<Bytes>,
}

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
/// [AUTH password | AUTH2 username password] [KEYS key [key ...]]
pub(super) fn migrate(s: &mut Session, args: &[Bytes]) -> Outcome {
    let plan = match parse(args) {
        Ok(p) => p,
        Err(e) => return Outcome::Reply(e),
    };
    let shared = std::sync::Arc::clone(&s.shared);
    let db = s.client.db;
    Outcome::Deferred(Deferred(Box::pin(
        async move { run(&shared, db, plan).await },
    )))
}

fn parse(args: &[Bytes]) -> Result<Plan, Reply> {
    let mut copy = false;
    let mut replace = false;
    let mut auth = None;
    let mut keys = None;
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let a = &args[j];
        if eq_ci(a, "COPY") {
            copy = true;
        } else if eq_ci(a, "REPLACE") {
            replace = true;
        } else if eq_ci(a, "AUTH") {
            if more < 1 {
                return Err(Reply::err(errors::SYNTAX));
            }
            auth = Some((None, args[j + 1].clone()));
            j += 1;
        } else if eq_ci(a, "AUTH2") {
            if more < 2 {
                return Err(Reply::err(errors::SYNTAX));
            }
            auth = Some((Some(args[j + 1].clone()), args[j + 2].clone()));
            j += 2;
        } else if eq_ci(a, "KEYS") {
            if !args[3].is_empty() {
                return Err(Reply::err(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            keys = Some(args[j + 1..].to_vec());
            break;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        j += 1;
    }
    // Redis reads the timeout before the database.
    let number = |a: &Bytes| {
        std::str::from_utf8(a)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or_else(|| Reply::err(errors::NOT_INTEGER))
    };
    let timeout_ms = number(&args[5])?;
    let db = number(&args[4])?;
    let timeout_ms = if timeout_ms <= 0 { 1000 } else { timeout_ms };
    Ok(Plan {
        host: String::from_utf8_lossy(&args[1]).into_owned(),
        port: std::str::from_utf8(&args[2])
            .ok()
            .and_then(|p| p.parse().ok()),
        db,
        timeout: Duration::from_millis(timeout_ms.unsigned_abs()),
        copy,
        replace,
        auth,
        keys: keys.unwrap_or_else(|| vec![args[3].clone()]),
    })
}

/// One key as it leaves: its RESTORE arguments and its conditional deletion.
struct Leaving {
    key: Bytes,
    /// Milliseconds to live, 0 for none (RESTORE's `ttl`).
    ttl: i64,
    payload: Bytes,
}

async fn run(shared: &Shared, db: u8, plan: Plan) -> Reply {
    let engine = shared.coord.engine();
    // Each key's modification index first, then its DUMP (see the module's docs).
    let mut deletions = match engine.begin(db) {
        Ok(mut txn) => {
            for k in &plan.keys {
                txn.delete(k.clone());
            }
            match txn.into_commit() {
                Ok((_, _, writes)) => writes,
                Err(e) => return Reply::err(format!("ERR {e}")),
            }
        }
        Err(e) => return Reply::err(format!("ERR {e}")),
    };
    let mut leaving = Vec::with_capacity(plan.keys.len());
    for key in &plan.keys {
        let now = unix_now_ms();
        let read = |cmd: &'static [u8]| {
            engine
                .read(db, now, &[Bytes::from_static(cmd), key.clone()])
                .map(|r| r.reply)
        };
        let payload = match read(b"DUMP") {
            Ok(Reply::Bulk(p)) => p,
            Ok(_) => continue,
            Err(e) => return Reply::err(format!("ERR {e}")),
        };
        let ttl = match read(b"PTTL") {
            Ok(Reply::Int(-1)) => 0,
            Ok(Reply::Int(ms)) if ms >= 0 => ms.max(1),
            // Gone (expired) since its DUMP.
            Ok(_) => continue,
            Err(e) => return Reply::err(format!("ERR {e}")),
        };
        leaving.push(Leaving {
            key: key.clone(),
            ttl,
            payload,
        });
    }
    if leaving.is_empty() {
        return Reply::Simple("NOKEY".into());
    }
    let answers = match transfer(&plan, &leaving).await {
        Ok(a) => a,
        Err(e) => return e,
    };
    // Redis: an AUTH or SELECT refusal fails every RESTORE; the first error is the reply.
    let preamble_failed = answers.preamble.iter().find_map(|a| a.as_ref().err());
    let mut first_error = preamble_failed.cloned();
    let mut moved = Vec::new();
    for (l, answer) in leaving.iter().zip(&answers.restores) {
        match answer {
            Err(e) => {
                first_error.get_or_insert_with(|| e.clone());
            }
            Ok(()) if preamble_failed.is_none() => moved.push(l.key.clone()),
            Ok(()) => {}
        }
    }
    if !plan.copy && !moved.is_empty() {
        deletions.retain(|w| moved.contains(&w.key));
        delete_unchanged(shared, db, deletions).await;
    }
    match first_error {
        Some(e) => Reply::err(format!("ERR Target instance replied with error: {e}")),
        None => Reply::Ok,
    }
}

/// The target's answers: to AUTH and SELECT, then one per RESTORE; `Err` holds an error
/// line's text without its `-`.
struct Answers {
    preamble: Vec<Result<(), String>>,
    restores: Vec<Result<(), String>>,
}

/// Connects, sends AUTH (if asked), SELECT and every RESTORE in one write, and reads
/// the answers, each step bounded by the timeout. `Err` is the reply to give.
async fn transfer(plan: &Plan, leaving: &[Leaving]) -> Result<Answers, Reply> {
    let connect_failed = || Reply::err("IOERR error or timeout connecting to the client");
    let port = plan.port.ok_or_else(connect_failed)?;
    let sock = match timeout(plan.timeout, TcpStream::connect((plan.host.as_str(), port))).await {
        Ok(Ok(s)) => s,
        _ => return Err(connect_failed()),
    };
    let _ = sock.set_nodelay(true);
    let (rd, mut wr) = sock.into_split();
    let mut out = BytesMut::new();
    let mut command = |args: Vec<Bytes>| {
        encode(
            &Reply::Array(args.into_iter().map(Reply::Bulk).collect()),
            Protocol::Resp2,
            &mut out,
        )
    };
    let word = |w: &'static str| Bytes::from_static(w.as_bytes());
    let mut preamble = 0;
    if let Some((user, pass)) = &plan.auth {
        let mut args = vec![word("AUTH")];
        args.extend(user.clone());
        args.push(pass.clone());
        command(args);
        preamble += 1;
    }
    command(vec![word("SELECT"), Bytes::from(plan.db.to_string())]);
    preamble += 1;
    for l in leaving {
        let mut args = vec![
            word("RESTORE"),
            l.key.clone(),
            Bytes::from(l.ttl.to_string()),
            l.payload.clone(),
        ];
        if plan.replace {
            args.push(word("REPLACE"));
        }
        command(args);
    }
    let io_error =
        |what: &str| Reply::err(format!("IOERR error or timeout {what} target instance"));
    match timeout(plan.timeout, wr.write_all(&out)).await {
        Ok(Ok(())) => {}
        _ => return Err(io_error("writing to")),
    }
    let mut rd = BufReader::new(rd);
    let mut answers = Answers {
        preamble: Vec::with_capacity(preamble),
        restores: Vec::with_capacity(leaving.len()),
    };
    let mut line = Vec::new();
    for i in 0..preamble + leaving.len() {
        line.clear();
        let mut bounded = (&mut rd).take(MAX_LINE as u64);
        match timeout(plan.timeout, bounded.read_until(b'\n', &mut line)).await {
            Ok(Ok(_)) if line.len() >= 3 && line.ends_with(b"\r\n") => {}
            _ => return Err(io_error("reading")),
        }
        let text = || String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        let answer = match line.first() {
            Some(b'+') => Ok(()),
            Some(b'-') => Err(text()),
            // A RESTORE, AUTH or SELECT answers with a status or an error line.
            _ => return Err(io_error("reading")),
        };
        if i < preamble {
            answers.preamble.push(answer);
        } else {
            answers.restores.push(answer);
        }
    }
    Ok(answers)
}

/// Deletes the keys the target took whose modification index is still the one read
/// before their DUMP: all in one entry, or, when one was written meanwhile, key by key,
/// keeping those written.
async fn delete_unchanged(shared: &Shared, db: u8, deletions: Vec<TxnKeyWrite>) {
    let commit = |writes: Vec<TxnKeyWrite>| Op::TxnCommit {
        db,
        start_index: 0,
        writes,
    };
    let all_at_once = shared.coord.write(commit(deletions.clone()), false).await;
    if matches!(all_at_once.as_deref(), Ok([Reply::Ok])) {
        return;
    }
    for w in deletions {
        let key = w.key.clone();
        let r = shared.coord.write(commit(vec![w]), false).await;
        if !matches!(r.as_deref(), Ok([Reply::Ok])) {
            tracing::warn!(
                key = %String::from_utf8_lossy(&key),
                "MIGRATE: the key was written while it was sent, so it is kept here too"
            );
        }
    }
}
