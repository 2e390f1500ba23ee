//! The scheduler's per-class counters: packets and bytes enqueued, sent and
//! dropped by reason, the queue depth, and a histogram of queueing delay.
//!
//! Like [`crate::stats`], each counter has one writer (the worker that owns
//! the scheduler), so an update is a relaxed load and store, never a locked
//! instruction, and the control thread reads them at any time through the
//! shared [`QosCounters`]. Bytes are the caller's packet lengths (without
//! the per-packet overhead the shaper charges).

use super::class::QosClass;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why the scheduler dropped a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// The class queue held its limit in packets (tail drop).
    QueueFullPackets = 0,
    /// The class queue held its limit in bytes (tail drop).
    QueueFullBytes,
    /// CoDel dropped it at the head (RFC 8289).
    Codel,
}

impl DropReason {
    pub const COUNT: usize = 3;
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::QueueFullPackets,
        DropReason::QueueFullBytes,
        DropReason::Codel,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            DropReason::QueueFullPackets => "queue_full_packets",
            DropReason::QueueFullBytes => "queue_full_bytes",
            DropReason::Codel => "codel",
        }
    }
}

/// Buckets of the delay histogram: bucket 0 is below 1024 ns, bucket `i`
/// covers `[2^(9+i), 2^(10+i))` ns, and the last one everything from
/// 2^32 ns (4.3 s) up.
pub const DELAY_BUCKETS: usize = 24;

/// The bucket of a delay in nanoseconds.
#[inline(always)]
pub fn delay_bucket(ns: u64) -> usize {
    if ns < 1024 {
        0
    } else {
        ((63 - ns.leading_zeros()) as usize - 9).min(DELAY_BUCKETS - 1)
    }
}

/// The exclusive upper bound of bucket `i` in nanoseconds (`u64::MAX` for
/// the last one).
pub const fn delay_bucket_upper_ns(i: usize) -> u64 {
    if i + 1 >= DELAY_BUCKETS {
        u64::MAX
    } else {
        1u64 << (10 + i)
    }
}

#[inline(always)]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// One class's counters.
#[derive(Debug, Default)]
pub struct ClassCounters {
    pub enqueued_packets: AtomicU64,
    pub enqueued_bytes: AtomicU64,
    pub sent_packets: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub dropped_packets: [AtomicU64; DropReason::COUNT],
    pub dropped_bytes: [AtomicU64; DropReason::COUNT],
    pub depth_packets: AtomicU64,
    pub depth_bytes: AtomicU64,
    pub delay: [AtomicU64; DELAY_BUCKETS],
}

impl ClassCounters {
    #[inline(always)]
    pub(crate) fn enqueued(&self, bytes: u32, depth_packets: usize, depth_bytes: u64) {
        bump(&self.enqueued_packets, 1);
        bump(&self.enqueued_bytes, u64::from(bytes));
        self.set_depth(depth_packets, depth_bytes);
    }

    #[inline(always)]
    pub(crate) fn sent(&self, bytes: u32, delay_ns: u64) {
        bump(&self.sent_packets, 1);
        bump(&self.sent_bytes, u64::from(bytes));
        if let Some(b) = self.delay.get(delay_bucket(delay_ns)) {
            bump(b, 1);
        }
    }

    #[inline(always)]
    pub(crate) fn dropped(&self, reason: DropReason, bytes: u32) {
        bump(&self.dropped_packets[reason as usize], 1);
        bump(&self.dropped_bytes[reason as usize], u64::from(bytes));
    }

    #[inline(always)]
    pub(crate) fn set_depth(&self, packets: usize, bytes: u64) {
        self.depth_packets.store(packets as u64, Relaxed);
        self.depth_bytes.store(bytes, Relaxed);
    }

    pub fn snapshot(&self, class: QosClass) -> ClassSnapshot {
        fn load(dst: &mut [u64], src: &[AtomicU64]) {
            for (d, c) in dst.iter_mut().zip(src) {
                *d = c.load(Relaxed);
            }
        }
        let mut s = ClassSnapshot {
            class,
            enqueued_packets: self.enqueued_packets.load(Relaxed),
            enqueued_bytes: self.enqueued_bytes.load(Relaxed),
            sent_packets: self.sent_packets.load(Relaxed),
            sent_bytes: self.sent_bytes.load(Relaxed),
            depth_packets: self.depth_packets.load(Relaxed),
            depth_bytes: self.depth_bytes.load(Relaxed),
            ..ClassSnapshot::empty(class)
        };
        load(&mut s.dropped_packets, &self.dropped_packets);
        load(&mut s.dropped_bytes, &self.dropped_bytes);
        load(&mut s.delay_histogram, &self.delay);
        s
    }
}

