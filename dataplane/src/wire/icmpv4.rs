//! ICMP for IPv4 (RFC 792): message type and code, checksum, the echo
//! identifier and sequence number, and the raw "rest of header" word that
//! other messages use (e.g. the next-hop MTU of RFC 1191).
//!
//! The checksum covers the whole ICMP message with no pseudo-header, so
//! build the view over exactly the IP payload (`ipv4::Packet::payload`).

use super::{checksum, read_u16, read_u32, write_u16, write_u32, Field, WireError};

/// Length of the ICMP header: type, code, checksum and the 4-byte
/// rest-of-header word.
pub const HEADER_LEN: usize = 8;

mod field {
    use super::Field;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// Echo identifier / first half of the rest-of-header word.
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const REST_OF_HEADER: Field = 4..8;
}

/// ICMPv4 message types (IANA "ICMP Type Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    /// 0
    EchoReply,
    /// 3
    DstUnreachable,
    /// 5
    Redirect,
    /// 8
    EchoRequest,
    /// 9 (RFC 1256)
    RouterAdvert,
    /// 10 (RFC 1256)
    RouterSolicit,
    /// 11
    TimeExceeded,
    /// 12
    ParamProblem,
    /// 13
    Timestamp,
    /// 14
    TimestampReply,
    /// Any other type.
    Unknown(u8),
}

impl From<u8> for Message {
    fn from(value: u8) -> Self {
        match value {
            0 => Message::EchoReply,
            3 => Message::DstUnreachable,
            5 => Message::Redirect,
            8 => Message::EchoRequest,
            9 => Message::RouterAdvert,
            10 => Message::RouterSolicit,
            11 => Message::TimeExceeded,
            12 => Message::ParamProblem,
            13 => Message::Timestamp,
            14 => Message::TimestampReply,
            other => Message::Unknown(other),
        }
    }
}

impl From<Message> for u8 {
    fn from(value: Message) -> Self {
        match value {
            Message::EchoReply => 0,
            Message::DstUnreachable => 3,
            Message::Redirect => 5,
            Message::EchoRequest => 8,
            Message::RouterAdvert => 9,
            Message::RouterSolicit => 10,
            Message::TimeExceeded => 11,
            Message::ParamProblem => 12,
            Message::Timestamp => 13,
            Message::TimestampReply => 14,
            Message::Unknown(other) => other,
        }
    }
}

/// Codes of Destination Unreachable (RFC 792, RFC 1812 section 5.2.7.1).
pub mod dst_unreachable {
    pub const NET_UNREACHABLE: u8 = 0;
    pub const HOST_UNREACHABLE: u8 = 1;
    pub const PROTO_UNREACHABLE: u8 = 2;
    pub const PORT_UNREACHABLE: u8 = 3;
    /// "Fragmentation needed and DF set"; the next-hop MTU (RFC 1191) is
    /// in the low 16 bits of the rest-of-header word.
    pub const FRAG_REQUIRED: u8 = 4;
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Codes of Time Exceeded (RFC 792).
pub mod time_exceeded {
    pub const TTL_EXPIRED: u8 = 0;
    pub const FRAG_EXPIRED: u8 = 1;
}

/// A read/write view of an ICMPv4 message.
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

    /// `Truncated` if the buffer is shorter than the 8-byte header.
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

    /// Echo identifier (bytes 4..6, meaningful for echo messages).
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    /// Echo sequence number (bytes 6..8, meaningful for echo messages).
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO.start)
    }

    /// The raw rest-of-header word (bytes 4..8).
    pub fn rest_of_header(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REST_OF_HEADER.start)
    }

    /// Everything after the 8-byte header: echo data, or the invoking
    /// datagram of an error message.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Whether the checksum over the whole buffer is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0
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

    /// Sets the raw rest-of-header word.
    pub fn set_rest_of_header(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::REST_OF_HEADER.start, value);
    }

    /// Recomputes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let ck = checksum::data(self.buffer.as_ref());
        self.set_checksum(ck);
    }

    /// Mutable access to the payload, see [`Packet::payload`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// An ICMPv4 message header. Echo messages (with code 0) get their own
