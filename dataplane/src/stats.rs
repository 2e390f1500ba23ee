//! Per-core counters: written by one worker without locks or atomic
//! read-modify-writes, read by the control thread at any time.
//!
//! Each counter has a single writer, so an increment is a relaxed load and a
//! relaxed store (plain `mov`s on x86), never a locked instruction. Readers
//! may see a value one burst old, which is what a rate display wants anyway.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Most ports one worker polls.
pub const MAX_PORTS: usize = 8;

/// Why a packet was dropped. One counter each, per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than its headers claim, or otherwise unparseable.
    Malformed,
    /// An EtherType this node does not forward (ARP, LLDP, ...).
    NotIp,
    /// TTL or hop limit would reach zero.
    TtlExceeded,
    /// No route (or no forwarding entry) for the packet's input port.
    NoRoute,
    /// The tx queue was full.
    TxFull,
    /// The ring to the control thread was full.
    PuntFull,
    /// A WireGuard message that failed its checks: malformed, unknown
    /// receiver index, or authentication failure.
    WgInvalid,
    /// A WireGuard transport message replayed or behind the window.
    WgReplay,
    /// A decrypted packet whose source is not in its peer's allowed IPs.
    WgCryptokeyMismatch,
    /// Encryption refused: keypair exhausted or no room in the buffer.
    WgEncapFailed,
    /// The ring to the worker that owns the packet's state was full.
    HandOffFull,
    /// Larger than the tunnel MTU, and no ICMP error could be sent (IPv4
    /// without Don't Fragment, or no LAN address to send it from).
    TooBig,
    /// The QoS class queue was full (tail drop, by packets or bytes).
    QosQueueFull,
    /// Dropped by CoDel in the QoS Bulk queue.
    QosCodel,
}

impl DropReason {
    /// The worker counter for a QoS scheduler's drop.
    pub fn from_qos(reason: crate::qos::DropReason) -> DropReason {
        match reason {
            crate::qos::DropReason::Codel => DropReason::QosCodel,
            _ => DropReason::QosQueueFull,
        }
    }

    pub const COUNT: usize = 14;
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Malformed,
        DropReason::NotIp,
        DropReason::TtlExceeded,
        DropReason::NoRoute,
        DropReason::TxFull,
        DropReason::PuntFull,
        DropReason::WgInvalid,
        DropReason::WgReplay,
        DropReason::WgCryptokeyMismatch,
        DropReason::WgEncapFailed,
        DropReason::HandOffFull,
        DropReason::TooBig,
        DropReason::QosQueueFull,
        DropReason::QosCodel,
    ];

    /// A stable snake_case name for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NotIp => "not_ip",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::NoRoute => "no_route",
            DropReason::TxFull => "tx_full",
            DropReason::PuntFull => "punt_full",
            DropReason::WgInvalid => "wg_invalid",
            DropReason::WgReplay => "wg_replay",
            DropReason::WgCryptokeyMismatch => "wg_cryptokey_mismatch",
            DropReason::WgEncapFailed => "wg_encap_failed",
            DropReason::HandOffFull => "handoff_full",
            DropReason::TooBig => "too_big",
            DropReason::QosQueueFull => "qos_queue_full",
            DropReason::QosCodel => "qos_codel",
        }
    }
}

/// A single-writer counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker may call this.
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline(always)]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// One port's traffic as seen by one worker.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
}

/// Everything one worker counts, on its own cache lines.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerCounters {
    pub ports: [PortCounters; MAX_PORTS],
    pub drops: [Counter; DropReason::COUNT],
    /// TSC cycles spent in loop iterations that received packets.
    pub busy_cycles: Counter,
    /// Packets handed to and received from the control thread.
    pub punted: Counter,
    pub injected: Counter,
    /// Packets handed to another worker.
    pub handed_off: Counter,
    /// Loop iterations, and those that received nothing.
    pub polls: Counter,
    pub idle_polls: Counter,
}

impl WorkerCounters {
    #[inline(always)]
    pub fn drop(&self, reason: DropReason, n: u64) {
        self.drops[reason as usize].add(n);
    }

