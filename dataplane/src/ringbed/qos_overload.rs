//! A QoS overload run on the ring bed: the real [`Worker`] with a shaped
//! WAN port, fed by a paced generator, and a collector that records every
//! packet the worker sent. A test and benchmark harness (the `qos_worker`
//! integration test and `patronus-bench qos-worker` share it), not part of
//! the data path.
//!
//! The calling thread generates and collects; the worker runs on
//! [`Params::worker_cpu`]. The generator offers `overload` times the link
//! rate, every `realtime_every`-th packet RealTime and the others Bulk,
//! each stamped in its UDP payload with the TSC at injection, its class and
//! its sequence number. [`ByMarker`] queues every packet on the WAN port in
//! the class it carries, and the port's [`Shaper`] runs the given
//! [`SchedulerConfig`]. Between offers the same thread takes what the
//! worker transmitted, so a recorded delay is injection → scheduler → tx
//! ring, as the next hop would see it.
//!
//! The harness loses nothing of its own: the generator waits when the pool
//! or the LAN ring is full instead of dropping, and the run ends once every
//! offered packet has been collected or counted dropped by the worker
//! (or [`DRAIN_LIMIT_SECONDS`] after the last offer, if the worker cannot
//! get there). So the counts in the [`Outcome`] are the worker's alone;
//! only the delays and the rate depend on the machine.

#![forbid(unsafe_code)]

use super::{RingBed, LAN, WAN};
use crate::buf::PacketBuf;
use crate::dpdk::{self, tsc, Mbuf, MbufBurst, Mempool, Ring};
use crate::qos::{QosClass, QosSnapshot, Scheduler, SchedulerConfig};
use crate::stats::{Counter, DropReason, WorkerCounters, WorkerSnapshot};
use crate::synth;
use crate::wire::ethernet::Address;
use crate::worker::{Polling, PortQueues, Processor, Shaper, Verdict, Worker};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};

/// Where the generator writes in the UDP payload of its IPv4 frames: the
/// TSC at injection (8 bytes, little-endian), the class (a [`QosClass`]
/// number) and the sequence number (8 bytes, little-endian).
pub const STAMP_AT: usize = synth::min_udp_frame_len(false);
pub const CLASS_AT: usize = STAMP_AT + 8;
pub const SEQ_AT: usize = CLASS_AT + 1;
/// The smallest frame that holds the stamp, the class and the sequence.
pub const MIN_FRAME: usize = SEQ_AT + 8;
/// The largest frame (without FCS).
pub const MAX_FRAME: usize = 1514;
/// How long after the last offer the collector waits for the worker to
/// account for every packet before stopping it anyway.
pub const DRAIN_LIMIT_SECONDS: u64 = 10;
/// The most packets one run may offer (the outcome keeps one record each).
pub const MAX_PACKETS: u64 = 1 << 24;

/// Packets the generator hands the LAN ring at once, at most: small, so
/// the offers stay close to their pacing.
const OFFER_BURST: usize = 8;

/// One run's workload and scheduler.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// The WAN port's scheduler. Its `rate_bps` is the link rate and its
    /// clock must be the TSC (`ticks_per_second` = [`dpdk::tsc_hz`]), as
    /// the worker's is.
    pub config: SchedulerConfig,
    /// Frame size in bytes, without FCS: [`MIN_FRAME`] to [`MAX_FRAME`].
    pub frame_size: usize,
    /// Offered load over the link rate: 2.0 offers twice what the link
    /// carries. The offer counts frame bytes, the link wire bytes (frame
    /// plus `config.overhead_bytes`).
    pub overload: f64,
    /// The RealTime share: every `realtime_every`-th packet, from the
    /// first, is RealTime (10: a tenth); the others are Bulk.
    pub realtime_every: u64,
    /// How long the generator offers, in seconds.
    pub seconds: f64,
    /// The CPU the worker is pinned to. The calling thread, which generates
    /// and collects, should be on another one.
    pub worker_cpu: usize,
}

impl Params {
    /// A `rate_bps` link with the default scheduler
    /// ([`SchedulerConfig::new`]), 1000-byte frames offered at twice the
    /// link rate for a second, a tenth of them RealTime, the worker on
    /// CPU 1.
    pub fn new(tsc_hz: u64, rate_bps: u64) -> Params {
        Params {
            config: SchedulerConfig::new(tsc_hz, rate_bps),
            frame_size: 1000,
            overload: 2.0,
            realtime_every: 10,
            seconds: 1.0,
            worker_cpu: 1,
        }
    }

