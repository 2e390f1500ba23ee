//! `patronus-bench`: the yardstick for every Patronus performance claim.
//!
//! The ring scenarios run the real worker loop on its own core over a pair
//! of net_ring ports, fed by a generator on another core that recycles the
//! packets the worker sends (as a NIC's rx ring would refill). The crypto
//! baselines run in-process on the worker core. Every scenario prints
//! progress on stderr and one JSON object as the last line of stdout.
//!
//! - `io`: the bare loop, rx → tx with no processing (the baseline).
//! - `forward`: the foundation's processing (parse, TTL decrement with
//!   incremental checksum, MAC rewrite). It runs `io` first in the same
//!   process and reports its cost as a ratio to that baseline, because
//!   absolute numbers drift on shared machines. With `--peers`, `--prefixes`
//!   or `--flows` it runs the full pipeline at that scale instead
//!   (allowed-IPs LPM, path choice, WireGuard encapsulation, outer headers;
//!   see `pop`), against the same pipeline with one peer, one prefix and
//!   one flow, in the worker loop and on one core.
//! - `aead`: ring's ChaCha20-Poly1305 sealing one buffer in a tight loop,
//!   the crypto floor of this CPU.
//! - `boringtun`: two boringtun tunnels in process, encapsulate and
//!   decapsulate timed separately.
//! - `encap`, `decap`: the WireGuard data path in the worker loop, each
//!   alternated with `aead` (and `decap` with boringtun's decapsulate) at the
//!   same size and reported as ratios to them.
//! - `handshake`: complete handshakes per second on the worker core, the
//!   responder side of a `--peers`-peer `Device` (initiation in, response
//!   out), with boringtun's responder in the same run and the cost of a
//!   cookie reply under load.
//! - `bfd`: `--sessions` BFD sessions at `--interval-ms` × 3 driven by the
//!   daemon's control loop on the control core, against a peer on the
//!   worker core; false Downs, timer lateness, CPU (see `bfd_bench`).
//! - `qos-worker`: RealTime's delay through the worker loop on a shaped
//!   link offered twice its rate, against the same link at half its rate,
//!   alternated round by round (see `qos_worker_bench`).

#![forbid(unsafe_code)]

mod bfd_bench;
mod dpi_bench;
mod flowtable_bench;
mod handshake;
mod inproc;
mod pop;
mod qos_bench;
mod qos_worker_bench;
mod ringrun;
mod steal;
mod wgbench;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use patronus_dataplane::dpdk::{self, Eal, EalMemory, Mempool};
use patronus_dataplane::forward::{ForwardEntry, Forwarder};
use patronus_dataplane::ringbed::{RingBed, LAN, WAN};
use patronus_dataplane::wire::ethernet::Address;
use patronus_dataplane::worker::CrossConnect;
use serde::Serialize;
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Scenario {
    /// The bare worker loop: rx → tx, no processing.
    Io,
    /// Plain IP forwarding (TTL, checksum, MACs), with `io` as the baseline;
    /// with `--peers`/`--prefixes`/`--flows`, the full WireGuard pipeline at
    /// that scale, with its single-peer self as the baseline.
    Forward,
    /// ring ChaCha20-Poly1305 sealing `--size` bytes in a tight loop.
    Aead,
    /// boringtun encapsulate and decapsulate of `--size`-byte IP packets.
    Boringtun,
    /// WireGuard encryption in the worker loop, with `aead` as the baseline.
    Encap,
    /// WireGuard decryption in the worker loop, with `aead` and boringtun's
    /// decapsulate as baselines.
    Decap,
    /// Handshakes per second on one core (responder side) with `--peers`
    /// configured peers, with boringtun's responder as the reference.
    Handshake,
    /// The DPI flow table at `--flows` entries: lookups and inserts per
    /// second on one core, and bytes per flow. No DPDK.
    Flowtable,
    /// Packets per second classifying the capture FILE with the DPI engine,
    /// with ndpiReader timed on the same capture in the same run. No DPDK.
    Dpi,
    /// The QoS scheduler's enqueue-plus-dequeue cost per packet with every
    /// class active. No DPDK.
    Qos,
    /// `--sessions` BFD sessions at `--interval-ms` × 3 in the daemon's
    /// control loop on the control core (`--generator-core`), the peer on
    /// the worker core: false Downs, timer lateness, CPU. No DPDK.
    Bfd,
    /// RealTime's delay through the worker loop on a 50 Mbit/s shaped WAN
    /// link offered twice its rate (a tenth RealTime, the rest Bulk),
    /// against the same link offered half its rate, round by round.
    QosWorker,
}

