//! The `[qos]` section: which WAN ports are shaped and at what rate, the
//! classes' weights, ceilings and queues, how packets get their class, and
//! the outer DSCP of each class. See docs/qos.md for the semantics.
//!
//! ```toml
//! [qos.ports.wan1]
//! rate = "100Mbit"            # all workers together
//! [qos.classes.bulk]
//! weight = 1
//! codel = { target_us = 5000, interval_us = 100000 }
//! [qos.categories]
//! Network = "standard"
//! [qos.apps]
//! Zoom = "realtime"
//! [[qos.rules]]
//! dst = "10.20.0.0/16"
//! protocol = "tcp"
//! dst_ports = "9000-9100"
//! class = "bulk"
//! ```

use crate::config::PortConfig;
use patronus_dataplane::dpi::types::Category;
use patronus_dataplane::qos::{
    ClassConfig, ClassMap, CodelConfig, DscpMap, IpPrefix, MatchRule, PortRange, QosClass,
    SchedulerConfig,
};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QosSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "yes")]
    pub trust_dscp: bool,
    pub default_class: Option<String>,
    pub quantum_bytes: Option<u32>,
    pub overhead_bytes: Option<u32>,
    pub rebalance_ms: Option<u32>,
    #[serde(default)]
    pub ports: BTreeMap<String, QosPortSection>,
    #[serde(default)]
    pub classes: BTreeMap<String, QosClassSection>,
    #[serde(default)]
    pub dscp: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub categories: BTreeMap<String, String>,
    #[serde(default)]
    pub apps: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<QosRuleSection>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QosPortSection {
    pub rate: toml::Value,
    pub burst_bytes: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QosClassSection {
    pub weight: Option<u32>,
    /// A percentage of the port rate, e.g. "33.3%".
    pub ceiling: Option<String>,
    pub ceiling_burst_bytes: Option<u32>,
    pub queue_packets: Option<u32>,
    pub queue_bytes: Option<u32>,
    pub codel: Option<CodelSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodelSection {
    pub target_us: u32,
    pub interval_us: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QosRuleSection {
    pub protocol: Option<String>,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub src_ports: Option<String>,
    pub dst_ports: Option<String>,
    pub dscp: Option<toml::Value>,
    /// Needed in `[[qos.rules]]`; SLA policies' rules take none.
    pub class: Option<String>,
}

impl QosRuleSection {
    pub fn fields(&self) -> RuleFields<'_> {
        RuleFields {
            protocol: self.protocol.as_deref(),
            src: self.src.as_deref(),
            dst: self.dst.as_deref(),
            src_ports: self.src_ports.as_deref(),
            dst_ports: self.dst_ports.as_deref(),
            dscp: self.dscp.as_ref(),
        }
    }
}

/// The match fields of a 5-tuple rule, as written in the config (QoS rules
/// and SLA policies share them).
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleFields<'a> {
    pub protocol: Option<&'a str>,
    pub src: Option<&'a str>,
    pub dst: Option<&'a str>,
    pub src_ports: Option<&'a str>,
    pub dst_ports: Option<&'a str>,
    pub dscp: Option<&'a toml::Value>,
}

/// A rule from its written fields; errors name the field through `field`.
pub fn match_rule(
    field: &dyn Fn(&str) -> String,
    r: &RuleFields<'_>,
    class: QosClass,
) -> Result<MatchRule, (String, String)> {
    let mut rule = MatchRule::any(class);
    if let Some(p) = r.protocol {
        rule.protocol = Some(match p.to_ascii_lowercase().as_str() {
            "tcp" => 6,
            "udp" => 17,
            "icmp" => 1,
            "icmpv6" => 58,
            other => other.parse().map_err(|_| {
                (
                    field("protocol"),
                    format!("{p:?} is not tcp, udp, icmp or a number"),
                )
            })?,
        });
    }
    for (f, text, slot) in [("src", r.src, &mut rule.src), ("dst", r.dst, &mut rule.dst)] {
        if let Some(t) = text {
            *slot = Some(
                IpPrefix::parse(t)
                    .ok_or((field(f), format!("{t:?} is not an address or prefix")))?,
            );
        }
    }
    for (f, text, slot) in [
        ("src_ports", r.src_ports, &mut rule.src_ports),
        ("dst_ports", r.dst_ports, &mut rule.dst_ports),
    ] {
        if let Some(t) = text {
            *slot = Some(port_range(t).ok_or((
                field(f),
                format!("{t:?} is not a port or a range like 9000-9100"),
            ))?);
        }
    }
    if let Some(d) = r.dscp {
        rule.dscp = Some(
            dscp_value(d).ok_or((field("dscp"), "not a DSCP name or number 0-63".to_string()))?,
        );
    }
    Ok(rule)
}

/// One shaped WAN port.
#[derive(Debug, Clone)]
pub struct ShapedPort {
    /// Index in the config's ports.
    pub port: usize,
    pub rate_bps: u64,
    pub burst_bytes: Option<u32>,
}

/// The validated `[qos]` section.
#[derive(Debug, Clone)]
pub struct QosConfig {
    pub ports: Vec<ShapedPort>,
    /// Per-class settings over [`SchedulerConfig::new`]'s defaults.
    classes: Vec<(QosClass, QosClassSection)>,
    pub quantum_bytes: Option<u32>,
    pub overhead_bytes: Option<u32>,
    pub rebalance_ms: u32,
    /// How packets get their class; application rules are by name and
    /// resolved against the DPI engine's application table at start.
    pub class_map: ClassMap,
    pub app_classes: Vec<(String, QosClass)>,
    pub dscp_out: DscpMap,
}

impl QosConfig {
    /// The scheduler of one port for one worker starting at `rate_bps`.
    pub fn scheduler_config(
        &self,
        tsc_hz: u64,
        rate_bps: u64,
        port: &ShapedPort,
    ) -> SchedulerConfig {
        let mut c = SchedulerConfig::new(tsc_hz, rate_bps);
        if let Some(b) = port.burst_bytes {
            c.burst_bytes = b;
        }
        if let Some(q) = self.quantum_bytes {
            c.quantum_bytes = q;
        }
        if let Some(o) = self.overhead_bytes {
            c.overhead_bytes = o;
        }
        for (class, s) in &self.classes {
            let cc: &mut ClassConfig = &mut c.classes[*class as usize];
            if let Some(w) = s.weight {
                cc.weight = w;
            }
            if let Some(p) = &s.ceiling {
                if let Some(permille) = percent_to_permille(p) {
                    cc.ceiling_permille = permille;
                }
            }
            if let Some(b) = s.ceiling_burst_bytes {
                cc.ceiling_burst_bytes = b;
            }
            if let Some(q) = s.queue_packets {
                cc.queue_packets = q;
            }
            if let Some(q) = s.queue_bytes {
                cc.queue_bytes = q;
            }
            if let Some(codel) = &s.codel {
                cc.codel = Some(CodelConfig {
                    target_us: codel.target_us,
                    interval_us: codel.interval_us,
                });
            }
        }
        c
    }
}

fn percent_to_permille(text: &str) -> Option<u32> {
    let v: f64 = text.trim().strip_suffix('%')?.trim().parse().ok()?;
    (v > 0.0 && v <= 100.0).then(|| ((v * 10.0).round() as u32).clamp(1, 1000))
}

/// "100Mbit", "1.5Gbit", "500kbit", "64000bit", or a number of bit/s.
pub fn parse_rate(v: &toml::Value) -> Option<u64> {
    match v {
        toml::Value::Integer(n) if *n > 0 => Some(*n as u64),
        toml::Value::String(s) => {
            let lower = s.trim().to_ascii_lowercase();
            let lower = lower.strip_suffix("/s").unwrap_or(&lower);
            for (suffix, scale) in [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)] {
                if let Some(num) = lower.strip_suffix(suffix) {
                    let n: f64 = num.trim().parse().ok()?;
                    return (n > 0.0).then_some((n * scale) as u64);
                }
            }
            None
        }
        _ => None,
    }
}

