//! A line split into arguments the way Redis's `sdssplitargs` does, with double quotes
//! (C escapes, `\xHH`), single quotes (only `\'`), and the rule that a closing quote
//! must be followed by a space or the end. Inline commands (`SET k v` typed into
//! telnet), ACL selector bodies and function libraries' metadata lines are read so.

use bytes::Bytes;

/// Splits `line`; None on unbalanced quotes. A NUL ends the line, as the C string ends
/// it in Redis.
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        // A NUL ends the request, as the C string ends it in Redis.
        if i >= n || line[i] == 0 {
            return Some(args);
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            if in_dq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && is_hex(line[i + 2])
                    && is_hex(line[i + 3])
                {
                    cur.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    // The closing quote must be followed by a space or nothing.
                    if i + 1 < n && line[i + 1] != 0 && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if in_sq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && line[i + 1] != 0 && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(Bytes::from(cur));
    }
}

/// C's isspace: the characters Redis skips between arguments.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r')
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c.to_ascii_lowercase().wrapping_sub(b'a').wrapping_add(10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(args: &[&str]) -> Vec<Bytes> {
        args.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn splits_like_redis() {
        assert_eq!(split_args(b"SET k v"), Some(s(&["SET", "k", "v"])));
        assert_eq!(split_args(b"  set   k  v  "), Some(s(&["set", "k", "v"])));
        assert_eq!(split_args(b"SET k \"a b\""), Some(s(&["SET", "k", "a b"])));
        assert_eq!(
            split_args(b"SET k \"\\x41\\n\""),
            Some(s(&["SET", "k", "A\n"]))
        );
        assert_eq!(
            split_args(b"SET k 'it\\'s'"),
            Some(s(&["SET", "k", "it's"]))
        );
        assert_eq!(split_args(b"SET k \"\""), Some(s(&["SET", "k", ""])));
        assert_eq!(split_args(b""), Some(vec![]));
        assert_eq!(split_args(b"SET k \"open"), None);
        assert_eq!(split_args(b"SET k \"a\"b"), None);
        assert_eq!(split_args(b"SET k 'a"), None);
        assert_eq!(split_args(b"a\x00b c"), Some(s(&["a"])));
        assert_eq!(split_args(b"\x0bx\x0cy"), Some(s(&["x\x0cy"])));
    }

    #[test]
    fn acl_selector_bodies_split_as_sdssplitargs() {
        let split = |s: &str| split_args(s.as_bytes());
        let words = |w: &[&str]| Some(s(w));
        assert_eq!(split(""), words(&[]));
        assert_eq!(split("  a  b\tc "), words(&["a", "b", "c"]));
        assert_eq!(split(r#""a b" 'c d'"#), words(&["a b", "c d"]));
        assert_eq!(split(r#""\x41\n\"" 'it\'s'"#), words(&["A\n\"", "it's"]));
        assert_eq!(split(r#"a"b c""#), words(&["ab c"]));
        assert_eq!(split(r#""ab"c"#), None);
        assert_eq!(split(r#""ab"#), None);
        assert_eq!(split("'ab"), None);
        assert_eq!(split("a\0 b"), words(&["a"]));
    }
}
