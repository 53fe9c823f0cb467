//! The server's configuration: every setting is a CLI flag, an environment variable
//! (`KEEL_<NAME>`) and a key of the TOML file given with `--config`. Precedence is
//! CLI > environment > file > built-in default. Names follow redis.conf where Redis has
//! the setting; sizes take Redis's units (`100mb`, `1gb`, `64k`).
//!
//! [`Args`] is what clap parses (every field optional so "not given" is visible),
//! [`FileConfig`] what the file holds, and [`Config`] the resolved, typed result.
//! Settings CONFIG SET may change at runtime live in [`Config`] too; the server keeps
//! it behind a lock (see `server::Shared::config`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::Parser;
use keel_engine::EvictionPolicy;
use keel_storage::{EngineKind, SyncPolicy};
use serde::Deserialize;

/// A configuration that could not be read or makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown keys.
    #[error("invalid config file {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A setting has a value that does not parse or is not allowed.
    #[error("invalid value for '{name}': {reason}")]
    Invalid {
        /// Setting name (redis.conf spelling).
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

/// Command-line flags; each also reads `KEEL_<NAME>` from the environment.
#[derive(Debug, Default, Clone, Parser)]
#[command(
    name = "keel-server",
    version,
    about = "keel: a Redis-compatible key-value database (single node)",
    long_about = None
)]
pub struct Args {
    /// TOML configuration file (keys as the long flag names, e.g. `port = 6380`).
    #[arg(long, env = "KEEL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// TCP port for RESP clients [default: 6379].
    #[arg(long, env = "KEEL_PORT")]
    pub port: Option<u16>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "KEEL_BIND")]
    pub bind: Option<String>,
    /// Data directory (WAL, storage, snapshots) [default: ./keel-data].
    #[arg(long, env = "KEEL_DIR")]
    pub dir: Option<PathBuf>,
    /// Storage engine: memory, bitcask or lsm [default: memory].
    #[arg(long, env = "KEEL_ENGINE")]
    pub engine: Option<String>,
    /// WAL fsync policy: always, everysec or no [default: everysec].
    #[arg(long, env = "KEEL_APPENDFSYNC")]
    pub appendfsync: Option<String>,
    /// Log every write to the WAL: yes, or no to keep only snapshots taken at the save
    /// points (Redis's `appendonly no`: writes since the last snapshot are lost on a
    /// crash) [default: yes].
    #[arg(long, env = "KEEL_APPENDONLY")]
    pub appendonly: Option<String>,
    /// Password clients must send with AUTH (empty: none) [default: none].
    #[arg(long, env = "KEEL_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// File of ACL users (`user <name> <rules>...` lines) loaded at start and written by
    /// ACL SAVE; a file that does not exist yet is made by the first ACL SAVE, a file
    /// that does not apply stops the start [default: none: users live until restart].
    #[arg(long, env = "KEEL_ACLFILE")]
    pub aclfile: Option<PathBuf>,
    /// Most entries ACL LOG keeps [default: 128].
    #[arg(long, env = "KEEL_ACLLOG_MAX_LEN")]
    pub acllog_max_len: Option<usize>,
    /// Memory limit for data, with units (100mb, 1gb); 0 = no limit [default: 0].
    #[arg(long, env = "KEEL_MAXMEMORY")]
    pub maxmemory: Option<String>,
    /// What to do at maxmemory: noeviction, allkeys-lru, allkeys-lfu, allkeys-random,
    /// volatile-lru, volatile-lfu, volatile-random, volatile-ttl [default: noeviction].
    #[arg(long, env = "KEEL_MAXMEMORY_POLICY")]
    pub maxmemory_policy: Option<String>,
    /// Keys sampled per eviction [default: 5].
    #[arg(long, env = "KEEL_MAXMEMORY_SAMPLES")]
    pub maxmemory_samples: Option<usize>,
    /// Most simultaneous client connections [default: 10000].
    #[arg(long, env = "KEEL_MAXCLIENTS")]
    pub maxclients: Option<usize>,
    /// Worker threads of the shared runtime that serves connections; 0 = with the
    /// memory and bitcask engines one fewer than the cores (at least one), leaving a
    /// core to keel's own threads, the kernel's network processing and clients on the
    /// same machine; with lsm, whose requests cost several times more server time, one
    /// per core (see docs/benchmarks-history.md, "Runtime workers") [default: 0].
    #[arg(long, env = "KEEL_THREADS")]
    pub threads: Option<usize>,
    /// Serve connections on this many threads, each with its own event loop and the
    /// connections dealt to it at accept; 0 = on the shared runtime, whose threads
    /// (`threads`) steal work from each other. More throughput under pipelining when the
    /// cores are the server's own, a longer tail when clients share them (see
    /// docs/benchmarks-history.md, "I/O threads") [default: 0].
    #[arg(long, env = "KEEL_IO_THREADS")]
    pub io_threads: Option<usize>,
    /// Close clients idle for this many seconds; 0 = never [default: 0].
    #[arg(long, env = "KEEL_TIMEOUT")]
    pub timeout: Option<u64>,
    /// Largest bulk argument a client may send [default: 512mb].
    #[arg(long, env = "KEEL_PROTO_MAX_BULK_LEN")]
    pub proto_max_bulk_len: Option<String>,
    /// Turn transparent huge pages off for this process, as Redis does: yes or no. With
    /// them on, the first touch of each 2 MiB of a growing dataset zeroes it all at once,
    /// stalling every client for milliseconds [default: yes].
    #[arg(long, env = "KEEL_DISABLE_THP")]
    pub disable_thp: Option<String>,
    /// Cache of the bitcask (values) and lsm (half blocks, half rows: the newest values
    /// of hot keys) engines, with units; 0 = none. A working set that fits is read
    /// without touching the files [default: 64mb].
    #[arg(long, env = "KEEL_CACHE_SIZE")]
    pub cache_size: Option<String>,
    /// Largest unparsed input buffered per client before it is closed [default: 1gb].
    #[arg(long, env = "KEEL_CLIENT_QUERY_BUFFER_LIMIT")]
    pub client_query_buffer_limit: Option<String>,
    /// Take a snapshot and truncate the WAL once it has grown by this much; 0 = only on
    /// SAVE/BGSAVE [default: 64mb].
    #[arg(long, env = "KEEL_AUTO_SNAPSHOT_WAL_BYTES")]
    pub auto_snapshot_wal_bytes: Option<String>,
    /// ...and by this percentage of the last snapshot's size (the memory engine's
    /// checkpoint; Redis's auto-aof-rewrite-percentage), so a large dataset is not
    /// rewritten for every auto-snapshot-wal-bytes of log; 0 = the size alone
    /// [default: 100].
    #[arg(long, env = "KEEL_AUTO_SNAPSHOT_WAL_PERCENTAGE")]
    pub auto_snapshot_wal_percentage: Option<u64>,
    /// Redis's save points, "<secs> <changes> ...": with `--appendonly no` a snapshot
    /// starts once <changes> writes are <secs> old; with the log on, keel snapshots by
    /// WAL size and "" turns that off [default: "3600 1 300 100 60 10000"].
    #[arg(long, env = "KEEL_SAVE")]
    pub save: Option<String>,
    /// Log level: debug, verbose, notice, warning (Redis's) or trace/info/warn/error
    /// [default: notice].
    #[arg(long, env = "KEEL_LOGLEVEL")]
    pub loglevel: Option<String>,
    /// Output buffer limit of pub/sub and MONITOR clients, "<hard> <soft> <soft-secs>"
    /// as Redis's client-output-buffer-limit pubsub class [default: 32mb 8mb 60].
    #[arg(long, env = "KEEL_CLIENT_OUTPUT_BUFFER_LIMIT_PUBSUB")]
    pub client_output_buffer_limit_pubsub: Option<String>,
    /// Keyspace notification classes, Redis's letters (K E g $ l s h z x e t m d n A)
    /// [default: "" (off)].
    #[arg(long, env = "KEEL_NOTIFY_KEYSPACE_EVENTS")]
    pub notify_keyspace_events: Option<String>,
    /// Serve the gRPC API (keel.v1) beside RESP: true or false [default: true].
    #[arg(long, env = "KEEL_GRPC_ENABLED", value_name = "BOOL")]
    pub grpc_enabled: Option<bool>,
    /// TCP port of the gRPC API, on the same address as RESP [default: the RESP port +
    /// 1000, i.e. 7379; 0 when RESP's is 0 or above 64535].
    #[arg(long, env = "KEEL_GRPC_PORT")]
    pub grpc_port: Option<u16>,
    /// Idle time after which an open gRPC transaction or scan snapshot is dropped:
    /// seconds, or a number with `ms`/`s` [default: 60s].
    #[arg(long, env = "KEEL_GRPC_TXN_TIMEOUT")]
    pub grpc_txn_timeout: Option<String>,
    /// Most gRPC transactions (and, separately, scan snapshots) open at once
    /// [default: 1024].
    #[arg(long, env = "KEEL_GRPC_MAX_TXNS")]
    pub grpc_max_txns: Option<usize>,
    /// Largest gRPC message, request or response, with units [default: 64mb].
    #[arg(long, env = "KEEL_GRPC_MAX_MESSAGE_BYTES")]
    pub grpc_max_message_bytes: Option<String>,
}

