//! RDP's first message: a TPKT header (RFC 1006 §6) carrying an X.224
//! Connection Request or Confirm (ITU-T X.224 §13.3/§13.4), as
//! MS-RDPBCGR §2.2.1.1 and §2.2.1.2 lay out, usually with a
//! `Cookie: mstshash=` or an RDP_NEG_REQ. The checks follow nDPI's.

use super::{be16, Found};
use crate::dpi::types::Protocol;

pub fn connection(buf: &[u8]) -> Option<Found<'static>> {
    let [3, 0, _, _, li, code, 0, 0, ..] = buf else {
        return None;
    };
    let len = usize::from(be16(buf, 2)?);
    let ok = len == buf.len()
        && len >= 11
        && usize::from(*li) == len - 5
        && (*code == 0xe0 || *code == 0xd0);
    ok.then_some(Found::proto(Protocol::Rdp))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mstsc's Connection Request with a cookie and RDP_NEG_REQ.
    fn request() -> Vec<u8> {
        let mut x = vec![0xe0, 0, 0, 0, 0, 0];
        x.extend_from_slice(b"Cookie: mstshash=alice\r\n");
        x.extend_from_slice(&[1, 0, 8, 0, 3, 0, 0, 0]);
        let mut p = vec![3, 0];
        p.extend_from_slice(&((x.len() + 5) as u16).to_be_bytes());
        p.push(x.len() as u8);
        p.extend_from_slice(&x);
        p
    }

    #[test]
    fn connection_request_is_rdp() {
        assert!(connection(&request()).is_some());
    }

    #[test]
    fn truncated_or_inconsistent_is_not_rdp() {
        let p = request();
        for n in 0..p.len() {
            assert!(connection(&p[..n]).is_none(), "prefix {n}");
        }
        let mut bad = p.clone();
        bad[4] = 0;
        assert!(connection(&bad).is_none());
        let mut bad = p;
        bad[5] = 0xf0;
        assert!(connection(&bad).is_none());
    }
}
