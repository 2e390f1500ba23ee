//! Transport keypairs as the data path uses them (WireGuard whitepaper 5.4.6):
//! a sending half with its 64-bit nonce counter and a receiving half with its
//! replay window, each holding a ring ChaCha20-Poly1305 key.
//!
//! Each half is owned by the one worker that owns the peer, so the counter
//! and the window are plain fields: no atomics, no locks.

use crate::wg::replay::{ReplayWindow, REJECT_AFTER_MESSAGES};
use ring::aead::{LessSafeKey, UnboundKey, CHACHA20_POLY1305};

/// The sending half of a keypair.
pub struct SendSession {
    pub(crate) key: LessSafeKey,
    /// The peer's index for this keypair: goes into every transport header.
    pub remote_index: u32,
    pub(crate) next_counter: u64,
    /// When the keypair was derived (the caller's clock).
    pub created_at: u64,
}

impl SendSession {
    pub fn new(key: &[u8; 32], remote_index: u32, created_at: u64) -> SendSession {
        SendSession {
            key: LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, key)
                    .expect("a 32-byte key is valid for ChaCha20-Poly1305"),
            ),
            remote_index,
            next_counter: 0,
            created_at,
        }
    }

    /// The counter the next message will carry (= messages sent so far).
    pub fn next_counter(&self) -> u64 {
        self.next_counter
    }

    /// Whether this keypair may still send (whitepaper 6.1: never past
    /// REJECT_AFTER_MESSAGES).
    pub fn exhausted(&self) -> bool {
        self.next_counter >= REJECT_AFTER_MESSAGES
    }
}

/// The receiving half of a keypair.
pub struct RecvSession {
    pub(crate) key: LessSafeKey,
    /// Our index for this keypair: the receiver index of messages to us.
    pub local_index: u32,
    pub(crate) replay: ReplayWindow,
    pub created_at: u64,
}

impl RecvSession {
    pub fn new(key: &[u8; 32], local_index: u32, created_at: u64) -> RecvSession {
        RecvSession {
            key: LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, key)
                    .expect("a 32-byte key is valid for ChaCha20-Poly1305"),
            ),
            local_index,
            replay: ReplayWindow::new(),
            created_at,
        }
    }
}

impl core::fmt::Debug for SendSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SendSession")
            .field("key", &"<redacted>")
            .field("remote_index", &self.remote_index)
            .field("next_counter", &self.next_counter)
            .finish()
    }
}

impl core::fmt::Debug for RecvSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecvSession")
            .field("key", &"<redacted>")
            .field("local_index", &self.local_index)
            .finish()
    }
}
