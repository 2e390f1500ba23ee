//! Capture files for the offline classifier (`patronus dpi FILE`) and the
//! DPI benchmark: a whole pcap or pcapng file, already in memory, split
//! into records, and a record's link layer parsed down to the engine's
//! [`PacketView`].
//!
//! Formats: classic pcap (microsecond and nanosecond magic, either byte
//! order, and the "modified" Kuznetzov variant) as described in
//! draft-ietf-opsawg-pcap, and pcapng (draft-ietf-opsawg-pcapng): sections
//! of either byte order, several interfaces with their own link types and
//! `if_tsresol`/`if_tsoffset`, Enhanced, Simple and obsolete Packet Blocks.
//! Link types: Ethernet (with up to two 802.1Q/802.1ad tags), Linux cooked
//! capture v1 and v2 (`tcpdump -i any`), raw IP, BSD loopback.
//!
//! Pure and panic-free: no I/O, no allocation, every read bounds-checked.
//! A damaged record is reported as an `Err` item and the iterator moves on
//! where the format lets it resync (pcapng block lengths), or stops where
//! it cannot (a classic pcap record header that lies about its length).

#![forbid(unsafe_code)]

use super::engine::{PacketView, TcpMeta};
use super::key::FlowKey;
use crate::wire::ethernet::{EtherType, Frame};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A record longer than this is treated as damage, not data (libpcap's
/// own limit for the largest snapshot length is 256 KiB).
pub const MAX_RECORD_LEN: usize = 256 * 1024;

/// The link-layer header type of a record (the tcpdump.org LINKTYPE_
/// registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// BSD loopback: a 4-byte address family (LINKTYPE_NULL 0, LOOP 108).
    Null,
    /// Ethernet II (1).
    Ethernet,
    /// Raw IPv4 or IPv6, told apart by the version nibble (101, and the
    /// DLT_RAW values 12 and 14 some writers store as is).
    Raw,
    /// Linux cooked capture v1 (113).
    LinuxSll,
    /// Linux cooked capture v2 (276).
    LinuxSll2,
    /// Raw IPv4 only (228).
    Ipv4,
    /// Raw IPv6 only (229).
    Ipv6,
    /// Anything else.
    Other(u16),
}

impl From<u32> for LinkType {
    fn from(v: u32) -> LinkType {
        // The upper bits of a pcap header's link type may carry FCS info.
        match v & 0xffff {
            0 | 108 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            other => LinkType::Other(other as u16),
        }
    }
}

/// The container format of a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
}

impl Format {
    pub const fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::PcapNg => "pcapng",
        }
    }
}

/// One captured packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub link: LinkType,
    /// Capture time in microseconds since the Unix epoch (saturating).
    pub ts_us: u64,
    /// The captured bytes (at most the snapshot length).
    pub data: &'a [u8],
    /// The packet's length on the wire (≥ `data.len()` in a sane file).
    pub orig_len: u32,
}

/// Why a file is not a capture at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureError {
    /// Shorter than any capture file header.
    TooShort,
    /// Neither a pcap magic number nor a pcapng Section Header Block.
    NotACapture,
    /// A pcapng Section Header Block with an unknown byte-order magic or a
    /// bad length.
    BadSectionHeader,
}

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CaptureError::TooShort => "too short to be a pcap or pcapng file",
            CaptureError::NotACapture => "not a pcap or pcapng file (unknown magic number)",
            CaptureError::BadSectionHeader => "damaged pcapng section header",
        })
    }
}

impl std::error::Error for CaptureError {}

/// A record that could not be read. `offset` is its byte offset in the
/// file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadRecord {
    pub offset: usize,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

fn u16_at(b: &[u8], at: usize, e: Endian) -> Option<u16> {
    let s: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(match e {
        Endian::Little => u16::from_le_bytes(s),
        Endian::Big => u16::from_be_bytes(s),
    })
}

fn u32_at(b: &[u8], at: usize, e: Endian) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(match e {
        Endian::Little => u32::from_le_bytes(s),
        Endian::Big => u32::from_be_bytes(s),
    })
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    u16_at(b, at, Endian::Big)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    u32_at(b, at, Endian::Big)
}

