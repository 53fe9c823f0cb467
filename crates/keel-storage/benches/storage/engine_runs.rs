//! Per-engine measurements through `keel_storage::open` (so any engine behind the trait
//! is measured the same way): puts, synced writers, gets, scans, open, memory, merge.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use keel_storage::{
    Direction, EngineKind, OpenOptions, ScanRange, Storage, StorageError, SyncPolicy, WriteBatch,
    WriteOptions,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::alloc_count::{live_blocks, live_bytes};
use crate::cli::Config;
use crate::figures::{
    GetFigures, Latency, MemFigures, MergeFigures, OpenFigure, Rate, ScanFigures, SyncFigures,
};
use crate::machine::{cpu_between, process_cpu};
use crate::physical::{self, RawSync};
use crate::sync_writers;
use crate::workload::{key, random_existing_keys, random_scan_start, Values, KEY_LEN, VALUE_LEN};

/// Length of one raw or engine slice of a synced configuration (when interleaving).
const SLICE_SECS: f64 = 0.25;

/// Cache budget of the "cached" opens: large enough for every value of 1M keys.
pub const CACHED_BYTES: u64 = 512 * 1024 * 1024;

/// Whether an engine could be measured.
#[derive(Debug, Clone, PartialEq)]
pub enum Availability {
    /// It opened; figures follow.
    Ready,
    /// `open` answered that the engine is not built yet.
    NotBuilt(String),
    /// `open` failed for another reason.
    Failed(String),
}

/// Everything measured for one engine; None where not measured.
#[derive(Debug, Clone)]
pub struct EngineResult {
    /// The engine.
    pub kind: EngineKind,
    /// Whether it could be opened.
    pub availability: Availability,
    /// Unsynced single-writer puts while loading.
    pub put_nosync: Option<Rate>,
    /// Synced puts, one entry per (writers, batch) configuration.
    pub sync: Vec<SyncFigures>,
    /// Heap held after loading.
    pub mem: Option<MemFigures>,
    /// Time to write the memory engine's checkpoint of the loaded keys.
    pub checkpoint: Option<std::time::Duration>,
    /// The open after loading (memory: from its checkpoint; bitcask: with hints).
    pub open: Option<OpenFigure>,
    /// Bitcask's open after deleting its hint files.
    pub open_no_hints: Option<OpenFigure>,
    /// Gets with a warm cache.
    pub get_cached: Option<GetFigures>,
    /// Gets that bypass keel's caches.
    pub get_cold: Option<GetFigures>,
    /// Forward scans.
    pub scan: Option<ScanFigures>,
    /// Merge/compaction of a set with garbage.
    pub merge: Option<MergeFigures>,
    /// Segment size used for the merge set (bitcask).
    pub merge_segment_bytes: Option<u64>,
    /// Problems met while measuring (a failed section does not stop the others).
    pub notes: Vec<String>,
}

impl EngineResult {
    fn new(kind: EngineKind) -> EngineResult {
        EngineResult {
            kind,
            availability: Availability::Ready,
            put_nosync: None,
            sync: Vec::new(),
            mem: None,
            checkpoint: None,
            open: None,
            open_no_hints: None,
            get_cached: None,
            get_cold: None,
            scan: None,
            merge: None,
            merge_segment_bytes: None,
            notes: Vec::new(),
        }
    }
}

/// Open options of every bench store: background merge off (the bench decides when to
/// merge), the given cache budget (bitcask's values; lsm's blocks and rows, half each, as
/// the server splits it) and sync policy.
fn options(kind: EngineKind, cache_bytes: u64, policy: SyncPolicy) -> OpenOptions {
    let mut o = OpenOptions::new(kind)
        .sync_policy(policy)
        .cache_bytes(cache_bytes);
    o.bitcask.auto_merge = false;
    o
}

fn open_store(dir: &Path, opts: &OpenOptions) -> Result<Arc<dyn Storage>, String> {
    keel_storage::open(dir, opts).map_err(|e| format!("open {}: {e}", dir.display()))
}

fn close_store(store: Arc<dyn Storage>) -> Result<(), String> {
    store.close().map_err(|e| format!("close: {e}"))
}

fn fresh_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
    }
    Ok(())
}

