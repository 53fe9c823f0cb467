//! Scripting commands (Redis's eval.c): EVAL, EVALSHA, their read-only forms, and
//! SCRIPT.
//!
//! # The script cache
//!
//! A script is kept as an engine-internal record, `keys::script_key(sha)`, written by
//! SCRIPT LOAD and by the first EVAL of it. It is therefore in the log, the snapshots
//! and every replica: an EVALSHA replayed after a restart finds the script it found the
//! first time, and a client that loaded a script keeps it across a restart or a
//! failover (Redis forgets its scripts then). SCRIPT FLUSH removes the records; FLUSHALL
//! leaves them, as Redis does. Each thread also keeps the scripts it compiled (see
//! `script::vm`), which is only a cache: whether a script exists is the record's say.

use bytes::Bytes;

use crate::args::{eq_ci, parse_i64};
use crate::command::{flags::*, CommandSpec};
use crate::error::{fail, CmdResult};
use crate::exec::Exec;
use crate::keys;
use crate::reply::{errors, Reply};
use crate::script::{self, RunOptions};

/// EVALSHA of a script that is not in the cache.
const NO_SCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// The scripting commands. EVAL and EVALSHA are DENYOOM, unlike Redis's: Redis refuses
/// each write a script makes over maxmemory, a decision a replay could not repeat (it
/// depends on the node's memory at the time), so keel refuses the whole script, and
/// EVAL_RO still runs.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    spec("eval", -3, WRITE | DENYOOM | NOSCRIPT, "Executes a server-side Lua script.", eval),
    spec("evalsha", -3, WRITE | DENYOOM | NOSCRIPT, "Executes a server-side Lua script by SHA1 digest.", evalsha),
    spec("eval_ro", -3, READONLY | NOSCRIPT, "Executes a read-only server-side Lua script.", eval_ro),
    spec("evalsha_ro", -3, READONLY | NOSCRIPT, "Executes a read-only server-side Lua script by SHA1 digest.", evalsha_ro),
    spec("script", -2, WRITE | NOSCRIPT, "A container for Lua scripts management commands.", script_cmd),
];

/// A scripting table entry: EVAL's and FCALL's keys follow a `numkeys` count (see
/// `command::movable`); SCRIPT and FUNCTION have none.
pub(crate) const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    handler: crate::command::Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "scripting",
        summary,
        handler,
    }
}

fn eval(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    eval_body(ex, args, false)
}

fn eval_ro(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    eval_body(ex, args, true)
}

fn evalsha(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    eval_sha(ex, args, false)
}

fn evalsha_ro(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    eval_sha(ex, args, true)
}

/// EVAL and EVAL_RO: runs the script, and on the write path caches it. A script that
/// does not compile fails `run` before it runs and is not cached; one that compiled is,
/// whatever it then did, as in Redis.
fn eval_body(ex: &mut Exec, args: &[Bytes], read_only: bool) -> CmdResult<Reply> {
    let (keys, argv) = split_keys(args)?;
    let body = &args[1];
    let sha = script::sha1_hex(body);
    let reply = script::run(ex, &sha, body, keys, argv, RunOptions { read_only })?;
    if ex.is_write() {
        remember(ex, &sha, body)?;
    }
    Ok(reply)
}

/// EVALSHA and EVALSHA_RO: runs the cached script the SHA1 names.
fn eval_sha(ex: &mut Exec, args: &[Bytes], read_only: bool) -> CmdResult<Reply> {
    let (keys, argv) = split_keys(args)?;
    let sha = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    if sha.len() != 40 {
        return fail(NO_SCRIPT);
    }
    let Some(body) = ex.get(&keys::script_key(&sha))? else {
        return fail(NO_SCRIPT);
    };
    script::run(ex, &sha, &body, keys, argv, RunOptions { read_only })
}

/// The keys and the other arguments of EVAL's `script numkeys key… arg…`.
fn split_keys(args: &[Bytes]) -> CmdResult<(&[Bytes], &[Bytes])> {
    split_keys_or(args, errors::NOT_INTEGER)
}

/// [`split_keys`], with `not_integer` the reply to a count that is not a number
/// (FCALL's differs from EVAL's).
pub(crate) fn split_keys_or<'a>(
    args: &'a [Bytes],
    not_integer: &str,
) -> CmdResult<(&'a [Bytes], &'a [Bytes])> {
    let Some(n) = parse_i64(&args[2]) else {
        return fail(not_integer.to_owned());
    };
    if n < 0 {
        return fail("ERR Number of keys can't be negative");
    }
    let rest = &args[3..];
    match usize::try_from(n) {
        Ok(n) if n <= rest.len() => Ok(rest.split_at(n)),
        _ => fail("ERR Number of keys can't be greater than number of args"),
    }
}

/// Writes the script's record unless it is there already.
fn remember(ex: &mut Exec, sha: &str, body: &Bytes) -> CmdResult<()> {
    let key = keys::script_key(sha);
    if !ex.contains(&key)? {
        ex.put(key, body.clone())?;
    }
    Ok(())
}

/// SCRIPT LOAD | EXISTS | FLUSH | KILL | HELP.
fn script_cmd(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let sub = &args[1];
    let wrong = || {
        fail(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try SCRIPT HELP.",
            String::from_utf8_lossy(sub)
        ))
    };
    if eq_ci(sub, "load") {
        if args.len() != 3 {
            return wrong();
        }
        let sha = script::sha1_hex(&args[2]);
        script::compile(&sha, &args[2])?;
        remember(ex, &sha, &args[2])?;
        Ok(Reply::bulk(sha))
    } else if eq_ci(sub, "exists") {
        if args.len() < 3 {
            return wrong();
        }
        let mut out = Vec::with_capacity(args.len() - 2);
        for sha in &args[2..] {
            let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
            let found = sha.len() == 40 && ex.contains(&keys::script_key(&sha))?;
            out.push(Reply::Int(i64::from(found)));
        }
        Ok(Reply::Array(out))
    } else if eq_ci(sub, "flush") {
        match args.get(2) {
            None if args.len() == 2 => {}
            Some(m) if args.len() == 3 && (eq_ci(m, "sync") || eq_ci(m, "async")) => {}
            _ => return fail("ERR SCRIPT FLUSH only support SYNC|ASYNC option"),
        }
        ex.delete_prefixed(&keys::script_key(""))?;
        Ok(Reply::Ok)
    } else if eq_ci(sub, "kill") {
        if args.len() != 2 {
            return wrong();
        }
        // A script runs inside the log entry that started it; stopping it partway on
        // one node alone would leave replicas and replays disagreeing. Scripts stop
        // themselves at a fixed instruction count instead (see `script`).
        fail("NOTBUSY No scripts in execution right now.")
    } else if eq_ci(sub, "help") {
        Ok(Reply::Array(
            HELP.iter()
                .map(|l| Reply::Simple((*l).to_owned()))
                .collect(),
        ))
    } else {
        fail(format!(
            "ERR unknown subcommand '{}'. Try SCRIPT HELP.",
            String::from_utf8_lossy(sub)
        ))
    }
}

/// SCRIPT HELP's lines.
const HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Print this help.",
];
