//! ACL categories (`@read`, `@dangerous`, …) of every command and subcommand, and the
//! ids ACL permission bitsets are indexed by.
//!
//! Categories are Redis's: [`REDIS`] holds, for each of keel's commands that Redis has,
//! the categories Redis 7 gives it and its subcommands. A command keel has and Redis
//! does not gets categories derived from its flags and group ([`fallback`]), as Redis
//! derives the implicit ones. The index over keel's commands ([`commands`]) is built once,
//! on first use, from [`crate::server::commands::all`], so a command added there is known
//! to ACL without touching this file.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::OnceLock;

use keel_engine::command::flags;

use crate::server::commands::{self, server_flags, Cmd};

/// A set of ACL categories, one bit each, in [`NAMES`] order.
pub type Categories = u32;

/// `@keyspace`.
pub const KEYSPACE: Categories = 1 << 0;
/// `@read`.
pub const READ: Categories = 1 << 1;
/// `@write`.
pub const WRITE: Categories = 1 << 2;
/// `@set`.
pub const SET: Categories = 1 << 3;
/// `@sortedset`.
pub const SORTEDSET: Categories = 1 << 4;
/// `@list`.
pub const LIST: Categories = 1 << 5;
/// `@hash`.
pub const HASH: Categories = 1 << 6;
/// `@string`.
pub const STRING: Categories = 1 << 7;
/// `@bitmap`.
pub const BITMAP: Categories = 1 << 8;
/// `@hyperloglog`.
pub const HYPERLOGLOG: Categories = 1 << 9;
/// `@geo`.
pub const GEO: Categories = 1 << 10;
/// `@stream`.
pub const STREAM: Categories = 1 << 11;
/// `@pubsub`.
pub const PUBSUB: Categories = 1 << 12;
/// `@admin`.
pub const ADMIN: Categories = 1 << 13;
/// `@fast`.
pub const FAST: Categories = 1 << 14;
/// `@slow`.
pub const SLOW: Categories = 1 << 15;
/// `@blocking`.
pub const BLOCKING: Categories = 1 << 16;
/// `@dangerous`.
pub const DANGEROUS: Categories = 1 << 17;
/// `@connection`.
pub const CONNECTION: Categories = 1 << 18;
/// `@transaction`.
pub const TRANSACTION: Categories = 1 << 19;
/// `@scripting`.
pub const SCRIPTING: Categories = 1 << 20;

/// Category names in ACL CAT's order; bit `i` of [`Categories`] is `NAMES[i]`.
pub const NAMES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// The category called `name` (without the `@`, any case), or None.
pub fn category(name: &str) -> Option<Categories> {
    NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .map(|i| 1 << i)
}

/// One [`REDIS`] entry: name, categories, subcommands as (full name, categories).
pub type RedisEntry = (
    &'static str,
    Categories,
    &'static [(&'static str, Categories)],
);

