//! Writing fresh segments with their hint files, for merge (into `merge/`) and for
//! checkpoints (into the checkpoint directory): records go out through a buffered
//! writer (long runs of copied records bypass its buffer), files roll over at the
//! segment size, and each finished file is fsynced and gets its hint on a thread of its
//! own while the caller goes on writing the next file.
//!
//! Two ways in: [`OutputWriter::append`] encodes a record, and merge's verbatim copies
//! use [`OutputWriter::place`] per record and then [`OutputWriter::write`] for the bytes
//! of one or many placed records at once. A file is sealed only once every byte placed
//! in it was written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::hint;
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
    /// Bytes placed in the file (records given their offset).
    size: u64,
    /// Bytes written to it; equals `size` whenever the caller is between records.
    written: u64,
    /// Its hint file, written entry by entry as records are placed.
    hint: BufWriter<File>,
    hint_path: PathBuf,
    hint_bytes: u64,
    /// An fdatasync of the bytes written so far, started while the copy goes on, so
    /// the one at the seal has little left to do; and where the next one is due.
    early_sync: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    next_sync_at: u64,
    garbage: u64,
    crc: crc32fast::Hasher,
}

/// A thread fsyncing a finished output file and writing its hint.
type Sealing = std::thread::JoinHandle<Result<Finished>>;

/// Output files sealing at once.
const MAX_SEALING: usize = 2;

/// Write buffer per output file: shorter writes are gathered, longer ones (runs of
/// copied records) go straight to the file.
const WRITE_BUFFER: usize = 256 * 1024;

/// Bytes written to an output file between early fdatasyncs (a few hundred in unit
/// tests, so their small files take this path too).
#[cfg(not(test))]
const EARLY_SYNC_BYTES: u64 = 8 << 20;
#[cfg(test)]
const EARLY_SYNC_BYTES: u64 = 512;

/// Waits for an early fdatasync and reports its error: on Linux a write-back error is
/// reported once per open file description, which the clone shares with the seal's
/// own fdatasync, so it must not be dropped here.
fn join_early_sync(
    handle: std::thread::JoinHandle<std::io::Result<()>>,
    path: &Path,
) -> Result<()> {
    match handle.join() {
        Ok(res) => res.ctx("fsync segment", path),
        Err(_) => Err(StorageError::InvalidArgument(
            "a thread syncing an output segment panicked".into(),
        )),
    }
}

fn join_sealing(handle: Sealing) -> Result<Finished> {
    handle.join().unwrap_or_else(|_| {
        Err(StorageError::InvalidArgument(
            "a thread sealing an output segment panicked".into(),
        ))
    })
}

