//! TLS and DTLS: the record layer (RFC 8446 §5.1, RFC 6347 §4.1) and the
//! ClientHello (RFC 8446 §4.1.2, DTLS's cookie from RFC 6347 §4.2.1) with
//! its server_name (RFC 6066 §3) and ALPN (RFC 7301 §3.1) extensions.
//!
//! Like nDPI, a flow is TLS once its ClientHello (or a ServerHello, when
//! the start was missed) is seen; the SNI names the server. A ClientHello
//! may span several records and TCP segments: [`client_stream`] reports
//! [`Verdict::Partial`] until it is whole, and the engine reassembles.

use super::{Found, Reader, Verdict};
use crate::dpi::types::Protocol;

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
/// The largest record a peer may send (2^14 plus expansion).
const MAX_RECORD: usize = 16_384 + 2048;

/// What a ClientHello reveals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hello<'a> {
    /// The first host_name of the server_name extension.
    pub sni: Option<&'a [u8]>,
    /// The first protocol of the ALPN extension.
    pub alpn: Option<&'a [u8]>,
    /// The whole body was parsed (false: it was cut short, and `sni` /
    /// `alpn` are what the available bytes held).
    pub complete: bool,
}

/// Parses a ClientHello body (after the 4-byte handshake header, or the
/// 12-byte DTLS one). A truncated body yields what it holds, with
/// `complete == false`; a malformed one yields `None`.
pub fn parse_client_hello(body: &[u8], dtls: bool) -> Option<Hello<'_>> {
    let mut hello = Hello::default();
    let mut r = Reader::new(body);
    fn partial(h: Hello<'_>) -> Option<Hello<'_>> {
        Some(h)
    }
    let Some(version) = r.u16() else {
        return partial(hello);
    };
    // TLS versions are 3.x; DTLS versions are 254.x (one's complement).
    if (!dtls && version >> 8 != 3) || (dtls && version >> 8 != 0xfe) {
        return None;
    }
    if r.skip(32).is_none() {
        return partial(hello);
    }
    match r.vec8() {
        Some(sid) if sid.len() <= 32 => {}
        Some(_) => return None,
        None => return partial(hello),
    }
    if dtls && r.vec8().is_none() {
        return partial(hello);
    }
    match r.vec16() {
        Some(suites) if !suites.is_empty() && suites.len() % 2 == 0 => {}
        Some(_) => return None,
        None => return partial(hello),
    }
    match r.vec8() {
        Some(comp) if !comp.is_empty() => {}
        Some(_) => return None,
        None => return partial(hello),
    }
    if r.remaining() == 0 {
        // Extensions are optional before TLS 1.3.
        hello.complete = true;
        return Some(hello);
    }
    let Some(ext_len) = r.u16() else {
        return partial(hello);
    };
    let all = r.rest();
    let (exts, complete) = match all.get(..usize::from(ext_len)) {
        Some(e) => (e, true),
        None => (all, false),
    };
    let mut e = Reader::new(exts);
    while e.remaining() > 0 {
        let (Some(ty), Some(len)) = (e.u16(), e.u16()) else {
            return partial(hello);
        };
        let Some(data) = e.bytes(usize::from(len)) else {
            return partial(hello);
        };
        match ty {
            EXT_SERVER_NAME if hello.sni.is_none() => hello.sni = first_host_name(data),
            EXT_ALPN if hello.alpn.is_none() => {
                hello.alpn = Reader::new(data)
                    .vec16()
                    .and_then(|list| Reader::new(list).vec8())
                    .filter(|p| !p.is_empty());
            }
            _ => {}
        }
    }
    hello.complete = complete;
    Some(hello)
}

/// The first host_name entry of a server_name extension.
fn first_host_name(data: &[u8]) -> Option<&[u8]> {
    let mut list = Reader::new(Reader::new(data).vec16()?);
    while list.remaining() > 0 {
        let ty = list.u8()?;
        let name = list.vec16()?;
        if ty == 0 && !name.is_empty() {
            return Some(name);
        }
    }
    None
}

fn hello_found<'a>(protocol: Protocol, h: Hello<'a>) -> Found<'a> {
    Found {
        protocol,
        host: h.sni,
        app: None,
        detail: h.alpn,
    }
}

