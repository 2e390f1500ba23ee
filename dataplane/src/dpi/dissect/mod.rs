//! Protocol dissectors: pure functions from payload bytes to "this is
//! protocol X (and here is its hostname)", one module per protocol.
//!
//! Every dissector reads through bounds-checked accessors ([`Reader`],
//! `get`), so no input can make it panic, and none allocates: a hostname is
//! returned as a sub-slice of the input, which the engine copies into its
//! scratch space. Per-flow state lives in the engine (`FlowDpi` and the
//! reassembly pool), never here. The module of each dissector cites the
//! specification it implements.

pub mod bittorrent;
pub mod dns;
pub mod ftp;
pub mod game;
pub mod http;
pub mod mongodb;
pub mod mysql;
pub mod ntp;
pub mod ports;
pub mod postgres;
pub mod quic;
pub mod rdp;
pub mod redis;
pub mod rsync;
pub mod rtp;
pub mod sip;
pub mod smb;
pub mod ssh;
pub mod stun;
pub mod tls;

use super::types::Protocol;

/// A positive identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'a> {
    pub protocol: Protocol,
    /// The server name the traffic reveals (SNI, Host, query name, ...),
    /// raw bytes from the payload; the engine validates and lowercases it.
    pub host: Option<&'a [u8]>,
    /// The application the payload itself names when the hostname does
    /// not (a game's own protocol), by its name in [`crate::dpi::apps`].
    pub app: Option<&'static str>,
    /// A protocol detail worth showing: the first ALPN protocol of a TLS,
    /// DTLS or QUIC ClientHello, the method of an HTTP request.
    pub detail: Option<&'a [u8]>,
}

impl<'a> Found<'a> {
    pub const fn proto(protocol: Protocol) -> Found<'a> {
        Found {
            protocol,
            host: None,
            app: None,
            detail: None,
        }
    }

    pub const fn with_host(protocol: Protocol, host: Option<&'a [u8]>) -> Found<'a> {
        Found {
            protocol,
            host,
            app: None,
            detail: None,
        }
    }

    pub const fn with_app(protocol: Protocol, app: &'static str) -> Found<'a> {
        Found {
            protocol,
            host: None,
            app: Some(app),
            detail: None,
        }
    }
}

/// What a stream dissector says about the bytes it has so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Not this protocol.
    No,
    /// The start of this protocol's message, cut short: more bytes of the
    /// same direction would complete it (reassembly is worth it).
    Partial,
    Match(Found<'a>),
}

/// A forward-only reader over a byte slice; every accessor returns `None`
/// past the end instead of panicking.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub const fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.bytes(n).map(|_| ())
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.bytes(1).and_then(|b| b.first().copied())
    }

    pub fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| be(b) as u16)
    }

    pub fn u24(&mut self) -> Option<u32> {
        self.bytes(3).map(|b| be(b) as u32)
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.bytes(4).map(|b| be(b) as u32)
    }

    /// A slice prefixed by a 1-byte length.
    pub fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.bytes(usize::from(n))
    }

    /// A slice prefixed by a 2-byte length.
    pub fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.bytes(usize::from(n))
    }

    /// A QUIC variable-length integer (RFC 9000 §16).
    pub fn varint(&mut self) -> Option<u64> {
        let first = *self.buf.get(self.pos)?;
        let len = 1usize << (first >> 6);
        let b = self.bytes(len)?;
        let mut v = u64::from(first & 0x3f);
        for &x in b.get(1..)? {
            v = (v << 8) | u64::from(x);
        }
        Some(v)
    }
}

/// Big-endian value of up to 8 bytes.
pub fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

pub fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at.checked_add(2)?).map(|s| be(s) as u16)
}

pub fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?).map(|s| be(s) as u32)
}

pub fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(
        s.iter()
            .rev()
            .fold(0u32, |acc, &x| (acc << 8) | u32::from(x)),
    )
}

