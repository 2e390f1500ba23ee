//! The WireGuard data path of one worker: LAN packets to a peer's allowed
//! IPs are encrypted in place and sent to the peer's endpoint; transport
//! messages from the WAN are authenticated, decrypted in place, checked
//! against the sending peer's allowed IPs (cryptokey routing, whitepaper
//! section 2) and delivered to the LAN. Handshake and cookie messages, and
//! packets for peers without a session, are punted to the control thread.
//!
//! Ownership: every peer is owned by one worker (`peer % workers`), which
//! alone holds its keypairs, send counters and replay windows, as plain
//! fields. A worker that receives a packet for a peer it does not own hands
//! it to the owner through the owner's lock-free inject ring (VPP's
//! hand-off), so counters and windows need no atomics and no locks. The
//! control thread publishes keypairs through the owner's command ring and
//! reads per-peer activity (written by the owner only, relaxed atomics) to
//! drive the whitepaper's timers. See docs/wireguard.md.

use crate::buf::{BufError, PacketBuf};
use crate::forward::Forwarder;
use crate::icmp_error;
use crate::punt::PuntReason;
use crate::qos::{DscpMap, QosClass};
use crate::stats::DropReason;
use crate::wg::allowed_ips::AllowedIps;
use crate::wg::lpm4::Lpm4;
use crate::wg::session::{chacha_key, RecvSession, SendSession};
use crate::wg::transport::{self, DecapError, Decapsulated, EncapError};
use crate::wire::ethernet::{self, Address, EtherType};
use crate::wire::{ipv4, ipv6, udp, IpProtocol};
use crate::worker::{Processor, Verdict};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use crossbeam_queue::ArrayQueue;
use ring::aead::LessSafeKey;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use crate::wg::timers::{REJECT_AFTER_TIME, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME};

/// Outer IPv4 + UDP header bytes in front of a transport message.
pub const OUTER_IP_UDP_LEN: usize = ipv4::HEADER_LEN + udp::HEADER_LEN;

/// Local indexes carry the peer id in their top 24 bits (after removing a
/// per-boot random mask), so a transport message finds its peer with one
/// array access (whitepaper 5.4.6: receiver index lookup).
pub fn local_index(mask: u32, peer: u32, generation: u8) -> u32 {
    ((peer << 8) | u32::from(generation)) ^ mask
}

/// The peer id a local index was issued for.
#[inline(always)]
pub fn peer_of_index(mask: u32, index: u32) -> u32 {
    (index ^ mask) >> 8
}

/// Both halves of a keypair, as the control thread publishes them.
pub struct Keypair {
    pub send: SendSession,
    pub recv: RecvSession,
    /// Whether we initiated the handshake (only the initiator rekeys on time).
    pub initiator: bool,
}

/// What the control thread tells a worker.
pub enum WgCommand {
    /// A new keypair. The initiator's is used at once; the responder's waits
    /// as "next" until the peer sends on it (whitepaper 5.4.6 key confirmation).
    InstallKeypair { peer: u32, keypair: Box<Keypair> },
    /// Forget every keypair of the peer (REJECT_AFTER_TIME × 3, or removal).
    ClearKeys { peer: u32 },
    /// Where to send a single-path peer's packets (roaming, or the
    /// endpoint learned from its handshake).
    SetEndpoint { peer: u32, endpoint: SocketAddrV4 },
    /// A path failed or recovered (BFD, SLA): flows on a failed path move
    /// to the others.
    SetPathUp { peer: u32, path: u8, up: bool },
}

/// What a worker reports about one peer: written by the owning worker only,
/// read by the control thread for the timers, roaming and statistics.
///
/// One cache line per peer for what every sent packet writes: `repr(C)`,
/// 64-byte aligned, the send-side fields first (with paths 0 to 4's byte
/// counters), so a send at PoP scale dirties one line of it, not two or
/// three straddled ones.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct PeerActivity {
    /// TSC of the last authenticated packet sent (data or keepalive).
    pub last_sent: AtomicU64,
    /// TSC of the last data (non-keepalive) packet sent.
    pub last_data_sent: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Bytes sent over each of the peer's paths (by path index).
    pub path_tx_bytes: [AtomicU64; MAX_PATHS],
    /// TSC of the last authenticated packet received (data or keepalive).
    pub last_received: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// The latest authenticated source address, packed (ip << 16 | port); 0 = none.
    pub endpoint: AtomicU64,
    /// Local index of the latest responder keypair confirmed by the
    /// initiator's first packet on it (whitepaper 5.4.6).
    pub confirmed_index: AtomicU32,
    /// Set when a send found the keypair due for rekeying.
    pub rekey_wanted: AtomicBool,
}

pub fn pack_endpoint(addr: SocketAddrV4) -> u64 {
    (u64::from(u32::from(*addr.ip())) << 16) | u64::from(addr.port())
}

pub fn unpack_endpoint(packed: u64) -> Option<SocketAddrV4> {
    (packed != 0).then(|| SocketAddrV4::new(Ipv4Addr::from((packed >> 16) as u32), packed as u16))
}

#[inline(always)]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

/// One way to reach a peer: out of one of our WAN ports, from our address
/// there, to one of the peer's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    pub port: u8,
    /// Our WAN port's MAC, the outer source.
    pub src_mac: Address,
    /// Our address on that port, the outer source address.
    pub local_ip: Ipv4Addr,
    pub endpoint: SocketAddrV4,
}

/// Most paths one peer may have.
pub const MAX_PATHS: usize = 8;

/// Our end of a path: the WAN port, its MAC and our address there. The data
/// path keeps the few distinct ones in a table, so a peer's path is 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LocalEnd {
    port: u8,
    src_mac: Address,
    local_ip: Ipv4Addr,
}

/// Most distinct local ends (a `u8` index).
const MAX_LOCAL_ENDS: usize = 256;

/// One path of a peer, compact: the peer's endpoint, an index into the local
/// ends, and whether the path is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PathSlot {
    endpoint_ip: Ipv4Addr,
    endpoint_port: u16,
    local: u8,
    up: bool,
}

impl PathSlot {
    const NONE: PathSlot = PathSlot {
        endpoint_ip: Ipv4Addr::UNSPECIFIED,
        endpoint_port: 0,
        local: 0,
        up: false,
    };

    fn new(local: u8, endpoint: SocketAddrV4) -> PathSlot {
        PathSlot {
            endpoint_ip: *endpoint.ip(),
            endpoint_port: endpoint.port(),
            local,
            up: true,
        }
    }

    #[inline(always)]
    fn endpoint(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.endpoint_ip, self.endpoint_port)
    }
}

/// `SendHot::flags`: the current keypair is installed (the key is real).
const KEYED: u8 = 1;
/// `SendHot::flags`: we initiated the current keypair's handshake.
const INITIATOR: u8 = 2;

/// What sending to a peer reads and writes, dense in one `Vec` indexed by
/// peer: the current keypair's sending half and the peer's first path.
///
/// Laid out for the cache (`repr(C)`, 64-byte aligned, 576 bytes): ring's
/// ChaCha20-Poly1305 `LessSafeKey` is 544 bytes, room for an AES-GCM key
/// schedule, but a ChaCha key uses only its first 40 bytes and its
/// algorithm reference at its end (ring 0.17). The counters go before the
/// key, so the first line holds them and the key bytes; the index, first
/// path and flags go after it, in the last line with the algorithm
/// reference. A send touches those two lines and no others.
#[repr(C, align(64))]
struct SendHot {
    /// The counter the next message carries.
    next_counter: u64,
    /// When the current keypair was derived (TSC).
    created_at: u64,
    /// The current keypair's sending key; a zero key when not `KEYED`.
    key: LessSafeKey,
    /// The peer's index for the current keypair.
    remote_index: u32,
    /// Path 0 (the one roaming and handshakes use); the others are cold.
    path0: PathSlot,
    /// `KEYED`, `INITIATOR`.
    flags: u8,
    /// How many paths the peer has (0..=MAX_PATHS).
    paths: u8,
}

impl SendHot {
    fn new() -> SendHot {
        SendHot {
            next_counter: 0,
            created_at: 0,
            key: chacha_key(&[0; 32]),
            remote_index: 0,
            path0: PathSlot::NONE,
            flags: 0,
            paths: 0,
        }
    }

    /// Makes `send` the current sending half.
    fn install(&mut self, send: SendSession, initiator: bool) {
        let SendSession {
            next_counter,
            created_at,
            key,
            remote_index,
        } = send;
        self.next_counter = next_counter;
        self.created_at = created_at;
        self.key = key;
        self.remote_index = remote_index;
        self.flags = KEYED | if initiator { INITIATOR } else { 0 };
    }

    /// Forgets the sending key.
    fn clear(&mut self) {
        self.key = chacha_key(&[0; 32]);
        self.next_counter = 0;
        self.created_at = 0;
        self.remote_index = 0;
        self.flags = 0;
    }

    /// Path `i`, if the peer has it; paths past the first are in `cold`.
    #[inline(always)]
    fn path(&self, cold: &PeerCold, i: usize) -> Option<PathSlot> {
        if i >= usize::from(self.paths) {
            None
        } else if i == 0 {
            Some(self.path0)
        } else {
            cold.more_paths.get(i - 1).copied()
        }
    }

    /// The path for a flow: among the paths that are up, the one with the
    /// highest rendezvous hash (HRW) of the flow and the path. A flow keeps
    /// its path while that path is up; when it goes down, only its flows
    /// move, spread over the others.
    #[inline]
    fn path_for(&self, cold: &PeerCold, flow: u64) -> Option<(usize, PathSlot)> {
        if self.paths == 1 {
            return self.path0.up.then_some((0, self.path0));
        }
        self.path_for_where(cold, flow, |_| true)
    }

