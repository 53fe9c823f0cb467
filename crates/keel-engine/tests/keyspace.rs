//! Generic key commands: RENAME/COPY/MOVE/SWAPDB over strings and (raw) collections,
//! KEYS/SCAN/DBSIZE/RANDOMKEY, FLUSH*, OBJECT, MEMORY USAGE, DUMP/RESTORE, background GC,
//! and a model-based property test of the key and expiry commands with a moving clock.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use common::{b, cmd, T};
use keel_engine::keys;
use keel_engine::meta::{Body, KeyType, ListShape, Meta};
use keel_engine::{Op, Reply};
use keel_storage::{Direction, EngineKind, ScanRange, WriteBatch, WriteOptions};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rand::{Rng, SeedableRng};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Applies a write command in database `db`.
fn wdb(t: &mut T, db: u8, parts: &[&str]) -> Reply {
    let applied = t.apply(Op::Command {
        db,
        args: cmd(parts),
    });
    applied.replies.into_iter().next().expect("one reply")
}

/// Applies a write command whose arguments are raw bytes.
fn wraw(t: &mut T, args: Vec<Bytes>) -> Reply {
    let applied = t.apply(Op::Command { db: 0, args });
    applied.replies.into_iter().next().expect("one reply")
}

/// A collection written straight into storage (the type modules are built elsewhere):
/// metadata plus S sub-keys `members` (suffix, value) and Z sub-keys `zindex`.
fn raw_collection(
    t: &T,
    db: u8,
    key: &str,
    kind: KeyType,
    members: &[(Vec<u8>, Vec<u8>)],
    zindex: &[(Vec<u8>, Vec<u8>)],
) {
    // Versions far above what the test log reaches, unique per call.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 60);
    let version = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut meta = Meta::collection(kind, version);
    meta.body = Body::Collection {
        version,
        len: members.len() as u64,
        // One element per record: the layout of lists written before packing.
        list: (kind == KeyType::List).then_some(ListShape {
            head: 0,
            tail: members.len() as i64,
            chunk_shift: 0,
        }),
    };
    let mut wb = WriteBatch::new();
    wb.put(keys::meta_key(db, key.as_bytes()), meta.encode());
    for (s, v) in members {
        wb.put(
            keys::sub_key(db, key.as_bytes(), version, s),
            Bytes::copy_from_slice(v),
        );
    }
    for (s, v) in zindex {
        let mut k = keys::sub_prefix(keys::ZSCORE_IDX, db, key.as_bytes(), version);
        k.extend_from_slice(s);
        wb.put(k.freeze(), Bytes::copy_from_slice(v));
    }
    t.engine
        .storage()
        .write(wb, WriteOptions::DEFAULT)
        .expect("raw write");
}

fn members(n: usize, prefix: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                format!("{prefix}{i:05}").into_bytes(),
                format!("val{i:05}").into_bytes(),
            )
        })
        .collect()
}

/// What storage holds for `key`: metadata and its S and Z sub-keys as (suffix, value).
#[allow(clippy::type_complexity)]
fn raw_read(
    t: &T,
    db: u8,
    key: &str,
) -> Option<(Meta, Vec<(Vec<u8>, Vec<u8>)>, Vec<(Vec<u8>, Vec<u8>)>)> {
    let store = t.engine.storage();
    let mk = keys::meta_key(db, key.as_bytes());
    let raw = store.get(&mk).expect("get")?;
    let meta = Meta::decode(&mk, raw).expect("decode");
    let (s, z) = match meta.body {
        Body::Collection { version, .. } => (
            sub_entries(t, keys::SUB, db, key, version),
            sub_entries(t, keys::ZSCORE_IDX, db, key, version),
        ),
        Body::String(_) => (Vec::new(), Vec::new()),
    };
    Some((meta, s, z))
}

fn sub_entries(t: &T, tag: u8, db: u8, key: &str, version: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let prefix = keys::sub_prefix(tag, db, key.as_bytes(), version);
    let plen = prefix.len();
    t.engine
        .storage()
        .scan(ScanRange::prefix(prefix), Direction::Forward)
        .map(|r| {
            let (k, v) = r.expect("scan");
            (k[plen..].to_vec(), v.to_vec())
        })
        .collect()
}

/// Number of storage keys starting with `prefix`.
fn count_prefix(t: &T, prefix: &[u8]) -> usize {
    t.engine
        .storage()
        .scan(ScanRange::prefix(prefix), Direction::Forward)
        .count()
}

/// Runs GC steps until the queue is empty (bounded); returns sub-keys deleted.
fn gc_all(t: &T, step: usize) -> usize {
    let mut deleted = 0;
    for _ in 0..10_000 {
        let p = t.engine.gc_step(step).expect("gc");
        deleted += p.deleted;
        if !p.more {
            return deleted;
        }
    }
    panic!("gc did not finish in 10000 steps");
}