fn put(store: &dyn Storage, i: u64, value_index: u64, values: &Values) -> Result<(), String> {
    let mut wb = WriteBatch::with_capacity(1);
    wb.put(
        Bytes::copy_from_slice(&key(i)),
        Bytes::copy_from_slice(values.get(value_index)),
    );
    store
        .write(wb, WriteOptions::DEFAULT)
        .map(|_| ())
        .map_err(|e| format!("put #{i}: {e}"))
}

/// Puts keys `range` (value index = key index + `value_shift`) in batches of 100.
fn put_range(
    store: &dyn Storage,
    range: std::ops::Range<u64>,
    value_shift: u64,
    values: &Values,
) -> Result<(), String> {
    const BATCH: u64 = 100;
    let mut i = range.start;
    while i < range.end {
        let end = (i + BATCH).min(range.end);
        let mut wb = WriteBatch::with_capacity((end - i) as usize);
        for j in i..end {
            wb.put(
                Bytes::copy_from_slice(&key(j)),
                Bytes::copy_from_slice(values.get(j + value_shift)),
            );
        }
        store
            .write(wb, WriteOptions::DEFAULT)
            .map_err(|e| format!("put batch at #{i}: {e}"))?;
        i = end;
    }
    Ok(())
}

/// Opens `kind` once in a scratch directory to learn whether it exists in this build.
fn probe(kind: EngineKind, dir: &Path) -> Availability {
    let res = keel_storage::open(dir, &options(kind, 0, SyncPolicy::No));
    let out = match res {
        Ok(store) => match store.close() {
            Ok(()) => Availability::Ready,
            Err(e) => Availability::Failed(format!("close after probe: {e}")),
        },
        Err(StorageError::InvalidArgument(msg)) if msg.contains("not built") => {
            Availability::NotBuilt(msg)
        }
        Err(e) => Availability::Failed(e.to_string()),
    };
    let _ = std::fs::remove_dir_all(dir);
    out
}

/// Measures `kind` as far as `cfg` asks, in directories under `base`.
pub fn run_engine(kind: EngineKind, cfg: &Config, base: &Path, values: &Values) -> EngineResult {
    let mut r = EngineResult::new(kind);
    r.availability = probe(kind, &base.join(format!("{kind}-probe")));
    if r.availability != Availability::Ready {
        progress!("{kind}: skipped ({:?})", r.availability);
        return r;
    }
    if cfg.sections.sync {
        if let Err(e) = sync_section(&mut r, cfg, base, values) {
            r.notes.push(format!("synced puts: {e}"));
        }
    }
    if cfg.sections.needs_load() {
        if let Err(e) = load_section(&mut r, cfg, base, values) {
            r.notes.push(format!("load/get/scan/open: {e}"));
        }
    }
    if cfg.sections.merge && kind != EngineKind::Memory {
        if let Err(e) = merge_section(&mut r, cfg, base, values) {
            r.notes.push(format!("merge: {e}"));
        }
    }
    r
}

fn sync_section(
    r: &mut EngineResult,
    cfg: &Config,
    base: &Path,
    values: &Values,
) -> Result<(), String> {
    let kind = r.kind;
    let dir = base.join(format!("{kind}-sync"));
    fresh_dir(&dir)?;
    let store = open_store(&dir, &options(kind, 0, SyncPolicy::Always))?;
    let mut run_id = 0u64;
    // The disk is shared and its fsync rate drifts by several times within minutes, so
    // the raw reference is measured in slices interleaved with the engine's slices.
    let interleave = kind != EngineKind::Memory && cfg.sections.raw;
    let slices = if interleave {
        ((cfg.sync_secs / SLICE_SECS).round() as usize).max(1)
    } else {
        1
    };
    let slice_secs = cfg.sync_secs / slices as f64;
    for &batch in &cfg.batches {
        let mut raw_file = if interleave {
            Some(
                physical::RawFile::create(base, batch, cfg.record_bytes)
                    .map_err(|e| format!("create raw file: {e}"))?,
            )
        } else {
            None
        };
        for &writers in &cfg.writers {
            run_id += 1;
            progress!("{kind}: synced puts, {writers} writers x batch {batch}");
            let mut total: Option<SyncFigures> = None;
            let mut raw: Option<RawSync> = None;
            for _ in 0..slices {
                if let Some(rf) = raw_file.as_mut() {
                    let r = rf
                        .run(slice_secs)
                        .map_err(|e| format!("raw append+fdatasync batch {batch}: {e}"))?;
                    raw = Some(raw.map_or(r, |acc| acc.plus(&r)));
                }
                let f = sync_writers::run(&*store, writers, batch, slice_secs, run_id, values)?;
                total = Some(match total {
                    None => f,
                    Some(mut t) => {
                        t.batches.ops += f.batches.ops;
                        t.batches.elapsed += f.batches.elapsed;
                        t
                    }
                });
            }
            if let Some(mut t) = total {
                t.raw = raw;
                r.sync.push(t);
            }
        }
    }
    close_store(store)?;
    fresh_dir(&dir)
}

