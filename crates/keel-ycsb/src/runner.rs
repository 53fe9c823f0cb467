//! The load and run phases: one tokio task per client, each on its own connection,
//! timing every operation into per-task histograms that are merged at the end.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::{Db, DbError, RecordShape, INDEX_KEY};
use crate::generator::{AckCounter, Latest, Rng, ScrambledZipfian};
use crate::resp::{ClientError, Conn, Reply};
use crate::server_cpu;
use crate::stats::Stats;
use crate::workload::{Distribution, Op, Workload};

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnect attempts after a connection fails, before the task gives up.
const RECONNECT_ATTEMPTS: u32 = 3;
/// Error messages kept (and printed) per phase.
const ERROR_SAMPLES: usize = 10;
/// Draws of the zipfian key chooser before falling back to a uniform pick among the
/// existing keys (the chooser's range includes keys not inserted yet).
const KEY_DRAWS: usize = 1000;

/// Why a phase could not run at all (per-operation failures are counted instead).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The first connection failed.
    #[error("{phase}: {source}")]
    Connect {
        /// The phase.
        phase: &'static str,
        /// The cause.
        #[source]
        source: ClientError,
    },
    /// The server holds no records to run against.
    #[error("run: {addr} has no records in {INDEX_KEY} (run the load phase first)")]
    NotLoaded {
        /// The server address.
        addr: SocketAddr,
    },
    /// ZCARD of the index failed.
    #[error("run: ZCARD {INDEX_KEY} on {addr}: {reply}")]
    Count {
        /// The server address.
        addr: SocketAddr,
        /// The reply, as text.
        reply: String,
    },
    /// A client task panicked.
    #[error("{phase}: client task failed: {detail}")]
    Task {
        /// The phase.
        phase: &'static str,
        /// The join error.
        detail: String,
    },
}

/// Settings of the load phase.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Server address.
    pub addr: SocketAddr,
    /// Records to insert (key numbers 0..records).
    pub records: u64,
    /// Concurrent connections.
    pub threads: usize,
    /// Seed of the value generators.
    pub seed: u64,
    /// Record shape.
    pub shape: RecordShape,
    /// Server process whose CPU time is sampled around the phase.
    pub server_pid: Option<u32>,
}

/// Settings of the run phase.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Server address.
    pub addr: SocketAddr,
    /// The workload.
    pub workload: Workload,
    /// Stop after this many operations in all (None: only the duration bounds the run).
    pub ops: Option<u64>,
    /// Stop after this long (None: only the operation count bounds the run).
    pub duration: Option<Duration>,
    /// Concurrent connections.
    pub threads: usize,
    /// Seed of the key choosers and values.
    pub seed: u64,
    /// Record shape.
    pub shape: RecordShape,
    /// Print progress to stderr this often.
    pub progress: Option<Duration>,
    /// Server process whose CPU time is sampled around the phase.
    pub server_pid: Option<u32>,
}

/// Figures of one phase.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    /// Merged figures of every task.
    pub stats: Stats,
    /// Wall time from the first operation to the last task's end.
    pub elapsed: Duration,
    /// Records in the store when the phase started.
    pub records: u64,
    /// The first few error messages.
    pub error_samples: Vec<String>,
    /// Operations completed, successful or not.
    pub done: u64,
    /// CPU time (user + system) the server process used during the phase.
    pub server_cpu: Option<Duration>,
}

/// Samples a server's CPU time; None (with a warning) when it cannot be read.
fn sample_cpu(pid: Option<u32>) -> Option<Duration> {
    let pid = pid?;
    match server_cpu::cpu_time(pid) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("keel-ycsb: server CPU time not measured: {e}");
            None
        }
    }
}

fn cpu_between(before: Option<Duration>, pid: Option<u32>) -> Option<Duration> {
    let before = before?;
    Some(sample_cpu(pid)?.saturating_sub(before))
}

/// State every task of a phase shares.
struct Shared {
    phase: &'static str,
    addr: SocketAddr,
    done: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    fn new(phase: &'static str, addr: SocketAddr) -> Arc<Shared> {
        Arc::new(Shared {
            phase,
            addr,
            done: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
        })
    }

    fn note_error(&self, op: Op, e: &DbError) {
        let mut v = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() < ERROR_SAMPLES {
            let msg = format!("{} {}: {e}", self.phase, op.name());
            eprintln!("keel-ycsb: error: {msg}");
            v.push(msg);
        }
    }

