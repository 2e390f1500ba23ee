//! QoS through the real worker loop on DPDK virtual devices (net_ring): a
//! WAN link shaped to 50 Mbit/s is offered twice that, RealTime at a tenth
//! of the load and Bulk at the rest. RealTime's queueing adds under 1 ms
//! while Bulk takes every drop, and the link carries its rate.
//!
//! The generator paces packets on the test thread, stamps each with the
//! TSC, and collects what the worker sent, so the delay measured is
//! injection → scheduler → tx ring as the next hop would see it.

use patronus_dataplane::buf::PacketBuf;
use patronus_dataplane::dpdk::{self, tsc, tsc_hz, Eal, EalMemory, MbufBurst, Mempool, Ring};
use patronus_dataplane::qos::{QosClass, Scheduler, SchedulerConfig};
use patronus_dataplane::ringbed::{RingBed, LAN, WAN};
use patronus_dataplane::stats::{DropReason, WorkerCounters};
use patronus_dataplane::synth;
use patronus_dataplane::wire::ethernet::Address;
use patronus_dataplane::worker::{Polling, PortQueues, Processor, Shaper, Verdict, Worker};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};

const RATE_BPS: u64 = 50_000_000;
const FRAME: usize = 1000;
/// Where the generator puts the TSC stamp and the class marker.
const STAMP_AT: usize = 60;
const MARK_AT: usize = 68;

/// Classifies by the marker byte the generator wrote: RealTime or Bulk.
struct ByMarker;

impl Processor for ByMarker {
    fn process<B: PacketBuf>(&mut self, packet: &mut B, in_port: u8, _now: u64) -> Verdict {
        if in_port != LAN {
            return Verdict::Drop(DropReason::NoRoute);
        }
        let class = match packet.data().get(MARK_AT) {
            Some(&c) if c == QosClass::RealTime as u8 => QosClass::RealTime,
            _ => QosClass::Bulk,
        };
        Verdict::Queue {
            port: WAN,
            class: class as u8,
        }
    }
}

fn frame() -> Vec<u8> {
    synth::udp_frame(
        Address([2, 0, 0, 0, 1, 2]),
        Address([2, 0, 0, 0, 1, 1]),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2)),
        64,
        FRAME,
    )
}

/// What the next hop received: per class, with RealTime's delays.
#[derive(Default)]
struct Collected {
    rt_delays: Vec<u64>,
    rt_rx: u64,
    bulk_rx: u64,
    rx_bytes: u64,
    first_rx: Option<u64>,
    last_rx: u64,
}

impl Collected {
    /// Takes what the worker sent until the ring is empty and `deadline`
    /// (a TSC value) has passed.
    fn drain(&mut self, ring: &Ring, out: &mut MbufBurst, deadline: u64) {
        loop {
            let n = ring.dequeue_burst(out);
            let now = tsc();
            for m in out.drain() {
                let d = m.data();
                let stamp = u64::from_le_bytes(d[STAMP_AT..STAMP_AT + 8].try_into().unwrap());
                if d[MARK_AT] == QosClass::RealTime as u8 {
                    self.rt_rx += 1;
                    self.rt_delays.push(now.saturating_sub(stamp));
                } else {
                    self.bulk_rx += 1;
                }
                self.rx_bytes += d.len() as u64;
                self.first_rx.get_or_insert(now);
                self.last_rx = now;
            }
            if n == 0 && tsc() >= deadline {
                break;
            }
        }
    }
}

fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) * p) / 100]
}

