//! Command-line flags, named and behaving like redis-cli's.

use std::ffi::OsString;

use clap::{ArgAction, Parser};

/// keel-cli: a redis-cli compatible client for keel, plus typed gRPC verbs.
#[derive(Debug, Parser)]
#[command(
    name = "keel-cli",
    version,
    disable_help_flag = true,
    disable_version_flag = true,
    after_help = "Examples:\n  keel-cli SET k v\n  keel-cli -n 2 --raw KEYS '*'\n  keel-cli -r 5 -i 0.5 INCR counter\n  cat data.txt | keel-cli --pipe\n  keel-cli --scan --pattern 'user:*'\n  keel-cli kv set a=1 b=2 --ttl 10s\n  keel-cli kv txn < ops.txt"
)]
pub struct Args {
    /// Server hostname.
    #[arg(short = 'h', long = "host", default_value = "127.0.0.1")]
    pub host: String,
    /// Server port.
    #[arg(short = 'p', long = "port", default_value_t = 6379)]
    pub port: u16,
    /// Password for AUTH (or env KEEL_AUTH / REDISCLI_AUTH).
    #[arg(short = 'a', long = "pass")]
    pub password: Option<String>,
    /// ACL user name used with -a.
    #[arg(long = "user")]
    pub user: Option<String>,
    /// Database number.
    #[arg(short = 'n', default_value_t = 0)]
    pub db: u32,
    /// Speak RESP3 (HELLO 3).
    #[arg(short = '3')]
    pub resp3: bool,
    /// Raw output even on a terminal.
    #[arg(long = "raw")]
    pub raw: bool,
    /// Formatted output even when stdout is not a terminal.
    #[arg(long = "no-raw")]
    pub no_raw: bool,
    /// Run the command N times (-1: forever).
    #[arg(short = 'r', allow_negative_numbers = true)]
    pub repeat: Option<i64>,
    /// Seconds to wait between repeats (fractions allowed); also the --stat refresh.
    #[arg(short = 'i')]
    pub interval: Option<f64>,
    /// Read the last argument from stdin.
    #[arg(short = 'x')]
    pub stdin_last_arg: bool,
    /// Mass insert: send stdin (RESP or inline commands) and summarise the replies.
    #[arg(long = "pipe")]
    pub pipe: bool,
    /// Seconds --pipe waits for the last reply with no data arriving (0: forever).
    #[arg(long = "pipe-timeout", default_value_t = 30)]
    pub pipe_timeout: u64,
    /// List keys with SCAN, one per line.
    #[arg(long = "scan")]
    pub scan: bool,
    /// MATCH pattern for --scan.
    #[arg(long = "pattern")]
    pub pattern: Option<String>,
    /// COUNT hint for --scan.
    #[arg(long = "count")]
    pub count: Option<u64>,
    /// Sample PING latency until Ctrl-C (or --latency-samples).
    #[arg(long = "latency")]
    pub latency: bool,
    /// Stop --latency after this many samples.
    #[arg(long = "latency-samples")]
    pub latency_samples: Option<u64>,
    /// Rolling stats line (keys, memory, clients, requests) from INFO.
    #[arg(long = "stat")]
    pub stat: bool,
    /// Stop --stat after this many lines.
    #[arg(long = "stat-lines", hide = true)]
    pub stat_lines: Option<u64>,
    /// Show a progress bar on stderr even when it is not a terminal.
    #[arg(long = "progress")]
    pub progress: bool,
    /// gRPC port for the kv / metrics verbs [default: the -p port + 1000, as the server
    /// picks it, i.e. 7379].
    #[arg(long = "grpc-port")]
    pub grpc_port: Option<u16>,
    /// Do not warn about -a on the command line.
    #[arg(long = "no-auth-warning")]
    pub no_auth_warning: bool,
    /// Print help.
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Print version.
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    pub version: Option<bool>,
    /// Command and arguments (one-shot mode); none starts the REPL.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

impl Args {
    /// The gRPC port: --grpc-port, else the server's default for this RESP port (+1000).
    pub fn grpc_port(&self) -> u16 {
        self.grpc_port
            .unwrap_or_else(|| self.port.checked_add(1000).unwrap_or(0))
    }
}
