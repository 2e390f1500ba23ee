//! rsync daemon protocol: both sides open with the greeting
//! `@RSYNCD: <version>[.<sub>]\n` (rsync's clientserver.c, exchange of
//! protocol versions).

use super::{parse_dec, Found};
use crate::dpi::types::Protocol;

pub fn greeting(buf: &[u8]) -> Option<Found<'static>> {
    let rest = buf.strip_prefix(b"@RSYNCD: ")?;
    let (_, after) = parse_dec(rest, 3)?;
    matches!(after.first(), Some(b'.' | b'\n' | b' ')).then_some(Found::proto(Protocol::Rsync))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_greeting_is_rsync() {
        assert!(greeting(b"@RSYNCD: 31.0 sha512 sha256 sha1 md5 md4\n").is_some());
        assert!(greeting(b"@RSYNCD: 30\n").is_some());
    }

    #[test]
    fn others_are_not() {
        let g = b"@RSYNCD: 31.0\n";
        for n in 0..10 {
            assert!(greeting(&g[..n]).is_none());
        }
        assert!(greeting(b"@RSYNCD: x\n").is_none());
    }
}
