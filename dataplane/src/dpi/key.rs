//! The bidirectional flow key: both directions of a 5-tuple map to one key,
//! with the side the packet came from.

use std::net::IpAddr;

/// Which endpoint of a [`FlowKey`] sent a packet: `Lo` is the endpoint
/// that sorts first (address, then port), `Hi` the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Lo,
    Hi,
}

impl Side {
    pub const fn other(self) -> Side {
        match self {
            Side::Lo => Side::Hi,
            Side::Hi => Side::Lo,
        }
    }
}

/// An IPv4 or IPv6 5-tuple with its endpoints in canonical order. IPv4
/// addresses are stored as IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`)
/// so one fixed-size key serves both families; `proto` keeps them apart
/// from real IPv6 flows with the same mapped addresses only in theory, as
/// such addresses never appear on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct FlowKey {
    pub lo_addr: [u8; 16],
    pub hi_addr: [u8; 16],
    pub lo_port: u16,
    pub hi_port: u16,
    /// The IP protocol number (6 TCP, 17 UDP, ...).
    pub proto: u8,
}

impl FlowKey {
    /// The key of a packet from `src:sport` to `dst:dport`, and the side
    /// `src` is on. Ports are 0 for protocols without them.
    pub fn new(proto: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> (FlowKey, Side) {
        let s = to16(src);
        let d = to16(dst);
        if (s, sport) <= (d, dport) {
            (
                FlowKey {
                    lo_addr: s,
                    hi_addr: d,
                    lo_port: sport,
                    hi_port: dport,
                    proto,
                },
                Side::Lo,
            )
        } else {
            (
                FlowKey {
                    lo_addr: d,
                    hi_addr: s,
                    lo_port: dport,
                    hi_port: sport,
                    proto,
                },
                Side::Hi,
            )
        }
    }

    /// The address and port of one side.
    pub fn endpoint(&self, side: Side) -> (IpAddr, u16) {
        match side {
            Side::Lo => (from16(self.lo_addr), self.lo_port),
            Side::Hi => (from16(self.hi_addr), self.hi_port),
        }
    }

    /// A 64-bit hash of the key, the same for both directions.
    #[inline]
    pub fn hash64(&self) -> u64 {
        let mut h: u64 = 0x243f_6a88_85a3_08d3 ^ u64::from(self.proto);
        for chunk in [
            &self.lo_addr[0..8],
            &self.lo_addr[8..16],
            &self.hi_addr[0..8],
            &self.hi_addr[8..16],
        ] {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        h ^= (u64::from(self.lo_port) << 16 | u64::from(self.hi_port))
            .wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 32;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 29)
    }
}

fn to16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn from16(bytes: [u8; 16]) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(bytes);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_share_a_key() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let (k1, s1) = FlowKey::new(6, a, 1000, b, 80);
        let (k2, s2) = FlowKey::new(6, b, 80, a, 1000);
        assert_eq!(k1, k2);
        assert_eq!(k1.hash64(), k2.hash64());
        assert_eq!(s1, s2.other());
        assert_eq!(k1.endpoint(s1), (a, 1000));
        assert_eq!(k1.endpoint(s1.other()), (b, 80));
    }

    #[test]
    fn same_address_orders_by_port() {
        let a: IpAddr = "::1".parse().unwrap();
        let (k, side) = FlowKey::new(17, a, 5000, a, 53);
        assert_eq!(side, Side::Hi);
        assert_eq!(k.endpoint(Side::Lo), (a, 53));
    }
}
