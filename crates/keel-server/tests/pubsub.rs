//! Pub/sub, keyspace notifications, MONITOR and the pubsub output-buffer limit, through
//! the `redis` crate and raw RESP for exact reply shapes.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::raw::{arr, b, push, Raw, V};
use common::{InProc, WAIT};
use keel_server::config::OutputLimit;
use keel_server::Config;
use redis::Commands;

#[test]
fn resp2_subscribe_publish_patterns_and_unsubscribe_shapes() {
    let srv = InProc::start(Config::default());
    let mut sub = Raw::connect(&srv);
    let mut publ = srv.client();
    sub.send(&["SUBSCRIBE", "a", "b"]);
    assert_eq!(sub.read(), arr(vec![b("subscribe"), b("a"), V::Int(1)]));
    assert_eq!(sub.read(), arr(vec![b("subscribe"), b("b"), V::Int(2)]));
    assert_eq!(
        sub.call(&["PSUBSCRIBE", "h?llo"]),
        arr(vec![b("psubscribe"), b("h?llo"), V::Int(3)])
    );
    // Subscribing again to the same channel does not add a subscription.
    assert_eq!(
        sub.call(&["SUBSCRIBE", "a"]),
        arr(vec![b("subscribe"), b("a"), V::Int(3)])
    );

    let n: i64 = publ.publish("a", "hi").expect("publish");
    assert_eq!(n, 1);
    assert_eq!(sub.read(), arr(vec![b("message"), b("a"), b("hi")]));
    let n: i64 = publ.publish("hello", "x").expect("publish");
    assert_eq!(n, 1);
    assert_eq!(
        sub.read(),
        arr(vec![b("pmessage"), b("h?llo"), b("hello"), b("x")])
    );
    let n: i64 = publ.publish("nobody", "x").expect("publish");
    assert_eq!(n, 0);

    // Subscribe mode (RESP2): only the subscribe family, PING, QUIT and RESET.
    assert_eq!(
        sub.call(&["GET", "k"]),
        V::Err("ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context".into())
    );
    assert_eq!(sub.call(&["PING"]), arr(vec![b("pong"), b("")]));
    assert_eq!(sub.call(&["PING", "m"]), arr(vec![b("pong"), b("m")]));

    assert_eq!(
        sub.call(&["UNSUBSCRIBE", "a"]),
        arr(vec![b("unsubscribe"), b("a"), V::Int(2)])
    );
    assert_eq!(
        sub.call(&["UNSUBSCRIBE"]),
        arr(vec![b("unsubscribe"), b("b"), V::Int(1)])
    );
    assert_eq!(
        sub.call(&["PUNSUBSCRIBE"]),
        arr(vec![b("punsubscribe"), b("h?llo"), V::Int(0)])
    );
    assert_eq!(
        sub.call(&["UNSUBSCRIBE"]),
        arr(vec![b("unsubscribe"), V::Nil, V::Int(0)])
    );
    // Out of subscribe mode: ordinary commands again.
    assert_eq!(sub.call(&["GET", "k"]), V::Nil);
    let n: i64 = publ.publish("a", "late").expect("publish");
    assert_eq!(n, 0);
}

#[test]
fn resp3_messages_are_push_frames_and_commands_stay_allowed() {
    let srv = InProc::start(Config::default());
    let mut sub = Raw::connect(&srv);
    assert!(matches!(sub.call(&["HELLO", "3"]), V::Map(_)));
    assert_eq!(
        sub.call(&["SUBSCRIBE", "c"]),
        push(vec![b("subscribe"), b("c"), V::Int(1)])
    );
    assert_eq!(
        sub.call(&["PSUBSCRIBE", "c*"]),
        push(vec![b("psubscribe"), b("c*"), V::Int(2)])
    );
    assert_eq!(sub.call(&["SET", "k", "v"]), V::Simple("OK".into()));
    assert_eq!(sub.call(&["GET", "k"]), b("v"));
    assert_eq!(sub.call(&["PING"]), V::Simple("PONG".into()));
    let mut publ = srv.client();
    let n: i64 = publ.publish("c", "p").expect("publish");
    assert_eq!(n, 2);
    let mut got = vec![sub.read(), sub.read()];
    got.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(
        got,
        vec![
            push(vec![b("message"), b("c"), b("p")]),
            push(vec![b("pmessage"), b("c*"), b("c"), b("p")]),
        ]
    );
    assert_eq!(
        sub.call(&["UNSUBSCRIBE", "c"]),
        push(vec![b("unsubscribe"), b("c"), V::Int(1)])
    );
}

