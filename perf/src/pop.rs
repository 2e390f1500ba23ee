//! `forward --peers N --prefixes M --flows F`: the full WireGuard pipeline at
//! PoP scale. LAN frames go through `WgDataPath` (allowed-IPs LPM → path
//! choice → WireGuard encapsulation → outer headers) as in `encap`, but the
//! worker owns `N` peers, each with its own keypair (installed through the
//! command queue) and its own endpoint, `M` remote prefixes spread
//! round-robin over the peers, and the generator cycles through `F` distinct
//! flows. The same pipeline with one peer, one prefix and one flow, measured
//! in the same run, is the baseline.
//!
//! Layout (no two ranges overlap):
//! - peer `p`'s endpoint: `10.16.0.0 + p + 1`, port 51820;
//! - prefix `i`: the `i`-th /24 from `10.64.0.0` (10.64.0.0/24, 10.64.1.0/24,
//!   …, past 10.255.255.0/24 into 11.0.0.0/8 and beyond), owned by peer
//!   `i % N`;
//! - flow `j`: prefix `i = j % M`, `k = j / M`; destination host
//!   `1 + k % 254` in that /24, UDP source port
//!   `1024 + (k / 254 + i) % 64512`. (destination, port) is distinct per
//!   flow, and ports vary from prefix to prefix.
//!
//! The flows are kept as a compact table of (destination, port, IP header
//! checksum), shuffled so consecutive packets hit unrelated prefixes and
//! peers, and the generator writes each frame's 42 header bytes into the
//! recycled mbuf. Patronus keeps no per-flow state (the path choice is a
//! stateless hash of the flow), so flows only stress the caches and the LPM.

use crate::ringrun::{self, Feed};
use crate::{inproc, port_mac, Args, Measurement};
use crossbeam_queue::ArrayQueue;
use patronus_dataplane::buf::{HeapBuf, PacketBuf};
use patronus_dataplane::dpdk::{tsc, Mbuf, Mempool, Ring};
use patronus_dataplane::dpi::engine::{DpiConfig, DpiEngine};
use patronus_dataplane::forward::Forwarder;
use patronus_dataplane::policy::{self, AppPolicy};
use patronus_dataplane::qos::ClassMap;
use patronus_dataplane::ringbed::{RingBed, LAN, WAN};
use patronus_dataplane::synth;
use patronus_dataplane::wg::allowed_ips::AllowedIps;
use patronus_dataplane::wg::datapath::{
    local_index, DataPathConfig, Keypair, PeerActivity, WgCommand, WgDataPath, OUTER_IP_UDP_LEN,
};
use patronus_dataplane::wg::session::{RecvSession, SendSession};
use patronus_dataplane::wg::transport::{self, Decapsulated};
use patronus_dataplane::wire::ethernet::{self, Address};
use patronus_dataplane::wire::{ipv4, udp};
use patronus_dataplane::worker::{Processor, Verdict};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::time::Instant;

const INDEX_MASK: u32 = 0x5a5a_1234;
/// The peers' indexes for their keypairs (in the header of what we send):
/// `PEER_INDEX_BASE + p`.
const PEER_INDEX_BASE: u32 = 0x4000_0000;
const LAN_HOST_MAC: Address = Address([2, 0, 0, 0, 1, 2]);
const GATEWAY_MAC: Address = Address([2, 0, 0, 0, 2, 2]);
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 2);
const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 2, 1);
const LISTEN_PORT: u16 = 51820;
/// Peer `p`'s endpoint address is `ENDPOINT_BASE + p + 1`.
const ENDPOINT_BASE: u32 = u32::from_be_bytes([10, 16, 0, 0]);
/// Prefix `i` is the /24 at `PREFIX_BASE + (i << 8)`.
const PREFIX_BASE: u32 = u32::from_be_bytes([10, 64, 0, 0]);
/// Largest counts the address plan above keeps apart (endpoints stay below
/// 10.64.0.0; prefixes stay below 224.0.0.0).
pub const MAX_PEERS: u32 = 0x30_0000 - 1;
pub const MAX_PREFIXES: u32 = 4_000_000;
pub const MAX_FLOWS: u32 = 16_000_000;
/// Offsets in the LAN frame (Ethernet, IPv4 without options, UDP).
const IP_CHECKSUM: usize = ethernet::HEADER_LEN + 10;
const IP_DST: usize = ethernet::HEADER_LEN + 16;
const UDP_SRC_PORT: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
const HEADERS: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;
/// Returned packets the generator decrypts and checks at the start of a round.
const CHECKED: u32 = 64;

