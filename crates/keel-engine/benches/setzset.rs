//! Rough timings of set and sorted-set commands on the memory engine (no criterion):
//! `cargo bench -p keel-engine --bench setzset`. Prints figures, asserts nothing. The
//! rank operations ask storage's order statistics (O(log n) on the memory engine), so
//! ZRANK at rank 50000 and ZRANGE 50000 50009 should cost about what rank 1000 does;
//! on an engine without them they walk, O(rank).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::T;

const N: usize = 100_000;

fn bulk_load(t: &mut T, cmd: &str, key: &str, scored: bool) -> Duration {
    let start = Instant::now();
    for c in 0..(N / 1000) {
        let mut a = vec![cmd.to_string(), key.to_string()];
        for i in c * 1000..(c + 1) * 1000 {
            if scored {
                a.push(i.to_string());
            }
            a.push(format!("m{i:06}"));
        }
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        t.w(&a);
    }
    start.elapsed()
}

fn time(t: &mut T, label: &str, args: &[&str], reps: u32, write: bool) {
    let start = Instant::now();
    for _ in 0..reps {
        if write {
            t.w(args);
        } else {
            t.r(args);
        }
    }
    println!("{label:<34} {:>12.2?}/op", start.elapsed() / reps);
}

fn main() {
    let mut t = T::new(keel_storage::EngineKind::Memory);
    let e = bulk_load(&mut t, "ZADD", "z", true);
    println!("ZADD {N} members, 1000 per command: {e:.2?}");
    time(&mut t, "ZSCORE", &["ZSCORE", "z", "m050000"], 1000, false);
    time(
        &mut t,
        "ZRANGEBYSCORE 10 members",
        &["ZRANGEBYSCORE", "z", "50000", "50009"],
        1000,
        false,
    );
    time(
        &mut t,
        "ZRANGE BYLEX 10 members",
        &["ZRANGE", "z", "[m050000", "[m050009", "BYLEX"],
        1000,
        false,
    );
    time(
        &mut t,
        "ZRANK at rank 1000",
        &["ZRANK", "z", "m001000"],
        100,
        false,
    );
    time(
        &mut t,
        "ZRANK at rank 50000",
        &["ZRANK", "z", "m050000"],
        20,
        false,
    );
    time(
        &mut t,
        "ZRANGE 50000 50009",
        &["ZRANGE", "z", "50000", "50009"],
        20,
        false,
    );
    time(
        &mut t,
        "ZCOUNT over 10000 members",
        &["ZCOUNT", "z", "10000", "(20000"],
        20,
        false,
    );
    time(
        &mut t,
        "ZADD (score update)",
        &["ZADD", "z", "7", "m050000"],
        1000,
        true,
    );
    time(&mut t, "ZPOPMIN", &["ZPOPMIN", "z"], 1000, true);
    let e = bulk_load(&mut t, "SADD", "s", false);
    println!("SADD {N} members, 1000 per command: {e:.2?}");
    time(
        &mut t,
        "SISMEMBER",
        &["SISMEMBER", "s", "m050000"],
        1000,
        false,
    );
    time(
        &mut t,
        "SRANDMEMBER (O(n) scan)",
        &["SRANDMEMBER", "s"],
        20,
        false,
    );
    time(&mut t, "SPOP (O(n) scan)", &["SPOP", "s"], 20, true);
    time(
        &mut t,
        "SSCAN COUNT 100",
        &["SSCAN", "s", "0", "COUNT", "100"],
        100,
        false,
    );
}
