//! Bitcask engine tests through the public API: reopen with and without hint files,
//! merge under concurrent readers and writers, snapshots across merge, group commit,
//! checkpoints, stats, torn tails.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use keel_storage::bitcask::Bitcask;
use keel_storage::{
    Direction, EngineKind, LifecycleState, OpenOptions, ScanRange, Storage, StorageError,
    SyncPolicy, WriteBatch, WriteOptions,
};
use rand::{Rng, SeedableRng};

fn opts(max_segment: u64) -> OpenOptions {
    let mut o = OpenOptions::new(EngineKind::Bitcask).sync_policy(SyncPolicy::No);
    o.bitcask.max_segment_bytes = max_segment;
    o.bitcask.auto_merge = false;
    o.bitcask.cache_bytes = 1 << 20;
    o
}

fn open(dir: &Path, o: &OpenOptions) -> Bitcask {
    Bitcask::open(dir, o).unwrap()
}

fn put(db: &dyn Storage, k: &str, v: &str) -> u64 {
    let mut b = WriteBatch::new();
    b.put(k.to_owned(), v.to_owned());
    db.write(b, WriteOptions::DEFAULT).unwrap()
}

fn del(db: &dyn Storage, k: &str) -> u64 {
    let mut b = WriteBatch::new();
    b.delete(k.to_owned());
    db.write(b, WriteOptions::DEFAULT).unwrap()
}

fn contents(db: &dyn Storage) -> BTreeMap<Bytes, Bytes> {
    db.scan(ScanRange::all(), Direction::Forward)
        .map(|r| r.unwrap())
        .collect()
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    v.sort();
    v
}

/// A random mix of puts, overwrites and deletes; returns the expected state.
fn random_history(db: &dyn Storage, seed: u64, ops: usize) -> BTreeMap<Bytes, Bytes> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut model = BTreeMap::new();
    for i in 0..ops {
        let mut b = WriteBatch::new();
        for _ in 0..rng.gen_range(1..4) {
            let k = format!("key{:04}", rng.gen_range(0..300));
            if rng.gen_bool(0.2) {
                b.delete(k.clone());
                model.remove(k.as_bytes());
            } else {
                let v = format!("{k}-v{i}-{}", "x".repeat(rng.gen_range(0..64)));
                b.put(k.clone(), v.clone());
                model.insert(Bytes::from(k), Bytes::from(v));
            }
        }
        db.write(b, WriteOptions::DEFAULT).unwrap();
    }
    model
}

#[test]
fn basic_reads_writes_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(1 << 20);
    let db = open(dir.path(), &o);
    assert_eq!(put(&db, "a", "1"), 1);
    assert_eq!(put(&db, "b", "2"), 2);
    let mut b = WriteBatch::new();
    b.put("c", "3").delete("a").put("b", "22");
    assert_eq!(db.write(b, WriteOptions::SYNC).unwrap(), 3);
    assert_eq!(db.get(b"a").unwrap(), None);
    assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b"22"[..]));
    assert_eq!(
        db.write(WriteBatch::new(), WriteOptions::DEFAULT).unwrap(),
        3
    );
    let before = contents(&db);
    db.close().unwrap();
    assert!(matches!(db.get(b"b"), Err(StorageError::Closed)));
    drop(db);

    let db = open(dir.path(), &o);
    assert_eq!(contents(&db), before);
    assert_eq!(db.last_seq(), 3);
    assert_eq!(
        put(&db, "d", "4"),
        4,
        "sequence numbers continue after reopen"
    );
    let files = files_with_ext(dir.path(), ".data");
    assert_eq!(files, vec!["0000000001.data".to_string()]);
    assert!(dir.path().join("LOCK").exists());
}

#[test]
fn second_open_is_refused_while_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _db = open(dir.path(), &opts(1 << 20));
    assert!(matches!(
        Bitcask::open(dir.path(), &opts(1 << 20)),
        Err(StorageError::Locked { .. })
    ));
}

