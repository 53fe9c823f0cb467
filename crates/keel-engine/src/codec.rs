//! Binary encoding of one log entry, `(ApplyCtx, Op)`, as the coordinators store and ship
//! it (standalone WAL payloads, Raft log entries).
//!
//! Format, version 1 (all integers unsigned):
//!
//! ```text
//! entry   = version:u8(=1) seq:varint now_ms:varint seed:u64le op
//! op      = 0 db:u8 args                              Command
//!         | 1 n:varint (db:u8 args){n}                Multi
//!         | 2 db:u8 list                              ExpireDue
//!         | 3 max:varint                              ExpireCycle
//!         | 4 n:varint (db:u8 bytes){n}               Evict
//!         | 5 db:u8 start_index:varint n:varint txw{n} TxnCommit
//!         | 6 user:bytes rules:bytes op               AsUser (op: Command or Multi)
//! txw     = key:bytes expected:opt write
//! write   = 0 value:bytes expire_at:opt               Put
//!         | 1                                         Delete
//! opt     = 0 | 1 varint
//! args    = list
//! list    = n:varint bytes{n}
//! bytes   = len:varint byte{len}
//! varint  = LEB128, at most 10 bytes, no redundant trailing zero groups
//! ```
//!
//! The seed is fixed-width because it is random and a varint would make it longer. The
//! whole input must be consumed: trailing bytes are an error, so a damaged length can
//! not hide. Decoding never panics and never reserves memory from a count it has not
//! checked against the bytes left: every element takes at least one byte, so a count
//! larger than the remaining input is rejected before anything is allocated.

use bytes::{BufMut, Bytes};

use crate::ctx::ApplyCtx;
use crate::engine::Op;
use crate::txn::{TxnKeyWrite, TxnWrite};

/// The format version this module writes.
pub const VERSION: u8 = 1;

const OP_COMMAND: u8 = 0;
const OP_MULTI: u8 = 1;
const OP_EXPIRE_DUE: u8 = 2;
const OP_EXPIRE_CYCLE: u8 = 3;
const OP_EVICT: u8 = 4;
const OP_TXN_COMMIT: u8 = 5;
const OP_AS_USER: u8 = 6;

const WRITE_PUT: u8 = 0;
const WRITE_DELETE: u8 = 1;

/// Why an entry could not be decoded; `offset` is where in the input the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The entry was written by a format version this build does not know.
    #[error("unsupported log entry version {version} (this build reads {VERSION})")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The input ended inside a field.
    #[error("log entry truncated reading {what} at offset {offset}")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Where it started.
        offset: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("invalid {what} at offset {offset}: {reason}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Bytes remain after a complete entry.
    #[error("{extra} trailing bytes after the log entry at offset {offset}")]
    TrailingBytes {
        /// Where the entry ended.
        offset: usize,
        /// How many bytes follow it.
        extra: usize,
    },
}

/// Appends the encoding of `(ctx, op)` to `out`.
pub fn encode_entry(ctx: &ApplyCtx, op: &Op, out: &mut Vec<u8>) {
    out.push(VERSION);
    put_varint(out, ctx.seq);
    put_varint(out, ctx.now_ms);
    out.extend_from_slice(&ctx.seed.to_le_bytes());
    put_op(out, op);
}

/// Appends the encoding of `op`.
fn put_op(out: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Command { db, args } => {
            out.push(OP_COMMAND);
            out.push(*db);
            put_list(out, args);
        }
        Op::Multi { cmds } => {
            out.push(OP_MULTI);
            put_varint(out, cmds.len() as u64);
            for (db, args) in cmds {
                out.push(*db);
                put_list(out, args);
            }
        }
        Op::ExpireDue { db, keys } => {
            out.push(OP_EXPIRE_DUE);
            out.push(*db);
            put_list(out, keys);
        }
        Op::ExpireCycle { max } => {
            out.push(OP_EXPIRE_CYCLE);
            put_varint(out, *max as u64);
        }
        Op::Evict { keys } => {
            out.push(OP_EVICT);
            put_varint(out, keys.len() as u64);
            for (db, key) in keys {
                out.push(*db);
                put_bytes(out, key);
            }
        }
        Op::TxnCommit {
            db,
            start_index,
            writes,
        } => {
            out.push(OP_TXN_COMMIT);
            out.push(*db);
            put_varint(out, *start_index);
            put_varint(out, writes.len() as u64);
            for w in writes {
                put_bytes(out, &w.key);
                put_opt(out, w.expected);
                match &w.write {
                    TxnWrite::Put { value, expire_at } => {
                        out.push(WRITE_PUT);
                        put_bytes(out, value);
                        put_opt(out, *expire_at);
                    }
                    TxnWrite::Delete => out.push(WRITE_DELETE),
                }
            }
        }
        Op::AsUser { user, rules, op } => {
            out.push(OP_AS_USER);
            put_bytes(out, user);
            put_bytes(out, rules);
            put_op(out, op);
        }
    }
}

