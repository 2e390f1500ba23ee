//! The control thread's SLA driver: carries the sans-I/O SLA core of
//! [`crate::sla`] over the DPDK ports, as [`crate::bfddriver`] does for BFD.
//!
//! - **Probes** (UDP 4790, outside the tunnel) to every path of every peer
//!   with `sla = true` leave through worker 0's inject ring; Requests and
//!   Replies for us arrive as `Local` punts. One [`ProbeSender`] and one
//!   [`PathEstimator`] per path, one [`Reflector`] per peer.
//! - **Liveness**: a path that was answering and has been silent for
//!   `down_after_ms` is down (probe-only failure detection; with BFD on the
//!   peer, BFD usually sees it first). Down takes the path out of use in
//!   the data path at once, as a BFD Down does; the first reply puts it
//!   back.
//! - **Selection**: one [`Selector`] per peer, updated from the estimators
//!   every [`UPDATE_EVERY_NS`], at its own deadlines, and at once when a
//!   path's liveness or BFD state changes. Its decisions go to the workers
//!   through [`SteerTable`] (docs/sla.md, "Into the data path").
//! - **Events**: violations, recoveries, switches and degraded states are
//!   logged with their measurements and kept in an [`EventRing`].

// Probes carry DSCP CS6 (network control), as BFD does, so a shaped or
// congested port treats them as well as it treats anything, and queues
// do not skew them.
use crate::bfd::frame::{parse_udp, DSCP_CS6};
use crate::inject::{UdpHeaders, UdpInjector};
use crate::sla::estimator::{EstimatorConfig, PassiveDelta, PathEstimator, PathMetrics};
use crate::sla::probe::{
    MsgType, ProbePacket, ProbeSender, Reflector, ReflectorConfig, SenderConfig, MAX_PACKET_LEN,
    PROBE_UDP_PORT,
};
use crate::sla::select::{
    Choice, Decision, EventRing, PathQuality, PolicySpec, Selector, SlaClass, SlaEvent,
};
use crate::slaconfig::SlaConfig;
use patronus_dataplane::buf::PacketBuf;
use patronus_dataplane::punt::Punted;
use patronus_dataplane::steer::{PathChoice, SteerPublisher, SteerTable, WeightedSet};
use patronus_dataplane::wg::datapath::{PeerActivity, MAX_PATHS};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// How often the selectors see fresh estimates. Liveness changes do not
/// wait for it.
pub const UPDATE_EVERY_NS: u64 = 100_000_000;

/// A probed path as the API shows it.
pub struct PathReport {
    pub metrics: PathMetrics,
    /// Per class name: whether the path counts as compliant.
    pub compliant: Vec<(String, bool)>,
}

/// One path to probe.
#[derive(Debug, Clone)]
pub struct SlaPathSpec {
    /// Index among the peer's paths.
    pub path: u8,
    /// "site-B path 1 (wan1)".
    pub name: String,
    pub port: u8,
    pub local: Ipv4Addr,
    pub remote: Ipv4Addr,
    /// For spreading by capacity; 0 if unknown.
    pub capacity_bps: u64,
}

/// One peer to probe.
#[derive(Debug, Clone)]
pub struct SlaPeerSpec {
    /// The WireGuard peer index.
    pub peer: u32,
    pub name: String,
    /// The peer's node id (from its public key, [`node_id`]).
    pub node_id: u32,
    pub paths: Vec<SlaPathSpec>,
}

/// Our probes' sender id: the first four bytes of a node's WireGuard public
/// key. Both ends derive it from the key they already know.
pub fn node_id(public_key: &[u8; 32]) -> u32 {
    u32::from_le_bytes([public_key[0], public_key[1], public_key[2], public_key[3]])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    /// No reply yet: the path keeps whatever BFD or the config says.
    Unknown,
    Alive,
    Dead,
}

struct PathState {
    spec: SlaPathSpec,
    peer: usize,
    sender: ProbeSender,
    estimator: PathEstimator,
    last_reply_ns: Option<u64>,
    liveness: Liveness,
    /// BFD said Down (after having been Up).
    bfd_down: bool,
    metrics: Option<PathMetrics>,
    tx_bytes_seen: u64,
}

impl PathState {
    fn up(&self) -> bool {
        self.liveness != Liveness::Dead && !self.bfd_down
    }
}

