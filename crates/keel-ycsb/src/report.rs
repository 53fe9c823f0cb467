//! Output: the human table, JSON Lines and CSV rows, and the markdown summary built back
//! from CSV files of several runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::stats::Row;

/// CSV header line, in `csv_line`'s column order.
pub const CSV_HEADER: &str = "target,workload,op,count,errors,elapsed_s,ops_per_s,mean_us,p50_us,p99_us,p999_us,max_us,threads,records,server_cpu_us_per_op";

/// Why writing or reading a results file failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file could not be opened, read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A CSV line did not have the expected columns.
    #[error("{path}:{line}: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        detail: String,
    },
}

/// True when `label` is safe to put in CSV and JSON unquoted.
pub fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The human-readable table of `rows`.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<14} {:<5} {:<18} {:>9} {:>6} {:>10} {:>9} {:>8} {:>8} {:>9} {:>9}",
        "target",
        "wl",
        "op",
        "count",
        "errors",
        "ops/s",
        "mean_us",
        "p50_us",
        "p99_us",
        "p99.9_us",
        "max_us"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<14} {:<5} {:<18} {:>9} {:>6} {:>10.0} {:>9.0} {:>8} {:>8} {:>9} {:>9}",
            r.target,
            r.workload,
            r.op,
            r.count,
            r.errors,
            r.ops_per_s,
            r.mean_us,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.max_us
        );
    }
    s
}

/// One CSV line (no newline) of `r`.
pub fn csv_line(r: &Row) -> String {
    let cpu = r
        .server_cpu_us_per_op
        .map(|c| format!("{c:.2}"))
        .unwrap_or_default();
    format!(
        "{},{},{},{},{},{:.3},{:.1},{:.1},{},{},{},{},{},{},{cpu}",
        r.target,
        r.workload,
        r.op,
        r.count,
        r.errors,
        r.elapsed_s,
        r.ops_per_s,
        r.mean_us,
        r.p50_us,
        r.p99_us,
        r.p999_us,
        r.max_us,
        r.threads,
        r.records
    )
}

/// One JSON object (no newline) of `r`; labels are `valid_label`, so need no escaping.
pub fn json_line(r: &Row) -> String {
    let cpu = r
        .server_cpu_us_per_op
        .map(|c| format!("{c:.2}"))
        .unwrap_or_else(|| "null".into());
    format!(
        "{{\"target\":\"{}\",\"workload\":\"{}\",\"op\":\"{}\",\"count\":{},\"errors\":{},\"elapsed_s\":{:.3},\"ops_per_s\":{:.1},\"mean_us\":{:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"threads\":{},\"records\":{},\"server_cpu_us_per_op\":{cpu}}}",
        r.target,
        r.workload,
        r.op,
        r.count,
        r.errors,
        r.elapsed_s,
        r.ops_per_s,
        r.mean_us,
        r.p50_us,
        r.p99_us,
        r.p999_us,
        r.max_us,
        r.threads,
        r.records
    )
}

fn append(path: &Path, header: Option<&str>, lines: &[String]) -> Result<(), ReportError> {
    let io = |op, source| ReportError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let fresh = std::fs::metadata(path)
        .map(|m| m.len() == 0)
        .unwrap_or(true);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io("open", e))?;
    let mut text = String::new();
    if let (true, Some(h)) = (fresh, header) {
        text.push_str(h);
        text.push('\n');
    }
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    f.write_all(text.as_bytes()).map_err(|e| io("write", e))
}

/// Appends `rows` to the CSV file `path`, writing the header when the file is new.
pub fn append_csv(path: &Path, rows: &[Row]) -> Result<(), ReportError> {
    let lines: Vec<String> = rows.iter().map(csv_line).collect();
    append(path, Some(CSV_HEADER), &lines)
}

/// Appends `rows` to the JSON Lines file `path`, one object per line.
pub fn append_json(path: &Path, rows: &[Row]) -> Result<(), ReportError> {
    let lines: Vec<String> = rows.iter().map(json_line).collect();
    append(path, None, &lines)
}

