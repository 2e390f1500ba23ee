//! DPDK integration: the real worker loop over net_ring ports. Every packet
//! is accounted for (forwarded or dropped for its reason), forwarded packets
//! are correct on the wire, and every mbuf returns to the mempool.
//!
//! EAL initialises once per process, so this file holds one EAL (with its
//! own --file-prefix) shared by its tests, which take turns on a lock.

use patronus_dataplane::buf::{check_packet_buf_contract, PacketBuf};
use patronus_dataplane::dpdk::{self, Eal, EalMemory, MbufBurst, Mempool, Ring};
use patronus_dataplane::forward::{ForwardEntry, Forwarder};
use patronus_dataplane::punt::{InjectAction, Injected, PuntReason, WorkerRings};
use patronus_dataplane::ringbed::{RingBed, LAN, WAN};
use patronus_dataplane::stats::{DropReason, WorkerCounters};
use patronus_dataplane::synth;
use patronus_dataplane::wire::ethernet::{Address, Frame};
use patronus_dataplane::wire::{ipv4, ipv6};
use patronus_dataplane::worker::{Polling, PortQueues, Processor, Verdict, Worker};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

struct Env {
    _eal: Eal,
    pool: Mempool,
}

static ENV: OnceLock<Env> = OnceLock::new();
/// CPUs of the machine, counted before EAL init narrows the calling
/// thread's affinity (and with it available_parallelism) to CPU 0.
static CPUS: OnceLock<usize> = OnceLock::new();
static TURN: Mutex<()> = Mutex::new(());

fn env() -> (&'static Env, MutexGuard<'static, ()>) {
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let env = ENV.get_or_init(|| {
        let memory = EalMemory::choose(true, 256, &format!("dptest{}", std::process::id()));
        let mut args = vec![
            "-l".to_string(),
            "0".into(),
            "--no-pci".into(),
            "--no-telemetry".into(),
        ];
        args.extend(memory.args);
        let eal = Eal::init(&args).expect("EAL initialises (run the tests as root)");
        let pool = Mempool::new("test_pool", 4095, 64, 2176).expect("mempool");
        Env { _eal: eal, pool }
    });
    (env, turn)
}

const LAN_HOST: Address = Address([0x02, 0, 0, 0, 1, 2]);
const WAN_HOST: Address = Address([0x02, 0, 0, 0, 2, 2]);

fn inject(ring: &Ring, pool: &Mempool, frames: &[Vec<u8>]) {
    for chunk in frames.chunks(32) {
        let mut burst = MbufBurst::new();
        for frame in chunk {
            let mut m = pool.alloc().expect("mempool has room");
            m.fill_from(frame).expect("frame fits one mbuf");
            burst.push(m).expect("chunk of 32 fits a burst");
        }
        assert_eq!(
            ring.enqueue_burst(&mut burst),
            chunk.len(),
            "rx ring has room"
        );
    }
}

fn collect(ring: &Ring) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut burst = MbufBurst::new();
    while ring.dequeue_burst(&mut burst) > 0 {
        out.extend(burst.drain().map(|m| m.data().to_vec()));
    }
    out
}

/// Runs a worker with `processor` on `bed` until it has received `expected`
/// packets (or 20 s pass), then stops it. Returns its counters.
fn run_worker<P: Processor + Send>(bed: &RingBed, processor: P, expected: u64) -> WorkerCounters {
    run_worker_with(bed, processor, None, |c| {
        c.snapshot().rx_packets() >= expected
    })
}

