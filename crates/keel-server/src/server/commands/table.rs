//! The server's command table (connection, server and persistence commands). Data
//! commands live in the engine's table; [`super::lookup`] searches both.

use keel_engine::command::flags::{ADMIN, FAST, READONLY, WRITE};

use super::server_flags::{LOADING, NOSCRIPT, NO_AUTH, STALE};
use super::{
    command_cmd, config_cmd, connection, info, persistence, pubsub_cmd, ServerCommand,
    ServerHandler,
};

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
        "pubsub",
        "subscribe",
        -2,
        READONLY | NOSCRIPT | LOADING | STALE,
        "Listens for messages published to channels.",
        pubsub_cmd::subscribe,
    ),
    cmd(
        "pubsub",
        "psubscribe",
        -2,
        READONLY | NOSCRIPT | LOADING | STALE,
        "Listens for messages published to channels that match one or more patterns.",
        pubsub_cmd::psubscribe,
    ),
    cmd(
        "pubsub",
        "unsubscribe",
        -1,
        READONLY | NOSCRIPT | LOADING | STALE,
        "Stops listening to messages posted to channels.",
        pubsub_cmd::unsubscribe,
    ),
    cmd(
        "pubsub",
        "punsubscribe",
        -1,
        READONLY | NOSCRIPT | LOADING | STALE,
        "Stops listening to messages published to channels that match one or more patterns.",
        pubsub_cmd::punsubscribe,
    ),
    cmd(
        "pubsub",
        "publish",
        3,
        READONLY | FAST | LOADING | STALE,
        "Posts a message to a channel.",
        pubsub_cmd::publish,
    ),
    cmd(
        "pubsub",
        "pubsub",
        -2,
        READONLY | LOADING | STALE,
        "Introspects the pub/sub subsystem.",
        pubsub_cmd::pubsub,
    ),
    cmd(
        "server",
        "monitor",
        1,
        READONLY | ADMIN | NOSCRIPT | LOADING | STALE,
        "Listens for all requests received by the server in real-time.",
        pubsub_cmd::monitor,
    ),
];
