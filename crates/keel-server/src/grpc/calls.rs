//! Per-method call counters of the gRPC API (reported by Kv.Metrics beside the RESP
//! command counters). A fixed array indexed by [`Method`]: one relaxed add per call.

use std::sync::atomic::{AtomicU64, Ordering};

/// Every rpc of keel.v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Method {
    KvGet,
    KvSet,
    KvDelete,
    KvScan,
    KvMetrics,
    TxnBegin,
    TxnGet,
    TxnScan,
    TxnPut,
    TxnDelete,
    TxnCommit,
    TxnRollback,
}

const ALL: [Method; 12] = [
    Method::KvGet,
    Method::KvSet,
    Method::KvDelete,
    Method::KvScan,
    Method::KvMetrics,
    Method::TxnBegin,
    Method::TxnGet,
    Method::TxnScan,
    Method::TxnPut,
    Method::TxnDelete,
    Method::TxnCommit,
    Method::TxnRollback,
];

impl Method {
    /// The full method path, as on the wire.
    pub fn path(self) -> &'static str {
        match self {
            Method::KvGet => "/keel.v1.Kv/Get",
            Method::KvSet => "/keel.v1.Kv/Set",
            Method::KvDelete => "/keel.v1.Kv/Delete",
            Method::KvScan => "/keel.v1.Kv/Scan",
            Method::KvMetrics => "/keel.v1.Kv/Metrics",
            Method::TxnBegin => "/keel.v1.Txn/Begin",
            Method::TxnGet => "/keel.v1.Txn/Get",
            Method::TxnScan => "/keel.v1.Txn/Scan",
            Method::TxnPut => "/keel.v1.Txn/Put",
            Method::TxnDelete => "/keel.v1.Txn/Delete",
            Method::TxnCommit => "/keel.v1.Txn/Commit",
            Method::TxnRollback => "/keel.v1.Txn/Rollback",
        }
    }
}

/// Calls per method since start.
#[derive(Debug, Default)]
pub struct CallCounters {
    counts: [AtomicU64; ALL.len()],
}

impl CallCounters {
    /// Counts one call of `m`.
    pub fn count(&self, m: Method) {
        if let Some(c) = self.counts.get(m as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (path, calls) of every method called at least once.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        ALL.iter()
            .zip(&self.counts)
            .map(|(m, c)| (m.path(), c.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}
