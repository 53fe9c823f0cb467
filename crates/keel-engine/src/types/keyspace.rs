//! Generic key commands: DEL, UNLINK, EXISTS, TYPE, and the rest of the keyspace family.

use bytes::Bytes;

use crate::command::{flags::*, CommandSpec};
use crate::error::CmdResult;
use crate::exec::Exec;
use crate::reply::Reply;

/// The keyspace commands.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "del",
        arity: -2,
        flags: WRITE,
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "generic",
        summary: "Deletes one or more keys.",
        handler: del,
    },
    CommandSpec {
        name: "unlink",
        arity: -2,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "generic",
        summary: "Deletes one or more keys; their memory is reclaimed in the background.",
        handler: del,
    },
    CommandSpec {
        name: "exists",
        arity: -2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "generic",
        summary: "Counts how many of the given keys exist.",
        handler: exists,
    },
    CommandSpec {
        name: "type",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "generic",
        summary: "Returns the type of the value stored at a key.",
        handler: type_cmd,
    },
];

/// DEL / UNLINK: both are O(1) per key here (collections are collected in the background).
fn del(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let mut n = 0;
    for key in &args[1..] {
        if let Some(meta) = ex.meta(key)? {
            ex.delete_key(key, &meta)?;
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

fn exists(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let mut n = 0;
    for key in &args[1..] {
        if ex.meta(key)?.is_some() {
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

fn type_cmd(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let name = ex.meta(&args[1])?.map_or("none", |m| m.kind.name());
    Ok(Reply::Simple(name.into()))
}