#[derive(Parser, Debug)]
#[command(
    name = "patronus-bench",
    version,
    about = "Patronus data-plane benchmarks"
)]
pub struct Args {
    scenario: Scenario,
    /// `dpi`: the pcap or pcapng capture to classify.
    pub file: Option<std::path::PathBuf>,
    /// Print the result as one JSON object on the last line.
    #[arg(long)]
    json: bool,
    /// `io`, `forward`: frame size in bytes without FCS. `aead`,
    /// `boringtun`, `encap`, `decap`: size of the inner IP packet (the
    /// plaintext). 60 to 1514. `qos-worker`: frame size, default 1000.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(60..=1514))]
    pub size: u16,
    /// Measured seconds per round (after a short warm-up). `bfd`: the
    /// measured window once every session is Up (default 20).
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Rounds per scenario; scenarios with a baseline alternate their rounds
    /// with the baseline's, and the report gives the median round of each
    /// (shared machines are noisy). `qos-worker`: default 5.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// CPU of the worker under test (and of the in-process baselines).
    #[arg(long, default_value_t = 1)]
    pub worker_core: usize,
    /// CPU of the generator (and EAL's main lcore).
    #[arg(long, default_value_t = 0)]
    generator_core: usize,
    /// Packets kept in flight between generator and worker.
    #[arg(long, default_value_t = 2048)]
    pub inflight: u32,
    /// `handshake`: configured peers, each initiating once (default
    /// 10000). `forward`: peers of the full pipeline (default 1 when
    /// `--prefixes` or `--flows` is given).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub peers: Option<u32>,
    /// `forward`: remote prefixes (distinct /24s), round-robin over the
    /// peers (default: one per peer).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(pop::MAX_PREFIXES)))]
    pub prefixes: Option<u32>,
    /// `forward`: distinct flows the generator cycles through, covering the
    /// prefixes (default: one per prefix).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(pop::MAX_FLOWS)))]
    pub flows: Option<u32>,
    /// `forward`: benchmark the plain IP forwarder of the foundation (no
    /// tunnel) instead of the full pipeline.
    #[arg(long)]
    pub plain: bool,
    /// `forward` at scale: run the DPI policy in the hook (a flow table
    /// sized for `--flows` and the engine), in the PoP run and in its
    /// single-peer baseline.
    #[arg(long)]
    pub dpi: bool,
    /// `bfd`: sessions on the control core, each with its peer session on
    /// the worker core.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=16384))]
    pub sessions: u32,
    /// `bfd`: the sessions' transmit and receive interval, milliseconds.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(10..=10_000))]
    pub interval_ms: u32,
    /// `bfd`: the worker core's loop also streams memory between its
    /// deadlines (a forwarding worker's cache and memory traffic).
    #[arg(long)]
    pub load: bool,
    /// Do not try hugepages (use --no-huge).
    #[arg(long)]
    no_huge: bool,
}

impl Args {
    /// The command line, with the defaults that differ by scenario.
    fn from_command_line() -> Args {
        let matches = Args::command().get_matches();
        let mut args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        args.scenario_defaults(&matches);
        args
    }