    /// [`SendHot::path_for`] among the paths `keep` accepts.
    #[inline]
    fn path_for_where(
        &self,
        cold: &PeerCold,
        flow: u64,
        keep: impl Fn(&PathSlot) -> bool,
    ) -> Option<(usize, PathSlot)> {
        (0..usize::from(self.paths))
            .filter_map(|i| self.path(cold, i).map(|p| (i, p)))
            .filter(|(_, p)| p.up && keep(p))
            .max_by_key(|(i, _)| mix(flow ^ (*i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
    }
}

/// A peer's state that sending does not touch: the receiving halves of its
/// keypairs (with their replay windows), the keypair awaiting confirmation,
/// and paths past the first. Receiving reads it; sending never does.
#[derive(Default)]
struct PeerCold {
    /// The receiving half of the current keypair (its sending half is in
    /// the peer's `SendHot`).
    current: Option<RecvSession>,
    /// The responder's keypair awaiting its first packet.
    next: Option<Box<Keypair>>,
    previous: Option<RecvSession>,
    /// Paths 1.. of a multi-path peer.
    more_paths: [PathSlot; MAX_PATHS - 1],
}

impl Default for PathSlot {
    fn default() -> Self {
        PathSlot::NONE
    }
}

/// A 64-bit finaliser (splitmix64): spreads flow hashes over paths (here
/// and in the SLA's weighted sets, [`crate::steer::hrw`]).
#[inline(always)]
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A hash of the inner packet's flow (addresses, protocol, ports), the same
/// for every packet of the flow.
#[inline]
fn flow_hash(ip: &[u8]) -> u64 {
    let (addrs, proto, l4): (&[u8], u8, usize) = match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => {
            let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0;
            let l4 = if fragment {
                usize::MAX
            } else {
                usize::from(ip[0] & 0x0f) * 4
            };
            (&ip[12..20], ip[9], l4)
        }
        Some(6) if ip.len() >= 40 => (&ip[8..40], ip[6], 40),
        _ => return 0,
    };
    // What identifies the flow above IP: ports for TCP, UDP and SCTP, the
    // echo identifier for ICMP and ICMPv6 (never checksums or sequence numbers).
    let span = match proto {
        6 | 17 | 132 => l4..l4.saturating_add(4),
        1 | 58 => l4.saturating_add(4)..l4.saturating_add(6),
        _ => 0..0,
    };
    let transport = ip.get(span).unwrap_or(&[]);
    let mut h = u64::from(proto);
    for chunk in addrs.chunks(8).chain(std::iter::once(transport)) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(word));
    }
    h
}

/// Fixed facts about the node the data path needs.
#[derive(Debug, Clone)]
pub struct DataPathConfig {
    pub lan_port: u8,
    pub wan_port: u8,
    /// Our LAN port's MAC and the LAN next hop's.
    pub lan_src_mac: Address,
    pub lan_dst_mac: Address,
    /// Our WAN port's MAC and the WAN next hop's (the underlay gateway).
    pub wan_src_mac: Address,
    pub wan_dst_mac: Address,
    /// Our address on the WAN, and the UDP port we listen on.
    pub local_ip: Ipv4Addr,
    pub listen_port: u16,
    /// The per-boot mask of local indexes.
    pub index_mask: u32,
    pub tsc_hz: u64,
    /// This worker's index and how many workers share the peers.
    pub worker: u8,
    pub workers: u8,
    /// The largest inner packet the tunnel carries; larger ones are answered
    /// with "fragmentation needed" / "packet too big" (path MTU discovery).
    pub tunnel_mtu: u16,
    /// Our addresses on the LAN, the source of those ICMP errors.
    pub lan_ipv4: Option<Ipv4Addr>,
    pub lan_ipv6: Option<std::net::Ipv6Addr>,
}

impl DataPathConfig {
    /// The worker that owns `peer`'s keys, counters and replay windows.
    #[inline(always)]
    pub fn owner(&self, peer: u32) -> u8 {
        (peer % u32::from(self.workers.max(1))) as u8
    }
}

/// `aux` of a hand-off of a WAN frame (anything else is a peer id to
/// encrypt for).
pub const HANDOFF_FROM_WAN: u32 = u32::MAX;

/// A worker's WireGuard processor. Traffic that is not for a peer follows
/// `fallback` (plain forwarding).
/// What the policy decides for a packet on its way into a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyDecision {
    /// Send it on this path (an index into the peer's paths) while that
    /// path is up; None spreads flows over the paths that are up.
    pub path: Option<u8>,
    /// Otherwise prefer the peer's paths out of this WAN port while one
    /// is up (application-aware routing); None: any path.
    pub port: Option<u8>,
    /// Its QoS class, a [`crate::qos::QosClass`] number: the scheduler of
    /// a shaped WAN port queues it there, and the outer DSCP follows it.
    pub class: u8,
}

impl Default for PolicyDecision {
    fn default() -> Self {
        PolicyDecision {
            path: None,
            port: None,
            class: crate::qos::QosClass::DEFAULT as u8,
        }
    }
}

/// The policy hook between routing and encryption: application-aware path
/// choice and QoS classification plug in here (the DPI, QoS and SLA work).
/// Called once per packet on the worker: it must not block or allocate.
pub trait Policy {
    /// `inner` is the IP packet, `peer` the route's peer, `flow` the
    /// packet's flow hash, `now` the burst's TSC.
    fn decide(&mut self, inner: &[u8], peer: u32, flow: u64, now: u64) -> PolicyDecision;

    /// A packet that came out of `peer`'s tunnel towards the LAN (after
    /// the cryptokey check): the other direction of the flows `decide`
    /// sees, which inspection needs.
    #[inline(always)]
    fn observe(&mut self, _inner: &[u8], _peer: u32, _now: u64) {}

    /// Once per loop iteration, before rx: housekeeping such as aging
    /// flows.
    #[inline(always)]
    fn poll(&mut self, _now: u64) {}
}

/// No policy: every flow is hashed onto a path, in the default class.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPolicy;

impl Policy for DefaultPolicy {
    #[inline(always)]
    fn decide(&mut self, _inner: &[u8], _peer: u32, _flow: u64, _now: u64) -> PolicyDecision {
        PolicyDecision::default()
    }
}

pub struct WgDataPath<'a, P: Policy = DefaultPolicy> {
    config: DataPathConfig,
    policy: P,
    /// Per peer, what sending reads and writes (see [`SendHot`]).
    send: Vec<SendHot>,
    /// Per peer, the rest (see [`PeerCold`]).
    cold: Vec<PeerCold>,
    /// Our ends of paths; `PathSlot::local` indexes it, entry 0 is the
    /// configured WAN port and address.
    local_ends: Vec<LocalEnd>,
    routes: AllowedIps<u32>,
    /// The IPv4 part of `routes`, compiled for at most three memory
    /// accesses per lookup.
    routes4: Lpm4,
    activity: &'a [PeerActivity],
    commands: &'a ArrayQueue<WgCommand>,
    fallback: Forwarder,
    drop_unknown: bool,
    /// Every address of ours that WireGuard listens on.
    local_ips: Vec<Ipv4Addr>,
    rekey_after_ticks: u64,
    reject_after_ticks: u64,
    /// The outer DSCP per QoS class, when QoS marks tunnel packets.
    dscp: Option<DscpMap>,
    /// Bit `p` set: WAN port `p` has a QoS scheduler, so tunnel packets
    /// for it leave as [`Verdict::Queue`] with their class.
    shaped_ports: u64,
}

impl<'a> WgDataPath<'a, DefaultPolicy> {
    /// `routes` maps allowed IPs to peer ids `0..activity.len()`.
    pub fn new(
        config: DataPathConfig,
        routes: AllowedIps<u32>,
        endpoints: &[Option<SocketAddrV4>],
        activity: &'a [PeerActivity],
        commands: &'a ArrayQueue<WgCommand>,
        fallback: Forwarder,
    ) -> Self {
        let send = (0..activity.len())
            .map(|i| {
                let mut hot = SendHot::new();
                if let Some(endpoint) = endpoints.get(i).copied().flatten() {
                    hot.path0 = PathSlot::new(0, endpoint);
                    hot.paths = 1;
                }
                hot
            })
            .collect();
        let cold = (0..activity.len()).map(|_| PeerCold::default()).collect();
        let local_ends = vec![LocalEnd {
            port: config.wan_port,
            src_mac: config.wan_src_mac,
            local_ip: config.local_ip,
        }];
        let hz = config.tsc_hz.max(1);
        let local_ip = config.local_ip;
        let routes4 = Lpm4::build(&routes);
        WgDataPath {
            policy: DefaultPolicy,
            rekey_after_ticks: REKEY_AFTER_TIME.as_secs() * hz,
            reject_after_ticks: REJECT_AFTER_TIME.as_secs() * hz,
            config,
            send,
            cold,
            local_ends,
            routes,
            activity,
            commands,
            local_ips: vec![local_ip],
            routes4,
            fallback,
            drop_unknown: false,
            dscp: None,
            shaped_ports: 0,
        }
    }

    /// Puts `policy` between routing and encryption.
    pub fn with_policy<Q: Policy>(self, policy: Q) -> WgDataPath<'a, Q> {
        WgDataPath {
            config: self.config,
            policy,
            send: self.send,
            cold: self.cold,
            local_ends: self.local_ends,
            routes: self.routes,
            routes4: self.routes4,
            activity: self.activity,
            commands: self.commands,
            fallback: self.fallback,
            drop_unknown: self.drop_unknown,
            local_ips: self.local_ips,
            rekey_after_ticks: self.rekey_after_ticks,
            reject_after_ticks: self.reject_after_ticks,
            dscp: self.dscp,
            shaped_ports: self.shaped_ports,
        }
    }
}

impl<'a, P: Policy> WgDataPath<'a, P> {
    /// QoS: tunnel packets out of the WAN ports in `shaped` (port indexes
    /// below 64) go to those ports' schedulers with their class, and every
    /// tunnel packet's outer DSCP is set from its class by `dscp`.
    pub fn set_qos(&mut self, dscp: Option<DscpMap>, shaped: &[u8]) {
        self.dscp = dscp;
        self.shaped_ports = shaped
            .iter()
            .filter(|&&p| p < 64)
            .fold(0, |m, &p| m | 1 << p);
    }

    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The peer whose allowed IPs hold `addr` (cryptokey routing).
    #[inline]
    fn route(&self, addr: IpAddr) -> Option<u32> {
        match addr {
            IpAddr::V4(a) => self.routes4.lookup(a),
            IpAddr::V6(_) => self.routes.lookup(addr).copied(),
        }
    }

