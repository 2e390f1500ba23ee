//! SIP (RFC 3261 §7.1 start lines, §19.1 SIP URIs) and the SDP bodies it
//! carries (RFC 4566 §5.7 `c=`, §5.14 `m=`; RFC 3605 `a=rtcp:`; RFC 5761
//! `a=rtcp-mux`). The media an SDP offer or answer announces become
//! expectations: the RTP and RTCP flows they describe are classified on
//! their first packet.

use super::{lines, parse_dec, starts_with_ci, strip_port, trim, Found};
use crate::dpi::types::Protocol;
use std::net::IpAddr;

const METHODS: [&[u8]; 14] = [
    b"INVITE",
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"OPTIONS",
    b"REGISTER",
    b"PRACK",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"PUBLISH",
    b"INFO",
    b"REFER",
    b"MESSAGE",
    b"UPDATE",
];

/// A SIP request or response at the start of `buf`; the host is the
/// Request-URI's (or, for a response, the To header's) when it is a
/// domain name rather than an address.
pub fn message(buf: &[u8]) -> Option<Found<'_>> {
    let mut it = lines(buf);
    let first = it.next()?;
    if buf.len() == first.len() {
        return None; // the start line is not complete
    }
    if let Some(rest) = first.strip_prefix(b"SIP/2.0 ") {
        let (code, _) = parse_dec(rest, 3)?;
        if !(100..700).contains(&code) {
            return None;
        }
        let host = it
            .take_while(|l| !l.is_empty())
            .find(|l| starts_with_ci(l, b"to:") || starts_with_ci(l, b"t:"))
            .and_then(|l| uri_host(l.get(l.iter().position(|&b| b == b':')? + 1..)?));
        return Some(Found::with_host(Protocol::Sip, host));
    }
    let mut parts = first.split(|&b| b == b' ');
    let method = parts.next()?;
    let uri = parts.next()?;
    let version = parts.next()?;
    if !METHODS.contains(&method) || version != b"SIP/2.0" || parts.next().is_some() {
        return None;
    }
    if !(starts_with_ci(uri, b"sip:")
        || starts_with_ci(uri, b"sips:")
        || starts_with_ci(uri, b"tel:"))
    {
        return None;
    }
    Some(Found::with_host(Protocol::Sip, uri_host(uri)))
}

/// The host of the first `sip:`/`sips:` URI in `s`, if it is a name.
fn uri_host(s: &[u8]) -> Option<&[u8]> {
    let start = super::find_ci(s, b"sip:")
        .map(|i| i + 4)
        .or_else(|| super::find_ci(s, b"sips:").map(|i| i + 5))?;
    let uri = s.get(start..)?;
    let end = uri
        .iter()
        .position(|&b| matches!(b, b';' | b'>' | b' ' | b'?' | b'\t'))
        .unwrap_or(uri.len());
    let uri = uri.get(..end)?;
    let hostport = match uri.iter().rposition(|&b| b == b'@') {
        Some(at) => uri.get(at + 1..)?,
        None => uri,
    };
    let host = strip_port(hostport);
    let is_name = !host.is_empty()
        && host.iter().any(|b| b.is_ascii_alphabetic())
        && !host.contains(&b':')
        && host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    is_name.then_some(host)
}

/// One media stream an SDP body announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Media {
    pub addr: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

const MAX_MEDIA: usize = 8;

#[derive(Clone, Copy, Default)]
struct MediaLine {
    port: u16,
    addr: Option<IpAddr>,
    rtcp: Option<u16>,
    mux: bool,
    rtp: bool,
}

