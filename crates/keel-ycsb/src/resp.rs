//! A minimal RESP2 client: one connection, commands written as arrays of bulk strings,
//! pipelining by writing several commands before reading their replies.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest bulk string accepted in a reply; records here are about 1 KB.
const MAX_BULK: usize = 64 << 20;
/// Largest array accepted in a reply.
const MAX_ARRAY: usize = 1 << 20;
/// Deepest array nesting accepted in a reply.
const MAX_DEPTH: usize = 8;
/// How much room is reserved before each socket read.
const READ_CHUNK: usize = 64 << 10;

/// A reply from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and friends.
    Simple(Vec<u8>),
    /// `-ERR ...`: the server refused the command.
    Error(String),
    /// `:n`.
    Int(i64),
    /// `$n` bulk string; None for the null bulk.
    Bulk(Option<Vec<u8>>),
    /// `*n` array; None for the null array.
    Array(Option<Vec<Reply>>),
}

/// Why talking to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, reading or writing failed.
    #[error("{op} {addr}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The server address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Connecting did not finish in time.
    #[error("connect {addr}: timed out after {secs} s")]
    ConnectTimeout {
        /// The server address.
        addr: SocketAddr,
        /// The limit.
        secs: u64,
    },
    /// The server closed the connection while a reply was expected.
    #[error("read {addr}: connection closed by the server")]
    Closed {
        /// The server address.
        addr: SocketAddr,
    },
    /// The reply did not follow RESP or exceeded a limit.
    #[error("read {addr}: bad reply at byte {offset}: {detail}")]
    Protocol {
        /// The server address.
        addr: SocketAddr,
        /// Offset within the unread reply bytes.
        offset: usize,
        /// What was wrong.
        detail: String,
    },
}

/// One connection to a RESP server.
#[derive(Debug)]
pub struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    out: Vec<u8>,
    inbuf: Vec<u8>,
    /// Start of the unparsed bytes in `inbuf`.
    pos: usize,
    queued: usize,
}

/// Outcome of parsing from a byte slice.
enum Parsed {
    Done(Reply, usize),
    Incomplete,
}

impl Conn {
    /// Connects to `addr` within `timeout`.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn, ClientError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(r) => r.map_err(|source| ClientError::Io {
                op: "connect",
                addr,
                source,
            })?,
            Err(_) => {
                return Err(ClientError::ConnectTimeout {
                    addr,
                    secs: timeout.as_secs(),
                })
            }
        };
        stream.set_nodelay(true).map_err(|source| ClientError::Io {
            op: "set TCP_NODELAY",
            addr,
            source,
        })?;
        Ok(Conn {
            addr,
            stream,
            out: Vec::with_capacity(4096),
            inbuf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            queued: 0,
        })
    }

    /// The server address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues one command; it is sent by the next `finish`.
    pub fn queue<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        self.out.push(b'*');
        push_decimal(&mut self.out, args.len());
        self.out.extend_from_slice(b"\r\n");
        for a in args {
            let a = a.as_ref();
            self.out.push(b'$');
            push_decimal(&mut self.out, a.len());
            self.out.extend_from_slice(b"\r\n");
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
        self.queued += 1;
    }

    /// Sends every queued command and reads one reply for each, in order.
    pub async fn finish(&mut self) -> Result<Vec<Reply>, ClientError> {
        let n = std::mem::take(&mut self.queued);
        let addr = self.addr;
        let sent = self.stream.write_all(&self.out).await;
        self.out.clear();
        sent.map_err(|source| ClientError::Io {
            op: "write",
            addr,
            source,
        })?;
        let mut replies = Vec::with_capacity(n);
        for _ in 0..n {
            replies.push(self.read_reply().await?);
        }
        Ok(replies)
    }

    /// Sends one command and reads its reply.
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Reply, ClientError> {
        self.queue(args);
        let mut r = self.finish().await?;
        r.pop().ok_or(ClientError::Protocol {
            addr: self.addr,
            offset: 0,
            detail: "no reply".into(),
        })
    }

    async fn read_reply(&mut self) -> Result<Reply, ClientError> {
        loop {
            let parsed = parse(&self.inbuf[self.pos..], 0).map_err(|(offset, detail)| {
                ClientError::Protocol {
                    addr: self.addr,
                    offset,
                    detail,
                }
            })?;
            if let Parsed::Done(reply, used) = parsed {
                self.pos += used;
                if self.pos == self.inbuf.len() {
                    self.inbuf.clear();
                    self.pos = 0;
                }
                return Ok(reply);
            }
            if self.pos > 0 {
                self.inbuf.drain(..self.pos);
                self.pos = 0;
            }
            self.inbuf.reserve(READ_CHUNK);
            let got = self
                .stream
                .read_buf(&mut self.inbuf)
                .await
                .map_err(|source| ClientError::Io {
                    op: "read",
                    addr: self.addr,
                    source,
                })?;
            if got == 0 {
                return Err(ClientError::Closed { addr: self.addr });
            }
        }
    }
}

fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The line starting at `buf[0]` without its CRLF, and the bytes it took with CRLF.
fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[..end], end + 2))
}

fn parse_int(text: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| format!("not an integer: {:?}", String::from_utf8_lossy(text)))
}

