//! The `[sla]` section: the probe key, rate and window, SLA classes and the
//! policies that bind traffic to them (docs/sla.md, docs/configuration.md).
//! Peers are probed on every path when they say `sla = true`.
//!
//! ```toml
//! [sla]
//! key_file = "/etc/patronus/sla.key"   # `wg genkey` output, the same on every node
//! probe_rate = 10                      # per path, 1 to 100 a second
//!
//! [[sla.class]]
//! name = "voice"
//! max_latency_ms = 150                 # p95 round trip
//! max_loss_pct = 1
//! max_jitter_ms = 30
//!
//! [[sla.policy]]
//! name = "voice"
//! class = "voice"
//! categories = ["VoIP"]
//! rules = [{ protocol = "udp", dst_ports = "16384-32767" }]
//! paths = ["wan1", 2]                  # a WAN port, or a path number
//! mode = "best-path"                   # or "spread"
//! ```

use crate::config::PortConfig;
use crate::qosconfig::{match_rule, QosRuleSection, RuleFields};
use crate::sla::probe::{ProbeKey, ProbeKeys, MAX_KEY_LEN, MAX_RATE_PER_SEC, MIN_KEY_LEN};
use crate::sla::select::{Mode, PathRef, PolicyMatch, PolicySpec, SelectorConfig, SlaClass};
use base64::Engine as _;
use patronus_dataplane::dpi::types::Category;
use patronus_dataplane::qos::QosClass;
use patronus_dataplane::wg::keys::open_secret_file;
use serde::Deserialize;
use std::io::Read;
use std::sync::Arc;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaSection {
    pub key_file: String,
    pub key_id: Option<u8>,
    /// The key being replaced during a rotation, still accepted.
    pub previous_key_file: Option<String>,
    pub previous_key_id: Option<u8>,
    pub probe_rate: Option<u32>,
    pub window_secs: Option<u32>,
    /// A path with no probe reply for this long is down (probe-only
    /// failure detection).
    pub down_after_ms: Option<u32>,
    pub hold_ms: Option<u32>,
    pub cooldown_secs: Option<u32>,
    pub failback_secs: Option<u32>,
    #[serde(default, rename = "class")]
    pub classes: Vec<SlaClassSection>,
    #[serde(default, rename = "policy")]
    pub policies: Vec<SlaPolicySection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaClassSection {
    pub name: String,
    pub max_latency_ms: Option<f64>,
    pub max_loss_pct: Option<f64>,
    pub max_jitter_ms: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicySection {
    pub name: String,
    pub class: String,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub apps: Vec<String>,
    #[serde(default)]
    pub rules: Vec<QosRuleSection>,
    #[serde(default)]
    pub paths: Vec<toml::Value>,
    pub mode: Option<String>,
}

/// The default probe-only detection time: five probe intervals, and at
/// least half a second, so that a burst of loss on a lossy path is not a
/// failure (5 in a row at 3 % loss: 2·10⁻⁸).
pub const MIN_DOWN_AFTER_MS: u32 = 500;
pub const DEFAULT_WINDOW_SECS: u32 = 10;
pub const MAX_WINDOW_SECS: u32 = 600;
pub const MAX_POLICIES: usize = 64;

/// The validated `[sla]` section.
#[derive(Debug, Clone)]
pub struct SlaConfig {
    pub keys: ProbeKeys,
    pub probe_rate: u32,
    pub window_secs: u32,
    pub down_after_ms: u32,
    pub selector: SelectorConfig,
    /// The five defaults (named after the QoS classes), then the
    /// configured ones; a configured class replaces a default of its name.
    pub classes: Vec<SlaClass>,
    pub policies: Vec<PolicySpec>,
    /// Per policy, the application names its `apps` lists, resolved
    /// against the DPI engine by [`crate::config`].
    pub policy_apps: Vec<Vec<String>>,
}

/// Reads an SLA key file: base64 of 16 to 32 bytes (`wg genkey` makes
/// one), readable by its owner only.
fn read_key(path: &str, id: u8) -> Result<ProbeKey, String> {
    let mut file = open_secret_file(std::path::Path::new(path)).map_err(|e| e.to_string())?;
    let mut text = Zeroizing::new(Vec::with_capacity(128));
    file.by_ref()
        .take(128)
        .read_to_end(&mut text)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    let trimmed = text.trim_ascii();
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(trimmed)
            .map_err(|_| format!("{path} is not base64 (make one with `wg genkey`)"))?,
    );
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&bytes.len()) {
        return Err(format!(
            "{path} holds {} bytes; an SLA key is {MIN_KEY_LEN} to {MAX_KEY_LEN}",
            bytes.len()
        ));
    }
    ProbeKey::new(id, &bytes).map_err(|e| format!("{path}: {e}"))
}

