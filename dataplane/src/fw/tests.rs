//! Firewall behaviour on simulated time: one tick per millisecond, so the
//! table's stamps are exact.

use super::conntrack::{Conn, ConntrackConfig};
use super::meta::{MetaError, Quoted, L4};
use super::rules::{
    Action, AppMatch, PortRange, Prefix, RuleConfig, RuleSet, RulesConfig, ZonePairConfig,
};
use super::tcp_state::TcpState;
use super::*;
use crate::dpi::key::FlowKey;
use crate::dpi::types::{AppId, Category, Classification, Confidence};
use std::net::IpAddr;
use Zone::{Lan, Tunnel, Wan};

const SEC: u64 = 1000;
const SYN: u8 = 0x02;
const SYNACK: u8 = 0x12;
const ACK: u8 = 0x10;
const PSHACK: u8 = 0x18;
const FINACK: u8 = 0x11;
const RST: u8 = 0x04;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn fw_with(capacity: usize, rules: RuleSet, tweak: impl FnOnce(&mut ConntrackConfig)) -> Firewall {
    let mut conntrack = ConntrackConfig::new(capacity, SEC);
    tweak(&mut conntrack);
    Firewall::new(FirewallConfig { conntrack, rules }).unwrap()
}

fn fw() -> Firewall {
    fw_with(1000, RuleSet::default(), |_| {})
}

fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> PacketMeta {
    PacketMeta {
        src: ip(src),
        dst: ip(dst),
        proto: 6,
        l4: L4::Tcp {
            sport,
            dport,
            flags,
        },
    }
}

fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> PacketMeta {
    PacketMeta {
        src: ip(src),
        dst: ip(dst),
        proto: 17,
        l4: L4::Ports { sport, dport },
    }
}

fn echo(src: &str, dst: &str, request: bool, id: u16) -> PacketMeta {
    let v6 = ip(src).is_ipv6();
    let ty = match (v6, request) {
        (false, true) => 8,
        (false, false) => 0,
        (true, true) => 128,
        (true, false) => 129,
    };
    PacketMeta {
        src: ip(src),
        dst: ip(dst),
        proto: if v6 { 58 } else { 1 },
        l4: L4::Echo { request, id, ty },
    }
}

/// An ICMP error from `router` to `to` about `quoted`.
fn icmp_error(router: &str, to: &str, quoted: Quoted) -> PacketMeta {
    let v6 = ip(router).is_ipv6();
    PacketMeta {
        src: ip(router),
        dst: ip(to),
        proto: if v6 { 58 } else { 1 },
        l4: L4::IcmpError {
            ty: if v6 { 1 } else { 3 },
            code: 3,
            quoted,
        },
    }
}

fn quote(proto: u8, src: &str, sport: u16, dst: &str, dport: u16) -> Quoted {
    Quoted {
        src: ip(src),
        dst: ip(dst),
        proto,
        sport,
        dport,
    }
}

fn allowed(v: Verdict) -> Allowed {
    match v {
        Verdict::Allow(a) => a,
        Verdict::Drop(r) => panic!("dropped: {r:?}"),
    }
}

fn dropped(v: Verdict) -> FwDrop {
    match v {
        Verdict::Drop(r) => r,
        Verdict::Allow(a) => panic!("allowed: {a:?}"),
    }
}

fn tcp_state_of(f: &mut Firewall, p: &PacketMeta, now: u64) -> Option<State> {
    let L4::Tcp { sport, dport, .. } = p.l4 else {
        panic!()
    };
    let (k, _) = FlowKey::new(6, p.src, sport, p.dst, dport);
    f.conntrack_mut()
        .get(&k, k.hash64(), now)
        .and_then(|c: Conn| c.state())
}

const H: &str = "10.0.0.5";
const S: &str = "198.51.100.7";

/// A LAN host's connection to a WAN server, handshake done at `t`.
fn establish(f: &mut Firewall, sport: u16, t: u64) {
    allowed(f.check(&tcp(H, sport, S, 443, SYN), Lan, Wan, None, t));
    allowed(f.check(&tcp(S, 443, H, sport, SYNACK), Wan, Lan, None, t));
    allowed(f.check(&tcp(H, sport, S, 443, ACK), Lan, Wan, None, t));
}

