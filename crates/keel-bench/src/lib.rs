//! Reporting for `bench/compare.sh`, the keel vs redis-server benchmark: reads the raw
//! per-run CSV the script writes (one row per redis-benchmark run) and the RSS CSV, takes
//! medians per (section, variant, test, pipeline, server), pairs keel with its baseline
//! (redis, or in the engines section keel's memory engine), and
//! writes a summary (CSV, JSON, markdown) and a PNG plot of throughput and p99. Also
//! the flame graphs of `bench/flame.sh` ([`flame`]), from `perf script` output.
//!
//! The measuring itself is the shell script's job (it starts the servers and runs
//! redis-benchmark); nothing here times anything, so the tests can check the arithmetic
//! and the rendering deterministically.

pub mod flame;
pub mod plot;
pub mod report;
pub mod results;
pub mod summary;

use std::path::PathBuf;

/// Everything that can go wrong reading results or writing the report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A results file could not be read or an output file not written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("read", "write").
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A results CSV has a malformed header or row.
    #[error("{path}, line {line}: {reason}")]
    Parse {
        /// The file (or a label for in-memory input).
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Drawing the plot failed.
    #[error("plot {path}: {reason}")]
    Plot {
        /// The PNG being written.
        path: PathBuf,
        /// The drawing backend's message.
        reason: String,
    },
}

/// A binary's exit code for the result of its run: success, or failure with the error
/// on stderr after the binary's name.
pub fn exit_code(binary: &str, result: Result<(), BenchError>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{binary}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
