//! `keel-ycsb`: load records, run YCSB workloads, and summarise results as markdown.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use keel_ycsb::db::RecordShape;
use keel_ycsb::report;
use keel_ycsb::runner::{self, LoadOptions, PhaseResult, RunOptions};
use keel_ycsb::stats::{rows, Row};
use keel_ycsb::workload::{Distribution, Workload};

#[derive(Parser, Debug)]
#[command(
    name = "keel-ycsb",
    about = "YCSB-style workloads A-F over RESP",
    version
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Insert the records (keys 0..records) the workloads run against.
    Load {
        #[command(flatten)]
        common: Common,
    },
    /// Run one workload against loaded records.
    Run {
        #[command(flatten)]
        common: Common,
        /// Workload letter: A, B, C, D, E or F.
        #[arg(long, short = 'w')]
        workload: String,
        /// Operations in all (default 100000 unless --duration is given).
        #[arg(long)]
        ops: Option<u64>,
        /// Seconds to run (with --ops, whichever ends first).
        #[arg(long)]
        duration: Option<f64>,
        /// Override the workload's request distribution: zipfian, uniform or latest.
        #[arg(long)]
        distribution: Option<Distribution>,
        /// Print progress to stderr every this many seconds (0: never).
        #[arg(long, default_value_t = 10.0)]
        progress: f64,
    },
    /// Print markdown tables comparing targets from CSV files written with --csv.
    Table {
        /// CSV files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct Common {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(long, short = 'p', default_value_t = 6379)]
    port: u16,
    /// Records to load (load); ignored by run, which counts the loaded ones.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Concurrent clients, each with its own connection.
    #[arg(long, short = 't', default_value_t = 50)]
    threads: usize,
    /// Seed of every generator; runs with the same seed pick the same keys per client.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fields per record.
    #[arg(long, default_value_t = 10)]
    fields: usize,
    /// Bytes per field value.
    #[arg(long, default_value_t = 100)]
    field_len: usize,
    /// Label of the target in the output (letters, digits, - _ . :).
    #[arg(long, default_value = "server")]
    target: String,
    /// Append one JSON object per (target, workload, op) to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Append one CSV row per (target, workload, op) to this file (header when new).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Exit successfully even when operations failed (they are still counted and shown).
    #[arg(long)]
    allow_errors: bool,
    /// Server process id: its CPU time (from /proc) per operation goes into the TOTAL row.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
}

impl Common {
    fn addr(&self) -> Result<SocketAddr, String> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("resolve {}:{}: {e}", self.host, self.port))?
            .next()
            .ok_or_else(|| format!("resolve {}:{}: no address", self.host, self.port))
    }

    fn shape(&self) -> Result<RecordShape, String> {
        if self.fields == 0 || self.fields > 1000 {
            return Err(format!("--fields {} out of 1..=1000", self.fields));
        }
        if self.field_len > 1 << 20 {
            return Err(format!("--field-len {} over 1 MiB", self.field_len));
        }
        Ok(RecordShape {
            fields: self.fields,
            field_len: self.field_len,
        })
    }
}

fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, String> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if let Some(n) = workers {
        b.worker_threads(n.max(1));
    }
    b.build().map_err(|e| format!("tokio runtime: {e}"))
}

/// Prints the table, writes the files, and decides the exit status.
fn finish(common: &Common, workload: &str, result: &PhaseResult) -> Result<(), String> {
    let out: Vec<Row> = rows(
        &common.target,
        workload,
        &result.stats,
        result.elapsed,
        common.threads,
        result.records,
        result.server_cpu,
    );
    print!("{}", report::table(&out));
    if let Some(p) = &common.csv {
        report::append_csv(p, &out).map_err(|e| e.to_string())?;
    }
    if let Some(p) = &common.json {
        report::append_json(p, &out).map_err(|e| e.to_string())?;
    }
    let errors = result.stats.errors();
    if errors > 0 {
        eprintln!(
            "keel-ycsb: {} {workload}: {errors} operations failed",
            common.target
        );
        if !common.allow_errors {
            return Err(format!(
                "{errors} operations failed (first: {}); pass --allow-errors to accept",
                result
                    .error_samples
                    .first()
                    .map(String::as_str)
                    .unwrap_or("?")
            ));
        }
    }
    Ok(())
}

fn main_inner() -> Result<(), String> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Load { common } => {
            if !report::valid_label(&common.target) {
                return Err(format!(
                    "--target {:?}: letters, digits, - _ . : only",
                    common.target
                ));
            }
            let opts = LoadOptions {
                addr: common.addr()?,
                records: common.records,
                threads: common.threads,
                seed: common.seed,
                shape: common.shape()?,
                server_pid: common.server_pid,
            };
            eprintln!(
                "keel-ycsb: {}: loading {} records with {} clients into {}",
                common.target, opts.records, opts.threads, opts.addr
            );
            let rt = runtime(common.workers)?;
            let result = rt
                .block_on(runner::load(&opts))
                .map_err(|e| e.to_string())?;
            finish(&common, "load", &result)
        }
        Cmd::Run {
            common,
            workload,
            ops,
            duration,
            distribution,
            progress,
        } => {
            if !report::valid_label(&common.target) {
                return Err(format!(
                    "--target {:?}: letters, digits, - _ . : only",
                    common.target
                ));
            }
            let mut w = Workload::standard(&workload)
                .ok_or_else(|| format!("unknown workload {workload:?} (A-F)"))?;
            if let Some(d) = distribution {
                w.distribution = d;
            }
            let duration = match duration {
                Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
                Some(s) => return Err(format!("--duration {s}: must be positive")),
                None => None,
            };
            let ops = match (ops, duration) {
                (None, None) => Some(100_000),
                (o, _) => o,
            };
            let opts = RunOptions {
                addr: common.addr()?,
                workload: w.clone(),
                ops,
                duration,
                threads: common.threads,
                seed: common.seed,
                shape: common.shape()?,
                progress: (progress > 0.0 && progress.is_finite())
                    .then(|| Duration::from_secs_f64(progress)),
                server_pid: common.server_pid,
            };
            let bound = match (ops, duration) {
                (Some(o), Some(d)) => format!("{o} ops or {:.1} s", d.as_secs_f64()),
                (Some(o), None) => format!("{o} ops"),
                (None, Some(d)) => format!("{:.1} s", d.as_secs_f64()),
                (None, None) => String::new(),
            };
            eprintln!(
                "keel-ycsb: {}: workload {} ({}), {} clients, {bound}",
                common.target, w.name, w.distribution, opts.threads
            );
            let rt = runtime(common.workers)?;
            let result = rt.block_on(runner::run(&opts)).map_err(|e| e.to_string())?;
            finish(&common, w.name, &result)
        }
        Cmd::Table { files } => {
            let mut all = Vec::new();
            for f in &files {
                all.extend(report::read_csv(f).map_err(|e| e.to_string())?);
            }
            print!("{}", report::markdown(&all));
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match main_inner() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keel-ycsb: {e}");
            ExitCode::FAILURE
        }
    }
}
