//! Plain IP forwarding between port pairs by configured next-hop MAC: the
//! foundation's "process" step, enough to prove the loop.
//!
//! A frame arriving on a port leaves by that port's peer (LAN ↔ WAN). Its
//! destination MAC becomes the next hop configured for the output port, its
//! source MAC the output port's own, and the IPv4 TTL / IPv6 hop limit is
//! decremented (RFC 1812 §5.3.1, RFC 8200 §3) with an incremental IPv4
//! checksum update (RFC 1624). Non-IP frames and expiring packets are
//! dropped and counted; later issues punt them to the control thread.

use crate::buf::PacketBuf;
use crate::nexthop::Resolver;
use crate::punt::PuntReason;
use crate::stats::{DropReason, MAX_PORTS};
use crate::wire::ethernet::Address;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::{ipv4, ipv6};
use crate::worker::{Processor, Verdict};
use std::net::IpAddr;

/// Where packets from one input port go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardEntry {
    /// Output port index.
    pub out_port: u8,
    /// The output port's own MAC, the new source address.
    pub src_mac: ethernet::Address,
    /// The next hop behind the output port, the new destination address.
    pub dst_mac: ethernet::Address,
}

/// Most addresses the node answers for.
pub const MAX_LOCAL_ADDRESSES: usize = 8;

/// The forwarding table, indexed by input port, and the node's own
/// addresses (packets to them are punted to the control thread).
#[derive(Debug, Clone, Default)]
pub struct Forwarder {
    entries: [Option<ForwardEntry>; MAX_PORTS],
    local: [Option<IpAddr>; MAX_LOCAL_ADDRESSES],
    /// Dynamic next hops (ARP/ND); without it each entry's `dst_mac` is used.
    resolver: Option<Resolver>,
}

impl Forwarder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends traffic arriving on `in_port` out as `entry` says. Fails for a
    /// port index beyond [`MAX_PORTS`].
    pub fn set(&mut self, in_port: u8, entry: ForwardEntry) -> Result<(), String> {
        let slot = self
            .entries
            .get_mut(usize::from(in_port))
            .ok_or_else(|| format!("port index {in_port} is beyond the {MAX_PORTS}-port limit"))?;
        *slot = Some(entry);
        Ok(())
    }

    pub fn entry(&self, in_port: u8) -> Option<&ForwardEntry> {
        self.entries.get(usize::from(in_port))?.as_ref()
    }

    /// The node's own addresses; fails beyond [`MAX_LOCAL_ADDRESSES`].
    pub fn set_local_addresses(&mut self, addresses: &[IpAddr]) -> Result<(), String> {
        if addresses.len() > MAX_LOCAL_ADDRESSES {
            return Err(format!(
                "the node answers for at most {MAX_LOCAL_ADDRESSES} addresses, got {}",
                addresses.len()
            ));
        }
        self.local = [None; MAX_LOCAL_ADDRESSES];
        for (slot, a) in self.local.iter_mut().zip(addresses) {
            *slot = Some(*a);
        }
        Ok(())
    }

    /// Resolve next-hop MACs through the neighbour tables instead of the
    /// entries' static `dst_mac`.
    pub fn set_resolver(&mut self, resolver: Resolver) {
        self.resolver = Some(resolver);
    }

    pub fn resolver(&self) -> Option<&Resolver> {
        self.resolver.as_ref()
    }

    /// The MAC for `dst` out of `port` by the neighbour tables: None when
    /// this forwarder has no resolver (the caller uses its static MAC).
    #[inline]
    pub fn resolve(&self, port: u8, dst: IpAddr) -> Option<Result<Address, Option<IpAddr>>> {
        self.resolver.as_ref().map(|r| r.mac_for(port, dst))
    }

    /// Whether `addr` is one of the node's own addresses.
    #[inline]
    pub fn is_local(&self, addr: IpAddr) -> bool {
        self.local.contains(&Some(addr))
    }
}

