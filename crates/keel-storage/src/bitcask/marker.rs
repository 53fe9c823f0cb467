//! The merge directory and its `MERGE_DONE` marker. Merge writes its output segments
//! into `merge/`; once they are durable it writes the marker, which lists the segments
//! being replaced and the id each output file takes in the main directory. Installing
//! moves the files, deletes the replaced ones and removes `merge/`; every step can be
//! repeated, so an open that finds a valid marker finishes the install, and one that
//! finds `merge/` without it discards it. A merge is never half-applied.
//!
//! Marker layout: `KEELMRG1`, count u32 + replaced ids (u32 each), count u32 + pairs
//! (output id u32, final id u32), CRC32 of everything before it. All little-endian.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::segment::{self, DATA_EXT, HINT_EXT};
use crate::error::{IoContext, Result, StorageError};

/// Name of the merge working directory.
pub const MERGE_DIR: &str = "merge";
/// Name of the marker file inside it.
pub const MARKER_FILE: &str = "MERGE_DONE";
const MAGIC: &[u8; 8] = b"KEELMRG1";
/// Most ids a marker may list (keeps a damaged count from driving an allocation).
const MAX_IDS: u32 = 1 << 24;

/// What a completed merge replaces and installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// Segments the merge output replaces.
    pub replaced: Vec<u32>,
    /// (id inside `merge/`, id in the main directory) per output segment.
    pub installs: Vec<(u32, u32)>,
}

impl Marker {
    fn encode(&self) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&(self.replaced.len() as u32).to_le_bytes());
        for id in &self.replaced {
            b.extend_from_slice(&id.to_le_bytes());
        }
        b.extend_from_slice(&(self.installs.len() as u32).to_le_bytes());
        for (from, to) in &self.installs {
            b.extend_from_slice(&from.to_le_bytes());
            b.extend_from_slice(&to.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Result<Marker, String> {
        if b.len() < MAGIC.len() + 12 || &b[..MAGIC.len()] != MAGIC {
            return Err("bad magic or short file".into());
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err("checksum mismatch".into());
        }
        let mut pos = MAGIC.len();
        let mut next = || -> Result<u32, String> {
            let v = body
                .get(pos..pos + 4)
                .ok_or_else(|| "truncated".to_string())?;
            pos += 4;
            Ok(u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
        };
        let n = next()?;
        if n > MAX_IDS {
            return Err("too many replaced ids".into());
        }
        let replaced = (0..n).map(|_| next()).collect::<Result<Vec<_>, _>>()?;
        let n = next()?;
        if n > MAX_IDS {
            return Err("too many installed ids".into());
        }
        let installs = (0..n)
            .map(|_| Ok((next()?, next()?)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Marker { replaced, installs })
    }
}

/// Path of the merge directory of `dir`.
pub fn merge_dir(dir: &Path) -> PathBuf {
    dir.join(MERGE_DIR)
}

/// Writes the marker durably (temporary file, fsync, rename, fsync of `merge/`).
pub fn write(dir: &Path, marker: &Marker) -> Result<()> {
    let mdir = merge_dir(dir);
    let path = mdir.join(MARKER_FILE);
    let tmp = mdir.join(format!("{MARKER_FILE}.tmp"));
    let mut f = File::create(&tmp).ctx("create merge marker", &tmp)?;
    f.write_all(&marker.encode())
        .ctx("write merge marker", &tmp)?;
    f.sync_all().ctx("fsync merge marker", &tmp)?;
    drop(f);
    std::fs::rename(&tmp, &path).ctx("rename merge marker", &path)?;
    segment::sync_dir(&mdir)
}

/// The marker in `dir/merge`, if present and valid.
pub fn read(dir: &Path) -> Result<Option<Marker>> {
    let path = merge_dir(dir).join(MARKER_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("read merge marker", &path, e)),
    };
    match Marker::decode(&bytes) {
        Ok(m) => Ok(Some(m)),
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "ignoring damaged merge marker");
            Ok(None)
        }
    }
}

/// Moves the output files named in `marker` into the main directory (skipping those
/// already moved) and fsyncs it.
pub fn move_outputs(dir: &Path, marker: &Marker) -> Result<()> {
    let mdir = merge_dir(dir);
    for &(from, to) in &marker.installs {
        for (ext, required) in [(DATA_EXT, true), (HINT_EXT, false)] {
            let src = mdir.join(segment::file_name(from, ext));
            let dst = dir.join(segment::file_name(to, ext));
            match std::fs::rename(&src, &dst) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if required && !dst.exists() {
                        return Err(StorageError::corrupt(
                            mdir.join(MARKER_FILE),
                            0,
                            format!(
                                "merge output {} is neither in merge/ nor installed",
                                src.display()
                            ),
                        ));
                    }
                }
                Err(e) => return Err(StorageError::io("install merge output", &dst, e)),
            }
        }
    }
    segment::sync_dir(dir)
}

/// Deletes the segments (data and hint files) the merge replaced, and fsyncs.
pub fn delete_replaced(dir: &Path, marker: &Marker) -> Result<()> {
    for &id in &marker.replaced {
        segment::remove_if_exists(&segment::data_path(dir, id))?;
        segment::remove_if_exists(&segment::hint_path(dir, id))?;
    }
    segment::sync_dir(dir)
}

/// Deletes the hint files of the segments the merge replaced (their data files stay).
pub fn delete_replaced_hints(dir: &Path, marker: &Marker) -> Result<()> {
    for &id in &marker.replaced {
        segment::remove_if_exists(&segment::hint_path(dir, id))?;
    }
    Ok(())
}

/// Removes `merge/` (marker first), and fsyncs the main directory.
pub fn remove_merge_dir(dir: &Path) -> Result<()> {
    let mdir = merge_dir(dir);
    segment::remove_if_exists(&mdir.join(MARKER_FILE))?;
    match std::fs::remove_dir_all(&mdir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StorageError::io("remove merge directory", &mdir, e)),
    }
    segment::sync_dir(dir)
}

/// At open: finishes a merge whose marker is valid, or discards an unfinished one.
pub fn recover(dir: &Path) -> Result<()> {
    let mdir = merge_dir(dir);
    if !mdir.exists() {
        return Ok(());
    }
    match read(dir)? {
        Some(marker) => {
            tracing::info!(dir = %dir.display(), replaced = ?marker.replaced,
                installed = ?marker.installs, "finishing an interrupted merge install");
            move_outputs(dir, &marker)?;
            delete_replaced(dir, &marker)?;
        }
        None => {
            tracing::warn!(dir = %dir.display(), "discarding an unfinished merge (no MERGE_DONE marker)");
        }
    }
    remove_merge_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip_and_damage() {
        let m = Marker {
            replaced: vec![1, 2, 5],
            installs: vec![(1, 9), (2, 10)],
        };
        let b = m.encode();
        assert_eq!(Marker::decode(&b).unwrap(), m);
        for cut in 0..b.len() {
            assert!(Marker::decode(&b[..cut]).is_err());
        }
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x10;
            assert!(Marker::decode(&bad).is_err(), "flip at {i} accepted");
        }
    }
}
