//! The control thread's BFD driver: carries the sessions of [`crate::bfd`]
//! over the DPDK ports. Packets for us on UDP 3784 (single-hop, RFC 5881)
//! and 4784 (multihop, RFC 5883) arrive punted by the workers; ours leave
//! through worker 0's inject ring with TTL 255 and DSCP CS6. A peer path's
//! session going Down takes the path out of use at once (a command to the
//! peer's owner worker, applied before its next burst); Up puts it back.

use crate::bfd::frame::{parse_udp, DSCP_CS6};
use crate::bfd::packet::State;
use crate::bfd::registry::{PathId, PeerConfig, Registry, RxMeta, SessionId, TxMeta};
use crate::bfd::session::SessionEvent;
use crate::bfd::transport::{
    SessionKind, DEFAULT_MULTIHOP_MIN_TTL, MULTI_HOP_PORT, SINGLE_HOP_PORT,
};
use crate::bfdconfig::{BfdAuth, BfdConfig};
use crate::inject::{UdpHeaders, UdpInjector};
use patronus_dataplane::buf::PacketBuf;
use patronus_dataplane::dpdk::Mbuf;
use patronus_dataplane::punt::Punted;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Instant, SystemTime};

/// Lateness is not recorded this long after the control loop starts: the
/// node is still starting (the control thread was seen held up once for
/// ~0.75 s there, before any session could be Up).
const WARM_UP_NS: u64 = 2_000_000_000;
/// Deadlines served later than this are logged.
const LATE_WARN_NS: u64 = 5_000_000;
/// Events kept for the summary and the API.
const EVENTS_KEPT: usize = 256;

/// What a session watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// A configured neighbour (such as the WAN router).
    Neighbor { index: usize },
    /// Path `path` of WireGuard peer `peer`.
    PeerPath { peer: u32, path: u8 },
}

/// One recorded state change.
#[derive(Debug, Clone)]
pub struct BfdEvent {
    pub at: SystemTime,
    pub session: String,
    pub from: State,
    pub to: State,
    pub diag: String,
}

/// A peer path whose state changed: for the WireGuard driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathChange {
    pub peer: u32,
    pub path: u8,
    pub up: bool,
}

struct Binding {
    watched: Watched,
    name: String,
    port: u8,
    /// Has been Up at least once: until then the path keeps its configured
    /// state (a peer that is still starting is not a failed path).
    was_up: bool,
    /// When the session last accepted a packet (driver nanoseconds), for
    /// reporting how long a detection expiry took.
    last_rx_ns: Option<u64>,
    /// The last packet accepted while Up, and the longest silence between
    /// two such packets: how much of the detection time the path (or the
    /// peer's scheduling) used. Reset at every state change.
    up_rx_ns: Option<u64>,
    max_gap_ns: u64,
}

/// A session to create: what the driver needs besides the registry's
/// config.
pub struct SessionSpec {
    pub watched: Watched,
    pub name: String,
    pub port: u8,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub multihop: bool,
    pub passive: bool,
    pub interval_ms: u32,
    pub multiplier: u8,
    pub auth: Option<BfdAuth>,
}

/// Counters beyond the sessions' own.
#[derive(Debug, Default, Clone, Copy)]
pub struct BfdDriverStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Frames not sent: no mbuf, inject ring full, or no route.
    pub tx_failed: u64,
    pub state_changes: u64,
    /// How late deadlines were served, for the timing claim (deadlines
    /// served / worst lateness / histogram by [`LATENESS_BOUNDS_US`]).
    pub deadlines: u64,
    pub worst_lateness_ns: u64,
    pub lateness: [u64; LATENESS_BOUNDS_US.len() + 1],
}

/// Upper bounds of the lateness histogram's buckets, microseconds; the last
/// bucket holds the rest.
pub const LATENESS_BOUNDS_US: [u64; 6] = [50, 100, 250, 500, 1_000, 5_000];

impl BfdDriverStats {
    fn record_lateness(&mut self, ns: u64) {
        self.deadlines += 1;
        self.worst_lateness_ns = self.worst_lateness_ns.max(ns);
        let bucket = LATENESS_BOUNDS_US
            .iter()
            .position(|b| ns <= b * 1_000)
            .unwrap_or(LATENESS_BOUNDS_US.len());
        self.lateness[bucket] += 1;
    }
}

pub struct BfdDriver<'a> {
    registry: Registry,
    bindings: HashMap<SessionId, Binding>,
    tx: UdpInjector<'a>,
    start: Instant,
    /// The first call to [`BfdDriver::poll`]: deadlines before it, and in
    /// the [`WARM_UP_NS`] after it, fell due while the node was still
    /// starting and say nothing about steady-state timing.
    first_poll_ns: Option<u64>,
    late_warned_ns: u64,
    changes: Vec<PathChange>,
    pub events: VecDeque<BfdEvent>,
    pub stats: BfdDriverStats,
}

