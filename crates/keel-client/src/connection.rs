//! One TCP connection speaking RESP: connect + handshake, send requests, read replies.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::options::{ConnectOptions, Protocol};
use crate::resp::{encode_command, Decoder, Limits};
use crate::{ClientError, Result, Value};

/// Bytes requested from the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// The reading side of a connection: a socket half, its buffer and the reply decoder.
#[derive(Debug)]
pub struct ReplyReader {
    read: OwnedReadHalf,
    buf: BytesMut,
    decoder: Decoder,
    addr: String,
}

impl ReplyReader {
    /// Reads the next complete reply (no timeout; see [`Connection::read_reply`]).
    pub async fn read_reply(&mut self) -> Result<Value> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => {
                    return Err(ClientError::Protocol {
                        addr: self.addr.clone(),
                        offset: e.offset,
                        reason: e.reason,
                    })
                }
            }
            self.buf.reserve(READ_CHUNK);
            let n = self
                .read
                .read_buf(&mut self.buf)
                .await
                .map_err(|source| ClientError::Io {
                    op: "read",
                    addr: self.addr.clone(),
                    source,
                })?;
            if n == 0 {
                return Err(ClientError::Closed {
                    addr: self.addr.clone(),
                });
            }
        }
    }
}

/// The writing side of a connection.
#[derive(Debug)]
pub struct RequestWriter {
    write: OwnedWriteHalf,
    out: BytesMut,
    addr: String,
}

impl RequestWriter {
    /// Encodes and writes one request.
    pub async fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<()> {
        self.out.clear();
        encode_command(args, &mut self.out);
        let out = std::mem::take(&mut self.out);
        let r = self.write_raw(&out).await;
        self.out = out;
        r
    }

    /// Writes bytes exactly as given (already RESP or inline requests).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.write
            .write_all(bytes)
            .await
            .map_err(|source| ClientError::Io {
                op: "write",
                addr: self.addr.clone(),
                source,
            })
    }

    /// Closes the writing direction (the server then sees end of input).
    pub async fn shutdown(&mut self) -> Result<()> {
        self.write
            .shutdown()
            .await
            .map_err(|source| ClientError::Io {
                op: "shutdown",
                addr: self.addr.clone(),
                source,
            })
    }
}

/// A connected, greeted RESP connection.
///
/// Error replies come back as `Ok(Value::Error(..))` from [`Connection::command`] (a CLI
/// prints them); [`Connection::query`] turns them into `Err(ClientError::Server)`.
#[derive(Debug)]
pub struct Connection {
    reader: ReplyReader,
    writer: RequestWriter,
    opts: ConnectOptions,
    /// Database currently selected (tracked through SELECT replies).
    db: u32,
}

impl Connection {
    /// Connects to `opts.host:opts.port`, then AUTH (if a password is set), HELLO 3 (if
    /// RESP3) and SELECT (if db != 0), each checked.
    pub async fn connect(opts: &ConnectOptions) -> Result<Connection> {
        let addr = opts.addr();
        let stream = tokio::time::timeout(
            opts.connect_timeout,
            TcpStream::connect((opts.host.as_str(), opts.port)),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            op: "connect",
            addr: addr.clone(),
            after: opts.connect_timeout,
        })?
        .map_err(|source| ClientError::Connect {
            addr: addr.clone(),
            source,
        })?;
        // Small requests are latency bound; Nagle would hold them back.
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let mut conn = Connection {
            reader: ReplyReader {
                read,
                buf: BytesMut::with_capacity(READ_CHUNK),
                decoder: Decoder::new(Limits::default()),
                addr: addr.clone(),
            },
            writer: RequestWriter {
                write,
                out: BytesMut::new(),
                addr,
            },
            opts: opts.clone(),
            db: 0,
        };
        conn.handshake().await?;
        Ok(conn)
    }

    async fn handshake(&mut self) -> Result<()> {
        if let Some(pass) = self.opts.password.clone() {
            let reply = match self.opts.user.clone() {
                Some(user) => self.command(&["AUTH", &user, &pass]).await?,
                None => self.command(&["AUTH", &pass]).await?,
            };
            if let Value::Error(reply) = reply {
                return Err(ClientError::Handshake {
                    step: "AUTH",
                    reply,
                });
            }
        }
        if self.opts.protocol == Protocol::Resp3 {
            if let Value::Error(reply) = self.command(&["HELLO", "3"]).await? {
                return Err(ClientError::Handshake {
                    step: "HELLO",
                    reply,
                });
            }
        }
        if self.opts.db != 0 {
            let db = self.opts.db.to_string();
            if let Value::Error(reply) = self.command(&["SELECT", &db]).await? {
                return Err(ClientError::Handshake {
                    step: "SELECT",
                    reply,
                });
            }
        }
        Ok(())
    }

    /// The options this connection was made with.
    pub fn options(&self) -> &ConnectOptions {
        &self.opts
    }

    /// The database selected on this connection.
    pub fn db(&self) -> u32 {
        self.db
    }

    /// Sends one command and waits for its reply (within the response timeout).
    pub async fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value> {
        self.writer.send(args).await?;
        let reply = self.read_reply().await?;
        self.track_select(args, &reply);
        Ok(reply)
    }

    /// Like [`Connection::command`], with error replies turned into `Err`.
    pub async fn query<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value> {
        self.command(args).await?.into_result()
    }

    /// Sends every command in one write, then reads one reply per command.
    pub async fn pipeline<A: AsRef<[u8]>>(&mut self, cmds: &[Vec<A>]) -> Result<Vec<Value>> {
        let mut out = BytesMut::new();
        for c in cmds {
            encode_command(c, &mut out);
        }
        self.writer.write_raw(&out).await?;
        let mut replies = Vec::with_capacity(cmds.len());
        for c in cmds {
            let reply = self.read_reply().await?;
            self.track_select(c, &reply);
            replies.push(reply);
        }
        Ok(replies)
    }

    /// Sends one command without reading its reply.
    pub async fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<()> {
        self.writer.send(args).await
    }

    /// Reads the next reply, bounded by the response timeout.
    pub async fn read_reply(&mut self) -> Result<Value> {
        match self.opts.response_timeout {
            None => self.reader.read_reply().await,
            Some(limit) => tokio::time::timeout(limit, self.reader.read_reply())
                .await
                .map_err(|_| ClientError::Timeout {
                    op: "reply",
                    addr: self.opts.addr(),
                    after: limit,
                })?,
        }
    }

    /// Splits into independent reader and writer, for streaming many requests while
    /// replies are read concurrently (mass insert).
    pub fn into_parts(self) -> (ReplyReader, RequestWriter) {
        (self.reader, self.writer)
    }

    fn track_select<A: AsRef<[u8]>>(&mut self, args: &[A], reply: &Value) {
        let is_select = args
            .first()
            .is_some_and(|a| a.as_ref().eq_ignore_ascii_case(b"SELECT"));
        if is_select && matches!(reply, Value::Simple(_)) {
            if let Some(db) = args
                .get(1)
                .and_then(|a| std::str::from_utf8(a.as_ref()).ok())
                .and_then(|s| s.parse().ok())
            {
                self.db = db;
            }
        }
    }
}