fn dscp_value(v: &toml::Value) -> Option<u8> {
    use patronus_dataplane::qos::dscp::codepoint::*;
    match v {
        toml::Value::Integer(n) if (0..64).contains(n) => Some(*n as u8),
        toml::Value::String(s) => Some(match s.trim().to_ascii_uppercase().as_str() {
            "DF" | "CS0" | "BE" => DF,
            "LE" => LE,
            "CS1" => CS1,
            "AF11" => AF11,
            "AF12" => AF12,
            "AF13" => AF13,
            "CS2" => CS2,
            "AF21" => AF21,
            "AF22" => AF22,
            "AF23" => AF23,
            "CS3" => CS3,
            "AF31" => AF31,
            "AF32" => AF32,
            "AF33" => AF33,
            "CS4" => CS4,
            "AF41" => AF41,
            "AF42" => AF42,
            "AF43" => AF43,
            "CS5" => CS5,
            "VOICE-ADMIT" => VOICE_ADMIT,
            "EF" => EF,
            "CS6" => CS6,
            "CS7" => CS7,
            _ => return None,
        }),
        _ => None,
    }
}

fn port_range(text: &str) -> Option<PortRange> {
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let p = text.trim().parse().ok()?;
            (p, p)
        }
    };
    (a <= b).then_some(PortRange { first: a, last: b })
}