/// Reads the rows of a CSV file written by `append_csv`.
pub fn read_csv(path: &Path) -> Result<Vec<Row>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line == CSV_HEADER {
            continue;
        }
        let perr = |detail: String| ReportError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            detail,
        };
        let c: Vec<&str> = line.split(',').collect();
        if c.len() != 15 {
            return Err(perr(format!("{} columns, expected 15", c.len())));
        }
        let u = |j: usize| {
            c[j].parse::<u64>()
                .map_err(|_| perr(format!("column {} not an integer: {:?}", j + 1, c[j])))
        };
        let f = |j: usize| {
            c[j].parse::<f64>()
                .map_err(|_| perr(format!("column {} not a number: {:?}", j + 1, c[j])))
        };
        rows.push(Row {
            target: c[0].to_string(),
            workload: c[1].to_string(),
            op: c[2].to_string(),
            count: u(3)?,
            errors: u(4)?,
            elapsed_s: f(5)?,
            ops_per_s: f(6)?,
            mean_us: f(7)?,
            p50_us: u(8)?,
            p99_us: u(9)?,
            p999_us: u(10)?,
            max_us: u(11)?,
            threads: u(12)? as usize,
            records: u(13)?,
            server_cpu_us_per_op: if c[14].is_empty() { None } else { Some(f(14)?) },
        });
    }
    Ok(rows)
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// Markdown tables comparing targets: overall throughput per workload (with the ratio to
/// the first target seen), then p50/p99/p99.9 per operation. Several rows for the same
/// (target, workload, op) — repeated rounds — are summarised by their median.
pub fn markdown(rows: &[Row]) -> String {
    let mut targets: Vec<String> = Vec::new();
    let mut workloads: Vec<String> = Vec::new();
    // (workload, op) -> target -> rows
    let mut cells: BTreeMap<(String, String), BTreeMap<String, Vec<&Row>>> = BTreeMap::new();
    for r in rows {
        if !targets.contains(&r.target) {
            targets.push(r.target.clone());
        }
        if !workloads.contains(&r.workload) {
            workloads.push(r.workload.clone());
        }
        cells
            .entry((r.workload.clone(), r.op.clone()))
            .or_default()
            .entry(r.target.clone())
            .or_default()
            .push(r);
    }
    let median = |v: &[&Row], f: &dyn Fn(&Row) -> f64| -> f64 {
        let mut xs: Vec<f64> = v.iter().map(|r| f(r)).collect();
        xs.sort_by(|a, b| a.total_cmp(b));
        xs.get(xs.len() / 2).copied().unwrap_or(0.0)
    };
    let mut s = String::new();
    let base = targets.first().cloned().unwrap_or_default();
    let _ = writeln!(
        s,
        "Throughput, all operations (ops/s; in brackets: ratio to {base})\n"
    );
    let _ = writeln!(s, "| Workload | {} |", targets.join(" | "));
    let _ = writeln!(s, "|---|{}", "---:|".repeat(targets.len()));
    for w in &workloads {
        let Some(by_t) = cells.get(&(w.clone(), "TOTAL".to_string())) else {
            continue;
        };
        let base_v = by_t.get(&base).map(|v| median(v, &|r| r.ops_per_s));
        let mut line = format!("| {w} |");
        for t in &targets {
            match by_t.get(t) {
                Some(v) => {
                    let x = median(v, &|r| r.ops_per_s);
                    let errs: u64 = v.iter().map(|r| r.errors).sum();
                    let _ = write!(line, " {}", thousands(x));
                    if let Some(b) = base_v.filter(|b| *b > 0.0 && t != &base) {
                        let _ = write!(line, " ({:.2}×)", x / b);
                    }
                    if errs > 0 {
                        let _ = write!(line, " **{errs} errors**");
                    }
                    line.push_str(" |");
                }
                None => line.push_str(" – |"),
            }
        }
        let _ = writeln!(s, "{line}");
    }
    if rows.iter().any(|r| r.server_cpu_us_per_op.is_some()) {
        let _ = writeln!(
            s,
            "\nServer CPU time (user + system) per operation, µs; in brackets: ratio to {base}\n"
        );
        let _ = writeln!(s, "| Workload | {} |", targets.join(" | "));
        let _ = writeln!(s, "|---|{}", "---:|".repeat(targets.len()));
        let cpu_of = |v: &Vec<&Row>| -> Option<f64> {
            let known: Vec<&Row> = v
                .iter()
                .copied()
                .filter(|r| r.server_cpu_us_per_op.is_some())
                .collect();
            (!known.is_empty()).then(|| median(&known, &|r| r.server_cpu_us_per_op.unwrap_or(0.0)))
        };
        for w in &workloads {
            let Some(by_t) = cells.get(&(w.clone(), "TOTAL".to_string())) else {
                continue;
            };
            let base_v = by_t.get(&base).and_then(cpu_of);
            let mut line = format!("| {w} |");
            for t in &targets {
                match by_t.get(t).and_then(cpu_of) {
                    Some(x) => {
                        let _ = write!(line, " {x:.1}");
                        if let Some(b) = base_v.filter(|b| *b > 0.0 && t != &base) {
                            let _ = write!(line, " ({:.2}×)", x / b);
                        }
                        line.push_str(" |");
                    }
                    None => line.push_str(" – |"),
                }
            }
            let _ = writeln!(s, "{line}");
        }
    }
    let _ = writeln!(s, "\nLatency per operation, ms: p50 / p99 / p99.9\n");
    let _ = writeln!(s, "| Workload | Op | {} |", targets.join(" | "));
    let _ = writeln!(s, "|---|---|{}", "---:|".repeat(targets.len()));
    for w in &workloads {
        for ((cw, op), by_t) in &cells {
            if cw != w || op == "TOTAL" {
                continue;
            }
            let mut line = format!("| {w} | {op} |");
            for t in &targets {
                match by_t.get(t) {
                    Some(v) => {
                        let p = |f: &dyn Fn(&Row) -> f64| ms(median(v, f) as u64);
                        let _ = write!(
                            line,
                            " {} / {} / {} |",
                            p(&|r| r.p50_us as f64),
                            p(&|r| r.p99_us as f64),
                            p(&|r| r.p999_us as f64)
                        );
                    }
                    None => line.push_str(" – |"),
                }
            }
            let _ = writeln!(s, "{line}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(target: &str, wl: &str, op: &str, ops: f64, p99: u64) -> Row {
        Row {
            target: target.into(),
            workload: wl.into(),
            op: op.into(),
            count: 100,
            errors: 0,
            elapsed_s: 1.5,
            ops_per_s: ops,
            mean_us: 12.5,
            p50_us: 10,
            p99_us: p99,
            p999_us: p99 * 2,
            max_us: p99 * 3,
            threads: 4,
            records: 200,
            server_cpu_us_per_op: (op == "TOTAL").then_some(12.25),
        }
    }

    #[test]
    fn csv_round_trips_and_rejects_bad_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.csv");
        let rows = vec![
            row("redis", "A", "READ", 1000.0, 900),
            row("keel", "A", "TOTAL", 2000.0, 800),
        ];
        append_csv(&path, &rows[..1]).expect("write");
        append_csv(&path, &rows[1..]).expect("append");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().filter(|l| *l == CSV_HEADER).count(), 1);
        assert_eq!(read_csv(&path).expect("parse"), rows);
        std::fs::write(&path, format!("{CSV_HEADER}\nredis,A,READ,1\n")).expect("write");
        assert!(matches!(
            read_csv(&path),
            Err(ReportError::Parse { line: 2, .. })
        ));
    }

    #[test]
    fn markdown_shows_ratio_to_the_first_target() {
        let rows = vec![
            row("redis", "A", "TOTAL", 1000.0, 900),
            row("redis", "A", "READ", 500.0, 900),
            row("keel", "A", "TOTAL", 1500.0, 800),
            row("keel", "A", "READ", 750.0, 1200),
        ];
        let md = markdown(&rows);
        assert!(md.contains("| Workload | redis | keel |"), "{md}");
        assert!(md.contains("| A | 1,000 | 1,500 (1.50×) |"), "{md}");
        assert!(md.contains("| A | 12.2 | 12.2 (1.00×) |"), "{md}");
        assert!(
            md.contains("| A | READ | 0.01 / 0.90 / 1.80 | 0.01 / 1.20 / 2.40 |"),
            "{md}"
        );
    }

    #[test]
    fn labels_are_checked() {
        assert!(valid_label("keel-memory"));
        assert!(!valid_label("a,b"));
        assert!(!valid_label("a\"b"));
        assert!(!valid_label(""));
    }
}
