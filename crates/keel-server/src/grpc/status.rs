//! Request checks and the mapping of keel's errors onto gRPC status codes.
//!
//! Engine error replies keep Redis's text (`WRONGTYPE Operation against …`) as the
//! status message, so clients of both protocols see the same words.

use bytes::Bytes;
use keel_engine::error::CmdError;
use keel_engine::keys::DATABASES;
use keel_engine::{EngineError, Reply};
use tonic::Status;

/// Most keys (or entries) one request may name: one request is one log entry, and a
/// huge entry stalls the write funnel for everyone.
pub const MAX_KEYS_PER_REQUEST: usize = 100_000;

/// Most writes one transaction may buffer.
pub const MAX_TXN_WRITES: usize = 100_000;

/// Scan page size when the request says 0, and the most one page may hold.
pub const DEFAULT_PAGE: usize = 1000;
/// See [`DEFAULT_PAGE`].
pub const MAX_PAGE: usize = 10_000;

/// Largest TTL accepted: far beyond any real use, and safe from overflow when added to
/// the clock (Redis refuses what overflows, too).
pub const MAX_TTL_MS: u64 = 1 << 53;

/// The database index as the engine takes it, or INVALID_ARGUMENT.
pub fn check_db(db: u32) -> Result<u8, Status> {
    u8::try_from(db)
        .ok()
        .filter(|d| *d < DATABASES)
        .ok_or_else(|| {
            Status::invalid_argument(format!("db {db} is out of range (0-{})", DATABASES - 1))
        })
}

/// A non-empty list of at most [`MAX_KEYS_PER_REQUEST`] items named `what`.
pub fn check_count(n: usize, what: &str) -> Result<(), Status> {
    if n == 0 {
        return Err(Status::invalid_argument(format!("no {what} given")));
    }
    if n > MAX_KEYS_PER_REQUEST {
        return Err(Status::invalid_argument(format!(
            "too many {what}: {n} (at most {MAX_KEYS_PER_REQUEST} per request)"
        )));
    }
    Ok(())
}

/// A TTL in ms that SET PX accepts.
pub fn check_ttl(ttl_ms: u64) -> Result<u64, Status> {
    if ttl_ms == 0 || ttl_ms > MAX_TTL_MS {
        return Err(Status::invalid_argument(format!(
            "ttl_ms must be between 1 and {MAX_TTL_MS} (got {ttl_ms})"
        )));
    }
    Ok(ttl_ms)
}

/// The page size for a requested `limit`.
pub fn page_size(limit: u32) -> usize {
    match limit {
        0 => DEFAULT_PAGE,
        n => (n as usize).min(MAX_PAGE),
    }
}

/// The status for an error reply from the engine or the write funnel.
pub fn from_reply_text(text: &str) -> Status {
    let code = text.split(' ').next().unwrap_or("");
    match code {
        "WRONGTYPE" => Status::failed_precondition(text),
        "ABORTED" => Status::aborted(text),
        "OOM" => Status::resource_exhausted(text),
        "MISCONF" | "LOADING" | "READONLY" => Status::unavailable(text),
        _ if text.contains("shutting down") => Status::unavailable(text),
        _ => Status::internal(text),
    }
}

/// The status for a reply that should have been a success.
pub fn from_reply(reply: &Reply) -> Status {
    match reply {
        Reply::Error(e) => from_reply_text(e),
        other => Status::internal(format!("unexpected reply {other:?}")),
    }
}

/// The status for a failed engine call (storage or decoding trouble).
pub fn from_engine(e: EngineError) -> Status {
    Status::internal(e.to_string())
}

/// The status for a failed command-level call.
pub fn from_cmd(e: CmdError) -> Status {
    match e {
        CmdError::Reply(r) => from_reply(&r),
        CmdError::Engine(e) => from_engine(e),
    }
}

/// Hex of `b` (page tokens carry a key position).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes of a hex string, or INVALID_ARGUMENT naming the token.
pub fn unhex(s: &str) -> Result<Bytes, Status> {
    let bad = || Status::invalid_argument("malformed page_token");
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    let digit = |c: u8| (c as char).to_digit(16).ok_or_else(bad);
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| match p {
            [h, l] => Ok((digit(*h)? * 16 + digit(*l)?) as u8),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<u8>, Status>>()
        .map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let k = b"\x00key\xff";
        assert_eq!(unhex(&hex(k)).expect("round trip").as_ref(), k);
        assert_eq!(unhex("").expect("empty").len(), 0);
        assert_eq!(
            unhex("abc").map_err(|s| s.code()),
            Err(Code::InvalidArgument)
        );
        assert_eq!(
            unhex("zz").map_err(|s| s.code()),
            Err(Code::InvalidArgument)
        );
    }

    #[test]
    fn codes_follow_the_error_word() {
        let c = |t: &str| from_reply_text(t).code();
        assert_eq!(
            c(keel_engine::reply::errors::WRONGTYPE),
            Code::FailedPrecondition
        );
        assert_eq!(c("ABORTED write-write conflict on key 'k'"), Code::Aborted);
        assert_eq!(c("OOM command not allowed"), Code::ResourceExhausted);
        assert_eq!(c("MISCONF disk failed"), Code::Unavailable);
        assert_eq!(c("ERR server is shutting down"), Code::Unavailable);
        assert_eq!(c("ERR something else"), Code::Internal);
        assert_eq!(check_db(15).ok(), Some(15));
        assert_eq!(
            check_db(16).map_err(|s| s.code()),
            Err(Code::InvalidArgument)
        );
        assert_eq!(
            check_count(0, "keys").map_err(|s| s.code()),
            Err(Code::InvalidArgument)
        );
        assert_eq!(page_size(0), DEFAULT_PAGE);
        assert_eq!(page_size(u32::MAX), MAX_PAGE);
        assert!(check_ttl(0).is_err() && check_ttl(MAX_TTL_MS + 1).is_err());
    }
}
