//! Expiry commands: EXPIRE family options and errors, TTL family, PERSIST, lazy expiry
//! in reads and the active expiry cycle. (The model-based test with a moving clock is in
//! tests/keyspace.rs, next to the key commands it interleaves with.)

mod common;

use common::{b, cmd, T};
use keel_engine::keys;
use keel_engine::{Op, Reply};
use keel_storage::{Direction, EngineKind, ScanRange};

fn err(s: &str) -> Reply {
    Reply::err(s)
}

fn expiry_entries(t: &T) -> usize {
    t.engine
        .storage()
        .scan(ScanRange::prefix([keys::EXPIRY_IDX]), Direction::Forward)
        .count()
}

fn expire_family_basics(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["EXPIRE", "nope", "10"]), Reply::Int(0));
    assert_eq!(t.r(&["TTL", "nope"]), Reply::Int(-2));
    assert_eq!(t.r(&["PTTL", "nope"]), Reply::Int(-2));
    assert_eq!(t.r(&["EXPIRETIME", "nope"]), Reply::Int(-2));
    assert_eq!(t.r(&["PEXPIRETIME", "nope"]), Reply::Int(-2));
    t.w(&["SET", "k", "v"]);
    assert_eq!(t.r(&["TTL", "k"]), Reply::Int(-1));
    assert_eq!(t.r(&["EXPIRETIME", "k"]), Reply::Int(-1));
    assert_eq!(t.w(&["PERSIST", "k"]), Reply::Int(0));

    assert_eq!(t.w(&["EXPIRE", "k", "100"]), Reply::Int(1));
    assert_eq!(t.r(&["PTTL", "k"]), Reply::Int(100_000));
    assert_eq!(t.r(&["TTL", "k"]), Reply::Int(100));
    t.now += 1_499;
    assert_eq!(t.r(&["TTL", "k"]), Reply::Int(99), "98.501 s rounds to 99");
    t.now += 2;
    assert_eq!(t.r(&["TTL", "k"]), Reply::Int(98), "98.499 s rounds to 98");
    let at = t.now + 5_000;
    assert_eq!(t.w(&["PEXPIREAT", "k", &at.to_string()]), Reply::Int(1));
    assert_eq!(t.r(&["PEXPIRETIME", "k"]), Reply::Int(at as i64));
    assert_eq!(t.r(&["EXPIRETIME", "k"]), Reply::Int((at / 1000) as i64));
    assert_eq!(expiry_entries(&t), 1, "the old index entry was replaced");
    let secs = t.now / 1000 + 60;
    assert_eq!(t.w(&["EXPIREAT", "k", &secs.to_string()]), Reply::Int(1));
    assert_eq!(t.r(&["PEXPIRETIME", "k"]), Reply::Int((secs * 1000) as i64));
    assert_eq!(t.w(&["PEXPIRE", "k", "250"]), Reply::Int(1));
    assert_eq!(t.r(&["PTTL", "k"]), Reply::Int(250));
    assert_eq!(t.w(&["PERSIST", "k"]), Reply::Int(1));
    assert_eq!(t.r(&["PTTL", "k"]), Reply::Int(-1));
    assert_eq!(expiry_entries(&t), 0);
    // A SET without KEEPTTL clears the expiry (and its index entry).
    t.w(&["EXPIRE", "k", "10"]);
    t.w(&["SET", "k", "v2"]);
    assert_eq!(t.r(&["TTL", "k"]), Reply::Int(-1));
    assert_eq!(expiry_entries(&t), 0);
}

