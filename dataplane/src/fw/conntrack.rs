//! Per-core connection tracking: which flows the firewall let in, in what
//! state, until when.
//!
//! The table is the DPI's [`FlowTable`] (cache-line buckets, two choices,
//! cuckoo moves, ~1 ms stamps), keyed by the same bidirectional
//! [`FlowKey`], so both directions of a flow find one entry and a packet
//! of a tracked flow costs one lookup: the two metadata lines and the
//! matching slot. Its value is generic: a [`Conn`] (2 bytes: 40 bytes per
//! slot, 46.4 bytes per flow) or any [`ConnSlot`] that holds one next to
//! other per-flow state (the DPI's, when the pipeline shares one table
//! between the firewall and the policy; see docs/firewall.md).
//!
//! What it uses of the table is the second set of calls
//! ([`FlowTable::find_mut`], [`FlowTable::insert_with`],
//! [`FlowTable::expire_by`]), because conntrack differs from the DPI in
//! two ways:
//! - **per-state idle timeouts** (RFC 5382 REQ-5 for TCP, RFC 4787 REQ-5
//!   for UDP, nf_conntrack's defaults otherwise; see [`Timeouts`]), where
//!   the DPI has one for TCP and one for the rest. The table's own two are
//!   set to the largest of each, and every lookup and sweep judges the
//!   flow's age against its state's timeout.
//! - **no eviction of established flows.** A new flow takes a free slot of
//!   its two buckets; when both are full it may displace only an idle
//!   flow, an embryonic one (a TCP handshake not completed, a UDP or ICMP
//!   flow not answered) or a finished TCP one (`TimeWait`, `Close`), the
//!   least recently seen first, like nf_conntrack's `early_drop`. If none
//!   is there, the new flow is dropped and counted
//!   ([`FwDrop::TableFull`]).
//!
//! SYN floods: embryonic flows are also held to a quota
//! ([`ConntrackConfig::max_embryonic`], a quarter of the table by
//! default). At the quota a new embryonic flow must displace an embryonic
//! flow of its own buckets or is dropped ([`FwDrop::EmbryonicLimit`]). A
//! flood therefore never holds more than the quota, never displaces an
//! established flow, and costs per packet one lookup plus a scan of the
//! twenty slots of its two buckets.

use super::tcp_state::{self, Segment, Step, TcpInvalid, TcpState};
use super::{Dir, FwDrop, State, Zone};
use crate::dpi::flowtable::{
    Admit, DisplaceReason, EntryKind, FlowTable, FlowTableConfig, FlowTableError,
};
use crate::dpi::key::{FlowKey, Side};

/// A tracked connection: 2 bytes in its flow-table slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conn {
    /// [`State::code`]; 0: no connection (a fresh slot of a shared table).
    state: u8,
    flags: u8,
}

const _: () = assert!(std::mem::size_of::<Conn>() == 2);
// 38-byte key + 2-byte value: 40 bytes a slot, 46.4 bytes a flow.
const _: () = assert!(crate::dpi::flowtable::bytes_per_slot_x10::<Conn>() == 464);

/// The originator is the key's `Hi` side.
const ORIGIN_HI: u8 = 1 << 0;
const FROM_SHIFT: u8 = 1;
const TO_SHIFT: u8 = 3;
/// The first FIN came from the reply side.
const FIN_BY_REPLY: u8 = 1 << 5;
/// Admitted before its application was known; decide again once it is.
const RECHECK: u8 = 1 << 6;
/// Denied once its application was known.
const BLOCKED: u8 = 1 << 7;

impl Conn {
    pub fn new(state: State, origin: Side, from: Zone, to: Zone) -> Conn {
        Conn {
            state: state.code(),
            flags: u8::from(origin == Side::Hi)
                | (from as u8) << FROM_SHIFT
                | (to as u8) << TO_SHIFT,
        }
    }

    /// None for a slot that holds no connection.
    pub fn state(&self) -> Option<State> {
        State::from_code(self.state)
    }

    /// The side of the flow key that opened the connection.
    pub fn origin(&self) -> Side {
        if self.flags & ORIGIN_HI != 0 {
            Side::Hi
        } else {
            Side::Lo
        }
    }

    /// The zones of the original direction: (from, to).
    pub fn zones(&self) -> (Zone, Zone) {
        (
            Zone::from_bits(self.flags >> FROM_SHIFT),
            Zone::from_bits(self.flags >> TO_SHIFT),
        )
    }

