//! Which member records a round's collection writes will read, for the prefetch hint.
//!
//! `Engine::prefetch` asks the store for each write's metadata record before a round is
//! applied. A SADD, HSET, ZADD or list pop then reads one more record per member (does
//! the member exist, what is its score, which element is at the end), whose key is known
//! only once the metadata's collection version is: unfetched, that read was a quarter
//! of a pipelined SADD's or HSET's time (perf, `MemoryEngine::get` 25–29% of samples),
//! one cache miss after another. With the metadata records on their way, this second
//! pass reads each collection's version once and names those member keys too.

use bytes::Bytes;

use crate::args::parse_i64;
use crate::meta::{Body, Meta};
use crate::types::list::enc_index;

/// Elements of one list pop prefetched at most (LPOP/RPOP with a count).
const MAX_POP: i64 = 16;

/// A collection as far as the prefetch pass has followed it through the round.
#[derive(Debug, Clone, Copy)]
pub struct Followed {
    /// Its version (member keys live under it).
    pub version: u64,
    /// A list's next head and tail after the round's pops so far.
    pub ends: Option<(i64, i64)>,
    /// A list's chunk shift (elements live in records of 2^shift indices).
    pub chunk_shift: u8,
    /// The chunk the round's pops of this list named last. A run of single pops (RPOP
    /// -P 16) takes from one chunk 2^shift times over; naming it for each command cost
    /// RPOP -P 16 ~110 of its 6,194 instructions per request.
    pub named: Option<i64>,
}

impl Followed {
    /// The collection a metadata record describes (None for strings).
    pub fn of(meta: &Meta) -> Option<Followed> {
        match meta.body {
            Body::Collection { version, list, .. } => Some(Followed {
                version,
                ends: list.map(|l| (l.head, l.tail)),
                chunk_shift: list.map_or(0, |l| l.chunk_shift),
                named: None,
            }),
            Body::String(_) => None,
        }
    }
}

/// Where a write command names the member records it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Members {
    /// Every `step`th argument from `first`.
    Args {
        /// Position of the first member.
        first: usize,
        /// Distance to the next one (`usize::MAX`: only the first).
        step: usize,
    },
    /// ZADD's members: every second argument after its options and first score.
    Zadd,
    /// The elements a list pop takes, from the left or the right end.
    Pop {
        /// LPOP.
        left: bool,
    },
}

impl Members {
    /// How the write command `name` names the member records it reads; None for one
    /// that reads none (so its collection's version need not be read either).
    pub fn of(name: &str) -> Option<Members> {
        let args = |first, step| Some(Members::Args { first, step });
        match name {
            "sadd" | "srem" | "hdel" | "zrem" => args(2, 1),
            "hset" | "hmset" => args(2, 2),
            "hsetnx" | "hincrby" | "hincrbyfloat" => args(2, usize::MAX),
            "zincrby" => args(3, usize::MAX),
            "zadd" => Some(Members::Zadd),
            "lpop" => Some(Members::Pop { left: true }),
            "rpop" => Some(Members::Pop { left: false }),
            _ => None,
        }
    }

    /// Calls `member` with the suffix of every member record `args` (the whole command,
    /// name first) will read from the collection `c`; pops advance `c`'s ends, so the
    /// next pop of the same list in the round names the next elements.
    pub fn each(self, args: &[Bytes], c: &mut Followed, mut member: impl FnMut(&[u8])) {
        let (first, step) = match self {
            Members::Args { first, step } => (first, step),
            Members::Zadd => (zadd_first_member(args), 2),
            Members::Pop { left } => {
                // Consecutive pops mostly take from one chunk: name each chunk once per
                // run, across the round's commands.
                let shift = c.chunk_shift;
                let mut named = c.named;
                pops(left, args, c, |i| {
                    let chunk = i >> shift;
                    if named != Some(chunk) {
                        named = Some(chunk);
                        member(&enc_index(chunk));
                    }
                });
                c.named = named;
                return;
            }
        };
        for m in args.iter().skip(first).step_by(step) {
            member(m);
        }
    }
}

/// Position of ZADD's first member: after the options and the first score.
fn zadd_first_member(args: &[Bytes]) -> usize {
    const OPTIONS: [&[u8]; 6] = [b"nx", b"xx", b"gt", b"lt", b"ch", b"incr"];
    let opts = args
        .iter()
        .skip(2)
        .take_while(|a| OPTIONS.iter().any(|o| a.eq_ignore_ascii_case(o)))
        .count();
    2 + opts + 1
}

