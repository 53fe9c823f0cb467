//! The typed reply: every RESP2 and RESP3 type.

use bytes::Bytes;

/// One reply from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// RESP2 null bulk / null array, RESP3 null (`_`).
    Nil,
    /// Simple string (`+OK`).
    Simple(String),
    /// Error reply (`-ERR ...`, RESP3 blob error `!`), without the leading dash.
    Error(String),
    /// Integer (`:`).
    Int(i64),
    /// Bulk string (`$`).
    Bulk(Bytes),
    /// Array (`*`).
    Array(Vec<Value>),
    /// RESP3 map (`%`), pairs in server order.
    Map(Vec<(Value, Value)>),
    /// RESP3 set (`~`), members in server order.
    Set(Vec<Value>),
    /// RESP3 double (`,`): the parsed value and the server's own text for display.
    Double {
        /// The parsed number (`inf`, `-inf`, `nan` included).
        value: f64,
        /// The digits exactly as the server sent them.
        text: String,
    },
    /// RESP3 boolean (`#t` / `#f`).
    Boolean(bool),
    /// RESP3 verbatim string (`=`): a three-letter format (`txt`, `mkd`) and the text.
    Verbatim {
        /// The format tag.
        format: String,
        /// The payload after `fmt:`.
        text: Bytes,
    },
    /// RESP3 big number (`(`), kept as its decimal digits.
    BigNumber(String),
    /// RESP3 push (`>`): out-of-band data such as pub/sub messages.
    Push(Vec<Value>),
    /// RESP3 attribute (`|`) attached to the reply that follows it.
    Attribute {
        /// The attribute map.
        attrs: Vec<(Value, Value)>,
        /// The reply the attributes describe.
        value: Box<Value>,
    },
}

impl Value {
    /// A bulk string from anything byte-like.
    pub fn bulk(b: impl Into<Bytes>) -> Value {
        Value::Bulk(b.into())
    }

    /// True for an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_))
    }

    /// Turns an error reply into `Err(ClientError::Server)`, anything else into `Ok`.
    pub fn into_result(self) -> crate::Result<Value> {
        match self {
            Value::Error(e) => Err(crate::ClientError::Server(e)),
            v => Ok(v),
        }
    }

    /// The bytes of a bulk, simple or verbatim string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            Value::Verbatim { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A string reply as UTF-8 text (lossy), or None for other types.
    pub fn as_text(&self) -> Option<String> {
        self.as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// The integer of an integer reply, or of a string reply holding digits.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            v => v
                .as_bytes()
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse().ok()),
        }
    }

    /// The elements of an array, set or push reply.
    pub fn as_slice(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) | Value::Set(v) | Value::Push(v) => Some(v),
            _ => None,
        }
    }
}
