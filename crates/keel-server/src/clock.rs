//! Clock readings for the request path, as integers straight from `clock_gettime` (the
//! vDSO). std's `Instant`/`SystemTime` arithmetic (timespec normalisation, checked
//! `Duration` maths) cost about 40 instructions per subtraction, and a request made
//! three of them: the engine's wall clock, the command's start and its end.

use rustix::time::{clock_gettime, ClockId};

/// Nanoseconds on the monotonic clock: for durations, never for dates.
pub fn mono_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.wrapping_mul(1_000_000_000).wrapping_add(nanos)
}

/// Milliseconds since the Unix epoch (0 for a clock set before 1970).
pub fn unix_now_ms() -> u64 {
    let t = clock_gettime(ClockId::Realtime);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1000).saturating_add(nanos / 1_000_000)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_std_clocks() {
        let std_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as u64;
        let ours = unix_now_ms();
        assert!(ours.abs_diff(std_ms) < 1000, "{ours} vs {std_ms}");
        let a = mono_ns();
        let t = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let std_ns = t.elapsed().as_nanos() as u64;
        let ours = mono_ns() - a;
        assert!(
            ours >= 20_000_000 && ours >= std_ns / 2,
            "{ours} vs {std_ns}"
        );
    }
}
