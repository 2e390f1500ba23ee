//! `handshake`: complete WireGuard handshakes per second on one core, the
//! responder side (initiation in, response out), as a PoP restarting with
//! `--peers` configured sites meets every site initiating at once.
//!
//! Everything is built before timing: a responder [`Device`] with `--peers`
//! peers (random keys), one initiator per peer (a [`StaticIdentity`] and a
//! [`Handshake`], what a site's `Device` holds for the PoP), and one
//! initiation from each, every one from its own source address. The timed
//! part is [`Device::handle_message`] on the worker core, with the same
//! `OsRng` the daemon's control thread uses; each call must yield a
//! response. Afterwards every response goes back to its initiator, whose
//! keys must match the responder's.
//!
//! The reference, in the same run on the same core: boringtun's `Tunn`
//! responders decapsulating pre-generated initiations (one initiator and
//! responder `Tunn` pair per initiation, built before timing). The two are
//! timed in alternating slices so both see the same machine.
//!
//! Under load: a fresh initiation from every peer, without mac2 (the
//! initiators hold no cookie), goes through the same responder with
//! `under_load = true`; each must yield a cookie reply instead of a
//! handshake.

use crate::{inproc, steal, Args, Measurement};
use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519;
use patronus_dataplane::dpdk::tsc;
use patronus_dataplane::wg::cookie::CookieChecker;
use patronus_dataplane::wg::device::{Device, DeviceOutput, PeerSpec};
use patronus_dataplane::wg::keys::PrivateKey;
use patronus_dataplane::wg::messages::{
    COOKIE_REPLY_LEN, INITIATION_LEN, MSG_COOKIE_REPLY, MSG_RESPONSE, RESPONSE_LEN,
};
use patronus_dataplane::wg::noise::{Handshake, SessionKeys, StaticIdentity};
use rand_core::{OsRng, RngCore};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime};

/// Initiator/responder `Tunn` pairs for the boringtun reference, at most.
pub const BORINGTUN_PAIRS: usize = 1000;
/// Timed slices, alternating ours with boringtun's.
const SLICES: usize = 10;
/// The WireGuard port every site and the PoP use.
const PORT: u16 = 51820;

/// What the scenario measured.
#[derive(Debug)]
pub struct HandshakeResult {
    /// Our responder: `packets` are handshakes, `packet_size` the
    /// initiation's 148 bytes.
    pub ours: Measurement,
    pub peers: u32,
    pub handshakes_per_second: f64,
    /// `peers` / `handshakes_per_second`: how long a restart takes.
    pub seconds_for_all: f64,
    /// Handshakes whose keys the initiator derived identically.
    pub verified: u64,
    pub boringtun_handshakes: u64,
    pub boringtun_handshakes_per_second: f64,
    pub boringtun_cycles_per_handshake: f64,
    pub cookie_replies: u64,
    pub cookie_replies_per_second: f64,
    pub cycles_per_cookie_reply: f64,
    /// Seconds spent building keys, devices and initiations (untimed).
    pub setup_seconds: f64,
}

/// One site: its identity and its handshake state for the PoP.
struct Initiator {
    identity: StaticIdentity,
    handshake: Handshake,
}

/// A distinct source address for every site: 100.64.0.0/10 onwards.
fn site_address(i: usize) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(0x6440_0000u32 + i as u32), PORT)
}

/// A distinct spoofed source for every flood packet: 198.18.0.0/15 onwards.
fn flood_address(i: usize) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(0xc612_0000u32 + i as u32), PORT)
}

/// Item range of slice `k` of `SLICES` over `len` items.
fn slice(len: usize, k: usize) -> std::ops::Range<usize> {
    len * k / SLICES..len * (k + 1) / SLICES
}

/// Whether item `i` of `n` ends a tenth (for progress and samples).
fn every_tenth(i: usize, n: usize) -> bool {
    let step = (n / 10).max(1);
    (i + 1).is_multiple_of(step) || i + 1 == n
}

/// One initiation from each initiator, as of `wall`/`now`.
fn initiations(
    initiators: &mut [Initiator],
    wall: SystemTime,
    now: Duration,
) -> Result<Vec<[u8; INITIATION_LEN]>, String> {
    initiators
        .iter_mut()
        .enumerate()
        .map(|(i, s)| {
            let mut msg = [0u8; INITIATION_LEN];
            s.handshake
                .initiate(&s.identity, i as u32, wall, now, &mut OsRng, &mut msg)
                .map_err(|e| format!("initiator {i} cannot initiate: {e}"))?;
            Ok(msg)
        })
        .collect()
}

