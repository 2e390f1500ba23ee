//! mac1, mac2 and cookies: WireGuard's DoS mitigation (whitepaper sections
//! 5.3 and 5.4.4, and 5.4.7 for the cookie reply).
//!
//! Every handshake message ends in `mac1 = MAC(HASH(LABEL_MAC1 || receiver
//! static public), msg[..mac1])`, which proves the sender knows whose key it
//! is talking to, and `mac2 = MAC(cookie, msg[..mac2])`, or zeros when the
//! sender holds no cookie. A responder under load answers a message without
//! a valid mac2 with a cookie reply instead of doing any DH: the cookie is
//! `MAC(secret, source IP || source port)`, with a random secret rotated every
//! 120 s, and is sealed with XChaCha20-Poly1305 under
//! `HASH(LABEL_COOKIE || responder static public)` using the mac1 of the
//! message being answered as associated data. The sender keeps the cookie for
//! 120 s and uses it for mac2 on what it sends next.
//!
//! [`CookieState`] is the per-peer sending side (it lives inside
//! [`Handshake`](super::noise::Handshake)); [`CookieChecker`] is the
//! per-device receiving side. Time (a monotonic [`Duration`] since an epoch
//! the caller picks) and randomness are arguments.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand_core::CryptoRngCore;
use zeroize::Zeroize;

use super::crypto::{ct_eq, hash, mac, xaead_open, xaead_seal, LABEL_COOKIE, LABEL_MAC1};
use super::keys::PublicKey;
use super::messages::{classify, mac1_offset, CookieReply, MessageKind, COOKIE_REPLY_LEN, MAC_LEN};
use super::noise::{HandshakeError, StaticIdentity};

/// Length of a cookie.
pub const COOKIE_LEN: usize = 16;
/// How long the responder keeps one cookie secret, and how long a sender
/// uses a cookie it received.
pub const COOKIE_SECRET_MAX_AGE: Duration = Duration::from_secs(120);

/// Offset of the sender index in both handshake messages; a cookie reply
/// echoes it as its receiver index.
const SENDER_INDEX: core::ops::Range<usize> = 4..8;

/// Per-peer cookie state on the sending side: the mac1 key for that peer,
/// the cookie it last sent us, and the mac1 of the last handshake message we
/// sent it (the associated data its cookie reply must carry).
pub struct CookieState {
    mac1_key: [u8; 32],
    cookie_key: [u8; 32],
    cookie: [u8; COOKIE_LEN],
    cookie_received: Option<Duration>,
    last_mac1: Option<[u8; MAC_LEN]>,
}

impl CookieState {
    /// The state for talking to the peer with this static public key.
    pub fn new(remote_static: &PublicKey) -> Self {
        CookieState {
            mac1_key: hash(&[LABEL_MAC1, remote_static.as_bytes()]),
            cookie_key: hash(&[LABEL_COOKIE, remote_static.as_bytes()]),
            cookie: [0; COOKIE_LEN],
            cookie_received: None,
            last_mac1: None,
        }
    }

    /// Whether we hold a cookie younger than [`COOKIE_SECRET_MAX_AGE`], so the
    /// next message will carry a mac2.
    pub fn has_cookie(&self, now: Duration) -> bool {
        self.cookie_received
            .is_some_and(|t| now.saturating_sub(t) < COOKIE_SECRET_MAX_AGE)
    }

    /// Forgets the cookie and the last mac1.
    pub fn clear(&mut self) {
        self.cookie.zeroize();
        self.cookie_received = None;
        self.last_mac1 = None;
    }

    /// Writes mac1 and mac2 into the last 32 bytes of a handshake message we
    /// are about to send, and remembers mac1 for a cookie reply.
    pub(crate) fn write_macs(&mut self, msg: &mut [u8], now: Duration) {
        let off = mac1_offset(msg.len());
        if msg.len() < 2 * MAC_LEN {
            return;
        }
        let mac1 = mac(&self.mac1_key, &[&msg[..off]]);
        msg[off..off + MAC_LEN].copy_from_slice(&mac1);
        let mac2 = if self.has_cookie(now) {
            mac(&self.cookie, &[&msg[..off + MAC_LEN]])
        } else {
            [0; MAC_LEN]
        };
        msg[off + MAC_LEN..off + 2 * MAC_LEN].copy_from_slice(&mac2);
        self.last_mac1 = Some(mac1);
    }

