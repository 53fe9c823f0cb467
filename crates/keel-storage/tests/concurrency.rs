//! Writers against snapshot readers, per engine. Two writers commit batches that set all
//! keys of a group to one value (or delete the whole group) and bump the writer's own
//! counter key in the same batch; readers check that every view they get (explicit
//! snapshots, gets on them, and the store's implicit scans) holds whole batches only
//! (no fractured group, no group value newer than its writer's counter: no half batch),
//! that a snapshot read again later is unchanged (no later batch leaks in), and that
//! successive snapshots never go back in time. A third thread compacts meanwhile, and a
//! fourth keeps passing every key (and some absent ones) to the writer's prefetch hint,
//! which reads the memory engine's tables unlocked while it excludes writers. Every other
//! batch of a writer is written from a writer session, after reading the writer's counter
//! back in it (the memory engine's session reads its tables unlocked). Everything is
//! bounded by iteration counts.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use keel_storage::{
    Direction, EngineKind, ScanRange, Snapshot, Storage, WriteBatch, WriteOptions, WriterSession,
};
use rand::{Rng, SeedableRng};

engine_tests!(
    snapshots_see_whole_batches_under_concurrent_writers,
    snapshot_reads_stay_fixed_while_compacting,
);

const GROUPS: usize = 6;
const KEYS_PER_GROUP: usize = 8;
const WRITERS: usize = 2;
const ROUNDS: usize = 4;
const BATCHES_PER_WRITER: u64 = 500;
const READERS: usize = 2;
const READS_PER_READER: usize = 60;
const COMPACTIONS: usize = 5;
const PREFETCHES: usize = 2_000;

type View = Vec<(Vec<u8>, Vec<u8>)>;

fn group_key(g: usize, j: usize) -> String {
    format!("g{g}/{j}")
}

fn ctr_key(w: usize) -> String {
    format!("ctr/w{w}")
}

/// Per writer, the counter it had reached in this view.
fn counters(view: &View) -> Result<[u64; WRITERS], String> {
    let mut out = [0u64; WRITERS];
    for (w, slot) in out.iter_mut().enumerate() {
        let key = ctr_key(w);
        if let Some((_, v)) = view.iter().find(|(k, _)| k == key.as_bytes()) {
            *slot = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad counter value {v:?}"))?;
        }
    }
    Ok(out)
}

/// Checks that `view` (a forward scan of everything) is made of whole batches.
fn check_view(view: &View) -> Result<[u64; WRITERS], String> {
    let ctrs = counters(view)?;
    let mut groups: BTreeMap<usize, Vec<&[u8]>> = BTreeMap::new();
    for (k, v) in view {
        let k = std::str::from_utf8(k).map_err(|_| format!("non-utf8 key {k:?}"))?;
        if k.starts_with("ctr/") {
            continue;
        }
        let g = k
            .strip_prefix('g')
            .and_then(|r| r.split('/').next())
            .and_then(|g| g.parse::<usize>().ok())
            .filter(|g| *g < GROUPS)
            .ok_or_else(|| format!("unexpected key {k}"))?;
        groups.entry(g).or_default().push(v);
    }
    for (g, values) in &groups {
        if values.len() != KEYS_PER_GROUP {
            return Err(format!(
                "group {g} has {} of {KEYS_PER_GROUP} keys: a batch was seen in part",
                values.len()
            ));
        }
        if values.iter().any(|v| v != &values[0]) {
            let shown: Vec<_> = values.iter().map(|v| String::from_utf8_lossy(v)).collect();
            return Err(format!("group {g} mixes batches: {shown:?}"));
        }
        let v = std::str::from_utf8(values[0]).map_err(|_| "non-utf8 value".to_string())?;
        let (w, c) = v
            .strip_prefix('w')
            .and_then(|r| r.split_once(':'))
            .and_then(|(w, c)| Some((w.parse::<usize>().ok()?, c.parse::<u64>().ok()?)))
            .filter(|(w, _)| *w < WRITERS)
            .ok_or_else(|| format!("unexpected value {v}"))?;
        if c > ctrs[w] {
            return Err(format!(
                "group {g} holds writer {w}'s batch {c} but the view's counter of writer {w} is {}",
                ctrs[w]
            ));
        }
    }
    Ok(ctrs)
}

