//! The real binary under real SIGKILL at random moments while four clients write.
//!
//! With `appendfsync always` every acknowledged write must survive every kill, with its
//! exact value. With `everysec` writes may be lost, but only a suffix: what recovers is a
//! prefix of each client's history (each client issues one request at a time, and the WAL
//! orders them).
//!
//! Each client repeats steps `i = 0, 1, 2, ...`: `SET k_<c>_<i> <value(c, i)>`, then
//! `INCR counter_<c>` when `i % 3 == 0`, then `LPUSH list_<c> <i>` when `i % 5 == 0`; it stops
//! at its first error (the server is gone). Steps continue across kills from the first
//! step that did not survive, so the expected state is computable from the step count.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{connect, spawn_binary};
use rand::{Rng, SeedableRng};

const CLIENTS: usize = 4;
/// Upper bound of steps a writer issues in one cycle (the kill comes much earlier).
const MAX_STEPS_PER_CYCLE: u64 = 200_000;

/// The value written by step `i` of client `c`: a deterministic payload and its CRC32.
fn value(c: usize, i: u64) -> String {
    let mut rng = rand::rngs::StdRng::seed_from_u64(((c as u64) << 48) ^ i);
    let len = rng.gen_range(1..120);
    let payload: String = (0..len)
        .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
        .collect();
    let crc = crc32fast::hash(payload.as_bytes());
    format!("{c}:{i}:{payload}:{crc:08x}")
}

/// Checks the embedded checksum of a stored value, independently of the model.
fn checksum_ok(v: &str) -> bool {
    let mut parts = v.rsplitn(2, ':');
    let (Some(crc), Some(rest)) = (parts.next(), parts.next()) else {
        return false;
    };
    let payload = rest.rsplit(':').next().unwrap_or_default();
    format!("{:08x}", crc32fast::hash(payload.as_bytes())) == crc
}

/// INCRs issued before step `i`'s SET.
fn incrs_before(i: u64) -> u64 {
    i.div_ceil(3)
}

/// LPUSHes issued before step `i`'s SET.
fn pushes_before(i: u64) -> u64 {
    i.div_ceil(5)
}

/// What one writer got acknowledged in one cycle.
#[derive(Default, Debug, Clone, Copy)]
struct Acked {
    /// Steps whose SET was acknowledged (they are `start..start + sets`).
    sets: u64,
    incrs: u64,
    pushes: u64,
}

/// The model of one client across cycles.
#[derive(Default, Debug, Clone, Copy)]
struct ClientModel {
    /// First step not known to be stored: the next cycle starts here.
    next: u64,
    /// INCRs / LPUSHes issued but lost in earlier cycles (only `everysec`, or an
    /// unacknowledged in-flight one).
    lost_incrs: u64,
    lost_pushes: u64,
}

fn writer(addr: SocketAddr, c: usize, start: u64, stop: Arc<AtomicBool>) -> Acked {
    let mut acked = Acked::default();
    let Ok(client) = redis::Client::open(format!("redis://{addr}/")) else {
        return acked;
    };
    let Ok(mut con) = client.get_connection_with_timeout(common::WAIT) else {
        return acked;
    };
    if con.set_read_timeout(Some(common::WAIT)).is_err() {
        return acked;
    }
    for i in start..start + MAX_STEPS_PER_CYCLE {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let r: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("k_{c}_{i}"))
            .arg(value(c, i))
            .query(&mut con);
        if r.is_err() {
            break;
        }
        acked.sets += 1;
        if i % 3 == 0 {
            if redis::cmd("INCR")
                .arg(format!("counter_{c}"))
                .query::<i64>(&mut con)
                .is_err()
            {
                break;
            }
            acked.incrs += 1;
        }
        if i % 5 == 0 {
            if redis::cmd("LPUSH")
                .arg(format!("list_{c}"))
                .arg(i)
                .query::<i64>(&mut con)
                .is_err()
            {
                break;
            }
            acked.pushes += 1;
        }
    }
    acked
}

