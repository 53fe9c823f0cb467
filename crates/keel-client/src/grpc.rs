//! A client for keel's gRPC API (`keel.v1` Kv and Txn) with the RESP client's story:
//! bounded concurrency, timeouts, auth and the same retry rule.
//!
//! Pooling: one tonic `Channel` is a multiplexed HTTP/2 connection that reconnects by
//! itself; [`GrpcOptions::max_concurrent`] bounds the calls in flight on it (the gRPC
//! counterpart of the RESP pool's `max_size`).
//!
//! Retries follow [`crate::retry`]: a call failing with `UNAVAILABLE` (connection
//! refused, reset, server shutting down) is repeated with backoff only when it cannot
//! change data — Get, Scan, Metrics and the reads inside a transaction. Set, Delete and
//! the transaction's writes and Commit are never resent: the first attempt may have been
//! applied.
//!
//! ```no_run
//! # async fn demo() -> keel_client::Result<()> {
//! use keel_client::grpc::{GrpcClient, GrpcOptions};
//!
//! let kv = GrpcClient::connect(GrpcOptions::new("127.0.0.1", 7379)).await?;
//! kv.set(0, vec![(b"a".to_vec(), b"1".to_vec())], None).await?;
//! let got = kv.get(0, vec![b"a".to_vec()]).await?;
//! assert_eq!(got[0].value.as_ref(), b"1");
//!
//! let mut txn = kv.begin(0).await?;
//! txn.put(vec![(b"a".to_vec(), b"2".to_vec())]).await?;
//! txn.commit().await?; // Err(ClientError::Aborted { .. }) on a write-write conflict
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use keel_proto::v1::key_selector::Selector;
use keel_proto::v1::kv_client::KvClient;
use keel_proto::v1::txn_client::TxnClient;
use keel_proto::v1::{
    BeginRequest, CommitRequest, DeleteRequest, GetRequest, KeySelector, KeyValue, MetricsRequest,
    PutRequest, RollbackRequest, ScanRequest, SetRequest, TxnDeleteRequest, TxnGetRequest,
    TxnScanRequest,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

pub use keel_proto::v1::{GetResult, MetricsResponse, ScanResponse};

use crate::{ClientError, Result, RetryPolicy};

/// Where and how to reach the gRPC front-end.
#[derive(Debug, Clone)]
pub struct GrpcOptions {
    /// Host name or IP address.
    pub host: String,
    /// gRPC port (the server's default is 7379).
    pub port: u16,
    /// Password sent as `authorization: Bearer <password>` on every call.
    pub password: Option<String>,
    /// Limit on establishing the connection.
    pub connect_timeout: Duration,
    /// Limit on each call.
    pub request_timeout: Duration,
    /// Most calls in flight at once on the shared connection.
    pub max_concurrent: usize,
    /// Backoff and attempt bound for retried reads.
    pub retry: RetryPolicy,
}

impl GrpcOptions {
    /// Options for `host:port` with defaults for the rest.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        GrpcOptions {
            host: host.into(),
            port,
            password: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_concurrent: 64,
            retry: RetryPolicy::default(),
        }
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Adds the auth metadata to every call.
#[derive(Debug, Clone)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> std::result::Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

type Svc = InterceptedService<Channel, Auth>;

/// A connected gRPC client; clones share the connection.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    kv: KvClient<Svc>,
    txn: TxnClient<Svc>,
    retry: RetryPolicy,
    addr: String,
}

fn status_error(op: &'static str, s: Status) -> ClientError {
    if s.code() == Code::Aborted {
        return ClientError::Aborted {
            message: s.message().to_string(),
        };
    }
    ClientError::Grpc {
        op,
        code: format!("{:?}", s.code()),
        message: s.message().to_string(),
    }
}

