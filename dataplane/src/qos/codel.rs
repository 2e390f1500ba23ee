//! CoDel, Controlled Delay active queue management (RFC 8289), for the
//! classes that enable it (Bulk by default when enabled).
//!
//! This follows the pseudocode of RFC 8289 section 5: a packet whose
//! sojourn time stayed above `target` for a whole `interval` starts a
//! dropping state, in which the next drop comes `interval / sqrt(count)`
//! later (section 4.2's control law) until the sojourn time falls below
//! `target` again. The square roots come from a table built at
//! construction, so the per-packet path has no floating point and no
//! division. Times are in ticks of the caller's clock.

use super::queue::{PacketQueue, Slot};

/// CoDel's two parameters (RFC 8289 section 4.3 and 4.4 defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodelConfig {
    /// Acceptable standing queue delay, in microseconds (default 5 ms).
    pub target_us: u32,
    /// Sliding window of the minimum delay, in microseconds (default 100 ms,
    /// a worst-case round-trip time).
    pub interval_us: u32,
}

impl Default for CodelConfig {
    fn default() -> Self {
        CodelConfig {
            target_us: 5_000,
            interval_us: 100_000,
        }
    }
}

/// Entries of the `interval / sqrt(count)` table; larger counts are reduced
/// with sqrt(4n) = 2 sqrt(n).
const TABLE: usize = 256;

#[derive(Debug, Clone)]
pub(crate) struct Codel {
    target: u64,
    interval: u64,
    /// `interval / sqrt(n)` in ticks, for n in 1..TABLE (index 0 unused).
    spacing: Box<[u64; TABLE]>,
    first_above_time: Option<u64>,
    drop_next: u64,
    count: u32,
    lastcount: u32,
    dropping: bool,
    /// The largest packet seen: a queue holding less than one of those is
    /// not a standing queue (section 5.3's `maxpacket`).
    max_packet: u32,
}

impl Codel {
    pub fn new(config: CodelConfig, ticks_per_second: u64) -> Codel {
        let ticks = |us: u32| (u128::from(us) * u128::from(ticks_per_second) / 1_000_000) as u64;
        let interval = ticks(config.interval_us).max(1);
        let mut spacing = Box::new([0u64; TABLE]);
        for (n, s) in spacing.iter_mut().enumerate().skip(1) {
            // Construction only: the per-packet path reads the table.
            *s = ((interval as f64) / (n as f64).sqrt()) as u64;
        }
        spacing[0] = interval;
        Codel {
            target: ticks(config.target_us),
            interval,
            spacing,
            first_above_time: None,
            drop_next: 0,
            count: 0,
            lastcount: 0,
            dropping: false,
            max_packet: 0,
        }
    }

    /// `interval / sqrt(count)` from the table.
    #[inline]
    fn spacing(&self, count: u32) -> u64 {
        let (mut n, mut shift) = (count.max(1), 0u32);
        while n as usize >= TABLE {
            n >>= 2;
            shift += 1;
        }
        self.spacing.get(n as usize).copied().unwrap_or(1) >> shift
    }

    #[inline]
    fn control_law(&self, t: u64, count: u32) -> u64 {
        t.saturating_add(self.spacing(count).max(1))
    }

    /// Section 5.4's `dodequeue`: pops the head and says whether its delay
    /// has been above target for at least an interval.
    #[inline]
    fn dodequeue<P>(&mut self, now: u64, q: &mut PacketQueue<P>) -> (Option<Slot<P>>, bool) {
        let Some(slot) = q.pop() else {
            self.first_above_time = None;
            return (None, false);
        };
        self.max_packet = self.max_packet.max(slot.len);
        let sojourn = now.saturating_sub(slot.at);
        if sojourn < self.target || q.bytes() <= u64::from(self.max_packet) {
            self.first_above_time = None;
            return (Some(slot), false);
        }
        match self.first_above_time {
            None => {
                self.first_above_time = Some(now.saturating_add(self.interval));
                (Some(slot), false)
            }
            Some(t) => (Some(slot), now >= t),
        }
    }

