//! COMMAND and its subcommands, built from the one lookup over both tables.

use bytes::Bytes;
use keel_engine::glob::glob_match;
use keel_engine::reply::errors;
use keel_engine::Reply;

use super::{all, eq_ci, err, lookup, server_flags, Cmd, Outcome};
use crate::server::acl::categories;
use crate::server::conn::Session;

/// One command's COMMAND INFO entry (Redis 7's ten fields).
fn info_of(c: Cmd) -> Reply {
    let (first, last, step) = c.keys();
    let mut flags: Vec<Reply> = server_flags::names(c.flags())
        .into_iter()
        .map(|f| Reply::Simple(f.into()))
        .collect();
    if keel_engine::command::has_movable_keys(c.name()) {
        flags.push(Reply::Simple("movablekeys".into()));
    }
    // The command's ACL categories (Redis's own table), in ACL CAT's order.
    let bits = categories::of(c.name(), None);
    let cats = categories::NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| Reply::Simple(format!("@{n}")))
        .collect();
    Reply::Array(vec![
        Reply::bulk(c.name()),
        Reply::Int(i64::from(c.arity())),
        Reply::Set(flags),
        Reply::Int(i64::from(first)),
        Reply::Int(i64::from(last)),
        Reply::Int(i64::from(step)),
        Reply::Set(cats),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

fn docs_of(c: Cmd) -> Reply {
    Reply::Map(vec![
        (Reply::bulk("summary"), Reply::bulk(c.summary())),
        (Reply::bulk("since"), Reply::bulk("1.0.0")),
        (Reply::bulk("group"), Reply::bulk(c.group())),
    ])
}

pub(super) fn command(_s: &mut Session, args: &[Bytes]) -> Outcome {
    let Some(sub) = args.get(1) else {
        return Outcome::Reply(Reply::Array(all().map(info_of).collect()));
    };
    let rest = &args[2..];
    if eq_ci(sub, "COUNT") && rest.is_empty() {
        return Outcome::Reply(Reply::Int(all().count() as i64));
    }
    if eq_ci(sub, "LIST") {
        return list(rest);
    }
    if eq_ci(sub, "INFO") {
        if rest.is_empty() {
            return Outcome::Reply(Reply::Array(all().map(info_of).collect()));
        }
        return Outcome::Reply(Reply::Array(
            rest.iter()
                .map(|n| lookup(n).map_or(Reply::NilArray, info_of))
                .collect(),
        ));
    }
    if eq_ci(sub, "DOCS") {
        let pairs: Vec<(Reply, Reply)> = if rest.is_empty() {
            all().map(|c| (Reply::bulk(c.name()), docs_of(c))).collect()
        } else {
            rest.iter()
                .filter_map(|n| lookup(n))
                .map(|c| (Reply::bulk(c.name()), docs_of(c)))
                .collect()
        };
        return Outcome::Reply(Reply::Map(pairs));
    }
    if eq_ci(sub, "GETKEYS") && !rest.is_empty() {
        return getkeys(rest);
    }
    err(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try COMMAND HELP.",
        String::from_utf8_lossy(sub)
    ))
}

fn list(rest: &[Bytes]) -> Outcome {
    let names = all().map(|c| c.name());
    let out: Vec<&str> = match rest {
        [] => names.collect(),
        [f, kind, value] if eq_ci(f, "FILTERBY") => {
            if eq_ci(kind, "PATTERN") {
                names.filter(|n| glob_match(value, n.as_bytes())).collect()
            } else if eq_ci(kind, "ACLCAT") {
                let Some(cat) = std::str::from_utf8(value)
                    .ok()
                    .and_then(categories::category)
                else {
                    return Outcome::Reply(Reply::Array(Vec::new()));
                };
                all()
                    .filter(|c| categories::of(c.name(), None) & cat != 0)
                    .map(|c| c.name())
                    .collect()
            } else if eq_ci(kind, "MODULE") {
                Vec::new()
            } else {
                return err(errors::SYNTAX);
            }
        }
        _ => return err(errors::SYNTAX),
    };
    Outcome::Reply(Reply::bulks(
        out.into_iter().map(|n| Bytes::from_static(n.as_bytes())),
    ))
}

fn getkeys(cmd_args: &[Bytes]) -> Outcome {
    let Some(c) = lookup(&cmd_args[0]) else {
        return err("ERR Invalid command specified");
    };
    if !c.arity_ok(cmd_args.len()) {
        return err("ERR Invalid number of arguments specified for command");
    }
    let movable = keel_engine::command::movable_key_positions(cmd_args);
    let is_movable = movable.is_some();
    let pos = movable.unwrap_or_else(|| c.key_positions(cmd_args.len()));
    if pos.is_empty() {
        // Redis: a command without keys says so; a movable one whose arguments name
        // none is malformed, unless its keys are optional (EVAL's, Redis's
        // NO_MANDATORY_KEYS), when the answer is no keys.
        if !is_movable {
            return err("ERR The command has no key arguments");
        }
        if !keel_engine::command::keys_are_optional(c.name()) {
            return err("ERR Invalid arguments specified for command");
        }
    }
    Outcome::Reply(Reply::Array(
        pos.into_iter()
            .filter_map(|p| cmd_args.get(p).cloned())
            .map(Reply::Bulk)
            .collect(),
    ))
}