/// Verifies the recovered state of client `c` and moves its model to the recovered step.
fn verify_client(
    con: &mut redis::Connection,
    c: usize,
    model: &mut ClientModel,
    acked: Acked,
    start: u64,
    always: bool,
    cycle: usize,
) {
    let ctx = format!("cycle {cycle}, client {c}");
    // Steps up to one past the acknowledged ones may have been issued.
    let issued = start + acked.sets + 1;
    // Every key of earlier cycles and of this one, in MGET chunks.
    let mut present_prefix: Option<u64> = None;
    let mut i = 0u64;
    while i < issued {
        let hi = (i + 500).min(issued);
        let keys: Vec<String> = (i..hi).map(|n| format!("k_{c}_{n}")).collect();
        let vals: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query(con)
            .expect("MGET after restart");
        for (n, v) in (i..hi).zip(vals) {
            match (v, present_prefix) {
                (Some(v), None) => {
                    assert!(checksum_ok(&v), "{ctx}: k_{c}_{n} corrupt: {v:?}");
                    assert_eq!(v, value(c, n), "{ctx}: k_{c}_{n} has a wrong value");
                }
                (None, None) => present_prefix = Some(n),
                (Some(_), Some(p)) => {
                    panic!("{ctx}: k_{c}_{n} present but k_{c}_{p} lost: not a prefix")
                }
                (None, Some(_)) => {}
            }
        }
        i = hi;
    }
    let m = present_prefix.unwrap_or(issued);
    assert!(
        m >= start.min(model.next),
        "{ctx}: lost keys of an earlier cycle"
    );
    if always {
        assert!(
            m >= start + acked.sets,
            "{ctx}: {} acknowledged SETs but only {} recovered",
            start + acked.sets,
            m
        );
    }

    // The counter holds exactly the INCRs of the recovered steps, give or take the last
    // recovered step's own INCR (issued after its SET).
    let counter: Option<u64> = redis::cmd("GET")
        .arg(format!("counter_{c}"))
        .query::<Option<String>>(con)
        .expect("GET counter")
        .map(|s| s.parse().expect("counter is an integer"));
    let counter = counter.unwrap_or(0);
    let lo = incrs_before(m.saturating_sub(1)).saturating_sub(model.lost_incrs);
    let hi = incrs_before(m) - model.lost_incrs;
    assert!(
        (lo..=hi).contains(&counter),
        "{ctx}: counter {counter} outside [{lo}, {hi}] for {m} recovered steps"
    );
    if always {
        let acked_total = incrs_before(start) - model.lost_incrs + acked.incrs;
        assert!(
            counter >= acked_total,
            "{ctx}: counter {counter} < {acked_total} acknowledged increments"
        );
    }

    let list: Vec<u64> = redis::cmd("LRANGE")
        .arg(format!("list_{c}"))
        .arg(0)
        .arg(-1)
        .query(con)
        .expect("LRANGE");
    let len = list.len() as u64;
    let lo = pushes_before(m.saturating_sub(1)).saturating_sub(model.lost_pushes);
    let hi = pushes_before(m) - model.lost_pushes;
    assert!(
        (lo..=hi).contains(&len),
        "{ctx}: list length {len} outside [{lo}, {hi}] for {m} recovered steps"
    );
    // LPUSH order: newest first, each a step index that is a multiple of 5, all recovered.
    assert!(
        list.windows(2).all(|w| w[0] > w[1]),
        "{ctx}: list out of order"
    );
    assert!(
        list.iter().all(|&s| s % 5 == 0 && s < m),
        "{ctx}: list holds an element of a lost step: {list:?}"
    );
    if always {
        let acked_total = pushes_before(start) - model.lost_pushes + acked.pushes;
        assert!(
            len >= acked_total,
            "{ctx}: list length {len} < {acked_total} acknowledged pushes"
        );
    }

    model.lost_incrs = incrs_before(m) - counter;
    model.lost_pushes = pushes_before(m) - len;
    model.next = m;
}

/// Runs `cycles` write/kill/recover cycles on one data directory.
fn crash_cycles(engine: &str, fsync: &str, cycles: usize, seed: u64) {
    let always = fsync == "always";
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let args = ["--engine", engine, "--appendfsync", fsync];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut models = [ClientModel::default(); CLIENTS];
    let mut total_acked = 0u64;
    for cycle in 0..cycles {
        let srv = spawn_binary(&dir, &args);
        let addr = srv.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let starts: Vec<u64> = models.iter().map(|m| m.next).collect();
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let stop = stop.clone();
                let start = starts[c];
                std::thread::spawn(move || writer(addr, c, start, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..250)));
        srv.kill9();
        // Writers see the connection drop; the flag bounds them should one not.
        stop.store(true, Ordering::Relaxed);
        let acked: Vec<Acked> = handles
            .into_iter()
            .map(|h| h.join().expect("writer panicked"))
            .collect();
        total_acked += acked
            .iter()
            .map(|a| a.sets + a.incrs + a.pushes)
            .sum::<u64>();

        let srv = spawn_binary(&dir, &args);
        let mut con = connect(srv.addr);
        for c in 0..CLIENTS {
            verify_client(
                &mut con,
                c,
                &mut models[c],
                acked[c],
                starts[c],
                always,
                cycle,
            );
        }
        drop(con);
        srv.kill9();
    }
    eprintln!("{engine}/{fsync}: {cycles} kills, {total_acked} acknowledged writes verified");
    // The kills must have landed while writing, or the test proved nothing.
    assert!(
        total_acked > 0,
        "no write was acknowledged in {cycles} cycles"
    );
}

fn seed() -> u64 {
    let s = std::env::var("KEEL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("crash test seed {s} (rerun with KEEL_CRASH_SEED={s})");
    s
}

#[test]
fn sigkill_always_memory_loses_no_acknowledged_write() {
    let t = Instant::now();
    crash_cycles("memory", "always", 20, seed());
    eprintln!("20 cycles in {:?}", t.elapsed());
}

#[test]
fn sigkill_always_bitcask_loses_no_acknowledged_write() {
    crash_cycles("bitcask", "always", 4, seed());
}

#[test]
fn sigkill_always_lsm_loses_no_acknowledged_write() {
    crash_cycles("lsm", "always", 4, seed());
}

#[test]
fn sigkill_everysec_memory_recovers_a_prefix() {
    crash_cycles("memory", "everysec", 8, seed());
}
