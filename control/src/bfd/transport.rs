//! What the I/O driver needs to carry a session over UDP: the ports and
//! the TTL / hop-limit rules of single-hop BFD (RFC 5881) and multihop BFD
//! (RFC 5883), over IPv4 and IPv6 alike.

/// Destination port of single-hop Control packets (RFC 5881 §4).
pub const SINGLE_HOP_PORT: u16 = 3784;
/// Destination port of multihop Control packets (RFC 5883 §5).
pub const MULTI_HOP_PORT: u16 = 4784;
/// Source ports come from this range, one per session and stable for its
/// life (RFC 5881 §4).
pub const SOURCE_PORTS: core::ops::RangeInclusive<u16> = 49152..=65535;
/// TTL / hop limit of every transmitted packet (RFC 5881 §5; RFC 5883 §5
/// leaves it to the sender, and 255 lets the receiver check hops).
pub const TX_TTL: u8 = 255;
/// FRR's default minimum TTL for multihop peers (`minimum-ttl 254`).
pub const DEFAULT_MULTIHOP_MIN_TTL: u8 = 254;
/// IP TOS / traffic class FRR uses for BFD (DSCP CS6), so BFD is not
/// starved behind bulk traffic on a congested link.
pub const TOS_CS6: u8 = 0xc0;

/// How the session reaches its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionKind {
    /// A directly connected neighbour: received TTL must be 255.
    SingleHop,
    /// A neighbour some hops away: received TTL must be at least `min_ttl`.
    MultiHop { min_ttl: u8 },
}

impl SessionKind {
    pub fn dst_port(self) -> u16 {
        match self {
            SessionKind::SingleHop => SINGLE_HOP_PORT,
            SessionKind::MultiHop { .. } => MULTI_HOP_PORT,
        }
    }

    pub fn tx_ttl(self) -> u8 {
        TX_TTL
    }

    /// The received TTL / hop-limit rule: single-hop packets must arrive
    /// with 255, proof that they were not forwarded (RFC 5881 §5, GTSM).
    pub fn accepts_ttl(self, ttl: u8) -> bool {
        match self {
            SessionKind::SingleHop => ttl == TX_TTL,
            SessionKind::MultiHop { min_ttl } => ttl >= min_ttl,
        }
    }

    pub fn is_multihop(self) -> bool {
        matches!(self, SessionKind::MultiHop { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_hop_uses_3784_and_requires_ttl_255() {
        let k = SessionKind::SingleHop;
        assert_eq!(k.dst_port(), 3784);
        assert_eq!(k.tx_ttl(), 255);
        assert!(k.accepts_ttl(255));
        assert!(!k.accepts_ttl(254));
        assert!(!k.accepts_ttl(1));
    }

    #[test]
    fn multihop_uses_4784_and_a_minimum_ttl() {
        let k = SessionKind::MultiHop { min_ttl: 250 };
        assert_eq!(k.dst_port(), 4784);
        assert_eq!(k.tx_ttl(), 255);
        assert!(k.accepts_ttl(255));
        assert!(k.accepts_ttl(250));
        assert!(!k.accepts_ttl(249));
    }

    #[test]
    fn source_port_range_is_the_dynamic_range() {
        assert_eq!(*SOURCE_PORTS.start(), 49152);
        assert_eq!(*SOURCE_PORTS.end(), 65535);
    }
}
