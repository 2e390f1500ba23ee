//! Transport data messages, encrypted and decrypted in place in the packet
//! buffer (WireGuard whitepaper 5.4.6).
//!
//! ```text
//! encap:  [ IP packet ]  →  [ 16-byte header | ciphertext | padding | 16-byte tag ]
//!          ^data                ^prepended into headroom       ^appended into tailroom
//! ```
//!
//! The header is type 4 (little-endian u32), the receiver's index and the
//! 64-bit counter; the nonce is 32 zero bits then the counter, little-endian;
//! the plaintext is padded with zeros to a multiple of 16 bytes. Nothing is
//! copied and nothing is allocated: the AEAD runs over the buffer itself.

use crate::buf::{BufError, PacketBuf};
use crate::wg::messages;
use crate::wg::replay::REJECT_AFTER_MESSAGES;
use crate::wg::session::{RecvSession, SendSession};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag};

/// Message type of transport data.
pub const MESSAGE_TRANSPORT: u8 = messages::MSG_TRANSPORT;
/// Type, receiver index, counter.
pub const HEADER_LEN: usize = messages::TRANSPORT_HEADER_LEN;
/// Poly1305 tag.
pub const TAG_LEN: usize = messages::TRANSPORT_TAG_LEN;
/// Plaintext is padded to a multiple of this.
pub const PADDING_MULTIPLE: usize = 16;
/// Headroom and tailroom encapsulation needs beyond the packet itself.
pub const HEADROOM_NEEDED: usize = HEADER_LEN;
pub const TAILROOM_NEEDED: usize = PADDING_MULTIPLE - 1 + TAG_LEN;

/// Why a packet could not be encapsulated. The buffer is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncapError {
    /// The keypair has sent REJECT_AFTER_MESSAGES messages: rekey first.
    CounterExhausted,
    /// Not enough headroom or tailroom.
    NoRoom(BufError),
}

/// Why a transport message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecapError {
    /// Shorter than a header and a tag, or not a transport message.
    Malformed,
    /// Its receiver index is not this session's.
    WrongIndex,
    /// The counter was seen before or is behind the replay window.
    Replay,
    /// Authentication failed: forged, corrupted or the wrong key.
    Auth,
    /// The decrypted packet is neither IPv4 nor IPv6, or its length field
    /// exceeds what was decrypted.
    BadInnerPacket,
}

/// What a valid transport message carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decapsulated {
    /// An IP packet, now the buffer's data (padding removed).
    Packet,
    /// An empty message: a keepalive (the buffer is now empty).
    Keepalive,
}

/// The receiver index of a transport message, for finding its session
/// (None when the bytes are not a transport message).
#[inline]
pub fn receiver_index(message: &[u8]) -> Option<u32> {
    if message.len() < HEADER_LEN + TAG_LEN || message[..4] != [MESSAGE_TRANSPORT, 0, 0, 0] {
        return None;
    }
    Some(u32::from_le_bytes([
        message[4], message[5], message[6], message[7],
    ]))
}

#[inline(always)]
fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Turns the IP packet that is the buffer's data into a transport message
/// for `session`, in place. Returns the counter used.
#[inline]
pub fn encapsulate<B: PacketBuf>(
    buf: &mut B,
    session: &mut SendSession,
) -> Result<u64, EncapError> {
    seal(
        buf,
        &session.key,
        session.remote_index,
        &mut session.next_counter,
    )
}

/// [`encapsulate`] with the sending half's parts passed separately, for a
/// data path that keeps them in its own layout: `next_counter` is the
/// counter to use, and is advanced when the packet is sealed.
#[inline]
pub(crate) fn seal<B: PacketBuf>(
    buf: &mut B,
    key: &LessSafeKey,
    remote_index: u32,
    next_counter: &mut u64,
) -> Result<u64, EncapError> {
    if *next_counter >= REJECT_AFTER_MESSAGES {
        return Err(EncapError::CounterExhausted);
    }
    let len = buf.len();
    let padded = len.div_ceil(PADDING_MULTIPLE) * PADDING_MULTIPLE;
    if buf.headroom() < HEADER_LEN {
        return Err(EncapError::NoRoom(BufError::NoHeadroom {
            wanted: HEADER_LEN,
            available: buf.headroom(),
        }));
    }
    let tail = buf
        .append(padded - len + TAG_LEN)
        .map_err(EncapError::NoRoom)?;
    tail.fill(0);
    let counter = *next_counter;
    let data = buf.data_mut();
    let (plain, tag_space) = data.split_at_mut(padded);
    let tag: Tag = key
        .seal_in_place_separate_tag(nonce(counter), Aad::empty(), plain)
        .expect("ChaCha20-Poly1305 seals any length below 256 GiB");
    tag_space.copy_from_slice(tag.as_ref());
    *next_counter += 1;

    let header = buf.prepend(HEADER_LEN).expect("headroom checked above");
    header[..4].copy_from_slice(&[MESSAGE_TRANSPORT, 0, 0, 0]);
    header[4..8].copy_from_slice(&remote_index.to_le_bytes());
    header[8..16].copy_from_slice(&counter.to_le_bytes());
    Ok(counter)
}

