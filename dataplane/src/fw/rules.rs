//! Zone rules: for each (from, to) pair of zones, an ordered list of allow
//! and deny rules and a default action. The first rule that matches a new
//! flow decides; if none does, the pair's default. Without configuration,
//! every pair from `wan` denies and every other pair allows: a WAN port
//! accepts nothing it did not ask for (issue 14).
//!
//! A rule matches on source and destination prefix (IPv4 or IPv6), IP
//! protocol, destination port range (TCP, UDP, SCTP), ICMP type, and a DPI
//! application or category. Rules are evaluated for a flow's first packet
//! only (replies and later packets are the connection table's business),
//! so their cost is paid once per flow: a linear scan of the pair's
//! compiled list: per rule two 128-bit masked compares and a few byte
//! compares, an estimated few nanoseconds (not measured yet), so a pair
//! with a hundred rules adds a few hundred nanoseconds to a new flow. Many
//! rules would want a per-prefix index; not yet.
//!
//! Applications: the first packet of a flow is rarely classified. A rule
//! with an application or category is skipped while the application is
//! unknown, but it makes the decision provisional: if such a rule could
//! still allow the flow (or deny it), the flow is admitted and decided
//! again once the DPI has classified it ([`Decision::provisional`]), as
//! application firewalls do. A flow denied that way has had its first few
//! packets through.
//!
//! The config types here are plain and serde-free; the TOML layer
//! (control/) builds a [`RulesConfig`] and calls [`RulesConfig::validate`]
//! or [`RuleSet::compile`], whose errors name the zone pair, the rule's
//! index and the field.

use super::Zone;
use crate::dpi::types::{AppId, Category, Classification};
use std::fmt;
use std::net::IpAddr;

/// What a rule (or a default) does with a new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Deny,
}

/// An address prefix; the address must have no bits set past `len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

/// Destination ports `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

/// What a rule asks of the flow's DPI classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppMatch {
    App(AppId),
    Category(Category),
}

/// One rule as configured. A field left `None` matches anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleConfig {
    pub action: Action,
    pub src: Option<Prefix>,
    pub dst: Option<Prefix>,
    /// The IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...).
    pub proto: Option<u8>,
    /// Needs `proto` TCP, UDP or SCTP.
    pub dst_ports: Option<PortRange>,
    /// Needs `proto` ICMP or ICMPv6 (of the prefixes' family).
    pub icmp_type: Option<u8>,
    pub app: Option<AppMatch>,
}

impl RuleConfig {
    /// A rule that matches everything; set the fields to narrow it.
    pub const fn any(action: Action) -> RuleConfig {
        RuleConfig {
            action,
            src: None,
            dst: None,
            proto: None,
            dst_ports: None,
            icmp_type: None,
            app: None,
        }
    }
}

/// The rules of one zone pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZonePairConfig {
    pub from: Zone,
    pub to: Zone,
    /// None: deny from `wan`, allow otherwise.
    pub default: Option<Action>,
    pub rules: Vec<RuleConfig>,
}

/// Every zone pair's rules; pairs not listed take their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RulesConfig {
    pub pairs: Vec<ZonePairConfig>,
}

/// A configuration mistake: where, and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleError {
    pub from: Zone,
    pub to: Zone,
    /// The rule's index in its pair's list (None: the pair itself).
    pub rule: Option<usize>,
    pub field: &'static str,
    pub problem: &'static str,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "firewall {} -> {}", self.from.name(), self.to.name())?;
        if let Some(i) = self.rule {
            write!(f, ", rule {i}")?;
        }
        write!(f, ", {}: {}", self.field, self.problem)
    }
}

impl std::error::Error for RuleError {}

const ICMP: u8 = 1;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMPV6: u8 = 58;
const SCTP: u8 = 132;

/// The default action of a zone pair nobody configured.
pub const fn default_action(from: Zone) -> Action {
    match from {
        Zone::Wan => Action::Deny,
        Zone::Lan | Zone::Tunnel => Action::Allow,
    }
}

