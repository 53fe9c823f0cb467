//! Parsing of command arguments with Redis's rules and error texts.

use bytes::Bytes;

use crate::error::{CmdError, CmdResult};
use crate::reply::{errors, Reply};

/// Parses a signed 64-bit integer exactly as Redis does (no spaces, no '+', no leading
/// zeros except "0", within range).
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let (neg, digits) = match b[0] {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = i64::from(c - b'0');
        v = if neg {
            v.checked_mul(10)?.checked_sub(d)?
        } else {
            v.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(v)
}

/// Parses an integer argument or yields Redis's "not an integer" error.
pub fn int_arg(b: &[u8]) -> CmdResult<i64> {
    parse_i64(b).ok_or_else(|| CmdError::Reply(Reply::err(errors::NOT_INTEGER)))
}

/// Parses a float as Redis's `string2d` (`strtod`) accepts it: decimal or exponent
/// notation, hexadecimal (`0x10`, `0x1.8p3`), "inf"/"+inf"/"-inf"; no NaN, no spaces,
/// and nothing `strtod` reports out of range (a finite number that overflows to
/// infinity, or a non-zero one that underflows to zero).
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    // Plain integers, the usual score or increment, skip the general parser and its
    // UTF-8 check: ZADD -P 16 spent ~800 instructions per request here (redis-benchmark's
    // scores are zero-padded integers), mostly on a lower-cased copy searched for "inf"
    // and "nan".
    if let Some(v) = short_integer(b) {
        return Some(v);
    }
    let (neg, body) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, b),
    };
    if body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x' {
        return parse_hex_f64(neg, &body[2..]);
    }
    // Letters other than an exponent's can only spell an infinity (or NaN, refused).
    if b.iter()
        .any(|c| c.is_ascii_alphabetic() && !matches!(c, b'e' | b'E'))
    {
        return INFINITIES
            .iter()
            .find(|(word, _)| b.eq_ignore_ascii_case(word.as_bytes()))
            .map(|&(_, v)| v);
    }
    // The float parser refuses spaces, signs in the wrong place and empty input itself.
    let v = std::str::from_utf8(b).ok()?.parse::<f64>().ok()?;
    let mantissa = body
        .split(|c| matches!(c, b'e' | b'E'))
        .next()
        .unwrap_or(body);
    let underflow = v == 0.0 && mantissa.iter().any(|c| matches!(c, b'1'..=b'9'));
    (v.is_finite() && !underflow).then_some(v)
}

/// A hexadecimal float as `strtod`/`strtold` read the part after "0x": its significant
/// hex digits (leading zeros dropped) and the binary exponent of the last one's unit
/// (the `p` exponent, saturated at ±1,000,000, less 4 per digit after the point). None
/// when it is not one: no digit, or anything but a `p` exponent after the digits.
pub(crate) fn hex_float_parts(s: &[u8]) -> Option<(Vec<u8>, i64)> {
    let mut digits = Vec::new();
    let mut frac_digits: i64 = 0;
    let (mut seen_digit, mut seen_dot) = (false, false);
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if let Some(d) = (c as char).to_digit(16) {
            seen_digit = true;
            if !digits.is_empty() || d != 0 {
                digits.push(d as u8);
            }
            if seen_dot {
                frac_digits += 1;
            }
        } else if c == b'.' && !seen_dot {
            seen_dot = true;
        } else {
            break;
        }
        i += 1;
    }
    if !seen_digit {
        return None;
    }
    let mut exp2: i64 = 0;
    if i < s.len() {
        if s[i] | 0x20 != b'p' {
            return None;
        }
        let rest = &s[i + 1..];
        let (eneg, exp) = match rest.split_first() {
            Some((b'-', e)) => (true, e),
            Some((b'+', e)) => (false, e),
            _ => (false, rest),
        };
        if exp.is_empty() || !exp.iter().all(u8::is_ascii_digit) {
            return None;
        }
        exp2 = exp
            .iter()
            .fold(0i64, |e, d| (e * 10 + i64::from(d - b'0')).min(1_000_000));
        if eneg {
            exp2 = -exp2;
        }
    }
    Some((digits, exp2 - 4 * frac_digits))
}

/// The part after "0x" of a hexadecimal float ([`hex_float_parts`]) as a double; None
/// when it is not one, or out of range as in [`parse_f64`]. Past 16 significant hex
/// digits the rest only rounds.
fn parse_hex_f64(neg: bool, s: &[u8]) -> Option<f64> {
    let (digits, mut exp) = hex_float_parts(s)?;
    if digits.is_empty() {
        return Some(if neg { -0.0 } else { 0.0 });
    }
    let mut mant: u64 = 0;
    let mut sticky = false;
    for d in digits {
        if mant >> 60 == 0 {
            mant = (mant << 4) | u64::from(d);
        } else {
            sticky |= d != 0;
            exp += 4;
        }
    }
    // The dropped digits' stickiness in the lowest bit, so that rounding to 53 bits
    // breaks a tie the way the full number would.
    let mut v = (mant | u64::from(sticky)) as f64;
    // In steps 2^exp itself could not take; stopped once the result is out of range.
    while exp != 0 && v.is_finite() && v != 0.0 {
        let step = exp.clamp(-1000, 1000);
        v *= 2f64.powi(step as i32);
        exp -= step;
    }
    if neg {
        v = -v;
    }
    (v.is_finite() && v != 0.0).then_some(v)
}

