//! The poll-mode, run-to-completion worker loop (DPDK l3fwd style).
//!
//! One worker owns one rx/tx queue pair on every port. Each iteration reads
//! the TSC once, receives a burst of up to 32 packets from each port, runs
//! the [`Processor`] on every packet, buffers the packets per output port and
//! flushes those buffers with one tx burst each before the next iteration.
//! Nothing on this path locks, allocates or makes a syscall; the adaptive
//! mode sleeps only after a run of empty polls.

use crate::buf::PacketBuf;
use crate::dpdk::{tsc, Mbuf, MbufBurst, RxQueue, TxQueue, BURST_SIZE};
use crate::punt::{InjectAction, Injected, PuntReason, Punted, WorkerRings};
use crate::qos::{PortShares, QosClass, Scheduler};
use crate::stats::{DropReason, PortCounters, WorkerCounters, MAX_PORTS};
use core::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What to do with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it out of the port with this index (in the worker's port list).
    Forward(u8),
    /// Send it out of `port` through that port's QoS scheduler, in `class`
    /// (a [`QosClass`] number); ports without a scheduler send it at once.
    Queue {
        port: u8,
        class: u8,
    },
    Drop(DropReason),
    /// Hand it to the control thread.
    Punt(PuntReason),
    /// Fully handled here (a keepalive, for instance): free it, count nothing.
    Consumed,
    /// Belongs to another worker's state (for WireGuard, the peer's owner):
    /// hand it to that worker, which runs `process_local(aux)` on it.
    HandOff {
        worker: u8,
        aux: u32,
    },
}

/// Per-packet logic, written once against [`PacketBuf`] so it runs on
/// mbufs in the worker and on heap buffers in unit tests.
pub trait Processor {
    /// Handles one packet that arrived on port index `in_port`. `now` is the
    /// TSC read at the start of the burst.
    fn process<B: PacketBuf>(&mut self, packet: &mut B, in_port: u8, now: u64) -> Verdict;

    /// Handles a packet the control thread injected with
    /// `InjectAction::Process { aux }`. By default such packets are dropped.
    fn process_local<B: PacketBuf>(&mut self, _packet: &mut B, _aux: u32, _now: u64) -> Verdict {
        Verdict::Drop(DropReason::NoRoute)
    }

    /// Called once per loop iteration before rx, with the same `now`: apply
    /// what the control thread published.
    #[inline(always)]
    fn poll(&mut self, _now: u64) {}
}

/// Does nothing to the packet and sends it back out of the port pairs
/// (0↔1, 2↔3, ...): the bare I/O loop the benchmarks use as their baseline.
#[derive(Debug, Clone, Copy, Default)]
pub struct CrossConnect;

impl Processor for CrossConnect {
    #[inline(always)]
    fn process<B: PacketBuf>(&mut self, _packet: &mut B, in_port: u8, _now: u64) -> Verdict {
        Verdict::Forward(in_port ^ 1)
    }
}

/// How a worker waits for packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polling {
    /// Spin on the queues forever: lowest latency, one core at 100%.
    Busy,
    /// After a run of empty polls, sleep with a growing back-off (up to
    /// [`ADAPTIVE_MAX_SLEEP`]): for laptops and shared CI machines.
    Adaptive,
}

/// Empty polls before the adaptive mode starts sleeping.
pub const ADAPTIVE_SPIN_POLLS: u32 = 256;
/// The longest adaptive sleep; bounds the added latency of the first packet
/// after an idle period.
pub const ADAPTIVE_MAX_SLEEP: Duration = Duration::from_micros(500);

/// A port's QoS scheduler on one worker, shaping to this worker's share
/// of the port rate (see [`crate::qos::share`]).
pub struct Shaper<'p> {
    scheduler: Scheduler<Mbuf>,
    shares: Option<(&'p PortShares, usize)>,
    rate_bps: u64,
    /// TSC ticks between demand reports to the control thread.
    publish_every: u64,
    last_publish: u64,
}

impl<'p> Shaper<'p> {
    /// `shares`: the port's shares and this worker's index in them, when
    /// several workers share the port rate; `tsc_hz` paces the reports.
    pub fn new(
        scheduler: Scheduler<Mbuf>,
        shares: Option<(&'p PortShares, usize)>,
        tsc_hz: u64,
    ) -> Shaper<'p> {
        Shaper {
            rate_bps: scheduler.rate_bps(),
            scheduler,
            shares,
            publish_every: (tsc_hz / 1000).max(1),
            last_publish: 0,
        }
    }

