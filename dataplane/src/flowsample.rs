//! Policy telemetry: what the workers' DPI decided, and which flows carry
//! the bytes, for the management API.
//!
//! Each worker owns one [`PolicyTelemetry`], shared with the control thread
//! through an `Arc`. The worker is its only writer:
//!
//! - Flows decided by DPI, per category and per application: relaxed
//!   load-and-store counters (single writer, no read-modify-write), bumped
//!   once per flow when the engine decides it.
//! - Packet samples ([`FlowSample`]) in a bounded lock-free ring. A full
//!   ring drops the sample and counts it; the worker never waits.
//!
//! Sampling follows sFlow (RFC 3176 section 4.2.2, packet flow sampling):
//! a [`FlowSampler`] picks on average one packet in N with a randomised
//! skip count, and each sample stands for N packets of its size. Only
//! sampled packets cost more than a counter decrement. The control thread
//! folds the samples into [`TopFlows`]; the bytes and packets it reports
//! per flow are therefore statistical estimates, not exact counts: a flow
//! of k packets is seen about k/N times, so flows much shorter than N
//! packets may not appear at all, and the relative error of a flow's
//! estimate falls roughly as 1/sqrt(samples).

use crate::dpi::engine::DpiEngine;
use crate::dpi::types::{AppId, Category};
use crate::qos::rule::FlowFields;
use crossbeam_queue::ArrayQueue;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Single writer: a relaxed load and store, no locked instruction.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Which way a sampled packet crossed the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the LAN into a peer's tunnel (the policy's `decide`).
    ToTunnel,
    /// Out of a peer's tunnel towards the LAN (the policy's `observe`).
    FromTunnel,
}

/// One sampled packet and the flow it belongs to, as the worker saw it.
///
/// Addresses are 16 bytes, IPv4 as IPv4-mapped IPv6 with `v4` set, so the
/// sample is `Copy` and fixed-size; [`FlowSample::src_addr`] and
/// [`FlowSample::dst_addr`] give them back as `IpAddr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSample {
    /// The packet's source and destination, as sent.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// 0 for protocols without ports.
    pub src_port: u16,
    pub dst_port: u16,
    /// IP protocol number.
    pub proto: u8,
    pub v4: bool,
    /// [`AppId::NONE`] and [`Category::Unknown`] until (or unless) the DPI
    /// decides, and always without DPI.
    pub app: AppId,
    pub category: Category,
    pub peer: u32,
    /// The path SLA steering chose (an index into the peer's paths); None
    /// when the flow is not steered and the data path spreads it.
    pub path: Option<u8>,
    /// The QoS class number ([`crate::qos::QosClass`]) the packet was given;
    /// None for packets from the tunnel, which the policy does not class.
    pub class: Option<u8>,
    /// Estimated bytes this sample stands for: the packet's IP length times
    /// the sampling rate.
    pub bytes: u32,
    /// Estimated packets this sample stands for: the sampling rate.
    pub packets: u32,
    pub direction: Direction,
}

fn to16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn from16(a: [u8; 16], v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15]))
    } else {
        IpAddr::V6(Ipv6Addr::from(a))
    }
}

impl FlowSample {
    /// A sample of a packet with `fields` and IP length `len`, standing for
    /// `rate` packets; the flow's application, peer, path and class are
    /// unknown until set.
    pub fn new(fields: &FlowFields, direction: Direction, len: usize, rate: u32) -> FlowSample {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        FlowSample {
            src: to16(fields.src),
            dst: to16(fields.dst),
            src_port: fields.src_port,
            dst_port: fields.dst_port,
            proto: fields.protocol,
            v4: fields.src.is_ipv4(),
            app: AppId::NONE,
            category: Category::Unknown,
            peer: 0,
            path: None,
            class: None,
            bytes: len.saturating_mul(rate),
            packets: rate,
            direction,
        }
    }

    pub fn src_addr(&self) -> IpAddr {
        from16(self.src, self.v4)
    }

    pub fn dst_addr(&self) -> IpAddr {
        from16(self.dst, self.v4)
    }
}

