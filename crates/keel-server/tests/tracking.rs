//! Client-side caching (CLIENT TRACKING): default, REDIRECT, BCAST, OPTIN/OPTOUT and
//! NOLOOP modes, invalidation ordering, flushes, expiry, the table limit, CLIENT
//! GETREDIR / TRACKINGINFO / CACHING, INFO fields and the Redis 7.2 error texts. Raw RESP
//! for the exact frames, plus the `redis` crate's RESP3 push channel.
//!
//! "Nothing was sent" is shown with a sentinel where possible: after the write that must
//! not notify, a write that must notify follows, and the next frame has to be the
//! sentinel's. A short `read_timeout` then checks that nothing else is left over.

mod common;

use std::time::{Duration, Instant};

use common::raw::{arr, b, push, Raw, V};
use common::{InProc, WAIT};
use keel_server::Config;

/// How long a "nothing more arrives" check listens; a miss can only pass wrongly, never
/// fail wrongly.
const QUIET: Duration = Duration::from_millis(150);

fn ok() -> V {
    V::Simple("OK".into())
}

fn e(text: &str) -> V {
    V::Err(text.into())
}

fn int(n: i64) -> V {
    V::Int(n)
}

fn bulks(items: &[&str]) -> V {
    arr(items.iter().map(|s| b(s)).collect())
}

/// The RESP3 invalidation push naming `keys`.
fn inv(keys: &[&str]) -> V {
    push(vec![b("invalidate"), bulks(keys)])
}

fn start() -> InProc {
    InProc::start(Config::default())
}

/// A raw connection switched to RESP3.
fn resp3(srv: &InProc) -> Raw {
    let mut r = Raw::connect(srv);
    let hello = r.call(&["HELLO", "3"]);
    assert!(matches!(hello, V::Map(_)), "HELLO 3: {hello:?}");
    r
}

fn client_id(r: &mut Raw) -> i64 {
    match r.call(&["CLIENT", "ID"]) {
        V::Int(id) => id,
        other => panic!("CLIENT ID: {other:?}"),
    }
}

/// Asserts that no frame is waiting on `r`.
fn assert_quiet(r: &mut Raw, what: &str) {
    let got = r.read_timeout(QUIET);
    assert_eq!(got, None, "unexpected frame ({what})");
}

/// The value of `field` in INFO `section`, read over a RESP2 connection.
fn info_field(r: &mut Raw, section: &str, field: &str) -> String {
    let info = match r.call(&["INFO", section]) {
        V::Bulk(v) => String::from_utf8(v).expect("utf8"),
        other => panic!("INFO {section}: {other:?}"),
    };
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}: {info}"))
        .trim()
        .to_string()
}

/// Polls INFO until `field` reads `want` (bounded by WAIT).
fn wait_info(r: &mut Raw, section: &str, field: &str, want: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = info_field(r, section, field);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{field} stayed {got}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The RESP2 CLIENT TRACKINGINFO reply.
fn info2(flags: &[&str], redirect: i64, prefixes: &[&str]) -> V {
    arr(vec![
        b("flags"),
        bulks(flags),
        b("redirect"),
        int(redirect),
        b("prefixes"),
        bulks(prefixes),
    ])
}

/// The RESP3 CLIENT TRACKINGINFO reply (flags is a set, which `Raw` reads as an array).
fn info3(flags: &[&str], redirect: i64, prefixes: &[&str]) -> V {
    V::Map(vec![
        (b("flags"), bulks(flags)),
        (b("redirect"), int(redirect)),
        (b("prefixes"), bulks(prefixes)),
    ])
}

#[test]
fn tracking_on_and_off_reply_ok_and_bad_options_get_the_redis_error_texts() {
    let srv = start();
    let mut c = Raw::connect(&srv);
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());
    assert_eq!(c.call(&["CLIENT", "TRACKING", "ON"]), ok());
    assert_eq!(c.call(&["CLIENT", "TRACKING", "OFF"]), ok());

    assert_eq!(
        c.call(&["CLIENT", "TRACKING", "on", "PREFIX", "a"]),
        e("ERR PREFIX option requires BCAST mode to be enabled")
    );
    // A refused ON leaves tracking off.
    assert_eq!(c.call(&["CLIENT", "GETREDIR"]), int(-1));

    let switch = "ERR You can't switch BCAST mode on/off before disabling tracking for this \
                  client, and then re-enabling it with a different mode.";
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "BCAST"]), e(switch));
    assert_eq!(
        c.call(&["CLIENT", "TRACKINGINFO"]),
        info2(&["on"], 0, &[]),
        "the refused switch keeps the old mode"
    );
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "BCAST"]), ok());
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on"]), e(switch));
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());

    let bcast_opt = "ERR OPTIN and OPTOUT are not compatible with BCAST";
    assert_eq!(
        c.call(&["CLIENT", "TRACKING", "on", "BCAST", "OPTIN"]),
        e(bcast_opt)
    );
    assert_eq!(
        c.call(&["CLIENT", "TRACKING", "on", "OPTOUT", "BCAST"]),
        e(bcast_opt)
    );
    assert_eq!(
        c.call(&["CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"]),
        e("ERR You can't specify both OPTIN mode and OPTOUT mode")
    );
    assert_eq!(
        c.call(&["CLIENT", "TRACKING", "on", "REDIRECT", "987654321"]),
        e("ERR The client ID you want redirect to does not exist")
    );
    assert_eq!(c.call(&["CLIENT", "GETREDIR"]), int(-1));

    assert_eq!(
        c.call(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "FOOBAR", "PREFIX", "FOO"]),
        e(
            "ERR Prefix 'FOOBAR' overlaps with another provided prefix 'FOO'. \
           Prefixes for a single client must not overlap."
        )
    );
    assert_eq!(
        c.call(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "FOO"]),
        ok()
    );
    assert_eq!(
        c.call(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "FO"]),
        e("ERR Prefix 'FO' overlaps with an existing prefix 'FOO'. \
           Prefixes for a single client must not overlap.")
    );
    // A prefix that does not overlap is added to the existing ones.
    assert_eq!(
        c.call(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "BAR"]),
        ok()
    );
    assert_eq!(
        c.call(&["CLIENT", "TRACKINGINFO"]),
        info2(&["on", "bcast"], 0, &["BAR", "FOO"])
    );
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());
    assert_eq!(
        c.call(&["CLIENT", "TRACKINGINFO"]),
        info2(&["off"], -1, &[])
    );
}

