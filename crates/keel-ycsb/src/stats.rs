//! Per-operation latency histograms and error counts, merged across tasks into rows.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::workload::Op;

/// Highest latency tracked exactly (an hour, in microseconds); slower ones saturate.
const MAX_MICROS: u64 = 3_600_000_000;

/// Latencies and errors of one operation kind.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Latency of each successful operation, microseconds.
    pub hist: Histogram<u64>,
    /// Failed operations.
    pub errors: u64,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            hist: new_hist(),
            errors: 0,
        }
    }
}

fn new_hist() -> Histogram<u64> {
    // Constant bounds within hdrhistogram's limits: this cannot fail.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant histogram bounds are valid")
}

impl OpStats {
    /// Records one success taking `took`.
    pub fn record(&mut self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        self.hist.saturating_record(us);
    }

    /// Adds another task's figures.
    pub fn merge(&mut self, other: &OpStats) {
        self.errors += other.errors;
        // Same bounds on both sides: adding cannot go out of range.
        let _ = self.hist.add(&other.hist);
    }
}

/// Figures of every operation kind, indexed by `Op::index`.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// One entry per `Op::ALL`.
    pub ops: [OpStats; 5],
}

impl Stats {
    /// The entry of `op`.
    pub fn op_mut(&mut self, op: Op) -> &mut OpStats {
        &mut self.ops[op.index()]
    }

    /// Adds another task's figures.
    pub fn merge(&mut self, other: &Stats) {
        for (a, b) in self.ops.iter_mut().zip(&other.ops) {
            a.merge(b);
        }
    }

    /// Every operation kind's figures merged, for the TOTAL row.
    pub fn total(&self) -> OpStats {
        let mut t = OpStats::default();
        for s in &self.ops {
            t.merge(s);
        }
        t
    }

    /// Failed operations of every kind.
    pub fn errors(&self) -> u64 {
        self.ops.iter().map(|s| s.errors).sum()
    }
}

/// One line of results: one operation kind of one phase against one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Target label, e.g. "redis" or "keel-memory".
    pub target: String,
    /// Workload letter, or "load".
    pub workload: String,
    /// Operation name, or "TOTAL".
    pub op: String,
    /// Successful operations.
    pub count: u64,
    /// Failed operations.
    pub errors: u64,
    /// Wall time of the phase, seconds.
    pub elapsed_s: f64,
    /// Successful operations per second of the phase.
    pub ops_per_s: f64,
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// 99.9th percentile, microseconds.
    pub p999_us: u64,
    /// Slowest operation, microseconds.
    pub max_us: u64,
    /// Concurrent connections.
    pub threads: usize,
    /// Records in the store when the phase started.
    pub records: u64,
    /// Server CPU time (user + system) per successful operation of the whole phase,
    /// microseconds; only on TOTAL rows, and only when the server's pid was given.
    pub server_cpu_us_per_op: Option<f64>,
}

impl Row {
    /// A row from `stats` over a phase of `elapsed`.
    pub fn from_stats(
        target: &str,
        workload: &str,
        op: &str,
        stats: &OpStats,
        elapsed: Duration,
        threads: usize,
        records: u64,
    ) -> Row {
        let h = &stats.hist;
        let count = h.len();
        let secs = elapsed.as_secs_f64();
        Row {
            target: target.to_string(),
            workload: workload.to_string(),
            op: op.to_string(),
            count,
            errors: stats.errors,
            elapsed_s: secs,
            ops_per_s: if secs > 0.0 { count as f64 / secs } else { 0.0 },
            mean_us: if count > 0 { h.mean() } else { 0.0 },
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            threads,
            records,
            server_cpu_us_per_op: None,
        }
    }
}

/// Rows for every operation kind that ran, then a TOTAL row (carrying the server CPU
/// time per operation when `server_cpu` is known).
pub fn rows(
    target: &str,
    workload: &str,
    stats: &Stats,
    elapsed: Duration,
    threads: usize,
    records: u64,
    server_cpu: Option<Duration>,
) -> Vec<Row> {
    let mut out = Vec::new();
    for op in Op::ALL {
        let s = &stats.ops[op.index()];
        if !s.hist.is_empty() || s.errors > 0 {
            out.push(Row::from_stats(
                target,
                workload,
                op.name(),
                s,
                elapsed,
                threads,
                records,
            ));
        }
    }
    let mut total = Row::from_stats(
        target,
        workload,
        "TOTAL",
        &stats.total(),
        elapsed,
        threads,
        records,
    );
    total.server_cpu_us_per_op = server_cpu
        .filter(|_| total.count > 0)
        .map(|c| c.as_secs_f64() * 1e6 / total.count as f64);
    out.push(total);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_count_and_rank_latencies() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        for us in 1..=1000u64 {
            a.op_mut(Op::Read).record(Duration::from_micros(us));
        }
        b.op_mut(Op::Update).record(Duration::from_millis(5));
        b.op_mut(Op::Update).errors += 2;
        a.merge(&b);
        assert_eq!(a.errors(), 2);
        let r = rows(
            "t",
            "A",
            &a,
            Duration::from_secs(2),
            4,
            10,
            Some(Duration::from_millis(2002)),
        );
        let names: Vec<&str> = r.iter().map(|r| r.op.as_str()).collect();
        assert_eq!(names, ["READ", "UPDATE", "TOTAL"]);
        assert_eq!(r[0].count, 1000);
        assert!((r[0].ops_per_s - 500.0).abs() < 1e-9);
        assert!((495..=505).contains(&r[0].p50_us), "{}", r[0].p50_us);
        assert!((985..=995).contains(&r[0].p99_us), "{}", r[0].p99_us);
        assert_eq!(r[1].errors, 2);
        assert_eq!(r[2].count, 1001);
        assert_eq!(r[2].errors, 2);
        assert!(r[2].max_us >= 4995);
        assert_eq!(r[0].server_cpu_us_per_op, None);
        let cpu = r[2].server_cpu_us_per_op.expect("cpu per op");
        assert!((cpu - 2000.0).abs() < 1e-6, "{cpu}");
    }
}