    /// A consistent-enough copy for display and rates.
    pub fn snapshot(&self) -> WorkerSnapshot {
        let mut s = WorkerSnapshot::default();
        for (dst, src) in s.ports.iter_mut().zip(&self.ports) {
            *dst = PortSnapshot {
                rx_packets: src.rx_packets.get(),
                rx_bytes: src.rx_bytes.get(),
                tx_packets: src.tx_packets.get(),
                tx_bytes: src.tx_bytes.get(),
            };
        }
        for (dst, src) in s.drops.iter_mut().zip(&self.drops) {
            *dst = src.get();
        }
        s.busy_cycles = self.busy_cycles.get();
        s.punted = self.punted.get();
        s.injected = self.injected.get();
        s.handed_off = self.handed_off.get();
        s.polls = self.polls.get();
        s.idle_polls = self.idle_polls.get();
        s
    }
}

/// Plain copy of a [`PortCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PortSnapshot {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// Plain copy of a [`WorkerCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSnapshot {
    pub ports: [PortSnapshot; MAX_PORTS],
    pub drops: [u64; DropReason::COUNT],
    pub busy_cycles: u64,
    pub punted: u64,
    pub injected: u64,
    pub handed_off: u64,
    pub polls: u64,
    pub idle_polls: u64,
}

impl WorkerSnapshot {
    pub fn rx_packets(&self) -> u64 {
        self.ports.iter().map(|p| p.rx_packets).sum()
    }
    pub fn tx_packets(&self) -> u64 {
        self.ports.iter().map(|p| p.tx_packets).sum()
    }
    pub fn rx_bytes(&self) -> u64 {
        self.ports.iter().map(|p| p.rx_bytes).sum()
    }
    pub fn tx_bytes(&self) -> u64 {
        self.ports.iter().map(|p| p.tx_bytes).sum()
    }
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }
    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &WorkerSnapshot) -> WorkerSnapshot {
        let mut d = WorkerSnapshot::default();
        for ((dst, now), then) in d.ports.iter_mut().zip(&self.ports).zip(&earlier.ports) {
            *dst = PortSnapshot {
                rx_packets: now.rx_packets.wrapping_sub(then.rx_packets),
                rx_bytes: now.rx_bytes.wrapping_sub(then.rx_bytes),
                tx_packets: now.tx_packets.wrapping_sub(then.tx_packets),
                tx_bytes: now.tx_bytes.wrapping_sub(then.tx_bytes),
            };
        }
        for ((dst, now), then) in d.drops.iter_mut().zip(&self.drops).zip(&earlier.drops) {
            *dst = now.wrapping_sub(*then);
        }
        d.busy_cycles = self.busy_cycles.wrapping_sub(earlier.busy_cycles);
        d.punted = self.punted.wrapping_sub(earlier.punted);
        d.injected = self.injected.wrapping_sub(earlier.injected);
        d.handed_off = self.handed_off.wrapping_sub(earlier.handed_off);
        d.polls = self.polls.wrapping_sub(earlier.polls);
        d.idle_polls = self.idle_polls.wrapping_sub(earlier.idle_polls);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_accumulate_and_snapshot() {
        let c = WorkerCounters::default();
        c.ports[1].rx_packets.add(3);
        c.ports[1].rx_packets.add(4);
        c.ports[0].tx_bytes.add(100);
        c.drop(DropReason::TtlExceeded, 2);
        let s = c.snapshot();
        assert_eq!(s.rx_packets(), 7);
        assert_eq!(s.tx_bytes(), 100);
        assert_eq!(s.drop_count(DropReason::TtlExceeded), 2);
        assert_eq!(s.dropped(), 2);
    }

    #[test]
    fn since_gives_the_difference() {
        let c = WorkerCounters::default();
        c.ports[0].rx_packets.add(10);
        let before = c.snapshot();
        c.ports[0].rx_packets.add(5);
        c.drop(DropReason::NotIp, 1);
        let d = c.snapshot().since(&before);
        assert_eq!(d.rx_packets(), 5);
        assert_eq!(d.drop_count(DropReason::NotIp), 1);
    }

    #[test]
    fn worker_counters_start_on_a_cache_line() {
        assert_eq!(core::mem::align_of::<WorkerCounters>(), 64);
    }

    #[test]
    fn drop_reason_names_are_unique_and_indexed_in_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
