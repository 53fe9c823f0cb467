//! The lsm engine runs fjall with two background threads at least, even where the process
//! may use one core: fjall's lone worker can block for good on its own full queue under
//! write load, and then never flushes again (see `background_threads` in `lsm/mod.rs`).
//!
//! A file of its own: it counts the process's fjall threads, so no other test may open
//! an engine while it runs.

use keel_storage::lsm::LsmEngine;
use keel_storage::{EngineKind, OpenOptions, Storage, SyncPolicy};

/// Threads of this process named like fjall's workers.
fn fjall_workers() -> usize {
    let tasks = std::fs::read_dir("/proc/self/task").expect("read /proc/self/task");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "fjall:worker")
        .count()
}

#[test]
fn fjall_gets_two_workers_on_a_single_core() {
    // The opening thread may use one core, as on a 1-CPU machine or in a container
    // limited to one: fjall would pick one worker for it.
    let mut one = rustix::thread::CpuSet::new();
    let allowed = rustix::thread::sched_getaffinity(None).expect("sched_getaffinity");
    let first = (0..rustix::thread::CpuSet::MAX_CPU)
        .find(|&c| allowed.is_set(c))
        .expect("an allowed CPU");
    one.set(first);
    rustix::thread::sched_setaffinity(None, &one).expect("sched_setaffinity");
    assert_eq!(
        std::thread::available_parallelism().map(usize::from).ok(),
        Some(1),
        "the thread now sees one core"
    );

    assert_eq!(fjall_workers(), 0, "no engine open yet");
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = LsmEngine::open(
        dir.path(),
        &OpenOptions::new(EngineKind::Lsm).sync_policy(SyncPolicy::No),
    )
    .expect("open lsm engine");
    // fjall names its threads as it spawns them, before open returns; a name set a
    // moment later would still show within the bound.
    let mut workers = fjall_workers();
    for _ in 0..100 {
        if workers >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        workers = fjall_workers();
    }
    assert_eq!(workers, 2, "fjall workers of an engine opened on one core");
    engine.close().expect("close");
}
