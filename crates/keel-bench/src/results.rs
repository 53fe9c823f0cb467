//! Parsing of the CSV files `bench/compare.sh` writes: `raw.csv` (one row per
//! redis-benchmark run) and `mem.csv` (one row per server configuration loaded with keys).

use std::collections::HashMap;
use std::path::Path;

use crate::BenchError;

/// One redis-benchmark run against one server.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Part of the benchmark: `main`, `persist`, `engines` or `instr`.
    pub section: String,
    /// The settings pair within the section (`none`, `everysec`, `always`, `bitcask`, `lsm`).
    pub variant: String,
    /// `redis` or `keel`; in `engines`, `keel-<engine>` (see `summary::servers_of`).
    pub server: String,
    /// The redis-benchmark test (`set`, `lrange_100`, ...).
    pub test: String,
    /// Commands pipelined per client (`-P`).
    pub pipeline: u32,
    /// 1-based round number.
    pub round: u32,
    /// Requests in the run (`-n`).
    pub requests: u64,
    /// Requests per second as redis-benchmark reports it.
    pub rps: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Server user CPU seconds during the run, when measured.
    pub cpu_user_s: Option<f64>,
    /// Server kernel CPU seconds during the run, when measured.
    pub cpu_sys_s: Option<f64>,
    /// Server instructions during the run, when counted.
    pub instructions: Option<f64>,
    /// How the cost columns were measured (`proc-stat`, `callgrind`, `perf`).
    pub method: String,
}

/// RSS of one server configuration before and after loading keys.
#[derive(Debug, Clone, PartialEq)]
pub struct MemRow {
    /// `redis` or `keel`.
    pub server: String,
    /// keel's engine (`memory`, `bitcask`, `lsm`); `none` for Redis.
    pub engine: String,
    /// Keys loaded.
    pub keys: u64,
    /// VmRSS right after start, KiB.
    pub rss_empty_kb: u64,
    /// VmRSS after loading, KiB.
    pub rss_loaded_kb: u64,
}

impl MemRow {
    /// Resident bytes added per key loaded.
    pub fn bytes_per_key(&self) -> f64 {
        if self.keys == 0 {
            return 0.0;
        }
        (self.rss_loaded_kb as f64 - self.rss_empty_kb as f64) * 1024.0 / self.keys as f64
    }
}

/// The columns of a CSV file by name, for lookups that do not depend on column order.
struct Table<'a> {
    path: &'a Path,
    index: HashMap<&'a str, usize>,
}

impl<'a> Table<'a> {
    fn new(path: &'a Path, header: &'a str, required: &[&str]) -> Result<Self, BenchError> {
        let index: HashMap<&str, usize> = header
            .split(',')
            .enumerate()
            .map(|(i, name)| (name.trim(), i))
            .collect();
        for name in required {
            if !index.contains_key(name) {
                return Err(parse_error(
                    path,
                    1,
                    format!("header lacks column '{name}'"),
                ));
            }
        }
        Ok(Self { path, index })
    }

    fn field<'r>(
        &self,
        fields: &[&'r str],
        line: usize,
        name: &str,
    ) -> Result<&'r str, BenchError> {
        self.index
            .get(name)
            .and_then(|&i| fields.get(i))
            .map(|s| s.trim())
            .ok_or_else(|| parse_error(self.path, line, format!("missing field '{name}'")))
    }

    fn number<T: std::str::FromStr>(
        &self,
        fields: &[&str],
        line: usize,
        name: &str,
    ) -> Result<T, BenchError> {
        let text = self.field(fields, line, name)?;
        text.parse().map_err(|_| {
            parse_error(
                self.path,
                line,
                format!("'{name}' is not a number: '{text}'"),
            )
        })
    }

    fn optional(
        &self,
        fields: &[&str],
        line: usize,
        name: &str,
    ) -> Result<Option<f64>, BenchError> {
        match self
            .index
            .get(name)
            .and_then(|&i| fields.get(i))
            .map(|s| s.trim())
        {
            None | Some("") => Ok(None),
            Some(_) => self.number(fields, line, name).map(Some),
        }
    }
}

fn parse_error(path: &Path, line: usize, reason: String) -> BenchError {
    BenchError::Parse {
        path: path.to_path_buf(),
        line,
        reason,
    }
}

/// Lines with content, numbered from 1, the header first.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// Parses `raw.csv`; `path` only labels errors.
pub fn parse_runs(text: &str, path: &Path) -> Result<Vec<Run>, BenchError> {
    let mut it = lines(text);
    let Some((_, header)) = it.next() else {
        return Err(parse_error(path, 1, "empty file".into()));
    };
    let table = Table::new(
        path,
        header,
        &[
            "section", "variant", "server", "test", "pipeline", "round", "requests", "rps",
            "p50_ms", "p99_ms",
        ],
    )?;
    let mut runs = Vec::new();
    for (n, line) in it {
        let f: Vec<&str> = line.split(',').collect();
        let text = |name| table.field(&f, n, name).map(str::to_string);
        runs.push(Run {
            section: text("section")?,
            variant: text("variant")?,
            server: text("server")?,
            test: text("test")?,
            pipeline: table.number(&f, n, "pipeline")?,
            round: table.number(&f, n, "round")?,
            requests: table.number(&f, n, "requests")?,
            rps: table.number(&f, n, "rps")?,
            p50_ms: table.number(&f, n, "p50_ms")?,
            p99_ms: table.number(&f, n, "p99_ms")?,
            cpu_user_s: table.optional(&f, n, "cpu_user_s")?,
            cpu_sys_s: table.optional(&f, n, "cpu_sys_s")?,
            instructions: table.optional(&f, n, "instructions")?,
            method: table.field(&f, n, "method").unwrap_or("").to_string(),
        });
    }
    Ok(runs)
}

/// Parses `mem.csv`; `path` only labels errors.
pub fn parse_mem(text: &str, path: &Path) -> Result<Vec<MemRow>, BenchError> {
    let mut it = lines(text);
    let Some((_, header)) = it.next() else {
        return Ok(Vec::new());
    };
    let table = Table::new(
        path,
        header,
        &["server", "engine", "keys", "rss_empty_kb", "rss_loaded_kb"],
    )?;
    let mut rows = Vec::new();
    for (n, line) in it {
        let f: Vec<&str> = line.split(',').collect();
        rows.push(MemRow {
            server: table.field(&f, n, "server")?.to_string(),
            engine: table.field(&f, n, "engine")?.to_string(),
            keys: table.number(&f, n, "keys")?,
            rss_empty_kb: table.number(&f, n, "rss_empty_kb")?,
            rss_loaded_kb: table.number(&f, n, "rss_loaded_kb")?,
        });
    }
    Ok(rows)
}

/// Reads a file for one of the parsers, with the path in the error.
pub fn read(path: &Path) -> Result<String, BenchError> {
    std::fs::read_to_string(path).map_err(|source| BenchError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `text` to the file at `path`, replacing it.
pub fn write(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text).map_err(|source| BenchError::Io {
        op: "write",
        path: path.to_path_buf(),
        source,
    })
}
