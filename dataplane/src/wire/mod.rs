//! Zero-copy wire-format views for the packets the data plane parses and
//! builds.
//!
//! Every protocol follows the smoltcp idiom (see `/work/shared/STYLE.md`):
//!
//! * a view `Packet<T: AsRef<[u8]>>` (Ethernet: `Frame<T>`) over a caller-owned
//!   buffer, with field offsets kept in a private `field` module;
//! * `new_checked` validates every length once. After it succeeds no accessor
//!   and no setter can panic, for any byte content, even if a setter later
//!   writes a length field that no longer matches the buffer: variable-length
//!   regions (`payload`, `options`) are clamped to the buffer instead of being
//!   sliced blindly. (`new_unchecked` makes no such promise.)
//! * a `Repr` with owned, validated values: `Repr::parse` reads a checked view,
//!   `Repr::emit` writes one. `emit` never panics either: it returns
//!   [`WireError::Truncated`] when the buffer is too short and
//!   [`WireError::Malformed`] when a value does not fit its field.
//!   `Repr::parse` checks structure only; checksums are verified separately
//!   with `verify_checksum` so that NIC checksum offload can skip the work.
//! * protocol numbers are enums with an `Unknown` variant and `From` both ways.
//!
//! Nothing here allocates, and nothing uses `unsafe`.
#![forbid(unsafe_code)]

use core::fmt;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

/// A byte range of a fixed-position header field.
pub(crate) type Field = core::ops::Range<usize>;

/// Why a buffer could not be viewed, parsed or emitted as a protocol header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// The buffer is shorter than the header or than a length field claims.
    Truncated,
    /// A field holds a value the protocol (or this implementation) rejects.
    Malformed,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("truncated packet"),
            WireError::Malformed => f.write_str("malformed packet"),
        }
    }
}

impl std::error::Error for WireError {}

/// IP protocol numbers (IPv4 "Protocol", IPv6 "Next Header"), from the IANA
/// "Assigned Internet Protocol Numbers" registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// IPv6 Hop-by-Hop Options (0).
    HopByHop,
    /// ICMP for IPv4 (1).
    Icmp,
    /// IGMP (2).
    Igmp,
    /// IPv4 encapsulated in IP (4).
    IpIp,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// IPv6 encapsulated in IP (41).
    Ipv6,
    /// IPv6 Routing header (43).
    Ipv6Route,
    /// IPv6 Fragment header (44).
    Ipv6Frag,
    /// Generic Routing Encapsulation (47).
    Gre,
    /// IPsec Encapsulating Security Payload (50).
    Esp,
    /// IPsec Authentication Header (51).
    Ah,
    /// ICMP for IPv6 (58).
    Icmpv6,
    /// IPv6 No Next Header (59).
    Ipv6NoNxt,
    /// IPv6 Destination Options (60).
    Ipv6Opts,
    /// Any other protocol number.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(value: u8) -> Self {
        match value {
            0 => IpProtocol::HopByHop,
            1 => IpProtocol::Icmp,
            2 => IpProtocol::Igmp,
            4 => IpProtocol::IpIp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            41 => IpProtocol::Ipv6,
            43 => IpProtocol::Ipv6Route,
            44 => IpProtocol::Ipv6Frag,
            47 => IpProtocol::Gre,
            50 => IpProtocol::Esp,
            51 => IpProtocol::Ah,
            58 => IpProtocol::Icmpv6,
            59 => IpProtocol::Ipv6NoNxt,
            60 => IpProtocol::Ipv6Opts,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(value: IpProtocol) -> Self {
        match value {
            IpProtocol::HopByHop => 0,
            IpProtocol::Icmp => 1,
            IpProtocol::Igmp => 2,
            IpProtocol::IpIp => 4,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Ipv6 => 41,
            IpProtocol::Ipv6Route => 43,
            IpProtocol::Ipv6Frag => 44,
            IpProtocol::Gre => 47,
            IpProtocol::Esp => 50,
            IpProtocol::Ah => 51,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Ipv6NoNxt => 59,
            IpProtocol::Ipv6Opts => 60,
            IpProtocol::Unknown(other) => other,
        }
    }
}