/// `hay` starts with `prefix`, ASCII case-insensitively.
pub fn starts_with_ci(hay: &[u8], prefix: &[u8]) -> bool {
    hay.get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

/// The first position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The first position of `needle` in `hay`, ASCII case-insensitively.
pub fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// Lines of a text protocol, split on `\n` with a trailing `\r` removed.
/// The last element is the unterminated tail (possibly empty).
pub fn lines(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    buf.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// Leading and trailing ASCII spaces and tabs removed.
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A decimal number of at most `max_digits` digits at the start of `s`,
/// and the bytes after it.
pub fn parse_dec(s: &[u8], max_digits: usize) -> Option<(u64, &[u8])> {
    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || n > max_digits {
        return None;
    }
    let v = s
        .get(..n)?
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    Some((v, s.get(n..)?))
}

/// The host part of `host[:port]`, `[v6]:port` or a bare name, for
/// hostname-like fields (HTTP Host, SIP URIs, Minecraft addresses).
pub fn strip_port(host: &[u8]) -> &[u8] {
    if let Some(rest) = host.strip_prefix(b"[") {
        return match rest.iter().position(|&b| b == b']') {
            Some(end) => rest.get(..end).unwrap_or(rest),
            None => rest,
        };
    }
    let colons = host.iter().filter(|&&b| b == b':').count();
    if colons == 1 {
        host.split(|&b| b == b':').next().unwrap_or(host)
    } else {
        host
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    /// Decodes hex, ignoring whitespace (test vectors are written in
    /// blocks).
    pub fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .map(|b| match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => panic!("bad hex digit {b}"),
            })
            .collect();
        assert!(digits.len().is_multiple_of(2), "odd hex length");
        digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
    }

    /// Runs `f` on every proper prefix of `input` and on copies with each
    /// byte replaced by 0x00 and 0xff: none may panic, and the caller's
    /// `check` decides what prefixes may return.
    pub fn every_prefix<F: FnMut(&[u8])>(input: &[u8], mut f: F) {
        for n in 0..input.len() {
            f(&input[..n]);
        }
        let mut copy = input.to_vec();
        for i in 0..copy.len() {
            let orig = copy[i];
            for v in [0x00, 0xff, orig ^ 0x80] {
                copy[i] = v;
                f(&copy);
            }
            copy[i] = orig;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_stops_at_the_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Some(0x0102));
        assert_eq!(r.u16(), None);
        assert_eq!(r.u8(), Some(3));
        assert_eq!(r.u8(), None);
        assert_eq!(Reader::new(&[5, 1]).vec8(), None);
        assert_eq!(Reader::new(&[0, 2, 9, 9]).vec16(), Some(&[9u8, 9][..]));
    }

    #[test]
    fn varints_decode_all_lengths() {
        // RFC 9000 §A.1 examples.
        assert_eq!(
            Reader::new(&testutil::hex("c2197c5eff14e88c")).varint(),
            Some(151_288_809_941_952_652)
        );
        assert_eq!(
            Reader::new(&testutil::hex("9d7f3e7d")).varint(),
            Some(494_878_333)
        );
        assert_eq!(Reader::new(&testutil::hex("7bbd")).varint(), Some(15_293));
        assert_eq!(Reader::new(&testutil::hex("25")).varint(), Some(37));
        assert_eq!(Reader::new(&testutil::hex("9d7f3e")).varint(), None);
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port(b"example.com:8080"), b"example.com");
        assert_eq!(strip_port(b"example.com"), b"example.com");
        assert_eq!(strip_port(b"[::1]:80"), b"::1");
        assert_eq!(strip_port(b"[::1"), b"::1");
        assert_eq!(strip_port(b"fe80::1"), b"fe80::1");
    }

    #[test]
    fn decimal_parsing_is_bounded() {
        assert_eq!(parse_dec(b"227 x", 3), Some((227, &b" x"[..])));
        assert_eq!(parse_dec(b"12345", 3), None);
        assert_eq!(parse_dec(b"x", 3), None);
    }
}
