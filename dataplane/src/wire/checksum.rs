//! The Internet checksum: the 16-bit ones' complement of the ones' complement
//! sum of the data (RFC 1071), pseudo-header sums for the transport
//! checksums (RFC 768, RFC 9293 section 3.1, RFC 8200 section 8.1), and
//! incremental update after a field change (RFC 1624 section 3, eqn. 3).
//!
//! Conventions: [`sum`] and the `pseudo_header_*` functions return a
//! *partial* sum that is not yet complemented. Partial sums are kept at most
//! 17 bits wide, so adding a handful of them in a `u32` cannot overflow.
//! [`fold`] reduces a partial sum to 16 bits, and [`data`] returns the final
//! complemented checksum that goes on the wire. A buffer that includes its
//! own correct checksum field has `data(buf) == 0`.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Folds a 64-bit accumulator into a partial sum below `0x2_0000`, keeping
/// its value modulo `0xffff` (2^16 = 1 and 2^32 = 1 in ones' complement).
#[inline]
fn reduce(mut acc: u64) -> u32 {
    while acc > 0x1_ffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// Ones' complement sum of `data` read as big-endian 16-bit words; an odd
/// trailing byte is padded with a zero byte on the right (RFC 1071 section
/// 4.1). Returns an unfolded, uncomplemented partial sum.
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    // A big-endian 32-bit word hi * 2^16 + lo is congruent to hi + lo
    // modulo 0xffff, so summing 32-bit words is equivalent and halves the
    // loop count. 2^32 words of 2^32 each cannot overflow the u64.
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    reduce(acc)
}

/// Folds the carries of a partial sum into 16 bits (end-around carry). The
/// result is uncomplemented. A non-zero sum never folds to zero.
#[inline]
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Ones' complement sum of several already folded 16-bit partial sums,
/// folded to 16 bits and uncomplemented.
pub fn combine(sums: &[u16]) -> u16 {
    let acc: u64 = sums.iter().map(|&s| u64::from(s)).sum();
    fold(reduce(acc))
}

/// The RFC 1071 checksum of `data`: the complement of its folded sum.
#[inline]
pub fn data(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Partial sum of the IPv4 pseudo-header (RFC 768, RFC 9293 section 3.1):
/// source, destination, zero + protocol, and the upper-layer length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    let acc = u64::from(u32::from_be_bytes(s))
        + u64::from(u32::from_be_bytes(d))
        + u64::from(protocol)
        + u64::from(length);
    reduce(acc)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 section 8.1): source,
/// destination, the 32-bit upper-layer length and the next header value.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u32 {
    let mut acc = u64::from(sum(&src.octets())) + u64::from(sum(&dst.octets()));
    acc += u64::from(length) + u64::from(next_header);
    reduce(acc)
}

/// An address family whose pseudo-header can seed a transport checksum.
///
/// Implemented for [`Ipv4Addr`] and [`Ipv6Addr`], so that the UDP, TCP and
/// ICMPv6 `verify_checksum(src, dst)` / `fill_checksum(src, dst)` methods take
/// either family and cannot mix them.
pub trait PseudoHeader: Copy {
    /// Whether a zero UDP checksum means "no checksum" (true for IPv4 per
    /// RFC 768; false for IPv6 per RFC 8200 section 8.1).
    const UDP_ZERO_CHECKSUM_ALLOWED: bool;

    /// Partial sum of the pseudo-header for `protocol` and `length`.
    fn pseudo_header_sum(src: Self, dst: Self, protocol: u8, length: u32) -> u32;
}

impl PseudoHeader for Ipv4Addr {
    const UDP_ZERO_CHECKSUM_ALLOWED: bool = true;

    fn pseudo_header_sum(src: Self, dst: Self, protocol: u8, length: u32) -> u32 {
        pseudo_header_v4(src, dst, protocol, length)
    }
}

impl PseudoHeader for Ipv6Addr {
    const UDP_ZERO_CHECKSUM_ALLOWED: bool = false;

    fn pseudo_header_sum(src: Self, dst: Self, protocol: u8, length: u32) -> u32 {
        pseudo_header_v6(src, dst, protocol, length)
    }
}

/// Complemented checksum of a pseudo-header partial sum plus `data`.
#[inline]
pub(crate) fn with_pseudo_header(pseudo: u32, data: &[u8]) -> u16 {
    !fold(pseudo + sum(data))
}

