//! Engine tests that need internal hooks: injected I/O faults and merges stopped at a
//! chosen step (as if the process died there).

use std::sync::atomic::AtomicBool;

use parking_lot::Mutex;

use super::merge::StopAt;

/// Test-only fault switches.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Appends fail with an I/O error.
    pub(crate) fail_writes: AtomicBool,
    /// Merge stops at this step.
    pub(crate) merge_stop: Mutex<Option<StopAt>>,
}

impl Faults {
    pub(crate) fn stop_merge_at(&self) -> Option<StopAt> {
        *self.merge_stop.lock()
    }
}

#[cfg(test)]
mod cases {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::atomic::Ordering;

    use bytes::Bytes;

    use super::super::marker;
    use super::super::merge::StopAt;
    use super::super::{Bitcask, Loc};
    use crate::{
        Direction, EngineKind, LifecycleState, OpenOptions, ScanRange, Storage, StorageError,
        SyncPolicy, ValueRef, WriteBatch, WriteOptions,
    };

    fn opts() -> OpenOptions {
        let mut o = OpenOptions::new(EngineKind::Bitcask).sync_policy(SyncPolicy::No);
        o.bitcask.max_segment_bytes = 2048;
        o.bitcask.auto_merge = false;
        o
    }

    fn put(db: &Bitcask, k: &str, v: &str) {
        let mut b = WriteBatch::new();
        b.put(k.to_owned(), v.to_owned());
        db.write(b, WriteOptions::DEFAULT).unwrap();
    }

    fn contents(db: &Bitcask) -> BTreeMap<Bytes, Bytes> {
        db.scan(ScanRange::all(), Direction::Forward)
            .map(|r| r.unwrap())
            .collect()
    }

    fn data_ids(dir: &Path) -> Vec<u32> {
        super::super::segment::list(dir).unwrap().0
    }

    /// Overwrites and deletes so a merge has garbage to drop; returns the expected state.
    fn history(db: &Bitcask) -> BTreeMap<Bytes, Bytes> {
        for round in 0..8 {
            for i in 0..40 {
                put(
                    db,
                    &format!("k{i:02}"),
                    &format!("r{round}-{}", "x".repeat(30)),
                );
            }
        }
        for i in 0..10 {
            let mut b = WriteBatch::new();
            b.delete(format!("k{i:02}"));
            db.write(b, WriteOptions::DEFAULT).unwrap();
        }
        contents(db)
    }

    #[test]
    fn injected_write_error_moves_to_failed_and_reads_keep_working() {
        let dir = tempfile::tempdir().unwrap();
        let db = Bitcask::open(dir.path(), &opts()).unwrap();
        put(&db, "a", "1");
        db.inner.faults.fail_writes.store(true, Ordering::Release);
        let mut b = WriteBatch::new();
        b.put("b", "2");
        assert!(matches!(
            db.write(b.clone(), WriteOptions::DEFAULT),
            Err(StorageError::Io { .. })
        ));
        assert_eq!(db.state(), LifecycleState::Failed);
        assert!(db.failure_reason().unwrap().contains("injected"));
        db.inner.faults.fail_writes.store(false, Ordering::Release);
        // The fault is gone but the store stays Failed: writes refused, reads served.
        assert!(matches!(
            db.write(b, WriteOptions::DEFAULT),
            Err(StorageError::Failed { .. })
        ));
        assert!(matches!(db.sync(), Err(StorageError::Failed { .. })));
        assert!(matches!(db.compact(), Err(StorageError::Failed { .. })));
        assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(db.get(b"b").unwrap(), None);
        assert_eq!(db.stats().state, LifecycleState::Failed);
    }

