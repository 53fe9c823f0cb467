//! Shared harness of the engine's integration tests: an engine on a temp dir, a log
//! index and a clock that tests advance by hand.
#![allow(dead_code)]

use bytes::Bytes;
use keel_engine::{Applied, ApplyCtx, Engine, Op, Reply};
use keel_storage::{EngineKind, OpenOptions};

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The keys an applied entry touched, as (db, key).
pub fn touched(a: &Applied) -> Vec<(u8, Bytes)> {
    a.touched
        .iter()
        .map(|(db, k)| (*db, Bytes::copy_from_slice(k)))
        .collect()
}

pub fn cmd(parts: &[&str]) -> Vec<Bytes> {
    parts.iter().map(|p| b(p)).collect()
}

/// One database-0 command entry per line, arguments split at spaces.
pub fn ops(lines: &[&str]) -> Vec<Op> {
    lines
        .iter()
        .map(|c| Op::Command {
            db: 0,
            args: cmd(&c.split(' ').collect::<Vec<_>>()),
        })
        .collect()
}

/// An engine under test with its own log index and clock.
pub struct T {
    pub engine: Engine,
    pub seq: u64,
    pub now: u64,
    _dir: tempfile::TempDir,
}

impl T {
    pub fn new(kind: EngineKind) -> T {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = keel_storage::open(dir.path(), &OpenOptions::new(kind)).expect("open");
        T {
            engine: Engine::new(store).expect("engine"),
            seq: 0,
            now: 1_700_000_000_000,
            _dir: dir,
        }
    }

    /// An engine over `store` (which owns its directory).
    pub fn with_store(store: std::sync::Arc<dyn keel_storage::Storage>) -> T {
        T {
            engine: Engine::new(store).expect("engine"),
            seq: 0,
            now: 1_700_000_000_000,
            _dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn w(&mut self, parts: &[&str]) -> Reply {
        self.seq += 1;
        let ctx = ApplyCtx {
            seq: self.seq,
            now_ms: self.now,
            seed: self.seq,
        };
        let applied = self
            .engine
            .apply(
                &ctx,
                &Op::Command {
                    db: 0,
                    args: cmd(parts),
                },
            )
            .expect("apply");
        applied.replies.into_iter().next().expect("one reply")
    }

    pub fn r(&self, parts: &[&str]) -> Reply {
        self.engine
            .read(0, self.now, &cmd(parts))
            .expect("read")
            .reply
    }
}

impl T {
    /// Applies a whole entry (MULTI, expiry ops) at the next log index.
    pub fn apply(&mut self, op: Op) -> Applied {
        self.seq += 1;
        let ctx = ApplyCtx {
            seq: self.seq,
            now_ms: self.now,
            seed: self.seq,
        };
        self.engine.apply(&ctx, &op).expect("apply")
    }

    /// Reads in database `db`.
    pub fn r_db(&self, db: u8, parts: &[&str]) -> Reply {
        self.engine
            .read(db, self.now, &cmd(parts))
            .expect("read")
            .reply
    }
}

/// The persistent storage engines (the memory engine is the reference).
pub const DURABLE_ENGINES: &[EngineKind] = &[EngineKind::Bitcask, EngineKind::Lsm];

/// Instantiates each named `fn(EngineKind)` as a test per storage engine.
#[macro_export]
macro_rules! all_engines {
    ($($name:ident),* $(,)?) => {
        mod memory { $( #[test] fn $name() { super::$name(keel_storage::EngineKind::Memory) } )* }
        mod bitcask { $( #[test] fn $name() { super::$name(keel_storage::EngineKind::Bitcask) } )* }
        mod lsm { $( #[test] fn $name() { super::$name(keel_storage::EngineKind::Lsm) } )* }
    };
}
