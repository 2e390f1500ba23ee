//! Deterministic simulated-time tests of the scheduler and the share
//! balancer: rates, bursts, priority, weights, ceilings, the starvation
//! guard, queue limits, CoDel and the counters. Time only moves to the
//! tick the scheduler says a packet can leave, so nothing here sleeps.

use super::*;
use crate::qos::stats::DropReason;

const GHZ: u64 = 1_000_000_000;
/// A realistic TSC rate that divides nothing evenly.
const ODD_TSC: u64 = 2_394_997_123;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pkt {
    class: QosClass,
    seq: u64,
    len: u32,
}

/// What a run sent, per class.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    bytes: [u64; QosClass::COUNT],
    packets: [u64; QosClass::COUNT],
}

impl Sent {
    fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }
}

fn config(tps: u64, rate: u64) -> SchedulerConfig {
    let mut c = SchedulerConfig::new(tps, rate);
    for class in QosClass::ALL {
        c.class(class).ceiling_permille = 1000;
    }
    c
}

/// Keeps the classes with a length in `lens` backlogged and dequeues at
/// every tick the scheduler names, from 0 to `end`; counts what leaves in
/// `[from, end)`.
fn run_backlogged(
    s: &mut Scheduler<Pkt>,
    lens: [Option<u32>; QosClass::COUNT],
    from: u64,
    end: u64,
) -> Sent {
    let mut seq = 0;
    let mut top_up = |s: &mut Scheduler<Pkt>, now: u64| {
        for class in QosClass::ALL {
            if let Some(len) = lens[class as usize] {
                while s.depth(class).0 < 16 {
                    seq += 1;
                    s.enqueue(class, Pkt { class, seq, len }, len, now).unwrap();
                }
            }
        }
    };
    let mut sent = Sent::default();
    let mut now = 0;
    top_up(s, now);
    loop {
        while let Some((p, class)) = s.dequeue(now, |_, _, _| panic!("no CoDel here")) {
            assert_eq!(p.class, class);
            if now >= from {
                sent.bytes[class as usize] += u64::from(p.len);
                sent.packets[class as usize] += 1;
            }
            top_up(s, now);
        }
        let next = s.next_ready(now).expect("backlogged");
        assert!(next > now, "next_ready advances after a refused dequeue");
        if next >= end {
            return sent;
        }
        now = next;
    }
}

fn assert_within(actual: f64, expected: f64, tolerance: f64, what: &str) {
    let err = (actual - expected).abs() / expected;
    assert!(
        err <= tolerance,
        "{what}: {actual} vs {expected} ({:.3}% off)",
        err * 100.0
    );
}

fn only(class: QosClass, len: u32) -> [Option<u32>; QosClass::COUNT] {
    let mut lens = [None; QosClass::COUNT];
    lens[class as usize] = Some(len);
    lens
}

#[test]
fn port_rate_is_accurate_within_one_percent_from_1_mbps_to_10_gbps() {
    for tps in [GHZ, ODD_TSC] {
        for rate in [
            1_000_000u64,
            10_000_000,
            100_000_000,
            1_000_000_000,
            10_000_000_000,
        ] {
            for len in [64u32, 577, 1500] {
                if tps == ODD_TSC && rate == 10_000_000_000 && len == 64 {
                    continue; // the same arithmetic, 20M more packets
                }
                let mut s = Scheduler::new(&config(tps, rate), 0).unwrap();
                // Measure one second after the initial burst has drained.
                let (from, end) = (tps / 10, tps / 10 + tps);
                let sent = run_backlogged(&mut s, only(QosClass::Standard, len), from, end);
                let bits = sent.total_bytes() as f64 * 8.0;
                assert_within(
                    bits,
                    rate as f64,
                    0.01,
                    &format!("{rate} bit/s, {len} B, {tps} Hz"),
                );
            }
        }
    }
}

#[test]
fn overhead_bytes_are_charged_to_the_rate() {
    let mut c = config(GHZ, 100_000_000);
    c.overhead_bytes = 24;
    let mut s = Scheduler::new(&c, 0).unwrap();
    let sent = run_backlogged(&mut s, only(QosClass::Bulk, 64), GHZ / 10, GHZ / 10 + GHZ);
    let wire_bits = sent.packets[QosClass::Bulk as usize] as f64 * 88.0 * 8.0;
    assert_within(wire_bits, 100e6, 0.01, "wire rate with 24 B overhead");
}

