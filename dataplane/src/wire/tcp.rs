//! TCP segment headers (RFC 9293 section 3.1), with options (section 3.2)
//! and the pseudo-header checksum over IPv4 or IPv6 (RFC 9293 section
//! 3.1, RFC 8200 section 8.1).
//!
//! TCP has no length field: the segment is the whole buffer, so build the
//! view over the IP payload (`ipv4::Packet::payload` is already bounded by
//! Total Length). Options are carried as raw bytes; [`OptionsIter`] decodes
//! the common kinds (RFC 9293 section 3.2, RFC 7323, RFC 2018) for
//! inspection, e.g. MSS clamping.

use core::fmt;
use core::ops::{BitOr, BitOrAssign};

use super::checksum::{self, PseudoHeader};
use super::{clamp, read_u16, read_u32, write_u16, write_u32, Field, WireError};

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Largest header: data offset 15.
pub const MAX_HEADER_LEN: usize = 60;
/// Largest option area.
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - HEADER_LEN;

const PROTOCOL: u8 = 6;

mod field {
    use super::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data offset (4 bits), reserved (4 bits), flags (8 bits).
    pub const OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// The eight TCP control bits, a small bitflags-style set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    pub const FIN: Flags = Flags(0x01);
    pub const SYN: Flags = Flags(0x02);
    pub const RST: Flags = Flags(0x04);
    pub const PSH: Flags = Flags(0x08);
    pub const ACK: Flags = Flags(0x10);
    pub const URG: Flags = Flags(0x20);
    pub const ECE: Flags = Flags(0x40);
    pub const CWR: Flags = Flags(0x80);

    const NAMES: [&'static str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];

    /// No flag set.
    pub const fn empty() -> Flags {
        Flags(0)
    }

    /// From the raw flags byte.
    pub const fn from_bits(bits: u8) -> Flags {
        Flags(bits)
    }

    /// The raw flags byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    /// Clears the flags of `other`.
    pub fn remove(&mut self, other: Flags) {
        self.0 &= !other.0;
    }

    /// Sets or clears the flags of `other`.
    pub fn set(&mut self, other: Flags, value: bool) {
        if value {
            self.insert(other);
        } else {
            self.remove(other);
        }
    }
}

impl BitOr for Flags {
    type Output = Flags;

    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Flags {
    /// `Flags(SYN|ACK)`, or `Flags()` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Flags(")?;
        let mut first = true;
        for (bit, name) in Self::NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

/// One decoded TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// Kind 0: end of the option list.
    EndOfList,
    /// Kind 1: padding.
    NoOperation,
    /// Kind 2: Maximum Segment Size.
    MaxSegmentSize(u16),
    /// Kind 3: window scale shift (RFC 7323 section 2).
    WindowScale(u8),
    /// Kind 4: SACK permitted (RFC 2018).
    SackPermitted,
    /// Kind 8: timestamps (RFC 7323 section 3).
    Timestamp { tsval: u32, tsecr: u32 },
    /// Any other kind (SACK blocks included), with its data bytes.
    Unknown { kind: u8, data: &'a [u8] },
}

/// Iterates over an option area. Yields `Err(Malformed)` once for an option
/// whose length byte is missing, below 2, past the end of the area, or wrong
/// for its kind, then stops; also stops after `EndOfList`.
#[derive(Debug, Clone)]
pub struct OptionsIter<'a> {
    rest: &'a [u8],
}

impl<'a> OptionsIter<'a> {
    /// Iterates over raw option bytes.
    pub fn new(options: &'a [u8]) -> OptionsIter<'a> {
        OptionsIter { rest: options }
    }

    fn fail(&mut self) -> Option<Result<TcpOption<'a>, WireError>> {
        self.rest = &[];
        Some(Err(WireError::Malformed))
    }
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = Result<TcpOption<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after_kind) = self.rest.split_first()?;
        match kind {
            0 => {
                self.rest = &[];
                return Some(Ok(TcpOption::EndOfList));
            }
            1 => {
                self.rest = after_kind;
                return Some(Ok(TcpOption::NoOperation));
            }
            _ => {}
        }
        let Some(&len) = after_kind.first() else {
            return self.fail();
        };
        let len = usize::from(len);
        if len < 2 || len > self.rest.len() {
            return self.fail();
        }
        let data = &self.rest[2..len];
        self.rest = &self.rest[len..];
        let option = match (kind, data) {
            (2, &[a, b]) => TcpOption::MaxSegmentSize(u16::from_be_bytes([a, b])),
            (3, &[shift]) => TcpOption::WindowScale(shift),
            (4, &[]) => TcpOption::SackPermitted,
            (8, &[a, b, c, d, e, f, g, h]) => TcpOption::Timestamp {
                tsval: u32::from_be_bytes([a, b, c, d]),
                tsecr: u32::from_be_bytes([e, f, g, h]),
            },
            (2 | 3 | 4 | 8, _) => return self.fail(),
            (kind, data) => TcpOption::Unknown { kind, data },
        };
        Some(Ok(option))
    }
}

