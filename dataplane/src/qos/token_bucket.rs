//! A token bucket in exact integer arithmetic, for the port's aggregate rate
//! and each class's ceiling.
//!
//! Tokens are counted in *bit-ticks*: one byte costs `8 * ticks_per_second`
//! units and every tick adds `rate_bps` units. Both sides of the balance
//! are integers, so no rounding happens anywhere and the long-run rate is
//! exact at 1 Mbit/s and at 10 Gbit/s with small packets alike; nothing on
//! the per-packet path uses floating point.
//!
//! A packet may leave when the bucket holds its cost, or is full (a packet
//! larger than the burst can never find more tokens than that). Sending
//! always charges the full cost, so the bucket may go into debt, which
//! later refills repay: the rate stays exact even for oversized packets, or
//! for the packet CoDel substitutes for the head it dropped.
//!
//! The bucket is sans-I/O: `now` is passed in, ticks of a clock whose rate
//! is fixed at construction (the TSC), and the queries are pure.

/// Largest packet length charged in full; anything longer is charged as
/// this many bytes (keeps the cost arithmetic far from overflow).
pub const MAX_CHARGE_BYTES: u32 = 1 << 20;
/// Largest supported clock rate (about 68 GHz).
pub const MAX_TICKS_PER_SECOND: u64 = 1 << 36;
/// Largest supported rate (about 1.1 Tbit/s).
pub const MAX_RATE_BPS: u64 = 1 << 40;
/// Largest bucket, in bit-ticks (burst bytes × 8 × ticks per second).
const MAX_UNITS: u64 = 1 << 61;

/// Why a bucket cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketError {
    /// Ticks per second is 0 or above [`MAX_TICKS_PER_SECOND`].
    ClockRate,
    /// The rate is above [`MAX_RATE_BPS`].
    Rate,
    /// The burst is 0, or too large for this clock rate.
    Burst,
}

impl core::fmt::Display for BucketError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BucketError::ClockRate => "ticks per second must be between 1 and 2^36",
            BucketError::Rate => "the rate must be at most 2^40 bit/s",
            BucketError::Burst => {
                "the burst must be at least 1 byte and small enough for the clock rate"
            }
        })
    }
}

impl std::error::Error for BucketError {}

#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Bit-ticks available at `last`; negative is debt.
    tokens: i64,
    /// Tick of the last refill.
    last: u64,
    /// Bits per second = bit-ticks added per tick.
    rate: u64,
    /// Bucket size in bit-ticks.
    cap: i64,
    burst_bytes: u32,
    /// Bit-ticks per byte: 8 × ticks per second.
    per_byte: u64,
    /// Longest refill interval computed exactly; longer ones fill the bucket.
    max_elapsed: u64,
}

impl TokenBucket {
    /// A full bucket of `burst_bytes` refilling at `rate_bps`, on a clock of
    /// `ticks_per_second`. A rate of 0 never refills.
    pub fn new(
        rate_bps: u64,
        burst_bytes: u32,
        ticks_per_second: u64,
        now: u64,
    ) -> Result<TokenBucket, BucketError> {
        if ticks_per_second == 0 || ticks_per_second > MAX_TICKS_PER_SECOND {
            return Err(BucketError::ClockRate);
        }
        if rate_bps > MAX_RATE_BPS {
            return Err(BucketError::Rate);
        }
        let per_byte = 8 * ticks_per_second;
        let cap = u64::from(burst_bytes)
            .checked_mul(per_byte)
            .filter(|&c| c > 0 && c <= MAX_UNITS)
            .ok_or(BucketError::Burst)?;
        Ok(TokenBucket {
            tokens: cap as i64,
            last: now,
            rate: rate_bps,
            cap: cap as i64,
            burst_bytes,
            per_byte,
            max_elapsed: max_elapsed(rate_bps),
        })
    }

    pub fn rate_bps(&self) -> u64 {
        self.rate
    }

    pub fn burst_bytes(&self) -> u32 {
        self.burst_bytes
    }

    /// The cost of `bytes` in bit-ticks.
    #[inline(always)]
    fn cost(&self, bytes: u32) -> i64 {
        (u64::from(bytes.min(MAX_CHARGE_BYTES)) * self.per_byte) as i64
    }

    /// Bit-ticks available at `now` (pure).
    #[inline(always)]
    fn available(&self, now: u64) -> i64 {
        let elapsed = now.saturating_sub(self.last).min(self.max_elapsed);
        // elapsed × rate ≤ 2^61 and tokens ≥ -2^59: no overflow.
        (self.tokens + (elapsed * self.rate) as i64).min(self.cap)
    }

    /// Whether `bytes` may leave at `now`.
    #[inline(always)]
    pub fn conforms(&self, now: u64, bytes: u32) -> bool {
        self.available(now) >= self.cost(bytes).min(self.cap)
    }

    /// Charges `bytes` at `now`, into debt if need be.
    #[inline(always)]
    pub fn consume(&mut self, now: u64, bytes: u32) {
        // The floor keeps repeated charges without conformance (a misuse)
        // from overflowing; a real debt is at most one packet.
        self.tokens = (self.available(now) - self.cost(bytes)).max(-(MAX_UNITS as i64));
        self.last = self.last.max(now);
    }