#[test]
fn overloaded_link_keeps_realtime_delay_under_a_millisecond_and_drops_bulk() {
    // Counted before EAL init, which narrows this thread's affinity (and
    // with it available_parallelism) to the main lcore's CPU.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "the worker and the generator need a CPU each");
    let memory = EalMemory::choose(true, 256, &format!("qostest{}", std::process::id()));
    let mut args = vec![
        "-l".to_string(),
        "0".into(),
        "--no-pci".into(),
        "--no-telemetry".into(),
    ];
    args.extend(memory.args);
    let _eal = Eal::init(&args).expect("EAL initialises (run the tests as root)");
    let pool = Mempool::new("qos_pool", 16383, 256, 2176).expect("mempool");
    let bed = RingBed::new("qos", 8191, &pool).expect("ring ports");
    let hz = tsc_hz();
    assert!(hz > 0);

    let counters = WorkerCounters::default();
    let stop = AtomicBool::new(false);
    let queues: Vec<PortQueues<'_>> = bed
        .ports
        .iter()
        .map(|p| {
            let (rx, tx) = p.queue_pair(0).unwrap();
            PortQueues { rx, tx }
        })
        .collect();
    let config = SchedulerConfig::new(hz, RATE_BPS);
    let scheduler: Scheduler<dpdk::Mbuf> = Scheduler::new(&config, tsc()).expect("scheduler");
    let template = frame();

    // 2:1 overload: the link's packet rate twice over, a tenth of it RealTime.
    let link_pps = RATE_BPS / 8 / FRAME as u64;
    let offered_pps = 2 * link_pps;
    let seconds = 2.0;
    let total = (offered_pps as f64 * seconds) as u64;
    let gap = hz / offered_pps;

    let (mut rt_sent, mut bulk_sent) = (0u64, 0u64);
    let mut got = Collected::default();
    std::thread::scope(|scope| {
        let (c, s) = (&counters, &stop);
        let worker = scope.spawn(move || {
            assert!(core_affinity::set_for_current(core_affinity::CoreId {
                id: cpus - 1
            }));
            let lcore = dpdk::register_thread().expect("worker registers as an lcore");
            let w = Worker::new(queues, ByMarker, c, Polling::Busy).unwrap();
            let mut w = w
                .with_shaper(usize::from(WAN), Shaper::new(scheduler, None, hz))
                .unwrap();
            w.run(s);
            if let Some(shaper) = w.shaper(usize::from(WAN)) {
                let snap = shaper.scheduler().snapshot();
                for c in QosClass::ALL {
                    let k = snap.class(c);
                    eprintln!(
                        "sched {}: enq {} sent {} dropped {:?} delay p50 {:?} p99 {:?}",
                        c.name(),
                        k.enqueued_packets,
                        k.sent_packets,
                        k.dropped_packets,
                        k.delay_percentile_ns(50),
                        k.delay_percentile_ns(99)
                    );
                }
            }
            drop(w);
            drop(lcore);
        });

        // The generator and collector on the other CPU than the worker.
        core_affinity::set_for_current(core_affinity::CoreId { id: 0 });
        let start = tsc();
        let mut next = start;
        let mut burst = MbufBurst::new();
        let mut out = MbufBurst::new();
        let mut i = 0u64;
        while i < total {
            // Send what is due now, in small bursts, stamped at injection.
            let now = tsc();
            while next <= now && i < total && burst.len() < 8 {
                let mut m = pool.alloc().expect("mempool has room");
                m.fill_from(&template).expect("frame fits");
                let realtime = i.is_multiple_of(10);
                let d = m.data_mut();
                d[MARK_AT] = if realtime {
                    QosClass::RealTime as u8
                } else {
                    QosClass::Bulk as u8
                };
                d[STAMP_AT..STAMP_AT + 8].copy_from_slice(&tsc().to_le_bytes());
                if realtime {
                    rt_sent += 1;
                } else {
                    bulk_sent += 1;
                }
                burst.push(m).expect("burst has room");
                next += gap;
                i += 1;
            }
            if !burst.is_empty() {
                let want = burst.len();
                let took = bed.lan_rx.enqueue_burst(&mut burst);
                assert_eq!(took, want, "the LAN rx ring keeps up");
            }
            got.drain(&bed.wan_tx, &mut out, 0);
        }
        // What is still queued leaves at the link rate; collect it.
        got.drain(&bed.wan_tx, &mut out, tsc() + hz / 2);
        stop.store(true, Ordering::SeqCst);
        worker.join().expect("worker exits cleanly");
    });

    let snapshot = counters.snapshot();
    eprintln!(
        "worker: {} polls ({} idle), rx {}, tx {}, drops {:?}, tsc_hz {hz}",
        snapshot.polls,
        snapshot.idle_polls,
        snapshot.rx_packets(),
        snapshot.tx_packets(),
        snapshot.drops
    );
    let bulk_drops = snapshot.drops[DropReason::QosQueueFull as usize];
    let Collected {
        mut rt_delays,
        rt_rx,
        bulk_rx,
        rx_bytes,
        first_rx,
        last_rx,
    } = got;
    rt_delays.sort_unstable();
    let to_us = |ticks: u64| ticks as f64 * 1e6 / hz as f64;
    let p50 = to_us(percentile(&rt_delays, 50));
    let p99 = to_us(percentile(&rt_delays, 99));
    let max = to_us(*rt_delays.last().unwrap_or(&0));
    let busy = (last_rx - first_rx.unwrap_or(last_rx)) as f64 / hz as f64;
    let rate = rx_bytes as f64 * 8.0 / busy.max(1e-9);
    eprintln!(
        "qos: offered {rt_sent} RealTime + {bulk_sent} Bulk at {:.0} Mbit/s on a {:.0} Mbit/s link; \
         received {rt_rx} RealTime, {bulk_rx} Bulk ({:.1} Mbit/s over {busy:.2} s); \
         {bulk_drops} dropped; RealTime delay p50 {p50:.0} us, p99 {p99:.0} us, max {max:.0} us",
        offered_pps as f64 * FRAME as f64 * 8.0 / 1e6,
        RATE_BPS as f64 / 1e6,
        rate / 1e6,
    );
    assert_eq!(rt_rx, rt_sent, "every RealTime packet is sent");
    assert!(bulk_drops > 0, "Bulk takes the overload's drops");
    assert_eq!(
        bulk_rx + bulk_drops,
        bulk_sent,
        "every Bulk packet is sent or dropped"
    );
    assert!(
        p99 < 1000.0,
        "RealTime's added delay stays under 1 ms (p99 {p99:.0} us)"
    );
    assert!(
        (rate / RATE_BPS as f64 - 1.0).abs() < 0.05,
        "the link carries its rate ({:.1} Mbit/s)",
        rate / 1e6
    );

    drop(bed);
    assert_eq!(pool.in_use(), 0, "every mbuf returns to the pool");
}
