//! Which permission ACL key patterns must grant for each key of a command: Redis's key
//! specs reduced to read (the key's data is read: ACCESS), write (INSERT, DELETE or
//! UPDATE), both, or neither (only existence or metadata is seen: any pattern that
//! matches will do). One entry per key spec, in the spec's order.
//!
//! The data is Redis's: taken from redis-server's COMMAND INFO (each key spec's flags)
//! for the commands keel has, sorted by name. A command missing here falls back to its
//! flags (read-only: read, else both).

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use super::user::KeyAccess::{self, Exists as E, Read as R, ReadWrite as RW, Write as W};
use crate::server::commands::eq_ci;

/// (command or `container|subcommand`, access per key spec), sorted by name for the
/// reader (look-ups go through [`by_name`]).
static KEY_SPECS: &[(&str, &[KeyAccess])] = &[
    ("append", &[W]),
    ("bitcount", &[R]),
    ("bitfield", &[RW]),
    ("bitfield_ro", &[R]),
    ("bitop", &[W, R]),
    ("bitpos", &[R]),
    ("blmove", &[RW, W]),
    ("blmpop", &[RW]),
    ("blpop", &[RW]),
    ("brpop", &[RW]),
    ("brpoplpush", &[RW, W]),
    ("bzmpop", &[RW]),
    ("bzpopmax", &[RW]),
    ("bzpopmin", &[RW]),
    ("copy", &[R, W]),
    ("decr", &[RW]),
    ("decrby", &[RW]),
    ("del", &[W]),
    ("dump", &[R]),
    ("eval", &[RW]),
    ("eval_ro", &[R]),
    ("evalsha", &[RW]),
    ("evalsha_ro", &[R]),
    ("exists", &[E]),
    ("expire", &[W]),
    ("expireat", &[W]),
    ("expiretime", &[R]),
    ("fcall", &[RW]),
    ("fcall_ro", &[R]),
    ("geoadd", &[W]),
    ("geodist", &[R]),
    ("geohash", &[R]),
    ("geopos", &[R]),
    ("georadius", &[R, W, W]),
    ("georadius_ro", &[R]),
    ("georadiusbymember", &[R, W, W]),
    ("georadiusbymember_ro", &[R]),
    ("geosearch", &[R]),
    ("geosearchstore", &[W, R]),
    ("get", &[R]),
    ("getbit", &[R]),
    ("getdel", &[RW]),
    ("getex", &[RW]),
    ("getrange", &[R]),
    ("getset", &[RW]),
    ("hdel", &[W]),
    ("hexists", &[E]),
    ("hget", &[R]),
    ("hgetall", &[R]),
    ("hincrby", &[RW]),
    ("hincrbyfloat", &[RW]),
    ("hkeys", &[R]),
    ("hlen", &[E]),
    ("hmget", &[R]),
    ("hmset", &[W]),
    ("hrandfield", &[R]),
    ("hscan", &[R]),
    ("hset", &[W]),
    ("hsetnx", &[W]),
    ("hstrlen", &[E]),
    ("hvals", &[R]),
    ("incr", &[RW]),
    ("incrby", &[RW]),
    ("incrbyfloat", &[RW]),
    ("lcs", &[R]),
    ("lindex", &[R]),
    ("linsert", &[W]),
    ("llen", &[E]),
    ("lmove", &[RW, W]),
    ("lmpop", &[RW]),
    ("lpop", &[RW]),
    ("lpos", &[R]),
    ("lpush", &[W]),
    ("lpushx", &[W]),
    ("lrange", &[R]),
    ("lrem", &[W]),
    ("lset", &[W]),
    ("ltrim", &[W]),
    ("memory|usage", &[E]),
    ("mget", &[R]),
    ("migrate", &[RW, RW]),
    ("move", &[RW]),
    ("mset", &[W]),
    ("msetnx", &[W]),
    ("object|encoding", &[E]),
    ("object|freq", &[E]),
    ("object|idletime", &[E]),
    ("object|refcount", &[E]),
    ("persist", &[W]),
    ("pexpire", &[W]),
    ("pexpireat", &[W]),
    ("pexpiretime", &[R]),
    ("pfadd", &[W]),
    ("pfcount", &[R]),
    ("pfmerge", &[RW, R]),
    ("psetex", &[W]),
    ("pttl", &[R]),
    ("rename", &[RW, W]),
    ("renamenx", &[RW, W]),
    ("restore", &[W]),
    ("rpop", &[RW]),
    ("rpoplpush", &[RW, W]),
    ("rpush", &[W]),
    ("rpushx", &[W]),
    ("sadd", &[W]),
    ("scard", &[E]),
    ("sdiff", &[R]),
    ("sdiffstore", &[W, R]),
    ("set", &[RW]),
    ("setbit", &[RW]),
    ("setex", &[W]),
    ("setnx", &[W]),
    ("setrange", &[W]),
    ("sinter", &[R]),
    ("sintercard", &[R]),
    ("sinterstore", &[W, R]),
    ("sismember", &[E]),
    ("smembers", &[R]),
    ("smismember", &[R]),
    ("smove", &[RW, W]),
    ("sort", &[R, R, W]),
    ("sort_ro", &[R, R]),
    ("spop", &[RW]),
    ("srandmember", &[R]),
    ("srem", &[W]),
    ("sscan", &[R]),
    ("strlen", &[E]),
    ("substr", &[R]),
    ("sunion", &[R]),
    ("sunionstore", &[W, R]),
    ("touch", &[E]),
    ("ttl", &[R]),
    ("type", &[E]),
    ("unlink", &[W]),
    ("watch", &[E]),
    ("xack", &[W]),
    ("xadd", &[W]),
    ("xautoclaim", &[W]),
    ("xclaim", &[W]),
    ("xdel", &[W]),
    ("xgroup|create", &[W]),
    ("xgroup|createconsumer", &[W]),
    ("xgroup|delconsumer", &[W]),
    ("xgroup|destroy", &[W]),
    ("xgroup|setid", &[W]),
    ("xinfo|consumers", &[R]),
    ("xinfo|groups", &[R]),
    ("xinfo|stream", &[R]),
    ("xlen", &[E]),
    ("xpending", &[R]),
    ("xrange", &[R]),
    ("xread", &[R]),
    ("xreadgroup", &[R]),
    ("xrevrange", &[R]),
    ("xsetid", &[W]),
    ("xtrim", &[W]),
    ("zadd", &[W]),
    ("zcard", &[E]),
    ("zcount", &[R]),
    ("zdiff", &[R]),
    ("zdiffstore", &[W, R]),
    ("zincrby", &[RW]),
    ("zinter", &[R]),
    ("zintercard", &[R]),
    ("zinterstore", &[W, R]),
    ("zlexcount", &[R]),
    ("zmpop", &[RW]),
    ("zmscore", &[R]),
    ("zpopmax", &[RW]),
    ("zpopmin", &[RW]),
    ("zrandmember", &[R]),
    ("zrange", &[R]),
    ("zrangebylex", &[R]),
    ("zrangebyscore", &[R]),
    ("zrangestore", &[W, R]),
    ("zrank", &[R]),
    ("zrem", &[W]),
    ("zremrangebylex", &[W]),
    ("zremrangebyrank", &[W]),
    ("zremrangebyscore", &[W]),
    ("zrevrange", &[R]),
    ("zrevrangebylex", &[R]),
    ("zrevrangebyscore", &[R]),
    ("zrevrank", &[R]),
    ("zscan", &[R]),
    ("zscore", &[R]),
    ("zunion", &[R]),
    ("zunionstore", &[W, R]),
];

