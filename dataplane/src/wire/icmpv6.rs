//! ICMPv6 (RFC 4443): message type and code, the pseudo-header checksum
//! (RFC 4443 section 2.3 with RFC 8200 section 8.1), echo identifier and
//! sequence number, and the Neighbor Discovery message types of RFC 4861
//! section 4 and MLD (RFC 2710, RFC 3810) as [`Message`] values.
//!
//! NDP options are not parsed; [`Packet::ndp_target_addr`] exposes the
//! target address of neighbour solicitations/advertisements and redirects.
//! The checksum covers the whole buffer, so build the view over exactly the
//! IPv6 payload (`ipv6::Packet::payload`).

use std::net::Ipv6Addr;

use super::checksum;
use super::{read_u16, read_u32, write_u16, write_u32, Field, WireError};

/// Length of the ICMPv6 header: type, code, checksum and the 4-byte
/// message-specific word.
pub const HEADER_LEN: usize = 8;

const NEXT_HEADER: u8 = 58;

mod field {
    use super::Field;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    /// Echo ident/seq, Packet Too Big MTU, NA flags, ...
    pub const REST_OF_HEADER: Field = 4..8;
    /// Target Address of NS, NA and Redirect (RFC 4861 sections 4.3-4.5).
    pub const NDP_TARGET: Field = 8..24;
}

/// ICMPv6 message types (IANA "ICMPv6 Type Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    /// 1
    DstUnreachable,
    /// 2
    PktTooBig,
    /// 3
    TimeExceeded,
    /// 4
    ParamProblem,
    /// 128
    EchoRequest,
    /// 129
    EchoReply,
    /// 130, MLD query
    MldQuery,
    /// 131, MLDv1 report
    MldReport,
    /// 132, MLDv1 done
    MldDone,
    /// 133, NDP
    RouterSolicit,
    /// 134, NDP
    RouterAdvert,
    /// 135, NDP
    NeighborSolicit,
    /// 136, NDP
    NeighborAdvert,
    /// 137, NDP
    Redirect,
    /// 143, MLDv2 report
    MldV2Report,
    /// Any other type.
    Unknown(u8),
}

impl Message {
    /// Whether this is one of the five NDP messages of RFC 4861.
    pub fn is_ndp(self) -> bool {
        matches!(
            self,
            Message::RouterSolicit
                | Message::RouterAdvert
                | Message::NeighborSolicit
                | Message::NeighborAdvert
                | Message::Redirect
        )
    }

    /// Whether this is an error message (type below 128).
    pub fn is_error(self) -> bool {
        u8::from(self) < 128
    }
}

impl From<u8> for Message {
    fn from(value: u8) -> Self {
        match value {
            1 => Message::DstUnreachable,
            2 => Message::PktTooBig,
            3 => Message::TimeExceeded,
            4 => Message::ParamProblem,
            128 => Message::EchoRequest,
            129 => Message::EchoReply,
            130 => Message::MldQuery,
            131 => Message::MldReport,
            132 => Message::MldDone,
            133 => Message::RouterSolicit,
            134 => Message::RouterAdvert,
            135 => Message::NeighborSolicit,
            136 => Message::NeighborAdvert,
            137 => Message::Redirect,
            143 => Message::MldV2Report,
            other => Message::Unknown(other),
        }
    }
}

impl From<Message> for u8 {
    fn from(value: Message) -> Self {
        match value {
            Message::DstUnreachable => 1,
            Message::PktTooBig => 2,
            Message::TimeExceeded => 3,
            Message::ParamProblem => 4,
            Message::EchoRequest => 128,
            Message::EchoReply => 129,
            Message::MldQuery => 130,
            Message::MldReport => 131,
            Message::MldDone => 132,
            Message::RouterSolicit => 133,
            Message::RouterAdvert => 134,
            Message::NeighborSolicit => 135,
            Message::NeighborAdvert => 136,
            Message::Redirect => 137,
            Message::MldV2Report => 143,
            Message::Unknown(other) => other,
        }
    }
}

