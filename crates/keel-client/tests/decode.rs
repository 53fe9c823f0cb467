//! The reply decoder on bytes: every RESP2/RESP3 type, input split at every byte, and
//! malformed input rejected without panics or oversized allocations.

use bytes::BytesMut;
use keel_client::resp::{Decoder, Limits};
use keel_client::Value;

fn b(s: &str) -> Value {
    Value::bulk(s.as_bytes().to_vec())
}

/// Decodes `wire` fed in one piece and fed one byte at a time; both must agree.
fn decode_all(wire: &[u8]) -> Vec<Value> {
    let mut whole = Vec::new();
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(wire);
    while let Some(v) = d.decode(&mut buf).expect("valid") {
        whole.push(v);
    }
    assert!(buf.is_empty(), "everything consumed");

    let mut split = Vec::new();
    let mut d = Decoder::default();
    let mut buf = BytesMut::new();
    for &byte in wire {
        buf.extend_from_slice(&[byte]);
        while let Some(v) = d.decode(&mut buf).expect("valid") {
            split.push(v);
        }
    }
    assert_eq!(whole, split, "byte-by-byte feeding gives the same replies");
    assert_eq!(d.offset(), wire.len() as u64);
    whole
}

fn one(wire: &str) -> Value {
    let mut v = decode_all(wire.as_bytes());
    assert_eq!(v.len(), 1, "one reply in {wire:?}");
    v.remove(0)
}

fn error_of(wire: &[u8], limits: Limits) -> String {
    let mut d = Decoder::new(limits);
    let mut buf = BytesMut::from(wire);
    loop {
        match d.decode(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("{wire:?} was accepted as incomplete"),
            Err(e) => return e.reason,
        }
    }
}

#[test]
fn resp2_types() {
    assert_eq!(one("+OK\r\n"), Value::Simple("OK".into()));
    assert_eq!(one("-ERR bad\r\n"), Value::Error("ERR bad".into()));
    assert_eq!(one(":-42\r\n"), Value::Int(-42));
    assert_eq!(one("$5\r\nhe\r\nl\r\n"), b("he\r\nl"));
    assert_eq!(one("$0\r\n\r\n"), b(""));
    assert_eq!(one("$-1\r\n"), Value::Nil);
    assert_eq!(one("*-1\r\n"), Value::Nil);
    assert_eq!(one("*0\r\n"), Value::Array(vec![]));
    assert_eq!(
        one("*3\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n+x\r\n"),
        Value::Array(vec![
            b("a"),
            Value::Array(vec![Value::Int(1), Value::Nil]),
            Value::Simple("x".into())
        ])
    );
}

