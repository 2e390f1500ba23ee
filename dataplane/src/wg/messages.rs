//! The four WireGuard message formats (whitepaper sections 5.4.2 to 5.4.7)
//! as smoltcp-style zero-copy views over caller-owned buffers.
//!
//! Every message starts with a little-endian `u32` type: one type byte and
//! three reserved zero bytes. [`classify`] checks the type, the reserved bytes
//! and the exact (handshake) or minimum (transport) length, which is all a
//! receiver needs before dispatching. The views' `new_checked` validate the
//! length only, so they can wrap a zeroed buffer that is about to be filled;
//! after that no accessor can panic. Offsets live in [`field`].

use core::fmt;

/// Type byte of a handshake initiation.
pub const MSG_INITIATION: u8 = 1;
/// Type byte of a handshake response.
pub const MSG_RESPONSE: u8 = 2;
/// Type byte of a cookie reply.
pub const MSG_COOKIE_REPLY: u8 = 3;
/// Type byte of a transport data message.
pub const MSG_TRANSPORT: u8 = 4;

/// Length of a handshake initiation.
pub const INITIATION_LEN: usize = 148;
/// Length of a handshake response.
pub const RESPONSE_LEN: usize = 92;
/// Length of a cookie reply.
pub const COOKIE_REPLY_LEN: usize = 64;
/// Length of the transport header: type, receiver index, counter.
pub const TRANSPORT_HEADER_LEN: usize = 16;
/// Length of the Poly1305 tag that ends a transport message.
pub const TRANSPORT_TAG_LEN: usize = 16;
/// Shortest transport message: a header and the tag of an empty keepalive.
pub const TRANSPORT_MIN_LEN: usize = TRANSPORT_HEADER_LEN + TRANSPORT_TAG_LEN;
/// Length of mac1 and mac2, which end both handshake messages.
pub const MAC_LEN: usize = 16;

/// Byte ranges of every field.
pub mod field {
    /// A byte range inside a message.
    pub type Field = core::ops::Range<usize>;

    /// Type byte plus three reserved zero bytes (a little-endian `u32`).
    pub const TYPE: Field = 0..4;

    /// Handshake initiation fields.
    pub mod initiation {
        use super::Field;
        /// Initiator's sender index.
        pub const SENDER: Field = 4..8;
        /// Initiator's unencrypted ephemeral public key.
        pub const EPHEMERAL: Field = 8..40;
        /// Initiator's static public key, encrypted (32 + 16 tag).
        pub const STATIC: Field = 40..88;
        /// TAI64N timestamp, encrypted (12 + 16 tag).
        pub const TIMESTAMP: Field = 88..116;
        /// mac1 over everything before it.
        pub const MAC1: Field = 116..132;
        /// mac2 over everything before it.
        pub const MAC2: Field = 132..148;
    }

    /// Handshake response fields.
    pub mod response {
        use super::Field;
        /// Responder's sender index.
        pub const SENDER: Field = 4..8;
        /// The initiator's sender index, echoed.
        pub const RECEIVER: Field = 8..12;
        /// Responder's unencrypted ephemeral public key.
        pub const EPHEMERAL: Field = 12..44;
        /// AEAD of the empty string: a bare tag.
        pub const EMPTY: Field = 44..60;
        /// mac1 over everything before it.
        pub const MAC1: Field = 60..76;
        /// mac2 over everything before it.
        pub const MAC2: Field = 76..92;
    }

    /// Cookie reply fields.
    pub mod cookie_reply {
        use super::Field;
        /// Sender index of the handshake message this answers.
        pub const RECEIVER: Field = 4..8;
        /// Random XChaCha20 nonce.
        pub const NONCE: Field = 8..32;
        /// The cookie, encrypted (16 + 16 tag).
        pub const COOKIE: Field = 32..64;
    }

    /// Transport data fields.
    pub mod transport {
        use super::Field;
        /// The receiver's session index.
        pub const RECEIVER: Field = 4..8;
        /// The 64-bit little-endian nonce counter.
        pub const COUNTER: Field = 8..16;
        /// Start of the encrypted, padded packet and its tag.
        pub const PAYLOAD: usize = 16;
    }
}

