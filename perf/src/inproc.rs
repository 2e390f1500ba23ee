//! The in-process baselines, run on the worker core without DPDK I/O:
//! ring's ChaCha20-Poly1305 on one buffer (the crypto floor of this CPU)
//! and boringtun's `Tunn` (what a stock userspace WireGuard spends).
//! Both are timed with the TSC around the calls only.

use crate::{steal, Args, Measurement};
use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use patronus_dataplane::dpdk::tsc;
use patronus_dataplane::synth;
use patronus_dataplane::wire::ethernet::{self, Address};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// Untimed seconds before each in-process measurement (caches, clocks).
const WARMUP: Duration = Duration::from_millis(300);
/// Calls between two TSC reads.
const BATCH: usize = 32;

/// Runs `f` on a thread pinned to `core`.
pub fn on_core<T: Send>(
    core: usize,
    f: impl FnOnce() -> Result<T, String> + Send,
) -> Result<T, String> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("bench-inproc".into())
            .spawn_scoped(scope, move || {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                    return Err(format!("cannot pin the benchmark to CPU {core}"));
                }
                f()
            })
            .map_err(|e| e.to_string())?
            .join()
            .map_err(|_| "benchmark thread panicked".to_string())?
    })
}

/// The nonce WireGuard uses for `counter` (whitepaper 5.4.6).
fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// `aead`: seals one `--size`-byte buffer in place, over and over, with a
/// fresh nonce each time.
pub fn aead(args: &Args, tsc_hz: u64) -> Result<Measurement, String> {
    let size = usize::from(args.size);
    let seconds = args.seconds;
    eprintln!(
        "patronus-bench: aead: {size} bytes, {seconds:.1} s on CPU {}...",
        args.worker_core
    );
    let core = args.worker_core;
    let m = on_core(core, move || {
        let key = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &[0x42; 32]).map_err(|e| e.to_string())?,
        );
        let mut buf: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut counter = 0u64;
        let mut seal_batch = || {
            for _ in 0..BATCH {
                let tag = key
                    .seal_in_place_separate_tag(nonce(counter), Aad::empty(), &mut buf)
                    .expect("ChaCha20-Poly1305 seals any packet");
                let _ = black_box(tag);
                counter += 1;
            }
        };
        let warm_end = Instant::now() + WARMUP;
        while Instant::now() < warm_end {
            seal_batch();
        }
        let steal0 = steal::seconds(core);
        let deadline = tsc() + (seconds * tsc_hz as f64) as u64;
        let (start, t0) = (Instant::now(), tsc());
        let mut packets = 0u64;
        let mut t1 = t0;
        while t1 < deadline {
            seal_batch();
            packets += BATCH as u64;
            t1 = tsc();
        }
        let secs = start.elapsed().as_secs_f64();
        Ok(Measurement {
            steal_percent: steal::percent(steal0, steal::seconds(core), secs),
            ..Measurement::from_cycles("aead", args_size(size), packets, t1 - t0, secs, tsc_hz)
        })
    })?;
    eprintln!(
        "patronus-bench: aead: {} packets, {:.3} Mpps, {:.1} cycles/packet, {:.1}% steal",
        m.packets,
        m.mpps,
        m.cycles_per_packet,
        m.steal_percent.unwrap_or(0.0)
    );
    Ok(m)
}

fn args_size(size: usize) -> u16 {
    u16::try_from(size).expect("--size is at most 1514")
}

/// The IPv4 packet the tunnels carry: `size` bytes of UDP from a host
/// behind the peer to a LAN host (the same as `decap`'s inner packet).
pub fn inner_packet(size: usize) -> Vec<u8> {
    synth::udp_frame(
        Address([2, 0, 0, 0, 1, 1]),
        Address([2, 0, 0, 0, 1, 2]),
        IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2)),
        IpAddr::V4(Ipv4Addr::new(10, 10, 1, 2)),
        64,
        size + ethernet::HEADER_LEN,
    )[ethernet::HEADER_LEN..]
        .to_vec()
}

