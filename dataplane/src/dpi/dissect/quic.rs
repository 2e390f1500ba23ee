//! QUIC client Initial packets: long header (RFC 9000 §17.2.2), Initial
//! key derivation and packet protection (RFC 9001 §5.2-§5.4, and RFC 9369
//! §3.3-§3.3.2 for version 2's salt, labels and packet type bits), then the
//! CRYPTO frames (RFC 9000 §19.6) that carry the TLS ClientHello.
//!
//! Decryption works in a caller-owned scratch buffer; the frames' data is
//! handed to a callback with its CRYPTO offset, so the engine can place
//! it (possibly out of order, over several packets) in a reassembly slot.

use super::Reader;
use ring::aead::{self, quic::HeaderProtectionKey, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;

pub const V1: u32 = 0x0000_0001;
pub const V2: u32 = 0x6b33_43cf;

const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];

/// The client's long header, up to the (protected) packet number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialHeader<'a> {
    pub version: u32,
    pub dcid: &'a [u8],
    /// Offset of the packet number in the datagram.
    pub pn_offset: usize,
    /// Offset just past this packet (its Length field's end).
    pub end: usize,
}

/// Parses the long header of an Initial packet at the start of `buf`:
/// `None` for anything else (short headers, other long types, versions
/// other than 1 and 2).
pub fn initial_header(buf: &[u8]) -> Option<InitialHeader<'_>> {
    let mut r = Reader::new(buf);
    let b0 = r.u8()?;
    if b0 & 0xc0 != 0xc0 {
        return None;
    }
    let version = r.u32()?;
    let ty = (b0 >> 4) & 3;
    let is_initial = match version {
        V1 => ty == 0,
        V2 => ty == 1,
        _ => false,
    };
    if !is_initial {
        return None;
    }
    let dcid = r.vec8()?;
    let scid = r.vec8()?;
    if dcid.len() > 20 || scid.len() > 20 {
        return None;
    }
    let token_len = usize::try_from(r.varint()?).ok()?;
    r.skip(token_len)?;
    let len = usize::try_from(r.varint()?).ok()?;
    let pn_offset = r.pos();
    let end = pn_offset.checked_add(len)?;
    if end > buf.len() || len < 20 {
        return None;
    }
    Some(InitialHeader {
        version,
        dcid,
        pn_offset,
        end,
    })
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) -> Option<()> {
    let len = u16::try_from(out.len()).ok()?.to_be_bytes();
    let label_len = [u8::try_from(6 + label.len()).ok()?];
    let info: [&[u8]; 5] = [&len, &label_len, b"tls13 ", label, &[0]];
    prk.expand(&info, Len(out.len())).ok()?.fill(out).ok()
}

/// The client's Initial keys for a version and original DCID.
#[derive(Clone)]
pub struct InitialKeys {
    pub key: [u8; 16],
    pub iv: [u8; 12],
    pub hp: [u8; 16],
}

pub fn client_initial_keys(version: u32, dcid: &[u8]) -> Option<InitialKeys> {
    let (salt, labels): (&[u8], [&[u8]; 3]) = match version {
        V1 => (&SALT_V1, [b"quic key", b"quic iv", b"quic hp"]),
        V2 => (&SALT_V2, [b"quicv2 key", b"quicv2 iv", b"quicv2 hp"]),
        _ => return None,
    };
    let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(dcid);
    let mut client = [0u8; 32];
    expand_label(&initial, b"client in", &mut client)?;
    let client = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &client);
    let mut keys = InitialKeys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&client, labels[0], &mut keys.key)?;
    expand_label(&client, labels[1], &mut keys.iv)?;
    expand_label(&client, labels[2], &mut keys.hp)?;
    Some(keys)
}

