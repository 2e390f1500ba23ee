//! UDP datagrams (RFC 768), with the pseudo-header checksum over IPv4
//! (RFC 768) or IPv6 (RFC 8200 section 8.1).
//!
//! Checksum methods are generic over [`PseudoHeader`], i.e. they take either
//! two `Ipv4Addr` or two `Ipv6Addr`. Over IPv4 a zero checksum field means
//! "not computed" and verifies; over IPv6 it is invalid. A computed checksum
//! of zero is transmitted as 0xffff in both cases.

use super::checksum::{self, PseudoHeader};
use super::{clamp, read_u16, write_u16, Field, WireError};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

mod field {
    use super::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

const PROTOCOL: u8 = 17;

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
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

    /// `Truncated` if the buffer is shorter than 8 bytes or than the Length
    /// field; `Malformed` if Length is below 8 (this includes the RFC 2675
    /// jumbogram value 0, which is not supported).
    pub fn check_len(&self) -> Result<(), WireError> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len > data.len() {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Always 8.
    pub fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// The Length field: header plus payload.
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Whether the Length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Header and payload as delimited by Length (clamped to the buffer).
    fn datagram(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(data.len(), 0, usize::from(self.len()))]
    }

    /// The payload, bounded by the Length field.
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(data.len(), HEADER_LEN, usize::from(self.len()))]
    }

    /// Whether the checksum is correct for this pseudo-header. A zero field
    /// verifies over IPv4 (checksum not computed) but not over IPv6.
    pub fn verify_checksum<A: PseudoHeader>(&self, src: A, dst: A) -> bool {
        if self.checksum() == 0 {
            return A::UDP_ZERO_CHECKSUM_ALLOWED;
        }
        let datagram = self.datagram();
        let pseudo = A::pseudo_header_sum(src, dst, PROTOCOL, datagram.len() as u32);
        checksum::with_pseudo_header(pseudo, datagram) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, port);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, port);
    }

    /// Sets the Length field.
    pub fn set_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    /// Sets the checksum field verbatim.
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, checksum);
    }

    /// Computes and writes the checksum over the pseudo-header, header and
    /// payload (as delimited by Length). A result of 0 is written as 0xffff.
    pub fn fill_checksum<A: PseudoHeader>(&mut self, src: A, dst: A) {
        self.set_checksum(0);
        let datagram = self.datagram();
        let pseudo = A::pseudo_header_sum(src, dst, PROTOCOL, datagram.len() as u32);
        let ck = match checksum::with_pseudo_header(pseudo, datagram) {
            0 => 0xffff,
            ck => ck,
        };
        self.set_checksum(ck);
    }

    /// Mutable access to the payload, see [`Packet::payload`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        let data = self.buffer.as_mut();
        let range = clamp(data.len(), HEADER_LEN, len);
        &mut data[range]
    }
}

/// A UDP header. `payload_len` is needed for the Length field and the
/// checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: usize,
}

