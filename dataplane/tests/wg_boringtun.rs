//! WireGuard interoperability, end to end and in process: Patronus (the
//! control thread's `Device` plus a worker's `WgDataPath`, driven the way
//! `control/src/wgdriver.rs` drives them) against boringtun, a stock
//! implementation. No DPDK and no sockets: packets are `HeapBuf`s, the
//! "network" is this file, and Patronus' TSC is a fake clock in nanoseconds
//! (`tsc_hz = 1_000_000_000`), so Patronus' time can jump ahead while
//! boringtun keeps the real clock.

use boringtun::noise::{Tunn, TunnResult};
use crossbeam_queue::ArrayQueue;
use patronus_dataplane::buf::{HeapBuf, PacketBuf};
use patronus_dataplane::forward::{ForwardEntry, Forwarder};
use patronus_dataplane::punt::PuntReason;
use patronus_dataplane::stats::DropReason;
use patronus_dataplane::synth;
use patronus_dataplane::wg::allowed_ips::AllowedIps;
use patronus_dataplane::wg::datapath::{
    local_index, push_outer_headers, unpack_endpoint, DataPathConfig, Keypair, PeerActivity,
    WgCommand, WgDataPath,
};
use patronus_dataplane::wg::device::{Activity, Device, DeviceOutput, PeerSpec};
use patronus_dataplane::wg::keys::{PresharedKey, PrivateKey, PublicKey};
use patronus_dataplane::wg::session::{RecvSession, SendSession};
use patronus_dataplane::wg::timers::REKEY_AFTER_TIME;
use patronus_dataplane::wire::ethernet::{self, Address, EtherType};
use patronus_dataplane::wire::{ipv4, udp};
use patronus_dataplane::worker::{Processor, Verdict};
use rand_core::OsRng;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

const LAN: u8 = 0;
const WAN: u8 = 1;
const MASK: u32 = 0x5a5a_1234;
const TSC_HZ: u64 = 1_000_000_000;
const LAN_HOST_MAC: Address = Address([2, 0, 0, 0, 1, 2]);
const LAN_PORT_MAC: Address = Address([2, 0, 0, 0, 1, 1]);
const WAN_PORT_MAC: Address = Address([2, 0, 0, 0, 2, 1]);
const GATEWAY_MAC: Address = Address([2, 0, 0, 0, 2, 2]);
/// Patronus' WAN address and listen port.
const NODE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 10, 2, 1), 51820);
/// Where boringtun sits.
const PEER_ENDPOINT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 10, 2, 2), 51821);
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 2);
/// A host behind boringtun, inside its allowed IPs 10.99.0.0/24.
const BEHIND_PEER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const OUR_SECRET: [u8; 32] = [0x11; 32];
const PEER_SECRET: [u8; 32] = [0x22; 32];
const HEADROOM: usize = 128;
const TAILROOM: usize = 64;
/// Outer Ethernet + IPv4 + UDP in front of every WireGuard message.
const OUTER_LEN: usize = 14 + 20 + 8;

/// What the worker and the control thread share (`WgShared` in the daemon).
struct Shared {
    activity: Vec<PeerActivity>,
    commands: ArrayQueue<WgCommand>,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            activity: vec![PeerActivity::default()],
            commands: ArrayQueue::new(64),
        }
    }
}

/// What was last seen of the peer's activity atomics (as in the driver).
#[derive(Default, Clone, Copy)]
struct Seen {
    sent: u64,
    data_sent: u64,
    received: u64,
    rx_bytes: u64,
    endpoint: u64,
    confirmed: u32,
}

fn node_config() -> DataPathConfig {
    DataPathConfig {
        lan_port: LAN,
        wan_port: WAN,
        lan_src_mac: LAN_PORT_MAC,
        lan_dst_mac: LAN_HOST_MAC,
        wan_src_mac: WAN_PORT_MAC,
        wan_dst_mac: GATEWAY_MAC,
        local_ip: *NODE.ip(),
        listen_port: NODE.port(),
        index_mask: MASK,
        tsc_hz: TSC_HZ,
        worker: 0,
        workers: 1,
        tunnel_mtu: 1420,
        lan_ipv4: None,
        lan_ipv6: None,
    }
}

