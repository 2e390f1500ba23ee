//! The API's wire types: every request and response body, as plain data
//! with serde and an OpenAPI schema (utoipa). The daemon fills them from
//! its own state; nothing here depends on the data plane's types, so the
//! JSON stays stable when the internals move.
//!
//! Units are in the field names (`_ms`, `_pct`, `_bytes`, `_unix`) because
//! a JSON number carries none. Byte and packet counters are cumulative
//! since start; rates are the client's business (the dashboard takes
//! deltas between polls).
//!
//! Secrets never appear here: a peer carries its public key only.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// `GET /api/v1/status`: the node as a whole.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Status {
    /// The daemon's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// Seconds since the API state was created, i.e. since the daemon started.
    pub uptime_seconds: f64,
    pub cores: Cores,
    pub ports: Vec<Port>,
    /// Ports up and every worker polling: the same as `GET /readyz`.
    pub ready: bool,
}

/// The CPUs the daemon runs on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Cores {
    /// The control thread's CPU.
    pub control: usize,
    pub workers: Vec<Worker>,
}

/// One worker thread and its counters since start.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Worker {
    /// Worker index (its queue pair on every port).
    pub id: usize,
    /// The CPU it is pinned to.
    pub core: usize,
    pub polls: u64,
    /// Polls that received nothing.
    pub idle_polls: u64,
    /// Time spent in polls that received packets.
    pub busy_seconds: f64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Packets dropped for any reason.
    pub dropped: u64,
}

/// A DPDK port.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Port {
    /// The name from the config (`lan`, `wan1`, ...).
    pub name: String,
    /// `lan` or `wan`.
    pub role: String,
    pub link_up: bool,
    /// Link speed; 0 when down or unknown.
    pub speed_mbps: u64,
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Addresses with prefix length, `192.0.2.1/24`.
    pub addresses: Vec<String>,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Packets the device or the workers dropped on this port.
    pub drops: u64,
}

/// A WireGuard peer (a remote site).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Peer {
    pub name: String,
    /// Base64, as in the config. Never a private or preshared key.
    pub public_key: String,
    /// `host:port` of each configured endpoint.
    pub endpoints: Vec<String>,
    pub allowed_ips: Vec<String>,
    /// Seconds since the Unix epoch of the latest completed handshake.
    pub latest_handshake_unix: Option<f64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// The numbers of this peer's paths, 1 first (see `GET /api/v1/paths`).
    pub paths: Vec<u8>,
    /// Times a policy of this peer moved its traffic off a path that went
    /// down or broke its SLA class.
    pub failovers: u64,
}

/// One path to a peer: a (local WAN port, remote endpoint) pair.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Path {
    /// The peer's name.
    pub peer: String,
    /// The path's number within the peer, 1 first (as in the config and
    /// the logs).
    pub index: u8,
    /// Our WAN port.
    pub port: String,
    /// Local address (`ip:port`).
    pub local: String,
    /// Remote endpoint (`ip:port`).
    pub remote: String,
    /// Usable: BFD (if enabled) and probes say it is up.
    pub up: bool,
    pub bfd: Option<Bfd>,
    pub sla: Option<PathSla>,
    pub tx_bytes: u64,
}

/// BFD session states, RFC 5880 §4.1 (the numeric values in parentheses are
/// the protocol's, and `patronus_path_bfd_state` exports them).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BfdState {
    /// (0)
    AdminDown,
    /// (1)
    #[default]
    Down,
    /// (2)
    Init,
    /// (3)
    Up,
}

impl BfdState {
    pub const fn code(self) -> u8 {
        match self {
            BfdState::AdminDown => 0,
            BfdState::Down => 1,
            BfdState::Init => 2,
            BfdState::Up => 3,
        }
    }
}

/// A path's BFD session.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Bfd {
    pub state: BfdState,
    pub remote_state: BfdState,
    /// The diagnostic code's name (RFC 5880 §4.1), e.g. `control_detection_time_expired`.
    pub diag: String,
    /// Negotiated transmit interval.
    pub interval_ms: f64,
    /// Detect multiplier.
    pub multiplier: u8,
}

/// A path's SLA measurements over the estimator's window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct PathSla {
    pub rtt_ms: RttMs,
    pub jitter_ms: Directional,
    pub loss_pct: Loss,
    /// Probe replies in the window.
    pub samples: u64,
    /// Per SLA class name: whether the path meets it.
    pub compliant: BTreeMap<String, bool>,
}

/// Round-trip time distribution, milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct RttMs {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

/// A per-direction value (forward: us → peer).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Directional {
    pub forward: f64,
    pub reverse: f64,
}

/// Packet loss, percent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Loss {
    pub round_trip: f64,
    pub forward: f64,
    pub reverse: f64,
}

/// An SLA class: the limits a path must meet to carry it. A missing limit
/// means none on that metric.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlaClass {
    /// 1–32 characters of `A-Z a-z 0-9 _ -`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub name: String,
    /// Limit on the p95 round-trip time.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 60000.0)]
    pub max_latency_ms: Option<f64>,
    /// Limit on packet loss, 0–100.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 100.0)]
    pub max_loss_pct: Option<f64>,
    /// Limit on the RFC 3550 interarrival jitter.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 60000.0)]
    pub max_jitter_ms: Option<f64>,
}