#[test]
fn resp3_scalars() {
    assert_eq!(one("_\r\n"), Value::Nil);
    assert_eq!(one("#t\r\n"), Value::Boolean(true));
    assert_eq!(one("#f\r\n"), Value::Boolean(false));
    assert_eq!(
        one(",1.5\r\n"),
        Value::Double {
            value: 1.5,
            text: "1.5".into()
        }
    );
    match one(",-inf\r\n") {
        Value::Double { value, text } => {
            assert!(value.is_infinite() && value < 0.0);
            assert_eq!(text, "-inf");
        }
        other => panic!("{other:?}"),
    }
    // NaN never equals itself, so it skips the split-feeding comparison.
    let mut buf = BytesMut::from(&b",nan\r\n"[..]);
    match Decoder::default().decode(&mut buf) {
        Ok(Some(Value::Double { value, text })) => assert!(value.is_nan() && text == "nan"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        one("(3492890328409238509324850943850943825024385\r\n"),
        Value::BigNumber("3492890328409238509324850943850943825024385".into())
    );
    assert_eq!(one("(-12\r\n"), Value::BigNumber("-12".into()));
    assert_eq!(
        one("!21\r\nSYNTAX invalid syntax\r\n"),
        Value::Error("SYNTAX invalid syntax".into())
    );
    assert_eq!(
        one("=15\r\ntxt:Some string\r\n"),
        Value::Verbatim {
            format: "txt".into(),
            text: "Some string".into()
        }
    );
}

#[test]
fn resp3_aggregates() {
    assert_eq!(
        one("%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n#f\r\n"),
        Value::Map(vec![
            (Value::Simple("first".into()), Value::Int(1)),
            (b("second"), Value::Boolean(false)),
        ])
    );
    assert_eq!(one("%0\r\n"), Value::Map(vec![]));
    assert_eq!(
        one("~3\r\n+a\r\n:1\r\n_\r\n"),
        Value::Set(vec![Value::Simple("a".into()), Value::Int(1), Value::Nil])
    );
    assert_eq!(
        one(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"),
        Value::Push(vec![b("message"), b("ch"), b("hi")])
    );
    assert_eq!(
        one("*2\r\n%1\r\n+k\r\n~1\r\n,2\r\n*0\r\n"),
        Value::Array(vec![
            Value::Map(vec![(
                Value::Simple("k".into()),
                Value::Set(vec![Value::Double {
                    value: 2.0,
                    text: "2".into()
                }])
            )]),
            Value::Array(vec![])
        ])
    );
}

#[test]
fn attributes_annotate_the_following_reply() {
    let wire = "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n:9543892\r\n";
    assert_eq!(
        one(wire),
        Value::Attribute {
            attrs: vec![(
                Value::Simple("key-popularity".into()),
                Value::Map(vec![(
                    b("a"),
                    Value::Double {
                        value: 0.19,
                        text: "0.19".into()
                    }
                )])
            )],
            value: Box::new(Value::Array(vec![Value::Int(2039123), Value::Int(9543892)])),
        }
    );
    // Inside an aggregate the attribute wraps just the element after it.
    assert_eq!(
        one("*2\r\n:1\r\n|0\r\n:2\r\n"),
        Value::Array(vec![
            Value::Int(1),
            Value::Attribute {
                attrs: vec![],
                value: Box::new(Value::Int(2))
            }
        ])
    );
}

#[test]
fn pipelined_replies_come_out_in_order() {
    let v = decode_all(b"+OK\r\n:1\r\n$1\r\nx\r\n%1\r\n+a\r\n#t\r\n");
    assert_eq!(
        v,
        vec![
            Value::Simple("OK".into()),
            Value::Int(1),
            b("x"),
            Value::Map(vec![(Value::Simple("a".into()), Value::Boolean(true))])
        ]
    );
}

#[test]
fn malformed_input_is_an_error() {
    let d = Limits::default();
    assert!(error_of(b"?what\r\n", d).contains("unknown reply type"));
    assert!(error_of(b":12x\r\n", d).contains("bad integer"));
    assert!(error_of(b"$3\r\nabcde\r\n", d).contains("CRLF"));
    assert!(error_of(b"$-5\r\n", d).contains("negative"));
    assert!(error_of(b"*-2\r\n", d).contains("negative"));
    assert!(error_of(b"#x\r\n", d).contains("boolean"));
    assert!(error_of(b",1.2.3\r\n", d).contains("double"));
    assert!(error_of(b"(12a\r\n", d).contains("big number"));
    assert!(error_of(b"=3\r\nabc\r\n", d).contains("verbatim"));
    assert!(error_of(b"_x\r\n", d).contains("null"));
    assert!(error_of(b"\r\n", d).contains("empty line"));
    assert!(error_of(b"*1\r\n\r\n", d).contains("empty line"));
}

#[test]
fn limits_are_checked_before_allocating() {
    let small = Limits {
        max_bulk_len: 16,
        max_aggregate_len: 4,
        max_depth: 3,
        max_line: 32,
    };
    // A claimed 1 TB bulk is refused from its header alone.
    assert!(error_of(b"$1000000000000\r\n", small).contains("exceeds"));
    assert!(error_of(b"*5\r\n", small).contains("too long"));
    assert!(error_of(b"%5\r\n", small).contains("too long"));
    assert!(error_of(b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", small).contains("nested"));
    assert!(error_of(&[b'+'; 40], small).contains("too long"));
    // A huge aggregate count within the limit does not reserve memory for it.
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(&b"*4000000000\r\n:1\r\n"[..]);
    assert_eq!(d.decode(&mut buf), Ok(None));
}

proptest::proptest! {
    /// Arbitrary bytes, and arbitrary bytes after a valid prefix, never panic: the
    /// decoder returns replies, asks for more, or reports an error.
    #[test]
    fn arbitrary_bytes_never_panic(
        prefix in proptest::sample::select(vec!["", "*2\r\n", "%1\r\n+a\r\n", "|1\r\n", "$3\r\n"]),
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
    ) {
        let small = Limits { max_bulk_len: 1 << 16, max_aggregate_len: 1 << 16, max_depth: 32, max_line: 1 << 16 };
        let mut d = Decoder::new(small);
        let mut buf = BytesMut::from(prefix.as_bytes());
        buf.extend_from_slice(&bytes);
        let total = buf.len() as u64;
        for _ in 0..512 {
            match d.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
        // What was consumed plus what is left is exactly what was fed.
        proptest::prop_assert_eq!(d.offset() + buf.len() as u64, total);
    }
}
