//! --pipe: mass insert. stdin (RESP or inline commands) streams to the server while the
//! replies are counted concurrently; an ECHO of a random marker after the data tells
//! when the last reply has arrived. Prints redis-cli's summary line.

use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::Duration;

use bytes::BytesMut;
use keel_client::resp::encode_command;
use keel_client::{ClientError, ConnectOptions, Connection, Value};
use tokio::io::AsyncReadExt;

use crate::args::Args;
use crate::output;
use crate::progress;

/// A marker no data set is likely to echo: 20 hex digits from the clock and pid.
fn marker() -> Vec<u8> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mixed = nanos ^ (u128::from(std::process::id()) << 64);
    format!("{:020x}", mixed & ((1u128 << 80) - 1)).into_bytes()
}

/// Size of stdin when it is a regular file (known total for the progress bar).
fn stdin_len() -> Option<u64> {
    let stdin = std::io::stdin();
    let fd = stdin.as_raw_fd();
    let path = format!("/proc/self/fd/{fd}");
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// Runs --pipe; exit status 1 when any reply was an error.
pub async fn run(args: &Args, opts: &ConnectOptions) -> ExitCode {
    let conn = match Connection::connect(opts).await {
        Ok(c) => c,
        Err(e) => {
            output::connect_failed(opts, &e);
            return ExitCode::FAILURE;
        }
    };
    let (mut reader, mut writer) = conn.into_parts();
    let marker = marker();
    let mut bar = progress::bytes_bar(stdin_len(), args.progress);
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);

    let send = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        let mut last = b'\n';
        loop {
            let n = stdin
                .read(&mut buf)
                .await
                .map_err(|source| ClientError::Io {
                    op: "read stdin",
                    addr: "stdin".into(),
                    source,
                })?;
            let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                break;
            };
            writer.write_raw(chunk).await?;
            last = chunk.last().copied().unwrap_or(last);
            bar.inc(n as u64);
        }
        // An unterminated inline line would swallow the marker.
        if last != b'\n' {
            writer.write_raw(b"\r\n").await?;
        }
        let mut echo = BytesMut::new();
        encode_command(&[b"ECHO".as_slice(), &marker], &mut echo);
        writer.write_raw(&echo).await?;
        bar.finish();
        println!("All data transferred. Waiting for the last reply...");
        let _ = done_tx.send(true);
        Ok::<(), ClientError>(())
    };

    let timeout = Duration::from_secs(args.pipe_timeout);
    let receive = async {
        let mut errors = 0u64;
        let mut replies = 0u64;
        loop {
            // read_reply is cancel safe: bytes read so far stay in the reader's buffer.
            let reply = if args.pipe_timeout == 0 {
                reader.read_reply().await?
            } else {
                match tokio::time::timeout(timeout, reader.read_reply()).await {
                    Ok(r) => r?,
                    Err(_) if *done_rx.borrow() => {
                        eprintln!("No replies for {} seconds: exiting.", args.pipe_timeout);
                        return Ok((errors + 1, replies));
                    }
                    Err(_) => continue,
                }
            };
            match reply {
                Value::Bulk(b) if b.as_ref() == marker.as_slice() => break,
                Value::Error(e) => {
                    eprintln!("{e}");
                    errors += 1;
                    replies += 1;
                }
                _ => replies += 1,
            }
        }
        Ok::<(u64, u64), ClientError>((errors, replies))
    };

    let (sent, received) = tokio::join!(send, receive);
    if let Err(e) = sent {
        eprintln!("Error writing to the server: {e}");
        return ExitCode::FAILURE;
    }
    match received {
        Ok((errors, replies)) => {
            println!("Last reply received from server.");
            println!("errors: {errors}, replies: {replies}");
            if errors > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("Error reading replies: {e}");
            ExitCode::FAILURE
        }
    }
}
