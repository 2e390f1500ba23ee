//! The egress scheduler of one worker on one WAN port: a queue per class,
//! limited in packets and in bytes; a token bucket for the port's rate and
//! one for each class's ceiling; strict priority for RealTime under its
//! ceiling (the starvation guard); deficit round robin between the other
//! classes by weight (Shreedhar & Varghese, "Efficient Fair Queuing using
//! Deficit Round Robin", SIGCOMM 1995); tail drop, or CoDel (RFC 8289) on
//! the classes that enable it.
//!
//! Choosing a packet and paying for it are separate: [`Scheduler::dequeue`]
//! picks by priority and DRR among the classes whose ceiling admits their
//! head, then sends it only if the port bucket admits it too, and commits
//! the DRR state only then. So what leaves next never depends on which
//! packet happens to fit the port's tokens (small packets do not jump the
//! queue), and a class held back by its ceiling lends its turn to the others
//! (work-conserving between classes, hard ceilings per class, like HTB's
//! `ceil`).
//!
//! Sans-I/O: time is TSC ticks passed in, the packet handle `P` is opaque
//! (an `Mbuf` in the worker, a small struct in tests) and the caller gives
//! its length. The queues are rings allocated at construction; nothing on
//! the per-packet path allocates, divides, uses floating point or panics.

use super::class::QosClass;
use super::codel::{Codel, CodelConfig};
use super::queue::{PacketQueue, Slot};
use super::stats::{DropReason, QosCounters, QosSnapshot};
use super::token_bucket::{BucketError, TokenBucket};
use std::sync::Arc;

/// Default DRR quantum per unit of weight, in (wire) bytes: at least one
/// full-size frame, so every visit to a backlogged class sends something.
pub const DEFAULT_QUANTUM_BYTES: u32 = 1600;
/// The smallest accepted quantum (DRR stays O(1) with any quantum because
/// silent rounds are skipped in one step, but tiny ones are a config slip).
pub const MIN_QUANTUM_BYTES: u32 = 64;
/// Largest DRR weight.
pub const MAX_WEIGHT: u32 = 1000;

/// The DRR classes in round order.
const DRR_FIRST: usize = QosClass::Interactive as usize;
const DRR_LAST: usize = QosClass::Bulk as usize;
const DRR_CLASSES: usize = DRR_LAST - DRR_FIRST + 1;
const RT: usize = QosClass::RealTime as usize;

/// One class's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassConfig {
    /// DRR weight (1..=1000): a backlogged class's share of what the
    /// others leave is weight / sum of backlogged weights. Ignored for
    /// RealTime, which has strict priority.
    pub weight: u32,
    /// The class's ceiling, in thousandths of the port rate (1..=1000); it
    /// follows the port rate when that changes. 1000 is no ceiling. For
    /// RealTime this is the starvation guard.
    pub ceiling_permille: u32,
    /// Burst of the ceiling's bucket, in bytes.
    pub ceiling_burst_bytes: u32,
    /// Queue limit in packets (the ring's size) and in bytes; arrivals
    /// beyond either are tail-dropped.
    pub queue_packets: u32,
    pub queue_bytes: u32,
    /// CoDel instead of tail drop alone (not for RealTime).
    pub codel: Option<CodelConfig>,
}

/// One scheduler's configuration (one worker, one WAN port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// The clock of `now`: TSC ticks per second.
    pub ticks_per_second: u64,
    /// The port's rate (this worker's share of it), bits per second of
    /// wire bytes (length + `overhead_bytes`).
    pub rate_bps: u64,
    /// The port bucket's size in bytes.
    pub burst_bytes: u32,
    /// Added to every packet's length when charging the buckets and DRR:
    /// 24 counts Ethernet's preamble, SFD, FCS and gap (line rate); an
    /// upstream link's encapsulation, for instance.
    pub overhead_bytes: u32,
    /// DRR quantum per unit of weight, in wire bytes.
    pub quantum_bytes: u32,
    /// Indexed by `QosClass as usize`.
    pub classes: [ClassConfig; QosClass::COUNT],
}

