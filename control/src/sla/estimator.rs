//! Per-path SLA estimation from probe samples, sans I/O: RTT, one-way
//! delay variation, RFC 3550 interarrival jitter and loss, each direction
//! apart where the probes allow it, with p50/p95/p99 over a sliding
//! window; plus the data path's passive counters over the same window.
//!
//! # What is measured
//!
//! - **RTT**: [`Sample::rtt_ns`], the TWAMP round trip with the
//!   reflector's turnaround left out (RFC 5357 §4.2.1).
//! - **Delay variation**, per direction: the inter-packet delay variation
//!   of RFC 3393 (IPDV, RFC 5481 §4.1), `D(i) − D(i−1)` between one-way
//!   delays of successive replies in arrival order; its magnitude goes into
//!   the histogram. The one-way delays cross two unsynchronized clocks, but
//!   the constant offset cancels in the difference. A reply marked
//!   [`Sample::rebased`] (the reflector restarted, perhaps with a new clock
//!   base) starts a new series.
//! - **Jitter**, per direction, the figure voice SLAs use: the interarrival
//!   jitter of RFC 3550 §6.4.1, `J += (|D(i−1,i)| − J) / 16`, where
//!   `D(i−1,i)` is the same one-way transit difference. It is a running
//!   estimate, reported while the window holds samples.
//! - **Loss**: over the window, `lost / (received + lost)` where a probe
//!   counts once it is resolved: received when its reply arrives (late
//!   replies within the sender's loss timeout included), lost when the
//!   timeout passes ([`super::probe`]). Unresolved probes count for
//!   neither, so the in-flight tail does not bias the ratio. Forward loss is
//!   what the replies attribute ([`Sample::forward_lost`]); reverse loss is
//!   the rest, out of the probes that reached the reflector.
//!
//! # The window
//!
//! A ring of `window / slot` slots (10 × 1 s by default); each holds one
//! `hdrhistogram::Histogram` per delay figure, recorded in µs with 3
//! significant digits (so within 0.1 %, at most 32 µs at 40 ms), and the
//! loss and passive counters. A query merges the slots whose interval lies
//! in the window: the current slot and the `n − 1` before it, so the window
//! spans between `window − slot` and `window`. Slots are reused as time
//! moves on, and every histogram is allocated at construction: nothing
//! grows and nothing is allocated per sample. Counts are `u32` per slot,
//! which holds far more than the 100 probes a second we send, and halves
//! the memory of `u64`: about 60 KiB per histogram with the defaults, so
//! some 1.8 MiB per path; fewer significant digits cut that tenfold.
//!
//! Mean, min and max come from exact sums, not from the histograms.

use super::probe::Sample;
use hdrhistogram::Histogram;

pub const DEFAULT_WINDOW_NS: u64 = 10_000_000_000;
pub const DEFAULT_SLOT_NS: u64 = 1_000_000_000;
pub const DEFAULT_SIGNIFICANT_DIGITS: u8 = 3;
/// The largest delay the histograms tell apart (10 s); larger values are
/// recorded as this.
pub const MAX_TRACKED_US: u64 = 10_000_000;
/// The most slots a window may have.
pub const MAX_SLOTS: u64 = 600;

const NS_PER_US: f64 = 1_000.0;
const NS_PER_SEC: f64 = 1_000_000_000.0;

/// An estimator's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EstimatorConfig {
    /// The sliding window; a whole number of slots.
    pub window_ns: u64,
    /// The granularity at which samples leave the window.
    pub slot_ns: u64,
    /// Histogram precision, 1..=5 significant digits.
    pub significant_digits: u8,
}

impl Default for EstimatorConfig {
    /// A 10 s window of 1 s slots, 3 significant digits.
    fn default() -> EstimatorConfig {
        EstimatorConfig {
            window_ns: DEFAULT_WINDOW_NS,
            slot_ns: DEFAULT_SLOT_NS,
            significant_digits: DEFAULT_SIGNIFICANT_DIGITS,
        }
    }
}

/// Why an [`EstimatorConfig`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EstimatorConfigError {
    ZeroSlot,
    /// The window is not a whole, non-zero number of slots.
    WindowNotMultipleOfSlot,
    /// More than [`MAX_SLOTS`] slots.
    TooManySlots(u64),
    SignificantDigits(u8),
}

impl core::fmt::Display for EstimatorConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EstimatorConfigError::ZeroSlot => write!(f, "SLA window slot must be non-zero"),
            EstimatorConfigError::WindowNotMultipleOfSlot => {
                write!(f, "SLA window must be a whole, non-zero number of slots")
            }
            EstimatorConfigError::TooManySlots(n) => {
                write!(f, "SLA window has {n} slots, at most {MAX_SLOTS} allowed")
            }
            EstimatorConfigError::SignificantDigits(d) => {
                write!(f, "SLA histogram precision must be 1 to 5 digits, got {d}")
            }
        }
    }
}

