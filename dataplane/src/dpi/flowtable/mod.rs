//! The DPI engine's per-core flow table: one per worker, owned by its core,
//! so it takes no locks and no atomics. Fixed capacity, set at construction
//! and never grown: nothing is allocated after [`FlowTable::new`].
//!
//! Layout (docs/performance.md, "DPI flow table"): open addressing over
//! buckets of [`BUCKET_SLOTS`] slots. A bucket's metadata is one 64-byte
//! cache line (the ten slots' last-seen stamps, 16-bit tags, and a bitmap
//! of which slots hold TCP flows); the slots' keys and values live in a
//! second array, `key | value` packed, at the same index. A flow may live
//! in either of two buckets chosen by its hash ("two choices"), and a new
//! flow goes to the emptier one; when both are full, a flow of theirs is
//! moved to its other bucket if that has room (cuckoo hashing, at most two
//! moves deep), so the table fills to 99.5% of its capacity before it
//! evicts anything. A lookup reads the two metadata lines, and
//! the key and value of the slots whose tag matches (one, almost always).
//! Scanning tags touches no key, so only a real candidate costs a miss.
//!
//! With a 16-byte value that is 64 / 10 + 56 = 62.4 bytes per flow.
//!
//! Time: `now` is in the caller's ticks (the TSC on the worker). Each slot
//! keeps a 32-bit stamp in coarse units of about a millisecond (a power of
//! two of ticks, chosen from the ticks per second given at construction),
//! compared with wrapping arithmetic: ages are exact while below 2^32 units
//! (49 days at 1 ms), which the [`FlowTable::expire`] sweep guarantees for
//! any idle timeout shorter than that.
//!
//! A flow idle for longer than its timeout (TCP or other) is gone: the
//! sweep removes it a few buckets at a time, and a lookup that finds it
//! before the sweep does starts a new flow in its slot. When both of a new
//! flow's buckets are full, the least recently seen of their slots is
//! evicted, and its key and value are handed back so the caller can
//! release whatever it attached to them.
//!
//! A caller whose flows have more than two idle timeouts, or that must not
//! evict some of them (the firewall's connection tracking, `crate::fw`),
//! uses the second set of calls instead: [`FlowTable::find_mut`] (a lookup
//! that inserts nothing and reports how long the flow has idled),
//! [`FlowTable::insert_with`] (an insert that displaces only the flows a
//! caller's judge allows, or fails) and [`FlowTable::expire_by`] (a sweep
//! that asks the caller which flows are idle). They use the same buckets,
//! slots and stamps, so a lookup costs the same lines.

use super::key::FlowKey;
use crate::dpdk::{advise_huge_pages, prefetch};

/// Slots per bucket: ten stamps (40 bytes), ten tags (20) and a 16-bit TCP
/// bitmap fill one cache line.
pub const BUCKET_SLOTS: usize = 10;

/// The largest capacity [`FlowTable::new`] accepts (bucket indexes are
/// derived from 32 bits of the hash).
pub const MAX_CAPACITY: usize = 1 << 32;

/// The IP protocol number of TCP, which has its own idle timeout.
const TCP: u8 = 6;

/// One bucket's metadata: a single cache line. A tag of 0 marks an empty
/// slot.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Bucket {
    /// When each slot's flow was last seen, in stamp units (wrapping).
    stamps: [u32; BUCKET_SLOTS],
    /// 16 bits of each slot's hash, never 0 for an occupied slot.
    tags: [u16; BUCKET_SLOTS],
    /// Bit `i`: slot `i` holds a TCP flow (so the TCP timeout applies).
    tcp: u16,
}

const _: () = assert!(std::mem::size_of::<Bucket>() == 64);
const _: () = assert!(BUCKET_SLOTS <= 16);

/// A slot's key and value, in the array parallel to the buckets.
#[derive(Debug, Clone, Copy, Default)]
struct Slot<V> {
    key: FlowKey,
    value: V,
}

