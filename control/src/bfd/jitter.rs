//! Transmit jitter (RFC 5880 §6.8.7): each periodic interval is reduced by
//! a random 0–25 %, so it lands in 75–100 % of the agreed interval, or in
//! 75–90 % when the local Detect Mult is 1 so that a single late packet
//! cannot expire the remote's detection timer.
//!
//! The randomness comes from a small per-session xorshift64* generator
//! seeded by the caller: no global RNG, and tests are deterministic. It is
//! not a cryptographic generator; the jitter only has to decorrelate
//! sessions.

/// A per-session pseudo-random source.
#[derive(Clone, Debug)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        // xorshift never leaves zero; any other fixed start will do.
        let state = if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        };
        Jitter { state }
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// The interval to wait before the next periodic packet.
    pub fn apply(&mut self, interval_ns: u64, detect_mult: u8) -> u64 {
        let max_pct = if detect_mult == 1 { 90 } else { 100 };
        let low = interval_ns / 100 * 75;
        let high = interval_ns / 100 * max_pct;
        let span = high - low;
        low + self.next_u64() % (span + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(mult: u8) -> (u64, u64, f64) {
        let mut j = Jitter::new(42);
        let interval = 50_000_000u64;
        let (mut lo, mut hi, mut sum) = (u64::MAX, 0u64, 0u64);
        let n = 100_000;
        for _ in 0..n {
            let v = j.apply(interval, mult);
            lo = lo.min(v);
            hi = hi.max(v);
            sum += v;
        }
        (lo, hi, sum as f64 / n as f64 / interval as f64)
    }

    #[test]
    fn jitter_stays_within_75_to_100_percent() {
        let (lo, hi, mean) = bounds(3);
        assert!(lo >= 37_500_000, "{lo}");
        assert!(hi <= 50_000_000, "{hi}");
        // The whole range is used, not a corner of it.
        assert!(lo < 37_600_000 && hi > 49_900_000, "{lo} {hi}");
        assert!((mean - 0.875).abs() < 0.005, "{mean}");
    }

    #[test]
    fn jitter_stays_within_75_to_90_percent_with_mult_1() {
        let (lo, hi, mean) = bounds(1);
        assert!(lo >= 37_500_000, "{lo}");
        assert!(hi <= 45_000_000, "{hi}");
        assert!(lo < 37_600_000 && hi > 44_900_000, "{lo} {hi}");
        assert!((mean - 0.825).abs() < 0.005, "{mean}");
    }

    #[test]
    fn same_seed_same_sequence_different_seed_differs() {
        let mut a = Jitter::new(7);
        let mut b = Jitter::new(7);
        let mut c = Jitter::new(8);
        let va: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let vc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
    }

    #[test]
    fn zero_seed_still_produces_randomness() {
        let mut j = Jitter::new(0);
        let a = j.next_u64();
        let b = j.next_u64();
        assert_ne!(a, 0);
        assert_ne!(a, b);
    }
}