fn run_worker_with<P: Processor + Send>(
    bed: &RingBed,
    processor: P,
    rings: Option<&[WorkerRings]>,
    mut done: impl FnMut(&WorkerCounters) -> bool,
) -> WorkerCounters {
    let counters = WorkerCounters::default();
    let stop = AtomicBool::new(false);
    let queues: Vec<PortQueues<'_>> = bed
        .ports
        .iter()
        .map(|p| {
            let (rx, tx) = p.queue_pair(0).unwrap();
            PortQueues { rx, tx }
        })
        .collect();
    std::thread::scope(|scope| {
        let (c, s) = (&counters, &stop);
        let worker = scope.spawn(move || {
            let cpus = *CPUS.get().expect("counted in env()");
            assert!(core_affinity::set_for_current(core_affinity::CoreId {
                id: cpus - 1
            }));
            let lcore = dpdk::register_thread().expect("worker registers as an lcore");
            let mut w = Worker::new(queues, processor, c, Polling::Adaptive).unwrap();
            if let Some(rings) = rings {
                w = w.with_rings(rings, 0);
            }
            w.run(s);
            drop(w);
            drop(lcore);
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(&counters) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        stop.store(true, Ordering::SeqCst);
        worker.join().expect("worker thread exits cleanly");
    });
    counters
}

#[test]
fn worker_forwards_every_packet_and_returns_every_mbuf() {
    let (env, _turn) = env();
    let pool = &env.pool;
    let in_use_before = pool.in_use();
    {
        let bed = RingBed::new("fwd", 4095, pool).expect("ring ports start");
        let lan_mac = Address(bed.ports[LAN as usize].mac_addr().unwrap());
        let wan_mac = Address(bed.ports[WAN as usize].mac_addr().unwrap());
        let mut forwarder = Forwarder::new();
        forwarder
            .set(
                LAN,
                ForwardEntry {
                    out_port: WAN,
                    src_mac: wan_mac,
                    dst_mac: WAN_HOST,
                },
            )
            .unwrap();
        forwarder
            .set(
                WAN,
                ForwardEntry {
                    out_port: LAN,
                    src_mac: lan_mac,
                    dst_mac: LAN_HOST,
                },
            )
            .unwrap();

        let (h4, w4) = (
            IpAddr::V4(Ipv4Addr::new(10, 10, 1, 2)),
            IpAddr::V4(Ipv4Addr::new(10, 10, 2, 2)),
        );
        let (h6, w6) = (
            IpAddr::V6(Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2)),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 2)),
        );
        let mut from_lan = Vec::new();
        for i in 0..1000usize {
            from_lan.push(synth::udp_frame(
                LAN_HOST,
                lan_mac,
                h4,
                w4,
                64,
                60 + i % 1400,
            ));
        }
        for i in 0..200usize {
            from_lan.push(synth::udp_frame(LAN_HOST, lan_mac, h6, w6, 64, 80 + i * 5));
        }
        let good_from_lan = from_lan.len();
        for _ in 0..10 {
            from_lan.push(synth::udp_frame(LAN_HOST, lan_mac, h4, w4, 1, 100));
            from_lan.push(synth::arp_request(
                LAN_HOST,
                Ipv4Addr::new(10, 10, 1, 2),
                Ipv4Addr::new(10, 10, 1, 1),
            ));
            from_lan.push(vec![0xab; 10]);
        }
        let from_wan: Vec<Vec<u8>> = (0..300)
            .map(|_| synth::udp_frame(WAN_HOST, wan_mac, w4, h4, 2, 128))
            .collect();
        inject(&bed.lan_rx, pool, &from_lan);
        inject(&bed.wan_rx, pool, &from_wan);

        let counters = run_worker(&bed, forwarder, (from_lan.len() + from_wan.len()) as u64);
        let s = counters.snapshot();
        assert_eq!(s.ports[LAN as usize].rx_packets, from_lan.len() as u64);
        assert_eq!(s.ports[WAN as usize].rx_packets, from_wan.len() as u64);
        assert_eq!(s.drop_count(DropReason::TtlExceeded), 10);
        // ARP goes to the control thread; this worker has no rings to it.
        assert_eq!(s.drop_count(DropReason::PuntFull), 10);
        assert_eq!(s.drop_count(DropReason::Malformed), 10);
        assert_eq!(s.drop_count(DropReason::TxFull), 0);
        assert_eq!(s.ports[WAN as usize].tx_packets, good_from_lan as u64);
        assert_eq!(s.ports[LAN as usize].tx_packets, from_wan.len() as u64);
        assert!(s.busy_cycles > 0, "the worker accounts its busy cycles");

        // The driver's own counters agree with the worker's.
        let lan = &bed.ports[LAN as usize];
        assert_eq!(lan.stats().unwrap().rx_packets, from_lan.len() as u64);
        let xstats = lan.xstats().unwrap();
        let good = xstats
            .iter()
            .find(|(name, _)| name == "rx_good_packets")
            .map(|(_, v)| *v);
        assert_eq!(good, Some(from_lan.len() as u64), "xstats: {xstats:?}");
        assert!(lan.link().unwrap().up, "a started ring port has link");

        let to_wan = collect(&bed.wan_tx);
        assert_eq!(
            to_wan.len(),
            good_from_lan,
            "every good LAN packet reaches the WAN"
        );
        for (sent, original) in to_wan.iter().zip(&from_lan) {
            // What forwarding must do, and nothing more: MACs, TTL, checksum.
            let mut expected = original.clone();
            let mut f = Frame::new_checked(&mut expected[..]).unwrap();
            f.set_dst_addr(WAN_HOST);
            f.set_src_addr(wan_mac);
            if f.payload()[0] >> 4 == 4 {
                let mut ip = ipv4::Packet::new_checked(f.payload_mut()).unwrap();
                ip.set_ttl(63);
                ip.fill_checksum();
            } else {
                ipv6::Packet::new_checked(f.payload_mut())
                    .unwrap()
                    .set_hop_limit(63);
            }
            assert_eq!(
                sent, &expected,
                "forwarded packet differs from the expected rewrite"
            );
        }
        let to_lan = collect(&bed.lan_tx);
        assert_eq!(to_lan.len(), from_wan.len());
        for sent in &to_lan {
            let f = Frame::new_checked(&sent[..]).unwrap();
            assert_eq!((f.dst_addr(), f.src_addr()), (LAN_HOST, lan_mac));
            assert_eq!(ipv4::Packet::new_checked(f.payload()).unwrap().ttl(), 1);
        }
    }
    assert_eq!(
        pool.in_use(),
        in_use_before,
        "every mbuf is back in the pool"
    );
}

