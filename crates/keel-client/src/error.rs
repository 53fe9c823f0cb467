//! The client's typed errors: every variant names the operation and the peer.

use std::time::Duration;

/// Anything that can go wrong talking to a keel (or Redis) server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be established.
    #[error("could not connect to {addr}: {source}")]
    Connect {
        /// `host:port` that was dialled.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading or writing an established connection failed.
    #[error("{op} on {addr}: {source}")]
    Io {
        /// What the client was doing ("write", "read").
        op: &'static str,
        /// The peer.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server closed the connection before a reply was complete.
    #[error("connection to {addr} closed by the server")]
    Closed {
        /// The peer.
        addr: String,
    },
    /// An operation took longer than its configured timeout.
    #[error("{op} on {addr} timed out after {after:?}")]
    Timeout {
        /// What the client was doing ("connect", "reply", "pool acquire").
        op: &'static str,
        /// The peer.
        addr: String,
        /// The configured limit.
        after: Duration,
    },
    /// The server sent bytes that are not valid RESP.
    #[error("protocol error from {addr} at byte {offset} of the reply stream: {reason}")]
    Protocol {
        /// The peer.
        addr: String,
        /// Offset in the connection's reply stream.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The server answered with an error reply (`-ERR ...`).
    #[error("{0}")]
    Server(String),
    /// The connection handshake (AUTH, HELLO, SELECT) was refused.
    #[error("{step} failed: {reply}")]
    Handshake {
        /// Which handshake command failed.
        step: &'static str,
        /// The server's error text.
        reply: String,
    },
    /// A reply had an unexpected shape for a typed helper.
    #[error("unexpected reply to {command}: {detail}")]
    UnexpectedReply {
        /// The command whose reply was inspected.
        command: String,
        /// What was received instead.
        detail: String,
    },
    /// A gRPC call failed with a status other than ABORTED.
    #[error("{op} failed: {code}: {message}")]
    Grpc {
        /// The call ("Kv.Get", "Txn.Commit").
        op: &'static str,
        /// The status code's name (`Unavailable`, `InvalidArgument`, ...).
        code: String,
        /// The server's message.
        message: String,
    },
    /// A transaction commit lost a write-write conflict (gRPC ABORTED); the message
    /// names the key.
    #[error("{}", aborted_text(message))]
    Aborted {
        /// The server's message, naming the conflicting key.
        message: String,
    },
    /// The request was invalid before anything was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// The server's ABORTED message, prefixed with "ABORTED: " unless it already says so.
fn aborted_text(message: &str) -> String {
    if message.starts_with("ABORTED") {
        message.to_string()
    } else {
        format!("ABORTED: {message}")
    }
}

impl ClientError {
    /// True for failures of the transport (refused, reset, closed, timed out), the ones a
    /// fresh connection may cure; false for server replies and protocol violations.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Io { .. }
                | ClientError::Closed { .. }
                | ClientError::Timeout { .. }
        ) || matches!(self, ClientError::Grpc { code, .. } if code == "Unavailable")
    }
}

/// Result alias for the client.
pub type Result<T> = std::result::Result<T, ClientError>;
