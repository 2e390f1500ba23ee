//! Neighbour resolution: the per-port neighbour cache with its RFC 4861
//! state machine, ARP for IPv4 (RFC 826, with the RFC 5227 probe and
//! announcement forms) and IPv6 Neighbor Discovery (RFC 4861 sections 4.3,
//! 4.4, 7.1 to 7.3). Sans-I/O: nothing here reads a clock or sends a frame.
//!
//! # Roles
//!
//! The control thread owns one [`NeighborCache`] per port. Punted ARP and
//! NS/NA frames go through [`handle_arp`] / [`handle_nd`], which validate
//! them and return an [`Outcome`]: what the frame says about a neighbour (a
//! [`Learn`], to pass to [`NeighborCache::apply`] with the current time), the
//! reply to transmit (a fixed-size frame, nothing allocated), and any
//! [`Conflict`] with our own addresses. Packets whose next hop has no usable
//! entry go through [`NeighborCache::resolve`]; the caller holds the queued
//! packets themselves and the cache only counts them. [`NeighborCache::poll`]
//! turns expired timers into [`Action`]s (probes to send, resolutions that
//! failed), and [`NeighborCache::next_deadline`] says when to call it next.
//! Workers never see the cache: they read a [`NeighborSnapshot`], an
//! immutable `IpAddr -> MAC` map behind an `Arc` that the control thread
//! republishes when [`NeighborCache::version`] changes.
//!
//! # States (RFC 4861 section 7.3.2)
//!
//! `INCOMPLETE`, `REACHABLE`, `STALE` and `PROBE` are kept. `DELAY` is folded
//! into `PROBE`: using a `STALE` entry moves it to [`State::Probe`] with
//! `probes_sent == 0` and the first unicast probe due `delay_first_probe`
//! later (DELAY_FIRST_PROBE_TIME, 5 s), which is what `DELAY` does. Set
//! `delay_first_probe` to zero to probe at once. `ReachableTime` is not
//! randomised (section 6.3.2) so that runs are deterministic; a caller that
//! wants the jitter can vary [`NeighborConfig::reachable_time`].
//!
//! Learning follows section 7.2.5 for every source: a solicited
//! confirmation (NA with S, ARP reply to us) makes an entry `REACHABLE`, a
//! new link-layer address without confirmation makes it `STALE`, and an NA
//! without the Override flag never replaces a cached address. ARP has no
//! flags; its replies count as solicited when unicast to us, and everything
//! ARP says is treated as overriding (RFC 826 simply overwrites).
//!
//! Which frames may *create* entries: an ARP request for one of our
//! addresses (RFC 826: "if I am the target, add the sender") and an NS for one
//! of our addresses with a source link-layer option (section 7.2.3).
//! Everything else, ARP replies, gratuitous ARP (RFC 5227 section 3
//! announcements), ARP for other hosts (RFC 826's "merge" step) and NAs
//! (section 7.2.5), only updates an entry that already exists. A reply we
//! did not ask for thus cannot plant an entry.
//!
//! # Bounds
//!
//! The cache holds at most [`NeighborConfig::capacity`] entries. To make room
//! it evicts the `STALE` entry that has been stale longest; `REACHABLE`,
//! `PROBE` and `INCOMPLETE` entries are never evicted (they leave those
//! states on their own within `reachable_time` or `max_probes *
//! retrans_time`), so a flood of new destinations cannot push out confirmed
//! neighbours: the new destination is dropped instead. Each `INCOMPLETE`
//! entry counts at most [`NeighborConfig::max_queued`] packets; further
//! packets are dropped (the caller may instead drop its oldest, as section
//! 7.2.2 suggests, and keep the count).
//!
//! # Frames
//!
//! Only untagged Ethernet frames are handled; VLAN-tagged ARP/ND is
//! reported as [`Discard::VlanTagged`] (a VLAN sub-interface would need its
//! own cache anyway). Built frames are not padded to the 60-byte Ethernet
//! minimum: the NIC pads on transmit.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::wire::ethernet::{self, Address, EtherType};
use crate::wire::icmpv6::{self, Message};
use crate::wire::{arp, ipv6, IpProtocol, WireError};

// ---------------------------------------------------------------------------
// Hashing
// ---------------------------------------------------------------------------

/// A keyed multiply-fold hash (the construction of aHash's fallback) for
/// `IpAddr` keys. Neighbour keys are chosen by whoever sends us ARP or NS, so
/// an unkeyed fast hash (FxHash) would let a host on the link pick addresses
/// that all land in one bucket of the workers' snapshot; the random keys
/// prevent that while keeping a lookup to a few multiplications.
#[derive(Debug, Clone, Copy)]
struct KeyedHash {
    k0: u64,
    k1: u64,
}

impl KeyedHash {
    fn random() -> KeyedHash {
        // RandomState is std's per-process random SipHash key; two hashes of
        // it give two independent random words.
        let state = RandomState::new();
        let mut h = state.build_hasher();
        h.write_u64(0x6e65_6967_6862_6f72);
        let k0 = h.finish();
        h.write_u64(k0);
        KeyedHash {
            k0,
            k1: h.finish() | 1,
        }
    }
}

impl Default for KeyedHash {
    fn default() -> KeyedHash {
        KeyedHash::random()
    }
}

impl BuildHasher for KeyedHash {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            acc: self.k0,
            key: self.k1,
        }
    }
}

/// The 64x64 -> 128-bit product folded back to 64 bits.
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

struct KeyedHasher {
    acc: u64,
    key: u64,
}

impl KeyedHasher {
    /// PCG's multiplier, as in aHash.
    const MUL: u64 = 0x5851_f42d_4c95_7f2d;

    #[inline]
    fn mix(&mut self, word: u64) {
        self.acc = folded_multiply(self.acc ^ word, Self::MUL);
    }
}

impl Hasher for KeyedHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    fn write_u128(&mut self, i: u128) {
        self.mix(i as u64);
        self.mix((i >> 64) as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    fn finish(&self) -> u64 {
        let rot = (self.acc & 63) as u32;
        folded_multiply(self.acc, self.key).rotate_left(rot)
    }
}

// ---------------------------------------------------------------------------
// The cache
// ---------------------------------------------------------------------------

/// Timers and bounds of a [`NeighborCache`]. Defaults are RFC 4861 section
/// 10's constants and the bounds suggested for a data-plane port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborConfig {
    /// How long a confirmation keeps an entry `REACHABLE` (REACHABLE_TIME,
    /// 30 s).
    pub reachable_time: Duration,
    /// Interval between probes (RETRANS_TIMER, 1 s). Raised to at least
    /// 1 ms so that a timer can never re-arm itself at the same instant.
    pub retrans_time: Duration,
    /// Wait before the first unicast probe of a `STALE` entry in use
    /// (DELAY_FIRST_PROBE_TIME, 5 s).
    pub delay_first_probe: Duration,
    /// Probes before giving up, broadcast/multicast for `INCOMPLETE` and
    /// unicast for `PROBE` (MAX_MULTICAST_SOLICIT = MAX_UNICAST_SOLICIT = 3).
    pub max_probes: u8,
    /// Maximum number of entries (at least 1).
    pub capacity: usize,
    /// Maximum packets counted per `INCOMPLETE` entry (at least 1).
    pub max_queued: usize,
}

impl Default for NeighborConfig {
    fn default() -> NeighborConfig {
        NeighborConfig {
            reachable_time: Duration::from_secs(30),
            retrans_time: Duration::from_secs(1),
            delay_first_probe: Duration::from_secs(5),
            max_probes: 3,
            capacity: 4096,
            max_queued: 8,
        }
    }
}

/// The state of one entry (RFC 4861 section 7.3.2, `DELAY` folded into
/// `Probe` with `probes_sent == 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Resolution in progress: `probes_sent` broadcast/multicast probes so
    /// far, the next one (or the failure) due at `next_probe_at`, and
    /// `queued` packets held by the caller.
    Incomplete {
        probes_sent: u8,
        next_probe_at: Duration,
        queued: usize,
    },
    /// Confirmed recently; becomes `Stale` at `until`.
    Reachable { mac: Address, until: Duration },
    /// Usable but unconfirmed; probing starts when it is used.
    Stale { mac: Address },
    /// Usable while being re-confirmed by unicast probes: `probes_sent` so
    /// far, the next one (or the failure) due at `next_probe_at`.
    Probe {
        mac: Address,
        probes_sent: u8,
        next_probe_at: Duration,
    },
}

impl State {
    /// The link-layer address, for every state but `Incomplete`.
    pub fn mac(&self) -> Option<Address> {
        match *self {
            State::Incomplete { .. } => None,
            State::Reachable { mac, .. } | State::Stale { mac } | State::Probe { mac, .. } => {
                Some(mac)
            }
        }
    }

    /// When [`NeighborCache::poll`] next has something to do for this entry.
    fn deadline(&self) -> Option<Duration> {
        match *self {
            State::Incomplete { next_probe_at, .. } | State::Probe { next_probe_at, .. } => {
                Some(next_probe_at)
            }
            State::Reachable { until, .. } => Some(until),
            State::Stale { .. } => None,
        }
    }
}

/// What to do with a packet whose next hop is being resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// Send it to this MAC now.
    Known(Address),
    /// Hold it until [`Update::Resolved`] or [`Action::Failed`]; if
    /// `send_probe`, resolution just started and the caller sends the first
    /// broadcast/multicast probe ([`arp_request`],
    /// [`neighbor_solicitation`]) now.
    Queue { send_probe: bool },
    /// Drop it: the entry's queue is full, or the cache is full of entries
    /// that may not be evicted.
    Drop,
}

/// Work for the caller, returned by [`NeighborCache::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send a probe for `ip`: broadcast ARP / multicast NS when `unicast_to`
    /// is `None`, else unicast to that MAC ([`arp_request_unicast`],
    /// [`neighbor_solicitation_unicast`]).
    SendProbe {
        ip: IpAddr,
        unicast_to: Option<Address>,
    },
    /// `max_probes` probes went unanswered and the entry was removed. The
    /// caller drops the `dropped_packets` packets it queued for `ip` (RFC
    /// 4861 section 7.2.2 suggests an ICMP address-unreachable for each).
    Failed { ip: IpAddr, dropped_packets: usize },
}

/// What a received ARP or ND packet says about a neighbour; apply it with
/// [`NeighborCache::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learn {
    /// The neighbour's address.
    pub ip: IpAddr,
    /// Its link-layer address; `None` only for an NA without a target
    /// link-layer option, which can confirm but not supply an address.
    pub mac: Option<Address>,
    /// A confirmation of reachability (ARP reply to us, NA with S set).
    pub solicited: bool,
    /// May replace a different cached address (always for ARP and NS; the
    /// O flag of an NA).
    pub overrides: bool,
    /// May create an entry that does not exist yet.
    pub create: bool,
}

