//! The WireGuard handshake: Noise IKpsk2 as the whitepaper specifies it in
//! section 5.4 (5.4.2 initiation, 5.4.3 response, 5.4.5 transport keys),
//! sans-I/O.
//!
//! Nothing here reads a clock, touches a socket or draws randomness on its
//! own: the monotonic `now` (a [`Duration`] since an epoch the caller picks,
//! as in `timers`), the wall-clock time for the TAI64N timestamp and the RNG
//! for ephemeral keys are arguments, and messages are written into
//! caller-owned fixed-size buffers.
//!
//! - [`StaticIdentity`] is per device: our key pair and the hashes derived
//!   from our public key.
//! - [`Handshake`] is per peer: the peer's key, the preshared key, the
//!   precomputed static-static DH, the replay state and the one initiation we
//!   may have in flight.
//!
//! Initiator: [`Handshake::initiate`] writes an initiation; the response
//! whose receiver index matches goes to [`Handshake::consume_response`],
//! which yields [`SessionKeys`].
//!
//! Responder: the device first checks mac1 (and mac2 under load) with
//! [`CookieChecker`](super::cookie::CookieChecker), then
//! [`StaticIdentity::open_initiation`] decrypts the initiator's static key,
//! which tells the device which peer it is; that peer's
//! [`Handshake::respond`] checks the timestamp and writes the response,
//! yielding [`SessionKeys`].
//!
//! As in the kernel and wireguard-go, a DH whose result is all zeros (a
//! low-order public key) fails the handshake, and consuming a peer's
//! initiation abandons our own in-flight initiation to it.

use std::fmt;
use std::time::{Duration, SystemTime};

use rand_core::CryptoRngCore;
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::cookie::CookieState;
use super::crypto::{
    aead_open, aead_seal, ct_eq, hash, kdf1, kdf2, kdf3, AeadError, CONSTRUCTION, IDENTIFIER,
    KEY_LEN, LABEL_COOKIE, LABEL_MAC1,
};
use super::keys::{PresharedKey, PrivateKey, PublicKey};
use super::messages::{classify, Initiation, MessageKind, Response, INITIATION_LEN, RESPONSE_LEN};
use super::tai64n::{Tai64N, TAI64N_LEN};

/// The most initiations per second a responder consumes from one peer
/// (the kernel's `INITIATIONS_PER_SECOND`).
pub const INITIATIONS_PER_SECOND: u32 = 50;
/// The shortest gap between two consumed initiations from one peer.
pub const MIN_INITIATION_INTERVAL: Duration =
    Duration::from_nanos(1_000_000_000 / INITIATIONS_PER_SECOND as u64);

/// Why a handshake message was refused. Every variant means "drop it".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeError {
    /// Not a message of the expected type and length.
    Malformed,
    /// An AEAD field did not verify: wrong keys, or the message was altered.
    DecryptionFailed,
    /// The initiator's static key is not this peer's (or no configured peer).
    UnknownPeer,
    /// The initiation's timestamp is not later than the last one accepted
    /// from this peer: a replay, or an old message.
    TimestampReplay,
    /// Initiations from this peer arrive faster than
    /// [`INITIATIONS_PER_SECOND`].
    InitiationFlood,
    /// A public key is a low-order point (the DH result is all zeros).
    InvalidPublicKey,
    /// A response arrived while we have no initiation in flight.
    NoHandshakeInFlight,
    /// A response's receiver index is not our in-flight initiation's index.
    WrongIndex,
    /// mac1 does not match: not addressed to our key, or altered.
    Mac1Invalid,
    /// A cookie reply arrived for no message we sent (or one already
    /// answered).
    UnexpectedCookieReply,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::Malformed => "malformed handshake message (wrong type or length)",
            HandshakeError::DecryptionFailed => "handshake decryption failed",
            HandshakeError::UnknownPeer => "handshake from an unknown peer",
            HandshakeError::TimestampReplay => {
                "initiation timestamp is not newer than the last accepted one (replay)"
            }
            HandshakeError::InitiationFlood => "initiations from this peer arrive too fast",
            HandshakeError::InvalidPublicKey => "public key is a low-order point",
            HandshakeError::NoHandshakeInFlight => "response without an initiation in flight",
            HandshakeError::WrongIndex => "response is for a different initiation",
            HandshakeError::Mac1Invalid => "handshake message has an invalid mac1",
            HandshakeError::UnexpectedCookieReply => "cookie reply for no message we sent",
        })
    }
}

impl std::error::Error for HandshakeError {}

impl From<AeadError> for HandshakeError {
    fn from(e: AeadError) -> Self {
        match e {
            AeadError::Authentication => HandshakeError::DecryptionFailed,
            AeadError::BufferLength => HandshakeError::Malformed,
        }
    }
}

/// The keys a completed handshake yields for one session. Zeroized on drop;
/// `Debug` shows only the indices.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SessionKeys {
    /// Key for the messages we send.
    pub send_key: [u8; KEY_LEN],
    /// Key for the messages we receive.
    pub recv_key: [u8; KEY_LEN],
    /// Our index: the receiver index on incoming transport messages.
    pub local_index: u32,
    /// The peer's index: the receiver index we put on outgoing messages.
    pub remote_index: u32,
    /// Whether we initiated. A responder must not send data on these keys
    /// until it has received the initiator's first transport message.
    pub initiator: bool,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("send_key", &"<redacted>")
            .field("recv_key", &"<redacted>")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("initiator", &self.initiator)
            .finish()
    }
}

/// The Noise symmetric state: chaining key and transcript hash.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct Transcript {
    ck: [u8; KEY_LEN],
    h: [u8; KEY_LEN],
}

impl Transcript {
    fn mix_hash(&mut self, data: &[u8]) {
        self.h = hash(&[&self.h, data]);
    }