/// Writes records into consecutive segments `first_id, first_id + 1, ...` of a directory.
pub struct OutputWriter {
    dir: PathBuf,
    next_id: u32,
    max_bytes: u64,
    cur: Option<OutFile>,
    /// Files sealed, in id order.
    done: Vec<Finished>,
    /// Files handed to their sealing threads, in id order (after `done`).
    sealing: Vec<Sealing>,
    max_seq: u64,
    /// Encoding buffer reused across records.
    scratch: Vec<u8>,
    /// Hint entry buffer reused across records.
    entry: Vec<u8>,
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
            sealing: Vec::new(),
            max_seq,
            scratch: Vec::new(),
            entry: Vec::new(),
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
        // Written in place, not renamed into place: until the output directory is
        // complete (marker or checkpoint return) nothing reads it, and a hint cut short
        // fails its own checks.
        let hint_path = segment::hint_path(&self.dir, id);
        let hint_file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&hint_path)
            .ctx("create hint file", &hint_path)?;
        let mut hint = BufWriter::with_capacity(WRITE_BUFFER, hint_file);
        self.entry.clear();
        hint::encode_magic(&mut self.entry);
        hint.write_all(&self.entry)
            .ctx("write hint file", &hint_path)?;
        let hint_bytes = self.entry.len() as u64;
        self.cur = Some(OutFile {
            id,
            path,
            w: BufWriter::with_capacity(WRITE_BUFFER, file),
            size: 0,
            written: 0,
            hint,
            hint_path,
            hint_bytes,
            early_sync: None,
            next_sync_at: EARLY_SYNC_BYTES,
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

    /// Appends `rec`, an already encoded and checked record with these fields; returns
    /// (segment id, record offset).
    pub fn append_record(
        &mut self,
        rec: &[u8],
        seq: u64,
        flags: u8,
        key: &[u8],
        vlen: u32,
    ) -> Result<(u32, u32)> {
        let at = self.place(rec.len() as u64, seq, flags, key, vlen)?;
        self.write(rec)?;
        Ok(at)
    }

    /// Whether a record of `len` bytes placed now would start a new file.
    pub fn would_roll(&self, len: u64) -> bool {
        self.cur
            .as_ref()
            .is_some_and(|c| c.size > 0 && c.size + len > self.max_bytes)
    }

    /// Whether a record of `next` bytes placed right after one of `len` placed now
    /// lands in the same file as it.
    pub fn fits_after(&self, len: u64, next: u64) -> bool {
        let before = match &self.cur {
            Some(c) if !self.would_roll(len) => c.size,
            _ => 0,
        };
        before + len + next <= self.max_bytes
    }

    /// Gives the next record, of `len` bytes and these fields, its place (rolling over
    /// to a new file first if it does not fit) and notes its hint entry; returns
    /// (segment id, record offset). Its bytes must follow through [`OutputWriter::write`]
    /// before anything else is placed in another file.
    pub fn place(
        &mut self,
        len: u64,
        seq: u64,
        flags: u8,
        key: &[u8],
        vlen: u32,
    ) -> Result<(u32, u32)> {
        if self.would_roll(len) {
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
        let off = cur.size;
        self.entry.clear();
        hint::encode_entry(&mut self.entry, seq, flags, key, vlen, off);
        cur.hint
            .write_all(&self.entry)
            .ctx("write hint file", &cur.hint_path)?;
        cur.hint_bytes += self.entry.len() as u64;
        cur.size += len;
        if flags & FLAG_TOMBSTONE != 0 {
            cur.garbage += len;
        }
        Ok((cur.id, off as u32))
    }

    /// Writes the bytes of records placed in the current file, in placing order.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(cur) = self.cur.as_mut() else {
            return Err(StorageError::InvalidArgument(
                "bytes written with no record placed".into(),
            ));
        };
        let len = bytes.len() as u64;
        if cur.written + len > cur.size {
            return Err(StorageError::InvalidArgument(format!(
                "{} bytes written beyond the records placed in {}",
                cur.written + len - cur.size,
                cur.path.display()
            )));
        }
        cur.w.write_all(bytes).ctx("write segment", &cur.path)?;
        cur.crc.update(bytes);
        cur.written += len;
        if cur.written >= cur.next_sync_at
            && cur
                .early_sync
                .as_ref()
                .is_none_or(std::thread::JoinHandle::is_finished)
        {
            cur.next_sync_at = cur.written + EARLY_SYNC_BYTES;
            if let Some(prev) = cur.early_sync.take() {
                join_early_sync(prev, &cur.path)?;
            }
            let file = cur
                .w
                .get_ref()
                .try_clone()
                .ctx("clone segment handle", &cur.path)?;
            let handle = std::thread::Builder::new()
                .name("keel-bitcask-sync".into())
                .spawn(move || file.sync_data())
                .map_err(|e| StorageError::io("start a thread to sync a segment", &cur.path, e))?;
            cur.early_sync = Some(handle);
        }
        Ok(())
    }

    /// Flushes the current file and hands its fsync and hint file to a thread, so the
    /// copy goes on into the next file while the device catches up.
    fn finish_current(&mut self) -> Result<()> {
        let Some(cur) = self.cur.take() else {
            return Ok(());
        };
        if cur.written != cur.size {
            return Err(StorageError::InvalidArgument(format!(
                "{} of {} placed bytes written to {} when it was sealed",
                cur.written,
                cur.size,
                cur.path.display()
            )));
        }
        let file = cur
            .w
            .into_inner()
            .map_err(|e| StorageError::io("flush segment", &cur.path, e.into_error()))?;
        let mut hint_w = cur.hint;
        let hint_path = cur.hint_path;
        let mut trailer = Vec::new();
        hint::encode_trailer(&mut trailer, self.max_seq, cur.size, cur.crc.finalize());
        let hint_bytes = cur.hint_bytes + trailer.len() as u64;
        let (id, size, garbage, path) = (cur.id, cur.size, cur.garbage, cur.path);
        let early_sync = cur.early_sync;
        let seal = move || -> Result<Finished> {
            if let Some(h) = early_sync {
                join_early_sync(h, &path)?;
            }
            file.sync_data().ctx("fsync segment", &path)?;
            hint_w
                .write_all(&trailer)
                .ctx("write hint file", &hint_path)?;
            let hint_file = hint_w
                .into_inner()
                .map_err(|e| StorageError::io("write hint file", &hint_path, e.into_error()))?;
            hint_file.sync_data().ctx("fsync hint file", &hint_path)?;
            Ok(Finished {
                id,
                size,
                hint_bytes,
                garbage,
            })
        };
        // Bounded: each sealing file holds its write buffers.
        while self.sealing.len() >= MAX_SEALING {
            let oldest = self.sealing.remove(0);
            self.done.push(join_sealing(oldest)?);
        }
        let handle = std::thread::Builder::new()
            .name("keel-bitcask-seal".into())
            .spawn(seal)
            .map_err(|e| StorageError::io("start a thread to seal a segment", &self.dir, e))?;
        self.sealing.push(handle);
        Ok(())
    }

    /// Finishes every file (at least one, possibly empty, so the hint trailer keeps the
    /// sequence high-water mark) and fsyncs the directory.
    pub fn finish(mut self) -> Result<Vec<Finished>> {
        if self.cur.is_none() && self.sealing.is_empty() && self.done.is_empty() {
            self.open_next()?;
        }
        let last = self.finish_current();
        // Join every sealing thread before reporting anything, so no file is still being
        // written when the caller cleans up after an error.
        let mut first_err = last.err();
        let mut done = std::mem::take(&mut self.done);
        for handle in self.sealing.drain(..) {
            match join_sealing(handle) {
                Ok(f) => done.push(f),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        segment::sync_dir(&self.dir)?;
        Ok(done)
    }
}

impl Drop for OutputWriter {
    /// A writer dropped on an error path still waits for its sealing threads, so none is
    /// writing into a directory the caller is about to remove.
    fn drop(&mut self) {
        for handle in self.sealing.drain(..) {
            let _ = handle.join();
        }
    }
}
