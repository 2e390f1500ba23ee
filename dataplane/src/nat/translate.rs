//! Per-packet translation, in place on the IPv4 packet's bytes (the
//! caller passes the frame's IP payload, e.g. `frame.payload_mut()` of a
//! `PacketBuf`).
//!
//! Outbound (LAN to WAN): the source becomes the external address and the
//! mapping's port (or echo identifier). Inbound (WAN to LAN): the
//! destination becomes the internal endpoint. The IPv4 header checksum and
//! the TCP, UDP or ICMP checksum are updated incrementally (RFC 1624 eqn.
//! 3, [`checksum::update16`] / [`checksum::update32`], equal to a full
//! recomputation); a UDP checksum of 0 (none, RFC 768) stays 0, and one
//! that updates to 0 is sent as 0xffff.
//!
//! ICMP errors (destination unreachable including fragmentation needed,
//! time exceeded, parameter problem) are translated both ways (RFC 5508):
//! the packet they quote is looked up as if it were travelling the other
//! way; then the outer address, the quoted address and port, the quoted
//! IP header checksum, the quoted transport checksum where the quote
//! includes it, and the ICMP checksum are rewritten. Errors create and
//! refresh nothing; one with a bad ICMP checksum or quoted IP header
//! checksum is dropped (RFC 5508 REQ-3). An inbound error must also quote
//! a packet sent to a remote the mapping's filtering admits, so a spoofed
//! error has to guess both the external port and a remote endpoint.
//!
//! Fragments: a first fragment is translated like any packet (the
//! transport checksum covers the whole datagram, and only the
//! pseudo-header and port change). Outbound non-first fragments get the
//! external source address only, which is all they carry; inbound ones are
//! dropped ([`NatDrop::Fragment`]): without a fragment cache there is no
//! port to find their mapping by.
//!
//! The TTL is not touched: that is the forwarding stage's job.

use super::config::{Filtering, NatConfig, NatConfigError};
use super::table::{MappingTable, Slot};
use super::{NatDrop, NatProto, NatStats, TcpPhase};
use crate::wire::{checksum, ipv4};

/// Offsets of the fields the NAT rewrites.
mod field {
    /// In the IPv4 header.
    pub const IP_CHECKSUM: usize = 10;
    pub const IP_SRC: usize = 12;
    pub const IP_DST: usize = 16;
    /// In the TCP or UDP header.
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const UDP_CHECKSUM: usize = 6;
    pub const TCP_CHECKSUM: usize = 16;
    /// In the ICMP header.
    pub const ICMP_CHECKSUM: usize = 2;
    pub const ICMP_ECHO_ID: usize = 4;
    /// Where an ICMP error's quoted packet starts.
    pub const ICMP_QUOTE: usize = 8;
}

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_DST_UNREACHABLE: u8 = 3;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_PARAM_PROBLEM: u8 = 12;

const TCP_MIN_HEADER: usize = 20;
const UDP_HEADER: usize = 8;
const ICMP_HEADER: usize = 8;
/// A quoted packet must carry at least its IP header and the first 8 bytes
/// of its payload (RFC 792): the ports, or the echo identifier.
const QUOTED_L4_MIN: usize = 8;

/// What to do with an outbound packet the NAT did not drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    /// Rewritten in place: send it out of the WAN port.
    Translated,
    /// The internal endpoint belongs to another worker (RFC 4787 REQ-1
    /// holds across workers only if one worker maps it): hand the packet,
    /// untouched, to that worker.
    HandOff { worker: u16 },
}

/// What to do with an inbound packet the NAT did not drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Rewritten in place: route it to the LAN.
    Translated,
    /// The external port belongs to another worker's slice: hand the
    /// packet, untouched, to that worker.
    HandOff { worker: u16 },
    /// Not addressed to the external address: not NAT traffic, untouched.
    NotOurs,
}

/// Which way a packet crosses the NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Out,
    In,
}