/// What a datagram claims to be, once its type and length check out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Handshake initiation (type 1, 148 bytes).
    Initiation,
    /// Handshake response (type 2, 92 bytes).
    Response,
    /// Cookie reply (type 3, 64 bytes).
    CookieReply,
    /// Transport data (type 4, at least 32 bytes).
    Transport,
}

impl MessageKind {
    /// The type byte on the wire.
    pub const fn message_type(self) -> u8 {
        match self {
            MessageKind::Initiation => MSG_INITIATION,
            MessageKind::Response => MSG_RESPONSE,
            MessageKind::CookieReply => MSG_COOKIE_REPLY,
            MessageKind::Transport => MSG_TRANSPORT,
        }
    }

    /// The kind for a type byte, if it is one of the four.
    pub const fn from_type(ty: u8) -> Option<Self> {
        match ty {
            MSG_INITIATION => Some(MessageKind::Initiation),
            MSG_RESPONSE => Some(MessageKind::Response),
            MSG_COOKIE_REPLY => Some(MessageKind::CookieReply),
            MSG_TRANSPORT => Some(MessageKind::Transport),
            _ => None,
        }
    }
}

impl From<MessageKind> for u8 {
    fn from(kind: MessageKind) -> u8 {
        kind.message_type()
    }
}

/// Classifies a datagram: the type must be 1 to 4 with zero reserved bytes,
/// handshake messages must have their exact length and transport messages at
/// least [`TRANSPORT_MIN_LEN`]. Anything else is `None`. Never panics.
pub fn classify(packet: &[u8]) -> Option<MessageKind> {
    let [ty, 0, 0, 0, ..] = *packet else {
        return None;
    };
    let kind = MessageKind::from_type(ty)?;
    let len_ok = match kind {
        MessageKind::Initiation => packet.len() == INITIATION_LEN,
        MessageKind::Response => packet.len() == RESPONSE_LEN,
        MessageKind::CookieReply => packet.len() == COOKIE_REPLY_LEN,
        MessageKind::Transport => packet.len() >= TRANSPORT_MIN_LEN,
    };
    len_ok.then_some(kind)
}

/// A buffer is too short (or, for handshake messages, not exactly the
/// message's length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthError {
    /// The length the view needs.
    pub expected: usize,
    /// The buffer's length.
    pub got: usize,
}

impl fmt::Display for LengthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WireGuard message has {} bytes, expected {}",
            self.got, self.expected
        )
    }
}

impl std::error::Error for LengthError {}

fn read_u32(buf: &[u8], f: field::Field) -> u32 {
    u32::from_le_bytes(*array(buf, f))
}

fn array<const N: usize>(buf: &[u8], f: field::Field) -> &[u8; N] {
    buf[f]
        .try_into()
        .expect("field ranges have their array's width")
}

fn array_mut<const N: usize>(buf: &mut [u8], f: field::Field) -> &mut [u8; N] {
    (&mut buf[f])
        .try_into()
        .expect("field ranges have their array's width")
}

fn write_type(buf: &mut [u8], ty: u8) {
    buf[field::TYPE].copy_from_slice(&u32::from(ty).to_le_bytes());
}

macro_rules! view_common {
    ($name:ident, $check:expr, $len:expr) => {
        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps a buffer without checking its length; accessors panic
            /// if it is too short. Use [`Self::new_checked`] on input.
            pub const fn new_unchecked(buffer: T) -> Self {
                $name { buffer }
            }

            /// Wraps a buffer after checking its length, so no accessor can
            /// panic.
            pub fn new_checked(buffer: T) -> Result<Self, LengthError> {
                let got = buffer.as_ref().len();
                let check: fn(usize) -> bool = $check;
                if check(got) {
                    Ok($name { buffer })
                } else {
                    Err(LengthError {
                        expected: $len,
                        got,
                    })
                }
            }

            /// The wrapped buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }

            /// The whole message.
            pub fn as_bytes(&self) -> &[u8] {
                self.buffer.as_ref()
            }

            /// The type byte.
            pub fn message_type(&self) -> u8 {
                self.buffer.as_ref()[0]
            }
        }
    };
}