    fn scenario_defaults(&mut self, matches: &ArgMatches) {
        let defaulted = |id: &str| matches.value_source(id) == Some(ValueSource::DefaultValue);
        if self.scenario == Scenario::QosWorker {
            // On a shaped link the delay a full-size frame adds is the
            // figure that matters; the rounds are short.
            if defaulted("size") {
                self.size = qos_worker_bench::DEFAULT_SIZE;
            }
            if defaulted("rounds") {
                self.rounds = qos_worker_bench::DEFAULT_ROUNDS;
            }
        }
    }
}

/// One round of one scenario.
#[derive(Serialize, Debug, Clone)]
pub struct Measurement {
    pub scenario: &'static str,
    pub packet_size: u16,
    pub packets: u64,
    pub seconds: f64,
    pub mpps: f64,
    pub gbps: f64,
    pub cycles_per_packet: f64,
    pub drops: u64,
    /// Ring scenarios: packets the worker received per loop iteration that
    /// received any (32 is a full burst).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets_per_busy_poll: Option<f64>,
    /// Steal time on the worker's CPU during the measured window, in percent
    /// (the hypervisor ran something else there; cycles are inflated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steal_percent: Option<f64>,
}

impl Measurement {
    /// A measurement timed in TSC cycles: `cycles` spent on `packets`.
    pub fn from_cycles(
        scenario: &'static str,
        size: u16,
        packets: u64,
        cycles: u64,
        seconds: f64,
        tsc_hz: u64,
    ) -> Measurement {
        let cycles_per_packet = if packets > 0 {
            cycles as f64 / packets as f64
        } else {
            0.0
        };
        let mpps = if cycles > 0 {
            packets as f64 * tsc_hz as f64 / cycles as f64 / 1e6
        } else {
            0.0
        };
        Measurement {
            scenario,
            packet_size: size,
            packets,
            seconds,
            mpps,
            gbps: mpps * f64::from(size) * 8.0 / 1e3,
            cycles_per_packet,
            drops: 0,
            packets_per_busy_poll: None,
            steal_percent: None,
        }
    }
}

/// Figures only some scenarios have; absent fields are not printed.
#[derive(Serialize, Debug, Default)]
struct Extras {
    /// `forward --plain`: the median `io` round; `forward`: the median
    /// round of the same pipeline with one peer, one prefix and one flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<Measurement>,
    /// `forward`: the median `io` round (the bare loop) of the same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    io_baseline: Option<Measurement>,
    /// `forward`: cycles_per_packet / io cycles_per_packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    cycles_ratio_vs_io: Option<f64>,
    /// `boringtun`: encapsulate and decapsulate, each its median round.
    #[serde(skip_serializing_if = "Option::is_none")]
    encap_mpps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encap_cycles_per_packet: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decap_mpps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decap_cycles_per_packet: Option<f64>,
    /// `encap`, `decap`: the median `aead` round at the same size.
    #[serde(skip_serializing_if = "Option::is_none")]
    aead_mpps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aead_cycles_per_packet: Option<f64>,
    /// aead cycles / our cycles: the fraction of the raw AEAD packet rate
    /// the full path reaches on one core.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_vs_aead: Option<f64>,
    /// `decap`: the median boringtun decapsulate round at the same size.
    #[serde(skip_serializing_if = "Option::is_none")]
    boringtun_decap_mpps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    boringtun_decap_cycles_per_packet: Option<f64>,
    /// boringtun decap cycles / our decap cycles (≥ 1: at least as fast);
    /// `handshake`: boringtun cycles per handshake / ours.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_vs_boringtun: Option<f64>,
    /// `encap`, `decap`: the same processing on one core with hot data
    /// (no ring, no second core), its ratio to `aead`, and for `decap` to
    /// boringtun (which also decapsulates hot data on one core).
    #[serde(skip_serializing_if = "Option::is_none")]
    single_core_cycles_per_packet: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    single_core_ratio_vs_aead: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    single_core_ratio_vs_boringtun: Option<f64>,
    /// `handshake`: configured peers, one handshake each. `forward` at
    /// scale: peers, remote prefixes and flows.
    #[serde(skip_serializing_if = "Option::is_none")]
    peers: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prefixes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flows: Option<u32>,
    /// `forward` at scale: baseline cycles per packet / ours, in the worker
    /// loop and on one core (the fraction of the single-peer packet rate
    /// kept; the target is at least 0.80).
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_ratio_vs_single_peer: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    single_core_baseline_cycles_per_packet: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    single_core_rate_ratio_vs_single_peer: Option<f64>,
    /// `forward` at scale: `WgDataPath::memory_bytes()` (peer slots, paths,
    /// keypairs, activity; the route table) over the counts. Flows: 0, as
    /// the data path keeps no per-flow state.
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_per_peer_bytes: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_per_prefix_bytes: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_per_flow_bytes: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_state_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    route_table_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    handshakes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    handshakes_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cycles_per_handshake: Option<f64>,
    /// `peers` / `handshakes_per_second`: re-establishing every peer.
    #[serde(skip_serializing_if = "Option::is_none")]
    seconds_for_all: Option<f64>,
    /// Handshakes whose keys the initiator derived identically.
    #[serde(skip_serializing_if = "Option::is_none")]
    handshakes_verified: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    boringtun_handshakes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    boringtun_handshakes_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    boringtun_cycles_per_handshake: Option<f64>,
    /// Initiations without mac2 answered under load with a cookie reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    cookie_replies: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cookie_replies_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cycles_per_cookie_reply: Option<f64>,
    /// Untimed seconds spent building keys, devices and initiations
    /// (`handshake`), or the scaled data path (`forward` at scale).
    #[serde(skip_serializing_if = "Option::is_none")]
    setup_seconds: Option<f64>,
}