/// [`KEY_SPECS`] by name: looked up on a limited user's every call (see
/// `categories::Index::by_name`).
fn by_name() -> &'static HashMap<&'static str, &'static [KeyAccess], foldhash::fast::FixedState> {
    static BY_NAME: OnceLock<HashMap<&str, &[KeyAccess], foldhash::fast::FixedState>> =
        OnceLock::new();
    BY_NAME.get_or_init(|| KEY_SPECS.iter().copied().collect())
}

/// What the keys of one call need, found once per call.
#[derive(Debug, Clone, Copy)]
pub enum Specs {
    /// Every key the same (a command whose options decide it: Redis's VARIABLE_FLAGS).
    All(KeyAccess),
    /// One entry per key spec, in order (`sort`: SORT's, whose middle spec is not a key).
    Table(&'static [KeyAccess], bool),
}

impl Specs {
    /// The access key `nth` (0-based, among the call's keys) needs.
    pub fn nth(self, nth: usize) -> Option<KeyAccess> {
        match self {
            Specs::All(a) => Some(a),
            // SORT's middle spec is its BY/GET patterns, not a key keel names: its keys
            // are the sorted key and STORE's destination.
            Specs::Table(specs, true) if nth > 0 => specs.last().copied(),
            Specs::Table(specs, _) => specs.get(nth.min(specs.len().saturating_sub(1))).copied(),
        }
    }
}

/// The access key `nth` (0-based, among the call's keys) of `name` called with `args`
/// needs, if Redis's key specs say.
pub fn access(name: &str, args: &[Bytes], nth: usize) -> Option<KeyAccess> {
    specs(name, args)?.nth(nth)
}

/// Whether BITFIELD's `args` only read, as Redis's `bitfieldGetKeys` decides: GETs and
/// OVERFLOWs with their arguments, up to a SET or INCRBY (a write) or anything else (a
/// syntax error, taken for a write to be safe).
fn bitfield_reads_only(args: &[Bytes]) -> bool {
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if eq_ci(&args[i], "GET") && more >= 2 {
            i += 3;
        } else if eq_ci(&args[i], "OVERFLOW") && more >= 1 {
            i += 2;
        } else {
            return false;
        }
    }
    true
}