    /// Accepts a cookie reply from this peer (found by the caller through the
    /// reply's receiver index). It must decrypt with the mac1 of the last
    /// message we sent as associated data; each sent message can be answered
    /// once.
    pub fn consume_reply(&mut self, msg: &[u8], now: Duration) -> Result<(), HandshakeError> {
        if classify(msg) != Some(MessageKind::CookieReply) {
            return Err(HandshakeError::Malformed);
        }
        let reply = CookieReply::new_checked(msg).map_err(|_| HandshakeError::Malformed)?;
        let Some(last_mac1) = self.last_mac1 else {
            return Err(HandshakeError::UnexpectedCookieReply);
        };
        let mut cookie = [0u8; COOKIE_LEN];
        xaead_open(
            &self.cookie_key,
            reply.nonce(),
            reply.encrypted_cookie(),
            &last_mac1,
            &mut cookie,
        )
        .map_err(|_| HandshakeError::DecryptionFailed)?;
        self.cookie = cookie;
        cookie.zeroize();
        self.cookie_received = Some(now);
        self.last_mac1 = None;
        Ok(())
    }

    /// The mac1 of the last handshake message sent, if no reply consumed it.
    pub fn last_mac1(&self) -> Option<&[u8; MAC_LEN]> {
        self.last_mac1.as_ref()
    }
}

impl Drop for CookieState {
    fn drop(&mut self) {
        self.cookie.zeroize();
    }
}

impl core::fmt::Debug for CookieState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CookieState")
            .field("cookie", &"<redacted>")
            .field("cookie_received", &self.cookie_received)
            .field("mac1_sent", &self.last_mac1.is_some())
            .finish()
    }
}

/// What to do with a handshake message whose mac1 is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Process it: not under load, or under load with a valid mac2. Under
    /// load the caller should still apply the per-source rate limit.
    Accept,
    /// Under load without a valid mac2: do not process it; send the cookie
    /// reply written into the caller's buffer to the message's source.
    SendCookieReply,
}

/// Per-device check of incoming handshake messages: mac1 always, mac2 under
/// load, and the cookie replies that go with it.
pub struct CookieChecker {
    mac1_key: [u8; 32],
    cookie_key: [u8; 32],
    secret: [u8; 32],
    secret_born: Duration,
}

impl CookieChecker {
    /// A checker for messages addressed to `identity`, with a fresh secret.
    pub fn new(identity: &StaticIdentity, now: Duration, rng: &mut impl CryptoRngCore) -> Self {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        CookieChecker {
            mac1_key: *identity.mac1_key(),
            cookie_key: *identity.cookie_key(),
            secret,
            secret_born: now,
        }
    }

    /// Checks only mac1 of a handshake message (initiation or response).
    pub fn check_mac1(&self, msg: &[u8]) -> Result<(), HandshakeError> {
        match classify(msg) {
            Some(MessageKind::Initiation | MessageKind::Response) => {}
            _ => return Err(HandshakeError::Malformed),
        }
        let off = mac1_offset(msg.len());
        let expected = mac(&self.mac1_key, &[&msg[..off]]);
        if ct_eq(&expected, &msg[off..off + MAC_LEN]) {
            Ok(())
        } else {
            Err(HandshakeError::Mac1Invalid)
        }
    }

    /// Checks a handshake message from `source`. A bad mac1 is an error
    /// (drop silently). Under load, a message without a valid mac2 yields
    /// [`Admission::SendCookieReply`] with the reply written into `reply`.
    pub fn check(
        &mut self,
        msg: &[u8],
        source: SocketAddr,
        under_load: bool,
        now: Duration,
        rng: &mut impl CryptoRngCore,
        reply: &mut [u8; COOKIE_REPLY_LEN],
    ) -> Result<Admission, HandshakeError> {
        self.check_mac1(msg)?;
        if !under_load {
            return Ok(Admission::Accept);
        }
        let off = mac1_offset(msg.len());
        let mut cookie = self.cookie_for(source, now, rng);
        let expected = mac(&cookie, &[&msg[..off + MAC_LEN]]);
        if ct_eq(&expected, &msg[off + MAC_LEN..off + 2 * MAC_LEN]) {
            cookie.zeroize();
            return Ok(Admission::Accept);
        }

        let mut out = CookieReply::new_unchecked(&mut reply[..]);
        out.set_message_type();
        let mut sender = [0u8; 4];
        sender.copy_from_slice(&msg[SENDER_INDEX]);
        out.set_receiver_index(u32::from_le_bytes(sender));
        rng.fill_bytes(out.nonce_mut());
        let nonce = *out.nonce();
        let sealed = xaead_seal(
            &self.cookie_key,
            &nonce,
            &cookie,
            &msg[off..off + MAC_LEN],
            out.encrypted_cookie_mut(),
        );
        cookie.zeroize();
        sealed.map_err(|_| HandshakeError::Malformed)?;
        Ok(Admission::SendCookieReply)
    }