/// The IPv4 header fields the NAT needs, read once.
#[derive(Debug, Clone, Copy)]
struct Header {
    hl: usize,
    /// Total Length: the end of the datagram in the buffer.
    end: usize,
    proto: u8,
    src: u32,
    dst: u32,
    frag_offset: u16,
}

impl Header {
    fn parse(ip: &[u8]) -> Result<Header, NatDrop> {
        match ip.first().map(|b| b >> 4) {
            Some(4) => {}
            Some(6) => return Err(NatDrop::Unsupported),
            _ => return Err(NatDrop::Malformed),
        }
        let p = ipv4::Packet::new_checked(ip).map_err(|_| NatDrop::Malformed)?;
        Ok(Header {
            hl: p.header_len(),
            end: usize::from(p.total_len()),
            proto: p.protocol().into(),
            src: u32::from(p.src_addr()),
            dst: u32::from(p.dst_addr()),
            frag_offset: p.frag_offset(),
        })
    }
}

/// The NAT of one worker towards one external address.
#[derive(Debug)]
pub struct Nat {
    table: MappingTable,
    external: u32,
    worker: u16,
    filtering: Filtering,
    stats: NatStats,
}

impl Nat {
    /// Allocates the whole table; nothing is allocated afterwards.
    pub fn new(config: &NatConfig) -> Result<Nat, NatConfigError> {
        Ok(Nat {
            table: MappingTable::new(config)?,
            external: u32::from(config.external),
            worker: config.worker,
            filtering: config.filtering,
            stats: NatStats::default(),
        })
    }

    /// Counters since construction.
    pub fn stats(&self) -> NatStats {
        let (created, expired) = self.table.counts();
        NatStats {
            created,
            expired,
            ..self.stats
        }
    }

    pub fn table(&self) -> &MappingTable {
        &self.table
    }

    /// The worker that owns external `port` (or echo id), or None outside
    /// the range: where an inbound packet must be handed.
    #[inline]
    pub fn owner_of(&self, port: u16) -> Option<u16> {
        self.table.slice().owner_of(port)
    }

    /// The worker that maps internal endpoint `(addr, port)` of `proto`.
    #[inline]
    pub fn internal_owner(&self, proto: NatProto, addr: u32, port: u16) -> u16 {
        let h = self.table.hasher();
        h.owner(h.hash(addr, port, proto.number()))
    }

    /// The external port of a live mapping of an internal endpoint.
    pub fn mapping_of(&self, proto: NatProto, addr: u32, port: u16, now: u64) -> Option<u16> {
        let now = self.table.units(now);
        self.table
            .by_internal(proto, addr, port, now)
            .map(|s| self.table.external_port(s))
    }