/// `start..end` shrunk so that it always lies inside a buffer of `len` bytes
/// (and is never reversed). Used for regions whose bounds come from length
/// fields that a setter may have changed after `new_checked`.
#[inline]
pub(crate) fn clamp(len: usize, start: usize, end: usize) -> Field {
    let end = end.min(len);
    start.min(end)..end
}

/// Reads a big-endian `u16` at `at`; the caller guarantees `at + 2 <= len`
/// through the validated minimum header length.
#[inline]
pub(crate) fn read_u16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

/// Reads a big-endian `u32` at `at`; see [`read_u16`].
#[inline]
pub(crate) fn read_u32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

#[inline]
pub(crate) fn write_u16(data: &mut [u8], at: usize, value: u16) {
    data[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[inline]
pub(crate) fn write_u32(data: &mut [u8], at: usize, value: u32) {
    data[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Shared test fixtures: real packets built by hand (checksums computed
/// independently of this crate) and a tiny deterministic PRNG.
#[cfg(test)]
pub(crate) mod testdata {
    /// xorshift64*: deterministic, dependency-free randomness for tests.
    pub struct XorShift(pub u64);

    impl XorShift {
        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        pub fn next_u32(&mut self) -> u32 {
            (self.next_u64() >> 32) as u32
        }

        pub fn next_u16(&mut self) -> u16 {
            (self.next_u64() >> 48) as u16
        }

        pub fn next_u8(&mut self) -> u8 {
            (self.next_u64() >> 56) as u8
        }

        pub fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }

        pub fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.next_u8();
            }
        }
    }

    /// Number of random buffers each fuzz-style test feeds to `new_checked`.
    pub const FUZZ_ITERATIONS: usize = 20_000;

    /// A random buffer of length `0..128`.
    pub fn random_buffer(rng: &mut XorShift, buf: &mut [u8; 128]) -> usize {
        let len = rng.below(128);
        rng.fill(&mut buf[..len]);
        len
    }

    // The fixtures below were generated by a small independent Python
    // script (struct.pack + an RFC 1071 checksum), not by this crate.

    /// Ethernet + IPv4 (10.0.2.15 -> 8.8.8.8, TTL 64, DF, id 0x1c46) + ICMP
    /// echo request (id 0x0b2f, seq 1, 48 bytes of `ping`-style data: an
    /// 8-byte timestamp and the 0x10.. pattern).
    pub const PING_REQUEST: [u8; 90] = [
        0x52, 0x54, 0x00, 0x12, 0x35, 0x02, 0x08, 0x00, 0x27, 0xa1, 0xb2, 0xc3, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x4c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x02, 0x4d, 0x0a, 0x00, 0x02, 0x0f,
        0x08, 0x08, 0x08, 0x08, 0x08, 0x00, 0xea, 0xfe, 0x0b, 0x2f, 0x00, 0x01, 0x65, 0xf1, 0xa2,
        0xb3, 0x00, 0x0c, 0x3a, 0x4d, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
        0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
        0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ];

    /// Ethernet + IPv4 (192.168.1.100 -> 192.168.1.1, id 0x3f2a, no DF) +
    /// UDP 53412 -> 53 carrying a DNS query for `example.com` A.
    pub const DNS_QUERY: [u8; 71] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x39, 0x3f, 0x2a, 0x00, 0x00, 0x40, 0x11, 0xb7, 0xd4, 0xc0, 0xa8, 0x01, 0x64,
        0xc0, 0xa8, 0x01, 0x01, 0xd0, 0xa4, 0x00, 0x35, 0x00, 0x25, 0x2f, 0xd9, 0xab, 0xcd, 0x01,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70,
        0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    /// Ethernet + IPv4 (10.0.0.1 -> 93.184.216.34, id 0x5d1e, DF) + TCP SYN
    /// 50000 -> 443, seq 0x9a3c51e7, window 64240, options MSS 1460,
    /// SACK-permitted, timestamps (0x0a1b2c3d, 0), NOP, window scale 7.
    pub const TCP_SYN: [u8; 74] = [
        0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x50, 0xa4, 0xbb, 0x6d, 0x01, 0x02, 0x03, 0x08, 0x00, 0x45,
        0x00, 0x00, 0x3c, 0x5d, 0x1e, 0x40, 0x00, 0x40, 0x06, 0x9d, 0xc2, 0x0a, 0x00, 0x00, 0x01,
        0x5d, 0xb8, 0xd8, 0x22, 0xc3, 0x50, 0x01, 0xbb, 0x9a, 0x3c, 0x51, 0xe7, 0x00, 0x00, 0x00,
        0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x25, 0xac, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02,
        0x08, 0x0a, 0x0a, 0x1b, 0x2c, 0x3d, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    /// Broadcast Ethernet + ARP request "who has 192.168.1.1, tell
    /// 192.168.1.100", padded to the 60-byte Ethernet minimum.
    pub const ARP_REQUEST: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x08, 0x00, 0x27, 0xa1, 0xb2, 0xc3, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x08, 0x00, 0x27, 0xa1, 0xb2, 0xc3, 0xc0, 0xa8,
        0x01, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    /// Ethernet + IPv6 (fe80::a00:27ff:fea1:b2c3 -> ff02::1:ff00:1, hop
    /// limit 255) + ICMPv6 neighbour solicitation for fe80::1 with a source
    /// link-layer address option.
    pub const NEIGHBOR_SOLICIT: [u8; 86] = [
        0x33, 0x33, 0xff, 0x00, 0x00, 0x01, 0x08, 0x00, 0x27, 0xa1, 0xb2, 0xc3, 0x86, 0xdd, 0x60,
        0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x0a, 0x00, 0x27, 0xff, 0xfe, 0xa1, 0xb2, 0xc3, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0x01, 0x87, 0x00, 0xb6, 0xd1, 0x00, 0x00,
        0x00, 0x00, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x01, 0x01, 0x08, 0x00, 0x27, 0xa1, 0xb2, 0xc3,
    ];

    /// Bare IPv6 (2001:db8::1 -> 2001:db8:0:1::2, traffic class 0xb8, flow
    /// label 0x12345, hop limit 64) + UDP 4789 -> 51820 carrying `patronus`.
    pub const UDP6: [u8; 56] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x10, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x12, 0xb5, 0xca, 0x6c, 0x00,
        0x10, 0xfd, 0x80, 0x70, 0x61, 0x74, 0x72, 0x6f, 0x6e, 0x75, 0x73,
    ];

    /// Bare ICMPv6 echo request (id 0x1234, seq 7, data `abcdefgh`) sent
    /// from 2001:db8::1 to 2001:db8::2.
    pub const ECHO6: [u8; 16] = [
        0x80, 0x00, 0x80, 0x6f, 0x12, 0x34, 0x00, 0x07, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
        0x68,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_protocol_round_trips_every_number() {
        for n in 0..=u8::MAX {
            assert_eq!(u8::from(IpProtocol::from(n)), n);
        }
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
        assert_eq!(IpProtocol::from(17), IpProtocol::Udp);
        assert_eq!(IpProtocol::from(58), IpProtocol::Icmpv6);
        assert_eq!(IpProtocol::from(253), IpProtocol::Unknown(253));
    }

    #[test]
    fn wire_error_displays_without_allocating_state() {
        assert_eq!(WireError::Truncated.to_string(), "truncated packet");
        assert_eq!(WireError::Malformed.to_string(), "malformed packet");
        let e: &dyn std::error::Error = &WireError::Malformed;
        assert!(e.source().is_none());
    }

    #[test]
    fn clamp_never_leaves_the_buffer_or_reverses() {
        assert_eq!(clamp(10, 2, 8), 2..8);
        assert_eq!(clamp(10, 2, 20), 2..10);
        assert_eq!(clamp(10, 12, 20), 10..10);
        assert_eq!(clamp(10, 8, 4), 4..4);
        assert_eq!(clamp(0, 0, 0), 0..0);
    }
}

/// Whole frames taken apart layer by layer and rebuilt into a zeroed buffer
/// from the `Repr`s alone (plus the application payload).
#[cfg(test)]
mod frame_tests {
    use super::testdata::{DNS_QUERY, NEIGHBOR_SOLICIT, PING_REQUEST, TCP_SYN};
    use super::*;

    /// Rebuilds an Ethernet/IPv4 frame; `l4` emits the transport layer
    /// into the IP payload, given the IP repr.
    fn rebuild_v4(original: &[u8], out: &mut [u8], l4: impl Fn(&ipv4::Repr, &[u8], &mut [u8])) {
        let frame = ethernet::Frame::new_checked(original).unwrap();
        let eth = ethernet::Repr::parse(&frame).unwrap();
        let packet = ipv4::Packet::new_checked(frame.payload()).unwrap();
        assert!(packet.verify_checksum());
        let ip = ipv4::Repr::parse(&packet).unwrap();

        let mut out_frame = ethernet::Frame::new_unchecked(&mut *out);
        eth.emit(&mut out_frame).unwrap();
        let mut out_ip = ipv4::Packet::new_unchecked(out_frame.payload_mut());
        ip.emit(&mut out_ip).unwrap();
        l4(&ip, packet.payload(), out_ip.payload_mut());
    }

    #[test]
    fn dns_query_frame_is_rebuilt_byte_for_byte() {
        let mut out = [0u8; 71];
        rebuild_v4(&DNS_QUERY, &mut out, |ip, l4, out| {
            let udp_in = udp::Packet::new_checked(l4).unwrap();
            assert!(udp_in.verify_checksum(ip.src_addr, ip.dst_addr));
            let repr = udp::Repr::parse(&udp_in).unwrap();
            // A zeroed buffer has Length 0, so the view's payload is empty
            // until emit writes Length: place the payload by offset.
            out[udp::HEADER_LEN..].copy_from_slice(udp_in.payload());
            let mut udp_out = udp::Packet::new_unchecked(out);
            repr.emit(&mut udp_out, ip.src_addr, ip.dst_addr).unwrap();
        });
        assert_eq!(out, DNS_QUERY);
    }

    #[test]
    fn tcp_syn_frame_is_rebuilt_byte_for_byte() {
        let mut out = [0u8; 74];
        rebuild_v4(&TCP_SYN, &mut out, |ip, l4, out| {
            let tcp_in = tcp::Packet::new_checked(l4).unwrap();
            assert!(tcp_in.verify_checksum(ip.src_addr, ip.dst_addr));
            let repr = tcp::Repr::parse(&tcp_in).unwrap();
            repr.emit(
                &mut tcp::Packet::new_unchecked(out),
                ip.src_addr,
                ip.dst_addr,
            )
            .unwrap();
        });
        assert_eq!(out, TCP_SYN);
    }

    #[test]
    fn ping_frame_is_rebuilt_byte_for_byte() {
        let mut out = [0u8; 90];
        rebuild_v4(&PING_REQUEST, &mut out, |_, l4, out| {
            let icmp_in = icmpv4::Packet::new_checked(l4).unwrap();
            assert!(icmp_in.verify_checksum());
            let repr = icmpv4::Repr::parse(&icmp_in).unwrap();
            let mut icmp_out = icmpv4::Packet::new_unchecked(out);
            icmp_out.payload_mut().copy_from_slice(icmp_in.payload());
            repr.emit(&mut icmp_out).unwrap();
        });
        assert_eq!(out, PING_REQUEST);
    }

    #[test]
    fn neighbor_solicit_frame_is_rebuilt_byte_for_byte() {
        let frame = ethernet::Frame::new_checked(&NEIGHBOR_SOLICIT[..]).unwrap();
        assert_eq!(frame.payload_ethertype(), ethernet::EtherType::Ipv6);
        let eth = ethernet::Repr::parse(&frame).unwrap();
        let packet = ipv6::Packet::new_checked(frame.payload()).unwrap();
        let ip = ipv6::Repr::parse(&packet).unwrap();
        let icmp_in = icmpv6::Packet::new_checked(packet.payload()).unwrap();
        assert!(icmp_in.verify_checksum(ip.src_addr, ip.dst_addr));
        let icmp = icmpv6::Repr::parse(&icmp_in).unwrap();

        let mut out = [0u8; 86];
        let mut out_frame = ethernet::Frame::new_unchecked(&mut out[..]);
        eth.emit(&mut out_frame).unwrap();
        let mut out_ip = ipv6::Packet::new_unchecked(out_frame.payload_mut());
        ip.emit(&mut out_ip).unwrap();
        let mut out_icmp = icmpv6::Packet::new_unchecked(out_ip.payload_mut());
        out_icmp.payload_mut().copy_from_slice(icmp_in.payload());
        icmp.emit(&mut out_icmp, ip.src_addr, ip.dst_addr).unwrap();
        assert_eq!(out, NEIGHBOR_SOLICIT);
    }
}
