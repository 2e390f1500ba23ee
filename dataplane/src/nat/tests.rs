//! NAT behaviour on simulated time (a microsecond tick). Packets are built
//! here with full checksums; translated packets are checked by full
//! recomputation and, where possible, compared byte for byte with the
//! packet the other side would have sent without a NAT.

use super::*;
use crate::wire::checksum;
use crate::wire::testdata::XorShift;
use std::net::Ipv4Addr;

const TPS: u64 = 1_000_000;
const SEC: u64 = TPS;
const SECRET: u128 = 0x5eed_0000_0000_0000_0000_0000_0000_1234;

const EXT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const LAN_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const LAN_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const SRV1: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const SRV2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const EST: TcpPhase = TcpPhase::Established;
const TRANS: TcpPhase = TcpPhase::Transitory;

// ---- packet builders (full checksums) ----

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let ck = checksum::data(&p[..20]);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    p[20..].copy_from_slice(payload);
    p
}

fn transport_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, seg: &[u8]) -> u16 {
    let pseudo = checksum::pseudo_header_v4(src, dst, proto, seg.len() as u32);
    !checksum::fold(pseudo + checksum::sum(seg))
}

fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut seg = vec![0u8; 8 + payload.len()];
    seg[0..2].copy_from_slice(&sport.to_be_bytes());
    seg[2..4].copy_from_slice(&dport.to_be_bytes());
    let len = seg.len() as u16;
    seg[4..6].copy_from_slice(&len.to_be_bytes());
    seg[8..].copy_from_slice(payload);
    let ck = match transport_checksum(src, dst, UDP, &seg) {
        0 => 0xffff,
        c => c,
    };
    seg[6..8].copy_from_slice(&ck.to_be_bytes());
    ipv4(src, dst, UDP, &seg)
}

fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut seg = vec![0u8; 20 + payload.len()];
    seg[0..2].copy_from_slice(&sport.to_be_bytes());
    seg[2..4].copy_from_slice(&dport.to_be_bytes());
    seg[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    seg[12] = 5 << 4;
    seg[13] = flags;
    seg[14..16].copy_from_slice(&64240u16.to_be_bytes());
    seg[20..].copy_from_slice(payload);
    let ck = transport_checksum(src, dst, TCP, &seg);
    seg[16..18].copy_from_slice(&ck.to_be_bytes());
    ipv4(src, dst, TCP, &seg)
}

fn icmp(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let ck = checksum::data(&m);
    m[2..4].copy_from_slice(&ck.to_be_bytes());
    ipv4(src, dst, ICMP, &m)
}

fn echo(src: Ipv4Addr, dst: Ipv4Addr, request: bool, id: u16) -> Vec<u8> {
    let [a, b] = id.to_be_bytes();
    let ty = if request { 8 } else { 0 };
    icmp(src, dst, ty, 0, [a, b, 0, 7], b"abcdefghijklmnopqrstuvw")
}

/// Destination unreachable, fragmentation needed, next-hop MTU 1400.
fn frag_needed(src: Ipv4Addr, dst: Ipv4Addr, quote: &[u8]) -> Vec<u8> {
    let [a, b] = 1400u16.to_be_bytes();
    icmp(src, dst, 3, 4, [0, 0, a, b], quote)
}

// ---- readers and checks ----

fn addr_at(p: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3])
}
fn src(p: &[u8]) -> Ipv4Addr {
    addr_at(p, 12)
}
fn dst(p: &[u8]) -> Ipv4Addr {
    addr_at(p, 16)
}
fn word(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}
fn sport(p: &[u8]) -> u16 {
    word(p, 20)
}
fn dport(p: &[u8]) -> u16 {
    word(p, 22)
}
fn echo_id(p: &[u8]) -> u16 {
    word(p, 24)
}

/// Verifies the IP header checksum and the transport checksum by full
/// recomputation (and an ICMP error's quoted IP header).
fn assert_checksums(p: &[u8]) {
    assert_eq!(checksum::data(&p[..20]), 0, "IPv4 header checksum");
    let seg = &p[20..];
    match p[9] {
        TCP => assert_eq!(transport_checksum(src(p), dst(p), TCP, seg), 0, "TCP"),
        UDP if word(seg, 6) != 0 => {
            assert_eq!(transport_checksum(src(p), dst(p), UDP, seg), 0, "UDP")
        }
        ICMP => {
            assert_eq!(checksum::data(seg), 0, "ICMP checksum");
            if matches!(seg[0], 3 | 11 | 12) {
                let q = &seg[8..];
                let qhl = usize::from(q[0] & 15) * 4;
                assert_eq!(checksum::data(&q[..qhl]), 0, "quoted IPv4 header");
            }
        }
        _ => {}
    }
}

fn nat(tweak: impl FnOnce(&mut NatConfig)) -> Nat {
    let mut c = NatConfig::new(EXT, 1, 0, SECRET, TPS);
    c.port_lo = 20000;
    c.port_hi = 29999;
    tweak(&mut c);
    Nat::new(&c).unwrap()
}

