//! `bfd`: can one control core carry `--sessions` BFD sessions at
//! `--interval-ms` × 3 without a false Down?
//!
//! Side A is the side under test. It runs on the control core
//! (`--generator-core`, CPU 0 by default) in the daemon's control loop
//! (`control/src/run.rs`): take the received packets, sleep until 100 µs
//! short of the next deadline (at most 1 ms), spin to it, poll. Side B, the
//! peer, runs the mirror-image sessions on the worker core
//! (`--worker-core`) as a busy-polling loop, so that core is 100 % busy as
//! a polling worker keeps it; with `--load` B's loop also streams a 32 MiB
//! buffer between its deadlines, so the worker core adds memory traffic
//! that competes with the control core for cache and memory bandwidth.
//!
//! Every packet either side emits becomes a real Ethernet / IPv4 / UDP
//! frame ([`frame::build_frame`]) and is parsed back
//! ([`frame::parse_udp`], twice, as the daemon does: once to recognise BFD
//! among the punted packets, once to handle it) before the other side's
//! registry sees it. What the daemon does besides is not here: mbuf
//! allocation, punt and inject ring operations, the NIC, the neighbour
//! lookup. The two sides exchange frames through two lock-free queues.
//!
//! The run waits until every session is Up on both sides (and 2 s more,
//! for the Poll Sequences to the configured rate), then measures for
//! `--seconds` (20 unless given): false Downs (any Up → Down), packet
//! rates, how late A served its deadlines (p50 / p99 / p99.9 / max), A's
//! CPU time (the OS's, which counts the spinning, and the time spent in
//! BFD work, which does not) and the detection margin (the smallest slack
//! between a session's detection deadline and the packet that refreshed
//! it).

use crossbeam_queue::ArrayQueue;
use patronus_control::bfd::frame::{build_frame, parse_udp};
use patronus_control::bfd::packet::{State, MAX_PACKET_LEN};
use patronus_control::bfd::registry::{PathId, PeerConfig, Registry, RxMeta, SessionId, TxMeta};
use patronus_control::bfd::session::SessionEvent;
use patronus_control::bfd::transport::{
    SessionKind, DEFAULT_MULTIHOP_MIN_TTL, MULTI_HOP_PORT, SINGLE_HOP_PORT,
};
use patronus_dataplane::wire::ethernet::Address;
use serde_json::json;
use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::Args;

const MULTIPLIER: u8 = 3;
/// The control loop's constants (`control_loop` in `control/src/run.rs`):
/// it never sleeps longer than this...
const SLEEP_CAP: Duration = Duration::from_millis(1);
/// ...sleeps only when the next deadline is further away than this...
const MIN_SLEEP: Duration = Duration::from_micros(200);
/// ...and wakes this much early, to spin to the deadline.
const SPIN: Duration = Duration::from_micros(100);
/// All sessions must be Up on both sides within this.
const UP_TIMEOUT: Duration = Duration::from_secs(60);
/// After all are Up: time for the Poll Sequences to the configured rate.
const SETTLE: Duration = Duration::from_secs(2);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
const DEFAULT_SECONDS: f64 = 20.0;
const DOWNS_KEPT: usize = 32;
const QUEUE_FRAMES: usize = 1 << 16;
/// `--load`: the buffer the worker core streams, and the slice it works
/// on between two looks at its deadlines.
const LOAD_BYTES: usize = 32 << 20;
const LOAD_CHUNK_WORDS: usize = 8 << 10;

/// Lateness histogram: 100 ns buckets below 1 ms, 10 µs buckets to 1 s,
/// then one overflow bucket; the maximum is kept exactly.
struct Lateness {
    buckets: Vec<u64>,
    count: u64,
    max_ns: u64,
}

const FINE_NS: u64 = 100;
const FINE_BUCKETS: u64 = 10_000;
const COARSE_NS: u64 = 10_000;
const COARSE_BUCKETS: u64 = 99_900;

