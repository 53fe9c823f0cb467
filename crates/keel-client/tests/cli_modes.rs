//! keel-cli's bulk modes against an in-process server: --pipe, --scan, --latency, --stat.

mod common;

use std::collections::BTreeSet;

use common::{query, InProc};
use keel_client::Value;

fn resp_set(k: &str, v: &str) -> String {
    format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
        k.len(),
        v.len()
    )
}

#[test]
fn pipe_mass_insert_reports_replies_and_errors() {
    let s = InProc::start_default();
    let n = 2000;
    let mut input = String::new();
    for i in 0..n {
        input.push_str(&resp_set(&format!("key:{i}"), &format!("value:{i}")));
    }
    let out = s.cli_stdin(&["--pipe"], input.as_bytes());
    assert!(out.status.success(), "{out:?}");
    assert!(out
        .stdout
        .contains("All data transferred. Waiting for the last reply...\n"));
    assert!(
        out.stdout.ends_with(&format!("errors: 0, replies: {n}\n")),
        "{out:?}"
    );
    assert_eq!(query(s.addr, &["DBSIZE"]), Value::Int(n));
    assert_eq!(
        query(s.addr, &["GET", "key:1999"]),
        Value::bulk(&b"value:1999"[..])
    );
}

#[test]
fn pipe_accepts_inline_commands_and_counts_errors() {
    let s = InProc::start_default();
    // The last line has no newline: the CLI terminates it before its marker.
    let input = "SET a 1\r\nINCR a\nNOSUCHCOMMAND x\r\nINCR a";
    let out = s.cli_stdin(&["--pipe"], input.as_bytes());
    assert!(
        !out.status.success(),
        "an error reply makes the exit status 1"
    );
    assert!(out.stdout.ends_with("errors: 1, replies: 4\n"), "{out:?}");
    assert!(out.stderr.contains("unknown command"), "{out:?}");
    assert_eq!(query(s.addr, &["GET", "a"]), Value::bulk(&b"3"[..]));
}

#[test]
fn pipe_progress_is_drawn_when_asked() {
    let s = InProc::start_default();
    let mut input = String::new();
    for i in 0..200 {
        input.push_str(&format!("SET p{i} {i}\n"));
    }
    let out = s.cli_stdin(&["--pipe", "--progress"], input.as_bytes());
    assert!(out.stdout.ends_with("errors: 0, replies: 200\n"), "{out:?}");
    assert!(
        out.stderr.contains("sent"),
        "progress line on stderr: {out:?}"
    );
}

#[test]
fn scan_lists_matching_keys_once_each() {
    let s = InProc::start_default();
    let mut input = String::new();
    for i in 0..150 {
        input.push_str(&resp_set(&format!("user:{i}"), "x"));
    }
    for i in 0..40 {
        input.push_str(&resp_set(&format!("order:{i}"), "y"));
    }
    assert!(s.cli_stdin(&["--pipe"], input.as_bytes()).status.success());
    let out = s.cli(&["--scan", "--pattern", "user:*", "--count", "7"]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let unique: BTreeSet<&str> = lines.iter().copied().collect();
    assert_eq!(lines.len(), unique.len(), "no key printed twice");
    let want: BTreeSet<String> = (0..150).map(|i| format!("user:{i}")).collect();
    let got: BTreeSet<String> = unique.into_iter().map(String::from).collect();
    assert_eq!(got, want);
    let shown = s.cli(&["--scan", "--pattern", "order:*", "--progress"]);
    assert_eq!(shown.stdout.lines().count(), 40);
    assert!(
        shown.stderr.contains("40 keys"),
        "progress on stderr: {shown:?}"
    );
    // Without a pattern every key comes out; --no-raw quotes them.
    let all = s.cli(&["--scan", "--no-raw"]);
    assert_eq!(all.stdout.lines().count(), 190);
    assert!(all
        .stdout
        .lines()
        .all(|l| l.starts_with('"') && l.ends_with('"')));
}

#[test]
fn latency_samples_end_with_the_summary_line() {
    let s = InProc::start_default();
    let out = s.cli(&["--latency", "--latency-samples", "5"]);
    assert!(out.status.success(), "{out:?}");
    let fields: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "min max avg samples: {out:?}");
    assert_eq!(fields.get(3), Some(&"5"));
    let min: u64 = fields.first().and_then(|f| f.parse().ok()).expect("min");
    let max: u64 = fields.get(1).and_then(|f| f.parse().ok()).expect("max");
    assert!(min <= max);
    assert!(fields.get(2).and_then(|f| f.parse::<f64>().ok()).is_some());
}

#[test]
fn stat_prints_header_and_rolling_lines() {
    let s = InProc::start_default();
    s.cli(&["MSET", "a", "1", "b", "2", "c", "3"]);
    let out = s.cli(&["--stat", "--stat-lines", "3", "-i", "0.05"]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{out:?}");
    assert!(lines[0].starts_with("------- data ------"));
    assert!(lines[1].starts_with("keys       mem      clients"));
    for l in &lines[2..] {
        let cols: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(cols.first(), Some(&"3"), "three keys: {l}");
        // requests column: "N (+d)", the delta counting at least the INFO itself.
        assert!(cols.get(5).is_some_and(|d| d.starts_with("(+")), "{l}");
    }
}
