//! BITFIELD and BITFIELD_RO on every storage engine: fields across bytes, `#` offsets,
//! the overflow policies, growth, TTL, events and Redis's error texts.

mod common;

use common::{cmd, T};
use keel_engine::{Op, Reply};
use keel_storage::EngineKind;

fn ints(items: &[Option<i64>]) -> Reply {
    Reply::Array(
        items
            .iter()
            .map(|v| v.map_or(Reply::Nil, Reply::Int))
            .collect(),
    )
}

fn reads_and_writes(kind: EngineKind) {
    let mut t = T::new(kind);
    // Missing key: every field reads 0, nothing is created.
    assert_eq!(
        t.r(&["BITFIELD_RO", "k", "GET", "u8", "0"]),
        ints(&[Some(0)])
    );
    assert_eq!(t.r(&["EXISTS", "k"]), Reply::Int(0));
    // SET answers the old value; a field straddling bytes; GET sees it in the same call.
    assert_eq!(
        t.w(&["BITFIELD", "k", "SET", "u8", "5", "165", "GET", "u8", "5", "GET", "i8", "5"]),
        ints(&[Some(0), Some(165), Some(165 - 256)])
    );
    assert_eq!(t.r(&["STRLEN", "k"]), Reply::Int(2));
    assert_eq!(
        t.r(&["GETBIT", "k", "5"]),
        Reply::Int(1),
        "bit 0 is the MSB of byte 0"
    );
    // `#n` is the n-th field of the width; INCRBY answers the new value.
    assert_eq!(
        t.w(&["BITFIELD", "k", "SET", "i16", "#2", "-300", "INCRBY", "i16", "#2", "1"]),
        ints(&[Some(0), Some(-299)])
    );
    assert_eq!(t.r(&["STRLEN", "k"]), Reply::Int(6));
    assert_eq!(
        t.r(&["BITFIELD_RO", "k", "GET", "i16", "32"]),
        ints(&[Some(-299)])
    );
    // i64 round trip.
    assert_eq!(
        t.w(&[
            "BITFIELD",
            "k",
            "SET",
            "i64",
            "100",
            "-9223372036854775808",
            "GET",
            "i64",
            "100"
        ]),
        ints(&[Some(0), Some(i64::MIN)])
    );
}

fn overflow_policies(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(
        t.w(&["BITFIELD", "c", "SET", "u4", "0", "15", "INCRBY", "u4", "0", "1"]),
        ints(&[Some(0), Some(0)]),
        "WRAP is the default"
    );
    assert_eq!(
        t.w(&[
            "BITFIELD", "c", "OVERFLOW", "SAT", "INCRBY", "u4", "0", "100", "INCRBY", "i4", "4",
            "-100"
        ]),
        ints(&[Some(15), Some(-8)])
    );
    // FAIL answers nil and leaves the field; the policy holds for the later writes only.
    assert_eq!(
        t.w(&[
            "BITFIELD", "c", "INCRBY", "u4", "0", "1", "OVERFLOW", "FAIL", "INCRBY", "u4", "0",
            "1", "GET", "u4", "0"
        ]),
        ints(&[Some(0), Some(1), Some(1)])
    );
    assert_eq!(
        t.w(&["BITFIELD", "c", "OVERFLOW", "FAIL", "SET", "u4", "0", "16", "SET", "i4", "0", "-8"]),
        ints(&[None, Some(1)])
    );
    // An unsigned SET of a negative value takes its 64 bits: saturates at the top.
    assert_eq!(
        t.w(&["BITFIELD", "c", "OVERFLOW", "SAT", "SET", "u8", "8", "-1", "GET", "u8", "8"]),
        ints(&[Some(0), Some(255)])
    );
}

fn keeps_ttl_and_raises_setbit(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "s", "abc", "EX", "100"]);
    let applied = t.apply(Op::Command {
        db: 0,
        args: cmd(&["BITFIELD", "s", "SET", "u8", "0", "65"]),
    });
    assert_eq!(applied.replies[0], ints(&[Some(i64::from(b'a'))]));
    let events: Vec<&str> = applied.events.iter().map(|e| e.event).collect();
    assert_eq!(events, ["setbit"]);
    assert_eq!(t.r(&["GET", "s"]), Reply::Bulk("Abc".into()));
    assert_eq!(t.r(&["TTL", "s"]), Reply::Int(100));
    // Writing the value that is there changes nothing and raises nothing.
    let applied = t.apply(Op::Command {
        db: 0,
        args: cmd(&["BITFIELD", "s", "SET", "u8", "0", "65"]),
    });
    assert!(applied.events.is_empty());
    assert!(applied.touched.is_empty());
}

fn errors(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["RPUSH", "l", "a"]);
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    assert_eq!(
        t.w(&["BITFIELD", "l", "GET", "u8", "0"]),
        Reply::err(wrongtype)
    );
    let bad_type = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
    for ty in ["u64", "i65", "i0", "x8", "u"] {
        assert_eq!(
            t.w(&["BITFIELD", "k", "GET", ty, "0"]),
            Reply::err(bad_type),
            "{ty}"
        );
    }
    let bad_offset = "ERR bit offset is not an integer or out of range";
    for off in ["-1", "4294967296", "#-1", "x", "#536870912"] {
        assert_eq!(
            t.w(&["BITFIELD", "k", "GET", "u8", off]),
            Reply::err(bad_offset),
            "{off}"
        );
    }
    assert_eq!(
        t.w(&["BITFIELD", "k", "SET", "u8", "0", "x"]),
        Reply::err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        t.w(&["BITFIELD", "k", "OVERFLOW", "MAYBE"]),
        Reply::err("ERR Invalid OVERFLOW type specified")
    );
    assert_eq!(
        t.w(&["BITFIELD", "k", "GET", "u8"]),
        Reply::err("ERR syntax error")
    );
    assert_eq!(
        t.r(&["BITFIELD_RO", "k", "SET", "u8", "0", "1"]),
        Reply::err("ERR BITFIELD_RO only supports the GET subcommand")
    );
    assert_eq!(t.r(&["EXISTS", "k"]), Reply::Int(0));
}

all_engines!(
    reads_and_writes,
    overflow_policies,
    keeps_ttl_and_raises_setbit,
    errors
);
