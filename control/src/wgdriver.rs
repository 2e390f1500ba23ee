//! The control thread's WireGuard driver: the I/O around the pure
//! `wg::device::Device`. It takes handshake messages and session requests
//! from the worker's punt ring, feeds the workers' per-peer activity into
//! the timers, and carries out the device's decisions: handshake messages
//! out through the inject ring, keypairs through the command ring, queued
//! packets back to the worker for encryption.

use crate::wgconfig::WireguardConfig;
use crossbeam_queue::ArrayQueue;
use patronus_dataplane::buf::PacketBuf;
use patronus_dataplane::dpdk::{tsc, Mbuf, Mempool};
use patronus_dataplane::nexthop::Resolver;
use patronus_dataplane::punt::{InjectAction, Injected, PuntReason, Punted, WorkerRings};
use patronus_dataplane::wg::allowed_ips::AllowedIps;
use patronus_dataplane::wg::datapath::{
    push_path_headers, unpack_endpoint, DataPathConfig, Keypair, Path, PeerActivity, WgCommand,
};
use patronus_dataplane::wg::device::{Activity, Device, DeviceOutput, PeerSpec};
use patronus_dataplane::wg::session::{RecvSession, SendSession};
use patronus_dataplane::wire::{ethernet, ipv4, udp, IpProtocol};
use rand_core::{OsRng, RngCore};
use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

/// Packets held per peer while its handshake runs (wireguard-go holds up to
/// 1024; a few dozen cover a TCP window's worth of a new flow).
const QUEUED_PER_PEER: usize = 128;

/// The parts shared between the driver and the workers: created before the
/// workers start and dropped after they stop. Index `w` of `commands`
/// belongs to worker `w`.
pub struct WgShared {
    pub commands: Vec<ArrayQueue<WgCommand>>,
    pub activity: Vec<PeerActivity>,
}

impl WgShared {
    pub fn new(peers: usize, workers: usize) -> WgShared {
        WgShared {
            commands: (0..workers).map(|_| ArrayQueue::new(4096)).collect(),
            activity: (0..peers).map(|_| PeerActivity::default()).collect(),
        }
    }
}

/// The allowed-IPs table for the workers: prefix → peer id.
pub fn routes(config: &WireguardConfig) -> AllowedIps<u32> {
    let mut routes = AllowedIps::new();
    for (id, peer) in config.peers.iter().enumerate() {
        for &(addr, len) in &peer.allowed_ips {
            // Validated in the config: lengths are in range and prefixes unique.
            let _ = routes.insert(addr, len, id as u32);
        }
    }
    routes
}

/// What was last seen of a peer's activity atomics.
#[derive(Default, Clone, Copy)]
struct Seen {
    sent: u64,
    data_sent: u64,
    received: u64,
    rx_bytes: u64,
    endpoint: u64,
    confirmed: u32,
}

pub struct WgDriver<'a> {
    device: Device,
    /// The workers' next-hop rules and tables, for our own handshake frames.
    resolver: Resolver,
    /// Every configured path: handshakes to an endpoint leave by its path.
    paths: Vec<Path>,
    /// Handshake frames whose next hop is not resolved yet:
    /// (port, next hop, frame), for the neighbour driver.
    unresolved: Vec<(u8, std::net::IpAddr, Mbuf)>,
    shared: &'a WgShared,
    rings: &'a [WorkerRings],
    pool: &'a Mempool,
    datapath: DataPathConfig,
    names: Vec<String>,
    seen: Vec<Seen>,
    queued: Vec<VecDeque<Mbuf>>,
    outputs: Vec<DeviceOutput>,
    start: Instant,
    start_tsc: u64,
    pub handshake_messages_sent: u64,
    pub queue_drops: u64,
}