/// A probe's direction relative to the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sender to reflector.
    Forward,
    /// Reflector back to sender.
    Reverse,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::Forward => 0,
            Direction::Reverse => 1,
        }
    }
}

/// Counter deltas from the data path for one path, added up per slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassiveDelta {
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub drops: u64,
}

impl PassiveDelta {
    fn add(&mut self, o: &PassiveDelta) {
        self.tx_bytes = self.tx_bytes.saturating_add(o.tx_bytes);
        self.tx_packets = self.tx_packets.saturating_add(o.tx_packets);
        self.rx_bytes = self.rx_bytes.saturating_add(o.rx_bytes);
        self.rx_packets = self.rx_packets.saturating_add(o.rx_packets);
        self.drops = self.drops.saturating_add(o.drops);
    }
}

/// Passive counters over the window, as totals and rates.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PassiveMetrics {
    pub totals: PassiveDelta,
    /// The time the totals cover: from the start of the oldest slot in the
    /// window (or the first record, if later) to now.
    pub span_ns: u64,
    pub tx_bits_per_sec: f64,
    pub rx_bits_per_sec: f64,
    pub tx_packets_per_sec: f64,
    pub rx_packets_per_sec: f64,
    pub drops_per_sec: f64,
}

/// Distribution of one delay figure over the window, in µs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DelayStats {
    pub samples: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub max_us: f64,
    pub p50_us: f64,
    pub p95_us: f64,
    pub p99_us: f64,
}

/// One direction's figures over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DirectionMetrics {
    /// |IPDV| (RFC 3393, RFC 5481 §4.1); `None` without two replies in a
    /// series.
    pub delay_variation: Option<DelayStats>,
    /// RFC 3550 §6.4.1 interarrival jitter, µs; `None` while the window
    /// has no delay variation sample.
    pub jitter_us: Option<f64>,
    pub lost: u64,
    /// `None` while nothing was resolved in the window.
    pub loss_ratio: Option<f64>,
}

/// A path's SLA figures at `now_ns`, for the selector and the API.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathMetrics {
    pub now_ns: u64,
    pub window_ns: u64,
    /// Replies in the window.
    pub received: u64,
    /// Probes declared lost in the window (round trip).
    pub lost: u64,
    /// `lost / (received + lost)`; `None` while nothing was resolved.
    pub loss_ratio: Option<f64>,
    /// `None` while the window has no reply.
    pub rtt: Option<DelayStats>,
    pub forward: DirectionMetrics,
    pub reverse: DirectionMetrics,
    pub passive: PassiveMetrics,
}

impl PathMetrics {
    /// Round-trip loss in percent.
    pub fn loss_pct(&self) -> Option<f64> {
        self.loss_ratio.map(|r| r * 100.0)
    }

    /// The worse direction's RFC 3550 jitter, µs.
    pub fn jitter_us(&self) -> Option<f64> {
        match (self.forward.jitter_us, self.reverse.jitter_us) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// One delay figure within one slot.
#[derive(Clone, Debug)]
struct DelayAcc {
    hist: Histogram<u32>,
    count: u64,
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
}

impl DelayAcc {
    fn new(sigfig: u8) -> Result<DelayAcc, EstimatorConfigError> {
        let hist = Histogram::new_with_bounds(1, MAX_TRACKED_US, sigfig)
            .map_err(|_| EstimatorConfigError::SignificantDigits(sigfig))?;
        Ok(DelayAcc {
            hist,
            count: 0,
            sum_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
        })
    }

    fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.saturating_add(500) / 1_000);
        self.count += 1;
        self.sum_ns += u128::from(ns);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    fn reset(&mut self) {
        self.hist.reset();
        self.count = 0;
        self.sum_ns = 0;
        self.min_ns = u64::MAX;
        self.max_ns = 0;
    }
}

#[derive(Clone, Debug)]
struct Slot {
    /// `now / slot_ns` of the interval this slot holds.
    epoch: Option<u64>,
    rtt: DelayAcc,
    ipdv: [DelayAcc; 2],
    received: u64,
    lost: u64,
    forward_lost: u64,
    passive: PassiveDelta,
}

impl Slot {
    fn new(sigfig: u8) -> Result<Slot, EstimatorConfigError> {
        Ok(Slot {
            epoch: None,
            rtt: DelayAcc::new(sigfig)?,
            ipdv: [DelayAcc::new(sigfig)?, DelayAcc::new(sigfig)?],
            received: 0,
            lost: 0,
            forward_lost: 0,
            passive: PassiveDelta::default(),
        })
    }

