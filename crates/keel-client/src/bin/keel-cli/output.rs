//! Writing to the terminal: replies to stdout (flushed per reply) and the standard
//! connection-failure message.

use std::io::Write;

use keel_client::{ClientError, ConnectOptions};

/// Writes `bytes` to stdout and flushes, so repeated and streamed replies appear at once.
pub fn emit(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// redis-cli's message for a server that cannot be reached.
pub fn connect_failed(opts: &ConnectOptions, e: &ClientError) {
    match e {
        ClientError::Connect { source, .. } => {
            eprintln!(
                "Could not connect to keel at {}: {}",
                opts.addr(),
                os_message(source)
            )
        }
        ClientError::Handshake { step, reply } => eprintln!("{step} failed: {reply}"),
        other => eprintln!("Could not connect to keel at {}: {other}", opts.addr()),
    }
}

/// The OS error text without Rust's " (os error N)" suffix, as redis-cli prints it.
fn os_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s.get(..i).unwrap_or(&s).to_string(),
        None => s,
    }
}
