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
