//! The per-core mapping table, keyed both ways, bounded and expiring.
//!
//! **External → internal** is a direct array: one [`Mapping`] slot per
//! (protocol, port of this worker's slice), at `proto * slice_len +
//! offset(port)`. An inbound packet costs one read of one slot, whether a
//! mapping is there or not, so a flood of unsolicited packets to random
//! ports costs one lookup each and creates nothing. The slot is the
//! mapping: internal endpoint, last-seen stamp, TCP phase, and the remote
//! endpoints it sent to (for filtering).
//!
//! **Internal → external** is an open-addressing index of slot numbers
//! (`u32`), linear probing from the endpoint's keyed hash, at most half
//! full (so a hit reads ~1.5 index entries and a miss ~2.5), with
//! backward-shift deletion (no tombstones, so it never degrades). The
//! index compares against the slot's stored endpoint; it holds no key of
//! its own.
//!
//! Why not the DPI's [`crate::dpi::flowtable::FlowTable`], which the
//! firewall reuses: its key is a 38-byte bidirectional 5-tuple where a
//! mapping's is 7 bytes, it would hold a second copy of the stamps, and the
//! NAT needs the external direction as the primary one (the port *is* the
//! slot, which also makes allocation a probe of the slots themselves). Two
//! structures that must stay consistent on every insert, eviction and
//! expiry would cost more code than this one.
//!
//! Filtering state: the last [`REMOTES`] remote endpoints a mapping sent
//! to, in a fixed array replaced round-robin. A mapping talking to more
//! remotes at once forgets the oldest, whose packets are then filtered
//! (with address-dependent filtering, only if the address differs). A
//! client socket talks to one or two; a peer-to-peer socket with many
//! peers wants endpoint-independent filtering anyway.
//!
//! Time: stamps are 32-bit, in units of the largest power of two of ticks
//! not above a millisecond, compared with wrapping arithmetic; the sweep
//! visits every slot long before an age could wrap (timeouts are at most a
//! day, 2^31 units are 24 days).

use super::config::{Filtering, NatConfig, NatConfigError};
use super::ports::{EndpointHash, PortSlice};
use super::{NatDrop, NatProto, TcpPhase};

/// Remote endpoints remembered per mapping for filtering.
pub const REMOTES: usize = 4;

const LIVE: u8 = 1 << 0;
/// A port of the node's own services: never allocated.
const RESERVED: u8 = 1 << 1;
/// TCP mapping whose last packet said established.
const ESTABLISHED: u8 = 1 << 2;

/// An empty index entry.
const EMPTY: u32 = u32::MAX;

/// One external port's mapping: 36 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Mapping {
    /// Internal address, host byte order.
    int_addr: u32,
    int_port: u16,
    flags: u8,
    /// Next `remote_*` entry to overwrite.
    cursor: u8,
    /// Last seen, in stamp units.
    stamp: u32,
    /// Remote addresses sent to; 0 is an empty entry.
    remote_addr: [u32; REMOTES],
    remote_port: [u16; REMOTES],
}

const _: () = assert!(std::mem::size_of::<Mapping>() == 36);

impl Mapping {
    /// A live mapping of internal `(addr, port)` seen at `now`, with no
    /// remote endpoints and no TCP phase yet: what both a new mapping and
    /// one started over in an idled-out slot begin as.
    fn new(addr: u32, port: u16, now: u32) -> Mapping {
        Mapping {
            int_addr: addr,
            int_port: port,
            flags: LIVE,
            stamp: now,
            ..Mapping::default()
        }
    }
}

/// A slot number: `proto * slice_len + offset`.
pub type Slot = u32;

/// The mapping table of one worker.
#[derive(Debug)]
pub struct MappingTable {
    slice: PortSlice,
    hasher: EndpointHash,
    mappings: Vec<Mapping>,
    index: Vec<u32>,
    mask: usize,
    live: usize,
    max_live: usize,
    max_probes: u32,
    /// Next slot the expiry sweep looks at.
    sweep: usize,
    /// log2 of the ticks per stamp unit.
    shift: u32,
    /// In stamp units: TCP established, TCP transitory, UDP, ICMP.
    timeouts: [u32; 4],
    created: u64,
    expired: u64,
    /// Slots and index entries read by lookups (tests count the work).
    #[cfg(test)]
    pub(super) reads: std::cell::Cell<u64>,
}