#[test]
fn a_full_tx_ring_drops_and_frees_instead_of_blocking() {
    let (env, _turn) = env();
    let pool = &env.pool;
    let in_use_before = pool.in_use();
    {
        // The WAN tx ring holds 63 packets; 500 are sent towards it.
        let mut bed = RingBed::new("full", 4095, pool).expect("ring ports start");
        let small = Ring::new("full_small", 63).unwrap();
        // Re-plumb: a third port whose tx is the small ring replaces the WAN port.
        let id = dpdk::ring_port("net_ring_full_small", &bed.wan_rx, &small).unwrap();
        let port = dpdk::Port::start(id, "small", &dpdk::PortConfig::default(), pool).unwrap();
        let old_wan = std::mem::replace(&mut bed.ports[WAN as usize], port);
        drop(old_wan);
        let lan_mac = Address(bed.ports[LAN as usize].mac_addr().unwrap());
        let h4 = IpAddr::V4(Ipv4Addr::new(10, 10, 1, 2));
        let w4 = IpAddr::V4(Ipv4Addr::new(10, 10, 2, 2));
        let frames: Vec<Vec<u8>> = (0..500)
            .map(|_| synth::udp_frame(LAN_HOST, lan_mac, h4, w4, 64, 64))
            .collect();
        inject(&bed.lan_rx, pool, &frames);
        let mut forwarder = Forwarder::new();
        forwarder
            .set(
                LAN,
                ForwardEntry {
                    out_port: WAN,
                    src_mac: lan_mac,
                    dst_mac: WAN_HOST,
                },
            )
            .unwrap();
        let counters = run_worker(&bed, forwarder, 500);
        let s = counters.snapshot();
        assert_eq!(s.ports[WAN as usize].tx_packets, 63);
        assert_eq!(s.drop_count(DropReason::TxFull), 500 - 63);
        assert_eq!(collect(&small).len(), 63);
        drop(bed);
    }
    assert_eq!(pool.in_use(), in_use_before, "dropped packets were freed");
}

