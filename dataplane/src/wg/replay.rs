//! The anti-replay window of a WireGuard receiving key: which transport data
//! counters may still be accepted (whitepaper §5.4.6, using the bitmap ring of
//! RFC 6479 §2).
//!
//! The window is a fixed ring of [`BLOCKS`] 64-bit blocks: no allocation,
//! O(1) per packet, and sliding the window forward only zeroes the blocks it
//! passes over (at most the whole ring) instead of shifting a bitmap. The
//! ring keeps one block more than [`ReplayWindow::WINDOW`] needs so that the
//! block holding the newest counter never aliases the oldest one still in
//! the window.
//!
//! The data path checks a counter with [`ReplayWindow::check`] *before*
//! decrypting, so forged or replayed packets cost no AEAD work, and marks it
//! with [`ReplayWindow::update`] only *after* the tag verified, so a forged
//! packet cannot advance the window and make genuine ones look too old.

/// Counters at or above this value are never accepted: a key must be
/// retired before its nonce space runs out (whitepaper §6.1,
/// `REJECT-AFTER-MESSAGES` = 2^64 − 2^13 − 1).
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);

const BLOCK_BITS: u64 = u64::BITS as u64;
/// Blocks in the ring: the window plus one block of slack (RFC 6479 §2).
pub const BLOCKS: usize = 33;