/// The table's bytes per slot, without the few fixed bytes of the struct.
pub const fn bytes_per_slot_x10<V>() -> usize {
    (std::mem::size_of::<Bucket>() * 10).div_ceil(BUCKET_SLOTS)
        + std::mem::size_of::<Slot<V>>() * 10
}

// The bound: at most 64 bytes per flow with the DPI's 16-byte state
// (the worst 16-byte value is 8-aligned, which pads the 38-byte key to 40).
const _: () = assert!(bytes_per_slot_x10::<[u64; 2]>() <= 640);
const _: () = assert!(bytes_per_slot_x10::<super::engine::FlowDpi>() <= 640);
const _: () = assert!(std::mem::size_of::<super::engine::FlowDpi>() <= 16);

/// Construction settings (from the config's `[dpi]` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTableConfig {
    /// Flows the table holds; rounded up to a multiple of
    /// [`BUCKET_SLOTS`].
    pub capacity: usize,
    /// Ticks of the caller's clock per second (the TSC frequency on a
    /// worker); chooses the stamp unit, the largest power of two of ticks
    /// not above a millisecond.
    pub ticks_per_second: u64,
    /// A TCP flow idle for longer than this many ticks is expired.
    pub tcp_idle_timeout: u64,
    /// A flow of any other protocol idle for longer than this many ticks
    /// is expired.
    pub other_idle_timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FlowTableError {
    #[error("flow table capacity {0} is out of range (1 to 2^32)")]
    Capacity(usize),
    #[error("cannot allocate {0} bytes for the flow table")]
    Alloc(usize),
}

/// Counters since construction. `lookups` and `hits` count
/// [`FlowTable::lookup_or_insert`] calls (the per-packet path); `get` is
/// not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowTableStats {
    pub lookups: u64,
    /// Lookups that found their flow live.
    pub hits: u64,
    /// New flows (lookups that did not hit).
    pub inserts: u64,
    /// Live flows dropped to make room for a new one.
    pub evictions: u64,
    /// Flows removed for idling: by the sweep, or replaced when found idle.
    pub expirations: u64,
}

/// Why a flow left its slot to make room for a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplaceReason {
    /// Both buckets were full of live flows; this was the least recently
    /// seen.
    Evicted,
    /// It had been idle for longer than its timeout.
    Expired,
}

/// A flow that left the table, handed back so side state can be released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Displaced<V> {
    pub key: FlowKey,
    pub value: V,
    pub reason: DisplaceReason,
}

/// How [`FlowTable::lookup_or_insert`] found its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind<V> {
    /// The flow was in the table.
    Hit,
    /// A new flow, in a free slot.
    Inserted,
    /// A new flow, in the slot of the flow returned. For
    /// [`DisplaceReason::Expired`] that may be the same key: the flow had
    /// idled out, and this packet starts it over.
    Replaced(Displaced<V>),
}

/// The result of [`FlowTable::lookup_or_insert`]: the flow's value (all
/// `Default` for a new flow) and how it was found.
#[derive(Debug)]
pub struct Entry<'t, V> {
    pub value: &'t mut V,
    pub kind: EntryKind<V>,
}

impl<V> Entry<'_, V> {
    /// The flow was not in the table (its value is `Default`).
    pub fn is_new(&self) -> bool {
        !matches!(self.kind, EntryKind::Hit)
    }
}

/// A flow found by [`FlowTable::find_mut`], live or idle: the caller
/// judges by [`Found::idle_ticks`] and marks it seen with
/// [`Found::touch`] only if the packet counts.
#[derive(Debug)]
pub struct Found<'t, V> {
    pub value: &'t mut V,
    /// Ticks since the flow was last seen, in whole stamp units (about a
    /// millisecond), so exact only to the unit.
    pub idle_ticks: u64,
    stamp: &'t mut u32,
    now: u32,
}

impl<V> Found<'_, V> {
    /// Marks the flow seen at the `now` of the lookup.
    #[inline]
    pub fn touch(&mut self) {
        *self.stamp = self.now;
    }
}