/// The first TLS record header: content type, length; `None` if the bytes
/// cannot start a TLS record.
fn record_header(buf: &[u8]) -> Option<(u8, usize)> {
    let ty = *buf.first()?;
    if !(20..=24).contains(&ty) {
        return None;
    }
    match (buf.get(1), buf.get(2)) {
        (Some(3), Some(minor)) if *minor <= 4 => {}
        (Some(3), None) | (None, None) => {}
        _ => return None,
    }
    let len = super::be16(buf, 3).map(usize::from);
    match len {
        Some(l) if l == 0 || l > MAX_RECORD => None,
        Some(l) => Some((ty, l)),
        None => Some((ty, 0)),
    }
}

/// Looks at the start of one direction of a TCP stream. The handshake
/// message is gathered from consecutive handshake records into `scratch`
/// when it spans more than one record.
pub fn client_stream<'a>(buf: &'a [u8], scratch: &'a mut [u8]) -> Verdict<'a> {
    // SSLv2-compatible ClientHello (RFC 5246 §E.2): no extensions, no SNI.
    if let [b0, _, 1, 3, minor, ..] = buf {
        if b0 & 0x80 != 0 && *minor <= 3 {
            return Verdict::Match(Found::proto(Protocol::Tls));
        }
    }
    let Some((ty, len)) = record_header(buf) else {
        return Verdict::No;
    };
    if ty != HANDSHAKE {
        return Verdict::No;
    }
    if buf.len() < 5 {
        return Verdict::Partial;
    }
    let first = buf.get(5..5 + len).unwrap_or(buf.get(5..).unwrap_or(&[]));
    let Some(&msg) = first.first() else {
        return Verdict::Partial;
    };
    if msg != CLIENT_HELLO {
        // A ServerHello (the flow's start was missed) or another handshake
        // message in the clear: TLS all the same.
        return if msg == SERVER_HELLO || (msg <= 24 && first.len() >= 4) {
            Verdict::Match(Found::proto(Protocol::Tls))
        } else if first.len() < 4 {
            Verdict::Partial
        } else {
            Verdict::No
        };
    }
    let Some(hs_len) = super::be32(first, 0).map(|v| (v & 0x00ff_ffff) as usize) else {
        return Verdict::Partial;
    };
    if !(38..=0x1_0000).contains(&hs_len) {
        return Verdict::No;
    }
    // Fast path: the whole message in the first record.
    if let Some(body) = first.get(4..4 + hs_len) {
        return match parse_client_hello(body, false) {
            Some(h) => Verdict::Match(hello_found(Protocol::Tls, h)),
            None => Verdict::No,
        };
    }
    // Gather the fragments of consecutive handshake records.
    let mut filled = 0usize;
    let mut pos = 0usize;
    let want = 4 + hs_len;
    while filled < want {
        let rest = buf.get(pos..).unwrap_or(&[]);
        if rest.is_empty() {
            break;
        }
        match record_header(rest) {
            Some((HANDSHAKE, l)) if rest.len() >= 5 => {
                let frag = rest.get(5..5 + l).unwrap_or(rest.get(5..).unwrap_or(&[]));
                let n = frag.len().min(scratch.len().saturating_sub(filled));
                if let (Some(dst), Some(src)) = (scratch.get_mut(filled..filled + n), frag.get(..n))
                {
                    dst.copy_from_slice(src);
                }
                filled += n;
                if frag.len() < l || n < frag.len() {
                    break;
                }
                pos += 5 + l;
            }
            Some((HANDSHAKE, _)) => break,
            _ => return Verdict::No,
        }
    }
    let gathered: &'a [u8] = scratch.get(..filled).unwrap_or(&[]);
    let body = gathered.get(4..).unwrap_or(&[]);
    if filled >= want {
        match parse_client_hello(body.get(..hs_len).unwrap_or(body), false) {
            Some(h) => Verdict::Match(hello_found(Protocol::Tls, h)),
            None => Verdict::No,
        }
    } else {
        match parse_client_hello(body, false) {
            Some(_) => Verdict::Partial,
            None => Verdict::No,
        }
    }
}

/// Gives up waiting for the rest of a ClientHello (reassembly lost or the
/// buffer full): what the bytes so far say, as a decision.
pub fn client_stream_final<'a>(buf: &'a [u8], scratch: &'a mut [u8]) -> Option<Found<'a>> {
    match client_stream(buf, scratch) {
        Verdict::Match(f) => Some(f),
        Verdict::No => None,
        Verdict::Partial => {
            let body = buf.get(9..).unwrap_or(&[]);
            let h = parse_client_hello(body, false).unwrap_or_default();
            Some(hello_found(Protocol::Tls, h))
        }
    }
}

