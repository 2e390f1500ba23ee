//! Authenticated SLA probes: the packet on the wire, the anti-replay
//! window, and the sans-I/O endpoints that send probes on one path
//! ([`ProbeSender`]) and answer them ([`Reflector`]).
//!
//! The exchange follows the two-way model of TWAMP (RFC 5357 §4.2): the
//! sender stamps t1 on transmit, the reflector stamps t2 on receive and t3
//! on transmit, the sender stamps t4 on receive, and
//! `RTT = (t4 − t1) − (t3 − t2)`, so the reflector's turnaround is left
//! out. The two clocks are not synchronized: the one-way delays
//! `t2 − t1` (forward) and `t4 − t3` (reverse) carry an unknown constant
//! offset, so only their variation means anything (RFC 3393, RFC 5481);
//! the estimator derives it.
//!
//! Probes travel as UDP on each WAN path outside the WireGuard tunnel, as
//! BFD does, on [`PROBE_UDP_PORT`].
//!
//! # Packet format
//!
//! All integers big-endian. A Request is 44 bytes, a Reply 68; any other
//! length for the type is refused.
//!
//! | bytes  | field        | meaning                                                      |
//! |--------|--------------|--------------------------------------------------------------|
//! | 0..2   | magic        | `0x50 0x53` ("PS")                                           |
//! | 2      | version      | [`VERSION`] (1)                                              |
//! | 3      | type         | 1 Request, 2 Reply                                           |
//! | 4..6   | path id      | the requester's path index; echoed in the Reply              |
//! | 6      | key id       | which shared key made the tag                                |
//! | 7      | reserved     | 0 on transmit, not checked on receive (but covered by tag)   |
//! | 8..12  | sender id    | the requester's node id; echoed in the Reply                 |
//! | 12..20 | sequence     | the requester's probe sequence number; echoed in the Reply   |
//! | 20..28 | t1           | requester transmit time, ns, requester clock                 |
//! | 28..36 | t2           | Reply only: reflector receive time, ns, reflector clock      |
//! | 36..44 | t3           | Reply only: reflector transmit time, ns, reflector clock     |
//! | 44..52 | reflector rx | Reply only: requests the reflector accepted from this sender |
//! |        |              | on this path so far, this one included                       |
//! | last 16| tag          | keyed BLAKE2s-128 over every byte before it                  |
//!
//! The tag is BLAKE2s in keyed mode (RFC 7693 §2.5) with a 128-bit output
//! and the personalization `"PatSLA1\0"`, over the whole packet up to the
//! tag. The type, ids and sequence are all under the tag, so a Request can
//! be neither turned into a Reply nor moved to another path or peer.
//!
//! # Anti-replay
//!
//! Every authenticated packet passes a sliding window over its sequence
//! number ([`ReplayWindow`], WireGuard's bitmap of RFC 6479): the
//! reflector keeps one per (peer, path) for Requests, the sender one per
//! path for Replies. A sequence seen before is [`ProbeDrop::Replay`]; one
//! more than [`REPLAY_WINDOW`] behind the highest is [`ProbeDrop::TooOld`].
//! Sequence numbers must never repeat across restarts of the sender: the
//! driver seeds [`SenderConfig::initial_seq`] from the wall clock in ns,
//! which grows far faster than the at most 100 probes a second we send.
//!
//! # Loss, per direction
//!
//! A Request with no Reply within the loss timeout is lost (round trip).
//! The timeout is `max(min_loss_timeout (1 s), 3 × p99 RTT)`, capped at
//! [`MAX_LOSS_TIMEOUT_NS`] so at most 500 probes are ever outstanding; the
//! driver feeds the p99 from the estimator with
//! [`ProbeSender::set_rtt_p99_ns`]. Replies arriving later are dropped as
//! [`ProbeDrop::Late`], so a late reply is counted as received only if it
//! is within the timeout.
//!
//! To tell forward from reverse loss, each Reply carries the reflector's
//! count of Requests it accepted on this path. Between the baseline reply
//! `(seq₀, rx₀)` and a later one `(seq, rx)`, the sender sent `seq − seq₀`
//! Requests and the reflector got `rx − rx₀` of them, so
//! `forward lost = (seq − seq₀) − (rx − rx₀)`; each reply reports the
//! increase of that total in [`Sample::forward_lost`]. The reflector sent
//! one Reply per Request it got, so `reverse lost = round-trip lost −
//! forward lost`. The baseline is the first Reply, and is taken again when
//! the reflector restarts (its count goes backwards, [`Sample::rebased`]).
//! The reflector also keeps its own forward-loss view from the gaps in the
//! sequence numbers it receives ([`ReflectorPathStats`]).

use blake2::digest::consts::U16;
use blake2::digest::Mac;
use blake2::Blake2sMac;
use core::fmt;
use zeroize::Zeroize;

/// The UDP port probes are sent to and from on every WAN path. It is
/// IANA's VXLAN-GPE port, which Patronus does not use on its WAN side.
pub const PROBE_UDP_PORT: u16 = 4790;
/// "PS": Patronus SLA.
pub const MAGIC: u16 = 0x5053;
pub const VERSION: u8 = 1;
pub const TAG_LEN: usize = 16;
/// The fields every probe has, before the Reply fields or the tag.
pub const HEADER_LEN: usize = 28;
pub const REQUEST_LEN: usize = HEADER_LEN + TAG_LEN;
pub const REPLY_LEN: usize = HEADER_LEN + 24 + TAG_LEN;
/// A transmit buffer of this size always suffices.
pub const MAX_PACKET_LEN: usize = REPLY_LEN;
/// The probe rate when none is configured, per second.
pub const DEFAULT_RATE_PER_SEC: u32 = 10;
/// The highest probe rate we accept, per second.
pub const MAX_RATE_PER_SEC: u32 = 100;
/// The loss timeout's floor when none is configured.
pub const DEFAULT_MIN_LOSS_TIMEOUT_NS: u64 = 1_000_000_000;
/// The loss timeout's ceiling: at 100 probes a second, 500 outstanding.
pub const MAX_LOSS_TIMEOUT_NS: u64 = 5_000_000_000;
/// Sequence numbers the replay window remembers behind the highest.
pub const REPLAY_WINDOW: u64 = 1024;
/// Shortest shared secret we accept (128 bits).
pub const MIN_KEY_LEN: usize = 16;
/// Longest shared secret BLAKE2s takes as a key (RFC 7693 §2.1).
pub const MAX_KEY_LEN: usize = 32;

const PERSONALIZATION: &[u8; 8] = b"PatSLA1\0";
const NS_PER_SEC: u64 = 1_000_000_000;
/// Slots in the sender's table of outstanding probes; more than the 500
/// that the rate and timeout caps allow.
const OUTSTANDING: usize = 1024;

mod field {
    pub type Field = core::ops::Range<usize>;
    pub const MAGIC: Field = 0..2;
    pub const VERSION: usize = 2;
    pub const TYPE: usize = 3;
    pub const PATH_ID: Field = 4..6;
    pub const KEY_ID: usize = 6;
    pub const RESERVED: usize = 7;
    pub const SENDER_ID: Field = 8..12;
    pub const SEQ: Field = 12..20;
    pub const T1: Field = 20..28;
    pub const T2: Field = 28..36;
    pub const T3: Field = 36..44;
    pub const REFLECTOR_RX: Field = 44..52;
}

/// The probe's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MsgType {
    Request,
    Reply,
    Unknown(u8),
}

impl From<u8> for MsgType {
    fn from(v: u8) -> MsgType {
        match v {
            1 => MsgType::Request,
            2 => MsgType::Reply,
            other => MsgType::Unknown(other),
        }
    }
}

impl From<MsgType> for u8 {
    fn from(t: MsgType) -> u8 {
        match t {
            MsgType::Request => 1,
            MsgType::Reply => 2,
            MsgType::Unknown(v) => v,
        }
    }
}

impl MsgType {
    /// The exact length of a packet of this type.
    fn packet_len(self) -> Option<usize> {
        match self {
            MsgType::Request => Some(REQUEST_LEN),
            MsgType::Reply => Some(REPLY_LEN),
            MsgType::Unknown(_) => None,
        }
    }
}

/// Why bytes are not a well-formed probe, before any key is involved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than its type needs (or than the magic, version and type).
    Truncated,
    /// Longer than its type allows.
    BadLength,
    BadMagic,
    BadVersion,
    BadType,
}

/// The buffer is shorter than the packet to emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTooSmall;

/// A probe as a view over a byte buffer.
#[derive(Debug, Clone)]
pub struct ProbePacket<T: AsRef<[u8]>> {
    buffer: T,
}

