//! Progress bars on stderr, shown when stderr is a terminal or --progress asks for one.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// Operations shorter than this never show a bar (unless --progress forces it).
const SHOW_AFTER: Duration = Duration::from_millis(800);

/// A progress bar on stderr that appears only once an operation has run for a while
/// (immediately with --progress), so quick commands print nothing extra.
pub struct Progress {
    bar: ProgressBar,
    forced: bool,
    shown: bool,
    started: Instant,
}

impl Progress {
    fn new(bar: ProgressBar, forced: bool) -> Progress {
        bar.set_draw_target(ProgressDrawTarget::hidden());
        let mut p = Progress {
            bar,
            forced,
            shown: false,
            started: Instant::now(),
        };
        if forced {
            p.show();
        }
        p
    }

    fn show(&mut self) {
        self.bar.set_draw_target(target(self.forced));
        self.shown = true;
    }

    fn maybe_show(&mut self) {
        if !self.shown && self.started.elapsed() >= SHOW_AFTER {
            self.show();
        }
    }

    /// Advances by `n`.
    pub fn inc(&mut self, n: u64) {
        self.maybe_show();
        self.bar.inc(n);
    }

    /// Sets the position.
    pub fn set_position(&mut self, n: u64) {
        self.maybe_show();
        self.bar.set_position(n);
    }

    /// Runs `f` with the bar cleared, so lines printed to the terminal stay intact.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Removes the bar (success).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Leaves the bar where it stopped (failure).
    pub fn abandon(&self) {
        self.bar.abandon();
    }
}

/// A bar over `total` bytes (or a spinner counting bytes when the total is unknown).
pub fn bytes_bar(total: Option<u64>, forced: bool) -> Progress {
    let bar = match total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bytes} sent ({bytes_per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    Progress::new(bar, forced)
}

/// A spinner counting items (keys exported).
pub fn items_spinner(what: &'static str, forced: bool) -> Progress {
    let template = format!("{{spinner}} [{{elapsed_precise}}] {{human_pos}} {what}");
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    Progress::new(bar, forced)
}

fn target(forced: bool) -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else if forced {
        // indicatif hides its own terminal target on a non-terminal; draw anyway.
        ProgressDrawTarget::term_like_with_hz(Box::new(PlainStderr), 10)
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// stderr as a dumb 80-column terminal, for progress requested with --progress.
#[derive(Debug)]
struct PlainStderr;

impl PlainStderr {
    fn put(&self, s: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(s.as_bytes())
    }
}

impl TermLike for PlainStderr {
    fn width(&self) -> u16 {
        80
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}A"))?;
        }
        Ok(())
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}B"))?;
        }
        Ok(())
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}C"))?;
        }
        Ok(())
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n > 0 {
            self.put(&format!("\x1b[{n}D"))?;
        }
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(s)?;
        self.put("\n")
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.put(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
