//! The five QoS classes and the map that puts a packet in one.
//!
//! A packet's class comes, in this order of precedence, from:
//! 1. the first matching 5-tuple rule ([`MatchRule`]), the administrator's
//!    explicit word;
//! 2. an application override (a DPI application id);
//! 3. the DPI category, once the DPI knows it ([`Category::Unknown`] says
//!    nothing);
//! 4. the packet's own DSCP (RFC 2474), if trusted and mapped;
//! 5. the default class (Standard).
//!
//! The DPI outranks the DSCP because hosts mark what they like (everything
//! EF, sometimes); the DSCP still classifies a flow's first packets, before
//! the DPI has decided. The default DSCP table follows the service classes
//! of RFC 4594 section 4 (EF per RFC 3246, AF per RFC 2597).
//!
//! Everything here is plain data the config fills; [`ClassMap::classify`]
//! allocates nothing and cannot panic.

use super::dscp;
use super::rule::{FlowFields, MatchRule};
use crate::dpi::types::{AppId, Category};

/// A traffic class, in priority order. The value indexes per-class arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum QosClass {
    /// Voice, gaming: strict priority, limited by its ceiling.
    RealTime = 0,
    /// Remote access (SSH, RDP), DNS: small and latency-sensitive.
    Interactive,
    /// Video.
    Streaming,
    /// Web and everything unclassified.
    Standard,
    /// File transfer, backups: scavenger, first to give way.
    Bulk,
}

impl QosClass {
    pub const COUNT: usize = 5;
    pub const ALL: [QosClass; QosClass::COUNT] = [
        QosClass::RealTime,
        QosClass::Interactive,
        QosClass::Streaming,
        QosClass::Standard,
        QosClass::Bulk,
    ];
    /// The class of packets nothing classified.
    pub const DEFAULT: QosClass = QosClass::Standard;

    pub const fn name(self) -> &'static str {
        match self {
            QosClass::RealTime => "realtime",
            QosClass::Interactive => "interactive",
            QosClass::Streaming => "streaming",
            QosClass::Standard => "standard",
            QosClass::Bulk => "bulk",
        }
    }

    /// Parses a name as written in the config (case-insensitive; "real-time"
    /// and "real_time" too).
    pub fn parse(name: &str) -> Option<QosClass> {
        let name = name.trim();
        QosClass::ALL.into_iter().find(|c| {
            c.name().eq_ignore_ascii_case(name)
                || (*c == QosClass::RealTime
                    && (name.eq_ignore_ascii_case("real-time")
                        || name.eq_ignore_ascii_case("real_time")))
        })
    }

    /// The class with this value; None above 4.
    pub fn from_u8(v: u8) -> Option<QosClass> {
        QosClass::ALL.get(usize::from(v)).copied()
    }
}

/// The default category → class table, indexed by `Category as u8`.
pub const DEFAULT_CATEGORY_CLASSES: [Option<QosClass>; Category::ALL.len()] = {
    let mut t = [None; Category::ALL.len()];
    t[Category::Unknown as usize] = None;
    t[Category::Web as usize] = Some(QosClass::Standard);
    t[Category::Video as usize] = Some(QosClass::Streaming);
    t[Category::VoIP as usize] = Some(QosClass::RealTime);
    t[Category::Gaming as usize] = Some(QosClass::RealTime);
    t[Category::FileTransfer as usize] = Some(QosClass::Bulk);
    t[Category::Database as usize] = Some(QosClass::Standard);
    t[Category::Interactive as usize] = Some(QosClass::Interactive);
    // DNS, NTP, STUN: tiny and on the critical path of everything else (a
    // page load waits for its lookups), but kept out of strict priority so
    // a DNS flood or tunnel cannot eat the RealTime ceiling.
    t[Category::Network as usize] = Some(QosClass::Interactive);
    t
};

