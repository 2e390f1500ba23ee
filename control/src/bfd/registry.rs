//! Many BFD sessions behind one pair of UDP ports: demultiplexing, the
//! transport checks, and the next deadline over all sessions.
//!
//! A received packet goes to the session its Your Discriminator names; a
//! packet with Your Discriminator 0 (only legal while the sender is Down or
//! AdminDown, RFC 5880 §6.8.6) goes to the session for its addresses: local
//! address, remote address and receiving path for single-hop sessions
//! (RFC 5881 §3), local and remote address alone for multihop ones, which
//! may arrive over any path (RFC 5883 §4). After demultiplexing the
//! transport must fit the session: the kind's UDP port, the TTL rule
//! (RFC 5881 §5, RFC 5883 §5) and the peer's addresses.
//!
//! The registry hands out the local discriminators (random, non-zero,
//! unique) and the UDP source ports (unique, from 49152–65535, RFC 5881 §4).
//!
//! Deadlines sit in a binary heap with lazy deletion: a session is pushed
//! only when its deadline moves earlier, and a popped entry that is stale
//! or early is re-pushed at the true deadline. Receiving a packet usually
//! moves the detection deadline later, so the common case costs no heap
//! operation; a transmit costs one push. The heap and the scratch lists
//! only allocate while they grow to the number of sessions.

use super::auth::AuthConfig;
use super::counters::{DropCounters, RxDrop};
use super::jitter::Jitter;
use super::packet::{BfdPacket, Repr, MAX_PACKET_LEN};
use super::session::{ConfigError, Session, SessionConfig, SessionEvent};
use super::transport::{SessionKind, MULTI_HOP_PORT, SINGLE_HOP_PORT, SOURCE_PORTS};
use core::cmp::Reverse;
use core::fmt;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;

/// The interface or path a packet arrived on or leaves by, as the driver
/// numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathId(pub u32);

/// A session in the registry; its value is the session's local
/// discriminator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

/// One peer to run a session with.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub local: IpAddr,
    pub remote: IpAddr,
    /// For single-hop, the interface towards the peer; carried through to
    /// [`TxMeta`] for multihop.
    pub path: PathId,
    pub kind: SessionKind,
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub detect_mult: u8,
    pub auth: Option<AuthConfig>,
    pub passive: bool,
    pub admin_down: bool,
}

/// What the driver knows about a received BFD packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxMeta {
    pub path: PathId,
    /// IP source: the peer.
    pub src: IpAddr,
    /// IP destination: us.
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6) as received.
    pub ttl: u8,
    pub udp_dst_port: u16,
}

/// How to send a session's packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxMeta {
    pub id: SessionId,
    pub path: PathId,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    /// TTL / hop limit to send with: always 255.
    pub ttl: u8,
}

/// Why a session could not be added or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryError {
    /// A session for these addresses (and path, for single-hop) exists.
    DuplicatePeer,
    /// Local and remote addresses are of different families.
    AddressFamilyMismatch,
    /// All 16384 source ports are taken.
    OutOfSourcePorts,
    NoSuchSession,
    Config(ConfigError),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::DuplicatePeer => write!(f, "a BFD session for this peer exists"),
            RegistryError::AddressFamilyMismatch => {
                write!(f, "BFD local and remote addresses differ in family")
            }
            RegistryError::OutOfSourcePorts => write!(f, "no free BFD source port"),
            RegistryError::NoSuchSession => write!(f, "no such BFD session"),
            RegistryError::Config(e) => e.fmt(f),
        }
    }
}

