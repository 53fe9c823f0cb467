//! Stream consumer groups on every storage engine: XGROUP, XREADGROUP (new entries,
//! NOACK, history), XACK, XPENDING, XCLAIM, XAUTOCLAIM, XINFO, the read counter and
//! lag, and that a deleted consumer or group leaves no records behind. Expected texts
//! are redis-server's answers to the same commands; where 7.0 and 7.2 differ (consumers
//! made by a read that found nothing, `inactive`, `active-time`) they follow 7.2's source.

mod common;

use bytes::Bytes;
use common::{cmd, T};
use keel_engine::{Op, Reply};
use keel_storage::EngineKind;

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn err(s: &str) -> Reply {
    Reply::Error(s.to_owned())
}

fn arr(items: Vec<Reply>) -> Reply {
    Reply::Array(items)
}

fn empty() -> Reply {
    Reply::Array(Vec::new())
}

/// `[id, [f, v, …]]`.
fn entry(id: &str, fields: &[&str]) -> Reply {
    arr(vec![
        bulk(id),
        arr(fields.iter().map(|f| bulk(f)).collect()),
    ])
}

/// XREADGROUP's reply for one stream.
fn read1(key: &str, entries: Vec<Reply>) -> Reply {
    Reply::PairMap(vec![(bulk(key), arr(entries))])
}

/// The value of `name` in a map reply.
fn field(r: &Reply, name: &str) -> Reply {
    let Reply::Map(pairs) = r else {
        panic!("not a map: {r:?}");
    };
    pairs
        .iter()
        .find(|(k, _)| *k == bulk(name))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {name} in {r:?}"))
}

/// The items of an array reply.
fn items(r: &Reply) -> Vec<Reply> {
    match r {
        Reply::Array(v) => v.clone(),
        other => panic!("not an array: {other:?}"),
    }
}

/// The IDs of XPENDING's extended rows (or of any list of `[id, …]`).
fn row_ids(r: &Reply) -> Vec<Reply> {
    items(r).iter().map(|row| items(row)[0].clone()).collect()
}

/// XINFO GROUPS's map of group `g` (by position).
fn group_info(t: &T, key: &str, at: usize) -> Reply {
    items(&t.r(&["XINFO", "GROUPS", key]))[at].clone()
}

/// The (entries-read, lag) of XINFO GROUPS's group at `at`.
fn read_and_lag(t: &T, key: &str, at: usize) -> (Reply, Reply) {
    let g = group_info(t, key, at);
    (field(&g, "entries-read"), field(&g, "lag"))
}

fn stream_of(t: &mut T, key: &str, ids: &[&str]) {
    for id in ids {
        assert_eq!(t.w(&["XADD", key, id, "f", id]), bulk(id));
    }
}

const NO_KEY: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";
const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

