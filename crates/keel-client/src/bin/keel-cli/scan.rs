//! --scan: every key matching --pattern, one per line (quoted on a terminal, raw
//! otherwise, like redis-cli), with a key counter on stderr for long exports.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use keel_client::{ConnectOptions, Connection, Value};

use crate::args::Args;
use crate::format::repr;
use crate::{output, progress};

/// Runs --scan.
pub async fn run(args: &Args, opts: &ConnectOptions) -> ExitCode {
    let mut conn = match Connection::connect(opts).await {
        Ok(c) => c,
        Err(e) => {
            output::connect_failed(opts, &e);
            return ExitCode::FAILURE;
        }
    };
    let quoted = !args.raw && (args.no_raw || std::io::stdout().is_terminal());
    let mut bar = progress::items_spinner("keys", args.progress);
    let mut cursor = b"0".to_vec();
    let mut stdout = std::io::stdout().lock();
    loop {
        let mut cmd = vec![b"SCAN".to_vec(), cursor.clone()];
        if let Some(p) = &args.pattern {
            cmd.push(b"MATCH".to_vec());
            cmd.push(p.as_bytes().to_vec());
        }
        if let Some(c) = args.count {
            cmd.push(b"COUNT".to_vec());
            cmd.push(c.to_string().into_bytes());
        }
        let reply = match conn.command(&cmd).await {
            Ok(v) => v,
            Err(e) => {
                bar.abandon();
                eprintln!("Error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (next, keys) = match reply {
            Value::Array(mut parts) if parts.len() == 2 => {
                let keys = parts.pop();
                let next = parts.pop();
                match (next.and_then(|n| n.as_bytes().map(<[u8]>::to_vec)), keys) {
                    (Some(n), Some(Value::Array(k) | Value::Set(k))) => (n, k),
                    _ => return bad_reply(&bar),
                }
            }
            Value::Error(e) => {
                bar.abandon();
                eprintln!("Error: {e}");
                return ExitCode::FAILURE;
            }
            _ => return bad_reply(&bar),
        };
        let mut out = Vec::new();
        for k in &keys {
            let Some(k) = k.as_bytes() else { continue };
            if quoted {
                repr(k, &mut out);
            } else {
                out.extend_from_slice(k);
            }
            out.push(b'\n');
        }
        bar.inc(keys.len() as u64);
        if let Err(e) = bar.suspend(|| stdout.write_all(&out).and_then(|()| stdout.flush())) {
            bar.abandon();
            // A closed pipe (| head) is a normal way to stop an export.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("Error: writing stdout: {e}");
            return ExitCode::FAILURE;
        }
        cursor = next;
        if cursor == b"0" {
            break;
        }
    }
    bar.finish();
    let _ = stdout.flush();
    ExitCode::SUCCESS
}

fn bad_reply(bar: &progress::Progress) -> ExitCode {
    bar.abandon();
    eprintln!("Error: unexpected SCAN reply");
    ExitCode::FAILURE
}