/// A read/write view of a TCP segment.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

macro_rules! flag_accessors {
    ($($(#[$doc:meta])* $get:ident, $set:ident, $flag:ident;)*) => {
        impl<T: AsRef<[u8]>> Packet<T> {
            $(
                $(#[$doc])*
                pub fn $get(&self) -> bool {
                    self.flags().contains(Flags::$flag)
                }
            )*
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
            $(
                $(#[$doc])*
                pub fn $set(&mut self, value: bool) {
                    let mut flags = self.flags();
                    flags.set(Flags::$flag, value);
                    self.set_flags(flags);
                }
            )*
        }
    };
}

flag_accessors! {
    /// The FIN flag.
    fin, set_fin, FIN;
    /// The SYN flag.
    syn, set_syn, SYN;
    /// The RST flag.
    rst, set_rst, RST;
    /// The PSH flag.
    psh, set_psh, PSH;
    /// The ACK flag.
    ack, set_ack, ACK;
    /// The URG flag.
    urg, set_urg, URG;
    /// The ECE flag (RFC 3168).
    ece, set_ece, ECE;
    /// The CWR flag (RFC 3168).
    cwr, set_cwr, CWR;
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

    /// `Truncated` if the buffer is shorter than 20 bytes or than the data
    /// offset; `Malformed` if the data offset is below 5 words.
    pub fn check_len(&self) -> Result<(), WireError> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if hl > data.len() {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    /// Acknowledgment number (meaningful when ACK is set).
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// The raw data offset, in 32-bit words.
    pub fn data_offset(&self) -> u8 {
        self.buffer.as_ref()[field::OFFSET] >> 4
    }

    /// Header length in bytes (data offset × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// The control bits.
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Window size (unscaled).
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Urgent pointer.
    pub fn urgent_pointer(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// The raw option bytes, padding included.
    pub fn options(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[clamp(data.len(), HEADER_LEN, self.header_len())]
    }

    /// Decodes the options.
    pub fn options_iter(&self) -> OptionsIter<'_> {
        OptionsIter::new(self.options())
    }

    /// The segment data: everything after the header.
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let start = self.header_len().max(HEADER_LEN);
        &data[clamp(data.len(), start, data.len())]
    }

    /// Byte length of the whole segment, header and data (the buffer
    /// length, which the checksum covers).
    pub fn segment_len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// Whether the checksum over the pseudo-header and the whole buffer is
    /// correct.
    pub fn verify_checksum<A: PseudoHeader>(&self, src: A, dst: A) -> bool {
        let data = self.buffer.as_ref();
        let pseudo = A::pseudo_header_sum(src, dst, PROTOCOL, data.len() as u32);
        checksum::with_pseudo_header(pseudo, data) == 0
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

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, seq: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM.start, seq);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, ack: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM.start, ack);
    }

    /// Sets the data offset from a header length in bytes (rounded down to
    /// words, at most 60). The reserved bits are kept.
    pub fn set_header_len(&mut self, len: usize) {
        let words = (len.min(MAX_HEADER_LEN) / 4) as u8;
        let d = self.buffer.as_mut();
        d[field::OFFSET] = (d[field::OFFSET] & 0x0f) | (words << 4);
    }

    /// Sets all eight control bits.
    pub fn set_flags(&mut self, flags: Flags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }

    /// Sets the window size.
    pub fn set_window_len(&mut self, window: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE.start, window);
    }

    /// Sets the checksum field verbatim.
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, checksum);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_pointer(&mut self, urgent: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT.start, urgent);
    }

    /// Computes and writes the checksum over the pseudo-header and the whole
    /// buffer.
    pub fn fill_checksum<A: PseudoHeader>(&mut self, src: A, dst: A) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let pseudo = A::pseudo_header_sum(src, dst, PROTOCOL, data.len() as u32);
        let ck = checksum::with_pseudo_header(pseudo, data);
        self.set_checksum(ck);
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
        let data = self.buffer.as_mut();
        let range = clamp(data.len(), hl, data.len());
        &mut data[range]
    }
}