fn out(n: &mut Nat, mut p: Vec<u8>, now: u64) -> Vec<u8> {
    assert_eq!(n.outbound(&mut p, EST, now), Ok(Outbound::Translated));
    p
}

fn inb(n: &mut Nat, mut p: Vec<u8>, now: u64) -> Result<Vec<u8>, NatDrop> {
    match n.inbound(&mut p, EST, now) {
        Ok(Inbound::Translated) => Ok(p),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    }
}

// ---- translation ----

#[test]
fn outbound_udp_gets_the_external_source_and_valid_checksums() {
    let mut n = nat(|_| {});
    let p = out(&mut n, udp(LAN_A, 40000, SRV1, 53, b"query"), 0);
    assert_eq!((src(&p), dst(&p), dport(&p)), (EXT, SRV1, 53));
    assert!((20000..=29999).contains(&sport(&p)));
    assert_checksums(&p);
    // Exactly the packet the NAT's own stack would send from that port.
    assert_eq!(p, udp(EXT, sport(&p), SRV1, 53, b"query"));
    assert_eq!(n.stats().outbound, 1);
    assert_eq!(n.stats().created, 1);
}

#[test]
fn outbound_tcp_gets_the_external_source_and_valid_checksums() {
    let mut n = nat(|_| {});
    let mut p = tcp(LAN_A, 51000, SRV1, 443, SYN, b"");
    assert_eq!(n.outbound(&mut p, TRANS, 0), Ok(Outbound::Translated));
    assert_checksums(&p);
    assert_eq!(p, tcp(EXT, sport(&p), SRV1, 443, SYN, b""));
    let p2 = out(
        &mut n,
        tcp(LAN_A, 51000, SRV1, 443, ACK, b"GET / HTTP/1.1\r\n\r"),
        1,
    );
    assert_eq!(sport(&p2), sport(&p));
    assert_checksums(&p2);
}

#[test]
fn outbound_icmp_echo_maps_the_identifier_like_a_port() {
    let mut n = nat(|_| {});
    let p = out(&mut n, echo(LAN_A, SRV1, true, 0x0b2f), 0);
    assert_eq!(src(&p), EXT);
    let id = echo_id(&p);
    assert!((20000..=29999).contains(&id));
    assert_checksums(&p);
    assert_eq!(p, echo(EXT, SRV1, true, id));
    assert_eq!(
        n.mapping_of(NatProto::Icmp, LAN_A.into(), 0x0b2f, 0),
        Some(id)
    );
}

#[test]
fn udp_without_checksum_keeps_a_zero_checksum() {
    let mut n = nat(|_| {});
    let mut p = udp(LAN_A, 40000, SRV1, 53, b"query");
    p[26..28].fill(0);
    let p = out(&mut n, p, 0);
    assert_eq!(word(&p, 26), 0);
    assert_eq!(checksum::data(&p[..20]), 0);
}

#[test]
fn replies_translate_back_to_the_internal_endpoint() {
    let mut n = nat(|_| {});
    let u = out(&mut n, udp(LAN_A, 40000, SRV1, 53, b"q"), 0);
    let t = out(&mut n, tcp(LAN_A, 51000, SRV1, 443, SYN, b""), 0);
    let e = out(&mut n, echo(LAN_A, SRV1, true, 77), 0);

    let back = inb(&mut n, udp(SRV1, 53, EXT, sport(&u), b"answer"), SEC).unwrap();
    assert_eq!(back, udp(SRV1, 53, LAN_A, 40000, b"answer"));
    let back = inb(&mut n, tcp(SRV1, 443, EXT, sport(&t), SYN | ACK, b""), SEC).unwrap();
    assert_eq!(back, tcp(SRV1, 443, LAN_A, 51000, SYN | ACK, b""));
    let back = inb(&mut n, echo(SRV1, EXT, false, echo_id(&e)), SEC).unwrap();
    assert_eq!(back, echo(SRV1, LAN_A, false, 77));
    assert_checksums(&back);
    assert_eq!(n.stats().inbound, 3);
}

#[test]
fn checksums_stay_valid_for_random_endpoints_and_payloads() {
    let mut n = nat(|c| c.filtering = Filtering::EndpointIndependent);
    let mut rng = XorShift(0x4787);
    let mut payload = [0u8; 64];
    for i in 0..2000u64 {
        let len = rng.below(payload.len());
        rng.fill(&mut payload[..len]);
        let lan = Ipv4Addr::from(0x0a00_0000 | rng.next_u32() & 0xffff);
        let srv = Ipv4Addr::from(rng.next_u32() | 1);
        let (sp, dp) = (rng.next_u16() | 1, rng.next_u16() | 1);
        let p = if i % 2 == 0 {
            udp(lan, sp, srv, dp, &payload[..len])
        } else {
            tcp(lan, sp, srv, dp, ACK, &payload[..len])
        };
        let t = out(&mut n, p.clone(), i);
        assert_checksums(&t);
        let reply = if i % 2 == 0 {
            udp(srv, dp, EXT, sport(&t), &payload[..len])
        } else {
            tcp(srv, dp, EXT, sport(&t), ACK, &payload[..len])
        };
        let back = inb(&mut n, reply, i).unwrap();
        assert_checksums(&back);
        assert_eq!((dst(&back), dport(&back)), (lan, sp));
    }
}

