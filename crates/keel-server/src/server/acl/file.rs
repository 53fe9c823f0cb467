//! The ACL file: one `user <name> <rules>...` line per user, as ACL LIST prints them.
//! Loading checks every line before anything changes, and names each bad one by file
//! and line; saving writes a temporary file, syncs it and renames it over the old one,
//! so that a crash leaves the old file or the new one, never half of one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use super::user::{merge_selectors, User};
use super::AclFileError;

/// The users the file at `path` describes, or every problem it has.
pub fn load(path: &Path) -> Result<BTreeMap<String, User>, AclFileError> {
    let text = fs::read(path).map_err(|source| AclFileError::Io {
        action: "loading",
        path: path.to_owned(),
        source,
    })?;
    parse(&path.display().to_string(), &text)
}

/// The users of an ACL file's `text` (`name` is the file, for the errors).
fn parse(name: &str, text: &[u8]) -> Result<BTreeMap<String, User>, AclFileError> {
    let mut users = BTreeMap::new();
    let mut errors = String::new();
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        let n = i + 1;
        let words: Vec<&[u8]> = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        let Some((first, rest)) = words.split_first() else {
            continue; // a blank line
        };
        let (Some((user, rules)), b"user") = (rest.split_first(), *first) else {
            errors.push_str(&format!(
                "{name}:{n} should start with user keyword followed by the username. "
            ));
            continue;
        };
        let Ok(user_name) = std::str::from_utf8(user) else {
            errors.push_str(&format!(
                "{name}:{n}: username '{}' contains invalid characters. ",
                String::from_utf8_lossy(user)
            ));
            continue;
        };
        if users.contains_key(user_name) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{user_name}' found on line {n}. "
            ));
            continue;
        }
        let mut u = User::new(user_name);
        // Rules one at a time, as Redis reports them: every unknown command or category,
        // and the first other error, of the line.
        let merged = match merge_selectors(rules) {
            Ok(m) => m,
            Err(e) => {
                errors.push_str(&format!("{name}:{n}: {}. ", e.in_file()));
                continue;
            }
        };
        let mut other_error = false;
        let before = errors.len();
        for rule in &merged {
            if let Err(e) = u.set_rules(&[rule.as_slice()]) {
                if e.is_unknown_name() || !other_error {
                    errors.push_str(&format!("{name}:{n}: {}. ", e.in_file()));
                }
                other_error |= !e.is_unknown_name();
            }
        }
        if errors.len() == before {
            users.insert(user_name.to_owned(), u);
        }
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        errors.push_str(
            "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
        );
        Err(AclFileError::Invalid(errors))
    }
}

/// Writes `lines` (ACL LIST lines) as the file at `path`, replacing it whole.
pub fn save(path: &Path, lines: &[String]) -> Result<(), AclFileError> {
    let io = |source| AclFileError::Io {
        action: "saving",
        path: path.to_owned(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let mut f = fs::File::create(tmp).map_err(io)?;
    for line in lines {
        f.write_all(line.as_bytes()).map_err(io)?;
        f.write_all(b"\n").map_err(io)?;
    }
    f.sync_all().map_err(io)?;
    drop(f);
    fs::rename(tmp, path).map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_users_and_skips_blank_lines() {
        let users = parse(
            "users.acl",
            b"user alice on >pw ~app:* +get\n\n  \nuser bob off\n",
        )
        .expect("valid file");
        assert_eq!(users.len(), 2);
        assert!(users["alice"].enabled());
        assert!(users["alice"].check_password(b"pw"));
        assert!(!users["bob"].enabled());
    }

    #[test]
    fn names_every_bad_line_by_file_and_number() {
        let e = parse(
            "users.acl",
            b"user alice on\nnobody here\nuser alice off\nuser carol +nosuchcommand\n",
        )
        .expect_err("invalid file")
        .to_string();
        assert!(
            e.contains("users.acl:2 should start with user keyword"),
            "{e}"
        );
        assert!(e.contains("Duplicate user 'alice' found on line 3"), "{e}");
        assert!(e.contains("users.acl:4: "), "{e}");
        assert!(e.ends_with("no change to the previously active ACL rules was performed"));
    }

    #[test]
    fn save_then_load_gives_the_same_users() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.acl");
        let mut alice = User::new("alice");
        alice
            .set_rules(&[b"on", b">secret", b"~k*", b"+@read"])
            .expect("rules");
        let lines = vec![alice.describe(), User::default_user().describe()];
        save(&path, &lines).expect("save");
        let users = load(&path).expect("load");
        assert_eq!(users["alice"].describe(), lines[0]);
        assert_eq!(users["default"].describe(), lines[1]);
        assert!(users["alice"].check_password(b"secret"));
    }
}