const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BYTE_ORDER: u32 = 0x1a2b_3c4d;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_OPB: u32 = 2;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;
/// Interfaces remembered per pcapng section; more are reported as damage.
const MAX_INTERFACES: usize = 64;

/// A pcapng interface: its link type and timestamp units.
#[derive(Debug, Clone, Copy, Default)]
struct Interface {
    link: u32,
    /// Timestamp resolution: 10^-n (`pow2` false) or 2^-n seconds.
    tsresol: u8,
    pow2: bool,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_s: i64,
}

impl Interface {
    fn to_us(self, ts: u64) -> u64 {
        let ts = u128::from(ts);
        let us = if self.pow2 {
            (ts * 1_000_000) >> u32::from(self.tsresol.min(127))
        } else if self.tsresol <= 6 {
            ts * 10u128.pow(6 - u32::from(self.tsresol))
        } else {
            ts / 10u128
                .checked_pow(u32::from(self.tsresol) - 6)
                .unwrap_or(u128::MAX)
        };
        let off = i128::from(self.offset_s) * 1_000_000;
        u64::try_from((us as i128).saturating_add(off).max(0)).unwrap_or(u64::MAX)
    }
}

/// The records of a capture file, in file order.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    bytes: &'a [u8],
    pos: usize,
    format: Format,
    endian: Endian,
    // pcap
    link: u32,
    nanos: bool,
    /// Record header length: 16, or 24 for the modified format.
    rec_hdr: usize,
    // pcapng
    ifaces: [Interface; MAX_INTERFACES],
    n_ifaces: usize,
    done: bool,
}

/// Opens a capture held in memory: checks the file header and returns an
/// iterator over its records.
pub fn records(bytes: &[u8]) -> Result<Records<'_>, CaptureError> {
    let magic_le = u32_at(bytes, 0, Endian::Little).ok_or(CaptureError::TooShort)?;
    let mut r = Records {
        bytes,
        pos: 0,
        format: Format::Pcap,
        endian: Endian::Little,
        link: 0,
        nanos: false,
        rec_hdr: 16,
        ifaces: [Interface::default(); MAX_INTERFACES],
        n_ifaces: 0,
        done: false,
    };
    if magic_le == PCAPNG_SHB {
        r.format = Format::PcapNg;
        // The first block must be a sane section header; later ones are
        // parsed as they come.
        let bom = u32_at(bytes, 8, Endian::Little).ok_or(CaptureError::TooShort)?;
        r.endian = match bom {
            PCAPNG_BYTE_ORDER => Endian::Little,
            0x4d3c_2b1a => Endian::Big,
            _ => return Err(CaptureError::BadSectionHeader),
        };
        let len = u32_at(bytes, 4, r.endian).ok_or(CaptureError::TooShort)? as usize;
        if len < 28 || !len.is_multiple_of(4) {
            return Err(CaptureError::BadSectionHeader);
        }
        return Ok(r);
    }
    let (endian, nanos, rec_hdr) = match magic_le {
        0xa1b2_c3d4 => (Endian::Little, false, 16),
        0xa1b2_3c4d => (Endian::Little, true, 16),
        0xa1b2_cd34 => (Endian::Little, false, 24),
        0xd4c3_b2a1 => (Endian::Big, false, 16),
        0x4d3c_b2a1 => (Endian::Big, true, 16),
        0x34cd_b2a1 => (Endian::Big, false, 24),
        _ => return Err(CaptureError::NotACapture),
    };
    if bytes.len() < 24 {
        return Err(CaptureError::TooShort);
    }
    r.endian = endian;
    r.nanos = nanos;
    r.rec_hdr = rec_hdr;
    r.link = u32_at(bytes, 20, endian).ok_or(CaptureError::TooShort)?;
    r.pos = 24;
    Ok(r)
}

impl<'a> Records<'a> {
    pub fn format(&self) -> Format {
        self.format
    }