// ---- mapping and filtering behaviour ----

#[test]
fn one_internal_endpoint_gets_the_same_external_port_for_every_destination() {
    let mut n = nat(|_| {});
    let a = out(&mut n, udp(LAN_A, 40000, SRV1, 3478, b""), 0);
    let b = out(&mut n, udp(LAN_A, 40000, SRV2, 5000, b""), 1);
    assert_eq!(sport(&a), sport(&b));
    // Another internal endpoint, or another protocol, is another mapping.
    let c = out(&mut n, udp(LAN_B, 40000, SRV1, 3478, b""), 2);
    assert_ne!(sport(&c), sport(&a));
    let d = out(&mut n, udp(LAN_A, 40001, SRV1, 3478, b""), 3);
    assert_ne!(sport(&d), sport(&a));
    assert_eq!(n.table().live(), 3);
}

#[test]
fn address_dependent_filtering_drops_a_sender_from_another_address() {
    let mut n = nat(|_| {});
    let p = out(&mut n, udp(LAN_A, 40000, SRV1, 3478, b""), 0);
    let port = sport(&p);
    // Another port of the same address is admitted.
    assert!(inb(&mut n, udp(SRV1, 9999, EXT, port, b""), 1).is_ok());
    let unsolicited = udp(SRV2, 3478, EXT, port, b"");
    let mut q = unsolicited.clone();
    assert_eq!(n.inbound(&mut q, EST, 2), Err(NatDrop::Filtered));
    assert_eq!(q, unsolicited, "a dropped packet is untouched");
    assert_eq!(n.stats().dropped(NatDrop::Filtered), 1);
}

#[test]
fn address_and_port_dependent_filtering_needs_the_exact_remote_port() {
    let mut n = nat(|c| c.filtering = Filtering::AddressAndPortDependent);
    let port = sport(&out(&mut n, udp(LAN_A, 40000, SRV1, 3478, b""), 0));
    assert!(inb(&mut n, udp(SRV1, 3478, EXT, port, b""), 1).is_ok());
    assert_eq!(
        inb(&mut n, udp(SRV1, 3479, EXT, port, b""), 2),
        Err(NatDrop::Filtered)
    );
}

#[test]
fn endpoint_independent_filtering_accepts_any_sender() {
    let mut n = nat(|c| c.filtering = Filtering::EndpointIndependent);
    let port = sport(&out(&mut n, udp(LAN_A, 40000, SRV1, 3478, b""), 0));
    let back = inb(&mut n, udp(SRV2, 1234, EXT, port, b"hi"), 1).unwrap();
    assert_eq!(back, udp(SRV2, 1234, LAN_A, 40000, b"hi"));
}

#[test]
fn filtering_remembers_the_last_four_remotes_of_a_mapping() {
    let mut n = nat(|_| {});
    let remote = |i: u8| Ipv4Addr::new(203, 0, 113, 100 + i);
    let mut port = 0;
    for i in 0..5 {
        port = sport(&out(
            &mut n,
            udp(LAN_A, 40000, remote(i), 53, b""),
            u64::from(i),
        ));
    }
    // Remote 0 was overwritten by remote 4; 1..=4 are remembered.
    assert_eq!(
        inb(&mut n, udp(remote(0), 53, EXT, port, b""), 10),
        Err(NatDrop::Filtered)
    );
    for i in 1..5 {
        assert!(inb(&mut n, udp(remote(i), 53, EXT, port, b""), 10).is_ok());
    }
}

#[test]
fn hairpinning_is_refused_and_counted() {
    let mut n = nat(|_| {});
    let port = sport(&out(&mut n, udp(LAN_A, 40000, SRV1, 53, b""), 0));
    let mut p = udp(LAN_B, 40000, EXT, port, b"");
    assert_eq!(n.outbound(&mut p, EST, 1), Err(NatDrop::Hairpin));
    let mut p = echo(LAN_B, EXT, true, 5);
    assert_eq!(n.outbound(&mut p, EST, 1), Err(NatDrop::Hairpin));
    assert_eq!(n.stats().dropped(NatDrop::Hairpin), 2);
    assert_eq!(n.table().live(), 1);
}

#[test]
fn inbound_not_addressed_to_the_external_address_is_not_ours() {
    let mut n = nat(|_| {});
    let mut p = udp(SRV1, 53, LAN_A, 40000, b"");
    assert_eq!(n.inbound(&mut p, EST, 0), Ok(Inbound::NotOurs));
    assert_eq!(n.stats().dropped_total(), 0);
}

// ---- port partitioning among workers ----

