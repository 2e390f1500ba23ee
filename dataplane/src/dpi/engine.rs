//! The per-core inspection engine: runs the dissectors of
//! [`super::dissect`] on a flow's first packets until one decides, or
//! until `max_packets`, when a port guess ([`Confidence::Port`]) or
//! Unknown is all there is.
//!
//! State is split by size. What every flow carries is [`FlowDpi`], 16
//! bytes inside its flow-table entry. What only a few flows need at once
//! lives here, allocated once at construction:
//! - a pool of reassembly slots (`reassembly_slots` fixed buffers of
//!   [`SLOT_BYTES`]) for ClientHellos split across TCP segments and
//!   CRYPTO data spread over several QUIC Initials. A flow refers to its
//!   slot by index and generation, so a slot taken over by another flow
//!   is noticed; slots idle for [`REASSEMBLY_IDLE_SECS`] are reclaimed,
//!   and when none is free the least recently used one is;
//! - a table of expectations: the data connections an FTP control
//!   connection announces and the RTP/RTCP streams of SIP's SDP, matched
//!   against each new flow's first packet until they expire;
//! - scratch buffers for QUIC decryption, handshake gathering and the
//!   hostname that [`Inspection::Decided`] lends out.
//!
//! Categories: a flow's category is its application's when a hostname
//! names one, else the protocol's own. DNS is the exception: a query for
//! `www.youtube.com` gets app YouTube but stays in category Network, since
//! the flow is name resolution whatever it resolves.

use super::apps::AppTable;
use super::dissect::{
    self, bittorrent, dns, ftp, game, http, mongodb, mysql, ntp, ports, postgres, quic, rdp, redis,
    rsync, rtp, sip, smb, ssh, stun, tls, Found, Verdict,
};
use super::key::Side;
use super::types::{AppId, Category, Classification, Confidence, Protocol};
use std::net::IpAddr;

const TCP: u8 = 6;
const UDP: u8 = 17;

/// Bytes per reassembly slot: room for a ClientHello with post-quantum
/// key shares, which run to about 1.8 KB.
pub const SLOT_BYTES: usize = 4096;
/// A slot not touched for this long is free for another flow.
pub const REASSEMBLY_IDLE_SECS: u64 = 10;
/// How long an announced FTP data connection or SDP media stream is
/// expected.
pub const EXPECTATION_SECS: u64 = 120;
/// Expectations held at once; the one closest to expiry gives way.
pub const EXPECTATIONS: usize = 256;
/// Distinct byte ranges a slot tracks before giving up on a gappy stream.
const MAX_RANGES: usize = 8;
/// Datagrams up to this size are decrypted (QUIC Initials are ~1200-1500).
const MAX_DATAGRAM: usize = 4096;
/// UDP payloads on a game port stay under this in game traffic.
const GAME_SMALL: usize = 300;
/// Packets of small datagrams on a game port before the game heuristic
/// decides.
const GAME_PACKETS: u8 = 6;

/// One packet as the engine sees it: parsed headers and the L4 payload.
#[derive(Debug, Clone, Copy)]
pub struct PacketView<'a> {
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub proto: u8,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    /// The side of the flow key that sent it (from [`super::key::FlowKey::new`]).
    pub side: Side,
    /// TCP only: sequence number and flags; None for other protocols.
    pub tcp: Option<TcpMeta>,
    /// The L4 payload (may be empty, e.g. a bare SYN or ACK).
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpMeta {
    pub seq: u32,
    pub flags: u8,
}

// FlowDpi.flags
const F_INIT_HI: u8 = 0x01;
const F_DONE: u8 = 0x02;
const F_CONTROL: u8 = 0x04;
const F_SEEN_LO: u8 = 0x08;
const F_SEEN_HI: u8 = 0x10;
const F_REASM_HI: u8 = 0x20;
const F_GAME_BIG: u8 = 0x40;

// FlowDpi.stage
const ST_NONE: u8 = 0;
const ST_FTP_GREETING: u8 = 1;
const ST_RTP_LO: u8 = 2;
const ST_RTP_HI: u8 = 3;
const ST_REASM_TLS: u8 = 4;
const ST_REASM_HTTP: u8 = 5;
const ST_REASM_QUIC: u8 = 6;

/// A flow's inspection state, kept in its flow-table entry: at most 16
/// bytes, `Copy`, and all zero (`Default`) for a new flow.
///
/// Layout: `class` (6 bytes), `inspected` (1), flags (1: initiator side,
/// done, control connection, sides seen, ...), reassembly slot index + 1
/// (2) and its generation (2), dissector stage (1), and 3 bytes of
/// stage data (the RTP heuristic's SSRC hash and sequence number).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowDpi {
    /// The decision so far (`confidence` is `None` while undecided).
    pub class: Classification,
    /// Packets inspected so far.
    pub inspected: u8,
    flags: u8,
    slot: u16,
    slot_gen: u16,
    stage: u8,
    aux: u8,
    aux16: u16,
}

impl FlowDpi {
    /// Inspection is over (decided, or given up): [`DpiEngine::inspect`]
    /// returns [`Inspection::Done`] from now on.
    pub fn is_done(&self) -> bool {
        self.flags & F_DONE != 0
    }

    /// The flow's packets should still go through [`DpiEngine::inspect`]:
    /// it is undecided, or it is an FTP or SIP control connection whose
    /// later packets announce data connections and media streams.
    pub fn wants_packets(&self) -> bool {
        !self.is_done() || self.flags & F_CONTROL != 0
    }

    /// The side that sent the flow's first packet (None before any).
    pub fn initiator(&self) -> Option<Side> {
        if self.inspected == 0 {
            None
        } else if self.flags & F_INIT_HI != 0 {
            Some(Side::Hi)
        } else {
            Some(Side::Lo)
        }
    }

    fn sent_by_initiator(&self, side: Side) -> bool {
        (self.flags & F_INIT_HI != 0) == (side == Side::Hi)
    }
}

/// Engine settings (the config's `[dpi]` section).
#[derive(Debug, Clone)]
pub struct DpiConfig {
    /// Stop inspecting a flow after this many packets (both directions)
    /// and fall back to a port guess.
    pub max_packets: u8,
    /// Flows that may reassemble payload at once (split TLS ClientHellos,
    /// multi-packet QUIC Initials).
    pub reassembly_slots: usize,
    /// Extra application rules from the config, added to the built-ins.
    pub rules: Vec<AppRuleConfig>,
    /// Ticks of the `now` passed to [`DpiEngine::inspect`] per second:
    /// the TSC rate on a worker; the default, 1e6, is for microsecond
    /// capture timestamps.
    pub ticks_per_sec: u64,
}

impl Default for DpiConfig {
    fn default() -> Self {
        DpiConfig {
            max_packets: 12,
            reassembly_slots: 1024,
            rules: Vec::new(),
            ticks_per_sec: 1_000_000,
        }
    }
}

/// A hostname suffix rule from the config: hostnames equal to `suffix` or
/// ending in `.suffix` belong to `app`, in `category`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRuleConfig {
    pub suffix: String,
    pub app: String,
    pub category: String,
}

/// What [`DpiEngine::inspect`] says about a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inspection<'e> {
    /// Still looking.
    Pending,
    /// Decided on this packet. `hostname` borrows the engine's scratch
    /// space and is valid until the next call.
    Decided {
        class: Classification,
        hostname: Option<&'e str>,
    },
    /// Decided earlier; nothing more to do for this flow.
    Done,
}

#[derive(Debug, thiserror::Error)]
pub enum DpiError {
    #[error("dpi rule {index}: {reason}")]
    BadRule { index: usize, reason: String },
}

/// Byte ranges received of one direction of a stream (or of a QUIC
/// CRYPTO stream), in a fixed buffer.
struct Reasm {
    buf: Box<[u8]>,
    ranges: [(u16, u16); MAX_RANGES],
    n: usize,
    /// Bytes past the buffer's end were offered.
    overflow: bool,
}

impl Reasm {
    fn new() -> Reasm {
        Reasm {
            buf: vec![0u8; SLOT_BYTES].into_boxed_slice(),
            ranges: [(0, 0); MAX_RANGES],
            n: 0,
            overflow: false,
        }
    }

    fn clear(&mut self) {
        self.n = 0;
        self.overflow = false;
    }