impl Processor for Forwarder {
    #[inline]
    fn process<B: PacketBuf>(&mut self, packet: &mut B, in_port: u8, _now: u64) -> Verdict {
        let Ok(mut frame) = ethernet::Frame::new_checked(packet.data_mut()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let entry = self.entry(in_port).copied();
        let (expired, dst) = match frame.payload_ethertype() {
            EtherType::Ipv4 => match ipv4::Packet::new_checked(frame.payload_mut()) {
                Ok(ip) if self.is_local(IpAddr::V4(ip.dst_addr())) => {
                    return Verdict::Punt(PuntReason::Local)
                }
                Ok(mut ip) => (ip.decrement_ttl().is_none(), IpAddr::V4(ip.dst_addr())),
                Err(_) => return Verdict::Drop(DropReason::Malformed),
            },
            EtherType::Ipv6 => match ipv6::Packet::new_checked(frame.payload_mut()) {
                Ok(ip) if is_neighbor_discovery(&ip) => return Verdict::Punt(PuntReason::Neighbor),
                Ok(ip) if self.is_local(IpAddr::V6(ip.dst_addr())) => {
                    return Verdict::Punt(PuntReason::Local)
                }
                Ok(mut ip) => (
                    ip.decrement_hop_limit().is_none(),
                    IpAddr::V6(ip.dst_addr()),
                ),
                Err(_) => return Verdict::Drop(DropReason::Malformed),
            },
            EtherType::Arp => return Verdict::Punt(PuntReason::Neighbor),
            _ => return Verdict::Drop(DropReason::NotIp),
        };
        let Some(entry) = entry else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        if expired {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        frame.set_src_addr(entry.src_mac);
        match self
            .resolve(entry.out_port, dst)
            .unwrap_or(Ok(entry.dst_mac))
        {
            Ok(mac) => frame.set_dst_addr(mac),
            Err(Some(hop)) => {
                return Verdict::Punt(PuntReason::NeedsNextHop {
                    port: entry.out_port,
                    hop,
                })
            }
            Err(None) => return Verdict::Drop(DropReason::NoRoute),
        }
        Verdict::Forward(entry.out_port)
    }

    #[inline]
    fn poll(&mut self, _now: u64) {
        if let Some(r) = &mut self.resolver {
            r.refresh();
        }
    }
}

/// ICMPv6 router and neighbour discovery (RFC 4861 types 133 to 137), which
/// the control thread handles.
#[inline]
fn is_neighbor_discovery<T: AsRef<[u8]>>(ip: &ipv6::Packet<T>) -> bool {
    ip.next_header() == crate::wire::IpProtocol::Icmpv6
        && matches!(ip.payload().first(), Some(133..=137))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::HeapBuf;
    use crate::synth;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const LAN_PORT_MAC: ethernet::Address = ethernet::Address([2, 0, 0, 0, 1, 1]);
    const WAN_PORT_MAC: ethernet::Address = ethernet::Address([2, 0, 0, 0, 2, 1]);
    const LAN_HOST: ethernet::Address = ethernet::Address([2, 0, 0, 0, 1, 2]);
    const WAN_HOST: ethernet::Address = ethernet::Address([2, 0, 0, 0, 2, 2]);
    const V4_SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 10, 1, 2));
    const V4_DST: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 10, 2, 2));

    fn forwarder() -> Forwarder {
        let mut f = Forwarder::new();
        f.set(
            0,
            ForwardEntry {
                out_port: 1,
                src_mac: WAN_PORT_MAC,
                dst_mac: WAN_HOST,
            },
        )
        .unwrap();
        f.set(
            1,
            ForwardEntry {
                out_port: 0,
                src_mac: LAN_PORT_MAC,
                dst_mac: LAN_HOST,
            },
        )
        .unwrap();
        f
    }

    fn packet(bytes: &[u8]) -> HeapBuf {
        HeapBuf::from_slice(bytes, 128, 64)
    }

    #[test]
    fn ipv4_is_forwarded_with_rewritten_macs_and_decremented_ttl() {
        let mut p = packet(&synth::udp_frame(
            LAN_HOST,
            LAN_PORT_MAC,
            V4_SRC,
            V4_DST,
            64,
            100,
        ));
        assert_eq!(forwarder().process(&mut p, 0, 0), Verdict::Forward(1));
        let f = ethernet::Frame::new_checked(p.data()).unwrap();
        assert_eq!((f.dst_addr(), f.src_addr()), (WAN_HOST, WAN_PORT_MAC));
        let ip = ipv4::Packet::new_checked(f.payload()).unwrap();
        assert_eq!(ip.ttl(), 63);
        assert!(ip.verify_checksum());
    }

    #[test]
    fn ipv6_is_forwarded_with_decremented_hop_limit() {
        let src = IpAddr::V6(Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 2));
        let dst = IpAddr::V6(Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2));
        let mut p = packet(&synth::udp_frame(WAN_HOST, WAN_PORT_MAC, src, dst, 10, 120));
        assert_eq!(forwarder().process(&mut p, 1, 0), Verdict::Forward(0));
        let f = ethernet::Frame::new_checked(p.data()).unwrap();
        assert_eq!((f.dst_addr(), f.src_addr()), (LAN_HOST, LAN_PORT_MAC));
        assert_eq!(
            ipv6::Packet::new_checked(f.payload()).unwrap().hop_limit(),
            9
        );
    }

    #[test]
    fn expiring_ttl_is_dropped_and_the_packet_left_untouched() {
        let original = synth::udp_frame(LAN_HOST, LAN_PORT_MAC, V4_SRC, V4_DST, 1, 80);
        let mut p = packet(&original);
        assert_eq!(
            forwarder().process(&mut p, 0, 0),
            Verdict::Drop(DropReason::TtlExceeded)
        );
        assert_eq!(p.data(), &original[..]);
    }

    #[test]
    fn packets_to_the_node_itself_are_punted() {
        let mut f = forwarder();
        f.set_local_addresses(&[IpAddr::V4(Ipv4Addr::new(10, 10, 2, 2))])
            .unwrap();
        let original = synth::udp_frame(LAN_HOST, LAN_PORT_MAC, V4_SRC, V4_DST, 64, 80);
        let mut p = packet(&original);
        assert_eq!(f.process(&mut p, 0, 0), Verdict::Punt(PuntReason::Local));
        assert_eq!(p.data(), &original[..], "untouched for the control thread");
        assert!(f.set_local_addresses(&[V4_DST; 9]).is_err());
    }

    #[test]
    fn next_hops_resolve_through_the_neighbour_tables() {
        use crate::neighbor::NeighborCache;
        use crate::nexthop::{NeighborTables, NextHop};
        let tables = NeighborTables::new(2);
        let rules = vec![
            NextHop::Static(LAN_HOST),
            NextHop::Resolved {
                subnets: vec![(IpAddr::V4(Ipv4Addr::new(10, 10, 2, 1)), 24)],
                gateway: None,
            },
        ];
        let mut f = forwarder();
        f.set_resolver(crate::nexthop::Resolver::new(tables.clone(), rules));
        let mut p = packet(&synth::udp_frame(
            LAN_HOST,
            LAN_PORT_MAC,
            V4_SRC,
            V4_DST,
            64,
            80,
        ));
        assert_eq!(
            f.process(&mut p, 0, 0),
            Verdict::Punt(PuntReason::NeedsNextHop {
                port: 1,
                hop: V4_DST
            }),
            "unresolved: the finished frame goes to the control thread"
        );
        let resolved = ethernet::Address([2, 0, 0, 0, 2, 9]);
        let mut cache = NeighborCache::default();
        cache.learn(V4_DST, resolved, std::time::Duration::ZERO, true);
        tables.publish(1, cache.snapshot());
        f.poll(0);
        let mut p = packet(&synth::udp_frame(
            LAN_HOST,
            LAN_PORT_MAC,
            V4_SRC,
            V4_DST,
            64,
            80,
        ));
        assert_eq!(f.process(&mut p, 0, 0), Verdict::Forward(1));
        assert_eq!(
            ethernet::Frame::new_checked(p.data()).unwrap().dst_addr(),
            resolved
        );
        // Off-link without a gateway: no route.
        let far = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let mut p = packet(&synth::udp_frame(
            LAN_HOST,
            LAN_PORT_MAC,
            V4_SRC,
            far,
            64,
            80,
        ));
        assert_eq!(f.process(&mut p, 0, 0), Verdict::Drop(DropReason::NoRoute));
    }

    #[test]
    fn arp_goes_to_the_control_thread() {
        let mut p = packet(&synth::arp_request(
            LAN_HOST,
            Ipv4Addr::new(10, 10, 1, 2),
            Ipv4Addr::new(10, 10, 1, 1),
        ));
        assert_eq!(
            forwarder().process(&mut p, 0, 0),
            Verdict::Punt(PuntReason::Neighbor)
        );
    }

    #[test]
    fn truncated_frames_and_headers_are_malformed() {
        let full = synth::udp_frame(LAN_HOST, LAN_PORT_MAC, V4_SRC, V4_DST, 64, 80);
        for len in [0, 5, 13, 14, 20, 33] {
            let mut p = packet(&full[..len]);
            assert_eq!(
                forwarder().process(&mut p, 0, 0),
                Verdict::Drop(DropReason::Malformed),
                "length {len}"
            );
        }
    }

    #[test]
    fn a_port_without_an_entry_has_no_route() {
        let mut p = packet(&synth::udp_frame(
            LAN_HOST,
            LAN_PORT_MAC,
            V4_SRC,
            V4_DST,
            64,
            80,
        ));
        assert_eq!(
            forwarder().process(&mut p, 5, 0),
            Verdict::Drop(DropReason::NoRoute)
        );
        assert!(Forwarder::new()
            .set(MAX_PORTS as u8, forwarder().entry(0).copied().unwrap())
            .is_err());
    }

    #[test]
    fn vlan_tagged_ipv4_is_forwarded_with_its_tag() {
        let plain = synth::udp_frame(LAN_HOST, LAN_PORT_MAC, V4_SRC, V4_DST, 64, 80);
        let mut tagged = plain[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]); // VLAN 100
        tagged.extend_from_slice(&plain[12..]);
        let mut p = packet(&tagged);
        assert_eq!(forwarder().process(&mut p, 0, 0), Verdict::Forward(1));
        let f = ethernet::Frame::new_checked(p.data()).unwrap();
        assert_eq!(f.vlan().map(|t| t.vid), Some(100));
        assert_eq!(ipv4::Packet::new_checked(f.payload()).unwrap().ttl(), 63);
    }

    #[test]
    fn random_frames_never_panic_and_only_valid_ip_is_forwarded() {
        let mut seed = 0x9e37_79b9u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let mut fwd = forwarder();
        let mut forwarded = 0;
        for _ in 0..20_000 {
            let len = (next() % 160) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Make most of them claim to be IP so the IP parsers are exercised.
            if len >= 15 {
                let ethertype: [u8; 2] = match next() % 4 {
                    0 => [0x08, 0x00],
                    1 => [0x86, 0xdd],
                    2 => [0x81, 0x00],
                    _ => [bytes[12], bytes[13]],
                };
                bytes[12..14].copy_from_slice(&ethertype);
                bytes[14] = (bytes[14] & 0x0f) | if next() % 2 == 0 { 0x40 } else { 0x60 };
            }
            let mut p = packet(&bytes);
            if let Verdict::Forward(out) = fwd.process(&mut p, (next() % 2) as u8, 0) {
                forwarded += 1;
                let f = ethernet::Frame::new_checked(p.data()).expect("forwarded frames parse");
                let expected = fwd.entry(out ^ 1).unwrap();
                assert_eq!(f.dst_addr(), expected.dst_mac);
            }
        }
        assert!(forwarded > 0, "some random frames are valid IP");
    }
}
