//! SLOWLOG and LATENCY data: commands slower than `slowlog-log-slower-than` (µs) go into
//! a bounded log of `slowlog-max-len` entries; with `latency-monitor-threshold` (ms) >
//! 0, commands at or above it are latency spikes of the event "command".

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

/// Arguments kept per entry (Redis keeps 32, the last one summarising the rest).
const MAX_ARGS: usize = 32;
/// Bytes kept per argument.
const MAX_ARG_LEN: usize = 128;
/// Samples kept per latency event.
const LATENCY_HISTORY: usize = 160;

/// One slow command.
#[derive(Debug, Clone)]
pub struct SlowEntry {
    /// Increasing id.
    pub id: u64,
    /// Unix seconds when it ran.
    pub unix: u64,
    /// Duration in microseconds.
    pub usec: u64,
    /// The (trimmed) arguments.
    pub args: Vec<Bytes>,
    /// Client address.
    pub addr: String,
    /// Client name.
    pub name: String,
}

/// The slow log and latency monitor with their settings.
#[derive(Debug)]
pub struct SlowLog {
    /// `slowlog-log-slower-than` in µs (negative: off, 0: every command).
    pub slower_than: AtomicI64,
    /// `slowlog-max-len`.
    pub max_len: AtomicU64,
    /// `latency-monitor-threshold` in ms (0: off).
    pub latency_threshold: AtomicU64,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<SlowEntry>>,
    latency: Mutex<HashMap<&'static str, VecDeque<(u64, u64)>>>,
}

impl Default for SlowLog {
    fn default() -> Self {
        SlowLog {
            slower_than: AtomicI64::new(10_000),
            max_len: AtomicU64::new(128),
            latency_threshold: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::new()),
            latency: Mutex::new(HashMap::new()),
        }
    }
}

impl SlowLog {
    /// True if either log may record commands (the dispatcher then keeps arguments).
    pub fn enabled(&self) -> bool {
        self.slower_than.load(Ordering::Relaxed) >= 0
            || self.latency_threshold.load(Ordering::Relaxed) > 0
    }

    /// True if a command of `usec` goes into either log.
    pub fn qualifies(&self, usec: u64) -> bool {
        let t = self.slower_than.load(Ordering::Relaxed);
        let lat = self.latency_threshold.load(Ordering::Relaxed);
        (t >= 0 && usec >= t.unsigned_abs()) || (lat > 0 && usec / 1000 >= lat)
    }

    /// Considers one finished command for both logs.
    pub fn observe(&self, args: &[Bytes], usec: u64, unix: u64, addr: &str, name: &str) {
        let threshold = self.slower_than.load(Ordering::Relaxed);
        if threshold >= 0 && usec >= threshold.unsigned_abs() {
            self.push(args, usec, unix, addr, name);
        }
        let lat = self.latency_threshold.load(Ordering::Relaxed);
        let ms = usec / 1000;
        if lat > 0 && ms >= lat {
            let mut g = self.latency.lock();
            let h = g.entry("command").or_default();
            if h.len() >= LATENCY_HISTORY {
                h.pop_front();
            }
            h.push_back((unix, ms));
        }
    }

    fn push(&self, args: &[Bytes], usec: u64, unix: u64, addr: &str, name: &str) {
        let max = usize::try_from(self.max_len.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        if max == 0 {
            return;
        }
        let mut kept: Vec<Bytes> = Vec::with_capacity(args.len().min(MAX_ARGS));
        let secrets = super::secrets::secrets(args);
        for (i, a) in args.iter().enumerate() {
            if i == MAX_ARGS - 1 && args.len() > MAX_ARGS {
                let more = args.len() - i;
                kept.push(Bytes::from(format!("... ({more} more arguments)")));
                break;
            }
            if secrets.contains(i) {
                kept.push(Bytes::from_static(super::secrets::REDACTED.as_bytes()));
            } else if a.len() > MAX_ARG_LEN {
                let mut t = a.slice(..MAX_ARG_LEN).to_vec();
                t.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_ARG_LEN).as_bytes(),
                );
                kept.push(Bytes::from(t));
            } else {
                kept.push(a.clone());
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut g = self.entries.lock();
        g.push_front(SlowEntry {
            id,
            unix,
            usec,
            args: kept,
            addr: addr.to_string(),
            name: name.to_string(),
        });
        g.truncate(max);
    }

    /// The newest `n` entries, newest first.
    pub fn get(&self, n: usize) -> Vec<SlowEntry> {
        self.entries.lock().iter().take(n).cloned().collect()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// SLOWLOG RESET.
    pub fn reset(&self) {
        self.entries.lock().clear();
    }

    /// Applies a new `slowlog-max-len`, dropping the oldest entries beyond it.
    pub fn set_max_len(&self, n: u64) {
        self.max_len.store(n, Ordering::Relaxed);
        self.entries
            .lock()
            .truncate(usize::try_from(n).unwrap_or(usize::MAX));
    }

    /// LATENCY LATEST rows: (event, last unix, last ms, max ms).
    pub fn latency_latest(&self) -> Vec<(&'static str, u64, u64, u64)> {
        self.latency
            .lock()
            .iter()
            .filter_map(|(ev, h)| {
                let (t, ms) = *h.back()?;
                let max = h.iter().map(|(_, m)| *m).max().unwrap_or(ms);
                Some((*ev, t, ms, max))
            })
            .collect()
    }

    /// LATENCY HISTORY of `event`: (unix, ms) oldest first.
    pub fn latency_history(&self, event: &str) -> Vec<(u64, u64)> {
        self.latency
            .lock()
            .get(event)
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default()
    }

    /// LATENCY RESET of the named events (all when empty); returns how many it reset.
    pub fn latency_reset(&self, events: &[String]) -> usize {
        let mut g = self.latency.lock();
        if events.is_empty() {
            let n = g.len();
            g.clear();
            return n;
        }
        events
            .iter()
            .filter(|e| g.remove(e.as_str()).is_some())
            .count()
    }
}
