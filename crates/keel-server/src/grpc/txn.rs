//! keel.v1.Txn: the engine's optimistic snapshot-isolation transactions
//! (`keel_engine::txn`) behind idle-expiring handles.
//!
//! Begin stores a `Txn` (a storage snapshot plus a write buffer) in the handle table;
//! Get/Scan/Put/Delete lock it briefly; Commit takes it out of the table and sends its
//! writes as one `Op::TxnCommit` through the write funnel, where apply checks every
//! written key's modification index against the snapshot's and aborts on a difference.

use std::sync::Arc;

use keel_engine::txn::{Txn, TxnWrite};
use keel_engine::{Op, Reply};
use keel_proto::v1::txn_server::Txn as TxnApi;
use keel_proto::v1::{
    BeginRequest, BeginResponse, CommitRequest, CommitResponse, GetResponse, GetResult, KeyValue,
    PutRequest, PutResponse, RollbackRequest, RollbackResponse, ScanResponse, TxnDeleteRequest,
    TxnDeleteResponse, TxnGetRequest, TxnScanRequest,
};
use parking_lot::Mutex;
use tonic::{Request, Response, Status};

use super::calls::Method;
use super::selector::Bounds;
use super::status::{self, check_count, check_db, check_ttl, page_size, MAX_TXN_WRITES};
use super::GrpcState;
use crate::clock::unix_now_ms;

/// An open transaction; None once Commit or Rollback took it.
pub type OpenTxn = Mutex<Option<Txn>>;

/// The Txn service.
pub struct TxnService {
    st: Arc<GrpcState>,
}

impl TxnService {
    /// The service over `st`.
    pub fn new(st: Arc<GrpcState>) -> Self {
        TxnService { st }
    }

    fn open(&self, token: &str) -> Result<Arc<OpenTxn>, Status> {
        self.st.txns.get(token).ok_or_else(gone)
    }

    /// Runs `f` on the live transaction under `token`.
    fn with_txn<R>(
        &self,
        token: &str,
        f: impl FnOnce(&mut Txn) -> Result<R, Status>,
    ) -> Result<R, Status> {
        let entry = self.open(token)?;
        let mut guard = entry.lock();
        let txn = guard.as_mut().ok_or_else(gone)?;
        f(txn)
    }
}

fn gone() -> Status {
    Status::not_found("unknown, finished or expired transaction handle")
}