/// The TOML file's keys: the long flag names (dashes or underscores both accepted).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// See [`Args::port`].
    #[serde(alias = "port")]
    pub port: Option<u16>,
    /// See [`Args::bind`].
    pub bind: Option<String>,
    /// See [`Args::dir`].
    pub dir: Option<PathBuf>,
    /// See [`Args::engine`].
    pub engine: Option<String>,
    /// See [`Args::appendfsync`].
    pub appendfsync: Option<String>,
    /// See [`Args::appendonly`].
    pub appendonly: Option<String>,
    /// See [`Args::requirepass`].
    pub requirepass: Option<String>,
    /// See [`Args::aclfile`].
    pub aclfile: Option<PathBuf>,
    /// See [`Args::acllog_max_len`].
    pub acllog_max_len: Option<usize>,
    /// See [`Args::maxmemory`]; a number (bytes) or a string with units.
    pub maxmemory: Option<SizeValue>,
    /// See [`Args::maxmemory_policy`].
    #[serde(alias = "maxmemory_policy")]
    pub maxmemory_policy: Option<String>,
    /// See [`Args::maxmemory_samples`].
    #[serde(alias = "maxmemory_samples")]
    pub maxmemory_samples: Option<usize>,
    /// See [`Args::maxclients`].
    pub maxclients: Option<usize>,
    /// See [`Args::threads`].
    pub threads: Option<usize>,
    /// See [`Args::io_threads`].
    #[serde(alias = "io_threads")]
    pub io_threads: Option<usize>,
    /// See [`Args::timeout`].
    pub timeout: Option<u64>,
    /// See [`Args::proto_max_bulk_len`].
    #[serde(alias = "proto_max_bulk_len")]
    pub proto_max_bulk_len: Option<SizeValue>,
    /// See [`Args::disable_thp`].
    #[serde(alias = "disable_thp")]
    pub disable_thp: Option<String>,
    /// See [`Args::cache_size`].
    #[serde(alias = "cache_size")]
    pub cache_size: Option<SizeValue>,
    /// See [`Args::client_query_buffer_limit`].
    #[serde(alias = "client_query_buffer_limit")]
    pub client_query_buffer_limit: Option<SizeValue>,
    /// See [`Args::auto_snapshot_wal_bytes`].
    #[serde(alias = "auto_snapshot_wal_bytes")]
    pub auto_snapshot_wal_bytes: Option<SizeValue>,
    /// See [`Args::auto_snapshot_wal_percentage`].
    #[serde(alias = "auto_snapshot_wal_percentage")]
    pub auto_snapshot_wal_percentage: Option<u64>,
    /// See [`Args::save`].
    pub save: Option<String>,
    /// See [`Args::loglevel`].
    pub loglevel: Option<String>,
    /// See [`Args::client_output_buffer_limit_pubsub`].
    #[serde(alias = "client_output_buffer_limit_pubsub")]
    pub client_output_buffer_limit_pubsub: Option<String>,
    /// See [`Args::notify_keyspace_events`].
    #[serde(alias = "notify_keyspace_events")]
    pub notify_keyspace_events: Option<String>,
    /// See [`Args::grpc_enabled`].
    #[serde(alias = "grpc_enabled")]
    pub grpc_enabled: Option<bool>,
    /// See [`Args::grpc_port`].
    #[serde(alias = "grpc_port")]
    pub grpc_port: Option<u16>,
    /// See [`Args::grpc_txn_timeout`]; a number (seconds) or a string.
    #[serde(alias = "grpc_txn_timeout")]
    pub grpc_txn_timeout: Option<SizeValue>,
    /// See [`Args::grpc_max_txns`].
    #[serde(alias = "grpc_max_txns")]
    pub grpc_max_txns: Option<usize>,
    /// See [`Args::grpc_max_message_bytes`].
    #[serde(alias = "grpc_max_message_bytes")]
    pub grpc_max_message_bytes: Option<SizeValue>,
}

