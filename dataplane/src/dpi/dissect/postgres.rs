//! PostgreSQL's first client message (PostgreSQL docs, "Frontend/Backend
//! Protocol", §55.7 Message Formats): StartupMessage (protocol 3.0),
//! SSLRequest (80877103), GSSENCRequest (80877104) or CancelRequest
//! (80877102), each a 4-byte length equal to the message's size followed
//! by the code.

use super::{be32, Found};
use crate::dpi::types::Protocol;

pub fn client_first(buf: &[u8]) -> Option<Found<'static>> {
    let len = be32(buf, 0)? as usize;
    let code = be32(buf, 4)?;
    let ok = match code {
        80_877_103 | 80_877_104 => len == 8 && buf.len() == 8,
        80_877_102 => len == 16 && buf.len() == 16,
        0x0003_0000 => len == buf.len() && len > 8 && len < 10_000 && buf.last() == Some(&0),
        _ => false,
    };
    ok.then_some(Found::proto(Protocol::PostgreSql))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_request_and_startup_are_postgres() {
        assert!(client_first(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).is_some());
        assert!(client_first(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]).is_some());
        let mut s = vec![0, 0, 0, 0, 0, 3, 0, 0];
        s.extend_from_slice(b"user\0alice\0database\0db\0\0");
        let n = s.len() as u32;
        s[..4].copy_from_slice(&n.to_be_bytes());
        assert!(client_first(&s).is_some());
        for k in 0..s.len() {
            assert!(client_first(&s[..k]).is_none(), "prefix {k}");
        }
    }

    #[test]
    fn wrong_lengths_are_not() {
        assert!(client_first(&[0, 0, 0, 9, 0x04, 0xd2, 0x16, 0x2f]).is_none());
        assert!(client_first(&[0xff, 0xff, 0xff, 0xff, 0, 3, 0, 0, 0]).is_none());
    }
}
