//! QoS through the real worker loop on DPDK virtual devices (net_ring): a
//! WAN link shaped to 50 Mbit/s is offered twice that, RealTime a tenth of
//! the load and Bulk the rest (`ringbed::qos_overload`).
//!
//! Only what does not depend on the machine's timing is asserted: RealTime
//! has no ceiling and a queue that holds every RealTime packet of the run,
//! so every one is sent and none waits behind a Bulk packet injected after
//! it, whenever the threads happen to run; Bulk takes every drop; nothing
//! else is dropped; every mbuf comes back. The delays and the carried rate
//! are printed for information only: their figures come from
//! `patronus-bench qos-worker`, which measures them against an unloaded
//! baseline in the same run (docs/qos.md).

use patronus_dataplane::dpdk::{tsc_hz, Eal, EalMemory, Mempool};
use patronus_dataplane::qos::QosClass;
use patronus_dataplane::ringbed::qos_overload::{self, Outcome, Params};
use patronus_dataplane::ringbed::RingBed;
use patronus_dataplane::stats::DropReason;

const RATE_BPS: u64 = 50_000_000;
const FRAME: usize = 1000;
/// Mbufs in the pool; the bed's rings hold as many, so no ring can overflow.
const POOL: u32 = 16383;

/// The first Bulk packet that left while a RealTime packet injected before
/// it had not: (its position in the output, its sequence number, the
/// RealTime packet's).
fn bulk_ahead_of_earlier_realtime(outcome: &Outcome, params: &Params) -> Option<(usize, u64, u64)> {
    let mut left = vec![false; outcome.offered as usize];
    // The earliest RealTime packet that has not left yet.
    let mut waiting = 0u64;
    for (position, sent) in outcome.sent.iter().enumerate() {
        left[sent.seq as usize] = true;
        while waiting < outcome.offered && left[waiting as usize] {
            waiting += params.realtime_every;
        }
        if sent.class == QosClass::Bulk && waiting < sent.seq {
            return Some((position, sent.seq, waiting));
        }
    }
    None
}

#[test]
fn overloaded_link_sends_every_realtime_packet_ahead_of_later_bulk_and_drops_only_bulk() {
    // Counted before EAL init, which narrows this thread's affinity (and
    // with it available_parallelism) to the main lcore's CPU.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "the worker and the generator need a CPU each");
    let memory = EalMemory::choose(true, 256, &format!("qostest{}", std::process::id()));
    let mut args = vec![
        "-l".to_string(),
        "0".into(),
        "--no-pci".into(),
        "--no-telemetry".into(),
    ];
    args.extend(memory.args);
    let _eal = Eal::init(&args).expect("EAL initialises (run the tests as root)");
    let pool = Mempool::new("qos_pool", POOL, 256, 2176).expect("mempool");
    let bed = RingBed::new("qos", POOL, &pool).expect("ring ports");
    let hz = tsc_hz();
    assert!(hz > 0);

    let mut params = Params::new(hz, RATE_BPS);
    params.frame_size = FRAME;
    params.overload = 2.0;
    params.realtime_every = 10;
    params.seconds = 1.0;
    params.worker_cpu = cpus - 1;
    // RealTime uncapped, with room for all of its packets: whether one is
    // sent, and what leaves before it, cannot depend on timing.
    let realtime_packets = params.realtime_packets() as u32;
    let realtime = params.config.class(QosClass::RealTime);
    realtime.ceiling_permille = 1000;
    realtime.queue_packets = realtime_packets;
    realtime.queue_bytes = realtime.queue_packets * FRAME as u32;

    let outcome = qos_overload::run(&bed, &pool, &params).expect("the run completes");

    let c = &outcome.counters;
    eprintln!(
        "worker: {} polls ({} idle), rx {}, tx {}, drops {:?}, tsc_hz {hz}",
        c.polls,
        c.idle_polls,
        c.rx_packets(),
        c.tx_packets(),
        c.drops
    );
    for class in [QosClass::RealTime, QosClass::Bulk] {
        let k = outcome.scheduler.class(class);
        eprintln!(
            "scheduler {}: enqueued {} sent {} dropped {:?}",
            class.name(),
            k.enqueued_packets,
            k.sent_packets,
            k.dropped_packets
        );
    }
    let (rt_sent, bulk_sent) = (
        outcome.sent_count(QosClass::RealTime),
        outcome.sent_count(QosClass::Bulk),
    );
    let bulk_drops = outcome.drops(DropReason::QosQueueFull);
    // For information: the machine's figures, not the test's.
    eprintln!(
        "qos: offered {} RealTime + {} Bulk at {:.0} Mbit/s on a {:.0} Mbit/s link; sent {rt_sent} \
         RealTime, {bulk_sent} Bulk, carried {:.1} Mbit/s; {bulk_drops} dropped; RealTime delay \
         p50 {:.0} us, p99 {:.0} us, max {:.0} us (not asserted)",
        outcome.offered_realtime,
        outcome.offered_bulk,
        params.offered_pps() * FRAME as f64 * 8.0 / 1e6,
        RATE_BPS as f64 / 1e6,
        outcome.carried_bps() / 1e6,
        outcome.delay_percentile_us(QosClass::RealTime, 50),
        outcome.delay_percentile_us(QosClass::RealTime, 99),
        outcome.delay_percentile_us(QosClass::RealTime, 100),
    );

    assert_eq!(outcome.offered, params.packets(), "every packet is offered");
    assert_eq!(outcome.unread, 0, "the worker reads every offer");
    let mut seen = vec![false; outcome.offered as usize];
    for s in &outcome.sent {
        assert!(
            s.seq < outcome.offered,
            "sent packet {s:?} was never offered"
        );
        assert!(!seen[s.seq as usize], "packet {} is sent twice", s.seq);
        seen[s.seq as usize] = true;
        assert_eq!(
            s.class == QosClass::RealTime,
            params.is_realtime(s.seq),
            "packet {} keeps its class",
            s.seq
        );
    }
    assert_eq!(
        rt_sent, outcome.offered_realtime,
        "every RealTime packet is sent"
    );
    assert!(bulk_drops > 0, "the overload drops Bulk packets");
    assert_eq!(
        bulk_sent + bulk_drops,
        outcome.offered_bulk,
        "every Bulk packet is sent or dropped as QosQueueFull"
    );
    assert_eq!(
        c.dropped(),
        bulk_drops,
        "no drop of any other reason: {:?}",
        c.drops
    );
    let rt_dropped = outcome.scheduler.class(QosClass::RealTime).dropped_packets;
    assert_eq!(
        rt_dropped.iter().sum::<u64>(),
        0,
        "the scheduler drops no RealTime packet: {rt_dropped:?}"
    );
    assert_eq!(
        bulk_ahead_of_earlier_realtime(&outcome, &params),
        None,
        "no Bulk packet (output position, sequence) leaves before a RealTime packet \
         (sequence) injected before it"
    );
    assert_eq!(
        outcome.pool_in_use_after, outcome.pool_in_use_before,
        "every mbuf returns to the pool after the run"
    );

    drop(bed);
    assert_eq!(pool.in_use(), 0, "every mbuf returns to the pool");
}