fn bulks(r: &Reply) -> Vec<String> {
    match r {
        Reply::Array(items) => items
            .iter()
            .map(|i| match i {
                Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("not a bulk: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

fn err(s: &str) -> Reply {
    Reply::err(s)
}

// ---------------------------------------------------------------------------------------
// RENAME / COPY / MOVE / SWAPDB
// ---------------------------------------------------------------------------------------

fn rename_strings(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["RENAME", "nope", "x"]), err("ERR no such key"));
    assert_eq!(t.w(&["RENAMENX", "nope", "x"]), err("ERR no such key"));
    t.w(&["SET", "a", "1", "PX", "5000"]);
    assert_eq!(t.w(&["RENAME", "a", "a"]), Reply::Ok);
    assert_eq!(t.w(&["RENAMENX", "a", "a"]), Reply::Int(0));
    assert_eq!(t.w(&["RENAME", "a", "b"]), Reply::Ok);
    assert_eq!(t.r(&["GET", "a"]), Reply::Nil);
    assert_eq!(t.r(&["GET", "b"]), Reply::Bulk(b("1")));
    assert_eq!(
        t.r(&["PTTL", "b"]),
        Reply::Int(5000),
        "TTL moves with the key"
    );
    t.w(&["SET", "c", "3"]);
    assert_eq!(t.w(&["RENAMENX", "b", "c"]), Reply::Int(0));
    assert_eq!(t.w(&["RENAME", "b", "c"]), Reply::Ok);
    assert_eq!(t.r(&["GET", "c"]), Reply::Bulk(b("1")));
    assert_eq!(t.r(&["PTTL", "c"]), Reply::Int(5000));
    assert_eq!(t.w(&["RENAMENX", "c", "d"]), Reply::Int(1));
    assert_eq!(t.r(&["EXISTS", "b", "c", "d"]), Reply::Int(1));
    // The expiry index follows: the cycle deletes "d" at its time, not a stale name.
    t.now += 5000;
    let a = t.apply(Op::ExpireCycle { max: 10 });
    assert_eq!(a.replies.as_slice(), [Reply::Int(1)]);
    assert_eq!(count_prefix(&t, &[keys::EXPIRY_IDX]), 0);
    assert_eq!(count_prefix(&t, &[keys::META]), 0);
}

fn rename_copy_move_collections(kind: EngineKind) {
    let mut t = T::new(kind);
    let m = members(50, "f");
    let z = members(50, "z");
    raw_collection(&t, 0, "h", KeyType::Hash, &m, &[]);
    raw_collection(&t, 0, "zs", KeyType::ZSet, &m, &z);
    raw_collection(&t, 0, "l", KeyType::List, &m, &[]);
    t.w(&["PEXPIRE", "zs", "9000"]);
    let (zmeta, _, _) = raw_read(&t, 0, "zs").expect("zs");

    let (hmeta, _, _) = raw_read(&t, 0, "h").expect("h");
    let subs_before = count_prefix(&t, &[keys::SUB]);
    assert_eq!(t.w(&["RENAME", "h", "h2"]), Reply::Ok);
    let (meta, s, zz) = raw_read(&t, 0, "h2").expect("h2 exists");
    // O(1): the collection keeps its version and no sub-key was written or orphaned.
    assert_eq!(meta.version(), hmeta.version());
    assert_eq!(count_prefix(&t, &[keys::SUB]), subs_before);
    assert_eq!(count_prefix(&t, &[keys::GC_QUEUE]), 0);
    assert_eq!(meta.kind, KeyType::Hash);
    assert_eq!(meta.len(), 50);
    assert_eq!(s, m);
    assert!(zz.is_empty());
    assert!(raw_read(&t, 0, "h").is_none());
    assert_eq!(t.r(&["TYPE", "h2"]), Reply::Simple("hash".into()));

    // COPY keeps the source, copies both prefixes and the TTL, under a new version.
    assert_eq!(t.w(&["COPY", "zs", "zs2"]), Reply::Int(1));
    let (m2, s2, z2) = raw_read(&t, 0, "zs2").expect("copy");
    assert_eq!((s2, z2), (m.clone(), z.clone()));
    assert_ne!(m2.version(), zmeta.version());
    assert_eq!(m2.expire_at, zmeta.expire_at);
    assert!(raw_read(&t, 0, "zs").is_some());
    assert_eq!(t.w(&["COPY", "zs", "zs2"]), Reply::Int(0));
    assert_eq!(t.w(&["COPY", "l", "zs2", "REPLACE"]), Reply::Int(1));
    let (m3, s3, _) = raw_read(&t, 0, "zs2").expect("replaced");
    assert_eq!(m3.kind, KeyType::List);
    assert_eq!(m3.body, {
        let Body::Collection { version, .. } = m3.body else {
            panic!("collection")
        };
        Body::Collection {
            version,
            len: 50,
            list: Some(ListShape {
                head: 0,
                tail: 50,
                chunk_shift: 0,
            }),
        }
    });
    assert_eq!(s3, m);
    assert_eq!(
        m3.expire_at, None,
        "REPLACE takes the source's (absent) TTL"
    );

    // COPY across databases and MOVE.
    assert_eq!(t.w(&["COPY", "zs", "zs", "DB", "3"]), Reply::Int(1));
    assert_eq!(
        raw_read(&t, 3, "zs").map(|(_, s, z)| (s, z)),
        Some((m.clone(), z.clone()))
    );
    assert_eq!(t.w(&["MOVE", "h2", "3"]), Reply::Int(1));
    assert!(raw_read(&t, 0, "h2").is_none());
    assert_eq!(raw_read(&t, 3, "h2").map(|(_, s, _)| s), Some(m.clone()));
    assert_eq!(t.w(&["MOVE", "zs", "3"]), Reply::Int(0), "exists in target");

    // RENAME and MOVE hand the version over, so the only orphan is the destination that
    // COPY REPLACE overwrote: zs2's first version (50 members + 50 index entries).
    let live_before = count_prefix(&t, &[keys::SUB]) + count_prefix(&t, &[keys::ZSCORE_IDX]);
    let deleted = gc_all(&t, 37);
    let live_after = count_prefix(&t, &[keys::SUB]) + count_prefix(&t, &[keys::ZSCORE_IDX]);
    assert_eq!(deleted, 100);
    assert_eq!(live_before - live_after, 100);
    assert_eq!(count_prefix(&t, &[keys::GC_QUEUE]), 0);
    // What is live is untouched.
    for (db, k) in [(0, "zs"), (0, "zs2"), (0, "l"), (3, "zs"), (3, "h2")] {
        let (meta, s, _) = raw_read(&t, db, k).expect("still there");
        assert_eq!(s.len() as u64, meta.len(), "{db}/{k}");
    }
}

fn copy_and_move_errors(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "a", "1"]);
    let same = err("ERR source and destination objects are the same");
    assert_eq!(t.w(&["COPY", "a", "a"]), same);
    assert_eq!(t.w(&["COPY", "a", "a", "DB", "0"]), same);
    assert_eq!(t.w(&["COPY", "a", "a", "DB", "1"]), Reply::Int(1));
    assert_eq!(t.r_db(1, &["GET", "a"]), Reply::Bulk(b("1")));
    assert_eq!(
        t.w(&["COPY", "a", "b", "DB", "16"]),
        err("ERR DB index is out of range")
    );
    assert_eq!(
        t.w(&["COPY", "a", "b", "DB", "-1"]),
        err("ERR DB index is out of range")
    );
    assert_eq!(
        t.w(&["COPY", "a", "b", "DB", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(t.w(&["COPY", "a", "b", "DB"]), err("ERR syntax error"));
    assert_eq!(t.w(&["COPY", "a", "b", "FOO"]), err("ERR syntax error"));
    assert_eq!(t.w(&["COPY", "nope", "b"]), Reply::Int(0));
    assert_eq!(t.w(&["MOVE", "a", "0"]), same);
    assert_eq!(
        t.w(&["MOVE", "a", "99"]),
        err("ERR DB index is out of range")
    );
    assert_eq!(
        t.w(&["MOVE", "a", "one"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(t.w(&["MOVE", "nope", "2"]), Reply::Int(0));
    assert_eq!(t.w(&["MOVE", "a", "1"]), Reply::Int(0), "exists in db 1");
    assert_eq!(t.w(&["MOVE", "a", "2"]), Reply::Int(1));
    assert_eq!(t.r(&["EXISTS", "a"]), Reply::Int(0));
    assert_eq!(t.r_db(2, &["GET", "a"]), Reply::Bulk(b("1")));
    assert_eq!(
        t.w(&["RENAME", "a"]),
        err("ERR wrong number of arguments for 'rename' command")
    );
}

fn swapdb_swaps_everything(kind: EngineKind) {
    let mut t = T::new(kind);
    let m = members(20, "m");
    t.w(&["SET", "both", "zero", "PX", "7000"]);
    t.w(&["SET", "only0", "x"]);
    raw_collection(&t, 0, "set0", KeyType::Set, &m, &[]);
    wdb(&mut t, 5, &["SET", "both", "five"]);
    raw_collection(&t, 5, "zset5", KeyType::ZSet, &m, &m);
    wdb(&mut t, 5, &["SET", "gone", "x", "PX", "10"]);
    t.now += 20;
    assert_eq!(t.w(&["SWAPDB", "0", "5"]), Reply::Ok);
    assert_eq!(t.r(&["GET", "both"]), Reply::Bulk(b("five")));
    assert_eq!(t.r(&["PTTL", "both"]), Reply::Int(-1));
    assert_eq!(t.r_db(5, &["GET", "both"]), Reply::Bulk(b("zero")));
    assert_eq!(t.r_db(5, &["PTTL", "both"]), Reply::Int(6980));
    assert_eq!(t.r(&["EXISTS", "only0", "set0", "gone"]), Reply::Int(0));
    assert_eq!(t.r_db(5, &["EXISTS", "only0", "set0"]), Reply::Int(2));
    assert_eq!(raw_read(&t, 5, "set0").map(|(_, s, _)| s), Some(m.clone()));
    assert_eq!(
        raw_read(&t, 0, "zset5").map(|(_, s, z)| (s, z)),
        Some((m.clone(), m.clone()))
    );
    assert_eq!(t.r(&["DBSIZE"]), Reply::Int(2));
    assert_eq!(t.r_db(5, &["DBSIZE"]), Reply::Int(3));
    // The expiry index moved too: the cycle finds "both" in db 5 at its time.
    t.now += 7000;
    let a = t.apply(Op::ExpireCycle { max: 100 });
    assert_eq!(a.replies.as_slice(), [Reply::Int(1)]);
    assert_eq!(common::touched(&a), [(5, b("both"))]);
    gc_all(&t, 1000);
    assert_eq!(count_prefix(&t, &[keys::SUB]), 40, "set0 and zset5 members");
    assert_eq!(count_prefix(&t, &[keys::ZSCORE_IDX]), 20, "zset5 index");
    assert_eq!(t.w(&["SWAPDB", "3", "3"]), Reply::Ok);
    assert_eq!(
        t.w(&["SWAPDB", "x", "3"]),
        err("ERR invalid first DB index")
    );
    assert_eq!(
        t.w(&["SWAPDB", "1", "y"]),
        err("ERR invalid second DB index")
    );
    assert_eq!(
        t.w(&["SWAPDB", "1", "16"]),
        err("ERR DB index is out of range")
    );
}

// ---------------------------------------------------------------------------------------
// KEYS / DBSIZE / RANDOMKEY / FLUSH*
// ---------------------------------------------------------------------------------------

fn keys_dbsize_randomkey(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.r(&["RANDOMKEY"]), Reply::Nil);
    assert_eq!(t.r(&["DBSIZE"]), Reply::Int(0));
    for k in ["user:1", "user:2", "user:10", "admin", "u*ser"] {
        t.w(&["SET", k, "v"]);
    }
    t.w(&["SET", "user:3", "v", "PX", "100"]);
    raw_collection(&t, 0, "user:h", KeyType::Hash, &members(3, "f"), &[]);
    assert_eq!(t.r(&["DBSIZE"]), Reply::Int(7));
    t.now += 100;
    assert_eq!(t.r(&["DBSIZE"]), Reply::Int(6), "expired keys do not count");
    assert_eq!(
        bulks(&t.r(&["KEYS", "user:[0-9]"])),
        vec!["user:1", "user:2"],
        "expired user:3 is not listed"
    );
    assert_eq!(
        bulks(&t.r(&["KEYS", "*"])),
        vec!["admin", "u*ser", "user:1", "user:10", "user:2", "user:h"]
    );
    assert_eq!(bulks(&t.r(&["KEYS", "u\\*ser"])), vec!["u*ser"]);
    assert_eq!(bulks(&t.r(&["KEYS", "*1*"])), vec!["user:1", "user:10"]);
    assert_eq!(bulks(&t.r(&["KEYS", "nothing*"])), Vec::<String>::new());
    // RANDOMKEY in apply is a function of the entry's seed and reaches every live key.
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        match t.w(&["RANDOMKEY"]) {
            Reply::Bulk(k) => {
                seen.insert(String::from_utf8_lossy(&k).into_owned());
            }
            other => panic!("RANDOMKEY gave {other:?}"),
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(!seen.contains("user:3"));
}

fn flush_commands(kind: EngineKind) {
    let mut t = T::new(kind);
    for db in [0u8, 1, 15] {
        wdb(&mut t, db, &["SET", "s", "v", "EX", "100"]);
        raw_collection(&t, db, "c", KeyType::Set, &members(100, "m"), &[]);
    }
    assert_eq!(t.w(&["FLUSHDB", "NOW"]), err("ERR syntax error"));
    assert_eq!(t.w(&["FLUSHDB", "SYNC", "ASYNC"]), err("ERR syntax error"));
    assert_eq!(wdb(&mut t, 1, &["FLUSHDB", "async"]), Reply::Ok);
    assert_eq!(t.r_db(1, &["DBSIZE"]), Reply::Int(0));
    assert_eq!(t.r(&["DBSIZE"]), Reply::Int(2));
    assert_eq!(t.w(&["FLUSHALL", "SYNC"]), Reply::Ok);
    for db in [0u8, 1, 15] {
        assert_eq!(t.r_db(db, &["DBSIZE"]), Reply::Int(0));
    }
    assert_eq!(count_prefix(&t, &[keys::EXPIRY_IDX]), 0);
    assert_eq!(count_prefix(&t, &[keys::GC_QUEUE]), 3);
    assert_eq!(gc_all(&t, 64), 300);
    assert_eq!(count_prefix(&t, &[keys::SUB]), 0);
    assert_eq!(t.w(&["FLUSHALL"]), Reply::Ok);
}

// ---------------------------------------------------------------------------------------
// SCAN
// ---------------------------------------------------------------------------------------

fn scan_options_and_errors(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.r(&["SCAN", "x"]), err("ERR invalid cursor"));
    assert_eq!(t.r(&["SCAN", "0", "COUNT", "0"]), err("ERR syntax error"));
    assert_eq!(
        t.r(&["SCAN", "0", "COUNT", "z"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(t.r(&["SCAN", "0", "MATCH"]), err("ERR syntax error"));
    assert_eq!(t.r(&["SCAN", "0", "BOGUS", "1"]), err("ERR syntax error"));
    assert_eq!(
        t.r(&["SCAN", "0"]),
        Reply::Array(vec![Reply::bulk("0"), Reply::Array(vec![])])
    );
    for i in 0..5 {
        t.w(&["SET", &format!("k{i}"), "v"]);
    }
    raw_collection(&t, 0, "k9", KeyType::Hash, &members(2, "f"), &[]);
    let r = t.r(&["SCAN", "0", "COUNT", "100", "TYPE", "hash"]);
    assert_eq!(
        r,
        Reply::Array(vec![
            Reply::bulk("0"),
            Reply::Array(vec![Reply::bulk("k9")])
        ])
    );
    let r = t.r(&["SCAN", "0", "TYPE", "stream"]);
    assert_eq!(
        r,
        Reply::Array(vec![Reply::bulk("0"), Reply::Array(vec![])]),
        "unknown type names match nothing"
    );
    // COUNT bounds the keys examined per call.
    let r = t.r(&["SCAN", "0", "COUNT", "2"]);
    let Reply::Array(parts) = r else {
        panic!("array")
    };
    assert_ne!(parts[0], Reply::bulk("0"));
    assert_eq!(bulks(&parts[1]), vec!["k0", "k1"]);
    // A cursor this engine never handed out restarts the scan.
    let r = t.r(&["SCAN", "987654321", "COUNT", "1"]);
    let Reply::Array(parts) = r else {
        panic!("array")
    };
    assert_eq!(bulks(&parts[1]), vec!["k0"]);
}

/// Runs one full SCAN with `opts`, doing random writes between calls. Returns every
/// key returned (with multiplicity) and the number of calls.
fn scan_with_churn(
    t: &mut T,
    opts: &[&str],
    rng: &mut rand::rngs::StdRng,
) -> (BTreeMap<String, usize>, usize) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut cursor = "0".to_string();
    for call in 1..=2000 {
        let count = rng.gen_range(1..12).to_string();
        let mut args = vec!["SCAN", cursor.as_str(), "COUNT", count.as_str()];
        args.extend_from_slice(opts);
        let Reply::Array(parts) = t.r(&args) else {
            panic!("SCAN reply")
        };
        let Reply::Bulk(next) = &parts[0] else {
            panic!("cursor")
        };
        for k in bulks(&parts[1]) {
            *seen.entry(k).or_default() += 1;
        }
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            return (seen, call);
        }
        for _ in 0..4 {
            let v = format!("v:{:03}", rng.gen_range(0..300));
            match rng.gen_range(0..4) {
                0 | 1 => {
                    t.w(&["SET", &v, "x"]);
                }
                2 => {
                    t.w(&["DEL", &v]);
                }
                _ => {
                    let w = format!("w{}", rng.gen_range(0..300));
                    t.w(&["RENAME", &v, &w]);
                }
            }
        }
    }
    panic!("SCAN did not finish in 2000 calls");
}

fn scan_returns_every_stable_key_despite_writes(kind: EngineKind) {
    let mut t = T::new(kind);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let stable: Vec<String> = (0..150).map(|i| format!("s:{i:03}")).collect();
    for k in &stable {
        t.w(&["SET", k, "1"]);
    }
    let hashes: Vec<String> = (0..20).map(|i| format!("h:{i:02}")).collect();
    for h in &hashes {
        raw_collection(&t, 0, h, KeyType::Hash, &members(2, "f"), &[]);
    }
    for i in 0..100 {
        t.w(&["SET", &format!("v:{i:03}"), "x"]);
    }

    let (seen, calls) = scan_with_churn(&mut t, &[], &mut rng);
    assert!(calls > 10, "small COUNTs take many calls ({calls})");
    for k in stable.iter().chain(&hashes) {
        assert_eq!(seen.get(k), Some(&1), "{k} returned exactly once");
    }

    let (seen, _) = scan_with_churn(&mut t, &["MATCH", "s:*"], &mut rng);
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), stable);
    assert!(seen.values().all(|n| *n == 1));

    let (seen, _) = scan_with_churn(&mut t, &["MATCH", "*", "TYPE", "hash"], &mut rng);
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), hashes);

    let (seen, _) = scan_with_churn(&mut t, &["TYPE", "string", "MATCH", "*:1*"], &mut rng);
    let want: Vec<String> = stable
        .iter()
        .filter(|k| k.starts_with("s:1"))
        .cloned()
        .collect();
    for k in &want {
        assert!(seen.contains_key(k), "{k} missing");
    }
    assert!(seen
        .keys()
        .all(|k| k.contains(":1") && !k.starts_with("h:")));
}

// ---------------------------------------------------------------------------------------
// OBJECT / MEMORY / TOUCH
// ---------------------------------------------------------------------------------------

fn object_encoding_and_friends(kind: EngineKind) {
    let mut t = T::new(kind);
    let enc = |t: &T, k: &str| t.r(&["OBJECT", "ENCODING", k]);
    t.w(&["SET", "int", "1234"]);
    t.w(&["SET", "bigint", "12345"]);
    t.w(&["SET", "neg", "-7"]);
    t.w(&["SET", "lead0", "012"]);
    t.w(&["SET", "emb", &"x".repeat(44)]);
    t.w(&["SET", "raw", &"x".repeat(45)]);
    assert_eq!(enc(&t, "int"), Reply::bulk("int"));
    assert_eq!(enc(&t, "neg"), Reply::bulk("int"));
    assert_eq!(enc(&t, "lead0"), Reply::bulk("embstr"));
    assert_eq!(enc(&t, "emb"), Reply::bulk("embstr"));
    assert_eq!(enc(&t, "raw"), Reply::bulk("raw"));
    assert_eq!(enc(&t, "missing"), Reply::Nil);

    raw_collection(&t, 0, "hs", KeyType::Hash, &members(128, "f"), &[]);
    raw_collection(&t, 0, "hb", KeyType::Hash, &members(129, "f"), &[]);
    let long = vec![(vec![b'f'; 65], b"v".to_vec())];
    raw_collection(&t, 0, "hl", KeyType::Hash, &long, &[]);
    assert_eq!(enc(&t, "hs"), Reply::bulk("listpack"));
    assert_eq!(enc(&t, "hb"), Reply::bulk("hashtable"));
    assert_eq!(enc(&t, "hl"), Reply::bulk("hashtable"));

    let ints: Vec<(Vec<u8>, Vec<u8>)> = (0..512)
        .map(|i| (format!("{}", i * 3).into_bytes(), Vec::new()))
        .collect();
    raw_collection(&t, 0, "si", KeyType::Set, &ints, &[]);
    let mut ints513 = ints.clone();
    ints513.push((b"100000".to_vec(), Vec::new()));
    raw_collection(&t, 0, "sb", KeyType::Set, &ints513, &[]);
    raw_collection(&t, 0, "sl", KeyType::Set, &members(5, "m"), &[]);
    assert_eq!(enc(&t, "si"), Reply::bulk("intset"));
    assert_eq!(enc(&t, "sb"), Reply::bulk("hashtable"));
    assert_eq!(enc(&t, "sl"), Reply::bulk("listpack"));

    raw_collection(&t, 0, "zs", KeyType::ZSet, &members(10, "m"), &[]);
    raw_collection(&t, 0, "zb", KeyType::ZSet, &members(200, "m"), &[]);
    assert_eq!(enc(&t, "zs"), Reply::bulk("listpack"));
    assert_eq!(enc(&t, "zb"), Reply::bulk("skiplist"));

    raw_collection(&t, 0, "ls", KeyType::List, &members(10, "e"), &[]);
    let big: Vec<(Vec<u8>, Vec<u8>)> = (0..100u64)
        .map(|i| (i.to_be_bytes().to_vec(), vec![b'x'; 100]))
        .collect();
    raw_collection(&t, 0, "lb", KeyType::List, &big, &[]);
    assert_eq!(enc(&t, "ls"), Reply::bulk("listpack"));
    assert_eq!(enc(&t, "lb"), Reply::bulk("quicklist"));

    assert_eq!(t.r(&["OBJECT", "REFCOUNT", "int"]), Reply::Int(2147483647));
    assert_eq!(t.r(&["OBJECT", "REFCOUNT", "raw"]), Reply::Int(1));
    assert_eq!(t.r(&["OBJECT", "REFCOUNT", "bigint"]), Reply::Int(1));
    assert_eq!(enc(&t, "bigint"), Reply::bulk("int"));
    // IDLETIME/FREQ: OBJECT itself does not count as an access. Recency is kept unless an
    // LFU policy is set, then frequency; like Redis, OBJECT answers only the one kept.
    // A read records the access (after the read itself: see `Engine::read_spec`).
    t.now += 5_000;
    assert_eq!(t.r(&["OBJECT", "IDLETIME", "raw"]), Reply::Int(5));
    t.r(&["GET", "raw"]);
    assert_eq!(t.r(&["OBJECT", "IDLETIME", "raw"]), Reply::Int(0));
    t.now += 12_000;
    assert_eq!(t.r(&["OBJECT", "IDLETIME", "raw"]), Reply::Int(12));
    assert_eq!(
        t.r(&["OBJECT", "FREQ", "raw"]),
        err(keel_engine::reply::errors::NO_LFU_FREQ)
    );
    t.engine.access().set_lfu(true);
    assert_eq!(
        t.r(&["OBJECT", "IDLETIME", "raw"]),
        err(keel_engine::reply::errors::LFU_NO_IDLETIME)
    );
    let Reply::Int(f0) = t.r(&["OBJECT", "FREQ", "raw"]) else {
        panic!("FREQ is an integer")
    };
    for _ in 0..300 {
        t.r(&["GET", "raw"]);
    }
    let Reply::Int(f1) = t.r(&["OBJECT", "FREQ", "raw"]) else {
        panic!("FREQ is an integer")
    };
    assert!(
        f1 > f0 && f1 <= 255,
        "LFU counter grows with use: {f0} -> {f1}"
    );
    t.w(&["SET", "fresh", "v"]);
    let fresh = t.r(&["OBJECT", "FREQ", "fresh"]);
    assert!(
        matches!(fresh, Reply::Int(5..=6)),
        "a new key starts at Redis's LFU_INIT_VAL, plus its creating access: {fresh:?}"
    );
    assert_eq!(t.r(&["OBJECT", "FREQ", "missing"]), Reply::Nil);
    t.engine.access().set_lfu(false);
    assert!(matches!(t.r(&["OBJECT", "HELP"]), Reply::Array(l) if l.len() > 5));
    assert_eq!(
        t.r(&["object", "nope", "k"]),
        err("ERR unknown subcommand 'nope'. Try OBJECT HELP.")
    );
    assert_eq!(
        t.r(&["OBJECT", "ENCODING"]),
        err("ERR wrong number of arguments for 'object|encoding' command")
    );
    assert_eq!(t.r(&["TOUCH", "int", "raw", "missing"]), Reply::Int(2));
}

fn memory_usage(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "sml", "x"]);
    t.w(&["SET", "big", &"x".repeat(1000)]);
    let usage = |t: &T, args: &[&str]| match t.r(args) {
        Reply::Int(n) => n,
        other => panic!("MEMORY USAGE gave {other:?}"),
    };
    let small = usage(&t, &["MEMORY", "USAGE", "sml"]);
    let big = usage(&t, &["MEMORY", "USAGE", "big"]);
    assert!(small > 0);
    assert_eq!(big - small, 999);
    let m = members(100, "f");
    raw_collection(&t, 0, "h", KeyType::Hash, &m, &[]);
    let exact = usage(&t, &["MEMORY", "USAGE", "h", "SAMPLES", "0"]);
    let sub_bytes: usize = m
        .iter()
        .map(|(s, v)| keys::sub_prefix_len(b"h") + s.len() + v.len())
        .sum();
    assert!(exact as usize > sub_bytes, "{exact} > {sub_bytes}");
    // Members of one size: sampling extrapolates to the exact figure.
    assert_eq!(usage(&t, &["MEMORY", "USAGE", "h"]), exact);
    assert_eq!(t.r(&["MEMORY", "USAGE", "nope"]), Reply::Nil);
    assert_eq!(
        t.r(&["MEMORY", "USAGE", "h", "SAMPLES", "-1"]),
        err("ERR syntax error")
    );
    assert_eq!(
        t.r(&["MEMORY", "USAGE", "h", "SAMPLES"]),
        err("ERR syntax error")
    );
    assert_eq!(
        t.r(&["MEMORY", "DOCTOR2"]),
        err("ERR unknown subcommand 'DOCTOR2'. Try MEMORY HELP.")
    );
}

// ---------------------------------------------------------------------------------------
// DUMP / RESTORE
// ---------------------------------------------------------------------------------------

fn dump_of(t: &T, key: &str) -> Bytes {
    match t.r(&["DUMP", key]) {
        Reply::Bulk(p) => p,
        other => panic!("DUMP gave {other:?}"),
    }
}

fn restore_args(key: &str, ttl: &str, payload: &Bytes, opts: &[&str]) -> Vec<Bytes> {
    let mut a = vec![b("RESTORE"), b(key), b(ttl), payload.clone()];
    a.extend(opts.iter().map(|o| b(o)));
    a
}

fn dump_restore_strings(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.r(&["DUMP", "nope"]), Reply::Nil);
    let value = "bin\u{0}ary \u{ff} value".repeat(10);
    t.w(&["SET", "s", &value, "EX", "100"]);
    let p = dump_of(&t, "s");
    assert_eq!(
        wraw(&mut t, restore_args("s", "0", &p, &[])),
        err("BUSYKEY Target key name already exists.")
    );
    assert_eq!(wraw(&mut t, restore_args("s2", "0", &p, &[])), Reply::Ok);
    assert_eq!(t.r(&["GET", "s2"]), Reply::Bulk(b(&value)));
    assert_eq!(t.r(&["PTTL", "s2"]), Reply::Int(-1), "DUMP carries no TTL");
    assert_eq!(
        wraw(&mut t, restore_args("s", "2500", &p, &["REPLACE"])),
        Reply::Ok
    );
    assert_eq!(t.r(&["PTTL", "s"]), Reply::Int(2500));
    let abs = (t.now + 4000).to_string();
    assert_eq!(
        wraw(
            &mut t,
            restore_args("s3", &abs, &p, &["ABSTTL", "IDLETIME", "5"])
        ),
        Reply::Ok
    );
    assert_eq!(t.r(&["PTTL", "s3"]), Reply::Int(4000));
    // An absolute time already past: OK, and the key (even a replaced one) is gone.
    let past = (t.now - 1).to_string();
    assert_eq!(
        wraw(
            &mut t,
            restore_args("s3", &past, &p, &["ABSTTL", "REPLACE"])
        ),
        Reply::Ok
    );
    assert_eq!(t.r(&["EXISTS", "s3"]), Reply::Int(0));
    // Option errors, in Redis's order of checks.
    assert_eq!(
        wraw(&mut t, restore_args("n", "-1", &p, &[])),
        err("ERR Invalid TTL value, must be >= 0")
    );
    assert_eq!(
        wraw(&mut t, restore_args("n", "x", &p, &[])),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        wraw(&mut t, restore_args("n", "0", &p, &["IDLETIME", "-1"])),
        err("ERR Invalid IDLETIME value, must be >= 0")
    );
    assert_eq!(
        wraw(&mut t, restore_args("n", "0", &p, &["FREQ", "256"])),
        err("ERR Invalid FREQ value, must be >= 0 and <= 255")
    );
    assert_eq!(
        wraw(
            &mut t,
            restore_args("n", "0", &p, &["FREQ", "1", "IDLETIME", "1"])
        ),
        err("ERR syntax error")
    );
    assert_eq!(
        wraw(&mut t, restore_args("n", "0", &p, &["BOGUS"])),
        err("ERR syntax error")
    );
    assert_eq!(t.r(&["EXISTS", "n"]), Reply::Int(0));
}

