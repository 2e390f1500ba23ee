//! Synthetic frames for tests, benchmarks and tools (allocates: never on
//! the data path). Built with the `wire` emitters, so they are also a check
//! that those emit valid packets.

use crate::wire::ethernet::{self, Address, EtherType};
use crate::wire::{arp, ipv4, ipv6, udp, IpProtocol};
use std::net::{IpAddr, Ipv4Addr};

/// Smallest frame `udp_frame` builds for each IP version (headers only).
pub const fn min_udp_frame_len(ipv6: bool) -> usize {
    ethernet::HEADER_LEN
        + if ipv6 {
            ipv6::HEADER_LEN
        } else {
            ipv4::HEADER_LEN
        }
        + udp::HEADER_LEN
}

/// An Ethernet/IP/UDP frame of exactly `frame_len` bytes (without FCS;
/// raised to the minimum when smaller) with valid checksums and a payload
/// of counting bytes. `src` and `dst` must be of the same IP version.
pub fn udp_frame(
    src_mac: Address,
    dst_mac: Address,
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    frame_len: usize,
) -> Vec<u8> {
    let v6 = matches!(src, IpAddr::V6(_));
    let payload_len = frame_len.max(min_udp_frame_len(v6)) - min_udp_frame_len(v6);
    let payload: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
    let spec = UdpFrame {
        src_mac,
        dst_mac,
        src,
        dst,
        ttl,
        dscp: 0,
        ident: 1,
        src_port: 40000,
        dst_port: 5201,
    };
    spec.build(&payload)
        .expect("udp_frame: source and destination must be of one IP version")
}

/// The headers of an Ethernet/IPv4-or-IPv6/UDP frame (IPv4 with Don't
/// Fragment), for [`UdpFrame::build`].
#[derive(Debug, Clone, Copy)]
pub struct UdpFrame {
    pub src_mac: Address,
    pub dst_mac: Address,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL or hop limit.
    pub ttl: u8,
    /// DSCP (IPv4) or the upper six bits of the traffic class (IPv6).
    pub dscp: u8,
    /// IPv4 identification (unused for IPv6).
    pub ident: u16,
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpFrame {
    /// The frame around `payload`, with valid IP and UDP checksums; None
    /// when the addresses are of different families or the datagram would
    /// exceed 65535 bytes.
    pub fn build(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let v6 = self.dst.is_ipv6();
        let headers = min_udp_frame_len(v6);
        let udp_len = udp::HEADER_LEN + payload.len();
        let mut frame = vec![0u8; headers + payload.len()];
        // The payload first: the UDP checksum covers it.
        frame[headers..].copy_from_slice(payload);
        let eth = ethernet::Repr {
            src_addr: self.src_mac,
            dst_addr: self.dst_mac,
            ethertype: if v6 { EtherType::Ipv6 } else { EtherType::Ipv4 },
            vlan: None,
        };
        let mut f = ethernet::Frame::new_unchecked(&mut frame[..]);
        eth.emit(&mut f).ok()?;
        let ip_bytes = f.payload_mut();
        let udp_repr = udp::Repr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            payload_len: payload.len(),
        };
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let repr = ipv4::Repr {
                    src_addr: s,
                    dst_addr: d,
                    next_header: IpProtocol::Udp,
                    payload_len: udp_len,
                    hop_limit: self.ttl,
                    dscp: self.dscp,
                    ecn: 0,
                    ident: self.ident,
                    dont_frag: true,
                    more_frags: false,
                    frag_offset: 0,
                };
                let mut ip = ipv4::Packet::new_unchecked(&mut ip_bytes[..]);
                repr.emit(&mut ip).ok()?;
                let mut u = udp::Packet::new_unchecked(ip.payload_mut());
                udp_repr.emit(&mut u, s, d).ok()?;
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let repr = ipv6::Repr {
                    src_addr: s,
                    dst_addr: d,
                    next_header: IpProtocol::Udp,
                    payload_len: udp_len,
                    hop_limit: self.ttl,
                    traffic_class: self.dscp << 2,
                    flow_label: 0,
                };
                let mut ip = ipv6::Packet::new_unchecked(&mut ip_bytes[..]);
                repr.emit(&mut ip).ok()?;
                let mut u = udp::Packet::new_unchecked(ip.payload_mut());
                udp_repr.emit(&mut u, s, d).ok()?;
            }
            _ => return None,
        }
        Some(frame)
    }
}

/// A broadcast ARP request for `target` from `sender` (42 bytes).
pub fn arp_request(sender_mac: Address, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let repr = arp::Repr {
        operation: arp::Operation::Request,
        sender_hardware_addr: sender_mac,
        sender_protocol_addr: sender,
        target_hardware_addr: Address::UNSPECIFIED,
        target_protocol_addr: target,
    };
    let mut frame = vec![0u8; ethernet::HEADER_LEN + repr.buffer_len()];
    let eth = ethernet::Repr {
        src_addr: sender_mac,
        dst_addr: Address::BROADCAST,
        ethertype: EtherType::Arp,
        vlan: None,
    };
    let mut f = ethernet::Frame::new_unchecked(&mut frame[..]);
    eth.emit(&mut f).expect("frame holds an Ethernet header");
    repr.emit(&mut arp::Packet::new_unchecked(f.payload_mut()))
        .expect("frame holds an ARP packet");
    frame
}
