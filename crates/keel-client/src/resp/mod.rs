//! RESP framing: the request encoder and the resumable reply decoder.

mod decode;
mod encode;

pub use decode::{DecodeError, Decoder, Limits};
pub use encode::{encode_command, encoded_len};
