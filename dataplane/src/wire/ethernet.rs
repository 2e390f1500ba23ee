//! Ethernet II frames (IEEE 802.3 clause 3.2, with the EtherType
//! interpretation of the length/type field) and IEEE 802.1Q VLAN tags,
//! including 802.1ad (QinQ) double tagging.
//!
//! A tag is recognised by a TPID of 0x8100 (802.1Q C-tag) or 0x88a8 (802.1ad
//! S-tag) in the EtherType position, in either the outer or the inner slot.
//! At most two stacked tags are parsed: after a second tag the frame's
//! payload begins, whatever its EtherType says (a third tag then shows up as
//! `payload_ethertype() == EtherType::Vlan`, for the caller to drop).

use core::fmt;
use core::str::FromStr;

use super::{read_u16, write_u16, Field, WireError};

/// Length of an untagged Ethernet header: two addresses and the EtherType.
pub const HEADER_LEN: usize = 14;
/// Length of one 802.1Q / 802.1ad tag (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;

/// A 48-bit IEEE 802 MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Address = Address([0xff; 6]);
    /// The all-zero address, used e.g. as the ARP request target.
    pub const UNSPECIFIED: Address = Address([0; 6]);

    /// The six octets in transmission order.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Whether this is ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the I/G bit (least significant bit of the first octet) is
    /// set. Broadcast is a multicast address.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this is an individual (non-group) address.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Whether the U/L bit is set (a locally administered address).
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// The string given to [`Address::from_str`] is not `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseAddressError;

impl fmt::Display for ParseAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid MAC address, expected six colon-separated hex octets")
    }
}

impl std::error::Error for ParseAddressError {}

impl FromStr for Address {
    type Err = ParseAddressError;

    /// Accepts exactly six colon-separated groups of two hex digits, in
    /// either case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut groups = s.split(':');
        for octet in out.iter_mut() {
            let group = groups.next().ok_or(ParseAddressError)?;
            if group.len() != 2 || !group.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ParseAddressError);
            }
            *octet = u8::from_str_radix(group, 16).map_err(|_| ParseAddressError)?;
        }
        if groups.next().is_some() {
            return Err(ParseAddressError);
        }
        Ok(Address(out))
    }
}

/// EtherType values (IEEE registry) that the data plane dispatches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// IPv4 (0x0800).
    Ipv4,
    /// ARP (0x0806).
    Arp,
    /// IPv6 (0x86dd).
    Ipv6,
    /// IEEE 802.1Q customer VLAN tag (0x8100).
    Vlan,
    /// IEEE 802.1ad service VLAN tag, "QinQ" (0x88a8).
    QinQ,
    /// Any other value.
    Unknown(u16),
}

impl EtherType {
    /// Whether this value announces a VLAN tag (0x8100 or 0x88a8).
    pub fn is_vlan_tag(self) -> bool {
        matches!(self, EtherType::Vlan | EtherType::QinQ)
    }
}

impl From<u16> for EtherType {
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            0x88a8 => EtherType::QinQ,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Unknown(other) => other,
        }
    }
}

/// The Tag Control Information of an 802.1Q tag (IEEE 802.1Q clause 9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    /// Priority Code Point, 0..=7.
    pub pcp: u8,
    /// Drop Eligible Indicator.
    pub dei: bool,
    /// VLAN identifier, 0..=4095.
    pub vid: u16,
}

