//! One ACL user: its passwords, flags and permission rules, parsed from ACL SETUSER's
//! rules, described back as ACL LIST and ACL GETUSER print them, and checked per call.
//!
//! Semantics are Redis 7.2's (`acl.c`): a user is a root selector plus any number of
//! extra selectors `(...)`, and a call is allowed when one of them allows all of it.
//! Command rules are kept as Redis 7.2 keeps them, an ordered, compacted list that
//! ACL LIST prints back as given, and as a bitset over [`categories`] ids the check
//! reads.

use bytes::Bytes;
use keel_engine::glob::glob_match;
use keel_engine::Reply;
use sha2::{Digest, Sha256};

use super::categories::{self, AclCommand, AclSubcommand};

/// What a command does with one key, for %R~ / %W~ patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAccess {
    /// Reads the key: needs a pattern granting R.
    Read,
    /// Writes the key: needs a pattern granting W.
    Write,
    /// Both: needs one pattern granting both.
    ReadWrite,
    /// Only its existence or metadata (EXISTS, TYPE, HLEN): any matching pattern.
    Exists,
}

/// One call to check: the command's lower-case name, its arguments (args[0] is the name
/// as sent), the positions of its keys in args with their access, and of its channels
/// (true: a pattern, as PSUBSCRIBE's). A position outside `args` is refused.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Lower-case command name.
    pub name: &'a str,
    /// Every argument, the name first.
    pub args: &'a [Bytes],
    /// Key positions in `args` and what the command does with each.
    pub keys: &'a [(usize, KeyAccess)],
    /// Channel positions in `args`; true if that argument is a channel pattern.
    pub channels: &'a [(usize, bool)],
}

/// Why a call was refused: the command itself, or the key / channel at this position of
/// args.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The command (or subcommand) is not allowed.
    Command,
    /// The key at this position of args is not allowed.
    Key(usize),
    /// The channel at this position of args is not allowed.
    Channel(usize),
}

impl Denied {
    /// Redis reports, of every selector's refusal, the one that got furthest: channels
    /// over keys over the command, then the later argument.
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (1, 0),
            Denied::Key(i) => (2, i),
            Denied::Channel(i) => (4, i),
        }
    }
}

/// A rule that ACL SETUSER could not apply; Display is Redis's full error text
/// ("ERR Error in ACL SETUSER modifier '<rule>': <reason>" etc., exact texts from acl.c).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct RuleError {
    text: String,
    /// The error as an ACL file's line reports it.
    in_file: String,
}

impl RuleError {
    /// The error text, as Display prints it.
    pub fn message(&self) -> &str {
        &self.text
    }

    /// The error as ACL LOAD reports it for a line of the file: Redis names the rule
    /// only for an unknown command or category, and gives the reason alone otherwise.
    pub fn in_file(&self) -> &str {
        &self.in_file
    }

    /// Whether the rule named an unknown command or category (ACL LOAD reports every
    /// such rule of a line, and only the first of the other errors).
    pub fn is_unknown_name(&self) -> bool {
        self.in_file.starts_with("Error in applying operation")
    }

    fn modifier(op: &[u8], fault: Fault) -> RuleError {
        let rule = String::from_utf8_lossy(op);
        RuleError {
            text: format!(
                "ERR Error in ACL SETUSER modifier '{rule}': {}",
                fault.text()
            ),
            in_file: match fault {
                Fault::Unknown => {
                    format!("Error in applying operation '{rule}': {}", fault.text())
                }
                _ => fault.text().to_owned(),
            },
        }
    }
}

/// Why one rule failed (Redis's errno values in ACLSetUser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// EINVAL.
    Syntax,
    /// ENOENT.
    Unknown,
    /// EEXIST.
    KeyAfterAll,
    /// EISDIR.
    ChannelAfterAll,
    /// ENODEV.
    NoSuchPassword,
    /// EBADMSG.
    BadHash,
    /// ECHILD.
    SubcommandFirstArg,
}

impl Fault {
    fn text(self) -> &'static str {
        match self {
            Fault::Syntax => "Syntax error",
            Fault::Unknown => "Unknown command or category name in ACL",
            Fault::KeyAfterAll => {
                "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid \
                 and does not have any effect. Try 'resetkeys' to start with an empty list \
                 of patterns"
            }
            Fault::ChannelAfterAll => {
                "Adding a pattern after the * pattern (or the 'allchannels' flag) is not \
                 valid and does not have any effect. Try 'resetchannels' to start with an \
                 empty list of channels"
            }
            Fault::NoSuchPassword => {
                "The password you are trying to remove from the user does not exist"
            }
            Fault::BadHash => {
                "The password hash must be exactly 64 characters and contain only lowercase \
                 hexadecimal characters"
            }
            Fault::SubcommandFirstArg => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

/// SHA-256 of a password: what a user keeps instead of the password.
type PasswordHash = [u8; 32];

fn hash_password(pass: &[u8]) -> PasswordHash {
    Sha256::digest(pass).into()
}

fn hex(hash: &PasswordHash) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in hash {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Parses a `#`/`!` hash as Redis accepts it: exactly 64 lower-case hex digits.
fn parse_hash(text: &[u8]) -> Option<PasswordHash> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Compares two hashes in time that does not depend on where they differ.
fn same_hash(a: &PasswordHash, b: &PasswordHash) -> bool {
    a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// C's isspace, plus NUL: what Redis refuses in key and channel patterns.
fn is_space_or_nul(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0)
}

/// A key pattern with the access it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyPattern {
    pattern: Vec<u8>,
    read: bool,
    write: bool,
}

impl KeyPattern {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match (self.read, self.write) {
            (true, false) => b"%R~",
            (false, true) => b"%W~",
            _ => b"~",
        });
        out.extend_from_slice(&self.pattern);
    }
}

/// What a command rule names: a command (with all its subcommands) or one subcommand.
#[derive(Clone, Copy)]
enum Target {
    Command(&'static AclCommand),
    Sub(&'static AclSubcommand),
}

impl Target {
    fn full_name(self) -> &'static str {
        match self {
            Target::Command(c) => c.name,
            Target::Sub(s) => s.full_name,
        }
    }
}

/// Resolves a rule's command name as Redis's ACLLookupCommand does: `cmd` or
/// `container|sub`, any case; `cmd|x` of a command without subcommands is unknown.
fn lookup_rule(name: &[u8]) -> Option<Target> {
    let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
    let mut parts = name.split('|');
    let base = parts.next()?;
    let sub = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let cmd = categories::lookup(base)?;
    match sub {
        None => Some(Target::Command(cmd)),
        Some(sub) if cmd.is_container() => cmd.subcommand(sub.as_bytes()).map(Target::Sub),
        Some(_) => None,
    }
}

/// One set of permissions: the user's root one, or a `(...)` selector.
#[derive(Debug, Clone)]
struct Selector {
    /// Bit per [`categories`] id: the command may run.
    allowed: Vec<u64>,
    /// Set by `+@all` and cleared by `-@all` only: ACL LIST then starts with `+@all`, and
    /// commands unknown to the index are allowed, as Redis lets such a user run commands
    /// loaded later.
    future: bool,
    /// First arguments allowed for an otherwise denied command (`+select|0`), by id.
    first_args: Vec<(usize, Vec<Vec<u8>>)>,
    /// The command rules as ACL LIST prints them after `+@all`/`-@all`, in order.
    rules: Vec<String>,
    all_keys: bool,
    keys: Vec<KeyPattern>,
    all_channels: bool,
    channels: Vec<Vec<u8>>,
}

impl Selector {
    /// Redis's fresh selector: no commands, no keys, no channels.
    fn new() -> Selector {
        Selector {
            allowed: vec![0; categories::id_count().div_ceil(64)],
            future: false,
            first_args: Vec::new(),
            rules: Vec::new(),
            all_keys: false,
            keys: Vec::new(),
            all_channels: false,
            channels: Vec::new(),
        }
    }