/// Redis's categories of keel's commands: (name, categories, subcommands as (full name,
/// categories)), both sorted by name.
///
/// Generated, not written: a throwaway script read `COMMAND` from a redis-server 7.0.15
/// (each entry's ACL categories, and its subcommands' with theirs), kept the commands
/// `commands::all()` yields plus `acl`, added the subcommands 7.2 introduced
/// (`client|no-touch`, `client|setinfo`) with the categories Redis 7.2 derives from
/// their `src/commands/*.json`, and printed this table. 7.0 and 7.2 agree on every
/// other entry here.
pub static REDIS: &[RedisEntry] = &[
    (
        "acl",
        SLOW,
        &[
            ("acl|cat", SLOW),
            ("acl|deluser", ADMIN | SLOW | DANGEROUS),
            ("acl|dryrun", ADMIN | SLOW | DANGEROUS),
            ("acl|genpass", SLOW),
            ("acl|getuser", ADMIN | SLOW | DANGEROUS),
            ("acl|help", SLOW),
            ("acl|list", ADMIN | SLOW | DANGEROUS),
            ("acl|load", ADMIN | SLOW | DANGEROUS),
            ("acl|log", ADMIN | SLOW | DANGEROUS),
            ("acl|save", ADMIN | SLOW | DANGEROUS),
            ("acl|setuser", ADMIN | SLOW | DANGEROUS),
            ("acl|users", ADMIN | SLOW | DANGEROUS),
            ("acl|whoami", SLOW),
        ],
    ),
    ("append", WRITE | STRING | FAST, &[]),
    ("auth", FAST | CONNECTION, &[]),
    ("bgrewriteaof", ADMIN | SLOW | DANGEROUS, &[]),
    ("bgsave", ADMIN | SLOW | DANGEROUS, &[]),
    ("bitcount", READ | BITMAP | SLOW, &[]),
    ("bitfield", WRITE | BITMAP | SLOW, &[]),
    ("bitfield_ro", READ | BITMAP | FAST, &[]),
    ("bitop", WRITE | BITMAP | SLOW, &[]),
    ("bitpos", READ | BITMAP | SLOW, &[]),
    ("blmove", WRITE | LIST | SLOW | BLOCKING, &[]),
    ("blmpop", WRITE | LIST | SLOW | BLOCKING, &[]),
    ("blpop", WRITE | LIST | SLOW | BLOCKING, &[]),
    ("brpop", WRITE | LIST | SLOW | BLOCKING, &[]),
    ("brpoplpush", WRITE | LIST | SLOW | BLOCKING, &[]),
    ("bzmpop", WRITE | SORTEDSET | SLOW | BLOCKING, &[]),
    ("bzpopmax", WRITE | SORTEDSET | FAST | BLOCKING, &[]),
    ("bzpopmin", WRITE | SORTEDSET | FAST | BLOCKING, &[]),
    (
        "client",
        SLOW,
        &[
            ("client|caching", SLOW | CONNECTION),
            ("client|getname", SLOW | CONNECTION),
            ("client|getredir", SLOW | CONNECTION),
            ("client|help", SLOW | CONNECTION),
            ("client|id", SLOW | CONNECTION),
            ("client|info", SLOW | CONNECTION),
            ("client|kill", ADMIN | SLOW | DANGEROUS | CONNECTION),
            ("client|list", ADMIN | SLOW | DANGEROUS | CONNECTION),
            ("client|no-evict", ADMIN | SLOW | DANGEROUS | CONNECTION),
            ("client|no-touch", SLOW | CONNECTION),
            ("client|pause", ADMIN | SLOW | DANGEROUS | CONNECTION),
            ("client|reply", SLOW | CONNECTION),
            ("client|setinfo", SLOW | CONNECTION),
            ("client|setname", SLOW | CONNECTION),
            ("client|tracking", SLOW | CONNECTION),
            ("client|trackinginfo", SLOW | CONNECTION),
            ("client|unblock", ADMIN | SLOW | DANGEROUS | CONNECTION),
            ("client|unpause", ADMIN | SLOW | DANGEROUS | CONNECTION),
        ],
    ),
    (
        "command",
        SLOW | CONNECTION,
        &[
            ("command|count", SLOW | CONNECTION),
            ("command|docs", SLOW | CONNECTION),
            ("command|getkeys", SLOW | CONNECTION),
            ("command|getkeysandflags", SLOW | CONNECTION),
            ("command|help", SLOW | CONNECTION),
            ("command|info", SLOW | CONNECTION),
            ("command|list", SLOW | CONNECTION),
        ],
    ),
    (
        "config",
        SLOW,
        &[
            ("config|get", ADMIN | SLOW | DANGEROUS),
            ("config|help", SLOW),
            ("config|resetstat", ADMIN | SLOW | DANGEROUS),
            ("config|rewrite", ADMIN | SLOW | DANGEROUS),
            ("config|set", ADMIN | SLOW | DANGEROUS),
        ],
    ),
    ("copy", KEYSPACE | WRITE | SLOW, &[]),
    ("dbsize", KEYSPACE | READ | FAST, &[]),
    ("debug", ADMIN | SLOW | DANGEROUS, &[]),
    ("decr", WRITE | STRING | FAST, &[]),
    ("decrby", WRITE | STRING | FAST, &[]),
    ("del", KEYSPACE | WRITE | SLOW, &[]),
    ("discard", FAST | TRANSACTION, &[]),
    ("dump", KEYSPACE | READ | SLOW, &[]),
    ("echo", FAST | CONNECTION, &[]),
    ("eval", SLOW | SCRIPTING, &[]),
    ("eval_ro", SLOW | SCRIPTING, &[]),
    ("evalsha", SLOW | SCRIPTING, &[]),
    ("evalsha_ro", SLOW | SCRIPTING, &[]),
    ("exec", SLOW | TRANSACTION, &[]),
    ("exists", KEYSPACE | READ | FAST, &[]),
    ("expire", KEYSPACE | WRITE | FAST, &[]),
    ("expireat", KEYSPACE | WRITE | FAST, &[]),
    ("expiretime", KEYSPACE | READ | FAST, &[]),
    ("fcall", SLOW | SCRIPTING, &[]),
    ("fcall_ro", SLOW | SCRIPTING, &[]),
    ("flushall", KEYSPACE | WRITE | SLOW | DANGEROUS, &[]),
    ("flushdb", KEYSPACE | WRITE | SLOW | DANGEROUS, &[]),
    (
        "function",
        SLOW,
        &[
            ("function|delete", WRITE | SLOW | SCRIPTING),
            ("function|dump", SLOW | SCRIPTING),
            ("function|flush", WRITE | SLOW | SCRIPTING),
            ("function|help", SLOW | SCRIPTING),
            ("function|kill", SLOW | SCRIPTING),
            ("function|list", SLOW | SCRIPTING),
            ("function|load", WRITE | SLOW | SCRIPTING),
            ("function|restore", WRITE | SLOW | SCRIPTING),
            ("function|stats", SLOW | SCRIPTING),
        ],
    ),
    ("geoadd", WRITE | GEO | SLOW, &[]),
    ("geodist", READ | GEO | SLOW, &[]),
    ("geohash", READ | GEO | SLOW, &[]),
    ("geopos", READ | GEO | SLOW, &[]),
    ("georadius", WRITE | GEO | SLOW, &[]),
    ("georadius_ro", READ | GEO | SLOW, &[]),
    ("georadiusbymember", WRITE | GEO | SLOW, &[]),
    ("georadiusbymember_ro", READ | GEO | SLOW, &[]),
    ("geosearch", READ | GEO | SLOW, &[]),
    ("geosearchstore", WRITE | GEO | SLOW, &[]),
    ("get", READ | STRING | FAST, &[]),
    ("getbit", READ | BITMAP | FAST, &[]),
    ("getdel", WRITE | STRING | FAST, &[]),
    ("getex", WRITE | STRING | FAST, &[]),
    ("getrange", READ | STRING | SLOW, &[]),
    ("getset", WRITE | STRING | FAST, &[]),
    ("hdel", WRITE | HASH | FAST, &[]),
    ("hello", FAST | CONNECTION, &[]),
    ("hexists", READ | HASH | FAST, &[]),
    ("hget", READ | HASH | FAST, &[]),
    ("hgetall", READ | HASH | SLOW, &[]),
    ("hincrby", WRITE | HASH | FAST, &[]),
    ("hincrbyfloat", WRITE | HASH | FAST, &[]),
    ("hkeys", READ | HASH | SLOW, &[]),
    ("hlen", READ | HASH | FAST, &[]),
    ("hmget", READ | HASH | FAST, &[]),
    ("hmset", WRITE | HASH | FAST, &[]),
    ("hrandfield", READ | HASH | SLOW, &[]),
    ("hscan", READ | HASH | SLOW, &[]),
    ("hset", WRITE | HASH | FAST, &[]),
    ("hsetnx", WRITE | HASH | FAST, &[]),
    ("hstrlen", READ | HASH | FAST, &[]),
    ("hvals", READ | HASH | SLOW, &[]),
    ("incr", WRITE | STRING | FAST, &[]),
    ("incrby", WRITE | STRING | FAST, &[]),
    ("incrbyfloat", WRITE | STRING | FAST, &[]),
    ("info", SLOW | DANGEROUS, &[]),
    ("keys", KEYSPACE | READ | SLOW | DANGEROUS, &[]),
    ("lastsave", ADMIN | FAST | DANGEROUS, &[]),
    (
        "latency",
        SLOW,
        &[
            ("latency|doctor", ADMIN | SLOW | DANGEROUS),
            ("latency|graph", ADMIN | SLOW | DANGEROUS),
            ("latency|help", SLOW),
            ("latency|histogram", ADMIN | SLOW | DANGEROUS),
            ("latency|history", ADMIN | SLOW | DANGEROUS),
            ("latency|latest", ADMIN | SLOW | DANGEROUS),
            ("latency|reset", ADMIN | SLOW | DANGEROUS),
        ],
    ),
    ("lcs", READ | STRING | SLOW, &[]),
    ("lindex", READ | LIST | SLOW, &[]),
    ("linsert", WRITE | LIST | SLOW, &[]),
    ("llen", READ | LIST | FAST, &[]),
    ("lmove", WRITE | LIST | SLOW, &[]),
    ("lmpop", WRITE | LIST | SLOW, &[]),
    ("lpop", WRITE | LIST | FAST, &[]),
    ("lpos", READ | LIST | SLOW, &[]),
    ("lpush", WRITE | LIST | FAST, &[]),
    ("lpushx", WRITE | LIST | FAST, &[]),
    ("lrange", READ | LIST | SLOW, &[]),
    ("lrem", WRITE | LIST | SLOW, &[]),
    ("lset", WRITE | LIST | SLOW, &[]),
    ("ltrim", WRITE | LIST | SLOW, &[]),
    (
        "memory",
        SLOW,
        &[
            ("memory|doctor", SLOW),
            ("memory|help", SLOW),
            ("memory|malloc-stats", SLOW),
            ("memory|purge", SLOW),
            ("memory|stats", SLOW),
            ("memory|usage", READ | SLOW),
        ],
    ),
    ("mget", READ | STRING | FAST, &[]),
    ("migrate", KEYSPACE | WRITE | SLOW | DANGEROUS, &[]),
    ("monitor", ADMIN | SLOW | DANGEROUS, &[]),
    ("move", KEYSPACE | WRITE | FAST, &[]),
    ("mset", WRITE | STRING | SLOW, &[]),
    ("msetnx", WRITE | STRING | SLOW, &[]),
    ("multi", FAST | TRANSACTION, &[]),
    (
        "object",
        SLOW,
        &[
            ("object|encoding", KEYSPACE | READ | SLOW),
            ("object|freq", KEYSPACE | READ | SLOW),
            ("object|help", KEYSPACE | SLOW),
            ("object|idletime", KEYSPACE | READ | SLOW),
            ("object|refcount", KEYSPACE | READ | SLOW),
        ],
    ),
    ("persist", KEYSPACE | WRITE | FAST, &[]),
    ("pexpire", KEYSPACE | WRITE | FAST, &[]),
    ("pexpireat", KEYSPACE | WRITE | FAST, &[]),
    ("pexpiretime", KEYSPACE | READ | FAST, &[]),
    ("pfadd", WRITE | HYPERLOGLOG | FAST, &[]),
    ("pfcount", READ | HYPERLOGLOG | SLOW, &[]),
    ("pfmerge", WRITE | HYPERLOGLOG | SLOW, &[]),
    ("ping", FAST | CONNECTION, &[]),
    ("psetex", WRITE | STRING | SLOW, &[]),
    ("psubscribe", PUBSUB | SLOW, &[]),
    ("pttl", KEYSPACE | READ | FAST, &[]),
    ("publish", PUBSUB | FAST, &[]),
    (
        "pubsub",
        SLOW,
        &[
            ("pubsub|channels", PUBSUB | SLOW),
            ("pubsub|help", SLOW),
            ("pubsub|numpat", PUBSUB | SLOW),
            ("pubsub|numsub", PUBSUB | SLOW),
            ("pubsub|shardchannels", PUBSUB | SLOW),
            ("pubsub|shardnumsub", PUBSUB | SLOW),
        ],
    ),
    ("punsubscribe", PUBSUB | SLOW, &[]),
    ("quit", FAST | CONNECTION, &[]),
    ("randomkey", KEYSPACE | READ | SLOW, &[]),
    ("readonly", FAST | CONNECTION, &[]),
    ("readwrite", FAST | CONNECTION, &[]),
    ("rename", KEYSPACE | WRITE | SLOW, &[]),
    ("renamenx", KEYSPACE | WRITE | FAST, &[]),
    ("reset", FAST | CONNECTION, &[]),
    ("restore", KEYSPACE | WRITE | SLOW | DANGEROUS, &[]),
    ("role", ADMIN | FAST | DANGEROUS, &[]),
    ("rpop", WRITE | LIST | FAST, &[]),
    ("rpoplpush", WRITE | LIST | SLOW, &[]),
    ("rpush", WRITE | LIST | FAST, &[]),
    ("rpushx", WRITE | LIST | FAST, &[]),
    ("sadd", WRITE | SET | FAST, &[]),
    ("save", ADMIN | SLOW | DANGEROUS, &[]),
    ("scan", KEYSPACE | READ | SLOW, &[]),
    ("scard", READ | SET | FAST, &[]),
    (
        "script",
        SLOW,
        &[
            ("script|debug", SLOW | SCRIPTING),
            ("script|exists", SLOW | SCRIPTING),
            ("script|flush", SLOW | SCRIPTING),
            ("script|help", SLOW | SCRIPTING),
            ("script|kill", SLOW | SCRIPTING),
            ("script|load", SLOW | SCRIPTING),
        ],
    ),
    ("sdiff", READ | SET | SLOW, &[]),
    ("sdiffstore", WRITE | SET | SLOW, &[]),
    ("select", FAST | CONNECTION, &[]),
    ("set", WRITE | STRING | SLOW, &[]),
    ("setbit", WRITE | BITMAP | SLOW, &[]),
    ("setex", WRITE | STRING | SLOW, &[]),
    ("setnx", WRITE | STRING | FAST, &[]),
    ("setrange", WRITE | STRING | SLOW, &[]),
    ("shutdown", ADMIN | SLOW | DANGEROUS, &[]),
    ("sinter", READ | SET | SLOW, &[]),
    ("sintercard", READ | SET | SLOW, &[]),
    ("sinterstore", WRITE | SET | SLOW, &[]),
    ("sismember", READ | SET | FAST, &[]),
    (
        "slowlog",
        SLOW,
        &[
            ("slowlog|get", ADMIN | SLOW | DANGEROUS),
            ("slowlog|help", SLOW),
            ("slowlog|len", ADMIN | SLOW | DANGEROUS),
            ("slowlog|reset", ADMIN | SLOW | DANGEROUS),
        ],
    ),
    ("smembers", READ | SET | SLOW, &[]),
    ("smismember", READ | SET | FAST, &[]),
    ("smove", WRITE | SET | FAST, &[]),
    (
        "sort",
        WRITE | SET | SORTEDSET | LIST | SLOW | DANGEROUS,
        &[],
    ),
    (
        "sort_ro",
        READ | SET | SORTEDSET | LIST | SLOW | DANGEROUS,
        &[],
    ),
    ("spop", WRITE | SET | FAST, &[]),
    ("spublish", PUBSUB | FAST, &[]),
    ("srandmember", READ | SET | SLOW, &[]),
    ("srem", WRITE | SET | FAST, &[]),
    ("sscan", READ | SET | SLOW, &[]),
    ("ssubscribe", PUBSUB | SLOW, &[]),
    ("strlen", READ | STRING | FAST, &[]),
    ("subscribe", PUBSUB | SLOW, &[]),
    ("substr", READ | STRING | SLOW, &[]),
    ("sunion", READ | SET | SLOW, &[]),
    ("sunionstore", WRITE | SET | SLOW, &[]),
    ("sunsubscribe", PUBSUB | SLOW, &[]),
    ("swapdb", KEYSPACE | WRITE | FAST | DANGEROUS, &[]),
    ("time", FAST, &[]),
    ("touch", KEYSPACE | READ | FAST, &[]),
    ("ttl", KEYSPACE | READ | FAST, &[]),
    ("type", KEYSPACE | READ | FAST, &[]),
    ("unlink", KEYSPACE | WRITE | FAST, &[]),
    ("unsubscribe", PUBSUB | SLOW, &[]),
    ("unwatch", FAST | TRANSACTION, &[]),
    ("wait", SLOW | CONNECTION, &[]),
    ("watch", FAST | TRANSACTION, &[]),
    ("xack", WRITE | STREAM | FAST, &[]),
    ("xadd", WRITE | STREAM | FAST, &[]),
    ("xautoclaim", WRITE | STREAM | FAST, &[]),
    ("xclaim", WRITE | STREAM | FAST, &[]),
    ("xdel", WRITE | STREAM | FAST, &[]),
    (
        "xgroup",
        SLOW,
        &[
            ("xgroup|create", WRITE | STREAM | SLOW),
            ("xgroup|createconsumer", WRITE | STREAM | SLOW),
            ("xgroup|delconsumer", WRITE | STREAM | SLOW),
            ("xgroup|destroy", WRITE | STREAM | SLOW),
            ("xgroup|help", STREAM | SLOW),
            ("xgroup|setid", WRITE | STREAM | SLOW),
        ],
    ),
    (
        "xinfo",
        SLOW,
        &[
            ("xinfo|consumers", READ | STREAM | SLOW),
            ("xinfo|groups", READ | STREAM | SLOW),
            ("xinfo|help", STREAM | SLOW),
            ("xinfo|stream", READ | STREAM | SLOW),
        ],
    ),
    ("xlen", READ | STREAM | FAST, &[]),
    ("xpending", READ | STREAM | SLOW, &[]),
    ("xrange", READ | STREAM | SLOW, &[]),
    ("xread", READ | STREAM | SLOW | BLOCKING, &[]),
    ("xreadgroup", WRITE | STREAM | SLOW | BLOCKING, &[]),
    ("xrevrange", READ | STREAM | SLOW, &[]),
    ("xsetid", WRITE | STREAM | FAST, &[]),
    ("xtrim", WRITE | STREAM | SLOW, &[]),
    ("zadd", WRITE | SORTEDSET | FAST, &[]),
    ("zcard", READ | SORTEDSET | FAST, &[]),
    ("zcount", READ | SORTEDSET | FAST, &[]),
    ("zdiff", READ | SORTEDSET | SLOW, &[]),
    ("zdiffstore", WRITE | SORTEDSET | SLOW, &[]),
    ("zincrby", WRITE | SORTEDSET | FAST, &[]),
    ("zinter", READ | SORTEDSET | SLOW, &[]),
    ("zintercard", READ | SORTEDSET | SLOW, &[]),
    ("zinterstore", WRITE | SORTEDSET | SLOW, &[]),
    ("zlexcount", READ | SORTEDSET | FAST, &[]),
    ("zmpop", WRITE | SORTEDSET | SLOW, &[]),
    ("zmscore", READ | SORTEDSET | FAST, &[]),
    ("zpopmax", WRITE | SORTEDSET | FAST, &[]),
    ("zpopmin", WRITE | SORTEDSET | FAST, &[]),
    ("zrandmember", READ | SORTEDSET | SLOW, &[]),
    ("zrange", READ | SORTEDSET | SLOW, &[]),
    ("zrangebylex", READ | SORTEDSET | SLOW, &[]),
    ("zrangebyscore", READ | SORTEDSET | SLOW, &[]),
    ("zrangestore", WRITE | SORTEDSET | SLOW, &[]),
    ("zrank", READ | SORTEDSET | FAST, &[]),
    ("zrem", WRITE | SORTEDSET | FAST, &[]),
    ("zremrangebylex", WRITE | SORTEDSET | SLOW, &[]),
    ("zremrangebyrank", WRITE | SORTEDSET | SLOW, &[]),
    ("zremrangebyscore", WRITE | SORTEDSET | SLOW, &[]),
    ("zrevrange", READ | SORTEDSET | SLOW, &[]),
    ("zrevrangebylex", READ | SORTEDSET | SLOW, &[]),
    ("zrevrangebyscore", READ | SORTEDSET | SLOW, &[]),
    ("zrevrank", READ | SORTEDSET | FAST, &[]),
    ("zscan", READ | SORTEDSET | SLOW, &[]),
    ("zscore", READ | SORTEDSET | FAST, &[]),
    ("zunion", READ | SORTEDSET | SLOW, &[]),
    ("zunionstore", WRITE | SORTEDSET | SLOW, &[]),
];