impl SchedulerConfig {
    /// The defaults at `rate_bps`: a burst of 1 ms of the rate (at least
    /// two 1514-byte frames); RealTime capped at a third of the rate (the
    /// usual priority-queue limit); DRR weights Interactive 4, Streaming 3,
    /// Standard 2, Bulk 1; tail drop everywhere.
    pub fn new(ticks_per_second: u64, rate_bps: u64) -> SchedulerConfig {
        let burst = (rate_bps / 8 / 1000).clamp(2 * 1514, 16 << 20) as u32;
        let class = |weight, ceiling_permille, queue_packets: u32| ClassConfig {
            weight,
            ceiling_permille,
            ceiling_burst_bytes: burst,
            queue_packets,
            queue_bytes: queue_packets.saturating_mul(1024),
            codel: None,
        };
        SchedulerConfig {
            ticks_per_second,
            rate_bps,
            burst_bytes: burst,
            overhead_bytes: 0,
            quantum_bytes: DEFAULT_QUANTUM_BYTES,
            classes: [
                class(1, 333, 128),
                class(4, 1000, 256),
                class(3, 1000, 1024),
                class(2, 1000, 1024),
                class(1, 1000, 1024),
            ],
        }
    }

    pub fn class(&mut self, class: QosClass) -> &mut ClassConfig {
        &mut self.classes[class as usize]
    }
}

/// The longest class queue, in packets: its ring is allocated when the
/// scheduler is built, so a config must not ask for gigabytes.
pub const MAX_QUEUE_PACKETS: u32 = 1 << 20;

/// Why a configuration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    Bucket(BucketError),
    /// A DRR weight outside 1..=1000.
    Weight(QosClass),
    /// A ceiling outside 1..=1000 permille.
    Ceiling(QosClass),
    /// A queue limit of 0 packets or 0 bytes, or above
    /// [`MAX_QUEUE_PACKETS`] packets (the ring is allocated up front).
    QueueLimit(QosClass),
    /// CoDel on RealTime.
    Codel(QosClass),
    /// A quantum below [`MIN_QUANTUM_BYTES`] or above 1 MiB.
    Quantum,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::Bucket(e) => write!(f, "qos: {e}"),
            ConfigError::Weight(c) => {
                write!(f, "qos: {}: weight must be 1..={MAX_WEIGHT}", c.name())
            }
            ConfigError::Ceiling(c) => {
                write!(f, "qos: {}: ceiling must be 1..=1000 permille", c.name())
            }
            ConfigError::QueueLimit(c) => {
                write!(
                    f,
                    "qos: {}: queue limits must be above 0, and at most {MAX_QUEUE_PACKETS} packets",
                    c.name()
                )
            }
            ConfigError::Codel(c) => {
                write!(f, "qos: {}: CoDel is not for strict priority", c.name())
            }
            ConfigError::Quantum => {
                write!(f, "qos: quantum must be {MIN_QUANTUM_BYTES} bytes to 1 MiB")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<BucketError> for ConfigError {
    fn from(e: BucketError) -> Self {
        ConfigError::Bucket(e)
    }
}

/// Where DRR stands: the class whose turn it is, whether that turn's
/// quantum was granted, and every class's deficit (wire bytes; negative
/// after CoDel swapped in a longer packet).
#[derive(Debug, Clone, Copy)]
struct Drr {
    cur: usize,
    granted: bool,
    deficit: [i64; QosClass::COUNT],
}

impl Drr {
    #[inline(always)]
    fn advance(&mut self) {
        self.cur = if self.cur >= DRR_LAST {
            DRR_FIRST
        } else {
            self.cur + 1
        };
        self.granted = false;
    }
}

pub struct Scheduler<P> {
    port: TokenBucket,
    /// None where the ceiling is the port rate (nothing to check).
    ceilings: [Option<TokenBucket>; QosClass::COUNT],
    ceiling_permille: [u32; QosClass::COUNT],
    queues: [PacketQueue<P>; QosClass::COUNT],
    queue_bytes: [u64; QosClass::COUNT],
    codel: [Option<Codel>; QosClass::COUNT],
    quantum: [i64; QosClass::COUNT],
    drr: Drr,
    overhead: u32,
    /// Nanoseconds per tick, 32.32 fixed point (for the delay histogram).
    ns_per_tick: u64,
    packets: usize,
    /// Wire bytes offered (enqueued or dropped on arrival), cumulative.
    offered: u64,
    /// Dequeues the port bucket refused, cumulative.
    throttled: u64,
    counters: Arc<QosCounters>,
}

impl<P> core::fmt::Debug for Scheduler<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Scheduler")
            .field("rate_bps", &self.port.rate_bps())
            .field("packets", &self.packets)
            .finish_non_exhaustive()
    }
}

