//! The `[wireguard]` configuration section, and the import of a wg-quick
//! style file (`[Interface]` PrivateKey/ListenPort, `[Peer]`
//! PublicKey/PresharedKey/Endpoint/AllowedIPs/PersistentKeepalive), so an
//! existing WireGuard user can point Patronus at their wg0.conf.
//!
//! Keys never appear in errors, logs or Debug output.

use patronus_dataplane::wg::allowed_ips::parse_prefix;
use patronus_dataplane::wg::keys::{open_secret_file, PresharedKey, PrivateKey, PublicKey};
use serde::Deserialize;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The default WireGuard port.
pub const DEFAULT_LISTEN_PORT: u16 = 51820;
/// wg-quick's default tunnel MTU.
pub const DEFAULT_MTU: u16 = 1420;
/// Outer IPv4 (20), UDP (8), WireGuard header (16) and tag (16).
pub const OUTER_OVERHEAD: u16 = 60;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireguardSection {
    /// Our private key: a file holding it in base64 (as `wg genkey` writes
    /// it), readable by its owner only.
    pub private_key_file: Option<Spanned<String>>,
    pub listen_port: Option<Spanned<u16>>,
    /// Our IPv4 address on the WAN port: tunnel packets leave from it and
    /// arrive at it.
    pub address: Spanned<String>,
    /// A wg-quick file to take the interface key, port and peers from.
    pub import: Option<Spanned<String>>,
    /// The largest inner packet the tunnel carries (default 1420, as
    /// wg-quick's default); larger ones get ICMP "fragmentation needed" /
    /// "packet too big". At most the WAN MTU minus 60 (outer IPv4, UDP and
    /// WireGuard headers).
    pub mtu: Option<Spanned<u16>>,
    #[serde(default, rename = "peer")]
    pub peers: Vec<PeerSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSection {
    /// A label for logs and errors; defaults to the public key's prefix.
    pub name: Option<String>,
    pub public_key: Spanned<String>,
    pub preshared_key_file: Option<Spanned<String>>,
    /// `IP:port`; a peer without one only answers (it must initiate).
    pub endpoint: Option<Spanned<String>>,
    pub allowed_ips: Spanned<Vec<String>>,
    /// Seconds; 0 or absent = off.
    #[serde(default)]
    pub persistent_keepalive: u16,
    /// More ways to reach the peer, each over one of our WAN ports:
    /// `paths = [{ port = "wan2", endpoint = "203.0.113.7:51820" }]`. The
    /// peer's `endpoint`, if set, is the first path, on the first WAN port.
    #[serde(default)]
    pub paths: Vec<PathSection>,
    /// Run a multihop BFD session (RFC 5883) on each path, with the
    /// `[bfd]` defaults; a path whose session is down carries no traffic.
    /// The peer must run BFD too (another Patronus node).
    #[serde(default)]
    pub bfd: bool,
    /// Send authenticated SLA probes on each path (`[sla]`); the peer must
    /// run them too (another Patronus node).
    #[serde(default)]
    pub sla: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathSection {
    /// The name of one of our WAN ports.
    pub port: String,
    pub endpoint: String,
}

/// One validated path: our WAN port (index in the config's ports), our
/// address there, and the peer's endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathConfig {
    pub port: usize,
    pub local_ip: Ipv4Addr,
    pub endpoint: SocketAddrV4,
}

/// One validated peer.
#[derive(Debug)]
pub struct WgPeerConfig {
    pub name: String,
    pub public_key: PublicKey,
    pub preshared_key: Option<PresharedKey>,
    pub endpoint: Option<SocketAddrV4>,
    pub allowed_ips: Vec<(IpAddr, u8)>,
    pub persistent_keepalive: u16,
    /// Every path, the `endpoint` one first; empty for a peer that must
    /// initiate (its endpoint is learned from its handshake).
    pub paths: Vec<PathConfig>,
    /// BFD on every path.
    pub bfd: bool,
    /// SLA probes on every path.
    pub sla: bool,
}

/// The validated `[wireguard]` section.
#[derive(Debug)]
pub struct WireguardConfig {
    pub private_key: PrivateKey,
    pub listen_port: u16,
    pub mtu: u16,
    pub address: Ipv4Addr,
    pub peers: Vec<WgPeerConfig>,
}

/// An error in the WireGuard settings: the field (with the peer it belongs
/// to), the line when known, and what is wrong. `file` is set when the
/// error is in an imported wg-quick file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgError {
    pub file: Option<PathBuf>,
    pub field: String,
    pub span: Option<std::ops::Range<usize>>,
    pub line: Option<usize>,
    pub message: String,
}