/// A DTLS datagram (RFC 6347 §4.1): a ClientHello yields the SNI; other
/// well-formed records still say DTLS.
pub fn dtls_datagram(buf: &[u8]) -> Option<Found<'_>> {
    let mut r = Reader::new(buf);
    let mut first: Option<Found<'_>> = None;
    while r.remaining() > 0 {
        let ty = r.u8()?;
        let version = r.u16()?;
        if !(20..=25).contains(&ty) || !matches!(version, 0xfeff | 0xfefd | 0xfefc) {
            return None;
        }
        let epoch = r.u16()?;
        r.skip(6)?;
        let body = r.vec16()?;
        if body.is_empty() {
            return None;
        }
        if first.is_none() {
            first = Some(if ty == HANDSHAKE && epoch == 0 {
                dtls_handshake(body)?
            } else {
                Found::proto(Protocol::Dtls)
            });
        }
    }
    first
}

fn dtls_handshake(body: &[u8]) -> Option<Found<'_>> {
    let mut r = Reader::new(body);
    let msg = r.u8()?;
    let _len = r.u24()?;
    let _seq = r.u16()?;
    let frag_off = r.u24()?;
    let frag_len = r.u24()? as usize;
    if msg > 24 {
        return None;
    }
    if msg != CLIENT_HELLO || frag_off != 0 {
        return Some(Found::proto(Protocol::Dtls));
    }
    let rest = r.rest();
    let frag = rest.get(..frag_len).unwrap_or(rest);
    let h = parse_client_hello(frag, true)?;
    Some(hello_found(Protocol::Dtls, h))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dpi::dissect::testutil::every_prefix;

    /// A TLS 1.3 ClientHello body with SNI and ALPN, like curl's.
    pub fn client_hello_body(sni: &str, alpn: &[&str], dtls: bool) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(if dtls { &[0xfe, 0xfd] } else { &[3, 3] });
        b.extend_from_slice(&[0x11; 32]);
        b.push(32);
        b.extend_from_slice(&[0x22; 32]);
        if dtls {
            b.push(0);
        }
        b.extend_from_slice(&[0, 6, 0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f]);
        b.extend_from_slice(&[1, 0]);
        let mut exts = Vec::new();
        // supported_versions first, so the SNI is not at the start.
        exts.extend_from_slice(&[0, 43, 0, 3, 2, 3, 4]);
        if !sni.is_empty() {
            let n = sni.len() as u16;
            exts.extend_from_slice(&[0, 0]);
            exts.extend_from_slice(&(n + 5).to_be_bytes());
            exts.extend_from_slice(&(n + 3).to_be_bytes());
            exts.push(0);
            exts.extend_from_slice(&n.to_be_bytes());
            exts.extend_from_slice(sni.as_bytes());
        }
        if !alpn.is_empty() {
            let mut list = Vec::new();
            for p in alpn {
                list.push(p.len() as u8);
                list.extend_from_slice(p.as_bytes());
            }
            exts.extend_from_slice(&[0, 16]);
            exts.extend_from_slice(&(list.len() as u16 + 2).to_be_bytes());
            exts.extend_from_slice(&(list.len() as u16).to_be_bytes());
            exts.extend_from_slice(&list);
        }
        // A key_share-sized blob, as real hellos carry.
        exts.extend_from_slice(&[0, 51, 0, 38, 0, 36, 0, 29, 0, 32]);
        exts.extend_from_slice(&[0x33; 32]);
        b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        b.extend_from_slice(&exts);
        b
    }

    /// A handshake message in one TLS record.
    pub fn client_hello_record(sni: &str, alpn: &[&str]) -> Vec<u8> {
        let body = client_hello_body(sni, alpn, false);
        let mut hs = vec![CLIENT_HELLO];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![HANDSHAKE, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    fn stream(buf: &[u8]) -> Verdict<'static> {
        let scratch = vec![0u8; 8192];
        let buf: &'static [u8] = Box::leak(buf.to_vec().into_boxed_slice());
        let scratch: &'static mut [u8] = Box::leak(scratch.into_boxed_slice());
        client_stream(buf, scratch)
    }

    #[test]
    fn client_hello_yields_sni_and_alpn() {
        let rec = client_hello_record("www.example.com", &["h2", "http/1.1"]);
        let Verdict::Match(f) = stream(&rec) else {
            panic!("no match")
        };
        assert_eq!(f.protocol, Protocol::Tls);
        assert_eq!(f.host, Some(&b"www.example.com"[..]));
        assert_eq!(f.detail, Some(&b"h2"[..]));
    }

    #[test]
    fn client_hello_without_sni_is_still_tls() {
        let rec = client_hello_record("", &[]);
        let Verdict::Match(f) = stream(&rec) else {
            panic!("no match")
        };
        assert_eq!((f.protocol, f.host, f.detail), (Protocol::Tls, None, None));
    }

    #[test]
    fn every_truncation_is_partial() {
        let rec = client_hello_record("www.example.com", &["h2"]);
        for n in 1..rec.len() {
            assert_eq!(stream(&rec[..n]), Verdict::Partial, "prefix {n}");
        }
    }

    #[test]
    fn hello_split_over_two_records_is_gathered() {
        let rec = client_hello_record("split.example.org", &["h2"]);
        let hs = &rec[5..];
        let (a, b) = hs.split_at(40);
        let mut two = vec![HANDSHAKE, 3, 3];
        two.extend_from_slice(&(a.len() as u16).to_be_bytes());
        two.extend_from_slice(a);
        two.extend_from_slice(&[HANDSHAKE, 3, 3]);
        two.extend_from_slice(&(b.len() as u16).to_be_bytes());
        two.extend_from_slice(b);
        let Verdict::Match(f) = stream(&two) else {
            panic!("no match")
        };
        assert_eq!(f.host, Some(&b"split.example.org"[..]));
        assert_eq!(stream(&two[..60]), Verdict::Partial);
    }

    #[test]
    fn server_hello_is_tls() {
        let mut sh = vec![HANDSHAKE, 3, 3, 0, 6, SERVER_HELLO, 0, 0, 2, 3, 3];
        sh.truncate(11);
        assert!(matches!(stream(&sh), Verdict::Match(f) if f.protocol == Protocol::Tls));
    }

    #[test]
    fn other_streams_are_not_tls() {
        assert_eq!(stream(b"GET / HTTP/1.1\r\n"), Verdict::No);
        assert_eq!(stream(&[0x16, 2, 0, 0, 5]), Verdict::No);
        assert_eq!(stream(&[0x16, 3, 1, 0, 0]), Verdict::No);
        assert_eq!(stream(&[0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5]), Verdict::No);
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        let rec = client_hello_record("a.example", &["h2"]);
        every_prefix(&rec, |b| {
            let _ = stream(b);
            let _ = parse_client_hello(b, false);
            let _ = dtls_datagram(b);
        });
        // A server_name list claiming more than it holds.
        let mut body = client_hello_body("x.y", &[], false);
        let at = body.windows(2).position(|w| w == [0, 0]).unwrap();
        let _ = at;
        body.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let _ = parse_client_hello(&body, false);
    }

    #[test]
    fn truncated_body_keeps_what_it_has() {
        let body = client_hello_body("early.example", &["h3"], false);
        let h = parse_client_hello(&body[..body.len() - 10], false).unwrap();
        assert!(!h.complete);
        assert_eq!(h.sni, Some(&b"early.example"[..]));
        let h = parse_client_hello(&body, false).unwrap();
        assert!(h.complete);
        assert_eq!(h.alpn, Some(&b"h3"[..]));
    }

    fn dtls_client_hello(sni: &str) -> Vec<u8> {
        let body = client_hello_body(sni, &["webrtc"], true);
        let mut hs = vec![CLIENT_HELLO];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&[0, 0, 0, 0, 0]);
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![HANDSHAKE, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn dtls_client_hello_yields_sni() {
        let d = dtls_client_hello("media.example.net");
        let f = dtls_datagram(&d).unwrap();
        assert_eq!(f.protocol, Protocol::Dtls);
        assert_eq!(f.host, Some(&b"media.example.net"[..]));
        assert_eq!(f.detail, Some(&b"webrtc"[..]));
        for n in 0..d.len() {
            assert_eq!(dtls_datagram(&d[..n]), None, "prefix {n}");
        }
    }

    #[test]
    fn dtls_application_data_is_dtls() {
        let d = [23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 5, 0, 3, 1, 2, 3];
        assert_eq!(dtls_datagram(&d).map(|f| f.protocol), Some(Protocol::Dtls));
        let bad = [23, 0x03, 0x03, 0, 1, 0, 0, 0, 0, 0, 5, 0, 3, 1, 2, 3];
        assert_eq!(dtls_datagram(&bad), None);
    }
}