fn be_u16(b: &[u8], f: field::Field) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[f]);
    u16::from_be_bytes(a)
}

fn be_u32(b: &[u8], f: field::Field) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[f]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8], f: field::Field) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[f]);
    u64::from_be_bytes(a)
}

impl<T: AsRef<[u8]>> ProbePacket<T> {
    /// Wraps a buffer without checking it; accessors may then panic.
    pub fn new_unchecked(buffer: T) -> ProbePacket<T> {
        ProbePacket { buffer }
    }

    /// Wraps a buffer whose magic, version, type and length are valid, so
    /// that no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<ProbePacket<T>, ParseError> {
        let b = buffer.as_ref();
        if b.len() >= 2 && be_u16(b, field::MAGIC) != MAGIC {
            return Err(ParseError::BadMagic);
        }
        if b.len() < field::TYPE + 1 {
            return Err(ParseError::Truncated);
        }
        if b[field::VERSION] != VERSION {
            return Err(ParseError::BadVersion);
        }
        let len = MsgType::from(b[field::TYPE])
            .packet_len()
            .ok_or(ParseError::BadType)?;
        if b.len() < len {
            return Err(ParseError::Truncated);
        }
        if b.len() > len {
            return Err(ParseError::BadLength);
        }
        Ok(ProbePacket { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    pub fn msg_type(&self) -> MsgType {
        MsgType::from(self.buffer.as_ref()[field::TYPE])
    }

    pub fn path_id(&self) -> u16 {
        be_u16(self.buffer.as_ref(), field::PATH_ID)
    }

    pub fn key_id(&self) -> u8 {
        self.buffer.as_ref()[field::KEY_ID]
    }

    pub fn sender_id(&self) -> u32 {
        be_u32(self.buffer.as_ref(), field::SENDER_ID)
    }

    pub fn seq(&self) -> u64 {
        be_u64(self.buffer.as_ref(), field::SEQ)
    }

    pub fn t1(&self) -> u64 {
        be_u64(self.buffer.as_ref(), field::T1)
    }

    /// The Reply fields (t2, t3, reflector rx), or `None` for a Request.
    pub fn reply_fields(&self) -> Option<ReplyFields> {
        let b = self.buffer.as_ref();
        if self.msg_type() != MsgType::Reply || b.len() < REPLY_LEN {
            return None;
        }
        Some(ReplyFields {
            t2_ns: be_u64(b, field::T2),
            t3_ns: be_u64(b, field::T3),
            reflector_rx: be_u64(b, field::REFLECTOR_RX),
        })
    }

    /// The bytes the tag covers.
    pub fn signed_bytes(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..b.len().saturating_sub(TAG_LEN)]
    }

    pub fn tag(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[b.len().saturating_sub(TAG_LEN)..]
    }
}

/// What only a Reply carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyFields {
    /// Reflector receive time, ns, reflector clock.
    pub t2_ns: u64,
    /// Reflector transmit time, ns, reflector clock.
    pub t3_ns: u64,
    /// Requests the reflector accepted from this sender on this path so
    /// far, this one included.
    pub reflector_rx: u64,
}

/// A probe's validated fields (the tag is checked separately, by
/// [`ProbeKey::verify`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub path_id: u16,
    pub key_id: u8,
    pub sender_id: u32,
    pub seq: u64,
    pub t1_ns: u64,
    /// `Some` for a Reply, `None` for a Request.
    pub reply: Option<ReplyFields>,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(packet: &ProbePacket<T>) -> Result<Repr, ParseError> {
        // Re-check so that a packet made with `new_unchecked` cannot panic.
        let packet = ProbePacket::new_checked(packet.as_bytes())?;
        Ok(Repr {
            path_id: packet.path_id(),
            key_id: packet.key_id(),
            sender_id: packet.sender_id(),
            seq: packet.seq(),
            t1_ns: packet.t1(),
            reply: packet.reply_fields(),
        })
    }

    pub fn msg_type(&self) -> MsgType {
        if self.reply.is_some() {
            MsgType::Reply
        } else {
            MsgType::Request
        }
    }

    pub fn buffer_len(&self) -> usize {
        match self.reply {
            Some(_) => REPLY_LEN,
            None => REQUEST_LEN,
        }
    }

    /// Writes the packet with a zero tag into the front of `buf` and
    /// returns its length; [`ProbeKey::sign`] fills the tag in.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let len = self.buffer_len();
        let b = buf.get_mut(..len).ok_or(BufferTooSmall)?;
        b[field::MAGIC].copy_from_slice(&MAGIC.to_be_bytes());
        b[field::VERSION] = VERSION;
        b[field::TYPE] = self.msg_type().into();
        b[field::PATH_ID].copy_from_slice(&self.path_id.to_be_bytes());
        b[field::KEY_ID] = self.key_id;
        b[field::RESERVED] = 0;
        b[field::SENDER_ID].copy_from_slice(&self.sender_id.to_be_bytes());
        b[field::SEQ].copy_from_slice(&self.seq.to_be_bytes());
        b[field::T1].copy_from_slice(&self.t1_ns.to_be_bytes());
        if let Some(r) = self.reply {
            b[field::T2].copy_from_slice(&r.t2_ns.to_be_bytes());
            b[field::T3].copy_from_slice(&r.t3_ns.to_be_bytes());
            b[field::REFLECTOR_RX].copy_from_slice(&r.reflector_rx.to_be_bytes());
        }
        b[len - TAG_LEN..].fill(0);
        Ok(len)
    }
}

/// Why a configuration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A shared secret outside [`MIN_KEY_LEN`]..=[`MAX_KEY_LEN`] bytes.
    KeyLength(usize),
    /// A probe rate outside 1..=[`MAX_RATE_PER_SEC`] per second.
    Rate(u32),
    /// The current and previous keys share a key id.
    DuplicateKeyId(u8),
    /// A reflector for no paths.
    NoPaths,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::KeyLength(n) => write!(
                f,
                "SLA probe key must be {MIN_KEY_LEN} to {MAX_KEY_LEN} bytes, got {n}"
            ),
            ConfigError::Rate(r) => write!(
                f,
                "SLA probe rate must be 1 to {MAX_RATE_PER_SEC} per second, got {r}"
            ),
            ConfigError::DuplicateKeyId(id) => {
                write!(f, "SLA probe keys share key id {id}")
            }
            ConfigError::NoPaths => write!(f, "SLA reflector needs at least one path"),
        }
    }
}

/// One shared secret and its key id. Wiped on drop, never printed.
#[derive(Clone)]
pub struct ProbeKey {
    id: u8,
    len: usize,
    secret: [u8; MAX_KEY_LEN],
}

impl ProbeKey {
    pub fn new(id: u8, secret: &[u8]) -> Result<ProbeKey, ConfigError> {
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&secret.len()) {
            return Err(ConfigError::KeyLength(secret.len()));
        }
        let mut k = [0u8; MAX_KEY_LEN];
        k[..secret.len()].copy_from_slice(secret);
        Ok(ProbeKey {
            id,
            len: secret.len(),
            secret: k,
        })
    }

    pub fn id(&self) -> u8 {
        self.id
    }

    /// `None` only if the key were longer than BLAKE2s allows, which
    /// [`ProbeKey::new`] rules out.
    fn mac(&self) -> Option<Blake2sMac<U16>> {
        Blake2sMac::<U16>::new_with_salt_and_personal(
            &self.secret[..self.len],
            &[],
            PERSONALIZATION,
        )
        .ok()
    }

    /// Writes the tag over `packet` (a whole emitted probe) into its last
    /// [`TAG_LEN`] bytes.
    pub fn sign(&self, packet: &mut [u8]) {
        if packet.len() < TAG_LEN {
            return;
        }
        let split = packet.len() - TAG_LEN;
        let Some(mut m) = self.mac() else {
            return;
        };
        m.update(&packet[..split]);
        packet[split..].copy_from_slice(&m.finalize().into_bytes());
    }

    /// Whether the last [`TAG_LEN`] bytes of `packet` are its tag under
    /// this key, compared in constant time.
    pub fn verify(&self, packet: &[u8]) -> bool {
        if packet.len() < TAG_LEN {
            return false;
        }
        let split = packet.len() - TAG_LEN;
        let Some(mut m) = self.mac() else {
            return false;
        };
        m.update(&packet[..split]);
        m.verify_slice(&packet[split..]).is_ok()
    }
}

impl Drop for ProbeKey {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl fmt::Debug for ProbeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The keys of one peer: the current one signs, and the previous one is
/// still accepted while a rotation rolls out.
#[derive(Clone, Debug)]
pub struct ProbeKeys {
    current: ProbeKey,
    previous: Option<ProbeKey>,
}

impl ProbeKeys {
    pub fn new(current: ProbeKey) -> ProbeKeys {
        ProbeKeys {
            current,
            previous: None,
        }
    }