    /// The direction of a packet sent by `side`.
    pub fn dir_of(&self, side: Side) -> Dir {
        if side == self.origin() {
            Dir::Orig
        } else {
            Dir::Reply
        }
    }

    /// The zones a packet travelling `dir` must come from and go to.
    pub fn zones_of(&self, dir: Dir) -> (Zone, Zone) {
        let (f, t) = self.zones();
        match dir {
            Dir::Orig => (f, t),
            Dir::Reply => (t, f),
        }
    }

    pub fn needs_recheck(&self) -> bool {
        self.flags & RECHECK != 0
    }

    pub fn is_blocked(&self) -> bool {
        self.flags & BLOCKED != 0
    }

    fn fin_by_reply(&self) -> bool {
        self.flags & FIN_BY_REPLY != 0
    }

    fn set_flag(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

/// A flow-table value that holds a [`Conn`]: `Conn` itself, or a larger
/// per-flow record shared with other stages.
pub trait ConnSlot: Copy + Default {
    fn conn(&self) -> &Conn;
    fn conn_mut(&mut self) -> &mut Conn;
}

impl ConnSlot for Conn {
    fn conn(&self) -> &Conn {
        self
    }
    fn conn_mut(&mut self) -> &mut Conn {
        self
    }
}

/// Idle timeouts in seconds, per state. Defaults: TCP established 1 h
/// (RFC 5382 REQ-5 asks at least 2 h 4 min of a NAT; a firewall in front
/// of hosts that keep alive less often than hourly should raise it),
/// handshake and closing states 2 min or less (nf_conntrack's), UDP 30 s
/// until it is a stream and 180 s after (RFC 4787 REQ-5: at least 2 min),
/// ICMP 30 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_syn_sent: u32,
    pub tcp_syn_recv: u32,
    pub tcp_established: u32,
    pub tcp_fin_wait: u32,
    pub tcp_close_wait: u32,
    pub tcp_last_ack: u32,
    pub tcp_time_wait: u32,
    pub tcp_close: u32,
    /// UDP and other protocols, `Unreplied` and `Replied`.
    pub udp_unreplied: u32,
    /// UDP and other protocols, `Assured`.
    pub udp_assured: u32,
    /// ICMP and ICMPv6 echo, any state.
    pub icmp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn_sent: 120,
            tcp_syn_recv: 60,
            tcp_established: 3600,
            tcp_fin_wait: 120,
            tcp_close_wait: 60,
            tcp_last_ack: 30,
            tcp_time_wait: 120,
            tcp_close: 10,
            udp_unreplied: 30,
            udp_assured: 180,
            icmp: 30,
        }
    }
}

/// Construction settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConntrackConfig {
    /// Flows the table holds (rounded up to a multiple of ten).
    pub capacity: usize,
    /// Embryonic flows held at most (see the module docs).
    pub max_embryonic: usize,
    /// Ticks of the caller's clock per second.
    pub ticks_per_second: u64,
    pub timeouts: Timeouts,
    /// Pick up TCP connections mid-stream: an ACK with no connection
    /// tracked starts one as `Established` instead of being dropped.
    pub tcp_pickup: bool,
}

impl ConntrackConfig {
    /// `capacity` flows, a quarter of them embryonic at most, default
    /// timeouts, no pickup.
    pub fn new(capacity: usize, ticks_per_second: u64) -> ConntrackConfig {
        ConntrackConfig {
            capacity,
            max_embryonic: capacity.div_ceil(4),
            ticks_per_second,
            timeouts: Timeouts::default(),
            tcp_pickup: false,
        }
    }
}

const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// Timeouts in ticks, indexed by state code (TCP, UDP and other
/// protocols), and ICMP's.
#[derive(Debug, Clone, Copy)]
struct Ticks {
    by_code: [u64; 12],
    icmp: u64,
}

impl Ticks {
    fn new(t: &Timeouts, tps: u64) -> Ticks {
        let s = |secs: u32| u64::from(secs).saturating_mul(tps);
        Ticks {
            by_code: [
                0,
                s(t.tcp_syn_sent),
                s(t.tcp_syn_recv),
                s(t.tcp_established),
                s(t.tcp_fin_wait),
                s(t.tcp_close_wait),
                s(t.tcp_last_ack),
                s(t.tcp_time_wait),
                s(t.tcp_close),
                s(t.udp_unreplied),
                s(t.udp_unreplied),
                s(t.udp_assured),
            ],
            icmp: s(t.icmp),
        }
    }

