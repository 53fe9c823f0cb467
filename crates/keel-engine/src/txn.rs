//! Optimistic snapshot-isolation transactions over string keys, for the gRPC API.
//!
//! A transaction reads at the storage snapshot taken by `Engine::begin` and buffers its
//! writes. Commit becomes one log entry (`Op::TxnCommit`) carrying, per written key, the
//! modification index the key had in the snapshot (or its absence). Apply compares that
//! with the key's current record: any difference means a later commit wrote the key, and
//! the entry fails with `ABORTED` naming the key, writing nothing. The check needs no
//! state beyond the log entry and the data, so every replica decides the same way.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use keel_storage::{Direction, ScanRange};

use crate::error::{fail, CmdResult, Result};
use crate::exec::Exec;
use crate::keys;
use crate::kv::{KvRead, SnapshotReader};
use crate::meta::{Body, Meta};
use crate::reply::errors;

/// A buffered write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnWrite {
    /// Set a string value, with an optional absolute expiry (ms).
    Put {
        /// The value.
        value: Bytes,
        /// Absolute expiry in ms since the epoch.
        expire_at: Option<u64>,
    },
    /// Delete the key.
    Delete,
}

/// One written key as it travels in the commit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnKeyWrite {
    /// The user key.
    pub key: Bytes,
    /// The key's modification index in the transaction's snapshot (None = absent).
    pub expected: Option<u64>,
    /// What to write.
    pub write: TxnWrite,
}

/// An open transaction.
pub struct Txn {
    reader: SnapshotReader,
    db: u8,
    start_index: u64,
    writes: BTreeMap<Bytes, TxnWrite>,
}

impl std::fmt::Debug for Txn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("db", &self.db)
            .field("start_index", &self.start_index)
            .field("writes", &self.writes.len())
            .finish()
    }
}

impl Txn {
    /// Starts a transaction on `reader` (a fresh snapshot) in database `db`.
    pub(crate) fn new(reader: SnapshotReader, db: u8, start_index: u64) -> Self {
        Txn {
            reader,
            db,
            start_index,
            writes: BTreeMap::new(),
        }
    }

    /// The log index the snapshot reflects.
    pub fn start_index(&self) -> u64 {
        self.start_index
    }

    /// The database.
    pub fn db(&self) -> u8 {
        self.db
    }

    /// Number of buffered writes.
    pub fn pending_writes(&self) -> usize {
        self.writes.len()
    }

    /// Reads `key` as of the snapshot, seeing this transaction's own writes.
    pub fn get(&self, key: &[u8], now_ms: u64) -> CmdResult<Option<Bytes>> {
        match self.writes.get(key) {
            Some(TxnWrite::Put { value, expire_at }) => {
                Ok((!expire_at.is_some_and(|at| at <= now_ms)).then(|| value.clone()))
            }
            Some(TxnWrite::Delete) => Ok(None),
            None => self.snapshot_string(key, now_ms),
        }
    }

    fn snapshot_string(&self, key: &[u8], now_ms: u64) -> CmdResult<Option<Bytes>> {
        let mk = keys::meta_key(self.db, key);
        let Some(raw) = self.reader.get(&mk)? else {
            return Ok(None);
        };
        let meta = Meta::decode(&mk, raw)?;
        if meta.is_expired(now_ms) {
            return Ok(None);
        }
        match meta.body {
            Body::String(v) => Ok(Some(v)),
            Body::Collection { .. } => fail(errors::WRONGTYPE),
        }
    }

