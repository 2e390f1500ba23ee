//! BFD over Ethernet / IP / UDP: the frames the control thread's driver
//! sends and receives. Ours carry TTL 255 (RFC 5881 §5, RFC 5883 §5) and
//! DSCP CS6 (RFC 5881 §4 recommends network control); received frames are
//! reduced to what the registry needs to demultiplex and check transport
//! (RFC 5881 §3–§5). Pure byte work: no mbufs, no clock.

use super::registry::TxMeta;
use super::transport::TOS_CS6;
use patronus_dataplane::synth::UdpFrame;
use patronus_dataplane::wire::ethernet::{self, Address, EtherType};
use patronus_dataplane::wire::{ipv4, ipv6, udp, IpProtocol};
use std::net::IpAddr;

/// BFD's DSCP: CS6, network control.
pub const DSCP_CS6: u8 = TOS_CS6 >> 2;

/// What BFD needs of a received frame.
pub struct UdpInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub dst_port: u16,
    /// Where the BFD Control packet sits in the frame.
    pub payload: std::ops::Range<usize>,
}

/// The addresses, TTL, UDP destination port and payload of an Ethernet /
/// IPv4-or-IPv6 / UDP frame; `None` for anything else (fragments included).
pub fn parse_udp(frame: &[u8]) -> Option<UdpInfo> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let offset = frame.len() - eth.payload().len();
    let (src, dst, ttl, l4_offset, l4_len): (IpAddr, IpAddr, u8, usize, usize) =
        match eth.payload_ethertype() {
            EtherType::Ipv4 => {
                let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
                if ip.next_header() != IpProtocol::Udp || ip.more_frags() || ip.frag_offset() != 0 {
                    return None;
                }
                let header = ip.header_len();
                (
                    IpAddr::V4(ip.src_addr()),
                    IpAddr::V4(ip.dst_addr()),
                    ip.hop_limit(),
                    offset + header,
                    ip.payload().len(),
                )
            }
            EtherType::Ipv6 => {
                let ip = ipv6::Packet::new_checked(eth.payload()).ok()?;
                if ip.next_header() != IpProtocol::Udp {
                    return None;
                }
                (
                    IpAddr::V6(ip.src_addr()),
                    IpAddr::V6(ip.dst_addr()),
                    ip.hop_limit(),
                    offset + ipv6::HEADER_LEN,
                    ip.payload().len(),
                )
            }
            _ => return None,
        };
    let l4 = frame.get(l4_offset..l4_offset + l4_len)?;
    let u = udp::Packet::new_checked(l4).ok()?;
    let start = l4_offset + udp::HEADER_LEN;
    let end = start + u.payload().len();
    Some(UdpInfo {
        src,
        dst,
        ttl,
        dst_port: u.dst_port(),
        payload: start..end,
    })
}

/// Ethernet (destination filled in later), IP with TTL 255 and CS6, UDP.
pub fn build_frame(src_mac: Address, meta: &TxMeta, payload: &[u8]) -> Option<Vec<u8>> {
    UdpFrame {
        src_mac,
        dst_mac: Address([0; 6]),
        src: meta.src,
        dst: meta.dst,
        ttl: meta.ttl,
        dscp: DSCP_CS6,
        ident: 0,
        src_port: meta.src_port,
        dst_port: meta.dst_port,
    }
    .build(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bfd::registry::{PathId, SessionId};
    use crate::bfd::transport::{MULTI_HOP_PORT, SINGLE_HOP_PORT};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const MAC: Address = Address([2, 0, 0, 0, 0, 1]);

    fn meta(src: IpAddr, dst: IpAddr, dst_port: u16) -> TxMeta {
        TxMeta {
            id: SessionId(7),
            path: PathId(0),
            src,
            dst,
            src_port: 49152,
            dst_port,
            ttl: 255,
        }
    }

    #[test]
    fn ipv4_frame_round_trips_with_ttl_255_and_cs6() {
        let (s, d) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 1, 0, 1));
        let payload = [0x20u8, 0xc0, 3, 24, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 1];
        let m = meta(IpAddr::V4(s), IpAddr::V4(d), MULTI_HOP_PORT);
        let frame = build_frame(MAC, &m, &payload).unwrap();
        assert_eq!(frame.len(), 14 + 20 + 8 + payload.len());
        let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
        assert_eq!(ip.dscp(), 48);
        assert!(ip.verify_checksum());
        let u = parse_udp(&frame).unwrap();
        assert_eq!((u.src, u.dst), (IpAddr::V4(s), IpAddr::V4(d)));
        assert_eq!(u.ttl, 255);
        assert_eq!(u.dst_port, MULTI_HOP_PORT);
        assert_eq!(&frame[u.payload], &payload[..]);
    }

    #[test]
    fn ipv6_frame_round_trips() {
        let s: Ipv6Addr = "fd00::1".parse().unwrap();
        let d: Ipv6Addr = "fd00::2".parse().unwrap();
        let payload = [9u8; 24];
        let m = meta(IpAddr::V6(s), IpAddr::V6(d), SINGLE_HOP_PORT);
        let frame = build_frame(MAC, &m, &payload).unwrap();
        let u = parse_udp(&frame).unwrap();
        assert_eq!((u.src, u.dst, u.ttl), (IpAddr::V6(s), IpAddr::V6(d), 255));
        assert_eq!(u.dst_port, SINGLE_HOP_PORT);
        assert_eq!(&frame[u.payload], &payload[..]);
    }

    #[test]
    fn mixed_families_and_truncated_frames_are_refused() {
        let m = meta(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            SINGLE_HOP_PORT,
        );
        assert!(build_frame(MAC, &m, &[0; 24]).is_none());
        let m = meta(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            SINGLE_HOP_PORT,
        );
        let frame = build_frame(MAC, &m, &[0; 24]).unwrap();
        assert!(parse_udp(&frame[..frame.len() - 1]).is_none());
        assert!(parse_udp(&frame[..20]).is_none());
    }
}