impl RulesConfig {
    /// Checks every pair and rule; the first mistake found is returned.
    pub fn validate(&self) -> Result<(), RuleError> {
        for (n, pair) in self.pairs.iter().enumerate() {
            let err = |rule, field, problem| RuleError {
                from: pair.from,
                to: pair.to,
                rule,
                field,
                problem,
            };
            if self.pairs[..n]
                .iter()
                .any(|p| (p.from, p.to) == (pair.from, pair.to))
            {
                return Err(err(None, "from/to", "zone pair configured twice"));
            }
            for (i, r) in pair.rules.iter().enumerate() {
                validate_rule(r).map_err(|(field, problem)| err(Some(i), field, problem))?;
            }
        }
        Ok(())
    }
}

fn validate_prefix(p: &Prefix) -> Result<(), &'static str> {
    let (bits, max) = match p.addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    if p.len > max {
        return Err("prefix length longer than the address");
    }
    if bits & !mask(p.len) != 0 {
        return Err("address has bits set past the prefix length");
    }
    Ok(())
}

fn validate_rule(r: &RuleConfig) -> Result<(), (&'static str, &'static str)> {
    if let Some(p) = &r.src {
        validate_prefix(p).map_err(|e| ("src", e))?;
    }
    if let Some(p) = &r.dst {
        validate_prefix(p).map_err(|e| ("dst", e))?;
    }
    let v4 = r.src.or(r.dst).map(|p| p.addr.is_ipv4());
    if let (Some(s), Some(d)) = (&r.src, &r.dst) {
        if s.addr.is_ipv4() != d.addr.is_ipv4() {
            return Err(("dst", "address family differs from src"));
        }
    }
    match (r.proto, v4) {
        (Some(ICMP), Some(false)) => {
            return Err(("proto", "ICMP (1) with IPv6 prefixes; ICMPv6 is 58"))
        }
        (Some(ICMPV6), Some(true)) => {
            return Err(("proto", "ICMPv6 (58) with IPv4 prefixes; ICMP is 1"))
        }
        _ => {}
    }
    if let Some(ports) = r.dst_ports {
        if !matches!(r.proto, Some(TCP | UDP | SCTP)) {
            return Err(("dst_ports", "needs proto TCP (6), UDP (17) or SCTP (132)"));
        }
        if ports.start > ports.end {
            return Err(("dst_ports", "start above end"));
        }
    }
    if r.icmp_type.is_some() && !matches!(r.proto, Some(ICMP | ICMPV6)) {
        return Err(("icmp_type", "needs proto ICMP (1) or ICMPv6 (58)"));
    }
    if let Some(AppMatch::App(app)) = r.app {
        if app.is_none() {
            return Err(("app", "application id 0 means no application"));
        }
    }
    Ok(())
}

/// The netmask of a prefix of `len` bits over 128.
const fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else if len >= 128 {
        u128::MAX
    } else {
        u128::MAX << (128 - len)
    }
}

/// An address as 128 bits, IPv4 as IPv4-mapped IPv6 (as the flow key).
#[inline]
pub(crate) fn addr_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => 0xffff_0000_0000 | u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// A compiled prefix: `(bits & mask) == addr`, and the family.
#[derive(Debug, Clone, Copy)]
struct Net {
    addr: u128,
    mask: u128,
    /// Some(true): IPv4 only; None: any address.
    v4: Option<bool>,
}

impl Net {
    fn compile(p: Option<Prefix>) -> Net {
        match p {
            None => Net {
                addr: 0,
                mask: 0,
                v4: None,
            },
            Some(p) => {
                let len = if p.addr.is_ipv4() { p.len + 96 } else { p.len };
                let mask = mask(len);
                Net {
                    addr: addr_bits(p.addr) & mask,
                    mask,
                    v4: Some(p.addr.is_ipv4()),
                }
            }
        }
    }

    #[inline]
    fn matches(&self, bits: u128, v4: bool) -> bool {
        bits & self.mask == self.addr && self.v4.is_none_or(|f| f == v4)
    }
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    src: Net,
    dst: Net,
    proto: Option<u8>,
    ports: (u16, u16),
    icmp_type: Option<u8>,
    app: Option<AppMatch>,
    action: Action,
}

/// What a rule is matched against: a new flow's first packet, in its
/// original direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowFacts {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// TCP/UDP/SCTP destination port (0 otherwise).
    pub dport: u16,
    /// ICMP type (for ICMP and ICMPv6; None otherwise).
    pub icmp_type: Option<u8>,
}