/// Incremental update of `old_checksum` after one 16-bit word changed from
/// `old_word` to `new_word`, per RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
///
/// Unlike eqn. 2 this never produces the `0xffff` (negative zero) that a full
/// recomputation cannot produce for a header with a non-zero word, so the
/// result equals a full recomputation.
#[inline]
pub fn update16(old_checksum: u16, old_word: u16, new_word: u16) -> u16 {
    let acc = u32::from(!old_checksum) + u32::from(!old_word) + u32::from(new_word);
    !fold(acc)
}

/// [`update16`] for a 32-bit field (an IPv4 address, a TCP sequence number):
/// both 16-bit halves are replaced in one pass.
#[inline]
pub fn update32(old_checksum: u16, old_word: u32, new_word: u32) -> u16 {
    let acc = u32::from(!old_checksum)
        + u32::from(!(old_word >> 16) as u16)
        + u32::from(!(old_word as u16))
        + (new_word >> 16)
        + (new_word & 0xffff);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::super::testdata::XorShift;
    use super::*;

    /// The worked example of RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7
    /// sum to ddf2 after folding.
    const RFC1071_EXAMPLE: [u8; 8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];

    /// Straightforward reference: 16-bit words, fold at the end.
    fn reference(data: &[u8]) -> u16 {
        let mut s: u64 = 0;
        for (i, b) in data.iter().enumerate() {
            s += if i % 2 == 0 {
                u64::from(*b) << 8
            } else {
                u64::from(*b)
            };
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn rfc1071_example_sums_to_ddf2() {
        assert_eq!(fold(sum(&RFC1071_EXAMPLE)), 0xddf2);
        assert_eq!(data(&RFC1071_EXAMPLE), !0xddf2);
        // The sum is independent of byte order in the sense of RFC 1071
        // section 2(B): swapping every pair swaps the result.
        let swapped = [0x01, 0x00, 0x03, 0xf2, 0xf5, 0xf4, 0xf7, 0xf6];
        assert_eq!(fold(sum(&swapped)), 0xf2dd);
    }

    #[test]
    fn odd_length_pads_the_last_byte_on_the_right() {
        assert_eq!(fold(sum(&[0xab])), 0xab00);
        assert_eq!(fold(sum(&[0x00, 0x01, 0xf2])), 0xf201);
        assert_eq!(fold(sum(&[])), 0);
        assert_eq!(data(&[]), 0xffff);
    }

    #[test]
    fn sum_matches_word_by_word_reference_for_random_data() {
        let mut rng = XorShift(0x1071);
        let mut buf = [0u8; 300];
        for _ in 0..2000 {
            let len = rng.below(buf.len());
            rng.fill(&mut buf[..len]);
            assert_eq!(data(&buf[..len]), reference(&buf[..len]), "len {len}");
        }
        // All-ones data exercises the largest carries.
        let ones = [0xffu8; 299];
        assert_eq!(data(&ones), reference(&ones));
    }

    #[test]
    fn checksum_over_data_with_its_checksum_is_zero() {
        let mut buf = [
            0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x00, 0x00, 0x40, 0x11, 0, 0,
        ];
        let c = data(&buf);
        buf[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(data(&buf), 0);
    }

    #[test]
    fn combine_adds_with_end_around_carry() {
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(combine(&[0x8000, 0x8000]), 0x0001);
        assert_eq!(combine(&[0x1234, 0x4321]), 0x5555);
        assert_eq!(combine(&[]), 0);
        let a = fold(sum(&RFC1071_EXAMPLE[..4]));
        let b = fold(sum(&RFC1071_EXAMPLE[4..]));
        assert_eq!(combine(&[a, b]), 0xddf2);
    }

    #[test]
    fn pseudo_headers_match_explicit_byte_layouts() {
        let s4 = Ipv4Addr::new(192, 168, 1, 100);
        let d4 = Ipv4Addr::new(192, 168, 1, 1);
        let mut v4 = [0u8; 12];
        v4[0..4].copy_from_slice(&s4.octets());
        v4[4..8].copy_from_slice(&d4.octets());
        v4[9] = 17;
        v4[10..12].copy_from_slice(&37u16.to_be_bytes());
        assert_eq!(fold(pseudo_header_v4(s4, d4, 17, 37)), fold(sum(&v4)));

        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "ff02::1:ff00:1".parse().unwrap();
        let mut v6 = [0u8; 40];
        v6[0..16].copy_from_slice(&s6.octets());
        v6[16..32].copy_from_slice(&d6.octets());
        v6[32..36].copy_from_slice(&0x0001_0020u32.to_be_bytes());
        v6[39] = 58;
        assert_eq!(
            fold(pseudo_header_v6(s6, d6, 58, 0x0001_0020)),
            fold(sum(&v6))
        );
    }

    /// Writes `word` at `at`, recomputes the checksum at 10..12 from scratch
    /// and compares with the incremental update.
    fn check_incremental(header: &mut [u8; 20], at: usize, word: u16) {
        header[10..12].fill(0);
        let old_ck = data(header);
        header[10..12].copy_from_slice(&old_ck.to_be_bytes());
        let old_word = u16::from_be_bytes([header[at], header[at + 1]]);
        let inc = update16(old_ck, old_word, word);
        header[at..at + 2].copy_from_slice(&word.to_be_bytes());
        header[10..12].fill(0);
        let full = data(header);
        assert_eq!(inc, full, "at {at} {old_word:04x} -> {word:04x}");
        header[10..12].copy_from_slice(&full.to_be_bytes());
        assert_eq!(data(header), 0);
    }

    #[test]
    fn incremental_update_equals_full_recomputation_for_random_changes() {
        let mut rng = XorShift(0x1624);
        for _ in 0..5000 {
            let mut header = [0u8; 20];
            rng.fill(&mut header);
            header[0] = 0x45; // a real header never sums to zero
                              // Any 16-bit word except the checksum itself (10..12).
            let at = [0, 2, 4, 6, 8, 12, 14, 16, 18][rng.below(9)];
            let word = match rng.below(4) {
                0 => 0x0000,
                1 => 0xffff,
                _ => rng.next_u16(),
            };
            check_incremental(&mut header, at, word);
        }
    }

    #[test]
    fn incremental_update_handles_zero_and_negative_zero_corners() {
        // Build headers whose checksum is exactly 0x0000 before or after the
        // change, with old/new words of 0x0000 and 0xffff.
        let mut rng = XorShift(7);
        let mut seen_zero_after = 0;
        for _ in 0..2000 {
            let mut header = [0u8; 20];
            rng.fill(&mut header);
            header[0] = 0x45;
            header[8] = rng.next_u8().max(2); // TTL
                                              // Choose the ident (4..6) so that the sum of the header without
                                              // its checksum is 0xffff: the checksum field becomes 0x0000.
            header[4..6].fill(0);
            header[10..12].fill(0);
            let ident = !fold(sum(&header));
            header[4..6].copy_from_slice(&ident.to_be_bytes());
            assert_eq!(data(&header), 0x0000);
            let old = u16::from_be_bytes([header[8], header[9]]);
            check_incremental(&mut header, 8, old - 0x0100); // TTL - 1

            // And a change that lands exactly on a zero checksum: the new
            // word is chosen so that the new header sums to 0xffff.
            header[10..12].fill(0);
            let old_word = u16::from_be_bytes([header[12], header[13]]);
            let partial = fold(sum(&header));
            let without = combine(&[partial, !old_word]);
            let target = !without; // without + target == 0xffff
            check_incremental(&mut header, 12, target);
            header[10..12].fill(0);
            if data(&header) == 0 {
                seen_zero_after += 1;
            }
            check_incremental(&mut header, 14, 0xffff);
            check_incremental(&mut header, 14, 0x0000);
        }
        assert!(
            seen_zero_after > 1000,
            "only {seen_zero_after} zero results"
        );
    }

    #[test]
    fn update32_equals_two_update16_and_full_recomputation() {
        let mut rng = XorShift(32);
        for _ in 0..2000 {
            let mut header = [0u8; 20];
            rng.fill(&mut header);
            header[0] = 0x45;
            header[10..12].fill(0);
            let ck = data(&header);
            header[10..12].copy_from_slice(&ck.to_be_bytes());
            let old = u32::from_be_bytes([header[12], header[13], header[14], header[15]]);
            let new = match rng.below(3) {
                0 => 0,
                1 => u32::MAX,
                _ => rng.next_u32(),
            };
            let inc = update32(ck, old, new);
            let twice = update16(
                update16(ck, (old >> 16) as u16, (new >> 16) as u16),
                old as u16,
                new as u16,
            );
            header[12..16].copy_from_slice(&new.to_be_bytes());
            header[10..12].fill(0);
            assert_eq!(inc, data(&header));
            assert_eq!(twice, inc);
        }
    }
}
