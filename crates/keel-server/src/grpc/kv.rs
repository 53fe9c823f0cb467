//! keel.v1.Kv: Get on one snapshot, Set and Delete as one log entry each, Scan over a
//! server-held snapshot with paging tokens, Metrics.
//!
//! Writes become ordinary Redis commands in the log (`MSET`, `SET … PX` inside one
//! `Op::Multi`, `DEL`), so they are replayed, replicated and seen by WATCH, keyspace
//! notifications and RESP readers exactly like the same commands sent over RESP.

use std::sync::Arc;

use bytes::Bytes;
use keel_engine::keyspace_stats::keyspace_stats;
use keel_engine::{Op, Reply};
use keel_proto::v1::kv_server::Kv;
use keel_proto::v1::{
    DeleteRequest, DeleteResponse, GetRequest, GetResponse, GetResult, KeySelector, KeyValue,
    MetricsRequest, MetricsResponse, ScanRequest, ScanResponse, SetRequest, SetResponse,
};
use tonic::{Request, Response, Status};

use super::calls::Method;
use super::selector::Bounds;
use super::status::{self, check_count, check_db, check_ttl, page_size};
use super::{GrpcState, ScanSnapshot};
use crate::clock::unix_now_ms;

/// The Kv service.
pub struct KvService {
    st: Arc<GrpcState>,
}

impl KvService {
    /// The service over `st`.
    pub fn new(st: Arc<GrpcState>) -> Self {
        KvService { st }
    }
}

/// Separates scan ids from the key position in a Kv.Scan page token.
const TOKEN_SEP: char = '.';