    pub fn with_previous(current: ProbeKey, previous: ProbeKey) -> Result<ProbeKeys, ConfigError> {
        if current.id == previous.id {
            return Err(ConfigError::DuplicateKeyId(current.id));
        }
        Ok(ProbeKeys {
            current,
            previous: Some(previous),
        })
    }

    pub fn current(&self) -> &ProbeKey {
        &self.current
    }

    pub fn by_id(&self, id: u8) -> Option<&ProbeKey> {
        if self.current.id == id {
            return Some(&self.current);
        }
        self.previous.as_ref().filter(|k| k.id == id)
    }
}

/// Why a received probe was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeDrop {
    Truncated,
    BadLength,
    BadMagic,
    BadVersion,
    BadType,
    /// The key id names no key of ours.
    UnknownKeyId,
    /// The tag does not match: forged, corrupted, or the wrong key.
    BadTag,
    /// A Reply sent to the reflector or a Request sent to a sender.
    WrongType,
    /// The sender id is not the configured peer (reflector) or not us
    /// (sender).
    WrongSender,
    /// A path id the reflector has no state for, or not the sender's path.
    UnknownPath,
    /// A sequence number already accepted.
    Replay,
    /// A sequence number behind the replay window.
    TooOld,
    /// A Reply to a sequence number we never sent.
    Unsolicited,
    /// A Reply to a probe already counted as lost.
    Late,
    /// The reflector's output buffer cannot hold a Reply.
    BufferTooSmall,
}

impl ProbeDrop {
    pub const COUNT: usize = 15;

    pub const ALL: [ProbeDrop; ProbeDrop::COUNT] = [
        ProbeDrop::Truncated,
        ProbeDrop::BadLength,
        ProbeDrop::BadMagic,
        ProbeDrop::BadVersion,
        ProbeDrop::BadType,
        ProbeDrop::UnknownKeyId,
        ProbeDrop::BadTag,
        ProbeDrop::WrongType,
        ProbeDrop::WrongSender,
        ProbeDrop::UnknownPath,
        ProbeDrop::Replay,
        ProbeDrop::TooOld,
        ProbeDrop::Unsolicited,
        ProbeDrop::Late,
        ProbeDrop::BufferTooSmall,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable name for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeDrop::Truncated => "truncated",
            ProbeDrop::BadLength => "bad_length",
            ProbeDrop::BadMagic => "bad_magic",
            ProbeDrop::BadVersion => "bad_version",
            ProbeDrop::BadType => "bad_type",
            ProbeDrop::UnknownKeyId => "unknown_key_id",
            ProbeDrop::BadTag => "bad_tag",
            ProbeDrop::WrongType => "wrong_type",
            ProbeDrop::WrongSender => "wrong_sender",
            ProbeDrop::UnknownPath => "unknown_path",
            ProbeDrop::Replay => "replay",
            ProbeDrop::TooOld => "too_old",
            ProbeDrop::Unsolicited => "unsolicited",
            ProbeDrop::Late => "late",
            ProbeDrop::BufferTooSmall => "buffer_too_small",
        }
    }
}

impl From<ParseError> for ProbeDrop {
    fn from(e: ParseError) -> ProbeDrop {
        match e {
            ParseError::Truncated => ProbeDrop::Truncated,
            ParseError::BadLength => ProbeDrop::BadLength,
            ParseError::BadMagic => ProbeDrop::BadMagic,
            ParseError::BadVersion => ProbeDrop::BadVersion,
            ParseError::BadType => ProbeDrop::BadType,
        }
    }
}

/// Drops by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    by_reason: [u64; ProbeDrop::COUNT],
}

impl DropCounters {
    pub fn count(&mut self, reason: ProbeDrop) {
        self.by_reason[reason.index()] += 1;
    }

    pub fn get(&self, reason: ProbeDrop) -> u64 {
        self.by_reason[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.by_reason.iter().sum()
    }

    /// Non-zero counters with their reasons.
    pub fn iter(&self) -> impl Iterator<Item = (ProbeDrop, u64)> + '_ {
        ProbeDrop::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n != 0)
    }
}

/// Checks the framing, the key id and the tag, then parses.
fn open(keys: &ProbeKeys, bytes: &[u8]) -> Result<(Repr, u8), ProbeDrop> {
    let packet = ProbePacket::new_checked(bytes)?;
    let key = keys.by_id(packet.key_id()).ok_or(ProbeDrop::UnknownKeyId)?;
    if !key.verify(packet.as_bytes()) {
        return Err(ProbeDrop::BadTag);
    }
    Ok((Repr::parse(&packet)?, key.id))
}

/// Why the replay window refused a sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// Seen before.
    Duplicate,
    /// [`REPLAY_WINDOW`] or more behind the highest seen.
    TooOld,
}

impl From<ReplayError> for ProbeDrop {
    fn from(e: ReplayError) -> ProbeDrop {
        match e {
            ReplayError::Duplicate => ProbeDrop::Replay,
            ReplayError::TooOld => ProbeDrop::TooOld,
        }
    }
}

const WINDOW_WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// A sliding window over 64-bit sequence numbers: the highest seen and a
/// bitmap of the [`REPLAY_WINDOW`] before it, indexed by `seq mod` the
/// window (the ring bitmap of RFC 6479, as WireGuard keeps it).
#[derive(Clone, Debug, Default)]
pub struct ReplayWindow {
    highest: Option<u64>,
    bits: [u64; WINDOW_WORDS],
}

impl ReplayWindow {
    pub fn new() -> ReplayWindow {
        ReplayWindow::default()
    }

    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    fn bit(seq: u64) -> (usize, u64) {
        let i = seq % REPLAY_WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Whether `seq` would be accepted, without recording it.
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        let Some(h) = self.highest else {
            return Ok(());
        };
        if seq > h {
            return Ok(());
        }
        if h - seq >= REPLAY_WINDOW {
            return Err(ReplayError::TooOld);
        }
        let (w, m) = Self::bit(seq);
        if self.bits[w] & m != 0 {
            Err(ReplayError::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Checks `seq` and, if accepted, records it. Call only for packets
    /// whose tag has been verified, or forgeries would move the window.
    pub fn check_and_update(&mut self, seq: u64) -> Result<(), ReplayError> {
        self.check(seq)?;
        match self.highest {
            Some(h) if seq <= h => {}
            Some(h) if seq - h < REPLAY_WINDOW => {
                for s in h + 1..seq {
                    let (w, m) = Self::bit(s);
                    self.bits[w] &= !m;
                }
                self.highest = Some(seq);
            }
            _ => {
                self.bits = [0; WINDOW_WORDS];
                self.highest = Some(seq);
            }
        }
        let (w, m) = Self::bit(seq);
        self.bits[w] |= m;
        Ok(())
    }
}

/// One probe sender's configuration: one per path towards one peer.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// Our node id, carried as the sender id.
    pub local_id: u32,
    /// This path's index.
    pub path_id: u16,
    /// Probes per second, 1..=[`MAX_RATE_PER_SEC`].
    pub rate_per_sec: u32,
    /// The loss timeout's floor.
    pub min_loss_timeout_ns: u64,
    /// The first sequence number: the wall clock in ns at start, so that
    /// numbers never repeat across restarts (see the module doc).
    pub initial_seq: u64,
    pub keys: ProbeKeys,
}

impl SenderConfig {
    /// The defaults: 10 probes a second, 1 s loss timeout floor.
    pub fn new(local_id: u32, path_id: u16, initial_seq: u64, keys: ProbeKeys) -> SenderConfig {
        SenderConfig {
            local_id,
            path_id,
            rate_per_sec: DEFAULT_RATE_PER_SEC,
            min_loss_timeout_ns: DEFAULT_MIN_LOSS_TIMEOUT_NS,
            initial_seq,
            keys,
        }
    }
}

fn check_rate(rate: u32) -> Result<u64, ConfigError> {
    if !(1..=MAX_RATE_PER_SEC).contains(&rate) {
        return Err(ConfigError::Rate(rate));
    }
    Ok(NS_PER_SEC / u64::from(rate))
}

/// A round-trip measurement from one Reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub path_id: u16,
    pub seq: u64,
    /// t1, our clock.
    pub sent_at_ns: u64,
    /// t4, our clock: when the Reply was handled.
    pub received_at_ns: u64,
    /// `(t4 − t1) − (t3 − t2)`: the reflector's turnaround left out.
    pub rtt_ns: u64,
    /// `t2 − t1` across the two clocks: only its variation is meaningful.
    pub forward_owd_ns: i64,
    /// `t4 − t3` across the two clocks: only its variation is meaningful.
    pub reverse_owd_ns: i64,
    /// The reflector's count of Requests accepted on this path.
    pub reflector_rx: u64,
    /// Forward losses newly attributed by this Reply (module doc).
    pub forward_lost: u64,
    /// The loss baseline was (re)taken here: the first Reply, or the
    /// reflector restarted and its clock may have a new base, so one-way
    /// delay history must not be compared across this sample.
    pub rebased: bool,
}

/// A probe that got no Reply within the loss timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lost {
    pub path_id: u16,
    pub seq: u64,
    pub sent_at_ns: u64,
}

