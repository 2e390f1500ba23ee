//! SLA classes (the hard limits a path must meet) and the policies that
//! bind traffic to a class, a path preference and a load-balancing mode.
//!
//! Plain data the config fills. Matching a flow to a policy allocates
//! nothing and cannot panic.

use patronus_dataplane::dpi::types::{AppId, Category};
use patronus_dataplane::qos::{FlowFields, QosClass};
use std::sync::Arc;

/// One of the three metrics a class limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// p95 round-trip time (not one-way delay), milliseconds.
    Latency,
    /// Jitter as the estimator reports it (RFC 3550 §6.4.1 interarrival
    /// jitter), milliseconds.
    Jitter,
    /// Packet loss over the estimator's window, percent.
    Loss,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Latency, Metric::Jitter, Metric::Loss];

    pub const fn name(self) -> &'static str {
        match self {
            Metric::Latency => "latency",
            Metric::Jitter => "jitter",
            Metric::Loss => "loss",
        }
    }

    pub const fn unit(self) -> &'static str {
        match self {
            Metric::Latency | Metric::Jitter => "ms",
            Metric::Loss => "%",
        }
    }

    /// The scale a metric is normalised by in the score when the class sets
    /// no limit on it: a "typical acceptable" value, so that an unlimited
    /// metric still tells two otherwise equal paths apart.
    pub const fn reference(self) -> f64 {
        match self {
            Metric::Latency => 300.0,
            Metric::Jitter => 50.0,
            Metric::Loss => 5.0,
        }
    }
}

/// An SLA class: hard limits a path must meet to carry the class. `None`
/// means no limit on that metric.
///
/// The latency limit applies to the **p95 round-trip time** over the
/// estimator's window, not to a one-way delay: RTT needs no clock
/// synchronisation between the nodes, and judging the whole round trip
/// against a one-way budget errs on the strict side.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaClass {
    pub name: Arc<str>,
    /// p95 RTT, milliseconds.
    pub max_latency_ms: Option<f64>,
    pub max_loss_pct: Option<f64>,
    pub max_jitter_ms: Option<f64>,
}

impl SlaClass {
    pub fn new(
        name: &str,
        max_latency_ms: Option<f64>,
        max_loss_pct: Option<f64>,
        max_jitter_ms: Option<f64>,
    ) -> SlaClass {
        SlaClass {
            name: Arc::from(name),
            max_latency_ms,
            max_loss_pct,
            max_jitter_ms,
        }
    }

    /// The default class of each QoS class, named after it
    /// ([`QosClass::name`]):
    ///
    /// | QoS class   | p95 RTT | loss | jitter | why |
    /// |-------------|---------|------|--------|-----|
    /// | realtime    | 150 ms  | 1 %  | 30 ms  | ITU-T G.114's 150 ms one-way budget, spent on the RTT to leave room for codec and jitter buffer; G.711/Opus PLC hides about 1 % loss; a 30 ms jitter fits a 40–60 ms adaptive buffer |
    /// | interactive | 200 ms  | 2 %  | 50 ms  | SSH/RDP echo feels immediate below ~200 ms RTT; TCP retransmits the loss but stalls the screen |
    /// | streaming   | 300 ms  | 2 %  | none   | players buffer seconds, so jitter is absorbed; loss above ~2 % cuts TCP/QUIC throughput below video rates |
    /// | standard    | 500 ms  | 5 %  | none   | web pages still load; beyond 5 % loss TCP crawls |
    /// | bulk        | none    | 10 % | none   | throughput only: a backup may ride the worst path as long as it moves |
    pub fn default_for(class: QosClass) -> SlaClass {
        let (lat, loss, jit) = match class {
            QosClass::RealTime => (Some(150.0), Some(1.0), Some(30.0)),
            QosClass::Interactive => (Some(200.0), Some(2.0), Some(50.0)),
            QosClass::Streaming => (Some(300.0), Some(2.0), None),
            QosClass::Standard => (Some(500.0), Some(5.0), None),
            QosClass::Bulk => (None, Some(10.0), None),
        };
        SlaClass::new(class.name(), lat, loss, jit)
    }

    /// The five defaults, in [`QosClass`] order.
    pub fn defaults() -> Vec<SlaClass> {
        QosClass::ALL
            .into_iter()
            .map(SlaClass::default_for)
            .collect()
    }

    /// The limit on `m`, if any.
    pub fn limit(&self, m: Metric) -> Option<f64> {
        match m {
            Metric::Latency => self.max_latency_ms,
            Metric::Jitter => self.max_jitter_ms,
            Metric::Loss => self.max_loss_pct,
        }
    }

