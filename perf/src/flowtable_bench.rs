//! `flowtable`: the DPI flow table on one core, no DPDK.
//!
//! Each round fills an empty table of `--flows` capacity with `--flows`
//! random flows (inserts per second into an empty table), then looks up
//! random flows of those for `--seconds` in bursts of 32, the way the
//! worker does: build each packet's key and hash, prefetch the burst, look
//! up or insert each, and advance the expiry sweep by one bucket. The same
//! loop on a 4096-flow table, whose 260 KB stay in L2, is the in-cache
//! baseline of the same run. The key building and hashing alone are timed
//! too, as they are part of both rates.

use crate::{inproc, Args};
use patronus_dataplane::dpi::engine::FlowDpi;
use patronus_dataplane::dpi::flowtable::{
    bytes_per_slot_x10, EntryKind, FlowTable, FlowTableConfig, BUCKET_SLOTS,
};
use patronus_dataplane::dpi::key::FlowKey;
use serde_json::json;
use std::hint::black_box;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

const BURST: usize = 32;
const HOT_FLOWS: usize = 4096;
/// Bursts between two reads of the clock.
const CHECK_EVERY: u64 = 16;
const WARMUP: Duration = Duration::from_millis(200);

/// Flow `i`'s key: random-looking addresses and ports, one flow in four
/// IPv6, one in three TCP. Built directly (one multiply, a few stores)
/// rather than through `FlowKey::new`, so the harness costs little next to
/// the table; distinct `i` give distinct keys (`i * odd` is a bijection).
fn flow_key(i: u64) -> FlowKey {
    let a = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut key = FlowKey {
        proto: if i.is_multiple_of(3) { 6 } else { 17 },
        lo_port: (a >> 16) as u16,
        hi_port: 443,
        ..FlowKey::default()
    };
    if i.is_multiple_of(4) {
        key.lo_addr[..8].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0]);
        key.lo_addr[8..].copy_from_slice(&a.to_be_bytes());
        key.hi_addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1).octets();
    } else {
        key.lo_addr = V4_MAPPED;
        key.lo_addr[12..].copy_from_slice(&(a as u32).to_be_bytes());
        key.hi_addr = V4_MAPPED;
        key.hi_addr[12..].copy_from_slice(&((a >> 32) as u32).to_be_bytes());
    }
    key
}

/// `::ffff:0.0.0.0`.
const V4_MAPPED: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0];

/// splitmix64's finaliser.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn new_table(flows: usize) -> Result<FlowTable<FlowDpi>, String> {
    FlowTable::new(&FlowTableConfig {
        capacity: flows,
        ticks_per_second: 1000,
        // Nothing idles out during the benchmark; the sweep still runs.
        tcp_idle_timeout: u64::MAX,
        other_idle_timeout: u64::MAX,
    })
    .map_err(|e| e.to_string())
}

/// Fills `table` with flows `0..flows`; returns inserts per second.
fn fill(table: &mut FlowTable<FlowDpi>, flows: usize) -> f64 {
    let mut keys = [FlowKey::default(); BURST];
    let mut hashes = [0u64; BURST];
    let start = Instant::now();
    let mut i = 0;
    while i < flows {
        let n = BURST.min(flows - i);
        for j in 0..n {
            keys[j] = flow_key((i + j) as u64);
            hashes[j] = keys[j].hash64();
        }
        table.lookup_or_insert_burst(&keys[..n], &hashes[..n], 0, |_, e| {
            e.value.inspected = 1;
        });
        i += n;
    }
    flows as f64 / start.elapsed().as_secs_f64()
}

/// What one lookup loop measured.
struct Rate {
    per_second: f64,
    hits: u64,
    lookups: u64,
}

