//! Replay: stream the entries after an index, one segment open at a time, each record
//! checked again on the way (checksum and index continuity).

use std::path::PathBuf;

use bytes::Bytes;

use super::error::{Result, WalError};
use super::segment::{Next, SegmentReader};
use super::writer::Wal;

/// One segment to read and how far.
struct Part {
    first_index: u64,
    path: PathBuf,
    /// Bytes to read (None: the file's length when it is opened).
    limit: Option<u64>,
}

/// Iterator over `(index, payload)` of the entries after a given index, as written
/// (flushed) when it was created. Stops after the first error.
pub struct WalEntries {
    parts: std::vec::IntoIter<Part>,
    current: Option<SegmentReader>,
    after: u64,
    /// Index the next record must have.
    next: u64,
    pending: Option<WalError>,
    done: bool,
}

impl Wal {
    /// Streams the flushed entries with index greater than `index`. Entries still in the
    /// append buffer are not seen (call `flush` first). If the log no longer holds
    /// `index + 1` (truncated), the first item is [`WalError::Missing`].
    pub fn entries_after(&self, index: u64) -> WalEntries {
        let mut it = WalEntries {
            parts: Vec::new().into_iter(),
            current: None,
            after: index,
            next: 0,
            pending: None,
            done: false,
        };
        if self.last_index == 0 || index >= self.last_index {
            it.done = true;
            return it;
        }
        if index.saturating_add(1) < self.first_index {
            it.pending = Some(WalError::Missing {
                after: index,
                first: self.first_index,
            });
            return it;
        }
        // The last segment starting at or before the first wanted entry.
        let want = index + 1;
        let start = self
            .segments
            .iter()
            .rposition(|s| s.first_index <= want)
            .unwrap_or(0);
        let active = self.active_extent();
        let parts: Vec<Part> = self.segments[start..]
            .iter()
            .map(|s| Part {
                first_index: s.first_index,
                path: s.path.clone(),
                limit: active
                    .filter(|(p, _)| *p == s.path.as_path())
                    .map(|(_, len)| len),
            })
            .collect();
        it.next = parts.first().map_or(0, |p| p.first_index);
        it.parts = parts.into_iter();
        it
    }
}

impl WalEntries {
    fn advance(&mut self) -> Result<Option<(u64, Bytes)>> {
        loop {
            let Some(rd) = self.current.as_mut() else {
                let Some(part) = self.parts.next() else {
                    return Ok(None);
                };
                if part.first_index != self.next {
                    return Err(WalError::corrupt(
                        &part.path,
                        0,
                        format!(
                            "index gap: segment starts at {} but the previous ends before {}",
                            part.first_index, self.next
                        ),
                    ));
                }
                self.current = Some(SegmentReader::open(&part.path, part.limit)?);
                continue;
            };
            match rd.next_record(self.next)? {
                Next::Record { index, payload, .. } => {
                    self.next = index + 1;
                    if index > self.after {
                        return Ok(Some((index, Bytes::from(payload))));
                    }
                }
                Next::End => self.current = None,
                Next::Bad { offset, reason, .. } => {
                    return Err(WalError::corrupt(rd.path(), offset, reason));
                }
            }
        }
    }
}

impl Iterator for WalEntries {
    type Item = Result<(u64, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.take() {
            self.done = true;
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        match self.advance() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