/// How big the PoP is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scale {
    pub peers: u32,
    pub prefixes: u32,
    pub flows: u32,
}

impl Scale {
    /// One peer, one prefix, one flow: the baseline.
    pub const SINGLE: Scale = Scale {
        peers: 1,
        prefixes: 1,
        flows: 1,
    };

    /// Flows of the default `forward` run: one peer and prefix, many flows.
    pub const DEFAULT_FLOWS: u32 = 4096;

    /// The scale the options ask for, or `None` with `--plain` (the plain
    /// forwarder). Missing counts follow the given ones: prefixes default
    /// to the peers, flows to the prefixes; with no counts at all, one peer
    /// and prefix and [`Self::DEFAULT_FLOWS`] flows.
    pub fn from_args(args: &Args) -> Result<Option<Scale>, String> {
        if args.plain {
            if args.peers.is_some() || args.prefixes.is_some() || args.flows.is_some() {
                return Err(
                    "--plain benchmarks the plain forwarder: no --peers, --prefixes or --flows"
                        .into(),
                );
            }
            return Ok(None);
        }
        let none_given = args.peers.is_none() && args.prefixes.is_none() && args.flows.is_none();
        let peers = args.peers.unwrap_or(1);
        let prefixes = args.prefixes.unwrap_or(peers);
        let flows = args.flows.unwrap_or(if none_given {
            Self::DEFAULT_FLOWS
        } else {
            prefixes
        });
        if peers > MAX_PEERS || prefixes > MAX_PREFIXES || flows > MAX_FLOWS {
            return Err(format!(
                "forward supports at most {MAX_PEERS} peers, {MAX_PREFIXES} prefixes \
                 and {MAX_FLOWS} flows"
            ));
        }
        if prefixes < peers {
            return Err(format!(
                "--prefixes {prefixes} is below --peers {peers}: every peer needs a prefix"
            ));
        }
        if flows < prefixes {
            return Err(format!(
                "--flows {flows} is below --prefixes {prefixes}: the flows must cover every prefix"
            ));
        }
        Ok(Some(Scale {
            peers,
            prefixes,
            flows,
        }))
    }
}

/// One flow as the generator writes it: inner destination, UDP source
/// port, and the IPv4 header checksum that goes with the destination.
#[derive(Debug, Clone, Copy)]
struct Flow {
    dst: [u8; 4],
    port: [u8; 2],
    checksum: [u8; 2],
}

/// What the scaled data path holds, from `WgDataPath::memory_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub peer_bytes: usize,
    pub route_bytes: usize,
    /// Untimed seconds to build the data path (routes and keypairs).
    pub setup_seconds: f64,
    /// The DPI flow table, with `--dpi` (0 without).
    pub flow_bytes: usize,
}

/// One configuration of the pipeline, built once per run.
pub struct PopBench {
    scale: Scale,
    /// Run the DPI policy (a flow table of `scale.flows` entries and the
    /// engine) in the hook, as a node with `[dpi]` does.
    dpi: bool,
    lan_port_mac: Address,
    wan_port_mac: Address,
    /// A LAN host's `--size`-byte frame (UDP checksum 0); each flow rewrites
    /// its destination, IP checksum and source port.
    template: Vec<u8>,
    flows: Vec<Flow>,
}

fn endpoint(peer: u32) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(ENDPOINT_BASE + peer + 1), LISTEN_PORT)
}

fn prefix(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(PREFIX_BASE + (i << 8))
}

