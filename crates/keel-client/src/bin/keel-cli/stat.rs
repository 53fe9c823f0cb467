//! --stat: one line per interval from INFO (keys, memory, clients, blocked, requests
//! with the delta, connections), with redis-cli's header every 20 lines.

use std::process::ExitCode;
use std::time::Duration;

use keel_client::{ConnectOptions, Connection, Value};

use crate::args::Args;
use crate::output;

const HEADER: &str = "------- data ------ --------------------- load -------------------- - child -\nkeys       mem      clients blocked requests            connections          \n";

/// A numeric INFO field, or None when absent.
fn field(info: &str, name: &str) -> Option<i64> {
    info.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Total keys over every `dbN:keys=..` line.
fn total_keys(info: &str) -> i64 {
    info.lines()
        .filter(|l| l.starts_with("db"))
        .filter_map(|l| l.split_once(":keys="))
        .filter_map(|(_, rest)| rest.split(',').next()?.parse::<i64>().ok())
        .sum()
}

/// redis-cli's bytesToHuman: `943.55K`, `1.20M`, `512B`.
pub fn human_bytes(n: i64) -> String {
    let units = [
        (1i64 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    if n < 0 {
        return format!("-{}", human_bytes(n.saturating_neg()));
    }
    for (size, unit) in units {
        if n >= size {
            return format!("{:.2}{unit}", n as f64 / size as f64);
        }
    }
    format!("{n}B")
}

/// One data line; `prev_requests` is the previous total (None on the first line).
pub fn stat_line(info: &str, prev_requests: Option<i64>) -> (String, i64) {
    let requests = field(info, "total_commands_processed").unwrap_or(0);
    let delta = prev_requests.map_or(0, |p| requests - p);
    let mut line = format!("{:<11}", total_keys(info));
    line.push_str(&format!(
        "{:<8}",
        human_bytes(field(info, "used_memory").unwrap_or(0))
    ));
    line.push_str(&format!(
        " {:<8}",
        field(info, "connected_clients").unwrap_or(0)
    ));
    line.push_str(&format!(
        "{:<8}",
        field(info, "blocked_clients").unwrap_or(0)
    ));
    line.push_str(&format!("{:<19}", format!("{requests} (+{delta})")));
    line.push_str(&format!(
        " {:<12}",
        field(info, "total_connections_received").unwrap_or(0)
    ));
    if field(info, "bgsave_in_progress") == Some(1) {
        line.push_str("SAVE");
    }
    line.push('\n');
    (line, requests)
}

/// Runs --stat until Ctrl-C (or the hidden --stat-lines bound).
pub async fn run(args: &Args, opts: &ConnectOptions) -> ExitCode {
    let mut conn = match Connection::connect(opts).await {
        Ok(c) => c,
        Err(e) => {
            output::connect_failed(opts, &e);
            return ExitCode::FAILURE;
        }
    };
    let pause = args
        .interval
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(1), Duration::from_secs_f64);
    let mut prev = None;
    let mut lines = 0u64;
    loop {
        if args.stat_lines.is_some_and(|n| lines >= n) {
            return ExitCode::SUCCESS;
        }
        let info = match conn.command(&["INFO"]).await {
            Ok(v @ (Value::Bulk(_) | Value::Verbatim { .. })) => v.as_text().unwrap_or_default(),
            Ok(other) => {
                eprintln!("ERROR: unexpected INFO reply {other:?}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("ERROR: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut text = String::new();
        if lines.is_multiple_of(20) {
            text.push_str(HEADER);
        }
        let (line, requests) = stat_line(&info, prev);
        prev = Some(requests);
        text.push_str(&line);
        if output::emit(text.as_bytes()).is_err() {
            return ExitCode::SUCCESS;
        }
        lines += 1;
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_matches_redis_cli_columns() {
        let info = "# Clients\r\nconnected_clients:1\r\nblocked_clients:0\r\n# Memory\r\nused_memory:966194\r\n# Stats\r\ntotal_connections_received:21\r\ntotal_commands_processed:41\r\n# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\ndb3:keys=5,expires=0\r\n";
        let (line, req) = stat_line(info, Some(40));
        assert_eq!(
            line,
            "7          943.55K  1       0       41 (+1)             21          \n"
        );
        assert_eq!(req, 41);
        assert_eq!(human_bytes(512), "512B");
    }
}
