//! RTP and RTCP headers (RFC 3550 §5.1, §6.4), told apart by payload type
//! as RFC 5761 §4 does. Without SIP the engine needs two packets of one
//! stream (same SSRC, sequence numbers a small step apart) before
//! deciding RTP; RTCP's length fields are checked over the whole compound
//! packet, which is specific enough to decide at once.

use super::{be16, be32};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rtp { ssrc: u32, seq: u16 },
    Rtcp,
}

pub fn classify(buf: &[u8]) -> Option<Kind> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    if b0 >> 6 != 2 {
        return None;
    }
    if (200..=207).contains(&b1) {
        return rtcp(buf).then_some(Kind::Rtcp);
    }
    let pt = b1 & 0x7f;
    // Static types 0-34 and dynamic 96-127; 72-76 would collide with RTCP.
    if !(pt <= 34 || pt >= 96) {
        return None;
    }
    let cc = usize::from(b0 & 0x0f);
    let mut hdr = 12 + 4 * cc;
    if buf.len() < hdr {
        return None;
    }
    if b0 & 0x10 != 0 {
        let words = usize::from(be16(buf, hdr + 2)?);
        hdr += 4 + 4 * words;
    }
    if b0 & 0x20 != 0 {
        let pad = usize::from(*buf.last()?);
        if pad == 0 || hdr + pad > buf.len() {
            return None;
        }
    }
    if hdr > buf.len() {
        return None;
    }
    Some(Kind::Rtp {
        ssrc: be32(buf, 8)?,
        seq: be16(buf, 2)?,
    })
}

/// A compound RTCP packet whose length fields cover the datagram (an
/// SRTCP trailer of up to 20 bytes may follow).
fn rtcp(buf: &[u8]) -> bool {
    let mut pos = 0usize;
    let mut count = 0;
    while pos + 4 <= buf.len() {
        let (Some(b0), Some(b1), Some(len)) = (buf.get(pos), buf.get(pos + 1), be16(buf, pos + 2))
        else {
            return false;
        };
        if b0 >> 6 != 2 || !(192..=210).contains(b1) {
            break;
        }
        let next = pos + 4 * (usize::from(len) + 1);
        if next > buf.len() {
            return false;
        }
        pos = next;
        count += 1;
    }
    // Anything left is an SRTCP trailer (index and tag), after SR or RR.
    let sr_or_rr = matches!(buf.get(1), Some(200 | 201));
    count > 0 && (pos == buf.len() || (sr_or_rr && buf.len() - pos <= 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, pt: u8) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x10, 0]);
        p.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        p.extend_from_slice(&[0xd5; 160]);
        p
    }

    #[test]
    fn pcmu_packet_is_rtp() {
        assert_eq!(
            classify(&rtp(7, 0)),
            Some(Kind::Rtp {
                ssrc: 0xdead_beef,
                seq: 7
            })
        );
        assert!(classify(&rtp(7, 111)).is_some());
        assert!(classify(&rtp(7, 0x80 | 8)).is_some());
    }

    #[test]
    fn unassigned_payload_types_are_not_rtp() {
        assert_eq!(classify(&rtp(7, 50)), None);
        assert_eq!(classify(&rtp(7, 73)), None);
    }

    #[test]
    fn receiver_report_is_rtcp() {
        // RR with one report block (length 7) and an SDES (length 1).
        let mut p = vec![0x81, 201, 0, 7];
        p.extend_from_slice(&[0; 28]);
        p.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 1]);
        assert_eq!(classify(&p), Some(Kind::Rtcp));
        assert_eq!(classify(&p[..20]), None);
    }

    #[test]
    fn truncated_and_hostile_headers_are_refused() {
        let p = rtp(1, 0);
        for n in 0..12 {
            assert_eq!(classify(&p[..n]), None);
        }
        // 15 CSRCs in a 20-byte packet.
        let mut bad = p[..20].to_vec();
        bad[0] = 0x8f;
        assert_eq!(classify(&bad), None);
        // An extension header longer than the packet.
        let mut bad = p[..16].to_vec();
        bad[0] = 0x90;
        bad[14] = 0xff;
        assert_eq!(classify(&bad), None);
        // Padding longer than the packet.
        let mut bad = p.clone();
        bad[0] = 0xa0;
        *bad.last_mut().unwrap() = 0xff;
        assert_eq!(classify(&bad), None);
    }
}
