//! The command table: name, arity, flags, key positions and handler of every data
//! command. It is the one place that feeds dispatch, COMMAND, routing and docs; the
//! server adds its own connection/server commands as entries of the same type.

use std::sync::OnceLock;

use bytes::Bytes;

use crate::error::CmdResult;
use crate::exec::Exec;
use crate::name_table::{NameTable, Remembered};
use crate::reply::Reply;

/// A command handler: `args[0]` is the command name as sent.
pub type Handler = fn(&mut Exec, &[Bytes]) -> CmdResult<Reply>;

/// Command flags (Redis's names, lower-case in COMMAND output).
pub mod flags {
    /// Modifies data: goes through the log.
    pub const WRITE: u32 = 1 << 0;
    /// Only reads data: served from a snapshot.
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory: refused over maxmemory with noeviction.
    pub const DENYOOM: u32 = 1 << 2;
    /// O(1) or O(log n).
    pub const FAST: u32 = 1 << 3;
    /// May block the client (the waiting belongs to the server).
    pub const BLOCKING: u32 = 1 << 4;
    /// Administrative.
    pub const ADMIN: u32 = 1 << 5;
    /// Uses randomness; the apply seed makes it deterministic.
    pub const RANDOM: u32 = 1 << 6;
    /// keel's own hint, not shown by COMMAND: the command makes one point read, so it
    /// may read the latest state without a snapshot ([`crate::kv::LatestReader`]).
    pub const POINT_READ: u32 = 1 << 7;
    /// keel's own hint, not shown by COMMAND: the command looks at its keys without
    /// counting as an access (Redis's LOOKUP_NOTOUCH), or OBJECT IDLETIME would always
    /// answer 0.
    pub const NO_TOUCH: u32 = 1 << 8;
    /// keel's own hint, not shown by COMMAND: the command reaches its key's metadata only
    /// through helpers that ask [`crate::kv::WriteTx::held`] first, so the metadata a
    /// previous command of the group left held need not be written out before it runs.
    pub const HOLDS_META: u32 = 1 << 9;
    /// Not callable from a script (EVAL and SCRIPT themselves; the server's own
    /// connection commands carry it too).
    pub const NOSCRIPT: u32 = 1 << 10;
    /// keel's own hint, not shown by COMMAND: the command finds members by position (a
    /// rank, the first or last, a random pick), which storage answers in O(log n) but a
    /// write group holding writes in the same range must correct position by position;
    /// the write funnel writes its group out before such a command (see
    /// [`CommandSpec::reads_positions`]).
    pub const POSITIONAL: u32 = 1 << 11;

    /// Flag names as COMMAND prints them.
    pub fn names(f: u32) -> Vec<&'static str> {
        let all = [
            (WRITE, "write"),
            (READONLY, "readonly"),
            (DENYOOM, "denyoom"),
            (FAST, "fast"),
            (BLOCKING, "blocking"),
            (ADMIN, "admin"),
            (RANDOM, "random"),
            (NOSCRIPT, "noscript"),
        ];
        all.iter()
            .filter(|(bit, _)| f & bit != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// One command's entry.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis convention: N > 0 exactly N args including the name; -N at least N.
    pub arity: i32,
    /// Bitset of [`flags`].
    pub flags: u32,
    /// Position of the first key argument (0 = no keys).
    pub first_key: i32,
    /// Position of the last key (-1 = the last argument, -2 = the one before, …).
    pub last_key: i32,
    /// Step between keys.
    pub step: i32,
    /// Command group as in COMMAND DOCS ("string", "list", "generic", …).
    pub group: &'static str,
    /// One-line summary for COMMAND DOCS and hints.
    pub summary: &'static str,
    /// The implementation.
    pub handler: Handler,
}

impl CommandSpec {
    /// True for write commands.
    pub fn is_write(&self) -> bool {
        self.flags & flags::WRITE != 0
    }

    /// True for commands that find members by position ([`flags::POSITIONAL`]).
    pub fn reads_positions(&self) -> bool {
        self.flags & flags::POSITIONAL != 0
    }