impl From<ConfigError> for RegistryError {
    fn from(e: ConfigError) -> RegistryError {
        RegistryError::Config(e)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct AddrKey {
    local: IpAddr,
    remote: IpAddr,
    /// `None` for multihop sessions.
    path: Option<PathId>,
    multihop: bool,
}

impl AddrKey {
    fn new(local: IpAddr, remote: IpAddr, path: PathId, multihop: bool) -> AddrKey {
        AddrKey {
            local,
            remote,
            path: (!multihop).then_some(path),
            multihop,
        }
    }
}

#[derive(Debug)]
struct Entry {
    session: Session,
    tx: TxMeta,
    key: AddrKey,
    /// The earliest heap entry for this session, if any.
    scheduled: Option<u64>,
}

/// The set of sessions.
#[derive(Debug)]
pub struct Registry {
    sessions: HashMap<u32, Entry>,
    by_addr: HashMap<AddrKey, u32>,
    ports_in_use: HashSet<u16>,
    next_port: u16,
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    due: Vec<u32>,
    events: VecDeque<(SessionId, SessionEvent)>,
    rng: Jitter,
    drops: DropCounters,
}

impl Registry {
    /// `seed` drives discriminator and port choice and each session's
    /// jitter; pass fresh randomness in production.
    pub fn new(seed: u64) -> Registry {
        let mut rng = Jitter::new(seed);
        let span = u32::from(*SOURCE_PORTS.end() - *SOURCE_PORTS.start()) + 1;
        let next_port = *SOURCE_PORTS.start() + (rng.next_u32() % span) as u16;
        Registry {
            sessions: HashMap::new(),
            by_addr: HashMap::new(),
            ports_in_use: HashSet::new(),
            next_port,
            heap: BinaryHeap::new(),
            due: Vec::new(),
            events: VecDeque::new(),
            rng,
            drops: DropCounters::default(),
        }
    }

    pub fn add(&mut self, peer: PeerConfig) -> Result<SessionId, RegistryError> {
        if peer.local.is_ipv4() != peer.remote.is_ipv4() {
            return Err(RegistryError::AddressFamilyMismatch);
        }
        let key = AddrKey::new(peer.local, peer.remote, peer.path, peer.kind.is_multihop());
        if self.by_addr.contains_key(&key) {
            return Err(RegistryError::DuplicatePeer);
        }
        let discr = loop {
            let d = self.rng.next_u32();
            if d != 0 && !self.sessions.contains_key(&d) {
                break d;
            }
        };
        let session = Session::new(SessionConfig {
            local_discr: discr,
            desired_min_tx_us: peer.desired_min_tx_us,
            required_min_rx_us: peer.required_min_rx_us,
            detect_mult: peer.detect_mult,
            kind: peer.kind,
            auth: peer.auth,
            passive: peer.passive,
            admin_down: peer.admin_down,
            seed: self.rng.next_u64(),
        })?;
        let src_port = self.allocate_port()?;
        let tx = TxMeta {
            id: SessionId(discr),
            path: peer.path,
            src: peer.local,
            dst: peer.remote,
            src_port,
            dst_port: peer.kind.dst_port(),
            ttl: peer.kind.tx_ttl(),
        };
        self.sessions.insert(
            discr,
            Entry {
                session,
                tx,
                key,
                scheduled: None,
            },
        );
        self.by_addr.insert(key, discr);
        self.touch(discr);
        Ok(SessionId(discr))
    }

    fn allocate_port(&mut self) -> Result<u16, RegistryError> {
        for _ in SOURCE_PORTS {
            let p = self.next_port;
            self.next_port = if p == *SOURCE_PORTS.end() {
                *SOURCE_PORTS.start()
            } else {
                p + 1
            };
            if self.ports_in_use.insert(p) {
                return Ok(p);
            }
        }
        Err(RegistryError::OutOfSourcePorts)
    }

    /// Removes a session; its heap entries die lazily.
    pub fn remove(&mut self, id: SessionId) -> Option<Session> {
        let e = self.sessions.remove(&id.0)?;
        self.by_addr.remove(&e.key);
        self.ports_in_use.remove(&e.tx.src_port);
        Some(e.session)
    }

    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id.0).map(|e| &e.session)
    }

