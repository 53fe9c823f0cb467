//! The CLI's connection: connects lazily, reconnects after a drop, prints replies, and
//! follows subscriptions and MONITOR until interrupted.

use keel_client::{ClientError, ConnectOptions, Connection, Value};

use crate::format::{render, OutputMode};
use crate::output::emit;

/// One server connection as the REPL and one-shot mode see it.
pub struct Session {
    opts: ConnectOptions,
    conn: Option<Connection>,
    mode: OutputMode,
    /// Inside MULTI (shown in the REPL prompt).
    pub in_multi: bool,
}

/// Commands after which the server streams replies until the client leaves.
fn is_streaming(cmd: &[u8]) -> bool {
    ["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR"]
        .iter()
        .any(|c| c.as_bytes().eq_ignore_ascii_case(cmd))
}

impl Session {
    /// A session that connects on first use.
    pub fn new(opts: ConnectOptions, mode: OutputMode) -> Session {
        Session {
            opts,
            conn: None,
            mode,
            in_multi: false,
        }
    }

    /// The connection options.
    pub fn options(&self) -> &ConnectOptions {
        &self.opts
    }

    /// True while a connection is open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The db the connection is on (the requested one before connecting).
    pub fn db(&self) -> u32 {
        self.conn.as_ref().map_or(self.opts.db, Connection::db)
    }

    /// Connects if not connected.
    pub async fn ensure_connected(&mut self) -> Result<&mut Connection, ClientError> {
        if self.conn.is_none() {
            self.conn = Some(Connection::connect(&self.opts).await?);
            self.in_multi = false;
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(ClientError::Closed {
                addr: self.opts.addr(),
            }),
        }
    }

    /// Sends a command and returns its reply; a connection error drops the connection
    /// (the next command reconnects) and is returned.
    pub async fn command(&mut self, argv: &[Vec<u8>]) -> Result<Value, ClientError> {
        let conn = self.ensure_connected().await?;
        match conn.command(argv).await {
            Ok(v) => {
                self.note_multi(argv, &v);
                Ok(v)
            }
            Err(e) => {
                if e.is_connection_error() {
                    // Keep the db for the reconnect.
                    if let Some(c) = self.conn.take() {
                        self.opts.db = c.db();
                    }
                }
                Err(e)
            }
        }
    }

    fn note_multi(&mut self, argv: &[Vec<u8>], v: &Value) {
        let Some(name) = argv.first() else { return };
        if v.is_error() {
            if name.eq_ignore_ascii_case(b"EXEC") {
                self.in_multi = false;
            }
            return;
        }
        if name.eq_ignore_ascii_case(b"MULTI") {
            self.in_multi = true;
        } else if name.eq_ignore_ascii_case(b"EXEC") || name.eq_ignore_ascii_case(b"DISCARD") {
            self.in_multi = false;
        }
    }

    /// Runs a command and prints its reply; for SUBSCRIBE-like commands and MONITOR
    /// keeps printing what the server streams until the connection ends.
    pub async fn run_and_print(&mut self, argv: &[Vec<u8>]) -> Result<(), ClientError> {
        let mut reply = self.command(argv).await?;
        let streaming = argv.first().is_some_and(|c| is_streaming(c));
        // Out-of-band RESP3 pushes arrive before the reply; show them, then the reply.
        while !streaming && matches!(reply, Value::Push(_)) {
            // redis-cli shows pushes only in its human format.
            if self.mode == OutputMode::Tty {
                self.print(&reply)?;
            }
            reply = self.ensure_connected().await?.read_reply().await?;
        }
        self.print(&reply)?;
        if !streaming || reply.is_error() {
            return Ok(());
        }
        if self.mode == OutputMode::Tty {
            self.print_text("Reading messages... (press Ctrl-C to quit)\n")?;
        }
        let mode = self.mode;
        let conn = self.ensure_connected().await?;
        loop {
            let v = conn.read_reply().await?;
            emit(&render(&v, mode)).map_err(stdout_error)?;
        }
    }

    /// Prints one reply in the session's output mode.
    pub fn print(&self, v: &Value) -> Result<(), ClientError> {
        emit(&render(v, self.mode)).map_err(stdout_error)
    }

    fn print_text(&self, s: &str) -> Result<(), ClientError> {
        emit(s.as_bytes()).map_err(stdout_error)
    }
}

fn stdout_error(source: std::io::Error) -> ClientError {
    ClientError::Io {
        op: "write to stdout",
        addr: "stdout".to_string(),
        source,
    }
}