/// What the keys of `name` called with `args` need, if Redis's key specs say.
pub fn specs(name: &str, args: &[Bytes]) -> Option<Specs> {
    match name {
        "set" => {
            let get = args.iter().skip(3).any(|a| eq_ci(a, "GET"));
            return Some(Specs::All(if get { RW } else { W }));
        }
        "bitfield" => return Some(Specs::All(if bitfield_reads_only(args) { R } else { RW })),
        _ => {}
    }
    let find = |n: &str| by_name().get(n).copied();
    // A container has no keys of its own: its subcommand's are looked up (MEMORY USAGE,
    // OBJECT ENCODING, XINFO STREAM), only then, as every other call is found first.
    let specs = match find(name) {
        Some(specs) => specs,
        None => {
            let sub = String::from_utf8_lossy(args.get(1)?).to_ascii_lowercase();
            find(&format!("{name}|{sub}"))?
        }
    };
    Some(Specs::Table(specs, name == "sort"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<Bytes> {
        a.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn the_table_is_sorted_with_one_row_per_name() {
        assert!(KEY_SPECS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn access_per_key_and_option() {
        let none = args(&[]);
        assert_eq!(access("get", &none, 0), Some(R));
        assert_eq!(access("lpush", &none, 0), Some(W));
        assert_eq!(access("incr", &none, 0), Some(RW));
        assert_eq!(access("exists", &none, 3), Some(E));
        assert_eq!(access("copy", &none, 0), Some(R));
        assert_eq!(access("copy", &none, 1), Some(W));
        assert_eq!(access("zunionstore", &none, 0), Some(W));
        assert_eq!(access("zunionstore", &none, 2), Some(R));
        assert_eq!(access("sort", &none, 1), Some(W));
        assert_eq!(access("set", &args(&["SET", "k", "v"]), 0), Some(W));
        assert_eq!(access("set", &args(&["SET", "k", "v", "get"]), 0), Some(RW));
        assert_eq!(
            access("bitfield", &args(&["BITFIELD", "k", "GET", "u4", "0"]), 0),
            Some(R)
        );
        assert_eq!(
            access(
                "bitfield",
                &args(&["BITFIELD", "k", "INCRBY", "u4", "0", "1"]),
                0
            ),
            Some(RW)
        );
        // A syntax error is taken for a write, as in Redis.
        let odd = args(&["BITFIELD", "k", "GET", "u4", "0", "WRAP", "x"]);
        assert_eq!(access("bitfield", &odd, 0), Some(RW));
        let overflow_then_get = args(&["BITFIELD", "k", "OVERFLOW", "SAT", "GET", "i8", "0"]);
        assert_eq!(access("bitfield", &overflow_then_get, 0), Some(R));
        assert_eq!(access("no-such-command", &none, 0), None);
        assert_eq!(
            access("object", &args(&["OBJECT", "ENCODING", "k"]), 0),
            Some(E)
        );
        assert_eq!(
            access("xinfo", &args(&["XINFO", "stream", "k"]), 0),
            Some(R)
        );
    }
}
