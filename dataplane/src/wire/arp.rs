//! ARP for IPv4 over Ethernet (RFC 826).
//!
//! Only hardware type Ethernet (1) with 6-byte addresses and protocol type
//! IPv4 (0x0800) with 4-byte addresses is supported; `new_checked` rejects
//! anything else as `Malformed`, so every accessor can use fixed offsets.
//! Bytes after the 28-byte packet (Ethernet padding) are ignored.

use std::net::Ipv4Addr;

use super::ethernet::{Address as EthernetAddress, EtherType};
use super::{read_u16, write_u16, Field, WireError};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// The fixed part before the addresses, enough to read the lengths.
const FIXED_LEN: usize = 8;

mod field {
    use super::Field;

    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// ARP hardware types (IANA "Hardware Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hardware {
    /// 1
    Ethernet,
    /// Any other value.
    Unknown(u16),
}

impl From<u16> for Hardware {
    fn from(value: u16) -> Self {
        match value {
            1 => Hardware::Ethernet,
            other => Hardware::Unknown(other),
        }
    }
}

impl From<Hardware> for u16 {
    fn from(value: Hardware) -> Self {
        match value {
            Hardware::Ethernet => 1,
            Hardware::Unknown(other) => other,
        }
    }
}

/// ARP operation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// 1
    Request,
    /// 2
    Reply,
    /// Any other value (RARP, InARP, ...).
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(value: u16) -> Self {
        match value {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => Operation::Unknown(other),
        }
    }
}

impl From<Operation> for u16 {
    fn from(value: Operation) -> Self {
        match value {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(other) => other,
        }
    }
}

