//! Checkpoints: a snapshot's live entries written as fresh segments with hint files into
//! another directory, which `Bitcask::open` accepts as a store. Every record carries the
//! snapshot's sequence number, so the copy opens at exactly that point.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::output::OutputWriter;
use super::record::FLAG_BATCH_END;
use super::{segment, Inner};
use crate::error::{IoContext, Result, StorageError};
use crate::range::{Direction, ScanRange};

/// Keys read per step.
const CHUNK: usize = 1024;

impl Inner {
    /// Writes a consistent copy of the current state into the empty or absent `dest`.
    pub(crate) fn checkpoint_to(&self, dest: &Path) -> Result<()> {
        if dest.exists() {
            let mut entries = std::fs::read_dir(dest).ctx("list checkpoint directory", dest)?;
            if entries.next().is_some() {
                return Err(StorageError::InvalidArgument(format!(
                    "checkpoint directory {} is not empty",
                    dest.display()
                )));
            }
        }
        std::fs::create_dir_all(dest).ctx("create checkpoint directory", dest)?;
        let pin = Arc::new(self.index.pin());
        let seq = pin.seq();
        let mut out = OutputWriter::new(dest, 1, self.opts.max_segment_bytes, seq);
        let mut resume: Option<Bytes> = None;
        loop {
            let chunk = self.index.entries_at(
                &ScanRange::all(),
                Direction::Forward,
                seq,
                resume.as_deref(),
                CHUNK,
            );
            let Some((last, _)) = chunk.last() else { break };
            resume = Some(last.clone());
            for (key, loc) in chunk {
                let value = self.read_value(&key, loc, || self.index.value_at(&key, seq), false)?;
                let Some(value) = value else {
                    return Err(StorageError::corrupt(
                        segment::data_path(&self.dir, loc.segment),
                        u64::from(loc.offset),
                        "a pinned version vanished from the index",
                    ));
                };
                out.append(seq, FLAG_BATCH_END, &key, &value)?;
            }
        }
        out.finish()?;
        drop(pin);
        segment::sync_dir(dest)
    }
}