fn corrupted_payloads_are_rejected(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "s", "some value"]);
    raw_collection(
        &t,
        0,
        "z",
        KeyType::ZSet,
        &members(3, "m"),
        &members(3, "i"),
    );
    let bad = err("ERR DUMP payload version or checksum are wrong");
    for key in ["s", "z"] {
        let p = dump_of(&t, key);
        for i in 0..p.len() {
            let mut v = p.to_vec();
            v[i] ^= 0x20;
            let r = wraw(&mut t, restore_args("dst", "0", &Bytes::from(v), &[]));
            assert_eq!(r, bad, "{key}: flipped byte {i}");
        }
        for n in [0, 1, p.len() / 2, p.len() - 1] {
            let r = wraw(&mut t, restore_args("dst", "0", &p.slice(..n), &[]));
            assert_eq!(r, bad, "{key}: truncated to {n}");
        }
        let mut longer = p.to_vec();
        longer.push(0);
        let r = wraw(&mut t, restore_args("dst", "0", &Bytes::from(longer), &[]));
        assert_eq!(r, bad, "{key}: trailing byte");
    }
    assert_eq!(t.r(&["EXISTS", "dst"]), Reply::Int(0));
    assert_eq!(
        wraw(
            &mut t,
            restore_args("dst", "0", &b("not a payload at all"), &[])
        ),
        bad
    );
}

