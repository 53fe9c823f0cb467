//! Micro-benchmark of list and hash access on the memory engine: point access in the
//! middle of a large list must cost about the same as at its ends (index-addressed
//! elements), and hash point operations must not depend on the hash's size.
//! Run: `cargo bench -p keel-engine --bench lists_hashes`. Prints ops/s; asserts nothing.

use std::time::Instant;

use bytes::Bytes;
use keel_engine::{ApplyCtx, Engine, Op, Reply};
use keel_storage::{EngineKind, OpenOptions};

struct Bench {
    engine: Engine,
    seq: u64,
}

impl Bench {
    fn w(&mut self, args: Vec<Bytes>) -> Reply {
        self.seq += 1;
        let ctx = ApplyCtx {
            seq: self.seq,
            now_ms: 1_700_000_000_000,
            seed: self.seq,
        };
        match self.engine.apply(&ctx, &Op::Command { db: 0, args }) {
            Ok(mut a) => a.replies.pop().unwrap_or(Reply::Nil),
            Err(e) => panic!("apply failed: {e}"),
        }
    }

    fn r(&self, args: &[Bytes]) -> Reply {
        match self.engine.read(0, 1_700_000_000_000, args) {
            Ok(r) => r.reply,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

fn s(x: &str) -> Bytes {
    Bytes::copy_from_slice(x.as_bytes())
}

fn timed(label: &str, n: u64, mut f: impl FnMut(u64)) {
    let start = Instant::now();
    for i in 0..n {
        f(i);
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{label:<44} {n:>7} ops  {:>12.0} ops/s", n as f64 / secs);
}

fn main() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let store = match keel_storage::open(dir.path(), &OpenOptions::new(EngineKind::Memory)) {
        Ok(s) => s,
        Err(e) => panic!("open: {e}"),
    };
    let mut b = Bench {
        engine: Engine::new(store).expect("engine"),
        seq: 0,
    };
    const LEN: u64 = 200_000;
    let start = Instant::now();
    for chunk in 0..LEN / 1000 {
        let mut args = vec![s("RPUSH"), s("big")];
        args.extend((0..1000).map(|i| Bytes::from(format!("e{}", chunk * 1000 + i))));
        b.w(args);
    }
    println!(
        "built a {LEN}-element list in {:.2}s",
        start.elapsed().as_secs_f64()
    );
    let n = 20_000;
    timed("LINDEX at the head (read path)", n, |_| {
        b.r(&[s("LINDEX"), s("big"), s("0")]);
    });
    timed("LINDEX in the middle (read path)", n, |i| {
        let idx = (LEN / 2 + i % 1000).to_string();
        b.r(&[s("LINDEX"), s("big"), s(&idx)]);
    });
    timed("LRANGE 10 in the middle (read path)", n, |i| {
        let a = (LEN / 2 + i % 1000).to_string();
        let z = (LEN / 2 + i % 1000 + 9).to_string();
        b.r(&[s("LRANGE"), s("big"), s(&a), s(&z)]);
    });
    timed("LSET in the middle (apply)", n, |i| {
        let idx = (LEN / 2 + i % 1000).to_string();
        b.w(vec![s("LSET"), s("big"), Bytes::from(idx), s("x")]);
    });
    timed("RPUSH+LPOP one element (apply, 2 entries)", n / 2, |_| {
        b.w(vec![s("RPUSH"), s("big"), s("y")]);
        b.w(vec![s("LPOP"), s("big")]);
    });
    for chunk in 0..LEN / 1000 {
        let mut args = vec![s("HSET"), s("h")];
        for i in 0..1000 {
            args.push(Bytes::from(format!("f{}", chunk * 1000 + i)));
            args.push(s("v"));
        }
        b.w(args);
    }
    timed("HGET on a 200k-field hash (read path)", n, |i| {
        let f = format!("f{}", (i * 7919) % LEN);
        b.r(&[s("HGET"), s("h"), s(&f)]);
    });
    timed("HINCRBY on a 200k-field hash (apply)", n, |i| {
        let f = format!("f{}", (i * 7919) % LEN);
        b.w(vec![s("HINCRBY"), s("h"), Bytes::from(f), s("1")]);
    });
}