    /// Heap and inline bytes this worker's data path holds: the routes, and
    /// per peer its hot send state, its cold state (receive sessions,
    /// further paths, a keypair awaiting confirmation) and its activity
    /// (what `patronus-bench` reports as memory per peer and per prefix).
    pub fn memory_bytes(&self) -> (usize, usize) {
        let pending: usize =
            self.cold.iter().filter(|c| c.next.is_some()).count() * core::mem::size_of::<Keypair>();
        let peers = self.send.capacity() * core::mem::size_of::<SendHot>()
            + self.cold.capacity() * core::mem::size_of::<PeerCold>()
            + pending
            + core::mem::size_of_val(self.activity);
        (peers, self.routes.heap_bytes() + self.routes4.heap_bytes())
    }

    /// The index of a local end, added if new.
    fn local_end(&mut self, end: LocalEnd) -> Result<u8, String> {
        let i = match self.local_ends.iter().position(|e| *e == end) {
            Some(i) => i,
            None if self.local_ends.len() < MAX_LOCAL_ENDS => {
                self.local_ends.push(end);
                self.local_ends.len() - 1
            }
            None => {
                return Err(format!(
                    "at most {MAX_LOCAL_ENDS} distinct (port, MAC, address) path sources"
                ))
            }
        };
        Ok(i as u8)
    }

    /// Replaces `peer`'s paths (set-up time; the first is the one roaming
    /// and handshakes use). At most [`MAX_PATHS`].
    pub fn set_paths(&mut self, peer: u32, paths: &[Path]) -> Result<(), String> {
        if paths.len() > MAX_PATHS {
            return Err(format!(
                "a peer has at most {MAX_PATHS} paths, got {}",
                paths.len()
            ));
        }
        if peer as usize >= self.send.len() {
            return Err(format!("no peer {peer}"));
        }
        let mut slots = [PathSlot::NONE; MAX_PATHS];
        for (slot, path) in slots.iter_mut().zip(paths) {
            let local = self.local_end(LocalEnd {
                port: path.port,
                src_mac: path.src_mac,
                local_ip: path.local_ip,
            })?;
            *slot = PathSlot::new(local, path.endpoint);
            if !self.local_ips.contains(&path.local_ip) {
                self.local_ips.push(path.local_ip);
            }
        }
        let hot = &mut self.send[peer as usize];
        hot.path0 = slots[0];
        hot.paths = paths.len() as u8;
        self.cold[peer as usize]
            .more_paths
            .copy_from_slice(&slots[1..]);
        Ok(())
    }

    /// LAN traffic to destinations no peer covers (and not to the node
    /// itself) is dropped and counted as `no_route` instead of following
    /// the plain forwarder to the WAN next hop.
    pub fn drop_unknown_destinations(mut self, drop: bool) -> Self {
        self.drop_unknown = drop;
        self
    }

    fn apply(&mut self, command: WgCommand) {
        match command {
            WgCommand::InstallKeypair { peer, keypair } => {
                let (Some(hot), Some(cold)) = (
                    self.send.get_mut(peer as usize),
                    self.cold.get_mut(peer as usize),
                ) else {
                    return;
                };
                if keypair.initiator {
                    let Keypair {
                        send,
                        recv,
                        initiator,
                    } = *keypair;
                    cold.previous = cold.current.replace(recv);
                    hot.install(send, initiator);
                    cold.next = None;
                } else {
                    cold.next = Some(keypair);
                }
            }
            WgCommand::ClearKeys { peer } => {
                if let (Some(hot), Some(cold)) = (
                    self.send.get_mut(peer as usize),
                    self.cold.get_mut(peer as usize),
                ) {
                    hot.clear();
                    cold.current = None;
                    cold.next = None;
                    cold.previous = None;
                }
            }
            WgCommand::SetEndpoint { peer, endpoint } => {
                if let Some(hot) = self.send.get_mut(peer as usize) {
                    match hot.paths {
                        1 => {
                            hot.path0.endpoint_ip = *endpoint.ip();
                            hot.path0.endpoint_port = endpoint.port();
                        }
                        // Local end 0 is the configured WAN port and address.
                        0 => {
                            hot.path0 = PathSlot::new(0, endpoint);
                            hot.paths = 1;
                        }
                        // Configured paths are fixed.
                        _ => {}
                    }
                }
            }
            WgCommand::SetPathUp { peer, path, up } => {
                let i = usize::from(path);
                if let Some(hot) = self.send.get_mut(peer as usize) {
                    if i >= usize::from(hot.paths) {
                        return;
                    }
                    if i == 0 {
                        hot.path0.up = up;
                    } else {
                        self.cold[peer as usize].more_paths[i - 1].up = up;
                    }
                }
            }
        }
    }

    /// Encrypts the IP packet in `packet` for `peer` and adds the outer
    /// headers. Punts when there is no usable session.
    #[inline]
    fn send_to_peer<B: PacketBuf>(&mut self, packet: &mut B, peer: u32, now: u64) -> Verdict {
        let (rekey_after, reject_after) = (self.rekey_after_ticks, self.reject_after_ticks);
        let flow = flow_hash(packet.data());
        let decision = self.policy.decide(packet.data(), peer, flow, now);
        let (Some(hot), Some(cold)) = (
            self.send.get_mut(peer as usize),
            self.cold.get(peer as usize),
        ) else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        // `cold` is only read for peers with several paths.
        let chosen = decision
            .path
            .and_then(|i| {
                hot.path(cold, usize::from(i))
                    .filter(|s| s.up)
                    .map(|s| (usize::from(i), s))
            })
            .or_else(|| {
                let port = decision.port?;
                let ends = &self.local_ends;
                hot.path_for_where(cold, flow, |s| {
                    ends.get(usize::from(s.local))
                        .is_some_and(|e| e.port == port)
                })
            })
            .or_else(|| hot.path_for(cold, flow));
        let Some((path_index, slot)) = chosen else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let age = now.wrapping_sub(hot.created_at);
        if hot.flags & KEYED == 0 || age >= reject_after {
            return Verdict::Punt(PuntReason::WgNeedsSession { peer });
        }
        let inner_len = packet.len() as u64;
        if let Err(e) = transport::seal(packet, &hot.key, hot.remote_index, &mut hot.next_counter) {
            return match e {
                EncapError::CounterExhausted => Verdict::Punt(PuntReason::WgNeedsSession { peer }),
                EncapError::NoRoom(_) => Verdict::Drop(DropReason::WgEncapFailed),
            };
        }
        let activity = &self.activity[peer as usize];
        if hot.next_counter >= REKEY_AFTER_MESSAGES
            || (hot.flags & INITIATOR != 0 && age >= rekey_after)
        {
            activity.rekey_wanted.store(true, Relaxed);
        }
        activity.last_sent.store(now, Relaxed);
        if inner_len > 0 {
            activity.last_data_sent.store(now, Relaxed);
        }
        bump(&activity.tx_bytes, inner_len);
        if let Some(counter) = activity.path_tx_bytes.get(path_index) {
            bump(counter, inner_len);
        }
        let Some(local) = self.local_ends.get(usize::from(slot.local)) else {
            return Verdict::Drop(DropReason::WgEncapFailed);
        };
        let path = Path {
            port: local.port,
            src_mac: local.src_mac,
            local_ip: local.local_ip,
            endpoint: slot.endpoint(),
        };
        if push_path_headers(
            packet,
            &path,
            self.config.wan_dst_mac,
            self.config.listen_port,
        )
        .is_err()
        {
            return Verdict::Drop(DropReason::WgEncapFailed);
        }
        if let Some(dscp) = &self.dscp {
            let outer = &mut packet.data_mut()[ethernet::HEADER_LEN..];
            let class = QosClass::from_u8(decision.class).unwrap_or(QosClass::DEFAULT);
            // The outer header was just built: it is a valid IPv4 header.
            let _ = dscp.mark(outer, class);
        }
        match self.set_next_hop(packet, path.port, IpAddr::V4(slot.endpoint_ip)) {
            Verdict::Forward(port) if self.shaped_ports & (1 << (port & 63)) != 0 => {
                Verdict::Queue {
                    port,
                    class: decision.class,
                }
            }
            other => other,
        }
    }

    #[inline]
    fn handle_lan<B: PacketBuf>(&mut self, packet: &mut B, now: u64) -> Option<Verdict> {
        let (l2_len, dst) = {
            let frame = ethernet::Frame::new_checked(packet.data_mut()).ok()?;
            let l2_len = frame.header_len();
            let dst = match frame.payload_ethertype() {
                EtherType::Ipv4 => {
                    IpAddr::V4(ipv4::Packet::new_checked(frame.payload()).ok()?.dst_addr())
                }
                EtherType::Ipv6 => {
                    IpAddr::V6(ipv6::Packet::new_checked(frame.payload()).ok()?.dst_addr())
                }
                _ => return None,
            };
            (l2_len, dst)
        };
        let Some(peer) = self.route(dst) else {
            // Not for a peer: the node itself (the fallback punts it), or
            // an unknown destination.
            return (self.drop_unknown && !self.fallback.is_local(dst))
                .then_some(Verdict::Drop(DropReason::NoRoute));
        };
        if packet.len() - l2_len > usize::from(self.config.tunnel_mtu) {
            return Some(self.too_big(packet, l2_len));
        }
        // This node routes the packet into the tunnel: a router hop.
        if !decrement_hop(&mut packet.data_mut()[l2_len..]) {
            return Some(Verdict::Drop(DropReason::TtlExceeded));
        }
        packet.adj(l2_len).ok()?;
        let owner = self.config.owner(peer);
        if owner != self.config.worker {
            return Some(Verdict::HandOff {
                worker: owner,
                aux: peer,
            });
        }
        Some(self.send_to_peer(packet, peer, now))
    }