/// Patronus with one peer (id 0): a `Device` and a `WgDataPath`, glued the
/// way `WgDriver` glues them, with the punt and inject rings flattened into
/// direct calls.
struct Patronus<'a> {
    device: Device,
    dp: WgDataPath<'a>,
    shared: &'a Shared,
    config: DataPathConfig,
    /// The fake TSC: nanoseconds since the driver started.
    tsc: u64,
    seen: Seen,
    queued: Vec<HeapBuf>,
    outputs: Vec<DeviceOutput>,
}

impl<'a> Patronus<'a> {
    fn new(shared: &'a Shared, endpoint: Option<SocketAddrV4>, psk: Option<[u8; 32]>) -> Self {
        let config = node_config();
        let peer_public =
            boringtun::x25519::PublicKey::from(&boringtun::x25519::StaticSecret::from(PEER_SECRET));
        let device = Device::new(
            PrivateKey::from_bytes(OUR_SECRET),
            vec![PeerSpec {
                public_key: PublicKey(*peer_public.as_bytes()),
                preshared_key: psk.map(PresharedKey::from_bytes),
                endpoint,
                persistent_keepalive: 0,
            }],
            MASK,
            Duration::ZERO,
            &mut OsRng,
        );
        let mut routes = AllowedIps::new();
        routes
            .insert(IpAddr::V4(Ipv4Addr::new(10, 99, 0, 0)), 24, 0u32)
            .unwrap();
        let mut fallback = Forwarder::new();
        fallback
            .set(
                LAN,
                ForwardEntry {
                    out_port: WAN,
                    src_mac: WAN_PORT_MAC,
                    dst_mac: GATEWAY_MAC,
                },
            )
            .unwrap();
        let dp = WgDataPath::new(
            config.clone(),
            routes,
            &[endpoint],
            &shared.activity,
            &shared.commands,
            fallback,
        );
        Patronus {
            device,
            dp,
            shared,
            config,
            // Start a millisecond in: a TSC stamp of 0 reads as "never".
            tsc: 1_000_000,
            seen: Seen::default(),
            queued: Vec::new(),
            outputs: Vec::new(),
        }
    }

    fn activity(&self) -> &PeerActivity {
        &self.shared.activity[0]
    }

    /// The driver's monotonic clock (its `tsc_to_now` with a start TSC of 0).
    fn now(&self) -> Duration {
        Duration::from_nanos(self.tsc)
    }