    fn next_pcap(&mut self) -> Option<Result<Record<'a>, BadRecord>> {
        let b = self.bytes;
        let at = self.pos;
        if at >= b.len() {
            return None;
        }
        let bad = |reason| Some(Err(BadRecord { offset: at, reason }));
        let e = self.endian;
        let (Some(sec), Some(frac), Some(incl), Some(orig)) = (
            u32_at(b, at, e),
            u32_at(b, at + 4, e),
            u32_at(b, at + 8, e),
            u32_at(b, at + 12, e),
        ) else {
            self.done = true;
            return bad("truncated record header at end of file");
        };
        let incl = incl as usize;
        if incl > MAX_RECORD_LEN {
            // Nothing tells where the next record starts: stop here.
            self.done = true;
            return bad(
                "record length beyond 256 KiB (damaged record header); rest of file ignored",
            );
        }
        let start = at + self.rec_hdr;
        let Some(data) = b.get(start..start + incl) else {
            self.done = true;
            return bad("record truncated at end of file");
        };
        self.pos = start + incl;
        let frac_us = if self.nanos {
            u64::from(frac) / 1000
        } else {
            u64::from(frac)
        };
        Some(Ok(Record {
            link: LinkType::from(self.link),
            ts_us: u64::from(sec)
                .saturating_mul(1_000_000)
                .saturating_add(frac_us),
            data,
            orig_len: orig,
        }))
    }

    fn next_pcapng(&mut self) -> Option<Result<Record<'a>, BadRecord>> {
        loop {
            let b = self.bytes;
            let at = self.pos;
            if at >= b.len() {
                return None;
            }
            let bad = |reason| Some(Err(BadRecord { offset: at, reason }));
            let Some(btype) = u32_at(b, at, self.endian) else {
                self.done = true;
                return bad("truncated block header at end of file");
            };
            if btype == PCAPNG_SHB {
                // A new section may switch byte order; its interfaces
                // start from scratch.
                self.endian = match u32_at(b, at + 8, Endian::Little) {
                    Some(PCAPNG_BYTE_ORDER) => Endian::Little,
                    Some(0x4d3c_2b1a) => Endian::Big,
                    _ => {
                        self.done = true;
                        return bad("damaged section header block; rest of file ignored");
                    }
                };
                self.n_ifaces = 0;
            }
            let Some(blen) = u32_at(b, at + 4, self.endian) else {
                self.done = true;
                return bad("truncated block header at end of file");
            };
            let blen = blen as usize;
            if blen < 12 || !blen.is_multiple_of(4) || blen > MAX_RECORD_LEN + 64 {
                self.done = true;
                return bad("bad block length; rest of file ignored");
            }
            let Some(block) = b.get(at..at + blen) else {
                self.done = true;
                return bad("block truncated at end of file");
            };
            self.pos = at + blen;
            if u32_at(block, blen - 4, self.endian) != Some(blen as u32) {
                // The trailing length must repeat the leading one; without
                // it the block's framing cannot be trusted.
                self.done = true;
                return bad("block lengths disagree; rest of file ignored");
            }
            let body = &block[8..blen - 4];
            match btype {
                PCAPNG_SHB => {}
                PCAPNG_IDB => {
                    if let Err(reason) = self.add_interface(body) {
                        return bad(reason);
                    }
                }
                PCAPNG_EPB | PCAPNG_OPB => return Some(self.packet_block(btype, body, at)),
                PCAPNG_SPB => {
                    let e = self.endian;
                    let Some(orig) = u32_at(body, 0, e) else {
                        return bad("simple packet block too short");
                    };
                    let Some(iface) = self.ifaces[..self.n_ifaces].first().copied() else {
                        return bad("simple packet block before any interface description");
                    };
                    let cap = (orig as usize).min(body.len() - 4);
                    return Some(Ok(Record {
                        link: LinkType::from(iface.link),
                        ts_us: 0,
                        data: &body[4..4 + cap],
                        orig_len: orig,
                    }));
                }
                // Name resolution, statistics, custom and unknown blocks.
                _ => {}
            }
        }
    }

    fn add_interface(&mut self, body: &[u8]) -> Result<(), &'static str> {
        let e = self.endian;
        let link = u16_at(body, 0, e).ok_or("interface description block too short")?;
        if self.n_ifaces >= MAX_INTERFACES {
            return Err("more than 64 interfaces in one section");
        }
        let mut iface = Interface {
            link: u32::from(link),
            tsresol: 6,
            pow2: false,
            offset_s: 0,
        };
        // Options follow the 8 fixed bytes: code, length, value padded to 4.
        let mut opt = 8;
        while let (Some(code), Some(len)) = (u16_at(body, opt, e), u16_at(body, opt + 2, e)) {
            let len = usize::from(len);
            let Some(value) = body.get(opt + 4..opt + 4 + len) else {
                break;
            };
            match (code, value) {
                (0, _) => break,
                (9, [r]) => {
                    iface.pow2 = r & 0x80 != 0;
                    iface.tsresol = r & 0x7f;
                }
                (14, v) if v.len() == 8 => {
                    let raw = u32_at(v, 0, e).zip(u32_at(v, 4, e));
                    if let Some((a, b)) = raw {
                        let (hi, lo) = match e {
                            Endian::Little => (b, a),
                            Endian::Big => (a, b),
                        };
                        iface.offset_s = ((u64::from(hi) << 32) | u64::from(lo)) as i64;
                    }
                }
                _ => {}
            }
            opt += 4 + len.div_ceil(4) * 4;
        }
        self.ifaces[self.n_ifaces] = iface;
        self.n_ifaces += 1;
        Ok(())
    }

    fn packet_block(&self, btype: u32, body: &'a [u8], at: usize) -> Result<Record<'a>, BadRecord> {
        let e = self.endian;
        let bad = |reason| BadRecord { offset: at, reason };
        // EPB: if_id u32; obsolete PB: if_id u16 + drops u16. Then both
        // have ts_hi, ts_lo, caplen, origlen and the data.
        let if_id = if btype == PCAPNG_EPB {
            u32_at(body, 0, e).map(|v| v as usize)
        } else {
            u16_at(body, 0, e).map(usize::from)
        };
        let (Some(if_id), Some(hi), Some(lo), Some(cap), Some(orig)) = (
            if_id,
            u32_at(body, 4, e),
            u32_at(body, 8, e),
            u32_at(body, 12, e),
            u32_at(body, 16, e),
        ) else {
            return Err(bad("packet block too short"));
        };
        let iface = self.ifaces[..self.n_ifaces]
            .get(if_id)
            .copied()
            .ok_or(bad("packet block names an undescribed interface"))?;
        let data = body
            .get(20..20 + cap as usize)
            .ok_or(bad("packet block's captured length exceeds the block"))?;
        Ok(Record {
            link: LinkType::from(iface.link),
            ts_us: iface.to_us((u64::from(hi) << 32) | u64::from(lo)),
            data,
            orig_len: orig,
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, BadRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.format {
            Format::Pcap => self.next_pcap(),
            Format::PcapNg => self.next_pcapng(),
        }
    }
}

/// Why a record yields no packet for the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// A link type this parser does not know.
    UnsupportedLink(u16),
    /// Not IP (ARP, LLDP, ...).
    NotIp,
    /// An IP fragment other than the first: it carries no ports.
    LaterFragment,
    /// A header is cut short or says something impossible.
    Malformed(&'static str),
}

impl Skip {
    pub fn describe(&self) -> String {
        match self {
            Skip::UnsupportedLink(t) => format!("unsupported link type {t}"),
            Skip::NotIp => "not IP".into(),
            Skip::LaterFragment => "non-first IP fragment".into(),
            Skip::Malformed(why) => (*why).into(),
        }
    }
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;

/// Parses a record's link, network and transport headers into the flow
/// key and the engine's view of the packet. The payload is what was
/// captured of the L4 payload (a snapshot length may cut it short), with
/// link-layer padding removed.
pub fn packet<'a>(link: LinkType, data: &'a [u8]) -> Result<(FlowKey, PacketView<'a>), Skip> {
    let ip = match link {
        LinkType::Ethernet => {
            let frame = Frame::new_checked(data)
                .map_err(|_| Skip::Malformed("truncated Ethernet header"))?;
            let hl = frame.header_len();
            match frame.payload_ethertype() {
                EtherType::Ipv4 | EtherType::Ipv6 => &data[hl..],
                _ => return Err(Skip::NotIp),
            }
        }
        LinkType::LinuxSll => {
            let proto = be16(data, 14).ok_or(Skip::Malformed("truncated Linux cooked header"))?;
            strip_vlans(proto, &data[16..])?
        }
        LinkType::LinuxSll2 => {
            let proto = be16(data, 0).ok_or(Skip::Malformed("truncated Linux cooked v2 header"))?;
            if data.len() < 20 {
                return Err(Skip::Malformed("truncated Linux cooked v2 header"));
            }
            strip_vlans(proto, &data[20..])?
        }
        LinkType::Null => data
            .get(4..)
            .ok_or(Skip::Malformed("truncated loopback header"))?,
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => data,
        LinkType::Other(t) => return Err(Skip::UnsupportedLink(t)),
    };
    match ip.first().map(|b| b >> 4) {
        Some(4) => ipv4(ip),
        Some(6) => ipv6(ip),
        Some(_) => Err(Skip::NotIp),
        None => Err(Skip::Malformed("empty IP packet")),
    }
}

/// Follows 802.1Q/802.1ad tags after a cooked header's protocol field.
fn strip_vlans(mut proto: u16, mut rest: &[u8]) -> Result<&[u8], Skip> {
    for _ in 0..4 {
        match proto {
            ETH_IPV4 | ETH_IPV6 => return Ok(rest),
            0x8100 | 0x88a8 => {
                proto = be16(rest, 2).ok_or(Skip::Malformed("truncated VLAN tag"))?;
                rest = &rest[4..];
            }
            _ => return Err(Skip::NotIp),
        }
    }
    Err(Skip::NotIp)
}

fn ipv4(ip: &[u8]) -> Result<(FlowKey, PacketView<'_>), Skip> {
    if ip.len() < 20 {
        return Err(Skip::Malformed("truncated IPv4 header"));
    }
    let hl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(be16(ip, 2).unwrap_or(0));
    if hl < 20 || hl > ip.len() {
        return Err(Skip::Malformed("bad IPv4 header length"));
    }
    if total < hl {
        return Err(Skip::Malformed("IPv4 total length below header length"));
    }
    let flags_off = be16(ip, 6).unwrap_or(0);
    if flags_off & 0x1fff != 0 {
        return Err(Skip::LaterFragment);
    }
    let proto = ip[9];
    let src = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    // Trim Ethernet padding; keep what a snapshot length left.
    let l4 = &ip[hl..total.min(ip.len())];
    transport(proto, src, dst, l4)
}

fn ipv6(ip: &[u8]) -> Result<(FlowKey, PacketView<'_>), Skip> {
    if ip.len() < 40 {
        return Err(Skip::Malformed("truncated IPv6 header"));
    }
    let plen = usize::from(be16(ip, 4).unwrap_or(0));
    let mut src = [0u8; 16];
    src.copy_from_slice(&ip[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&ip[24..40]);
    // Payload length 0 is a jumbogram (or TSO): take what was captured.
    let end = if plen == 0 {
        ip.len()
    } else {
        (40 + plen).min(ip.len())
    };
    let mut rest = &ip[40..end];
    let mut next = ip[6];
    // Extension headers (RFC 8200 section 4), at most a handful.
    for _ in 0..8 {
        let len = match next {
            0 | 43 | 60 => {
                (usize::from(
                    *rest
                        .get(1)
                        .ok_or(Skip::Malformed("truncated IPv6 extension header"))?,
                ) + 1)
                    * 8
            }
            51 => {
                (usize::from(
                    *rest
                        .get(1)
                        .ok_or(Skip::Malformed("truncated IPv6 extension header"))?,
                ) + 2)
                    * 4
            }
            44 => {
                let off = be16(rest, 2).ok_or(Skip::Malformed("truncated IPv6 fragment header"))?;
                if off & 0xfff8 != 0 {
                    return Err(Skip::LaterFragment);
                }
                8
            }
            _ => break,
        };
        next = *rest
            .first()
            .ok_or(Skip::Malformed("truncated IPv6 extension header"))?;
        rest = rest
            .get(len..)
            .ok_or(Skip::Malformed("truncated IPv6 extension header"))?;
    }
    transport(
        next,
        IpAddr::V6(Ipv6Addr::from(src)),
        IpAddr::V6(Ipv6Addr::from(dst)),
        rest,
    )
}

fn transport<'a>(
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    l4: &'a [u8],
) -> Result<(FlowKey, PacketView<'a>), Skip> {
    let (sport, dport, tcp, payload) = match proto {
        6 => {
            let (Some(sp), Some(dp), Some(seq)) = (be16(l4, 0), be16(l4, 2), be32(l4, 4)) else {
                return Err(Skip::Malformed("truncated TCP header"));
            };
            let off = usize::from(l4.get(12).copied().unwrap_or(0) >> 4) * 4;
            let flags = l4
                .get(13)
                .copied()
                .ok_or(Skip::Malformed("truncated TCP header"))?;
            if off < 20 {
                return Err(Skip::Malformed("bad TCP data offset"));
            }
            let payload = l4
                .get(off..)
                .ok_or(Skip::Malformed("truncated TCP options"))?;
            (sp, dp, Some(TcpMeta { seq, flags }), payload)
        }
        17 => {
            let (Some(sp), Some(dp), Some(len)) = (be16(l4, 0), be16(l4, 2), be16(l4, 4)) else {
                return Err(Skip::Malformed("truncated UDP header"));
            };
            let len = usize::from(len);
            if len != 0 && len < 8 {
                return Err(Skip::Malformed("bad UDP length"));
            }
            // Length 0 only in IPv6 jumbograms: take the rest.
            let end = if len == 0 {
                l4.len()
            } else {
                len.min(l4.len())
            };
            (sp, dp, None, &l4[8.min(end)..end])
        }
        _ => (0, 0, None, l4),
    };
    let (key, side) = FlowKey::new(proto, src, sport, dst, dport);
    Ok((
        key,
        PacketView {
            proto,
            src,
            sport,
            dst,
            dport,
            side,
            tcp,
            payload,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_header(magic: u32, link: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&magic.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&link.to_le_bytes());
        v
    }

    fn pcap_record(v: &mut Vec<u8>, sec: u32, frac: u32, data: &[u8]) {
        v.extend_from_slice(&sec.to_le_bytes());
        v.extend_from_slice(&frac.to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
    }

    /// IPv4 UDP 10.0.0.1:5000 → 10.0.0.2:53 with a 4-byte payload.
    fn udp4() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&[0x13, 0x88, 0, 53, 0, 12, 0, 0, b'a', b'b', b'c', b'd']);
        p
    }

    fn eth(ethertype: [u8; 2], inner: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(&ethertype);
        f.extend_from_slice(inner);
        f
    }

    #[test]
    fn pcap_microsecond_ethernet_record_becomes_a_udp_view() {
        let mut file = pcap_header(0xa1b2_c3d4, 1);
        let mut frame = eth([0x08, 0x00], &udp4());
        frame.extend_from_slice(&[0; 6]); // padding must not reach the payload
        pcap_record(&mut file, 10, 500, &frame);
        let mut recs = records(&file).unwrap();
        let rec = recs.next().unwrap().unwrap();
        assert_eq!(rec.ts_us, 10_000_500);
        assert!(recs.next().is_none());
        let (key, view) = packet(rec.link, rec.data).unwrap();
        assert_eq!(view.proto, 17);
        assert_eq!((view.sport, view.dport), (5000, 53));
        assert_eq!(view.payload, b"abcd");
        assert_eq!(key.endpoint(view.side).1, 5000);
    }

    #[test]
    fn nanosecond_pcap_timestamps_are_converted_to_microseconds() {
        let mut file = pcap_header(0xa1b2_3c4d, 101);
        pcap_record(&mut file, 1, 999_999_999, &udp4());
        let rec = records(&file).unwrap().next().unwrap().unwrap();
        assert_eq!(rec.ts_us, 1_999_999);
        assert!(packet(rec.link, rec.data).is_ok());
    }

    #[test]
    fn vlan_tags_and_cooked_headers_reach_the_ip_header() {
        let mut tagged = vec![0x00, 0x64, 0x08, 0x00];
        tagged.extend_from_slice(&udp4());
        let f = eth([0x81, 0x00], &tagged);
        assert_eq!(packet(LinkType::Ethernet, &f).unwrap().1.dport, 53);

        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&udp4());
        assert_eq!(packet(LinkType::LinuxSll, &sll).unwrap().1.dport, 53);

        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ];
        sll2.extend_from_slice(&udp4());
        assert_eq!(packet(LinkType::LinuxSll2, &sll2).unwrap().1.dport, 53);
    }

    #[test]
    fn later_fragments_and_arp_are_skipped_not_misparsed() {
        let mut frag = udp4();
        frag[6] = 0x00;
        frag[7] = 0x10; // offset 128 bytes
        assert_eq!(
            packet(LinkType::Raw, &frag).unwrap_err(),
            Skip::LaterFragment
        );
        let arp = eth([0x08, 0x06], &[0; 28]);
        assert_eq!(packet(LinkType::Ethernet, &arp).unwrap_err(), Skip::NotIp);
    }

    #[test]
    fn a_truncated_last_record_is_reported_and_ends_the_file() {
        let mut file = pcap_header(0xa1b2_c3d4, 101);
        pcap_record(&mut file, 1, 0, &udp4());
        pcap_record(&mut file, 2, 0, &udp4());
        file.truncate(file.len() - 5);
        let items: Vec<_> = records(&file).unwrap().collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert_eq!(
            items[1].unwrap_err().reason,
            "record truncated at end of file"
        );
    }

    #[test]
    fn pcapng_uses_each_interfaces_link_type_and_resolution() {
        fn block(t: u32, body: &[u8]) -> Vec<u8> {
            let mut body = body.to_vec();
            while !body.len().is_multiple_of(4) {
                body.push(0);
            }
            let len = (body.len() + 12) as u32;
            let mut b = t.to_le_bytes().to_vec();
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(&body);
            b.extend_from_slice(&len.to_le_bytes());
            b
        }
        let mut shb = PCAPNG_BYTE_ORDER.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut file = block(PCAPNG_SHB, &shb);
        // Interface 0: Ethernet, default microseconds.
        file.extend(block(PCAPNG_IDB, &[1, 0, 0, 0, 0, 0, 0, 0]));
        // Interface 1: raw IP, nanoseconds (if_tsresol 9).
        file.extend(block(
            PCAPNG_IDB,
            &[101, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0],
        ));
        let epb = |iface: u32, ts: u64, data: &[u8]| {
            let mut b = iface.to_le_bytes().to_vec();
            b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
            b.extend_from_slice(&(ts as u32).to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(data);
            block(PCAPNG_EPB, &b)
        };
        file.extend(epb(0, 7_000_000, &eth([0x08, 0x00], &udp4())));
        file.extend(epb(1, 7_000_000_000, &udp4()));
        file.extend(epb(5, 1, &udp4()));
        let recs = records(&file).unwrap();
        assert_eq!(recs.format(), Format::PcapNg);
        let items: Vec<_> = recs.collect();
        assert_eq!(items.len(), 3);
        let (a, b) = (items[0].unwrap(), items[1].unwrap());
        assert_eq!((a.link, a.ts_us), (LinkType::Ethernet, 7_000_000));
        assert_eq!((b.link, b.ts_us), (LinkType::Raw, 7_000_000));
        assert!(items[2].is_err());
    }

    #[test]
    fn garbage_never_panics() {
        assert_eq!(records(b"").unwrap_err(), CaptureError::TooShort);
        assert_eq!(
            records(b"GET / HTTP/1.1\r\n").unwrap_err(),
            CaptureError::NotACapture
        );
        // A deterministic pseudo-random walk over headers and bodies.
        let mut x: u32 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut base = pcap_header(0xa1b2_c3d4, 1);
        pcap_record(&mut base, 1, 0, &eth([0x08, 0x00], &udp4()));
        for _ in 0..20_000 {
            let mut f = base.clone();
            for _ in 0..4 {
                let i = next() as usize % f.len();
                f[i] = next() as u8;
            }
            if let Ok(recs) = records(&f) {
                for rec in recs.flatten() {
                    for link in [
                        LinkType::Ethernet,
                        LinkType::LinuxSll,
                        LinkType::LinuxSll2,
                        LinkType::Raw,
                        LinkType::Null,
                    ] {
                        let _ = packet(link, rec.data);
                        for cut in 0..rec.data.len() {
                            let _ = packet(link, &rec.data[..cut]);
                        }
                    }
                }
            }
        }
    }
}
