//! The library against a real in-process server and against scripted fake servers:
//! handshake, RESP3, pool bounds, and retries on dropped connections.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::InProc;
use keel_client::{
    ClientError, ConnectOptions, Connection, Pool, PoolConfig, Protocol, RetryPolicy, Value,
};
use keel_server::Config;

fn opts(s: &InProc) -> ConnectOptions {
    ConnectOptions::new("127.0.0.1", s.addr.port())
}

#[tokio::test]
async fn handshake_selects_db_and_speaks_resp3() {
    let s = InProc::start_default();
    let mut o = opts(&s);
    o.db = 5;
    o.protocol = Protocol::Resp3;
    let mut c = Connection::connect(&o).await.expect("connect");
    assert_eq!(c.db(), 5);
    c.query(&["HSET", "h", "f", "v"]).await.expect("hset");
    assert_eq!(
        c.query(&["HGETALL", "h"]).await.expect("hgetall"),
        Value::Map(vec![(Value::bulk(&b"f"[..]), Value::bulk(&b"v"[..]))])
    );
    c.query(&["SELECT", "0"]).await.expect("select");
    assert_eq!(c.db(), 0);
    assert_eq!(
        c.query(&["EXISTS", "h"]).await.expect("exists"),
        Value::Int(0)
    );
    let replies = c
        .pipeline(&[vec!["SET", "a", "1"], vec!["INCR", "a"], vec!["NOPE"]])
        .await
        .expect("pipeline");
    assert_eq!(replies.first(), Some(&Value::Simple("OK".into())));
    assert_eq!(replies.get(1), Some(&Value::Int(2)));
    assert!(replies.get(2).is_some_and(Value::is_error));
    match c.query(&["NOPE"]).await {
        Err(ClientError::Server(e)) => assert!(e.starts_with("ERR unknown command")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn wrong_password_fails_the_handshake() {
    let s = InProc::start(Config {
        requirepass: Some("pw".into()),
        ..Config::default()
    });
    let mut o = opts(&s);
    o.password = Some("nope".into());
    match Connection::connect(&o).await {
        Err(ClientError::Handshake {
            step: "AUTH",
            reply,
        }) => {
            assert!(
                reply.contains("WRONGPASS") || reply.contains("invalid"),
                "{reply}"
            )
        }
        other => panic!("{other:?}"),
    }
    o.password = Some("pw".into());
    let mut c = Connection::connect(&o).await.expect("connect");
    assert_eq!(
        c.query(&["PING"]).await.expect("ping"),
        Value::Simple("PONG".into())
    );
}

#[tokio::test]
async fn pool_is_bounded_and_reuses_connections() {
    let s = InProc::start_default();
    let pool = Pool::new(
        opts(&s),
        PoolConfig {
            max_size: 2,
            acquire_timeout: Duration::from_millis(200),
            retry: RetryPolicy::none(),
        },
    );
    let mut a = pool.get().await.expect("first");
    let b = pool.get().await.expect("second");
    match pool.get().await {
        Err(ClientError::Timeout {
            op: "pool acquire", ..
        }) => {}
        other => panic!("third connection beyond max_size: {other:?}"),
    }
    let id_a = a.conn().query(&["CLIENT", "ID"]).await.expect("id");
    drop(a);
    drop(b);
    assert_eq!(pool.idle_count(), 2);
    // Most recently returned first: b, then a.
    let _b2 = pool.get().await.expect("again");
    let mut a2 = pool.get().await.expect("again");
    assert_eq!(a2.conn().query(&["CLIENT", "ID"]).await.expect("id"), id_a);
    // Concurrent commands through a small pool all complete.
    drop(a2);
    drop(_b2);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            p.command(&["INCR", "shared"]).await.map(|_| i)
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("incr");
    }
    assert_eq!(
        pool.command(&["GET", "shared"]).await.expect("get"),
        Value::bulk(&b"20"[..])
    );
}

#[tokio::test]
async fn read_commands_retry_after_the_server_dropped_the_connection() {
    let s = InProc::start_default();
    let pool = Pool::new(
        opts(&s),
        PoolConfig {
            max_size: 1,
            acquire_timeout: Duration::from_secs(5),
            retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(20),
            },
        },
    );
    pool.command(&["SET", "k", "v"]).await.expect("set");
    let kill_idle = || async {
        let mut pc = pool.get().await.expect("borrow");
        let id = pc
            .conn()
            .query(&["CLIENT", "ID"])
            .await
            .expect("id")
            .as_int()
            .expect("int");
        drop(pc);
        let mut admin = Connection::connect(&opts(&s)).await.expect("admin");
        let killed = admin
            .query(&["CLIENT", "KILL", "ID", &id.to_string()])
            .await
            .expect("kill");
        assert_eq!(killed, Value::Int(1));
    };
    // The pooled connection is dead; GET is read-only, so it is resent on a new one.
    kill_idle().await;
    assert_eq!(
        pool.command(&["GET", "k"]).await.expect("get"),
        Value::bulk(&b"v"[..])
    );
    // INCR may have been applied before a drop: it is never resent.
    kill_idle().await;
    let err = pool.command(&["INCR", "n"]).await.expect_err("not retried");
    assert!(err.is_connection_error(), "{err}");
    // The caller may vouch for idempotency.
    kill_idle().await;
    assert_eq!(
        pool.command_idempotent(&["SET", "k", "w"])
            .await
            .expect("set"),
        Value::Simple("OK".into())
    );
    assert_eq!(pool.command(&["GET", "n"]).await.expect("get"), Value::Nil);
}

/// A fake server: connection number `i` (from 0) gets `script(i)` written after it sends
/// anything, then is closed. Returns the port and the connection counter.
fn fake_server(script: fn(usize) -> Option<&'static [u8]>) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    std::thread::spawn(move || {
        for stream in l.incoming().take(16) {
            let Ok(mut s) = stream else { continue };
            let i = c2.fetch_add(1, Ordering::SeqCst);
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buf = [0u8; 1024];
            if s.read(&mut buf).unwrap_or(0) == 0 {
                continue;
            }
            if let Some(reply) = script(i) {
                let _ = s.write_all(reply);
                let _ = s.read(&mut buf);
            }
        }
    });
    (port, count)
}