    /// Places `data` at `off`; false if it could not be tracked (too many
    /// gaps). Bytes past the buffer are dropped and flagged.
    fn insert(&mut self, off: u64, data: &[u8]) -> bool {
        let cap = self.buf.len();
        let Ok(off) = usize::try_from(off) else {
            self.overflow = true;
            return true;
        };
        if off >= cap {
            self.overflow = true;
            return true;
        }
        let end = off.saturating_add(data.len()).min(cap);
        if end - off < data.len() {
            self.overflow = true;
        }
        if end == off {
            return true;
        }
        let (s, e) = (off as u16, end as u16);
        // Merge with every overlapping or adjacent range.
        let mut merged = (s, e);
        let mut kept = [(0u16, 0u16); MAX_RANGES];
        let mut k = 0usize;
        for &(a, b) in self.ranges.iter().take(self.n) {
            if b < merged.0 || a > merged.1 {
                if let Some(slot) = kept.get_mut(k) {
                    *slot = (a, b);
                    k += 1;
                }
            } else {
                merged = (merged.0.min(a), merged.1.max(b));
            }
        }
        if k >= MAX_RANGES {
            return false;
        }
        if let (Some(dst), Some(src)) = (self.buf.get_mut(off..end), data.get(..end - off)) {
            dst.copy_from_slice(src);
        }
        // Insert keeping the ranges sorted by start.
        let pos = kept
            .iter()
            .take(k)
            .position(|r| r.0 > merged.0)
            .unwrap_or(k);
        if let Some(tail) = kept.get_mut(pos..=k) {
            tail.rotate_right(1);
            if let Some(first) = tail.first_mut() {
                *first = merged;
            }
        }
        self.ranges = kept;
        self.n = k + 1;
        true
    }

    /// The contiguous bytes from offset 0.
    fn prefix(&self) -> &[u8] {
        match self.ranges.first() {
            Some(&(0, end)) if self.n > 0 => self.buf.get(..usize::from(end)).unwrap_or(&[]),
            _ => &[],
        }
    }

    fn full(&self) -> bool {
        self.prefix().len() == self.buf.len() || self.overflow
    }

    fn copy_from(&mut self, other: &Reasm) {
        let used = other
            .ranges
            .iter()
            .take(other.n)
            .map(|r| usize::from(r.1))
            .max()
            .unwrap_or(0);
        if let (Some(d), Some(s)) = (self.buf.get_mut(..used), other.buf.get(..used)) {
            d.copy_from_slice(s);
        }
        self.ranges = other.ranges;
        self.n = other.n;
        self.overflow = other.overflow;
    }
}

struct Slot {
    gen: u16,
    in_use: bool,
    last: u64,
    /// TCP: the sequence number of the stream's first byte.
    base_seq: u32,
    /// QUIC: the version and the client's original DCID, from which the
    /// Initial keys of every later Initial derive.
    version: u32,
    dcid: [u8; 20],
    dcid_len: u8,
    data: Reasm,
}

#[derive(Debug, Clone, Copy)]
struct Expectation {
    addr: IpAddr,
    port: u16,
    l4: u8,
    protocol: Protocol,
    expires: u64,
}

/// The result being built for the current packet: protocol, hostname,
/// detail, app hint.
struct Out {
    protocol: Protocol,
    host: [u8; 256],
    host_len: usize,
    detail: [u8; 64],
    detail_len: usize,
    app: Option<&'static str>,
}

impl Out {
    fn clear(&mut self) {
        self.protocol = Protocol::Unknown;
        self.host_len = 0;
        self.detail_len = 0;
        self.app = None;
    }

    /// Keeps what a dissector found; the hostname only if it looks like
    /// one (printable ASCII without spaces), lowercased.
    fn record(&mut self, f: &Found<'_>) {
        self.protocol = f.protocol;
        self.app = f.app;
        self.host_len = 0;
        self.detail_len = 0;
        if let Some(h) = f.host {
            let h = h.strip_suffix(b".").unwrap_or(h);
            let ok = !h.is_empty()
                && h.len() <= self.host.len()
                && h.iter().all(|b| b.is_ascii_graphic());
            if let (true, Some(dst)) = (ok, self.host.get_mut(..h.len())) {
                for (d, s) in dst.iter_mut().zip(h) {
                    *d = s.to_ascii_lowercase();
                }
                self.host_len = h.len();
            }
        }
        if let Some(d) = f.detail {
            if d.len() <= self.detail.len() && d.iter().all(|b| b.is_ascii_graphic()) {
                if let Some(dst) = self.detail.get_mut(..d.len()) {
                    dst.copy_from_slice(d);
                    self.detail_len = d.len();
                }
            }
        }
    }

    fn host(&self) -> Option<&str> {
        let h = self.host.get(..self.host_len)?;
        if h.is_empty() {
            None
        } else {
            std::str::from_utf8(h).ok()
        }
    }
}

/// What a protocol path says about the current packet.
enum Step {
    /// `out` holds a decision.
    Found,
    Pending,
}

/// One per worker (and one in the offline classifier).
pub struct DpiEngine {
    config: DpiConfig,
    apps: AppTable,
    slots: Vec<Slot>,
    free: Vec<u16>,
    expect: Vec<Expectation>,
    out: Out,
    /// Decrypted QUIC payloads.
    scratch: Box<[u8]>,
    /// TLS handshake messages gathered from several records.
    gather: Box<[u8]>,
    /// DNS names, dotted.
    name: [u8; 256],
    /// CRYPTO data of a QUIC Initial before it needs a slot.
    tmp: Reasm,
    reassembly_ttl: u64,
    expectation_ttl: u64,
}

impl std::fmt::Debug for DpiEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpiEngine")
            .field("config", &self.config)
            .field("apps", &self.apps.len())
            .field("slots_free", &self.free.len())
            .field("expectations", &self.expect.len())
            .finish()
    }
}

impl DpiEngine {
    pub fn new(config: DpiConfig) -> Result<DpiEngine, DpiError> {
        let apps = AppTable::new(&config.rules)?;
        let n = config.reassembly_slots.min(usize::from(u16::MAX) - 1);
        let slots = (0..n)
            .map(|_| Slot {
                gen: 0,
                in_use: false,
                last: 0,
                base_seq: 0,
                version: 0,
                dcid: [0; 20],
                dcid_len: 0,
                data: Reasm::new(),
            })
            .collect();
        let free = (0..n as u16).rev().collect();
        let hz = config.ticks_per_sec.max(1);
        Ok(DpiEngine {
            apps,
            slots,
            free,
            expect: Vec::with_capacity(EXPECTATIONS),
            out: Out {
                protocol: Protocol::Unknown,
                host: [0; 256],
                host_len: 0,
                detail: [0; 64],
                detail_len: 0,
                app: None,
            },
            scratch: vec![0u8; MAX_DATAGRAM].into_boxed_slice(),
            gather: vec![0u8; SLOT_BYTES].into_boxed_slice(),
            name: [0; 256],
            tmp: Reasm::new(),
            reassembly_ttl: REASSEMBLY_IDLE_SECS.saturating_mul(hz),
            expectation_ttl: EXPECTATION_SECS.saturating_mul(hz),
            config,
        })
    }

