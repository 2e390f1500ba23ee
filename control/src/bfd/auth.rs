//! Keyed SHA1 and meticulous keyed SHA1 authentication (RFC 5880 §6.7,
//! §6.7.4): the per-session key, signing and verifying a packet, and the
//! sequence-number window that stops replays.
//!
//! The hash covers the whole packet with the key (zero-padded to 20 bytes)
//! in place of the hash field. Keyed SHA1 accepts a sequence number in
//! `[last, last + 3 × Detect Mult]`; meticulous keyed SHA1 requires it to
//! advance, `[last + 1, last + 3 × Detect Mult]`, both in 32-bit circular
//! space. Note that FRR's bfdd (8.4) drops every packet with the A bit, so
//! sessions towards FRR must run without authentication.

use super::packet::{AuthType, AUTH_DIGEST_RANGE, SHA1_DIGEST_LEN};
use core::fmt;
use ring::digest;
use zeroize::Zeroize;

/// The longest key keyed SHA1 carries (RFC 5880 §4.4).
pub const MAX_KEY_LEN: usize = SHA1_DIGEST_LEN;

/// Why an [`AuthConfig`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthConfigError {
    /// RFC 5880 §4.4: 1 to 20 bytes.
    KeyLength(usize),
}

impl fmt::Display for AuthConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthConfigError::KeyLength(n) => {
                write!(f, "BFD SHA1 key must be 1 to 20 bytes, got {n}")
            }
        }
    }
}

/// A session's authentication key. The secret is wiped on drop and never
/// printed.
#[derive(Clone)]
pub struct AuthConfig {
    key_id: u8,
    meticulous: bool,
    /// Zero-padded as the hash input wants it.
    padded_key: [u8; MAX_KEY_LEN],
}

impl AuthConfig {
    pub fn new(key_id: u8, secret: &[u8], meticulous: bool) -> Result<AuthConfig, AuthConfigError> {
        if secret.is_empty() || secret.len() > MAX_KEY_LEN {
            return Err(AuthConfigError::KeyLength(secret.len()));
        }
        let mut padded_key = [0u8; MAX_KEY_LEN];
        padded_key[..secret.len()].copy_from_slice(secret);
        Ok(AuthConfig {
            key_id,
            meticulous,
            padded_key,
        })
    }

    pub fn key_id(&self) -> u8 {
        self.key_id
    }

    pub fn meticulous(&self) -> bool {
        self.meticulous
    }

    pub fn auth_type(&self) -> AuthType {
        if self.meticulous {
            AuthType::MeticulousKeyedSha1
        } else {
            AuthType::KeyedSha1
        }
    }

    /// Writes the hash of `packet` (exactly the Length field's bytes, with
    /// the SHA1 section already emitted) into its hash field.
    pub fn sign(&self, packet: &mut [u8]) {
        if packet.len() < AUTH_DIGEST_RANGE.end {
            return;
        }
        let d = self.digest_of(packet);
        packet[AUTH_DIGEST_RANGE].copy_from_slice(&d);
    }

    /// Whether the hash field of `packet` (the Length field's bytes) is the
    /// hash of the packet under this key. Compares in constant time.
    pub fn verify(&self, packet: &[u8]) -> bool {
        if packet.len() < AUTH_DIGEST_RANGE.end {
            return false;
        }
        let d = self.digest_of(packet);
        let got = &packet[AUTH_DIGEST_RANGE];
        let diff = d.iter().zip(got).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        diff == 0
    }

