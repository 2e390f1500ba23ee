//! IPv4 headers (RFC 791 section 3.1), with the header checksum of RFC 791
//! and RFC 1071 and the incremental TTL update of RFC 1624 for forwarding.
//!
//! Options are allowed and exposed as raw bytes ([`Packet::options`]); they
//! are not interpreted. [`Packet::payload`] is bounded by Total Length, so
//! Ethernet padding after the datagram is ignored.

use std::net::Ipv4Addr;

use super::{checksum, clamp, read_u16, write_u16, Field, IpProtocol, WireError};

/// An IPv4 address.
pub type Address = Ipv4Addr;

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Largest header: IHL 15.
pub const MAX_HEADER_LEN: usize = 60;

mod field {
    use super::Field;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    /// TTL and protocol share one 16-bit checksum word.
    pub const TTL_PROTOCOL: Field = 8..10;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
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

    /// Validates the header, in this order:
    ///
    /// * buffer shorter than 20 bytes: `Truncated`;
    /// * version other than 4: `Malformed`;
    /// * IHL below 5: `Malformed`;
    /// * IHL × 4 beyond the buffer: `Truncated`;
    /// * Total Length below IHL × 4: `Malformed` (the header itself says
    ///   something impossible);
    /// * Total Length beyond the buffer: `Truncated` (the datagram was cut).
    ///
    /// A buffer longer than Total Length is fine (link-layer padding).
    pub fn check_len(&self) -> Result<(), WireError> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::Malformed);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if hl > data.len() {
            return Err(WireError::Truncated);
        }
        let total = usize::from(self.total_len());
        if total < hl {
            return Err(WireError::Malformed);
        }
        if total > data.len() {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (4 for a checked packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The raw IHL field, in 32-bit words.
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// Header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// Differentiated Services Code Point (RFC 2474), 0..=63.
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit Congestion Notification bits (RFC 3168), 0..=3.
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Total Length: header plus payload, in bytes.
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// The Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_DF != 0
    }

    /// The More Fragments flag.
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the 13-bit field × 8).
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FRAG_OFFSET_MASK) << 3
    }

    /// Whether this datagram is a fragment (MF set or non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time To Live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Alias of [`Packet::ttl`], named as in IPv6.
    pub fn hop_limit(&self) -> u8 {
        self.ttl()
    }

    /// The Protocol field.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Alias of [`Packet::protocol`], named as in IPv6.
    pub fn next_header(&self) -> IpProtocol {
        self.protocol()
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    pub fn src_addr(&self) -> Address {
        let d = self.buffer.as_ref();
        Ipv4Addr::new(d[12], d[13], d[14], d[15])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Address {
        let d = self.buffer.as_ref();
        Ipv4Addr::new(d[16], d[17], d[18], d[19])
    }

    /// The header bytes, bounded by the buffer.
    fn header(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(data.len(), 0, self.header_len())]
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.header()) == 0
    }

    /// The option bytes between the fixed header and the payload.
    pub fn options(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(data.len(), HEADER_LEN, self.header_len())]
    }

    /// The payload, from the end of the header to Total Length (not to the
    /// end of the buffer).
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let start = self.header_len().max(HEADER_LEN);
        &data[clamp(data.len(), start, usize::from(self.total_len()))]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version nibble.
    pub fn set_version(&mut self, version: u8) {
        let d = self.buffer.as_mut();
        d[field::VER_IHL] = (d[field::VER_IHL] & 0x0f) | (version << 4);
    }

    /// Sets IHL from a header length in bytes (rounded down to words,
    /// at most 60).
    pub fn set_header_len(&mut self, len: usize) {
        let ihl = (len.min(MAX_HEADER_LEN) / 4) as u8;
        let d = self.buffer.as_mut();
        d[field::VER_IHL] = (d[field::VER_IHL] & 0xf0) | ihl;
    }

    /// Sets the DSCP (masked to 6 bits).
    pub fn set_dscp(&mut self, dscp: u8) {
        let d = self.buffer.as_mut();
        d[field::DSCP_ECN] = (d[field::DSCP_ECN] & 0x03) | (dscp << 2);
    }

    /// Sets the ECN bits (masked to 2 bits).
    pub fn set_ecn(&mut self, ecn: u8) {
        let d = self.buffer.as_mut();
        d[field::DSCP_ECN] = (d[field::DSCP_ECN] & 0xfc) | (ecn & 0x03);
    }

    /// Sets Total Length.
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    /// Sets Identification.
    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT.start, ident);
    }

    fn set_flags_offset(&mut self, mask: u16, bits: u16) {
        let d = self.buffer.as_mut();
        let old = read_u16(d, field::FLG_OFF.start);
        write_u16(d, field::FLG_OFF.start, (old & !mask) | (bits & mask));
    }

    /// Sets or clears Don't Fragment.
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flags_offset(FLAG_DF, if value { FLAG_DF } else { 0 });
    }

    /// Sets or clears More Fragments.
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flags_offset(FLAG_MF, if value { FLAG_MF } else { 0 });
    }

    /// Sets the fragment offset from a byte offset (divided by 8).
    pub fn set_frag_offset(&mut self, offset: u16) {
        self.set_flags_offset(FRAG_OFFSET_MASK, offset >> 3);
    }

    /// Sets Time To Live (the checksum is not updated).
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Alias of [`Packet::set_ttl`].
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.set_ttl(hop_limit);
    }

    /// Sets the Protocol field.
    pub fn set_protocol(&mut self, protocol: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol.into();
    }

    /// Alias of [`Packet::set_protocol`].
    pub fn set_next_header(&mut self, next_header: IpProtocol) {
        self.set_protocol(next_header);
    }

    /// Sets the checksum field verbatim.
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, checksum);
    }

    /// Sets the source address (the checksum is not updated).
    pub fn set_src_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address (the checksum is not updated).
    pub fn set_dst_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let ck = checksum::data(self.header());
        self.set_checksum(ck);
    }

    /// Forwarding step: if TTL <= 1 returns `None` and leaves the packet
    /// untouched (the caller sends ICMP Time Exceeded or drops). Otherwise
    /// decrements TTL, patches the checksum incrementally (RFC 1624 eqn. 3)
    /// and returns the new TTL. A correct checksum stays correct.
    pub fn decrement_ttl(&mut self) -> Option<u8> {
        let ttl = self.ttl();
        if ttl <= 1 {
            return None;
        }
        let d = self.buffer.as_mut();
        let old_word = read_u16(d, field::TTL_PROTOCOL.start);
        let new_word = old_word - 0x0100;
        let ck = checksum::update16(read_u16(d, field::CHECKSUM.start), old_word, new_word);
        write_u16(d, field::TTL_PROTOCOL.start, new_word);
        write_u16(d, field::CHECKSUM.start, ck);
        Some(ttl - 1)
    }

    /// Mutable access to the options, see [`Packet::options`].
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let data = self.buffer.as_mut();
        let range = clamp(data.len(), HEADER_LEN, hl);
        &mut data[range]
    }

    /// Mutable access to the payload, see [`Packet::payload`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len().max(HEADER_LEN);
        let total = usize::from(self.total_len());
        let data = self.buffer.as_mut();
        let range = clamp(data.len(), hl, total);
        &mut data[range]
    }
}