    /// Removes idle mappings among the next `budget` slots (call a few per
    /// loop iteration).
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        self.table.expire(now, budget)
    }

    /// Translates a packet from the LAN leaving by the WAN port. `tcp` is
    /// the connection's phase for TCP (ignored otherwise). A drop is
    /// counted and returned; the packet is then unchanged.
    pub fn outbound(
        &mut self,
        ip: &mut [u8],
        tcp: TcpPhase,
        now: u64,
    ) -> Result<Outbound, NatDrop> {
        let r = self.outbound_inner(ip, tcp, now);
        match r {
            Ok(Outbound::Translated) => self.stats.outbound += 1,
            Ok(Outbound::HandOff { .. }) => {}
            Err(d) => self.stats.drops[d as usize] += 1,
        }
        r
    }

    /// Translates a packet from the WAN to the external address. A drop is
    /// counted and returned; the packet is then unchanged.
    pub fn inbound(&mut self, ip: &mut [u8], tcp: TcpPhase, now: u64) -> Result<Inbound, NatDrop> {
        let r = self.inbound_inner(ip, tcp, now);
        match r {
            Ok(Inbound::Translated) => self.stats.inbound += 1,
            Ok(_) => {}
            Err(d) => self.stats.drops[d as usize] += 1,
        }
        r
    }

    fn outbound_inner(
        &mut self,
        ip: &mut [u8],
        tcp: TcpPhase,
        now: u64,
    ) -> Result<Outbound, NatDrop> {
        let h = Header::parse(ip)?;
        if h.dst == self.external {
            return Err(NatDrop::Hairpin);
        }
        let proto = NatProto::from_number(h.proto).ok_or(NatDrop::Unsupported)?;
        if h.frag_offset != 0 {
            rewrite_ip_addr(ip, field::IP_SRC, self.external);
            return Ok(Outbound::Translated);
        }
        let l4 = ip.get(h.hl..h.end).ok_or(NatDrop::Malformed)?;
        let (sport, dport) = match l4_ports(proto, l4, Way::Out)? {
            L4Ports::Ports(sport, dport) => (sport, dport),
            L4Ports::IcmpError => return self.outbound_error(ip, &h, now),
        };
        let hash = self.table.hasher().hash(h.src, sport, h.proto);
        let owner = self.table.hasher().owner(hash);
        if owner != self.worker {
            return Ok(Outbound::HandOff { worker: owner });
        }
        let now = self.table.units(now);
        let slot = self.table.outbound(proto, h.src, sport, hash, now)?;
        self.table.touch(slot, now, tcp);
        self.table.note_remote(slot, self.filtering, h.dst, dport);
        let port = self.table.external_port(slot);
        rewrite_endpoint(ip, &h, proto, Way::Out, self.external, port);
        Ok(Outbound::Translated)
    }

    fn inbound_inner(
        &mut self,
        ip: &mut [u8],
        tcp: TcpPhase,
        now: u64,
    ) -> Result<Inbound, NatDrop> {
        let h = Header::parse(ip)?;
        if h.dst != self.external {
            return Ok(Inbound::NotOurs);
        }
        if h.src == 0 {
            return Err(NatDrop::Malformed);
        }
        let proto = NatProto::from_number(h.proto).ok_or(NatDrop::Unsupported)?;
        if h.frag_offset != 0 {
            return Err(NatDrop::Fragment);
        }
        let l4 = ip.get(h.hl..h.end).ok_or(NatDrop::Malformed)?;
        let (sport, dport) = match l4_ports(proto, l4, Way::In)? {
            L4Ports::Ports(sport, dport) => (sport, dport),
            L4Ports::IcmpError => return self.inbound_error(ip, &h, now),
        };
        match self.owner_of(dport) {
            None => return Err(NatDrop::NoMapping),
            Some(w) if w != self.worker => return Ok(Inbound::HandOff { worker: w }),
            Some(_) => {}
        }
        let now = self.table.units(now);
        let slot = self
            .table
            .by_external(proto, dport, now)
            .ok_or(NatDrop::NoMapping)?;
        if !self.table.admits(slot, self.filtering, h.src, sport) {
            return Err(NatDrop::Filtered);
        }
        self.table.touch(slot, now, tcp);
        let (addr, port) = self.table.internal(slot);
        rewrite_endpoint(ip, &h, proto, Way::In, addr, port);
        Ok(Inbound::Translated)
    }

    /// An ICMP error from the WAN about a packet we sent out: the quote's
    /// source is the external endpoint.
    fn inbound_error(&mut self, ip: &mut [u8], h: &Header, now: u64) -> Result<Inbound, NatDrop> {
        let q = Quote::parse(ip, h, Way::In)?;
        if q.addr != self.external {
            return Err(NatDrop::IcmpErrorUnmatched);
        }
        match self.owner_of(q.port) {
            None => return Err(NatDrop::IcmpErrorUnmatched),
            Some(w) if w != self.worker => return Ok(Inbound::HandOff { worker: w }),
            Some(_) => {}
        }
        let now = self.table.units(now);
        let slot: Slot = self
            .table
            .by_external(q.proto, q.port, now)
            .filter(|&s| {
                self.table
                    .admits(s, self.filtering, q.remote_addr, q.remote_port)
            })
            .ok_or(NatDrop::IcmpErrorUnmatched)?;
        let (addr, port) = self.table.internal(slot);
        q.rewrite(ip, h, addr, addr, port);
        self.stats.icmp_errors += 1;
        Ok(Inbound::Translated)
    }

    /// An ICMP error from the LAN about a packet that came in: the quote's
    /// destination is the internal endpoint.
    fn outbound_error(&mut self, ip: &mut [u8], h: &Header, now: u64) -> Result<Outbound, NatDrop> {
        let q = Quote::parse(ip, h, Way::Out)?;
        let owner = self.internal_owner(q.proto, q.addr, q.port);
        if owner != self.worker {
            return Ok(Outbound::HandOff { worker: owner });
        }
        let now = self.table.units(now);
        let slot = self
            .table
            .by_internal(q.proto, q.addr, q.port, now)
            .ok_or(NatDrop::IcmpErrorUnmatched)?;
        let port = self.table.external_port(slot);
        q.rewrite(ip, h, self.external, self.external, port);
        self.stats.icmp_errors += 1;
        Ok(Outbound::Translated)
    }
}

