//! keel's YCSB-style load driver: YCSB's core workloads A–F with its generators (scrambled
//! zipfian, latest, uniform), records of 10 × 100-byte fields stored as Redis hashes, run
//! over RESP against keel or Redis with one connection per client task.

pub mod db;
pub mod generator;
pub mod report;
pub mod resp;
pub mod runner;
pub mod server_cpu;
pub mod stats;
pub mod workload;
