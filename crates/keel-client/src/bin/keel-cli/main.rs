//! keel-cli: redis-cli's behaviour (one-shot commands, REPL, --pipe, --scan, --latency,
//! --stat) on keel-client, plus typed `kv` / `metrics` verbs over gRPC.

mod args;
mod docs;
mod format;
mod kv;
mod latency;
mod output;
mod pipe;
mod progress;
mod repl;
mod scan;
mod session;
mod split;
mod stat;

use std::ffi::OsString;
use std::io::{IsTerminal, Read};
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use keel_client::{ConnectOptions, Protocol};

use args::Args;
use format::OutputMode;
use session::Session;

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keel-cli: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(args))
}

/// Password from -a, else KEEL_AUTH, else REDISCLI_AUTH.
pub(crate) fn password(args: &Args) -> Option<String> {
    if args.password.is_some() {
        if !args.no_auth_warning {
            eprintln!(
                "Warning: Using a password with '-a' or '-u' option on the command line interface may not be safe."
            );
        }
        return args.password.clone();
    }
    ["KEEL_AUTH", "REDISCLI_AUTH"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

fn connect_options(args: &Args) -> ConnectOptions {
    let mut opts = ConnectOptions::new(args.host.clone(), args.port);
    opts.password = password(args);
    opts.user = args.user.clone();
    opts.db = args.db;
    opts.protocol = if args.resp3 {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    };
    // Blocking commands (BLPOP 0, SUBSCRIBE) wait as long as the user wants.
    opts.response_timeout = None;
    opts
}

fn output_mode(args: &Args) -> OutputMode {
    if args.raw {
        OutputMode::Raw
    } else if args.no_raw || std::io::stdout().is_terminal() {
        OutputMode::Tty
    } else {
        OutputMode::Raw
    }
}

fn interval(args: &Args) -> Option<Duration> {
    args.interval
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
}

async fn run(args: Args) -> ExitCode {
    let opts = connect_options(&args);
    let first = args.command.first().and_then(|c| c.to_str());
    match first {
        Some("kv") => return kv::run(&args, args.command.get(1..).unwrap_or_default()).await,
        Some("metrics") => return kv::metrics(&args).await,
        _ => {}
    }
    if args.pipe {
        return pipe::run(&args, &opts).await;
    }
    if args.scan {
        return scan::run(&args, &opts).await;
    }
    if args.latency {
        return latency::run(&args, &opts).await;
    }
    if args.stat {
        return stat::run(&args, &opts).await;
    }
    if args.command.is_empty() {
        let mode = if args.raw {
            OutputMode::Raw
        } else {
            OutputMode::Tty
        };
        return repl::run(Session::new(opts, mode)).await;
    }
    one_shot(&args, opts).await
}

async fn one_shot(args: &Args, opts: ConnectOptions) -> ExitCode {
    let mut argv: Vec<Vec<u8>> = args
        .command
        .iter()
        .cloned()
        .map(OsString::into_vec)
        .collect();
    if args.stdin_last_arg {
        let mut buf = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut buf) {
            eprintln!("keel-cli: reading stdin for -x: {e}");
            return ExitCode::FAILURE;
        }
        argv.push(buf);
    }
    let mut session = Session::new(opts, output_mode(args));
    if let Err(e) = session.ensure_connected().await {
        output::connect_failed(session.options(), &e);
        return ExitCode::FAILURE;
    }
    let repeat = args.repeat.unwrap_or(1);
    let mut done: i64 = 0;
    while repeat < 0 || done < repeat {
        if let Err(e) = session.run_and_print(&argv).await {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
        done += 1;
        if let Some(d) = interval(args) {
            if repeat < 0 || done < repeat {
                tokio::time::sleep(d).await;
            }
        }
    }
    ExitCode::SUCCESS
}