fn dump_restore_collections(kind: EngineKind) {
    let mut t = T::new(kind);
    let m = members(300, "m");
    let z = members(300, "z");
    raw_collection(&t, 0, "zs", KeyType::ZSet, &m, &z);
    raw_collection(&t, 0, "l", KeyType::List, &m, &[]);
    for (key, kind_name) in [("zs", "zset"), ("l", "list")] {
        let p = dump_of(&t, key);
        let dst = format!("{key}-copy");
        assert_eq!(wraw(&mut t, restore_args(&dst, "0", &p, &[])), Reply::Ok);
        let (src_meta, s1, z1) = raw_read(&t, 0, key).expect("src");
        let (dst_meta, s2, z2) = raw_read(&t, 0, &dst).expect("dst");
        assert_eq!((s1, z1), (s2, z2));
        assert_eq!(dst_meta.kind, src_meta.kind);
        assert_eq!(dst_meta.len(), 300);
        assert_ne!(dst_meta.version(), src_meta.version());
        assert_eq!(t.r(&["TYPE", &dst]), Reply::Simple(kind_name.into()));
        // Replacing a collection with a string orphans its sub-keys.
        let sp = {
            t.w(&["SET", "tmp", "v"]);
            dump_of(&t, "tmp")
        };
        assert_eq!(
            wraw(&mut t, restore_args(&dst, "0", &sp, &["REPLACE"])),
            Reply::Ok
        );
        assert_eq!(t.r(&["GET", &dst]), Reply::Bulk(b("v")));
    }
    assert_eq!(gc_all(&t, 100), 900);
    assert_eq!(count_prefix(&t, &[keys::SUB]), 600);
}