/// The default DSCP → class table (RFC 4594 section 4 service classes);
/// unlisted code points, DF included, say nothing.
pub const DEFAULT_DSCP_CLASSES: [Option<QosClass>; 64] = {
    use dscp::*;
    let mut t = [None; 64];
    // Telephony and real-time interactive (RFC 4594: EF, VOICE-ADMIT, CS5
    // signalling rides with its media here; CS4 is real-time interactive,
    // i.e. gaming and conferencing).
    t[EF as usize] = Some(QosClass::RealTime);
    t[VOICE_ADMIT as usize] = Some(QosClass::RealTime);
    t[CS5 as usize] = Some(QosClass::RealTime);
    t[CS4 as usize] = Some(QosClass::RealTime);
    // Multimedia conferencing (AF4x) and streaming (AF3x).
    t[AF41 as usize] = Some(QosClass::Streaming);
    t[AF42 as usize] = Some(QosClass::Streaming);
    t[AF43 as usize] = Some(QosClass::Streaming);
    t[AF31 as usize] = Some(QosClass::Streaming);
    t[AF32 as usize] = Some(QosClass::Streaming);
    t[AF33 as usize] = Some(QosClass::Streaming);
    // CS3: call signalling in deployed practice (RFC 4594's broadcast video
    // rarely crosses an SD-WAN). Low-latency data (AF2x), OAM (CS2) and
    // network control (CS6, CS7): important, but not strict priority.
    t[CS3 as usize] = Some(QosClass::Interactive);
    t[AF21 as usize] = Some(QosClass::Interactive);
    t[AF22 as usize] = Some(QosClass::Interactive);
    t[AF23 as usize] = Some(QosClass::Interactive);
    t[CS2 as usize] = Some(QosClass::Interactive);
    t[CS6 as usize] = Some(QosClass::Interactive);
    t[CS7 as usize] = Some(QosClass::Interactive);
    // High-throughput data (AF1x), low-priority data (CS1), LE (RFC 8622).
    t[AF11 as usize] = Some(QosClass::Bulk);
    t[AF12 as usize] = Some(QosClass::Bulk);
    t[AF13 as usize] = Some(QosClass::Bulk);
    t[CS1 as usize] = Some(QosClass::Bulk);
    t[LE as usize] = Some(QosClass::Bulk);
    t
};

/// How packets are classified: plain data the config fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassMap {
    /// Evaluated in order; the first match wins.
    pub rules: Vec<MatchRule>,
    /// Application overrides, kept sorted by id (see [`ClassMap::set_app`]).
    apps: Vec<(AppId, QosClass)>,
    /// Indexed by `Category as u8`; None defers to the DSCP.
    pub categories: [Option<QosClass>; Category::ALL.len()],
    /// Whether the packet's own DSCP is believed at all.
    pub trust_dscp: bool,
    /// Indexed by DSCP; None says nothing.
    pub dscp: [Option<QosClass>; 64],
    pub default: QosClass,
}

impl Default for ClassMap {
    fn default() -> Self {
        ClassMap {
            rules: Vec::new(),
            apps: Vec::new(),
            categories: DEFAULT_CATEGORY_CLASSES,
            trust_dscp: true,
            dscp: DEFAULT_DSCP_CLASSES,
            default: QosClass::DEFAULT,
        }
    }
}

impl ClassMap {
    /// Overrides the class of one application (config time, not per packet).
    pub fn set_app(&mut self, app: AppId, class: QosClass) {
        match self.apps.binary_search_by_key(&app.0, |(a, _)| a.0) {
            Ok(i) => self.apps[i].1 = class,
            Err(i) => self.apps.insert(i, (app, class)),
        }
    }

    pub fn apps(&self) -> &[(AppId, QosClass)] {
        &self.apps
    }

    /// The class of a packet with these fields (None if it could not be
    /// parsed), DPI category and application.
    #[inline]
    pub fn classify(
        &self,
        fields: Option<&FlowFields>,
        category: Category,
        app: AppId,
    ) -> QosClass {
        if let Some(f) = fields {
            if let Some(rule) = self.rules.iter().find(|r| r.matches(f)) {
                return rule.class;
            }
        }
        if !app.is_none() && !self.apps.is_empty() {
            if let Ok(i) = self.apps.binary_search_by_key(&app.0, |(a, _)| a.0) {
                if let Some((_, class)) = self.apps.get(i) {
                    return *class;
                }
            }
        }
        if let Some(Some(class)) = self.categories.get(category as usize) {
            return *class;
        }
        if self.trust_dscp {
            if let Some(Some(class)) =
                fields.and_then(|f| self.dscp.get(usize::from(f.dscp & 0x3f)))
            {
                return *class;
            }
        }
        self.default
    }

