//! NTP (RFC 5905 §7.3 packet header; modes 6 and 7 are the control and
//! private messages of RFC 1305 App. B / ntpd). Like nDPI, NTP is only
//! recognised on port 123, where the first byte's version must be 1-4.

use super::Found;
use crate::dpi::types::Protocol;

pub const PORT: u16 = 123;

pub fn packet(buf: &[u8]) -> Option<Found<'static>> {
    let b0 = *buf.first()?;
    let version = (b0 >> 3) & 7;
    let mode = b0 & 7;
    let ok = (1..=4).contains(&version)
        && match mode {
            1..=5 => buf.len() >= 48,
            6 | 7 => buf.len() >= 8,
            _ => false,
        };
    ok.then_some(Found::proto(Protocol::Ntp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_request_is_ntp() {
        let mut p = [0u8; 48];
        p[0] = 0x23; // v4, client
        assert!(packet(&p).is_some());
        p[0] = 0x24; // v4, server
        assert!(packet(&p).is_some());
    }

    #[test]
    fn short_or_odd_packets_are_not_ntp() {
        let mut p = [0u8; 48];
        p[0] = 0x23;
        for n in 0..48 {
            assert!(packet(&p[..n]).is_none());
        }
        p[0] = 0x3b; // version 7
        assert!(packet(&p).is_none());
        p[0] = 0x20; // mode 0
        assert!(packet(&p).is_none());
    }
}