    fn bit(&self, id: usize) -> bool {
        self.allowed
            .get(id / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if let Some(w) = self.allowed.get_mut(id / 64) {
            if on {
                *w |= 1 << (id % 64);
            } else {
                *w &= !(1 << (id % 64));
            }
        }
    }

    fn all_commands(&self) -> bool {
        (0..categories::id_count()).all(|id| self.bit(id))
    }

    /// Allows or denies a command and all its subcommands, or one subcommand; either
    /// way first-arg rules of it are dropped, as Redis's ACLChangeSelectorPerm does.
    fn change(&mut self, target: Target, allow: bool) {
        match target {
            Target::Command(c) => {
                self.set_bit(c.id, allow);
                self.first_args.retain(|(id, _)| *id != c.id);
                for s in &c.subcommands {
                    self.set_bit(s.id, allow);
                }
            }
            Target::Sub(s) => {
                self.set_bit(s.id, allow);
                self.first_args.retain(|(id, _)| *id != s.id);
            }
        }
    }

    /// Records a rule so ACL LIST repeats it: an earlier rule on the same command (or
    /// one of its subcommands), or on the same category, is dropped first, so only the
    /// last word on each stays.
    fn record(&mut self, rule: &str, allow: bool) {
        self.rules.retain(|r| {
            let name = &r[1..];
            !(name == rule
                || name
                    .strip_prefix(rule)
                    .is_some_and(|rest| rest.starts_with('|')))
        });
        self.rules
            .push(format!("{}{rule}", if allow { '+' } else { '-' }));
    }

    fn set_all_commands(&mut self, allow: bool) {
        self.allowed.fill(if allow { u64::MAX } else { 0 });
        self.future = allow;
        self.rules.clear();
        self.first_args.clear();
    }

    fn apply(&mut self, op: &[u8]) -> Result<(), Fault> {
        let is = |word: &str| op.eq_ignore_ascii_case(word.as_bytes());
        if is("allkeys") || is("~*") {
            self.all_keys = true;
            self.keys.clear();
        } else if is("resetkeys") {
            self.all_keys = false;
            self.keys.clear();
        } else if is("allchannels") || is("&*") {
            self.all_channels = true;
            self.channels.clear();
        } else if is("resetchannels") {
            self.all_channels = false;
            self.channels.clear();
        } else if is("allcommands") || is("+@all") {
            self.set_all_commands(true);
        } else if is("nocommands") || is("-@all") {
            self.set_all_commands(false);
        } else {
            match op {
                [b'~' | b'%', ..] => self.add_key_pattern(op)?,
                [b'&', pattern @ ..] => self.add_channel(pattern)?,
                [sign @ (b'+' | b'-'), b'@', name @ ..] => self.category(name, *sign == b'+')?,
                [b'+', rest @ ..] => self.allow_command(rest)?,
                [b'-', rest @ ..] => self.deny_command(rest)?,
                _ => return Err(Fault::Syntax),
            }
        }
        Ok(())
    }

    fn add_key_pattern(&mut self, op: &[u8]) -> Result<(), Fault> {
        if self.all_keys {
            return Err(Fault::KeyAfterAll);
        }
        let (mut read, mut write) = (true, true);
        let mut offset = 1;
        if op[0] == b'%' {
            (read, write) = (false, false);
            while offset < op.len() {
                let c = op[offset];
                if c.eq_ignore_ascii_case(&b'r') && !read {
                    read = true;
                } else if c.eq_ignore_ascii_case(&b'w') && !write {
                    write = true;
                } else if c == b'~' && (read || write) {
                    offset += 1;
                    break;
                } else {
                    return Err(Fault::Syntax);
                }
                offset += 1;
            }
            // A bare "%" grants nothing; Redis refuses it too.
            if !read && !write {
                return Err(Fault::Syntax);
            }
        }
        let pattern = &op[offset..];
        if pattern.iter().any(|&c| is_space_or_nul(c)) {
            return Err(Fault::Syntax);
        }
        match self.keys.iter_mut().find(|k| k.pattern == pattern) {
            Some(k) => {
                k.read |= read;
                k.write |= write;
            }
            None => self.keys.push(KeyPattern {
                pattern: pattern.to_vec(),
                read,
                write,
            }),
        }
        self.all_keys = false;
        Ok(())
    }

    fn add_channel(&mut self, pattern: &[u8]) -> Result<(), Fault> {
        if self.all_channels {
            return Err(Fault::ChannelAfterAll);
        }
        if pattern.iter().any(|&c| is_space_or_nul(c)) {
            return Err(Fault::Syntax);
        }
        if !self.channels.iter().any(|c| c == pattern) {
            self.channels.push(pattern.to_vec());
        }
        Ok(())
    }

    fn category(&mut self, name: &[u8], allow: bool) -> Result<(), Fault> {
        let name = std::str::from_utf8(name).map_err(|_| Fault::Unknown)?;
        let cat = categories::category(name).ok_or(Fault::Unknown)?;
        self.record(&format!("@{}", name.to_ascii_lowercase()), allow);
        // As Redis: a container in the category brings all its subcommands along, then
        // each subcommand in the category on its own.
        for c in categories::commands() {
            if c.categories & cat != 0 {
                self.change(Target::Command(c), allow);
            }
            for s in &c.subcommands {
                if s.categories & cat != 0 {
                    self.change(Target::Sub(s), allow);
                }
            }
        }
        Ok(())
    }

    /// `+cmd`, `+container|sub`, or the first-arg form `+cmd|arg`.
    fn allow_command(&mut self, rest: &[u8]) -> Result<(), Fault> {
        let Some(bar) = rest.iter().rposition(|&c| c == b'|') else {
            let target = lookup_rule(rest).ok_or(Fault::Unknown)?;
            self.change(target, true);
            self.record(target.full_name(), true);
            return Ok(());
        };
        let (base, arg) = (&rest[..bar], &rest[bar + 1..]);
        let cmd = match lookup_rule(base).ok_or(Fault::Unknown)? {
            Target::Command(c) => c,
            Target::Sub(_) => return Err(Fault::SubcommandFirstArg),
        };
        if arg.is_empty() {
            return Err(Fault::Syntax);
        }
        if cmd.is_container() {
            let target = lookup_rule(rest).ok_or(Fault::Unknown)?;
            self.change(target, true);
        } else {
            // Redis 7.2 stores such an argument, then cannot parse its own ACL LIST line
            // back and aborts on the next ACL LIST; refuse it instead.
            if arg
                .iter()
                .any(|&c| is_space_or_nul(c) || c == b'"' || c == b'\'')
            {
                return Err(Fault::Syntax);
            }
            match self.first_args.iter_mut().find(|(id, _)| *id == cmd.id) {
                Some((_, args)) => {
                    if !args.iter().any(|a| a.eq_ignore_ascii_case(arg)) {
                        args.push(arg.to_vec());
                    }
                }
                None => self.first_args.push((cmd.id, vec![arg.to_vec()])),
            }
        }
        self.record(&String::from_utf8_lossy(rest).to_ascii_lowercase(), true);
        Ok(())
    }

    /// `-cmd` or `-container|sub` (there is no negative first-arg form).
    fn deny_command(&mut self, rest: &[u8]) -> Result<(), Fault> {
        let target = lookup_rule(rest).ok_or(Fault::Unknown)?;
        self.change(target, false);
        self.record(target.full_name(), false);
        Ok(())
    }

    fn commands_text(&self) -> String {
        let mut s = String::from(if self.future { "+@all" } else { "-@all" });
        for r in &self.rules {
            s.push(' ');
            s.push_str(r);
        }
        s
    }

    fn keys_text(&self) -> Vec<u8> {
        if self.all_keys {
            return b"~*".to_vec();
        }
        let mut out = Vec::new();
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            k.write_to(&mut out);
        }
        out
    }

    fn channels_text(&self) -> Vec<u8> {
        if self.all_channels {
            return b"&*".to_vec();
        }
        let mut out = Vec::new();
        for (i, c) in self.channels.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.push(b'&');
            out.extend_from_slice(c);
        }
        out
    }

