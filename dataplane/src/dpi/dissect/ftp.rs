//! FTP control connections (RFC 959 §4.2 replies, §5.3 commands; RFC
//! 2228 AUTH; RFC 2428 EPRT/EPSV) and the data connections they announce:
//! `PORT h1,h2,h3,h4,p1,p2`, `EPRT |af|addr|port|`, `227 ... (h1,...,p2)`
//! and `229 ... (|||port|)` become expectations, so the data flow is
//! FTP-DATA from its first packet.
//!
//! A `220` greeting alone is also SMTP's, so it decides FTP only when it
//! says "FTP"; otherwise an FTP command from the client confirms it.

use super::{find_ci, lines, parse_dec, Found};
use crate::dpi::types::Protocol;
use std::net::{IpAddr, Ipv4Addr};

/// A server greeting: `Some(true)` if it names FTP, `Some(false)` for a
/// plain `220` reply that a client command must confirm.
pub fn server_greeting(buf: &[u8]) -> Option<bool> {
    let [b'2', b'2', b'0', sep, ..] = buf else {
        return None;
    };
    if *sep != b' ' && *sep != b'-' {
        return None;
    }
    let first = lines(buf).next()?;
    Some(find_ci(first, b"ftp").is_some())
}

const COMMANDS: [&[u8]; 8] = [
    b"USER ",
    b"AUTH TLS",
    b"AUTH SSL",
    b"FEAT",
    b"SYST",
    b"OPTS UTF8",
    b"PASV",
    b"EPSV",
];

/// A client command that SMTP, POP3 and IMAP clients do not open with.
pub fn client_command(buf: &[u8]) -> Option<Found<'static>> {
    let line = lines(buf).next()?;
    let ok = buf.len() > line.len() && COMMANDS.iter().any(|c| super::starts_with_ci(line, c));
    ok.then_some(Found::proto(Protocol::Ftp))
}

/// A data connection endpoint announced on the control connection.
/// `server` is the address of the side that sent the packet when it is
/// the server (for EPSV, whose reply carries only a port).
pub fn data_endpoint(buf: &[u8], sender: IpAddr) -> Option<(IpAddr, u16)> {
    for line in lines(buf) {
        if let Some(args) = line.strip_prefix(b"PORT ") {
            return six_tuple(args);
        }
        if let Some(args) = line.strip_prefix(b"EPRT ") {
            return eprt(args);
        }
        if line.starts_with(b"227 ") || line.starts_with(b"227-") {
            let open = line.iter().position(|&b| b == b'(');
            let start = open.map(|i| i + 1).or_else(|| {
                line.iter()
                    .skip(4)
                    .position(|b| b.is_ascii_digit())
                    .map(|i| i + 4)
            })?;
            return six_tuple(line.get(start..)?);
        }
        if line.starts_with(b"229 ") {
            let open = line.iter().position(|&b| b == b'(')?;
            let inner = line.get(open + 1..)?;
            let d = *inner.first()?;
            let mut f = inner.split(|&b| b == d);
            let (Some(b""), Some(b""), Some(b""), Some(port)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                return None;
            };
            let (p, rest) = parse_dec(port, 5)?;
            if !rest.is_empty() {
                return None;
            }
            return Some((sender, u16::try_from(p).ok().filter(|&p| p != 0)?));
        }
    }
    None
}

fn six_tuple(s: &[u8]) -> Option<(IpAddr, u16)> {
    let mut v = [0u8; 6];
    let mut rest = s;
    for (i, slot) in v.iter_mut().enumerate() {
        let (n, r) = parse_dec(rest, 3)?;
        *slot = u8::try_from(n).ok()?;
        rest = if i < 5 { r.strip_prefix(b",")? } else { r };
    }
    let port = u16::from(v[4]) << 8 | u16::from(v[5]);
    (port != 0).then_some((IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3])), port))
}

fn eprt(s: &[u8]) -> Option<(IpAddr, u16)> {
    let d = *s.first()?;
    let mut f = s.get(1..)?.split(|&b| b == d);
    let af = f.next()?;
    let addr = std::str::from_utf8(f.next()?).ok()?;
    let (port, rest) = parse_dec(f.next()?, 5)?;
    if !rest.is_empty() {
        return None;
    }
    let addr: IpAddr = match af {
        b"1" => IpAddr::V4(addr.parse().ok()?),
        b"2" => IpAddr::V6(addr.parse().ok()?),
        _ => return None,
    };
    Some((addr, u16::try_from(port).ok().filter(|&p| p != 0)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpi::dissect::testutil::every_prefix;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn greetings_that_name_ftp_decide() {
        assert_eq!(server_greeting(b"220 (vsFTPd 3.0.5)\r\n"), Some(true));
        assert_eq!(server_greeting(b"220-ProFTPD Server ready\r\n"), Some(true));
        assert_eq!(
            server_greeting(b"220 mail.example.com ESMTP Postfix\r\n"),
            Some(false)
        );
        assert_eq!(server_greeting(b"230 ok\r\n"), None);
    }

    #[test]
    fn client_commands_confirm_ftp() {
        assert!(client_command(b"USER anonymous\r\n").is_some());
        assert!(client_command(b"AUTH TLS\r\n").is_some());
        assert!(client_command(b"EHLO client\r\n").is_none());
        assert!(client_command(b"USER anon").is_none());
    }

    #[test]
    fn data_endpoints_are_parsed() {
        let srv = ip("192.0.2.10");
        assert_eq!(
            data_endpoint(b"227 Entering Passive Mode (192,0,2,10,195,80).\r\n", srv),
            Some((srv, 195 * 256 + 80))
        );
        assert_eq!(
            data_endpoint(b"229 Entering Extended Passive Mode (|||50123|)\r\n", srv),
            Some((srv, 50123))
        );
        assert_eq!(
            data_endpoint(b"PORT 10,0,0,1,4,1\r\n", srv),
            Some((ip("10.0.0.1"), 1025))
        );
        assert_eq!(
            data_endpoint(b"EPRT |2|2001:db8::1|6275|\r\n", srv),
            Some((ip("2001:db8::1"), 6275))
        );
        assert_eq!(
            data_endpoint(b"EPRT |1|10.0.0.2|6276|\r\n", srv),
            Some((ip("10.0.0.2"), 6276))
        );
    }

    #[test]
    fn bad_endpoints_are_refused() {
        let srv = ip("192.0.2.10");
        assert_eq!(data_endpoint(b"PORT 300,0,0,1,4,1\r\n", srv), None);
        assert_eq!(data_endpoint(b"PORT 10,0,0,1,4\r\n", srv), None);
        assert_eq!(data_endpoint(b"PORT 10,0,0,1,0,0\r\n", srv), None);
        assert_eq!(data_endpoint(b"229 (|||99999|)\r\n", srv), None);
        assert_eq!(data_endpoint(b"EPRT |3|x|1|\r\n", srv), None);
        every_prefix(b"227 Entering Passive Mode (192,0,2,10,195,80).\r\n", |b| {
            let _ = data_endpoint(b, srv);
        });
        every_prefix(b"EPRT |2|2001:db8::1|6275|\r\n", |b| {
            let _ = data_endpoint(b, srv);
        });
    }
}