    /// Up to `limit` string keys and values in `[start, end)` (user keys; None = open)
    /// strictly after `after`, in key order, merging the snapshot with own writes. Keys
    /// holding other types are skipped.
    pub fn scan(
        &self,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
        after: Option<&[u8]>,
        limit: usize,
        now_ms: u64,
    ) -> CmdResult<Vec<(Bytes, Bytes)>> {
        let lo_user: Bound<&[u8]> = match (after, start) {
            (Some(a), Some(s)) if a >= s => Bound::Excluded(a),
            (Some(a), None) => Bound::Excluded(a),
            (_, Some(s)) => Bound::Included(s),
            (None, None) => Bound::Unbounded,
        };
        let hi_user: Bound<&[u8]> = end.map_or(Bound::Unbounded, Bound::Excluded);
        let to_storage = |b: Bound<&[u8]>| match b {
            Bound::Included(k) => Bound::Included(keys::meta_key(self.db, k)),
            Bound::Excluded(k) => Bound::Excluded(keys::meta_key(self.db, k)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let db_range = keys::meta_range(self.db);
        let range = ScanRange {
            start: match to_storage(lo_user) {
                Bound::Unbounded => db_range.start.clone(),
                b => b,
            },
            end: match to_storage(hi_user) {
                Bound::Unbounded => db_range.end.clone(),
                b => b,
            },
        };
        let mut own = self.writes.range::<[u8], _>((lo_user, hi_user)).peekable();
        let mut base = self.reader.scan(range, Direction::Forward).peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            let base_key = match base.peek() {
                Some(Ok((k, _))) => keys::user_key_of_meta(self.db, k).map(Bytes::copy_from_slice),
                Some(Err(_)) => {
                    if let Some(Err(e)) = base.next() {
                        return Err(e.into());
                    }
                    continue;
                }
                None => None,
            };
            let own_key = own.peek().map(|(k, _)| (*k).clone());
            let take_own = match (&base_key, &own_key) {
                (None, None) => break,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(b), Some(o)) => {
                    if b == o {
                        base.next();
                        true
                    } else {
                        o < b
                    }
                }
            };
            if take_own {
                if let Some((k, TxnWrite::Put { value, expire_at })) = own.next() {
                    if !expire_at.is_some_and(|at| at <= now_ms) {
                        out.push((k.clone(), value.clone()));
                    }
                }
            } else if let Some(Ok((sk, raw))) = base.next() {
                let meta = Meta::decode(&sk, raw)?;
                if let (false, Body::String(v), Some(k)) =
                    (meta.is_expired(now_ms), meta.body, base_key)
                {
                    out.push((k, v));
                }
            }
        }
        Ok(out)
    }

    /// Buffers a put.
    pub fn put(&mut self, key: Bytes, value: Bytes, expire_at: Option<u64>) {
        self.writes.insert(key, TxnWrite::Put { value, expire_at });
    }

    /// Buffers a delete.
    pub fn delete(&mut self, key: Bytes) {
        self.writes.insert(key, TxnWrite::Delete);
    }

    /// The commit's content: each written key with its snapshot modification index.
    pub fn into_commit(self) -> Result<(u8, u64, Vec<TxnKeyWrite>)> {
        let mut out = Vec::with_capacity(self.writes.len());
        for (key, write) in self.writes {
            let raw = self.reader.get(&keys::meta_key(self.db, &key))?;
            out.push(TxnKeyWrite {
                expected: raw.as_deref().and_then(Meta::mod_index_of),
                key,
                write,
            });
        }
        Ok((self.db, self.start_index, out))
    }
}

/// Applies a transaction commit inside the apply loop: all writes, or an ABORTED error
/// naming the first conflicting key and no write at all. Each write raises the keyspace
/// event SET or DEL would (`set`, `del`), as MIGRATE's deletions do in Redis.
pub fn apply_commit(ex: &mut Exec, db: u8, writes: &[TxnKeyWrite]) -> CmdResult<()> {
    for w in writes {
        let current = ex.get(&keys::meta_key(db, &w.key))?;
        let current = current.as_deref().and_then(Meta::mod_index_of);
        if current != w.expected {
            return fail(format!(
                "ABORTED write-write conflict on key '{}'",
                String::from_utf8_lossy(&w.key)
            ));
        }
    }
    for w in writes {
        let old = ex.meta_in(db, &w.key)?;
        match &w.write {
            TxnWrite::Put { value, expire_at } => {
                if let Some(o) = &old {
                    if o.version().is_some() {
                        ex.delete_key_in(db, &w.key, o)?;
                    }
                }
                let mut meta = Meta::string(value.clone());
                meta.expire_at = *expire_at;
                let old_str = old.as_ref().filter(|o| o.version().is_none());
                ex.put_meta_in(db, &w.key, &meta, old_str)?;
                ex.notify_in(db, '$', "set", &w.key);
            }
            TxnWrite::Delete => {
                if let Some(o) = old {
                    ex.delete_key_in(db, &w.key, &o)?;
                    ex.notify_in(db, 'g', "del", &w.key);
                }
            }
        }
    }
    Ok(())
}