/// What [`NeighborCache::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Nothing: no entry and not allowed to create one, or an NA without an
    /// address for an `INCOMPLETE` entry.
    Ignored,
    /// No entry and no room for one.
    Full,
    /// A new entry was created.
    Created,
    /// An `INCOMPLETE` entry got its address: send the `queued` packets held
    /// for it to `mac`.
    Resolved { mac: Address, queued: usize },
    /// An existing entry changed state or address.
    Updated,
    /// An existing entry was left as it was.
    Unchanged,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: State,
    /// When the entry last changed state or address: eviction takes the
    /// `Stale` entry with the oldest one.
    since: Duration,
    /// Sequence number of the entry's live timer in the heap; heap items
    /// with another number are stale and skipped.
    timer: u64,
}

/// The per-port neighbour cache. See the module documentation.
#[derive(Debug)]
pub struct NeighborCache {
    config: NeighborConfig,
    entries: HashMap<IpAddr, Entry, KeyedHash>,
    /// Deadlines as `(when, timer sequence, ip)`, earliest first, invalidated
    /// lazily: a state change pushes a new item and bumps the entry's
    /// `timer`, and the old item is dropped when it surfaces. The top is
    /// always live (see `prune`), and the heap is rebuilt when dead items
    /// outnumber live ones.
    timers: BinaryHeap<Reverse<(Duration, u64, IpAddr)>>,
    next_timer: u64,
    version: u64,
    hash: KeyedHash,
}

impl Default for NeighborCache {
    fn default() -> NeighborCache {
        NeighborCache::new(NeighborConfig::default())
    }
}

impl NeighborCache {
    /// An empty cache. `retrans_time`, `capacity` and `max_queued` are
    /// raised to their minimums (1 ms, 1, 1).
    pub fn new(mut config: NeighborConfig) -> NeighborCache {
        config.retrans_time = config.retrans_time.max(Duration::from_millis(1));
        config.capacity = config.capacity.max(1);
        config.max_queued = config.max_queued.max(1);
        let hash = KeyedHash::random();
        NeighborCache {
            config,
            entries: HashMap::with_capacity_and_hasher(config.capacity.min(1024), hash),
            timers: BinaryHeap::new(),
            next_timer: 0,
            version: 0,
            hash,
        }
    }

    /// The configuration in effect (after the minimums of [`Self::new`]).
    pub fn config(&self) -> &NeighborConfig {
        &self.config
    }

    /// Number of entries, in any state.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The state of `ip`'s entry, if any.
    pub fn state(&self, ip: IpAddr) -> Option<State> {
        self.entries.get(&ip).map(|e| e.state)
    }

    /// The MAC to use for `ip` if its entry is usable (`Reachable`, `Stale`
    /// or `Probe`). Does not count as use: see [`Self::resolve`].
    pub fn lookup(&self, ip: IpAddr) -> Option<Address> {
        self.entries.get(&ip).and_then(|e| e.state.mac())
    }

    /// Bumped whenever the set of usable `ip -> MAC` pairs changes, i.e.
    /// whenever a new [`Self::snapshot`] would differ from the last one.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The next time [`Self::poll`] has work, if any.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The usable entries as an immutable map for the workers.
    pub fn snapshot(&self) -> NeighborSnapshot {
        let mut map = HashMap::with_capacity_and_hasher(self.entries.len(), self.hash);
        for (ip, entry) in &self.entries {
            if let Some(mac) = entry.state.mac() {
                map.insert(*ip, mac);
            }
        }
        NeighborSnapshot {
            map: Arc::new(map),
            version: self.version,
        }
    }

    /// A packet needs `ip`'s MAC (RFC 4861 sections 7.2.2 and 7.3.3).
    ///
    /// A usable entry answers at once; a `Stale` (or expired `Reachable`)
    /// one also starts re-confirmation (`Probe`). Workers resolve through the
    /// snapshot and never call this, so the control thread should call it
    /// for next hops the workers report as used if `Stale` entries are to be
    /// re-confirmed.
    pub fn resolve(&mut self, ip: IpAddr, now: Duration) -> Resolve {
        let result = match self.entries.get_mut(&ip) {
            Some(entry) => match entry.state {
                State::Reachable { mac, until } if now < until => Resolve::Known(mac),
                State::Probe { mac, .. } => Resolve::Known(mac),
                State::Reachable { mac, .. } | State::Stale { mac } => {
                    let probe = State::Probe {
                        mac,
                        probes_sent: 0,
                        next_probe_at: now + self.config.delay_first_probe,
                    };
                    self.set_state(ip, probe, now);
                    Resolve::Known(mac)
                }
                State::Incomplete { ref mut queued, .. } => {
                    if *queued < self.config.max_queued {
                        *queued += 1;
                        Resolve::Queue { send_probe: false }
                    } else {
                        Resolve::Drop
                    }
                }
            },
            None => {
                if self.make_room() {
                    let state = State::Incomplete {
                        probes_sent: 1,
                        next_probe_at: now + self.config.retrans_time,
                        queued: 1,
                    };
                    self.insert(ip, state, now);
                    Resolve::Queue { send_probe: true }
                } else {
                    Resolve::Drop
                }
            }
        };
        self.prune();
        result
    }

    /// Applies what a received packet says about a neighbour (RFC 4861
    /// sections 7.2.3 and 7.2.5, RFC 826's merge and add steps).
    pub fn apply(&mut self, learn: &Learn, now: Duration) -> Update {
        let result = self.apply_inner(learn, now);
        self.prune();
        result
    }

    fn apply_inner(&mut self, learn: &Learn, now: Duration) -> Update {
        let reachable_until = now + self.config.reachable_time;
        let Some(entry) = self.entries.get(&learn.ip) else {
            let (true, Some(mac)) = (learn.create, learn.mac) else {
                return Update::Ignored;
            };
            if !self.make_room() {
                return Update::Full;
            }
            let state = if learn.solicited {
                State::Reachable {
                    mac,
                    until: reachable_until,
                }
            } else {
                State::Stale { mac }
            };
            self.insert(learn.ip, state, now);
            self.version += 1;
            return Update::Created;
        };
        let state = entry.state;
        let Some(cached) = state.mac() else {
            // Incomplete: any address resolves it.
            let (Some(mac), State::Incomplete { queued, .. }) = (learn.mac, state) else {
                return Update::Ignored;
            };
            let next = if learn.solicited {
                State::Reachable {
                    mac,
                    until: reachable_until,
                }
            } else {
                State::Stale { mac }
            };
            self.set_state(learn.ip, next, now);
            self.version += 1;
            return Update::Resolved { mac, queued };
        };
        let mac = learn.mac.unwrap_or(cached);
        let differs = mac != cached;
        if differs && !learn.overrides {
            // Section 7.2.5: keep the address; a REACHABLE entry is no
            // longer known to be right.
            return if matches!(state, State::Reachable { .. }) {
                self.set_state(learn.ip, State::Stale { mac: cached }, now);
                Update::Updated
            } else {
                Update::Unchanged
            };
        }
        if learn.solicited {
            let next = State::Reachable {
                mac,
                until: reachable_until,
            };
            self.set_state(learn.ip, next, now);
        } else if differs {
            self.set_state(learn.ip, State::Stale { mac }, now);
        } else {
            return Update::Unchanged;
        }
        if differs {
            self.version += 1;
        }
        Update::Updated
    }

    /// Records `mac` for `ip` as ARP would: a reply (`solicited`) makes the
    /// entry `Reachable`; otherwise a new or changed address makes it
    /// `Stale`. Creates the entry if needed; shorthand for [`Self::apply`]
    /// with `overrides` and `create` set.
    pub fn learn(&mut self, ip: IpAddr, mac: Address, now: Duration, solicited: bool) -> Update {
        self.apply(
            &Learn {
                ip,
                mac: Some(mac),
                solicited,
                overrides: true,
                create: true,
            },
            now,
        )
    }

    /// Upper-layer proof that `ip` is reachable (RFC 4861 section 7.3.1),
    /// e.g. a TCP ACK or an authenticated tunnel packet through it. Returns
    /// whether an entry with an address was refreshed.
    pub fn confirm(&mut self, ip: IpAddr, now: Duration) -> bool {
        let Some(mac) = self.lookup(ip) else {
            return false;
        };
        let until = now + self.config.reachable_time;
        self.set_state(ip, State::Reachable { mac, until }, now);
        self.prune();
        true
    }

    /// Removes `ip`'s entry (e.g. on a route or address change). Queued
    /// packets, if it was `Incomplete`, are the caller's to drop.
    pub fn remove(&mut self, ip: IpAddr) -> Option<State> {
        let entry = self.entries.remove(&ip)?;
        if entry.state.mac().is_some() {
            self.version += 1;
        }
        self.prune();
        Some(entry.state)
    }

    /// Runs every timer due at `now` (RFC 4861 section 7.3.3): `Reachable`
    /// entries past `reachable_time` become `Stale`; `Incomplete` and
    /// `Probe` entries send their next probe or, after `max_probes`, fail
    /// and are removed. Actions come in deadline order.
    pub fn poll(&mut self, now: Duration) -> Vec<Action> {
        let mut actions = Vec::new();
        while let Some(&Reverse((at, seq, ip))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(entry) = self.entries.get(&ip) else {
                continue;
            };
            if entry.timer != seq || entry.state.deadline() != Some(at) {
                continue;
            }
            let next_probe_at = now + self.config.retrans_time;
            match entry.state {
                State::Reachable { mac, .. } => self.set_state(ip, State::Stale { mac }, at),
                State::Incomplete {
                    probes_sent,
                    queued,
                    ..
                } => {
                    if probes_sent < self.config.max_probes {
                        let state = State::Incomplete {
                            probes_sent: probes_sent + 1,
                            next_probe_at,
                            queued,
                        };
                        self.set_state(ip, state, now);
                        actions.push(Action::SendProbe {
                            ip,
                            unicast_to: None,
                        });
                    } else {
                        self.entries.remove(&ip);
                        actions.push(Action::Failed {
                            ip,
                            dropped_packets: queued,
                        });
                    }
                }
                State::Probe {
                    mac, probes_sent, ..
                } => {
                    if probes_sent < self.config.max_probes {
                        let state = State::Probe {
                            mac,
                            probes_sent: probes_sent + 1,
                            next_probe_at,
                        };
                        self.set_state(ip, state, now);
                        actions.push(Action::SendProbe {
                            ip,
                            unicast_to: Some(mac),
                        });
                    } else {
                        self.entries.remove(&ip);
                        self.version += 1;
                        actions.push(Action::Failed {
                            ip,
                            dropped_packets: 0,
                        });
                    }
                }
                State::Stale { .. } => {}
            }
        }
        self.prune();
        actions
    }