/// Categories for a command Redis does not have, derived as Redis derives a command's
/// implicit ones from its flags (`write`, `readonly`, `admin`, `fast`, `blocking`; not
/// fast is slow), plus the type category of its group ("generic" is `@keyspace`).
/// `server_table`: a command of the server's table, where READONLY only means "changes
/// no data" (a PING is not `@read`).
pub fn fallback(flag_bits: u32, group: &str, server_table: bool) -> Categories {
    let group_cat = match group {
        "generic" => KEYSPACE,
        "string" => STRING,
        "list" => LIST,
        "hash" => HASH,
        "set" => SET,
        "sorted-set" | "sortedset" => SORTEDSET,
        "bitmap" => BITMAP,
        "hyperloglog" => HYPERLOGLOG,
        "geo" => GEO,
        "stream" => STREAM,
        "pubsub" => PUBSUB,
        "connection" => CONNECTION,
        "transactions" | "transaction" => TRANSACTION,
        "scripting" => SCRIPTING,
        _ => 0,
    };
    let mut c = group_cat;
    if flag_bits & flags::WRITE != 0 {
        c |= WRITE;
    }
    // Redis keeps scripts out of @read even when they are read-only.
    if flag_bits & flags::READONLY != 0 && !server_table && c & SCRIPTING == 0 {
        c |= READ;
    }
    if flag_bits & flags::ADMIN != 0 {
        c |= ADMIN | DANGEROUS;
    }
    if flag_bits & flags::FAST != 0 {
        c |= FAST;
    }
    if flag_bits & flags::BLOCKING != 0 {
        c |= BLOCKING;
    }
    if c & FAST == 0 {
        c |= SLOW;
    }
    c
}

