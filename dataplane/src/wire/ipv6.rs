//! IPv6 fixed headers (RFC 8200 section 3).
//!
//! Only the 40-byte fixed header is parsed. Extension headers are not
//! walked: [`Packet::next_header`] is the raw Next Header field (possibly
//! `HopByHop`, `Ipv6Frag`, ...) and [`Packet::payload`] starts right after
//! the fixed header, so extension headers are part of the payload. Jumbograms
//! (RFC 2675, Payload Length 0 with a Jumbo Payload option) are not
//! supported: their payload reads as empty.

use std::net::Ipv6Addr;

use super::{clamp, read_u16, read_u32, write_u16, write_u32, Field, IpProtocol, WireError};

/// An IPv6 address.
pub type Address = Ipv6Addr;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

mod field {
    use super::Field;

    /// Version (4 bits), Traffic Class (8 bits), Flow Label (20 bits).
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn addr_at(data: &[u8], range: Field) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&data[range]);
    Ipv6Addr::from(octets)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic on short
    /// buffers. Prefer [`Packet::new_checked`].
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer is shorter than 40 bytes or than
    /// 40 + Payload Length; `Malformed` if the version is not 6. A longer
    /// buffer is fine (link-layer padding).
    pub fn check_len(&self) -> Result<(), WireError> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 6 {
            return Err(WireError::Malformed);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > data.len() {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Always 40: extension headers belong to the payload.
    pub fn header_len(&self) -> usize {
        HEADER_LEN
    }

    fn ver_tc_flow(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW.start)
    }

    /// The version field (6 for a checked packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic Class (DSCP in the upper 6 bits, ECN in the lower 2).
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// Flow Label, 20 bits.
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Payload Length: everything after the fixed header.
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The raw Next Header field (extension headers are not followed).
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Hop Limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Address {
        addr_at(self.buffer.as_ref(), field::SRC_ADDR)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Address {
        addr_at(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// The payload, bounded by Payload Length (not by the buffer).
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(
            data.len(),
            HEADER_LEN,
            HEADER_LEN + usize::from(self.payload_len()),
        )]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_ver_tc_flow(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::VER_TC_FLOW.start, value);
    }

    /// Sets the version nibble.
    pub fn set_version(&mut self, version: u8) {
        let v = (self.ver_tc_flow() & 0x0fff_ffff) | (u32::from(version & 0x0f) << 28);
        self.set_ver_tc_flow(v);
    }

    /// Sets Traffic Class.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let v = (self.ver_tc_flow() & 0xf00f_ffff) | (u32::from(tc) << 20);
        self.set_ver_tc_flow(v);
    }

    /// Sets the Flow Label (masked to 20 bits).
    pub fn set_flow_label(&mut self, label: u32) {
        let v = (self.ver_tc_flow() & 0xfff0_0000) | (label & 0x000f_ffff);
        self.set_ver_tc_flow(v);
    }

    /// Sets Payload Length.
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    /// Sets Next Header.
    pub fn set_next_header(&mut self, next_header: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = next_header.into();
    }

    /// Sets Hop Limit.
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Forwarding step: `None` (packet untouched) if Hop Limit <= 1,
    /// otherwise decrements it and returns the new value. IPv6 has no header
    /// checksum to patch.
    pub fn decrement_hop_limit(&mut self) -> Option<u8> {
        let hop_limit = self.hop_limit();
        if hop_limit <= 1 {
            return None;
        }
        self.set_hop_limit(hop_limit - 1);
        Some(hop_limit - 1)
    }

    /// Mutable access to the payload, see [`Packet::payload`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        let data = self.buffer.as_mut();
        let range = clamp(data.len(), HEADER_LEN, end);
        &mut data[range]
    }
}

/// The IPv6 fixed header. `next_header` and `payload_len` cover whatever
/// follows, extension headers included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_addr: Address,
    pub dst_addr: Address,
    pub next_header: IpProtocol,
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// 20-bit flow label.
    pub flow_label: u32,
}