/// Picks one packet in N on average (sFlow's skip count): a countdown per
/// worker, reloaded after each sample with a gap drawn uniformly from
/// `1..=2N-1` (mean N) by a xorshift generator, so traffic that repeats
/// with a period of N packets is not sampled always at the same phase.
/// The first sample is taken on exactly the Nth packet.
#[derive(Debug, Clone)]
pub struct FlowSampler {
    every: u32,
    countdown: u32,
    rng: u64,
}

impl FlowSampler {
    pub const DEFAULT_EVERY: u32 = 64;

    /// One in `every` packets; 0 samples nothing, 1 every packet.
    pub fn new(every: u32) -> FlowSampler {
        FlowSampler::with_seed(every, 0x9e37_79b9_7f4a_7c15)
    }

    /// Like [`FlowSampler::new`] with the gap generator seeded (0 is
    /// replaced: xorshift needs a nonzero state).
    pub fn with_seed(every: u32, seed: u64) -> FlowSampler {
        FlowSampler {
            every,
            countdown: if every == 0 { u32::MAX } else { every },
            rng: seed.max(1),
        }
    }

    /// The sampling rate N: how many packets a sample stands for.
    pub fn every(&self) -> u32 {
        self.every
    }

    /// Counts a packet; true if it is to be sampled. One decrement and one
    /// branch for packets that are not.
    #[inline(always)]
    pub fn tick(&mut self) -> bool {
        if self.countdown > 1 {
            self.countdown -= 1;
            false
        } else {
            self.reload()
        }
    }

    #[cold]
    fn reload(&mut self) -> bool {
        if self.every == 0 {
            self.countdown = u32::MAX;
            return false;
        }
        // xorshift64 (Marsaglia 2003).
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        let span = 2 * u64::from(self.every) - 1;
        // At most 2^33 - 3 before the cast: fits once clamped.
        self.countdown = u32::try_from(1 + x % span).unwrap_or(u32::MAX);
        true
    }
}

/// One worker's policy telemetry: written by the worker only, read by the
/// control thread.
#[derive(Debug)]
pub struct PolicyTelemetry {
    /// Indexed by `Category as usize`.
    decided_by_category: [AtomicU64; Category::ALL.len()],
    /// Indexed by `AppId.0` (0: decided without an application).
    decided_by_app: Box<[AtomicU64]>,
    /// Application names by `AppId.0`, for the report ("" at 0).
    app_names: Box<[Box<str>]>,
    samples: ArrayQueue<FlowSample>,
    samples_taken: AtomicU64,
    samples_dropped: AtomicU64,
}

impl PolicyTelemetry {
    pub const DEFAULT_RING: usize = 4096;

    /// Telemetry for a worker whose DPI engine is `engine` (None without
    /// DPI: only category Unknown and no application). Every worker's
    /// engine is built from the same configuration, so application ids
    /// mean the same on all of them.
    pub fn new(engine: Option<&DpiEngine>) -> PolicyTelemetry {
        PolicyTelemetry::with_ring(engine, PolicyTelemetry::DEFAULT_RING)
    }

    /// Like [`PolicyTelemetry::new`] with a sample ring of `ring` entries
    /// (at least 1).
    pub fn with_ring(engine: Option<&DpiEngine>, ring: usize) -> PolicyTelemetry {
        let apps = engine.map_or(0, DpiEngine::app_count);
        let app_names = (0..=apps)
            .map(|i| {
                let id = AppId(u16::try_from(i).unwrap_or(u16::MAX));
                engine.and_then(|e| e.app_name(id)).unwrap_or("").into()
            })
            .collect();
        PolicyTelemetry {
            decided_by_category: Default::default(),
            decided_by_app: (0..=apps).map(|_| AtomicU64::new(0)).collect(),
            app_names,
            samples: ArrayQueue::new(ring.max(1)),
            samples_taken: AtomicU64::new(0),
            samples_dropped: AtomicU64::new(0),
        }
    }

    // --- The owner worker's side.

    /// Counts a flow the DPI decided. Application ids beyond the table are
    /// ignored (counted by category only).
    #[inline]
    pub fn count_decided(&self, category: Category, app: AppId) {
        bump(&self.decided_by_category[category as usize], 1);
        if let Some(c) = self.decided_by_app.get(usize::from(app.0)) {
            bump(c, 1);
        }
    }

