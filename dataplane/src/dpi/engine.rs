//! The per-core inspection engine. (API skeleton: the dissectors land
//! behind these signatures.)

use super::key::Side;
use super::types::{AppId, Classification};
use std::net::IpAddr;

/// One packet as the engine sees it: parsed headers and the L4 payload.
#[derive(Debug, Clone, Copy)]
pub struct PacketView<'a> {
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub proto: u8,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    /// The side of the flow key that sent it (from [`super::key::FlowKey::new`]).
    pub side: Side,
    /// TCP only: sequence number and flags; None for other protocols.
    pub tcp: Option<TcpMeta>,
    /// The L4 payload (may be empty, e.g. a bare SYN or ACK).
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpMeta {
    pub seq: u32,
    pub flags: u8,
}

/// A flow's inspection state, kept in its flow-table entry: at most 16
/// bytes, `Copy`, and all zero (`Default`) for a new flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowDpi {
    /// The decision so far (`confidence` is `None` while undecided).
    pub class: Classification,
    /// Packets inspected so far.
    pub inspected: u8,
}

/// Engine settings (the config's `[dpi]` section).
#[derive(Debug, Clone)]
pub struct DpiConfig {
    /// Stop inspecting a flow after this many packets (both directions)
    /// and fall back to a port guess.
    pub max_packets: u8,
    /// Flows that may reassemble payload at once (split TLS ClientHellos,
    /// multi-packet QUIC Initials).
    pub reassembly_slots: usize,
    /// Extra application rules from the config, added to the built-ins.
    pub rules: Vec<AppRuleConfig>,
}

impl Default for DpiConfig {
    fn default() -> Self {
        DpiConfig {
            max_packets: 12,
            reassembly_slots: 1024,
            rules: Vec::new(),
        }
    }
}

/// A hostname suffix rule from the config: hostnames equal to `suffix` or
/// ending in `.suffix` belong to `app`, in `category`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRuleConfig {
    pub suffix: String,
    pub app: String,
    pub category: String,
}

/// What [`DpiEngine::inspect`] says about a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inspection<'e> {
    /// Still looking.
    Pending,
    /// Decided on this packet. `hostname` borrows the engine's scratch
    /// space and is valid until the next call.
    Decided {
        class: Classification,
        hostname: Option<&'e str>,
    },
    /// Decided earlier; nothing more to do for this flow.
    Done,
}

#[derive(Debug, thiserror::Error)]
pub enum DpiError {
    #[error("dpi rule {index}: {reason}")]
    BadRule { index: usize, reason: String },
}

/// One per worker (and one in the offline classifier).
pub struct DpiEngine {
    config: DpiConfig,
}

impl DpiEngine {
    pub fn new(config: DpiConfig) -> Result<DpiEngine, DpiError> {
        Ok(DpiEngine { config })
    }

    /// Inspects one packet of a flow. `now` is in the caller's ticks (used
    /// only to expire reassembly slots and expectations).
    pub fn inspect(&mut self, flow: &mut FlowDpi, pkt: &PacketView<'_>, now: u64) -> Inspection<'_> {
        let _ = (pkt, now, &self.config);
        if flow.class.confidence != super::types::Confidence::None {
            return Inspection::Done;
        }
        flow.inspected = flow.inspected.saturating_add(1);
        Inspection::Pending
    }

    /// Gives up on a flow that has stopped sending before a decision
    /// (e.g. at the end of a capture): a port guess, or Unknown.
    pub fn finish(&mut self, flow: &mut FlowDpi, pkt_proto: u8, lo_port: u16, hi_port: u16) -> Classification {
        let _ = (pkt_proto, lo_port, hi_port);
        flow.class
    }

    /// The name of an application id (None for [`AppId::NONE`] or an id
    /// this engine did not hand out).
    pub fn app_name(&self, app: AppId) -> Option<&str> {
        let _ = app;
        None
    }
}
