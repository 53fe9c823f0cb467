//! Access control lists: users ([`user`]) and their commands' categories
//! ([`categories`]), what each call touches ([`call`]), the check and its refusals
//! ([`refuse`]), ACL LOG ([`log`]) and the ACL file ([`file`]), held by the [`Acl`]
//! registry.
//!
//! A connection holds its user's [`UserSlot`]. ACL SETUSER replaces the user inside the
//! slot, so a change applies to the connected clients at their next command, as in
//! Redis; a user with every permission (the default user, unless changed) is flagged
//! `open` in its slot and its commands skip the check: one atomic load per command.

pub mod call;
pub mod categories;
pub mod file;
pub mod gate;
pub mod key_access;
pub mod log;
pub mod refuse;
pub mod user;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use self::log::{AclLog, Refusal};
use self::user::{RuleError, User};

/// The name of the user every connection starts as.
pub const DEFAULT_USER: &str = "default";

/// One user as connections see it: replaced in place by ACL SETUSER.
#[derive(Debug)]
pub struct UserSlot {
    name: String,
    user: RwLock<Arc<User>>,
    /// Every command, key and channel allowed: the per-call check is skipped.
    open: AtomicBool,
}

impl UserSlot {
    fn new(user: User) -> Arc<Self> {
        Arc::new(UserSlot {
            name: user.name().to_owned(),
            open: AtomicBool::new(user.unrestricted()),
            user: RwLock::new(Arc::new(user)),
        })
    }

    /// The user's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether its calls need no check.
    #[inline(always)]
    pub fn open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// The user as it is now.
    pub fn user(&self) -> Arc<User> {
        Arc::clone(&self.user.read())
    }

    /// The user as it is now, borrowed for one check: no reference count is taken, as
    /// a limited user's every command checks.
    pub fn borrow(&self) -> parking_lot::RwLockReadGuard<'_, Arc<User>> {
        self.user.read()
    }

    fn replace(&self, user: User) {
        let open = user.unrestricted();
        *self.user.write() = Arc::new(user);
        self.open.store(open, Ordering::Relaxed);
    }
}

/// The registry's map: a fresh slot per user of `users`, and `default`'s.
fn slots(
    default: &Arc<UserSlot>,
    users: BTreeMap<String, User>,
) -> BTreeMap<String, Arc<UserSlot>> {
    let mut slots: BTreeMap<String, Arc<UserSlot>> = users
        .into_iter()
        .map(|(name, u)| (name, UserSlot::new(u)))
        .collect();
    slots.insert(DEFAULT_USER.into(), Arc::clone(default));
    slots
}

/// Refusals counted for INFO (`acl_access_denied_*`).
#[derive(Debug, Default)]
pub struct Denials {
    /// Failed AUTHs.
    pub auth: AtomicU64,
    /// Commands refused.
    pub cmd: AtomicU64,
    /// Keys refused.
    pub key: AtomicU64,
    /// Channels refused.
    pub channel: AtomicU64,
}

/// Every user, the ACL LOG and the ACL file's place.
#[derive(Debug)]
pub struct Acl {
    users: RwLock<BTreeMap<String, Arc<UserSlot>>>,
    default: Arc<UserSlot>,
    log: Mutex<AclLog>,
    log_max: AtomicUsize,
    file: Option<PathBuf>,
    /// Refusals counted for INFO.
    pub denials: Denials,
}

/// An ACL file that could not be read, written or applied.
#[derive(Debug, thiserror::Error)]
pub enum AclFileError {
    /// No ACL file is configured.
    #[error("ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.")]
    NotConfigured,
    /// Reading or writing it failed.
    #[error("Error {action} ACL file '{path}': {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Lines that do not apply (`path:line: why`, all of them).
    #[error("{0}")]
    Invalid(String),
}

impl Acl {
    /// The registry at start: the ACL file's users if one is configured (it must be
    /// valid), else the default user alone; `requirepass` sets the default user's
    /// password unless the file describes the default user.
    pub fn new(
        requirepass: Option<&str>,
        file: Option<PathBuf>,
        log_max: usize,
    ) -> Result<Self, AclFileError> {
        let mut users = match &file {
            Some(path) if path.exists() => file::load(path)?,
            _ => BTreeMap::new(),
        };
        let default = match users.remove(DEFAULT_USER) {
            Some(u) => u,
            None => {
                let mut u = User::default_user();
                if let Some(p) = requirepass {
                    u.set_password_only(Some(p.as_bytes()));
                }
                u
            }
        };
        let default = UserSlot::new(default);
        Ok(Acl {
            users: RwLock::new(slots(&default, users)),
            default,
            log: Mutex::new(AclLog::default()),
            log_max: AtomicUsize::new(log_max),
            file,
            denials: Denials::default(),
        })
    }

    /// The default user's slot.
    pub fn default_slot(&self) -> Arc<UserSlot> {
        Arc::clone(&self.default)
    }

    /// Whether a new connection must AUTH first: the default user has a password or is
    /// off.
    pub fn needs_auth(&self) -> bool {
        let u = self.default.user.read();
        !(u.enabled() && u.nopass())
    }