    #[inline]
    fn of(&self, proto: u8, state: State) -> u64 {
        if proto == ICMP || proto == ICMPV6 {
            self.icmp
        } else {
            self.by_code[usize::from(state.code())]
        }
    }

    /// Whether a flow of `proto` in `conn`'s state is idle after
    /// `idle_ticks` (a slot with no connection always is).
    #[inline]
    fn idle(&self, proto: u8, conn: &Conn, idle_ticks: u64) -> bool {
        conn.state().is_none_or(|s| idle_ticks > self.of(proto, s))
    }
}

/// What a packet is to its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Tcp(Segment),
    /// UDP, SCTP or another protocol tracked by addresses and ports only.
    Datagram,
    EchoRequest,
    EchoReply,
}

/// The outcome of [`Conntrack::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A tracked flow's packet, allowed; the flow is now in `state` and
    /// marked seen.
    Tracked {
        dir: Dir,
        state: State,
        origin: Side,
        /// The flow waits for its application to be decided again.
        recheck: bool,
    },
    /// A tracked flow's packet, refused. Nothing changed.
    Refused(FwDrop),
    /// No live connection (absent, idle, or finished and reopened by a
    /// SYN): the packet must be judged as a new flow.
    Untracked,
}

/// Counters kept by the table side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtStats {
    pub embryonic_evicted: u64,
    pub expired: u64,
}

/// The per-core connection table.
#[derive(Debug)]
pub struct Conntrack<V: ConnSlot = Conn> {
    table: FlowTable<V>,
    ticks: Ticks,
    /// Embryonic connections in the table (idle ones included until they
    /// leave it).
    embryonic: usize,
    max_embryonic: usize,
    pickup: bool,
    stats: CtStats,
}

fn tcp_drop(e: TcpInvalid) -> FwDrop {
    match e {
        TcpInvalid::Flags => FwDrop::TcpFlags,
        TcpInvalid::SynAckWithoutSyn => FwDrop::TcpSynAckWithoutSyn,
        TcpInvalid::BeforeHandshake => FwDrop::TcpNotEstablished,
        TcpInvalid::Unexpected => FwDrop::TcpUnexpected,
    }
}

fn is_embryonic(c: &Conn) -> bool {
    c.state().is_some_and(State::is_embryonic)
}