fn xgroup_create_and_errors(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["XGROUP", "CREATE", "s", "g", "$"]), err(NO_KEY));
    assert_eq!(
        t.w(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]),
        Reply::Ok
    );
    assert_eq!(t.r(&["EXISTS", "s"]), Reply::Int(1));
    assert_eq!(t.r(&["XLEN", "s"]), Reply::Int(0));
    assert_eq!(
        t.w(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]),
        err("BUSYGROUP Consumer Group name already exists")
    );
    assert_eq!(
        t.w(&["XGROUP", "CREATE", "s", "g2", "$", "foo"]),
        err("ERR unknown subcommand or wrong number of arguments for 'CREATE'. Try XGROUP HELP.")
    );
    assert_eq!(
        t.w(&["XGROUP", "CREATE", "s", "g2", "$", "ENTRIESREAD", "-5"]),
        err("ERR value for ENTRIESREAD must be positive or -1")
    );
    assert_eq!(
        t.w(&["XGROUP", "CREATE", "s", "g2", "$", "ENTRIESREAD", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(t.w(&["XGROUP", "CREATE", "s", "g2", "-"]), err(INVALID_ID));
    assert_eq!(
        t.w(&["XGROUP", "CREATE", "s", "g2", "bad"]),
        err(INVALID_ID)
    );
    assert_eq!(
        t.w(&["XGROUP", "SETID", "s", "nog", "0"]),
        err("NOGROUP No such consumer group 'nog' for key name 's'")
    );
    assert_eq!(
        t.w(&["XGROUP", "CREATECONSUMER", "s", "nog", "c"]),
        err("NOGROUP No such consumer group 'nog' for key name 's'")
    );
    assert_eq!(
        t.w(&["XGROUP", "setid", "s", "g", "0", "MKSTREAM"]),
        err("ERR unknown subcommand or wrong number of arguments for 'setid'. Try XGROUP HELP.")
    );
    assert_eq!(
        t.w(&["XGROUP", "setid", "s", "g", "0", "ENTRIESREAD"]),
        err("ERR unknown subcommand or wrong number of arguments for 'setid'. Try XGROUP HELP.")
    );
    assert_eq!(
        t.w(&["XGROUP", "DELCONSUMER", "nokey", "g", "c"]),
        err(NO_KEY)
    );
    assert_eq!(t.w(&["XGROUP", "DESTROY", "s", "nog"]), Reply::Int(0));
    assert_eq!(
        t.w(&["XGROUP", "foo"]),
        err("ERR unknown subcommand 'foo'. Try XGROUP HELP.")
    );
    assert_eq!(
        t.w(&["XGROUP", "CREATE", "s"]),
        err("ERR wrong number of arguments for 'xgroup|create' command")
    );
    assert_eq!(
        t.w(&["XGROUP", "DESTROY", "s", "g", "x"]),
        err("ERR wrong number of arguments for 'xgroup|destroy' command")
    );
    assert_eq!(
        t.w(&["XGROUP", "HELP", "x"]),
        err("ERR wrong number of arguments for 'xgroup|help' command")
    );
    assert_eq!(
        t.w(&["XGROUP"]),
        err("ERR wrong number of arguments for 'xgroup' command")
    );
    let help = items(&t.w(&["XGROUP", "HELP"]));
    assert_eq!(help.len(), 17);
    assert_eq!(
        help[0],
        Reply::Simple("XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:".into())
    );
    t.w(&["SET", "str", "x"]);
    assert_eq!(
        t.w(&["XGROUP", "CREATE", "str", "g", "0"]),
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    // SETID takes `-` and `+`; entries-read is unknown without ENTRIESREAD.
    assert_eq!(t.w(&["XGROUP", "SETID", "s", "g", "+"]), Reply::Ok);
    let g = group_info(&t, "s", 0);
    assert_eq!(
        field(&g, "last-delivered-id"),
        bulk("18446744073709551615-18446744073709551615")
    );
    assert_eq!(field(&g, "entries-read"), Reply::Nil);
    assert_eq!(field(&g, "lag"), Reply::Int(0));
    // ENTRIESREAD is kept as given.
    stream_of(&mut t, "e", &["1-1", "1-2", "1-3", "1-4"]);
    assert_eq!(
        t.w(&["XGROUP", "CREATE", "e", "g1", "$", "ENTRIESREAD", "0"]),
        Reply::Ok
    );
    assert_eq!(
        t.w(&["XGROUP", "CREATE", "e", "g2", "$", "ENTRIESREAD", "3"]),
        Reply::Ok
    );
    assert_eq!(read_and_lag(&t, "e", 0).0, Reply::Int(0));
    assert_eq!(read_and_lag(&t, "e", 1).0, Reply::Int(3));
    assert_eq!(t.w(&["XGROUP", "DESTROY", "e", "g1"]), Reply::Int(1));
    assert_eq!(items(&t.r(&["XINFO", "GROUPS", "e"])).len(), 1);
}

fn readgroup_delivers_new_entries(kind: EngineKind) {
    let mut t = T::new(kind);
    stream_of(&mut t, "s", &["1-0", "2-0", "3-0"]);
    assert_eq!(t.w(&["XGROUP", "CREATE", "s", "g", "0"]), Reply::Ok);
    assert_eq!(
        t.w(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            ">"
        ]),
        read1("s", vec![entry("1-0", &["f", "1-0"])])
    );
    t.now += 5;
    assert_eq!(
        t.w(&["XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", ">"]),
        read1(
            "s",
            vec![entry("2-0", &["f", "2-0"]), entry("3-0", &["f", "3-0"])]
        )
    );
    // Nothing new: a null array (the server blocks on it with BLOCK), and the consumer
    // is made all the same (Redis 7.2).
    assert_eq!(
        t.w(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "carol",
            "BLOCK",
            "10",
            "STREAMS",
            "s",
            ">"
        ]),
        Reply::NilArray
    );
    let g = group_info(&t, "s", 0);
    assert_eq!(field(&g, "consumers"), Reply::Int(3));
    assert_eq!(field(&g, "pending"), Reply::Int(3));
    assert_eq!(field(&g, "last-delivered-id"), bulk("3-0"));
    assert_eq!(
        t.r(&["XPENDING", "s", "g"]),
        arr(vec![
            Reply::Int(3),
            bulk("1-0"),
            bulk("3-0"),
            arr(vec![
                arr(vec![bulk("alice"), bulk("1")]),
                arr(vec![bulk("bob"), bulk("2")])
            ]),
        ])
    );
    t.now += 10;
    assert_eq!(
        t.r(&["XPENDING", "s", "g", "-", "+", "10"]),
        arr(vec![
            arr(vec![
                bulk("1-0"),
                bulk("alice"),
                Reply::Int(15),
                Reply::Int(1)
            ]),
            arr(vec![
                bulk("2-0"),
                bulk("bob"),
                Reply::Int(10),
                Reply::Int(1)
            ]),
            arr(vec![
                bulk("3-0"),
                bulk("bob"),
                Reply::Int(10),
                Reply::Int(1)
            ]),
        ])
    );
    let consumers = items(&t.r(&["XINFO", "CONSUMERS", "s", "g"]));
    let names: Vec<Reply> = consumers.iter().map(|c| field(c, "name")).collect();
    assert_eq!(names, vec![bulk("alice"), bulk("bob"), bulk("carol")]);
    assert_eq!(field(&consumers[0], "pending"), Reply::Int(1));
    assert_eq!(field(&consumers[1], "pending"), Reply::Int(2));
    assert_eq!(field(&consumers[2], "pending"), Reply::Int(0));
    assert_eq!(field(&consumers[0], "idle"), Reply::Int(15));
    assert_eq!(field(&consumers[0], "inactive"), Reply::Int(15));
    assert_eq!(
        field(&consumers[2], "inactive"),
        Reply::Int(-1),
        "never active"
    );
    // Errors, checked before anything is read.
    assert_eq!(
        t.w(&["XREADGROUP", "GROUP", "nog", "c", "STREAMS", "s", ">"]),
        err("NOGROUP No such key 's' or consumer group 'nog' in XREADGROUP with GROUP option")
    );
    assert_eq!(
        t.w(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "nokey", ">"]),
        err("NOGROUP No such key 'nokey' or consumer group 'g' in XREADGROUP with GROUP option")
    );
    assert_eq!(
        t.w(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "$"]),
        err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.")
    );
    assert_eq!(
        t.w(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "BLOCK",
            "-1",
            "STREAMS",
            "s",
            ">"
        ]),
        err("ERR timeout is negative")
    );
    assert_eq!(
        t.w(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "BLOCK",
            "x",
            "STREAMS",
            "s",
            ">"
        ]),
        err("ERR timeout is not an integer or out of range")
    );
    assert_eq!(
        t.w(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "s", ">"]),
        err("ERR Unbalanced 'xreadgroup' list of streams: for each stream key an ID or '>' must be specified.")
    );
    assert_eq!(
        t.w(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "x-y"]),
        err(INVALID_ID)
    );
    assert_eq!(
        items(&t.r(&["XINFO", "CONSUMERS", "s", "g"])).len(),
        3,
        "failed reads make no consumer"
    );
    // New entries after SETID back are handed over to the reader, counted afresh.
    assert_eq!(t.w(&["XGROUP", "SETID", "s", "g", "1-0"]), Reply::Ok);
    assert_eq!(
        t.w(&["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"]),
        read1(
            "s",
            vec![entry("2-0", &["f", "2-0"]), entry("3-0", &["f", "3-0"])]
        )
    );
    let pending = t.r(&["XPENDING", "s", "g", "-", "+", "10"]);
    assert_eq!(
        items(&pending)
            .iter()
            .map(|row| items(row)[1].clone())
            .collect::<Vec<_>>(),
        vec![bulk("alice"); 3]
    );
    assert_eq!(t.r(&["XPENDING", "s", "g", "-", "+", "10", "bob"]), empty());
    let summary = items(&t.r(&["XPENDING", "s", "g"]));
    assert_eq!(summary[3], arr(vec![arr(vec![bulk("alice"), bulk("3")])]));
}

