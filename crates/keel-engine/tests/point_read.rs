//! Point reads: commands flagged POINT_READ read the latest state without a snapshot,
//! and one that reads more than once is run again on a snapshot.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::{cmd, T};
use keel_engine::command::{flags, CommandSpec};
use keel_engine::error::CmdResult;
use keel_engine::exec::Exec;
use keel_engine::{keys, Reply};
use keel_storage::EngineKind;

static ONE_READ_RUNS: AtomicUsize = AtomicUsize::new(0);
static TWO_READ_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Counts the keys present among `args[1..]`, one storage read each.
fn count_present(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let mut n = 0;
    for k in &args[1..] {
        if ex.get(&keys::meta_key(ex.db, k))?.is_some() {
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

fn one_read(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    ONE_READ_RUNS.fetch_add(1, Ordering::SeqCst);
    count_present(ex, args)
}

fn two_reads(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    TWO_READ_RUNS.fetch_add(1, Ordering::SeqCst);
    count_present(ex, args)
}

const fn spec(
    name: &'static str,
    arity: i32,
    handler: fn(&mut Exec, &[Bytes]) -> CmdResult<Reply>,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags: flags::READONLY | flags::POINT_READ,
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "test",
        summary: "test",
        handler,
    }
}

static ONE: CommandSpec = spec("t-one", 2, one_read);
static TWO: CommandSpec = spec("t-two", 3, two_reads);

#[test]
fn one_read_runs_once_and_more_reads_run_again_on_a_snapshot() {
    let mut t = T::new(EngineKind::Memory);
    t.w(&["SET", "a", "1"]);
    t.w(&["SET", "b", "2"]);
    let read = |spec: &'static CommandSpec, parts: &[&str]| {
        t.engine
            .read_spec(spec, 0, t.now, &cmd(parts))
            .expect("read")
            .reply
    };
    assert_eq!(read(&ONE, &["t-one", "a"]), Reply::Int(1));
    assert_eq!(
        ONE_READ_RUNS.load(Ordering::SeqCst),
        1,
        "one read: no rerun"
    );
    assert_eq!(read(&TWO, &["t-two", "a", "b"]), Reply::Int(2));
    assert_eq!(
        TWO_READ_RUNS.load(Ordering::SeqCst),
        2,
        "two reads on the latest state: computed again on a snapshot"
    );
    assert_eq!(read(&TWO, &["t-two", "a", "zz"]), Reply::Int(1));
    assert_eq!(TWO_READ_RUNS.load(Ordering::SeqCst), 4);
    // The flagged string commands answer as before.
    assert_eq!(t.r(&["GET", "a"]), Reply::Bulk(Bytes::from_static(b"1")));
    assert_eq!(t.r(&["STRLEN", "b"]), Reply::Int(1));
    assert_eq!(t.r(&["GET", "nope"]), Reply::Nil);
}
