//! The BFD Control packet on the wire (RFC 5880 §4.1 mandatory section,
//! §4.2–§4.4 authentication sections), as a smoltcp-style view over a byte
//! buffer plus an owned, validated [`Repr`].
//!
//! [`BfdPacket::new_checked`] validates the lengths once (RFC 5880 §6.8.6,
//! first three checks); [`Repr::parse`] validates the field values that make
//! a packet malformed on its own (the remaining §6.8.6 checks that need no
//! session). Only keyed SHA1 and meticulous keyed SHA1 authentication
//! sections (§4.4) are decoded; simple password and keyed MD5 are reported
//! as unsupported.

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const VERS_DIAG: usize = 0;
    pub const FLAGS: usize = 1;
    pub const DETECT_MULT: usize = 2;
    pub const LENGTH: usize = 3;
    pub const MY_DISCR: Field = 4..8;
    pub const YOUR_DISCR: Field = 8..12;
    pub const DESIRED_MIN_TX: Field = 12..16;
    pub const REQUIRED_MIN_RX: Field = 16..20;
    pub const REQUIRED_MIN_ECHO_RX: Field = 20..24;
    // Authentication section header (RFC 5880 §4.2).
    pub const AUTH_TYPE: usize = 24;
    pub const AUTH_LEN: usize = 25;
    // Keyed SHA1 / meticulous keyed SHA1 section (RFC 5880 §4.4).
    pub const AUTH_KEY_ID: usize = 26;
    pub const AUTH_RESERVED: usize = 27;
    pub const AUTH_SEQ: Field = 28..32;
    pub const AUTH_DIGEST: Field = 32..52;
}

/// Byte range of the SHA1 hash inside a packet, for the signer.
pub(crate) const AUTH_DIGEST_RANGE: core::ops::Range<usize> = field::AUTH_DIGEST;

/// The only protocol version (RFC 5880 §4.1).
pub const VERSION: u8 = 1;
/// Length of the mandatory section.
pub const HEADER_LEN: usize = 24;
/// Length of a keyed SHA1 authentication section (RFC 5880 §4.4).
pub const SHA1_AUTH_LEN: usize = 28;
/// Length of the SHA1 digest carried in the section.
pub const SHA1_DIGEST_LEN: usize = 20;
/// The largest packet this implementation emits (header plus SHA1 section);
/// a transmit buffer of this size always suffices.
pub const MAX_PACKET_LEN: usize = HEADER_LEN + SHA1_AUTH_LEN;

const FLAG_POLL: u8 = 0x20;
const FLAG_FINAL: u8 = 0x10;
const FLAG_CPI: u8 = 0x08;
const FLAG_AUTH: u8 = 0x04;
const FLAG_DEMAND: u8 = 0x02;
const FLAG_MULTIPOINT: u8 = 0x01;

/// Session state (RFC 5880 §4.1 "Sta", §6.2). Two bits, so every value is
/// known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    AdminDown,
    Down,
    Init,
    Up,
}

impl State {
    fn from_bits(bits: u8) -> State {
        match bits & 0x3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }
}

/// Diagnostic code (RFC 5880 §4.1 "Diag"): why the local system last left
/// Up. Five bits; the values 9–31 are reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diag {
    None,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    Unknown(u8),
}

impl From<u8> for Diag {
    fn from(v: u8) -> Diag {
        match v & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            other => Diag::Unknown(other),
        }
    }
}

impl From<Diag> for u8 {
    fn from(d: Diag) -> u8 {
        match d {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Unknown(v) => v & 0x1f,
        }
    }
}

/// Authentication type (RFC 5880 §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthType {
    SimplePassword,
    KeyedMd5,
    MeticulousKeyedMd5,
    KeyedSha1,
    MeticulousKeyedSha1,
    Unknown(u8),
}

impl From<u8> for AuthType {
    fn from(v: u8) -> AuthType {
        match v {
            1 => AuthType::SimplePassword,
            2 => AuthType::KeyedMd5,
            3 => AuthType::MeticulousKeyedMd5,
            4 => AuthType::KeyedSha1,
            5 => AuthType::MeticulousKeyedSha1,
            other => AuthType::Unknown(other),
        }
    }
}

impl From<AuthType> for u8 {
    fn from(t: AuthType) -> u8 {
        match t {
            AuthType::SimplePassword => 1,
            AuthType::KeyedMd5 => 2,
            AuthType::MeticulousKeyedMd5 => 3,
            AuthType::KeyedSha1 => 4,
            AuthType::MeticulousKeyedSha1 => 5,
            AuthType::Unknown(v) => v,
        }
    }
}

