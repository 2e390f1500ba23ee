//! Source NAPT for direct internet access (local breakout), sans-I/O: the
//! per-core mapping table and the in-place translation of IPv4 packets to
//! and from one WAN port's address. Nothing here reads a clock (`now` is
//! the caller's ticks, the TSC on a worker), allocates after
//! construction, or panics on any input. Not wired into the worker yet;
//! docs/nat.md describes the model and what the wiring still needs.
//!
//! The behaviour follows the NAT behavioural requirements:
//! - RFC 4787 (UDP): endpoint-independent mapping (REQ-1); filtering
//!   configurable as endpoint-independent, address-dependent (the default,
//!   as REQ-8 recommends) or address-and-port-dependent; mapping timer
//!   at least 2 minutes, 5 by default (REQ-5); outbound refresh (REQ-6);
//!   no port overloading (REQ-3); hairpinning (REQ-9) is **refused** by
//!   design (issue 14): a LAN host addressing the external address is
//!   dropped and counted.
//! - RFC 5382 (TCP): endpoint-independent mapping (REQ-1), the same
//!   filtering choice, established idle timeout at least 2 h 4 min and
//!   transitory at least 4 min (REQ-5). The TCP phase comes from the
//!   caller ([`TcpPhase`]), normally the firewall's conntrack state, so
//!   TCP is not tracked twice.
//! - RFC 5508 (ICMP): the echo identifier is mapped like a port and query
//!   mappings live at least 60 s (REQ-1); ICMP errors with a bad ICMP or
//!   quoted IP checksum are dropped (REQ-3), the others are translated
//!   both ways with the embedded packet's addresses, ports and checksums
//!   fixed, and errors that match no mapping are dropped.
//! - RFC 7857 (updates): port randomisation (RFC 6056 style, keyed hash
//!   start), a RST moves a TCP mapping to the transitory timeout rather
//!   than deleting it, ICMP errors never create or refresh mappings.
//!
//! IPv4 only: IPv6 NAT (NPTv6, NAT66) is not wanted; IPv6 breakout is
//! routed, and an IPv6 packet given to the NAT is dropped as
//! [`NatDrop::Unsupported`].
//!
//! - [`config`]: [`NatConfig`] and its validation.
//! - [`ports`]: the external port range split among workers
//!   (`port % workers == worker`), [`ports::PortSlice::owner_of`], and the
//!   keyed hash that picks each internal endpoint's owner worker.
//! - [`table`]: the mapping table, indexed both ways, bounded and expiring.
//! - [`translate`]: [`Nat`], the per-packet translation.

#![forbid(unsafe_code)]

pub mod config;
pub mod ports;
pub mod table;
pub mod translate;

#[cfg(test)]
mod tests;

pub use config::{Filtering, NatConfig, NatConfigError, Timeouts};
pub use translate::{Inbound, Nat, Outbound};

/// The protocols the NAT maps, each with its own port space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum NatProto {
    Tcp = 0,
    Udp = 1,
    /// ICMP echo: the identifier is the port.
    Icmp = 2,
}

impl NatProto {
    pub const COUNT: usize = 3;
    pub const ALL: [NatProto; NatProto::COUNT] = [NatProto::Tcp, NatProto::Udp, NatProto::Icmp];

    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            NatProto::Tcp => 6,
            NatProto::Udp => 17,
            NatProto::Icmp => 1,
        }
    }

    pub const fn from_number(proto: u8) -> Option<NatProto> {
        match proto {
            6 => Some(NatProto::Tcp),
            17 => Some(NatProto::Udp),
            1 => Some(NatProto::Icmp),
            _ => None,
        }
    }
}

/// Where a TCP connection is in its life, as far as the mapping's idle
/// timeout is concerned (RFC 5382 REQ-5). The caller passes it with every
/// TCP packet; the last one passed decides the mapping's timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpPhase {
    /// Partially open or partially closed (or reset): the transitory
    /// timeout (4 min).
    Transitory,
    /// Both sides' SYNs acknowledged and no FIN or RST yet: the
    /// established timeout (2 h 4 min).
    Established,
}

