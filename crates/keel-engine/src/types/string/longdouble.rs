//! INCRBYFLOAT's arithmetic: Redis parses, adds and prints in C `long double`, which on
//! x86-64 is the x87 80-bit format (64-bit significand). Doing the same in `f64` would
//! print e.g. `10.5 + 0.1` as `10.59999999999999964` under Redis's `%.17Lf`, so this
//! module emulates that format in software: correctly rounded decimal parsing (as glibc's
//! `strtold`), correctly rounded addition (round to nearest, ties to even, subnormals),
//! and exact `%.17Lf` printing with Redis's trailing-zero trimming (`ld2string` with
//! `LD_STR_HUMAN`). Everything is integer arithmetic, so replicas agree bit for bit.

use std::cmp::Ordering;

/// Significand bits of the x87 extended format (explicit integer bit).
const MANT_BITS: i64 = 64;
/// Exponent of the least significant significand bit for the smallest normal value
/// (2^-16382 = 2^63 × 2^-16445); subnormals share it.
const MIN_EXP: i64 = -16445;
/// Exponent of the least significant bit of the largest finite value (just below 2^16384).
const MAX_EXP: i64 = 16320;
/// Inputs this long or longer are refused (Redis's MAX_LONG_DOUBLE_CHARS).
const MAX_INPUT_CHARS: usize = 5 * 1024;
/// Decimal places `%.17Lf` prints.
const FRACTION_DIGITS: u32 = 17;

/// An arbitrary-precision unsigned integer, little-endian 32-bit limbs, no high zero limbs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn zero() -> Big {
        Big(Vec::new())
    }

    fn from_u128(mut v: u128) -> Big {
        let mut limbs = Vec::new();
        while v != 0 {
            limbs.push(v as u32);
            v >>= 32;
        }
        Big(limbs)
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn bits(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(top) => (self.0.len() as u64 - 1) * 32 + u64::from(32 - top.leading_zeros()),
        }
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    fn add_small(&mut self, a: u32) {
        let mut carry = u64::from(a);
        for limb in &mut self.0 {
            if carry == 0 {
                return;
            }
            let v = u64::from(*limb) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    fn pow10(n: u64) -> Big {
        let mut b = Big::from_u128(1);
        let mut left = n;
        while left >= 9 {
            b.mul_small(1_000_000_000);
            left -= 9;
        }
        for _ in 0..left {
            b.mul_small(10);
        }
        b
    }

    fn shl(&self, n: u64) -> Big {
        if self.is_zero() {
            return Big::zero();
        }
        let limbs = (n / 32) as usize;
        let bits = (n % 32) as u32;
        let mut out = vec![0u32; limbs];
        out.reserve(self.0.len() + 1);
        if bits == 0 {
            out.extend_from_slice(&self.0);
        } else {
            let mut carry = 0u32;
            for &l in &self.0 {
                out.push((l << bits) | carry);
                carry = l >> (32 - bits);
            }
            if carry != 0 {
                out.push(carry);
            }
        }
        Big(out)
    }

    /// The low `n` bits, as a number.
    fn low_bits(&self, n: u64) -> Big {
        let limbs = (n / 32) as usize;
        let bits = (n % 32) as u32;
        let mut out: Vec<u32> = self.0.iter().take(limbs + 1).copied().collect();
        if out.len() > limbs {
            if bits == 0 {
                out.truncate(limbs);
            } else {
                out[limbs] &= (1u32 << bits) - 1;
            }
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn shr(&self, n: u64) -> Big {
        let limbs = (n / 32) as usize;
        if limbs >= self.0.len() {
            return Big::zero();
        }
        let bits = (n % 32) as u32;
        let src = &self.0[limbs..];
        let mut out = Vec::with_capacity(src.len());
        for (i, &l) in src.iter().enumerate() {
            let hi = if bits == 0 {
                0
            } else {
                src.get(i + 1).map_or(0, |&h| h << (32 - bits))
            };
            out.push((l >> bits) | hi);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    /// `self >>= 1` in place.
    fn shr1_assign(&mut self) {
        let mut carry = 0u32;
        for limb in self.0.iter_mut().rev() {
            let next = *limb << 31;
            *limb = (*limb >> 1) | carry;
            carry = next;
        }
        self.trim();
    }

    fn cmp(&self, o: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }

    /// `self -= o`; requires `self >= o`.
    fn sub_assign(&mut self, o: &Big) {
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let sub = i64::from(o.0.get(i).copied().unwrap_or(0)) + borrow;
            let mut v = i64::from(*limb) - sub;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            *limb = v as u32;
        }
        self.trim();
    }

    fn add(&self, o: &Big) -> Big {
        let n = self.0.len().max(o.0.len());
        let mut out = Vec::with_capacity(n + 1);
        let mut carry = 0u64;
        for i in 0..n {
            let v = u64::from(self.0.get(i).copied().unwrap_or(0))
                + u64::from(o.0.get(i).copied().unwrap_or(0))
                + carry;
            out.push(v as u32);
            carry = v >> 32;
        }
        if carry != 0 {
            out.push(carry as u32);
        }
        Big(out)
    }

    /// Divides in place by `d`, returning the remainder.
    fn divmod_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.0.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / u64::from(d)) as u32;
            rem = cur % u64::from(d);
        }
        self.trim();
        rem as u32
    }

    /// `self / d` and whether a remainder is left, for quotients below 2^qbits.
    fn div_small_quotient(&self, d: &Big, qbits: u32) -> (u128, bool) {
        let mut rem = self.clone();
        let mut q = 0u128;
        let mut ds = d.shl(u64::from(qbits.saturating_sub(1)));
        for i in (0..qbits).rev() {
            if rem.cmp(&ds) != Ordering::Less {
                rem.sub_assign(&ds);
                q |= 1u128 << i;
            }
            ds.shr1_assign();
        }
        (q, !rem.is_zero())
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            chunks.push(n.divmod_small(1_000_000_000));
        }
        let mut s = String::new();
        for (i, c) in chunks.iter().rev().enumerate() {
            if i == 0 {
                s.push_str(&c.to_string());
            } else {
                s.push_str(&format!("{c:09}"));
            }
        }
        s
    }
}

/// A finite x87 extended value: `(-1)^neg × mant × 2^exp`, or an infinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongDouble {
    neg: bool,
    inf: bool,
    mant: u64,
    exp: i64,
}

