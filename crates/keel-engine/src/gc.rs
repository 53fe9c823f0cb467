//! Background collection of orphaned collection data.
//!
//! DEL/UNLINK, overwrites, RENAME and FLUSH* drop a collection in O(1) by removing its
//! metadata and queueing a G entry for its (db, key, version). The sub-keys under that
//! version (S and Z prefixes) are then unreachable: no metadata names the version and
//! versions are never reused. [`gc_step`] deletes them a bounded number at a time.
//!
//! It writes straight to storage, outside the log: orphans are invisible to every
//! command, so when (or whether) a replica collects them changes no reply, and each
//! replica collects at its own pace. Snapshots taken before a step keep seeing the old
//! sub-keys until they are dropped (the storage engine's MVCC GC reclaims them then).

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use keel_storage::{Direction, ScanRange, Storage, WriteBatch, WriteOptions};

use crate::error::Result;
use crate::keys;

/// What one [`gc_step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcProgress {
    /// Sub-keys deleted.
    pub deleted: usize,
    /// Queue entries finished (their ranges emptied and the entry removed).
    pub finished: usize,
    /// True when the queue still holds entries after this step.
    pub more: bool,
}

/// Deletes up to `max_keys` orphaned sub-keys, oldest queue entries first, and removes
/// each queue entry whose ranges are empty. Each step is one storage batch.
pub fn gc_step(store: &Arc<dyn Storage>, max_keys: usize) -> Result<GcProgress> {
    let mut progress = GcProgress::default();
    let mut batch = WriteBatch::new();
    let mut budget = max_keys.max(1);
    let mut after: Option<Bytes> = None;
    loop {
        let range = ScanRange {
            start: match &after {
                Some(k) => Bound::Excluded(k.clone()),
                None => Bound::Included(Bytes::from_static(&[keys::GC_QUEUE])),
            },
            end: Bound::Excluded(Bytes::from_static(&[keys::GC_QUEUE + 1])),
        };
        let Some(item) = store.scan(range, Direction::Forward).next() else {
            break;
        };
        let (gk, _) = item?;
        after = Some(gk.clone());
        if budget == 0 {
            progress.more = true;
            break;
        }
        let Some(version) = keys::parse_gc_key(&gk) else {
            // Not a queue entry we wrote: drop it rather than loop on it forever.
            batch.delete(gk);
            continue;
        };
        let mut emptied = true;
        for tag in [keys::SUB, keys::ZSCORE_IDX] {
            let prefix = keys::sub_prefix(tag, 0, b"", version);
            let mut n = 0;
            for item in store.scan(ScanRange::prefix(prefix), Direction::Forward) {
                let (k, _) = item?;
                if n == budget {
                    emptied = false;
                    break;
                }
                batch.delete(k);
                n += 1;
            }
            budget -= n;
            progress.deleted += n;
            if !emptied {
                break;
            }
        }
        if emptied {
            batch.delete(gk);
            progress.finished += 1;
        } else {
            progress.more = true;
            break;
        }
    }
    if !batch.is_empty() {
        store.write(batch, WriteOptions::DEFAULT)?;
    }
    Ok(progress)
}