    /// `MAC(secret, IP || port)`, rotating the secret when it is older than
    /// [`COOKIE_SECRET_MAX_AGE`]. The port is big-endian, as the kernel does;
    /// only this device ever recomputes it.
    fn cookie_for(
        &mut self,
        source: SocketAddr,
        now: Duration,
        rng: &mut impl CryptoRngCore,
    ) -> [u8; COOKIE_LEN] {
        if now.saturating_sub(self.secret_born) >= COOKIE_SECRET_MAX_AGE {
            rng.fill_bytes(&mut self.secret);
            self.secret_born = now;
        }
        let port = source.port().to_be_bytes();
        match source.ip() {
            IpAddr::V4(ip) => mac(&self.secret, &[&ip.octets(), &port]),
            IpAddr::V6(ip) => mac(&self.secret, &[&ip.octets(), &port]),
        }
    }
}

impl Drop for CookieChecker {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl core::fmt::Debug for CookieChecker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CookieChecker")
            .field("secret", &"<redacted>")
            .field("secret_born", &self.secret_born)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wg::messages::{INITIATION_LEN, RESPONSE_LEN};
    use crate::wg::noise::test_support::*;
    use crate::wg::noise::Handshake;
    use boringtun::noise::rate_limiter::RateLimiter;
    use boringtun::noise::{Tunn, TunnResult};
    use std::sync::Arc;

    fn source() -> SocketAddr {
        "192.0.2.7:51820".parse().unwrap()
    }

    #[test]
    fn mac1_is_checked_and_mac2_ignored_when_not_under_load() {
        let mut rng = TestRng::new(1);
        let now = Duration::from_secs(1000);
        let (alice, bob) = (identity(1), identity(2));
        let mut hs = Handshake::new(&alice, bob.public_key(), None);
        let mut msg = [0u8; INITIATION_LEN];
        hs.initiate(&alice, 1, wall(0), now, &mut rng, &mut msg)
            .unwrap();
        let mut checker = CookieChecker::new(&bob, now, &mut rng);
        let mut reply = [0u8; COOKIE_REPLY_LEN];

        assert_eq!(
            checker.check(&msg, source(), false, now, &mut rng, &mut reply),
            Ok(Admission::Accept)
        );
        // mac1 is bound to the receiver's key.
        let carol = CookieChecker::new(&identity(3), now, &mut rng);
        assert_eq!(carol.check_mac1(&msg), Err(HandshakeError::Mac1Invalid));
        let mut bad = msg;
        bad[116] ^= 1;
        assert_eq!(checker.check_mac1(&bad), Err(HandshakeError::Mac1Invalid));
        // mac2 is only looked at under load.
        let mut bad = msg;
        bad[140] ^= 1;
        assert_eq!(
            checker.check(&bad, source(), false, now, &mut rng, &mut reply),
            Ok(Admission::Accept)
        );
        assert_eq!(
            checker.check_mac1(&msg[..100]),
            Err(HandshakeError::Malformed)
        );
    }

