//! Well-known ports (IANA service names registry, plus the de facto ports
//! of games and BitTorrent): the fallback guess when no dissector
//! matched, reported with `Confidence::Port`.

use super::game::{MINECRAFT, QUAKE, STEAM};
use crate::dpi::types::Protocol;

const TCP: u8 = 6;
const UDP: u8 = 17;

/// The protocol (and, for games, the application) a port suggests.
pub fn lookup(proto: u8, port: u16) -> Option<(Protocol, Option<&'static str>)> {
    use Protocol as P;
    let p = match (proto, port) {
        (TCP, 80 | 8080 | 8000 | 8008 | 3128) => P::Http,
        (TCP, 443 | 8443 | 853 | 993 | 995 | 465 | 636 | 5061) => P::Tls,
        (UDP, 443) => P::Quic,
        (TCP | UDP, 53 | 5353 | 5355) => P::Dns,
        (TCP, 22) => P::Ssh,
        (TCP | UDP, 3389) => P::Rdp,
        (TCP | UDP, 5060) => P::Sip,
        (TCP | UDP, 3478 | 3479 | 5349) => P::Stun,
        (TCP, 3306) => P::MySql,
        (TCP, 5432) => P::PostgreSql,
        (TCP, 6379) => P::Redis,
        (TCP, 27017..=27019) => P::MongoDb,
        (TCP, 445 | 139) => P::Smb,
        (TCP, 21) => P::Ftp,
        (TCP, 20) => P::FtpData,
        (TCP, 873) => P::Rsync,
        (UDP, 123) => P::Ntp,
        (TCP | UDP, 6881..=6889 | 51413) => P::BitTorrent,
        _ => return game_port(proto, port).map(|app| (P::Game, Some(app))),
    };
    Some((p, None))
}

/// Ports that game servers listen on, and the game.
pub fn game_port(proto: u8, port: u16) -> Option<&'static str> {
    match (proto, port) {
        (TCP, 25565) | (UDP, 19132 | 19133) => Some(MINECRAFT),
        (UDP, 27015..=27030) => Some(STEAM),
        (UDP, 27960..=27963) => Some(QUAKE),
        (UDP, 3074) | (TCP, 3074) => Some("Xbox Live"),
        (UDP, 3658 | 3659) => Some("Electronic Arts"),
        (UDP, 7777..=7788) => Some("Epic Games"),
        (UDP, 9295..=9304) => Some("PlayStation Network"),
        _ => None,
    }
}

/// A guess for a flow between two ports: the lower-numbered known port
/// wins, as servers sit on the low ports and clients on ephemeral ones.
pub fn guess(proto: u8, a: u16, b: u16) -> Option<(Protocol, Option<&'static str>)> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    lookup(proto, lo).or_else(|| lookup(proto, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_ports_are_guessed() {
        assert_eq!(guess(TCP, 51000, 443), Some((Protocol::Tls, None)));
        assert_eq!(guess(UDP, 443, 51000), Some((Protocol::Quic, None)));
        assert_eq!(guess(UDP, 123, 123), Some((Protocol::Ntp, None)));
        assert_eq!(guess(TCP, 40000, 5432), Some((Protocol::PostgreSql, None)));
        assert_eq!(
            guess(UDP, 27015, 50000),
            Some((Protocol::Game, Some(STEAM)))
        );
        assert_eq!(guess(TCP, 40000, 40001), None);
    }

    #[test]
    fn the_lower_known_port_wins() {
        assert_eq!(guess(TCP, 6881, 80), Some((Protocol::Http, None)));
    }
}