    fn insert(&mut self, ip: IpAddr, state: State, now: Duration) {
        self.entries.insert(
            ip,
            Entry {
                state,
                since: now,
                timer: 0,
            },
        );
        self.set_state(ip, state, now);
    }

    /// Sets an existing entry's state and (re)arms its timer.
    fn set_state(&mut self, ip: IpAddr, state: State, now: Duration) {
        let Some(entry) = self.entries.get_mut(&ip) else {
            return;
        };
        entry.state = state;
        entry.since = now;
        self.next_timer += 1;
        entry.timer = self.next_timer;
        if let Some(at) = state.deadline() {
            self.timers.push(Reverse((at, self.next_timer, ip)));
        }
    }

    /// Makes sure one more entry fits, evicting the oldest `Stale` entry if
    /// the cache is full. `false` if nothing may be evicted.
    fn make_room(&mut self) -> bool {
        if self.entries.len() < self.config.capacity {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Stale { .. }))
            .min_by_key(|(ip, e)| (e.since, **ip))
            .map(|(ip, _)| *ip);
        match victim {
            Some(ip) => {
                self.entries.remove(&ip);
                self.version += 1;
                true
            }
            None => false,
        }
    }

    fn is_live(&self, at: Duration, seq: u64, ip: &IpAddr) -> bool {
        self.entries
            .get(ip)
            .is_some_and(|e| e.timer == seq && e.state.deadline() == Some(at))
    }

    /// Drops dead timers from the top of the heap so that
    /// [`Self::next_deadline`] is exact, and rebuilds the heap when dead
    /// items dominate (frequent confirmations of one neighbour would
    /// otherwise grow it without bound).
    fn prune(&mut self) {
        if self.timers.len() > 2 * self.entries.len() + 64 {
            let live: Vec<_> = self
                .entries
                .iter()
                .filter_map(|(ip, e)| e.state.deadline().map(|at| Reverse((at, e.timer, *ip))))
                .collect();
            self.timers = BinaryHeap::from(live);
        }
        while let Some(&Reverse((at, seq, ip))) = self.timers.peek() {
            if self.is_live(at, seq, &ip) {
                break;
            }
            self.timers.pop();
        }
    }
}

/// An immutable `IpAddr -> MAC` map of a cache's usable entries, for the
/// workers. Cloning shares the map (one `Arc` increment); `get` does not
/// allocate and costs one keyed hash and an expected O(1) probe.
#[derive(Debug, Clone, Default)]
pub struct NeighborSnapshot {
    map: Arc<HashMap<IpAddr, Address, KeyedHash>>,
    version: u64,
}

impl NeighborSnapshot {
    /// The MAC to send to for `ip`.
    #[inline]
    pub fn get(&self, ip: &IpAddr) -> Option<Address> {
        self.map.get(ip).copied()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The cache's [`NeighborCache::version`] when this was taken.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// All pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, Address)> + '_ {
        self.map.iter().map(|(ip, mac)| (*ip, *mac))
    }
}

// ---------------------------------------------------------------------------
// Received frames: shared outcome and discard reasons
// ---------------------------------------------------------------------------

/// Why [`handle_arp`] or [`handle_nd`] discarded a frame (one drop counter
/// each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Discard {
    /// Shorter than its headers say.
    Truncated,
    /// A field is invalid: wrong hardware/protocol type or lengths, a
    /// multicast or zero sender MAC, a multicast sender or target IP, a
    /// non-zero ICMPv6 code, a zero-length or overrunning ND option, or a
    /// rule of RFC 4861 section 7.1 broken.
    Malformed,
    /// Not ARP (for [`handle_arp`]) or not an NS/NA in a bare IPv6 header
    /// (for [`handle_nd`]), or an ARP operation other than request/reply.
    OtherProtocol,
    /// VLAN-tagged; only untagged ports are handled.
    VlanTagged,
    /// Unicast to another station's MAC (seen in promiscuous mode).
    NotOurFrame,
    /// Sent from our own MAC: a reflection of our own frame.
    Looped,
    /// ND with a hop limit other than 255, so possibly from off-link (RFC
    /// 4861 section 7.1).
    HopLimit,
    /// Wrong ICMPv6 checksum.
    Checksum,
}

impl From<WireError> for Discard {
    fn from(e: WireError) -> Discard {
        match e {
            WireError::Truncated => Discard::Truncated,
            WireError::Malformed => Discard::Malformed,
        }
    }
}

/// Another station uses one of our addresses (RFC 5227 section 2.4, RFC
/// 4862 section 5.4.4). Nothing is learned from such a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// Our address it claims.
    pub ip: IpAddr,
    /// Its MAC.
    pub mac: Address,
}

/// What a valid ARP or ND frame asks of us. Every field may be empty: an
/// NS for another host's address is valid and needs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome<const N: usize> {
    /// For [`NeighborCache::apply`].
    pub learn: Option<Learn>,
    /// A complete Ethernet frame to transmit on the port it came in on.
    pub reply: Option<[u8; N]>,
    /// Someone else claims one of our addresses.
    pub conflict: Option<Conflict>,
}

/// Result of [`handle_arp`]; replies are [`ARP_FRAME_LEN`] bytes.
pub type ArpOutcome = Outcome<ARP_FRAME_LEN>;
/// Result of [`handle_nd`]; replies are [`ND_FRAME_LEN`] bytes.
pub type NdOutcome = Outcome<ND_FRAME_LEN>;

/// A MAC a neighbour may have: individual and not all-zero (RFC 1812
/// section 3.3.2: never believe an ARP that claims a multicast address).
fn is_neighbor_mac(mac: Address) -> bool {
    mac.is_unicast() && mac != Address::UNSPECIFIED
}

/// The checks common to ARP and ND on the Ethernet header.
fn check_ethernet(
    frame: &[u8],
    our_mac: Address,
    want: EtherType,
) -> Result<ethernet::Frame<&[u8]>, Discard> {
    let eth = ethernet::Frame::new_checked(frame)?;
    if eth.ethertype().is_vlan_tag() {
        return Err(Discard::VlanTagged);
    }
    if eth.ethertype() != want {
        return Err(Discard::OtherProtocol);
    }
    let src = eth.src_addr();
    if src == our_mac {
        return Err(Discard::Looped);
    }
    if !is_neighbor_mac(src) {
        return Err(Discard::Malformed);
    }
    let dst = eth.dst_addr();
    if dst.is_unicast() && dst != our_mac {
        return Err(Discard::NotOurFrame);
    }
    Ok(eth)
}

// ---------------------------------------------------------------------------
// ARP
// ---------------------------------------------------------------------------

/// Length of an untagged Ethernet ARP frame (without padding).
pub const ARP_FRAME_LEN: usize = ethernet::HEADER_LEN + arp::PACKET_LEN;

/// Builds an Ethernet/IPv4 ARP frame.
fn arp_frame(
    eth_dst: Address,
    operation: arp::Operation,
    sender: (Address, Ipv4Addr),
    target: (Address, Ipv4Addr),
) -> [u8; ARP_FRAME_LEN] {
    let mut out = [0u8; ARP_FRAME_LEN];
    let eth = ethernet::Repr {
        src_addr: sender.0,
        dst_addr: eth_dst,
        ethertype: EtherType::Arp,
        vlan: None,
    };
    let mut frame = ethernet::Frame::new_unchecked(&mut out[..]);
    eth.emit(&mut frame)
        .expect("42 bytes hold an Ethernet header");
    let repr = arp::Repr {
        operation,
        sender_hardware_addr: sender.0,
        sender_protocol_addr: sender.1,
        target_hardware_addr: target.0,
        target_protocol_addr: target.1,
    };
    repr.emit(&mut arp::Packet::new_unchecked(frame.payload_mut()))
        .expect("28 bytes hold an ARP packet");
    out
}

/// A broadcast ARP request for `target_ip` (RFC 826): the probe for an
/// `Incomplete` entry.
pub fn arp_request(our_mac: Address, our_ip: Ipv4Addr, target_ip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    arp_frame(
        Address::BROADCAST,
        arp::Operation::Request,
        (our_mac, our_ip),
        (Address::UNSPECIFIED, target_ip),
    )
}

/// An ARP request unicast to `target_mac`: the probe for a `Probe` entry,
/// which checks the cached address without disturbing other hosts.
pub fn arp_request_unicast(
    our_mac: Address,
    our_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
    target_mac: Address,
) -> [u8; ARP_FRAME_LEN] {
    arp_frame(
        target_mac,
        arp::Operation::Request,
        (our_mac, our_ip),
        (Address::UNSPECIFIED, target_ip),
    )
}

/// An ARP announcement of `ip` (RFC 5227 section 3: a broadcast request
/// with sender and target address both `ip`), to claim or defend it.
pub fn arp_announcement(our_mac: Address, ip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    arp_frame(
        Address::BROADCAST,
        arp::Operation::Request,
        (our_mac, ip),
        (Address::UNSPECIFIED, ip),
    )
}

/// Handles a received Ethernet/ARP frame (RFC 826) for a port with MAC
/// `our_mac` and addresses `our_ips`.
///
/// - A request for one of our addresses is answered, unicast to the asker,
///   and its sender may be learned (created `Stale` or updated).
/// - A probe (RFC 5227: sender address 0.0.0.0) for our address is answered
///   too, so the prober sees the address is taken; nothing is learned.
/// - A reply unicast to us for our address confirms the sender
///   (`solicited`); other replies, gratuitous ARP and requests for other
///   addresses only update an existing entry (RFC 826's merge step).
/// - A frame whose sender address is one of ours is a [`Conflict`].
pub fn handle_arp(
    frame: &[u8],
    our_mac: Address,
    our_ips: &[Ipv4Addr],
) -> Result<ArpOutcome, Discard> {
    let eth = check_ethernet(frame, our_mac, EtherType::Arp)?;
    let packet = arp::Packet::new_checked(eth.payload())?;
    let repr = arp::Repr::parse(&packet)?;
    let request = match repr.operation {
        arp::Operation::Request => true,
        arp::Operation::Reply => false,
        arp::Operation::Unknown(_) => return Err(Discard::OtherProtocol),
    };
    let (sha, spa) = (repr.sender_hardware_addr, repr.sender_protocol_addr);
    let tpa = repr.target_protocol_addr;
    if sha == our_mac {
        return Err(Discard::Looped);
    }
    if !is_neighbor_mac(sha) {
        return Err(Discard::Malformed);
    }
    let for_us = our_ips.contains(&tpa);
    let mut out = ArpOutcome::default();
    let reply = || arp_frame(sha, arp::Operation::Reply, (our_mac, tpa), (sha, spa));

    if spa.is_unspecified() {
        if request && for_us {
            out.reply = Some(reply());
        }
        return Ok(out);
    }
    if spa.is_multicast() || spa.is_broadcast() || spa.is_loopback() {
        return Err(Discard::Malformed);
    }
    if our_ips.contains(&spa) {
        out.conflict = Some(Conflict {
            ip: IpAddr::V4(spa),
            mac: sha,
        });
        return Ok(out);
    }
    let (solicited, create) = if request && for_us {
        out.reply = Some(reply());
        (false, true)
    } else if !request && for_us && eth.dst_addr() == our_mac {
        (true, false)
    } else {
        (false, false)
    };
    out.learn = Some(Learn {
        ip: IpAddr::V4(spa),
        mac: Some(sha),
        solicited,
        overrides: true,
        create,
    });
    Ok(out)
}

