//! Consumer groups of streams (XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM,
//! XINFO).

use crate::command::CommandSpec;

/// The consumer group commands.
pub static COMMANDS: &[CommandSpec] = &[];