/// Outcome of rounding an exact value into the format.
enum Rounded {
    Value(LongDouble),
    /// Nonzero but below half the smallest subnormal.
    Underflow,
    Overflow,
}

impl LongDouble {
    /// Positive zero.
    pub const ZERO: LongDouble = LongDouble {
        neg: false,
        inf: false,
        mant: 0,
        exp: 0,
    };

    /// Rounds `q × 2^exp` (plus a nonzero fraction below q's last bit if `sticky`).
    fn round(neg: bool, q: u128, sticky: bool, exp: i64) -> Rounded {
        if q == 0 {
            return if sticky {
                Rounded::Underflow
            } else {
                Rounded::Value(LongDouble { neg, ..Self::ZERO })
            };
        }
        let bits = i64::from(128 - q.leading_zeros());
        let mut drop = bits - MANT_BITS;
        if exp + drop < MIN_EXP {
            drop = MIN_EXP - exp;
        }
        let (mant, e) = if drop <= 0 {
            // Exact: q fits with room to spare (sticky cannot be set then: callers give
            // at least 65 bits whenever they had to truncate).
            ((q << (-drop)) as u64, exp + drop)
        } else {
            if drop > bits {
                return Rounded::Underflow;
            }
            let (kept, rem, half) = if drop >= 128 {
                (0u128, q, 1u128 << 127)
            } else {
                (q >> drop, q & ((1u128 << drop) - 1), 1u128 << (drop - 1))
            };
            let up = rem > half || (rem == half && (sticky || kept & 1 == 1));
            let mut kept = kept + u128::from(up);
            let mut e = exp + drop;
            if kept >> 64 != 0 {
                kept >>= 1;
                e += 1;
            }
            if kept == 0 {
                return Rounded::Underflow;
            }
            (kept as u64, e)
        };
        if e > MAX_EXP {
            return Rounded::Overflow;
        }
        Rounded::Value(LongDouble {
            neg,
            inf: false,
            mant,
            exp: e,
        })
    }

