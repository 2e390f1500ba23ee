//! Tests of the flow table: its behaviour against a `HashMap` model, under
//! hostile hashes, and its sizing and timing.

use super::*;
use crate::dpi::engine::FlowDpi;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// One tick per millisecond: the stamp unit is one tick, so ages are
/// exact.
fn config(capacity: usize) -> FlowTableConfig {
    FlowTableConfig {
        capacity,
        ticks_per_second: 1000,
        tcp_idle_timeout: 300_000,
        other_idle_timeout: 30_000,
    }
}

fn table<V: Copy + Default>(capacity: usize) -> FlowTable<V> {
    FlowTable::new(&config(capacity)).unwrap()
}

/// A distinct UDP (or, with `proto`, other) IPv4 flow per `n`.
fn flow(proto: u8, n: u32) -> FlowKey {
    let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
    let dst = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    FlowKey::new(proto, src, 40_000 + (n % 20_000) as u16, dst, 443).0
}

/// splitmix64: a deterministic PRNG for the randomized tests.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn both_directions_hit(proto: u8, a: &str, b: &str) {
    let (a, b): (IpAddr, IpAddr) = (a.parse().unwrap(), b.parse().unwrap());
    let mut t = table::<u32>(100);
    let (fwd, _) = FlowKey::new(proto, a, 51_000, b, 443);
    let (rev, _) = FlowKey::new(proto, b, 443, a, 51_000);
    let e = t.lookup_or_insert(&fwd, fwd.hash64(), 1);
    assert_eq!(e.kind, EntryKind::Inserted);
    *e.value = 7;
    let e = t.lookup_or_insert(&rev, rev.hash64(), 2);
    assert_eq!(e.kind, EntryKind::Hit);
    assert_eq!(*e.value, 7);
    assert_eq!(t.len(), 1);
    assert_eq!(t.get(&fwd, fwd.hash64(), 3), Some(&7));
}

#[test]
fn both_directions_of_an_ipv4_flow_hit_one_entry() {
    both_directions_hit(6, "10.0.0.1", "93.184.216.34");
}

#[test]
fn both_directions_of_an_ipv6_flow_hit_one_entry() {
    both_directions_hit(17, "2001:db8::1", "2001:db8:ffff::2");
}

#[test]
fn ipv4_and_ipv6_flows_and_protocols_are_distinct() {
    let mut t = table::<u8>(100);
    let v4 = FlowKey::new(
        17,
        "10.0.0.1".parse().unwrap(),
        1,
        "10.0.0.2".parse().unwrap(),
        2,
    )
    .0;
    let v6 = FlowKey::new(
        17,
        "::a00:1".parse().unwrap(),
        1,
        "::a00:2".parse().unwrap(),
        2,
    )
    .0;
    let tcp = FlowKey { proto: 6, ..v4 };
    for (n, k) in [v4, v6, tcp].iter().enumerate() {
        *t.lookup_or_insert(k, k.hash64(), 0).value = n as u8 + 1;
    }
    assert_eq!(t.len(), 3);
    for (n, k) in [v4, v6, tcp].iter().enumerate() {
        assert_eq!(t.get(k, k.hash64(), 0), Some(&(n as u8 + 1)));
    }
}

#[test]
fn a_full_table_evicts_the_least_recently_seen_flow() {
    // One bucket: both choices are the same bucket.
    let mut t = table::<u32>(BUCKET_SLOTS);
    assert_eq!(t.bucket_count(), 1);
    for n in 0..BUCKET_SLOTS as u32 {
        let k = flow(17, n);
        *t.lookup_or_insert(&k, k.hash64(), u64::from(n)).value = n + 100;
    }
    assert_eq!(t.len(), BUCKET_SLOTS);
    // Flow 0 is seen again, so flow 1 is now the oldest.
    let k0 = flow(17, 0);
    assert_eq!(
        t.lookup_or_insert(&k0, k0.hash64(), 20).kind,
        EntryKind::Hit
    );
    let new = flow(17, 1000);
    let e = t.lookup_or_insert(&new, new.hash64(), 21);
    assert_eq!(
        e.kind,
        EntryKind::Replaced(Displaced {
            key: flow(17, 1),
            value: 101,
            reason: DisplaceReason::Evicted,
        })
    );
    assert_eq!(*e.value, 0, "a new flow starts from Default");
    assert_eq!(t.len(), BUCKET_SLOTS);
    assert_eq!(t.get(&flow(17, 1), flow(17, 1).hash64(), 21), None);
    // Next oldest: flow 2.
    let new2 = flow(17, 1001);
    match t.lookup_or_insert(&new2, new2.hash64(), 22).kind {
        EntryKind::Replaced(d) => assert_eq!(d.key, flow(17, 2)),
        other => panic!("expected an eviction, got {other:?}"),
    }
    assert_eq!(t.stats().evictions, 2);
}