struct PeerState {
    spec_peer: u32,
    name: String,
    /// Indexes into the driver's paths, by path index.
    paths: Vec<usize>,
    reflector: Reflector,
    selector: Selector,
    published: Vec<Option<PathChoice>>,
}

/// A path's liveness changed: for the WireGuard driver (combined with BFD
/// by the control plane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessChange {
    pub peer: u32,
    pub path: u8,
    pub up: bool,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SlaDriverStats {
    pub rx_requests: u64,
    pub rx_replies: u64,
    pub tx_probes: u64,
    pub tx_replies: u64,
    pub tx_failed: u64,
    /// Probe packets from an address or node we do not probe with.
    pub unknown_peer: u64,
    pub malformed: u64,
}

pub struct SlaDriver<'a> {
    down_after_ns: u64,
    peers: Vec<PeerState>,
    paths: Vec<PathState>,
    /// Peer index by the remote address of one of its paths.
    by_remote: HashMap<Ipv4Addr, usize>,
    by_node: HashMap<u32, usize>,
    tx: UdpInjector<'a>,
    activity: &'a [PeerActivity],
    steer: Arc<SteerPublisher>,
    classes: Vec<SlaClass>,
    policies: Vec<PolicySpec>,
    start: Instant,
    next_update_ns: u64,
    changes: Vec<LivenessChange>,
    pub events: EventRing,
    pub stats: SlaDriverStats,
}

impl<'a> SlaDriver<'a> {
    /// `peers` is the number of WireGuard peers (the steering table's
    /// size); `probed` the ones with `sla = true`.
    pub fn new(
        config: &SlaConfig,
        local_id: u32,
        peers: usize,
        probed: Vec<SlaPeerSpec>,
        tx: UdpInjector<'a>,
        activity: &'a [PeerActivity],
        steer: Arc<SteerPublisher>,
    ) -> Result<SlaDriver<'a>, String> {
        let seq0 = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let estimator_config = EstimatorConfig {
            window_ns: u64::from(config.window_secs) * 1_000_000_000,
            ..EstimatorConfig::default()
        };
        let mut driver = SlaDriver {
            down_after_ns: u64::from(config.down_after_ms) * 1_000_000,
            peers: Vec::new(),
            paths: Vec::new(),
            by_remote: HashMap::new(),
            by_node: HashMap::new(),
            tx,
            activity,
            steer,
            classes: config.classes.clone(),
            policies: config.policies.clone(),
            start: Instant::now(),
            next_update_ns: 0,
            changes: Vec::new(),
            events: EventRing::new(EventRing::DEFAULT_CAPACITY),
            stats: SlaDriverStats::default(),
        };
        driver
            .steer
            .replace(steering_table(&driver.policies, peers));
        for spec in probed {
            let index = driver.peers.len();
            if driver.by_node.insert(spec.node_id, index).is_some() {
                return Err(format!(
                    "sla: two peers have node id {:#010x}; their public keys share their first four bytes",
                    spec.node_id
                ));
            }
            let paths_n = u16::try_from(spec.paths.len().max(1)).unwrap_or(1);
            let reflector = Reflector::new(ReflectorConfig {
                peer_id: spec.node_id,
                paths: paths_n,
                keys: config.keys.clone(),
            })
            .map_err(|e| format!("sla {}: {e}", spec.name))?;
            let selector = Selector::new(
                spec.peer,
                config.selector,
                driver.classes.clone(),
                driver.policies.clone(),
            )
            .map_err(|e| e.to_string())?;
            let mut path_indexes = Vec::new();
            for p in spec.paths {
                let mut sc =
                    SenderConfig::new(local_id, u16::from(p.path), seq0, config.keys.clone());
                sc.rate_per_sec = config.probe_rate;
                let sender = ProbeSender::new(sc).map_err(|e| format!("sla {}: {e}", p.name))?;
                let estimator = PathEstimator::new(estimator_config)
                    .map_err(|e| format!("sla {}: {e}", p.name))?;
                driver.by_remote.insert(p.remote, index);
                log::info!(
                    "sla: probing {} {} -> {} ({} a second, down after {} ms of silence)",
                    p.name,
                    p.local,
                    p.remote,
                    config.probe_rate,
                    config.down_after_ms
                );
                path_indexes.push(driver.paths.len());
                driver.paths.push(PathState {
                    spec: p,
                    peer: index,
                    sender,
                    estimator,
                    last_reply_ns: None,
                    liveness: Liveness::Unknown,
                    bfd_down: false,
                    metrics: None,
                    tx_bytes_seen: 0,
                });
            }
            let policies = driver.policies.len();
            driver.peers.push(PeerState {
                spec_peer: spec.peer,
                name: spec.name,
                paths: path_indexes,
                reflector,
                selector,
                published: vec![None; policies],
            });
        }
        Ok(driver)
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Whether a punted frame is an SLA probe (UDP to 4790).
    pub fn is_probe(frame: &[u8]) -> bool {
        parse_udp(frame).is_some_and(|u| u.dst_port == PROBE_UDP_PORT)
    }

