//! The control thread's packet side: it drains every worker's punt ring and
//! hands each packet to what handles its kind — the WireGuard driver for
//! handshakes and packets waiting for a session, the neighbour driver for
//! ARP/ND and frames waiting for a next hop, the local responder for traffic
//! addressed to the node — and then lets the drivers run their timers.

use crate::bfddriver::BfdDriver;
use crate::neighbors::NeighborDriver;
use crate::sladriver::SlaDriver;
use crate::wgdriver::WgDriver;
use patronus_dataplane::buf::PacketBuf;
use patronus_dataplane::local;
use patronus_dataplane::punt::{InjectAction, Injected, PuntReason, WorkerRings};
use std::collections::HashMap;

/// Punted packets handled per poll, so one poll stays short.
const PUNTS_PER_POLL: usize = 512;

/// What the control thread counts of the packets it handles.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ControlStats {
    pub echo_replies: u64,
    /// Packets for the node that it does not answer (no services on the
    /// data ports).
    pub local_dropped: u64,
    /// Packets whose handler is not configured (WireGuard packets without
    /// a `[wireguard]` section cannot happen; counted defensively).
    pub unhandled: u64,
}

pub struct ControlPlane<'a> {
    rings: &'a [WorkerRings],
    pub wg: Option<WgDriver<'a>>,
    pub neighbors: NeighborDriver<'a>,
    pub bfd: Option<BfdDriver<'a>>,
    pub sla: Option<SlaDriver<'a>>,
    pub stats: ControlStats,
    /// Per peer path, what says it is down: [BFD, SLA probes]. A path is in
    /// use while neither does.
    path_down: HashMap<(u32, u8), [bool; 2]>,
}

/// Which detector a path state comes from.
#[derive(Debug, Clone, Copy)]
enum Detector {
    Bfd = 0,
    Probes = 1,
}

impl<'a> ControlPlane<'a> {
    pub fn new(
        rings: &'a [WorkerRings],
        wg: Option<WgDriver<'a>>,
        neighbors: NeighborDriver<'a>,
    ) -> Self {
        ControlPlane {
            rings,
            wg,
            neighbors,
            bfd: None,
            sla: None,
            stats: ControlStats::default(),
            path_down: HashMap::new(),
        }
    }

    /// One round: punted packets, then the drivers' timers.
    pub fn poll(&mut self) {
        // wireguard-go's heuristic: under load when the punt rings are an
        // eighth full.
        let queued: usize = self.rings.iter().map(|r| r.punt.len()).sum();
        let capacity: usize = self.rings.iter().map(|r| r.punt.capacity()).sum();
        let under_load = queued >= capacity / 8;
        let mut handled = 0;
        'rings: for (worker, rings) in self.rings.iter().enumerate() {
            while let Some(punted) = rings.punt.pop() {
                match punted.reason {
                    PuntReason::Local
                        if self.bfd.is_some() && BfdDriver::is_bfd(punted.mbuf.data()) =>
                    {
                        if let Some(bfd) = &mut self.bfd {
                            bfd.handle_punt(punted);
                        }
                    }
                    PuntReason::Local
                        if self.sla.is_some() && SlaDriver::is_probe(punted.mbuf.data()) =>
                    {
                        if let Some(sla) = &mut self.sla {
                            sla.handle_punt(punted);
                        }
                    }
                    PuntReason::Local => {
                        let mut mbuf = punted.mbuf;
                        if local::answer_echo(&mut mbuf) {
                            self.stats.echo_replies += 1;
                            let reply = Injected {
                                port: punted.port,
                                action: InjectAction::Transmit,
                                mbuf,
                            };
                            // A full inject ring drops the reply with it.
                            let _ = self.rings[worker].inject.push(reply);
                        } else {
                            self.stats.local_dropped += 1;
                        }
                    }
                    PuntReason::Neighbor | PuntReason::NeedsNextHop { .. } => {
                        self.neighbors.handle_punt(punted)
                    }
                    PuntReason::WgHandshake | PuntReason::WgNeedsSession { .. } => {
                        match &mut self.wg {
                            Some(wg) => wg.handle_punt(punted, under_load),
                            None => self.stats.unhandled += 1,
                        }
                    }
                }
                handled += 1;
                if handled == PUNTS_PER_POLL {
                    break 'rings;
                }
            }
        }
        self.poll_bfd();
        self.poll_sla();
        if let Some(wg) = &mut self.wg {
            wg.poll();
            for (port, hop, frame) in wg.take_unresolved() {
                self.neighbors.send_when_resolved(port, hop, frame);
            }
        }
        self.neighbors.poll();
    }

    /// BFD's timers, and what its state changes mean for the paths. Cheap
    /// when nothing is due; the control loop also calls it on its own at
    /// BFD deadlines.
    pub fn poll_bfd(&mut self) {
        let Some(bfd) = &mut self.bfd else {
            return;
        };
        bfd.poll();
        let changes = bfd.take_path_changes();
        for (port, hop, frame) in bfd.take_unresolved() {
            self.neighbors.send_when_resolved(port, hop, frame);
        }
        for change in changes {
            if let Some(sla) = &mut self.sla {
                sla.set_bfd(change.peer, change.path, change.up);
            }
            self.path_state(change.peer, change.path, Detector::Bfd, !change.up);
        }
    }

    /// SLA probes, liveness and path selection. Cheap when nothing is due.
    pub fn poll_sla(&mut self) {
        let Some(sla) = &mut self.sla else {
            return;
        };
        sla.poll();
        let changes = sla.take_liveness_changes();
        for (port, hop, frame) in sla.take_unresolved() {
            self.neighbors.send_when_resolved(port, hop, frame);
        }
        for change in changes {
            self.path_state(change.peer, change.path, Detector::Probes, !change.up);
        }
    }

    /// One detector's view of a path; the data path hears of a change in
    /// the combined state (in use while no detector says down). A BFD Up
    /// is passed on even when nothing changed: it is how a path configured
    /// down comes back.
    fn path_state(&mut self, peer: u32, path: u8, by: Detector, down: bool) {
        let flags = self.path_down.entry((peer, path)).or_default();
        let before = flags[0] || flags[1];
        flags[by as usize] = down;
        let after = flags[0] || flags[1];
        if before != after || (!after && matches!(by, Detector::Bfd)) {
            if let Some(wg) = &self.wg {
                wg.set_path_up(peer, path, !after);
            }
        }
    }

    /// Whether the data path uses path `path` of `peer`: no detector
    /// (BFD, SLA probes) says it is down.
    pub fn path_in_use(&self, peer: u32, path: u8) -> bool {
        self.path_down
            .get(&(peer, path))
            .is_none_or(|f| !(f[0] || f[1]))
    }

    /// How long until the SLA driver's next deadline.
    pub fn sla_deadline(&self) -> Option<std::time::Duration> {
        self.sla.as_ref().map(|s| s.next_deadline())
    }

    /// How long until BFD's next deadline, if it has one.
    pub fn bfd_deadline(&mut self) -> Option<std::time::Duration> {
        self.bfd.as_mut().and_then(|b| b.next_deadline())
    }
}