impl<P> Scheduler<P> {
    /// Builds the scheduler, its queues and its counters; `now` starts the
    /// buckets full.
    pub fn new(config: &SchedulerConfig, now: u64) -> Result<Scheduler<P>, ConfigError> {
        let tps = config.ticks_per_second;
        if !(MIN_QUANTUM_BYTES..=1 << 20).contains(&config.quantum_bytes) {
            return Err(ConfigError::Quantum);
        }
        let port = TokenBucket::new(config.rate_bps, config.burst_bytes, tps, now)?;
        let mut ceilings: [Option<TokenBucket>; QosClass::COUNT] = Default::default();
        let mut codel: [Option<Codel>; QosClass::COUNT] = Default::default();
        let mut quantum = [0i64; QosClass::COUNT];
        for class in QosClass::ALL {
            let i = class as usize;
            let c = &config.classes[i];
            if class != QosClass::RealTime && !(1..=MAX_WEIGHT).contains(&c.weight) {
                return Err(ConfigError::Weight(class));
            }
            if !(1..=1000).contains(&c.ceiling_permille) {
                return Err(ConfigError::Ceiling(class));
            }
            if c.queue_packets == 0 || c.queue_packets > MAX_QUEUE_PACKETS || c.queue_bytes == 0 {
                return Err(ConfigError::QueueLimit(class));
            }
            if c.ceiling_permille < 1000 {
                let rate = ceiling_rate(config.rate_bps, c.ceiling_permille);
                ceilings[i] = Some(TokenBucket::new(rate, c.ceiling_burst_bytes, tps, now)?);
            }
            if let Some(cc) = c.codel {
                if class == QosClass::RealTime {
                    return Err(ConfigError::Codel(class));
                }
                codel[i] = Some(Codel::new(cc, tps));
            }
            quantum[i] = i64::from(c.weight.max(1)) * i64::from(config.quantum_bytes);
        }
        Ok(Scheduler {
            port,
            ceilings,
            ceiling_permille: config.classes.map(|c| c.ceiling_permille),
            queues: config
                .classes
                .map(|c| PacketQueue::new(c.queue_packets as usize)),
            queue_bytes: config.classes.map(|c| u64::from(c.queue_bytes)),
            codel,
            quantum,
            drr: Drr {
                cur: DRR_FIRST,
                granted: false,
                deficit: [0; QosClass::COUNT],
            },
            overhead: config.overhead_bytes,
            ns_per_tick: ((1_000_000_000u128 << 32) / u128::from(tps)) as u64,
            packets: 0,
            offered: 0,
            throttled: 0,
            counters: Arc::new(QosCounters::default()),
        })
    }

    /// The counters, to share with the control thread.
    pub fn counters(&self) -> &Arc<QosCounters> {
        &self.counters
    }

    pub fn snapshot(&self) -> QosSnapshot {
        self.counters.snapshot()
    }

