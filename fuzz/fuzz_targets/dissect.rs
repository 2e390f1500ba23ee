//! Feeds arbitrary bytes to one DPI engine as a sequence of packets over a
//! few flows: every dissector, the reassembly pool and the expectation
//! table see hostile input. The engine must never panic.
//!
//! Input layout: one config byte, then records of a 5-byte header
//! (flow/side/protocol bits, port selector, 16-bit length, sequence
//! jitter) followed by that many payload bytes.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run dissect -- -max_total_time=60`
//! (from `fuzz/`; `seeds/` holds a few real-looking inputs).

#![no_main]

use libfuzzer_sys::fuzz_target;
use patronus_dataplane::dpi::engine::{
    DpiConfig, DpiEngine, FlowDpi, Inspection, PacketView, TcpMeta,
};
use patronus_dataplane::dpi::key::FlowKey;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const PORTS: [u16; 24] = [
    21, 22, 53, 80, 123, 443, 445, 873, 3306, 3389, 3478, 5060, 5353, 5432, 6379, 6881, 19132,
    25565, 27015, 27017, 3074, 8080, 40000, 50001,
];

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, mut rest)) = data.split_first() else {
        return;
    };
    let Ok(mut engine) = DpiEngine::new(DpiConfig {
        max_packets: 1 + cfg % 16,
        reassembly_slots: usize::from(1 + (cfg >> 4) % 4),
        ..DpiConfig::default()
    }) else {
        return;
    };
    let mut flows = [FlowDpi::default(); 4];
    let mut seqs = [[0u32; 2]; 4];
    let mut now = 0u64;
    while let [flags, port_sel, len_hi, len_lo, jitter, tail @ ..] = rest {
        let n = usize::from(u16::from_be_bytes([*len_hi, *len_lo])).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        let f = usize::from(flags & 3);
        let from_client = flags & 4 == 0;
        let proto = if flags & 8 == 0 { 6 } else { 17 };
        let v6 = flags & 16 != 0;
        now += u64::from(flags >> 5) * 1_000_000_000;
        let client: IpAddr = if v6 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, f as u16 + 1))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, f as u8 + 1))
        };
        let server: IpAddr = if v6 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100))
        } else {
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))
        };
        let sport = PORTS[usize::from(*port_sel) % PORTS.len()];
        let cport = 40000 + f as u16;
        let (src, sp, dst, dp) = if from_client {
            (client, cport, server, sport)
        } else {
            (server, sport, client, cport)
        };
        let (_, side) = FlowKey::new(proto, src, sp, dst, dp);
        let dir = usize::from(!from_client);
        // Mostly in order, sometimes shifted back or ahead.
        let seq = seqs[f][dir].wrapping_add(
            u32::from(*jitter).wrapping_sub(128) & if jitter & 1 == 0 { 0 } else { u32::MAX },
        );
        seqs[f][dir] = seq.wrapping_add(n as u32);
        let pkt = PacketView {
            proto,
            src,
            sport: sp,
            dst,
            dport: dp,
            side,
            tcp: (proto == 6).then_some(TcpMeta { seq, flags: 0x18 }),
            payload,
        };
        match engine.inspect(&mut flows[f], &pkt, now) {
            Inspection::Decided { class, hostname } => {
                assert!(class.packets >= 1);
                if let Some(h) = hostname {
                    assert!(!h.is_empty() && h.len() <= 255);
                    assert!(h
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase()));
                }
                let _ = engine.app_name(class.app);
            }
            Inspection::Pending => assert!(!flows[f].is_done()),
            Inspection::Done => assert!(flows[f].is_done()),
        }
        let _ = engine.last_detail();
    }
    for f in &mut flows {
        let class = engine.finish(f, 6, 40000, 443);
        assert!(f.is_done());
        let _ = class;
    }
});