fn readgroup_multiple_streams_and_noack(kind: EngineKind) {
    let mut t = T::new(kind);
    stream_of(&mut t, "a", &["1-0", "2-0"]);
    assert_eq!(t.w(&["XGROUP", "CREATE", "a", "g", "0"]), Reply::Ok);
    assert_eq!(
        t.w(&["XGROUP", "CREATE", "b", "g", "$", "MKSTREAM"]),
        Reply::Ok
    );
    // Only the streams with something new are in the reply.
    assert_eq!(
        t.w(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "NOACK",
            "STREAMS",
            "a",
            "b",
            ">",
            ">"
        ]),
        read1(
            "a",
            vec![entry("1-0", &["f", "1-0"]), entry("2-0", &["f", "2-0"])]
        )
    );
    assert_eq!(
        t.r(&["XPENDING", "a", "g"]),
        arr(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray])
    );
    let g = group_info(&t, "a", 0);
    assert_eq!(field(&g, "last-delivered-id"), bulk("2-0"));
    assert_eq!(field(&g, "entries-read"), Reply::Int(2));
    assert_eq!(field(&g, "consumers"), Reply::Int(1));
    assert_eq!(field(&group_info(&t, "b", 0), "consumers"), Reply::Int(1));
    let c = &items(&t.r(&["XINFO", "CONSUMERS", "a", "g"]))[0];
    assert_eq!(
        field(c, "inactive"),
        Reply::Int(-1),
        "NOACK is not activity"
    );
    stream_of(&mut t, "b", &["5-0"]);
    assert_eq!(
        t.w(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "5",
            "STREAMS",
            "a",
            "b",
            ">",
            ">"
        ]),
        read1("b", vec![entry("5-0", &["f", "5-0"])])
    );
    // A history read answers for every stream, even with nothing.
    assert_eq!(
        t.w(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "STREAMS",
            "a",
            "b",
            "0",
            "0"
        ]),
        Reply::PairMap(vec![
            (bulk("a"), empty()),
            (bulk("b"), arr(vec![entry("5-0", &["f", "5-0"])])),
        ])
    );
    // The same key twice: the second read sees the first's delivery.
    stream_of(&mut t, "a", &["3-0", "4-0"]);
    assert_eq!(
        t.w(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "d",
            "COUNT",
            "1",
            "STREAMS",
            "a",
            "a",
            ">",
            ">"
        ]),
        Reply::PairMap(vec![
            (bulk("a"), arr(vec![entry("3-0", &["f", "3-0"])])),
            (bulk("a"), arr(vec![entry("4-0", &["f", "4-0"])])),
        ])
    );
}

fn readgroup_history(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(
        t.w(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]),
        Reply::Ok
    );
    stream_of(&mut t, "s", &["1-0"]);
    t.w(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"]);
    assert_eq!(
        t.w(&["XADD", "s", "MAXLEN", "1", "2-0", "f", "B"]),
        bulk("2-0")
    );
    t.w(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"]);
    t.now += 100;
    // A deleted entry shows as its ID and a null.
    assert_eq!(
        t.w(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "0-1"]),
        read1(
            "s",
            vec![
                arr(vec![bulk("1-0"), Reply::NilArray]),
                entry("2-0", &["f", "B"])
            ]
        )
    );
    // The ID is exclusive, COUNT bounds it, and other consumers see nothing of it.
    assert_eq!(
        t.w(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "1-0"]),
        read1("s", vec![entry("2-0", &["f", "B"])])
    );
    assert_eq!(
        t.w(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            "0"
        ]),
        read1("s", vec![arr(vec![bulk("1-0"), Reply::NilArray])])
    );
    assert_eq!(
        t.w(&["XREADGROUP", "GROUP", "g", "other", "STREAMS", "s", "0"]),
        read1("s", vec![])
    );
    // Redelivery counts and resets the idle time; the deleted entry is left alone.
    assert_eq!(
        t.r(&["XPENDING", "s", "g", "-", "+", "10"]),
        arr(vec![
            arr(vec![bulk("1-0"), bulk("c"), Reply::Int(100), Reply::Int(1)]),
            arr(vec![bulk("2-0"), bulk("c"), Reply::Int(0), Reply::Int(3)]),
        ])
    );
}