    /// `C = KDF1(C, input)`.
    fn mix_key(&mut self, input: &[u8]) {
        self.ck = *kdf1(&self.ck, input);
    }

    /// `(C, k) = KDF2(C, input)`.
    fn mix_key_for(&mut self, input: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        let (ck, key) = kdf2(&self.ck, input);
        self.ck = *ck;
        key
    }

    /// `(C, tau, k) = KDF3(C, psk); H = HASH(H || tau)`.
    fn mix_psk(&mut self, psk: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
        let (ck, tau, key) = kdf3(&self.ck, psk);
        self.ck = *ck;
        self.mix_hash(&tau[..]);
        key
    }

    /// `out = AEAD(k, 0, plaintext, H); H = HASH(H || out)`.
    fn seal(
        &mut self,
        key: &[u8; KEY_LEN],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<(), HandshakeError> {
        aead_seal(key, 0, plaintext, &self.h, out)?;
        self.mix_hash(out);
        Ok(())
    }

    /// Opens an AEAD field with `H` as associated data, then mixes it in.
    fn open(
        &mut self,
        key: &[u8; KEY_LEN],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<(), HandshakeError> {
        aead_open(key, 0, ciphertext, &self.h, out)?;
        self.mix_hash(ciphertext);
        Ok(())
    }

    /// `(T1, T2) = KDF2(C, empty)`: initiator send/receive, responder the
    /// reverse.
    fn split(&self) -> (Zeroizing<[u8; KEY_LEN]>, Zeroizing<[u8; KEY_LEN]>) {
        kdf2(&self.ck, &[])
    }
}

/// `DH(private, public)`, refusing an all-zero result.
fn dh(
    private: &StaticSecret,
    public: &[u8; KEY_LEN],
) -> Result<Zeroizing<[u8; KEY_LEN]>, HandshakeError> {
    let shared = private.diffie_hellman(&x25519_dalek::PublicKey::from(*public));
    if !shared.was_contributory() {
        return Err(HandshakeError::InvalidPublicKey);
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// `DH(our static private, public)`, refusing an all-zero result.
fn dh_static(
    private: &PrivateKey,
    public: &PublicKey,
) -> Result<Zeroizing<[u8; KEY_LEN]>, HandshakeError> {
    let shared = private.diffie_hellman(public);
    if !shared.was_contributory() {
        return Err(HandshakeError::InvalidPublicKey);
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// `C0 = HASH(CONSTRUCTION)`.
fn initial_chaining_key() -> [u8; KEY_LEN] {
    hash(&[CONSTRUCTION])
}

/// `H0 = HASH(HASH(C0 || IDENTIFIER) || responder static public)`.
fn initial_hash(ck: &[u8; KEY_LEN], responder: &PublicKey) -> [u8; KEY_LEN] {
    hash(&[&hash(&[ck, IDENTIFIER]), responder.as_bytes()])
}

/// The device's key pair and the values derived from its public key.
pub struct StaticIdentity {
    private: PrivateKey,
    public: PublicKey,
    chaining_key: [u8; KEY_LEN],
    responder_hash: [u8; KEY_LEN],
    mac1_key: [u8; KEY_LEN],
    cookie_key: [u8; KEY_LEN],
}

impl StaticIdentity {
    /// Derives the public key and the precomputed hashes.
    pub fn new(private: PrivateKey) -> Self {
        let public = private.public_key();
        let chaining_key = initial_chaining_key();
        StaticIdentity {
            responder_hash: initial_hash(&chaining_key, &public),
            mac1_key: hash(&[LABEL_MAC1, public.as_bytes()]),
            cookie_key: hash(&[LABEL_COOKIE, public.as_bytes()]),
            chaining_key,
            private,
            public,
        }
    }

    /// Our static public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// `HASH(LABEL_MAC1 || our public key)`: checks mac1 on what we receive.
    pub fn mac1_key(&self) -> &[u8; KEY_LEN] {
        &self.mac1_key
    }

    /// `HASH(LABEL_COOKIE || our public key)`: seals the cookie replies we
    /// send.
    pub fn cookie_key(&self) -> &[u8; KEY_LEN] {
        &self.cookie_key
    }

    /// Responder, device-level step: decrypts the initiator's static public
    /// key so the caller can find the peer (`remote_static()` of the result),
    /// then hands the result to that peer's [`Handshake::respond`]. mac1 is
    /// not checked here; the caller runs the cookie checker first.
    pub fn open_initiation(&self, msg: &[u8]) -> Result<PendingInitiation, HandshakeError> {
        if classify(msg) != Some(MessageKind::Initiation) {
            return Err(HandshakeError::Malformed);
        }
        let m = Initiation::new_checked(msg).map_err(|_| HandshakeError::Malformed)?;
        let ephemeral = *m.ephemeral();
        let mut t = Transcript {
            ck: self.chaining_key,
            h: self.responder_hash,
        };
        t.mix_hash(&ephemeral);
        t.mix_key(&ephemeral);
        let key = t.mix_key_for(&dh_static(&self.private, &PublicKey(ephemeral))?[..]);
        let mut remote_static = [0u8; KEY_LEN];
        t.open(&key, m.encrypted_static(), &mut remote_static)?;
        Ok(PendingInitiation {
            remote_static: PublicKey(remote_static),
            remote_ephemeral: ephemeral,
            remote_index: m.sender_index(),
            encrypted_timestamp: *m.encrypted_timestamp(),
            transcript: t,
        })
    }
}

impl fmt::Debug for StaticIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticIdentity")
            .field("private", &self.private)
            .field("public", &self.public)
            .finish()
    }
}

/// An initiation whose static key decrypted: who sent it and the transcript
/// so far. Opaque; consumed by [`Handshake::respond`].
pub struct PendingInitiation {
    remote_static: PublicKey,
    remote_ephemeral: [u8; KEY_LEN],
    remote_index: u32,
    encrypted_timestamp: [u8; TAI64N_LEN + 16],
    transcript: Transcript,
}

impl PendingInitiation {
    /// The initiator's static public key: which peer this claims to be.
    pub fn remote_static(&self) -> &PublicKey {
        &self.remote_static
    }

    /// The initiator's sender index.
    pub fn sender_index(&self) -> u32 {
        self.remote_index
    }
}

impl fmt::Debug for PendingInitiation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingInitiation")
            .field("remote_static", &self.remote_static)
            .field("sender_index", &self.remote_index)
            .finish_non_exhaustive()
    }
}

/// Our initiation in flight: what the response must be matched against.
struct InFlight {
    local_index: u32,
    ephemeral: StaticSecret,
    transcript: Transcript,
}

/// Per-peer handshake state. Secrets are zeroized on drop and by
/// [`Handshake::clear`].
pub struct Handshake {
    remote_static: PublicKey,
    preshared: PresharedKey,
    static_static: Zeroizing<[u8; KEY_LEN]>,
    static_static_valid: bool,
    chaining_key: [u8; KEY_LEN],
    initiator_hash: [u8; KEY_LEN],
    last_timestamp: Tai64N,
    last_initiation_consumed: Option<Duration>,
    in_flight: Option<InFlight>,
    cookie: CookieState,
}

impl Handshake {
    /// State for the peer `remote_static`, precomputing `DH(our static,
    /// their static)`. Without a preshared key the Noise default (32 zero
    /// bytes) is used, as `wg` does.
    pub fn new(
        identity: &StaticIdentity,
        remote_static: PublicKey,
        preshared: Option<PresharedKey>,
    ) -> Self {
        let chaining_key = initial_chaining_key();
        let mut hs = Handshake {
            remote_static,
            preshared: preshared.unwrap_or(PresharedKey::from_bytes([0; KEY_LEN])),
            static_static: Zeroizing::new([0; KEY_LEN]),
            static_static_valid: false,
            initiator_hash: initial_hash(&chaining_key, &remote_static),
            chaining_key,
            last_timestamp: Tai64N::ZERO,
            last_initiation_consumed: None,
            in_flight: None,
            cookie: CookieState::new(&remote_static),
        };
        hs.set_identity(identity);
        hs
    }

    /// Re-derives the static-static DH after the device key changed and
    /// abandons any initiation in flight.
    pub fn set_identity(&mut self, identity: &StaticIdentity) {
        match dh_static(&identity.private, &self.remote_static) {
            Ok(ss) => {
                *self.static_static = *ss;
                self.static_static_valid = true;
            }
            Err(_) => {
                self.static_static.zeroize();
                self.static_static_valid = false;
            }
        }
        self.in_flight = None;
    }

    /// Replaces the preshared key (`None` for the all-zero default).
    pub fn set_preshared_key(&mut self, preshared: Option<PresharedKey>) {
        self.preshared = preshared.unwrap_or(PresharedKey::from_bytes([0; KEY_LEN]));
    }

    /// The peer's static public key.
    pub fn remote_static(&self) -> &PublicKey {
        &self.remote_static
    }

    /// The sender index of our initiation in flight, if any.
    pub fn in_flight_index(&self) -> Option<u32> {
        self.in_flight.as_ref().map(|s| s.local_index)
    }

    /// The last initiation timestamp accepted from this peer.
    pub fn last_timestamp(&self) -> Tai64N {
        self.last_timestamp
    }

    /// The cookie state for messages we send this peer.
    pub fn cookie(&self) -> &CookieState {
        &self.cookie
    }

    /// Abandons (and zeroizes) the initiation in flight. The replay state is
    /// kept: forgetting it would let old initiations back in.
    pub fn clear(&mut self) {
        self.in_flight = None;
    }

    /// Initiator: writes a handshake initiation with sender index
    /// `local_index` into `out`, timestamped with `wall_time`, with mac1 and
    /// (if we hold a fresh cookie from this peer) mac2. Replaces any earlier
    /// initiation in flight.
    pub fn initiate(
        &mut self,
        identity: &StaticIdentity,
        local_index: u32,
        wall_time: SystemTime,
        now: Duration,
        rng: &mut impl CryptoRngCore,
        out: &mut [u8; INITIATION_LEN],
    ) -> Result<(), HandshakeError> {
        if !self.static_static_valid {
            return Err(HandshakeError::InvalidPublicKey);
        }
        let ephemeral = StaticSecret::random_from_rng(&mut *rng);
        let ephemeral_public = x25519_dalek::PublicKey::from(&ephemeral).to_bytes();
        let mut t = Transcript {
            ck: self.chaining_key,
            h: self.initiator_hash,
        };

        out.fill(0);
        let mut msg = Initiation::new_unchecked(&mut out[..]);
        msg.set_message_type();
        msg.set_sender_index(local_index);
        *msg.ephemeral_mut() = ephemeral_public;
        t.mix_hash(&ephemeral_public);
        t.mix_key(&ephemeral_public);

        let key = t.mix_key_for(&dh(&ephemeral, self.remote_static.as_bytes())?[..]);
        t.seal(&key, identity.public.as_bytes(), msg.encrypted_static_mut())?;

        let key = t.mix_key_for(&self.static_static[..]);
        let timestamp = Tai64N::from_system_time(wall_time);
        t.seal(&key, timestamp.as_bytes(), msg.encrypted_timestamp_mut())?;

        self.cookie.write_macs(&mut out[..], now);
        self.in_flight = Some(InFlight {
            local_index,
            ephemeral,
            transcript: t,
        });
        Ok(())
    }

    /// Initiator: consumes the response to our initiation in flight. On
    /// success the in-flight state is gone; on failure it is kept, so a
    /// forged response cannot cancel the handshake. mac1 is not checked
    /// here; the caller runs the cookie checker first.
    pub fn consume_response(
        &mut self,
        identity: &StaticIdentity,
        msg: &[u8],
    ) -> Result<SessionKeys, HandshakeError> {
        if classify(msg) != Some(MessageKind::Response) {
            return Err(HandshakeError::Malformed);
        }
        let r = Response::new_checked(msg).map_err(|_| HandshakeError::Malformed)?;
        let state = self
            .in_flight
            .as_ref()
            .ok_or(HandshakeError::NoHandshakeInFlight)?;
        if r.receiver_index() != state.local_index {
            return Err(HandshakeError::WrongIndex);
        }

        let mut t = state.transcript.clone();
        let ephemeral = r.ephemeral();
        t.mix_hash(ephemeral);
        t.mix_key(ephemeral);
        t.mix_key(&dh(&state.ephemeral, ephemeral)?[..]);
        t.mix_key(&dh_static(&identity.private, &PublicKey(*ephemeral))?[..]);
        let key = t.mix_psk(self.preshared.as_bytes());
        t.open(&key, r.encrypted_empty(), &mut [])?;

        let (send, recv) = t.split();
        let keys = SessionKeys {
            send_key: *send,
            recv_key: *recv,
            local_index: state.local_index,
            remote_index: r.sender_index(),
            initiator: true,
        };
        self.in_flight = None;
        Ok(keys)
    }

    /// Responder, per-peer step: checks that `pending` comes from this peer,
    /// decrypts and checks its timestamp (strictly newer than the last one
    /// accepted, and not within [`MIN_INITIATION_INTERVAL`] of the last
    /// consumed initiation), then writes the response with sender index
    /// `local_index` into `out`, with mac1 and (if we hold a cookie from this
    /// peer) mac2.
    pub fn respond(
        &mut self,
        pending: PendingInitiation,
        local_index: u32,
        now: Duration,
        rng: &mut impl CryptoRngCore,
        out: &mut [u8; RESPONSE_LEN],
    ) -> Result<SessionKeys, HandshakeError> {
        if !ct_eq(
            pending.remote_static.as_bytes(),
            self.remote_static.as_bytes(),
        ) {
            return Err(HandshakeError::UnknownPeer);
        }
        if !self.static_static_valid {
            return Err(HandshakeError::InvalidPublicKey);
        }
        let mut t = pending.transcript.clone();
        let key = t.mix_key_for(&self.static_static[..]);
        let mut timestamp = [0u8; TAI64N_LEN];
        t.open(&key, &pending.encrypted_timestamp, &mut timestamp)?;
        let timestamp = Tai64N(timestamp);
        if !timestamp.is_after(&self.last_timestamp) {
            return Err(HandshakeError::TimestampReplay);
        }
        if self
            .last_initiation_consumed
            .is_some_and(|last| now.saturating_sub(last) < MIN_INITIATION_INTERVAL)
        {
            return Err(HandshakeError::InitiationFlood);
        }
        self.last_timestamp = timestamp;
        self.last_initiation_consumed = Some(now);
        self.in_flight = None;

        let ephemeral = StaticSecret::random_from_rng(&mut *rng);
        let ephemeral_public = x25519_dalek::PublicKey::from(&ephemeral).to_bytes();
        out.fill(0);
        let mut msg = Response::new_unchecked(&mut out[..]);
        msg.set_message_type();
        msg.set_sender_index(local_index);
        msg.set_receiver_index(pending.remote_index);
        *msg.ephemeral_mut() = ephemeral_public;
        t.mix_hash(&ephemeral_public);
        t.mix_key(&ephemeral_public);
        t.mix_key(&dh(&ephemeral, &pending.remote_ephemeral)?[..]);
        t.mix_key(&dh(&ephemeral, self.remote_static.as_bytes())?[..]);
        let key = t.mix_psk(self.preshared.as_bytes());
        t.seal(&key, &[], msg.encrypted_empty_mut())?;
        self.cookie.write_macs(&mut out[..], now);

        let (recv, send) = t.split();
        Ok(SessionKeys {
            send_key: *send,
            recv_key: *recv,
            local_index,
            remote_index: pending.remote_index,
            initiator: false,
        })
    }

    /// Consumes a cookie reply for a message we sent this peer (the caller
    /// found the peer through the reply's receiver index).
    pub fn consume_cookie_reply(
        &mut self,
        msg: &[u8],
        now: Duration,
    ) -> Result<(), HandshakeError> {
        self.cookie.consume_reply(msg, now)
    }
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("remote_static", &self.remote_static)
            .field("preshared", &self.preshared)
            .field("last_timestamp", &self.last_timestamp)
            .field("in_flight_index", &self.in_flight_index())
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

/// Deterministic fixtures shared by the handshake and cookie tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// SplitMix64: deterministic, and marked `CryptoRng` for tests only.
    pub struct TestRng(u64);

    impl TestRng {
        pub fn new(seed: u64) -> Self {
            TestRng(seed)
        }
    }

    impl rand_core::RngCore for TestRng {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for chunk in dest.chunks_mut(8) {
                let v = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl rand_core::CryptoRng for TestRng {}

    /// A fixed secret and its public key, computed with the raw X25519
    /// function rather than our types.
    pub fn raw_keypair(seed: u8) -> ([u8; 32], [u8; 32]) {
        let secret: [u8; 32] =
            core::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8));
        (
            secret,
            x25519_dalek::x25519(secret, x25519_dalek::X25519_BASEPOINT_BYTES),
        )
    }

    pub fn identity(seed: u8) -> StaticIdentity {
        StaticIdentity::new(PrivateKey::from_bytes(raw_keypair(seed).0))
    }

    /// A wall-clock time `secs` after a fixed 2023 instant.
    pub fn wall(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::wg::cookie::{Admission, CookieChecker};
    use crate::wg::crypto::{aead_open_in_place, aead_seal_in_place};
    use crate::wg::messages::{
        write_transport_header, Transport, COOKIE_REPLY_LEN, TRANSPORT_HEADER_LEN,
    };
    use boringtun::noise::{Tunn, TunnResult};
    use rand_core::RngCore;
    use std::net::{Ipv4Addr, SocketAddr};

    fn src() -> SocketAddr {
        "198.51.100.9:40000".parse().unwrap()
    }

    fn tunn(their_secret: [u8; 32], our_public: PublicKey, psk: Option<[u8; 32]>) -> Tunn {
        Tunn::new(
            boringtun::x25519::StaticSecret::from(their_secret),
            boringtun::x25519::PublicKey::from(our_public.0),
            psk,
            None,
            3,
            None,
        )
    }

    /// A minimal valid IPv4/UDP packet (boringtun checks the IPv4 length).
    fn ipv4_packet(payload: &[u8]) -> Vec<u8> {
        let total = 28 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
        ];
        p.extend_from_slice(&[10, 0, 0, 2, 10, 0, 0, 1]);
        p.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, (8 + payload.len()) as u8, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    /// One transport message, built by hand: header, the packet padded to
    /// 16 bytes, ChaCha20-Poly1305 under our send key.
    fn seal_transport(keys: &SessionKeys, counter: u64, packet: &[u8]) -> Vec<u8> {
        let padded = packet.len().div_ceil(16) * 16;
        let mut msg = vec![0u8; TRANSPORT_HEADER_LEN + padded + 16];
        let mut hdr = [0u8; TRANSPORT_HEADER_LEN];
        write_transport_header(&mut hdr, keys.remote_index, counter);
        msg[..TRANSPORT_HEADER_LEN].copy_from_slice(&hdr);
        msg[TRANSPORT_HEADER_LEN..TRANSPORT_HEADER_LEN + packet.len()].copy_from_slice(packet);
        let body = &mut msg[TRANSPORT_HEADER_LEN..TRANSPORT_HEADER_LEN + padded];
        let tag = aead_seal_in_place(&keys.send_key, counter, &[], body).unwrap();
        msg[TRANSPORT_HEADER_LEN + padded..].copy_from_slice(&tag);
        msg
    }

    /// Opens a transport message with our receive key; returns the
    /// (possibly padded) plaintext.
    fn open_transport(keys: &SessionKeys, msg: &[u8]) -> Vec<u8> {
        assert_eq!(classify(msg), Some(MessageKind::Transport));
        let t = Transport::new_checked(msg).unwrap();
        assert_eq!(t.receiver_index(), keys.local_index);
        let payload = t.payload();
        let (body, tag) = payload.split_at(payload.len() - 16);
        let mut body = body.to_vec();
        aead_open_in_place(
            &keys.recv_key,
            t.counter(),
            &[],
            &mut body,
            tag.try_into().unwrap(),
        )
        .expect("boringtun's packet opens with our receive key");
        body
    }

    fn network(r: TunnResult<'_>) -> Vec<u8> {
        match r {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            other => panic!("expected a datagram for the network, got {other:?}"),
        }
    }

    /// Our initiation, boringtun's response, then one data packet each way.
    fn initiator_interop(psk: Option<[u8; 32]>) {
        let mut rng = TestRng::new(11);
        let now = Duration::from_secs(1000);
        let ours = identity(1);
        let (their_secret, their_public) = raw_keypair(2);
        let mut bt = tunn(their_secret, ours.public_key(), psk);
        let mut hs = Handshake::new(
            &ours,
            PublicKey(their_public),
            psk.map(PresharedKey::from_bytes),
        );
        let checker = CookieChecker::new(&ours, now, &mut rng);
        let mut dst = vec![0u8; 2048];

        let mut init = [0u8; INITIATION_LEN];
        hs.initiate(&ours, 0x0000_1111, wall(0), now, &mut rng, &mut init)
            .unwrap();
        assert_eq!(classify(&init), Some(MessageKind::Initiation));
        assert_eq!(hs.in_flight_index(), Some(0x1111));

        let resp = network(bt.decapsulate(Some(src().ip()), &init, &mut dst));
        assert_eq!(classify(&resp), Some(MessageKind::Response));
        checker.check_mac1(&resp).unwrap();
        let keys = hs.consume_response(&ours, &resp).unwrap();
        assert!(keys.initiator);
        assert_eq!(keys.local_index, 0x1111);
        assert_eq!(
            keys.remote_index,
            Response::new_checked(&resp[..]).unwrap().sender_index()
        );
        assert_eq!(hs.in_flight_index(), None);
        assert_ne!(keys.send_key, keys.recv_key);

        // Our key encrypts what boringtun decrypts...
        let ip = ipv4_packet(b"ping from patronus");
        let msg = seal_transport(&keys, 0, &ip);
        match bt.decapsulate(Some(src().ip()), &msg, &mut dst) {
            TunnResult::WriteToTunnelV4(p, from) => {
                assert_eq!(p, &ip[..]);
                assert_eq!(from, Ipv4Addr::new(10, 0, 0, 2));
            }
            other => panic!("boringtun refused our transport message: {other:?}"),
        }
        // ...and boringtun's key encrypts what we decrypt.
        let reply_ip = ipv4_packet(b"pong from boringtun");
        let msg = network(bt.encapsulate(&reply_ip, &mut dst));
        let plain = open_transport(&keys, &msg);
        assert_eq!(&plain[..reply_ip.len()], &reply_ip[..]);
        assert!(plain[reply_ip.len()..].iter().all(|&b| b == 0));
    }

    #[test]
    fn patronus_initiator_interoperates_with_boringtun_responder() {
        initiator_interop(None);
    }

    #[test]
    fn patronus_initiator_interoperates_with_boringtun_responder_and_psk() {
        initiator_interop(Some([0x42; 32]));
    }

    /// boringtun's initiation, our response, then data each way.
    fn responder_interop(psk: Option<[u8; 32]>) {
        let mut rng = TestRng::new(12);
        let now = Duration::from_secs(1000);
        let ours = identity(3);
        let (their_secret, their_public) = raw_keypair(4);
        let mut bt = tunn(their_secret, ours.public_key(), psk);
        let mut checker = CookieChecker::new(&ours, now, &mut rng);
        let mut hs = Handshake::new(
            &ours,
            PublicKey(their_public),
            psk.map(PresharedKey::from_bytes),
        );
        let mut dst = vec![0u8; 2048];
        let mut cookie = [0u8; COOKIE_REPLY_LEN];

        let init = network(bt.format_handshake_initiation(&mut dst, false));
        assert_eq!(
            checker.check(&init, src(), false, now, &mut rng, &mut cookie),
            Ok(Admission::Accept)
        );
        let pending = ours.open_initiation(&init).unwrap();
        assert_eq!(pending.remote_static(), &PublicKey(their_public));
        let their_index = pending.sender_index();
        let mut resp = [0u8; RESPONSE_LEN];
        let keys = hs
            .respond(pending, 0x2222, now, &mut rng, &mut resp)
            .unwrap();
        assert!(!keys.initiator);
        assert_eq!((keys.local_index, keys.remote_index), (0x2222, their_index));
        assert!(hs.last_timestamp().is_after(&Tai64N::ZERO));

        // boringtun completes the handshake and sends a keepalive, which is
        // an empty transport message under our receive key.
        let keepalive = network(bt.decapsulate(Some(src().ip()), &resp, &mut dst));
        assert_eq!(open_transport(&keys, &keepalive), Vec::<u8>::new());

        let ip = ipv4_packet(b"data from boringtun");
        let msg = network(bt.encapsulate(&ip, &mut dst));
        let plain = open_transport(&keys, &msg);
        assert_eq!(&plain[..ip.len()], &ip[..]);

        let ip = ipv4_packet(b"data from patronus");
        let msg = seal_transport(&keys, 0, &ip);
        match bt.decapsulate(Some(src().ip()), &msg, &mut dst) {
            TunnResult::WriteToTunnelV4(p, _) => assert_eq!(p, &ip[..]),
            other => panic!("boringtun refused our transport message: {other:?}"),
        }
    }

    #[test]
    fn boringtun_initiator_interoperates_with_patronus_responder() {
        responder_interop(None);
    }

    #[test]
    fn boringtun_initiator_interoperates_with_patronus_responder_and_psk() {
        responder_interop(Some([0x17; 32]));
    }

    #[test]
    fn mismatched_preshared_keys_fail_the_handshake() {
        let mut rng = TestRng::new(13);
        let now = Duration::from_secs(1000);
        let ours = identity(5);
        let (their_secret, their_public) = raw_keypair(6);
        let mut bt = tunn(their_secret, ours.public_key(), Some([1; 32]));
        let mut hs = Handshake::new(
            &ours,
            PublicKey(their_public),
            Some(PresharedKey::from_bytes([2; 32])),
        );
        let mut dst = vec![0u8; 2048];
        let mut init = [0u8; INITIATION_LEN];
        hs.initiate(&ours, 1, wall(0), now, &mut rng, &mut init)
            .unwrap();
        let resp = network(bt.decapsulate(Some(src().ip()), &init, &mut dst));
        assert_eq!(
            hs.consume_response(&ours, &resp).unwrap_err(),
            HandshakeError::DecryptionFailed
        );
        assert_eq!(
            hs.in_flight_index(),
            Some(1),
            "a bad response keeps the handshake"
        );
    }

    #[test]
    fn our_initiator_and_responder_derive_mirrored_keys() {
        let mut rng = TestRng::new(14);
        let now = Duration::from_secs(1000);
        let (alice, bob) = (identity(7), identity(8));
        let psk = PresharedKey::from_bytes([9; 32]);
        let mut a = Handshake::new(&alice, bob.public_key(), Some(psk.clone()));
        let mut b = Handshake::new(&bob, alice.public_key(), Some(psk));
        let mut init = [0u8; INITIATION_LEN];
        a.initiate(&alice, 10, wall(0), now, &mut rng, &mut init)
            .unwrap();
        let pending = bob.open_initiation(&init).unwrap();
        let mut resp = [0u8; RESPONSE_LEN];
        let kb = b.respond(pending, 20, now, &mut rng, &mut resp).unwrap();
        let ka = a.consume_response(&alice, &resp).unwrap();
        assert_eq!(ka.send_key, kb.recv_key);
        assert_eq!(ka.recv_key, kb.send_key);
        assert_eq!((ka.local_index, ka.remote_index), (10, 20));
        assert_eq!((kb.local_index, kb.remote_index), (20, 10));

        // Same RNG seed, same wall time: the whole exchange is reproducible.
        let mut rng2 = TestRng::new(14);
        let mut a2 = Handshake::new(
            &alice,
            bob.public_key(),
            Some(PresharedKey::from_bytes([9; 32])),
        );
        let mut init2 = [0u8; INITIATION_LEN];
        a2.initiate(&alice, 10, wall(0), now, &mut rng2, &mut init2)
            .unwrap();
        assert_eq!(init, init2);
    }

    #[test]
    fn replayed_initiation_is_rejected() {
        let mut rng = TestRng::new(15);
        let now = Duration::from_secs(1000);
        let ours = identity(9);
        let (their_secret, their_public) = raw_keypair(10);
        let mut bt = tunn(their_secret, ours.public_key(), None);
        let mut hs = Handshake::new(&ours, PublicKey(their_public), None);
        let mut dst = vec![0u8; 2048];
        let mut resp = [0u8; RESPONSE_LEN];

        let init = network(bt.format_handshake_initiation(&mut dst, false));
        let pending = ours.open_initiation(&init).unwrap();
        hs.respond(pending, 1, now, &mut rng, &mut resp).unwrap();

        // The same bytes again, much later (so not a flood).
        let later = now + Duration::from_secs(10);
        let pending = ours.open_initiation(&init).unwrap();
        assert_eq!(
            hs.respond(pending, 2, later, &mut rng, &mut resp)
                .unwrap_err(),
            HandshakeError::TimestampReplay
        );
    }

    #[test]
    fn older_or_too_frequent_initiations_are_rejected() {
        let mut rng = TestRng::new(16);
        let now = Duration::from_secs(1000);
        let (alice, bob) = (identity(11), identity(12));
        let mut a = Handshake::new(&alice, bob.public_key(), None);
        let mut b = Handshake::new(&bob, alice.public_key(), None);
        let mut init = [0u8; INITIATION_LEN];
        let mut resp = [0u8; RESPONSE_LEN];
        let mut deliver =
            |a: &mut Handshake, b: &mut Handshake, wall_time, at, rng: &mut TestRng| {
                a.initiate(&alice, 1, wall_time, at, rng, &mut init)
                    .unwrap();
                let pending = bob.open_initiation(&init).unwrap();
                b.respond(pending, 2, at, rng, &mut resp).map(|_| ())
            };

        deliver(&mut a, &mut b, wall(100), now, &mut rng).unwrap();
        let t1 = now + Duration::from_secs(1);
        assert_eq!(
            deliver(&mut a, &mut b, wall(99), t1, &mut rng),
            Err(HandshakeError::TimestampReplay)
        );
        assert_eq!(
            deliver(&mut a, &mut b, wall(100), t1, &mut rng),
            Err(HandshakeError::TimestampReplay),
            "equal is not newer"
        );
        // Newer timestamp, but 10 ms after the last consumed initiation.
        let soon = now + Duration::from_millis(10);
        assert_eq!(
            deliver(&mut a, &mut b, wall(101), soon, &mut rng),
            Err(HandshakeError::InitiationFlood)
        );
        deliver(&mut a, &mut b, wall(101), t1, &mut rng).unwrap();
        assert_eq!(b.last_timestamp(), Tai64N::from_system_time(wall(101)));
    }

    #[test]
    fn a_flipped_bit_anywhere_in_an_initiation_is_rejected() {
        let mut rng = TestRng::new(17);
        let now = Duration::from_secs(1000);
        let ours = identity(13);
        let (their_secret, their_public) = raw_keypair(14);
        let mut bt = tunn(their_secret, ours.public_key(), None);
        let mut hs = Handshake::new(&ours, PublicKey(their_public), None);
        let mut checker = CookieChecker::new(&ours, now, &mut rng);
        let mut dst = vec![0u8; 2048];
        let mut cookie = [0u8; COOKIE_REPLY_LEN];
        let mut resp = [0u8; RESPONSE_LEN];
        let init = network(bt.format_handshake_initiation(&mut dst, false));

        // The full receive path: cookie checker, then both noise steps.
        // mac2 is checked under load only, so the mac2 bytes are checked
        // with the device under load and everything else without.
        let mut accept = |msg: &[u8], hs: &mut Handshake, rng: &mut TestRng| {
            let under_load = msg.len() >= 132 && msg[132..] != init[132..];
            match checker.check(msg, src(), under_load, now, rng, &mut cookie)? {
                Admission::SendCookieReply => return Err(HandshakeError::Mac1Invalid),
                Admission::Accept => {}
            }
            let pending = ours.open_initiation(msg)?;
            hs.respond(pending, 1, now, rng, &mut resp).map(|_| ())
        };
        for i in 0..INITIATION_LEN {
            let mut bad = init.clone();
            bad[i] ^= 1 << (i % 8);
            assert!(
                accept(&bad, &mut hs, &mut rng).is_err(),
                "flipped byte {i} accepted"
            );
        }
        // None of that disturbed the state: the genuine message still works.
        accept(&init, &mut hs, &mut rng).unwrap();
    }

    #[test]
    fn a_flipped_bit_anywhere_in_a_response_is_rejected() {
        let mut rng = TestRng::new(18);
        let now = Duration::from_secs(1000);
        let ours = identity(15);
        let (their_secret, their_public) = raw_keypair(16);
        let mut bt = tunn(their_secret, ours.public_key(), None);
        let mut hs = Handshake::new(&ours, PublicKey(their_public), None);
        let checker = CookieChecker::new(&ours, now, &mut rng);
        let mut dst = vec![0u8; 2048];
        let mut init = [0u8; INITIATION_LEN];
        hs.initiate(&ours, 5, wall(0), now, &mut rng, &mut init)
            .unwrap();
        let resp = network(bt.decapsulate(Some(src().ip()), &init, &mut dst));

        let accept = |msg: &[u8], hs: &mut Handshake| {
            checker.check_mac1(msg)?;
            hs.consume_response(&ours, msg).map(|_| ())
        };
        for i in 0..RESPONSE_LEN - 16 {
            let mut bad = resp.clone();
            bad[i] ^= 1 << (i % 8);
            assert!(accept(&bad, &mut hs).is_err(), "flipped byte {i} accepted");
        }
        accept(&resp, &mut hs).unwrap();
    }

    #[test]
    fn wrong_peer_key_yields_unknown_peer() {
        let mut rng = TestRng::new(19);
        let now = Duration::from_secs(1000);
        let ours = identity(17);
        let (their_secret, _) = raw_keypair(18);
        let (_, someone_else) = raw_keypair(19);
        let mut bt = tunn(their_secret, ours.public_key(), None);
        let mut dst = vec![0u8; 2048];
        let init = network(bt.format_handshake_initiation(&mut dst, false));

        // We know a peer, but not the one that sent this.
        let mut hs = Handshake::new(&ours, PublicKey(someone_else), None);
        let pending = ours.open_initiation(&init).unwrap();
        let mut resp = [0u8; RESPONSE_LEN];
        assert_eq!(
            hs.respond(pending, 1, now, &mut rng, &mut resp)
                .unwrap_err(),
            HandshakeError::UnknownPeer
        );

        // An initiation meant for a different responder does not even open.
        let other = identity(20);
        assert_eq!(
            other.open_initiation(&init).unwrap_err(),
            HandshakeError::DecryptionFailed
        );
    }

    #[test]
    fn responses_are_matched_to_the_initiation_in_flight() {
        let mut rng = TestRng::new(20);
        let now = Duration::from_secs(1000);
        let (alice, bob) = (identity(21), identity(22));
        let mut a = Handshake::new(&alice, bob.public_key(), None);
        let mut b = Handshake::new(&bob, alice.public_key(), None);
        let mut init = [0u8; INITIATION_LEN];
        let mut resp = [0u8; RESPONSE_LEN];

        assert_eq!(
            a.consume_response(&alice, &resp).unwrap_err(),
            HandshakeError::Malformed
        );
        a.initiate(&alice, 100, wall(0), now, &mut rng, &mut init)
            .unwrap();
        let pending = bob.open_initiation(&init).unwrap();
        b.respond(pending, 200, now, &mut rng, &mut resp).unwrap();

        let mut wrong = resp;
        wrong[8] ^= 1;
        assert_eq!(
            a.consume_response(&alice, &wrong).unwrap_err(),
            HandshakeError::WrongIndex
        );
        a.consume_response(&alice, &resp).unwrap();
        assert_eq!(
            a.consume_response(&alice, &resp).unwrap_err(),
            HandshakeError::NoHandshakeInFlight,
            "a response is consumed once"
        );
        // A response to an abandoned initiation is refused.
        a.initiate(&alice, 101, wall(1), now, &mut rng, &mut init)
            .unwrap();
        a.clear();
        assert_eq!(
            a.consume_response(&alice, &resp).unwrap_err(),
            HandshakeError::NoHandshakeInFlight
        );
    }

    #[test]
    fn low_order_peer_keys_are_refused() {
        let mut rng = TestRng::new(21);
        let now = Duration::from_secs(1000);
        let ours = identity(23);
        // The all-zero point is of low order: every DH with it is zero.
        let mut hs = Handshake::new(&ours, PublicKey([0; 32]), None);
        let mut init = [0u8; INITIATION_LEN];
        assert_eq!(
            hs.initiate(&ours, 1, wall(0), now, &mut rng, &mut init),
            Err(HandshakeError::InvalidPublicKey)
        );
        // An initiation whose ephemeral is a low-order point.
        let alice = identity(24);
        let mut a = Handshake::new(&alice, ours.public_key(), None);
        a.initiate(&alice, 1, wall(0), now, &mut rng, &mut init)
            .unwrap();
        init[8..40].fill(0);
        assert_eq!(
            ours.open_initiation(&init).unwrap_err(),
            HandshakeError::InvalidPublicKey
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = TestRng::new(22);
        let now = Duration::from_secs(1000);
        let (alice, bob) = (identity(25), identity(26));
        let mut a = Handshake::new(&alice, bob.public_key(), None);
        let mut init = [0u8; INITIATION_LEN];
        a.initiate(&alice, 1, wall(0), now, &mut rng, &mut init)
            .unwrap();
        let mut checker = CookieChecker::new(&bob, now, &mut rng);
        let mut reply = [0u8; COOKIE_REPLY_LEN];
        for len in [
            0usize, 1, 3, 4, 31, 32, 63, 64, 65, 91, 92, 93, 147, 148, 149, 300,
        ] {
            for ty in 0..=5u8 {
                let mut buf = vec![0u8; len];
                rng.fill_bytes(&mut buf);
                if len >= 4 {
                    buf[..4].copy_from_slice(&[ty, 0, 0, 0]);
                }
                assert!(bob.open_initiation(&buf).is_err());
                assert!(a.consume_response(&alice, &buf).is_err());
                assert!(a.consume_cookie_reply(&buf, now).is_err());
                let _ = checker.check(&buf, src(), true, now, &mut rng, &mut reply);
                assert!(checker.check_mac1(&buf).is_err());
            }
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let mut rng = TestRng::new(23);
        let now = Duration::from_secs(1000);
        let (alice, bob) = (identity(27), identity(28));
        let mut a = Handshake::new(
            &alice,
            bob.public_key(),
            Some(PresharedKey::from_bytes([0xab; 32])),
        );
        let mut b = Handshake::new(
            &bob,
            alice.public_key(),
            Some(PresharedKey::from_bytes([0xab; 32])),
        );
        let mut init = [0u8; INITIATION_LEN];
        let mut resp = [0u8; RESPONSE_LEN];
        a.initiate(&alice, 1, wall(0), now, &mut rng, &mut init)
            .unwrap();
        let pending = bob.open_initiation(&init).unwrap();
        let pending_dbg = format!("{pending:?}");
        let keys = b.respond(pending, 2, now, &mut rng, &mut resp).unwrap();
        let keys_dbg = format!("{keys:?}");
        assert!(!keys_dbg.contains(&format!("{:?}", keys.send_key)));
        assert!(keys_dbg.contains("<redacted>"));
        for text in [format!("{a:?}"), format!("{alice:?}"), pending_dbg] {
            assert!(!text.contains("171, 171"), "{text}");
            assert!(
                !text.contains(&PrivateKey::from_bytes(raw_keypair(27).0).to_base64()[..]),
                "{text}"
            );
        }
    }

    #[test]
    fn session_keys_zeroize_on_request() {
        let mut keys = SessionKeys {
            send_key: [1; 32],
            recv_key: [2; 32],
            local_index: 3,
            remote_index: 4,
            initiator: true,
        };
        keys.zeroize();
        assert_eq!(keys.send_key, [0; 32]);
        assert_eq!(keys.recv_key, [0; 32]);
        assert!(!keys.initiator);
    }
}