    /// Queues a sample for the control thread; false (and counted) if the
    /// ring is full.
    #[inline]
    pub fn push_sample(&self, sample: FlowSample) -> bool {
        bump(&self.samples_taken, 1);
        if self.samples.push(sample).is_err() {
            bump(&self.samples_dropped, 1);
            return false;
        }
        true
    }

    // --- Anyone's side.

    /// Flows decided in `category` so far.
    pub fn decided_in(&self, category: Category) -> u64 {
        self.decided_by_category[category as usize].load(Relaxed)
    }

    /// Flows decided as `app` so far (0 for ids beyond the table).
    pub fn decided_as(&self, app: AppId) -> u64 {
        self.decided_by_app
            .get(usize::from(app.0))
            .map_or(0, |c| c.load(Relaxed))
    }

    /// All the decided-flow counters at once.
    pub fn decided(&self) -> DecidedCounts {
        let mut d = DecidedCounts::default();
        d.add(self);
        d
    }

    /// The name of an application id; None for [`AppId::NONE`] and ids
    /// beyond the table.
    pub fn app_name(&self, app: AppId) -> Option<&str> {
        match self.app_names.get(usize::from(app.0)) {
            Some(n) if !n.is_empty() => Some(n),
            _ => None,
        }
    }

    /// Application ids this telemetry counts: `0..app_slots()`.
    pub fn app_slots(&self) -> usize {
        self.decided_by_app.len()
    }

    /// Takes the oldest queued sample.
    pub fn pop_sample(&self) -> Option<FlowSample> {
        self.samples.pop()
    }

    /// Samples the worker took, queued or dropped.
    pub fn samples_taken(&self) -> u64 {
        self.samples_taken.load(Relaxed)
    }

    /// Samples dropped because the ring was full (the control thread did
    /// not drain it in time).
    pub fn samples_dropped(&self) -> u64 {
        self.samples_dropped.load(Relaxed)
    }
}

/// A snapshot of decided-flow counters, of one worker or summed over
/// several.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecidedCounts {
    /// Indexed by `Category as usize`.
    pub by_category: [u64; Category::ALL.len()],
    /// Indexed by `AppId.0`.
    pub by_app: Vec<u64>,
}

impl DecidedCounts {
    /// Adds a worker's counters.
    pub fn add(&mut self, t: &PolicyTelemetry) {
        for (sum, c) in self.by_category.iter_mut().zip(&t.decided_by_category) {
            *sum += c.load(Relaxed);
        }
        if self.by_app.len() < t.decided_by_app.len() {
            self.by_app.resize(t.decided_by_app.len(), 0);
        }
        for (sum, c) in self.by_app.iter_mut().zip(t.decided_by_app.iter()) {
            *sum += c.load(Relaxed);
        }
    }

    pub fn category(&self, category: Category) -> u64 {
        self.by_category[category as usize]
    }

    pub fn app(&self, app: AppId) -> u64 {
        self.by_app.get(usize::from(app.0)).copied().unwrap_or(0)
    }
}

/// A flow as [`TopFlows`] tracks it: the 5-tuple oriented into the tunnel
/// (`src` is the LAN side, whichever way the sampled packet went) and the
/// peer, so both directions of a flow add up to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId {
    pub peer: u32,
    pub proto: u8,
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
}

impl FlowId {
    pub fn of(s: &FlowSample) -> FlowId {
        let (a, b) = ((s.src_addr(), s.src_port), (s.dst_addr(), s.dst_port));
        let ((src, src_port), (dst, dst_port)) = match s.direction {
            Direction::ToTunnel => (a, b),
            Direction::FromTunnel => (b, a),
        };
        FlowId {
            peer: s.peer,
            proto: s.proto,
            src,
            src_port,
            dst,
            dst_port,
        }
    }
}

