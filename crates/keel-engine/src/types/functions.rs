//! Functions (Redis 7's functions.c): FUNCTION LOAD | DELETE | FLUSH | LIST | DUMP |
//! RESTORE | STATS | KILL | HELP, and FCALL and FCALL_RO.
//!
//! # Records
//!
//! A library is an engine-internal record, `keys::library_key(name)`, holding the
//! payload FUNCTION LOAD was given (its `#!lua name=…` line and its code); each of its
//! functions has a record `keys::function_key(lower-case name)` holding the library's
//! name, which is how FCALL finds it. Both are written by the FUNCTION command's log
//! entry, so libraries are in the log, the snapshots and every replica, as Redis keeps
//! them in its RDB and AOF. FLUSHALL leaves them, as in Redis. What a library registers
//! is known by loading its code (`script::library`), which each thread does once and
//! keeps; loading touches no data and stops at a fixed count, so every thread and
//! every replay finds the same functions.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use keel_storage::{Direction, ScanRange};

use super::scripting::{spec, split_keys_or};
use crate::args::eq_ci;
use crate::command::{flags::*, CommandSpec};
use crate::error::{fail, CmdResult};
use crate::exec::Exec;
use crate::glob::glob_match;
use crate::keys;
use crate::reply::Reply;
use crate::script::library::{parse_metadata, valid_name, FunctionInfo, BAD_NAME};
use crate::script::{self};

/// The function commands. FCALL is DENYOOM for the reason EVAL is (see
/// `types::scripting`); FCALL_RO still runs.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    spec("fcall", -3, WRITE | DENYOOM | NOSCRIPT, "Invokes a function.", fcall),
    spec("fcall_ro", -3, READONLY | NOSCRIPT, "Invokes a read-only function.", fcall_ro),
    spec("function", -2, WRITE | NOSCRIPT, "A container for function commands.", function_cmd),
];

/// The engine every library names (Redis has Lua only too, and shows it so).
const ENGINE: &str = "LUA";

/// The tag after the format version that marks a FUNCTION DUMP payload (a key's DUMP
/// payload has a type code there, none of which is this).
const DUMP_TAG: u8 = b'F';

fn fcall(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    fcall_body(ex, args, false)
}

fn fcall_ro(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    fcall_body(ex, args, true)
}

/// FCALL and FCALL_RO: finds the function's library and runs the function.
fn fcall_body(ex: &mut Exec, args: &[Bytes], ro_command: bool) -> CmdResult<Reply> {
    let name = &args[1];
    let Some(library) = ex.get(&keys::function_key(&name.to_ascii_lowercase()))? else {
        return fail("ERR Function not found");
    };
    let (keys, argv) = split_keys_or(args, "ERR Bad number of keys provided")?;
    let Some(payload) = ex.get(&keys::library_key(&library))? else {
        return fail("ERR Function not found");
    };
    let code = match parse_metadata(&payload) {
        Ok(md) => md.code,
        Err(e) => return fail(format!("ERR {e}")),
    };
    script::run_function(ex, code, name, keys, argv, ro_command)
}

/// FUNCTION's subcommands.
fn function_cmd(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let n = args.len();
    let arity_ok = match sub.as_str() {
        "load" => n >= 3,
        "restore" => (3..=4).contains(&n),
        "delete" => n == 3,
        "flush" => n <= 3,
        "list" => n >= 2,
        "dump" | "stats" | "kill" | "help" => n == 2,
        _ => {
            return fail(format!(
                "ERR unknown subcommand '{}'. Try FUNCTION HELP.",
                String::from_utf8_lossy(&args[1])
            ))
        }
    };
    if !arity_ok {
        return fail(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
            String::from_utf8_lossy(&args[1])
        ));
    }
    match sub.as_str() {
        "load" => load(ex, args),
        "delete" => delete(ex, &args[2]),
        "flush" => {
            match args.get(2) {
                None => {}
                Some(m) if n == 3 && (eq_ci(m, "sync") || eq_ci(m, "async")) => {}
                _ => return fail("ERR FUNCTION FLUSH only supports SYNC|ASYNC option"),
            }
            delete_all(ex)?;
            Ok(Reply::Ok)
        }
        "list" => list(ex, args),
        "dump" => dump(ex),
        "restore" => restore(ex, args),
        "stats" => stats(ex),
        // Functions run inside their command's log entry: stopping one on one node
        // alone would leave replicas and replays disagreeing (see SCRIPT KILL).
        "kill" => fail("NOTBUSY No scripts in execution right now."),
        _ => Ok(Reply::Array(
            HELP.iter()
                .map(|l| Reply::Simple((*l).to_owned()))
                .collect(),
        )),
    }
}