// ---------------------------------------------------------------------------------------
// GC
// ---------------------------------------------------------------------------------------

fn del_of_a_big_collection_is_o1_and_gc_collects(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "other", "v"]);
    let m = members(10_000, "m");
    raw_collection(&t, 0, "big", KeyType::Set, &m, &members(10_000, "z"));
    let store = t.engine.storage().clone();
    let (seq_before, keys_before) = (store.last_seq(), count_prefix(&t, &[]));
    assert_eq!(t.w(&["DEL", "big"]), Reply::Int(1));
    // One batch; it removed the metadata and queued one GC entry: no sub-key touched.
    assert_eq!(store.last_seq(), seq_before + 1);
    assert_eq!(count_prefix(&t, &[]), keys_before);
    assert_eq!(count_prefix(&t, &[keys::META]), 1);
    assert_eq!(count_prefix(&t, &[keys::SUB]), 10_000);
    assert_eq!(count_prefix(&t, &[keys::GC_QUEUE]), 1);
    assert_eq!(t.r(&["EXISTS", "big"]), Reply::Int(0));

    let p = t.engine.gc_step(3_000).expect("gc");
    assert_eq!((p.deleted, p.finished, p.more), (3_000, 0, true));
    let rest = gc_all(&t, 4_096);
    assert_eq!(rest, 17_000);
    assert_eq!(count_prefix(&t, &[keys::SUB]), 0);
    assert_eq!(count_prefix(&t, &[keys::ZSCORE_IDX]), 0);
    assert_eq!(count_prefix(&t, &[keys::GC_QUEUE]), 0);
    assert_eq!(t.r(&["GET", "other"]), Reply::Bulk(b("v")));
    let idle = t.engine.gc_step(10).expect("gc");
    assert_eq!(idle, keel_engine::gc::GcProgress::default());
}

