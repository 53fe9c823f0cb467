//! keel's database state machine: Redis types encoded on the storage trait, TTL, MVCC
//! reads, and a deterministic `apply` that every coordinator (standalone WAL, Raft) feeds.
//!
//! This crate knows nothing of sockets or Raft. Replies are [`reply::Reply`] trees that
//! the front-end renders as RESP2 or RESP3.

pub mod args;
pub mod codec;
pub mod command;
pub mod ctx;
pub mod cursor;
pub mod digest;
pub mod dump;
pub mod engine;
pub mod error;
pub mod eviction;
pub mod exec;
pub mod gate;
pub mod gc;
pub mod geohash;
pub mod glob;
pub mod hyperloglog;
pub mod keys;
pub mod keyspace_stats;
pub mod kv;
pub mod member_prefetch;
pub mod meta;
pub mod name_table;
pub mod reply;
pub mod script;
pub mod split_args;
pub mod txn;
pub mod types;

/// The Redis version keel answers as: INFO's `redis_version`, HELLO's `version` and
/// scripts' `redis.REDIS_VERSION`.
pub const REDIS_COMPAT_VERSION: &str = "7.2.0";

pub use ctx::ApplyCtx;
pub use engine::{Applied, Engine, MemoryVerdict, Op, ReadResult};
pub use error::{EngineError, Result};
pub use eviction::EvictionPolicy;
pub use reply::{BulkList, Reply};
