//! MongoDB wire protocol (MongoDB docs, "MongoDB Wire Protocol"): a
//! 16-byte little-endian header (messageLength, requestID, responseTo,
//! opCode) with a known opCode; requests have responseTo 0.

use super::{le32, Found};
use crate::dpi::types::Protocol;

const OP_REPLY: u32 = 1;
const OPCODES: [u32; 11] = [
    1, 2001, 2002, 2004, 2005, 2006, 2007, 2010, 2011, 2012, 2013,
];

pub fn message(buf: &[u8]) -> Option<Found<'static>> {
    let len = le32(buf, 0)? as usize;
    let _id = le32(buf, 4)?;
    let response_to = le32(buf, 8)?;
    let op = le32(buf, 12)?;
    let ok = OPCODES.contains(&op)
        && (21..=48 * 1024 * 1024).contains(&len)
        && len >= buf.len()
        && (len == buf.len() || buf.len() >= 1024)
        && (op == OP_REPLY || op == 2013 || response_to == 0);
    ok.then_some(Found::proto(Protocol::MongoDb))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An OP_MSG "hello" as mongosh sends first.
    fn hello() -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&1u32.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&2013u32.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.push(0);
        m.extend_from_slice(&[
            0x13, 0, 0, 0, 0x10, b'h', b'e', b'l', b'l', b'o', 0, 1, 0, 0, 0, 0,
        ]);
        m.extend_from_slice(&[0, 0, 0]);
        let n = m.len() as u32;
        m[..4].copy_from_slice(&n.to_le_bytes());
        m
    }

    #[test]
    fn op_msg_is_mongodb() {
        assert!(message(&hello()).is_some());
    }

    #[test]
    fn truncated_or_unknown_is_not() {
        let h = hello();
        for n in 0..h.len() {
            assert!(message(&h[..n]).is_none(), "prefix {n}");
        }
        let mut bad = h;
        bad[12] = 7;
        assert!(message(&bad).is_none());
    }
}
