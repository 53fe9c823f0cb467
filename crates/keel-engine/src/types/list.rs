//! list commands (not built yet).

use crate::command::CommandSpec;

/// The list commands.
pub static COMMANDS: &[CommandSpec] = &[];
