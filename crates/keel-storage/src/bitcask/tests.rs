//! Engine tests that need internal hooks: injected I/O faults and merges stopped at a
//! chosen step (as if the process died there).

use std::sync::atomic::AtomicBool;

use parking_lot::Mutex;

use super::merge::StopAt;

/// Test-only fault switches.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Appends fail with an I/O error.
    pub(crate) fail_writes: AtomicBool,
    /// Merge stops at this step.
    pub(crate) merge_stop: Mutex<Option<StopAt>>,
}

impl Faults {
    pub(crate) fn stop_merge_at(&self) -> Option<StopAt> {
        *self.merge_stop.lock()
    }
}
