//! The interactive prompt: rustyline with history, greyed argument hints and tab
//! completion of command names (both from the server's COMMAND DOCS).

use std::borrow::Cow;
use std::path::PathBuf;
use std::process::ExitCode;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use keel_client::ClientError;

use crate::docs::{self, Catalog};
use crate::output;
use crate::session::Session;
use crate::split::split_args;

/// Hints and completion over the command catalog.
struct CliHelper {
    catalog: Catalog,
}

impl CliHelper {
    fn command_at_start<'l>(&self, line: &'l str) -> Option<(&'l str, bool)> {
        let trimmed = line.trim_start();
        let mut words = trimmed.split_whitespace();
        let first = words.next()?;
        if words.next().is_some() {
            return None;
        }
        Some((first, trimmed.ends_with(char::is_whitespace)))
    }
}

impl Hinter for CliHelper {
    type Hint = String;

    /// Shows the argument summary while only the command name has been typed, as
    /// redis-cli does.
    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<String> {
        if pos < line.len() {
            return None;
        }
        let (name, spaced) = self.command_at_start(line)?;
        let help = self.catalog.get(&name.to_ascii_lowercase())?;
        if help.hint.is_empty() {
            return None;
        }
        Some(if spaced {
            help.hint.clone()
        } else {
            format!(" {}", help.hint)
        })
    }
}

impl Highlighter for CliHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("\x1b[90m{hint}\x1b[0m"))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        false
    }
}

impl Completer for CliHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = line.get(..pos).unwrap_or(line);
        let start = head.len() - head.trim_start().len();
        let word = head.get(start..).unwrap_or("");
        if word.contains(char::is_whitespace) {
            return Ok((pos, Vec::new()));
        }
        let lower = word.to_ascii_lowercase();
        let upper = word.chars().next().is_some_and(|c| c.is_ascii_uppercase());
        let candidates = self
            .catalog
            .keys()
            .filter(|name| name.starts_with(&lower) && !name.contains('|'))
            .map(|name| {
                let shown = if upper {
                    name.to_ascii_uppercase()
                } else {
                    name.clone()
                };
                Pair {
                    display: shown.clone(),
                    replacement: shown,
                }
            })
            .collect();
        Ok((start, candidates))
    }
}

impl Validator for CliHelper {}
impl Helper for CliHelper {}

/// History file: KEEL_CLI_HISTFILE, else ~/.keel_cli_history; None disables history.
fn history_path() -> Option<PathBuf> {
    match std::env::var_os("KEEL_CLI_HISTFILE") {
        Some(p) if p.is_empty() || p == "/dev/null" => None,
        Some(p) => Some(PathBuf::from(p)),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".keel_cli_history")),
    }
}

/// Lines carrying secrets stay out of the history file.
fn is_sensitive(argv: &[Vec<u8>]) -> bool {
    let word = |i: usize| -> String {
        argv.get(i)
            .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
            .unwrap_or_default()
    };
    match word(0).as_str() {
        "auth" => true,
        "hello" => argv.iter().any(|a| a.eq_ignore_ascii_case(b"AUTH")),
        "acl" => word(1) == "setuser",
        "config" => word(1) == "set" && (word(2).contains("pass") || word(2).contains("auth")),
        "migrate" => argv.iter().any(|a| a.eq_ignore_ascii_case(b"AUTH")),
        _ => false,
    }
}

fn prompt(session: &Session) -> String {
    if !session.is_connected() {
        return "not connected> ".to_string();
    }
    let opts = session.options();
    let mut p = format!("{}:{}", opts.host, opts.port);
    if session.db() != 0 {
        p.push_str(&format!("[{}]", session.db()));
    }
    if session.in_multi {
        p.push_str("(TX)");
    }
    p.push_str("> ");
    p
}

/// Runs the REPL until quit, Ctrl-C or Ctrl-D.
pub async fn run(mut session: Session) -> ExitCode {
    if let Err(e) = session.ensure_connected().await {
        output::connect_failed(session.options(), &e);
    }
    let catalog = if session.is_connected() {
        docs::fetch(&mut session).await
    } else {
        Catalog::new()
    };
    let mut rl: Editor<CliHelper, DefaultHistory> = match Editor::new() {
        Ok(rl) => rl,
        Err(e) => {
            eprintln!("keel-cli: cannot start the line editor: {e}");
            return ExitCode::FAILURE;
        }
    };
    rl.set_helper(Some(CliHelper { catalog }));
    let hist = history_path();
    if let Some(h) = &hist {
        // A missing history file is the normal first run.
        let _ = rl.load_history(h);
    }
    loop {
        let line = match rl.readline(&prompt(&session)) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) | Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("keel-cli: reading input: {e}");
                return ExitCode::FAILURE;
            }
        };
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let Some(mut argv) = split_args(trimmed.as_bytes()) else {
            println!("Invalid argument(s)");
            continue;
        };
        if !is_sensitive(&argv) {
            let _ = rl.add_history_entry(trimmed);
            if let Some(h) = &hist {
                // Saved per line so a killed session keeps its history.
                let _ = rl.save_history(h);
            }
        }
        let Some(first) = argv
            .first()
            .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        else {
            continue;
        };
        match first.as_str() {
            "quit" | "exit" => break,
            "clear" => {
                let _ = output::emit(b"\x1b[H\x1b[2J");
                continue;
            }
            "help" => {
                help(rl.helper().map(|h| &h.catalog), &argv);
                continue;
            }
            _ => {}
        }
        // "3 INCR x" repeats the command, as in redis-cli.
        let mut times = 1u64;
        if argv.len() > 1 {
            if let Ok(n) = first.parse::<u64>() {
                times = n;
                argv.remove(0);
            }
        }
        for _ in 0..times {
            let was_connected = session.is_connected();
            if let Err(e) = session.run_and_print(&argv).await {
                if !session.is_connected() && !was_connected {
                    output::connect_failed(session.options(), &e);
                } else if matches!(e, ClientError::Closed { .. }) {
                    // redis-cli's wording; the next command reconnects.
                    eprintln!("Error: Server closed the connection");
                } else {
                    eprintln!("Error: {e}");
                }
                break;
            }
        }
        if let Some(h) = rl.helper_mut() {
            if h.catalog.is_empty() && session.is_connected() {
                h.catalog = docs::fetch(&mut session).await;
            }
        }
    }
    ExitCode::SUCCESS
}

fn help(catalog: Option<&Catalog>, argv: &[Vec<u8>]) {
    let Some(name) = argv.get(1) else {
        println!("keel-cli {}", env!("CARGO_PKG_VERSION"));
        println!("To get help about a command: \"help <command>\" (tab completes names)");
        println!("To quit: \"quit\" or Ctrl-D");
        return;
    };
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    match catalog.and_then(|c| c.get(&name)) {
        Some(h) => {
            println!();
            println!("  \x1b[1m{} {}\x1b[0m", name.to_ascii_uppercase(), h.hint);
            if !h.summary.is_empty() {
                println!("  \x1b[33msummary:\x1b[0m {}", h.summary);
            }
            if !h.since.is_empty() {
                println!("  \x1b[33msince:\x1b[0m {}", h.since);
            }
            if !h.group.is_empty() {
                println!("  \x1b[33mgroup:\x1b[0m {}", h.group);
            }
            println!();
        }
        None => println!("No help for '{name}'"),
    }
}
