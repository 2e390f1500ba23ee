//! The per-packet verdict: the connection table first, the zone rules for
//! what it does not know.
//!
//! - A packet of a tracked flow costs one table lookup (its state moved
//!   on, its zones checked against the flow's), unless the flow waits for
//!   its application: then the rules run once more when the DPI has
//!   decided.
//! - A packet that could start a flow (a TCP SYN, or an ACK with pickup
//!   on; a UDP datagram; an echo request) is matched against its zone
//!   pair's rules and, if allowed, tracked: one lookup, the rule scan and
//!   an insert.
//! - An ICMP error is allowed only if the packet it quotes belongs to a
//!   tracked flow, was sent by the error's destination, and the error
//!   travels the way the flow's replies to it would (RFC 5927's advice
//!   against blind ICMP attacks, as nf_conntrack's "related"). It neither
//!   creates nor refreshes state.
//! - Other ICMP messages are judged by the rules alone, untracked.
//!
//! Every drop is counted by reason in [`FwStats`].

use super::conntrack::{ConnSlot, Conntrack, ConntrackConfig, Event, Lookup};
use super::meta::{MetaError, PacketMeta, L4};
use super::rules::{Action, FlowFacts, RuleSet};
use super::tcp_state::Segment;
use super::{Allowed, Dir, FwDrop, FwStats, Verdict, Zone};
use crate::dpi::flowtable::FlowTableError;
use crate::dpi::key::FlowKey;
use crate::dpi::types::Classification;

/// Construction settings: the table and the compiled rules.
#[derive(Debug, Clone)]
pub struct FirewallConfig {
    pub conntrack: ConntrackConfig,
    pub rules: RuleSet,
}

/// A worker's firewall: its connection table, the rules and the counters.
#[derive(Debug)]
pub struct Firewall<V: ConnSlot = super::conntrack::Conn> {
    ct: Conntrack<V>,
    rules: RuleSet,
    stats: FwStats,
}

impl<V: ConnSlot> Firewall<V> {
    /// Allocates the whole table here.
    pub fn new(config: FirewallConfig) -> Result<Firewall<V>, FlowTableError> {
        Ok(Firewall {
            ct: Conntrack::new(&config.conntrack)?,
            rules: config.rules,
            stats: FwStats::default(),
        })
    }

    /// The verdict on `pkt`, travelling from zone `from` to zone `to` at
    /// `now`; `app` is its flow's classification once the DPI has decided
    /// one (None before).
    pub fn check(
        &mut self,
        pkt: &PacketMeta,
        from: Zone,
        to: Zone,
        app: Option<&Classification>,
        now: u64,
    ) -> Verdict {
        let v = self.judge(pkt, (from, to), app, now);
        match v {
            Verdict::Drop(r) => self.stats.drops[r as usize] += 1,
            Verdict::Allow(Allowed::New { .. }) => self.stats.new_flows += 1,
            Verdict::Allow(Allowed::Established { .. }) => self.stats.established += 1,
            Verdict::Allow(Allowed::Related) => self.stats.related += 1,
            Verdict::Allow(Allowed::Stateless) => self.stats.stateless += 1,
        }
        v
    }

    /// Counts and drops a packet [`PacketMeta`] could not be built for.
    pub fn drop_unparsed(&mut self, e: MetaError) -> Verdict {
        let r = e.drop_reason();
        self.stats.drops[r as usize] += 1;
        Verdict::Drop(r)
    }

