//! Micro-benchmark of the string and keyspace families on every storage engine: the
//! per-command cost of apply (writes) and of snapshot reads, with 100k keys loaded.
//! Run: `cargo bench -p keel-engine --bench strings_keys`. Prints ops/s; asserts nothing.

use std::time::Instant;

use bytes::Bytes;
use keel_engine::{ApplyCtx, Engine, Op, Reply};
use keel_storage::{EngineKind, OpenOptions};

const NOW: u64 = 1_700_000_000_000;

struct Bench {
    engine: Engine,
    seq: u64,
}

impl Bench {
    fn w(&mut self, args: Vec<Bytes>) -> Reply {
        self.seq += 1;
        let ctx = ApplyCtx {
            seq: self.seq,
            now_ms: NOW,
            seed: self.seq,
        };
        match self.engine.apply(&ctx, &Op::Command { db: 0, args }) {
            Ok(mut a) => a.replies.pop().unwrap_or(Reply::Nil),
            Err(e) => panic!("apply failed: {e}"),
        }
    }

    fn r(&self, args: &[Bytes]) -> Reply {
        match self.engine.read(0, NOW, args) {
            Ok(r) => r.reply,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

fn s(x: &str) -> Bytes {
    Bytes::copy_from_slice(x.as_bytes())
}

fn key(i: u64) -> Bytes {
    Bytes::from(format!("key:{:08}", i.wrapping_mul(2_654_435_761) % KEYS))
}

fn timed(label: &str, n: u64, mut f: impl FnMut(u64)) {
    let start = Instant::now();
    for i in 0..n {
        f(i);
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{label:<40} {n:>7} ops  {:>12.0} ops/s", n as f64 / secs);
}

const KEYS: u64 = 100_000;

fn main() {
    let value = Bytes::from(vec![b'v'; 64]);
    for kind in EngineKind::ALL {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let store = match keel_storage::open(dir.path(), &OpenOptions::new(kind)) {
            Ok(s) => s,
            Err(e) => panic!("open: {e}"),
        };
        let mut b = Bench {
            engine: Engine::new(store).expect("engine"),
            seq: 0,
        };
        println!("== engine {kind}");
        timed("SET (64-byte values, load)", KEYS, |i| {
            b.w(vec![
                s("SET"),
                Bytes::from(format!("key:{i:08}")),
                value.clone(),
            ]);
        });
        timed("GET", 100_000, |i| {
            b.r(&[s("GET"), key(i)]);
        });
        timed("MGET 10 keys", 20_000, |i| {
            let mut args = vec![s("MGET")];
            args.extend((0..10).map(|j| key(i * 10 + j)));
            b.r(&args);
        });
        timed("INCR", 50_000, |i| {
            b.w(vec![s("INCR"), Bytes::from(format!("ctr:{}", i % 100))]);
        });
        timed("APPEND 8 bytes", 20_000, |i| {
            b.w(vec![
                s("APPEND"),
                Bytes::from(format!("app:{}", i % 100)),
                s("12345678"),
            ]);
        });
        timed("SET EX (expiry index maintained)", 50_000, |i| {
            b.w(vec![s("SET"), key(i), value.clone(), s("EX"), s("100")]);
        });
        timed("EXISTS", 100_000, |i| {
            b.r(&[s("EXISTS"), key(i)]);
        });
        timed("EXPIRE", 50_000, |i| {
            b.w(vec![s("EXPIRE"), key(i), s("200")]);
        });
        timed("DEL + SET (churn)", 20_000, |i| {
            b.w(vec![s("DEL"), key(i)]);
            b.w(vec![s("SET"), key(i), value.clone()]);
        });
        timed("SCAN COUNT 100", 2_000, |_| {
            b.r(&[s("SCAN"), s("0"), s("COUNT"), s("100")]);
        });
        timed("RENAME", 20_000, |i| {
            let a = Bytes::from(format!("r:{}", i % 2));
            let z = Bytes::from(format!("r:{}", (i + 1) % 2));
            if i == 0 {
                b.w(vec![s("SET"), a.clone(), value.clone()]);
            }
            b.w(vec![s("RENAME"), a, z]);
        });
    }
}