/// Flow `j`'s inner destination and UDP source port (see the module
/// documentation).
fn flow(scale: Scale, j: u32) -> (Ipv4Addr, u16) {
    let i = j % scale.prefixes;
    let k = j / scale.prefixes;
    let dst = Ipv4Addr::from(u32::from(prefix(i)) + 1 + k % 254);
    let port = 1024 + ((k / 254 + i) % 64512) as u16;
    (dst, port)
}

/// The key we send to `peer` with (the peer receives with it).
fn our_send_key(peer: u32) -> [u8; 32] {
    let mut key = [1u8; 32];
    key[..4].copy_from_slice(&peer.to_le_bytes());
    key
}

/// The key `peer` sends to us with.
fn peer_send_key(peer: u32) -> [u8; 32] {
    let mut key = [2u8; 32];
    key[..4].copy_from_slice(&peer.to_le_bytes());
    key
}

/// A deterministic generator for the shuffle (splitmix64).
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl PopBench {
    pub fn new(bed: &RingBed, size: u16, scale: Scale, dpi: bool) -> Result<PopBench, String> {
        let lan_port_mac = port_mac(bed, LAN)?;
        let wan_port_mac = port_mac(bed, WAN)?;
        let mut template = synth::udp_frame(
            LAN_HOST_MAC,
            lan_port_mac,
            IpAddr::V4(LAN_HOST),
            IpAddr::V4(prefix(0)),
            64,
            usize::from(size),
        );
        // No UDP checksum over IPv4, so a new port needs no new checksum.
        template[UDP_SRC_PORT + 6..UDP_SRC_PORT + 8].copy_from_slice(&[0, 0]);
        let mut header = [0u8; ipv4::HEADER_LEN];
        header.copy_from_slice(&template[ethernet::HEADER_LEN..][..ipv4::HEADER_LEN]);
        let mut flows: Vec<Flow> = (0..scale.flows)
            .map(|j| {
                let (dst, port) = flow(scale, j);
                let mut ip = ipv4::Packet::new_unchecked(&mut header[..]);
                ip.set_dst_addr(dst);
                ip.fill_checksum();
                Flow {
                    dst: dst.octets(),
                    port: port.to_be_bytes(),
                    checksum: ip.checksum().to_be_bytes(),
                }
            })
            .collect();
        // Fisher–Yates: consecutive packets go to unrelated prefixes.
        let mut state = 0x5eed_u64;
        for n in (1..flows.len()).rev() {
            let m = (next_random(&mut state) % (n as u64 + 1)) as usize;
            flows.swap(n, m);
        }
        Ok(PopBench {
            scale,
            dpi,
            lan_port_mac,
            wan_port_mac,
            template,
            flows,
        })
    }

    /// One round in the worker loop; also returns what the data path held.
    pub fn ring(
        &self,
        args: &Args,
        bed: &RingBed,
        pool: &Mempool,
        tsc_hz: u64,
        name: &'static str,
    ) -> Result<(Measurement, Memory), String> {
        let activity: Vec<PeerActivity> = (0..self.scale.peers)
            .map(|_| PeerActivity::default())
            .collect();
        let commands = ArrayQueue::new(self.scale.peers as usize);
        let (datapath, mut memory) = self.datapath(&activity, &commands, tsc_hz)?;
        let mut feed = PopFeed {
            bench: self,
            next: 0,
            checked: 0,
        };
        let m = if self.dpi {
            let policy = self.policy(tsc_hz)?;
            memory.flow_bytes = policy.inspector().map_or(0, |i| i.flows.memory_bytes());
            ringrun::run(
                args,
                bed,
                pool,
                name,
                datapath.with_policy(policy),
                &mut feed,
            )?
        } else {
            ringrun::run(args, bed, pool, name, datapath, &mut feed)?
        };
        Ok((m, memory))
    }

    /// The policy a node with `[dpi]` runs: its own engine and a flow table
    /// sized for every flow of the run.
    fn policy(&self, tsc_hz: u64) -> Result<AppPolicy, String> {
        let engine = DpiEngine::new(DpiConfig {
            ticks_per_sec: tsc_hz,
            ..DpiConfig::default()
        })
        .map_err(|e| e.to_string())?;
        let inspector = policy::inspector(engine, self.scale.flows as usize, tsc_hz, 300, 60)?;
        Ok(AppPolicy::new(Some(inspector), ClassMap::default()))
    }

    /// The same processing on one core with hot packet data: 32 heap
    /// buffers rewritten (untimed) with the next 32 flows before each batch,
    /// only `poll` and `process` timed, as `encap_single_core` does.
    pub fn single_core(
        &self,
        args: &Args,
        tsc_hz: u64,
        name: &'static str,
    ) -> Result<Measurement, String> {
        let m = inproc::on_core(args.worker_core, || {
            let activity: Vec<PeerActivity> = (0..self.scale.peers)
                .map(|_| PeerActivity::default())
                .collect();
            let commands = ArrayQueue::new(self.scale.peers as usize);
            let (dp, _) = self.datapath(&activity, &commands, tsc_hz)?;
            if self.dpi {
                let policy = self.policy(tsc_hz)?;
                self.time_batches(dp.with_policy(policy), args, tsc_hz, name)
            } else {
                self.time_batches(dp, args, tsc_hz, name)
            }
        })?;
        eprintln!(
            "patronus-bench: {name}: {:.1} cycles/packet",
            m.cycles_per_packet
        );
        Ok(m)
    }

    /// Times batches of 32 heap buffers through `dp` (see `single_core`).
    fn time_batches<P: Processor>(
        &self,
        mut dp: P,
        args: &Args,
        tsc_hz: u64,
        name: &'static str,
    ) -> Result<Measurement, String> {
        const BATCH: usize = 32;
        const HEADROOM: usize = 128;
        let (size, seconds) = (args.size, args.seconds);
        let frame_len = self.template.len();
        let mut batch: Vec<HeapBuf> = (0..BATCH)
            .map(|_| HeapBuf::from_slice(&self.template, HEADROOM, 64))
            .collect();
        let mut next = 0usize;
        let warmup = std::time::Duration::from_millis(300);
        let start = Instant::now();
        let deadline = start + warmup + std::time::Duration::from_secs_f64(seconds);
        let mut measured_from = None;
        let (mut packets, mut cycles) = (0u64, 0u64);
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if measured_from.is_none() && now >= start + warmup {
                measured_from = Some(now);
            }
            for b in &mut batch {
                rewind(b, HEADROOM, frame_len)?;
                self.write_headers(b.data_mut(), next);
                next = if next + 1 == self.flows.len() {
                    0
                } else {
                    next + 1
                };
            }
            let t0 = tsc();
            dp.poll(t0);
            for b in &mut batch {
                let verdict = dp.process(b, LAN, t0);
                if verdict != Verdict::Forward(WAN) {
                    return Err(format!("{name}: unexpected verdict {verdict:?}"));
                }
            }
            let t1 = tsc();
            if measured_from.is_some() {
                packets += BATCH as u64;
                cycles += t1 - t0;
            }
        }
        let elapsed = measured_from.map_or(0.0, |t| t.elapsed().as_secs_f64());
        Ok(Measurement::from_cycles(
            name, size, packets, cycles, elapsed, tsc_hz,
        ))
    }

    /// Writes flow `index`'s headers over the template's in `frame`.
    #[inline]
    fn write_headers(&self, frame: &mut [u8], index: usize) {
        let flow = &self.flows[index];
        if let Some(head) = frame.get_mut(..HEADERS) {
            head.copy_from_slice(&self.template[..HEADERS]);
            head[IP_CHECKSUM..IP_CHECKSUM + 2].copy_from_slice(&flow.checksum);
            head[IP_DST..IP_DST + 4].copy_from_slice(&flow.dst);
            head[UDP_SRC_PORT..UDP_SRC_PORT + 2].copy_from_slice(&flow.port);
        }
    }

    /// A data path owning every peer (one worker), each with one path to its
    /// endpoint, the prefixes round-robin over the peers, and a fresh
    /// keypair per peer pushed through the command queue and applied by the
    /// data path's own `poll` before the round starts (so no packet finds a
    /// peer without a session).
    fn datapath<'a>(
        &self,
        activity: &'a [PeerActivity],
        commands: &'a ArrayQueue<WgCommand>,
        tsc_hz: u64,
    ) -> Result<(WgDataPath<'a>, Memory), String> {
        let setup = Instant::now();
        let config = DataPathConfig {
            lan_port: LAN,
            wan_port: WAN,
            lan_src_mac: self.lan_port_mac,
            lan_dst_mac: LAN_HOST_MAC,
            wan_src_mac: self.wan_port_mac,
            wan_dst_mac: GATEWAY_MAC,
            local_ip: LOCAL_IP,
            listen_port: LISTEN_PORT,
            index_mask: INDEX_MASK,
            tsc_hz,
            worker: 0,
            workers: 1,
            // Any --size fits: the benchmark measures cost per packet, not
            // path MTU discovery (the underlay is assumed to carry it).
            tunnel_mtu: 1500,
            lan_ipv4: None,
            lan_ipv6: None,
        };
        let mut routes = AllowedIps::new();
        for i in 0..self.scale.prefixes {
            routes
                .insert(IpAddr::V4(prefix(i)), 24, i % self.scale.peers)
                .map_err(|e| format!("{e:?}"))?;
        }
        if routes.len() != self.scale.prefixes as usize {
            return Err("the prefixes overlap".into());
        }
        let endpoints: Vec<Option<SocketAddrV4>> =
            (0..self.scale.peers).map(|p| Some(endpoint(p))).collect();
        let now = tsc();
        for peer in 0..self.scale.peers {
            let keypair = Keypair {
                send: SendSession::new(&our_send_key(peer), PEER_INDEX_BASE + peer, now),
                recv: RecvSession::new(&peer_send_key(peer), local_index(INDEX_MASK, peer, 1), now),
                initiator: true,
            };
            commands
                .push(WgCommand::InstallKeypair {
                    peer,
                    keypair: Box::new(keypair),
                })
                .map_err(|_| "the command queue is full".to_string())?;
        }
        let mut dp = WgDataPath::new(
            config,
            routes,
            &endpoints,
            activity,
            commands,
            Forwarder::new(),
        );
        while !commands.is_empty() {
            dp.poll(tsc());
        }
        let (peer_bytes, route_bytes) = dp.memory_bytes();
        Ok((
            dp,
            Memory {
                peer_bytes,
                route_bytes,
                setup_seconds: setup.elapsed().as_secs_f64(),
                flow_bytes: 0,
            },
        ))
    }

    /// `sent` must be a transport message to the endpoint of the peer that
    /// owns the inner destination's prefix, which that peer can decrypt.
    fn check(&self, sent: &[u8]) -> Result<(), String> {
        let outer_len = ethernet::HEADER_LEN + OUTER_IP_UDP_LEN;
        let ip = ipv4::Packet::new_checked(sent.get(ethernet::HEADER_LEN..).unwrap_or_default())
            .map_err(|e| format!("forward sent no IPv4 packet: {e:?}"))?;
        let message = sent.get(outer_len..).unwrap_or_default();
        let index = transport::receiver_index(message)
            .ok_or("forward sent something other than a transport message")?;
        let peer = index.wrapping_sub(PEER_INDEX_BASE);
        if peer >= self.scale.peers || ip.dst_addr() != *endpoint(peer).ip() {
            return Err(format!(
                "forward sent receiver index {index:#x} to {}",
                ip.dst_addr()
            ));
        }
        let mut message = HeapBuf::from_slice(message, 0, 0);
        let mut peer_recv = RecvSession::new(&our_send_key(peer), index, 0);
        match transport::decapsulate(&mut message, &mut peer_recv) {
            Ok(Decapsulated::Packet) => {}
            other => {
                return Err(format!(
                    "peer {peer} cannot decrypt what forward sent it: {other:?}"
                ))
            }
        }
        let inner = ipv4::Packet::new_checked(message.data())
            .map_err(|e| format!("forward encrypted no IPv4 packet: {e:?}"))?;
        let prefix_index = (u32::from(inner.dst_addr()) - PREFIX_BASE) >> 8;
        if prefix_index % self.scale.peers != peer {
            return Err(format!(
                "forward sent {} (prefix {prefix_index}) to peer {peer}",
                inner.dst_addr()
            ));
        }
        Ok(())
    }
}