/// Raw TCP option bytes held inline (no allocation), at most 40.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Options {
    bytes: [u8; MAX_OPTIONS_LEN],
    len: u8,
}

impl Options {
    /// No options.
    pub const fn new() -> Options {
        Options {
            bytes: [0; MAX_OPTIONS_LEN],
            len: 0,
        }
    }

    /// Copies raw option bytes; `Malformed` if longer than 40. They are not
    /// decoded; [`Repr::emit`] pads them to a 4-byte boundary with zeros
    /// (End of Option List).
    pub fn from_slice(raw: &[u8]) -> Result<Options, WireError> {
        let mut options = Options::new();
        let dst = options
            .bytes
            .get_mut(..raw.len())
            .ok_or(WireError::Malformed)?;
        dst.copy_from_slice(raw);
        options.len = raw.len() as u8;
        Ok(options)
    }

    /// The option bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len).min(MAX_OPTIONS_LEN)]
    }

    /// Decodes the options.
    pub fn iter(&self) -> OptionsIter<'_> {
        OptionsIter::new(self.as_slice())
    }

    /// Length once padded to a multiple of 4.
    pub fn padded_len(&self) -> usize {
        (self.as_slice().len() + 3) & !3
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A TCP header, options included as raw bytes.
///
/// `emit` writes the reserved bits as zero. Checksums are not verified by
/// `parse`; `emit` fills one for the given pseudo-header addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    pub ack_number: u32,
    pub flags: Flags,
    pub window_len: u16,
    pub urgent_pointer: u16,
    pub options: Options,
    pub payload_len: usize,
}