/// A sender's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SenderCounters {
    pub tx: u64,
    /// Replies accepted.
    pub rx_ok: u64,
    /// Probes with no Reply within the timeout (round trip).
    pub lost: u64,
    /// Of those, the ones lost on the way to the reflector.
    pub forward_lost: u64,
    /// Outstanding probes overwritten before `handle_timeout` reported
    /// them: the driver is not draining losses.
    pub lost_unreported: u64,
    pub rx_drops: DropCounters,
}

impl SenderCounters {
    /// Probes whose Request arrived but whose Reply did not.
    pub fn reverse_lost(&self) -> u64 {
        self.lost.saturating_sub(self.forward_lost)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Empty,
    Outstanding,
    Answered,
    Lost,
}

#[derive(Clone, Copy, Debug)]
struct Outstanding {
    seq: u64,
    sent_at_ns: u64,
    state: SlotState,
}

/// The baseline the forward-loss count is measured from.
#[derive(Clone, Copy, Debug)]
struct LossBase {
    seq: u64,
    rx: u64,
    /// `(seq − base.seq) − (rx − base.rx)` at its highest so far.
    reported: u64,
    /// The last Reply's (highest) seq and reflector count.
    last_seq: u64,
    last_rx: u64,
}

/// Sends probes on one path and turns Replies into [`Sample`]s and
/// silence into [`Lost`] probes. Sans I/O: `now_ns` is any monotonic
/// nanosecond count of this node.
#[derive(Debug)]
pub struct ProbeSender {
    local_id: u32,
    path_id: u16,
    interval_ns: u64,
    min_loss_timeout_ns: u64,
    rtt_p99_ns: u64,
    keys: ProbeKeys,
    next_seq: u64,
    initial_seq: u64,
    next_tx_ns: Option<u64>,
    /// The oldest seq that may still be outstanding.
    oldest: u64,
    table: Box<[Outstanding]>,
    window: ReplayWindow,
    base: Option<LossBase>,
    counters: SenderCounters,
}

impl ProbeSender {
    pub fn new(cfg: SenderConfig) -> Result<ProbeSender, ConfigError> {
        let interval_ns = check_rate(cfg.rate_per_sec)?;
        let empty = Outstanding {
            seq: 0,
            sent_at_ns: 0,
            state: SlotState::Empty,
        };
        Ok(ProbeSender {
            local_id: cfg.local_id,
            path_id: cfg.path_id,
            interval_ns,
            min_loss_timeout_ns: cfg.min_loss_timeout_ns,
            rtt_p99_ns: 0,
            keys: cfg.keys,
            next_seq: cfg.initial_seq,
            initial_seq: cfg.initial_seq,
            next_tx_ns: None,
            oldest: cfg.initial_seq,
            table: vec![empty; OUTSTANDING].into_boxed_slice(),
            window: ReplayWindow::new(),
            base: None,
            counters: SenderCounters::default(),
        })
    }

    pub fn path_id(&self) -> u16 {
        self.path_id
    }

    pub fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// Changes the rate from the next probe on.
    pub fn set_rate(&mut self, rate_per_sec: u32) -> Result<(), ConfigError> {
        self.interval_ns = check_rate(rate_per_sec)?;
        Ok(())
    }

    /// Feeds the estimator's p99 RTT into the loss timeout.
    pub fn set_rtt_p99_ns(&mut self, p99_ns: u64) {
        self.rtt_p99_ns = p99_ns;
    }

    /// `max(min_loss_timeout, 3 × p99 RTT)`, at most [`MAX_LOSS_TIMEOUT_NS`].
    pub fn loss_timeout_ns(&self) -> u64 {
        self.min_loss_timeout_ns
            .max(self.rtt_p99_ns.saturating_mul(3))
            .min(MAX_LOSS_TIMEOUT_NS)
    }

    pub fn counters(&self) -> &SenderCounters {
        &self.counters
    }

    fn slot(seq: u64) -> usize {
        (seq % OUTSTANDING as u64) as usize
    }

    /// Emits a Request into `buf` if one is due, returning its length.
    /// The first is due at once, the next every `1 / rate`; a late caller
    /// gets one probe, not a burst.
    pub fn poll_transmit(&mut self, now_ns: u64, buf: &mut [u8]) -> Option<usize> {
        if self.next_tx_ns.is_some_and(|t| now_ns < t) {
            return None;
        }
        let repr = Repr {
            path_id: self.path_id,
            key_id: self.keys.current().id(),
            sender_id: self.local_id,
            seq: self.next_seq,
            t1_ns: now_ns,
            reply: None,
        };
        let n = repr.emit(buf).ok()?;
        self.keys.current().sign(&mut buf[..n]);
        let slot = &mut self.table[Self::slot(self.next_seq)];
        if slot.state == SlotState::Outstanding {
            self.counters.lost_unreported += 1;
            self.counters.lost += 1;
        }
        *slot = Outstanding {
            seq: self.next_seq,
            sent_at_ns: now_ns,
            state: SlotState::Outstanding,
        };
        self.next_seq += 1;
        self.oldest = self
            .oldest
            .max(self.next_seq.saturating_sub(OUTSTANDING as u64));
        self.counters.tx += 1;
        let next = match self.next_tx_ns {
            Some(t) if now_ns < t + self.interval_ns => t + self.interval_ns,
            _ => now_ns + self.interval_ns,
        };
        self.next_tx_ns = Some(next);
        Some(n)
    }

    /// The next time `poll_transmit` or `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<u64> {
        let tx = self.next_tx_ns.unwrap_or(0);
        let loss = (self.oldest..self.next_seq)
            .map(|s| self.table[Self::slot(s)])
            .find(|e| e.state == SlotState::Outstanding)
            .map(|e| e.sent_at_ns.saturating_add(self.loss_timeout_ns()));
        Some(loss.map_or(tx, |l| l.min(tx)))
    }

    /// Reports the oldest probe whose loss timeout has passed; call until
    /// it returns `None`.
    pub fn handle_timeout(&mut self, now_ns: u64) -> Option<Lost> {
        let timeout = self.loss_timeout_ns();
        while self.oldest < self.next_seq {
            let i = Self::slot(self.oldest);
            let e = self.table[i];
            if e.seq != self.oldest || e.state != SlotState::Outstanding {
                self.oldest += 1;
                continue;
            }
            if now_ns < e.sent_at_ns.saturating_add(timeout) {
                return None;
            }
            self.table[i].state = SlotState::Lost;
            self.oldest += 1;
            self.counters.lost += 1;
            return Some(Lost {
                path_id: self.path_id,
                seq: e.seq,
                sent_at_ns: e.sent_at_ns,
            });
        }
        None
    }

    /// Authenticates a Reply and turns it into a [`Sample`]; a dropped
    /// Reply is counted by reason.
    pub fn handle_reply(&mut self, bytes: &[u8], now_ns: u64) -> Result<Sample, ProbeDrop> {
        let r = self.accept_reply(bytes, now_ns);
        match r {
            Ok(_) => self.counters.rx_ok += 1,
            Err(d) => self.counters.rx_drops.count(d),
        }
        r
    }