/// boringtun: initiator/responder pairs with the responders sharing one
/// key (one PoP), and an initiation from each initiator.
fn boringtun_pairs(m: usize) -> Result<Vec<(Tunn, Tunn, Vec<u8>)>, String> {
    let pop_secret = x25519::StaticSecret::random_from_rng(OsRng);
    let pop_public = x25519::PublicKey::from(&pop_secret);
    (0..m)
        .map(|j| {
            let site_secret = x25519::StaticSecret::random_from_rng(OsRng);
            let site_public = x25519::PublicKey::from(&site_secret);
            let mut site = Tunn::new(site_secret, pop_public, None, None, j as u32, None);
            let pop = Tunn::new(pop_secret.clone(), site_public, None, None, j as u32, None);
            let mut msg = vec![0u8; INITIATION_LEN];
            let len = match site.format_handshake_initiation(&mut msg, false) {
                TunnResult::WriteToNetwork(m) => m.len(),
                other => return Err(format!("boringtun did not initiate: {other:?}")),
            };
            if len != INITIATION_LEN {
                return Err(format!("boringtun initiation of {len} bytes"));
            }
            Ok((site, pop, msg))
        })
        .collect()
}

/// The response and keys our responder produced for one initiation.
fn take_response(
    out: &mut Vec<DeviceOutput>,
    to: SocketAddrV4,
) -> Result<(Vec<u8>, SessionKeys), String> {
    let (mut response, mut keys) = (None, None);
    for o in out.drain(..) {
        match o {
            DeviceOutput::Transmit { to: t, message } if t == to => response = Some(message),
            DeviceOutput::InstallKeypair { keys: k, .. } => keys = Some(k),
            _ => {}
        }
    }
    match (response, keys) {
        (Some(r), Some(k)) if r.len() == RESPONSE_LEN && r[0] == MSG_RESPONSE => Ok((r, k)),
        (r, k) => Err(format!(
            "no handshake response to {to}: response {:?}, keys {}",
            r.map(|r| r.len()),
            k.is_some()
        )),
    }
}