/// Errors name the field; `[qos]` keys carry no line numbers (maps).
pub fn validate(
    section: &QosSection,
    ports: &[PortConfig],
) -> Result<Option<QosConfig>, (String, String)> {
    if !section.enabled {
        return Ok(None);
    }
    let class = |field: String, name: &str| {
        QosClass::parse(name).ok_or((
            field,
            format!("{name:?} is not a class (realtime, interactive, streaming, standard, bulk)"),
        ))
    };
    let mut shaped = Vec::new();
    for (name, p) in &section.ports {
        let Some(index) = ports.iter().position(|q| &q.name == name) else {
            return Err((
                format!("qos.ports.{name}"),
                format!("no port is named {name:?}"),
            ));
        };
        let rate = parse_rate(&p.rate).ok_or((
            format!("qos.ports.{name}.rate"),
            "a rate is a number of bit/s or a string like \"100Mbit\" or \"1Gbit\"".to_string(),
        ))?;
        shaped.push(ShapedPort {
            port: index,
            rate_bps: rate,
            burst_bytes: p.burst_bytes,
        });
    }
    let mut classes = Vec::new();
    for (name, c) in &section.classes {
        let cls = class(format!("qos.classes.{name}"), name)?;
        if let Some(p) = &c.ceiling {
            if percent_to_permille(p).is_none() {
                return Err((
                    format!("qos.classes.{name}.ceiling"),
                    format!("{p:?} is not a percentage in (0%, 100%]"),
                ));
            }
        }
        classes.push((cls, c.clone()));
    }
    let mut map = ClassMap::default();
    map.trust_dscp = section.trust_dscp;
    if let Some(d) = &section.default_class {
        map.default = class("qos.default_class".into(), d)?;
    }
    for (cat, cls) in &section.categories {
        let Some(category) = Category::parse(cat) else {
            return Err((
                format!("qos.categories.{cat}"),
                format!("{cat:?} is not a DPI category"),
            ));
        };
        map.categories[category as usize] = Some(class(format!("qos.categories.{cat}"), cls)?);
    }
    for (i, r) in section.rules.iter().enumerate() {
        let field = |f: &str| format!("qos.rules[{i}].{f}");
        let Some(name) = &r.class else {
            return Err((field("class"), "a QoS rule needs a class".to_string()));
        };
        let rule = match_rule(&field, &r.fields(), class(field("class"), name)?)?;
        map.rules.push(rule);
    }
    let mut app_classes = Vec::new();
    for (app, cls) in &section.apps {
        app_classes.push((app.clone(), class(format!("qos.apps.{app}"), cls)?));
    }
    let mut dscp_out = DscpMap::default();
    for (name, v) in &section.dscp {
        let cls = class(format!("qos.dscp.{name}"), name)?;
        let d = dscp_value(v).ok_or((
            format!("qos.dscp.{name}"),
            "not a DSCP name (EF, AF41, CS1, ...) or number 0-63".to_string(),
        ))?;
        dscp_out.set(cls, d);
    }
    let config = QosConfig {
        ports: shaped,
        classes,
        quantum_bytes: section.quantum_bytes,
        overhead_bytes: section.overhead_bytes,
        rebalance_ms: section.rebalance_ms.unwrap_or(50).clamp(1, 10_000),
        class_map: map,
        app_classes,
        dscp_out,
    };
    // Catch what the scheduler refuses now, not when the workers start.
    for p in &config.ports {
        let c = config.scheduler_config(2_000_000_000, p.rate_bps, p);
        patronus_dataplane::qos::Scheduler::<()>::new(&c, 0).map_err(|e| {
            (
                format!("qos.ports.{}", ports[p.port].name),
                format!("the scheduler refuses these settings: {e}"),
            )
        })?;
    }
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_units() {
        assert_eq!(
            parse_rate(&toml::Value::String("100Mbit".into())),
            Some(100_000_000)
        );
        assert_eq!(
            parse_rate(&toml::Value::String("1.5gbit".into())),
            Some(1_500_000_000)
        );
        assert_eq!(parse_rate(&toml::Value::Integer(64000)), Some(64000));
        assert_eq!(parse_rate(&toml::Value::String("fast".into())), None);
        assert_eq!(parse_rate(&toml::Value::Integer(0)), None);
    }

    #[test]
    fn percentages_become_permille() {
        assert_eq!(percent_to_permille("33.3%"), Some(333));
        assert_eq!(percent_to_permille("100%"), Some(1000));
        assert_eq!(percent_to_permille("0%"), None);
        assert_eq!(percent_to_permille("150%"), None);
        assert_eq!(percent_to_permille("33"), None);
    }

    #[test]
    fn dscp_names_and_numbers() {
        assert_eq!(dscp_value(&toml::Value::String("ef".into())), Some(46));
        assert_eq!(dscp_value(&toml::Value::Integer(10)), Some(10));
        assert_eq!(dscp_value(&toml::Value::Integer(64)), None);
        assert_eq!(
            port_range("9000-9100").map(|r| (r.first, r.last)),
            Some((9000, 9100))
        );
        assert!(port_range("9100-9000").is_none());
    }
}
