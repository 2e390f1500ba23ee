//! DNS messages (RFC 1035 §4.1): header, then the first question's name.
//! Over TCP each message has a two-byte length prefix (RFC 1035 §4.2.2).
//! As in nDPI, a flow is DNS on its query; on the DNS ports (53, mDNS
//! 5353, LLMNR 5355) the checks are those of a resolver, elsewhere only a
//! strict single-question query counts.

use super::{be16, Found, Reader};
use crate::dpi::types::Protocol;

pub const PORTS: [u16; 3] = [53, 5353, 5355];

/// Parses a DNS message; the query name is written, dotted, into
/// `scratch`. `strict` demands a plain single-question query.
pub fn message<'a>(buf: &[u8], strict: bool, scratch: &'a mut [u8]) -> Option<Found<'a>> {
    let mut r = Reader::new(buf);
    let _id = r.u16()?;
    let flags = r.u16()?;
    let qd = r.u16()?;
    let an = r.u16()?;
    let ns = r.u16()?;
    let ar = r.u16()?;
    let response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    if !matches!(opcode, 0 | 1 | 2 | 4 | 5) {
        return None;
    }
    if strict && (response || opcode != 0 || qd != 1 || an != 0 || ns != 0 || ar > 1) {
        return None;
    }
    if qd == 0 {
        // Responses without a question (some mDNS announcements).
        return (!strict && response && an > 0).then_some(Found::proto(Protocol::Dns));
    }
    if qd > 16 || an > 256 || ns > 256 || ar > 256 {
        return None;
    }
    let n = qname(&mut r, strict, scratch)?;
    let qtype = r.u16()?;
    let qclass = r.u16()? & 0x7fff;
    if qtype == 0 || !matches!(qclass, 1 | 3 | 4 | 254 | 255) {
        return None;
    }
    if strict && r.remaining() > 0 && ar == 0 {
        return None;
    }
    let host = scratch.get(..n).filter(|h| !h.is_empty());
    Some(Found::with_host(Protocol::Dns, host))
}

/// Reads an uncompressed name, writing it dotted into `out`; returns its
/// length (0 for the root).
fn qname(r: &mut Reader<'_>, strict: bool, out: &mut [u8]) -> Option<usize> {
    let mut n = 0usize;
    let mut total = 0usize;
    loop {
        let len = usize::from(r.u8()?);
        if len == 0 {
            return Some(n);
        }
        if len > 63 {
            // Compression pointers do not belong in a question's name.
            return None;
        }
        total += len + 1;
        if total > 255 {
            return None;
        }
        let label = r.bytes(len)?;
        if strict
            && !label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        {
            return None;
        }
        if n > 0 {
            *out.get_mut(n)? = b'.';
            n += 1;
        }
        out.get_mut(n..n + len)?.copy_from_slice(label);
        n += len;
    }
}

/// A DNS message over TCP: the length prefix, then the message (the
/// question must be in this segment).
pub fn tcp<'a>(buf: &[u8], strict: bool, scratch: &'a mut [u8]) -> Option<Found<'a>> {
    let len = usize::from(be16(buf, 0)?);
    if len < 17 {
        return None;
    }
    let msg = buf.get(2..)?;
    if strict && msg.len() != len {
        return None;
    }
    message(msg.get(..len.min(msg.len()))?, strict, scratch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpi::dissect::testutil::every_prefix;

    /// dig www.example.com A, with an EDNS OPT record.
    pub fn query(name: &str) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        q
    }

    fn run(buf: &[u8], strict: bool) -> Option<(Protocol, Option<String>)> {
        let mut s = [0u8; 256];
        message(buf, strict, &mut s).map(|f| {
            (
                f.protocol,
                f.host.map(|h| String::from_utf8_lossy(h).into_owned()),
            )
        })
    }

    #[test]
    fn query_yields_the_name() {
        let q = query("www.example.com");
        assert_eq!(
            run(&q, true),
            Some((Protocol::Dns, Some("www.example.com".into())))
        );
        assert_eq!(
            run(&q, false),
            Some((Protocol::Dns, Some("www.example.com".into())))
        );
    }

    #[test]
    fn tcp_query_has_a_length_prefix() {
        let q = query("example.org");
        let mut t = (q.len() as u16).to_be_bytes().to_vec();
        t.extend_from_slice(&q);
        let mut s = [0u8; 256];
        let f = tcp(&t, true, &mut s).unwrap();
        assert_eq!(f.host, Some(&b"example.org"[..]));
        assert!(tcp(&t[..t.len() - 1], true, &mut s).is_none());
    }

    #[test]
    fn responses_count_only_on_dns_ports() {
        let mut r = query("a.example");
        r[2] |= 0x80;
        r[7] = 1;
        assert!(run(&r, true).is_none());
        assert_eq!(run(&r, false).map(|x| x.0), Some(Protocol::Dns));
    }

    #[test]
    fn truncated_queries_are_refused() {
        let q = query("www.example.com");
        // Without the OPT record the query still ends at qclass.
        for n in 0..q.len() - 11 {
            assert!(run(&q[..n], false).is_none(), "prefix {n}");
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        assert!(run(&q, false).is_none());
        // A label of 64 bytes.
        let mut q = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64];
        q.extend_from_slice(&[b'a'; 64]);
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert!(run(&q, false).is_none());
        // A name over 255 bytes.
        let long = vec!["a".repeat(60); 5].join(".");
        assert!(run(&query(&long), false).is_none());
        // Huge counts.
        let mut q = query("x.example");
        q[4] = 0xff;
        assert!(run(&q, false).is_none());
        every_prefix(&query("www.example.com"), |b| {
            let _ = run(b, false);
            let _ = run(b, true);
        });
    }
}
