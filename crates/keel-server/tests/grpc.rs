//! The gRPC front-end against an in-process server (and the binary for the WAL replay
//! check), driven by the generated tonic clients: atomic multi-key writes, TTLs,
//! RESP interplay, snapshot scans, transactions, errors, auth and reflection.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{spawn_binary, InProc, WAIT};
use keel_proto::v1::key_selector::Selector;
use keel_proto::v1::kv_client::KvClient;
use keel_proto::v1::txn_client::TxnClient;
use keel_proto::v1::{
    BeginRequest, CommitRequest, DeleteRequest, GetRequest, KeyRange, KeySelector, KeyValue,
    MetricsRequest, PutRequest, RollbackRequest, ScanRequest, ScanResponse, SetRequest,
    TxnDeleteRequest, TxnGetRequest, TxnScanRequest,
};
use keel_server::Config;
use redis::Commands;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: b(k),
        value: b(v),
    }
}

async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .timeout(WAIT)
        .connect_timeout(WAIT)
        .connect()
        .await
        .expect("connect gRPC")
}

struct Clients {
    kv: KvClient<Channel>,
    txn: TxnClient<Channel>,
}

async fn clients(srv: &InProc) -> Clients {
    let ch = channel(srv.grpc_addr.expect("gRPC is on")).await;
    Clients {
        kv: KvClient::new(ch.clone()),
        txn: TxnClient::new(ch),
    }
}

fn start() -> InProc {
    InProc::start(Config::default())
}

async fn set(kv: &mut KvClient<Channel>, pairs: &[(&str, &str)]) {
    kv.set(SetRequest {
        db: 0,
        entries: pairs.iter().map(|(k, v)| kv_pair(k, v)).collect(),
        ttl_ms: None,
    })
    .await
    .expect("set");
}

fn kv_pair(k: &str, v: &str) -> KeyValue {
    kv(k, v)
}

/// (key, Some(value) | None) per requested key.
async fn get(kv: &mut KvClient<Channel>, keys: &[&str]) -> Vec<(String, Option<String>)> {
    let r = kv
        .get(GetRequest {
            db: 0,
            keys: keys.iter().map(|k| b(k)).collect(),
        })
        .await
        .expect("get")
        .into_inner();
    r.results
        .into_iter()
        .map(|g| {
            let key = String::from_utf8_lossy(&g.key).into_owned();
            let v = g
                .found
                .then(|| String::from_utf8_lossy(&g.value).into_owned());
            (key, v)
        })
        .collect()
}

/// The status code of a call (Ok when it succeeded).
fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

