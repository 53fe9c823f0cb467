//! The keel-cli REPL through a pseudo-terminal: prompt, replies, db in the prompt,
//! greyed hints, tab completion, history recall with the up arrow and the history file.

mod common;

use std::process::Command;
use std::time::Duration;

use common::InProc;
use expectrl::{Eof, Session};

/// Up arrow as a VT100 terminal sends it.
const UP: &str = "\x1b[A";

fn spawn_repl(s: &InProc, histfile: &std::path::Path) -> Session {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keel-cli"));
    cmd.args(["-p", &s.port()])
        .env("KEEL_CLI_HISTFILE", histfile)
        .env("TERM", "xterm")
        .env_remove("KEEL_AUTH")
        .env_remove("REDISCLI_AUTH");
    let mut p = Session::spawn(cmd).expect("spawn keel-cli in a pty");
    p.set_expect_timeout(Some(Duration::from_secs(20)));
    p
}

#[test]
fn repl_runs_commands_and_recalls_history() {
    let s = InProc::start_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let hist = dir.path().join("history");
    let prompt = format!("127.0.0.1:{}> ", s.port());
    let mut p = spawn_repl(&s, &hist);

    p.expect(prompt.as_str()).expect("prompt");
    p.send("set greeting \"hello world\"\r").expect("send");
    p.expect("OK").expect("SET reply");
    p.expect(prompt.as_str()).expect("prompt");
    p.send("incr visits\r").expect("send");
    p.expect("(integer) 1").expect("INCR reply in TTY form");
    p.expect(prompt.as_str()).expect("prompt");

    // Up arrow brings back "incr visits"; Enter runs it again.
    p.send(UP).expect("up");
    p.expect("incr visits").expect("recalled line");
    p.send("\r").expect("enter");
    p.expect("(integer) 2").expect("INCR ran again");
    p.expect(prompt.as_str()).expect("prompt");

    p.send("get greeting\r").expect("send");
    p.expect("\"hello world\"").expect("quoted bulk");

    p.send("select 4\r").expect("send");
    let db_prompt = format!("127.0.0.1:{}[4]> ", s.port());
    p.expect(db_prompt.as_str()).expect("db in the prompt");

    p.send("quit\r").expect("quit");
    p.expect(Eof).expect("exits");

    let saved = std::fs::read_to_string(&hist).expect("history file written");
    assert!(saved.contains("set greeting \"hello world\""), "{saved}");
    assert!(saved.contains("incr visits"), "{saved}");
    assert!(saved.contains("select 4"), "{saved}");
}

#[test]
fn repl_hints_and_completes_command_names() {
    let s = InProc::start_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let prompt = format!("127.0.0.1:{}> ", s.port());
    let mut p = spawn_repl(&s, &dir.path().join("h"));
    p.expect(prompt.as_str()).expect("prompt");

    // The argument summary appears greyed (ANSI 90) after the command name.
    p.send("hget").expect("type");
    p.expect("\x1b[90m key arg").expect("greyed hint for HGET");
    p.send("\x15").expect("ctrl-u clears the line");

    // Tab completes a unique prefix.
    p.send("hgeta\t").expect("type + tab");
    p.expect("hgetall").expect("completed name");
    p.send(" nosuch\r").expect("run it");
    p.expect("(empty array)").expect("HGETALL of a missing key");
    p.expect(prompt.as_str()).expect("prompt");

    // A secret stays out of the history file.
    p.send("auth whatever\r").expect("auth");
    p.expect("(error)").expect("AUTH without a password set");
    p.send("quit\r").expect("quit");
    p.expect(Eof).expect("exits");
    let saved = std::fs::read_to_string(dir.path().join("h")).unwrap_or_default();
    assert!(saved.contains("hgetall nosuch"), "{saved}");
    assert!(!saved.contains("auth"), "{saved}");
}
