//! SMB over TCP: the NetBIOS session service header (RFC 1002 §4.3.1,
//! a zero type byte and a length) followed by an SMB1 (`\xffSMB`,
//! MS-CIFS §2.2.3.1), SMB2/3 (`\xfeSMB`, MS-SMB2 §2.2.1) or SMB3
//! transform (`\xfdSMB`, MS-SMB2 §2.2.41) header.

use super::Found;
use crate::dpi::types::Protocol;

pub fn message(buf: &[u8]) -> Option<Found<'static>> {
    let [0, l0, l1, l2, magic, b'S', b'M', b'B', ..] = buf else {
        return None;
    };
    let len = usize::from(*l0) << 16 | usize::from(*l1) << 8 | usize::from(*l2);
    let ok = matches!(magic, 0xfd..=0xff) && len >= 32 && len + 4 >= buf.len();
    ok.then_some(Found::proto(Protocol::Smb))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiate(magic: u8) -> Vec<u8> {
        let mut m = vec![0, 0, 0, 68, magic, b'S', b'M', b'B'];
        m.extend_from_slice(&[0; 64]);
        m
    }

    #[test]
    fn smb1_and_smb2_negotiates_are_smb() {
        assert!(message(&negotiate(0xff)).is_some());
        assert!(message(&negotiate(0xfe)).is_some());
    }

    #[test]
    fn truncated_or_wrong_headers_are_not() {
        let m = negotiate(0xfe);
        for n in 0..8 {
            assert!(message(&m[..n]).is_none());
        }
        assert!(message(&negotiate(0x01)).is_none());
        let mut short = m.clone();
        short[3] = 2;
        assert!(message(&short).is_none());
    }
}
