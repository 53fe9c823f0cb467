//! Test harness: an in-process keel server on an ephemeral port, and a runner for the
//! real keel-cli binary with bounded waits.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use keel_server::embedded::EmbeddedServer;
use keel_server::Config;

/// Upper bound of any wait in these tests.
pub const WAIT: Duration = Duration::from_secs(30);

/// A server running on its own runtime thread.
pub struct InProc {
    pub addr: SocketAddr,
    /// The gRPC address (None when the config turned gRPC off).
    pub grpc_addr: Option<SocketAddr>,
    server: EmbeddedServer,
    pub dir: tempfile::TempDir,
}

impl InProc {
    /// Starts a server with default settings.
    pub fn start_default() -> InProc {
        InProc::start(Config::default())
    }

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

    /// The port as a string, for -p.
    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// The gRPC port as a string, for --grpc-port.
    pub fn grpc_port(&self) -> String {
        self.grpc_addr
            .map(|a| a.port().to_string())
            .unwrap_or_default()
    }

    /// `-p PORT --grpc-port GPORT` followed by `args`.
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec![
            "-p".to_string(),
            self.port(),
            "--grpc-port".to_string(),
            self.grpc_port(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    /// Runs keel-cli against this server with `args`.
    pub fn cli(&self, args: &[&str]) -> Output {
        let all = self.argv(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run_cli(&all, None, &[])
    }

    /// Like [`InProc::cli`] with `stdin` fed to the process.
    pub fn cli_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let all = self.argv(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run_cli(&all, Some(stdin), &[])
    }
}

/// What a keel-cli run produced.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the keel-cli binary with a bounded wait (killed after [`WAIT`]).
pub fn run_cli(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel-cli"));
    cmd.args(args)
        .env_remove("KEEL_AUTH")
        .env_remove("REDISCLI_AUTH")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn keel-cli");
    if let Some(data) = stdin {
        let mut sin = child.stdin.take().expect("stdin");
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = sin.write_all(&data);
        });
    }
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("keel-cli {args:?} did not finish within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = String::from_utf8_lossy(&out_t.join().expect("stdout reader")).into_owned();
    let stderr = String::from_utf8_lossy(&err_t.join().expect("stderr reader")).into_owned();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// A sync RESP exchange over keel-client on a throwaway runtime (test setup/checks).
pub fn query(addr: SocketAddr, args: &[&str]) -> keel_client::Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let opts = keel_client::ConnectOptions::new("127.0.0.1", addr.port());
        let mut c = keel_client::Connection::connect(&opts)
            .await
            .expect("connect");
        c.command(args).await.expect("command")
    })
}