/// The translatable part of the packet an ICMP error quotes.
#[derive(Debug, Clone, Copy)]
struct Quote {
    way: Way,
    proto: NatProto,
    /// Offset of the quoted IP header in the packet.
    at: usize,
    /// The quoted header's length.
    qhl: usize,
    /// Bytes of the quoted transport header present.
    l4_len: usize,
    /// The quoted NAT-side endpoint: source (inbound) or destination
    /// (outbound) address and port (echo id).
    addr: u32,
    port: u16,
    /// The quoted remote endpoint (port 0 for ICMP).
    remote_addr: u32,
    remote_port: u16,
}

impl Quote {
    /// Reads the quote of the ICMP error in `ip` without trusting any of
    /// its lengths: the quoted datagram is truncated by design.
    ///
    /// An error whose ICMP checksum or quoted IP header checksum is wrong
    /// is malformed (RFC 5508 REQ-3 a); the quoted transport checksum is
    /// not checked (REQ-3 c: the quote is usually truncated), only updated.
    fn parse(ip: &[u8], h: &Header, way: Way) -> Result<Quote, NatDrop> {
        let icmp = ip.get(h.hl..h.end).ok_or(NatDrop::Malformed)?;
        if checksum::data(icmp) != 0 {
            return Err(NatDrop::Malformed);
        }
        let at = h.hl + field::ICMP_QUOTE;
        let q = ip.get(at..h.end).ok_or(NatDrop::Malformed)?;
        if q.len() < ipv4::HEADER_LEN || q[0] >> 4 != 4 {
            return Err(NatDrop::IcmpErrorUnmatched);
        }
        let qhl = usize::from(q[0] & 0x0f) * 4;
        // Non-first fragments quote no transport header.
        let frag_offset = get16(q, 6) & 0x1fff;
        if qhl < ipv4::HEADER_LEN || q.len() < qhl + QUOTED_L4_MIN || frag_offset != 0 {
            return Err(NatDrop::IcmpErrorUnmatched);
        }
        if checksum::data(&q[..qhl]) != 0 {
            return Err(NatDrop::Malformed);
        }
        let proto = NatProto::from_number(q[9]).ok_or(NatDrop::IcmpErrorUnmatched)?;
        let t = &q[qhl..];
        let (src_port, dst_port) = match proto {
            NatProto::Tcp | NatProto::Udp => (get16(t, field::SRC_PORT), get16(t, field::DST_PORT)),
            NatProto::Icmp => {
                // The quote of a packet that crossed the NAT: an echo
                // request we sent (inbound error) or an echo reply that
                // came in (outbound error). Never an error about an error.
                let expected = match way {
                    Way::In => ICMP_ECHO_REQUEST,
                    Way::Out => ICMP_ECHO_REPLY,
                };
                if t[0] != expected {
                    return Err(NatDrop::IcmpErrorUnmatched);
                }
                let id = get16(t, field::ICMP_ECHO_ID);
                match way {
                    Way::In => (id, 0),
                    Way::Out => (0, id),
                }
            }
        };
        let (src, dst) = (get32(q, field::IP_SRC), get32(q, field::IP_DST));
        let (addr, port, remote_addr, remote_port) = match way {
            Way::In => (src, src_port, dst, dst_port),
            Way::Out => (dst, dst_port, src, src_port),
        };
        Ok(Quote {
            way,
            proto,
            at,
            qhl,
            l4_len: t.len(),
            addr,
            port,
            remote_addr,
            remote_port,
        })
    }