    /// Packets queued in all classes.
    pub fn len(&self) -> usize {
        self.packets
    }

    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }

    /// Packets and bytes queued in one class.
    pub fn depth(&self, class: QosClass) -> (usize, u64) {
        let q = &self.queues[class as usize];
        (q.len(), q.bytes())
    }

    /// Wire bytes offered to this port so far (queued or dropped on
    /// arrival): the demand [`super::share::PortShares`] rebalances on.
    pub fn offered_bytes(&self) -> u64 {
        self.offered
    }

    /// How many dequeues found a packet ready but the port bucket empty:
    /// it grows while this worker wants more than its share.
    pub fn throttled(&self) -> u64 {
        self.throttled
    }

    pub fn rate_bps(&self) -> u64 {
        self.port.rate_bps()
    }

    /// Changes the port rate (this worker's new share) from `now` on; the
    /// class ceilings follow. Not for the per-packet path (it divides).
    pub fn set_rate(&mut self, now: u64, rate_bps: u64) {
        self.port.set_rate(now, rate_bps);
        for (bucket, permille) in self.ceilings.iter_mut().zip(self.ceiling_permille) {
            if let Some(b) = bucket {
                b.set_rate(now, ceiling_rate(rate_bps, permille));
            }
        }
    }

    #[inline(always)]
    fn wire(&self, len: u32) -> u32 {
        len.saturating_add(self.overhead)
    }

    /// Queues a packet of `len` bytes in `class`, or gives it back with
    /// the reason it was dropped (the caller frees it).
    #[inline]
    pub fn enqueue(
        &mut self,
        class: QosClass,
        pkt: P,
        len: u32,
        now: u64,
    ) -> Result<(), (P, DropReason)> {
        let c = class as usize;
        self.offered = self.offered.wrapping_add(u64::from(self.wire(len)));
        let counters = self.counters.class(class);
        let q = &mut self.queues[c];
        let reason = if q.is_full() {
            DropReason::QueueFullPackets
        } else if q.bytes() + u64::from(len) > self.queue_bytes[c] {
            DropReason::QueueFullBytes
        } else {
            match q.push(Slot { pkt, len, at: now }) {
                Ok(()) => {
                    self.packets += 1;
                    counters.enqueued(len, q.len(), q.bytes());
                    return Ok(());
                }
                Err(slot) => {
                    counters.dropped(DropReason::QueueFullPackets, len);
                    return Err((slot.pkt, DropReason::QueueFullPackets));
                }
            }
        };
        counters.dropped(reason, len);
        Err((pkt, reason))
    }

    /// Whether `class`'s ceiling admits its head at `now`; None if empty.
    #[inline(always)]
    fn head_eligible(&self, c: usize, now: u64) -> Option<(u32, bool)> {
        let (len, _) = self.queues[c].peek()?;
        let wire = self.wire(len);
        let ok = match &self.ceilings[c] {
            Some(b) => b.conforms(now, wire),
            None => true,
        };
        Some((wire, ok))
    }

    /// The class to serve at `now` if the port allows, and the DRR state
    /// after serving it. Pure: nothing changes until a packet leaves.
    #[inline]
    fn pick(&self, now: u64) -> Option<(usize, Drr)> {
        if let Some((_, true)) = self.head_eligible(RT, now) {
            return Some((RT, self.drr));
        }
        let mut head = [0i64; QosClass::COUNT];
        let mut eligible = [false; QosClass::COUNT];
        let mut any = false;
        for c in DRR_FIRST..=DRR_LAST {
            if let Some((wire, true)) = self.head_eligible(c, now) {
                head[c] = i64::from(wire);
                eligible[c] = true;
                any = true;
            }
        }
        if !any {
            return None;
        }
        let mut st = self.drr;
        // At most two passes: after a pass in which nobody could send,
        // the rounds that would still send nothing are skipped at once.
        for pass in 0..3 {
            for _ in 0..DRR_CLASSES {
                let c = st.cur;
                if !eligible[c] {
                    if self.queues[c].is_empty() {
                        st.deficit[c] = 0;
                    }
                    st.advance();
                    continue;
                }
                if !st.granted {
                    st.deficit[c] += self.quantum[c];
                    st.granted = true;
                }
                if st.deficit[c] >= head[c] {
                    return Some((c, st));
                }
                st.advance();
            }
            if pass == 0 {
                // Every eligible class got its quantum once in this pass and
                // still cannot send: skip the rounds in which none could.
                let active = || (DRR_FIRST..=DRR_LAST).filter(|&c| eligible[c]);
                let skip = active()
                    .map(|c| {
                        let q = self.quantum[c].max(1);
                        (head[c] - st.deficit[c] + q - 1) / q - 1
                    })
                    .min()
                    .unwrap_or(0)
                    .max(0);
                for c in active() {
                    st.deficit[c] += skip * self.quantum[c];
                }
            }
        }
        None
    }

    /// The next packet to send at `now`, if the buckets allow one. Packets
    /// CoDel drops on the way go to `dropped` (the caller frees them).
    #[inline]
    pub fn dequeue(
        &mut self,
        now: u64,
        mut dropped: impl FnMut(P, QosClass, DropReason),
    ) -> Option<(P, QosClass)> {
        // A second round only if CoDel emptied the class it picked.
        for _ in 0..2 {
            let (c, mut st) = self.pick(now)?;
            let class = QosClass::from_u8(c as u8)?;
            let (len, _) = self.queues[c].peek()?;
            if !self.port.conforms(now, self.wire(len)) {
                self.throttled = self.throttled.wrapping_add(1);
                return None;
            }
            let counters = self.counters.class(class);
            let before = self.queues[c].len();
            let slot = match &mut self.codel[c] {
                Some(codel) => codel.dequeue(now, &mut self.queues[c], |s| {
                    counters.dropped(DropReason::Codel, s.len);
                    dropped(s.pkt, class, DropReason::Codel);
                }),
                None => self.queues[c].pop(),
            };
            let q = &self.queues[c];
            self.packets -= before - q.len();
            counters.set_depth(q.len(), q.bytes());
            let Some(slot) = slot else {
                if c != RT {
                    st.deficit[c] = 0;
                    st.advance();
                    self.drr = st;
                }
                continue;
            };
            let wire = self.wire(slot.len);
            self.port.consume(now, wire);
            if let Some(b) = &mut self.ceilings[c] {
                b.consume(now, wire);
            }
            if c != RT {
                st.deficit[c] -= i64::from(wire);
                if q.is_empty() {
                    st.deficit[c] = 0;
                    st.advance();
                }
                self.drr = st;
            }
            let delay = now.saturating_sub(slot.at);
            let ns = (u128::from(delay) * u128::from(self.ns_per_tick)) >> 32;
            counters.sent(slot.len, ns.min(u128::from(u64::MAX)) as u64);
            return Some((slot.pkt, class));
        }
        None
    }

    /// Up to `max` packets for one tx burst, each handed to `send`.
    /// Returns how many were sent.
    #[inline]
    pub fn dequeue_burst(
        &mut self,
        now: u64,
        max: usize,
        mut send: impl FnMut(P, QosClass),
        mut dropped: impl FnMut(P, QosClass, DropReason),
    ) -> usize {
        let mut n = 0;
        while n < max {
            match self.dequeue(now, &mut dropped) {
                Some((pkt, class)) => {
                    send(pkt, class);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// When to call [`Scheduler::dequeue`] next: None when nothing is
    /// queued; otherwise a tick at which a packet may leave, never later
    /// than the first one that can (the worker's deadline). It is `now` if
    /// one can leave now; a later one is only a lower bound (a class's
    /// ceiling may free up first), and never `now` again if `dequeue(now)`
    /// just returned None, so a simulation loop always advances.
    pub fn next_ready(&self, now: u64) -> Option<u64> {
        if self.packets == 0 {
            return None;
        }
        let mut earliest = u64::MAX;
        let picked = self.pick(now).map(|(c, _)| c);
        if let Some(c) = picked {
            let (len, _) = self.queues[c].peek()?;
            earliest = self.port.ready_at(now, self.wire(len));
            if earliest <= now {
                return Some(now);
            }
        }
        // A class held back by its ceiling may become the one to serve.
        for c in 0..QosClass::COUNT {
            if let (Some((wire, false)), Some(b)) = (self.head_eligible(c, now), &self.ceilings[c])
            {
                let t = b.ready_at(now, wire).max(self.port.ready_at(now, wire));
                earliest = earliest.min(t);
            }
        }
        Some(earliest)
    }
}

#[inline]
fn ceiling_rate(port_bps: u64, permille: u32) -> u64 {
    (u128::from(port_bps) * u128::from(permille) / 1000) as u64
}
