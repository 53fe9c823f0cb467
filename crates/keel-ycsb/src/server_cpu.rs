//! CPU time (user + system) a server process has used, from `/proc/<pid>/stat`: per
//! operation it is far steadier than throughput on a shared machine.

use std::path::PathBuf;
use std::time::Duration;

/// Why the CPU time of a process could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    /// The stat file could not be read.
    #[error("read {path}: {source}")]
    Io {
        /// The stat file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The stat file did not have the expected fields.
    #[error("parse {path}: {detail}")]
    Parse {
        /// The stat file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

/// User plus system CPU time process `pid` has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration, CpuError> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let text = std::fs::read_to_string(&path).map_err(|source| CpuError::Io {
        path: path.clone(),
        source,
    })?;
    let ticks = parse_ticks(&text).map_err(|detail| CpuError::Parse { path, detail })?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Ok(Duration::from_micros(ticks.saturating_mul(1_000_000) / hz))
}

/// utime + stime in clock ticks from a stat line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last ')'.
fn parse_ticks(stat: &str) -> Result<u64, String> {
    let close = stat
        .rfind(')')
        .ok_or_else(|| "no ')' after the command name".to_string())?;
    let rest = stat.get(close + 1..).unwrap_or_default();
    // After the name: field 3 (state) is index 0, so utime (14) and stime (15) are 11, 12.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize, name: &str| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| format!("{name} (field {}) missing or not a number", i + 3))
    };
    Ok(field(11, "utime")? + field(12, "stime")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime_after_odd_names() {
        let line =
            "1234 (a b) c)) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 4 0 100 1000 50";
        assert_eq!(parse_ticks(line), Ok(325));
        assert!(parse_ticks("1234 (x) S 1 2").is_err());
        assert!(parse_ticks("no name here").is_err());
    }

    #[test]
    fn own_process_cpu_time_grows_with_work() {
        let pid = std::process::id();
        let before = cpu_time(pid).expect("own stat");
        let t = std::time::Instant::now();
        let mut x = 0u64;
        // Spin (bounded by wall time) until the kernel has charged at least one tick.
        while t.elapsed() < Duration::from_secs(5) {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            if cpu_time(pid).expect("own stat") > before {
                break;
            }
        }
        assert!(cpu_time(pid).expect("own stat") > before);
        assert!(cpu_time(u32::MAX).is_err());
    }
}