/// A size in the file: a plain integer or a string with units.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// Bytes.
    Int(u64),
    /// "64mb", "1gb", …
    Text(String),
}

impl SizeValue {
    fn into_text(self) -> String {
        match self {
            SizeValue::Int(n) => n.to_string(),
            SizeValue::Text(s) => s,
        }
    }
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// TCP port (0 = pick a free one; the bound address is logged).
    pub port: u16,
    /// Listen address.
    pub bind: IpAddr,
    /// Data directory.
    pub dir: PathBuf,
    /// Storage engine.
    pub engine: EngineKind,
    /// WAL fsync policy.
    pub appendfsync: SyncPolicy,
    /// Every write is logged (Redis's `appendonly`); off, snapshots at the save points
    /// are all that persists.
    pub appendonly: bool,
    /// Redis's save points, (seconds, changes): with the log off, a snapshot starts when
    /// at least `changes` writes were made and the last snapshot is `seconds` old.
    pub save_points: Vec<(u64, u64)>,
    /// AUTH password (None: no password).
    pub requirepass: Option<String>,
    /// ACL file (None: users are not saved).
    pub aclfile: Option<PathBuf>,
    /// Most entries ACL LOG keeps.
    pub acllog_max_len: usize,
    /// Memory limit in bytes (0 = none).
    pub maxmemory: u64,
    /// Eviction policy.
    pub maxmemory_policy: EvictionPolicy,
    /// Keys sampled per eviction.
    pub maxmemory_samples: usize,
    /// Connection limit.
    pub maxclients: usize,
    /// Worker threads of the shared runtime (0: chosen by engine and cores; see
    /// [`Config::worker_threads`]).
    pub threads: usize,
    /// Threads with their own event loop that serve the connections (0: the shared
    /// runtime).
    pub io_threads: usize,
    /// Idle seconds before a client is closed (0 = never).
    pub timeout: u64,
    /// Largest bulk argument.
    pub proto_max_bulk_len: u64,
    /// Transparent huge pages are turned off for the process at start (Redis's
    /// `disable-thp`).
    pub disable_thp: bool,
    /// Cache budget of the bitcask and lsm engines in bytes (0 = none).
    pub cache_size: u64,
    /// Largest unparsed input per client.
    pub client_query_buffer_limit: u64,
    /// WAL growth that triggers a snapshot (0 = off).
    pub auto_snapshot_wal_bytes: u64,
    /// WAL growth, in percent of the last snapshot's size, that a snapshot also waits
    /// for (0 = none).
    pub auto_snapshot_wal_percentage: u64,
    /// Log level as given (Redis or tracing spelling).
    pub loglevel: String,
    /// The TOML file the settings came from (CONFIG REWRITE writes it back).
    pub config_file: Option<PathBuf>,
    /// Output buffer limit of pub/sub and MONITOR clients.
    pub client_output_buffer_limit_pubsub: OutputLimit,
    /// notify-keyspace-events flag bits (`server::pubsub::notify`).
    pub notify_keyspace_events: u32,
    /// The gRPC front-end's settings.
    pub grpc: GrpcConfig,
}

/// Settings of the gRPC front-end (`server::grpc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcConfig {
    /// Serve gRPC at all.
    pub enabled: bool,
    /// TCP port (0 = pick a free one), on [`Config::bind`]; None = the RESP port + 1000
    /// (see [`Config::grpc_port`]).
    pub port: Option<u16>,
    /// Idle time after which an open transaction or scan snapshot is dropped.
    pub txn_timeout: std::time::Duration,
    /// Most open transactions, and most open scan snapshots.
    pub max_txns: usize,
    /// Largest message in either direction.
    pub max_message_bytes: usize,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            enabled: true,
            port: None,
            txn_timeout: std::time::Duration::from_secs(60),
            max_txns: 1024,
            max_message_bytes: 64 << 20,
        }
    }
}

/// Parses a duration: plain seconds, or a number with `ms` or `s`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, ms) = match t.strip_suffix("ms") {
        Some(n) => (n, true),
        None => (t.strip_suffix('s').unwrap_or(&t), false),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (expected e.g. 60, 30s, 500ms)"))?;
    Ok(if ms {
        std::time::Duration::from_millis(n)
    } else {
        std::time::Duration::from_secs(n)
    })
}