/// A library checked as FUNCTION LOAD checks it: its name and its functions.
struct Checked {
    name: String,
    functions: Vec<FunctionInfo>,
}

/// Reads and loads a library payload, with Redis's errors in Redis's order (name,
/// engine, then `exists` for a library of that name, then the code).
fn check(payload: &[u8], exists: impl FnOnce(&str) -> CmdResult<()>) -> CmdResult<Checked> {
    let md = parse_metadata(payload).or_else(|e| fail(format!("ERR {e}")))?;
    if !valid_name(md.name.as_bytes()) {
        return fail(format!("ERR {BAD_NAME}"));
    }
    if !md.engine.eq_ignore_ascii_case(ENGINE) {
        return fail(format!("ERR Engine '{}' not found", md.engine));
    }
    exists(&md.name)?;
    let functions = script::library_functions(md.code)?;
    Ok(Checked {
        name: md.name,
        functions,
    })
}

/// FUNCTION LOAD [REPLACE] payload.
fn load(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let mut replace = false;
    for opt in &args[2..args.len() - 1] {
        if eq_ci(opt, "replace") {
            replace = true;
        } else {
            return fail(format!(
                "ERR Unknown option given: {}",
                String::from_utf8_lossy(opt)
            ));
        }
    }
    let payload = &args[args.len() - 1];
    let lib = check(payload, |name| {
        if !replace && ex.contains(&keys::library_key(name.as_bytes()))? {
            return fail(format!("ERR Library '{name}' already exists"));
        }
        Ok(())
    })?;
    let mut owners = owners(ex)?;
    owners.retain(|_, owner| *owner != lib.name);
    claim(&mut owners, &lib)?;
    uninstall(ex, lib.name.as_bytes())?;
    install(ex, &lib, payload.clone())?;
    Ok(Reply::bulk(lib.name))
}

/// FUNCTION DELETE name.
fn delete(ex: &mut Exec, name: &Bytes) -> CmdResult<Reply> {
    if !ex.contains(&keys::library_key(name))? {
        return fail("ERR Library not found");
    }
    uninstall(ex, name)?;
    Ok(Reply::Ok)
}

/// Every library: (name, payload), by name.
fn libraries(ex: &Exec) -> CmdResult<Vec<(String, Bytes)>> {
    let prefix = keys::library_key(b"");
    let mut out = Vec::new();
    for pair in ex.scan(ScanRange::prefix(&prefix), Direction::Forward) {
        let (k, v) = pair?;
        out.push((String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), v));
    }
    Ok(out)
}

/// Every function's owner: lower-case function name → library name.
fn owners(ex: &Exec) -> CmdResult<HashMap<Bytes, String>> {
    let prefix = keys::function_key(b"");
    let mut out = HashMap::new();
    for pair in ex.scan(ScanRange::prefix(&prefix), Direction::Forward) {
        let (k, v) = pair?;
        out.insert(
            k.slice(prefix.len()..),
            String::from_utf8_lossy(&v).into_owned(),
        );
    }
    Ok(out)
}

/// Adds `lib`'s functions to `owners`, refusing a name another library (or `lib`
/// itself, in another case) has: Redis's "Function … already exists".
fn claim(owners: &mut HashMap<Bytes, String>, lib: &Checked) -> CmdResult<()> {
    for f in &lib.functions {
        let key = Bytes::from(f.name.to_ascii_lowercase());
        if owners.insert(key, lib.name.clone()).is_some() {
            return fail(format!("ERR Function {} already exists", f.name));
        }
    }
    Ok(())
}

