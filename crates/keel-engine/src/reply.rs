//! Replies as the engine produces them: a RESP3-shaped tree that the front-end renders
//! as RESP2 or RESP3.

use bytes::Bytes;

/// One reply value.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Ok,
    /// A simple status string (`+PONG`, `+string`, `+QUEUED`).
    Simple(String),
    /// An error line; the text starts with its code (`ERR …`, `WRONGTYPE …`).
    Error(String),
    /// An integer.
    Int(i64),
    /// A bulk string.
    Bulk(Bytes),
    /// The null bulk string (RESP2 `$-1`, RESP3 `_`).
    Nil,
    /// The null array (RESP2 `*-1`, RESP3 `_`).
    NilArray,
    /// An array.
    Array(Vec<Reply>),
    /// A double (RESP3 `,`; RESP2 renders it as a bulk string).
    Double(f64),
    /// A map (RESP3 `%`; RESP2 renders it as a flat array).
    Map(Vec<(Reply, Reply)>),
    /// A set (RESP3 `~`; RESP2 renders it as an array).
    Set(Vec<Reply>),
    /// A boolean (RESP3 `#`; RESP2 renders it as 1/0).
    Bool(bool),
    /// Pairs such as member/score (RESP3: an array of 2-element arrays; RESP2: one flat
    /// array), as Redis 7 answers ZRANGE … WITHSCORES, ZPOPMIN with a count, ZRANDMEMBER
    /// … WITHSCORES and HRANDFIELD … WITHVALUES.
    Pairs(Vec<(Reply, Reply)>),
    /// An out-of-band push (RESP3 `>`; RESP2 renders it as an array): pub/sub messages.
    Push(Vec<Reply>),
}

impl Reply {
    /// An error reply with exactly `text` (which must start with its code).
    pub fn err(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    /// A bulk reply copied from `b`.
    pub fn bulk(b: impl AsRef<[u8]>) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(b.as_ref()))
    }

    /// A bulk reply of an optional value (None renders as nil).
    pub fn opt_bulk(b: Option<Bytes>) -> Reply {
        b.map_or(Reply::Nil, Reply::Bulk)
    }

    /// An array of bulk strings.
    pub fn bulks<I, B>(items: I) -> Reply
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        Reply::Array(items.into_iter().map(|b| Reply::Bulk(b.into())).collect())
    }

    /// True for error replies.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// Redis's error texts, the spec keel's replies follow.
pub mod errors {
    /// Wrong kind of value for the command.
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    /// OBJECT FREQ without an LFU maxmemory-policy (Redis's text).
    pub const NO_LFU_FREQ: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
    /// OBJECT IDLETIME under an LFU maxmemory-policy (Redis's text).
    pub const LFU_NO_IDLETIME: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
    /// Generic syntax error.
    pub const SYNTAX: &str = "ERR syntax error";
    /// Integer argument or stored value not an integer / out of range.
    pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
    /// Float argument or stored value not a float.
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    /// INCR-family overflow.
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    /// Missing key for commands that need one.
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    /// Index past the end (LSET).
    pub const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
    /// String grew past proto-max-bulk-len.
    pub const STRING_TOO_LONG: &str =
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
    /// Bad expire time.
    pub const INVALID_EXPIRE: &str = "ERR invalid expire time in 'set' command";
    /// DB index out of range.
    pub const DB_INDEX: &str = "ERR DB index is out of range";
    /// Writes refused with noeviction over maxmemory.
    pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

    /// "wrong number of arguments" for `cmd` (lower-case name as Redis prints it).
    pub fn wrong_args(cmd: &str) -> String {
        format!(
            "ERR wrong number of arguments for '{}' command",
            cmd.to_ascii_lowercase()
        )
    }

    /// "unknown command" with the args preview Redis prints.
    pub fn unknown_command(cmd: &str, args: &[bytes::Bytes]) -> String {
        let mut preview = String::new();
        for a in args.iter().take(20) {
            preview.push('\'');
            preview.push_str(&String::from_utf8_lossy(a));
            preview.push_str("' ");
        }
        format!("ERR unknown command '{cmd}', with args beginning with: {preview}")
    }
}