#[test]
fn redis_crate_pubsub_api_and_introspection() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let mut publ = srv.client();
    let mut ps = con.as_pubsub();
    ps.set_read_timeout(Some(WAIT)).expect("timeout");
    ps.subscribe(&["news", "sport"]).expect("subscribe");
    ps.psubscribe("n*").expect("psubscribe");

    let chans: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .query(&mut publ)
        .expect("channels");
    let mut chans = chans;
    chans.sort();
    assert_eq!(chans, vec!["news", "sport"]);
    let chans: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg("s*")
        .query(&mut publ)
        .expect("channels");
    assert_eq!(chans, vec!["sport"]);
    let numsub: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("news")
        .arg("none")
        .query(&mut publ)
        .expect("numsub");
    assert_eq!(
        numsub,
        vec![
            redis::Value::BulkString(b"news".to_vec()),
            redis::Value::Int(1),
            redis::Value::BulkString(b"none".to_vec()),
            redis::Value::Int(0),
        ]
    );
    // The redis crate's psubscribe returns on the first reply it reads, which can be
    // the second SUBSCRIBE confirmation, so the PSUBSCRIBE may still be in flight:
    // wait (bounded) for it to take effect rather than race it.
    let mut numpat = 0i64;
    for _ in 0..100 {
        numpat = redis::cmd("PUBSUB")
            .arg("NUMPAT")
            .query(&mut publ)
            .expect("numpat");
        if numpat == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(numpat, 1);

    let n: i64 = publ.publish("sport", "goal").expect("publish");
    assert_eq!(n, 1);
    let msg = ps.get_message().expect("message");
    assert_eq!(msg.get_channel_name(), "sport");
    assert_eq!(msg.get_payload::<String>().expect("payload"), "goal");
    assert!(!msg.from_pattern());

    let n: i64 = publ.publish("news", "n1").expect("publish");
    assert_eq!(n, 2);
    let (m1, m2) = (ps.get_message().expect("m1"), ps.get_message().expect("m2"));
    assert_eq!(
        [m1.from_pattern(), m2.from_pattern()]
            .iter()
            .filter(|p| **p)
            .count(),
        1
    );
    for m in [&m1, &m2] {
        assert_eq!(m.get_channel_name(), "news");
        assert_eq!(m.get_payload::<String>().expect("payload"), "n1");
    }
    ps.unsubscribe("news").expect("unsubscribe");
    ps.punsubscribe("n*").expect("punsubscribe");
    drop(ps);
    drop(con);

    // The subscriber is gone once its connection closes (bounded wait).
    let deadline = Instant::now() + WAIT;
    loop {
        let n: i64 = publ.publish("sport", "x").expect("publish");
        if n == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "closed subscriber still counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    let numpat: i64 = redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query(&mut publ)
        .expect("numpat");
    assert_eq!(numpat, 0);
}

#[test]
fn keyspace_notifications_for_set_del_expire_and_expired() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let off: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query(&mut con)
        .expect("config get");
    assert_eq!(off, vec!["notify-keyspace-events", ""]);
    let mut sub = Raw::connect(&srv);
    assert_eq!(
        sub.call(&["PSUBSCRIBE", "__key*__:*"]),
        arr(vec![b("psubscribe"), b("__key*__:*"), V::Int(1)])
    );
    // Off by default: nothing is published.
    let _: () = con.set("quiet", "v").expect("set");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("KEA")
        .query(&mut con)
        .expect("config set");
    let on: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query(&mut con)
        .expect("config get");
    assert_eq!(on, vec!["notify-keyspace-events", "AKE"]);
    let bad = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("Kq")
        .query::<()>(&mut con)
        .expect_err("bad class");
    assert!(bad.to_string().contains("Invalid event class"), "{bad}");

    let pat = "__key*__:*";
    let expect_event = |sub: &mut Raw, event: &str, key: &str| {
        assert_eq!(
            sub.read(),
            arr(vec![
                b("pmessage"),
                b(pat),
                b(&format!("__keyspace@0__:{key}")),
                b(event)
            ]),
            "keyspace {event} {key}"
        );
        assert_eq!(
            sub.read(),
            arr(vec![
                b("pmessage"),
                b(pat),
                b(&format!("__keyevent@0__:{event}")),
                b(key)
            ]),
            "keyevent {event} {key}"
        );
    };
    let _: () = con.set("k", "v").expect("set");
    expect_event(&mut sub, "set", "k");
    let _: bool = con.expire("k", 100).expect("expire");
    expect_event(&mut sub, "expire", "k");
    let _: i64 = con.del("k").expect("del");
    expect_event(&mut sub, "del", "k");
    let _: i64 = con.rpush("l", "a").expect("rpush");
    expect_event(&mut sub, "rpush", "l");
    let _: i64 = con.incr("n", 2).expect("incr");
    expect_event(&mut sub, "incrby", "n");

    let _: () = redis::cmd("SET")
        .arg("e")
        .arg("v")
        .arg("PX")
        .arg(1)
        .query(&mut con)
        .expect("set px");
    expect_event(&mut sub, "set", "e");
    expect_event(&mut sub, "expire", "e");
    // Expiry (lazy on access or the active cycle) raises `expired`.
    std::thread::sleep(Duration::from_millis(5));
    let gone: Option<String> = con.get("e").expect("get");
    assert_eq!(gone, None);
    expect_event(&mut sub, "expired", "e");
}