impl Lateness {
    fn new() -> Lateness {
        Lateness {
            buckets: vec![0; (FINE_BUCKETS + COARSE_BUCKETS + 1) as usize],
            count: 0,
            max_ns: 0,
        }
    }

    fn record(&mut self, ns: u64) {
        let fine_end = FINE_NS * FINE_BUCKETS;
        let b = if ns < fine_end {
            ns / FINE_NS
        } else {
            (FINE_BUCKETS + (ns - fine_end) / COARSE_NS).min(FINE_BUCKETS + COARSE_BUCKETS)
        };
        self.buckets[b as usize] += 1;
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    /// The upper bound of the bucket holding quantile `q`, in µs (capped
    /// at the exact maximum).
    fn quantile_us(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let i = i as u64;
                let upper = if i < FINE_BUCKETS {
                    (i + 1) * FINE_NS
                } else {
                    FINE_NS * FINE_BUCKETS + (i - FINE_BUCKETS + 1) * COARSE_NS
                };
                return upper.min(self.max_ns) as f64 / 1e3;
            }
        }
        self.max_ns as f64 / 1e3
    }

    fn over(&self, ns: u64) -> u64 {
        // Exact only at bucket edges; callers use 1 ms and 10 ms, which are.
        let fine_end = FINE_NS * FINE_BUCKETS;
        let from = if ns < fine_end {
            ns / FINE_NS
        } else {
            FINE_BUCKETS + (ns - fine_end) / COARSE_NS
        };
        self.buckets[(from as usize).min(self.buckets.len())..]
            .iter()
            .sum()
    }

    fn summary(&self) -> serde_json::Value {
        json!({
            "deadlines": self.count,
            "p50_us": self.quantile_us(0.50),
            "p99_us": self.quantile_us(0.99),
            "p999_us": self.quantile_us(0.999),
            "max_us": self.max_ns as f64 / 1e3,
            "over_1ms": self.over(1_000_000),
            "over_10ms": self.over(10_000_000),
        })
    }
}

/// What one side counts inside the measured window.
struct Window {
    tx: u64,
    rx: u64,
    /// Frames refused before or by the registry (must stay 0).
    rx_dropped: u64,
    queue_full: u64,
    false_downs: u64,
    /// The first [`DOWNS_KEPT`] false Downs: (seconds into the window,
    /// silence since the session's last packet, how late that poll ran),
    /// to tell a silent peer from a late control thread.
    downs: Vec<(f64, f64, f64)>,
    state_changes: u64,
    lateness: Lateness,
    /// Smallest (detection deadline − refreshing packet's arrival), ns.
    min_margin_ns: Option<i64>,
    max_gap_ns: u64,
    /// Time in the loop outside sleeping and spinning (side A only).
    work_ns: u64,
}

impl Window {
    fn new() -> Window {
        Window {
            tx: 0,
            rx: 0,
            rx_dropped: 0,
            queue_full: 0,
            false_downs: 0,
            downs: Vec::new(),
            state_changes: 0,
            lateness: Lateness::new(),
            min_margin_ns: None,
            max_gap_ns: 0,
            work_ns: 0,
        }
    }
}

/// One side: a registry and what the daemon's driver does around it.
struct Side {
    registry: Registry,
    epoch: Instant,
    mac: Address,
    /// Per session, while Up: (last accepted packet, detection deadline
    /// that packet set).
    refreshed: HashMap<SessionId, (u64, u64)>,
    up: usize,
    measuring: bool,
    window_start_ns: u64,
    w: Window,
    buf: [u8; MAX_PACKET_LEN],
}

