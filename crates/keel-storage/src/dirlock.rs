//! One process per data directory: an exclusive `flock` on `<dir>/LOCK`, which also
//! records the holder's pid so a second opener can say who holds it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::error::{IoContext, Result, StorageError};

/// Name of the lock file inside a data directory.
pub const LOCK_FILE: &str = "LOCK";

/// Held while a store is open; dropping it releases the directory.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Creates `dir` if needed and locks it, or fails with [`StorageError::Locked`].
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        std::fs::create_dir_all(dir).ctx("create data directory", dir)?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .ctx("open lock file", &path)?;
        if let Err(err) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if err == rustix::io::Errno::WOULDBLOCK {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let pid = text.trim().parse().unwrap_or(0);
                return Err(StorageError::Locked {
                    path: dir.to_path_buf(),
                    pid,
                });
            }
            return Err(StorageError::io("lock data directory", &path, err.into()));
        }
        file.set_len(0).ctx("truncate lock file", &path)?;
        file.seek(SeekFrom::Start(0)).ctx("seek lock file", &path)?;
        writeln!(file, "{}", std::process::id()).ctx("write lock file", &path)?;
        Ok(DirLock { _file: file, path })
    }

    /// Path of the lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
