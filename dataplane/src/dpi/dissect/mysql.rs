//! MySQL and MariaDB: the server's Initial Handshake packet (protocol 10,
//! MySQL client/server protocol docs, "Protocol::HandshakeV10"): a 3-byte
//! length and sequence id 0, then the version string, thread id, the first
//! 8 bytes of the auth data and a zero filler. MariaDB's "5.5.5-10.x"
//! version prefix passes the same checks, as it does in nDPI.

use super::Found;
use crate::dpi::types::Protocol;

pub fn server_greeting(buf: &[u8]) -> Option<Found<'static>> {
    let [l0, l1, l2, 0, 10, v0, ..] = buf else {
        return None;
    };
    let len = usize::from(*l0) | usize::from(*l1) << 8 | usize::from(*l2) << 16;
    if len + 4 != buf.len() || len < 34 || !v0.is_ascii_digit() {
        return None;
    }
    let rest = buf.get(5..)?;
    let nul = rest.iter().take(64).position(|&b| b == 0)?;
    let version = rest.get(..nul)?;
    if !version.iter().all(|b| b.is_ascii_graphic()) || !version.contains(&b'.') {
        return None;
    }
    // thread id (4), auth-plugin-data-part-1 (8), filler (1) == 0.
    let filler = *rest.get(nul + 1 + 4 + 8)?;
    (filler == 0).then_some(Found::proto(Protocol::MySql))
}

/// A MariaDB server greeting, for the engine's tests.
#[cfg(test)]
pub fn tests_greeting() -> Vec<u8> {
    tests::greeting("5.5.5-10.11.6-MariaDB")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn greeting(version: &str) -> Vec<u8> {
        let mut p = vec![10];
        p.extend_from_slice(version.as_bytes());
        p.push(0);
        p.extend_from_slice(&[8, 0, 0, 0]);
        p.extend_from_slice(b"abcdefgh");
        p.push(0);
        p.extend_from_slice(&[0xff, 0xf7, 8, 2, 0, 0xff, 0x81, 21]);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
        let mut m = (p.len() as u32).to_le_bytes()[..3].to_vec();
        m.push(0);
        m.extend_from_slice(&p);
        m
    }

    #[test]
    fn mysql_and_mariadb_greetings_are_mysql() {
        assert!(server_greeting(&greeting("8.0.36")).is_some());
        assert!(server_greeting(&greeting("5.5.5-10.11.6-MariaDB-0+deb12u1")).is_some());
    }

    #[test]
    fn truncated_or_wrong_greetings_are_not() {
        let g = greeting("8.0.36");
        for n in 0..g.len() {
            assert!(server_greeting(&g[..n]).is_none(), "prefix {n}");
        }
        let mut bad = g.clone();
        bad[4] = 9;
        assert!(server_greeting(&bad).is_none());
        let mut bad = g;
        bad[3] = 1;
        assert!(server_greeting(&bad).is_none());
    }
}