impl Side {
    fn new(seed: u64, epoch: Instant, mac: Address) -> Side {
        Side {
            registry: Registry::new(seed),
            epoch,
            mac,
            refreshed: HashMap::new(),
            up: 0,
            measuring: false,
            window_start_ns: 0,
            w: Window::new(),
            buf: [0; MAX_PACKET_LEN],
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn begin_window(&mut self) {
        self.w = Window::new();
        self.measuring = true;
        self.window_start_ns = self.now();
    }

    /// The driver's `is_bfd` check, then `handle_punt`.
    fn receive(&mut self, frame: Vec<u8>, out: &ArrayQueue<Vec<u8>>) {
        let is_bfd = parse_udp(&frame)
            .is_some_and(|u| u.dst_port == SINGLE_HOP_PORT || u.dst_port == MULTI_HOP_PORT);
        let now = self.now();
        let Some(u) = parse_udp(&frame).filter(|_| is_bfd) else {
            self.w.rx_dropped += 1;
            return;
        };
        self.w.rx += 1;
        let meta = RxMeta {
            path: PathId(0),
            src: u.src,
            dst: u.dst,
            ttl: u.ttl,
            udp_dst_port: u.dst_port,
        };
        match self.registry.handle_rx(&meta, &frame[u.payload], now) {
            Ok(id) => {
                let session = self.registry.session(id);
                let up = session.is_some_and(|s| s.state() == State::Up);
                let detect = session.and_then(|s| s.detection_time_ns());
                match (up, detect) {
                    (true, Some(detect)) => {
                        if let Some((last, deadline)) =
                            self.refreshed.insert(id, (now, now + detect))
                        {
                            if self.measuring {
                                let margin = deadline as i64 - now as i64;
                                self.w.min_margin_ns =
                                    Some(self.w.min_margin_ns.map_or(margin, |m| m.min(margin)));
                                self.w.max_gap_ns = self.w.max_gap_ns.max(now - last);
                            }
                        }
                    }
                    _ => {
                        self.refreshed.remove(&id);
                    }
                }
            }
            Err(_) => self.w.rx_dropped += 1,
        }
        drop(frame);
        self.run(now, out);
    }

    /// The driver's `run`: lateness, due timers and packets, events.
    fn run(&mut self, now: u64, out: &ArrayQueue<Vec<u8>>) {
        let mut late_ns = 0;
        if self.measuring {
            if let Some(due) = self.registry.next_deadline().filter(|d| *d <= now) {
                late_ns = now - due;
                self.w.lateness.record(late_ns);
            }
        }
        // As the driver: collect the payloads, then frame each one.
        let mut frames: Vec<(TxMeta, Vec<u8>)> = Vec::new();
        self.registry.poll(now, &mut self.buf, |meta, bytes| {
            frames.push((*meta, bytes.to_vec()))
        });
        for (meta, payload) in frames {
            match build_frame(self.mac, &meta, &payload) {
                Some(frame) => match out.push(frame) {
                    Ok(()) => self.w.tx += 1,
                    Err(_) => self.w.queue_full += 1,
                },
                None => self.w.queue_full += 1,
            }
        }
        while let Some((id, event)) = self.registry.poll_event() {
            if let SessionEvent::StateChanged { from, to, .. } = event {
                if to == State::Up {
                    self.up += 1;
                }
                let last_rx = if from == State::Up {
                    self.up -= 1;
                    self.refreshed.remove(&id).map(|(last, _)| last)
                } else {
                    None
                };
                if self.measuring {
                    self.w.state_changes += 1;
                    if from == State::Up && to == State::Down {
                        self.w.false_downs += 1;
                        if self.w.downs.len() < DOWNS_KEPT {
                            self.w.downs.push((
                                now.saturating_sub(self.window_start_ns) as f64 / 1e9,
                                last_rx.map_or(f64::NAN, |t| now.saturating_sub(t) as f64 / 1e6),
                                late_ns as f64 / 1e6,
                            ));
                        }
                    }
                }
            }
        }
    }

    fn poll(&mut self, out: &ArrayQueue<Vec<u8>>) {
        let now = self.now();
        self.run(now, out);
    }

    /// Time to the next deadline (zero if passed), as the driver's
    /// `next_deadline`.
    fn next_deadline(&mut self) -> Option<Duration> {
        let next = self.registry.next_deadline()?;
        Some(Duration::from_nanos(next.saturating_sub(self.now())))
    }
}

fn addr(net: u8, i: u32) -> IpAddr {
    let host = i + 1;
    IpAddr::V4(Ipv4Addr::new(10, net, (host >> 8) as u8, host as u8))
}

fn peer(local: IpAddr, remote: IpAddr, interval_us: u32) -> PeerConfig {
    PeerConfig {
        local,
        remote,
        path: PathId(0),
        kind: SessionKind::MultiHop {
            min_ttl: DEFAULT_MULTIHOP_MIN_TTL,
        },
        desired_min_tx_us: interval_us,
        required_min_rx_us: interval_us,
        detect_mult: MULTIPLIER,
        auth: None,
        passive: false,
        admin_down: false,
    }
}

/// This thread's CPU time (user + system) in seconds, from
/// /proc/thread-self/stat (clock ticks of 1/100 s).
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// This thread's involuntary context switches so far.
fn thread_preemptions() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))?
        .trim()
        .parse()
        .ok()
}

