//! The control thread's ARP and IPv6 neighbour discovery (RFC 826, RFC
//! 4861): it answers for the node's addresses on each port, resolves the
//! next hops the workers ask for, holds their frames meanwhile, and
//! publishes each port's neighbour table for the workers' lock-free reads.
//! The protocol logic is the sans-I/O `patronus_dataplane::neighbor`.

use patronus_dataplane::buf::PacketBuf;
use patronus_dataplane::dpdk::{Mbuf, Mempool};
use patronus_dataplane::neighbor::{self, NeighborCache, Resolve, Update};
use patronus_dataplane::nexthop::{in_subnet, NeighborTables};
use patronus_dataplane::punt::{InjectAction, Injected, PuntReason, Punted, WorkerRings};
use patronus_dataplane::wire::ethernet::{self, Address, EtherType};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One port as the neighbour driver sees it.
pub struct PortNeighbors {
    pub mac: Address,
    pub addresses: Vec<(IpAddr, u8)>,
}

struct PortState {
    mac: Address,
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
    subnets: Vec<(IpAddr, u8)>,
    cache: NeighborCache,
    published: u64,
}

/// Counters for the summary and, later, the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NeighborStats {
    pub replies_sent: u64,
    pub probes_sent: u64,
    pub resolved: u64,
    pub failed: u64,
    pub frames_dropped: u64,
}

pub struct NeighborDriver<'a> {
    ports: Vec<PortState>,
    tables: Arc<NeighborTables>,
    rings: &'a [WorkerRings],
    pool: &'a Mempool,
    waiting: HashMap<(u8, IpAddr), VecDeque<Mbuf>>,
    start: Instant,
    pub stats: NeighborStats,
}