impl<'a> WgDriver<'a> {
    pub fn new(
        config: &WireguardConfig,
        datapath: DataPathConfig,
        shared: &'a WgShared,
        rings: &'a [WorkerRings],
        pool: &'a Mempool,
        resolver: Resolver,
        paths: Vec<Path>,
    ) -> WgDriver<'a> {
        let specs = config
            .peers
            .iter()
            .map(|p| PeerSpec {
                public_key: p.public_key,
                preshared_key: p.preshared_key.clone(),
                endpoint: p.endpoint,
                persistent_keepalive: p.persistent_keepalive,
            })
            .collect();
        let peers = config.peers.len();
        let device = Device::new(
            config.private_key.clone(),
            specs,
            datapath.index_mask,
            Duration::ZERO,
            &mut OsRng,
        );
        log::info!(
            "wireguard: public key {}, listening on {}:{}, {peers} peer(s)",
            device.public_key(),
            datapath.local_ip,
            datapath.listen_port
        );
        WgDriver {
            device,
            resolver,
            unresolved: Vec::new(),
            paths,
            shared,
            rings,
            pool,
            datapath,
            names: config.peers.iter().map(|p| p.name.clone()).collect(),
            seen: vec![Seen::default(); peers],
            queued: (0..peers).map(|_| VecDeque::new()).collect(),
            outputs: Vec::new(),
            start: Instant::now(),
            start_tsc: tsc(),
            handshake_messages_sent: 0,
            queue_drops: 0,
        }
    }

    /// The WireGuard device (handshake state), for the API.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The peers' activity counters, for the API.
    pub fn shared(&self) -> &WgShared {
        self.shared
    }

    /// A random mask for local indexes, drawn once per boot.
    pub fn random_index_mask() -> u32 {
        OsRng.next_u32()
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn tsc_to_now(&self, stamp: u64) -> Duration {
        let ticks = stamp.saturating_sub(self.start_tsc);
        let hz = self.datapath.tsc_hz.max(1);
        Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz)
    }

    /// Takes a packet a worker punted for WireGuard: a handshake or cookie
    /// message, or a packet waiting for a session. `under_load` turns on
    /// the cookie defence.
    pub fn handle_punt(&mut self, punted: Punted, under_load: bool) {
        let now = self.now();
        let wall = SystemTime::now();
        match punted.reason {
            PuntReason::WgHandshake => {
                let Some((src, range)) = udp_payload(punted.mbuf.data()) else {
                    return;
                };
                let message = &punted.mbuf.data()[range];
                if let Err(e) = self.device.handle_message(
                    src,
                    message,
                    under_load,
                    now,
                    wall,
                    &mut OsRng,
                    &mut self.outputs,
                ) {
                    log::debug!("wireguard: handshake message from {src} rejected: {e}");
                }
            }
            PuntReason::WgNeedsSession { peer } => {
                if let Some(queue) = self.queued.get_mut(peer as usize) {
                    if queue.len() >= QUEUED_PER_PEER {
                        queue.pop_front();
                        self.queue_drops += 1;
                    }
                    queue.push_back(punted.mbuf);
                    self.device
                        .need_session(peer, now, wall, &mut OsRng, &mut self.outputs);
                }
            }
            _ => {}
        }
    }

    /// One round of worker activity and timers, then everything decided
    /// since the last round is carried out. Call it every millisecond or so.
    pub fn poll(&mut self) {
        let now = self.now();
        let wall = SystemTime::now();
        self.observe(now, wall);
        self.device.poll(now, wall, &mut OsRng, &mut self.outputs);
        self.execute();
    }

    fn observe(&mut self, now: Duration, wall: SystemTime) {
        for peer in 0..self.seen.len() {
            let a = &self.shared.activity[peer];
            let current = Seen {
                sent: a.last_sent.load(Relaxed),
                data_sent: a.last_data_sent.load(Relaxed),
                received: a.last_received.load(Relaxed),
                rx_bytes: a.rx_bytes.load(Relaxed),
                endpoint: a.endpoint.load(Relaxed),
                confirmed: a.confirmed_index.load(Relaxed),
            };
            let rekey_wanted = a.rekey_wanted.swap(false, Relaxed);
            let last = self.seen[peer];
            let changed = |new: u64, old: u64| (new != old).then_some(new);
            let activity = Activity {
                sent: changed(current.sent, last.sent).map(|t| self.tsc_to_now(t)),
                data_sent: changed(current.data_sent, last.data_sent).map(|t| self.tsc_to_now(t)),
                received: changed(current.received, last.received).map(|t| self.tsc_to_now(t)),
                data_received: changed(current.rx_bytes, last.rx_bytes)
                    .map(|_| self.tsc_to_now(current.received)),
                endpoint: changed(current.endpoint, last.endpoint).and_then(unpack_endpoint),
                confirmed_index: (current.confirmed != last.confirmed).then_some(current.confirmed),
                rekey_wanted,
            };
            self.seen[peer] = current;
            if activity != Activity::default() {
                if let Some(endpoint) = activity.endpoint {
                    log::info!("wireguard: {} roamed to {endpoint}", self.names[peer]);
                }
                self.device.observe(
                    peer as u32,
                    activity,
                    now,
                    wall,
                    &mut OsRng,
                    &mut self.outputs,
                );
            }
        }
    }

    fn execute(&mut self) {
        let outputs = std::mem::take(&mut self.outputs);
        for output in outputs {
            match output {
                DeviceOutput::Transmit { to, message } => self.transmit(to, &message),
                DeviceOutput::InstallKeypair { peer, keys } => {
                    let created = tsc();
                    log::info!(
                        "wireguard: handshake with {} complete ({})",
                        self.name(peer),
                        if keys.initiator {
                            "we initiated"
                        } else {
                            "they initiated"
                        }
                    );
                    let keypair = Keypair {
                        send: SendSession::new(&keys.send_key, keys.remote_index, created),
                        recv: RecvSession::new(&keys.recv_key, keys.local_index, created),
                        initiator: keys.initiator,
                    };
                    self.command(
                        peer,
                        WgCommand::InstallKeypair {
                            peer,
                            keypair: Box::new(keypair),
                        },
                    );
                }
                DeviceOutput::ClearKeys { peer } => {
                    self.command(peer, WgCommand::ClearKeys { peer })
                }
                DeviceOutput::SetEndpoint { peer, endpoint } => {
                    self.command(peer, WgCommand::SetEndpoint { peer, endpoint })
                }
                DeviceOutput::SendKeepalive { peer } => {
                    if let Some(m) = self.pool.alloc() {
                        let owner = self.datapath.owner(peer);
                        self.inject(owner, InjectAction::Process { aux: peer }, m);
                    }
                }
                DeviceOutput::FlushQueue { peer } => {
                    let queued: Vec<Mbuf> = self
                        .queued
                        .get_mut(peer as usize)
                        .map(|q| q.drain(..).collect())
                        .unwrap_or_default();
                    let owner = self.datapath.owner(peer);
                    if queued.is_empty() {
                        // Nothing to confirm the new keypair with: a keepalive.
                        if let Some(m) = self.pool.alloc() {
                            self.inject(owner, InjectAction::Process { aux: peer }, m);
                        }
                    }
                    for m in queued {
                        self.inject(owner, InjectAction::Process { aux: peer }, m);
                    }
                }
                DeviceOutput::DropQueue { peer } => {
                    if let Some(q) = self.queued.get_mut(peer as usize) {
                        self.queue_drops += q.len() as u64;
                        q.clear();
                        log::warn!("wireguard: handshake with {} gave up after 90 s; queued packets dropped", self.name(peer));
                    }
                }
            }
        }
    }

    fn name(&self, peer: u32) -> &str {
        self.names.get(peer as usize).map_or("?", String::as_str)
    }

    /// Takes a path out of use or back (BFD, SLA): the owner worker moves
    /// the path's flows to the peer's other paths before its next burst.
    pub fn set_path_up(&self, peer: u32, path: u8, up: bool) {
        if (peer as usize) < self.names.len() {
            self.command(peer, WgCommand::SetPathUp { peer, path, up });
            log::info!(
                "wireguard: {} path {} {}",
                self.name(peer),
                u32::from(path) + 1,
                if up { "back in use" } else { "out of use" }
            );
        }
    }

    /// Sends a command to the worker that owns `peer`.
    fn command(&self, peer: u32, command: WgCommand) {
        let owner = usize::from(self.datapath.owner(peer));
        if self.shared.commands[owner].push(command).is_err() {
            log::warn!("wireguard: command ring full; a keypair or endpoint update was lost");
        }
    }

    fn inject(&self, worker: u8, action: InjectAction, mbuf: Mbuf) {
        let injected = Injected {
            port: self.datapath.wan_port,
            action,
            mbuf,
        };
        // A full inject ring drops the packet (it is freed with `injected`).
        let _ = self.rings[usize::from(worker)].inject.push(injected);
    }

    fn transmit(&mut self, to: SocketAddrV4, message: &[u8]) {
        let Some(mut m) = self.pool.alloc() else {
            log::warn!("wireguard: mempool exhausted; handshake message to {to} not sent");
            return;
        };
        let Ok(body) = m.append(message.len()) else {
            return;
        };
        body.copy_from_slice(message);
        // By the configured path to that endpoint, else the first WAN port.
        let path = self
            .paths
            .iter()
            .find(|p| p.endpoint == to)
            .copied()
            .unwrap_or(Path {
                port: self.datapath.wan_port,
                src_mac: self.datapath.wan_src_mac,
                local_ip: self.datapath.local_ip,
                endpoint: to,
            });
        if push_path_headers(
            &mut m,
            &path,
            self.datapath.wan_dst_mac,
            self.datapath.listen_port,
        )
        .is_err()
        {
            return;
        }
        self.handshake_messages_sent += 1;
        let wan = path.port;
        self.resolver.refresh();
        match self.resolver.mac_for(wan, std::net::IpAddr::V4(*to.ip())) {
            Ok(mac) => {
                ethernet::Frame::new_unchecked(m.data_mut()).set_dst_addr(mac);
                self.inject(0, InjectAction::Transmit, m);
            }
            Err(Some(hop)) => self.unresolved.push((wan, hop, m)),
            Err(None) => log::warn!("wireguard: no route to {to} on the WAN port"),
        }
    }

    /// Handshake frames waiting for their next hop's MAC.
    pub fn take_unresolved(&mut self) -> Vec<(u8, std::net::IpAddr, Mbuf)> {
        std::mem::take(&mut self.unresolved)
    }

    /// One line per peer for the periodic stats: bytes in and out, and out
    /// per path for peers with several.
    pub fn stats_lines(&self) -> Vec<String> {
        (0..self.names.len())
            .map(|peer| {
                let a = &self.shared.activity[peer];
                let paths: Vec<String> = a
                    .path_tx_bytes
                    .iter()
                    .map(|c| c.load(Relaxed))
                    .enumerate()
                    .filter(|(_, b)| *b > 0)
                    .map(|(i, b)| format!("path {i} {b}"))
                    .collect();
                format!(
                    "wireguard {}: rx {} bytes, tx {} bytes{}",
                    self.names[peer],
                    a.rx_bytes.load(Relaxed),
                    a.tx_bytes.load(Relaxed),
                    if paths.len() > 1 {
                        format!(" ({})", paths.join(", "))
                    } else {
                        String::new()
                    }
                )
            })
            .collect()
    }

    /// Per-peer lines for the shutdown summary.
    pub fn summary(&self) -> Vec<String> {
        let stats = self.device.stats();
        let device = format!(
            "wireguard: {} handshake messages sent, {} initiations and {} responses received, {} cookie replies sent, {} rate-limited, {} rejected, {} queued packets dropped",
            self.handshake_messages_sent,
            stats.initiations_received,
            stats.responses_received,
            stats.cookie_replies_sent,
            stats.rate_limited,
            stats.rejected,
            self.queue_drops
        );
        std::iter::once(device)
            .chain((0..self.names.len()).map(|peer| {
                let status = self.device.peer_status(peer as u32).unwrap_or_default();
                let a = &self.shared.activity[peer];
                format!(
                    "wireguard {}: endpoint {}, handshakes {} (attempted {}), rx {} bytes, tx {} bytes",
                    self.names[peer],
                    self.device.peer_endpoint(peer as u32).map_or("none".to_string(), |e| e.to_string()),
                    status.handshakes_completed,
                    status.handshake_attempts,
                    a.rx_bytes.load(Relaxed),
                    a.tx_bytes.load(Relaxed)
                )
            }))
            .collect()
    }
}

/// The UDP source and payload range of an Ethernet/IPv4/UDP frame.
fn udp_payload(frame: &[u8]) -> Option<(SocketAddrV4, std::ops::Range<usize>)> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Udp {
        return None;
    }
    let datagram = udp::Packet::new_checked(ip.payload()).ok()?;
    let start = eth.header_len() + ip.header_len() + udp::HEADER_LEN;
    let end = start + datagram.payload().len();
    Some((
        SocketAddrV4::new(ip.src_addr(), datagram.src_port()),
        start..end,
    ))
}