    /// True if `argc` (including the name) fits the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        arity_fits(self.arity, argc)
    }

    /// Positions of the key arguments in `args` (from the key spec), without allocating:
    /// every write walks them to touch its keys' access times.
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        key_range(self.first_key, self.last_key, self.step, argc)
    }

    /// The key arguments of `args`: by the key spec, or for a command without one that
    /// names its keys after a count or a keyword (ZUNION, SINTERCARD, XREAD…) by
    /// [`movable_key_positions`], which allocates.
    pub fn keys_in<'a>(&self, args: &'a [Bytes]) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.key_indices(args).filter_map(move |p| args.get(p))
    }

    /// Positions in `args` of the keys [`CommandSpec::keys_in`] gives (ACL checks name
    /// the refused key by position); see [`key_indices`].
    pub fn key_indices(&self, args: &[Bytes]) -> impl Iterator<Item = usize> {
        key_indices(self.name, self.first_key, self.last_key, self.step, args)
    }
}

/// Positions in `args` of the keys of the command `name` (lower-case, as a command table
/// spells it) whose key spec is `first_key`/`last_key`/`step`; the server's own commands
/// (MIGRATE) use it too. A command with movable keys is asked [`movable_key_positions`]
/// even when its key spec names a key: SORT's and GEORADIUS's spec names only the
/// source, ZUNIONSTORE's only the destination, and an ACL check by the spec alone let a
/// limited user read any sorted set into a key of theirs (ZUNIONSTORE mine 1 secret) or
/// SORT into a key they may only read.
pub fn key_indices(
    name: &str,
    first_key: i32,
    last_key: i32,
    step: i32,
    args: &[Bytes],
) -> impl Iterator<Item = usize> {
    let argc = args.len();
    let movable = movable_lower(name).map(|m| positions_of(m, args));
    let fixed = movable
        .is_none()
        .then(|| key_range(first_key, last_key, step, argc))
        .into_iter()
        .flatten();
    movable
        .into_iter()
        .flatten()
        .chain(fixed)
        .filter(move |p| *p < argc)
}

/// Whether `argc` arguments (the name included) fit `arity`, Redis's convention: N > 0
/// exactly N, -N at least N. The server's own commands and subcommands use it too.
#[inline]
pub fn arity_fits(arity: i32, argc: usize) -> bool {
    let argc = argc as i64;
    let a = i64::from(arity);
    if a >= 0 {
        argc == a
    } else {
        argc >= -a
    }
}

/// Key positions of a fixed key spec (`first_key`, `last_key`, `step`) over `argc`
/// arguments, as COMMAND describes them (`last_key` < 0 counts from the end).
#[inline]
pub fn key_range(
    first_key: i32,
    last_key: i32,
    step: i32,
    argc: usize,
) -> impl Iterator<Item = usize> {
    let first = i64::from(first_key);
    let last = if first_key <= 0 || argc == 0 {
        // An empty range: no key spec, or nothing to point into.
        0
    } else if last_key < 0 {
        argc as i64 + i64::from(last_key)
    } else {
        i64::from(last_key)
    };
    let step = usize::try_from(step.max(1)).unwrap_or(1);
    let end = last.min(argc as i64 - 1);
    (first.max(1)..=end)
        .step_by(step)
        .filter(move |_| first > 0)
        .map(|i| i as usize)
}