#[test]
fn reopen_with_and_without_hint_files_gives_the_same_contents() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(4096);
    let db = open(dir.path(), &o);
    let model = random_history(&db, 7, 1500);
    assert_eq!(contents(&db), model);
    let seq = db.last_seq();
    db.close().unwrap();
    drop(db);
    let segments = files_with_ext(dir.path(), ".data");
    assert!(segments.len() > 5, "expected rotation, got {segments:?}");
    // Every sealed segment got its hint at rotation (the active one has none).
    assert_eq!(
        files_with_ext(dir.path(), ".hint").len(),
        segments.len() - 1
    );

    let db = open(dir.path(), &o);
    assert_eq!(contents(&db), model);
    assert_eq!(db.last_seq(), seq);
    assert_eq!(db.segments_from_hints(), segments.len() - 1);
    drop(db);

    for h in files_with_ext(dir.path(), ".hint") {
        std::fs::remove_file(dir.path().join(h)).unwrap();
    }
    let db = open(dir.path(), &o);
    assert_eq!(contents(&db), model);
    assert_eq!(db.last_seq(), seq);
    assert_eq!(db.segments_from_hints(), 0);
    drop(db);
    // The open that scanned wrote the hints back.
    assert_eq!(
        files_with_ext(dir.path(), ".hint").len(),
        segments.len() - 1
    );

    // A damaged hint is ignored in favour of its data file.
    let h = files_with_ext(dir.path(), ".hint").remove(0);
    let p = dir.path().join(h);
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&p, &bytes).unwrap();
    let db = open(dir.path(), &o);
    assert_eq!(contents(&db), model);
    assert_eq!(db.segments_from_hints(), segments.len() - 2);
}

#[test]
fn merge_under_concurrent_writers_and_readers_loses_and_resurrects_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(8 << 10);
    let db = Arc::new(open(dir.path(), &o));
    // Keys 0..200 get written, then even ones deleted; readers check that any value
    // they see belongs to its key.
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for t in 0..2 {
        let db = Arc::clone(&db);
        let stop = Arc::clone(&stop);
        readers.push(std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(t);
            let mut reads = 0u64;
            while !stop.load(Ordering::Acquire) && reads < 2_000_000 {
                let k = format!("k{:03}", rng.gen_range(0..200));
                if let Some(v) = db.get(k.as_bytes()).unwrap() {
                    assert!(v.starts_with(k.as_bytes()), "{k} read {v:?}");
                }
                if reads.is_multiple_of(64) {
                    for kv in db.scan(ScanRange::prefix("k1"), Direction::Forward) {
                        let (k, v) = kv.unwrap();
                        assert!(v.starts_with(&k), "scan {k:?} -> {v:?}");
                    }
                }
                reads += 1;
            }
        }));
    }
    let mut writers = Vec::new();
    for t in 0..2u32 {
        let db = Arc::clone(&db);
        writers.push(std::thread::spawn(move || {
            for round in 0..30u32 {
                for i in (t..200).step_by(2) {
                    let k = format!("k{i:03}");
                    let mut b = WriteBatch::new();
                    b.put(k.clone(), format!("{k}:{round}:{}", "p".repeat(40)));
                    db.write(b, WriteOptions::DEFAULT).unwrap();
                }
            }
            // Odd writer's keys stay; even writer deletes its keys at the end.
            if t == 0 {
                for i in (0..200).step_by(2) {
                    let mut b = WriteBatch::new();
                    b.delete(format!("k{i:03}"));
                    db.write(b, WriteOptions::DEFAULT).unwrap();
                }
            }
        }));
    }
    let mut merges = 0;
    while writers.iter().any(|w| !w.is_finished()) && merges < 200 {
        db.compact().unwrap();
        merges += 1;
    }
    for w in writers {
        w.join().unwrap();
    }
    db.compact().unwrap();
    stop.store(true, Ordering::Release);
    for r in readers {
        r.join().unwrap();
    }
    let expect: BTreeMap<Bytes, Bytes> = (1..200)
        .step_by(2)
        .map(|i| {
            let k = format!("k{i:03}");
            let v = format!("{k}:29:{}", "p".repeat(40));
            (Bytes::from(k), Bytes::from(v))
        })
        .collect();
    assert_eq!(contents(&*db), expect);
    assert!(merges >= 1);
    assert_eq!(db.state(), LifecycleState::Ready);
    let seq = db.last_seq();
    db.close().unwrap();
    drop(db);
    assert!(!dir.path().join("merge").exists());

    let db = open(dir.path(), &o);
    assert_eq!(contents(&db), expect, "after merge + reopen");
    for i in (0..200).step_by(2) {
        assert_eq!(db.get(format!("k{i:03}").as_bytes()).unwrap(), None);
    }
    assert_eq!(db.last_seq(), seq);
    drop(db);
    for h in files_with_ext(dir.path(), ".hint") {
        std::fs::remove_file(dir.path().join(h)).unwrap();
    }
    let db = open(dir.path(), &o);
    assert_eq!(contents(&db), expect, "after merge + reopen without hints");
}