/// A tracked flow's estimates (see the module documentation: sampled) and
/// the latest classification its samples carried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowStats {
    /// Both directions.
    pub bytes: u64,
    pub packets: u64,
    pub bytes_to_tunnel: u64,
    pub bytes_from_tunnel: u64,
    /// Samples behind the estimates.
    pub samples: u64,
    pub app: AppId,
    pub category: Category,
    /// The last SLA path a sample named, if any.
    pub path: Option<u8>,
    /// The last QoS class a packet into the tunnel was given.
    pub class: Option<u8>,
    /// When the flow was first and last sampled, in the caller's seconds.
    pub first_seen: f64,
    pub last_seen: f64,
}

/// The control thread's view of the heaviest flows, built from the
/// workers' samples. Allocates; never used on a worker.
#[derive(Debug)]
pub struct TopFlows {
    flows: HashMap<FlowId, FlowStats>,
    idle_secs: f64,
    max_flows: usize,
}

impl Default for TopFlows {
    fn default() -> Self {
        TopFlows::new(TopFlows::DEFAULT_IDLE_SECS, TopFlows::DEFAULT_MAX_FLOWS)
    }
}

impl TopFlows {
    pub const DEFAULT_IDLE_SECS: f64 = 60.0;
    pub const DEFAULT_MAX_FLOWS: usize = 65536;

    /// Forgets flows not sampled for `idle_secs`, and tracks at most
    /// `max_flows` (at least 1), evicting the smallest when full.
    pub fn new(idle_secs: f64, max_flows: usize) -> TopFlows {
        TopFlows {
            flows: HashMap::new(),
            idle_secs,
            max_flows: max_flows.max(1),
        }
    }

    /// Flows tracked.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Adds one sample taken at `now_secs` (any monotonic clock in seconds,
    /// the same for every call).
    pub fn add(&mut self, s: &FlowSample, now_secs: f64) {
        let id = FlowId::of(s);
        if !self.flows.contains_key(&id) && self.flows.len() >= self.max_flows {
            self.make_room(now_secs);
        }
        let f = self.flows.entry(id).or_insert(FlowStats {
            bytes: 0,
            packets: 0,
            bytes_to_tunnel: 0,
            bytes_from_tunnel: 0,
            samples: 0,
            app: AppId::NONE,
            category: Category::Unknown,
            path: None,
            class: None,
            first_seen: now_secs,
            last_seen: now_secs,
        });
        let bytes = u64::from(s.bytes);
        f.bytes += bytes;
        f.packets += u64::from(s.packets);
        match s.direction {
            Direction::ToTunnel => f.bytes_to_tunnel += bytes,
            Direction::FromTunnel => f.bytes_from_tunnel += bytes,
        }
        f.samples += 1;
        // A flow's first samples may predate the DPI's decision: keep the
        // decided classification once there is one.
        if !s.app.is_none() || s.category != Category::Unknown {
            f.app = s.app;
            f.category = s.category;
        }
        f.path = s.path.or(f.path);
        f.class = s.class.or(f.class);
        f.last_seen = f.last_seen.max(now_secs);
    }

    /// Adds every sample queued in a worker's ring; returns how many.
    pub fn drain(&mut self, telemetry: &PolicyTelemetry, now_secs: f64) -> usize {
        let mut n = 0;
        while let Some(s) = telemetry.pop_sample() {
            self.add(&s, now_secs);
            n += 1;
        }
        n
    }

    /// Forgets the flows not sampled for the idle time; returns how many.
    pub fn expire(&mut self, now_secs: f64) -> usize {
        let before = self.flows.len();
        let idle = self.idle_secs;
        self.flows.retain(|_, f| now_secs - f.last_seen <= idle);
        before - self.flows.len()
    }

    /// The `n` flows with the most bytes, most first (ties: more packets,
    /// then by flow id, so the order is stable).
    pub fn top(&self, n: usize) -> Vec<(FlowId, FlowStats)> {
        let mut all: Vec<(FlowId, FlowStats)> = self.flows.iter().map(|(k, v)| (*k, *v)).collect();
        let order = |a: &(FlowId, FlowStats), b: &(FlowId, FlowStats)| {
            (b.1.bytes, b.1.packets)
                .cmp(&(a.1.bytes, a.1.packets))
                .then(a.0.cmp(&b.0))
        };
        if n < all.len() {
            all.select_nth_unstable_by(n, order);
            all.truncate(n);
        }
        all.sort_unstable_by(order);
        all
    }