/// Why a packet is malformed regardless of the session it is meant for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer bytes than the mandatory section.
    Truncated,
    /// Length field below the minimum (24, or 26 with the A bit) or beyond
    /// the UDP payload.
    BadLength,
    /// Version other than 1.
    BadVersion,
    /// Detect Mult of zero.
    ZeroDetectMult,
    /// Multipoint (M) bit set.
    Multipoint,
    /// My Discriminator of zero.
    ZeroMyDiscriminator,
    /// Your Discriminator of zero while the sender is neither Down nor
    /// AdminDown.
    ZeroYourDiscriminator,
    /// An authentication section whose Auth Len does not fit the packet or
    /// the type.
    BadAuthLength,
    /// Simple password, keyed MD5 or an unassigned type.
    UnsupportedAuthType(AuthType),
}

/// The buffer is shorter than the packet to emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTooSmall;

/// A read (and, for `AsMut` buffers, write) view of a BFD Control packet.
#[derive(Debug, Clone)]
pub struct BfdPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> BfdPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic on a short
    /// buffer, so only use this on buffers sized by this module.
    pub fn new_unchecked(buffer: T) -> BfdPacket<T> {
        BfdPacket { buffer }
    }

    /// Wraps a received UDP payload, checking the lengths (RFC 5880 §6.8.6):
    /// the mandatory section is present and the Length field is at least the
    /// minimum and at most the payload. After this no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<BfdPacket<T>, ParseError> {
        let packet = BfdPacket::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    fn check_len(&self) -> Result<(), ParseError> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let min = if self.auth_present() {
            HEADER_LEN + 2
        } else {
            HEADER_LEN
        };
        let len = usize::from(self.length());
        if len < min || len > buf.len() {
            return Err(ParseError::BadLength);
        }
        Ok(())
    }

    fn be32(&self, f: field::Field) -> u32 {
        let b = &self.buffer.as_ref()[f];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERS_DIAG] >> 5
    }

    pub fn diag(&self) -> Diag {
        Diag::from(self.buffer.as_ref()[field::VERS_DIAG])
    }

    pub fn state(&self) -> State {
        State::from_bits(self.flags() >> 6)
    }

    pub fn poll(&self) -> bool {
        self.flags() & FLAG_POLL != 0
    }

    pub fn final_(&self) -> bool {
        self.flags() & FLAG_FINAL != 0
    }

    pub fn control_plane_independent(&self) -> bool {
        self.flags() & FLAG_CPI != 0
    }

    pub fn auth_present(&self) -> bool {
        self.flags() & FLAG_AUTH != 0
    }

    pub fn demand(&self) -> bool {
        self.flags() & FLAG_DEMAND != 0
    }

    pub fn multipoint(&self) -> bool {
        self.flags() & FLAG_MULTIPOINT != 0
    }

    pub fn detect_mult(&self) -> u8 {
        self.buffer.as_ref()[field::DETECT_MULT]
    }

    /// The Length field: the whole BFD packet, authentication included.
    pub fn length(&self) -> u8 {
        self.buffer.as_ref()[field::LENGTH]
    }

    pub fn my_discriminator(&self) -> u32 {
        self.be32(field::MY_DISCR)
    }

    pub fn your_discriminator(&self) -> u32 {
        self.be32(field::YOUR_DISCR)
    }

    /// Desired Min TX Interval, microseconds.
    pub fn desired_min_tx(&self) -> u32 {
        self.be32(field::DESIRED_MIN_TX)
    }

    /// Required Min RX Interval, microseconds.
    pub fn required_min_rx(&self) -> u32 {
        self.be32(field::REQUIRED_MIN_RX)
    }

    /// Required Min Echo RX Interval, microseconds.
    pub fn required_min_echo_rx(&self) -> u32 {
        self.be32(field::REQUIRED_MIN_ECHO_RX)
    }

    /// The bytes the Length field covers (the packet without trailing
    /// padding of the UDP payload).
    pub fn packet_bytes(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        &buf[..usize::from(self.length()).min(buf.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> BfdPacket<T> {
    fn set_be32(&mut self, f: field::Field, v: u32) {
        self.buffer.as_mut()[f].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_version_diag(&mut self, version: u8, diag: Diag) {
        self.buffer.as_mut()[field::VERS_DIAG] = (version << 5) | u8::from(diag);
    }

    /// Writes the state and the P, F, C, A, D, M bits.
    #[allow(clippy::too_many_arguments)]
    pub fn set_state_flags(
        &mut self,
        state: State,
        poll: bool,
        final_: bool,
        cpi: bool,
        auth: bool,
        demand: bool,
        multipoint: bool,
    ) {
        let mut f = state.bits() << 6;
        for (on, bit) in [
            (poll, FLAG_POLL),
            (final_, FLAG_FINAL),
            (cpi, FLAG_CPI),
            (auth, FLAG_AUTH),
            (demand, FLAG_DEMAND),
            (multipoint, FLAG_MULTIPOINT),
        ] {
            if on {
                f |= bit;
            }
        }
        self.buffer.as_mut()[field::FLAGS] = f;
    }

    pub fn set_detect_mult(&mut self, v: u8) {
        self.buffer.as_mut()[field::DETECT_MULT] = v;
    }

    pub fn set_length(&mut self, v: u8) {
        self.buffer.as_mut()[field::LENGTH] = v;
    }

    pub fn set_my_discriminator(&mut self, v: u32) {
        self.set_be32(field::MY_DISCR, v);
    }

    pub fn set_your_discriminator(&mut self, v: u32) {
        self.set_be32(field::YOUR_DISCR, v);
    }

    pub fn set_desired_min_tx(&mut self, v: u32) {
        self.set_be32(field::DESIRED_MIN_TX, v);
    }

    pub fn set_required_min_rx(&mut self, v: u32) {
        self.set_be32(field::REQUIRED_MIN_RX, v);
    }

    pub fn set_required_min_echo_rx(&mut self, v: u32) {
        self.set_be32(field::REQUIRED_MIN_ECHO_RX, v);
    }
}

/// A keyed SHA1 or meticulous keyed SHA1 authentication section (RFC 5880
/// §4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthRepr {
    /// [`AuthType::KeyedSha1`] or [`AuthType::MeticulousKeyedSha1`].
    pub auth_type: AuthType,
    pub key_id: u8,
    pub sequence: u32,
    /// The hash as received; on emit, whatever the signer will overwrite.
    pub digest: [u8; SHA1_DIGEST_LEN],
}

/// The validated fields of a BFD Control packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    pub control_plane_independent: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    /// Microseconds.
    pub desired_min_tx: u32,
    /// Microseconds.
    pub required_min_rx: u32,
    /// Microseconds.
    pub required_min_echo_rx: u32,
    /// Present exactly when the A bit is set.
    pub auth: Option<AuthRepr>,
}

impl Repr {
    /// Validates the fields of a length-checked packet (RFC 5880 §6.8.6,
    /// the checks that need no session state) and copies them out.
    pub fn parse<T: AsRef<[u8]>>(packet: &BfdPacket<T>) -> Result<Repr, ParseError> {
        if packet.version() != VERSION {
            return Err(ParseError::BadVersion);
        }
        if packet.detect_mult() == 0 {
            return Err(ParseError::ZeroDetectMult);
        }
        if packet.multipoint() {
            return Err(ParseError::Multipoint);
        }
        if packet.my_discriminator() == 0 {
            return Err(ParseError::ZeroMyDiscriminator);
        }
        let state = packet.state();
        if packet.your_discriminator() == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(ParseError::ZeroYourDiscriminator);
        }
        let auth = if packet.auth_present() {
            Some(parse_auth(packet)?)
        } else {
            None
        };
        Ok(Repr {
            diag: packet.diag(),
            state,
            poll: packet.poll(),
            final_: packet.final_(),
            control_plane_independent: packet.control_plane_independent(),
            demand: packet.demand(),
            detect_mult: packet.detect_mult(),
            my_discriminator: packet.my_discriminator(),
            your_discriminator: packet.your_discriminator(),
            desired_min_tx: packet.desired_min_tx(),
            required_min_rx: packet.required_min_rx(),
            required_min_echo_rx: packet.required_min_echo_rx(),
            auth,
        })
    }

    /// Bytes [`Repr::emit`] writes; also the Length field.
    pub fn buffer_len(&self) -> usize {
        match self.auth {
            Some(_) => HEADER_LEN + SHA1_AUTH_LEN,
            None => HEADER_LEN,
        }
    }

    /// Writes the packet into the front of `buf` and returns its length.
    /// The Multipoint bit is always clear (RFC 5880 §4.1). A SHA1 section
    /// is written with the digest given; the signer overwrites it.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let len = self.buffer_len();
        let Some(out) = buf.get_mut(..len) else {
            return Err(BufferTooSmall);
        };
        let mut p = BfdPacket::new_unchecked(out);
        p.set_version_diag(VERSION, self.diag);
        p.set_state_flags(
            self.state,
            self.poll,
            self.final_,
            self.control_plane_independent,
            self.auth.is_some(),
            self.demand,
            false,
        );
        p.set_detect_mult(self.detect_mult);
        // `len` is 24 or 52, both below 256.
        p.set_length(len as u8);
        p.set_my_discriminator(self.my_discriminator);
        p.set_your_discriminator(self.your_discriminator);
        p.set_desired_min_tx(self.desired_min_tx);
        p.set_required_min_rx(self.required_min_rx);
        p.set_required_min_echo_rx(self.required_min_echo_rx);
        if let Some(a) = &self.auth {
            let b = p.buffer;
            b[field::AUTH_TYPE] = u8::from(a.auth_type);
            b[field::AUTH_LEN] = SHA1_AUTH_LEN as u8;
            b[field::AUTH_KEY_ID] = a.key_id;
            b[field::AUTH_RESERVED] = 0;
            b[field::AUTH_SEQ].copy_from_slice(&a.sequence.to_be_bytes());
            b[field::AUTH_DIGEST].copy_from_slice(&a.digest);
        }
        Ok(len)
    }
}

