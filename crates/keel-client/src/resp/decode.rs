//! A resumable RESP2/RESP3 reply decoder. Complete items are consumed from the buffer as
//! they arrive and partial aggregates wait on an explicit stack, so a reply of a million
//! elements arriving in small reads is parsed once, never re-scanned per read. Lengths
//! from the wire are checked against [`Limits`] before anything is allocated.

use bytes::{Buf, Bytes, BytesMut};

use crate::Value;

/// Bounds applied to what the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk / verbatim / blob error payload.
    pub max_bulk_len: usize,
    /// Most elements one aggregate may announce.
    pub max_aggregate_len: usize,
    /// Deepest nesting of aggregates.
    pub max_depth: usize,
    /// Longest header or simple-string line.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_aggregate_len: 1 << 32,
            max_depth: 256,
            max_line: 64 * 1024 * 1024,
        }
    }
}

/// Malformed reply bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {reason}")]
pub struct DecodeError {
    /// Offset of the offending item in the reply stream.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
}

#[derive(Debug)]
enum Kind {
    Array,
    Set,
    Push,
    Map,
    /// Collecting an attribute's key/value items.
    Attribute,
    /// The attribute is complete; waiting for the one value it annotates.
    Annotated(Vec<(Value, Value)>),
}

#[derive(Debug)]
struct Frame {
    kind: Kind,
    remaining: usize,
    items: Vec<Value>,
}

enum Item {
    Value(Value),
    Open(Kind, usize),
}

/// Most elements reserved up front for an aggregate, whatever its header claims.
const PREALLOC_CAP: usize = 1024;

/// Per-connection reply decoder.
#[derive(Debug, Default)]
pub struct Decoder {
    limits: Limits,
    stack: Vec<Frame>,
    offset: u64,
}