    /// The wall clock, moving with the fake clock. The daemon passes
    /// `SystemTime::now()`; a simulated one keeps the TAI64N timestamps in
    /// our initiations consistent with the simulated time (see the rekey test).
    fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + self.now()
    }

    fn advance(&mut self, by: Duration) {
        self.tsc += by.as_nanos() as u64;
    }

    /// One frame arriving on `port`: one worker iteration (command poll,
    /// then `process`), then the driver's punt handling (queue the packet
    /// and ask for a session, or hand the handshake message to the device).
    /// Returns the worker's verdict and the buffer as the worker left it.
    fn rx(&mut self, port: u8, frame: &[u8]) -> (Verdict, HeapBuf) {
        let mut buf = HeapBuf::from_slice(frame, HEADROOM, TAILROOM);
        self.dp.poll(self.tsc);
        let verdict = self.dp.process(&mut buf, port, self.tsc);
        let (now, wall) = (self.now(), self.wall());
        match verdict {
            Verdict::Punt(PuntReason::WgNeedsSession { peer }) => {
                self.queued.push(buf.clone());
                self.device
                    .need_session(peer, now, wall, &mut OsRng, &mut self.outputs);
            }
            Verdict::Punt(PuntReason::WgHandshake) => {
                let (src, message) = udp_payload(buf.data());
                self.device
                    .handle_message(
                        src,
                        message,
                        false,
                        now,
                        wall,
                        &mut OsRng,
                        &mut self.outputs,
                    )
                    .expect("Patronus accepts boringtun's handshake message");
            }
            _ => {}
        }
        (verdict, buf)
    }

    /// The rest of a driver round (observe the workers' activity, run the
    /// timers, execute the outputs), then one worker iteration for what was
    /// injected. Returns the frames the worker sent out of the WAN port.
    fn round(&mut self) -> Vec<HeapBuf> {
        let (now, wall) = (self.now(), self.wall());
        self.observe(now, wall);
        self.device.poll(now, wall, &mut OsRng, &mut self.outputs);
        self.execute()
    }

    fn observe(&mut self, now: Duration, wall: SystemTime) {
        let a = &self.shared.activity[0];
        let current = Seen {
            sent: a.last_sent.load(Relaxed),
            data_sent: a.last_data_sent.load(Relaxed),
            received: a.last_received.load(Relaxed),
            rx_bytes: a.rx_bytes.load(Relaxed),
            endpoint: a.endpoint.load(Relaxed),
            confirmed: a.confirmed_index.load(Relaxed),
        };
        let rekey_wanted = a.rekey_wanted.swap(false, Relaxed);
        let last = self.seen;
        let changed = |new: u64, old: u64| (new != old).then_some(new);
        let activity = Activity {
            sent: changed(current.sent, last.sent).map(Duration::from_nanos),
            data_sent: changed(current.data_sent, last.data_sent).map(Duration::from_nanos),
            received: changed(current.received, last.received).map(Duration::from_nanos),
            data_received: changed(current.rx_bytes, last.rx_bytes)
                .map(|_| Duration::from_nanos(current.received)),
            endpoint: changed(current.endpoint, last.endpoint).and_then(unpack_endpoint),
            confirmed_index: (current.confirmed != last.confirmed).then_some(current.confirmed),
            rekey_wanted,
        };
        self.seen = current;
        if activity != Activity::default() {
            self.device
                .observe(0, activity, now, wall, &mut OsRng, &mut self.outputs);
        }
    }

    fn execute(&mut self) -> Vec<HeapBuf> {
        // The inject ring, in order: (packet, Some(peer) = process_local,
        // None = transmit as is).
        let mut injected: Vec<(HeapBuf, Option<u32>)> = Vec::new();
        for output in std::mem::take(&mut self.outputs) {
            match output {
                DeviceOutput::Transmit { to, message } => {
                    let mut m = HeapBuf::new(2048, HEADROOM);
                    m.append(message.len()).unwrap().copy_from_slice(&message);
                    push_outer_headers(&mut m, &self.config, to).unwrap();
                    injected.push((m, None));
                }
                DeviceOutput::InstallKeypair { peer, keys } => {
                    let keypair = Keypair {
                        send: SendSession::new(&keys.send_key, keys.remote_index, self.tsc),
                        recv: RecvSession::new(&keys.recv_key, keys.local_index, self.tsc),
                        initiator: keys.initiator,
                    };
                    self.command(WgCommand::InstallKeypair {
                        peer,
                        keypair: Box::new(keypair),
                    });
                }
                DeviceOutput::ClearKeys { peer } => self.command(WgCommand::ClearKeys { peer }),
                DeviceOutput::SetEndpoint { peer, endpoint } => {
                    self.command(WgCommand::SetEndpoint { peer, endpoint })
                }
                DeviceOutput::SendKeepalive { peer } => {
                    injected.push((HeapBuf::new(2048, HEADROOM), Some(peer)));
                }
                DeviceOutput::FlushQueue { peer } => {
                    // As the daemon's driver: the queued packets, or a
                    // keepalive when none are queued.
                    if self.queued.is_empty() {
                        injected.push((HeapBuf::new(2048, HEADROOM), Some(peer)));
                    }
                    for m in self.queued.drain(..) {
                        injected.push((m, Some(peer)));
                    }
                }
                DeviceOutput::DropQueue { .. } => self.queued.clear(),
            }
        }
        // The worker's next iteration: commands first, then the inject ring.
        self.dp.poll(self.tsc);
        injected
            .into_iter()
            .map(|(mut m, action)| {
                if let Some(peer) = action {
                    let verdict = self.dp.process_local(&mut m, peer, self.tsc);
                    assert_eq!(verdict, Verdict::Forward(WAN), "injected packet for {peer}");
                }
                m
            })
            .collect()
    }

    fn command(&self, command: WgCommand) {
        assert!(
            self.shared.commands.push(command).is_ok(),
            "command ring full"
        );
    }
}