#[test]
fn slow_subscriber_is_disconnected_at_the_output_limit_and_others_are_served() {
    let srv = InProc::start(Config {
        client_output_buffer_limit_pubsub: OutputLimit {
            hard: 256 * 1024,
            soft: 0,
            soft_secs: 0,
        },
        ..Config::default()
    });
    let mut slow = Raw::connect(&srv);
    assert_eq!(
        slow.call(&["SUBSCRIBE", "firehose"]),
        arr(vec![b("subscribe"), b("firehose"), V::Int(1)])
    );
    // The slow subscriber never reads again. Publish until the server drops it.
    let mut publ = srv.client();
    let mut other = srv.client();
    let payload = vec![b'x'; 64 * 1024];
    let deadline = Instant::now() + WAIT;
    let mut published = 0u64;
    loop {
        let n: i64 = publ.publish("firehose", &payload[..]).expect("publish");
        if n == 0 {
            break;
        }
        published += 1;
        // Bounded: loopback buffers hold a few MB at most before the queue fills.
        assert!(published < 4096, "slow subscriber never disconnected");
        assert!(
            Instant::now() < deadline,
            "slow subscriber never disconnected"
        );
        if published.is_multiple_of(64) {
            let pong: String = redis::cmd("PING").query(&mut other).expect("ping");
            assert_eq!(pong, "PONG");
        }
    }
    assert!(published > 0);
    let numsub: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("firehose")
        .query(&mut other)
        .expect("numsub");
    assert_eq!(numsub.get(1), Some(&redis::Value::Int(0)));
    let _: () = other.set("still", "fine").expect("set");
    let v: String = other.get("still").expect("get");
    assert_eq!(v, "fine");
    // The slow client's socket reaches its end once the buffered bytes are read.
    let mut sink = vec![0u8; 1 << 16];
    let mut total = 0usize;
    loop {
        match slow.rd.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
        assert!(total < 1 << 30, "connection never closed");
    }
}

#[test]
fn monitor_sees_commands_of_other_clients() {
    let srv = InProc::start(Config::default());
    let mut mon = Raw::connect(&srv);
    assert_eq!(mon.call(&["MONITOR"]), V::Simple("OK".into()));
    let mut con = srv.client();
    let _: () = con.set("mk", "hello world").expect("set");
    let mut seen = None;
    for _ in 0..100 {
        let l = mon.line();
        // MONITOR shows the arguments as the client sent them (the crate sends "SET").
        if l.contains("\"SET\"") {
            seen = Some(l);
            break;
        }
    }
    let l = seen.expect("MONITOR did not show the SET");
    assert!(l.starts_with('+'), "{l}");
    assert!(l.contains(" [0 127.0.0.1:"), "{l}");
    assert!(l.ends_with("] \"SET\" \"mk\" \"hello world\""), "{l}");
    let ts: f64 = l[1..]
        .split(' ')
        .next()
        .and_then(|t| t.parse().ok())
        .expect("timestamp");
    assert!(ts > 1.0e9, "{l}");
}

