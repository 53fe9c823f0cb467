//! The server's own commands and the ONE lookup over them and the engine's data
//! commands ([`lookup`], [`all`]) that dispatch and COMMAND both use.
//!
//! A server command is a [`ServerCommand`]: the engine's `CommandSpec` shape with a
//! handler that sees the connection ([`Session`]) instead of a storage snapshot.
//! Handlers are synchronous and return an [`Outcome`]; what needs awaiting (SAVE,
//! SHUTDOWN, later blocking pops) is an `Outcome` variant the connection carries out.
//! To add a command: write its handler in the file of its group and add an entry to
//! [`table::SERVER_COMMANDS`].

pub mod acl_cmd;
pub mod admin_cmd;
pub mod client_cmd;
pub mod command_cmd;
pub mod config_cmd;
pub mod connection;
pub mod info;
pub mod info_extra;
pub mod memory_cmd;
pub mod migrate;
pub mod persistence;
pub mod pubsub_cmd;
pub mod table;
pub mod tracking_cmd;
pub mod transaction;

use std::sync::OnceLock;

use bytes::Bytes;
use keel_engine::command::{self, CommandSpec};
use keel_engine::name_table::{NameTable, Remembered};
use keel_engine::Reply;

use super::conn::Session;

/// One client's CLIENT INFO line (ACL LOG keeps it with each refusal).
pub(crate) use client_cmd::client_line as client_info_line;
pub(crate) use client_cmd::{client_line_in, user_name};

/// Flags only server commands carry, above the engine's bits.
pub mod server_flags {
    /// Allowed before AUTH.
    pub const NO_AUTH: u32 = 1 << 16;
    /// Allowed while loading.
    pub const LOADING: u32 = 1 << 17;
    /// Allowed on a stale replica.
    pub const STALE: u32 = 1 << 18;
    /// Not allowed in scripts (the engine's bit: its EVAL and SCRIPT carry it too).
    pub const NOSCRIPT: u32 = keel_engine::command::flags::NOSCRIPT;

    /// Flag names as COMMAND prints them.
    pub fn names(f: u32) -> Vec<&'static str> {
        let mut out = keel_engine::command::flags::names(f);
        for (bit, n) in [(NO_AUTH, "no_auth"), (LOADING, "loading"), (STALE, "stale")] {
            if f & bit != 0 {
                out.push(n);
            }
        }
        out
    }
}

/// What a server command asks the connection to do.
#[derive(Debug)]
pub enum Outcome {
    /// Send this reply.
    Reply(Reply),
    /// Send this reply, then close (QUIT).
    ReplyThenClose(Reply),
    /// Take a snapshot and reply when done (SAVE).
    Save,
    /// Start a snapshot and reply at once (BGSAVE; BGREWRITEAOF when `aof`, whose
    /// replies name the log rewrite it stands for).
    Bgsave {
        /// BGREWRITEAOF.
        aof: bool,
    },
    /// Run the queued transaction (EXEC).
    Exec,
    /// Stop the server (SHUTDOWN); `save` snapshots first.
    Shutdown {
        /// SHUTDOWN SAVE (true) or NOSAVE (false); None: the configured default
        /// ([`crate::config::Config::saves_on_exit`]).
        save: Option<bool>,
    },
    /// Await the future, then send its reply (DEBUG SLEEP, DEBUG RELOAD).
    Deferred(Deferred),
}

/// A reply computed asynchronously by the connection task.
pub struct Deferred(pub std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>>);

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deferred")
    }
}

/// A server command handler.
pub type ServerHandler = fn(&mut Session, &[Bytes]) -> Outcome;

/// One server command's entry (same fields as the engine's `CommandSpec`).
#[derive(Debug)]
pub struct ServerCommand {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity convention.
    pub arity: i32,
    /// Engine `flags` bits plus [`server_flags`].
    pub flags: u32,
    /// First key position (0 = none).
    pub first_key: i32,
    /// Last key position.
    pub last_key: i32,
    /// Key step.
    pub step: i32,
    /// Command group.
    pub group: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Implementation.
    pub handler: ServerHandler,
}

