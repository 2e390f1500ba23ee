//! Validation of SLA classes and policies sent to the API, against the
//! current snapshot, before anything reaches the daemon. Every error names
//! the offending field the way the request spelt it (`rules[0].dst_ports`),
//! so a client can point at it.

use super::model::{Policy, Rule, SlaClass};
use super::state::Snapshot;
use patronus_dataplane::dpi::types::Category;
use patronus_dataplane::qos::IpPrefix;

/// A field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Names end up in URLs, the config file, log lines and metric labels:
/// keep them short and plain. The same rule as the config file's
/// (`slaconfig`), so what the API accepts the daemon takes.
pub fn name(field: &str, name: &str) -> Result<(), Invalid> {
    if name.is_empty() || name.len() > 32 {
        return Err(invalid(field, "must be 1 to 32 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    {
        return Err(invalid(
            field,
            "may contain only letters, digits, '_' and '-'",
        ));
    }
    Ok(())
}

/// The largest latency or jitter limit a class may set, ms (the config
/// file's bound too).
pub const MAX_DELAY_LIMIT_MS: f64 = 60_000.0;

fn limit(field: &str, value: Option<f64>, max: Option<f64>) -> Result<(), Invalid> {
    let Some(v) = value else { return Ok(()) };
    if !v.is_finite() || v < 0.0 {
        return Err(invalid(field, "must be a finite number ≥ 0"));
    }
    if let Some(max) = max {
        if v > max {
            return Err(invalid(field, format!("must be at most {max}")));
        }
    }
    Ok(())
}

pub fn sla_class(class: &SlaClass) -> Result<(), Invalid> {
    name("name", &class.name)?;
    limit(
        "max_latency_ms",
        class.max_latency_ms,
        Some(MAX_DELAY_LIMIT_MS),
    )?;
    limit("max_loss_pct", class.max_loss_pct, Some(100.0))?;
    limit(
        "max_jitter_ms",
        class.max_jitter_ms,
        Some(MAX_DELAY_LIMIT_MS),
    )?;
    Ok(())
}

fn protocol(text: &str) -> bool {
    matches!(
        text.to_ascii_lowercase().as_str(),
        "tcp" | "udp" | "icmp" | "icmpv6"
    ) || text.parse::<u8>().is_ok()
}

fn port_range(text: &str) -> bool {
    let parse = |s: &str| s.trim().parse::<u16>().ok();
    match text.split_once('-') {
        Some((a, b)) => matches!((parse(a), parse(b)), (Some(a), Some(b)) if a <= b),
        None => parse(text).is_some(),
    }
}

fn rule(i: usize, r: &Rule) -> Result<(), Invalid> {
    let field = |f: &str| format!("rules[{i}].{f}");
    if let Some(p) = &r.protocol {
        if !protocol(p) {
            return Err(invalid(
                field("protocol"),
                "must be tcp, udp, icmp, icmpv6 or a number 0-255",
            ));
        }
    }
    for (name, value) in [("src", &r.src), ("dst", &r.dst)] {
        if let Some(v) = value {
            if IpPrefix::parse(v).is_none() {
                return Err(invalid(
                    field(name),
                    "must be an IP prefix such as 10.0.0.0/8 or 2001:db8::/32",
                ));
            }
        }
    }
    for (name, value) in [("src_ports", &r.src_ports), ("dst_ports", &r.dst_ports)] {
        if let Some(v) = value {
            if !port_range(v) {
                return Err(invalid(
                    field(name),
                    "must be a port or a range first-last with first ≤ last",
                ));
            }
        }
    }
    if r.dscp.is_some_and(|d| d > 63) {
        return Err(invalid(field("dscp"), "must be 0-63"));
    }
    Ok(())
}

fn path_ref(text: &str, snap: &Snapshot) -> Result<(), &'static str> {
    match text.split_once(':') {
        // Paths count from 1, as in the config file and the logs.
        Some(("path", n)) => match n.parse::<u8>() {
            Ok(1..=8) => Ok(()),
            _ => Err("path:N needs N from 1 to 8 (path 1 is the peer's endpoint path)"),
        },
        Some(("port", name)) => {
            // An empty snapshot (daemon not publishing yet) cannot say.
            if snap.ports.is_empty() || snap.ports.iter().any(|p| p.name == name && p.role == "wan")
            {
                Ok(())
            } else {
                Err("names no WAN port of this node")
            }
        }
        _ => Err("must be path:N or port:NAME"),
    }
}

pub fn policy(p: &Policy, snap: &Snapshot) -> Result<(), Invalid> {
    name("name", &p.name)?;
    if !snap.sla_classes.iter().any(|c| c.name == p.sla_class) {
        return Err(invalid(
            "sla_class",
            format!("no SLA class named {:?}", p.sla_class),
        ));
    }
    for (i, c) in p.categories.iter().enumerate() {
        if Category::parse(c).is_none() {
            let known: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
            return Err(invalid(
                format!("categories[{i}]"),
                format!("unknown category; known: {}", known.join(", ")),
            ));
        }
    }
    for (i, a) in p.apps.iter().enumerate() {
        let known = snap.apps.is_empty() || snap.apps.iter().any(|k| k.eq_ignore_ascii_case(a));
        if a.is_empty() || !known {
            return Err(invalid(format!("apps[{i}]"), "unknown application"));
        }
    }
    for (i, r) in p.rules.iter().enumerate() {
        rule(i, r)?;
    }
    if p.categories.is_empty() && p.apps.is_empty() && p.rules.is_empty() {
        return Err(invalid(
            "categories",
            "a policy must match something: give categories, apps or rules",
        ));
    }
    for (i, r) in p.path_order.iter().enumerate() {
        path_ref(r, snap).map_err(|m| invalid(format!("path_order[{i}]"), m))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::model::{Mode, Port};

    fn snap() -> Snapshot {
        Snapshot {
            sla_classes: vec![SlaClass {
                name: "voice".into(),
                max_latency_ms: Some(150.0),
                max_loss_pct: Some(1.0),
                max_jitter_ms: None,
            }],
            ports: vec![
                Port {
                    name: "wan1".into(),
                    role: "wan".into(),
                    ..Port::default()
                },
                Port {
                    name: "lan".into(),
                    role: "lan".into(),
                    ..Port::default()
                },
            ],
            ..Snapshot::default()
        }
    }

    fn voice() -> Policy {
        Policy {
            name: "voice".into(),
            sla_class: "voice".into(),
            categories: vec!["VoIP".into()],
            apps: vec![],
            rules: vec![],
            path_order: vec!["port:wan1".into(), "path:2".into()],
            mode: Mode::BestPath,
        }
    }

    fn field_of(r: Result<(), Invalid>) -> String {
        r.unwrap_err().field
    }

    #[test]
    fn a_good_policy_passes() {
        assert_eq!(policy(&voice(), &snap()), Ok(()));
    }

    #[test]
    fn errors_name_the_field() {
        let s = snap();
        let mut p = voice();
        p.sla_class = "gold".into();
        assert_eq!(field_of(policy(&p, &s)), "sla_class");
        let mut p = voice();
        p.categories.push("Telepathy".into());
        assert_eq!(field_of(policy(&p, &s)), "categories[1]");
        let mut p = voice();
        p.rules = vec![
            Rule::default(),
            Rule {
                dst_ports: Some("20-10".into()),
                ..Rule::default()
            },
        ];
        assert_eq!(field_of(policy(&p, &s)), "rules[1].dst_ports");
        let mut p = voice();
        p.path_order = vec!["port:wan9".into()];
        assert_eq!(field_of(policy(&p, &s)), "path_order[0]");
        p.path_order = vec!["path:1".into(), "port:lan".into()];
        assert_eq!(field_of(policy(&p, &s)), "path_order[1]");
        let mut p = voice();
        p.name = "a b".into();
        assert_eq!(field_of(policy(&p, &s)), "name");
        let mut p = voice();
        p.categories.clear();
        assert_eq!(field_of(policy(&p, &s)), "categories");
    }

    #[test]
    fn class_limits_must_be_finite_and_non_negative() {
        let mut c = snap().sla_classes[0].clone();
        assert_eq!(sla_class(&c), Ok(()));
        c.max_loss_pct = Some(101.0);
        assert_eq!(field_of(sla_class(&c)), "max_loss_pct");
        c.max_loss_pct = None;
        c.max_jitter_ms = Some(-1.0);
        assert_eq!(field_of(sla_class(&c)), "max_jitter_ms");
        c.max_jitter_ms = None;
        c.max_latency_ms = Some(f64::NAN);
        assert_eq!(field_of(sla_class(&c)), "max_latency_ms");
    }

    #[test]
    fn rule_fields_parse_like_the_qos_config() {
        assert!(protocol("TCP") && protocol("47") && !protocol("gre") && !protocol("256"));
        assert!(port_range("443") && port_range("1000-2000") && !port_range("2-1"));
        assert!(!port_range("x") && !port_range("70000"));
    }
}