#[test]
fn client_reply_off_does_not_silence_subscription_confirmations() {
    let srv = InProc::start(Config::default());
    let mut sub = Raw::connect(&srv);
    let mut publ = srv.client();
    sub.send(&["CLIENT", "REPLY", "OFF"]);
    // No reply to CLIENT REPLY OFF itself; the confirmation is the next frame.
    assert_eq!(
        sub.call(&["SUBSCRIBE", "c"]),
        arr(vec![b("subscribe"), b("c"), V::Int(1)])
    );
    let n: i64 = publ.publish("c", "m").expect("publish");
    assert_eq!(n, 1);
    assert_eq!(sub.read(), arr(vec![b("message"), b("c"), b("m")]));
}

/// The `field=` value of client `id`'s CLIENT LIST line.
fn client_list_field(con: &mut redis::Connection, id: i64, field: &str) -> String {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(con)
        .expect("client list");
    let line = list
        .lines()
        .find(|l| l.starts_with(&format!("id={id} ")))
        .unwrap_or_else(|| panic!("client {id} not in CLIENT LIST: {list}"));
    let prefix = format!("{field}=");
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {field}= in {line}"))
        .to_string()
}

/// INFO's `pubsubshard_channels`.
fn info_shard_channels(con: &mut redis::Connection) -> i64 {
    info_stat(con, "pubsubshard_channels")
}

/// A numeric field of INFO stats.
fn info_stat(con: &mut redis::Connection, field: &str) -> i64 {
    let info: String = redis::cmd("INFO").arg("stats").query(con).expect("info");
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {info}"))
}

/// CLIENT LIST's sub/psub counts and `P` flag, its TYPE pubsub / normal filters and INFO's
/// pubsub_channels / pubsub_patterns follow a client's subscriptions.
#[test]
fn client_list_and_info_count_subscriptions() {
    let srv = InProc::start(Config::default());
    let mut admin = srv.client();
    let mut c = Raw::connect(&srv);
    let id = match c.call(&["CLIENT", "ID"]) {
        V::Int(n) => n,
        other => panic!("CLIENT ID: {other:?}"),
    };
    let listed = |admin: &mut redis::Connection, kind: &str| -> bool {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("TYPE")
            .arg(kind)
            .query(admin)
            .expect("client list type");
        list.lines().any(|l| l.starts_with(&format!("id={id} ")))
    };
    assert_eq!(client_list_field(&mut admin, id, "flags"), "N");
    assert!(listed(&mut admin, "normal") && !listed(&mut admin, "pubsub"));
    c.send(&["SUBSCRIBE", "a", "b"]);
    c.read();
    c.read();
    assert_eq!(
        c.call(&["PSUBSCRIBE", "p*"]),
        arr(vec![b("psubscribe"), b("p*"), V::Int(3)])
    );
    assert_eq!(client_list_field(&mut admin, id, "sub"), "2");
    assert_eq!(client_list_field(&mut admin, id, "psub"), "1");
    assert_eq!(client_list_field(&mut admin, id, "flags"), "P");
    assert!(listed(&mut admin, "pubsub") && !listed(&mut admin, "normal"));
    assert_eq!(info_stat(&mut admin, "pubsub_channels"), 2);
    assert_eq!(info_stat(&mut admin, "pubsub_patterns"), 1);
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut admin)
        .expect("client kill type pubsub");
    assert_eq!(killed, 1);
}