#[test]
fn a_full_bucket_releases_exactly_its_burst_then_paces() {
    let mut c = config(GHZ, 8_000_000); // 1 byte per µs
    c.burst_bytes = 10_000;
    let mut s: Scheduler<Pkt> = Scheduler::new(&c, 0).unwrap();
    for seq in 0..100 {
        let p = Pkt {
            class: QosClass::Standard,
            seq,
            len: 1000,
        };
        s.enqueue(QosClass::Standard, p, 1000, 0).unwrap();
    }
    let mut at_zero = 0;
    while s.dequeue(0, |_, _, _| {}).is_some() {
        at_zero += 1;
    }
    assert_eq!(at_zero, 10, "10 000-byte burst of 1000-byte packets");
    // The next one needs 1000 bytes of tokens: exactly 1 ms.
    assert_eq!(s.next_ready(0), Some(1_000_000));
    assert!(s.dequeue(999_999, |_, _, _| {}).is_none());
    assert!(s.dequeue(1_000_000, |_, _, _| {}).is_some());
    // After a long idle, the burst is again exactly the bucket.
    let mut later = 0;
    while s.dequeue(GHZ, |_, _, _| {}).is_some() {
        later += 1;
    }
    assert_eq!(later, 10);
}

#[test]
fn class_ceiling_burst_limits_a_class_burst() {
    let mut c = config(GHZ, 10_000_000_000);
    c.class(QosClass::RealTime).ceiling_permille = 100;
    c.class(QosClass::RealTime).ceiling_burst_bytes = 3000;
    let mut s: Scheduler<Pkt> = Scheduler::new(&c, 0).unwrap();
    for seq in 0..10 {
        let p = Pkt {
            class: QosClass::RealTime,
            seq,
            len: 1000,
        };
        s.enqueue(QosClass::RealTime, p, 1000, 0).unwrap();
    }
    let mut n = 0;
    while s.dequeue(0, |_, _, _| {}).is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
    // 1000 bytes at 1 Gbit/s: 8 µs.
    assert_eq!(s.next_ready(0), Some(8_000));
}

#[test]
fn realtime_leaves_before_everything_queued_earlier() {
    let mut s: Scheduler<Pkt> =
        Scheduler::new(&SchedulerConfig::new(GHZ, 1_000_000_000), 0).unwrap();
    let mut seq = 0;
    for class in [
        QosClass::Bulk,
        QosClass::Standard,
        QosClass::Streaming,
        QosClass::Interactive,
        QosClass::RealTime,
    ] {
        for _ in 0..3 {
            seq += 1;
            s.enqueue(
                class,
                Pkt {
                    class,
                    seq,
                    len: 200,
                },
                200,
                0,
            )
            .unwrap();
        }
    }
    let mut order = Vec::new();
    let mut now = 0;
    while let Some(t) = s.next_ready(now) {
        now = t;
        while let Some((p, _)) = s.dequeue(now, |_, _, _| {}) {
            order.push(p);
        }
    }
    assert_eq!(order.len(), 15);
    assert!(order[..3].iter().all(|p| p.class == QosClass::RealTime));
    // FIFO within a class.
    assert!(order[..3].windows(2).all(|w| w[0].seq < w[1].seq));
    // Then DRR, starting with Interactive.
    assert_eq!(order[3].class, QosClass::Interactive);
}

#[test]
fn drr_shares_bandwidth_by_weight_whatever_the_packet_sizes() {
    let mut c = config(GHZ, 1_000_000_000);
    let weights = [0u32, 4, 3, 2, 1];
    for class in QosClass::ALL {
        c.class(class).weight = weights[class as usize].max(1);
    }
    // Small packets in the heaviest class, big ones in the lightest.
    let lens = [None, Some(64), Some(1500), Some(577), Some(1500)];
    let mut s = Scheduler::new(&c, 0).unwrap();
    let sent = run_backlogged(&mut s, lens, GHZ / 10, GHZ / 10 + GHZ);
    let total = sent.total_bytes() as f64;
    assert_within(total * 8.0, 1e9, 0.01, "port rate");
    for class in [
        QosClass::Interactive,
        QosClass::Streaming,
        QosClass::Standard,
        QosClass::Bulk,
    ] {
        let share = sent.bytes[class as usize] as f64 / total;
        let want = f64::from(weights[class as usize]) / 10.0;
        assert_within(share, want, 0.01, class.name());
    }
}