/// Every class's counters for one scheduler (one worker, one WAN port).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct QosCounters {
    pub classes: [ClassCounters; QosClass::COUNT],
}

impl QosCounters {
    #[inline(always)]
    pub(crate) fn class(&self, class: QosClass) -> &ClassCounters {
        &self.classes[class as usize]
    }

    /// A consistent-enough copy for display and rates (not for the data path).
    pub fn snapshot(&self) -> QosSnapshot {
        QosSnapshot {
            classes: QosClass::ALL.map(|c| self.class(c).snapshot(c)),
        }
    }
}

/// Plain copy of one [`ClassCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassSnapshot {
    pub class: QosClass,
    pub enqueued_packets: u64,
    pub enqueued_bytes: u64,
    pub sent_packets: u64,
    pub sent_bytes: u64,
    /// By [`DropReason`].
    pub dropped_packets: [u64; DropReason::COUNT],
    pub dropped_bytes: [u64; DropReason::COUNT],
    pub depth_packets: u64,
    pub depth_bytes: u64,
    /// Packets sent, by queueing delay (see [`DELAY_BUCKETS`]).
    pub delay_histogram: [u64; DELAY_BUCKETS],
}

impl ClassSnapshot {
    pub const fn empty(class: QosClass) -> ClassSnapshot {
        ClassSnapshot {
            class,
            enqueued_packets: 0,
            enqueued_bytes: 0,
            sent_packets: 0,
            sent_bytes: 0,
            dropped_packets: [0; DropReason::COUNT],
            dropped_bytes: [0; DropReason::COUNT],
            depth_packets: 0,
            depth_bytes: 0,
            delay_histogram: [0; DELAY_BUCKETS],
        }
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped_packets[reason as usize]
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped_packets.iter().sum()
    }

    /// An upper bound of the `p`-th percentile (0..=100) of the queueing
    /// delay in ns: the upper edge of the bucket holding it. None before
    /// anything was sent.
    pub fn delay_percentile_ns(&self, p: u32) -> Option<u64> {
        let total: u64 = self.delay_histogram.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (u128::from(total) * u128::from(p.min(100)))
            .div_ceil(100)
            .max(1) as u64;
        let mut seen = 0;
        for (i, n) in self.delay_histogram.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(delay_bucket_upper_ns(i));
            }
        }
        Some(u64::MAX)
    }
}

/// Plain copy of a [`QosCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QosSnapshot {
    pub classes: [ClassSnapshot; QosClass::COUNT],
}

impl QosSnapshot {
    pub fn class(&self, class: QosClass) -> &ClassSnapshot {
        &self.classes[class as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_buckets_are_log2_of_nanoseconds() {
        assert_eq!(delay_bucket(0), 0);
        assert_eq!(delay_bucket(1023), 0);
        assert_eq!(delay_bucket(1024), 1);
        assert_eq!(delay_bucket(2047), 1);
        assert_eq!(delay_bucket(2048), 2);
        assert_eq!(delay_bucket(u64::MAX), DELAY_BUCKETS - 1);
        for i in 0..DELAY_BUCKETS - 1 {
            assert_eq!(delay_bucket(delay_bucket_upper_ns(i) - 1), i);
            assert_eq!(delay_bucket(delay_bucket_upper_ns(i)), i + 1);
        }
    }

    #[test]
    fn percentile_reports_the_upper_edge_of_its_bucket() {
        let c = ClassCounters::default();
        for _ in 0..90 {
            c.sent(100, 500);
        }
        for _ in 0..10 {
            c.sent(100, 5_000);
        }
        let s = c.snapshot(QosClass::Bulk);
        assert_eq!(s.sent_packets, 100);
        assert_eq!(s.sent_bytes, 10_000);
        assert_eq!(s.delay_percentile_ns(50), Some(1024));
        assert_eq!(s.delay_percentile_ns(90), Some(1024));
        assert_eq!(s.delay_percentile_ns(99), Some(8192));
    }
}
