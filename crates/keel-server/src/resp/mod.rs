//! The RESP protocol: a resumable request parser (multibulk and inline) with Redis's
//! limits and error texts, and a reply encoder for RESP2 and RESP3.

pub mod encode;
pub mod parse;

pub use encode::{encode, Protocol};
pub use parse::{Limits, ParseError, RequestParser};