fn read_snapshot(snap: &dyn Snapshot) -> Result<View, String> {
    common::collect(snap.scan(ScanRange::all(), Direction::Forward))
        .map_err(|e| format!("snapshot scan: {e:?}"))
}

fn writer(store: Arc<dyn Storage>, w: usize, start: Arc<Barrier>) -> Result<(), String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64 + 1);
    start.wait();
    for c in 1..=BATCHES_PER_WRITER {
        let mut b = WriteBatch::new();
        let n_groups = if rng.gen_bool(0.2) { 2 } else { 1 };
        for _ in 0..n_groups {
            let g = rng.gen_range(0..GROUPS);
            let delete = rng.gen_bool(0.2);
            for j in 0..KEYS_PER_GROUP {
                if delete {
                    b.delete(group_key(g, j));
                } else {
                    b.put(group_key(g, j), format!("w{w}:{c}"));
                }
            }
        }
        b.put(ctr_key(w), c.to_string());
        // As the apply loop does: read, then write, in one session.
        let session = (c % 2 == 0).then(|| WriterSession::begin(&store));
        if session.is_some() {
            let mut seen = None;
            store
                .read_with(ctr_key(w).as_bytes(), &mut |v| {
                    seen = v.map(|v| v.as_slice().to_vec())
                })
                .map_err(|e| format!("writer {w} read in session {c}: {e:?}"))?;
            let want = (c - 1).to_string().into_bytes();
            if seen.as_ref() != Some(&want) {
                return Err(format!(
                    "writer {w} batch {c}: read {seen:?} back in its session, wrote {want:?}"
                ));
            }
        }
        store
            .write(b, WriteOptions::DEFAULT)
            .map_err(|e| format!("writer {w} batch {c}: {e:?}"))?;
        drop(session);
    }
    Ok(())
}

fn reader(store: Arc<dyn Storage>, r: usize, start: Arc<Barrier>) -> Result<(), String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(100 + r as u64);
    let mut kept: VecDeque<(Box<dyn Snapshot>, u64, View)> = VecDeque::new();
    let mut prev_seq = 0u64;
    let mut prev_ctrs = [0u64; WRITERS];
    start.wait();
    for i in 0..READS_PER_READER {
        let snap = store.snapshot();
        let seq = snap.seq();
        if seq < prev_seq {
            return Err(format!(
                "reader {r}: snapshot seq went back {prev_seq} -> {seq}"
            ));
        }
        prev_seq = seq;
        let view = read_snapshot(&*snap)?;
        let ctrs = check_view(&view).map_err(|e| format!("reader {r} snapshot {i}: {e}"))?;
        for w in 0..WRITERS {
            if ctrs[w] < prev_ctrs[w] {
                return Err(format!(
                    "reader {r} snapshot {i}: writer {w}'s counter went back {} -> {}",
                    prev_ctrs[w], ctrs[w]
                ));
            }
        }
        prev_ctrs = ctrs;

        // Point reads on the same snapshot agree with its scan.
        for _ in 0..4 {
            let key = group_key(rng.gen_range(0..GROUPS), rng.gen_range(0..KEYS_PER_GROUP));
            let got = snap
                .get(key.as_bytes())
                .map_err(|e| format!("snapshot get: {e:?}"))?
                .map(|b| b.to_vec());
            let want = view
                .iter()
                .find(|(k, _)| k == key.as_bytes())
                .map(|(_, v)| v.clone());
            if got != want {
                return Err(format!(
                    "reader {r} snapshot {i}: get {key} = {got:?} but its scan had {want:?}"
                ));
            }
        }

        // A snapshot taken earlier still reads exactly as it did.
        if let Some((old, old_seq, old_view)) = kept.get(rng.gen_range(0..kept.len().max(1))) {
            if old.seq() != *old_seq {
                return Err(format!(
                    "reader {r}: snapshot seq changed {old_seq} -> {}",
                    old.seq()
                ));
            }
            let again = read_snapshot(&**old)?;
            if &again != old_view {
                return Err(format!(
                    "reader {r}: snapshot at seq {old_seq} changed while writers went on \
                     ({} entries before, {} now)",
                    old_view.len(),
                    again.len()
                ));
            }
            let reversed = common::collect(old.scan(ScanRange::all(), Direction::Reverse))
                .map_err(|e| format!("reverse scan: {e:?}"))?;
            if !reversed.iter().eq(old_view.iter().rev()) {
                return Err(format!("reader {r}: reverse scan of seq {old_seq} differs"));
            }
        }
        kept.push_back((snap, seq, view));
        if kept.len() > 4 {
            kept.pop_front();
        }

        // The store's own scans are implicit snapshots and must be whole too, also when
        // restricted to one group (prefix) or read in reverse.
        let implicit = common::collect(store.scan(ScanRange::all(), Direction::Forward))
            .map_err(|e| format!("store scan: {e:?}"))?;
        check_view(&implicit).map_err(|e| format!("reader {r} implicit scan {i}: {e}"))?;
        let mut rev = common::collect(store.scan(ScanRange::all(), Direction::Reverse))
            .map_err(|e| format!("store reverse scan: {e:?}"))?;
        rev.reverse();
        check_view(&rev).map_err(|e| format!("reader {r} implicit reverse scan {i}: {e}"))?;
        let g = rng.gen_range(0..GROUPS);
        let group =
            common::collect(store.scan(ScanRange::prefix(format!("g{g}/")), Direction::Forward))
                .map_err(|e| format!("store prefix scan: {e:?}"))?;
        if !group.is_empty()
            && (group.len() != KEYS_PER_GROUP || group.iter().any(|(_, v)| v != &group[0].1))
        {
            let shown: Vec<_> = group
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        String::from_utf8_lossy(k),
                        String::from_utf8_lossy(v)
                    )
                })
                .collect();
            return Err(format!(
                "reader {r}: prefix scan of group {g} is torn: {shown:?}"
            ));
        }
    }
    Ok(())
}