fn load_section(
    r: &mut EngineResult,
    cfg: &Config,
    base: &Path,
    values: &Values,
) -> Result<(), String> {
    let kind = r.kind;
    let n = cfg.keys;
    let dir = base.join(format!("{kind}-load"));
    fresh_dir(&dir)?;
    // Caches off while loading: bitcask's keydir is then all its heap holds per key.
    let store = open_store(&dir, &options(kind, 0, SyncPolicy::No))?;
    progress!("{kind}: loading {n} keys (no sync, 1 writer)");
    let (bytes0, blocks0) = (live_bytes(), live_blocks());
    let t = Instant::now();
    for i in 0..n {
        put(&*store, i, i, values)?;
    }
    let elapsed = t.elapsed();
    let (bytes1, blocks1) = (live_bytes(), live_blocks());
    r.put_nosync = Some(Rate { ops: n, elapsed });
    r.mem = Some(MemFigures {
        keys: n,
        bytes: bytes1 - bytes0,
        blocks: blocks1 - blocks0,
    });
    let live = store.stats().live_keys;
    if live != n {
        r.notes.push(format!(
            "after loading {n} keys the store reports {live} live keys"
        ));
    }

    let mut reopen_dir = dir.clone();
    if kind == EngineKind::Memory {
        let ck = base.join("memory-checkpoint");
        fresh_dir(&ck)?;
        progress!("{kind}: checkpoint");
        let t = Instant::now();
        store
            .checkpoint(&ck)
            .map_err(|e| format!("checkpoint: {e}"))?;
        r.checkpoint = Some(t.elapsed());
        reopen_dir = ck;
    }
    close_store(store)?;

    let hints = files_with_suffix(&dir, ".hint");
    let label = match kind {
        EngineKind::Memory => "from its checkpoint".to_string(),
        EngineKind::Bitcask => format!(
            "with hints: {} for {}",
            count(hints.len(), "hint file"),
            count(files_with_suffix(&dir, ".data").len(), "data file")
        ),
        EngineKind::Lsm => "after close".to_string(),
    };
    if kind == EngineKind::Bitcask && hints.is_empty() {
        r.notes.push(
            "no *.hint files existed after close, so the 'with hints' open read the segments"
                .into(),
        );
    }
    progress!("{kind}: open {label}");
    let (store, figure) = timed_open(
        &reopen_dir,
        &options(kind, CACHED_BYTES, SyncPolicy::No),
        label,
    )?;
    r.open = Some(figure);

    let mut rng = StdRng::seed_from_u64(42);
    if cfg.sections.get {
        // The memory engine has no cache to fill.
        if kind != EngineKind::Memory {
            progress!("{kind}: warm pass");
            let warm_misses = warm(&*store, n)?;
            if warm_misses > 0 {
                r.notes
                    .push(format!("warm pass: {warm_misses} of {n} keys not found"));
            }
        }
        progress!("{kind}: cached gets");
        r.get_cached = Some(gets(&*store, cfg, &mut rng, n)?);
    }
    if cfg.sections.scan {
        progress!("{kind}: scans");
        r.scan = Some(scans(&*store, cfg, &mut rng, n)?);
    }
    close_store(store)?;

    match kind {
        EngineKind::Memory => {}
        EngineKind::Bitcask => {
            for h in &hints {
                std::fs::remove_file(h).map_err(|e| format!("remove {}: {e}", h.display()))?;
            }
            let label = format!("{} deleted first", count(hints.len(), "hint file"));
            progress!("{kind}: open {label}, cache off");
            let (store, figure) = timed_open(&dir, &options(kind, 0, SyncPolicy::No), label)?;
            r.open_no_hints = Some(figure);
            if cfg.sections.get {
                progress!("{kind}: cold gets");
                r.get_cold = Some(gets(&*store, cfg, &mut rng, n)?);
            }
            close_store(store)?;
        }
        EngineKind::Lsm => {
            if cfg.sections.get {
                progress!("{kind}: reopen with block cache 0, cold gets");
                let store = open_store(&dir, &options(kind, 0, SyncPolicy::No))?;
                r.get_cold = Some(gets(&*store, cfg, &mut rng, n)?);
                close_store(store)?;
            }
        }
    }
    fresh_dir(&dir)?;
    fresh_dir(&base.join("memory-checkpoint"))
}