    fn reset(&mut self, epoch: u64) {
        self.epoch = Some(epoch);
        self.rtt.reset();
        for a in &mut self.ipdv {
            a.reset();
        }
        self.received = 0;
        self.lost = 0;
        self.forward_lost = 0;
        self.passive = PassiveDelta::default();
    }
}

/// One path's estimator, both directions. Feed it the sender's
/// [`Sample`]s and losses and the data path's counters, in time order;
/// read [`PathMetrics`] with [`PathEstimator::metrics`].
#[derive(Clone, Debug)]
pub struct PathEstimator {
    cfg: EstimatorConfig,
    slots: Vec<Slot>,
    /// Merge target for queries, allocated once.
    scratch: DelayAcc,
    /// The previous reply's one-way delay per direction, for IPDV.
    prev_owd_ns: [Option<i64>; 2],
    /// RFC 3550 J per direction, ns.
    jitter_ns: [f64; 2],
    first_ns: Option<u64>,
    /// Records older than every slot in the ring, ignored.
    stale: u64,
}

impl PathEstimator {
    pub fn new(cfg: EstimatorConfig) -> Result<PathEstimator, EstimatorConfigError> {
        if cfg.slot_ns == 0 {
            return Err(EstimatorConfigError::ZeroSlot);
        }
        if cfg.window_ns == 0 || !cfg.window_ns.is_multiple_of(cfg.slot_ns) {
            return Err(EstimatorConfigError::WindowNotMultipleOfSlot);
        }
        let n = cfg.window_ns / cfg.slot_ns;
        if n > MAX_SLOTS {
            return Err(EstimatorConfigError::TooManySlots(n));
        }
        if !(1..=5).contains(&cfg.significant_digits) {
            return Err(EstimatorConfigError::SignificantDigits(
                cfg.significant_digits,
            ));
        }
        let slots = (0..n)
            .map(|_| Slot::new(cfg.significant_digits))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PathEstimator {
            cfg,
            slots,
            scratch: DelayAcc::new(cfg.significant_digits)?,
            prev_owd_ns: [None; 2],
            jitter_ns: [0.0; 2],
            first_ns: None,
            stale: 0,
        })
    }

    pub fn config(&self) -> &EstimatorConfig {
        &self.cfg
    }

    /// Records ignored because they were older than the whole ring.
    pub fn stale_records(&self) -> u64 {
        self.stale
    }

    fn slot_at(&mut self, now_ns: u64) -> Option<&mut Slot> {
        self.first_ns.get_or_insert(now_ns);
        let epoch = now_ns / self.cfg.slot_ns;
        let i = (epoch % self.slots.len() as u64) as usize;
        let s = &mut self.slots[i];
        match s.epoch {
            Some(e) if e == epoch => {}
            Some(e) if e > epoch => {
                self.stale += 1;
                return None;
            }
            _ => s.reset(epoch),
        }
        Some(s)
    }

    /// A reply: RTT, per-direction delay variation and jitter, and the
    /// forward losses it attributes. Its time is `received_at_ns`.
    pub fn record_reply(&mut self, s: &Sample) {
        if s.rebased {
            self.prev_owd_ns = [None; 2];
        }
        let mut ipdv = [None; 2];
        for (d, owd) in [
            (Direction::Forward, s.forward_owd_ns),
            (Direction::Reverse, s.reverse_owd_ns),
        ] {
            let i = d.index();
            if let Some(prev) = self.prev_owd_ns[i] {
                let diff = owd.wrapping_sub(prev).unsigned_abs();
                // RFC 3550 §6.4.1: J(i) = J(i−1) + (|D(i−1,i)| − J(i−1))/16.
                self.jitter_ns[i] += (diff as f64 - self.jitter_ns[i]) / 16.0;
                ipdv[i] = Some(diff);
            }
            self.prev_owd_ns[i] = Some(owd);
        }
        let Some(slot) = self.slot_at(s.received_at_ns) else {
            return;
        };
        slot.rtt.record(s.rtt_ns);
        for (acc, v) in slot.ipdv.iter_mut().zip(ipdv) {
            if let Some(v) = v {
                acc.record(v);
            }
        }
        slot.received += 1;
        slot.forward_lost += s.forward_lost;
    }

    /// A probe the sender declared lost at `now_ns`.
    pub fn record_loss(&mut self, now_ns: u64) {
        if let Some(slot) = self.slot_at(now_ns) {
            slot.lost += 1;
        }
    }

    /// Data path counter deltas observed at `now_ns`.
    pub fn record_passive(&mut self, now_ns: u64, delta: &PassiveDelta) {
        if let Some(slot) = self.slot_at(now_ns) {
            slot.passive.add(delta);
        }
    }

    fn window_epochs(&self, now_ns: u64) -> (u64, u64) {
        (now_ns / self.cfg.slot_ns, self.slots.len() as u64)
    }