    fn digest_of(&self, packet: &[u8]) -> [u8; SHA1_DIGEST_LEN] {
        let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(&packet[..AUTH_DIGEST_RANGE.start]);
        ctx.update(&self.padded_key);
        ctx.update(&packet[AUTH_DIGEST_RANGE.end..]);
        let mut out = [0u8; SHA1_DIGEST_LEN];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

impl Drop for AuthConfig {
    fn drop(&mut self) {
        self.padded_key.zeroize();
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("key_id", &self.key_id)
            .field("meticulous", &self.meticulous)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Whether `seq` is acceptable after `last` (RFC 5880 §6.7.4), with the
/// window sized by the received Detect Mult.
pub fn sequence_in_window(last: u32, seq: u32, detect_mult: u8, meticulous: bool) -> bool {
    let ahead = seq.wrapping_sub(last);
    let window = 3 * u32::from(detect_mult);
    if meticulous {
        (1..=window).contains(&ahead)
    } else {
        ahead <= window
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bfd::packet::{AuthRepr, Diag, Repr, State, MAX_PACKET_LEN};

    fn signed_packet(cfg: &AuthConfig, seq: u32) -> ([u8; MAX_PACKET_LEN], usize) {
        let repr = Repr {
            diag: Diag::None,
            state: State::Up,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 1,
            your_discriminator: 2,
            desired_min_tx: 50_000,
            required_min_rx: 50_000,
            required_min_echo_rx: 0,
            auth: Some(AuthRepr {
                auth_type: cfg.auth_type(),
                key_id: cfg.key_id(),
                sequence: seq,
                digest: [0; 20],
            }),
        };
        let mut buf = [0u8; MAX_PACKET_LEN];
        let n = repr.emit(&mut buf).unwrap();
        cfg.sign(&mut buf[..n]);
        (buf, n)
    }

    #[test]
    fn signed_packet_verifies_under_same_key_only() {
        let a = AuthConfig::new(1, b"secret", false).unwrap();
        let b = AuthConfig::new(1, b"secreT", false).unwrap();
        let (buf, n) = signed_packet(&a, 10);
        assert!(a.verify(&buf[..n]));
        assert!(!b.verify(&buf[..n]));
    }

    #[test]
    fn any_flipped_bit_breaks_the_hash() {
        let a = AuthConfig::new(9, &[0xab; 20], true).unwrap();
        let (buf, n) = signed_packet(&a, 77);
        for i in 0..n {
            let mut m = buf;
            m[i] ^= 0x01;
            assert!(!a.verify(&m[..n]), "byte {i}");
        }
    }

    #[test]
    fn hash_matches_rfc_construction() {
        // SHA1 over the packet with the zero-padded key in the hash field.
        let a = AuthConfig::new(1, b"k", false).unwrap();
        let (buf, n) = signed_packet(&a, 5);
        let mut input = buf;
        input[32..52].fill(0);
        input[32] = b'k';
        let d = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &input[..n]);
        assert_eq!(&buf[32..52], d.as_ref());
    }

    #[test]
    fn key_length_is_checked() {
        assert_eq!(
            AuthConfig::new(1, b"", false).unwrap_err(),
            AuthConfigError::KeyLength(0)
        );
        assert!(AuthConfig::new(1, &[1; 21], false).is_err());
        assert!(AuthConfig::new(1, &[1; 20], false).is_ok());
    }

    #[test]
    fn debug_redacts_the_secret() {
        let a = AuthConfig::new(3, b"hunter2", true).unwrap();
        let s = format!("{a:?}");
        assert!(s.contains("<redacted>"));
        assert!(!s.contains("hunter2"));
        assert!(!s.contains("104")); // 'h' as a byte
    }

    #[test]
    fn keyed_window_accepts_equal_and_up_to_three_mult_ahead() {
        assert!(sequence_in_window(100, 100, 3, false));
        assert!(sequence_in_window(100, 109, 3, false));
        assert!(!sequence_in_window(100, 110, 3, false));
        assert!(!sequence_in_window(100, 99, 3, false));
    }

    #[test]
    fn meticulous_window_requires_strict_increase() {
        assert!(!sequence_in_window(100, 100, 3, true));
        assert!(sequence_in_window(100, 101, 3, true));
        assert!(sequence_in_window(100, 109, 3, true));
        assert!(!sequence_in_window(100, 110, 3, true));
    }

    #[test]
    fn window_wraps_around_u32() {
        assert!(sequence_in_window(u32::MAX, 0, 3, true));
        assert!(sequence_in_window(u32::MAX - 1, 5, 3, true));
        assert!(!sequence_in_window(5, u32::MAX, 3, false));
    }
}
