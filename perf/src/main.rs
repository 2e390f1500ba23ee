//! `patronus-bench`: the yardstick for every Patronus performance claim.
//!
//! Each scenario runs the real worker loop on its own core over a pair of
//! net_ring ports, fed by a generator on another core that recycles the
//! packets the worker sends (as a NIC's rx ring would refill). It prints
//! progress on stderr and one JSON object as the last line of stdout.
//!
//! - `io`: the bare loop, rx → tx with no processing (the baseline).
//! - `forward`: the foundation's processing (parse, TTL decrement with
//!   incremental checksum, MAC rewrite). It runs `io` first in the same
//!   process and reports its cost as a ratio to that baseline, because
//!   absolute numbers drift on shared machines.

use clap::{Parser, ValueEnum};
use patronus_dataplane::buf::PacketBuf;
use patronus_dataplane::dpdk::{self, Eal, EalMemory, MbufBurst, Mempool};
use patronus_dataplane::forward::{ForwardEntry, Forwarder};
use patronus_dataplane::ringbed::{RingBed, LAN, WAN};
use patronus_dataplane::stats::WorkerCounters;
use patronus_dataplane::synth;
use patronus_dataplane::wire::ethernet::Address;
use patronus_dataplane::worker::{CrossConnect, Polling, PortQueues, Processor, Worker};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Scenario {
    /// The bare worker loop: rx → tx, no processing.
    Io,
    /// Plain IP forwarding (TTL, checksum, MACs), with `io` as the baseline.
    Forward,
}

#[derive(Parser, Debug)]
#[command(
    name = "patronus-bench",
    version,
    about = "Patronus data-plane benchmarks"
)]
struct Args {
    scenario: Scenario,
    /// Print the result as one JSON object on the last line.
    #[arg(long)]
    json: bool,
    /// Frame size in bytes (60 to 1514, without FCS).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(60..=1514))]
    size: u16,
    /// Measured seconds per round (after a short warm-up).
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Rounds per scenario; `forward` alternates them with `io` rounds, and
    /// the report gives the median round of each (shared machines are noisy).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// CPU of the worker under test.
    #[arg(long, default_value_t = 1)]
    worker_core: usize,
    /// CPU of the generator (and EAL's main lcore).
    #[arg(long, default_value_t = 0)]
    generator_core: usize,
    /// Packets kept in flight between generator and worker.
    #[arg(long, default_value_t = 2048)]
    inflight: u32,
    /// Do not try hugepages (use --no-huge).
    #[arg(long)]
    no_huge: bool,
}

#[derive(Serialize, Debug, Clone)]
struct Measurement {
    scenario: &'static str,
    packet_size: u16,
    packets: u64,
    seconds: f64,
    mpps: f64,
    gbps: f64,
    cycles_per_packet: f64,
    drops: u64,
}