#[test]
fn worker_port_slices_never_overlap_and_owner_of_agrees_with_allocation() {
    const WORKERS: u16 = 3;
    let mut nats: Vec<Nat> = (0..WORKERS)
        .map(|w| {
            let mut c = NatConfig::new(EXT, WORKERS, w, SECRET, TPS);
            c.port_lo = 20000;
            c.port_hi = 20299;
            c.max_probes = 1000;
            Nat::new(&c).unwrap()
        })
        .collect();
    let mut owner_of_port = vec![None; 65536];
    let (mut handoffs, mut exhausted) = (0, 0);
    // Packets arrive on the workers round-robin (as RSS would spread
    // them); a non-owner hands the packet, untouched, to the owner.
    for i in 0..600u16 {
        let original = udp(LAN_A, 1000 + i, SRV1, 53, b"");
        let mut p = original.clone();
        let mut w = usize::from(i % WORKERS);
        let mut r = nats[w].outbound(&mut p, EST, 0);
        if let Ok(Outbound::HandOff { worker }) = r {
            assert_eq!(p, original);
            assert_ne!(usize::from(worker), w);
            handoffs += 1;
            w = usize::from(worker);
            r = nats[w].outbound(&mut p, EST, 0);
        }
        match r {
            Ok(Outbound::Translated) => {
                let port = sport(&p);
                assert_eq!(owner_of_port[usize::from(port)], None, "{port} twice");
                owner_of_port[usize::from(port)] = Some(w);
                for n in &nats {
                    assert_eq!(n.owner_of(port), Some(w as u16));
                }
            }
            Err(NatDrop::PortExhausted) => exhausted += 1,
            r => panic!("{r:?}"),
        }
    }
    assert!(handoffs > 300, "{handoffs}");
    // Every port of the range was handed out once, by its owner; the
    // rest found their owner's slice full.
    assert_eq!(owner_of_port.iter().flatten().count(), 300);
    assert_eq!(exhausted, 300);
    for n in &nats {
        assert_eq!(n.table().live(), 100);
    }
}

#[test]
fn inbound_to_another_workers_port_is_handed_to_it_untouched() {
    let mk = |w| {
        let mut c = NatConfig::new(EXT, 2, w, SECRET, TPS);
        c.port_lo = 20000;
        c.port_hi = 29999;
        Nat::new(&c).unwrap()
    };
    let (mut w0, mut w1) = (mk(0), mk(1));
    // Find an endpoint worker 1 owns and map it there.
    let lan_port = (1000..)
        .find(|&p| w0.internal_owner(NatProto::Udp, LAN_A.into(), p) == 1)
        .unwrap();
    let mut p = udp(LAN_A, lan_port, SRV1, 53, b"");
    assert_eq!(
        w0.outbound(&mut p, EST, 0),
        Ok(Outbound::HandOff { worker: 1 })
    );
    let port = sport(&out(&mut w1, p, 0));
    assert_eq!(port % 2, 1);
    // The reply reaches worker 0 (RSS); it names worker 1 by the port.
    let reply = udp(SRV1, 53, EXT, port, b"a");
    let mut r = reply.clone();
    assert_eq!(
        w0.inbound(&mut r, EST, 1),
        Ok(Inbound::HandOff { worker: 1 })
    );
    assert_eq!(r, reply);
    assert_eq!(w0.stats().dropped_total(), 0);
    let back = inb(&mut w1, r, 1).unwrap();
    assert_eq!(back, udp(SRV1, 53, LAN_A, lan_port, b"a"));
}

#[test]
fn port_exhaustion_is_counted_and_leaves_the_packet_untouched() {
    let mut n = nat(|c| {
        c.port_lo = 20000;
        c.port_hi = 20007;
    });
    for i in 0..8 {
        out(&mut n, udp(LAN_A, 1000 + i, SRV1, 53, b""), 0);
    }
    let original = udp(LAN_A, 2000, SRV1, 53, b"");
    let mut p = original.clone();
    assert_eq!(n.outbound(&mut p, EST, 0), Err(NatDrop::PortExhausted));
    assert_eq!(p, original);
    assert_eq!(n.stats().dropped(NatDrop::PortExhausted), 1);
    // Other protocols have their own port space.
    out(&mut n, tcp(LAN_A, 2000, SRV1, 80, SYN, b""), 0);
    // Once a mapping idles out its port is reused.
    let later = 301 * SEC;
    let p = out(&mut n, original, later);
    assert!((20000..=20007).contains(&sport(&p)));
    assert_eq!(n.stats().expired, 1);
}

#[test]
fn the_mapping_limit_is_counted_as_table_full() {
    let mut n = nat(|c| c.max_mappings = 3);
    for i in 0..3 {
        out(&mut n, udp(LAN_A, 1000 + i, SRV1, 53, b""), 0);
    }
    let mut p = echo(LAN_A, SRV1, true, 1);
    assert_eq!(n.outbound(&mut p, EST, 0), Err(NatDrop::TableFull));
    assert_eq!(n.stats().dropped(NatDrop::TableFull), 1);
    // A known endpoint still translates.
    out(&mut n, udp(LAN_A, 1000, SRV2, 53, b""), 0);
}