#[test]
fn tracking_syntax_errors_and_optin_optout_switch_match_redis() {
    let srv = start();
    let mut c = Raw::connect(&srv);
    let syntax = e("ERR syntax error");
    assert_eq!(c.call(&["CLIENT", "TRACKING", "maybe"]), syntax);
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "BOGUS"]), syntax);
    assert_eq!(
        c.call(&["CLIENT", "TRACKING", "on", "REDIRECT", "abc"]),
        e("ERR value is not an integer or out of range")
    );
    assert_eq!(
        c.call(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "FOO", "PREFIX", "FOOBAR"]),
        e(
            "ERR Prefix 'FOO' overlaps with another provided prefix 'FOOBAR'. \
           Prefixes for a single client must not overlap."
        )
    );
    assert_eq!(c.call(&["CLIENT", "GETREDIR"]), int(-1));

    let switch = "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this \
                  client, and then re-enabling it with a different mode.";
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "OPTIN"]), ok());
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "OPTOUT"]), e(switch));
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "OPTOUT"]), ok());
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "OPTIN"]), e(switch));
    assert_eq!(
        c.call(&["CLIENT", "TRACKINGINFO"]),
        info2(&["on", "optout"], 0, &[])
    );
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "OPTOUT"]), ok());
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());

    assert_eq!(c.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(c.call(&["CLIENT", "CACHING", "maybe"]), syntax);
}

#[test]
fn client_caching_is_refused_unless_tracking_is_in_the_matching_opt_mode() {
    let srv = start();
    let mut c = Raw::connect(&srv);
    let not_tracking = "ERR CLIENT CACHING can be called only when the client is in tracking \
                        mode with OPTIN or OPTOUT mode enabled";
    let yes_optin = "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.";
    let no_optout = "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.";
    assert_eq!(c.call(&["CLIENT", "CACHING", "yes"]), e(not_tracking));
    assert_eq!(c.call(&["CLIENT", "CACHING", "no"]), e(not_tracking));

    assert_eq!(c.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(c.call(&["CLIENT", "CACHING", "yes"]), e(yes_optin));
    assert_eq!(c.call(&["CLIENT", "CACHING", "no"]), e(no_optout));
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());

    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "OPTIN"]), ok());
    assert_eq!(c.call(&["CLIENT", "CACHING", "no"]), e(no_optout));
    assert_eq!(c.call(&["CLIENT", "CACHING", "yes"]), ok());
    assert_eq!(c.call(&["CLIENT", "CACHING", "YES"]), ok());
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());

    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "OPTOUT"]), ok());
    assert_eq!(c.call(&["CLIENT", "CACHING", "yes"]), e(yes_optin));
    assert_eq!(c.call(&["CLIENT", "CACHING", "no"]), ok());
    assert_eq!(c.call(&["CLIENT", "CACHING", "NO"]), ok());
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());

    assert_eq!(c.call(&["CLIENT", "CACHING", "yes"]), e(not_tracking));
}

#[test]
fn a_read_key_is_invalidated_once_by_another_clients_write_and_unread_keys_never() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(w.call(&["MSET", "k", "1", "s", "1", "n", "1"]), ok());
    assert_eq!(t.call(&["GET", "k"]), b("1"));
    assert_eq!(t.call(&["GET", "s"]), b("1"));

    assert_eq!(w.call(&["SET", "k", "2"]), ok());
    assert_eq!(t.read(), inv(&["k"]));

    // k was not read again and n never was: neither notifies. s (read once) does,
    // and its push must be the next frame.
    assert_eq!(w.call(&["SET", "k", "3"]), ok());
    assert_eq!(w.call(&["SET", "n", "2"]), ok());
    assert_eq!(w.call(&["SET", "s", "2"]), ok());
    assert_eq!(t.read(), inv(&["s"]));

    // Reading k again tracks it again; DEL is a write too.
    assert_eq!(t.call(&["GET", "k"]), b("3"));
    assert_eq!(w.call(&["DEL", "k"]), int(1));
    assert_eq!(t.read(), inv(&["k"]));
    // Reading a missing key tracks it as well.
    assert_eq!(t.call(&["GET", "k"]), V::Nil);
    assert_eq!(w.call(&["SET", "k", "4"]), ok());
    assert_eq!(t.read(), inv(&["k"]));
    assert_quiet(&mut t, "after the last invalidation");
    assert_eq!(t.call(&["PING"]), V::Simple("PONG".into()));
}

#[test]
fn mget_tracks_every_key_it_reads() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(w.call(&["MSET", "a", "1", "b", "2", "c", "3"]), ok());
    assert_eq!(t.call(&["MGET", "a", "b", "c"]), bulks(&["1", "2", "3"]));
    for k in ["b", "a", "c"] {
        assert_eq!(w.call(&["SET", k, "x"]), ok());
        assert_eq!(t.read(), inv(&[k]), "write to {k}");
    }
    assert_quiet(&mut t, "three writes, three invalidations");
}

