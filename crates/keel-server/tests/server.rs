//! The server through real sockets and the `redis` crate as the client.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{persistence_field, InProc, WAIT};
use keel_server::Config;
use redis::{Commands, Value};

fn has_command(con: &mut redis::Connection, name: &str) -> bool {
    let v: Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg(name)
        .query(con)
        .expect("COMMAND INFO");
    matches!(v, Value::Array(ref items) if matches!(items.first(), Some(Value::Array(_))))
}

#[test]
fn basics_through_the_client() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let pong: String = redis::cmd("PING").query(&mut con).expect("ping");
    assert_eq!(pong, "PONG");
    let echoed: String = redis::cmd("ECHO").arg("hi").query(&mut con).expect("echo");
    assert_eq!(echoed, "hi");
    let _: () = con.set("k", "v").expect("set");
    let v: String = con.get("k").expect("get");
    assert_eq!(v, "v");
    let n: i64 = con.incr("n", 5).expect("incr");
    assert_eq!(n, 5);
    let n: i64 = con.incr("n", 1).expect("incr");
    assert_eq!(n, 6);
    let len: i64 = con.lpush("l", &["a", "b", "c"]).expect("lpush");
    assert_eq!(len, 3);
    let items: Vec<String> = con.lrange("l", 0, -1).expect("lrange");
    assert_eq!(items, vec!["c", "b", "a"]);
    let added: i64 = con.hset("h", "f", "x").expect("hset");
    assert_eq!(added, 1);
    let f: String = con.hget("h", "f").expect("hget");
    assert_eq!(f, "x");
    if has_command(&mut con, "zadd") {
        let added: i64 = con.zadd("z", "m", 1.5).expect("zadd");
        assert_eq!(added, 1);
        let score: f64 = con.zscore("z", "m").expect("zscore");
        assert_eq!(score, 1.5);
    }
    let err = con.get::<_, String>("h").expect_err("wrong type");
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    let err = redis::cmd("NOSUCHCMD")
        .arg("a")
        .query::<Value>(&mut con)
        .expect_err("unknown");
    assert!(err.to_string().contains("unknown command"), "{err}");
    let err = redis::cmd("GET")
        .query::<Value>(&mut con)
        .expect_err("arity");
    assert!(
        err.to_string().contains("wrong number of arguments"),
        "{err}"
    );
    let t: Vec<String> = redis::cmd("TIME").query(&mut con).expect("time");
    assert_eq!(t.len(), 2);
    assert!(t[0].parse::<u64>().expect("secs") > 1_600_000_000);
}

#[test]
fn a_pipeline_of_1000_commands_keeps_order() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let mut p = redis::pipe();
    for i in 0..500 {
        p.cmd("SET").arg(format!("key:{i}")).arg(i);
        p.cmd("GET").arg(format!("key:{i}"));
    }
    let out: Vec<Value> = p.query(&mut con).expect("pipeline");
    assert_eq!(out.len(), 1000);
    for (i, pair) in out.chunks(2).enumerate() {
        assert!(matches!(pair[0], Value::Okay), "SET {i}: {:?}", pair[0]);
        let got: String = redis::from_redis_value(&pair[1]).expect("string");
        assert_eq!(got, i.to_string(), "read-your-writes inside the pipeline");
    }
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).expect("dbsize");
    assert_eq!(n, 500);
}

