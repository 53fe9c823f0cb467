//! zset commands (not built yet).

use crate::command::CommandSpec;

/// The zset commands.
pub static COMMANDS: &[CommandSpec] = &[];