impl Repr {
    /// Parses a segment (checked again here, so unchecked views are safe).
    /// The options are copied, not validated: decode them with
    /// `options.iter()`.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, WireError> {
        packet.check_len()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_pointer: packet.urgent_pointer(),
            options: Options::from_slice(packet.options())?,
            payload_len: packet.payload().len(),
        })
    }

    /// 20 plus the padded options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.padded_len()
    }

    /// Header plus payload: the segment length.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header and options into the start of `packet` and fills
    /// the checksum over the first `buffer_len()` bytes for `src`/`dst`.
    ///
    /// The payload must already be in the buffer (the in-place data path);
    /// if it is written afterwards, call [`Packet::fill_checksum`] on a view
    /// of exactly the segment. `Truncated` if the buffer is shorter than
    /// `buffer_len()`.
    pub fn emit<T, A>(&self, packet: &mut Packet<T>, src: A, dst: A) -> Result<(), WireError>
    where
        T: AsRef<[u8]> + AsMut<[u8]>,
        A: PseudoHeader,
    {
        let hl = self.header_len();
        let total = self.buffer_len();
        if packet.buffer.as_ref().len() < total {
            return Err(WireError::Truncated);
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.buffer.as_mut()[field::OFFSET] = ((hl / 4) as u8) << 4;
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_checksum(0);
        packet.set_urgent_pointer(self.urgent_pointer);
        let options = self.options.as_slice();
        let area = packet.options_mut();
        area.fill(0);
        area[..options.len()].copy_from_slice(options);
        let segment = &packet.buffer.as_ref()[..total];
        let pseudo = A::pseudo_header_sum(src, dst, PROTOCOL, total as u32);
        let ck = checksum::with_pseudo_header(pseudo, segment);
        packet.set_checksum(ck);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::super::testdata::{random_buffer, XorShift, FUZZ_ITERATIONS, TCP_SYN};
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

    fn exercise<T: AsRef<[u8]>>(p: &Packet<T>) -> u64 {
        let len = p.buffer.as_ref().len();
        assert!(p.options().len() <= MAX_OPTIONS_LEN);
        assert!(p.options().len() + p.payload().len() <= len.saturating_sub(HEADER_LEN));
        assert_eq!(p.segment_len(), len);
        let mut sum = 0u64;
        for option in p.options_iter() {
            sum += match option {
                Ok(TcpOption::MaxSegmentSize(m)) => u64::from(m),
                Ok(TcpOption::Unknown { data, .. }) => data.len() as u64,
                Ok(_) => 1,
                Err(e) => {
                    assert_eq!(e, WireError::Malformed);
                    2
                }
            };
        }
        sum + u64::from(p.src_port())
            + u64::from(p.dst_port())
            + u64::from(p.seq_number())
            + u64::from(p.ack_number())
            + u64::from(p.data_offset())
            + p.header_len() as u64
            + u64::from(p.flags().bits())
            + u64::from(p.fin() as u8 + p.syn() as u8 + p.rst() as u8 + p.psh() as u8)
            + u64::from(p.ack() as u8 + p.urg() as u8 + p.ece() as u8 + p.cwr() as u8)
            + u64::from(p.window_len())
            + u64::from(p.checksum())
            + u64::from(p.urgent_pointer())
            + p.payload().len() as u64
            + u64::from(p.verify_checksum(SRC, DST))
            + u64::from(p.verify_checksum(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST))
    }

    #[test]
    fn syn_with_options_round_trips_through_repr() {
        let tcp = &TCP_SYN[34..];
        let packet = Packet::new_checked(tcp).unwrap();
        assert!(packet.verify_checksum(SRC, DST));
        assert!(!packet.verify_checksum(SRC, Ipv4Addr::new(93, 184, 216, 35)));
        assert_eq!(packet.checksum(), 0x25ac);
        assert_eq!(packet.header_len(), 40);
        assert!(packet.syn() && !packet.ack() && !packet.fin() && !packet.rst());
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(repr.src_port, 50000);
        assert_eq!(repr.dst_port, 443);
        assert_eq!(repr.seq_number, 0x9a3c51e7);
        assert_eq!(repr.ack_number, 0);
        assert_eq!(repr.flags, Flags::SYN);
        assert_eq!(repr.window_len, 64240);
        assert_eq!(repr.urgent_pointer, 0);
        assert_eq!(repr.payload_len, 0);
        assert_eq!(repr.options.as_slice(), &tcp[20..40]);
        let decoded: Vec<_> = repr.options.iter().collect();
        assert_eq!(
            decoded,
            [
                Ok(TcpOption::MaxSegmentSize(1460)),
                Ok(TcpOption::SackPermitted),
                Ok(TcpOption::Timestamp {
                    tsval: 0x0a1b2c3d,
                    tsecr: 0
                }),
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::WindowScale(7)),
            ]
        );
        let mut out = [0u8; 40];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]), SRC, DST)
            .unwrap();
        assert_eq!(&out[..], tcp);
    }

    #[test]
    fn data_segment_checksums_over_payload_and_ipv6_pseudo_header() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let repr = Repr {
            src_port: 443,
            dst_port: 50000,
            seq_number: 1,
            ack_number: 0x9a3c51e8,
            flags: Flags::ACK | Flags::PSH,
            window_len: 501,
            urgent_pointer: 0,
            options: Options::from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]).unwrap(),
            payload_len: 5,
        };
        let mut out = [0u8; 37];
        out[32..].copy_from_slice(b"hello");
        let mut p = Packet::new_unchecked(&mut out[..]);
        repr.emit(&mut p, src, dst).unwrap();
        assert!(p.verify_checksum(src, dst));
        assert!(!p.verify_checksum(src, "2001:db8::3".parse().unwrap()));
        assert_eq!(p.payload(), b"hello");
        assert_eq!(Repr::parse(&p), Ok(repr));
        // Flipping a payload byte breaks the checksum.
        p.payload_mut()[0] = b'j';
        assert!(!p.verify_checksum(src, dst));
        p.fill_checksum(src, dst);
        assert!(p.verify_checksum(src, dst));
    }

    #[test]
    fn unpadded_options_are_padded_with_end_of_list() {
        let repr = Repr {
            src_port: 1,
            dst_port: 2,
            seq_number: 3,
            ack_number: 0,
            flags: Flags::SYN,
            window_len: 1024,
            urgent_pointer: 0,
            options: Options::from_slice(&[2, 4, 0x05, 0xb4, 3, 3, 7]).unwrap(),
            payload_len: 0,
        };
        assert_eq!(repr.header_len(), 28);
        let mut out = [0xffu8; 28];
        let mut p = Packet::new_unchecked(&mut out[..]);
        repr.emit(&mut p, SRC, DST).unwrap();
        assert_eq!(p.options(), &[2, 4, 0x05, 0xb4, 3, 3, 7, 0]);
        assert!(p.verify_checksum(SRC, DST));
        let parsed = Repr::parse(&p).unwrap();
        assert_eq!(parsed.options.as_slice(), &[2, 4, 0x05, 0xb4, 3, 3, 7, 0]);
        let decoded: Vec<_> = parsed.options.iter().collect();
        assert_eq!(
            decoded,
            [
                Ok(TcpOption::MaxSegmentSize(1460)),
                Ok(TcpOption::WindowScale(7)),
                Ok(TcpOption::EndOfList)
            ]
        );
        assert_eq!(Options::from_slice(&[0; 41]), Err(WireError::Malformed));
        assert_eq!(
            Options::from_slice(&[1; 40]).map(|o| o.padded_len()),
            Ok(40)
        );
    }

    #[test]
    fn malformed_options_stop_the_iterator_with_an_error() {
        // (options, number of items yielded, the last being the error)
        let cases: [(&[u8], usize); 6] = [
            (&[2], 1),             // no length byte
            (&[2, 1, 0, 0], 1),    // length below 2
            (&[2, 6, 0, 0], 1),    // past the end
            (&[2, 3, 0], 1),       // wrong MSS length
            (&[8, 4, 0, 0], 1),    // wrong timestamp length
            (&[1, 5, 3, 1, 9], 3), // NOP, unknown kind 5 len 3, then junk
        ];
        for (raw, count) in cases {
            let items: Vec<_> = OptionsIter::new(raw).collect();
            assert_eq!(items.len(), count, "{raw:?}");
            assert_eq!(items.last(), Some(&Err(WireError::Malformed)), "{raw:?}");
            assert!(items[..items.len() - 1].iter().all(|i| i.is_ok()));
        }
        let sack: Vec<_> = OptionsIter::new(&[5, 10, 0, 0, 0, 1, 0, 0, 0, 2]).collect();
        assert_eq!(
            sack,
            [Ok(TcpOption::Unknown {
                kind: 5,
                data: &[0, 0, 0, 1, 0, 0, 0, 2]
            })]
        );
    }

    #[test]
    fn flags_behave_like_a_bit_set() {
        let mut f = Flags::SYN | Flags::ACK;
        assert!(f.contains(Flags::SYN) && f.contains(Flags::ACK) && !f.contains(Flags::FIN));
        assert_eq!(f.bits(), 0x12);
        f.remove(Flags::SYN);
        f |= Flags::FIN;
        assert_eq!(f, Flags::from_bits(0x11));
        f.set(Flags::ACK, false);
        assert_eq!(f, Flags::FIN);
        assert!(Flags::empty().is_empty());
        assert_eq!(format!("{:?}", Flags::SYN | Flags::ACK), "Flags(SYN|ACK)");
        assert_eq!(format!("{:?}", Flags::empty()), "Flags()");

        let mut seg = [0u8; 40];
        seg.copy_from_slice(&TCP_SYN[34..]);
        let mut p = Packet::new_checked(&mut seg[..]).unwrap();
        p.set_ack(true);
        p.set_syn(false);
        p.set_cwr(true);
        assert!(p.ack() && !p.syn() && p.cwr());
        assert_eq!(seg[13], 0x90);
        assert_eq!(seg[12], 0xa0, "data offset untouched");
    }

    #[test]
    fn malformed_offsets_are_rejected_with_the_exact_error() {
        let check = |b: &[u8]| Packet::new_checked(b).map(|_| ());
        let mut b = [0u8; 40];
        b.copy_from_slice(&TCP_SYN[34..]);
        for offset in 0..5u8 {
            b[12] = offset << 4;
            assert_eq!(check(&b), Err(WireError::Malformed), "offset {offset}");
        }
        b[12] = 0xb0; // 44 bytes in a 40-byte buffer
        assert_eq!(check(&b), Err(WireError::Truncated));
        b[12] = 0x50;
        assert_eq!(check(&b), Ok(()));
        assert_eq!(check(&b[..19]), Err(WireError::Truncated));
    }

    #[test]
    fn truncated_prefixes_are_rejected_or_fully_readable() {
        let tcp = &TCP_SYN[34..];
        for len in 0..=tcp.len() {
            match Packet::new_checked(&tcp[..len]) {
                Ok(p) => {
                    assert_eq!(len, tcp.len());
                    assert!(exercise(&p) > 0);
                }
                Err(e) => assert_eq!(e, WireError::Truncated, "len {len}"),
            }
        }
    }

    #[test]
    fn random_buffers_never_make_an_accessor_or_setter_panic() {
        let mut rng = XorShift(0x0606);
        let mut buf = [0u8; 128];
        let mut accepted = 0;
        for _ in 0..FUZZ_ITERATIONS {
            let len = random_buffer(&mut rng, &mut buf);
            let Ok(p) = Packet::new_checked(&buf[..len]) else {
                continue;
            };
            accepted += 1;
            exercise(&p);
            let repr = Repr::parse(&p).unwrap();
            let mut out = [0u8; 128];
            let out = &mut out[..repr.buffer_len()];
            out[repr.header_len()..].copy_from_slice(p.payload());
            let mut emitted = Packet::new_unchecked(&mut *out);
            repr.emit(&mut emitted, SRC, DST).unwrap();
            assert!(emitted.verify_checksum(SRC, DST));
            let reparsed = Repr::parse(&emitted).unwrap();
            assert_eq!(reparsed.options.as_slice(), p.options());
            assert_eq!(reparsed.payload_len, repr.payload_len);

            let mut copy = buf;
            let mut m = Packet::new_checked(&mut copy[..len]).unwrap();
            m.set_src_port(rng.next_u16());
            m.set_dst_port(rng.next_u16());
            m.set_seq_number(rng.next_u32());
            m.set_ack_number(rng.next_u32());
            m.set_header_len(rng.below(80));
            m.set_flags(Flags::from_bits(rng.next_u8()));
            m.set_fin(true);
            m.set_urg(false);
            m.set_window_len(rng.next_u16());
            m.set_urgent_pointer(rng.next_u16());
            m.fill_checksum(SRC, DST);
            m.options_mut().fill(1);
            m.payload_mut().fill(2);
            exercise(&m);
        }
        assert!(accepted > 5_000, "accepted {accepted}");
    }

    #[test]
    fn emit_rejects_short_buffers() {
        let repr = Repr::parse(&Packet::new_checked(&TCP_SYN[34..]).unwrap()).unwrap();
        let mut short = [0u8; 39];
        let r = repr.emit(&mut Packet::new_unchecked(&mut short[..]), SRC, DST);
        assert_eq!(r, Err(WireError::Truncated));
        assert_eq!(short, [0u8; 39]);
    }
}