#[derive(Serialize, Debug)]
struct Report {
    /// Rounds measured per scenario; the figures are the median round's.
    rounds: u32,
    #[serde(flatten)]
    result: Measurement,
    /// The `io` baseline measured in the same run (forward only).
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<Measurement>,
    /// cycles_per_packet / baseline cycles_per_packet (forward only).
    #[serde(skip_serializing_if = "Option::is_none")]
    cycles_ratio_vs_io: Option<f64>,
    tsc_hz: u64,
    worker_core: usize,
    generator_core: usize,
    memory: String,
    dpdk: String,
    /// Mbufs not back in the pool after teardown (must be 0).
    mbuf_leak: u32,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    match bench(&args) {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("plain data serialises")
                );
            } else {
                println!("{report:#?}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("patronus-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &Args) -> Result<Report, String> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if args.worker_core >= cpus || args.generator_core >= cpus {
        return Err(format!(
            "cores {} and {} must be below {cpus}",
            args.worker_core, args.generator_core
        ));
    }
    if !(32..=8000).contains(&args.inflight) {
        return Err(format!(
            "--inflight {} is outside 32 to 8000",
            args.inflight
        ));
    }
    if args.worker_core == args.generator_core {
        eprintln!(
            "warning: worker and generator share CPU {}; numbers will be poor",
            args.worker_core
        );
    }
    let prefix = format!("pbench{}", std::process::id());
    let memory = EalMemory::choose(!args.no_huge, 512, &prefix);
    if let Some(reason) = &memory.fallback_reason {
        eprintln!("warning: hugepages unavailable ({reason}); using --no-huge");
    }
    let mut eal_args = vec![
        "-l".to_string(),
        args.generator_core.to_string(),
        "--no-pci".into(),
        "--no-telemetry".into(),
        "--log-level=lib.eal:error".into(),
    ];
    eal_args.extend(memory.args.iter().cloned());
    let _eal = Eal::init(&eal_args).map_err(|e| e.to_string())?;
    let pool = Mempool::new("bench_pool", 16383, 256, 2176).map_err(|e| e.to_string())?;
    let in_use_at_start = pool.in_use();
    let tsc_hz = dpdk::tsc_hz();

    let (baseline, result) = {
        let bed = RingBed::new("bench", 8191, &pool).map_err(|e| e.to_string())?;
        let forwarder = match args.scenario {
            Scenario::Io => None,
            Scenario::Forward => Some(bench_forwarder(&bed)?),
        };
        let mut io_rounds = Vec::new();
        let mut fwd_rounds = Vec::new();
        for round in 1..=args.rounds {
            eprintln!("patronus-bench: round {round} of {}", args.rounds);
            io_rounds.push(run_scenario(args, &bed, &pool, "io", CrossConnect)?);
            if let Some(f) = &forwarder {
                fwd_rounds.push(run_scenario(args, &bed, &pool, "forward", f.clone())?);
            }
        }
        match forwarder {
            None => (None, median(io_rounds)),
            Some(_) => (Some(median(io_rounds)), median(fwd_rounds)),
        }
    };
    let mbuf_leak = pool.in_use().saturating_sub(in_use_at_start);
    let cycles_ratio_vs_io = baseline
        .as_ref()
        .filter(|b| b.cycles_per_packet > 0.0)
        .map(|b| result.cycles_per_packet / b.cycles_per_packet);
    Ok(Report {
        rounds: args.rounds,
        result,
        baseline,
        cycles_ratio_vs_io,
        tsc_hz,
        worker_core: args.worker_core,
        generator_core: args.generator_core,
        memory: format!("{:?}", memory.mode),
        dpdk: Eal::version(),
        mbuf_leak,
    })
}

/// The forwarding table the `forward` scenario uses: LAN <-> WAN.
fn bench_forwarder(bed: &RingBed) -> Result<Forwarder, String> {
    let mac = |port: u8| {
        bed.ports[usize::from(port)]
            .mac_addr()
            .map(Address)
            .map_err(|e| e.to_string())
    };
    let mut forwarder = Forwarder::new();
    forwarder.set(
        LAN,
        ForwardEntry {
            out_port: WAN,
            src_mac: mac(WAN)?,
            dst_mac: Address([2, 0, 0, 0, 2, 2]),
        },
    )?;
    forwarder.set(
        WAN,
        ForwardEntry {
            out_port: LAN,
            src_mac: mac(LAN)?,
            dst_mac: Address([2, 0, 0, 0, 1, 2]),
        },
    )?;
    Ok(forwarder)
}

/// The round with the median cost per packet.
fn median(mut rounds: Vec<Measurement>) -> Measurement {
    rounds.sort_by(|a, b| a.cycles_per_packet.total_cmp(&b.cycles_per_packet));
    rounds.swap_remove(rounds.len() / 2)
}