    fn samples(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Per-task seed: distinct for every task, fixed for a given seed.
fn task_seed(seed: u64, task: usize) -> u64 {
    let mut r = Rng::new(seed ^ (task as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    r.next_u64()
}

/// One client: a connection, its own RNG and its own figures.
struct Worker {
    db: Db,
    rng: Rng,
    stats: Stats,
    shared: Arc<Shared>,
}

impl Worker {
    /// Times `op`'s future, counts its outcome, and reconnects after a connection
    /// failure. Returns false when the connection could not be restored.
    async fn account<T>(&mut self, op: Op, started: Instant, r: Result<T, DbError>) -> bool {
        self.shared.done.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(_) => {
                self.stats.op_mut(op).record(started.elapsed());
                true
            }
            Err(e) => {
                self.stats.op_mut(op).errors += 1;
                self.shared.note_error(op, &e);
                if e.is_connection() {
                    self.reconnect().await
                } else {
                    true
                }
            }
        }
    }

    async fn reconnect(&mut self) -> bool {
        for attempt in 0..RECONNECT_ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            if let Ok(c) = Conn::connect(self.shared.addr, CONNECT_TIMEOUT).await {
                self.db.replace_conn(c);
                return true;
            }
        }
        eprintln!(
            "keel-ycsb: {}: {}: reconnecting failed {RECONNECT_ATTEMPTS} times; this client stops",
            self.shared.phase, self.shared.addr
        );
        false
    }
}

async fn connect_all(
    phase: &'static str,
    addr: SocketAddr,
    n: usize,
) -> Result<Vec<Conn>, RunError> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(
            Conn::connect(addr, CONNECT_TIMEOUT)
                .await
                .map_err(|source| RunError::Connect { phase, source })?,
        );
    }
    Ok(conns)
}

async fn join_all(
    phase: &'static str,
    handles: Vec<tokio::task::JoinHandle<Stats>>,
) -> Result<Stats, RunError> {
    let mut stats = Stats::default();
    for h in handles {
        let s = h.await.map_err(|e| RunError::Task {
            phase,
            detail: e.to_string(),
        })?;
        stats.merge(&s);
    }
    Ok(stats)
}

fn spawn_progress(
    shared: Arc<Shared>,
    every: Option<Duration>,
    total: Option<u64>,
) -> Option<tokio::task::JoinHandle<()>> {
    let every = every?;
    Some(tokio::spawn(async move {
        let start = Instant::now();
        let mut last = 0u64;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            let done = shared.done.load(Ordering::Relaxed);
            let rate = (done - last) as f64 / every.as_secs_f64();
            last = done;
            let of = total.map(|t| format!("/{t}")).unwrap_or_default();
            eprintln!(
                "keel-ycsb: {} {:>6.1}s {done}{of} ops, {rate:.0} ops/s",
                shared.phase,
                start.elapsed().as_secs_f64()
            );
        }
    }))
}

/// Inserts records 0..records, spread over `threads` connections.
pub async fn load(opts: &LoadOptions) -> Result<PhaseResult, RunError> {
    let threads = opts.threads.max(1);
    let conns = connect_all("load", opts.addr, threads).await?;
    let shared = Shared::new("load", opts.addr);
    let next = Arc::new(AtomicU64::new(0));
    let progress = spawn_progress(
        shared.clone(),
        Some(Duration::from_secs(10)),
        Some(opts.records),
    );
    let cpu0 = sample_cpu(opts.server_pid);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(threads);
    for (i, conn) in conns.into_iter().enumerate() {
        let mut w = Worker {
            db: Db::new(conn, opts.shape),
            rng: Rng::new(task_seed(opts.seed, i)),
            stats: Stats::default(),
            shared: shared.clone(),
        };
        let next = next.clone();
        let records = opts.records;
        handles.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= records {
                    break;
                }
                let t = Instant::now();
                let r = w.db.insert(&mut w.rng, k).await;
                if !w.account(Op::Insert, t, r).await {
                    break;
                }
            }
            w.stats
        }));
    }
    let stats = join_all("load", handles).await;
    let elapsed = start.elapsed();
    let server_cpu = cpu_between(cpu0, opts.server_pid);
    if let Some(p) = progress {
        p.abort();
    }
    Ok(PhaseResult {
        stats: stats?,
        elapsed,
        records: 0,
        error_samples: shared.samples(),
        done: shared.done.load(Ordering::Relaxed),
        server_cpu,
    })
}

/// Counts the records in the index.
pub async fn record_count(addr: SocketAddr) -> Result<u64, RunError> {
    let mut c = Conn::connect(addr, CONNECT_TIMEOUT)
        .await
        .map_err(|source| RunError::Connect {
            phase: "run",
            source,
        })?;
    let reply = c
        .call(&[b"ZCARD".as_slice(), INDEX_KEY.as_bytes()])
        .await
        .map_err(|source| RunError::Connect {
            phase: "run",
            source,
        })?;
    match reply {
        Reply::Int(n) if n >= 0 => Ok(n as u64),
        other => Err(RunError::Count {
            addr,
            reply: format!("{other:?}"),
        }),
    }
}