    /// Answers a packet too big for the tunnel with the ICMP error that
    /// tells its sender the tunnel MTU (RFC 1191, RFC 8201).
    #[cold]
    fn too_big<B: PacketBuf>(&mut self, packet: &mut B, l2_len: usize) -> Verdict {
        let Ok(sender_mac) = ethernet::Frame::new_checked(packet.data()).map(|f| f.src_addr())
        else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if packet.adj(l2_len).is_err() {
            return Verdict::Drop(DropReason::Malformed);
        }
        let to = match icmp_error::packet_too_big(
            packet,
            self.config.tunnel_mtu,
            self.config.lan_ipv4,
            self.config.lan_ipv6,
        ) {
            Ok(to) => to,
            Err(_) => return Verdict::Drop(DropReason::TooBig),
        };
        let Ok(head) = packet.prepend(ethernet::HEADER_LEN) else {
            return Verdict::Drop(DropReason::TooBig);
        };
        let mut frame = ethernet::Frame::new_unchecked(head);
        frame.set_dst_addr(sender_mac);
        frame.set_src_addr(self.config.lan_src_mac);
        frame.set_ethertype(if to.is_ipv4() {
            EtherType::Ipv4
        } else {
            EtherType::Ipv6
        });
        Verdict::Forward(self.config.lan_port)
    }

    #[inline]
    fn handle_wan<B: PacketBuf>(&mut self, packet: &mut B, now: u64) -> Option<Verdict> {
        // Is it UDP to our listen port on our address?
        let (outer_len, src) = {
            let frame = ethernet::Frame::new_checked(packet.data()).ok()?;
            if frame.payload_ethertype() != EtherType::Ipv4 {
                return None;
            }
            let ip = ipv4::Packet::new_checked(frame.payload()).ok()?;
            if !self.local_ips.contains(&ip.dst_addr())
                || ip.next_header() != IpProtocol::Udp
                || ip.is_fragment()
            {
                return None;
            }
            if !ip.verify_checksum() {
                return Some(Verdict::Drop(DropReason::Malformed));
            }
            let datagram = udp::Packet::new_checked(ip.payload()).ok()?;
            if datagram.dst_port() != self.config.listen_port {
                return None;
            }
            let outer_len = frame.header_len() + ip.header_len() + udp::HEADER_LEN;
            // Trim to the UDP length: drop Ethernet padding.
            let end = frame.header_len() + ip.header_len() + usize::from(datagram.len());
            let src = SocketAddrV4::new(ip.src_addr(), datagram.src_port());
            let total = packet.len();
            if end < total && packet.trim(total - end).is_err() {
                return Some(Verdict::Drop(DropReason::Malformed));
            }
            (outer_len, src)
        };
        let message = &packet.data()[outer_len..];
        let Some(index) = transport::receiver_index(message) else {
            return Some(match message.first() {
                Some(1..=3) => Verdict::Punt(PuntReason::WgHandshake),
                _ => Verdict::Drop(DropReason::WgInvalid),
            });
        };
        Some(self.receive_transport(packet, outer_len, index, src, now))
    }