/// A read/write view of an ICMPv6 message.
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

    /// `Truncated` if the buffer is shorter than the 8-byte header. (A
    /// short NS/NA is still accepted; [`Packet::ndp_target_addr`] then
    /// returns `None`.)
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
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

    /// Message type.
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Echo identifier (bytes 4..6).
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    /// Echo sequence number (bytes 6..8).
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO.start)
    }

    /// The raw message-specific word (bytes 4..8): the MTU of Packet Too
    /// Big, the pointer of Parameter Problem, the R/S/O flags of NA, ...
    pub fn rest_of_header(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REST_OF_HEADER.start)
    }

    /// The Target Address of a neighbour solicitation, neighbour
    /// advertisement or redirect; `None` for other types or if the message
    /// is too short to hold one.
    pub fn ndp_target_addr(&self) -> Option<Ipv6Addr> {
        if !matches!(
            self.msg_type(),
            Message::NeighborSolicit | Message::NeighborAdvert | Message::Redirect
        ) {
            return None;
        }
        let bytes = self.buffer.as_ref().get(field::NDP_TARGET)?;
        let mut octets = [0u8; 16];
        octets.copy_from_slice(bytes);
        Some(Ipv6Addr::from(octets))
    }

    /// Everything after the 8-byte header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Whether the checksum over the pseudo-header and the whole buffer is
    /// correct.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let data = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header_v6(src, dst, NEXT_HEADER, data.len() as u32);
        checksum::with_pseudo_header(pseudo, data) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, msg_type: Message) {
        self.buffer.as_mut()[field::TYPE] = msg_type.into();
    }

    /// Sets the message code.
    pub fn set_msg_code(&mut self, code: u8) {
        self.buffer.as_mut()[field::CODE] = code;
    }

    /// Sets the checksum field verbatim.
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, checksum);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT.start, ident);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, seq_no: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO.start, seq_no);
    }

    /// Sets the raw message-specific word.
    pub fn set_rest_of_header(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::REST_OF_HEADER.start, value);
    }

    /// Sets the NDP Target Address; `Malformed` (nothing written) unless
    /// the message is NS, NA or Redirect and long enough.
    pub fn set_ndp_target_addr(&mut self, addr: Ipv6Addr) -> Result<(), WireError> {
        if self.ndp_target_addr().is_none() {
            return Err(WireError::Malformed);
        }
        self.buffer.as_mut()[field::NDP_TARGET].copy_from_slice(&addr.octets());
        Ok(())
    }

    /// Computes and writes the checksum over the pseudo-header and the whole
    /// buffer.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header_v6(src, dst, NEXT_HEADER, data.len() as u32);
        let ck = checksum::with_pseudo_header(pseudo, data);
        self.set_checksum(ck);
    }

    /// Mutable access to the payload, see [`Packet::payload`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// An ICMPv6 message header. Echo messages (with code 0) get their own
/// variants; everything else, NDP included, keeps its type, code and raw
/// message-specific word, and its body (e.g. the NS target and options)
/// stays in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repr {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        payload_len: usize,
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        payload_len: usize,
    },
    Other {
        msg_type: Message,
        code: u8,
        rest_of_header: u32,
        payload_len: usize,
    },
}

impl Repr {
    /// Parses a message (checked again here, so unchecked views are safe).
    /// The checksum is not verified: call [`Packet::verify_checksum`].
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, WireError> {
        packet.check_len()?;
        let payload_len = packet.payload().len();
        let (ident, seq_no) = (packet.echo_ident(), packet.echo_seq_no());
        Ok(match (packet.msg_type(), packet.msg_code()) {
            (Message::EchoRequest, 0) => Repr::EchoRequest {
                ident,
                seq_no,
                payload_len,
            },
            (Message::EchoReply, 0) => Repr::EchoReply {
                ident,
                seq_no,
                payload_len,
            },
            (msg_type, code) => Repr::Other {
                msg_type,
                code,
                rest_of_header: packet.rest_of_header(),
                payload_len,
            },
        })
    }

    /// The payload length carried by every variant.
    pub fn payload_len(&self) -> usize {
        match *self {
            Repr::EchoRequest { payload_len, .. }
            | Repr::EchoReply { payload_len, .. }
            | Repr::Other { payload_len, .. } => payload_len,
        }
    }