    /// The link rate, bits per second.
    pub fn rate_bps(&self) -> u64 {
        self.config.rate_bps
    }

    /// Packets per second offered.
    pub fn offered_pps(&self) -> f64 {
        self.overload * self.config.rate_bps as f64 / 8.0 / self.frame_size as f64
    }

    /// Packets the run offers, sequence numbers 0 to this minus one.
    pub fn packets(&self) -> u64 {
        (self.offered_pps() * self.seconds).round() as u64
    }

    /// Whether packet `seq` is RealTime.
    pub fn is_realtime(&self, seq: u64) -> bool {
        seq.is_multiple_of(self.realtime_every)
    }

    /// RealTime packets among the first `offered`.
    pub fn realtime_among(&self, offered: u64) -> u64 {
        offered.div_ceil(self.realtime_every)
    }

    /// RealTime packets the run offers.
    pub fn realtime_packets(&self) -> u64 {
        self.realtime_among(self.packets())
    }

    fn check(&self) -> Result<(), String> {
        if !(MIN_FRAME..=MAX_FRAME).contains(&self.frame_size) {
            return Err(format!(
                "frame size {} is outside {MIN_FRAME} to {MAX_FRAME}",
                self.frame_size
            ));
        }
        if !(self.overload.is_finite() && self.overload > 0.0) {
            return Err(format!("overload {} must be above 0", self.overload));
        }
        if !(self.seconds.is_finite() && self.seconds > 0.0) {
            return Err(format!("seconds {} must be above 0", self.seconds));
        }
        if self.realtime_every == 0 {
            return Err("realtime_every must be at least 1".into());
        }
        let hz = dpdk::tsc_hz();
        if self.config.ticks_per_second != hz {
            return Err(format!(
                "the scheduler's clock ({} Hz) must be the TSC ({hz} Hz)",
                self.config.ticks_per_second
            ));
        }
        match self.packets() {
            0 => Err("the run offers no packet".into()),
            n if n > MAX_PACKETS => Err(format!("{n} packets is above {MAX_PACKETS}")),
            _ => Ok(()),
        }
    }
}

/// Queues every packet from the LAN port on the WAN port, in the class the
/// generator wrote at [`CLASS_AT`] (Bulk if there is none).
#[derive(Debug, Clone, Copy, Default)]
pub struct ByMarker;

impl Processor for ByMarker {
    #[inline]
    fn process<B: PacketBuf>(&mut self, packet: &mut B, in_port: u8, _now: u64) -> Verdict {
        if in_port != LAN {
            return Verdict::Drop(DropReason::NoRoute);
        }
        let class = packet
            .data()
            .get(CLASS_AT)
            .and_then(|&c| QosClass::from_u8(c))
            .unwrap_or(QosClass::Bulk);
        Verdict::Queue {
            port: WAN,
            class: class as u8,
        }
    }
}

/// One packet the worker sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub seq: u64,
    pub class: QosClass,
    /// From injection to collection, in TSC ticks.
    pub delay: u64,
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub tsc_hz: u64,
    /// Packets the LAN ring took (sequence numbers 0 to this minus one):
    /// all of [`Params::packets`] unless the worker failed or the run hit
    /// its limit.
    pub offered: u64,
    pub offered_realtime: u64,
    pub offered_bulk: u64,
    /// Every packet the worker sent, in the order it left.
    pub sent: Vec<Sent>,
    /// Their bytes, and the TSC at the first and the last collection that
    /// found any.
    pub sent_bytes: u64,
    pub first_sent_at: u64,
    pub last_sent_at: u64,
    /// The worker's counters after it stopped (its drops by reason; a
    /// packet still queued in the scheduler then counts as
    /// `QosQueueFull`).
    pub counters: WorkerSnapshot,
    /// The WAN scheduler's per-class counters when the worker stopped.
    pub scheduler: QosSnapshot,
    /// Packets the worker never read from the LAN ring (freed at the end;
    /// 0 unless the run hit its limit).
    pub unread: u64,
    /// `pool.in_use()` before the run and after it, everything freed.
    pub pool_in_use_before: u32,
    pub pool_in_use_after: u32,
}

impl Outcome {
    /// Packets of `class` the worker sent.
    pub fn sent_count(&self, class: QosClass) -> u64 {
        self.sent.iter().filter(|s| s.class == class).count() as u64
    }

