//! The daemon's TOML configuration: parsing, defaults and validation.
//!
//! Every error names the field and, where the file has it, the line, so an
//! operator can fix a bad config without reading code. Validation happens
//! before anything is started.

use patronus_dataplane::wire::ethernet;
use patronus_dataplane::worker::Polling;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Largest per-lcore mempool cache DPDK allows (RTE_MEMPOOL_CACHE_MAX_SIZE).
const MEMPOOL_CACHE_MAX: u32 = 512;
/// RTE_PKTMBUF_HEADROOM in Debian's build.
const MBUF_HEADROOM: u32 = 128;
/// Ethernet header plus one VLAN tag and the FCS the NIC may leave in.
const L2_OVERHEAD: u32 = 14 + 4 + 4;

/// A configuration error: what is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": `{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PollingMode {
    Busy,
    Adaptive,
}

impl From<PollingMode> for Polling {
    fn from(mode: PollingMode) -> Polling {
        match mode {
            PollingMode::Busy => Polling::Busy,
            PollingMode::Adaptive => Polling::Adaptive,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortRole {
    /// Faces the site's own networks.
    Lan,
    /// Faces an underlay (MPLS, broadband, LTE).
    Wan,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EalSection {
    /// Use hugepages; falls back to `--no-huge` with a warning when the host has none.
    #[serde(default = "default_true")]
    pub hugepages: bool,
    /// Memory for `--no-huge` mode, in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: Spanned<u32>,
    /// EAL `--file-prefix`: unique per concurrent DPDK process on a host.
    #[serde(default = "default_file_prefix")]
    pub file_prefix: Spanned<String>,
    /// Extra EAL arguments, appended last (e.g. `--log-level=pmd.net.*:debug`).
    #[serde(default)]
    pub args: Vec<String>,
}

impl Default for EalSection {
    fn default() -> Self {
        EalSection {
            hugepages: true,
            memory_mb: default_memory_mb(),
            file_prefix: default_file_prefix(),
            args: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoresSection {
    /// The CPU of the control thread (and EAL's main lcore).
    pub control: Spanned<usize>,
    /// One CPU per worker; each worker owns one rx/tx queue pair per port.
    pub workers: Spanned<Vec<usize>>,
    #[serde(default = "default_polling")]
    pub polling: PollingMode,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolSection {
    /// Default: what the ports and caches need, rounded up to 2^n - 1
    /// (the most efficient mempool size), and at least 8191.
    pub mbufs: Option<Spanned<u32>>,
    #[serde(default = "default_cache_size")]
    pub cache_size: Spanned<u32>,
    /// Bytes per mbuf including the 128-byte headroom; bounds the MTU.
    #[serde(default = "default_data_room")]
    pub data_room: Spanned<u16>,
}

impl Default for MempoolSection {
    fn default() -> Self {
        MempoolSection {
            mbufs: None,
            cache_size: default_cache_size(),
            data_room: default_data_room(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsSection {
    /// Print a per-core stats line this often; 0 prints only the summary at exit.
    #[serde(default = "default_stats_interval")]
    pub interval_secs: u64,
}

impl Default for StatsSection {
    fn default() -> Self {
        StatsSection {
            interval_secs: default_stats_interval(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnknownDestinations {
    /// Forward to the WAN next hop, as a plain router would.
    #[default]
    Forward,
    /// Drop and count (`no_route`): only the remote sites are reachable.
    Drop,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RoutingSection {
    /// LAN traffic to destinations no WireGuard peer covers.
    #[serde(default)]
    pub unknown_destinations: UnknownDestinations,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSection {
    pub name: Spanned<String>,
    pub role: PortRole,
    /// A PCI address (`0000:3b:00.0`) or a vdev string (`net_af_packet0,iface=eth1`).
    pub device: Spanned<String>,
    /// The destination MAC of frames sent out of this port.
    pub next_hop_mac: Option<Spanned<String>>,
    /// The router beyond this port, resolved by ARP/ND (used when
    /// `next_hop_mac` is not set).
    pub gateway: Option<Spanned<String>>,
    pub mtu: Option<Spanned<u16>>,
    /// The node's own addresses on this port (`10.10.1.1/24`, `fd00::1/64`):
    /// the source of the ICMP errors the node sends there.
    #[serde(default = "no_addresses")]
    pub addresses: Spanned<Vec<String>>,
    #[serde(default = "default_descriptors")]
    pub rx_descriptors: u16,
    #[serde(default = "default_descriptors")]
    pub tx_descriptors: u16,
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    eal: EalSection,
    cores: CoresSection,
    #[serde(default)]
    mempool: MempoolSection,
    #[serde(default)]
    stats: StatsSection,
    #[serde(default)]
    routing: RoutingSection,
    #[serde(default, rename = "port")]
    ports: Vec<PortSection>,
    wireguard: Option<crate::wgconfig::WireguardSection>,
    bfd: Option<crate::bfdconfig::BfdSection>,
    dpi: Option<crate::dpiconfig::DpiSection>,
    #[serde(default)]
    policy: crate::dpiconfig::PolicySection,
    qos: Option<crate::qosconfig::QosSection>,
    sla: Option<crate::slaconfig::SlaSection>,
    api: Option<crate::api::ApiSection>,
}

/// How a port's device is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceKind {
    /// A PCI function (physical NIC or SR-IOV VF), passed to EAL with `-a`.
    Pci(String),
    /// A virtual device, passed to EAL with `--vdev`.
    Vdev(String),
}

/// One validated port.
#[derive(Debug, Clone)]
pub struct PortConfig {
    pub name: String,
    pub role: PortRole,
    pub device: DeviceKind,
    /// The device string as written (`Port::find` takes it).
    pub device_string: String,
    /// A fixed destination MAC for frames out of this port; None resolves
    /// next hops by ARP/ND.
    pub next_hop_mac: Option<ethernet::Address>,
    /// The router beyond this port for off-link destinations.
    pub gateway: Option<std::net::IpAddr>,
    pub mtu: Option<u16>,
    /// Our addresses on the port, with their prefix lengths.
    pub addresses: Vec<(std::net::IpAddr, u8)>,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
}

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    pub hugepages: bool,
    pub memory_mb: u32,
    pub file_prefix: String,
    pub extra_eal_args: Vec<String>,
    pub control_core: usize,
    pub worker_cores: Vec<usize>,
    pub polling: Polling,
    pub mbufs: u32,
    pub mempool_cache: u32,
    pub data_room: u16,
    pub stats_interval_secs: u64,
    pub ports: Vec<PortConfig>,
    /// WireGuard peers and keys, when the `[wireguard]` section is present.
    pub wireguard: Option<crate::wgconfig::WireguardConfig>,
    /// Drop LAN traffic that no peer covers instead of forwarding it.
    pub drop_unknown_destinations: bool,
    /// BFD sessions (neighbours, and the paths of peers with `bfd = true`);
    /// the defaults when there is no `[bfd]` section.
    pub bfd: crate::bfdconfig::BfdConfig,
    /// The DPI engine on every worker (`[dpi]`; off without the section).
    pub dpi: Option<crate::dpiconfig::DpiSettings>,
    /// WAN port preferences by category and application.
    pub policy: crate::dpiconfig::PolicyConfig,
    /// QoS shaping (`[qos]`; off without the section).
    pub qos: Option<crate::qosconfig::QosConfig>,
    /// SLA probing and path selection (`[sla]`; off without the section).
    pub sla: Option<crate::slaconfig::SlaConfig>,
    /// The management API (`[api]`; off without the section).
    pub api: Option<crate::api::ApiConfig>,
}

fn default_true() -> bool {
    true
}
fn default_memory_mb() -> Spanned<u32> {
    Spanned::new(0..0, 512)
}
fn default_file_prefix() -> Spanned<String> {
    Spanned::new(0..0, "patronus".into())
}
fn default_polling() -> PollingMode {
    PollingMode::Busy
}
fn default_cache_size() -> Spanned<u32> {
    Spanned::new(0..0, 256)
}
fn default_data_room() -> Spanned<u16> {
    Spanned::new(0..0, 2048 + 128)
}
fn default_stats_interval() -> u64 {
    10
}
fn no_addresses() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}
fn default_descriptors() -> u16 {
    1024
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.into(),
            line: None,
            field: String::new(),
            message: format!("cannot read the config file: {e}"),
        })?;
        Config::parse(path, &text, &available_cpus())
    }

    /// Parses and validates config text; `cpus` are the CPUs this process
    /// may use.
    pub fn parse(path: &Path, text: &str, cpus: &[usize]) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            ConfigError {
                file: path.into(),
                line,
                field: String::new(),
                message: e.message().trim().to_string(),
            }
        })?;
        Validator { path, text }.validate(raw, cpus)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let bytes = text.as_bytes();
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The CPUs this process may run on (its affinity mask), ascending.
pub fn available_cpus() -> Vec<usize> {
    let mut cpus: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.iter().map(|c| c.id).collect())
        .unwrap_or_default();
    cpus.sort_unstable();
    if cpus.is_empty() {
        cpus.push(0);
    }
    cpus
}

/// "0-3,6" style, for error messages.
fn cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        while i + 1 < cpus.len() && cpus[i + 1] == cpus[i] + 1 {
            i += 1;
        }
        out.push(if cpus[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", cpus[i])
        });
        i += 1;
    }
    out.join(",")
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Validator<'_> {
    fn err<T>(
        &self,
        field: impl Into<String>,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError {
            file: self.path.into(),
            line: span
                .filter(|s| !(s.start == 0 && s.end == 0))
                .map(|s| line_of(self.text, s.start)),
            field: field.into(),
            message: message.into(),
        })
    }

    fn validate(&self, raw: RawConfig, cpus: &[usize]) -> Result<Config, ConfigError> {
        let unavailable = |cpu: usize| {
            format!(
                "CPU {cpu} is not available to this process (it may use CPUs {})",
                cpu_list(cpus)
            )
        };
        let control = *raw.cores.control.get_ref();
        if !cpus.contains(&control) {
            return self.err(
                "cores.control",
                Some(raw.cores.control.span()),
                unavailable(control),
            );
        }
        let workers = raw.cores.workers.get_ref().clone();
        let workers_span = Some(raw.cores.workers.span());
        if workers.is_empty() {
            return self.err(
                "cores.workers",
                workers_span,
                "at least one worker core is needed",
            );
        }
        for (i, &w) in workers.iter().enumerate() {
            if !cpus.contains(&w) {
                return self.err("cores.workers", workers_span, unavailable(w));
            }
            if workers[..i].contains(&w) {
                return self.err(
                    "cores.workers",
                    workers_span,
                    format!("CPU {w} is listed twice"),
                );
            }
        }
        if workers.contains(&control) && raw.cores.polling == PollingMode::Busy {
            return self.err(
                "cores.workers",
                workers_span,
                format!("CPU {control} is also the control core; a busy-polling worker would starve the control thread (use another CPU, or polling = \"adaptive\")"),
            );
        }

        let memory_mb = *raw.eal.memory_mb.get_ref();
        if memory_mb < 64 {
            return self.err(
                "eal.memory_mb",
                Some(raw.eal.memory_mb.span()),
                "must be at least 64 (MiB)",
            );
        }
        let prefix = raw.eal.file_prefix.get_ref();
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return self.err(
                "eal.file_prefix",
                Some(raw.eal.file_prefix.span()),
                "must be non-empty and use only letters, digits, '-' and '_'",
            );
        }

        let local_count: usize = raw
            .ports
            .iter()
            .map(|p| p.addresses.get_ref().len())
            .sum::<usize>()
            + usize::from(raw.wireguard.is_some());
        if local_count > patronus_dataplane::forward::MAX_LOCAL_ADDRESSES {
            return self.err(
                "port",
                None,
                format!(
                    "the node answers for at most {} addresses (port addresses plus the WireGuard address), got {local_count}",
                    patronus_dataplane::forward::MAX_LOCAL_ADDRESSES
                ),
            );
        }
        let mut ports = Vec::with_capacity(raw.ports.len());
        for (i, p) in raw.ports.iter().enumerate() {
            ports.push(self.port(i, p, &ports)?);
        }
        let lan = ports.iter().filter(|p| p.role == PortRole::Lan).count();
        let wan = ports.iter().filter(|p| p.role == PortRole::Wan).count();
        if lan != 1 || wan == 0 {
            return self.err(
                "port",
                None,
                format!("exactly one port with role = \"lan\" and at least one with role = \"wan\" are needed, found {lan} lan and {wan} wan"),
            );
        }

        let cache = *raw.mempool.cache_size.get_ref();
        if cache > MEMPOOL_CACHE_MAX {
            return self.err(
                "mempool.cache_size",
                Some(raw.mempool.cache_size.span()),
                format!("must be at most {MEMPOOL_CACHE_MAX}"),
            );
        }
        let data_room = *raw.mempool.data_room.get_ref();
        for (i, p) in ports.iter().enumerate() {
            let mtu = u32::from(p.mtu.unwrap_or(1500));
            if mtu + L2_OVERHEAD + MBUF_HEADROOM > u32::from(data_room) {
                let span = raw.ports[i].mtu.as_ref().map(|m| m.span());
                return self.err(
                    format!("port[{i}].mtu"),
                    span,
                    format!(
                        "MTU {mtu} does not fit in one mbuf of mempool.data_room = {data_room}; raise data_room to at least {}",
                        mtu + L2_OVERHEAD + MBUF_HEADROOM
                    ),
                );
            }
        }
        let queues = workers.len() as u32;
        let needed: u32 = ports
            .iter()
            .map(|p| (u32::from(p.rx_descriptors) + u32::from(p.tx_descriptors)) * queues)
            .sum::<u32>()
            + (cache + 32) * (queues + 1)
            + 1024;
        let mbufs = match &raw.mempool.mbufs {
            None => ((needed + 1).next_power_of_two() - 1).max(8191),
            Some(m) if *m.get_ref() < needed => {
                return self.err(
                    "mempool.mbufs",
                    Some(m.span()),
                    format!("{} is too few: the ports' descriptors, the per-core caches and a margin for bursts need at least {needed}", m.get_ref()),
                );
            }
            Some(m) => *m.get_ref(),
        };

        let wan_mtu = ports
            .iter()
            .find(|p| p.role == PortRole::Wan)
            .and_then(|p| p.mtu)
            .unwrap_or(1500);
        let wireguard = match &raw.wireguard {
            None => None,
            Some(section) => Some(section.validate(wan_mtu, &ports).map_err(|e| ConfigError {
                file: e.file.clone().unwrap_or_else(|| self.path.into()),
                line: e.line.or_else(|| {
                    e.span
                        .clone()
                        .filter(|s| !(s.start == 0 && s.end == 0))
                        .map(|s| line_of(self.text, s.start))
                }),
                field: e.field,
                message: e.message,
            })?),
        };

        let bfd = match &raw.bfd {
            None => crate::bfdconfig::BfdConfig::default(),
            Some(section) => section.validate(&ports).map_err(|e| ConfigError {
                file: self.path.into(),
                line: e
                    .span
                    .filter(|s| !(s.start == 0 && s.end == 0))
                    .map(|s| line_of(self.text, s.start)),
                field: e.field,
                message: e.message,
            })?,
        };

        let named = |(field, message): (String, String)| ConfigError {
            file: self.path.into(),
            line: None,
            field,
            message,
        };
        let dpi = match &raw.dpi {
            None => None,
            Some(section) => crate::dpiconfig::validate_dpi(section).map_err(named)?,
        };
        let policy = crate::dpiconfig::validate_policy(&raw.policy, &ports).map_err(named)?;
        if dpi.is_none() && !raw.policy.prefer.is_empty() {
            return Err(named((
                "policy.prefer".into(),
                "preferences by category or application need the [dpi] section".into(),
            )));
        }
        let qos = match &raw.qos {
            None => None,
            Some(section) => crate::qosconfig::validate(section, &ports).map_err(named)?,
        };
        // Application names must be ones the engine knows (built in, or a
        // [[dpi.rule]]): a typo would otherwise silently match nothing.
        let qos_apps = qos
            .iter()
            .flat_map(|q| &q.app_classes)
            .map(|(a, _)| ("qos.apps", a));
        let prefer_apps = policy.app_port.iter().map(|(a, _)| ("policy.prefer", a));
        let mut sla = match &raw.sla {
            None => None,
            Some(section) => Some(crate::slaconfig::validate(section, &ports).map_err(named)?),
        };
        let sla_apps = sla
            .iter()
            .flat_map(|s| s.policy_apps.iter().flatten())
            .map(|a| ("sla.policy.apps", a));
        if let Some(s) = &sla {
            if dpi.is_none() && s.policies.iter().any(|p| !p.matches.categories.is_empty()) {
                return Err(named((
                    "sla.policy.categories".into(),
                    "policies by category need the [dpi] section".into(),
                )));
            }
        }
        let mut named_apps = qos_apps.chain(prefer_apps).chain(sla_apps).peekable();
        if named_apps.peek().is_some() {
            let Some(d) = &dpi else {
                return Err(named((
                    "qos.apps".into(),
                    "classes by application need the [dpi] section".into(),
                )));
            };
            let engine = patronus_dataplane::dpi::engine::DpiEngine::new(d.engine.clone())
                .map_err(|e| named(("dpi.rule".into(), e.to_string())))?;
            for (section, app) in named_apps {
                if engine.app_id(app).is_none() {
                    return Err(named((
                        format!("{section}.{app}"),
                        format!("{app:?} is neither a DPI category nor a known application (see docs/dpi.md, or add a [[dpi.rule]])"),
                    )));
                }
            }
            if let Some(s) = &mut sla {
                for (p, names) in s.policies.iter_mut().zip(&s.policy_apps) {
                    p.matches.apps = names.iter().filter_map(|n| engine.app_id(n)).collect();
                }
            }
        }

        let api = match &raw.api {
            None => None,
            Some(section) => {
                let mut api = section
                    .validate()
                    .map_err(|e| named((e.field, e.message)))?;
                if section.listens_everywhere() {
                    log::warn!(
                        "api.listen {} is every address: the API should listen on the management address only",
                        section.listen
                    );
                }
                api.core = Some(control);
                Some(api)
            }
        };

        Ok(Config {
            path: self.path.into(),
            hugepages: raw.eal.hugepages,
            memory_mb,
            file_prefix: prefix.clone(),
            extra_eal_args: raw.eal.args.clone(),
            control_core: control,
            worker_cores: workers,
            polling: raw.cores.polling.into(),
            mbufs,
            mempool_cache: cache,
            data_room,
            stats_interval_secs: raw.stats.interval_secs,
            ports,
            wireguard,
            drop_unknown_destinations: raw.routing.unknown_destinations
                == UnknownDestinations::Drop,
            bfd,
            dpi,
            policy,
            qos,
            sla,
            api,
        })
    }

    fn port(
        &self,
        i: usize,
        p: &PortSection,
        earlier: &[PortConfig],
    ) -> Result<PortConfig, ConfigError> {
        let name = p.name.get_ref().trim();
        if name.is_empty() || name.len() > 32 {
            return self.err(
                format!("port[{i}].name"),
                Some(p.name.span()),
                "must be 1 to 32 characters",
            );
        }
        if earlier.iter().any(|e| e.name == name) {
            return self.err(
                format!("port[{i}].name"),
                Some(p.name.span()),
                format!("another port is already named {name:?}"),
            );
        }
        let device_string = p.device.get_ref().trim().to_string();
        let device = match parse_device(&device_string) {
            Ok(d) => d,
            Err(why) => return self.err(format!("port[{i}].device"), Some(p.device.span()), why),
        };
        let dev_name = |d: &DeviceKind| match d {
            DeviceKind::Pci(a) | DeviceKind::Vdev(a) => {
                a.split(',').next().unwrap_or_default().to_string()
            }
        };
        if earlier
            .iter()
            .any(|e| dev_name(&e.device) == dev_name(&device))
        {
            return self.err(
                format!("port[{i}].device"),
                Some(p.device.span()),
                format!("device {} is used by another port", dev_name(&device)),
            );
        }
        let next_hop_mac = match &p.next_hop_mac {
            None => None,
            Some(text) => match text.get_ref().trim().parse::<ethernet::Address>() {
                Ok(mac) if mac.is_unicast() => Some(mac),
                Ok(_) => {
                    return self.err(
                        format!("port[{i}].next_hop_mac"),
                        Some(text.span()),
                        "must be a unicast MAC address",
                    )
                }
                Err(_) => {
                    return self.err(
                        format!("port[{i}].next_hop_mac"),
                        Some(text.span()),
                        format!(
                            "{:?} is not a MAC address like 02:00:00:00:00:01",
                            text.get_ref()
                        ),
                    )
                }
            },
        };
        let gateway = match &p.gateway {
            None => None,
            Some(text) => match text.get_ref().trim().parse::<std::net::IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    return self.err(
                        format!("port[{i}].gateway"),
                        Some(text.span()),
                        format!("{:?} is not an IP address", text.get_ref()),
                    )
                }
            },
        };
        if next_hop_mac.is_none() && p.addresses.get_ref().is_empty() {
            return self.err(
                format!("port[{i}].next_hop_mac"),
                Some(p.name.span()),
                "is needed, or `addresses` (and for off-link traffic `gateway`) so the node can resolve next hops by ARP/ND",
            );
        }
        if let Some(mtu) = &p.mtu {
            if *mtu.get_ref() < 68 {
                return self.err(
                    format!("port[{i}].mtu"),
                    Some(mtu.span()),
                    "must be at least 68 (RFC 791)",
                );
            }
        }
        for (field, v) in [
            ("rx_descriptors", p.rx_descriptors),
            ("tx_descriptors", p.tx_descriptors),
        ] {
            if !(32..=16384).contains(&v) {
                return self.err(
                    format!("port[{i}].{field}"),
                    None,
                    format!("{v} is outside 32 to 16384"),
                );
            }
        }
        let mut addresses = Vec::new();
        for text in p.addresses.get_ref() {
            match patronus_dataplane::wg::allowed_ips::parse_prefix(text.trim()) {
                Ok(a) => addresses.push(a),
                Err(e) => {
                    return self.err(
                        format!("port[{i}].addresses"),
                        Some(p.addresses.span()),
                        e.to_string(),
                    )
                }
            }
        }
        Ok(PortConfig {
            name: name.to_string(),
            addresses,
            role: p.role,
            device,
            device_string,
            next_hop_mac,
            gateway,
            mtu: p.mtu.as_ref().map(|m| *m.get_ref()),
            rx_descriptors: p.rx_descriptors,
            tx_descriptors: p.tx_descriptors,
        })
    }
}

/// Tells a PCI address from a vdev string.
pub fn parse_device(device: &str) -> Result<DeviceKind, String> {
    if device.is_empty() {
        return Err("must not be empty".into());
    }
    if is_pci_address(device) {
        let full = if device.matches(':').count() == 1 {
            format!("0000:{device}")
        } else {
            device.to_string()
        };
        return Ok(DeviceKind::Pci(full.to_ascii_lowercase()));
    }
    let name = device.split(',').next().unwrap_or_default();
    let valid_name = name.starts_with("net_")
        && name.len() > 4
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid_name {
        return Ok(DeviceKind::Vdev(device.to_string()));
    }
    Err(format!(
        "{device:?} is neither a PCI address (like 0000:3b:00.0) nor a DPDK vdev (like net_af_packet0,iface=eth1)"
    ))
}

fn is_pci_address(s: &str) -> bool {
    let hex =
        |part: &str, len: usize| part.len() == len && part.chars().all(|c| c.is_ascii_hexdigit());
    let parts: Vec<&str> = s.split(':').collect();
    let (domain, bus, rest) = match parts.as_slice() {
        [d, b, r] => (Some(*d), *b, *r),
        [b, r] => (None, *b, *r),
        _ => return false,
    };
    let Some((dev, func)) = rest.split_once('.') else {
        return false;
    };
    domain.is_none_or(|d| hex(d, 4))
        && hex(bus, 2)
        && hex(dev, 2)
        && func.len() == 1
        && func.chars().all(|c| ('0'..='7').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[eal]
hugepages = false
memory_mb = 256
file_prefix = "lab"

[cores]
control = 0
workers = [1]
polling = "adaptive"

[[port]]
name = "lan"
role = "lan"
device = "net_af_packet0,iface=p-lan"
next_hop_mac = "02:00:00:00:01:02"

[[port]]
name = "wan"
role = "wan"
device = "0000:3b:00.1"
next_hop_mac = "02:00:00:00:02:02"
mtu = 1500
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("test.toml"), text, &[0, 1])
    }

    fn error(text: &str) -> ConfigError {
        parse(text).expect_err("config must be refused")
    }

    #[test]
    fn dpi_policy_and_qos_sections_parse() {
        let c = parse(&format!(
            "{GOOD}\n[dpi]\nflows = 65536\nmax_packets = 8\n\
             [[dpi.rule]]\nsuffix = \"intranet.example\"\napp = \"Intranet\"\ncategory = \"Web\"\n\
             [policy.prefer]\nVoIP = \"wan\"\nIntranet = \"wan\"\n\
             [qos.ports.wan]\nrate = \"100Mbit\"\n\
             [qos.classes.bulk]\nweight = 2\ncodel = {{ target_us = 5000, interval_us = 100000 }}\n\
             [qos.apps]\nZoom = \"realtime\"\n\
             [qos.dscp]\nstreaming = \"CS4\"\n\
             [[qos.rules]]\ndst = \"10.20.0.0/16\"\nprotocol = \"tcp\"\ndst_ports = \"9000-9100\"\nclass = \"bulk\"\n"
        ))
        .unwrap();
        let dpi = c.dpi.unwrap();
        assert_eq!((dpi.flows, dpi.engine.max_packets), (65536, 8));
        assert_eq!(c.policy.category_port.len(), 1);
        assert_eq!(c.policy.app_port, vec![("Intranet".to_string(), 1)]);
        let qos = c.qos.unwrap();
        assert_eq!((qos.ports[0].port, qos.ports[0].rate_bps), (1, 100_000_000));
        assert_eq!(qos.class_map.rules.len(), 1);
        assert_eq!(
            qos.dscp_out
                .get(patronus_dataplane::qos::QosClass::Streaming),
            32
        );
    }

    #[test]
    fn dpi_policy_and_qos_mistakes_are_named() {
        let cases = [
            ("[policy.prefer]\nVoIP = \"wan\"\n", "policy.prefer"),
            (
                "[dpi]\n[policy.prefer]\nNoSuchApp = \"wan\"\n",
                "policy.prefer.NoSuchApp",
            ),
            (
                "[dpi]\n[policy.prefer]\nVoIP = \"lan\"\n",
                "policy.prefer.VoIP",
            ),
            ("[dpi]\nflows = 10\n", "dpi.flows"),
            ("[dpi]\nreassembly_slots = 4000000000\n", "dpi.reassembly_slots"),
            ("[qos.ports.wan]\nrate = \"1Gbit\"\n[qos.classes.bulk]\nqueue_packets = 4000000000\n", "qos.ports.wan"),
            ("[qos.ports.wan9]\nrate = \"1Gbit\"\n", "qos.ports.wan9"),
            ("[qos.ports.wan]\nrate = \"fast\"\n", "qos.ports.wan.rate"),
            (
                "[qos.classes.platinum]\nweight = 1\n",
                "qos.classes.platinum",
            ),
            (
                "[qos.classes.bulk]\nceiling = \"120%\"\n",
                "qos.classes.bulk.ceiling",
            ),
            ("[qos.apps]\nZoom = \"realtime\"\n", "qos.apps"),
            (
                "[[qos.rules]]\ndst_ports = \"9-1\"\nclass = \"bulk\"\n",
                "qos.rules[0].dst_ports",
            ),
        ];
        for (extra, field) in cases {
            let e = error(&format!("{GOOD}\n{extra}"));
            assert_eq!(e.field, field, "{extra}: {e}");
        }
    }

    /// A 0600 SLA key file, removed on drop.
    struct SlaKey(std::path::PathBuf);

    impl SlaKey {
        fn new(tag: &str, text: &str, mode: u32) -> SlaKey {
            use std::os::unix::fs::PermissionsExt;
            let path =
                std::env::temp_dir().join(format!("patronus-sla-{tag}-{}.key", std::process::id()));
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            SlaKey(path)
        }
    }

    impl Drop for SlaKey {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const SLA_KEY: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n";

    #[test]
    fn the_sla_section_parses_classes_and_policies() {
        let key = SlaKey::new("good", SLA_KEY, 0o600);
        let c = parse(&format!(
            "{GOOD}\n[dpi]\n[sla]\nkey_file = \"{}\"\nprobe_rate = 100\n\
             [[sla.class]]\nname = \"voice\"\nmax_latency_ms = 150\nmax_loss_pct = 1\nmax_jitter_ms = 30\n\
             [[sla.class]]\nname = \"bulk\"\nmax_loss_pct = 20\n\
             [[sla.policy]]\nname = \"voice\"\nclass = \"voice\"\ncategories = [\"VoIP\"]\napps = [\"Zoom\"]\n\
             rules = [{{ protocol = \"udp\", dst_ports = \"16384-32767\" }}]\npaths = [\"wan\", 2]\n\
             [[sla.policy]]\nname = \"backup\"\nclass = \"bulk\"\nmode = \"spread\"\ncategories = [\"FileTransfer\"]\n",
            key.0.display()
        ))
        .unwrap();
        let sla = c.sla.unwrap();
        assert_eq!((sla.probe_rate, sla.window_secs), (100, 10));
        // Five probe intervals, but at least half a second.
        assert_eq!(sla.down_after_ms, 500);
        // The five defaults, one of them replaced, and voice added.
        assert_eq!(sla.classes.len(), 6);
        let bulk = sla.classes.iter().find(|c| &*c.name == "bulk").unwrap();
        assert_eq!((bulk.max_loss_pct, bulk.max_latency_ms), (Some(20.0), None));
        let voice = &sla.policies[0];
        assert_eq!(voice.matches.apps.len(), 1, "Zoom resolved");
        assert_eq!(voice.matches.rules.len(), 1);
        use crate::sla::select::{Mode, PathRef};
        assert_eq!(voice.path_order, [PathRef::Port(1), PathRef::Path(1)]);
        assert_eq!(sla.policies[1].mode, Mode::SpreadCompliant);
    }

    #[test]
    fn sla_mistakes_are_named() {
        let key = SlaKey::new("named", SLA_KEY, 0o600);
        let open = SlaKey::new("open", SLA_KEY, 0o644);
        let short = SlaKey::new("short", "c2hvcnQ=\n", 0o600);
        let k = key.0.display();
        let cases = [
            (format!("[sla]\nkey_file = \"{}\"\n", open.0.display()), "sla.key_file"),
            (format!("[sla]\nkey_file = \"{}\"\n", short.0.display()), "sla.key_file"),
            ("[sla]\nkey_file = \"/nonexistent/sla.key\"\n".to_string(), "sla.key_file"),
            (format!("[sla]\nkey_file = \"{k}\"\nprobe_rate = 1000\n"), "sla.probe_rate"),
            (format!("[sla]\nkey_file = \"{k}\"\nwindow_secs = 0\n"), "sla.window_secs"),
            (format!("[sla]\nkey_file = \"{k}\"\nprobe_rate = 10\ndown_after_ms = 100\n"), "sla.down_after_ms"),
            (format!("[sla]\nkey_file = \"{k}\"\n[[sla.class]]\nname = \"v\"\nmax_loss_pct = 101\n"), "sla.class[0].max_loss_pct"),
            (format!("[sla]\nkey_file = \"{k}\"\n[[sla.class]]\nname = \"a b\"\n"), "sla.class[0].name"),
            (format!("[sla]\nkey_file = \"{k}\"\n[[sla.policy]]\nname = \"v\"\nclass = \"gold\"\n"), "sla.policy[0].class"),
            (format!("[sla]\nkey_file = \"{k}\"\n[[sla.policy]]\nname = \"v\"\nclass = \"bulk\"\npaths = [9]\n"), "sla.policy[0].paths[0]"),
            (format!("[sla]\nkey_file = \"{k}\"\n[[sla.policy]]\nname = \"v\"\nclass = \"bulk\"\npaths = [\"wan7\"]\n"), "sla.policy[0].paths[0]"),
            (format!("[sla]\nkey_file = \"{k}\"\n[[sla.policy]]\nname = \"v\"\nclass = \"bulk\"\nmode = \"fast\"\n"), "sla.policy[0].mode"),
            (format!("[sla]\nkey_file = \"{k}\"\n[[sla.policy]]\nname = \"v\"\nclass = \"bulk\"\nrules = [{{ dst_ports = \"x\" }}]\n"), "sla.policy[0].rules[0].dst_ports"),
            (format!("[sla]\nkey_file = \"{k}\"\n[[sla.policy]]\nname = \"v\"\nclass = \"bulk\"\ncategories = [\"VoIP\"]\n"), "sla.policy.categories"),
            (format!("[dpi]\n[sla]\nkey_file = \"{k}\"\n[[sla.policy]]\nname = \"v\"\nclass = \"bulk\"\ncategories = [\"Nope\"]\n"), "sla.policy[0].categories[0]"),
            (format!("[dpi]\n[sla]\nkey_file = \"{k}\"\n[[sla.policy]]\nname = \"v\"\nclass = \"bulk\"\napps = [\"NoSuchApp\"]\n"), "sla.policy.apps.NoSuchApp"),
            (format!("[sla]\nkey_file = \"{k}\"\n[[sla.policy]]\nname = \"v\"\nclass = \"bulk\"\n[[sla.policy]]\nname = \"v\"\nclass = \"bulk\"\n"), "sla.policy[1].name"),
        ];
        for (extra, field) in cases {
            let e = error(&format!("{GOOD}\n{extra}"));
            assert_eq!(e.field, field, "{extra}: {e}");
        }
    }

    #[test]
    fn a_valid_config_parses_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.worker_cores, [1]);
        assert_eq!(c.polling, Polling::Adaptive);
        assert_eq!(c.mbufs, 8191);
        assert_eq!(c.stats_interval_secs, 10);
        assert_eq!(
            c.ports[0].device,
            DeviceKind::Vdev("net_af_packet0,iface=p-lan".into())
        );
        assert_eq!(c.ports[1].device, DeviceKind::Pci("0000:3b:00.1".into()));
        assert_eq!(
            c.ports[1].next_hop_mac.unwrap(),
            ethernet::Address([2, 0, 0, 0, 2, 2])
        );
    }

    #[test]
    fn a_missing_worker_cpu_names_the_field_and_line() {
        let e = error(&GOOD.replace("workers = [1]", "workers = [7]"));
        assert_eq!(e.field, "cores.workers");
        assert_eq!(e.line, Some(9));
        assert!(
            e.message
                .contains("CPU 7 is not available to this process (it may use CPUs 0-1)"),
            "{e}"
        );
        assert!(
            e.to_string().starts_with("test.toml:9: `cores.workers`"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_mac_names_the_port_field() {
        let e = error(&GOOD.replace("02:00:00:00:02:02", "02:00:00:02:02"));
        assert_eq!(e.field, "port[1].next_hop_mac");
        assert_eq!(e.line, Some(22));
    }

    #[test]
    fn without_a_next_hop_mac_a_port_needs_addresses_to_resolve() {
        let e = error(&GOOD.replace("next_hop_mac = \"02:00:00:00:02:02\"\n", ""));
        assert_eq!(e.field, "port[1].next_hop_mac");
        assert!(e.message.contains("ARP"), "{e}");
        let c = parse(&GOOD.replace(
            "next_hop_mac = \"02:00:00:00:02:02\"\n",
            "addresses = [\"10.10.2.1/24\"]\ngateway = \"10.10.2.254\"\n",
        ))
        .unwrap();
        assert_eq!(c.ports[1].next_hop_mac, None);
        assert_eq!(c.ports[1].gateway, Some("10.10.2.254".parse().unwrap()));
        let e = error(&GOOD.replace(
            "next_hop_mac = \"02:00:00:00:02:02\"\n",
            "addresses = [\"10.10.2.1/24\"]\ngateway = \"router\"\n",
        ));
        assert_eq!(e.field, "port[1].gateway");
    }

    #[test]
    fn a_multicast_next_hop_is_refused() {
        let e = error(&GOOD.replace("02:00:00:00:02:02", "01:00:5e:00:00:01"));
        assert!(e.message.contains("unicast"), "{e}");
    }

    #[test]
    fn an_unknown_device_string_is_refused() {
        let e = error(&GOOD.replace("0000:3b:00.1", "eth0"));
        assert_eq!(e.field, "port[1].device");
        assert!(e.message.contains("neither a PCI address"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_line() {
        let e = error(&GOOD.replace("polling = \"adaptive\"", "poling = \"adaptive\""));
        assert_eq!(e.line, Some(10));
        assert!(e.message.contains("poling"), "{e}");
    }

    #[test]
    fn a_wrong_type_is_refused_with_its_line() {
        let e = error(&GOOD.replace("memory_mb = 256", "memory_mb = \"lots\""));
        assert_eq!(e.line, Some(4));
    }

    #[test]
    fn a_bad_polling_mode_is_refused() {
        let e = error(&GOOD.replace("\"adaptive\"", "\"sometimes\""));
        assert_eq!(e.line, Some(10));
    }

    #[test]
    fn busy_polling_on_the_control_core_is_refused() {
        let e = error(
            &GOOD
                .replace("workers = [1]", "workers = [0]")
                .replace("\"adaptive\"", "\"busy\""),
        );
        assert!(e.message.contains("control core"), "{e}");
        parse(&GOOD.replace("workers = [1]", "workers = [0]"))
            .expect("adaptive may share the control core");
    }

    #[test]
    fn duplicate_workers_and_names_and_devices_are_refused() {
        assert!(error(&GOOD.replace("workers = [1]", "workers = [1, 1]"))
            .message
            .contains("twice"));
        assert!(error(&GOOD.replace("name = \"wan\"", "name = \"lan\""))
            .message
            .contains("already named"));
        let e = error(&GOOD.replace("0000:3b:00.1", "net_af_packet0,iface=other"));
        assert!(e.message.contains("used by another port"), "{e}");
    }

    #[test]
    fn exactly_one_lan_and_one_wan_port_are_needed() {
        let e = error(&GOOD.replace("role = \"wan\"", "role = \"lan\""));
        assert!(e.message.contains("found 2 lan and 0 wan"), "{e}");
    }

    #[test]
    fn a_peer_may_have_paths_over_several_wan_ports() {
        use std::os::unix::fs::PermissionsExt;
        let key = std::env::temp_dir().join(format!("patronus-paths-{}.key", std::process::id()));
        std::fs::write(&key, "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = format!(
            "{GOOD}\n[[port]]\nname = \"wan2\"\nrole = \"wan\"\ndevice = \"net_null9\"\naddresses = [\"10.10.3.1/24\"]\n\n\
             [wireguard]\nprivate_key_file = \"{}\"\naddress = \"10.10.2.1\"\n\n\
             [[wireguard.peer]]\npublic_key = \"xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\"\nallowed_ips = [\"10.99.0.0/24\"]\n\
             endpoint = \"192.0.2.7:51820\"\npaths = [{{ port = \"wan2\", endpoint = \"198.51.100.7:51820\" }}]\n",
            key.display()
        );
        let c = parse(&text).unwrap();
        let paths = &c.wireguard.as_ref().unwrap().peers[0].paths;
        assert_eq!(paths.len(), 2);
        assert_eq!(
            (paths[0].port, paths[0].local_ip),
            (1, "10.10.2.1".parse().unwrap()),
            "endpoint: first WAN port, wireguard.address"
        );
        assert_eq!(
            (paths[1].port, paths[1].local_ip),
            (2, "10.10.3.1".parse().unwrap()),
            "wan2, its own address"
        );
        let e = error(&text.replace("port = \"wan2\"", "port = \"lan\""));
        assert!(e.message.contains("not one of our WAN ports"), "{e}");
        let _ = std::fs::remove_file(&key);
    }

    #[test]
    fn several_wan_ports_are_allowed() {
        let extra = "\n[[port]]\nname = \"wan2\"\nrole = \"wan\"\ndevice = \"net_null9\"\naddresses = [\"10.10.3.1/24\"]\n";
        let c = parse(&format!("{GOOD}{extra}")).unwrap();
        assert_eq!(
            c.ports.iter().filter(|p| p.role == PortRole::Wan).count(),
            2
        );
    }

    #[test]
    fn an_mtu_larger_than_the_mbuf_is_refused() {
        let e = error(&GOOD.replace("mtu = 1500", "mtu = 9000"));
        assert_eq!(e.field, "port[1].mtu");
        assert!(e.message.contains("data_room"), "{e}");
    }

    #[test]
    fn the_default_mbuf_count_grows_with_the_workers() {
        let two = parse(&GOOD.replace("workers = [1]", "workers = [0, 1]")).unwrap();
        assert_eq!(two.mbufs, 16383);
    }

    #[test]
    fn too_few_mbufs_are_refused() {
        let e = error(&GOOD.replace("[cores]", "[mempool]\nmbufs = 1000\n\n[cores]"));
        assert_eq!(e.field, "mempool.mbufs");
    }

    #[test]
    fn pci_addresses_are_normalised_and_checked() {
        assert_eq!(
            parse_device("3b:00.0"),
            Ok(DeviceKind::Pci("0000:3b:00.0".into()))
        );
        assert_eq!(
            parse_device("0000:AF:00.7"),
            Ok(DeviceKind::Pci("0000:af:00.7".into()))
        );
        assert!(parse_device("0000:3b:00.8").is_err());
        assert!(parse_device("net_").is_err());
        assert!(parse_device("").is_err());
        assert_eq!(
            parse_device("net_null0"),
            Ok(DeviceKind::Vdev("net_null0".into()))
        );
    }

    #[test]
    fn cpu_lists_are_compressed_into_ranges() {
        assert_eq!(cpu_list(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(cpu_list(&[5]), "5");
    }

    #[test]
    fn a_cpu_outside_the_affinity_mask_is_refused() {
        let e = Config::parse(Path::new("t.toml"), GOOD, &[2, 3]).unwrap_err();
        assert_eq!(e.field, "cores.control");
    }

    #[test]
    fn errors_after_multibyte_characters_still_find_their_line() {
        let e = error(
            &GOOD
                .replace("name = \"lan\"", "name = \"lån—ü\"")
                .replace("workers = [1]", "workers = [9]"),
        );
        assert_eq!(e.line, Some(9));
        let e = error(&format!(
            "# ünïcødé\n{}",
            GOOD.replace("02:00:00:00:02:02", "zz")
        ));
        assert_eq!(e.line, Some(23));
    }

    #[test]
    fn unknown_destinations_are_forwarded_unless_told_to_drop() {
        assert!(!parse(GOOD).unwrap().drop_unknown_destinations);
        let c = parse(&format!(
            "{GOOD}\n[routing]\nunknown_destinations = \"drop\"\n"
        ))
        .unwrap();
        assert!(c.drop_unknown_destinations);
        let e = error(&format!(
            "{GOOD}\n[routing]\nunknown_destinations = \"bounce\"\n"
        ));
        assert!(
            e.message.contains("bounce") || e.message.contains("variant"),
            "{e}"
        );
    }

    #[test]
    fn port_addresses_are_parsed_and_bad_ones_named() {
        let c = parse(&GOOD.replace(
            "mtu = 1500",
            "mtu = 1500\naddresses = [\"10.10.2.1/24\", \"fd00::1/64\"]",
        ))
        .unwrap();
        assert_eq!(c.ports[1].addresses.len(), 2);
        let e = error(&GOOD.replace("mtu = 1500", "mtu = 1500\naddresses = [\"10.10.2.1/33\"]"));
        assert_eq!(e.field, "port[1].addresses");
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let e = Config::load(Path::new("/nonexistent/patronus.toml")).unwrap_err();
        assert!(e.message.contains("cannot read"), "{e}");
    }
}