/// Decodes one entry; the whole of `bytes` must be that entry.
pub fn decode_entry(bytes: &[u8]) -> Result<(ApplyCtx, Op), CodecError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(CodecError::UnsupportedVersion { version });
    }
    let ctx = ApplyCtx {
        seq: r.varint("seq")?,
        now_ms: r.varint("now_ms")?,
        seed: r.u64_le("seed")?,
    };
    let op = read_op(&mut r, true)?;
    let extra = r.buf.len() - r.pos;
    if extra != 0 {
        return Err(CodecError::TrailingBytes {
            offset: r.pos,
            extra,
        });
    }
    Ok((ctx, op))
}

/// Reads one op; `outer` is false inside an `AsUser`, which holds only a Command or a
/// Multi.
fn read_op(r: &mut Reader<'_>, outer: bool) -> Result<Op, CodecError> {
    let tag_at = r.pos;
    let tag = r.u8("op tag")?;
    if !outer && !matches!(tag, OP_COMMAND | OP_MULTI) {
        return Err(CodecError::Invalid {
            what: "op tag",
            offset: tag_at,
            reason: "a gated entry holds only a command or a transaction",
        });
    }
    Ok(match tag {
        OP_COMMAND => Op::Command {
            db: r.u8("db")?,
            args: r.list("command args")?,
        },
        OP_MULTI => {
            let n = r.count("multi command count")?;
            let mut cmds = Vec::with_capacity(n);
            for _ in 0..n {
                let db = r.u8("db")?;
                cmds.push((db, r.list("command args")?));
            }
            Op::Multi { cmds }
        }
        OP_EXPIRE_DUE => Op::ExpireDue {
            db: r.u8("db")?,
            keys: r.list("expired keys")?,
        },
        OP_EXPIRE_CYCLE => {
            let at = r.pos;
            let max = r.varint("expire cycle max")?;
            let max = usize::try_from(max).map_err(|_| CodecError::Invalid {
                what: "expire cycle max",
                offset: at,
                reason: "does not fit this platform's usize",
            })?;
            Op::ExpireCycle { max }
        }
        OP_EVICT => {
            let n = r.count("evicted key count")?;
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                let db = r.u8("db")?;
                keys.push((db, r.bytes("evicted key")?));
            }
            Op::Evict { keys }
        }
        OP_TXN_COMMIT => {
            let db = r.u8("db")?;
            let start_index = r.varint("start index")?;
            let n = r.count("transaction write count")?;
            let mut writes = Vec::with_capacity(n);
            for _ in 0..n {
                let key = r.bytes("transaction key")?;
                let expected = r.opt("expected modification index")?;
                let at = r.pos;
                let write = match r.u8("write kind")? {
                    WRITE_PUT => TxnWrite::Put {
                        value: r.bytes("transaction value")?,
                        expire_at: r.opt("expire at")?,
                    },
                    WRITE_DELETE => TxnWrite::Delete,
                    _ => {
                        return Err(CodecError::Invalid {
                            what: "write kind",
                            offset: at,
                            reason: "unknown kind",
                        })
                    }
                };
                writes.push(TxnKeyWrite {
                    key,
                    expected,
                    write,
                });
            }
            Op::TxnCommit {
                db,
                start_index,
                writes,
            }
        }
        OP_AS_USER => {
            let user = r.bytes("gated user")?;
            let rules = r.bytes("gated rules")?;
            let op = Box::new(read_op(r, false)?);
            Op::AsUser { user, rules, op }
        }
        _ => {
            return Err(CodecError::Invalid {
                what: "op tag",
                offset: tag_at,
                reason: "unknown op",
            })
        }
    })
}

/// Appends `v` as a LEB128 varint (also the length prefix of a packed list chunk's
/// elements).
pub(crate) fn put_varint(out: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// The bytes [`put_varint`] writes for `v`.
pub(crate) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_list(out: &mut Vec<u8>, items: &[Bytes]) {
    put_varint(out, items.len() as u64);
    for b in items {
        put_bytes(out, b);
    }
}

fn put_opt(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put_varint(out, v);
        }
    }
}

