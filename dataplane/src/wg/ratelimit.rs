//! Per-source rate limiting of handshake initiations under load (whitepaper
//! section 5.3, and the kernel's `ratelimiter.c`): a token bucket per source
//! address allowing [`PACKETS_PER_SECOND`] with a burst of [`PACKETS_BURST`].
//!
//! Memory is fixed when the limiter is built: a set-associative table of
//! [`WAYS`]-entry sets, indexed by a keyed hash of the address. A source not
//! in the table takes a free or idle slot in its set, or else evicts the
//! entry seen least recently. A flood of spoofed sources therefore churns
//! the table but never grows it; the price is that an evicted source comes
//! back with a full bucket, at most [`PACKETS_BURST`] extra initiations per
//! eviction. (Under load the caller applies this after mac2 has been
//! verified, so the sources that reach it can receive at their address.)
//!
//! IPv6 sources are keyed by their /64 prefix, as the kernel does, because
//! one host commonly owns a whole /64. Time is an argument (a monotonic
//! [`Duration`] since an epoch the caller picks, as in `timers`); the hash
//! key comes from the RNG passed to [`RateLimiter::new`].

use std::net::IpAddr;
use std::time::Duration;

use rand_core::CryptoRngCore;

/// Steady rate allowed per source.
pub const PACKETS_PER_SECOND: u64 = 20;
/// Initiations a source may send at once after being idle.
pub const PACKETS_BURST: u64 = 5;
/// Entries per set.
pub const WAYS: usize = 8;
/// Default table size in entries.
pub const DEFAULT_CAPACITY: usize = 8192;

/// Cost of one packet in nanoseconds of accumulated credit.
const PACKET_COST_NS: u64 = 1_000_000_000 / PACKETS_PER_SECOND;
/// The bucket's capacity in nanoseconds.
const MAX_TOKENS_NS: u64 = PACKET_COST_NS * PACKETS_BURST;
/// An entry idle this long has a full bucket again, so it holds no
/// information and may be reused.
const IDLE: Duration = Duration::from_nanos(MAX_TOKENS_NS);

/// A source key: 16 bytes (IPv4 mapped, IPv6 truncated to /64) plus a
/// family tag so `::ffff:a.b.c.d` and `a.b.c.d` stay distinct.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SourceKey {
    addr: [u8; 16],
    v6: bool,
}