#[test]
fn tcp_handshake_data_and_teardown_are_tracked_both_ways() {
    let mut f = fw();
    let out = |fl| tcp(H, 40000, S, 443, fl);
    let back = |fl| tcp(S, 443, H, 40000, fl);
    let st = |t| State::Tcp(t);
    assert_eq!(
        allowed(f.check(&out(SYN), Lan, Wan, None, 0)),
        Allowed::New {
            state: st(TcpState::SynSent)
        }
    );
    let steps = [
        (back(SYNACK), Dir::Reply, TcpState::SynRecv),
        (out(ACK), Dir::Orig, TcpState::Established),
        (out(PSHACK), Dir::Orig, TcpState::Established),
        (back(PSHACK), Dir::Reply, TcpState::Established),
        (back(FINACK), Dir::Reply, TcpState::FinWait),
        (out(ACK), Dir::Orig, TcpState::CloseWait),
        (out(FINACK), Dir::Orig, TcpState::LastAck),
        (back(ACK), Dir::Reply, TcpState::TimeWait),
    ];
    for (n, (p, dir, state)) in steps.iter().enumerate() {
        let (from, to) = if *dir == Dir::Orig {
            (Lan, Wan)
        } else {
            (Wan, Lan)
        };
        assert_eq!(
            allowed(f.check(p, from, to, None, n as u64 + 1)),
            Allowed::Established {
                dir: *dir,
                state: st(*state)
            },
            "step {n}"
        );
    }
    let s = f.stats();
    assert_eq!((s.new_flows, s.established), (1, 8));
    assert_eq!(f.conntrack().len(), 1);
    assert_eq!(f.conntrack().embryonic(), 0);
    // TIME_WAIT lasts 120 s, then the entry is swept.
    // The last segment was at 8.
    assert_eq!(f.expire(8 + 120 * SEC, 1000), 0);
    assert_eq!(f.expire(9 + 120 * SEC, 1000), 1);
    assert!(f.conntrack().is_empty());
}

#[test]
fn rst_closes_and_later_segments_are_dropped() {
    let mut f = fw();
    establish(&mut f, 40001, 0);
    let rst = tcp(S, 443, H, 40001, RST);
    assert!(f.check(&rst, Wan, Lan, None, 1).is_allow());
    assert_eq!(
        tcp_state_of(&mut f, &rst, 1),
        Some(State::Tcp(TcpState::Close))
    );
    let data = tcp(H, 40001, S, 443, PSHACK);
    assert_eq!(
        dropped(f.check(&data, Lan, Wan, None, 2)),
        FwDrop::TcpUnexpected
    );
    // CLOSE lasts 10 s; after it the same ACK has no connection at all.
    assert_eq!(
        dropped(f.check(&data, Lan, Wan, None, 2 + 11 * SEC)),
        FwDrop::TcpNotEstablished
    );
    assert_eq!(f.stats().dropped(FwDrop::TcpUnexpected), 1);
}

#[test]
fn a_syn_reopens_a_finished_connection_through_the_rules() {
    let mut f = fw();
    establish(&mut f, 40002, 0);
    allowed(f.check(&tcp(H, 40002, S, 443, RST), Lan, Wan, None, 1));
    let syn = tcp(H, 40002, S, 443, SYN);
    assert_eq!(
        allowed(f.check(&syn, Lan, Wan, None, 2)),
        Allowed::New {
            state: State::Tcp(TcpState::SynSent)
        }
    );
    assert_eq!(f.conntrack().embryonic(), 1);
    // The server may not reopen it towards the LAN: wan -> lan denies.
    allowed(f.check(&tcp(H, 40002, S, 443, RST), Lan, Wan, None, 3));
    assert_eq!(f.conntrack().embryonic(), 0);
    let rev = tcp(S, 443, H, 40002, SYN);
    assert_eq!(
        dropped(f.check(&rev, Wan, Lan, None, 4)),
        FwDrop::DefaultDeny
    );
}