    /// As ACL LIST prints a selector: keys, channels, command rules.
    fn describe(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.all_keys {
            out.extend_from_slice(b"~* ");
        } else {
            for k in &self.keys {
                k.write_to(&mut out);
                out.push(b' ');
            }
        }
        if self.all_channels {
            out.extend_from_slice(b"&* ");
        } else {
            out.extend_from_slice(b"resetchannels ");
            for c in &self.channels {
                out.push(b'&');
                out.extend_from_slice(c);
                out.push(b' ');
            }
        }
        out.extend_from_slice(self.commands_text().as_bytes());
        out
    }

    fn getuser_fields(&self) -> [(Reply, Reply); 3] {
        [
            (Reply::bulk("commands"), Reply::bulk(self.commands_text())),
            (Reply::bulk("keys"), Reply::bulk(self.keys_text())),
            (Reply::bulk("channels"), Reply::bulk(self.channels_text())),
        ]
    }

    /// Every command, every key for reading and writing, every channel.
    fn unrestricted(&self) -> bool {
        let keys = self.all_keys
            || self
                .keys
                .iter()
                .any(|k| k.read && k.write && k.pattern == b"*");
        keys && self.all_channels && self.all_commands()
    }

    fn check(&self, call: &Call<'_>, cmd: Resolved) -> Result<(), Denied> {
        if !cmd.no_auth {
            let allowed = match cmd.id {
                Some(id) => self.bit(id) || self.first_arg_allowed(id, call.args),
                None => self.future,
            };
            if !allowed {
                return Err(Denied::Command);
            }
        }
        if !self.all_keys {
            for &(pos, access) in call.keys {
                let (read, write) = match access {
                    KeyAccess::Read => (true, false),
                    KeyAccess::Write => (false, true),
                    KeyAccess::ReadWrite => (true, true),
                    KeyAccess::Exists => (false, false),
                };
                let Some(key) = call.args.get(pos) else {
                    return Err(Denied::Key(pos));
                };
                let ok = self.keys.iter().any(|k| {
                    (k.read || !read) && (k.write || !write) && glob_match(&k.pattern, key)
                });
                if !ok {
                    return Err(Denied::Key(pos));
                }
            }
        }
        if !self.all_channels {
            for &(pos, is_pattern) in call.channels {
                let Some(channel) = call.args.get(pos) else {
                    return Err(Denied::Channel(pos));
                };
                // A PSUBSCRIBE pattern must be one of the user's patterns as written: a
                // pattern matching another pattern says nothing about the channels.
                let ok = self.channels.iter().any(|c| {
                    if is_pattern {
                        c[..] == channel[..]
                    } else {
                        glob_match(c, channel)
                    }
                });
                if !ok {
                    return Err(Denied::Channel(pos));
                }
            }
        }
        Ok(())
    }

    fn first_arg_allowed(&self, id: usize, args: &[Bytes]) -> bool {
        let Some(arg) = args.get(1) else {
            return false;
        };
        self.first_args
            .iter()
            .find(|(i, _)| *i == id)
            .is_some_and(|(_, allowed)| allowed.iter().any(|a| a.eq_ignore_ascii_case(arg)))
    }
}

/// The command a call runs, as the check needs it.
#[derive(Clone, Copy)]
struct Resolved {
    /// Its (or its subcommand's) id; None if ACL does not know the command.
    id: Option<usize>,
    no_auth: bool,
}

fn resolve(call: &Call<'_>) -> Resolved {
    let Some(cmd) = categories::lookup(call.name) else {
        return Resolved {
            id: None,
            no_auth: false,
        };
    };
    let sub = if cmd.is_container() {
        call.args.get(1).and_then(|a| cmd.subcommand(a))
    } else {
        None
    };
    Resolved {
        id: Some(sub.map_or(cmd.id, |s| s.id)),
        no_auth: cmd.no_auth,
    }
}

/// Joins a selector given over several arguments (`(~key*`, `+get)`) into one, as
/// Redis's ACLMergeSelectorArguments does.
pub(super) fn merge_selectors(rules: &[&[u8]]) -> Result<Vec<Vec<u8>>, RuleError> {
    let mut out = Vec::with_capacity(rules.len());
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (i, op) in rules.iter().enumerate() {
        if let Some((_, selector)) = open.as_mut() {
            selector.push(b' ');
            selector.extend_from_slice(op);
            if op.last() == Some(&b')') {
                if let Some((_, s)) = open.take() {
                    out.push(s);
                }
            }
            continue;
        }
        if op.first() == Some(&b'(') && op.last() != Some(&b')') {
            open = Some((i, op.to_vec()));
            continue;
        }
        out.push(op.to_vec());
    }
    match open {
        Some((i, _)) => Err(RuleError {
            text: format!(
                "ERR Unmatched parenthesis in acl selector starting at '{}'.",
                String::from_utf8_lossy(rules[i])
            ),
            in_file: "Unmatched parenthesis in selector definition".into(),
        }),
        None => Ok(out),
    }
}

/// One ACL user.
#[derive(Debug, Clone)]
pub struct User {
    name: String,
    enabled: bool,
    nopass: bool,
    skip_sanitize_payload: bool,
    passwords: Vec<PasswordHash>,
    root: Selector,
    selectors: Vec<Selector>,
    /// Cached [`User::unrestricted`]: set_rules is rare, the question is asked per call.
    unrestricted: bool,
}

