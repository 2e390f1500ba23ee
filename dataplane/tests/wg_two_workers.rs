//! WireGuard on two workers under load, over DPDK net_ring ports with two
//! queue pairs each: packets for both peers arrive on both workers' queues,
//! so about half must be handed to the peer's owner. Every packet must come
//! out exactly once, encrypted by the owner with gap-free, duplicate-free
//! counters, and every message from the peers must be accepted once by the
//! owner's replay window (no locks anywhere on the path).

use crossbeam_queue::ArrayQueue;
use patronus_dataplane::buf::PacketBuf;
use patronus_dataplane::dpdk::{
    self, ring_port_multi, Eal, EalMemory, MbufBurst, Mempool, Port, PortConfig, Ring,
};
use patronus_dataplane::forward::Forwarder;
use patronus_dataplane::punt::WorkerRings;
use patronus_dataplane::stats::{DropReason, WorkerCounters};
use patronus_dataplane::synth;
use patronus_dataplane::wg::allowed_ips::AllowedIps;
use patronus_dataplane::wg::datapath::{
    local_index, push_outer_headers, DataPathConfig, Keypair, PeerActivity, WgCommand, WgDataPath,
};
use patronus_dataplane::wg::session::{RecvSession, SendSession};
use patronus_dataplane::wg::transport::{self, Decapsulated};
use patronus_dataplane::wire::ethernet::{self, Address};
use patronus_dataplane::wire::ipv4;
use patronus_dataplane::worker::{Polling, PortQueues, Worker};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PER_PEER: usize = 1500; // each direction; below the 2048-packet replay window
const MASK: u32 = 0x0bad_cafe;
const LAN: u8 = 0;
const WAN: u8 = 1;
const LAN_HOST_MAC: Address = Address([2, 0, 0, 0, 1, 2]);
const GATEWAY_MAC: Address = Address([2, 0, 0, 0, 2, 2]);
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 2);
const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 2, 1);

fn our_send_key(peer: u32) -> [u8; 32] {
    [10 + peer as u8; 32]
}
fn peer_send_key(peer: u32) -> [u8; 32] {
    [20 + peer as u8; 32]
}
fn peer_index(peer: u32) -> u32 {
    0x1000 + peer
}
fn endpoint(peer: u32) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 10, 2, 2 + peer as u8), 51820)
}
/// A host behind the peer: 10.98.0.2 for peer 0, 10.99.0.2 for peer 1.
fn behind(peer: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 98 + peer as u8, 0, 2)
}

fn enqueue(ring: &Ring, pool: &Mempool, frame: &[u8]) {
    let mut m = pool.alloc().expect("pool has room");
    m.fill_from(frame).expect("frame fits");
    let mut burst = MbufBurst::new();
    burst.push(m).expect("empty burst");
    assert_eq!(ring.enqueue_burst(&mut burst), 1, "rx ring has room");
}

fn drain(ring: &Ring) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut burst = MbufBurst::new();
    while ring.dequeue_burst(&mut burst) > 0 {
        out.extend(burst.drain().map(|m| m.data().to_vec()));
    }
    out
}