#[test]
fn a_synack_without_a_syn_is_dropped_and_counted() {
    let mut f = fw();
    let synack = tcp(S, 443, H, 40003, SYNACK);
    assert_eq!(
        dropped(f.check(&synack, Wan, Lan, None, 0)),
        FwDrop::TcpSynAckWithoutSyn
    );
    // With a SYN tracked, a SYN-ACK from the side that sent it is no better.
    allowed(f.check(&tcp(H, 40003, S, 443, SYN), Lan, Wan, None, 1));
    let own = tcp(H, 40003, S, 443, SYNACK);
    assert_eq!(
        dropped(f.check(&own, Lan, Wan, None, 2)),
        FwDrop::TcpSynAckWithoutSyn
    );
    assert_eq!(f.stats().dropped(FwDrop::TcpSynAckWithoutSyn), 2);
    assert_eq!(
        tcp_state_of(&mut f, &own, 2),
        Some(State::Tcp(TcpState::SynSent))
    );
}

#[test]
fn mid_stream_data_is_dropped_unless_pickup_is_on() {
    let data = tcp(H, 40004, S, 443, PSHACK);
    let mut f = fw();
    assert_eq!(
        dropped(f.check(&data, Lan, Wan, None, 0)),
        FwDrop::TcpNotEstablished
    );
    assert!(f.conntrack().is_empty());
    // Data before the handshake completes is refused too.
    allowed(f.check(&tcp(H, 40004, S, 443, SYN), Lan, Wan, None, 1));
    assert_eq!(
        dropped(f.check(&data, Lan, Wan, None, 2)),
        FwDrop::TcpNotEstablished
    );
    assert_eq!(f.stats().dropped(FwDrop::TcpNotEstablished), 2);

    let mut f = fw_with(1000, RuleSet::default(), |c| c.tcp_pickup = true);
    assert_eq!(
        allowed(f.check(&data, Lan, Wan, None, 0)),
        Allowed::New {
            state: State::Tcp(TcpState::Established)
        }
    );
    assert!(f
        .check(&tcp(S, 443, H, 40004, ACK), Wan, Lan, None, 1)
        .is_allow());
    // Pickup still goes through the rules: from the WAN it is denied.
    let wan_data = tcp(S, 443, H, 40005, PSHACK);
    assert_eq!(
        dropped(f.check(&wan_data, Wan, Lan, None, 2)),
        FwDrop::DefaultDeny
    );
}

#[test]
fn invalid_segments_neither_change_state_nor_refresh_the_timer() {
    let mut f = fw();
    let syn = tcp(H, 40006, S, 443, SYN);
    allowed(f.check(&syn, Lan, Wan, None, 0));
    for t in [SEC, 60 * SEC, 119 * SEC] {
        dropped(f.check(&tcp(H, 40006, S, 443, ACK), Lan, Wan, None, t));
        dropped(f.check(&tcp(H, 40006, S, 443, 0x03), Lan, Wan, None, t));
    }
    assert_eq!(f.stats().dropped(FwDrop::TcpFlags), 3);
    assert_eq!(
        tcp_state_of(&mut f, &syn, 119 * SEC),
        Some(State::Tcp(TcpState::SynSent))
    );
    // SYN_SENT times out 120 s after the SYN, not after the junk.
    let synack = tcp(S, 443, H, 40006, SYNACK);
    assert_eq!(
        dropped(f.check(&synack, Wan, Lan, None, 120 * SEC + 1)),
        FwDrop::TcpSynAckWithoutSyn
    );
}

#[test]
fn udp_replies_are_allowed_only_after_an_outbound_packet() {
    let mut f = fw();
    let reply = udp(S, 53, H, 5353);
    assert_eq!(
        dropped(f.check(&reply, Wan, Lan, None, 0)),
        FwDrop::DefaultDeny
    );
    let query = udp(H, 5353, S, 53);
    assert_eq!(
        allowed(f.check(&query, Lan, Wan, None, 1)),
        Allowed::New {
            state: State::Unreplied
        }
    );
    assert_eq!(
        allowed(f.check(&reply, Wan, Lan, None, 2)),
        Allowed::Established {
            dir: Dir::Reply,
            state: State::Replied
        }
    );
    assert_eq!(
        allowed(f.check(&query, Lan, Wan, None, 3)),
        Allowed::Established {
            dir: Dir::Orig,
            state: State::Assured
        }
    );
    // Another port of the same host is another flow.
    assert_eq!(
        dropped(f.check(&udp(S, 53, H, 5354), Wan, Lan, None, 4)),
        FwDrop::DefaultDeny
    );
    assert_eq!(f.stats().dropped(FwDrop::DefaultDeny), 2);
}