/// One class from its fields; errors name `field`.
pub fn class(
    field: &str,
    name: &str,
    max_latency_ms: Option<f64>,
    max_loss_pct: Option<f64>,
    max_jitter_ms: Option<f64>,
) -> Result<SlaClass, (String, String)> {
    if name.is_empty() || name.len() > 32 || !name.chars().all(is_name_char) {
        return Err((
            format!("{field}.name"),
            format!("{name:?} is not a name (1 to 32 letters, digits, '-' or '_')"),
        ));
    }
    for (f, v, max) in [
        ("max_latency_ms", max_latency_ms, 60_000.0),
        ("max_loss_pct", max_loss_pct, 100.0),
        ("max_jitter_ms", max_jitter_ms, 60_000.0),
    ] {
        if let Some(v) = v {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                return Err((
                    format!("{field}.{f}"),
                    format!("{v} is not a number from 0 to {max}"),
                ));
            }
        }
    }
    Ok(SlaClass::new(
        name,
        max_latency_ms,
        max_loss_pct,
        max_jitter_ms,
    ))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The classes a node starts with: the QoS-class defaults.
pub fn default_classes() -> Vec<SlaClass> {
    SlaClass::defaults()
}

/// Adds or replaces a class by name.
pub fn upsert_class(classes: &mut Vec<SlaClass>, c: SlaClass) {
    match classes.iter_mut().find(|x| x.name == c.name) {
        Some(slot) => *slot = c,
        None => classes.push(c),
    }
}

/// What a policy is written as, whether from the config file or the API.
#[derive(Debug, Clone, Default)]
pub struct PolicyInput<'a> {
    pub name: &'a str,
    pub class: &'a str,
    pub categories: &'a [String],
    pub rules: Vec<RuleFields<'a>>,
    /// A path number (1-based) or a WAN port name each.
    pub paths: Vec<PathName<'a>>,
    pub mode: Option<&'a str>,
}

#[derive(Debug, Clone, Copy)]
pub enum PathName<'a> {
    Number(i64),
    Port(&'a str),
}

/// One policy; its `apps` are filled in by the caller (they need the DPI
/// engine). Errors name the field under `field`.
pub fn policy(
    field: &str,
    p: &PolicyInput<'_>,
    classes: &[SlaClass],
    ports: &[PortConfig],
) -> Result<PolicySpec, (String, String)> {
    if p.name.is_empty() || p.name.len() > 32 || !p.name.chars().all(is_name_char) {
        return Err((
            format!("{field}.name"),
            format!(
                "{:?} is not a name (1 to 32 letters, digits, '-' or '_')",
                p.name
            ),
        ));
    }
    if !classes.iter().any(|c| &*c.name == p.class) {
        let known: Vec<&str> = classes.iter().map(|c| &*c.name).collect();
        return Err((
            format!("{field}.class"),
            format!(
                "no SLA class is named {:?} (known: {})",
                p.class,
                known.join(", ")
            ),
        ));
    }
    let mut matches = PolicyMatch::default();
    for (i, c) in p.categories.iter().enumerate() {
        let Some(category) = Category::parse(c).filter(|c| *c != Category::Unknown) else {
            return Err((
                format!("{field}.categories[{i}]"),
                format!("{c:?} is not a DPI category (see docs/dpi.md)"),
            ));
        };
        matches.categories.push(category);
    }
    for (i, r) in p.rules.iter().enumerate() {
        let f = |x: &str| format!("{field}.rules[{i}].{x}");
        matches.rules.push(match_rule(&f, r, QosClass::DEFAULT)?);
    }
    let mut path_order = Vec::new();
    let max = patronus_dataplane::wg::datapath::MAX_PATHS as i64;
    for (i, path) in p.paths.iter().enumerate() {
        path_order.push(match *path {
            PathName::Number(n) if (1..=max).contains(&n) => PathRef::Path((n - 1) as u8),
            PathName::Number(n) => {
                return Err((
                    format!("{field}.paths[{i}]"),
                    format!("path {n} is not a path number from 1 to {max}"),
                ))
            }
            PathName::Port(name) => match ports.iter().position(|x| x.name == name) {
                Some(port) => PathRef::Port(port as u8),
                None => {
                    return Err((
                        format!("{field}.paths[{i}]"),
                        format!("no port is named {name:?}"),
                    ))
                }
            },
        });
    }
    let mode = match p.mode {
        None | Some("best-path") => Mode::BestPath,
        Some("spread") => Mode::SpreadCompliant,
        Some(other) => {
            return Err((
                format!("{field}.mode"),
                format!("{other:?} is not \"best-path\" or \"spread\""),
            ))
        }
    };
    Ok(PolicySpec {
        name: Arc::from(p.name),
        matches,
        sla: p.class.to_string(),
        path_order,
        mode,
    })
}

