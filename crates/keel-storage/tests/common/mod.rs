//! Shared helpers of the cross-engine integration suites: opening engines with test
//! tuning, reopening (with the memory engine's checkpoint round trip), dumping contents,
//! the macro that instantiates a test for every engine, and re-running this test binary
//! as a child process for the crash suites.

// Each integration test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use keel_storage::{
    Direction, EngineKind, KvIter, OpenOptions, ScanRange, Storage, StorageError, SyncPolicy,
};

/// The model every engine is compared against.
pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Owned key/value pairs in scan order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Options the suites open engines with. Bitcask gets tiny segments so that every run
/// crosses segment boundaries, and no background merge so merges happen exactly where a
/// test asks for one.
pub fn test_options(kind: EngineKind) -> OpenOptions {
    let mut opts = OpenOptions::new(kind);
    opts.bitcask.max_segment_bytes = 4 * 1024;
    opts.bitcask.cache_bytes = 64 * 1024;
    opts.bitcask.auto_merge = false;
    opts.lsm.cache_bytes = 4 * 1024 * 1024;
    opts
}

/// Options for durability tests: like [`test_options`] with every write fsynced.
pub fn sync_options(kind: EngineKind) -> OpenOptions {
    test_options(kind).sync_policy(SyncPolicy::Always)
}

/// Opens `kind` on `dir` with `opts`, failing the test with the engine's error.
pub fn open_with(dir: &Path, opts: &OpenOptions) -> Arc<dyn Storage> {
    match keel_storage::open(dir, opts) {
        Ok(s) => s,
        Err(e) => panic!("open {} on {}: {e:?}", opts.engine, dir.display()),
    }
}

/// Opens `kind` on `dir` with [`test_options`].
pub fn open(kind: EngineKind, dir: &Path) -> Arc<dyn Storage> {
    open_with(dir, &test_options(kind))
}

/// True when `kind` is compiled into this build. Engines are built on separate branches;
/// until one is merged, `open` answers InvalidArgument "... not built yet" and the
/// engine's instances of every suite skip (loudly) instead of failing on that.
pub fn engine_available(kind: EngineKind) -> bool {
    let Ok(dir) = tempfile::tempdir() else {
        return true;
    };
    match keel_storage::open(dir.path(), &test_options(kind)) {
        Err(StorageError::InvalidArgument(msg)) if msg.contains("not built yet") => {
            eprintln!("SKIPPED: engine {kind} is not built in this tree ({msg})");
            false
        }
        Ok(s) => {
            let _ = s.close();
            true
        }
        // Any other failure belongs to the test itself, which will report it.
        Err(_) => true,
    }
}

/// Closes `store` and opens `dir` again with `opts`, as a restart would. The memory
/// engine keeps nothing on disk by itself (its durability is the log above it plus
/// checkpoints), so for it a restart is "checkpoint into the data directory, close,
/// open", which loads that checkpoint; bitcask and lsm simply close and open.
pub fn reopen_with(store: Arc<dyn Storage>, dir: &Path, opts: &OpenOptions) -> Arc<dyn Storage> {
    if store.kind() == EngineKind::Memory {
        store
            .checkpoint(dir)
            .unwrap_or_else(|e| panic!("memory checkpoint into its own dir: {e:?}"));
    }
    store
        .close()
        .unwrap_or_else(|e| panic!("close {}: {e:?}", store.kind()));
    drop(store);
    open_with(dir, opts)
}

/// [`reopen_with`] using [`test_options`].
pub fn reopen(store: Arc<dyn Storage>, dir: &Path) -> Arc<dyn Storage> {
    let opts = test_options(store.kind());
    reopen_with(store, dir, &opts)
}

/// Drains a scan into owned pairs, or the first error it yields.
pub fn collect(iter: KvIter) -> Result<Pairs, StorageError> {
    iter.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect()
}

/// Everything in `store`, via a forward scan of all keys.
pub fn dump(store: &dyn Storage) -> Model {
    match collect(store.scan(ScanRange::all(), Direction::Forward)) {
        Ok(v) => v.into_iter().collect(),
        Err(e) => panic!("full scan of {}: {e:?}", store.kind()),
    }
}