    /// Inspects one packet of a flow. `now` is in the caller's ticks (used
    /// only to expire reassembly slots and expectations).
    pub fn inspect(
        &mut self,
        flow: &mut FlowDpi,
        pkt: &PacketView<'_>,
        now: u64,
    ) -> Inspection<'_> {
        if flow.is_done() {
            if flow.flags & F_CONTROL != 0 {
                self.control(flow, pkt, now);
            }
            return Inspection::Done;
        }
        self.out.clear();
        if flow.inspected == 0 {
            if pkt.side == Side::Hi {
                flow.flags |= F_INIT_HI;
            }
            flow.inspected = 1;
            if let Some(p) = self.expected(pkt, now) {
                self.out.protocol = p;
                return self.decide(flow, pkt, Confidence::Dpi, now);
            }
        } else {
            flow.inspected = flow.inspected.saturating_add(1);
        }
        if !pkt.payload.is_empty() {
            flow.flags |= if pkt.side == Side::Hi {
                F_SEEN_HI
            } else {
                F_SEEN_LO
            };
        }
        let step = match pkt.proto {
            TCP => self.tcp(flow, pkt, now),
            UDP => self.udp(flow, pkt, now),
            _ => Step::Pending,
        };
        if let Step::Found = step {
            return self.decide(flow, pkt, Confidence::Dpi, now);
        }
        if flow.inspected >= self.config.max_packets {
            let class = self.give_up(flow, pkt.proto, pkt.sport, pkt.dport);
            return Inspection::Decided {
                class,
                hostname: self.out.host(),
            };
        }
        Inspection::Pending
    }

    /// Gives up on a flow that has stopped sending before a decision
    /// (e.g. at the end of a capture): a port guess, or Unknown.
    pub fn finish(
        &mut self,
        flow: &mut FlowDpi,
        pkt_proto: u8,
        lo_port: u16,
        hi_port: u16,
    ) -> Classification {
        if flow.is_done() {
            return flow.class;
        }
        self.out.clear();
        self.give_up(flow, pkt_proto, lo_port, hi_port)
    }

    /// The name of an application id (None for [`AppId::NONE`] or an id
    /// this engine did not hand out).
    pub fn app_name(&self, app: AppId) -> Option<&str> {
        self.apps.name(app)
    }

    /// The category of an application id.
    pub fn app_category(&self, app: AppId) -> Option<Category> {
        self.apps.category(app)
    }

    /// The id of an application by name (built-in or configured).
    pub fn app_id(&self, name: &str) -> Option<AppId> {
        self.apps.by_name(name)
    }

    /// Applications known, built-in and configured.
    pub fn app_count(&self) -> usize {
        self.apps.len()
    }

    /// The protocol detail of the last decision: the first ALPN protocol
    /// of a TLS, DTLS or QUIC ClientHello, or an HTTP request's method.
    pub fn last_detail(&self) -> Option<&str> {
        let d = self.out.detail.get(..self.out.detail_len)?;
        if d.is_empty() {
            None
        } else {
            std::str::from_utf8(d).ok()
        }
    }

    /// Reassembly slots not in use.
    pub fn free_slots(&self) -> usize {
        self.free.len()
    }

    // --- decisions ---------------------------------------------------

    fn decide(
        &mut self,
        flow: &mut FlowDpi,
        pkt: &PacketView<'_>,
        confidence: Confidence,
        now: u64,
    ) -> Inspection<'_> {
        let protocol = self.out.protocol;
        let mut app = self.out.host().map_or(AppId::NONE, |h| self.apps.lookup(h));
        if app.is_none() {
            if let Some(hint) = self.out.app {
                app = self.apps.by_name(hint).unwrap_or(AppId::NONE);
            }
        }
        self.conclude(flow, protocol, app, confidence);
        if matches!(protocol, Protocol::Ftp | Protocol::Sip) {
            flow.flags |= F_CONTROL;
            // An INVITE's offer arrives on the packet that decides SIP.
            self.control(flow, pkt, now);
        }
        Inspection::Decided {
            class: flow.class,
            hostname: self.out.host(),
        }
    }

    /// The end of inspection without a dissector's decision: what a
    /// pending reassembly holds, else a port guess, else Unknown.
    fn give_up(&mut self, flow: &mut FlowDpi, l4: u8, a: u16, b: u16) -> Classification {
        let pending = match flow.stage {
            ST_REASM_TLS => Some(Protocol::Tls),
            ST_REASM_HTTP => Some(Protocol::Http),
            ST_REASM_QUIC => Some(Protocol::Quic),
            _ => None,
        };
        let (class, app) = if let Some(p) = pending {
            self.partial_hello(flow, p);
            (
                (p, Confidence::Dpi),
                self.out.host().map_or(AppId::NONE, |h| self.apps.lookup(h)),
            )
        } else {
            match ports::guess(l4, a, b) {
                Some((p, hint)) => (
                    (p, Confidence::Port),
                    hint.and_then(|h| self.apps.by_name(h))
                        .unwrap_or(AppId::NONE),
                ),
                None => ((Protocol::Unknown, Confidence::None), AppId::NONE),
            }
        };
        let (protocol, confidence) = class;
        self.out.protocol = protocol;
        self.conclude(flow, protocol, app, confidence);
        flow.class
    }

    /// Records a flow's final classification (the category is the app's,
    /// else the protocol's; DNS stays Network) and ends its inspection.
    fn conclude(
        &mut self,
        flow: &mut FlowDpi,
        protocol: Protocol,
        app: AppId,
        confidence: Confidence,
    ) {
        let category = match (protocol, self.apps.category(app)) {
            (Protocol::Dns, _) => Category::Network,
            (_, Some(c)) => c,
            (p, None) => p.default_category(),
        };
        flow.class = Classification {
            protocol,
            category,
            app,
            confidence,
            packets: flow.inspected,
        };
        self.release(flow);
        flow.flags |= F_DONE;
        flow.stage = ST_NONE;
    }

    /// The SNI of a ClientHello that never completed, if the bytes so far
    /// hold it.
    fn partial_hello(&mut self, flow: &FlowDpi, p: Protocol) {
        let Some(i) = self.slot_index(flow) else {
            return;
        };
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        let data = slot.data.prefix();
        let found = match p {
            Protocol::Tls => tls::client_stream_final(data, &mut self.gather),
            Protocol::Quic => {
                let body = data.get(4..).unwrap_or(&[]);
                tls::parse_client_hello(body, false).map(|h| Found {
                    protocol: Protocol::Quic,
                    host: h.sni,
                    app: None,
                    detail: h.alpn,
                })
            }
            _ => None,
        };
        if let Some(f) = found {
            self.out.record(&f);
        }
    }

    // --- reassembly slots ---------------------------------------------

    fn slot_index(&self, flow: &FlowDpi) -> Option<usize> {
        let i = usize::from(flow.slot.checked_sub(1)?);
        let s = self.slots.get(i)?;
        (s.in_use && s.gen == flow.slot_gen).then_some(i)
    }

    fn release(&mut self, flow: &mut FlowDpi) {
        if let Some(i) = self.slot_index(flow) {
            if let Some(s) = self.slots.get_mut(i) {
                s.in_use = false;
                s.gen = s.gen.wrapping_add(1);
                // Never beyond the capacity reserved at construction.
                if self.free.len() < self.slots.len() {
                    self.free.push(i as u16);
                }
            }
        }
        flow.slot = 0;
        flow.slot_gen = 0;
    }

    /// A slot for `flow`: a free one, else a stale one, else the least
    /// recently used (whose owner will notice by the generation).
    fn alloc(&mut self, flow: &mut FlowDpi, now: u64) -> Option<usize> {
        let i = match self.free.pop() {
            Some(i) => usize::from(i),
            None => {
                let stale = self
                    .slots
                    .iter()
                    .position(|s| s.in_use && now.saturating_sub(s.last) > self.reassembly_ttl);
                let i = match stale {
                    Some(i) => i,
                    None => self
                        .slots
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, s)| s.last)
                        .map(|(i, _)| i)?,
                };
                if let Some(s) = self.slots.get_mut(i) {
                    s.gen = s.gen.wrapping_add(1);
                }
                i
            }
        };
        let s = self.slots.get_mut(i)?;
        s.in_use = true;
        s.last = now;
        s.data.clear();
        s.base_seq = 0;
        s.version = 0;
        s.dcid_len = 0;
        flow.slot = i as u16 + 1;
        flow.slot_gen = s.gen;
        Some(i)
    }

    // --- expectations -----------------------------------------------

    fn expect_flow(expect: &mut Vec<Expectation>, e: Expectation, now: u64) {
        if let Some(x) = expect
            .iter_mut()
            .find(|x| x.l4 == e.l4 && x.port == e.port && x.addr == e.addr)
        {
            *x = e;
            return;
        }
        if expect.len() < EXPECTATIONS {
            expect.push(e);
            return;
        }
        let victim = expect.iter().position(|x| x.expires <= now).or_else(|| {
            expect
                .iter()
                .enumerate()
                .min_by_key(|(_, x)| x.expires)
                .map(|(i, _)| i)
        });
        if let Some(x) = victim.and_then(|i| expect.get_mut(i)) {
            *x = e;
        }
    }

    /// The protocol a new flow was announced as, if any.
    fn expected(&mut self, pkt: &PacketView<'_>, now: u64) -> Option<Protocol> {
        if self.expect.is_empty() {
            return None;
        }
        self.expect.retain(|x| x.expires > now);
        self.expect
            .iter()
            .find(|x| {
                x.l4 == pkt.proto
                    && ((x.addr == pkt.dst && x.port == pkt.dport)
                        || (x.addr == pkt.src && x.port == pkt.sport))
            })
            .map(|x| x.protocol)
    }

    /// A packet of a decided FTP or SIP control connection: the data
    /// connections and media it announces.
    fn control(&mut self, flow: &FlowDpi, pkt: &PacketView<'_>, now: u64) {
        if pkt.payload.is_empty() {
            return;
        }
        let expires = now.saturating_add(self.expectation_ttl);
        let expect = &mut self.expect;
        match flow.class.protocol {
            Protocol::Ftp => {
                if let Some((addr, port)) = ftp::data_endpoint(pkt.payload, pkt.src) {
                    let mut e = Expectation {
                        addr,
                        port,
                        l4: TCP,
                        protocol: Protocol::FtpData,
                        expires,
                    };
                    Self::expect_flow(expect, e, now);
                    if addr != pkt.src && !flow.sent_by_initiator(pkt.side) {
                        // A 227 behind NAT names the private address.
                        e.addr = pkt.src;
                        Self::expect_flow(expect, e, now);
                    }
                }
            }
            Protocol::Sip => sip::sdp_media(pkt.payload, |m| {
                Self::expect_flow(
                    expect,
                    Expectation {
                        addr: m.addr,
                        port: m.port,
                        l4: UDP,
                        protocol: m.protocol,
                        expires,
                    },
                    now,
                );
            }),
            _ => {}
        }
    }

    // --- TCP ------------------------------------------------------------

    fn tcp(&mut self, flow: &mut FlowDpi, pkt: &PacketView<'_>, now: u64) -> Step {
        let p = pkt.payload;
        if p.is_empty() {
            return Step::Pending;
        }
        if matches!(flow.stage, ST_REASM_TLS | ST_REASM_HTTP) {
            let reasm_hi = flow.flags & F_REASM_HI != 0;
            if reasm_hi == (pkt.side == Side::Hi) {
                return self.tcp_reassemble(flow, pkt, now);
            }
            // The other direction while a hello is incomplete: nothing to
            // learn that the hello will not tell.
            return Step::Pending;
        }
        match tls::client_stream(p, &mut self.gather) {
            Verdict::Match(f) => {
                self.out.record(&f);
                return Step::Found;
            }
            Verdict::Partial => return self.tcp_start(flow, pkt, now, ST_REASM_TLS),
            Verdict::No => {}
        }
        match http::stream(p) {
            Verdict::Match(f) => return self.found(&f),
            Verdict::Partial => return self.tcp_start(flow, pkt, now, ST_REASM_HTTP),
            Verdict::No => {}
        }
        let ports = [pkt.sport, pkt.dport];
        let on = |set: &[u16]| ports.iter().any(|p| set.contains(p));
        let single = ssh::banner(p)
            .or_else(|| rdp::connection(p))
            .or_else(|| smb::message(p))
            .or_else(|| mysql::server_greeting(p))
            .or_else(|| postgres::client_first(p))
            .or_else(|| redis::command(p))
            .or_else(|| mongodb::message(p))
            .or_else(|| rsync::greeting(p))
            .or_else(|| bittorrent::handshake(p))
            .or_else(|| sip::message(p))
            .or_else(|| stun::message(p, on(&[3478, 3479, 5349])))
            .or_else(|| game::minecraft(p));
        if let Some(f) = single {
            return self.found(&f);
        }
        if let Some(f) = dns::tcp(p, !on(&dns::PORTS), &mut self.name) {
            self.out.record(&f);
            return Step::Found;
        }
        match ftp::server_greeting(p) {
            Some(true) => return self.found(&Found::proto(Protocol::Ftp)),
            Some(false) => {
                flow.stage = ST_FTP_GREETING;
                return Step::Pending;
            }
            None => {}
        }
        if flow.stage == ST_FTP_GREETING || on(&[21]) {
            if let Some(f) = ftp::client_command(p) {
                return self.found(&f);
            }
        }
        Step::Pending
    }

    fn found(&mut self, f: &Found<'_>) -> Step {
        self.out.record(f);
        Step::Found
    }

    /// Starts reassembling one direction of a stream whose first segment
    /// holds an incomplete message.
    fn tcp_start(&mut self, flow: &mut FlowDpi, pkt: &PacketView<'_>, now: u64, stage: u8) -> Step {
        let Some(meta) = pkt.tcp else {
            return self.stream_final(stage, pkt.payload);
        };
        let Some(i) = self.alloc(flow, now) else {
            return self.stream_final(stage, pkt.payload);
        };
        let Some(slot) = self.slots.get_mut(i) else {
            return Step::Pending;
        };
        slot.base_seq = meta.seq;
        slot.data.insert(0, pkt.payload);
        flow.stage = stage;
        if pkt.side == Side::Hi {
            flow.flags |= F_REASM_HI;
        } else {
            flow.flags &= !F_REASM_HI;
        }
        Step::Pending
    }

    /// Decides from an incomplete message that cannot be completed.
    fn stream_final(&mut self, stage: u8, data: &[u8]) -> Step {
        let f = match stage {
            ST_REASM_TLS => tls::client_stream_final(data, &mut self.gather),
            ST_REASM_HTTP => Some(Found::proto(Protocol::Http)),
            _ => None,
        };
        match f {
            Some(f) => {
                self.out.record(&f);
                Step::Found
            }
            None => Step::Pending,
        }
    }

    fn tcp_reassemble(&mut self, flow: &mut FlowDpi, pkt: &PacketView<'_>, now: u64) -> Step {
        let stage = flow.stage;
        let fallback = if stage == ST_REASM_TLS {
            Protocol::Tls
        } else {
            Protocol::Http
        };
        let Some(i) = self.slot_index(flow) else {
            // The slot went to another flow: decide on what is certain.
            flow.slot = 0;
            return self.found(&Found::proto(fallback));
        };
        let Some(slot) = self.slots.get_mut(i) else {
            return Step::Pending;
        };
        slot.last = now;
        let Some(meta) = pkt.tcp else {
            return Step::Pending;
        };
        // Segments before the start (retransmissions of earlier data) are
        // trimmed; duplicates overwrite identical bytes.
        let rel = meta.seq.wrapping_sub(slot.base_seq) as i32;
        let (off, data) = if rel < 0 {
            let skip = rel.unsigned_abs() as usize;
            (0u64, pkt.payload.get(skip..).unwrap_or(&[]))
        } else {
            (rel as u64, pkt.payload)
        };
        if !data.is_empty() && !slot.data.insert(off, data) {
            // Too gappy to follow: decide on the prefix we have.
            let f = match stage {
                ST_REASM_TLS => tls::client_stream_final(slot.data.prefix(), &mut self.gather),
                _ => Some(Found::proto(Protocol::Http)),
            };
            if let Some(f) = f {
                self.out.record(&f);
            }
            self.out.protocol = fallback;
            return Step::Found;
        }
        let full = slot.data.full();
        let prefix = slot.data.prefix();
        let verdict = match stage {
            ST_REASM_TLS => tls::client_stream(prefix, &mut self.gather),
            _ => http::stream(prefix),
        };
        match verdict {
            Verdict::Match(f) => {
                self.out.record(&f);
                Step::Found
            }
            Verdict::Partial if !full => Step::Pending,
            Verdict::Partial => {
                let f = match stage {
                    ST_REASM_TLS => tls::client_stream_final(prefix, &mut self.gather),
                    _ => Some(Found::proto(Protocol::Http)),
                };
                if let Some(f) = f {
                    self.out.record(&f);
                }
                self.out.protocol = fallback;
                Step::Found
            }
            Verdict::No => {
                // What looked like the start of a hello was not one.
                self.release(flow);
                flow.stage = ST_NONE;
                Step::Pending
            }
        }
    }

    // --- UDP ------------------------------------------------------------

    fn udp(&mut self, flow: &mut FlowDpi, pkt: &PacketView<'_>, now: u64) -> Step {
        let p = pkt.payload;
        let Some(&b0) = p.first() else {
            return Step::Pending;
        };
        let ports = [pkt.sport, pkt.dport];
        let on = |set: &[u16]| ports.iter().any(|p| set.contains(p));
        if b0 & 0x80 != 0 && flow.sent_by_initiator(pkt.side) || flow.stage == ST_REASM_QUIC {
            if let Some(step) = self.quic(flow, pkt, now) {
                return step;
            }
        }
        if flow.stage == ST_REASM_QUIC {
            return Step::Pending;
        }
        let dns_port = on(&dns::PORTS);
        if let Some(f) = dns::message(p, !dns_port, &mut self.name) {
            self.out.record(&f);
            return Step::Found;
        }
        // RFC 7983 §7: the first byte tells STUN, DTLS and RTP apart.
        let single = match b0 {
            0..=3 => stun::message(p, on(&[3478, 3479, 5349])),
            20..=63 => tls::dtls_datagram(p),
            _ => None,
        };
        if let Some(f) = single {
            return self.found(&f);
        }
        let single = sip::message(p)
            .or_else(|| {
                if on(&[ntp::PORT]) {
                    ntp::packet(p)
                } else {
                    None
                }
            })
            .or_else(|| bittorrent::datagram(p))
            .or_else(|| game::datagram(p, on_game(pkt).is_some()));
        if let Some(f) = single {
            return self.found(&f);
        }
        if (128..=191).contains(&b0) {
            match rtp::classify(p) {
                Some(rtp::Kind::Rtcp) => return self.found(&Found::proto(Protocol::Rtcp)),
                Some(rtp::Kind::Rtp { ssrc, seq })
                    if self.rtp_candidate(flow, pkt.side, ssrc, seq) =>
                {
                    return self.found(&Found::proto(Protocol::Rtp));
                }
                Some(rtp::Kind::Rtp { .. }) => {}
                None => {}
            }
        }
        if let Some(app) = on_game(pkt) {
            if p.len() > GAME_SMALL {
                flow.flags |= F_GAME_BIG;
            }
            let both = flow.flags & (F_SEEN_LO | F_SEEN_HI) == F_SEEN_LO | F_SEEN_HI;
            if both && flow.flags & F_GAME_BIG == 0 && flow.inspected >= GAME_PACKETS {
                return self.found(&Found::with_app(Protocol::Game, app));
            }
        }
        Step::Pending
    }

    /// RTP without signalling: two packets of one stream from one side,
    /// same SSRC, sequence numbers 1 to 16 apart.
    fn rtp_candidate(&mut self, flow: &mut FlowDpi, side: Side, ssrc: u32, seq: u16) -> bool {
        let hash = ssrc.to_be_bytes().iter().fold(0u8, |a, b| a ^ b);
        let stage = if side == Side::Hi {
            ST_RTP_HI
        } else {
            ST_RTP_LO
        };
        if flow.stage == stage && flow.aux == hash {
            let step = seq.wrapping_sub(flow.aux16);
            if (1..=16).contains(&step) {
                return true;
            }
        }
        if flow.stage == ST_NONE || flow.stage == stage {
            flow.stage = stage;
            flow.aux = hash;
            flow.aux16 = seq;
        }
        false
    }

    /// A client Initial: `None` if the datagram is not one (other
    /// dissectors get their turn).
    fn quic(&mut self, flow: &mut FlowDpi, pkt: &PacketView<'_>, now: u64) -> Option<Step> {
        if !flow.sent_by_initiator(pkt.side) {
            // The server's Initials use the server keys; only the client's
            // carry the ClientHello.
            return (flow.stage == ST_REASM_QUIC).then_some(Step::Pending);
        }
        let mut rest = pkt.payload;
        let slot = if flow.stage == ST_REASM_QUIC {
            match self.slot_index(flow) {
                Some(i) => Some(i),
                None => {
                    // The slot was taken over; the flow is QUIC regardless.
                    flow.slot = 0;
                    return Some(self.found(&Found::proto(Protocol::Quic)));
                }
            }
        } else {
            None
        };
        if slot.is_none() {
            self.tmp.clear();
        }
        let mut decrypted_any = false;
        let mut first_hdr: Option<(u32, [u8; 20], u8)> = None;
        // Coalesced packets (RFC 9000 §12.2): every Initial in the datagram.
        for _ in 0..4 {
            let Some(hdr) = quic::initial_header(rest) else {
                break;
            };
            let mut dcid = [0u8; 20];
            let dlen = hdr.dcid.len();
            if let Some(d) = dcid.get_mut(..dlen) {
                d.copy_from_slice(hdr.dcid);
            }
            if first_hdr.is_none() {
                first_hdr = Some((hdr.version, dcid, dlen as u8));
            }
            // Keys come from the original DCID kept in the slot, or from
            // this packet's (the first Initial, or one after a Retry).
            let mut keys = None;
            if let Some(s) = slot.and_then(|i| self.slots.get(i)) {
                let d = s.dcid.get(..usize::from(s.dcid_len)).unwrap_or(&[]);
                keys = quic::client_initial_keys(s.version, d);
            }
            let mut frames = None;
            if let Some(k) = &keys {
                frames = quic::decrypt(rest, &hdr, k, &mut self.scratch).map(|f| f.len());
            }
            if frames.is_none() {
                if let Some(k) = quic::client_initial_keys(hdr.version, hdr.dcid) {
                    frames = quic::decrypt(rest, &hdr, &k, &mut self.scratch).map(|f| f.len());
                }
            }
            if let Some(n) = frames {
                decrypted_any = true;
                // decrypt() leaves the plaintext between the header and
                // the 16-byte tag of the packet's copy in `scratch`.
                let header_len = hdr.end.saturating_sub(n + 16);
                let plain = self.scratch.get(header_len..header_len + n).unwrap_or(&[]);
                let target = match slot.and_then(|i| self.slots.get_mut(i)) {
                    Some(s) => &mut s.data,
                    None => &mut self.tmp,
                };
                let _ = quic::crypto_frames(plain, |off, data| {
                    target.insert(off, data);
                });
            }
            rest = rest.get(hdr.end..).unwrap_or(&[]);
            if rest.is_empty() {
                break;
            }
        }
        let Some((version, dcid, dlen)) = first_hdr else {
            return if slot.is_some() {
                Some(Step::Pending)
            } else {
                None
            };
        };
        if !decrypted_any {
            // A well-formed v1/v2 client Initial (padded to 1200 bytes as
            // RFC 9000 §14.1 demands) that we could not open: QUIC still.
            if pkt.payload.len() >= 1200 {
                return Some(self.found(&Found::proto(Protocol::Quic)));
            }
            return if slot.is_some() {
                Some(Step::Pending)
            } else {
                None
            };
        }
        let data = match slot.and_then(|i| self.slots.get(i)) {
            Some(s) => &s.data,
            None => &self.tmp,
        };
        let prefix = data.prefix();
        let hs_len = dissect::be32(prefix, 0).map(|v| (v & 0x00ff_ffff) as usize);
        let complete = match (prefix.first(), hs_len) {
            (Some(1), Some(len)) => prefix.len() >= 4 + len,
            (Some(_), Some(_)) => {
                // Not a ClientHello at offset 0: QUIC, nothing more to see.
                return Some(self.found(&Found::proto(Protocol::Quic)));
            }
            _ => false,
        };
        if complete || data.full() {
            let body = prefix.get(4..).unwrap_or(&[]);
            let body = match hs_len {
                Some(l) if complete => body.get(..l).unwrap_or(body),
                _ => body,
            };
            let h = tls::parse_client_hello(body, false).unwrap_or_default();
            let f = Found {
                protocol: Protocol::Quic,
                host: h.sni,
                app: None,
                detail: h.alpn,
            };
            self.out.record(&f);
            return Some(Step::Found);
        }
        // Incomplete: keep the CRYPTO data in a slot for the next Initial.
        if slot.is_none() {
            let Some(i) = self.alloc(flow, now) else {
                return Some(self.found(&Found::proto(Protocol::Quic)));
            };
            if let Some(s) = self.slots.get_mut(i) {
                s.data.copy_from(&self.tmp);
                s.version = version;
                s.dcid = dcid;
                s.dcid_len = dlen;
            }
            flow.stage = ST_REASM_QUIC;
        } else if let Some(s) = slot.and_then(|i| self.slots.get_mut(i)) {
            s.last = now;
        }
        Some(Step::Pending)
    }
}

