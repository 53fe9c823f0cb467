//! keel's server: front-ends (RESP today), the command path to the engine, and the
//! binary's configuration. Front-ends never touch storage; they hand commands to the
//! engine through the write funnel.

pub mod resp;
pub mod wal;
