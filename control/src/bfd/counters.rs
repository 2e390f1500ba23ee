//! Why received packets are dropped, and the per-session counter table
//! (one slot per reason, as the data plane's drop counters are kept).
//!
//! The reasons follow the discard rules of RFC 5880 §6.8.6 and §6.7, and
//! the transport checks of RFC 5881 §4–5 / RFC 5883 §5.

use super::packet::ParseError;

/// The reason a received packet was discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RxDrop {
    /// Shorter than the 24-byte mandatory section.
    Truncated,
    /// Length field below the minimum or beyond the UDP payload.
    BadLength,
    /// Version other than 1.
    BadVersion,
    /// Detect Mult of zero.
    ZeroDetectMult,
    /// Multipoint bit set.
    Multipoint,
    /// My Discriminator of zero.
    ZeroMyDiscriminator,
    /// Your Discriminator of zero while the sender claims Init or Up.
    ZeroYourDiscriminator,
    /// Your Discriminator names no session of ours.
    UnknownYourDiscriminator,
    /// Your Discriminator of zero and no session for the addresses.
    NoSession,
    /// The source address is not the session's peer.
    AddressMismatch,
    /// Single-hop TTL other than 255, or multihop TTL below the minimum.
    BadTtl,
    /// Arrived on the other kind's UDP port (3784 vs 4784) or neither.
    WrongPort,
    /// A bit set but the session has no authentication.
    AuthUnexpected,
    /// A bit clear but the session requires authentication.
    AuthMissing,
    /// Simple password, keyed MD5 or an unassigned type.
    AuthUnsupported,
    /// Auth Len inconsistent with the type or the packet.
    AuthBadLength,
    /// Keyed vs meticulous keyed SHA1 differs from the configuration.
    AuthTypeMismatch,
    /// Auth Key ID is not the configured one.
    AuthKeyId,
    /// Sequence number outside the replay window.
    AuthSequence,
    /// Hash does not match.
    AuthDigest,
    /// The local session is AdminDown, which ignores its peer (§6.8.6).
    AdminDown,
}

impl RxDrop {
    pub const COUNT: usize = 21;

    pub const ALL: [RxDrop; RxDrop::COUNT] = [
        RxDrop::Truncated,
        RxDrop::BadLength,
        RxDrop::BadVersion,
        RxDrop::ZeroDetectMult,
        RxDrop::Multipoint,
        RxDrop::ZeroMyDiscriminator,
        RxDrop::ZeroYourDiscriminator,
        RxDrop::UnknownYourDiscriminator,
        RxDrop::NoSession,
        RxDrop::AddressMismatch,
        RxDrop::BadTtl,
        RxDrop::WrongPort,
        RxDrop::AuthUnexpected,
        RxDrop::AuthMissing,
        RxDrop::AuthUnsupported,
        RxDrop::AuthBadLength,
        RxDrop::AuthTypeMismatch,
        RxDrop::AuthKeyId,
        RxDrop::AuthSequence,
        RxDrop::AuthDigest,
        RxDrop::AdminDown,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable name for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RxDrop::Truncated => "truncated",
            RxDrop::BadLength => "bad_length",
            RxDrop::BadVersion => "bad_version",
            RxDrop::ZeroDetectMult => "zero_detect_mult",
            RxDrop::Multipoint => "multipoint",
            RxDrop::ZeroMyDiscriminator => "zero_my_discriminator",
            RxDrop::ZeroYourDiscriminator => "zero_your_discriminator",
            RxDrop::UnknownYourDiscriminator => "unknown_your_discriminator",
            RxDrop::NoSession => "no_session",
            RxDrop::AddressMismatch => "address_mismatch",
            RxDrop::BadTtl => "bad_ttl",
            RxDrop::WrongPort => "wrong_port",
            RxDrop::AuthUnexpected => "auth_unexpected",
            RxDrop::AuthMissing => "auth_missing",
            RxDrop::AuthUnsupported => "auth_unsupported",
            RxDrop::AuthBadLength => "auth_bad_length",
            RxDrop::AuthTypeMismatch => "auth_type_mismatch",
            RxDrop::AuthKeyId => "auth_key_id",
            RxDrop::AuthSequence => "auth_sequence",
            RxDrop::AuthDigest => "auth_digest",
            RxDrop::AdminDown => "admin_down",
        }
    }
}

impl From<ParseError> for RxDrop {
    fn from(e: ParseError) -> RxDrop {
        match e {
            ParseError::Truncated => RxDrop::Truncated,
            ParseError::BadLength => RxDrop::BadLength,
            ParseError::BadVersion => RxDrop::BadVersion,
            ParseError::ZeroDetectMult => RxDrop::ZeroDetectMult,
            ParseError::Multipoint => RxDrop::Multipoint,
            ParseError::ZeroMyDiscriminator => RxDrop::ZeroMyDiscriminator,
            ParseError::ZeroYourDiscriminator => RxDrop::ZeroYourDiscriminator,
            ParseError::BadAuthLength => RxDrop::AuthBadLength,
            ParseError::UnsupportedAuthType(_) => RxDrop::AuthUnsupported,
        }
    }
}

/// Drops by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    by_reason: [u64; RxDrop::COUNT],
}

impl DropCounters {
    pub fn count(&mut self, reason: RxDrop) {
        self.by_reason[reason.index()] += 1;
    }

    pub fn get(&self, reason: RxDrop) -> u64 {
        self.by_reason[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.by_reason.iter().sum()
    }

    /// Non-zero counters with their names.
    pub fn iter(&self) -> impl Iterator<Item = (RxDrop, u64)> + '_ {
        RxDrop::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n != 0)
    }
}

/// One session's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets accepted (passed every §6.8.6 check).
    pub rx_ok: u64,
    pub rx_drops: DropCounters,
    /// Packets emitted, Finals included.
    pub tx: u64,
    /// Packets emitted with the F bit (answers to a Poll).
    pub tx_final: u64,
    /// Poll sequences we started that ended with a Final.
    pub polls_completed: u64,
    pub state_changes: u64,
    /// Init/Up sessions taken Down by the detection timer (diag 1).
    pub detection_expiries: u64,
    /// Events lost because the caller did not drain `poll_event`.
    pub events_lost: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_at_its_index_with_unique_names() {
        for (i, r) in RxDrop::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let mut names: Vec<&str> = RxDrop::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RxDrop::COUNT);
    }

    #[test]
    fn drop_counters_count_per_reason() {
        let mut d = DropCounters::default();
        d.count(RxDrop::BadTtl);
        d.count(RxDrop::BadTtl);
        d.count(RxDrop::AuthDigest);
        assert_eq!(d.get(RxDrop::BadTtl), 2);
        assert_eq!(d.get(RxDrop::AuthDigest), 1);
        assert_eq!(d.get(RxDrop::BadVersion), 0);
        assert_eq!(d.total(), 3);
        assert_eq!(
            d.iter().collect::<Vec<_>>(),
            vec![(RxDrop::BadTtl, 2), (RxDrop::AuthDigest, 1)]
        );
    }
}