    /// Addresses and ports to send the session's packets with.
    pub fn tx_meta(&self, id: SessionId) -> Option<&TxMeta> {
        self.sessions.get(&id.0).map(|e| &e.tx)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.sessions.keys().map(|d| SessionId(*d))
    }

    /// Drops decided before a session was found (parse errors, unknown
    /// discriminators, no session for the addresses, unknown ports).
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    pub fn set_params(
        &mut self,
        id: SessionId,
        desired_min_tx_us: u32,
        required_min_rx_us: u32,
        detect_mult: u8,
    ) -> Result<(), RegistryError> {
        let e = self
            .sessions
            .get_mut(&id.0)
            .ok_or(RegistryError::NoSuchSession)?;
        e.session
            .set_params(desired_min_tx_us, required_min_rx_us, detect_mult)?;
        self.touch(id.0);
        Ok(())
    }

    pub fn set_admin_down(
        &mut self,
        id: SessionId,
        down: bool,
        now_ns: u64,
    ) -> Result<(), RegistryError> {
        let e = self
            .sessions
            .get_mut(&id.0)
            .ok_or(RegistryError::NoSuchSession)?;
        e.session.set_admin_down(down, now_ns);
        self.touch(id.0);
        Ok(())
    }

    /// Demultiplexes and processes a received BFD payload. Drops before a
    /// session is found are counted in [`Registry::drops`], later ones in
    /// the session's counters.
    pub fn handle_rx(
        &mut self,
        meta: &RxMeta,
        payload: &[u8],
        now_ns: u64,
    ) -> Result<SessionId, RxDrop> {
        let mut found = None;
        let r = self.demux_and_process(meta, payload, now_ns, &mut found);
        // Even a discarded packet may have moved the session's timers (an
        // AdminDown session still records the peer's Required Min RX).
        if let Some(discr) = found {
            self.touch(discr);
        }
        r
    }

    fn demux_and_process(
        &mut self,
        meta: &RxMeta,
        payload: &[u8],
        now: u64,
        found: &mut Option<u32>,
    ) -> Result<SessionId, RxDrop> {
        let multihop = match meta.udp_dst_port {
            SINGLE_HOP_PORT => false,
            MULTI_HOP_PORT => true,
            _ => return Err(self.drop_early(RxDrop::WrongPort)),
        };
        let parsed = BfdPacket::new_checked(payload).and_then(|p| Repr::parse(&p));
        let repr = match parsed {
            Ok(r) => r,
            Err(e) => return Err(self.drop_early(RxDrop::from(e))),
        };
        let discr = if repr.your_discriminator != 0 {
            if !self.sessions.contains_key(&repr.your_discriminator) {
                return Err(self.drop_early(RxDrop::UnknownYourDiscriminator));
            }
            repr.your_discriminator
        } else {
            let key = AddrKey::new(meta.dst, meta.src, meta.path, multihop);
            match self.by_addr.get(&key) {
                Some(d) => *d,
                None => return Err(self.drop_early(RxDrop::NoSession)),
            }
        };
        let Some(e) = self.sessions.get_mut(&discr) else {
            return Err(self.drop_early(RxDrop::UnknownYourDiscriminator));
        };
        *found = Some(discr);
        let kind = e.session.kind();
        let transport = if kind.dst_port() != meta.udp_dst_port {
            Err(RxDrop::WrongPort)
        } else if !kind.accepts_ttl(meta.ttl) {
            Err(RxDrop::BadTtl)
        } else if meta.src != e.tx.dst
            || meta.dst != e.tx.src
            || (!multihop && meta.path != e.tx.path)
        {
            Err(RxDrop::AddressMismatch)
        } else {
            Ok(())
        };
        if let Err(d) = transport {
            e.session.count_drop(d);
            return Err(d);
        }
        e.session.handle_parsed(payload, &repr, now)?;
        Ok(SessionId(discr))
    }

    fn drop_early(&mut self, reason: RxDrop) -> RxDrop {
        self.drops.count(reason);
        reason
    }