    fn accept_reply(&mut self, bytes: &[u8], now_ns: u64) -> Result<Sample, ProbeDrop> {
        let (repr, _) = open(&self.keys, bytes)?;
        let reply = repr.reply.ok_or(ProbeDrop::WrongType)?;
        if repr.sender_id != self.local_id {
            return Err(ProbeDrop::WrongSender);
        }
        if repr.path_id != self.path_id {
            return Err(ProbeDrop::UnknownPath);
        }
        if repr.seq < self.initial_seq || repr.seq >= self.next_seq {
            return Err(ProbeDrop::Unsolicited);
        }
        self.window.check(repr.seq)?;
        let i = Self::slot(repr.seq);
        let e = self.table[i];
        if e.seq != repr.seq || e.state == SlotState::Empty {
            return Err(ProbeDrop::TooOld);
        }
        // Recorded before the Late check so a copy of it is a Replay.
        self.window.check_and_update(repr.seq)?;
        if e.state == SlotState::Lost {
            return Err(ProbeDrop::Late);
        }
        if e.state == SlotState::Answered {
            return Err(ProbeDrop::Replay);
        }
        self.table[i].state = SlotState::Answered;

        let t1 = e.sent_at_ns;
        let total = now_ns.saturating_sub(t1);
        let turnaround = reply.t3_ns.saturating_sub(reply.t2_ns);
        let (forward_lost, rebased) = self.attribute_loss(repr.seq, reply.reflector_rx);
        self.counters.forward_lost += forward_lost;
        Ok(Sample {
            path_id: self.path_id,
            seq: repr.seq,
            sent_at_ns: t1,
            received_at_ns: now_ns,
            rtt_ns: total.saturating_sub(turnaround),
            forward_owd_ns: reply.t2_ns.wrapping_sub(t1) as i64,
            reverse_owd_ns: now_ns.wrapping_sub(reply.t3_ns) as i64,
            reflector_rx: reply.reflector_rx,
            forward_lost,
            rebased,
        })
    }

    /// Forward losses newly known from this Reply's reflector count.
    fn attribute_loss(&mut self, seq: u64, rx: u64) -> (u64, bool) {
        let fresh = LossBase {
            seq,
            rx,
            reported: 0,
            last_seq: seq,
            last_rx: rx,
        };
        let Some(b) = self.base.as_mut() else {
            self.base = Some(fresh);
            return (0, true);
        };
        if seq < b.last_seq {
            // Reordered: its count is older than what we have.
            return (0, false);
        }
        if rx < b.last_rx || seq < b.seq {
            // The reflector restarted.
            self.base = Some(fresh);
            return (0, true);
        }
        b.last_seq = seq;
        b.last_rx = rx;
        let lost = (seq - b.seq).saturating_sub(rx - b.rx);
        let new = lost.saturating_sub(b.reported);
        b.reported = b.reported.max(lost);
        (new, false)
    }
}

/// A reflector's configuration: one per peer.
#[derive(Clone, Debug)]
pub struct ReflectorConfig {
    /// The peer's node id, which its Requests carry as the sender id.
    pub peer_id: u32,
    /// Path ids `0..paths` get state; others are dropped.
    pub paths: u16,
    pub keys: ProbeKeys,
}

/// What the reflector knows of one path's forward direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReflectorPathStats {
    /// Requests accepted (and answered).
    pub received: u64,
    /// The highest sequence number accepted.
    pub highest_seq: Option<u64>,
    /// Requests missing from the sequence since accounting started:
    /// `highest − first + 1 − received`. A jump of more than the replay
    /// window (a sender restart) starts the accounting again.
    pub forward_lost: u64,
}

#[derive(Clone, Debug, Default)]
struct ReflectorPath {
    window: ReplayWindow,
    received: u64,
    first_seq: u64,
    received_since_first: u64,
}

/// A reflector's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReflectorCounters {
    pub rx_ok: u64,
    pub rx_drops: DropCounters,
}

/// Answers one peer's Requests on all paths. Sans I/O.
#[derive(Debug)]
pub struct Reflector {
    peer_id: u32,
    keys: ProbeKeys,
    paths: Vec<ReflectorPath>,
    counters: ReflectorCounters,
}

impl Reflector {
    pub fn new(cfg: ReflectorConfig) -> Result<Reflector, ConfigError> {
        if cfg.paths == 0 {
            return Err(ConfigError::NoPaths);
        }
        Ok(Reflector {
            peer_id: cfg.peer_id,
            keys: cfg.keys,
            paths: vec![ReflectorPath::default(); usize::from(cfg.paths)],
            counters: ReflectorCounters::default(),
        })
    }

    pub fn counters(&self) -> &ReflectorCounters {
        &self.counters
    }

    pub fn path_stats(&self, path_id: u16) -> Option<ReflectorPathStats> {
        let p = self.paths.get(usize::from(path_id))?;
        let highest = p.window.highest();
        let forward_lost = highest.map_or(0, |h| {
            (h - p.first_seq + 1).saturating_sub(p.received_since_first)
        });
        Some(ReflectorPathStats {
            received: p.received,
            highest_seq: highest,
            forward_lost,
        })
    }

    /// Answers a Request received and answered at `now_ns`.
    pub fn handle_request(
        &mut self,
        bytes: &[u8],
        now_ns: u64,
        out: &mut [u8],
    ) -> Result<usize, ProbeDrop> {
        self.handle_request_at(bytes, now_ns, now_ns, out)
    }

    /// Answers a Request received at `rx_ns` (e.g. a kernel timestamp)
    /// with a Reply stamped to leave at `tx_ns`.
    pub fn handle_request_at(
        &mut self,
        bytes: &[u8],
        rx_ns: u64,
        tx_ns: u64,
        out: &mut [u8],
    ) -> Result<usize, ProbeDrop> {
        let r = self.accept_request(bytes, rx_ns, tx_ns, out);
        match r {
            Ok(_) => self.counters.rx_ok += 1,
            Err(d) => self.counters.rx_drops.count(d),
        }
        r
    }

    fn accept_request(
        &mut self,
        bytes: &[u8],
        rx_ns: u64,
        tx_ns: u64,
        out: &mut [u8],
    ) -> Result<usize, ProbeDrop> {
        if out.len() < REPLY_LEN {
            return Err(ProbeDrop::BufferTooSmall);
        }
        let (repr, key_id) = open(&self.keys, bytes)?;
        if repr.reply.is_some() {
            return Err(ProbeDrop::WrongType);
        }
        if repr.sender_id != self.peer_id {
            return Err(ProbeDrop::WrongSender);
        }
        let p = self
            .paths
            .get_mut(usize::from(repr.path_id))
            .ok_or(ProbeDrop::UnknownPath)?;
        let prev_highest = p.window.highest();
        p.window.check_and_update(repr.seq)?;
        match prev_highest {
            Some(h) if repr.seq <= h || repr.seq - h <= REPLAY_WINDOW => {}
            _ => {
                p.first_seq = repr.seq;
                p.received_since_first = 0;
            }
        }
        p.received += 1;
        p.received_since_first += 1;
        let reply = Repr {
            reply: Some(ReplyFields {
                t2_ns: rx_ns,
                t3_ns: tx_ns,
                reflector_rx: p.received,
            }),
            key_id,
            ..repr
        };
        let n = reply.emit(out).map_err(|_| ProbeDrop::BufferTooSmall)?;
        let key = self.keys.by_id(key_id).ok_or(ProbeDrop::UnknownKeyId)?;
        key.sign(&mut out[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u32 = 0xa1;
    const B: u32 = 0xb2;
    const SEQ0: u64 = 1_700_000_000_000_000_000;
    const MS: u64 = 1_000_000;

    fn key(id: u8, fill: u8) -> ProbeKey {
        ProbeKey::new(id, &[fill; 32]).unwrap()
    }

    fn keys() -> ProbeKeys {
        ProbeKeys::new(key(1, 0x42))
    }

    fn sender_with(rate: u32) -> ProbeSender {
        let mut cfg = SenderConfig::new(A, 2, SEQ0, keys());
        cfg.rate_per_sec = rate;
        ProbeSender::new(cfg).unwrap()
    }

    fn sender() -> ProbeSender {
        sender_with(DEFAULT_RATE_PER_SEC)
    }

    fn reflector() -> Reflector {
        Reflector::new(ReflectorConfig {
            peer_id: A,
            paths: 4,
            keys: keys(),
        })
        .unwrap()
    }

    fn request(seq: u64, t1: u64) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        let repr = Repr {
            path_id: 2,
            key_id: 1,
            sender_id: A,
            seq,
            t1_ns: t1,
            reply: None,
        };
        repr.emit(&mut b).unwrap();
        keys().current().sign(&mut b);
        b
    }

    /// Deterministic xorshift64*.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn chance(&mut self, p: f64) -> bool {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
        }
    }

    #[test]
    fn request_round_trips_through_emit_and_parse() {
        let repr = Repr {
            path_id: 0x0102,
            key_id: 7,
            sender_id: 0x0304_0506,
            seq: 0x1112_1314_1516_1718,
            t1_ns: 0x2122_2324_2526_2728,
            reply: None,
        };
        let mut buf = [0xffu8; MAX_PACKET_LEN];
        assert_eq!(repr.emit(&mut buf), Ok(REQUEST_LEN));
        let expected: [u8; HEADER_LEN] = [
            0x50, 0x53, 1, 1, 0x01, 0x02, 7, 0, 0x03, 0x04, 0x05, 0x06, 0x11, 0x12, 0x13, 0x14,
            0x15, 0x16, 0x17, 0x18, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
        ];
        assert_eq!(&buf[..HEADER_LEN], &expected);
        assert_eq!(&buf[HEADER_LEN..REQUEST_LEN], &[0; TAG_LEN]);
        let p = ProbePacket::new_checked(&buf[..REQUEST_LEN]).unwrap();
        assert_eq!(p.msg_type(), MsgType::Request);
        assert_eq!(Repr::parse(&p), Ok(repr));
    }