    pub fn scheduler(&self) -> &Scheduler<Mbuf> {
        &self.scheduler
    }
}

/// One worker's queues on one port.
#[derive(Debug)]
pub struct PortQueues<'p> {
    pub rx: RxQueue<'p>,
    pub tx: TxQueue<'p>,
}

/// A worker: its queues, its processor and its counters.
pub struct Worker<'p, P> {
    ports: Vec<PortQueues<'p>>,
    rings: Option<&'p WorkerRings>,
    all_rings: &'p [WorkerRings],
    tx_pending: Vec<MbufBurst>,
    rx_burst: MbufBurst,
    processor: P,
    /// Per port: its QoS scheduler, if the port is shaped.
    shapers: Vec<Option<Shaper<'p>>>,
    counters: &'p WorkerCounters,
    polling: Polling,
    idle_streak: u32,
    last_tsc: u64,
    last_had_packets: bool,
}

impl<'p, P: Processor> Worker<'p, P> {
    /// At most [`MAX_PORTS`] ports; extra ones are refused.
    pub fn new(
        ports: Vec<PortQueues<'p>>,
        processor: P,
        counters: &'p WorkerCounters,
        polling: Polling,
    ) -> Result<Self, String> {
        if ports.len() > MAX_PORTS {
            return Err(format!(
                "a worker polls at most {MAX_PORTS} ports, got {}",
                ports.len()
            ));
        }
        let tx_pending = ports.iter().map(|_| MbufBurst::new()).collect();
        let shapers = ports.iter().map(|_| None).collect();
        Ok(Worker {
            shapers,
            ports,
            rings: None,
            all_rings: &[],
            tx_pending,
            rx_burst: MbufBurst::new(),
            processor,
            counters,
            polling,
            idle_streak: 0,
            last_tsc: tsc(),
            last_had_packets: false,
        })
    }

    /// Connects the worker to the control thread and to the other workers:
    /// `all[me]` is this worker's pair of rings (punted packets go to its
    /// `punt`, its `inject` is drained every iteration), and hand-offs to
    /// worker `w` go to `all[w].inject`.
    pub fn with_rings(mut self, all: &'p [WorkerRings], me: usize) -> Self {
        self.rings = all.get(me);
        self.all_rings = all;
        self
    }

    /// Shapes what leaves `port` with a QoS scheduler ([`Verdict::Queue`]
    /// packets go through it). Refused for a port the worker does not poll.
    pub fn with_shaper(mut self, port: usize, shaper: Shaper<'p>) -> Result<Self, String> {
        match self.shapers.get_mut(port) {
            Some(slot) => {
                *slot = Some(shaper);
                Ok(self)
            }
            None => Err(format!("no port {port} to shape")),
        }
    }