#[test]
fn expire_removes_idle_flows_with_the_timeout_of_their_protocol() {
    let mut t = table::<u8>(1000);
    let (tcp, udp) = (flow(6, 1), flow(17, 2));
    t.lookup_or_insert(&tcp, tcp.hash64(), 0);
    t.lookup_or_insert(&udp, udp.hash64(), 0);
    let all = t.bucket_count();
    // Idle for exactly the timeout: still there.
    assert_eq!(t.expire(30_000, all), 0);
    assert_eq!(t.expire(30_001, all), 1);
    assert_eq!(t.get(&udp, udp.hash64(), 30_001), None);
    assert!(t.get(&tcp, tcp.hash64(), 30_001).is_some());
    assert_eq!(t.expire(300_000, all), 0);
    let mut gone = Vec::new();
    assert_eq!(t.expire_with(300_001, all, |k, _| gone.push(*k)), 1);
    assert_eq!(gone, [tcp]);
    assert!(t.is_empty());
    assert_eq!(t.stats().expirations, 2);
}

#[test]
fn seeing_a_flow_postpones_its_expiry() {
    let mut t = table::<u8>(100);
    let k = flow(17, 5);
    t.lookup_or_insert(&k, k.hash64(), 0);
    t.lookup_or_insert(&k, k.hash64(), 25_000);
    assert_eq!(t.expire(50_000, t.bucket_count()), 0);
    assert_eq!(t.expire(55_001, t.bucket_count()), 1);
}

#[test]
fn expire_visits_only_its_budget_of_buckets_per_call() {
    let mut t = table::<u8>(100 * BUCKET_SLOTS);
    for n in 0..500 {
        let k = flow(17, n);
        t.lookup_or_insert(&k, k.hash64(), 0);
    }
    let nb = t.bucket_count();
    let mut removed = 0;
    let mut calls = 0;
    while removed < 500 {
        let r = t.expire(1_000_000, 7);
        assert!(r <= 7 * BUCKET_SLOTS);
        removed += r;
        calls += 1;
        assert!(calls <= nb.div_ceil(7), "one pass sweeps every bucket");
    }
    assert_eq!(removed, 500);
    assert!(t.is_empty());
    assert_eq!(t.expire(2_000_000, 0), 0);
}

#[test]
fn an_idle_flow_found_before_the_sweep_starts_over() {
    let mut t = table::<u32>(100);
    let k = flow(17, 9);
    *t.lookup_or_insert(&k, k.hash64(), 0).value = 42;
    let e = t.lookup_or_insert(&k, k.hash64(), 30_001);
    assert_eq!(
        e.kind,
        EntryKind::Replaced(Displaced {
            key: k,
            value: 42,
            reason: DisplaceReason::Expired,
        })
    );
    assert_eq!(*e.value, 0);
    assert_eq!(t.len(), 1);
    assert_eq!(
        t.lookup_or_insert(&k, k.hash64(), 30_002).kind,
        EntryKind::Hit
    );
}

#[test]
fn a_full_bucket_reuses_an_idle_slot_as_an_expiry() {
    let mut t = table::<u32>(BUCKET_SLOTS);
    for n in 0..BUCKET_SLOTS as u32 {
        let k = flow(17, n);
        t.lookup_or_insert(&k, k.hash64(), 40_000 * u64::from(n == 3));
    }
    // At 70,000 only flow 3 (seen at 40,000) is not idle.
    let new = flow(17, 77);
    match t.lookup_or_insert(&new, new.hash64(), 70_000).kind {
        EntryKind::Replaced(d) => {
            assert_eq!(d.key, flow(17, 0));
            assert_eq!(d.reason, DisplaceReason::Expired);
        }
        other => panic!("expected a replacement, got {other:?}"),
    }
    assert_eq!(t.stats().expirations, 1);
    assert_eq!(t.stats().evictions, 0);
}

