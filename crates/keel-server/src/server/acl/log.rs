//! ACL LOG: the latest refused calls and failed AUTHs, newest first, as Redis keeps them.
//! A refusal like a recent one (same reason, context, object and user, the entry at most
//! a minute old) counts into that entry instead of adding one, so that a client retrying
//! in a loop cannot push every other entry out.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use keel_engine::Reply;

/// How long an entry takes further like refusals into its count (Redis: 60 s).
const GROUPING_MS: u64 = 60_000;

/// Why an entry was logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A failed AUTH or HELLO AUTH.
    Auth,
    /// A command the user may not run.
    Command,
    /// A key the user may not reach.
    Key,
    /// A channel the user may not reach.
    Channel,
}

impl Reason {
    /// The reason as ACL LOG names it.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Auth => "auth",
            Reason::Command => "command",
            Reason::Key => "key",
            Reason::Channel => "channel",
        }
    }
}

/// Where the refused call ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Sent by the client.
    Toplevel,
    /// Queued in MULTI.
    Multi,
    /// Called by a script.
    Lua,
}

impl Context {
    fn name(self) -> &'static str {
        match self {
            Context::Toplevel => "toplevel",
            Context::Multi => "multi",
            Context::Lua => "lua",
        }
    }
}

/// One refusal to log.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Why.
    pub reason: Reason,
    /// Where.
    pub context: Context,
    /// The command, key or channel refused ("AUTH" for an authentication).
    pub object: String,
    /// The user (for AUTH: the one named).
    pub username: String,
    /// The client's CLIENT INFO line.
    pub client_info: String,
}

#[derive(Debug)]
struct Entry {
    refusal: Refusal,
    count: u64,
    id: u64,
    created_ms: u64,
    updated_ms: u64,
}

/// The log itself (under the registry's lock).
#[derive(Debug, Default)]
pub struct AclLog {
    entries: VecDeque<Entry>,
    next_id: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl AclLog {
    /// Logs `r`, keeping at most `max` entries.
    pub fn add(&mut self, r: Refusal, max: usize) {
        self.add_at(r, max, now_ms());
    }

    fn add_at(&mut self, r: Refusal, max: usize, now: u64) {
        let like = self.entries.iter().position(|e| {
            let o = &e.refusal;
            o.reason == r.reason
                && o.context == r.context
                && o.object == r.object
                && o.username == r.username
                && now.saturating_sub(e.created_ms) <= GROUPING_MS
        });
        if let Some(i) = like {
            if let Some(mut e) = self.entries.remove(i) {
                e.count += 1;
                e.updated_ms = now;
                e.refusal.client_info = r.client_info;
                self.entries.push_front(e);
            }
        } else {
            self.entries.push_front(Entry {
                refusal: r,
                count: 1,
                id: self.next_id,
                created_ms: now,
                updated_ms: now,
            });
            self.next_id += 1;
        }
        self.entries.truncate(max);
    }

    /// Drops every entry (ACL LOG RESET); ids go on counting.
    pub fn reset(&mut self) {
        self.entries.clear();
    }

    /// Keeps at most `max` entries (CONFIG SET acllog-max-len).
    pub fn trim(&mut self, max: usize) {
        self.entries.truncate(max);
    }

    /// The newest `count` entries as ACL LOG answers them.
    pub fn reply(&self, count: usize) -> Reply {
        let now = now_ms();
        let field = |k: &str, v: Reply| (Reply::bulk(k), v);
        let int = |n: u64| Reply::Int(i64::try_from(n).unwrap_or(i64::MAX));
        Reply::Array(
            self.entries
                .iter()
                .take(count)
                .map(|e| {
                    let r = &e.refusal;
                    let age = now.saturating_sub(e.created_ms) as f64 / 1000.0;
                    Reply::Map(vec![
                        field("count", int(e.count)),
                        field("reason", Reply::bulk(r.reason.name())),
                        field("context", Reply::bulk(r.context.name())),
                        field("object", Reply::bulk(r.object.clone())),
                        field("username", Reply::bulk(r.username.clone())),
                        field("age-seconds", Reply::Double(age)),
                        field("client-info", Reply::bulk(r.client_info.clone())),
                        field("entry-id", int(e.id)),
                        field("timestamp-created", int(e.created_ms)),
                        field("timestamp-last-updated", int(e.updated_ms)),
                    ])
                })
                .collect(),
        )
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(object: &str) -> Refusal {
        Refusal {
            reason: Reason::Command,
            context: Context::Toplevel,
            object: object.into(),
            username: "alice".into(),
            client_info: "id=1".into(),
        }
    }

    #[test]
    fn like_refusals_group_within_a_minute_and_move_to_the_front() {
        let mut log = AclLog::default();
        log.add_at(refusal("get"), 10, 1_000);
        log.add_at(refusal("set"), 10, 2_000);
        log.add_at(refusal("get"), 10, 3_000);
        assert_eq!(log.len(), 2);
        assert_eq!(log.entries[0].refusal.object, "get");
        assert_eq!(log.entries[0].count, 2);
        assert_eq!(log.entries[0].updated_ms, 3_000);
        // Past the grouping window: a new entry.
        log.add_at(refusal("get"), 10, 1_000 + GROUPING_MS + 1);
        assert_eq!(log.len(), 3);
        assert_eq!(log.entries[0].count, 1);
        assert_eq!(log.entries[0].id, 2);
    }

    #[test]
    fn keeps_at_most_max_entries_newest_first() {
        let mut log = AclLog::default();
        for i in 0..5 {
            log.add_at(refusal(&format!("c{i}")), 3, 1_000);
        }
        assert_eq!(log.len(), 3);
        assert_eq!(log.entries[0].refusal.object, "c4");
        assert_eq!(log.entries[2].refusal.object, "c2");
        log.reset();
        assert!(log.is_empty());
    }
}
