//! "Fragmentation needed" (ICMPv4 type 3 code 4, RFC 792 and RFC 1191) and
//! "Packet Too Big" (ICMPv6 type 2, RFC 4443 section 3.2), built in place
//! from the packet that was too big, for path MTU discovery through a
//! tunnel whose MTU is smaller than the LAN's.
//!
//! The rules of RFC 1812 section 4.3.2.7 and RFC 4443 section 2.4 apply: no
//! error about an ICMP error, a non-initial fragment, or a packet from a
//! multicast, broadcast or unspecified source.

use crate::buf::PacketBuf;
use crate::wire::{icmpv4, icmpv6, ipv4, ipv6, IpProtocol};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The IPv6 minimum MTU: a Packet Too Big message must fit in it.
const IPV6_MIN_MTU: usize = 1280;

/// Why no error was built. The packet is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoError {
    /// IPv4 without Don't Fragment: the sender allows fragmentation, which
    /// this node does not do; the packet is dropped.
    FragmentationAllowed,
    /// RFC 1812/4443 forbid an error for this packet.
    Forbidden,
    /// We have no address of that family to send the error from.
    NoSourceAddress,
    /// The packet is not a valid IP packet, or the buffer lacks room.
    Malformed,
}

/// Turns the IP packet that is the buffer's data into the ICMP error that
/// tells its sender to use at most `mtu` bytes, addressed back to the
/// sender from `our_v4` / `our_v6`. On success the data is the new IP packet.
pub fn packet_too_big<B: PacketBuf>(
    packet: &mut B,
    mtu: u16,
    our_v4: Option<Ipv4Addr>,
    our_v6: Option<Ipv6Addr>,
) -> Result<IpAddr, NoError> {
    match packet.data().first().map(|b| b >> 4) {
        Some(4) => v4(packet, mtu, our_v4.ok_or(NoError::NoSourceAddress)?).map(IpAddr::V4),
        Some(6) => v6(packet, mtu, our_v6.ok_or(NoError::NoSourceAddress)?).map(IpAddr::V6),
        _ => Err(NoError::Malformed),
    }
}

