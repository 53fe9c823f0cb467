//! hash commands (not built yet).

use crate::command::CommandSpec;

/// The hash commands.
pub static COMMANDS: &[CommandSpec] = &[];