impl Repr {
    /// Parses a datagram (checked again here, so unchecked views are safe).
    /// The checksum is not verified: call [`Packet::verify_checksum`].
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, WireError> {
        packet.check_len()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// Always 8.
    pub fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload, the Length that `emit` writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header and fills the checksum for `src`/`dst`.
    ///
    /// The payload must already be in the buffer (the in-place data path):
    /// the checksum covers it. If the payload is written afterwards, call
    /// [`Packet::fill_checksum`] again. `Truncated` if the buffer is shorter
    /// than `buffer_len()`, `Malformed` if that exceeds 65535.
    pub fn emit<T, A>(&self, packet: &mut Packet<T>, src: A, dst: A) -> Result<(), WireError>
    where
        T: AsRef<[u8]> + AsMut<[u8]>,
        A: PseudoHeader,
    {
        let len = u16::try_from(self.buffer_len()).map_err(|_| WireError::Malformed)?;
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(WireError::Truncated);
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        packet.fill_checksum(src, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::super::testdata::{random_buffer, XorShift, DNS_QUERY, FUZZ_ITERATIONS, UDP6};
    use super::*;

    const DNS_SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 100);
    const DNS_DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn exercise<T: AsRef<[u8]>>(p: &Packet<T>) -> u64 {
        assert!(p.payload().len() <= p.buffer.as_ref().len().saturating_sub(HEADER_LEN));
        assert_eq!(p.header_len(), 8);
        u64::from(p.src_port())
            + u64::from(p.dst_port())
            + u64::from(p.len())
            + u64::from(p.is_empty())
            + u64::from(p.checksum())
            + p.payload().len() as u64
            + u64::from(p.verify_checksum(DNS_SRC, DNS_DST))
            + u64::from(p.verify_checksum(Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED))
    }

    #[test]
    fn dns_query_round_trips_through_repr() {
        let udp = &DNS_QUERY[34..];
        let packet = Packet::new_checked(udp).unwrap();
        assert!(packet.verify_checksum(DNS_SRC, DNS_DST));
        assert!(!packet.verify_checksum(DNS_DST, Ipv4Addr::new(192, 168, 1, 2)));
        assert_eq!(packet.checksum(), 0x2fd9);
        assert_eq!(packet.len(), 37);
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr {
                src_port: 53412,
                dst_port: 53,
                payload_len: 29
            }
        );
        assert_eq!(&packet.payload()[12..25], b"\x07example\x03com\0");
        let mut out = [0u8; 37];
        out[8..].copy_from_slice(packet.payload());
        repr.emit(&mut Packet::new_unchecked(&mut out[..]), DNS_SRC, DNS_DST)
            .unwrap();
        assert_eq!(&out[..], udp);
    }

    #[test]
    fn udp_over_ipv6_round_trips_through_repr() {
        let (src, dst) = (v6("2001:db8::1"), v6("2001:db8:0:1::2"));
        let udp = &UDP6[40..];
        let packet = Packet::new_checked(udp).unwrap();
        assert!(packet.verify_checksum(src, dst));
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr {
                src_port: 4789,
                dst_port: 51820,
                payload_len: 8
            }
        );
        assert_eq!(packet.payload(), b"patronus");
        let mut out = [0u8; 16];
        let mut p = Packet::new_unchecked(&mut out[..]);
        repr.emit(&mut p, src, dst).unwrap();
        // Payload written after emit: refill the checksum.
        p.payload_mut().copy_from_slice(b"patronus");
        p.fill_checksum(src, dst);
        assert_eq!(&out[..], udp);
    }

    #[test]
    fn zero_checksum_verifies_over_ipv4_only() {
        let mut udp = [0u8; 37];
        udp.copy_from_slice(&DNS_QUERY[34..]);
        udp[6..8].fill(0);
        let p = Packet::new_checked(&udp[..]).unwrap();
        assert!(p.verify_checksum(DNS_SRC, DNS_DST));
        assert!(!p.verify_checksum(v6("::1"), v6("::2")));
    }