/// Where [`FlowTable::insert_with`] may put a new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// A free slot of its two buckets (moving flows to their other bucket
    /// if that makes one), else the slot of a flow the judge lets go.
    Free,
    /// Only the slot of a flow the judge lets go, even if a slot is free:
    /// for a caller that keeps a quota of some kind of flow.
    DisplaceOnly,
}

/// The per-core flow table, generic over the per-flow value.
#[derive(Debug)]
pub struct FlowTable<V> {
    buckets: Vec<Bucket>,
    slots: Vec<Slot<V>>,
    len: usize,
    /// A stamp unit is `1 << shift` ticks.
    shift: u32,
    /// Idle timeouts in stamp units, rounded up.
    tcp_timeout: u32,
    other_timeout: u32,
    /// The next bucket the expiry sweep visits.
    cursor: usize,
    /// Picks which flows [`FlowTable::make_room`] tries to move two steps.
    kick: usize,
    stats: FlowTableStats,
}

impl<V: Copy + Default> FlowTable<V> {
    /// A table for `config.capacity` flows, all of it allocated (and
    /// zeroed) here.
    pub fn new(config: &FlowTableConfig) -> Result<FlowTable<V>, FlowTableError> {
        if config.capacity == 0 || config.capacity > MAX_CAPACITY {
            return Err(FlowTableError::Capacity(config.capacity));
        }
        let nbuckets = config.capacity.div_ceil(BUCKET_SLOTS);
        let nslots = nbuckets * BUCKET_SLOTS;
        let bytes =
            nbuckets * std::mem::size_of::<Bucket>() + nslots * std::mem::size_of::<Slot<V>>();
        let mut buckets = Vec::new();
        let mut slots = Vec::new();
        buckets
            .try_reserve_exact(nbuckets)
            .and_then(|()| slots.try_reserve_exact(nslots))
            .map_err(|_| FlowTableError::Alloc(bytes))?;
        // Before the first write, so the pages fault in huge.
        advise_huge_pages(&mut buckets);
        advise_huge_pages(&mut slots);
        buckets.resize(nbuckets, Bucket::default());
        slots.resize(nslots, Slot::default());
        let unit = config.ticks_per_second / 1000;
        let shift = if unit <= 1 {
            0
        } else {
            63 - unit.leading_zeros()
        };
        let to_units = |ticks: u64| {
            let units = (ticks >> shift) + u64::from(ticks & ((1u64 << shift) - 1) != 0);
            u32::try_from(units).unwrap_or(u32::MAX)
        };
        Ok(FlowTable {
            buckets,
            slots,
            len: 0,
            shift,
            tcp_timeout: to_units(config.tcp_idle_timeout),
            other_timeout: to_units(config.other_idle_timeout),
            cursor: 0,
            kick: 0,
            stats: FlowTableStats::default(),
        })
    }