    /// Rounds the positive rational `num / den` (num > 0), signed by `neg`.
    fn round_ratio(neg: bool, num: &Big, den: &Big) -> Rounded {
        // Scale so the quotient has 66 or 67 bits: enough for the round bit and more.
        let t = num.bits() as i64 - den.bits() as i64;
        let shift = 66 - t;
        let (q, sticky) = if shift >= 0 {
            num.shl(shift as u64).div_small_quotient(den, 68)
        } else {
            num.div_small_quotient(&den.shl((-shift) as u64), 68)
        };
        Self::round(neg, q, sticky, -shift)
    }

    /// Parses a stored value or argument as Redis's `string2ld` does (glibc `strtold`,
    /// then refusing leading spaces, trailing bytes, NaN and out-of-range results).
    pub fn parse(s: &[u8]) -> Option<LongDouble> {
        if s.is_empty() || s.len() >= MAX_INPUT_CHARS {
            return None;
        }
        let (neg, body) = match s[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
            return Some(LongDouble {
                neg,
                inf: true,
                ..Self::ZERO
            });
        }
        if body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x' {
            if let Some(v) = Self::parse_hex(neg, &body[2..]) {
                return v;
            }
        }
        let mut digits = Big::zero();
        let mut ndigits: i64 = 0; // significant digits kept, after leading zeros
        let mut frac_digits: i64 = 0;
        let mut seen_digit = false;
        let mut seen_dot = false;
        let mut i = 0;
        while i < body.len() {
            match body[i] {
                c @ b'0'..=b'9' => {
                    seen_digit = true;
                    if !digits.is_zero() || c != b'0' {
                        digits.mul_small(10);
                        digits.add_small(u32::from(c - b'0'));
                        ndigits += 1;
                    }
                    if seen_dot {
                        frac_digits += 1;
                    }
                }
                b'.' if !seen_dot => seen_dot = true,
                _ => break,
            }
            i += 1;
        }
        if !seen_digit {
            return None;
        }
        let mut exp10: i64 = 0;
        if i < body.len() {
            if body[i] != b'e' && body[i] != b'E' {
                return None;
            }
            i += 1;
            let eneg = match body.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let start = i;
            while let Some(c @ b'0'..=b'9') = body.get(i) {
                // Saturate: anything this large is out of range either way.
                exp10 = (exp10 * 10 + i64::from(c - b'0')).min(1_000_000);
                i += 1;
            }
            if i == start || i != body.len() {
                return None;
            }
            if eneg {
                exp10 = -exp10;
            }
        }
        if digits.is_zero() {
            return Some(LongDouble { neg, ..Self::ZERO });
        }
        let e = exp10 - frac_digits;
        // The value is below 10^(ndigits + e) and at least 10^(ndigits + e - 1).
        let magnitude = ndigits + e;
        if !(-4952..=4934).contains(&magnitude) {
            // strtold reports ERANGE: Redis refuses both overflow and underflow.
            return None;
        }
        let (num, den) = if e >= 0 {
            (
                {
                    let mut n = Big::pow10(e as u64);
                    n = mul_big(&n, &digits);
                    n
                },
                Big::from_u128(1),
            )
        } else {
            (digits, Big::pow10((-e) as u64))
        };
        match Self::round_ratio(neg, &num, &den) {
            Rounded::Value(v) => Some(v),
            Rounded::Underflow | Rounded::Overflow => None,
        }
    }

    /// Parses the part after "0x" of a hexadecimal float (`strtold` accepts them;
    /// [`crate::args::hex_float_parts`] reads it). None when it is not one (then "0x…"
    /// is refused as trailing garbage after "0"); Some(None) when it is one but out of
    /// range.
    fn parse_hex(neg: bool, s: &[u8]) -> Option<Option<LongDouble>> {
        let (digits, e) = crate::args::hex_float_parts(s)?;
        let mut mant = Big::zero();
        for d in digits {
            mant = mant.shl(4);
            mant.add_small(u32::from(d));
        }
        if mant.is_zero() {
            return Some(Some(LongDouble { neg, ..Self::ZERO }));
        }
        let top = mant.bits() as i64 + e;
        if !(-16500..=16400).contains(&top) {
            return Some(None);
        }
        let one = Big::from_u128(1);
        let (num, den) = if e >= 0 {
            (mant.shl(e as u64), one)
        } else {
            (mant, one.shl((-e) as u64))
        };
        Some(match Self::round_ratio(neg, &num, &den) {
            Rounded::Value(v) => Some(v),
            Rounded::Underflow | Rounded::Overflow => None,
        })
    }

    /// The correctly rounded sum; None when it is NaN or infinite (Redis refuses those).
    pub fn add(&self, o: &LongDouble) -> Option<LongDouble> {
        if self.inf || o.inf {
            return None;
        }
        if o.mant == 0 {
            return Some(if self.mant == 0 {
                // -0 + -0 is -0; any other pair of zeros is +0.
                LongDouble {
                    neg: self.neg && o.neg,
                    ..Self::ZERO
                }
            } else {
                *self
            });
        }
        if self.mant == 0 {
            return Some(*o);
        }
        let emin = self.exp.min(o.exp);
        let a = Big::from_u128(u128::from(self.mant)).shl((self.exp - emin) as u64);
        let b = Big::from_u128(u128::from(o.mant)).shl((o.exp - emin) as u64);
        let (neg, sum) = if self.neg == o.neg {
            (self.neg, a.add(&b))
        } else {
            match a.cmp(&b) {
                Ordering::Equal => return Some(Self::ZERO),
                Ordering::Greater => {
                    let mut d = a;
                    d.sub_assign(&b);
                    (self.neg, d)
                }
                Ordering::Less => {
                    let mut d = b;
                    d.sub_assign(&a);
                    (o.neg, d)
                }
            }
        };
        let one = Big::from_u128(1);
        let (num, den) = if emin >= 0 {
            (sum.shl(emin as u64), one)
        } else {
            (sum, one.shl((-emin) as u64))
        };
        match Self::round_ratio(neg, &num, &den) {
            Rounded::Value(v) => Some(v),
            // Exact binary sums never fall below the smallest subnormal.
            Rounded::Underflow => Some(LongDouble { neg, ..Self::ZERO }),
            Rounded::Overflow => None,
        }
    }

    /// `%.17Lf`, then trailing zeros (and a bare '.') removed and "-0" printed as "0":
    /// Redis's human-friendly long double format.
    pub fn format_human(&self) -> String {
        if self.inf {
            return if self.neg { "-inf" } else { "inf" }.into();
        }
        let scaled = {
            let mut m = Big::from_u128(u128::from(self.mant));
            let p = Big::pow10(u64::from(FRACTION_DIGITS));
            m = mul_big(&m, &p);
            if self.exp >= 0 {
                m.shl(self.exp as u64)
            } else {
                let k = (-self.exp) as u64;
                let q = m.shr(k);
                let rem = m.low_bits(k);
                let half = Big::from_u128(1).shl(k - 1);
                let up = match rem.cmp(&half) {
                    Ordering::Greater => true,
                    Ordering::Equal => q.0.first().is_some_and(|l| l & 1 == 1),
                    Ordering::Less => false,
                };
                let mut q = q;
                if up {
                    q.add_small(1);
                }
                q
            }
        };
        let mut digits = scaled.to_decimal();
        let width = FRACTION_DIGITS as usize + 1;
        if digits.len() < width {
            digits = format!("{}{digits}", "0".repeat(width - digits.len()));
        }
        let (int_part, frac) = digits.split_at(digits.len() - FRACTION_DIGITS as usize);
        let frac = frac.trim_end_matches('0');
        let mut out = String::with_capacity(digits.len() + 2);
        if self.neg {
            out.push('-');
        }
        out.push_str(int_part);
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        if out == "-0" {
            out = "0".into();
        }
        out
    }
}