/// An option-less IPv4 header.
///
/// [`Repr::parse`] returns `Malformed` for a header with options (IHL > 5):
/// the repr cannot carry them, and emitting a 20-byte header in their place
/// would shift the payload. Forwarding code works on [`Packet`] directly.
/// Checksums are not verified by `parse` (see the module docs of
/// `wire`); `emit` always fills the header checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_addr: Address,
    pub dst_addr: Address,
    pub next_header: IpProtocol,
    /// Payload length in bytes (Total Length - 20).
    pub payload_len: usize,
    pub hop_limit: u8,
    pub dscp: u8,
    pub ecn: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// Fragment offset in bytes, a multiple of 8.
    pub frag_offset: u16,
}

impl Repr {
    /// Parses a packet (checked again here, so unchecked views are safe).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, WireError> {
        packet.check_len()?;
        if packet.header_len() != HEADER_LEN {
            return Err(WireError::Malformed);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.total_len()) - HEADER_LEN,
            hop_limit: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
        })
    }

    /// Always 20.
    pub fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload: the Total Length that `emit` writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the 20-byte header, including its checksum, into the start of
    /// `packet`; the payload bytes are left alone. The buffer only needs to
    /// hold the header. `Truncated` if it does not; `Malformed` if a value
    /// does not fit its field (Total Length over 65535, DSCP over 63, ECN
    /// over 3, fragment offset not a multiple of 8).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
    ) -> Result<(), WireError> {
        let total = u16::try_from(self.buffer_len()).map_err(|_| WireError::Malformed)?;
        if self.dscp > 63 || self.ecn > 3 || self.frag_offset & 7 != 0 {
            return Err(WireError::Malformed);
        }
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        packet.buffer.as_mut()[field::VER_IHL] = 0x45;
        packet.set_dscp(self.dscp);
        packet.set_ecn(self.ecn);
        packet.set_total_len(total);
        packet.set_ident(self.ident);
        write_u16(packet.buffer.as_mut(), field::FLG_OFF.start, 0);
        packet.set_dont_frag(self.dont_frag);
        packet.set_more_frags(self.more_frags);
        packet.set_frag_offset(self.frag_offset);
        packet.set_ttl(self.hop_limit);
        packet.set_protocol(self.next_header);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{
        random_buffer, XorShift, DNS_QUERY, FUZZ_ITERATIONS, PING_REQUEST, TCP_SYN,
    };
    use super::*;

    fn exercise<T: AsRef<[u8]>>(p: &Packet<T>) -> u64 {
        let len = p.buffer.as_ref().len();
        assert!(p.payload().len() <= len);
        assert!(p.options().len() <= 40);
        assert!(p.options().len() + p.payload().len() <= len.saturating_sub(HEADER_LEN));
        assert!(p.dscp() <= 63 && p.ecn() <= 3);
        assert_eq!(p.frag_offset() % 8, 0);
        assert_eq!(p.ttl(), p.hop_limit());
        assert_eq!(p.protocol(), p.next_header());
        u64::from(p.version())
            + p.header_len() as u64
            + u64::from(p.total_len())
            + u64::from(p.ident())
            + u64::from(p.dont_frag())
            + u64::from(p.more_frags())
            + u64::from(p.is_fragment())
            + u64::from(u8::from(p.protocol()))
            + u64::from(p.checksum())
            + u64::from(u32::from(p.src_addr()))
            + u64::from(u32::from(p.dst_addr()))
            + u64::from(p.verify_checksum())
            + p.options().len() as u64
            + p.payload().len() as u64
    }

    fn mutate<T: AsRef<[u8]> + AsMut<[u8]>>(p: &mut Packet<T>, rng: &mut XorShift) {
        p.set_header_len(rng.below(80));
        p.set_total_len(rng.next_u16());
        p.set_dscp(rng.next_u8());
        p.set_ecn(rng.next_u8());
        p.set_ident(rng.next_u16());
        p.set_dont_frag(rng.below(2) == 0);
        p.set_more_frags(rng.below(2) == 0);
        p.set_frag_offset(rng.next_u16());
        p.set_ttl(rng.next_u8());
        p.set_protocol(IpProtocol::from(rng.next_u8()));
        p.set_src_addr(Ipv4Addr::from(rng.next_u32()));
        p.set_dst_addr(Ipv4Addr::from(rng.next_u32()));
        p.fill_checksum();
        let _ = p.decrement_ttl();
        p.options_mut().fill(1);
        p.payload_mut().fill(0xee);
        p.set_version(rng.next_u8());
    }

    fn assert_round_trip(ip: &[u8], expected: &Repr) {
        let packet = Packet::new_checked(ip).unwrap();
        assert!(packet.verify_checksum());
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(&repr, expected);
        assert_eq!(repr.buffer_len(), ip.len());
        let mut out = [0u8; 128];
        let out = &mut out[..ip.len()];
        out[20..].copy_from_slice(packet.payload());
        repr.emit(&mut Packet::new_unchecked(&mut *out)).unwrap();
        assert_eq!(out, ip);
    }

    #[test]
    fn ping_request_header_round_trips_through_repr() {
        let ip = &PING_REQUEST[14..];
        let packet = Packet::new_checked(ip).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.total_len(), 76);
        assert_eq!(packet.checksum(), 0x024d);
        assert_eq!(packet.payload().len(), 56);
        assert_eq!(packet.options(), &[] as &[u8]);
        assert!(!packet.is_fragment());
        assert_round_trip(
            ip,
            &Repr {
                src_addr: Ipv4Addr::new(10, 0, 2, 15),
                dst_addr: Ipv4Addr::new(8, 8, 8, 8),
                next_header: IpProtocol::Icmp,
                payload_len: 56,
                hop_limit: 64,
                dscp: 0,
                ecn: 0,
                ident: 0x1c46,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
            },
        );
    }

    #[test]
    fn dns_query_and_tcp_syn_headers_round_trip_through_repr() {
        assert_round_trip(
            &DNS_QUERY[14..],
            &Repr {
                src_addr: Ipv4Addr::new(192, 168, 1, 100),
                dst_addr: Ipv4Addr::new(192, 168, 1, 1),
                next_header: IpProtocol::Udp,
                payload_len: 37,
                hop_limit: 64,
                dscp: 0,
                ecn: 0,
                ident: 0x3f2a,
                dont_frag: false,
                more_frags: false,
                frag_offset: 0,
            },
        );
        assert_round_trip(
            &TCP_SYN[14..],
            &Repr {
                src_addr: Ipv4Addr::new(10, 0, 0, 1),
                dst_addr: Ipv4Addr::new(93, 184, 216, 34),
                next_header: IpProtocol::Tcp,
                payload_len: 40,
                hop_limit: 64,
                dscp: 0,
                ecn: 0,
                ident: 0x5d1e,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
            },
        );
    }

    #[test]
    fn payload_ignores_ethernet_padding_after_total_len() {
        let mut padded = [0u8; 60];
        padded[..DNS_QUERY.len() - 14].copy_from_slice(&DNS_QUERY[14..]);
        let packet = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload(), &DNS_QUERY[34..]);
        assert_eq!(packet.payload().len(), 37);
    }

    #[test]
    fn header_with_options_exposes_them_and_repr_refuses_it() {
        // IHL 6 with a Router Alert option (RFC 2113), zero payload.
        let mut hdr = [
            0x46, 0x00, 0x00, 0x18, 0x00, 0x01, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 10, 0, 0, 1,
            224, 0, 0, 22, 0x94, 0x04, 0x00, 0x00,
        ];
        let mut packet = Packet::new_checked(&mut hdr[..]).unwrap();
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(packet.payload(), &[] as &[u8]);
        assert_eq!(packet.protocol(), IpProtocol::Igmp);
        assert_eq!(Repr::parse(&packet), Err(WireError::Malformed));
    }

    #[test]
    fn fragment_fields_are_read_and_written_in_bytes() {
        let mut ip = [0u8; 20];
        ip.copy_from_slice(&PING_REQUEST[14..34]);
        let mut p = Packet::new_unchecked(&mut ip[..]);
        p.set_frag_offset(1480);
        p.set_more_frags(true);
        p.set_dont_frag(false);
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.more_frags() && !p.dont_frag() && p.is_fragment());
        assert_eq!(&ip[6..8], &[0x20, 0xb9]); // MF | 185 words
    }

    #[test]
    fn decrement_ttl_patches_checksum_incrementally() {
        let mut ip = [0u8; 76];
        ip.copy_from_slice(&PING_REQUEST[14..]);
        let mut p = Packet::new_checked(&mut ip[..]).unwrap();
        for expected in (1..64).rev() {
            assert_eq!(p.decrement_ttl(), Some(expected));
            assert_eq!(p.ttl(), expected);
            assert!(p.verify_checksum(), "ttl {expected}");
            let incremental = p.checksum();
            p.fill_checksum();
            assert_eq!(p.checksum(), incremental);
        }
        // TTL 1: refused, nothing written.
        let before = ip;
        let mut p = Packet::new_checked(&mut ip[..]).unwrap();
        assert_eq!(p.decrement_ttl(), None);
        assert_eq!(ip, before);
        // TTL 0: refused, nothing written.
        let mut p = Packet::new_checked(&mut ip[..]).unwrap();
        p.set_ttl(0);
        p.fill_checksum();
        let before = ip;
        let mut p = Packet::new_checked(&mut ip[..]).unwrap();
        assert_eq!(p.decrement_ttl(), None);
        assert_eq!(ip, before);
    }

    #[test]
    fn decrement_ttl_matches_full_recomputation_for_random_headers() {
        let mut rng = XorShift(0x7711);
        let mut zero_checksums = 0;
        for i in 0..5000 {
            let mut ip = [0u8; 20];
            rng.fill(&mut ip);
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&20u16.to_be_bytes());
            ip[8] = rng.next_u8().max(2);
            let mut p = Packet::new_checked(&mut ip[..]).unwrap();
            if i % 2 == 0 {
                // Steer the ident so the checksum after decrement is 0x0000,
                // the corner where eqn. 2 of RFC 1624 would go wrong.
                p.set_ident(0);
                p.set_ttl(p.ttl() - 1);
                p.set_checksum(0);
                let ident = !checksum::fold(checksum::sum(p.buffer));
                p.set_ident(ident);
                p.set_ttl(p.ttl() + 1);
            }
            p.fill_checksum();
            let ttl = p.ttl();
            assert_eq!(p.decrement_ttl(), Some(ttl - 1));
            let incremental = p.checksum();
            p.fill_checksum();
            assert_eq!(incremental, p.checksum());
            if incremental == 0 {
                zero_checksums += 1;
            }
            assert!(p.verify_checksum());
        }
        assert!(zero_checksums >= 2500, "{zero_checksums}");
    }

    #[test]
    fn malformed_headers_are_rejected_with_the_exact_error() {
        let good = &PING_REQUEST[14..];
        let with = |f: &dyn Fn(&mut [u8; 76])| {
            let mut b = [0u8; 76];
            b.copy_from_slice(good);
            f(&mut b);
            Packet::new_checked(&b[..]).map(|_| ())
        };
        assert_eq!(with(&|_| ()), Ok(()));
        assert_eq!(with(&|b| b[0] = 0x65), Err(WireError::Malformed)); // version 6
        assert_eq!(with(&|b| b[0] = 0x05), Err(WireError::Malformed)); // version 0
        assert_eq!(with(&|b| b[0] = 0x44), Err(WireError::Malformed)); // IHL 4
        assert_eq!(with(&|b| b[0] = 0x40), Err(WireError::Malformed)); // IHL 0
        assert_eq!(
            with(&|b| b[2..4].copy_from_slice(&77u16.to_be_bytes())),
            Err(WireError::Truncated)
        );
        assert_eq!(
            with(&|b| b[2..4].copy_from_slice(&19u16.to_be_bytes())),
            Err(WireError::Malformed)
        );
        assert_eq!(
            with(&|b| b[2..4].copy_from_slice(&20u16.to_be_bytes())),
            Ok(())
        );
        // IHL 15 (60 bytes) with Total Length 40: shorter than the header.
        assert_eq!(
            with(&|b| {
                b[0] = 0x4f;
                b[2..4].copy_from_slice(&40u16.to_be_bytes());
            }),
            Err(WireError::Malformed)
        );
        // IHL 15 in a 40-byte buffer.
        let mut short = [0u8; 40];
        short.copy_from_slice(&good[..40]);
        short[0] = 0x4f;
        assert_eq!(
            Packet::new_checked(&short[..]).map(|_| ()),
            Err(WireError::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&good[..19]).map(|_| ()),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn truncated_prefixes_are_rejected_or_fully_readable() {
        for frame in [&PING_REQUEST[..], &DNS_QUERY[..], &TCP_SYN[..]] {
            let ip = &frame[14..];
            for len in 0..=ip.len() {
                match Packet::new_checked(&ip[..len]) {
                    Ok(p) => {
                        assert_eq!(len, ip.len());
                        exercise(&p);
                    }
                    Err(e) => assert_eq!(e, WireError::Truncated, "len {len}"),
                }
            }
        }
    }

    #[test]
    fn random_buffers_never_make_an_accessor_or_setter_panic() {
        let mut rng = XorShift(0x4444);
        let mut buf = [0u8; 128];
        let mut accepted = 0;
        for _ in 0..FUZZ_ITERATIONS {
            let len = random_buffer(&mut rng, &mut buf);
            if len >= 20 && rng.below(4) != 0 {
                // Plausible headers: version 4, IHL 5..=15, small length.
                buf[0] = 0x45 + (rng.below(11) as u8);
                let total = rng.below(len + 8) as u16;
                buf[2..4].copy_from_slice(&total.to_be_bytes());
            }
            let Ok(p) = Packet::new_checked(&buf[..len]) else {
                continue;
            };
            accepted += 1;
            exercise(&p);
            assert!(p.header_len() + p.payload().len() == usize::from(p.total_len()));
            if let Ok(repr) = Repr::parse(&p) {
                let mut out = [0u8; 128];
                let out = &mut out[..repr.buffer_len()];
                let mut emitted = Packet::new_unchecked(&mut *out);
                repr.emit(&mut emitted).unwrap();
                assert!(emitted.verify_checksum());
                assert_eq!(Repr::parse(&emitted), Ok(repr));
            }
            let mut copy = buf;
            let mut m = Packet::new_checked(&mut copy[..len]).unwrap();
            mutate(&mut m, &mut rng);
            exercise(&m);
        }
        assert!(accepted > 2_000, "accepted {accepted}");
    }

    #[test]
    fn emit_rejects_short_buffers_and_oversized_values() {
        let repr = Repr::parse(&Packet::new_checked(&PING_REQUEST[14..]).unwrap()).unwrap();
        let mut short = [0u8; 19];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut short[..])),
            Err(WireError::Truncated)
        );
        let mut buf = [0u8; 20];
        let huge = Repr {
            payload_len: 65_516,
            ..repr
        };
        assert_eq!(
            huge.emit(&mut Packet::new_unchecked(&mut buf[..])),
            Err(WireError::Malformed)
        );
        let odd = Repr {
            frag_offset: 12,
            ..repr
        };
        assert_eq!(
            odd.emit(&mut Packet::new_unchecked(&mut buf[..])),
            Err(WireError::Malformed)
        );
        assert_eq!(buf, [0u8; 20]);
        let max = Repr {
            payload_len: 65_515,
            ..repr
        };
        assert_eq!(max.emit(&mut Packet::new_unchecked(&mut buf[..])), Ok(()));
        assert_eq!(&buf[2..4], &[0xff, 0xff]);
    }
}
