//! keel's Rust client: RESP2/RESP3 connections with a typed [`Value`], a bounded
//! connection [`Pool`] with retries, and the `keel-cli` binary built on both.
//!
//! ```no_run
//! # async fn demo() -> keel_client::Result<()> {
//! use keel_client::{ConnectOptions, Connection, Protocol, Value};
//!
//! let mut opts = ConnectOptions::new("127.0.0.1", 6379);
//! opts.protocol = Protocol::Resp3;
//! let mut conn = Connection::connect(&opts).await?;
//! conn.query(&["HSET", "user:1", "name", "ada"]).await?;
//! match conn.query(&["HGETALL", "user:1"]).await? {
//!     Value::Map(pairs) => assert_eq!(pairs.len(), 1),
//!     other => println!("unexpected {other:?}"),
//! }
//! # Ok(()) }
//! ```
//!
//! Retry rule (see [`retry`]): only connection failures are retried, and after a
//! request was sent only for read-only commands or ones the caller marks idempotent.

mod connection;
mod error;
pub mod grpc;
mod options;
mod pool;
pub mod resp;
pub mod retry;
mod value;

pub use connection::{Connection, ReplyReader, RequestWriter};
pub use error::{ClientError, Result};
pub use options::{ConnectOptions, Protocol};
pub use pool::{Pool, PoolConfig, PooledConnection};
pub use retry::RetryPolicy;
pub use value::Value;