#[test]
fn reserved_ports_of_the_node_are_never_handed_out() {
    let mut n = nat(|c| {
        c.port_lo = 51820;
        c.port_hi = 51822;
        c.reserved = vec![(NatProto::Udp, 51820), (NatProto::Udp, 51821)];
    });
    let p = out(&mut n, udp(LAN_A, 1, SRV1, 53, b""), 0);
    assert_eq!(sport(&p), 51822);
    let mut p = udp(LAN_A, 2, SRV1, 53, b"");
    assert_eq!(n.outbound(&mut p, EST, 0), Err(NatDrop::PortExhausted));
    // TCP 51820 is not reserved.
    out(&mut n, tcp(LAN_A, 2, SRV1, 80, SYN, b""), 0);
}

// ---- timeouts and expiry ----

/// Maps one endpoint of each kind at 0 and checks it is alive just before
/// its timeout and gone just after (without refreshing it).
#[test]
fn mappings_expire_after_their_protocols_idle_timeout() {
    let cases: [(NatProto, u16, Vec<u8>, TcpPhase, u64); 4] = [
        (
            NatProto::Udp,
            40000,
            udp(LAN_A, 40000, SRV1, 53, b""),
            EST,
            300,
        ),
        (NatProto::Icmp, 9, echo(LAN_A, SRV1, true, 9), EST, 60),
        (
            NatProto::Tcp,
            50000,
            tcp(LAN_A, 50000, SRV1, 443, SYN, b""),
            TRANS,
            240,
        ),
        (
            NatProto::Tcp,
            50001,
            tcp(LAN_A, 50001, SRV1, 443, ACK, b""),
            EST,
            7440,
        ),
    ];
    for (proto, port, pkt, phase, timeout) in cases {
        let mut n = nat(|_| {});
        let mut p = pkt;
        assert_eq!(n.outbound(&mut p, phase, 0), Ok(Outbound::Translated));
        let lan: u32 = LAN_A.into();
        assert!(
            n.mapping_of(proto, lan, port, (timeout - 1) * SEC)
                .is_some(),
            "{proto:?} {timeout}"
        );
        assert_eq!(n.mapping_of(proto, lan, port, (timeout + 1) * SEC), None);
        // The reply is refused too, and the sweep removes the mapping.
        let reply = match proto {
            NatProto::Udp => udp(SRV1, 53, EXT, sport(&p), b""),
            NatProto::Icmp => echo(SRV1, EXT, false, echo_id(&p)),
            NatProto::Tcp => tcp(SRV1, 443, EXT, sport(&p), ACK, b""),
        };
        assert_eq!(
            inb(&mut n, reply, (timeout + 1) * SEC),
            Err(NatDrop::NoMapping)
        );
        assert_eq!(n.expire((timeout - 1) * SEC, 100_000), 0);
        assert_eq!(n.expire((timeout + 1) * SEC, 100_000), 1);
        assert_eq!(n.table().live(), 0);
        assert_eq!(n.stats().expired, 1);
    }
}

#[test]
fn a_fin_or_rst_moves_an_established_tcp_mapping_to_the_transitory_timeout() {
    let mut n = nat(|_| {});
    let lan: u32 = LAN_A.into();
    let mut p = tcp(LAN_A, 50000, SRV1, 443, ACK, b"");
    n.outbound(&mut p, EST, 0).unwrap();
    let mut fin = tcp(SRV1, 443, EXT, sport(&p), 0x11, b"");
    assert_eq!(
        n.inbound(&mut fin, TcpPhase::from_flags(0x11), 1000 * SEC),
        Ok(Inbound::Translated)
    );
    assert!(n
        .mapping_of(NatProto::Tcp, lan, 50000, 1239 * SEC)
        .is_some());
    assert_eq!(n.mapping_of(NatProto::Tcp, lan, 50000, 1241 * SEC), None);
    assert_eq!(
        TcpPhase::from_conntrack(crate::fw::tcp_state::TcpState::Established),
        EST
    );
    assert_eq!(
        TcpPhase::from_conntrack(crate::fw::tcp_state::TcpState::FinWait),
        TRANS
    );
}

#[test]
fn outbound_traffic_keeps_a_mapping_alive_on_the_same_port() {
    let mut n = nat(|_| {});
    let first = sport(&out(&mut n, udp(LAN_A, 40000, SRV1, 53, b""), 0));
    for t in 1..=20 {
        let p = out(&mut n, udp(LAN_A, 40000, SRV1, 53, b""), t * 100 * SEC);
        assert_eq!(sport(&p), first);
        n.expire(t * 100 * SEC, 100_000);
    }
    assert_eq!(n.stats().created, 1);
    assert_eq!(n.stats().expired, 0);
}