fn xack_acknowledges(kind: EngineKind) {
    let mut t = T::new(kind);
    stream_of(&mut t, "s", &["1-0", "2-0", "3-0"]);
    assert_eq!(t.w(&["XACK", "s", "g", "1-0"]), Reply::Int(0), "no group");
    assert_eq!(t.w(&["XACK", "nokey", "g", "bad"]), Reply::Int(0), "no key");
    t.w(&["XGROUP", "CREATE", "s", "g", "0"]);
    t.w(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c1",
        "COUNT",
        "2",
        "STREAMS",
        "s",
        ">",
    ]);
    t.w(&["XREADGROUP", "GROUP", "g", "c2", "STREAMS", "s", ">"]);
    assert_eq!(t.w(&["XACK", "s", "g", "1-0", "bad"]), err(INVALID_ID));
    assert_eq!(t.r(&["XPENDING", "s", "g"]).clone(), {
        arr(vec![
            Reply::Int(3),
            bulk("1-0"),
            bulk("3-0"),
            arr(vec![
                arr(vec![bulk("c1"), bulk("2")]),
                arr(vec![bulk("c2"), bulk("1")]),
            ]),
        ])
    });
    assert_eq!(t.w(&["XACK", "s", "g", "1-0"]), Reply::Int(1));
    assert_eq!(t.w(&["XACK", "s", "g", "1-0"]), Reply::Int(0));
    assert_eq!(
        t.w(&["XACK", "s", "g", "1-0", "2", "3-0", "9-0"]),
        Reply::Int(2)
    );
    assert_eq!(
        t.r(&["XPENDING", "s", "g"]),
        arr(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray])
    );
    let consumers = items(&t.r(&["XINFO", "CONSUMERS", "s", "g"]));
    assert_eq!(field(&consumers[0], "pending"), Reply::Int(0));
    assert_eq!(field(&consumers[1], "pending"), Reply::Int(0));
    assert_eq!(
        t.w(&["XREADGROUP", "GROUP", "g", "c1", "STREAMS", "s", "0"]),
        read1("s", vec![]),
        "the consumer's index is empty too"
    );
}