#[test]
fn wan_originated_new_flows_are_denied_by_default_and_counted() {
    let mut f = fw();
    let lan = "10.0.0.9";
    for to in [Lan, Tunnel] {
        assert_eq!(
            dropped(f.check(&tcp(S, 1234, lan, 22, SYN), Wan, to, None, 0)),
            FwDrop::DefaultDeny
        );
        assert_eq!(
            dropped(f.check(&udp(S, 1234, lan, 161), Wan, to, None, 0)),
            FwDrop::DefaultDeny
        );
        assert_eq!(
            dropped(f.check(&echo(S, lan, true, 7), Wan, to, None, 0)),
            FwDrop::DefaultDeny
        );
    }
    assert_eq!(f.stats().dropped(FwDrop::DefaultDeny), 6);
    assert!(f.conntrack().is_empty(), "a denied flow takes no slot");
    // Including a remote site's source address: zones decide, not addresses.
    assert_eq!(
        dropped(f.check(&udp("10.1.0.5", 9, lan, 9), Wan, Lan, None, 0)),
        FwDrop::DefaultDeny
    );
}

/// `"10.0.0.0/8"` as a [`Prefix`] (shared with `rules`' own tests).
pub(super) fn prefix(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix {
        addr: ip(a),
        len: l.parse().unwrap(),
    }
}

/// Rules for one zone pair, compiled (shared with `rules`' own tests).
pub(super) fn one_pair(
    from: Zone,
    to: Zone,
    default: Option<Action>,
    rules: Vec<RuleConfig>,
) -> RuleSet {
    RuleSet::compile(&RulesConfig {
        pairs: vec![ZonePairConfig {
            from,
            to,
            default,
            rules,
        }],
    })
    .unwrap()
}

#[test]
fn an_allow_rule_by_prefix_and_port_admits_wan_flows() {
    let mut r = RuleConfig::any(Action::Allow);
    r.dst = Some(prefix("10.0.0.10/32"));
    r.proto = Some(6);
    r.dst_ports = Some(PortRange {
        start: 443,
        end: 443,
    });
    let mut deny_bad = RuleConfig::any(Action::Deny);
    deny_bad.src = Some(prefix("203.0.113.0/24"));
    let mut f = fw_with(1000, one_pair(Wan, Lan, None, vec![deny_bad, r]), |_| {});
    let syn = tcp(S, 50000, "10.0.0.10", 443, SYN);
    assert!(f.check(&syn, Wan, Lan, None, 0).is_allow());
    assert!(f
        .check(&tcp("10.0.0.10", 443, S, 50000, SYNACK), Lan, Wan, None, 1)
        .is_allow());
    assert_eq!(
        dropped(f.check(&tcp(S, 50000, "10.0.0.10", 22, SYN), Wan, Lan, None, 2)),
        FwDrop::DefaultDeny
    );
    assert_eq!(
        dropped(f.check(&tcp(S, 50000, "10.0.0.11", 443, SYN), Wan, Lan, None, 2)),
        FwDrop::DefaultDeny
    );
    assert_eq!(
        dropped(f.check(
            &tcp("203.0.113.9", 5, "10.0.0.10", 443, SYN),
            Wan,
            Lan,
            None,
            2
        )),
        FwDrop::RuleDeny
    );
    // The rule is wan -> lan only.
    assert_eq!(
        dropped(f.check(&tcp(S, 50001, "10.0.0.10", 443, SYN), Wan, Tunnel, None, 2)),
        FwDrop::DefaultDeny
    );
}

/// A DPI classification of `app` in `category` (shared with `rules`' own
/// tests).
pub(super) fn classified(app: u16, category: Category) -> Classification {
    Classification {
        app: AppId(app),
        category,
        confidence: Confidence::Dpi,
        ..Default::default()
    }
}