#[test]
fn a_mapping_restarted_after_expiry_forgets_its_remotes() {
    let mut n = nat(|_| {});
    out(&mut n, udp(LAN_A, 40000, SRV1, 53, b""), 0);
    // Idle past the timeout but not swept: the next outbound packet starts
    // a new mapping, to SRV2 only.
    let port = sport(&out(&mut n, udp(LAN_A, 40000, SRV2, 53, b""), 400 * SEC));
    assert_eq!(
        inb(&mut n, udp(SRV1, 53, EXT, port, b""), 401 * SEC),
        Err(NatDrop::Filtered)
    );
    assert!(inb(&mut n, udp(SRV2, 53, EXT, port, b""), 401 * SEC).is_ok());
    assert_eq!(n.stats().created, 2);
}

// ---- ICMP errors ----

/// A router in the middle answers an outbound packet with "fragmentation
/// needed", quoting `quote_len` bytes of the packet as it left the NAT
/// (None: all of it). After translation the error must be exactly the one
/// the router would have sent the LAN host without a NAT.
fn check_frag_needed_round_trip(n: &mut Nat, original: Vec<u8>, quote_len: Option<usize>) {
    let wire = out(n, original.clone(), 0);
    let len = quote_len.unwrap_or(wire.len());
    let mut err = frag_needed(ROUTER, EXT, &wire[..len]);
    assert_eq!(n.inbound(&mut err, EST, SEC), Ok(Inbound::Translated));
    assert_checksums(&err);
    assert_eq!(err, frag_needed(ROUTER, LAN_A, &original[..len]));
}

#[test]
fn frag_needed_from_a_router_in_the_middle_is_translated_with_valid_checksums() {
    let mut n = nat(|_| {});
    // Whole quotes (RFC 1812 routers quote up to 576 bytes), so the quoted
    // TCP and UDP checksums are rewritten too; odd lengths pad the ICMP sum.
    check_frag_needed_round_trip(&mut n, tcp(LAN_A, 51000, SRV1, 443, ACK, &[7; 101]), None);
    check_frag_needed_round_trip(&mut n, udp(LAN_A, 40000, SRV1, 4500, &[9; 33]), None);
    check_frag_needed_round_trip(&mut n, echo(LAN_A, SRV1, true, 0x77), None);
    // RFC 792 minimum quotes: IP header + 8 bytes (no TCP checksum in it).
    check_frag_needed_round_trip(&mut n, tcp(LAN_A, 51001, SRV1, 443, ACK, b"x"), Some(28));
    check_frag_needed_round_trip(&mut n, udp(LAN_A, 40001, SRV1, 4500, b"y"), Some(28));
    assert_eq!(n.stats().icmp_errors, 5);
}

#[test]
fn quoted_udp_without_checksum_keeps_a_zero_checksum() {
    let mut n = nat(|_| {});
    let mut original = udp(LAN_A, 40000, SRV1, 53, b"q");
    original[26..28].fill(0);
    check_frag_needed_round_trip(&mut n, original, None);
}

#[test]
fn time_exceeded_and_port_unreachable_are_translated_too() {
    let mut n = nat(|_| {});
    let wire = out(&mut n, udp(LAN_A, 33434, SRV1, 33435, b"trace"), 0);
    let original = udp(LAN_A, 33434, SRV1, 33435, b"trace");
    // A traceroute hop, and the destination's port unreachable.
    let mut te = icmp(ROUTER, EXT, 11, 0, [0; 4], &wire);
    assert_eq!(n.inbound(&mut te, EST, 1), Ok(Inbound::Translated));
    assert_eq!(te, icmp(ROUTER, LAN_A, 11, 0, [0; 4], &original));
    let mut pu = icmp(SRV1, EXT, 3, 3, [0; 4], &wire);
    assert_eq!(n.inbound(&mut pu, EST, 1), Ok(Inbound::Translated));
    assert_eq!(pu, icmp(SRV1, LAN_A, 3, 3, [0; 4], &original));
}

#[test]
fn icmp_errors_refresh_no_mapping() {
    let mut n = nat(|_| {});
    let wire = out(&mut n, udp(LAN_A, 40000, SRV1, 53, b""), 0);
    let lan: u32 = LAN_A.into();
    let mut err = frag_needed(ROUTER, EXT, &wire);
    n.inbound(&mut err, EST, 299 * SEC).unwrap();
    assert_eq!(n.mapping_of(NatProto::Udp, lan, 40000, 301 * SEC), None);
}