/// Runs one worker on `bed` with `processor` while this thread generates.
fn run_scenario<P: Processor + Send>(
    args: &Args,
    bed: &RingBed,
    pool: &Mempool,
    name: &'static str,
    processor: P,
) -> Result<Measurement, String> {
    // LAN host to WAN host, addressed to the LAN port as a host would.
    let frame = synth::udp_frame(
        Address([2, 0, 0, 0, 1, 2]),
        Address([2, 0, 0, 0, 1, 1]),
        IpAddr::V4(Ipv4Addr::new(10, 10, 1, 2)),
        IpAddr::V4(Ipv4Addr::new(10, 10, 2, 2)),
        64,
        usize::from(args.size),
    );
    let header = &frame[..synth::min_udp_frame_len(false)];
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

    eprintln!(
        "patronus-bench: {name}: {}-byte frames, {:.1} s on CPU {worker_core}...",
        args.size, args.seconds
    );
    let measured = std::thread::scope(|scope| -> Result<(u64, u64, u64, f64), String> {
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

        // Prime: put `inflight` packets on the LAN wire.
        let mut burst = MbufBurst::new();
        let mut primed = 0;
        while primed < args.inflight {
            if pool.alloc_bulk(&mut burst) == 0 {
                return Err("mempool exhausted while priming".into());
            }
            let mut ready = MbufBurst::new();
            for mut m in burst.drain() {
                m.fill_from(&frame).map_err(|e| e.to_string())?;
                let _ = ready.push(m);
                primed += 1;
            }
            bed.lan_rx.enqueue_burst(&mut ready);
        }

        let warmup = Duration::from_millis(300);
        let total = warmup + Duration::from_secs_f64(args.seconds);
        let start = Instant::now();
        let mut first: Option<(Instant, u64, u64)> = None;
        let mut returned = MbufBurst::new();
        while start.elapsed() < total {
            if first.is_none() && start.elapsed() >= warmup {
                let s = counters.snapshot();
                first = Some((Instant::now(), s.tx_packets(), s.busy_cycles));
            }
            for _ in 0..64 {
                // Whatever the worker sent, on either port, goes back in on the LAN side.
                for ring in [&bed.wan_tx, &bed.lan_tx] {
                    if ring.dequeue_burst(&mut returned) == 0 {
                        continue;
                    }
                    let mut refill = MbufBurst::new();
                    for mut m in returned.drain() {
                        // Restore the headers the worker rewrote (MACs, TTL, checksum).
                        if let Some(head) = m.data_mut().get_mut(..header.len()) {
                            head.copy_from_slice(header);
                        }
                        let _ = refill.push(m);
                    }
                    bed.lan_rx.enqueue_burst(&mut refill);
                }
            }
        }
        let end = counters.snapshot();
        let elapsed_end = Instant::now();
        stop.store(true, Ordering::SeqCst);
        handle
            .join()
            .map_err(|_| "worker thread panicked".to_string())??;
        let (t0, tx0, busy0) = first.ok_or("measurement window never started")?;
        let secs = elapsed_end.duration_since(t0).as_secs_f64();
        Ok((
            end.tx_packets() - tx0,
            end.busy_cycles - busy0,
            end.dropped(),
            secs,
        ))
    })?;

    // Drain the wire so every mbuf returns to the pool.
    let mut burst = MbufBurst::new();
    for ring in [&bed.lan_rx, &bed.lan_tx, &bed.wan_rx, &bed.wan_tx] {
        while ring.dequeue_burst(&mut burst) > 0 {
            burst.free_all();
        }
    }
    let (packets, busy, drops, secs) = measured;
    let mpps = packets as f64 / secs / 1e6;
    let m = Measurement {
        scenario: name,
        packet_size: args.size,
        packets,
        seconds: secs,
        mpps,
        gbps: mpps * f64::from(args.size) * 8.0 / 1e3,
        cycles_per_packet: if packets > 0 {
            busy as f64 / packets as f64
        } else {
            0.0
        },
        drops,
    };
    eprintln!(
        "patronus-bench: {name}: {packets} packets, {:.3} Mpps, {:.1} cycles/packet, {drops} drops",
        m.mpps, m.cycles_per_packet
    );
    Ok(m)
}