/// Many clients on a two-worker server, each sending pipelines of 1 to 100 requests
/// (across the size past which replies are written at once instead of at the end of
/// the thread's pass), while another client reads a reply larger than the socket takes
/// at once: every client gets exactly its own replies, in order.
#[test]
fn concurrent_pipelines_of_every_size_get_their_own_replies_in_order() {
    const CLIENTS: usize = 24;
    const ROUNDS: usize = 12;
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let big: Vec<u8> = (0..4u32 << 20).map(|i| (i % 241) as u8).collect();
    let _: () = con.set("big", &big[..]).expect("set big");
    let addr = srv.addr;
    let want = big.clone();
    let reader = std::thread::spawn(move || {
        let client = redis::Client::open(format!("redis://{addr}")).expect("client");
        let mut con = client.get_connection_with_timeout(WAIT).expect("connect");
        con.set_read_timeout(Some(WAIT)).expect("timeout");
        for _ in 0..ROUNDS {
            let got: Vec<u8> = con.get("big").expect("get big");
            assert!(got == want, "big came back changed ({} bytes)", got.len());
        }
        got_big_ok(&mut con)
    });
    let workers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let client = redis::Client::open(format!("redis://{addr}")).expect("client");
                let mut con = client.get_connection_with_timeout(WAIT).expect("connect");
                // A lost reply fails the test instead of hanging it.
                con.set_read_timeout(Some(WAIT)).expect("timeout");
                for r in 0..ROUNDS {
                    // 1, 9, 17, ... 97 requests: some below the limit, some above.
                    let n = 1 + (c * 7 + r * 8) % 100;
                    let mut p = redis::pipe();
                    for i in 0..n {
                        let key = format!("c{c}:r{r}:{i}");
                        match i % 3 {
                            0 => p.cmd("SET").arg(&key).arg(i),
                            1 => p.cmd("INCRBY").arg(&key).arg(i),
                            _ => p.cmd("ECHO").arg(&key),
                        };
                    }
                    let out: Vec<Value> = p.query(&mut con).expect("pipeline");
                    assert_eq!(out.len(), n, "client {c} round {r}");
                    for (i, v) in out.iter().enumerate() {
                        let key = format!("c{c}:r{r}:{i}");
                        match i % 3 {
                            0 => assert!(matches!(v, Value::Okay), "{key}: {v:?}"),
                            1 => assert_eq!(v, &Value::Int(i as i64), "{key}"),
                            _ => {
                                let echoed: String =
                                    redis::from_redis_value(v).expect("echo reply");
                                assert_eq!(echoed, key);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a client saw a wrong reply");
    }
    assert!(reader.join().expect("the big reader failed"));
}

/// The connection still answers after its large replies.
fn got_big_ok(con: &mut redis::Connection) -> bool {
    let pong: String = redis::cmd("PING").query(con).expect("ping");
    pong == "PONG"
}

/// A reply larger than the socket takes at once (the server writes what it can, then
/// waits for the client to read the rest) arrives whole and in order, and the
/// connection goes on.
#[test]
fn a_reply_larger_than_the_send_buffer_arrives_whole_to_a_slow_reader() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let big: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    let _: () = con.set("big", &big[..]).expect("set");
    let mut slow = TcpStream::connect(srv.addr).expect("connect");
    slow.set_read_timeout(Some(WAIT)).expect("timeout");
    slow.write_all(b"GET big\r\nPING\r\n").expect("write");
    // Not reading yet: the server's first write fills the socket's buffers.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let header = format!("${}\r\n", big.len());
    let want = header.len() + big.len() + b"\r\n+PONG\r\n".len();
    let mut got = vec![0u8; want];
    slow.read_exact(&mut got)
        .expect("the whole reply, then PONG");
    assert_eq!(&got[..header.len()], header.as_bytes());
    let body = &got[header.len()..header.len() + big.len()];
    assert!(body == &big[..], "the value came back changed");
    assert_eq!(&got[header.len() + big.len()..], b"\r\n+PONG\r\n");
}

#[test]
fn a_run_of_writes_with_a_failure_answers_each_in_order() {
    let srv = InProc::start(Config::default());
    let mut raw = TcpStream::connect(srv.addr).expect("connect");
    raw.set_read_timeout(Some(WAIT)).expect("timeout");
    // Eight consecutive writes reach the server in one packet and go to the apply
    // thread as one message; the fourth fails, the others must still apply and answer
    // in their own places.
    let mut req = String::new();
    for c in [
        "SET a x",
        "INCR n",
        "INCR n",
        "INCR a",
        "SET b y",
        "RPUSH l 1",
        "INCR n",
        "DEL a",
    ] {
        let parts: Vec<&str> = c.split(' ').collect();
        req.push_str(&format!("*{}\r\n", parts.len()));
        for p in parts {
            req.push_str(&format!("${}\r\n{p}\r\n", p.len()));
        }
    }
    req.push_str("*2\r\n$3\r\nGET\r\n$1\r\nn\r\n");
    raw.write_all(req.as_bytes()).expect("send");
    let want = "+OK\r\n:1\r\n:2\r\n-ERR value is not an integer or out of range\r\n\
                +OK\r\n:1\r\n:3\r\n:1\r\n$1\r\n3\r\n";
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while got.len() < want.len() {
        let n = raw.read(&mut buf).expect("read");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        assert!(got.len() < 1 << 16, "no PONG in {} bytes", got.len());
    }
    assert_eq!(String::from_utf8_lossy(&got), want);
    let mut con = srv.client();
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .expect("info");
    let incr = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_incr:"))
        .expect("cmdstat_incr");
    assert!(incr.contains("calls=4,"), "{incr}");
    assert!(incr.contains("failed_calls=1"), "{incr}");
}

#[test]
fn select_keeps_databases_apart() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let _: () = con.set("k", "db0").expect("set");
    let _: () = redis::cmd("SELECT").arg(5).query(&mut con).expect("select");
    let v: Option<String> = con.get("k").expect("get");
    assert_eq!(v, None);
    let _: () = con.set("k", "db5").expect("set");
    let err = redis::cmd("SELECT")
        .arg(16)
        .query::<()>(&mut con)
        .expect_err("out of range");
    assert!(
        err.to_string().contains("DB index is out of range"),
        "{err}"
    );
    let err = redis::cmd("SELECT")
        .arg("x")
        .query::<()>(&mut con)
        .expect_err("not a number");
    assert!(err.to_string().contains("not an integer"), "{err}");
    let _: () = redis::cmd("SELECT").arg(0).query(&mut con).expect("select");
    let v: String = con.get("k").expect("get");
    assert_eq!(v, "db0");
    let info: String = redis::cmd("INFO")
        .arg("keyspace")
        .query(&mut con)
        .expect("info");
    assert!(info.contains("# Keyspace"), "{info}");
    assert!(info.contains("db0:keys=1,expires=0,avg_ttl=0"), "{info}");
    assert!(info.contains("db5:keys=1,expires=0"), "{info}");
    let _: () = redis::cmd("SET")
        .arg("t")
        .arg("1")
        .arg("EX")
        .arg(100)
        .query(&mut con)
        .expect("set ex");
    let info: String = redis::cmd("INFO")
        .arg("keyspace")
        .query(&mut con)
        .expect("info");
    assert!(info.contains("db0:keys=2,expires=1"), "{info}");
}

#[test]
fn auth_gates_commands_when_a_password_is_set() {
    let srv = InProc::start(Config {
        requirepass: Some("s3cret".into()),
        ..Config::default()
    });
    let client = redis::Client::open(srv.url()).expect("client");
    let mut con = client.get_connection_with_timeout(WAIT).expect("connect");
    con.set_read_timeout(Some(WAIT)).expect("timeout");
    let err = con.get::<_, Option<String>>("k").expect_err("noauth");
    assert!(err.to_string().contains("NOAUTH"), "{err}");
    let err = redis::cmd("AUTH")
        .arg("wrong")
        .query::<()>(&mut con)
        .expect_err("wrongpass");
    assert!(err.to_string().contains("WRONGPASS"), "{err}");
    let _: () = redis::cmd("AUTH")
        .arg("s3cret")
        .query(&mut con)
        .expect("auth");
    let _: () = con.set("k", "v").expect("set after auth");
    // RESET drops authentication.
    let r: String = redis::cmd("RESET").query(&mut con).expect("reset");
    assert_eq!(r, "RESET");
    let err = con.get::<_, Option<String>>("k").expect_err("noauth again");
    assert!(err.to_string().contains("NOAUTH"), "{err}");
    // The password in the URL authenticates on connect.
    let url = format!("redis://:s3cret@{}/", srv.addr);
    let mut con2 = redis::Client::open(url)
        .expect("client")
        .get_connection_with_timeout(WAIT)
        .expect("connect with password");
    let v: String = con2.get("k").expect("get");
    assert_eq!(v, "v");
}

#[test]
fn auth_without_a_password_configured() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let err = redis::cmd("AUTH")
        .arg("x")
        .query::<()>(&mut con)
        .expect_err("no password");
    assert!(
        err.to_string().contains("without any password configured"),
        "{err}"
    );
}

