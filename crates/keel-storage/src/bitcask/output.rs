//! Writing fresh segments with their hint files, for merge (into `merge/`) and for
//! checkpoints (into the checkpoint directory): records go out through a buffered
//! writer, files roll over at the segment size, and each finished file is fsynced and
//! gets its hint.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::hint::{self, HintBuilder};
use super::record::{self, FLAG_TOMBSTONE};
use super::segment;
use crate::error::{IoContext, Result, StorageError};

/// A finished output segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Its id (file name number inside the output directory).
    pub id: u32,
    /// Data file length.
    pub size: u64,
    /// Hint file length.
    pub hint_bytes: u64,
    /// Bytes of tombstone records in it (counted as garbage).
    pub garbage: u64,
}

struct OutFile {
    id: u32,
    path: PathBuf,
    w: BufWriter<File>,
    size: u64,
    hint: HintBuilder,
    garbage: u64,
    crc: crc32fast::Hasher,
}

/// Writes records into consecutive segments `first_id, first_id + 1, ...` of a directory.
pub struct OutputWriter {
    dir: PathBuf,
    next_id: u32,
    max_bytes: u64,
    cur: Option<OutFile>,
    done: Vec<Finished>,
    max_seq: u64,
    /// Encoding buffer reused across records.
    scratch: Vec<u8>,
}

impl OutputWriter {
    /// A writer into `dir`; files roll over past `max_bytes`. `max_seq` goes into every
    /// hint trailer so the store's sequence numbers never go back.
    pub fn new(dir: &Path, first_id: u32, max_bytes: u64, max_seq: u64) -> Self {
        OutputWriter {
            dir: dir.to_path_buf(),
            next_id: first_id,
            max_bytes: max_bytes.clamp(1, u64::from(u32::MAX)),
            cur: None,
            done: Vec::new(),
            max_seq,
            scratch: Vec::new(),
        }
    }

    fn open_next(&mut self) -> Result<()> {
        let id = self.next_id;
        self.next_id = id
            .checked_add(1)
            .ok_or_else(|| StorageError::InvalidArgument("segment ids exhausted".into()))?;
        let path = segment::data_path(&self.dir, id);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .ctx("create segment", &path)?;
        self.cur = Some(OutFile {
            id,
            path,
            w: BufWriter::with_capacity(1 << 20, file),
            size: 0,
            hint: HintBuilder::new(),
            garbage: 0,
            crc: crc32fast::Hasher::new(),
        });
        Ok(())
    }

    /// Appends a complete one-record batch; returns (segment id, record offset).
    pub fn append(&mut self, seq: u64, flags: u8, key: &[u8], value: &[u8]) -> Result<(u32, u32)> {
        self.scratch.clear();
        record::encode_into(&mut self.scratch, seq, flags, key, value);
        let rec = std::mem::take(&mut self.scratch);
        let placed = self.append_record(&rec, seq, flags, key, value.len() as u32);
        self.scratch = rec;
        placed
    }

    /// Appends `rec`, an already encoded and checked one-record batch with these fields
    /// (merge copies records as they are); returns (segment id, record offset).
    pub fn append_record(
        &mut self,
        rec: &[u8],
        seq: u64,
        flags: u8,
        key: &[u8],
        vlen: u32,
    ) -> Result<(u32, u32)> {
        let len = rec.len() as u64;
        let full = self
            .cur
            .as_ref()
            .is_some_and(|c| c.size > 0 && c.size + len > self.max_bytes);
        if full {
            self.finish_current()?;
        }
        if self.cur.is_none() {
            self.open_next()?;
        }
        let Some(cur) = self.cur.as_mut() else {
            return Err(StorageError::InvalidArgument("no output segment".into()));
        };
        if cur.size + len > u64::from(u32::MAX) {
            return Err(StorageError::InvalidArgument(
                "record does not fit a 4 GiB segment".into(),
            ));
        }
        cur.w.write_all(rec).ctx("write segment", &cur.path)?;
        cur.crc.update(rec);
        let off = cur.size;
        cur.hint.push(seq, flags, key, vlen, off);
        cur.size += len;
        if flags & FLAG_TOMBSTONE != 0 {
            cur.garbage += len;
        }
        Ok((cur.id, off as u32))
    }

    fn finish_current(&mut self) -> Result<()> {
        let Some(cur) = self.cur.take() else {
            return Ok(());
        };
        let file = cur
            .w
            .into_inner()
            .map_err(|e| StorageError::io("flush segment", &cur.path, e.into_error()))?;
        file.sync_data().ctx("fsync segment", &cur.path)?;
        let contents = cur.hint.finish(self.max_seq, cur.size, cur.crc.finalize());
        hint::write(&segment::hint_path(&self.dir, cur.id), &contents)?;
        self.done.push(Finished {
            id: cur.id,
            size: cur.size,
            hint_bytes: contents.len() as u64,
            garbage: cur.garbage,
        });
        Ok(())
    }

    /// Finishes every file (at least one, possibly empty, so the hint trailer keeps the
    /// sequence high-water mark) and fsyncs the directory.
    pub fn finish(mut self) -> Result<Vec<Finished>> {
        if self.cur.is_none() && self.done.is_empty() {
            self.open_next()?;
        }
        self.finish_current()?;
        segment::sync_dir(&self.dir)?;
        Ok(self.done)
    }
}