impl MappingTable {
    pub fn new(config: &NatConfig) -> Result<MappingTable, NatConfigError> {
        config.validate()?;
        let slice = PortSlice::new(
            config.port_lo,
            config.port_hi,
            config.workers,
            config.worker,
        )?;
        let slots = NatProto::COUNT * slice.len();
        let max_live = config.max_mappings.min(slots);
        let index_len = (2 * max_live).next_power_of_two().max(2);
        let bytes = slots * std::mem::size_of::<Mapping>() + index_len * 4;
        let mut mappings = Vec::new();
        let mut index = Vec::new();
        mappings
            .try_reserve_exact(slots)
            .and_then(|_| index.try_reserve_exact(index_len))
            .map_err(|_| NatConfigError::Alloc(bytes))?;
        mappings.resize(slots, Mapping::default());
        index.resize(index_len, EMPTY);
        for &(proto, port) in &config.reserved {
            if let Some(off) = slice.offset(port) {
                mappings[proto as usize * slice.len() + off as usize].flags = RESERVED;
            }
        }
        // Stamp unit: the largest power of two of ticks <= 1 ms.
        let per_ms = (config.ticks_per_second / 1000).max(1);
        let shift = 63 - per_ms.leading_zeros();
        let units = |secs: u32| -> u32 {
            let u = (u128::from(secs) * u128::from(config.ticks_per_second)) >> shift;
            u.min(u128::from(u32::MAX / 2)) as u32
        };
        let t = &config.timeouts;
        Ok(MappingTable {
            slice,
            hasher: EndpointHash::new(config.secret, config.workers),
            mappings,
            index,
            mask: index_len - 1,
            live: 0,
            max_live,
            max_probes: u32::from(config.max_probes),
            sweep: 0,
            shift,
            timeouts: [
                units(t.tcp_established),
                units(t.tcp_transitory),
                units(t.udp),
                units(t.icmp),
            ],
            created: 0,
            expired: 0,
            #[cfg(test)]
            reads: std::cell::Cell::new(0),
        })
    }

    pub fn slice(&self) -> &PortSlice {
        &self.slice
    }

    pub fn hasher(&self) -> &EndpointHash {
        &self.hasher
    }

    /// `now` in stamp units.
    #[inline]
    pub fn units(&self, now: u64) -> u32 {
        (now >> self.shift) as u32
    }

    /// Live mappings (including idle ones the sweep has not reached).
    pub fn live(&self) -> usize {
        self.live
    }

    /// The most live mappings this worker holds.
    pub fn max_live(&self) -> usize {
        self.max_live
    }

    /// Bytes of the slot array and the index.
    pub fn memory_bytes(&self) -> usize {
        self.mappings.len() * std::mem::size_of::<Mapping>() + self.index.len() * 4
    }

    /// Mappings created and expired since construction.
    pub fn counts(&self) -> (u64, u64) {
        (self.created, self.expired)
    }

    #[inline]
    fn proto_of(&self, slot: Slot) -> usize {
        slot as usize / self.slice.len()
    }

    /// The external port of a slot.
    #[inline]
    pub fn external_port(&self, slot: Slot) -> u16 {
        self.slice.port(slot % self.slice.len() as u32)
    }

    /// The internal (address, port) of a slot.
    #[inline]
    pub fn internal(&self, slot: Slot) -> (u32, u16) {
        let m = &self.mappings[slot as usize];
        (m.int_addr, m.int_port)
    }

    #[inline]
    fn is_idle(&self, slot: Slot, now: u32) -> bool {
        let m = &self.mappings[slot as usize];
        let timeout = match self.proto_of(slot) {
            0 if m.flags & ESTABLISHED != 0 => self.timeouts[0],
            0 => self.timeouts[1],
            1 => self.timeouts[2],
            _ => self.timeouts[3],
        };
        now.wrapping_sub(m.stamp) > timeout
    }

