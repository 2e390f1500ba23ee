//! Game protocols with real signatures:
//! - Minecraft Java Edition's Handshake packet (wiki.vg "Protocol",
//!   Handshaking: length, id 0, protocol version, server address, port,
//!   next state) and the legacy server-list ping (`FE 01`);
//! - Minecraft Bedrock's RakNet offline messages (the 16-byte
//!   OFFLINE_MESSAGE_DATA_ID magic);
//! - Valve's Source engine server queries (A2S, Valve developer wiki:
//!   `FF FF FF FF` then `T` "Source Engine Query", `U`, `V`, ...);
//! - Quake III connectionless packets (`FF FF FF FF getstatus`, ...).
//!
//! The engine adds a weaker heuristic on well-known game ports (only
//! small datagrams, in both directions), see [`super::ports::game_port`].

use super::{strip_port, Found, Reader};
use crate::dpi::types::Protocol;

pub const MINECRAFT: &str = "Minecraft";
pub const STEAM: &str = "Steam";
pub const QUAKE: &str = "Quake";

const RAKNET_MAGIC: [u8; 16] = [
    0x00, 0xff, 0xff, 0x00, 0xfe, 0xfe, 0xfe, 0xfe, 0xfd, 0xfd, 0xfd, 0xfd, 0x12, 0x34, 0x56, 0x78,
];

/// A Minecraft varint (little-endian base-128, at most 5 bytes).
fn mc_varint(r: &mut Reader<'_>) -> Option<u32> {
    let mut v = 0u32;
    for i in 0..5 {
        let b = r.u8()?;
        v |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Minecraft Java's first packet on a TCP stream; the host is the server
/// address the client typed.
pub fn minecraft(buf: &[u8]) -> Option<Found<'_>> {
    if let [0xfe, 0x01, ..] = buf {
        return Some(Found::with_app(Protocol::Game, MINECRAFT));
    }
    let mut r = Reader::new(buf);
    let len = mc_varint(&mut r)? as usize;
    let start = r.pos();
    if r.u8()? != 0 {
        return None;
    }
    let version = mc_varint(&mut r)?;
    let host_len = mc_varint(&mut r)? as usize;
    if !(1..=255).contains(&host_len) || version == 0 {
        return None;
    }
    let host = r.bytes(host_len)?;
    let _port = r.u16()?;
    let next = mc_varint(&mut r)?;
    if !(1..=3).contains(&next) || r.pos() - start != len {
        return None;
    }
    // Forge appends "\0FML\0" markers to the address.
    let host = host.split(|&b| b == 0).next().unwrap_or(host);
    if !host.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let host = strip_port(host);
    let mut f = Found::with_app(Protocol::Game, MINECRAFT);
    f.host = (!host.is_empty()).then_some(host);
    Some(f)
}

/// Connectionless game datagrams. `game_port` allows the shorter A2S
/// codes, which are otherwise too weak.
pub fn datagram(buf: &[u8], game_port: bool) -> Option<Found<'static>> {
    match buf {
        [0x01 | 0x02, ..] if buf.get(9..25) == Some(&RAKNET_MAGIC) => {
            return Some(Found::with_app(Protocol::Game, MINECRAFT));
        }
        [0x1c, ..] if buf.get(17..33) == Some(&RAKNET_MAGIC) => {
            return Some(Found::with_app(Protocol::Game, MINECRAFT));
        }
        [0x05 | 0x07, ..] if buf.get(1..17) == Some(&RAKNET_MAGIC) => {
            return Some(Found::with_app(Protocol::Game, MINECRAFT));
        }
        _ => {}
    }
    let body = buf.strip_prefix(&[0xff, 0xff, 0xff, 0xff])?;
    if body.starts_with(b"TSource Engine Query\0") {
        return Some(Found::with_app(Protocol::Game, STEAM));
    }
    for q in [
        &b"getstatus"[..],
        b"getinfo",
        b"getchallenge",
        b"statusResponse",
        b"infoResponse",
    ] {
        if body.starts_with(q) {
            return Some(Found::with_app(Protocol::Game, QUAKE));
        }
    }
    let a2s = matches!(
        body.first(),
        Some(b'U' | b'V' | b'W' | b'i' | b'I' | b'A' | b'D' | b'E' | b'j')
    );
    (game_port && a2s && body.len() >= 5).then_some(Found::with_app(Protocol::Game, STEAM))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(host: &str) -> Vec<u8> {
        let mut p = vec![0x00, 0xfd, 0x05]; // id 0, protocol 765
        p.push(host.len() as u8);
        p.extend_from_slice(host.as_bytes());
        p.extend_from_slice(&25565u16.to_be_bytes());
        p.push(1);
        let mut m = vec![p.len() as u8];
        m.extend_from_slice(&p);
        m
    }

    #[test]
    fn minecraft_handshake_names_the_server() {
        let h = handshake("mc.hypixel.net");
        let f = minecraft(&h).unwrap();
        assert_eq!((f.protocol, f.app), (Protocol::Game, Some(MINECRAFT)));
        assert_eq!(f.host, Some(&b"mc.hypixel.net"[..]));
        for n in 0..h.len() {
            assert!(minecraft(&h[..n]).is_none(), "prefix {n}");
        }
        assert!(minecraft(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_none());
    }

    #[test]
    fn a2s_info_is_steam() {
        let q = b"\xff\xff\xff\xffTSource Engine Query\0";
        assert_eq!(datagram(q, false).and_then(|f| f.app), Some(STEAM));
        assert!(datagram(b"\xff\xff\xff\xffU\xff\xff\xff\xff", false).is_none());
        assert!(datagram(b"\xff\xff\xff\xffU\xff\xff\xff\xff", true).is_some());
    }

    #[test]
    fn raknet_ping_is_minecraft() {
        let mut p = vec![0x01];
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&RAKNET_MAGIC);
        p.extend_from_slice(&[0; 8]);
        assert_eq!(datagram(&p, false).and_then(|f| f.app), Some(MINECRAFT));
        assert!(datagram(&p[..20], false).is_none());
    }

    #[test]
    fn quake_status_is_quake() {
        assert_eq!(
            datagram(b"\xff\xff\xff\xffgetstatus\n", false).and_then(|f| f.app),
            Some(QUAKE)
        );
    }
}