    /// Rewrites the outer address (destination inbound, source outbound)
    /// to `outer`, and the quoted NAT-side endpoint to `(addr, port)`,
    /// fixing every checksum on the way.
    fn rewrite(&self, ip: &mut [u8], h: &Header, outer: u32, addr: u32, port: u16) {
        let (outer_at, quoted_addr_at, quoted_port_at) = match (self.way, self.proto) {
            (Way::In, NatProto::Icmp) => (field::IP_DST, field::IP_SRC, field::ICMP_ECHO_ID),
            (Way::In, _) => (field::IP_DST, field::IP_SRC, field::SRC_PORT),
            (Way::Out, NatProto::Icmp) => (field::IP_SRC, field::IP_DST, field::ICMP_ECHO_ID),
            (Way::Out, _) => (field::IP_SRC, field::IP_DST, field::DST_PORT),
        };
        rewrite_ip_addr(ip, outer_at, outer);
        let Some(icmp) = ip.get_mut(h.hl..h.end) else {
            return;
        };
        let mut icmp_ck = get16(icmp, field::ICMP_CHECKSUM);
        // Every field below sits at an even offset from the ICMP header
        // (8 + a multiple of 4 + an even field offset), so each 16-bit
        // change can be folded into the ICMP checksum on its own.
        let q = self.at - h.hl;
        let old_addr = get32(icmp, q + quoted_addr_at);
        set32(icmp, q + quoted_addr_at, addr);
        icmp_ck = checksum::update32(icmp_ck, old_addr, addr);
        let qck_at = q + field::IP_CHECKSUM;
        let old_qck = get16(icmp, qck_at);
        let new_qck = checksum::update32(old_qck, old_addr, addr);
        set16(icmp, qck_at, new_qck);
        icmp_ck = checksum::update16(icmp_ck, old_qck, new_qck);

        let t = q + self.qhl;
        let old_port = get16(icmp, t + quoted_port_at);
        set16(icmp, t + quoted_port_at, port);
        icmp_ck = checksum::update16(icmp_ck, old_port, port);
        // The quoted transport checksum, if the quote reaches it.
        let tck = match self.proto {
            NatProto::Tcp if self.l4_len >= field::TCP_CHECKSUM + 2 => {
                Some((field::TCP_CHECKSUM, true))
            }
            NatProto::Udp if get16(icmp, t + field::UDP_CHECKSUM) != 0 => {
                Some((field::UDP_CHECKSUM, true))
            }
            NatProto::Icmp => Some((field::ICMP_CHECKSUM, false)),
            _ => None,
        };
        if let Some((off, pseudo)) = tck {
            let old = get16(icmp, t + off);
            let mut new = checksum::update16(old, old_port, port);
            if pseudo {
                new = checksum::update32(new, old_addr, addr);
            }
            if self.proto == NatProto::Udp && new == 0 {
                new = 0xffff;
            }
            set16(icmp, t + off, new);
            icmp_ck = checksum::update16(icmp_ck, old, new);
        }
        set16(icmp, field::ICMP_CHECKSUM, icmp_ck);
    }
}

/// What the transport header of a packet crossing the NAT `way` holds.
#[derive(Debug, Clone, Copy)]
enum L4Ports {
    /// Source and destination port; an echo's identifier stands for the
    /// NAT-side one (the source outbound, the destination inbound), 0 for
    /// the other.
    Ports(u16, u16),
    /// An ICMP error, translated through the packet it quotes.
    IcmpError,
}

