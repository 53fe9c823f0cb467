//! End-to-end checks of the engine's apply/read paths on every storage engine.

mod common;

use common::{b, cmd, T};
use keel_engine::{ApplyCtx, Op, Reply};
use keel_storage::EngineKind;

fn basics(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["SET", "k", "v"]), Reply::Ok);
    assert_eq!(t.r(&["GET", "k"]), Reply::Bulk(b("v")));
    assert_eq!(t.r(&["type", "k"]), Reply::Simple("string".into()));
    assert_eq!(t.w(&["SET", "k", "v2", "NX"]), Reply::Nil);
    assert_eq!(t.w(&["SET", "k", "v2", "XX", "GET"]), Reply::Bulk(b("v")));
    assert_eq!(t.w(&["SET", "k", "v3", "EX", "10"]), Reply::Ok);
    assert_eq!(t.r(&["EXISTS", "k", "k", "nope"]), Reply::Int(2));
    t.now += 10_001;
    assert_eq!(t.r(&["GET", "k"]), Reply::Nil);
    assert_eq!(t.w(&["DEL", "k"]), Reply::Int(0));
    assert_eq!(
        t.w(&["SET", "k", "v", "EX", "0"]),
        Reply::err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(
        t.w(&["SET", "k", "v", "NX", "XX"]),
        Reply::err("ERR syntax error")
    );
    assert_eq!(
        t.w(&["GET"]),
        Reply::err("ERR wrong number of arguments for 'get' command")
    );
    assert!(
        matches!(t.w(&["NOPE", "x"]), Reply::Error(e) if e.starts_with("ERR unknown command 'NOPE'"))
    );
    assert_eq!(t.engine.applied_index(), t.seq);
}

fn multi_is_one_batch_and_errors_roll_back_one_command(kind: EngineKind) {
    let mut t = T::new(kind);
    t.seq += 1;
    let ctx = ApplyCtx {
        seq: t.seq,
        now_ms: t.now,
        seed: 1,
    };
    let applied = t
        .engine
        .apply(
            &ctx,
            &Op::Multi {
                cmds: vec![
                    (0, cmd(&["SET", "a", "1"])),
                    (0, cmd(&["SET", "b", "2", "EX", "-1"])),
                    (1, cmd(&["SET", "a", "db1"])),
                ],
            },
        )
        .expect("apply");
    assert_eq!(applied.replies[0], Reply::Ok);
    assert!(applied.replies[1].is_error());
    assert_eq!(applied.replies[2], Reply::Ok);
    assert_eq!(t.r(&["GET", "a"]), Reply::Bulk(b("1")));
    assert_eq!(t.r(&["GET", "b"]), Reply::Nil);
    let r = t.engine.read(1, t.now, &cmd(&["GET", "a"])).expect("read");
    assert_eq!(r.reply, Reply::Bulk(b("db1")));
}

fn expiry_cycle_deletes_due_keys(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "a", "1", "PX", "100"]);
    t.w(&["SET", "b", "1", "PX", "5000"]);
    t.w(&["SET", "c", "1"]);
    t.now += 200;
    let r = t.engine.read(0, t.now, &cmd(&["GET", "a"])).expect("read");
    assert_eq!(r.reply, Reply::Nil);
    assert_eq!(r.expired, vec![(0, b("a"))]);
    t.seq += 1;
    let ctx = ApplyCtx {
        seq: t.seq,
        now_ms: t.now,
        seed: 0,
    };
    let a = t
        .engine
        .apply(&ctx, &Op::ExpireCycle { max: 10 })
        .expect("cycle");
    assert_eq!(a.replies.as_slice(), [Reply::Int(1)]);
    assert_eq!(common::touched(&a), [(0, b("a"))]);
    assert_eq!(t.r(&["EXISTS", "a", "b", "c"]), Reply::Int(2));
}

/// The prefetch hint takes any round of writes (resolved or not, malformed, MULTI, expiry,
/// more keys than one window, one key many times, collection writes on keys of another
/// type) and leaves the data as it was; the same writes then apply as usual.
fn prefetch_of_any_round_changes_nothing(kind: EngineKind) {
    use keel_engine::engine::{resolve, PrefetchScratch};
    let mut t = T::new(kind);
    t.w(&["SET", "s", "1"]);
    t.w(&["RPUSH", "l", "a", "b"]);
    t.w(&["HSET", "h", "f", "v"]);
    let digest = t.engine.digest(t.now).expect("digest");
    let mut writes = common::ops(&[
        "SET s 2",
        "LPUSH l z",
        "HSET h g w",
        "HSET h g",
        "RPOP l 2",
        "LPOP l x",
        "LPOP s",
        "SADD h m",
        "ZADD z NX CH",
        "NOSUCH x",
        "SET",
        "MSET",
    ]);
    writes.push(Op::Command {
        db: 0,
        args: vec![],
    });
    writes.push(Op::Multi {
        cmds: vec![(1, cmd(&["SET", "s", "3"]))],
    });
    writes.push(Op::ExpireCycle { max: 10 });
    let mset: Vec<String> = (0..40)
        .flat_map(|i| [format!("k{i}"), "v".into()])
        .collect();
    let mut mset_args = vec!["MSET"];
    mset_args.extend(mset.iter().map(String::as_str));
    writes.push(Op::Command {
        db: 2,
        args: cmd(&mset_args),
    });
    writes.extend((0..20).map(|_| Op::Command {
        db: 0,
        args: cmd(&["INCR", "n"]),
    }));
    let specs: Vec<_> = writes
        .iter()
        .map(|op| match op {
            Op::Command { args, .. } => resolve(args).ok(),
            _ => None,
        })
        .collect();
    let mut scratch = PrefetchScratch::default();
    // Once with the connections' resolution, once leaving it to the engine.
    t.engine
        .prefetch(&mut scratch, writes.iter().zip(specs.iter().copied()));
    t.engine
        .prefetch(&mut scratch, writes.iter().map(|op| (op, None)));
    assert_eq!(t.engine.digest(t.now).expect("digest"), digest, "{kind}");
    assert_eq!(t.w(&["INCR", "n"]), Reply::Int(1));
    assert_eq!(t.w(&["LPUSH", "l", "z"]), Reply::Int(3));
    assert_eq!(t.r(&["GET", "s"]), Reply::Bulk(b("1")));
}

all_engines!(
    prefetch_of_any_round_changes_nothing,
    basics,
    multi_is_one_batch_and_errors_roll_back_one_command,
    expiry_cycle_deletes_due_keys
);

#[test]
fn keyspace_events_are_recorded_only_when_wanted() {
    let mut t = T::new(EngineKind::Memory);
    let set = |k: &str| Op::Command {
        db: 0,
        args: cmd(&["SET", k, "v"]),
    };
    let on = t.apply(set("a"));
    let names: Vec<&str> = on.events.iter().map(|e| e.event).collect();
    assert_eq!(names, ["new", "set"], "on by default");
    t.engine.record_events(false);
    let off = t.apply(set("b"));
    assert!(off.events.is_empty(), "{:?}", off.events);
    // WATCH and blocking pops still learn which keys changed.
    assert_eq!(common::touched(&off), [(0, common::b("b"))]);
    assert_eq!(t.r(&["GET", "b"]), Reply::Bulk(common::b("v")));
    t.engine.record_events(true);
    let again = t.apply(set("c"));
    assert_eq!(again.events.len(), 2);
}