/// `b` as a double if it is an optional '-' and 1 to 15 decimal digits (leading zeros
/// allowed, as in any float): below 10^15 < 2^53 the value is exact, so it is the one
/// the general parser gives, "-0" included.
///
/// The digits are read eight at a time ([`eight_digits`]): a digit at a time, checking
/// and folding redis-benchmark's 12-digit scores, was ~200 of ZADD -P 16's ~12,000
/// instructions per request.
fn short_integer(b: &[u8]) -> Option<f64> {
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let n = digits.len();
    if n == 0 || n > 15 {
        return None;
    }
    // Right-aligned in sixteen bytes of '0's: leading zeros leave the value alone.
    let mut padded = [b'0'; 16];
    padded[16 - n..].copy_from_slice(digits);
    let (high, low) = padded.split_at(8);
    let v = eight_digits(high)? * 100_000_000 + eight_digits(low)?;
    let v = v as f64;
    Some(if neg { -v } else { v })
}

/// The number eight ASCII decimal digits spell (the first the most significant), or
/// None if any byte is not a digit. One word's arithmetic instead of a loop: the digit
/// check is the well-known pair of masks, the value three multiplications that combine
/// neighbouring digits, then pairs, then fours.
#[inline]
fn eight_digits(chunk: &[u8]) -> Option<u64> {
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    let x = u64::from_le_bytes(word);
    // Every byte 0x30..=0x39: its high nibble is 3, and adding 6 keeps it 3.
    let high = x & 0xF0F0_F0F0_F0F0_F0F0;
    let carried = (x.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) >> 4;
    if high | carried != 0x3333_3333_3333_3333 {
        return None;
    }
    let d = x - 0x3030_3030_3030_3030;
    // Each byte's digit times ten plus the next: two-digit values in every other byte.
    let pairs = d.wrapping_mul(10).wrapping_add(d >> 8);
    let fours = (pairs & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32));
    let rest = ((pairs >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32));
    Some(fours.wrapping_add(rest) >> 32)
}

/// The spellings of infinity a float argument may use (any case).
const INFINITIES: [(&str, f64); 6] = [
    ("inf", f64::INFINITY),
    ("+inf", f64::INFINITY),
    ("infinity", f64::INFINITY),
    ("+infinity", f64::INFINITY),
    ("-inf", f64::NEG_INFINITY),
    ("-infinity", f64::NEG_INFINITY),
];

/// Parses a float argument or yields Redis's "not a valid float" error.
pub fn float_arg(b: &[u8]) -> CmdResult<f64> {
    parse_f64(b).ok_or_else(|| CmdError::Reply(Reply::err(errors::NOT_FLOAT)))
}

/// Formats a double as Redis's `ld2string` in its "human" mode prints it after widening
/// it to a long double: fixed notation with 17 decimals, trailing zeros and a trailing
/// dot cut (`13.36138933897018433`, `2`).
pub fn format_human_ld(v: f64) -> String {
    if !v.is_finite() {
        return format_f64(v);
    }
    let mut s = format!("{v:.17}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    s
}

/// Formats a double as Redis's `d2string` does for its replies (RESP2 and RESP3):
/// integral values within ±2^62 as integers ("3", "-0"), anything else in its shortest
/// round-trip digits, placed by the rules of Redis's `fpconv_dtoa`.
pub fn format_f64(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Redis's double2ll: integral and within ±LLONG_MAX/2.
    let half = (i64::MAX / 2) as f64;
    if (-half..=half).contains(&v) && v == v.trunc() {
        return format!("{}", v as i64);
    }
    // Rust's `{:e}` gives the shortest round-trip digits as "d.ddde<exp>".
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let e: i32 = exp.parse().unwrap_or(0);
    let nd = digits.len() as i32;
    // The value is digits x 10^k.
    let k = e - (nd - 1);
    let mut out = String::with_capacity(digits.len() + 8);
    if v < 0.0 {
        out.push('-');
    }
    if k >= 0 && e.abs() < nd + 7 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', k as usize));
    } else if k < 0 && (k > -7 || e.abs() < 4) {
        let offset = nd + k;
        if offset <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-offset) as usize));
            out.push_str(&digits);
        } else {
            out.push_str(&digits[..offset as usize]);
            out.push('.');
            out.push_str(&digits[offset as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&e.abs().to_string());
    }
    out
}