// ---------------------------------------------------------------------------
// IPv6 Neighbor Discovery
// ---------------------------------------------------------------------------

/// Length of an untagged NS or NA frame with one link-layer address option:
/// Ethernet, IPv6, the 24-byte message and the 8-byte option.
pub const ND_FRAME_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + ND_MESSAGE_LEN;

/// NS/NA body: ICMPv6 header, 4 bytes of it flags/reserved, 16-byte target.
const ND_BODY_LEN: usize = 24;
const ND_MESSAGE_LEN: usize = ND_BODY_LEN + 8;

/// NA flags in the ICMPv6 message-specific word (RFC 4861 section 4.4).
pub const NA_FLAG_ROUTER: u32 = 0x8000_0000;
/// Solicited flag.
pub const NA_FLAG_SOLICITED: u32 = 0x4000_0000;
/// Override flag.
pub const NA_FLAG_OVERRIDE: u32 = 0x2000_0000;

/// ND option types (RFC 4861 section 4.6.1).
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;

/// The all-nodes multicast address ff02::1.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The solicited-node multicast address of `ip`: ff02::1:ff00:0/104 with
/// the low 24 bits of `ip` (RFC 4291 section 2.7.1).
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// Whether `ip` is in ff02::1:ff00:0/104.
pub fn is_solicited_node(ip: Ipv6Addr) -> bool {
    ip.octets()[..13] == solicited_node(Ipv6Addr::UNSPECIFIED).octets()[..13]
}

/// The Ethernet MAC of an IPv6 multicast address: 33:33 and its low 32
/// bits (RFC 2464 section 7).
pub fn ipv6_multicast_mac(ip: Ipv6Addr) -> Address {
    let o = ip.octets();
    Address([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// Where the NS/NA frame goes and what it says.
struct NdMessage {
    eth_dst: Address,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    msg_type: Message,
    flags: u32,
    target: Ipv6Addr,
    option: u8,
}

/// Builds an NS or NA with one link-layer address option carrying
/// `our_mac`, hop limit 255 and a valid checksum.
fn nd_frame(our_mac: Address, m: &NdMessage) -> [u8; ND_FRAME_LEN] {
    let mut out = [0u8; ND_FRAME_LEN];
    let eth = ethernet::Repr {
        src_addr: our_mac,
        dst_addr: m.eth_dst,
        ethertype: EtherType::Ipv6,
        vlan: None,
    };
    let mut frame = ethernet::Frame::new_unchecked(&mut out[..]);
    eth.emit(&mut frame)
        .expect("86 bytes hold an Ethernet header");
    let ip = ipv6::Repr {
        src_addr: m.src,
        dst_addr: m.dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: ND_MESSAGE_LEN,
        hop_limit: 255,
        traffic_class: 0,
        flow_label: 0,
    };
    let mut packet = ipv6::Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet).expect("72 bytes hold an IPv6 header");
    let body = packet.payload_mut();
    body[8..ND_BODY_LEN].copy_from_slice(&m.target.octets());
    body[ND_BODY_LEN] = m.option;
    body[ND_BODY_LEN + 1] = 1;
    body[ND_BODY_LEN + 2..ND_MESSAGE_LEN].copy_from_slice(our_mac.as_bytes());
    let icmp = icmpv6::Repr::Other {
        msg_type: m.msg_type,
        code: 0,
        rest_of_header: m.flags,
        payload_len: ND_MESSAGE_LEN - icmpv6::HEADER_LEN,
    };
    icmp.emit(&mut icmpv6::Packet::new_unchecked(body), m.src, m.dst)
        .expect("32 bytes hold the message");
    out
}

/// A multicast Neighbor Solicitation for `target` (RFC 4861 section 7.2.2)
/// from `our_ip`: to `target`'s solicited-node address and its 33:33:ff MAC,
/// with our source link-layer address option. The probe for an
/// `Incomplete` entry.
pub fn neighbor_solicitation(
    our_mac: Address,
    our_ip: Ipv6Addr,
    target: Ipv6Addr,
) -> [u8; ND_FRAME_LEN] {
    let dst = solicited_node(target);
    nd_frame(
        our_mac,
        &NdMessage {
            eth_dst: ipv6_multicast_mac(dst),
            src: our_ip,
            dst,
            msg_type: Message::NeighborSolicit,
            flags: 0,
            target,
            option: OPT_SOURCE_LL,
        },
    )
}

/// A Neighbor Solicitation unicast to `target` at `target_mac`: the probe
/// for a `Probe` entry (RFC 4861 section 7.3.3).
pub fn neighbor_solicitation_unicast(
    our_mac: Address,
    our_ip: Ipv6Addr,
    target: Ipv6Addr,
    target_mac: Address,
) -> [u8; ND_FRAME_LEN] {
    nd_frame(
        our_mac,
        &NdMessage {
            eth_dst: target_mac,
            src: our_ip,
            dst: target,
            msg_type: Message::NeighborSolicit,
            flags: 0,
            target,
            option: OPT_SOURCE_LL,
        },
    )
}

/// The link-layer address options of an NS/NA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct LinkOptions {
    source: Option<Address>,
    target: Option<Address>,
}

/// Walks the ND options after the NS/NA body (RFC 4861 section 4.6):
/// `Malformed` for a zero length or an option running past the end (section
/// 7.1). Unknown options are skipped; the first source/target link-layer
/// option of Ethernet size (length 1) counts, and one of another size is
/// skipped as not ours to read.
fn parse_link_options(mut options: &[u8]) -> Result<LinkOptions, Discard> {
    let mut out = LinkOptions::default();
    while !options.is_empty() {
        let (Some(&kind), Some(&units)) = (options.first(), options.get(1)) else {
            return Err(Discard::Malformed);
        };
        let len = usize::from(units) * 8;
        if len == 0 || len > options.len() {
            return Err(Discard::Malformed);
        }
        let (option, rest) = options.split_at(len);
        if units == 1 {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&option[2..8]);
            let slot = match kind {
                OPT_SOURCE_LL => &mut out.source,
                OPT_TARGET_LL => &mut out.target,
                _ => &mut None,
            };
            slot.get_or_insert(Address(mac));
        }
        options = rest;
    }
    Ok(out)
}

