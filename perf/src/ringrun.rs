//! One round of a ring scenario: the real `Worker` on its own core over the
//! `RingBed` ports, and on this thread a generator that offers packets and
//! turns whatever the worker transmits back into new offers, as a NIC's rx
//! ring would refill.

use crate::{steal, Args, Measurement};
use patronus_dataplane::dpdk::{self, Mbuf, MbufBurst, Mempool, Ring};
use patronus_dataplane::ringbed::RingBed;
use patronus_dataplane::stats::WorkerCounters;
use patronus_dataplane::synth;
use patronus_dataplane::wire::ethernet::Address;
use patronus_dataplane::worker::{Polling, PortQueues, Processor, Worker};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What the generator offers the worker.
pub trait Feed {
    /// The ring the offers go into (a port's rx side).
    fn target<'b>(&self, bed: &'b RingBed) -> &'b Ring;
    /// Makes `m` the next packet to offer. `fresh` says it comes from the
    /// pool; otherwise the worker transmitted it and it holds what the
    /// worker left in it.
    fn refill(&mut self, m: &mut Mbuf, fresh: bool) -> Result<(), String>;
}

/// The `io` and `forward` generator: a LAN host's UDP frame of `--size`
/// bytes; recycled frames only get back the 42 header bytes the worker
/// may have rewritten.
struct HeaderRestore {
    frame: Vec<u8>,
}

impl Feed for HeaderRestore {
    fn target<'b>(&self, bed: &'b RingBed) -> &'b Ring {
        &bed.lan_rx
    }

    #[inline]
    fn refill(&mut self, m: &mut Mbuf, fresh: bool) -> Result<(), String> {
        use patronus_dataplane::buf::PacketBuf;
        if fresh {
            return m.fill_from(&self.frame).map_err(|e| e.to_string());
        }
        let header = &self.frame[..synth::min_udp_frame_len(false)];
        if let Some(head) = m.data_mut().get_mut(..header.len()) {
            head.copy_from_slice(header);
        }
        Ok(())
    }
}

/// `io` or `forward`: LAN host to WAN host, addressed to the LAN port as a
/// host would.
pub fn run_io<P: Processor + Send>(
    args: &Args,
    bed: &RingBed,
    pool: &Mempool,
    name: &'static str,
    processor: P,
) -> Result<Measurement, String> {
    let frame = synth::udp_frame(
        Address([2, 0, 0, 0, 1, 2]),
        Address([2, 0, 0, 0, 1, 1]),
        IpAddr::V4(Ipv4Addr::new(10, 10, 1, 2)),
        IpAddr::V4(Ipv4Addr::new(10, 10, 2, 2)),
        64,
        usize::from(args.size),
    );
    run(
        args,
        bed,
        pool,
        name,
        processor,
        &mut HeaderRestore { frame },
    )
}

/// Runs one worker on `bed` with `processor` while this thread feeds it.
pub fn run<P: Processor + Send, F: Feed>(
    args: &Args,
    bed: &RingBed,
    pool: &Mempool,
    name: &'static str,
    processor: P,
    feed: &mut F,
) -> Result<Measurement, String> {
    let counters = WorkerCounters::default();
    let stop = AtomicBool::new(false);
    let queues: Vec<PortQueues<'_>> = bed
        .ports
        .iter()
        .map(|p| {
            let (rx, tx) = p.queue_pair(0).expect("ring ports have one queue pair");
            PortQueues { rx, tx }
        })
        .collect();
    let worker_core = args.worker_core;
    let target = feed.target(bed);

    eprintln!(
        "patronus-bench: {name}: {} bytes, {:.1} s on CPU {worker_core}...",
        args.size, args.seconds
    );
    let measured = std::thread::scope(|scope| -> Result<_, String> {
        let (counters_ref, stop_ref) = (&counters, &stop);
        let handle = std::thread::Builder::new()
            .name(format!("bench-{name}"))
            .spawn_scoped(scope, move || -> Result<(), String> {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: worker_core }) {
                    return Err(format!("cannot pin the worker to CPU {worker_core}"));
                }
                let _lcore = dpdk::register_thread().map_err(|e| e.to_string())?;
                let mut worker = Worker::new(queues, processor, counters_ref, Polling::Busy)?;
                worker.run(stop_ref);
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        let fed = generate(args, bed, pool, feed, target, &counters);
        stop.store(true, Ordering::SeqCst);
        handle
            .join()
            .map_err(|_| "worker thread panicked".to_string())??;
        fed
    });

    // Drain the wire so every mbuf returns to the pool.
    let mut burst = MbufBurst::new();
    for ring in [&bed.lan_rx, &bed.lan_tx, &bed.wan_rx, &bed.wan_tx] {
        while ring.dequeue_burst(&mut burst) > 0 {
            burst.free_all();
        }
    }
    let w = measured?;
    let packets = w.tx_packets;
    let mpps = packets as f64 / w.seconds / 1e6;
    let m = Measurement {
        scenario: name,
        packet_size: args.size,
        packets,
        seconds: w.seconds,
        mpps,
        gbps: mpps * f64::from(args.size) * 8.0 / 1e3,
        cycles_per_packet: if packets > 0 {
            w.busy_cycles as f64 / packets as f64
        } else {
            0.0
        },
        drops: w.drops,
        packets_per_busy_poll: (w.busy_polls > 0)
            .then(|| w.rx_packets as f64 / w.busy_polls as f64),
        steal_percent: w.steal_percent,
    };
    eprintln!(
        "patronus-bench: {name}: {packets} packets, {:.3} Mpps, {:.1} cycles/packet, \
         {:.1} packets/busy poll, {} drops, {:.1}% steal",
        m.mpps,
        m.cycles_per_packet,
        m.packets_per_busy_poll.unwrap_or(0.0),
        m.drops,
        m.steal_percent.unwrap_or(0.0)
    );
    Ok(m)
}

