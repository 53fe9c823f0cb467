//! What the benchmark ran on: CPU count, memory, kernel, compiler, and the file system
//! that holds the temporary directory.

use std::path::{Path, PathBuf};

/// Facts about the machine, for the report header.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPUs available to this process.
    pub nproc: usize,
    /// CPU model name.
    pub cpu: String,
    /// Total RAM.
    pub mem_total: String,
    /// Kernel release.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// The temporary directory the engines and the raw tests used.
    pub tmp_dir: PathBuf,
    /// Where that directory comes from (repo target dir, $TMPDIR, or --dir).
    pub tmp_origin: String,
    /// File system type, source device and mount point of the temporary directory.
    pub tmp_fs: String,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn meminfo_total() -> String {
    read("/proc/meminfo")
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    read("/proc/cpuinfo")
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn rustc_version() -> String {
    std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The mount whose mount point is the longest prefix of `dir`, from /proc/self/mountinfo:
/// "fstype on source (mounted at point)".
fn fs_of(dir: &Path) -> String {
    let Some(info) = read("/proc/self/mountinfo") else {
        return "unknown".into();
    };
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mount_point) = fields.get(4) else {
            continue;
        };
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(fstype), Some(source)) = (fields.get(dash + 1), fields.get(dash + 2)) else {
            continue;
        };
        if dir.starts_with(mount_point) {
            let len = mount_point.len();
            if best.as_ref().is_none_or(|(l, _)| len >= *l) {
                best = Some((
                    len,
                    format!("{fstype} on {source} (mounted at {mount_point})"),
                ));
            }
        }
    }
    best.map(|(_, s)| s).unwrap_or_else(|| "unknown".into())
}

/// Collects the facts; `tmp_dir` must exist.
pub fn probe(tmp_dir: &Path, tmp_origin: &str) -> Machine {
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu: cpu_model(),
        mem_total: meminfo_total(),
        kernel: read("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into()),
        rustc: rustc_version(),
        tmp_dir: tmp_dir.to_path_buf(),
        tmp_origin: tmp_origin.to_string(),
        tmp_fs: fs_of(tmp_dir),
    }
}

/// The 1, 5 and 15 minute load averages, as the kernel prints them.
pub fn load_average() -> String {
    read("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// CPU time (user + system, all threads) this process has used so far, from
/// `/proc/self/stat` (clock ticks of 10 ms, the fixed USER_HZ of that file).
pub fn process_cpu() -> Option<std::time::Duration> {
    let stat = read("/proc/self/stat")?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(std::time::Duration::from_millis((utime + stime) * 10))
}

/// CPU time used between two [`process_cpu`] readings.
pub fn cpu_between(
    before: Option<std::time::Duration>,
    after: Option<std::time::Duration>,
) -> Option<std::time::Duration> {
    Some(after?.saturating_sub(before?))
}
