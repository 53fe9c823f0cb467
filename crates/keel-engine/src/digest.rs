//! A digest of the logical keyspace (what clients can observe), like Redis's DEBUG
//! DIGEST: equal on two stores exactly when they hold the same keys, types, values,
//! members and expiry times. Replaying one log on any storage engine must give the same
//! digest; orphaned sub-keys awaiting GC and internal records do not count.

use keel_storage::{Direction, Snapshot};

use crate::error::{EngineError, Result};
use crate::keys;
use crate::kv::{KvRead, SnapshotReader};
use crate::meta::{Body, Meta};
use crate::types::list::dec_index;
use crate::types::list_chunk;

/// 64-bit FNV-1a over a stream of length-prefixed fields.
#[derive(Debug, Clone)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn field(&mut self, bytes: &[u8]) {
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Digest of every live key of every database at `now_ms` (expired keys excluded).
pub fn digest(snap: Box<dyn Snapshot>, now_ms: u64) -> Result<u64> {
    let reader = SnapshotReader::new(snap);
    let mut h = Fnv::new();
    for item in reader.scan(keys::all_meta_range(), Direction::Forward) {
        let (mk, raw) = item?;
        let meta = Meta::decode(&mk, raw)?;
        if meta.is_expired(now_ms) {
            continue;
        }
        h.field(&mk);
        h.field(meta.kind.name().as_bytes());
        h.field(&meta.expire_at.unwrap_or(0).to_le_bytes());
        match &meta.body {
            Body::String(v) => h.field(v),
            Body::Collection { version, len, list } => {
                h.field(&len.to_le_bytes());
                let (db, key) = (mk[1], &mk[2..]);
                // Sub-keys are listed without their version prefix: the version is an
                // internal detail that may legitimately differ (it is not, today, but the
                // digest must not depend on it).
                let plen = keys::sub_prefix_len(key);
                for sub in [keys::SUB, keys::ZSCORE_IDX] {
                    let range =
                        keel_storage::ScanRange::prefix(keys::sub_prefix(sub, db, key, *version));
                    for s in reader.scan(range, Direction::Forward) {
                        let (sk, sv) = s?;
                        let suffix = sk.get(plen..).unwrap_or_default();
                        match list {
                            // A list's elements in order, however they are packed into
                            // records and wherever its indices start: equal lists built by
                            // different pushes, or stored in different layouts, digest
                            // alike.
                            Some(l) if sub == keys::SUB => {
                                let id = dec_index(suffix).ok_or_else(|| {
                                    EngineError::corrupt("list chunk", &sk, "bad chunk suffix")
                                })?;
                                for (_, e) in list_chunk::elements_of(l.chunk_shift, &sk, id, sv)? {
                                    h.field(&[sub]);
                                    h.field(&e);
                                }
                            }
                            _ => {
                                h.field(&[sub]);
                                h.field(suffix);
                                h.field(&sv);
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(h.0)
}