impl Decoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            stack: Vec::new(),
            offset: 0,
        }
    }

    /// Bytes consumed from the stream so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Takes the next complete reply out of `buf`; Ok(None) means more bytes are needed
    /// (what was complete has been consumed and is kept).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Value>, DecodeError> {
        loop {
            let Some(item) = self.next_item(buf)? else {
                return Ok(None);
            };
            let mut value = match item {
                Item::Value(v) => v,
                Item::Open(kind, 0) => match empty(kind) {
                    Some(v) => v,
                    None => {
                        self.push(Kind::Annotated(Vec::new()), 1)?;
                        continue;
                    }
                },
                Item::Open(kind, n) => {
                    self.push(kind, n)?;
                    continue;
                }
            };
            // Fold the finished value into its parents as far as they complete.
            loop {
                let Some(top) = self.stack.last_mut() else {
                    return Ok(Some(value));
                };
                top.items.push(value);
                top.remaining -= 1;
                if top.remaining > 0 {
                    break;
                }
                let Some(frame) = self.stack.pop() else {
                    break;
                };
                match finish(frame) {
                    Finished::Value(v) => value = v,
                    Finished::AwaitTarget(attrs) => {
                        self.push(Kind::Annotated(attrs), 1)?;
                        break;
                    }
                }
            }
        }
    }

    fn push(&mut self, kind: Kind, n: usize) -> Result<(), DecodeError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(self.err(format!(
                "aggregates nested deeper than {}",
                self.limits.max_depth
            )));
        }
        self.stack.push(Frame {
            kind,
            remaining: n,
            items: Vec::with_capacity(n.min(PREALLOC_CAP)),
        });
        Ok(())
    }

    fn err(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.offset,
            reason: reason.into(),
        }
    }

    fn next_item(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        let Some(eol) = find_crlf(buf) else {
            if buf.len() > self.limits.max_line {
                return Err(self.err("header line too long"));
            }
            return Ok(None);
        };
        let Some(&tag) = buf.first() else {
            return Ok(None);
        };
        let Some(line) = buf.get(1..eol) else {
            return Err(self.err("empty line where a reply type byte was expected"));
        };
        let header_len = eol + 2;
        let item = match tag {
            b'+' => Item::Value(Value::Simple(lossy(line))),
            b'-' => Item::Value(Value::Error(lossy(line))),
            b':' => Item::Value(Value::Int(self.int(line)?)),
            b'_' => {
                if !line.is_empty() {
                    return Err(self.err("null with a payload"));
                }
                Item::Value(Value::Nil)
            }
            b',' => {
                let text = lossy(line);
                let value = text
                    .parse::<f64>()
                    .map_err(|_| self.err(format!("bad double {text:?}")))?;
                Item::Value(Value::Double { value, text })
            }
            b'#' => match line {
                b"t" => Item::Value(Value::Boolean(true)),
                b"f" => Item::Value(Value::Boolean(false)),
                _ => return Err(self.err("boolean is neither t nor f")),
            },
            b'(' => {
                let digits = line.strip_prefix(b"-").unwrap_or(line);
                let digits = digits.strip_prefix(b"+").unwrap_or(digits);
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(self.err("big number with non-digits"));
                }
                Item::Value(Value::BigNumber(lossy(line)))
            }
            b'$' | b'!' | b'=' => {
                let len = self.int(line)?;
                if len < 0 {
                    if tag == b'$' && len == -1 {
                        buf.advance(header_len);
                        self.offset += header_len as u64;
                        return Ok(Some(Item::Value(Value::Nil)));
                    }
                    return Err(self.err(format!("negative length {len}")));
                }
                let len = usize::try_from(len).map_err(|_| self.err("length overflows"))?;
                if len > self.limits.max_bulk_len {
                    return Err(self.err(format!(
                        "bulk of {len} bytes exceeds the limit of {}",
                        self.limits.max_bulk_len
                    )));
                }
                let total = header_len + len + 2;
                if buf.len() < total {
                    buf.reserve(total - buf.len());
                    return Ok(None);
                }
                if buf.get(header_len + len..total) != Some(b"\r\n".as_slice()) {
                    return Err(self.err("bulk not terminated by CRLF"));
                }
                buf.advance(header_len);
                let payload = buf.split_to(len).freeze();
                buf.advance(2);
                self.offset += total as u64;
                let v = match tag {
                    b'$' => Value::Bulk(payload),
                    b'!' => Value::Error(lossy(&payload)),
                    _ => self.verbatim(payload)?,
                };
                return Ok(Some(Item::Value(v)));
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = self.int(line)?;
                if n == -1 {
                    // RESP2 null array; RESP3 servers send `_` instead.
                    Item::Value(Value::Nil)
                } else {
                    let n =
                        usize::try_from(n).map_err(|_| self.err(format!("negative count {n}")))?;
                    if n > self.limits.max_aggregate_len {
                        return Err(self.err(format!("aggregate of {n} elements is too long")));
                    }
                    let (kind, items) = match tag {
                        b'*' => (Kind::Array, Some(n)),
                        b'~' => (Kind::Set, Some(n)),
                        b'>' => (Kind::Push, Some(n)),
                        b'%' => (Kind::Map, n.checked_mul(2)),
                        _ => (Kind::Attribute, n.checked_mul(2)),
                    };
                    let items = items.ok_or_else(|| self.err("map length overflows"))?;
                    Item::Open(kind, items)
                }
            }
            other => {
                return Err(self.err(format!("unknown reply type byte 0x{other:02x}")));
            }
        };
        buf.advance(header_len);
        self.offset += header_len as u64;
        Ok(Some(item))
    }

    fn int(&self, line: &[u8]) -> Result<i64, DecodeError> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| self.err(format!("bad integer {:?}", lossy(line))))
    }

    fn verbatim(&self, payload: Bytes) -> Result<Value, DecodeError> {
        match payload.get(3) {
            Some(b':') => Ok(Value::Verbatim {
                format: lossy(payload.get(..3).unwrap_or_default()),
                text: payload.slice(4..),
            }),
            _ => Err(self.err("verbatim string without a format prefix")),
        }
    }
}

enum Finished {
    Value(Value),
    AwaitTarget(Vec<(Value, Value)>),
}

fn empty(kind: Kind) -> Option<Value> {
    Some(match kind {
        Kind::Array => Value::Array(Vec::new()),
        Kind::Set => Value::Set(Vec::new()),
        Kind::Push => Value::Push(Vec::new()),
        Kind::Map => Value::Map(Vec::new()),
        Kind::Attribute | Kind::Annotated(_) => return None,
    })
}

fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

fn finish(frame: Frame) -> Finished {
    Finished::Value(match frame.kind {
        Kind::Array => Value::Array(frame.items),
        Kind::Set => Value::Set(frame.items),
        Kind::Push => Value::Push(frame.items),
        Kind::Map => Value::Map(pairs(frame.items)),
        Kind::Attribute => return Finished::AwaitTarget(pairs(frame.items)),
        Kind::Annotated(attrs) => Value::Attribute {
            attrs,
            value: Box::new(frame.items.into_iter().next().unwrap_or(Value::Nil)),
        },
    })
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