    /// The figures over the window ending at `now_ns`.
    pub fn metrics(&mut self, now_ns: u64) -> PathMetrics {
        let (mut received, mut lost, mut fwd_lost) = (0u64, 0u64, 0u64);
        let mut passive = PassiveDelta::default();
        let window = self.window_epochs(now_ns);
        for s in in_window(&self.slots, window) {
            received += s.received;
            lost += s.lost;
            fwd_lost += s.forward_lost;
            passive.add(&s.passive);
        }
        let ratio = |num: u64, den: u64| (den > 0).then(|| (num as f64 / den as f64).min(1.0));
        let resolved = received + lost;
        let fwd_lost = fwd_lost.min(lost);
        let rev_lost = lost - fwd_lost;

        let rtt = delay_stats(&self.slots, &mut self.scratch, window, rtt_acc);
        let mut dirs = [DirectionMetrics::default(); 2];
        for (i, d) in dirs.iter_mut().enumerate() {
            let pick = if i == 0 { fwd_acc } else { rev_acc };
            let dv = delay_stats(&self.slots, &mut self.scratch, window, pick);
            d.jitter_us = dv.map(|_| self.jitter_ns[i] / NS_PER_US);
            d.delay_variation = dv;
        }
        dirs[0].lost = fwd_lost;
        dirs[0].loss_ratio = ratio(fwd_lost, resolved);
        dirs[1].lost = rev_lost;
        dirs[1].loss_ratio = ratio(rev_lost, resolved - fwd_lost);

        let slot = self.cfg.slot_ns;
        let n = self.slots.len() as u64;
        let window_start = (now_ns / slot + 1).saturating_sub(n) * slot;
        let start = window_start.max(self.first_ns.unwrap_or(now_ns));
        let span_ns = now_ns.saturating_sub(start);
        let per_sec = |v: u64| {
            if span_ns == 0 {
                0.0
            } else {
                v as f64 * NS_PER_SEC / span_ns as f64
            }
        };
        PathMetrics {
            now_ns,
            window_ns: self.cfg.window_ns,
            received,
            lost,
            loss_ratio: ratio(lost, resolved),
            rtt,
            forward: dirs[0],
            reverse: dirs[1],
            passive: PassiveMetrics {
                totals: passive,
                span_ns,
                tx_bits_per_sec: per_sec(passive.tx_bytes.saturating_mul(8)),
                rx_bits_per_sec: per_sec(passive.rx_bytes.saturating_mul(8)),
                tx_packets_per_sec: per_sec(passive.tx_packets),
                rx_packets_per_sec: per_sec(passive.rx_packets),
                drops_per_sec: per_sec(passive.drops),
            },
        }
    }
}

/// Slots whose interval lies in the window: epochs `(now − n, now]`.
fn in_window(slots: &[Slot], (now_epoch, n): (u64, u64)) -> impl Iterator<Item = &Slot> + '_ {
    slots
        .iter()
        .filter(move |s| s.epoch.is_some_and(|e| e <= now_epoch && e + n > now_epoch))
}

/// Merges one delay figure over the window into `m` and summarizes it.
fn delay_stats(
    slots: &[Slot],
    m: &mut DelayAcc,
    window: (u64, u64),
    pick: fn(&Slot) -> &DelayAcc,
) -> Option<DelayStats> {
    m.reset();
    for a in in_window(slots, window).map(pick) {
        if a.count == 0 {
            continue;
        }
        // Same bounds and precision everywhere: the merge cannot fail.
        let _ = m.hist.add(&a.hist);
        m.count += a.count;
        m.sum_ns += a.sum_ns;
        m.min_ns = m.min_ns.min(a.min_ns);
        m.max_ns = m.max_ns.max(a.max_ns);
    }
    if m.count == 0 {
        return None;
    }
    let min_us = m.min_ns as f64 / NS_PER_US;
    let max_us = m.max_ns as f64 / NS_PER_US;
    let q = |q: f64| (m.hist.value_at_quantile(q) as f64).clamp(min_us, max_us);
    Some(DelayStats {
        samples: m.count,
        min_us,
        mean_us: m.sum_ns as f64 / m.count as f64 / NS_PER_US,
        max_us,
        p50_us: q(0.50),
        p95_us: q(0.95),
        p99_us: q(0.99),
    })
}

fn rtt_acc(s: &Slot) -> &DelayAcc {
    &s.rtt
}

fn fwd_acc(s: &Slot) -> &DelayAcc {
    &s.ipdv[0]
}