impl User {
    /// Redis's fresh user: off, no passwords, -@all, no keys, resetchannels.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            skip_sanitize_payload: false,
            passwords: Vec::new(),
            root: Selector::new(),
            selectors: Vec::new(),
            unrestricted: false,
        }
    }

    /// "user default on nopass sanitize-payload ~* &* +@all".
    pub fn default_user() -> User {
        let mut u = User::new("default");
        u.enabled = true;
        u.nopass = true;
        u.root.set_all_commands(true);
        u.root.all_keys = true;
        u.root.all_channels = true;
        u.unrestricted = u.compute_unrestricted();
        u
    }

    /// The user's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True if the user is `on` (may authenticate).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// True if the user accepts any password (`nopass`).
    pub fn nopass(&self) -> bool {
        self.nopass
    }

    /// True if RESTORE payloads of this user skip sanitization (`skip-sanitize-payload`).
    pub fn skips_payload_sanitization(&self) -> bool {
        self.skip_sanitize_payload
    }

    /// Applies ACL SETUSER's rules in order; all or nothing: on error self is unchanged.
    pub fn set_rules(&mut self, rules: &[&[u8]]) -> Result<(), RuleError> {
        let merged = merge_selectors(rules)?;
        let mut next = self.clone();
        for op in &merged {
            next.apply(op).map_err(|f| RuleError::modifier(op, f))?;
        }
        next.unrestricted = next.compute_unrestricted();
        *self = next;
        Ok(())
    }

    fn apply(&mut self, op: &[u8]) -> Result<(), Fault> {
        let is = |word: &str| op.eq_ignore_ascii_case(word.as_bytes());
        if op.is_empty() {
            return Ok(());
        }
        if is("on") {
            self.enabled = true;
        } else if is("off") {
            self.enabled = false;
        } else if is("skip-sanitize-payload") {
            self.skip_sanitize_payload = true;
        } else if is("sanitize-payload") {
            self.skip_sanitize_payload = false;
        } else if is("nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if is("resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if let [b'>' | b'#', rest @ ..] = op {
            let hash = if op[0] == b'>' {
                hash_password(rest)
            } else {
                parse_hash(rest).ok_or(Fault::BadHash)?
            };
            if !self.passwords.contains(&hash) {
                self.passwords.push(hash);
            }
            self.nopass = false;
        } else if let [b'<' | b'!', rest @ ..] = op {
            let hash = if op[0] == b'<' {
                hash_password(rest)
            } else {
                parse_hash(rest).ok_or(Fault::BadHash)?
            };
            let at = self.passwords.iter().position(|p| *p == hash);
            self.passwords.remove(at.ok_or(Fault::NoSuchPassword)?);
        } else if let [b'(', body @ .., b')'] = op {
            let mut selector = Selector::new();
            // An unparsable body gives an empty selector, as in Redis.
            for rule in keel_engine::split_args::split_args(body).unwrap_or_default() {
                selector.apply(&rule)?;
            }
            self.selectors.push(selector);
        } else if is("clearselectors") {
            self.selectors.clear();
        } else if is("reset") {
            self.nopass = false;
            self.passwords.clear();
            self.root.all_keys = false;
            self.root.keys.clear();
            self.root.all_channels = false;
            self.root.channels.clear();
            self.enabled = false;
            self.skip_sanitize_payload = false;
            self.selectors.clear();
            self.root.set_all_commands(false);
        } else {
            self.root.apply(op)?;
        }
        Ok(())
    }

    /// True if `pass` is one of the user's passwords, or the user is nopass.
    pub fn check_password(&self, pass: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let hash = hash_password(pass);
        self.passwords.iter().any(|p| same_hash(p, &hash))
    }

    /// CONFIG SET requirepass on the default user: Some(p) => resetpass + >p ; None =>
    /// nopass.
    pub fn set_password_only(&mut self, pass: Option<&[u8]>) {
        self.passwords.clear();
        match pass {
            Some(p) => {
                self.nopass = false;
                self.passwords.push(hash_password(p));
            }
            None => self.nopass = true,
        }
    }

    /// The ACL LIST line (`user <name> <rules>`), byte-identical to Redis 7.2's for the
    /// same rules (bytes that are not UTF-8 in patterns print as U+FFFD).
    pub fn describe(&self) -> String {
        let mut out = format!("user {} ", self.name).into_bytes();
        out.extend_from_slice(if self.enabled { b"on " } else { b"off " });
        if self.nopass {
            out.extend_from_slice(b"nopass ");
        }
        out.extend_from_slice(if self.skip_sanitize_payload {
            b"skip-sanitize-payload "
        } else {
            b"sanitize-payload "
        });
        for p in &self.passwords {
            out.push(b'#');
            out.extend_from_slice(hex(p).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&self.permissions());
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// What the user may do, as rules (`~app:* resetchannels -@all +get (~x +set)`):
    /// the ACL LIST line without the name, flags and passwords. A gated log entry
    /// carries it (see `gate.rs`).
    pub fn permissions(&self) -> Vec<u8> {
        let mut out = self.root.describe();
        for s in &self.selectors {
            out.extend_from_slice(b" (");
            out.extend_from_slice(&s.describe());
            out.push(b')');
        }
        out
    }

    /// A user named `name` with the [`User::permissions`] `rules` (split at white
    /// space, as an ACL file's line).
    pub fn from_permissions(name: &str, rules: &[u8]) -> Result<User, RuleError> {
        let words: Vec<&[u8]> = rules
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        let mut u = User::new(name);
        u.set_rules(&words)?;
        Ok(u)
    }

    /// ACL GETUSER's map (flags, passwords, commands, keys, channels, selectors) as
    /// Redis 7.2 answers it.
    pub fn getuser_reply(&self) -> Reply {
        let mut flags = vec![Reply::bulk(if self.enabled { "on" } else { "off" })];
        if self.nopass {
            flags.push(Reply::bulk("nopass"));
        }
        flags.push(Reply::bulk(if self.skip_sanitize_payload {
            "skip-sanitize-payload"
        } else {
            "sanitize-payload"
        }));
        let mut map = vec![
            (Reply::bulk("flags"), Reply::Set(flags)),
            (
                Reply::bulk("passwords"),
                Reply::Array(self.passwords.iter().map(|p| Reply::bulk(hex(p))).collect()),
            ),
        ];
        map.extend(self.root.getuser_fields());
        map.push((
            Reply::bulk("selectors"),
            Reply::Array(
                self.selectors
                    .iter()
                    .map(|s| Reply::Map(s.getuser_fields().into()))
                    .collect(),
            ),
        ));
        Reply::Map(map)
    }

    /// Every command, every key (RW), every channel: callers skip checks.
    pub fn unrestricted(&self) -> bool {
        self.unrestricted
    }

    fn compute_unrestricted(&self) -> bool {
        std::iter::once(&self.root)
            .chain(&self.selectors)
            .any(Selector::unrestricted)
    }

    /// Checks one call: allowed if the root permissions or one selector allow all of it;
    /// otherwise the refusal Redis would report. Does not allocate.
    pub fn check(&self, call: &Call<'_>) -> Result<(), Denied> {
        let cmd = resolve(call);
        let mut worst: Option<Denied> = None;
        for s in std::iter::once(&self.root).chain(&self.selectors) {
            match s.check(call, cmd) {
                Ok(()) => return Ok(()),
                Err(d) => {
                    if worst.is_none_or(|w| d.rank() > w.rank()) {
                        worst = Some(d);
                    }
                }
            }
        }
        Err(worst.unwrap_or(Denied::Command))
    }

    /// Whether a selector that allows `call` also reads every key (`~*`, `%R~*`,
    /// allkeys): SORT's BY and GET options read keys that patterns name, which a
    /// narrower grant cannot vouch for (Redis's rule).
    pub fn reads_every_key_for(&self, call: &Call<'_>) -> bool {
        let cmd = resolve(call);
        std::iter::once(&self.root).chain(&self.selectors).any(|s| {
            s.check(call, cmd).is_ok()
                && (s.all_keys || s.keys.iter().any(|k| k.read && k.pattern == b"*"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &[&[u8]]) -> User {
        let mut u = User::new("probe");
        if let Err(e) = u.set_rules(rules) {
            panic!("{rules:?}: {e}");
        }
        u
    }

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    /// Checks a call whose keys and channels the test names by position.
    fn check(
        u: &User,
        words: &[&str],
        keys: &[(usize, KeyAccess)],
        channels: &[(usize, bool)],
    ) -> Result<(), Denied> {
        let name = words[0].to_ascii_lowercase();
        let args = args(words);
        u.check(&Call {
            name: &name,
            args: &args,
            keys,
            channels,
        })
    }

    fn cmd(u: &User, words: &[&str]) -> Result<(), Denied> {
        check(u, words, &[], &[])
    }

    /// Each line was produced by redis-server 7.0.15 (`ACL SETUSER probe <rules>`, then
    /// ACL LIST) and differs from it only by ` sanitize-payload`, which 7.2 gives every
    /// new user (ACLCreateUser) and so prints. Sequences where 7.0 and 7.2 print command
    /// rules differently (7.0 rebuilt them from the bitmap) are in the next test.
    #[test]
    fn describe_matches_redis_for_verified_rule_sequences() {
        let cases: &[(&[&[u8]], &str)] = &[
            (&[], "user probe off sanitize-payload resetchannels -@all"),
            (&[b"on", b">p1", b">p2", b"<p1"], "user probe on sanitize-payload #3946ca64ff78d93ca61090a437cbb6b3d2ca0d488f5f9ccf3059608368b27693 resetchannels -@all"),
            (&[b"-@all", b"+get", b"+set"], "user probe off sanitize-payload resetchannels -@all +get +set"),
            (&[b"+@all", b"-get"], "user probe off sanitize-payload resetchannels +@all -get"),
            (&[b"%R~x", b"%W~x", b"%W~y", b"~z"], "user probe off sanitize-payload ~x %W~y ~z resetchannels -@all"),
            (&[b"%RW"], "user probe off sanitize-payload ~ resetchannels -@all"),
            (&[b"%R"], "user probe off sanitize-payload %R~ resetchannels -@all"),
            (&[b"(%R~a +@read &ch)", b"(~b)"], "user probe off sanitize-payload resetchannels -@all (%R~a resetchannels &ch -@all +@read) (~b resetchannels -@all)"),
            (&[b"(~x", b"+get)", b"(&c)"], "user probe off sanitize-payload resetchannels -@all (~x resetchannels -@all +get) (resetchannels &c -@all)"),
            (&[b"()"], "user probe off sanitize-payload resetchannels -@all (resetchannels -@all)"),
            (&[br#"(+get "+set)"#], "user probe off sanitize-payload resetchannels -@all (resetchannels -@all)"),
            (&[br#"("~a" '&b' +get)"#], "user probe off sanitize-payload resetchannels -@all (~a resetchannels &b -@all +get)"),
            (&[b"~a", b"resetkeys", b"~b"], "user probe off sanitize-payload ~b resetchannels -@all"),
            (&[b"&a", b"allchannels"], "user probe off sanitize-payload &* -@all"),
            (&[b"nopass", b">x"], "user probe off sanitize-payload #2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881 resetchannels -@all"),
            (&[b">x", b"nopass"], "user probe off nopass sanitize-payload resetchannels -@all"),
            (&[b"reset"], "user probe off sanitize-payload resetchannels -@all"),
            (&[b"on", b"nopass", b"~*", b"&*", b"+@all", b"reset"], "user probe off sanitize-payload resetchannels -@all"),
            (&[b"ON", b"AllKeys", b"+GET", b"-@ALL"], "user probe on sanitize-payload ~* resetchannels -@all"),
            (&[b"skip-sanitize-payload"], "user probe off skip-sanitize-payload resetchannels -@all"),
            (&[b"%W~a", b"%R~a"], "user probe off sanitize-payload ~a resetchannels -@all"),
            (&[b"%rw~a"], "user probe off sanitize-payload ~a resetchannels -@all"),
            (&[b"%R~*"], "user probe off sanitize-payload %R~* resetchannels -@all"),
            (&[b"%RW~*", b"~foo"], "user probe off sanitize-payload ~* ~foo resetchannels -@all"),
            (&[b"~*", b"~*"], "user probe off sanitize-payload ~* resetchannels -@all"),
            (&[b"-@all", b"+@all", b"-config|get"], "user probe off sanitize-payload resetchannels +@all -config|get"),
            (&[b"+client|id", b"+client|ID"], "user probe off sanitize-payload resetchannels -@all +client|id"),
            (&[b"+select|0", b"+select"], "user probe off sanitize-payload resetchannels -@all +select"),
            (&[b"+config|get"], "user probe off sanitize-payload resetchannels -@all +config|get"),
            (&[b"+@all", b"-@hash"], "user probe off sanitize-payload resetchannels +@all -@hash"),
            (&[b"-@all", b"+@hash"], "user probe off sanitize-payload resetchannels -@all +@hash"),
            (&[b"-@all", b"+@hash", b"-hset"], "user probe off sanitize-payload resetchannels -@all +@hash -hset"),
            (&[b"+@all", b"-client|kill"], "user probe off sanitize-payload resetchannels +@all -client|kill"),
            (&[b"&foo:*", b"&bar"], "user probe off sanitize-payload resetchannels &foo:* &bar -@all"),
            (&[b"on", b"~foo:*", b"%R~bar:*", b"&chan", b"+@read", b"-keys"], "user probe on sanitize-payload ~foo:* %R~bar:* resetchannels &chan -@all +@read -keys"),
            (&[b"+@all", b"-@all", b"+ping"], "user probe off sanitize-payload resetchannels -@all +ping"),
            (&[b"on", b"#5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8", b">hello"], "user probe on sanitize-payload #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 #2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 resetchannels -@all"),
            (&[b"allcommands", b"allkeys", b"allchannels", b"on", b"nopass"], "user probe on nopass sanitize-payload ~* &* +@all"),
            (&[b"nocommands", b"+get"], "user probe off sanitize-payload resetchannels -@all +get"),
            (&[b"+@all", b"-config", b"+config|get"], "user probe off sanitize-payload resetchannels +@all -config +config|get"),
            (&[b"-@all", b"+config", b"-config|set"], "user probe off sanitize-payload resetchannels -@all +config -config|set"),
            (&[b"(~x", b"&y", b"+@all)", b"clearselectors", b"(+set)"], "user probe off sanitize-payload resetchannels -@all (resetchannels -@all +set)"),
            (&[b"+@all", b"-@dangerous"], "user probe off sanitize-payload resetchannels +@all -@dangerous"),
            (&[b"-@all", b"+@admin"], "user probe off sanitize-payload resetchannels -@all +@admin"),
        ];
        for (rules, want) in cases {
            assert_eq!(user(rules).describe(), *want, "{rules:?}");
        }
        assert_eq!(
            User::default_user().describe(),
            "user default on nopass sanitize-payload ~* &* +@all"
        );
    }

    /// Redis 7.2 keeps command rules in the order given, dropping an earlier rule on the
    /// same command or category (its tests/unit/acl.tcl "ACL GETUSER provides correct
    /// results", applied one after the other to one user as there).
    #[test]
    fn command_rules_compact_as_redis_7_2() {
        let steps: &[(&[&[u8]], &str)] = &[
            (
                &[b"+@all", b"-@hash", b"-@slow", b"+hget"],
                "+@all -@hash -@slow +hget",
            ),
            (&[b"-@hash"], "+@all -@slow +hget -@hash"),
            (&[b"+@hash"], "+@all -@slow +hget +@hash"),
            (&[b"-@all"], "-@all"),
            (&[b"-@string", b"-@slow", b"+@all"], "+@all"),
            (&[b"-@all", b"+@HASH", b"+@hash", b"+@HaSh"], "-@all +@hash"),
            (&[b"-@all", b"+HGET", b"+hget", b"+hGeT"], "-@all +hget"),
            (
                &[
                    b"-@all", b"+@hash", b"+@slow", b"+@set", b"+@set", b"+@slow", b"+@hash",
                ],
                "-@all +@set +@slow +@hash",
            ),
            (
                &[b"-@all", b"+hget", b"-hset", b"+hset", b"-hget"],
                "-@all +hset -hget",
            ),
            (
                &[
                    b"-@all",
                    b"+client|list",
                    b"+client|list",
                    b"+config|get",
                    b"+config",
                    b"+xinfo|stream",
                    b"-xinfo",
                ],
                // acl.tcl uses ACL here; it may not be in keel's table yet.
                "-@all +client|list +config -xinfo",
            ),
            (
                &[
                    b"-@all",
                    b"+select|0",
                    b"+select|0",
                    b"+debug|segfault",
                    b"+debug",
                ],
                "-@all +select|0 +debug",
            ),
            (&[b"-@all", b"-@dangerous"], "-@all -@dangerous"),
            (
                &[
                    b"-@all",
                    b"+config",
                    b"+config|get",
                    b"-config|set",
                    b"+config",
                ],
                "-@all +config",
            ),
            // acl.tcl: "ACLs set can include subcommands, if already full command exists".
            (&[b"-@all", b"+memory|doctor"], "-@all +memory|doctor"),
            (&[b"+memory"], "-@all +memory"),
            (&[b"+@all", b"+client|id"], "+@all +client|id"),
            (&[b"+@all", b"-memory|doctor"], "+@all -memory|doctor"),
            (&[b"-memory"], "+@all -memory"),
            // Where 7.0 printed other rules for the same bitmap.
            (&[b"+@all", b"-get", b"+get"], "+@all +get"),
            (
                &[b"-@all", b"+select|0", b"+select|1", b"-select"],
                "-@all -select",
            ),
            (
                &[b"-@all", b"+config|get", b"+config|set", b"-config"],
                "-@all -config",
            ),
            (
                &[b"-@all", b"+select|A", b"+DEBUG|Object"],
                "-@all +select|a +debug|object",
            ),
            (
                &[b"+@all", b"-config|set", b"-config|get"],
                "+@all -config|set -config|get",
            ),
            (
                &[b"+@all", b"-@dangerous", b"+flushdb"],
                "+@all -@dangerous +flushdb",
            ),
        ];
        let mut u = User::new("adv-test");
        for (rules, want) in steps {
            if let Err(e) = u.set_rules(rules) {
                panic!("{rules:?}: {e}");
            }
            assert_eq!(u.root.commands_text(), *want, "{rules:?}");
            let line = u.describe();
            assert!(line.ends_with(want), "{line}");
        }
        // Each single category, from both ends (acl.tcl "provides reasonable results").
        for cat in categories::NAMES {
            let minus = format!("-@{cat}");
            let plus = format!("+@{cat}");
            let u = user(&[b"reset", b"+@all", minus.as_bytes()]);
            assert_eq!(u.root.commands_text(), format!("+@all -@{cat}"));
            let u = user(&[b"reset", b"-@all", plus.as_bytes()]);
            assert_eq!(u.root.commands_text(), format!("-@all +@{cat}"));
        }
    }

    /// Texts from redis-server 7.0.15 for the same rules (its acl.c texts equal 7.2's).
    #[test]
    fn rule_errors_have_redis_texts() {
        // Single-line literals, copied from redis-server's replies.
        const KEYS_AFTER_ALL: &str = "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns";
        const CHANNELS_AFTER_ALL: &str = "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels";
        const BAD_HASH: &str = "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters";
        const NO_PASS: &str = "The password you are trying to remove from the user does not exist";
        const UNKNOWN: &str = "Unknown command or category name in ACL";
        const CHILD: &str = "Allowing first-arg of a subcommand is not supported";
        let zeros = [b'0'; 64];
        let mut remove_zeros = vec![b'!'];
        remove_zeros.extend_from_slice(&zeros);
        type Case<'a> = (&'a [&'a [u8]], &'a [u8], &'a str);
        let cases: &[Case<'_>] = &[
            (&[b"~*", b"~foo"], b"~foo", KEYS_AFTER_ALL),
            (&[b"allkeys", b"%R~foo"], b"%R~foo", KEYS_AFTER_ALL),
            (&[b"~*", b"%R~x"], b"%R~x", KEYS_AFTER_ALL),
            (&[b"&*", b"&foo"], b"&foo", CHANNELS_AFTER_ALL),
            (&[b"+config|"], b"+config|", "Syntax error"),
            (&[b"+select|"], b"+select|", "Syntax error"),
            (&[b"+config|get|x"], b"+config|get|x", CHILD),
            (&[b"+get|a|b"], b"+get|a|b", UNKNOWN),
            (&[b"-get|a|b"], b"-get|a|b", UNKNOWN),
            (&[b"-select|0"], b"-select|0", UNKNOWN),
            (&[b"+config|asdf"], b"+config|asdf", UNKNOWN),
            (&[b"-config|asdf"], b"-config|asdf", UNKNOWN),
            (&[b"+nosuchcommand"], b"+nosuchcommand", UNKNOWN),
            (&[b"-nosuchcommand"], b"-nosuchcommand", UNKNOWN),
            (&[b"+@foo"], b"+@foo", UNKNOWN),
            (&[b"-@foo"], b"-@foo", UNKNOWN),
            (&[b"+"], b"+", UNKNOWN),
            (&[b"+@"], b"+@", UNKNOWN),
            (&[b"foo"], b"foo", "Syntax error"),
            (&[b"#abc"], b"#abc", BAD_HASH),
            (&[&remove_zeros[..]], &remove_zeros[..], NO_PASS),
            (&[b"<nope"], b"<nope", NO_PASS),
            (&[b"%X~a"], b"%X~a", "Syntax error"),
            (&[b"%~a"], b"%~a", "Syntax error"),
            (&[b"%RR~a"], b"%RR~a", "Syntax error"),
            (&[b"%"], b"%", "Syntax error"),
            (&[b"~a b"], b"~a b", "Syntax error"),
            (&[b"&a\tb"], b"&a\tb", "Syntax error"),
            (&[b"(~x +get)", b"(on)"], b"(on)", "Syntax error"),
            (&[br#"("~a b")"#], br#"("~a b")"#, "Syntax error"),
            (&[b"(~x", b"+nosuch)"], b"(~x +nosuch)", UNKNOWN),
        ];
        for (rules, modifier, reason) in cases {
            let mut u = User::new("probe");
            let want = format!(
                "ERR Error in ACL SETUSER modifier '{}': {reason}",
                String::from_utf8_lossy(modifier)
            );
            match u.set_rules(rules) {
                Ok(()) => panic!("{rules:?} accepted"),
                Err(e) => assert_eq!(e.to_string(), want, "{rules:?}"),
            }
        }
        for (rules, start) in [
            (&[&b"(~x"[..], b"+get"][..], "(~x"),
            (&[b"("], "("),
            (&[b"on", b"(~a"], "(~a"),
        ] {
            let err = User::new("probe").set_rules(rules).err();
            assert_eq!(
                err.map(|e| e.message().to_string()),
                Some(format!(
                    "ERR Unmatched parenthesis in acl selector starting at '{start}'."
                )),
                "{rules:?}"
            );
        }
    }

    #[test]
    fn a_first_arg_redis_could_not_print_back_is_refused() {
        for bad in [&b"+select|a b"[..], b"+select|\"x", b"+select|'x"] {
            assert!(User::new("u").set_rules(&[bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn failed_rules_leave_the_user_unchanged() {
        let mut u = user(&[b"on", b">old", b"~a", b"+get"]);
        let before = u.describe();
        assert!(u
            .set_rules(&[b">new", b"off", b"~b", b"(+set)", b"+nosuch"])
            .is_err());
        assert_eq!(u.describe(), before);
        assert!(u.check_password(b"old"));
        assert!(!u.check_password(b"new"));
        assert!(u.enabled());
        assert!(u.set_rules(&[b">new", b"(+set"]).is_err());
        assert_eq!(u.describe(), before);
    }

    #[test]
    fn fresh_and_default_users() {
        let u = User::new("alice");
        assert_eq!(u.name(), "alice");
        assert!(!u.enabled());
        assert!(!u.check_password(b""));
        assert!(!u.unrestricted());
        assert_eq!(cmd(&u, &["GET", "k"]), Err(Denied::Command));
        let d = User::default_user();
        assert_eq!(d.name(), "default");
        assert!(d.enabled());
        assert!(d.check_password(b"anything"));
        assert!(d.unrestricted());
        assert!(!d.skips_payload_sanitization());
        assert_eq!(
            check(&d, &["SET", "k", "v"], &[(1, KeyAccess::Write)], &[]),
            Ok(())
        );
        assert_eq!(
            check(&d, &["PUBLISH", "c", "m"], &[], &[(1, false)]),
            Ok(())
        );
        // "reset" gives back exactly a fresh user.
        let mut r = User::default_user();
        assert!(r
            .set_rules(&[b"skip-sanitize-payload", b"(+get)", b"reset"])
            .is_ok());
        let mut fresh = User::new("default");
        assert!(fresh.set_rules(&[]).is_ok());
        assert_eq!(r.describe(), fresh.describe());
        assert!(!r.unrestricted());
    }

    #[test]
    fn passwords() {
        let mut u = user(&[b"on", b">p1", b">p2", b">p1"]);
        assert!(u.check_password(b"p1"));
        assert!(u.check_password(b"p2"));
        assert!(!u.check_password(b"p3"));
        assert!(!u.check_password(b""));
        assert_eq!(u.passwords.len(), 2, "the same password is kept once");
        // SHA-256 of "hello", as Redis prints it.
        let hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert!(u.set_rules(&[format!("#{hello}").as_bytes()]).is_ok());
        assert!(u.check_password(b"hello"));
        assert!(u.set_rules(&[b"<hello"]).is_ok());
        assert!(!u.check_password(b"hello"));
        assert!(u.set_rules(&[format!("#{hello}").as_bytes()]).is_ok());
        assert!(u.set_rules(&[format!("!{hello}").as_bytes()]).is_ok());
        assert!(!u.check_password(b"hello"));
        let upper = format!("#{}", hello.to_ascii_uppercase());
        assert!(u.set_rules(&[upper.as_bytes()]).is_err());
        assert!(u.set_rules(&[b"nopass"]).is_ok());
        assert!(u.check_password(b"whatever"));
        assert!(u.passwords.is_empty());
        assert!(u.set_rules(&[b">x", b"resetpass"]).is_ok());
        assert!(!u.check_password(b"x"));
        assert!(!u.check_password(b""));

        let mut d = User::default_user();
        d.set_password_only(Some(b"secret"));
        assert!(d.check_password(b"secret"));
        assert!(!d.check_password(b"other"));
        assert_eq!(
            d.describe(),
            "user default on sanitize-payload \
             #2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b ~* &* +@all"
        );
        d.set_password_only(None);
        assert!(d.check_password(b"other"));
        assert_eq!(
            d.describe(),
            "user default on nopass sanitize-payload ~* &* +@all"
        );
        assert!(d.unrestricted());
    }

    #[test]
    fn getuser_has_redis_shape() {
        let b = |s: &str| Reply::bulk(s);
        let u = user(&[
            b"on",
            b">p",
            b"%R~a",
            b"~b",
            b"&c",
            b"+get",
            b"(~x +set)",
            b"(&y allkeys +@all -get)",
        ]);
        // redis-server 7.0.15's ACL GETUSER for these rules, plus 7.2's sanitize-payload.
        let want = Reply::Map(vec![
            (b("flags"), Reply::Set(vec![b("on"), b("sanitize-payload")])),
            (
                b("passwords"),
                Reply::Array(vec![b(
                    "148de9c5a7a44d19e56cd9ae1a554bf67847afb0c58f6e12fa29ac7ddfca9940",
                )]),
            ),
            (b("commands"), b("-@all +get")),
            (b("keys"), b("%R~a ~b")),
            (b("channels"), b("&c")),
            (
                b("selectors"),
                Reply::Array(vec![
                    Reply::Map(vec![
                        (b("commands"), b("-@all +set")),
                        (b("keys"), b("~x")),
                        (b("channels"), b("")),
                    ]),
                    Reply::Map(vec![
                        (b("commands"), b("+@all -get")),
                        (b("keys"), b("~*")),
                        (b("channels"), b("&y")),
                    ]),
                ]),
            ),
        ]);
        assert_eq!(u.getuser_reply(), want);
        let d = User::default_user().getuser_reply();
        let want = Reply::Map(vec![
            (
                b("flags"),
                Reply::Set(vec![b("on"), b("nopass"), b("sanitize-payload")]),
            ),
            (b("passwords"), Reply::Array(vec![])),
            (b("commands"), b("+@all")),
            (b("keys"), b("~*")),
            (b("channels"), b("&*")),
            (b("selectors"), Reply::Array(vec![])),
        ]);
        assert_eq!(d, want);
        let Reply::Map(fields) = user(&[b"skip-sanitize-payload"]).getuser_reply() else {
            panic!("not a map");
        };
        assert_eq!(
            fields[0].1,
            Reply::Set(vec![b("off"), b("skip-sanitize-payload")])
        );
    }

    #[test]
    fn commands_and_categories() {
        let u = user(&[b"+@all", b"-get"]);
        assert_eq!(cmd(&u, &["GET", "k"]), Err(Denied::Command));
        assert_eq!(cmd(&u, &["SET", "k", "v"]), Ok(()));
        let u = user(&[b"-@all", b"+get", b"+set"]);
        assert_eq!(cmd(&u, &["GET", "k"]), Ok(()));
        assert_eq!(cmd(&u, &["SET", "k", "v"]), Ok(()));
        assert_eq!(cmd(&u, &["DEL", "k"]), Err(Denied::Command));
        let u = user(&[b"+@read"]);
        assert_eq!(cmd(&u, &["GET", "k"]), Ok(()));
        assert_eq!(cmd(&u, &["HGETALL", "k"]), Ok(()));
        assert_eq!(cmd(&u, &["SET", "k", "v"]), Err(Denied::Command));
        let u = user(&[b"+@all", b"-@string"]);
        assert_eq!(cmd(&u, &["SADD", "s", "a"]), Ok(()));
        assert_eq!(cmd(&u, &["SET", "k", "v"]), Err(Denied::Command));
        let u = user(&[b"-@all", b"+@hash", b"-hset"]);
        assert_eq!(cmd(&u, &["HGET", "h", "f"]), Ok(()));
        assert_eq!(cmd(&u, &["HSET", "h", "f", "v"]), Err(Denied::Command));
        // AUTH and HELLO run whatever the rules, as in Redis.
        let u = User::new("nobody");
        assert_eq!(cmd(&u, &["AUTH", "a", "b"]), Ok(()));
        assert_eq!(cmd(&u, &["HELLO"]), Ok(()));
        assert_eq!(cmd(&u, &["PING"]), Err(Denied::Command));
        // A command ACL does not know: allowed only to a user that started from +@all.
        let name = "nosuchcommand";
        let a = args(&[name]);
        let call = Call {
            name,
            args: &a,
            keys: &[],
            channels: &[],
        };
        assert_eq!(user(&[b"+@all", b"-get"]).check(&call), Ok(()));
        assert_eq!(
            user(&[b"-@all", b"+@read", b"+@write"]).check(&call),
            Err(Denied::Command)
        );
    }

    #[test]
    fn subcommands_and_first_args_as_redis_dryrun() {
        // ACL DRYRUN on redis-server 7.0.15 for the same rules gave these answers.
        let u = user(&[
            b"on",
            b"nopass",
            b"-@all",
            b"+select|0",
            b"+config|get",
            b"+debug|object",
            b"+client|id",
        ]);
        assert_eq!(cmd(&u, &["SELECT", "0"]), Ok(()));
        assert_eq!(cmd(&u, &["SELECT", "1"]), Err(Denied::Command));
        assert_eq!(cmd(&u, &["SELECT"]), Err(Denied::Command));
        assert_eq!(cmd(&u, &["CONFIG", "GET", "x"]), Ok(()));
        assert_eq!(cmd(&u, &["config", "get", "x"]), Ok(()));
        assert_eq!(cmd(&u, &["CONFIG", "SET", "x", "y"]), Err(Denied::Command));
        assert_eq!(cmd(&u, &["CONFIG", "NOSUCH"]), Err(Denied::Command));
        assert_eq!(cmd(&u, &["DEBUG", "OBJECT", "k"]), Ok(()));
        assert_eq!(cmd(&u, &["DEBUG", "Object", "k"]), Ok(()));
        assert_eq!(cmd(&u, &["DEBUG", "SLEEP", "0"]), Err(Denied::Command));
        assert_eq!(cmd(&u, &["CLIENT", "ID"]), Ok(()));
        assert_eq!(cmd(&u, &["CLIENT", "Id"]), Ok(()));
        assert_eq!(cmd(&u, &["CLIENT", "LIST"]), Err(Denied::Command));

        let u = user(&[b"+@all", b"-config|set"]);
        assert_eq!(cmd(&u, &["CONFIG", "GET", "x"]), Ok(()));
        assert_eq!(cmd(&u, &["CONFIG", "SET", "x", "y"]), Err(Denied::Command));
        let u = user(&[b"-@all", b"+config", b"-config|set"]);
        assert_eq!(cmd(&u, &["CONFIG", "GET", "x"]), Ok(()));
        assert_eq!(cmd(&u, &["CONFIG", "SET", "x", "y"]), Err(Denied::Command));
        // A whole command rule replaces first-arg rules of it.
        let u = user(&[b"-@all", b"+select|0", b"-select"]);
        assert_eq!(cmd(&u, &["SELECT", "0"]), Err(Denied::Command));
        let u = user(&[b"-@all", b"+select|0", b"+select"]);
        assert_eq!(cmd(&u, &["SELECT", "5"]), Ok(()));
        // A category naming a container brings its subcommands; @admin names only some.
        let u = user(&[b"-@all", b"+@slow"]);
        assert_eq!(cmd(&u, &["CONFIG", "SET", "x", "y"]), Ok(()));
        let u = user(&[b"-@all", b"+@admin"]);
        assert_eq!(cmd(&u, &["CONFIG", "SET", "x", "y"]), Ok(()));
        assert_eq!(cmd(&u, &["CONFIG", "HELP"]), Err(Denied::Command));
        let u = user(&[b"+@all", b"-@admin"]);
        assert_eq!(cmd(&u, &["CONFIG", "HELP"]), Ok(()));
        assert_eq!(cmd(&u, &["CONFIG", "GET", "x"]), Err(Denied::Command));
    }

    #[test]
    fn key_patterns_with_read_and_write() {
        use KeyAccess::{Read as R, ReadWrite as RW, Write as W};
        let u = user(&[
            b"+@all",
            b"%R~r*",
            b"%W~w*",
            b"~rw*",
            b"%R~both*",
            b"%W~both*",
        ]);
        assert_eq!(check(&u, &["GET", "r1"], &[(1, R)], &[]), Ok(()));
        assert_eq!(
            check(&u, &["SET", "r1", "v"], &[(1, W)], &[]),
            Err(Denied::Key(1))
        );
        assert_eq!(check(&u, &["SET", "w1", "v"], &[(1, W)], &[]), Ok(()));
        assert_eq!(
            check(&u, &["GET", "w1"], &[(1, R)], &[]),
            Err(Denied::Key(1))
        );
        assert_eq!(check(&u, &["INCR", "rw1"], &[(1, RW)], &[]), Ok(()));
        assert_eq!(check(&u, &["INCR", "both1"], &[(1, RW)], &[]), Ok(()));
        assert_eq!(
            check(&u, &["GET", "zz"], &[(1, R)], &[]),
            Err(Denied::Key(1))
        );
        // The first key refused is reported.
        let keys = [(1, R), (2, W), (3, W)];
        assert_eq!(
            check(&u, &["X", "r1", "r2", "zz"], &keys, &[]),
            Err(Denied::Key(2))
        );
        // A read pattern and a write pattern that both match do not make ReadWrite
        // unless one pattern grants both.
        let u = user(&[b"+@all", b"%R~k*", b"%W~*1"]);
        assert_eq!(
            check(&u, &["INCR", "k1"], &[(1, RW)], &[]),
            Err(Denied::Key(1))
        );
        // Commands without keys need no pattern; keyed ones need one.
        let u = user(&[b"+@all"]);
        assert_eq!(check(&u, &["PING"], &[], &[]), Ok(()));
        assert_eq!(
            check(&u, &["GET", "k"], &[(1, R)], &[]),
            Err(Denied::Key(1))
        );
        let u = user(&[b"+@all", b"allkeys"]);
        assert_eq!(check(&u, &["GET", "k"], &[(1, RW)], &[]), Ok(()));
        // Glob syntax is Redis's.
        let u = user(&[b"+@all", b"~user:[0-9]?", b"~a\\*b"]);
        assert_eq!(check(&u, &["GET", "user:1x"], &[(1, R)], &[]), Ok(()));
        assert_eq!(
            check(&u, &["GET", "user:x1"], &[(1, R)], &[]),
            Err(Denied::Key(1))
        );
        assert_eq!(check(&u, &["GET", "a*b"], &[(1, R)], &[]), Ok(()));
        assert_eq!(
            check(&u, &["GET", "axb"], &[(1, R)], &[]),
            Err(Denied::Key(1))
        );
    }

    #[test]
    fn channels_and_patterns_as_redis_dryrun() {
        let u = user(&[
            b"on",
            b"nopass",
            b"+@all",
            b"resetchannels",
            b"&news.*",
            b"allkeys",
        ]);
        let publish = |c: &str| check(&u, &["PUBLISH", c, "m"], &[], &[(1, false)]);
        assert_eq!(publish("news.a"), Ok(()));
        assert_eq!(publish("other"), Err(Denied::Channel(1)));
        let sub = |c: &[&str]| {
            let mut words = vec!["SUBSCRIBE"];
            words.extend_from_slice(c);
            let channels: Vec<(usize, bool)> = (1..words.len()).map(|i| (i, false)).collect();
            check(&u, &words, &[], &channels)
        };
        assert_eq!(sub(&["news.b"]), Ok(()));
        assert_eq!(sub(&["news.a", "zzz"]), Err(Denied::Channel(2)));
        let psub = |p: &str| check(&u, &["PSUBSCRIBE", p], &[], &[(1, true)]);
        assert_eq!(psub("news.*"), Ok(()));
        assert_eq!(psub("news.a*"), Err(Denied::Channel(1)));
        assert_eq!(psub("news.a"), Err(Denied::Channel(1)));
        let all = user(&[b"+@all", b"allchannels"]);
        assert_eq!(
            check(&all, &["PSUBSCRIBE", "x*"], &[], &[(1, true)]),
            Ok(())
        );
        let none = user(&[b"+@all"]);
        assert_eq!(
            check(&none, &["PUBLISH", "c", "m"], &[], &[(1, false)]),
            Err(Denied::Channel(1))
        );
    }

    #[test]
    fn selectors_as_redis_dryrun() {
        use KeyAccess::{Read as R, Write as W};
        // ACL DRYRUN on redis-server 7.0.15 for the same rules gave these answers.
        let u = user(&[
            b"on",
            b"nopass",
            b"-@all",
            b"+get",
            b"~a*",
            b"(+set ~b*)",
            b"(+mget %R~c* &x)",
        ]);
        assert_eq!(check(&u, &["GET", "a1"], &[(1, R)], &[]), Ok(()));
        assert_eq!(
            check(&u, &["GET", "b1"], &[(1, R)], &[]),
            Err(Denied::Key(1))
        );
        assert_eq!(check(&u, &["SET", "b1", "v"], &[(1, W)], &[]), Ok(()));
        assert_eq!(
            check(&u, &["SET", "a1", "v"], &[(1, W)], &[]),
            Err(Denied::Key(1))
        );
        let mget = [(1, R), (2, R)];
        assert_eq!(
            check(&u, &["MGET", "a1", "b1"], &mget, &[]),
            Err(Denied::Key(1))
        );
        assert_eq!(check(&u, &["MGET", "c1", "c2"], &mget, &[]), Ok(()));
        assert_eq!(
            check(&u, &["MGET", "c1", "zz"], &mget, &[]),
            Err(Denied::Key(2))
        );
        assert_eq!(
            check(&u, &["GET", "c1"], &[(1, R)], &[]),
            Err(Denied::Key(1))
        );
        assert_eq!(cmd(&u, &["CONFIG", "GET", "x"]), Err(Denied::Command));
        assert_eq!(
            check(&u, &["PUBLISH", "x", "m"], &[], &[(1, false)]),
            Err(Denied::Command)
        );
        assert_eq!(cmd(&u, &["AUTH", "a", "b"]), Ok(()));
        // A channel refusal outranks a key refusal from another selector.
        let u = user(&[b"+@all", b"~k*", b"&ch", b"(+@all allkeys)"]);
        let call = |k: &str| check(&u, &["X", k, "ch"], &[(1, W)], &[(2, false)]);
        assert_eq!(call("zz"), Err(Denied::Channel(2)));
        assert_eq!(call("k1"), Ok(()));
        // Of two key refusals, the later key is reported.
        let u = user(&[b"+@all", b"~a*", b"(+@all ~z*)"]);
        let keys = [(1, W), (2, W)];
        assert_eq!(
            check(&u, &["X", "a1", "b1"], &keys, &[]),
            Err(Denied::Key(2))
        );
        assert_eq!(
            check(&u, &["X", "b1", "a1"], &keys, &[]),
            Err(Denied::Key(1))
        );
        // clearselectors drops them.
        let mut u = user(&[b"-@all", b"(+get ~*)"]);
        assert_eq!(check(&u, &["GET", "k"], &[(1, R)], &[]), Ok(()));
        assert!(u.set_rules(&[b"clearselectors"]).is_ok());
        assert_eq!(
            check(&u, &["GET", "k"], &[(1, R)], &[]),
            Err(Denied::Command)
        );
    }

    #[test]
    fn unrestricted_needs_every_command_key_and_channel() {
        assert!(User::default_user().unrestricted());
        assert!(user(&[b"+@all", b"~*", b"&*"]).unrestricted());
        assert!(user(&[b"+@all", b"%RW~*", b"&*"]).unrestricted());
        assert!(user(&[b"-@all", b"+@all", b"allkeys", b"allchannels"]).unrestricted());
        assert!(user(&[b"(+@all ~* &*)"]).unrestricted());
        assert!(!user(&[b"+@all", b"~*", b"&*", b"-get"]).unrestricted());
        assert!(!user(&[b"+@all", b"%R~*", b"&*"]).unrestricted());
        assert!(!user(&[b"+@all", b"~*"]).unrestricted());
        assert!(!user(&[b"+@all", b"~a*", b"&*"]).unrestricted());
        assert!(!user(&[b"-@all", b"~*", b"&*"]).unrestricted());
        // Every command brought back one by one counts too.
        assert!(user(&[b"+@all", b"~*", b"&*", b"-get", b"+get"]).unrestricted());
    }
}