    /// A probe packet a worker punted: a Request is answered at once, a
    /// Reply becomes a sample.
    pub fn handle_punt(&mut self, punted: Punted) {
        let now = self.now_ns();
        let frame = punted.mbuf.data();
        let Some(u) = parse_udp(frame) else {
            self.stats.malformed += 1;
            return;
        };
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (u.src, u.dst) else {
            self.stats.malformed += 1;
            return;
        };
        let payload = &frame[u.payload.clone()];
        let Ok(packet) = ProbePacket::new_checked(payload) else {
            self.stats.malformed += 1;
            return;
        };
        match packet.msg_type() {
            MsgType::Request => {
                self.stats.rx_requests += 1;
                let Some(&peer) = self.by_node.get(&packet.sender_id()) else {
                    self.stats.unknown_peer += 1;
                    return;
                };
                let mut out = [0u8; MAX_PACKET_LEN];
                // Drops are counted by the reflector, by reason.
                let Ok(n) = self.peers[peer]
                    .reflector
                    .handle_request(payload, now, &mut out)
                else {
                    return;
                };
                let headers = UdpHeaders {
                    src: IpAddr::V4(dst),
                    dst: IpAddr::V4(src),
                    ttl: 64,
                    dscp: DSCP_CS6,
                    src_port: PROBE_UDP_PORT,
                    dst_port: PROBE_UDP_PORT,
                };
                let port = punted.port;
                drop(punted);
                match self.tx.send(port, &headers, &out[..n]) {
                    Ok(()) => self.stats.tx_replies += 1,
                    Err(_) => self.stats.tx_failed += 1,
                }
            }
            MsgType::Reply => {
                self.stats.rx_replies += 1;
                let Some(&peer) = self.by_remote.get(&src) else {
                    self.stats.unknown_peer += 1;
                    return;
                };
                let Some(&index) = self.peers[peer].paths.get(usize::from(packet.path_id())) else {
                    self.stats.unknown_peer += 1;
                    return;
                };
                let path = &mut self.paths[index];
                if path.spec.remote != src {
                    self.stats.unknown_peer += 1;
                    return;
                }
                // Drops are counted by the sender, by reason.
                if let Ok(sample) = path.sender.handle_reply(payload, now) {
                    path.estimator.record_reply(&sample);
                    path.last_reply_ns = Some(now);
                    if path.liveness != Liveness::Alive {
                        let was = path.liveness;
                        path.liveness = Liveness::Alive;
                        if was == Liveness::Dead {
                            log::info!(
                                "sla: {} answers again ({:.1} ms RTT)",
                                path.spec.name,
                                sample.rtt_ns as f64 / 1e6
                            );
                            self.liveness_changed(index, now);
                        }
                    }
                }
            }
            MsgType::Unknown(_) => self.stats.malformed += 1,
        }
    }

    /// BFD's view of a path (after it was Up once): Down takes the path
    /// out of every policy at once.
    pub fn set_bfd(&mut self, peer: u32, path: u8, up: bool) {
        let now = self.now_ns();
        let Some(p) = self.peers.iter().position(|p| p.spec_peer == peer) else {
            return;
        };
        let Some(&index) = self.peers[p].paths.get(usize::from(path)) else {
            return;
        };
        if self.paths[index].bfd_down != up {
            return;
        }
        self.paths[index].bfd_down = !up;
        self.update_peer(p, now);
    }

