//! keel's gRPC API (package `keel.v1`): the messages, the `Kv` and `Txn` service traits
//! for servers and their clients, generated at build time from `proto/keel/v1/*.proto`
//! (whose comments are the API documentation).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use keel_proto::v1::{kv_client::KvClient, GetRequest};
//! let mut kv = KvClient::connect("http://127.0.0.1:7379").await?;
//! let reply = kv
//!     .get(GetRequest { db: 0, keys: vec![b"greeting".to_vec().into()] })
//!     .await?;
//! println!("{:?}", reply.into_inner().results);
//! # Ok(())
//! # }
//! ```

/// Version 1 of the API: package `keel.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("keel.v1");
}

/// The encoded `FileDescriptorSet` of every keel .proto file (for server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/keel_descriptor.bin"));

/// Full names of the services, as reflection lists them.
pub const SERVICE_NAMES: &[&str] = &["keel.v1.Kv", "keel.v1.Txn"];