/// Handshake initiation view (148 bytes).
#[derive(Debug, Clone)]
pub struct Initiation<T: AsRef<[u8]>> {
    buffer: T,
}

view_common!(Initiation, |n| n == INITIATION_LEN, INITIATION_LEN);

impl<T: AsRef<[u8]>> Initiation<T> {
    /// Initiator's sender index.
    pub fn sender_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::initiation::SENDER)
    }
    /// Unencrypted ephemeral public key.
    pub fn ephemeral(&self) -> &[u8; 32] {
        array(self.buffer.as_ref(), field::initiation::EPHEMERAL)
    }
    /// Encrypted static public key.
    pub fn encrypted_static(&self) -> &[u8; 48] {
        array(self.buffer.as_ref(), field::initiation::STATIC)
    }
    /// Encrypted TAI64N timestamp.
    pub fn encrypted_timestamp(&self) -> &[u8; 28] {
        array(self.buffer.as_ref(), field::initiation::TIMESTAMP)
    }
    /// mac1.
    pub fn mac1(&self) -> &[u8; MAC_LEN] {
        array(self.buffer.as_ref(), field::initiation::MAC1)
    }
    /// mac2.
    pub fn mac2(&self) -> &[u8; MAC_LEN] {
        array(self.buffer.as_ref(), field::initiation::MAC2)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Initiation<T> {
    /// Writes type 1 and the zero reserved bytes.
    pub fn set_message_type(&mut self) {
        write_type(self.buffer.as_mut(), MSG_INITIATION);
    }
    /// Sets the sender index.
    pub fn set_sender_index(&mut self, index: u32) {
        self.buffer.as_mut()[field::initiation::SENDER].copy_from_slice(&index.to_le_bytes());
    }
    /// The ephemeral public key field.
    pub fn ephemeral_mut(&mut self) -> &mut [u8; 32] {
        array_mut(self.buffer.as_mut(), field::initiation::EPHEMERAL)
    }
    /// The encrypted static field.
    pub fn encrypted_static_mut(&mut self) -> &mut [u8; 48] {
        array_mut(self.buffer.as_mut(), field::initiation::STATIC)
    }
    /// The encrypted timestamp field.
    pub fn encrypted_timestamp_mut(&mut self) -> &mut [u8; 28] {
        array_mut(self.buffer.as_mut(), field::initiation::TIMESTAMP)
    }
}

/// Handshake response view (92 bytes).
#[derive(Debug, Clone)]
pub struct Response<T: AsRef<[u8]>> {
    buffer: T,
}

view_common!(Response, |n| n == RESPONSE_LEN, RESPONSE_LEN);

impl<T: AsRef<[u8]>> Response<T> {
    /// Responder's sender index.
    pub fn sender_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::response::SENDER)
    }
    /// The initiator's index this answers.
    pub fn receiver_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::response::RECEIVER)
    }
    /// Unencrypted ephemeral public key.
    pub fn ephemeral(&self) -> &[u8; 32] {
        array(self.buffer.as_ref(), field::response::EPHEMERAL)
    }
    /// The encrypted empty payload (a tag).
    pub fn encrypted_empty(&self) -> &[u8; 16] {
        array(self.buffer.as_ref(), field::response::EMPTY)
    }
    /// mac1.
    pub fn mac1(&self) -> &[u8; MAC_LEN] {
        array(self.buffer.as_ref(), field::response::MAC1)
    }
    /// mac2.
    pub fn mac2(&self) -> &[u8; MAC_LEN] {
        array(self.buffer.as_ref(), field::response::MAC2)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Response<T> {
    /// Writes type 2 and the zero reserved bytes.
    pub fn set_message_type(&mut self) {
        write_type(self.buffer.as_mut(), MSG_RESPONSE);
    }
    /// Sets the sender index.
    pub fn set_sender_index(&mut self, index: u32) {
        self.buffer.as_mut()[field::response::SENDER].copy_from_slice(&index.to_le_bytes());
    }
    /// Sets the receiver index.
    pub fn set_receiver_index(&mut self, index: u32) {
        self.buffer.as_mut()[field::response::RECEIVER].copy_from_slice(&index.to_le_bytes());
    }
    /// The ephemeral public key field.
    pub fn ephemeral_mut(&mut self) -> &mut [u8; 32] {
        array_mut(self.buffer.as_mut(), field::response::EPHEMERAL)
    }
    /// The encrypted empty field.
    pub fn encrypted_empty_mut(&mut self) -> &mut [u8; 16] {
        array_mut(self.buffer.as_mut(), field::response::EMPTY)
    }
}

/// Cookie reply view (64 bytes).
#[derive(Debug, Clone)]
pub struct CookieReply<T: AsRef<[u8]>> {
    buffer: T,
}

view_common!(CookieReply, |n| n == COOKIE_REPLY_LEN, COOKIE_REPLY_LEN);

impl<T: AsRef<[u8]>> CookieReply<T> {
    /// Sender index of the handshake message this answers.
    pub fn receiver_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::cookie_reply::RECEIVER)
    }
    /// The XChaCha20 nonce.
    pub fn nonce(&self) -> &[u8; 24] {
        array(self.buffer.as_ref(), field::cookie_reply::NONCE)
    }
    /// The encrypted cookie and its tag.
    pub fn encrypted_cookie(&self) -> &[u8; 32] {
        array(self.buffer.as_ref(), field::cookie_reply::COOKIE)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> CookieReply<T> {
    /// Writes type 3 and the zero reserved bytes.
    pub fn set_message_type(&mut self) {
        write_type(self.buffer.as_mut(), MSG_COOKIE_REPLY);
    }
    /// Sets the receiver index.
    pub fn set_receiver_index(&mut self, index: u32) {
        self.buffer.as_mut()[field::cookie_reply::RECEIVER].copy_from_slice(&index.to_le_bytes());
    }
    /// The nonce field.
    pub fn nonce_mut(&mut self) -> &mut [u8; 24] {
        array_mut(self.buffer.as_mut(), field::cookie_reply::NONCE)
    }
    /// The encrypted cookie field.
    pub fn encrypted_cookie_mut(&mut self) -> &mut [u8; 32] {
        array_mut(self.buffer.as_mut(), field::cookie_reply::COOKIE)
    }
}

/// Transport data view: the 16-byte header, then ciphertext and tag. The
/// checked length is [`TRANSPORT_MIN_LEN`].
#[derive(Debug, Clone)]
pub struct Transport<T: AsRef<[u8]>> {
    buffer: T,
}

view_common!(Transport, |n| n >= TRANSPORT_MIN_LEN, TRANSPORT_MIN_LEN);

impl<T: AsRef<[u8]>> Transport<T> {
    /// The receiver's session index.
    pub fn receiver_index(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::transport::RECEIVER)
    }
    /// The nonce counter.
    pub fn counter(&self) -> u64 {
        u64::from_le_bytes(*array(self.buffer.as_ref(), field::transport::COUNTER))
    }
    /// Ciphertext followed by the tag.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::transport::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Transport<T> {
    /// Writes type 4 and the zero reserved bytes.
    pub fn set_message_type(&mut self) {
        write_type(self.buffer.as_mut(), MSG_TRANSPORT);
    }
    /// Sets the receiver index.
    pub fn set_receiver_index(&mut self, index: u32) {
        self.buffer.as_mut()[field::transport::RECEIVER].copy_from_slice(&index.to_le_bytes());
    }
    /// Sets the counter.
    pub fn set_counter(&mut self, counter: u64) {
        self.buffer.as_mut()[field::transport::COUNTER].copy_from_slice(&counter.to_le_bytes());
    }
    /// Ciphertext followed by the tag.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::transport::PAYLOAD..]
    }
}

