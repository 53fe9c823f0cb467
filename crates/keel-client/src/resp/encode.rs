//! Requests go out as RESP arrays of bulk strings, the one form every server accepts.

use bytes::{BufMut, BytesMut};

/// Appends `args` as one RESP request (`*N` then `$len` bulks) to `out`.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    out.reserve(encoded_len(args));
    out.put_u8(b'*');
    put_decimal(out, args.len());
    out.put_slice(b"\r\n");
    for a in args {
        let a = a.as_ref();
        out.put_u8(b'$');
        put_decimal(out, a.len());
        out.put_slice(b"\r\n");
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
}

/// The exact number of bytes `encode_command(args)` appends.
pub fn encoded_len<A: AsRef<[u8]>>(args: &[A]) -> usize {
    let mut n = 1 + digits(args.len()) + 2;
    for a in args {
        let l = a.as_ref().len();
        n += 1 + digits(l) + 2 + l + 2;
    }
    n
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn put_decimal(out: &mut BytesMut, n: usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        // n % 10 < 10, so the cast cannot truncate.
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_arrays_of_bulks() {
        let mut out = BytesMut::new();
        let args: [&[u8]; 3] = [b"SET", b"key", b""];
        encode_command(&args, &mut out);
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$0\r\n\r\n");
        assert_eq!(encoded_len(&args), out.len());
    }

    #[test]
    fn length_counts_multi_digit_sizes() {
        let big = vec![b'x'; 12345];
        let args = [big.as_slice()];
        let mut out = BytesMut::new();
        encode_command(&args, &mut out);
        assert!(out.starts_with(b"*1\r\n$12345\r\n"));
        assert_eq!(encoded_len(&args), out.len());
    }
}
