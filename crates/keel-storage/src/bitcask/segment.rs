//! Segment files: their names (`{id:010}.data`, `{id:010}.hint`), the directory listing,
//! and the shared map of open segments readers go through.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{IoContext, Result};

/// Extension of data segment files.
pub const DATA_EXT: &str = "data";
/// Extension of hint files.
pub const HINT_EXT: &str = "hint";

/// File name of segment `id` with extension `ext`.
pub fn file_name(id: u32, ext: &str) -> String {
    format!("{id:010}.{ext}")
}

/// Path of the data file of segment `id` in `dir`.
pub fn data_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(file_name(id, DATA_EXT))
}

/// Path of the hint file of segment `id` in `dir`.
pub fn hint_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(file_name(id, HINT_EXT))
}

/// Parses `{id:010}.{ext}`; None for any other name.
pub fn parse_name(name: &str, ext: &str) -> Option<u32> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 10 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Ids of the data and hint files in `dir`, each ascending.
pub fn list(dir: &Path) -> Result<(Vec<u32>, Vec<u32>)> {
    let mut data = Vec::new();
    let mut hints = Vec::new();
    for entry in std::fs::read_dir(dir).ctx("list data directory", dir)? {
        let entry = entry.ctx("list data directory", dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = parse_name(name, DATA_EXT) {
            data.push(id);
        } else if let Some(id) = parse_name(name, HINT_EXT) {
            hints.push(id);
        }
    }
    data.sort_unstable();
    hints.sort_unstable();
    Ok((data, hints))
}

/// Fsyncs a directory so creates, renames and deletes inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

/// Removes a file, treating "already gone" as success.
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(crate::error::StorageError::io("remove file", path, e)),
    }
}

/// One open data segment and its byte accounting.
#[derive(Debug)]
pub struct Segment {
    /// Segment id.
    pub id: u32,
    /// Path of its data file.
    pub path: PathBuf,
    /// The open file (reads use positioned reads, so it is shared freely).
    pub file: Arc<File>,
    /// Bytes in the data file.
    pub size: AtomicU64,
    /// Bytes of records no version in the index refers to any more.
    pub garbage: AtomicU64,
    /// Bytes of its hint file (0 if none).
    pub hint_bytes: AtomicU64,
    /// Set (under the store's hint lock) once a merge that replaces it is committed, so
    /// a late hint write for it is dropped instead of outliving the segment.
    pub replaced: AtomicBool,
}

impl Segment {
    /// A segment record for an open file of `size` bytes.
    pub fn new(id: u32, path: PathBuf, file: File, size: u64) -> Arc<Segment> {
        Arc::new(Segment {
            id,
            path,
            file: Arc::new(file),
            size: AtomicU64::new(size),
            garbage: AtomicU64::new(0),
            hint_bytes: AtomicU64::new(0),
            replaced: AtomicBool::new(false),
        })
    }

    /// Adds `bytes` to its garbage.
    pub fn add_garbage(&self, bytes: u64) {
        self.garbage.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// The open segments by id. Readers look a segment up here for every disk read; merge
/// removes segments it has replaced, after which readers retry their index lookup.
#[derive(Debug, Default)]
pub struct SegmentSet {
    map: RwLock<BTreeMap<u32, Arc<Segment>>>,
}

impl SegmentSet {
    /// The segment `id`, if open.
    pub fn get(&self, id: u32) -> Option<Arc<Segment>> {
        self.map.read().get(&id).cloned()
    }

    /// Adds (or replaces) a segment.
    pub fn insert(&self, seg: Arc<Segment>) {
        self.map.write().insert(seg.id, seg);
    }

    /// Removes the segments `ids`, returning those that were present.
    pub fn remove(&self, ids: &[u32]) -> Vec<Arc<Segment>> {
        let mut map = self.map.write();
        ids.iter().filter_map(|id| map.remove(id)).collect()
    }

    /// All segments, ascending by id.
    pub fn all(&self) -> Vec<Arc<Segment>> {
        self.map.read().values().cloned().collect()
    }

    /// Adds `bytes` of garbage to segment `id` (ignored if it is gone).
    pub fn add_garbage(&self, id: u32, bytes: u64) {
        if let Some(seg) = self.map.read().get(&id) {
            seg.add_garbage(bytes);
        }
    }

    /// (data + hint bytes, garbage bytes) over all segments. A segment's hint file is
    /// counted as garbage in the proportion its data file is.
    pub fn totals(&self) -> (u64, u64) {
        let map = self.map.read();
        map.values().fold((0, 0), |(disk, garbage), s| {
            let size = s.size.load(Ordering::Relaxed);
            let hint = s.hint_bytes.load(Ordering::Relaxed);
            let dead = s.garbage.load(Ordering::Relaxed).min(size);
            let dead_hint = if size == 0 {
                0
            } else {
                (u128::from(hint) * u128::from(dead) / u128::from(size)) as u64
            };
            (disk + size + hint, garbage + dead + dead_hint)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(1, DATA_EXT), "0000000001.data");
        assert_eq!(parse_name("0000000001.data", DATA_EXT), Some(1));
        assert_eq!(parse_name("4294967295.hint", HINT_EXT), Some(u32::MAX));
        assert_eq!(parse_name("9999999999.data", DATA_EXT), None);
        assert_eq!(parse_name("000000001.data", DATA_EXT), None);
        assert_eq!(parse_name("0000000001.hint", DATA_EXT), None);
        assert_eq!(parse_name("000000000a.data", DATA_EXT), None);
        assert_eq!(parse_name("0000000001data", DATA_EXT), None);
    }
}
