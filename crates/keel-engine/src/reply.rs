//! Replies as the engine produces them: a RESP3-shaped tree that the front-end renders
//! as RESP2 or RESP3.

use bytes::{BufMut, Bytes};

/// One reply value.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `+OK`.
    Ok,
    /// A simple status string (`+PONG`, `+string`, `+QUEUED`).
    Simple(String),
    /// An error line; the text starts with its code (`ERR …`, `WRONGTYPE …`).
    Error(String),
    /// An integer.
    Int(i64),
    /// A bulk string.
    Bulk(Bytes),
    /// The null bulk string (RESP2 `$-1`, RESP3 `_`).
    Nil,
    /// The null array (RESP2 `*-1`, RESP3 `_`).
    NilArray,
    /// An array.
    Array(Vec<Reply>),
    /// An array of bulk strings held in one buffer (LRANGE, HVALS): the same reply as
    /// the `Array` of their `Bulk`s, and equal to it, without an allocation per value.
    Bulks(BulkList),
    /// A set of bulk strings held in one buffer (SMEMBERS): the same reply as the `Set`
    /// of their `Bulk`s, and equal to it.
    BulkSet(BulkList),
    /// A map whose keys and values are bulk strings, held in one buffer as key, value,
    /// key, value (HGETALL): the same reply as the `Map` of their `Bulk` pairs, and equal
    /// to it.
    BulkMap(BulkList),
    /// A double (RESP3 `,`; RESP2 renders it as a bulk string).
    Double(f64),
    /// A double printed as Redis prints a long double in its "human" form, 17 decimals
    /// with trailing zeros cut (RESP3 `,`; RESP2 a bulk string): GEOPOS's coordinates.
    HumanDouble(f64),
    /// A map (RESP3 `%`; RESP2 renders it as a flat array).
    Map(Vec<(Reply, Reply)>),
    /// A set (RESP3 `~`; RESP2 renders it as an array).
    Set(Vec<Reply>),
    /// A boolean (RESP3 `#`; RESP2 renders it as 1/0).
    Bool(bool),
    /// Pairs such as member/score (RESP3: an array of 2-element arrays; RESP2: one flat
    /// array), as Redis 7 answers ZRANGE … WITHSCORES, ZPOPMIN with a count, ZRANDMEMBER
    /// … WITHSCORES and HRANDFIELD … WITHVALUES.
    Pairs(Vec<(Reply, Reply)>),
    /// A map in RESP3; in RESP2 an array of `[key, value]` arrays, as Redis answers
    /// XREAD and XREADGROUP.
    PairMap(Vec<(Reply, Reply)>),
    /// An out-of-band push (RESP3 `>`; RESP2 renders it as an array): pub/sub messages.
    Push(Vec<Reply>),
}

/// Bulk strings back to back in one buffer, each already framed as RESP frames a bulk
/// string (`$<len>\r\n<bytes>\r\n`), with where each one's bytes end.
///
/// Why one buffer: a reply of many values built as an `Array` of `Bulk`s paid an
/// allocation, a copy and a free per value; they were a fifth of a pipelined LRANGE of
/// 100 values. Why framed: RESP2 and RESP3 frame a bulk string alike, and the RESP
/// front-end is where nearly every such reply goes; it then writes the whole list with
/// one copy, where a header, a copy and a CRLF per value were ~100 instructions each
/// (callgrind, LRANGE of 100 values). Other front-ends read the values with
/// [`BulkList::iter`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkList {
    framed: Vec<u8>,
    ends: Vec<usize>,
}

impl BulkList {
    /// An empty list with room for the ends of `n` strings (up to a bound).
    pub fn with_capacity(n: usize) -> Self {
        BulkList {
            framed: Vec::new(),
            ends: Vec::with_capacity(n.min(MAX_ENDS_RESERVED)),
        }
    }