/// The outcome of matching a new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// The rule that decided (None: the default, or provisional).
    pub rule: Option<usize>,
    /// An application rule was skipped for want of a classification and
    /// could change the outcome: the flow is allowed for now and must be
    /// decided again with its classification.
    pub provisional: bool,
}

#[derive(Debug, Clone)]
struct Pair {
    default: Action,
    rules: Vec<Rule>,
    has_app_rules: bool,
}

/// The compiled rules of all nine zone pairs. Built once; matching
/// allocates nothing.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pairs: [Pair; Zone::COUNT * Zone::COUNT],
}

impl Default for RuleSet {
    /// No rules: the defaults of [`default_action`].
    fn default() -> Self {
        RuleSet {
            pairs: std::array::from_fn(|i| Pair {
                default: default_action(Zone::ALL[i / Zone::COUNT]),
                rules: Vec::new(),
                has_app_rules: false,
            }),
        }
    }
}

impl RuleSet {
    /// Validates and compiles `config`.
    pub fn compile(config: &RulesConfig) -> Result<RuleSet, RuleError> {
        config.validate()?;
        let mut set = RuleSet::default();
        for pc in &config.pairs {
            let pair = &mut set.pairs[pc.from as usize * Zone::COUNT + pc.to as usize];
            if let Some(d) = pc.default {
                pair.default = d;
            }
            pair.rules = pc
                .rules
                .iter()
                .map(|r| Rule {
                    src: Net::compile(r.src),
                    dst: Net::compile(r.dst),
                    proto: r.proto,
                    ports: r.dst_ports.map_or((0, u16::MAX), |p| (p.start, p.end)),
                    icmp_type: r.icmp_type,
                    app: r.app,
                    action: r.action,
                })
                .collect();
            pair.has_app_rules = pc.rules.iter().any(|r| r.app.is_some());
        }
        Ok(set)
    }

    /// Whether any rule of the pair looks at the application.
    pub fn has_app_rules(&self, from: Zone, to: Zone) -> bool {
        self.pairs[from as usize * Zone::COUNT + to as usize].has_app_rules
    }