/// A cursor over the input; every read checks the bytes left first.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], CodecError> {
        let start = self.pos;
        let end = start
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(CodecError::Truncated {
                what,
                offset: start,
            })?;
        self.pos = end;
        Ok(&self.buf[start..end])
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    fn u64_le(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let raw = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(raw);
        Ok(u64::from_le_bytes(a))
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10u32 {
            let b = self.u8(what).map_err(|_| CodecError::Truncated {
                what,
                offset: start,
            })?;
            let group = u64::from(b & 0x7f);
            // The tenth byte may only carry the top bit of a u64.
            if i == 9 && group > 1 {
                return Err(CodecError::Invalid {
                    what,
                    offset: start,
                    reason: "varint overflows u64",
                });
            }
            v |= group << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && group == 0 {
                    return Err(CodecError::Invalid {
                        what,
                        offset: start,
                        reason: "varint has a redundant trailing zero group",
                    });
                }
                return Ok(v);
            }
        }
        Err(CodecError::Invalid {
            what,
            offset: start,
            reason: "varint longer than 10 bytes",
        })
    }

    /// A count of elements that each take at least one byte of the remaining input.
    fn count(&mut self, what: &'static str) -> Result<usize, CodecError> {
        let at = self.pos;
        let n = self.varint(what)?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => Err(CodecError::Invalid {
                what,
                offset: at,
                reason: "count exceeds the bytes left",
            }),
        }
    }

    fn bytes(&mut self, what: &'static str) -> Result<Bytes, CodecError> {
        let at = self.pos;
        let n = self.varint(what)?;
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.remaining())
            .ok_or(CodecError::Truncated { what, offset: at })?;
        Ok(Bytes::copy_from_slice(self.take(n, what)?))
    }

    fn list(&mut self, what: &'static str) -> Result<Vec<Bytes>, CodecError> {
        let n = self.count(what)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.bytes(what)?);
        }
        Ok(v)
    }

    fn opt(&mut self, what: &'static str) -> Result<Option<u64>, CodecError> {
        let at = self.pos;
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(self.varint(what)?)),
            _ => Err(CodecError::Invalid {
                what,
                offset: at,
                reason: "option tag is neither 0 nor 1",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_bytes() -> impl Strategy<Value = Bytes> {
        prop::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
    }

    fn arb_args() -> impl Strategy<Value = Vec<Bytes>> {
        prop::collection::vec(arb_bytes(), 0..5)
    }

    fn arb_u64() -> impl Strategy<Value = u64> {
        // Mix small values with the whole range so every varint length shows up.
        prop_oneof![0u64..300, any::<u64>(), Just(u64::MAX)]
    }

    fn arb_write() -> impl Strategy<Value = TxnKeyWrite> {
        let write = prop_oneof![
            (arb_bytes(), prop::option::of(arb_u64()))
                .prop_map(|(value, expire_at)| TxnWrite::Put { value, expire_at }),
            Just(TxnWrite::Delete),
        ];
        (arb_bytes(), prop::option::of(arb_u64()), write).prop_map(|(key, expected, write)| {
            TxnKeyWrite {
                key,
                expected,
                write,
            }
        })
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        let gated = prop_oneof![
            (any::<u8>(), arb_args()).prop_map(|(db, args)| Op::Command { db, args }),
            prop::collection::vec((any::<u8>(), arb_args()), 0..4)
                .prop_map(|cmds| Op::Multi { cmds }),
        ];
        prop_oneof![
            (arb_bytes(), arb_bytes(), gated).prop_map(|(user, rules, op)| Op::AsUser {
                user,
                rules,
                op: Box::new(op)
            }),
            (any::<u8>(), arb_args()).prop_map(|(db, args)| Op::Command { db, args }),
            prop::collection::vec((any::<u8>(), arb_args()), 0..4)
                .prop_map(|cmds| Op::Multi { cmds }),
            (any::<u8>(), arb_args()).prop_map(|(db, keys)| Op::ExpireDue { db, keys }),
            (0usize..100_000).prop_map(|max| Op::ExpireCycle { max }),
            prop::collection::vec((any::<u8>(), arb_bytes()), 0..5)
                .prop_map(|keys| Op::Evict { keys }),
            (
                any::<u8>(),
                arb_u64(),
                prop::collection::vec(arb_write(), 0..4)
            )
                .prop_map(|(db, start_index, writes)| Op::TxnCommit {
                    db,
                    start_index,
                    writes
                }),
        ]
    }

    fn arb_ctx() -> impl Strategy<Value = ApplyCtx> {
        (arb_u64(), arb_u64(), any::<u64>()).prop_map(|(seq, now_ms, seed)| ApplyCtx {
            seq,
            now_ms,
            seed,
        })
    }

    proptest! {
        #[test]
        fn round_trips(ctx in arb_ctx(), op in arb_op()) {
            let mut buf = Vec::new();
            encode_entry(&ctx, &op, &mut buf);
            let (c2, op2) = decode_entry(&buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(c2, ctx);
            prop_assert_eq!(op2, op);
        }

        #[test]
        fn every_truncation_is_rejected(ctx in arb_ctx(), op in arb_op()) {
            let mut buf = Vec::new();
            encode_entry(&ctx, &op, &mut buf);
            for cut in 0..buf.len() {
                prop_assert!(decode_entry(&buf[..cut]).is_err(), "prefix of {} / {} decoded", cut, buf.len());
            }
        }

        #[test]
        fn appended_bytes_are_rejected(ctx in arb_ctx(), op in arb_op(), extra in prop::collection::vec(any::<u8>(), 1..4)) {
            let mut buf = Vec::new();
            encode_entry(&ctx, &op, &mut buf);
            let end = buf.len();
            buf.extend_from_slice(&extra);
            let is_trailing = matches!(decode_entry(&buf), Err(CodecError::TrailingBytes { offset, .. }) if offset == end);
            prop_assert!(is_trailing);
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            // Half the cases get a valid version byte so the decoder goes past it.
            if bytes.len() % 2 == 0 {
                if let Some(b) = bytes.first_mut() {
                    *b = VERSION;
                }
            }
            if let Ok((ctx, op)) = decode_entry(&bytes) {
                // Whatever decodes must re-encode to the same bytes (one encoding per entry).
                let mut again = Vec::new();
                encode_entry(&ctx, &op, &mut again);
                prop_assert_eq!(again, bytes);
            }
        }

        #[test]
        fn single_byte_damage_never_panics(ctx in arb_ctx(), op in arb_op(), at in any::<prop::sample::Index>(), x in 1u8..=255) {
            let mut buf = Vec::new();
            encode_entry(&ctx, &op, &mut buf);
            let i = at.index(buf.len());
            buf[i] ^= x;
            let _ = decode_entry(&buf);
        }
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let mut buf = vec![VERSION];
        put_varint(&mut buf, 1);
        put_varint(&mut buf, 2);
        buf.extend_from_slice(&3u64.to_le_bytes());
        buf.push(OP_COMMAND);
        buf.push(0);
        put_varint(&mut buf, u64::MAX);
        let err = decode_entry(&buf).err();
        assert!(
            matches!(
                err,
                Some(CodecError::Invalid {
                    what: "command args",
                    ..
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_version_and_tag_are_named() {
        assert_eq!(
            decode_entry(&[9]),
            Err(CodecError::UnsupportedVersion { version: 9 })
        );
        let mut buf = vec![VERSION, 1, 1];
        buf.extend_from_slice(&0u64.to_le_bytes());
        buf.push(77);
        assert_eq!(
            decode_entry(&buf),
            Err(CodecError::Invalid {
                what: "op tag",
                offset: 11,
                reason: "unknown op"
            })
        );
    }

    #[test]
    fn a_gated_entry_holds_only_a_command_or_a_transaction() {
        let ctx = ApplyCtx {
            seq: 1,
            now_ms: 1,
            seed: 0,
        };
        let gated = |op: Op| Op::AsUser {
            user: Bytes::from_static(b"u"),
            rules: Bytes::from_static(b"+get ~a*"),
            op: Box::new(op),
        };
        let command = Op::Command {
            db: 2,
            args: vec![Bytes::from_static(b"EVAL")],
        };
        let mut buf = Vec::new();
        encode_entry(&ctx, &gated(command.clone()), &mut buf);
        assert_eq!(decode_entry(&buf), Ok((ctx, gated(command.clone()))));
        // Header 11 bytes, tag, user (2), rules (9): the inner tag is at 23.
        for inner in [gated(command), Op::ExpireCycle { max: 5 }] {
            buf.clear();
            encode_entry(&ctx, &gated(inner), &mut buf);
            assert_eq!(
                decode_entry(&buf),
                Err(CodecError::Invalid {
                    what: "op tag",
                    offset: 23,
                    reason: "a gated entry holds only a command or a transaction"
                })
            );
        }
    }

    #[test]
    fn varint_edges() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u64::MAX >> 1, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut r = Reader { buf: &b, pos: 0 };
            assert_eq!(r.varint("v"), Ok(v));
            assert_eq!(r.pos, b.len());
            assert_eq!(varint_len(v), b.len(), "{v}");
        }
        // Overlong forms and overflow.
        for bad in [&[0x80u8, 0x00][..], &[0xff; 10][..], &[0xff; 11][..]] {
            let mut r = Reader { buf: bad, pos: 0 };
            assert!(r.varint("v").is_err(), "{bad:?}");
        }
    }
}
