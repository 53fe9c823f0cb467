//! keel's server: the RESP front-end ([`server`]), the write funnel and recovery
//! ([`coordinator`]), the write-ahead log ([`wal`]), the protocol codec ([`resp`]) and
//! the binary's configuration ([`config`]); the gRPC front-end is [`grpc`]. Front-ends never touch storage; writes go
//! through the coordinator, reads run on engine snapshots.
//!
//! Embedding: `server::run(config, shutdown_signal)` recovers, serves and shuts down
//! cleanly; `server::Server::bind` + `serve` does the same with the bound address in
//! between (tests use port 0); [`embedded::EmbeddedServer`] runs one on its own thread
//! and stops it on drop.

pub mod alloc;
pub mod clock;
pub mod config;
pub mod coordinator;
pub mod embedded;
pub mod grpc;
pub mod resp;
pub mod server;
pub mod wal;

pub use config::Config;
pub use server::{run, Server, ServerError};
