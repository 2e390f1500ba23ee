//! The fields the firewall decides on, parsed once per packet with the
//! `wire` views: addresses, protocol, ports or ICMP type and echo id, TCP
//! flags, and for an ICMP or ICMPv6 error the 5-tuple of the packet it
//! quotes (RFC 792, RFC 4443 section 2.4: the invoking packet's IP header
//! and at least its first 8 bytes).
//!
//! No input panics: the outer headers go through `new_checked`; the
//! quoted packet, which is truncated by design, is read with checked
//! slicing only. IPv6 extension headers (hop-by-hop, routing, destination
//! options, fragment; at most [`MAX_EXT_HEADERS`]) are skipped to the
//! transport header. Non-first fragments carry no transport header and
//! are refused with [`MetaError::Fragment`].

use super::FwDrop;
use crate::wire::{ethernet, ipv4, ipv6};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const ICMP: u8 = 1;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMPV6: u8 = 58;
const SCTP: u8 = 132;
const UDPLITE: u8 = 136;
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DEST_OPTS: u8 = 60;

/// IPv6 extension headers skipped before giving up.
pub const MAX_EXT_HEADERS: usize = 8;

/// A packet's transport-layer facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        /// Header byte 13: CWR ECE URG ACK PSH RST SYN FIN.
        flags: u8,
    },
    /// UDP, UDP-Lite and SCTP: tracked by ports.
    Ports { sport: u16, dport: u16 },
    /// ICMP or ICMPv6 echo request or reply.
    Echo { request: bool, id: u16, ty: u8 },
    /// An ICMP or ICMPv6 error and the packet it is about.
    IcmpError { ty: u8, code: u8, quoted: Quoted },
    /// Any other ICMP or ICMPv6 message (judged by the rules, untracked).
    IcmpOther { ty: u8, code: u8 },
    /// Another protocol: tracked by addresses only.
    Other,
}

/// The packet an ICMP error quotes, as its sender sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// Ports, or the echo id twice for a quoted echo.
    pub sport: u16,
    pub dport: u16,
}

/// One packet as the firewall sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketMeta {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The transport protocol number (after IPv6 extension headers).
    pub proto: u8,
    pub l4: L4,
}

/// Why a packet yielded no [`PacketMeta`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaError {
    /// Not IPv4 or IPv6 (ARP, LLDP, ...): not the firewall's business.
    NotIp,
    /// Shorter than its headers, or a header the protocol forbids.
    Malformed,
    /// A non-first fragment.
    Fragment,
    /// An ICMP error quoting a packet whose flow cannot be named: an ICMP
    /// error itself (never answered with an error, RFC 1122 3.2.2), or
    /// too little of it.
    BadQuote,
}

impl MetaError {
    /// The firewall's drop counter for this error.
    pub const fn drop_reason(self) -> FwDrop {
        match self {
            MetaError::NotIp | MetaError::Malformed => FwDrop::Malformed,
            MetaError::Fragment => FwDrop::Fragment,
            MetaError::BadQuote => FwDrop::IcmpErrorNoFlow,
        }
    }
}

impl PacketMeta {
    /// Parses an Ethernet frame (VLAN tags skipped).
    pub fn from_frame(frame: &[u8]) -> Result<PacketMeta, MetaError> {
        let eth = ethernet::Frame::new_checked(frame).map_err(|_| MetaError::Malformed)?;
        match eth.payload_ethertype() {
            ethernet::EtherType::Ipv4 | ethernet::EtherType::Ipv6 => {
                PacketMeta::from_ip(eth.payload())
            }
            _ => Err(MetaError::NotIp),
        }
    }