    /// Always 8.
    pub fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Writes the header and fills the checksum over the pseudo-header for
    /// `src`/`dst` and the first `buffer_len()` bytes. The payload must
    /// already be in place (or call [`Packet::fill_checksum`] after writing
    /// it). `Truncated` if the buffer is shorter than `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Result<(), WireError> {
        let total = self.buffer_len();
        if packet.buffer.as_ref().len() < total {
            return Err(WireError::Truncated);
        }
        let (msg_type, code, rest) = match *self {
            Repr::EchoRequest { ident, seq_no, .. } => (
                Message::EchoRequest,
                0,
                u32::from(ident) << 16 | u32::from(seq_no),
            ),
            Repr::EchoReply { ident, seq_no, .. } => (
                Message::EchoReply,
                0,
                u32::from(ident) << 16 | u32::from(seq_no),
            ),
            Repr::Other {
                msg_type,
                code,
                rest_of_header,
                ..
            } => (msg_type, code, rest_of_header),
        };
        packet.set_msg_type(msg_type);
        packet.set_msg_code(code);
        packet.set_rest_of_header(rest);
        packet.set_checksum(0);
        let segment = &packet.buffer.as_ref()[..total];
        let pseudo = checksum::pseudo_header_v6(src, dst, NEXT_HEADER, total as u32);
        let ck = checksum::with_pseudo_header(pseudo, segment);
        packet.set_checksum(ck);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{
        random_buffer, XorShift, ECHO6, FUZZ_ITERATIONS, NEIGHBOR_SOLICIT,
    };
    use super::*;

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn ns_addrs() -> (Ipv6Addr, Ipv6Addr) {
        (addr("fe80::a00:27ff:fea1:b2c3"), addr("ff02::1:ff00:1"))
    }

    fn exercise<T: AsRef<[u8]>>(p: &Packet<T>) -> u64 {
        let len = p.buffer.as_ref().len();
        assert_eq!(p.payload().len() + HEADER_LEN, len);
        if p.ndp_target_addr().is_some() {
            assert!(len >= 24 && p.msg_type().is_ndp());
        }
        let (s, d) = ns_addrs();
        u64::from(u8::from(p.msg_type()))
            + u64::from(p.msg_code())
            + u64::from(p.checksum())
            + u64::from(p.echo_ident())
            + u64::from(p.echo_seq_no())
            + u64::from(p.rest_of_header())
            + p.ndp_target_addr()
                .map_or(0, |a| u128::from(a) as u64 >> 16)
            + p.payload().len() as u64
            + u64::from(p.verify_checksum(s, d))
            + p.header_len() as u64
    }