    /// Section 5.5's `dequeue`: the packet to send, if any, after handing
    /// the ones CoDel drops to `dropped`.
    #[inline]
    pub fn dequeue<P>(
        &mut self,
        now: u64,
        q: &mut PacketQueue<P>,
        mut dropped: impl FnMut(Slot<P>),
    ) -> Option<Slot<P>> {
        let (mut slot, mut ok_to_drop) = self.dodequeue(now, q);
        if slot.is_none() {
            self.dropping = false;
            return None;
        }
        if self.dropping {
            if !ok_to_drop {
                self.dropping = false;
            }
            while self.dropping && now >= self.drop_next {
                if let Some(s) = slot.take() {
                    dropped(s);
                }
                self.count = self.count.saturating_add(1);
                (slot, ok_to_drop) = self.dodequeue(now, q);
                if !ok_to_drop {
                    self.dropping = false;
                } else {
                    self.drop_next = self.control_law(self.drop_next, self.count);
                }
            }
        } else if ok_to_drop {
            if let Some(s) = slot.take() {
                dropped(s);
            }
            (slot, _) = self.dodequeue(now, q);
            self.dropping = true;
            // Resume near the previous drop rate if we were dropping recently.
            let delta = self.count.wrapping_sub(self.lastcount);
            self.count = 1;
            if delta > 1 && now.saturating_sub(self.drop_next) < 16 * self.interval {
                self.count = delta;
            }
            self.drop_next = self.control_law(now, self.count);
            self.lastcount = self.count;
        }
        slot
    }

    #[cfg(test)]
    pub fn is_dropping(&self) -> bool {
        self.dropping
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000; // ticks at 1 GHz

    #[test]
    fn spacing_follows_interval_over_sqrt_count() {
        let c = Codel::new(CodelConfig::default(), 1_000_000_000);
        assert_eq!(c.spacing(1), 100 * MS);
        assert_eq!(c.spacing(4), 50 * MS);
        assert_eq!(c.spacing(100), 10 * MS);
        // Beyond the table: sqrt(1024) = 32.
        assert_eq!(c.spacing(1024), 100 * MS / 32);
        assert_eq!(c.spacing(u32::MAX), c.spacing(u32::MAX));
    }

    /// A queue served every 1 ms while 2 packets arrive per ms: the delay
    /// grows without bound unless CoDel drops.
    #[test]
    fn drops_start_after_an_interval_above_target_and_accelerate() {
        let mut c = Codel::new(CodelConfig::default(), 1_000_000_000);
        let mut q = PacketQueue::new(100_000);
        let mut drops = Vec::new();
        let mut pkt = 0u32;
        for ms in 0..1_000u64 {
            for _ in 0..2 {
                q.push(Slot {
                    pkt,
                    len: 1000,
                    at: ms * MS,
                })
                .unwrap();
                pkt += 1;
            }
            let now = ms * MS;
            let _ = c.dequeue(now, &mut q, |_| drops.push(now));
        }
        // Delay passes 5 ms after ~5 ms of overload, then a full interval
        // passes before the first drop.
        let first = drops[0];
        assert!(
            (100 * MS..=115 * MS).contains(&first),
            "first drop at {first}"
        );
        assert!(c.is_dropping());
        // The gaps shrink as interval / sqrt(count).
        let gap = |i: usize| drops[i + 1] - drops[i];
        assert!(gap(0) >= 99 * MS && gap(0) <= 101 * MS, "{}", gap(0));
        assert!(gap(5) < gap(1));
    }

    #[test]
    fn leaves_the_dropping_state_when_delay_falls_below_target() {
        let mut c = Codel::new(CodelConfig::default(), 1_000_000_000);
        let mut q = PacketQueue::new(10_000);
        // A standing queue of 20 ms for 300 ms: CoDel drops.
        let mut dropped = 0;
        for ms in 0..300u64 {
            q.push(Slot {
                pkt: 0u32,
                len: 1000,
                at: ms * MS - ms.min(20) * MS,
            })
            .unwrap();
            q.push(Slot {
                pkt: 0u32,
                len: 1000,
                at: ms * MS - ms.min(20) * MS,
            })
            .unwrap();
            let _ = c.dequeue(ms * MS, &mut q, |_| dropped += 1);
        }
        assert!(dropped > 0 && c.is_dropping());
        // Then fresh packets only: the state ends and nothing more is dropped.
        while q.pop().is_some() {}
        let before = dropped;
        for ms in 300..400u64 {
            q.push(Slot {
                pkt: 0,
                len: 1000,
                at: ms * MS,
            })
            .unwrap();
            q.push(Slot {
                pkt: 0,
                len: 1000,
                at: ms * MS,
            })
            .unwrap();
            let _ = c.dequeue(ms * MS + 1000, &mut q, |_| dropped += 1);
            let _ = c.dequeue(ms * MS + 2000, &mut q, |_| dropped += 1);
        }
        assert_eq!(dropped, before);
        assert!(!c.is_dropping());
    }
}