#[test]
fn counters_are_exact() {
    let mut t = table::<u8>(BUCKET_SLOTS);
    for n in 0..12 {
        let k = flow(17, n);
        t.lookup_or_insert(&k, k.hash64(), u64::from(n));
    }
    for n in 2..12 {
        let k = flow(17, n);
        assert!(!t.lookup_or_insert(&k, k.hash64(), 20).is_new());
    }
    let k = flow(17, 0);
    assert!(t.get(&k, k.hash64(), 20).is_none());
    assert_eq!(t.expire(100_000, 1), 10);
    assert_eq!(
        t.stats(),
        FlowTableStats {
            lookups: 22,
            hits: 10,
            inserts: 12,
            evictions: 2,
            expirations: 10,
        }
    );
}

#[test]
fn remove_frees_the_slot_and_returns_the_value() {
    let mut t = table::<u32>(100);
    let k = flow(6, 3);
    *t.lookup_or_insert(&k, k.hash64(), 0).value = 9;
    assert_eq!(t.remove(&k, k.hash64()), Some(9));
    assert_eq!(t.remove(&k, k.hash64()), None);
    assert!(t.is_empty());
    assert_eq!(t.iter().count(), 0);
    assert_eq!(
        t.lookup_or_insert(&k, k.hash64(), 1).kind,
        EntryKind::Inserted
    );
}

#[test]
fn stamps_wrap_around_without_expiring_live_flows() {
    let mut t = table::<u8>(100);
    let k = flow(17, 1);
    let start = (1u64 << 32) - 10_000;
    t.lookup_or_insert(&k, k.hash64(), start);
    assert_eq!(t.expire(start + 20_000, t.bucket_count()), 0);
    assert_eq!(
        t.lookup_or_insert(&k, k.hash64(), start + 20_000).kind,
        EntryKind::Hit
    );
    assert_eq!(t.expire(start + 50_001, t.bucket_count()), 1);
}

#[test]
fn the_stamp_unit_is_about_a_millisecond_and_timeouts_round_up() {
    // A 2.5 GHz TSC: units of 2^21 ticks (0.84 ms).
    let t = FlowTable::<u8>::new(&FlowTableConfig {
        capacity: 10,
        ticks_per_second: 2_500_000_000,
        tcp_idle_timeout: 7200 * 2_500_000_000,
        other_idle_timeout: 1,
    })
    .unwrap();
    assert_eq!(t.shift, 21);
    assert_eq!(t.other_timeout, 1);
    assert_eq!(
        u64::from(t.tcp_timeout),
        (7200 * 2_500_000_000u64).div_ceil(1 << 21)
    );
}

#[test]
fn same_hash_collisions_evict_but_never_confuse_keys() {
    let mut t = table::<u32>(1000);
    // Every key with the same hash: two buckets' worth of slots, then
    // evictions of the oldest, and each lookup still finds its own key.
    for n in 0..100u32 {
        let k = flow(17, n);
        let e = t.lookup_or_insert(&k, 0xdead_beef_0000_0000, u64::from(n));
        assert!(e.is_new());
        *e.value = n;
        if n >= 2 * BUCKET_SLOTS as u32 {
            match e.kind {
                EntryKind::Replaced(d) => {
                    assert_eq!(d.key, flow(17, n - 2 * BUCKET_SLOTS as u32));
                    assert_eq!(d.value, n - 2 * BUCKET_SLOTS as u32);
                }
                other => panic!("expected an eviction, got {other:?}"),
            }
        }
    }
    assert!(t.len() <= 2 * BUCKET_SLOTS);
    for n in 80..100u32 {
        assert_eq!(t.get(&flow(17, n), 0xdead_beef_0000_0000, 100), Some(&n));
    }
    // Hash 0 and a zero tag are not special.
    let k = flow(6, 1);
    assert!(t.lookup_or_insert(&k, 0, 0).is_new());
    assert!(!t.lookup_or_insert(&k, 0, 0).is_new());
    assert_eq!(t.remove(&k, 0), Some(0));
}