/// One class of Redis's client-output-buffer-limit: disconnect past `hard` bytes, or
/// past `soft` bytes for `soft_secs` seconds (0 disables a limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimit {
    /// Hard limit in bytes.
    pub hard: u64,
    /// Soft limit in bytes.
    pub soft: u64,
    /// Seconds the soft limit may be exceeded.
    pub soft_secs: u64,
}

impl Default for OutputLimit {
    fn default() -> Self {
        OutputLimit {
            hard: 32 << 20,
            soft: 8 << 20,
            soft_secs: 60,
        }
    }
}

impl OutputLimit {
    /// Parses "<hard> <soft> <soft-secs>" (sizes with Redis's units).
    pub fn parse(s: &str) -> Result<OutputLimit, String> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        let [hard, soft, secs] = parts.as_slice() else {
            return Err(format!("'{s}' is not \"<hard> <soft> <soft-seconds>\""));
        };
        Ok(OutputLimit {
            hard: parse_size(hard)?,
            soft: parse_size(soft)?,
            soft_secs: secs
                .parse::<u64>()
                .map_err(|e| format!("soft seconds '{secs}': {e}"))?,
        })
    }

    /// Redis's CONFIG GET rendering (bytes).
    pub fn render(&self) -> String {
        format!("{} {} {}", self.hard, self.soft, self.soft_secs)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: IpAddr::from([127, 0, 0, 1]),
            dir: PathBuf::from("./keel-data"),
            engine: EngineKind::Memory,
            appendfsync: SyncPolicy::EverySec,
            appendonly: true,
            save_points: DEFAULT_SAVE_POINTS.to_vec(),
            requirepass: None,
            aclfile: None,
            acllog_max_len: 128,
            maxmemory: 0,
            maxmemory_policy: EvictionPolicy::NoEviction,
            maxmemory_samples: 5,
            maxclients: 10_000,
            threads: 0,
            io_threads: 0,
            timeout: 0,
            proto_max_bulk_len: 512 << 20,
            disable_thp: true,
            cache_size: 64 << 20,
            client_query_buffer_limit: 1 << 30,
            auto_snapshot_wal_bytes: 64 << 20,
            auto_snapshot_wal_percentage: 100,
            loglevel: "notice".into(),
            config_file: None,
            client_output_buffer_limit_pubsub: OutputLimit::default(),
            notify_keyspace_events: 0,
            grpc: GrpcConfig::default(),
        }
    }
}

/// Most worker threads `threads` may ask for.
pub const MAX_THREADS: usize = 1024;

/// Redis's default save points (redis.conf of Redis 7).
pub const DEFAULT_SAVE_POINTS: [(u64, u64); 3] = [(3600, 1), (300, 100), (60, 10_000)];

/// Parses Redis's `save` value: "<seconds> <changes>" pairs; "" is none.
pub fn parse_save_points(s: &str) -> Result<Vec<(u64, u64)>, String> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let nums: Option<Vec<u64>> = parts.iter().map(|p| p.parse::<u64>().ok()).collect();
    match nums {
        Some(n) if n.len().is_multiple_of(2) => Ok(n.chunks(2).map(|c| (c[0], c[1])).collect()),
        _ => Err(format!(
            "'{s}' is not a list of \"<seconds> <changes>\" pairs"
        )),
    }
}

/// Renders save points as Redis's CONFIG GET shows them.
pub fn render_save_points(points: &[(u64, u64)]) -> String {
    let parts: Vec<String> = points.iter().map(|(s, c)| format!("{s} {c}")).collect();
    parts.join(" ")
}

/// Parses Redis's yes/no.
pub fn parse_yes_no(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("'{v}' is not yes or no")),
    }
}

/// Parses a size with Redis's units: `k`/`m`/`g` are powers of 1000, `kb`/`mb`/`gb`
/// powers of 1024, case-insensitive; a bare number is bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "'{s}' is not a size (expected e.g. 1048576, 100mb, 1gb)"
        ));
    }
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is out of range"))?;
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => {
            return Err(format!(
                "'{s}' has an unknown unit (use k, kb, m, mb, g, gb)"
            ))
        }
    };
    n.checked_mul(mul)
        .ok_or_else(|| format!("'{s}' is out of range"))
}

/// Parses a log level, Redis's names included, into a tracing filter directive.
pub fn log_filter(level: &str) -> Result<&'static str, String> {
    Ok(match level.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "verbose" | "info" => "info",
        "notice" => "info",
        "warning" | "warn" => "warn",
        "error" | "nothing" => "error",
        other => return Err(format!("unknown log level '{other}'")),
    })
}

/// Parses an eviction policy name.
pub fn parse_policy(s: &str) -> Result<EvictionPolicy, String> {
    EvictionPolicy::from_str(s)
}

fn size(name: &'static str, v: Option<String>, default: u64) -> Result<u64, ConfigError> {
    match v {
        Some(s) => parse_size(&s).map_err(|r| invalid(name, r)),
        None => Ok(default),
    }
}