impl Extras {
    /// `handshake`'s measurement and figures.
    fn handshake(h: handshake::HandshakeResult) -> (Measurement, Extras) {
        let extras = Extras {
            ratio_vs_boringtun: (h.ours.cycles_per_packet > 0.0)
                .then(|| h.boringtun_cycles_per_handshake / h.ours.cycles_per_packet),
            peers: Some(h.peers),
            handshakes: Some(h.ours.packets),
            handshakes_per_second: Some(h.handshakes_per_second),
            cycles_per_handshake: Some(h.ours.cycles_per_packet),
            seconds_for_all: Some(h.seconds_for_all),
            handshakes_verified: Some(h.verified),
            boringtun_handshakes: Some(h.boringtun_handshakes),
            boringtun_handshakes_per_second: Some(h.boringtun_handshakes_per_second),
            boringtun_cycles_per_handshake: Some(h.boringtun_cycles_per_handshake),
            cookie_replies: Some(h.cookie_replies),
            cookie_replies_per_second: Some(h.cookie_replies_per_second),
            cycles_per_cookie_reply: Some(h.cycles_per_cookie_reply),
            setup_seconds: Some(h.setup_seconds),
            ..Extras::default()
        };
        (h.ours, extras)
    }
}

#[derive(Serialize, Debug)]
struct Report {
    /// Rounds measured per scenario; the figures are the median round's.
    rounds: u32,
    #[serde(flatten)]
    result: Measurement,
    #[serde(flatten)]
    extras: Extras,
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
    let args = Args::from_command_line();
    // The pure-code scenarios need no EAL; they and `qos-worker` (which
    // starts its own) print their own report.
    let own_report = match args.scenario {
        Scenario::Flowtable => Some(flowtable_bench::run(&args)),
        Scenario::Dpi => Some(dpi_bench::run(&args)),
        Scenario::Qos => Some(qos_bench::run(&args)),
        Scenario::Bfd => Some(bfd_bench::run(&args)),
        Scenario::QosWorker => Some(qos_worker_bench::run(&args)),
        _ => None,
    };
    if let Some(result) = own_report {
        return match result {
            Ok(report) => {
                if args.json {
                    println!("{report}");
                } else {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).expect("plain data serialises")
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("patronus-bench: error: {e}");
                ExitCode::FAILURE
            }
        };
    }
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
    if !(32..=8000).contains(&args.inflight) {
        return Err(format!(
            "--inflight {} is outside 32 to 8000",
            args.inflight
        ));
    }
    let (_eal, memory) = start_eal(args)?;
    let pool = Mempool::new("bench_pool", 16383, 256, 2176).map_err(|e| e.to_string())?;
    let in_use_at_start = pool.in_use();
    let tsc_hz = dpdk::tsc_hz();
    if tsc_hz == 0 {
        return Err("EAL did not measure the TSC frequency".into());
    }