    /// Decides a new flow from `from` to `to`; `app` is its classification
    /// if the DPI has decided one.
    pub fn decide(
        &self,
        from: Zone,
        to: Zone,
        flow: &FlowFacts,
        app: Option<&Classification>,
    ) -> Decision {
        let pair = &self.pairs[from as usize * Zone::COUNT + to as usize];
        let (src, dst) = (addr_bits(flow.src), addr_bits(flow.dst));
        let v4 = flow.src.is_ipv4();
        let (mut pending_allow, mut pending_deny) = (false, false);
        let mut decided = (pair.default, None);
        for (i, r) in pair.rules.iter().enumerate() {
            if !(r.src.matches(src, v4)
                && r.dst.matches(dst, v4)
                && r.proto.is_none_or(|p| p == flow.proto)
                && (r.ports.0..=r.ports.1).contains(&flow.dport)
                && r.icmp_type.is_none_or(|t| flow.icmp_type == Some(t)))
            {
                continue;
            }
            match (r.app, app) {
                (None, _) => {
                    decided = (r.action, Some(i));
                    break;
                }
                (Some(m), Some(c)) => {
                    let hit = match m {
                        AppMatch::App(a) => c.app == a,
                        AppMatch::Category(k) => c.category == k,
                    };
                    if hit {
                        decided = (r.action, Some(i));
                        break;
                    }
                }
                (Some(_), None) => match r.action {
                    Action::Allow => pending_allow = true,
                    Action::Deny => pending_deny = true,
                },
            }
        }
        let provisional = match decided.0 {
            Action::Deny => pending_allow,
            Action::Allow => pending_deny,
        };
        if provisional {
            Decision {
                action: Action::Allow,
                rule: None,
                provisional: true,
            }
        } else {
            Decision {
                action: decided.0,
                rule: decided.1,
                provisional: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fw::tests::{classified, one_pair, prefix};

    fn facts(src: &str, dst: &str, proto: u8, dport: u16) -> FlowFacts {
        FlowFacts {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto,
            dport,
            icmp_type: None,
        }
    }

    #[test]
    fn defaults_deny_from_wan_and_allow_otherwise() {
        let set = RuleSet::default();
        let f = facts("10.0.0.1", "10.0.0.2", 17, 53);
        for from in Zone::ALL {
            for to in Zone::ALL {
                let want = if from == Zone::Wan {
                    Action::Deny
                } else {
                    Action::Allow
                };
                let d = set.decide(from, to, &f, None);
                assert_eq!((d.action, d.rule, d.provisional), (want, None, false));
            }
        }
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let mut web = RuleConfig::any(Action::Allow);
        web.dst = Some(prefix("192.0.2.0/24"));
        web.proto = Some(TCP);
        web.dst_ports = Some(PortRange {
            start: 80,
            end: 443,
        });
        let mut block_host = RuleConfig::any(Action::Deny);
        block_host.dst = Some(prefix("192.0.2.9/32"));
        let set = one_pair(Zone::Wan, Zone::Lan, None, vec![block_host, web]);
        let d = |dst, proto, port| {
            let d = set.decide(
                Zone::Wan,
                Zone::Lan,
                &facts("203.0.113.5", dst, proto, port),
                None,
            );
            (d.action, d.rule)
        };
        assert_eq!(d("192.0.2.10", TCP, 443), (Action::Allow, Some(1)));
        assert_eq!(d("192.0.2.10", TCP, 80), (Action::Allow, Some(1)));
        assert_eq!(d("192.0.2.9", TCP, 443), (Action::Deny, Some(0)));
        assert_eq!(d("192.0.2.10", TCP, 444), (Action::Deny, None));
        assert_eq!(d("192.0.2.10", UDP, 443), (Action::Deny, None));
        assert_eq!(d("192.0.3.10", TCP, 443), (Action::Deny, None));
        // The rule is IPv4: an IPv6 flow between mapped addresses does not
        // match it.
        let v6 = facts("::ffff:203.0.113.5", "::ffff:192.0.2.10", TCP, 443);
        assert_eq!(
            set.decide(Zone::Wan, Zone::Lan, &v6, None).action,
            Action::Deny
        );
    }

    #[test]
    fn ipv6_prefixes_match_ipv6_flows_only() {
        let mut r = RuleConfig::any(Action::Allow);
        r.src = Some(prefix("2001:db8:1::/48"));
        let set = one_pair(Zone::Wan, Zone::Tunnel, None, vec![r]);
        let a = |src| {
            set.decide(
                Zone::Wan,
                Zone::Tunnel,
                &facts(src, "2001:db8:ff::1", UDP, 1),
                None,
            )
            .action
        };
        assert_eq!(a("2001:db8:1:abcd::7"), Action::Allow);
        assert_eq!(a("2001:db8:2::7"), Action::Deny);
        let v4 = set.decide(
            Zone::Wan,
            Zone::Tunnel,
            &facts("10.0.0.1", "10.0.0.2", UDP, 1),
            None,
        );
        assert_eq!(v4.action, Action::Deny);
    }

    #[test]
    fn icmp_type_rules_match_the_type() {
        let mut r = RuleConfig::any(Action::Allow);
        r.proto = Some(ICMP);
        r.icmp_type = Some(8);
        let set = one_pair(Zone::Wan, Zone::Lan, None, vec![r]);
        let mut f = facts("198.51.100.1", "192.0.2.1", ICMP, 0);
        f.icmp_type = Some(8);
        assert_eq!(
            set.decide(Zone::Wan, Zone::Lan, &f, None).action,
            Action::Allow
        );
        f.icmp_type = Some(13);
        assert_eq!(
            set.decide(Zone::Wan, Zone::Lan, &f, None).action,
            Action::Deny
        );
    }

    #[test]
    fn an_app_rule_decides_once_the_app_is_known_and_is_provisional_before() {
        let mut deny_games = RuleConfig::any(Action::Deny);
        deny_games.app = Some(AppMatch::Category(Category::Gaming));
        let mut allow_app = RuleConfig::any(Action::Allow);
        allow_app.app = Some(AppMatch::App(AppId(7)));
        let set = one_pair(
            Zone::Lan,
            Zone::Wan,
            Some(Action::Deny),
            vec![deny_games, allow_app],
        );
        let f = facts("10.0.0.1", "198.51.100.1", TCP, 443);
        let d = |app: Option<Classification>| set.decide(Zone::Lan, Zone::Wan, &f, app.as_ref());
        // Unknown: an allow rule could match later, so allowed for now.
        assert_eq!(
            d(None),
            Decision {
                action: Action::Allow,
                rule: None,
                provisional: true
            }
        );
        assert_eq!(
            d(Some(classified(7, Category::Web))),
            Decision {
                action: Action::Allow,
                rule: Some(1),
                provisional: false
            }
        );
        assert_eq!(
            d(Some(classified(7, Category::Gaming))).action,
            Action::Deny
        );
        assert_eq!(
            d(Some(classified(3, Category::Web))),
            Decision {
                action: Action::Deny,
                rule: None,
                provisional: false
            }
        );
        assert!(set.has_app_rules(Zone::Lan, Zone::Wan));
        assert!(!set.has_app_rules(Zone::Wan, Zone::Lan));
    }

    #[test]
    fn a_plain_deny_before_app_rules_is_final() {
        let mut deny = RuleConfig::any(Action::Deny);
        deny.proto = Some(UDP);
        let mut allow_app = RuleConfig::any(Action::Allow);
        allow_app.app = Some(AppMatch::Category(Category::VoIP));
        let set = one_pair(
            Zone::Lan,
            Zone::Wan,
            Some(Action::Deny),
            vec![deny, allow_app],
        );
        let d = set.decide(
            Zone::Lan,
            Zone::Wan,
            &facts("10.0.0.1", "198.51.100.1", UDP, 3478),
            None,
        );
        assert_eq!(
            d,
            Decision {
                action: Action::Deny,
                rule: Some(0),
                provisional: false
            }
        );
    }

    fn error_of(rule: RuleConfig) -> RuleError {
        RulesConfig {
            pairs: vec![ZonePairConfig {
                from: Zone::Lan,
                to: Zone::Wan,
                default: None,
                rules: vec![RuleConfig::any(Action::Allow), rule],
            }],
        }
        .validate()
        .unwrap_err()
    }

    #[test]
    fn validation_names_the_rule_and_the_field() {
        let mut r = RuleConfig::any(Action::Allow);
        r.dst_ports = Some(PortRange { start: 1, end: 2 });
        let e = error_of(r);
        assert_eq!((e.rule, e.field), (Some(1), "dst_ports"));
        assert_eq!(
            e.to_string(),
            "firewall lan -> wan, rule 1, dst_ports: needs proto TCP (6), UDP (17) or SCTP (132)"
        );
        r.proto = Some(TCP);
        r.dst_ports = Some(PortRange { start: 9, end: 2 });
        assert_eq!(error_of(r).problem, "start above end");

        let mut r = RuleConfig::any(Action::Deny);
        r.src = Some(prefix("10.0.0.1/8"));
        assert_eq!(
            (error_of(r).field, error_of(r).problem),
            ("src", "address has bits set past the prefix length")
        );
        r.src = Some(prefix("10.0.0.0/33"));
        assert_eq!(error_of(r).field, "src");
        r.src = Some(prefix("10.0.0.0/8"));
        r.dst = Some(prefix("2001:db8::/32"));
        assert_eq!(error_of(r).field, "dst");

        let mut r = RuleConfig::any(Action::Deny);
        r.icmp_type = Some(8);
        assert_eq!(error_of(r).field, "icmp_type");
        r.proto = Some(ICMP);
        r.dst = Some(prefix("2001:db8::/32"));
        assert_eq!(error_of(r).field, "proto");

        let mut r = RuleConfig::any(Action::Deny);
        r.app = Some(AppMatch::App(AppId::NONE));
        assert_eq!(error_of(r).field, "app");

        let pair = ZonePairConfig {
            from: Zone::Wan,
            to: Zone::Lan,
            default: None,
            rules: vec![],
        };
        let e = RulesConfig {
            pairs: vec![pair.clone(), pair],
        }
        .validate()
        .unwrap_err();
        assert_eq!((e.rule, e.field), (None, "from/to"));
        assert!(RuleSet::compile(&RulesConfig::default()).is_ok());
    }
}