#[test]
fn an_idle_class_leaves_its_share_to_the_others() {
    let mut s = Scheduler::new(&config(GHZ, 100_000_000), 0).unwrap();
    let lens = [None, None, Some(1000), None, Some(1000)];
    let sent = run_backlogged(&mut s, lens, GHZ / 10, GHZ / 10 + GHZ);
    let total = sent.total_bytes() as f64;
    assert_within(total * 8.0, 100e6, 0.01, "port rate");
    // Streaming 3 : Bulk 1.
    assert_within(
        sent.bytes[QosClass::Streaming as usize] as f64 / total,
        0.75,
        0.01,
        "streaming",
    );
}

#[test]
fn a_ceiling_caps_its_class_and_the_rest_goes_to_the_others() {
    let mut c = config(GHZ, 1_000_000_000);
    c.class(QosClass::Streaming).ceiling_permille = 200;
    c.class(QosClass::Streaming).weight = 100;
    let mut s = Scheduler::new(&c, 0).unwrap();
    let lens = [None, None, Some(1500), Some(1500), Some(1500)];
    let sent = run_backlogged(&mut s, lens, GHZ / 10, GHZ / 10 + GHZ);
    assert_within(
        sent.bytes[QosClass::Streaming as usize] as f64 * 8.0,
        200e6,
        0.01,
        "ceiling",
    );
    assert_within(
        sent.total_bytes() as f64 * 8.0,
        1e9,
        0.01,
        "work-conserving",
    );
    // Standard 2 : Bulk 1 of the remaining 800 Mbit/s.
    assert_within(
        sent.bytes[QosClass::Standard as usize] as f64 * 8.0,
        800e6 * 2.0 / 3.0,
        0.01,
        "standard",
    );
}

#[test]
fn a_ceiling_holds_even_when_the_port_is_idle_otherwise() {
    let mut c = config(ODD_TSC, 1_000_000_000);
    c.class(QosClass::Bulk).ceiling_permille = 50;
    let mut s = Scheduler::new(&c, 0).unwrap();
    let sent = run_backlogged(
        &mut s,
        only(QosClass::Bulk, 1500),
        ODD_TSC / 10,
        ODD_TSC / 10 + ODD_TSC,
    );
    assert_within(sent.total_bytes() as f64 * 8.0, 50e6, 0.01, "bulk ceiling");
}

#[test]
fn realtime_at_overload_cannot_starve_the_other_classes() {
    let c = SchedulerConfig::new(GHZ, 100_000_000); // RealTime ceiling 33.3%
    let mut s = Scheduler::new(&c, 0).unwrap();
    let lens = [Some(200), None, None, None, Some(1500)];
    let sent = run_backlogged(&mut s, lens, GHZ / 10, GHZ / 10 + GHZ);
    assert_within(
        sent.bytes[QosClass::RealTime as usize] as f64 * 8.0,
        33.3e6,
        0.01,
        "realtime",
    );
    assert_within(
        sent.bytes[QosClass::Bulk as usize] as f64 * 8.0,
        66.7e6,
        0.01,
        "bulk",
    );
}

#[test]
fn realtime_below_its_ceiling_waits_for_nobody() {
    // RealTime at 10% of the port, Bulk saturating: every RealTime packet
    // leaves at the first dequeue after it arrives (the port's burst
    // absorbs it), so its queueing delay stays under one packet time.
    let c = SchedulerConfig::new(GHZ, 100_000_000);
    let mut s: Scheduler<Pkt> = Scheduler::new(&c, 0).unwrap();
    let mut now = 0u64;
    let mut seq = 0;
    let mut next_rt = 0u64;
    let rt_gap = 200 * 8 * GHZ / 10_000_000; // 200 B at 10 Mbit/s
    while now < GHZ {
        while s.depth(QosClass::Bulk).0 < 64 {
            seq += 1;
            let p = Pkt {
                class: QosClass::Bulk,
                seq,
                len: 1500,
            };
            s.enqueue(QosClass::Bulk, p, 1500, now).unwrap();
        }
        if now >= next_rt {
            let p = Pkt {
                class: QosClass::RealTime,
                seq,
                len: 200,
            };
            s.enqueue(QosClass::RealTime, p, 200, now).unwrap();
            next_rt += rt_gap;
        }
        while s.dequeue(now, |_, _, _| {}).is_some() {}
        now = s.next_ready(now).unwrap().min(next_rt).max(now + 1);
    }
    let rt = s.snapshot().classes[QosClass::RealTime as usize];
    assert!(rt.sent_packets > 6000, "{}", rt.sent_packets);
    // One 1500-byte packet at 100 Mbit/s is 120 µs: p100 below 128 µs.
    assert!(rt.delay_percentile_ns(100).unwrap() <= 131_072, "{rt:?}");
    assert_eq!(rt.dropped_total(), 0);
}

