//! keel-storage benchmark: engine figures (puts, synced group-commit writers, gets, scans,
//! open, heap per key, merge) next to the machine's physical limits measured in the same
//! run, with each figure's ratio to its target. Markdown report on stdout, progress on
//! stderr. Run `cargo bench -p keel-storage --bench storage -- --help` for options.

/// Prints a progress line on stderr with the seconds since the bench started.
macro_rules! progress {
    ($($arg:tt)*) => {
        eprintln!("[bench {:6.1}s] {}", $crate::started().elapsed().as_secs_f64(), format!($($arg)*))
    };
}

mod alloc_count;
mod cli;
mod engine_runs;
mod figures;
mod machine;
mod physical;
mod report;
mod sync_writers;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Instant;

use alloc_count::CountingAlloc;
use cli::{Config, Parsed};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// When the bench started (for progress lines).
fn started() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn main() -> ExitCode {
    started();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli::parse(&args) {
        Ok(Parsed::Help) => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Parsed::Run(cfg)) => match run(&cfg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("storage bench: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("storage bench: {e}\n\n{}", cli::USAGE);
            ExitCode::from(2)
        }
    }
}

/// The parent of the temporary directory and a phrase saying where it comes from.
fn temp_parent(cfg: &Config) -> (PathBuf, &'static str) {
    if let Some(d) = &cfg.dir {
        return (d.clone(), "given with --dir");
    }
    match option_env!("CARGO_TARGET_TMPDIR") {
        Some(d) => (PathBuf::from(d), "under the repo's target dir"),
        None => (std::env::temp_dir(), "$TMPDIR or /tmp"),
    }
}

/// p50 of the cost of timing an operation (two `Instant::now()` calls).
fn timer_overhead() -> Option<u64> {
    let mut ns: Vec<u64> = (0..100_000)
        .map(|_| {
            let t = Instant::now();
            u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
        })
        .collect();
    figures::Latency::from_samples(&mut ns).map(|l| l.p50_ns)
}

fn run(cfg: &Config) -> Result<(), String> {
    let wall = Instant::now();
    let started_utc = report::utc_now();
    let load_before = machine::load_average();
    let (parent, origin) = temp_parent(cfg);
    let base = parent.join(format!("keel-storage-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).map_err(|e| format!("create {}: {e}", base.display()))?;
    let machine = machine::probe(&base, origin);
    progress!(
        "{} mode, temp dir {} ({})",
        cfg.mode.as_str(),
        base.display(),
        machine.tmp_fs
    );

    let mut notes = Vec::new();
    let mut raw = Vec::new();
    if cfg.sections.raw {
        for &batch in &cfg.batches {
            progress!("raw append+fdatasync, batch {batch}");
            match physical::raw_append_sync(&base, batch, cfg.record_bytes, cfg.sync_secs) {
                Ok(r) => raw.push(r),
                Err(e) => notes.push(format!("raw append+fdatasync batch {batch}: {e}")),
            }
        }
    }
    let mut seq = None;
    if cfg.sections.seq {
        progress!("sequential write {} MiB", cfg.seq_mib);
        match physical::seq_write(&base, cfg.seq_mib << 20, 1 << 20) {
            Ok(s) => seq = Some(s),
            Err(e) => notes.push(format!("sequential write: {e}")),
        }
    }

    let values = workload::Values::new(4096);
    let mut engines = Vec::new();
    for &kind in &cfg.engines {
        engines.push(engine_runs::run_engine(kind, cfg, &base, &values));
    }
    if let Err(e) = std::fs::remove_dir_all(&base) {
        notes.push(format!("could not remove {}: {e}", base.display()));
    }

    let run = report::Run {
        cfg,
        machine: &machine,
        started_utc,
        load_before,
        load_after: machine::load_average(),
        wall: wall.elapsed(),
        timer_overhead_ns: timer_overhead(),
        raw,
        seq,
        engines,
        notes,
    };
    progress!("done");
    let md = report::render(&run);
    print!("{md}");
    if let Some(out) = &cfg.out {
        std::fs::write(out, &md).map_err(|e| format!("write {}: {e}", out.display()))?;
    }
    Ok(())
}