    #[test]
    fn under_load_a_cookie_round_trip_makes_mac2_valid() {
        let mut rng = TestRng::new(2);
        let now = Duration::from_secs(1000);
        let (alice, bob) = (identity(1), identity(2));
        let mut hs = Handshake::new(&alice, bob.public_key(), None);
        let mut checker = CookieChecker::new(&bob, now, &mut rng);
        let mut reply = [0u8; COOKIE_REPLY_LEN];
        let mut msg = [0u8; INITIATION_LEN];

        hs.initiate(&alice, 0x0a0b, wall(0), now, &mut rng, &mut msg)
            .unwrap();
        assert_eq!(&msg[132..], &[0u8; 16], "no cookie yet, mac2 is zero");
        assert_eq!(
            checker.check(&msg, source(), true, now, &mut rng, &mut reply),
            Ok(Admission::SendCookieReply)
        );
        assert_eq!(classify(&reply), Some(MessageKind::CookieReply));
        assert_eq!(
            CookieReply::new_checked(&reply[..])
                .unwrap()
                .receiver_index(),
            0x0a0b
        );

        // A tampered reply is refused and does not consume the mac1.
        let mut bad = reply;
        bad[40] ^= 1;
        assert_eq!(
            hs.consume_cookie_reply(&bad, now),
            Err(HandshakeError::DecryptionFailed)
        );
        hs.consume_cookie_reply(&reply, now).unwrap();
        assert!(hs.cookie().has_cookie(now));
        // Each sent message is answered at most once.
        assert_eq!(
            hs.consume_cookie_reply(&reply, now),
            Err(HandshakeError::UnexpectedCookieReply)
        );

        let later = now + Duration::from_secs(1);
        hs.initiate(&alice, 0x0a0c, wall(1), later, &mut rng, &mut msg)
            .unwrap();
        assert_ne!(&msg[132..], &[0u8; 16]);
        assert_eq!(
            checker.check(&msg, source(), true, later, &mut rng, &mut reply),
            Ok(Admission::Accept)
        );
        // The cookie is bound to the source address and port.
        let other: SocketAddr = "192.0.2.7:51821".parse().unwrap();
        assert_eq!(
            checker.check(&msg, other, true, later, &mut rng, &mut reply),
            Ok(Admission::SendCookieReply)
        );
    }

    #[test]
    fn cookies_expire_after_120_seconds_on_both_sides() {
        let mut rng = TestRng::new(3);
        let now = Duration::from_secs(1000);
        let (alice, bob) = (identity(1), identity(2));
        let mut hs = Handshake::new(&alice, bob.public_key(), None);
        let mut checker = CookieChecker::new(&bob, now, &mut rng);
        let mut reply = [0u8; COOKIE_REPLY_LEN];
        let mut msg = [0u8; INITIATION_LEN];
        hs.initiate(&alice, 1, wall(0), now, &mut rng, &mut msg)
            .unwrap();
        checker
            .check(&msg, source(), true, now, &mut rng, &mut reply)
            .unwrap();
        hs.consume_cookie_reply(&reply, now).unwrap();

        assert!(hs.cookie().has_cookie(now + Duration::from_secs(119)));
        assert!(!hs.cookie().has_cookie(now + Duration::from_secs(120)));
        let t = now + Duration::from_secs(121);
        hs.initiate(&alice, 2, wall(121), t, &mut rng, &mut msg)
            .unwrap();
        assert_eq!(&msg[132..], &[0u8; 16], "expired cookie, no mac2");

        // The responder rotated its secret, so an old cookie stops working
        // even if the sender still used it.
        let mut hs2 = Handshake::new(&alice, bob.public_key(), None);
        hs2.initiate(&alice, 3, wall(0), now, &mut rng, &mut msg)
            .unwrap();
        checker
            .check(&msg, source(), true, now, &mut rng, &mut reply)
            .unwrap();
        hs2.consume_cookie_reply(&reply, now).unwrap();
        let t = now + Duration::from_secs(100);
        hs2.initiate(&alice, 4, wall(100), t, &mut rng, &mut msg)
            .unwrap();
        let rotated = now + Duration::from_secs(130);
        assert_eq!(
            checker.check(&msg, source(), true, rotated, &mut rng, &mut reply),
            Ok(Admission::SendCookieReply)
        );
    }

    #[test]
    fn cookie_state_macs_match_a_direct_computation() {
        let bob = identity(2);
        let mut state = CookieState::new(&bob.public_key());
        let now = Duration::from_secs(1000);
        let mut msg = [0x33u8; RESPONSE_LEN];
        state.write_macs(&mut msg, now);
        let key = hash(&[b"mac1----", bob.public_key().as_bytes()]);
        assert_eq!(msg[60..76], mac(&key, &[&[0x33u8; 60][..]]));
        assert_eq!(&msg[76..], &[0u8; 16]);
        assert_eq!(state.last_mac1(), Some(&mac(&key, &[&[0x33u8; 60][..]])));
    }

