//! The applied index: what a store records of it, per engine, and what reopening it
//! (or a memory checkpoint) gives back.

mod common;

use std::sync::Arc;

use common::cmd;
use keel_engine::{ApplyCtx, Engine, Op};
use keel_storage::{EngineKind, OpenOptions, Storage};

/// The internal record of the applied index, as the engine lays it out.
const RECORD: &[u8] = b"Xapplied-index";

fn open(kind: EngineKind, dir: &std::path::Path) -> Arc<dyn Storage> {
    keel_storage::open(dir, &OpenOptions::new(kind)).expect("open")
}

/// Applies `INCR n` as entries `from..=to`, one group each.
fn incr(engine: &Engine, from: u64, to: u64) {
    for seq in from..=to {
        let ctx = ApplyCtx {
            seq,
            now_ms: 1_700_000_000_000,
            seed: seq,
        };
        let op = Op::Command {
            db: 0,
            args: cmd(&["INCR", "n"]),
        };
        engine.apply(&ctx, &op).expect("apply");
    }
}

fn recorded(store: &dyn Storage) -> Option<u64> {
    store
        .get(RECORD)
        .expect("get")
        .map(|v| u64::from_le_bytes(v.as_ref().try_into().expect("8 bytes")))
}

#[test]
fn a_memory_store_records_the_index_only_for_its_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(EngineKind::Memory, dir.path());
    let engine = Engine::new(Arc::clone(&store)).expect("engine");
    incr(&engine, 1, 3);
    assert_eq!(engine.applied_index(), 3);
    assert_eq!(
        recorded(store.as_ref()),
        None,
        "no record between checkpoints"
    );

    engine.begin_checkpoint().expect("begin checkpoint");
    assert_eq!(
        recorded(store.as_ref()),
        Some(3),
        "recorded as the checkpoint begins"
    );
    incr(&engine, 4, 5);
    assert_eq!(
        recorded(store.as_ref()),
        Some(5),
        "every group records it meanwhile"
    );
    let cp = tempfile::tempdir().expect("tempdir");
    store.checkpoint(cp.path()).expect("checkpoint");
    engine.end_checkpoint();
    incr(&engine, 6, 7);
    assert_eq!(engine.applied_index(), 7);
    assert_eq!(
        recorded(store.as_ref()),
        Some(5),
        "not after the checkpoint"
    );

    // The checkpoint holds five increments and says so: a restart replays from 6.
    let reopened = open(EngineKind::Memory, cp.path());
    let engine = Engine::new(Arc::clone(&reopened)).expect("engine");
    assert_eq!(engine.applied_index(), 5);
    let r = engine
        .read(0, 1_700_000_000_000, &cmd(&["GET", "n"]))
        .expect("read");
    assert_eq!(r.reply, keel_engine::Reply::Bulk(common::b("5")));
}

#[test]
fn durable_stores_record_the_index_with_every_group() {
    for kind in [EngineKind::Bitcask, EngineKind::Lsm] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(kind, dir.path());
        let engine = Engine::new(Arc::clone(&store)).expect("engine");
        incr(&engine, 1, 4);
        assert_eq!(recorded(store.as_ref()), Some(4), "{kind}");
        drop(engine);
        store.close().expect("close");
        drop(store);
        let store = open(kind, dir.path());
        let engine = Engine::new(Arc::clone(&store)).expect("engine");
        assert_eq!(engine.applied_index(), 4, "{kind}: read back at open");
        incr(&engine, 5, 5);
        assert_eq!(recorded(store.as_ref()), Some(5), "{kind}");
    }
}

#[test]
fn a_transaction_starts_at_the_index_its_snapshot_reflects() {
    for kind in EngineKind::ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::new(open(kind, dir.path())).expect("engine");
        assert_eq!(engine.begin(0).expect("begin").start_index(), 0, "{kind}");
        incr(&engine, 1, 6);
        let txn = engine.begin(0).expect("begin");
        incr(&engine, 7, 8);
        assert_eq!(txn.start_index(), 6, "{kind}");
        assert_eq!(engine.begin(0).expect("begin").start_index(), 8, "{kind}");
    }
}