/// How a command with movable keys names them.
enum Movable {
    /// A `numkeys` count at this position, keys after it, and these positions before it.
    NumKeys(usize, &'static [usize]),
    /// SORT's STORE option.
    Sort,
    /// GEORADIUS's STORE and STOREDIST, searched from this position.
    Radius(usize),
    /// A script's keys: a `numkeys` count at position 2, which may be 0 (Redis's
    /// NO_MANDATORY_KEYS).
    Script,
    /// XREAD's and XREADGROUP's: the first half of what follows STREAMS.
    Streams,
    /// MIGRATE's: its key argument, or what follows its KEYS option.
    Migrate,
}

fn movable(name: &[u8]) -> Option<Movable> {
    movable_lower(std::str::from_utf8(&name.to_ascii_lowercase()).ok()?)
}

/// [`movable`] of a lower-case name (a command table's), without allocating.
fn movable_lower(name: &str) -> Option<Movable> {
    Some(match name {
        "lmpop" | "zmpop" | "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" => {
            Movable::NumKeys(1, &[])
        }
        "blmpop" | "bzmpop" => Movable::NumKeys(2, &[]),
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => Movable::Script,
        "zunionstore" | "zinterstore" | "zdiffstore" => Movable::NumKeys(2, &[1]),
        "sort" | "sort_ro" => Movable::Sort,
        "georadius" => Movable::Radius(6),
        "georadiusbymember" => Movable::Radius(5),
        "xread" | "xreadgroup" => Movable::Streams,
        "migrate" => Movable::Migrate,
        _ => return None,
    })
}

/// Whether `name` may name no keys at all (Redis's NO_MANDATORY_KEYS): the scripts,
/// whose `numkeys` may be 0.
pub fn keys_are_optional(name: &str) -> bool {
    runs_script(name.as_bytes())
}

/// Whether the command `name` runs a Lua script or function (EVAL, EVALSHA, FCALL and
/// their _RO forms), whose calls a limited user's gate must check.
pub fn runs_script(name: &[u8]) -> bool {
    matches!(movable(name), Some(Movable::Script))
}

/// Whether `name`'s keys are found by [`movable_key_positions`] (COMMAND INFO's
/// `movablekeys` flag, which tells cluster clients to ask COMMAND GETKEYS).
pub fn has_movable_keys(name: &str) -> bool {
    movable(name.as_bytes()).is_some()
}

/// The key positions of the commands whose keys first/last/step cannot describe
/// (Redis's "movablekeys"): a `numkeys` count before the keys (LMPOP, ZUNION,
/// SINTERCARD, …; the STORE forms' destination first), or the STORE option of SORT,
/// GEORADIUS and GEORADIUSBYMEMBER. None for other commands, which
/// [`CommandSpec::key_positions`] answers; an empty list for a malformed count.
pub fn movable_key_positions(args: &[Bytes]) -> Option<Vec<usize>> {
    Some(positions_of(movable(args.first()?)?, args))
}

/// The key positions in `args` of a command whose keys move as `m` says.
fn positions_of(m: Movable, args: &[Bytes]) -> Vec<usize> {
    let (numkeys_at, lead) = match m {
        Movable::NumKeys(at, lead) => (at, lead),
        Movable::Script => (2, &[][..]),
        Movable::Sort => return sort_key_positions(args),
        Movable::Radius(from) => return crate::types::geo::radius_key_positions(args, from),
        Movable::Streams => return streams_key_positions(args),
        Movable::Migrate => return migrate_key_positions(args),
    };
    let n = args
        .get(numkeys_at)
        .and_then(|a| crate::args::parse_i64(a))
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n >= 1 && numkeys_at + n < args.len());
    match n {
        Some(n) => lead
            .iter()
            .copied()
            .chain(numkeys_at + 1..=numkeys_at + n)
            .collect(),
        None => Vec::new(),
    }
}

/// SORT's keys: the sorted key, and STORE's destination (the last one given wins, as
/// in Redis). Options are skipped with their arguments so that a key named "store"
/// is not taken for the option.
fn sort_key_positions(args: &[Bytes]) -> Vec<usize> {
    let mut keys = vec![1];
    let mut store = None;
    let mut j = 2;
    while j < args.len() {
        let a = args[j].to_ascii_lowercase();
        let skip = match a.as_slice() {
            b"limit" => 2,
            b"get" | b"by" => 1,
            b"store" => {
                if j + 1 < args.len() {
                    store = Some(j + 1);
                }
                1
            }
            _ => 0,
        };
        j += 1 + skip;
    }
    keys.extend(store);
    keys.retain(|p| *p < args.len());
    keys
}