/// The UDP source and payload of an Ethernet/IPv4/UDP frame (the driver's
/// `udp_payload`).
fn udp_payload(frame: &[u8]) -> (SocketAddrV4, &[u8]) {
    let eth = ethernet::Frame::new_checked(frame).unwrap();
    let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
    let datagram = udp::Packet::new_checked(ip.payload()).unwrap();
    let src = SocketAddrV4::new(ip.src_addr(), datagram.src_port());
    let start = eth.header_len() + ip.header_len() + udp::HEADER_LEN;
    (src, &frame[start..start + datagram.payload().len()])
}

/// The WireGuard message in a frame Patronus sent, after checking that the
/// frame is addressed from our WAN port to boringtun's endpoint.
fn to_peer(frame: &HeapBuf) -> Vec<u8> {
    let eth = ethernet::Frame::new_checked(frame.data()).unwrap();
    assert_eq!(
        (eth.dst_addr(), eth.src_addr(), eth.ethertype()),
        (GATEWAY_MAC, WAN_PORT_MAC, EtherType::Ipv4)
    );
    let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    let datagram = udp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (
            SocketAddrV4::new(ip.src_addr(), datagram.src_port()),
            SocketAddrV4::new(ip.dst_addr(), datagram.dst_port())
        ),
        (NODE, PEER_ENDPOINT)
    );
    datagram.payload().to_vec()
}

/// A WireGuard message from boringtun as it arrives at our WAN port.
fn from_peer(message: &[u8]) -> Vec<u8> {
    let peer_side = DataPathConfig {
        wan_src_mac: GATEWAY_MAC,
        wan_dst_mac: WAN_PORT_MAC,
        local_ip: *PEER_ENDPOINT.ip(),
        listen_port: PEER_ENDPOINT.port(),
        index_mask: 0,
        ..node_config()
    };
    let mut buf = HeapBuf::from_slice(message, HEADROOM, 0);
    push_outer_headers(&mut buf, &peer_side, NODE).unwrap();
    buf.data().to_vec()
}

/// boringtun's outputs, owned.
#[derive(Debug, PartialEq)]
enum Bt {
    Done,
    Network(Vec<u8>),
    Tunnel(Vec<u8>, Ipv4Addr),
    Err(String),
}

impl Bt {
    fn network(self) -> Vec<u8> {
        match self {
            Bt::Network(m) => m,
            other => panic!("expected a datagram from boringtun, got {other:?}"),
        }
    }
}

struct Boringtun {
    tunn: Tunn,
    dst: Vec<u8>,
}

impl Boringtun {
    fn new(psk: Option<[u8; 32]>) -> Boringtun {
        let ours = PrivateKey::from_bytes(OUR_SECRET).public_key();
        Boringtun {
            tunn: Tunn::new(
                boringtun::x25519::StaticSecret::from(PEER_SECRET),
                boringtun::x25519::PublicKey::from(ours.0),
                psk,
                None,
                7,
                None,
            ),
            dst: vec![0; 4096],
        }
    }

    fn own(r: TunnResult<'_>) -> Bt {
        match r {
            TunnResult::Done => Bt::Done,
            TunnResult::WriteToNetwork(p) => Bt::Network(p.to_vec()),
            TunnResult::WriteToTunnelV4(p, from) => Bt::Tunnel(p.to_vec(), from),
            TunnResult::WriteToTunnelV6(p, _) => panic!("unexpected IPv6 packet {p:?}"),
            TunnResult::Err(e) => Bt::Err(format!("{e:?}")),
        }
    }

    /// A datagram from Patronus.
    fn receive(&mut self, message: &[u8]) -> Bt {
        let r = Self::own(self.tunn.decapsulate(
            Some(IpAddr::V4(*NODE.ip())),
            message,
            &mut self.dst,
        ));
        if matches!(r, Bt::Network(_)) {
            // boringtun's contract: repeat with an empty datagram to flush
            // its queue. Nothing is ever queued here.
            let again = Self::own(self.tunn.decapsulate(None, &[], &mut self.dst));
            assert_eq!(again, Bt::Done);
        }
        r
    }

    fn send(&mut self, packet: &[u8]) -> Vec<u8> {
        Self::own(self.tunn.encapsulate(packet, &mut self.dst)).network()
    }
}

