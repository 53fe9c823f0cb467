//! YCSB's core workloads A–F: operation mix, request distribution and scan lengths.

use std::fmt;
use std::str::FromStr;

use crate::generator::Rng;

/// One kind of operation, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Read one record.
    Read,
    /// Overwrite one field of a record.
    Update,
    /// Insert a new record.
    Insert,
    /// Read a range of records.
    Scan,
    /// Read a record, then overwrite one field.
    ReadModifyWrite,
}

impl Op {
    /// Every kind, in report order.
    pub const ALL: [Op; 5] = [
        Op::Read,
        Op::Update,
        Op::Insert,
        Op::Scan,
        Op::ReadModifyWrite,
    ];

    /// Position in `ALL`.
    pub fn index(self) -> usize {
        match self {
            Op::Read => 0,
            Op::Update => 1,
            Op::Insert => 2,
            Op::Scan => 3,
            Op::ReadModifyWrite => 4,
        }
    }

    /// YCSB's name for the operation.
    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "READ",
            Op::Update => "UPDATE",
            Op::Insert => "INSERT",
            Op::Scan => "SCAN",
            Op::ReadModifyWrite => "READ-MODIFY-WRITE",
        }
    }
}

/// How the records an operation touches are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// Every record equally likely.
    Uniform,
    /// YCSB's scrambled zipfian (constant 0.99).
    Zipfian,
    /// The newest records most likely (skewed latest).
    Latest,
}

impl FromStr for Distribution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "uniform" => Ok(Distribution::Uniform),
            "zipfian" => Ok(Distribution::Zipfian),
            "latest" => Ok(Distribution::Latest),
            other => Err(format!(
                "unknown distribution {other:?} (uniform, zipfian, latest)"
            )),
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian => "zipfian",
            Distribution::Latest => "latest",
        })
    }
}

/// A workload: proportions of each operation (summing to 1), the request distribution
/// and the longest scan.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Letter, "A".."F".
    pub name: &'static str,
    /// Proportion of each `Op`, indexed by `Op::index`.
    pub mix: [f64; 5],
    /// Which records reads, updates and scans pick.
    pub distribution: Distribution,
    /// Scan lengths are uniform in 1..=max_scan_len.
    pub max_scan_len: u64,
}

impl Workload {
    /// YCSB core workload `letter` (case-insensitive).
    pub fn standard(letter: &str) -> Option<Workload> {
        let w = |name, read, update, insert, scan, rmw, distribution| Workload {
            name,
            mix: [read, update, insert, scan, rmw],
            distribution,
            max_scan_len: 100,
        };
        use Distribution::{Latest, Zipfian};
        Some(match letter.to_ascii_uppercase().as_str() {
            "A" => w("A", 0.5, 0.5, 0.0, 0.0, 0.0, Zipfian),
            "B" => w("B", 0.95, 0.05, 0.0, 0.0, 0.0, Zipfian),
            "C" => w("C", 1.0, 0.0, 0.0, 0.0, 0.0, Zipfian),
            "D" => w("D", 0.95, 0.0, 0.05, 0.0, 0.0, Latest),
            "E" => w("E", 0.0, 0.0, 0.05, 0.95, 0.0, Zipfian),
            "F" => w("F", 0.5, 0.0, 0.0, 0.0, 0.5, Zipfian),
            _ => return None,
        })
    }

    /// The proportion of `op`.
    pub fn proportion(&self, op: Op) -> f64 {
        self.mix[op.index()]
    }

    /// Picks the next operation.
    pub fn choose(&self, rng: &mut Rng) -> Op {
        let mut u = rng.next_f64();
        for op in Op::ALL {
            let p = self.proportion(op);
            if u < p {
                return op;
            }
            u -= p;
        }
        // Rounding left a sliver past the last proportion: give it to the last present op.
        Op::ALL
            .into_iter()
            .rev()
            .find(|op| self.proportion(*op) > 0.0)
            .unwrap_or(Op::Read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_workloads_have_ycsb_mixes() {
        for l in ["a", "B", "c", "D", "e", "F"] {
            let w = Workload::standard(l).expect("known");
            let sum: f64 = w.mix.iter().sum();
            assert!((sum - 1.0).abs() < 1e-9, "{l}: {sum}");
        }
        assert!(Workload::standard("G").is_none());
        let d = Workload::standard("d").expect("d");
        assert_eq!(d.distribution, Distribution::Latest);
        assert_eq!(d.proportion(Op::Insert), 0.05);
        let e = Workload::standard("E").expect("e");
        assert_eq!(e.proportion(Op::Scan), 0.95);
        assert_eq!(e.max_scan_len, 100);
    }

    #[test]
    fn choose_follows_the_mix() {
        let w = Workload::standard("B").expect("b");
        let mut rng = Rng::new(5);
        let mut counts = [0usize; 5];
        for _ in 0..100_000 {
            counts[w.choose(&mut rng).index()] += 1;
        }
        assert!((94_000..96_000).contains(&counts[Op::Read.index()]));
        assert!((4_000..6_000).contains(&counts[Op::Update.index()]));
        assert_eq!(counts[Op::Insert.index()] + counts[Op::Scan.index()], 0);
    }
}