/// True if `a` equals `word` ignoring ASCII case.
pub fn eq_ci(a: &[u8], word: &str) -> bool {
    a.eq_ignore_ascii_case(word.as_bytes())
}

/// Upper-cased copy of an option word, for matching.
pub fn upper(a: &Bytes) -> Vec<u8> {
    a.to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_redis_rules() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        for bad in [
            &b""[..],
            b"01",
            b"-0",
            b"+1",
            b" 1",
            b"1 ",
            b"1.0",
            b"abc",
            b"-",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn floats_follow_redis_rules() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        assert_eq!(parse_f64(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1E3"), Some(1000.0));
        assert_eq!(parse_f64(b"-0").map(f64::is_sign_negative), Some(true));
        for bad in [
            &b""[..],
            b"nan",
            b"-NaN",
            b"infx",
            b"1inf",
            b" 1",
            b"1 ",
            b"abc",
            b"1.5x",
            b"0x",
            b"0x.",
            b"0x1p",
            b"0x1q",
            b"0x1p+x",
            b"e",
            b"1e",
            // Out of range for strtod, which Redis refuses.
            b"1e400",
            b"-1e400",
            b"1e-400",
            b"0x1p2000",
            b"0x1p-2000",
        ] {
            assert_eq!(parse_f64(bad), None, "{bad:?}");
        }
        // Hexadecimal floats, as strtod reads them (redis-server: ZADD z 0x10 m scores 16).
        for (text, want) in [
            (&b"0x10"[..], 16.0),
            (b"-0x10", -16.0),
            (b"+0x1.8p3", 12.0),
            (b"0X.8", 0.5),
            (b"0x1p-3", 0.125),
            (b"0x7FFFFFFFFFFFFF", 36_028_797_018_963_967.0),
            (b"0x1234567890abcdef12p0", 335_812_727_627_494_322_450.0),
        ] {
            assert_eq!(parse_f64(text), Some(want), "{text:?}");
        }
        assert_eq!(parse_f64(b"-0x0").map(f64::is_sign_negative), Some(true));
        assert_eq!(parse_f64(b"1e-310"), Some(1e-310), "subnormal: in range");
        assert_eq!(parse_f64(b"0e400"), Some(0.0), "zero is not an underflow");
        assert_eq!(format_f64(3.0), "3");
        // The integer fast path agrees with the general parser: every length up to and
        // past its 15 digits, leading zeros, both signs, the ends of i64.
        let mut texts: Vec<String> = (1..=17)
            .flat_map(|n| {
                [
                    "9".repeat(n),
                    format!("0{}", "7".repeat(n)),
                    format!("-{}", "5".repeat(n)),
                ]
            })
            .collect();
        texts.extend(
            ["0", "-0", "000000012345", "-000", "+12", "9007199254740993"].map(String::from),
        );
        texts.extend([i64::MAX, i64::MIN].map(|i| i.to_string()));
        for text in texts {
            let general = text.parse::<f64>().ok();
            let got = parse_f64(text.as_bytes());
            assert_eq!(got.map(f64::to_bits), general.map(f64::to_bits), "{text}");
            assert_eq!(parse_f64(text.as_bytes()), general, "{text}");
        }
        // Every digit position, and a non-digit at each position, through both words.
        for n in 1..=15usize {
            let text: String = (0..n).map(|i| char::from(b'1' + (i % 9) as u8)).collect();
            assert_eq!(
                parse_f64(text.as_bytes()),
                text.parse::<f64>().ok(),
                "{text}"
            );
            for at in 0..n {
                for bad in [b'/', b':', b' ', b'a', 0x80, b'0' + 0x10] {
                    let mut b = text.clone().into_bytes();
                    b[at] = bad;
                    assert_eq!(short_integer(&b), None, "{b:?}");
                }
            }
        }
        assert_eq!(eight_digits(b"12345678"), Some(12_345_678));
        assert_eq!(eight_digits(b"00000000"), Some(0));
        assert_eq!(eight_digits(b"99999999"), Some(99_999_999));
        assert_eq!(format_f64(10.5), "10.5");
        // Redis 7.2's d2string (fpconv_dtoa's placement rules).
        for (v, want) in [
            (1.797_693_134_862_315_7e308, "1.7976931348623157e+308"),
            (0.1, "0.1"),
            (-0.0, "-0"),
            (1e-6, "0.000001"),
            (2.5e-5, "0.000025"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (1.2345e-5, "1.2345e-5"),
            (-1.5e-10, "-1.5e-10"),
            (123_456.789, "123456.789"),
            (1_000_000_000_000_000.5, "1000000000000000.5"),
            (4e18, "4000000000000000000"),
            (5e18, "5e+18"),
            (1e19, "1e+19"),
            (1.234_567_890_123_456_7e19, "12345678901234567000"),
            (1e100, "1e+100"),
            (-1.5e300, "-1.5e+300"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(format_f64(v), want, "{v:e}");
        }
        assert_eq!(format_f64(f64::INFINITY), "inf");
    }
}