    /// Parses an IPv4 or IPv6 packet.
    pub fn from_ip(ip: &[u8]) -> Result<PacketMeta, MetaError> {
        match ip.first().map(|b| b >> 4) {
            Some(4) => {
                let p = ipv4::Packet::new_checked(ip).map_err(|_| MetaError::Malformed)?;
                if p.frag_offset() != 0 {
                    return Err(MetaError::Fragment);
                }
                let (src, dst) = (IpAddr::V4(p.src_addr()), IpAddr::V4(p.dst_addr()));
                let proto = u8::from(p.protocol());
                let l4 = l4(proto, p.payload(), false)?;
                Ok(PacketMeta {
                    src,
                    dst,
                    proto,
                    l4,
                })
            }
            Some(6) => {
                let p = ipv6::Packet::new_checked(ip).map_err(|_| MetaError::Malformed)?;
                let (src, dst) = (IpAddr::V6(p.src_addr()), IpAddr::V6(p.dst_addr()));
                let (proto, at) = skip_ext(u8::from(p.next_header()), p.payload())?;
                let l4 = l4(proto, p.payload().get(at..).unwrap_or(&[]), true)?;
                Ok(PacketMeta {
                    src,
                    dst,
                    proto,
                    l4,
                })
            }
            _ => Err(MetaError::Malformed),
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Skips IPv6 extension headers from `next` over `payload`: the transport
/// protocol and its offset. A fragment header with a non-zero offset is a
/// non-first fragment.
fn skip_ext(mut next: u8, payload: &[u8]) -> Result<(u8, usize), MetaError> {
    let mut at = 0;
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            HOP_BY_HOP | ROUTING | DEST_OPTS => {
                let len = usize::from(*payload.get(at + 1).ok_or(MetaError::Malformed)?);
                next = payload[at];
                at += (len + 1) * 8;
            }
            FRAGMENT => {
                let off = be16(payload, at + 2).ok_or(MetaError::Malformed)? & 0xfff8;
                if off != 0 {
                    return Err(MetaError::Fragment);
                }
                next = payload[at];
                at += 8;
            }
            _ => return Ok((next, at)),
        }
    }
    Err(MetaError::Malformed)
}

fn is_error(ty: u8, v6: bool) -> bool {
    if v6 {
        // Destination unreachable, packet too big, time exceeded,
        // parameter problem (RFC 4443 section 3).
        matches!(ty, 1..=4)
    } else {
        // Destination unreachable, time exceeded, parameter problem
        // (RFC 792). Source quench is deprecated (RFC 6633), redirects
        // are not forwarded: both fall to the rules as "other".
        matches!(ty, 3 | 11 | 12)
    }
}

const fn echo_types(v6: bool) -> (u8, u8) {
    if v6 {
        (128, 129)
    } else {
        (8, 0)
    }
}

fn l4(proto: u8, b: &[u8], v6: bool) -> Result<L4, MetaError> {
    let ports = || -> Result<(u16, u16), MetaError> {
        Ok((
            be16(b, 0).ok_or(MetaError::Malformed)?,
            be16(b, 2).ok_or(MetaError::Malformed)?,
        ))
    };
    Ok(match proto {
        TCP => {
            let (sport, dport) = ports()?;
            let flags = *b.get(13).ok_or(MetaError::Malformed)?;
            let data_offset = usize::from(b[12] >> 4) * 4;
            if data_offset < 20 || data_offset > b.len() {
                return Err(MetaError::Malformed);
            }
            L4::Tcp {
                sport,
                dport,
                flags,
            }
        }
        UDP | UDPLITE | SCTP => {
            let (sport, dport) = ports()?;
            L4::Ports { sport, dport }
        }
        ICMP | ICMPV6 if (proto == ICMPV6) == v6 => {
            let (ty, code) = (
                *b.first().ok_or(MetaError::Malformed)?,
                *b.get(1).ok_or(MetaError::Malformed)?,
            );
            if b.len() < 8 {
                return Err(MetaError::Malformed);
            }
            let (req, rep) = echo_types(v6);
            if ty == req || ty == rep {
                L4::Echo {
                    request: ty == req,
                    id: be16(b, 4).ok_or(MetaError::Malformed)?,
                    ty,
                }
            } else if is_error(ty, v6) {
                L4::IcmpError {
                    ty,
                    code,
                    quoted: quoted(&b[8..], v6)?,
                }
            } else {
                L4::IcmpOther { ty, code }
            }
        }
        _ => L4::Other,
    })
}

/// The quoted packet of an error: an IP header of the error's family and
/// the first 4 bytes of its transport header (8 for a quoted echo).
fn quoted(b: &[u8], v6: bool) -> Result<Quoted, MetaError> {
    let bad = MetaError::BadQuote;
    let (src, dst, proto, rest) = if v6 {
        if b.len() < 40 || b[0] >> 4 != 6 {
            return Err(bad);
        }
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&b[8..24]);
        d.copy_from_slice(&b[24..40]);
        let (proto, at) = skip_ext(b[6], &b[40..]).map_err(|_| bad)?;
        (
            IpAddr::V6(Ipv6Addr::from(s)),
            IpAddr::V6(Ipv6Addr::from(d)),
            proto,
            b[40..].get(at..).ok_or(bad)?,
        )
    } else {
        let ihl = usize::from(b.first().ok_or(bad)? & 0x0f) * 4;
        if b[0] >> 4 != 4 || ihl < 20 || b.len() < ihl {
            return Err(bad);
        }
        // A non-first fragment quotes no transport header.
        if be16(b, 6).ok_or(bad)? & 0x1fff != 0 {
            return Err(bad);
        }
        let addr = |at: usize| IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]));
        (addr(12), addr(16), b[9], &b[ihl..])
    };
    let (sport, dport) = match proto {
        TCP | UDP | UDPLITE | SCTP => (be16(rest, 0).ok_or(bad)?, be16(rest, 2).ok_or(bad)?),
        ICMP | ICMPV6 if (proto == ICMPV6) == v6 => {
            let (req, rep) = echo_types(v6);
            let ty = *rest.first().ok_or(bad)?;
            if ty != req && ty != rep {
                return Err(bad);
            }
            let id = be16(rest, 4).ok_or(bad)?;
            (id, id)
        }
        _ => (0, 0),
    };
    Ok(Quoted {
        src,
        dst,
        proto,
        sport,
        dport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata::{XorShift, DNS_QUERY, PING_REQUEST, TCP_SYN, UDP6};

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn frames_of_each_protocol_parse_to_their_fields() {
        let m = PacketMeta::from_frame(&TCP_SYN).unwrap();
        assert_eq!(
            (m.src, m.dst, m.proto),
            (v4("10.0.0.1"), v4("93.184.216.34"), 6)
        );
        assert_eq!(
            m.l4,
            L4::Tcp {
                sport: 50000,
                dport: 443,
                flags: 0x02
            }
        );
        let m = PacketMeta::from_frame(&DNS_QUERY).unwrap();
        assert_eq!(
            m.l4,
            L4::Ports {
                sport: 53412,
                dport: 53
            }
        );
        let m = PacketMeta::from_frame(&PING_REQUEST).unwrap();
        assert_eq!(
            m.l4,
            L4::Echo {
                request: true,
                id: 0x0b2f,
                ty: 8
            }
        );
        let m = PacketMeta::from_ip(&UDP6).unwrap();
        assert_eq!((m.src, m.proto), (v4("2001:db8::1"), 17));
        assert_eq!(
            m.l4,
            L4::Ports {
                sport: 4789,
                dport: 51820
            }
        );
    }

    /// An IPv4 packet from `src` to `dst` with `proto` and `payload`.
    fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn an_icmp_error_names_the_flow_it_quotes() {
        let udp = [0x9c, 0x40, 0x00, 0x35, 0, 16, 0, 0];
        let inner = ipv4([10, 0, 0, 5], [198, 51, 100, 7], 17, &udp);
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&inner);
        let pkt = ipv4([192, 0, 2, 254], [10, 0, 0, 5], 1, &icmp);
        let m = PacketMeta::from_ip(&pkt).unwrap();
        let L4::IcmpError {
            ty: 3,
            code: 3,
            quoted,
        } = m.l4
        else {
            panic!("{:?}", m.l4)
        };
        assert_eq!(
            quoted,
            Quoted {
                src: v4("10.0.0.5"),
                dst: v4("198.51.100.7"),
                proto: 17,
                sport: 40000,
                dport: 53
            }
        );
        // Too little of the quoted packet to name its ports.
        let short = ipv4([192, 0, 2, 254], [10, 0, 0, 5], 1, &icmp[..8 + 21]);
        assert_eq!(PacketMeta::from_ip(&short), Err(MetaError::BadQuote));
        // An error about an error.
        let mut nested = vec![11, 0, 0, 0, 0, 0, 0, 0];
        nested.extend_from_slice(&ipv4([10, 0, 0, 5], [1, 1, 1, 1], 1, &icmp[..8]));
        let pkt = ipv4([192, 0, 2, 254], [10, 0, 0, 5], 1, &nested);
        assert_eq!(PacketMeta::from_ip(&pkt), Err(MetaError::BadQuote));
    }

    fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        p[6] = next;
        p[7] = 64;
        p[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn ipv6_extension_headers_are_skipped_and_later_fragments_refused() {
        // Hop-by-hop (8 bytes) then a first fragment header, then TCP.
        let mut tcp = vec![0u8; 20];
        tcp[0..4].copy_from_slice(&[0x01, 0xbb, 0x9c, 0x40]);
        tcp[12] = 0x50;
        tcp[13] = 0x12;
        let mut ext = vec![FRAGMENT, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[TCP, 0, 0x00, 0x01, 0, 0, 0, 1]);
        ext.extend_from_slice(&tcp);
        let m = PacketMeta::from_ip(&ipv6(HOP_BY_HOP, &ext)).unwrap();
        assert_eq!(
            (m.proto, m.l4),
            (
                6,
                L4::Tcp {
                    sport: 443,
                    dport: 40000,
                    flags: 0x12
                }
            )
        );
        // The same with a fragment offset of 8 bytes.
        ext[10..12].copy_from_slice(&[0x00, 0x08]);
        assert_eq!(
            PacketMeta::from_ip(&ipv6(HOP_BY_HOP, &ext)),
            Err(MetaError::Fragment)
        );
        // An IPv4 non-first fragment.
        let mut p = ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, &[0; 8]);
        p[6..8].copy_from_slice(&[0x00, 0x10]);
        assert_eq!(PacketMeta::from_ip(&p), Err(MetaError::Fragment));
    }

    #[test]
    fn an_icmpv6_packet_too_big_quotes_its_flow() {
        let udp = [0x13, 0x88, 0x00, 0x35, 0, 8, 0, 0];
        let inner = ipv6(UDP, &udp);
        let mut icmp = vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
        icmp.extend_from_slice(&inner);
        let m = PacketMeta::from_ip(&ipv6(ICMPV6, &icmp)).unwrap();
        let L4::IcmpError { ty: 2, quoted, .. } = m.l4 else {
            panic!("{:?}", m.l4)
        };
        assert_eq!((quoted.proto, quoted.sport, quoted.dport), (17, 5000, 53));
        assert_eq!(quoted.src, v4("2001:db8::1"));
    }

    #[test]
    fn truncated_and_foreign_frames_are_errors() {
        for n in 0..TCP_SYN.len() {
            let r = PacketMeta::from_frame(&TCP_SYN[..n]);
            assert!(r.is_err(), "{n} bytes parsed: {r:?}");
        }
        let mut arp = TCP_SYN;
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(PacketMeta::from_frame(&arp), Err(MetaError::NotIp));
        assert_eq!(PacketMeta::from_ip(&[]), Err(MetaError::Malformed));
    }

    #[test]
    fn random_bytes_never_panic_the_parser_or_the_firewall() {
        use crate::fw::conntrack::ConntrackConfig;
        use crate::fw::rules::RuleSet;
        use crate::fw::{Firewall, FirewallConfig, Zone};
        let mut fw: Firewall = Firewall::new(FirewallConfig {
            conntrack: ConntrackConfig::new(100, 1000),
            rules: RuleSet::default(),
        })
        .unwrap();
        let mut rng = XorShift(0x5eed);
        let mut buf = [0u8; 160];
        let mut parsed = 0;
        for n in 0..100_000u64 {
            let len = rng.below(buf.len());
            rng.fill(&mut buf[..len]);
            // Half of them look like IP, so the inner parsers get exercised.
            if len > 0 && n % 2 == 0 {
                buf[0] = if n % 4 == 0 { 0x45 } else { 0x60 };
                if len > 9 && n % 4 == 0 {
                    buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                    buf[6] = 0;
                    buf[9] = [1, 6, 17, 58][rng.below(4)];
                }
                if len > 40 && n % 4 == 2 {
                    buf[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
                    buf[6] = [0, 6, 17, 44, 58][rng.below(5)];
                }
            }
            let from = Zone::ALL[rng.below(3)];
            let to = Zone::ALL[rng.below(3)];
            let v = match PacketMeta::from_ip(&buf[..len]) {
                Ok(m) => {
                    parsed += 1;
                    fw.check(&m, from, to, None, n)
                }
                Err(e) => fw.drop_unparsed(e),
            };
            let _ = v;
            let _ = PacketMeta::from_frame(&buf[..len]);
        }
        assert!(parsed > 10_000, "only {parsed} parsed");
        let s = fw.stats();
        let total =
            s.drops.iter().sum::<u64>() + s.new_flows + s.established + s.related + s.stateless;
        assert_eq!(total, 100_000, "every packet got exactly one verdict");
    }
}
