//! What CLIENT LIST/INFO show about a client beyond the backbone's handle, and the
//! per-client switches CLIENT sets (REPLY, NO-EVICT, NO-TOUCH, SETINFO).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use parking_lot::Mutex;

/// CLIENT REPLY modes.
pub mod reply_mode {
    /// Replies are sent.
    pub const ON: u8 = 0;
    /// No reply is sent until CLIENT REPLY ON.
    pub const OFF: u8 = 1;
    /// The CLIENT REPLY SKIP itself and the next command are not answered.
    pub const SKIP_THIS_AND_NEXT: u8 = 2;
    /// The next command is not answered.
    pub const SKIP_NEXT: u8 = 3;
}

/// Cross-connection client details for CLIENT LIST and friends.
#[derive(Debug, Default)]
pub struct ClientAdmin {
    /// CLIENT SETINFO LIB-NAME.
    pub lib_name: Mutex<String>,
    /// CLIENT SETINFO LIB-VER.
    pub lib_ver: Mutex<String>,
    /// The last command: its commandstats index + 1, 0 before the first (an atomic,
    /// as every request sets it).
    last_cmd: AtomicUsize,
    /// RESP version in use (2 or 3; 0 until the first command).
    pub resp: AtomicU8,
    /// A [`reply_mode`] value.
    pub reply: AtomicU8,
    /// CLIENT NO-EVICT.
    pub no_evict: AtomicBool,
    /// CLIENT NO-TOUCH.
    pub no_touch: AtomicBool,
    /// In MULTI, mirrored for the flags column.
    pub in_multi: AtomicBool,
}

impl ClientAdmin {
    /// Records the command at commandstats index `index` as the last one.
    pub fn set_last_cmd(&self, index: usize) {
        self.last_cmd.store(index + 1, Ordering::Relaxed);
    }

    /// The last command's name (lower case), "" before the first.
    pub fn last_cmd(&self) -> &'static str {
        match self.last_cmd.load(Ordering::Relaxed) {
            0 => "",
            i => super::stats::command_name(i - 1).unwrap_or(""),
        }
    }

    /// Clears the switches (RESET).
    pub fn reset(&self) {
        self.reply.store(reply_mode::ON, Ordering::Relaxed);
        self.no_evict.store(false, Ordering::Relaxed);
        self.no_touch.store(false, Ordering::Relaxed);
    }
}