fn times_in_the_past_delete(kind: EngineKind) {
    let mut t = T::new(kind);
    for (i, args) in [
        vec!["EXPIRE", "k0", "0"],
        vec!["EXPIRE", "k1", "-5"],
        vec!["PEXPIRE", "k2", "-1"],
        vec!["EXPIREAT", "k3", "1"],
        vec!["PEXPIREAT", "k4", "0"],
    ]
    .into_iter()
    .enumerate()
    {
        let k = format!("k{i}");
        t.w(&["SET", &k, "v", "EX", "100"]);
        assert_eq!(t.w(&args), Reply::Int(1), "{args:?}");
        assert_eq!(t.r(&["EXISTS", &k]), Reply::Int(0), "{args:?}");
    }
    assert_eq!(expiry_entries(&t), 0);
    // Exactly now counts as past.
    t.w(&["SET", "n", "v"]);
    assert_eq!(t.w(&["PEXPIREAT", "n", &t.now.to_string()]), Reply::Int(1));
    assert_eq!(t.r(&["EXISTS", "n"]), Reply::Int(0));
}

fn option_rules(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "k", "v"]);
    let nx_err = err("ERR NX and XX, GT or LT options at the same time are not compatible");
    let gtlt_err = err("ERR GT and LT options at the same time are not compatible");
    assert_eq!(t.w(&["EXPIRE", "k", "10", "NX", "XX"]), nx_err);
    assert_eq!(t.w(&["EXPIRE", "k", "10", "gt", "nx"]), nx_err);
    assert_eq!(t.w(&["EXPIRE", "k", "10", "NX", "LT"]), nx_err);
    assert_eq!(t.w(&["EXPIRE", "k", "10", "GT", "LT"]), gtlt_err);
    assert_eq!(
        t.w(&["EXPIRE", "k", "10", "FOO"]),
        err("ERR Unsupported option FOO")
    );
    // Option errors come before the integer check, as in Redis.
    assert_eq!(t.w(&["EXPIRE", "k", "ten", "GT", "LT"]), gtlt_err);
    assert_eq!(
        t.w(&["EXPIRE", "k", "ten"]),
        err("ERR value is not an integer or out of range")
    );

    // No expiry yet: XX and GT refuse, LT and NX set.
    assert_eq!(t.w(&["EXPIRE", "k", "100", "XX"]), Reply::Int(0));
    assert_eq!(t.w(&["EXPIRE", "k", "100", "GT"]), Reply::Int(0));
    assert_eq!(t.r(&["TTL", "k"]), Reply::Int(-1));
    assert_eq!(t.w(&["EXPIRE", "k", "100", "LT"]), Reply::Int(1));
    assert_eq!(t.w(&["PERSIST", "k"]), Reply::Int(1));
    assert_eq!(t.w(&["EXPIRE", "k", "100", "NX"]), Reply::Int(1));
    assert_eq!(t.w(&["EXPIRE", "k", "50", "NX"]), Reply::Int(0));
    assert_eq!(t.w(&["EXPIRE", "k", "50", "XX"]), Reply::Int(1));
    assert_eq!(t.w(&["EXPIRE", "k", "40", "GT"]), Reply::Int(0));
    assert_eq!(
        t.w(&["EXPIRE", "k", "50", "GT"]),
        Reply::Int(0),
        "equal is not greater"
    );
    assert_eq!(t.w(&["EXPIRE", "k", "60", "GT"]), Reply::Int(1));
    assert_eq!(
        t.w(&["EXPIRE", "k", "60", "LT"]),
        Reply::Int(0),
        "equal is not less"
    );
    assert_eq!(t.w(&["EXPIRE", "k", "30", "lt"]), Reply::Int(1));
    assert_eq!(t.r(&["TTL", "k"]), Reply::Int(30));
    assert_eq!(t.w(&["EXPIRE", "k", "40", "XX", "GT"]), Reply::Int(1));
    assert_eq!(t.r(&["TTL", "k"]), Reply::Int(40));
    // LT with a time in the past deletes.
    assert_eq!(t.w(&["EXPIRE", "k", "-1", "LT"]), Reply::Int(1));
    assert_eq!(t.r(&["EXISTS", "k"]), Reply::Int(0));
}