fn load_average() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn pin(core: usize) -> Result<(), String> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(format!("cannot pin to CPU {core}"))
    }
}

/// Shared between the two threads.
struct Shared {
    a_to_b: ArrayQueue<Vec<u8>>,
    b_to_a: ArrayQueue<Vec<u8>>,
    peer_up: AtomicUsize,
    measuring: AtomicBool,
    stop: AtomicBool,
}

/// What the peer thread reports.
struct PeerResult {
    up_at_start: usize,
    up_at_end: usize,
    w: Window,
    load_bytes: u64,
    seconds: f64,
}

fn peer_loop(mut b: Side, shared: &Shared, load: bool) -> PeerResult {
    let mut buffer: Vec<u64> = if load {
        vec![1; LOAD_BYTES / 8]
    } else {
        Vec::new()
    };
    let (mut offset, mut streamed, mut acc) = (0usize, 0u64, 0u64);
    let mut up_at_start = 0;
    let mut window_start = None;
    while !shared.stop.load(Ordering::Relaxed) {
        while let Some(frame) = shared.a_to_b.pop() {
            b.receive(frame, &shared.b_to_a);
        }
        if b.next_deadline().is_some_and(|d| d.is_zero()) {
            b.poll(&shared.b_to_a);
        }
        shared.peer_up.store(b.up, Ordering::Relaxed);
        if !b.measuring && shared.measuring.load(Ordering::Acquire) {
            b.begin_window();
            up_at_start = b.up;
            window_start = Some(Instant::now());
            streamed = 0;
        }
        if load {
            // A forwarding worker's memory traffic: read and write a slice.
            let end = (offset + LOAD_CHUNK_WORDS).min(buffer.len());
            for x in &mut buffer[offset..end] {
                *x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(acc);
                acc ^= *x;
            }
            streamed += ((end - offset) * 8) as u64;
            offset = if end == buffer.len() { 0 } else { end };
        } else {
            std::hint::spin_loop();
        }
    }
    black_box(acc);
    PeerResult {
        up_at_start,
        up_at_end: b.up,
        seconds: window_start.map_or(0.0, |t| t.elapsed().as_secs_f64()),
        w: b.w,
        load_bytes: streamed,
    }
}

/// What side A measured.
struct ControlResult {
    up_at_start: usize,
    up_at_end: usize,
    seconds_to_up: f64,
    seconds: f64,
    w: Window,
    cpu_seconds: Option<f64>,
    preemptions: Option<u64>,
    steal_percent: Option<f64>,
    load_average_start: Option<[f64; 3]>,
    load_average_end: Option<[f64; 3]>,
    detection_time_ms: f64,
}

enum Phase {
    WaitingUp,
    Settling(Instant),
    Measuring(Instant),
}