fn lan_frame(len: usize) -> Vec<u8> {
    synth::udp_frame(
        LAN_HOST_MAC,
        LAN_PORT_MAC,
        IpAddr::V4(LAN_HOST),
        IpAddr::V4(BEHIND_PEER),
        64,
        len,
    )
}

/// The IP packet of a LAN frame as it leaves through the tunnel: TTL - 1.
fn routed(frame: &[u8]) -> Vec<u8> {
    let mut ip = frame[14..].to_vec();
    ipv4::Packet::new_checked(&mut ip[..])
        .unwrap()
        .decrement_ttl()
        .unwrap();
    ip
}

/// An IP packet from behind boringtun to our LAN host.
fn peer_packet(len: usize) -> Vec<u8> {
    synth::udp_frame(
        GATEWAY_MAC,
        WAN_PORT_MAC,
        IpAddr::V4(BEHIND_PEER),
        IpAddr::V4(LAN_HOST),
        64,
        len,
    )[14..]
        .to_vec()
}

fn le32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes[..4].try_into().unwrap())
}

/// The receiver index and counter of a transport message.
fn transport_header(message: &[u8]) -> (u32, u64) {
    assert_eq!(&message[..4], &[4, 0, 0, 0], "a transport message");
    (
        le32(&message[4..8]),
        u64::from_le_bytes(message[8..16].try_into().unwrap()),
    )
}

/// Asserts a frame Patronus delivered to the LAN carries `ip`, forwarded
/// (TTL decremented: leaving the tunnel is a router hop).
fn assert_delivered(verdict: Verdict, buf: &HeapBuf, ip: &[u8]) {
    assert_eq!(verdict, Verdict::Forward(LAN));
    let eth = ethernet::Frame::new_checked(buf.data()).unwrap();
    assert_eq!(
        (eth.dst_addr(), eth.src_addr(), eth.ethertype()),
        (LAN_HOST_MAC, LAN_PORT_MAC, EtherType::Ipv4)
    );
    let mut expected = ip.to_vec();
    ipv4::Packet::new_checked(&mut expected[..])
        .unwrap()
        .decrement_ttl()
        .unwrap();
    assert_eq!(eth.payload(), &expected[..]);
}

/// What an established session looks like from the outside.
struct Session {
    /// Our index: the receiver index of boringtun's transport messages.
    ours: u32,
    /// boringtun's index: the receiver index of ours.
    theirs: u32,
}

/// Patronus initiates because of LAN traffic; checks every step up to
/// boringtun decrypting the queued packets.
fn patronus_initiates(node: &mut Patronus<'_>, bt: &mut Boringtun) -> Session {
    // No session: the packets are punted (as IP packets) and queued.
    let frames = [lan_frame(200), lan_frame(90)];
    for frame in &frames {
        let (verdict, punted) = node.rx(LAN, frame);
        assert_eq!(
            verdict,
            Verdict::Punt(PuntReason::WgNeedsSession { peer: 0 })
        );
        assert_eq!(punted.data(), &routed(frame)[..]);
    }
    // One initiation for both (the second need_session finds it in flight).
    let out = node.round();
    assert_eq!(out.len(), 1);
    let initiation = to_peer(&out[0]);
    assert_eq!((initiation.len(), initiation[0]), (148, 1));
    let ours = local_index(MASK, 0, 1);
    assert_eq!(le32(&initiation[4..]), ours, "sender index");

    let response = bt.receive(&initiation).network();
    assert_eq!((response.len(), response[0]), (92, 2));
    assert_eq!(le32(&response[8..]), ours, "receiver index");
    let theirs = le32(&response[4..]);

    let (verdict, _) = node.rx(WAN, &from_peer(&response));
    assert_eq!(verdict, Verdict::Punt(PuntReason::WgHandshake));
    assert_eq!(node.device.peer_status(0).unwrap().handshakes_completed, 1);
    // Installed keypair, then the queue in order; the queued data confirms
    // the keypair, so no keepalive is needed.
    let out = node.round();
    assert_eq!(out.len(), 2);
    for (counter, (frame, original)) in out.iter().zip(&frames).enumerate() {
        let message = to_peer(frame);
        assert_eq!(transport_header(&message), (theirs, counter as u64));
        assert_eq!(
            bt.receive(&message),
            Bt::Tunnel(routed(original), LAN_HOST),
            "boringtun decrypts the queued packet, TTL decremented"
        );
    }
    Session { ours, theirs }
}