#[test]
fn overload_on_a_polled_worker_delays_realtime_by_at_most_one_frame_and_a_poll() {
    // The worker test's scenario on a simulated clock, with the default
    // configuration (RealTime capped at a third): a 50 Mbit/s link offered
    // twice its rate in 1000-byte frames, every tenth one RealTime, arriving
    // in bursts of 8 and served by a worker that polls every 20 µs. Each
    // RealTime packet waits at most for the frame on the wire when it
    // arrived (160 µs) plus one poll: the promise the wall-clock test could
    // only check on a quiet machine, here exact in the scheduler's ticks.
    const RATE: u64 = 50_000_000;
    const FRAME: u32 = 1000;
    const POLL: u64 = 20_000;
    let c = SchedulerConfig::new(GHZ, RATE);
    let mut s: Scheduler<Pkt> = Scheduler::new(&c, 0).unwrap();
    let frame_ns = u64::from(FRAME) * 8 * GHZ / RATE;
    let gap = frame_ns / 2; // twice the link's packet rate
    let burst_gap = 8 * gap;
    let mut enqueued_at = Vec::new();
    let (mut seq, mut next_burst, mut now) = (0u64, 0u64, 0u64);
    let (mut rt_sent, mut rt_worst, mut bulk_sent, mut bulk_dropped) = (0u64, 0u64, 0u64, 0u64);
    while now < GHZ {
        if now >= next_burst {
            for _ in 0..8 {
                let class = if seq % 10 == 0 {
                    QosClass::RealTime
                } else {
                    QosClass::Bulk
                };
                enqueued_at.push(now);
                let p = Pkt {
                    class,
                    seq,
                    len: FRAME,
                };
                if s.enqueue(class, p, FRAME, now).is_err() {
                    assert_eq!(class, QosClass::Bulk, "RealTime is never dropped");
                    bulk_dropped += 1;
                }
                seq += 1;
            }
            next_burst += burst_gap;
        }
        while let Some((p, class)) = s.dequeue(now, |_, _, _| {}) {
            if class == QosClass::RealTime {
                rt_sent += 1;
                rt_worst = rt_worst.max(now - enqueued_at[p.seq as usize]);
            } else {
                bulk_sent += 1;
            }
        }
        now += POLL;
    }
    assert_eq!(
        rt_sent,
        seq.div_ceil(10) - s.depth(QosClass::RealTime).0 as u64
    );
    assert!(bulk_dropped > 0, "the overload's drops are Bulk's");
    assert!(bulk_sent > 0, "Bulk still gets what RealTime leaves");
    assert!(
        rt_worst <= frame_ns + POLL,
        "RealTime waited {rt_worst} ns: more than one frame ({frame_ns} ns) and one poll ({POLL} ns)"
    );
}

