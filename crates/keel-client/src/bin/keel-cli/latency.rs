//! --latency: PING round trips, redis-cli's `min: 0, max: 1, avg: 0.19 (1234 samples)`
//! line refreshed in place on a terminal; without a terminal one `min max avg samples`
//! line when sampling stops (Ctrl-C or --latency-samples).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use keel_client::{ConnectOptions, Connection};

use crate::args::Args;
use crate::output;

/// Pause between samples (redis-cli's LATENCY_SAMPLE_RATE).
const SAMPLE_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
struct Stats {
    min_us: u64,
    max_us: u64,
    total_us: u64,
    count: u64,
}

impl Stats {
    fn add(&mut self, us: u64) {
        if self.count == 0 || us < self.min_us {
            self.min_us = us;
        }
        self.max_us = self.max_us.max(us);
        self.total_us += us;
        self.count += 1;
    }

    fn avg_ms(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.total_us as f64 / self.count as f64 / 1000.0
    }

    fn tty_line(&self) -> String {
        format!(
            "min: {}, max: {}, avg: {:.2} ({} samples)",
            self.min_us / 1000,
            self.max_us / 1000,
            self.avg_ms(),
            self.count
        )
    }

    fn raw_line(&self) -> String {
        format!(
            "{} {} {:.2} {}",
            self.min_us / 1000,
            self.max_us / 1000,
            self.avg_ms(),
            self.count
        )
    }
}

/// Runs --latency.
pub async fn run(args: &Args, opts: &ConnectOptions) -> ExitCode {
    let mut conn = match Connection::connect(opts).await {
        Ok(c) => c,
        Err(e) => {
            output::connect_failed(opts, &e);
            return ExitCode::FAILURE;
        }
    };
    let tty = !args.raw && (args.no_raw || std::io::stdout().is_terminal());
    let mut stats = Stats::default();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if args.latency_samples.is_some_and(|n| stats.count >= n) {
            break;
        }
        let start = Instant::now();
        let reply = tokio::select! {
            r = conn.command(&["PING"]) => r,
            _ = &mut ctrl_c => break,
        };
        match reply {
            Ok(v) if !v.is_error() => {}
            Ok(v) => {
                eprintln!("\nI/O error: {v:?}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("\nI/O error: {e}");
                return ExitCode::FAILURE;
            }
        }
        let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        stats.add(us);
        if tty {
            let _ = output::emit(format!("\x1b[0G\x1b[2K{}", stats.tty_line()).as_bytes());
        }
        tokio::select! {
            _ = tokio::time::sleep(SAMPLE_PAUSE) => {}
            _ = &mut ctrl_c => break,
        }
    }
    let line = if tty {
        "\n".to_string()
    } else {
        format!("{}\n", stats.raw_line())
    };
    let _ = output::emit(line.as_bytes());
    ExitCode::SUCCESS
}