/// Writes a checked library's records.
fn install(ex: &mut Exec, lib: &Checked, payload: Bytes) -> CmdResult<()> {
    ex.put(keys::library_key(lib.name.as_bytes()), payload)?;
    for f in &lib.functions {
        let key = keys::function_key(f.name.to_ascii_lowercase().as_bytes());
        ex.put(key, Bytes::from(lib.name.clone()))?;
    }
    Ok(())
}

/// Deletes a library's records, if it has any.
fn uninstall(ex: &mut Exec, name: &[u8]) -> CmdResult<()> {
    let prefix = keys::function_key(b"");
    let mut doomed = Vec::new();
    for pair in ex.scan(ScanRange::prefix(&prefix), Direction::Forward) {
        let (k, v) = pair?;
        if v.as_ref() == name {
            doomed.push(k);
        }
    }
    for key in doomed {
        ex.delete(key)?;
    }
    let key = keys::library_key(name);
    if ex.contains(&key)? {
        ex.delete(key)?;
    }
    Ok(())
}

/// Deletes every library and function record.
fn delete_all(ex: &mut Exec) -> CmdResult<()> {
    ex.delete_prefixed(&keys::library_key(b""))?;
    ex.delete_prefixed(&keys::function_key(b""))
}

/// The functions of a stored library payload.
fn functions_of(payload: &[u8]) -> CmdResult<Vec<FunctionInfo>> {
    let md = parse_metadata(payload).or_else(|e| fail(format!("ERR {e}")))?;
    script::library_functions(md.code)
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE].
fn list(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let (mut with_code, mut pattern) = (false, None);
    let mut i = 2;
    while i < args.len() {
        let arg = &args[i];
        if !with_code && eq_ci(arg, "withcode") {
            with_code = true;
        } else if pattern.is_none() && eq_ci(arg, "libraryname") {
            i += 1;
            match args.get(i) {
                Some(p) => pattern = Some(p.clone()),
                None => return fail("ERR library name argument was not given"),
            }
        } else {
            return fail(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(arg)
            ));
        }
        i += 1;
    }
    let mut out = Vec::new();
    for (name, payload) in libraries(ex)? {
        if let Some(p) = &pattern {
            if !glob_match(p, name.as_bytes()) {
                continue;
            }
        }
        let functions = functions_of(&payload)?
            .into_iter()
            .map(|f| {
                Reply::Map(vec![
                    (Reply::bulk("name"), Reply::bulk(f.name.clone())),
                    (
                        Reply::bulk("description"),
                        f.description.clone().map_or(Reply::Nil, Reply::Bulk),
                    ),
                    (
                        Reply::bulk("flags"),
                        Reply::Set(
                            f.flag_names()
                                .map(|n| Reply::Simple(n.to_owned()))
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect();
        let mut entry = vec![
            (Reply::bulk("library_name"), Reply::bulk(name)),
            (Reply::bulk("engine"), Reply::bulk(ENGINE)),
            (Reply::bulk("functions"), Reply::Array(functions)),
        ];
        if with_code {
            entry.push((Reply::bulk("library_code"), Reply::Bulk(payload)));
        }
        out.push(Reply::Map(entry));
    }
    Ok(Reply::Array(out))
}

/// FUNCTION STATS: no function is ever seen running (a function runs inside its log
/// entry, which nothing else overlaps on the write path), and the engine's counts.
fn stats(ex: &mut Exec) -> CmdResult<Reply> {
    let libs = libraries(ex)?.len();
    let functions = owners(ex)?.len();
    Ok(Reply::Map(vec![
        (Reply::bulk("running_script"), Reply::Nil),
        (
            Reply::bulk("engines"),
            Reply::Map(vec![(
                Reply::bulk(ENGINE),
                Reply::Map(vec![
                    (Reply::bulk("libraries_count"), Reply::Int(libs as i64)),
                    (Reply::bulk("functions_count"), Reply::Int(functions as i64)),
                ]),
            )]),
        ),
    ]))
}

/// FUNCTION DUMP: every library's payload, in keel's own format (like DUMP's, see
/// `dump`): `version u8 | 'F' | count u32 LE | (len u32 LE | payload)*`, then the
/// version and CRC32 footer.
fn dump(ex: &mut Exec) -> CmdResult<Reply> {
    let libs = libraries(ex)?;
    let mut buf = BytesMut::new();
    buf.put_u8(crate::dump::FORMAT_VERSION);
    buf.put_u8(DUMP_TAG);
    buf.put_u32_le(libs.len() as u32);
    for (_, payload) in &libs {
        buf.put_u32_le(payload.len() as u32);
        buf.put_slice(payload);
    }
    Ok(Reply::Bulk(crate::dump::seal(buf)))
}

/// The library payloads of a FUNCTION DUMP payload; None when it does not parse.
fn undump(p: &Bytes) -> Option<Vec<Bytes>> {
    crate::dump::verify(p).ok()?;
    let body = p.slice(..p.len() - 6);
    if body.len() < 6 || body[0] != crate::dump::FORMAT_VERSION || body[1] != DUMP_TAG {
        return None;
    }
    let count = u32::from_le_bytes(body[2..6].try_into().ok()?) as usize;
    let mut at = 6;
    let mut out = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let len = u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?) as usize;
        at += 4;
        let end = at.checked_add(len).filter(|e| *e <= body.len())?;
        out.push(body.slice(at..end));
        at = end;
    }
    (at == body.len()).then_some(out)
}

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]: all of the payload's libraries or
/// none.
fn restore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let (mut flush, mut replace) = (false, false);
    if let Some(policy) = args.get(3) {
        if eq_ci(policy, "flush") {
            flush = true;
        } else if eq_ci(policy, "replace") {
            replace = true;
        } else if !eq_ci(policy, "append") {
            return fail(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            );
        }
    }
    let Some(payloads) = undump(&args[2]) else {
        return fail("ERR DUMP payload version or checksum are wrong");
    };
    let existing: Vec<String> = match flush {
        true => Vec::new(),
        false => libraries(ex)?.into_iter().map(|(n, _)| n).collect(),
    };
    let mut owners = if flush { HashMap::new() } else { owners(ex)? };
    let mut incoming: Vec<(Checked, Bytes)> = Vec::with_capacity(payloads.len());
    for payload in payloads {
        let lib = check(&payload, |_| Ok(()))?;
        if incoming.iter().any(|(l, _)| l.name == lib.name) {
            return fail(format!("ERR Library {} already exists", lib.name));
        }
        if existing.contains(&lib.name) {
            if !replace {
                return fail(format!("ERR Library {} already exists", lib.name));
            }
            owners.retain(|_, owner| *owner != lib.name);
        }
        incoming.push((lib, payload));
    }
    for (lib, _) in &incoming {
        claim(&mut owners, lib)?;
    }
    if flush {
        delete_all(ex)?;
    }
    for (lib, payload) in incoming {
        uninstall(ex, lib.name.as_bytes())?;
        install(ex, &lib, payload)?;
    }
    Ok(Reply::Ok)
}

/// FUNCTION HELP's lines.
const HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Print this help.",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_payload_round_trips_and_damage_is_refused() {
        let libs = [
            Bytes::from_static(b"#!lua name=a\nredis.register_function('f', function() end)"),
            Bytes::from_static(b"#!lua name=b\n"),
        ];
        let mut buf = BytesMut::new();
        buf.put_u8(crate::dump::FORMAT_VERSION);
        buf.put_u8(DUMP_TAG);
        buf.put_u32_le(2);
        for l in &libs {
            buf.put_u32_le(l.len() as u32);
            buf.put_slice(l);
        }
        let p = crate::dump::seal(buf);
        assert_eq!(undump(&p), Some(libs.to_vec()));
        let mut bad = p.to_vec();
        bad[8] ^= 1;
        assert_eq!(undump(&Bytes::from(bad)), None);
        assert_eq!(undump(&Bytes::from_static(b"short")), None);
    }
}