/// Redis tracks the keys the read-only commands inside a script read, not the keys a
/// script declares: EVAL's in the write funnel, EVAL_RO's on the read path.
#[test]
fn scripts_track_the_keys_their_read_commands_read_not_their_declared_keys() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(
        w.call(&["MSET", "d1", "1", "d2", "1", "r1", "1", "r2", "1"]),
        ok()
    );
    let get = "return redis.call('get', ARGV[1])";
    for (script, read) in [("EVAL", "r1"), ("EVAL_RO", "r2")] {
        // Declares d1 and d2, reads only `read`.
        assert_eq!(
            t.call(&[script, get, "2", "d1", "d2", read]),
            b("1"),
            "{script}"
        );
        assert_eq!(w.call(&["MSET", "d1", "2", "d2", "2"]), ok());
        assert_eq!(w.call(&["SET", read, "2"]), ok());
        assert_eq!(t.read(), inv(&[read]), "{script} tracks what it read");
    }
    // A script that only writes tracks nothing: a later write to its key, or to the
    // declared keys, sends nothing; the sentinel's invalidation is the next frame.
    assert_eq!(
        t.call(&["EVAL", "return redis.call('set', KEYS[1], 'x')", "1", "wk"]),
        ok()
    );
    assert_eq!(w.call(&["SET", "wk", "y"]), ok());
    assert_eq!(w.call(&["SET", "d1", "3"]), ok());
    assert_eq!(t.call(&["GET", "sentinel"]), V::Nil);
    assert_eq!(w.call(&["SET", "sentinel", "1"]), ok());
    assert_eq!(t.read(), inv(&["sentinel"]));
    assert_quiet(&mut t, "after the scripts");
}

#[test]
fn read_only_commands_of_every_type_track_their_keys() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(
        w.call(&["MSET", "s", "abc", "e", "1", "ty", "1", "tt", "1"]),
        ok()
    );
    assert_eq!(w.call(&["HSET", "h", "f", "1"]), int(1));
    assert_eq!(w.call(&["RPUSH", "l", "a"]), int(1));
    assert_eq!(w.call(&["SADD", "st", "a"]), int(1));
    assert_eq!(w.call(&["ZADD", "z", "1", "a"]), int(1));
    let reads: [(&[&str], V); 8] = [
        (&["STRLEN", "s"], int(3)),
        (&["HGETALL", "h"], V::Map(vec![(b("f"), b("1"))])),
        (&["LRANGE", "l", "0", "-1"], bulks(&["a"])),
        (&["SMEMBERS", "st"], bulks(&["a"])),
        (&["ZSCORE", "z", "a"], V::Other(",1".into())),
        (&["EXISTS", "e"], int(1)),
        (&["TYPE", "ty"], V::Simple("string".into())),
        (&["TTL", "tt"], int(-1)),
    ];
    for (cmd, want) in &reads {
        assert_eq!(t.call(cmd), *want, "{cmd:?}");
    }
    for (cmd, _) in &reads {
        let key = cmd[1];
        assert_eq!(w.call(&["DEL", key]), int(1));
        assert_eq!(t.read(), inv(&[key]), "read by {}", cmd[0]);
    }
    assert_quiet(&mut t, "one invalidation per key");
}

#[test]
fn writes_that_change_nothing_send_no_invalidation() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(w.call(&["SET", "a", "1"]), ok());
    assert_eq!(w.call(&["HSET", "h", "f", "1"]), int(1));
    assert_eq!(t.call(&["GET", "a"]), b("1"));
    assert_eq!(t.call(&["HGET", "h", "f"]), b("1"));
    assert_eq!(t.call(&["GET", "missing"]), V::Nil);

    assert_eq!(w.call(&["SET", "a", "2", "NX"]), V::Nil);
    assert_eq!(w.call(&["HDEL", "h", "nofield"]), int(0));
    assert_eq!(w.call(&["DEL", "missing"]), int(0));
    assert_eq!(w.call(&["EXPIRE", "missing", "100"]), int(0));
    // The first frame is the one for a write that did change a key.
    assert_eq!(w.call(&["INCR", "a"]), int(2));
    assert_eq!(t.read(), inv(&["a"]));
    assert_eq!(w.call(&["HDEL", "h", "f"]), int(1));
    assert_eq!(t.read(), inv(&["h"]));
    assert_quiet(&mut t, "after the last invalidation");
}

