//! Which arguments of a command are secrets: what SLOWLOG and MONITOR show as
//! `(redacted)`, as Redis 7 redacts them (`redactClientCommandArgument`).
//!
//! AUTH's arguments, HELLO's AUTH username and password, everything ACL SETUSER says
//! after its name (the user's name included: its rules hold passwords and their
//! hashes), the values CONFIG SET gives `requirepass`, `masterauth` and `masteruser`,
//! and MIGRATE's AUTH and AUTH2 credentials. Why one place: SLOWLOG kept them in clear
//! (any client allowed SLOWLOG GET read other clients' passwords) while MONITOR's line
//! had its own two rules.

use bytes::Bytes;

/// What [`secrets`] found in one command's arguments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    /// Every argument from this position on is a secret.
    from: Option<usize>,
    /// These positions are secrets.
    at: smallvec::SmallVec<[usize; 4]>,
}

impl Secrets {
    /// Whether the argument at `i` is a secret.
    pub fn contains(&self, i: usize) -> bool {
        self.from.is_some_and(|f| i >= f) || self.at.contains(&i)
    }

    /// Whether no argument is a secret.
    pub fn is_empty(&self) -> bool {
        self.from.is_none() && self.at.is_empty()
    }
}

/// The CONFIG parameters whose values CONFIG SET redacts (Redis's SENSITIVE_CONFIG).
const SENSITIVE_CONFIG: [&[u8]; 3] = [b"requirepass", b"masterauth", b"masteruser"];

/// The secret arguments of `args` (the command name first).
pub fn secrets(args: &[Bytes]) -> Secrets {
    let mut out = Secrets::default();
    let Some(name) = args.first() else {
        return out;
    };
    let is = |i: usize, word: &str| {
        args.get(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()))
    };
    if name.eq_ignore_ascii_case(b"auth") {
        out.from = Some(1);
    } else if name.eq_ignore_ascii_case(b"hello") {
        // HELLO [protover [AUTH username password] [SETNAME clientname]]
        let mut j = 2;
        while j < args.len() {
            let more = args.len() - 1 - j;
            if is(j, "auth") && more >= 2 {
                out.at.extend([j + 1, j + 2]);
                j += 3;
            } else if is(j, "setname") && more >= 1 {
                j += 2;
            } else {
                break;
            }
        }
    } else if name.eq_ignore_ascii_case(b"acl") && is(1, "setuser") {
        out.from = Some(2);
    } else if name.eq_ignore_ascii_case(b"config") && is(1, "set") {
        for at in (2..args.len()).step_by(2) {
            let sensitive = SENSITIVE_CONFIG
                .iter()
                .any(|p| args[at].eq_ignore_ascii_case(p));
            if sensitive && at + 1 < args.len() {
                out.at.push(at + 1);
            }
        }
    } else if name.eq_ignore_ascii_case(b"migrate") {
        // MIGRATE host port key db timeout [COPY] [REPLACE] [AUTH pw | AUTH2 user pw]
        // [KEYS key ...]
        let mut j = 6;
        while j < args.len() {
            let more = args.len() - 1 - j;
            if is(j, "copy") || is(j, "replace") {
                j += 1;
            } else if is(j, "auth") && more >= 1 {
                out.at.push(j + 1);
                j += 2;
            } else if is(j, "auth2") && more >= 2 {
                out.at.extend([j + 1, j + 2]);
                j += 3;
            } else {
                break;
            }
        }
    }
    out
}

/// What a log shows in place of a secret argument.
pub const REDACTED: &str = "(redacted)";

#[cfg(test)]
mod tests {
    use super::*;

    fn found(args: &[&str]) -> Vec<usize> {
        let args: Vec<Bytes> = args
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        let s = secrets(&args);
        (0..args.len()).filter(|&i| s.contains(i)).collect()
    }

    #[test]
    fn the_arguments_redis_redacts_are_found() {
        assert_eq!(found(&["AUTH", "pw"]), [1]);
        assert_eq!(found(&["auth", "user", "pw"]), [1, 2]);
        assert_eq!(
            found(&["hello", "3", "SETNAME", "auth", "AUTH", "u", "p"]),
            [5, 6],
            "a client named auth is not the option"
        );
        assert_eq!(found(&["hello", "3", "auth", "u"]), Vec::<usize>::new());
        assert_eq!(found(&["ACL", "SETUSER", "bob", "on", ">pw"]), [2, 3, 4]);
        assert_eq!(found(&["acl", "getuser", "bob"]), Vec::<usize>::new());
        assert_eq!(
            found(&[
                "config",
                "set",
                "maxmemory",
                "0",
                "REQUIREPASS",
                "x",
                "masteruser",
                "u"
            ]),
            [5, 7]
        );
        assert_eq!(
            found(&["config", "get", "requirepass"]),
            Vec::<usize>::new()
        );
        assert_eq!(
            found(&["migrate", "h", "1", "k", "0", "10", "COPY", "AUTH", "pw"]),
            [8]
        );
        assert_eq!(
            found(&["migrate", "h", "1", "", "0", "10", "auth2", "u", "pw", "KEYS", "auth", "x"]),
            [7, 8],
            "keys named auth are keys"
        );
        assert_eq!(found(&["set", "auth", "pw"]), Vec::<usize>::new());
        assert!(secrets(&[]).is_empty());
    }
}