fn kv_pairs(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<KeyValue> {
    entries
        .into_iter()
        .map(|(k, v)| KeyValue {
            key: Bytes::from(k),
            value: Bytes::from(v),
        })
        .collect()
}

fn keys(keys: Vec<Vec<u8>>) -> Vec<Bytes> {
    keys.into_iter().map(Bytes::from).collect()
}

fn ttl_ms(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn prefix_selector(prefix: Option<Vec<u8>>) -> Option<KeySelector> {
    prefix.map(|p| KeySelector {
        selector: Some(Selector::Prefix(Bytes::from(p))),
    })
}

impl GrpcClient {
    /// Connects (eagerly, so a wrong port fails here) with `opts`.
    pub async fn connect(opts: GrpcOptions) -> Result<GrpcClient> {
        let addr = opts.addr();
        let auth = match &opts.password {
            Some(p) => Some(
                format!("Bearer {p}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| {
                        ClientError::InvalidRequest("password is not valid ASCII metadata".into())
                    })?,
            ),
            None => None,
        };
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ClientError::InvalidRequest(format!("bad address {addr}: {e}")))?
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            .concurrency_limit(opts.max_concurrent.max(1))
            .tcp_nodelay(true);
        let channel = endpoint.connect().await.map_err(|e| ClientError::Connect {
            addr: addr.clone(),
            source: std::io::Error::other(e),
        })?;
        let interceptor = Auth(auth);
        Ok(GrpcClient {
            kv: KvClient::with_interceptor(channel.clone(), interceptor.clone()),
            txn: TxnClient::with_interceptor(channel, interceptor),
            retry: opts.retry,
            addr,
        })
    }

    /// The server address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Runs a read call, resending it on UNAVAILABLE per the retry policy.
    async fn read<T, F, Fut>(&self, op: &'static str, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) if s.code() == Code::Unavailable && attempt < self.retry.max_attempts => {
                    attempt += 1;
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                }
                Err(s) => return Err(status_error(op, s)),
            }
        }
    }

    /// Reads `keys` of database `db` at one snapshot; one result per key, in order.
    pub async fn get(&self, db: u32, keys_: Vec<Vec<u8>>) -> Result<Vec<GetResult>> {
        let req = GetRequest {
            db,
            keys: keys(keys_),
        };
        let r = self
            .read("Kv.Get", || {
                let mut c = self.kv.clone();
                let req = req.clone();
                async move { c.get(req).await }
            })
            .await?;
        Ok(r.results)
    }

    /// Writes every entry atomically, with an optional TTL for all of them; returns how
    /// many were written. Never retried.
    pub async fn set(
        &self,
        db: u32,
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        ttl: Option<Duration>,
    ) -> Result<u64> {
        let req = SetRequest {
            db,
            entries: kv_pairs(entries),
            ttl_ms: ttl_ms(ttl),
        };
        let mut c = self.kv.clone();
        let r = c.set(req).await.map_err(|s| status_error("Kv.Set", s))?;
        Ok(r.into_inner().written)
    }

    /// Deletes `keys` atomically; returns how many existed. Never retried.
    pub async fn delete(&self, db: u32, keys_: Vec<Vec<u8>>) -> Result<u64> {
        let req = DeleteRequest {
            db,
            keys: keys(keys_),
        };
        let mut c = self.kv.clone();
        let r = c
            .delete(req)
            .await
            .map_err(|s| status_error("Kv.Delete", s))?;
        Ok(r.into_inner().deleted)
    }

    /// One page of a scan: pass `page_token` from the previous page ("" first).
    pub async fn scan_page(
        &self,
        db: u32,
        prefix: Option<Vec<u8>>,
        limit: u32,
        page_token: String,
    ) -> Result<ScanResponse> {
        let req = ScanRequest {
            db,
            selector: prefix_selector(prefix),
            limit,
            page_token,
        };
        self.read("Kv.Scan", || {
            let mut c = self.kv.clone();
            let req = req.clone();
            async move { c.scan(req).await }
        })
        .await
    }

    /// Server counters.
    pub async fn metrics(&self) -> Result<MetricsResponse> {
        self.read("Kv.Metrics", || {
            let mut c = self.kv.clone();
            async move { c.metrics(MetricsRequest {}).await }
        })
        .await
    }

    /// Starts a transaction on database `db` at a fresh snapshot.
    pub async fn begin(&self, db: u32) -> Result<Transaction> {
        let mut c = self.txn.clone();
        let r = c
            .begin(BeginRequest { db })
            .await
            .map_err(|s| status_error("Txn.Begin", s))?
            .into_inner();
        Ok(Transaction {
            client: self.clone(),
            handle: r.txn,
            snapshot_index: r.snapshot_index,
        })
    }
}

