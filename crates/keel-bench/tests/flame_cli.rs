//! keel-flame as `bench/flame.sh` runs it: perf script text in, an SVG, the folded
//! stacks and the summary out; bad input an error naming its line.

use std::io::Write;
use std::process::{Command, Stdio};

const SCRIPT: &str = "\
keel-net 10 1.0: 1 cpu-clock: 
\t  1 tcp_sendmsg+0x10 ([kernel.kallsyms])
\t  2 keel_server::server::outbox::Outbox::flush+0x20 (/k)

keel-net 10 1.1: 1 cpu-clock: 
\t  3 keel_storage::hashed_index::Entry<V>::key+0x5 (inlined)
\t  3 keel_storage::memory::MemoryEngine::write+0x5 (/k)

keel-net 10 1.2: 1 cpu-clock: 
\t  3 keel_storage::hashed_index::Entry<V>::key+0x5 (inlined)
\t  3 keel_storage::memory::MemoryEngine::write+0x5 (/k)
";

fn run(input: &str, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel-flame"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keel-flame");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("keel-flame output")
}

#[test]
fn perf_script_becomes_an_svg_folded_stacks_and_a_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("f.svg");
    let folded = dir.path().join("f.txt");
    let out = run(
        SCRIPT,
        &[
            "--out",
            svg.to_str().expect("utf8"),
            "--folded",
            folded.to_str().expect("utf8"),
            "--title",
            "SET -P 1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    assert!(stdout.contains("samples: 3"), "{stdout}");
    assert!(stdout.contains("66.67%        2  keel_storage"), "{stdout}");
    assert!(stdout.contains("33.33%        1  kernel"), "{stdout}");
    assert!(
        stdout.contains("keel_storage::hashed_index::Entry<V>::key"),
        "{stdout}"
    );
    let svg = std::fs::read_to_string(&svg).expect("svg");
    assert!(svg.contains("SET -P 1"));
    assert!(svg.contains("<title>tcp_sendmsg_[k] (1 samples, 33.33%)</title>"));
    let folded = std::fs::read_to_string(&folded).expect("folded");
    assert_eq!(
        folded,
        "keel-net;keel_server::server::outbox::Outbox::flush;tcp_sendmsg_[k] 1\n\
         keel-net;keel_storage::memory::MemoryEngine::write;\
         keel_storage::hashed_index::Entry<V>::key 2\n"
    );
}

#[test]
fn input_that_is_not_perf_script_fails_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("f.svg");
    let out = run(
        "keel-net 10 1.0: 1 cpu-clock:\n\t \n\tnot-a-frame\n",
        &["--out", svg.to_str().expect("utf8")],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).expect("utf8");
    assert!(stderr.contains("keel-flame"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(!svg.exists(), "no SVG from bad input");
}