/// Writes a transport header (type 4, receiver index, counter) into the
/// first [`TRANSPORT_HEADER_LEN`] bytes of `header`, e.g. mbuf headroom.
pub fn write_transport_header(
    header: &mut [u8; TRANSPORT_HEADER_LEN],
    receiver_index: u32,
    counter: u64,
) {
    write_type(header, MSG_TRANSPORT);
    header[field::transport::RECEIVER].copy_from_slice(&receiver_index.to_le_bytes());
    header[field::transport::COUNTER].copy_from_slice(&counter.to_le_bytes());
}

/// For a handshake message (initiation or response) of length `len`: the
/// offset of mac1; mac1 covers `msg[..offset]`, mac2 covers
/// `msg[..offset + MAC_LEN]`. (Saturates at 0 for lengths no handshake
/// message has.)
pub const fn mac1_offset(len: usize) -> usize {
    len.saturating_sub(2 * MAC_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An initiation laid out by hand with distinct byte values per field.
    fn sample_initiation() -> [u8; INITIATION_LEN] {
        let mut m = [0u8; INITIATION_LEN];
        m[0] = 1;
        m[4..8].copy_from_slice(&[0x78, 0x56, 0x34, 0x12]);
        m[8..40].fill(0xe1);
        m[40..88].fill(0x5a);
        m[88..116].fill(0x7b);
        m[116..132].fill(0x01);
        m[132..148].fill(0x02);
        m
    }

    #[test]
    fn field_ranges_tile_each_message() {
        use field::*;
        assert_eq!(initiation::MAC2.end, INITIATION_LEN);
        assert_eq!(initiation::SENDER.start, TYPE.end);
        assert_eq!(initiation::EPHEMERAL.start, initiation::SENDER.end);
        assert_eq!(initiation::STATIC.start, initiation::EPHEMERAL.end);
        assert_eq!(initiation::TIMESTAMP.start, initiation::STATIC.end);
        assert_eq!(initiation::MAC1.start, initiation::TIMESTAMP.end);
        assert_eq!(initiation::MAC1.start, mac1_offset(INITIATION_LEN));
        assert_eq!(response::MAC2.end, RESPONSE_LEN);
        assert_eq!(response::EMPTY.end, response::MAC1.start);
        assert_eq!(response::MAC1.start, mac1_offset(RESPONSE_LEN));
        assert_eq!(cookie_reply::COOKIE.end, COOKIE_REPLY_LEN);
        assert_eq!(transport::COUNTER.end, TRANSPORT_HEADER_LEN);
        assert_eq!(TRANSPORT_MIN_LEN, 32);
    }

    #[test]
    fn initiation_view_reads_fields_at_their_offsets() {
        let m = sample_initiation();
        let v = Initiation::new_checked(&m[..]).unwrap();
        assert_eq!(v.message_type(), 1);
        assert_eq!(v.sender_index(), 0x1234_5678);
        assert_eq!(v.ephemeral(), &[0xe1; 32]);
        assert_eq!(v.encrypted_static(), &[0x5a; 48]);
        assert_eq!(v.encrypted_timestamp(), &[0x7b; 28]);
        assert_eq!(v.mac1(), &[0x01; 16]);
        assert_eq!(v.mac2(), &[0x02; 16]);
    }

    #[test]
    fn initiation_view_emits_what_it_reads() {
        let mut buf = [0u8; INITIATION_LEN];
        let mut v = Initiation::new_unchecked(&mut buf[..]);
        v.set_message_type();
        v.set_sender_index(0x1234_5678);
        v.ephemeral_mut().fill(0xe1);
        v.encrypted_static_mut().fill(0x5a);
        v.encrypted_timestamp_mut().fill(0x7b);
        buf[116..132].fill(0x01);
        buf[132..148].fill(0x02);
        assert_eq!(buf, sample_initiation());
    }

    #[test]
    fn response_and_cookie_reply_round_trip() {
        let mut buf = [0u8; RESPONSE_LEN];
        let mut r = Response::new_checked(&mut buf[..]).unwrap();
        r.set_message_type();
        r.set_sender_index(7);
        r.set_receiver_index(0xdead_beef);
        r.ephemeral_mut().fill(3);
        r.encrypted_empty_mut().fill(4);
        assert_eq!(
            &buf[..12],
            &[2, 0, 0, 0, 7, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde]
        );
        let r = Response::new_checked(&buf[..]).unwrap();
        assert_eq!((r.sender_index(), r.receiver_index()), (7, 0xdead_beef));
        assert_eq!(r.ephemeral(), &[3; 32]);
        assert_eq!(r.encrypted_empty(), &[4; 16]);
        assert_eq!(classify(&buf), Some(MessageKind::Response));

        let mut buf = [0u8; COOKIE_REPLY_LEN];
        let mut c = CookieReply::new_checked(&mut buf[..]).unwrap();
        c.set_message_type();
        c.set_receiver_index(9);
        c.nonce_mut().fill(5);
        c.encrypted_cookie_mut().fill(6);
        let c = CookieReply::new_checked(&buf[..]).unwrap();
        assert_eq!(c.receiver_index(), 9);
        assert_eq!(c.nonce(), &[5; 24]);
        assert_eq!(c.encrypted_cookie(), &[6; 32]);
        assert_eq!(classify(&buf), Some(MessageKind::CookieReply));
    }

    #[test]
    fn transport_header_is_type_index_counter_little_endian() {
        let mut hdr = [0u8; TRANSPORT_HEADER_LEN];
        write_transport_header(&mut hdr, 0x0403_0201, 0x0c0b_0a09_0807_0605);
        assert_eq!(hdr, [4, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let mut pkt = [0u8; 48];
        pkt[..16].copy_from_slice(&hdr);
        let t = Transport::new_checked(&pkt[..]).unwrap();
        assert_eq!(t.receiver_index(), 0x0403_0201);
        assert_eq!(t.counter(), 0x0c0b_0a09_0807_0605);
        assert_eq!(t.payload().len(), 32);
        assert_eq!(classify(&pkt), Some(MessageKind::Transport));
    }

    #[test]
    fn new_checked_rejects_wrong_lengths() {
        assert_eq!(
            Initiation::new_checked(&[0u8; 147][..]).unwrap_err(),
            LengthError {
                expected: 148,
                got: 147
            }
        );
        assert!(Initiation::new_checked(&[0u8; 149][..]).is_err());
        assert!(Response::new_checked(&[0u8; 91][..]).is_err());
        assert!(CookieReply::new_checked(&[0u8; 65][..]).is_err());
        assert!(Transport::new_checked(&[0u8; 31][..]).is_err());
        assert!(Transport::new_checked(&[0u8; 1500][..]).is_ok());
    }

    #[test]
    fn classify_checks_type_reserved_bytes_and_length() {
        let init = sample_initiation();
        assert_eq!(classify(&init), Some(MessageKind::Initiation));
        assert_eq!(classify(&init[..147]), None);
        let mut longer = [0u8; 149];
        longer[..148].copy_from_slice(&init);
        assert_eq!(classify(&longer), None);
        for i in 1..4 {
            let mut bad = init;
            bad[i] = 1;
            assert_eq!(classify(&bad), None, "reserved byte {i}");
        }
        for ty in [0u8, 5, 0xff] {
            let mut bad = init;
            bad[0] = ty;
            assert_eq!(classify(&bad), None, "type {ty}");
        }
        let mut transport = [0u8; 32];
        transport[0] = 4;
        assert_eq!(classify(&transport), Some(MessageKind::Transport));
        assert_eq!(classify(&transport[..31]), None);
        // A 148-byte transport message is transport, not an initiation.
        let mut t148 = [0u8; 148];
        t148[0] = 4;
        assert_eq!(classify(&t148), Some(MessageKind::Transport));
    }

    #[test]
    fn classify_never_panics_on_short_or_arbitrary_input() {
        for len in 0..200 {
            for ty in 0..=5u8 {
                let mut buf = vec![0u8; len];
                if let Some(b) = buf.first_mut() {
                    *b = ty;
                }
                let kind = classify(&buf);
                if let Some(kind) = kind {
                    assert_eq!(kind.message_type(), ty);
                }
            }
        }
    }

    #[test]
    fn message_kind_converts_both_ways() {
        for kind in [
            MessageKind::Initiation,
            MessageKind::Response,
            MessageKind::CookieReply,
            MessageKind::Transport,
        ] {
            assert_eq!(MessageKind::from_type(u8::from(kind)), Some(kind));
        }
        assert_eq!(MessageKind::from_type(0), None);
    }
}