#[test]
fn a_category_rule_blocks_a_flow_once_it_is_classified() {
    let mut deny = RuleConfig::any(Action::Deny);
    deny.app = Some(AppMatch::Category(Category::Gaming));
    let mut f = fw_with(1000, one_pair(Lan, Wan, None, vec![deny]), |_| {});
    let game = udp(H, 3074, S, 3074);
    let web = udp(H, 3075, S, 443);
    for p in [&game, &web] {
        assert!(
            f.check(p, Lan, Wan, None, 0).is_allow(),
            "unknown yet: provisionally allowed"
        );
    }
    assert!(f
        .check(&udp(S, 3074, H, 3074), Wan, Lan, None, 1)
        .is_allow());
    let gaming = classified(40, Category::Gaming);
    assert_eq!(
        dropped(f.check(&game, Lan, Wan, Some(&gaming), 2)),
        FwDrop::AppDeny
    );
    // Blocked for good, both ways, whatever the caller passes.
    assert_eq!(dropped(f.check(&game, Lan, Wan, None, 3)), FwDrop::AppDeny);
    assert_eq!(
        dropped(f.check(&udp(S, 3074, H, 3074), Wan, Lan, None, 3)),
        FwDrop::AppDeny
    );
    let webc = classified(3, Category::Web);
    assert!(f.check(&web, Lan, Wan, Some(&webc), 4).is_allow());
    assert!(
        f.check(&web, Lan, Wan, Some(&gaming), 5).is_allow(),
        "settled: not checked again"
    );
    assert_eq!(f.stats().dropped(FwDrop::AppDeny), 3);
}

#[test]
fn an_app_allow_rule_admits_a_wan_flow_provisionally_under_default_deny() {
    let mut allow = RuleConfig::any(Action::Allow);
    allow.app = Some(AppMatch::App(AppId(9)));
    allow.proto = Some(17);
    let mut f = fw_with(1000, one_pair(Wan, Lan, None, vec![allow]), |_| {});
    let p = udp(S, 5060, H, 5060);
    assert!(f.check(&p, Wan, Lan, None, 0).is_allow());
    assert!(f
        .check(&p, Wan, Lan, Some(&classified(9, Category::VoIP)), 1)
        .is_allow());
    let q = udp(S, 5061, H, 5061);
    assert!(f.check(&q, Wan, Lan, None, 2).is_allow());
    assert_eq!(
        dropped(f.check(&q, Wan, Lan, Some(&classified(8, Category::VoIP)), 3)),
        FwDrop::AppDeny
    );
    // TCP is not covered by the app rule: a final default deny.
    assert_eq!(
        dropped(f.check(&tcp(S, 1, H, 2, SYN), Wan, Lan, None, 4)),
        FwDrop::DefaultDeny
    );
}

#[test]
fn icmp_errors_are_allowed_only_for_a_tracked_flow() {
    let mut f = fw();
    allowed(f.check(&udp(H, 33434, S, 33435), Lan, Wan, None, 0));
    let about = quote(17, H, 33434, S, 33435);
    let router = "192.0.2.254";
    assert_eq!(
        allowed(f.check(&icmp_error(router, H, about), Wan, Lan, None, 1)),
        Allowed::Related
    );
    // Spoofed: a tuple nobody tracks.
    let random = quote(17, H, 1111, "203.0.113.1", 2222);
    assert_eq!(
        dropped(f.check(&icmp_error(router, H, random), Wan, Lan, None, 1)),
        FwDrop::IcmpErrorNoFlow
    );
    // To someone other than the quoted packet's sender.
    assert_eq!(
        dropped(f.check(&icmp_error(router, "10.0.0.6", about), Wan, Lan, None, 1)),
        FwDrop::IcmpErrorNoFlow
    );
    // About a packet the destination did not send.
    let not_hers = quote(17, S, 33435, H, 33434);
    assert_eq!(
        dropped(f.check(&icmp_error(router, H, not_hers), Wan, Lan, None, 1)),
        FwDrop::IcmpErrorNoFlow
    );
    // About the server's packet to H, from a LAN router back to the
    // server: related, but only from the LAN side.
    let to_server = icmp_error("10.0.0.1", S, not_hers);
    assert_eq!(
        allowed(f.check(&to_server, Lan, Wan, None, 1)),
        Allowed::Related
    );
    assert_eq!(
        dropped(f.check(&to_server, Wan, Lan, None, 1)),
        FwDrop::IcmpErrorNoFlow
    );
    assert_eq!(
        dropped(f.check(&icmp_error(router, H, about), Tunnel, Lan, None, 1)),
        FwDrop::IcmpErrorNoFlow
    );
    // An error neither creates nor refreshes state: the flow still expires.
    assert_eq!(f.conntrack().len(), 1);
    assert!(f
        .check(&icmp_error(router, H, about), Wan, Lan, None, 29 * SEC)
        .is_allow());
    assert_eq!(
        dropped(f.check(&icmp_error(router, H, about), Wan, Lan, None, 31 * SEC)),
        FwDrop::IcmpErrorNoFlow
    );
    assert_eq!(f.stats().related, 3);
    assert_eq!(f.stats().dropped(FwDrop::IcmpErrorNoFlow), 6);
}