    /// Paths whose probe liveness changed since the last call.
    pub fn take_liveness_changes(&mut self) -> Vec<LivenessChange> {
        std::mem::take(&mut self.changes)
    }

    /// Frames waiting for their next hop's MAC.
    pub fn take_unresolved(&mut self) -> Vec<(u8, IpAddr, patronus_dataplane::dpdk::Mbuf)> {
        self.tx.take_unresolved()
    }

    /// How long until the next thing is due.
    pub fn next_deadline(&self) -> std::time::Duration {
        let now = self.now_ns();
        let mut due = self.next_update_ns;
        for p in &self.paths {
            if let Some(t) = p.sender.poll_timeout() {
                due = due.min(t);
            }
            if let (Liveness::Alive, Some(t)) = (p.liveness, p.last_reply_ns) {
                due = due.min(t.saturating_add(self.down_after_ns));
            }
        }
        for p in &self.peers {
            if let Some(t) = p.selector.poll_timeout() {
                due = due.min(t);
            }
        }
        std::time::Duration::from_nanos(due.saturating_sub(now))
    }

    /// Probes, losses, liveness and selection that are due.
    pub fn poll(&mut self) {
        let now = self.now_ns();
        let mut buf = [0u8; MAX_PACKET_LEN];
        for i in 0..self.paths.len() {
            while let Some(n) = self.paths[i].sender.poll_transmit(now, &mut buf) {
                let p = &self.paths[i].spec;
                let headers = UdpHeaders {
                    src: IpAddr::V4(p.local),
                    dst: IpAddr::V4(p.remote),
                    ttl: 64,
                    dscp: DSCP_CS6,
                    src_port: PROBE_UDP_PORT,
                    dst_port: PROBE_UDP_PORT,
                };
                let port = p.port;
                match self.tx.send(port, &headers, &buf[..n]) {
                    Ok(()) => self.stats.tx_probes += 1,
                    Err(_) => self.stats.tx_failed += 1,
                }
            }
            let path = &mut self.paths[i];
            while let Some(lost) = path.sender.handle_timeout(now) {
                let _ = lost;
                path.estimator.record_loss(now);
            }
            if path.liveness == Liveness::Alive
                && path
                    .last_reply_ns
                    .is_some_and(|t| now.saturating_sub(t) >= self.down_after_ns)
            {
                path.liveness = Liveness::Dead;
                log::warn!(
                    "sla: {} is down: no probe reply for {:.0} ms (at {:.6})",
                    path.spec.name,
                    now.saturating_sub(path.last_reply_ns.unwrap_or(now)) as f64 / 1e6,
                    unix_now()
                );
                self.liveness_changed(i, now);
            }
        }
        let refresh = now >= self.next_update_ns;
        if refresh {
            self.next_update_ns = now + UPDATE_EVERY_NS;
            for i in 0..self.paths.len() {
                self.refresh_metrics(i, now);
            }
        }
        for p in 0..self.peers.len() {
            if refresh
                || self.peers[p]
                    .selector
                    .poll_timeout()
                    .is_some_and(|t| t <= now)
            {
                self.update_peer(p, now);
            }
        }
    }

    fn liveness_changed(&mut self, index: usize, now: u64) {
        let path = &self.paths[index];
        self.changes.push(LivenessChange {
            peer: self.peers[path.peer].spec_peer,
            path: path.spec.path,
            up: path.liveness != Liveness::Dead,
        });
        let peer = path.peer;
        self.update_peer(peer, now);
    }

    fn refresh_metrics(&mut self, index: usize, now: u64) {
        let path = &mut self.paths[index];
        let peer = self.peers[path.peer].spec_peer as usize;
        if let Some(a) = self.activity.get(peer) {
            if let Some(c) = a.path_tx_bytes.get(usize::from(path.spec.path)) {
                let total = c.load(Relaxed);
                let delta = total.wrapping_sub(path.tx_bytes_seen);
                path.tx_bytes_seen = total;
                path.estimator.record_passive(
                    now,
                    &PassiveDelta {
                        tx_bytes: delta,
                        ..PassiveDelta::default()
                    },
                );
            }
        }
        let m = path.estimator.metrics(now);
        if let Some(rtt) = &m.rtt {
            path.sender.set_rtt_p99_ns((rtt.p99_us * 1000.0) as u64);
        }
        path.metrics = Some(m);
    }