/// The element indices a pop takes from the followed list, advancing its ends.
fn pops(left: bool, args: &[Bytes], c: &mut Followed, mut index: impl FnMut(i64)) {
    let Some((head, tail)) = c.ends.as_mut() else {
        return;
    };
    let count = match args.get(2) {
        None => 1,
        Some(a) => match parse_i64(a) {
            Some(n) if n > 0 => n.min(MAX_POP),
            _ => return,
        },
    };
    let n = count.min(*tail - *head);
    for _ in 0..n {
        if left {
            index(*head);
            *head += 1;
        } else {
            *tail -= 1;
            index(*tail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<Bytes> {
        a.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn named(name: &str, a: &[&str], c: &mut Followed) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if let Some(kind) = Members::of(name) {
            kind.each(&args(a), c, |m| out.push(m.to_vec()));
        }
        out
    }

    fn set() -> Followed {
        Followed {
            version: 7,
            ends: None,
            chunk_shift: 0,
            named: None,
        }
    }

    #[test]
    fn member_arguments_per_command() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        let mut c = set();
        assert_eq!(
            named("sadd", &["sadd", "k", "a", "b"], &mut c),
            v(&["a", "b"])
        );
        assert_eq!(
            named("hset", &["hset", "k", "f1", "v1", "f2", "v2"], &mut c),
            v(&["f1", "f2"])
        );
        assert_eq!(
            named("hincrby", &["hincrby", "k", "f", "1"], &mut c),
            v(&["f"])
        );
        assert_eq!(
            named(
                "zadd",
                &["zadd", "k", "NX", "ch", "1", "m1", "2", "m2"],
                &mut c
            ),
            v(&["m1", "m2"])
        );
        assert_eq!(named("zadd", &["zadd", "k", "1", "m"], &mut c), v(&["m"]));
        assert_eq!(
            named("zincrby", &["zincrby", "k", "1", "m"], &mut c),
            v(&["m"])
        );
        assert!(named("get", &["get", "k"], &mut c).is_empty());
        assert!(
            named("lpop", &["lpop", "k"], &mut c).is_empty(),
            "not a list"
        );
    }

    #[test]
    fn pops_follow_the_list_through_the_round() {
        let mut c = Followed {
            version: 1,
            ends: Some((10, 14)),
            chunk_shift: 0,
            named: None,
        };
        let idx = |xs: &[i64]| {
            xs.iter()
                .map(|&i| enc_index(i).to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(named("rpop", &["rpop", "k"], &mut c), idx(&[13]));
        assert_eq!(named("lpop", &["lpop", "k", "2"], &mut c), idx(&[10, 11]));
        // One element left: a count takes only what is there.
        assert_eq!(named("rpop", &["rpop", "k", "5"], &mut c), idx(&[12]));
        assert!(named("rpop", &["rpop", "k"], &mut c).is_empty());
        assert!(named("lpop", &["lpop", "k", "x"], &mut c).is_empty());
    }

    #[test]
    fn pops_of_a_packed_list_name_each_chunk_once() {
        let mut c = Followed {
            version: 1,
            ends: Some((-3, 40)),
            chunk_shift: 4,
            named: None,
        };
        let chunks = |xs: &[i64]| {
            xs.iter()
                .map(|&i| enc_index(i).to_vec())
                .collect::<Vec<_>>()
        };
        // Indices 39..=24 are chunk 2 (32..48) and chunk 1 (16..32).
        assert_eq!(named("rpop", &["rpop", "k", "16"], &mut c), chunks(&[2, 1]));
        // Indices -3..=0 are chunk -1 (-16..0) and chunk 0.
        assert_eq!(named("lpop", &["lpop", "k", "4"], &mut c), chunks(&[-1, 0]));
        assert_eq!(c.ends, Some((1, 24)));
    }

    #[test]
    fn a_run_of_single_pops_names_each_chunk_once() {
        let mut c = Followed {
            version: 1,
            ends: Some((0, 40)),
            chunk_shift: 4,
            named: None,
        };
        let chunk = |i: i64| vec![enc_index(i).to_vec()];
        // Index 39, then 38..=32: all chunk 2.
        assert_eq!(named("rpop", &["rpop", "k"], &mut c), chunk(2));
        for i in (32..=38).rev() {
            assert!(
                named("rpop", &["rpop", "k"], &mut c).is_empty(),
                "index {i}"
            );
        }
        assert_eq!(named("rpop", &["rpop", "k"], &mut c), chunk(1));
        // The other end is another chunk, and coming back names chunk 1 again.
        assert_eq!(named("lpop", &["lpop", "k"], &mut c), chunk(0));
        assert_eq!(named("rpop", &["rpop", "k"], &mut c), chunk(1));
        assert_eq!(c.ends, Some((1, 30)));
    }
}