#[test]
fn an_icmp_error_about_a_ping_matches_the_echo_flow() {
    let mut f = fw();
    allowed(f.check(&echo(H, S, true, 77), Lan, Wan, None, 0));
    let q = quote(1, H, 77, S, 77);
    assert!(f
        .check(&icmp_error("192.0.2.254", H, q), Wan, Lan, None, 1)
        .is_allow());
    let other_id = quote(1, H, 78, S, 78);
    assert!(!f
        .check(&icmp_error("192.0.2.254", H, other_id), Wan, Lan, None, 1)
        .is_allow());
}

#[test]
fn echo_replies_need_a_request_and_travel_back_only() {
    let mut f = fw();
    assert_eq!(
        dropped(f.check(&echo(S, H, false, 5), Wan, Lan, None, 0)),
        FwDrop::IcmpUnsolicited
    );
    assert!(f.check(&echo(H, S, true, 5), Lan, Wan, None, 1).is_allow());
    assert_eq!(
        allowed(f.check(&echo(S, H, false, 5), Wan, Lan, None, 2)),
        Allowed::Established {
            dir: Dir::Reply,
            state: State::Replied
        }
    );
    assert_eq!(
        dropped(f.check(&echo(H, S, false, 5), Lan, Wan, None, 3)),
        FwDrop::IcmpUnsolicited
    );
    assert_eq!(
        dropped(f.check(&echo(S, H, true, 5), Wan, Lan, None, 3)),
        FwDrop::IcmpUnsolicited
    );
    assert_eq!(
        dropped(f.check(&echo(S, H, false, 6), Wan, Lan, None, 3)),
        FwDrop::IcmpUnsolicited
    );
}

#[test]
fn a_tracked_flows_packet_from_another_zone_is_dropped() {
    let mut f = fw();
    allowed(f.check(&udp(H, 4000, S, 4000), Lan, Wan, None, 0));
    let reply = udp(S, 4000, H, 4000);
    assert_eq!(
        dropped(f.check(&reply, Tunnel, Lan, None, 1)),
        FwDrop::ZoneMismatch
    );
    assert_eq!(
        dropped(f.check(&udp(H, 4000, S, 4000), Lan, Tunnel, None, 1)),
        FwDrop::ZoneMismatch
    );
    assert!(f.check(&reply, Wan, Lan, None, 2).is_allow());
}

