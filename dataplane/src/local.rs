//! Traffic addressed to the node itself: ICMP and ICMPv6 echo requests are
//! answered (RFC 792, RFC 4443 section 4.1), in place in the same buffer;
//! anything else for the node is dropped by the caller (the data ports run
//! no other services).

use crate::buf::PacketBuf;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::{icmpv4, icmpv6, ipv4, ipv6, IpProtocol};

/// Turns the echo request in `frame` (Ethernet, possibly VLAN-tagged) into
/// its echo reply, in place: addresses swapped, type changed, checksums
/// recomputed, TTL/hop limit 64. Returns false, leaving the frame as it
/// was, when it is not an echo request.
pub fn answer_echo<B: PacketBuf>(frame: &mut B) -> bool {
    let data = frame.data_mut();
    let Ok(mut eth) = ethernet::Frame::new_checked(&mut data[..]) else {
        return false;
    };
    let answered = match eth.payload_ethertype() {
        EtherType::Ipv4 => answer_v4(eth.payload_mut()),
        EtherType::Ipv6 => answer_v6(eth.payload_mut()),
        _ => false,
    };
    if answered {
        let (src, dst) = (eth.src_addr(), eth.dst_addr());
        eth.set_dst_addr(src);
        eth.set_src_addr(dst);
    }
    answered
}

fn answer_v4(bytes: &mut [u8]) -> bool {
    let Ok(mut ip) = ipv4::Packet::new_checked(&mut bytes[..]) else {
        return false;
    };
    if ip.next_header() != IpProtocol::Icmp || ip.is_fragment() || !ip.verify_checksum() {
        return false;
    }
    {
        let Ok(mut icmp) = icmpv4::Packet::new_checked(ip.payload_mut()) else {
            return false;
        };
        if icmp.msg_type() != icmpv4::Message::EchoRequest
            || icmp.msg_code() != 0
            || !icmp.verify_checksum()
        {
            return false;
        }
        icmp.set_msg_type(icmpv4::Message::EchoReply);
        icmp.fill_checksum();
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_ttl(64);
    ip.fill_checksum();
    true
}

fn answer_v6(bytes: &mut [u8]) -> bool {
    let Ok(mut ip) = ipv6::Packet::new_checked(&mut bytes[..]) else {
        return false;
    };
    if ip.next_header() != IpProtocol::Icmpv6 {
        return false;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if dst.is_multicast() {
        return false;
    }
    {
        let Ok(mut icmp) = icmpv6::Packet::new_checked(ip.payload_mut()) else {
            return false;
        };
        if icmp.msg_type() != icmpv6::Message::EchoRequest
            || icmp.msg_code() != 0
            || !icmp.verify_checksum(src, dst)
        {
            return false;
        }
        icmp.set_msg_type(icmpv6::Message::EchoReply);
        icmp.fill_checksum(dst, src);
    }
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_hop_limit(64);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::HeapBuf;
    use crate::wire::ethernet::Address;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const HOST_MAC: Address = Address([2, 0, 0, 0, 1, 2]);
    const NODE_MAC: Address = Address([2, 0, 0, 0, 1, 1]);

    fn echo_v4(code: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + 16];
        f[0..6].copy_from_slice(&NODE_MAC.0);
        f[6..12].copy_from_slice(&HOST_MAC.0);
        f[12..14].copy_from_slice(&[8, 0]);
        {
            let mut ip = ipv4::Packet::new_unchecked(&mut f[14..]);
            ip.set_version(4);
            ip.set_header_len(20);
            ip.set_total_len(44);
            ip.set_ttl(63);
            ip.set_next_header(IpProtocol::Icmp);
            ip.set_src_addr(Ipv4Addr::new(10, 10, 1, 2));
            ip.set_dst_addr(Ipv4Addr::new(10, 10, 1, 1));
            ip.fill_checksum();
            let mut icmp = icmpv4::Packet::new_unchecked(ip.payload_mut());
            icmp.set_msg_type(icmpv4::Message::EchoRequest);
            icmp.set_msg_code(code);
            icmp.set_echo_ident(7);
            icmp.set_echo_seq_no(3);
            icmp.payload_mut().copy_from_slice(b"0123456789abcdef");
            icmp.fill_checksum();
        }
        f
    }

    #[test]
    fn an_ipv4_echo_request_becomes_its_reply() {
        let mut p = HeapBuf::from_slice(&echo_v4(0), 64, 0);
        assert!(answer_echo(&mut p));
        let f = ethernet::Frame::new_checked(p.data()).unwrap();
        assert_eq!((f.dst_addr(), f.src_addr()), (HOST_MAC, NODE_MAC));
        let ip = ipv4::Packet::new_checked(f.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            (ip.src_addr(), ip.dst_addr(), ip.ttl()),
            (Ipv4Addr::new(10, 10, 1, 1), Ipv4Addr::new(10, 10, 1, 2), 64)
        );
        let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(
            (icmp.msg_type(), icmp.echo_ident(), icmp.echo_seq_no()),
            (icmpv4::Message::EchoReply, 7, 3)
        );
        assert_eq!(icmp.payload(), b"0123456789abcdef");
    }

    #[test]
    fn an_ipv6_echo_request_becomes_its_reply() {
        let host: Ipv6Addr = "fd00:10::2".parse().unwrap();
        let node: Ipv6Addr = "fd00:10::1".parse().unwrap();
        let mut f = vec![0u8; 14 + 40 + 8 + 4];
        f[0..6].copy_from_slice(&NODE_MAC.0);
        f[6..12].copy_from_slice(&HOST_MAC.0);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        {
            let mut ip = ipv6::Packet::new_unchecked(&mut f[14..]);
            ip.set_version(6);
            ip.set_payload_len(12);
            ip.set_next_header(IpProtocol::Icmpv6);
            ip.set_hop_limit(64);
            ip.set_src_addr(host);
            ip.set_dst_addr(node);
            let mut icmp = icmpv6::Packet::new_unchecked(ip.payload_mut());
            icmp.set_msg_type(icmpv6::Message::EchoRequest);
            icmp.set_echo_ident(1);
            icmp.fill_checksum(host, node);
        }
        let mut p = HeapBuf::from_slice(&f, 64, 0);
        assert!(answer_echo(&mut p));
        let fr = ethernet::Frame::new_checked(p.data()).unwrap();
        let ip = ipv6::Packet::new_checked(fr.payload()).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (node, host));
        let icmp = icmpv6::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), icmpv6::Message::EchoReply);
        assert!(icmp.verify_checksum(node, host));
    }

    #[test]
    fn other_traffic_is_left_alone() {
        let original = echo_v4(1);
        let mut p = HeapBuf::from_slice(&original, 64, 0);
        assert!(!answer_echo(&mut p), "code 1 is not an echo request");
        assert_eq!(p.data(), &original[..]);
        let mut bad = echo_v4(0);
        bad[40] ^= 1; // corrupt the ICMP checksum
        let mut p = HeapBuf::from_slice(&bad, 64, 0);
        assert!(!answer_echo(&mut p));
        let mut p = HeapBuf::from_slice(&[0u8; 10], 0, 0);
        assert!(!answer_echo(&mut p));
    }
}