fn keys_of(page: &ScanResponse) -> Vec<String> {
    page.entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.key).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_get_delete_are_visible_over_resp_both_ways() {
    let srv = start();
    let mut c = clients(&srv).await;
    let mut resp = srv.client();
    set(&mut c.kv, &[("a", "1"), ("b", "2"), ("a", "3")]).await;
    let a: Option<String> = resp.get("a").expect("GET a");
    assert_eq!(
        a.as_deref(),
        Some("3"),
        "a key given twice keeps its last value"
    );
    let _: () = resp.set("c", "from-resp").expect("SET c");
    assert_eq!(
        get(&mut c.kv, &["a", "c", "missing", "a"]).await,
        vec![
            ("a".into(), Some("3".into())),
            ("c".into(), Some("from-resp".into())),
            ("missing".into(), None),
            ("a".into(), Some("3".into())),
        ]
    );
    let del =
        c.kv.delete(DeleteRequest {
            db: 0,
            keys: vec![b("a"), b("b"), b("missing"), b("a")],
        })
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(del.deleted, 2);
    let n: i64 = resp.exists(&["a", "b", "c"][..]).expect("EXISTS");
    assert_eq!(n, 1, "only c is left");

    // Databases are Redis's: db 3 over gRPC is SELECT 3 over RESP.
    c.kv.set(SetRequest {
        db: 3,
        entries: vec![kv("in3", "x")],
        ttl_ms: None,
    })
    .await
    .expect("set db 3");
    let _: () = redis::cmd("SELECT")
        .arg(3)
        .query(&mut resp)
        .expect("SELECT");
    let v: Option<String> = resp.get("in3").expect("GET in3");
    assert_eq!(v.as_deref(), Some("x"));
    assert_eq!(get(&mut c.kv, &["in3"]).await[0].1, None, "not in db 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_of_a_non_string_is_wrongtype_and_set_replaces_it() {
    let srv = start();
    let mut c = clients(&srv).await;
    let mut resp = srv.client();
    let _: i64 = resp.rpush("list", "x").expect("RPUSH");
    let err =
        c.kv.get(GetRequest {
            db: 0,
            keys: vec![b("list")],
        })
        .await
        .expect_err("WRONGTYPE");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().starts_with("WRONGTYPE"), "{}", err.message());
    set(&mut c.kv, &[("list", "now a string")]).await;
    let t: String = redis::cmd("TYPE")
        .arg("list")
        .query(&mut resp)
        .expect("TYPE");
    assert_eq!(t, "string", "Set replaces any type, like SET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_with_ttl_expires_as_set_px() {
    let srv = start();
    let mut c = clients(&srv).await;
    let mut resp = srv.client();
    c.kv.set(SetRequest {
        db: 0,
        entries: vec![kv("short", "1"), kv("short2", "2")],
        ttl_ms: Some(150),
    })
    .await
    .expect("set with ttl");
    let _: () = resp.set("long", "x").expect("SET long");
    c.kv.set(SetRequest {
        db: 0,
        entries: vec![kv("long", "y")],
        ttl_ms: None,
    })
    .await
    .expect("set without ttl");
    let pttl: i64 = resp.pttl("short").expect("PTTL");
    assert!(pttl > 0 && pttl <= 150, "PTTL {pttl}");
    let pttl: i64 = resp.pttl("long").expect("PTTL");
    assert_eq!(pttl, -1, "no TTL");
    let deadline = Instant::now() + WAIT;
    loop {
        let v: Option<String> = resp.get("short").expect("GET");
        if v.is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "short never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        get(&mut c.kv, &["short2"]).await[0].1,
        None,
        "expired over gRPC too"
    );
    let err =
        c.kv.set(SetRequest {
            db: 0,
            entries: vec![kv("z", "1")],
            ttl_ms: Some(0),
        })
        .await
        .expect_err("ttl 0");
    assert_eq!(err.code(), Code::InvalidArgument);
}

/// A concurrent reader sees each Set of many keys (and each Delete) whole or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_key_set_and_delete_are_atomic_to_readers() {
    const KEYS: usize = 40;
    const ROUNDS: usize = 150;
    let srv = start();
    let c = clients(&srv).await;
    let names: Vec<String> = (0..KEYS).map(|i| format!("atom:{i:02}")).collect();
    let mut writer = c.kv.clone();
    let wnames = names.clone();
    let write = tokio::spawn(async move {
        for round in 0..ROUNDS {
            if round % 3 == 2 {
                let keys = wnames.iter().map(|k| b(k)).collect();
                let r = writer.delete(DeleteRequest { db: 0, keys }).await;
                let deleted = r.expect("delete").into_inner().deleted;
                assert_eq!(deleted, KEYS as u64, "every key existed");
            } else {
                let v = round.to_string();
                let entries = wnames.iter().map(|k| kv(k, &v)).collect();
                let r = writer.set(SetRequest {
                    db: 0,
                    entries,
                    ttl_ms: None,
                });
                r.await.expect("set");
            }
        }
    });
    let mut reader = c.kv.clone();
    let keys: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut seen_values = std::collections::BTreeSet::new();
    let mut reads = 0;
    while !write.is_finished() || reads == 0 {
        let got = get(&mut reader, &keys).await;
        let distinct: std::collections::BTreeSet<Option<String>> =
            got.into_iter().map(|(_, v)| v).collect();
        assert_eq!(distinct.len(), 1, "a torn multi-key write: {distinct:?}");
        seen_values.extend(distinct);
        reads += 1;
        assert!(reads < 1_000_000, "bounded");
    }
    write.await.expect("writer");
    assert!(reads > 0 && !seen_values.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_pages_read_one_snapshot() {
    let srv = start();
    let mut c = clients(&srv).await;
    let mut resp = srv.client();
    let pairs: Vec<(String, String)> = (0..25)
        .map(|i| (format!("p:{i:02}"), format!("v{i}")))
        .collect();
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    set(&mut c.kv, &refs).await;
    set(&mut c.kv, &[("o:1", "outside"), ("q:1", "outside")]).await;
    let _: i64 = resp.hset("p:hash", "f", "v").expect("HSET");

    let prefix = KeySelector {
        selector: Some(Selector::Prefix(b("p:"))),
    };
    let first =
        c.kv.scan(ScanRequest {
            db: 0,
            selector: Some(prefix.clone()),
            limit: 10,
            page_token: String::new(),
        })
        .await
        .expect("page 1")
        .into_inner();
    assert_eq!(
        keys_of(&first),
        pairs[..10].iter().map(|p| p.0.clone()).collect::<Vec<_>>()
    );
    assert!(!first.next_page_token.is_empty());

    // Writes after page 1 are not seen by later pages.
    let _: () = resp.set("p:15", "changed").expect("SET");
    let _: i64 = resp.del("p:20").expect("DEL");
    let _: () = resp.set("p:21a", "new").expect("SET");

    let mut all = first.entries.clone();
    let mut token = first.next_page_token.clone();
    let mut pages = 1;
    while !token.is_empty() {
        let page =
            c.kv.scan(ScanRequest {
                db: 0,
                selector: None,
                limit: 10,
                page_token: token.clone(),
            })
            .await
            .expect("next page")
            .into_inner();
        all.extend(page.entries);
        token = page.next_page_token;
        pages += 1;
        assert!(pages <= 10, "bounded paging");
    }
    let got: Vec<(String, String)> = all
        .iter()
        .map(|e| {
            (
                String::from_utf8_lossy(&e.key).into_owned(),
                String::from_utf8_lossy(&e.value).into_owned(),
            )
        })
        .collect();
    assert_eq!(
        got, pairs,
        "one snapshot: no change, no delete, no insert, no hash"
    );

    // A fresh scan sees the new state; a range selects [start, end).
    let range =
        c.kv.scan(ScanRequest {
            db: 0,
            selector: Some(KeySelector {
                selector: Some(Selector::Range(KeyRange {
                    start: b("p:19"),
                    end: b("p:22"),
                })),
            }),
            limit: 0,
            page_token: String::new(),
        })
        .await
        .expect("range")
        .into_inner();
    assert_eq!(keys_of(&range), ["p:19", "p:21", "p:21a"]);
    assert!(
        range.next_page_token.is_empty(),
        "the whole range fit one page"
    );

    let unknown =
        c.kv.scan(ScanRequest {
            db: 0,
            selector: None,
            limit: 10,
            page_token: format!("{}.{}", "0".repeat(32), "70"),
        })
        .await
        .expect_err("unknown token");
    assert_eq!(unknown.code(), Code::NotFound);
    let malformed =
        c.kv.scan(ScanRequest {
            db: 0,
            selector: None,
            limit: 10,
            page_token: "not a token".into(),
        })
        .await
        .expect_err("malformed token");
    assert_eq!(malformed.code(), Code::InvalidArgument);

    // A follow-up page must not switch to other keys.
    let again =
        c.kv.scan(ScanRequest {
            db: 0,
            selector: Some(prefix.clone()),
            limit: 5,
            page_token: String::new(),
        })
        .await
        .expect("page 1 again")
        .into_inner();
    let other =
        c.kv.scan(ScanRequest {
            db: 0,
            selector: Some(KeySelector {
                selector: Some(Selector::Prefix(b("q:"))),
            }),
            limit: 5,
            page_token: again.next_page_token,
        })
        .await
        .expect_err("selector switch");
    assert_eq!(other.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_reads_own_writes_at_its_snapshot_and_commits_atomically() {
    let srv = start();
    let mut c = clients(&srv).await;
    let mut resp = srv.client();
    let _: () = resp.set("before", "old").expect("SET");
    let _: () = resp.set("gone", "x").expect("SET");
    let t = c
        .txn
        .begin(BeginRequest { db: 0 })
        .await
        .expect("begin")
        .into_inner();
    assert!(t.idle_timeout_ms > 0);
    // Committed after Begin: invisible to the transaction (snapshot read).
    let _: () = resp.set("before", "new").expect("SET");
    c.txn
        .put(PutRequest {
            txn: t.txn.clone(),
            entries: vec![kv("mine", "1"), kv("mine2", "2")],
            ttl_ms: None,
        })
        .await
        .expect("put");
    let pending = c
        .txn
        .delete(TxnDeleteRequest {
            txn: t.txn.clone(),
            keys: vec![b("gone")],
        })
        .await
        .expect("delete")
        .into_inner()
        .pending_writes;
    assert_eq!(pending, 3);
    let got = c
        .txn
        .get(TxnGetRequest {
            txn: t.txn.clone(),
            keys: vec![b("before"), b("mine"), b("gone")],
        })
        .await
        .expect("txn get")
        .into_inner();
    let vals: Vec<Option<&[u8]>> = got
        .results
        .iter()
        .map(|r| r.found.then_some(r.value.as_ref()))
        .collect();
    assert_eq!(vals, [Some(&b"old"[..]), Some(&b"1"[..]), None]);
    let scan = c
        .txn
        .scan(TxnScanRequest {
            txn: t.txn.clone(),
            selector: None,
            limit: 2,
            page_token: String::new(),
        })
        .await
        .expect("txn scan")
        .into_inner();
    assert_eq!(
        keys_of(&scan),
        ["before", "mine"],
        "own writes merged, 'gone' hidden"
    );
    let rest = c
        .txn
        .scan(TxnScanRequest {
            txn: t.txn.clone(),
            selector: None,
            limit: 10,
            page_token: scan.next_page_token,
        })
        .await
        .expect("txn scan page 2")
        .into_inner();
    assert_eq!(keys_of(&rest), ["mine2"]);
    assert!(rest.next_page_token.is_empty());
    let uncommitted: Option<String> = resp.get("mine").expect("GET");
    assert_eq!(uncommitted, None, "buffered until commit");

    let done = c
        .txn
        .commit(CommitRequest { txn: t.txn.clone() })
        .await
        .expect("commit")
        .into_inner();
    assert_eq!(done.written, 3);
    let vals: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&["mine", "mine2", "gone", "before"])
        .query(&mut resp)
        .expect("MGET");
    assert_eq!(
        vals,
        [Some("1".into()), Some("2".into()), None, Some("new".into())]
    );
    let ended = c
        .txn
        .get(TxnGetRequest {
            txn: t.txn,
            keys: vec![b("mine")],
        })
        .await
        .expect_err("handle ended with the commit");
    assert_eq!(ended.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_write_conflict_aborts_naming_the_key() {
    let srv = start();
    let mut c = clients(&srv).await;
    let mut resp = srv.client();
    let begin = |mut tc: TxnClient<Channel>| async move {
        tc.begin(BeginRequest { db: 0 })
            .await
            .expect("begin")
            .into_inner()
            .txn
    };
    let t1 = begin(c.txn.clone()).await;
    let t2 = begin(c.txn.clone()).await;
    for (t, v) in [(&t1, "one"), (&t2, "two")] {
        c.txn
            .put(PutRequest {
                txn: t.clone(),
                entries: vec![kv("other", v), kv("contested", v)],
                ttl_ms: None,
            })
            .await
            .expect("put");
    }
    c.txn
        .commit(CommitRequest { txn: t1 })
        .await
        .expect("first committer wins");
    let err = c
        .txn
        .commit(CommitRequest { txn: t2 })
        .await
        .expect_err("second aborts");
    assert_eq!(err.code(), Code::Aborted);
    assert!(err.message().contains("'contested'"), "{}", err.message());
    let v: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&["contested", "other"])
        .query(&mut resp)
        .expect("MGET");
    assert_eq!(
        v,
        [Some("one".into()), Some("one".into())],
        "nothing of t2 written"
    );

    // A RESP write after the snapshot conflicts too.
    let t3 = begin(c.txn.clone()).await;
    c.txn
        .put(PutRequest {
            txn: t3.clone(),
            entries: vec![kv("r", "txn")],
            ttl_ms: None,
        })
        .await
        .expect("put");
    let _: () = resp.set("r", "resp").expect("SET");
    let err = c
        .txn
        .commit(CommitRequest { txn: t3 })
        .await
        .expect_err("conflict with RESP");
    assert_eq!(err.code(), Code::Aborted);
    let v: Option<String> = resp.get("r").expect("GET");
    assert_eq!(v.as_deref(), Some("resp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_discards_and_ends_the_handle() {
    let srv = start();
    let mut c = clients(&srv).await;
    let mut resp = srv.client();
    let t = c
        .txn
        .begin(BeginRequest { db: 0 })
        .await
        .expect("begin")
        .into_inner()
        .txn;
    c.txn
        .put(PutRequest {
            txn: t.clone(),
            entries: vec![kv("rb", "1")],
            ttl_ms: None,
        })
        .await
        .expect("put");
    c.txn
        .rollback(RollbackRequest { txn: t.clone() })
        .await
        .expect("rollback");
    let v: Option<String> = resp.get("rb").expect("GET");
    assert_eq!(v, None);
    for err in [
        c.txn
            .commit(CommitRequest { txn: t.clone() })
            .await
            .expect_err("commit after rollback"),
        c.txn
            .rollback(RollbackRequest { txn: t })
            .await
            .expect_err("second rollback"),
    ] {
        assert_eq!(err.code(), Code::NotFound);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_txn_expires_and_frees_its_slot() {
    let mut cfg = Config::default();
    cfg.grpc.txn_timeout = Duration::from_secs(2);
    cfg.grpc.max_txns = 1;
    let srv = InProc::start(cfg);
    let mut c = clients(&srv).await;
    let abandoned = c
        .txn
        .begin(BeginRequest { db: 0 })
        .await
        .expect("begin")
        .into_inner();
    assert_eq!(abandoned.idle_timeout_ms, 2000);
    let full = c
        .txn
        .begin(BeginRequest { db: 0 })
        .await
        .expect_err("limit of 1");
    assert_eq!(full.code(), Code::ResourceExhausted);
    let deadline = Instant::now() + WAIT;
    let fresh = loop {
        match c.txn.begin(BeginRequest { db: 0 }).await {
            Ok(r) => break r.into_inner(),
            Err(e) => assert_eq!(e.code(), Code::ResourceExhausted),
        }
        assert!(Instant::now() < deadline, "the abandoned txn never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(fresh.txn, abandoned.txn);
    let err = c
        .txn
        .get(TxnGetRequest {
            txn: abandoned.txn,
            keys: vec![b("k")],
        })
        .await
        .expect_err("expired");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_precise_codes() {
    let mut cfg = Config::default();
    cfg.grpc.max_message_bytes = 64 << 10;
    let srv = InProc::start(cfg);
    let mut c = clients(&srv).await;
    let get_none =
        c.kv.get(GetRequest {
            db: 0,
            keys: vec![],
        })
        .await;
    assert_eq!(code(get_none), Code::InvalidArgument);
    let set_none =
        c.kv.set(SetRequest {
            db: 0,
            entries: vec![],
            ttl_ms: None,
        })
        .await;
    assert_eq!(code(set_none), Code::InvalidArgument);
    let del_none =
        c.kv.delete(DeleteRequest {
            db: 0,
            keys: vec![],
        })
        .await;
    assert_eq!(code(del_none), Code::InvalidArgument);
    let bad_db =
        c.kv.get(GetRequest {
            db: 16,
            keys: vec![b("k")],
        })
        .await;
    assert_eq!(code(bad_db), Code::InvalidArgument);
    let bad_db = c.txn.begin(BeginRequest { db: 1000 }).await;
    assert_eq!(code(bad_db), Code::InvalidArgument);
    let no_txn = c
        .txn
        .get(TxnGetRequest {
            txn: "nope".into(),
            keys: vec![b("k")],
        })
        .await;
    assert_eq!(code(no_txn), Code::NotFound);
    let t = c
        .txn
        .begin(BeginRequest { db: 0 })
        .await
        .expect("begin")
        .into_inner()
        .txn;
    let put_none = c
        .txn
        .put(PutRequest {
            txn: t.clone(),
            entries: vec![],
            ttl_ms: None,
        })
        .await;
    assert_eq!(code(put_none), Code::InvalidArgument);
    let bad_token = c
        .txn
        .scan(TxnScanRequest {
            txn: t,
            selector: None,
            limit: 1,
            page_token: "xyz".into(),
        })
        .await;
    assert_eq!(code(bad_token), Code::InvalidArgument);
    let big =
        c.kv.set(SetRequest {
            db: 0,
            entries: vec![KeyValue {
                key: b("big"),
                value: Bytes::from(vec![b'x'; 128 << 10]),
            }],
            ttl_ms: None,
        })
        .await
        .expect_err("over grpc-max-message-bytes");
    assert_eq!(big.code(), Code::OutOfRange, "{}", big.message());
    assert_eq!(get(&mut c.kv, &["big"]).await[0].1, None, "nothing written");
    // The server is still fine after the refusals.
    set(&mut c.kv, &[("small", "ok")]).await;
    assert_eq!(get(&mut c.kv, &["small"]).await[0].1.as_deref(), Some("ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirepass_requires_a_token() {
    let cfg = Config {
        requirepass: Some("s3cret".into()),
        ..Config::default()
    };
    let srv = InProc::start(cfg);
    let ch = channel(srv.grpc_addr.expect("gRPC on")).await;
    let mut anon = KvClient::new(ch.clone());
    let err = anon
        .get(GetRequest {
            db: 0,
            keys: vec![b("k")],
        })
        .await
        .expect_err("anonymous");
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut anon_txn = TxnClient::new(ch.clone());
    let err = anon_txn
        .begin(BeginRequest { db: 0 })
        .await
        .expect_err("anonymous txn");
    assert_eq!(err.code(), Code::Unauthenticated);
    for (name, value) in [
        ("authorization", "Bearer s3cret"),
        ("x-keel-auth", "s3cret"),
        ("authorization", "Bearer wrong"),
    ] {
        let mut req = Request::new(GetRequest {
            db: 0,
            keys: vec![b("k")],
        });
        req.metadata_mut()
            .insert(name, value.parse().expect("ascii"));
        let r = anon.get(req).await;
        if value.ends_with("wrong") {
            assert_eq!(r.expect_err("wrong password").code(), Code::Unauthenticated);
        } else {
            assert!(r.is_ok(), "{name}: {r:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let srv = start();
    let mut client = ServerReflectionClient::new(channel(srv.grpc_addr.expect("on")).await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .expect("reflection")
        .into_inner();
    let msg = stream.message().await.expect("reply").expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("not a service list: {msg:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["keel.v1.Kv", "keel.v1.Txn"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_keys_bytes_and_calls() {
    let srv = start();
    let mut c = clients(&srv).await;
    let mut resp = srv.client();
    set(&mut c.kv, &[("m1", "abc"), ("m2", "de")]).await;
    let _: () = resp.set("m3", "fghij").expect("SET");
    let _: i64 = resp.sadd("set", "member").expect("SADD");
    let _ = get(&mut c.kv, &["m1"]).await;
    let m =
        c.kv.metrics(MetricsRequest {})
            .await
            .expect("metrics")
            .into_inner();
    assert_eq!(m.keys, 4);
    assert_eq!(m.value_bytes, 3 + 2 + 5, "string values only");
    let count = |name: &str| m.command_counts.get(name).copied().unwrap_or(0);
    assert_eq!(count("/keel.v1.Kv/Set"), 1);
    assert_eq!(count("/keel.v1.Kv/Get"), 1);
    assert_eq!(count("/keel.v1.Kv/Metrics"), 1);
    assert_eq!(count("set"), 1);
    assert_eq!(count("sadd"), 1);
    assert_eq!(m.commands, m.command_counts.values().sum::<u64>());
}

#[test]
fn grpc_can_be_turned_off() {
    let mut cfg = Config::default();
    cfg.grpc.enabled = false;
    let srv = InProc::start(cfg);
    assert_eq!(srv.grpc_addr, None);
    let mut resp = srv.client();
    let pong: String = redis::cmd("PING")
        .query(&mut resp)
        .expect("RESP still serves");
    assert_eq!(pong, "PONG");
}

/// gRPC writes are log entries: after SIGKILL the restarted binary has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_writes_survive_a_kill_through_the_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let bin = spawn_binary(&data, &["--appendfsync", "always"]);
    let addr = bin
        .grpc_addr
        .expect("the startup log names the gRPC address");
    let mut kv = KvClient::new(channel(addr).await);
    set(&mut kv, &[("durable", "yes"), ("also", "1")]).await;
    let mut txn = TxnClient::new(channel(addr).await);
    let t = txn
        .begin(BeginRequest { db: 0 })
        .await
        .expect("begin")
        .into_inner()
        .txn;
    txn.put(PutRequest {
        txn: t.clone(),
        entries: vec![kv_pair("t", "c")],
        ttl_ms: None,
    })
    .await
    .expect("put");
    txn.commit(CommitRequest { txn: t }).await.expect("commit");
    kv.delete(DeleteRequest {
        db: 0,
        keys: vec![b("also")],
    })
    .await
    .expect("delete");
    bin.kill9();
    let bin = spawn_binary(&data, &[]);
    let mut resp = common::connect(bin.addr);
    let v: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&["durable", "also", "t"])
        .query(&mut resp)
        .expect("MGET");
    assert_eq!(v, [Some("yes".into()), None, Some("c".into())]);
}
