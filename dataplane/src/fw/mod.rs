//! The stateful firewall's pure core: zone rules and connection tracking,
//! sans-I/O. Nothing here reads a clock (`now` is the caller's ticks, the
//! TSC on a worker), allocates after construction, or panics on any input.
//! Not wired into the worker yet; docs/firewall.md describes the model.
//!
//! - [`rules`]: zones (`lan`, `wan`, `tunnel`), an ordered rule list and a
//!   default action per (from, to) zone pair, deny by default from `wan`;
//!   the validated config and the compiled rule set.
//! - [`tcp_state`]: window-free TCP states and transitions (RFC 9293 states
//!   as nf_conntrack tracks them with `be_liberal`).
//! - [`conntrack`]: the per-core connection table, a
//!   [`crate::dpi::flowtable::FlowTable`] whose value is (or contains) a
//!   2-byte [`conntrack::Conn`]: per-state idle timeouts (RFC 5382 for TCP,
//!   RFC 4787 for UDP), a bounded embryonic quota and no eviction of
//!   established flows.
//! - [`meta`]: the parsed fields the firewall decides on, built from a
//!   frame with the `wire` parsers.
//! - [`firewall`]: [`firewall::Firewall::check`], the per-packet verdict.

#![forbid(unsafe_code)]

pub mod conntrack;
pub mod firewall;
pub mod meta;
pub mod rules;
pub mod tcp_state;

#[cfg(test)]
mod tests;

pub use firewall::{Firewall, FirewallConfig};
pub use meta::PacketMeta;

/// Where a packet comes from or goes to: the kind of port (or tunnel) it
/// arrived on or leaves by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Zone {
    Lan = 0,
    Wan = 1,
    Tunnel = 2,
}

impl Zone {
    pub const COUNT: usize = 3;
    pub const ALL: [Zone; Zone::COUNT] = [Zone::Lan, Zone::Wan, Zone::Tunnel];

    pub const fn name(self) -> &'static str {
        match self {
            Zone::Lan => "lan",
            Zone::Wan => "wan",
            Zone::Tunnel => "tunnel",
        }
    }

    /// Parses a name as written in the config (case-insensitive).
    pub fn parse(name: &str) -> Option<Zone> {
        Zone::ALL
            .into_iter()
            .find(|z| z.name().eq_ignore_ascii_case(name))
    }

    /// The zone of a 2-bit code (3 reads as `Tunnel`; never stored).
    pub(crate) const fn from_bits(bits: u8) -> Zone {
        match bits & 3 {
            0 => Zone::Lan,
            1 => Zone::Wan,
            _ => Zone::Tunnel,
        }
    }
}

/// Which way a packet travels on its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the side that opened it.
    Orig,
    /// From the other side.
    Reply,
}

/// Why the firewall dropped a packet: one counter each in
/// [`FwStats::drops`], in the order of [`FwDrop::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FwDrop {
    /// A new flow a rule denies.
    RuleDeny,
    /// A new flow no rule matches, in a zone pair that denies by default.
    DefaultDeny,
    /// A flow admitted before its application was known, denied once it
    /// was; its later packets are dropped for this reason too.
    AppDeny,
    /// A TCP segment with an impossible flag combination.
    TcpFlags,
    /// A SYN-ACK with no SYN from the other side.
    TcpSynAckWithoutSyn,
    /// A TCP segment other than a SYN with no connection tracked (mid-stream
    /// pickup off), or data before the handshake completed.
    TcpNotEstablished,
    /// A TCP segment the connection's state does not expect.
    TcpUnexpected,
    /// An ICMP echo reply with no request tracked, or a request or reply
    /// travelling the wrong way.
    IcmpUnsolicited,
    /// An ICMP error whose quoted packet belongs to no tracked flow, or not
    /// in the direction the error travels.
    IcmpErrorNoFlow,
    /// A packet of a tracked flow between zones other than the flow's.
    ZoneMismatch,
    /// A new flow with no room in the table: no free slot in its two
    /// buckets and nothing there that may be evicted.
    TableFull,
    /// A new flow while the embryonic quota is spent and none of its
    /// buckets' embryonic flows may give way.
    EmbryonicLimit,
    /// Not a well-formed IP packet (see [`meta::MetaError`]).
    Malformed,
    /// A non-first fragment: no ports to match (no reassembly yet).
    Fragment,
}