impl<'a> BfdDriver<'a> {
    pub fn new(specs: Vec<SessionSpec>, tx: UdpInjector<'a>) -> Result<BfdDriver<'a>, String> {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed)
            ^ u64::from(std::process::id()) << 32;
        let mut registry = Registry::new(seed);
        let mut bindings = HashMap::new();
        for spec in specs {
            let auth = match &spec.auth {
                None => None,
                Some(a) => Some(
                    crate::bfd::auth::AuthConfig::new(a.key_id, &a.secret, a.meticulous)
                        .map_err(|e| format!("bfd {}: {e:?}", spec.name))?,
                ),
            };
            let interval_us = spec.interval_ms.saturating_mul(1000);
            let id = registry
                .add(PeerConfig {
                    local: spec.local,
                    remote: spec.remote,
                    path: PathId(u32::from(spec.port)),
                    kind: if spec.multihop {
                        SessionKind::MultiHop {
                            min_ttl: DEFAULT_MULTIHOP_MIN_TTL,
                        }
                    } else {
                        SessionKind::SingleHop
                    },
                    desired_min_tx_us: interval_us,
                    required_min_rx_us: interval_us,
                    detect_mult: spec.multiplier,
                    auth,
                    passive: spec.passive,
                    admin_down: false,
                })
                .map_err(|e| format!("bfd {}: {e:?}", spec.name))?;
            log::info!(
                "bfd: session {} {} -> {} ({}, {} ms x {}{})",
                spec.name,
                spec.local,
                spec.remote,
                if spec.multihop {
                    "multihop"
                } else {
                    "single-hop"
                },
                spec.interval_ms,
                spec.multiplier,
                match &spec.auth {
                    Some(a) if a.meticulous => ", meticulous keyed SHA1",
                    Some(_) => ", keyed SHA1",
                    None => "",
                }
            );
            bindings.insert(
                id,
                Binding {
                    watched: spec.watched,
                    name: spec.name,
                    port: spec.port,
                    was_up: false,
                    last_rx_ns: None,
                    up_rx_ns: None,
                    max_gap_ns: 0,
                },
            );
        }
        Ok(BfdDriver {
            registry,
            bindings,
            tx,
            start: Instant::now(),
            first_poll_ns: None,
            late_warned_ns: 0,
            changes: Vec::new(),
            events: VecDeque::new(),
            stats: BfdDriverStats::default(),
        })
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Whether a punted frame is BFD (UDP to 3784 or 4784); such frames
    /// belong to [`BfdDriver::handle_punt`].
    pub fn is_bfd(frame: &[u8]) -> bool {
        parse_udp(frame)
            .is_some_and(|u| u.dst_port == SINGLE_HOP_PORT || u.dst_port == MULTI_HOP_PORT)
    }

    /// A BFD packet a worker punted. Sessions answer a Poll at once.
    pub fn handle_punt(&mut self, punted: Punted) {
        let now = self.now_ns();
        let frame = punted.mbuf.data();
        let Some(u) = parse_udp(frame) else {
            return;
        };
        self.stats.rx_packets += 1;
        let meta = RxMeta {
            path: PathId(u32::from(punted.port)),
            src: u.src,
            dst: u.dst,
            ttl: u.ttl,
            udp_dst_port: u.dst_port,
        };
        // Drops are counted by the registry and the session, by reason.
        if let Ok(id) = self
            .registry
            .handle_rx(&meta, &frame[u.payload.clone()], now)
        {
            let up = self
                .registry
                .session(id)
                .is_some_and(|s| s.state() == State::Up);
            if let Some(b) = self.bindings.get_mut(&id) {
                if up {
                    if let Some(last) = b.up_rx_ns {
                        b.max_gap_ns = b.max_gap_ns.max(now.saturating_sub(last));
                    }
                    b.up_rx_ns = Some(now);
                }
                b.last_rx_ns = Some(now);
            }
        }
        drop(punted);
        self.run(now);
    }

    /// Timers and transmissions that are due; call at every deadline.
    pub fn poll(&mut self) {
        let now = self.now_ns();
        self.first_poll_ns.get_or_insert(now);
        self.run(now);
    }

    /// How long until the next deadline, so the control thread never
    /// sleeps past it.
    pub fn next_deadline(&mut self) -> Option<std::time::Duration> {
        let next = self.registry.next_deadline()?;
        Some(std::time::Duration::from_nanos(
            next.saturating_sub(self.now_ns()),
        ))
    }

    fn run(&mut self, now: u64) {
        let since = self
            .first_poll_ns
            .map_or(u64::MAX, |t| t.saturating_add(WARM_UP_NS));
        if let Some(due) = self
            .registry
            .next_deadline()
            .filter(|d| *d <= now && *d >= since)
        {
            let late = now - due;
            self.stats.record_lateness(late);
            // A control core that loses the CPU for this long eats into
            // every session's detection margin: say so, once a second.
            if late > LATE_WARN_NS && now.saturating_sub(self.late_warned_ns) > 1_000_000_000 {
                self.late_warned_ns = now;
                log::warn!(
                    "bfd: timers served {:.3} ms late (is the control core shared?)",
                    late as f64 / 1e6
                );
            }
        }
        let mut frames: Vec<(TxMeta, Vec<u8>)> = Vec::new();
        let mut buf = [0u8; crate::bfd::packet::MAX_PACKET_LEN];
        self.registry.poll(now, &mut buf, |meta, bytes| {
            frames.push((*meta, bytes.to_vec()))
        });
        for (meta, payload) in frames {
            self.transmit(&meta, &payload);
        }
        while let Some((id, event)) = self.registry.poll_event() {
            self.on_event(id, event, now);
        }
    }

    fn on_event(&mut self, id: SessionId, event: SessionEvent, now: u64) {
        let Some(b) = self.bindings.get_mut(&id) else {
            return;
        };
        match event {
            SessionEvent::StateChanged { from, to, diag } => {
                self.stats.state_changes += 1;
                b.up_rx_ns = None;
                let at = SystemTime::now();
                let diag = format!("{diag:?}");
                // Wall-clock time to the microsecond, so a test can compare
                // a change with what it did to the peer; and, going Down,
                // how long the peer had been silent.
                let stamp = unix_secs(at);
                if to == State::Up {
                    log::info!("bfd: {} is up (at {stamp:.6})", b.name);
                } else {
                    let silent = b.last_rx_ns.map_or_else(
                        || "nothing received yet".to_string(),
                        |t| {
                            format!(
                                "{:.3} ms after the last packet from the peer",
                                now.saturating_sub(t) as f64 / 1e6
                            )
                        },
                    );
                    log::warn!(
                        "bfd: {} went {from:?} -> {to:?} ({diag}) at {stamp:.6}, {silent}",
                        b.name
                    );
                }
                if self.events.len() == EVENTS_KEPT {
                    self.events.pop_front();
                }
                self.events.push_back(BfdEvent {
                    at,
                    session: b.name.clone(),
                    from,
                    to,
                    diag,
                });
                if let Watched::PeerPath { peer, path } = b.watched {
                    if to == State::Up {
                        b.was_up = true;
                        self.changes.push(PathChange {
                            peer,
                            path,
                            up: true,
                        });
                    } else if b.was_up && from == State::Up {
                        self.changes.push(PathChange {
                            peer,
                            path,
                            up: false,
                        });
                    }
                }
            }
            SessionEvent::ParamsAgreed {
                desired_min_tx_us,
                required_min_rx_us,
            } => log::info!(
                "bfd: {}: poll sequence done: desired min tx {} ms, required min rx {} ms",
                b.name,
                f64::from(desired_min_tx_us) / 1000.0,
                f64::from(required_min_rx_us) / 1000.0,
            ),
        }
    }

    /// The session watching path `path` of peer `peer`, if any.
    pub fn peer_path_session(&self, peer: u32, path: u8) -> Option<&crate::bfd::session::Session> {
        let id = self
            .bindings
            .iter()
            .find(|(_, b)| b.watched == Watched::PeerPath { peer, path })
            .map(|(id, _)| *id)?;
        self.registry.session(id)
    }

    /// Peer paths whose state changed since the last call.
    pub fn take_path_changes(&mut self) -> Vec<PathChange> {
        std::mem::take(&mut self.changes)
    }

    /// Frames waiting for their next hop's MAC.
    pub fn take_unresolved(&mut self) -> Vec<(u8, IpAddr, Mbuf)> {
        self.tx.take_unresolved()
    }

    fn transmit(&mut self, meta: &TxMeta, payload: &[u8]) {
        let port = self
            .bindings
            .get(&meta.id)
            .map_or(u8::try_from(meta.path.0).unwrap_or(0), |b| b.port);
        let headers = UdpHeaders {
            src: meta.src,
            dst: meta.dst,
            ttl: meta.ttl,
            dscp: DSCP_CS6,
            src_port: meta.src_port,
            dst_port: meta.dst_port,
        };
        match self.tx.send(port, &headers, payload) {
            Ok(()) => self.stats.tx_packets += 1,
            Err(_) => self.stats.tx_failed += 1,
        }
    }

    fn sorted_ids(&self) -> Vec<SessionId> {
        let mut ids: Vec<SessionId> = self.bindings.keys().copied().collect();
        ids.sort_by(|a, b| self.bindings[a].name.cmp(&self.bindings[b].name));
        ids
    }

    /// One line per session: state, remote state, intervals, counters.
    pub fn lines(&self) -> Vec<String> {
        self.sorted_ids()
            .into_iter()
            .filter_map(|id| {
                let s = self.registry.session(id)?;
                let b = &self.bindings[&id];
                let c = s.counters();
                Some(format!(
                    "  bfd {}: {:?} (remote {:?}, diag {:?}), tx every {} ms, detect {} ms; {} rx (max gap {:.1} ms), {} tx ({} finals), {} polls done, {} dropped, {} state changes, {} detection expiries",
                    b.name,
                    s.state(),
                    s.remote_state(),
                    s.diag(),
                    s.tx_interval_us() / 1000,
                    s.detection_time_ns().map_or(0, |ns| ns / 1_000_000),
                    c.rx_ok,
                    b.max_gap_ns as f64 / 1e6,
                    c.tx,
                    c.tx_final,
                    c.polls_completed,
                    c.rx_drops.total(),
                    c.state_changes,
                    c.detection_expiries,
                ))
            })
            .collect()
    }

    /// The summary at exit: the sessions, the driver's counters and the
    /// packets dropped before reaching a session.
    pub fn summary(&self) -> Vec<String> {
        let mut out = self.lines();
        for id in self.sorted_ids() {
            let Some(s) = self.registry.session(id) else {
                continue;
            };
            let c = s.counters();
            if c.rx_drops.total() > 0 {
                out.push(format!(
                    "  bfd {}: dropped {}",
                    self.bindings[&id].name,
                    drop_detail(&c.rx_drops)
                ));
            }
        }
        for e in &self.events {
            let secs = unix_secs(e.at);
            out.push(format!(
                "  bfd event at {secs:.6}: {} {:?} -> {:?} ({})",
                e.session, e.from, e.to, e.diag
            ));
        }
        let st = &self.stats;
        let mut buckets = Vec::with_capacity(st.lateness.len());
        let mut lower = 0;
        for (i, n) in st.lateness.iter().enumerate() {
            match LATENESS_BOUNDS_US.get(i) {
                Some(b) => {
                    buckets.push(format!("{lower}-{b} us {n}"));
                    lower = *b;
                }
                None => buckets.push(format!(">{lower} us {n}")),
            }
        }
        out.push(format!(
            "  bfd timers: {} deadlines served, worst {:.3} ms late; {}",
            st.deadlines,
            st.worst_lateness_ns as f64 / 1e6,
            buckets.join(", ")
        ));
        let drops = self.registry.drops();
        out.push(format!(
            "  bfd: {} packets in, {} out, {} not sent, {} state changes, {} dropped before a session{}",
            self.stats.rx_packets,
            self.stats.tx_packets,
            self.stats.tx_failed,
            self.stats.state_changes,
            drops.total(),
            if drops.total() > 0 {
                format!(" ({})", drop_detail(drops))
            } else {
                String::new()
            }
        ));
        out
    }
}

/// Seconds since the Unix epoch, with the fraction.
fn unix_secs(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// "auth_digest 12, no_session 3": the non-zero drop reasons.
fn drop_detail(drops: &crate::bfd::counters::DropCounters) -> String {
    drops
        .iter()
        .map(|(r, n)| format!("{} {n}", r.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sessions the config asks for: every neighbour, and every path of
/// every peer with `bfd = true`.
pub fn session_specs(config: &crate::config::Config) -> Vec<SessionSpec> {
    let bfd: &BfdConfig = &config.bfd;
    let mut specs = Vec::new();
    for (index, n) in bfd.neighbors.iter().enumerate() {
        specs.push(SessionSpec {
            watched: Watched::Neighbor { index },
            name: format!("{} {}", config.ports[n.port].name, n.remote),
            port: n.port as u8,
            local: n.local,
            remote: n.remote,
            multihop: n.multihop,
            passive: n.passive,
            interval_ms: n.interval_ms,
            multiplier: n.multiplier,
            auth: n.auth.clone(),
        });
    }
    if let Some(wg) = &config.wireguard {
        for (peer, p) in wg.peers.iter().enumerate() {
            if !p.bfd {
                continue;
            }
            for (path, pc) in p.paths.iter().enumerate() {
                specs.push(SessionSpec {
                    watched: Watched::PeerPath {
                        peer: peer as u32,
                        path: path as u8,
                    },
                    name: format!(
                        "{} path {} ({})",
                        p.name,
                        path + 1,
                        config.ports[pc.port].name
                    ),
                    port: pc.port as u8,
                    local: IpAddr::V4(pc.local_ip),
                    remote: IpAddr::V4(*pc.endpoint.ip()),
                    multihop: true,
                    passive: false,
                    interval_ms: bfd.interval_ms,
                    multiplier: bfd.multiplier,
                    auth: bfd.auth.clone(),
                });
            }
        }
    }
    specs
}