fn storage_returns_to_baseline_after_churn(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "keep", "v"]);
    let store = t.engine.storage().clone();
    let baseline = count_prefix(&t, &[]);
    let baseline_stat = store.stats().live_keys;
    let mut snap = None;
    for round in 0..12 {
        let name = format!("c{}", round % 3);
        raw_collection(&t, 0, &name, KeyType::Hash, &members(200, "f"), &[]);
        t.w(&["SET", &format!("s{round}"), "x", "EX", "50"]);
        match round % 4 {
            0 => {
                t.w(&["RENAME", &name, "renamed"]);
                t.w(&["COPY", "renamed", "copied", "DB", "2"]);
                t.w(&["DEL", "renamed"]);
                wdb(&mut t, 2, &["UNLINK", "copied"]);
            }
            1 => {
                t.w(&["SET", &name, "overwrites the hash"]);
                t.w(&["DEL", &name]);
            }
            2 => {
                t.w(&["MOVE", &name, "1"]);
                t.w(&["SWAPDB", "0", "1"]);
                t.w(&["SWAPDB", "0", "1"]);
                wdb(&mut t, 1, &["FLUSHDB"]);
            }
            _ => {
                t.w(&["PEXPIRE", &name, "10"]);
            }
        }
        if round == 5 {
            // A reader holds old versions while the churn goes on.
            snap = Some(store.snapshot());
        }
        t.now += 20;
        t.apply(Op::ExpireCycle { max: 100 });
    }
    t.now += 60_000;
    t.apply(Op::ExpireCycle { max: 1000 });
    assert_eq!(t.r(&["DBSIZE"]), Reply::Int(1));
    let held = snap.expect("snapshot taken");
    let sub_count = |s: &dyn keel_storage::Snapshot| {
        s.scan(ScanRange::prefix([keys::SUB]), Direction::Forward)
            .count()
    };
    let held_before = sub_count(held.as_ref());
    assert!(held_before > 0, "the snapshot saw collections");
    gc_all(&t, 500);
    assert_eq!(count_prefix(&t, &[keys::SUB]), 0);
    assert_eq!(
        sub_count(held.as_ref()),
        held_before,
        "GC does not change what an open snapshot sees"
    );
    assert!(store.stats().open_snapshots >= 1);
    drop(held);
    store.compact().expect("compact");
    let end = store.stats();
    assert_eq!(count_prefix(&t, &[]), baseline);
    // The LSM engine's key count is an estimate; the others count exactly.
    if kind != EngineKind::Lsm {
        assert_eq!(end.live_keys, baseline_stat, "{end:?}");
    }
    assert_eq!(end.retained_versions, 0, "{end:?}");
    assert_eq!(end.open_snapshots, 0, "{end:?}");
}