#[test]
fn snapshot_taken_before_merge_reads_the_same_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(2048);
    let db = open(dir.path(), &o);
    let model = random_history(&db, 11, 400);
    let snap = db.snapshot();
    let snap_seq = snap.seq();
    // Overwrite and delete everything, then merge: the snapshot's versions must survive.
    for k in model.keys() {
        let k = std::str::from_utf8(k).unwrap();
        put(&db, k, "new");
    }
    for k in model.keys().take(100) {
        del(&db, std::str::from_utf8(k).unwrap());
    }
    db.compact().unwrap();
    db.compact().unwrap();
    let seen: BTreeMap<Bytes, Bytes> = snap
        .scan(ScanRange::all(), Direction::Forward)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(seen, model);
    for (k, v) in &model {
        assert_eq!(snap.get(k).unwrap().as_ref(), Some(v));
    }
    assert_eq!(snap.seq(), snap_seq);
    assert!(db.stats().retained_versions > 0);
    let latest = contents(&db);
    assert_eq!(latest.len(), model.len() - 100);
    drop(snap);
    db.compact().unwrap();
    assert_eq!(contents(&db), latest);
    assert_eq!(db.stats().retained_versions, 0);
    drop(db);
    let db = open(dir.path(), &o);
    assert_eq!(contents(&db), latest);
}

#[test]
fn compaction_reclaims_garbage_and_stats_follow() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(16 << 10);
    let db = open(dir.path(), &o);
    for round in 0..20 {
        for i in 0..100 {
            put(
                &db,
                &format!("k{i}"),
                &format!("{round}-{}", "v".repeat(100)),
            );
        }
    }
    for i in 0..50 {
        del(&db, &format!("k{i}"));
    }
    // Background GC drops the shadowed versions, which turns their records into garbage.
    for _ in 0..500 {
        if db.stats().garbage_ratio > 0.8 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = db.stats();
    assert_eq!(s.live_keys, 50);
    assert!(s.garbage_ratio > 0.8, "garbage ratio {}", s.garbage_ratio);
    let disk_before = s.disk_bytes;
    db.compact().unwrap();
    let s = db.stats();
    assert_eq!(s.live_keys, 50);
    assert!(
        s.disk_bytes < disk_before / 5,
        "{} vs {}",
        s.disk_bytes,
        disk_before
    );
    assert!(s.garbage_ratio < 0.1, "garbage ratio {}", s.garbage_ratio);
    assert_eq!(s.engine, EngineKind::Bitcask);
    assert_eq!(s.state, LifecycleState::Ready);
    for i in 0..100 {
        let v = db.get(format!("k{i}").as_bytes()).unwrap();
        assert_eq!(v.is_some(), i >= 50);
    }
    let s2 = db.stats();
    assert!(s2.cache_hits + s2.cache_misses >= s.cache_hits + s.cache_misses + 50);
    let on_disk: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.ends_with(".data") || n.ends_with(".hint")
        })
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(on_disk, s2.disk_bytes);
}

