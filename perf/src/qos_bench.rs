//! `qos`: the QoS scheduler's enqueue-plus-dequeue cost per packet with all
//! five classes active, against a bare FIFO (a preallocated `VecDeque`)
//! moving the same packets in the same run.
//!
//! Every class starts with a standing queue; each step enqueues a burst of
//! 32 packets spread over the classes and dequeues a burst of 32, with the
//! time read from the TSC once per burst as the worker does. The port rate
//! is far above what one core can move, so the buckets never hold a packet
//! back and every call does its full work (pick, bucket checks, counters,
//! delay histogram). Rounds alternate with the baseline's on the worker
//! core; the report gives the median round of each and their ratio.
//! No DPDK: the TSC is read through `dpdk::tsc` (a plain rdtsc, no EAL).

use crate::inproc::on_core;
use crate::Args;
use patronus_dataplane::dpdk::tsc;
use patronus_dataplane::qos::{QosClass, Scheduler, SchedulerConfig};
use serde_json::json;
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

const BURST: usize = 32;
/// Packets queued in each class before timing starts.
const STANDING: u32 = 64;
const WARMUP: Duration = Duration::from_millis(200);

/// One round: packets moved, TSC cycles and seconds spent.
#[derive(Debug, Clone, Copy)]
struct Round {
    packets: u64,
    cycles: u64,
    seconds: f64,
}

impl Round {
    fn ns_per_packet(&self) -> f64 {
        self.seconds * 1e9 / self.packets.max(1) as f64
    }
    fn cycles_per_packet(&self) -> f64 {
        self.cycles as f64 / self.packets.max(1) as f64
    }
}

/// TSC ticks per second, measured against the monotonic clock.
fn measure_tsc_hz() -> u64 {
    let (i0, t0) = (Instant::now(), tsc());
    std::thread::sleep(Duration::from_millis(100));
    let (secs, ticks) = (i0.elapsed().as_secs_f64(), tsc().wrapping_sub(t0));
    (ticks as f64 / secs) as u64
}

/// Runs `step` (which moves `BURST` packets) for `seconds` after a warm-up.
fn timed(seconds: f64, mut step: impl FnMut()) -> Round {
    let warm_end = Instant::now() + WARMUP;
    while Instant::now() < warm_end {
        step();
    }
    let end = Duration::from_secs_f64(seconds);
    let (start, t0) = (Instant::now(), tsc());
    let mut packets = 0u64;
    loop {
        for _ in 0..64 {
            step();
        }
        packets += 64 * BURST as u64;
        if start.elapsed() >= end {
            break;
        }
    }
    let cycles = tsc().wrapping_sub(t0);
    Round {
        packets,
        cycles,
        seconds: start.elapsed().as_secs_f64(),
    }
}

fn qos_round(
    size: u32,
    seconds: f64,
    tsc_hz: u64,
) -> Result<(Round, [u64; QosClass::COUNT]), String> {
    // The port far faster than one core: nothing is ever held back.
    let mut config = SchedulerConfig::new(tsc_hz, 1 << 40);
    for class in QosClass::ALL {
        config.class(class).queue_packets = 4096;
        config.class(class).queue_bytes = 16 << 20;
    }
    let mut s: Scheduler<u64> = Scheduler::new(&config, tsc()).map_err(|e| e.to_string())?;
    let mut handle = 0u64;
    for class in QosClass::ALL {
        for _ in 0..STANDING {
            handle += 1;
            s.enqueue(class, handle, size, tsc())
                .map_err(|(_, r)| r.name())?;
        }
    }
    let mut next_class = 0usize;
    let mut sink = 0u64;
    let round = timed(seconds, || {
        let now = tsc();
        for _ in 0..BURST {
            handle += 1;
            let class = QosClass::ALL[next_class];
            next_class = if next_class + 1 == QosClass::COUNT {
                0
            } else {
                next_class + 1
            };
            if let Err((h, _)) = s.enqueue(class, handle, size, now) {
                sink ^= h;
            }
        }
        let mut dropped = 0u64;
        s.dequeue_burst(now, BURST, |h, _| sink ^= h, |h, _, _| dropped ^= h);
        sink ^= dropped;
    });
    black_box(sink);
    let snap = s.snapshot();
    Ok((round, snap.classes.map(|c| c.sent_packets)))
}

fn baseline_round(size: u32, seconds: f64) -> Round {
    let mut q: VecDeque<(u64, u32, u64)> = VecDeque::with_capacity(8192);
    let mut handle = 0u64;
    for _ in 0..STANDING * QosClass::COUNT as u32 {
        handle += 1;
        q.push_back((handle, size, 0));
    }
    let mut sink = 0u64;
    let round = timed(seconds, || {
        let now = tsc();
        for _ in 0..BURST {
            handle += 1;
            q.push_back((handle, black_box(size), now));
        }
        for _ in 0..BURST {
            if let Some((h, len, at)) = q.pop_front() {
                sink ^= h ^ u64::from(len) ^ at;
            }
        }
    });
    black_box(sink);
    round
}

fn median(mut rounds: Vec<Round>) -> Round {
    rounds.sort_by(|a, b| a.cycles_per_packet().total_cmp(&b.cycles_per_packet()));
    rounds[rounds.len() / 2]
}

pub fn run(args: &Args) -> Result<serde_json::Value, String> {
    let size = u32::from(args.size);
    let (seconds, rounds) = (args.seconds, args.rounds.max(1));
    let core = args.worker_core;
    eprintln!("patronus-bench: qos: {size}-byte packets, 5 classes, {rounds} × {seconds:.1} s on CPU {core}...");
    let (ours, base, tsc_hz, per_class) = on_core(core, move || {
        let tsc_hz = measure_tsc_hz();
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        let mut per_class = [0u64; QosClass::COUNT];
        for _ in 0..rounds {
            let (r, sent) = qos_round(size, seconds, tsc_hz)?;
            ours.push(r);
            per_class = sent;
            base.push(baseline_round(size, seconds));
        }
        Ok((median(ours), median(base), tsc_hz, per_class))
    })?;
    eprintln!(
        "patronus-bench: qos: {:.1} ns, {:.1} cycles per packet; FIFO baseline {:.1} ns, {:.1} cycles",
        ours.ns_per_packet(),
        ours.cycles_per_packet(),
        base.ns_per_packet(),
        base.cycles_per_packet()
    );
    let ratio = ours.cycles_per_packet() / base.cycles_per_packet().max(f64::MIN_POSITIVE);
    Ok(json!({
        "scenario": "qos",
        "packet_size": size,
        "classes": QosClass::COUNT,
        "rounds": rounds,
        "seconds": seconds,
        "packets": ours.packets,
        "ns_per_packet": ours.ns_per_packet(),
        "cycles_per_packet": ours.cycles_per_packet(),
        "mpps": ours.packets as f64 / ours.seconds / 1e6,
        "baseline": "VecDeque FIFO, same packets",
        "baseline_ns_per_packet": base.ns_per_packet(),
        "baseline_cycles_per_packet": base.cycles_per_packet(),
        "ratio_vs_baseline": ratio,
        "extra_cycles_per_packet": ours.cycles_per_packet() - base.cycles_per_packet(),
        "sent_per_class_last_round": QosClass::ALL
            .iter()
            .map(|c| (c.name().to_string(), json!(per_class[*c as usize])))
            .collect::<serde_json::Map<_, _>>(),
        "tsc_hz": tsc_hz,
        "worker_core": core,
    }))
}