    /// The earliest tick, at or after `now`, at which `bytes` conform;
    /// `u64::MAX` if never (a rate of 0 and not enough tokens).
    #[inline]
    pub fn ready_at(&self, now: u64, bytes: u32) -> u64 {
        let need = self.cost(bytes).min(self.cap) - self.available(now);
        if need <= 0 {
            return now;
        }
        if self.rate == 0 {
            return u64::MAX;
        }
        now.saturating_add((need as u64).div_ceil(self.rate))
    }

    /// Changes the rate from `now` on: what accrued until `now` accrued at
    /// the old rate. Not for the per-packet path (it divides).
    pub fn set_rate(&mut self, now: u64, rate_bps: u64) {
        self.tokens = self.available(now);
        self.last = self.last.max(now);
        self.rate = rate_bps.min(MAX_RATE_BPS);
        self.max_elapsed = max_elapsed(self.rate);
    }

    /// Whole bytes available at `now` (for tests and display).
    pub fn available_bytes(&self, now: u64) -> i64 {
        self.available(now).div_euclid(self.per_byte as i64)
    }
}

fn max_elapsed(rate: u64) -> u64 {
    MAX_UNITS.checked_div(rate).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GHZ: u64 = 1_000_000_000;

    #[test]
    fn starts_full_and_releases_exactly_the_burst() {
        let mut b = TokenBucket::new(8_000_000, 3000, GHZ, 0).unwrap();
        assert!(b.conforms(0, 3000));
        b.consume(0, 1);
        assert!(!b.conforms(0, 3000));
        assert!(b.conforms(0, 2999));
        b.consume(0, 999);
        b.consume(0, 2000);
        assert_eq!(b.available_bytes(0), 0);
        assert!(!b.conforms(0, 1));
    }

    #[test]
    fn ready_at_is_the_exact_refill_time() {
        // 8 Mbit/s = 1 byte per µs = 1 byte per 1000 ticks at 1 GHz.
        let mut b = TokenBucket::new(8_000_000, 1500, GHZ, 0).unwrap();
        b.consume(0, 1500);
        assert_eq!(b.ready_at(0, 100), 100_000);
        assert!(!b.conforms(99_999, 100));
        assert!(b.conforms(100_000, 100));
    }

    #[test]
    fn a_packet_larger_than_the_burst_leaves_from_a_full_bucket_and_leaves_debt() {
        let mut b = TokenBucket::new(8_000_000, 1000, GHZ, 0).unwrap();
        assert!(b.conforms(0, 9000));
        b.consume(0, 9000);
        assert_eq!(b.available_bytes(0), -8000);
        // The debt is repaid at the rate: 8000 + 1 bytes later, 1 byte fits.
        assert_eq!(b.ready_at(0, 1), 8_001_000);
    }

    #[test]
    fn refill_saturates_at_the_burst_after_a_long_idle() {
        let mut b = TokenBucket::new(10_000_000_000, 64_000, 3 * GHZ, 0).unwrap();
        b.consume(0, 64_000);
        assert_eq!(b.available_bytes(u64::MAX / 2), 64_000);
        assert_eq!(b.available_bytes(u64::MAX), 64_000);
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let mut b = TokenBucket::new(8_000_000, 1500, GHZ, 1_000_000).unwrap();
        b.consume(1_000_000, 1500);
        assert_eq!(b.available_bytes(0), 0);
        b.consume(10, 0);
        assert_eq!(b.available_bytes(1_000_000), 0);
    }

    #[test]
    fn zero_rate_never_refills() {
        let mut b = TokenBucket::new(0, 1500, GHZ, 0).unwrap();
        b.consume(0, 1500);
        assert_eq!(b.ready_at(0, 1), u64::MAX);
        assert!(!b.conforms(u64::MAX, 1));
    }

    #[test]
    fn set_rate_keeps_what_accrued_at_the_old_rate() {
        let mut b = TokenBucket::new(8_000_000, 10_000, GHZ, 0).unwrap();
        b.consume(0, 10_000);
        b.set_rate(1_000_000, 16_000_000); // 1 ms at 1 B/µs: 1000 bytes
        assert_eq!(b.available_bytes(1_000_000), 1000);
        assert_eq!(b.available_bytes(2_000_000), 3000);
    }

    #[test]
    fn rejects_burst_and_clock_out_of_range() {
        assert_eq!(
            TokenBucket::new(1, 0, GHZ, 0).unwrap_err(),
            BucketError::Burst
        );
        assert_eq!(
            TokenBucket::new(1, 1, 0, 0).unwrap_err(),
            BucketError::ClockRate
        );
        assert_eq!(
            TokenBucket::new(MAX_RATE_BPS + 1, 1, GHZ, 0).unwrap_err(),
            BucketError::Rate
        );
        assert_eq!(
            TokenBucket::new(1, u32::MAX, MAX_TICKS_PER_SECOND, 0).unwrap_err(),
            BucketError::Burst
        );
    }
}