    /// The earliest deadline over all sessions; it may already have passed.
    /// Call [`Registry::poll`] when it is reached.
    pub fn next_deadline(&mut self) -> Option<u64> {
        while let Some(Reverse((t, discr))) = self.heap.peek().copied() {
            let Some(e) = self.sessions.get_mut(&discr) else {
                self.heap.pop();
                continue;
            };
            if e.scheduled != Some(t) {
                self.heap.pop();
                continue;
            }
            let actual = e.session.poll_timeout();
            if actual == Some(t) {
                return Some(t);
            }
            // The session's deadline moved later; re-file it.
            self.heap.pop();
            e.scheduled = None;
            self.touch(discr);
        }
        None
    }

    /// Runs every session whose deadline has come: detection timers, then
    /// the packets due, each handed to `emit` with where it goes. `buf` is
    /// scratch space for one packet.
    pub fn poll(
        &mut self,
        now_ns: u64,
        buf: &mut [u8; MAX_PACKET_LEN],
        mut emit: impl FnMut(&TxMeta, &[u8]),
    ) {
        self.due.clear();
        while let Some(Reverse((t, discr))) = self.heap.peek().copied() {
            if t > now_ns {
                break;
            }
            self.heap.pop();
            if let Some(e) = self.sessions.get_mut(&discr) {
                if e.scheduled == Some(t) {
                    e.scheduled = None;
                    self.due.push(discr);
                }
            }
        }
        for i in 0..self.due.len() {
            let discr = self.due[i];
            if let Some(e) = self.sessions.get_mut(&discr) {
                e.session.handle_timeout(now_ns);
                while let Some(n) = e.session.poll_transmit(now_ns, buf) {
                    emit(&e.tx, &buf[..n]);
                }
            }
            self.touch(discr);
        }
    }

    pub fn poll_event(&mut self) -> Option<(SessionId, SessionEvent)> {
        self.events.pop_front()
    }