    #[test]
    fn reply_round_trips_through_emit_and_parse() {
        let repr = Repr {
            path_id: 3,
            key_id: 9,
            sender_id: B,
            seq: 77,
            t1_ns: 1,
            reply: Some(ReplyFields {
                t2_ns: 0x0102_0304_0506_0708,
                t3_ns: 3,
                reflector_rx: 0x0a0b,
            }),
        };
        let mut buf = [0u8; MAX_PACKET_LEN];
        assert_eq!(repr.emit(&mut buf), Ok(REPLY_LEN));
        assert_eq!(buf[3], 2);
        assert_eq!(&buf[28..36], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&buf[44..52], &[0, 0, 0, 0, 0, 0, 0x0a, 0x0b]);
        let p = ProbePacket::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p), Ok(repr));
    }

    #[test]
    fn emit_into_a_short_buffer_is_an_error() {
        let repr = Repr {
            path_id: 0,
            key_id: 0,
            sender_id: 0,
            seq: 0,
            t1_ns: 0,
            reply: None,
        };
        assert_eq!(repr.emit(&mut [0; REQUEST_LEN - 1]), Err(BufferTooSmall));
        let mut s = sender();
        assert_eq!(s.poll_transmit(0, &mut [0; 10]), None);
        assert_eq!(s.counters().tx, 0);
        let mut r = reflector();
        assert_eq!(
            r.handle_request(&request(SEQ0, 0), 0, &mut [0; REPLY_LEN - 1]),
            Err(ProbeDrop::BufferTooSmall)
        );
    }

    #[test]
    fn framing_errors_are_reported_by_reason() {
        let good = request(SEQ0, 0);
        let check = |b: &[u8]| ProbePacket::new_checked(b).map(|_| ());
        assert_eq!(check(&[]), Err(ParseError::Truncated));
        assert_eq!(check(&[0x50]), Err(ParseError::Truncated));
        assert_eq!(check(&good[..HEADER_LEN]), Err(ParseError::Truncated));
        let mut long = [0u8; REQUEST_LEN + 1];
        long[..REQUEST_LEN].copy_from_slice(&good);
        assert_eq!(check(&long), Err(ParseError::BadLength));
        let mut m = good;
        m[0] = 0;
        assert_eq!(check(&m), Err(ParseError::BadMagic));
        let mut m = good;
        m[2] = 2;
        assert_eq!(check(&m), Err(ParseError::BadVersion));
        let mut m = good;
        m[3] = 3;
        assert_eq!(check(&m), Err(ParseError::BadType));
    }

    #[test]
    fn reflector_answers_a_request_with_its_timestamps_and_count() {
        let mut r = reflector();
        let mut out = [0u8; MAX_PACKET_LEN];
        let n = r
            .handle_request_at(&request(SEQ0, 5), 100, 130, &mut out)
            .unwrap();
        assert_eq!(n, REPLY_LEN);
        assert!(keys().current().verify(&out[..n]));
        let repr = Repr::parse(&ProbePacket::new_checked(&out[..n]).unwrap()).unwrap();
        assert_eq!(repr.seq, SEQ0);
        assert_eq!(repr.sender_id, A);
        assert_eq!(repr.path_id, 2);
        assert_eq!(repr.t1_ns, 5);
        assert_eq!(
            repr.reply,
            Some(ReplyFields {
                t2_ns: 100,
                t3_ns: 130,
                reflector_rx: 1
            })
        );
        assert_eq!(r.counters().rx_ok, 1);
    }

    #[test]
    fn wrong_key_is_dropped_as_bad_tag() {
        let mut r = Reflector::new(ReflectorConfig {
            peer_id: A,
            paths: 4,
            keys: ProbeKeys::new(key(1, 0x43)),
        })
        .unwrap();
        let mut out = [0u8; MAX_PACKET_LEN];
        assert_eq!(
            r.handle_request(&request(SEQ0, 0), 0, &mut out),
            Err(ProbeDrop::BadTag)
        );
        assert_eq!(r.counters().rx_drops.get(ProbeDrop::BadTag), 1);
        assert_eq!(r.path_stats(2).unwrap().received, 0);
    }

    #[test]
    fn unknown_key_id_is_dropped_and_the_previous_key_still_verifies() {
        let mut out = [0u8; MAX_PACKET_LEN];
        let mut r = Reflector::new(ReflectorConfig {
            peer_id: A,
            paths: 4,
            keys: ProbeKeys::new(key(2, 0x42)),
        })
        .unwrap();
        assert_eq!(
            r.handle_request(&request(SEQ0, 0), 0, &mut out),
            Err(ProbeDrop::UnknownKeyId)
        );
        // Rotated: key 2 is current, the request's key 1 is the previous.
        let mut r = Reflector::new(ReflectorConfig {
            peer_id: A,
            paths: 4,
            keys: ProbeKeys::with_previous(key(2, 0x99), key(1, 0x42)).unwrap(),
        })
        .unwrap();
        let n = r.handle_request(&request(SEQ0, 0), 0, &mut out).unwrap();
        // Answered under the key the request used.
        assert_eq!(out[6], 1);
        assert!(keys().current().verify(&out[..n]));
        assert_eq!(
            ProbeKeys::with_previous(key(2, 1), key(2, 2)).unwrap_err(),
            ConfigError::DuplicateKeyId(2)
        );
    }

    #[test]
    fn any_flipped_bit_gets_a_request_or_reply_dropped() {
        let req = request(SEQ0, 0);
        let mut out = [0u8; MAX_PACKET_LEN];
        let n = reflector().handle_request(&req, 0, &mut out).unwrap();
        let reply = out;
        for i in 0..REQUEST_LEN * 8 {
            let mut m = req;
            m[i / 8] ^= 1 << (i % 8);
            let got = reflector().handle_request(&m, 0, &mut out);
            assert!(got.is_err(), "request bit {i}");
            if i / 8 >= 7 {
                assert_eq!(got, Err(ProbeDrop::BadTag), "request bit {i}");
            }
        }
        for i in 0..n * 8 {
            let mut s = sender();
            s.poll_transmit(0, &mut [0; MAX_PACKET_LEN]).unwrap();
            let mut m = reply;
            m[i / 8] ^= 1 << (i % 8);
            let got = s.handle_reply(&m[..n], 10);
            assert!(got.is_err(), "reply bit {i}");
            if i / 8 >= 7 {
                assert_eq!(got, Err(ProbeDrop::BadTag), "reply bit {i}");
            }
        }
    }

    #[test]
    fn replayed_request_is_dropped_as_replay() {
        let mut r = reflector();
        let mut out = [0u8; MAX_PACKET_LEN];
        let req = request(SEQ0, 0);
        r.handle_request(&req, 0, &mut out).unwrap();
        assert_eq!(r.handle_request(&req, 1, &mut out), Err(ProbeDrop::Replay));
        assert_eq!(r.counters().rx_drops.get(ProbeDrop::Replay), 1);
        assert_eq!(r.path_stats(2).unwrap().received, 1);
    }

    #[test]
    fn replayed_reply_is_dropped_as_replay() {
        let mut s = sender();
        let mut r = reflector();
        let mut buf = [0u8; MAX_PACKET_LEN];
        let mut out = [0u8; MAX_PACKET_LEN];
        let n = s.poll_transmit(0, &mut buf).unwrap();
        let m = r.handle_request(&buf[..n], 10, &mut out).unwrap();
        assert!(s.handle_reply(&out[..m], 20).is_ok());
        assert_eq!(s.handle_reply(&out[..m], 30), Err(ProbeDrop::Replay));
        assert_eq!(s.counters().rx_ok, 1);
        assert_eq!(s.counters().rx_drops.get(ProbeDrop::Replay), 1);
    }

    #[test]
    fn reordered_requests_within_the_window_are_accepted() {
        let mut r = reflector();
        let mut out = [0u8; MAX_PACKET_LEN];
        for seq in [
            SEQ0 + 10,
            SEQ0 + 3,
            SEQ0 + 11,
            SEQ0,
            SEQ0 + 11 - REPLAY_WINDOW + 1,
        ] {
            assert!(
                r.handle_request(&request(seq, 0), 0, &mut out).is_ok(),
                "{seq}"
            );
        }
        assert_eq!(r.path_stats(2).unwrap().received, 5);
        assert_eq!(r.path_stats(2).unwrap().highest_seq, Some(SEQ0 + 11));
    }

    #[test]
    fn requests_older_than_the_window_are_dropped_as_too_old() {
        let mut r = reflector();
        let mut out = [0u8; MAX_PACKET_LEN];
        let top = SEQ0 + 5000;
        r.handle_request(&request(top, 0), 0, &mut out).unwrap();
        assert_eq!(
            r.handle_request(&request(top - REPLAY_WINDOW, 0), 0, &mut out),
            Err(ProbeDrop::TooOld)
        );
        assert!(r
            .handle_request(&request(top - REPLAY_WINDOW + 1, 0), 0, &mut out)
            .is_ok());
    }

    #[test]
    fn replay_window_forgets_bits_as_it_slides() {
        let mut w = ReplayWindow::new();
        w.check_and_update(5).unwrap();
        w.check_and_update(5 + REPLAY_WINDOW).unwrap();
        // 5 + REPLAY_WINDOW shares 5's bit; 6.. were cleared on the way.
        assert_eq!(w.check(5), Err(ReplayError::TooOld));
        assert_eq!(w.check(6), Ok(()));
        assert_eq!(
            w.check_and_update(5 + REPLAY_WINDOW),
            Err(ReplayError::Duplicate)
        );
        w.check_and_update(10 * REPLAY_WINDOW).unwrap();
        assert_eq!(w.check(9 * REPLAY_WINDOW + 1), Ok(()));
    }

    #[test]
    fn request_from_another_peer_or_path_or_type_is_dropped() {
        let mut out = [0u8; MAX_PACKET_LEN];
        let mut r = Reflector::new(ReflectorConfig {
            peer_id: B,
            paths: 4,
            keys: keys(),
        })
        .unwrap();
        assert_eq!(
            r.handle_request(&request(SEQ0, 0), 0, &mut out),
            Err(ProbeDrop::WrongSender)
        );
        let mut r = Reflector::new(ReflectorConfig {
            peer_id: A,
            paths: 2,
            keys: keys(),
        })
        .unwrap();
        assert_eq!(
            r.handle_request(&request(SEQ0, 0), 0, &mut out),
            Err(ProbeDrop::UnknownPath)
        );
        // A Reply reflected back at a reflector, a Request at a sender.
        let mut r = reflector();
        let n = r.handle_request(&request(SEQ0, 0), 0, &mut out).unwrap();
        let reply = out;
        assert_eq!(
            r.handle_request(&reply[..n], 0, &mut out),
            Err(ProbeDrop::WrongType)
        );
        let mut s = sender();
        s.poll_transmit(0, &mut [0; MAX_PACKET_LEN]).unwrap();
        assert_eq!(
            s.handle_reply(&request(SEQ0, 0), 1),
            Err(ProbeDrop::WrongType)
        );
        assert_eq!(
            Reflector::new(ReflectorConfig {
                peer_id: A,
                paths: 0,
                keys: keys()
            })
            .unwrap_err(),
            ConfigError::NoPaths
        );
    }

    #[test]
    fn reply_to_a_sequence_never_sent_is_unsolicited() {
        let mut s = sender();
        let mut r = reflector();
        let mut out = [0u8; MAX_PACKET_LEN];
        s.poll_transmit(0, &mut [0; MAX_PACKET_LEN]).unwrap();
        let n = r
            .handle_request(&request(SEQ0 + 1, 0), 0, &mut out)
            .unwrap();
        assert_eq!(s.handle_reply(&out[..n], 5), Err(ProbeDrop::Unsolicited));
        let n = r
            .handle_request(&request(SEQ0 - 1, 0), 0, &mut out)
            .unwrap();
        assert_eq!(s.handle_reply(&out[..n], 5), Err(ProbeDrop::Unsolicited));
    }

    #[test]
    fn rtt_excludes_the_reflector_turnaround() {
        let mut s = sender();
        let mut r = reflector();
        let mut buf = [0u8; MAX_PACKET_LEN];
        let mut out = [0u8; MAX_PACKET_LEN];
        // Sender clock at 1 s, reflector clock at 500 s; 15 ms out, 7 ms
        // turnaround, 25 ms back.
        let t1 = 1_000 * MS;
        let n = s.poll_transmit(t1, &mut buf).unwrap();
        let t2 = 500_000 * MS;
        let m = r
            .handle_request_at(&buf[..n], t2, t2 + 7 * MS, &mut out)
            .unwrap();
        let t4 = t1 + 15 * MS + 7 * MS + 25 * MS;
        let smp = s.handle_reply(&out[..m], t4).unwrap();
        assert_eq!(smp.rtt_ns, 40 * MS);
        assert_eq!(smp.seq, SEQ0);
        assert_eq!(smp.sent_at_ns, t1);
        assert_eq!(smp.received_at_ns, t4);
        assert_eq!(smp.forward_owd_ns, (t2 - t1) as i64);
        assert_eq!(smp.reverse_owd_ns, t4 as i64 - (t2 + 7 * MS) as i64);
        // The offsets cancel: forward + reverse one-way = RTT.
        assert_eq!((smp.forward_owd_ns + smp.reverse_owd_ns) as u64, 40 * MS);
        assert!(smp.rebased);
    }

    #[test]
    fn default_rate_is_ten_per_second_and_sends_on_schedule() {
        let mut s = sender();
        let mut buf = [0u8; MAX_PACKET_LEN];
        let mut sent = 0;
        let mut t = 0;
        while t < 1_000 * MS {
            if s.poll_transmit(t, &mut buf).is_some() {
                sent += 1;
            }
            t += MS;
        }
        assert_eq!(sent, 10);
        assert_eq!(s.interval_ns(), 100 * MS);
        assert_eq!(s.poll_timeout(), Some(1_000 * MS));
        // A late caller gets one probe, not a catch-up burst.
        assert!(s.poll_transmit(1_550 * MS, &mut buf).is_some());
        assert!(s.poll_transmit(1_550 * MS, &mut buf).is_none());
        assert_eq!(s.poll_timeout(), Some(1_000 * MS)); // oldest probe's loss deadline
    }

    #[test]
    fn rate_must_be_between_1_and_100_per_second() {
        for bad in [0, 101, 1000] {
            let mut cfg = SenderConfig::new(A, 0, 0, keys());
            cfg.rate_per_sec = bad;
            assert_eq!(ProbeSender::new(cfg).unwrap_err(), ConfigError::Rate(bad));
        }
        assert_eq!(sender_with(1).interval_ns(), 1_000 * MS);
        let mut s = sender_with(100);
        assert_eq!(s.interval_ns(), 10 * MS);
        let mut buf = [0u8; MAX_PACKET_LEN];
        let sent = (0..1_000u64)
            .filter(|ms| s.poll_transmit(ms * MS, &mut buf).is_some())
            .count();
        assert_eq!(sent, 100);
        assert_eq!(s.set_rate(101), Err(ConfigError::Rate(101)));
        assert_eq!(s.set_rate(50), Ok(()));
        assert_eq!(s.interval_ns(), 20 * MS);
    }

    #[test]
    fn unanswered_probe_is_lost_after_the_timeout() {
        let mut s = sender();
        let mut buf = [0u8; MAX_PACKET_LEN];
        s.poll_transmit(0, &mut buf).unwrap();
        s.poll_transmit(100 * MS, &mut buf).unwrap();
        assert_eq!(s.loss_timeout_ns(), 1_000 * MS);
        assert_eq!(s.handle_timeout(999 * MS), None);
        assert_eq!(
            s.handle_timeout(1_000 * MS),
            Some(Lost {
                path_id: 2,
                seq: SEQ0,
                sent_at_ns: 0
            })
        );
        assert_eq!(s.handle_timeout(1_000 * MS), None);
        assert_eq!(s.poll_timeout(), Some(200 * MS));
        assert_eq!(s.handle_timeout(1_100 * MS).map(|l| l.seq), Some(SEQ0 + 1));
        assert_eq!(s.counters().lost, 2);
    }

    #[test]
    fn loss_timeout_is_three_p99_rtts_between_1_and_5_seconds() {
        let mut s = sender();
        s.set_rtt_p99_ns(200 * MS);
        assert_eq!(s.loss_timeout_ns(), 1_000 * MS);
        s.set_rtt_p99_ns(500 * MS);
        assert_eq!(s.loss_timeout_ns(), 1_500 * MS);
        s.set_rtt_p99_ns(10_000 * MS);
        assert_eq!(s.loss_timeout_ns(), MAX_LOSS_TIMEOUT_NS);
    }

    #[test]
    fn reply_within_the_timeout_counts_and_after_it_is_late() {
        let mut s = sender();
        let mut r = reflector();
        let mut buf = [0u8; MAX_PACKET_LEN];
        let mut out = [0u8; MAX_PACKET_LEN];
        let n = s.poll_transmit(0, &mut buf).unwrap();
        let a = r.handle_request(&buf[..n], 0, &mut out).unwrap();
        let first = out;
        let n = s.poll_transmit(100 * MS, &mut buf).unwrap();
        let b = r.handle_request(&buf[..n], 0, &mut out).unwrap();
        // 900 ms: slow but inside the 1 s timeout.
        assert_eq!(s.handle_timeout(900 * MS), None);
        assert!(s.handle_reply(&first[..a], 900 * MS).is_ok());
        assert_eq!(s.handle_timeout(1_200 * MS).map(|l| l.seq), Some(SEQ0 + 1));
        assert_eq!(s.handle_reply(&out[..b], 1_300 * MS), Err(ProbeDrop::Late));
        assert_eq!(
            s.handle_reply(&out[..b], 1_300 * MS),
            Err(ProbeDrop::Replay)
        );
        assert_eq!(s.counters().lost, 1);
        assert_eq!(s.counters().rx_ok, 1);
    }

    #[test]
    fn forward_and_reverse_loss_are_told_apart_on_a_lossy_link() {
        let mut s = sender_with(100);
        let mut r = reflector();
        let mut rng = Rng(0x5eed);
        let mut buf = [0u8; MAX_PACKET_LEN];
        let mut out = [0u8; MAX_PACKET_LEN];
        let (mut fwd_dropped, mut rev_dropped) = (0u64, 0u64);
        let mut fwd_from_samples = 0;
        let mut lost_events = 0;
        let mut t = 0;
        let mut first = true;
        while t < 100_000 * MS {
            if let Some(n) = s.poll_transmit(t, &mut buf) {
                // The first probe always gets through, to set the baseline.
                if !first && rng.chance(0.04) {
                    fwd_dropped += 1;
                } else {
                    let m = r.handle_request(&buf[..n], t + 20 * MS, &mut out).unwrap();
                    if !first && rng.chance(0.02) {
                        rev_dropped += 1;
                    } else {
                        let smp = s.handle_reply(&out[..m], t + 40 * MS).unwrap();
                        fwd_from_samples += smp.forward_lost;
                    }
                }
                first = false;
            }
            while s.handle_timeout(t).is_some() {
                lost_events += 1;
            }
            t += 5 * MS;
        }
        // The last probe answered closes the forward count; drain the rest.
        while s.handle_timeout(t + 10_000 * MS).is_some() {
            lost_events += 1;
        }
        let c = s.counters();
        assert!(fwd_dropped > 300 && rev_dropped > 150);
        assert_eq!(lost_events, fwd_dropped + rev_dropped);
        assert_eq!(c.lost, fwd_dropped + rev_dropped);
        // Forward drops after the last answered probe are not yet known.
        let tail = c.tx - 1 - (s.base.unwrap().last_seq - SEQ0);
        assert!(tail < 10);
        assert!(c.forward_lost <= fwd_dropped && c.forward_lost + tail >= fwd_dropped);
        assert_eq!(c.forward_lost, fwd_from_samples);
        assert!(c.reverse_lost() >= rev_dropped && c.reverse_lost() <= rev_dropped + tail);
        let st = r.path_stats(2).unwrap();
        assert_eq!(st.received, c.tx - fwd_dropped);
        assert!(st.forward_lost <= fwd_dropped && st.forward_lost + tail >= fwd_dropped);
    }

    #[test]
    fn reflector_restart_rebases_the_forward_loss_count() {
        let mut s = sender();
        let mut buf = [0u8; MAX_PACKET_LEN];
        let mut out = [0u8; MAX_PACKET_LEN];
        let mut r = reflector();
        for i in 0..3 {
            let n = s.poll_transmit(i * 100 * MS, &mut buf).unwrap();
            let m = r.handle_request(&buf[..n], 0, &mut out).unwrap();
            let smp = s.handle_reply(&out[..m], i * 100 * MS + 1).unwrap();
            assert_eq!(smp.rebased, i == 0);
        }
        let mut r = reflector();
        let n = s.poll_transmit(300 * MS, &mut buf).unwrap();
        let m = r.handle_request(&buf[..n], 0, &mut out).unwrap();
        let smp = s.handle_reply(&out[..m], 300 * MS + 1).unwrap();
        assert!(smp.rebased);
        assert_eq!(smp.forward_lost, 0);
    }

    #[test]
    fn sender_restart_with_a_later_sequence_is_accepted_by_the_reflector() {
        let mut r = reflector();
        let mut out = [0u8; MAX_PACKET_LEN];
        for i in 0..5 {
            r.handle_request(&request(SEQ0 + i, 0), 0, &mut out)
                .unwrap();
        }
        // Restarted ten minutes later: initial_seq from the wall clock.
        let later = SEQ0 + 600 * 1_000 * MS;
        r.handle_request(&request(later, 0), 0, &mut out).unwrap();
        r.handle_request(&request(later + 2, 0), 0, &mut out)
            .unwrap();
        let st = r.path_stats(2).unwrap();
        assert_eq!(st.received, 7);
        assert_eq!(st.forward_lost, 1);
    }

    #[test]
    fn random_buffers_never_panic_and_are_dropped() {
        let mut rng = Rng(0xdead_beef);
        let mut r = reflector();
        let mut s = sender();
        s.poll_transmit(0, &mut [0; MAX_PACKET_LEN]).unwrap();
        let mut out = [0u8; MAX_PACKET_LEN];
        let mut buf = [0u8; 96];
        let valid = request(SEQ0, 0);
        for i in 0..20_000 {
            for b in buf.iter_mut() {
                *b = rng.next() as u8;
            }
            // Half with a valid header and length, to reach the tag check.
            let len = match i % 4 {
                0 => REQUEST_LEN,
                1 => REPLY_LEN,
                _ => (rng.next() % 96) as usize,
            };
            if i % 4 < 2 {
                buf[..8].copy_from_slice(&valid[..8]);
                buf[3] = 1 + (i % 4) as u8;
            }
            assert!(r.handle_request(&buf[..len], 0, &mut out).is_err());
            assert!(s.handle_reply(&buf[..len], 0).is_err());
            if let Ok(p) = ProbePacket::new_checked(&buf[..len]) {
                let _ = Repr::parse(&p);
                let _ = (p.reply_fields(), p.tag(), p.signed_bytes());
            }
        }
        assert_eq!(r.counters().rx_drops.total(), 20_000);
        assert_eq!(r.counters().rx_drops.get(ProbeDrop::BadTag), 10_000);
        assert_eq!(s.counters().rx_drops.total(), 20_000);
    }

    #[test]
    fn key_length_is_checked_and_debug_redacts_the_secret() {
        assert_eq!(
            ProbeKey::new(1, &[1; 15]).unwrap_err(),
            ConfigError::KeyLength(15)
        );
        assert_eq!(
            ProbeKey::new(1, &[1; 33]).unwrap_err(),
            ConfigError::KeyLength(33)
        );
        let k = ProbeKey::new(4, b"hunter2hunter2hunter2").unwrap();
        let text = format!("{:?} {:?}", k, ProbeKeys::new(k.clone()));
        assert!(text.contains("<redacted>"));
        assert!(!text.contains("hunter2"));
        assert!(!text.contains("104")); // 'h' as a byte
    }

    #[test]
    fn tag_is_keyed_blake2s_128_with_our_personalization() {
        let req = request(SEQ0, 0);
        let mut m =
            Blake2sMac::<U16>::new_with_salt_and_personal(&[0x42; 32], &[], b"PatSLA1\0").unwrap();
        m.update(&req[..HEADER_LEN]);
        assert_eq!(&req[HEADER_LEN..], &m.finalize().into_bytes()[..]);
    }

    #[test]
    fn drop_reasons_are_listed_at_their_index_with_unique_names() {
        for (i, r) in ProbeDrop::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: Vec<&str> = ProbeDrop::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ProbeDrop::COUNT);
        let mut d = DropCounters::default();
        d.count(ProbeDrop::Replay);
        d.count(ProbeDrop::Replay);
        d.count(ProbeDrop::BadTag);
        assert_eq!(d.total(), 3);
        assert_eq!(
            d.iter().collect::<Vec<_>>(),
            vec![(ProbeDrop::BadTag, 1), (ProbeDrop::Replay, 2)]
        );
    }
}
