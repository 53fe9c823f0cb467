//! Expiry commands (EXPIRE family, TTL family, PERSIST) and the active expiry cycle.

use keel_storage::Direction;

use crate::command::CommandSpec;
use crate::error::{CmdError, Result};
use crate::exec::Exec;
use crate::keys;

/// The expiry commands.
pub static COMMANDS: &[CommandSpec] = &[];

/// Deletes up to `max` keys whose expiry time is at or before the entry's time, oldest
/// first, by walking the expiry index. Returns how many were deleted.
pub fn expire_cycle(ex: &mut Exec, max: usize) -> Result<usize> {
    let mut due: Vec<(u8, bytes::Bytes)> = Vec::new();
    // The index is ordered by (db, time): per database, the due entries come first.
    'dbs: for db in 0..keys::DATABASES {
        let lo = keys::expiry_key(db, 0, b"");
        let hi = keys::expiry_key(db, ex.now_ms.saturating_add(1), b"");
        let range = keel_storage::ScanRange::new(lo.as_ref()..hi.as_ref());
        for item in ex.scan(range, Direction::Forward) {
            let (k, _) = item?;
            if let Some((db, _, key)) = keys::parse_expiry_key(&k) {
                due.push((db, bytes::Bytes::copy_from_slice(key)));
                if due.len() >= max {
                    break 'dbs;
                }
            }
        }
    }
    let mut n = 0;
    for (db, key) in due {
        match ex.meta_in(db, &key) {
            // meta_in deleted it inside this entry if it was due.
            Ok(None) => n += 1,
            Ok(Some(_)) => {}
            Err(CmdError::Engine(e)) => return Err(e),
            Err(CmdError::Reply(_)) => {}
        }
    }
    Ok(n)
}
