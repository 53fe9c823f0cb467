//! The server's command table (connection, server and persistence commands). Data
//! commands live in the engine's table; [`super::lookup`] searches both.

use keel_engine::command::flags::{ADMIN, FAST, READONLY, WRITE};

use super::server_flags::{LOADING, NOSCRIPT, NO_AUTH, STALE};
use super::{
    admin_cmd, client_cmd, command_cmd, config_cmd, connection, info, persistence, transaction,
    ServerCommand, ServerHandler,
};

#[allow(clippy::too_many_arguments)]
const fn keyed(
    group: &'static str,
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    handler: ServerHandler,
) -> ServerCommand {
    ServerCommand {
        first_key: 1,
        last_key: -1,
        step: 1,
        ..cmd(group, name, arity, flags, summary, handler)
    }
}

#[allow(clippy::too_many_arguments)]
const fn cmd(
    group: &'static str,
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    handler: ServerHandler,
) -> ServerCommand {
    ServerCommand {
        name,
        arity,
        flags,
        first_key: 0,
        last_key: 0,
        step: 0,
        group,
        summary,
        handler,
    }
}

/// Every server command. Server commands are marked READONLY unless they change data
/// (the engine's table requires exactly one of write/readonly; these never go through
/// the log: their effects are connection state or node operations).
pub static SERVER_COMMANDS: &[ServerCommand] = &[
    cmd(
        "connection",
        "ping",
        -1,
        READONLY | FAST | STALE,
        "Returns the server's liveliness response.",
        connection::ping,
    ),
    cmd(
        "connection",
        "echo",
        2,
        READONLY | FAST | STALE,
        "Returns the given string.",
        connection::echo,
    ),
    cmd(
        "connection",
        "select",
        2,
        READONLY | FAST | LOADING | STALE,
        "Changes the selected database.",
        connection::select,
    ),
    cmd(
        "connection",
        "quit",
        -1,
        READONLY | FAST | NO_AUTH | LOADING | STALE | NOSCRIPT,
        "Closes the connection.",
        connection::quit,
    ),
    cmd(
        "connection",
        "hello",
        -1,
        READONLY | FAST | NO_AUTH | LOADING | STALE | NOSCRIPT,
        "Handshakes with the server.",
        connection::hello,
    ),
    cmd(
        "connection",
        "auth",
        -2,
        READONLY | FAST | NO_AUTH | LOADING | STALE | NOSCRIPT,
        "Authenticates the connection.",
        connection::auth,
    ),
    cmd(
        "connection",
        "reset",
        1,
        READONLY | FAST | NO_AUTH | LOADING | STALE | NOSCRIPT,
        "Resets the connection.",
        connection::reset,
    ),
    cmd(
        "server",
        "time",
        1,
        READONLY | FAST | LOADING | STALE,
        "Returns the server time.",
        connection::time,
    ),
    cmd(
        "server",
        "command",
        -1,
        READONLY | LOADING | STALE,
        "Returns detailed information about all commands.",
        command_cmd::command,
    ),
    cmd(
        "server",
        "info",
        -1,
        READONLY | LOADING | STALE,
        "Returns information and statistics about the server.",
        info::info,
    ),
    cmd(
        "server",
        "config",
        -2,
        READONLY | ADMIN | LOADING | STALE | NOSCRIPT,
        "Gets, sets or resets configuration parameters.",
        config_cmd::config,
    ),
    cmd(
        "server",
        "save",
        1,
        READONLY | ADMIN | NOSCRIPT,
        "Synchronously saves the database to disk.",
        persistence::save,
    ),
    cmd(
        "server",
        "bgsave",
        -1,
        READONLY | ADMIN | NOSCRIPT,
        "Asynchronously saves the database to disk.",
        persistence::bgsave,
    ),
    cmd(
        "server",
        "lastsave",
        1,
        READONLY | FAST | LOADING | STALE,
        "Returns the Unix timestamp of the last successful save to disk.",
        persistence::lastsave,
    ),
    cmd(
        "server",
        "shutdown",
        -1,
        WRITE | ADMIN | NOSCRIPT | LOADING | STALE,
        "Synchronously saves the database to disk and shuts down the server.",
        persistence::shutdown,
    ),
    cmd(
        "connection",
        "client",
        -2,
        READONLY | NOSCRIPT | LOADING | STALE,
        "A container for client connection commands.",
        client_cmd::client,
    ),
    cmd(
        "server",
        "slowlog",
        -2,
        READONLY | ADMIN | LOADING | STALE,
        "A container for slow log commands.",
        admin_cmd::slowlog,
    ),
    cmd(
        "server",
        "latency",
        -2,
        READONLY | ADMIN | NOSCRIPT | LOADING | STALE,
        "A container for latency diagnostics commands.",
        admin_cmd::latency,
    ),
    cmd(
        "server",
        "debug",
        -2,
        READONLY | ADMIN | NOSCRIPT | LOADING | STALE,
        "A container for debugging commands.",
        admin_cmd::debug,
    ),
    cmd(
        "server",
        "role",
        1,
        READONLY | FAST | NOSCRIPT | LOADING | STALE,
        "Returns the replication role.",
        admin_cmd::role,
    ),
    cmd(
        "generic",
        "wait",
        3,
        READONLY,
        "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.",
        admin_cmd::wait,
    ),
    cmd(
        "cluster",
        "readonly",
        1,
        READONLY | FAST | LOADING | STALE,
        "Enables read-only queries for a connection to a Redis Cluster replica node.",
        admin_cmd::ok,
    ),
    cmd(
        "cluster",
        "readwrite",
        1,
        READONLY | FAST | LOADING | STALE,
        "Enables read-write queries for a connection to a Redis Cluster replica node.",
        admin_cmd::ok,
    ),
    cmd(
        "scripting",
        "function",
        -2,
        READONLY | NOSCRIPT,
        "A container for function commands.",
        admin_cmd::scripting,
    ),
    cmd(
        "scripting",
        "script",
        -2,
        READONLY | NOSCRIPT,
        "A container for Lua scripts management commands.",
        admin_cmd::scripting,
    ),
    cmd(
        "transactions",
        "multi",
        1,
        READONLY | FAST | LOADING | STALE | NOSCRIPT,
        "Starts a transaction.",
        transaction::multi_cmd,
    ),
    cmd(
        "transactions",
        "exec",
        1,
        READONLY | LOADING | STALE | NOSCRIPT,
        "Executes all commands in a transaction.",
        transaction::exec,
    ),
    cmd(
        "transactions",
        "discard",
        1,
        READONLY | FAST | LOADING | STALE | NOSCRIPT,
        "Discards a transaction.",
        transaction::discard,
    ),
    keyed(
        "transactions",
        "watch",
        -2,
        READONLY | FAST | LOADING | STALE | NOSCRIPT,
        "Monitors changes to keys to determine the execution of a transaction.",
        transaction::watch,
    ),
    cmd(
        "transactions",
        "unwatch",
        1,
        READONLY | FAST | LOADING | STALE | NOSCRIPT,
        "Forgets about watched keys of a transaction.",
        transaction::unwatch,
    ),
];
