//! Per-command and per-error counters (INFO commandstats / errorstats), updated by the
//! dispatcher after every command and cleared by CONFIG RESETSTAT. Command counters are
//! a fixed array indexed by the command's position in [`commands::all`], one array per
//! thread stripe (see [`super::striped`]), so the hot path is a table lookup plus adds
//! on lines no other core writes; error codes are rare and sit behind a lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use keel_engine::name_table::NameTable;
use parking_lot::Mutex;

use super::commands;
use super::striped::{stripe, Stripe, STRIPES};

/// One command's counters.
#[derive(Debug, Default)]
pub struct CmdCounters {
    /// Calls executed.
    pub calls: AtomicU64,
    /// Total execution time in microseconds.
    pub usec: AtomicU64,
    /// Calls refused before execution (arity, NOAUTH, …).
    pub rejected: AtomicU64,
    /// Calls that executed and answered an error.
    pub failed: AtomicU64,
}

/// What happened to one command, for [`CommandStats::record_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallResult {
    /// Ran and answered a non-error reply.
    Ok,
    /// Ran and answered an error.
    Failed,
    /// Refused before running.
    Rejected,
}

/// Counters for every command plus error codes.
#[derive(Debug)]
pub struct CommandStats {
    names: &'static [&'static str],
    /// Per stripe, one counter set per command.
    stripes: Vec<Box<[CmdCounters]>>,
    errors: Mutex<BTreeMap<String, u64>>,
    total_errors: AtomicU64,
    /// Each command's sums at the last reset (see [`super::striped`] for why a reset
    /// is a baseline).
    base: Mutex<Vec<Sums>>,
}

/// One command's counters summed over the stripes: calls, usec, rejected, failed.
type Sums = [u64; 4];

fn index() -> &'static (Vec<&'static str>, NameTable<usize>) {
    static IDX: OnceLock<(Vec<&'static str>, NameTable<usize>)> = OnceLock::new();
    IDX.get_or_init(|| {
        let names: Vec<&'static str> = commands::all().map(|c| c.name()).collect();
        let map = NameTable::new(names.iter().enumerate().map(|(i, n)| (*n, i)));
        (names, map)
    })
}

impl Default for CommandStats {
    fn default() -> Self {
        let (names, _) = index();
        CommandStats {
            names: names.as_slice(),
            stripes: (0..STRIPES)
                .map(|_| names.iter().map(|_| CmdCounters::default()).collect())
                .collect(),
            errors: Mutex::new(BTreeMap::new()),
            total_errors: AtomicU64::new(0),
            base: Mutex::new(vec![[0; 4]; names.len()]),
        }
    }
}

/// The name of the command at commandstats index `i` (the order of [`commands::all`]).
pub fn command_name(i: usize) -> Option<&'static str> {
    index().0.get(i).copied()
}

impl CommandStats {
    /// Counts one call of the command at index `i` ([`commands::lookup_indexed`]).
    pub fn record_at(&self, i: usize, usec: u64, result: CallResult) {
        let Some((s, c)) = self.mine(i) else {
            return;
        };
        match result {
            CallResult::Rejected => s.add(&c.rejected, 1),
            CallResult::Ok | CallResult::Failed => {
                s.add(&c.calls, 1);
                s.add(&c.usec, usec);
                if result == CallResult::Failed {
                    s.add(&c.failed, 1);
                }
            }
        }
    }

    /// Marks one already counted call of `name` as failed (a write's error arrives
    /// after the call was counted).
    pub fn record_failed(&self, name: &str) {
        if let Some((s, c)) = index().1.get(name.as_bytes()).and_then(|i| self.mine(i)) {
            s.add(&c.failed, 1);
        }
    }

    /// Counts an error reply by its code (the first word: `ERR`, `WRONGTYPE`, …).
    pub fn record_error(&self, text: &str) {
        let code: String = text
            .split(' ')
            .next()
            .unwrap_or("ERR")
            .chars()
            .take(64)
            .collect();
        self.total_errors.fetch_add(1, Ordering::Relaxed);
        *self.errors.lock().entry(code).or_insert(0) += 1;
    }

    /// This thread's stripe and its counters of the command at index `i`.
    fn mine(&self, i: usize) -> Option<(Stripe, &CmdCounters)> {
        let s = stripe();
        self.stripes
            .get(s.index)
            .and_then(|c| c.get(i))
            .map(|c| (s, c))
    }

    /// Every command's counters summed over the stripes, since the start.
    fn sums(&self) -> Vec<Sums> {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (0..self.names.len())
            .map(|i| {
                let mut sum = [0u64; 4];
                for c in self.stripes.iter().filter_map(|s| s.get(i)) {
                    for (t, a) in sum
                        .iter_mut()
                        .zip([&c.calls, &c.usec, &c.rejected, &c.failed])
                    {
                        *t = t.wrapping_add(r(a));
                    }
                }
                sum
            })
            .collect()
    }

    /// (name, calls, usec, rejected, failed) of every command used since the last reset.
    pub fn snapshot(&self) -> Vec<(&'static str, u64, u64, u64, u64)> {
        let base = self.base.lock();
        self.names
            .iter()
            .zip(self.sums())
            .zip(base.iter())
            .map(|((n, now), was)| {
                let d = |k: usize| now[k].wrapping_sub(was[k]);
                (*n, d(0), d(1), d(2), d(3))
            })
            .filter(|(_, calls, _, rej, fail)| calls + rej + fail > 0)
            .collect()
    }

    /// Error codes and their counts.
    pub fn errors(&self) -> Vec<(String, u64)> {
        self.errors
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Error replies sent since the last reset.
    pub fn total_errors(&self) -> u64 {
        self.total_errors.load(Ordering::Relaxed)
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        *self.base.lock() = self.sums();
        self.errors.lock().clear();
        self.total_errors.store(0, Ordering::Relaxed);
    }
}
