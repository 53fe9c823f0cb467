//! One module per Redis type (as Redis has t_string.c, t_list.c, …), each exporting its
//! slice of the command table.

pub mod bitfield;
pub mod bits;
pub mod expire;
pub mod functions;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod keyspace;
pub mod list;
pub mod list_chunk;
pub mod scripting;
pub mod set;
pub mod sort;
pub mod stream;
pub mod string;
pub mod zset;

use crate::command::CommandSpec;

/// Every module's commands; `command::all_commands` flattens it.
pub static TABLES: &[&[CommandSpec]] = &[
    string::COMMANDS,
    bits::COMMANDS,
    bitfield::COMMANDS,
    keyspace::COMMANDS,
    expire::COMMANDS,
    list::COMMANDS,
    hash::COMMANDS,
    set::COMMANDS,
    zset::COMMANDS,
    geo::COMMANDS,
    hll::COMMANDS,
    sort::COMMANDS,
    scripting::COMMANDS,
    functions::COMMANDS,
    stream::entries::COMMANDS,
    stream::groups::COMMANDS,
];