impl SourceKey {
    fn new(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => SourceKey {
                addr: v4.to_ipv6_mapped().octets(),
                v6: false,
            },
            IpAddr::V6(v6) => {
                let mut addr = v6.octets();
                addr[8..].fill(0);
                SourceKey { addr, v6: true }
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Entry {
    key: SourceKey,
    /// `now` in nanoseconds when the bucket was last updated.
    last_ns: u64,
    /// Credit in nanoseconds, at most `MAX_TOKENS_NS`.
    tokens_ns: u64,
    used: bool,
}

const EMPTY: Entry = Entry {
    key: SourceKey {
        addr: [0; 16],
        v6: false,
    },
    last_ns: 0,
    tokens_ns: 0,
    used: false,
};

/// The per-source token-bucket table.
pub struct RateLimiter {
    entries: Box<[Entry]>,
    set_mask: usize,
    hash_key: [u64; 2],
}

impl RateLimiter {
    /// A limiter with [`DEFAULT_CAPACITY`] entries.
    pub fn new(rng: &mut impl CryptoRngCore) -> Self {
        Self::with_capacity(DEFAULT_CAPACITY, rng)
    }

    /// A limiter with at least `capacity` entries (rounded up to a power of
    /// two number of [`WAYS`]-entry sets). This is the only allocation.
    pub fn with_capacity(capacity: usize, rng: &mut impl CryptoRngCore) -> Self {
        let sets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        RateLimiter {
            entries: vec![EMPTY; sets * WAYS].into_boxed_slice(),
            set_mask: sets - 1,
            hash_key: [rng.next_u64(), rng.next_u64()],
        }
    }

    /// Number of entries the table holds; fixed for its lifetime.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Number of sources currently tracked.
    pub fn len(&self) -> usize {
        self.entries.iter().filter(|e| e.used).count()
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes one token from `source`'s bucket if it has one.
    pub fn allow(&mut self, source: IpAddr, now: Duration) -> bool {
        let key = SourceKey::new(source);
        let now_ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let set = self.set_of(&key);
        let slots = &mut self.entries[set * WAYS..(set + 1) * WAYS];

        if let Some(e) = slots.iter_mut().find(|e| e.used && e.key == key) {
            let elapsed = now_ns.saturating_sub(e.last_ns);
            e.tokens_ns = e.tokens_ns.saturating_add(elapsed).min(MAX_TOKENS_NS);
            e.last_ns = e.last_ns.max(now_ns);
            return if e.tokens_ns >= PACKET_COST_NS {
                e.tokens_ns -= PACKET_COST_NS;
                true
            } else {
                false
            };
        }

        // New source: a free slot, else an idle one, else the least recently
        // updated one.
        let idle_ns = IDLE.as_nanos() as u64;
        let victim = slots
            .iter()
            .position(|e| !e.used)
            .or_else(|| {
                slots
                    .iter()
                    .position(|e| now_ns.saturating_sub(e.last_ns) >= idle_ns)
            })
            .unwrap_or_else(|| {
                let mut oldest = 0;
                for (i, e) in slots.iter().enumerate() {
                    if e.last_ns < slots[oldest].last_ns {
                        oldest = i;
                    }
                }
                oldest
            });
        slots[victim] = Entry {
            key,
            last_ns: now_ns,
            tokens_ns: MAX_TOKENS_NS - PACKET_COST_NS,
            used: true,
        };
        true
    }

    /// A keyed multiply-xorshift hash of the source. Not cryptographic: an
    /// attacker who cannot see the key cannot aim at one set, and a set under
    /// attack only ever costs its own [`WAYS`] entries.
    fn set_of(&self, key: &SourceKey) -> usize {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&key.addr[..8]);
        hi.copy_from_slice(&key.addr[8..]);
        let mut h = self.hash_key[0] ^ u64::from(key.v6);
        for word in [
            u64::from_le_bytes(lo),
            u64::from_le_bytes(hi) ^ self.hash_key[1],
        ] {
            h = (h ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 32;
        (h as usize) & self.set_mask
    }
}

impl core::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wg::noise::test_support::TestRng;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn burst_of_five_then_twenty_per_second() {
        let t0 = Duration::from_secs(1000);
        let mut rl = RateLimiter::new(&mut TestRng::new(1));
        let src = v4(0xc000_0201);
        let allowed: Vec<bool> = (0..7).map(|_| rl.allow(src, t0)).collect();
        assert_eq!(allowed, [true, true, true, true, true, false, false]);

        // One token every 50 ms.
        assert!(!rl.allow(src, t0 + Duration::from_millis(49)));
        assert!(rl.allow(src, t0 + Duration::from_millis(50)));
        assert!(!rl.allow(src, t0 + Duration::from_millis(50)));

        // Offered every 10 ms for a further 10 s: 20 per second get through.
        let start = t0 + Duration::from_millis(50);
        let passed = (1..=1000)
            .filter(|i| rl.allow(src, start + Duration::from_millis(10 * i)))
            .count();
        assert_eq!(passed, 200);
    }

    #[test]
    fn idle_credit_is_capped_at_the_burst() {
        let t0 = Duration::from_secs(1000);
        let mut rl = RateLimiter::new(&mut TestRng::new(2));
        let src = v4(1);
        assert!(rl.allow(src, t0));
        let later = t0 + Duration::from_secs(3600);
        let passed = (0..20).filter(|_| rl.allow(src, later)).count();
        assert_eq!(passed, 5);
    }

    #[test]
    fn sources_are_limited_independently() {
        let t0 = Duration::from_secs(1000);
        let mut rl = RateLimiter::new(&mut TestRng::new(3));
        let (a, b) = (v4(0x0a00_0001), v4(0x0a00_0002));
        assert_eq!((0..10).filter(|_| rl.allow(a, t0)).count(), 5);
        assert_eq!((0..10).filter(|_| rl.allow(b, t0)).count(), 5);
        assert!(!rl.allow(a, t0));
        assert_eq!(rl.len(), 2);
    }

    #[test]
    fn ipv6_sources_share_a_bucket_per_slash_64() {
        let t0 = Duration::from_secs(1000);
        let mut rl = RateLimiter::new(&mut TestRng::new(4));
        let base = 0x2001_0db8_0000_0001_u128 << 64;
        let same_64 = |host: u128| IpAddr::V6(Ipv6Addr::from(base | host));
        assert_eq!(
            (0..5u128).filter(|&h| rl.allow(same_64(h + 1), t0)).count(),
            5
        );
        assert!(!rl.allow(same_64(0xffff), t0), "a new host in the same /64");
        let other_64 = IpAddr::V6(Ipv6Addr::from(base + (1u128 << 64)));
        assert!(rl.allow(other_64, t0));
        // An IPv4 address and its IPv6-mapped form are different sources.
        let ip = Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!((0..5).filter(|_| rl.allow(IpAddr::V4(ip), t0)).count(), 5);
        assert!(rl.allow(IpAddr::V6(ip.to_ipv6_mapped()), t0));
    }

    #[test]
    fn a_million_spoofed_sources_never_grow_the_table() {
        let t0 = Duration::from_secs(1000);
        let mut rl = RateLimiter::with_capacity(4096, &mut TestRng::new(5));
        let capacity = rl.capacity();
        assert_eq!(capacity, 4096);
        let mut allowed = 0;
        for i in 0..1_000_000u32 {
            // Distinct addresses (odd multiplier), spread over one second.
            let t = t0 + Duration::from_micros(u64::from(i));
            allowed += usize::from(rl.allow(v4(i.wrapping_mul(2_654_435_761)), t));
        }
        assert_eq!(allowed, 1_000_000, "each new source gets its first token");
        assert_eq!(rl.capacity(), capacity);
        assert!(rl.len() <= capacity);
        assert_eq!(
            rl.len(),
            capacity,
            "the flood fills, but only fills, the table"
        );
    }

    #[test]
    fn a_busy_source_is_not_evicted_by_idle_ones() {
        let t0 = Duration::from_secs(1000);
        // One set: every source competes for the same 8 slots.
        let mut rl = RateLimiter::with_capacity(WAYS, &mut TestRng::new(6));
        assert_eq!(rl.capacity(), WAYS);
        let busy = v4(77);
        for _ in 0..5 {
            rl.allow(busy, t0);
        }
        // Seven others arrive, then time passes; the busy source keeps
        // sending (and being refused), so it stays the most recent.
        for i in 0..7 {
            rl.allow(v4(1000 + i), t0);
        }
        let t1 = t0 + Duration::from_millis(10);
        assert!(!rl.allow(busy, t1));
        // A newcomer evicts the least recently seen of the seven, not the
        // busy source, whose bucket is still empty.
        assert!(rl.allow(v4(5000), t1));
        assert!(!rl.allow(busy, t1));
    }
}
