//! How to reach and greet a server: address, credentials, database, protocol, timeouts.

use std::time::Duration;

/// RESP protocol version negotiated after connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, the default of every server (no HELLO is sent).
    #[default]
    Resp2,
    /// RESP3, switched to with `HELLO 3` right after connecting.
    Resp3,
}

/// Everything [`crate::Connection::connect`] needs.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// ACL user name for AUTH (None: the default user).
    pub user: Option<String>,
    /// Password for AUTH (None: no AUTH is sent).
    pub password: Option<String>,
    /// Database selected after connecting (0: no SELECT is sent).
    pub db: u32,
    /// RESP version to speak.
    pub protocol: Protocol,
    /// Limit on establishing the TCP connection.
    pub connect_timeout: Duration,
    /// Limit on waiting for one reply (None: wait as long as it takes, e.g. BLPOP 0).
    pub response_timeout: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            host: "127.0.0.1".to_string(),
            port: 6379,
            user: None,
            password: None,
            db: 0,
            protocol: Protocol::Resp2,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Some(Duration::from_secs(30)),
        }
    }
}

impl ConnectOptions {
    /// Options for `host:port` with every other field at its default.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        ConnectOptions {
            host: host.into(),
            port,
            ..Default::default()
        }
    }

    /// `host:port`, the form used in errors and prompts.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}