impl Repr {
    /// Parses a packet (checked again here, so unchecked views are safe).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, WireError> {
        packet.check_len()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Always 40.
    pub fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the 40-byte header into the start of `packet`, leaving the
    /// payload alone. `Truncated` if the buffer is shorter than 40 bytes;
    /// `Malformed` if `payload_len` exceeds 65535 or `flow_label` 20 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
    ) -> Result<(), WireError> {
        let len = u16::try_from(self.payload_len).map_err(|_| WireError::Malformed)?;
        if self.flow_label > 0x000f_ffff {
            return Err(WireError::Malformed);
        }
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        packet.set_ver_tc_flow((6 << 28) | (u32::from(self.traffic_class) << 20) | self.flow_label);
        packet.set_payload_len(len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{
        random_buffer, XorShift, FUZZ_ITERATIONS, NEIGHBOR_SOLICIT, UDP6,
    };
    use super::*;

    fn exercise<T: AsRef<[u8]>>(p: &Packet<T>) -> u64 {
        assert!(p.payload().len() <= p.buffer.as_ref().len().saturating_sub(HEADER_LEN));
        assert!(p.flow_label() <= 0x000f_ffff);
        assert_eq!(p.header_len(), 40);
        u64::from(p.version())
            + u64::from(p.traffic_class())
            + u64::from(p.flow_label())
            + u64::from(p.payload_len())
            + u64::from(u8::from(p.next_header()))
            + u64::from(p.hop_limit())
            + (u128::from(p.src_addr()) as u64 >> 16)
            + (u128::from(p.dst_addr()) as u64 >> 16)
            + p.payload().len() as u64
    }

    #[test]
    fn udp6_header_round_trips_through_repr() {
        let packet = Packet::new_checked(&UDP6[..]).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr {
                src_addr: "2001:db8::1".parse().unwrap(),
                dst_addr: "2001:db8:0:1::2".parse().unwrap(),
                next_header: IpProtocol::Udp,
                payload_len: 16,
                hop_limit: 64,
                traffic_class: 0xb8,
                flow_label: 0x12345,
            }
        );
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.payload(), &UDP6[40..]);
        let mut out = [0u8; 56];
        out[40..].copy_from_slice(packet.payload());
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, UDP6);
    }

    #[test]
    fn neighbor_solicit_header_round_trips_through_repr() {
        let ip = &NEIGHBOR_SOLICIT[14..];
        let packet = Packet::new_checked(ip).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr.src_addr,
            "fe80::a00:27ff:fea1:b2c3".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(repr.dst_addr, "ff02::1:ff00:1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(repr.next_header, IpProtocol::Icmpv6);
        assert_eq!(repr.payload_len, 32);
        assert_eq!(repr.hop_limit, 255);
        assert_eq!((repr.traffic_class, repr.flow_label), (0, 0));
        let mut out = [0u8; 72];
        out[40..].copy_from_slice(packet.payload());
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(&out[..], ip);
    }

    #[test]
    fn payload_is_bounded_by_payload_len_not_the_buffer() {
        let mut padded = [0u8; 70];
        padded[..56].copy_from_slice(&UDP6);
        let packet = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload(), &UDP6[40..]);
    }

    #[test]
    fn extension_headers_are_left_in_the_payload() {
        let mut bytes = UDP6;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_next_header(IpProtocol::HopByHop);
        assert_eq!(p.next_header(), IpProtocol::HopByHop);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.payload().len(), 16);
    }

    #[test]
    fn setters_keep_neighbouring_bit_fields() {
        let mut bytes = UDP6;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_traffic_class(0x01);
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 0x01, 0x12345)
        );
        p.set_flow_label(0xfff_ffff);
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 0x01, 0xfffff)
        );
        p.set_version(4);
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (4, 0x01, 0xfffff)
        );
        assert_eq!(&bytes[..4], &[0x40, 0x1f, 0xff, 0xff]);
    }

    #[test]
    fn decrement_hop_limit_stops_at_one() {
        let mut bytes = UDP6;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(p.decrement_hop_limit(), Some(63));
        assert_eq!(p.hop_limit(), 63);
        p.set_hop_limit(2);
        assert_eq!(p.decrement_hop_limit(), Some(1));
        let before = bytes;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(p.decrement_hop_limit(), None);
        p.set_hop_limit(0);
        assert_eq!(p.decrement_hop_limit(), None);
        assert_eq!(p.hop_limit(), 0);
        bytes[7] = 1;
        assert_eq!(bytes, before);
    }

    #[test]
    fn malformed_headers_are_rejected_with_the_exact_error() {
        let check = |b: &[u8]| Packet::new_checked(b).map(|_| ());
        let mut b = UDP6;
        b[0] = 0x4b;
        assert_eq!(check(&b), Err(WireError::Malformed));
        let mut b = UDP6;
        b[4..6].copy_from_slice(&17u16.to_be_bytes());
        assert_eq!(check(&b), Err(WireError::Truncated));
        assert_eq!(check(&UDP6[..39]), Err(WireError::Truncated));
        assert_eq!(check(&UDP6[..55]), Err(WireError::Truncated));
        assert_eq!(check(&UDP6), Ok(()));
    }

    #[test]
    fn truncated_prefixes_are_rejected_or_fully_readable() {
        for ip in [&UDP6[..], &NEIGHBOR_SOLICIT[14..]] {
            for len in 0..=ip.len() {
                match Packet::new_checked(&ip[..len]) {
                    Ok(p) => {
                        assert_eq!(len, ip.len());
                        assert!(exercise(&p) > 0);
                    }
                    Err(e) => assert_eq!(e, WireError::Truncated, "len {len}"),
                }
            }
        }
    }

    #[test]
    fn random_buffers_never_make_an_accessor_or_setter_panic() {
        let mut rng = XorShift(0x6666);
        let mut buf = [0u8; 128];
        let mut accepted = 0;
        for _ in 0..FUZZ_ITERATIONS {
            let len = random_buffer(&mut rng, &mut buf);
            if len >= 40 && rng.below(4) != 0 {
                buf[0] = 0x60 | (buf[0] & 0x0f);
                let plen = rng.below(len - 30) as u16;
                buf[4..6].copy_from_slice(&plen.to_be_bytes());
            }
            let Ok(p) = Packet::new_checked(&buf[..len]) else {
                continue;
            };
            accepted += 1;
            exercise(&p);
            assert_eq!(p.payload().len(), usize::from(p.payload_len()));
            let repr = Repr::parse(&p).unwrap();
            let mut out = [0u8; 128];
            let mut emitted = Packet::new_unchecked(&mut out[..repr.buffer_len()]);
            repr.emit(&mut emitted).unwrap();
            assert_eq!(Repr::parse(&emitted), Ok(repr));

            let mut copy = buf;
            let mut m = Packet::new_checked(&mut copy[..len]).unwrap();
            m.set_payload_len(rng.next_u16());
            m.set_traffic_class(rng.next_u8());
            m.set_flow_label(rng.next_u32());
            m.set_next_header(IpProtocol::from(rng.next_u8()));
            m.set_hop_limit(rng.next_u8());
            let _ = m.decrement_hop_limit();
            m.set_src_addr(Ipv6Addr::from(u128::from(rng.next_u64())));
            m.set_dst_addr(Ipv6Addr::UNSPECIFIED);
            m.payload_mut().fill(3);
            m.set_version(rng.next_u8());
            exercise(&m);
        }
        assert!(accepted > 2_000, "accepted {accepted}");
    }

    #[test]
    fn emit_rejects_short_buffers_and_oversized_values() {
        let repr = Repr::parse(&Packet::new_checked(&UDP6[..]).unwrap()).unwrap();
        let mut short = [0u8; 39];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut short[..])),
            Err(WireError::Truncated)
        );
        let mut buf = [0u8; 40];
        let huge = Repr {
            payload_len: 65_536,
            ..repr
        };
        assert_eq!(
            huge.emit(&mut Packet::new_unchecked(&mut buf[..])),
            Err(WireError::Malformed)
        );
        let label = Repr {
            flow_label: 0x10_0000,
            ..repr
        };
        assert_eq!(
            label.emit(&mut Packet::new_unchecked(&mut buf[..])),
            Err(WireError::Malformed)
        );
        assert_eq!(buf, [0u8; 40]);
    }
}