#[test]
fn queue_limits_drop_at_the_tail_by_packets_and_by_bytes() {
    let mut c = config(GHZ, 1_000_000);
    c.class(QosClass::Standard).queue_packets = 4;
    c.class(QosClass::Standard).queue_bytes = 1_000_000;
    c.class(QosClass::Bulk).queue_packets = 100;
    c.class(QosClass::Bulk).queue_bytes = 2500;
    let mut s: Scheduler<Pkt> = Scheduler::new(&c, 0).unwrap();
    let p = |class, seq| Pkt {
        class,
        seq,
        len: 1000,
    };
    for seq in 0..4 {
        s.enqueue(QosClass::Standard, p(QosClass::Standard, seq), 1000, 0)
            .unwrap();
    }
    let (back, why) = s
        .enqueue(QosClass::Standard, p(QosClass::Standard, 9), 1000, 0)
        .unwrap_err();
    assert_eq!((back.seq, why), (9, DropReason::QueueFullPackets));
    s.enqueue(QosClass::Bulk, p(QosClass::Bulk, 0), 1000, 0)
        .unwrap();
    s.enqueue(QosClass::Bulk, p(QosClass::Bulk, 1), 1000, 0)
        .unwrap();
    let (_, why) = s
        .enqueue(QosClass::Bulk, p(QosClass::Bulk, 2), 1000, 0)
        .unwrap_err();
    assert_eq!(why, DropReason::QueueFullBytes);
    s.enqueue(QosClass::Bulk, p(QosClass::Bulk, 3), 500, 0)
        .unwrap();
    let snap = s.snapshot();
    let std = snap.class(QosClass::Standard);
    assert_eq!(
        (
            std.enqueued_packets,
            std.dropped(DropReason::QueueFullPackets)
        ),
        (4, 1)
    );
    assert_eq!((std.depth_packets, std.depth_bytes), (4, 4000));
    let bulk = snap.class(QosClass::Bulk);
    assert_eq!((bulk.enqueued_packets, bulk.enqueued_bytes), (3, 2500));
    assert_eq!(
        bulk.dropped_bytes[DropReason::QueueFullBytes as usize],
        1000
    );
    assert_eq!(s.len(), 7);
    // Offered counts the drops too: 5 × 1000 + 3 × 1000 + 500.
    assert_eq!(s.offered_bytes(), 8500);
}

#[test]
fn counters_add_up_and_the_delay_histogram_sees_the_queueing() {
    let mut s: Scheduler<Pkt> = Scheduler::new(&config(GHZ, 8_000_000), 0).unwrap();
    for seq in 0..20 {
        let p = Pkt {
            class: QosClass::Interactive,
            seq,
            len: 1000,
        };
        s.enqueue(QosClass::Interactive, p, 1000, 0).unwrap();
    }
    let mut now = 0;
    while let Some(t) = s.next_ready(now) {
        now = t;
        while s.dequeue(now, |_, _, _| {}).is_some() {}
    }
    let c = *s.snapshot().class(QosClass::Interactive);
    assert_eq!((c.sent_packets, c.sent_bytes), (20, 20_000));
    assert_eq!((c.depth_packets, c.depth_bytes), (0, 0));
    assert_eq!(c.delay_histogram.iter().sum::<u64>(), 20);
    // The burst (3028 B) lets 3 go at once; the last waited 17 ms.
    assert_eq!(c.delay_histogram[0], 3);
    assert_eq!(c.delay_percentile_ns(100), Some(1 << 25));
    assert!(s.is_empty() && s.next_ready(now).is_none());
}

#[test]
fn codel_on_bulk_bounds_its_standing_delay_where_tail_drop_does_not() {
    let standing_delay = |codel: bool| {
        let mut c = config(GHZ, 10_000_000);
        c.class(QosClass::Bulk).queue_packets = 4096;
        c.class(QosClass::Bulk).queue_bytes = 8 << 20;
        c.class(QosClass::Bulk).codel = codel.then(CodelConfig::default);
        let mut s: Scheduler<Pkt> = Scheduler::new(&c, 0).unwrap();
        // 10.5 Mbit/s of unresponsive traffic offered into 10 Mbit/s for
        // 5 s (CoDel's drop rate grows as sqrt(count), so it needs a few
        // seconds to match a constant excess).
        let gap = 1000 * 8 * GHZ / 10_500_000;
        let (mut now, mut next_arrival, mut seq, mut codel_drops) = (0u64, 0u64, 0u64, 0u64);
        while now < 5 * GHZ {
            while next_arrival <= now {
                seq += 1;
                let p = Pkt {
                    class: QosClass::Bulk,
                    seq,
                    len: 1000,
                };
                let _ = s.enqueue(QosClass::Bulk, p, 1000, next_arrival);
                next_arrival += gap;
            }
            while s
                .dequeue(now, |_, _, r| {
                    assert_eq!(r, DropReason::Codel);
                    codel_drops += 1;
                })
                .is_some()
            {}
            now = s
                .next_ready(now)
                .unwrap_or(next_arrival)
                .min(next_arrival)
                .max(now + 1);
        }
        let bulk = *s.snapshot().class(QosClass::Bulk);
        assert_eq!(bulk.dropped(DropReason::Codel), codel_drops);
        (
            s.depth(QosClass::Bulk).1 * 8 * 1000 / 10_000_000,
            codel_drops,
        ) // ms of queue
    };
    let (tail_ms, tail_drops) = standing_delay(false);
    let (codel_ms, codel_drops) = standing_delay(true);
    assert_eq!(tail_drops, 0);
    assert!(tail_ms > 200, "tail drop: {tail_ms} ms standing queue");
    assert!(codel_drops > 0);
    assert!(codel_ms < 50, "CoDel: {codel_ms} ms standing queue");
}