/// Sends SUNSUBSCRIBE without arguments to a RESP2 client holding `n` shard channels
/// and checks the `n` confirmations count down to 0; returns their names, sorted.
fn sunsubscribe_all(c: &mut Raw, n: i64) -> Vec<String> {
    c.send(&["SUNSUBSCRIBE"]);
    let mut names: Vec<String> = (0..n)
        .rev()
        .map(|left| match c.read() {
            V::Arr(items) if items.len() == 3 => {
                assert_eq!(items[0], b("sunsubscribe"));
                assert_eq!(items[2], V::Int(left));
                match &items[1] {
                    V::Bulk(name) => String::from_utf8_lossy(name).into_owned(),
                    other => panic!("channel name {other:?}"),
                }
            }
            other => panic!("not a sunsubscribe frame: {other:?}"),
        })
        .collect();
    names.sort();
    names
}

fn shard_numsub(con: &mut redis::Connection, ch: &str) -> i64 {
    let v: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(ch)
        .query(con)
        .expect("shardnumsub");
    match v.get(1) {
        Some(redis::Value::Int(n)) => *n,
        other => panic!("SHARDNUMSUB {ch}: {other:?}"),
    }
}

#[test]
fn resp2_shard_subscribe_spublish_and_sunsubscribe_frames() {
    let srv = InProc::start(Config::default());
    let mut sub = Raw::connect(&srv);
    let mut publ = srv.client();
    // One confirmation per name; the count is of shard channels, and a repeated name
    // does not add one.
    sub.send(&["SSUBSCRIBE", "foo", "bar", "foo"]);
    assert_eq!(sub.read(), arr(vec![b("ssubscribe"), b("foo"), V::Int(1)]));
    assert_eq!(sub.read(), arr(vec![b("ssubscribe"), b("bar"), V::Int(2)]));
    assert_eq!(sub.read(), arr(vec![b("ssubscribe"), b("foo"), V::Int(2)]));
    assert_eq!(
        sub.call(&["SSUBSCRIBE", "baz"]),
        arr(vec![b("ssubscribe"), b("baz"), V::Int(3)])
    );

    let n: i64 = redis::cmd("SPUBLISH")
        .arg("foo")
        .arg("hi")
        .query(&mut publ)
        .expect("spublish");
    assert_eq!(n, 1);
    assert_eq!(sub.read(), arr(vec![b("smessage"), b("foo"), b("hi")]));
    let n: i64 = redis::cmd("SPUBLISH")
        .arg("nobody")
        .arg("x")
        .query(&mut publ)
        .expect("spublish");
    assert_eq!(n, 0);

    // Shard subscriptions alone put a RESP2 client in subscribe mode.
    assert_eq!(
        sub.call(&["GET", "k"]),
        V::Err("ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context".into())
    );
    assert_eq!(sub.call(&["PING"]), arr(vec![b("pong"), b("")]));

    // A name not subscribed is confirmed too, with the unchanged count.
    sub.send(&["SUNSUBSCRIBE", "foo", "nope"]);
    assert_eq!(
        sub.read(),
        arr(vec![b("sunsubscribe"), b("foo"), V::Int(2)])
    );
    assert_eq!(
        sub.read(),
        arr(vec![b("sunsubscribe"), b("nope"), V::Int(2)])
    );
    let n: i64 = redis::cmd("SPUBLISH")
        .arg("foo")
        .arg("gone")
        .query(&mut publ)
        .expect("spublish");
    assert_eq!(n, 0);

    // Without arguments: every remaining shard channel, counting down.
    assert_eq!(sunsubscribe_all(&mut sub, 2), vec!["bar", "baz"]);
    // Nothing left: one frame with a null name.
    assert_eq!(
        sub.call(&["SUNSUBSCRIBE"]),
        arr(vec![b("sunsubscribe"), V::Nil, V::Int(0)])
    );
    // Out of subscribe mode again.
    assert_eq!(sub.call(&["GET", "k"]), V::Nil);
    assert_eq!(shard_numsub(&mut publ, "bar"), 0);
    assert_eq!(shard_numsub(&mut publ, "baz"), 0);
}