fn err<T>(
    field: impl Into<String>,
    span: Option<std::ops::Range<usize>>,
    message: impl Into<String>,
) -> Result<T, WgError> {
    Err(WgError {
        file: None,
        field: field.into(),
        span,
        line: None,
        message: message.into(),
    })
}

fn short_name(key: &PublicKey) -> String {
    let b64 = key.to_string();
    format!("peer {}…", &b64[..8.min(b64.len())])
}

/// Parses `IP:port` (IPv4 for now: the outer header is IPv4).
pub fn parse_endpoint(text: &str) -> Result<SocketAddrV4, String> {
    match text.trim().parse::<SocketAddr>() {
        Ok(SocketAddr::V4(a)) if a.port() != 0 => Ok(a),
        Ok(SocketAddr::V4(_)) => Err("the port must not be 0".into()),
        Ok(SocketAddr::V6(_)) => Err("IPv6 endpoints are not supported yet; use an IPv4 address".into()),
        Err(_) => Err(format!("{text:?} is not an IPv4 address and port like 192.0.2.1:51820 (host names are not resolved)")),
    }
}

impl WireguardSection {
    /// Validates the section (and the imported file, if any); `wan_mtu` is
    /// the WAN port's MTU.
    pub fn validate(
        &self,
        wan_mtu: u16,
        ports: &[crate::config::PortConfig],
    ) -> Result<WireguardConfig, WgError> {
        let mtu = match &self.mtu {
            None => DEFAULT_MTU.min(wan_mtu.saturating_sub(OUTER_OVERHEAD)),
            Some(m) if *m.get_ref() < 576 || *m.get_ref() + OUTER_OVERHEAD > wan_mtu => {
                return err(
                    "wireguard.mtu",
                    Some(m.span()),
                    format!(
                        "{} is outside 576 to {} (the WAN MTU {wan_mtu} minus {OUTER_OVERHEAD} bytes of outer headers)",
                        m.get_ref(),
                        wan_mtu.saturating_sub(OUTER_OVERHEAD)
                    ),
                )
            }
            Some(m) => *m.get_ref(),
        };
        let imported = match &self.import {
            Some(path) => Some(import_wg_quick(Path::new(path.get_ref())).map_err(|mut e| {
                if e.file.is_none() {
                    e.span = Some(path.span());
                }
                e
            })?),
            None => None,
        };
        let (imported_key, imported_port, imported_peers) = match imported {
            Some(i) => (Some(i.private_key), Some(i.listen_port), i.peers),
            None => (None, None, Vec::new()),
        };
        let private_key = match (&self.private_key_file, imported_key) {
            (Some(file), None) => PrivateKey::load_file(file.get_ref()).or_else(|e| {
                err(
                    "wireguard.private_key_file",
                    Some(file.span()),
                    e.to_string(),
                )
            })?,
            (None, Some(key)) => key,
            (Some(file), Some(_)) => {
                return err(
                    "wireguard.private_key_file",
                    Some(file.span()),
                    "set either private_key_file or import, not both",
                )
            }
            (None, None) => {
                return err(
                    "wireguard.private_key_file",
                    None,
                    "is required (or import a wg-quick file)",
                )
            }
        };
        let listen_port = match (&self.listen_port, imported_port) {
            (Some(p), _) if *p.get_ref() == 0 => {
                return err("wireguard.listen_port", Some(p.span()), "must not be 0")
            }
            (Some(p), _) => *p.get_ref(),
            (None, Some(port)) => port,
            (None, None) => DEFAULT_LISTEN_PORT,
        };
        let address = self
            .address
            .get_ref()
            .trim()
            .parse::<Ipv4Addr>()
            .or_else(|_| {
                err(
                    "wireguard.address",
                    Some(self.address.span()),
                    format!("{:?} is not an IPv4 address", self.address.get_ref()),
                )
            })?;

        // Our IPv4 address on each WAN port: its first configured one, and
        // `address` on the first WAN port.
        let wan_ports: Vec<(usize, &crate::config::PortConfig)> = ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.role == crate::config::PortRole::Wan)
            .collect();
        let local_ip_of = |index: usize| -> Option<Ipv4Addr> {
            let first_v4 = ports
                .get(index)?
                .addresses
                .iter()
                .find_map(|(a, _)| match a {
                    IpAddr::V4(v4) => Some(*v4),
                    IpAddr::V6(_) => None,
                });
            first_v4.or((wan_ports.first().map(|(i, _)| *i) == Some(index)).then_some(address))
        };
        let first_wan = wan_ports.first().map(|(i, _)| *i).unwrap_or(0);
        let mut peers = imported_peers;
        for (i, p) in self.peers.iter().enumerate() {
            let mut peer = validate_peer(i, p)?;
            for (j, path) in p.paths.iter().enumerate() {
                let field = format!("wireguard.peer[{i}].paths[{j}]");
                let Some(&(index, _)) = wan_ports.iter().find(|(_, port)| port.name == path.port)
                else {
                    return err(
                        format!("{field}.port"),
                        None,
                        format!("{:?} is not one of our WAN ports", path.port),
                    );
                };
                let endpoint = parse_endpoint(&path.endpoint)
                    .or_else(|m| err(format!("{field}.endpoint"), None, m))?;
                let Some(local_ip) = local_ip_of(index) else {
                    return err(
                        format!("{field}.port"),
                        None,
                        format!(
                            "port {:?} has no IPv4 address to send from; give it `addresses`",
                            path.port
                        ),
                    );
                };
                peer.paths.push(PathConfig {
                    port: index,
                    local_ip,
                    endpoint,
                });
            }
            peers.push(peer);
        }
        for peer in &mut peers {
            if let Some(endpoint) = peer.endpoint {
                let local_ip = local_ip_of(first_wan).unwrap_or(address);
                peer.paths.insert(
                    0,
                    PathConfig {
                        port: first_wan,
                        local_ip,
                        endpoint,
                    },
                );
            }
            if peer.paths.len() > patronus_dataplane::wg::datapath::MAX_PATHS {
                return err(
                    format!("wireguard.peer ({}).paths", peer.name),
                    None,
                    format!(
                        "at most {} paths per peer",
                        patronus_dataplane::wg::datapath::MAX_PATHS
                    ),
                );
            }
        }
        // Public keys and allowed IPs must be unique across all peers.
        for (i, p) in peers.iter().enumerate() {
            if let Some(other) = peers[..i].iter().find(|o| o.public_key == p.public_key) {
                return err(
                    format!("wireguard.peer ({})", p.name),
                    None,
                    format!("the same public key as {}", other.name),
                );
            }
            for prefix in &p.allowed_ips {
                if let Some(other) = peers[..i].iter().find(|o| o.allowed_ips.contains(prefix)) {
                    return err(
                        format!("wireguard.peer ({}).allowed_ips", p.name),
                        None,
                        format!(
                            "{}/{} is already allowed for {}",
                            prefix.0, prefix.1, other.name
                        ),
                    );
                }
            }
        }
        Ok(WireguardConfig {
            private_key,
            listen_port,
            mtu,
            address,
            peers,
        })
    }
}