/// A command as ACL sees it.
#[derive(Debug)]
pub struct AclCommand {
    /// Lower-case name.
    pub name: &'static str,
    /// Its bit in permission bitsets.
    pub id: usize,
    /// Its categories.
    pub categories: Categories,
    /// Runs without authentication (AUTH, HELLO, QUIT, RESET): Redis lets every user
    /// run these whatever its command rules.
    pub no_auth: bool,
    /// Its subcommands, sorted by name.
    pub subcommands: Vec<AclSubcommand>,
    sub_names: Vec<&'static str>,
}

/// A subcommand as ACL sees it.
#[derive(Debug)]
pub struct AclSubcommand {
    /// `container|sub`, lower-case.
    pub full_name: &'static str,
    /// Its bit in permission bitsets.
    pub id: usize,
    /// Its categories.
    pub categories: Categories,
}

impl AclSubcommand {
    /// The part after the `|`.
    pub fn name(&self) -> &'static str {
        self.full_name
            .split_once('|')
            .map_or(self.full_name, |(_, s)| s)
    }
}

impl AclCommand {
    /// True if the command has subcommands (CONFIG, CLIENT, …).
    pub fn is_container(&self) -> bool {
        !self.subcommands.is_empty()
    }

    /// The subcommand `sub` (any case), without allocating.
    pub fn subcommand(&self, sub: &[u8]) -> Option<&AclSubcommand> {
        self.subcommands
            .binary_search_by(|s| cmp_ignore_case(s.name().as_bytes(), sub))
            .ok()
            .map(|i| &self.subcommands[i])
    }
}