#[test]
fn rename_scripts_blocking_pops_expire_and_other_databases_invalidate() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on"]), ok());

    // RENAME changes both keys.
    assert_eq!(w.call(&["SET", "r1", "1"]), ok());
    assert_eq!(t.call(&["GET", "r1"]), b("1"));
    assert_eq!(t.call(&["GET", "r2"]), V::Nil);
    assert_eq!(w.call(&["RENAME", "r1", "r2"]), ok());
    let mut got = vec![t.read(), t.read()];
    got.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(got, vec![inv(&["r1"]), inv(&["r2"])]);

    // A script's write.
    assert_eq!(w.call(&["SET", "lua", "1"]), ok());
    assert_eq!(t.call(&["GET", "lua"]), b("1"));
    assert_eq!(
        w.call(&["EVAL", "return redis.call('set', KEYS[1], 'x')", "1", "lua"]),
        ok()
    );
    assert_eq!(t.read(), inv(&["lua"]));

    // A push that serves a blocked pop: one invalidation (the key was forgotten at the
    // first change).
    assert_eq!(t.call(&["LRANGE", "bl", "0", "-1"]), arr(vec![]));
    let mut blocked = Raw::connect(&srv);
    blocked.send(&["BLPOP", "bl", "0"]);
    common::wait_blocked(&mut srv.client(), 1);
    assert_eq!(w.call(&["LPUSH", "bl", "v"]), int(1));
    assert_eq!(blocked.read(), bulks(&["bl", "v"]));
    assert_eq!(t.read(), inv(&["bl"]));

    // EXPIRE changes the key's metadata.
    assert_eq!(w.call(&["SET", "ex", "1"]), ok());
    assert_eq!(t.call(&["GET", "ex"]), b("1"));
    assert_eq!(w.call(&["EXPIRE", "ex", "100"]), int(1));
    assert_eq!(t.read(), inv(&["ex"]));

    // Keys are names, whatever the database (as in Redis).
    assert_eq!(t.call(&["GET", "dbk"]), V::Nil);
    assert_eq!(w.call(&["SELECT", "1"]), ok());
    assert_eq!(w.call(&["SET", "dbk", "1"]), ok());
    assert_eq!(t.read(), inv(&["dbk"]));
    assert_quiet(&mut t, "after the last invalidation");
}

#[test]
fn grpc_writes_invalidate_keys_read_over_resp() {
    use keel_proto::v1::kv_client::KvClient;
    use keel_proto::v1::{DeleteRequest, KeyValue, SetRequest};

    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(w.call(&["MSET", "g1", "1", "g2", "2"]), ok());
    assert_eq!(t.call(&["MGET", "g1", "g2"]), bulks(&["1", "2"]));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let addr = srv.grpc_addr.expect("gRPC is on");
    let mut kv = rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .timeout(WAIT)
            .connect_timeout(WAIT)
            .connect()
            .await
            .expect("connect gRPC");
        KvClient::new(ch)
    });
    rt.block_on(kv.set(SetRequest {
        db: 0,
        entries: vec![KeyValue {
            key: "g1".into(),
            value: "x".into(),
        }],
        ttl_ms: None,
    }))
    .expect("gRPC set");
    assert_eq!(t.read(), inv(&["g1"]));
    rt.block_on(kv.delete(DeleteRequest {
        db: 0,
        keys: vec!["g2".into()],
    }))
    .expect("gRPC delete");
    assert_eq!(t.read(), inv(&["g2"]));
    assert_quiet(&mut t, "after the last invalidation");
}

#[test]
fn resp2_tracking_without_redirect_sends_nothing_on_the_connection() {
    let srv = start();
    let mut t = Raw::connect(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(t.call(&["GET", "q"]), V::Nil);
    assert_eq!(w.call(&["SET", "q", "1"]), ok());
    assert_eq!(w.call(&["FLUSHALL"]), ok());
    t.send(&["PING"]);
    assert_eq!(t.read_timeout(WAIT), Some(V::Simple("PONG".into())));
    assert_quiet(&mut t, "RESP2 has no pushes");
}

#[test]
fn tracking_off_stops_invalidations() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(t.call(&["GET", "o"]), V::Nil);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "off"]), ok());
    assert_eq!(w.call(&["SET", "o", "1"]), ok());
    assert_eq!(w.call(&["FLUSHALL"]), ok());
    assert_eq!(t.call(&["PING"]), V::Simple("PONG".into()));
    assert_quiet(&mut t, "tracking is off");
}

#[test]
fn own_write_invalidation_arrives_after_the_write_reply() {
    let srv = start();
    let mut t = resp3(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on"]), ok());
    // Not tracked yet: a write to an unread key sends nothing.
    assert_eq!(t.call(&["HSET", "h", "f", "1"]), int(1));
    assert_eq!(t.call(&["HGET", "h", "f"]), b("1"));
    t.send(&["HDEL", "h", "f"]);
    assert_eq!(t.read(), int(1), "the reply comes first");
    assert_eq!(t.read(), inv(&["h"]));
    assert_quiet(&mut t, "one write, one invalidation");
}

#[test]
fn noloop_leaves_out_the_clients_own_writes_but_not_others() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on", "NOLOOP"]), ok());
    assert_eq!(t.call(&["MSET", "a", "1", "b", "1"]), ok());
    assert_eq!(t.call(&["GET", "a"]), b("1"));
    assert_eq!(t.call(&["GET", "b"]), b("1"));
    assert_eq!(t.call(&["SET", "a", "2"]), ok());
    // The next frame is the push for another client's write, not one for a.
    assert_eq!(w.call(&["SET", "b", "2"]), ok());
    assert_eq!(t.read(), inv(&["b"]));
    assert_eq!(t.call(&["GET", "a"]), b("2"));
    assert_eq!(w.call(&["SET", "a", "3"]), ok());
    assert_eq!(t.read(), inv(&["a"]));
    assert_quiet(&mut t, "after the last invalidation");
}

#[test]
fn multi_exec_invalidation_arrives_after_the_exec_reply() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(t.call(&["MSET", "a", "1", "b", "2"]), ok());
    assert_eq!(t.call(&["GET", "a"]), b("1"));
    assert_eq!(t.call(&["MULTI"]), ok());
    assert_eq!(t.call(&["INCR", "a"]), V::Simple("QUEUED".into()));
    assert_eq!(t.call(&["GET", "b"]), V::Simple("QUEUED".into()));
    t.send(&["EXEC"]);
    assert_eq!(
        t.read(),
        arr(vec![int(2), b("2")]),
        "EXEC's reply comes first"
    );
    assert_eq!(t.read(), inv(&["a"]));
    // The GET inside the transaction tracked b.
    assert_eq!(w.call(&["SET", "b", "3"]), ok());
    assert_eq!(t.read(), inv(&["b"]));
    assert_quiet(&mut t, "after the last invalidation");
}