/// variants; everything else keeps its type, code and raw rest-of-header
/// word, so any message round-trips.
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

    /// Writes the header and fills the checksum over the first
    /// `buffer_len()` bytes. The payload must already be in place (or call
    /// [`Packet::fill_checksum`] after writing it). `Truncated` if the
    /// buffer is shorter than `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
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
        let ck = checksum::data(&packet.buffer.as_ref()[..total]);
        packet.set_checksum(ck);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{random_buffer, XorShift, FUZZ_ITERATIONS, PING_REQUEST};
    use super::*;

    fn exercise<T: AsRef<[u8]>>(p: &Packet<T>) -> u64 {
        assert_eq!(p.payload().len() + HEADER_LEN, p.buffer.as_ref().len());
        assert_eq!(
            p.rest_of_header(),
            u32::from(p.echo_ident()) << 16 | u32::from(p.echo_seq_no())
        );
        u64::from(u8::from(p.msg_type()))
            + u64::from(p.msg_code())
            + u64::from(p.checksum())
            + u64::from(p.rest_of_header())
            + p.payload().len() as u64
            + u64::from(p.verify_checksum())
            + p.header_len() as u64
    }

    #[test]
    fn ping_request_round_trips_through_repr() {
        let icmp = &PING_REQUEST[34..];
        let packet = Packet::new_checked(icmp).unwrap();
        assert!(packet.verify_checksum());
        assert_eq!(packet.checksum(), 0xeafe);
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr::EchoRequest {
                ident: 0x0b2f,
                seq_no: 1,
                payload_len: 48
            }
        );
        assert_eq!(
            &packet.payload()[8..],
            &(0x10..0x38).collect::<Vec<u8>>()[..]
        );
        let mut out = [0u8; 56];
        out[8..].copy_from_slice(packet.payload());
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(&out[..], icmp);
    }

    #[test]
    fn echo_reply_built_in_place_from_a_request_verifies() {
        let mut icmp = [0u8; 56];
        icmp.copy_from_slice(&PING_REQUEST[34..]);
        let mut p = Packet::new_checked(&mut icmp[..]).unwrap();
        p.set_msg_type(Message::EchoReply);
        p.fill_checksum();
        assert!(p.verify_checksum());
        // 8 -> 0 in the type byte lowers the sum by 0x0800.
        assert_eq!(p.checksum(), 0xeafe + 0x0800);
        assert_eq!(
            Repr::parse(&p),
            Ok(Repr::EchoReply {
                ident: 0x0b2f,
                seq_no: 1,
                payload_len: 48
            })
        );
    }

    #[test]
    fn error_messages_keep_type_code_and_rest_of_header() {
        // Fragmentation needed, next-hop MTU 1400, quoting a 28-byte header.
        let mut msg = [0u8; 36];
        msg[8..36].copy_from_slice(&PING_REQUEST[14..42]);
        let repr = Repr::Other {
            msg_type: Message::DstUnreachable,
            code: dst_unreachable::FRAG_REQUIRED,
            rest_of_header: 1400,
            payload_len: 28,
        };
        let mut p = Packet::new_unchecked(&mut msg[..]);
        repr.emit(&mut p).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(&msg[..8], &[3, 4, msg[2], msg[3], 0, 0, 0x05, 0x78]);
        let p = Packet::new_checked(&msg[..]).unwrap();
        assert_eq!(Repr::parse(&p), Ok(repr));
        // An echo type with a non-zero code is not an echo.
        let mut odd = msg;
        odd[0] = 8;
        odd[1] = 1;
        let parsed = Repr::parse(&Packet::new_checked(&odd[..]).unwrap()).unwrap();
        assert!(matches!(
            parsed,
            Repr::Other {
                msg_type: Message::EchoRequest,
                code: 1,
                ..
            }
        ));
        assert_eq!(time_exceeded::TTL_EXPIRED, 0);
    }

    #[test]
    fn message_types_round_trip_every_value() {
        for n in 0..=u8::MAX {
            assert_eq!(u8::from(Message::from(n)), n);
        }
        assert_eq!(Message::from(8), Message::EchoRequest);
        assert_eq!(Message::from(11), Message::TimeExceeded);
        assert_eq!(Message::from(42), Message::Unknown(42));
    }

    #[test]
    fn truncated_prefixes_are_rejected_or_fully_readable() {
        let icmp = &PING_REQUEST[34..];
        for len in 0..=icmp.len() {
            match Packet::new_checked(&icmp[..len]) {
                Ok(p) => {
                    assert!(len >= HEADER_LEN);
                    assert!(exercise(&p) > 0);
                    assert_eq!(p.verify_checksum(), len == icmp.len());
                }
                Err(e) => {
                    assert!(len < HEADER_LEN);
                    assert_eq!(e, WireError::Truncated);
                }
            }
        }
    }

    #[test]
    fn random_buffers_never_make_an_accessor_or_setter_panic() {
        let mut rng = XorShift(0x0101);
        let mut buf = [0u8; 128];
        let mut accepted = 0;
        for _ in 0..FUZZ_ITERATIONS {
            let len = random_buffer(&mut rng, &mut buf);
            let Ok(p) = Packet::new_checked(&buf[..len]) else {
                assert!(len < HEADER_LEN);
                continue;
            };
            accepted += 1;
            exercise(&p);
            let repr = Repr::parse(&p).unwrap();
            let mut out = [0u8; 128];
            let out = &mut out[..repr.buffer_len()];
            out[8..].copy_from_slice(p.payload());
            let mut emitted = Packet::new_unchecked(&mut *out);
            repr.emit(&mut emitted).unwrap();
            assert!(emitted.verify_checksum());
            assert_eq!(Repr::parse(&emitted), Ok(repr));
            assert_eq!(&out[4..], &buf[4..len]);

            let mut copy = buf;
            let mut m = Packet::new_checked(&mut copy[..len]).unwrap();
            m.set_msg_type(Message::from(rng.next_u8()));
            m.set_msg_code(rng.next_u8());
            m.set_echo_ident(rng.next_u16());
            m.set_echo_seq_no(rng.next_u16());
            m.set_rest_of_header(rng.next_u32());
            m.payload_mut().fill(4);
            m.fill_checksum();
            assert!(m.verify_checksum());
            exercise(&m);
        }
        assert!(accepted > 15_000, "accepted {accepted}");
    }

    #[test]
    fn emit_rejects_short_buffers() {
        let repr = Repr::EchoRequest {
            ident: 1,
            seq_no: 2,
            payload_len: 4,
        };
        let mut short = [0u8; 11];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut short[..])),
            Err(WireError::Truncated)
        );
        assert_eq!(short, [0u8; 11]);
    }
}