    /// The QoS scheduler of `port`, if it is shaped.
    pub fn shaper(&self, port: usize) -> Option<&Shaper<'p>> {
        self.shapers.get(port).and_then(Option::as_ref)
    }

    /// Polls until `stop` is set, then flushes what is pending.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            let received = self.poll_once();
            // Queued packets leave on the schedulers' clock: no sleeping
            // while any wait.
            if received == 0 && !self.shaping() {
                self.idle();
            }
        }
        self.flush_all();
    }

    fn shaping(&self) -> bool {
        self.shapers
            .iter()
            .flatten()
            .any(|s| !s.scheduler.is_empty())
    }

    /// One iteration: rx, process and tx on every port. Returns how many
    /// packets were received.
    #[inline]
    pub fn poll_once(&mut self) -> usize {
        let now = tsc();
        if self.last_had_packets {
            self.counters
                .busy_cycles
                .add(now.wrapping_sub(self.last_tsc));
        }
        self.last_tsc = now;
        self.counters.polls.add(1);

        self.processor.poll(now);
        let mut received = 0;
        let mut out = Outputs {
            ports: &mut self.ports,
            tx_pending: &mut self.tx_pending,
            shapers: &mut self.shapers,
            counters: self.counters,
            rings: self.rings,
            all_rings: self.all_rings,
            now,
        };
        if let Some(rings) = self.rings {
            for _ in 0..BURST_SIZE {
                let Some(injected) = rings.inject.pop() else {
                    break;
                };
                received += 1;
                self.counters.injected.add(1);
                let mut packet = injected.mbuf;
                let verdict = match injected.action {
                    InjectAction::Transmit => Verdict::Forward(injected.port),
                    InjectAction::Process { aux } => {
                        self.processor.process_local(&mut packet, aux, now)
                    }
                };
                out.dispatch(verdict, packet, injected.port);
            }
        }
        for in_port in 0..out.ports.len() {
            let n = out.ports[in_port].rx.rx_burst(&mut self.rx_burst);
            if n == 0 {
                continue;
            }
            received += n;
            let mut rx_bytes = 0u64;
            for mut packet in self.rx_burst.drain() {
                rx_bytes += packet.len() as u64;
                let verdict = self.processor.process(&mut packet, in_port as u8, now);
                out.dispatch(verdict, packet, in_port as u8);
            }
            let c = &self.counters.ports[in_port];
            c.rx_packets.add(n as u64);
            c.rx_bytes.add(rx_bytes);
        }
        let shaped = out.drain_shapers();
        if received == 0 && shaped == 0 {
            self.counters.idle_polls.add(1);
            self.last_had_packets = false;
        } else {
            self.flush_all();
            self.last_had_packets = true;
            self.idle_streak = 0;
        }
        received
    }

    /// Sends everything buffered.
    pub fn flush_all(&mut self) {
        for (out, (queues, pending)) in self.ports.iter_mut().zip(&mut self.tx_pending).enumerate()
        {
            if !pending.is_empty() {
                flush(queues, pending, &self.counters.ports[out], self.counters);
            }
        }
    }

    fn idle(&mut self) {
        self.idle_streak = self.idle_streak.saturating_add(1);
        match self.polling {
            Polling::Busy => core::hint::spin_loop(),
            Polling::Adaptive if self.idle_streak > ADAPTIVE_SPIN_POLLS => {
                let steps = (self.idle_streak - ADAPTIVE_SPIN_POLLS) / 64;
                let sleep = Duration::from_micros(10u64 << steps.min(6)).min(ADAPTIVE_MAX_SLEEP);
                std::thread::sleep(sleep);
            }
            Polling::Adaptive => core::hint::spin_loop(),
        }
    }

    pub fn processor(&self) -> &P {
        &self.processor
    }
}

impl<P> Drop for Worker<'_, P> {
    fn drop(&mut self) {
        // Packets still queued in a scheduler were never sent: count them.
        for shaper in self.shapers.iter_mut().flatten() {
            let queued = shaper.scheduler.len();
            if queued > 0 {
                self.counters.drop(DropReason::QosQueueFull, queued as u64);
            }
        }
        // Anything still pending is freed by MbufBurst's Drop; nothing leaks.
        for pending in &mut self.tx_pending {
            let n = pending.free_all();
            if n > 0 {
                self.counters.drop(DropReason::TxFull, n as u64);
            }
        }
    }
}

/// Where verdicts send packets: the per-port tx buffers and the punt ring.
struct Outputs<'w, 'p> {
    ports: &'w mut Vec<PortQueues<'p>>,
    tx_pending: &'w mut Vec<MbufBurst>,
    shapers: &'w mut Vec<Option<Shaper<'p>>>,
    counters: &'p WorkerCounters,
    rings: Option<&'p WorkerRings>,
    all_rings: &'p [WorkerRings],
    now: u64,
}

impl Outputs<'_, '_> {
    /// Buffers a packet for `out`'s next tx burst (flushing a full one).
    #[inline(always)]
    fn send(&mut self, out: usize, packet: Mbuf) {
        let (Some(pending), Some(queues)) = (self.tx_pending.get_mut(out), self.ports.get_mut(out))
        else {
            self.counters.drop(DropReason::NoRoute, 1);
            return;
        };
        if let Err(packet) = pending.push(packet) {
            // Cannot happen: we flush at 32. Count it anyway.
            drop(packet);
            self.counters.drop(DropReason::TxFull, 1);
        }
        if pending.is_full() {
            flush(queues, pending, &self.counters.ports[out], self.counters);
        }
    }

