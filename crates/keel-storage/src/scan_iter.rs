//! An owning scan iterator that pulls a range in chunks, resuming after the last key it
//! returned. Engines whose native iterators borrow their maps use it to hand out
//! `'static` iterators; it holds whatever pins the snapshot (`pin`) for its whole life.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::error::Result;
use crate::storage::{KvIter, KvPair};

/// How many entries one chunk fetches.
pub const SCAN_CHUNK: usize = 256;

/// Builds a [`KvIter`] from `fetch(resume_after, limit)`, which returns the next entries
/// in scan order strictly after `resume_after` (or from the start when None).
pub fn chunked<P, F>(pin: P, fetch: F) -> KvIter
where
    P: Send + 'static,
    F: FnMut(&P, Option<&[u8]>, usize) -> Result<Vec<KvPair>> + Send + 'static,
{
    Box::new(Chunked {
        pin,
        fetch,
        buf: VecDeque::new(),
        resume: None,
        done: false,
    })
}

struct Chunked<P, F> {
    pin: P,
    fetch: F,
    buf: VecDeque<KvPair>,
    resume: Option<Bytes>,
    done: bool,
}

impl<P, F> Iterator for Chunked<P, F>
where
    F: FnMut(&P, Option<&[u8]>, usize) -> Result<Vec<KvPair>>,
{
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.done {
            match (self.fetch)(&self.pin, self.resume.as_deref(), SCAN_CHUNK) {
                Ok(chunk) => {
                    if chunk.len() < SCAN_CHUNK {
                        self.done = true;
                    }
                    if let Some((k, _)) = chunk.last() {
                        self.resume = Some(k.clone());
                    }
                    self.buf.extend(chunk);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.buf.pop_front().map(Ok)
    }
}