    fn quality(&self, index: usize) -> PathQuality {
        let p = &self.paths[index];
        let m = p.metrics.as_ref();
        PathQuality {
            up: p.up(),
            port: p.spec.port,
            rtt_ms: m
                .and_then(|m| m.rtt.as_ref())
                .map_or(f64::NAN, |r| r.p95_us / 1000.0),
            jitter_ms: m
                .and_then(|m| m.jitter_us())
                .map_or(f64::NAN, |j| j / 1000.0),
            loss_pct: m.and_then(|m| m.loss_pct()).unwrap_or(f64::NAN),
            samples: m.map_or(0, |m| (m.received + m.lost) as u32),
            resolved_total: p.sender.counters().rx_ok + p.sender.counters().lost,
            lost_total: p.sender.counters().lost,
            capacity_bps: p.spec.capacity_bps,
        }
    }

    fn update_peer(&mut self, p: usize, now: u64) {
        let mut qualities = [PathQuality::default(); MAX_PATHS];
        for (i, &index) in self.peers[p].paths.iter().enumerate().take(MAX_PATHS) {
            qualities[i] = self.quality(index);
        }
        let n = self.peers[p].paths.len().min(MAX_PATHS);
        let peer = &mut self.peers[p];
        peer.selector.update(now, &qualities[..n]);
        while let Some(event) = peer.selector.poll_event() {
            match &event {
                SlaEvent::Violation { .. } | SlaEvent::Degraded { .. } => {
                    log::warn!("sla: {}: {event}", peer.name)
                }
                _ => log::info!("sla: {}: {event}", peer.name),
            }
            self.events.push(peer.spec_peer, event);
        }
        let table = self.steer.table();
        for (policy, spec) in self.policies.iter().enumerate() {
            let Some(decision) = peer.selector.decision(policy) else {
                continue;
            };
            let class = self
                .classes
                .iter()
                .position(|c| *c.name == *spec.sla)
                .unwrap_or(usize::MAX);
            let choice = path_choice(&decision, |path| {
                qualities.get(usize::from(path)).is_some_and(|q| q.up)
                    && peer.selector.is_compliant(class, path)
            });
            if peer.published[policy] != Some(choice) {
                peer.published[policy] = Some(choice);
                table.publish(peer.spec_peer, policy, choice);
            }
        }
    }

    /// The SLA classes in force.
    pub fn classes(&self) -> &[SlaClass] {
        &self.classes
    }

    /// The policies in force, in match order.
    pub fn policies(&self) -> &[PolicySpec] {
        &self.policies
    }

    /// Adds or replaces a class by name; policies follow at once.
    pub fn set_class(&mut self, class: SlaClass) -> Result<(), String> {
        let mut classes = self.classes.clone();
        crate::slaconfig::upsert_class(&mut classes, class);
        self.reconfigure(classes, self.policies.clone())
    }

    /// Removes a class no policy uses.
    pub fn remove_class(&mut self, name: &str) -> Result<(), String> {
        if let Some(p) = self.policies.iter().find(|p| p.sla == name) {
            return Err(format!("SLA class {name:?} is used by policy {:?}", p.name));
        }
        let mut classes = self.classes.clone();
        let before = classes.len();
        classes.retain(|c| &*c.name != name);
        if classes.len() == before {
            return Err(format!("no SLA class is named {name:?}"));
        }
        self.reconfigure(classes, self.policies.clone())
    }

    /// Replaces a policy by name in place, or appends it (matched last).
    pub fn set_policy(&mut self, policy: PolicySpec) -> Result<(), String> {
        let mut policies = self.policies.clone();
        let full = policies.len() >= crate::slaconfig::MAX_POLICIES;
        match policies.iter_mut().find(|p| p.name == policy.name) {
            Some(slot) => *slot = policy,
            None if full => {
                return Err(format!(
                    "at most {} policies",
                    crate::slaconfig::MAX_POLICIES
                ))
            }
            None => policies.push(policy),
        }
        self.reconfigure(self.classes.clone(), policies)
    }

    pub fn remove_policy(&mut self, name: &str) -> Result<(), String> {
        let mut policies = self.policies.clone();
        let before = policies.len();
        policies.retain(|p| &*p.name != name);
        if policies.len() == before {
            return Err(format!("no policy is named {name:?}"));
        }
        self.reconfigure(self.classes.clone(), policies)
    }

