//! set commands (not built yet).

use crate::command::CommandSpec;

/// The set commands.
pub static COMMANDS: &[CommandSpec] = &[];