impl TcpPhase {
    /// The phase of a connection in the firewall's conntrack state.
    pub const fn from_conntrack(state: crate::fw::tcp_state::TcpState) -> TcpPhase {
        match state {
            crate::fw::tcp_state::TcpState::Established => TcpPhase::Established,
            _ => TcpPhase::Transitory,
        }
    }

    /// A guess from one segment's flags (header byte 13), for a caller
    /// without conntrack: SYN, FIN or RST means transitory, anything else
    /// established. A plain ACK after a FIN reads as established again, so
    /// conntrack's state is the better source.
    pub const fn from_flags(flags: u8) -> TcpPhase {
        const FIN_SYN_RST: u8 = 0x07;
        if flags & FIN_SYN_RST != 0 {
            TcpPhase::Transitory
        } else {
            TcpPhase::Established
        }
    }
}

/// Why the NAT dropped a packet: one counter each in [`NatStats::drops`],
/// in the order of [`NatDrop::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatDrop {
    /// No free external port within the probe budget of this worker's
    /// slice.
    PortExhausted,
    /// The worker holds its configured maximum of live mappings.
    TableFull,
    /// An inbound packet to an external port (or echo id) with no live
    /// mapping, or outside the configured range.
    NoMapping,
    /// An inbound packet from a remote endpoint the mapping's filtering
    /// does not admit.
    Filtered,
    /// A LAN packet addressed to the NAT's own external address
    /// (hairpinning is refused).
    Hairpin,
    /// An ICMP error whose quoted packet matches no live mapping (or, with
    /// filtering, was not sent to a remote the mapping talked to).
    IcmpErrorUnmatched,
    /// Not a well-formed IPv4 packet, or a transport header too short to
    /// translate.
    Malformed,
    /// An inbound non-first fragment: no port to find its mapping by (no
    /// reassembly or fragment cache yet).
    Fragment,
    /// IPv6, a protocol other than TCP, UDP and ICMP, or an ICMP type the
    /// NAT does not translate.
    Unsupported,
}

impl NatDrop {
    pub const COUNT: usize = 9;
    pub const ALL: [NatDrop; NatDrop::COUNT] = [
        NatDrop::PortExhausted,
        NatDrop::TableFull,
        NatDrop::NoMapping,
        NatDrop::Filtered,
        NatDrop::Hairpin,
        NatDrop::IcmpErrorUnmatched,
        NatDrop::Malformed,
        NatDrop::Fragment,
        NatDrop::Unsupported,
    ];

    /// A stable snake_case name for logs and metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            NatDrop::PortExhausted => "nat_port_exhausted",
            NatDrop::TableFull => "nat_table_full",
            NatDrop::NoMapping => "nat_no_mapping",
            NatDrop::Filtered => "nat_filtered",
            NatDrop::Hairpin => "nat_hairpin",
            NatDrop::IcmpErrorUnmatched => "nat_icmp_error_unmatched",
            NatDrop::Malformed => "nat_malformed",
            NatDrop::Fragment => "nat_fragment",
            NatDrop::Unsupported => "nat_unsupported",
        }
    }
}

/// Counters since construction, per worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatStats {
    /// Indexed by `NatDrop as usize`.
    pub drops: [u64; NatDrop::COUNT],
    /// Mappings created (including a live one's port reused after it
    /// idled out).
    pub created: u64,
    /// Mappings removed for idling, by the sweep or when their port was
    /// probed for a new mapping.
    pub expired: u64,
    /// Packets translated LAN to WAN (including ICMP errors).
    pub outbound: u64,
    /// Packets translated WAN to LAN (including ICMP errors).
    pub inbound: u64,
    /// ICMP errors translated, either way.
    pub icmp_errors: u64,
}

impl NatStats {
    pub fn dropped(&self, reason: NatDrop) -> u64 {
        self.drops[reason as usize]
    }

    /// All drops, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}