impl FwDrop {
    pub const COUNT: usize = 14;
    pub const ALL: [FwDrop; FwDrop::COUNT] = [
        FwDrop::RuleDeny,
        FwDrop::DefaultDeny,
        FwDrop::AppDeny,
        FwDrop::TcpFlags,
        FwDrop::TcpSynAckWithoutSyn,
        FwDrop::TcpNotEstablished,
        FwDrop::TcpUnexpected,
        FwDrop::IcmpUnsolicited,
        FwDrop::IcmpErrorNoFlow,
        FwDrop::ZoneMismatch,
        FwDrop::TableFull,
        FwDrop::EmbryonicLimit,
        FwDrop::Malformed,
        FwDrop::Fragment,
    ];

    /// A stable snake_case name for logs and metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            FwDrop::RuleDeny => "fw_rule_deny",
            FwDrop::DefaultDeny => "fw_default_deny",
            FwDrop::AppDeny => "fw_app_deny",
            FwDrop::TcpFlags => "fw_tcp_flags",
            FwDrop::TcpSynAckWithoutSyn => "fw_tcp_synack_without_syn",
            FwDrop::TcpNotEstablished => "fw_tcp_not_established",
            FwDrop::TcpUnexpected => "fw_tcp_unexpected",
            FwDrop::IcmpUnsolicited => "fw_icmp_unsolicited",
            FwDrop::IcmpErrorNoFlow => "fw_icmp_error_no_flow",
            FwDrop::ZoneMismatch => "fw_zone_mismatch",
            FwDrop::TableFull => "fw_table_full",
            FwDrop::EmbryonicLimit => "fw_embryonic_limit",
            FwDrop::Malformed => "fw_malformed",
            FwDrop::Fragment => "fw_fragment",
        }
    }
}

/// Counters since construction, per worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FwStats {
    /// Indexed by `FwDrop as usize`.
    pub drops: [u64; FwDrop::COUNT],
    /// Packets that started a tracked flow.
    pub new_flows: u64,
    /// Packets of tracked flows.
    pub established: u64,
    /// ICMP errors matched to a tracked flow.
    pub related: u64,
    /// Packets allowed by a rule without tracking (ICMP other than echo
    /// and errors).
    pub stateless: u64,
    /// Embryonic flows evicted to make room for a new flow.
    pub embryonic_evicted: u64,
    /// Flows removed by the expiry sweep.
    pub expired: u64,
}

impl FwStats {
    pub fn dropped(&self, reason: FwDrop) -> u64 {
        self.drops[reason as usize]
    }
}

/// How an allowed packet relates to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// It started a tracked flow, now in `state`.
    New { state: State },
    /// It belongs to a tracked flow, travelling `dir`, now in `state`.
    Established { dir: Dir, state: State },
    /// An ICMP error about a tracked flow.
    Related,
    /// Allowed by a rule, not tracked.
    Stateless,
}

/// The firewall's decision on one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow(Allowed),
    Drop(FwDrop),
}

impl Verdict {
    pub fn is_allow(&self) -> bool {
        matches!(self, Verdict::Allow(_))
    }
}

/// A tracked flow's state: a TCP state, or the pseudo-state of a flow
/// without one (UDP, ICMP echo, other protocols).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Tcp(tcp_state::TcpState),
    /// Packets seen one way only.
    Unreplied,
    /// A reply seen.
    Replied,
    /// A reply seen and then another packet from the originator: a stream,
    /// not a single request and answer (UDP and other protocols only).
    Assured,
}

impl State {
    /// The 1-byte code in [`conntrack::Conn`]; 0 is "no connection".
    pub const fn code(self) -> u8 {
        match self {
            State::Tcp(t) => t as u8,
            State::Unreplied => 9,
            State::Replied => 10,
            State::Assured => 11,
        }
    }

    pub const fn from_code(code: u8) -> Option<State> {
        use tcp_state::TcpState as T;
        Some(match code {
            1 => State::Tcp(T::SynSent),
            2 => State::Tcp(T::SynRecv),
            3 => State::Tcp(T::Established),
            4 => State::Tcp(T::FinWait),
            5 => State::Tcp(T::CloseWait),
            6 => State::Tcp(T::LastAck),
            7 => State::Tcp(T::TimeWait),
            8 => State::Tcp(T::Close),
            9 => State::Unreplied,
            10 => State::Replied,
            11 => State::Assured,
            _ => return None,
        })
    }

    /// Not yet answered: counts against the embryonic quota and may be
    /// evicted for a new flow.
    pub const fn is_embryonic(self) -> bool {
        match self {
            State::Tcp(t) => t.is_embryonic(),
            State::Unreplied => true,
            State::Replied | State::Assured => false,
        }
    }
}