/// Picks the record an operation touches.
#[derive(Clone)]
enum KeyChooser {
    Uniform,
    Zipfian(ScrambledZipfian),
    Latest(Latest),
}

impl KeyChooser {
    fn next(&mut self, rng: &mut Rng, acked: &AckCounter) -> u64 {
        let last = acked.last().unwrap_or(0);
        match self {
            KeyChooser::Uniform => rng.below(last + 1),
            KeyChooser::Zipfian(z) => {
                // As YCSB: the range includes keys this run may insert; skip any not
                // acknowledged yet.
                for _ in 0..KEY_DRAWS {
                    let k = z.next(rng);
                    if k <= last {
                        return k;
                    }
                }
                rng.below(last + 1)
            }
            KeyChooser::Latest(l) => l.next(rng, last),
        }
    }
}

/// Runs `opts.workload` against the records already in the store.
pub async fn run(opts: &RunOptions) -> Result<PhaseResult, RunError> {
    let records = record_count(opts.addr).await?;
    if records == 0 {
        return Err(RunError::NotLoaded { addr: opts.addr });
    }
    let threads = opts.threads.max(1);
    let w = opts.workload.clone();
    let insert_share = w.proportion(Op::Insert);
    // YCSB sizes the zipfian range for twice the inserts it expects, so the set of popular
    // keys does not shift as records are added. A duration-bound run has no count: size
    // it as if it ran one operation per record.
    let expected_ops = opts.ops.unwrap_or(records);
    let expected_inserts = (expected_ops as f64 * insert_share * 2.0) as u64;
    let chooser = match w.distribution {
        Distribution::Uniform => KeyChooser::Uniform,
        Distribution::Zipfian => {
            KeyChooser::Zipfian(ScrambledZipfian::new(0, records - 1 + expected_inserts))
        }
        Distribution::Latest => KeyChooser::Latest(Latest::new(records - 1)),
    };
    let acked = Arc::new(AckCounter::new(records));
    let conns = connect_all("run", opts.addr, threads).await?;
    let shared = Shared::new("run", opts.addr);
    let budget = Arc::new(AtomicU64::new(0));
    let progress = spawn_progress(shared.clone(), opts.progress, opts.ops);
    let cpu0 = sample_cpu(opts.server_pid);
    let start = Instant::now();
    let deadline = opts.duration.map(|d| start + d);
    let mut handles = Vec::with_capacity(threads);
    for (i, conn) in conns.into_iter().enumerate() {
        let mut wk = Worker {
            db: Db::new(conn, opts.shape),
            rng: Rng::new(task_seed(opts.seed, i)),
            stats: Stats::default(),
            shared: shared.clone(),
        };
        let mut chooser = chooser.clone();
        let w = w.clone();
        let acked = acked.clone();
        let budget = budget.clone();
        let ops = opts.ops;
        handles.push(tokio::spawn(async move {
            loop {
                if let Some(total) = ops {
                    if budget.fetch_add(1, Ordering::Relaxed) >= total {
                        break;
                    }
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let op = w.choose(&mut wk.rng);
                let t = Instant::now();
                let alive = match op {
                    Op::Read => {
                        let k = chooser.next(&mut wk.rng, &acked);
                        let r = wk.db.read(k).await;
                        wk.account(op, t, r).await
                    }
                    Op::Update => {
                        let k = chooser.next(&mut wk.rng, &acked);
                        let r = wk.db.update(&mut wk.rng, k).await;
                        wk.account(op, t, r).await
                    }
                    Op::Insert => {
                        let k = acked.next_insert();
                        let r = wk.db.insert(&mut wk.rng, k).await;
                        if r.is_ok() {
                            acked.ack(k);
                        }
                        wk.account(op, t, r).await
                    }
                    Op::Scan => {
                        let k = chooser.next(&mut wk.rng, &acked);
                        let len = 1 + wk.rng.below(w.max_scan_len.max(1));
                        let r = wk.db.scan(k, len).await;
                        wk.account(op, t, r).await
                    }
                    Op::ReadModifyWrite => {
                        let k = chooser.next(&mut wk.rng, &acked);
                        let r = match wk.db.read(k).await {
                            Ok(()) => wk.db.update(&mut wk.rng, k).await,
                            Err(e) => Err(e),
                        };
                        wk.account(op, t, r).await
                    }
                };
                if !alive {
                    break;
                }
            }
            wk.stats
        }));
    }
    let stats = join_all("run", handles).await;
    let elapsed = start.elapsed();
    let server_cpu = cpu_between(cpu0, opts.server_pid);
    if let Some(p) = progress {
        p.abort();
    }
    Ok(PhaseResult {
        stats: stats?,
        elapsed,
        records,
        error_samples: shared.samples(),
        done: shared.done.load(Ordering::Relaxed),
        server_cpu,
    })
}