// ---------------------------------------------------------------------------------------
// Model-based: key commands and expiry with a moving clock
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum MOp {
    Set(u8, u8, Option<u16>),
    Del(u8),
    Rename(u8, u8, bool),
    Copy(u8, u8, bool, bool),
    Move(u8, bool),
    SwapDb,
    Expire(u8, u8, i32, u8),
    Persist(u8),
    Advance(u16),
    Cycle(u8),
    Read(u8, u8),
    Keys,
    FlushDb(bool),
}

fn mop() -> impl Strategy<Value = MOp> {
    let k = 0u8..4;
    prop_oneof![
        4 => (k.clone(), 0u8..4, proptest::option::of(1u16..3000)).prop_map(|(k, v, px)| MOp::Set(k, v, px)),
        1 => k.clone().prop_map(MOp::Del),
        2 => (k.clone(), k.clone(), any::<bool>()).prop_map(|(a, b, nx)| MOp::Rename(a, b, nx)),
        2 => (k.clone(), k.clone(), any::<bool>(), any::<bool>()).prop_map(|(a, b, r, d)| MOp::Copy(a, b, r, d)),
        1 => (k.clone(), any::<bool>()).prop_map(|(k, d)| MOp::Move(k, d)),
        1 => Just(MOp::SwapDb),
        4 => (k.clone(), 0u8..4, -3000i32..6000, 0u8..8).prop_map(|(k, u, a, f)| MOp::Expire(k, u, a, f)),
        1 => k.clone().prop_map(MOp::Persist),
        3 => (0u16..2500).prop_map(MOp::Advance),
        1 => (1u8..4).prop_map(MOp::Cycle),
        5 => (k.clone(), 0u8..6).prop_map(|(k, w)| MOp::Read(k, w)),
        1 => Just(MOp::Keys),
        1 => any::<bool>().prop_map(MOp::FlushDb),
    ]
}

/// Per database: key → (value, expire_at).
type Db = BTreeMap<String, (String, Option<u64>)>;

struct Model {
    dbs: [Db; 2],
}

impl Model {
    fn prune(&mut self, now: u64) {
        for db in &mut self.dbs {
            db.retain(|_, (_, e)| e.is_none_or(|at| at > now));
        }
    }
}

fn key(k: u8) -> String {
    format!("key{k}")
}

fn check(op: &MOp, got: Reply, want: Reply) -> Result<(), TestCaseError> {
    prop_assert_eq!(got, want, "op {:?}", op);
    Ok(())
}