/// Reads the RESP3 push `>2 invalidate _` line by line, so the null is exactly `_`.
fn expect_flush_push(r: &mut Raw, who: &str) {
    let got: Vec<String> = (0..4).map(|_| r.line()).collect();
    assert_eq!(got, [">2", "$10", "invalidate", "_"], "{who}");
}

#[test]
fn flushall_and_flushdb_send_invalidate_with_null_to_every_tracking_client() {
    let srv = start();
    let mut plain = resp3(&srv);
    let mut bcast = resp3(&srv);
    let mut optin = resp3(&srv);
    let mut quiet = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(plain.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(bcast.call(&["CLIENT", "TRACKING", "on", "BCAST"]), ok());
    assert_eq!(optin.call(&["CLIENT", "TRACKING", "on", "OPTIN"]), ok());
    assert_eq!(w.call(&["SET", "k", "v"]), ok());
    // The BCAST client is told about the SET before the flush.
    assert_eq!(bcast.read(), inv(&["k"]));
    assert_eq!(plain.call(&["GET", "k"]), b("v"));

    assert_eq!(w.call(&["FLUSHALL"]), ok());
    expect_flush_push(&mut plain, "FLUSHALL, default mode");
    expect_flush_push(&mut bcast, "FLUSHALL, BCAST");
    expect_flush_push(&mut optin, "FLUSHALL, OPTIN");

    assert_eq!(w.call(&["FLUSHDB"]), ok());
    expect_flush_push(&mut plain, "FLUSHDB, default mode");
    expect_flush_push(&mut bcast, "FLUSHDB, BCAST");
    expect_flush_push(&mut optin, "FLUSHDB, OPTIN");

    // A tracking client that flushes gets the reply and then its own notification.
    plain.send(&["FLUSHALL"]);
    assert_eq!(plain.read(), ok());
    expect_flush_push(&mut plain, "own FLUSHALL");
    expect_flush_push(&mut bcast, "FLUSHALL by a tracking client, BCAST");
    expect_flush_push(&mut optin, "FLUSHALL by a tracking client, OPTIN");

    // A client that is not tracking hears nothing.
    assert_quiet(&mut quiet, "not tracking");
    assert_eq!(quiet.call(&["PING"]), V::Simple("PONG".into()));
    for (r, who) in [
        (&mut plain, "plain"),
        (&mut bcast, "bcast"),
        (&mut optin, "optin"),
    ] {
        assert_quiet(r, who);
    }
}

/// Waits until the server no longer lists client `id`.
fn wait_client_gone(w: &mut Raw, id: i64) {
    let id = id.to_string();
    let deadline = Instant::now() + WAIT;
    loop {
        if w.call(&["CLIENT", "LIST", "ID", &id]) == b("") {
            return;
        }
        assert!(Instant::now() < deadline, "client {id} is still listed");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn redirect_sends_invalidations_to_a_resp2_subscriber_and_reports_a_broken_redirect() {
    let srv = start();
    let mut r = Raw::connect(&srv);
    let rid = client_id(&mut r);
    assert_eq!(
        r.call(&["SUBSCRIBE", "__redis__:invalidate"]),
        arr(vec![b("subscribe"), b("__redis__:invalidate"), int(1)])
    );
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    let rid_s = rid.to_string();
    assert_eq!(
        t.call(&["CLIENT", "TRACKING", "on", "REDIRECT", &rid_s]),
        ok()
    );
    assert_eq!(t.call(&["CLIENT", "GETREDIR"]), int(rid));
    assert_eq!(
        t.call(&["CLIENT", "TRACKINGINFO"]),
        info3(&["on"], rid, &[])
    );
    assert_eq!(t.call(&["GET", "k"]), V::Nil);
    assert_eq!(w.call(&["SET", "k", "1"]), ok());
    assert_eq!(
        r.read(),
        arr(vec![b("message"), b("__redis__:invalidate"), bulks(&["k"])])
    );
    // The tracking client itself hears nothing while the redirect works.
    assert_quiet(&mut t, "redirected");

    // Once the redirect target is gone, the next invalidation tells the tracker.
    assert_eq!(r.call(&["QUIT"]), ok());
    drop(r);
    wait_client_gone(&mut w, rid);
    assert_eq!(t.call(&["GET", "k"]), b("1"));
    assert_eq!(w.call(&["SET", "k", "2"]), ok());
    assert_eq!(t.read(), push(vec![b("tracking-redir-broken"), int(rid)]));
    assert_eq!(
        t.call(&["CLIENT", "TRACKINGINFO"]),
        info3(&["on", "broken_redirect"], rid, &[])
    );
    assert_eq!(t.call(&["CLIENT", "GETREDIR"]), int(rid));
    assert_quiet(&mut t, "after the broken-redirect notice");
}

#[test]
fn a_flush_reaches_a_resp2_redirect_subscriber_as_a_null_message() {
    let srv = start();
    let mut r = Raw::connect(&srv);
    let rid = client_id(&mut r).to_string();
    assert_eq!(
        r.call(&["SUBSCRIBE", "__redis__:invalidate"]),
        arr(vec![b("subscribe"), b("__redis__:invalidate"), int(1)])
    );
    let mut t = Raw::connect(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(
        t.call(&["CLIENT", "TRACKING", "on", "REDIRECT", &rid]),
        ok()
    );
    assert_eq!(w.call(&["FLUSHALL"]), ok());
    let got: Vec<String> = (0..6).map(|_| r.line()).collect();
    assert_eq!(
        got,
        ["*3", "$7", "message", "$20", "__redis__:invalidate", "$-1"]
    );
    assert_quiet(&mut r, "one tracker, one flush message");
}

#[test]
fn bcast_with_prefixes_notifies_matching_keys_without_any_read() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(
        t.call(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a:", "PREFIX", "b:"]),
        ok()
    );
    assert_eq!(w.call(&["SET", "a:1", "x"]), ok());
    assert_eq!(t.read(), inv(&["a:1"]));
    // c:1 matches no prefix; the next frame is b:1's.
    assert_eq!(w.call(&["SET", "c:1", "x"]), ok());
    assert_eq!(w.call(&["SET", "b:1", "x"]), ok());
    assert_eq!(t.read(), inv(&["b:1"]));
    // Every write notifies again; no read is needed in between.
    assert_eq!(w.call(&["DEL", "a:1"]), int(1));
    assert_eq!(t.read(), inv(&["a:1"]));
    assert_quiet(&mut t, "after the last invalidation");
}

#[test]
fn bcast_without_prefix_reports_all_keys_of_one_command_in_one_push() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on", "BCAST"]), ok());
    assert_eq!(w.call(&["MSET", "x", "1", "y", "2", "z", "3"]), ok());
    let got = t.read();
    let V::Push(items) = &got else {
        panic!("not a push: {got:?}")
    };
    assert_eq!(items.len(), 2, "{got:?}");
    assert_eq!(items[0], b("invalidate"), "{got:?}");
    let V::Arr(keys) = &items[1] else {
        panic!("no key array: {got:?}")
    };
    let mut keys = keys.clone();
    keys.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(keys, vec![b("x"), b("y"), b("z")], "{got:?}");
    // Nothing else about x, y or z follows: the next frame is w's.
    assert_eq!(w.call(&["SET", "w", "1"]), ok());
    assert_eq!(t.read(), inv(&["w"]));
    assert_quiet(&mut t, "after the last invalidation");
}

#[test]
fn bcast_noloop_leaves_out_own_writes_and_plain_bcast_keeps_them() {
    let srv = start();
    let mut nl = resp3(&srv);
    let mut plain = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(
        nl.call(&["CLIENT", "TRACKING", "on", "BCAST", "NOLOOP"]),
        ok()
    );
    assert_eq!(plain.call(&["CLIENT", "TRACKING", "on", "BCAST"]), ok());

    assert_eq!(nl.call(&["SET", "own", "1"]), ok());
    assert_eq!(plain.read(), inv(&["own"]));
    assert_eq!(w.call(&["SET", "other", "1"]), ok());
    assert_eq!(nl.read(), inv(&["other"]), "the own write was left out");
    assert_eq!(plain.read(), inv(&["other"]));

    // Without NOLOOP, the own write's push follows its reply.
    plain.send(&["SET", "mine", "1"]);
    assert_eq!(plain.read(), ok());
    assert_eq!(plain.read(), inv(&["mine"]));
    assert_eq!(nl.read(), inv(&["mine"]));
    assert_quiet(&mut nl, "noloop");
    assert_quiet(&mut plain, "plain");
}

#[test]
fn optin_tracks_only_the_read_right_after_client_caching_yes() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on", "OPTIN"]), ok());
    assert_eq!(
        w.call(&["MSET", "x", "1", "y", "1", "z", "1", "p", "1"]),
        ok()
    );
    assert_eq!(t.call(&["GET", "x"]), b("1"));
    assert_eq!(t.call(&["CLIENT", "CACHING", "yes"]), ok());
    assert_eq!(t.call(&["GET", "y"]), b("1"));
    assert_eq!(t.call(&["GET", "z"]), b("1"));
    // CACHING yes is spent by the next command, even one that reads no key.
    assert_eq!(t.call(&["CLIENT", "CACHING", "yes"]), ok());
    assert_eq!(t.call(&["PING"]), V::Simple("PONG".into()));
    assert_eq!(t.call(&["GET", "p"]), b("1"));

    for k in ["x", "z", "p", "y"] {
        assert_eq!(w.call(&["SET", k, "2"]), ok());
    }
    assert_eq!(t.read(), inv(&["y"]), "only y was read under CACHING yes");
    assert_quiet(&mut t, "after y's invalidation");
}

#[test]
fn optout_tracks_reads_unless_client_caching_no_came_right_before() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on", "OPTOUT"]), ok());
    assert_eq!(w.call(&["MSET", "x", "1", "y", "1", "z", "1"]), ok());
    assert_eq!(t.call(&["GET", "x"]), b("1"));
    assert_eq!(t.call(&["CLIENT", "CACHING", "no"]), ok());
    assert_eq!(t.call(&["GET", "y"]), b("1"));
    assert_eq!(t.call(&["GET", "z"]), b("1"));

    assert_eq!(w.call(&["SET", "y", "2"]), ok());
    assert_eq!(w.call(&["SET", "x", "2"]), ok());
    assert_eq!(t.read(), inv(&["x"]), "y was read under CACHING no");
    assert_eq!(w.call(&["SET", "z", "2"]), ok());
    assert_eq!(t.read(), inv(&["z"]));
    assert_quiet(&mut t, "after the last invalidation");
}

#[test]
fn a_tracked_key_that_expires_is_invalidated() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on"]), ok());
    // The read must see the key before its 50 ms run out; retry with a new key if a
    // slow machine let it expire first (a read of a gone key has nothing to expire).
    let mut key = None;
    for i in 0..50 {
        let k = format!("exp{i}");
        assert_eq!(w.call(&["SET", &k, "v", "PX", "50"]), ok());
        match t.call(&["GET", &k]) {
            V::Nil => continue,
            got => {
                assert_eq!(got, b("v"));
                key = Some(k);
                break;
            }
        }
    }
    let key = key.expect("never read a key before it expired");
    // Active expiry removes the key with nobody touching it; Raw's read waits up to WAIT.
    assert_eq!(t.read(), inv(&[&key]));
    assert_eq!(t.call(&["EXISTS", &key]), int(0));
}

