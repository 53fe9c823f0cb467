//! maxmemory and eviction: the verdicts the leader acts on, and which keys each policy
//! picks when the sample covers the whole keyspace (so the choice is exact).

mod common;

use bytes::Bytes;
use common::{b, T};
use keel_engine::{EvictionPolicy, MemoryVerdict, Op, Reply};
use keel_storage::EngineKind;

fn fill(t: &mut T, n: usize, value_len: usize) {
    let v = "x".repeat(value_len);
    for i in 0..n {
        t.w(&["SET", &format!("key:{i:03}"), &v]);
    }
}

/// Evicts until the verdict is Fine; returns every evicted key in order.
fn evict_until_fine(t: &mut T, max: u64, policy: EvictionPolicy, samples: usize) -> Vec<Bytes> {
    let mut evicted = Vec::new();
    for round in 0..1000 {
        match t
            .engine
            .memory_pressure(max, policy, samples, t.now, round)
            .expect("pressure")
        {
            MemoryVerdict::Fine => return evicted,
            MemoryVerdict::Oom => panic!("unexpected OOM under {policy:?}"),
            MemoryVerdict::Evict(keys) => {
                evicted.extend(keys.iter().map(|(_, k)| k.clone()));
                let applied = t.apply(Op::Evict { keys });
                assert!(matches!(applied.replies[0], Reply::Int(n) if n > 0));
            }
        }
    }
    panic!("eviction did not converge");
}

fn noeviction_refuses_and_unlimited_is_fine(kind: EngineKind) {
    let mut t = T::new(kind);
    fill(&mut t, 20, 100);
    let used = t.engine.used_memory();
    assert!(used > 20 * 100);
    let v = t
        .engine
        .memory_pressure(used / 2, EvictionPolicy::NoEviction, 5, t.now, 1);
    assert_eq!(v.expect("pressure"), MemoryVerdict::Oom);
    let v = t
        .engine
        .memory_pressure(0, EvictionPolicy::NoEviction, 5, t.now, 1);
    assert_eq!(v.expect("pressure"), MemoryVerdict::Fine);
    let v = t
        .engine
        .memory_pressure(used, EvictionPolicy::AllKeysLru, 5, t.now, 1);
    assert_eq!(v.expect("pressure"), MemoryVerdict::Fine);
}

fn eviction_brings_memory_under_the_limit(kind: EngineKind) {
    for policy in [
        EvictionPolicy::AllKeysLru,
        EvictionPolicy::AllKeysLfu,
        EvictionPolicy::AllKeysRandom,
    ] {
        let mut t = T::new(kind);
        fill(&mut t, 200, 100);
        let max = t.engine.used_memory() / 2;
        let evicted = evict_until_fine(&mut t, max, policy, 5);
        assert!(t.engine.used_memory() <= max);
        assert!(
            evicted.len() >= 90,
            "{policy:?} evicted only {}",
            evicted.len()
        );
        let mut uniq = evicted.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), evicted.len(), "a key was evicted twice");
    }
}

fn volatile_ttl_evicts_soonest_expiring_and_spares_persistent(kind: EngineKind) {
    let mut t = T::new(kind);
    fill(&mut t, 10, 100);
    for (k, ms) in [
        ("key:003", "90000"),
        ("key:007", "30000"),
        ("key:001", "60000"),
    ] {
        t.w(&["SET", k, &"x".repeat(100), "PX", ms]);
    }
    let used = t.engine.used_memory();
    let max = used - 1;
    let v = t
        .engine
        .memory_pressure(max, EvictionPolicy::VolatileTtl, 10, t.now, 1)
        .expect("pressure");
    let MemoryVerdict::Evict(keys) = v else {
        panic!("expected eviction, got {v:?}")
    };
    assert_eq!(keys[0].1, b("key:007"));
    // Only three volatile keys exist: evicting far below leaves the others and then OOMs.
    let mut t2 = T::new(kind);
    fill(&mut t2, 5, 100);
    let v = t2
        .engine
        .memory_pressure(10, EvictionPolicy::VolatileLru, 5, t2.now, 1)
        .expect("pressure");
    assert_eq!(v, MemoryVerdict::Oom, "no volatile key to evict");
}

fn allkeys_lru_prefers_the_least_recently_used(kind: EngineKind) {
    let mut t = T::new(kind);
    fill(&mut t, 8, 100);
    t.now += 100_000;
    for i in 0..8 {
        if i != 5 {
            t.r(&["GET", &format!("key:{i:03}")]);
        }
    }
    let max = t.engine.used_memory() - 1;
    let v = t
        .engine
        .memory_pressure(max, EvictionPolicy::AllKeysLru, 64, t.now, 3)
        .expect("pressure");
    let MemoryVerdict::Evict(keys) = v else {
        panic!("expected eviction, got {v:?}")
    };
    assert_eq!(keys[0].1, b("key:005"));
}

// maxmemory counts the dataset the storage reports as live. The lsm engine keeps its
// data on disk and fjall reports no live byte count, so maxmemory does not apply to it
// (the server refuses that combination); these tests run on memory and bitcask, whose
// key directory is in memory and which count live bytes exactly.
macro_rules! memory_resident_engines {
    ($($name:ident),* $(,)?) => {
        mod memory { $( #[test] fn $name() { super::$name(keel_storage::EngineKind::Memory) } )* }
        mod bitcask { $( #[test] fn $name() { super::$name(keel_storage::EngineKind::Bitcask) } )* }
    };
}

memory_resident_engines!(
    noeviction_refuses_and_unlimited_is_fine,
    eviction_brings_memory_under_the_limit,
    volatile_ttl_evicts_soonest_expiring_and_spares_persistent,
    allkeys_lru_prefers_the_least_recently_used,
);