/// A read/write view of an Ethernet/IPv4 ARP packet.
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

    /// In order: `Truncated` if shorter than the 8-byte fixed part;
    /// `Malformed` unless hardware type 1, protocol type 0x0800, hardware
    /// length 6 and protocol length 4; `Truncated` if shorter than 28 bytes.
    pub fn check_len(&self) -> Result<(), WireError> {
        let data = self.buffer.as_ref();
        if data.len() < FIXED_LEN {
            return Err(WireError::Truncated);
        }
        if self.hardware_type() != Hardware::Ethernet
            || self.protocol_type() != EtherType::Ipv4
            || self.hardware_len() != 6
            || self.protocol_len() != 4
        {
            return Err(WireError::Malformed);
        }
        if data.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Always 28: ARP has no payload.
    pub fn header_len(&self) -> usize {
        PACKET_LEN
    }

    /// Hardware type.
    pub fn hardware_type(&self) -> Hardware {
        Hardware::from(read_u16(self.buffer.as_ref(), field::HTYPE.start))
    }

    /// Protocol type, an EtherType.
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(read_u16(self.buffer.as_ref(), field::PTYPE.start))
    }

    /// Hardware address length (6 for a checked packet).
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length (4 for a checked packet).
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    pub fn operation(&self) -> Operation {
        Operation::from(read_u16(self.buffer.as_ref(), field::OPER.start))
    }

    fn mac_at(&self, range: Field) -> EthernetAddress {
        let mut a = [0u8; 6];
        a.copy_from_slice(&self.buffer.as_ref()[range]);
        EthernetAddress(a)
    }

    fn ip_at(&self, range: Field) -> Ipv4Addr {
        let mut a = [0u8; 4];
        a.copy_from_slice(&self.buffer.as_ref()[range]);
        Ipv4Addr::from(a)
    }

    /// Sender hardware address.
    pub fn sender_hardware_addr(&self) -> EthernetAddress {
        self.mac_at(field::SHA)
    }

    /// Sender protocol address.
    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        self.ip_at(field::SPA)
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        self.mac_at(field::THA)
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        self.ip_at(field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: Hardware) {
        write_u16(self.buffer.as_mut(), field::HTYPE.start, value.into());
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        write_u16(self.buffer.as_mut(), field::PTYPE.start, value.into());
    }

    /// Sets the hardware address length. Accessors keep using the fixed
    /// Ethernet/IPv4 offsets regardless.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length (see [`Packet::set_hardware_len`]).
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, value: Operation) {
        write_u16(self.buffer.as_mut(), field::OPER.start, value.into());
    }

    /// Sets the sender hardware address.
    pub fn set_sender_hardware_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&addr.0);
    }

    /// Sets the sender protocol address.
    pub fn set_sender_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&addr.octets());
    }

    /// Sets the target hardware address.
    pub fn set_target_hardware_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&addr.0);
    }

    /// Sets the target protocol address.
    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&addr.octets());
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub operation: Operation,
    pub sender_hardware_addr: EthernetAddress,
    pub sender_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: EthernetAddress,
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Parses a packet (checked again here, so unchecked views are safe).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, WireError> {
        packet.check_len()?;
        Ok(Repr {
            operation: packet.operation(),
            sender_hardware_addr: packet.sender_hardware_addr(),
            sender_protocol_addr: packet.sender_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// Always 28.
    pub fn header_len(&self) -> usize {
        PACKET_LEN
    }

    /// Always 28.
    pub fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes all 28 bytes; `Truncated` if the buffer is shorter.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
    ) -> Result<(), WireError> {
        if packet.buffer.as_ref().len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        packet.set_hardware_type(Hardware::Ethernet);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_sender_hardware_addr(self.sender_hardware_addr);
        packet.set_sender_protocol_addr(self.sender_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{random_buffer, XorShift, ARP_REQUEST, FUZZ_ITERATIONS};
    use super::*;

    fn exercise<T: AsRef<[u8]>>(p: &Packet<T>) -> u64 {
        assert_eq!(p.header_len(), PACKET_LEN);
        u64::from(u16::from(p.hardware_type()))
            + u64::from(u16::from(p.protocol_type()))
            + u64::from(p.hardware_len())
            + u64::from(p.protocol_len())
            + u64::from(u16::from(p.operation()))
            + u64::from(p.sender_hardware_addr().0[5])
            + u64::from(u32::from(p.sender_protocol_addr()))
            + u64::from(p.target_hardware_addr().0[0])
            + u64::from(u32::from(p.target_protocol_addr()))
    }

    #[test]
    fn arp_request_round_trips_through_repr() {
        let arp = &ARP_REQUEST[14..];
        let packet = Packet::new_checked(arp).unwrap();
        assert_eq!(packet.hardware_type(), Hardware::Ethernet);
        assert_eq!(packet.protocol_type(), EtherType::Ipv4);
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(repr.operation, Operation::Request);
        assert_eq!(repr.sender_hardware_addr.to_string(), "08:00:27:a1:b2:c3");
        assert_eq!(repr.sender_protocol_addr, Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(repr.target_hardware_addr, EthernetAddress::UNSPECIFIED);
        assert_eq!(repr.target_protocol_addr, Ipv4Addr::new(192, 168, 1, 1));
        let mut out = [0u8; 28];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(&out[..], &arp[..28]);
    }

    #[test]
    fn reply_is_built_in_place_from_a_request() {
        let mut arp = [0u8; 46];
        arp.copy_from_slice(&ARP_REQUEST[14..]);
        let mine = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
        let mut p = Packet::new_checked(&mut arp[..]).unwrap();
        let asker = (p.sender_hardware_addr(), p.sender_protocol_addr());
        let wanted = p.target_protocol_addr();
        p.set_operation(Operation::Reply);
        p.set_target_hardware_addr(asker.0);
        p.set_target_protocol_addr(asker.1);
        p.set_sender_hardware_addr(mine);
        p.set_sender_protocol_addr(wanted);
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(
            repr,
            Repr {
                operation: Operation::Reply,
                sender_hardware_addr: mine,
                sender_protocol_addr: Ipv4Addr::new(192, 168, 1, 1),
                target_hardware_addr: EthernetAddress([0x08, 0x00, 0x27, 0xa1, 0xb2, 0xc3]),
                target_protocol_addr: Ipv4Addr::new(192, 168, 1, 100),
            }
        );
        assert_eq!(&arp[6..8], &[0, 2]);
    }

    #[test]
    fn wrong_types_or_lengths_are_malformed() {
        let check = |b: &[u8]| Packet::new_checked(b).map(|_| ());
        let good = &ARP_REQUEST[14..42];
        assert_eq!(check(good), Ok(()));
        let patched = |at: usize, v: u8| {
            let mut b = [0u8; 28];
            b.copy_from_slice(good);
            b[at] = v;
            check(&b)
        };
        assert_eq!(patched(4, 8), Err(WireError::Malformed)); // hlen 8
        assert_eq!(patched(5, 16), Err(WireError::Malformed)); // plen 16
        assert_eq!(patched(1, 6), Err(WireError::Malformed)); // htype IEEE 802
        assert_eq!(patched(2, 0x86), Err(WireError::Malformed)); // ptype 0x8600
                                                                 // The lengths are checked before the total length.
        let mut short = [0u8; 10];
        short.copy_from_slice(&good[..10]);
        short[5] = 16;
        assert_eq!(check(&short), Err(WireError::Malformed));
        assert_eq!(check(&good[..7]), Err(WireError::Truncated));
        assert_eq!(check(&good[..27]), Err(WireError::Truncated));
    }

    #[test]
    fn codes_round_trip_every_value() {
        for n in [0u16, 1, 2, 3, 4, 8, 0xffff] {
            assert_eq!(u16::from(Operation::from(n)), n);
            assert_eq!(u16::from(Hardware::from(n)), n);
        }
        assert_eq!(Operation::from(2), Operation::Reply);
        assert_eq!(Operation::from(3), Operation::Unknown(3));
    }

    #[test]
    fn truncated_prefixes_are_rejected_or_fully_readable() {
        let arp = &ARP_REQUEST[14..];
        for len in 0..=arp.len() {
            match Packet::new_checked(&arp[..len]) {
                Ok(p) => {
                    assert!(len >= PACKET_LEN);
                    assert!(exercise(&p) > 0);
                }
                Err(e) => {
                    assert!(len < PACKET_LEN);
                    assert_eq!(e, WireError::Truncated);
                }
            }
        }
    }

    #[test]
    fn random_buffers_never_make_an_accessor_or_setter_panic() {
        let mut rng = XorShift(0x0826);
        let mut buf = [0u8; 128];
        let mut accepted = 0;
        for _ in 0..FUZZ_ITERATIONS {
            let len = random_buffer(&mut rng, &mut buf);
            if len >= 8 && rng.below(4) != 0 {
                buf[..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
            }
            let Ok(p) = Packet::new_checked(&buf[..len]) else {
                continue;
            };
            accepted += 1;
            exercise(&p);
            let repr = Repr::parse(&p).unwrap();
            let mut out = [0u8; 28];
            repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
            assert_eq!(&out[..], &buf[..28]);

            let mut copy = buf;
            let mut m = Packet::new_checked(&mut copy[..len]).unwrap();
            m.set_hardware_len(rng.next_u8());
            m.set_protocol_len(rng.next_u8());
            m.set_hardware_type(Hardware::from(rng.next_u16()));
            m.set_protocol_type(EtherType::from(rng.next_u16()));
            m.set_operation(Operation::from(rng.next_u16()));
            m.set_sender_hardware_addr(EthernetAddress::BROADCAST);
            m.set_sender_protocol_addr(Ipv4Addr::from(rng.next_u32()));
            m.set_target_hardware_addr(EthernetAddress::UNSPECIFIED);
            m.set_target_protocol_addr(Ipv4Addr::BROADCAST);
            exercise(&m);
        }
        assert!(accepted > 5_000, "accepted {accepted}");
    }
}