impl Config {
    /// Worker threads for the shared runtime: `threads`, or when that is 0, for the
    /// memory and bitcask engines one fewer than the cores this process may run on (at
    /// least one) and for lsm all of them. Measured on 2 cores shared with the
    /// clients: a memory-engine request costs so little server time that one worker
    /// keeps up, and the second one's hand-offs cost more than it gives (pipeline 1:
    /// 4-8% less CPU per request). Since its key directory is hashed, a bitcask read
    /// costs 1.2 times a memory-engine read, and one worker served bitcask GET -P 16
    /// 23% faster and -P 1 SETs 6% faster than two (pipelined SETs 9% slower); an lsm
    /// read costs about 8 times as much, and needs the second worker.
    pub fn worker_threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        match (self.threads, self.engine) {
            (0, EngineKind::Memory | EngineKind::Bitcask) => cores.saturating_sub(1).max(1),
            (0, _) => cores,
            (n, _) => n,
        }
    }

    /// Whether a shutdown without SAVE or NOSAVE snapshots: with the log off and save
    /// points set, as Redis does; with the log on, the WAL already holds every write.
    pub fn saves_on_exit(&self) -> bool {
        !self.appendonly && !self.save_points.is_empty()
    }

    /// Parses the process's command line and environment, reads the file if one is
    /// named, and resolves everything.
    pub fn load() -> Result<Config, ConfigError> {
        Config::from_args(Args::parse())
    }

    /// Resolves `args` (CLI and environment already merged by clap) over the file they
    /// name, over the defaults.
    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Config::resolve(args, file)
    }

    /// Merges `args` over `file` over the defaults and checks the result.
    pub fn resolve(args: Args, file: FileConfig) -> Result<Config, ConfigError> {
        let d = Config::default();
        let resp_port = args.port.or(file.port).unwrap_or(d.port);
        let grpc = resolve_grpc(&args, &file, &d.grpc)?;
        let bind = match args.bind.or(file.bind) {
            Some(b) => b
                .parse::<IpAddr>()
                .map_err(|e| invalid("bind", format!("'{b}': {e}")))?,
            None => d.bind,
        };
        let engine = match args.engine.or(file.engine) {
            Some(e) => EngineKind::from_str(&e).map_err(|e| invalid("engine", e.to_string()))?,
            None => d.engine,
        };
        let appendfsync = match args.appendfsync.or(file.appendfsync) {
            Some(p) => {
                SyncPolicy::from_str(&p).map_err(|e| invalid("appendfsync", e.to_string()))?
            }
            None => d.appendfsync,
        };
        let maxmemory_policy = match args.maxmemory_policy.or(file.maxmemory_policy) {
            Some(p) => parse_policy(&p).map_err(|r| invalid("maxmemory-policy", r))?,
            None => d.maxmemory_policy,
        };
        let maxmemory = size(
            "maxmemory",
            args.maxmemory.or(file.maxmemory.map(SizeValue::into_text)),
            d.maxmemory,
        )?;
        let save = args.save.or(file.save);
        let mut auto_snapshot_wal_bytes = size(
            "auto-snapshot-wal-bytes",
            args.auto_snapshot_wal_bytes
                .or(file.auto_snapshot_wal_bytes.map(SizeValue::into_text)),
            d.auto_snapshot_wal_bytes,
        )?;
        let save_points = match &save {
            Some(s) => parse_save_points(s).map_err(|e| invalid("save", e))?,
            None => d.save_points.clone(),
        };
        // With the log on, Redis's `save ""` turns the WAL-size trigger off.
        if save_points.is_empty() {
            auto_snapshot_wal_bytes = 0;
        }
        let appendonly = match args.appendonly.or(file.appendonly) {
            Some(v) => parse_yes_no(&v).map_err(|e| invalid("appendonly", e))?,
            None => d.appendonly,
        };
        let disable_thp = match args.disable_thp.or(file.disable_thp) {
            Some(v) => parse_yes_no(&v).map_err(|e| invalid("disable-thp", e))?,
            None => d.disable_thp,
        };
        let loglevel = args.loglevel.or(file.loglevel).unwrap_or(d.loglevel);
        log_filter(&loglevel).map_err(|r| invalid("loglevel", r))?;
        let requirepass = args
            .requirepass
            .or(file.requirepass)
            .filter(|p| !p.is_empty());
        let client_output_buffer_limit_pubsub = match args
            .client_output_buffer_limit_pubsub
            .or(file.client_output_buffer_limit_pubsub)
        {
            Some(s) => OutputLimit::parse(&s)
                .map_err(|r| invalid("client-output-buffer-limit-pubsub", r))?,
            None => d.client_output_buffer_limit_pubsub,
        };
        let notify_keyspace_events =
            match args.notify_keyspace_events.or(file.notify_keyspace_events) {
                Some(s) => crate::server::pubsub::notify::parse(&s).ok_or_else(|| {
                    invalid(
                        "notify-keyspace-events",
                        format!("'{s}': unknown class letter"),
                    )
                })?,
                None => d.notify_keyspace_events,
            };
        let cfg = Config {
            grpc,
            config_file: args.config.clone(),
            port: resp_port,
            bind,
            dir: args.dir.or(file.dir).unwrap_or(d.dir),
            engine,
            appendfsync,
            appendonly,
            disable_thp,
            save_points,
            requirepass,
            aclfile: args.aclfile.or(file.aclfile),
            acllog_max_len: args
                .acllog_max_len
                .or(file.acllog_max_len)
                .unwrap_or(d.acllog_max_len),
            maxmemory,
            maxmemory_policy,
            maxmemory_samples: args
                .maxmemory_samples
                .or(file.maxmemory_samples)
                .unwrap_or(d.maxmemory_samples),
            maxclients: args.maxclients.or(file.maxclients).unwrap_or(d.maxclients),
            threads: args.threads.or(file.threads).unwrap_or(d.threads),
            io_threads: args.io_threads.or(file.io_threads).unwrap_or(d.io_threads),
            timeout: args.timeout.or(file.timeout).unwrap_or(d.timeout),
            proto_max_bulk_len: size(
                "proto-max-bulk-len",
                args.proto_max_bulk_len
                    .or(file.proto_max_bulk_len.map(SizeValue::into_text)),
                d.proto_max_bulk_len,
            )?,
            cache_size: size(
                "cache-size",
                args.cache_size
                    .or(file.cache_size.map(SizeValue::into_text)),
                d.cache_size,
            )?,
            client_query_buffer_limit: size(
                "client-query-buffer-limit",
                args.client_query_buffer_limit
                    .or(file.client_query_buffer_limit.map(SizeValue::into_text)),
                d.client_query_buffer_limit,
            )?,
            auto_snapshot_wal_bytes,
            auto_snapshot_wal_percentage: args
                .auto_snapshot_wal_percentage
                .or(file.auto_snapshot_wal_percentage)
                .unwrap_or(d.auto_snapshot_wal_percentage),
            loglevel,
            client_output_buffer_limit_pubsub,
            notify_keyspace_events,
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// Rejects combinations that cannot work.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.maxmemory > 0 && self.engine == EngineKind::Lsm {
            return Err(invalid(
                "maxmemory",
                "maxmemory is not supported with the lsm engine (it cannot report live \
                 bytes); use the memory or bitcask engine, or set maxmemory 0",
            ));
        }
        if self.maxclients == 0 {
            return Err(invalid("maxclients", "must be at least 1"));
        }
        if self.threads > MAX_THREADS {
            return Err(invalid("threads", format!("must be at most {MAX_THREADS}")));
        }
        if self.io_threads > crate::server::io_threads::MAX_IO_THREADS {
            return Err(invalid(
                "io-threads",
                format!(
                    "must be at most {}",
                    crate::server::io_threads::MAX_IO_THREADS
                ),
            ));
        }
        if self.maxmemory_samples == 0 {
            return Err(invalid("maxmemory-samples", "must be at least 1"));
        }
        if self.grpc.txn_timeout.is_zero() {
            return Err(invalid("grpc-txn-timeout", "must be more than 0"));
        }
        if self.grpc.max_txns == 0 {
            return Err(invalid("grpc-max-txns", "must be at least 1"));
        }
        if self.grpc.max_message_bytes < 1024 {
            return Err(invalid("grpc-max-message-bytes", "must be at least 1kb"));
        }
        if self.proto_max_bulk_len < 1024 {
            return Err(invalid("proto-max-bulk-len", "must be at least 1kb"));
        }
        Ok(())
    }

    /// The gRPC port to bind: the configured one, else the RESP port + 1000.
    pub fn grpc_port(&self) -> u16 {
        self.grpc
            .port
            .unwrap_or_else(|| default_grpc_port(self.port))
    }

    /// The tracing filter directive of the log level.
    pub fn log_directive(&self) -> &'static str {
        log_filter(&self.loglevel).unwrap_or("info")
    }
}

