//! Command-line options of the storage benchmark and their presets (full, quick, smoke).

use std::path::PathBuf;
use std::str::FromStr;

use keel_storage::EngineKind;

/// Usage text printed by `--help` and on a bad argument.
pub const USAGE: &str = "\
keel-storage benchmark

usage: cargo bench -p keel-storage --bench storage -- [options]

  --quick               small sizes, about 30 s in all
  --engines LIST        engines to run, comma separated (default memory,bitcask,lsm)
  --sections LIST       parts to run (default all): raw,seq,put,sync,get,scan,open,mem,merge
  --keys N              keys loaded for get/scan/open/memory figures (default 1000000)
  --get-ops N           random gets for the throughput figure (default 500000)
  --latency-samples N   gets timed one by one for p50/p99 (default 100000)
  --scans N             scans of --scan-len keys (default 1000)
  --scan-len N          keys per scan (default 1000)
  --sync-secs F         seconds per synced-writer configuration (default 2)
  --writers LIST        synced writer thread counts (default 1,4,16)
  --batches LIST        ops per synced batch (default 1,16)
  --record-bytes N      bytes per record in the raw append test (default 128)
  --seq-mib N           MiB written by the sequential bandwidth test (default 1024)
  --merge-keys N        live keys of the merge set (each written twice: 50% garbage)
                        (default: --keys, at most 500000)
  --dir PATH            parent of the temporary directory (default: the bench target tmp dir)
  --out FILE            also write the markdown report to FILE
  --help                this text
";

/// Which parts of the benchmark run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sections {
    /// Raw append+fdatasync (and the raw slices interleaved with synced puts).
    pub raw: bool,
    /// Sequential write bandwidth.
    pub seq: bool,
    /// Unsynced single-writer puts (the load of the read figures).
    pub put: bool,
    /// Synced puts with concurrent writers.
    pub sync: bool,
    /// Cached and cold point gets.
    pub get: bool,
    /// Forward scans.
    pub scan: bool,
    /// Open times.
    pub open: bool,
    /// Heap per key.
    pub mem: bool,
    /// Merge/compaction of a set with garbage.
    pub merge: bool,
}

impl Sections {
    fn all() -> Sections {
        Sections {
            raw: true,
            seq: true,
            put: true,
            sync: true,
            get: true,
            scan: true,
            open: true,
            mem: true,
            merge: true,
        }
    }

    fn parse(list: &str) -> Result<Sections, String> {
        let mut s = Sections {
            raw: false,
            seq: false,
            put: false,
            sync: false,
            get: false,
            scan: false,
            open: false,
            mem: false,
            merge: false,
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "raw" => s.raw = true,
                "seq" => s.seq = true,
                "put" => s.put = true,
                "sync" => s.sync = true,
                "get" => s.get = true,
                "scan" => s.scan = true,
                "open" => s.open = true,
                "mem" => s.mem = true,
                "merge" => s.merge = true,
                "all" => s = Sections::all(),
                other => return Err(format!("unknown section '{other}'")),
            }
        }
        Ok(s)
    }

    /// Whether the 1M-key load (shared by put/get/scan/open/mem) has to run.
    pub fn needs_load(&self) -> bool {
        self.put || self.get || self.scan || self.open || self.mem
    }
}

/// Size preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The default: figures comparable with the targets (1M keys).
    Full,
    /// Small sizes for a quick look.
    Quick,
    /// Tiny sizes: the binary was started without `--bench` (e.g. by `cargo test`).
    Smoke,
}

impl Mode {
    /// Name shown in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Quick => "quick",
            Mode::Smoke => "smoke (not started by cargo bench)",
        }
    }
}

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// Size preset the run started from.
    pub mode: Mode,
    /// Engines to measure, in order.
    pub engines: Vec<EngineKind>,
    /// Parts to run.
    pub sections: Sections,
    /// Keys loaded for the read, open and heap figures.
    pub keys: u64,
    /// Random gets in each throughput loop.
    pub get_ops: usize,
    /// Gets timed one by one for p50/p99.
    pub latency_samples: usize,
    /// Number of scans.
    pub scans: usize,
    /// Keys per scan.
    pub scan_len: usize,
    /// Engine seconds per synced configuration (and raw seconds interleaved with it).
    pub sync_secs: f64,
    /// Writer thread counts of the synced puts.
    pub writers: Vec<usize>,
    /// Ops per synced batch.
    pub batches: Vec<usize>,
    /// Bytes per record of the raw append test.
    pub record_bytes: usize,
    /// MiB written by the sequential bandwidth test.
    pub seq_mib: u64,
    /// Live keys of the merge set (each written twice, so half the records are garbage).
    pub merge_keys: u64,
    /// Parent of the temporary directory, if given.
    pub dir: Option<PathBuf>,
    /// File to write the report to as well, if given.
    pub out: Option<PathBuf>,
}