    #[test]
    fn neighbor_solicit_round_trips_through_repr() {
        let (src, dst) = ns_addrs();
        let icmp = &NEIGHBOR_SOLICIT[54..];
        let packet = Packet::new_checked(icmp).unwrap();
        assert!(packet.verify_checksum(src, dst));
        assert!(!packet.verify_checksum(src, addr("ff02::1")));
        assert_eq!(packet.checksum(), 0xb6d1);
        assert_eq!(packet.msg_type(), Message::NeighborSolicit);
        assert!(packet.msg_type().is_ndp() && !packet.msg_type().is_error());
        assert_eq!(packet.ndp_target_addr(), Some(addr("fe80::1")));
        // Source link-layer address option, left unparsed in the payload.
        assert_eq!(
            &packet.payload()[16..],
            &[1, 1, 0x08, 0x00, 0x27, 0xa1, 0xb2, 0xc3]
        );
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr::Other {
                msg_type: Message::NeighborSolicit,
                code: 0,
                rest_of_header: 0,
                payload_len: 24
            }
        );
        let mut out = [0u8; 32];
        out[8..].copy_from_slice(packet.payload());
        repr.emit(&mut Packet::new_unchecked(&mut out[..]), src, dst)
            .unwrap();
        assert_eq!(&out[..], icmp);
    }

    #[test]
    fn echo_request_round_trips_through_repr() {
        let (src, dst) = (addr("2001:db8::1"), addr("2001:db8::2"));
        let packet = Packet::new_checked(&ECHO6[..]).unwrap();
        assert!(packet.verify_checksum(src, dst));
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 7,
                payload_len: 8
            }
        );
        assert_eq!(packet.payload(), b"abcdefgh");
        assert_eq!(packet.ndp_target_addr(), None);
        let mut out = [0u8; 16];
        out[8..].copy_from_slice(b"abcdefgh");
        repr.emit(&mut Packet::new_unchecked(&mut out[..]), src, dst)
            .unwrap();
        assert_eq!(out, ECHO6);
    }

    #[test]
    fn neighbor_advert_built_from_a_solicitation_verifies() {
        let (_, dst) = ns_addrs();
        let me = addr("fe80::1");
        let mut msg = [0u8; 32];
        msg.copy_from_slice(&NEIGHBOR_SOLICIT[54..]);
        let mut p = Packet::new_checked(&mut msg[..]).unwrap();
        p.set_msg_type(Message::NeighborAdvert);
        p.set_rest_of_header(0x6000_0000); // Solicited | Override
        p.set_ndp_target_addr(me).unwrap();
        p.payload_mut()[16] = 2; // target link-layer address option
        p.fill_checksum(me, dst);
        assert!(p.verify_checksum(me, dst));
        assert_eq!(p.ndp_target_addr(), Some(me));
        assert_eq!(p.rest_of_header() >> 29, 0b011);

        let mut echo = ECHO6;
        let mut e = Packet::new_checked(&mut echo[..]).unwrap();
        assert_eq!(e.set_ndp_target_addr(me), Err(WireError::Malformed));
        assert_eq!(echo, ECHO6);
    }

    #[test]
    fn short_neighbor_solicit_has_no_target() {
        let p = Packet::new_checked(&NEIGHBOR_SOLICIT[54..54 + 23]).unwrap();
        assert_eq!(p.msg_type(), Message::NeighborSolicit);
        assert_eq!(p.ndp_target_addr(), None);
    }

    #[test]
    fn message_types_round_trip_every_value() {
        for n in 0..=u8::MAX {
            assert_eq!(u8::from(Message::from(n)), n);
        }
        assert_eq!(Message::from(135), Message::NeighborSolicit);
        assert_eq!(Message::from(136), Message::NeighborAdvert);
        assert_eq!(Message::from(2), Message::PktTooBig);
        assert!(Message::from(2).is_error());
        assert_eq!(Message::from(200), Message::Unknown(200));
    }

    #[test]
    fn truncated_prefixes_are_rejected_or_fully_readable() {
        for icmp in [&NEIGHBOR_SOLICIT[54..], &ECHO6[..]] {
            for len in 0..=icmp.len() {
                match Packet::new_checked(&icmp[..len]) {
                    Ok(p) => {
                        assert!(len >= HEADER_LEN);
                        assert!(exercise(&p) > 0);
                    }
                    Err(e) => {
                        assert!(len < HEADER_LEN);
                        assert_eq!(e, WireError::Truncated);
                    }
                }
            }
        }
    }

    #[test]
    fn random_buffers_never_make_an_accessor_or_setter_panic() {
        let (src, dst) = ns_addrs();
        let mut rng = XorShift(0x5858);
        let mut buf = [0u8; 128];
        let mut accepted = 0;
        let mut targets = 0;
        for _ in 0..FUZZ_ITERATIONS {
            let len = random_buffer(&mut rng, &mut buf);
            if len > 0 && rng.below(2) == 0 {
                buf[0] = 133 + rng.below(5) as u8;
            }
            let Ok(p) = Packet::new_checked(&buf[..len]) else {
                assert!(len < HEADER_LEN);
                continue;
            };
            accepted += 1;
            exercise(&p);
            if p.ndp_target_addr().is_some() {
                targets += 1;
            }
            let repr = Repr::parse(&p).unwrap();
            let mut out = [0u8; 128];
            let out = &mut out[..repr.buffer_len()];
            out[8..].copy_from_slice(p.payload());
            let mut emitted = Packet::new_unchecked(&mut *out);
            repr.emit(&mut emitted, src, dst).unwrap();
            assert!(emitted.verify_checksum(src, dst));
            assert_eq!(Repr::parse(&emitted), Ok(repr));

            let mut copy = buf;
            let mut m = Packet::new_checked(&mut copy[..len]).unwrap();
            m.set_msg_type(Message::from(rng.next_u8()));
            m.set_msg_code(rng.next_u8());
            m.set_echo_ident(rng.next_u16());
            m.set_echo_seq_no(rng.next_u16());
            m.set_rest_of_header(rng.next_u32());
            let _ = m.set_ndp_target_addr(Ipv6Addr::LOCALHOST);
            m.payload_mut().fill(5);
            m.fill_checksum(src, dst);
            assert!(m.verify_checksum(src, dst));
            exercise(&m);
        }
        assert!(accepted > 15_000, "accepted {accepted}");
        assert!(targets > 2_000, "targets {targets}");
    }

    #[test]
    fn emit_rejects_short_buffers() {
        let repr = Repr::EchoReply {
            ident: 1,
            seq_no: 2,
            payload_len: 4,
        };
        let mut short = [0u8; 11];
        let r = repr.emit(
            &mut Packet::new_unchecked(&mut short[..]),
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::LOCALHOST,
        );
        assert_eq!(r, Err(WireError::Truncated));
        assert_eq!(short, [0u8; 11]);
    }
}