/// A command from either table.
#[derive(Debug, Clone, Copy)]
pub enum Cmd {
    /// A server command.
    Server(&'static ServerCommand),
    /// An engine data command.
    Engine(&'static CommandSpec),
}

impl Cmd {
    /// Lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Cmd::Server(c) => c.name,
            Cmd::Engine(c) => c.name,
        }
    }
    /// Arity.
    pub fn arity(&self) -> i32 {
        match self {
            Cmd::Server(c) => c.arity,
            Cmd::Engine(c) => c.arity,
        }
    }
    /// Flag bits.
    pub fn flags(&self) -> u32 {
        match self {
            Cmd::Server(c) => c.flags,
            Cmd::Engine(c) => c.flags,
        }
    }
    /// (first, last, step) of the key spec.
    pub fn keys(&self) -> (i32, i32, i32) {
        match self {
            Cmd::Server(c) => (c.first_key, c.last_key, c.step),
            Cmd::Engine(c) => (c.first_key, c.last_key, c.step),
        }
    }
    /// Group.
    pub fn group(&self) -> &'static str {
        match self {
            Cmd::Server(c) => c.group,
            Cmd::Engine(c) => c.group,
        }
    }
    /// Summary.
    pub fn summary(&self) -> &'static str {
        match self {
            Cmd::Server(c) => c.summary,
            Cmd::Engine(c) => c.summary,
        }
    }
    /// True if `argc` fits the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        command::arity_fits(self.arity(), argc)
    }
    /// Key argument positions for `argc` arguments.
    pub fn key_positions(&self, argc: usize) -> Vec<usize> {
        match self {
            Cmd::Engine(c) => c.key_positions(argc).collect(),
            Cmd::Server(_) => Vec::new(),
        }
    }
}

/// Looks a command up in both tables, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<Cmd> {
    lookup_indexed(name).map(|(c, _)| c)
}

/// Looks a command up and gives its index in [`all`] too (commandstats' slot), so a
/// request needs one lookup for both. Like the engine's `lookup`, it compares with the
/// thread's last command first.
pub fn lookup_indexed(name: &[u8]) -> Option<(Cmd, usize)> {
    static TABLE: OnceLock<NameTable<(Cmd, usize)>> = OnceLock::new();
    thread_local! {
        static LAST: Remembered<(Cmd, usize)> = const { std::cell::Cell::new(None) };
    }
    TABLE
        .get_or_init(|| NameTable::new(all().enumerate().map(|(i, c)| (c.name(), (c, i)))))
        .get_remembered(&LAST, name)
}

/// Every command, server ones first.
pub fn all() -> impl Iterator<Item = Cmd> {
    table::SERVER_COMMANDS
        .iter()
        .map(Cmd::Server)
        .chain(command::all_commands().map(Cmd::Engine))
}

/// True if `a` equals `b` ignoring ASCII case.
pub fn eq_ci(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// `Outcome::Reply` of an error text.
pub fn err(text: impl Into<String>) -> Outcome {
    Outcome::Reply(Reply::err(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_and_engine_tables_do_not_overlap_and_lookup_finds_both() {
        for c in table::SERVER_COMMANDS {
            assert!(
                command::lookup(c.name.as_bytes()).is_none(),
                "{} is in both tables",
                c.name
            );
            assert_eq!(c.name, c.name.to_ascii_lowercase());
        }
        assert!(matches!(lookup(b"PING"), Some(Cmd::Server(_))));
        assert!(matches!(lookup(b"get"), Some(Cmd::Engine(_))));
        assert!(lookup(b"nosuch").is_none());
        assert!(all().count() > 100);
    }

    /// A connection hands the funnel the spec it dispatched a write by, and the engine
    /// applies with it instead of resolving `args[0]` again; replay resolves. Both must
    /// be the same spec, or a replayed entry could run another command.
    #[test]
    fn dispatch_resolves_every_engine_command_to_the_engines_own_spec() {
        for spec in command::all_commands() {
            for name in [spec.name.to_string(), spec.name.to_ascii_uppercase()] {
                let Some((Cmd::Engine(found), _)) = lookup_indexed(name.as_bytes()) else {
                    panic!("{name} does not dispatch to the engine");
                };
                assert!(std::ptr::eq(found, spec), "{name}");
                let argc = spec.arity.unsigned_abs().max(1) as usize;
                let args = vec![bytes::Bytes::from(name.clone()); argc];
                match keel_engine::engine::resolve(&args) {
                    Ok(r) => assert!(std::ptr::eq(r, found), "{name}"),
                    Err(e) => panic!("{name}: {e:?}"),
                }
            }
        }
    }
}