/// Checks and decrypts the transport message that is the buffer's data,
/// in place; on success the data is the inner IP packet (or empty for a
/// keepalive). On failure the buffer's contents are unspecified but its
/// bounds are those of the message; drop it.
#[inline]
pub fn decapsulate<B: PacketBuf>(
    buf: &mut B,
    session: &mut RecvSession,
) -> Result<Decapsulated, DecapError> {
    let data = buf.data_mut();
    let index = receiver_index(data).ok_or(DecapError::Malformed)?;
    if index != session.local_index {
        return Err(DecapError::WrongIndex);
    }
    let counter = u64::from_le_bytes(
        data[8..16]
            .try_into()
            .expect("length checked by receiver_index"),
    );
    if !session.replay.check(counter) {
        return Err(DecapError::Replay);
    }
    let plain_len = session
        .key
        .open_in_place(nonce(counter), Aad::empty(), &mut data[HEADER_LEN..])
        .map_err(|_| DecapError::Auth)?
        .len();
    // Only an authenticated counter moves the window (whitepaper 5.4.6).
    if !session.replay.update(counter) {
        return Err(DecapError::Replay);
    }
    let inner_len = if plain_len == 0 {
        0
    } else {
        inner_packet_len(&data[HEADER_LEN..HEADER_LEN + plain_len])
            .ok_or(DecapError::BadInnerPacket)?
    };
    let total = buf.len();
    buf.adj(HEADER_LEN)
        .expect("message is longer than its header");
    buf.trim(total - HEADER_LEN - inner_len)
        .expect("inner packet fits in the message");
    Ok(if inner_len == 0 {
        Decapsulated::Keepalive
    } else {
        Decapsulated::Packet
    })
}