/// The gRPC port when none is configured: RESP's + 1000 (6379 → 7379), so two servers
/// started with different `--port`s do not fight over one gRPC port; a server on an
/// ephemeral RESP port gets an ephemeral gRPC port too.
fn default_grpc_port(resp_port: u16) -> u16 {
    match resp_port {
        0 => 0,
        p => p.checked_add(1000).unwrap_or(0),
    }
}

fn resolve_grpc(args: &Args, file: &FileConfig, d: &GrpcConfig) -> Result<GrpcConfig, ConfigError> {
    let txn_timeout = match args
        .grpc_txn_timeout
        .clone()
        .or(file.grpc_txn_timeout.clone().map(SizeValue::into_text))
    {
        Some(t) => parse_duration(&t).map_err(|r| invalid("grpc-txn-timeout", r))?,
        None => d.txn_timeout,
    };
    let max_message_bytes = size(
        "grpc-max-message-bytes",
        args.grpc_max_message_bytes.clone().or(file
            .grpc_max_message_bytes
            .clone()
            .map(SizeValue::into_text)),
        d.max_message_bytes as u64,
    )?;
    Ok(GrpcConfig {
        enabled: args.grpc_enabled.or(file.grpc_enabled).unwrap_or(d.enabled),
        port: args.grpc_port.or(file.grpc_port),
        txn_timeout,
        max_txns: args
            .grpc_max_txns
            .or(file.grpc_max_txns)
            .unwrap_or(d.max_txns),
        max_message_bytes: usize::try_from(max_message_bytes)
            .map_err(|_| invalid("grpc-max-message-bytes", "too large"))?,
    })
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(&text).map_err(|reason| ConfigError::Parse {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses the text of a config file.
pub fn parse_file(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Env vars are process-global: tests that parse arguments (which reads them) take
    /// this lock so the one test that sets some does not leak into the others.
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn env_lock() -> std::sync::MutexGuard<'static, ()> {
        ENV.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn args(argv: &[&str]) -> Args {
        let mut full = vec!["keel-server"];
        full.extend_from_slice(argv);
        Args::try_parse_from(full).expect("args parse")
    }

    #[test]
    fn sizes_use_redis_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("1k"), Ok(1000));
        assert_eq!(parse_size("1kb"), Ok(1024));
        assert_eq!(parse_size("100mb"), Ok(100 << 20));
        assert_eq!(parse_size("100MB"), Ok(100 << 20));
        assert_eq!(parse_size("2m"), Ok(2_000_000));
        assert_eq!(parse_size("1gb"), Ok(1 << 30));
        assert_eq!(parse_size("3g"), Ok(3_000_000_000));
        assert!(parse_size("mb").is_err());
        assert!(parse_size("12xb").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999gb").is_err());
        assert!(parse_size("18446744073709551615gb").is_err());
    }

    #[test]
    fn defaults_with_nothing_given() {
        let c = Config::resolve(Args::default(), FileConfig::default()).expect("resolve");
        assert_eq!(c, Config::default());
        assert_eq!(c.port, 6379);
        assert_eq!(c.bind.to_string(), "127.0.0.1");
        assert_eq!(c.dir, PathBuf::from("./keel-data"));
        assert_eq!(c.engine, EngineKind::Memory);
        assert_eq!(c.appendfsync, SyncPolicy::EverySec);
    }

    #[test]
    fn cli_beats_file_beats_default() {
        let _g = env_lock();
        let file = parse_file(
            "port = 7000\nbind = \"0.0.0.0\"\nmaxmemory = \"10mb\"\nmaxmemory-policy = \"allkeys-lru\"\n\
             timeout = 30\nengine = \"bitcask\"\n",
        )
        .expect("file");
        let c = Config::resolve(args(&["--port", "7001", "--maxmemory", "1gb"]), file)
            .expect("resolve");
        assert_eq!(c.port, 7001, "CLI wins over the file");
        assert_eq!(c.maxmemory, 1 << 30, "CLI wins over the file");
        assert_eq!(c.bind.to_string(), "0.0.0.0", "file wins over the default");
        assert_eq!(c.maxmemory_policy, EvictionPolicy::AllKeysLru);
        assert_eq!(c.timeout, 30);
        assert_eq!(c.engine, EngineKind::Bitcask);
        assert_eq!(c.maxclients, 10_000, "default when neither gives it");
    }

    #[test]
    fn env_sits_between_cli_and_file() {
        let _g = env_lock();
        std::env::set_var("KEEL_TIMEOUT", "42");
        std::env::set_var("KEEL_MAXCLIENTS", "77");
        let file = parse_file("timeout = 5\nmaxclients = 9\nport = 7100\n").expect("file");
        let c = Config::resolve(args(&["--maxclients", "88"]), file).expect("resolve");
        std::env::remove_var("KEEL_TIMEOUT");
        std::env::remove_var("KEEL_MAXCLIENTS");
        assert_eq!(c.timeout, 42, "env wins over the file");
        assert_eq!(c.maxclients, 88, "CLI wins over env");
        assert_eq!(c.port, 7100, "file applies when env and CLI are silent");
    }

    #[test]
    fn threads_default_by_engine_and_are_bounded() {
        let c = Config::default();
        assert_eq!(c.threads, 0);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(c.worker_threads(), cores.saturating_sub(1).max(1));
        let c = Config::resolve(args(&["--engine", "bitcask"]), FileConfig::default())
            .expect("resolve");
        assert_eq!(c.worker_threads(), cores.saturating_sub(1).max(1));
        let c =
            Config::resolve(args(&["--engine", "lsm"]), FileConfig::default()).expect("resolve");
        assert_eq!(c.worker_threads(), cores, "lsm takes every core");
        let c = Config::resolve(args(&["--threads", "3"]), FileConfig::default()).expect("resolve");
        assert_eq!((c.threads, c.worker_threads()), (3, 3));
        let f = parse_file("threads = 2\n").expect("file");
        assert_eq!(
            Config::resolve(Args::default(), f)
                .expect("resolve")
                .worker_threads(),
            2
        );
        let err = Config::resolve(args(&["--threads", "1025"]), FileConfig::default())
            .expect_err("above the limit");
        assert!(err.to_string().contains("threads"), "{err}");
        assert!(err.to_string().contains("at most 1024"), "{err}");
    }

    #[test]
    fn io_threads_is_off_by_default_and_bounded() {
        assert_eq!(Config::default().io_threads, 0);
        let c =
            Config::resolve(args(&["--io-threads", "3"]), FileConfig::default()).expect("resolve");
        assert_eq!(c.io_threads, 3);
        let f = parse_file("io-threads = 2\n").expect("file");
        assert_eq!(
            Config::resolve(Args::default(), f)
                .expect("resolve")
                .io_threads,
            2
        );
        let err = Config::resolve(args(&["--io-threads", "129"]), FileConfig::default())
            .expect_err("above the limit");
        assert!(err.to_string().contains("io-threads"), "{err}");
        assert!(err.to_string().contains("at most 128"), "{err}");
    }

    #[test]
    fn file_accepts_numbers_and_rejects_unknown_keys() {
        let f = parse_file("maxmemory = 1048576\nproto-max-bulk-len = \"1mb\"\n").expect("file");
        let c = Config::resolve(Args::default(), f).expect("resolve");
        assert_eq!(c.maxmemory, 1 << 20);
        assert_eq!(c.proto_max_bulk_len, 1 << 20);
        assert!(parse_file("no-such-setting = 1\n").is_err());
    }

    #[test]
    fn disable_thp_is_on_by_default_and_takes_yes_or_no() {
        assert!(Config::default().disable_thp);
        let c = Config::resolve(args(&["--disable-thp", "no"]), FileConfig::default())
            .expect("resolve");
        assert!(!c.disable_thp);
        let f = parse_file("disable-thp = \"no\"\n").expect("file");
        assert!(
            !Config::resolve(Args::default(), f)
                .expect("resolve")
                .disable_thp
        );
        let f = parse_file("disable_thp = \"YES\"\n").expect("file");
        assert!(
            Config::resolve(Args::default(), f)
                .expect("resolve")
                .disable_thp
        );
        let e = Config::resolve(args(&["--disable-thp", "maybe"]), FileConfig::default())
            .expect_err("not yes or no");
        assert!(e.to_string().contains("disable-thp"), "{e}");
    }

    #[test]
    fn cache_size_takes_units_from_cli_and_file() {
        assert_eq!(Config::default().cache_size, 64 << 20);
        let c = Config::resolve(args(&["--cache-size", "1gb"]), FileConfig::default())
            .expect("resolve");
        assert_eq!(c.cache_size, 1 << 30);
        let f = parse_file("cache-size = \"0\"\n").expect("file");
        assert_eq!(
            Config::resolve(Args::default(), f)
                .expect("resolve")
                .cache_size,
            0
        );
        let f = parse_file("cache_size = 4096\n").expect("file");
        assert_eq!(
            Config::resolve(Args::default(), f)
                .expect("resolve")
                .cache_size,
            4096
        );
        let e = Config::resolve(args(&["--cache-size", "lots"]), FileConfig::default())
            .expect_err("not a size");
        assert!(e.to_string().contains("cache-size"), "{e}");
    }

    #[test]
    fn bad_values_and_combinations_are_refused() {
        let _g = env_lock();
        let bad = |argv: &[&str]| Config::resolve(args(argv), FileConfig::default());
        assert!(bad(&["--engine", "rocks"]).is_err());
        assert!(bad(&["--appendfsync", "sometimes"]).is_err());
        assert!(bad(&["--maxmemory", "lots"]).is_err());
        assert!(bad(&["--maxmemory-policy", "random"]).is_err());
        assert!(bad(&["--bind", "localhost:1"]).is_err());
        assert!(bad(&["--loglevel", "chatty"]).is_err());
        assert!(bad(&["--save", "900"]).is_err());
        let lsm = bad(&["--engine", "lsm", "--maxmemory", "100mb"]);
        let msg = lsm.expect_err("lsm + maxmemory").to_string();
        assert!(msg.contains("lsm"), "{msg}");
        assert!(bad(&["--engine", "lsm"]).is_ok());
    }

    #[test]
    fn redis_save_maps_onto_the_wal_trigger() {
        let _g = env_lock();
        let off = Config::resolve(args(&["--save", ""]), FileConfig::default()).expect("off");
        assert_eq!(off.auto_snapshot_wal_bytes, 0);
        let kept = Config::resolve(
            args(&["--save", "900 1 300 10", "--auto-snapshot-wal-bytes", "8mb"]),
            FileConfig::default(),
        )
        .expect("kept");
        assert_eq!(kept.auto_snapshot_wal_bytes, 8 << 20);
        assert_eq!(kept.save_points, vec![(900, 1), (300, 10)]);
        assert_eq!(off.save_points, Vec::<(u64, u64)>::new());
    }

    #[test]
    fn the_snapshot_percentage_resolves_from_flag_file_and_default() {
        let _g = env_lock();
        let d = Config::resolve(args(&[]), FileConfig::default()).expect("defaults");
        assert_eq!(d.auto_snapshot_wal_percentage, 100);
        let file: FileConfig = toml::from_str("auto-snapshot-wal-percentage = 50").expect("file");
        let f = Config::resolve(args(&[]), file).expect("file value");
        assert_eq!(f.auto_snapshot_wal_percentage, 50);
        let file: FileConfig = toml::from_str("auto_snapshot_wal_percentage = 50").expect("file");
        let over = Config::resolve(args(&["--auto-snapshot-wal-percentage", "0"]), file)
            .expect("flag over file");
        assert_eq!(over.auto_snapshot_wal_percentage, 0);
        assert!(
            Args::try_parse_from(["keel-server", "--auto-snapshot-wal-percentage", "-5"]).is_err()
        );
    }

    #[test]
    fn appendonly_and_save_points_resolve() {
        let _g = env_lock();
        let d = Config::resolve(args(&[]), FileConfig::default()).expect("defaults");
        assert!(d.appendonly);
        assert_eq!(d.save_points, DEFAULT_SAVE_POINTS.to_vec());
        assert_eq!(
            render_save_points(&d.save_points),
            "3600 1 300 100 60 10000"
        );
        let off = Config::resolve(
            args(&["--appendonly", "NO", "--save", "60 5"]),
            FileConfig::default(),
        )
        .expect("appendonly no");
        assert!(!off.appendonly);
        assert_eq!(off.save_points, vec![(60, 5)]);
        let file = FileConfig {
            appendonly: Some("no".into()),
            ..FileConfig::default()
        };
        assert!(!Config::resolve(args(&[]), file).expect("file").appendonly);
        let e = Config::resolve(args(&["--appendonly", "maybe"]), FileConfig::default());
        assert!(e.is_err_and(|e| e.to_string().contains("appendonly")));
        assert!(parse_save_points("60").is_err());
        assert!(parse_save_points("60 x").is_err());
        assert_eq!(parse_save_points("  ").expect("empty"), vec![]);
    }

    #[test]
    fn grpc_settings_resolve_from_flags_and_file() {
        let _g = env_lock();
        let d = Config::resolve(Args::default(), FileConfig::default()).expect("defaults");
        assert!(d.grpc.enabled);
        assert_eq!(d.grpc_port(), 7379);
        // Unset, it follows the RESP port, so two servers on different ports coexist.
        let follow = |p: &str| Config::resolve(args(&["--port", p]), FileConfig::default());
        assert_eq!(follow("6400").expect("6400").grpc_port(), 7400);
        assert_eq!(follow("0").expect("0").grpc_port(), 0);
        assert_eq!(follow("65000").expect("65000").grpc_port(), 0);
        let file = parse_file(
            "grpc-port = 7400\ngrpc-txn-timeout = 5\ngrpc-max-message-bytes = \"1mb\"\n",
        )
        .expect("file");
        let c = Config::resolve(
            args(&["--grpc-enabled", "false", "--grpc-txn-timeout", "250ms"]),
            file,
        )
        .expect("resolve");
        assert!(!c.grpc.enabled);
        assert_eq!(c.grpc_port(), 7400);
        assert_eq!(c.grpc.txn_timeout, std::time::Duration::from_millis(250));
        assert_eq!(c.grpc.max_message_bytes, 1 << 20);
        let f = parse_file("grpc-txn-timeout = 5\n").expect("file");
        let c = Config::resolve(Args::default(), f).expect("resolve");
        assert_eq!(c.grpc.txn_timeout, std::time::Duration::from_secs(5));
        let bad = |argv: &[&str]| Config::resolve(args(argv), FileConfig::default());
        assert!(bad(&["--grpc-txn-timeout", "0"]).is_err());
        assert!(bad(&["--grpc-txn-timeout", "soon"]).is_err());
        assert!(bad(&["--grpc-max-txns", "0"]).is_err());
        assert!(bad(&["--grpc-max-message-bytes", "10"]).is_err());
    }

    #[test]
    fn empty_requirepass_means_none() {
        let _g = env_lock();
        let c =
            Config::resolve(args(&["--requirepass", ""]), FileConfig::default()).expect("resolve");
        assert_eq!(c.requirepass, None);
        let c = Config::resolve(args(&["--requirepass", "s3cret"]), FileConfig::default())
            .expect("resolve");
        assert_eq!(c.requirepass.as_deref(), Some("s3cret"));
    }
}
