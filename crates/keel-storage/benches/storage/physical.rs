//! The machine's physical limits, measured in the engines' own directory: how many
//! append+fdatasync rounds per second a single writer gets, and sequential write bandwidth.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// Result of appending `batch` records then fdatasync, in a loop.
#[derive(Debug, Clone, Copy)]
pub struct RawSync {
    /// Records per append.
    pub batch: usize,
    /// Bytes per record.
    pub record_bytes: usize,
    /// Appends (= fdatasyncs) done.
    pub syncs: u64,
    /// Wall time of the loop.
    pub elapsed: Duration,
}

impl RawSync {
    /// fdatasyncs per second.
    pub fn syncs_per_s(&self) -> f64 {
        self.syncs as f64 / self.elapsed.as_secs_f64()
    }

    /// Records per second.
    pub fn records_per_s(&self) -> f64 {
        self.syncs_per_s() * self.batch as f64
    }
}

/// Result of the sequential write test.
#[derive(Debug, Clone)]
pub struct SeqWrite {
    /// Bytes written.
    pub bytes: u64,
    /// Size of each write call.
    pub chunk: usize,
    /// Time of all writes plus the final fsync.
    pub elapsed: Duration,
}

impl SeqWrite {
    /// Megabytes (10^6 bytes) per second.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

fn random_buf(len: usize, seed: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut buf);
    buf
}

/// A file in the bench directory that takes appends of `batch` records, each followed by
/// fdatasync. Kept open across runs so interleaved slices share one file; removed on drop.
pub struct RawFile {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    batch: usize,
    record_bytes: usize,
}

impl RawFile {
    /// Creates (truncating) the file `raw-append-b{batch}.dat` in `dir`.
    pub fn create(dir: &Path, batch: usize, record_bytes: usize) -> std::io::Result<RawFile> {
        let path = dir.join(format!("raw-append-b{batch}.dat"));
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        Ok(RawFile {
            path,
            file,
            buf: random_buf(batch * record_bytes, batch as u64),
            batch,
            record_bytes,
        })
    }

    /// Appends and fdatasyncs in a loop for about `secs` seconds.
    pub fn run(&mut self, secs: f64) -> std::io::Result<RawSync> {
        let limit = Duration::from_secs_f64(secs);
        let start = Instant::now();
        let mut syncs = 0u64;
        while start.elapsed() < limit {
            self.file.write_all(&self.buf)?;
            self.file.sync_data()?;
            syncs += 1;
        }
        Ok(RawSync {
            batch: self.batch,
            record_bytes: self.record_bytes,
            syncs,
            elapsed: start.elapsed(),
        })
    }
}

impl Drop for RawFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl RawSync {
    /// `self` and `other` pooled: all syncs over all time.
    pub fn plus(&self, other: &RawSync) -> RawSync {
        RawSync {
            batch: self.batch,
            record_bytes: self.record_bytes,
            syncs: self.syncs + other.syncs,
            elapsed: self.elapsed + other.elapsed,
        }
    }
}

/// Appends `batch` records of `record_bytes` to a new file in `dir` and fdatasyncs after
/// each append, for about `secs` seconds.
pub fn raw_append_sync(
    dir: &Path,
    batch: usize,
    record_bytes: usize,
    secs: f64,
) -> std::io::Result<RawSync> {
    RawFile::create(dir, batch, record_bytes)?.run(secs)
}

/// Writes `total` bytes to a new file in `dir` in `chunk`-sized writes, then one fsync.
pub fn seq_write(dir: &Path, total: u64, chunk: usize) -> std::io::Result<SeqWrite> {
    let path = dir.join("seq-write.dat");
    let buf = random_buf(chunk, 7);
    let start = Instant::now();
    let mut file = File::create(&path)?;
    let mut written = 0u64;
    while written < total {
        file.write_all(&buf)?;
        written += chunk as u64;
    }
    file.sync_all()?;
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(SeqWrite {
        bytes: written,
        chunk,
        elapsed,
    })
}
