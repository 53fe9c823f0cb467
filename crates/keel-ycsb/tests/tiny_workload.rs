//! Runs the load phase and every workload at a tiny size against an in-process keel
//! server: counts, zero errors, and the records' shape read back.

use std::net::SocketAddr;
use std::time::Duration;

use keel_server::embedded::EmbeddedServer;
use keel_server::Config;
use keel_ycsb::db::{field_name, Db, RecordShape};
use keel_ycsb::resp::Conn;
use keel_ycsb::runner::{self, LoadOptions, RunOptions};
use keel_ycsb::workload::{Op, Workload};

const WAIT: Duration = Duration::from_secs(20);
const RECORDS: u64 = 200;
const OPS: u64 = 500;
const THREADS: usize = 4;

/// A keel server on its own runtime thread, on an ephemeral port.
struct InProc {
    addr: SocketAddr,
    _server: EmbeddedServer,
    _dir: tempfile::TempDir,
}

impl InProc {
    fn start() -> InProc {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = Config {
            port: 0,
            dir: dir.path().join("data"),
            ..Config::default()
        };
        let server = EmbeddedServer::start(cfg, 2, WAIT).expect("server did not start");
        InProc {
            addr: server.addr(),
            _server: server,
            _dir: dir,
        }
    }
}

/// The test body on a runtime, bounded by WAIT.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(WAIT * 3, f)
            .await
            .expect("test timed out")
    })
}

#[test]
fn tiny_load_and_every_workload_against_keel() {
    let server = InProc::start();
    let addr = server.addr;
    block_on(async move {
        let shape = RecordShape::default();
        let load = runner::load(&LoadOptions {
            addr,
            records: RECORDS,
            threads: THREADS,
            seed: 11,
            shape,
            server_pid: None,
        })
        .await
        .expect("load");
        assert_eq!(load.stats.errors(), 0, "{:?}", load.error_samples);
        assert_eq!(load.stats.ops[Op::Insert.index()].hist.len(), RECORDS);
        assert_eq!(runner::record_count(addr).await.expect("zcard"), RECORDS);

        let mut expected_records = RECORDS;
        for letter in ["A", "B", "C", "D", "E", "F"] {
            let w = Workload::standard(letter).expect("workload");
            let r = runner::run(&RunOptions {
                addr,
                workload: w.clone(),
                ops: Some(OPS),
                duration: None,
                threads: THREADS,
                seed: 5,
                shape,
                progress: None,
                server_pid: None,
            })
            .await
            .expect("run");
            assert_eq!(r.stats.errors(), 0, "{letter}: {:?}", r.error_samples);
            assert_eq!(r.records, expected_records, "{letter}");
            let total = r.stats.total().hist.len();
            assert_eq!(total, OPS, "{letter}: every operation counted once");
            for op in Op::ALL {
                let n = r.stats.ops[op.index()].hist.len();
                let share = w.proportion(op);
                if share == 0.0 {
                    assert_eq!(n, 0, "{letter} ran {}", op.name());
                } else if share < 0.5 {
                    assert!(n > 0, "{letter} never ran {}", op.name());
                } else {
                    // Bernoulli(share) over 500 draws: far inside 15 points of the mean.
                    let got = n as f64 / OPS as f64;
                    assert!((got - share).abs() < 0.15, "{letter} {}: {got}", op.name());
                }
            }
            expected_records += r.stats.ops[Op::Insert.index()].hist.len();
            assert_eq!(
                runner::record_count(addr).await.expect("zcard"),
                expected_records,
                "{letter}: every insert indexed"
            );
        }

        // Every record, loaded or inserted by D and E, reads back with 10 fields of 100
        // bytes named field0..field9.
        let conn = Conn::connect(addr, WAIT).await.expect("connect");
        let mut db = Db::new(conn, shape);
        for k in 0..expected_records {
            let fields = db.fetch(k).await.expect("fetch");
            assert_eq!(fields.len(), 10, "record {k}");
            let mut names: Vec<String> = fields
                .iter()
                .map(|(f, v)| {
                    assert_eq!(v.len(), 100, "record {k}");
                    String::from_utf8_lossy(f).into_owned()
                })
                .collect();
            names.sort();
            let mut want: Vec<String> = (0..10).map(field_name).collect();
            want.sort();
            assert_eq!(names, want, "record {k}");
        }
        assert!(db.fetch(expected_records).await.expect("fetch").is_empty());
    });
}