/// An open transaction; end it with [`Transaction::commit`] or
/// [`Transaction::rollback`] (an abandoned one expires on the server).
#[derive(Debug)]
pub struct Transaction {
    client: GrpcClient,
    handle: String,
    snapshot_index: u64,
}

impl Transaction {
    /// The log index the transaction's snapshot reflects.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    /// Reads keys at the snapshot, seeing this transaction's own writes.
    pub async fn get(&self, keys_: Vec<Vec<u8>>) -> Result<Vec<GetResult>> {
        let req = TxnGetRequest {
            txn: self.handle.clone(),
            keys: keys(keys_),
        };
        let r = self
            .client
            .read("Txn.Get", || {
                let mut c = self.client.txn.clone();
                let req = req.clone();
                async move { c.get(req).await }
            })
            .await?;
        Ok(r.results)
    }

    /// One page of keys at the snapshot merged with own writes.
    pub async fn scan_page(
        &self,
        prefix: Option<Vec<u8>>,
        limit: u32,
        page_token: String,
    ) -> Result<ScanResponse> {
        let req = TxnScanRequest {
            txn: self.handle.clone(),
            selector: prefix_selector(prefix),
            limit,
            page_token,
        };
        self.client
            .read("Txn.Scan", || {
                let mut c = self.client.txn.clone();
                let req = req.clone();
                async move { c.scan(req).await }
            })
            .await
    }

    /// Buffers writes; returns the number of distinct keys written so far.
    pub async fn put(&mut self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<u64> {
        self.put_with_ttl(entries, None).await
    }

    /// Buffers writes that expire `ttl` after this call.
    pub async fn put_with_ttl(
        &mut self,
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        ttl: Option<Duration>,
    ) -> Result<u64> {
        let req = PutRequest {
            txn: self.handle.clone(),
            entries: kv_pairs(entries),
            ttl_ms: ttl_ms(ttl),
        };
        let mut c = self.client.txn.clone();
        let r = c.put(req).await.map_err(|s| status_error("Txn.Put", s))?;
        Ok(r.into_inner().pending_writes)
    }

    /// Buffers deletions; returns the number of distinct keys written so far.
    pub async fn delete(&mut self, keys_: Vec<Vec<u8>>) -> Result<u64> {
        let req = TxnDeleteRequest {
            txn: self.handle.clone(),
            keys: keys(keys_),
        };
        let mut c = self.client.txn.clone();
        let r = c
            .delete(req)
            .await
            .map_err(|s| status_error("Txn.Delete", s))?;
        Ok(r.into_inner().pending_writes)
    }

    /// Applies the buffered writes atomically; `Err(ClientError::Aborted)` names the
    /// conflicting key when another commit changed it after the snapshot.
    pub async fn commit(self) -> Result<u64> {
        let mut c = self.client.txn.clone();
        let r = c
            .commit(CommitRequest { txn: self.handle })
            .await
            .map_err(|s| status_error("Txn.Commit", s))?;
        Ok(r.into_inner().written)
    }

    /// Drops the buffered writes.
    pub async fn rollback(self) -> Result<()> {
        let mut c = self.client.txn.clone();
        c.rollback(RollbackRequest { txn: self.handle })
            .await
            .map_err(|s| status_error("Txn.Rollback", s))?;
        Ok(())
    }
}
