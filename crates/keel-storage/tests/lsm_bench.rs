//! Rough throughput of the LSM engine, for the record, not for CI:
//! `cargo test -p keel-storage --release --test lsm_bench -- --ignored --nocapture`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use keel_storage::lsm::LsmEngine;
use keel_storage::{EngineKind, OpenOptions, Storage, SyncPolicy, WriteBatch, WriteOptions};
use rand::{Rng, SeedableRng};

const KEYS: u64 = 1_000_000;

fn key(i: u64) -> Bytes {
    Bytes::from(format!("user:{i:010}"))
}

fn rate(n: u64, t: Instant) -> String {
    let secs = t.elapsed().as_secs_f64();
    format!("{n} ops in {secs:.2}s = {:.0} ops/s", n as f64 / secs)
}

#[test]
#[ignore = "benchmark; run by hand"]
fn lsm_throughput() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = OpenOptions::new(EngineKind::Lsm).sync_policy(SyncPolicy::No);
    let s = LsmEngine::open(dir.path(), &opts).expect("open");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let value = Bytes::from(vec![b'v'; 100]);

    let s: Arc<dyn Storage> = Arc::new(s);
    let n = 2_000;
    let t = Instant::now();
    for _ in 0..n {
        let mut b = WriteBatch::new();
        b.put(key(rng.gen_range(0..KEYS)), value.clone());
        s.write(b, WriteOptions::SYNC).expect("synced put");
    }
    println!("synced single-writer batches (1 op): {}", rate(n, t));

    let per = 1_000;
    let t = Instant::now();
    let threads: Vec<_> = (0..8u64)
        .map(|w| {
            let (s, value) = (s.clone(), value.clone());
            std::thread::spawn(move || {
                for i in 0..per {
                    let mut b = WriteBatch::new();
                    b.put(key(w * 1_000_000 + i), value.clone());
                    s.write(b, WriteOptions::SYNC).expect("synced put");
                }
            })
        })
        .collect();
    for th in threads {
        th.join().expect("writer");
    }
    println!(
        "synced batches, 8 concurrent writers (group commit): {}",
        rate(8 * per, t)
    );
    let n = 2_000;
    let t = Instant::now();
    for _ in 0..n {
        let mut b = WriteBatch::new();
        b.put(key(rng.gen_range(0..KEYS)), value.clone());
        s.write(b, WriteOptions::SYNC).expect("synced put");
    }
    println!("synced single-writer batches again: {}", rate(n, t));

    let n = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        let mut b = WriteBatch::new();
        b.put(key(rng.gen_range(0..KEYS)), value.clone());
        s.write(b, WriteOptions::DEFAULT).expect("put");
    }
    println!(
        "random put, 100-byte values, no sync, 1 op/batch: {}",
        rate(n, t)
    );

    let t = Instant::now();
    for chunk in 0..(KEYS / 1000) {
        let mut b = WriteBatch::with_capacity(1000);
        for i in 0..1000 {
            b.put(key(chunk * 1000 + i), value.clone());
        }
        s.write(b, WriteOptions::DEFAULT).expect("load");
    }
    println!("load 1M keys in 1000-op batches: {}", rate(KEYS, t));

    let n = 1_000_000;
    let t = Instant::now();
    let mut hits = 0u64;
    for _ in 0..n {
        if s.get(&key(rng.gen_range(0..KEYS))).expect("get").is_some() {
            hits += 1;
        }
    }
    println!(
        "random get over 1M keys (memtable + tables): {} ({hits} hits)",
        rate(n, t)
    );

    s.compact().expect("compact");
    let t = Instant::now();
    for _ in 0..n {
        let _ = s.get(&key(rng.gen_range(0..KEYS))).expect("get");
    }
    println!(
        "random get over 1M keys after major compaction: {}",
        rate(n, t)
    );
    let n = 2_000;
    let t = Instant::now();
    let mut scanned = 0u64;
    for _ in 0..n {
        let start = rng.gen_range(0..KEYS - 1000);
        let range = keel_storage::ScanRange {
            start: std::ops::Bound::Included(key(start)),
            end: std::ops::Bound::Excluded(key(start + 1000)),
        };
        for item in s.scan(range, keel_storage::Direction::Forward) {
            item.expect("scan");
            scanned += 1;
        }
    }
    assert_eq!(scanned, n * 1000);
    println!("scan of 1000 keys: {}", rate(n, t));
    let t = Instant::now();
    let scanned = s
        .scan(
            keel_storage::ScanRange::all(),
            keel_storage::Direction::Forward,
        )
        .count() as u64;
    println!("full forward scan: {}", rate(scanned, t));
    println!("stats: {:?}", s.stats());
    s.close().expect("close");
    let t = Instant::now();
    let s = LsmEngine::open(dir.path(), &opts).expect("reopen");
    println!(
        "reopen (journal pre-check + fjall recovery): {:.1} ms, last_seq {}",
        t.elapsed().as_secs_f64() * 1000.0,
        s.last_seq()
    );
}