#[test]
fn spoofed_icmp_errors_with_no_mapping_are_dropped_and_counted() {
    let mut n = nat(|_| {});
    let wire = out(&mut n, udp(LAN_A, 40000, SRV1, 53, b""), 0);
    let port = sport(&wire);
    // A quote of a packet we never sent: a port with no mapping.
    let forged = udp(EXT, port ^ 1, SRV1, 53, b"");
    // A quote from the right port but to a remote the mapping never
    // contacted (address-dependent filtering).
    let wrong_remote = udp(EXT, port, SRV2, 53, b"");
    // A quote whose source is not the external address.
    let not_ours = udp(LAN_B, port, SRV1, 53, b"");
    // An error about an ICMP error.
    let nested = frag_needed(SRV1, EXT, &wire);
    for quote in [forged, wrong_remote, not_ours, nested] {
        let original = frag_needed(ROUTER, EXT, &quote);
        let mut p = original.clone();
        assert_eq!(
            n.inbound(&mut p, EST, SEC),
            Err(NatDrop::IcmpErrorUnmatched)
        );
        assert_eq!(p, original);
    }
    // No quote at all.
    let mut bare = icmp(ROUTER, EXT, 3, 1, [0; 4], &[]);
    assert_eq!(
        n.inbound(&mut bare, EST, SEC),
        Err(NatDrop::IcmpErrorUnmatched)
    );
    assert_eq!(n.stats().dropped(NatDrop::IcmpErrorUnmatched), 5);
    assert_eq!(n.stats().icmp_errors, 0);
}

#[test]
fn an_icmp_error_from_the_lan_about_an_inbound_packet_is_translated() {
    let mut n = nat(|_| {});
    let port = sport(&out(&mut n, udp(LAN_A, 40000, SRV1, 53, b""), 0));
    // SRV1 sends to the mapping; LAN_A's stack answers port unreachable.
    let sent = udp(SRV1, 53, EXT, port, b"late answer");
    let delivered = inb(&mut n, sent.clone(), 1).unwrap();
    let mut err = icmp(LAN_A, SRV1, 3, 3, [0; 4], &delivered);
    assert_eq!(n.outbound(&mut err, EST, 2), Ok(Outbound::Translated));
    assert_checksums(&err);
    // SRV1 sees the error about the packet it sent, from the NAT.
    assert_eq!(err, icmp(EXT, SRV1, 3, 3, [0; 4], &sent));
    // Without a mapping: dropped.
    let mut err = icmp(LAN_B, SRV1, 3, 3, [0; 4], &udp(SRV1, 53, LAN_B, 1, b""));
    assert_eq!(
        n.outbound(&mut err, EST, 2),
        Err(NatDrop::IcmpErrorUnmatched)
    );
}

// ---- fragments, other protocols, garbage ----

#[test]
fn non_first_fragments_get_the_external_source_outbound_and_are_dropped_inbound() {
    let mut n = nat(|_| {});
    let mut frag = udp(LAN_A, 40000, SRV1, 53, &[1; 40]);
    frag[6..8].copy_from_slice(&(185u16).to_be_bytes()); // offset 1480
    frag[10..12].fill(0);
    let ck = checksum::data(&frag[..20]);
    frag[10..12].copy_from_slice(&ck.to_be_bytes());
    let payload = frag[20..].to_vec();
    let mut p = frag.clone();
    assert_eq!(n.outbound(&mut p, EST, 0), Ok(Outbound::Translated));
    assert_eq!(src(&p), EXT);
    assert_eq!(checksum::data(&p[..20]), 0);
    assert_eq!(&p[20..], &payload[..], "payload untouched");
    assert_eq!(n.table().live(), 0);
    let mut back = p.clone();
    back[12..16].copy_from_slice(&SRV1.octets());
    back[16..20].copy_from_slice(&EXT.octets());
    assert_eq!(n.inbound(&mut back, EST, 0), Err(NatDrop::Fragment));
}

#[test]
fn ipv6_and_other_protocols_are_unsupported() {
    let mut n = nat(|_| {});
    let mut v6 = vec![0x60; 60];
    assert_eq!(n.outbound(&mut v6, EST, 0), Err(NatDrop::Unsupported));
    let mut gre = ipv4(LAN_A, SRV1, 47, &[0; 8]);
    assert_eq!(n.outbound(&mut gre, EST, 0), Err(NatDrop::Unsupported));
    let mut ping_to_us = echo(SRV1, EXT, true, 1);
    assert_eq!(
        n.inbound(&mut ping_to_us, EST, 0),
        Err(NatDrop::Unsupported)
    );
    let mut short_tcp = ipv4(LAN_A, SRV1, TCP, &[0; 12]);
    assert_eq!(n.outbound(&mut short_tcp, EST, 0), Err(NatDrop::Malformed));
    assert_eq!(n.stats().dropped(NatDrop::Unsupported), 3);
    assert_eq!(n.stats().dropped(NatDrop::Malformed), 1);
}

