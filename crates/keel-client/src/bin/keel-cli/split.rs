//! Splits a typed line into arguments with redis-cli's quoting rules: double quotes take
//! C escapes (`\n`, `\xHH`, ...), single quotes only `\'`, and a closing quote must end
//! the argument.

/// The arguments of `line`, or None when its quotes are unbalanced or misplaced.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while line.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            let c = line.get(i).copied();
            if in_dq {
                match c {
                    None => return None,
                    Some(b'\\') => {
                        let next = line.get(i + 1).copied();
                        let hex = (line.get(i + 2).copied(), line.get(i + 3).copied());
                        match (next, hex) {
                            (Some(b'x'), (Some(h), Some(l)))
                                if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() =>
                            {
                                cur.push(hex_val(h) * 16 + hex_val(l));
                                i += 3;
                            }
                            (Some(n), _) => {
                                cur.push(match n {
                                    b'n' => b'\n',
                                    b'r' => b'\r',
                                    b't' => b'\t',
                                    b'b' => 8,
                                    b'a' => 7,
                                    other => other,
                                });
                                i += 1;
                            }
                            (None, _) => return None,
                        }
                    }
                    Some(b'"') => {
                        if line.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(c) => cur.push(c),
                }
            } else if in_sq {
                match c {
                    None => return None,
                    Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                        cur.push(b'\'');
                        i += 1;
                    }
                    Some(b'\'') => {
                        if line.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(c) => cur.push(c),
                }
            } else {
                match c {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') if cur.is_empty() => in_dq = true,
                    Some(b'\'') if cur.is_empty() => in_sq = true,
                    Some(c) => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(cur);
    }
}

fn hex_val(c: u8) -> u8 {
    // Callers checked is_ascii_hexdigit, so the digit is below 16.
    char::from(c).to_digit(16).map_or(0, |d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(l: &str) -> Option<Vec<String>> {
        split_args(l.as_bytes()).map(|v| {
            v.into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect()
        })
    }

    #[test]
    fn quoting_follows_redis_cli() {
        assert_eq!(
            words("set  a 'b c'"),
            Some(vec!["set".into(), "a".into(), "b c".into()])
        );
        assert_eq!(
            words(r#"set k "x\ny\x41""#),
            Some(vec!["set".into(), "k".into(), "x\nyA".into()])
        );
        assert_eq!(
            words(r#"set k "" "#),
            Some(vec!["set".into(), "k".into(), "".into()])
        );
        assert_eq!(words(r#"set k "unterminated"#), None);
        assert_eq!(words(r#"set k "a"b"#), None);
        assert_eq!(words("   "), Some(vec![]));
    }
}