    /// Every limit is finite and non-negative.
    pub fn is_valid(&self) -> bool {
        Metric::ALL
            .into_iter()
            .all(|m| self.limit(m).is_none_or(|l| l.is_finite() && l >= 0.0))
    }
}

/// A path named in a policy's preferred order: by the peer's path index,
/// or by our WAN port (every path of the peer out of that port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRef {
    Path(u8),
    Port(u8),
}

/// How a policy uses the compliant paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// All flows on the single best path.
    #[default]
    BestPath,
    /// Flows spread over every compliant path, weighted by capacity,
    /// by rendezvous hashing ([`super::hrw`]).
    SpreadCompliant,
}

pub use patronus_dataplane::steer::PolicyMatch;

/// A policy: traffic, the SLA class it needs, the paths it prefers and how
/// it balances.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    pub name: Arc<str>,
    pub matches: PolicyMatch,
    /// An [`SlaClass::name`].
    pub sla: String,
    /// Most preferred first. Empty: no preference, the score decides. In
    /// [`Mode::SpreadCompliant`] a non-empty list only names the paths the
    /// policy may use; their order does not matter.
    pub path_order: Vec<PathRef>,
    pub mode: Mode,
}

/// The first policy, in order, that takes the flow.
pub fn policy_for(
    policies: &[PolicySpec],
    fields: Option<&FlowFields>,
    category: Category,
    app: AppId,
) -> Option<usize> {
    policies
        .iter()
        .position(|p| p.matches.matches(fields, category, app))
}

#[cfg(test)]
mod tests {
    use super::*;
    use patronus_dataplane::qos::{MatchRule, PortRange};

    #[test]
    fn defaults_are_named_after_qos_classes_and_tighten_with_priority() {
        let d = SlaClass::defaults();
        assert_eq!(d.len(), QosClass::COUNT);
        for (c, q) in d.iter().zip(QosClass::ALL) {
            assert_eq!(&*c.name, q.name());
            assert!(c.is_valid());
        }
        assert_eq!(d[0].max_latency_ms, Some(150.0));
        assert_eq!(d[0].max_loss_pct, Some(1.0));
        assert_eq!(d[0].max_jitter_ms, Some(30.0));
        assert_eq!(d[4].max_latency_ms, None);
        assert!(!SlaClass::new("x", Some(f64::NAN), None, None).is_valid());
        assert!(!SlaClass::new("x", None, Some(-1.0), None).is_valid());
    }

    #[test]
    fn first_policy_taking_the_flow_by_category_app_or_rule_wins() {
        let mut sip = MatchRule::any(QosClass::RealTime);
        sip.protocol = Some(17);
        sip.dst_ports = Some(PortRange::single(5060));
        let voice = PolicySpec {
            name: Arc::from("voice"),
            matches: PolicyMatch {
                categories: vec![Category::VoIP],
                apps: vec![AppId(42)],
                rules: vec![sip],
            },
            sla: "realtime".into(),
            path_order: vec![],
            mode: Mode::BestPath,
        };
        let bulk = PolicySpec {
            name: Arc::from("bulk"),
            matches: PolicyMatch {
                categories: vec![Category::FileTransfer, Category::Unknown],
                ..PolicyMatch::default()
            },
            sla: "bulk".into(),
            path_order: vec![],
            mode: Mode::SpreadCompliant,
        };
        let ps = [voice, bulk];
        let f = FlowFields {
            protocol: 17,
            src: "10.0.0.1".parse().unwrap(),
            dst: "192.0.2.1".parse().unwrap(),
            src_port: 4000,
            dst_port: 5060,
            dscp: 0,
        };
        assert_eq!(policy_for(&ps, None, Category::VoIP, AppId::NONE), Some(0));
        assert_eq!(policy_for(&ps, None, Category::Web, AppId(42)), Some(0));
        assert_eq!(
            policy_for(&ps, Some(&f), Category::Web, AppId::NONE),
            Some(0)
        );
        assert_eq!(
            policy_for(&ps, None, Category::FileTransfer, AppId(42)),
            Some(0)
        );
        assert_eq!(
            policy_for(&ps, None, Category::FileTransfer, AppId(7)),
            Some(1)
        );
        // Unknown says nothing, even when a policy lists it.
        assert_eq!(policy_for(&ps, None, Category::Unknown, AppId::NONE), None);
        assert_eq!(policy_for(&[], Some(&f), Category::VoIP, AppId(1)), None);
    }
}