impl<'a> NeighborDriver<'a> {
    pub fn new(
        ports: Vec<PortNeighbors>,
        tables: Arc<NeighborTables>,
        rings: &'a [WorkerRings],
        pool: &'a Mempool,
    ) -> Self {
        let ports = ports
            .into_iter()
            .map(|p| PortState {
                mac: p.mac,
                v4: p
                    .addresses
                    .iter()
                    .filter_map(|(a, _)| {
                        if let IpAddr::V4(v) = a {
                            Some(*v)
                        } else {
                            None
                        }
                    })
                    .collect(),
                v6: p
                    .addresses
                    .iter()
                    .filter_map(|(a, _)| {
                        if let IpAddr::V6(v) = a {
                            Some(*v)
                        } else {
                            None
                        }
                    })
                    .collect(),
                subnets: p.addresses,
                cache: NeighborCache::default(),
                published: 0,
            })
            .collect();
        NeighborDriver {
            ports,
            tables,
            rings,
            pool,
            waiting: HashMap::new(),
            start: Instant::now(),
            stats: NeighborStats::default(),
        }
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// An ARP/ND frame, or a frame waiting for its next hop.
    pub fn handle_punt(&mut self, punted: Punted) {
        let now = self.now();
        match punted.reason {
            PuntReason::Neighbor => self.handle_neighbor_frame(punted.port, &punted.mbuf, now),
            PuntReason::NeedsNextHop { port, hop } => {
                self.send_when_resolved_at(port, hop, punted.mbuf, now)
            }
            _ => {}
        }
    }

    fn handle_neighbor_frame(&mut self, port: u8, mbuf: &Mbuf, now: Duration) {
        let Some(p) = self.ports.get(usize::from(port)) else {
            return;
        };
        let frame = mbuf.data();
        let ethertype = ethernet::Frame::new_checked(frame)
            .map(|f| f.ethertype())
            .ok();
        let (learn, reply): (Option<neighbor::Learn>, Option<Vec<u8>>) = match ethertype {
            Some(EtherType::Arp) => match neighbor::handle_arp(frame, p.mac, &p.v4) {
                Ok(o) => (o.learn, o.reply.map(|r| r.to_vec())),
                Err(_) => return,
            },
            Some(EtherType::Ipv6) => match neighbor::handle_nd(frame, p.mac, &p.v6) {
                Ok(o) => (o.learn, o.reply.map(|r| r.to_vec())),
                Err(_) => return,
            },
            _ => return,
        };
        if let Some(reply) = reply {
            self.stats.replies_sent += 1;
            self.send_frame(port, &reply);
        }
        // Only neighbours on one of our subnets are worth remembering.
        if let Some(learn) = learn.filter(|l| p.subnets.iter().any(|s| in_subnet(l.ip, *s))) {
            let p = &mut self.ports[usize::from(port)];
            if let Update::Resolved { mac, .. } = p.cache.apply(&learn, now) {
                self.stats.resolved += 1;
                self.flush(port, learn.ip, mac);
            }
        }
    }

    /// Sends a finished frame out of `port` once `hop` is resolved.
    pub fn send_when_resolved(&mut self, port: u8, hop: IpAddr, mbuf: Mbuf) {
        let now = self.now();
        self.send_when_resolved_at(port, hop, mbuf, now);
    }

    fn send_when_resolved_at(&mut self, port: u8, hop: IpAddr, mut mbuf: Mbuf, now: Duration) {
        let Some(p) = self.ports.get_mut(usize::from(port)) else {
            return;
        };
        match p.cache.resolve(hop, now) {
            Resolve::Known(mac) => {
                // The worker's copy was older than ours.
                ethernet::Frame::new_unchecked(mbuf.data_mut()).set_dst_addr(mac);
                self.inject(port, mbuf);
            }
            Resolve::Queue { send_probe } => {
                self.waiting.entry((port, hop)).or_default().push_back(mbuf);
                if send_probe {
                    self.probe(port, hop, None);
                }
            }
            Resolve::Drop => self.stats.frames_dropped += 1,
        }
    }

    /// Retransmissions, expiries and publication; call every millisecond.
    pub fn poll(&mut self) {
        let now = self.now();
        for port in 0..self.ports.len() {
            let actions = self.ports[port].cache.poll(now);
            for action in actions {
                match action {
                    neighbor::Action::SendProbe { ip, unicast_to } => {
                        self.probe(port as u8, ip, unicast_to)
                    }
                    neighbor::Action::Failed { ip, .. } => {
                        self.stats.failed += 1;
                        if let Some(frames) = self.waiting.remove(&(port as u8, ip)) {
                            self.stats.frames_dropped += frames.len() as u64;
                            log::debug!(
                                "neighbour {ip} on port {port} did not answer; {} frames dropped",
                                frames.len()
                            );
                        }
                    }
                }
            }
            let p = &mut self.ports[port];
            if p.cache.version() != p.published {
                p.published = p.cache.version();
                self.tables.publish(port as u8, p.cache.snapshot());
            }
        }
    }

    fn flush(&mut self, port: u8, ip: IpAddr, mac: Address) {
        if let Some(frames) = self.waiting.remove(&(port, ip)) {
            for mut mbuf in frames {
                ethernet::Frame::new_unchecked(mbuf.data_mut()).set_dst_addr(mac);
                self.inject(port, mbuf);
            }
        }
    }

    fn probe(&mut self, port: u8, target: IpAddr, unicast_to: Option<Address>) {
        let Some(p) = self.ports.get(usize::from(port)) else {
            return;
        };
        let frame: Vec<u8> = match target {
            IpAddr::V4(t) => {
                let Some(&ours) = p.v4.first() else { return };
                match unicast_to {
                    Some(mac) => neighbor::arp_request_unicast(p.mac, ours, t, mac).to_vec(),
                    None => neighbor::arp_request(p.mac, ours, t).to_vec(),
                }
            }
            IpAddr::V6(t) => {
                let Some(&ours) = p.v6.first() else { return };
                match unicast_to {
                    Some(mac) => {
                        neighbor::neighbor_solicitation_unicast(p.mac, ours, t, mac).to_vec()
                    }
                    None => neighbor::neighbor_solicitation(p.mac, ours, t).to_vec(),
                }
            }
        };
        self.stats.probes_sent += 1;
        self.send_frame(port, &frame);
    }

    fn send_frame(&self, port: u8, bytes: &[u8]) {
        let Some(mut m) = self.pool.alloc() else {
            return;
        };
        if m.fill_from(bytes).is_ok() {
            self.inject(port, m);
        }
    }

    fn inject(&self, port: u8, mbuf: Mbuf) {
        let injected = Injected {
            port,
            action: InjectAction::Transmit,
            mbuf,
        };
        // A full inject ring drops the frame with it.
        let _ = self.rings[0].inject.push(injected);
    }
}
