//! The storage conformance suite: one model-based property test that every engine must
//! pass against a `BTreeMap` model, plus plain tests of the trait's edges (sequence
//! numbers, empty batches, large values, binary keys, directory lock, closed handles,
//! stats). Every test runs once per engine (`memory::…`, `bitcask::…`, `lsm::…`).
//!
//! Property effort: `PROPTEST_CASES` (default 64 here), ~100 operations per case over a
//! 12-key space so that operations collide.
//!
//! `Reopen` means a restart. For bitcask and lsm that is close + open of the same
//! directory. The memory engine keeps nothing on disk by itself (its durability is the
//! log above it), so for it a restart is: checkpoint into its own data directory, close,
//! open, which loads that checkpoint (see `common::reopen_with`). Snapshots taken
//! before a reopen are dropped with the old instance.

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use keel_storage::{
    Direction, EngineKind, OpenOptions, ScanRange, Snapshot, Storage, StorageError, WriteBatch,
    WriteOptions,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};

use common::{collect, dump, model_live_bytes, model_scan, Model, Pairs};

engine_tests!(
    model_conformance,
    seq_strictly_increases_and_survives_reopen,
    empty_batch_is_allowed,
    large_values_round_trip,
    binary_keys_order_and_round_trip,
    second_open_is_locked_with_our_pid,
    calls_after_close_fail_with_closed,
    stats_live_counts_match_model,
    visit_entries_match_scans_across_chunks,
);
engine_tests!(only [bitcask_auto_merge => Bitcask]: model_conformance_with_background_merge);

// ---------------------------------------------------------------------------------------
// The model-based property test.

/// A scan range as generated, turned into a [`ScanRange`] per use.
#[derive(Debug, Clone)]
enum RangeSpec {
    All,
    Prefix(Vec<u8>),
    Bounds(Bound<Vec<u8>>, Bound<Vec<u8>>),
}

impl RangeSpec {
    fn to_range(&self) -> ScanRange {
        let conv = |b: &Bound<Vec<u8>>| match b {
            Bound::Included(k) => Bound::Included(Bytes::from(k.clone())),
            Bound::Excluded(k) => Bound::Excluded(Bytes::from(k.clone())),
            Bound::Unbounded => Bound::Unbounded,
        };
        match self {
            RangeSpec::All => ScanRange::all(),
            RangeSpec::Prefix(p) => ScanRange::prefix(p),
            RangeSpec::Bounds(s, e) => ScanRange {
                start: conv(s),
                end: conv(e),
            },
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    /// Mixed puts (Some) and deletes (None), possibly touching a key twice: last wins.
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    Get(Vec<u8>),
    Scan(RangeSpec, Direction),
    /// `visit_entries` with a limit.
    ScanValues(RangeSpec, Direction, usize),
    TakeSnapshot,
    /// Index into the open snapshots (modulo their number), a key and a range to read.
    ReadSnapshot(usize, Vec<u8>, RangeSpec, Direction),
    DropSnapshot(usize),
    /// `key_at` of a range at a position and `count_within` of a second range, on the
    /// store (index 0) or an open snapshot (index i modulo their number, from 1).
    Position(usize, RangeSpec, RangeSpec, usize),
    Sync,
    Compact,
    Reopen,
    CheckpointCompare,
}

const ALPHABET: [u8; 3] = [0x00, b'a', 0xff];

/// Keys of 1–2 bytes over {0x00, 'a', 0xff}: 12 keys, with prefix relations and both
/// extreme bytes.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(ALPHABET.to_vec()), 1..=2)
}

/// Range ends also fall between and beyond the keys (0–3 bytes).
fn bound_key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(ALPHABET.to_vec()), 0..=3)
}

/// Values include the empty value, which must stay distinct from a deleted key.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..8)
}

fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        Just(Bound::Unbounded),
        bound_key().prop_map(Bound::Included),
        bound_key().prop_map(Bound::Excluded),
    ]
}

