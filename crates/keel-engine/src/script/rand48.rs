//! The generator behind a script's math.random: the 48-bit linear congruential
//! generator of `lrand48`, as Redis's own copy of it (rand.c) runs, so that a script
//! draws the numbers it draws under redis-server.

/// The generator's multiplier, addend and state width.
const A: u64 = 0x5_DEEC_E66D;
const C: u64 = 0xB;
const MASK: u64 = (1 << 48) - 1;
/// The low 16 bits of every seeded state.
const X0: u64 = 0x330E;

/// A rand48 state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rand48(u64);

impl Rand48 {
    /// The state `srand48(seed)` sets.
    pub fn seeded(seed: i32) -> Rand48 {
        Rand48((u64::from(seed as u32) << 16) | X0)
    }

    /// The next `lrand48()`: 31 random bits.
    pub fn next_i31(&mut self) -> u32 {
        self.0 = (self.0.wrapping_mul(A).wrapping_add(C)) & MASK;
        (self.0 >> 17) as u32
    }

    /// The next number in [0, 1) as Redis's math.random draws it.
    pub fn unit(&mut self) -> f64 {
        const MAX: u32 = i32::MAX as u32;
        f64::from(self.next_i31() % MAX) / f64::from(MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_what_redis_draws() {
        // A fresh redis-server 7.0 (rand.c's initial state, which srand48(0x1234ABCD)
        // sets) answers EVAL "return {math.random(100), math.random(1,1000),
        // tostring(math.random())}" 0 with 40, 841, "0.35333609737146".
        let mut r = Rand48::seeded(0x1234_ABCD);
        assert_eq!((r.unit() * 100.0).floor() + 1.0, 40.0);
        assert_eq!((r.unit() * 1000.0).floor() + 1.0, 841.0);
        let third = r.unit();
        assert!((third - 0.35333609737146).abs() < 1e-13, "{third}");
    }

    #[test]
    fn the_seed_fills_the_high_bits() {
        assert_eq!(Rand48::seeded(0), Rand48(0x330E));
        assert_eq!(Rand48::seeded(0x1234_5678), Rand48(0x1234_5678_330E));
        assert_eq!(Rand48::seeded(-1), Rand48(0xFFFF_FFFF_330E));
    }
}