fn xpending_forms(kind: EngineKind) {
    let mut t = T::new(kind);
    stream_of(&mut t, "s", &["1-0", "2-0", "3-0", "4-0"]);
    t.w(&["XGROUP", "CREATE", "s", "g", "0"]);
    t.w(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "a",
        "COUNT",
        "2",
        "STREAMS",
        "s",
        ">",
    ]);
    t.now += 50;
    t.w(&["XREADGROUP", "GROUP", "g", "b", "STREAMS", "s", ">"]);
    t.now += 10;
    let ids = |r: Reply| row_ids(&r);
    assert_eq!(
        ids(t.r(&["XPENDING", "s", "g", "(1-0", "(4-0", "10"])),
        vec![bulk("2-0"), bulk("3-0")]
    );
    assert_eq!(
        ids(t.r(&["XPENDING", "s", "g", "-", "+", "3"])),
        vec![bulk("1-0"), bulk("2-0"), bulk("3-0")]
    );
    assert_eq!(t.r(&["XPENDING", "s", "g", "-", "+", "0"]), empty());
    assert_eq!(t.r(&["XPENDING", "s", "g", "-", "+", "-5"]), empty());
    assert_eq!(
        ids(t.r(&["XPENDING", "s", "g", "-", "+", "10", "b"])),
        vec![bulk("3-0"), bulk("4-0")]
    );
    assert_eq!(
        ids(t.r(&["XPENDING", "s", "g", "2", "3", "10", "b"])),
        vec![bulk("3-0")]
    );
    assert_eq!(
        t.r(&["XPENDING", "s", "g", "-", "+", "10", "nobody"]),
        empty()
    );
    assert_eq!(
        ids(t.r(&["XPENDING", "s", "g", "IDLE", "30", "-", "+", "10"])),
        vec![bulk("1-0"), bulk("2-0")]
    );
    assert_eq!(
        ids(t.r(&["XPENDING", "s", "g", "IDLE", "30", "-", "+", "1"])),
        vec![bulk("1-0")]
    );
    assert_eq!(
        t.r(&["XPENDING", "s", "g", "IDLE", "30", "-", "+", "10", "b"]),
        empty()
    );
    assert_eq!(
        ids(t.r(&["XPENDING", "s", "g", "IDLE", "5", "-", "+", "10", "b"])),
        vec![bulk("3-0"), bulk("4-0")]
    );
    // Errors: the arguments are checked before the key.
    assert_eq!(t.r(&["XPENDING", "s", "g", "-"]), err("ERR syntax error"));
    assert_eq!(
        t.r(&["XPENDING", "s", "g", "IDLE", "5", "-", "+"]),
        err("ERR syntax error")
    );
    assert_eq!(
        t.r(&["XPENDING", "nokey", "g", "-", "+", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        t.r(&["XPENDING", "nokey", "g", "x", "+", "1"]),
        err(INVALID_ID)
    );
    assert_eq!(
        t.r(&[
            "XPENDING",
            "s",
            "g",
            "(18446744073709551615-18446744073709551615",
            "+",
            "1"
        ]),
        err("ERR invalid start ID for the interval")
    );
    assert_eq!(
        t.r(&["XPENDING", "nokey", "g"]),
        err("NOGROUP No such key 'nokey' or consumer group 'g'")
    );
    assert_eq!(
        t.r(&["XPENDING", "s", "nog", "-", "+", "1"]),
        err("NOGROUP No such key 's' or consumer group 'nog'")
    );
}

fn xclaim_options(kind: EngineKind) {
    let mut t = T::new(kind);
    stream_of(&mut t, "s", &["1-0", "2-0", "3-0"]);
    t.w(&["XGROUP", "CREATE", "s", "g", "0"]);
    t.w(&["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"]);
    t.now += 100;
    // Not idle long enough: nothing; long enough: moved, counted, idle reset.
    assert_eq!(t.w(&["XCLAIM", "s", "g", "bob", "500", "1-0"]), empty());
    assert_eq!(
        t.w(&["XCLAIM", "s", "g", "bob", "50", "1-0"]),
        arr(vec![entry("1-0", &["f", "1-0"])])
    );
    let rows = items(&t.r(&["XPENDING", "s", "g", "-", "+", "10"]));
    assert_eq!(
        rows[0],
        arr(vec![bulk("1-0"), bulk("bob"), Reply::Int(0), Reply::Int(2)])
    );
    // JUSTID leaves the count; IDLE sets the idle time; RETRYCOUNT the count.
    assert_eq!(
        t.w(&["XCLAIM", "s", "g", "carol", "0", "1-0", "2-0", "JUSTID", "IDLE", "70"]),
        arr(vec![bulk("1-0"), bulk("2-0")])
    );
    assert_eq!(
        t.r(&["XPENDING", "s", "g", "-", "2-0", "10"]),
        arr(vec![
            arr(vec![
                bulk("1-0"),
                bulk("carol"),
                Reply::Int(70),
                Reply::Int(2)
            ]),
            arr(vec![
                bulk("2-0"),
                bulk("carol"),
                Reply::Int(70),
                Reply::Int(1)
            ]),
        ])
    );
    let at = (t.now - 30).to_string();
    assert_eq!(
        t.w(&[
            "XCLAIM",
            "s",
            "g",
            "carol",
            "0",
            "2-0",
            "TIME",
            &at,
            "RETRYCOUNT",
            "7",
            "JUSTID"
        ]),
        arr(vec![bulk("2-0")])
    );
    assert_eq!(
        t.r(&["XPENDING", "s", "g", "2-0", "2-0", "1"]),
        arr(vec![arr(vec![
            bulk("2-0"),
            bulk("carol"),
            Reply::Int(30),
            Reply::Int(7)
        ])])
    );
    // A time ahead is taken as now.
    let ahead = (t.now + 1000).to_string();
    t.w(&[
        "XCLAIM", "s", "g", "carol", "0", "2-0", "TIME", &ahead, "JUSTID",
    ]);
    assert_eq!(
        items(&items(&t.r(&["XPENDING", "s", "g", "2-0", "2-0", "1"]))[0])[2],
        Reply::Int(0)
    );
    // FORCE makes a pending entry of an entry never delivered; LASTID moves the group.
    assert_eq!(t.w(&["XACK", "s", "g", "3-0"]), Reply::Int(1));
    assert_eq!(t.w(&["XCLAIM", "s", "g", "dave", "0", "3-0"]), empty());
    assert_eq!(
        t.w(&["XCLAIM", "s", "g", "dave", "0", "3-0", "FORCE", "LASTID", "9-0"]),
        arr(vec![entry("3-0", &["f", "3-0"])])
    );
    assert_eq!(
        items(&items(&t.r(&["XPENDING", "s", "g", "3-0", "3-0", "1"]))[0])[3],
        Reply::Int(2)
    );
    assert_eq!(
        field(&group_info(&t, "s", 0), "last-delivered-id"),
        bulk("9-0")
    );
    // An entry deleted from the stream leaves the PEL instead.
    assert_eq!(t.w(&["XDEL", "s", "1-0"]), Reply::Int(1));
    assert_eq!(
        t.w(&["XCLAIM", "s", "g", "erin", "0", "1-0", "2-0", "JUSTID"]),
        arr(vec![bulk("2-0")])
    );
    assert_eq!(
        row_ids(&t.r(&["XPENDING", "s", "g", "-", "+", "10"])),
        vec![bulk("2-0"), bulk("3-0")]
    );
    let consumers = items(&t.r(&["XINFO", "CONSUMERS", "s", "g"]));
    let pending: Vec<(Reply, Reply)> = consumers
        .iter()
        .map(|c| (field(c, "name"), field(c, "pending")))
        .collect();
    assert_eq!(
        pending,
        vec![
            (bulk("alice"), Reply::Int(0)),
            (bulk("bob"), Reply::Int(0)),
            (bulk("carol"), Reply::Int(0)),
            (bulk("dave"), Reply::Int(1)),
            (bulk("erin"), Reply::Int(1)),
        ]
    );
    // Errors.
    assert_eq!(
        t.w(&["XCLAIM", "s", "nog", "c", "0", "1-0"]),
        err("NOGROUP No such key 's' or consumer group 'nog'")
    );
    assert_eq!(
        t.w(&["XCLAIM", "s", "g", "c", "x", "1-0"]),
        err("ERR Invalid min-idle-time argument for XCLAIM")
    );
    assert_eq!(
        t.w(&["XCLAIM", "s", "g", "c", "0", "1-0", "FORCE", "2-0"]),
        err("ERR Unrecognized XCLAIM option '2-0'")
    );
    assert_eq!(
        t.w(&["XCLAIM", "s", "g", "c", "0", "1-0", "IDLE", "x"]),
        err("ERR Invalid IDLE option argument for XCLAIM")
    );
    assert_eq!(
        t.w(&["XCLAIM", "s", "g", "c", "0", "1-0", "RETRYCOUNT", "x"]),
        err("ERR Invalid RETRYCOUNT option argument for XCLAIM")
    );
    assert_eq!(
        t.w(&["XCLAIM", "s", "g", "c", "0", "1-0", "LASTID", "x"]),
        err(INVALID_ID)
    );
    assert_eq!(
        items(&t.r(&["XINFO", "CONSUMERS", "s", "g"])).len(),
        5,
        "errors made no consumer"
    );
}

fn xautoclaim_iterates(kind: EngineKind) {
    let mut t = T::new(kind);
    stream_of(&mut t, "s", &["1-0", "2-0", "3-0", "4-0", "5-0"]);
    t.w(&["XGROUP", "CREATE", "s", "g", "0"]);
    t.w(&["XREADGROUP", "GROUP", "g", "a", "STREAMS", "s", ">"]);
    t.now += 200;
    assert_eq!(
        t.w(&["XAUTOCLAIM", "s", "g", "b", "10", "-", "COUNT", "2"]),
        arr(vec![
            bulk("3-0"),
            arr(vec![
                entry("1-0", &["f", "1-0"]),
                entry("2-0", &["f", "2-0"])
            ]),
            empty()
        ])
    );
    assert_eq!(
        t.w(&[
            "XAUTOCLAIM",
            "s",
            "g",
            "b",
            "10",
            "3-0",
            "COUNT",
            "2",
            "JUSTID"
        ]),
        arr(vec![
            bulk("5-0"),
            arr(vec![bulk("3-0"), bulk("4-0")]),
            empty()
        ])
    );
    assert_eq!(
        t.w(&["XAUTOCLAIM", "s", "g", "b", "10", "5-0"]),
        arr(vec![
            bulk("0-0"),
            arr(vec![entry("5-0", &["f", "5-0"])]),
            empty()
        ])
    );
    // Too recently claimed: skipped, and the cursor runs out.
    assert_eq!(
        t.w(&["XAUTOCLAIM", "s", "g", "c", "10", "-"]),
        arr(vec![bulk("0-0"), empty(), empty()])
    );
    let counts: Vec<Reply> = items(&t.r(&["XPENDING", "s", "g", "-", "+", "10"]))
        .iter()
        .map(|row| items(row)[3].clone())
        .collect();
    assert_eq!(
        counts,
        vec![
            Reply::Int(2),
            Reply::Int(2),
            Reply::Int(1),
            Reply::Int(1),
            Reply::Int(2)
        ],
        "JUSTID does not count a delivery"
    );
    // Deleted entries leave the PEL, count against COUNT, and are listed.
    t.w(&["XDEL", "s", "1-0", "2-0"]);
    assert_eq!(
        t.w(&["XAUTOCLAIM", "s", "g", "c", "0", "0-0", "COUNT", "1"]),
        arr(vec![bulk("2-0"), empty(), arr(vec![bulk("1-0")])])
    );
    assert_eq!(
        t.w(&["XAUTOCLAIM", "s", "g", "c", "0", "(1-0", "COUNT", "2"]),
        arr(vec![
            bulk("4-0"),
            arr(vec![entry("3-0", &["f", "3-0"])]),
            arr(vec![bulk("2-0")])
        ])
    );
    assert_eq!(
        row_ids(&t.r(&["XPENDING", "s", "g", "-", "+", "10", "b"])),
        vec![bulk("4-0"), bulk("5-0")]
    );
    assert_eq!(
        row_ids(&t.r(&["XPENDING", "s", "g", "-", "+", "10", "c"])),
        vec![bulk("3-0")]
    );
    // Errors.
    for bad in ["0", "-1", "x", "8070450532247928833"] {
        assert_eq!(
            t.w(&["XAUTOCLAIM", "s", "g", "c", "0", "0", "COUNT", bad]),
            err("ERR COUNT must be > 0"),
            "COUNT {bad}"
        );
    }
    assert_eq!(
        t.w(&["XAUTOCLAIM", "nokey", "g", "c", "x", "0"]),
        err("ERR Invalid min-idle-time argument for XAUTOCLAIM")
    );
    assert_eq!(
        t.w(&["XAUTOCLAIM", "nokey", "g", "c", "0", "0", "FOO"]),
        err("ERR syntax error")
    );
    assert_eq!(
        t.w(&["XAUTOCLAIM", "nokey", "g", "c", "0", "0"]),
        err("NOGROUP No such key 'nokey' or consumer group 'g'")
    );
}

fn delconsumer_and_destroy_leave_nothing(kind: EngineKind) {
    let mut t = T::new(kind);
    stream_of(&mut t, "s", &["1-0", "2-0", "3-0"]);
    t.w(&["XGROUP", "CREATE", "s", "g", "0"]);
    t.w(&["XGROUP", "CREATE", "s", "gg", "0"]);
    assert_eq!(
        t.w(&["XGROUP", "CREATECONSUMER", "s", "g", "a"]),
        Reply::Int(1)
    );
    assert_eq!(
        t.w(&["XGROUP", "CREATECONSUMER", "s", "g", "a"]),
        Reply::Int(0)
    );
    t.w(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "a",
        "COUNT",
        "2",
        "STREAMS",
        "s",
        ">",
    ]);
    t.w(&["XREADGROUP", "GROUP", "g", "b", "STREAMS", "s", ">"]);
    t.w(&["XREADGROUP", "GROUP", "gg", "a", "STREAMS", "s", ">"]);
    assert_eq!(
        t.w(&["XGROUP", "DELCONSUMER", "s", "g", "a"]),
        Reply::Int(2)
    );
    assert_eq!(
        t.w(&["XGROUP", "DELCONSUMER", "s", "g", "a"]),
        Reply::Int(0)
    );
    let g = group_info(&t, "s", 0);
    assert_eq!(field(&g, "consumers"), Reply::Int(1));
    assert_eq!(field(&g, "pending"), Reply::Int(1));
    assert_eq!(
        row_ids(&t.r(&["XPENDING", "s", "g", "-", "+", "10"])),
        vec![bulk("3-0")]
    );
    // A consumer of the same name starts empty.
    assert_eq!(
        t.w(&["XGROUP", "CREATECONSUMER", "s", "g", "a"]),
        Reply::Int(1)
    );
    assert_eq!(
        t.w(&["XREADGROUP", "GROUP", "g", "a", "STREAMS", "s", "0"]),
        read1("s", vec![])
    );
    // The other group is untouched.
    assert_eq!(field(&group_info(&t, "s", 1), "pending"), Reply::Int(3));
    // A group made again after DESTROY has no consumers or pending entries left.
    assert_eq!(t.w(&["XGROUP", "DESTROY", "s", "g"]), Reply::Int(1));
    assert_eq!(
        t.w(&["XREADGROUP", "GROUP", "g", "b", "STREAMS", "s", ">"]),
        err("NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option")
    );
    t.w(&["XGROUP", "CREATE", "s", "g", "$"]);
    let g = group_info(&t, "s", 0);
    assert_eq!(field(&g, "consumers"), Reply::Int(0));
    assert_eq!(field(&g, "pending"), Reply::Int(0));
    assert_eq!(t.r(&["XPENDING", "s", "g", "-", "+", "10"]), empty());
    assert_eq!(t.r(&["XINFO", "CONSUMERS", "s", "g"]), empty());
    assert_eq!(
        t.w(&["XGROUP", "CREATECONSUMER", "s", "g", "b"]),
        Reply::Int(1)
    );
    assert_eq!(
        t.w(&["XREADGROUP", "GROUP", "g", "b", "STREAMS", "s", "0"]),
        read1("s", vec![])
    );
    assert_eq!(field(&group_info(&t, "s", 1), "pending"), Reply::Int(3));
}