    #[inline]
    fn receive_transport<B: PacketBuf>(
        &mut self,
        packet: &mut B,
        outer_len: usize,
        index: u32,
        src: SocketAddrV4,
        now: u64,
    ) -> Verdict {
        let peer = peer_of_index(self.config.index_mask, index);
        if peer as usize >= self.send.len() {
            return Verdict::Drop(DropReason::WgInvalid);
        }
        let owner = self.config.owner(peer);
        if owner != self.config.worker {
            return Verdict::HandOff {
                worker: owner,
                aux: HANDOFF_FROM_WAN,
            };
        }
        let (hot, cold) = (&mut self.send[peer as usize], &mut self.cold[peer as usize]);
        if packet.adj(outer_len).is_err() {
            return Verdict::Drop(DropReason::Malformed);
        }
        // Which keypair: current, next (unconfirmed) or previous.
        let result = if let Some(r) = cold.current.as_mut().filter(|r| r.local_index == index) {
            (now.wrapping_sub(r.created_at) < self.reject_after_ticks)
                .then(|| transport::decapsulate(packet, r))
        } else if let Some(k) = cold.next.as_mut().filter(|k| k.recv.local_index == index) {
            let r = transport::decapsulate(packet, &mut k.recv);
            if r.is_ok() {
                // Key confirmation: the peer uses the new keypair, so do we.
                let Keypair {
                    send,
                    recv,
                    initiator,
                } = *cold.next.take().expect("matched above");
                cold.previous = cold.current.replace(recv);
                hot.install(send, initiator);
                self.activity[peer as usize]
                    .confirmed_index
                    .store(index, Relaxed);
            }
            Some(r)
        } else if let Some(r) = cold.previous.as_mut().filter(|r| r.local_index == index) {
            (now.wrapping_sub(r.created_at) < self.reject_after_ticks)
                .then(|| transport::decapsulate(packet, r))
        } else {
            None
        };
        let outcome = match result {
            None => return Verdict::Drop(DropReason::WgInvalid),
            Some(Err(DecapError::Replay)) => return Verdict::Drop(DropReason::WgReplay),
            Some(Err(_)) => return Verdict::Drop(DropReason::WgInvalid),
            Some(Ok(outcome)) => outcome,
        };
        let activity = &self.activity[peer as usize];
        activity.last_received.store(now, Relaxed);
        // Roaming (whitepaper 2.1): the newest authenticated source wins,
        // for a peer reached by one path; several configured paths are
        // fixed (each side sends on all of them).
        if hot.paths == 1 && hot.path0.endpoint() != src {
            hot.path0.endpoint_ip = *src.ip();
            hot.path0.endpoint_port = src.port();
            activity.endpoint.store(pack_endpoint(src), Relaxed);
        }
        if outcome == Decapsulated::Keepalive {
            return Verdict::Consumed;
        }
        bump(&activity.rx_bytes, packet.len() as u64);
        // Cryptokey routing: the inner source must be one of the peer's allowed IPs.
        let inner_src = match packet.data()[0] >> 4 {
            4 => ipv4::Packet::new_checked(packet.data())
                .ok()
                .map(|ip| IpAddr::V4(ip.src_addr())),
            6 => ipv6::Packet::new_checked(packet.data())
                .ok()
                .map(|ip| IpAddr::V6(ip.src_addr())),
            _ => None,
        };
        if inner_src.and_then(|a| self.route(a)) != Some(peer) {
            return Verdict::Drop(DropReason::WgCryptokeyMismatch);
        }
        self.policy.observe(packet.data(), peer, now);
        // Out of the tunnel and onto the LAN is a router hop too.
        if !decrement_hop(packet.data_mut()) {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let ethertype = if packet.data()[0] >> 4 == 4 {
            EtherType::Ipv4
        } else {
            EtherType::Ipv6
        };
        let Ok(head) = packet.prepend(ethernet::HEADER_LEN) else {
            return Verdict::Drop(DropReason::WgEncapFailed);
        };
        let mut frame = ethernet::Frame::new_unchecked(head);
        frame.set_dst_addr(self.config.lan_dst_mac);
        frame.set_src_addr(self.config.lan_src_mac);
        frame.set_ethertype(ethertype);
        let Some(inner_dst) = inner_destination(&packet.data()[ethernet::HEADER_LEN..]) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let lan = self.config.lan_port;
        self.set_next_hop(packet, lan, inner_dst)
    }

    /// Writes the destination MAC of the finished frame for `dst` out of
    /// `port`: the neighbour tables' answer when the node resolves next hops,
    /// otherwise the static MAC already in place. An unresolved next hop
    /// sends the frame to the control thread, which resolves and sends it.
    #[inline]
    fn set_next_hop<B: PacketBuf>(&self, packet: &mut B, port: u8, dst: IpAddr) -> Verdict {
        match self.fallback.resolve(port, dst) {
            None => Verdict::Forward(port),
            Some(Ok(mac)) => {
                ethernet::Frame::new_unchecked(packet.data_mut()).set_dst_addr(mac);
                Verdict::Forward(port)
            }
            Some(Err(Some(hop))) => Verdict::Punt(PuntReason::NeedsNextHop { port, hop }),
            Some(Err(None)) => Verdict::Drop(DropReason::NoRoute),
        }
    }
}

/// The destination of the IP packet at the start of `ip`.
#[inline]
fn inner_destination(ip: &[u8]) -> Option<IpAddr> {
    match ip.first()? >> 4 {
        4 => ipv4::Packet::new_checked(ip)
            .ok()
            .map(|p| IpAddr::V4(p.dst_addr())),
        6 => ipv6::Packet::new_checked(ip)
            .ok()
            .map(|p| IpAddr::V6(p.dst_addr())),
        _ => None,
    }
}

/// Decrements the TTL / hop limit of the IP packet at the start of `ip`;
/// false when it would expire.
#[inline]
fn decrement_hop(ip: &mut [u8]) -> bool {
    match ip.first().map(|b| b >> 4) {
        Some(4) => ipv4::Packet::new_checked(ip).is_ok_and(|mut p| p.decrement_ttl().is_some()),
        Some(6) => {
            ipv6::Packet::new_checked(ip).is_ok_and(|mut p| p.decrement_hop_limit().is_some())
        }
        _ => false,
    }
}

/// Prepends Ethernet, IPv4 and UDP headers addressed to `endpoint` in
/// front of the transport message that is the buffer's data. Fails, with
/// the buffer unchanged, when the headroom is short or the datagram would
/// exceed 65535 bytes.
#[inline]
pub fn push_outer_headers<B: PacketBuf>(
    packet: &mut B,
    config: &DataPathConfig,
    endpoint: SocketAddrV4,
) -> Result<(), BufError> {
    let path = Path {
        port: config.wan_port,
        src_mac: config.wan_src_mac,
        local_ip: config.local_ip,
        endpoint,
    };
    push_path_headers(packet, &path, config.wan_dst_mac, config.listen_port)
}

/// [`push_outer_headers`] for one path: from `path.local_ip:listen_port`
/// and `path.src_mac` to `path.endpoint` via `dst_mac`.
#[inline]
pub fn push_path_headers<B: PacketBuf>(
    packet: &mut B,
    path: &Path,
    dst_mac: Address,
    listen_port: u16,
) -> Result<(), BufError> {
    let (config_src_mac, local_ip, endpoint) = (path.src_mac, path.local_ip, path.endpoint);
    let message_len = packet.len();
    let too_long = BufError::NoTailroom {
        wanted: message_len,
        available: usize::from(u16::MAX) - OUTER_IP_UDP_LEN,
    };
    let udp_len = u16::try_from(udp::HEADER_LEN + message_len).map_err(|_| too_long)?;
    let ip_len = u16::try_from(OUTER_IP_UDP_LEN + message_len).map_err(|_| too_long)?;
    let head = packet.prepend(ethernet::HEADER_LEN + OUTER_IP_UDP_LEN)?;
    let (eth, rest) = head.split_at_mut(ethernet::HEADER_LEN);
    let mut frame = ethernet::Frame::new_unchecked(eth);
    frame.set_dst_addr(dst_mac);
    frame.set_src_addr(config_src_mac);
    frame.set_ethertype(EtherType::Ipv4);
    let (ip_bytes, udp_bytes) = rest.split_at_mut(ipv4::HEADER_LEN);
    ip_bytes.copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    let mut ip = ipv4::Packet::new_unchecked(ip_bytes);
    ip.set_total_len(ip_len);
    ip.set_src_addr(local_ip);
    ip.set_dst_addr(*endpoint.ip());
    ip.fill_checksum();
    // UDP checksum 0: none, as RFC 768 allows over IPv4 and as the kernel's
    // WireGuard does with checksum offload absent.
    udp_bytes[0..2].copy_from_slice(&listen_port.to_be_bytes());
    udp_bytes[2..4].copy_from_slice(&endpoint.port().to_be_bytes());
    udp_bytes[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp_bytes[6..8].copy_from_slice(&[0, 0]);
    Ok(())
}

impl<P: Policy> Processor for WgDataPath<'_, P> {
    #[inline]
    fn process<B: PacketBuf>(&mut self, packet: &mut B, in_port: u8, now: u64) -> Verdict {
        let verdict = if in_port == self.config.lan_port {
            self.handle_lan(packet, now)
        } else {
            // Every other port is a WAN port: tunnels may arrive on any path.
            self.handle_wan(packet, now)
        };
        verdict.unwrap_or_else(|| self.fallback.process(packet, in_port, now))
    }

    fn process_local<B: PacketBuf>(&mut self, packet: &mut B, aux: u32, now: u64) -> Verdict {
        if aux == HANDOFF_FROM_WAN {
            return self
                .handle_wan(packet, now)
                .unwrap_or(Verdict::Drop(DropReason::Malformed));
        }
        match self.send_to_peer(packet, aux, now) {
            // The keypair the control thread installed just before injecting
            // this packet may still sit in the command ring: apply it, retry.
            // (Only then: any other verdict means the packet was encrypted.)
            Verdict::Punt(PuntReason::WgNeedsSession { .. }) => {
                self.poll(now);
                match self.send_to_peer(packet, aux, now) {
                    Verdict::Punt(PuntReason::WgNeedsSession { .. }) => {
                        Verdict::Drop(DropReason::NoRoute)
                    }
                    v => v,
                }
            }
            v => v,
        }
    }

    #[inline]
    fn poll(&mut self, now: u64) {
        self.fallback.poll(now);
        self.policy.poll(now);
        for _ in 0..16 {
            match self.commands.pop() {
                Some(command) => self.apply(command),
                None => break,
            }
        }
    }
}

impl<P: Policy> core::fmt::Debug for WgDataPath<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WgDataPath")
            .field("config", &self.config)
            .field("peers", &self.send.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::HeapBuf;
    use crate::forward::ForwardEntry;
    use crate::synth;

    const LAN: u8 = 0;
    const WAN: u8 = 1;
    const MASK: u32 = 0x5a5a_1234;
    const OUR_KEY: [u8; 32] = [1; 32]; // we send with it, the peer receives
    const PEER_KEY: [u8; 32] = [2; 32]; // the peer sends with it, we receive
    const PEER_INDEX: u32 = 0xabcd_0001;
    const LAN_HOST_MAC: Address = Address([2, 0, 0, 0, 1, 2]);
    const LAN_PORT_MAC: Address = Address([2, 0, 0, 0, 1, 1]);
    const WAN_PORT_MAC: Address = Address([2, 0, 0, 0, 2, 1]);
    const GATEWAY_MAC: Address = Address([2, 0, 0, 0, 2, 2]);
    const PEER_ENDPOINT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 10, 2, 2), 51820);
    const LAN_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 10, 1, 2));
    const BEHIND_PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2));

    struct Rig {
        activity: Vec<PeerActivity>,
        commands: ArrayQueue<WgCommand>,
    }

    impl Rig {
        fn new() -> Rig {
            Rig {
                activity: vec![PeerActivity::default()],
                commands: ArrayQueue::new(8),
            }
        }

        fn datapath(&self) -> WgDataPath<'_> {
            let config = DataPathConfig {
                lan_port: LAN,
                wan_port: WAN,
                lan_src_mac: LAN_PORT_MAC,
                lan_dst_mac: LAN_HOST_MAC,
                wan_src_mac: WAN_PORT_MAC,
                wan_dst_mac: GATEWAY_MAC,
                local_ip: Ipv4Addr::new(10, 10, 2, 1),
                listen_port: 51820,
                index_mask: MASK,
                tsc_hz: 1_000,
                worker: 0,
                workers: 1,
                tunnel_mtu: 1420,
                lan_ipv4: Some(Ipv4Addr::new(10, 10, 1, 1)),
                lan_ipv6: None,
            };
            let mut routes = AllowedIps::new();
            routes
                .insert("10.99.0.0".parse().unwrap(), 24, 0u32)
                .unwrap();
            let mut fallback = Forwarder::new();
            fallback
                .set(
                    LAN,
                    ForwardEntry {
                        out_port: WAN,
                        src_mac: WAN_PORT_MAC,
                        dst_mac: GATEWAY_MAC,
                    },
                )
                .unwrap();
            WgDataPath::new(
                config,
                routes,
                &[Some(PEER_ENDPOINT)],
                &self.activity,
                &self.commands,
                fallback,
            )
        }
    }

    fn our_index() -> u32 {
        local_index(MASK, 0, 1)
    }

    fn install(dp: &mut WgDataPath<'_>, rig: &Rig, initiator: bool, now: u64) {
        let keypair = Keypair {
            send: SendSession::new(&OUR_KEY, PEER_INDEX, now),
            recv: RecvSession::new(&PEER_KEY, our_index(), now),
            initiator,
        };
        rig.commands
            .push(WgCommand::InstallKeypair {
                peer: 0,
                keypair: Box::new(keypair),
            })
            .ok()
            .unwrap();
        dp.poll(now);
    }

    fn lan_packet(dst: IpAddr, len: usize) -> HeapBuf {
        HeapBuf::from_slice(
            &synth::udp_frame(LAN_HOST_MAC, LAN_PORT_MAC, LAN_HOST, dst, 64, len),
            128,
            64,
        )
    }

    /// What the peer would send us: `inner` encrypted with PEER_KEY, in
    /// outer headers from `from`.
    fn from_peer(inner: &[u8], peer_send: &mut SendSession, from: SocketAddrV4) -> HeapBuf {
        let mut buf = HeapBuf::from_slice(inner, 128, 64);
        transport::encapsulate(&mut buf, peer_send).unwrap();
        let config = DataPathConfig {
            lan_port: LAN,
            wan_port: WAN,
            lan_src_mac: LAN_PORT_MAC,
            lan_dst_mac: LAN_HOST_MAC,
            wan_src_mac: GATEWAY_MAC,
            wan_dst_mac: WAN_PORT_MAC,
            local_ip: *from.ip(),
            listen_port: from.port(),
            index_mask: 0,
            tsc_hz: 1,
            worker: 0,
            workers: 1,
            tunnel_mtu: 1420,
            lan_ipv4: None,
            lan_ipv6: None,
        };
        push_outer_headers(
            &mut buf,
            &config,
            SocketAddrV4::new(Ipv4Addr::new(10, 10, 2, 1), 51820),
        )
        .unwrap();
        buf
    }

    fn inner_ip(src: IpAddr, dst: IpAddr, len: usize) -> Vec<u8> {
        synth::udp_frame(LAN_HOST_MAC, LAN_PORT_MAC, src, dst, 64, len)[14..].to_vec()
    }

    #[test]
    fn without_a_session_lan_traffic_to_a_peer_is_punted_as_an_ip_packet() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        let mut p = lan_packet(BEHIND_PEER, 100);
        assert_eq!(
            dp.process(&mut p, LAN, 5),
            Verdict::Punt(PuntReason::WgNeedsSession { peer: 0 })
        );
        assert_eq!(
            p.data()[0] >> 4,
            4,
            "the Ethernet header is stripped for the control thread"
        );
        assert_eq!(ipv4::Packet::new_checked(p.data()).unwrap().ttl(), 63);
    }

    #[test]
    fn lan_traffic_is_encrypted_to_the_peer_endpoint_and_decrypts_there() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 10);
        let original = lan_packet(BEHIND_PEER, 200);
        let mut p = original.clone();
        assert_eq!(dp.process(&mut p, LAN, 11), Verdict::Forward(WAN));
        let frame = ethernet::Frame::new_checked(p.data()).unwrap();
        assert_eq!(
            (frame.dst_addr(), frame.src_addr()),
            (GATEWAY_MAC, WAN_PORT_MAC)
        );
        let ip = ipv4::Packet::new_checked(frame.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            (ip.src_addr(), ip.dst_addr()),
            (Ipv4Addr::new(10, 10, 2, 1), *PEER_ENDPOINT.ip())
        );
        let datagram = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((datagram.src_port(), datagram.dst_port()), (51820, 51820));
        // The peer decrypts it into our inner packet, TTL decremented.
        let mut message = HeapBuf::from_slice(datagram.payload(), 0, 0);
        let mut peer_recv = RecvSession::new(&OUR_KEY, PEER_INDEX, 0);
        assert_eq!(
            transport::decapsulate(&mut message, &mut peer_recv),
            Ok(Decapsulated::Packet)
        );
        let mut expected = original.data()[14..].to_vec();
        ipv4::Packet::new_checked(&mut expected[..])
            .unwrap()
            .decrement_ttl();
        assert_eq!(message.data(), &expected[..]);
        assert_eq!(rig.activity[0].last_data_sent.load(Relaxed), 11);
        assert_eq!(
            rig.activity[0].tx_bytes.load(Relaxed),
            expected.len() as u64
        );
    }

    #[test]
    fn a_packet_larger_than_the_tunnel_mtu_gets_fragmentation_needed() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 10);
        let mut p = lan_packet(BEHIND_PEER, 14 + 1500);
        assert_eq!(dp.process(&mut p, LAN, 11), Verdict::Forward(LAN));
        let frame = ethernet::Frame::new_checked(p.data()).unwrap();
        assert_eq!(
            (frame.dst_addr(), frame.src_addr()),
            (LAN_HOST_MAC, LAN_PORT_MAC)
        );
        let ip = ipv4::Packet::new_checked(frame.payload()).unwrap();
        assert_eq!(
            (ip.src_addr(), ip.dst_addr()),
            (Ipv4Addr::new(10, 10, 1, 1), Ipv4Addr::new(10, 10, 1, 2))
        );
        let icmp = crate::wire::icmpv4::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((icmp.msg_code(), icmp.rest_of_header() & 0xffff), (4, 1420));
        assert_eq!(
            rig.activity[0].tx_bytes.load(Relaxed),
            0,
            "nothing went into the tunnel"
        );
        // Exactly the tunnel MTU still goes through.
        let mut p = lan_packet(BEHIND_PEER, 14 + 1420);
        assert_eq!(dp.process(&mut p, LAN, 12), Verdict::Forward(WAN));
    }

    #[test]
    fn unknown_destinations_can_be_dropped_but_the_node_still_answers() {
        let rig = Rig::new();
        let mut dp = rig.datapath().drop_unknown_destinations(true);
        let mut p = lan_packet(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), 80);
        assert_eq!(
            dp.process(&mut p, LAN, 1),
            Verdict::Drop(DropReason::NoRoute)
        );
        let mut fallback = Forwarder::new();
        fallback
            .set_local_addresses(&[IpAddr::V4(Ipv4Addr::new(10, 10, 1, 1))])
            .unwrap();
        let mut dp = WgDataPath {
            fallback,
            ..rig.datapath()
        }
        .drop_unknown_destinations(true);
        let mut p = lan_packet(IpAddr::V4(Ipv4Addr::new(10, 10, 1, 1)), 80);
        assert_eq!(dp.process(&mut p, LAN, 1), Verdict::Punt(PuntReason::Local));
    }

    #[test]
    fn traffic_to_other_destinations_follows_the_plain_forwarder() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        let mut p = lan_packet(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), 80);
        assert_eq!(dp.process(&mut p, LAN, 1), Verdict::Forward(WAN));
        let frame = ethernet::Frame::new_checked(p.data()).unwrap();
        assert_eq!(
            ipv4::Packet::new_checked(frame.payload())
                .unwrap()
                .dst_addr(),
            Ipv4Addr::new(192, 0, 2, 9)
        );
    }

    #[test]
    fn peer_traffic_is_decrypted_checked_and_delivered_to_the_lan() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 10);
        let mut peer_send = SendSession::new(&PEER_KEY, our_index(), 0);
        let inner = inner_ip(BEHIND_PEER, LAN_HOST, 300);
        let mut p = from_peer(&inner, &mut peer_send, PEER_ENDPOINT);
        assert_eq!(dp.process(&mut p, WAN, 12), Verdict::Forward(LAN));
        let frame = ethernet::Frame::new_checked(p.data()).unwrap();
        assert_eq!(
            (frame.dst_addr(), frame.src_addr()),
            (LAN_HOST_MAC, LAN_PORT_MAC)
        );
        let mut expected = inner.clone();
        ipv4::Packet::new_checked(&mut expected[..])
            .unwrap()
            .decrement_ttl();
        assert_eq!(
            frame.payload(),
            &expected[..],
            "delivered with its TTL decremented"
        );
        assert_eq!(rig.activity[0].last_received.load(Relaxed), 12);
        assert_eq!(
            rig.activity[0].confirmed_index.load(Relaxed),
            0,
            "an initiator keypair needs no confirmation"
        );

        // The same message again is a replay.
        let mut peer_send_again = SendSession::new(&PEER_KEY, our_index(), 0);
        let mut replay = from_peer(&inner, &mut peer_send_again, PEER_ENDPOINT);
        assert_eq!(
            dp.process(&mut replay, WAN, 13),
            Verdict::Drop(DropReason::WgReplay)
        );
    }

    #[test]
    fn a_tunnelled_packet_whose_ttl_would_expire_is_dropped() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 10);
        let mut peer_send = SendSession::new(&PEER_KEY, our_index(), 0);
        let mut inner = inner_ip(BEHIND_PEER, LAN_HOST, 100);
        let mut ip = ipv4::Packet::new_checked(&mut inner[..]).unwrap();
        ip.set_ttl(1);
        ip.fill_checksum();
        let mut p = from_peer(&inner, &mut peer_send, PEER_ENDPOINT);
        assert_eq!(
            dp.process(&mut p, WAN, 12),
            Verdict::Drop(DropReason::TtlExceeded)
        );
    }

    #[test]
    fn a_peer_may_not_send_from_addresses_it_is_not_allowed() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 10);
        let mut peer_send = SendSession::new(&PEER_KEY, our_index(), 0);
        let spoofed = inner_ip(IpAddr::V4(Ipv4Addr::new(10, 10, 1, 50)), LAN_HOST, 100);
        let mut p = from_peer(&spoofed, &mut peer_send, PEER_ENDPOINT);
        assert_eq!(
            dp.process(&mut p, WAN, 12),
            Verdict::Drop(DropReason::WgCryptokeyMismatch)
        );
    }

    #[test]
    fn keepalives_are_consumed_and_roaming_updates_the_endpoint() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 10);
        let mut peer_send = SendSession::new(&PEER_KEY, our_index(), 0);
        let roamed = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 5), 40000);
        let mut p = from_peer(&[], &mut peer_send, roamed);
        assert_eq!(dp.process(&mut p, WAN, 20), Verdict::Consumed);
        assert_eq!(
            unpack_endpoint(rig.activity[0].endpoint.load(Relaxed)),
            Some(roamed)
        );
        // Our next packet goes to the new endpoint.
        let mut out = lan_packet(BEHIND_PEER, 80);
        assert_eq!(dp.process(&mut out, LAN, 21), Verdict::Forward(WAN));
        let frame = ethernet::Frame::new_checked(out.data()).unwrap();
        assert_eq!(
            ipv4::Packet::new_checked(frame.payload())
                .unwrap()
                .dst_addr(),
            *roamed.ip()
        );
    }

    #[test]
    fn a_forged_message_does_not_move_the_endpoint() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 10);
        let mut forger = SendSession::new(&[9; 32], our_index(), 0);
        let mut p = from_peer(
            &inner_ip(BEHIND_PEER, LAN_HOST, 60),
            &mut forger,
            SocketAddrV4::new(Ipv4Addr::new(6, 6, 6, 6), 1),
        );
        assert_eq!(
            dp.process(&mut p, WAN, 20),
            Verdict::Drop(DropReason::WgInvalid)
        );
        assert_eq!(rig.activity[0].endpoint.load(Relaxed), 0);
    }

    #[test]
    fn the_responder_confirms_a_new_keypair_on_its_first_packet() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, false, 10);
        // Unconfirmed: we cannot send on it yet.
        let mut out = lan_packet(BEHIND_PEER, 80);
        assert_eq!(
            dp.process(&mut out, LAN, 11),
            Verdict::Punt(PuntReason::WgNeedsSession { peer: 0 })
        );
        let mut peer_send = SendSession::new(&PEER_KEY, our_index(), 0);
        let mut p = from_peer(&[], &mut peer_send, PEER_ENDPOINT);
        assert_eq!(dp.process(&mut p, WAN, 12), Verdict::Consumed);
        assert_eq!(rig.activity[0].confirmed_index.load(Relaxed), our_index());
        let mut out = lan_packet(BEHIND_PEER, 80);
        assert_eq!(dp.process(&mut out, LAN, 13), Verdict::Forward(WAN));
    }

    #[test]
    fn keys_older_than_reject_after_time_are_not_used() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 0);
        let late = REJECT_AFTER_TIME.as_secs() * 1_000;
        let mut out = lan_packet(BEHIND_PEER, 80);
        assert_eq!(
            dp.process(&mut out, LAN, late),
            Verdict::Punt(PuntReason::WgNeedsSession { peer: 0 })
        );
    }

    #[test]
    fn the_initiator_asks_for_a_rekey_after_rekey_after_time() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 0);
        let mut out = lan_packet(BEHIND_PEER, 80);
        dp.process(&mut out, LAN, 1);
        assert!(!rig.activity[0].rekey_wanted.load(Relaxed));
        let mut out = lan_packet(BEHIND_PEER, 80);
        dp.process(&mut out, LAN, REKEY_AFTER_TIME.as_secs() * 1_000);
        assert!(rig.activity[0].rekey_wanted.load(Relaxed));
    }

    #[test]
    fn handshake_messages_to_our_port_are_punted_and_others_forwarded() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        let mut initiation = vec![0u8; 148];
        initiation[0] = 1;
        let mut p = HeapBuf::from_slice(&initiation, 128, 0);
        let config = DataPathConfig {
            lan_port: LAN,
            wan_port: WAN,
            lan_src_mac: LAN_PORT_MAC,
            lan_dst_mac: LAN_HOST_MAC,
            wan_src_mac: GATEWAY_MAC,
            wan_dst_mac: WAN_PORT_MAC,
            local_ip: *PEER_ENDPOINT.ip(),
            listen_port: 51820,
            index_mask: 0,
            tsc_hz: 1,
            worker: 0,
            workers: 1,
            tunnel_mtu: 1420,
            lan_ipv4: None,
            lan_ipv6: None,
        };
        push_outer_headers(
            &mut p,
            &config,
            SocketAddrV4::new(Ipv4Addr::new(10, 10, 2, 1), 51820),
        )
        .unwrap();
        assert_eq!(
            dp.process(&mut p, WAN, 1),
            Verdict::Punt(PuntReason::WgHandshake)
        );
        // A transport message with an index we never issued.
        let mut bogus = vec![0u8; 48];
        bogus[0] = 4;
        bogus[4..8].copy_from_slice(&0xffff_ffffu32.to_le_bytes());
        let mut p = HeapBuf::from_slice(&bogus, 128, 0);
        push_outer_headers(
            &mut p,
            &config,
            SocketAddrV4::new(Ipv4Addr::new(10, 10, 2, 1), 51820),
        )
        .unwrap();
        assert_eq!(
            dp.process(&mut p, WAN, 1),
            Verdict::Drop(DropReason::WgInvalid)
        );
    }

    #[test]
    fn the_hot_send_state_keeps_counters_and_path_beside_the_key() {
        use core::mem::{offset_of, size_of};
        // The counters share the first line with the key's first bytes…
        assert!(offset_of!(SendHot, next_counter) < 64);
        assert!(offset_of!(SendHot, created_at) < 64);
        assert_eq!(offset_of!(SendHot, key), 16);
        // …and the index, first path, flags and path count share the last
        // line with the end of the key.
        let last_line = (size_of::<SendHot>() - 1) / 64;
        let key_end = offset_of!(SendHot, key) + size_of::<LessSafeKey>() - 1;
        for offset in [
            key_end,
            offset_of!(SendHot, remote_index),
            offset_of!(SendHot, path0),
            offset_of!(SendHot, flags),
            offset_of!(SendHot, paths),
        ] {
            assert_eq!(offset / 64, last_line, "offset {offset}");
        }
        assert_eq!(core::mem::align_of::<SendHot>(), 64);
        // A send writes one line of its peer's activity.
        assert_eq!(core::mem::align_of::<PeerActivity>(), 64);
        assert!(offset_of!(PeerActivity, path_tx_bytes) + 8 <= 64);
        assert!(offset_of!(PeerActivity, tx_bytes) < 64);
        assert!(offset_of!(PeerActivity, last_data_sent) < 64);
    }

    #[test]
    fn clearing_keys_stops_sending_until_a_new_keypair_arrives() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 0);
        let mut out = lan_packet(BEHIND_PEER, 80);
        assert_eq!(dp.process(&mut out, LAN, 1), Verdict::Forward(WAN));
        rig.commands
            .push(WgCommand::ClearKeys { peer: 0 })
            .ok()
            .unwrap();
        dp.poll(2);
        let mut out = lan_packet(BEHIND_PEER, 80);
        assert_eq!(
            dp.process(&mut out, LAN, 3),
            Verdict::Punt(PuntReason::WgNeedsSession { peer: 0 })
        );
        install(&mut dp, &rig, true, 4);
        let mut out = lan_packet(BEHIND_PEER, 80);
        assert_eq!(dp.process(&mut out, LAN, 5), Verdict::Forward(WAN));
        // The new keypair starts its counters afresh.
        assert_eq!(&out.data()[OUTER_IP_UDP_LEN + 14 + 8..][..8], &[0; 8]);
    }

    #[test]
    fn random_wan_frames_never_panic() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 0);
        let mut peer_send = SendSession::new(&PEER_KEY, our_index(), 0);
        let valid = from_peer(
            &inner_ip(BEHIND_PEER, LAN_HOST, 100),
            &mut peer_send,
            PEER_ENDPOINT,
        );
        let mut seed = 0x1234_5678u32;
        for i in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let mut bytes = valid.data().to_vec();
            let at = seed as usize % bytes.len();
            bytes[at] ^= (seed >> 8) as u8 | 1;
            bytes.truncate(bytes.len() - (i % 7));
            let mut p = HeapBuf::from_slice(&bytes, 128, 64);
            let verdict = dp.process(&mut p, WAN, 1);
            assert!(
                !matches!(verdict, Verdict::Forward(LAN)) || at < 42,
                "only header changes may still pass, byte {at}"
            );
        }
    }

    /// Two workers sharing two peers: worker 0 owns peer 0, worker 1 peer 1.
    fn two_workers<'a>(
        activity: &'a [PeerActivity],
        commands: &'a [ArrayQueue<WgCommand>],
    ) -> Vec<WgDataPath<'a>> {
        (0..2u8)
            .map(|w| {
                let config = DataPathConfig {
                    lan_port: LAN,
                    wan_port: WAN,
                    lan_src_mac: LAN_PORT_MAC,
                    lan_dst_mac: LAN_HOST_MAC,
                    wan_src_mac: WAN_PORT_MAC,
                    wan_dst_mac: GATEWAY_MAC,
                    local_ip: Ipv4Addr::new(10, 10, 2, 1),
                    listen_port: 51820,
                    index_mask: MASK,
                    tsc_hz: 1_000,
                    worker: w,
                    workers: 2,
                    tunnel_mtu: 1420,
                    lan_ipv4: None,
                    lan_ipv6: None,
                };
                let mut routes = AllowedIps::new();
                routes
                    .insert("10.98.0.0".parse().unwrap(), 24, 0u32)
                    .unwrap();
                routes
                    .insert("10.99.0.0".parse().unwrap(), 24, 1u32)
                    .unwrap();
                WgDataPath::new(
                    config,
                    routes,
                    &[Some(PEER_ENDPOINT), Some(PEER_ENDPOINT)],
                    activity,
                    &commands[usize::from(w)],
                    Forwarder::new(),
                )
            })
            .collect()
    }

    #[test]
    fn packets_for_a_peer_owned_by_another_worker_are_handed_to_it() {
        let activity = vec![PeerActivity::default(), PeerActivity::default()];
        let commands = [ArrayQueue::new(4), ArrayQueue::new(4)];
        let mut workers = two_workers(&activity, &commands);
        // Peer 1's keypair goes to its owner, worker 1.
        let index = local_index(MASK, 1, 1);
        let keypair = Keypair {
            send: SendSession::new(&OUR_KEY, PEER_INDEX, 0),
            recv: RecvSession::new(&PEER_KEY, index, 0),
            initiator: true,
        };
        commands[1]
            .push(WgCommand::InstallKeypair {
                peer: 1,
                keypair: Box::new(keypair),
            })
            .ok()
            .unwrap();
        workers[1].poll(0);

        // LAN → peer 1 arriving at worker 0: handed off, then encrypted by worker 1.
        let mut p = lan_packet(BEHIND_PEER, 100);
        assert_eq!(
            workers[0].process(&mut p, LAN, 1),
            Verdict::HandOff { worker: 1, aux: 1 }
        );
        assert_eq!(
            workers[1].process_local(&mut p, 1, 1),
            Verdict::Forward(WAN)
        );
        assert_eq!(
            activity[1].tx_bytes.load(Relaxed),
            86,
            "the owner accounts the packet"
        );

        // Peer 1 → LAN arriving at worker 0: handed off, then decrypted by worker 1.
        let mut peer_send = SendSession::new(&PEER_KEY, index, 0);
        let inner = inner_ip(BEHIND_PEER, LAN_HOST, 120);
        let mut p = from_peer(&inner, &mut peer_send, PEER_ENDPOINT);
        assert_eq!(
            workers[0].process(&mut p, WAN, 2),
            Verdict::HandOff {
                worker: 1,
                aux: HANDOFF_FROM_WAN
            }
        );
        assert_eq!(
            workers[1].process_local(&mut p, HANDOFF_FROM_WAN, 2),
            Verdict::Forward(LAN)
        );
        assert_eq!(&p.data()[14 + 20..], &inner[20..]);
        assert_eq!(
            activity[0].last_received.load(Relaxed),
            0,
            "peer 0 untouched"
        );
    }

    #[test]
    fn an_injected_packet_finds_a_keypair_still_in_the_command_ring() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        let keypair = Keypair {
            send: SendSession::new(&OUR_KEY, PEER_INDEX, 5),
            recv: RecvSession::new(&PEER_KEY, our_index(), 5),
            initiator: true,
        };
        rig.commands
            .push(WgCommand::InstallKeypair {
                peer: 0,
                keypair: Box::new(keypair),
            })
            .ok()
            .unwrap();
        // No poll yet: process_local must apply the command itself.
        let mut p = HeapBuf::from_slice(&inner_ip(LAN_HOST, BEHIND_PEER, 60), 128, 64);
        assert_eq!(dp.process_local(&mut p, 0, 6), Verdict::Forward(WAN));
    }

    /// Rig's peer with two paths: WAN port 1 and a second WAN port 2.
    fn two_paths(dp: &mut WgDataPath<'_>) -> [Path; 2] {
        let paths = [
            Path {
                port: WAN,
                src_mac: WAN_PORT_MAC,
                local_ip: Ipv4Addr::new(10, 10, 2, 1),
                endpoint: PEER_ENDPOINT,
            },
            Path {
                port: 2,
                src_mac: Address([2, 0, 0, 0, 3, 1]),
                local_ip: Ipv4Addr::new(10, 10, 3, 1),
                endpoint: SocketAddrV4::new(Ipv4Addr::new(10, 10, 3, 2), 51820),
            },
        ];
        dp.set_paths(0, &paths).unwrap();
        paths
    }

    fn flow_packet(sport: u16) -> HeapBuf {
        let mut frame =
            synth::udp_frame(LAN_HOST_MAC, LAN_PORT_MAC, LAN_HOST, BEHIND_PEER, 64, 100);
        frame[34..36].copy_from_slice(&sport.to_be_bytes());
        HeapBuf::from_slice(&frame, 128, 64)
    }

    fn path_taken(dp: &mut WgDataPath<'_>, sport: u16) -> u8 {
        let mut p = flow_packet(sport);
        match dp.process(&mut p, LAN, 11) {
            Verdict::Forward(port) => {
                let f = ethernet::Frame::new_checked(p.data()).unwrap();
                let ip = ipv4::Packet::new_checked(f.payload()).unwrap();
                let expected_src = if port == WAN {
                    Ipv4Addr::new(10, 10, 2, 1)
                } else {
                    Ipv4Addr::new(10, 10, 3, 1)
                };
                assert_eq!(
                    ip.src_addr(),
                    expected_src,
                    "outer source is the path's address"
                );
                port
            }
            v => panic!("unexpected {v:?}"),
        }
    }

    #[test]
    fn flows_spread_over_paths_and_keep_their_path() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 10);
        two_paths(&mut dp);
        let first: Vec<u8> = (0..200).map(|f| path_taken(&mut dp, 1000 + f)).collect();
        let on_second = first.iter().filter(|&&p| p == 2).count();
        let per_path: Vec<u64> = rig.activity[0]
            .path_tx_bytes
            .iter()
            .map(|c| c.load(Relaxed))
            .collect();
        assert!(
            per_path[0] > 0 && per_path[1] > 0 && per_path[2..].iter().all(|&b| b == 0),
            "{per_path:?}"
        );
        assert!(
            (60..=140).contains(&on_second),
            "both paths carry flows: {on_second} of 200 on the second"
        );
        let again: Vec<u8> = (0..200).map(|f| path_taken(&mut dp, 1000 + f)).collect();
        assert_eq!(first, again, "every flow keeps its path");
    }

    #[test]
    fn a_failed_path_moves_only_its_own_flows() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 10);
        two_paths(&mut dp);
        let before: Vec<u8> = (0..200).map(|f| path_taken(&mut dp, 1000 + f)).collect();
        rig.commands
            .push(WgCommand::SetPathUp {
                peer: 0,
                path: 0,
                up: false,
            })
            .ok()
            .unwrap();
        dp.poll(11);
        let after: Vec<u8> = (0..200).map(|f| path_taken(&mut dp, 1000 + f)).collect();
        assert!(
            after.iter().all(|&p| p == 2),
            "everything moved to the surviving path"
        );
        for (b, a) in before.iter().zip(&after) {
            if *b == 2 {
                assert_eq!(*a, 2, "flows already on the surviving path stay");
            }
        }
        rig.commands
            .push(WgCommand::SetPathUp {
                peer: 0,
                path: 0,
                up: true,
            })
            .ok()
            .unwrap();
        dp.poll(12);
        let restored: Vec<u8> = (0..200).map(|f| path_taken(&mut dp, 1000 + f)).collect();
        assert_eq!(
            restored, before,
            "recovery brings the original assignment back"
        );
        rig.commands
            .push(WgCommand::SetPathUp {
                peer: 0,
                path: 0,
                up: false,
            })
            .ok()
            .unwrap();
        rig.commands
            .push(WgCommand::SetPathUp {
                peer: 0,
                path: 1,
                up: false,
            })
            .ok()
            .unwrap();
        dp.poll(13);
        let mut p = flow_packet(5);
        assert_eq!(
            dp.process(&mut p, LAN, 14),
            Verdict::Drop(DropReason::NoRoute)
        );
    }

    #[test]
    fn traffic_arriving_on_any_path_is_accepted_and_does_not_roam() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 10);
        let paths = two_paths(&mut dp);
        let mut peer_send = SendSession::new(&PEER_KEY, our_index(), 0);
        let inner = inner_ip(BEHIND_PEER, LAN_HOST, 120);
        // From the second endpoint to our second address.
        let mut buf = HeapBuf::from_slice(&inner, 128, 64);
        transport::encapsulate(&mut buf, &mut peer_send).unwrap();
        let from_second = Path {
            port: 2,
            src_mac: GATEWAY_MAC,
            local_ip: *paths[1].endpoint.ip(),
            endpoint: SocketAddrV4::new(paths[1].local_ip, 51820),
        };
        push_path_headers(&mut buf, &from_second, WAN_PORT_MAC, 51820).unwrap();
        assert_eq!(dp.process(&mut buf, 2, 12), Verdict::Forward(LAN));
        assert_eq!(
            rig.activity[0].endpoint.load(Relaxed),
            0,
            "configured paths do not roam"
        );
        assert_eq!(path_taken(&mut dp, 1000), path_taken(&mut dp, 1000));
    }

    #[test]
    fn an_injected_packet_waiting_for_its_next_hop_is_encrypted_once() {
        // A resolver with nothing resolved: the path's next hop is unknown.
        let rig = Rig::new();
        let tables = crate::nexthop::NeighborTables::new(3);
        let rules = vec![
            crate::nexthop::NextHop::Static(LAN_HOST_MAC),
            crate::nexthop::NextHop::Resolved {
                subnets: vec![(IpAddr::V4(Ipv4Addr::new(10, 10, 2, 1)), 24)],
                gateway: None,
            },
        ];
        let mut fallback = Forwarder::new();
        fallback.set_resolver(crate::nexthop::Resolver::new(tables, rules));
        let mut dp = WgDataPath {
            fallback,
            ..rig.datapath()
        };
        install(&mut dp, &rig, true, 10);
        let mut p = HeapBuf::from_slice(&inner_ip(LAN_HOST, BEHIND_PEER, 84), 128, 64);
        assert_eq!(
            dp.process_local(&mut p, 0, 11),
            Verdict::Punt(PuntReason::NeedsNextHop {
                port: WAN,
                hop: IpAddr::V4(*PEER_ENDPOINT.ip())
            })
        );
        assert_eq!(
            p.len(),
            14 + 28 + 16 + 80 + 16,
            "one layer of encryption: the 70-byte packet padded to 80"
        );
    }

    #[test]
    fn ping_packets_of_one_run_are_one_flow() {
        let mut a = synth::udp_frame(LAN_HOST_MAC, LAN_PORT_MAC, LAN_HOST, BEHIND_PEER, 64, 98)
            [14..]
            .to_vec();
        {
            let mut ip = ipv4::Packet::new_checked(&mut a[..]).unwrap();
            ip.set_next_header(IpProtocol::Icmp);
            let icmp = ip.payload_mut();
            icmp[0] = 8;
            icmp[4..6].copy_from_slice(&77u16.to_be_bytes()); // identifier
        }
        let mut b = a.clone();
        b[20 + 2] ^= 0xff; // checksum
        b[20 + 7] = 9; // sequence number
        assert_eq!(flow_hash(&a), flow_hash(&b));
        b[20 + 4] ^= 1; // another identifier: another flow
        assert_ne!(flow_hash(&a), flow_hash(&b));
    }

    #[test]
    fn flow_hashes_depend_on_the_flow_only() {
        let a = inner_ip(LAN_HOST, BEHIND_PEER, 100);
        let mut b = inner_ip(LAN_HOST, BEHIND_PEER, 300);
        assert_eq!(
            flow_hash(&a),
            flow_hash(&b),
            "length and payload do not matter"
        );
        b[21] ^= 1; // source port
        assert_ne!(flow_hash(&a), flow_hash(&b));
        assert_eq!(flow_hash(&[]), 0);
    }

    /// Pins every flow of peer 0 to its second path, and counts its calls.
    struct PinSecond(u32);

    impl Policy for PinSecond {
        fn decide(&mut self, inner: &[u8], peer: u32, _flow: u64, _now: u64) -> PolicyDecision {
            assert_eq!(inner[0] >> 4, 4, "the policy sees the inner IP packet");
            self.0 += 1;
            PolicyDecision {
                path: (peer == 0).then_some(1),
                port: None,
                class: 3,
            }
        }
    }

    #[test]
    fn the_policy_hook_chooses_the_path_while_it_is_up() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 10);
        two_paths(&mut dp);
        let mut dp = dp.with_policy(PinSecond(0));
        let mut taken = Vec::new();
        for sport in 1000..1050u16 {
            let mut p = flow_packet(sport);
            match dp.process(&mut p, LAN, 11) {
                Verdict::Forward(port) => taken.push(port),
                v => panic!("{v:?}"),
            }
        }
        assert!(
            taken.iter().all(|&p| p == 2),
            "pinned to the second path: {taken:?}"
        );
        assert_eq!(dp.policy.0, 50);
        // With the chosen path down, flows fall back to the paths that are up.
        rig.commands
            .push(WgCommand::SetPathUp {
                peer: 0,
                path: 1,
                up: false,
            })
            .ok()
            .unwrap();
        dp.poll(12);
        let mut p = flow_packet(1000);
        assert_eq!(dp.process(&mut p, LAN, 13), Verdict::Forward(WAN));
    }

    /// Prefers WAN port 2 for every flow, in class `class`.
    struct PreferPort2(u8);

    impl Policy for PreferPort2 {
        fn decide(&mut self, _inner: &[u8], _peer: u32, _flow: u64, _now: u64) -> PolicyDecision {
            PolicyDecision {
                path: None,
                port: Some(2),
                class: self.0,
            }
        }
    }

    #[test]
    fn a_preferred_port_takes_the_flows_while_a_path_there_is_up() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 10);
        two_paths(&mut dp);
        let mut dp = dp.with_policy(PreferPort2(QosClass::DEFAULT as u8));
        for sport in 2000..2040u16 {
            let mut p = flow_packet(sport);
            assert_eq!(dp.process(&mut p, LAN, 11), Verdict::Forward(2));
        }
        rig.commands
            .push(WgCommand::SetPathUp {
                peer: 0,
                path: 1,
                up: false,
            })
            .ok()
            .unwrap();
        dp.poll(12);
        let mut p = flow_packet(2000);
        assert_eq!(
            dp.process(&mut p, LAN, 13),
            Verdict::Forward(WAN),
            "with no path up on the preferred port, any path that is up"
        );
    }

    #[test]
    fn shaped_ports_queue_by_class_and_the_outer_dscp_follows_the_class() {
        let rig = Rig::new();
        let mut dp = rig.datapath();
        install(&mut dp, &rig, true, 10);
        two_paths(&mut dp);
        let mut dp = dp.with_policy(PreferPort2(QosClass::RealTime as u8));
        dp.set_qos(Some(DscpMap::default()), &[2]);
        let mut p = flow_packet(3000);
        assert_eq!(
            dp.process(&mut p, LAN, 11),
            Verdict::Queue {
                port: 2,
                class: QosClass::RealTime as u8
            }
        );
        let outer = ipv4::Packet::new_checked(&p.data()[ethernet::HEADER_LEN..]).unwrap();
        assert_eq!(outer.dscp(), crate::qos::dscp::codepoint::EF);
        assert!(
            outer.verify_checksum(),
            "the DSCP rewrite keeps the checksum right"
        );
        // An unshaped port forwards at once, still marked.
        dp.set_qos(Some(DscpMap::default()), &[]);
        let mut p = flow_packet(3001);
        assert_eq!(dp.process(&mut p, LAN, 12), Verdict::Forward(2));
    }
}