/// Schoolbook product of two big numbers.
fn mul_big(a: &Big, b: &Big) -> Big {
    if a.is_zero() || b.is_zero() {
        return Big::zero();
    }
    let mut out = vec![0u32; a.0.len() + b.0.len()];
    for (i, &x) in a.0.iter().enumerate() {
        let mut carry = 0u64;
        for (j, &y) in b.0.iter().enumerate() {
            let cur = u64::from(out[i + j]) + u64::from(x) * u64::from(y) + carry;
            out[i + j] = cur as u32;
            carry = cur >> 32;
        }
        let mut k = i + b.0.len();
        while carry != 0 {
            let cur = u64::from(out[k]) + carry;
            out[k] = cur as u32;
            carry = cur >> 32;
            k += 1;
        }
    }
    let mut r = Big(out);
    r.trim();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incr(a: &str, b: &str) -> Option<String> {
        let x = LongDouble::parse(a.as_bytes())?;
        let y = LongDouble::parse(b.as_bytes())?;
        Some(x.add(&y)?.format_human())
    }

    fn show(s: &str) -> Option<String> {
        LongDouble::parse(s.as_bytes()).map(|v| v.format_human())
    }

    /// Sums computed by C `long double` (x86-64, glibc `strtold` and `%.17Lf`, trimmed as
    /// Redis trims): random inputs, hexadecimal floats, subnormals, out-of-range and
    /// malformed values (None).
    const C_LONG_DOUBLE_SUMS: &[(&str, &str, Option<&str>)] = &[
        ("+38109e-17", "+975.45", Some("975.4500000000003811")),
        ("-1471.39831520627", "505", Some("-966.39831520627000006")),
        (
            "-36953",
            "+703065871400527597.796084979265189414",
            Some("703065871400490644.8125"),
        ),
        (
            "+15309649.678256076",
            "+0.00000349",
            Some("15309649.67825956600063364"),
        ),
        (
            "7931646",
            "-35504e24",
            Some("-35503999999999999999194693632"),
        ),
        ("+0", "-4909439837544712622", Some("-4909439837544712622")),
        (
            "-555057868106892401515.33465366743482973396",
            "44955e-23",
            Some("-555057868106892401504"),
        ),
        ("89978e7", "-0.0032", Some("899779999999.9968000054359436")),
        ("4.969267097867838e-09", "+10", Some("10.0000000049692671")),
        (
            "-2",
            "595484840520632.7923523580459579084318480",
            Some("595484840520630.7923583984375"),
        ),
        ("0XE7efA0FfFF.ed524333aa5b9ace0c3g", "1", None),
        (
            "14732719186112078765",
            "+80868493533172.69867891224064722592",
            Some("14732800054605611938"),
        ),
        (
            "1991.27528",
            "+7590156589",
            Some("7590158580.27528000017628074"),
        ),
        (
            "0.0000000000000230",
            "92565e27",
            Some("92565000000000000001533169106944"),
        ),
        ("99629e1", "36248837", Some("37245127")),
        ("+49270", "4289698839550870377", Some("4289698839550919647")),
        (
            "18747493539342510.25071334088",
            "-901036",
            Some("18747493538441474.25"),
        ),
        (
            "-910778573622867209507324.458",
            "+85078390527335.14",
            Some("-910778573537788818948096"),
        ),
        ("+80512272", "2", Some("80512274")),
        (
            "+12286e-5",
            "+954043.7144215",
            Some("954043.83728150000001733"),
        ),
        ("-2682348484", "-70073e-16", Some("-2682348484")),
        ("+21018e8", "+8353597984", Some("2110153597984")),
        (
            "71726379353",
            "2953268621658491689",
            Some("2953268693384871042"),
        ),
        ("7610868484850885494261827.4181006970", "1e99999", None),
        (
            "+0x81ED776Ff3AA90.62b1ddP-15629",
            "-0xa9269BA61c6EF9a.04e113f4",
            Some("-761787536204296090"),
        ),
        (
            "8585",
            "-11640e29",
            Some("-1163999999999999999994386477744128"),
        ),
        (
            "+641570098648808.182366354185",
            "+6058",
            Some("641570098654866.182373046875"),
        ),
        (
            "2271566628389993730136567.270751687046",
            "99061e2",
            Some("2271566628389993740107776"),
        ),
        ("1.5x", "86509e-7", None),
        (
            "+8.357e-4950",
            "+20499437417787857436.850233503462847",
            Some("20499437417787857436"),
        ),
        ("-19111e-3", "30993e19", Some("309930000000000000000000")),
        ("0xE01f0A0", "-0xp+", None),
        ("0.00000000000000000806", "+8084349793", Some("8084349793")),
        (
            "+908013020171",
            "152969134373963174.156207246094612237453",
            Some("152970042386983345.15625"),
        ),
        (
            "517821219",
            "-1171094603826111159.1539",
            Some("-1171094603308289940.125"),
        ),
        (
            "242419385.85040435",
            "5226758473682451285.7582",
            Some("5226758473924870672"),
        ),
        ("23967892", "+10", Some("23967902")),
        (
            "5.539158932497262060",
            "+279096",
            Some("279101.53915893249725855"),
        ),
        ("-55691826", "+228209", Some("-55463617")),
        (
            "0X1A580c187c",
            "0.1",
            Some("113146337404.10000000149011612"),
        ),
        (
            "86616e0",
            "25642463011725577785.973683785100749445",
            Some("25642463011725664402"),
        ),
        (
            "-2743760754.10",
            "6999212.301155294017461719276",
            Some("-2736761541.79884470603428781"),
        ),
        ("1", "431391887.84083", Some("431391888.84083000000100583")),
        (
            "-2053088953.4311814312827518078",
            "-962982468939",
            Some("-965035557892.43118143081665039"),
        ),
        ("0x9g", "0.1", None),
    ];

    #[test]
    fn matches_c_long_double() {
        for (a, b, want) in C_LONG_DOUBLE_SUMS {
            assert_eq!(incr(a, b).as_deref(), *want, "{a} + {b}");
        }
    }

    #[test]
    fn redis_documented_examples() {
        assert_eq!(incr("10.50", "0.1").as_deref(), Some("10.6"));
        assert_eq!(incr("10.6", "-5").as_deref(), Some("5.6"));
        assert_eq!(incr("5.0e3", "2.0e2").as_deref(), Some("5200"));
        assert_eq!(incr("0.1", "0.2").as_deref(), Some("0.3"));
        assert_eq!(incr("0", "1.5").as_deref(), Some("1.5"));
        assert_eq!(incr("-1.5", "1.5").as_deref(), Some("0"));
    }

    #[test]
    fn prints_like_percent_17_lf() {
        assert_eq!(show("5.0e3").as_deref(), Some("5000"));
        assert_eq!(show("-0").as_deref(), Some("0"));
        assert_eq!(show("1e-18").as_deref(), Some("0"));
        assert_eq!(show("-1e-18").as_deref(), Some("0"));
        assert_eq!(show("1e-17").as_deref(), Some("0.00000000000000001"));
        assert_eq!(
            show("123456789.123456789").as_deref(),
            // 18 significant digits do not survive a 64-bit significand.
            Some("123456789.12345678899873747")
        );
        assert_eq!(show("1e20").as_deref(), Some("100000000000000000000"));
        // 1e20 + 0.1 needs 22 digits; 64 bits of significand keep about 19.
        assert_eq!(
            incr("1e20", "0.1").as_deref(),
            Some("100000000000000000000")
        );
        // 2^64 + 1 rounds to even at 64 significand bits.
        assert_eq!(
            incr("18446744073709551616", "1").as_deref(),
            Some("18446744073709551616")
        );
        assert_eq!(
            incr("18446744073709551615", "0").as_deref(),
            Some("18446744073709551615")
        );
        // One third: %.17Lf of the 64-bit-significand value.
        assert_eq!(
            show("0.333333333333333333333").as_deref(),
            Some("0.33333333333333333")
        );
    }

    #[test]
    fn parses_like_strtold_for_redis() {
        for bad in [
            "", " 1", "1 ", "abc", "1e", "1e+", ".", "-", "nan", "1.5x", "1e5000", "1e-5000",
        ] {
            assert_eq!(LongDouble::parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert!(LongDouble::parse(b"inf").is_some_and(|v| v.inf));
        assert!(LongDouble::parse(b"-Infinity").is_some_and(|v| v.inf && v.neg));
        assert_eq!(show(".5").as_deref(), Some("0.5"));
        assert_eq!(show("5.").as_deref(), Some("5"));
        assert_eq!(show("+2.25").as_deref(), Some("2.25"));
        assert_eq!(show("0e999999999").as_deref(), Some("0"));
        // The nearest value to 1e4000 is just below it: 4000 integer digits.
        assert!(show("1e4000")
            .is_some_and(|s| s.len() == 4000 && s.starts_with("9999999999999999999965")));
        assert_eq!(show("0x1.8p3").as_deref(), Some("12"));
        assert_eq!(incr("0x1.8p3", "0.25").as_deref(), Some("12.25"));
        assert_eq!(show("0x1p-16445").as_deref(), Some("0"));
        assert!(LongDouble::parse(b"0x1p-16446").is_none());
        assert!(LongDouble::parse(b"0x").is_none());
        assert!(LongDouble::parse(b"1e4933").is_none());
        assert!(LongDouble::parse(b"1e-4950").is_some());
    }

    #[test]
    fn nan_and_infinity_are_refused() {
        assert_eq!(incr("inf", "1"), None);
        assert_eq!(incr("1", "-inf"), None);
        assert_eq!(incr("1.1e4932", "1.1e4932"), None);
    }
}