/// Side A in the daemon's control loop, with the benchmark's phases.
fn control_loop(
    mut a: Side,
    shared: &Shared,
    sessions: usize,
    seconds: f64,
    core: usize,
) -> Result<ControlResult, String> {
    let started = Instant::now();
    let mut phase = Phase::WaitingUp;
    let mut next_report = started + Duration::from_secs(1);
    let mut seconds_to_up = 0.0;
    let mut up_at_start = 0;
    let (mut cpu0, mut pre0, mut steal0, mut load0) = (None, None, None, None);
    let window = Duration::from_secs_f64(seconds);
    loop {
        // control.poll(): the packets the workers punted.
        let t0 = Instant::now();
        while let Some(frame) = shared.b_to_a.pop() {
            a.receive(frame, &shared.a_to_b);
        }
        // control.sleep_budget(), sleep, spin.
        let budget = a.next_deadline().map_or(SLEEP_CAP, |d| d.min(SLEEP_CAP));
        let t1 = Instant::now();
        if budget > MIN_SLEEP {
            std::thread::sleep(budget - SPIN);
        }
        let until = Instant::now() + a.next_deadline().map_or(SPIN, |d| d.min(SPIN));
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        // control.poll_bfd().
        let t2 = Instant::now();
        a.poll(&shared.a_to_b);
        let t3 = Instant::now();
        if a.measuring {
            a.w.work_ns += ((t1 - t0) + (t3 - t2)).as_nanos() as u64;
        }
        if t3 < next_report {
            continue;
        }
        if shared.stop.load(Ordering::Acquire) {
            return Err("the peer thread stopped".into());
        }
        let peer_up = shared.peer_up.load(Ordering::Relaxed);
        match phase {
            Phase::WaitingUp => {
                next_report = t3 + Duration::from_secs(1);
                eprintln!(
                    "patronus-bench: bfd: {:.0} s: Up {} / {sessions} here, {peer_up} / {sessions} at the peer",
                    started.elapsed().as_secs_f64(),
                    a.up
                );
                if a.up == sessions && peer_up == sessions {
                    seconds_to_up = started.elapsed().as_secs_f64();
                    phase = Phase::Settling(t3 + SETTLE);
                } else if started.elapsed() > UP_TIMEOUT {
                    return Err(format!(
                        "only {} / {sessions} sessions Up here and {peer_up} at the peer after {} s",
                        a.up,
                        UP_TIMEOUT.as_secs()
                    ));
                }
            }
            Phase::Settling(until) => {
                next_report = t3 + Duration::from_millis(100);
                if t3 >= until {
                    up_at_start = a.up;
                    a.begin_window();
                    shared.measuring.store(true, Ordering::Release);
                    cpu0 = thread_cpu_seconds();
                    pre0 = thread_preemptions();
                    steal0 = crate::steal::seconds(core);
                    load0 = load_average();
                    eprintln!(
                        "patronus-bench: bfd: all Up after {seconds_to_up:.1} s; measuring {seconds:.0} s"
                    );
                    phase = Phase::Measuring(Instant::now());
                    next_report = Instant::now() + PROGRESS_EVERY;
                }
            }
            Phase::Measuring(from) => {
                let elapsed = from.elapsed();
                let secs = elapsed.as_secs_f64();
                if elapsed < window {
                    next_report = t3 + PROGRESS_EVERY.min(window - elapsed);
                    eprintln!(
                        "patronus-bench: bfd: {secs:.0} s: Up {} / {peer_up}, false Downs {}, tx {:.0} pps, rx {:.0} pps, late p99 {:.1} us max {:.1} us, busy {:.1} %",
                        a.up,
                        a.w.false_downs,
                        a.w.tx as f64 / secs,
                        a.w.rx as f64 / secs,
                        a.w.lateness.quantile_us(0.99),
                        a.w.lateness.max_ns as f64 / 1e3,
                        a.w.work_ns as f64 / elapsed.as_nanos() as f64 * 100.0
                    );
                    continue;
                }
                shared.stop.store(true, Ordering::Release);
                let cpu = match (cpu0, thread_cpu_seconds()) {
                    (Some(b), Some(e)) => Some(e - b),
                    _ => None,
                };
                let preemptions = match (pre0, thread_preemptions()) {
                    (Some(b), Some(e)) => Some(e - b),
                    _ => None,
                };
                let detection_time_ms = a
                    .registry
                    .ids()
                    .next()
                    .and_then(|id| a.registry.session(id)?.detection_time_ns())
                    .map_or(0.0, |ns| ns as f64 / 1e6);
                return Ok(ControlResult {
                    up_at_start,
                    up_at_end: a.up,
                    seconds_to_up,
                    seconds: secs,
                    cpu_seconds: cpu,
                    preemptions,
                    steal_percent: crate::steal::percent(steal0, crate::steal::seconds(core), secs),
                    load_average_start: load0,
                    load_average_end: load_average(),
                    detection_time_ms,
                    w: a.w,
                });
            }
        }
    }
}