/// Opens `dir`, timing the open and counting the heap it leaves allocated.
fn timed_open(
    dir: &Path,
    opts: &OpenOptions,
    label: String,
) -> Result<(Arc<dyn Storage>, OpenFigure), String> {
    let heap0 = live_bytes();
    let cpu0 = process_cpu();
    let t = Instant::now();
    let store = open_store(dir, opts)?;
    let elapsed = t.elapsed();
    let cpu = cpu_between(cpu0, process_cpu());
    let heap_bytes = live_bytes() - heap0;
    let live_keys = store.stats().live_keys;
    Ok((
        store,
        OpenFigure {
            label,
            elapsed,
            cpu,
            live_keys,
            heap_bytes,
        },
    ))
}

/// Reads every key once (fills value/block caches); returns how many were missing.
fn warm(store: &dyn Storage, n: u64) -> Result<u64, String> {
    let mut misses = 0;
    for i in 0..n {
        match store.get(&key(i)) {
            Ok(Some(v)) => {
                black_box(v);
            }
            Ok(None) => misses += 1,
            Err(e) => return Err(format!("get #{i}: {e}")),
        }
    }
    Ok(misses)
}

/// Upper bound on each get loop, so a slow path (e.g. lsm without block cache) cannot
/// stretch the run; the figures then cover the gets done so far.
const GET_LOOP_SECS: f64 = 6.0;

/// Counts a get's outcome; an error ends the loop.
fn check_get(got: keel_storage::Result<Option<Bytes>>, misses: &mut u64) -> Result<(), String> {
    match got {
        Ok(Some(v)) => {
            black_box(v);
            Ok(())
        }
        Ok(None) => {
            *misses += 1;
            Ok(())
        }
        Err(e) => Err(format!("get: {e}")),
    }
}

fn gets(store: &dyn Storage, cfg: &Config, rng: &mut StdRng, n: u64) -> Result<GetFigures, String> {
    let limit = std::time::Duration::from_secs_f64(GET_LOOP_SECS);
    let mut misses = 0u64;
    let keys = random_existing_keys(rng, n, cfg.get_ops);
    let mut done = 0u64;
    let t = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        if i % 1024 == 0 && t.elapsed() > limit {
            break;
        }
        check_get(store.get(k), &mut misses)?;
        done += 1;
    }
    let rate = Rate {
        ops: done,
        elapsed: t.elapsed(),
    };
    drop(keys);

    let sample = random_existing_keys(rng, n, cfg.latency_samples);
    let mut ns: Vec<u64> = Vec::with_capacity(sample.len());
    let begin = Instant::now();
    for (i, k) in sample.iter().enumerate() {
        if i % 1024 == 0 && begin.elapsed() > limit {
            break;
        }
        let t = Instant::now();
        let got = store.get(k);
        let d = t.elapsed();
        ns.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        check_get(got, &mut misses)?;
    }
    Ok(GetFigures {
        rate,
        latency: Latency::from_samples(&mut ns),
        samples: ns.len(),
        misses,
    })
}

fn scans(
    store: &dyn Storage,
    cfg: &Config,
    rng: &mut StdRng,
    n: u64,
) -> Result<ScanFigures, String> {
    let starts: Vec<_> = (0..cfg.scans)
        .map(|_| random_scan_start(rng, n, cfg.scan_len))
        .collect();
    let mut keys = 0u64;
    let t = Instant::now();
    for s in &starts {
        let range = ScanRange {
            start: Bound::Included(Bytes::copy_from_slice(s)),
            end: Bound::Unbounded,
        };
        for item in store.scan(range, Direction::Forward).take(cfg.scan_len) {
            let kv = item.map_err(|e| format!("scan: {e}"))?;
            black_box(kv);
            keys += 1;
        }
    }
    Ok(ScanFigures {
        rate: Rate {
            ops: starts.len() as u64,
            elapsed: t.elapsed(),
        },
        keys,
    })
}

