//! Test harness: an in-process server on an ephemeral port, or the real binary for
//! restart and kill tests. Every wait is bounded.

#![allow(dead_code)]

pub mod raw;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use keel_server::embedded::{EmbedError, EmbeddedServer};
use keel_server::Config;

/// Upper bound of any wait in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

/// A server running on its own runtime thread, with its data in a temp dir.
pub struct InProc {
    pub addr: SocketAddr,
    /// The gRPC address (None when the config turned gRPC off).
    pub grpc_addr: Option<SocketAddr>,
    server: EmbeddedServer,
    pub dir: tempfile::TempDir,
}

impl InProc {
    /// Starts a server with `cfg` (port and dir are replaced).
    pub fn start(mut cfg: Config) -> InProc {
        let dir = tempfile::tempdir().expect("tempdir");
        cfg.port = 0;
        cfg.grpc.port = Some(0);
        cfg.dir = dir.path().join("data");
        let server = EmbeddedServer::start(cfg, 2, WAIT).expect("server did not start");
        InProc {
            addr: server.addr(),
            grpc_addr: server.grpc_addr(),
            server,
            dir,
        }
    }

    /// A connected client.
    pub fn client(&self) -> redis::Connection {
        connect(self.addr)
    }

    /// The redis URL of the server.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Stops the server and returns its result.
    pub fn stop(self) -> Result<(), EmbedError> {
        self.server.stop()
    }
}

/// Waits until INFO reports `n` blocked clients.
pub fn wait_blocked(con: &mut redis::Connection, n: usize) {
    let want = format!("blocked_clients:{n}\r");
    let deadline = Instant::now() + WAIT;
    loop {
        let info: String = redis::cmd("INFO").arg("clients").query(con).expect("info");
        if info.contains(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never reached {n} blocked: {info}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A sync client with bounded timeouts.
pub fn connect(addr: SocketAddr) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
    let con = client.get_connection_with_timeout(WAIT).expect("connect");
    con.set_read_timeout(Some(WAIT)).expect("timeout");
    con.set_write_timeout(Some(WAIT)).expect("timeout");
    con
}

/// The real binary, started on an ephemeral port.
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
    /// The gRPC address from the startup log (None when gRPC is off).
    pub grpc_addr: Option<SocketAddr>,
    pub lines: mpsc::Receiver<String>,
    /// Log lines up to and including the ready line.
    pub startup: Vec<String>,
}

/// Starts `keel-server` with data in `dir` and extra flags.
pub fn spawn_binary(dir: &Path, extra: &[&str]) -> Binary {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel-server"));
    cmd.arg("--port")
        .arg("0")
        .arg("--grpc-port")
        .arg("0")
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // Reaped by `Binary`'s Drop (or above when it never becomes ready).
    #[allow(clippy::zombie_processes)]
    let mut child = cmd.spawn().expect("spawn keel-server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let marker = "ready to accept connections on ";
    let mut startup = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("keel-server did not report its address");
            }
        };
        startup.push(line.clone());
        if let Some(pos) = line.find(marker) {
            let rest = &line[pos + marker.len()..];
            let addr = rest.split_whitespace().next().unwrap_or_default();
            let addr: SocketAddr = addr.parse().expect("address in the ready line");
            let grpc_marker = "gRPC API listening on ";
            let grpc_addr = startup.iter().find_map(|l| {
                let rest = &l[l.find(grpc_marker)? + grpc_marker.len()..];
                rest.split_whitespace().next()?.parse().ok()
            });
            return Binary {
                child,
                addr,
                grpc_addr,
                lines: rx,
                startup,
            };
        }
    }
}

impl Binary {
    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("keel-server did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill");
        let _ = self.child.wait();
    }

    /// Log lines seen so far (after the ready line).
    pub fn drain_lines(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Segment files in the WAL directory of data dir `dir`.
pub fn wal_segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The segment files in the WAL directory of data dir `dir` once no more than `n` are
/// left (the WAL's thread deletes those a snapshot covers after it), or after 10 s.
pub fn wal_segments_settled(dir: &Path, n: usize) -> Vec<PathBuf> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let segs = wal_segments(dir);
        if segs.len() <= n || std::time::Instant::now() >= deadline {
            return segs;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// An INFO persistence field of the server at `con`.
pub fn persistence_field(con: &mut redis::Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(con)
        .expect("info");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .trim()
        .to_string()
}