/// Parses one reply from the start of `buf`; errors carry the offset within `buf`.
fn parse(buf: &[u8], depth: usize) -> Result<Parsed, (usize, String)> {
    let Some(&kind) = buf.first() else {
        return Ok(Parsed::Incomplete);
    };
    let Some((text, head)) = line(&buf[1..]) else {
        return Ok(Parsed::Incomplete);
    };
    let head = head + 1;
    match kind {
        b'+' => Ok(Parsed::Done(Reply::Simple(text.to_vec()), head)),
        b'-' => Ok(Parsed::Done(
            Reply::Error(String::from_utf8_lossy(text).into_owned()),
            head,
        )),
        b':' => Ok(Parsed::Done(
            Reply::Int(parse_int(text).map_err(|e| (0, e))?),
            head,
        )),
        b'$' => {
            let n = parse_int(text).map_err(|e| (0, e))?;
            if n < 0 {
                return Ok(Parsed::Done(Reply::Bulk(None), head));
            }
            let n = usize::try_from(n).map_err(|_| (0, format!("bulk length {n}")))?;
            if n > MAX_BULK {
                return Err((0, format!("bulk length {n} over the {MAX_BULK} limit")));
            }
            let Some(rest) = buf.get(head..) else {
                return Ok(Parsed::Incomplete);
            };
            if rest.len() < n + 2 {
                return Ok(Parsed::Incomplete);
            }
            if &rest[n..n + 2] != b"\r\n" {
                return Err((head + n, "bulk string not followed by CRLF".into()));
            }
            Ok(Parsed::Done(
                Reply::Bulk(Some(rest[..n].to_vec())),
                head + n + 2,
            ))
        }
        b'*' => {
            let n = parse_int(text).map_err(|e| (0, e))?;
            if n < 0 {
                return Ok(Parsed::Done(Reply::Array(None), head));
            }
            let n = usize::try_from(n).map_err(|_| (0, format!("array length {n}")))?;
            if n > MAX_ARRAY {
                return Err((0, format!("array length {n} over the {MAX_ARRAY} limit")));
            }
            if depth >= MAX_DEPTH {
                return Err((0, format!("arrays nested deeper than {MAX_DEPTH}")));
            }
            let mut items = Vec::with_capacity(n.min(1024));
            let mut at = head;
            for _ in 0..n {
                let Some(rest) = buf.get(at..) else {
                    return Ok(Parsed::Incomplete);
                };
                match parse(rest, depth + 1).map_err(|(o, d)| (o + at, d))? {
                    Parsed::Done(r, used) => {
                        items.push(r);
                        at += used;
                    }
                    Parsed::Incomplete => return Ok(Parsed::Incomplete),
                }
            }
            Ok(Parsed::Done(Reply::Array(Some(items)), at))
        }
        other => Err((0, format!("unknown reply type byte {other:#04x}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(buf: &[u8]) -> (Reply, usize) {
        match parse(buf, 0) {
            Ok(Parsed::Done(r, n)) => (r, n),
            Ok(Parsed::Incomplete) => panic!("incomplete: {buf:?}"),
            Err(e) => panic!("error {e:?}"),
        }
    }

    #[test]
    fn parses_every_reply_kind() {
        assert_eq!(done(b"+OK\r\n"), (Reply::Simple(b"OK".to_vec()), 5));
        assert_eq!(done(b"-ERR x\r\n").0, Reply::Error("ERR x".into()));
        assert_eq!(done(b":-12\r\n").0, Reply::Int(-12));
        assert_eq!(done(b"$-1\r\n").0, Reply::Bulk(None));
        assert_eq!(
            done(b"$3\r\nabc\r\n"),
            (Reply::Bulk(Some(b"abc".to_vec())), 9)
        );
        assert_eq!(done(b"*-1\r\n").0, Reply::Array(None));
        let (r, n) = done(b"*2\r\n$1\r\na\r\n:5\r\nextra");
        assert_eq!(n, 15);
        assert_eq!(
            r,
            Reply::Array(Some(vec![Reply::Bulk(Some(b"a".to_vec())), Reply::Int(5)]))
        );
    }

    #[test]
    fn every_prefix_of_a_reply_is_incomplete() {
        let full = b"*2\r\n$5\r\nhello\r\n*1\r\n+x\r\n";
        for cut in 0..full.len() {
            assert!(
                matches!(parse(&full[..cut], 0), Ok(Parsed::Incomplete)),
                "cut {cut}"
            );
        }
        assert!(matches!(parse(full, 0), Ok(Parsed::Done(_, n)) if n == full.len()));
    }

    #[test]
    fn rejects_bad_and_oversized_replies() {
        assert!(parse(b"?x\r\n", 0).is_err());
        assert!(parse(b":abc\r\n", 0).is_err());
        assert!(parse(b"$3\r\nabcXY", 0).is_err());
        assert!(parse(b"$999999999999\r\n", 0).is_err());
        assert!(parse(b"*99999999\r\n", 0).is_err());
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep, 0).is_err());
    }

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        let mut out = Vec::new();
        push_decimal(&mut out, 0);
        push_decimal(&mut out, 1234567);
        assert_eq!(out, b"01234567");
    }
}