#[test]
fn two_workers_keep_every_peers_counters_and_replay_windows_correct() {
    let memory = EalMemory::choose(true, 512, &format!("wg2w{}", std::process::id()));
    let mut args = vec![
        "-l".to_string(),
        "0".into(),
        "--no-pci".into(),
        "--no-telemetry".into(),
    ];
    args.extend(memory.args);
    // Counted before EAL init narrows this thread's affinity (and with it
    // available_parallelism) to the main lcore's CPU.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _eal = Eal::init(&args).expect("EAL initialises (run the tests as root)");
    let pool = Mempool::new("wg2w_pool", 16383, 256, 2176).unwrap();
    let in_use_before = pool.in_use();
    {
        let ring = |name: &str| Ring::new(name, 8191).unwrap();
        let (lan_rx, lan_tx) = (
            [ring("l_rx0"), ring("l_rx1")],
            [ring("l_tx0"), ring("l_tx1")],
        );
        let (wan_rx, wan_tx) = (
            [ring("w_rx0"), ring("w_rx1")],
            [ring("w_tx0"), ring("w_tx1")],
        );
        let config = PortConfig {
            queues: 2,
            ..PortConfig::default()
        };
        let lan_id = ring_port_multi(
            "net_ring_wg2w_lan",
            &[&lan_rx[0], &lan_rx[1]],
            &[&lan_tx[0], &lan_tx[1]],
        )
        .unwrap();
        let wan_id = ring_port_multi(
            "net_ring_wg2w_wan",
            &[&wan_rx[0], &wan_rx[1]],
            &[&wan_tx[0], &wan_tx[1]],
        )
        .unwrap();
        let ports = [
            Port::start(lan_id, "lan", &config, &pool).unwrap(),
            Port::start(wan_id, "wan", &config, &pool).unwrap(),
        ];
        let lan_mac = Address(ports[0].mac_addr().unwrap());
        let wan_mac = Address(ports[1].mac_addr().unwrap());

        let activity = [PeerActivity::default(), PeerActivity::default()];
        let commands = [ArrayQueue::new(8), ArrayQueue::new(8)];
        let rings = [WorkerRings::new(4096), WorkerRings::new(4096)];
        let counters = [WorkerCounters::default(), WorkerCounters::default()];
        let datapath_config = |worker: u8| DataPathConfig {
            lan_port: LAN,
            wan_port: WAN,
            lan_src_mac: lan_mac,
            lan_dst_mac: LAN_HOST_MAC,
            wan_src_mac: wan_mac,
            wan_dst_mac: GATEWAY_MAC,
            local_ip: LOCAL_IP,
            listen_port: 51820,
            index_mask: MASK,
            tsc_hz: dpdk::tsc_hz(),
            worker,
            workers: 2,
            tunnel_mtu: 1420,
            lan_ipv4: None,
            lan_ipv6: None,
        };
        // Each peer's keypair goes to its owner (peer % 2).
        let now = dpdk::tsc();
        for peer in 0..2u32 {
            let keypair = Keypair {
                send: SendSession::new(&our_send_key(peer), peer_index(peer), now),
                recv: RecvSession::new(&peer_send_key(peer), local_index(MASK, peer, 1), now),
                initiator: true,
            };
            commands[peer as usize]
                .push(WgCommand::InstallKeypair {
                    peer,
                    keypair: Box::new(keypair),
                })
                .ok()
                .unwrap();
        }

        // The load, spread over both queues of both ports.
        for i in 0..PER_PEER {
            for peer in 0..2u32 {
                let frame = synth::udp_frame(
                    LAN_HOST_MAC,
                    lan_mac,
                    IpAddr::V4(LAN_HOST),
                    IpAddr::V4(behind(peer)),
                    64,
                    100 + i % 300,
                );
                enqueue(&lan_rx[(i + peer as usize) % 2], &pool, &frame);
            }
        }
        let mut peer_senders: Vec<SendSession> = (0..2)
            .map(|p| SendSession::new(&peer_send_key(p), local_index(MASK, p, 1), 0))
            .collect();
        for i in 0..PER_PEER {
            for peer in 0..2u32 {
                let inner = &synth::udp_frame(
                    GATEWAY_MAC,
                    wan_mac,
                    IpAddr::V4(behind(peer)),
                    IpAddr::V4(LAN_HOST),
                    64,
                    80 + i % 200,
                )[14..];
                let mut m = pool.alloc().unwrap();
                m.fill_from(inner).unwrap();
                transport::encapsulate(&mut m, &mut peer_senders[peer as usize]).unwrap();
                let from_peer = DataPathConfig {
                    wan_src_mac: GATEWAY_MAC,
                    wan_dst_mac: wan_mac,
                    local_ip: *endpoint(peer).ip(),
                    listen_port: endpoint(peer).port(),
                    ..datapath_config(0)
                };
                push_outer_headers(&mut m, &from_peer, SocketAddrV4::new(LOCAL_IP, 51820)).unwrap();
                let mut burst = MbufBurst::new();
                burst.push(m).unwrap();
                assert_eq!(
                    wan_rx[(i + 1 + peer as usize) % 2].enqueue_burst(&mut burst),
                    1
                );
            }
        }

        let stop = AtomicBool::new(false);
        let expected = (4 * PER_PEER) as u64;
        std::thread::scope(|scope| {
            for w in 0..2usize {
                let queues: Vec<PortQueues<'_>> = ports
                    .iter()
                    .map(|p| {
                        let (rx, tx) = p.queue_pair(w as u16).unwrap();
                        PortQueues { rx, tx }
                    })
                    .collect();
                let mut routes = AllowedIps::new();
                routes
                    .insert(IpAddr::V4(Ipv4Addr::new(10, 98, 0, 0)), 24, 0u32)
                    .unwrap();
                routes
                    .insert(IpAddr::V4(Ipv4Addr::new(10, 99, 0, 0)), 24, 1u32)
                    .unwrap();
                let processor = WgDataPath::new(
                    datapath_config(w as u8),
                    routes,
                    &[Some(endpoint(0)), Some(endpoint(1))],
                    &activity,
                    &commands[w],
                    Forwarder::new(),
                );
                let (counters, rings, stop) = (&counters[w], &rings, &stop);
                scope.spawn(move || {
                    assert!(core_affinity::set_for_current(core_affinity::CoreId {
                        id: w % cpus
                    }));
                    let lcore = dpdk::register_thread().unwrap();
                    let mut worker = Worker::new(queues, processor, counters, Polling::Adaptive)
                        .unwrap()
                        .with_rings(rings, w);
                    worker.run(stop);
                    drop(worker);
                    drop(lcore);
                });
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            let sent = || -> u64 { counters.iter().map(|c| c.snapshot().tx_packets()).sum() };
            while sent() < expected && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::SeqCst);
        });

        let snapshots: Vec<_> = counters.iter().map(WorkerCounters::snapshot).collect();
        for (w, s) in snapshots.iter().enumerate() {
            assert_eq!(
                s.dropped(),
                0,
                "worker {w} dropped: {:?}",
                DropReason::ALL.map(|r| (r.name(), s.drop_count(r)))
            );
            assert!(
                s.handed_off > 0,
                "worker {w} handed packets to the other owner"
            );
        }

        // Towards the peers: each packet once, from its owner's queue, with
        // the counters 0..PER_PEER exactly.
        for peer in 0..2u32 {
            let owner = peer as usize % 2;
            let mut counters_seen = BTreeSet::new();
            let mut recv = RecvSession::new(&our_send_key(peer), peer_index(peer), 0);
            for (q, ring) in wan_tx.iter().enumerate() {
                for frame in drain_peer(ring, peer) {
                    assert_eq!(q, owner, "peer {peer}'s packets leave by its owner's queue");
                    let message = &frame[ethernet::HEADER_LEN + 28..];
                    let counter = u64::from_le_bytes(message[8..16].try_into().unwrap());
                    assert!(
                        counters_seen.insert(counter),
                        "peer {peer}: counter {counter} used twice"
                    );
                    let mut buf = patronus_dataplane::buf::HeapBuf::from_slice(message, 0, 0);
                    assert_eq!(
                        transport::decapsulate(&mut buf, &mut recv),
                        Ok(Decapsulated::Packet)
                    );
                    let ip = ipv4::Packet::new_checked(buf.data()).unwrap();
                    assert_eq!(ip.dst_addr(), behind(peer));
                }
            }
            assert_eq!(
                counters_seen.len(),
                PER_PEER,
                "peer {peer}: every packet sent once"
            );
            assert_eq!(
                counters_seen.last().copied(),
                Some(PER_PEER as u64 - 1),
                "peer {peer}: no gaps"
            );
        }
        // Towards the LAN: every message from each peer delivered once.
        let mut delivered = [0usize; 2];
        for ring in &lan_tx {
            for frame in drain(ring) {
                let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
                let peer = (ip.src_addr().octets()[1] - 98) as usize;
                delivered[peer] += 1;
            }
        }
        assert_eq!(delivered, [PER_PEER, PER_PEER]);
        for ring in lan_rx.iter().chain(&wan_rx) {
            assert!(ring.is_empty());
        }
    }
    assert_eq!(pool.in_use(), in_use_before, "every mbuf returned");
}

/// Frames on `ring` addressed to `peer`'s endpoint (all of them are; the
/// check guards against misrouting).
fn drain_peer(ring: &Ring, peer: u32) -> Vec<Vec<u8>> {
    let mut mine = Vec::new();
    let mut burst = MbufBurst::new();
    // Peek by draining into a local list and keeping the others for the
    // other peer's pass: put them back afterwards.
    let mut others = Vec::new();
    while ring.dequeue_burst(&mut burst) > 0 {
        for m in burst.drain() {
            let frame = m.data().to_vec();
            let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
            if ip.dst_addr() == *endpoint(peer).ip() {
                mine.push(frame);
            } else {
                others.push(m);
            }
        }
    }
    for m in others {
        let mut one = MbufBurst::new();
        one.push(m).unwrap();
        ring.enqueue_burst(&mut one);
    }
    mine
}