fn range_spec() -> impl Strategy<Value = RangeSpec> {
    prop_oneof![
        1 => Just(RangeSpec::All),
        2 => prop::collection::vec(prop::sample::select(ALPHABET.to_vec()), 0..=2)
            .prop_map(RangeSpec::Prefix),
        4 => (bound(), bound()).prop_map(|(s, e)| RangeSpec::Bounds(s, e)),
    ]
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Forward), Just(Direction::Reverse)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        8 => key().prop_map(Op::Delete),
        10 => prop::collection::vec((key(), prop::option::weighted(0.7, value())), 0..6)
            .prop_map(Op::Batch),
        10 => key().prop_map(Op::Get),
        12 => (range_spec(), direction()).prop_map(|(r, d)| Op::Scan(r, d)),
        6 => (range_spec(), direction(), 0..14usize)
            .prop_map(|(r, d, n)| Op::ScanValues(r, d, n)),
        4 => Just(Op::TakeSnapshot),
        6 => (any::<usize>(), key(), range_spec(), direction())
            .prop_map(|(i, k, r, d)| Op::ReadSnapshot(i, k, r, d)),
        2 => any::<usize>().prop_map(Op::DropSnapshot),
        6 => (0..3usize, range_spec(), range_spec(), 0..14usize)
            .prop_map(|(i, r, w, n)| Op::Position(i, r, w, n)),
        2 => Just(Op::Sync),
        3 => Just(Op::Compact),
        2 => Just(Op::Reopen),
        1 => Just(Op::CheckpointCompare),
    ]
}