#[test]
fn rate_change_takes_effect_for_the_port_and_the_ceilings() {
    let c = SchedulerConfig::new(GHZ, 100_000_000);
    let mut s = Scheduler::new(&c, 0).unwrap();
    s.set_rate(0, 10_000_000);
    assert_eq!(s.rate_bps(), 10_000_000);
    let lens = [Some(200), None, None, Some(1000), None];
    let sent = run_backlogged(&mut s, lens, GHZ / 10, GHZ / 10 + GHZ);
    assert_within(sent.total_bytes() as f64 * 8.0, 10e6, 0.01, "port");
    assert_within(
        sent.bytes[0] as f64 * 8.0,
        3.33e6,
        0.01,
        "realtime ceiling follows",
    );
}

#[test]
fn bad_configurations_are_refused() {
    let good = SchedulerConfig::new(GHZ, 1_000_000);
    let mut c = good;
    c.class(QosClass::Bulk).weight = 0;
    assert_eq!(
        Scheduler::<Pkt>::new(&c, 0).unwrap_err(),
        ConfigError::Weight(QosClass::Bulk)
    );
    let mut c = good;
    c.class(QosClass::Standard).ceiling_permille = 1001;
    assert!(Scheduler::<Pkt>::new(&c, 0).is_err());
    let mut c = good;
    c.class(QosClass::RealTime).codel = Some(CodelConfig::default());
    assert!(Scheduler::<Pkt>::new(&c, 0).is_err());
    let mut c = good;
    c.class(QosClass::Interactive).queue_packets = 0;
    assert!(Scheduler::<Pkt>::new(&c, 0).is_err());
    let mut c = good;
    c.quantum_bytes = 1;
    assert!(Scheduler::<Pkt>::new(&c, 0).is_err());
    let mut c = good;
    c.ticks_per_second = 0;
    assert!(Scheduler::<Pkt>::new(&c, 0).is_err());
}

#[test]
fn odd_inputs_never_panic() {
    let mut c = config(GHZ, 1_000_000);
    c.quantum_bytes = 64;
    let mut s: Scheduler<Pkt> = Scheduler::new(&c, 0).unwrap();
    let p = |len| Pkt {
        class: QosClass::Standard,
        seq: 0,
        len,
    };
    // Zero-length, huge and u32::MAX lengths; time going backwards.
    let _ = s.enqueue(QosClass::Standard, p(0), 0, 100);
    let _ = s.enqueue(QosClass::Bulk, p(60_000), 60_000, 50);
    let _ = s.enqueue(QosClass::Interactive, p(u32::MAX), u32::MAX, u64::MAX);
    let mut now = 0;
    let mut n = 0;
    for _ in 0..100 {
        while s.dequeue(now, |_, _, _| {}).is_some() {
            n += 1;
        }
        match s.next_ready(now) {
            Some(t) => now = t,
            None => break,
        }
    }
    assert_eq!(n, 2, "the u32::MAX packet exceeds its byte limit");
    s.set_rate(0, 0);
    let _ = s.enqueue(QosClass::Standard, p(100), 100, now);
    let _ = s.dequeue(now, |_, _, _| {});
    assert_eq!(s.next_ready(now), Some(u64::MAX));
}

// ---- sharing the port among workers ----