/// Compares `a` (lower-case) with `b` in any case, as if `b` were lower-cased.
fn cmp_ignore_case(a: &[u8], b: &[u8]) -> Ordering {
    a.iter()
        .copied()
        .cmp(b.iter().map(|c| c.to_ascii_lowercase()))
}

struct Index {
    commands: Vec<AclCommand>,
    /// Position in `commands` by name: a limited user's every call looks its command
    /// up, and a bisection of names cost it eight string comparisons (perf: with the
    /// key-access search, a fifth of a pipelined GET's CPU).
    by_name: HashMap<&'static str, usize, foldhash::fast::FixedState>,
    ids: usize,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| build(commands::all()))
}

fn build(cmds: impl Iterator<Item = Cmd>) -> Index {
    let mut list: Vec<AclCommand> = cmds
        .map(|c| {
            let redis = REDIS
                .binary_search_by(|(n, _, _)| n.cmp(&c.name()))
                .ok()
                .map(|i| REDIS[i]);
            let (categories, subs) = match redis {
                Some((_, cats, subs)) => (cats, subs),
                None => (
                    fallback(c.flags(), c.group(), matches!(c, Cmd::Server(_))),
                    &[][..],
                ),
            };
            AclCommand {
                name: c.name(),
                id: 0,
                categories,
                no_auth: c.flags() & server_flags::NO_AUTH != 0,
                subcommands: subs
                    .iter()
                    .map(|&(full_name, categories)| AclSubcommand {
                        full_name,
                        id: 0,
                        categories,
                    })
                    .collect(),
                sub_names: subs
                    .iter()
                    .map(|&(n, _)| n.split_once('|').map_or(n, |(_, s)| s))
                    .collect(),
            }
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(b.name));
    list.dedup_by(|a, b| a.name == b.name);
    let mut next = 0;
    for c in &mut list {
        c.id = next;
        next += 1;
    }
    for c in &mut list {
        for s in &mut c.subcommands {
            s.id = next;
            next += 1;
        }
    }
    let by_name = list.iter().enumerate().map(|(i, c)| (c.name, i)).collect();
    Index {
        commands: list,
        by_name,
        ids: next,
    }
}

/// Every command keel has, sorted by name, with ids and categories.
pub fn commands() -> &'static [AclCommand] {
    &index().commands
}