/// Random buffers, and valid packets with random bytes changed, through
/// both directions: no panic, and every call ends in exactly one counted
/// outcome.
#[test]
fn random_and_mutated_packets_never_panic_and_are_each_counted_once() {
    let mut n = nat(|c| c.filtering = Filtering::EndpointIndependent);
    let mut rng = XorShift(0x5508);
    // Live mappings, so that replies and errors about them translate.
    let u = out(&mut n, udp(LAN_A, 40000, SRV1, 53, b"q"), 0);
    let t = out(&mut n, tcp(LAN_A, 51000, SRV1, 443, ACK, b"data"), 0);
    let seeds = [
        udp(LAN_A, 40000, SRV1, 53, b"q"),
        tcp(LAN_A, 51000, SRV1, 443, ACK, b"data"),
        echo(LAN_A, SRV1, true, 3),
        udp(SRV1, 53, EXT, sport(&u), b"a"),
        tcp(SRV1, 443, EXT, sport(&t), ACK, b"reply"),
        frag_needed(ROUTER, EXT, &u),
        frag_needed(ROUTER, EXT, &t),
        icmp(LAN_A, SRV1, 3, 3, [0; 4], &udp(SRV1, 53, LAN_A, 40000, b"")),
    ];
    let (mut ok_out, mut ok_in, mut errors, mut other) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..100_000u64 {
        let mut p = if i % 2 == 0 {
            let mut b = vec![0u8; rng.below(80)];
            rng.fill(&mut b);
            if !b.is_empty() && rng.below(2) == 0 {
                b[0] = 0x45;
            }
            b
        } else {
            let mut b = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(b.len());
                b[at] = rng.next_u8();
            }
            if rng.below(4) == 0 {
                b.truncate(rng.below(b.len()));
            }
            b
        };
        let phase = if rng.below(2) == 0 { EST } else { TRANS };
        if rng.below(2) == 0 {
            match n.outbound(&mut p, phase, i) {
                Ok(Outbound::Translated) => ok_out += 1,
                Ok(Outbound::HandOff { .. }) => other += 1,
                Err(_) => errors += 1,
            }
        } else {
            match n.inbound(&mut p, phase, i) {
                Ok(Inbound::Translated) => ok_in += 1,
                Ok(_) => other += 1,
                Err(_) => errors += 1,
            }
        }
        if i % 10_000 == 0 {
            n.expire(i, 1000);
        }
    }
    let s = n.stats();
    assert_eq!(s.outbound, ok_out + 2);
    assert_eq!(s.inbound, ok_in);
    assert_eq!(s.dropped_total(), errors);
    assert_eq!(ok_out + ok_in + errors + other, 100_000);
    // Both kinds of outcome happened, so the inputs reached deep.
    assert!(ok_out > 1000 && ok_in > 100 && errors > 10_000, "{s:?}");
    n.table().check_index();
}

/// Unsolicited packets to random ports of the external address: one slot
/// read each (no index probe), no mapping created, each counted.
#[test]
fn a_wan_flood_to_random_ports_costs_one_lookup_each_and_creates_no_state() {
    let mut n = nat(|_| {});
    for i in 0..100 {
        out(&mut n, udp(LAN_A, 1000 + i, SRV1, 53, b""), 0);
    }
    let live = n.table().live();
    let created = n.stats().created;
    let mut rng = XorShift(0xf100d);
    let reads_before = n.table().reads.get();
    const FLOOD: u64 = 100_000;
    for i in 0..FLOOD {
        let from = Ipv4Addr::from(rng.next_u32() | 1);
        let port = 20000 + rng.next_u16() % 10000;
        let mut p = if i % 2 == 0 {
            udp(from, 53, EXT, port, b"")
        } else {
            tcp(from, 80, EXT, port, SYN, b"")
        };
        let r = n.inbound(&mut p, TRANS, SEC);
        assert!(
            matches!(r, Err(NatDrop::NoMapping) | Err(NatDrop::Filtered)),
            "{r:?}"
        );
    }
    assert_eq!(n.table().reads.get() - reads_before, FLOOD);
    assert_eq!(n.table().live(), live);
    assert_eq!(n.stats().created, created);
    let s = n.stats();
    assert_eq!(
        s.dropped(NatDrop::NoMapping) + s.dropped(NatDrop::Filtered),
        FLOOD
    );
    assert!(s.dropped(NatDrop::NoMapping) > FLOOD * 9 / 10);
}

#[test]
fn icmp_errors_with_a_bad_icmp_or_quoted_ip_checksum_are_dropped_as_malformed() {
    let mut n = nat(|_| {});
    let wire = out(&mut n, udp(LAN_A, 40000, SRV1, 53, b"q"), 0);
    let good = frag_needed(ROUTER, EXT, &wire);
    // The ICMP checksum (20 + 2), and the quoted header's TTL without its
    // checksum fixed (20 + 8 + 8), which the ICMP checksum then covers.
    let mut bad_icmp = good.clone();
    bad_icmp[22] ^= 0x40;
    let mut bad_quote = good.clone();
    bad_quote[36] ^= 1;
    let m = icmp(ROUTER, EXT, 3, 4, [0, 0, 0x05, 0x78], &bad_quote[28..]);
    for mut p in [bad_icmp, m] {
        let original = p.clone();
        assert_eq!(n.inbound(&mut p, EST, 1), Err(NatDrop::Malformed));
        assert_eq!(p, original);
    }
    let mut p = good;
    assert_eq!(n.inbound(&mut p, EST, 1), Ok(Inbound::Translated));
}
