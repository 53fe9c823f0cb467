//! Whole-keyspace figures at one snapshot (the gRPC Metrics call): live keys over every
//! database and the bytes of string values. One ordered scan of the metadata records,
//! O(keys); expired keys are not counted.

use keel_storage::{Direction, ScanRange};

use crate::engine::Engine;
use crate::error::Result;
use crate::keys;
use crate::meta::{Body, Meta};

/// What [`keyspace_stats`] counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyspaceStats {
    /// Live keys of every type in every database.
    pub keys: u64,
    /// Live keys holding strings.
    pub string_keys: u64,
    /// Sum of the lengths of live string values.
    pub string_value_bytes: u64,
}

/// Counts live keys and string value bytes across all databases at one snapshot, as
/// seen at `now_ms`.
pub fn keyspace_stats(engine: &Engine, now_ms: u64) -> Result<KeyspaceStats> {
    let snap = engine.storage().snapshot();
    let mut out = KeyspaceStats::default();
    let lo = keys::meta_range(0).start;
    let hi = keys::meta_range(keys::DATABASES - 1).end;
    for item in snap.scan(ScanRange { start: lo, end: hi }, Direction::Forward) {
        let (sk, raw) = item?;
        let meta = Meta::decode(&sk, raw)?;
        if meta.is_expired(now_ms) {
            continue;
        }
        out.keys += 1;
        if let Body::String(v) = &meta.body {
            out.string_keys += 1;
            out.string_value_bytes += v.len() as u64;
        }
    }
    Ok(out)
}