#[test]
fn idle_flows_expire_after_their_states_timeout() {
    let mut f = fw();
    let t0 = 1000;
    allowed(f.check(&udp(H, 1, S, 1), Lan, Wan, None, t0)); // unreplied: 30 s
    for p in [udp(H, 2, S, 2), udp(S, 2, H, 2), udp(H, 2, S, 2)] {
        let z = if p.src == ip(H) {
            (Lan, Wan)
        } else {
            (Wan, Lan)
        };
        allowed(f.check(&p, z.0, z.1, None, t0)); // assured: 180 s
    }
    allowed(f.check(&echo(H, S, true, 3), Lan, Wan, None, t0)); // 30 s
    establish(&mut f, 4, t0); // established: 1 h
    allowed(f.check(&tcp(H, 5, S, 443, SYN), Lan, Wan, None, t0)); // syn_sent: 120 s
    assert_eq!(f.conntrack().len(), 5);
    assert_eq!(f.conntrack().embryonic(), 3);
    let all = f.conntrack().bucket_count();
    let left = |f: &mut Firewall, secs: u64| {
        f.expire(t0 + secs * SEC + 1, all);
        f.conntrack().len()
    };
    assert_eq!(left(&mut f, 29), 5);
    assert_eq!(left(&mut f, 30), 3, "unreplied UDP and ICMP");
    assert_eq!(f.conntrack().embryonic(), 1);
    assert_eq!(left(&mut f, 120), 2, "SYN_SENT");
    assert_eq!(f.conntrack().embryonic(), 0);
    assert_eq!(left(&mut f, 180), 1, "assured UDP");
    assert_eq!(left(&mut f, 3599), 1);
    assert_eq!(left(&mut f, 3600), 0, "established TCP");
    assert_eq!(f.stats().expired, 5);
    // An expired flow's reply is a stranger again, even before a sweep.
    let mut f = fw();
    allowed(f.check(&udp(H, 1, S, 1), Lan, Wan, None, 0));
    assert_eq!(
        dropped(f.check(&udp(S, 1, H, 1), Wan, Lan, None, 30 * SEC + 1)),
        FwDrop::DefaultDeny
    );
}

#[test]
fn a_full_table_drops_new_flows_and_keeps_established_ones() {
    // 10 slots in one bucket: both choices are that bucket.
    let mut f = fw_with(10, RuleSet::default(), |c| c.max_embryonic = 10);
    for port in 0..10 {
        establish(&mut f, 1000 + port, 0);
    }
    assert_eq!(f.conntrack().len(), 10);
    assert_eq!(
        dropped(f.check(&tcp(H, 9999, S, 443, SYN), Lan, Wan, None, 1)),
        FwDrop::TableFull
    );
    assert_eq!(
        dropped(f.check(&udp(H, 9999, S, 53), Lan, Wan, None, 1)),
        FwDrop::TableFull
    );
    for port in 0..10 {
        assert!(f
            .check(&tcp(S, 443, H, 1000 + port, PSHACK), Wan, Lan, None, 2)
            .is_allow());
    }
    assert_eq!(f.stats().dropped(FwDrop::TableFull), 2);
    // A closed one makes room.
    allowed(f.check(&tcp(H, 1003, S, 443, RST), Lan, Wan, None, 3));
    assert!(f
        .check(&tcp(H, 9999, S, 443, SYN), Lan, Wan, None, 4)
        .is_allow());
}

#[test]
fn a_syn_flood_from_the_wan_holds_at_most_the_embryonic_quota() {
    let mut open = RuleConfig::any(Action::Allow);
    open.dst = Some(prefix("10.0.0.10/32"));
    open.proto = Some(6);
    let capacity = 2000;
    let quota = capacity / 4;
    let mut f = fw_with(capacity, one_pair(Wan, Lan, None, vec![open]), |c| {
        c.max_embryonic = quota
    });
    // 500 established connections from the LAN.
    for port in 0..500 {
        establish(&mut f, 10_000 + port, 0);
    }
    // 20,000 spoofed SYNs at the server the rule opens, never completed.
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut allowed_syns = 0u64;
    for n in 0..20_000u64 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let src = std::net::Ipv4Addr::from(rng as u32).to_string();
        let syn = tcp(&src, (rng >> 32) as u16, "10.0.0.10", 443, SYN);
        if f.check(&syn, Wan, Lan, None, 1 + n / 100).is_allow() {
            allowed_syns += 1;
        }
        assert!(f.conntrack().embryonic() <= quota);
    }
    assert!(
        f.conntrack().len() <= 500 + quota,
        "{}",
        f.conntrack().len()
    );
    assert!(
        allowed_syns >= quota as u64,
        "the flood churns the quota: {allowed_syns}"
    );
    let s = f.stats();
    assert!(s.dropped(FwDrop::EmbryonicLimit) > 0);
    // Each SYN was either tracked or dropped at the quota; past the quota,
    // each one tracked displaced an embryonic flow, never anything else.
    assert_eq!(allowed_syns + s.dropped(FwDrop::EmbryonicLimit), 20_000);
    assert_eq!(s.dropped(FwDrop::TableFull), 0);
    assert_eq!(f.conntrack().embryonic(), quota);
    assert_eq!(s.embryonic_evicted, allowed_syns - quota as u64);
    // Every established connection survived and still works.
    for port in 0..500 {
        assert!(f
            .check(&tcp(S, 443, H, 10_000 + port, PSHACK), Wan, Lan, None, 300)
            .is_allow());
    }
    // And a legitimate new connection from the LAN still gets in.
    assert!(f
        .check(&tcp(H, 999, S, 443, SYN), Lan, Wan, None, 300)
        .is_allow());
}