/// How a policy uses the compliant paths.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// All flows on the single best path.
    #[default]
    BestPath,
    /// Flows spread over every compliant path, weighted by capacity.
    Spread,
}

/// A 5-tuple/DSCP match. Every given field must match; an absent one
/// matches anything.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `tcp`, `udp`, `icmp`, `icmpv6` or an IP protocol number.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Source prefix, `10.0.0.0/8` or `2001:db8::/32`.
    #[serde(default)]
    pub src: Option<String>,
    #[serde(default)]
    pub dst: Option<String>,
    /// `443` or `1000-2000`.
    #[serde(default)]
    pub src_ports: Option<String>,
    #[serde(default)]
    pub dst_ports: Option<String>,
    /// DSCP code point, 0–63.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 63)]
    pub dscp: Option<u8>,
}

/// A policy: which traffic, the SLA class it needs, the paths it prefers
/// and how it balances. Policies are matched in order; the first wins.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// 1–32 characters of `A-Z a-z 0-9 _ -`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub name: String,
    /// An existing SLA class's name.
    pub sla_class: String,
    /// DPI categories (`VoIP`, `Video`, `Web`, ...).
    #[serde(default)]
    pub categories: Vec<String>,
    /// DPI application names.
    #[serde(default)]
    pub apps: Vec<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Preferred paths, most preferred first: `path:N` (a peer's path
    /// number, 1 first, as in the config) or `port:NAME` (every path out of
    /// that WAN port).
    #[serde(default)]
    pub path_order: Vec<String>,
    #[serde(default)]
    pub mode: Mode,
}

/// One flow (the top flows by bytes).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Flow {
    pub src: String,
    pub dst: String,
    /// `tcp`, `udp`, or the protocol number.
    pub protocol: String,
    pub src_port: u16,
    pub dst_port: u16,
    /// DPI application, if known.
    pub app: Option<String>,
    pub category: String,
    pub peer: Option<String>,
    pub path: Option<u8>,
    pub qos_class: String,
    pub bytes: u64,
    pub packets: u64,
}

/// `GET /api/v1/stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Stats {
    /// Per shaped port.
    pub qos: Vec<QosPort>,
    pub dpi: Dpi,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct QosPort {
    pub port: String,
    pub classes: Vec<QosClassStats>,
}

/// One QoS class on one port, cumulative.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct QosClassStats {
    /// `realtime`, `interactive`, `streaming`, `standard` or `bulk`.
    pub class: String,
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub dropped_packets: u64,
    /// p99 of the time packets spent queued, microseconds (recent window).
    pub queue_delay_p99_us: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Dpi {
    /// Flows classified, per category, since start.
    pub by_category: Vec<CategoryCount>,
    /// The applications with the most flows, most first (bounded: the top N only).
    pub top_apps: Vec<AppCount>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CategoryCount {
    pub category: String,
    pub flows: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AppCount {
    pub app: String,
    pub category: String,
    pub flows: u64,
    pub bytes: u64,
}

/// Something that happened: an SLA violation or recovery, a path switch,
/// a BFD state change, a configuration change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Event {
    /// Increases by one per event, from 1; the SSE `id`.
    pub seq: u64,
    /// Seconds since the Unix epoch.
    pub at_unix: f64,
    /// `sla_violation`, `sla_recovery`, `path_switch`, `degraded`, `bfd`,
    /// `peer`, `config`; clients should ignore kinds they do not know.
    pub kind: String,
    pub peer: Option<String>,
    pub path: Option<u8>,
    pub policy: Option<String>,
    /// One human-readable line.
    pub message: String,
    /// Kind-specific details (measurements, reasons), as text.
    pub fields: BTreeMap<String, String>,
}

impl Event {
    /// An event for [`super::state::ApiState::push_event`], which assigns
    /// `seq` and, if unset, `at_unix`.
    pub fn new(kind: &str, message: impl Into<String>) -> Event {
        Event {
            kind: kind.to_string(),
            message: message.into(),
            ..Event::default()
        }
    }

    pub fn peer(mut self, peer: &str) -> Event {
        self.peer = Some(peer.to_string());
        self
    }

    pub fn path(mut self, path: u8) -> Event {
        self.path = Some(path);
        self
    }

    pub fn policy(mut self, policy: &str) -> Event {
        self.policy = Some(policy.to_string());
        self
    }

    pub fn field(mut self, key: &str, value: impl ToString) -> Event {
        self.fields.insert(key.to_string(), value.to_string());
        self
    }
}

/// `GET /api/v1/events`: a page of history.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EventPage {
    /// Oldest first.
    pub events: Vec<Event>,
    /// Pass as `after` to get the next page (the last `seq` returned, or
    /// `after` itself when there was nothing new).
    pub next: u64,
}

/// Every error: what is wrong and, for a bad request body or parameter,
/// which field (`rules[0].dscp`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ErrorBody {
    pub error: String,
    pub field: Option<String>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Health {
    /// `ok`, `ready` or `not ready`.
    pub status: String,
}