fn proptest_config() -> ProptestConfig {
    let mut config = ProptestConfig {
        // Failures are reported with their minimal case in the panic message; the runner
        // is driven by hand, so there is no source file to persist regressions next to.
        failure_persistence: None,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    config
}

fn model_conformance(kind: EngineKind) {
    run_model(&common::test_options(kind));
}

/// Bitcask with its background merge on and eager: merges race the operations.
fn model_conformance_with_background_merge(kind: EngineKind) {
    let mut opts = common::test_options(kind);
    opts.bitcask.max_segment_bytes = 1024;
    opts.bitcask.auto_merge = true;
    opts.bitcask.merge_garbage_ratio = 0.05;
    opts.bitcask.merge_min_garbage_bytes = 0;
    opts.bitcask.merge_check_interval = std::time::Duration::from_millis(2);
    run_model(&opts);
}

fn run_model(opts: &OpenOptions) {
    let mut runner = TestRunner::new(proptest_config());
    let ops = prop::collection::vec(op(), 1..100);
    if let Err(e) = runner.run(&ops, |ops| run_case(opts, &ops)) {
        panic!("{} diverged from the model ({opts:?}): {e}", opts.engine);
    }
}

struct World {
    opts: OpenOptions,
    dir: tempfile::TempDir,
    store: Option<Arc<dyn Storage>>,
    model: Model,
    snaps: Vec<(Box<dyn Snapshot>, Model, u64)>,
    last_seq: u64,
}

fn fail(what: impl std::fmt::Debug, e: StorageError) -> TestCaseError {
    TestCaseError::fail(format!("{what:?} failed: {e:?}"))
}

impl World {
    fn store(&self) -> &Arc<dyn Storage> {
        self.store
            .as_ref()
            .expect("store is open between operations")
    }

    fn write(&mut self, batch: WriteBatch, op: &Op) -> Result<(), TestCaseError> {
        let empty = batch.is_empty();
        let seq = self
            .store()
            .write(batch, WriteOptions::DEFAULT)
            .map_err(|e| fail(op, e))?;
        if empty {
            prop_assert_eq!(
                seq,
                self.last_seq,
                "empty batch must return the current seq"
            );
        } else {
            prop_assert!(
                seq > self.last_seq,
                "seq {} not above previous {}",
                seq,
                self.last_seq
            );
        }
        self.last_seq = seq;
        prop_assert_eq!(self.store().last_seq(), seq, "last_seq after {:?}", op);
        Ok(())
    }

    fn check_all(&self, when: &str) -> Result<(), TestCaseError> {
        let got = collect(self.store().scan(ScanRange::all(), Direction::Forward))
            .map_err(|e| fail(when, e))?;
        let want = model_scan(&self.model, &ScanRange::all(), Direction::Forward);
        prop_assert_eq!(got, want, "full contents {}", when);
        Ok(())
    }

    /// Order statistics against the model. They count every key the engine holds, so a
    /// view's count may exceed its live keys while snapshots hold deleted ones (or, for
    /// a snapshot, keys written after it) or the GC has not collected them yet; with no
    /// snapshot open, a compaction makes them the store's exactly.
    /// Wherever the count equals the view's, positions and the part's count are the
    /// view's. lsm keeps none and answers None.
    fn check_position(
        &self,
        i: usize,
        spec: &RangeSpec,
        within: &RangeSpec,
        n: usize,
    ) -> Result<(), TestCaseError> {
        let (range, within) = (spec.to_range(), within.to_range());
        let (at, counts, model) = if i == 0 || self.snaps.is_empty() {
            let store = self.store();
            let at = store.key_at(&range, n as u64);
            (at, store.count_within(&range, &within), &self.model)
        } else {
            let (snap, model, _) = &self.snaps[(i - 1) % self.snaps.len()];
            (
                snap.key_at(&range, n as u64),
                snap.count_within(&range, &within),
                model,
            )
        };
        let ordered = self.opts.engine != EngineKind::Lsm;
        prop_assert_eq!(at.is_some(), ordered, "key_at answers where order is kept");
        prop_assert_eq!(
            counts.is_some(),
            ordered,
            "count_within answers with key_at"
        );
        let (Some(at), Some(counts)) = (at, counts) else {
            return Ok(());
        };
        let keys: Vec<Vec<u8>> = model_scan(model, &range, Direction::Forward)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let live = keys.len() as u64;
        prop_assert_eq!(at.keys, counts.keys, "one count for one range");
        prop_assert!(
            at.keys >= live,
            "count {} below the {} live keys",
            at.keys,
            live
        );
        if at.keys == live {
            let want = keys.get(n).cloned();
            prop_assert_eq!(at.key.map(|k| k.to_vec()), want, "key at {}", n);
            let part = keys.iter().filter(|k| within.contains(k)).count() as u64;
            prop_assert_eq!(
                counts.within,
                part,
                "keys of {:?} within {:?}",
                range,
                within
            );
        }
        if i == 0 && self.snaps.is_empty() {
            // Deleted keys may wait for the background GC; a compaction collects them.
            self.store().compact().map_err(|e| fail("compact", e))?;
            let after = self.store().count_within(&range, &within);
            prop_assert_eq!(
                after.map(|c| c.keys),
                Some(live),
                "count with no snapshot open"
            );
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Put(k, v) => {
                let mut b = WriteBatch::new();
                b.put(k.clone(), v.clone());
                self.write(b, op)?;
                self.model.insert(k.clone(), v.clone());
            }
            Op::Delete(k) => {
                let mut b = WriteBatch::new();
                b.delete(k.clone());
                self.write(b, op)?;
                self.model.remove(k);
            }
            Op::Batch(items) => {
                let mut b = WriteBatch::new();
                for (k, v) in items {
                    match v {
                        Some(v) => b.put(k.clone(), v.clone()),
                        None => b.delete(k.clone()),
                    };
                }
                self.write(b, op)?;
                for (k, v) in items {
                    match v {
                        Some(v) => self.model.insert(k.clone(), v.clone()),
                        None => self.model.remove(k),
                    };
                }
            }
            Op::Get(k) => {
                let got = self.store().get(k).map_err(|e| fail(op, e))?;
                prop_assert_eq!(
                    got.map(|b| b.to_vec()),
                    self.model.get(k).cloned(),
                    "{:?}",
                    op
                );
                // The borrowing read sees the same value, and calls back exactly once.
                let mut seen = Vec::new();
                self.store()
                    .read_with(k, &mut |v| seen.push(v.map(|v| v.as_slice().to_vec())))
                    .map_err(|e| fail(op, e))?;
                prop_assert_eq!(seen, vec![self.model.get(k).cloned()], "read_with {:?}", op);
            }
            Op::Scan(spec, dir) => {
                let range = spec.to_range();
                let got =
                    collect(self.store().scan(range.clone(), *dir)).map_err(|e| fail(op, e))?;
                prop_assert_eq!(got, model_scan(&self.model, &range, *dir), "{:?}", op);
            }
            Op::ScanValues(spec, dir, limit) => {
                let range = spec.to_range();
                let got = visited(|f| self.store().visit_entries(range.clone(), *dir, *limit, f))
                    .map_err(|e| fail(op, e))?;
                prop_assert_eq!(
                    got,
                    model_entries(&self.model, &range, *dir, *limit),
                    "{:?}",
                    op
                );
            }
            Op::TakeSnapshot => {
                let snap = self.store().snapshot();
                prop_assert_eq!(snap.seq(), self.last_seq, "new snapshot's seq");
                self.snaps.push((snap, self.model.clone(), self.last_seq));
            }
            Op::ReadSnapshot(i, k, spec, dir) => {
                if !self.snaps.is_empty() {
                    let (snap, model, seq) = &self.snaps[i % self.snaps.len()];
                    prop_assert_eq!(snap.seq(), *seq, "snapshot seq changed");
                    let got = snap.get(k).map_err(|e| fail(op, e))?;
                    prop_assert_eq!(
                        got.map(|b| b.to_vec()),
                        model.get(k).cloned(),
                        "snapshot get {:?}",
                        op
                    );
                    let range = spec.to_range();
                    let got = collect(snap.scan(range.clone(), *dir)).map_err(|e| fail(op, e))?;
                    prop_assert_eq!(got, model_scan(model, &range, *dir), "snapshot {:?}", op);
                    let entries =
                        visited(|f| snap.visit_entries(range.clone(), *dir, usize::MAX, f))
                            .map_err(|e| fail(op, e))?;
                    prop_assert_eq!(
                        entries,
                        model_entries(model, &range, *dir, usize::MAX),
                        "snapshot entries {:?}",
                        op
                    );
                }
            }
            Op::DropSnapshot(i) => {
                if !self.snaps.is_empty() {
                    let n = self.snaps.len();
                    self.snaps.remove(i % n);
                }
            }
            Op::Position(i, spec, within, n) => self.check_position(*i, spec, within, *n)?,
            Op::Sync => self.store().sync().map_err(|e| fail(op, e))?,
            Op::Compact => {
                self.store().compact().map_err(|e| fail(op, e))?;
                self.check_all("after compact")?;
            }
            Op::Reopen => {
                // Snapshots belong to the closed instance.
                self.snaps.clear();
                let store = self.store.take().expect("store is open");
                let store = common::reopen_with(store, self.dir.path(), &self.opts);
                prop_assert_eq!(store.last_seq(), self.last_seq, "last_seq after reopen");
                self.store = Some(store);
                self.check_all("after reopen")?;
            }
            Op::CheckpointCompare => {
                let cp = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
                let cp_dir = cp.path().join("checkpoint");
                self.store().checkpoint(&cp_dir).map_err(|e| fail(op, e))?;
                let copy = common::open_with(&cp_dir, &self.opts);
                let got = collect(copy.scan(ScanRange::all(), Direction::Forward))
                    .map_err(|e| fail("scan of the checkpoint", e))?;
                prop_assert_eq!(
                    got,
                    model_scan(&self.model, &ScanRange::all(), Direction::Forward),
                    "checkpoint contents"
                );
                copy.close().map_err(|e| fail("close checkpoint copy", e))?;
            }
        }
        Ok(())
    }
}

fn run_case(opts: &OpenOptions, ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let store = common::open_with(dir.path(), opts);
    let last_seq = store.last_seq();
    let mut world = World {
        opts: opts.clone(),
        dir,
        store: Some(store),
        model: BTreeMap::new(),
        snaps: Vec::new(),
        last_seq,
    };
    for op in ops {
        world.apply(op)?;
    }
    world.check_all("at the end")?;
    world.snaps.clear();
    if let Some(store) = world.store.take() {
        store.close().map_err(|e| fail("close", e))?;
    }
    Ok(())
}

/// The entries `visit_entries` must lend: the model's scan, at most `limit` of it.
fn model_entries(model: &Model, range: &ScanRange, dir: Direction, limit: usize) -> Pairs {
    model_scan(model, range, dir)
        .into_iter()
        .take(limit)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Plain tests.

/// Copies of the keys and values a `visit_entries` call lends, in order.
fn visited(
    visit: impl FnOnce(&mut dyn FnMut(&[u8], &[u8])) -> Result<(), StorageError>,
) -> Result<Pairs, StorageError> {
    let mut out = Vec::new();
    visit(&mut |k, v| out.push((k.to_vec(), v.to_vec())))?;
    Ok(out)
}

fn put(store: &dyn Storage, k: &[u8], v: &[u8]) -> u64 {
    let mut b = WriteBatch::new();
    b.put(k.to_vec(), v.to_vec());
    store.write(b, WriteOptions::DEFAULT).expect("write")
}

fn seq_strictly_increases_and_survives_reopen(kind: EngineKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = common::open(kind, dir.path());
    let mut last = store.last_seq();
    for round in 0..3 {
        for i in 0..50u32 {
            let mut b = WriteBatch::new();
            b.put(format!("k{}", i % 7), format!("{round}/{i}"));
            if i % 3 == 0 {
                b.delete(format!("k{}", (i + 1) % 7));
            }
            let seq = store.write(b, WriteOptions::DEFAULT).expect("write");
            assert!(seq > last, "{kind}: seq {seq} not above {last}");
            assert_eq!(store.last_seq(), seq, "{kind}: last_seq after write");
            last = seq;
        }
        store = common::reopen(store, dir.path());
        assert_eq!(
            store.last_seq(),
            last,
            "{kind}: last_seq after reopen #{round}"
        );
    }
    let seq = put(&*store, b"after", b"reopen");
    assert!(seq > last, "{kind}: first seq after reopen {seq} <= {last}");
}

fn empty_batch_is_allowed(kind: EngineKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open(kind, dir.path());
    let s0 = store.last_seq();
    let seq = store
        .write(WriteBatch::new(), WriteOptions::DEFAULT)
        .expect("empty batch on an empty store");
    assert_eq!(seq, s0, "{kind}: empty batch on a fresh store");
    let s1 = put(&*store, b"a", b"1");
    for opts in [WriteOptions::DEFAULT, WriteOptions::SYNC] {
        let seq = store
            .write(WriteBatch::new(), opts)
            .expect("empty batch after a write");
        assert_eq!(
            seq, s1,
            "{kind}: empty batch ({opts:?}) returns the current seq"
        );
        assert_eq!(store.last_seq(), s1, "{kind}: empty batch moved last_seq");
    }
    let s2 = put(&*store, b"b", b"2");
    assert!(s2 > s1, "{kind}: write after empty batches");
    let store = common::reopen(store, dir.path());
    assert_eq!(dump(&*store).len(), 2, "{kind}: contents after reopen");
}

fn large_values_round_trip(kind: EngineKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = common::open(kind, dir.path());
    let mut model = Model::new();
    // 1 MiB each (bigger than bitcask's test segment size), distinct contents so a mix-up
    // of values would show.
    for i in 0..4u8 {
        let v: Vec<u8> = (0..(1usize << 20))
            .map(|j| (j as u8).wrapping_mul(31).wrapping_add(i))
            .collect();
        let k = format!("big{i}").into_bytes();
        let mut b = WriteBatch::new();
        b.put(k.clone(), v.clone());
        b.put(format!("small{i}"), vec![i]);
        store.write(b, WriteOptions::DEFAULT).expect("write 1 MiB");
        model.insert(k, v);
        model.insert(format!("small{i}").into_bytes(), vec![i]);
    }
    // Overwrite one big value with another big value, delete another.
    let v: Vec<u8> = vec![0xab; (1 << 20) + 7];
    put(&*store, b"big1", &v);
    model.insert(b"big1".to_vec(), v);
    let mut b = WriteBatch::new();
    b.delete(&b"big2"[..]);
    store.write(b, WriteOptions::DEFAULT).expect("delete");
    model.remove(&b"big2"[..]);
    for round in 0..2 {
        for (k, v) in &model {
            let got = store.get(k).expect("get").map(|b| b.to_vec());
            assert!(
                got.as_ref() == Some(v),
                "{kind}: round {round}: value of {:?} differs (len {:?} vs {})",
                String::from_utf8_lossy(k),
                got.map(|g| g.len()),
                v.len()
            );
        }
        assert_eq!(
            store.get(b"big2").expect("get"),
            None,
            "{kind}: deleted big2"
        );
        assert!(dump(&*store) == model, "{kind}: round {round}: full scan");
        store.compact().expect("compact");
        store = common::reopen(store, dir.path());
    }
}

fn binary_keys_order_and_round_trip(kind: EngineKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open(kind, dir.path());
    let keys: Vec<Vec<u8>> = vec![
        vec![0x00],
        vec![0x00, 0x00],
        vec![0x00, 0xff],
        vec![0x01],
        b"a\x00b".to_vec(),
        b"a".to_vec(),
        b"a\xff".to_vec(),
        vec![0x7f],
        vec![0x80],
        vec![0xfe, 0xff],
        vec![0xff],
        vec![0xff, 0x00],
        vec![0xff, 0xff],
        vec![0xff, 0xff, 0xff],
    ];
    let mut model = Model::new();
    let mut b = WriteBatch::new();
    for (i, k) in keys.iter().enumerate() {
        let v = vec![0xff, i as u8, 0x00];
        b.put(k.clone(), v.clone());
        model.insert(k.clone(), v);
    }
    store.write(b, WriteOptions::DEFAULT).expect("write");
    let check = |store: &dyn Storage, when: &str| {
        for (k, v) in &model {
            assert_eq!(
                store.get(k).expect("get").map(|b| b.to_vec()).as_ref(),
                Some(v),
                "{kind} {when}: get {k:x?}"
            );
        }
        let ranges = [
            ScanRange::all(),
            ScanRange::prefix([0xff]),
            ScanRange::prefix([0xff, 0xff]),
            ScanRange::prefix([0x00]),
            ScanRange::prefix(b"a"),
            ScanRange::prefix(b""),
            ScanRange::new([0x00u8].as_slice()..[0xffu8].as_slice()),
            ScanRange {
                start: Bound::Excluded(Bytes::from_static(&[0x00])),
                end: Bound::Included(Bytes::from_static(&[0xff, 0x00])),
            },
            ScanRange {
                start: Bound::Excluded(Bytes::from_static(&[0xff, 0xff, 0xff])),
                end: Bound::Unbounded,
            },
        ];
        for r in ranges {
            for d in [Direction::Forward, Direction::Reverse] {
                let got = collect(store.scan(r.clone(), d)).expect("scan");
                assert_eq!(got, model_scan(&model, &r, d), "{kind} {when}: {r:?} {d:?}");
            }
        }
    };
    check(&*store, "before reopen");
    let store = common::reopen(store, dir.path());
    check(&*store, "after reopen");
}

fn second_open_is_locked_with_our_pid(kind: EngineKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open(kind, dir.path());
    put(&*store, b"k", b"v");
    match keel_storage::open(dir.path(), &common::test_options(kind)) {
        Err(StorageError::Locked { pid, path }) => {
            assert_eq!(pid, std::process::id(), "{kind}: pid in Locked");
            assert_eq!(
                path.canonicalize().ok(),
                dir.path().canonicalize().ok(),
                "{kind}: path in Locked"
            );
        }
        Err(e) => panic!("{kind}: second open failed with {e:?}, want Locked"),
        Ok(_) => panic!("{kind}: second open of a locked directory succeeded"),
    }
    // The first handle is unharmed, and closing it releases the directory.
    assert_eq!(store.get(b"k").expect("get").as_deref(), Some(&b"v"[..]));
    let store = common::reopen(store, dir.path());
    assert_eq!(store.get(b"k").expect("get").as_deref(), Some(&b"v"[..]));
}

fn calls_after_close_fail_with_closed(kind: EngineKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open(kind, dir.path());
    put(&*store, b"k", b"v");
    store.close().expect("close");
    let mut wrong = Vec::new();
    let mut is_closed = |what: &str, r: Result<(), StorageError>| match r {
        Err(StorageError::Closed) => {}
        other => wrong.push(format!("{what} returned {other:?}")),
    };
    is_closed("get", store.get(b"k").map(|_| ()));
    let mut b = WriteBatch::new();
    b.put(&b"k2"[..], &b"v"[..]);
    is_closed("write", store.write(b, WriteOptions::DEFAULT).map(|_| ()));
    is_closed(
        "empty write",
        store
            .write(WriteBatch::new(), WriteOptions::DEFAULT)
            .map(|_| ()),
    );
    is_closed("sync", store.sync());
    is_closed("compact", store.compact());
    let cp = tempfile::tempdir().expect("tempdir");
    is_closed("checkpoint", store.checkpoint(&cp.path().join("cp")));
    for dir in [Direction::Forward, Direction::Reverse] {
        match store.scan(ScanRange::all(), dir).next() {
            Some(Err(StorageError::Closed)) => {}
            other => is_closed(&format!("scan {dir:?} (first item {other:?})"), Ok(())),
        }
    }
    assert!(
        wrong.is_empty(),
        "{kind}: after close, want Err(Closed) from every call, but: {wrong:#?}"
    );
    // The directory is released: it opens again, with the data of before.
    drop(store);
    let store = common::open(kind, dir.path());
    if kind != EngineKind::Memory {
        assert_eq!(store.get(b"k").expect("get").as_deref(), Some(&b"v"[..]));
    }
}

/// How an engine's `live_keys` / `live_bytes` relate to the truth, as it documents them.
#[derive(Clone, Copy, PartialEq)]
enum Counting {
    /// Exact counts at all times.
    Exact,
    /// lsm (src/lsm/mod.rs, "Stats"): `live_keys` is fjall's approximate count, which
    /// also counts overwritten versions and tombstones not yet compacted away, and is
    /// exact after `compact` with no open snapshot; `live_bytes` is not available (0).
    LsmApproximate,
}

fn counting(kind: EngineKind) -> Counting {
    match kind {
        EngineKind::Lsm => Counting::LsmApproximate,
        EngineKind::Memory | EngineKind::Bitcask => Counting::Exact,
    }
}

fn stats_live_counts_match_model(kind: EngineKind) {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = common::open(kind, dir.path());
    let mut model = Model::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6b65656c);
    // Every put and delete ever written: the most versions an approximate count can see.
    let mut versions_written = 0u64;
    let counting = counting(kind);
    // `settled`: right after a compaction with no snapshot open.
    let check = |store: &dyn Storage, model: &Model, versions: u64, settled: bool, when: &str| {
        let st = store.stats();
        let (keys, bytes) = (model.len() as u64, model_live_bytes(model));
        match counting {
            Counting::Exact => {
                assert_eq!(st.live_keys, keys, "{kind} {when}: live_keys");
                assert_eq!(st.live_bytes, bytes, "{kind} {when}: live_bytes");
            }
            Counting::LsmApproximate if settled => {
                assert_eq!(st.live_keys, keys, "{kind} {when}: live_keys after compact");
            }
            Counting::LsmApproximate => assert!(
                (keys..=versions).contains(&st.live_keys),
                "{kind} {when}: live_keys {} outside [{keys}, {versions}] (live keys, versions written)",
                st.live_keys
            ),
        }
        assert_eq!(st.engine, kind);
        assert_eq!(
            st.last_seq,
            store.last_seq(),
            "{kind} {when}: stats.last_seq"
        );
    };
    check(&*store, &model, 0, false, "fresh");
    for step in 0..400u32 {
        let mut b = WriteBatch::new();
        for _ in 0..rng.gen_range(1..4) {
            let k = format!("key{}", rng.gen_range(0..40)).into_bytes();
            if rng.gen_bool(0.3) {
                b.delete(k.clone());
                model.remove(&k);
            } else {
                let v = vec![b'x'; rng.gen_range(0..50)];
                b.put(k.clone(), v.clone());
                model.insert(k, v);
            }
        }
        versions_written += b.len() as u64;
        store.write(b, WriteOptions::DEFAULT).expect("write");
        if step % 50 == 0 {
            check(
                &*store,
                &model,
                versions_written,
                false,
                &format!("step {step}"),
            );
        }
        if step == 200 {
            let snap = store.snapshot();
            store.compact().expect("compact");
            check(
                &*store,
                &model,
                versions_written,
                false,
                "after compact with a snapshot open",
            );
            drop(snap);
        }
    }
    check(&*store, &model, versions_written, false, "end");
    store.compact().expect("compact");
    check(&*store, &model, versions_written, true, "after compact");
    store = common::reopen(store, Path::new(dir.path()));
    check(&*store, &model, versions_written, false, "after reopen");
    assert!(dump(&*store) == model, "{kind}: contents after reopen");
}

/// `visit_entries` against `scan` on ranges longer than an engine's scan chunk (256), with
/// deleted keys inside, limits on both sides of the chunk size, both directions, on the
/// latest state and on a snapshot that later writes must not reach.
fn visit_entries_match_scans_across_chunks(kind: EngineKind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open_with(dir.path(), &OpenOptions::new(kind));
    let key = |i: u32| format!("k{i:05}").into_bytes();
    let mut b = WriteBatch::new();
    for i in 0..700u32 {
        b.put(key(i), format!("v{i}").into_bytes());
    }
    store.write(b, WriteOptions::DEFAULT).expect("load");
    let mut b = WriteBatch::new();
    for i in (0..700u32).step_by(7) {
        b.delete(key(i));
    }
    store.write(b, WriteOptions::DEFAULT).expect("deletes");
    let snap = store.snapshot();
    let before = collect(snap.scan(ScanRange::all(), Direction::Forward)).expect("scan");
    let mut b = WriteBatch::new();
    for i in (1..700u32).step_by(5) {
        b.put(key(i), b"changed".to_vec());
    }
    store.write(b, WriteOptions::DEFAULT).expect("overwrites");
    let ranges = [
        ScanRange::all(),
        ScanRange::new(Bytes::from(key(100))..Bytes::from(key(650))),
    ];
    for range in &ranges {
        for d in [Direction::Forward, Direction::Reverse] {
            let latest = collect(store.scan(range.clone(), d)).expect("scan");
            let pinned = collect(snap.scan(range.clone(), d)).expect("snapshot scan");
            for limit in [0, 1, 255, 256, 257, 511, 512, 513, 599, usize::MAX] {
                let want = |pairs: &[(Vec<u8>, Vec<u8>)]| -> Pairs {
                    pairs.iter().take(limit).cloned().collect()
                };
                let got =
                    visited(|f| store.visit_entries(range.clone(), d, limit, f)).expect("entries");
                assert_eq!(got, want(&latest), "latest, {d:?}, limit {limit}");
                let got =
                    visited(|f| snap.visit_entries(range.clone(), d, limit, f)).expect("entries");
                assert_eq!(got, want(&pinned), "snapshot, {d:?}, limit {limit}");
            }
        }
    }
    assert_eq!(before.len(), 600, "700 keys less every 7th");
    assert!(
        collect(snap.scan(ScanRange::all(), Direction::Forward)).expect("scan") == before,
        "the snapshot moved"
    );
    store.close().expect("close");
}