fn snapshots_see_whole_batches_under_concurrent_writers(kind: EngineKind) {
    // Several short rounds on fresh stores rather than one long one: the start of a
    // store's life (first flushes and merges under snapshots) is where races showed.
    for round in 0..ROUNDS {
        one_round(kind, round);
    }
}

fn one_round(kind: EngineKind, round: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open(kind, dir.path());
    let start = Arc::new(Barrier::new(WRITERS + READERS + 2));
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let (s, b) = (Arc::clone(&store), Arc::clone(&start));
        handles.push(thread::spawn(move || writer(s, w, b)));
    }
    for r in 0..READERS {
        let (s, b) = (Arc::clone(&store), Arc::clone(&start));
        handles.push(thread::spawn(move || reader(s, r, b)));
    }
    let compactor = {
        let (s, b) = (Arc::clone(&store), Arc::clone(&start));
        thread::spawn(move || -> Result<(), String> {
            b.wait();
            for i in 0..COMPACTIONS {
                s.compact().map_err(|e| format!("compact #{i}: {e:?}"))?;
                thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        })
    };
    handles.push(compactor);
    let prefetcher = {
        let (s, b) = (Arc::clone(&store), Arc::clone(&start));
        thread::spawn(move || -> Result<(), String> {
            let mut keys: Vec<String> = (0..GROUPS)
                .flat_map(|g| (0..=KEYS_PER_GROUP).map(move |j| group_key(g, j)))
                .chain((0..=WRITERS).map(ctr_key))
                .collect();
            keys.push(String::new());
            let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            b.wait();
            for _ in 0..PREFETCHES {
                s.prefetch(&keys);
                thread::yield_now();
            }
            Ok(())
        })
    };
    handles.push(prefetcher);
    let mut errors = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a thread panicked".to_string()),
        }
    }
    assert!(errors.is_empty(), "{kind} round {round}: {errors:#?}");

    // Final state: whole batches, and each writer's last batch is in.
    let view: View = common::dump(&*store).into_iter().collect();
    let ctrs = check_view(&view).expect("final state is whole batches");
    assert_eq!(
        ctrs, [BATCHES_PER_WRITER; WRITERS],
        "{kind} round {round}: final counters"
    );
    let store = common::reopen(store, dir.path());
    let again: View = common::dump(&*store).into_iter().collect();
    assert_eq!(again, view, "{kind} round {round}: contents after reopen");
}