    #[test]
    fn computed_zero_checksum_is_sent_as_ffff() {
        // Choose the last two payload bytes so that the checksum computes
        // to zero, then check that 0xffff is written and verifies.
        let mut udp = [0u8; 37];
        udp.copy_from_slice(&DNS_QUERY[34..]);
        let mut bytes = [0u8; 38];
        bytes[..37].copy_from_slice(&udp);
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_len(38);
        p.set_checksum(0);
        p.payload_mut()[28..30].fill(0);
        let pseudo = checksum::pseudo_header_v4(DNS_SRC, DNS_DST, 17, 38);
        let partial = checksum::fold(pseudo + checksum::sum(p.buffer));
        // Adding !partial makes the folded sum 0xffff, i.e. checksum 0.
        p.payload_mut()[28..30].copy_from_slice(&(!partial).to_be_bytes());
        p.fill_checksum(DNS_SRC, DNS_DST);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(DNS_SRC, DNS_DST));
        for (s, d) in [(v6("::1"), v6("::2")), (v6("fe80::1"), v6("ff02::1"))] {
            p.fill_checksum(s, d);
            assert_ne!(p.checksum(), 0);
            assert!(p.verify_checksum(s, d));
        }
    }

    #[test]
    fn payload_is_bounded_by_the_length_field() {
        let mut padded = [0u8; 50];
        padded[..37].copy_from_slice(&DNS_QUERY[34..]);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 29);
        assert!(p.verify_checksum(DNS_SRC, DNS_DST));
    }

    #[test]
    fn malformed_lengths_are_rejected_with_the_exact_error() {
        let check = |b: &[u8]| Packet::new_checked(b).map(|_| ());
        let mut b = [0u8; 37];
        b.copy_from_slice(&DNS_QUERY[34..]);
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(check(&b), Err(WireError::Malformed));
        b[4..6].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(check(&b), Err(WireError::Malformed));
        b[4..6].copy_from_slice(&38u16.to_be_bytes());
        assert_eq!(check(&b), Err(WireError::Truncated));
        b[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert_eq!(check(&b), Ok(()));
        assert_eq!(check(&b[..7]), Err(WireError::Truncated));
    }

    #[test]
    fn truncated_prefixes_are_rejected_or_fully_readable() {
        for udp in [&DNS_QUERY[34..], &UDP6[40..]] {
            for len in 0..=udp.len() {
                match Packet::new_checked(&udp[..len]) {
                    Ok(p) => {
                        assert_eq!(len, udp.len());
                        assert!(exercise(&p) > 0);
                    }
                    Err(e) => assert_eq!(e, WireError::Truncated, "len {len}"),
                }
            }
        }
    }

    #[test]
    fn random_buffers_never_make_an_accessor_or_setter_panic() {
        let mut rng = XorShift(0x1717);
        let mut buf = [0u8; 128];
        let mut accepted = 0;
        for _ in 0..FUZZ_ITERATIONS {
            let len = random_buffer(&mut rng, &mut buf);
            if len >= 8 && rng.below(4) != 0 {
                let l = rng.below(len + 4) as u16;
                buf[4..6].copy_from_slice(&l.to_be_bytes());
            }
            let Ok(p) = Packet::new_checked(&buf[..len]) else {
                continue;
            };
            accepted += 1;
            exercise(&p);
            let repr = Repr::parse(&p).unwrap();
            assert_eq!(repr.buffer_len(), usize::from(p.len()));
            let mut out = [0u8; 128];
            let out = &mut out[..repr.buffer_len()];
            out[8..].copy_from_slice(p.payload());
            let mut emitted = Packet::new_unchecked(&mut *out);
            repr.emit(&mut emitted, DNS_SRC, DNS_DST).unwrap();
            assert!(emitted.verify_checksum(DNS_SRC, DNS_DST));
            assert_eq!(Repr::parse(&emitted), Ok(repr));

            let mut copy = buf;
            let mut m = Packet::new_checked(&mut copy[..len]).unwrap();
            m.set_src_port(rng.next_u16());
            m.set_dst_port(rng.next_u16());
            m.set_len(rng.next_u16());
            m.set_checksum(rng.next_u16());
            m.fill_checksum(v6("::1"), v6("::2"));
            m.payload_mut().fill(9);
            exercise(&m);
        }
        assert!(accepted > 5_000, "accepted {accepted}");
    }

    #[test]
    fn emit_rejects_short_buffers_and_oversized_lengths() {
        let repr = Repr {
            src_port: 1,
            dst_port: 2,
            payload_len: 4,
        };
        let mut short = [0u8; 11];
        let r = repr.emit(&mut Packet::new_unchecked(&mut short[..]), DNS_SRC, DNS_DST);
        assert_eq!(r, Err(WireError::Truncated));
        assert_eq!(short, [0u8; 11]);
        let huge = Repr {
            payload_len: 65_528,
            ..repr
        };
        let mut buf = [0u8; 12];
        let r = huge.emit(&mut Packet::new_unchecked(&mut buf[..]), DNS_SRC, DNS_DST);
        assert_eq!(r, Err(WireError::Malformed));
    }
}