/// How many ids commands and subcommands use: the length of a permission bitset.
pub fn id_count() -> usize {
    index().ids
}

/// The command called `name` (lower-case), without allocating.
pub fn lookup(name: &str) -> Option<&'static AclCommand> {
    let index = index();
    index.by_name.get(name).map(|&i| &index.commands[i])
}

/// Categories of the command `name` (lower-case), or of its subcommand `sub` (any case);
/// an unknown subcommand gets the command's. 0 for an unknown command.
pub fn of(name: &str, sub: Option<&[u8]>) -> Categories {
    let Some(c) = lookup(name) else {
        return 0;
    };
    sub.and_then(|s| c.subcommand(s))
        .map_or(c.categories, |s| s.categories)
}

/// True if the command `name` (lower-case) has subcommands.
pub fn has_subcommands(name: &str) -> bool {
    lookup(name).is_some_and(AclCommand::is_container)
}

/// Names of the subcommands of `name` (lower-case), without the container (`get` for
/// `config|get`), sorted; empty if it has none or is unknown.
pub fn subcommands(name: &str) -> &'static [&'static str] {
    lookup(name).map_or(&[], |c| &c.sub_names)
}

/// What `ACL CAT <category>` lists: every command in `cat`, each followed by those of
/// its subcommands in `cat` (as `config|get`), as Redis walks its command table.
pub fn commands_in(cat: Categories) -> Vec<String> {
    let mut out = Vec::new();
    for c in commands() {
        if c.categories & cat != 0 {
            out.push(c.name.to_string());
        }
        out.extend(
            c.subcommands
                .iter()
                .filter(|s| s.categories & cat != 0)
                .map(|s| s.full_name.to_string()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_bits_and_lookup_ignores_case() {
        let bits = [
            KEYSPACE,
            READ,
            WRITE,
            SET,
            SORTEDSET,
            LIST,
            HASH,
            STRING,
            BITMAP,
            HYPERLOGLOG,
            GEO,
            STREAM,
            PUBSUB,
            ADMIN,
            FAST,
            SLOW,
            BLOCKING,
            DANGEROUS,
            CONNECTION,
            TRANSACTION,
            SCRIPTING,
        ];
        for (i, n) in NAMES.iter().enumerate() {
            assert_eq!(category(n), Some(bits[i]), "{n}");
            assert_eq!(category(&n.to_ascii_uppercase()), Some(bits[i]), "{n}");
        }
        assert_eq!(category("all"), None);
        assert_eq!(category(""), None);
        assert_eq!(category("@read"), None);
    }

    #[test]
    fn redis_table_is_sorted_and_well_formed() {
        for w in REDIS.windows(2) {
            assert!(w[0].0 < w[1].0, "{} before {}", w[0].0, w[1].0);
        }
        for (name, cats, subs) in REDIS {
            assert_ne!(*cats, 0, "{name}");
            assert_eq!(
                (cats & (FAST | SLOW)).count_ones(),
                1,
                "{name}: fast xor slow"
            );
            for w in subs.windows(2) {
                assert!(w[0].0 < w[1].0, "{}", w[1].0);
            }
            for (sub, c) in *subs {
                assert!(sub.starts_with(&format!("{name}|")), "{sub}");
                assert_ne!(*c, 0, "{sub}");
            }
        }
    }

    #[test]
    fn every_keel_command_is_indexed_and_the_redis_ones_use_redis_categories() {
        let n = commands::all().count();
        assert_eq!(commands().len(), n);
        for c in commands::all() {
            let a = lookup(c.name()).unwrap_or_else(|| panic!("{} not indexed", c.name()));
            assert_eq!(a.name, c.name());
        }
        assert_eq!(of("get", None), READ | STRING | FAST);
        assert_eq!(of("set", None), WRITE | STRING | SLOW);
        assert_eq!(of("blpop", None), WRITE | LIST | SLOW | BLOCKING);
        assert_eq!(of("flushall", None), KEYSPACE | WRITE | SLOW | DANGEROUS);
        assert_eq!(of("ping", None), FAST | CONNECTION);
        assert_eq!(of("nosuch", None), 0);
    }

    /// keel's commands Redis does not have: their categories come from [`fallback`].
    const KEEL_ONLY: &[&str] = &[];

    /// A Redis command missing from [`REDIS`] would get derived categories instead of
    /// Redis's (KEYS would lose @dangerous, for one).
    #[test]
    fn every_command_redis_has_is_in_the_table() {
        for c in commands::all() {
            let in_table = REDIS.binary_search_by(|e| e.0.cmp(c.name())).is_ok();
            assert!(
                in_table || KEEL_ONLY.contains(&c.name()),
                "{} is not in REDIS: if Redis has it, regenerate the table (see its doc); \
                 if not, add it to KEEL_ONLY",
                c.name()
            );
        }
    }

    #[test]
    fn ids_are_unique_and_dense() {
        let mut seen = vec![false; id_count()];
        for c in commands() {
            assert!(!std::mem::replace(&mut seen[c.id], true), "{}", c.name);
            for s in &c.subcommands {
                assert!(!std::mem::replace(&mut seen[s.id], true), "{}", s.full_name);
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn subcommands_are_found_in_any_case_and_unknown_ones_fall_back() {
        assert!(has_subcommands("config"));
        assert!(has_subcommands("client"));
        assert!(!has_subcommands("get"));
        assert!(
            !has_subcommands("debug"),
            "DEBUG takes first-arg rules, as in Redis"
        );
        assert!(!has_subcommands("nosuch"));
        assert!(subcommands("config").contains(&"get"));
        assert!(subcommands("client").contains(&"no-evict"));
        assert!(subcommands("config").windows(2).all(|w| w[0] < w[1]));
        assert!(subcommands("get").is_empty());
        assert_eq!(of("config", Some(b"GET")), ADMIN | SLOW | DANGEROUS);
        assert_eq!(of("config", Some(b"get")), ADMIN | SLOW | DANGEROUS);
        assert_eq!(of("config", Some(b"nosuch")), SLOW);
        assert_eq!(of("config", None), SLOW);
        assert_eq!(of("client", Some(b"ID")), SLOW | CONNECTION);
        assert_eq!(of("get", Some(b"x")), READ | STRING | FAST);
        let c = lookup("client").expect("client");
        assert_eq!(
            c.subcommand(b"No-Evict").map(|s| s.full_name),
            Some("client|no-evict")
        );
        assert_eq!(c.subcommand(b"no-evic").map(|s| s.name()), None);
        assert_eq!(c.subcommand(b"").map(|s| s.name()), None);
    }

    #[test]
    fn no_auth_commands_are_marked() {
        for n in ["auth", "hello"] {
            assert!(lookup(n).expect(n).no_auth, "{n}");
        }
        assert!(!lookup("get").expect("get").no_auth);
    }

    #[test]
    fn acl_cat_lists_commands_then_their_subcommands() {
        let slow = commands_in(SLOW);
        let config = slow.iter().position(|n| n == "config").expect("config");
        assert!(slow[config + 1].starts_with("config|"));
        assert!(slow.contains(&"config|get".to_string()));
        assert!(!slow.contains(&"get".to_string()));
        let fast = commands_in(FAST);
        assert!(fast.contains(&"get".to_string()));
        assert!(!fast.contains(&"config".to_string()));
        let dangerous = commands_in(DANGEROUS);
        assert!(dangerous.contains(&"config|set".to_string()));
        assert!(!dangerous.contains(&"config".to_string()));
        assert!(dangerous.contains(&"flushall".to_string()));
        assert!(commands_in(0).is_empty());
    }

    #[test]
    fn fallback_derives_redis_implicit_categories() {
        use flags::{ADMIN as A, BLOCKING as B, FAST as F, READONLY as R, WRITE as W};
        assert_eq!(fallback(R | F, "string", false), READ | STRING | FAST);
        assert_eq!(fallback(W, "list", false), WRITE | LIST | SLOW);
        assert_eq!(
            fallback(W | B, "sorted-set", false),
            WRITE | SORTEDSET | SLOW | BLOCKING
        );
        assert_eq!(fallback(R, "generic", false), KEYSPACE | READ | SLOW);
        assert_eq!(fallback(R | F, "hash", false), READ | HASH | FAST);
        assert_eq!(fallback(W | F, "stream", false), WRITE | STREAM | FAST);
        assert_eq!(fallback(R, "scripting", false), SCRIPTING | SLOW);
        assert_eq!(fallback(A, "server", true), ADMIN | DANGEROUS | SLOW);
        assert_eq!(fallback(R | F, "connection", true), CONNECTION | FAST);
        assert_eq!(fallback(R, "server", true), SLOW);
        assert_eq!(fallback(R, "transactions", true), TRANSACTION | SLOW);
        assert_eq!(fallback(R | F, "pubsub", true), PUBSUB | FAST);
        assert_eq!(fallback(R, "geo", false), READ | GEO | SLOW);
        assert_eq!(
            fallback(W, "hyperloglog", false),
            WRITE | HYPERLOGLOG | SLOW
        );
        assert_eq!(fallback(R | F, "bitmap", false), READ | BITMAP | FAST);
        assert_eq!(fallback(W | F, "set", false), WRITE | SET | FAST);
    }

    #[test]
    fn a_command_redis_lacks_gets_the_fallback() {
        static ODD: commands::ServerCommand = commands::ServerCommand {
            name: "keel-odd",
            arity: 1,
            flags: flags::READONLY | flags::FAST | server_flags::NO_AUTH,
            first_key: 0,
            last_key: 0,
            step: 0,
            group: "connection",
            summary: "",
            handler: |_, _| commands::err("x"),
        };
        let idx = build(
            [
                Cmd::Server(&ODD),
                commands::lookup(b"config").expect("config"),
            ]
            .into_iter(),
        );
        assert_eq!(idx.commands.len(), 2);
        let odd = &idx.commands[1];
        assert_eq!(odd.name, "keel-odd");
        assert_eq!(odd.categories, CONNECTION | FAST);
        assert!(odd.no_auth);
        assert!(odd.subcommands.is_empty());
        assert_eq!(idx.commands[0].name, "config");
        assert_eq!(idx.ids, 2 + idx.commands[0].subcommands.len());
    }
}