    /// The slot of user `name` if it is on and `pass` is one of its passwords.
    pub fn authenticate(&self, name: &[u8], pass: &[u8]) -> Option<Arc<UserSlot>> {
        let name = std::str::from_utf8(name).ok()?;
        let slot = self.get(name)?;
        let u = slot.user.read();
        (u.enabled() && u.check_password(pass)).then(|| Arc::clone(&slot))
    }

    /// The slot of user `name`.
    pub fn get(&self, name: &str) -> Option<Arc<UserSlot>> {
        self.users.read().get(name).cloned()
    }

    /// ACL SETUSER: applies `rules` to user `name`, made fresh if it does not exist; all
    /// or nothing. The user's connections see the change at their next command.
    pub fn set_user(&self, name: &str, rules: &[&[u8]]) -> Result<(), RuleError> {
        let mut users = self.users.write();
        match users.get(name) {
            Some(slot) => {
                let mut u = User::clone(&slot.user());
                u.set_rules(rules)?;
                slot.replace(u);
            }
            None => {
                let mut u = User::new(name);
                u.set_rules(rules)?;
                users.insert(name.to_owned(), UserSlot::new(u));
            }
        }
        Ok(())
    }

    /// CONFIG SET requirepass: the default user's only password (None: nopass).
    pub fn set_default_password(&self, pass: Option<&str>) {
        let mut u = User::clone(&self.default.user());
        u.set_password_only(pass.map(str::as_bytes));
        self.default.replace(u);
    }

    /// ACL DELUSER: removes the users named (the default user is refused before this)
    /// and returns the slots removed, whose clients the caller disconnects.
    pub fn delete(&self, names: &[&str]) -> Vec<Arc<UserSlot>> {
        let mut users = self.users.write();
        names
            .iter()
            .filter(|n| **n != DEFAULT_USER)
            .filter_map(|n| users.remove(*n))
            .collect()
    }

    /// The users' names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.users.read().keys().cloned().collect()
    }

    /// Every user's ACL LIST line, sorted by name.
    pub fn describe_all(&self) -> Vec<String> {
        self.users
            .read()
            .values()
            .map(|s| s.user().describe())
            .collect()
    }

    /// ACL SAVE: writes every user to the ACL file.
    pub fn save(&self) -> Result<(), AclFileError> {
        let path = self.file.as_ref().ok_or(AclFileError::NotConfigured)?;
        file::save(path, &self.describe_all())
    }

    /// ACL LOAD: replaces the users with the file's (unchanged when it does not apply).
    /// Returns the slots of the users replaced, whose clients the caller disconnects;
    /// the default user's connections stay, with the file's default user.
    pub fn load(&self) -> Result<Vec<Arc<UserSlot>>, AclFileError> {
        let path = self.file.as_ref().ok_or(AclFileError::NotConfigured)?;
        let mut loaded = file::load(path)?;
        let default = loaded
            .remove(DEFAULT_USER)
            .unwrap_or_else(User::default_user);
        let mut users = self.users.write();
        self.default.replace(default);
        let old = std::mem::replace(&mut *users, slots(&self.default, loaded));
        Ok(old
            .into_iter()
            .filter(|(name, _)| name != DEFAULT_USER)
            .map(|(_, slot)| slot)
            .collect())
    }

    /// Logs a refusal in ACL LOG.
    pub fn log(&self, r: Refusal) {
        let max = self.log_max.load(Ordering::Relaxed);
        self.log.lock().add(r, max);
    }

    /// The log, for ACL LOG and ACL LOG RESET.
    pub fn log_book(&self) -> parking_lot::MutexGuard<'_, AclLog> {
        self.log.lock()
    }

    /// CONFIG SET acllog-max-len.
    pub fn set_log_max(&self, max: usize) {
        self.log_max.store(max, Ordering::Relaxed);
        self.log.lock().trim(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_starts_with_the_default_user_and_a_bad_one_stops_the_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.acl");
        let acl = Acl::new(Some("pw"), Some(path.clone()), 8).expect("missing file");
        assert_eq!(acl.names(), vec![DEFAULT_USER.to_owned()]);
        assert!(acl.needs_auth());
        assert!(acl.authenticate(b"default", b"pw").is_some());

        std::fs::write(&path, "user alice on >a +@all ~*\nnot a user line\n").expect("write");
        match Acl::new(None, Some(path), 8) {
            Err(AclFileError::Invalid(why)) => {
                assert!(
                    why.contains("users.acl:2 should start with user keyword"),
                    "{why}"
                )
            }
            other => panic!("a bad file must stop the start: {other:?}"),
        }
    }

    #[test]
    fn the_files_default_user_wins_over_requirepass() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.acl");
        std::fs::write(&path, "user default on >fromfile ~* &* +@all\n").expect("write");
        let acl = Acl::new(Some("fromconfig"), Some(path), 8).expect("valid file");
        assert!(acl.authenticate(b"default", b"fromfile").is_some());
        assert!(acl.authenticate(b"default", b"fromconfig").is_none());
    }
}