#[test]
fn resp3_via_hello() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let v: Value = redis::cmd("HELLO").arg(3).query(&mut con).expect("hello 3");
    let Value::Map(fields) = v else {
        panic!("HELLO 3 must answer a RESP3 map, got {v:?}");
    };
    let get = |k: &str| {
        fields
            .iter()
            .find(|(f, _)| matches!(f, Value::BulkString(b) if b == k.as_bytes()))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("proto"), Some(Value::Int(3)));
    assert!(get("version").is_some());
    let _: () = redis::cmd("HSET")
        .arg(&["h", "a", "1", "b", ""])
        .query(&mut con)
        .expect("hset");
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    // Replies the engine writes from one buffer (fields and members as storage holds
    // them) keep their RESP3 shapes: a map, a set, arrays.
    let v: Value = redis::cmd("HGETALL")
        .arg("h")
        .query(&mut con)
        .expect("hgetall");
    assert_eq!(
        v,
        Value::Map(vec![(bulk("a"), bulk("1")), (bulk("b"), bulk(""))]),
        "RESP3 map reply"
    );
    let _: () = redis::cmd("SADD")
        .arg(&["s", "x", "y"])
        .query(&mut con)
        .expect("sadd");
    let v: Value = redis::cmd("SMEMBERS")
        .arg("s")
        .query(&mut con)
        .expect("smembers");
    assert_eq!(v, Value::Set(vec![bulk("x"), bulk("y")]), "RESP3 set reply");
    let v: Value = redis::cmd("HKEYS").arg("h").query(&mut con).expect("hkeys");
    assert_eq!(v, Value::Array(vec![bulk("a"), bulk("b")]));
    let _: () = redis::cmd("ZADD")
        .arg(&["z", "2", "m2", "1", "m1"])
        .query(&mut con)
        .expect("zadd");
    let v: Value = redis::cmd("ZRANGE")
        .arg(&["z", "0", "-1"])
        .query(&mut con)
        .expect("zrange");
    assert_eq!(v, Value::Array(vec![bulk("m1"), bulk("m2")]));
    // The same replies in RESP2: flat arrays.
    let mut two = srv.client();
    let v: Value = redis::cmd("HGETALL")
        .arg("h")
        .query(&mut two)
        .expect("hgetall");
    assert_eq!(
        v,
        Value::Array(vec![bulk("a"), bulk("1"), bulk("b"), bulk("")])
    );
    let v: Value = redis::cmd("SMEMBERS")
        .arg("s")
        .query(&mut two)
        .expect("smembers");
    assert_eq!(v, Value::Array(vec![bulk("x"), bulk("y")]));
    let v: Value = redis::cmd("GET")
        .arg("missing")
        .query(&mut con)
        .expect("get");
    assert_eq!(v, Value::Nil);
    let err = redis::cmd("HELLO")
        .arg(4)
        .query::<Value>(&mut con)
        .expect_err("proto 4");
    assert!(err.to_string().contains("NOPROTO"), "{err}");
}

#[test]
fn geo_commands_through_the_client() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let added: i64 = redis::cmd("GEOADD")
        .arg(&["Sicily", "13.361389", "38.115556", "Palermo"])
        .arg(&["15.087269", "37.502669", "Catania"])
        .query(&mut con)
        .expect("geoadd");
    assert_eq!(added, 2);
    // RESP2: coordinates and distances are bulk strings, printed as redis-server does.
    let pos: Vec<Option<(String, String)>> = redis::cmd("GEOPOS")
        .arg(&["Sicily", "Palermo", "nowhere"])
        .query(&mut con)
        .expect("geopos");
    assert_eq!(
        pos,
        vec![
            Some((
                "13.36138933897018433".to_string(),
                "38.11555639549629859".to_string()
            )),
            None
        ]
    );
    let found: Vec<(String, String)> = redis::cmd("GEOSEARCH")
        .arg(&["Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km"])
        .arg(&["ASC", "WITHDIST"])
        .query(&mut con)
        .expect("geosearch");
    assert_eq!(
        found,
        vec![
            ("Catania".to_string(), "56.4413".to_string()),
            ("Palermo".to_string(), "190.4424".to_string())
        ]
    );
    // RESP3: coordinates are doubles, still with Redis's digits.
    let mut raw = TcpStream::connect(srv.addr).expect("connect");
    raw.set_read_timeout(Some(WAIT)).expect("timeout");
    raw.write_all(b"HELLO 3\r\nGEOPOS Sicily Catania nowhere\r\nPING\r\n")
        .expect("send");
    let want: &[u8] =
        b"*2\r\n*2\r\n,15.08726745843887329\r\n,37.50266842333162032\r\n_\r\n+PONG\r\n";
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"+PONG\r\n") {
        let n = raw.read(&mut buf).expect("read");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        assert!(got.len() < 1 << 16, "no PONG in {} bytes", got.len());
    }
    assert!(got.ends_with(want), "{:?}", String::from_utf8_lossy(&got));
}