/// Empties `b` and gives it `len` bytes after exactly `headroom` bytes,
/// without allocating (the bytes are whatever the buffer held).
fn rewind(b: &mut HeapBuf, headroom: usize, len: usize) -> Result<(), String> {
    let fail = |e: patronus_dataplane::buf::BufError| e.to_string();
    b.trim(b.len()).map_err(fail)?;
    let at = b.headroom();
    if at > headroom {
        b.prepend(at - headroom).map_err(fail)?;
        b.trim(at - headroom).map_err(fail)?;
    } else if at < headroom {
        b.append(headroom - at).map_err(fail)?;
        b.adj(headroom - at).map_err(fail)?;
    }
    b.append(len).map_err(fail)?;
    Ok(())
}

/// The generator: every offer is the next flow's frame (fresh mbufs get the
/// whole template, recycled ones the 42 header bytes). The first returned
/// messages are decrypted and checked against the routing plan.
struct PopFeed<'a> {
    bench: &'a PopBench,
    next: usize,
    checked: u32,
}

impl Feed for PopFeed<'_> {
    fn target<'b>(&self, bed: &'b RingBed) -> &'b Ring {
        &bed.lan_rx
    }

    #[inline]
    fn refill(&mut self, m: &mut Mbuf, fresh: bool) -> Result<(), String> {
        let bench = self.bench;
        if fresh {
            m.fill_from(&bench.template).map_err(|e| e.to_string())?;
        } else {
            if self.checked < CHECKED {
                bench.check(m.data())?;
                self.checked += 1;
            }
            m.reset();
            m.append(bench.template.len()).map_err(|e| e.to_string())?;
        }
        bench.write_headers(m.data_mut(), self.next);
        self.next += 1;
        if self.next == bench.flows.len() {
            self.next = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_are_distinct_and_cover_every_prefix() {
        let scale = Scale {
            peers: 7,
            prefixes: 300,
            flows: 300 * 254 + 1000,
        };
        let mut seen = std::collections::HashSet::new();
        let mut prefixes = std::collections::HashSet::new();
        for j in 0..scale.flows {
            let (dst, port) = flow(scale, j);
            assert!(seen.insert((dst, port)));
            prefixes.insert((u32::from(dst) - PREFIX_BASE) >> 8);
        }
        // Ports vary even among the first flow of each prefix.
        let ports: std::collections::HashSet<u16> =
            (0..scale.prefixes).map(|j| flow(scale, j).1).collect();
        assert_eq!(ports.len(), 300);
        assert_eq!(prefixes.len(), 300);
    }

    #[test]
    fn the_address_plan_keeps_endpoints_prefixes_and_the_lan_apart() {
        let last_endpoint = u32::from(*endpoint(MAX_PEERS - 1).ip());
        assert!(last_endpoint < PREFIX_BASE);
        assert!(u32::from(LOCAL_IP) < ENDPOINT_BASE && u32::from(LAN_HOST) < ENDPOINT_BASE);
        let last_prefix = u64::from(PREFIX_BASE) + (u64::from(MAX_PREFIXES) << 8);
        assert!(last_prefix < u64::from(u32::from_be_bytes([224, 0, 0, 0])));
    }

    #[test]
    fn rewind_restores_headroom_and_length() {
        let mut b = HeapBuf::from_slice(&[7u8; 64], 128, 64);
        b.adj(20).unwrap();
        rewind(&mut b, 128, 64).unwrap();
        assert_eq!((b.headroom(), b.len()), (128, 64));
        b.prepend(60).unwrap();
        rewind(&mut b, 128, 64).unwrap();
        assert_eq!((b.headroom(), b.len()), (128, 64));
    }
}