#[test]
fn resp3_shard_messages_and_confirmations_are_push_frames() {
    let srv = InProc::start(Config::default());
    let mut sub = Raw::connect(&srv);
    assert!(matches!(sub.call(&["HELLO", "3"]), V::Map(_)));
    assert_eq!(
        sub.call(&["SSUBSCRIBE", "s"]),
        push(vec![b("ssubscribe"), b("s"), V::Int(1)])
    );
    // Commands stay allowed in RESP3.
    assert_eq!(sub.call(&["SET", "k", "v"]), V::Simple("OK".into()));
    let mut publ = srv.client();
    let n: i64 = redis::cmd("SPUBLISH")
        .arg("s")
        .arg("p")
        .query(&mut publ)
        .expect("spublish");
    assert_eq!(n, 1);
    assert_eq!(sub.read(), push(vec![b("smessage"), b("s"), b("p")]));
    assert_eq!(
        sub.call(&["SUNSUBSCRIBE"]),
        push(vec![b("sunsubscribe"), b("s"), V::Int(0)])
    );
    assert_eq!(
        sub.call(&["SUNSUBSCRIBE"]),
        push(vec![b("sunsubscribe"), V::Nil, V::Int(0)])
    );
}

#[test]
fn shard_channels_are_a_namespace_apart_from_channels_and_patterns() {
    let srv = InProc::start(Config::default());
    let mut shard = Raw::connect(&srv);
    let mut plain = Raw::connect(&srv);
    let mut publ = srv.client();
    assert_eq!(
        shard.call(&["SSUBSCRIBE", "foo"]),
        arr(vec![b("ssubscribe"), b("foo"), V::Int(1)])
    );
    assert_eq!(
        plain.call(&["SUBSCRIBE", "foo"]),
        arr(vec![b("subscribe"), b("foo"), V::Int(1)])
    );
    assert_eq!(
        plain.call(&["PSUBSCRIBE", "f*"]),
        arr(vec![b("psubscribe"), b("f*"), V::Int(2)])
    );

    // PUBLISH reaches the channel and the pattern, not the shard channel.
    let n: i64 = publ.publish("foo", "p1").expect("publish");
    assert_eq!(n, 2);
    // SPUBLISH reaches the shard channel only.
    let n: i64 = redis::cmd("SPUBLISH")
        .arg("foo")
        .arg("s1")
        .query(&mut publ)
        .expect("spublish");
    assert_eq!(n, 1);
    let n: i64 = publ.publish("foo", "p2").expect("publish");
    assert_eq!(n, 2);
    // Each side's queue holds only its own namespace's messages, in order.
    assert_eq!(shard.read(), arr(vec![b("smessage"), b("foo"), b("s1")]));
    for payload in ["p1", "p2"] {
        assert_eq!(plain.read(), arr(vec![b("message"), b("foo"), b(payload)]));
        assert_eq!(
            plain.read(),
            arr(vec![b("pmessage"), b("f*"), b("foo"), b(payload)])
        );
    }
    let n: i64 = redis::cmd("SPUBLISH")
        .arg("foo")
        .arg("s2")
        .query(&mut publ)
        .expect("spublish");
    assert_eq!(n, 1);
    assert_eq!(shard.read(), arr(vec![b("smessage"), b("foo"), b("s2")]));

    // Introspection keeps the namespaces apart too.
    let chans: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .query(&mut publ)
        .expect("channels");
    assert_eq!(chans, vec!["foo"]);
    let chans: Vec<String> = redis::cmd("PUBSUB")
        .arg("SHARDCHANNELS")
        .query(&mut publ)
        .expect("shardchannels");
    assert_eq!(chans, vec!["foo"]);
    assert_eq!(
        plain.call(&["UNSUBSCRIBE", "foo"]),
        arr(vec![b("unsubscribe"), b("foo"), V::Int(1)])
    );
    let numsub: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("foo")
        .query(&mut publ)
        .expect("numsub");
    assert_eq!(numsub.get(1), Some(&redis::Value::Int(0)));
    assert_eq!(shard_numsub(&mut publ, "foo"), 1);

    // On one client, each family counts its own subscriptions.
    assert_eq!(
        shard.call(&["SUBSCRIBE", "a"]),
        arr(vec![b("subscribe"), b("a"), V::Int(1)])
    );
    assert_eq!(
        shard.call(&["SSUBSCRIBE", "b"]),
        arr(vec![b("ssubscribe"), b("b"), V::Int(2)])
    );
    assert_eq!(
        shard.call(&["UNSUBSCRIBE"]),
        arr(vec![b("unsubscribe"), b("a"), V::Int(0)])
    );
    // Still subscribed to shard channels: still in subscribe mode (RESP2).
    assert!(matches!(shard.call(&["GET", "k"]), V::Err(_)));
    // SUNSUBSCRIBE leaves ordinary subscriptions alone.
    assert_eq!(
        shard.call(&["SUBSCRIBE", "a"]),
        arr(vec![b("subscribe"), b("a"), V::Int(1)])
    );
    assert_eq!(sunsubscribe_all(&mut shard, 2), vec!["b", "foo"]);
    let n: i64 = publ.publish("a", "still").expect("publish");
    assert_eq!(n, 1);
    assert_eq!(shard.read(), arr(vec![b("message"), b("a"), b("still")]));
    assert!(matches!(shard.call(&["GET", "k"]), V::Err(_)));
}