#[test]
fn max_min_satisfies_small_demands_and_splits_the_rest() {
    let mut out = [0u64; 4];
    let d = [
        Demand::Satisfied(64_000_000),
        Demand::Limited(u64::MAX),
        Demand::Satisfied(0),
        Demand::Limited(u64::MAX),
    ];
    max_min_shares(1_000_000_000, &d, &mut out);
    assert_eq!(out.iter().sum::<u64>(), 1_000_000_000);
    assert_eq!(out[0], 65_000_000); // demand + 1/64
    assert_eq!(out[2], 1_000_000_000 / 1024); // the floor
    assert!(out[1].abs_diff(out[3]) <= 1);
    // A satisfied demand above the fair level is cut to it.
    let d = [Demand::Satisfied(900), Demand::Limited(u64::MAX)];
    let mut out = [0u64; 2];
    max_min_shares(1000, &d, &mut out);
    assert_eq!(out, [500, 500]);
    // Everyone satisfied: the leftover is spread, the sum stays exact.
    let d = [
        Demand::Satisfied(100),
        Demand::Satisfied(200),
        Demand::Satisfied(0),
    ];
    let mut out = [0u64; 3];
    max_min_shares(1001, &d, &mut out);
    assert_eq!(out.iter().sum::<u64>(), 1001);
    assert!(out[0] > 101 && out[1] > 203);
}

/// Workers with real schedulers, each offered a constant load, shaping to
/// the share the balancer gives them every 50 ms.
fn simulate_workers(demands_bps: &[[u64; 2]], rate: u64) -> (Vec<u64>, Vec<u64>) {
    let n = demands_bps.len();
    let shares = std::sync::Arc::new(PortShares::new(rate, n).unwrap());
    let mut balancer = ShareBalancer::new(shares.clone(), GHZ);
    let mut scheds: Vec<Scheduler<Pkt>> = (0..n)
        .map(|w| {
            let mut c = config(GHZ, shares.share_bps(w));
            c.burst_bytes = 3000;
            Scheduler::new(&c, 0).unwrap()
        })
        .collect();
    let len = 1000u32;
    let step = 10_000; // 10 µs
    let mut next_arrival: Vec<u64> = vec![0; n];
    let mut sent_phase = vec![vec![0u64; n]; 2];
    // Two phases of 2 s each; the second second of each phase is measured.
    for (phase, sent) in sent_phase.iter_mut().enumerate() {
        let start = phase as u64 * 2 * GHZ;
        let mut now = start;
        while now < start + 2 * GHZ {
            for w in 0..n {
                let d = demands_bps[w][phase];
                if let Some(gap) = (u64::from(len) * 8 * GHZ).checked_div(d) {
                    next_arrival[w] = next_arrival[w].max(start);
                    while next_arrival[w] <= now {
                        let p = Pkt {
                            class: QosClass::Standard,
                            seq: 0,
                            len,
                        };
                        let _ = scheds[w].enqueue(QosClass::Standard, p, len, now);
                        next_arrival[w] += gap;
                    }
                }
                while let Some((p, _)) = scheds[w].dequeue(now, |_, _, _| {}) {
                    if now >= start + GHZ {
                        sent[w] += u64::from(p.len) * 8;
                    }
                }
                shares.publish(w, &scheds[w]);
            }
            now += step;
            if now.is_multiple_of(50 * 1_000_000) {
                balancer.rebalance(now);
                for (w, s) in scheds.iter_mut().enumerate() {
                    s.set_rate(now, shares.share_bps(w));
                }
            }
        }
    }
    (sent_phase[0].clone(), sent_phase[1].clone())
}

#[test]
fn workers_together_hold_the_port_rate_and_idle_shares_flow_to_busy_ones() {
    let rate = 100_000_000;
    // Phase 1: 10, 30, 80 Mbit/s offered and one idle worker. Phase 2: the
    // 80 goes idle and the idle one offers 200.
    let demands = [
        [10_000_000, 10_000_000],
        [30_000_000, 30_000_000],
        [80_000_000, 0],
        [0, 200_000_000],
    ];
    let (first, second) = simulate_workers(&demands, rate);
    let total1: u64 = first.iter().sum();
    let total2: u64 = second.iter().sum();
    assert_within(total1 as f64, rate as f64, 0.02, "phase 1 total");
    assert_within(total2 as f64, rate as f64, 0.02, "phase 2 total");
    // The satisfied workers get what they offer.
    assert_within(first[0] as f64, 10e6, 0.02, "worker 0");
    assert_within(first[1] as f64, 30e6, 0.02, "worker 1");
    // The busy worker gets the idle one's share (well above a quarter).
    assert!(first[2] as f64 > 58e6, "{first:?}");
    assert!(second[3] as f64 > 58e6, "{second:?}");
    assert_eq!(second[2], 0);
}