/// XREAD's and XREADGROUP's keys: the first half of the arguments after STREAMS. The
/// options before it are skipped with their arguments, so that a group, consumer or
/// count named "streams" is not taken for the keyword; none for an odd remainder.
fn streams_key_positions(args: &[Bytes]) -> Vec<usize> {
    let mut j = 1;
    while j < args.len() {
        let a = args[j].to_ascii_lowercase();
        j += match a.as_slice() {
            b"block" | b"count" => 2,
            b"group" => 3,
            b"streams" => {
                let rest = args.len() - j - 1;
                if rest == 0 || !rest.is_multiple_of(2) {
                    return Vec::new();
                }
                return (j + 1..=j + rest / 2).collect();
            }
            _ => 1,
        };
    }
    Vec::new()
}

/// MIGRATE's keys, as Redis finds them: the key argument (position 3), or with the KEYS
/// option every argument after it, when the key argument is the empty string it must
/// then be. COPY and REPLACE are skipped alone, AUTH with one argument
/// and AUTH2 with two, so that a password spelled "keys" is not taken for the option.
fn migrate_key_positions(args: &[Bytes]) -> Vec<usize> {
    let mut j = 6;
    while j < args.len() {
        let a = args[j].to_ascii_lowercase();
        j += match a.as_slice() {
            // With a key argument too the call is refused when it runs; its key
            // argument is what Redis's ACL check then looks at.
            b"keys" if args.get(3).is_some_and(|k| !k.is_empty()) => break,
            b"keys" => return (j + 1..args.len()).collect(),
            b"auth" => 2,
            b"auth2" => 3,
            _ => 1,
        };
    }
    if args.len() > 3 {
        vec![3]
    } else {
        Vec::new()
    }
}

/// Every data command of the engine.
pub fn all_commands() -> impl Iterator<Item = &'static CommandSpec> {
    crate::types::TABLES.iter().flat_map(|t| t.iter())
}