#[test]
fn pubsub_shardchannels_shardnumsub_client_list_ssub_and_info() {
    let srv = InProc::start(Config::default());
    let mut publ = srv.client();
    assert_eq!(info_shard_channels(&mut publ), 0);
    let empty: Vec<String> = redis::cmd("PUBSUB")
        .arg("SHARDCHANNELS")
        .query(&mut publ)
        .expect("shardchannels");
    assert!(empty.is_empty());

    let mut s1 = Raw::connect(&srv);
    let mut s2 = Raw::connect(&srv);
    let id1 = match s1.call(&["CLIENT", "ID"]) {
        V::Int(n) => n,
        other => panic!("CLIENT ID: {other:?}"),
    };
    assert_eq!(client_list_field(&mut publ, id1, "ssub"), "0");
    s1.send(&["SSUBSCRIBE", "news.a", "news.b", "sport"]);
    for (ch, n) in [("news.a", 1), ("news.b", 2), ("sport", 3)] {
        assert_eq!(s1.read(), arr(vec![b("ssubscribe"), b(ch), V::Int(n)]));
    }
    assert_eq!(
        s2.call(&["SSUBSCRIBE", "sport"]),
        arr(vec![b("ssubscribe"), b("sport"), V::Int(1)])
    );

    let mut chans: Vec<String> = redis::cmd("PUBSUB")
        .arg("SHARDCHANNELS")
        .query(&mut publ)
        .expect("shardchannels");
    chans.sort();
    assert_eq!(chans, vec!["news.a", "news.b", "sport"]);
    let mut chans: Vec<String> = redis::cmd("PUBSUB")
        .arg("SHARDCHANNELS")
        .arg("news.*")
        .query(&mut publ)
        .expect("shardchannels");
    chans.sort();
    assert_eq!(chans, vec!["news.a", "news.b"]);
    let numsub: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg("sport")
        .arg("news.a")
        .arg("none")
        .query(&mut publ)
        .expect("shardnumsub");
    assert_eq!(
        numsub,
        vec![
            redis::Value::BulkString(b"sport".to_vec()),
            redis::Value::Int(2),
            redis::Value::BulkString(b"news.a".to_vec()),
            redis::Value::Int(1),
            redis::Value::BulkString(b"none".to_vec()),
            redis::Value::Int(0),
        ]
    );
    let none: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .query(&mut publ)
        .expect("shardnumsub");
    assert!(none.is_empty());
    let e = redis::cmd("PUBSUB")
        .arg("SHARDCHANNELS")
        .arg("a")
        .arg("b")
        .query::<Vec<String>>(&mut publ)
        .expect_err("too many arguments");
    assert!(
        e.to_string()
            .contains("unknown subcommand or wrong number of arguments for 'SHARDCHANNELS'"),
        "{e}"
    );
    assert_eq!(client_list_field(&mut publ, id1, "ssub"), "3");
    assert_eq!(info_shard_channels(&mut publ), 3);
    let n: i64 = redis::cmd("SPUBLISH")
        .arg("sport")
        .arg("goal")
        .query(&mut publ)
        .expect("spublish");
    assert_eq!(n, 2);
    assert_eq!(s1.read(), arr(vec![b("smessage"), b("sport"), b("goal")]));
    assert_eq!(s2.read(), arr(vec![b("smessage"), b("sport"), b("goal")]));

    assert_eq!(
        s1.call(&["SUNSUBSCRIBE", "news.a"]),
        arr(vec![b("sunsubscribe"), b("news.a"), V::Int(2)])
    );
    assert_eq!(client_list_field(&mut publ, id1, "ssub"), "2");
    assert_eq!(info_shard_channels(&mut publ), 2);
    // RESET drops shard subscriptions too.
    assert_eq!(s1.call(&["RESET"]), V::Simple("RESET".into()));
    assert_eq!(client_list_field(&mut publ, id1, "ssub"), "0");
    assert_eq!(shard_numsub(&mut publ, "sport"), 1);
    assert_eq!(info_shard_channels(&mut publ), 1);
    assert_eq!(s1.call(&["GET", "k"]), V::Nil);

    // A closed subscriber's shard channels go with it (bounded wait).
    drop(s2);
    let deadline = Instant::now() + WAIT;
    while shard_numsub(&mut publ, "sport") != 0 {
        assert!(
            Instant::now() < deadline,
            "closed shard subscriber still counted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(info_shard_channels(&mut publ), 0);
    let n: i64 = redis::cmd("SPUBLISH")
        .arg("sport")
        .arg("x")
        .query(&mut publ)
        .expect("spublish");
    assert_eq!(n, 0);
}

#[test]
fn acl_setuser_disconnects_shard_subscribers_it_no_longer_allows() {
    let srv = InProc::start(Config::default());
    let mut adm = srv.client();
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "shu",
            "on",
            "nopass",
            "+@all",
            "resetchannels",
            "&keep*",
            "&lose*",
        ])
        .query(&mut adm)
        .expect("setuser");
    let mut keep = Raw::connect(&srv);
    let mut lose = Raw::connect(&srv);
    for c in [&mut keep, &mut lose] {
        assert_eq!(c.call(&["AUTH", "shu", "x"]), V::Simple("OK".into()));
    }
    assert_eq!(
        keep.call(&["SSUBSCRIBE", "keepme"]),
        arr(vec![b("ssubscribe"), b("keepme"), V::Int(1)])
    );
    assert_eq!(
        lose.call(&["SSUBSCRIBE", "loseme"]),
        arr(vec![b("ssubscribe"), b("loseme"), V::Int(1)])
    );
    assert!(matches!(keep.call(&["SSUBSCRIBE", "other"]), V::Err(e) if e.starts_with("NOPERM")));
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "shu", "resetchannels", "&keep*"])
        .query(&mut adm)
        .expect("setuser");
    // The subscriber whose shard channel is no longer allowed is closed: its socket
    // reaches its end (a timeout here means it was left connected).
    let mut buf = [0u8; 64];
    match lose.rd.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("shard subscriber not disconnected: {other:?}"),
    }
    let n: i64 = redis::cmd("SPUBLISH")
        .arg("keepme")
        .arg("m")
        .query(&mut adm)
        .expect("spublish");
    assert_eq!(n, 1);
    assert_eq!(keep.read(), arr(vec![b("smessage"), b("keepme"), b("m")]));
}

#[test]
fn client_reply_off_does_not_silence_shard_confirmations() {
    let srv = InProc::start(Config::default());
    let mut sub = Raw::connect(&srv);
    let mut publ = srv.client();
    sub.send(&["CLIENT", "REPLY", "OFF"]);
    // No reply to CLIENT REPLY OFF itself; the confirmation is the next frame.
    assert_eq!(
        sub.call(&["SSUBSCRIBE", "c"]),
        arr(vec![b("ssubscribe"), b("c"), V::Int(1)])
    );
    let n: i64 = redis::cmd("SPUBLISH")
        .arg("c")
        .arg("m")
        .query(&mut publ)
        .expect("spublish");
    assert_eq!(n, 1);
    assert_eq!(sub.read(), arr(vec![b("smessage"), b("c"), b("m")]));
    assert_eq!(
        sub.call(&["SUNSUBSCRIBE", "c"]),
        arr(vec![b("sunsubscribe"), b("c"), V::Int(0)])
    );
    assert_eq!(
        sub.call(&["SUNSUBSCRIBE"]),
        arr(vec![b("sunsubscribe"), V::Nil, V::Int(0)])
    );
}