#[test]
fn mbuf_follows_the_packet_buf_contract() {
    let (env, _turn) = env();
    let before = env.pool.in_use();
    let mut m = env.pool.alloc().expect("an mbuf");
    check_packet_buf_contract(&mut m);
    assert_eq!(env.pool.in_use(), before + 1);
    drop(m);
    assert_eq!(env.pool.in_use(), before, "Drop returns the mbuf");
}

#[test]
fn mempool_bulk_alloc_is_all_or_nothing_and_burst_drop_frees() {
    let (env, _turn) = env();
    let before = env.pool.in_use();
    let mut burst = MbufBurst::new();
    assert_eq!(env.pool.alloc_bulk(&mut burst), 32);
    assert!(burst.is_full());
    assert_eq!(env.pool.in_use(), before + 32);
    drop(burst);
    assert_eq!(env.pool.in_use(), before);
}

/// Punts everything that arrives on the LAN port; encrypts nothing.
struct PuntLan;

impl Processor for PuntLan {
    fn process<B: patronus_dataplane::buf::PacketBuf>(
        &mut self,
        _: &mut B,
        in_port: u8,
        _: u64,
    ) -> Verdict {
        if in_port == LAN {
            Verdict::Punt(PuntReason::WgHandshake)
        } else {
            Verdict::Forward(LAN)
        }
    }

    fn process_local<B: patronus_dataplane::buf::PacketBuf>(
        &mut self,
        packet: &mut B,
        aux: u32,
        _: u64,
    ) -> Verdict {
        packet.data_mut()[0] = aux as u8;
        Verdict::Forward(WAN)
    }
}

#[test]
fn punted_packets_reach_the_control_side_and_injected_ones_leave() {
    let (env, _turn) = env();
    let pool = &env.pool;
    let in_use_before = pool.in_use();
    {
        let bed = RingBed::new("punt", 4095, pool).expect("ring ports start");
        let all = [WorkerRings::new(64)];
        let rings = &all[0];
        let h4 = IpAddr::V4(Ipv4Addr::new(10, 10, 1, 2));
        let w4 = IpAddr::V4(Ipv4Addr::new(10, 10, 2, 2));
        // 100 packets against a punt ring of 64: the rest are counted, not blocked on.
        let frames: Vec<Vec<u8>> = (0..100)
            .map(|_| synth::udp_frame(LAN_HOST, WAN_HOST, h4, w4, 64, 64))
            .collect();
        inject(&bed.lan_rx, pool, &frames);
        // Two packets from the control side: one to transmit, one to process.
        for (action, fill) in [
            (InjectAction::Transmit, 0xaa),
            (InjectAction::Process { aux: 0x5c }, 0xbb),
        ] {
            let mut m = pool.alloc().unwrap();
            m.fill_from(&[fill; 60]).unwrap();
            rings
                .inject
                .push(Injected {
                    port: WAN,
                    action,
                    mbuf: m,
                })
                .unwrap();
        }
        let counters = run_worker_with(&bed, PuntLan, Some(&all), |c| {
            let s = c.snapshot();
            s.rx_packets() >= 100 && s.injected >= 2
        });
        let s = counters.snapshot();
        assert_eq!(s.punted, 64);
        assert_eq!(s.drop_count(DropReason::PuntFull), 36);
        assert_eq!(s.injected, 2);
        let mut punted = 0;
        while let Some(p) = rings.punt.pop() {
            assert_eq!((p.reason, p.port), (PuntReason::WgHandshake, LAN));
            assert_eq!(p.mbuf.data(), &frames[0][..]);
            punted += 1;
        }
        assert_eq!(punted, 64);
        let sent = collect(&bed.wan_tx);
        assert_eq!(sent.len(), 2);
        assert!(sent.contains(&vec![0xaa; 60]), "transmitted as is");
        let mut processed = vec![0xbb; 60];
        processed[0] = 0x5c;
        assert!(sent.contains(&processed), "went through process_local");
    }
    assert_eq!(
        pool.in_use(),
        in_use_before,
        "punted and injected mbufs all returned"
    );
}