/// What the worker did in the measured window (drops: in the whole round).
struct Window {
    tx_packets: u64,
    rx_packets: u64,
    busy_cycles: u64,
    busy_polls: u64,
    drops: u64,
    seconds: f64,
    steal_percent: Option<f64>,
}

/// Primes `--inflight` packets, then recycles until the round is over.
/// Offers go into `target` in full bursts where possible, so the worker
/// sees the bursts a loaded NIC would give it even when the generator is
/// the slower side.
fn generate<F: Feed>(
    args: &Args,
    bed: &RingBed,
    pool: &Mempool,
    feed: &mut F,
    target: &Ring,
    counters: &WorkerCounters,
) -> Result<Window, String> {
    let mut burst = MbufBurst::new();
    let mut primed = 0;
    while primed < args.inflight {
        if pool.alloc_bulk(&mut burst) == 0 {
            return Err("mempool exhausted while priming".into());
        }
        let mut ready = MbufBurst::new();
        for mut m in burst.drain() {
            feed.refill(&mut m, true)?;
            let _ = ready.push(m);
            primed += 1;
        }
        target.enqueue_burst(&mut ready);
    }

    let warmup = Duration::from_millis(300);
    let total = warmup + Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let mut first = None;
    let mut returned = MbufBurst::new();
    let mut ready = MbufBurst::new();
    while start.elapsed() < total {
        if first.is_none() && start.elapsed() >= warmup {
            first = Some((
                Instant::now(),
                counters.snapshot(),
                steal::seconds(args.worker_core),
            ));
        }
        for _ in 0..64 {
            let mut got = 0;
            // Whatever the worker sent, on either port, is offered again.
            for ring in [&bed.wan_tx, &bed.lan_tx] {
                got += ring.dequeue_burst(&mut returned);
                for mut m in returned.drain() {
                    feed.refill(&mut m, false)?;
                    let _ = ready.push(m);
                    if ready.is_full() {
                        target.enqueue_burst(&mut ready);
                    }
                }
            }
            if got == 0 && !ready.is_empty() {
                // Everything else is with the worker: do not hold these back.
                target.enqueue_burst(&mut ready);
            }
        }
    }
    let end = counters.snapshot();
    let elapsed_end = Instant::now();
    let steal_end = steal::seconds(args.worker_core);
    target.enqueue_burst(&mut ready);
    let (t0, s0, steal0) = first.ok_or("measurement window never started")?;
    let seconds = elapsed_end.duration_since(t0).as_secs_f64();
    let busy_polls = |s: &patronus_dataplane::stats::WorkerSnapshot| s.polls - s.idle_polls;
    Ok(Window {
        tx_packets: end.tx_packets() - s0.tx_packets(),
        rx_packets: end.rx_packets() - s0.rx_packets(),
        busy_cycles: end.busy_cycles - s0.busy_cycles,
        busy_polls: busy_polls(&end) - busy_polls(&s0),
        drops: end.dropped(),
        seconds,
        steal_percent: steal::percent(steal0, steal_end, seconds),
    })
}
