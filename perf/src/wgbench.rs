//! The WireGuard ring scenarios: `WgDataPath` in the real worker loop with
//! one peer whose keypair is installed through the command queue, as the
//! control thread would after a handshake.
//!
//! - `encap`: LAN frames to a host behind the peer go in on the LAN port
//!   and come out of the WAN port as transport messages to the peer's
//!   endpoint; the generator refills them with the plaintext frame.
//! - `decap`: transport messages from the peer, each freshly encrypted with
//!   the peer's sending key and the next counter (the replay window rejects
//!   reused ones), go in on the WAN port and come out of the LAN port.

use crate::ringrun::{self, Feed};
use crate::{inproc, port_mac, Args, Measurement};
use crossbeam_queue::ArrayQueue;
use patronus_dataplane::buf::{HeapBuf, PacketBuf};
use patronus_dataplane::dpdk::{tsc, Mbuf, Mempool, Ring};
use patronus_dataplane::forward::Forwarder;
use patronus_dataplane::ringbed::{RingBed, LAN, WAN};
use patronus_dataplane::synth;
use patronus_dataplane::wg::allowed_ips::AllowedIps;
use patronus_dataplane::wg::datapath::{
    local_index, DataPathConfig, Keypair, PeerActivity, WgCommand, WgDataPath, OUTER_IP_UDP_LEN,
};
use patronus_dataplane::wg::session::{RecvSession, SendSession};
use patronus_dataplane::wg::transport::{self, Decapsulated};
use patronus_dataplane::wire::ethernet::{self, Address};
use patronus_dataplane::wire::{ipv4, udp};
use patronus_dataplane::worker::Processor;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

/// The per-boot index mask of the node under test.
const INDEX_MASK: u32 = 0x5a5a_1234;
/// The key we send with (the peer receives with it), and the peer's.
const OUR_SEND_KEY: [u8; 32] = [1; 32];
const PEER_SEND_KEY: [u8; 32] = [2; 32];
/// The peer's index for the keypair: in the header of what we send.
const PEER_INDEX: u32 = 0xabcd_0001;
const LAN_HOST_MAC: Address = Address([2, 0, 0, 0, 1, 2]);
const GATEWAY_MAC: Address = Address([2, 0, 0, 0, 2, 2]);
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 2);
const BEHIND_PEER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(10, 10, 2, 1);
const LISTEN_PORT: u16 = 51820;
const PEER_ENDPOINT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 10, 2, 2), 51820);

/// Our local index for the keypair: the receiver index of the peer's messages.
fn our_index() -> u32 {
    local_index(INDEX_MASK, 0, 1)
}

/// What both WireGuard scenarios share, built once per run.
pub struct WgBench {
    lan_port_mac: Address,
    wan_port_mac: Address,
    /// `encap`'s offer: a LAN host's frame carrying a `size`-byte IPv4 packet.
    lan_frame: Vec<u8>,
    /// `decap`'s plaintext: a `size`-byte IPv4 packet from behind the peer.
    inner: Vec<u8>,
    /// `decap`'s outer Ethernet/IPv4/UDP header, from the peer's endpoint to
    /// our listen port, for a transport message carrying `inner`.
    outer: Vec<u8>,
}

impl WgBench {
    pub fn new(bed: &RingBed, size: u16) -> Result<WgBench, String> {
        let size = usize::from(size);
        let lan_port_mac = port_mac(bed, LAN)?;
        let wan_port_mac = port_mac(bed, WAN)?;
        let lan_frame = synth::udp_frame(
            LAN_HOST_MAC,
            lan_port_mac,
            IpAddr::V4(LAN_HOST),
            IpAddr::V4(BEHIND_PEER),
            64,
            size + ethernet::HEADER_LEN,
        );
        let message_len = transport::HEADER_LEN
            + size.div_ceil(transport::PADDING_MULTIPLE) * transport::PADDING_MULTIPLE
            + transport::TAG_LEN;
        let outer_len = ethernet::HEADER_LEN + OUTER_IP_UDP_LEN;
        let mut outer = synth::udp_frame(
            GATEWAY_MAC,
            wan_port_mac,
            IpAddr::V4(*PEER_ENDPOINT.ip()),
            IpAddr::V4(LOCAL_IP),
            64,
            outer_len + message_len,
        );
        outer.truncate(outer_len);
        let mut datagram = udp::Packet::new_unchecked(&mut outer[outer_len - udp::HEADER_LEN..]);
        datagram.set_src_port(PEER_ENDPOINT.port());
        datagram.set_dst_port(LISTEN_PORT);
        // No UDP checksum over IPv4, as WireGuard senders do.
        datagram.set_checksum(0);
        Ok(WgBench {
            lan_port_mac,
            wan_port_mac,
            lan_frame,
            inner: inproc::inner_packet(size),
            outer,
        })
    }