    #[test]
    fn merge_interrupted_before_its_marker_is_discarded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = Bitcask::open(dir.path(), &opts()).unwrap();
        let expect = history(&db);
        let before = data_ids(dir.path());
        *db.inner.faults.merge_stop.lock() = Some(StopAt::BeforeMarker);
        db.compact().unwrap();
        let mdir = marker::merge_dir(dir.path());
        assert!(mdir.exists());
        assert!(!mdir.join(marker::MARKER_FILE).exists());
        // The store kept working on its old segments.
        assert_eq!(contents(&db), expect);
        drop(db);
        let db = Bitcask::open(dir.path(), &opts()).unwrap();
        assert!(!mdir.exists());
        assert_eq!(contents(&db), expect);
        // Nothing of the discarded output reached the main directory.
        let after = data_ids(dir.path());
        assert!(
            before.iter().all(|id| after.contains(id)),
            "{before:?} vs {after:?}"
        );
    }

    #[test]
    fn merge_interrupted_after_its_marker_is_finished_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = Bitcask::open(dir.path(), &opts()).unwrap();
        let mut expect = history(&db);
        let sealed_before: Vec<u32> = {
            let ids = data_ids(dir.path());
            ids[..ids.len() - 1].to_vec()
        };
        *db.inner.faults.merge_stop.lock() = Some(StopAt::AfterMarker);
        db.compact().unwrap();
        let mdir = marker::merge_dir(dir.path());
        let m = marker::read(dir.path()).unwrap().expect("marker written");
        // Writes after the marker land in segments the merge does not replace.
        put(&db, "k05", "after-marker");
        put(&db, "k39", "after-marker");
        expect.insert(Bytes::from("k05"), Bytes::from("after-marker"));
        expect.insert(Bytes::from("k39"), Bytes::from("after-marker"));
        assert_eq!(contents(&db), expect);
        drop(db);
        assert!(mdir.exists());
        let db = Bitcask::open(dir.path(), &opts()).unwrap();
        assert!(!mdir.exists());
        assert_eq!(contents(&db), expect);
        let ids = data_ids(dir.path());
        for id in &m.replaced {
            assert!(
                !ids.contains(id),
                "replaced segment {id} still there: {ids:?}"
            );
        }
        for (_, to) in &m.installs {
            assert!(ids.contains(to), "merged segment {to} missing: {ids:?}");
        }
        // Every segment sealed before the merge (sealed at its start included) is gone.
        assert!(sealed_before.iter().all(|id| !ids.contains(id)));
        for i in 0..10 {
            if i == 5 {
                continue;
            }
            assert_eq!(db.get(format!("k{i:02}").as_bytes()).unwrap(), None);
        }
        drop(db);
        // Once more from hint files of the merged output only.
        let db = Bitcask::open(dir.path(), &opts()).unwrap();
        assert_eq!(contents(&db), expect);
    }

    #[test]
    fn interrupted_install_half_done_is_finished_on_open() {
        // Crash in the middle of the install: outputs moved, old segments not yet deleted.
        let dir = tempfile::tempdir().unwrap();
        let db = Bitcask::open(dir.path(), &opts()).unwrap();
        let expect = history(&db);
        *db.inner.faults.merge_stop.lock() = Some(StopAt::AfterMarker);
        db.compact().unwrap();
        drop(db);
        let m = marker::read(dir.path()).unwrap().expect("marker written");
        let (from, to) = m.installs[0];
        let mdir = marker::merge_dir(dir.path());
        std::fs::rename(
            mdir.join(super::super::segment::file_name(from, "data")),
            super::super::segment::data_path(dir.path(), to),
        )
        .unwrap();
        let db = Bitcask::open(dir.path(), &opts()).unwrap();
        assert_eq!(contents(&db), expect);
        assert!(!mdir.exists());
    }

    #[test]
    fn large_merge_with_two_copy_threads_keeps_every_version() {
        // Enough live records for merge to split the copy between two threads.
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts();
        o.bitcask.max_segment_bytes = 256 * 1024;
        let db = Bitcask::open(dir.path(), &o).unwrap();
        let n = 24_000;
        for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
            let mut b = WriteBatch::new();
            for i in chunk {
                b.put(format!("key{i:06}"), format!("v1-{i}"));
            }
            db.write(b, WriteOptions::DEFAULT).unwrap();
        }
        let snap = db.snapshot();
        let mut b = WriteBatch::new();
        for i in (0..n).step_by(3) {
            b.put(format!("key{i:06}"), format!("v2-{i}"));
        }
        for i in (1..n).step_by(7) {
            b.delete(format!("key{i:06}"));
        }
        db.write(b, WriteOptions::DEFAULT).unwrap();
        let want = contents(&db);
        let want_snap: BTreeMap<Bytes, Bytes> = snap
            .scan(ScanRange::all(), Direction::Forward)
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(want_snap.len(), n);
        db.compact().unwrap();
        assert_eq!(contents(&db), want);
        let got_snap: BTreeMap<Bytes, Bytes> = snap
            .scan(ScanRange::all(), Direction::Forward)
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(got_snap, want_snap, "the snapshot still reads its versions");
        drop(snap);
        db.close().unwrap();
        drop(db);
        let db = Bitcask::open(dir.path(), &o).unwrap();
        assert_eq!(contents(&db), want, "reopen after the merge");
        db.compact().unwrap();
        db.close().unwrap();
        drop(db);
        let db = Bitcask::open(dir.path(), &o).unwrap();
        assert_eq!(
            contents(&db),
            want,
            "reopen after a merge without snapshots"
        );
    }

    /// Every hint file in `dir`.
    fn remove_hints(dir: &Path) -> usize {
        let hints = super::super::segment::list(dir).unwrap().1;
        for id in &hints {
            std::fs::remove_file(super::super::segment::hint_path(dir, *id)).unwrap();
        }
        hints.len()
    }

    #[test]
    fn merged_batches_stay_whole_across_windows_and_files() {
        // Multi-record batches whose members die here and there: merge copies the live
        // ones as they are and must leave a file that reads as whole batches (each run of
        // one sequence number ending in BATCH_END), also where a batch is cut by the end
        // of a read window (tiny in unit tests) or of an output file.
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts();
        o.bitcask.max_segment_bytes = 2500;
        let db = Bitcask::open(dir.path(), &o).unwrap();
        for chunk in (0..600u32).collect::<Vec<_>>().chunks(9) {
            let mut b = WriteBatch::new();
            for i in chunk {
                b.put(
                    format!("key{i:04}"),
                    // Now and then a record longer than a whole (test-sized) window.
                    format!(
                        "v1-{i}-{}",
                        "y".repeat(if i % 50 == 7 { 700 } else { (i % 23) as usize })
                    ),
                );
            }
            db.write(b, WriteOptions::DEFAULT).unwrap();
        }
        // Kill some members of some batches: every 4th, every 9th (a batch's last) and
        // a few whole batches.
        for i in (0..600u32).filter(|i| i % 4 == 1 || i % 9 == 8 || (100..130).contains(i)) {
            let mut b = WriteBatch::new();
            if i % 2 == 0 {
                b.delete(format!("key{i:04}"));
            } else {
                b.put(format!("key{i:04}"), format!("v2-{i}"));
            }
            db.write(b, WriteOptions::DEFAULT).unwrap();
        }
        let want = contents(&db);
        db.compact().unwrap();
        assert_eq!(contents(&db), want);
        db.close().unwrap();
        drop(db);
        // Without hints every merged file is scanned record by record: batch structure,
        // sequence numbers and CRCs are all checked.
        assert!(remove_hints(dir.path()) > 1);
        let db = Bitcask::open(dir.path(), &o).unwrap();
        assert_eq!(db.segments_from_hints(), 0);
        assert_eq!(contents(&db), want, "reopen by scanning the merged files");
        db.compact().unwrap();
        db.close().unwrap();
        drop(db);
        let db = Bitcask::open(dir.path(), &o).unwrap();
        assert!(db.segments_from_hints() > 0);
        assert_eq!(contents(&db), want, "reopen from the second merge's hints");
    }

    #[test]
    fn merge_refuses_a_damaged_live_record_and_keeps_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts();
        o.bitcask.cache_bytes = 0;
        let db = Bitcask::open(dir.path(), &o).unwrap();
        history(&db);
        let loc = db.inner.index.latest_value(b"k33").unwrap();
        let seg = db.inner.segments.get(loc.segment).unwrap();
        // Flip a byte of the value, behind the store's back.
        let at = u64::from(loc.offset) + super::super::record::HEADER_LEN as u64 + 3 + 2;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&seg.path)
            .unwrap();
        let mut byte = [0u8; 1];
        std::os::unix::fs::FileExt::read_exact_at(&*seg.file, &mut byte, at).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[byte[0] ^ 0x20], at).unwrap();
        match db.compact() {
            Err(StorageError::Corrupt { path, offset, .. }) => {
                assert_eq!(path, seg.path);
                assert_eq!(offset, u64::from(loc.offset));
            }
            other => panic!("merge over a damaged record: {other:?}"),
        }
        // Nothing was installed: the old segment is still there, other keys read fine.
        assert!(db.inner.segments.get(loc.segment).is_some());
        assert!(!marker::merge_dir(dir.path()).exists());
        assert!(db.get(b"k20").unwrap().unwrap().starts_with(b"r7-"));
        assert!(db.get(b"k33").is_err());
    }

    #[test]
    fn reader_holding_a_location_merged_away_retries_the_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let db = Bitcask::open(dir.path(), &opts()).unwrap();
        history(&db);
        let old = db.inner.index.latest_value(b"k20").unwrap();
        db.compact().unwrap();
        assert!(db.inner.segments.get(old.segment).is_none());
        let moved = db.inner.index.latest_value(b"k20").unwrap();
        assert_ne!(moved.segment, old.segment);
        let v = db
            .inner
            .read_value(b"k20", old, || db.inner.index.latest_value(b"k20"), false)
            .unwrap()
            .unwrap();
        assert!(v.starts_with(b"r7-"));
        // A lookup that finds nothing any more reads as absent, not as an error.
        assert_eq!(
            db.inner.read_value(b"k20", old, || None, false).unwrap(),
            None
        );
    }

    #[test]
    fn prefetch_reads_changes_no_result_and_probes_no_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts();
        o.bitcask.cache_bytes = 1 << 20;
        let db = Bitcask::open(dir.path(), &o).unwrap();
        for i in 0..60 {
            put(&db, &format!("k{i}"), &format!("v{i}"));
        }
        let mut b = WriteBatch::new();
        for i in (0..60).step_by(3) {
            b.delete(format!("k{i}"));
        }
        db.write(b, WriteOptions::DEFAULT).unwrap();
        // More than a window, with absent, deleted and repeated keys.
        let names: Vec<String> = (0..70).chain(5..9).map(|i| format!("k{i}")).collect();
        let keys: Vec<&[u8]> = names.iter().map(|k| k.as_bytes()).collect();
        let before = db.stats();
        db.prefetch_reads(&keys);
        let after = db.stats();
        assert_eq!(
            (after.cache_hits, after.cache_misses),
            (before.cache_hits, before.cache_misses),
            "a prefetch is not a read"
        );
        for (i, key) in (0..70).chain(5..9).zip(&keys) {
            let want = (i < 60 && i % 3 != 0).then(|| Bytes::from(format!("v{i}")));
            assert_eq!(db.get(key).unwrap(), want, "k{i}");
        }
        db.close().unwrap();
        db.prefetch_reads(&keys);
        assert!(db.get(b"k1").is_err(), "closed");
    }

    #[test]
    fn the_cache_keeps_one_version_per_key_through_overwrites_and_merge() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts();
        o.bitcask.cache_bytes = 1 << 20;
        let db = Bitcask::open(dir.path(), &o).unwrap();
        let names: Vec<String> = (0..10).map(|k| format!("k{k}")).collect();
        for round in 0..40 {
            for name in &names {
                put(&db, name, &format!("{name}-{round}"));
            }
        }
        assert_eq!(
            db.inner.cache.entries(),
            10,
            "one entry per key, not per write"
        );
        // Seal the keys' last versions away from the active segment, so merge moves them.
        for i in 0..200 {
            put(&db, "pad", &format!("pad-{i}"));
        }
        assert_eq!(db.inner.cache.entries(), 11);
        let loc = |name: &String| db.inner.index.latest_value(name.as_bytes()).unwrap();
        let before: Vec<Loc> = names.iter().map(loc).collect();
        db.compact().unwrap();
        for (name, old) in names.iter().zip(&before) {
            assert_ne!(loc(name), *old, "{name} moved");
        }
        // The first read of a moved value misses and takes its key's entry; the second
        // hits it, and the entries of the old locations are gone.
        for pass in 0..2 {
            let was = db.stats();
            for name in &names {
                let want = Bytes::from(format!("{name}-39"));
                assert_eq!(db.get(name.as_bytes()).unwrap(), Some(want));
            }
            let now = db.stats();
            let (hits, misses) = (
                now.cache_hits - was.cache_hits,
                now.cache_misses - was.cache_misses,
            );
            assert_eq!((hits, misses), if pass == 0 { (0, 10) } else { (10, 0) });
            assert_eq!(db.inner.cache.entries(), 11, "pass {pass}");
        }
        db.close().unwrap();
    }

    #[test]
    fn read_with_lends_cached_values_and_hands_over_read_ones() {
        let dir = tempfile::tempdir().unwrap();
        for cache in [1 << 20, 0] {
            let mut o = opts();
            o.bitcask.cache_bytes = cache;
            let sub = dir.path().join(format!("c{cache}"));
            let db = Bitcask::open(&sub, &o).unwrap();
            put(&db, "a", "one");
            put(&db, "b", "two");
            let mut b = WriteBatch::new();
            b.delete("b");
            db.write(b, WriteOptions::DEFAULT).unwrap();
            let read = |key: &[u8]| {
                let mut seen = Vec::new();
                db.read_with(key, &mut |v| {
                    seen.push(v.map(|v| (matches!(v, ValueRef::Borrowed(_)), v.into_bytes())))
                })
                .unwrap();
                seen
            };
            let before = db.stats();
            // With a cache the written value is there (write-through) and lent; without
            // one it is read from its segment and handed over.
            assert_eq!(read(b"a"), vec![Some((cache > 0, Bytes::from("one")))]);
            assert_eq!(read(b"b"), vec![None], "deleted");
            assert_eq!(read(b"zz"), vec![None], "absent");
            let after = db.stats();
            assert_eq!(
                (
                    after.cache_hits - before.cache_hits,
                    after.cache_misses - before.cache_misses
                ),
                if cache > 0 { (1, 0) } else { (0, 1) },
                "one probe for the one present key"
            );
            db.close().unwrap();
            assert!(db.read_with(b"a", &mut |_| {}).is_err(), "closed");
        }
    }

    #[test]
    fn group_commit_covers_every_sync_writer() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts();
        o.bitcask.max_segment_bytes = 64 << 10;
        let db = std::sync::Arc::new(Bitcask::open(dir.path(), &o).unwrap());
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let db = std::sync::Arc::clone(&db);
                std::thread::spawn(move || {
                    for i in 0..40 {
                        let key = format!("t{t}-{i}");
                        let len = super::super::record::record_len(key.len(), 1);
                        let c = &db.inner.commit;
                        let before = c.written();
                        let mut b = WriteBatch::new();
                        b.put(key, "v");
                        db.write(b, WriteOptions::SYNC).unwrap();
                        // The write was appended at or after `before`; once it returns,
                        // the durable position covers its end.
                        assert!(c.synced() >= before + len, "not durable on return");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let c = &db.inner.commit;
        assert_eq!(c.synced(), c.written());
        assert!(c.sync_count() <= 240);
    }
}

#[cfg(test)]
mod policies {
    use std::time::{Duration, Instant};

    use super::super::Bitcask;
    use crate::{EngineKind, OpenOptions, Storage, SyncPolicy, WriteBatch, WriteOptions};

    #[test]
    fn everysec_syncs_in_the_background_and_no_never_does() {
        for (policy, expect_sync) in [(SyncPolicy::EverySec, true), (SyncPolicy::No, false)] {
            let dir = tempfile::tempdir().unwrap();
            let mut o = OpenOptions::new(EngineKind::Bitcask).sync_policy(policy);
            o.bitcask.auto_merge = false;
            let db = Bitcask::open(dir.path(), &o).unwrap();
            let mut b = WriteBatch::new();
            b.put("k", "v");
            db.write(b, WriteOptions::DEFAULT).unwrap();
            let c = &db.inner.commit;
            assert!(c.written() > 0);
            let wait = if expect_sync { 2500 } else { 1200 };
            let deadline = Instant::now() + Duration::from_millis(wait);
            while c.synced() < c.written() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert_eq!(c.synced() >= c.written(), expect_sync, "policy {policy}");
            if !expect_sync {
                assert_eq!(c.sync_count(), 0);
                db.sync().unwrap();
                assert_eq!(c.sync_count(), 1);
                assert_eq!(c.synced(), c.written());
            }
        }
    }

    /// Appends of 3 MiB start their writeback in the background unless every batch is
    /// synced; values read back after a reopen (reopened, the active segment starts at
    /// its old size, which the writeback's offsets count from).
    #[test]
    fn writeback_starts_in_the_background_but_under_always() {
        let value = vec![3u8; 64 << 10];
        for policy in [SyncPolicy::EverySec, SyncPolicy::No, SyncPolicy::Always] {
            let dir = tempfile::tempdir().unwrap();
            let mut o = OpenOptions::new(EngineKind::Bitcask).sync_policy(policy);
            o.bitcask.auto_merge = false;
            for round in 0..2 {
                let db = Bitcask::open(dir.path(), &o).unwrap();
                for i in 0..48 {
                    let mut b = WriteBatch::new();
                    b.put(format!("k{round}-{i}"), value.clone());
                    db.write(b, WriteOptions::DEFAULT).unwrap();
                }
                let c = &db.inner.commit;
                if policy == SyncPolicy::Always {
                    assert_eq!(c.writeback_count(), 0, "every batch is synced");
                } else {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while c.writeback_count() == 0 && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    assert!(c.writeback_count() > 0, "policy {policy}, round {round}");
                }
                let got = db.get(format!("k{round}-47").as_bytes()).unwrap();
                assert_eq!(got.as_deref(), Some(value.as_slice()));
                db.close().unwrap();
            }
        }
    }
}