/// Looks up a command by name, case-insensitively (comparing with the thread's last
/// command first, see [`NameTable::get_remembered`]).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    static TABLE: OnceLock<NameTable<&'static CommandSpec>> = OnceLock::new();
    thread_local! {
        static LAST: Remembered<&'static CommandSpec> = const { std::cell::Cell::new(None) };
    }
    TABLE
        .get_or_init(|| NameTable::new(all_commands().map(|c| (c.name, c))))
        .get_remembered(&LAST, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(args: &[&str]) -> Option<Vec<usize>> {
        let args: Vec<Bytes> = args
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        movable_key_positions(&args)
    }

    #[test]
    fn movable_keys_are_found_where_redis_finds_them() {
        assert_eq!(
            positions(&["SORT", "abc", "STORE", "def"]),
            Some(vec![1, 3])
        );
        assert_eq!(
            positions(&["sort", "abc", "store", "invalid", "store", "stillbad", "store", "def"]),
            Some(vec![1, 7])
        );
        assert_eq!(
            positions(&["sort", "abc", "by", "store", "get", "#"]),
            Some(vec![1])
        );
        assert_eq!(positions(&["sort_ro", "abc"]), Some(vec![1]));
        assert_eq!(
            positions(&["lmpop", "2", "a", "b", "left"]),
            Some(vec![2, 3])
        );
        assert_eq!(positions(&["BLMPOP", "0", "1", "a", "left"]), Some(vec![3]));
        assert_eq!(
            positions(&["zunionstore", "d", "2", "a", "b"]),
            Some(vec![1, 3, 4])
        );
        assert_eq!(
            positions(&["zinter", "3", "a", "b"]),
            Some(vec![]),
            "count past the end"
        );
        assert_eq!(positions(&["sintercard", "0", "a"]), Some(vec![]));
        assert_eq!(positions(&["get", "a"]), None);
        let migrate = ["MIGRATE", "h", "1", "k", "0", "100"];
        assert_eq!(positions(&migrate), Some(vec![3]));
        let keys_form = [
            "migrate", "h", "1", "", "0", "100", "COPY", "keys", "a", "b",
        ];
        assert_eq!(positions(&keys_form), Some(vec![8, 9]));
        assert_eq!(
            positions(&["migrate", "h", "1", "", "0", "100", "AUTH2", "u", "keys", "KEYS", "a"]),
            Some(vec![10]),
            "AUTH2's password is not the option"
        );
        assert_eq!(
            positions(&["migrate", "h", "1", "k", "0", "100", "KEYS", "a"]),
            Some(vec![3]),
            "KEYS with a key argument: the key argument, as Redis's ACL check sees it"
        );
    }

    #[test]
    fn lookup_answers_the_same_with_its_last_command_cache() {
        let name = |n: &[u8]| lookup(n).map(|c| c.name);
        for _ in 0..2 {
            assert_eq!(name(b"SET"), Some("set"));
            assert_eq!(name(b"set"), Some("set"), "cached, other case");
            assert_eq!(name(b"SETX"), None, "longer than the cached name");
            assert_eq!(name(b"se"), None, "a prefix of the cached name");
            assert_eq!(name(b"get"), Some("get"));
            assert_eq!(name(b"nope"), None);
            assert_eq!(name(b"GeT"), Some("get"));
        }
    }

    #[test]
    fn no_touch_marks_the_commands_redis_lets_look_without_touching() {
        let mut marked: Vec<&str> = all_commands()
            .filter(|c| c.flags & flags::NO_TOUCH != 0)
            .map(|c| c.name)
            .collect();
        marked.sort_unstable();
        assert_eq!(
            marked,
            [
                "exists",
                "expiretime",
                "object",
                "pexpiretime",
                "pttl",
                "ttl",
                "type"
            ]
        );
    }

    /// The key spec read by hand: every position from the first key to the last
    /// (counted from the end when negative) at the spec's step, inside the arguments.
    fn positions_by_hand(first: i32, last: i32, step: i32, argc: usize) -> Vec<usize> {
        if first <= 0 {
            return Vec::new();
        }
        let last = if last < 0 {
            argc as i64 + i64::from(last)
        } else {
            i64::from(last)
        };
        let step = step.max(1) as usize;
        (first as usize..argc)
            .step_by(step)
            .filter(|&p| p as i64 <= last)
            .collect()
    }

    #[test]
    fn key_positions_follow_the_key_spec() {
        let spec = |first, last, step| CommandSpec {
            first_key: first,
            last_key: last,
            step,
            ..*lookup(b"mset").expect("mset")
        };
        let cases = [
            (0, 0, 0),
            (1, 1, 1),
            (1, -1, 1),
            (1, -1, 2),
            (2, -1, 1),
            (1, 2, 1),
            (1, -2, 1),
            (3, 3, 1),
            (2, -2, 3),
        ];
        for (first, last, step) in cases {
            let s = spec(first, last, step);
            for argc in 0..12 {
                let got: Vec<usize> = s.key_positions(argc).collect();
                let want = positions_by_hand(first, last, step, argc);
                assert_eq!(got, want, "spec ({first}, {last}, {step}), argc {argc}");
            }
        }
        for c in all_commands() {
            for argc in 0..12 {
                let got: Vec<usize> = c.key_positions(argc).collect();
                let want = positions_by_hand(c.first_key, c.last_key, c.step, argc);
                assert_eq!(got, want, "{} with {argc} arguments", c.name);
            }
        }
    }

    #[test]
    fn names_are_unique_lowercase_and_keyspecs_sane() {
        let mut seen = std::collections::HashSet::new();
        for c in all_commands() {
            assert!(seen.insert(c.name), "duplicate command {}", c.name);
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(c.arity != 0, "{} has arity 0", c.name);
            assert!(
                (c.flags & flags::WRITE != 0) != (c.flags & flags::READONLY != 0),
                "{} must be exactly one of write/readonly",
                c.name
            );
        }
        assert!(lookup(b"GET").is_some());
        assert!(lookup(b"nosuchcommand").is_none());
    }
}