    /// boringtun initiates; our device is under load. It answers with a
    /// cookie reply that boringtun accepts, and boringtun's next initiation
    /// carries a mac2 our checker accepts.
    #[test]
    fn boringtun_accepts_our_cookie_reply_and_then_sends_a_valid_mac2() {
        let mut rng = TestRng::new(4);
        let now = Duration::from_secs(1000);
        let ours = identity(10);
        let (their_secret, their_public) = raw_keypair(11);
        let mut tunn = Tunn::new(
            boringtun::x25519::StaticSecret::from(their_secret),
            boringtun::x25519::PublicKey::from(ours.public_key().0),
            None,
            None,
            5,
            None,
        );
        let mut checker = CookieChecker::new(&ours, now, &mut rng);
        let mut dst = vec![0u8; 2048];
        let mut reply = [0u8; COOKIE_REPLY_LEN];

        let init = match tunn.format_handshake_initiation(&mut dst, false) {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            other => panic!("expected an initiation, got {other:?}"),
        };
        assert_eq!(
            checker.check(&init, source(), true, now, &mut rng, &mut reply),
            Ok(Admission::SendCookieReply)
        );

        // A corrupted reply is refused by boringtun, so the next assertion
        // can fail.
        let mut bad = reply;
        bad[50] ^= 1;
        assert!(matches!(
            tunn.decapsulate(Some(source().ip()), &bad, &mut dst),
            TunnResult::Err(_)
        ));
        assert!(matches!(
            tunn.decapsulate(Some(source().ip()), &reply, &mut dst),
            TunnResult::Done
        ));

        let init2 = match tunn.format_handshake_initiation(&mut dst, true) {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            other => panic!("expected an initiation, got {other:?}"),
        };
        assert_ne!(&init2[132..], &[0u8; 16]);
        assert_eq!(
            checker.check(&init2, source(), true, now, &mut rng, &mut reply),
            Ok(Admission::Accept)
        );
        // And the handshake completes from there.
        let pending = ours.open_initiation(&init2).unwrap();
        assert_eq!(pending.remote_static(), &PublicKey(their_public));
        let mut hs = Handshake::new(&ours, PublicKey(their_public), None);
        let mut resp = [0u8; RESPONSE_LEN];
        hs.respond(pending, 77, now, &mut rng, &mut resp).unwrap();
        assert!(matches!(
            tunn.decapsulate(Some(source().ip()), &resp, &mut dst),
            TunnResult::WriteToNetwork(_)
        ));
    }

    /// boringtun responds under load (its rate limiter with a limit of 0):
    /// our initiation gets a cookie reply, our CookieState accepts it, and
    /// our next initiation passes boringtun's mac2 check.
    #[test]
    fn we_accept_boringtuns_cookie_reply_and_pass_its_mac2_check() {
        let mut rng = TestRng::new(5);
        let now = Duration::from_secs(1000);
        let ours = identity(20);
        let (their_secret, their_public) = raw_keypair(21);
        let their_public_x = boringtun::x25519::PublicKey::from(their_public);
        let limiter = Arc::new(RateLimiter::new(&their_public_x, 0));
        let mut tunn = Tunn::new(
            boringtun::x25519::StaticSecret::from(their_secret),
            boringtun::x25519::PublicKey::from(ours.public_key().0),
            None,
            None,
            9,
            Some(limiter),
        );
        let mut hs = Handshake::new(&ours, PublicKey(their_public), None);
        let mut dst = vec![0u8; 2048];
        let mut msg = [0u8; INITIATION_LEN];

        hs.initiate(&ours, 0x100, wall(0), now, &mut rng, &mut msg)
            .unwrap();
        let reply = match tunn.decapsulate(Some(source().ip()), &msg, &mut dst) {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            other => panic!("expected a cookie reply, got {other:?}"),
        };
        assert_eq!(classify(&reply), Some(MessageKind::CookieReply));
        hs.consume_cookie_reply(&reply, now).unwrap();

        let t = now + Duration::from_secs(1);
        hs.initiate(&ours, 0x101, wall(1), t, &mut rng, &mut msg)
            .unwrap();
        let resp = match tunn.decapsulate(Some(source().ip()), &msg, &mut dst) {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            other => panic!("expected a response, got {other:?}"),
        };
        assert_eq!(classify(&resp), Some(MessageKind::Response));
        let keys = hs.consume_response(&ours, &resp).unwrap();
        assert_eq!(keys.local_index, 0x101);
    }
}