/// Two boringtun tunnels with a completed handshake: (initiator, responder).
fn tunnel_pair() -> Result<(Tunn, Tunn), String> {
    let (a_secret, b_secret) = (StaticSecret::from([1; 32]), StaticSecret::from([2; 32]));
    let (a_public, b_public) = (PublicKey::from(&a_secret), PublicKey::from(&b_secret));
    let mut a = Tunn::new(a_secret, b_public, None, None, 1, None);
    let mut b = Tunn::new(b_secret, a_public, None, None, 2, None);
    let (mut to_b, mut to_a) = (vec![0u8; 2048], vec![0u8; 2048]);
    let mut len = match a.format_handshake_initiation(&mut to_b, false) {
        TunnResult::WriteToNetwork(m) => m.len(),
        other => return Err(format!("boringtun did not initiate: {other:?}")),
    };
    // Deliver messages back and forth until neither side has anything to say.
    let mut towards_b = true;
    for _ in 0..4 {
        let (tunn, msg, out) = if towards_b {
            (&mut b, &to_b, &mut to_a)
        } else {
            (&mut a, &to_a, &mut to_b)
        };
        match tunn.decapsulate(None, &msg[..len], out) {
            TunnResult::WriteToNetwork(m) => len = m.len(),
            TunnResult::Done => return Ok((a, b)),
            other => return Err(format!("boringtun handshake failed: {other:?}")),
        }
        towards_b = !towards_b;
    }
    Err("boringtun handshake did not settle".into())
}

/// `boringtun`: encapsulates a batch of `--size`-byte IPv4 packets on one
/// tunnel, then decapsulates the batch on the other (every message fresh,
/// for the replay window), each timed. Returns (encap, decap).
pub fn boringtun(args: &Args, tsc_hz: u64) -> Result<(Measurement, Measurement), String> {
    let size = usize::from(args.size);
    let seconds = args.seconds;
    eprintln!(
        "patronus-bench: boringtun: {size} bytes, {seconds:.1} s on CPU {}...",
        args.worker_core
    );
    let core = args.worker_core;
    let (encap, decap) = on_core(core, move || {
        let (mut a, mut b) = tunnel_pair()?;
        let packet = inner_packet(size);
        // boringtun wants room for its 32 bytes of overhead and at least 148.
        let mut messages = vec![vec![0u8; (size + 32).max(148)]; BATCH];
        let mut lens = [0usize; BATCH];
        let mut out = vec![0u8; size + 32];
        let mut round = |a: &mut Tunn, b: &mut Tunn| -> Result<(u64, u64), String> {
            let t0 = tsc();
            for (message, len) in messages.iter_mut().zip(&mut lens) {
                match a.encapsulate(&packet, message) {
                    TunnResult::WriteToNetwork(m) => *len = m.len(),
                    other => return Err(format!("boringtun encapsulate: {other:?}")),
                }
            }
            let t1 = tsc();
            for (message, len) in messages.iter().zip(&lens) {
                match b.decapsulate(None, &message[..*len], &mut out) {
                    TunnResult::WriteToTunnelV4(p, _) => {
                        black_box(p);
                    }
                    other => return Err(format!("boringtun decapsulate: {other:?}")),
                }
            }
            Ok((t1 - t0, tsc() - t1))
        };
        let warm_end = Instant::now() + WARMUP;
        while Instant::now() < warm_end {
            round(&mut a, &mut b)?;
        }
        let steal0 = steal::seconds(core);
        let deadline = tsc() + (seconds * tsc_hz as f64) as u64;
        let start = Instant::now();
        let (mut packets, mut encap_cycles, mut decap_cycles) = (0u64, 0u64, 0u64);
        while tsc() < deadline {
            let (e, d) = round(&mut a, &mut b)?;
            encap_cycles += e;
            decap_cycles += d;
            packets += BATCH as u64;
        }
        let secs = start.elapsed().as_secs_f64();
        let steal_percent = steal::percent(steal0, steal::seconds(core), secs);
        let size = args_size(size);
        Ok((
            Measurement {
                steal_percent,
                ..Measurement::from_cycles(
                    "boringtun_encap",
                    size,
                    packets,
                    encap_cycles,
                    secs,
                    tsc_hz,
                )
            },
            Measurement {
                steal_percent,
                ..Measurement::from_cycles(
                    "boringtun_decap",
                    size,
                    packets,
                    decap_cycles,
                    secs,
                    tsc_hz,
                )
            },
        ))
    })?;
    eprintln!(
        "patronus-bench: boringtun: {} packets, encap {:.3} Mpps {:.1} cycles/packet, \
         decap {:.3} Mpps {:.1} cycles/packet",
        encap.packets, encap.mpps, encap.cycles_per_packet, decap.mpps, decap.cycles_per_packet
    );
    Ok((encap, decap))
}
