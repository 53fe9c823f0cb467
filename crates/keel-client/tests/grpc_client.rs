//! The library's gRPC client against an in-process server: atomic writes, paging,
//! transactions with conflicts, auth errors.

mod common;

use common::InProc;
use keel_client::grpc::{GrpcClient, GrpcOptions};
use keel_client::ClientError;
use keel_server::Config;

fn opts(s: &InProc) -> GrpcOptions {
    let port = s.grpc_addr.expect("gRPC enabled").port();
    GrpcOptions::new("127.0.0.1", port)
}

/// Runs `f` on a runtime that is shut down before the server: the gRPC channel's
/// connection task ends with it, so the server's drain does not wait for it.
fn block_on<F: std::future::Future<Output = ()>>(f: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(f);
}

fn kv(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
    (k.as_bytes().to_vec(), v.as_bytes().to_vec())
}

#[test]
fn kv_calls_and_paging() {
    let s = InProc::start_default();
    block_on(async {
        let c = GrpcClient::connect(opts(&s)).await.expect("connect");
        let entries: Vec<_> = (0..25)
            .map(|i| kv(&format!("p:{i:02}"), &i.to_string()))
            .collect();
        assert_eq!(c.set(0, entries, None).await.expect("set"), 25);
        let got = c
            .get(0, vec![b"p:07".to_vec(), b"nope".to_vec()])
            .await
            .expect("get");
        assert_eq!(got.len(), 2);
        assert!(got[0].found && got[0].value.as_ref() == b"7");
        assert!(!got[1].found);
        let mut token = String::new();
        let mut seen = Vec::new();
        for _ in 0..20 {
            let page = c
                .scan_page(0, Some(b"p:".to_vec()), 10, token)
                .await
                .expect("scan");
            assert!(page.entries.len() <= 10);
            seen.extend(page.entries.into_iter().map(|e| e.key));
            token = page.next_page_token;
            if token.is_empty() {
                break;
            }
        }
        assert_eq!(seen.len(), 25);
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "key order");
        assert_eq!(
            c.delete(0, vec![b"p:00".to_vec(), b"nope".to_vec()])
                .await
                .expect("del"),
            1
        );
        let m = c.metrics().await.expect("metrics");
        assert_eq!(m.keys, 24);
    });
}

#[test]
fn second_committer_is_aborted_naming_the_key() {
    let s = InProc::start_default();
    block_on(async {
        let c = GrpcClient::connect(opts(&s)).await.expect("connect");
        c.set(0, vec![kv("k", "0")], None).await.expect("set");
        let mut t1 = c.begin(0).await.expect("begin");
        let mut t2 = c.begin(0).await.expect("begin");
        t1.put(vec![kv("k", "1")]).await.expect("put");
        t2.put(vec![kv("k", "2")]).await.expect("put");
        // Reads inside a transaction see its own writes.
        let own = t2.get(vec![b"k".to_vec()]).await.expect("get");
        assert_eq!(own[0].value.as_ref(), b"2");
        assert_eq!(t1.commit().await.expect("first commit wins"), 1);
        match t2.commit().await {
            Err(ClientError::Aborted { message }) => assert!(message.contains('k'), "{message}"),
            other => panic!("{other:?}"),
        }
        let now = c.get(0, vec![b"k".to_vec()]).await.expect("get");
        assert_eq!(now[0].value.as_ref(), b"1");
        let t3 = c.begin(0).await.expect("begin");
        t3.rollback().await.expect("rollback");
    });
}

#[test]
fn password_goes_in_metadata() {
    let s = InProc::start(Config {
        requirepass: Some("pw".into()),
        ..Config::default()
    });
    block_on(async {
        let c = GrpcClient::connect(opts(&s)).await.expect("connect");
        match c.get(0, vec![b"a".to_vec()]).await {
            Err(ClientError::Grpc { code, .. }) => assert_eq!(code, "Unauthenticated"),
            other => panic!("{other:?}"),
        }
        let mut o = opts(&s);
        o.password = Some("pw".into());
        let c = GrpcClient::connect(o).await.expect("connect");
        assert!(c.get(0, vec![b"a".to_vec()]).await.is_ok());
    });
}
