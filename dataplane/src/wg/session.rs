//! Transport keypairs as the data path uses them (WireGuard whitepaper 5.4.6):
//! a sending half with its 64-bit nonce counter and a receiving half with its
//! replay window, each holding a ring ChaCha20-Poly1305 key.
//!
//! Each half is owned by the one worker that owns the peer, so the counter
//! and the window are plain fields: no atomics, no locks.

use crate::wg::replay::{ReplayWindow, REJECT_AFTER_MESSAGES};
use ring::aead::{LessSafeKey, UnboundKey, CHACHA20_POLY1305};

/// The sending half of a keypair.
///
/// `repr(C)` with the counters first: ring's ChaCha20-Poly1305 key keeps
/// its 32 key bytes at the start of its 544-byte `LessSafeKey` (the rest is
/// room for an AES-GCM key schedule), so the fields a send reads and
/// writes share the first cache line with the key. The data path keeps
/// its own copy of this layout (`SendHot` in `datapath.rs`).
#[repr(C)]
pub struct SendSession {
    pub(crate) next_counter: u64,
    /// When the keypair was derived (the caller's clock).
    pub created_at: u64,
    pub(crate) key: LessSafeKey,
    /// The peer's index for this keypair: goes into every transport header.
    pub remote_index: u32,
}

impl SendSession {
    pub fn new(key: &[u8; 32], remote_index: u32, created_at: u64) -> SendSession {
        SendSession {
            next_counter: 0,
            created_at,
            key: chacha_key(key),
            remote_index,
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
///
/// `repr(C)`, ordered for the cache like [`SendSession`]: the index and
/// creation time sit in the key's first line, and the replay window's
/// newest counter right after the key, in the line that holds the end of
/// ring's `LessSafeKey` (its algorithm reference), which every open reads.
#[repr(C)]
pub struct RecvSession {
    /// Our index for this keypair: the receiver index of messages to us.
    pub local_index: u32,
    pub created_at: u64,
    pub(crate) key: LessSafeKey,
    pub(crate) replay: ReplayWindow,
}

impl RecvSession {
    pub fn new(key: &[u8; 32], local_index: u32, created_at: u64) -> RecvSession {
        RecvSession {
            local_index,
            created_at,
            key: chacha_key(key),
            replay: ReplayWindow::new(),
        }
    }
}

/// A ring ChaCha20-Poly1305 key.
pub(crate) fn chacha_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, key)
            .expect("a 32-byte key is valid for ChaCha20-Poly1305"),
    )
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
