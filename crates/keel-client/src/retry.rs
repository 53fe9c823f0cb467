//! When a failed command may be sent again, and how long to wait first.
//!
//! The rule: a command is retried on a fresh connection only if
//! 1. the failure is a connection error ([`ClientError::is_connection_error`]): refused,
//!    reset, closed or timed out — never an error reply or a protocol violation; and
//! 2. either nothing was written yet (the connection failed while being established,
//!    so the server cannot have seen the command), or the command is idempotent:
//!    [`is_idempotent`] (read-only commands) or the caller said so with
//!    [`crate::Pool::command_idempotent`].
//!
//! A write such as INCR, LPUSH or SET whose request was sent and whose reply was lost
//! may already have been applied; sending it again could apply it twice, so such
//! failures are returned to the caller, who knows whether repeating is safe.

use std::time::Duration;

use crate::ClientError;

/// Bounded exponential backoff between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (1 = never retry).
    pub max_attempts: u32,
    /// Wait before the second attempt.
    pub initial_backoff: Duration,
    /// Cap on any single wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        }
    }

    /// The wait before attempt number `attempt` (1-based; attempt 1 has no wait):
    /// doubles from `initial_backoff`, capped at `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let shift = (attempt - 2).min(20);
        self.initial_backoff
            .saturating_mul(1u32 << shift)
            .min(self.max_backoff)
    }

    /// Whether a failure of attempt `attempt` may be followed by another attempt.
    pub fn should_retry(
        &self,
        err: &ClientError,
        attempt: u32,
        sent: bool,
        idempotent: bool,
    ) -> bool {
        attempt < self.max_attempts && err.is_connection_error() && (!sent || idempotent)
    }
}

/// Read-only commands: sending one twice cannot change the data set.
const IDEMPOTENT: &[&str] = &[
    "BITCOUNT",
    "BITPOS",
    "COMMAND",
    "DBSIZE",
    "DUMP",
    "ECHO",
    "EXISTS",
    "EXPIRETIME",
    "GET",
    "GETBIT",
    "GETRANGE",
    "HEXISTS",
    "HGET",
    "HGETALL",
    "HKEYS",
    "HLEN",
    "HMGET",
    "HRANDFIELD",
    "HSCAN",
    "HSTRLEN",
    "HVALS",
    "INFO",
    "KEYS",
    "LASTSAVE",
    "LINDEX",
    "LLEN",
    "LPOS",
    "LRANGE",
    "MGET",
    "PEXPIRETIME",
    "PING",
    "PTTL",
    "RANDOMKEY",
    "SCAN",
    "SCARD",
    "SDIFF",
    "SINTER",
    "SINTERCARD",
    "SISMEMBER",
    "SMEMBERS",
    "SMISMEMBER",
    "SRANDMEMBER",
    "SSCAN",
    "STRLEN",
    "SUBSTR",
    "SUNION",
    "TIME",
    "TTL",
    "TYPE",
    "ZCARD",
    "ZCOUNT",
    "ZDIFF",
    "ZINTER",
    "ZINTERCARD",
    "ZLEXCOUNT",
    "ZMSCORE",
    "ZRANDMEMBER",
    "ZRANGE",
    "ZRANGEBYLEX",
    "ZRANGEBYSCORE",
    "ZRANK",
    "ZREVRANGE",
    "ZREVRANGEBYLEX",
    "ZREVRANGEBYSCORE",
    "ZREVRANK",
    "ZSCAN",
    "ZSCORE",
    "ZUNION",
];

/// True when `name` (any case) is a read-only command that is safe to resend.
pub fn is_idempotent(name: &[u8]) -> bool {
    IDEMPOTENT
        .iter()
        .any(|c| c.as_bytes().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed() -> ClientError {
        ClientError::Closed { addr: "x:1".into() }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        };
        assert_eq!(p.backoff(1), Duration::ZERO);
        assert_eq!(p.backoff(2), Duration::from_millis(10));
        assert_eq!(p.backoff(3), Duration::from_millis(20));
        assert_eq!(p.backoff(4), Duration::from_millis(40));
        assert_eq!(p.backoff(5), Duration::from_millis(50));
        assert_eq!(p.backoff(60), Duration::from_millis(50));
    }

    #[test]
    fn writes_are_not_resent_after_the_request_went_out() {
        let p = RetryPolicy::default();
        assert!(p.should_retry(&closed(), 1, false, false));
        assert!(!p.should_retry(&closed(), 1, true, false));
        assert!(p.should_retry(&closed(), 1, true, true));
        assert!(!p.should_retry(&closed(), p.max_attempts, false, true));
        assert!(!p.should_retry(&ClientError::Server("ERR x".into()), 1, false, true));
    }

    #[test]
    fn read_commands_are_idempotent_writes_are_not() {
        assert!(is_idempotent(b"get"));
        assert!(is_idempotent(b"MGET"));
        assert!(!is_idempotent(b"INCR"));
        assert!(!is_idempotent(b"SET"));
    }
}