#[test]
fn hyperloglog_through_the_client() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let changed: i64 = con.pfadd("a", &["x", "y", "z"]).expect("pfadd");
    assert_eq!(changed, 1);
    let changed: i64 = con.pfadd("b", &["y", "z", "w"]).expect("pfadd");
    assert_eq!(changed, 1);
    let union: i64 = con.pfcount(&["a", "b"]).expect("pfcount");
    assert_eq!(union, 4);
    let _: () = con.pfmerge("m", &["a", "b"]).expect("pfmerge");
    let n: i64 = con.pfcount("m").expect("pfcount");
    assert_eq!(n, 4);
    // The value is a string in Redis's format: it survives GET and SET.
    let raw: Vec<u8> = con.get("m").expect("get");
    assert_eq!(&raw[..4], b"HYLL");
    let _: () = con.set("copy", raw).expect("set");
    let n: i64 = con.pfcount("copy").expect("pfcount");
    assert_eq!(n, 4);
    let _: () = con.set("s", "plain").expect("set");
    let err = con.pfcount::<_, i64>("s").expect_err("not an HLL");
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
}

#[test]
fn async_client_with_resp3_protocol_in_the_url() {
    let srv = InProc::start(Config::default());
    let url = format!("redis://{}/?protocol=resp3", srv.addr);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = redis::Client::open(url).expect("client");
        let mut con = tokio::time::timeout(WAIT, client.get_multiplexed_async_connection())
            .await
            .expect("connect in time")
            .expect("connect");
        let _: () = redis::cmd("SET")
            .arg("a")
            .arg("1")
            .query_async(&mut con)
            .await
            .expect("set");
        let v: String = redis::cmd("GET")
            .arg("a")
            .query_async(&mut con)
            .await
            .expect("get");
        assert_eq!(v, "1");
    });
}

/// A connection parses up to 16 requests ahead of the one it runs (to prefetch the
/// reads' keys): replies stay in request order across those windows, each read sees the
/// writes before it, and requests before bad input are answered before its error.
#[test]
fn pipelined_requests_are_answered_in_order_across_parse_windows() {
    let srv = InProc::start(Config::default());
    let mut sock = TcpStream::connect(srv.addr).expect("connect");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    let cmd = |parts: &[&str]| {
        let mut out = format!("*{}\r\n", parts.len());
        for p in parts {
            out.push_str(&format!("${}\r\n{}\r\n", p.len(), p));
        }
        out
    };
    let mut input = String::new();
    let mut want = String::new();
    for i in 0..25 {
        input.push_str(&cmd(&["GET", "p"]));
        want.push_str(&if i == 0 {
            "$-1\r\n".to_string()
        } else {
            format!("${}\r\n{}\r\n", (i * 10).to_string().len(), i * 10)
        });
        input.push_str(&cmd(&["INCRBY", "p", "10"]));
        want.push_str(&format!(":{}\r\n", (i + 1) * 10));
    }
    input.push_str(&cmd(&["GET", "p"]));
    want.push_str("$3\r\n250\r\n");
    // Bad input last: everything before it is answered first.
    input.push_str("*1\r\n$abc\r\n");
    sock.write_all(input.as_bytes()).expect("write");
    let mut got = Vec::new();
    sock.read_to_end(&mut got).expect("read until close");
    let text = String::from_utf8_lossy(&got);
    let (answers, rest) = text.split_at(want.len().min(text.len()));
    assert_eq!(answers, want, "replies out of order or missing");
    assert!(rest.starts_with("-ERR Protocol error"), "{rest}");
}

#[test]
fn a_protocol_error_closes_only_that_connection() {
    let srv = InProc::start(Config::default());
    let mut good = srv.client();
    let _: () = good.set("k", "v").expect("set");
    let mut bad = TcpStream::connect(srv.addr).expect("connect");
    bad.set_read_timeout(Some(WAIT)).expect("timeout");
    bad.write_all(b"*1\r\n$abc\r\n").expect("write");
    let mut got = Vec::new();
    bad.read_to_end(&mut got).expect("read until close");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("-ERR Protocol error"), "{text}");
    let v: String = good.get("k").expect("other client still served");
    assert_eq!(v, "v");
}