/// Removes header protection and decrypts the Initial packet `pkt` (one
/// packet: `buf[..hdr.end]`) into `scratch`. Returns the plaintext frames.
pub fn decrypt<'s>(
    buf: &[u8],
    hdr: &InitialHeader<'_>,
    keys: &InitialKeys,
    scratch: &'s mut [u8],
) -> Option<&'s [u8]> {
    let pkt = buf.get(..hdr.end)?;
    let sample = pkt.get(hdr.pn_offset + 4..hdr.pn_offset + 20)?;
    let hp = HeaderProtectionKey::new(&aead::quic::AES_128, &keys.hp).ok()?;
    let mask = hp.new_mask(sample).ok()?;
    let out = scratch.get_mut(..pkt.len())?;
    out.copy_from_slice(pkt);
    let b0 = out.first_mut()?;
    *b0 ^= mask[0] & 0x0f;
    let pn_len = usize::from(*b0 & 3) + 1;
    let mut pn = 0u64;
    for i in 0..pn_len {
        let b = out.get_mut(hdr.pn_offset + i)?;
        *b ^= *mask.get(1 + i)?;
        pn = (pn << 8) | u64::from(*b);
    }
    let header_len = hdr.pn_offset + pn_len;
    if out.len() < header_len + aead::AES_128_GCM.tag_len() {
        return None;
    }
    let (header, payload) = out.split_at_mut(header_len);
    let mut nonce = keys.iv;
    for (n, p) in nonce.iter_mut().rev().zip(pn.to_be_bytes().iter().rev()) {
        *n ^= p;
    }
    let key = LessSafeKey::new(UnboundKey::new(&aead::AES_128_GCM, &keys.key).ok()?);
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&*header),
            payload,
        )
        .ok()?;
    Some(&*plain)
}