impl VlanTag {
    /// Splits a raw 16-bit TCI.
    pub const fn from_tci(tci: u16) -> VlanTag {
        VlanTag {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }

    /// The raw 16-bit TCI; out-of-range `pcp`/`vid` bits are masked off.
    pub const fn tci(&self) -> u16 {
        ((self.pcp as u16 & 0x7) << 13) | ((self.dei as u16) << 12) | (self.vid & 0x0fff)
    }

    /// Whether `pcp` and `vid` fit their 3- and 12-bit fields.
    pub const fn is_valid(&self) -> bool {
        self.pcp <= 7 && self.vid <= 0x0fff
    }
}

mod field {
    use super::Field;

    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    /// The EtherType, or the TPID of the outer tag.
    pub const ETHERTYPE: Field = 12..14;
    pub const OUTER_TCI: Field = 14..16;
    /// The EtherType after the outer tag, or the TPID of the inner tag.
    pub const OUTER_NEXT: Field = 16..18;
    pub const INNER_TCI: Field = 18..20;
    pub const INNER_NEXT: Field = 20..22;
}

/// A read/write view of an Ethernet II frame, optionally VLAN-tagged.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it; accessors may panic on short
    /// buffers. Prefer [`Frame::new_checked`].
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer after [`Frame::check_len`].
    pub fn new_checked(buffer: T) -> Result<Frame<T>, WireError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// `Truncated` if the buffer is shorter than 14 bytes, or than the 18 or
    /// 22 bytes that one or two announced VLAN tags need.
    pub fn check_len(&self) -> Result<(), WireError> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if !EtherType::from(read_u16(data, field::ETHERTYPE.start)).is_vlan_tag() {
            return Ok(());
        }
        if data.len() < field::OUTER_NEXT.end {
            return Err(WireError::Truncated);
        }
        if EtherType::from(read_u16(data, field::OUTER_NEXT.start)).is_vlan_tag()
            && data.len() < field::INNER_NEXT.end
        {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Number of VLAN tags (0, 1 or 2). Only tags that fit in the buffer
    /// count, which keeps every accessor in bounds even after a setter
    /// rewrote the EtherType of a checked frame.
    fn tag_count(&self) -> usize {
        let data = self.buffer.as_ref();
        if data.len() < field::OUTER_NEXT.end
            || !EtherType::from(read_u16(data, field::ETHERTYPE.start)).is_vlan_tag()
        {
            0
        } else if data.len() < field::INNER_NEXT.end
            || !EtherType::from(read_u16(data, field::OUTER_NEXT.start)).is_vlan_tag()
        {
            1
        } else {
            2
        }
    }

    /// Header length including VLAN tags: 14, 18 or 22.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + VLAN_TAG_LEN * self.tag_count()
    }

    /// Destination MAC address.
    pub fn dst_addr(&self) -> Address {
        let mut a = [0u8; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        Address(a)
    }

    /// Source MAC address.
    pub fn src_addr(&self) -> Address {
        let mut a = [0u8; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        Address(a)
    }

    /// The raw EtherType field at bytes 12..14: the TPID if tagged.
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(read_u16(self.buffer.as_ref(), field::ETHERTYPE.start))
    }

    /// The outer VLAN tag (802.1Q or 802.1ad), if any.
    pub fn vlan(&self) -> Option<VlanTag> {
        (self.tag_count() >= 1)
            .then(|| VlanTag::from_tci(read_u16(self.buffer.as_ref(), field::OUTER_TCI.start)))
    }

    /// The inner VLAN tag of a double-tagged (QinQ) frame, if any.
    pub fn inner_vlan(&self) -> Option<VlanTag> {
        (self.tag_count() == 2)
            .then(|| VlanTag::from_tci(read_u16(self.buffer.as_ref(), field::INNER_TCI.start)))
    }

    /// The EtherType of the payload, after up to two VLAN tags.
    pub fn payload_ethertype(&self) -> EtherType {
        let at = self.header_len() - 2;
        EtherType::from(read_u16(self.buffer.as_ref(), at))
    }

    /// The bytes after the Ethernet header and tags, including any padding
    /// (Ethernet has no length field; IPv4/IPv6 views trim padding).
    pub fn payload(&self) -> &[u8] {
        let hl = self.header_len();
        &self.buffer.as_ref()[hl..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.0);
    }

    /// Sets the source MAC address.
    pub fn set_src_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.0);
    }

    /// Sets the raw EtherType field at bytes 12..14 (the outer TPID if the
    /// frame is tagged). This can change `header_len()`.
    pub fn set_ethertype(&mut self, value: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE.start, value.into());
    }

    /// Rewrites the TCI of the outer tag. Tags cannot be inserted in place:
    /// `Malformed` if the frame is untagged, or if `tag` is out of range.
    pub fn set_vlan(&mut self, tag: VlanTag) -> Result<(), WireError> {
        if self.tag_count() == 0 || !tag.is_valid() {
            return Err(WireError::Malformed);
        }
        write_u16(self.buffer.as_mut(), field::OUTER_TCI.start, tag.tci());
        Ok(())
    }

    /// Rewrites the TCI of the inner tag; `Malformed` unless double-tagged
    /// and `tag` is in range.
    pub fn set_inner_vlan(&mut self, tag: VlanTag) -> Result<(), WireError> {
        if self.tag_count() != 2 || !tag.is_valid() {
            return Err(WireError::Malformed);
        }
        write_u16(self.buffer.as_mut(), field::INNER_TCI.start, tag.tci());
        Ok(())
    }

    /// Sets the EtherType that follows the last tag (the same field as
    /// `set_ethertype` on an untagged frame).
    pub fn set_payload_ethertype(&mut self, value: EtherType) {
        let at = self.header_len() - 2;
        write_u16(self.buffer.as_mut(), at, value.into());
    }

    /// Mutable access to the payload, see [`Frame::payload`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// An Ethernet header with at most one 802.1Q tag.