#[test]
fn patronus_initiates_and_data_flows_both_ways_with_boringtun() {
    let shared = Shared::new();
    let mut node = Patronus::new(&shared, Some(PEER_ENDPOINT), None);
    let mut bt = Boringtun::new(None);
    let session = patronus_initiates(&mut node, &mut bt);
    assert_eq!(node.activity().tx_bytes.load(Relaxed), (186 + 76) as u64);

    // boringtun answers; we deliver to the LAN host.
    node.advance(Duration::from_millis(3));
    let reply = peer_packet(300);
    let message = bt.send(&reply);
    assert_eq!(transport_header(&message), (session.ours, 0));
    let (verdict, delivered) = node.rx(WAN, &from_peer(&message));
    assert_delivered(verdict, &delivered, &reply);
    assert_eq!(node.activity().last_received.load(Relaxed), node.tsc);
    assert_eq!(node.activity().rx_bytes.load(Relaxed), 286);
    assert_eq!(
        node.activity().confirmed_index.load(Relaxed),
        0,
        "only a responder's keypair waits for confirmation"
    );

    // Now with a session, LAN traffic goes straight through the data path.
    let frame = lan_frame(500);
    let (verdict, sent) = node.rx(LAN, &frame);
    assert_eq!(verdict, Verdict::Forward(WAN));
    let message = to_peer(&sent);
    assert_eq!(transport_header(&message), (session.theirs, 2));
    assert_eq!(bt.receive(&message), Bt::Tunnel(routed(&frame), LAN_HOST));
    // Nothing for the control thread to do.
    assert!(node.round().is_empty());
    assert_eq!(node.device.peer_status(0).unwrap().handshake_attempts, 1);
}

#[test]
fn boringtun_initiates_and_patronus_responds() {
    let psk = Some([0x42; 32]);
    let shared = Shared::new();
    // We do not know boringtun's endpoint: it is learned from the initiation.
    let mut node = Patronus::new(&shared, None, psk);
    let mut bt = Boringtun::new(psk);

    let initiation =
        Boringtun::own(bt.tunn.format_handshake_initiation(&mut bt.dst, false)).network();
    let theirs = le32(&initiation[4..]);
    let (verdict, _) = node.rx(WAN, &from_peer(&initiation));
    assert_eq!(verdict, Verdict::Punt(PuntReason::WgHandshake));
    let out = node.round();
    assert_eq!(out.len(), 1);
    let response = to_peer(&out[0]);
    let ours = local_index(MASK, 0, 1);
    assert_eq!((response.len(), response[0]), (92, 2));
    assert_eq!((le32(&response[4..]), le32(&response[8..])), (ours, theirs));
    assert_eq!(node.device.peer_endpoint(0), Some(PEER_ENDPOINT));

    // Before key confirmation the worker may not send on the responder's
    // keypair. (Asked of the data path alone: the driver would queue the
    // packet and call `need_session`, which is not what this test is about.)
    let mut early = HeapBuf::from_slice(&lan_frame(80), HEADROOM, TAILROOM);
    node.dp.poll(node.tsc);
    assert_eq!(
        node.dp.process(&mut early, LAN, node.tsc),
        Verdict::Punt(PuntReason::WgNeedsSession { peer: 0 })
    );

    // boringtun completes the handshake with a keepalive; we hold it back
    // so that boringtun's data is what confirms the keypair.
    let keepalive = bt.receive(&response).network();
    assert_eq!(transport_header(&keepalive), (ours, 0));
    let data = peer_packet(120);
    let message = bt.send(&data);
    assert_eq!(transport_header(&message), (ours, 1));
    node.advance(Duration::from_millis(1));
    let (verdict, delivered) = node.rx(WAN, &from_peer(&message));
    assert_delivered(verdict, &delivered, &data);
    assert_eq!(node.activity().confirmed_index.load(Relaxed), ours);
    // The late keepalive is still inside the replay window.
    let (verdict, _) = node.rx(WAN, &from_peer(&keepalive));
    assert_eq!(verdict, Verdict::Consumed);
    assert!(node.round().is_empty());

    // Confirmed: we send, boringtun decrypts.
    let frame = lan_frame(250);
    let (verdict, sent) = node.rx(LAN, &frame);
    assert_eq!(verdict, Verdict::Forward(WAN));
    let message = to_peer(&sent);
    assert_eq!(transport_header(&message), (theirs, 0));
    assert_eq!(bt.receive(&message), Bt::Tunnel(routed(&frame), LAN_HOST));
    let status = node.device.peer_status(0).unwrap();
    assert_eq!(
        (status.handshakes_completed, status.handshake_attempts),
        (1, 0)
    );
}