    /// The flow of `key` (whose hash is `hash`, e.g. [`FlowKey::hash64`];
    /// the same key must always come with the same hash), inserted with a
    /// `Default` value if it is not in the table or had idled out. Marks it
    /// seen at `now`.
    #[inline]
    pub fn lookup_or_insert(&mut self, key: &FlowKey, hash: u64, now: u64) -> Entry<'_, V> {
        self.stats.lookups += 1;
        let now = self.stamp(now);
        let (b1, b2, tag) = self.place(hash);
        if let Some((b, i)) = self.find(key, b1, b2, tag) {
            let idx = b * BUCKET_SLOTS + i;
            let idle = self.is_idle(b, i, now);
            self.buckets[b].stamps[i] = now;
            let slot = &mut self.slots[idx];
            if !idle {
                self.stats.hits += 1;
                return Entry {
                    value: &mut slot.value,
                    kind: EntryKind::Hit,
                };
            }
            // It idled out and the sweep has not got here yet: this packet
            // starts a new flow with the same key.
            let old = std::mem::take(&mut slot.value);
            self.stats.expirations += 1;
            self.stats.inserts += 1;
            return Entry {
                value: &mut slot.value,
                kind: EntryKind::Replaced(Displaced {
                    key: *key,
                    value: old,
                    reason: DisplaceReason::Expired,
                }),
            };
        }
        let (b, i, displaced) = if let Some((b, i)) = self.free_slot(b1, b2) {
            self.len += 1;
            (b, i, None)
        } else {
            let (b, i) = self.oldest(b1, b2, now);
            let reason = if self.is_idle(b, i, now) {
                self.stats.expirations += 1;
                DisplaceReason::Expired
            } else {
                self.stats.evictions += 1;
                DisplaceReason::Evicted
            };
            let old = self.slots[b * BUCKET_SLOTS + i];
            (
                b,
                i,
                Some(Displaced {
                    key: old.key,
                    value: old.value,
                    reason,
                }),
            )
        };
        self.occupy(b, i, key, tag, now, displaced)
    }

    /// Prefetches the metadata lines of a burst's flows, then the slots
    /// whose tags match, so that the lookups that follow find them in
    /// cache: the misses of the whole burst overlap instead of queueing one
    /// behind another (as DPDK's l3fwd and `rte_hash_lookup_bulk` do).
    pub fn prefetch(&self, hashes: &[u64]) {
        for &hash in hashes {
            let (b1, b2, _) = self.place(hash);
            prefetch(&self.buckets[b1]);
            prefetch(&self.buckets[b2]);
        }
        for &hash in hashes {
            let (b1, b2, tag) = self.place(hash);
            for b in [b1, b2] {
                let mut m = tag_mask(&self.buckets[b], tag);
                while m != 0 {
                    let slot = &self.slots[b * BUCKET_SLOTS + m.trailing_zeros() as usize];
                    // A slot is not line-aligned: its key and value may
                    // straddle two lines.
                    prefetch(&slot.key);
                    prefetch(&slot.value);
                    m &= m - 1;
                }
            }
        }
    }

    /// [`FlowTable::lookup_or_insert`] for a burst: [`FlowTable::prefetch`]
    /// first, then `f(i, entry)` for each `keys[i]`, in order (the entry's
    /// borrow ends before the next lookup, so a later insert of the burst
    /// cannot invalidate it). Stops at the shorter of `keys` and `hashes`.
    pub fn lookup_or_insert_burst<F>(
        &mut self,
        keys: &[FlowKey],
        hashes: &[u64],
        now: u64,
        mut f: F,
    ) where
        F: FnMut(usize, Entry<'_, V>),
    {
        let n = keys.len().min(hashes.len());
        self.prefetch(&hashes[..n]);
        for (i, (key, &hash)) in keys.iter().zip(hashes).enumerate() {
            f(i, self.lookup_or_insert(key, hash, now));
        }
    }

    /// The value of a live flow (None if absent or idle at `now`). Does not
    /// mark it seen, and is not counted in [`FlowTable::stats`].
    pub fn get(&self, key: &FlowKey, hash: u64, now: u64) -> Option<&V> {
        let (b1, b2, tag) = self.place(hash);
        let (b, i) = self.find(key, b1, b2, tag)?;
        if self.is_idle(b, i, self.stamp(now)) {
            return None;
        }
        Some(&self.slots[b * BUCKET_SLOTS + i].value)
    }

    /// Removes a flow and returns its value, even if it had idled out and
    /// the sweep had not removed it yet (so side state can be released).
    pub fn remove(&mut self, key: &FlowKey, hash: u64) -> Option<V> {
        let (b1, b2, tag) = self.place(hash);
        let (b, i) = self.find(key, b1, b2, tag)?;
        self.buckets[b].tags[i] = 0;
        self.len -= 1;
        Some(self.slots[b * BUCKET_SLOTS + i].value)
    }

    /// The flow of `key`, live or idle (the table's own timeouts do not
    /// apply: the caller judges [`Found::idle_ticks`]). Inserts nothing,
    /// does not mark the flow seen, and is not counted in
    /// [`FlowTable::stats`]. Reads the same lines as
    /// [`FlowTable::lookup_or_insert`]'s hit.
    #[inline]
    pub fn find_mut(&mut self, key: &FlowKey, hash: u64, now: u64) -> Option<Found<'_, V>> {
        let now = self.stamp(now);
        let (b1, b2, tag) = self.place(hash);
        let (b, i) = self.find(key, b1, b2, tag)?;
        let shift = self.shift;
        let stamp = &mut self.buckets[b].stamps[i];
        let idle_ticks = u64::from(now.wrapping_sub(*stamp)) << shift;
        Some(Found {
            value: &mut self.slots[b * BUCKET_SLOTS + i].value,
            idle_ticks,
            stamp,
            now,
        })
    }

    /// Inserts `key`, which must not be in the table (check with
    /// [`FlowTable::find_mut`] first), with a `Default` value, seen at
    /// `now`. Where [`Admit`] allows a free slot it takes one; otherwise it
    /// takes the slot of one of the twenty flows of the key's two buckets
    /// for which `judge(key, value, idle_ticks)` returns a reason: an
    /// [`DisplaceReason::Expired`] one before an
    /// [`DisplaceReason::Evicted`] one, the least recently seen of equals.
    /// None if there is no such slot: nothing changed. The judge runs only
    /// when both buckets are full (or for [`Admit::DisplaceOnly`]), at most
    /// twenty times, so a flood of new flows into a full table costs a
    /// bounded amount per packet. Counted like
    /// [`FlowTable::lookup_or_insert`]'s inserts (not its lookups).
    pub fn insert_with<F>(
        &mut self,
        key: &FlowKey,
        hash: u64,
        now: u64,
        admit: Admit,
        mut judge: F,
    ) -> Option<Entry<'_, V>>
    where
        F: FnMut(&FlowKey, &V, u64) -> Option<DisplaceReason>,
    {
        let now = self.stamp(now);
        let (b1, b2, tag) = self.place(hash);
        let free = match admit {
            Admit::Free => self.free_slot(b1, b2),
            Admit::DisplaceOnly => None,
        };
        let (b, i, displaced) = if let Some((b, i)) = free {
            self.len += 1;
            (b, i, None)
        } else {
            let mut best: Option<(usize, usize, DisplaceReason, u32)> = None;
            let buckets: &[usize] = if b2 == b1 { &[b1] } else { &[b1, b2] };
            for &b in buckets {
                let bucket = &self.buckets[b];
                for i in 0..BUCKET_SLOTS {
                    if bucket.tags[i] == 0 {
                        continue;
                    }
                    let age = now.wrapping_sub(bucket.stamps[i]);
                    let slot = &self.slots[b * BUCKET_SLOTS + i];
                    let Some(reason) = judge(&slot.key, &slot.value, u64::from(age) << self.shift)
                    else {
                        continue;
                    };
                    let better = match best {
                        None => true,
                        Some((_, _, r, a)) => {
                            (reason == DisplaceReason::Expired && r == DisplaceReason::Evicted)
                                || (reason == r && age > a)
                        }
                    };
                    if better {
                        best = Some((b, i, reason, age));
                    }
                }
            }
            let (b, i, reason, _) = best?;
            match reason {
                DisplaceReason::Expired => self.stats.expirations += 1,
                DisplaceReason::Evicted => self.stats.evictions += 1,
            }
            let old = self.slots[b * BUCKET_SLOTS + i];
            (
                b,
                i,
                Some(Displaced {
                    key: old.key,
                    value: old.value,
                    reason,
                }),
            )
        };
        Some(self.occupy(b, i, key, tag, now, displaced))
    }

    /// A sweep like [`FlowTable::expire_with`] whose caller decides what is
    /// idle: each flow of the next `budget` buckets for which
    /// `idle(key, value, idle_ticks)` is true is removed. The table's own
    /// timeouts do not apply here, so `idle` must say true for any flow
    /// idle for longer than the largest timeout the caller uses (and that
    /// must stay below 2^32 stamp units, 49 days at 1 ms). Unlike
    /// [`FlowTable::expire`] it reads every occupied slot of the buckets it
    /// visits, not only the idle ones.
    pub fn expire_by<F>(&mut self, now: u64, budget: usize, mut idle: F) -> usize
    where
        F: FnMut(&FlowKey, &V, u64) -> bool,
    {
        self.sweep(now, budget, |t, b, i, now| {
            let age = u64::from(now.wrapping_sub(t.buckets[b].stamps[i])) << t.shift;
            let slot = &t.slots[b * BUCKET_SLOTS + i];
            idle(&slot.key, &slot.value, age)
        })
    }

    /// Removes the flows idle at `now` from the next `budget` buckets (a
    /// bucket is ten slots and one cache line), resuming where the last
    /// call stopped. Returns how many flows it removed. Calling it once per
    /// burst with a small budget sweeps the whole table every
    /// `bucket_count() / budget` bursts.
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        self.expire_with(now, budget, |_, _| {})
    }

    /// [`FlowTable::expire`], calling `f(key, value)` for each flow removed.
    pub fn expire_with<F>(&mut self, now: u64, budget: usize, mut f: F) -> usize
    where
        F: FnMut(&FlowKey, V),
    {
        self.sweep(now, budget, |t, b, i, now| {
            if !t.is_idle(b, i, now) {
                return false;
            }
            let slot = &t.slots[b * BUCKET_SLOTS + i];
            f(&slot.key, slot.value);
            true
        })
    }

    /// Flows in the table, including idle ones the sweep has not reached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots: the configured capacity rounded up to a multiple of
    /// [`BUCKET_SLOTS`].
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Buckets (the unit of [`FlowTable::expire`]'s budget).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Every byte the table holds: the struct and both arrays.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.buckets.capacity() * std::mem::size_of::<Bucket>()
            + self.slots.capacity() * std::mem::size_of::<Slot<V>>()
    }

    pub fn stats(&self) -> FlowTableStats {
        self.stats
    }

    /// The flows in the table, in slot order, including idle ones the sweep
    /// has not reached.
    pub fn iter(&self) -> impl Iterator<Item = (&FlowKey, &V)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .flat_map(move |(b, bucket)| {
                (0..BUCKET_SLOTS)
                    .filter(move |&i| bucket.tags[i] != 0)
                    .map(move |i| {
                        let slot = &self.slots[b * BUCKET_SLOTS + i];
                        (&slot.key, &slot.value)
                    })
            })
    }

    /// `now` in stamp units.
    #[inline]
    fn stamp(&self, now: u64) -> u32 {
        (now >> self.shift) as u32
    }

    /// A hash's two buckets and its tag. The first bucket comes from the
    /// high 32 bits and the tag from the low 16; the second bucket is
    /// [`FlowTable::alternate`] of the first, so a flow can be moved
    /// between its two buckets knowing only its tag.
    #[inline]
    fn place(&self, hash: u64) -> (usize, usize, u16) {
        let nbuckets = self.buckets.len() as u64;
        let b1 = (((hash >> 32) * nbuckets) >> 32) as usize;
        let tag = hash as u16;
        let tag = tag | u16::from(tag == 0);
        (b1, self.alternate(b1, tag), tag)
    }

    /// The other bucket of a flow in bucket `b` with tag `tag`:
    /// `(c(tag) - b) mod n`, its own inverse.
    #[inline]
    fn alternate(&self, b: usize, tag: u16) -> usize {
        let n = self.buckets.len();
        let c = ((u64::from(tag) * n as u64) >> 16) as usize;
        let x = c + n - b;
        if x >= n {
            x - n
        } else {
            x
        }
    }

    /// The bucket and slot of `key`, if present (live or idle).
    #[inline]
    fn find(&self, key: &FlowKey, b1: usize, b2: usize, tag: u16) -> Option<(usize, usize)> {
        for b in [b1, b2] {
            let mut m = tag_mask(&self.buckets[b], tag);
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                if self.slots[b * BUCKET_SLOTS + i].key == *key {
                    return Some((b, i));
                }
                m &= m - 1;
            }
            if b2 == b1 {
                break;
            }
        }
        None
    }

    #[inline]
    fn is_idle(&self, b: usize, i: usize, now: u32) -> bool {
        let bucket = &self.buckets[b];
        let timeout = if bucket.tcp & (1 << i) != 0 {
            self.tcp_timeout
        } else {
            self.other_timeout
        };
        now.wrapping_sub(bucket.stamps[i]) > timeout
    }

    /// The sweep of [`FlowTable::expire_with`] and [`FlowTable::expire_by`]:
    /// visits the occupied slots of the next `budget` buckets from the
    /// cursor and removes those for which `remove(table, bucket, slot,
    /// now)` is true (`now` in stamp units). Returns how many it removed,
    /// counted as expirations.
    #[inline(always)]
    fn sweep<F>(&mut self, now: u64, budget: usize, mut remove: F) -> usize
    where
        F: FnMut(&Self, usize, usize, u32) -> bool,
    {
        let now = self.stamp(now);
        let nbuckets = self.buckets.len();
        let mut removed = 0;
        for _ in 0..budget.min(nbuckets) {
            let b = self.cursor;
            self.cursor = if b + 1 == nbuckets { 0 } else { b + 1 };
            let mut m = !empty_mask(&self.buckets[b]) & full_mask();
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                if remove(self, b, i, now) {
                    self.buckets[b].tags[i] = 0;
                    removed += 1;
                }
            }
        }
        self.len -= removed;
        self.stats.expirations += removed as u64;
        removed
    }

    /// A free slot for a new flow of buckets `b1` and `b2`: in the emptier
    /// of the two (`b1` of equals), else one [`FlowTable::make_room`]
    /// frees. Always inlined, as it is on the per-packet path.
    #[inline(always)]
    fn free_slot(&mut self, b1: usize, b2: usize) -> Option<(usize, usize)> {
        let free1 = empty_mask(&self.buckets[b1]);
        let free2 = if b2 == b1 {
            0
        } else {
            empty_mask(&self.buckets[b2])
        };
        if free1 | free2 != 0 {
            let (b, m) = if free1.count_ones() >= free2.count_ones() {
                (b1, free1)
            } else {
                (b2, free2)
            };
            Some((b, m.trailing_zeros() as usize))
        } else {
            self.make_room(b1, b2)
        }
    }

    /// Puts `key` with a `Default` value into slot `i` of bucket `b` (free,
    /// or holding the flow `displaced` hands back), seen at `now`: the end
    /// that [`FlowTable::lookup_or_insert`] and [`FlowTable::insert_with`]
    /// share. Always inlined, as it is on the per-packet path.
    #[inline(always)]
    fn occupy(
        &mut self,
        b: usize,
        i: usize,
        key: &FlowKey,
        tag: u16,
        now: u32,
        displaced: Option<Displaced<V>>,
    ) -> Entry<'_, V> {
        self.stats.inserts += 1;
        let bucket = &mut self.buckets[b];
        bucket.tags[i] = tag;
        bucket.stamps[i] = now;
        let bit = 1u16 << i;
        bucket.tcp = if key.proto == TCP {
            bucket.tcp | bit
        } else {
            bucket.tcp & !bit
        };
        let slot = &mut self.slots[b * BUCKET_SLOTS + i];
        *slot = Slot {
            key: *key,
            value: V::default(),
        };
        Entry {
            value: &mut slot.value,
            kind: match displaced {
                None => EntryKind::Inserted,
                Some(d) => EntryKind::Replaced(d),
            },
        }
    }

    /// Frees a slot in one of two full buckets by moving their flows to
    /// their other buckets (cuckoo hashing, two steps deep at most): this
    /// lets the table fill to its capacity before it evicts. Returns the
    /// freed slot. Costs up to 40 metadata lines, and only when both of a
    /// new flow's buckets are full.
    fn make_room(&mut self, b1: usize, b2: usize) -> Option<(usize, usize)> {
        if self.len >= self.slots.len() {
            // Full: no slot anywhere to move to (a flood of new flows into
            // a full table pays for no search).
            return None;
        }
        // One step: a flow of b1 or b2 whose other bucket has room.
        for b in [b1, b2] {
            for i in 0..BUCKET_SLOTS {
                let alt = self.alternate(b, self.buckets[b].tags[i]);
                if alt != b1 && alt != b2 {
                    if let Some(j) = first_empty(&self.buckets[alt]) {
                        self.move_flow((b, i), (alt, j));
                        return Some((b, i));
                    }
                }
            }
        }
        // Two steps, from two of the twenty (a different pair each time):
        // a flow of its full other bucket moves on, then it takes its place.
        for _ in 0..2 {
            self.kick = self.kick.wrapping_add(7);
            let k = self.kick % (2 * BUCKET_SLOTS);
            let (b, i) = if k < BUCKET_SLOTS {
                (b1, k)
            } else {
                (b2, k - BUCKET_SLOTS)
            };
            let alt = self.alternate(b, self.buckets[b].tags[i]);
            if alt == b1 || alt == b2 {
                continue;
            }
            for j in 0..BUCKET_SLOTS {
                let alt2 = self.alternate(alt, self.buckets[alt].tags[j]);
                if alt2 != alt && alt2 != b1 && alt2 != b2 {
                    if let Some(free) = first_empty(&self.buckets[alt2]) {
                        self.move_flow((alt, j), (alt2, free));
                        self.move_flow((b, i), (alt, j));
                        return Some((b, i));
                    }
                }
            }
        }
        None
    }

    /// Moves the flow in slot `from` to the empty slot `to`.
    fn move_flow(&mut self, from: (usize, usize), to: (usize, usize)) {
        let (fb, fi) = from;
        let (tb, ti) = to;
        let src = self.buckets[fb];
        let dst = &mut self.buckets[tb];
        dst.tags[ti] = src.tags[fi];
        dst.stamps[ti] = src.stamps[fi];
        dst.tcp = (dst.tcp & !(1 << ti)) | (((src.tcp >> fi) & 1) << ti);
        self.buckets[fb].tags[fi] = 0;
        self.slots[tb * BUCKET_SLOTS + ti] = self.slots[fb * BUCKET_SLOTS + fi];
    }

    /// The least recently seen slot of two full buckets (the first of
    /// equals).
    fn oldest(&self, b1: usize, b2: usize, now: u32) -> (usize, usize) {
        let mut best = (b1, 0, 0u32);
        for b in [b1, b2] {
            for (i, &stamp) in self.buckets[b].stamps.iter().enumerate() {
                let age = now.wrapping_sub(stamp);
                if age > best.2 {
                    best = (b, i, age);
                }
            }
        }
        (best.0, best.1)
    }
}

/// Bits of the slots whose tag is `tag`.
#[inline]
fn tag_mask(bucket: &Bucket, tag: u16) -> u16 {
    let mut m = 0u16;
    for (i, &t) in bucket.tags.iter().enumerate() {
        m |= u16::from(t == tag) << i;
    }
    m
}

#[inline]
fn empty_mask(bucket: &Bucket) -> u16 {
    tag_mask(bucket, 0)
}

#[inline]
fn first_empty(bucket: &Bucket) -> Option<usize> {
    let m = empty_mask(bucket);
    (m != 0).then(|| m.trailing_zeros() as usize)
}

#[inline]
const fn full_mask() -> u16 {
    ((1u32 << BUCKET_SLOTS) - 1) as u16
}

#[cfg(test)]
mod tests;