///
/// `ethertype` is the payload EtherType (after the tag, as
/// [`Frame::payload_ethertype`]) and `vlan` the tag, as [`Frame::vlan`].
/// `emit` writes the tag with TPID 0x8100. Because `Repr` cannot carry a
/// second tag or the 0x88a8 TPID, [`Repr::parse`] returns `Malformed` for
/// 802.1ad or double-tagged frames instead of silently re-emitting a
/// different header; use the [`Frame`] accessors for those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_addr: Address,
    pub dst_addr: Address,
    pub ethertype: EtherType,
    pub vlan: Option<VlanTag>,
}

impl Repr {
    /// Parses a frame (checked again here, so unchecked views are safe).
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr, WireError> {
        frame.check_len()?;
        let vlan = match frame.ethertype() {
            EtherType::QinQ => return Err(WireError::Malformed),
            EtherType::Vlan if frame.tag_count() == 2 => return Err(WireError::Malformed),
            _ => frame.vlan(),
        };
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.payload_ethertype(),
            vlan,
        })
    }

    /// 14, or 18 with a tag.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + if self.vlan.is_some() { VLAN_TAG_LEN } else { 0 }
    }

    /// Same as [`Repr::header_len`]: the payload is not part of the repr.
    pub fn buffer_len(&self) -> usize {
        self.header_len()
    }

    /// Writes the header into the start of `frame`; the payload is left
    /// alone. `Truncated` if the buffer is shorter than `header_len()`,
    /// `Malformed` if the tag is out of range or `ethertype` is itself a
    /// tag TPID (which would make the emitted frame parse differently).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        frame: &mut Frame<T>,
    ) -> Result<(), WireError> {
        if self.ethertype.is_vlan_tag() || self.vlan.is_some_and(|t| !t.is_valid()) {
            return Err(WireError::Malformed);
        }
        if frame.buffer.as_ref().len() < self.header_len() {
            return Err(WireError::Truncated);
        }
        let data = frame.buffer.as_mut();
        data[field::DST].copy_from_slice(&self.dst_addr.0);
        data[field::SRC].copy_from_slice(&self.src_addr.0);
        match self.vlan {
            Some(tag) => {
                write_u16(data, field::ETHERTYPE.start, EtherType::Vlan.into());
                write_u16(data, field::OUTER_TCI.start, tag.tci());
                write_u16(data, field::OUTER_NEXT.start, self.ethertype.into());
            }
            None => write_u16(data, field::ETHERTYPE.start, self.ethertype.into()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{
        random_buffer, XorShift, ARP_REQUEST, FUZZ_ITERATIONS, PING_REQUEST,
    };
    use super::*;

    /// PING_REQUEST with an 802.1Q tag (PCP 5, DEI 0, VID 100) inserted.
    fn tagged_ping() -> [u8; 94] {
        let mut out = [0u8; 94];
        out[..12].copy_from_slice(&PING_REQUEST[..12]);
        out[12..16].copy_from_slice(&[0x81, 0x00, 0xa0, 0x64]);
        out[16..].copy_from_slice(&PING_REQUEST[12..]);
        out
    }

    /// PING_REQUEST with an S-tag (VID 300, DEI 1) and a C-tag (PCP 3,
    /// VID 42).
    fn qinq_ping() -> [u8; 98] {
        let mut out = [0u8; 98];
        out[..12].copy_from_slice(&PING_REQUEST[..12]);
        out[12..20].copy_from_slice(&[0x88, 0xa8, 0x11, 0x2c, 0x81, 0x00, 0x60, 0x2a]);
        out[20..].copy_from_slice(&PING_REQUEST[12..]);
        out
    }

    /// Calls every accessor and folds the results so none is optimised out.
    fn exercise<T: AsRef<[u8]>>(f: &Frame<T>) -> u64 {
        let hl = f.header_len();
        assert!(hl == 14 || hl == 18 || hl == 22);
        assert!(hl <= f.buffer.as_ref().len());
        assert_eq!(f.payload().len(), f.buffer.as_ref().len() - hl);
        assert_eq!(f.vlan().is_some(), hl >= 18);
        assert_eq!(f.inner_vlan().is_some(), hl == 22);
        u64::from(f.dst_addr().0[0])
            + u64::from(f.src_addr().0[5])
            + u64::from(u16::from(f.ethertype()))
            + u64::from(u16::from(f.payload_ethertype()))
            + f.vlan().map_or(0, |t| u64::from(t.tci()))
            + f.inner_vlan().map_or(0, |t| u64::from(t.tci()))
    }

    fn mutate<T: AsRef<[u8]> + AsMut<[u8]>>(f: &mut Frame<T>, rng: &mut XorShift) {
        f.set_dst_addr(Address([rng.next_u8(); 6]));
        f.set_src_addr(Address::BROADCAST);
        let tag = VlanTag::from_tci(rng.next_u16());
        let _ = f.set_vlan(tag);
        let _ = f.set_inner_vlan(tag);
        f.set_payload_ethertype(EtherType::from(rng.next_u16()));
        f.set_ethertype(if rng.below(2) == 0 {
            EtherType::Vlan
        } else {
            EtherType::Ipv6
        });
        f.payload_mut().fill(0xa5);
    }

    #[test]
    fn untagged_arp_frame_round_trips_through_repr() {
        let frame = Frame::new_checked(&ARP_REQUEST[..]).unwrap();
        assert_eq!(frame.header_len(), 14);
        assert_eq!(frame.vlan(), None);
        let repr = Repr::parse(&frame).unwrap();
        assert_eq!(repr.dst_addr, Address::BROADCAST);
        assert_eq!(repr.src_addr, Address([0x08, 0x00, 0x27, 0xa1, 0xb2, 0xc3]));
        assert_eq!(repr.ethertype, EtherType::Arp);
        assert_eq!(repr.vlan, None);
        assert_eq!(repr.buffer_len(), 14);
        assert_eq!(frame.payload(), &ARP_REQUEST[14..]);

        let mut out = [0u8; 14];
        repr.emit(&mut Frame::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, ARP_REQUEST[..14]);
    }

    #[test]
    fn single_tagged_frame_round_trips_through_repr() {
        let bytes = tagged_ping();
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.ethertype(), EtherType::Vlan);
        assert_eq!(frame.header_len(), 18);
        assert_eq!(frame.payload_ethertype(), EtherType::Ipv4);
        assert_eq!(frame.payload(), &PING_REQUEST[14..]);
        let repr = Repr::parse(&frame).unwrap();
        assert_eq!(
            repr.vlan,
            Some(VlanTag {
                pcp: 5,
                dei: false,
                vid: 100
            })
        );
        assert_eq!(repr.ethertype, EtherType::Ipv4);
        assert_eq!(repr.dst_addr.to_string(), "52:54:00:12:35:02");
        let mut out = [0u8; 94];
        out[18..].copy_from_slice(&PING_REQUEST[14..]);
        repr.emit(&mut Frame::new_unchecked(&mut out)).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn qinq_frame_exposes_both_tags_and_the_inner_ethertype() {
        let bytes = qinq_ping();
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.ethertype(), EtherType::QinQ);
        assert_eq!(frame.header_len(), 22);
        assert_eq!(
            frame.vlan(),
            Some(VlanTag {
                pcp: 0,
                dei: true,
                vid: 300
            })
        );
        assert_eq!(
            frame.inner_vlan(),
            Some(VlanTag {
                pcp: 3,
                dei: false,
                vid: 42
            })
        );
        assert_eq!(frame.payload_ethertype(), EtherType::Ipv4);
        assert_eq!(frame.payload(), &PING_REQUEST[14..]);
        // Repr cannot represent it exactly, so it refuses.
        assert_eq!(Repr::parse(&frame), Err(WireError::Malformed));
    }

    #[test]
    fn setters_rewrite_tags_and_addresses_in_place() {
        let mut bytes = qinq_ping();
        let mut frame = Frame::new_checked(&mut bytes[..]).unwrap();
        let tag = VlanTag {
            pcp: 7,
            dei: false,
            vid: 4094,
        };
        frame.set_vlan(tag).unwrap();
        frame.set_inner_vlan(VlanTag::default()).unwrap();
        frame.set_payload_ethertype(EtherType::Ipv6);
        frame.set_dst_addr("02:00:00:00:00:01".parse().unwrap());
        assert_eq!(
            frame.set_vlan(VlanTag {
                pcp: 8,
                dei: false,
                vid: 1
            }),
            Err(WireError::Malformed)
        );
        assert_eq!(frame.vlan(), Some(tag));
        assert_eq!(frame.inner_vlan(), Some(VlanTag::default()));
        assert_eq!(frame.payload_ethertype(), EtherType::Ipv6);
        assert_eq!(&bytes[..6], &[0x02, 0, 0, 0, 0, 1]);
        assert_eq!(
            &bytes[12..22],
            &[0x88, 0xa8, 0xef, 0xfe, 0x81, 0x00, 0, 0, 0x86, 0xdd]
        );

        let mut untagged = ARP_REQUEST;
        let mut frame = Frame::new_checked(&mut untagged[..]).unwrap();
        assert_eq!(frame.set_vlan(tag), Err(WireError::Malformed));
        assert_eq!(frame.set_inner_vlan(tag), Err(WireError::Malformed));
    }

    #[test]
    fn truncated_prefixes_are_rejected_or_fully_readable() {
        let frames: [&[u8]; 3] = [&ARP_REQUEST, &tagged_ping(), &qinq_ping()];
        for bytes in frames {
            let full_hl = Frame::new_checked(bytes).unwrap().header_len();
            for len in 0..=bytes.len() {
                match Frame::new_checked(&bytes[..len]) {
                    Ok(f) => {
                        assert!(len >= full_hl, "accepted {len} < {full_hl}");
                        assert_eq!(f.header_len(), full_hl);
                        exercise(&f);
                    }
                    Err(e) => {
                        assert!(len < full_hl, "rejected {len}");
                        assert_eq!(e, WireError::Truncated);
                    }
                }
            }
        }
    }

    #[test]
    fn random_buffers_never_make_an_accessor_or_setter_panic() {
        let mut rng = XorShift(0xe7e7);
        let mut buf = [0u8; 128];
        let mut accepted = 0;
        let mut tagged = 0;
        for _ in 0..FUZZ_ITERATIONS {
            let len = random_buffer(&mut rng, &mut buf);
            // Make tags likely so the tag paths get exercised.
            for at in [12, 16] {
                if len >= at + 2 && rng.below(2) == 0 {
                    buf[at..at + 2].copy_from_slice(&[0x81, 0x00]);
                }
            }
            let Ok(f) = Frame::new_checked(&buf[..len]) else {
                assert!(len < 22);
                continue;
            };
            accepted += 1;
            exercise(&f);
            if let Ok(repr) = Repr::parse(&f) {
                let mut out = [0u8; 18];
                let mut emitted = Frame::new_unchecked(&mut out[..repr.buffer_len()]);
                if repr.emit(&mut emitted).is_ok() {
                    assert_eq!(Repr::parse(&emitted), Ok(repr));
                }
            }
            if f.vlan().is_some() {
                tagged += 1;
            }
            let mut copy = buf;
            let mut m = Frame::new_checked(&mut copy[..len]).unwrap();
            mutate(&mut m, &mut rng);
            exercise(&m);
        }
        assert!(accepted > 10_000, "accepted {accepted}");
        assert!(tagged > 3_000, "tagged {tagged}");
    }

    #[test]
    fn address_classification_follows_the_ig_bit() {
        assert!(Address::BROADCAST.is_broadcast());
        assert!(Address::BROADCAST.is_multicast());
        let mcast = Address([0x33, 0x33, 0xff, 0, 0, 1]);
        assert!(mcast.is_multicast() && !mcast.is_broadcast() && !mcast.is_unicast());
        let ucast = Address([0x08, 0x00, 0x27, 0xa1, 0xb2, 0xc3]);
        assert!(ucast.is_unicast() && !ucast.is_multicast() && !ucast.is_local());
        assert!(Address([0x02, 0, 0, 0, 0, 1]).is_local());
    }

    #[test]
    fn address_displays_and_parses_colon_hex() {
        let a = Address([0x08, 0x00, 0x27, 0xa1, 0xb2, 0xc3]);
        assert_eq!(a.to_string(), "08:00:27:a1:b2:c3");
        assert_eq!("08:00:27:A1:b2:C3".parse::<Address>(), Ok(a));
        assert_eq!(a.to_string().parse::<Address>(), Ok(a));
        for bad in [
            "",
            "08:00:27:a1:b2",
            "08:00:27:a1:b2:c3:00",
            "08:00:27:a1:b2:c",
            "08:00:27:a1:b2:c3:",
            "08-00-27-a1-b2-c3",
            "08:00:27:a1:b2:+3",
            "08:00:27:a1:b2:g3",
            "008:00:27:a1:b2:c3",
        ] {
            assert_eq!(bad.parse::<Address>(), Err(ParseAddressError), "{bad:?}");
        }
        assert!(!ParseAddressError.to_string().is_empty());
    }

    #[test]
    fn ethertype_round_trips_every_value() {
        for v in [0u16, 0x0800, 0x0806, 0x86dd, 0x8100, 0x88a8, 0x9100, 0xffff] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
        assert_eq!(EtherType::from(0x88a8), EtherType::QinQ);
        assert_eq!(EtherType::from(0x9100), EtherType::Unknown(0x9100));
    }

    #[test]
    fn vlan_tag_tci_round_trips() {
        for tci in [0u16, 0x0001, 0x0fff, 0x1000, 0xe000, 0xffff, 0xa064] {
            assert_eq!(VlanTag::from_tci(tci).tci(), tci);
        }
    }

    #[test]
    fn emit_rejects_short_buffers_and_bad_values() {
        let repr = Repr {
            src_addr: Address::UNSPECIFIED,
            dst_addr: Address::BROADCAST,
            ethertype: EtherType::Ipv4,
            vlan: Some(VlanTag::default()),
        };
        let mut short = [0u8; 17];
        assert_eq!(
            repr.emit(&mut Frame::new_unchecked(&mut short[..])),
            Err(WireError::Truncated)
        );
        let mut buf = [0u8; 18];
        let bad_vid = Repr {
            vlan: Some(VlanTag {
                pcp: 0,
                dei: false,
                vid: 4096,
            }),
            ..repr
        };
        assert_eq!(
            bad_vid.emit(&mut Frame::new_unchecked(&mut buf[..])),
            Err(WireError::Malformed)
        );
        let tag_as_payload = Repr {
            ethertype: EtherType::QinQ,
            ..repr
        };
        assert_eq!(
            tag_as_payload.emit(&mut Frame::new_unchecked(&mut buf[..])),
            Err(WireError::Malformed)
        );
        assert_eq!(buf, [0u8; 18], "failed emit must not write");
    }
}