/// Walks the frames of a decrypted Initial payload, calling `crypto` with
/// each CRYPTO frame's offset and data. Only the frame types allowed in
/// Initial packets (RFC 9000 §12.4) are accepted; `None` on any other or
/// on a malformed frame (frames before it were still delivered).
pub fn crypto_frames<'a>(frames: &'a [u8], mut crypto: impl FnMut(u64, &'a [u8])) -> Option<()> {
    let mut r = Reader::new(frames);
    while r.remaining() > 0 {
        match r.varint()? {
            0x00 | 0x01 => {}
            ty @ (0x02 | 0x03) => {
                let _largest = r.varint()?;
                let _delay = r.varint()?;
                let ranges = r.varint()?;
                let _first = r.varint()?;
                if ranges > 256 {
                    return None;
                }
                for _ in 0..ranges {
                    r.varint()?;
                    r.varint()?;
                }
                if ty == 0x03 {
                    for _ in 0..3 {
                        r.varint()?;
                    }
                }
            }
            0x06 => {
                let off = r.varint()?;
                let len = usize::try_from(r.varint()?).ok()?;
                let data = r.bytes(len)?;
                crypto(off, data);
            }
            0x1c => {
                r.varint()?;
                r.varint()?;
                let n = usize::try_from(r.varint()?).ok()?;
                r.skip(n)?;
            }
            _ => return None,
        }
    }
    Some(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dpi::dissect::testutil::{every_prefix, hex};

    pub fn rfc9001_packet() -> Vec<u8> {
        hex(include_str!("testdata/rfc9001_a2_client_initial.hex"))
    }

    pub fn rfc9369_packet() -> Vec<u8> {
        hex(include_str!("testdata/rfc9369_a2_client_initial.hex"))
    }

    const DCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

    #[test]
    fn v1_keys_match_rfc9001_a1() {
        let k = client_initial_keys(V1, &DCID).unwrap();
        assert_eq!(k.key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(k.iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(k.hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
    }

    #[test]
    fn v1_header_protection_mask_matches_rfc9001_a2() {
        let k = client_initial_keys(V1, &DCID).unwrap();
        let hp = HeaderProtectionKey::new(&aead::quic::AES_128, &k.hp).unwrap();
        let mask = hp
            .new_mask(&hex("d1b1c98dd7689fb8ec11d242b123dc9b"))
            .unwrap();
        assert_eq!(mask.to_vec(), hex("437b9aec36"));
    }

    fn decrypt_crypto(pkt: &[u8]) -> Vec<u8> {
        let hdr = initial_header(pkt).unwrap();
        assert_eq!(hdr.dcid, DCID);
        let keys = client_initial_keys(hdr.version, hdr.dcid).unwrap();
        let mut scratch = vec![0u8; 2048];
        let frames = decrypt(pkt, &hdr, &keys, &mut scratch).unwrap();
        let mut out = Vec::new();
        crypto_frames(frames, |off, data| {
            assert_eq!(off, 0);
            out.extend_from_slice(data);
        })
        .unwrap();
        out
    }

    #[test]
    fn rfc9001_client_initial_decrypts_to_its_client_hello() {
        let ch = decrypt_crypto(&rfc9001_packet());
        assert_eq!(ch.len(), 0xf1);
        assert_eq!(&ch[..4], &[1, 0, 0, 0xed]);
        let hello = super::super::tls::parse_client_hello(&ch[4..], false).unwrap();
        assert!(hello.complete);
        assert_eq!(hello.sni, Some(&b"example.com"[..]));
        assert_eq!(hello.alpn, Some(&b"alpn"[..]));
    }

    #[test]
    fn rfc9369_client_initial_decrypts_to_its_client_hello() {
        let pkt = rfc9369_packet();
        assert_eq!(initial_header(&pkt).unwrap().version, V2);
        let ch = decrypt_crypto(&pkt);
        let hello = super::super::tls::parse_client_hello(&ch[4..], false).unwrap();
        assert_eq!(hello.sni, Some(&b"example.com"[..]));
    }

    #[test]
    fn v2_packet_type_bits_differ_from_v1() {
        // A v1 Initial's type bits (00) read as Retry in v2, and v2's
        // Initial bits (01) read as 0-RTT in v1: neither is an Initial.
        let mut pkt = rfc9001_packet();
        pkt[1..5].copy_from_slice(&V2.to_be_bytes());
        assert_eq!(initial_header(&pkt), None);
        let mut pkt = rfc9369_packet();
        pkt[1..5].copy_from_slice(&V1.to_be_bytes());
        assert_eq!(initial_header(&pkt), None);
    }

    #[test]
    fn tampered_packets_fail_to_open() {
        let mut pkt = rfc9001_packet();
        pkt[100] ^= 1;
        let hdr = initial_header(&pkt).unwrap();
        let keys = client_initial_keys(V1, hdr.dcid).unwrap();
        let mut scratch = vec![0u8; 2048];
        assert!(decrypt(&pkt, &hdr, &keys, &mut scratch).is_none());
        // A scratch buffer too small is a refusal, not a panic.
        let mut small = vec![0u8; 100];
        assert!(decrypt(&rfc9001_packet(), &hdr, &keys, &mut small).is_none());
    }

    #[test]
    fn truncated_and_mangled_packets_do_not_panic() {
        let pkt = rfc9001_packet();
        let mut scratch = vec![0u8; 2048];
        for n in 0..pkt.len() {
            assert!(initial_header(&pkt[..n]).is_none(), "prefix {n}");
        }
        every_prefix(&pkt[..80], |b| {
            if let Some(h) = initial_header(b) {
                if let Some(k) = client_initial_keys(h.version, h.dcid) {
                    let _ = decrypt(b, &h, &k, &mut scratch);
                }
            }
            let _ = crypto_frames(b, |_, _| {});
        });
    }

    #[test]
    fn crypto_frames_skip_padding_ping_and_ack() {
        // PING, PADDING, ACK(largest 5, delay 0, 1 range, first 0, gap 0,
        // len 1), CRYPTO(off 4, len 2), PADDING.
        let frames = [1, 0, 0, 2, 5, 0, 1, 0, 0, 1, 6, 4, 2, 0xaa, 0xbb, 0, 0];
        let mut got = Vec::new();
        crypto_frames(&frames, |off, d| got.push((off, d.to_vec()))).unwrap();
        assert_eq!(got, vec![(4, vec![0xaa, 0xbb])]);
        // STREAM frames are not allowed in Initial packets.
        assert!(crypto_frames(&[0x08, 0, 0], |_, _| {}).is_none());
        // A CRYPTO frame longer than the packet.
        assert!(crypto_frames(&[6, 0, 0x40, 0xff, 1], |_, _| {}).is_none());
        // Huge ACK range counts are refused without looping.
        assert!(crypto_frames(&[2, 0, 0, 0xbf, 0xff, 0xff, 0xff, 0], |_, _| {}).is_none());
    }
}
