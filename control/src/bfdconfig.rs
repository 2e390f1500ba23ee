//! The `[bfd]` section: defaults for every session, the neighbours to run
//! sessions with (such as the WAN router), and authentication.
//!
//! ```toml
//! [bfd]
//! interval_ms = 50          # desired min tx and required min rx
//! multiplier = 3
//!
//! [[bfd.neighbor]]
//! port = "wan1"
//! address = "10.100.1.1"    # single-hop (RFC 5881) unless multihop = true
//! interval_ms = 10
//! auth = "meticulous-sha1"  # or "sha1"; needs auth_key_file
//! auth_key_id = 1
//! auth_key_file = "/etc/patronus/bfd.key"
//! ```
//!
//! WireGuard peers with `bfd = true` get one multihop session (RFC 5883) on
//! each of their paths, from the path's local address to the endpoint's,
//! with the section's defaults and authentication.

use crate::config::PortConfig;
use patronus_dataplane::wg::keys::open_secret_file;
use serde::Deserialize;
use std::io::Read;
use std::net::IpAddr;
use toml::Spanned;
use zeroize::Zeroizing;

/// The shortest interval we run (RFC 5880 allows less; 10 ms is what a
/// control thread can keep with margin).
pub const MIN_INTERVAL_MS: u32 = 10;
pub const MAX_INTERVAL_MS: u32 = 10_000;
pub const DEFAULT_INTERVAL_MS: u32 = 300;
pub const DEFAULT_MULTIPLIER: u8 = 3;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BfdSection {
    pub interval_ms: Option<Spanned<u32>>,
    pub multiplier: Option<Spanned<u8>>,
    /// `"none"`, `"sha1"` (keyed SHA1) or `"meticulous-sha1"`.
    pub auth: Option<Spanned<String>>,
    pub auth_key_id: Option<u8>,
    pub auth_key_file: Option<Spanned<String>>,
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<NeighborSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborSection {
    pub port: Spanned<String>,
    pub address: Spanned<String>,
    #[serde(default)]
    pub multihop: bool,
    /// Wait for the neighbour to speak first (RFC 5880 6.1 passive role).
    #[serde(default)]
    pub passive: bool,
    pub interval_ms: Option<Spanned<u32>>,
    pub multiplier: Option<Spanned<u8>>,
    pub auth: Option<Spanned<String>>,
    pub auth_key_id: Option<u8>,
    pub auth_key_file: Option<Spanned<String>>,
}

/// A validated authentication setting. The secret is zeroized on drop and
/// never printed.
#[derive(Clone)]
pub struct BfdAuth {
    pub key_id: u8,
    pub secret: Zeroizing<Vec<u8>>,
    pub meticulous: bool,
}

impl std::fmt::Debug for BfdAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BfdAuth")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .field("meticulous", &self.meticulous)
            .finish()
    }
}

/// One neighbour session.
#[derive(Debug, Clone)]
pub struct BfdNeighbor {
    /// Index of our port in the config's ports.
    pub port: usize,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub multihop: bool,
    pub passive: bool,
    pub interval_ms: u32,
    pub multiplier: u8,
    pub auth: Option<BfdAuth>,
}

/// The validated `[bfd]` section.
#[derive(Debug, Clone)]
pub struct BfdConfig {
    pub interval_ms: u32,
    pub multiplier: u8,
    /// For the peers' path sessions.
    pub auth: Option<BfdAuth>,
    pub neighbors: Vec<BfdNeighbor>,
}

impl Default for BfdConfig {
    fn default() -> Self {
        BfdConfig {
            interval_ms: DEFAULT_INTERVAL_MS,
            multiplier: DEFAULT_MULTIPLIER,
            auth: None,
            neighbors: Vec::new(),
        }
    }
}

/// A `[bfd]` error: field, span (for the line) and message.
#[derive(Debug)]
pub struct BfdConfigError {
    pub field: String,
    pub span: Option<std::ops::Range<usize>>,
    pub message: String,
}

fn err<T>(
    field: impl Into<String>,
    span: Option<std::ops::Range<usize>>,
    message: impl Into<String>,
) -> Result<T, BfdConfigError> {
    Err(BfdConfigError {
        field: field.into(),
        span,
        message: message.into(),
    })
}