fn downs_json(downs: &[(f64, f64, f64)]) -> serde_json::Value {
    downs
        .iter()
        .map(|(at, silent, late)| json!({"at_s": at, "silent_ms": silent, "poll_late_ms": late}))
        .collect()
}

fn seconds_given() -> bool {
    std::env::args().any(|a| a == "--seconds" || a.starts_with("--seconds="))
}

pub fn run(args: &Args) -> Result<serde_json::Value, String> {
    let sessions = args.sessions as usize;
    let interval_ms = args.interval_ms;
    let seconds = if seconds_given() {
        args.seconds
    } else {
        DEFAULT_SECONDS
    };
    let (control_core, peer_core) = (args.generator_core, args.worker_core);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if control_core >= cpus || peer_core >= cpus {
        return Err(format!(
            "cores {control_core} and {peer_core} must be below {cpus}"
        ));
    }
    if control_core == peer_core {
        eprintln!("warning: the control core and the peer share CPU {control_core}");
    }
    let epoch = Instant::now();
    let seed = epoch.elapsed().as_nanos() as u64 ^ u64::from(std::process::id()) << 20;
    let mut a = Side::new(seed, epoch, Address([2, 0, 0, 0, 0, 0xa]));
    let mut b = Side::new(!seed, epoch, Address([2, 0, 0, 0, 0, 0xb]));
    let interval_us = interval_ms * 1000;
    for i in 0..args.sessions {
        let (here, there) = (addr(0, i), addr(1, i));
        a.registry
            .add(peer(here, there, interval_us))
            .map_err(|e| e.to_string())?;
        b.registry
            .add(peer(there, here, interval_us))
            .map_err(|e| e.to_string())?;
    }
    let shared = Shared {
        a_to_b: ArrayQueue::new(QUEUE_FRAMES),
        b_to_a: ArrayQueue::new(QUEUE_FRAMES),
        peer_up: AtomicUsize::new(0),
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    };
    eprintln!(
        "patronus-bench: bfd: {sessions} multihop sessions × {interval_ms} ms × {MULTIPLIER}; control loop on CPU {control_core}, peer on CPU {peer_core}{}",
        if args.load { " streaming memory (--load)" } else { " (busy-polling)" }
    );
    let load = args.load;
    let (ours, theirs) = std::thread::scope(|scope| {
        let shared = &shared;
        let peer = std::thread::Builder::new()
            .name("bfd-peer".into())
            .spawn_scoped(scope, move || {
                let r = pin(peer_core).map(|()| peer_loop(b, shared, load));
                shared.stop.store(true, Ordering::Release);
                r
            })
            .map_err(|e| e.to_string())?;
        let control = std::thread::Builder::new()
            .name("bfd-control".into())
            .spawn_scoped(scope, move || {
                let r = pin(control_core)
                    .and_then(|()| control_loop(a, shared, sessions, seconds, control_core));
                shared.stop.store(true, Ordering::Release);
                r
            })
            .map_err(|e| e.to_string())?;
        let ours = control
            .join()
            .map_err(|_| "control thread panicked".to_string())?;
        let theirs = peer
            .join()
            .map_err(|_| "peer thread panicked".to_string())?;
        Ok::<_, String>((ours?, theirs?))
    })?;
    let secs = ours.seconds.max(1e-9);
    let w = &ours.w;
    let margin_ms = w.min_margin_ns.map(|ns| ns as f64 / 1e6);
    eprintln!(
        "patronus-bench: bfd: {} s: {} false Downs (peer {}), lateness p99 {:.1} us max {:.1} us, control thread CPU {:.1} % (work {:.1} %), margin {:.2} ms of {:.0} ms",
        secs.round(),
        w.false_downs,
        theirs.w.false_downs,
        w.lateness.quantile_us(0.99),
        w.lateness.max_ns as f64 / 1e3,
        ours.cpu_seconds.map_or(f64::NAN, |c| c / secs * 100.0),
        w.work_ns as f64 / (secs * 1e9) * 100.0,
        margin_ms.unwrap_or(f64::NAN),
        ours.detection_time_ms,
    );
    let pass = w.false_downs == 0
        && theirs.w.false_downs == 0
        && ours.up_at_start == sessions
        && ours.up_at_end == sessions;
    let mut report = json!({
        "scenario": "bfd",
        "sessions": sessions,
        "interval_ms": interval_ms,
        "multiplier": MULTIPLIER,
        "multihop": true,
        "detection_time_ms": ours.detection_time_ms,
        "seconds": secs,
        "seconds_to_all_up": ours.seconds_to_up,
        "sessions_up_at_start": ours.up_at_start,
        "sessions_up_at_end": ours.up_at_end,
        "false_downs": w.false_downs,
        "false_downs_first": downs_json(&w.downs),
        "peer_false_downs_first": downs_json(&theirs.w.downs),
        "state_changes": w.state_changes,
        "pass": pass,
        "tx_packets": w.tx,
        "rx_packets": w.rx,
        "tx_pps": w.tx as f64 / secs,
        "rx_pps": w.rx as f64 / secs,
        "rx_dropped": w.rx_dropped,
        "queue_full": w.queue_full + theirs.w.queue_full,
    });
    let more = json!({
        "timer_lateness": w.lateness.summary(),
        "detection_margin_min_ms": margin_ms,
        "max_rx_gap_ms": w.max_gap_ns as f64 / 1e6,
        "control_cpu_percent": ours.cpu_seconds.map(|c| c / secs * 100.0),
        "control_work_percent": w.work_ns as f64 / (secs * 1e9) * 100.0,
        "control_work_ns_per_packet": w.work_ns as f64 / (w.tx + w.rx).max(1) as f64,
        "control_preemptions": ours.preemptions,
        "control_steal_percent": ours.steal_percent,
        "control_core": control_core,
        "peer_core": peer_core,
        "peer_sessions_up_at_start": theirs.up_at_start,
        "peer_sessions_up_at_end": theirs.up_at_end,
        "peer_false_downs": theirs.w.false_downs,
        "peer_timer_lateness": theirs.w.lateness.summary(),
        "peer_detection_margin_min_ms": theirs.w.min_margin_ns.map(|ns| ns as f64 / 1e6),
        "load": load,
        "worker_core_activity": if load {
            "the peer's busy-polling loop, streaming a 32 MiB buffer (read-modify-write) between its deadlines"
        } else {
            "the peer's busy-polling loop (100 % busy, no memory traffic)"
        },
        "load_gbytes_per_second": (load && theirs.seconds > 0.0)
            .then(|| theirs.load_bytes as f64 / theirs.seconds / 1e9),
        "load_average_start": ours.load_average_start,
        "load_average_end": ours.load_average_end,
        "frame_io": "build_frame + parse_udp (twice on receipt) per packet; no mbufs, rings or NIC",
    });
    // Two objects: one json! of all the fields exceeds the macro's
    // recursion limit.
    if let (Some(r), serde_json::Value::Object(m)) = (report.as_object_mut(), more) {
        r.extend(m);
    }
    Ok(report)
}