fn lag_and_entries_read(kind: EngineKind) {
    let mut t = T::new(kind);
    // Empty streams.
    t.w(&["XGROUP", "CREATE", "x", "g1", "0", "MKSTREAM"]);
    assert_eq!(read_and_lag(&t, "x", 0), (Reply::Nil, Reply::Int(0)));
    t.w(&["XADD", "x", "1-0", "data", "a"]);
    t.w(&["XDEL", "x", "1-0"]);
    assert_eq!(read_and_lag(&t, "x", 0), (Reply::Nil, Reply::Int(0)));
    // Sanity.
    t.w(&["DEL", "x"]);
    stream_of(&mut t, "x", &["1-0", "2-0", "3-0", "4-0", "5-0"]);
    t.w(&["XGROUP", "CREATE", "x", "g1", "0"]);
    assert_eq!(read_and_lag(&t, "x", 0), (Reply::Nil, Reply::Int(5)));
    t.w(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "c11",
        "COUNT",
        "1",
        "STREAMS",
        "x",
        ">",
    ]);
    assert_eq!(read_and_lag(&t, "x", 0), (Reply::Int(1), Reply::Int(4)));
    t.w(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "c12",
        "COUNT",
        "10",
        "STREAMS",
        "x",
        ">",
    ]);
    assert_eq!(read_and_lag(&t, "x", 0), (Reply::Int(5), Reply::Int(0)));
    t.w(&["XADD", "x", "6-0", "data", "f"]);
    assert_eq!(read_and_lag(&t, "x", 0), (Reply::Int(5), Reply::Int(1)));
    // With XDELs.
    t.w(&["DEL", "x"]);
    stream_of(&mut t, "x", &["1-0", "2-0", "3-0", "4-0", "5-0"]);
    t.w(&["XDEL", "x", "3-0"]);
    t.w(&["XGROUP", "CREATE", "x", "g1", "0"]);
    t.w(&["XGROUP", "CREATE", "x", "g2", "0"]);
    assert_eq!(read_and_lag(&t, "x", 0), (Reply::Nil, Reply::Nil));
    for _ in 0..3 {
        t.w(&[
            "XREADGROUP",
            "GROUP",
            "g1",
            "c11",
            "COUNT",
            "1",
            "STREAMS",
            "x",
            ">",
        ]);
        assert_eq!(read_and_lag(&t, "x", 0), (Reply::Nil, Reply::Nil));
    }
    t.w(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "c11",
        "COUNT",
        "1",
        "STREAMS",
        "x",
        ">",
    ]);
    assert_eq!(read_and_lag(&t, "x", 0), (Reply::Int(5), Reply::Int(0)));
    t.w(&["XADD", "x", "6-0", "data", "f"]);
    assert_eq!(read_and_lag(&t, "x", 0), (Reply::Int(5), Reply::Int(1)));
    t.w(&["XTRIM", "x", "MINID", "=", "3-0"]);
    assert_eq!(read_and_lag(&t, "x", 0), (Reply::Int(5), Reply::Int(1)));
    assert_eq!(read_and_lag(&t, "x", 1), (Reply::Nil, Reply::Int(3)));
    t.w(&["XTRIM", "x", "MINID", "=", "5-0"]);
    assert_eq!(read_and_lag(&t, "x", 0), (Reply::Int(5), Reply::Int(1)));
    assert_eq!(read_and_lag(&t, "x", 1), (Reply::Nil, Reply::Int(2)));
    // A read past a deletion ahead turns the counter unknown (redis-server 7.0.15).
    t.w(&["DEL", "x"]);
    stream_of(&mut t, "x", &["1-0", "2-0", "3-0"]);
    t.w(&["XGROUP", "CREATE", "x", "g0", "0"]);
    t.w(&[
        "XREADGROUP",
        "GROUP",
        "g0",
        "a",
        "COUNT",
        "1",
        "STREAMS",
        "x",
        ">",
    ]);
    assert_eq!(read_and_lag(&t, "x", 0), (Reply::Int(1), Reply::Int(2)));
    t.w(&["XDEL", "x", "3-0"]);
    assert_eq!(read_and_lag(&t, "x", 0), (Reply::Int(1), Reply::Nil));
    t.w(&["XREADGROUP", "GROUP", "g0", "a", "STREAMS", "x", ">"]);
    assert_eq!(read_and_lag(&t, "x", 0), (Reply::Nil, Reply::Nil));
    assert_eq!(
        field(&group_info(&t, "x", 0), "last-delivered-id"),
        bulk("2-0")
    );
}