    /// One `encap` round.
    pub fn encap(
        &self,
        args: &Args,
        bed: &RingBed,
        pool: &Mempool,
        tsc_hz: u64,
    ) -> Result<Measurement, String> {
        let (activity, commands) = ([PeerActivity::default()], ArrayQueue::new(4));
        let datapath = self.datapath(&activity, &commands, tsc_hz)?;
        let mut feed = EncapFeed {
            frame: &self.lan_frame,
            checked: false,
        };
        ringrun::run(args, bed, pool, "encap", datapath, &mut feed)
    }

    /// One `decap` round.
    pub fn decap(
        &self,
        args: &Args,
        bed: &RingBed,
        pool: &Mempool,
        tsc_hz: u64,
    ) -> Result<Measurement, String> {
        let (activity, commands) = ([PeerActivity::default()], ArrayQueue::new(4));
        let datapath = self.datapath(&activity, &commands, tsc_hz)?;
        let mut delivered = self.inner.clone();
        if let Ok(mut ip) = patronus_dataplane::wire::ipv4::Packet::new_checked(&mut delivered[..])
        {
            ip.decrement_ttl();
        }
        let mut feed = DecapFeed {
            inner: &self.inner,
            delivered,
            outer: &self.outer,
            peer_send: SendSession::new(&PEER_SEND_KEY, our_index(), 0),
            checked: false,
        };
        ringrun::run(args, bed, pool, "decap", datapath, &mut feed)
    }

    /// `encap` on one core with hot data: `WgDataPath::process` on heap
    /// buffers refilled (untimed) between batches, only the processing
    /// timed. It separates the data path's own cost from the cost of moving
    /// packets between cores that the ring round includes.
    pub fn encap_single_core(&self, args: &Args, tsc_hz: u64) -> Result<Measurement, String> {
        self.single_core(
            args,
            tsc_hz,
            "encap_single_core",
            |_| self.lan_frame.clone(),
            LAN,
        )
    }

    /// `decap` on one core with hot data; the messages are encrypted
    /// (untimed) just before each batch.
    pub fn decap_single_core(&self, args: &Args, tsc_hz: u64) -> Result<Measurement, String> {
        let peer_send = std::sync::Mutex::new(SendSession::new(&PEER_SEND_KEY, our_index(), 0));
        self.single_core(
            args,
            tsc_hz,
            "decap_single_core",
            |_| {
                let mut m = HeapBuf::from_slice(&self.inner, 128, 64);
                let mut sender = peer_send.lock().unwrap_or_else(|e| e.into_inner());
                transport::encapsulate(&mut m, &mut sender).expect("a fresh keypair encrypts");
                let mut frame = self.outer.clone();
                frame.extend_from_slice(m.data());
                frame
            },
            WAN,
        )
    }

    fn single_core(
        &self,
        args: &Args,
        tsc_hz: u64,
        name: &'static str,
        make: impl Fn(usize) -> Vec<u8> + Send + Sync,
        in_port: u8,
    ) -> Result<Measurement, String> {
        const BATCH: usize = 32;
        let size = args.size;
        let seconds = args.seconds;
        let m = inproc::on_core(args.worker_core, || {
            let (activity, commands) = ([PeerActivity::default()], ArrayQueue::new(4));
            let mut dp = self.datapath(&activity, &commands, tsc_hz)?;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
            let start = std::time::Instant::now();
            let (mut packets, mut cycles) = (0u64, 0u64);
            let mut warmed = false;
            while std::time::Instant::now() < deadline {
                let mut batch: Vec<HeapBuf> = (0..BATCH)
                    .map(|i| HeapBuf::from_slice(&make(i), 128, 64))
                    .collect();
                let t0 = tsc();
                dp.poll(t0);
                for b in &mut batch {
                    let verdict = dp.process(b, in_port, t0);
                    if !matches!(verdict, patronus_dataplane::worker::Verdict::Forward(_)) {
                        return Err(format!("{name}: unexpected verdict {verdict:?}"));
                    }
                }
                let t1 = tsc();
                if warmed {
                    packets += BATCH as u64;
                    cycles += t1 - t0;
                }
                warmed = true;
            }
            Ok(Measurement::from_cycles(
                name,
                size,
                packets,
                cycles,
                start.elapsed().as_secs_f64(),
                tsc_hz,
            ))
        })?;
        eprintln!(
            "patronus-bench: {name}: {:.1} cycles/packet",
            m.cycles_per_packet
        );
        Ok(m)
    }