fn parse_auth<T: AsRef<[u8]>>(packet: &BfdPacket<T>) -> Result<AuthRepr, ParseError> {
    // `check_len` guarantees Length >= 26 and Length <= buffer.
    let bytes = packet.packet_bytes();
    let auth_type = AuthType::from(bytes[field::AUTH_TYPE]);
    let auth_len = usize::from(bytes[field::AUTH_LEN]);
    if auth_len < 2 || HEADER_LEN + auth_len > bytes.len() {
        return Err(ParseError::BadAuthLength);
    }
    match auth_type {
        AuthType::KeyedSha1 | AuthType::MeticulousKeyedSha1 => {
            if auth_len != SHA1_AUTH_LEN {
                return Err(ParseError::BadAuthLength);
            }
            let s = &bytes[field::AUTH_SEQ];
            let mut digest = [0u8; SHA1_DIGEST_LEN];
            digest.copy_from_slice(&bytes[field::AUTH_DIGEST]);
            Ok(AuthRepr {
                auth_type,
                key_id: bytes[field::AUTH_KEY_ID],
                sequence: u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
                digest,
            })
        }
        other => Err(ParseError::UnsupportedAuthType(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Up, no auth, mult 3, my 1, your 2, 300 ms / 300 ms, echo 0.
    static PLAIN: [u8; 24] = [
        0x20, 0xc0, 0x03, 0x18, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x04, 0x93,
        0xe0, 0x00, 0x04, 0x93, 0xe0, 0x00, 0x00, 0x00, 0x00,
    ];

    fn plain_repr() -> Repr {
        Repr {
            diag: Diag::None,
            state: State::Up,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 1,
            your_discriminator: 2,
            desired_min_tx: 300_000,
            required_min_rx: 300_000,
            required_min_echo_rx: 0,
            auth: None,
        }
    }

    fn parse(bytes: &[u8]) -> Result<Repr, ParseError> {
        Repr::parse(&BfdPacket::new_checked(bytes)?)
    }

    #[test]
    fn parses_static_packet() {
        assert_eq!(parse(&PLAIN), Ok(plain_repr()));
    }

    #[test]
    fn emit_matches_static_packet() {
        let mut buf = [0xffu8; 64];
        let n = plain_repr().emit(&mut buf).unwrap();
        assert_eq!(&buf[..n], &PLAIN[..]);
    }

    #[test]
    fn round_trips_flags_diag_and_sha1_section() {
        let repr = Repr {
            diag: Diag::NeighborSignaledSessionDown,
            state: State::Init,
            poll: true,
            final_: false,
            demand: true,
            control_plane_independent: true,
            auth: Some(AuthRepr {
                auth_type: AuthType::MeticulousKeyedSha1,
                key_id: 7,
                sequence: 0xdead_beef,
                digest: [0x5a; 20],
            }),
            ..plain_repr()
        };
        let mut buf = [0u8; MAX_PACKET_LEN];
        assert_eq!(repr.emit(&mut buf), Ok(52));
        assert_eq!(buf[3], 52);
        assert_eq!(buf[24], 5);
        assert_eq!(buf[25], 28);
        assert_eq!(parse(&buf), Ok(repr));
    }

    #[test]
    fn emit_into_short_buffer_fails_without_panicking() {
        let mut buf = [0u8; 23];
        assert_eq!(plain_repr().emit(&mut buf), Err(BufferTooSmall));
    }

    #[test]
    fn diag_and_auth_type_keep_unknown_values() {
        assert_eq!(Diag::from(9), Diag::Unknown(9));
        assert_eq!(u8::from(Diag::Unknown(31)), 31);
        for v in 0..32u8 {
            assert_eq!(u8::from(Diag::from(v)), v);
        }
        for v in 0..=255u8 {
            assert_eq!(u8::from(AuthType::from(v)), v);
        }
    }

    #[test]
    fn rejects_short_payload() {
        assert_eq!(parse(&PLAIN[..23]), Err(ParseError::Truncated));
        assert_eq!(parse(&[]), Err(ParseError::Truncated));
    }

    #[test]
    fn rejects_wrong_version() {
        for v in [0u8, 2, 7] {
            let mut b = PLAIN;
            b[0] = v << 5;
            assert_eq!(parse(&b), Err(ParseError::BadVersion));
        }
    }

    #[test]
    fn rejects_length_below_minimum_or_beyond_payload() {
        let mut b = PLAIN;
        b[3] = 23;
        assert_eq!(parse(&b), Err(ParseError::BadLength));
        b[3] = 25;
        assert_eq!(parse(&b), Err(ParseError::BadLength));
        // A bit set needs at least 26.
        let mut b = [0u8; 30];
        b[..24].copy_from_slice(&PLAIN);
        b[1] |= FLAG_AUTH;
        b[3] = 25;
        assert_eq!(parse(&b), Err(ParseError::BadLength));
    }

    #[test]
    fn accepts_trailing_bytes_beyond_length() {
        let mut b = [0u8; 40];
        b[..24].copy_from_slice(&PLAIN);
        assert_eq!(parse(&b), Ok(plain_repr()));
    }

    #[test]
    fn rejects_zero_detect_mult() {
        let mut b = PLAIN;
        b[2] = 0;
        assert_eq!(parse(&b), Err(ParseError::ZeroDetectMult));
    }

    #[test]
    fn rejects_multipoint_bit() {
        let mut b = PLAIN;
        b[1] |= FLAG_MULTIPOINT;
        assert_eq!(parse(&b), Err(ParseError::Multipoint));
    }

    #[test]
    fn rejects_zero_my_discriminator() {
        let mut b = PLAIN;
        b[4..8].fill(0);
        assert_eq!(parse(&b), Err(ParseError::ZeroMyDiscriminator));
    }

    #[test]
    fn zero_your_discriminator_only_allowed_while_down_or_admin_down() {
        for (state, ok) in [
            (State::AdminDown, true),
            (State::Down, true),
            (State::Init, false),
            (State::Up, false),
        ] {
            let mut b = PLAIN;
            b[8..12].fill(0);
            b[1] = state.bits() << 6;
            let r = parse(&b);
            if ok {
                assert_eq!(r.map(|r| r.state), Ok(state));
            } else {
                assert_eq!(r, Err(ParseError::ZeroYourDiscriminator));
            }
        }
    }

    #[test]
    fn rejects_unsupported_auth_types_and_bad_auth_len() {
        let mut b = [0u8; 52];
        b[..24].copy_from_slice(&PLAIN);
        b[1] |= FLAG_AUTH;
        b[3] = 52;
        // Simple password, length 5 ("abc").
        b[24] = 1;
        b[25] = 6;
        assert_eq!(
            parse(&b),
            Err(ParseError::UnsupportedAuthType(AuthType::SimplePassword))
        );
        b[24] = 2;
        b[25] = 24;
        assert_eq!(
            parse(&b),
            Err(ParseError::UnsupportedAuthType(AuthType::KeyedMd5))
        );
        // SHA1 with the wrong Auth Len.
        b[24] = 4;
        b[25] = 24;
        assert_eq!(parse(&b), Err(ParseError::BadAuthLength));
        // Auth Len beyond the Length field.
        b[25] = 28;
        b[3] = 40;
        assert_eq!(parse(&b), Err(ParseError::BadAuthLength));
        b[25] = 1;
        assert_eq!(parse(&b), Err(ParseError::BadAuthLength));
    }

    #[test]
    fn random_input_never_panics_and_accepted_input_round_trips() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = [0u8; 64];
        for i in 0..20_000 {
            for b in buf.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            // Keep the version right half the time to reach deeper checks.
            if i % 2 == 0 {
                buf[0] = (buf[0] & 0x1f) | 0x20;
            }
            let len = (seed as usize) % buf.len();
            if let Ok(repr) = parse(&buf[..len]) {
                let mut out = [0u8; MAX_PACKET_LEN];
                let n = repr.emit(&mut out).unwrap();
                assert_eq!(parse(&out[..n]), Ok(repr));
            }
        }
    }
}
