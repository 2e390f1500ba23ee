//! 5-tuple match rules: the administrator's explicit classification
//! (protocol, address prefixes, port ranges), evaluated first-match before
//! anything the DPI or the DSCP says. [`FlowFields::parse`] reads the
//! fields from an IP packet without panicking on any input.

use super::class::QosClass;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The fields a rule matches on, read from the inner IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowFields {
    pub protocol: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// 0 when the protocol has no ports, or for a non-first fragment.
    pub src_port: u16,
    pub dst_port: u16,
    /// The packet's own DSCP (RFC 2474 section 3).
    pub dscp: u8,
}

impl FlowFields {
    /// Reads an IPv4 or IPv6 packet. IPv6 extension headers are not walked:
    /// behind one, the ports read as 0. None if the packet is too short or
    /// not IP.
    pub fn parse(ip: &[u8]) -> Option<FlowFields> {
        let version = ip.first()? >> 4;
        let (protocol, src, dst, dscp, l4) = match version {
            4 => {
                let h: &[u8; 20] = ip.get(..20)?.try_into().ok()?;
                let ihl = usize::from(h[0] & 0x0f) * 4;
                let fragment = u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0;
                let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
                let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
                let l4 = if fragment || ihl < 20 {
                    None
                } else {
                    Some(ihl)
                };
                (h[9], IpAddr::V4(src), IpAddr::V4(dst), h[1] >> 2, l4)
            }
            6 => {
                let h: &[u8; 40] = ip.get(..40)?.try_into().ok()?;
                let src: [u8; 16] = h[8..24].try_into().ok()?;
                let dst: [u8; 16] = h[24..40].try_into().ok()?;
                let tc = (h[0] << 4) | (h[1] >> 4);
                let src = IpAddr::V6(Ipv6Addr::from(src));
                (
                    h[6],
                    src,
                    IpAddr::V6(Ipv6Addr::from(dst)),
                    tc >> 2,
                    Some(40),
                )
            }
            _ => return None,
        };
        let ports = match protocol {
            // TCP, UDP, SCTP, UDP-Lite: source and destination ports first.
            6 | 17 | 132 | 136 => l4.and_then(|o| ip.get(o..o.checked_add(4)?)).map(|p| {
                (
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]]),
                )
            }),
            _ => None,
        };
        let (src_port, dst_port) = ports.unwrap_or((0, 0));
        Some(FlowFields {
            protocol,
            src,
            dst,
            src_port,
            dst_port,
            dscp,
        })
    }
}

/// An address prefix: IPv4 or IPv6, `len` leading bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

impl core::fmt::Display for IpPrefix {
    /// `addr/len`, as [`IpPrefix::parse`] reads it.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl IpPrefix {
    /// None if `len` is longer than the address.
    pub fn new(addr: IpAddr, len: u8) -> Option<IpPrefix> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some(IpPrefix { addr, len })
    }

    /// Parses "10.1.0.0/16", "2001:db8::/32" or a bare address.
    pub fn parse(s: &str) -> Option<IpPrefix> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a.parse().ok()?, Some(l.parse().ok()?)),
            None => (s.parse().ok()?, None),
        };
        let full = if matches!(addr, IpAddr::V4(_)) {
            32
        } else {
            128
        };
        IpPrefix::new(addr, len.unwrap_or(full))
    }

    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                (u32::from(p) ^ u32::from(a)) & mask == 0
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                (u128::from(p) ^ u128::from(a)) & mask == 0
            }
            _ => false,
        }
    }
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub const fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }

    #[inline(always)]
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

/// One rule: every field given must match; absent fields match anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchRule {
    pub protocol: Option<u8>,
    pub src: Option<IpPrefix>,
    pub dst: Option<IpPrefix>,
    pub src_ports: Option<PortRange>,
    pub dst_ports: Option<PortRange>,
    /// Also match the packet's own DSCP (for "trust EF from this subnet").
    pub dscp: Option<u8>,
    pub class: QosClass,
}

impl MatchRule {
    /// A rule that matches everything and gives `class`; narrow it with the
    /// fields.
    pub const fn any(class: QosClass) -> MatchRule {
        MatchRule {
            protocol: None,
            src: None,
            dst: None,
            src_ports: None,
            dst_ports: None,
            dscp: None,
            class,
        }
    }