fn run_model(t: &mut T, ops: &[MOp]) -> Result<(), TestCaseError> {
    let mut m = Model {
        dbs: [Db::new(), Db::new()],
    };
    for op in ops {
        m.prune(t.now);
        let now = t.now;
        match op {
            MOp::Set(k, v, px) => {
                let (k, v) = (key(*k), format!("v{v}"));
                let r = match px {
                    Some(px) => t.w(&["SET", &k, &v, "PX", &px.to_string()]),
                    None => t.w(&["SET", &k, &v]),
                };
                check(op, r, Reply::Ok)?;
                m.dbs[0].insert(k, (v, px.map(|p| now + u64::from(p))));
            }
            MOp::Del(k) => {
                let k = key(*k);
                let want = Reply::Int(i64::from(m.dbs[0].remove(&k).is_some()));
                check(op, t.w(&["DEL", &k]), want)?;
            }
            MOp::Rename(a, b, nx) => {
                let (a, b) = (key(*a), key(*b));
                let r = t.w(&[if *nx { "RENAMENX" } else { "RENAME" }, &a, &b]);
                let want = match m.dbs[0].get(&a).cloned() {
                    None => err("ERR no such key"),
                    Some(_) if a == b => {
                        if *nx {
                            Reply::Int(0)
                        } else {
                            Reply::Ok
                        }
                    }
                    Some(_) if *nx && m.dbs[0].contains_key(&b) => Reply::Int(0),
                    Some(v) => {
                        m.dbs[0].remove(&a);
                        m.dbs[0].insert(b, v);
                        if *nx {
                            Reply::Int(1)
                        } else {
                            Reply::Ok
                        }
                    }
                };
                check(op, r, want)?;
            }
            MOp::Copy(a, b, replace, other_db) => {
                let (a, b) = (key(*a), key(*b));
                let dst = usize::from(*other_db);
                let mut args = vec!["COPY", a.as_str(), b.as_str()];
                if *other_db {
                    args.extend(["DB", "1"]);
                }
                if *replace {
                    args.push("REPLACE");
                }
                let r = t.w(&args);
                let want = if dst == 0 && a == b {
                    err("ERR source and destination objects are the same")
                } else {
                    match m.dbs[0].get(&a).cloned() {
                        None => Reply::Int(0),
                        Some(_) if m.dbs[dst].contains_key(&b) && !replace => Reply::Int(0),
                        Some(v) => {
                            m.dbs[dst].insert(b, v);
                            Reply::Int(1)
                        }
                    }
                };
                check(op, r, want)?;
            }
            MOp::Move(k, from1) => {
                let k = key(*k);
                let (src, dst) = if *from1 { (1, 0) } else { (0, 1) };
                let r = wdb(t, src as u8, &["MOVE", &k, &dst.to_string()]);
                let want = match m.dbs[src].get(&k).cloned() {
                    Some(v) if !m.dbs[dst].contains_key(&k) => {
                        m.dbs[src].remove(&k);
                        m.dbs[dst].insert(k, v);
                        Reply::Int(1)
                    }
                    _ => Reply::Int(0),
                };
                check(op, r, want)?;
            }
            MOp::SwapDb => {
                check(op, t.w(&["SWAPDB", "1", "0"]), Reply::Ok)?;
                m.dbs.swap(0, 1);
            }
            MOp::Expire(k, unit, amount, flag) => {
                let k = key(*k);
                let amount = i64::from(*amount);
                let (name, arg, at) = match unit {
                    0 => ("EXPIRE", amount / 1000, now as i64 + (amount / 1000) * 1000),
                    1 => ("PEXPIRE", amount, now as i64 + amount),
                    2 => {
                        let s = now as i64 / 1000 + amount / 1000;
                        ("EXPIREAT", s, s * 1000)
                    }
                    _ => ("PEXPIREAT", now as i64 + amount, now as i64 + amount),
                };
                let arg = arg.to_string();
                let flags: &[&str] = match flag {
                    0 => &["NX"],
                    1 => &["XX"],
                    2 => &["GT"],
                    3 => &["LT"],
                    4 => &["NX", "GT"],
                    5 => &["gt", "lt"],
                    _ => &[],
                };
                let mut args = vec![name, k.as_str(), arg.as_str()];
                args.extend_from_slice(flags);
                let r = t.w(&args);
                let (nx, xx, gt, lt) = (
                    flags.contains(&"NX"),
                    flags.contains(&"XX"),
                    flags.iter().any(|f| f.eq_ignore_ascii_case("GT")),
                    flags.iter().any(|f| f.eq_ignore_ascii_case("LT")),
                );
                let want = if nx && (gt || lt || xx) {
                    err("ERR NX and XX, GT or LT options at the same time are not compatible")
                } else if gt && lt {
                    err("ERR GT and LT options at the same time are not compatible")
                } else {
                    match m.dbs[0].get(&k).cloned() {
                        None => Reply::Int(0),
                        Some((v, cur)) => {
                            let refused = (nx && cur.is_some())
                                || (xx && cur.is_none())
                                || (gt && cur.is_none_or(|c| at <= c as i64))
                                || (lt && cur.is_some_and(|c| at >= c as i64));
                            if refused {
                                Reply::Int(0)
                            } else {
                                if at <= now as i64 {
                                    m.dbs[0].remove(&k);
                                } else {
                                    m.dbs[0].insert(k, (v, Some(at as u64)));
                                }
                                Reply::Int(1)
                            }
                        }
                    }
                };
                check(op, r, want)?;
            }
            MOp::Persist(k) => {
                let k = key(*k);
                let want = match m.dbs[0].get_mut(&k) {
                    Some((_, e)) if e.is_some() => {
                        *e = None;
                        Reply::Int(1)
                    }
                    _ => Reply::Int(0),
                };
                check(op, t.w(&["PERSIST", &k]), want)?;
            }
            MOp::Advance(ms) => t.now += u64::from(*ms),
            MOp::Cycle(max) => {
                let a = t.apply(Op::ExpireCycle {
                    max: usize::from(*max),
                });
                let Some(Reply::Int(n)) = a.replies.first() else {
                    return Err(TestCaseError::fail("cycle reply"));
                };
                prop_assert!(*n <= i64::from(*max));
                if *n < i64::from(*max) {
                    // Fewer than max deleted: nothing due is left in storage.
                    let stored = count_prefix(t, &[keys::META]);
                    let live = m.dbs[0].len() + m.dbs[1].len();
                    prop_assert_eq!(stored, live, "after {:?}", op);
                    prop_assert_eq!(
                        count_prefix(t, &[keys::EXPIRY_IDX]),
                        m.dbs
                            .iter()
                            .flat_map(|d| d.values())
                            .filter(|(_, e)| e.is_some())
                            .count()
                    );
                }
            }
            MOp::Read(k, which) => {
                let k = key(*k);
                let e = m.dbs[0].get(&k).cloned();
                let (args, want) = match which {
                    0 => (
                        vec!["GET", k.as_str()],
                        Reply::opt_bulk(e.map(|(v, _)| b(&v))),
                    ),
                    1 => (
                        vec!["TTL", k.as_str()],
                        Reply::Int(match e {
                            None => -2,
                            Some((_, None)) => -1,
                            Some((_, Some(at))) => ((at - now) as i64 + 500) / 1000,
                        }),
                    ),
                    2 => (
                        vec!["PTTL", k.as_str()],
                        Reply::Int(match e {
                            None => -2,
                            Some((_, None)) => -1,
                            Some((_, Some(at))) => (at - now) as i64,
                        }),
                    ),
                    3 => (
                        vec!["EXPIRETIME", k.as_str()],
                        Reply::Int(match e {
                            None => -2,
                            Some((_, None)) => -1,
                            Some((_, Some(at))) => (at / 1000) as i64,
                        }),
                    ),
                    4 => (
                        vec!["TYPE", k.as_str()],
                        Reply::Simple(if e.is_some() { "string" } else { "none" }.into()),
                    ),
                    _ => (vec!["DBSIZE"], Reply::Int(m.dbs[0].len() as i64)),
                };
                check(op, t.r(&args), want.clone())?;
                // Reads inside the apply loop (MULTI) answer the same.
                let a = t.apply(Op::Multi {
                    cmds: vec![(0, args.iter().map(|s| b(s)).collect())],
                });
                check(op, a.replies[0].clone(), want)?;
            }
            MOp::Keys => {
                let want: Vec<String> = m.dbs[0].keys().cloned().collect();
                let got = bulks(&t.r(&["KEYS", "key*"]));
                prop_assert_eq!(got, want);
                let want1: Vec<String> = m.dbs[1].keys().cloned().collect();
                prop_assert_eq!(bulks(&t.r_db(1, &["KEYS", "*"])), want1);
            }
            MOp::FlushDb(all) => {
                if *all {
                    check(op, t.w(&["FLUSHALL"]), Reply::Ok)?;
                    m.dbs = [Db::new(), Db::new()];
                } else {
                    check(op, t.w(&["FLUSHDB"]), Reply::Ok)?;
                    m.dbs[0].clear();
                }
            }
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

fn model_key_and_expiry_commands(kind: EngineKind) {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(mop(), 1..50);
    let result = runner.run(&strategy, |ops| {
        let mut t = T::new(kind);
        run_model(&mut t, &ops)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Keys expiring while a SCAN is under way: stable keys still come back exactly once,
/// and no key is returned once its time has passed (lazily expired or removed by the
/// active cycle between calls).
fn scan_across_expiry(kind: EngineKind) {
    let mut t = T::new(kind);
    for i in 0..100 {
        t.w(&["SET", &format!("s:{i:03}"), "1"]);
        t.w(&["SET", &format!("t:{i:03}"), "1", "PX", "50"]);
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut cursor = "0".to_string();
    let mut expired = false;
    for call in 1..=1000 {
        let Reply::Array(parts) = t.r(&["SCAN", &cursor, "COUNT", "7"]) else {
            panic!("SCAN reply")
        };
        let Reply::Bulk(next) = &parts[0] else {
            panic!("cursor")
        };
        for k in bulks(&parts[1]) {
            assert!(
                !(expired && k.starts_with("t:")),
                "expired key {k} returned at call {call}"
            );
            *seen.entry(k).or_default() += 1;
        }
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            break;
        }
        if call == 5 {
            // Time passes mid-scan; half of the due keys go through the active cycle,
            // the rest are only lazily expired.
            t.now += 100;
            t.apply(Op::ExpireCycle { max: 50 });
            expired = true;
        }
    }
    assert_eq!(cursor, "0", "scan finished");
    for i in 0..100 {
        assert_eq!(
            seen.get(&format!("s:{i:03}")),
            Some(&1),
            "s:{i:03} exactly once"
        );
    }
    assert_eq!(t.r(&["DBSIZE"]), Reply::Int(100));
}

all_engines!(
    scan_across_expiry,
    rename_strings,
    rename_copy_move_collections,
    copy_and_move_errors,
    swapdb_swaps_everything,
    keys_dbsize_randomkey,
    flush_commands,
    scan_options_and_errors,
    scan_returns_every_stable_key_despite_writes,
    object_encoding_and_friends,
    memory_usage,
    dump_restore_strings,
    corrupted_payloads_are_rejected,
    dump_restore_collections,
    del_of_a_big_collection_is_o1_and_gc_collects,
    storage_returns_to_baseline_after_churn,
    model_key_and_expiry_commands,
);