#[test]
fn ipv6_flows_errors_and_pings_are_tracked_like_ipv4() {
    let mut f = fw();
    let (h, s) = ("2001:db8:1::5", "2001:db8:ff::7");
    allowed(f.check(&tcp(h, 40000, s, 443, SYN), Lan, Wan, None, 0));
    allowed(f.check(&tcp(s, 443, h, 40000, SYNACK), Wan, Lan, None, 1));
    assert_eq!(
        allowed(f.check(&tcp(h, 40000, s, 443, ACK), Lan, Wan, None, 2)),
        Allowed::Established {
            dir: Dir::Orig,
            state: State::Tcp(TcpState::Established)
        }
    );
    // A Packet Too Big for it from a router on the way.
    let mut ptb = icmp_error("2001:db8:ee::1", h, quote(6, h, 40000, s, 443));
    if let L4::IcmpError { ty, .. } = &mut ptb.l4 {
        *ty = 2;
    }
    assert_eq!(allowed(f.check(&ptb, Wan, Lan, None, 3)), Allowed::Related);
    let spoofed = icmp_error("2001:db8:ee::1", h, quote(6, h, 40001, s, 443));
    assert_eq!(
        dropped(f.check(&spoofed, Wan, Lan, None, 3)),
        FwDrop::IcmpErrorNoFlow
    );
    assert_eq!(
        dropped(f.check(&tcp(s, 1, h, 22, SYN), Wan, Lan, None, 4)),
        FwDrop::DefaultDeny
    );
    assert!(f.check(&echo(h, s, true, 9), Lan, Wan, None, 5).is_allow());
    assert!(f.check(&echo(s, h, false, 9), Wan, Lan, None, 6).is_allow());
    assert_eq!(
        dropped(f.check(&echo(s, h, true, 9), Wan, Tunnel, None, 6)),
        FwDrop::ZoneMismatch
    );
    assert_eq!(
        dropped(f.check(&echo(s, h, true, 10), Wan, Lan, None, 6)),
        FwDrop::DefaultDeny
    );
}

#[test]
fn other_icmp_is_judged_by_the_rules_untracked() {
    let mut f = fw();
    let ra = PacketMeta {
        src: ip(S),
        dst: ip(H),
        proto: 1,
        l4: L4::IcmpOther { ty: 9, code: 0 },
    };
    assert_eq!(
        dropped(f.check(&ra, Wan, Lan, None, 0)),
        FwDrop::DefaultDeny
    );
    assert_eq!(allowed(f.check(&ra, Lan, Wan, None, 0)), Allowed::Stateless);
    assert!(f.conntrack().is_empty());
}

#[test]
fn unparsable_packets_are_dropped_and_counted() {
    let mut f = fw();
    assert_eq!(
        dropped(f.drop_unparsed(MetaError::Fragment)),
        FwDrop::Fragment
    );
    assert_eq!(
        dropped(f.drop_unparsed(MetaError::Malformed)),
        FwDrop::Malformed
    );
    assert_eq!(
        dropped(f.drop_unparsed(MetaError::BadQuote)),
        FwDrop::IcmpErrorNoFlow
    );
    assert_eq!(f.stats().drops.iter().sum::<u64>(), 3);
}

#[test]
fn drop_reason_names_are_distinct() {
    let names: std::collections::HashSet<_> = FwDrop::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(names.len(), FwDrop::COUNT);
    for (i, r) in FwDrop::ALL.iter().enumerate() {
        assert_eq!(*r as usize, i);
    }
}