/// Buffers `write` unless that would take the transaction past [`MAX_TXN_WRITES`].
fn check_room(txn: &Txn, adding: usize) -> Result<(), Status> {
    if txn.pending_writes().saturating_add(adding) > MAX_TXN_WRITES {
        return Err(Status::resource_exhausted(format!(
            "a transaction buffers at most {MAX_TXN_WRITES} writes"
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl TxnApi for TxnService {
    async fn begin(&self, req: Request<BeginRequest>) -> Result<Response<BeginResponse>, Status> {
        self.st.calls.count(Method::TxnBegin);
        let db = check_db(req.into_inner().db)?;
        let txn = self.st.engine().begin(db).map_err(status::from_engine)?;
        let snapshot_index = txn.start_index();
        let token = self.st.txns.insert(Mutex::new(Some(txn))).map_err(|e| {
            Status::resource_exhausted(format!(
                "{e}: too many open transactions; commit or roll back some"
            ))
        })?;
        Ok(Response::new(BeginResponse {
            txn: token,
            snapshot_index,
            idle_timeout_ms: u64::try_from(self.st.txns.idle().as_millis()).unwrap_or(u64::MAX),
        }))
    }

    async fn get(&self, req: Request<TxnGetRequest>) -> Result<Response<GetResponse>, Status> {
        self.st.calls.count(Method::TxnGet);
        let r = req.into_inner();
        check_count(r.keys.len(), "keys")?;
        let now = unix_now_ms();
        let results = self.with_txn(&r.txn, |txn| {
            r.keys
                .into_iter()
                .map(|key| {
                    let v = txn.get(&key, now).map_err(status::from_cmd)?;
                    Ok(GetResult {
                        found: v.is_some(),
                        value: v.unwrap_or_default(),
                        key,
                    })
                })
                .collect::<Result<Vec<_>, Status>>()
        })?;
        Ok(Response::new(GetResponse { results }))
    }

    async fn scan(&self, req: Request<TxnScanRequest>) -> Result<Response<ScanResponse>, Status> {
        self.st.calls.count(Method::TxnScan);
        let r = req.into_inner();
        let limit = page_size(r.limit);
        let bounds = Bounds::of(r.selector.as_ref());
        let after = if r.page_token.is_empty() {
            None
        } else {
            Some(status::unhex(&r.page_token)?)
        };
        let now = unix_now_ms();
        let mut rows = self.with_txn(&r.txn, |txn| {
            if bounds.is_empty() {
                return Ok(Vec::new());
            }
            txn.scan(
                bounds.start.as_deref(),
                bounds.end.as_deref(),
                after.as_deref(),
                limit.saturating_add(1),
                now,
            )
            .map_err(status::from_cmd)
        })?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_page_token = match rows.last() {
            Some((last, _)) if more => status::hex(last),
            _ => String::new(),
        };
        Ok(Response::new(ScanResponse {
            entries: rows
                .into_iter()
                .map(|(key, value)| KeyValue { key, value })
                .collect(),
            next_page_token,
        }))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.st.calls.count(Method::TxnPut);
        let r = req.into_inner();
        check_count(r.entries.len(), "entries")?;
        let expire_at = match r.ttl_ms {
            Some(ttl) => Some(unix_now_ms().saturating_add(check_ttl(ttl)?)),
            None => None,
        };
        let pending = self.with_txn(&r.txn, |txn| {
            check_room(txn, r.entries.len())?;
            for e in r.entries {
                txn.put(e.key, e.value, expire_at);
            }
            Ok(txn.pending_writes())
        })?;
        Ok(Response::new(PutResponse {
            pending_writes: pending as u64,
        }))
    }

    async fn delete(
        &self,
        req: Request<TxnDeleteRequest>,
    ) -> Result<Response<TxnDeleteResponse>, Status> {
        self.st.calls.count(Method::TxnDelete);
        let r = req.into_inner();
        check_count(r.keys.len(), "keys")?;
        let pending = self.with_txn(&r.txn, |txn| {
            check_room(txn, r.keys.len())?;
            for k in r.keys {
                txn.delete(k);
            }
            Ok(txn.pending_writes())
        })?;
        Ok(Response::new(TxnDeleteResponse {
            pending_writes: pending as u64,
        }))
    }

    async fn commit(
        &self,
        req: Request<CommitRequest>,
    ) -> Result<Response<CommitResponse>, Status> {
        self.st.calls.count(Method::TxnCommit);
        let token = req.into_inner().txn;
        let entry = self.st.txns.remove(&token).ok_or_else(gone)?;
        let txn = entry.lock().take().ok_or_else(gone)?;
        let (db, start_index, writes) = txn.into_commit().map_err(status::from_engine)?;
        if writes.is_empty() {
            return Ok(Response::new(CommitResponse { written: 0 }));
        }
        let written = writes.len() as u64;
        let grows = writes
            .iter()
            .any(|w| matches!(w.write, TxnWrite::Put { .. }));
        let op = Op::TxnCommit {
            db,
            start_index,
            writes,
        };
        let replies = self
            .st
            .shared
            .coord
            .write(op, grows)
            .await
            .map_err(|r| status::from_reply(&r))?;
        match replies.first() {
            Some(Reply::Ok) => Ok(Response::new(CommitResponse { written })),
            Some(other) => Err(status::from_reply(other)),
            None => Err(Status::internal("commit produced no reply")),
        }
    }

    async fn rollback(
        &self,
        req: Request<RollbackRequest>,
    ) -> Result<Response<RollbackResponse>, Status> {
        self.st.calls.count(Method::TxnRollback);
        let entry = self
            .st
            .txns
            .remove(&req.into_inner().txn)
            .ok_or_else(gone)?;
        entry.lock().take().ok_or_else(gone)?;
        Ok(Response::new(RollbackResponse {}))
    }
}