    /// New classes and policies without a restart: every selector is
    /// rebuilt (its standings start over, as at start), the workers take
    /// the new policy list between bursts, and the new choices are
    /// published from the current estimates at once. Flows stay on their
    /// path where the new choice keeps it.
    fn reconfigure(
        &mut self,
        classes: Vec<SlaClass>,
        policies: Vec<PolicySpec>,
    ) -> Result<(), String> {
        let mut selectors = Vec::with_capacity(self.peers.len());
        for peer in &self.peers {
            selectors.push(
                Selector::new(
                    peer.spec_peer,
                    *peer.selector.config(),
                    classes.clone(),
                    policies.clone(),
                )
                .map_err(|e| e.to_string())?,
            );
        }
        let peers = self.steer.table().peers();
        self.steer.replace(steering_table(&policies, peers));
        for (peer, selector) in self.peers.iter_mut().zip(selectors) {
            peer.selector = selector;
            peer.published = vec![None; policies.len()];
        }
        self.classes = classes;
        self.policies = policies;
        let now = self.now_ns();
        for p in 0..self.peers.len() {
            self.update_peer(p, now);
        }
        log::info!(
            "sla: now {} classes and {} policies ({})",
            self.classes.len(),
            self.policies.len(),
            self.policies
                .iter()
                .map(|p| &*p.name)
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(())
    }

    /// What the API shows of path `path` of `peer`: the window's figures
    /// and compliance per class; None if the path is not probed or not
    /// estimated yet.
    pub fn path_report(&self, peer: u32, path: u8) -> Option<PathReport> {
        let p = self.peers.iter().position(|p| p.spec_peer == peer)?;
        let &index = self.peers[p].paths.get(usize::from(path))?;
        // The estimate of the last refresh (at most 100 ms old): merging
        // the window's histograms again for every snapshot would double
        // the estimators' cost for nothing.
        let metrics = self.paths[index].metrics?;
        let compliant = self
            .classes
            .iter()
            .enumerate()
            .map(|(c, class)| {
                (
                    class.name.to_string(),
                    self.peers[p].selector.is_compliant(c, path),
                )
            })
            .collect();
        Some(PathReport { metrics, compliant })
    }

    /// Policy moves of `peer` so far (forced or not, the initial choice
    /// excluded).
    pub fn failovers(&self, peer: u32) -> u64 {
        self.peers
            .iter()
            .find(|p| p.spec_peer == peer)
            .map_or(0, |p| {
                let c = p.selector.counters();
                c.switches + c.forced_switches
            })
    }

    /// The peer's name by WireGuard peer index, for events.
    pub fn peer_name(&self, peer: u32) -> Option<&str> {
        self.peers
            .iter()
            .find(|p| p.spec_peer == peer)
            .map(|p| p.name.as_str())
    }

    /// One line per probed path: liveness, RTT, jitter, loss, samples.
    pub fn lines(&mut self) -> Vec<String> {
        let now = self.now_ns();
        let mut out = Vec::new();
        for i in 0..self.paths.len() {
            let p = &mut self.paths[i];
            // The last refresh's estimate (≤ 100 ms old), as the selector
            // saw it.
            let m = match p.metrics {
                Some(m) => m,
                None => p.estimator.metrics(now),
            };
            let c = p.sender.counters();
            let state = match (p.liveness, p.bfd_down) {
                (_, true) => "down (bfd)",
                (Liveness::Dead, _) => "down (probes)",
                (Liveness::Alive, _) => "up",
                (Liveness::Unknown, _) => "waiting for replies",
            };
            let rtt = m.rtt.map_or_else(
                || "rtt -".to_string(),
                |r| {
                    format!(
                        "rtt p50 {:.3} p95 {:.3} p99 {:.3} mean {:.3} min {:.3} max {:.3} ms",
                        r.p50_us / 1e3,
                        r.p95_us / 1e3,
                        r.p99_us / 1e3,
                        r.mean_us / 1e3,
                        r.min_us / 1e3,
                        r.max_us / 1e3
                    )
                },
            );
            let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.3}", v / 1e3));
            let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", v * 100.0));
            out.push(format!(
                "  sla {}: {state}, {rtt}, jitter fwd {} rev {} ms, ipdv p95 fwd {} rev {} ms, loss {} (fwd {} rev {}), {} replies {} lost in window; {} sent, {} replies, {} lost ({} forward), {} dropped",
                p.spec.name,
                ms(m.forward.jitter_us),
                ms(m.reverse.jitter_us),
                ms(m.forward.delay_variation.map(|d| d.p95_us)),
                ms(m.reverse.delay_variation.map(|d| d.p95_us)),
                pct(m.loss_ratio),
                pct(m.forward.loss_ratio),
                pct(m.reverse.loss_ratio),
                m.received,
                m.lost,
                c.tx,
                c.rx_ok,
                c.lost,
                c.forward_lost,
                c.rx_drops.total(),
            ));
        }
        for peer in &self.peers {
            for (policy, spec) in self.policies.iter().enumerate() {
                if let Some(d) = peer.selector.decision(policy) {
                    out.push(format!(
                        "  sla {} policy {}: {}{}",
                        peer.name,
                        spec.name,
                        d.choice,
                        if d.degraded { " (degraded)" } else { "" }
                    ));
                }
            }
        }
        out
    }