    /// Moves what the QoS schedulers release now into the tx buffers: at
    /// most two bursts per port per iteration, so rx keeps its turn.
    /// Returns how many packets left the schedulers.
    fn drain_shapers(&mut self) -> usize {
        let mut moved = 0;
        for port in 0..self.shapers.len() {
            let Some(shaper) = self.shapers[port].as_mut() else {
                continue;
            };
            if let Some((shares, me)) = shaper.shares {
                let rate = shares.share_bps(me);
                if rate != shaper.rate_bps && rate > 0 {
                    shaper.scheduler.set_rate(self.now, rate);
                    shaper.rate_bps = rate;
                }
                if self.now.wrapping_sub(shaper.last_publish) >= shaper.publish_every {
                    shares.publish(me, &shaper.scheduler);
                    shaper.last_publish = self.now;
                }
            }
            if shaper.scheduler.is_empty() {
                continue;
            }
            let counters = self.counters;
            for _ in 0..2 {
                let Some(pending) = self.tx_pending.get_mut(port) else {
                    break;
                };
                let room = BURST_SIZE - pending.len();
                let n = shaper.scheduler.dequeue_burst(
                    self.now,
                    room,
                    |m, _class| {
                        if let Err(m) = pending.push(m) {
                            drop(m);
                            counters.drop(DropReason::TxFull, 1);
                        }
                    },
                    |m, _class, reason| {
                        drop(m);
                        counters.drop(DropReason::from_qos(reason), 1);
                    },
                );
                moved += n;
                if pending.is_full() {
                    if let Some(queues) = self.ports.get_mut(port) {
                        flush(queues, pending, &counters.ports[port], counters);
                    }
                } else {
                    break;
                }
            }
        }
        moved
    }

    #[inline(always)]
    fn dispatch(&mut self, verdict: Verdict, packet: Mbuf, in_port: u8) {
        match verdict {
            Verdict::Forward(out) => self.send(usize::from(out), packet),
            Verdict::Queue { port, class } => {
                let out = usize::from(port);
                match self.shapers.get_mut(out).and_then(Option::as_mut) {
                    Some(shaper) => {
                        let class = QosClass::from_u8(class).unwrap_or(QosClass::DEFAULT);
                        let len = packet.len() as u32;
                        if let Err((m, reason)) =
                            shaper.scheduler.enqueue(class, packet, len, self.now)
                        {
                            drop(m);
                            self.counters.drop(DropReason::from_qos(reason), 1);
                        }
                    }
                    None => self.send(out, packet),
                }
            }
            Verdict::Drop(reason) => self.counters.drop(reason, 1),
            Verdict::Consumed => {}
            Verdict::HandOff { worker, aux } => {
                let handed = Injected {
                    port: in_port,
                    action: InjectAction::Process { aux },
                    mbuf: packet,
                };
                match self.all_rings.get(usize::from(worker)) {
                    Some(rings) if rings.inject.push(handed).is_ok() => {
                        self.counters.handed_off.add(1)
                    }
                    _ => self.counters.drop(DropReason::HandOffFull, 1),
                }
            }
            Verdict::Punt(reason) => match self.rings {
                Some(rings) => match rings.punt.push(Punted {
                    reason,
                    port: in_port,
                    mbuf: packet,
                }) {
                    Ok(()) => self.counters.punted.add(1),
                    Err(_) => self.counters.drop(DropReason::PuntFull, 1),
                },
                None => self.counters.drop(DropReason::PuntFull, 1),
            },
        }
    }
}

/// One tx burst; whatever the device does not take is freed and counted.
#[inline]
fn flush(
    queues: &mut PortQueues<'_>,
    pending: &mut MbufBurst,
    port: &PortCounters,
    all: &WorkerCounters,
) {
    let bytes: u64 = pending_bytes(pending);
    let want = pending.len();
    let sent = queues.tx.tx_burst(pending);
    if sent == want {
        port.tx_packets.add(sent as u64);
        port.tx_bytes.add(bytes);
    } else {
        let unsent_bytes = pending_bytes(pending);
        port.tx_packets.add(sent as u64);
        port.tx_bytes.add(bytes - unsent_bytes);
        let dropped = pending.free_all();
        all.drop(DropReason::TxFull, dropped as u64);
    }
}

#[inline]
fn pending_bytes(pending: &MbufBurst) -> u64 {
    pending.iter_lens().map(|l| l as u64).sum()
}
