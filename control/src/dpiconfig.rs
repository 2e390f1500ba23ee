//! The `[dpi]` and `[policy]` sections: the per-worker DPI engine and flow
//! table, extra application rules, and which WAN port each category or
//! application prefers.
//!
//! ```toml
//! [dpi]
//! flows = 1000000            # per worker
//! max_packets = 12
//! [[dpi.rule]]
//! suffix = "intranet.example.com"
//! app = "Intranet"
//! category = "Web"
//!
//! [policy.prefer]            # category or application -> WAN port
//! VoIP = "wan1"
//! Zoom = "wan1"
//! FileTransfer = "wan2"
//! ```

use crate::config::{PortConfig, PortRole};
use patronus_dataplane::dpi::engine::{AppRuleConfig, DpiConfig};
use patronus_dataplane::dpi::types::Category;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpiSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Flow-table capacity per worker.
    pub flows: Option<u32>,
    pub max_packets: Option<u8>,
    pub tcp_idle_secs: Option<u32>,
    pub other_idle_secs: Option<u32>,
    pub reassembly_slots: Option<u32>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<DpiRuleSection>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpiRuleSection {
    pub suffix: String,
    pub app: String,
    pub category: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Category or application name → WAN port name.
    #[serde(default)]
    pub prefer: BTreeMap<String, String>,
}

pub const DEFAULT_FLOWS: u32 = 262_144;
pub const MAX_FLOWS: u32 = 16_777_216;

/// The validated `[dpi]` section.
#[derive(Debug, Clone)]
pub struct DpiSettings {
    pub engine: DpiConfig,
    pub flows: u32,
    pub tcp_idle_secs: u32,
    pub other_idle_secs: u32,
}

/// The validated `[policy]` section: preferences by category, and by
/// application name (resolved against the engine's table at start).
#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    pub category_port: Vec<(Category, usize)>,
    pub app_port: Vec<(String, usize)>,
}

pub fn validate_dpi(section: &DpiSection) -> Result<Option<DpiSettings>, (String, String)> {
    if !section.enabled {
        return Ok(None);
    }
    let flows = section.flows.unwrap_or(DEFAULT_FLOWS);
    if !(1024..=MAX_FLOWS).contains(&flows) {
        return Err((
            "dpi.flows".into(),
            format!("{flows} is outside 1024 to {MAX_FLOWS}"),
        ));
    }
    let mut engine = DpiConfig::default();
    if let Some(m) = section.max_packets {
        if m == 0 {
            return Err(("dpi.max_packets".into(), "must be at least 1".into()));
        }
        engine.max_packets = m;
    }
    if let Some(r) = section.reassembly_slots {
        // 4 KiB each, allocated at start: the engine's index is 16 bits.
        if !(1..=65_534).contains(&r) {
            return Err((
                "dpi.reassembly_slots".into(),
                format!("{r} is outside 1 to 65534"),
            ));
        }
        engine.reassembly_slots = r as usize;
    }
    for (i, r) in section.rules.iter().enumerate() {
        if Category::parse(&r.category).is_none() {
            return Err((
                format!("dpi.rule[{i}].category"),
                format!(
                    "{:?} is not a category ({})",
                    r.category,
                    Category::ALL.map(|c| c.name()).join(", ")
                ),
            ));
        }
        engine.rules.push(AppRuleConfig {
            suffix: r.suffix.clone(),
            app: r.app.clone(),
            category: r.category.clone(),
        });
    }
    // The engine checks the rules themselves (suffix syntax, lengths).
    patronus_dataplane::dpi::engine::DpiEngine::new(engine.clone())
        .map_err(|e| ("dpi.rule".to_string(), e.to_string()))?;
    Ok(Some(DpiSettings {
        engine,
        flows,
        tcp_idle_secs: section.tcp_idle_secs.unwrap_or(300).max(1),
        other_idle_secs: section.other_idle_secs.unwrap_or(60).max(1),
    }))
}

pub fn validate_policy(
    section: &PolicySection,
    ports: &[PortConfig],
) -> Result<PolicyConfig, (String, String)> {
    let mut out = PolicyConfig::default();
    for (what, port) in &section.prefer {
        let field = format!("policy.prefer.{what}");
        let Some(index) = ports.iter().position(|p| &p.name == port) else {
            return Err((field, format!("no port is named {port:?}")));
        };
        if ports[index].role != PortRole::Wan {
            return Err((field, format!("{port} is not a WAN port")));
        }
        match Category::parse(what) {
            Some(c) => out.category_port.push((c, index)),
            None => out.app_port.push((what.clone(), index)),
        }
    }
    Ok(out)
}