fn rev_acc(s: &Slot) -> &DelayAcc {
    &s.ipdv[1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::probe::{
        ProbeKey, ProbeKeys, ProbeSender, Reflector, ReflectorConfig, SenderConfig, MAX_PACKET_LEN,
    };

    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000 * MS;

    /// Deterministic xorshift64*.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn est() -> PathEstimator {
        PathEstimator::new(EstimatorConfig::default()).unwrap()
    }

    fn est_window(window_ns: u64, slot_ns: u64) -> PathEstimator {
        PathEstimator::new(EstimatorConfig {
            window_ns,
            slot_ns,
            significant_digits: 3,
        })
        .unwrap()
    }

    fn sample(at: u64, rtt_ns: u64, fwd: i64, rev: i64) -> Sample {
        Sample {
            path_id: 0,
            seq: 0,
            sent_at_ns: at.saturating_sub(rtt_ns),
            received_at_ns: at,
            rtt_ns,
            forward_owd_ns: fwd,
            reverse_owd_ns: rev,
            reflector_rx: 0,
            forward_lost: 0,
            rebased: false,
        }
    }

    fn rtt_only(at: u64, rtt_ns: u64) -> Sample {
        sample(at, rtt_ns, 0, 0)
    }

    #[test]
    fn empty_window_reports_no_delay_no_loss_and_no_jitter() {
        let mut e = est();
        let m = e.metrics(5 * SEC);
        assert_eq!(m.received, 0);
        assert_eq!(m.lost, 0);
        assert_eq!(m.loss_ratio, None);
        assert_eq!(m.loss_pct(), None);
        assert_eq!(m.rtt, None);
        assert_eq!(m.forward, DirectionMetrics::default());
        assert_eq!(m.reverse, DirectionMetrics::default());
        assert_eq!(m.jitter_us(), None);
        assert_eq!(m.passive.totals, PassiveDelta::default());
        assert_eq!(m.passive.tx_bits_per_sec, 0.0);
        assert_eq!(m.window_ns, DEFAULT_WINDOW_NS);
    }

    #[test]
    fn config_must_be_whole_slots_within_limits() {
        let bad = |w, s, d| {
            PathEstimator::new(EstimatorConfig {
                window_ns: w,
                slot_ns: s,
                significant_digits: d,
            })
            .unwrap_err()
        };
        assert_eq!(bad(SEC, 0, 3), EstimatorConfigError::ZeroSlot);
        assert_eq!(
            bad(0, SEC, 3),
            EstimatorConfigError::WindowNotMultipleOfSlot
        );
        assert_eq!(
            bad(1_500 * MS, SEC, 3),
            EstimatorConfigError::WindowNotMultipleOfSlot
        );
        assert_eq!(
            bad(601 * SEC, SEC, 3),
            EstimatorConfigError::TooManySlots(601)
        );
        assert_eq!(bad(SEC, SEC, 0), EstimatorConfigError::SignificantDigits(0));
        assert_eq!(bad(SEC, SEC, 6), EstimatorConfigError::SignificantDigits(6));
    }

    #[test]
    fn percentiles_of_a_uniform_rtt_are_within_histogram_precision() {
        // RTTs 1..=1000 ms, each once, spread over 5 s of the window.
        let mut e = est();
        for i in 1..=1000u64 {
            e.record_reply(&rtt_only(10 * SEC + i * 5 * MS, i * MS));
        }
        let r = e.metrics(15 * SEC).rtt.unwrap();
        assert_eq!(r.samples, 1000);
        assert_eq!(r.min_us, 1_000.0);
        assert_eq!(r.max_us, 1_000_000.0);
        assert!((r.mean_us - 500_500.0).abs() < 1e-6);
        for (got, want) in [
            (r.p50_us, 500_000.0),
            (r.p95_us, 950_000.0),
            (r.p99_us, 990_000.0),
        ] {
            assert!((got - want).abs() <= want * 1e-3, "{got} vs {want}");
        }
    }

    #[test]
    fn percentiles_of_a_two_valued_rtt_split_at_the_right_rank() {
        // 96 % at 20 ms, 4 % at 80 ms: p50 and p95 see 20 ms, p99 80 ms.
        let mut e = est();
        for i in 0..1000u64 {
            let rtt = if i % 25 == 0 { 80 * MS } else { 20 * MS };
            e.record_reply(&rtt_only(SEC + i * MS, rtt));
        }
        let r = e.metrics(2 * SEC).rtt.unwrap();
        assert!((r.p50_us - 20_000.0).abs() <= 20.0);
        assert!((r.p95_us - 20_000.0).abs() <= 20.0);
        assert!((r.p99_us - 80_000.0).abs() <= 80.0);
        assert!((r.mean_us - 22_400.0).abs() < 1e-6);
    }

    #[test]
    fn rfc3550_jitter_matches_a_hand_computed_sequence() {
        // Forward transit (ms): 10 12 11 15 15 9 → D: 2 −1 4 0 −6.
        // J: 0.125, 0.1796875, 0.41845703125, 0.392303466796875,
        //    0.7427845001220703 ms.
        let mut e = est();
        for (i, owd) in [10i64, 12, 11, 15, 15, 9].iter().enumerate() {
            let s = sample(SEC + i as u64 * 100 * MS, 30 * MS, owd * MS as i64, 7);
            e.record_reply(&s);
        }
        let m = e.metrics(2 * SEC);
        let j = m.forward.jitter_us.unwrap();
        assert!((j - 742.784_500_122_070_3).abs() < 1e-6, "{j}");
        // Constant reverse transit: no jitter.
        assert_eq!(m.reverse.jitter_us, Some(0.0));
        assert_eq!(m.jitter_us(), Some(j));
    }

    #[test]
    fn delay_variation_is_the_magnitude_of_successive_one_way_differences() {
        // Reverse transit carries a huge clock offset, which cancels.
        let base = 5_000_000_000_000i64;
        let mut e = est();
        for (i, owd) in [10i64, 12, 11, 15, 15, 9].iter().enumerate() {
            let s = sample(
                SEC + i as u64 * 100 * MS,
                30 * MS,
                -base,
                base + owd * MS as i64,
            );
            e.record_reply(&s);
        }
        let m = e.metrics(2 * SEC);
        let dv = m.reverse.delay_variation.unwrap();
        // |D| = 2 1 4 0 6 ms.
        assert_eq!(dv.samples, 5);
        assert_eq!(dv.min_us, 0.0);
        assert_eq!(dv.max_us, 6_000.0);
        assert!((dv.mean_us - 2_600.0).abs() < 1e-6);
        assert!((dv.p50_us - 2_000.0).abs() <= 2.0);
        let fwd = m.forward.delay_variation.unwrap();
        assert_eq!((fwd.samples, fwd.max_us), (5, 0.0));
    }

    #[test]
    fn a_rebased_reply_starts_a_new_delay_series() {
        let mut e = est();
        e.record_reply(&sample(SEC, 30 * MS, 10 * MS as i64, 0));
        e.record_reply(&sample(SEC + 100 * MS, 30 * MS, 11 * MS as i64, 0));
        // The reflector restarted with a clock 1000 s away.
        let mut s = sample(SEC + 200 * MS, 30 * MS, 1_000 * SEC as i64, 0);
        s.rebased = true;
        e.record_reply(&s);
        e.record_reply(&sample(
            SEC + 300 * MS,
            30 * MS,
            (1_000 * SEC + 3 * MS) as i64,
            0,
        ));
        let dv = e.metrics(2 * SEC).forward.delay_variation.unwrap();
        assert_eq!(dv.samples, 2);
        assert_eq!(dv.max_us, 3_000.0);
    }

    #[test]
    fn loss_ratio_is_losses_over_resolved_probes_split_by_direction() {
        let mut e = est();
        for i in 0..90u64 {
            let mut s = rtt_only(SEC + i * 10 * MS, 40 * MS);
            // Replies attribute 6 forward losses in all.
            s.forward_lost = u64::from(i % 15 == 0);
            e.record_reply(&s);
        }
        for i in 0..10u64 {
            e.record_loss(2 * SEC + i * MS);
        }
        let m = e.metrics(3 * SEC);
        assert_eq!((m.received, m.lost), (90, 10));
        assert!((m.loss_ratio.unwrap() - 0.10).abs() < 1e-12);
        assert!((m.loss_pct().unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(m.forward.lost, 6);
        assert!((m.forward.loss_ratio.unwrap() - 0.06).abs() < 1e-12);
        // 94 reached the reflector, 4 of their replies did not come back.
        assert_eq!(m.reverse.lost, 4);
        assert!((m.reverse.loss_ratio.unwrap() - 4.0 / 94.0).abs() < 1e-12);
    }

    #[test]
    fn samples_leave_the_window_as_time_advances() {
        // 10 slots of 1 s: at t the window holds slots ⌊t⌋−9 ..= ⌊t⌋.
        let mut e = est();
        e.record_reply(&rtt_only(SEC + 500 * MS, 10 * MS));
        e.record_loss(SEC + 600 * MS);
        e.record_reply(&rtt_only(5 * SEC, 50 * MS));
        let m = e.metrics(10 * SEC + 999 * MS);
        assert_eq!((m.received, m.lost), (2, 1));
        assert_eq!(m.rtt.unwrap().min_us, 10_000.0);
        // Slot 1 s..2 s leaves at 11 s.
        let m = e.metrics(11 * SEC);
        assert_eq!((m.received, m.lost), (1, 0));
        assert_eq!(m.loss_ratio, Some(0.0));
        let r = m.rtt.unwrap();
        assert_eq!((r.samples, r.min_us, r.max_us), (1, 50_000.0, 50_000.0));
        assert_eq!(r.p99_us, 50_000.0);
        // And the rest at 15 s.
        let m = e.metrics(15 * SEC);
        assert_eq!(m.rtt, None);
        assert_eq!(m.loss_ratio, None);
    }

    #[test]
    fn slots_are_reused_without_growth_over_a_long_run() {
        let mut e = est();
        for i in 0..100_000u64 {
            e.record_reply(&rtt_only(i * 10 * MS, (20 + i % 10) * MS));
        }
        let m = e.metrics(100_000 * 10 * MS);
        // The last 9 whole seconds plus the instant at 1000 s.
        assert_eq!(m.received, 900);
        assert_eq!(e.slots.len(), 10);
        assert_eq!(e.stale_records(), 0);
    }

    #[test]
    fn records_older_than_the_ring_are_ignored() {
        let mut e = est();
        e.record_reply(&rtt_only(20 * SEC, 10 * MS));
        e.record_reply(&rtt_only(10 * SEC, 10 * MS));
        assert_eq!(e.stale_records(), 1);
        assert_eq!(e.metrics(20 * SEC).received, 1);
    }

    #[test]
    fn constant_40ms_rtt_with_10ms_uniform_jitter_gives_mean_and_p99() {
        // RTT 40 ms ± 10 ms uniform, 100 probes a second over a 10 s
        // window: p50 40 ms, p95 49 ms, p99 49.8 ms in the distribution.
        let mut e = est();
        let mut rng = Rng(40);
        for i in 0..1_000u64 {
            let rtt = 30 * MS + (rng.unit() * 20.0 * MS as f64) as u64;
            let fwd = (rtt / 2) as i64;
            e.record_reply(&sample(i * 10 * MS, rtt, fwd, rtt as i64 - fwd));
        }
        let r = e.metrics(9_999 * MS).rtt.unwrap();
        assert_eq!(r.samples, 1_000);
        assert!((r.mean_us - 40_000.0).abs() < 1_000.0, "{}", r.mean_us);
        assert!((r.p50_us - 40_000.0).abs() < 1_000.0, "{}", r.p50_us);
        assert!((r.p95_us - 49_000.0).abs() < 300.0, "{}", r.p95_us);
        assert!(r.p99_us <= 50_000.0 && r.p99_us >= 49_500.0, "{}", r.p99_us);
        assert!(r.min_us >= 30_000.0 && r.max_us < 50_000.0);
        assert!(r.p99_us <= r.max_us);
    }

    #[test]
    fn rtt_mean_is_within_1ms_and_p99_bounded_over_many_windows_at_100_per_second() {
        // At 10 a second a 10 s window holds 100 samples, whose mean of
        // U(30, 50) ms has a standard error of 0.58 ms; at 100 a second it
        // is 0.18 ms, so ±1 ms holds in every window.
        let mut e = est();
        let mut rng = Rng(7);
        for w in 1..=20u64 {
            for i in 0..1_000u64 {
                let t = (w - 1) * 10 * SEC + i * 10 * MS;
                let rtt = 30 * MS + (rng.unit() * 20.0 * MS as f64) as u64;
                e.record_reply(&rtt_only(t, rtt));
            }
            let r = e.metrics(w * 10 * SEC - 1).rtt.unwrap();
            assert!(
                (r.mean_us - 40_000.0).abs() < 1_000.0,
                "window {w}: {}",
                r.mean_us
            );
            assert!(
                r.p99_us > 48_000.0 && r.p99_us <= 50_000.0,
                "window {w}: {}",
                r.p99_us
            );
            assert!(r.max_us < 50_000.0);
        }
    }

    #[test]
    fn three_percent_random_loss_is_measured_within_ten_percent() {
        // 100 probes a second over a 600 s window of 60 s slots: 60,000
        // probes, so 3 % is 1,800 ± 42 (1σ) and ±10 % is ±180.
        let mut e = est_window(600 * SEC, 60 * SEC);
        let mut rng = Rng(0x0003);
        for i in 0..60_000u64 {
            let t = i * 10 * MS;
            if rng.unit() < 0.03 {
                e.record_loss(t);
            } else {
                e.record_reply(&rtt_only(t, 40 * MS));
            }
        }
        let m = e.metrics(599 * SEC + 999 * MS);
        assert_eq!(m.received + m.lost, 60_000);
        let loss = m.loss_ratio.unwrap();
        assert!((loss - 0.03).abs() <= 0.003, "{loss}");
    }

    #[test]
    fn lab_impairment_measured_end_to_end_through_probes() {
        // Sender and reflector on a simulated link: 20 ms ± 5 ms uniform
        // each way (40 ms ± 10 ms round trip), 1.5 % loss each way (about
        // 3 % round trip), 100 probes a second for 600 s, all in a window
        // of 20 slots of 60 s.
        let keys = || ProbeKeys::new(ProbeKey::new(1, &[7; 32]).unwrap());
        let mut cfg = SenderConfig::new(1, 0, 1 << 40, keys());
        cfg.rate_per_sec = 100;
        let mut s = ProbeSender::new(cfg).unwrap();
        let mut r = Reflector::new(ReflectorConfig {
            peer_id: 1,
            paths: 1,
            keys: keys(),
        })
        .unwrap();
        let mut e = est_window(1_200 * SEC, 60 * SEC);
        let mut rng = Rng(0x1ab);
        let reflector_clock = 123_456 * SEC;
        let mut buf = [0u8; MAX_PACKET_LEN];
        let mut out = [0u8; MAX_PACKET_LEN];
        // Replies in flight, handled when their arrival time comes.
        let mut in_flight: Vec<(u64, [u8; MAX_PACKET_LEN], usize)> = Vec::new();
        let (mut fwd_drops, mut rev_drops) = (0u64, 0u64);
        let mut t = 0;
        while t < 600 * SEC {
            in_flight.sort_by_key(|f| core::cmp::Reverse(f.0));
            while in_flight.last().is_some_and(|f| f.0 <= t) {
                if let Some((at, pkt, n)) = in_flight.pop() {
                    let smp = s.handle_reply(&pkt[..n], at).unwrap();
                    e.record_reply(&smp);
                }
            }
            while s.handle_timeout(t).is_some() {
                e.record_loss(t);
            }
            if let Some(n) = s.poll_transmit(t, &mut buf) {
                let fwd = 15 * MS + (rng.unit() * 10.0 * MS as f64) as u64;
                let rev = 15 * MS + (rng.unit() * 10.0 * MS as f64) as u64;
                let first = t == 0;
                if !first && rng.unit() < 0.015 {
                    fwd_drops += 1;
                } else {
                    let m = r
                        .handle_request(&buf[..n], reflector_clock + t + fwd, &mut out)
                        .unwrap();
                    if !first && rng.unit() < 0.015 {
                        rev_drops += 1;
                    } else {
                        in_flight.push((t + fwd + rev, out, m));
                    }
                }
            }
            t += MS;
        }
        let m = e.metrics(t);
        let rtt = m.rtt.unwrap();
        assert!((rtt.mean_us - 40_000.0).abs() < 1_000.0, "{}", rtt.mean_us);
        assert!(rtt.p99_us <= 50_000.0 && rtt.p99_us > 47_000.0);
        // Loss within ±10 % of what the link really dropped.
        let lost = fwd_drops + rev_drops;
        let real = lost as f64 / s.counters().tx as f64;
        let got = m.loss_ratio.unwrap();
        assert!((got - real).abs() <= real * 0.10, "{got} vs {real}");
        assert!((got - 0.03).abs() <= 0.003 * 2.0, "{got}");
        // Direction split: within ±10 % of each direction's real drops.
        assert!(m.forward.lost.abs_diff(fwd_drops) * 10 <= fwd_drops);
        assert!(m.reverse.lost.abs_diff(rev_drops) * 10 <= rev_drops);
        // RFC 3550 jitter of U(−5, 5) ms transit: E|D| = 10/3 ms.
        for d in [m.forward, m.reverse] {
            let j = d.jitter_us.unwrap();
            assert!(j > 2_500.0 && j < 4_300.0, "{j}");
            let dv = d.delay_variation.unwrap();
            assert!((dv.mean_us - 3_333.0).abs() < 200.0, "{}", dv.mean_us);
            assert!(dv.p99_us <= 10_000.0 && dv.p99_us > 8_000.0);
        }
    }

    #[test]
    fn passive_counters_add_up_and_give_rates_over_the_window() {
        let mut e = est();
        let d = PassiveDelta {
            tx_bytes: 1_000,
            tx_packets: 10,
            rx_bytes: 2_000,
            rx_packets: 20,
            drops: 1,
        };
        // One delta every 100 ms from 0 to 19.9 s.
        for i in 0..200u64 {
            e.record_passive(i * 100 * MS, &d);
        }
        // At 20 s the window is the slots from 11 s on: 9 s so far, with
        // 90 deltas (11.0–19.9 s).
        let m = e.metrics(20 * SEC);
        assert_eq!(m.passive.span_ns, 9 * SEC);
        assert_eq!(m.passive.totals.tx_bytes, 90_000);
        assert_eq!(m.passive.totals.rx_packets, 1_800);
        assert_eq!(m.passive.totals.drops, 90);
        assert!((m.passive.tx_bits_per_sec - 80_000.0).abs() < 1e-6);
        assert!((m.passive.rx_packets_per_sec - 200.0).abs() < 1e-9);
        assert!((m.passive.drops_per_sec - 10.0).abs() < 1e-9);
        // Before the window has filled, the rate is over the time since the
        // first record.
        let mut e = est();
        e.record_passive(3 * SEC, &d);
        let m = e.metrics(5 * SEC);
        assert_eq!(m.passive.span_ns, 2 * SEC);
        assert!((m.passive.tx_packets_per_sec - 5.0).abs() < 1e-9);
    }
}