#[test]
fn getredir_and_trackinginfo_report_the_mode_redirect_and_prefixes() {
    let srv = start();
    let mut c = Raw::connect(&srv);
    let mut target = Raw::connect(&srv);
    let tid = client_id(&mut target);
    let tid_s = tid.to_string();

    let check = |c: &mut Raw, flags: &[&str], redirect: i64, prefixes: &[&str]| {
        assert_eq!(
            c.call(&["CLIENT", "TRACKINGINFO"]),
            info2(flags, redirect, prefixes),
            "flags {flags:?}"
        );
        assert_eq!(c.call(&["CLIENT", "GETREDIR"]), int(redirect), "{flags:?}");
    };
    check(&mut c, &["off"], -1, &[]);
    assert_eq!(c.call(&["CLIENT", "TRACKING", "on"]), ok());
    check(&mut c, &["on"], 0, &[]);
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());
    check(&mut c, &["off"], -1, &[]);

    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "OPTIN"]), ok());
    check(&mut c, &["on", "optin"], 0, &[]);
    assert_eq!(c.call(&["CLIENT", "CACHING", "yes"]), ok());
    assert_eq!(
        c.call(&["CLIENT", "TRACKINGINFO"]),
        info2(&["on", "optin", "caching-yes"], 0, &[])
    );
    assert_eq!(c.call(&["PING"]), V::Simple("PONG".into()));
    assert_eq!(
        c.call(&["CLIENT", "TRACKINGINFO"]),
        info2(&["on", "optin"], 0, &[]),
        "a command spends CACHING yes"
    );
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());

    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "OPTOUT"]), ok());
    check(&mut c, &["on", "optout"], 0, &[]);
    assert_eq!(c.call(&["CLIENT", "CACHING", "no"]), ok());
    assert_eq!(
        c.call(&["CLIENT", "TRACKINGINFO"]),
        info2(&["on", "optout", "caching-no"], 0, &[])
    );
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());

    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "BCAST"]), ok());
    check(&mut c, &["on", "bcast"], 0, &[""]);
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());
    assert_eq!(
        c.call(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a:", "PREFIX", "b:"]),
        ok()
    );
    check(&mut c, &["on", "bcast"], 0, &["a:", "b:"]);
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());
    check(&mut c, &["off"], -1, &[]);

    assert_eq!(c.call(&["CLIENT", "TRACKING", "on", "NOLOOP"]), ok());
    check(&mut c, &["on", "noloop"], 0, &[]);
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());

    assert_eq!(
        c.call(&["CLIENT", "TRACKING", "on", "REDIRECT", &tid_s]),
        ok()
    );
    check(&mut c, &["on"], tid, &[]);
    assert_eq!(c.call(&["CLIENT", "TRACKING", "off"]), ok());
    check(&mut c, &["off"], -1, &[]);

    // RESP3: a map whose flags are a set (`~`), exactly as Redis sends it.
    let mut c3 = resp3(&srv);
    c3.send(&["CLIENT", "TRACKINGINFO"]);
    let wire: Vec<String> = (0..12).map(|_| c3.line()).collect();
    assert_eq!(
        wire,
        ["%3", "$5", "flags", "~1", "$3", "off", "$8", "redirect", ":-1", "$8", "prefixes", "*0"]
    );
    assert_eq!(
        c3.call(&["CLIENT", "TRACKINGINFO"]),
        info3(&["off"], -1, &[])
    );
    assert_eq!(
        c3.call(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "p"]),
        ok()
    );
    assert_eq!(
        c3.call(&["CLIENT", "TRACKINGINFO"]),
        info3(&["on", "bcast"], 0, &["p"])
    );
    assert_eq!(c3.call(&["CLIENT", "GETREDIR"]), int(0));
}

