//! The vocabulary of a DPI decision, shared by the engine, the flow table's
//! per-flow value, the policy hook and the offline classifier's JSON.

/// The protocol a flow speaks. Names (see [`Protocol::name`]) are the ones
/// `patronus dpi` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Protocol {
    #[default]
    Unknown = 0,
    Http,
    Tls,
    Quic,
    Dns,
    Ssh,
    Rdp,
    Sip,
    Rtp,
    Rtcp,
    Stun,
    Dtls,
    MySql,
    PostgreSql,
    Redis,
    MongoDb,
    Smb,
    Ftp,
    FtpData,
    Rsync,
    Ntp,
    BitTorrent,
    /// A game's own protocol (Minecraft, Source engine queries, ...);
    /// the application names the game.
    Game,
}

impl Protocol {
    pub const ALL: [Protocol; 23] = [
        Protocol::Unknown,
        Protocol::Http,
        Protocol::Tls,
        Protocol::Quic,
        Protocol::Dns,
        Protocol::Ssh,
        Protocol::Rdp,
        Protocol::Sip,
        Protocol::Rtp,
        Protocol::Rtcp,
        Protocol::Stun,
        Protocol::Dtls,
        Protocol::MySql,
        Protocol::PostgreSql,
        Protocol::Redis,
        Protocol::MongoDb,
        Protocol::Smb,
        Protocol::Ftp,
        Protocol::FtpData,
        Protocol::Rsync,
        Protocol::Ntp,
        Protocol::BitTorrent,
        Protocol::Game,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Unknown => "Unknown",
            Protocol::Http => "HTTP",
            Protocol::Tls => "TLS",
            Protocol::Quic => "QUIC",
            Protocol::Dns => "DNS",
            Protocol::Ssh => "SSH",
            Protocol::Rdp => "RDP",
            Protocol::Sip => "SIP",
            Protocol::Rtp => "RTP",
            Protocol::Rtcp => "RTCP",
            Protocol::Stun => "STUN",
            Protocol::Dtls => "DTLS",
            Protocol::MySql => "MySQL",
            Protocol::PostgreSql => "PostgreSQL",
            Protocol::Redis => "Redis",
            Protocol::MongoDb => "MongoDB",
            Protocol::Smb => "SMB",
            Protocol::Ftp => "FTP",
            Protocol::FtpData => "FTP-DATA",
            Protocol::Rsync => "RSYNC",
            Protocol::Ntp => "NTP",
            Protocol::BitTorrent => "BitTorrent",
            Protocol::Game => "Game",
        }
    }

    /// The category of the protocol itself, used when no application rule
    /// names a more specific one.
    pub const fn default_category(self) -> Category {
        match self {
            Protocol::Unknown => Category::Unknown,
            Protocol::Http | Protocol::Tls | Protocol::Quic => Category::Web,
            Protocol::Dns | Protocol::Ntp | Protocol::Stun => Category::Network,
            Protocol::Ssh | Protocol::Rdp => Category::Interactive,
            Protocol::Sip | Protocol::Rtp | Protocol::Rtcp => Category::VoIP,
            // DTLS carries WebRTC media far more often than anything else.
            Protocol::Dtls => Category::VoIP,
            Protocol::MySql | Protocol::PostgreSql | Protocol::Redis | Protocol::MongoDb => {
                Category::Database
            }
            Protocol::Smb
            | Protocol::Ftp
            | Protocol::FtpData
            | Protocol::Rsync
            | Protocol::BitTorrent => Category::FileTransfer,
            Protocol::Game => Category::Gaming,
        }
    }

    pub fn from_u8(v: u8) -> Protocol {
        Protocol::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(Protocol::Unknown)
    }
}

/// What a flow is for: the policy maps categories to QoS classes and path
/// preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Category {
    #[default]
    Unknown = 0,
    Web,
    Video,
    VoIP,
    Gaming,
    FileTransfer,
    Database,
    /// Remote access: SSH, RDP.
    Interactive,
    /// Infrastructure: DNS, NTP, STUN.
    Network,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::Unknown,
        Category::Web,
        Category::Video,
        Category::VoIP,
        Category::Gaming,
        Category::FileTransfer,
        Category::Database,
        Category::Interactive,
        Category::Network,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Category::Unknown => "Unknown",
            Category::Web => "Web",
            Category::Video => "Video",
            Category::VoIP => "VoIP",
            Category::Gaming => "Gaming",
            Category::FileTransfer => "FileTransfer",
            Category::Database => "Database",
            Category::Interactive => "Interactive",
            Category::Network => "Network",
        }
    }

    /// Parses a name as written in the config (case-insensitive).
    pub fn parse(name: &str) -> Option<Category> {
        Category::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    pub fn from_u8(v: u8) -> Category {
        Category::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(Category::Unknown)
    }
}

/// An application, as an index into the engine's application table
/// ([`crate::dpi::apps`]); 0 is "no application known".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AppId(pub u16);

impl AppId {
    pub const NONE: AppId = AppId(0);

    pub const fn is_none(self) -> bool {
        self.0 == 0
    }
}

/// How a decision was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Confidence {
    /// Nothing decided (yet).
    #[default]
    None = 0,
    /// A dissector recognised the protocol in the payload (or the flow was
    /// expected from a control connection: FTP data, SIP media).
    Dpi,
    /// Nothing matched; a guess from the well-known port.
    Port,
}

impl Confidence {
    pub const fn name(self) -> &'static str {
        match self {
            Confidence::None => "none",
            Confidence::Dpi => "dpi",
            Confidence::Port => "port",
        }
    }
}

/// A flow's classification, compact enough to live in the flow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Classification {
    pub protocol: Protocol,
    pub category: Category,
    pub app: AppId,
    pub confidence: Confidence,
    /// Packets of the flow (both directions) it took to decide.
    pub packets: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_u8() {
        for p in Protocol::ALL {
            assert_eq!(Protocol::from_u8(p as u8), p);
        }
        for c in Category::ALL {
            assert_eq!(Category::from_u8(c as u8), c);
            assert_eq!(Category::parse(&c.name().to_lowercase()), Some(c));
        }
        assert_eq!(Protocol::from_u8(200), Protocol::Unknown);
        assert_eq!(Category::parse("nope"), None);
    }

    #[test]
    fn classification_is_small() {
        assert!(std::mem::size_of::<Classification>() <= 8);
    }
}