#[test]
fn capacity_is_rounded_up_and_bounded() {
    assert_eq!(table::<u8>(1).capacity(), BUCKET_SLOTS);
    assert_eq!(table::<u8>(1_000_001).capacity(), 1_000_010);
    assert!(matches!(
        FlowTable::<u8>::new(&config(0)),
        Err(FlowTableError::Capacity(0))
    ));
    assert!(matches!(
        FlowTable::<u8>::new(&config(MAX_CAPACITY + 1)),
        Err(FlowTableError::Capacity(_))
    ));
}

#[test]
fn a_million_flows_fit_in_64_bytes_each() {
    let cap = 1_000_000;
    for bytes in [
        FlowTable::<[u64; 2]>::new(&config(cap))
            .unwrap()
            .memory_bytes(),
        FlowTable::<FlowDpi>::new(&config(cap))
            .unwrap()
            .memory_bytes(),
    ] {
        assert!(bytes <= 64 * cap, "{bytes} bytes for {cap} flows");
    }
    let t = FlowTable::<[u64; 2]>::new(&config(cap)).unwrap();
    assert_eq!(t.capacity(), cap);
    assert_eq!(
        t.memory_bytes(),
        62_400_000 + std::mem::size_of::<FlowTable<[u64; 2]>>()
    );
}

#[test]
fn a_table_filled_to_capacity_keeps_almost_every_flow() {
    let cap = 100_000;
    let mut t = table::<u32>(cap);
    let mut rng = Rng(1);
    let mut keys = Vec::new();
    let mut evicted = std::collections::HashSet::new();
    for n in 0..cap as u32 {
        let (a, b) = (rng.next(), rng.next());
        let k = FlowKey::new(
            17,
            IpAddr::V4(Ipv4Addr::from(a as u32)),
            (a >> 32) as u16,
            IpAddr::V4(Ipv4Addr::from(b as u32)),
            (b >> 32) as u16,
        )
        .0;
        let e = t.lookup_or_insert(&k, k.hash64(), 0);
        *e.value = n;
        if let EntryKind::Replaced(d) = e.kind {
            evicted.insert(d.key);
        }
        keys.push(k);
    }
    // Two choices of ten slots, and flows moved to their other bucket
    // to make room: under 1% of flows evicted at 100% load.
    assert!(t.stats().evictions < cap as u64 / 100, "{:?}", t.stats());
    assert_eq!(t.len() as u64 + t.stats().evictions, cap as u64);
    for (n, k) in keys.iter().enumerate() {
        let want = (!evicted.contains(k)).then_some(n as u32);
        assert_eq!(t.get(k, k.hash64(), 0).copied(), want);
    }
}

#[test]
fn burst_lookups_match_single_lookups() {
    let mut a = table::<u32>(200);
    let mut b = table::<u32>(200);
    let keys: Vec<FlowKey> = (0..32).map(|n| flow(17, n % 20)).collect();
    let hashes: Vec<u64> = keys.iter().map(FlowKey::hash64).collect();
    let mut kinds = Vec::new();
    a.lookup_or_insert_burst(&keys, &hashes, 5, |i, e| {
        *e.value += i as u32;
        kinds.push(e.kind);
    });
    for (i, k) in keys.iter().enumerate() {
        let e = b.lookup_or_insert(k, k.hash64(), 5);
        *e.value += i as u32;
        assert_eq!(e.kind, kinds[i]);
    }
    assert_eq!(a.stats(), b.stats());
    let mut x: Vec<_> = a.iter().map(|(k, v)| (*k, *v)).collect();
    let mut y: Vec<_> = b.iter().map(|(k, v)| (*k, *v)).collect();
    x.sort_by_key(|p| p.0.hash64());
    y.sort_by_key(|p| p.0.hash64());
    assert_eq!(x, y);
    // Mismatched lengths stop at the shorter.
    let mut n = 0;
    a.lookup_or_insert_burst(&keys, &hashes[..3], 6, |_, _| n += 1);
    assert_eq!(n, 3);
}