    /// Full: drops idle flows, then the smallest ones until an eighth of
    /// the table is free, so that a stream of new flows costs amortised
    /// O(1) each.
    fn make_room(&mut self, now_secs: f64) {
        self.expire(now_secs);
        let keep = (self.max_flows - self.max_flows / 8).min(self.max_flows - 1);
        let evict = self.flows.len().saturating_sub(keep);
        if evict == 0 {
            return;
        }
        let mut sizes: Vec<(u64, FlowId)> = self.flows.iter().map(|(k, v)| (v.bytes, *k)).collect();
        if evict < sizes.len() {
            sizes.select_nth_unstable(evict);
        }
        for (_, id) in &sizes[..evict] {
            self.flows.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpi::engine::DpiConfig;

    fn fields(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> FlowFields {
        FlowFields {
            protocol: 6,
            src: IpAddr::from(src),
            dst: IpAddr::from(dst),
            src_port: sport,
            dst_port: dport,
            dscp: 0,
        }
    }

    fn sample(sport: u16, bytes: u32, direction: Direction) -> FlowSample {
        let f = fields([10, 1, 0, 2], sport, [10, 2, 0, 2], 443);
        let mut s = FlowSample::new(&f, Direction::ToTunnel, bytes as usize, 1);
        if direction == Direction::FromTunnel {
            s = FlowSample {
                src: s.dst,
                dst: s.src,
                src_port: s.dst_port,
                dst_port: s.src_port,
                direction,
                ..s
            };
        }
        s
    }

    #[test]
    fn a_sample_keeps_the_addresses_and_scales_by_the_rate() {
        let f = fields([10, 1, 0, 2], 40000, [10, 2, 0, 2], 443);
        let s = FlowSample::new(&f, Direction::ToTunnel, 100, 64);
        assert_eq!(s.src_addr(), IpAddr::from([10, 1, 0, 2]));
        assert_eq!(s.dst_addr(), IpAddr::from([10, 2, 0, 2]));
        assert_eq!((s.src_port, s.dst_port, s.proto), (40000, 443, 6));
        assert_eq!((s.bytes, s.packets), (6400, 64));
        let v6 = FlowFields {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            ..f
        };
        let s = FlowSample::new(&v6, Direction::FromTunnel, 70_000, u32::MAX);
        assert_eq!(s.dst_addr(), "2001:db8::2".parse::<IpAddr>().unwrap());
        assert_eq!(s.bytes, u32::MAX, "saturates");
    }

    #[test]
    fn the_sampler_takes_the_nth_packet_first_and_one_in_n_on_average() {
        let mut s = FlowSampler::new(64);
        assert!((1..64).all(|_| !s.tick()));
        assert!(s.tick());
        let mut taken = 0;
        let mut gaps = [false; 2];
        let mut since = 0u32;
        for _ in 0..64 * 10_000 {
            since += 1;
            if s.tick() {
                taken += 1;
                gaps[usize::from(since != 64)] = true;
                since = 0;
            }
        }
        assert!((9_700..=10_300).contains(&taken), "{taken}");
        assert!(gaps[1], "the gaps vary");
    }

    #[test]
    fn the_sampler_at_one_takes_all_and_at_zero_none() {
        let mut all = FlowSampler::new(1);
        assert!((0..100).all(|_| all.tick()));
        let mut none = FlowSampler::new(0);
        assert!((0..100_000).all(|_| !none.tick()));
    }

    #[test]
    fn counters_ignore_application_ids_beyond_the_table() {
        let engine = DpiEngine::new(DpiConfig::default()).unwrap();
        let t = PolicyTelemetry::new(Some(&engine));
        let yt = engine.app_id("YouTube").unwrap();
        assert_eq!(t.app_slots(), engine.app_count() + 1);
        assert_eq!(t.app_name(yt), Some("YouTube"));
        assert_eq!(t.app_name(AppId::NONE), None);
        t.count_decided(Category::Video, yt);
        t.count_decided(Category::Web, AppId(u16::MAX));
        assert_eq!(t.decided_as(yt), 1);
        assert_eq!(t.decided_as(AppId(u16::MAX)), 0);
        assert_eq!(t.decided_in(Category::Web), 1);
        let mut sum = t.decided();
        sum.add(&t);
        assert_eq!((sum.category(Category::Video), sum.app(yt)), (2, 2));
        let bare = PolicyTelemetry::new(None);
        assert_eq!(bare.app_slots(), 1);
        bare.count_decided(Category::Unknown, yt);
        assert_eq!(bare.decided_in(Category::Unknown), 1);
    }

    #[test]
    fn a_full_ring_drops_and_counts() {
        let t = PolicyTelemetry::with_ring(None, 2);
        let s = sample(1, 10, Direction::ToTunnel);
        assert!(t.push_sample(s));
        assert!(t.push_sample(s));
        assert!(!t.push_sample(s));
        assert_eq!((t.samples_taken(), t.samples_dropped()), (3, 1));
        let mut top = TopFlows::default();
        assert_eq!(top.drain(&t, 0.0), 2);
        assert_eq!(t.pop_sample(), None);
        assert!(t.push_sample(s), "room again once drained");
    }

    #[test]
    fn top_orders_by_bytes_and_joins_both_directions() {
        let mut top = TopFlows::default();
        top.add(&sample(1, 100, Direction::ToTunnel), 0.0);
        top.add(&sample(2, 300, Direction::ToTunnel), 0.0);
        top.add(&sample(3, 200, Direction::ToTunnel), 0.0);
        // Flow 1's replies make it the biggest.
        let mut reply = sample(1, 500, Direction::FromTunnel);
        reply.category = Category::Video;
        reply.path = Some(1);
        top.add(&reply, 1.0);
        assert_eq!(top.len(), 3);
        let t = top.top(2);
        let ports: Vec<u16> = t.iter().map(|(id, _)| id.src_port).collect();
        assert_eq!(ports, [1, 2]);
        let (id, f) = t[0];
        assert_eq!((id.dst_port, id.src), (443, IpAddr::from([10, 1, 0, 2])));
        assert_eq!(
            (f.bytes, f.bytes_to_tunnel, f.bytes_from_tunnel),
            (600, 100, 500)
        );
        assert_eq!((f.packets, f.samples), (2, 2));
        assert_eq!((f.category, f.path), (Category::Video, Some(1)));
        assert_eq!((f.first_seen, f.last_seen), (0.0, 1.0));
        assert_eq!(top.top(10).len(), 3);
    }

    #[test]
    fn flows_not_sampled_for_the_idle_time_age_out() {
        let mut top = TopFlows::new(60.0, 100);
        top.add(&sample(1, 100, Direction::ToTunnel), 0.0);
        top.add(&sample(2, 100, Direction::ToTunnel), 30.0);
        assert_eq!(top.expire(60.0), 0);
        assert_eq!(top.expire(61.0), 1);
        assert_eq!(top.top(10)[0].0.src_port, 2);
        top.add(&sample(2, 100, Direction::ToTunnel), 80.0);
        assert_eq!(top.expire(120.0), 0, "sampled again at 80");
    }

    #[test]
    fn a_full_table_evicts_its_smallest_flows() {
        let mut top = TopFlows::new(60.0, 16);
        for port in 1..=16u16 {
            top.add(
                &sample(port, u32::from(port) * 10, Direction::ToTunnel),
                0.0,
            );
        }
        top.add(&sample(100, 1, Direction::ToTunnel), 1.0);
        assert!(top.len() <= 16);
        let kept: Vec<u16> = top.top(16).iter().map(|(id, _)| id.src_port).collect();
        assert!(kept.contains(&100), "the new flow is tracked");
        assert!(kept.contains(&16) && kept.contains(&15));
        assert!(!kept.contains(&1) && !kept.contains(&2), "{kept:?}");
        for port in 200..1200u16 {
            top.add(&sample(port, 5, Direction::ToTunnel), 2.0);
        }
        assert!(top.len() <= 16);
        assert!(top.top(16).iter().any(|(id, _)| id.src_port == 16));
    }
}
