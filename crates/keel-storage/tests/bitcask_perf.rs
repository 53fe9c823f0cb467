//! Bitcask measurements, run by hand in release mode:
//! `cargo test -p keel-storage --release --test bitcask_perf -- --ignored --nocapture`.
//! They print figures and assert only correctness, never timings.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_storage::bitcask::Bitcask;
use keel_storage::{EngineKind, OpenOptions, Storage, SyncPolicy, WriteBatch, WriteOptions};

fn opts() -> OpenOptions {
    let mut o = OpenOptions::new(EngineKind::Bitcask).sync_policy(SyncPolicy::No);
    o.bitcask.auto_merge = false;
    o
}

/// Counts live heap bytes so the key directory's footprint can be measured.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as i64 - l.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// CPU time (user + system) of the whole process so far, from /proc (10 ms ticks).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the comm field.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn heap_bytes() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

/// Batches per second of one thread appending `batch` records with one write each and
/// an fdatasync after each, to a fresh file.
fn raw_rate(batch: usize, n: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("raw")).unwrap();
    let buf = vec![0u8; (21 + 16 + 100) * batch];
    let t = Instant::now();
    let mut off = 0u64;
    for _ in 0..n {
        f.write_all_at(&buf, off).unwrap();
        off += buf.len() as u64;
        f.sync_data().unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Batches per second of `threads` writers doing synced bitcask writes of `batch` puts.
fn bitcask_rate(batch: usize, n: usize, threads: usize) -> (f64, u64, usize) {
    bitcask_rate_with(batch, n, threads, WriteOptions::SYNC)
}

fn bitcask_rate_with(
    batch: usize,
    n: usize,
    threads: usize,
    wopts: WriteOptions,
) -> (f64, u64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Bitcask::open(dir.path(), &opts()).unwrap());
    let per = n.div_ceil(threads).max(1);
    // Batches are built before the clock starts, as the raw baseline has its bytes ready.
    let start = Arc::new(std::sync::Barrier::new(threads + 1));
    let hs: Vec<_> = (0..threads)
        .map(|th| {
            let db = Arc::clone(&db);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let value = bytes::Bytes::from(vec![b'v'; 100]);
                let batches: Vec<WriteBatch> = (0..per)
                    .map(|i| {
                        let mut b = WriteBatch::with_capacity(batch);
                        for j in 0..batch {
                            b.put(format!("k{th:04}-{i:05}-{j:04}"), value.clone());
                        }
                        b
                    })
                    .collect();
                start.wait();
                for b in batches {
                    db.write(b, wopts).unwrap();
                }
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    for h in hs {
        h.join().unwrap();
    }
    let rate = (per * threads) as f64 / t.elapsed().as_secs_f64();
    assert_eq!(db.stats().live_keys as usize, per * threads * batch);
    (rate, db.sync_count(), per * threads)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[test]
#[ignore]
fn synced_write_throughput_vs_raw_append_fdatasync() {
    let n = 2000;
    raw_rate(1, 200); // warm-up
    for batch in [1usize, 16, 128] {
        let mut raw = Vec::new();
        let mut ours = Vec::new();
        for _ in 0..3 {
            raw.push(raw_rate(batch, n));
            ours.push(bitcask_rate(batch, n, 1).0);
        }
        let (raw, ours) = (median(raw), median(ours));
        println!(
            "batch {batch:>3} x 100B, 1 thread: bitcask {ours:>7.0} batches/s, raw append+fdatasync {raw:>7.0} batches/s ({:.0}%)",
            100.0 * ours / raw
        );
        let unsynced = bitcask_rate_with(batch, n, 1, WriteOptions::DEFAULT).0;
        println!("batch {batch:>3} x 100B, 1 thread, no sync: bitcask {unsynced:>7.0} batches/s");
        for threads in [4usize, 16] {
            let (rate, syncs, batches) = bitcask_rate(batch, n, threads);
            println!(
                "batch {batch:>3} x 100B, {threads:>2} threads: bitcask {rate:>7.0} batches/s ({:.0}% of raw), {syncs} fdatasyncs for {batches} batches",
                100.0 * rate / raw
            );
        }
    }
}

#[test]
#[ignore]
fn open_one_million_keys_from_hints() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.bitcask.max_segment_bytes = 32 << 20;
    let n = 1_000_000u32;
    {
        let db = Bitcask::open(dir.path(), &o).unwrap();
        let t = Instant::now();
        let value = vec![b'x'; 32];
        for chunk in 0..(n / 1000) {
            let mut b = WriteBatch::with_capacity(1000);
            for i in 0..1000 {
                b.put(format!("key:{:010}", chunk * 1000 + i), value.clone());
            }
            db.write(b, WriteOptions::DEFAULT).unwrap();
        }
        println!("loaded {n} keys in {:?}", t.elapsed());
        // Seal the last segment so every segment has a hint.
        db.compact().unwrap();
        db.close().unwrap();
    }
    let hints = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".hint")
        })
        .count();
    let heap0 = heap_bytes();
    let cpu0 = cpu_time();
    let t = Instant::now();
    let db = Bitcask::open(dir.path(), &o).unwrap();
    let took = t.elapsed();
    let cpu = cpu_time() - cpu0;
    let heap1 = heap_bytes();
    assert_eq!(db.stats().live_keys, u64::from(n));
    assert_eq!(db.segments_from_hints(), hints);
    let per_key = (heap1 - heap0) / i64::from(n);
    println!(
        "open of {n} keys from {hints} hint files: {took:?} wall, {cpu:?} CPU; heap {} MB = {per_key} bytes/key, {} beyond the 14-byte key",
        (heap1 - heap0) >> 20,
        per_key - 14
    );
    let _ = std::io::stdout().flush();
    assert_eq!(
        db.get(b"key:0000123456").unwrap().as_deref(),
        Some(&[b'x'; 32][..])
    );
}