/// Keys written between a key's first version and the overwrite that makes it garbage.
const MERGE_LAG: u64 = 5_000;

fn merge_section(
    r: &mut EngineResult,
    cfg: &Config,
    base: &Path,
    values: &Values,
) -> Result<(), String> {
    let kind = r.kind;
    let n = cfg.merge_keys.max(2);
    let dir = base.join(format!("{kind}-merge"));
    fresh_dir(&dir)?;
    // About eight segments for the whole set (2n records), so most of it sits in
    // closed segments.
    let record_guess = (KEY_LEN + VALUE_LEN + 32) as u64;
    let segment = (n * 2 * record_guess / 8).clamp(1 << 20, 128 << 20);
    let mut opts = options(kind, 0, SyncPolicy::No);
    opts.bitcask.max_segment_bytes = segment;
    if kind == EngineKind::Bitcask {
        r.merge_segment_bytes = Some(segment);
    }
    let store = open_store(&dir, &opts)?;
    progress!("{kind}: merge set: {n} keys, each overwritten once shortly after");
    // Untimed, so written in batches to keep the run short. Every key is overwritten
    // MERGE_LAG keys after it was first written, so every segment holds as many dead
    // first versions as live second ones: 50% garbage spread evenly, which the merge
    // has to read through, not whole dead segments it could drop unread.
    let lag = MERGE_LAG.min(n / 2).max(1);
    let mut i = 0;
    while i < n {
        let end = (i + 100).min(n);
        put_range(&*store, i..end, 0, values)?;
        if end > lag {
            put_range(&*store, i.saturating_sub(lag)..end - lag, 1, values)?;
        }
        i = end;
    }
    put_range(&*store, n.saturating_sub(lag)..n, 1, values)?;
    store.sync().map_err(|e| format!("sync: {e}"))?;
    let garbage = store.stats().garbage_ratio;
    let before = dir_files(&dir)?;
    progress!("{kind}: compact()");
    let cpu0 = process_cpu();
    let t = Instant::now();
    store.compact().map_err(|e| format!("compact: {e}"))?;
    let elapsed = t.elapsed();
    let cpu = cpu_between(cpu0, process_cpu());
    let after = dir_files(&dir)?;

    // Files removed or shrunk were read and replaced; files created or grown were written.
    let mut read = 0u64;
    for (name, &size) in &before {
        match after.get(name) {
            None => read += size,
            Some(&a) if a < size => read += size,
            _ => {}
        }
    }
    let mut written = 0u64;
    for (name, &size) in &after {
        match before.get(name) {
            None => written += size,
            Some(&b) if size < b => written += size,
            Some(&b) => written += size - b,
        }
    }
    r.merge = Some(MergeFigures {
        dir_bytes_before: before.values().sum(),
        dir_bytes_after: after.values().sum(),
        bytes_read: read,
        bytes_written: written,
        elapsed,
        cpu,
        garbage_ratio_before: garbage,
    });

    // The merge must not change what a reader sees: check a sample of keys.
    let mut wrong = 0u64;
    let step = (n / 1000).max(1);
    let mut i = 0;
    while i < n {
        let want = values.get(i + 1);
        match store.get(&key(i)) {
            Ok(Some(v)) if v.as_ref() == want => {}
            _ => wrong += 1,
        }
        i += step;
    }
    if wrong > 0 {
        r.notes.push(format!(
            "after merge {wrong} sampled keys read wrong or missing values"
        ));
    }
    close_store(store)?;
    fresh_dir(&dir)
}

/// Sizes of the regular files in `dir` (recursively), keyed by path relative to `dir`;
/// the lock file is left out.
fn dir_files(dir: &Path) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("list {}: {e}", d.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("list {}: {e}", d.display()))?;
            let path = entry.path();
            let meta = entry
                .metadata()
                .map_err(|e| format!("stat {}: {e}", path.display()))?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() && entry.file_name() != "LOCK" {
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                out.insert(rel.display().to_string(), meta.len());
            }
        }
    }
    Ok(out)
}

/// "1 thing" / "2 things".
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Files directly in `dir` whose name ends with `suffix`.
fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(suffix))
                })
                .collect()
        })
        .unwrap_or_default()
}