fn on_game(pkt: &PacketView<'_>) -> Option<&'static str> {
    ports::game_port(pkt.proto, pkt.sport).or_else(|| ports::game_port(pkt.proto, pkt.dport))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpi::dissect::quic::tests::{rfc9001_packet, rfc9369_packet};
    use crate::dpi::dissect::tls::tests::client_hello_record;
    use crate::dpi::key::FlowKey;
    use ring::aead::{self, quic::HeaderProtectionKey, Aad, LessSafeKey, Nonce, UnboundKey};

    const SEC: u64 = 1_000_000;

    fn engine() -> DpiEngine {
        DpiEngine::new(DpiConfig::default()).unwrap()
    }

    /// A flow between a client and a server, building packets with the
    /// right sides and TCP sequence numbers.
    struct Conv {
        proto: u8,
        client: (IpAddr, u16),
        server: (IpAddr, u16),
        flow: FlowDpi,
        cseq: u32,
        sseq: u32,
    }

    impl Conv {
        fn new(proto: u8, client: &str, cport: u16, server: &str, sport: u16) -> Conv {
            Conv {
                proto,
                client: (client.parse().unwrap(), cport),
                server: (server.parse().unwrap(), sport),
                flow: FlowDpi::default(),
                cseq: 1000,
                sseq: 5000,
            }
        }

        fn pkt<'a>(&self, from_client: bool, seq: u32, payload: &'a [u8]) -> PacketView<'a> {
            let (src, dst) = if from_client {
                (self.client, self.server)
            } else {
                (self.server, self.client)
            };
            let (_, side) = FlowKey::new(self.proto, src.0, src.1, dst.0, dst.1);
            PacketView {
                proto: self.proto,
                src: src.0,
                sport: src.1,
                dst: dst.0,
                dport: dst.1,
                side,
                tcp: (self.proto == TCP).then_some(TcpMeta { seq, flags: 0x18 }),
                payload,
            }
        }

        /// Sends in order, advancing the sender's sequence number.
        fn send(
            &mut self,
            e: &mut DpiEngine,
            from_client: bool,
            payload: &[u8],
            now: u64,
        ) -> (Option<Classification>, Option<String>) {
            let seq = if from_client { self.cseq } else { self.sseq };
            let pkt = self.pkt(from_client, seq, payload);
            if from_client {
                self.cseq = self.cseq.wrapping_add(payload.len() as u32);
            } else {
                self.sseq = self.sseq.wrapping_add(payload.len() as u32);
            }
            Self::result(e.inspect(&mut self.flow, &pkt, now))
        }

        fn send_at(
            &mut self,
            e: &mut DpiEngine,
            seq: u32,
            payload: &[u8],
            now: u64,
        ) -> (Option<Classification>, Option<String>) {
            let pkt = self.pkt(true, seq, payload);
            Self::result(e.inspect(&mut self.flow, &pkt, now))
        }

        fn result(i: Inspection<'_>) -> (Option<Classification>, Option<String>) {
            match i {
                Inspection::Decided { class, hostname } => {
                    (Some(class), hostname.map(str::to_owned))
                }
                _ => (None, None),
            }
        }

        fn handshake(&mut self, e: &mut DpiEngine) {
            for (c, _) in [(true, 0), (false, 0), (true, 0)] {
                assert_eq!(self.send(e, c, b"", 0).0, None);
            }
        }
    }

    #[test]
    fn reassembly_merges_ranges_and_bounds_gaps() {
        let mut r = Reasm::new();
        assert!(r.insert(10, b"klm"));
        assert_eq!(r.prefix(), b"");
        assert!(r.insert(0, b"abcdefghij"));
        assert_eq!(r.prefix(), b"abcdefghijklm");
        // Duplicates and overlaps change nothing.
        assert!(r.insert(5, b"fghij"));
        assert_eq!((r.prefix(), r.n), (&b"abcdefghijklm"[..], 1));
        // Seven more gaps fit, the eighth does not.
        for i in 0..7u64 {
            assert!(r.insert(100 + 10 * i, b"x"));
        }
        assert!(!r.insert(300, b"y"));
        assert_eq!(r.prefix().len(), 13);
        // Bytes past the buffer are dropped and flagged.
        let mut r = Reasm::new();
        assert!(r.insert(0, b"ab"));
        assert!(!r.full());
        assert!(r.insert(SLOT_BYTES as u64 - 2, b"1234"));
        assert!(r.full());
        assert_eq!(r.ranges[1], (SLOT_BYTES as u16 - 2, SLOT_BYTES as u16));
        let mut r = Reasm::new();
        assert!(r.insert(u64::MAX, b"z"));
        assert!(r.full());
        assert_eq!(r.prefix(), b"");
    }

    #[test]
    fn flow_state_fits_in_sixteen_bytes_and_starts_zeroed() {
        fn copy_default<T: Copy + Default>() {}
        copy_default::<FlowDpi>();
        assert!(
            std::mem::size_of::<FlowDpi>() <= 16,
            "{}",
            std::mem::size_of::<FlowDpi>()
        );
        let f = FlowDpi::default();
        assert_eq!(
            (f.inspected, f.initiator(), f.is_done(), f.wants_packets()),
            (0, None, false, true)
        );
    }

    #[test]
    fn http_request_is_decided_with_host_method_and_app() {
        let mut e = engine();
        let mut c = Conv::new(TCP, "10.0.0.1", 40000, "10.0.0.2", 80);
        c.handshake(&mut e);
        let (class, host) = c.send(
            &mut e,
            true,
            b"GET / HTTP/1.1\r\nHost: www.YouTube.com\r\nAccept: */*\r\n\r\n",
            0,
        );
        let class = class.unwrap();
        assert_eq!(class.protocol, Protocol::Http);
        assert_eq!(class.confidence, Confidence::Dpi);
        assert_eq!(class.packets, 4);
        assert_eq!(host.as_deref(), Some("www.youtube.com"));
        assert_eq!(e.app_name(class.app), Some("YouTube"));
        assert_eq!(class.category, Category::Video);
        assert_eq!(e.last_detail(), Some("GET"));
        assert_eq!(c.flow.initiator(), Some(c.pkt(true, 0, b"").side));
        // Later packets: nothing more to do.
        assert_eq!(c.send(&mut e, false, b"HTTP/1.1 200 OK\r\n\r\n", 0).0, None);
        let pkt = c.pkt(false, 0, b"x");
        assert_eq!(e.inspect(&mut c.flow, &pkt, 0), Inspection::Done);
        assert!(!c.flow.wants_packets());
    }

    #[test]
    fn tls_client_hello_yields_sni_alpn_and_app() {
        let mut e = engine();
        let mut c = Conv::new(TCP, "10.0.0.1", 40000, "10.0.0.2", 443);
        c.handshake(&mut e);
        let (class, host) = c.send(
            &mut e,
            true,
            &client_hello_record("api.github.com", &["h2", "http/1.1"]),
            0,
        );
        let class = class.unwrap();
        assert_eq!((class.protocol, class.packets), (Protocol::Tls, 4));
        assert_eq!(host.as_deref(), Some("api.github.com"));
        assert_eq!(e.app_name(class.app), Some("GitHub"));
        assert_eq!(class.category, Category::Web);
        assert_eq!(e.last_detail(), Some("h2"));
    }

    #[test]
    fn client_hello_split_across_segments_is_reassembled() {
        let rec = client_hello_record("www.netflix.com", &["h2"]);
        for cut in [1, 3, 5, 6, 9, 50, rec.len() - 1] {
            let mut e = engine();
            let mut c = Conv::new(TCP, "10.0.0.1", 40000, "10.0.0.2", 443);
            let (a, b) = rec.split_at(cut);
            assert_eq!(c.send(&mut e, true, a, 0).0, None, "cut {cut}");
            assert_eq!(e.free_slots(), 1023);
            let (class, host) = c.send(&mut e, true, b, 0);
            assert_eq!(class.map(|c| c.protocol), Some(Protocol::Tls), "cut {cut}");
            assert_eq!(host.as_deref(), Some("www.netflix.com"), "cut {cut}");
            assert_eq!(e.free_slots(), 1024, "slot released");
        }
    }

    #[test]
    fn out_of_order_and_retransmitted_segments_are_placed_by_sequence() {
        let rec = client_hello_record("cdn.example.org", &[]);
        let mut e = engine();
        let mut c = Conv::new(TCP, "10.0.0.1", 40000, "10.0.0.2", 443);
        let base = 7_000u32;
        let (a, rest) = rec.split_at(30);
        let (_, d) = rest.split_at(40);
        assert_eq!(c.send_at(&mut e, base, a, 0).0, None);
        // Third segment first, then a retransmission of the first, then
        // the second overlapping the first by 10 bytes.
        assert_eq!(c.send_at(&mut e, base + 70, d, 0).0, None);
        assert_eq!(c.send_at(&mut e, base, a, 0).0, None);
        let overlap = &rec[20..70];
        let (class, host) = c.send_at(&mut e, base + 20, overlap, 0);
        assert_eq!(class.map(|c| c.protocol), Some(Protocol::Tls));
        assert_eq!(host.as_deref(), Some("cdn.example.org"));
    }

    #[test]
    fn sequence_wraparound_is_handled() {
        let rec = client_hello_record("wrap.example", &[]);
        let mut e = engine();
        let mut c = Conv::new(TCP, "10.0.0.1", 40000, "10.0.0.2", 443);
        let base = u32::MAX - 10;
        assert_eq!(c.send_at(&mut e, base, &rec[..50], 0).0, None);
        let (_, host) = c.send_at(&mut e, base.wrapping_add(50), &rec[50..], 0);
        assert_eq!(host.as_deref(), Some("wrap.example"));
    }

    #[test]
    fn a_stolen_slot_is_noticed_and_the_flow_still_decides_tls() {
        let mut e = DpiEngine::new(DpiConfig {
            reassembly_slots: 1,
            ..DpiConfig::default()
        })
        .unwrap();
        let rec = client_hello_record("first.example", &[]);
        let mut a = Conv::new(TCP, "10.0.0.1", 40000, "10.0.0.2", 443);
        let mut b = Conv::new(TCP, "10.0.0.3", 40001, "10.0.0.2", 443);
        assert_eq!(a.send(&mut e, true, &rec[..20], 0).0, None);
        // The pool is full: b takes a's slot (the least recently used).
        assert_eq!(b.send(&mut e, true, &rec[..20], SEC).0, None);
        let (class, host) = a.send(&mut e, true, &rec[20..], 2 * SEC);
        assert_eq!(class.map(|c| c.protocol), Some(Protocol::Tls));
        assert_eq!(host, None);
        // b's reassembly is intact.
        let (class, host) = b.send(&mut e, true, &rec[20..], 2 * SEC);
        assert_eq!(class.map(|c| c.protocol), Some(Protocol::Tls));
        assert_eq!(host.as_deref(), Some("first.example"));
    }

    #[test]
    fn stale_slots_are_reclaimed_first() {
        let mut e = DpiEngine::new(DpiConfig {
            reassembly_slots: 2,
            ..DpiConfig::default()
        })
        .unwrap();
        let rec = client_hello_record("x.example", &[]);
        let mut a = Conv::new(TCP, "10.0.0.1", 1, "10.0.0.2", 443);
        let mut b = Conv::new(TCP, "10.0.0.1", 2, "10.0.0.2", 443);
        let mut c = Conv::new(TCP, "10.0.0.1", 3, "10.0.0.2", 443);
        a.send(&mut e, true, &rec[..20], 0);
        b.send(&mut e, true, &rec[..20], 15 * SEC);
        assert_eq!(e.free_slots(), 0);
        // a has been idle for more than 10 s: c takes its slot, not b's.
        c.send(&mut e, true, &rec[..20], 16 * SEC);
        assert_eq!(
            b.send(&mut e, true, &rec[20..], 16 * SEC).1.as_deref(),
            Some("x.example")
        );
        assert_eq!(
            c.send(&mut e, true, &rec[20..], 16 * SEC).1.as_deref(),
            Some("x.example")
        );
        assert_eq!(a.send(&mut e, true, &rec[20..], 16 * SEC).1, None);
    }

    #[test]
    fn incomplete_hello_decides_tls_at_the_packet_limit() {
        let mut e = DpiEngine::new(DpiConfig {
            max_packets: 3,
            ..DpiConfig::default()
        })
        .unwrap();
        let rec = client_hello_record("slow.example", &[]);
        let mut c = Conv::new(TCP, "10.0.0.1", 1, "10.0.0.2", 8443);
        c.send(&mut e, true, &rec[..rec.len() - 5], 0);
        c.send(&mut e, false, b"", 0);
        let (class, host) = c.send(&mut e, false, b"", 0);
        let class = class.unwrap();
        assert_eq!(
            (class.protocol, class.confidence),
            (Protocol::Tls, Confidence::Dpi)
        );
        // The SNI was in the bytes received.
        assert_eq!(host.as_deref(), Some("slow.example"));
        assert_eq!(e.free_slots(), 1024);
    }

    fn quic_pkt(c: &Conv, payload: &[u8]) -> PacketView<'static> {
        let p: &'static [u8] = Box::leak(payload.to_vec().into_boxed_slice());
        c.pkt(true, 0, p)
    }

    #[test]
    fn quic_v1_and_v2_initials_reveal_the_sni() {
        for pkt in [rfc9001_packet(), rfc9369_packet()] {
            let mut e = engine();
            let mut c = Conv::new(UDP, "10.0.0.1", 50000, "10.0.0.2", 443);
            let p = quic_pkt(&c, &pkt);
            let Inspection::Decided { class, hostname } = e.inspect(&mut c.flow, &p, 0) else {
                panic!("not decided")
            };
            assert_eq!(class.protocol, Protocol::Quic);
            assert_eq!(class.packets, 1);
            assert_eq!(hostname, Some("example.com"));
            assert_eq!(e.last_detail(), Some("alpn"));
        }
    }

    /// Builds a protected client Initial carrying `frames` (RFC 9001 §5).
    fn seal_initial(version: u32, dcid: &[u8], pn: u32, frames: &[u8]) -> Vec<u8> {
        let keys = quic::client_initial_keys(version, dcid).unwrap();
        let ty = if version == quic::V2 { 1 } else { 0 };
        let mut payload = frames.to_vec();
        payload.resize(1162, 0);
        let mut hdr = vec![0xc3 | ty << 4];
        hdr.extend_from_slice(&version.to_be_bytes());
        hdr.push(dcid.len() as u8);
        hdr.extend_from_slice(dcid);
        hdr.extend_from_slice(&[0, 0]);
        let len = (payload.len() + 4 + 16) as u16;
        hdr.extend_from_slice(&(0x4000 | len).to_be_bytes());
        let pn_offset = hdr.len();
        hdr.extend_from_slice(&pn.to_be_bytes());
        let mut nonce = keys.iv;
        for (n, p) in nonce
            .iter_mut()
            .rev()
            .zip(u64::from(pn).to_be_bytes().iter().rev())
        {
            *n ^= p;
        }
        let key = LessSafeKey::new(UnboundKey::new(&aead::AES_128_GCM, &keys.key).unwrap());
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&hdr),
            &mut payload,
        )
        .unwrap();
        let mut pkt = hdr;
        pkt.extend_from_slice(&payload);
        let hp = HeaderProtectionKey::new(&aead::quic::AES_128, &keys.hp).unwrap();
        let mask = hp.new_mask(&pkt[pn_offset + 4..pn_offset + 20]).unwrap();
        pkt[0] ^= mask[0] & 0x0f;
        for i in 0..4 {
            pkt[pn_offset + i] ^= mask[1 + i];
        }
        pkt
    }

    fn crypto_frame(off: usize, data: &[u8]) -> Vec<u8> {
        let mut f = vec![6, 0x80, 0, (off >> 8) as u8, off as u8];
        f.extend_from_slice(&(0x4000 | data.len() as u16).to_be_bytes());
        f.extend_from_slice(data);
        f
    }

    #[test]
    fn quic_crypto_data_over_two_initials_out_of_order_is_reassembled() {
        let hello = &client_hello_record("www.zoom.us", &["h3"])[5..];
        for version in [quic::V1, quic::V2] {
            let dcid = [1, 2, 3, 4, 5, 6, 7, 8];
            let mut e = engine();
            let mut c = Conv::new(UDP, "10.0.0.1", 50000, "10.0.0.2", 443);
            // Packet 0 holds the second half and PING/PADDING; packet 1
            // the first half.
            let mut f0 = vec![1, 0, 0];
            f0.extend(crypto_frame(60, &hello[60..]));
            let p0 = seal_initial(version, &dcid, 0, &f0);
            let p1 = seal_initial(version, &dcid, 1, &crypto_frame(0, &hello[..60]));
            let pkt = quic_pkt(&c, &p0);
            assert_eq!(e.inspect(&mut c.flow, &pkt, 0), Inspection::Pending);
            assert_eq!(e.free_slots(), 1023);
            let pkt = quic_pkt(&c, &p1);
            let Inspection::Decided { class, hostname } = e.inspect(&mut c.flow, &pkt, 0) else {
                panic!("not decided")
            };
            assert_eq!(
                (class.protocol, hostname),
                (Protocol::Quic, Some("www.zoom.us"))
            );
            assert_eq!(e.app_name(class.app), Some("Zoom"));
            assert_eq!(class.category, Category::VoIP);
            assert_eq!(e.free_slots(), 1024);
        }
    }

    #[test]
    fn dns_query_names_the_app_but_stays_network() {
        let mut e = engine();
        let mut c = Conv::new(UDP, "10.0.0.1", 53000, "10.0.0.53", 53);
        let mut q = vec![0xab, 0xcd, 1, 0x20, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in ["i", "ytimg", "com"] {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let (class, host) = c.send(&mut e, true, &q, 0);
        let class = class.unwrap();
        assert_eq!(
            (class.protocol, class.category),
            (Protocol::Dns, Category::Network)
        );
        assert_eq!(e.app_name(class.app), Some("YouTube"));
        assert_eq!(host.as_deref(), Some("i.ytimg.com"));
    }

    #[test]
    fn ftp_passive_and_active_data_connections_are_expected() {
        let mut e = engine();
        let mut ctl = Conv::new(TCP, "10.0.0.1", 40000, "192.0.2.10", 21);
        ctl.handshake(&mut e);
        let (class, _) = ctl.send(&mut e, false, b"220 (vsFTPd 3.0.5)\r\n", 0);
        assert_eq!(class.map(|c| c.protocol), Some(Protocol::Ftp));
        assert!(ctl.flow.wants_packets());
        ctl.send(&mut e, true, b"EPSV\r\n", SEC);
        ctl.send(
            &mut e,
            false,
            b"229 Entering Extended Passive Mode (|||50001|)\r\n",
            SEC,
        );
        ctl.send(
            &mut e,
            false,
            b"227 Entering Passive Mode (192,0,2,10,195,82).\r\n",
            SEC,
        );
        ctl.send(&mut e, true, b"PORT 10,0,0,1,78,33\r\n", SEC);
        for (client, cport, server, sport) in [
            ("10.0.0.1", 40001, "192.0.2.10", 50001),
            ("10.0.0.1", 40002, "192.0.2.10", 195 * 256 + 82),
            ("192.0.2.10", 20, "10.0.0.1", 78 * 256 + 33),
        ] {
            let mut data = Conv::new(TCP, client, cport, server, sport);
            let (class, _) = data.send(&mut e, true, b"", 2 * SEC);
            let class = class.unwrap();
            assert_eq!(
                (class.protocol, class.confidence, class.packets),
                (Protocol::FtpData, Confidence::Dpi, 1)
            );
            assert_eq!(class.category, Category::FileTransfer);
        }
        // Expired after two minutes.
        let mut late = Conv::new(TCP, "10.0.0.1", 40009, "192.0.2.10", 50001);
        assert_eq!(late.send(&mut e, true, b"", 200 * SEC).0, None);
    }

    #[test]
    fn plain_220_needs_an_ftp_command() {
        let mut e = engine();
        let mut c = Conv::new(TCP, "10.0.0.1", 40000, "192.0.2.10", 2121);
        assert_eq!(c.send(&mut e, false, b"220 Service ready\r\n", 0).0, None);
        let (class, _) = c.send(&mut e, true, b"USER anonymous\r\n", 0);
        assert_eq!(class.map(|c| c.protocol), Some(Protocol::Ftp));
        // SMTP's greeting and EHLO are not FTP.
        let mut s = Conv::new(TCP, "10.0.0.1", 40001, "192.0.2.10", 25);
        assert_eq!(s.send(&mut e, false, b"220 mx ESMTP\r\n", 0).0, None);
        assert_eq!(s.send(&mut e, true, b"EHLO me\r\n", 0).0, None);
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 160, 0x11, 0x22, 0x33, 0x44]);
        p.extend_from_slice(&[0xff; 160]);
        p
    }

    #[test]
    fn sip_invite_sets_up_rtp_and_rtcp_expectations() {
        let mut e = engine();
        let mut sipc = Conv::new(UDP, "10.0.0.1", 5061, "10.0.0.2", 5060);
        let invite = b"INVITE sip:service@10.0.0.2:5060 SIP/2.0\r\nCall-ID: 1\r\n\r\nv=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 6000 RTP/AVP 0\r\n";
        let (class, host) = sipc.send(&mut e, true, invite, 0);
        assert_eq!(
            class.map(|c| (c.protocol, c.category)),
            Some((Protocol::Sip, Category::VoIP))
        );
        assert_eq!(host, None);
        let answer =
            b"SIP/2.0 200 OK\r\n\r\nv=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 7000 RTP/AVP 0\r\n";
        assert_eq!(sipc.send(&mut e, false, answer, 0).0, None);
        // Media from the answerer to the offerer, and the other way.
        let mut m1 = Conv::new(UDP, "10.0.0.2", 7000, "10.0.0.1", 6000);
        assert_eq!(
            m1.send(&mut e, true, &rtp(1), SEC).0.map(|c| c.protocol),
            Some(Protocol::Rtp)
        );
        let mut m2 = Conv::new(UDP, "10.0.0.2", 7001, "10.0.0.1", 6001);
        assert_eq!(
            m2.send(&mut e, true, b"\x81\xc9\x00\x01abcd", SEC)
                .0
                .map(|c| c.protocol),
            Some(Protocol::Rtcp)
        );
    }

    #[test]
    fn rtp_without_sip_needs_two_packets_of_one_stream() {
        let mut e = engine();
        let mut c = Conv::new(UDP, "10.0.0.1", 30000, "10.0.0.2", 30002);
        assert_eq!(c.send(&mut e, true, &rtp(100), 0).0, None);
        assert_eq!(c.send(&mut e, true, &rtp(500), 0).0, None);
        let (class, _) = c.send(&mut e, true, &rtp(501), 0);
        let class = class.unwrap();
        assert_eq!((class.protocol, class.packets), (Protocol::Rtp, 3));
    }

    #[test]
    fn single_packet_protocols_decide_like_ndpi() {
        let mysql = crate::dpi::dissect::mysql::tests_greeting();
        let cases: Vec<(u8, u16, bool, Vec<u8>, Protocol)> = vec![
            (
                TCP,
                22,
                false,
                b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
                Protocol::Ssh,
            ),
            (
                TCP,
                5432,
                true,
                vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f],
                Protocol::PostgreSql,
            ),
            (
                TCP,
                6379,
                true,
                b"*1\r\n$4\r\nPING\r\n".to_vec(),
                Protocol::Redis,
            ),
            (TCP, 3306, false, mysql, Protocol::MySql),
            (
                TCP,
                873,
                false,
                b"@RSYNCD: 31.0\n".to_vec(),
                Protocol::Rsync,
            ),
            (
                TCP,
                445,
                true,
                [&[0, 0, 0, 68, 0xfe, b'S', b'M', b'B'][..], &[0; 64]].concat(),
                Protocol::Smb,
            ),
            (
                UDP,
                123,
                true,
                [&[0x23u8][..], &[0; 47]].concat(),
                Protocol::Ntp,
            ),
            (
                UDP,
                3478,
                true,
                [&[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42][..], &[1; 12]].concat(),
                Protocol::Stun,
            ),
            (
                UDP,
                6881,
                true,
                b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe".to_vec(),
                Protocol::BitTorrent,
            ),
            (
                UDP,
                27015,
                true,
                b"\xff\xff\xff\xffTSource Engine Query\0".to_vec(),
                Protocol::Game,
            ),
        ];
        for (l4, port, from_client, payload, want) in cases {
            let mut e = engine();
            let mut c = Conv::new(l4, "10.0.0.1", 45000, "10.0.0.2", port);
            let (class, _) = c.send(&mut e, from_client, &payload, 0);
            let class = class.unwrap_or_else(|| panic!("{want:?} undecided"));
            assert_eq!((class.protocol, class.confidence), (want, Confidence::Dpi));
            assert_eq!(
                class.category,
                if want == Protocol::Game {
                    Category::Gaming
                } else {
                    want.default_category()
                }
            );
        }
    }

    #[test]
    fn game_ports_with_small_datagrams_both_ways_are_gaming() {
        let mut e = engine();
        let mut c = Conv::new(UDP, "10.0.0.1", 50000, "10.0.0.2", 3074);
        let mut last = None;
        for i in 0..6 {
            last = c
                .send(&mut e, i % 2 == 0, &[0x42, i, 9, 9, 9, 9, 9, 9], 0)
                .0;
        }
        let class = last.unwrap();
        assert_eq!(
            (class.protocol, class.category),
            (Protocol::Game, Category::Gaming)
        );
        assert_eq!(e.app_name(class.app), Some("Xbox Live"));
    }

    #[test]
    fn undecided_flows_fall_back_to_a_port_guess() {
        let mut e = DpiEngine::new(DpiConfig {
            max_packets: 2,
            ..DpiConfig::default()
        })
        .unwrap();
        let mut c = Conv::new(TCP, "10.0.0.1", 40000, "10.0.0.2", 5432);
        assert_eq!(c.send(&mut e, true, b"\x01\x02", 0).0, None);
        let class = c.send(&mut e, false, b"\x03", 0).0.unwrap();
        assert_eq!(
            (class.protocol, class.confidence, class.packets),
            (Protocol::PostgreSql, Confidence::Port, 2)
        );
        assert_eq!(class.category, Category::Database);
        assert!(c.flow.is_done());
        // finish() on an undecided flow, with and without a known port.
        let mut f = FlowDpi::default();
        let class = e.finish(&mut f, UDP, 443, 50000);
        assert_eq!(
            (class.protocol, class.confidence),
            (Protocol::Quic, Confidence::Port)
        );
        let mut f = FlowDpi::default();
        let class = e.finish(&mut f, TCP, 40000, 40001);
        assert_eq!(
            (class.protocol, class.confidence),
            (Protocol::Unknown, Confidence::None)
        );
        assert_eq!(class.category, Category::Unknown);
    }

    #[test]
    fn config_rules_name_apps_and_bad_ones_are_refused() {
        let rule = |s: &str, a: &str, c: &str| AppRuleConfig {
            suffix: s.into(),
            app: a.into(),
            category: c.into(),
        };
        let mut e = DpiEngine::new(DpiConfig {
            rules: vec![rule("intranet.corp", "Intranet", "FileTransfer")],
            ..DpiConfig::default()
        })
        .unwrap();
        assert!(e.app_count() > 50);
        let mut c = Conv::new(TCP, "10.0.0.1", 40000, "10.0.0.2", 443);
        let class = c
            .send(
                &mut e,
                true,
                &client_hello_record("files.intranet.corp", &[]),
                0,
            )
            .0
            .unwrap();
        assert_eq!(e.app_name(class.app), Some("Intranet"));
        assert_eq!(e.app_category(class.app), Some(Category::FileTransfer));
        assert_eq!(class.category, Category::FileTransfer);
        let err = DpiEngine::new(DpiConfig {
            rules: vec![
                rule("ok.example", "A", "Web"),
                rule("bad..example", "B", "Web"),
            ],
            ..DpiConfig::default()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("dpi rule 1: suffix \"bad..example\""),
            "{err}"
        );
    }

    #[test]
    fn arbitrary_packet_sequences_do_not_panic() {
        // A deterministic generator: bytes biased towards the magic values
        // dissectors look for.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds: [&[u8]; 6] = [
            &client_hello_record("a.example", &["h2"]),
            b"GET / HTTP/1.1\r\nHost: x\r\n",
            b"INVITE sip:a@b SIP/2.0\r\n\r\nv=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
            b"227 Entering Passive Mode (1,2,3,4,5,6)\r\n",
            &rfc9001_packet(),
            b"\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01",
        ];
        let mut e = DpiEngine::new(DpiConfig {
            reassembly_slots: 4,
            ..DpiConfig::default()
        })
        .unwrap();
        for round in 0..3000u64 {
            let seed = seeds[(next() % seeds.len() as u64) as usize];
            let mut buf = seed.to_vec();
            for _ in 0..(next() % 8) {
                if buf.is_empty() {
                    break;
                }
                let i = (next() % buf.len() as u64) as usize;
                buf[i] = next() as u8;
            }
            buf.truncate((next() % (buf.len() as u64 + 1)) as usize);
            let l4 = if next() % 2 == 0 { TCP } else { UDP };
            let port = [21u16, 53, 80, 443, 5060, 3478, 123, 27015][(next() % 8) as usize];
            let mut c = Conv::new(
                l4,
                "10.0.0.1",
                40000 + (round % 50) as u16,
                "10.0.0.2",
                port,
            );
            for _ in 0..(next() % 4 + 1) {
                let seq = next() as u32;
                let pkt = c.pkt(next() % 3 != 0, seq, &buf);
                let _ = e.inspect(&mut c.flow, &pkt, round * SEC / 10);
            }
            let _ = e.finish(&mut c.flow, l4, 40000, port);
        }
        assert!(e.free_slots() <= 4);
    }
}
