//! Concurrent writers that each wait for their batch to be synced: the workload where
//! group commit (many writers sharing one fsync) shows up as throughput.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use keel_storage::{Storage, WriteBatch, WriteOptions};

use crate::figures::{Rate, SyncFigures};
use crate::workload::{key, Values};

/// Runs `writers` threads for about `secs` seconds, each writing batches of `batch` puts
/// with `WriteOptions::SYNC`. `run_id` keeps the keys of different runs apart.
pub fn run(
    store: &dyn Storage,
    writers: usize,
    batch: usize,
    secs: f64,
    run_id: u64,
    values: &Values,
) -> Result<SyncFigures, String> {
    let stop = AtomicBool::new(false);
    let batches_done = AtomicU64::new(0);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let barrier = Barrier::new(writers + 1);
    let mut started: Option<Instant> = None;
    std::thread::scope(|s| {
        for t in 0..writers {
            let (stop, batches_done, failure, barrier) = (&stop, &batches_done, &failure, &barrier);
            s.spawn(move || {
                barrier.wait();
                let mut next: u64 = 0;
                let mut done: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    let mut wb = WriteBatch::with_capacity(batch);
                    for _ in 0..batch {
                        let idx = (run_id << 48) | ((t as u64) << 32) | next;
                        next += 1;
                        wb.put(
                            Bytes::copy_from_slice(&key(idx)),
                            Bytes::copy_from_slice(values.get(idx)),
                        );
                    }
                    if let Err(e) = store.write(wb, WriteOptions::SYNC) {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert_with(|| format!("synced write: {e}"));
                        }
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    done += 1;
                }
                batches_done.fetch_add(done, Ordering::Relaxed);
            });
        }
        barrier.wait();
        started = Some(Instant::now());
        let limit = Duration::from_secs_f64(secs);
        let begin = Instant::now();
        // Sleep in slices so a writer's failure ends the run early.
        while begin.elapsed() < limit && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20).min(limit));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
    if let Some(e) = failure.lock().ok().and_then(|mut f| f.take()) {
        return Err(e);
    }
    Ok(SyncFigures {
        writers,
        batch,
        batches: Rate {
            ops: batches_done.load(Ordering::Relaxed),
            elapsed,
        },
        raw: None,
    })
}