impl Config {
    fn preset(mode: Mode) -> Config {
        let (keys, get_ops, latency, scans, sync_secs, seq_mib) = match mode {
            Mode::Full => (1_000_000, 500_000, 100_000, 1_000, 2.0, 1024),
            Mode::Quick => (100_000, 100_000, 20_000, 200, 0.25, 256),
            Mode::Smoke => (2_000, 2_000, 1_000, 10, 0.05, 8),
        };
        Config {
            mode,
            engines: EngineKind::ALL.to_vec(),
            sections: Sections::all(),
            keys,
            get_ops,
            latency_samples: latency,
            scans,
            scan_len: 1_000,
            sync_secs,
            writers: vec![1, 4, 16],
            batches: vec![1, 16],
            record_bytes: 128,
            seq_mib,
            merge_keys: keys.min(500_000),
            dir: None,
            out: None,
        }
    }
}

/// What the command line asked for.
pub enum Parsed {
    /// Run with this configuration.
    Run(Box<Config>),
    /// Print usage and stop.
    Help,
}

fn num<T: FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{flag}: '{v}' is not a valid number"))
}

fn list<T: FromStr>(flag: &str, v: &str) -> Result<Vec<T>, String> {
    let items: Vec<T> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| num(flag, s))
        .collect::<Result<_, _>>()?;
    if items.is_empty() {
        return Err(format!("{flag}: empty list"));
    }
    Ok(items)
}

/// Parses the arguments after the program name. `cargo bench` appends `--bench`; without
/// it the binary runs the tiny smoke preset so a `cargo test --benches` stays short.
pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let started_by_bench = args.iter().any(|a| a == "--bench");
    let quick = args.iter().any(|a| a == "--quick");
    let mode = match (started_by_bench, quick) {
        (false, _) => Mode::Smoke,
        (true, true) => Mode::Quick,
        (true, false) => Mode::Full,
    };
    let mut cfg = Config::preset(mode);
    let mut merge_keys_set = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let flag = flag.as_str();
        match flag {
            "--bench" | "--quick" => continue,
            "--help" | "-h" => return Ok(Parsed::Help),
            _ => {}
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag}: missing value (or unknown flag)"))?;
        match flag {
            "--engines" => {
                cfg.engines = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<EngineKind>().map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?;
            }
            "--sections" => cfg.sections = Sections::parse(value)?,
            "--keys" => cfg.keys = num(flag, value)?,
            "--get-ops" => cfg.get_ops = num(flag, value)?,
            "--latency-samples" => cfg.latency_samples = num(flag, value)?,
            "--scans" => cfg.scans = num(flag, value)?,
            "--scan-len" => cfg.scan_len = num(flag, value)?,
            "--sync-secs" => cfg.sync_secs = num(flag, value)?,
            "--writers" => cfg.writers = list(flag, value)?,
            "--batches" => cfg.batches = list(flag, value)?,
            "--record-bytes" => cfg.record_bytes = num(flag, value)?,
            "--seq-mib" => cfg.seq_mib = num(flag, value)?,
            "--merge-keys" => {
                cfg.merge_keys = num(flag, value)?;
                merge_keys_set = true;
            }
            "--dir" => cfg.dir = Some(PathBuf::from(value)),
            "--out" => cfg.out = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag '{other}'")),
        }
    }
    if !merge_keys_set {
        cfg.merge_keys = cfg.keys.min(500_000);
    }
    if cfg.keys == 0 || cfg.scan_len == 0 || cfg.record_bytes == 0 {
        return Err("--keys, --scan-len and --record-bytes must be positive".into());
    }
    if !(cfg.sync_secs > 0.0 && cfg.sync_secs.is_finite()) {
        return Err("--sync-secs must be a positive number".into());
    }
    if cfg.writers.contains(&0) || cfg.batches.contains(&0) {
        return Err("--writers and --batches must be positive".into());
    }
    Ok(Parsed::Run(Box::new(cfg)))
}