fn overflow_errors(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "k", "v"]);
    let max = i64::MAX.to_string();
    assert_eq!(
        t.w(&["EXPIRE", "k", &max]),
        err("ERR invalid expire time in 'expire' command")
    );
    assert_eq!(
        t.w(&["EXPIRE", "k", &(i64::MAX / 1000).to_string()]),
        err("ERR invalid expire time in 'expire' command"),
        "fits in ms but not after adding now"
    );
    assert_eq!(
        t.w(&["PEXPIRE", "k", &max]),
        err("ERR invalid expire time in 'pexpire' command")
    );
    assert_eq!(
        t.w(&["EXPIREAT", "k", &max]),
        err("ERR invalid expire time in 'expireat' command")
    );
    assert_eq!(
        t.w(&["EXPIRE", "k", &i64::MIN.to_string()]),
        err("ERR invalid expire time in 'expire' command")
    );
    // PEXPIREAT takes any i64; a far-future time is valid.
    assert_eq!(t.w(&["PEXPIREAT", "k", &max]), Reply::Int(1));
    assert_eq!(t.r(&["PEXPIRETIME", "k"]), Reply::Int(i64::MAX));
    // Overflow is checked before the key lookup, as in Redis.
    assert_eq!(
        t.w(&["EXPIRE", "missing", &max]),
        err("ERR invalid expire time in 'expire' command")
    );
    assert_eq!(
        t.w(&["TTL"]),
        err("ERR wrong number of arguments for 'ttl' command")
    );
    assert_eq!(
        t.w(&["EXPIRE", "k"]),
        err("ERR wrong number of arguments for 'expire' command")
    );
}

fn lazy_and_active_expiry(kind: EngineKind) {
    let mut t = T::new(kind);
    for i in 0..10 {
        t.w(&[
            "SET",
            &format!("k{i}"),
            "v",
            "PX",
            &(100 * (i + 1)).to_string(),
        ]);
    }
    t.w(&["SET", "persistent", "v"]);
    t.now += 350;
    // Reads see k0..k2 as gone and report them for deletion through the log.
    let r = t.engine.read(0, t.now, &cmd(&["GET", "k1"])).expect("read");
    assert_eq!(r.reply, Reply::Nil);
    assert_eq!(r.expired, vec![(0, b("k1"))]);
    assert_eq!(t.r(&["TTL", "k2"]), Reply::Int(-2));
    assert_eq!(t.r(&["GET", "k3"]), Reply::Bulk(b("v")));
    assert_eq!(t.r(&["PTTL", "k3"]), Reply::Int(50));
    // The reported keys are deleted by an ExpireDue entry.
    let a = t.apply(Op::ExpireDue {
        db: 0,
        keys: vec![b("k1"), b("k3")],
    });
    assert_eq!(a.replies.as_slice(), [Reply::Int(1)], "k3 is not due yet");
    // The cycle is bounded by max and goes oldest first.
    let a = t.apply(Op::ExpireCycle { max: 1 });
    assert_eq!(a.replies.as_slice(), [Reply::Int(1)]);
    assert_eq!(common::touched(&a), [(0, b("k0"))]);
    let a = t.apply(Op::ExpireCycle { max: 100 });
    assert_eq!(a.replies.as_slice(), [Reply::Int(1)]);
    assert_eq!(common::touched(&a), [(0, b("k2"))]);
    assert_eq!(expiry_entries(&t), 7);
    t.now += 10_000;
    let a = t.apply(Op::ExpireCycle { max: 100 });
    assert_eq!(a.replies.as_slice(), [Reply::Int(7)]);
    assert_eq!(expiry_entries(&t), 0);
    assert_eq!(t.r(&["DBSIZE"]), Reply::Int(1));
}

all_engines!(
    expire_family_basics,
    times_in_the_past_delete,
    option_rules,
    overflow_errors,
    lazy_and_active_expiry
);