fn v4<B: PacketBuf>(packet: &mut B, mtu: u16, ours: Ipv4Addr) -> Result<Ipv4Addr, NoError> {
    let (sender, keep) = {
        let ip = ipv4::Packet::new_checked(packet.data()).map_err(|_| NoError::Malformed)?;
        if !ip.dont_frag() {
            return Err(NoError::FragmentationAllowed);
        }
        let src = ip.src_addr();
        let is_error = ip.next_header() == IpProtocol::Icmp
            && matches!(ip.payload().first(), Some(3 | 4 | 5 | 11 | 12));
        if is_error
            || ip.frag_offset() != 0
            || src.is_multicast()
            || src.is_broadcast()
            || src.is_unspecified()
        {
            return Err(NoError::Forbidden);
        }
        // RFC 792: the header plus the first 64 bits of the payload.
        (src, (ip.header_len() + 8).min(packet.len()))
    };
    let needed = ipv4::HEADER_LEN + icmpv4::HEADER_LEN;
    if packet.headroom() < needed {
        return Err(NoError::Malformed);
    }
    let total = packet.len();
    packet.trim(total - keep).map_err(|_| NoError::Malformed)?;
    let icmp = packet
        .prepend(icmpv4::HEADER_LEN)
        .map_err(|_| NoError::Malformed)?;
    icmp.fill(0);
    let mut message = icmpv4::Packet::new_unchecked(&mut packet.data_mut()[..]);
    message.set_msg_type(icmpv4::Message::DstUnreachable);
    message.set_msg_code(4);
    message.set_rest_of_header(u32::from(mtu));
    message.fill_checksum();
    let icmp_len = packet.len();
    let header = packet
        .prepend(ipv4::HEADER_LEN)
        .map_err(|_| NoError::Malformed)?;
    header.copy_from_slice(&[
        0x45, 0xc0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    let mut ip = ipv4::Packet::new_unchecked(&mut packet.data_mut()[..]);
    ip.set_total_len((ipv4::HEADER_LEN + icmp_len) as u16);
    ip.set_src_addr(ours);
    ip.set_dst_addr(sender);
    ip.fill_checksum();
    Ok(sender)
}

fn v6<B: PacketBuf>(packet: &mut B, mtu: u16, ours: Ipv6Addr) -> Result<Ipv6Addr, NoError> {
    let sender = {
        let ip = ipv6::Packet::new_checked(packet.data()).map_err(|_| NoError::Malformed)?;
        let src = ip.src_addr();
        let is_error = ip.next_header() == IpProtocol::Icmpv6
            && ip.payload().first().is_some_and(|t| *t < 128);
        if is_error || src.is_multicast() || src.is_unspecified() {
            return Err(NoError::Forbidden);
        }
        src
    };
    let needed = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;
    if packet.headroom() < needed {
        return Err(NoError::Malformed);
    }
    // As much of the invoking packet as fits in the minimum MTU.
    let keep = packet.len().min(IPV6_MIN_MTU - needed);
    let total = packet.len();
    packet.trim(total - keep).map_err(|_| NoError::Malformed)?;
    packet
        .prepend(icmpv6::HEADER_LEN)
        .map_err(|_| NoError::Malformed)?
        .fill(0);
    let icmp_len = packet.len();
    {
        let mut message = icmpv6::Packet::new_unchecked(&mut packet.data_mut()[..]);
        message.set_msg_type(icmpv6::Message::PktTooBig);
        message.set_msg_code(0);
        message.set_rest_of_header(u32::from(mtu));
        message.fill_checksum(ours, sender);
    }
    let header = packet
        .prepend(ipv6::HEADER_LEN)
        .map_err(|_| NoError::Malformed)?;
    header.fill(0);
    let mut ip = ipv6::Packet::new_unchecked(&mut packet.data_mut()[..]);
    ip.set_version(6);
    ip.set_payload_len(icmp_len as u16);
    ip.set_next_header(IpProtocol::Icmpv6);
    ip.set_hop_limit(64);
    ip.set_src_addr(ours);
    ip.set_dst_addr(sender);
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::HeapBuf;
    use crate::synth;
    use crate::wire::ethernet::Address;

    const MAC: Address = Address([2, 0, 0, 0, 0, 1]);
    const OURS_V4: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 1);
    const OURS_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x10, 0, 0, 0, 0, 0, 1);

    fn ip_packet(src: IpAddr, dst: IpAddr, len: usize) -> Vec<u8> {
        synth::udp_frame(MAC, MAC, src, dst, 64, len + 14)[14..].to_vec()
    }

    #[test]
    fn an_oversized_ipv4_packet_becomes_fragmentation_needed() {
        let sender = Ipv4Addr::new(10, 10, 1, 2);
        let original = ip_packet(sender.into(), Ipv4Addr::new(10, 99, 0, 2).into(), 1500);
        let mut p = HeapBuf::from_slice(&original, 128, 0);
        assert_eq!(
            packet_too_big(&mut p, 1420, Some(OURS_V4), None),
            Ok(IpAddr::V4(sender))
        );
        let ip = ipv4::Packet::new_checked(p.data()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            (ip.src_addr(), ip.dst_addr(), ip.next_header()),
            (OURS_V4, sender, IpProtocol::Icmp)
        );
        assert_eq!(usize::from(ip.total_len()), 20 + 8 + 28);
        let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(
            (icmp.msg_type(), icmp.msg_code()),
            (icmpv4::Message::DstUnreachable, 4)
        );
        assert_eq!(icmp.rest_of_header() & 0xffff, 1420, "next-hop MTU");
        assert_eq!(
            icmp.payload(),
            &original[..28],
            "the original header and 8 bytes"
        );
    }

    #[test]
    fn an_oversized_ipv6_packet_becomes_packet_too_big_within_1280_bytes() {
        let sender: Ipv6Addr = "fd00:10::2".parse().unwrap();
        let original = ip_packet(
            sender.into(),
            "fd00:99::2".parse::<Ipv6Addr>().unwrap().into(),
            1500,
        );
        let mut p = HeapBuf::from_slice(&original, 128, 0);
        assert_eq!(
            packet_too_big(&mut p, 1420, None, Some(OURS_V6)),
            Ok(IpAddr::V6(sender))
        );
        assert_eq!(p.len(), 1280);
        let ip = ipv6::Packet::new_checked(p.data()).unwrap();
        assert_eq!(
            (ip.src_addr(), ip.dst_addr(), ip.next_header()),
            (OURS_V6, sender, IpProtocol::Icmpv6)
        );
        let icmp = icmpv6::Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(OURS_V6, sender));
        assert_eq!(icmp.msg_type(), icmpv6::Message::PktTooBig);
        assert_eq!(icmp.rest_of_header(), 1420);
        assert_eq!(icmp.payload(), &original[..1280 - 48]);
    }

    #[test]
    fn ipv4_without_dont_fragment_is_not_answered() {
        let mut original = ip_packet(
            Ipv4Addr::new(10, 10, 1, 2).into(),
            Ipv4Addr::new(10, 99, 0, 2).into(),
            1500,
        );
        let mut ip = ipv4::Packet::new_checked(&mut original[..]).unwrap();
        ip.set_dont_frag(false);
        ip.fill_checksum();
        let mut p = HeapBuf::from_slice(&original, 128, 0);
        assert_eq!(
            packet_too_big(&mut p, 1420, Some(OURS_V4), None),
            Err(NoError::FragmentationAllowed)
        );
        assert_eq!(p.data(), &original[..], "unchanged");
    }

    #[test]
    fn no_error_about_icmp_errors_multicast_sources_or_without_an_address() {
        // An ICMP error (type 3) as payload.
        let mut original = ip_packet(
            Ipv4Addr::new(10, 10, 1, 2).into(),
            Ipv4Addr::new(10, 99, 0, 2).into(),
            600,
        );
        let mut ip = ipv4::Packet::new_checked(&mut original[..]).unwrap();
        ip.set_next_header(IpProtocol::Icmp);
        ip.payload_mut()[0] = 3;
        ip.fill_checksum();
        let mut p = HeapBuf::from_slice(&original, 128, 0);
        assert_eq!(
            packet_too_big(&mut p, 576, Some(OURS_V4), None),
            Err(NoError::Forbidden)
        );
        let multicast = ip_packet(
            Ipv4Addr::new(224, 0, 0, 5).into(),
            Ipv4Addr::new(10, 99, 0, 2).into(),
            600,
        );
        let mut p = HeapBuf::from_slice(&multicast, 128, 0);
        assert_eq!(
            packet_too_big(&mut p, 576, Some(OURS_V4), None),
            Err(NoError::Forbidden)
        );
        let normal = ip_packet(
            Ipv4Addr::new(10, 10, 1, 2).into(),
            Ipv4Addr::new(10, 99, 0, 2).into(),
            600,
        );
        let mut p = HeapBuf::from_slice(&normal, 128, 0);
        assert_eq!(
            packet_too_big(&mut p, 576, None, Some(OURS_V6)),
            Err(NoError::NoSourceAddress)
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1357_9bdfu32;
        for _ in 0..5000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let len = (seed % 200) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|i| (seed >> (i % 24)) as u8).collect();
            if let Some(b) = bytes.first_mut() {
                *b = if seed.is_multiple_of(2) { 0x45 } else { 0x60 };
            }
            let mut p = HeapBuf::from_slice(&bytes, (seed % 80) as usize, 0);
            let _ = packet_too_big(&mut p, 1280, Some(OURS_V4), Some(OURS_V6));
        }
    }
}