impl<V: ConnSlot> Conntrack<V> {
    /// All the memory the table will use, allocated here.
    pub fn new(config: &ConntrackConfig) -> Result<Conntrack<V>, FlowTableError> {
        let t = &config.timeouts;
        let tps = config.ticks_per_second;
        let secs = |s: u32| u64::from(s).saturating_mul(tps);
        let tcp_max = [
            t.tcp_syn_sent,
            t.tcp_syn_recv,
            t.tcp_established,
            t.tcp_fin_wait,
            t.tcp_close_wait,
            t.tcp_last_ack,
            t.tcp_time_wait,
            t.tcp_close,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        let other_max = t.udp_unreplied.max(t.udp_assured).max(t.icmp);
        let table = FlowTable::new(&FlowTableConfig {
            capacity: config.capacity,
            ticks_per_second: tps,
            tcp_idle_timeout: secs(tcp_max),
            other_idle_timeout: secs(other_max),
        })?;
        Ok(Conntrack {
            table,
            ticks: Ticks::new(t, tps),
            embryonic: 0,
            max_embryonic: config.max_embryonic,
            pickup: config.tcp_pickup,
            stats: CtStats::default(),
        })
    }

    /// The state a new flow starts in, if this packet may start one.
    pub fn first_state(&self, ev: Event) -> Result<State, FwDrop> {
        match ev {
            Event::Tcp(seg) => tcp_state::first(seg, self.pickup)
                .map(State::Tcp)
                .map_err(tcp_drop),
            Event::Datagram | Event::EchoRequest => Ok(State::Unreplied),
            Event::EchoReply => Err(FwDrop::IcmpUnsolicited),
        }
    }

    /// A packet sent by `side` of `key` from zone `from` to zone `to`:
    /// moves its live connection on and marks it seen, or refuses it
    /// without changing anything, or says it has none. One table lookup.
    #[inline]
    pub fn update(
        &mut self,
        key: &FlowKey,
        hash: u64,
        side: Side,
        (from, to): (Zone, Zone),
        ev: Event,
        now: u64,
    ) -> Lookup {
        let Some(mut found) = self.table.find_mut(key, hash, now) else {
            return Lookup::Untracked;
        };
        let conn = *found.value.conn();
        let Some(state) = conn.state() else {
            return Lookup::Untracked;
        };
        if found.idle_ticks > self.ticks.of(key.proto, state) {
            return Lookup::Untracked;
        }
        let dir = conn.dir_of(side);
        if (from, to) != conn.zones_of(dir) {
            return Lookup::Refused(FwDrop::ZoneMismatch);
        }
        if conn.is_blocked() {
            return Lookup::Refused(FwDrop::AppDeny);
        }
        let mut fin_by_reply = conn.fin_by_reply();
        let next = match (ev, state) {
            (Event::Tcp(seg), State::Tcp(t)) => match tcp_state::next(t, fin_by_reply, dir, seg) {
                Ok(Step::To {
                    state,
                    fin_by_reply: f,
                }) => {
                    fin_by_reply = f;
                    State::Tcp(state)
                }
                Ok(Step::Reopen) => return Lookup::Untracked,
                Err(e) => return Lookup::Refused(tcp_drop(e)),
            },
            // The key's protocol decides the event, so a flow never changes
            // kind; refuse rather than trust a confused caller.
            (Event::Tcp(_), _) | (_, State::Tcp(_)) => {
                return Lookup::Refused(FwDrop::TcpUnexpected)
            }
            (Event::Datagram, s) => match (dir, s) {
                (Dir::Reply, State::Unreplied) => State::Replied,
                (Dir::Orig, State::Replied) => State::Assured,
                (_, s) => s,
            },
            (Event::EchoRequest, s) if dir == Dir::Orig => s,
            (Event::EchoReply, _) if dir == Dir::Reply => State::Replied,
            (Event::EchoRequest | Event::EchoReply, _) => {
                return Lookup::Refused(FwDrop::IcmpUnsolicited)
            }
        };
        let c = found.value.conn_mut();
        c.state = next.code();
        c.set_flag(FIN_BY_REPLY, fin_by_reply);
        found.touch();
        match (state.is_embryonic(), next.is_embryonic()) {
            (true, false) => self.embryonic -= 1,
            (false, true) => self.embryonic += 1,
            _ => {}
        }
        Lookup::Tracked {
            dir,
            state: next,
            origin: conn.origin(),
            recheck: conn.needs_recheck(),
        }
    }

    /// Starts a connection for a new flow that [`Conntrack::update`] found
    /// untracked and the rules admitted: `side` opened it from `from` to
    /// `to`, in `state` (from [`Conntrack::first_state`]). Replaces an
    /// idle or finished entry of the same key in place (with a fresh
    /// value); otherwise takes a slot as the module docs say, or fails.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &mut self,
        key: &FlowKey,
        hash: u64,
        side: Side,
        (from, to): (Zone, Zone),
        state: State,
        recheck: bool,
        now: u64,
    ) -> Result<(), FwDrop> {
        let mut conn = Conn::new(state, side, from, to);
        conn.set_flag(RECHECK, recheck);
        let embryonic = state.is_embryonic();
        if let Some(mut found) = self.table.find_mut(key, hash, now) {
            if is_embryonic(found.value.conn()) {
                self.embryonic -= 1;
            }
            *found.value = V::default();
            *found.value.conn_mut() = conn;
            found.touch();
            self.embryonic += usize::from(embryonic);
            return Ok(());
        }
        let ticks = self.ticks;
        let at_quota = embryonic && self.embryonic >= self.max_embryonic;
        let (admit, fail) = if at_quota {
            (Admit::DisplaceOnly, FwDrop::EmbryonicLimit)
        } else {
            (Admit::Free, FwDrop::TableFull)
        };
        let judge = |k: &FlowKey, v: &V, idle: u64| {
            let c = v.conn();
            let embryonic = is_embryonic(c);
            let finished = matches!(
                c.state(),
                Some(State::Tcp(TcpState::TimeWait | TcpState::Close))
            );
            if at_quota && !embryonic {
                // Displacing anything else would grow the embryonic count.
                None
            } else if ticks.idle(k.proto, c, idle) {
                Some(DisplaceReason::Expired)
            } else if embryonic || finished {
                Some(DisplaceReason::Evicted)
            } else {
                None
            }
        };
        let entry = self
            .table
            .insert_with(key, hash, now, admit, judge)
            .ok_or(fail)?;
        *entry.value.conn_mut() = conn;
        if let EntryKind::Replaced(d) = entry.kind {
            if is_embryonic(d.value.conn()) {
                self.embryonic -= 1;
                if d.reason == DisplaceReason::Evicted {
                    self.stats.embryonic_evicted += 1;
                }
            }
        }
        self.embryonic += usize::from(embryonic);
        Ok(())
    }

