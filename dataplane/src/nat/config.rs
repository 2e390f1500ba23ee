//! The NAT's settings and their validation. One [`NatConfig`] per worker
//! and WAN address: every worker gets the same values except `worker`.

use super::NatProto;
use std::net::Ipv4Addr;

/// Which inbound packets a mapping admits (RFC 4787 section 5, REQ-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Filtering {
    /// From anyone: the most transparent (peer-to-peer works without
    /// hole punching), the least protective.
    EndpointIndependent,
    /// Only from addresses the mapping has sent to (any port): REQ-8's
    /// recommendation when transparency and security are both wanted.
    #[default]
    AddressDependent,
    /// Only from the exact (address, port) endpoints the mapping has sent
    /// to.
    AddressAndPortDependent,
}

impl Filtering {
    pub const fn name(self) -> &'static str {
        match self {
            Filtering::EndpointIndependent => "endpoint-independent",
            Filtering::AddressDependent => "address-dependent",
            Filtering::AddressAndPortDependent => "address-and-port-dependent",
        }
    }

    /// Parses a name as written in the config (case-insensitive).
    pub fn parse(name: &str) -> Option<Filtering> {
        [
            Filtering::EndpointIndependent,
            Filtering::AddressDependent,
            Filtering::AddressAndPortDependent,
        ]
        .into_iter()
        .find(|f| f.name().eq_ignore_ascii_case(name))
    }
}

/// Mapping idle timeouts in seconds. The defaults are the RFCs' minima or
/// recommendations, and shorter values are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// UDP: RFC 4787 REQ-5, at least 120 s, 300 s recommended.
    pub udp: u32,
    /// TCP established: RFC 5382 REQ-5, at least 7440 s (2 h 4 min).
    pub tcp_established: u32,
    /// TCP partially open or closed: RFC 5382 REQ-5, at least 240 s.
    pub tcp_transitory: u32,
    /// ICMP echo: RFC 5508 REQ-1, at least 60 s.
    pub icmp: u32,
}

impl Timeouts {
    pub const MIN: Timeouts = Timeouts {
        udp: 120,
        tcp_established: 7440,
        tcp_transitory: 240,
        icmp: 60,
    };

    /// Longest timeout accepted: a day keeps every age far below the
    /// 2^31 stamp units the wrapping comparison allows.
    pub const MAX: u32 = 86_400;

    fn fields(&self) -> [(&'static str, u32, u32); 4] {
        [
            ("udp", self.udp, Self::MIN.udp),
            (
                "tcp_established",
                self.tcp_established,
                Self::MIN.tcp_established,
            ),
            (
                "tcp_transitory",
                self.tcp_transitory,
                Self::MIN.tcp_transitory,
            ),
            ("icmp", self.icmp, Self::MIN.icmp),
        ]
    }
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            udp: 300,
            ..Timeouts::MIN
        }
    }
}

/// Most reserved (protocol, port) pairs.
pub const MAX_RESERVED: usize = 64;

/// One worker's NAT towards one external address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatConfig {
    /// The WAN port's address every mapping uses.
    pub external: Ipv4Addr,
    /// The external port (and echo id) range, inclusive; 1024..=65535 by
    /// default.
    pub port_lo: u16,
    pub port_hi: u16,
    /// How many workers share the range, and which one this is.
    pub workers: u16,
    pub worker: u16,
    pub filtering: Filtering,
    pub timeouts: Timeouts,
    /// Live mappings this worker may hold. The table has one slot per port
    /// of the slice and protocol whatever this says; it bounds the index
    /// and the memory a busy LAN can pin. Clamped to the slot count.
    pub max_mappings: usize,
    /// Ports tried for a new mapping before giving up
    /// ([`super::NatDrop::PortExhausted`]).
    pub max_probes: u16,
    /// External ports never allocated: the node's own services on the WAN
    /// address (WireGuard listen ports, BFD, SLA probes) that the range
    /// overlaps.
    pub reserved: Vec<(NatProto, u16)>,
    /// Keys the endpoint hash (owner worker, index, first port probed).
    /// Random per process, the same on every worker.
    pub secret: u128,
    /// Ticks of the caller's clock per second (the TSC frequency).
    pub ticks_per_second: u64,
}

