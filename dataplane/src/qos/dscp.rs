//! Marking the outer header: the class → DSCP map and the rewrite of the
//! DSCP field (RFC 2474 section 3) of an IPv4 or IPv6 header in place.
//!
//! The default map follows RFC 4594 section 4: RealTime → EF (RFC 3246),
//! Interactive → AF21 (low-latency data, RFC 2597), Streaming → AF41
//! (multimedia conferencing and streaming), Standard → DF, Bulk → CS1
//! (low-priority data). The ECN bits are never touched (RFC 3168).

use super::class::QosClass;
use crate::wire::checksum;

pub use self::codepoint::*;

/// DSCP code points (RFC 2474 class selectors, RFC 3246 EF, RFC 2597 AF,
/// RFC 5865 VOICE-ADMIT, RFC 8622 LE).
pub mod codepoint {
    pub const DF: u8 = 0;
    pub const LE: u8 = 1;
    pub const CS1: u8 = 8;
    pub const AF11: u8 = 10;
    pub const AF12: u8 = 12;
    pub const AF13: u8 = 14;
    pub const CS2: u8 = 16;
    pub const AF21: u8 = 18;
    pub const AF22: u8 = 20;
    pub const AF23: u8 = 22;
    pub const CS3: u8 = 24;
    pub const AF31: u8 = 26;
    pub const AF32: u8 = 28;
    pub const AF33: u8 = 30;
    pub const CS4: u8 = 32;
    pub const AF41: u8 = 34;
    pub const AF42: u8 = 36;
    pub const AF43: u8 = 38;
    pub const CS5: u8 = 40;
    pub const VOICE_ADMIT: u8 = 44;
    pub const EF: u8 = 46;
    pub const CS6: u8 = 48;
    pub const CS7: u8 = 56;
}

/// The DSCP the outer header carries for each class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DscpMap {
    /// Indexed by `QosClass as usize`; values are 6-bit code points.
    pub dscp: [u8; QosClass::COUNT],
}

impl Default for DscpMap {
    fn default() -> Self {
        DscpMap {
            dscp: [EF, AF21, AF41, DF, CS1],
        }
    }
}

impl DscpMap {
    #[inline(always)]
    pub fn get(&self, class: QosClass) -> u8 {
        self.dscp[class as usize] & 0x3f
    }

    /// Sets a class's code point; None if it does not fit in 6 bits.
    pub fn set(&mut self, class: QosClass, dscp: u8) -> Option<()> {
        (dscp < 64).then(|| self.dscp[class as usize] = dscp)
    }

    /// Marks the IP header at the start of `ip` with `class`'s code point.
    #[inline]
    pub fn mark(&self, ip: &mut [u8], class: QosClass) -> Result<(), MarkError> {
        set_dscp(ip, self.get(class))
    }
}

/// Why a header could not be marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkError {
    /// Shorter than the fixed header.
    Truncated,
    /// Not IPv4 or IPv6.
    NotIp,
}

/// Writes `dscp` (low 6 bits) into the IPv4 or IPv6 header at the start of
/// `ip`, keeping the ECN bits. For IPv4 the header checksum is updated
/// incrementally (RFC 1624 eqn. 3) over the first 16-bit word, so a correct
/// checksum stays correct and a wrong one stays wrong.
#[inline]
pub fn set_dscp(ip: &mut [u8], dscp: u8) -> Result<(), MarkError> {
    let dscp = dscp & 0x3f;
    match ip.first().map(|b| b >> 4) {
        Some(4) => {
            let h = ip.get_mut(..20).ok_or(MarkError::Truncated)?;
            let old_word = u16::from_be_bytes([h[0], h[1]]);
            h[1] = (h[1] & 0x03) | (dscp << 2);
            let new_word = u16::from_be_bytes([h[0], h[1]]);
            if old_word != new_word {
                let old_sum = u16::from_be_bytes([h[10], h[11]]);
                let sum = checksum::update16(old_sum, old_word, new_word);
                h[10..12].copy_from_slice(&sum.to_be_bytes());
            }
            Ok(())
        }
        Some(6) => {
            let h = ip.get_mut(..40).ok_or(MarkError::Truncated)?;
            // Traffic class: low nibble of byte 0, high nibble of byte 1;
            // the DSCP is its top 6 bits.
            h[0] = (h[0] & 0xf0) | (dscp >> 2);
            h[1] = (h[1] & 0x3f) | ((dscp & 0x03) << 6);
            Ok(())
        }
        Some(_) => Err(MarkError::NotIp),
        None => Err(MarkError::Truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qos::rule::FlowFields;

    fn ipv4_header(tos: u8) -> [u8; 20] {
        let mut h = [
            0x45, tos, 0x00, 0x54, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0, 0, 10, 0, 0, 1, 10, 0, 0,
            2,
        ];
        let sum = checksum::data(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h
    }

    #[test]
    fn ipv4_rewrite_keeps_ecn_and_a_valid_checksum() {
        for tos in [0x00u8, 0x01, 0x03, 0xb8, 0xff] {
            for dscp in [DF, CS1, AF21, AF41, EF, 63] {
                let mut h = ipv4_header(tos);
                set_dscp(&mut h, dscp).unwrap();
                assert_eq!(h[1] >> 2, dscp);
                assert_eq!(h[1] & 0x03, tos & 0x03, "ECN kept");
                assert_eq!(checksum::data(&h), 0, "checksum still valid");
                assert_eq!(h, {
                    let mut fresh = ipv4_header((dscp << 2) | (tos & 3));
                    fresh[1] = h[1];
                    fresh
                });
            }
        }
    }

    #[test]
    fn ipv6_rewrite_touches_only_the_dscp_bits() {
        let mut h = [0u8; 40];
        h[0] = 0x6f; // version 6, TC high nibble 0xf
        h[1] = 0xff; // TC low nibble 0xf, flow label 0xf....
        h[2] = 0xab;
        set_dscp(&mut h, AF41).unwrap();
        assert_eq!(h[0] >> 4, 6);
        assert_eq!(h[1] & 0x3f, 0x3f, "ECN and flow label kept");
        assert_eq!(h[2], 0xab);
        assert_eq!(FlowFields::parse(&h).unwrap().dscp, AF41);
    }

    #[test]
    fn short_or_non_ip_headers_are_refused_untouched() {
        let mut short = [0x45u8; 19];
        assert_eq!(set_dscp(&mut short, EF), Err(MarkError::Truncated));
        assert_eq!(short, [0x45; 19]);
        assert_eq!(set_dscp(&mut [0x60; 39], EF), Err(MarkError::Truncated));
        assert_eq!(set_dscp(&mut [0x50; 40], EF), Err(MarkError::NotIp));
        assert_eq!(set_dscp(&mut [], EF), Err(MarkError::Truncated));
    }

    #[test]
    fn default_map_marks_each_class_as_documented() {
        let m = DscpMap::default();
        let expect = [EF, AF21, AF41, DF, CS1];
        for (c, d) in QosClass::ALL.into_iter().zip(expect) {
            let mut h = ipv4_header(0);
            m.mark(&mut h, c).unwrap();
            assert_eq!(h[1] >> 2, d, "{}", c.name());
        }
        assert_eq!(DscpMap::default().set(QosClass::Bulk, 64), None);
    }
}
