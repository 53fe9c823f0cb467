//! What `Engine::prefetch` and `Engine::prefetch_reads` ask the store for: a recording
//! store in front of the memory engine notes every key of every prefetch hint.

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::T;
use keel_engine::engine::PrefetchScratch;
use keel_engine::keys;
use keel_engine::meta::{Body, ListShape, Meta};
use keel_storage::{
    Direction, EngineKind, KvIter, LifecycleState, OpenOptions, Result, ScanRange, Snapshot,
    Storage, StorageStats, ValueRef, WriteBatch, WriteOptions,
};
use parking_lot::Mutex;

/// Forwards everything to `inner` and records the keys of prefetch hints.
struct Recording {
    inner: Arc<dyn Storage>,
    hinted: Mutex<Vec<Vec<u8>>>,
    /// The keys of readers' hints (`prefetch_reads`), each call's as one list.
    read_hints: Mutex<Vec<Vec<Vec<u8>>>>,
}

impl Storage for Recording {
    fn kind(&self) -> EngineKind {
        self.inner.kind()
    }
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.inner.get(key)
    }
    fn read_with(&self, key: &[u8], f: &mut dyn FnMut(Option<ValueRef<'_>>)) -> Result<()> {
        self.inner.read_with(key, f)
    }
    fn scan(&self, range: ScanRange, dir: Direction) -> KvIter {
        self.inner.scan(range, dir)
    }
    fn prefetch(&self, keys: &[&[u8]]) {
        self.hinted.lock().extend(keys.iter().map(|k| k.to_vec()));
        self.inner.prefetch(keys);
    }
    fn prefetch_reads(&self, keys: &[&[u8]]) {
        self.read_hints
            .lock()
            .push(keys.iter().map(|k| k.to_vec()).collect());
        self.inner.prefetch_reads(keys);
    }
    fn write(&self, batch: WriteBatch, opts: WriteOptions) -> Result<u64> {
        self.inner.write(batch, opts)
    }
    fn snapshot(&self) -> Box<dyn Snapshot> {
        self.inner.snapshot()
    }
    fn last_seq(&self) -> u64 {
        self.inner.last_seq()
    }
    fn sync(&self) -> Result<()> {
        self.inner.sync()
    }
    fn checkpoint(&self, dir: &Path) -> Result<()> {
        self.inner.checkpoint(dir)
    }
    fn compact(&self) -> Result<()> {
        self.inner.compact()
    }
    fn stats(&self) -> StorageStats {
        self.inner.stats()
    }
    fn state(&self) -> LifecycleState {
        self.inner.state()
    }
    fn failure_reason(&self) -> Option<String> {
        self.inner.failure_reason()
    }
    fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

/// A collection's version and, for a list, its shape, from its metadata.
fn shape(store: &dyn Storage, key: &str) -> (u64, Option<ListShape>) {
    let raw = store
        .get(&keys::meta_key(0, key.as_bytes()))
        .expect("get")
        .expect("the key exists");
    match Meta::decode(key.as_bytes(), raw).expect("decode").body {
        Body::Collection { version, list, .. } => (version, list),
        Body::String(_) => panic!("{key} is a string"),
    }
}

/// The storage key of the record holding a list element, as the list commands build it.
fn element(version: u64, l: ListShape, index: i64) -> Vec<u8> {
    let chunk = index >> l.chunk_shift;
    let enc = ((chunk as u64) ^ (1 << 63)).to_be_bytes();
    keys::sub_key(0, b"", version, &enc).to_vec()
}

fn member(version: u64, m: &str) -> Vec<u8> {
    keys::sub_key(0, b"", version, m.as_bytes()).to_vec()
}

/// A memory engine in a temporary directory (kept alive by the returned guard) behind
/// a [`Recording`] store.
fn recording_memory_store() -> (tempfile::TempDir, Arc<Recording>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let inner =
        keel_storage::open(dir.path(), &OpenOptions::new(EngineKind::Memory)).expect("open");
    let store = Arc::new(Recording {
        inner,
        hinted: Mutex::new(Vec::new()),
        read_hints: Mutex::new(Vec::new()),
    });
    (dir, store)
}

#[test]
fn collection_writes_prefetch_the_member_records_they_read() {
    let (_dir, store) = recording_memory_store();
    let mut t = T::with_store(store.clone());
    t.w(&["SADD", "s", "a"]);
    t.w(&["HSET", "h", "f", "v"]);
    t.w(&["ZADD", "z", "1", "m"]);
    t.w(&["RPUSH", "l", "e0", "e1", "e2", "e3"]);
    t.w(&["SET", "str", "x"]);
    let (sv, _) = shape(store.as_ref(), "s");
    let (hv, _) = shape(store.as_ref(), "h");
    let (zv, _) = shape(store.as_ref(), "z");
    let (lv, ends) = shape(store.as_ref(), "l");
    let l = ends.expect("list shape");
    let (head, tail) = (l.head, l.tail);
    let round = common::ops(&[
        "SADD s b c",
        "HSET h f v2 g w",
        "ZADD z XX CH 2 m",
        "RPOP l",
        "RPOP l",
        "LPOP l 1",
        "SET str y",
        "LPOP str",
        "SADD nosuch x",
    ]);
    store.hinted.lock().clear();
    t.engine.prefetch(
        &mut PrefetchScratch::default(),
        round.iter().map(|op| (op, None)),
    );
    let hinted = store.hinted.lock().clone();
    let mut want = vec![
        member(sv, "b"),
        member(sv, "c"),
        member(hv, "f"),
        member(hv, "g"),
        member(zv, "m"),
        element(lv, l, tail - 1),
        element(lv, l, tail - 2),
        element(lv, l, head),
    ];
    // The three pops take from one chunk, named once.
    want.dedup();
    assert_eq!(want.len(), 6, "the list's four elements share a chunk");
    for w in &want {
        assert!(
            hinted.contains(w),
            "{w:?} not prefetched; hinted {hinted:?}"
        );
    }
    // One member record per member named above: nothing for strings or absent keys.
    let members = hinted
        .iter()
        .filter(|k| k.first() == Some(&keys::SUB))
        .count();
    assert_eq!(members, want.len(), "{hinted:?}");
    assert!(hinted.contains(&keys::meta_key(0, b"s").to_vec()));
}

/// A round of one write naming one key (and no members) asks storage for nothing:
/// there is nothing to overlap. One write of several keys, or of a member, still asks.
#[test]
fn a_lone_one_key_write_skips_the_storage_probe() {
    let (_dir, store) = recording_memory_store();
    let t = T::with_store(store.clone());
    let hinted_by = |cmds: &[&str]| {
        let round = common::ops(cmds);
        store.hinted.lock().clear();
        t.engine.prefetch(
            &mut PrefetchScratch::default(),
            round.iter().map(|op| (op, None)),
        );
        store.hinted.lock().clone()
    };
    assert_eq!(hinted_by(&["SET a 1"]), Vec::<Vec<u8>>::new());
    assert_eq!(hinted_by(&["INCR n"]), Vec::<Vec<u8>>::new());
    let two_sets = hinted_by(&["SET a 1", "SET b 2"]);
    assert!(
        two_sets.contains(&keys::meta_key(0, b"a").to_vec()),
        "{two_sets:?}"
    );
    assert!(
        two_sets.contains(&keys::meta_key(0, b"b").to_vec()),
        "{two_sets:?}"
    );
    let mset = hinted_by(&["MSET a 1 b 2"]);
    assert_eq!(mset.len(), 2, "{mset:?}");
    let hset = hinted_by(&["HSET h f v"]);
    assert!(hset.contains(&keys::meta_key(0, b"h").to_vec()), "{hset:?}");
}

/// A connection's hint for the reads it parsed asks for each key's metadata record, in
/// windows of at most 16 keys, through the readers' call only.
#[test]
fn prefetch_reads_asks_for_each_keys_metadata_in_windows() {
    let (_dir, store) = recording_memory_store();
    let mut t = T::with_store(store.clone());
    t.w(&["SET", "a", "1"]);
    store.hinted.lock().clear();
    let names: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let reads = std::iter::once((0u8, &b"a"[..]))
        .chain(std::iter::once((3u8, &b"other-db"[..])))
        .chain(names.iter().map(|n| (0u8, n.as_bytes())));
    t.engine
        .prefetch_reads(&mut PrefetchScratch::default(), reads);
    let calls = store.read_hints.lock().clone();
    assert_eq!(
        calls.iter().map(Vec::len).collect::<Vec<_>>(),
        [16, 6],
        "22 keys in windows of 16"
    );
    let mut want = vec![
        keys::meta_key(0, b"a").to_vec(),
        keys::meta_key(3, b"other-db").to_vec(),
    ];
    want.extend(
        names
            .iter()
            .map(|n| keys::meta_key(0, n.as_bytes()).to_vec()),
    );
    assert_eq!(calls.concat(), want);
    assert!(
        store.hinted.lock().is_empty(),
        "the writer's hint (which excludes writers) is not used"
    );
    assert_eq!(
        t.r(&["GET", "a"]),
        keel_engine::Reply::Bulk(bytes::Bytes::from("1"))
    );

    // Repeats of one key count once, and one key alone asks for nothing.
    store.read_hints.lock().clear();
    let one_list = std::iter::repeat_n((0u8, &b"list"[..]), 16);
    t.engine
        .prefetch_reads(&mut PrefetchScratch::default(), one_list);
    assert!(store.read_hints.lock().is_empty());
    let two = [(0u8, &b"x"[..]), (0, b"x"), (0, b"y"), (0, b"y")];
    t.engine
        .prefetch_reads(&mut PrefetchScratch::default(), two);
    assert_eq!(
        store.read_hints.lock().concat(),
        [
            keys::meta_key(0, b"x").to_vec(),
            keys::meta_key(0, b"y").to_vec()
        ]
    );
}

/// A read naming several keys (MGET, EXISTS of many) asks for all of them before its
/// first look-up; a one-key read asks for nothing.
#[test]
fn a_read_of_several_keys_prefetches_them_together() {
    let (_dir, store) = recording_memory_store();
    let mut t = T::with_store(store.clone());
    t.w(&["MSET", "a", "1", "b", "2"]);
    store.read_hints.lock().clear();
    assert_eq!(
        t.r(&["MGET", "a", "nosuch", "b"]),
        keel_engine::Reply::Array(vec![
            keel_engine::Reply::Bulk(bytes::Bytes::from("1")),
            keel_engine::Reply::Nil,
            keel_engine::Reply::Bulk(bytes::Bytes::from("2")),
        ])
    );
    assert_eq!(
        store.read_hints.lock().concat(),
        [
            keys::meta_key(0, b"a").to_vec(),
            keys::meta_key(0, b"nosuch").to_vec(),
            keys::meta_key(0, b"b").to_vec(),
        ]
    );
    store.read_hints.lock().clear();
    t.r(&["GET", "a"]);
    t.r(&["EXISTS", "a"]);
    t.r(&["MGET", "a"]);
    assert!(store.read_hints.lock().is_empty());
    assert_eq!(t.r(&["EXISTS", "a", "b", "c"]), keel_engine::Reply::Int(2));
    assert_eq!(store.read_hints.lock().concat().len(), 3);
}