impl NatConfig {
    /// The defaults for worker `worker` of `workers`.
    pub fn new(
        external: Ipv4Addr,
        workers: u16,
        worker: u16,
        secret: u128,
        ticks_per_second: u64,
    ) -> NatConfig {
        NatConfig {
            external,
            port_lo: 1024,
            port_hi: 65535,
            workers,
            worker,
            filtering: Filtering::default(),
            timeouts: Timeouts::default(),
            max_mappings: usize::MAX,
            max_probes: 32,
            reserved: Vec::new(),
            secret,
            ticks_per_second,
        }
    }

    /// Checks everything except the port partition, which
    /// [`super::ports::PortSlice::new`] checks.
    pub fn validate(&self) -> Result<(), NatConfigError> {
        let a = self.external;
        if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() {
            return Err(NatConfigError::External(a));
        }
        for (name, value, min) in self.timeouts.fields() {
            if value < min || value > Timeouts::MAX {
                return Err(NatConfigError::Timeout { name, value, min });
            }
        }
        if self.ticks_per_second < 1000 {
            return Err(NatConfigError::TicksPerSecond(self.ticks_per_second));
        }
        if self.max_probes == 0 {
            return Err(NatConfigError::MaxProbes);
        }
        if self.max_mappings == 0 {
            return Err(NatConfigError::MaxMappings);
        }
        if self.reserved.len() > MAX_RESERVED {
            return Err(NatConfigError::Reserved(self.reserved.len()));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NatConfigError {
    #[error("nat: external address {0} is not a unicast address")]
    External(Ipv4Addr),
    #[error("nat: port range {lo}..={hi} is empty or starts at 0")]
    PortRange { lo: u16, hi: u16 },
    #[error("nat: worker {worker} of {workers} does not exist")]
    Worker { worker: u16, workers: u16 },
    #[error("nat: port range {lo}..={hi} leaves some of the {workers} workers no port")]
    EmptySlice { lo: u16, hi: u16, workers: u16 },
    #[error(
        "nat: timeouts.{name} = {value} s, must be {min} to 86400 s (RFC 4787/5382/5508 minimum)"
    )]
    Timeout {
        name: &'static str,
        value: u32,
        min: u32,
    },
    #[error("nat: ticks_per_second {0} is below 1000")]
    TicksPerSecond(u64),
    #[error("nat: max_probes must be at least 1")]
    MaxProbes,
    #[error("nat: max_mappings must be at least 1")]
    MaxMappings,
    #[error("nat: {0} reserved ports, at most 64")]
    Reserved(usize),
    #[error("nat: cannot allocate the mapping table ({0} bytes)")]
    Alloc(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NatConfig {
        NatConfig::new(Ipv4Addr::new(198, 51, 100, 1), 2, 0, 7, 1_000_000)
    }

    #[test]
    fn defaults_meet_the_rfc_minima_and_validate() {
        let c = config();
        c.validate().unwrap();
        assert_eq!(c.filtering, Filtering::AddressDependent);
        assert_eq!(c.timeouts.udp, 300);
        assert_eq!(c.timeouts.tcp_established, 2 * 3600 + 4 * 60);
        assert_eq!(c.timeouts.tcp_transitory, 4 * 60);
        assert_eq!(c.timeouts.icmp, 60);
    }

    #[test]
    fn timeouts_below_the_rfc_minimum_are_refused_by_name() {
        let mut c = config();
        c.timeouts.udp = 119;
        let e = c.validate().unwrap_err();
        assert_eq!(
            e,
            NatConfigError::Timeout {
                name: "udp",
                value: 119,
                min: 120
            }
        );
        assert!(e.to_string().contains("timeouts.udp = 119 s"), "{e}");
        let mut c = config();
        c.timeouts.tcp_established = 7439;
        assert!(c.validate().is_err());
        let mut c = config();
        c.timeouts.icmp = Timeouts::MAX + 1;
        assert!(c.validate().is_err());
    }

    #[test]
    fn non_unicast_external_addresses_are_refused() {
        for a in [
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(224, 0, 0, 1),
            Ipv4Addr::LOCALHOST,
        ] {
            let mut c = config();
            c.external = a;
            assert_eq!(c.validate(), Err(NatConfigError::External(a)));
        }
    }

    #[test]
    fn filtering_names_round_trip() {
        for f in [
            Filtering::EndpointIndependent,
            Filtering::AddressDependent,
            Filtering::AddressAndPortDependent,
        ] {
            assert_eq!(Filtering::parse(&f.name().to_uppercase()), Some(f));
        }
        assert_eq!(Filtering::parse("symmetric"), None);
    }
}
