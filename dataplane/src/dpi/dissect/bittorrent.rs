//! BitTorrent: the peer wire handshake (BEP 3: `\x13BitTorrent
//! protocol`), DHT messages over UDP (BEP 5: bencoded dictionaries with
//! `y` = `q`/`r`/`e`) and UDP tracker connect requests (BEP 15).

use super::{find, Found};
use crate::dpi::types::Protocol;

const HANDSHAKE: &[u8] = b"\x13BitTorrent protocol";
const UDP_TRACKER_MAGIC: [u8; 8] = [0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80];

pub fn handshake(buf: &[u8]) -> Option<Found<'static>> {
    buf.starts_with(HANDSHAKE)
        .then_some(Found::proto(Protocol::BitTorrent))
}

pub fn datagram(buf: &[u8]) -> Option<Found<'static>> {
    if buf.len() == 16 && buf.starts_with(&UDP_TRACKER_MAGIC) && buf.get(8..12) == Some(&[0; 4]) {
        return Some(Found::proto(Protocol::BitTorrent));
    }
    let dict = buf.starts_with(b"d1:") && buf.ends_with(b"e") && buf.len() >= 12;
    let y = find(buf, b"1:y1:").and_then(|i| buf.get(i + 5));
    let dht = dict && matches!(y, Some(b'q' | b'r' | b'e'));
    dht.then_some(Found::proto(Protocol::BitTorrent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_handshake_is_bittorrent() {
        let mut h = HANDSHAKE.to_vec();
        h.extend_from_slice(&[0; 48]);
        assert!(handshake(&h).is_some());
        assert!(handshake(&h[..19]).is_none());
    }

    #[test]
    fn dht_ping_and_tracker_connect_are_bittorrent() {
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        assert!(datagram(ping).is_some());
        let mut c = UDP_TRACKER_MAGIC.to_vec();
        c.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3, 4]);
        assert!(datagram(&c).is_some());
    }

    #[test]
    fn others_are_not() {
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        for n in 0..ping.len() {
            assert!(datagram(&ping[..n]).is_none(), "prefix {n}");
        }
        assert!(datagram(b"d1:xd1:y1:ze").is_none());
    }
}