#[test]
fn auto_merge_runs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(8 << 10);
    o.bitcask.auto_merge = true;
    o.bitcask.merge_check_interval = Duration::from_millis(20);
    o.bitcask.merge_min_garbage_bytes = 1;
    o.bitcask.merge_garbage_ratio = 0.3;
    let db = open(dir.path(), &o);
    for round in 0..10 {
        for i in 0..50 {
            put(
                &db,
                &format!("k{i}"),
                &format!("{round}{}", "v".repeat(200)),
            );
        }
    }
    let mut ok = false;
    for _ in 0..500 {
        std::thread::sleep(Duration::from_millis(10));
        if db.stats().garbage_ratio < 0.3 {
            ok = true;
            break;
        }
    }
    assert!(ok, "background merge never ran: {:?}", db.stats());
    for i in 0..50 {
        let v = db.get(format!("k{i}").as_bytes()).unwrap().unwrap();
        assert!(v.starts_with(b"9v"));
    }
}

#[test]
fn group_commit_sync_writers_are_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(64 << 10);
    o.sync_policy = SyncPolicy::Always;
    let db = Arc::new(open(dir.path(), &o));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                for i in 0..50 {
                    let mut b = WriteBatch::new();
                    b.put(format!("t{t}-{i}"), format!("v{i}"));
                    let seq = db.write(b, WriteOptions::DEFAULT).unwrap();
                    assert!(seq > 0);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let syncs = db.sync_count();
    assert!(
        (1..=400).contains(&syncs),
        "{syncs} fdatasyncs for 400 writes"
    );
    assert_eq!(db.stats().live_keys, 400);
    drop(db);
    let db = open(dir.path(), &o);
    for t in 0..8 {
        for i in 0..50 {
            assert_eq!(
                db.get(format!("t{t}-{i}").as_bytes()).unwrap().as_deref(),
                Some(format!("v{i}").as_bytes())
            );
        }
    }
}

#[test]
fn checkpoint_is_a_consistent_openable_copy() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(4096);
    let db = Arc::new(open(dir.path(), &o));
    let model = random_history(&*db, 3, 500);
    let seq = db.last_seq();
    // Writes racing the checkpoint must not leak into it.
    let stop = Arc::new(AtomicBool::new(false));
    let w = {
        let db = Arc::clone(&db);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Acquire) && n < 100_000 {
                put(&*db, "key0001", "racing");
                n += 1;
            }
        })
    };
    let cp = dir.path().join("cp");
    db.checkpoint(&cp).unwrap();
    stop.store(true, Ordering::Release);
    w.join().unwrap();
    let cp_db = open(&cp, &o);
    let cp_seq = cp_db.last_seq();
    assert!(cp_seq >= seq);
    // The copy is exactly the state at its sequence number: the history, plus the racing
    // overwrite if (and only if) the copy was taken after one of those writes.
    let mut expect = model.clone();
    if cp_seq > seq {
        expect.insert(Bytes::from("key0001"), Bytes::from("racing"));
    }
    assert_eq!(contents(&cp_db), expect);
    assert!(matches!(
        db.checkpoint(&cp),
        Err(StorageError::InvalidArgument(_))
    ));
}

#[test]
fn torn_tail_is_cut_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(1 << 20);
    let db = open(dir.path(), &o);
    put(&db, "a", "1");
    put(&db, "b", "2");
    db.close().unwrap();
    drop(db);
    let seg = dir.path().join("0000000001.data");
    let good_len = std::fs::metadata(&seg).unwrap().len();
    // Half a record: a header promising more bytes than exist.
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]).unwrap();
    drop(f);
    let db = open(dir.path(), &o);
    assert_eq!(db.stats().torn_bytes_dropped, 11);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good_len);
    assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(put(&db, "c", "3"), 3);
}