/// A narrower probe of the same property: one writer overwriting a few keys as fast as
/// it can, compactions back to back, and a reader that scans each new snapshot twice
/// with a pause between; the two reads must be equal (compaction must not drop or
/// expose versions under a live snapshot).
fn snapshot_reads_stay_fixed_while_compacting(kind: EngineKind) {
    const READS: usize = 300;
    const MAX_WRITES: u64 = 500_000;
    const MAX_COMPACTIONS: u64 = 2_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open(kind, dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, stop) = (Arc::clone(&store), Arc::clone(&stop));
        thread::spawn(move || -> Result<u64, String> {
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) && i < MAX_WRITES {
                let mut b = WriteBatch::new();
                for j in 0..4 {
                    b.put(format!("k{:02}", (i + j) % 16), i.to_string());
                }
                if i.is_multiple_of(5) {
                    b.delete(format!("k{:02}", (i * 7) % 16));
                }
                s.write(b, WriteOptions::DEFAULT)
                    .map_err(|e| format!("write {i}: {e:?}"))?;
                i += 1;
                // Keeps writing for the whole read phase without piling up data.
                if i.is_multiple_of(50) {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            Ok(i)
        })
    };
    let compactor = {
        let (s, stop) = (Arc::clone(&store), Arc::clone(&stop));
        thread::spawn(move || -> Result<u64, String> {
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) && n < MAX_COMPACTIONS {
                s.compact().map_err(|e| format!("compact #{n}: {e:?}"))?;
                n += 1;
            }
            Ok(n)
        })
    };
    let mut changed = Vec::new();
    for it in 0..READS {
        let snap = store.snapshot();
        let first = common::collect(snap.scan(ScanRange::all(), Direction::Forward));
        thread::sleep(Duration::from_millis(1));
        let second = common::collect(snap.scan(ScanRange::all(), Direction::Forward));
        match (first, second) {
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(a), Ok(b)) => changed.push(format!(
                "read {it}: snapshot at seq {} changed between two scans ({} then {} entries)",
                snap.seq(),
                a.len(),
                b.len()
            )),
            (a, b) => changed.push(format!(
                "read {it}: scan failed: {:?} / {:?}",
                a.err(),
                b.err()
            )),
        }
    }
    stop.store(true, Ordering::Release);
    let writes = writer.join().expect("writer thread").expect("writer");
    let compactions = compactor
        .join()
        .expect("compactor thread")
        .expect("compactor");
    assert!(
        changed.is_empty(),
        "{kind}: {} of {READS} snapshots changed under compaction ({writes} batches, \
         {compactions} compactions), e.g. {:#?}",
        changed.len(),
        &changed[..changed.len().min(3)]
    );
}

/// Writes `value` to `key` from another thread and reports on `done` when it returns.
fn write_from_another_thread(
    store: &Arc<dyn Storage>,
    value: &'static str,
) -> std::sync::mpsc::Receiver<Result<u64, String>> {
    let (done, rx) = std::sync::mpsc::channel();
    let store = Arc::clone(store);
    thread::spawn(move || {
        let mut b = WriteBatch::new();
        b.put("k", value);
        let r = store
            .write(b, WriteOptions::DEFAULT)
            .map_err(|e| format!("{e:?}"));
        let _ = done.send(r);
    });
    rx
}

/// The memory engine's writer session holds its writer lock for the session's thread:
/// another thread's write waits until the session ends, the session's own writes do
/// not, and a thread that unwinds out of a session ends it.
#[test]
fn a_writer_session_excludes_other_writers_until_it_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open(EngineKind::Memory, dir.path());
    let session = WriterSession::begin(&store);
    assert!(
        !store.begin_writer_session(),
        "a second session on the thread that has one"
    );
    let other = write_from_another_thread(&store, "other");
    assert!(
        other.recv_timeout(Duration::from_millis(200)).is_err(),
        "another thread's write went through during the session"
    );
    let mut b = WriteBatch::new();
    b.put("k", "mine");
    store
        .write(b, WriteOptions::DEFAULT)
        .expect("the session's own write");
    drop(session);
    other
        .recv_timeout(Duration::from_secs(30))
        .expect("the other write once the session ended")
        .expect("the other write succeeds");
    assert_eq!(
        store.get(b"k").expect("get").as_deref(),
        Some(&b"other"[..]),
        "the other write came after the session's"
    );

    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _session = WriterSession::begin(&store);
        panic!("unwinding out of a writer session");
    }));
    assert!(unwound.is_err());
    write_from_another_thread(&store, "after")
        .recv_timeout(Duration::from_secs(30))
        .expect("a write after the unwound session")
        .expect("that write succeeds");
    assert_eq!(
        store.get(b"k").expect("get").as_deref(),
        Some(&b"after"[..])
    );
}