/// The length an IP packet's own header claims, if it fits in `plain`.
#[inline]
fn inner_packet_len(plain: &[u8]) -> Option<usize> {
    let len = match plain.first()? >> 4 {
        4 if plain.len() >= 20 => usize::from(u16::from_be_bytes([plain[2], plain[3]])),
        6 if plain.len() >= 40 => 40 + usize::from(u16::from_be_bytes([plain[4], plain[5]])),
        _ => return None,
    };
    (len <= plain.len() && len >= 20).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::HeapBuf;

    const KEY_A: [u8; 32] = [7; 32];
    const KEY_B: [u8; 32] = [9; 32];

    fn ipv4_packet(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        for (i, b) in p[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }

    fn pair() -> (SendSession, RecvSession) {
        (
            SendSession::new(&KEY_A, 0x1122_3344, 0),
            RecvSession::new(&KEY_A, 0x1122_3344, 0),
        )
    }

    #[test]
    fn encap_then_decap_restores_the_packet_for_every_size() {
        let (mut tx, mut rx) = pair();
        for len in [20, 21, 31, 32, 33, 64, 100, 1420, 1500] {
            let original = ipv4_packet(len);
            let mut buf = HeapBuf::from_slice(&original, 64, 64);
            let counter = encapsulate(&mut buf, &mut tx).unwrap();
            let padded = len.div_ceil(16) * 16;
            assert_eq!(buf.len(), HEADER_LEN + padded + TAG_LEN);
            assert_eq!(&buf.data()[..4], &[4, 0, 0, 0]);
            assert_eq!(buf.data()[4..8], 0x1122_3344u32.to_le_bytes());
            assert_eq!(buf.data()[8..16], counter.to_le_bytes());
            assert_ne!(
                &buf.data()[HEADER_LEN..HEADER_LEN + len],
                &original[..],
                "encrypted"
            );
            assert_eq!(decapsulate(&mut buf, &mut rx), Ok(Decapsulated::Packet));
            assert_eq!(buf.data(), &original[..]);
        }
        assert_eq!(tx.next_counter(), 9);
    }

    #[test]
    fn the_encryption_matches_an_independent_chacha20_poly1305() {
        // The same message sealed by the chacha20poly1305 crate.
        use chacha20poly1305::aead::{AeadInPlace, KeyInit};
        let (mut tx, _) = pair();
        tx.next_counter = 0x0102_0304_0506;
        let original = ipv4_packet(50);
        let mut buf = HeapBuf::from_slice(&original, 64, 64);
        encapsulate(&mut buf, &mut tx).unwrap();
        let mut expected = original.clone();
        expected.resize(64, 0);
        let cipher = chacha20poly1305::ChaCha20Poly1305::new(&KEY_A.into());
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&0x0102_0304_0506u64.to_le_bytes());
        let tag = cipher
            .encrypt_in_place_detached(&nonce.into(), &[], &mut expected)
            .unwrap();
        expected.extend_from_slice(&tag);
        assert_eq!(&buf.data()[HEADER_LEN..], &expected[..]);
    }

    #[test]
    fn a_replayed_message_is_rejected() {
        let (mut tx, mut rx) = pair();
        let mut buf = HeapBuf::from_slice(&ipv4_packet(60), 64, 64);
        encapsulate(&mut buf, &mut tx).unwrap();
        let copy = buf.clone();
        assert_eq!(decapsulate(&mut buf, &mut rx), Ok(Decapsulated::Packet));
        let mut again = copy;
        assert_eq!(decapsulate(&mut again, &mut rx), Err(DecapError::Replay));
    }

    #[test]
    fn any_flipped_bit_fails_authentication_and_does_not_move_the_window() {
        let (mut tx, mut rx) = pair();
        let mut buf = HeapBuf::from_slice(&ipv4_packet(40), 64, 64);
        encapsulate(&mut buf, &mut tx).unwrap();
        for i in HEADER_LEN..buf.len() {
            let mut bad = buf.clone();
            bad.data_mut()[i] ^= 0x10;
            assert_eq!(
                decapsulate(&mut bad, &mut rx),
                Err(DecapError::Auth),
                "byte {i}"
            );
        }
        // The genuine message is still accepted afterwards.
        assert_eq!(decapsulate(&mut buf, &mut rx), Ok(Decapsulated::Packet));
    }

    #[test]
    fn the_wrong_key_or_index_is_rejected() {
        let (mut tx, _) = pair();
        let mut other = RecvSession::new(&KEY_B, 0x1122_3344, 0);
        let mut buf = HeapBuf::from_slice(&ipv4_packet(40), 64, 64);
        encapsulate(&mut buf, &mut tx).unwrap();
        assert_eq!(
            decapsulate(&mut buf.clone(), &mut other),
            Err(DecapError::Auth)
        );
        let mut wrong_index = RecvSession::new(&KEY_A, 5, 0);
        assert_eq!(
            decapsulate(&mut buf, &mut wrong_index),
            Err(DecapError::WrongIndex)
        );
    }

    #[test]
    fn keepalives_round_trip_as_empty_messages() {
        let (mut tx, mut rx) = pair();
        let mut buf = HeapBuf::new(128, 64);
        // A keepalive is an empty packet encapsulated.
        encapsulate(&mut buf, &mut tx).unwrap();
        assert_eq!(buf.len(), HEADER_LEN + TAG_LEN);
        assert_eq!(decapsulate(&mut buf, &mut rx), Ok(Decapsulated::Keepalive));
        assert!(buf.is_empty());
    }

    #[test]
    fn out_of_room_leaves_the_buffer_unchanged() {
        let (mut tx, _) = pair();
        let original = ipv4_packet(40);
        let mut no_head = HeapBuf::from_slice(&original, 8, 64);
        assert!(matches!(
            encapsulate(&mut no_head, &mut tx),
            Err(EncapError::NoRoom(_))
        ));
        assert_eq!(no_head.data(), &original[..]);
        let mut no_tail = HeapBuf::from_slice(&original, 64, 10);
        assert!(matches!(
            encapsulate(&mut no_tail, &mut tx),
            Err(EncapError::NoRoom(_))
        ));
        assert_eq!(no_tail.data(), &original[..]);
        assert_eq!(
            tx.next_counter(),
            0,
            "no counter is spent on a refused packet"
        );
    }

    #[test]
    fn an_exhausted_keypair_refuses_to_send() {
        let (mut tx, _) = pair();
        tx.next_counter = REJECT_AFTER_MESSAGES_FOR_TEST;
        let mut buf = HeapBuf::from_slice(&ipv4_packet(40), 64, 64);
        assert_eq!(
            encapsulate(&mut buf, &mut tx),
            Err(EncapError::CounterExhausted)
        );
    }

    const REJECT_AFTER_MESSAGES_FOR_TEST: u64 = crate::wg::replay::REJECT_AFTER_MESSAGES;

    #[test]
    fn garbage_never_panics_and_is_rejected() {
        let (_, mut rx) = pair();
        let mut seed = 0x2545_f491u32;
        for _ in 0..5000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let len = (seed % 100) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|i| (seed >> (i % 24)) as u8).collect();
            if len >= 8 {
                bytes[..8].copy_from_slice(&[4, 0, 0, 0, 0x44, 0x33, 0x22, 0x11]);
            }
            let mut buf = HeapBuf::from_slice(&bytes, 0, 0);
            assert!(decapsulate(&mut buf, &mut rx).is_err());
        }
    }

    #[test]
    fn receiver_index_reads_only_transport_messages() {
        let mut m = vec![0u8; 32];
        m[0] = 4;
        m[4..8].copy_from_slice(&77u32.to_le_bytes());
        assert_eq!(receiver_index(&m), Some(77));
        m[0] = 1;
        assert_eq!(receiver_index(&m), None);
        assert_eq!(receiver_index(&[4, 0, 0, 0]), None);
    }
}