#[test]
fn corruption_before_valid_records_fails_open_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(1 << 20);
    let db = open(dir.path(), &o);
    put(&db, "a", "1");
    let second = put(&db, "b", "2");
    put(&db, "c", "3");
    assert_eq!(second, 2);
    db.close().unwrap();
    drop(db);
    let seg = dir.path().join("0000000001.data");
    let mut bytes = std::fs::read(&seg).unwrap();
    let rec = 21 + 1 + 1;
    bytes[rec + 22] ^= 0xff; // the value byte of the second record
    std::fs::write(&seg, &bytes).unwrap();
    match Bitcask::open(dir.path(), &o) {
        Err(StorageError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, seg);
            assert_eq!(offset, rec as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let db = Bitcask::open(dir.path(), &o.clone().repair(true)).unwrap();
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get(b"b").unwrap(), None);
    assert_eq!(db.get(b"c").unwrap(), None);
}

#[test]
fn open_through_the_crate_entry_point() {
    let dir = tempfile::tempdir().unwrap();
    let db = keel_storage::open(dir.path(), &opts(1 << 20)).unwrap();
    assert_eq!(db.kind(), EngineKind::Bitcask);
    put(&*db, "x", "y");
    assert_eq!(db.get(b"x").unwrap().as_deref(), Some(&b"y"[..]));
}

#[test]
fn damage_in_a_hinted_segment_stops_the_open_and_reads_verify_crc() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(1024);
    let db = open(dir.path(), &o);
    for i in 0..40 {
        put(
            &db,
            &format!("k{i:02}"),
            &format!("value-{i:02}-{}", "z".repeat(50)),
        );
    }
    db.close().unwrap();
    drop(db);
    let seg = dir.path().join("0000000001.data");
    assert!(dir.path().join("0000000001.hint").exists());
    let rec = 21 + 3 + 59;
    let pristine = std::fs::read(&seg).unwrap();

    // Damage under a running store is caught by the read's CRC check.
    let db = open(dir.path(), &o);
    let mut bytes = pristine.clone();
    bytes[rec + 21 + 3 + 2] ^= 0x55; // a value byte of the second record (k01)
    std::fs::write(&seg, &bytes).unwrap();
    match db.get(b"k01") {
        Err(StorageError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, seg);
            assert_eq!(offset, rec as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(db.get(b"k00").unwrap().is_some());
    assert!(db
        .scan(ScanRange::all(), Direction::Forward)
        .any(|r| r.is_err()));
    drop(db);

    // On open, the data file no longer matches its hint's CRC: it is scanned and the
    // bad record stops the open, naming file and offset, hint or not.
    match Bitcask::open(dir.path(), &o) {
        Err(StorageError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, seg);
            assert_eq!(offset, rec as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let db = Bitcask::open(dir.path(), &o.clone().repair(true)).unwrap();
    assert!(db.get(b"k00").unwrap().is_some());
    assert_eq!(db.get(b"k01").unwrap(), None);
    assert!(db.get(b"k39").unwrap().is_some());
}

#[test]
fn trailing_batch_without_batch_end_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(1 << 20);
    let db = open(dir.path(), &o);
    put(&db, "a", "1");
    let mut b = WriteBatch::new();
    b.put("x", "1").put("y", "2").put("z", "3");
    db.write(b, WriteOptions::DEFAULT).unwrap();
    db.close().unwrap();
    drop(db);
    let seg = dir.path().join("0000000001.data");
    let len = std::fs::metadata(&seg).unwrap().len();
    let rec = 21 + 1 + 1;
    // Cut the batch's last record off cleanly: x and y are intact, but the batch has no
    // BATCH_END record, so none of it may appear.
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - rec).unwrap();
    drop(f);
    let db = open(dir.path(), &o);
    assert_eq!(db.get(b"x").unwrap(), None);
    assert_eq!(db.get(b"y").unwrap(), None);
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.stats().torn_bytes_dropped, 2 * rec);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), rec);
    assert_eq!(db.last_seq(), 1);
}