    #[inline]
    pub fn matches(&self, f: &FlowFields) -> bool {
        self.protocol.is_none_or(|p| p == f.protocol)
            && self.dst_ports.is_none_or(|r| r.contains(f.dst_port))
            && self.src_ports.is_none_or(|r| r.contains(f.src_port))
            && self.dscp.is_none_or(|d| d == f.dscp)
            && self.dst.is_none_or(|p| p.contains(f.dst))
            && self.src.is_none_or(|p| p.contains(f.src))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4/UDP 10.0.0.1:5060 → 192.0.2.9:40000, DSCP EF.
    const UDP4: [u8; 28] = [
        0x45, 0xb8, 0x00, 0x1c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 10, 0, 0, 1, 192,
        0, 2, 9, 0x13, 0xc4, 0x9c, 0x40, 0x00, 0x08, 0x00, 0x00,
    ];

    #[test]
    fn parses_ipv4_five_tuple_and_dscp() {
        let f = FlowFields::parse(&UDP4).unwrap();
        assert_eq!(f.protocol, 17);
        assert_eq!(f.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(f.dst, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)));
        assert_eq!((f.src_port, f.dst_port), (5060, 40000));
        assert_eq!(f.dscp, 46);
    }

    #[test]
    fn parses_ipv6_traffic_class_and_ports() {
        let mut p = [0u8; 48];
        p[0] = 0x60 | (34 >> 2); // DSCP AF41 = 34: TC 0x88
        p[1] = ((34u8 << 2) & 0x0f) << 4;
        p[6] = 6;
        p[23] = 1;
        p[39] = 2;
        p[40..44].copy_from_slice(&[0x01, 0xbb, 0xc0, 0x00]);
        let f = FlowFields::parse(&p).unwrap();
        assert_eq!(f.dscp, 34);
        assert_eq!((f.protocol, f.src_port, f.dst_port), (6, 443, 49152));
        assert_eq!(f.dst, "::2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn truncated_or_fragmented_packets_never_panic() {
        for n in 0..UDP4.len() {
            let f = FlowFields::parse(&UDP4[..n]);
            if n < 20 {
                assert!(f.is_none());
            } else {
                assert_eq!(f.unwrap().dst_port, if n >= 24 { 40000 } else { 0 });
            }
        }
        let mut frag = UDP4;
        frag[7] = 0x10; // offset 16: no transport header here
        assert_eq!(FlowFields::parse(&frag).unwrap().src_port, 0);
        let mut bad_ihl = UDP4;
        bad_ihl[0] = 0x4f; // 60-byte header in a 28-byte packet
        assert_eq!(FlowFields::parse(&bad_ihl).unwrap().dst_port, 0);
        assert!(FlowFields::parse(&[0x70; 64]).is_none());
    }

    #[test]
    fn prefixes_match_their_family_and_leading_bits() {
        let p = IpPrefix::parse("10.1.0.0/16").unwrap();
        assert!(p.contains("10.1.255.3".parse().unwrap()));
        assert!(!p.contains("10.2.0.1".parse().unwrap()));
        assert!(!p.contains("::a01:1".parse().unwrap()));
        assert!(IpPrefix::parse("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        assert!(IpPrefix::parse("2001:db8::/32")
            .unwrap()
            .contains("2001:db8:1::1".parse().unwrap()));
        assert!(IpPrefix::parse("10.0.0.0/33").is_none());
        assert!(IpPrefix::parse("10.0.0.1")
            .unwrap()
            .contains("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn a_rule_needs_every_given_field_to_match() {
        let f = FlowFields::parse(&UDP4).unwrap();
        let mut r = MatchRule::any(QosClass::RealTime);
        assert!(r.matches(&f));
        r.protocol = Some(17);
        r.src_ports = Some(PortRange {
            first: 5060,
            last: 5061,
        });
        r.dst = IpPrefix::parse("192.0.2.0/24");
        assert!(r.matches(&f));
        r.dst_ports = Some(PortRange::single(40001));
        assert!(!r.matches(&f));
    }
}