    /// Appends a copy of `v`.
    pub fn push(&mut self, v: &[u8]) {
        let framed_len = v.len().saturating_add(FRAME_OVERHEAD);
        if self.ends.is_empty() {
            // The first value's size is the best guess of the others' (list elements and
            // hash values tend to be alike): room for a few more saves the first
            // doublings. A large one says little of the rest and gets no company.
            let room = self.ends.capacity().clamp(1, FIRST_GUESS);
            let guess = framed_len.saturating_mul(room);
            self.framed.reserve(if guess <= MAX_GUESS {
                guess
            } else {
                framed_len
            });
        }
        put_bulk_header(&mut self.framed, v.len());
        self.framed.extend_from_slice(v);
        self.ends.push(self.framed.len());
        self.framed.extend_from_slice(b"\r\n");
    }

    /// How many strings it holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The strings in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.ends.len()).map(|i| {
            let frame = if i == 0 { 0 } else { self.ends[i - 1] + 2 };
            // The header is `$`, the digits and CRLF; the digits hold no `\r`.
            let header = self.framed[frame..]
                .iter()
                .position(|&b| b == b'\r')
                .map_or(0, |cr| cr + 2);
            &self.framed[frame + header..self.ends[i]]
        })
    }

    /// The strings as a RESP array of bulk strings carries them after its header.
    pub fn framed(&self) -> &[u8] {
        &self.framed
    }
}

/// Appends `$`, `len` in decimal and CRLF: a RESP bulk string's header (the RESP
/// encoder's too). Most values are shorter than 100 bytes, and a fixed-size header for
/// them is a few stores where a general digit loop and its copy were about 50
/// instructions of every GET.
pub fn put_bulk_header(out: &mut impl BufMut, len: usize) {
    let digit = |d: usize| b'0' + d as u8;
    if len < 10 {
        out.put_slice(&[b'$', digit(len), b'\r', b'\n']);
    } else if len < 100 {
        out.put_slice(&[b'$', digit(len / 10), digit(len % 10), b'\r', b'\n']);
    } else {
        out.put_u8(b'$');
        out.put_slice(itoa::Buffer::new().format(len).as_bytes());
        out.put_slice(b"\r\n");
    }
}

/// Bytes a value's framing adds when it is shorter than 100 bytes: `$`, two digits and
/// two CRLFs (a guess for the first reservation only).
const FRAME_OVERHEAD: usize = 7;
/// Most values [`BulkList::push`] makes room for at its first value.
const FIRST_GUESS: usize = 128;
/// The most bytes that guess may reserve.
const MAX_GUESS: usize = 64 << 10;
/// The most string ends [`BulkList::with_capacity`] reserves room for.
const MAX_ENDS_RESERVED: usize = 1024;

impl<B: AsRef<[u8]>> FromIterator<B> for BulkList {
    fn from_iter<I: IntoIterator<Item = B>>(iter: I) -> Self {
        let mut list = BulkList::default();
        for v in iter {
            list.push(v.as_ref());
        }
        list
    }
}

/// True when `items` are bulk strings equal to `list`'s, in order.
fn same_bulks(list: &BulkList, items: &[Reply]) -> bool {
    list.len() == items.len()
        && list
            .iter()
            .zip(items)
            .all(|(v, r)| matches!(r, Reply::Bulk(b) if b.as_ref() == v))
}

/// True when `pairs` are bulk string pairs equal to `list`'s strings taken two by two.
fn same_bulk_pairs(list: &BulkList, pairs: &[(Reply, Reply)]) -> bool {
    let mut strings = list.iter();
    list.len() == 2 * pairs.len()
        && pairs.iter().all(|(k, v)| {
            let bulk =
                |r: &Reply, s: Option<&[u8]>| matches!(r, Reply::Bulk(b) if Some(b.as_ref()) == s);
            bulk(k, strings.next()) && bulk(v, strings.next())
        })
}