#[test]
fn random_ops_with_merges_and_reopens_match_a_model() {
    for seed in 0..3u64 {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(3000);
        let mut db = open(dir.path(), &o);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut model: BTreeMap<Bytes, Bytes> = BTreeMap::new();
        let mut snaps: Vec<(Box<dyn keel_storage::Snapshot>, BTreeMap<Bytes, Bytes>)> = Vec::new();
        for step in 0..300 {
            match rng.gen_range(0..100) {
                0..=59 => {
                    let k = format!("k{}", rng.gen_range(0..40));
                    let v = format!("{k}={step}{}", "w".repeat(rng.gen_range(0..40)));
                    put(&db, &k, &v);
                    model.insert(Bytes::from(k), Bytes::from(v));
                }
                60..=79 => {
                    let k = format!("k{}", rng.gen_range(0..40));
                    del(&db, &k);
                    model.remove(k.as_bytes());
                }
                80..=84 => db.compact().unwrap(),
                85..=92 => {
                    if snaps.len() < 3 {
                        snaps.push((db.snapshot(), model.clone()));
                    } else {
                        snaps.remove(0);
                    }
                }
                _ => {
                    snaps.clear();
                    drop(db);
                    if rng.gen_bool(0.3) {
                        for h in files_with_ext(dir.path(), ".hint") {
                            std::fs::remove_file(dir.path().join(h)).unwrap();
                        }
                    }
                    db = open(dir.path(), &o);
                }
            }
            for (snap, seen) in &snaps {
                let now: BTreeMap<Bytes, Bytes> = snap
                    .scan(ScanRange::all(), Direction::Forward)
                    .map(|r| r.unwrap())
                    .collect();
                assert_eq!(&now, seen, "seed {seed} step {step}: snapshot drifted");
            }
            if step % 50 == 0 {
                assert_eq!(contents(&db), model, "seed {seed} step {step}");
            }
        }
        assert_eq!(contents(&db), model, "seed {seed} end");
        snaps.clear();
        drop(db);
        let db = open(dir.path(), &o);
        assert_eq!(contents(&db), model, "seed {seed} after reopen");
        let rev: Vec<Bytes> = db
            .scan(ScanRange::all(), Direction::Reverse)
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(rev, model.keys().rev().cloned().collect::<Vec<_>>());
    }
}

#[test]
fn values_just_written_are_read_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), &opts(1 << 20));
    for i in 0..20 {
        put(&db, &format!("w{i}"), &format!("value {i}"));
    }
    let before = db.stats();
    for i in 0..20 {
        let v = db.get(format!("w{i}").as_bytes()).unwrap();
        assert_eq!(v.as_deref(), Some(format!("value {i}").as_bytes()));
    }
    let after = db.stats();
    assert_eq!(after.cache_hits, before.cache_hits + 20, "every read a hit");
    assert_eq!(after.cache_misses, before.cache_misses, "no read missed");
    // An overwrite caches the new value under its new location: no stale read.
    put(&db, "w3", "changed");
    assert_eq!(db.get(b"w3").unwrap().as_deref(), Some(&b"changed"[..]));
    assert_eq!(db.stats().cache_misses, before.cache_misses);
    // A reopened store starts cold: the first read misses and reads the file.
    db.close().unwrap();
    let db = open(dir.path(), &opts(1 << 20));
    assert_eq!(db.get(b"w3").unwrap().as_deref(), Some(&b"changed"[..]));
    let s = db.stats();
    assert_eq!((s.cache_hits, s.cache_misses), (0, 1));
}
