//! Command hints and names for the REPL, learned from the server at start: COMMAND DOCS
//! for summaries and argument lists, COMMAND for arity and key positions when the docs
//! carry no arguments. A server that answers neither leaves hints and completion empty.

use std::collections::BTreeMap;

use keel_client::Value;

use crate::session::Session;

/// What the REPL knows about one command.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandHelp {
    /// Argument summary shown greyed after the command name.
    pub hint: String,
    /// One-line description (for `help <command>`).
    pub summary: String,
    /// Server version that introduced the command.
    pub since: String,
    /// Command group (string, list, ...).
    pub group: String,
}

/// Every known command, keyed by lower-case name.
pub type Catalog = BTreeMap<String, CommandHelp>;

/// Fetches the catalog; any failure yields what was learned so far (possibly nothing).
pub async fn fetch(session: &mut Session) -> Catalog {
    let mut catalog = Catalog::new();
    if let Ok(v) = session
        .command(&[b"COMMAND".to_vec(), b"DOCS".to_vec()])
        .await
    {
        for (name, doc) in pairs(&v) {
            let Some(name) = text(name) else { continue };
            let mut help = CommandHelp::default();
            for (k, val) in pairs(doc) {
                match text(k).as_deref() {
                    Some("summary") => help.summary = text(val).unwrap_or_default(),
                    Some("group") => help.group = text(val).unwrap_or_default(),
                    Some("since") => help.since = text(val).unwrap_or_default(),
                    Some("arguments") => help.hint = render_args(val.as_slice().unwrap_or(&[])),
                    _ => {}
                }
            }
            catalog.insert(name.to_ascii_lowercase(), help);
        }
    }
    if let Ok(Value::Array(cmds)) = session.command(&[b"COMMAND".to_vec()]).await {
        for c in &cmds {
            let Some(fields) = c.as_slice() else { continue };
            let (Some(name), Some(arity)) = (
                fields.first().and_then(text),
                fields.get(1).and_then(Value::as_int),
            ) else {
                continue;
            };
            let int_at = |i: usize| fields.get(i).and_then(Value::as_int).unwrap_or(0);
            let entry = catalog.entry(name.to_ascii_lowercase()).or_default();
            if entry.hint.is_empty() {
                entry.hint = arity_hint(arity, int_at(3), int_at(4), int_at(5));
            }
        }
    }
    catalog
}

/// Key/value pairs of a RESP3 map or a RESP2 flat array of alternating items.
fn pairs(v: &Value) -> Vec<(&Value, &Value)> {
    match v {
        Value::Map(p) => p.iter().map(|(k, v)| (k, v)).collect(),
        Value::Array(items) => items
            .chunks_exact(2)
            .filter_map(|c| match c {
                [k, v] => Some((k, v)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_text()
}

/// Renders COMMAND DOCS argument specs the way redis-cli shows them
/// (`key value [NX|XX] [GET]`).
pub fn render_args(args: &[Value]) -> String {
    args.iter().map(render_arg).collect::<Vec<_>>().join(" ")
}

fn render_arg(arg: &Value) -> String {
    let mut name = String::new();
    let mut display = None;
    let mut kind = String::new();
    let mut token = None;
    let mut optional = false;
    let mut multiple = false;
    let mut children: &[Value] = &[];
    for (k, v) in pairs(arg) {
        match text(k).as_deref() {
            Some("name") => name = text(v).unwrap_or_default(),
            Some("display_text") => display = text(v),
            Some("type") => kind = text(v).unwrap_or_default(),
            Some("token") => token = text(v),
            Some("flags") => {
                for f in v.as_slice().unwrap_or(&[]) {
                    match text(f).as_deref() {
                        Some("optional") => optional = true,
                        Some("multiple") => multiple = true,
                        _ => {}
                    }
                }
            }
            Some("arguments") => children = v.as_slice().unwrap_or(&[]),
            _ => {}
        }
    }
    let label = display.unwrap_or(name);
    let body = match kind.as_str() {
        "oneof" => children
            .iter()
            .map(render_arg)
            .collect::<Vec<_>>()
            .join("|"),
        "block" => render_args(children),
        "pure-token" => token.take().unwrap_or(label),
        _ => label,
    };
    let body = match token {
        Some(t) => format!("{t} {body}"),
        None => body,
    };
    let body = if multiple {
        format!("{body} [{body} ...]")
    } else {
        body
    };
    if optional {
        format!("[{body}]")
    } else {
        body
    }
}

/// An argument summary synthesised from COMMAND's arity and key positions, for servers
/// whose docs list no arguments: `key`, `key value`, `key [key ...]`.
pub fn arity_hint(arity: i64, first_key: i64, last_key: i64, step: i64) -> String {
    let required = arity.unsigned_abs().saturating_sub(1);
    let is_key = |pos: u64| -> bool {
        let Ok(pos) = i64::try_from(pos) else {
            return false;
        };
        if first_key <= 0 || step <= 0 || pos < first_key {
            return false;
        }
        let within = last_key < 0 || pos <= last_key;
        within && (pos - first_key) % step == 0
    };
    let label = |pos: u64| if is_key(pos) { "key" } else { "arg" };
    let mut words: Vec<String> = (1..=required).map(|p| label(p).to_string()).collect();
    if arity < 0 {
        let unit = if last_key < 0 && step > 0 && first_key > 0 {
            let step = step.unsigned_abs();
            (0..step)
                .map(|i| if i == 0 { "key" } else { "arg" })
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            "arg".to_string()
        };
        words.push(format!("[{unit} ...]"));
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Value {
        Value::bulk(s.as_bytes().to_vec())
    }

    fn arg(fields: &[(&str, Value)]) -> Value {
        Value::Map(fields.iter().map(|(k, v)| (b(k), v.clone())).collect())
    }

    #[test]
    fn hints_from_arity() {
        assert_eq!(arity_hint(2, 1, 1, 1), "key");
        assert_eq!(arity_hint(-2, 1, -1, 1), "key [key ...]");
        assert_eq!(arity_hint(-3, 1, -1, 2), "key arg [key arg ...]");
        assert_eq!(arity_hint(-3, 1, 1, 1), "key arg [arg ...]");
        assert_eq!(arity_hint(-1, 0, 0, 0), "[arg ...]");
    }

    #[test]
    fn hints_from_docs_arguments() {
        let key = arg(&[("name", b("key")), ("type", b("key"))]);
        let nx = arg(&[
            ("name", b("nx")),
            ("type", b("pure-token")),
            ("token", b("NX")),
        ]);
        let xx = arg(&[
            ("name", b("xx")),
            ("type", b("pure-token")),
            ("token", b("XX")),
        ]);
        let cond = arg(&[
            ("name", b("condition")),
            ("type", b("oneof")),
            ("flags", Value::Array(vec![b("optional")])),
            ("arguments", Value::Array(vec![nx, xx])),
        ]);
        let more = arg(&[
            ("name", b("member")),
            ("type", b("string")),
            ("flags", Value::Array(vec![b("multiple")])),
        ]);
        assert_eq!(
            render_args(&[key, cond, more]),
            "key [NX|XX] member [member ...]"
        );
    }
}
