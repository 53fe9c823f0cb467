//! Renders engine replies as RESP2 or RESP3 bytes.

use bytes::{BufMut, BytesMut};
use keel_engine::args::{format_f64, format_human_ld};
use keel_engine::reply::put_bulk_header;
use keel_engine::Reply;

/// The protocol version a connection negotiated (HELLO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, the default.
    #[default]
    Resp2,
    /// RESP3.
    Resp3,
}

fn line(out: &mut BytesMut, prefix: u8, body: &[u8]) {
    out.reserve(body.len() + 3);
    out.put_u8(prefix);
    out.put_slice(body);
    out.put_slice(b"\r\n");
}

/// A double already printed: RESP3's `,` line, or RESP2's bulk string.
fn double(text: &str, proto: Protocol, out: &mut BytesMut) {
    match proto {
        Protocol::Resp3 => line(out, b',', text.as_bytes()),
        Protocol::Resp2 => {
            int_line(out, b'$', text.len() as i64);
            out.put_slice(text.as_bytes());
            out.put_slice(b"\r\n");
        }
    }
}

/// `prefix`, `n` in decimal and CRLF, built on the stack and appended with one copy
/// (every bulk reply starts with one of these; three appends cost twice as much).
/// Digits go two at a time from a table: a list's length after a push or a counter is
/// often six or seven digits, and one division per digit was ~140 instructions of a
/// pipelined LPUSH.
fn int_line(out: &mut BytesMut, prefix: u8, n: i64) {
    // Prefix, sign, 19 digits and CRLF fit in 23 bytes.
    let mut buf = [0u8; 24];
    let mut i = buf.len() - 2;
    buf[i] = b'\r';
    buf[i + 1] = b'\n';
    let mut v = n.unsigned_abs();
    while v >= 100 {
        let d = 2 * (v % 100) as usize;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
    }
    if v >= 10 {
        let d = 2 * v as usize;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    i -= 1;
    buf[i] = prefix;
    out.put_slice(&buf[i..]);
}

/// "00", "01", ... "99" back to back.
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// A bulk string: header, bytes, CRLF.
fn bulk(out: &mut BytesMut, b: &[u8]) {
    out.reserve(b.len() + 7);
    put_bulk_header(out, b.len());
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

/// Appends `reply` to `out` in protocol `proto`.
pub fn encode(reply: &Reply, proto: Protocol, out: &mut BytesMut) {
    match reply {
        Reply::Ok => out.put_slice(b"+OK\r\n"),
        Reply::Simple(s) => line(out, b'+', sanitize(s).as_bytes()),
        Reply::Error(e) => line(out, b'-', sanitize(e).as_bytes()),
        Reply::Int(n) => int_line(out, b':', *n),
        Reply::Bulk(b) => bulk(out, b),
        Reply::Nil => match proto {
            Protocol::Resp2 => out.put_slice(b"$-1\r\n"),
            Protocol::Resp3 => out.put_slice(b"_\r\n"),
        },
        Reply::NilArray => match proto {
            Protocol::Resp2 => out.put_slice(b"*-1\r\n"),
            Protocol::Resp3 => out.put_slice(b"_\r\n"),
        },
        Reply::Array(items) => {
            int_line(out, b'*', items.len() as i64);
            for i in items {
                encode(i, proto, out);
            }
        }
        Reply::Bulks(list) => {
            // Framed as RESP2 and RESP3 both frame bulk strings (see `BulkList`).
            int_line(out, b'*', list.len() as i64);
            out.put_slice(list.framed());
        }
        Reply::BulkSet(list) => {
            let prefix = if proto == Protocol::Resp3 { b'~' } else { b'*' };
            int_line(out, prefix, list.len() as i64);
            out.put_slice(list.framed());
        }
        Reply::BulkMap(list) => {
            match proto {
                Protocol::Resp2 => int_line(out, b'*', list.len() as i64),
                Protocol::Resp3 => int_line(out, b'%', (list.len() / 2) as i64),
            }
            out.put_slice(list.framed());
        }
        Reply::Push(items) => {
            let prefix = if proto == Protocol::Resp3 { b'>' } else { b'*' };
            int_line(out, prefix, items.len() as i64);
            for i in items {
                encode(i, proto, out);
            }
        }
        Reply::Set(items) => {
            let prefix = if proto == Protocol::Resp3 { b'~' } else { b'*' };
            int_line(out, prefix, items.len() as i64);
            for i in items {
                encode(i, proto, out);
            }
        }
        Reply::Map(pairs) => {
            match proto {
                Protocol::Resp3 => int_line(out, b'%', pairs.len() as i64),
                Protocol::Resp2 => int_line(out, b'*', 2 * pairs.len() as i64),
            }
            for (k, v) in pairs {
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
        Reply::PairMap(pairs) => {
            match proto {
                Protocol::Resp3 => int_line(out, b'%', pairs.len() as i64),
                Protocol::Resp2 => int_line(out, b'*', pairs.len() as i64),
            }
            for (k, v) in pairs {
                if proto == Protocol::Resp2 {
                    out.put_slice(b"*2\r\n");
                }
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
        Reply::Pairs(pairs) => match proto {
            // RESP3 nests each pair (ZRANGE WITHSCORES → [[m, s], …]); RESP2 is flat.
            Protocol::Resp3 => {
                int_line(out, b'*', pairs.len() as i64);
                for (a, b) in pairs {
                    out.put_slice(b"*2\r\n");
                    encode(a, proto, out);
                    encode(b, proto, out);
                }
            }
            Protocol::Resp2 => {
                int_line(out, b'*', 2 * pairs.len() as i64);
                for (a, b) in pairs {
                    encode(a, proto, out);
                    encode(b, proto, out);
                }
            }
        },
        Reply::Double(d) => double(&format_f64(*d), proto, out),
        Reply::HumanDouble(d) => double(&format_human_ld(*d), proto, out),
        Reply::Bool(v) => match proto {
            Protocol::Resp3 => out.put_slice(if *v { b"#t\r\n" } else { b"#f\r\n" }),
            Protocol::Resp2 => out.put_slice(if *v { b":1\r\n" } else { b":0\r\n" }),
        },
    }
}

/// Status and error lines cannot carry CR or LF; Redis replaces them with spaces.
fn sanitize(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\r', '\n']) {
        std::borrow::Cow::Owned(s.replace(['\r', '\n'], " "))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn enc(r: &Reply, p: Protocol) -> String {
        let mut out = BytesMut::new();
        encode(r, p, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A list of bulks renders byte for byte as the array of their bulk replies, empty
    /// and long values included, in both protocols.
    #[test]
    fn bulks_render_as_their_array() {
        let long = "x".repeat(1000);
        let values: Vec<&[u8]> = vec![b"a", b"", b"0123456789", long.as_bytes(), b"\r\n"];
        for p in [Protocol::Resp2, Protocol::Resp3] {
            for n in 0..=values.len() {
                let list: keel_engine::BulkList = values[..n].iter().collect();
                let array = Reply::bulks(values[..n].iter().map(|v| Bytes::copy_from_slice(v)));
                assert_eq!(enc(&Reply::Bulks(list), p), enc(&array, p), "{p:?} {n}");
            }
        }
        assert_eq!(
            enc(&Reply::Bulks(["ab", ""].iter().collect()), Protocol::Resp2),
            "*2\r\n$2\r\nab\r\n$0\r\n\r\n"
        );
    }

    /// A set or a map of bulks in one buffer renders byte for byte as the set or map of
    /// their bulk replies, in both protocols.
    #[test]
    fn bulk_sets_and_maps_render_as_their_replies() {
        let values: Vec<&[u8]> = vec![b"f1", b"", b"f2", b"0123456789", b"\r\n", b"v"];
        for p in [Protocol::Resp2, Protocol::Resp3] {
            for n in [0, 2, 4, 6] {
                let list: keel_engine::BulkList = values[..n].iter().collect();
                let set = Reply::BulkSet(list.clone());
                assert_eq!(enc(&set, p), enc(&set.expanded(), p), "set {p:?} {n}");
                let map = Reply::BulkMap(list);
                assert_eq!(enc(&map, p), enc(&map.expanded(), p), "map {p:?} {n}");
            }
        }
        let map = Reply::BulkMap(["f", "v"].iter().collect());
        assert_eq!(enc(&map, Protocol::Resp3), "%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
        assert_eq!(enc(&map, Protocol::Resp2), "*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
        let set = Reply::BulkSet(["m"].iter().collect());
        assert_eq!(enc(&set, Protocol::Resp3), "~1\r\n$1\r\nm\r\n");
    }

    /// Integers of every digit count, both signs and the extremes, as `format!` writes
    /// them: odd and even lengths take different last steps.
    #[test]
    fn integers_of_every_length_and_sign() {
        let mut values = vec![0i64, i64::MAX, i64::MIN, i64::MIN + 1];
        let mut p = 1i64;
        for _ in 0..19 {
            for v in [p - 1, p, p + 1, 7 * p, p.saturating_mul(10) - 1] {
                values.extend([v, -v]);
            }
            p = p.saturating_mul(10);
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push((x as i64) >> (x % 60));
        }
        for v in values {
            assert_eq!(enc(&Reply::Int(v), Protocol::Resp2), format!(":{v}\r\n"));
        }
    }

    #[test]
    fn bulk_headers_of_every_length_class() {
        for len in [0usize, 1, 9, 10, 64, 99, 100, 101, 999, 1000, 65_536] {
            let body = vec![b'v'; len];
            let got = enc(&Reply::Bulk(Bytes::from(body.clone())), Protocol::Resp2);
            let want = format!("${len}\r\n{}\r\n", String::from_utf8_lossy(&body));
            assert_eq!(got, want, "len {len}");
        }
    }

    #[test]
    fn resp2_and_resp3_shapes() {
        use Protocol::*;
        assert_eq!(enc(&Reply::Ok, Resp2), "+OK\r\n");
        assert_eq!(enc(&Reply::Int(-42), Resp2), ":-42\r\n");
        assert_eq!(enc(&Reply::Int(0), Resp2), ":0\r\n");
        assert_eq!(
            enc(&Reply::Int(i64::MAX), Resp2),
            ":9223372036854775807\r\n"
        );
        assert_eq!(
            enc(&Reply::Int(i64::MIN), Resp2),
            ":-9223372036854775808\r\n"
        );
        assert_eq!(
            enc(&Reply::Bulk(Bytes::from_static(b"hi")), Resp2),
            "$2\r\nhi\r\n"
        );
        assert_eq!(enc(&Reply::Nil, Resp2), "$-1\r\n");
        assert_eq!(enc(&Reply::Nil, Resp3), "_\r\n");
        assert_eq!(enc(&Reply::NilArray, Resp2), "*-1\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Resp2), "$3\r\n1.5\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Resp3), ",1.5\r\n");
        assert_eq!(enc(&Reply::Double(f64::NEG_INFINITY), Resp3), ",-inf\r\n");
        let lon = Reply::HumanDouble(13.361_389_338_970_184);
        assert_eq!(enc(&lon, Resp3), ",13.36138933897018433\r\n");
        assert_eq!(enc(&lon, Resp2), "$20\r\n13.36138933897018433\r\n");
        assert_eq!(enc(&Reply::HumanDouble(2.0), Resp2), "$1\r\n2\r\n");
        let map = Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]);
        assert_eq!(enc(&map, Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&map, Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Bool(true), Resp3), "#t\r\n");
        assert_eq!(enc(&Reply::Bool(false), Resp2), ":0\r\n");
        assert_eq!(enc(&Reply::err("ERR a\r\nb"), Resp2), "-ERR a  b\r\n");
        assert_eq!(enc(&Reply::Set(vec![Reply::Int(1)]), Resp3), "~1\r\n:1\r\n");
        let push = Reply::Push(vec![Reply::bulk("m"), Reply::Int(1)]);
        assert_eq!(enc(&push, Resp3), ">2\r\n$1\r\nm\r\n:1\r\n");
        assert_eq!(enc(&push, Resp2), "*2\r\n$1\r\nm\r\n:1\r\n");
        let pairs = Reply::Pairs(vec![(Reply::bulk("m"), Reply::Double(2.0))]);
        assert_eq!(enc(&pairs, Resp2), "*2\r\n$1\r\nm\r\n$1\r\n2\r\n");
        assert_eq!(enc(&pairs, Resp3), "*1\r\n*2\r\n$1\r\nm\r\n,2\r\n");
    }
}