    /// Settles a flow that waited for its application: blocks it
    /// (`block`) or lets it go on without further checks.
    pub fn settle(&mut self, key: &FlowKey, hash: u64, block: bool, now: u64) {
        if let Some(found) = self.table.find_mut(key, hash, now) {
            let c = found.value.conn_mut();
            c.set_flag(RECHECK, false);
            c.set_flag(BLOCKED, block);
        }
    }

    /// Removes connections idle at `now` (by their state's timeout) from
    /// the next `budget` buckets of ten; returns how many.
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let ticks = self.ticks;
        let mut embryonic_gone = 0;
        let n = self.table.expire_by(now, budget, |k, v, idle| {
            let c = v.conn();
            let gone = ticks.idle(k.proto, c, idle);
            if gone && is_embryonic(c) {
                embryonic_gone += 1;
            }
            gone
        });
        self.embryonic -= embryonic_gone;
        self.stats.expired += n as u64;
        n
    }

    /// The live connection of `key` at `now`, without marking it seen.
    pub fn get(&mut self, key: &FlowKey, hash: u64, now: u64) -> Option<Conn> {
        let found = self.table.find_mut(key, hash, now)?;
        let conn = *found.value.conn();
        (!self.ticks.idle(key.proto, &conn, found.idle_ticks)).then_some(conn)
    }

    /// Entries in the table, idle ones included until swept.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Buckets of ten (the unit of [`Conntrack::expire`]'s budget).
    pub fn bucket_count(&self) -> usize {
        self.table.bucket_count()
    }

    /// Embryonic entries in the table (see [`State::is_embryonic`]).
    pub fn embryonic(&self) -> usize {
        self.embryonic
    }

    pub fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }

    pub fn stats(&self) -> CtStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpi::flowtable::bytes_per_slot_x10;
    use crate::policy::PolicyFlow;

    /// The value a table shared by the policy (DPI) and the firewall would
    /// hold (docs/firewall.md, "One table or two").
    #[derive(Debug, Clone, Copy, Default)]
    #[allow(dead_code)] // `policy` is here for its size and layout.
    struct Shared {
        policy: PolicyFlow,
        conn: Conn,
    }

    impl ConnSlot for Shared {
        fn conn(&self) -> &Conn {
            &self.conn
        }
        fn conn_mut(&mut self) -> &mut Conn {
            &mut self.conn
        }
    }

    #[test]
    fn bytes_per_flow_alone_and_shared_with_the_policy() {
        assert_eq!(bytes_per_slot_x10::<Conn>(), 464);
        assert_eq!(bytes_per_slot_x10::<PolicyFlow>(), 624);
        // Sharing costs 2 bytes a slot over the policy's own table: 0.4
        // bytes past the DPI's 64-byte bound.
        assert_eq!(std::mem::size_of::<Shared>(), 20);
        assert_eq!(bytes_per_slot_x10::<Shared>(), 644);
    }

    #[test]
    fn a_value_shared_with_the_policy_tracks_a_flow() {
        let mut ct: Conntrack<Shared> = Conntrack::new(&ConntrackConfig::new(100, 1000)).unwrap();
        let (key, side) = FlowKey::new(
            17,
            "10.0.0.1".parse().unwrap(),
            1,
            "10.0.0.2".parse().unwrap(),
            2,
        );
        let h = key.hash64();
        ct.insert(
            &key,
            h,
            side,
            (Zone::Lan, Zone::Wan),
            State::Unreplied,
            false,
            0,
        )
        .unwrap();
        let r = ct.update(
            &key,
            h,
            side.other(),
            (Zone::Wan, Zone::Lan),
            Event::Datagram,
            1,
        );
        assert!(matches!(
            r,
            Lookup::Tracked {
                state: State::Replied,
                dir: Dir::Reply,
                ..
            }
        ));
        assert_eq!(ct.len(), 1);
        assert_eq!(ct.embryonic(), 0);
    }
}