/// Handles a received Ethernet/IPv6 Neighbor Solicitation or Advertisement
/// for a port with MAC `our_mac` and addresses `our_ips` (link-local
/// included).
///
/// Validation is RFC 4861 section 7.1: hop limit 255, correct checksum,
/// code 0, a non-multicast target, well-formed options; for an NS from the
/// unspecified address a solicited-node destination and no source
/// link-layer option; for an NA to a multicast address no S flag. Extension
/// headers are not walked (such frames are [`Discard::OtherProtocol`]).
///
/// - An NS for one of our addresses is answered with an NA (R, S and O set:
///   Patronus forwards, so it advertises itself as a router) carrying our
///   target link-layer option, unicast to the sender; its source option is
///   learned (created `Stale` or updated, section 7.2.3).
/// - A DAD probe (NS from `::`) for our address gets an NA to all-nodes
///   with S clear (section 7.2.4); nothing is learned.
/// - An NA updates an existing entry per its S and O flags (section 7.2.5).
/// - An NS from, or an NA for, one of our addresses is a [`Conflict`].
pub fn handle_nd(
    frame: &[u8],
    our_mac: Address,
    our_ips: &[Ipv6Addr],
) -> Result<NdOutcome, Discard> {
    let eth = check_ethernet(frame, our_mac, EtherType::Ipv6)?;
    let ip = ipv6::Packet::new_checked(eth.payload())?;
    if ip.next_header() != IpProtocol::Icmpv6 {
        return Err(Discard::OtherProtocol);
    }
    let icmp = icmpv6::Packet::new_checked(ip.payload())?;
    let msg_type = icmp.msg_type();
    if !matches!(msg_type, Message::NeighborSolicit | Message::NeighborAdvert) {
        return Err(Discard::OtherProtocol);
    }
    if ip.hop_limit() != 255 {
        return Err(Discard::HopLimit);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if !icmp.verify_checksum(src, dst) {
        return Err(Discard::Checksum);
    }
    if icmp.msg_code() != 0 || src.is_multicast() {
        return Err(Discard::Malformed);
    }
    let target = icmp.ndp_target_addr().ok_or(Discard::Truncated)?;
    if target.is_multicast() {
        return Err(Discard::Malformed);
    }
    let options = parse_link_options(ip.payload().get(ND_BODY_LEN..).unwrap_or(&[]))?;
    for mac in [options.source, options.target].into_iter().flatten() {
        if mac == our_mac {
            return Err(Discard::Looped);
        }
        if !is_neighbor_mac(mac) {
            return Err(Discard::Malformed);
        }
    }
    let mut out = NdOutcome::default();
    let is_ours = |a: &Ipv6Addr| our_ips.contains(a);

    if msg_type == Message::NeighborAdvert {
        let flags = icmp.rest_of_header();
        let solicited = flags & NA_FLAG_SOLICITED != 0;
        if dst.is_multicast() && solicited {
            return Err(Discard::Malformed);
        }
        if is_ours(&target) {
            out.conflict = Some(Conflict {
                ip: IpAddr::V6(target),
                mac: options.target.unwrap_or(eth.src_addr()),
            });
            return Ok(out);
        }
        out.learn = Some(Learn {
            ip: IpAddr::V6(target),
            mac: options.target,
            solicited,
            overrides: flags & NA_FLAG_OVERRIDE != 0,
            create: false,
        });
        return Ok(out);
    }

    // Neighbor Solicitation.
    if src.is_unspecified() {
        if !is_solicited_node(dst) || options.source.is_some() {
            return Err(Discard::Malformed);
        }
        if is_ours(&target) {
            out.reply = Some(nd_frame(
                our_mac,
                &NdMessage {
                    eth_dst: ipv6_multicast_mac(ALL_NODES),
                    src: target,
                    dst: ALL_NODES,
                    msg_type: Message::NeighborAdvert,
                    flags: NA_FLAG_ROUTER | NA_FLAG_OVERRIDE,
                    target,
                    option: OPT_TARGET_LL,
                },
            ));
        }
        return Ok(out);
    }
    let sender_mac = options.source.unwrap_or(eth.src_addr());
    if is_ours(&src) {
        out.conflict = Some(Conflict {
            ip: IpAddr::V6(src),
            mac: sender_mac,
        });
        return Ok(out);
    }
    if !is_ours(&target) {
        return Ok(out);
    }
    out.learn = options.source.map(|mac| Learn {
        ip: IpAddr::V6(src),
        mac: Some(mac),
        solicited: false,
        overrides: true,
        create: true,
    });
    out.reply = Some(nd_frame(
        our_mac,
        &NdMessage {
            eth_dst: sender_mac,
            src: target,
            dst: src,
            msg_type: Message::NeighborAdvert,
            flags: NA_FLAG_ROUTER | NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE,
            target,
            option: OPT_TARGET_LL,
        },
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata::{XorShift, ARP_REQUEST, NEIGHBOR_SOLICIT};

    const OUR_MAC: Address = Address([0x02, 0, 0, 0, 0, 0x01]);
    const PEER_MAC: Address = Address([0x08, 0x00, 0x27, 0xa1, 0xb2, 0xc3]);
    const OTHER_MAC: Address = Address([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
    const OUR_V4: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const PEER_V4: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 100);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn ms(m: u64) -> Duration {
        Duration::from_millis(m)
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn peer_v6() -> Ipv6Addr {
        v6("fe80::a00:27ff:fea1:b2c3")
    }

    fn our_v6() -> Ipv6Addr {
        v6("fe80::1")
    }

    fn reply_to_us(ip: IpAddr, mac: Address) -> Learn {
        Learn {
            ip,
            mac: Some(mac),
            solicited: true,
            overrides: true,
            create: false,
        }
    }

    // --- cache ------------------------------------------------------------

    #[test]
    fn incomplete_retransmits_every_retrans_time_and_fails_with_queued_count() {
        let mut c = NeighborCache::default();
        let ip = v4(2);
        assert_eq!(c.resolve(ip, secs(10)), Resolve::Queue { send_probe: true });
        assert_eq!(
            c.resolve(ip, secs(10)),
            Resolve::Queue { send_probe: false }
        );
        assert_eq!(c.lookup(ip), None);
        assert_eq!(c.next_deadline(), Some(secs(11)));
        assert!(c.poll(ms(10_999)).is_empty());
        let probe = Action::SendProbe {
            ip,
            unicast_to: None,
        };
        assert_eq!(c.poll(secs(11)), vec![probe]);
        assert_eq!(
            c.state(ip),
            Some(State::Incomplete {
                probes_sent: 2,
                next_probe_at: secs(12),
                queued: 2
            })
        );
        assert_eq!(c.poll(secs(12)), vec![probe]);
        assert_eq!(c.next_deadline(), Some(secs(13)));
        assert_eq!(
            c.resolve(ip, ms(12_500)),
            Resolve::Queue { send_probe: false }
        );
        assert_eq!(
            c.poll(secs(13)),
            vec![Action::Failed {
                ip,
                dropped_packets: 3
            }]
        );
        assert_eq!(c.state(ip), None);
        assert_eq!(c.next_deadline(), None);
        assert!(c.is_empty());
    }

    #[test]
    fn a_late_poll_sends_one_probe_and_rearms_from_now() {
        let mut c = NeighborCache::default();
        let ip = v4(2);
        c.resolve(ip, secs(0));
        assert_eq!(c.poll(secs(5)).len(), 1);
        assert_eq!(c.next_deadline(), Some(secs(6)));
    }

    #[test]
    fn queue_per_incomplete_entry_is_bounded() {
        let mut c = NeighborCache::new(NeighborConfig {
            max_queued: 3,
            ..NeighborConfig::default()
        });
        let ip = v4(3);
        let got: Vec<_> = (0..5).map(|_| c.resolve(ip, secs(1))).collect();
        assert_eq!(
            got,
            vec![
                Resolve::Queue { send_probe: true },
                Resolve::Queue { send_probe: false },
                Resolve::Queue { send_probe: false },
                Resolve::Drop,
                Resolve::Drop,
            ]
        );
        assert_eq!(
            c.apply(&reply_to_us(ip, PEER_MAC), secs(2)),
            Update::Resolved {
                mac: PEER_MAC,
                queued: 3
            }
        );
        assert_eq!(c.resolve(ip, secs(2)), Resolve::Known(PEER_MAC));
    }

    #[test]
    fn reply_resolves_incomplete_to_reachable_and_cancels_probes() {
        let mut c = NeighborCache::default();
        let ip = v4(4);
        c.resolve(ip, secs(0));
        let v = c.version();
        assert_eq!(
            c.apply(&reply_to_us(ip, PEER_MAC), ms(300)),
            Update::Resolved {
                mac: PEER_MAC,
                queued: 1
            }
        );
        assert!(c.version() > v);
        assert_eq!(
            c.state(ip),
            Some(State::Reachable {
                mac: PEER_MAC,
                until: ms(30_300)
            })
        );
        assert_eq!(c.next_deadline(), Some(ms(30_300)));
        assert!(c.poll(secs(5)).is_empty());
    }

    #[test]
    fn reachable_becomes_stale_after_reachable_time_without_action() {
        let mut c = NeighborCache::default();
        let ip = v4(5);
        assert_eq!(c.learn(ip, PEER_MAC, secs(100), true), Update::Created);
        let v = c.version();
        assert!(c.poll(ms(129_999)).is_empty());
        assert!(matches!(c.state(ip), Some(State::Reachable { .. })));
        assert!(c.poll(secs(130)).is_empty());
        assert_eq!(c.state(ip), Some(State::Stale { mac: PEER_MAC }));
        assert_eq!(c.lookup(ip), Some(PEER_MAC));
        assert_eq!(c.version(), v, "the usable map did not change");
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn using_a_stale_entry_probes_after_the_delay_and_a_reply_makes_it_reachable() {
        let mut c = NeighborCache::default();
        let ip = v4(6);
        c.learn(ip, PEER_MAC, secs(0), false);
        assert_eq!(c.state(ip), Some(State::Stale { mac: PEER_MAC }));
        assert_eq!(c.next_deadline(), None);
        // Use: the stale address is used at once, probing starts after the
        // DELAY_FIRST_PROBE_TIME.
        assert_eq!(c.resolve(ip, secs(50)), Resolve::Known(PEER_MAC));
        assert_eq!(
            c.state(ip),
            Some(State::Probe {
                mac: PEER_MAC,
                probes_sent: 0,
                next_probe_at: secs(55)
            })
        );
        assert_eq!(c.resolve(ip, secs(51)), Resolve::Known(PEER_MAC));
        assert!(c.poll(secs(54)).is_empty());
        assert_eq!(
            c.poll(secs(55)),
            vec![Action::SendProbe {
                ip,
                unicast_to: Some(PEER_MAC)
            }]
        );
        assert_eq!(
            c.apply(&reply_to_us(ip, PEER_MAC), ms(55_200)),
            Update::Updated
        );
        assert_eq!(
            c.state(ip),
            Some(State::Reachable {
                mac: PEER_MAC,
                until: ms(85_200)
            })
        );
        assert!(c.poll(secs(60)).is_empty());
    }

    #[test]
    fn expired_reachable_entry_used_before_poll_starts_probing() {
        let mut c = NeighborCache::default();
        let ip = v4(6);
        c.learn(ip, PEER_MAC, secs(0), true);
        assert_eq!(c.resolve(ip, secs(31)), Resolve::Known(PEER_MAC));
        assert!(matches!(
            c.state(ip),
            Some(State::Probe { probes_sent: 0, .. })
        ));
        assert_eq!(c.next_deadline(), Some(secs(36)));
    }

    #[test]
    fn unanswered_probe_fails_after_max_probes_and_removes_the_entry() {
        let mut c = NeighborCache::new(NeighborConfig {
            delay_first_probe: Duration::ZERO,
            ..NeighborConfig::default()
        });
        let ip = v4(7);
        c.learn(ip, PEER_MAC, secs(0), false);
        c.resolve(ip, secs(10));
        let unicast = Action::SendProbe {
            ip,
            unicast_to: Some(PEER_MAC),
        };
        assert_eq!(c.poll(secs(10)), vec![unicast]);
        assert_eq!(c.poll(secs(11)), vec![unicast]);
        assert_eq!(c.poll(secs(12)), vec![unicast]);
        let v = c.version();
        assert_eq!(
            c.poll(secs(13)),
            vec![Action::Failed {
                ip,
                dropped_packets: 0
            }]
        );
        assert_eq!(c.lookup(ip), None);
        assert!(c.version() > v);
        assert_eq!(c.snapshot().get(&ip), None);
    }

    #[test]
    fn unsolicited_learn_replaces_the_address_as_stale_and_keeps_an_equal_one() {
        let mut c = NeighborCache::default();
        let ip = v4(8);
        c.learn(ip, PEER_MAC, secs(0), true);
        assert_eq!(c.learn(ip, PEER_MAC, secs(1), false), Update::Unchanged);
        assert!(matches!(c.state(ip), Some(State::Reachable { .. })));
        let v = c.version();
        assert_eq!(c.learn(ip, OTHER_MAC, secs(2), false), Update::Updated);
        assert_eq!(c.state(ip), Some(State::Stale { mac: OTHER_MAC }));
        assert_eq!(c.version(), v + 1);
    }

    #[test]
    fn advert_without_override_keeps_the_address_and_only_demotes_reachable() {
        let mut c = NeighborCache::default();
        let ip = v4(9);
        c.learn(ip, PEER_MAC, secs(0), true);
        let na = Learn {
            ip,
            mac: Some(OTHER_MAC),
            solicited: true,
            overrides: false,
            create: false,
        };
        assert_eq!(c.apply(&na, secs(1)), Update::Updated);
        assert_eq!(c.state(ip), Some(State::Stale { mac: PEER_MAC }));
        assert_eq!(c.apply(&na, secs(2)), Update::Unchanged);
        assert_eq!(c.state(ip), Some(State::Stale { mac: PEER_MAC }));
        // Without an address, a solicited NA confirms the cached one.
        let confirm = Learn { mac: None, ..na };
        assert_eq!(c.apply(&confirm, secs(3)), Update::Updated);
        assert_eq!(
            c.state(ip),
            Some(State::Reachable {
                mac: PEER_MAC,
                until: secs(33)
            })
        );
    }

    #[test]
    fn merge_only_information_never_creates_and_incomplete_needs_an_address() {
        let mut c = NeighborCache::default();
        let ip = v4(10);
        assert_eq!(
            c.apply(&reply_to_us(ip, PEER_MAC), secs(0)),
            Update::Ignored
        );
        assert!(c.is_empty());
        c.resolve(ip, secs(0));
        let bare = Learn {
            mac: None,
            ..reply_to_us(ip, PEER_MAC)
        };
        assert_eq!(c.apply(&bare, secs(0)), Update::Ignored);
        assert!(matches!(c.state(ip), Some(State::Incomplete { .. })));
    }

    #[test]
    fn full_cache_evicts_the_oldest_stale_entry_first() {
        let mut c = NeighborCache::new(NeighborConfig {
            capacity: 3,
            ..NeighborConfig::default()
        });
        c.learn(v4(1), PEER_MAC, secs(5), false); // stale since 5
        c.learn(v4(2), PEER_MAC, secs(1), false); // stale since 1: oldest
        c.learn(v4(3), PEER_MAC, secs(0), true); // reachable
        assert_eq!(c.learn(v4(4), OTHER_MAC, secs(6), false), Update::Created);
        assert_eq!(c.len(), 3);
        assert_eq!(c.lookup(v4(2)), None);
        assert_eq!(c.lookup(v4(1)), Some(PEER_MAC));
        assert_eq!(
            c.resolve(v4(5), secs(7)),
            Resolve::Queue { send_probe: true }
        );
        assert_eq!(c.lookup(v4(1)), None, "next oldest stale evicted");
        assert_eq!(c.lookup(v4(4)), Some(OTHER_MAC));
    }

    #[test]
    fn full_cache_without_stale_entries_drops_new_destinations() {
        let mut c = NeighborCache::new(NeighborConfig {
            capacity: 2,
            ..NeighborConfig::default()
        });
        c.learn(v4(1), PEER_MAC, secs(0), true);
        c.resolve(v4(2), secs(0));
        assert_eq!(c.resolve(v4(3), secs(1)), Resolve::Drop);
        assert_eq!(c.learn(v4(3), PEER_MAC, secs(1), false), Update::Full);
        assert_eq!(c.len(), 2);
        // Once the reachable entry goes stale it can make room.
        c.poll(secs(30));
        assert_eq!(
            c.resolve(v4(3), secs(31)),
            Resolve::Queue { send_probe: true }
        );
        assert_eq!(c.lookup(v4(1)), None);
    }

    #[test]
    fn snapshot_holds_usable_entries_only_and_is_shared_by_clones() {
        let mut c = NeighborCache::default();
        c.learn(v4(1), PEER_MAC, secs(0), true);
        c.learn(v4(2), OTHER_MAC, secs(0), false);
        c.learn(IpAddr::V6(peer_v6()), PEER_MAC, secs(0), false);
        c.resolve(v4(3), secs(0));
        let s = c.snapshot();
        assert_eq!(s.len(), 3);
        assert_eq!(s.version(), c.version());
        assert_eq!(s.get(&v4(1)), Some(PEER_MAC));
        assert_eq!(s.get(&v4(2)), Some(OTHER_MAC));
        assert_eq!(s.get(&IpAddr::V6(peer_v6())), Some(PEER_MAC));
        assert_eq!(s.get(&v4(3)), None);
        let clone = s.clone();
        assert!(Arc::ptr_eq(&s.map, &clone.map));
        // Later changes do not touch an existing snapshot.
        c.remove(v4(1));
        assert_eq!(s.get(&v4(1)), Some(PEER_MAC));
        assert_eq!(c.snapshot().get(&v4(1)), None);
        assert!(c.snapshot().version() > s.version());
        assert!(NeighborSnapshot::default().is_empty());
    }

    #[test]
    fn snapshot_lookups_work_across_many_keys() {
        let mut c = NeighborCache::default();
        for i in 0..4096u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            c.learn(
                ip,
                Address([2, 0, 0, 0, (i >> 8) as u8, i as u8]),
                secs(0),
                false,
            );
        }
        let s = c.snapshot();
        assert_eq!(s.len(), 4096);
        for i in 0..4096u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(
                s.get(&ip),
                Some(Address([2, 0, 0, 0, (i >> 8) as u8, i as u8]))
            );
        }
        assert_eq!(s.get(&v4(0)), Some(Address([2, 0, 0, 0, 0, 0])));
        assert_eq!(s.iter().count(), 4096);
    }

    #[test]
    fn next_deadline_is_the_earliest_live_timer() {
        let mut c = NeighborCache::default();
        c.learn(v4(1), PEER_MAC, secs(10), true); // 40
        c.resolve(v4(2), secs(20)); // 21
        assert_eq!(c.next_deadline(), Some(secs(21)));
        c.learn(v4(2), OTHER_MAC, secs(20), true); // 50, probe cancelled
        assert_eq!(c.next_deadline(), Some(secs(40)));
        c.remove(v4(1));
        assert_eq!(c.next_deadline(), Some(secs(50)));
    }

    #[test]
    fn repeated_confirmations_keep_the_timer_heap_bounded() {
        let mut c = NeighborCache::default();
        c.learn(v4(1), PEER_MAC, secs(0), true);
        for i in 0..100_000 {
            c.confirm(v4(1), ms(i));
        }
        assert!(c.timers.len() <= 2 * c.len() + 65, "{}", c.timers.len());
        assert_eq!(c.next_deadline(), Some(ms(99_999) + secs(30)));
        assert!(!c.confirm(v4(2), secs(1)));
    }

    #[test]
    fn config_minimums_are_enforced() {
        let c = NeighborCache::new(NeighborConfig {
            retrans_time: Duration::ZERO,
            capacity: 0,
            max_queued: 0,
            ..NeighborConfig::default()
        });
        assert_eq!(c.config().retrans_time, ms(1));
        assert_eq!(c.config().capacity, 1);
        assert_eq!(c.config().max_queued, 1);
    }

    // --- ARP ----------------------------------------------------------------

    /// ARP_REQUEST (who has 192.168.1.1, tell 192.168.1.100 at
    /// 08:00:27:a1:b2:c3) answered by 02:00:00:00:00:01, written out by hand.
    const EXPECTED_ARP_REPLY: [u8; 42] = [
        0x08, 0x00, 0x27, 0xa1, 0xb2, 0xc3, // dst: the asker
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src: us
        0x08, 0x06, // ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // Ethernet/IPv4, reply
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0xc0, 0xa8, 0x01, 0x01, // us
        0x08, 0x00, 0x27, 0xa1, 0xb2, 0xc3, 0xc0, 0xa8, 0x01, 0x64, // asker
    ];

    fn arp_frame_bytes(
        eth_dst: Address,
        op: arp::Operation,
        sender: (Address, Ipv4Addr),
        target: (Address, Ipv4Addr),
    ) -> [u8; 42] {
        arp_frame(eth_dst, op, sender, target)
    }

    #[test]
    fn arp_request_for_us_gets_the_exact_reply_and_creates_the_sender() {
        let out = handle_arp(&ARP_REQUEST, OUR_MAC, &[Ipv4Addr::new(10, 9, 9, 9), OUR_V4]).unwrap();
        assert_eq!(out.reply, Some(EXPECTED_ARP_REPLY));
        assert_eq!(out.conflict, None);
        let learn = out.learn.unwrap();
        assert_eq!(
            learn,
            Learn {
                ip: IpAddr::V4(PEER_V4),
                mac: Some(PEER_MAC),
                solicited: false,
                overrides: true,
                create: true
            }
        );
        let mut c = NeighborCache::default();
        assert_eq!(c.apply(&learn, secs(0)), Update::Created);
        assert_eq!(
            c.state(IpAddr::V4(PEER_V4)),
            Some(State::Stale { mac: PEER_MAC })
        );
    }

    #[test]
    fn arp_request_for_another_address_is_not_answered_and_only_merges() {
        let out = handle_arp(&ARP_REQUEST, OUR_MAC, &[Ipv4Addr::new(192, 168, 1, 2)]).unwrap();
        assert_eq!(out.reply, None);
        let learn = out.learn.unwrap();
        assert!(!learn.create && !learn.solicited);
        let mut c = NeighborCache::default();
        assert_eq!(c.apply(&learn, secs(0)), Update::Ignored);
        assert!(c.is_empty());
        // Merge: a known sender's new address is taken.
        c.learn(IpAddr::V4(PEER_V4), OTHER_MAC, secs(0), true);
        assert_eq!(c.apply(&learn, secs(1)), Update::Updated);
        assert_eq!(c.lookup(IpAddr::V4(PEER_V4)), Some(PEER_MAC));
    }

    #[test]
    fn gratuitous_arp_updates_an_existing_entry_only() {
        let peer = IpAddr::V4(PEER_V4);
        for op in [arp::Operation::Request, arp::Operation::Reply] {
            let garp = arp_frame_bytes(
                Address::BROADCAST,
                op,
                (OTHER_MAC, PEER_V4),
                (Address::UNSPECIFIED, PEER_V4),
            );
            let out = handle_arp(&garp, OUR_MAC, &[OUR_V4]).unwrap();
            assert_eq!(out.reply, None);
            let learn = out.learn.unwrap();
            assert_eq!(learn.mac, Some(OTHER_MAC));
            assert!(!learn.create && !learn.solicited);

            let mut c = NeighborCache::default();
            assert_eq!(c.apply(&learn, secs(0)), Update::Ignored);
            c.learn(peer, PEER_MAC, secs(0), true);
            assert_eq!(c.apply(&learn, secs(1)), Update::Updated);
            assert_eq!(c.state(peer), Some(State::Stale { mac: OTHER_MAC }));
        }
    }

    #[test]
    fn arp_reply_unicast_to_us_resolves_an_incomplete_entry_as_reachable() {
        let peer = IpAddr::V4(PEER_V4);
        let mut c = NeighborCache::default();
        assert_eq!(
            c.resolve(peer, secs(0)),
            Resolve::Queue { send_probe: true }
        );
        let reply = arp_frame_bytes(
            OUR_MAC,
            arp::Operation::Reply,
            (PEER_MAC, PEER_V4),
            (OUR_MAC, OUR_V4),
        );
        let out = handle_arp(&reply, OUR_MAC, &[OUR_V4]).unwrap();
        assert_eq!(out.reply, None);
        let learn = out.learn.unwrap();
        assert_eq!(learn, reply_to_us(peer, PEER_MAC));
        assert_eq!(
            c.apply(&learn, ms(20)),
            Update::Resolved {
                mac: PEER_MAC,
                queued: 1
            }
        );
        assert!(matches!(c.state(peer), Some(State::Reachable { .. })));
        // An unasked-for reply does not plant an entry.
        let stranger = arp_frame_bytes(
            OUR_MAC,
            arp::Operation::Reply,
            (OTHER_MAC, Ipv4Addr::new(192, 168, 1, 77)),
            (OUR_MAC, OUR_V4),
        );
        let learn = handle_arp(&stranger, OUR_MAC, &[OUR_V4])
            .unwrap()
            .learn
            .unwrap();
        assert_eq!(c.apply(&learn, ms(30)), Update::Ignored);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn arp_probe_for_our_address_is_answered_but_not_learned() {
        let probe = arp_frame_bytes(
            Address::BROADCAST,
            arp::Operation::Request,
            (PEER_MAC, Ipv4Addr::UNSPECIFIED),
            (Address::UNSPECIFIED, OUR_V4),
        );
        let out = handle_arp(&probe, OUR_MAC, &[OUR_V4]).unwrap();
        assert_eq!(out.learn, None);
        let expected = arp_frame_bytes(
            PEER_MAC,
            arp::Operation::Reply,
            (OUR_MAC, OUR_V4),
            (PEER_MAC, Ipv4Addr::UNSPECIFIED),
        );
        assert_eq!(out.reply, Some(expected));
        let other = handle_arp(&probe, OUR_MAC, &[Ipv4Addr::new(10, 0, 0, 1)]).unwrap();
        assert_eq!(other, ArpOutcome::default());
    }

    #[test]
    fn arp_claiming_our_address_is_a_conflict_and_teaches_nothing() {
        let garp = arp_announcement(OTHER_MAC, OUR_V4);
        let out = handle_arp(&garp, OUR_MAC, &[OUR_V4]).unwrap();
        assert_eq!(
            out,
            ArpOutcome {
                learn: None,
                reply: None,
                conflict: Some(Conflict {
                    ip: IpAddr::V4(OUR_V4),
                    mac: OTHER_MAC
                })
            }
        );
    }

    #[test]
    fn arp_frames_that_are_not_for_us_or_invalid_are_discarded() {
        let mut f = ARP_REQUEST;
        f[..6].copy_from_slice(&OTHER_MAC.0);
        assert_eq!(
            handle_arp(&f, OUR_MAC, &[OUR_V4]),
            Err(Discard::NotOurFrame)
        );
        let looped = arp_request(OUR_MAC, OUR_V4, PEER_V4);
        assert_eq!(
            handle_arp(&looped, OUR_MAC, &[OUR_V4]),
            Err(Discard::Looped)
        );
        let mut f = ARP_REQUEST;
        f[22] |= 0x01; // multicast sender hardware address
        assert_eq!(handle_arp(&f, OUR_MAC, &[OUR_V4]), Err(Discard::Malformed));
        let mut f = ARP_REQUEST;
        f[28] = 224; // multicast sender protocol address
        assert_eq!(handle_arp(&f, OUR_MAC, &[OUR_V4]), Err(Discard::Malformed));
        let mut f = ARP_REQUEST;
        f[21] = 3; // RARP request
        assert_eq!(
            handle_arp(&f, OUR_MAC, &[OUR_V4]),
            Err(Discard::OtherProtocol)
        );
        assert_eq!(
            handle_arp(&ARP_REQUEST[..41], OUR_MAC, &[OUR_V4]),
            Err(Discard::Truncated)
        );
        assert_eq!(
            handle_arp(&NEIGHBOR_SOLICIT, OUR_MAC, &[OUR_V4]),
            Err(Discard::OtherProtocol)
        );
        let mut tagged = [0u8; 64];
        tagged[..12].copy_from_slice(&ARP_REQUEST[..12]);
        tagged[12..16].copy_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        tagged[16..60].copy_from_slice(&ARP_REQUEST[12..56]);
        assert_eq!(
            handle_arp(&tagged, OUR_MAC, &[OUR_V4]),
            Err(Discard::VlanTagged)
        );
    }

    #[test]
    fn arp_request_builders_write_the_rfc_826_layout() {
        // Broadcast: same bytes as the independent fixture, without padding.
        assert_eq!(
            arp_request(PEER_MAC, PEER_V4, OUR_V4)[..],
            ARP_REQUEST[..42]
        );
        let unicast = arp_request_unicast(OUR_MAC, OUR_V4, PEER_V4, PEER_MAC);
        let mut expected = [0u8; 42];
        expected[..6].copy_from_slice(&PEER_MAC.0);
        expected[6..12].copy_from_slice(&OUR_MAC.0);
        expected[12..22].copy_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        expected[22..28].copy_from_slice(&OUR_MAC.0);
        expected[28..32].copy_from_slice(&[192, 168, 1, 1]);
        expected[38..42].copy_from_slice(&[192, 168, 1, 100]);
        assert_eq!(unicast, expected);
        let announce = arp_announcement(OUR_MAC, OUR_V4);
        assert_eq!(&announce[..6], &[0xff; 6]);
        assert_eq!(&announce[28..32], &announce[38..42]);
        assert_eq!(&announce[32..38], &[0; 6]);
    }

    // --- Neighbor Discovery -----------------------------------------------

    #[test]
    fn solicited_node_address_and_mac_follow_rfc_4291_and_2464() {
        // RFC 4291 section 2.7.1's example.
        let ip = v6("4037::01:800:200e:8c6c");
        assert_eq!(solicited_node(ip), v6("ff02::1:ff0e:8c6c"));
        assert_eq!(
            ipv6_multicast_mac(solicited_node(ip)),
            Address([0x33, 0x33, 0xff, 0x0e, 0x8c, 0x6c])
        );
        assert!(is_solicited_node(v6("ff02::1:ff0e:8c6c")));
        assert!(!is_solicited_node(v6("ff02::1:fe0e:8c6c")));
        assert!(!is_solicited_node(v6("ff02::1")));
        assert_eq!(
            ipv6_multicast_mac(ALL_NODES),
            Address([0x33, 0x33, 0, 0, 0, 1])
        );
    }

    #[test]
    fn neighbor_solicitation_matches_the_independent_fixture() {
        // NEIGHBOR_SOLICIT was built by a separate script: the same NS from
        // the fixture's host must come out byte for byte.
        let ns = neighbor_solicitation(PEER_MAC, peer_v6(), our_v6());
        assert_eq!(ns, NEIGHBOR_SOLICIT);
    }

    /// Checks an NA frame's headers and returns (flags, target, TLLA).
    fn parse_na(frame: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> (u32, Ipv6Addr, Address) {
        let eth = ethernet::Frame::new_checked(frame).unwrap();
        assert_eq!(eth.src_addr(), OUR_MAC);
        assert_eq!(eth.payload_ethertype(), EtherType::Ipv6);
        let ip = ipv6::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (src, dst));
        assert_eq!(ip.hop_limit(), 255);
        assert_eq!(ip.next_header(), IpProtocol::Icmpv6);
        let icmp = icmpv6::Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(src, dst));
        assert_eq!(icmp.msg_type(), Message::NeighborAdvert);
        assert_eq!(icmp.msg_code(), 0);
        let opts = parse_link_options(&ip.payload()[24..]).unwrap();
        assert_eq!(opts.source, None);
        (
            icmp.rest_of_header(),
            icmp.ndp_target_addr().unwrap(),
            opts.target.unwrap(),
        )
    }

    #[test]
    fn ns_for_us_gets_a_solicited_override_na_with_a_valid_checksum() {
        let out = handle_nd(&NEIGHBOR_SOLICIT, OUR_MAC, &[v6("2001:db8::1"), our_v6()]).unwrap();
        let reply = out.reply.unwrap();
        assert_eq!(&reply[..6], &PEER_MAC.0);
        let (flags, target, tlla) = parse_na(&reply, our_v6(), peer_v6());
        assert_eq!(flags, NA_FLAG_ROUTER | NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE);
        assert_eq!(flags, 0xe000_0000);
        assert_eq!(target, our_v6());
        assert_eq!(tlla, OUR_MAC);
        assert_eq!(
            out.learn,
            Some(Learn {
                ip: IpAddr::V6(peer_v6()),
                mac: Some(PEER_MAC),
                solicited: false,
                overrides: true,
                create: true
            })
        );
        assert_eq!(out.conflict, None);
    }

    #[test]
    fn ns_for_another_target_is_valid_but_needs_nothing() {
        let out = handle_nd(&NEIGHBOR_SOLICIT, OUR_MAC, &[v6("fe80::2")]).unwrap();
        assert_eq!(out, NdOutcome::default());
    }

    /// Rewrites the ICMPv6 checksum of an NS/NA frame after an edit.
    fn refill_checksum(frame: &mut [u8]) {
        let mut eth = ethernet::Frame::new_checked(&mut *frame).unwrap();
        let mut ip = ipv6::Packet::new_checked(eth.payload_mut()).unwrap();
        let (s, d) = (ip.src_addr(), ip.dst_addr());
        icmpv6::Packet::new_checked(ip.payload_mut())
            .unwrap()
            .fill_checksum(s, d);
    }

    #[test]
    fn ns_with_bad_hop_limit_or_checksum_is_discarded() {
        let ours = [our_v6()];
        let mut hop = NEIGHBOR_SOLICIT;
        hop[21] = 254; // hop limit (not covered by the ICMPv6 checksum)
        assert_eq!(handle_nd(&hop, OUR_MAC, &ours), Err(Discard::HopLimit));
        let mut ck = NEIGHBOR_SOLICIT;
        ck[56] ^= 0x01;
        assert_eq!(handle_nd(&ck, OUR_MAC, &ours), Err(Discard::Checksum));
        let mut body = NEIGHBOR_SOLICIT;
        body[85] ^= 0x10; // SLLA byte: checksum no longer matches
        assert_eq!(handle_nd(&body, OUR_MAC, &ours), Err(Discard::Checksum));
        let mut code = NEIGHBOR_SOLICIT;
        code[55] = 1;
        refill_checksum(&mut code);
        assert_eq!(handle_nd(&code, OUR_MAC, &ours), Err(Discard::Malformed));
        let mut mcast_target = NEIGHBOR_SOLICIT;
        mcast_target[62] = 0xff;
        refill_checksum(&mut mcast_target);
        assert_eq!(
            handle_nd(&mcast_target, OUR_MAC, &ours),
            Err(Discard::Malformed)
        );
    }

    #[test]
    fn nd_options_are_bounds_checked() {
        let mac = [1, 1, 2, 0, 0, 0, 0, 9];
        assert_eq!(
            parse_link_options(&mac),
            Ok(LinkOptions {
                source: Some(Address([2, 0, 0, 0, 0, 9])),
                target: None
            })
        );
        // Unknown option (type 14, nonce) skipped; a 16-byte LL option is
        // not Ethernet and skipped; the first Ethernet one wins.
        let mut opts = vec![14, 1, 0, 0, 0, 0, 0, 0];
        opts.extend_from_slice(&[2, 2, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]);
        opts.extend_from_slice(&[2, 1, 4, 0, 0, 0, 0, 1]);
        opts.extend_from_slice(&[2, 1, 4, 0, 0, 0, 0, 2]);
        assert_eq!(
            parse_link_options(&opts).unwrap().target,
            Some(Address([4, 0, 0, 0, 0, 1]))
        );
        assert_eq!(parse_link_options(&[]), Ok(LinkOptions::default()));
        assert_eq!(
            parse_link_options(&[1, 0, 0, 0, 0, 0, 0, 0]),
            Err(Discard::Malformed)
        );
        assert_eq!(
            parse_link_options(&[1, 2, 0, 0, 0, 0, 0, 0]),
            Err(Discard::Malformed)
        );
        assert_eq!(parse_link_options(&[1]), Err(Discard::Malformed));
        assert_eq!(parse_link_options(&mac[..7]), Err(Discard::Malformed));
    }

    #[test]
    fn dad_probe_for_our_address_gets_an_na_to_all_nodes() {
        let target = our_v6();
        let mut dad = neighbor_solicitation(PEER_MAC, Ipv6Addr::UNSPECIFIED, target);
        // DAD carries no source link-layer option: shorten the message.
        let mut frame = [0u8; ND_FRAME_LEN - 8];
        frame.copy_from_slice(&dad[..ND_FRAME_LEN - 8]);
        frame[19] = 24; // payload length
        refill_checksum(&mut frame);
        let out = handle_nd(&frame, OUR_MAC, &[target]).unwrap();
        assert_eq!(out.learn, None);
        assert_eq!(out.conflict, None);
        let reply = out.reply.unwrap();
        assert_eq!(&reply[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        let (flags, t, tlla) = parse_na(&reply, target, ALL_NODES);
        assert_eq!(flags, NA_FLAG_ROUTER | NA_FLAG_OVERRIDE);
        assert_eq!((t, tlla), (target, OUR_MAC));
        // With a source link-layer option, an unspecified source is invalid.
        refill_checksum(&mut dad);
        assert_eq!(handle_nd(&dad, OUR_MAC, &[target]), Err(Discard::Malformed));
    }

    fn na_frame(
        flags: u32,
        dst: Ipv6Addr,
        eth_dst: Address,
        target: Ipv6Addr,
        mac: Address,
    ) -> [u8; ND_FRAME_LEN] {
        let m = NdMessage {
            eth_dst,
            src: target,
            dst,
            msg_type: Message::NeighborAdvert,
            flags,
            target,
            option: OPT_TARGET_LL,
        };
        nd_frame(mac, &m)
    }

    #[test]
    fn solicitation_round_trip_resolves_through_the_peer_and_back() {
        let mut c = NeighborCache::default();
        let peer = IpAddr::V6(peer_v6());
        assert_eq!(
            c.resolve(peer, secs(0)),
            Resolve::Queue { send_probe: true }
        );
        let ns = neighbor_solicitation(OUR_MAC, our_v6(), peer_v6());
        assert_eq!(&ns[..6], &[0x33, 0x33, 0xff, 0xa1, 0xb2, 0xc3]);
        // The peer answers with its own handle_nd.
        let peer_out = handle_nd(&ns, PEER_MAC, &[peer_v6()]).unwrap();
        let na = peer_out.reply.unwrap();
        assert_eq!(peer_out.learn.unwrap().mac, Some(OUR_MAC));
        let out = handle_nd(&na, OUR_MAC, &[our_v6()]).unwrap();
        assert_eq!(out.reply, None);
        assert_eq!(
            c.apply(&out.learn.unwrap(), ms(5)),
            Update::Resolved {
                mac: PEER_MAC,
                queued: 1
            }
        );
        assert_eq!(
            c.state(peer),
            Some(State::Reachable {
                mac: PEER_MAC,
                until: ms(30_005)
            })
        );
        // And the unicast probe is answered the same way.
        let probe = neighbor_solicitation_unicast(OUR_MAC, our_v6(), peer_v6(), PEER_MAC);
        assert_eq!(&probe[..6], &PEER_MAC.0);
        assert!(handle_nd(&probe, PEER_MAC, &[peer_v6()])
            .unwrap()
            .reply
            .is_some());
    }

    #[test]
    fn na_flags_drive_learning_and_multicast_solicited_na_is_invalid() {
        let peer = peer_v6();
        let unsolicited = na_frame(
            NA_FLAG_OVERRIDE,
            ALL_NODES,
            ipv6_multicast_mac(ALL_NODES),
            peer,
            OTHER_MAC,
        );
        let learn = handle_nd(&unsolicited, OUR_MAC, &[our_v6()])
            .unwrap()
            .learn
            .unwrap();
        assert_eq!(
            learn,
            Learn {
                ip: IpAddr::V6(peer),
                mac: Some(OTHER_MAC),
                solicited: false,
                overrides: true,
                create: false
            }
        );
        let mut c = NeighborCache::default();
        assert_eq!(c.apply(&learn, secs(0)), Update::Ignored);
        c.learn(IpAddr::V6(peer), PEER_MAC, secs(0), true);
        assert_eq!(c.apply(&learn, secs(1)), Update::Updated);
        assert_eq!(
            c.state(IpAddr::V6(peer)),
            Some(State::Stale { mac: OTHER_MAC })
        );

        let bad = na_frame(
            NA_FLAG_SOLICITED,
            ALL_NODES,
            ipv6_multicast_mac(ALL_NODES),
            peer,
            OTHER_MAC,
        );
        assert_eq!(
            handle_nd(&bad, OUR_MAC, &[our_v6()]),
            Err(Discard::Malformed)
        );

        let claim = na_frame(
            NA_FLAG_OVERRIDE,
            ALL_NODES,
            ipv6_multicast_mac(ALL_NODES),
            our_v6(),
            OTHER_MAC,
        );
        let out = handle_nd(&claim, OUR_MAC, &[our_v6()]).unwrap();
        assert_eq!(
            out.conflict,
            Some(Conflict {
                ip: IpAddr::V6(our_v6()),
                mac: OTHER_MAC
            })
        );
        assert_eq!(out.learn, None);

        let elsewhere = na_frame(NA_FLAG_SOLICITED, peer, OTHER_MAC, peer, PEER_MAC);
        assert_eq!(
            handle_nd(&elsewhere, OUR_MAC, &[our_v6()]),
            Err(Discard::NotOurFrame)
        );
    }

    // --- robustness -------------------------------------------------------

    /// Checks that a produced reply is a frame our own parsers accept.
    fn check_reply_arp(out: &ArpOutcome) {
        if let Some(r) = out.reply {
            let p = arp::Packet::new_checked(&r[14..]).unwrap();
            assert_eq!(p.operation(), arp::Operation::Reply);
            assert_eq!(p.sender_hardware_addr(), OUR_MAC);
        }
    }

    fn check_reply_nd(out: &NdOutcome) {
        if let Some(r) = out.reply {
            let ip = ipv6::Packet::new_checked(&r[14..]).unwrap();
            let icmp = icmpv6::Packet::new_checked(ip.payload()).unwrap();
            assert!(icmp.verify_checksum(ip.src_addr(), ip.dst_addr()));
            assert_eq!(icmp.msg_type(), Message::NeighborAdvert);
        }
    }

    #[test]
    fn random_and_mutated_frames_never_panic_and_replies_stay_valid() {
        let mut rng = XorShift(0x4861_0826);
        let ours4 = [OUR_V4];
        let ours6 = [our_v6()];
        let mut cache = NeighborCache::new(NeighborConfig {
            capacity: 64,
            ..NeighborConfig::default()
        });
        let mut buf = [0u8; 128];
        let (mut arp_ok, mut nd_ok, mut arp_err, mut nd_err) = (0, 0, 0, 0);
        for i in 0..6000u64 {
            let now = ms(i);
            // Pure noise, of every length up to 128.
            let len = rng.below(129);
            rng.fill(&mut buf[..len]);
            assert!(handle_arp(&buf[..len], OUR_MAC, &ours4).is_err() || len >= 42);
            let _ = handle_nd(&buf[..len], OUR_MAC, &ours6);

            // A valid ARP frame with a few random bytes changed, truncated
            // at a random length.
            let mut a = ARP_REQUEST;
            for _ in 0..1 + rng.below(3) {
                a[14 + rng.below(28)] = rng.next_u8();
            }
            let cut = rng.below(61);
            match handle_arp(&a[..cut], OUR_MAC, &ours4) {
                Ok(out) => {
                    arp_ok += 1;
                    check_reply_arp(&out);
                    if let Some(l) = out.learn {
                        cache.apply(&l, now);
                    }
                }
                Err(_) => arp_err += 1,
            }

            // A valid NS with random edits after the Ethernet header, the
            // checksum refilled when the frame still parses that far.
            let mut n = NEIGHBOR_SOLICIT;
            for _ in 0..1 + rng.below(3) {
                n[14 + rng.below(72)] = rng.next_u8();
            }
            if rng.below(2) == 0 {
                n[20] = 58;
                n[21] = 255;
                n[14] = 0x60;
            }
            let nlen = 54 + rng.below(33);
            if let Ok(mut eth) = ethernet::Frame::new_checked(&mut n[..nlen]) {
                if let Ok(mut ip) = ipv6::Packet::new_checked(eth.payload_mut()) {
                    let (s, d) = (ip.src_addr(), ip.dst_addr());
                    if let Ok(mut icmp) = icmpv6::Packet::new_checked(ip.payload_mut()) {
                        icmp.fill_checksum(s, d);
                    }
                }
            }
            match handle_nd(&n[..nlen], OUR_MAC, &ours6) {
                Ok(out) => {
                    nd_ok += 1;
                    check_reply_nd(&out);
                    if let Some(l) = out.learn {
                        cache.apply(&l, now);
                    }
                }
                Err(_) => nd_err += 1,
            }
            if i % 97 == 0 {
                cache.resolve(IpAddr::V4(Ipv4Addr::from(rng.next_u32())), now);
                cache.poll(now);
            }
        }
        assert!(cache.len() <= 64);
        // Both paths were reached: some frames were accepted and some
        // rejected.
        assert!(arp_ok > 100 && arp_err > 100, "{arp_ok} {arp_err}");
        assert!(nd_ok > 100 && nd_err > 100, "{nd_ok} {nd_err}");
    }
}
