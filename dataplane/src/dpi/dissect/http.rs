//! HTTP/1.x (RFC 9112 §3 request line, §3.2 Host; RFC 9110 §9 methods):
//! a flow is HTTP on its request line, as in nDPI, and the Host header
//! names the server. Headers cut by a segment boundary are reassembled.

use super::{starts_with_ci, strip_port, trim, Found, Verdict};
use crate::dpi::types::Protocol;

const METHODS: [&[u8]; 9] = [
    b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE",
];

/// The longest request head we wait for before deciding without a Host.
const MAX_HEAD: usize = 4096;

/// The method, if `buf` starts with one of the known methods and a space
/// (or could, being a prefix of one).
fn method(buf: &[u8]) -> Option<Result<&[u8], ()>> {
    for m in METHODS {
        if buf.len() <= m.len() {
            if m.starts_with(buf) && !buf.is_empty() {
                return Some(Err(()));
            }
        } else if buf.starts_with(m) && buf.get(m.len()) == Some(&b' ') {
            return buf.get(..m.len()).map(Ok);
        }
    }
    None
}

/// One direction of a TCP stream, from its start.
pub fn stream(buf: &[u8]) -> Verdict<'_> {
    if let Some(rest) = buf.strip_prefix(b"HTTP/1.") {
        // A response: the request was not seen.
        return match rest {
            [v, b' ', d0, d1, d2, ..]
                if (*v == b'0' || *v == b'1')
                    && d0.is_ascii_digit()
                    && d1.is_ascii_digit()
                    && d2.is_ascii_digit() =>
            {
                Verdict::Match(Found::proto(Protocol::Http))
            }
            _ if rest.len() < 5 => Verdict::Partial,
            _ => Verdict::No,
        };
    }
    if buf.len() < 7 && b"HTTP/1.".starts_with(buf) {
        return Verdict::Partial;
    }
    let m = match method(buf) {
        None => return Verdict::No,
        Some(Err(())) => return Verdict::Partial,
        Some(Ok(m)) => m,
    };
    // Raw lines: each but the last ended with '\n' (the last is the
    // unterminated tail, possibly empty).
    let mut raw = buf.split(|&b| b == b'\n');
    let first = raw.next().unwrap_or(&[]);
    if first.len() == buf.len() {
        return if first.len() < MAX_HEAD && !first.contains(&0) {
            Verdict::Partial
        } else {
            Verdict::No
        };
    }
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let version_ok = first
        .rsplit(|&b| b == b' ')
        .next()
        .is_some_and(|v| v == b"HTTP/1.1" || v == b"HTTP/1.0");
    if !version_ok {
        return Verdict::No;
    }
    let mut complete = false;
    let mut pending = raw.next();
    while let Some(line) = pending {
        let next = raw.next();
        if next.is_none() {
            break; // the tail: a header still being received
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            complete = true;
            break;
        }
        if starts_with_ci(line, b"host:") {
            let host = strip_port(trim(line.get(5..).unwrap_or(&[])));
            let mut f = Found::with_host(Protocol::Http, (!host.is_empty()).then_some(host));
            f.detail = Some(m);
            return Verdict::Match(f);
        }
        pending = next;
    }
    if complete || buf.len() >= MAX_HEAD {
        let mut f = Found::proto(Protocol::Http);
        f.detail = Some(m);
        Verdict::Match(f)
    } else {
        Verdict::Partial
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpi::dissect::testutil::every_prefix;

    const CURL: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: www.example.com:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

    #[test]
    fn request_yields_host_and_method() {
        let Verdict::Match(f) = stream(CURL) else {
            panic!()
        };
        assert_eq!(f.protocol, Protocol::Http);
        assert_eq!(f.host, Some(&b"www.example.com"[..]));
        assert_eq!(f.detail, Some(&b"GET"[..]));
    }

    #[test]
    fn host_header_is_case_insensitive_and_trimmed() {
        let req = b"POST /x HTTP/1.0\r\nhOsT:   api.example.org  \r\n\r\n";
        let Verdict::Match(f) = stream(req) else {
            panic!()
        };
        assert_eq!(f.host, Some(&b"api.example.org"[..]));
        assert_eq!(f.detail, Some(&b"POST"[..]));
    }

    #[test]
    fn every_prefix_before_the_host_line_is_partial() {
        let host_end = CURL.windows(2).skip(30).position(|w| w == b"\r\n").unwrap() + 30;
        for n in 1..=host_end {
            assert_eq!(stream(&CURL[..n]), Verdict::Partial, "prefix {n}");
        }
        assert!(matches!(stream(&CURL[..host_end + 2]), Verdict::Match(_)));
    }

    #[test]
    fn request_without_host_decides_at_the_end_of_headers() {
        let Verdict::Match(f) = stream(b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n") else {
            panic!()
        };
        assert_eq!(f.host, None);
        assert_eq!(
            stream(b"GET / HTTP/1.0\r\nAccept: */*\r\n"),
            Verdict::Partial
        );
    }

    #[test]
    fn responses_are_http() {
        assert!(matches!(stream(b"HTTP/1.1 200 OK\r\n"), Verdict::Match(_)));
        assert_eq!(stream(b"HTTP/1.1 abc"), Verdict::No);
    }

    #[test]
    fn lookalikes_are_not_http() {
        assert_eq!(
            stream(b"OPTIONS sip:bob@example.com SIP/2.0\r\n"),
            Verdict::No
        );
        assert_eq!(stream(b"GETX / HTTP/1.1\r\n"), Verdict::No);
        assert_eq!(stream(b"SSH-2.0-OpenSSH\r\n"), Verdict::No);
        assert_eq!(stream(b"GET / RTSP/1.0\r\n"), Verdict::No);
        assert_eq!(stream(&[0u8; 10]), Verdict::No);
    }

    #[test]
    fn hostile_input_does_not_panic() {
        every_prefix(CURL, |b| {
            let _ = stream(b);
        });
        let long = [b"GET /".as_slice(), &[b'a'; 5000]].concat();
        assert_eq!(stream(&long), Verdict::No);
    }
}