fn validate_peer(i: usize, p: &PeerSection) -> Result<WgPeerConfig, WgError> {
    let field = |f: &str| format!("wireguard.peer[{i}].{f}");
    let public_key = PublicKey::from_base64(p.public_key.get_ref().trim()).or_else(|e| {
        err(
            field("public_key"),
            Some(p.public_key.span()),
            e.to_string(),
        )
    })?;
    let preshared_key = match &p.preshared_key_file {
        Some(file) => Some(PresharedKey::load_file(file.get_ref()).or_else(|e| {
            err(
                field("preshared_key_file"),
                Some(file.span()),
                e.to_string(),
            )
        })?),
        None => None,
    };
    let endpoint = match &p.endpoint {
        Some(e) => Some(
            parse_endpoint(e.get_ref()).or_else(|m| err(field("endpoint"), Some(e.span()), m))?,
        ),
        None => None,
    };
    let mut allowed_ips = Vec::new();
    for text in p.allowed_ips.get_ref() {
        let prefix = parse_prefix(text.trim()).or_else(|e| {
            err(
                field("allowed_ips"),
                Some(p.allowed_ips.span()),
                e.to_string(),
            )
        })?;
        allowed_ips.push(prefix);
    }
    Ok(WgPeerConfig {
        name: p.name.clone().unwrap_or_else(|| short_name(&public_key)),
        public_key,
        preshared_key,
        endpoint,
        allowed_ips,
        persistent_keepalive: p.persistent_keepalive,
        paths: Vec::new(),
        bfd: p.bfd,
        sla: p.sla,
    })
}

