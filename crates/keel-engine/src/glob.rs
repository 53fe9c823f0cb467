//! Redis's glob-style pattern matching (KEYS, SCAN MATCH, PSUBSCRIBE): `*`, `?`,
//! `[abc]`, `[^a-z]`, `\x` escapes; byte-wise, case-sensitive.

/// Most `*` a match may pass through before Redis gives up on it (its matcher recurses
/// once per `*`, and stops at this depth to protect its stack).
const MAX_STARS: usize = 1000;

/// True if `s` matches `pattern`.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    // Iterative with one backtrack point for the last `*`: linear-ish on real patterns
    // and never exponential, unlike the naive recursive matcher.
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    // Runs of `*` passed with string left: Redis recurses once for each and matches
    // nothing past MAX_STARS. Backtracking resumes after the last run, so each run is
    // passed once.
    let mut runs = 0usize;
    while i < s.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    runs += 1;
                    if runs > MAX_STARS {
                        return false;
                    }
                    star = Some((p, i));
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next_p)) = class_match(pattern, p, s[i]) {
                        if matched {
                            p = next_p;
                            i += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == s[i] {
                        p += 2;
                        i += 1;
                        continue;
                    }
                }
                c => {
                    if c == s[i] {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// Matches `c` against the class starting at `pattern[p] == b'['`. Returns whether it
/// matched and the position after the class; an unterminated class runs to the end.
fn class_match(pattern: &[u8], p: usize, c: u8) -> Option<(bool, usize)> {
    let mut j = p + 1;
    let negate = j < pattern.len() && pattern[j] == b'^';
    if negate {
        j += 1;
    }
    let mut matched = false;
    while j < pattern.len() && pattern[j] != b']' {
        if pattern[j] == b'\\' && j + 1 < pattern.len() {
            if pattern[j + 1] == c {
                matched = true;
            }
            j += 2;
        } else if j + 2 < pattern.len() && pattern[j + 1] == b'-' && pattern[j + 2] != b']' {
            let (mut lo, mut hi) = (pattern[j], pattern[j + 2]);
            if lo > hi {
                std::mem::swap(&mut lo, &mut hi);
            }
            if c >= lo && c <= hi {
                matched = true;
            }
            j += 3;
        } else {
            if pattern[j] == c {
                matched = true;
            }
            j += 1;
        }
    }
    // Past the closing bracket (or at the end if there is none, as Redis does).
    let next = if j < pattern.len() { j + 1 } else { j };
    Some((matched != negate, next))
}

#[cfg(test)]
mod tests {
    use super::glob_match as m;

    #[test]
    fn redis_glob_cases() {
        assert!(m(b"*", b""));
        assert!(m(b"*", b"anything"));
        assert!(m(b"h?llo", b"hello"));
        assert!(!m(b"h?llo", b"hllo"));
        assert!(m(b"h*llo", b"heeeello"));
        assert!(m(b"h[ae]llo", b"hallo"));
        assert!(!m(b"h[ae]llo", b"hillo"));
        assert!(m(b"h[^e]llo", b"hallo"));
        assert!(!m(b"h[^e]llo", b"hello"));
        assert!(m(b"h[a-b]llo", b"hbllo"));
        assert!(!m(b"h[a-b]llo", b"hcllo"));
        assert!(m(b"h\\*llo", b"h*llo"));
        assert!(!m(b"h\\*llo", b"hello"));
        assert!(m(b"*a*b*c*", b"xxaxxbxxcxx"));
        assert!(!m(b"*a*b*c*d", b"xxaxxbxxcxx"));
        assert!(m(b"user:*", b"user:1000"));
        assert!(!m(b"user:*", b"usr:1000"));
        // Pathological pattern stays fast.
        let s = vec![b'a'; 2000];
        assert!(!m(b"*a*a*a*a*a*a*a*a*b", &s));
    }

    #[test]
    fn more_than_a_thousand_inner_stars_match_nothing() {
        let key = vec![b'a'; 5_000];
        let nested = b"*?".repeat(1_001);
        assert!(!m(&nested, &key));
        let fine = b"*?".repeat(1_000);
        assert!(m(&fine, &key));
        // A trailing run, escaped stars and stars in a class do not count.
        let mut trailing = b"*?".repeat(1_000);
        trailing.push(b'*');
        assert!(m(&trailing, &key));
        let literal = b"\\*[*]".repeat(1_001);
        assert!(m(&literal, &b"**".repeat(1_001)));
    }
}
