//! Redis: a client command in RESP (Redis serialization protocol spec):
//! an array of bulk strings, `*<n>\r\n$<len>\r\n<command>\r\n...`, whose
//! first element is an alphabetic command name.

use super::{parse_dec, Found};
use crate::dpi::types::Protocol;

pub fn command(buf: &[u8]) -> Option<Found<'static>> {
    let rest = buf.strip_prefix(b"*")?;
    let (n, rest) = parse_dec(rest, 6)?;
    let rest = rest.strip_prefix(b"\r\n$")?;
    let (len, rest) = parse_dec(rest, 9)?;
    let rest = rest.strip_prefix(b"\r\n")?;
    let len = usize::try_from(len).ok()?;
    let name = rest.get(..len)?;
    let ok = n >= 1
        && (1..=32).contains(&len)
        && name
            .iter()
            .all(|b| b.is_ascii_alphabetic() || *b == b'_' || *b == b'|')
        && rest.get(len..len + 2) == Some(b"\r\n");
    ok.then_some(Found::proto(Protocol::Redis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_commands_are_redis() {
        assert!(command(b"*1\r\n$4\r\nPING\r\n").is_some());
        assert!(command(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n").is_some());
        assert!(command(b"*2\r\n$7\r\nCOMMAND\r\n$4\r\nDOCS\r\n").is_some());
    }

    #[test]
    fn others_are_not() {
        let c = b"*1\r\n$4\r\nPING\r\n";
        for n in 0..c.len() {
            assert!(command(&c[..n]).is_none());
        }
        assert!(command(b"*1\r\n$4\r\nP1NG\r\n").is_none());
        assert!(command(b"*1\r\n$999999999\r\nPING\r\n").is_none());
        assert!(command(b"+OK\r\n").is_none());
    }
}