#[test]
fn rekey_after_time_moves_both_sides_to_a_new_keypair() {
    let shared = Shared::new();
    let mut node = Patronus::new(&shared, Some(PEER_ENDPOINT), None);
    let mut bt = Boringtun::new(None);
    let old = patronus_initiates(&mut node, &mut bt);
    assert!(node.round().is_empty());

    // boringtun sends one packet on the old keypair that only arrives later.
    let late = peer_packet(160);
    let late_message = bt.send(&late);
    assert_eq!(transport_header(&late_message), (old.ours, 0));

    // Two minutes on (Patronus' clock only), data still goes out on the old
    // keypair, but the data path asks for a rekey.
    node.advance(REKEY_AFTER_TIME + Duration::from_secs(1));
    assert!(!node.activity().rekey_wanted.load(Relaxed));
    let frame = lan_frame(100);
    let (verdict, sent) = node.rx(LAN, &frame);
    assert_eq!(verdict, Verdict::Forward(WAN));
    let message = to_peer(&sent);
    assert_eq!(transport_header(&message), (old.theirs, 2));
    assert_eq!(bt.receive(&message), Bt::Tunnel(routed(&frame), LAN_HOST));
    assert!(node.activity().rekey_wanted.load(Relaxed));

    // The driver's next round passes the flag to the device: a new
    // initiation. boringtun rejects an initiation whose TAI64N timestamp is
    // not after the last one it accepted, and Patronus whitens timestamps to
    // 2^24 ns: with the daemon's real `SystemTime::now()` this initiation,
    // a few milliseconds after the first, could carry the same timestamp and
    // be refused. Our wall clock moves with the simulated clock (121 s on),
    // so no real sleep is needed.
    let out = node.round();
    assert!(!node.activity().rekey_wanted.load(Relaxed));
    assert_eq!(out.len(), 1);
    let initiation = to_peer(&out[0]);
    assert_eq!(initiation[0], 1);
    let ours = local_index(MASK, 0, 2);
    assert_eq!(le32(&initiation[4..]), ours);
    assert_eq!(node.device.peer_status(0).unwrap().handshake_attempts, 2);

    let response = bt.receive(&initiation).network();
    assert_eq!(response[0], 2);
    let theirs = le32(&response[4..]);
    assert_ne!(theirs, old.theirs);
    node.advance(Duration::from_millis(2));
    let (verdict, _) = node.rx(WAN, &from_peer(&response));
    assert_eq!(verdict, Verdict::Punt(PuntReason::WgHandshake));
    assert_eq!(node.device.peer_status(0).unwrap().handshakes_completed, 2);

    // The initiator switches at once: the keepalive that confirms the new
    // keypair, and the next data packet, carry boringtun's new index.
    let out = node.round();
    assert_eq!(out.len(), 1);
    let keepalive = to_peer(&out[0]);
    assert_eq!(transport_header(&keepalive), (theirs, 0));
    assert_eq!(bt.receive(&keepalive), Bt::Done);
    let frame = lan_frame(140);
    let (verdict, sent) = node.rx(LAN, &frame);
    assert_eq!(verdict, Verdict::Forward(WAN));
    let message = to_peer(&sent);
    assert_eq!(transport_header(&message), (theirs, 1));
    assert_eq!(bt.receive(&message), Bt::Tunnel(routed(&frame), LAN_HOST));
    assert!(
        !node.activity().rekey_wanted.load(Relaxed),
        "the new keypair is fresh"
    );

    // The packet boringtun sent on the old keypair is still accepted (our
    // previous keypair), once.
    let (verdict, delivered) = node.rx(WAN, &from_peer(&late_message));
    assert_delivered(verdict, &delivered, &late);
    let (verdict, _) = node.rx(WAN, &from_peer(&late_message));
    assert_eq!(verdict, Verdict::Drop(DropReason::WgReplay));

    // boringtun has moved to the new keypair too.
    let data = peer_packet(200);
    let message = bt.send(&data);
    assert_eq!(transport_header(&message), (ours, 0));
    let (verdict, delivered) = node.rx(WAN, &from_peer(&message));
    assert_delivered(verdict, &delivered, &data);
    assert_eq!(
        node.activity().confirmed_index.load(Relaxed),
        0,
        "we initiated the rekey: no confirmation is awaited"
    );
    assert!(node.round().is_empty());
}

