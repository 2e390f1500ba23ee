//! STUN messages (RFC 5389 §6: type, length, magic cookie, transaction
//! id; §15 attributes) and TURN ChannelData (RFC 8656 §12.4). Classic
//! RFC 3489 messages have no magic cookie and count only on the STUN
//! ports, as do ChannelData frames.

use super::{be16, be32, Found};
use crate::dpi::types::Protocol;

pub const MAGIC: u32 = 0x2112_a442;

/// `buf` is one STUN message (UDP datagram or TCP frame start);
/// `stun_port` when either port is 3478/3479/5349.
pub fn message(buf: &[u8], stun_port: bool) -> Option<Found<'static>> {
    let ty = be16(buf, 0)?;
    let len = usize::from(be16(buf, 2)?);
    if ty & 0xc000 != 0 {
        return channel_data(buf, stun_port);
    }
    if len % 4 != 0 || buf.len() < 20 + len {
        return None;
    }
    let cookie = be32(buf, 4)?;
    if cookie != MAGIC {
        // RFC 3489: only Binding and Shared Secret requests/responses.
        let classic = matches!(ty, 0x0001 | 0x0101 | 0x0111 | 0x0002 | 0x0102 | 0x0112);
        if !(stun_port && classic && buf.len() == 20 + len) {
            return None;
        }
    }
    // Method and class: the method must be one of the assigned ones.
    let method = (ty & 0x000f) | ((ty & 0x00e0) >> 1) | ((ty & 0x3e00) >> 2);
    if !matches!(method, 0x001..=0x00c) {
        return None;
    }
    // Attributes must tile the body exactly.
    let body = buf.get(20..20 + len)?;
    let mut pos = 0usize;
    while pos < body.len() {
        let alen = usize::from(be16(body, pos + 2)?);
        pos += 4 + alen.div_ceil(4) * 4;
    }
    (pos == body.len()).then_some(Found::proto(Protocol::Stun))
}

fn channel_data(buf: &[u8], stun_port: bool) -> Option<Found<'static>> {
    let ch = be16(buf, 0)?;
    let len = usize::from(be16(buf, 2)?);
    let fits = buf.len() == 4 + len || buf.len() == 4 + len.div_ceil(4) * 4;
    (stun_port && (0x4000..=0x4fff).contains(&ch) && fits).then_some(Found::proto(Protocol::Stun))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Binding request with SOFTWARE and FINGERPRINT attributes.
    fn binding() -> Vec<u8> {
        let mut m = vec![0x00, 0x01, 0x00, 0x14];
        m.extend_from_slice(&MAGIC.to_be_bytes());
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&[
            0x80, 0x22, 0x00, 0x05, b'p', b'j', b'n', b'a', b't', 0, 0, 0,
        ]);
        m.extend_from_slice(&[0x80, 0x28, 0x00, 0x04, 1, 2, 3, 4]);
        m
    }

    #[test]
    fn binding_request_is_stun() {
        assert!(message(&binding(), false).is_some());
    }

    #[test]
    fn classic_stun_needs_the_port() {
        let mut m = vec![0x00, 0x01, 0x00, 0x00];
        m.extend_from_slice(&[9; 16]);
        assert!(message(&m, false).is_none());
        assert!(message(&m, true).is_some());
    }

    #[test]
    fn channel_data_needs_the_port() {
        let m = [0x40, 0x00, 0x00, 0x03, 1, 2, 3, 0];
        assert!(message(&m, true).is_some());
        assert!(message(&m, false).is_none());
    }

    #[test]
    fn truncated_and_inconsistent_messages_are_refused() {
        let m = binding();
        for n in 0..m.len() {
            assert!(message(&m[..n], true).is_none(), "prefix {n}");
        }
        let mut bad = m.clone();
        bad[3] = 0x13;
        assert!(message(&bad, true).is_none());
        let mut bad = m;
        bad[22] = 0xff;
        assert!(message(&bad, true).is_none());
    }
}