fn interval(field: &str, v: Option<&Spanned<u32>>, default: u32) -> Result<u32, BfdConfigError> {
    match v {
        None => Ok(default),
        Some(s) if (MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(s.get_ref()) => Ok(*s.get_ref()),
        Some(s) => err(
            field,
            Some(s.span()),
            format!(
                "{} ms is outside {MIN_INTERVAL_MS} to {MAX_INTERVAL_MS} ms",
                s.get_ref()
            ),
        ),
    }
}

fn multiplier(field: &str, v: Option<&Spanned<u8>>, default: u8) -> Result<u8, BfdConfigError> {
    match v {
        None => Ok(default),
        Some(s) if *s.get_ref() >= 1 => Ok(*s.get_ref()),
        Some(s) => err(field, Some(s.span()), "must be at least 1"),
    }
}

/// Reads a BFD key file: 1 to 20 bytes (RFC 5880 4.4), a trailing newline
/// ignored, readable by its owner only.
fn read_key(path: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut file = open_secret_file(std::path::Path::new(path)).map_err(|e| e.to_string())?;
    let mut bytes = Zeroizing::new(Vec::with_capacity(64));
    file.by_ref()
        .take(64)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.is_empty() || bytes.len() > 20 {
        return Err(format!(
            "{path} holds {} bytes; a BFD SHA1 key is 1 to 20 bytes",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn auth(
    prefix: &str,
    kind: Option<&Spanned<String>>,
    key_id: Option<u8>,
    key_file: Option<&Spanned<String>>,
    inherited: Option<&BfdAuth>,
) -> Result<Option<BfdAuth>, BfdConfigError> {
    let Some(kind) = kind else {
        return Ok(inherited.cloned());
    };
    let meticulous = match kind.get_ref().as_str() {
        "none" => return Ok(None),
        "sha1" => false,
        "meticulous-sha1" => true,
        other => {
            return err(
                format!("{prefix}auth"),
                Some(kind.span()),
                format!("{other:?} is not one of \"none\", \"sha1\", \"meticulous-sha1\""),
            )
        }
    };
    let Some(file) = key_file else {
        return err(
            format!("{prefix}auth_key_file"),
            Some(kind.span()),
            "SHA1 authentication needs auth_key_file",
        );
    };
    let secret = read_key(file.get_ref())
        .or_else(|m| err(format!("{prefix}auth_key_file"), Some(file.span()), m))?;
    Ok(Some(BfdAuth {
        key_id: key_id.unwrap_or(1),
        secret,
        meticulous,
    }))
}

impl BfdSection {
    pub fn validate(&self, ports: &[PortConfig]) -> Result<BfdConfig, BfdConfigError> {
        let interval_ms = interval(
            "bfd.interval_ms",
            self.interval_ms.as_ref(),
            DEFAULT_INTERVAL_MS,
        )?;
        let mult = multiplier(
            "bfd.multiplier",
            self.multiplier.as_ref(),
            DEFAULT_MULTIPLIER,
        )?;
        let default_auth = auth(
            "bfd.",
            self.auth.as_ref(),
            self.auth_key_id,
            self.auth_key_file.as_ref(),
            None,
        )?;
        let mut neighbors = Vec::with_capacity(self.neighbors.len());
        for (i, n) in self.neighbors.iter().enumerate() {
            let prefix = format!("bfd.neighbor[{i}].");
            let name = n.port.get_ref().trim();
            let Some(port) = ports.iter().position(|p| p.name == name) else {
                return err(
                    format!("{prefix}port"),
                    Some(n.port.span()),
                    format!("no port is named {name:?}"),
                );
            };
            let remote: IpAddr = match n.address.get_ref().trim().parse() {
                Ok(a) => a,
                Err(_) => {
                    return err(
                        format!("{prefix}address"),
                        Some(n.address.span()),
                        format!("{:?} is not an IP address", n.address.get_ref()),
                    )
                }
            };
            let Some(local) = ports[port]
                .addresses
                .iter()
                .map(|(a, _)| *a)
                .find(|a| a.is_ipv4() == remote.is_ipv4())
            else {
                return err(
                    format!("{prefix}address"),
                    Some(n.address.span()),
                    format!(
                        "port {name} has no {} address to run BFD from",
                        if remote.is_ipv4() { "IPv4" } else { "IPv6" }
                    ),
                );
            };
            if neighbors
                .iter()
                .any(|m: &BfdNeighbor| m.port == port && m.remote == remote)
            {
                return err(
                    format!("{prefix}address"),
                    Some(n.address.span()),
                    format!("a second session to {remote} on port {name}"),
                );
            }
            neighbors.push(BfdNeighbor {
                port,
                local,
                remote,
                multihop: n.multihop,
                passive: n.passive,
                interval_ms: interval(
                    &format!("{prefix}interval_ms"),
                    n.interval_ms.as_ref(),
                    interval_ms,
                )?,
                multiplier: multiplier(
                    &format!("{prefix}multiplier"),
                    n.multiplier.as_ref(),
                    mult,
                )?,
                auth: auth(
                    &prefix,
                    n.auth.as_ref(),
                    n.auth_key_id.or(self.auth_key_id),
                    n.auth_key_file.as_ref().or(self.auth_key_file.as_ref()),
                    default_auth.as_ref(),
                )?,
            });
        }
        Ok(BfdConfig {
            interval_ms,
            multiplier: mult,
            auth: default_auth,
            neighbors,
        })
    }
}
