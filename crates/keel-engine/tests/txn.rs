//! Optimistic snapshot-isolation transactions, tested anomaly by anomaly (the names are
//! the usual ones: dirty write/read, lost update, fuzzy read, read skew, phantom, write
//! skew). Snapshot isolation prevents all but write skew, which it permits by design.

mod common;

use bytes::Bytes;
use common::{b, T};
use keel_engine::{Op, Reply};
use keel_storage::EngineKind;

fn commit(t: &mut T, txn: keel_engine::txn::Txn) -> Reply {
    let (db, start_index, writes) = txn.into_commit().expect("commit content");
    let applied = t.apply(Op::TxnCommit {
        db,
        start_index,
        writes,
    });
    applied.replies.into_iter().next().expect("reply")
}

fn get(t: &T, txn: &keel_engine::txn::Txn, k: &str) -> Option<Bytes> {
    txn.get(k.as_bytes(), t.now).ok().flatten()
}

fn is_aborted_on(r: &Reply, key: &str) -> bool {
    matches!(r, Reply::Error(e) if e.starts_with("ABORTED") && e.contains(&format!("'{key}'")))
}

fn lost_update_is_prevented(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "k", "0"]);
    let mut t1 = t.engine.begin(0).expect("begin");
    let mut t2 = t.engine.begin(0).expect("begin");
    t1.put(b("k"), b("1"), None);
    t2.put(b("k"), b("2"), None);
    assert_eq!(commit(&mut t, t1), Reply::Ok);
    let r = commit(&mut t, t2);
    assert!(is_aborted_on(&r, "k"), "{r:?}");
    assert_eq!(t.r(&["GET", "k"]), Reply::Bulk(b("1")));
}

fn dirty_read_is_prevented(kind: EngineKind) {
    let mut t = T::new(kind);
    let mut t1 = t.engine.begin(0).expect("begin");
    t1.put(b("k"), b("uncommitted"), None);
    let t2 = t.engine.begin(0).expect("begin");
    assert_eq!(get(&t, &t2, "k"), None);
    assert_eq!(t.r(&["GET", "k"]), Reply::Nil);
    assert_eq!(
        get(&t, &t1, "k"),
        Some(b("uncommitted")),
        "own writes are visible"
    );
    assert_eq!(commit(&mut t, t1), Reply::Ok);
    assert_eq!(get(&t, &t2, "k"), None, "t2's snapshot predates the commit");
}

fn fuzzy_read_and_read_skew_are_prevented(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "a", "50"]);
    t.w(&["SET", "b", "50"]);
    let t1 = t.engine.begin(0).expect("begin");
    assert_eq!(get(&t, &t1, "a"), Some(b("50")));
    // A transfer commits between t1's two reads.
    let mut t2 = t.engine.begin(0).expect("begin");
    t2.put(b("a"), b("0"), None);
    t2.put(b("b"), b("100"), None);
    assert_eq!(commit(&mut t, t2), Reply::Ok);
    assert_eq!(get(&t, &t1, "a"), Some(b("50")));
    assert_eq!(get(&t, &t1, "b"), Some(b("50")));
}

fn phantoms_are_prevented(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "p:1", "x"]);
    t.w(&["SET", "p:3", "x"]);
    let t1 = t.engine.begin(0).expect("begin");
    let first = t1
        .scan(Some(b"p:"), Some(b"p;"), None, 100, t.now)
        .expect("scan");
    t.w(&["SET", "p:2", "new"]);
    t.w(&["DEL", "p:3"]);
    let second = t1
        .scan(Some(b"p:"), Some(b"p;"), None, 100, t.now)
        .expect("scan");
    assert_eq!(first, second);
    assert_eq!(first.len(), 2);
}

fn write_skew_is_permitted_by_snapshot_isolation(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "on_call:alice", "1"]);
    t.w(&["SET", "on_call:bob", "1"]);
    let mut t1 = t.engine.begin(0).expect("begin");
    let mut t2 = t.engine.begin(0).expect("begin");
    // Each sees two doctors on call and takes one off: disjoint write sets.
    assert_eq!(get(&t, &t1, "on_call:bob"), Some(b("1")));
    assert_eq!(get(&t, &t2, "on_call:alice"), Some(b("1")));
    t1.delete(b("on_call:alice"));
    t2.delete(b("on_call:bob"));
    assert_eq!(commit(&mut t, t1), Reply::Ok);
    assert_eq!(commit(&mut t, t2), Reply::Ok);
    assert_eq!(
        t.r(&["EXISTS", "on_call:alice", "on_call:bob"]),
        Reply::Int(0)
    );
}

fn conflicts_on_delete_and_create(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "gone", "1"]);
    let mut t1 = t.engine.begin(0).expect("begin");
    t.w(&["DEL", "gone"]);
    t1.put(b("gone"), b("2"), None);
    t1.put(b("other"), b("2"), None);
    let r = commit(&mut t, t1);
    assert!(is_aborted_on(&r, "gone"), "{r:?}");
    assert_eq!(
        t.r(&["EXISTS", "gone", "other"]),
        Reply::Int(0),
        "nothing written"
    );

    let mut t2 = t.engine.begin(0).expect("begin");
    t.w(&["SET", "born", "1"]);
    t2.delete(b("born"));
    let r = commit(&mut t, t2);
    assert!(is_aborted_on(&r, "born"), "{r:?}");
    assert_eq!(t.r(&["GET", "born"]), Reply::Bulk(b("1")));
}

fn commits_with_ttl_and_reads_own_scan(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "s:b", "old"]);
    let mut t1 = t.engine.begin(0).expect("begin");
    t1.put(b("s:a"), b("1"), Some(t.now + 1000));
    t1.delete(b("s:b"));
    t1.put(b("s:c"), b("3"), None);
    let seen = t1.scan(Some(b"s:"), None, None, 10, t.now).expect("scan");
    assert_eq!(seen, vec![(b("s:a"), b("1")), (b("s:c"), b("3"))]);
    let page = t1
        .scan(Some(b"s:"), None, Some(b"s:a"), 10, t.now)
        .expect("scan");
    assert_eq!(page, vec![(b("s:c"), b("3"))]);
    assert_eq!(commit(&mut t, t1), Reply::Ok);
    assert_eq!(t.r(&["GET", "s:a"]), Reply::Bulk(b("1")));
    t.now += 1001;
    assert_eq!(t.r(&["GET", "s:a"]), Reply::Nil);
    assert_eq!(t.r(&["GET", "s:c"]), Reply::Bulk(b("3")));
    assert_eq!(t.r(&["GET", "s:b"]), Reply::Nil);
}

all_engines!(
    lost_update_is_prevented,
    dirty_read_is_prevented,
    fuzzy_read_and_read_skew_are_prevented,
    phantoms_are_prevented,
    write_skew_is_permitted_by_snapshot_isolation,
    conflicts_on_delete_and_create,
    commits_with_ttl_and_reads_own_scan,
);