#[test]
fn inline_commands_and_quit() {
    let srv = InProc::start(Config::default());
    let mut s = TcpStream::connect(srv.addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(b"SET a 1\r\nGET a\r\nQUIT\r\n").expect("write");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read until close");
    assert_eq!(String::from_utf8_lossy(&got), "+OK\r\n$1\r\n1\r\n+OK\r\n");
}

#[test]
fn maxclients_refuses_the_extra_client() {
    let srv = InProc::start(Config {
        maxclients: 2,
        ..Config::default()
    });
    let mut a = srv.client();
    let mut b = srv.client();
    for c in [&mut a, &mut b] {
        let p: String = redis::cmd("PING").query(c).expect("ping");
        assert_eq!(p, "PONG");
    }
    let mut third = TcpStream::connect(srv.addr).expect("connect");
    third.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut got = Vec::new();
    third.read_to_end(&mut got).expect("read until close");
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR max number of clients reached\r\n"
    );
    drop(a);
    // The slot frees once the server notices the close; retry within the bound.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let ok = redis::Client::open(srv.url())
            .and_then(|c| c.get_connection_with_timeout(WAIT))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok();
        if ok {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn command_table_introspection() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let n: i64 = redis::cmd("COMMAND")
        .arg("COUNT")
        .query(&mut con)
        .expect("count");
    assert!(n > 100, "COMMAND COUNT {n}");
    let names: Vec<String> = redis::cmd("COMMAND")
        .arg("LIST")
        .query(&mut con)
        .expect("list");
    assert_eq!(names.len() as i64, n);
    for want in ["get", "set", "ping", "info", "config", "command"] {
        assert!(names.iter().any(|x| x == want), "{want} missing");
    }
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query(&mut con)
        .expect("getkeys");
    assert_eq!(keys, vec!["a", "b"]);
    // Movable keys: SORT's STORE destination, and keys after a count.
    for (args, want) in [
        (&["SORT", "abc", "STORE", "def"][..], &["abc", "def"][..]),
        (&["ZUNIONSTORE", "d", "2", "a", "b"], &["d", "a", "b"]),
        (&["LMPOP", "1", "l", "LEFT"], &["l"]),
        (
            &[
                "GEORADIUS",
                "src",
                "1",
                "2",
                "3",
                "km",
                "STORE",
                "d",
                "STOREDIST",
                "e",
            ],
            &["src", "d", "e"],
        ),
        (
            &[
                "GEOSEARCHSTORE",
                "d",
                "src",
                "FROMMEMBER",
                "m",
                "BYRADIUS",
                "1",
                "km",
            ],
            &["d", "src"],
        ),
    ] {
        let keys: Vec<String> = redis::cmd("COMMAND")
            .arg("GETKEYS")
            .arg(args)
            .query(&mut con)
            .expect("getkeys");
        assert_eq!(keys, want, "{args:?}");
    }
    // Cluster clients ask GETKEYS for the commands flagged movablekeys.
    for (name, movable) in [
        ("zunionstore", true),
        ("sort", true),
        ("georadius", true),
        ("lmpop", true),
        ("georadius_ro", false),
        ("set", false),
        ("geosearchstore", false),
    ] {
        let v: Value = redis::cmd("COMMAND")
            .arg("INFO")
            .arg(name)
            .query(&mut con)
            .expect("command info");
        let text = format!("{v:?}");
        assert_eq!(text.contains("movablekeys"), movable, "{name}: {text}");
    }
    let all: Vec<Value> = redis::cmd("COMMAND").query(&mut con).expect("command");
    assert_eq!(all.len() as i64, n);
}

#[test]
fn config_get_set_and_info_sections() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("10mb")
        .query(&mut con)
        .expect("config set");
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query(&mut con)
        .expect("config get");
    assert_eq!(
        got,
        vec!["maxmemory".to_string(), (10u64 << 20).to_string()]
    );
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-*")
        .query(&mut con)
        .expect("config get glob");
    assert!(got.contains(&"maxmemory-policy".to_string()), "{got:?}");
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("no-such-thing")
        .arg("1")
        .query::<()>(&mut con)
        .expect_err("unknown");
    assert!(
        err.to_string()
            .contains("Unknown option or number of arguments for CONFIG SET - 'no-such-thing'"),
        "{err}"
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("hz")
        .arg("100")
        .query(&mut con)
        .expect("accepted and ignored");
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("hz")
        .query(&mut con)
        .expect("get hz");
    assert_eq!(got, vec!["hz", "100"]);
    let info: String = redis::cmd("INFO").query(&mut con).expect("info");
    for section in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Keyspace",
    ] {
        assert!(info.contains(section), "{section} missing");
    }
    assert!(info.contains("maxmemory:10485760"), "{info}");
    assert!(info.contains("keel_state:ready"), "{info}");
    assert!(info.contains("connected_clients:1"), "{info}");
}

#[test]
fn maxmemory_noeviction_refuses_growing_writes_but_serves_reads() {
    let srv = InProc::start(Config {
        maxmemory: 4096,
        ..Config::default()
    });
    let mut con = srv.client();
    let big = "x".repeat(1024);
    let mut refused = None;
    for i in 0..64 {
        match con.set::<_, _, ()>(format!("k{i}"), &big) {
            Ok(()) => {}
            Err(e) => {
                refused = Some((i, e.to_string()));
                break;
            }
        }
    }
    let (i, e) = refused.expect("a write must be refused past maxmemory");
    assert!(i > 0, "the first write fits");
    assert!(e.contains("command not allowed when used memory"), "{e}");
    let v: String = con.get("k0").expect("reads still work");
    assert_eq!(v, big);
    let n: i64 = con.del("k0").expect("DEL is not denyoom");
    assert_eq!(n, 1);
}

#[test]
fn maxmemory_allkeys_random_evicts() {
    let srv = InProc::start(Config {
        maxmemory: 8192,
        maxmemory_policy: keel_engine::EvictionPolicy::AllKeysRandom,
        ..Config::default()
    });
    let mut con = srv.client();
    let big = "y".repeat(1024);
    for i in 0..64 {
        let _: () = con
            .set(format!("k{i}"), &big)
            .expect("writes evict instead of failing");
    }
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).expect("dbsize");
    assert!(n < 64, "some keys were evicted ({n} left)");
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut con)
        .expect("info");
    assert!(!info.contains("evicted_keys:0\r\n"), "{info}");
}