fn parse_ip(s: &[u8]) -> Option<IpAddr> {
    let s = s.split(|&b| b == b'/').next()?;
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Calls `out` for every RTP and RTCP stream the SDP body of the SIP
/// message in `buf` announces (at most 8 media).
pub fn sdp_media(buf: &[u8], mut out: impl FnMut(Media)) {
    let Some(body_at) = super::find(buf, b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| super::find(buf, b"\n\n").map(|i| i + 2))
    else {
        return;
    };
    let body = buf.get(body_at..).unwrap_or(&[]);
    if !body.starts_with(b"v=0") {
        return;
    }
    let mut session_addr: Option<IpAddr> = None;
    let mut media = [MediaLine::default(); MAX_MEDIA];
    let mut n = 0usize;
    for line in lines(body) {
        let line = trim(line);
        if let Some(c) = line.strip_prefix(b"c=") {
            let mut f = c.split(|&b| b == b' ');
            let (Some(b"IN"), Some(_fam), Some(a)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let addr = parse_ip(a);
            match n.checked_sub(1).and_then(|i| media.get_mut(i)) {
                Some(m) => m.addr = addr,
                None => session_addr = addr,
            }
        } else if let Some(m) = line.strip_prefix(b"m=") {
            if n >= MAX_MEDIA {
                break;
            }
            let mut f = m.split(|&b| b == b' ');
            let _kind = f.next();
            let Some((port, _)) = f.next().and_then(|p| parse_dec(p, 5)) else {
                continue;
            };
            let proto = f.next().unwrap_or(&[]);
            if let (Ok(port), Some(slot)) = (u16::try_from(port), media.get_mut(n)) {
                *slot = MediaLine {
                    port,
                    rtp: super::find(proto, b"RTP").is_some(),
                    ..MediaLine::default()
                };
                n += 1;
            }
        } else if let Some(a) = line.strip_prefix(b"a=rtcp:") {
            if let (Some(m), Some((p, _))) = (
                n.checked_sub(1).and_then(|i| media.get_mut(i)),
                parse_dec(a, 5),
            ) {
                m.rtcp = u16::try_from(p).ok();
            }
        } else if line == b"a=rtcp-mux" {
            if let Some(m) = n.checked_sub(1).and_then(|i| media.get_mut(i)) {
                m.mux = true;
            }
        }
    }
    for m in media.iter().take(n) {
        let Some(addr) = m.addr.or(session_addr) else {
            continue;
        };
        if m.port == 0 || !m.rtp || addr.is_unspecified() {
            continue;
        }
        out(Media {
            addr,
            port: m.port,
            protocol: Protocol::Rtp,
        });
        if !m.mux {
            let rtcp = m.rtcp.or(m.port.checked_add(1));
            if let Some(port) = rtcp.filter(|&p| p != m.port) {
                out(Media {
                    addr,
                    port,
                    protocol: Protocol::Rtcp,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpi::dissect::testutil::every_prefix;

    /// sipp's uac INVITE with an SDP offer.
    const INVITE: &[u8] = b"INVITE sip:service@pbx.example.com:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK-1-0\r\n\
From: sipp <sip:sipp@10.0.0.1:5061>;tag=1\r\n\
To: <sip:service@pbx.example.com:5060>\r\n\
Call-ID: 1-1@10.0.0.1\r\nCSeq: 1 INVITE\r\n\
Content-Type: application/sdp\r\nContent-Length: 129\r\n\r\n\
v=0\r\no=user1 53655765 2353687637 IN IP4 10.0.0.1\r\ns=-\r\n\
c=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 6002 RTP/AVP 96\r\nc=IN IP4 10.0.0.9\r\na=rtcp:7000\r\n";

    #[test]
    fn invite_is_sip_with_the_uri_host() {
        let f = message(INVITE).unwrap();
        assert_eq!(f.protocol, Protocol::Sip);
        assert_eq!(f.host, Some(&b"pbx.example.com"[..]));
    }

    #[test]
    fn addresses_are_not_hostnames() {
        let f = message(b"INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n").unwrap();
        assert_eq!(f.host, None);
    }

    #[test]
    fn responses_are_sip_with_the_to_host() {
        let f = message(b"SIP/2.0 200 OK\r\nTo: <sip:bob@voip.example.net>;tag=9\r\n\r\n").unwrap();
        assert_eq!(f.host, Some(&b"voip.example.net"[..]));
        assert!(message(b"SIP/2.0 999 Bad\r\n").is_none());
    }

    #[test]
    fn sdp_media_become_rtp_and_rtcp_streams() {
        let mut got = Vec::new();
        sdp_media(INVITE, |m| {
            got.push((m.addr.to_string(), m.port, m.protocol))
        });
        assert_eq!(
            got,
            vec![
                ("10.0.0.1".into(), 6000, Protocol::Rtp),
                ("10.0.0.1".into(), 6001, Protocol::Rtcp),
                ("10.0.0.9".into(), 6002, Protocol::Rtp),
                ("10.0.0.9".into(), 7000, Protocol::Rtcp),
            ]
        );
    }

    #[test]
    fn rtcp_mux_and_disabled_media_add_nothing_extra() {
        let msg = b"SIP/2.0 200 OK\r\n\r\nv=0\r\nc=IN IP6 2001:db8::1\r\nm=audio 0 RTP/AVP 0\r\nm=audio 5004 RTP/SAVPF 111\r\na=rtcp-mux\r\n";
        let mut got = Vec::new();
        sdp_media(msg, |m| got.push((m.addr.to_string(), m.port, m.protocol)));
        assert_eq!(got, vec![("2001:db8::1".into(), 5004, Protocol::Rtp)]);
    }

    #[test]
    fn other_text_is_not_sip() {
        assert!(message(b"GET / HTTP/1.1\r\n").is_none());
        assert!(message(b"INVITE sip:a@b SIP/2.0").is_none());
        assert!(message(b"FOO sip:a@b SIP/2.0\r\n").is_none());
        assert!(message(b"INVITE http://x SIP/2.0\r\n").is_none());
    }

    #[test]
    fn hostile_input_does_not_panic() {
        every_prefix(INVITE, |b| {
            let _ = message(b);
            sdp_media(b, |_| {});
        });
        let many = [
            b"SIP/2.0 200 OK\r\n\r\nv=0\r\nc=IN IP4 1.2.3.4\r\n".as_slice(),
            &b"m=audio 99999 RTP/AVP 0\r\nm=audio 1 RTP/AVP 0\r\n".repeat(20),
        ]
        .concat();
        let mut count = 0;
        sdp_media(&many, |_| count += 1);
        assert!(count <= 2 * MAX_MEDIA);
    }
}