fn ok_reply(replies: &[Reply]) -> Result<&Reply, Status> {
    let first = replies
        .first()
        .ok_or_else(|| Status::internal("write produced no reply"))?;
    match replies.iter().find(|r| matches!(r, Reply::Error(_))) {
        Some(err) => Err(status::from_reply(err)),
        None => Ok(first),
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        self.st.calls.count(Method::KvGet);
        let r = req.into_inner();
        let db = check_db(r.db)?;
        check_count(r.keys.len(), "keys")?;
        // A read-only transaction is exactly a typed multi-get on one snapshot.
        let snap = self.st.engine().begin(db).map_err(status::from_engine)?;
        let now = unix_now_ms();
        let access = self.st.engine().access();
        let results = r
            .keys
            .into_iter()
            .map(|key| {
                // Counted as an access like a RESP GET, so LRU/LFU eviction sees gRPC use.
                access.touch(db, &key, now);
                let v = snap.get(&key, now).map_err(status::from_cmd)?;
                Ok(GetResult {
                    found: v.is_some(),
                    value: v.unwrap_or_default(),
                    key,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Response::new(GetResponse { results }))
    }

    async fn set(&self, req: Request<SetRequest>) -> Result<Response<SetResponse>, Status> {
        self.st.calls.count(Method::KvSet);
        let r = req.into_inner();
        let db = check_db(r.db)?;
        check_count(r.entries.len(), "entries")?;
        let written = r.entries.len() as u64;
        let op = match r.ttl_ms {
            None => {
                let mut args = Vec::with_capacity(1 + 2 * r.entries.len());
                args.push(Bytes::from_static(b"MSET"));
                for e in r.entries {
                    args.push(e.key);
                    args.push(e.value);
                }
                Op::Command { db, args }
            }
            Some(ttl) => {
                let ttl = Bytes::from(check_ttl(ttl)?.to_string());
                let cmds = r
                    .entries
                    .into_iter()
                    .map(|e| {
                        let args = vec![
                            Bytes::from_static(b"SET"),
                            e.key,
                            e.value,
                            Bytes::from_static(b"PX"),
                            ttl.clone(),
                        ];
                        (db, args)
                    })
                    .collect();
                Op::Multi { cmds }
            }
        };
        let replies = self
            .st
            .shared
            .coord
            .write(op, true)
            .await
            .map_err(|r| status::from_reply(&r))?;
        ok_reply(&replies)?;
        Ok(Response::new(SetResponse { written }))
    }

    async fn delete(
        &self,
        req: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        self.st.calls.count(Method::KvDelete);
        let r = req.into_inner();
        let db = check_db(r.db)?;
        check_count(r.keys.len(), "keys")?;
        let mut args = Vec::with_capacity(1 + r.keys.len());
        args.push(Bytes::from_static(b"DEL"));
        args.extend(r.keys);
        let replies = self
            .st
            .shared
            .coord
            .write(Op::Command { db, args }, false)
            .await
            .map_err(|r| status::from_reply(&r))?;
        match ok_reply(&replies)? {
            Reply::Int(n) => Ok(Response::new(DeleteResponse {
                deleted: u64::try_from(*n).unwrap_or(0),
            })),
            other => Err(status::from_reply(other)),
        }
    }

    async fn scan(&self, req: Request<ScanRequest>) -> Result<Response<ScanResponse>, Status> {
        self.st.calls.count(Method::KvScan);
        let r = req.into_inner();
        let limit = page_size(r.limit);
        let (id, snap, after) = if r.page_token.is_empty() {
            let db = check_db(r.db)?;
            let txn = self.st.engine().begin(db).map_err(status::from_engine)?;
            let snap = ScanSnapshot {
                txn,
                db: r.db,
                selector: r.selector.clone(),
                bounds: Bounds::of(r.selector.as_ref()),
                now_ms: unix_now_ms(),
            };
            (None, Arc::new(snap), None)
        } else {
            let (id, pos) = r
                .page_token
                .split_once(TOKEN_SEP)
                .ok_or_else(|| Status::invalid_argument("malformed page_token"))?;
            let after = status::unhex(pos)?;
            let snap = self.st.scans.get(id).ok_or_else(|| {
                Status::not_found(
                    "unknown or expired page_token: start the scan again without a token",
                )
            })?;
            check_same_scan(&snap, r.db, r.selector.as_ref())?;
            (Some(id.to_string()), snap, Some(after))
        };
        let mut rows = if snap.bounds.is_empty() {
            Vec::new()
        } else {
            snap.txn
                .scan(
                    snap.bounds.start.as_deref(),
                    snap.bounds.end.as_deref(),
                    after.as_deref(),
                    limit.saturating_add(1),
                    snap.now_ms,
                )
                .map_err(status::from_cmd)?
        };
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_page_token = match (more, rows.last(), id) {
            (true, Some((last, _)), Some(id)) => format!("{id}{TOKEN_SEP}{}", status::hex(last)),
            (true, Some((last, _)), None) => {
                let last = status::hex(last);
                let id = self.st.scans.insert_arc(snap).map_err(|e| {
                    Status::resource_exhausted(format!(
                        "{e}: too many open scans; finish or abandon some (they expire when idle)"
                    ))
                })?;
                format!("{id}{TOKEN_SEP}{last}")
            }
            (_, _, id) => {
                // The last page: the snapshot is released now rather than at expiry.
                if let Some(id) = id {
                    self.st.scans.remove(&id);
                }
                String::new()
            }
        };
        let entries = rows
            .into_iter()
            .map(|(key, value)| KeyValue { key, value })
            .collect();
        Ok(Response::new(ScanResponse {
            entries,
            next_page_token,
        }))
    }

    async fn metrics(
        &self,
        _req: Request<MetricsRequest>,
    ) -> Result<Response<MetricsResponse>, Status> {
        self.st.calls.count(Method::KvMetrics);
        let ks = keyspace_stats(self.st.engine(), unix_now_ms()).map_err(status::from_engine)?;
        let mut command_counts = std::collections::HashMap::new();
        let mut commands = 0u64;
        for (name, calls, ..) in self.st.shared.cmd_stats.snapshot() {
            if calls > 0 {
                command_counts.insert(name.to_string(), calls);
                commands += calls;
            }
        }
        for (path, calls) in self.st.calls.snapshot() {
            command_counts.insert(path.to_string(), calls);
            commands += calls;
        }
        Ok(Response::new(MetricsResponse {
            keys: ks.keys,
            value_bytes: ks.string_value_bytes,
            commands,
            command_counts,
        }))
    }
}

/// A follow-up page must name the same keys as the first call, or leave them out.
fn check_same_scan(
    snap: &ScanSnapshot,
    db: u32,
    selector: Option<&KeySelector>,
) -> Result<(), Status> {
    let db_ok = db == 0 || db == snap.db;
    let sel_ok = selector.is_none_or(|s| s.selector.is_none() || Some(s) == snap.selector.as_ref());
    if db_ok && sel_ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(
            "db and selector of a follow-up page must be empty or match the first call",
        ))
    }
}