    fn judge(
        &mut self,
        pkt: &PacketMeta,
        zones: (Zone, Zone),
        app: Option<&Classification>,
        now: u64,
    ) -> Verdict {
        let (sport, dport, ev, icmp_type) = match pkt.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => (sport, dport, Event::Tcp(Segment::from_flags(flags)), None),
            L4::Ports { sport, dport } => (sport, dport, Event::Datagram, None),
            L4::Other => (0, 0, Event::Datagram, None),
            L4::Echo { request, id, ty } => (
                id,
                id,
                if request {
                    Event::EchoRequest
                } else {
                    Event::EchoReply
                },
                Some(ty),
            ),
            L4::IcmpError { quoted, .. } => return self.related(pkt, &quoted, zones, now),
            L4::IcmpOther { ty, .. } => {
                let facts = FlowFacts {
                    src: pkt.src,
                    dst: pkt.dst,
                    proto: pkt.proto,
                    dport: 0,
                    icmp_type: Some(ty),
                };
                let d = self.rules.decide(zones.0, zones.1, &facts, app);
                return match (d.action, d.rule) {
                    (Action::Allow, _) => Verdict::Allow(Allowed::Stateless),
                    (Action::Deny, Some(_)) => Verdict::Drop(FwDrop::RuleDeny),
                    (Action::Deny, None) => Verdict::Drop(FwDrop::DefaultDeny),
                };
            }
        };
        let (key, side) = FlowKey::new(pkt.proto, pkt.src, sport, pkt.dst, dport);
        let hash = key.hash64();
        match self.ct.update(&key, hash, side, zones, ev, now) {
            Lookup::Tracked {
                dir,
                state,
                origin,
                recheck,
            } => {
                if recheck {
                    if let Some(app) = app {
                        let (src, _) = key.endpoint(origin);
                        let (dst, dport) = key.endpoint(origin.other());
                        let (f, t) = match dir {
                            Dir::Orig => zones,
                            Dir::Reply => (zones.1, zones.0),
                        };
                        let facts = FlowFacts {
                            src,
                            dst,
                            proto: pkt.proto,
                            dport: if icmp_type.is_some() { 0 } else { dport },
                            icmp_type: icmp_type.map(|_| echo_request_type(pkt)),
                        };
                        let deny =
                            self.rules.decide(f, t, &facts, Some(app)).action == Action::Deny;
                        self.ct.settle(&key, hash, deny, now);
                        if deny {
                            return Verdict::Drop(FwDrop::AppDeny);
                        }
                    }
                }
                return Verdict::Allow(Allowed::Established { dir, state });
            }
            Lookup::Refused(r) => return Verdict::Drop(r),
            Lookup::Untracked => {}
        }
        let state = match self.ct.first_state(ev) {
            Ok(s) => s,
            Err(r) => return Verdict::Drop(r),
        };
        let facts = FlowFacts {
            src: pkt.src,
            dst: pkt.dst,
            proto: pkt.proto,
            dport: if icmp_type.is_some() { 0 } else { dport },
            icmp_type,
        };
        let d = self.rules.decide(zones.0, zones.1, &facts, app);
        match (d.action, d.rule) {
            (Action::Deny, Some(_)) => return Verdict::Drop(FwDrop::RuleDeny),
            (Action::Deny, None) => return Verdict::Drop(FwDrop::DefaultDeny),
            (Action::Allow, _) => {}
        }
        match self
            .ct
            .insert(&key, hash, side, zones, state, d.provisional, now)
        {
            Ok(()) => Verdict::Allow(Allowed::New { state }),
            Err(r) => Verdict::Drop(r),
        }
    }

    /// An ICMP error about `quoted`: allowed if `quoted` belongs to a live
    /// flow, was sent by the error's destination, and the error travels
    /// the way replies to it would.
    fn related(
        &mut self,
        pkt: &PacketMeta,
        quoted: &super::meta::Quoted,
        zones: (Zone, Zone),
        now: u64,
    ) -> Verdict {
        if quoted.src != pkt.dst {
            return Verdict::Drop(FwDrop::IcmpErrorNoFlow);
        }
        let (key, side) = FlowKey::new(
            quoted.proto,
            quoted.src,
            quoted.sport,
            quoted.dst,
            quoted.dport,
        );
        let Some(conn) = self.ct.get(&key, key.hash64(), now) else {
            return Verdict::Drop(FwDrop::IcmpErrorNoFlow);
        };
        let back = match conn.dir_of(side) {
            Dir::Orig => Dir::Reply,
            Dir::Reply => Dir::Orig,
        };
        if conn.zones_of(back) != zones || conn.is_blocked() {
            return Verdict::Drop(FwDrop::IcmpErrorNoFlow);
        }
        Verdict::Allow(Allowed::Related)
    }

    /// Sweeps idle connections from the next `budget` buckets (ten flows
    /// each); call it a few buckets per loop iteration.
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let n = self.ct.expire(now, budget);
        self.stats.expired += n as u64;
        n
    }

    pub fn stats(&self) -> FwStats {
        let mut s = self.stats;
        s.embryonic_evicted = self.ct.stats().embryonic_evicted;
        s
    }

    pub fn conntrack(&self) -> &Conntrack<V> {
        &self.ct
    }

    pub fn conntrack_mut(&mut self) -> &mut Conntrack<V> {
        &mut self.ct
    }

    /// Replaces the rules; tracked flows keep the verdict they had.
    pub fn set_rules(&mut self, rules: RuleSet) {
        self.rules = rules;
    }
}

/// The echo request type of the packet's family (the type an echo flow's
/// original direction carries, which rules match on).
fn echo_request_type(pkt: &PacketMeta) -> u8 {
    if pkt.src.is_ipv4() {
        8
    } else {
        128
    }
}