/// Random lookups of flows `0..flows` in bursts for `seconds` (after a
/// warm-up); with `table` None, only the keys and hashes are built.
fn lookups(
    mut table: Option<&mut FlowTable<FlowDpi>>,
    flows: usize,
    seconds: f64,
    seed: u64,
) -> Rate {
    let mut keys = [FlowKey::default(); BURST];
    let mut hashes = [0u64; BURST];
    let mut rng = seed;
    let mut now = 0u64;
    let mut hits = 0u64;
    let mut lookups = 0u64;
    let mut measure = |until: Instant, count: bool| {
        let mut bursts = 0u64;
        loop {
            for j in 0..BURST {
                rng = mix(rng);
                keys[j] = flow_key(((rng >> 32) * flows as u64) >> 32);
                hashes[j] = keys[j].hash64();
            }
            now += 1;
            match table.as_deref_mut() {
                Some(t) => {
                    t.lookup_or_insert_burst(&keys, &hashes, now, |_, e| {
                        if count && matches!(e.kind, EntryKind::Hit) {
                            hits += 1;
                        }
                        e.value.inspected = e.value.inspected.wrapping_add(1);
                    });
                    t.expire(now, 1);
                }
                None => {
                    black_box((&keys, &hashes));
                }
            }
            bursts += 1;
            if bursts.is_multiple_of(CHECK_EVERY) && Instant::now() >= until {
                return bursts;
            }
        }
    };
    measure(Instant::now() + WARMUP, false);
    let start = Instant::now();
    let bursts = measure(start + Duration::from_secs_f64(seconds), true);
    let elapsed = start.elapsed().as_secs_f64();
    lookups += bursts * BURST as u64;
    Rate {
        per_second: lookups as f64 / elapsed,
        hits,
        lookups,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(args: &Args) -> Result<serde_json::Value, String> {
    let flows = args.flows.unwrap_or(1_000_000) as usize;
    let seconds = args.seconds;
    let rounds = args.rounds;
    let core = args.worker_core;
    eprintln!(
        "patronus-bench: flowtable: {flows} flows, {rounds} rounds of {seconds:.1} s on CPU {core}..."
    );
    inproc::on_core(core, move || {
        let mut inserts = Vec::new();
        let mut big = Vec::new();
        let mut hot = Vec::new();
        let mut keygen = Vec::new();
        let mut hit_ratio = Vec::new();
        let (mut capacity, mut memory, mut held, mut evictions) = (0, 0, 0, 0);
        for round in 1..=rounds {
            let mut table = new_table(flows)?;
            let ins = fill(&mut table, flows);
            capacity = table.capacity();
            memory = table.memory_bytes();
            held = table.len();
            evictions = table.stats().evictions;
            let r = lookups(Some(&mut table), flows, seconds, u64::from(round));
            drop(table);
            let mut small = new_table(HOT_FLOWS)?;
            fill(&mut small, HOT_FLOWS);
            let h = lookups(Some(&mut small), HOT_FLOWS, seconds, u64::from(round));
            let k = lookups(None, flows, seconds, u64::from(round));
            eprintln!(
                "patronus-bench: flowtable round {round}: {:.2} M inserts/s, {:.2} M lookups/s \
                 ({} flows, {:.3}% hits), {:.2} M lookups/s ({HOT_FLOWS} flows), \
                 keys alone {:.2} M/s",
                ins / 1e6,
                r.per_second / 1e6,
                flows,
                r.hits as f64 / r.lookups.max(1) as f64 * 100.0,
                h.per_second / 1e6,
                k.per_second / 1e6,
            );
            inserts.push(ins);
            big.push(r.per_second);
            hot.push(h.per_second);
            keygen.push(k.per_second);
            hit_ratio.push(r.hits as f64 / r.lookups.max(1) as f64);
        }
        let (lookups_ps, hot_ps) = (median(big), median(hot));
        Ok(json!({
            "scenario": "flowtable",
            "flows": flows,
            "capacity": capacity,
            "bucket_slots": BUCKET_SLOTS,
            "value_bytes": std::mem::size_of::<FlowDpi>(),
            "memory_bytes": memory,
            "bytes_per_flow": memory as f64 / capacity as f64,
            "bytes_per_flow_16_byte_value": bytes_per_slot_x10::<[u64; 2]>() as f64 / 10.0,
            "held_after_fill": held,
            "evictions_during_fill": evictions,
            "inserts_per_second": median(inserts),
            "lookups_per_second": lookups_ps,
            "lookup_hit_ratio": median(hit_ratio),
            "hot_flows": HOT_FLOWS,
            "hot_lookups_per_second": hot_ps,
            "ratio_vs_hot": lookups_ps / hot_ps,
            "keygen_per_second": median(keygen),
            "burst": BURST,
            "rounds": rounds,
            "seconds": seconds,
            "worker_core": core,
        }))
    })
}