    /// A data path with one peer (10.99.0.0/24 behind it) and a fresh,
    /// unexpired keypair queued for the worker's first poll.
    fn datapath<'a>(
        &self,
        activity: &'a [PeerActivity],
        commands: &'a ArrayQueue<WgCommand>,
        tsc_hz: u64,
    ) -> Result<WgDataPath<'a>, String> {
        let config = DataPathConfig {
            lan_port: LAN,
            wan_port: WAN,
            lan_src_mac: self.lan_port_mac,
            lan_dst_mac: LAN_HOST_MAC,
            wan_src_mac: self.wan_port_mac,
            wan_dst_mac: GATEWAY_MAC,
            local_ip: LOCAL_IP,
            listen_port: LISTEN_PORT,
            index_mask: INDEX_MASK,
            tsc_hz,
            // One worker owns the peer, as in a single-core node.
            worker: 0,
            workers: 1,
            tunnel_mtu: 1420,
            lan_ipv4: None,
            lan_ipv6: None,
        };
        let mut routes = AllowedIps::new();
        routes
            .insert(IpAddr::V4(Ipv4Addr::new(10, 99, 0, 0)), 24, 0u32)
            .map_err(|e| format!("{e:?}"))?;
        let now = tsc();
        let keypair = Keypair {
            send: SendSession::new(&OUR_SEND_KEY, PEER_INDEX, now),
            recv: RecvSession::new(&PEER_SEND_KEY, our_index(), now),
            initiator: true,
        };
        commands
            .push(WgCommand::InstallKeypair {
                peer: 0,
                keypair: Box::new(keypair),
            })
            .map_err(|_| "the command queue is full".to_string())?;
        Ok(WgDataPath::new(
            config,
            routes,
            &[Some(PEER_ENDPOINT)],
            activity,
            commands,
            Forwarder::new(),
        ))
    }
}

/// `encap`'s generator: every offer is the plaintext LAN frame again
/// (encryption rewrote the mbuf). The first transport message back is
/// decrypted with the peer's key, to be sure real encryption is measured.
struct EncapFeed<'a> {
    frame: &'a [u8],
    checked: bool,
}

impl Feed for EncapFeed<'_> {
    fn target<'b>(&self, bed: &'b RingBed) -> &'b Ring {
        &bed.lan_rx
    }

    #[inline]
    fn refill(&mut self, m: &mut Mbuf, fresh: bool) -> Result<(), String> {
        if !fresh && !self.checked {
            self.check(m.data())?;
            self.checked = true;
        }
        m.fill_from(self.frame).map_err(|e| e.to_string())
    }
}

impl EncapFeed<'_> {
    /// `sent` must be a transport message to the peer that decrypts to our
    /// IP packet (its TTL one lower).
    fn check(&self, sent: &[u8]) -> Result<(), String> {
        let outer_len = ethernet::HEADER_LEN + OUTER_IP_UDP_LEN;
        let ip = ipv4::Packet::new_checked(sent.get(ethernet::HEADER_LEN..).unwrap_or_default())
            .map_err(|e| format!("encap sent no IPv4 packet: {e:?}"))?;
        if ip.dst_addr() != *PEER_ENDPOINT.ip() {
            return Err(format!(
                "encap sent to {} instead of the peer",
                ip.dst_addr()
            ));
        }
        let mut message = HeapBuf::from_slice(sent.get(outer_len..).unwrap_or_default(), 0, 0);
        let mut peer_recv = RecvSession::new(&OUR_SEND_KEY, PEER_INDEX, 0);
        match transport::decapsulate(&mut message, &mut peer_recv) {
            Ok(Decapsulated::Packet) => {}
            other => {
                return Err(format!(
                    "the peer cannot decrypt what encap sent: {other:?}"
                ))
            }
        }
        // Past the IP header (TTL and checksum changed), the packet is ours.
        let ip_payload = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
        if message.data().get(ipv4::HEADER_LEN..) != self.frame.get(ip_payload..) {
            return Err("encap's message decrypts to a different packet".into());
        }
        Ok(())
    }
}

/// `decap`'s generator: every offer is the inner packet encrypted afresh
/// with the peer's sending key and the next counter, behind the outer
/// headers. The first packet back must be the inner packet on the LAN.
struct DecapFeed<'a> {
    inner: &'a [u8],
    /// What the LAN must get: the inner packet with its TTL decremented
    /// (leaving the tunnel is a router hop).
    delivered: Vec<u8>,
    outer: &'a [u8],
    peer_send: SendSession,
    checked: bool,
}

impl Feed for DecapFeed<'_> {
    fn target<'b>(&self, bed: &'b RingBed) -> &'b Ring {
        &bed.wan_rx
    }

    #[inline]
    fn refill(&mut self, m: &mut Mbuf, fresh: bool) -> Result<(), String> {
        if !fresh && !self.checked {
            if m.data().get(ethernet::HEADER_LEN..) != Some(&self.delivered[..]) {
                return Err("decap delivered a different packet to the LAN".into());
            }
            self.checked = true;
        }
        m.fill_from(self.inner).map_err(|e| e.to_string())?;
        transport::encapsulate(m, &mut self.peer_send).map_err(|e| format!("{e:?}"))?;
        m.prepend(self.outer.len())
            .map_err(|e| e.to_string())?
            .copy_from_slice(self.outer);
        Ok(())
    }
}