#[test]
fn active_expiry_deletes_without_reads() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    for i in 0..20 {
        let _: () = redis::cmd("SET")
            .arg(format!("e{i}"))
            .arg("v")
            .arg("PX")
            .arg(30)
            .query(&mut con)
            .expect("set px");
    }
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query(&mut con)
            .expect("info");
        if info.contains("expired_keys:20\r\n") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{info}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn idle_clients_are_closed_after_timeout() {
    let srv = InProc::start(Config {
        timeout: 1,
        ..Config::default()
    });
    let mut s = TcpStream::connect(srv.addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = [0u8; 16];
    let n = s
        .read(&mut buf)
        .expect("closed by the server, not timed out here");
    assert_eq!(n, 0, "server closes the idle connection");
}

#[test]
fn query_buffer_limit_closes_the_client() {
    let srv = InProc::start(Config {
        client_query_buffer_limit: 64 * 1024,
        ..Config::default()
    });
    let mut s = TcpStream::connect(srv.addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.set_write_timeout(Some(WAIT)).expect("timeout");
    // A bulk argument stays in the query buffer until it is complete: announce more
    // than the limit and send past it; the server must close without waiting for the rest.
    s.write_all(b"*2\r\n$3\r\nGET\r\n$200000\r\n")
        .expect("header");
    let chunk = vec![b'a'; 16 * 1024];
    for _ in 0..6 {
        if s.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .expect("the server closes the connection (a read timeout here means it did not)");
    assert!(
        got.is_empty(),
        "no reply: {:?}",
        String::from_utf8_lossy(&got)
    );
    let mut good = srv.client();
    let p: String = redis::cmd("PING")
        .query(&mut good)
        .expect("server still fine");
    assert_eq!(p, "PONG");
}

#[test]
fn lastsave_and_save() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let before: i64 = redis::cmd("LASTSAVE").query(&mut con).expect("lastsave");
    let _: () = con.set("a", "1").expect("set");
    let _: () = redis::cmd("SAVE").query(&mut con).expect("save");
    let after: i64 = redis::cmd("LASTSAVE").query(&mut con).expect("lastsave");
    assert!(after >= before);
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut con)
        .expect("info");
    assert!(info.contains("rdb_saves:1\r\n"), "{info}");
    assert!(info.contains("rdb_changes_since_last_save:0\r\n"), "{info}");
    assert!(srv.dir.path().join("data/memory/memory.snap").exists());
    let s: String = redis::cmd("BGSAVE").query(&mut con).expect("bgsave");
    assert_eq!(s, "Background saving started");
}

#[test]
fn a_wal_failure_refuses_writes_with_misconf_and_keeps_reads() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let _: () = con.set("k", "v").expect("set");
    // The next segment cannot be created once the WAL directory is gone.
    std::fs::remove_dir_all(srv.dir.path().join("data/wal")).expect("remove wal dir");
    let err = redis::cmd("SAVE")
        .query::<()>(&mut con)
        .expect_err("save fails");
    assert!(err.to_string().contains("MISCONF"), "{err}");
    let err = con.set::<_, _, ()>("k2", "v").expect_err("write refused");
    assert!(
        err.to_string().contains("unable to persist to disk"),
        "{err}"
    );
    let v: String = con.get("k").expect("reads keep working");
    assert_eq!(v, "v");
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut con)
        .expect("info");
    assert!(info.contains("keel_state:failed"), "{info}");
    assert!(!info.contains("keel_failure_reason:\r\n"), "{info}");
}

/// Overwrites keys `0..n` with 1 KiB values (`tag` makes each pass's values differ).
fn overwrite(con: &mut redis::Connection, n: usize, tag: char) {
    let value = tag.to_string().repeat(1024);
    let mut p = redis::pipe();
    for i in 0..n {
        p.cmd("SET").arg(format!("k{i}")).arg(&value).ignore();
    }
    let _: () = p.query(con).expect("pipeline");
}

fn saves(con: &mut redis::Connection) -> u64 {
    persistence_field(con, "rdb_saves")
        .parse()
        .expect("rdb_saves")
}