    #[cfg(test)]
    fn count_read(&self) {
        self.reads.set(self.reads.get() + 1);
    }

    #[cfg(not(test))]
    #[inline(always)]
    fn count_read(&self) {}

    /// The live, not idle mapping of external `port`, if this worker owns
    /// it: one slot read.
    #[inline]
    pub fn by_external(&self, proto: NatProto, port: u16, now: u32) -> Option<Slot> {
        let off = self.slice.offset(port)?;
        let slot = (proto as usize * self.slice.len()) as u32 + off;
        self.count_read();
        let live = self.mappings[slot as usize].flags & LIVE != 0;
        (live && !self.is_idle(slot, now)).then_some(slot)
    }

    /// The slot of an internal endpoint of hash `h`, live or idle.
    #[inline]
    fn find_internal(&self, proto: NatProto, addr: u32, port: u16, h: u64) -> Option<Slot> {
        let base = proto as usize * self.slice.len();
        let end = base + self.slice.len();
        let mut pos = h as usize & self.mask;
        for _ in 0..=self.mask {
            self.count_read();
            let e = self.index[pos];
            if e == EMPTY {
                return None;
            }
            let m = &self.mappings[e as usize];
            if (base..end).contains(&(e as usize)) && m.int_addr == addr && m.int_port == port {
                return Some(e);
            }
            pos = (pos + 1) & self.mask;
        }
        None
    }

    /// The live, not idle mapping of an internal endpoint (no refresh).
    pub fn by_internal(&self, proto: NatProto, addr: u32, port: u16, now: u32) -> Option<Slot> {
        let h = self.hasher.hash(addr, port, proto.number());
        self.find_internal(proto, addr, port, h)
            .filter(|&s| !self.is_idle(s, now))
    }

    /// The mapping of an internal endpoint of hash `h` for an outbound
    /// packet: found (refreshed by the caller), started over in place if it
    /// had idled out, or allocated.
    pub fn outbound(
        &mut self,
        proto: NatProto,
        addr: u32,
        port: u16,
        h: u64,
        now: u32,
    ) -> Result<Slot, NatDrop> {
        if let Some(slot) = self.find_internal(proto, addr, port, h) {
            if self.is_idle(slot, now) {
                // Expired but not yet swept: a new mapping, which may keep
                // the port but not the old filtering state.
                self.expired += 1;
                self.created += 1;
                self.mappings[slot as usize] = Mapping::new(addr, port, now);
            }
            return Ok(slot);
        }
        self.allocate(proto, addr, port, h, now)
    }

    /// A new mapping: probes up to `max_probes` ports of the slice from a
    /// start the endpoint's hash picks (RFC 6056 section 3.3.3), taking
    /// the first free one or one whose mapping has idled out.
    fn allocate(
        &mut self,
        proto: NatProto,
        addr: u32,
        port: u16,
        h: u64,
        now: u32,
    ) -> Result<Slot, NatDrop> {
        if self.live >= self.max_live {
            return Err(NatDrop::TableFull);
        }
        let len = self.slice.len() as u64;
        let base = proto as u64 * len;
        // Bits 16..48 of the hash; the index uses the low bits.
        let start = (((h >> 16) & 0xffff_ffff) * len) >> 32;
        let probes = u64::from(self.max_probes).min(len);
        for i in 0..probes {
            let mut off = start + i;
            if off >= len {
                off -= len;
            }
            let slot = (base + off) as Slot;
            let flags = self.mappings[slot as usize].flags;
            if flags & RESERVED != 0 {
                continue;
            }
            if flags & LIVE != 0 {
                if !self.is_idle(slot, now) {
                    continue;
                }
                self.remove(slot);
                self.expired += 1;
            }
            self.mappings[slot as usize] = Mapping::new(addr, port, now);
            let mut pos = h as usize & self.mask;
            while self.index[pos] != EMPTY {
                pos = (pos + 1) & self.mask;
            }
            self.index[pos] = slot;
            self.live += 1;
            self.created += 1;
            return Ok(slot);
        }
        Err(NatDrop::PortExhausted)
    }