#[test]
fn run_without_records_fails_and_errors_are_counted() {
    let server = InProc::start();
    let addr = server.addr;
    block_on(async move {
        let opts = RunOptions {
            addr,
            workload: Workload::standard("C").expect("c"),
            ops: Some(10),
            duration: None,
            threads: 2,
            seed: 1,
            shape: RecordShape::default(),
            progress: None,
            server_pid: None,
        };
        let err = runner::run(&opts).await.expect_err("nothing loaded");
        assert!(err.to_string().contains("no records"), "{err}");

        // Index entries without their hashes: every read finds no record and counts an
        // error instead of passing silently.
        let mut c = Conn::connect(addr, WAIT).await.expect("connect");
        for k in 0..5u64 {
            let key = keel_ycsb::db::record_key(k);
            let score = keel_ycsb::db::index_score(k).to_string();
            c.call(&["ZADD", keel_ycsb::db::INDEX_KEY, &score, &key])
                .await
                .expect("zadd");
        }
        let r = runner::run(&opts).await.expect("run");
        assert_eq!(r.stats.errors(), 10);
        assert_eq!(r.stats.total().hist.len(), 0);
        assert!(
            r.error_samples[0].contains("record not found"),
            "{:?}",
            r.error_samples
        );
    });
}

#[test]
fn binary_loads_runs_writes_csv_and_fails_on_errors() {
    let server = InProc::start();
    let out = tempfile::tempdir().expect("tempdir");
    let csv = out.path().join("rows.csv");
    let json = out.path().join("rows.jsonl");
    let port = server.addr.port().to_string();
    let ycsb = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keel-ycsb"))
            .args(args)
            .args(["--port", &port, "--threads", "3", "--target", "keel-test"])
            .output()
            .expect("spawn keel-ycsb")
    };
    // Nothing loaded: the run refuses and exits non-zero.
    let r = ycsb(&["run", "--workload", "C", "--ops", "10"]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("no records"));

    let csv_s = csv.to_str().expect("utf-8 path");
    let json_s = json.to_str().expect("utf-8 path");
    let pid = std::process::id().to_string();
    let r = ycsb(&[
        "load",
        "--records",
        "50",
        "--csv",
        csv_s,
        "--server-pid",
        &pid,
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let r = ycsb(&[
        "run",
        "--workload",
        "a",
        "--ops",
        "120",
        "--csv",
        csv_s,
        "--json",
        json_s,
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let table = String::from_utf8_lossy(&r.stdout).into_owned();
    assert!(
        table.contains("keel-test") && table.contains("TOTAL"),
        "{table}"
    );

    let rows = keel_ycsb::report::read_csv(&csv).expect("csv");
    let total = |wl: &str| {
        rows.iter()
            .find(|r| r.workload == wl && r.op == "TOTAL")
            .unwrap_or_else(|| panic!("no TOTAL row for {wl}: {rows:?}"))
    };
    assert_eq!(total("load").count, 50);
    // The server runs in this process, so its pid is this test's.
    assert!(total("load").server_cpu_us_per_op.is_some());
    assert_eq!(total("A").count, 120);
    assert_eq!(total("A").errors, 0);
    assert_eq!(total("A").server_cpu_us_per_op, None);
    let jsonl = std::fs::read_to_string(&json).expect("json");
    assert!(jsonl.lines().count() >= 2);
    assert!(jsonl
        .lines()
        .all(|l| l.starts_with('{') && l.ends_with('}')));

    // Reads checked against a 9-field shape all fail, and the run fails unless allowed.
    let r = ycsb(&["run", "--workload", "C", "--ops", "30", "--fields", "9"]);
    assert!(
        !r.status.success(),
        "a record with 10 fields is not a 9-field record"
    );
    assert!(String::from_utf8_lossy(&r.stderr).contains("operations failed"));
    let r = ycsb(&[
        "run",
        "--workload",
        "C",
        "--ops",
        "30",
        "--fields",
        "9",
        "--allow-errors",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}