    /// [`ClassMap::classify`] on an inner IP packet.
    #[inline]
    pub fn classify_packet(&self, ip: &[u8], category: Category, app: AppId) -> QosClass {
        self.classify(FlowFields::parse(ip).as_ref(), category, app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qos::rule::{IpPrefix, PortRange};

    fn fields(dscp: u8, dst_port: u16) -> FlowFields {
        FlowFields {
            protocol: 17,
            src: "10.0.0.1".parse().unwrap(),
            dst: "192.0.2.1".parse().unwrap(),
            src_port: 1234,
            dst_port,
            dscp,
        }
    }

    #[test]
    fn names_round_trip_and_values_index_arrays() {
        for (i, c) in QosClass::ALL.into_iter().enumerate() {
            assert_eq!(c as usize, i);
            assert_eq!(QosClass::parse(c.name()), Some(c));
            assert_eq!(QosClass::from_u8(i as u8), Some(c));
        }
        assert_eq!(QosClass::parse("Real-Time"), Some(QosClass::RealTime));
        assert_eq!(QosClass::parse("nope"), None);
        assert_eq!(QosClass::from_u8(5), None);
    }

    #[test]
    fn default_categories_map_as_documented() {
        let m = ClassMap::default();
        let f = fields(0, 80);
        let c = |cat| m.classify(Some(&f), cat, AppId::NONE);
        assert_eq!(c(Category::VoIP), QosClass::RealTime);
        assert_eq!(c(Category::Gaming), QosClass::RealTime);
        assert_eq!(c(Category::Interactive), QosClass::Interactive);
        assert_eq!(c(Category::Network), QosClass::Interactive);
        assert_eq!(c(Category::Video), QosClass::Streaming);
        assert_eq!(c(Category::Web), QosClass::Standard);
        assert_eq!(c(Category::Database), QosClass::Standard);
        assert_eq!(c(Category::Unknown), QosClass::Standard);
        assert_eq!(c(Category::FileTransfer), QosClass::Bulk);
    }

    #[test]
    fn dscp_classifies_only_what_the_dpi_has_not() {
        let m = ClassMap::default();
        let ef = fields(dscp::EF, 80);
        assert_eq!(
            m.classify(Some(&ef), Category::Unknown, AppId::NONE),
            QosClass::RealTime
        );
        // A host marking its web traffic EF does not get strict priority.
        assert_eq!(
            m.classify(Some(&ef), Category::Web, AppId::NONE),
            QosClass::Standard
        );
        let af11 = fields(dscp::AF11, 80);
        assert_eq!(
            m.classify(Some(&af11), Category::Unknown, AppId::NONE),
            QosClass::Bulk
        );
        let af41 = fields(dscp::AF41, 80);
        assert_eq!(
            m.classify(Some(&af41), Category::Unknown, AppId::NONE),
            QosClass::Streaming
        );
        let untrusting = ClassMap {
            trust_dscp: false,
            ..ClassMap::default()
        };
        assert_eq!(
            untrusting.classify(Some(&ef), Category::Unknown, AppId::NONE),
            QosClass::Standard
        );
    }

    #[test]
    fn rules_match_first_and_outrank_everything() {
        let mut m = ClassMap::default();
        let mut backup = MatchRule::any(QosClass::Bulk);
        backup.dst = IpPrefix::parse("192.0.2.0/24");
        backup.dst_ports = Some(PortRange {
            first: 9000,
            last: 9100,
        });
        let mut other = MatchRule::any(QosClass::Interactive);
        other.protocol = Some(17);
        m.rules = vec![backup, other];
        m.set_app(AppId(7), QosClass::Streaming);
        let f = fields(dscp::EF, 9050);
        assert_eq!(
            m.classify(Some(&f), Category::VoIP, AppId(7)),
            QosClass::Bulk
        );
        let g = fields(dscp::EF, 80);
        assert_eq!(
            m.classify(Some(&g), Category::VoIP, AppId(7)),
            QosClass::Interactive
        );
        m.rules.clear();
        assert_eq!(
            m.classify(Some(&g), Category::VoIP, AppId(7)),
            QosClass::Streaming
        );
        assert_eq!(
            m.classify(Some(&g), Category::VoIP, AppId(8)),
            QosClass::RealTime
        );
    }

    #[test]
    fn app_overrides_stay_sorted_and_replace() {
        let mut m = ClassMap::default();
        for id in [9u16, 3, 5, 3] {
            m.set_app(AppId(id), QosClass::Bulk);
        }
        m.set_app(AppId(5), QosClass::RealTime);
        let ids: Vec<u16> = m.apps().iter().map(|(a, _)| a.0).collect();
        assert_eq!(ids, [3, 5, 9]);
        assert_eq!(
            m.classify(None, Category::Unknown, AppId(5)),
            QosClass::RealTime
        );
    }

    #[test]
    fn unparseable_packets_get_the_category_or_default_class() {
        let m = ClassMap::default();
        assert_eq!(
            m.classify_packet(&[], Category::Unknown, AppId::NONE),
            QosClass::Standard
        );
        assert_eq!(
            m.classify_packet(&[0x45; 3], Category::Video, AppId::NONE),
            QosClass::Streaming
        );
    }
}