    /// The worker's drops for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.counters.drop_count(reason)
    }

    /// `class`'s delays in microseconds, sorted.
    pub fn delays_us(&self, class: QosClass) -> Vec<f64> {
        let us_per_tick = 1e6 / self.tsc_hz.max(1) as f64;
        let mut d: Vec<u64> = self
            .sent
            .iter()
            .filter(|s| s.class == class)
            .map(|s| s.delay)
            .collect();
        d.sort_unstable();
        d.into_iter().map(|t| t as f64 * us_per_tick).collect()
    }

    /// The `percent`-th percentile (nearest rank below) of `class`'s delay,
    /// in microseconds; 0 if none was sent.
    pub fn delay_percentile_us(&self, class: QosClass, percent: u32) -> f64 {
        percentile(&self.delays_us(class), percent)
    }

    /// Bits per second the link carried: the bytes sent over the span
    /// from the first collection to the last.
    pub fn carried_bps(&self) -> f64 {
        let span = self.last_sent_at.saturating_sub(self.first_sent_at) as f64;
        if span <= 0.0 {
            return 0.0;
        }
        self.sent_bytes as f64 * 8.0 * self.tsc_hz as f64 / span
    }
}

/// The `percent`-th percentile (nearest rank below) of sorted values; 0
/// for none.
pub fn percentile(sorted: &[f64], percent: u32) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => sorted[(n - 1) * percent.min(100) as usize / 100],
    }
}

/// Runs the worker on `bed` with a shaped WAN port while this thread
/// offers the workload and collects what leaves. `pool` feeds the
/// generator; make `bed`'s rings at least as large as the pool, so that
/// the worker's tx ring cannot overflow whenever the collector runs late.
/// The bed is empty again afterwards, ready for the next run.
pub fn run(bed: &RingBed, pool: &Mempool, params: &Params) -> Result<Outcome, String> {
    params.check()?;
    let hz = params.config.ticks_per_second;
    let scheduler: Scheduler<Mbuf> =
        Scheduler::new(&params.config, tsc()).map_err(|e| e.to_string())?;
    let queues: Vec<PortQueues<'_>> = bed
        .ports
        .iter()
        .map(|p| {
            let (rx, tx) = p.queue_pair(0).ok_or("a ring port has a queue pair")?;
            Ok(PortQueues { rx, tx })
        })
        .collect::<Result<_, String>>()?;
    let counters = WorkerCounters::default();
    let (ready, stop) = (AtomicBool::new(false), AtomicBool::new(false));
    let pool_in_use_before = pool.in_use();
    let mut collector = Collector::new(params.packets());
    let worker_cpu = params.worker_cpu;

    let (offered, worker_result) = std::thread::scope(|scope| {
        let (counters, ready, stop) = (&counters, &ready, &stop);
        let worker = scope.spawn(move || -> Result<QosSnapshot, String> {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: worker_cpu }) {
                return Err(format!("cannot pin the worker to CPU {worker_cpu}"));
            }
            let _lcore = dpdk::register_thread().map_err(|e| e.to_string())?;
            let worker = Worker::new(queues, ByMarker, counters, Polling::Busy)?;
            let mut worker =
                worker.with_shaper(usize::from(WAN), Shaper::new(scheduler, None, hz))?;
            ready.store(true, Ordering::SeqCst);
            worker.run(stop);
            worker
                .shaper(usize::from(WAN))
                .map(|s| s.scheduler().snapshot())
                .ok_or_else(|| "the WAN port has no shaper".to_string())
        });
        let worker_gone = || worker.is_finished();
        // Offers start once the worker polls, so that no delay counts its
        // start-up.
        while !ready.load(Ordering::SeqCst) && !worker_gone() {
            std::thread::yield_now();
        }
        let offered = generate(bed, pool, params, &mut collector, &worker_gone);
        if let Ok(offered) = offered {
            // What is still queued leaves at the link rate.
            let limit = tsc().saturating_add(DRAIN_LIMIT_SECONDS.saturating_mul(hz));
            loop {
                collector.collect(&bed.wan_tx);
                let dropped: u64 = counters.drops.iter().map(Counter::get).sum();
                if collector.sent.len() as u64 + dropped >= offered
                    || tsc() >= limit
                    || worker_gone()
                {
                    break;
                }
                core::hint::spin_loop();
            }
        }
        stop.store(true, Ordering::SeqCst);
        let result = worker
            .join()
            .unwrap_or_else(|_| Err("the worker panicked".into()));
        (offered, result)
    });
    // Whatever the worker flushed on its way out, and whatever it never
    // read, so the bed is empty for the next run.
    collector.collect(&bed.wan_tx);
    let mut unread = 0u64;
    let mut burst = MbufBurst::new();
    while bed.lan_rx.dequeue_burst(&mut burst) > 0 {
        unread += burst.free_all() as u64;
    }
    let (offered, scheduler) = (offered?, worker_result?);
    let offered_realtime = params.realtime_among(offered);
    Ok(Outcome {
        tsc_hz: hz,
        offered,
        offered_realtime,
        offered_bulk: offered - offered_realtime,
        sent: collector.sent,
        sent_bytes: collector.bytes,
        first_sent_at: collector.first.unwrap_or(0),
        last_sent_at: collector.last,
        counters: counters.snapshot(),
        scheduler,
        unread,
        pool_in_use_before,
        pool_in_use_after: pool.in_use(),
    })
}