#[test]
fn tampered_and_replayed_transport_packets_from_boringtun_are_dropped() {
    let shared = Shared::new();
    let mut node = Patronus::new(&shared, Some(PEER_ENDPOINT), None);
    let mut bt = Boringtun::new(None);
    let session = patronus_initiates(&mut node, &mut bt);
    node.advance(Duration::from_millis(5));
    let received_before = node.activity().last_received.load(Relaxed);

    let data = peer_packet(100);
    let valid = from_peer(&bt.send(&data));
    // One bit of the ciphertext, one of the tag, one of the counter.
    for at in [OUTER_LEN + 16 + 7, valid.len() - 1, OUTER_LEN + 8] {
        let mut tampered = valid.clone();
        tampered[at] ^= 0x04;
        let (verdict, _) = node.rx(WAN, &tampered);
        assert_eq!(verdict, Verdict::Drop(DropReason::WgInvalid), "bit at {at}");
    }
    // A flipped receiver index names no keypair of ours.
    let mut tampered = valid.clone();
    tampered[OUTER_LEN + 4] ^= 0x01;
    assert_ne!(le32(&tampered[OUTER_LEN + 4..]), session.ours);
    let (verdict, _) = node.rx(WAN, &tampered);
    assert_eq!(verdict, Verdict::Drop(DropReason::WgInvalid));
    assert_eq!(
        node.activity().last_received.load(Relaxed),
        received_before,
        "forgeries are not activity"
    );
    assert_eq!(node.activity().rx_bytes.load(Relaxed), 0);

    // The untouched message passes (the forgeries did not move the window)...
    let (verdict, delivered) = node.rx(WAN, &valid);
    assert_delivered(verdict, &delivered, &data);
    assert_eq!(node.activity().rx_bytes.load(Relaxed), 100 - 14);
    // ...exactly once.
    node.advance(Duration::from_millis(1));
    let (verdict, _) = node.rx(WAN, &valid);
    assert_eq!(verdict, Verdict::Drop(DropReason::WgReplay));
    assert_eq!(node.activity().rx_bytes.load(Relaxed), 100 - 14);
    assert_eq!(
        node.activity().last_received.load(Relaxed),
        node.tsc - 1_000_000
    );
}

#[test]
fn keepalive_from_boringtun_is_consumed() {
    let shared = Shared::new();
    let mut node = Patronus::new(&shared, Some(PEER_ENDPOINT), None);
    let mut bt = Boringtun::new(None);
    let session = patronus_initiates(&mut node, &mut bt);
    assert!(node.round().is_empty());
    assert_eq!(node.activity().last_received.load(Relaxed), 0);

    node.advance(Duration::from_secs(4));
    let keepalive = bt.send(&[]);
    assert_eq!(keepalive.len(), 32, "header and tag, no payload");
    assert_eq!(transport_header(&keepalive), (session.ours, 0));
    let (verdict, buf) = node.rx(WAN, &from_peer(&keepalive));
    assert_eq!(verdict, Verdict::Consumed);
    assert!(buf.is_empty());
    let activity = node.activity();
    assert_eq!(activity.last_received.load(Relaxed), node.tsc);
    assert_eq!(
        activity.confirmed_index.load(Relaxed),
        0,
        "we initiated: nothing to confirm"
    );
    assert_eq!(
        activity.rx_bytes.load(Relaxed),
        0,
        "a keepalive is not data"
    );
    assert_eq!(
        activity.endpoint.load(Relaxed),
        0,
        "same endpoint: no roaming"
    );
    // A keepalive asks nothing of the control thread (no keepalive back).
    assert!(node.round().is_empty());
}