    /// The summary at exit: the paths, decisions, counters and events.
    pub fn summary(&mut self) -> Vec<String> {
        let mut out = self.lines();
        for peer in &self.peers {
            let c = peer.selector.counters();
            let r = peer.reflector.counters();
            out.push(format!(
                "  sla {}: {} switches ({} forced), {} violations, {} recoveries; reflector answered {}, dropped {}",
                peer.name,
                c.switches + c.forced_switches,
                c.forced_switches,
                c.violations,
                c.recoveries,
                r.rx_ok,
                r.rx_drops.total()
            ));
        }
        let s = &self.stats;
        out.push(format!(
            "  sla: {} probes sent, {} replies sent, {} requests and {} replies in, {} not sent, {} from unknown peers, {} malformed, {} events",
            s.tx_probes, s.tx_replies, s.rx_requests, s.rx_replies, s.tx_failed, s.unknown_peer, s.malformed, self.events.pushed()
        ));
        out
    }
}

/// The steering table for the policies, with nothing published yet.
pub fn steering_table(policies: &[PolicySpec], peers: usize) -> SteerTable {
    SteerTable::new(policies.iter().map(|p| p.matches.clone()).collect(), peers)
}

/// A selector decision as the workers take it: where new flows go, and
/// which paths existing flows may stay on (up and compliant, and the
/// pinned path itself while it is up, even degraded).
pub fn path_choice(decision: &Decision, keeps: impl Fn(u8) -> bool) -> PathChoice {
    let mut keep = 0u8;
    for path in 0..MAX_PATHS as u8 {
        if keeps(path) {
            keep |= 1 << path;
        }
    }
    match decision.choice {
        Choice::None => PathChoice {
            set: WeightedSet::EMPTY,
            keep: 0,
        },
        Choice::Pinned(p) => {
            let mut set = WeightedSet::EMPTY;
            set.set(p, u8::MAX);
            PathChoice {
                set,
                keep: keep | 1u8.checked_shl(u32::from(p)).unwrap_or(0),
            }
        }
        Choice::Spread(set) => PathChoice {
            set,
            keep: keep & set.mask(),
        },
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_choice_keeps_compliant_paths_and_its_own() {
        let d = Decision {
            choice: Choice::Pinned(1),
            degraded: true,
        };
        let c = path_choice(&d, |p| p == 2);
        assert_eq!(c.set.single(), Some(1));
        assert_eq!(c.keep, 0b110);
        let none = path_choice(
            &Decision {
                choice: Choice::None,
                degraded: true,
            },
            |_| true,
        );
        assert_eq!(none, PathChoice::default());
    }

    #[test]
    fn a_spread_choice_keeps_only_its_members() {
        let mut set = WeightedSet::EMPTY;
        set.set(0, 10);
        set.set(3, 20);
        let c = path_choice(
            &Decision {
                choice: Choice::Spread(set),
                degraded: false,
            },
            |_| true,
        );
        assert_eq!((c.set, c.keep), (set, 0b1001));
    }

    #[test]
    fn node_ids_come_from_the_public_key() {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(node_id(&key), 0x0403_0201);
    }
}