fn xinfo_stream_and_errors(kind: EngineKind) {
    let mut t = T::new(kind);
    stream_of(&mut t, "x", &["100-0", "101-0", "102-0", "103-0", "104-0"]);
    t.w(&["XGROUP", "CREATE", "x", "g1", "0"]);
    t.w(&["XGROUP", "CREATE", "x", "g2", "0"]);
    t.w(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "Alice",
        "COUNT",
        "1",
        "STREAMS",
        "x",
        ">",
    ]);
    t.now += 1;
    t.w(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "Bob",
        "COUNT",
        "1",
        "STREAMS",
        "x",
        ">",
    ]);
    t.w(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "Bob",
        "NOACK",
        "COUNT",
        "1",
        "STREAMS",
        "x",
        ">",
    ]);
    t.w(&[
        "XREADGROUP",
        "GROUP",
        "g2",
        "Charlie",
        "COUNT",
        "4",
        "STREAMS",
        "x",
        ">",
    ]);
    t.w(&["XDEL", "x", "103"]);
    let info = t.r(&["XINFO", "STREAM", "x"]);
    let Reply::Map(pairs) = &info else {
        panic!("not a map: {info:?}");
    };
    assert_eq!(pairs.len(), 10);
    assert_eq!(field(&info, "length"), Reply::Int(4));
    assert_eq!(field(&info, "radix-tree-keys"), Reply::Int(1));
    assert_eq!(field(&info, "radix-tree-nodes"), Reply::Int(2));
    assert_eq!(field(&info, "last-generated-id"), bulk("104-0"));
    assert_eq!(field(&info, "max-deleted-entry-id"), bulk("103-0"));
    assert_eq!(field(&info, "entries-added"), Reply::Int(5));
    assert_eq!(field(&info, "recorded-first-entry-id"), bulk("100-0"));
    assert_eq!(field(&info, "groups"), Reply::Int(2));
    assert_eq!(field(&info, "first-entry"), entry("100-0", &["f", "100-0"]));
    assert_eq!(field(&info, "last-entry"), entry("104-0", &["f", "104-0"]));
    let full = t.r(&["XINFO", "STREAM", "x", "FULL"]);
    let Reply::Map(pairs) = &full else {
        panic!("not a map: {full:?}");
    };
    assert_eq!(pairs.len(), 9);
    assert_eq!(
        row_ids(&field(&full, "entries")),
        vec![bulk("100-0"), bulk("101-0"), bulk("102-0"), bulk("104-0")]
    );
    let groups = items(&field(&full, "groups"));
    assert_eq!(field(&groups[0], "name"), bulk("g1"));
    assert_eq!(field(&groups[0], "pel-count"), Reply::Int(2));
    assert_eq!(
        field(&groups[0], "pending"),
        arr(vec![
            arr(vec![
                bulk("100-0"),
                bulk("Alice"),
                Reply::Int(1_700_000_000_000),
                Reply::Int(1)
            ]),
            arr(vec![
                bulk("101-0"),
                bulk("Bob"),
                Reply::Int(1_700_000_000_001),
                Reply::Int(1)
            ]),
        ])
    );
    let consumers = items(&field(&groups[0], "consumers"));
    assert_eq!(field(&consumers[0], "name"), bulk("Alice"));
    assert_eq!(
        field(&consumers[0], "seen-time"),
        Reply::Int(1_700_000_000_000)
    );
    assert_eq!(
        field(&consumers[0], "active-time"),
        Reply::Int(1_700_000_000_000)
    );
    assert_eq!(field(&consumers[0], "pel-count"), Reply::Int(1));
    assert_eq!(
        field(&consumers[0], "pending"),
        arr(vec![arr(vec![
            bulk("100-0"),
            Reply::Int(1_700_000_000_000),
            Reply::Int(1)
        ])])
    );
    let charlie = &items(&field(&groups[1], "consumers"))[0];
    assert_eq!(row_ids(&field(charlie, "pending")).len(), 4);
    let one = t.r(&["XINFO", "STREAM", "x", "FULL", "COUNT", "1"]);
    assert_eq!(row_ids(&field(&one, "entries")), vec![bulk("100-0")]);
    let charlie = &items(&field(&items(&field(&one, "groups"))[1], "consumers"))[0];
    assert_eq!(row_ids(&field(charlie, "pending")), vec![bulk("100-0")]);
    // An empty stream.
    t.w(&["XGROUP", "CREATE", "e", "g", "$", "MKSTREAM"]);
    let info = t.r(&["XINFO", "STREAM", "e"]);
    assert_eq!(field(&info, "radix-tree-keys"), Reply::Int(0));
    assert_eq!(field(&info, "recorded-first-entry-id"), bulk("0-0"));
    assert_eq!(field(&info, "first-entry"), Reply::Nil);
    assert_eq!(field(&info, "groups"), Reply::Int(1));
    // Errors.
    assert_eq!(t.r(&["XINFO", "STREAM", "nokey"]), err("ERR no such key"));
    assert_eq!(
        t.r(&["XINFO", "STREAM", "x", "full", "count"]),
        err("ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP.")
    );
    assert_eq!(
        t.r(&["XINFO", "STREAM", "x", "full", "count", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        t.r(&["XINFO", "GROUPS", "x", "y"]),
        err("ERR wrong number of arguments for 'xinfo|groups' command")
    );
    assert_eq!(
        t.r(&["XINFO", "CONSUMERS", "x", "nog"]),
        err("NOGROUP No such consumer group 'nog' for key name 'x'")
    );
    assert_eq!(
        t.r(&["XINFO", "foo", "x"]),
        err("ERR unknown subcommand 'foo'. Try XINFO HELP.")
    );
    assert_eq!(items(&t.r(&["XINFO", "HELP"])).len(), 9);
    t.w(&["SET", "str", "v"]);
    assert_eq!(
        t.r(&["XINFO", "GROUPS", "str"]),
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
}

fn group_events(kind: EngineKind) {
    let mut t = T::new(kind);
    let events = |t: &mut T, line: &str| -> Vec<String> {
        let applied = t.apply(Op::Command {
            db: 0,
            args: cmd(&line.split(' ').collect::<Vec<_>>()),
        });
        applied
            .events
            .iter()
            .map(|e| format!("{} {}", e.event, String::from_utf8_lossy(&e.key)))
            .collect()
    };
    assert_eq!(
        events(&mut t, "XGROUP CREATE s g $ MKSTREAM"),
        ["new s", "xgroup-create s"]
    );
    assert_eq!(events(&mut t, "XADD s 1-0 f v"), ["xadd s"]);
    assert_eq!(
        events(&mut t, "XREADGROUP GROUP g c STREAMS s >"),
        ["xgroup-createconsumer s"]
    );
    assert_eq!(
        events(&mut t, "XREADGROUP GROUP g c STREAMS s >"),
        Vec::<String>::new()
    );
    assert_eq!(
        events(&mut t, "XCLAIM s g d 0 1-0"),
        ["xgroup-createconsumer s"]
    );
    assert_eq!(
        events(&mut t, "XGROUP CREATECONSUMER s g e"),
        ["xgroup-createconsumer s"]
    );
    assert_eq!(events(&mut t, "XGROUP SETID s g 0"), ["xgroup-setid s"]);
    assert_eq!(
        events(&mut t, "XGROUP DELCONSUMER s g d"),
        ["xgroup-delconsumer s"]
    );
    assert_eq!(events(&mut t, "XACK s g 1-0"), Vec::<String>::new());
    assert_eq!(events(&mut t, "XGROUP DESTROY s g"), ["xgroup-destroy s"]);
}

all_engines!(
    xgroup_create_and_errors,
    readgroup_delivers_new_entries,
    readgroup_multiple_streams_and_noack,
    readgroup_history,
    xack_acknowledges,
    xpending_forms,
    xclaim_options,
    xautoclaim_iterates,
    delconsumer_and_destroy_leave_nothing,
    lag_and_entries_read,
    xinfo_stream_and_errors,
    group_events,
);