/// Errors name the field.
pub fn validate(s: &SlaSection, ports: &[PortConfig]) -> Result<SlaConfig, (String, String)> {
    let key_id = s.key_id.unwrap_or(1);
    let current = read_key(&s.key_file, key_id).map_err(|m| ("sla.key_file".to_string(), m))?;
    let keys = match &s.previous_key_file {
        None => ProbeKeys::new(current),
        Some(path) => {
            let id = s.previous_key_id.unwrap_or(key_id.wrapping_sub(1));
            let previous =
                read_key(path, id).map_err(|m| ("sla.previous_key_file".to_string(), m))?;
            ProbeKeys::with_previous(current, previous)
                .map_err(|e| ("sla.previous_key_id".to_string(), e.to_string()))?
        }
    };
    let probe_rate = s
        .probe_rate
        .unwrap_or(crate::sla::probe::DEFAULT_RATE_PER_SEC);
    if !(1..=MAX_RATE_PER_SEC).contains(&probe_rate) {
        return Err((
            "sla.probe_rate".into(),
            format!("{probe_rate} is not a rate from 1 to {MAX_RATE_PER_SEC} probes a second"),
        ));
    }
    let window_secs = s.window_secs.unwrap_or(DEFAULT_WINDOW_SECS);
    if !(1..=MAX_WINDOW_SECS).contains(&window_secs) {
        return Err((
            "sla.window_secs".into(),
            format!("{window_secs} is not from 1 to {MAX_WINDOW_SECS} seconds"),
        ));
    }
    let interval_ms = 1000 / probe_rate;
    let down_after_ms = s
        .down_after_ms
        .unwrap_or((5 * interval_ms).max(MIN_DOWN_AFTER_MS));
    if down_after_ms < 2 * interval_ms || down_after_ms > 60_000 {
        return Err((
            "sla.down_after_ms".into(),
            format!(
                "{down_after_ms} ms is not from two probe intervals ({} ms) to 60000 ms",
                2 * interval_ms
            ),
        ));
    }
    let mut selector = SelectorConfig::default();
    const MS: u64 = 1_000_000;
    if let Some(v) = s.hold_ms {
        selector.hold_ns = u64::from(v) * MS;
    }
    if let Some(v) = s.cooldown_secs {
        selector.cooldown_ns = u64::from(v) * 1000 * MS;
    }
    if let Some(v) = s.failback_secs {
        selector.failback_delay_ns = u64::from(v) * 1000 * MS;
    }
    let mut classes = default_classes();
    for (i, c) in s.classes.iter().enumerate() {
        let f = format!("sla.class[{i}]");
        upsert_class(
            &mut classes,
            class(
                &f,
                &c.name,
                c.max_latency_ms,
                c.max_loss_pct,
                c.max_jitter_ms,
            )?,
        );
    }
    if s.policies.len() > MAX_POLICIES {
        return Err((
            "sla.policy".into(),
            format!("at most {MAX_POLICIES} policies"),
        ));
    }
    let mut policies = Vec::new();
    let mut policy_apps = Vec::new();
    for (i, p) in s.policies.iter().enumerate() {
        let f = format!("sla.policy[{i}]");
        let mut paths = Vec::new();
        for (j, v) in p.paths.iter().enumerate() {
            paths.push(match v {
                toml::Value::Integer(n) => PathName::Number(*n),
                toml::Value::String(s) => PathName::Port(s),
                _ => {
                    return Err((
                        format!("{f}.paths[{j}]"),
                        "a path is a number (1, 2, ...) or a WAN port name".into(),
                    ))
                }
            });
        }
        if let Some(j) = p.rules.iter().position(|r| r.class.is_some()) {
            return Err((
                format!("{f}.rules[{j}].class"),
                "an SLA policy's rules take no QoS class (the policy's class is its SLA class)"
                    .into(),
            ));
        }
        let input = PolicyInput {
            name: &p.name,
            class: &p.class,
            categories: &p.categories,
            rules: p.rules.iter().map(QosRuleSection::fields).collect(),
            paths,
            mode: p.mode.as_deref(),
        };
        let spec = policy(&f, &input, &classes, ports)?;
        if policies.iter().any(|q: &PolicySpec| q.name == spec.name) {
            return Err((
                format!("{f}.name"),
                format!("two policies are named {:?}", p.name),
            ));
        }
        policies.push(spec);
        policy_apps.push(p.apps.clone());
    }
    Ok(SlaConfig {
        keys,
        probe_rate,
        window_secs,
        down_after_ms,
        selector,
        classes,
        policies,
        policy_apps,
    })
}