/// The model: key → (value, last seen).
fn check_against_model(capacity: usize, keys: u32, hash_of: impl Fn(&FlowKey) -> u64, seed: u64) {
    let mut t = table::<u64>(capacity);
    let mut model: HashMap<FlowKey, (u64, u64)> = HashMap::new();
    let mut rng = Rng(seed);
    let mut now = 0u64;
    let timeout = |k: &FlowKey| if k.proto == 6 { 300_000 } else { 30_000 };
    let idle = |k: &FlowKey, seen: u64, now: u64| now - seen > timeout(k);
    let mut expected = FlowTableStats::default();
    for step in 0..20_000u64 {
        now += rng.below(400);
        let k = flow(
            if rng.below(3) == 0 { 6 } else { 17 },
            rng.below(u64::from(keys)) as u32,
        );
        let h = hash_of(&k);
        match rng.below(10) {
            0 => {
                let got = t.remove(&k, h);
                assert_eq!(got, model.remove(&k).map(|(v, _)| v), "step {step}");
            }
            1 => {
                let got = t.get(&k, h, now).copied();
                let want = model
                    .get(&k)
                    .filter(|(_, seen)| !idle(&k, *seen, now))
                    .map(|(v, _)| *v);
                assert_eq!(got, want, "step {step}");
            }
            2 => {
                let n = t.expire_with(now, 3, |gk, gv| {
                    let (v, seen) = model.remove(gk).expect("expired flow was in the model");
                    assert_eq!(v, gv);
                    assert!(idle(gk, seen, now));
                });
                expected.expirations += n as u64;
            }
            _ => {
                expected.lookups += 1;
                let e = t.lookup_or_insert(&k, h, now);
                let live = model
                    .get(&k)
                    .filter(|(_, seen)| !idle(&k, *seen, now))
                    .copied();
                match (e.kind, live) {
                    (EntryKind::Hit, Some((v, _))) => {
                        expected.hits += 1;
                        assert_eq!(*e.value, v, "step {step}");
                    }
                    (EntryKind::Inserted, None) => {
                        expected.inserts += 1;
                        assert!(!model.contains_key(&k));
                    }
                    (EntryKind::Replaced(d), None) => {
                        expected.inserts += 1;
                        let (v, seen) = model
                            .remove(&d.key)
                            .expect("displaced flow was in the model");
                        assert_eq!(v, d.value, "step {step}");
                        match d.reason {
                            DisplaceReason::Expired => {
                                expected.expirations += 1;
                                assert!(idle(&d.key, seen, now));
                            }
                            DisplaceReason::Evicted => {
                                expected.evictions += 1;
                                assert!(!idle(&d.key, seen, now));
                            }
                        }
                    }
                    (kind, live) => panic!("step {step}: table {kind:?}, model {live:?}"),
                }
                let v = rng.next();
                *e.value = v;
                model.insert(k, (v, now));
            }
        }
        assert_eq!(t.len(), model.len(), "step {step}");
    }
    assert_eq!(t.stats(), expected);
    let mut from_table: Vec<(FlowKey, u64)> = t.iter().map(|(k, v)| (*k, *v)).collect();
    let mut from_model: Vec<(FlowKey, u64)> = model.iter().map(|(k, (v, _))| (*k, *v)).collect();
    from_table.sort_by_key(|p| (p.0.hash64(), p.1));
    from_model.sort_by_key(|p| (p.0.hash64(), p.1));
    assert_eq!(from_table, from_model);
}

#[test]
fn find_mut_reports_idle_time_and_marks_seen_only_on_touch() {
    let mut t = table::<u32>(100);
    let k = flow(17, 4);
    *t.lookup_or_insert(&k, k.hash64(), 1_000).value = 5;
    assert!(t.find_mut(&flow(17, 5), flow(17, 5).hash64(), 0).is_none());
    let f = t.find_mut(&k, k.hash64(), 41_000).unwrap();
    assert_eq!(
        (*f.value, f.idle_ticks),
        (5, 40_000),
        "idle beyond the table's timeout is still found"
    );
    let mut f = t.find_mut(&k, k.hash64(), 2_000).unwrap();
    assert_eq!(f.idle_ticks, 1_000);
    f.touch();
    assert_eq!(t.find_mut(&k, k.hash64(), 2_500).unwrap().idle_ticks, 500);
    assert_eq!(
        t.stats(),
        FlowTableStats {
            lookups: 1,
            inserts: 1,
            ..Default::default()
        }
    );
}