    let scale = match args.scenario {
        Scenario::Forward => pop::Scale::from_args(args)?,
        _ if args.prefixes.is_some() || args.flows.is_some() => {
            return Err("--prefixes and --flows are options of forward".into())
        }
        _ => None,
    };
    let (rounds, (result, extras)) = if args.scenario == Scenario::Handshake {
        // One pass: every initiation can be answered only once.
        (1, Extras::handshake(handshake::run(args, tsc_hz)?))
    } else {
        let bed = RingBed::new("bench", 8191, &pool).map_err(|e| e.to_string())?;
        let rounds = match scale {
            Some(scale) => pop_rounds(args, &bed, &pool, tsc_hz, scale)?,
            None => run_rounds(args, &bed, &pool, tsc_hz)?,
        };
        (args.rounds, rounds)
    };
    let mbuf_leak = pool.in_use().saturating_sub(in_use_at_start);
    Ok(Report {
        rounds,
        result,
        extras,
        tsc_hz,
        worker_core: args.worker_core,
        generator_core: args.generator_core,
        memory: format!("{:?}", memory.mode),
        dpdk: Eal::version(),
        mbuf_leak,
    })
}

/// Checks the cores and initialises EAL with its main lcore on the
/// generator core (hugepages if there are any, unless `--no-huge`).
pub fn start_eal(args: &Args) -> Result<(Eal, EalMemory), String> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if args.worker_core >= cpus || args.generator_core >= cpus {
        return Err(format!(
            "cores {} and {} must be below {cpus}",
            args.worker_core, args.generator_core
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
    let eal = Eal::init(&eal_args).map_err(|e| e.to_string())?;
    Ok((eal, memory))
}

/// Runs the scenario's rounds, alternated with its baselines' rounds, and
/// reduces each to its median.
fn run_rounds(
    args: &Args,
    bed: &RingBed,
    pool: &Mempool,
    tsc_hz: u64,
) -> Result<(Measurement, Extras), String> {
    let mut main_rounds = Vec::new();
    let mut io_rounds = Vec::new();
    let mut aead_rounds = Vec::new();
    let mut bt_encap_rounds = Vec::new();
    let mut bt_decap_rounds = Vec::new();
    let mut single_core_rounds = Vec::new();
    let forwarder = match args.scenario {
        Scenario::Forward => Some(bench_forwarder(bed)?),
        _ => None,
    };
    let wg = wgbench::WgBench::new(bed, args.size)?;
    for round in 1..=args.rounds {
        eprintln!("patronus-bench: round {round} of {}", args.rounds);
        match args.scenario {
            Scenario::Io => main_rounds.push(ringrun::run_io(args, bed, pool, "io", CrossConnect)?),
            Scenario::Forward => {
                io_rounds.push(ringrun::run_io(args, bed, pool, "io", CrossConnect)?);
                let f = forwarder.clone().expect("built for forward");
                main_rounds.push(ringrun::run_io(args, bed, pool, "forward", f)?);
            }
            Scenario::Aead => main_rounds.push(inproc::aead(args, tsc_hz)?),
            Scenario::Boringtun => {
                let (encap, decap) = inproc::boringtun(args, tsc_hz)?;
                bt_encap_rounds.push(encap);
                bt_decap_rounds.push(decap);
            }
            Scenario::Encap => {
                aead_rounds.push(inproc::aead(args, tsc_hz)?);
                single_core_rounds.push(wg.encap_single_core(args, tsc_hz)?);
                main_rounds.push(wg.encap(args, bed, pool, tsc_hz)?);
            }
            Scenario::Decap => {
                aead_rounds.push(inproc::aead(args, tsc_hz)?);
                bt_decap_rounds.push(inproc::boringtun(args, tsc_hz)?.1);
                single_core_rounds.push(wg.decap_single_core(args, tsc_hz)?);
                main_rounds.push(wg.decap(args, bed, pool, tsc_hz)?);
            }
            Scenario::Handshake
            | Scenario::Flowtable
            | Scenario::Dpi
            | Scenario::Qos
            | Scenario::QosWorker
            | Scenario::Bfd => return Err(format!("{:?} has no ring rounds", args.scenario)),
        }
    }
    let mut extras = Extras::default();
    let result = match args.scenario {
        Scenario::Boringtun => {
            let (encap, decap) = (
                median(std::mem::take(&mut bt_encap_rounds)),
                median(std::mem::take(&mut bt_decap_rounds)),
            );
            extras.encap_mpps = Some(encap.mpps);
            extras.encap_cycles_per_packet = Some(encap.cycles_per_packet);
            extras.decap_mpps = Some(decap.mpps);
            extras.decap_cycles_per_packet = Some(decap.cycles_per_packet);
            Measurement {
                scenario: "boringtun",
                ..encap
            }
        }
        _ => median(main_rounds),
    };
    // baseline cycles / our cycles, or the inverse for forward (a cost ratio).
    let speed_ratio = |baseline: f64| {
        (result.cycles_per_packet > 0.0).then(|| baseline / result.cycles_per_packet)
    };
    if !io_rounds.is_empty() {
        let io = median(io_rounds);
        extras.cycles_ratio_vs_io =
            (io.cycles_per_packet > 0.0).then(|| result.cycles_per_packet / io.cycles_per_packet);
        extras.baseline = Some(io);
    }
    if !aead_rounds.is_empty() {
        let aead = median(aead_rounds);
        extras.aead_mpps = Some(aead.mpps);
        extras.aead_cycles_per_packet = Some(aead.cycles_per_packet);
        extras.ratio_vs_aead = speed_ratio(aead.cycles_per_packet);
    }
    let aead_cycles = extras.aead_cycles_per_packet;
    if !single_core_rounds.is_empty() {
        let single = median(single_core_rounds);
        extras.single_core_cycles_per_packet = Some(single.cycles_per_packet);
        extras.single_core_ratio_vs_aead = aead_cycles
            .filter(|_| single.cycles_per_packet > 0.0)
            .map(|a| a / single.cycles_per_packet);
        if args.scenario == Scenario::Decap {
            let bt = median(bt_decap_rounds.clone());
            extras.single_core_ratio_vs_boringtun = (single.cycles_per_packet > 0.0)
                .then(|| bt.cycles_per_packet / single.cycles_per_packet);
        }
    }
    if args.scenario == Scenario::Decap {
        let bt = median(bt_decap_rounds);
        extras.boringtun_decap_mpps = Some(bt.mpps);
        extras.boringtun_decap_cycles_per_packet = Some(bt.cycles_per_packet);
        extras.ratio_vs_boringtun = speed_ratio(bt.cycles_per_packet);
    }
    Ok((result, extras))
}

/// `forward` at scale: the scaled pipeline and its single-peer self,
/// alternated round by round, in the worker loop and on one core.
fn pop_rounds(
    args: &Args,
    bed: &RingBed,
    pool: &Mempool,
    tsc_hz: u64,
    scale: pop::Scale,
) -> Result<(Measurement, Extras), String> {
    eprintln!(
        "patronus-bench: forward: {} peers, {} prefixes, {} flows (baseline: 1, 1, 1)",
        scale.peers, scale.prefixes, scale.flows
    );
    let single = pop::PopBench::new(bed, args.size, pop::Scale::SINGLE, args.dpi)?;
    let pop = pop::PopBench::new(bed, args.size, scale, args.dpi)?;
    let (mut ours, mut baseline, mut io) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ours_single_core, mut baseline_single_core) = (Vec::new(), Vec::new());
    let mut memory = None;
    for round in 1..=args.rounds {
        eprintln!("patronus-bench: round {round} of {}", args.rounds);
        baseline_single_core.push(single.single_core(
            args,
            tsc_hz,
            "forward_single_peer_single_core",
        )?);
        ours_single_core.push(pop.single_core(args, tsc_hz, "forward_single_core")?);
        baseline.push(
            single
                .ring(args, bed, pool, tsc_hz, "forward_single_peer")?
                .0,
        );
        io.push(ringrun::run_io(args, bed, pool, "io", CrossConnect)?);
        let (m, mem) = pop.ring(args, bed, pool, tsc_hz, "forward")?;
        ours.push(m);
        memory = Some(mem);
    }
    let memory = memory.ok_or("no rounds")?;
    let (result, baseline, io) = (median(ours), median(baseline), median(io));
    let single_core = median(ours_single_core);
    let single_core_baseline = median(baseline_single_core);
    let ratio = |base: f64, ours: f64| (ours > 0.0).then(|| base / ours);
    let extras = Extras {
        rate_ratio_vs_single_peer: ratio(baseline.cycles_per_packet, result.cycles_per_packet),
        cycles_ratio_vs_io: (io.cycles_per_packet > 0.0)
            .then(|| result.cycles_per_packet / io.cycles_per_packet),
        io_baseline: Some(io),
        single_core_cycles_per_packet: Some(single_core.cycles_per_packet),
        single_core_baseline_cycles_per_packet: Some(single_core_baseline.cycles_per_packet),
        single_core_rate_ratio_vs_single_peer: ratio(
            single_core_baseline.cycles_per_packet,
            single_core.cycles_per_packet,
        ),
        baseline: Some(baseline),
        peers: Some(scale.peers),
        prefixes: Some(scale.prefixes),
        flows: Some(scale.flows),
        memory_per_peer_bytes: Some(memory.peer_bytes as f64 / f64::from(scale.peers)),
        memory_per_prefix_bytes: Some(memory.route_bytes as f64 / f64::from(scale.prefixes)),
        // Without --dpi no per-flow state: the path is a stateless hash of
        // the flow; with it, the DPI flow table.
        memory_per_flow_bytes: Some(memory.flow_bytes as f64 / f64::from(scale.flows)),
        peer_state_bytes: Some(memory.peer_bytes),
        route_table_bytes: Some(memory.route_bytes),
        setup_seconds: Some(memory.setup_seconds),
        ..Extras::default()
    };
    Ok((result, extras))
}

/// The forwarding table the `forward` scenario uses: LAN <-> WAN.
fn bench_forwarder(bed: &RingBed) -> Result<Forwarder, String> {
    let mut forwarder = Forwarder::new();
    forwarder.set(
        LAN,
        ForwardEntry {
            out_port: WAN,
            src_mac: port_mac(bed, WAN)?,
            dst_mac: Address([2, 0, 0, 0, 2, 2]),
        },
    )?;
    forwarder.set(
        WAN,
        ForwardEntry {
            out_port: LAN,
            src_mac: port_mac(bed, LAN)?,
            dst_mac: Address([2, 0, 0, 0, 1, 2]),
        },
    )?;
    Ok(forwarder)
}

/// The MAC address of one of the bed's ports.
pub fn port_mac(bed: &RingBed, port: u8) -> Result<Address, String> {
    bed.ports[usize::from(port)]
        .mac_addr()
        .map(Address)
        .map_err(|e| e.to_string())
}

/// The round with the median cost per packet.
fn median(mut rounds: Vec<Measurement>) -> Measurement {
    rounds.sort_by(|a, b| a.cycles_per_packet.total_cmp(&b.cycles_per_packet));
    rounds.swap_remove(rounds.len() / 2)
}