/// Offers `params.packets()` packets on the LAN port at their pacing,
/// collecting between offers. Returns how many the LAN ring took (fewer
/// only if the worker went away or the run hit its limit).
fn generate(
    bed: &RingBed,
    pool: &Mempool,
    params: &Params,
    collector: &mut Collector,
    worker_gone: &dyn Fn() -> bool,
) -> Result<u64, String> {
    let hz = params.config.ticks_per_second;
    let template = frame(params.frame_size);
    let total = params.packets();
    let gap = hz as f64 / params.offered_pps();
    let start = tsc();
    let limit_ticks = (params.seconds + DRAIN_LIMIT_SECONDS as f64) * hz as f64;
    let limit = start.saturating_add(limit_ticks as u64);
    let mut burst = MbufBurst::new();
    let (mut next, mut offered) = (0u64, 0u64);
    while offered < total && !worker_gone() {
        let now = tsc();
        if now >= limit {
            break;
        }
        // What is due now, stamped as it is made. A full pool waits for the
        // collector to free what the worker sent.
        while next < total
            && burst.len() < OFFER_BURST
            && start.saturating_add((next as f64 * gap) as u64) <= now
        {
            let Some(mut m) = pool.alloc() else {
                break;
            };
            m.fill_from(&template).map_err(|e| e.to_string())?;
            let class = if params.is_realtime(next) {
                QosClass::RealTime
            } else {
                QosClass::Bulk
            };
            let d = m.data_mut();
            d[CLASS_AT] = class as u8;
            d[SEQ_AT..SEQ_AT + 8].copy_from_slice(&next.to_le_bytes());
            d[STAMP_AT..STAMP_AT + 8].copy_from_slice(&tsc().to_le_bytes());
            burst
                .push(m)
                .map_err(|_| "the offer burst is full".to_string())?;
            next += 1;
        }
        // A full LAN ring keeps the rest for the next turn, in order.
        if !burst.is_empty() {
            offered += bed.lan_rx.enqueue_burst(&mut burst) as u64;
        }
        collector.collect(&bed.wan_tx);
    }
    Ok(offered)
}

/// What the next hop received, in order.
struct Collector {
    sent: Vec<Sent>,
    bytes: u64,
    first: Option<u64>,
    last: u64,
    burst: MbufBurst,
}

impl Collector {
    fn new(expected: u64) -> Collector {
        Collector {
            sent: Vec::with_capacity(usize::try_from(expected).unwrap_or(0)),
            bytes: 0,
            first: None,
            last: 0,
            burst: MbufBurst::new(),
        }
    }

    /// Takes everything in `ring` now.
    fn collect(&mut self, ring: &Ring) {
        while ring.dequeue_burst(&mut self.burst) > 0 {
            let now = tsc();
            for m in self.burst.drain() {
                let d = m.data();
                let class = d
                    .get(CLASS_AT)
                    .and_then(|&c| QosClass::from_u8(c))
                    .unwrap_or(QosClass::Bulk);
                self.sent.push(Sent {
                    seq: read_u64(d, SEQ_AT),
                    class,
                    delay: now.saturating_sub(read_u64(d, STAMP_AT)),
                });
                self.bytes += d.len() as u64;
            }
            self.first.get_or_insert(now);
            self.last = now;
        }
    }
}

fn read_u64(d: &[u8], at: usize) -> u64 {
    d.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// A LAN host's UDP frame of `size` bytes towards a remote host.
fn frame(size: usize) -> Vec<u8> {
    synth::udp_frame(
        Address([2, 0, 0, 0, 1, 2]),
        Address([2, 0, 0, 0, 1, 1]),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2)),
        64,
        size,
    )
}