/// Waits up to `WAIT` for a snapshot past `than`; the count then.
fn saves_past(con: &mut redis::Connection, than: u64) -> u64 {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let n = saves(con);
        let idle = persistence_field(con, "rdb_bgsave_in_progress") == "0";
        if (n > than && idle) || std::time::Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The WAL-size trigger waits for the log to grow by auto-snapshot-wal-percentage of
/// the last snapshot too (Redis's auto-aof-rewrite-percentage), not only by
/// auto-snapshot-wal-bytes; at 0 the size alone counts again.
#[test]
fn the_snapshot_trigger_scales_with_the_last_snapshot() {
    let srv = InProc::start(Config {
        auto_snapshot_wal_bytes: 64 * 1024,
        ..Config::default()
    });
    let mut con = srv.client();
    let pct: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("auto-aof-rewrite-percentage")
        .query(&mut con)
        .expect("config get");
    assert_eq!(pct, ["auto-aof-rewrite-percentage", "100"]);
    // A checkpoint of ~800 KiB: the next automatic one waits for as much log.
    overwrite(&mut con, 800, 'a');
    // The writes may have started automatic snapshots (at 64 KiB while no base was
    // known); SAVE is refused while one runs.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match redis::cmd("SAVE").query::<()>(&mut con) {
            Ok(()) => break,
            Err(e) if e.to_string().contains("in progress") => {
                assert!(std::time::Instant::now() < deadline, "{e}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("save: {e}"),
        }
    }
    let base = saves_past(&mut con, 0);
    let field = |con: &mut redis::Connection, f: &str| -> u64 {
        persistence_field(con, f).parse().expect(f)
    };
    let base_bytes = field(&mut con, "keel_snapshot_base_bytes");
    assert!(
        base_bytes > 800 * 1024,
        "the checkpoint holds 800 KiB: {base_bytes}"
    );
    assert_eq!(
        field(&mut con, "keel_snapshot_trigger_wal_bytes"),
        base_bytes
    );
    // ~200 KiB of log: three times auto-snapshot-wal-bytes, a quarter of the base.
    overwrite(&mut con, 200, 'b');
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(
        saves(&mut con),
        base,
        "a snapshot before the log grew by the base"
    );
    // ~800 KiB more: past the base.
    overwrite(&mut con, 800, 'c');
    let after = saves_past(&mut con, base);
    assert!(after > base, "no snapshot after the log grew past the base");
    // At 0 the size alone triggers: ~200 KiB is enough.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("auto-snapshot-wal-percentage")
        .arg("0")
        .query(&mut con)
        .expect("config set");
    assert_eq!(
        field(&mut con, "keel_snapshot_trigger_wal_bytes"),
        64 * 1024
    );
    overwrite(&mut con, 200, 'd');
    assert!(
        saves_past(&mut con, after) > after,
        "no snapshot at percentage 0"
    );
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("auto-snapshot-wal-percentage")
        .arg("-1")
        .query::<()>(&mut con)
        .expect_err("a negative percentage");
    assert!(
        err.to_string()
            .contains("couldn't be parsed into an integer"),
        "{err}"
    );
}

#[test]
fn the_wal_growing_past_the_threshold_triggers_a_snapshot() {
    let srv = InProc::start(Config {
        auto_snapshot_wal_bytes: 256 * 1024,
        ..Config::default()
    });
    let mut con = srv.client();
    let value = "v".repeat(1024);
    let mut p = redis::pipe();
    for i in 0..1500 {
        p.cmd("SET").arg(format!("k{i}")).arg(&value).ignore();
    }
    let _: () = p.query(&mut con).expect("pipeline");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(&mut con)
            .expect("info");
        let saves = info
            .lines()
            .find_map(|l| l.strip_prefix("rdb_saves:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .expect("rdb_saves");
        let wal_bytes = info
            .lines()
            .find_map(|l| l.strip_prefix("wal_bytes:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .expect("wal_bytes");
        // 1.5 MB were logged; snapshots keep the log near the threshold.
        if saves >= 1 && wal_bytes < 1024 * 1024 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{info}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(srv.dir.path().join("data/memory/memory.snap").exists());
}

#[test]
fn command_info_and_list_speak_acl_categories() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let info: Value = redis::cmd("COMMAND")
        .arg(&["INFO", "get", "pfadd"])
        .query(&mut con)
        .expect("COMMAND INFO");
    let cats = |entry: &Value| -> Vec<String> {
        let Value::Array(fields) = entry else {
            panic!("not an entry: {entry:?}")
        };
        match &fields[6] {
            Value::Array(c) | Value::Set(c) => c
                .iter()
                .map(|v| match v {
                    Value::SimpleString(s) => s.clone(),
                    Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    other => format!("{other:?}"),
                })
                .collect(),
            other => panic!("categories: {other:?}"),
        }
    };
    let Value::Array(entries) = info else {
        panic!("{info:?}")
    };
    assert_eq!(cats(&entries[0]), ["@read", "@string", "@fast"]);
    assert_eq!(cats(&entries[1]), ["@write", "@hyperloglog", "@fast"]);
    let hll: Vec<String> = redis::cmd("COMMAND")
        .arg(&["LIST", "FILTERBY", "ACLCAT", "hyperloglog"])
        .query(&mut con)
        .expect("COMMAND LIST");
    let mut hll = hll;
    hll.sort();
    assert_eq!(hll, ["pfadd", "pfcount", "pfmerge"]);
    let none: Vec<String> = redis::cmd("COMMAND")
        .arg(&["LIST", "FILTERBY", "ACLCAT", "nosuch"])
        .query(&mut con)
        .expect("COMMAND LIST");
    assert!(none.is_empty());
}

/// Runs `args` and returns the reply, an error as `Err(text)`.
fn call(con: &mut redis::Connection, args: &[&str]) -> Result<Value, String> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con).map_err(|e| {
        let code = e.code().unwrap_or("");
        format!("{code} {}", e.detail().unwrap_or(""))
            .trim()
            .to_string()
    })
}

#[test]
fn migrate_moves_keys_with_their_ttl_and_keeps_what_the_target_refused() {
    let src = InProc::start(Config::default());
    let dst = InProc::start(Config {
        requirepass: Some("pw".into()),
        ..Config::default()
    });
    let port = dst.addr.port().to_string();
    let mut s = src.client();
    let mut d = common::connect(dst.addr);
    let _: () = redis::cmd("AUTH").arg("pw").query(&mut d).expect("auth");
    let _: () = s.set("a", "1").expect("set");
    let _: i64 = s.rpush("l", &["x", "y", "z"]).expect("rpush");
    let _: () = redis::cmd("SET")
        .arg("t")
        .arg("v")
        .arg("PX")
        .arg(60_000)
        .query(&mut s)
        .expect("set px");
    let _: i64 = s.hset("h", "f", "v").expect("hset");
    let mv = |s: &mut redis::Connection, rest: &[&str]| {
        let mut args = vec!["MIGRATE", "127.0.0.1", &port];
        args.extend_from_slice(rest);
        call(s, &args)
    };

    // The target's refusal comes back, and the key stays.
    let e = mv(&mut s, &["a", "0", "5000"]).expect_err("no AUTH");
    assert_eq!(
        e,
        "ERR Target instance replied with error: NOAUTH Authentication required."
    );
    assert!(s.exists::<_, bool>("a").expect("exists"));

    // The deletion raises DEL's keyspace event, as in Redis.
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "notify-keyspace-events", "Eg"])
        .query(&mut s)
        .expect("config set");
    let mut events = src.client();
    let mut events = events.as_pubsub();
    events.subscribe("__keyevent@0__:del").expect("subscribe");
    events.set_read_timeout(Some(WAIT)).expect("timeout");
    assert_eq!(
        mv(&mut s, &["a", "0", "5000", "AUTH", "pw"]),
        Ok(Value::Okay)
    );
    assert!(!s.exists::<_, bool>("a").expect("exists"));
    assert_eq!(d.get::<_, String>("a").expect("get"), "1");
    let deleted: String = events
        .get_message()
        .and_then(|m| m.get_payload())
        .expect("del event");
    assert_eq!(deleted, "a");
    drop(events);

    // KEYS, another database, AUTH2, a missing key among them.
    let keys_form = [
        "", "2", "5000", "AUTH2", "default", "pw", "KEYS", "l", "t", "h", "nope",
    ];
    assert_eq!(mv(&mut s, &keys_form), Ok(Value::Okay));
    assert_eq!(
        s.keys::<_, Vec<String>>("*").expect("keys"),
        Vec::<String>::new()
    );
    let _: () = redis::cmd("SELECT").arg(2).query(&mut d).expect("select");
    let list: Vec<String> = d.lrange("l", 0, -1).expect("lrange");
    assert_eq!(list, ["x", "y", "z"]);
    assert_eq!(d.hget::<_, _, String>("h", "f").expect("hget"), "v");
    let ttl: i64 = d.pttl("t").expect("pttl");
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
    let _: () = redis::cmd("SELECT").arg(0).query(&mut d).expect("select");

    // An existing key: BUSYKEY unless REPLACE; COPY keeps the source.
    let _: () = s.set("a", "2").expect("set");
    let e = mv(&mut s, &["a", "0", "5000", "AUTH", "pw"]).expect_err("busy");
    assert_eq!(
        e,
        "ERR Target instance replied with error: BUSYKEY Target key name already exists."
    );
    let copy = ["a", "0", "5000", "COPY", "REPLACE", "AUTH", "pw"];
    assert_eq!(mv(&mut s, &copy), Ok(Value::Okay));
    assert_eq!(s.get::<_, String>("a").expect("get"), "2");
    assert_eq!(d.get::<_, String>("a").expect("get"), "2");

    // Nothing to move, nobody listening, bad arguments.
    assert_eq!(
        mv(&mut s, &["nope", "0", "100"]),
        Ok(Value::SimpleString("NOKEY".into()))
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
        .to_string();
    let e = call(&mut s, &["MIGRATE", "127.0.0.1", &closed, "a", "0", "1000"])
        .expect_err("closed port");
    assert_eq!(e, "IOERR error or timeout connecting to the client");
    assert_eq!(
        mv(&mut s, &["a", "0", "100", "KEYS", "a"]).expect_err("key and KEYS"),
        "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"
    );
    assert_eq!(
        mv(&mut s, &["a", "x", "100"]).expect_err("db"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        mv(&mut s, &["a", "0", "100", "AUTH"]).expect_err("AUTH without password"),
        "ERR syntax error"
    );

    // A limited user's keys are checked, the KEYS form's included.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "lim", "on", ">p", "~a*", "+@all"])
        .query(&mut s)
        .expect("setuser");
    let mut lim = src.client();
    let _: () = redis::cmd("AUTH")
        .arg(&["lim", "p"])
        .query(&mut lim)
        .expect("auth");
    for rest in [&["b", "0", "100"][..], &["", "0", "100", "KEYS", "a", "b"]] {
        let e = mv(&mut lim, rest).expect_err("b is not lim's");
        assert!(e.starts_with("NOPERM"), "{e}");
    }
}

/// Reads RESP commands from `sock` until `n` whole ones have come; returns them.
fn read_commands(sock: &mut TcpStream, n: usize) -> Vec<Vec<Vec<u8>>> {
    fn parse(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
        let line = |at: usize| -> Option<(usize, usize)> {
            let end = at + buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
            let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
            Some((n, end + 2))
        };
        let (count, mut at) = line(0)?;
        let mut args = Vec::new();
        for _ in 0..count {
            let (len, start) = line(at)?;
            args.push(buf.get(start..start + len)?.to_vec());
            at = start + len + 2;
        }
        (buf.len() >= at).then_some((args, at))
    }
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while out.len() < n {
        while let Some((cmd, used)) = parse(&buf) {
            out.push(cmd);
            buf.drain(..used);
        }
        if out.len() == n {
            break;
        }
        let got = sock.read(&mut chunk).expect("read from keel");
        assert!(got > 0, "keel closed the connection after {out:?}");
        buf.extend_from_slice(&chunk[..got]);
    }
    out
}

#[test]
fn migrate_keeps_a_key_written_while_it_travels() {
    let src = InProc::start(Config::default());
    let mut s = src.client();
    let _: () = s.set("k", "old").expect("set");
    let _: () = s.set("j", "stays-old").expect("set");
    // A target played by the test: it answers only once the key has changed here.
    let target = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = target.local_addr().expect("addr").port().to_string();
    let mut writer = src.client();
    let migrating = std::thread::spawn(move || {
        call(
            &mut s,
            &[
                "MIGRATE",
                "127.0.0.1",
                &port,
                "",
                "0",
                "5000",
                "KEYS",
                "k",
                "j",
            ],
        )
    });
    let (mut sock, _) = target.accept().expect("keel connects");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    let cmds = read_commands(&mut sock, 3);
    assert_eq!(cmds[0], [b"SELECT".to_vec(), b"0".to_vec()]);
    assert_eq!(cmds[1][0], b"RESTORE");
    assert_eq!(cmds[1][1], b"k");
    assert_eq!(cmds[2][1], b"j");
    let _: () = writer.set("k", "new").expect("set while migrating");
    sock.write_all(b"+OK\r\n+OK\r\n+OK\r\n").expect("answer");
    let reply = migrating.join().expect("MIGRATE thread");
    assert_eq!(reply, Ok(Value::Okay));
    // j was unchanged and left; k was written meanwhile and stays, with the new value.
    assert_eq!(writer.get::<_, String>("k").expect("get"), "new");
    assert!(!writer.exists::<_, bool>("j").expect("exists"));
}