    /// Collects a session's events and files its deadline if it moved
    /// earlier.
    fn touch(&mut self, discr: u32) {
        let Some(e) = self.sessions.get_mut(&discr) else {
            return;
        };
        while let Some(ev) = e.session.poll_event() {
            self.events.push_back((SessionId(discr), ev));
        }
        if let Some(d) = e.session.poll_timeout() {
            if e.scheduled.is_none_or(|s| d < s) {
                e.scheduled = Some(d);
                self.heap.push(Reverse((d, discr)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bfd::packet::{Diag, State};
    use crate::bfd::transport::DEFAULT_MULTIHOP_MIN_TTL;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const MS: u64 = 1_000_000;
    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    fn peer(local: IpAddr, remote: IpAddr, path: u32, kind: SessionKind, us: u32) -> PeerConfig {
        PeerConfig {
            local,
            remote,
            path: PathId(path),
            kind,
            desired_min_tx_us: us,
            required_min_rx_us: us,
            detect_mult: 3,
            auth: None,
            passive: false,
            admin_down: false,
        }
    }

    fn single(local: IpAddr, remote: IpAddr, path: u32) -> PeerConfig {
        peer(local, remote, path, SessionKind::SingleHop, 50_000)
    }

    /// A packet from the peer `remote_discr` to our session `your`.
    fn packet(state: State, remote_discr: u32, your: u32) -> ([u8; MAX_PACKET_LEN], usize) {
        let r = Repr {
            diag: Diag::None,
            state,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: remote_discr,
            your_discriminator: your,
            desired_min_tx: 50_000,
            required_min_rx: 50_000,
            required_min_echo_rx: 0,
            auth: None,
        };
        let mut b = [0u8; MAX_PACKET_LEN];
        let n = r.emit(&mut b).unwrap();
        (b, n)
    }

    fn meta(src: IpAddr, dst: IpAddr, path: u32, ttl: u8, port: u16) -> RxMeta {
        RxMeta {
            path: PathId(path),
            src,
            dst,
            ttl,
            udp_dst_port: port,
        }
    }

    #[test]
    fn zero_your_discriminator_demuxes_by_addresses_and_path() {
        let mut r = Registry::new(1);
        let s1 = r.add(single(A, B, 1)).unwrap();
        let s2 = r.add(single(A, B, 2)).unwrap();
        let (b, n) = packet(State::Down, 77, 0);
        let got = r.handle_rx(&meta(B, A, 2, 255, 3784), &b[..n], 0);
        assert_eq!(got, Ok(s2));
        assert_eq!(r.session(s2).unwrap().state(), State::Init);
        assert_eq!(r.session(s1).unwrap().state(), State::Down);
        // Unknown path or addresses: no session.
        assert_eq!(
            r.handle_rx(&meta(B, A, 3, 255, 3784), &b[..n], 0),
            Err(RxDrop::NoSession)
        );
        let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(
            r.handle_rx(&meta(c, A, 1, 255, 3784), &b[..n], 0),
            Err(RxDrop::NoSession)
        );
        assert_eq!(r.drops().get(RxDrop::NoSession), 2);
    }

    #[test]
    fn nonzero_your_discriminator_selects_the_session() {
        let mut r = Registry::new(2);
        let _s1 = r.add(single(A, B, 1)).unwrap();
        let s2 = r.add(single(A, B, 2)).unwrap();
        let (b, n) = packet(State::Init, 77, s2.0);
        assert_eq!(r.handle_rx(&meta(B, A, 2, 255, 3784), &b[..n], 0), Ok(s2));
        assert_eq!(r.session(s2).unwrap().state(), State::Up);
    }

    #[test]
    fn unknown_your_discriminator_is_dropped_and_counted() {
        let mut r = Registry::new(3);
        let s = r.add(single(A, B, 1)).unwrap();
        let (b, n) = packet(State::Up, 77, s.0.wrapping_add(1).max(1));
        assert_eq!(
            r.handle_rx(&meta(B, A, 1, 255, 3784), &b[..n], 0),
            Err(RxDrop::UnknownYourDiscriminator)
        );
        assert_eq!(r.drops().get(RxDrop::UnknownYourDiscriminator), 1);
    }

    #[test]
    fn malformed_packets_are_counted_before_demux() {
        let mut r = Registry::new(4);
        r.add(single(A, B, 1)).unwrap();
        let (mut b, n) = packet(State::Down, 77, 0);
        b[0] = 0x40; // version 2
        assert_eq!(
            r.handle_rx(&meta(B, A, 1, 255, 3784), &b[..n], 0),
            Err(RxDrop::BadVersion)
        );
        assert_eq!(
            r.handle_rx(&meta(B, A, 1, 255, 3784), &b[..10], 0),
            Err(RxDrop::Truncated)
        );
        assert_eq!(r.drops().total(), 2);
    }

    #[test]
    fn single_hop_requires_ttl_255() {
        let mut r = Registry::new(5);
        let s = r.add(single(A, B, 1)).unwrap();
        let (b, n) = packet(State::Down, 77, 0);
        assert_eq!(
            r.handle_rx(&meta(B, A, 1, 254, 3784), &b[..n], 0),
            Err(RxDrop::BadTtl)
        );
        let sess = r.session(s).unwrap();
        assert_eq!(sess.counters().rx_drops.get(RxDrop::BadTtl), 1);
        assert_eq!(sess.state(), State::Down);
        assert_eq!(r.handle_rx(&meta(B, A, 1, 255, 3784), &b[..n], 0), Ok(s));
    }

    #[test]
    fn multihop_checks_the_minimum_ttl_and_ignores_the_path() {
        let mut r = Registry::new(6);
        let kind = SessionKind::MultiHop {
            min_ttl: DEFAULT_MULTIHOP_MIN_TTL,
        };
        let s = r.add(peer(A, B, 1, kind, 50_000)).unwrap();
        assert_eq!(r.tx_meta(s).unwrap().dst_port, 4784);
        let (b, n) = packet(State::Down, 77, 0);
        assert_eq!(
            r.handle_rx(&meta(B, A, 9, 253, 4784), &b[..n], 0),
            Err(RxDrop::BadTtl)
        );
        assert_eq!(r.handle_rx(&meta(B, A, 9, 254, 4784), &b[..n], 0), Ok(s));
    }

    #[test]
    fn packets_on_the_wrong_port_are_dropped() {
        let mut r = Registry::new(7);
        let s = r.add(single(A, B, 1)).unwrap();
        let (b, n) = packet(State::Down, 77, 0);
        assert_eq!(
            r.handle_rx(&meta(B, A, 1, 255, 9999), &b[..n], 0),
            Err(RxDrop::WrongPort)
        );
        // A single-hop session's discriminator on the multihop port.
        let (b, n) = packet(State::Up, 77, s.0);
        assert_eq!(
            r.handle_rx(&meta(B, A, 1, 255, 4784), &b[..n], 0),
            Err(RxDrop::WrongPort)
        );
        assert_eq!(r.drops().get(RxDrop::WrongPort), 1);
        let c = r.session(s).unwrap().counters();
        assert_eq!(c.rx_drops.get(RxDrop::WrongPort), 1);
    }

    #[test]
    fn packets_from_another_address_are_dropped() {
        let mut r = Registry::new(8);
        let s = r.add(single(A, B, 1)).unwrap();
        let (b, n) = packet(State::Up, 77, s.0);
        let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(
            r.handle_rx(&meta(c, A, 1, 255, 3784), &b[..n], 0),
            Err(RxDrop::AddressMismatch)
        );
        assert_eq!(
            r.handle_rx(&meta(B, A, 2, 255, 3784), &b[..n], 0),
            Err(RxDrop::AddressMismatch)
        );
    }

    #[test]
    fn discriminators_and_source_ports_are_unique_and_in_range() {
        let mut r = Registry::new(9);
        let mut ports = HashSet::new();
        for i in 0..2_000 {
            let s = r.add(single(A, B, i)).unwrap();
            assert_ne!(s.0, 0);
            let m = r.tx_meta(s).unwrap();
            assert!(SOURCE_PORTS.contains(&m.src_port));
            assert!(ports.insert(m.src_port));
            assert_eq!((m.ttl, m.dst_port, m.src, m.dst), (255, 3784, A, B));
        }
        assert_eq!(r.ids().collect::<HashSet<_>>().len(), 2_000);
        assert_eq!(
            r.add(single(A, B, 0)).unwrap_err(),
            RegistryError::DuplicatePeer
        );
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(
            r.add(single(A, v6, 0)).unwrap_err(),
            RegistryError::AddressFamilyMismatch
        );
    }

    #[test]
    fn removed_sessions_free_their_port_and_addresses() {
        let mut r = Registry::new(10);
        let s = r.add(single(A, B, 1)).unwrap();
        let port = r.tx_meta(s).unwrap().src_port;
        assert!(r.remove(s).is_some());
        assert!(r.is_empty());
        assert_eq!(r.next_deadline(), None);
        let (b, n) = packet(State::Down, 77, 0);
        assert_eq!(
            r.handle_rx(&meta(B, A, 1, 255, 3784), &b[..n], 0),
            Err(RxDrop::NoSession)
        );
        let s = r.add(single(A, B, 1)).unwrap();
        assert_eq!(r.ports_in_use.len(), 1);
        assert_ne!(
            r.tx_meta(s).unwrap().src_port,
            port,
            "ports rotate before reuse"
        );
    }

    // --- Two registries on simulated time -------------------------------------

    struct Net {
        r: [Registry; 2],
        wire: VecDeque<(u64, usize, RxMeta, [u8; MAX_PACKET_LEN], usize)>,
        latency: u64,
        cut: bool,
        wakeups: u64,
        now: u64,
        rx_drops: Vec<RxDrop>,
        log: Vec<(u64, usize, SessionId, SessionEvent)>,
    }

    impl Net {
        fn new(latency: u64) -> Net {
            Net {
                r: [Registry::new(100), Registry::new(200)],
                wire: VecDeque::new(),
                latency,
                cut: false,
                wakeups: 0,
                now: 0,
                rx_drops: Vec::new(),
                log: Vec::new(),
            }
        }

        fn add_pairs(&mut self, n: u32, kind: SessionKind, us: u32, v6: bool) {
            for i in 0..n {
                // Multihop sessions are told apart by address alone.
                let (a, b) = if v6 {
                    let b = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 1, i as u16);
                    (
                        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
                        IpAddr::V6(b),
                    )
                } else {
                    (A, B)
                };
                self.r[0].add(peer(a, b, i, kind, us)).unwrap();
                self.r[1].add(peer(b, a, i, kind, us)).unwrap();
            }
        }

        fn run_until(&mut self, until: u64) {
            let mut buf = [0u8; MAX_PACKET_LEN];
            loop {
                let mut next = self.wire.front().map(|w| w.0);
                for r in self.r.iter_mut() {
                    next = match (next, r.next_deadline()) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                let Some(t) = next.filter(|t| *t <= until) else {
                    self.now = until;
                    return;
                };
                self.now = self.now.max(t);
                let now = self.now;
                self.wakeups += 1;
                while self.wire.front().is_some_and(|w| w.0 <= now) {
                    let (_, to, m, b, n) = self.wire.pop_front().unwrap();
                    if let Err(d) = self.r[to].handle_rx(&m, &b[..n], now) {
                        self.rx_drops.push(d);
                    }
                }
                for i in 0..2 {
                    let (wire, latency, cut) = (&mut self.wire, self.latency, self.cut);
                    self.r[i].poll(now, &mut buf, |m, bytes| {
                        if cut {
                            return;
                        }
                        let rx = RxMeta {
                            path: m.path,
                            src: m.src,
                            dst: m.dst,
                            ttl: m.ttl,
                            udp_dst_port: m.dst_port,
                        };
                        let mut b = [0u8; MAX_PACKET_LEN];
                        b[..bytes.len()].copy_from_slice(bytes);
                        wire.push_back((now + latency, 1 - i, rx, b, bytes.len()));
                    });
                    while let Some((id, e)) = self.r[i].poll_event() {
                        self.log.push((now, i, id, e));
                    }
                }
            }
        }

        /// The heap's answer equals the brute-force minimum.
        fn assert_deadlines_exact(&mut self) {
            for r in self.r.iter_mut() {
                let brute = r
                    .ids()
                    .filter_map(|id| r.session(id).unwrap().poll_timeout())
                    .min();
                assert_eq!(r.next_deadline(), brute);
            }
        }

        fn all(&self, side: usize, state: State) -> bool {
            let r = &self.r[side];
            r.ids().all(|id| r.session(id).unwrap().state() == state)
        }
    }

    #[test]
    fn next_deadline_is_the_minimum_over_all_sessions() {
        let mut net = Net::new(MS);
        net.add_pairs(50, SessionKind::SingleHop, 20_000, false);
        for step in 1..40 {
            net.run_until(step * 97 * MS);
            net.assert_deadlines_exact();
        }
    }

    #[test]
    fn a_thousand_sessions_at_50ms_come_up_and_stay_up() {
        let mut net = Net::new(MS);
        net.add_pairs(1_000, SessionKind::SingleHop, 50_000, false);
        net.run_until(4_000 * MS);
        assert!(net.all(0, State::Up) && net.all(1, State::Up));
        let w0 = net.wakeups;
        let tx0: u64 = net.r[0]
            .ids()
            .map(|id| net.r[0].session(id).unwrap().counters().tx)
            .sum();
        net.run_until(5_000 * MS);
        assert!(net.all(0, State::Up) && net.all(1, State::Up));
        let tx1: u64 = net.r[0]
            .ids()
            .map(|id| net.r[0].session(id).unwrap().counters().tx)
            .sum();
        // 1 s at 50 ms jittered to 37.5–50 ms: 20–27 packets per session.
        let per_session = (tx1 - tx0) as f64 / 1_000.0;
        assert!((20.0..=27.0).contains(&per_session), "{per_session}");
        // No wakeup is wasted: at most one per packet sent or delivered.
        assert!(
            net.wakeups - w0 <= 2 * 2 * (tx1 - tx0),
            "{}",
            net.wakeups - w0
        );
        assert!(net.rx_drops.is_empty(), "{:?}", net.rx_drops);
    }

    #[test]
    fn a_hundred_sessions_at_10ms_detect_a_dead_path_in_time() {
        let mut net = Net::new(0);
        net.add_pairs(100, SessionKind::SingleHop, 10_000, false);
        net.run_until(4_000 * MS);
        assert!(net.all(0, State::Up) && net.all(1, State::Up));
        assert!(net.rx_drops.is_empty());
        net.cut = true;
        let cut_at = net.now;
        net.run_until(cut_at + 1_000 * MS);
        assert!(net.all(0, State::Down) && net.all(1, State::Down));
        let downs: Vec<u64> = net
            .log
            .iter()
            .filter(|(t, _, _, e)| {
                *t >= cut_at
                    && matches!(
                        e,
                        SessionEvent::StateChanged {
                            to: State::Down,
                            ..
                        }
                    )
            })
            .map(|(t, _, _, _)| *t - cut_at)
            .collect();
        assert_eq!(downs.len(), 200);
        // 3 × 10 ms + 5 ms.
        assert!(
            downs.iter().all(|d| *d <= 35 * MS),
            "{:?}",
            downs.iter().max()
        );
    }

    #[test]
    fn ipv6_multihop_sessions_come_up() {
        let mut net = Net::new(MS);
        let kind = SessionKind::MultiHop {
            min_ttl: DEFAULT_MULTIHOP_MIN_TTL,
        };
        net.add_pairs(10, kind, 100_000, true);
        net.run_until(4_000 * MS);
        assert!(net.all(0, State::Up) && net.all(1, State::Up));
        let up_events = net
            .log
            .iter()
            .filter(|(_, _, _, e)| matches!(e, SessionEvent::StateChanged { to: State::Up, .. }))
            .count();
        assert_eq!(up_events, 20);
        assert!(net.rx_drops.is_empty());
    }

    #[test]
    fn admin_down_through_the_registry_reaches_the_peer() {
        let mut net = Net::new(MS);
        net.add_pairs(1, SessionKind::SingleHop, 50_000, false);
        net.run_until(4_000 * MS);
        let id = net.r[0].ids().next().unwrap();
        let now = net.now;
        net.r[0].set_admin_down(id, true, now).unwrap();
        net.run_until(now + 10 * MS);
        let peer_id = net.r[1].ids().next().unwrap();
        let p = net.r[1].session(peer_id).unwrap();
        assert_eq!(p.state(), State::Down);
        assert_eq!(p.diag(), Diag::NeighborSignaledSessionDown);
        // The peer's packets now land on an AdminDown session.
        assert!(net.rx_drops.iter().all(|d| *d == RxDrop::AdminDown));
        assert!(!net.rx_drops.is_empty());
        net.assert_deadlines_exact();
        // Re-enabled, the pair comes back Up.
        let now = net.now;
        net.r[0].set_admin_down(id, false, now).unwrap();
        net.run_until(now + 4_000 * MS);
        assert!(net.all(0, State::Up) && net.all(1, State::Up));
        net.assert_deadlines_exact();
        assert_eq!(
            net.r[0].set_admin_down(SessionId(0), true, net.now),
            Err(RegistryError::NoSuchSession)
        );
    }
}
