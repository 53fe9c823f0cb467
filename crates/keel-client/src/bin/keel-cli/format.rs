//! Reply rendering, byte for byte like redis-cli: the TTY form (`(integer) 1`, quoted
//! strings, numbered nested aggregates) and the raw form used when stdout is not a
//! terminal.

use keel_client::Value;

/// How replies are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// redis-cli's human form (`(integer) 1`, `"str"`, `1) ...`).
    Tty,
    /// Plain payloads, one per line.
    Raw,
}

/// The complete text printed for one reply, trailing newline included.
pub fn render(v: &Value, mode: OutputMode) -> Vec<u8> {
    let mut out = Vec::new();
    match mode {
        OutputMode::Tty => tty(v, "", &mut out),
        OutputMode::Raw => {
            raw(v, &mut out);
            out.push(b'\n');
        }
    }
    out
}

/// Quotes bytes the way redis-cli does (C escapes, `\xHH` for the rest).
pub fn repr(b: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in b {
        match c {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', c]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(c),
            _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

fn tty(v: &Value, prefix: &str, out: &mut Vec<u8>) {
    match v {
        Value::Nil => out.extend_from_slice(b"(nil)\n"),
        Value::Simple(s) => {
            out.extend_from_slice(s.as_bytes());
            out.push(b'\n');
        }
        Value::Error(e) => {
            out.extend_from_slice(b"(error) ");
            out.extend_from_slice(e.as_bytes());
            out.push(b'\n');
        }
        Value::Int(i) => out.extend_from_slice(format!("(integer) {i}\n").as_bytes()),
        Value::Bulk(b) => {
            repr(b, out);
            out.push(b'\n');
        }
        Value::Verbatim { text, .. } => {
            out.extend_from_slice(text);
            out.push(b'\n');
        }
        Value::Double { text, .. } => {
            out.extend_from_slice(format!("(double) {text}\n").as_bytes())
        }
        Value::Boolean(b) => out.extend_from_slice(if *b { b"(true)\n" } else { b"(false)\n" }),
        Value::BigNumber(n) => out.extend_from_slice(format!("(big number) {n}\n").as_bytes()),
        // Attributes are metadata about the reply; redis-cli shows the reply itself.
        Value::Attribute { value, .. } => tty(value, prefix, out),
        Value::Array(items) => aggregate(
            items.iter().map(Entry::One),
            items.len(),
            ')',
            "(empty array)",
            prefix,
            out,
        ),
        Value::Push(items) => aggregate(
            items.iter().map(Entry::One),
            items.len(),
            ')',
            "(empty push)",
            prefix,
            out,
        ),
        Value::Set(items) => aggregate(
            items.iter().map(Entry::One),
            items.len(),
            '~',
            "(empty set)",
            prefix,
            out,
        ),
        Value::Map(pairs) => aggregate(
            pairs.iter().map(|(k, v)| Entry::Pair(k, v)),
            pairs.len(),
            '#',
            "(empty hash)",
            prefix,
            out,
        ),
    }
}

enum Entry<'a> {
    One(&'a Value),
    Pair(&'a Value, &'a Value),
}

fn aggregate<'a>(
    entries: impl Iterator<Item = Entry<'a>>,
    len: usize,
    sep: char,
    empty: &str,
    prefix: &str,
    out: &mut Vec<u8>,
) {
    if len == 0 {
        out.extend_from_slice(empty.as_bytes());
        out.push(b'\n');
        return;
    }
    let width = len.to_string().len();
    // Nested entries line up under the first character after "N) ".
    let child_prefix = format!("{prefix}{}", " ".repeat(width + 2));
    for (i, e) in entries.enumerate() {
        let lead = if i == 0 { "" } else { prefix };
        out.extend_from_slice(format!("{lead}{:>width$}{sep} ", i + 1).as_bytes());
        match e {
            Entry::One(v) => tty(v, &child_prefix, out),
            Entry::Pair(k, v) => {
                tty(k, &child_prefix, out);
                if out.last() == Some(&b'\n') {
                    out.pop();
                }
                out.extend_from_slice(b" => ");
                tty(v, &child_prefix, out);
            }
        }
    }
}

fn raw(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Nil => {}
        Value::Error(e) => {
            out.extend_from_slice(e.as_bytes());
            out.push(b'\n');
        }
        Value::Simple(s) => out.extend_from_slice(s.as_bytes()),
        Value::Bulk(b) | Value::Verbatim { text: b, .. } => out.extend_from_slice(b),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"(true)" } else { b"(false)" }),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Double { text, .. } => out.extend_from_slice(text.as_bytes()),
        Value::BigNumber(n) => out.extend_from_slice(n.as_bytes()),
        Value::Attribute { value, .. } => raw(value, out),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                raw(item, out);
            }
        }
        Value::Map(pairs) => {
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                raw(k, out);
                out.push(b' ');
                raw(v, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &Value, m: OutputMode) -> String {
        String::from_utf8(render(v, m)).unwrap_or_default()
    }

    fn bulk(x: &str) -> Value {
        Value::bulk(x.as_bytes().to_vec())
    }

    #[test]
    fn nested_arrays_pad_indices_like_redis_cli() {
        let inner = Value::Array(vec![bulk("readonly"), bulk("fast")]);
        let mut items = vec![bulk("get"), Value::Int(2), inner];
        items.extend((0..7).map(|_| Value::Array(vec![])));
        let v = Value::Array(vec![Value::Array(items)]);
        let want = "1)  1) \"get\"\n    2) (integer) 2\n    3) 1) \"readonly\"\n       2) \"fast\"\n    4) (empty array)\n    5) (empty array)\n    6) (empty array)\n    7) (empty array)\n    8) (empty array)\n    9) (empty array)\n   10) (empty array)\n";
        assert_eq!(s(&v, OutputMode::Tty), want);
    }

    #[test]
    fn resp3_types_render_with_their_markers() {
        let m = Value::Map(vec![
            (bulk("f"), bulk("v")),
            (bulk("g"), Value::Boolean(false)),
        ]);
        assert_eq!(
            s(&m, OutputMode::Tty),
            "1# \"f\" => \"v\"\n2# \"g\" => (false)\n"
        );
        assert_eq!(s(&m, OutputMode::Raw), "f v\ng (false)\n");
        let set = Value::Set(vec![bulk("x")]);
        assert_eq!(s(&set, OutputMode::Tty), "1~ \"x\"\n");
        let d = Value::Double {
            value: 1.5,
            text: "1.5".into(),
        };
        assert_eq!(s(&d, OutputMode::Tty), "(double) 1.5\n");
        assert_eq!(
            s(&Value::BigNumber("123".into()), OutputMode::Tty),
            "(big number) 123\n"
        );
        assert_eq!(s(&Value::Map(vec![]), OutputMode::Tty), "(empty hash)\n");
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(
            s(&bulk("x\"y\\n\u{1}"), OutputMode::Tty),
            "\"x\\\"y\\\\n\\x01\"\n"
        );
        assert_eq!(
            s(&Value::Error("ERR x".into()), OutputMode::Raw),
            "ERR x\n\n"
        );
        assert_eq!(s(&Value::Nil, OutputMode::Raw), "\n");
    }
}