#[test]
fn insert_with_takes_a_free_slot_then_only_what_the_judge_lets_go() {
    // One bucket of ten: fill it, then the judge decides.
    let mut t = table::<u32>(BUCKET_SLOTS);
    for n in 0..BUCKET_SLOTS as u32 {
        let k = flow(17, n);
        let e = t
            .insert_with(&k, k.hash64(), u64::from(n), Admit::Free, |_, _, _| {
                panic!("the judge runs only when the buckets are full")
            })
            .unwrap();
        assert_eq!(e.kind, EntryKind::Inserted);
        *e.value = n;
    }
    let new = flow(17, 99);
    // Nobody may go: nothing changes.
    assert!(t
        .insert_with(&new, new.hash64(), 50, Admit::Free, |_, _, _| None)
        .is_none());
    assert_eq!(t.len(), BUCKET_SLOTS);
    for n in 0..BUCKET_SLOTS as u32 {
        assert_eq!(t.get(&flow(17, n), flow(17, n).hash64(), 50), Some(&n));
    }
    // Odd values may be evicted, 6 counts as expired: the expired one
    // goes first although 1 is older.
    let judge = |_: &FlowKey, v: &u32, _: u64| match *v {
        6 => Some(DisplaceReason::Expired),
        v if v % 2 == 1 => Some(DisplaceReason::Evicted),
        _ => None,
    };
    let e = t
        .insert_with(&new, new.hash64(), 50, Admit::Free, judge)
        .unwrap();
    assert!(matches!(
        e.kind,
        EntryKind::Replaced(Displaced {
            value: 6,
            reason: DisplaceReason::Expired,
            ..
        })
    ));
    let new2 = flow(17, 98);
    let e = t
        .insert_with(&new2, new2.hash64(), 51, Admit::Free, judge)
        .unwrap();
    match e.kind {
        EntryKind::Replaced(d) => {
            assert_eq!(
                (d.value, d.reason),
                (1, DisplaceReason::Evicted),
                "the oldest odd one"
            );
            assert_eq!(d.key, flow(17, 1));
        }
        other => panic!("expected a replacement, got {other:?}"),
    }
    assert_eq!(t.len(), BUCKET_SLOTS);
    assert_eq!(
        (
            t.stats().evictions,
            t.stats().expirations,
            t.stats().inserts
        ),
        (1, 1, 12)
    );
}

#[test]
fn insert_with_displace_only_never_takes_a_free_slot() {
    let mut t = table::<u32>(100);
    let a = flow(17, 1);
    assert!(t
        .insert_with(&a, a.hash64(), 0, Admit::DisplaceOnly, |_, _, _| Some(
            DisplaceReason::Evicted
        ))
        .is_none());
    assert!(t.is_empty());
    *t.insert_with(&a, a.hash64(), 0, Admit::Free, |_, _, _| None)
        .unwrap()
        .value = 7;
    // Same buckets as `a` (same hash), so `a` is the candidate.
    let b = flow(17, 2);
    let e = t
        .insert_with(&b, a.hash64(), 1, Admit::DisplaceOnly, |_, v, _| {
            (*v == 7).then_some(DisplaceReason::Evicted)
        })
        .unwrap();
    assert!(matches!(
        e.kind,
        EntryKind::Replaced(Displaced { value: 7, .. })
    ));
    assert_eq!(t.len(), 1);
}

#[test]
fn expire_by_removes_what_the_caller_calls_idle() {
    let mut t = table::<u32>(1000);
    for n in 0..50u32 {
        let k = flow(6, n);
        *t.lookup_or_insert(&k, k.hash64(), 0).value = n;
    }
    let mut ages = Vec::new();
    let removed = t.expire_by(10, t.bucket_count(), |_, v, idle| {
        ages.push(idle);
        *v < 20
    });
    assert_eq!(removed, 20);
    assert_eq!(t.len(), 30);
    assert!(ages.iter().all(|&a| a == 10));
    assert!(t.iter().all(|(_, v)| *v >= 20));
    assert_eq!(t.stats().expirations, 20);
}

#[test]
fn randomized_operations_agree_with_a_hashmap_model() {
    // Roomy: few evictions; tight: mostly evictions.
    check_against_model(2000, 1500, FlowKey::hash64, 7);
    check_against_model(50, 400, FlowKey::hash64, 8);
}

#[test]
fn randomized_operations_with_hostile_hashes_agree_with_a_hashmap_model() {
    // Eight distinct hashes for hundreds of keys, and a hash whose tag
    // is 0.
    check_against_model(1000, 300, |k| k.hash64() & 0x7_0000_0000, 9);
    check_against_model(1000, 300, |_| 0, 10);
}
