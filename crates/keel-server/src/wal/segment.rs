//! Segment files: `wal-{first_index:020}.log` in the WAL directory, their listing, and a
//! sequential reader that checks every record it returns.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::error::{Result, WalError};
use super::record::{Header, HEADER_LEN, MAX_PAYLOAD};

const PREFIX: &str = "wal-";
const SUFFIX: &str = ".log";
const DIGITS: usize = 20;

/// A segment file and the index its first record has (or will have).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Index of the segment's first record, from its name.
    pub first_index: u64,
    /// Path of the file.
    pub path: PathBuf,
}

/// The file name of the segment whose first record is `first_index`.
pub fn segment_file_name(first_index: u64) -> String {
    format!("{PREFIX}{first_index:020}{SUFFIX}")
}

/// The first index named by a segment file name; None for any other file.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segments in `dir`, ordered by first index. Other files are ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>> {
    let entries = std::fs::read_dir(dir).map_err(|e| WalError::io("list", dir, 0, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io("list", dir, 0, e))?;
        let name = entry.file_name();
        if let Some(first_index) = name.to_str().and_then(parse_segment_name) {
            out.push(SegmentFile {
                first_index,
                path: entry.path(),
            });
        }
    }
    out.sort_by_key(|s| s.first_index);
    Ok(out)
}

/// Makes creations and deletions of files in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WalError::io("fsync directory", dir, 0, e))
}

/// Why a record could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadKind {
    /// Short, impossible length or checksum mismatch: what a torn write leaves.
    Damaged,
    /// A record with a valid checksum but not the expected index: never a torn write.
    IndexMismatch,
}

/// What the next read found.
#[derive(Debug)]
pub enum Next {
    /// A verified record.
    Record {
        /// Offset of the record in the file.
        offset: u64,
        /// Its index.
        index: u64,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// Clean end of the readable range.
    End,
    /// A bad record at `offset`; reading stops there.
    Bad {
        /// Offset of the bad record.
        offset: u64,
        /// What kind of damage.
        kind: BadKind,
        /// Description for errors and logs.
        reason: String,
    },
}

/// Reads the records of one segment in order, up to a byte limit.
pub struct SegmentReader {
    file: BufReader<File>,
    path: PathBuf,
    pos: u64,
    limit: u64,
}

impl SegmentReader {
    /// Opens `path` for reading up to `limit` bytes (None: the file's length now).
    pub fn open(path: &Path, limit: Option<u64>) -> Result<Self> {
        let file = File::open(path).map_err(|e| WalError::io("open segment", path, 0, e))?;
        let limit = match limit {
            Some(l) => l,
            None => file
                .metadata()
                .map_err(|e| WalError::io("stat segment", path, 0, e))?
                .len(),
        };
        Ok(SegmentReader {
            file: BufReader::with_capacity(256 << 10, file),
            path: path.to_path_buf(),
            pos: 0,
            limit,
        })
    }

    /// Offset of the next record.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// The readable length.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the next record, which must have index `expected`.
    pub fn next_record(&mut self, expected: u64) -> Result<Next> {
        let offset = self.pos;
        let left = self.limit.saturating_sub(offset);
        if left == 0 {
            return Ok(Next::End);
        }
        let damaged = |reason: String| {
            Ok(Next::Bad {
                offset,
                kind: BadKind::Damaged,
                reason,
            })
        };
        if left < HEADER_LEN as u64 {
            return damaged(format!("{left} bytes left, short of a record header"));
        }
        let mut raw = [0u8; HEADER_LEN];
        self.file
            .read_exact(&mut raw)
            .map_err(|e| WalError::io("read", &self.path, offset, e))?;
        let h = Header::parse(&raw);
        if h.len as usize > MAX_PAYLOAD {
            return damaged(format!("impossible record length {}", h.len));
        }
        if h.record_len() > left {
            return damaged(format!(
                "record of {} bytes runs past the end ({left} bytes left)",
                h.record_len()
            ));
        }
        // Checked against the bytes left in the file and MAX_PAYLOAD just above.
        let mut payload = vec![0u8; h.len as usize];
        self.file
            .read_exact(&mut payload)
            .map_err(|e| WalError::io("read", &self.path, offset, e))?;
        if !h.verify(&payload) {
            return damaged("checksum mismatch".to_string());
        }
        if h.index != expected {
            return Ok(Next::Bad {
                offset,
                kind: BadKind::IndexMismatch,
                reason: format!("record has index {}, expected {expected}", h.index),
            });
        }
        self.pos += h.record_len();
        Ok(Next::Record {
            offset,
            index: h.index,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort() {
        assert_eq!(segment_file_name(7), "wal-00000000000000000007.log");
        assert_eq!(
            parse_segment_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        for other in [
            "wal-7.log",
            "wal-0000000000000000000x.log",
            "wal-00000000000000000007.log.tmp",
            "x-00000000000000000007.log",
            "wal-+0000000000000000007.log",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
    }
}