impl PartialEq for Reply {
    fn eq(&self, other: &Reply) -> bool {
        use Reply::*;
        match (self, other) {
            (Ok, Ok) | (Nil, Nil) | (NilArray, NilArray) => true,
            (Simple(a), Simple(b)) | (Error(a), Error(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Bulk(a), Bulk(b)) => a == b,
            (Array(a), Array(b)) | (Set(a), Set(b)) | (Push(a), Push(b)) => a == b,
            (Bulks(a), Bulks(b)) => a == b,
            (Bulks(list), Array(items)) | (Array(items), Bulks(list)) => same_bulks(list, items),
            (BulkSet(a), BulkSet(b)) | (BulkMap(a), BulkMap(b)) => a == b,
            (BulkSet(list), Set(items)) | (Set(items), BulkSet(list)) => same_bulks(list, items),
            (BulkMap(list), Map(pairs)) | (Map(pairs), BulkMap(list)) => {
                same_bulk_pairs(list, pairs)
            }
            (Double(a), Double(b)) => a == b,
            (Map(a), Map(b)) | (Pairs(a), Pairs(b)) | (PairMap(a), PairMap(b)) => a == b,
            (Bool(a), Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl Reply {
    /// The reply a one-buffer reply (`Bulks`, `BulkSet`, `BulkMap`) stands for, with a
    /// `Bulk` per string; any other reply as it is. For readers that walk replies as
    /// trees (scripts, tests); the RESP encoder writes the buffer as it is.
    pub fn expanded(&self) -> std::borrow::Cow<'_, Reply> {
        use std::borrow::Cow;
        let bulks = |list: &BulkList| list.iter().map(Reply::bulk).collect::<Vec<_>>();
        match self {
            Reply::Bulks(list) => Cow::Owned(Reply::Array(bulks(list))),
            Reply::BulkSet(list) => Cow::Owned(Reply::Set(bulks(list))),
            Reply::BulkMap(list) => {
                let mut all = bulks(list).into_iter();
                let mut pairs = Vec::with_capacity(list.len() / 2);
                while let (Some(k), Some(v)) = (all.next(), all.next()) {
                    pairs.push((k, v));
                }
                Cow::Owned(Reply::Map(pairs))
            }
            other => Cow::Borrowed(other),
        }
    }

    /// An error reply with exactly `text` (which must start with its code).
    pub fn err(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    /// A bulk reply copied from `b`.
    pub fn bulk(b: impl AsRef<[u8]>) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(b.as_ref()))
    }

    /// A bulk reply of an optional value (None renders as nil).
    pub fn opt_bulk(b: Option<Bytes>) -> Reply {
        b.map_or(Reply::Nil, Reply::Bulk)
    }

    /// An array of bulk strings.
    pub fn bulks<I, B>(items: I) -> Reply
    where
        I: IntoIterator<Item = B>,
        B: Into<Bytes>,
    {
        Reply::Array(items.into_iter().map(|b| Reply::Bulk(b.into())).collect())
    }

    /// True for error replies.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// Redis's error texts, the spec keel's replies follow.
pub mod errors {
    /// Wrong kind of value for the command.
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    /// OBJECT FREQ without an LFU maxmemory-policy (Redis's text).
    pub const NO_LFU_FREQ: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
    /// OBJECT IDLETIME under an LFU maxmemory-policy (Redis's text).
    pub const LFU_NO_IDLETIME: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
    /// Generic syntax error.
    pub const SYNTAX: &str = "ERR syntax error";
    /// Integer argument or stored value not an integer / out of range.
    pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
    /// Float argument or stored value not a float.
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    /// INCR-family overflow.
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    /// Missing key for commands that need one.
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    /// Index past the end (LSET).
    pub const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
    /// String grew past proto-max-bulk-len.
    pub const STRING_TOO_LONG: &str =
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
    /// Bad expire time.
    pub const INVALID_EXPIRE: &str = "ERR invalid expire time in 'set' command";
    /// DB index out of range.
    pub const DB_INDEX: &str = "ERR DB index is out of range";
    /// Writes refused with noeviction over maxmemory.
    pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

    /// "wrong number of arguments" for `cmd` (lower-case name as Redis prints it).
    pub fn wrong_args(cmd: &str) -> String {
        format!(
            "ERR wrong number of arguments for '{}' command",
            cmd.to_ascii_lowercase()
        )
    }

    /// "unknown command" with the args preview Redis prints.
    pub fn unknown_command(cmd: &str, args: &[bytes::Bytes]) -> String {
        let mut preview = String::new();
        for a in args.iter().take(20) {
            preview.push('\'');
            preview.push_str(&String::from_utf8_lossy(a));
            preview.push_str("' ");
        }
        format!("ERR unknown command '{cmd}', with args beginning with: {preview}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_list_gives_back_what_was_pushed() {
        let big = vec![9u8; 200_000];
        let (ten, hundred) = (vec![b'\r'; 10], vec![b'$'; 100]);
        let values: Vec<&[u8]> = vec![b"", b"one", b"", &big, b"two", &ten, &hundred, b"\r\n"];
        for cap in [0, 1, 5, usize::MAX] {
            let mut list = BulkList::with_capacity(cap);
            assert!(list.is_empty());
            for v in &values {
                list.push(v);
            }
            assert_eq!(list.len(), values.len());
            assert_eq!(list.iter().len(), values.len());
            assert_eq!(list.iter().collect::<Vec<_>>(), values, "capacity {cap}");
            let mut framed = Vec::new();
            for v in &values {
                framed.extend_from_slice(format!("${}\r\n", v.len()).as_bytes());
                framed.extend_from_slice(v);
                framed.extend_from_slice(b"\r\n");
            }
            assert_eq!(list.framed(), framed, "capacity {cap}");
        }
    }

    #[test]
    fn bulks_equal_the_array_of_their_bulks_and_nothing_else() {
        let list: BulkList = ["a", "", "b"].iter().collect();
        let bulks = Reply::Bulks(list.clone());
        let array = Reply::bulks(["a", "", "b"]);
        assert_eq!(bulks, array);
        assert_eq!(array, bulks);
        assert_eq!(bulks, Reply::Bulks(list));
        assert_ne!(bulks, Reply::bulks(["a", "", "c"]));
        assert_ne!(bulks, Reply::bulks(["a", ""]));
        assert_ne!(
            bulks,
            Reply::Set(vec![Reply::bulk("a"), Reply::bulk(""), Reply::bulk("b")])
        );
        let mixed = Reply::Array(vec![Reply::bulk("a"), Reply::Int(0), Reply::bulk("b")]);
        assert_ne!(bulks, mixed);
        assert_eq!(Reply::Bulks(BulkList::default()), Reply::Array(Vec::new()));
        assert_ne!(Reply::Bulks(BulkList::default()), Reply::NilArray);
    }

    #[test]
    fn bulk_sets_and_maps_equal_what_they_stand_for_and_nothing_else() {
        let list: BulkList = ["f", "1", "g", ""].iter().collect();
        let items = || ["f", "1", "g", ""].map(Reply::bulk).to_vec();
        let set = Reply::BulkSet(list.clone());
        assert_eq!(set, Reply::Set(items()));
        assert_eq!(Reply::Set(items()), set);
        assert_eq!(set.expanded().into_owned(), Reply::Set(items()));
        assert_ne!(set, Reply::Array(items()));
        assert_ne!(set, Reply::Bulks(list.clone()));
        let pairs = vec![
            (Reply::bulk("f"), Reply::bulk("1")),
            (Reply::bulk("g"), Reply::bulk("")),
        ];
        let map = Reply::BulkMap(list.clone());
        assert_eq!(map, Reply::Map(pairs.clone()));
        assert_eq!(Reply::Map(pairs.clone()), map);
        assert_eq!(map.expanded().into_owned(), Reply::Map(pairs.clone()));
        assert_ne!(map, Reply::Map(pairs[..1].to_vec()));
        let swapped = vec![(Reply::bulk("f"), Reply::bulk("g")), pairs[1].clone()];
        assert_ne!(map, Reply::Map(swapped));
        assert_ne!(map, Reply::Set(items()));
        // An odd count of strings is no map of pairs.
        let odd = Reply::BulkMap(["f", "1", "g"].iter().collect());
        assert_ne!(odd, Reply::Map(pairs[..1].to_vec()));
        assert_eq!(Reply::Int(3).expanded().into_owned(), Reply::Int(3));
    }
}
