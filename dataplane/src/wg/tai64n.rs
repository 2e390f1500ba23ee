//! TAI64N timestamps (whitepaper section 5.1 and 5.4.2): the 12-byte value an
//! initiator encrypts into every initiation so the responder can reject
//! replays. Seconds are `0x400000000000000a + unix seconds` big-endian, then
//! nanoseconds big-endian; comparing the bytes compares the times.
//!
//! The wall-clock time is passed in. Like the kernel and wireguard-go, the
//! nanoseconds are rounded down to a multiple of 2^24 ns (about 16.8 ms) so
//! the timestamp does not leak a fine-grained clock, which is also below the
//! 20 ms (50 per second) initiation flood limit a responder applies.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of a TAI64N label.
pub const TAI64N_LEN: usize = 12;

/// The TAI64 label of the Unix epoch, as WireGuard computes it (2^62 + 10;
/// leap seconds are not tracked, only monotonicity matters).
pub const TAI64_EPOCH: u64 = 0x4000_0000_0000_000a;

/// Nanosecond bits cleared before sending (2^24 - 1).
const WHITENER_MASK: u32 = 0x00ff_ffff;

/// A TAI64N timestamp. `Ord` is chronological order; [`Tai64N::ZERO`] is
/// before every real time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Tai64N(pub [u8; TAI64N_LEN]);

impl Tai64N {
    /// Before every timestamp a peer can send: the "nothing accepted yet"
    /// value.
    pub const ZERO: Tai64N = Tai64N([0; TAI64N_LEN]);

    /// The timestamp for a wall-clock time, with the nanoseconds whitened.
    /// Times before 1970 count down from the TAI64 epoch label.
    pub fn from_system_time(time: SystemTime) -> Self {
        let (secs, nanos) = match time.duration_since(UNIX_EPOCH) {
            Ok(d) => (TAI64_EPOCH.saturating_add(d.as_secs()), d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                // -1.25 s is label - 2 s + 0.75 s.
                let (secs, nanos) = if d.subsec_nanos() == 0 {
                    (d.as_secs(), 0)
                } else {
                    (d.as_secs() + 1, 1_000_000_000 - d.subsec_nanos())
                };
                (TAI64_EPOCH.saturating_sub(secs), nanos)
            }
        };
        Self::from_parts(secs, nanos & !WHITENER_MASK)
    }

    /// A timestamp from its TAI64 seconds label and nanoseconds, unaltered.
    pub fn from_parts(secs: u64, nanos: u32) -> Self {
        let mut b = [0u8; TAI64N_LEN];
        b[..8].copy_from_slice(&secs.to_be_bytes());
        b[8..].copy_from_slice(&nanos.to_be_bytes());
        Tai64N(b)
    }

    /// The TAI64 seconds label.
    pub fn secs(&self) -> u64 {
        let mut s = [0u8; 8];
        s.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(s)
    }

    /// The nanoseconds field.
    pub fn nanos(&self) -> u32 {
        let mut n = [0u8; 4];
        n.copy_from_slice(&self.0[8..]);
        u32::from_be_bytes(n)
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8; TAI64N_LEN] {
        &self.0
    }

    /// Whether `self` is strictly later than `other`, the test a responder
    /// applies to each initiation against the last one it accepted.
    pub fn is_after(&self, other: &Tai64N) -> bool {
        self > other
    }
}

impl From<[u8; TAI64N_LEN]> for Tai64N {
    fn from(bytes: [u8; TAI64N_LEN]) -> Self {
        Tai64N(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn encodes_label_plus_seconds_and_whitened_nanos_big_endian() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let ts = Tai64N::from_system_time(t);
        assert_eq!(ts.secs(), 0x4000_0000_0000_000a + 1_700_000_000);
        assert_eq!(ts.nanos(), 123_456_789 & !0x00ff_ffff);
        assert_eq!(ts.nanos(), 117_440_512);
        let expected_secs = (0x4000_0000_0000_000a_u64 + 1_700_000_000).to_be_bytes();
        assert_eq!(&ts.as_bytes()[..8], &expected_secs);
        assert_eq!(&ts.as_bytes()[8..], &117_440_512u32.to_be_bytes());
    }

    #[test]
    fn the_epoch_is_the_label() {
        let ts = Tai64N::from_system_time(UNIX_EPOCH);
        assert_eq!(ts.as_bytes(), &[0x40, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0]);
    }

    #[test]
    fn ordering_is_chronological() {
        let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let a = Tai64N::from_system_time(base);
        let b = Tai64N::from_system_time(base + Duration::from_millis(20));
        let c = Tai64N::from_system_time(base + Duration::from_secs(1));
        assert!(b.is_after(&a));
        assert!(c.is_after(&b));
        assert!(!a.is_after(&a), "equal is not after");
        assert!(!a.is_after(&c));
        assert!(a.is_after(&Tai64N::ZERO));
        // Within one whitening step the timestamps are equal, hence a second
        // initiation that soon would be refused as a replay.
        let d = Tai64N::from_system_time(base + Duration::from_millis(5));
        assert_eq!(a, d);
        // Nanoseconds alone order correctly across the byte boundary.
        assert!(Tai64N::from_parts(5, 0x0100_0000).is_after(&Tai64N::from_parts(5, 0x00ff_ffff)));
        assert!(Tai64N::from_parts(6, 0).is_after(&Tai64N::from_parts(5, 999_999_999)));
    }

    #[test]
    fn times_before_1970_order_below_the_epoch() {
        let before = Tai64N::from_system_time(UNIX_EPOCH - Duration::from_millis(1250));
        assert_eq!(before.secs(), TAI64_EPOCH - 2);
        assert!(Tai64N::from_system_time(UNIX_EPOCH).is_after(&before));
    }
}