/// Tracks the counters received under one key (whitepaper §5.4.6).
///
/// A counter is accepted if it is below [`REJECT_AFTER_MESSAGES`], has not
/// been accepted before, and is at most [`ReplayWindow::WINDOW`] below the
/// highest counter accepted so far (the same rule as wireguard-go and the
/// Linux driver). Counter 0 is accepted on a fresh window.
///
/// `repr(C)`: `last`, which every check reads, comes first, next to
/// whatever precedes the window (see `RecvSession`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct ReplayWindow {
    /// Highest counter accepted so far (0 on a fresh window, whose bit 0 is
    /// still clear, so 0 itself is accepted once).
    last: u64,
    ring: [u64; BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// How far below the highest accepted counter a late packet may be and
    /// still be accepted (if not seen before). Reordering deeper than this
    /// is treated as a replay.
    pub const WINDOW: u64 = (BLOCKS as u64 - 1) * BLOCK_BITS;

    pub const fn new() -> Self {
        Self {
            last: 0,
            ring: [0; BLOCKS],
        }
    }

    /// Would `counter` be accepted? Does not change the window.
    pub fn check(&self, counter: u64) -> bool {
        if counter >= REJECT_AFTER_MESSAGES {
            return false;
        }
        if counter > self.last {
            return true;
        }
        if self.last - counter > Self::WINDOW {
            return false;
        }
        let (block, bit) = Self::position(counter);
        self.ring[block] & bit == 0
    }

    /// Accepts `counter` and marks it seen. Returns false, leaving the window
    /// unchanged, if it is a replay, too old, or at/after
    /// [`REJECT_AFTER_MESSAGES`]. Call only once the packet authenticated.
    pub fn update(&mut self, counter: u64) -> bool {
        if counter >= REJECT_AFTER_MESSAGES {
            return false;
        }
        if counter > self.last {
            // Slide forward: the blocks between the old head and the new one
            // hold counters that are now out of the window or not yet seen.
            let current = self.last / BLOCK_BITS;
            let target = counter / BLOCK_BITS;
            let clear = (target - current).min(BLOCKS as u64);
            for i in 1..=clear {
                self.ring[((current + i) % BLOCKS as u64) as usize] = 0;
            }
            self.last = counter;
        } else if self.last - counter > Self::WINDOW {
            return false;
        }
        let (block, bit) = Self::position(counter);
        let seen = self.ring[block] & bit != 0;
        self.ring[block] |= bit;
        !seen
    }

    /// The highest counter accepted so far (0 on a fresh window).
    pub fn last(&self) -> u64 {
        self.last
    }

    fn position(counter: u64) -> (usize, u64) {
        let block = ((counter / BLOCK_BITS) % BLOCKS as u64) as usize;
        (block, 1u64 << (counter % BLOCK_BITS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const W: u64 = ReplayWindow::WINDOW;

    /// splitmix64: a dependency-free deterministic generator for the tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn window_is_at_least_2048() {
        assert_eq!(W, 2048);
        // The ring is fixed-size: 33 blocks plus the head counter.
        assert_eq!(std::mem::size_of::<ReplayWindow>(), 8 * (BLOCKS + 1));
    }

    #[test]
    fn reject_after_messages_matches_whitepaper() {
        assert_eq!(
            u128::from(REJECT_AFTER_MESSAGES),
            (1u128 << 64) - (1 << 13) - 1
        );
    }

    #[test]
    fn accepts_in_order_counters_once() {
        let mut w = ReplayWindow::new();
        for c in 0..10_000 {
            assert!(w.check(c), "check {c}");
            assert!(w.update(c), "update {c}");
            assert!(!w.check(c), "recheck {c}");
            assert!(!w.update(c), "replay {c}");
        }
        assert_eq!(w.last(), 9_999);
    }

    #[test]
    fn counter_zero_is_accepted_once_on_a_fresh_window() {
        let mut w = ReplayWindow::new();
        assert!(w.check(0));
        assert!(w.update(0));
        assert!(!w.check(0));
        assert!(!w.update(0));
        assert!(w.update(1));
    }

    #[test]
    fn counter_zero_accepted_late_after_higher_counters() {
        let mut w = ReplayWindow::new();
        assert!(w.update(5));
        assert!(w.update(0));
        assert!(!w.update(0));
    }

    #[test]
    fn accepts_out_of_order_within_the_window() {
        let mut w = ReplayWindow::new();
        assert!(w.update(1000));
        for c in (0..1000).rev().step_by(7) {
            assert!(w.update(c), "late {c}");
        }
        for c in (0..1000).rev().step_by(7) {
            assert!(!w.update(c), "replayed late {c}");
        }
        // 998 was skipped by the stride: still fresh.
        assert!(w.update(998));
        assert_eq!(w.last(), 1000);
    }

    #[test]
    fn window_edge_accepted_and_one_beyond_rejected() {
        let mut w = ReplayWindow::new();
        let head = 10_000;
        assert!(w.update(head));
        assert!(!w.check(head - W - 1), "one beyond the edge");
        assert!(!w.update(head - W - 1));
        assert!(w.check(head - W), "exactly at the edge");
        assert!(w.update(head - W));
        assert!(!w.update(head - W));
        // Every counter inside the window is still fresh.
        for c in head - W + 1..head {
            assert!(w.check(c), "inside {c}");
        }
    }

    #[test]
    fn edge_holds_at_every_block_alignment() {
        for head in [W, W + 1, W + 63, W + 64, 50 * 64 - 1, 100_000, 100_031] {
            let mut w = ReplayWindow::new();
            assert!(w.update(head));
            assert!(w.check(head - W), "head {head}: edge");
            if head > W {
                assert!(!w.check(head - W - 1), "head {head}: beyond");
            }
        }
    }

    #[test]
    fn duplicates_rejected_after_window_slides_a_little() {
        let mut w = ReplayWindow::new();
        for c in 0..100 {
            assert!(w.update(c));
        }
        assert!(w.update(100 + W / 2));
        for c in 0..100 {
            assert!(!w.check(c), "still remembered {c}");
            assert!(!w.update(c));
        }
    }

    #[test]
    fn big_jump_forward_clears_stale_blocks() {
        let mut w = ReplayWindow::new();
        for c in 0..(BLOCKS as u64 * 64) {
            assert!(w.update(c));
        }
        // Jump far ahead: every block aliasing the new window must be fresh.
        let head = 1_000_000;
        assert!(w.update(head));
        for c in head - W..head {
            assert!(w.check(c), "fresh {c}");
        }
        assert!(!w.check(head));
        // A jump of exactly one ring length is cleared too.
        let mut w = ReplayWindow::new();
        for c in 0..200 {
            assert!(w.update(c));
        }
        let head = 199 + BLOCKS as u64 * 64;
        assert!(w.update(head));
        for c in head - W..head {
            assert!(w.check(c), "fresh after ring-length jump {c}");
        }
    }

    #[test]
    fn old_counters_rejected_after_jump() {
        let mut w = ReplayWindow::new();
        assert!(w.update(3));
        assert!(w.update(3 + W + 1));
        assert!(!w.update(3));
        assert!(!w.update(2));
        assert!(w.update(4));
    }

    #[test]
    fn huge_counters_up_to_the_reject_limit() {
        let mut w = ReplayWindow::new();
        let top = REJECT_AFTER_MESSAGES - 1;
        assert!(w.update(top - 10));
        assert!(w.update(top));
        assert!(!w.update(top));
        assert!(w.update(top - 5));
        assert!(!w.check(REJECT_AFTER_MESSAGES));
        assert!(!w.update(REJECT_AFTER_MESSAGES));
        assert!(!w.update(u64::MAX));
        assert!(!w.check(u64::MAX));
        assert_eq!(w.last(), top);
        // The rejected counters did not move the window.
        assert!(w.check(top - W));
    }

    #[test]
    fn check_does_not_mark() {
        let mut w = ReplayWindow::new();
        assert!(w.check(7));
        assert!(w.check(7));
        assert_eq!(w, ReplayWindow::new());
        assert!(w.update(7));
    }

    /// The rule, stated directly: a set of seen counters and the maximum.
    struct Oracle {
        seen: BTreeSet<u64>,
        max: u64,
    }

    impl Oracle {
        fn check(&self, c: u64) -> bool {
            c < REJECT_AFTER_MESSAGES
                && !self.seen.contains(&c)
                && (c > self.max || self.max - c <= W)
        }
        fn update(&mut self, c: u64) -> bool {
            if !self.check(c) {
                return false;
            }
            self.seen.insert(c);
            self.max = self.max.max(c);
            // Forget what the window rule rejects anyway, to keep the set small.
            if self.max > W + 1 {
                let floor = self.max - W - 1;
                self.seen = self.seen.split_off(&floor);
            }
            true
        }
    }

    #[test]
    fn matches_reference_model_over_random_operations() {
        let mut rng = Rng(0x5eed_1234);
        let mut w = ReplayWindow::new();
        let mut o = Oracle {
            seen: BTreeSet::new(),
            max: 0,
        };
        let mut accepted = 0u32;
        for i in 0..100_000 {
            let head = o.max;
            let c = match rng.below(16) {
                // Mostly a little ahead, as on a healthy path.
                0..=5 => head + rng.below(8),
                // Reordered within and around the window edge.
                6..=9 => head.saturating_sub(rng.below(W + 130)),
                // Exactly at and beyond the edge.
                10 => head.saturating_sub(W + rng.below(2)),
                // Duplicates of recent counters.
                11 | 12 => head.saturating_sub(rng.below(64)),
                // Jumps forward, small and large.
                13 => head + rng.below(5 * W),
                14 => head + rng.below(1 << 20),
                // Near and past the reject limit, rarely.
                _ if rng.below(64) == 0 => REJECT_AFTER_MESSAGES - 3 + rng.below(6),
                _ => rng.below(head + 1),
            };
            assert_eq!(w.check(c), o.check(c), "op {i}: check {c} (head {head})");
            let got = w.update(c);
            assert_eq!(got, o.update(c), "op {i}: update {c} (head {head})");
            accepted += u32::from(got);
            assert_eq!(w.last(), o.max, "op {i}");
            // Rarely start a new session, as after a rekey.
            if o.max >= REJECT_AFTER_MESSAGES - 3 || rng.below(20_000) == 0 {
                w = ReplayWindow::new();
                o = Oracle {
                    seen: BTreeSet::new(),
                    max: 0,
                };
            }
        }
        // The mix exercised both outcomes substantially.
        assert!(
            accepted > 20_000 && accepted < 90_000,
            "accepted {accepted}"
        );
    }
}
