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
    let frame_len = frame_len.max(min_udp_frame_len(v6));
    let mut frame = vec![0u8; frame_len];
    let eth = ethernet::Repr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype: if v6 { EtherType::Ipv6 } else { EtherType::Ipv4 },
        vlan: None,
    };
    let mut f = ethernet::Frame::new_unchecked(&mut frame[..]);
    eth.emit(&mut f).expect("frame holds an Ethernet header");
    let ip_bytes = f.payload_mut();
    let ip_header = if v6 {
        ipv6::HEADER_LEN
    } else {
        ipv4::HEADER_LEN
    };
    let udp_len = ip_bytes.len() - ip_header;
    let udp_payload = udp_len - udp::HEADER_LEN;
    for (i, b) in ip_bytes[ip_header + udp::HEADER_LEN..]
        .iter_mut()
        .enumerate()
    {
        *b = i as u8;
    }
    let udp_repr = udp::Repr {
        src_port: 40000,
        dst_port: 5201,
        payload_len: udp_payload,
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let repr = ipv4::Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Udp,
                payload_len: udp_len,
                hop_limit: ttl,
                dscp: 0,
                ecn: 0,
                ident: 1,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
            };
            let mut ip = ipv4::Packet::new_unchecked(&mut ip_bytes[..]);
            repr.emit(&mut ip).expect("IPv4 header fits");
            let mut u = udp::Packet::new_unchecked(ip.payload_mut());
            udp_repr.emit(&mut u, s, d).expect("UDP datagram fits");
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let repr = ipv6::Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Udp,
                payload_len: udp_len,
                hop_limit: ttl,
                traffic_class: 0,
                flow_label: 0,
            };
            let mut ip = ipv6::Packet::new_unchecked(&mut ip_bytes[..]);
            repr.emit(&mut ip).expect("IPv6 header fits");
            let mut u = udp::Packet::new_unchecked(ip.payload_mut());
            udp_repr.emit(&mut u, s, d).expect("UDP datagram fits");
        }
        _ => panic!("udp_frame: source and destination must be of one IP version"),
    }
    frame
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
