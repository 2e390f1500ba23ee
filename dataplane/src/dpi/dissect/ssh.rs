//! SSH: the identification string each side sends first (RFC 4253 §4.2),
//! `SSH-protoversion-softwareversion`. nDPI decides on it too.

use super::Found;
use crate::dpi::types::Protocol;

pub fn banner(buf: &[u8]) -> Option<Found<'static>> {
    let rest = buf.strip_prefix(b"SSH-")?;
    let ok = [&b"2.0-"[..], b"1.99-", b"1.5-"]
        .iter()
        .any(|v| rest.starts_with(v));
    let printable = buf
        .iter()
        .take_while(|&&b| b != b'\r' && b != b'\n')
        .all(|b| (0x20..0x7f).contains(b));
    (ok && printable && buf.len() > 8).then_some(Found::proto(Protocol::Ssh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssh_banner_is_ssh() {
        assert!(banner(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n").is_some());
        assert!(banner(b"SSH-1.99-Cisco-1.25\r\n").is_some());
    }

    #[test]
    fn other_text_is_not_ssh() {
        assert!(banner(b"SSH-3.0-x\r\n").is_none());
        assert!(banner(b"SSH-2.0-\x01\x02bin\r\n").is_none());
        for n in 0..8 {
            assert!(banner(&b"SSH-2.0-OpenSSH"[..n]).is_none());
        }
    }
}
