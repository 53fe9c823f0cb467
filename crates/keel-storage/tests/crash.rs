//! Crash durability with a real process and SIGKILL, for the engines that own their
//! durability (bitcask, lsm). The memory engine is durable only through the log above it
//! and its checkpoints, so a killed memory store legitimately loses everything since
//! the last checkpoint; there is nothing for this suite to check there.
//!
//! The parent test re-executes this test binary, running only `crash_child` (ignored, and
//! a no-op unless `KEEL_CRASH_CHILD=dir,engine` is set). The child opens the store with
//! `SyncPolicy::Always`, continues after the last batch found, and commits batch `i`
//! (keys `b/{i}/{0..K}` = `i`, key `last` = `i`), printing `ack {i}` after each write
//! returns. The parent kills it with SIGKILL after a random number of acks plus a random
//! delay, then reopens: every acked batch is there, the batch after the last ack is
//! either complete or absent, and nothing else exists. ~10 cycles per engine on one dir.
//!
//! Reproduce a run with `KEEL_CRASH_SEED=<seed printed on failure>`.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use keel_storage::{EngineKind, Storage, WriteBatch, WriteOptions};
use rand::{Rng, SeedableRng};

engine_tests!(only [bitcask => Bitcask, lsm => Lsm]: acked_batches_survive_sigkill);

const CHILD_ENV: &str = "KEEL_CRASH_CHILD";
const CHILD_TEST: &str = "crash_child";
/// Group keys per batch (plus `last`).
const K: u64 = 5;
const CYCLES: usize = 10;
/// A child never writes more than this, even if nobody kills it.
const CHILD_MAX_BATCHES: u64 = 100_000;
const READ_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
#[ignore = "child process of the crash tests; does nothing unless KEEL_CRASH_CHILD is set"]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, engine) = spec
        .rsplit_once(',')
        .expect("KEEL_CRASH_CHILD is dir,engine");
    let kind: EngineKind = engine.parse().expect("engine name");
    let store = keel_storage::open(Path::new(dir), &common::sync_options(kind))
        .unwrap_or_else(|e| panic!("child: open {kind} on {dir}: {e:?}"));
    let start = match store.get(b"last").expect("child: get last") {
        Some(v) => parse_u64(&v).expect("child: last is a number") + 1,
        None => 0,
    };
    let mut out = std::io::stdout().lock();
    // libtest has printed "test crash_child ... " without a newline; start a fresh line.
    writeln!(out, "\nstart {start}").expect("child: stdout");
    out.flush().expect("child: stdout");
    for i in start..start + CHILD_MAX_BATCHES {
        let mut b = WriteBatch::new();
        let v = i.to_string();
        for j in 0..K {
            b.put(format!("b/{i}/{j}"), v.clone());
        }
        b.put(&b"last"[..], v);
        store
            .write(b, WriteOptions::DEFAULT)
            .unwrap_or_else(|e| panic!("child: write batch {i}: {e:?}"));
        writeln!(out, "ack {i}").expect("child: stdout");
        out.flush().expect("child: stdout");
    }
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Checks the reopened store against what must be there: batches `0..=must` (if any)
/// complete, at most one more complete batch, nothing else. Returns the last batch found.
fn verify(store: &dyn Storage, must: Option<u64>, ctx: &str) -> Option<u64> {
    let last = store
        .get(b"last")
        .unwrap_or_else(|e| panic!("{ctx}: get last: {e:?}"))
        .map(|v| parse_u64(&v).unwrap_or_else(|| panic!("{ctx}: last = {v:?}")));
    match (must, last) {
        (None, None) => {}
        (None, Some(l)) => assert_eq!(l, 0, "{ctx}: nothing acked but last = {l}"),
        (Some(m), None) => panic!("{ctx}: batch {m} was acked but key `last` is missing"),
        (Some(m), Some(l)) => assert!(
            l == m || l == m + 1,
            "{ctx}: acked up to {m} but last = {l} (lost acked batches or invented ones)"
        ),
    }
    let all = common::dump(store);
    let mut count = 0u64;
    for (k, v) in &all {
        if k == b"last" {
            continue;
        }
        let key = String::from_utf8_lossy(k);
        let parsed = key.strip_prefix("b/").and_then(|r| {
            let (i, j) = r.split_once('/')?;
            Some((i.parse::<u64>().ok()?, j.parse::<u64>().ok()?))
        });
        let Some((i, j)) = parsed else {
            panic!("{ctx}: unexpected key {key:?}");
        };
        assert!(
            last.is_some_and(|l| i <= l) && j < K,
            "{ctx}: key {key} beyond the last batch {last:?}"
        );
        assert_eq!(
            parse_u64(v),
            Some(i),
            "{ctx}: key {key} has value {:?}",
            String::from_utf8_lossy(v)
        );
        count += 1;
    }
    let want = last.map_or(0, |l| (l + 1) * K);
    assert_eq!(
        count, want,
        "{ctx}: {count} batch keys for batches 0..={last:?}, want {want} (a partial batch?)"
    );
    last
}

fn acked_batches_survive_sigkill(kind: EngineKind) {
    let _serial = common::serial();
    let seed: u64 = std::env::var("KEEL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    // The highest batch known to be durable: acked, or found complete after a crash.
    let mut durable: Option<u64> = None;
    for cycle in 0..CYCLES {
        let ctx = format!("{kind} seed {seed} cycle {cycle}");
        let mut child = common::spawn_self(
            CHILD_TEST,
            CHILD_ENV,
            &format!("{},{}", dir.display(), kind.as_str()),
        );
        // Some cycles kill before any ack (possibly while the child is still opening).
        let target = if rng.gen_bool(0.15) {
            0
        } else {
            rng.gen_range(1..=150)
        };
        let mut acked = durable;
        let mut next = None;
        let mut on_line = |line: &str, acked: &mut Option<u64>| {
            if let Some(s) = line.strip_prefix("start ") {
                let s: u64 = s.parse().expect("start line");
                assert_eq!(
                    s,
                    durable.map_or(0, |d| d + 1),
                    "{ctx}: child resumed at the wrong batch"
                );
                next = Some(s);
            } else if let Some(i) = line.strip_prefix("ack ") {
                let i: u64 = i.parse().expect("ack line");
                assert_eq!(Some(i), next, "{ctx}: acks out of order");
                next = Some(i + 1);
                *acked = Some(i);
            }
        };
        let mut acks = 0;
        let mut started = false;
        while !started || acks < target {
            let Some(line) = child.next_line(READ_TIMEOUT) else {
                let err = child.stderr();
                panic!("{ctx}: child exited before it was killed; stderr:\n{err}");
            };
            started |= line.starts_with("start ");
            acks += usize::from(line.starts_with("ack "));
            on_line(&line, &mut acked);
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..4000)));
        child.kill();
        // Acks printed before the kill count too, even if not read yet.
        for line in child.drain(READ_TIMEOUT) {
            on_line(&line, &mut acked);
        }
        let store = common::open_with(&dir, &common::sync_options(kind));
        durable = verify(&*store, acked, &ctx);
        eprintln!(
            "{ctx}: killed after {acks}+ acks; acked through {acked:?}, found through {durable:?}"
        );
        store
            .close()
            .unwrap_or_else(|e| panic!("{ctx}: close: {e:?}"));
    }
    assert!(
        durable.is_some(),
        "{kind} seed {seed}: no batch was ever committed"
    );
}