/// What a wg-quick file contributes.
#[derive(Debug)]
pub struct Imported {
    pub private_key: PrivateKey,
    pub listen_port: u16,
    pub peers: Vec<WgPeerConfig>,
}

/// Reads a wg-quick style file. It holds a private key, so it must be
/// readable by its owner only. Keys that only wg-quick itself uses
/// (Address, DNS, MTU, Table, PreUp, PostUp, PreDown, PostDown, SaveConfig,
/// FwMark) are accepted and ignored; anything else is an error.
pub fn import_wg_quick(path: &Path) -> Result<Imported, WgError> {
    let in_file = |line: Option<usize>, field: &str, message: String| WgError {
        file: Some(path.into()),
        field: field.into(),
        span: None,
        line,
        message,
    };
    let mut text = String::new();
    open_secret_file(path)
        .map_err(|e| in_file(None, "", e.to_string()))?
        .read_to_string(&mut text)
        .map_err(|e| in_file(None, "", format!("cannot read: {e}")))?;
    parse_wg_quick(&text).map_err(|(line, field, message)| in_file(Some(line), &field, message))
}

/// Parses wg-quick text; errors are (line, field, message).
pub fn parse_wg_quick(text: &str) -> Result<Imported, (usize, String, String)> {
    #[derive(PartialEq)]
    enum Section {
        None,
        Interface,
        Peer,
    }
    struct PendingPeer {
        line: usize,
        public_key: Option<PublicKey>,
        preshared_key: Option<PresharedKey>,
        endpoint: Option<SocketAddrV4>,
        allowed_ips: Vec<(IpAddr, u8)>,
        persistent_keepalive: u16,
    }
    let finish = |p: PendingPeer| -> Result<WgPeerConfig, (usize, String, String)> {
        let public_key = p.public_key.ok_or((
            p.line,
            "PublicKey".to_string(),
            "every [Peer] needs a PublicKey".to_string(),
        ))?;
        Ok(WgPeerConfig {
            name: short_name(&public_key),
            public_key,
            preshared_key: p.preshared_key,
            endpoint: p.endpoint,
            allowed_ips: p.allowed_ips,
            persistent_keepalive: p.persistent_keepalive,
            paths: Vec::new(),
            bfd: false,
            sla: false,
        })
    };
    let mut section = Section::None;
    let mut private_key = None;
    let mut listen_port = DEFAULT_LISTEN_PORT;
    let mut peers = Vec::new();
    let mut pending: Option<PendingPeer> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let content = raw.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        if content.starts_with('[') {
            if let Some(p) = pending.take() {
                peers.push(finish(p)?);
            }
            section = match content.to_ascii_lowercase().as_str() {
                "[interface]" => Section::Interface,
                "[peer]" => {
                    pending = Some(PendingPeer {
                        line,
                        public_key: None,
                        preshared_key: None,
                        endpoint: None,
                        allowed_ips: Vec::new(),
                        persistent_keepalive: 0,
                    });
                    Section::Peer
                }
                other => return Err((line, String::new(), format!("unknown section {other}"))),
            };
            continue;
        }
        let Some((key, value)) = content.split_once('=') else {
            return Err((line, String::new(), "expected `Key = Value`".into()));
        };
        let (key, value) = (key.trim(), value.trim());
        let bad = |m: String| (line, key.to_string(), m);
        match (&section, key.to_ascii_lowercase().as_str()) {
            (Section::Interface, "privatekey") => {
                private_key = Some(PrivateKey::from_base64(value).map_err(|e| bad(e.to_string()))?)
            }
            (Section::Interface, "listenport") => {
                listen_port = value
                    .parse()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad(format!("{value:?} is not a port number")))?;
            }
            (
                Section::Interface,
                "address" | "dns" | "mtu" | "table" | "preup" | "postup" | "predown" | "postdown"
                | "saveconfig" | "fwmark",
            ) => {}
            (Section::Peer, field) => {
                let p = pending.as_mut().expect("in a [Peer] section");
                match field {
                    "publickey" => {
                        p.public_key =
                            Some(PublicKey::from_base64(value).map_err(|e| bad(e.to_string()))?)
                    }
                    "presharedkey" => {
                        p.preshared_key =
                            Some(PresharedKey::from_base64(value).map_err(|e| bad(e.to_string()))?)
                    }
                    "endpoint" => p.endpoint = Some(parse_endpoint(value).map_err(bad)?),
                    "allowedips" => {
                        for part in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                            p.allowed_ips
                                .push(parse_prefix(part).map_err(|e| bad(e.to_string()))?);
                        }
                    }
                    "persistentkeepalive" => {
                        p.persistent_keepalive = if value.eq_ignore_ascii_case("off") {
                            0
                        } else {
                            value
                                .parse()
                                .map_err(|_| bad(format!("{value:?} is not a number of seconds")))?
                        };
                    }
                    _ => return Err(bad(format!("unknown [Peer] key {key}"))),
                }
            }
            (Section::Interface, _) => return Err(bad(format!("unknown [Interface] key {key}"))),
            (Section::None, _) => return Err(bad("a key outside any section".into())),
        }
    }
    if let Some(p) = pending.take() {
        peers.push(finish(p)?);
    }
    let private_key = private_key.ok_or((
        1,
        "PrivateKey".to_string(),
        "[Interface] needs a PrivateKey".to_string(),
    ))?;
    Ok(Imported {
        private_key,
        listen_port,
        peers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The public example keys of the wg(8) and wg-quick(8) manual pages.
    const PRIV: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    const PUB1: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
    const PUB2: &str = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";
    const PSK: &str = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=";

    #[test]
    fn a_wg_quick_file_imports_key_port_and_peers() {
        let text = format!(
            "# site config\n[Interface]\nPrivateKey = {PRIV}\nListenPort = 51821\nAddress = 10.99.0.1/24\nDNS = 1.1.1.1\n\n\
             [Peer]\nPublicKey = {PUB1}\nPresharedKey = {PSK}\nEndpoint = 192.0.2.7:51820\nAllowedIPs = 10.20.0.0/16, fd00:20::/48\nPersistentKeepalive = 25\n\n\
             [Peer]\nPublicKey = {PUB2}\nAllowedIPs = 10.30.0.1/32\n"
        );
        let i = parse_wg_quick(&text).unwrap();
        assert_eq!(i.listen_port, 51821);
        assert_eq!(
            i.private_key.public_key(),
            PrivateKey::from_base64(PRIV).unwrap().public_key()
        );
        assert_eq!(i.peers.len(), 2);
        assert_eq!(i.peers[0].public_key, PublicKey::from_base64(PUB1).unwrap());
        assert!(i.peers[0].preshared_key.is_some());
        assert_eq!(
            i.peers[0].endpoint,
            Some("192.0.2.7:51820".parse().unwrap())
        );
        assert_eq!(
            i.peers[0].allowed_ips,
            vec![
                ("10.20.0.0".parse().unwrap(), 16),
                ("fd00:20::".parse().unwrap(), 48)
            ]
        );
        assert_eq!(i.peers[0].persistent_keepalive, 25);
        assert_eq!(i.peers[1].endpoint, None);
    }

    #[test]
    fn wg_quick_errors_name_the_line_and_key_without_the_secret() {
        let text = format!("[Interface]\nPrivateKey = {PRIV}\n[Peer]\nPublicKey = {PUB1}\nAllowedIPs = 10.0.0.0/33\n");
        let (line, field, message) = parse_wg_quick(&text).unwrap_err();
        assert_eq!((line, field.as_str()), (5, "AllowedIPs"));
        assert!(message.contains("33"), "{message}");
        let (line, field, message) =
            parse_wg_quick("[Interface]\nPrivateKey = not-base64!\n").unwrap_err();
        assert_eq!((line, field.as_str()), (2, "PrivateKey"));
        assert!(
            !message.contains("not-base64"),
            "secrets are not echoed: {message}"
        );
        let (line, _, message) = parse_wg_quick(&format!(
            "[Interface]\nPrivateKey = {PRIV}\nColour = blue\n"
        ))
        .unwrap_err();
        assert_eq!(line, 3);
        assert!(message.contains("Colour"));
        let (_, field, _) = parse_wg_quick(&format!(
            "[Interface]\nPrivateKey = {PRIV}\n[Peer]\nEndpoint = 1.2.3.4:5\n"
        ))
        .unwrap_err();
        assert_eq!(field, "PublicKey");
    }

    #[test]
    fn endpoints_must_be_ipv4_with_a_port() {
        assert_eq!(
            parse_endpoint("192.0.2.1:51820"),
            Ok("192.0.2.1:51820".parse().unwrap())
        );
        assert!(parse_endpoint("vpn.example.com:51820")
            .unwrap_err()
            .contains("not resolved"));
        assert!(parse_endpoint("[2001:db8::1]:51820")
            .unwrap_err()
            .contains("IPv6"));
        assert!(parse_endpoint("192.0.2.1:0").is_err());
    }

    fn write_secret(name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("patronus-wgconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_world_readable_wg_quick_file_is_refused() {
        let path = write_secret(
            "open.conf",
            &format!("[Interface]\nPrivateKey = {PRIV}\n"),
            0o644,
        );
        let e = import_wg_quick(&path).unwrap_err();
        assert!(e.message.contains("chmod 600"), "{e:?}");
        let path = write_secret(
            "closed.conf",
            &format!("[Interface]\nPrivateKey = {PRIV}\n"),
            0o600,
        );
        assert!(import_wg_quick(&path).is_ok());
    }

    fn section(peers: Vec<PeerSection>, key_file: &Path) -> WireguardSection {
        WireguardSection {
            private_key_file: Some(Spanned::new(0..0, key_file.display().to_string())),
            listen_port: None,
            address: Spanned::new(0..0, "10.10.2.1".into()),
            import: None,
            mtu: None,
            peers,
        }
    }

    fn peer(key: &str, allowed: &[&str]) -> PeerSection {
        PeerSection {
            name: None,
            public_key: Spanned::new(0..0, key.into()),
            preshared_key_file: None,
            endpoint: None,
            allowed_ips: Spanned::new(0..0, allowed.iter().map(|s| s.to_string()).collect()),
            persistent_keepalive: 0,
            paths: Vec::new(),
            bfd: false,
            sla: false,
        }
    }

    #[test]
    fn the_section_validates_keys_ports_and_peers() {
        let key = write_secret("ok.key", &format!("{PRIV}\n"), 0o600);
        let c = section(vec![peer(PUB1, &["10.99.0.0/24"])], &key)
            .validate(1500, &[])
            .unwrap();
        assert_eq!(c.listen_port, DEFAULT_LISTEN_PORT);
        assert_eq!(c.mtu, 1420);
        let mut small = section(vec![], &key);
        small.mtu = Some(Spanned::new(0..0, 1450));
        assert_eq!(
            small.validate(1500, &[]).unwrap_err().field,
            "wireguard.mtu"
        );
        small.mtu = Some(Spanned::new(0..0, 1400));
        assert_eq!(small.validate(1500, &[]).unwrap().mtu, 1400);
        assert_eq!(
            section(vec![], &key).validate(1280, &[]).unwrap().mtu,
            1220,
            "the default fits a small WAN MTU"
        );
        assert_eq!(c.address, Ipv4Addr::new(10, 10, 2, 1));
        assert_eq!(
            c.peers[0].allowed_ips,
            vec![("10.99.0.0".parse().unwrap(), 24)]
        );

        let e = section(vec![peer("AAAA", &[])], &key)
            .validate(1500, &[])
            .unwrap_err();
        assert_eq!(e.field, "wireguard.peer[0].public_key");
        let e = section(
            vec![peer(PUB1, &["10.0.0.0/24"]), peer(PUB2, &["10.0.0.0/24"])],
            &key,
        )
        .validate(1500, &[])
        .unwrap_err();
        assert!(e.message.contains("already allowed"), "{e:?}");
        let e = section(vec![peer(PUB1, &[]), peer(PUB1, &[])], &key)
            .validate(1500, &[])
            .unwrap_err();
        assert!(e.message.contains("same public key"), "{e:?}");

        let open = write_secret("open.key", &format!("{PRIV}\n"), 0o640);
        let e = section(vec![], &open).validate(1500, &[]).unwrap_err();
        assert_eq!(e.field, "wireguard.private_key_file");
        assert!(!e.message.contains(PRIV));
    }
}
