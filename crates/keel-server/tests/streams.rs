//! Streams through the real binary killed with SIGKILL: entries with `*` IDs, trims,
//! consumer groups and their pending entries come back from the log as they were
//! acknowledged, on the memory and bitcask engines.

mod common;

use common::{connect, spawn_binary};
use redis::Value;

/// What a client can see of stream `s` and its group `g`.
fn state(con: &mut redis::Connection) -> (Value, Value, Value, Value) {
    let entries: Value = redis::cmd("XRANGE")
        .arg("s")
        .arg("-")
        .arg("+")
        .query(con)
        .expect("xrange");
    let pending: Value = redis::cmd("XPENDING")
        .arg("s")
        .arg("g")
        .arg("-")
        .arg("+")
        .arg(100)
        .query(con)
        .expect("xpending");
    let groups: Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg("s")
        .query(con)
        .expect("xinfo groups");
    let len: Value = redis::cmd("XLEN").arg("s").query(con).expect("xlen");
    (entries, pending, groups, len)
}

/// Drops XPENDING's idle times (the one field that moves with the clock).
fn without_idle(v: &Value) -> Value {
    match v {
        Value::Array(rows) => Value::Array(
            rows.iter()
                .map(|r| match r {
                    Value::Array(f) if f.len() == 4 => {
                        Value::Array(vec![f[0].clone(), f[1].clone(), f[3].clone()])
                    }
                    other => other.clone(),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn streams_survive_sigkill(engine: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let args = ["--appendfsync", "always", "--engine", engine];
    let srv = spawn_binary(&dir, &args);
    let mut con = connect(srv.addr);
    let mut ids = Vec::new();
    for i in 0..250 {
        let id: String = redis::cmd("XADD")
            .arg("s")
            .arg("MAXLEN")
            .arg("~")
            .arg(120)
            .arg("*")
            .arg("n")
            .arg(i)
            .query(&mut con)
            .expect("xadd");
        ids.push(id);
    }
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("s")
        .arg("g")
        .arg("0")
        .query(&mut con)
        .expect("xgroup");
    let _: Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g")
        .arg("alice")
        .arg("COUNT")
        .arg(7)
        .arg("STREAMS")
        .arg("s")
        .arg(">")
        .query(&mut con)
        .expect("xreadgroup");
    let first_pending = ids[ids.len() - 150].clone();
    let _: i64 = redis::cmd("XACK")
        .arg("s")
        .arg("g")
        .arg(&first_pending)
        .query(&mut con)
        .expect("xack");
    let _: Value = redis::cmd("XCLAIM")
        .arg("s")
        .arg("g")
        .arg("bob")
        .arg(0)
        .arg(&ids[ids.len() - 148])
        .query(&mut con)
        .expect("xclaim");
    let _: i64 = redis::cmd("XDEL")
        .arg("s")
        .arg(&ids[ids.len() - 1])
        .query(&mut con)
        .expect("xdel");
    let before = state(&mut con);
    assert_eq!(
        before.3,
        Value::Int(149),
        "250 added, 100 trimmed by `~ 120`, one deleted"
    );
    srv.kill9();

    let srv = spawn_binary(&dir, &args);
    let mut con = connect(srv.addr);
    let after = state(&mut con);
    assert_eq!(after.0, before.0, "entries and their `*` IDs come back");
    assert_eq!(
        without_idle(&after.1),
        without_idle(&before.1),
        "pending entries"
    );
    assert_eq!(after.2, before.2, "groups");
    assert_eq!(after.3, before.3);
    // The last ID survives too: the next `*` ID is above the deleted last entry's.
    let next: String = redis::cmd("XADD")
        .arg("s")
        .arg("*")
        .arg("n")
        .arg("x")
        .query(&mut con)
        .expect("xadd");
    let parse = |id: &str| -> (u64, u64) {
        let (ms, seq) = id.split_once('-').expect("id");
        (ms.parse().expect("ms"), seq.parse().expect("seq"))
    };
    assert!(
        parse(&next) > parse(&ids[ids.len() - 1]),
        "{next} after {}",
        ids[ids.len() - 1]
    );
    srv.kill9();
}

#[test]
fn streams_survive_sigkill_memory() {
    streams_survive_sigkill("memory");
}

#[test]
fn streams_survive_sigkill_bitcask() {
    streams_survive_sigkill("bitcask");
}