#[test]
fn info_counts_tracking_clients_keys_items_and_prefixes() {
    let srv = start();
    let mut w = Raw::connect(&srv);
    assert_eq!(info_field(&mut w, "clients", "tracking_clients"), "0");
    assert_eq!(info_field(&mut w, "stats", "tracking_total_keys"), "0");
    assert_eq!(info_field(&mut w, "stats", "tracking_total_items"), "0");
    assert_eq!(info_field(&mut w, "stats", "tracking_total_prefixes"), "0");

    let mut t1 = resp3(&srv);
    let mut t2 = resp3(&srv);
    assert_eq!(w.call(&["MSET", "key1", "1", "key2", "2"]), ok());
    assert_eq!(t1.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(t1.call(&["MGET", "key1", "key2"]), bulks(&["1", "2"]));
    assert_eq!(
        t2.call(&["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "prefix:"]),
        ok()
    );
    assert_eq!(info_field(&mut w, "clients", "tracking_clients"), "2");
    assert_eq!(info_field(&mut w, "stats", "tracking_total_keys"), "2");
    assert_eq!(info_field(&mut w, "stats", "tracking_total_items"), "2");
    assert_eq!(info_field(&mut w, "stats", "tracking_total_prefixes"), "1");

    // A second reader of key1: one more client and item, no new key.
    let mut t3 = resp3(&srv);
    assert_eq!(t3.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(t3.call(&["GET", "key1"]), b("1"));
    assert_eq!(info_field(&mut w, "clients", "tracking_clients"), "3");
    assert_eq!(info_field(&mut w, "stats", "tracking_total_keys"), "2");
    assert_eq!(info_field(&mut w, "stats", "tracking_total_items"), "3");
    assert_eq!(info_field(&mut w, "stats", "tracking_total_prefixes"), "1");

    // Turning tracking off drops the client from the count, and so does closing it.
    assert_eq!(t3.call(&["CLIENT", "TRACKING", "off"]), ok());
    assert_eq!(info_field(&mut w, "clients", "tracking_clients"), "2");
    drop(t2);
    wait_info(&mut w, "clients", "tracking_clients", "1");
    wait_info(&mut w, "stats", "tracking_total_prefixes", "0");
    drop(t1);
    wait_info(&mut w, "clients", "tracking_clients", "0");
}

#[test]
fn lowering_tracking_table_max_keys_evicts_one_key_with_an_invalidation() {
    let srv = start();
    let mut t = resp3(&srv);
    let mut w = Raw::connect(&srv);
    assert_eq!(
        w.call(&["CONFIG", "GET", "tracking-table-max-keys"]),
        bulks(&["tracking-table-max-keys", "1000000"])
    );
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on"]), ok());
    assert_eq!(w.call(&["MSET", "key1", "1", "key2", "2"]), ok());
    assert_eq!(t.call(&["MGET", "key1", "key2"]), bulks(&["1", "2"]));
    assert_eq!(info_field(&mut w, "stats", "tracking_total_keys"), "2");

    assert_eq!(
        w.call(&["CONFIG", "SET", "tracking-table-max-keys", "1"]),
        ok()
    );
    assert_eq!(
        w.call(&["CONFIG", "GET", "tracking-table-max-keys"]),
        bulks(&["tracking-table-max-keys", "1"])
    );
    let got = t.read();
    let kept = if got == inv(&["key1"]) {
        "key2"
    } else if got == inv(&["key2"]) {
        "key1"
    } else {
        panic!("expected the eviction of key1 or key2, got {got:?}")
    };
    wait_info(&mut w, "stats", "tracking_total_keys", "1");
    // The kept key is still tracked, and nothing else was evicted: its write's push is
    // the next frame.
    assert_eq!(w.call(&["SET", kept, "x"]), ok());
    assert_eq!(t.read(), inv(&[kept]));
    assert_quiet(&mut t, "after the kept key's invalidation");
}

#[test]
fn redis_crate_resp3_push_sender_receives_the_invalidation() {
    let srv = start();
    let url = format!("redis://{}/?protocol=resp3", srv.addr);
    let plain_url = srv.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let client = redis::Client::open(url).expect("client");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(WAIT)
            .set_response_timeout(WAIT)
            .set_push_sender(tx);
        let mut con = tokio::time::timeout(
            WAIT,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .expect("connect timeout")
        .expect("connect");
        let () = redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .query_async(&mut con)
            .await
            .expect("client tracking");
        let () = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query_async(&mut con)
            .await
            .expect("set");
        let v: Option<String> = redis::cmd("GET")
            .arg("k")
            .query_async(&mut con)
            .await
            .expect("get");
        assert_eq!(v.as_deref(), Some("v"));

        let other = redis::Client::open(plain_url).expect("client");
        let mut w = tokio::time::timeout(WAIT, other.get_multiplexed_async_connection())
            .await
            .expect("connect timeout")
            .expect("connect");
        let () = redis::cmd("SET")
            .arg("k")
            .arg("v2")
            .query_async(&mut w)
            .await
            .expect("set");

        let got = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("no push within WAIT")
            .expect("push channel closed");
        assert_eq!(
            got,
            redis::PushInfo {
                kind: redis::PushKind::Invalidate,
                data: vec![redis::Value::Array(vec![redis::Value::BulkString(
                    b"k".to_vec()
                )])],
            }
        );
    });
}

/// A key that maxmemory eviction takes is a change the server made, not the writer
/// whose write needed the room: a NOLOOP client that read it is told, even when its own
/// write caused the eviction.
#[test]
fn eviction_caused_by_a_noloop_clients_own_write_still_invalidates_its_keys() {
    let srv = InProc::start(Config {
        maxmemory: 8192,
        maxmemory_policy: keel_engine::EvictionPolicy::VolatileRandom,
        ..Config::default()
    });
    let mut t = resp3(&srv);
    assert_eq!(t.call(&["CLIENT", "TRACKING", "on", "NOLOOP"]), ok());
    let big = "y".repeat(1024);
    // The only key eviction may take (it has a TTL), read so that it is tracked.
    assert_eq!(t.call(&["SET", "volatile", &big, "EX", "1000"]), ok());
    assert_eq!(t.call(&["GET", "volatile"]), b(&big));
    let mut pushes = Vec::new();
    for i in 0..64 {
        t.send(&["SET", &format!("k{i}"), &big]);
        // An invalidation may come before a later write's reply.
        let reply = loop {
            match t.read() {
                p @ V::Push(_) => pushes.push(p),
                r => break r,
            }
        };
        if let V::Err(e) = &reply {
            assert!(e.starts_with("OOM"), "SET k{i}: {e}");
            break;
        }
        assert_eq!(reply, ok(), "SET k{i}");
    }
    if pushes.is_empty() {
        pushes.push(t.read());
    }
    assert_eq!(pushes, vec![inv(&["volatile"])]);
    assert_quiet(&mut t, "one eviction, one invalidation");
    let evicted = info_field(&mut Raw::connect(&srv), "stats", "evicted_keys");
    assert_eq!(evicted, "1");
}