/// Runs the scenario on `--worker-core`.
pub fn run(args: &Args, tsc_hz: u64) -> Result<HandshakeResult, String> {
    let n = args.peers.unwrap_or(10_000) as usize;
    let m = n.min(BORINGTUN_PAIRS);
    let core = args.worker_core;
    eprintln!(
        "patronus-bench: handshake: {n} peers, boringtun reference with {m} pairs, on CPU {core}"
    );
    inproc::on_core(core, move || {
        let setup = Instant::now();
        let origin = Instant::now();
        let pop_key = PrivateKey::generate(&mut OsRng);
        let pop_public = pop_key.public_key();

        // The sites: N x25519 public keys and N static-static DHs.
        let mut initiators = Vec::with_capacity(n);
        let mut specs = Vec::with_capacity(n);
        for i in 0..n {
            let identity = StaticIdentity::new(PrivateKey::generate(&mut OsRng));
            let handshake = Handshake::new(&identity, pop_public, None);
            specs.push(PeerSpec {
                public_key: identity.public_key(),
                preshared_key: None,
                endpoint: None,
                persistent_keepalive: 0,
            });
            initiators.push(Initiator {
                identity,
                handshake,
            });
            if every_tenth(i, n) {
                eprintln!("patronus-bench: handshake: {} of {n} site keys", i + 1);
            }
        }
        eprintln!("patronus-bench: handshake: building the PoP's Device ({n} DHs)...");
        let index_mask = OsRng.next_u32();
        let mut device = Device::new(pop_key, specs, index_mask, origin.elapsed(), &mut OsRng);
        if device.peer_count() != n || device.public_key() != pop_public {
            return Err("the Device does not hold the peers it was given".into());
        }

        eprintln!("patronus-bench: handshake: {n} initiations (the restart storm)...");
        let wall = SystemTime::now();
        let storm = initiations(&mut initiators, wall, origin.elapsed())?;

        eprintln!("patronus-bench: handshake: {m} boringtun pairs and initiations...");
        let mut pairs = boringtun_pairs(m)?;
        let setup_seconds = setup.elapsed().as_secs_f64();
        eprintln!("patronus-bench: handshake: set up in {setup_seconds:.1} s; timing...");

        // Timed: ours and boringtun's, in alternating slices.
        let mut out = Vec::with_capacity(4);
        let mut results = Vec::with_capacity(n);
        let mut bt_responses = vec![[0u8; RESPONSE_LEN]; m];
        let mut bt_buf = vec![0u8; 2048];
        let (mut our_cycles, mut bt_cycles) = (0u64, 0u64);
        let steal0 = steal::seconds(core);
        let window = Instant::now();
        for k in 0..SLICES {
            let t0 = tsc();
            for (j, (_, pop, init)) in pairs[slice(m, k)].iter_mut().enumerate() {
                match pop.decapsulate(None, init, &mut bt_buf) {
                    TunnResult::WriteToNetwork(r) if r.len() == RESPONSE_LEN => {
                        bt_responses[slice(m, k).start + j].copy_from_slice(r)
                    }
                    other => return Err(format!("boringtun responder: {other:?}")),
                }
            }
            let t1 = tsc();
            let now = origin.elapsed();
            for i in slice(n, k) {
                let src = site_address(i);
                device
                    .handle_message(src, &storm[i], false, now, wall, &mut OsRng, &mut out)
                    .map_err(|e| format!("initiation from peer {i}: {e}"))?;
                results.push(take_response(&mut out, src)?);
            }
            let t2 = tsc();
            bt_cycles += t1 - t0;
            our_cycles += t2 - t1;
        }
        let window = window.elapsed().as_secs_f64();
        let steal_percent = steal::percent(steal0, steal::seconds(core), window);
        let stats = device.stats();
        if stats.initiations_received != n as u64 || stats.rejected != 0 {
            return Err(format!("responder stats after the storm: {stats:?}"));
        }

        // Every response back to its initiator: the keys must match.
        eprintln!("patronus-bench: handshake: checking {n} responses at their initiators...");
        let mut verified = 0u64;
        for (i, (s, (response, theirs))) in initiators.iter_mut().zip(&results).enumerate() {
            if every_tenth(i, n) {
                // As the site's Device would, check mac1 first (a sample).
                CookieChecker::new(&s.identity, origin.elapsed(), &mut OsRng)
                    .check_mac1(response)
                    .map_err(|e| format!("response to peer {i}: {e}"))?;
            }
            let ours = s
                .handshake
                .consume_response(&s.identity, response)
                .map_err(|e| format!("response to peer {i}: {e}"))?;
            let matched = ours.initiator
                && !theirs.initiator
                && ours.send_key == theirs.recv_key
                && ours.recv_key == theirs.send_key
                && ours.local_index == theirs.remote_index
                && ours.remote_index == theirs.local_index
                && ours.local_index == i as u32;
            if !matched {
                return Err(format!("peer {i}: the two sides derived different keys"));
            }
            verified += 1;
        }
        for (j, ((site, _, _), response)) in pairs.iter_mut().zip(&bt_responses).enumerate() {
            // The initiator completes and sends its confirming keepalive.
            match site.decapsulate(None, response, &mut bt_buf) {
                TunnResult::WriteToNetwork(k) if k.len() == 32 => {}
                other => return Err(format!("boringtun initiator {j}: {other:?}")),
            }
        }

        // Under load: a fresh initiation from every site, no mac2.
        eprintln!("patronus-bench: handshake: {n} initiations without mac2, under load...");
        let flood = initiations(&mut initiators, SystemTime::now(), origin.elapsed())?;
        let now = origin.elapsed();
        let t0 = tsc();
        for (i, msg) in flood.iter().enumerate() {
            let src = flood_address(i);
            device
                .handle_message(src, msg, true, now, wall, &mut OsRng, &mut out)
                .map_err(|e| format!("flood initiation {i}: {e}"))?;
            match out.as_slice() {
                [DeviceOutput::Transmit { to, message }]
                    if *to == src
                        && message.len() == COOKIE_REPLY_LEN
                        && message[0] == MSG_COOKIE_REPLY => {}
                other => return Err(format!("flood initiation {i} got {other:?}")),
            }
            out.clear();
        }
        let cookie_cycles = tsc() - t0;
        let after = device.stats();
        if after.cookie_replies_sent != n as u64
            || after.initiations_received != 2 * n as u64
            || (0..n as u32).any(|p| {
                device
                    .peer_status(p)
                    .is_none_or(|s| s.handshakes_completed != 1)
            })
        {
            return Err(format!("the flood got past the cookie defence: {after:?}"));
        }

        let rate = |count: usize, cycles: u64| {
            if cycles > 0 {
                count as f64 * tsc_hz as f64 / cycles as f64
            } else {
                0.0
            }
        };
        let per = |cycles: u64, count: usize| cycles as f64 / count.max(1) as f64;
        let handshakes_per_second = rate(n, our_cycles);
        Ok(HandshakeResult {
            ours: Measurement {
                steal_percent,
                ..Measurement::from_cycles(
                    "handshake",
                    INITIATION_LEN as u16,
                    n as u64,
                    our_cycles,
                    our_cycles as f64 / tsc_hz as f64,
                    tsc_hz,
                )
            },
            peers: n as u32,
            handshakes_per_second,
            seconds_for_all: n as f64 / handshakes_per_second,
            verified,
            boringtun_handshakes: m as u64,
            boringtun_handshakes_per_second: rate(m, bt_cycles),
            boringtun_cycles_per_handshake: per(bt_cycles, m),
            cookie_replies: n as u64,
            cookie_replies_per_second: rate(n, cookie_cycles),
            cycles_per_cookie_reply: per(cookie_cycles, n),
            setup_seconds,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_every_item_once() {
        for len in [0, 1, 7, 10, 200, 1000, 10_001] {
            let covered: Vec<usize> = (0..SLICES).flat_map(|k| slice(len, k)).collect();
            assert_eq!(covered, (0..len).collect::<Vec<_>>());
        }
    }

    #[test]
    fn sources_are_distinct() {
        assert_ne!(site_address(0), site_address(1));
        assert_eq!(site_address(0).ip().octets(), [100, 64, 0, 0]);
        assert_eq!(flood_address(65_535).ip().octets(), [198, 18, 255, 255]);
    }
}