/// What a scan of `range` in `dir` order must return on `model`.
pub fn model_scan(model: &Model, range: &ScanRange, dir: Direction) -> Pairs {
    let mut out: Vec<_> = model
        .iter()
        .filter(|(k, _)| range.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if dir == Direction::Reverse {
        out.reverse();
    }
    out
}

/// Sum of key and value lengths of the model, as `StorageStats::live_bytes` counts.
pub fn model_live_bytes(model: &Model) -> u64 {
    model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
}

/// Instantiates each listed `fn name(kind: EngineKind)` once per engine, as the tests
/// `memory::name`, `bitcask::name` and `lsm::name` (filter with e.g. `bitcask::`);
/// `engine_tests!(only [bitcask => Bitcask]: name)` restricts the engines.
#[macro_export]
macro_rules! engine_tests {
    ($($test:ident),* $(,)?) => {
        $crate::engine_tests!(@engine memory, Memory, $($test),*);
        $crate::engine_tests!(@engine bitcask, Bitcask, $($test),*);
        $crate::engine_tests!(@engine lsm, Lsm, $($test),*);
    };
    (only [$($module:ident => $kind:ident),+ $(,)?]: $($test:ident),* $(,)?) => {
        $crate::engine_tests!(@each [$($test),*] $($module $kind)+);
    };
    (@each $tests:tt $($module:ident $kind:ident)+) => {
        $($crate::engine_tests!(@listed $module $kind $tests);)+
    };
    (@listed $module:ident $kind:ident [$($test:ident),*]) => {
        $crate::engine_tests!(@engine $module, $kind, $($test),*);
    };
    (@engine $module:ident, $kind:ident, $($test:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    let kind = keel_storage::EngineKind::$kind;
                    if $crate::common::engine_available(kind) {
                        super::$test(kind);
                    }
                }
            )*
        }
    };
}

/// Serialises the tests of a binary that spawns child processes. A child forked from one
/// test thread holds copies of every descriptor the process has open until its exec,
/// including other tests' directory-lock files, whose flock then outlives their close for
/// that moment; a test that reopens right then would see a spurious `Locked`. Holding
/// this for a whole test keeps spawns and other tests' stores apart.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A child process running one test of this very binary, with its stdout delivered line
/// by line (so reads can time out) and its stderr collected for failure messages.
pub struct ChildRun {
    /// The child.
    pub child: Child,
    lines: Receiver<String>,
    stdout_thread: Option<JoinHandle<()>>,
    stderr_thread: Option<JoinHandle<String>>,
}

/// Starts this test binary again, running only the (ignored) test `test_name` with
/// `env_key=env_val`. Works under `cargo test` and nextest alike: both run the libtest
/// harness binary, which understands these arguments.
pub fn spawn_self(test_name: &str, env_key: &str, env_val: &str) -> ChildRun {
    let exe = std::env::current_exe().expect("current_exe of the test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            test_name,
            "--nocapture",
            "--test-threads",
            "1",
            "--include-ignored",
        ])
        .env(env_key, env_val)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    let stdout = child.stdout.take().expect("child stdout is piped");
    let stderr = child.stderr.take().expect("child stderr is piped");
    let (tx, lines) = mpsc::channel();
    let stdout_thread = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr).take(1 << 20).read_to_string(&mut s);
        s
    });
    ChildRun {
        child,
        lines,
        stdout_thread: Some(stdout_thread),
        stderr_thread: Some(stderr_thread),
    }
}

impl ChildRun {
    /// The next stdout line, None at end of output; panics after `timeout`.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => Some(l),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "child produced no output for {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
        }
    }

    /// Kills the child with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every stdout line still buffered after the child ended (bounded by `timeout` each).
    pub fn drain(&mut self, timeout: Duration) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = self.next_line(timeout) {
            out.push(l);
        }
        if let Some(t) = self.stdout_thread.take() {
            let _ = t.join();
        }
        out
    }

    /// The child's stderr (waits for the child's stderr to close).
    pub fn stderr(&mut self) -> String {
        self.stderr_thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for ChildRun {
    fn drop(&mut self) {
        // Never leave a writer running behind a failed test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies the regular files of `from` into `to` (created), skipping those `skip` rejects.
pub fn copy_dir(from: &Path, to: &Path, skip: impl Fn(&str) -> bool) {
    std::fs::create_dir_all(to).expect("create copy dir");
    for entry in std::fs::read_dir(from).expect("read dir to copy") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if skip(&name) || !entry.file_type().expect("file type").is_file() {
            continue;
        }
        std::fs::copy(entry.path(), to.join(&name)).expect("copy file");
    }
}
