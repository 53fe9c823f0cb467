//! Medians per (section, variant, test, pipeline, server) and the pairing of a baseline
//! (redis, or keel's memory engine) with keel.

use crate::results::Run;

/// Medians of one server's runs of one configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Runs the medians are taken over.
    pub runs: usize,
    /// Median requests per second.
    pub rps: f64,
    /// Median p50 latency, milliseconds.
    pub p50_ms: f64,
    /// Median p99 latency, milliseconds.
    pub p99_ms: f64,
    /// Median server CPU time (user + kernel) per request, microseconds.
    pub cpu_us_per_req: Option<f64>,
    /// Median server instructions per request.
    pub instr_per_req: Option<f64>,
    /// How the cost was measured.
    pub method: String,
}

/// One configuration with both servers side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `main`, `persist`, `engines` or `instr`.
    pub section: String,
    /// Settings pair within the section (in `engines`, the engine set against memory).
    pub variant: String,
    /// redis-benchmark test.
    pub test: String,
    /// Pipeline depth.
    pub pipeline: u32,
    /// The baseline's medians, when it ran: Redis's, or in the `engines` section keel's
    /// memory engine's.
    pub base: Option<Cell>,
    /// keel's medians, when it ran (in `engines`, the variant's engine).
    pub keel: Option<Cell>,
}

/// The `server` column values of a section's baseline and of keel: `engines` sets a keel
/// engine (`keel-<variant>`) against keel's memory engine, every other section keel
/// against Redis.
pub fn servers_of(section: &str, variant: &str) -> (String, String) {
    if section == "engines" {
        ("keel-memory".into(), format!("keel-{variant}"))
    } else {
        ("redis".into(), "keel".into())
    }
}

impl Row {
    /// keel's throughput over the baseline's.
    pub fn rps_ratio(&self) -> Option<f64> {
        ratio(self.keel.as_ref()?.rps, self.base.as_ref()?.rps)
    }

    /// keel's instructions per request over the baseline's.
    pub fn instr_ratio(&self) -> Option<f64> {
        ratio(
            self.keel.as_ref()?.instr_per_req?,
            self.base.as_ref()?.instr_per_req?,
        )
    }

    /// keel's CPU time per request over the baseline's.
    pub fn cpu_ratio(&self) -> Option<f64> {
        ratio(
            self.keel.as_ref()?.cpu_us_per_req?,
            self.base.as_ref()?.cpu_us_per_req?,
        )
    }
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// The median of the values (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

fn cell(runs: &[&Run]) -> Option<Cell> {
    if runs.is_empty() {
        return None;
    }
    let of =
        |f: fn(&Run) -> Option<f64>| median(&runs.iter().filter_map(|r| f(r)).collect::<Vec<_>>());
    Some(Cell {
        runs: runs.len(),
        rps: of(|r| Some(r.rps))?,
        p50_ms: of(|r| Some(r.p50_ms))?,
        p99_ms: of(|r| Some(r.p99_ms))?,
        cpu_us_per_req: of(|r| {
            let cpu = r.cpu_user_s? + r.cpu_sys_s?;
            (r.requests > 0).then(|| cpu * 1e6 / r.requests as f64)
        }),
        instr_per_req: of(|r| {
            let i = r.instructions?;
            (r.requests > 0).then(|| i / r.requests as f64)
        }),
        method: runs.first().map(|r| r.method.clone()).unwrap_or_default(),
    })
}

/// Groups runs into rows, in the order configurations first appear.
pub fn summarize(runs: &[Run]) -> Vec<Row> {
    let mut keys: Vec<(&str, &str, &str, u32)> = Vec::new();
    for r in runs {
        let k = (
            r.section.as_str(),
            r.variant.as_str(),
            r.test.as_str(),
            r.pipeline,
        );
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(section, variant, test, pipeline)| {
            let of = |server: &str| {
                let v: Vec<&Run> = runs
                    .iter()
                    .filter(|r| {
                        r.section == section
                            && r.variant == variant
                            && r.test == test
                            && r.pipeline == pipeline
                            && r.server == server
                    })
                    .collect();
                cell(&v)
            };
            let (base, keel) = servers_of(section, variant);
            Row {
                section: section.to_string(),
                variant: variant.to_string(),
                test: test.to_string(),
                pipeline,
                base: of(&base),
                keel: of(&keel),
            }
        })
        .collect()
}