fn policy() -> PoolConfig {
    PoolConfig {
        max_size: 1,
        acquire_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        },
    }
}

#[tokio::test]
async fn dropped_before_reply_retries_reads_only() {
    // The first two connections are dropped mid-request, the third answers.
    let (port, count) = fake_server(|i| if i < 2 { None } else { Some(b"+PONG\r\n") });
    let pool = Pool::new(ConnectOptions::new("127.0.0.1", port), policy());
    assert_eq!(
        pool.command(&["PING"]).await.expect("ping"),
        Value::Simple("PONG".into())
    );
    assert_eq!(count.load(Ordering::SeqCst), 3);

    let (port, count) = fake_server(|i| if i < 1 { None } else { Some(b":1\r\n") });
    let pool = Pool::new(ConnectOptions::new("127.0.0.1", port), policy());
    let err = pool
        .command(&["INCR", "x"])
        .await
        .expect_err("write not resent");
    assert!(
        matches!(err, ClientError::Closed { .. } | ClientError::Io { .. }),
        "{err}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 1, "exactly one attempt");
}

#[tokio::test]
async fn refused_connections_are_retried_then_reported() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let pool = Pool::new(ConnectOptions::new("127.0.0.1", port), policy());
    let err = pool
        .command(&["INCR", "x"])
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn response_timeout_is_enforced() {
    // Accepts and reads, never answers.
    let (port, _) = fake_server(|_| Some(b""));
    let mut o = ConnectOptions::new("127.0.0.1", port);
    o.response_timeout = Some(Duration::from_millis(100));
    let mut c = Connection::connect(&o).await.expect("connect");
    match c.command(&["PING"]).await {
        Err(ClientError::Timeout { op: "reply", .. }) => {}
        other => panic!("{other:?}"),
    }
}