/// Reads the transport header `l4` of a whole (not quoted) packet of
/// `proto` crossing the NAT `way`: a TCP or UDP header, an echo request
/// going out or an echo reply coming in, or an ICMP error. Echo requests
/// to the external address are the local stage's, and other ICMP types
/// are not translated: unsupported.
#[inline]
fn l4_ports(proto: NatProto, l4: &[u8], way: Way) -> Result<L4Ports, NatDrop> {
    let min = match proto {
        NatProto::Tcp => TCP_MIN_HEADER,
        NatProto::Udp => UDP_HEADER,
        NatProto::Icmp => ICMP_HEADER,
    };
    if l4.len() < min {
        return Err(NatDrop::Malformed);
    }
    if proto != NatProto::Icmp {
        return Ok(L4Ports::Ports(
            get16(l4, field::SRC_PORT),
            get16(l4, field::DST_PORT),
        ));
    }
    match (way, l4[0]) {
        (Way::Out, ICMP_ECHO_REQUEST) => Ok(L4Ports::Ports(get16(l4, field::ICMP_ECHO_ID), 0)),
        (Way::In, ICMP_ECHO_REPLY) => Ok(L4Ports::Ports(0, get16(l4, field::ICMP_ECHO_ID))),
        (_, ICMP_DST_UNREACHABLE | ICMP_TIME_EXCEEDED | ICMP_PARAM_PROBLEM) => {
            Ok(L4Ports::IcmpError)
        }
        _ => Err(NatDrop::Unsupported),
    }
}

/// Rewrites the IPv4 address at `at` (source or destination) and the
/// header checksum.
fn rewrite_ip_addr(ip: &mut [u8], at: usize, new: u32) {
    let old = get32(ip, at);
    set32(ip, at, new);
    let ck = get16(ip, field::IP_CHECKSUM);
    set16(ip, field::IP_CHECKSUM, checksum::update32(ck, old, new));
}

/// Rewrites a TCP, UDP or ICMP echo packet's NAT-side endpoint: the
/// source outbound, the destination inbound; the echo id both ways.
fn rewrite_endpoint(ip: &mut [u8], h: &Header, proto: NatProto, way: Way, addr: u32, port: u16) {
    let (addr_at, port_at) = match (way, proto) {
        (Way::Out, NatProto::Icmp) => (field::IP_SRC, field::ICMP_ECHO_ID),
        (Way::In, NatProto::Icmp) => (field::IP_DST, field::ICMP_ECHO_ID),
        (Way::Out, _) => (field::IP_SRC, field::SRC_PORT),
        (Way::In, _) => (field::IP_DST, field::DST_PORT),
    };
    let old_addr = get32(ip, addr_at);
    rewrite_ip_addr(ip, addr_at, addr);
    let Some(l4) = ip.get_mut(h.hl..h.end) else {
        return;
    };
    let old_port = get16(l4, port_at);
    set16(l4, port_at, port);
    match proto {
        NatProto::Tcp => {
            let ck = get16(l4, field::TCP_CHECKSUM);
            let ck = checksum::update32(ck, old_addr, addr);
            set16(
                l4,
                field::TCP_CHECKSUM,
                checksum::update16(ck, old_port, port),
            );
        }
        NatProto::Udp => {
            let ck = get16(l4, field::UDP_CHECKSUM);
            if ck != 0 {
                let ck = checksum::update32(ck, old_addr, addr);
                let ck = checksum::update16(ck, old_port, port);
                set16(l4, field::UDP_CHECKSUM, if ck == 0 { 0xffff } else { ck });
            }
        }
        NatProto::Icmp => {
            // No pseudo-header: only the identifier is covered.
            let ck = get16(l4, field::ICMP_CHECKSUM);
            set16(
                l4,
                field::ICMP_CHECKSUM,
                checksum::update16(ck, old_port, port),
            );
        }
    }
}

/// Big-endian reads and writes that do nothing (read 0) out of bounds;
/// every caller has checked the length first, so they never do.
#[inline]
fn get16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_be_bytes([s[0], s[1]]))
}

#[inline]
fn get32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[inline]
fn set16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

#[inline]
fn set32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}