    /// Index position an entry's probe starts at.
    fn home(&self, slot: Slot) -> usize {
        let m = &self.mappings[slot as usize];
        let proto = NatProto::ALL[self.proto_of(slot)];
        self.hasher.hash(m.int_addr, m.int_port, proto.number()) as usize & self.mask
    }

    /// Frees a live slot and its index entry (backward-shift deletion:
    /// later entries of the probe run move up into the hole if their home
    /// allows, so lookups never need tombstones).
    fn remove(&mut self, slot: Slot) {
        let mut pos = self.home(slot);
        let mut found = false;
        for _ in 0..=self.mask {
            match self.index[pos] {
                e if e == slot => {
                    found = true;
                    break;
                }
                EMPTY => break,
                _ => pos = (pos + 1) & self.mask,
            }
        }
        if found {
            let mut hole = pos;
            let mut j = pos;
            loop {
                j = (j + 1) & self.mask;
                let e = self.index[j];
                if e == EMPTY {
                    break;
                }
                let home = self.home(e);
                // e may move back to the hole if the hole is on its probe
                // path: cyclically in [home, j).
                if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                    self.index[hole] = e;
                    hole = j;
                }
            }
            self.index[hole] = EMPTY;
        }
        let m = &mut self.mappings[slot as usize];
        if m.flags & LIVE != 0 {
            self.live -= 1;
        }
        *m = Mapping::default();
    }

    /// Marks a mapping seen; for TCP, records the connection's phase.
    #[inline]
    pub fn touch(&mut self, slot: Slot, now: u32, phase: TcpPhase) {
        let is_tcp = self.proto_of(slot) == NatProto::Tcp as usize;
        let m = &mut self.mappings[slot as usize];
        m.stamp = now;
        if is_tcp {
            match phase {
                TcpPhase::Established => m.flags |= ESTABLISHED,
                TcpPhase::Transitory => m.flags &= !ESTABLISHED,
            }
        }
    }

    /// Whether a packet from remote `(addr, port)` may use the mapping
    /// (ICMP passes port 0).
    #[inline]
    pub fn admits(&self, slot: Slot, filtering: Filtering, addr: u32, port: u16) -> bool {
        let m = &self.mappings[slot as usize];
        match filtering {
            Filtering::EndpointIndependent => true,
            Filtering::AddressDependent => addr != 0 && m.remote_addr.contains(&addr),
            Filtering::AddressAndPortDependent => {
                addr != 0
                    && m.remote_addr
                        .iter()
                        .zip(&m.remote_port)
                        .any(|(&a, &p)| a == addr && p == port)
            }
        }
    }

    /// Remembers that the mapping sent to remote `(addr, port)`, so that
    /// filtering admits its answers.
    #[inline]
    pub fn note_remote(&mut self, slot: Slot, filtering: Filtering, addr: u32, port: u16) {
        if filtering == Filtering::EndpointIndependent || self.admits(slot, filtering, addr, port) {
            return;
        }
        let m = &mut self.mappings[slot as usize];
        let i = usize::from(m.cursor) % REMOTES;
        m.remote_addr[i] = addr;
        m.remote_port[i] = port;
        m.cursor = ((i + 1) % REMOTES) as u8;
    }

    /// Removes the mappings idle at `now` among the next `budget` slots,
    /// resuming where the last call stopped. Returns how many it removed.
    /// A few slots per loop iteration sweep the whole table well within
    /// any timeout.
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let now = self.units(now);
        let total = self.mappings.len();
        let mut removed = 0;
        for _ in 0..budget.min(total) {
            let slot = self.sweep as Slot;
            self.sweep = if self.sweep + 1 == total {
                0
            } else {
                self.sweep + 1
            };
            if self.mappings[slot as usize].flags & LIVE != 0 && self.is_idle(slot, now) {
                self.remove(slot);
                removed += 1;
            }
        }
        self.expired += removed as u64;
        removed
    }

    /// Every live mapping as (proto, internal address, internal port,
    /// external port): for the API and tests, not the data path.
    pub fn iter(&self) -> impl Iterator<Item = (NatProto, u32, u16, u16)> + '_ {
        (0..self.mappings.len() as Slot)
            .filter(|&s| self.mappings[s as usize].flags & LIVE != 0)
            .map(|s| {
                let (a, p) = self.internal(s);
                (NatProto::ALL[self.proto_of(s)], a, p, self.external_port(s))
            })
    }

    /// Checks that every live slot is reachable through the index and the
    /// index holds nothing else (tests).
    #[cfg(test)]
    pub(super) fn check_index(&self) {
        let mut in_index = 0;
        for &e in &self.index {
            if e != EMPTY {
                in_index += 1;
                assert!(self.mappings[e as usize].flags & LIVE != 0, "dead slot {e}");
            }
        }
        assert_eq!(in_index, self.live);
        for s in 0..self.mappings.len() as Slot {
            if self.mappings[s as usize].flags & LIVE != 0 {
                let (a, p) = self.internal(s);
                let proto = NatProto::ALL[self.proto_of(s)];
                let h = self.hasher.hash(a, p, proto.number());
                assert_eq!(self.find_internal(proto, a, p, h), Some(s));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata::XorShift;
    use std::net::Ipv4Addr;

    const TPS: u64 = 1000;

    fn table(lo: u16, hi: u16, tweak: impl FnOnce(&mut NatConfig)) -> MappingTable {
        let mut c = NatConfig::new(Ipv4Addr::new(198, 51, 100, 1), 1, 0, 99, TPS);
        c.port_lo = lo;
        c.port_hi = hi;
        c.max_probes = 1024;
        tweak(&mut c);
        MappingTable::new(&c).unwrap()
    }

    fn out(t: &mut MappingTable, addr: u32, port: u16, now: u32) -> Result<Slot, NatDrop> {
        let h = t.hasher().hash(addr, port, 17);
        t.outbound(NatProto::Udp, addr, port, h, now)
    }

    #[test]
    fn mapping_is_36_bytes_and_the_index_at_most_half_full() {
        let t = table(1024, 65535, |_| {});
        assert_eq!(std::mem::size_of::<Mapping>(), 36);
        assert_eq!(t.max_live(), 3 * 64512);
        // 193,536 slots of 36 B + 524,288 index entries of 4 B.
        assert_eq!(t.memory_bytes(), 193_536 * 36 + 524_288 * 4);
        assert!(t.index.len() >= 2 * t.max_live());
    }

    #[test]
    fn random_inserts_and_removals_keep_the_index_consistent() {
        let mut t = table(2000, 2255, |_| {});
        let mut rng = XorShift(5);
        let mut now = 0;
        for round in 0..4000 {
            let addr = 0x0a00_0000 | (rng.next_u32() % 64);
            let port = 1000 + rng.next_u16() % 16;
            if rng.below(3) == 0 {
                // Age everything a little; the sweep removes some.
                now += 20_000;
                t.expire(u64::from(now), 50);
            } else {
                let _ = out(&mut t, addr, port, now);
            }
            if round % 97 == 0 {
                t.check_index();
            }
        }
        t.check_index();
        assert!(t.counts().1 > 100, "expired {:?}", t.counts());
    }

    #[test]
    fn reserved_ports_are_never_allocated() {
        let mut t = table(5000, 5003, |c| {
            c.reserved = vec![(NatProto::Udp, 5001), (NatProto::Udp, 5002)];
        });
        let a = out(&mut t, 1, 1, 0).unwrap();
        let b = out(&mut t, 2, 1, 0).unwrap();
        let mut ports = [t.external_port(a), t.external_port(b)];
        ports.sort();
        assert_eq!(ports, [5000, 5003]);
        assert_eq!(out(&mut t, 3, 1, 0), Err(NatDrop::PortExhausted));
    }
}
