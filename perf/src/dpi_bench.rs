//! `dpi FILE`: packets per second classifying a capture on one core, with
//! nDPI's ndpiReader timed on the same capture in the same run as the
//! reference.
//!
//! Ours: the capture is read into memory once; each pass then parses every
//! record (container and link layer), looks its flow up in a fresh hash
//! map and calls the engine until the flow is decided, exactly what
//! `patronus dpi` does minus the output. Passes repeat for `--seconds`.
//! A second figure times the engine alone, on views parsed beforehand.
//!
//! nDPI: ndpiReader's start-up (protocol tables, automata: ~30 ms, redone
//! on every pass of its loop option) dwarfs a small capture, so each round
//! runs it twice with the same loop count L (`-l L -q`): over the capture,
//! and over an empty capture (a bare pcap header). The difference is the
//! time of L passes of packet work: nDPI's rate is L × packets over it.
//! Both read from the page cache and print nothing.
//!
//! A small capture would drown nDPI's packet work in that start-up, so a
//! capture of fewer than `TARGET_PACKETS` packets is first replicated: its
//! Ethernet/IPv4 records are written again and again into a temporary
//! pcap, each copy with its addresses moved to their own /16s (second and
//! third octets = the copy number, IP checksum refilled) and its times
//! shifted past the previous copy, so every copy is a new set of flows
//! with the same payloads. Both engines classify that same file.

use crate::Args;
use patronus_dataplane::dpi::capture::{self, Record};
use patronus_dataplane::dpi::engine::{DpiConfig, DpiEngine, FlowDpi, Inspection, PacketView};
use patronus_dataplane::dpi::key::FlowKey;
use patronus_dataplane::wire::ipv4;
use serde_json::json;
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// One pass over the capture as `patronus dpi` does it; returns packets
/// inspected (IP packets) and flows decided, to keep the work observable.
fn pass_full(engine: &mut DpiEngine, records: &[Record<'_>]) -> (u64, u64) {
    let mut flows: HashMap<FlowKey, (FlowDpi, bool)> = HashMap::with_capacity(1024);
    let (mut packets, mut decided) = (0, 0);
    for rec in records {
        let Ok((key, view)) = capture::packet(rec.link, rec.data) else {
            continue;
        };
        packets += 1;
        let (dpi, done) = flows.entry(key).or_default();
        if *done {
            continue;
        }
        match engine.inspect(dpi, &view, rec.ts_us) {
            Inspection::Pending => {}
            Inspection::Decided { .. } | Inspection::Done => {
                *done = true;
                decided += 1;
            }
        }
    }
    (packets, decided)
}

/// The engine alone: views already parsed, flow state in a flat vector
/// indexed by a precomputed flow number.
fn pass_engine(
    engine: &mut DpiEngine,
    views: &[(usize, PacketView<'_>, u64)],
    n_flows: usize,
) -> u64 {
    let mut state = vec![(FlowDpi::default(), false); n_flows];
    let mut decided = 0;
    for (flow, view, now) in views {
        let (dpi, done) = &mut state[*flow];
        if *done {
            continue;
        }
        if !matches!(engine.inspect(dpi, view, *now), Inspection::Pending) {
            *done = true;
            decided += 1;
        }
    }
    decided
}

/// Runs `f` for at least `seconds`, whole passes; returns passes/second.
fn rate(seconds: f64, mut f: impl FnMut()) -> f64 {
    // Warm-up: caches, branch predictors, the allocator.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs_f64((seconds / 10.0).min(0.2)) {
        f();
    }
    let start = Instant::now();
    let mut passes = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        f();
        passes += 1;
    }
    passes as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Wall seconds of one ndpiReader run over `file` with `loops` passes.
fn ndpi_run(file: &std::path::Path, loops: u32) -> Result<f64, String> {
    let start = Instant::now();
    let out = Command::new("ndpiReader")
        .arg("-i")
        .arg(file)
        .args(["-q", "-l", &loops.to_string()])
        .output()
        .map_err(|e| format!("ndpiReader: {e} (apt-get install libndpi-bin)"))?;
    let t = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "ndpiReader failed on {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(t)
}

/// Packets the benchmark wants in its capture (see the module docs).
const TARGET_PACKETS: usize = 200_000;

/// `records` (Ethernet + IPv4 only) replicated `copies` times as a pcap.
fn replicate(records: &[Record<'_>], copies: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 262_144, 1] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    let first = records.first().map_or(0, |r| r.ts_us);
    let span = records.last().map_or(0, |r| r.ts_us.saturating_sub(first)) + 1_000_000;
    for copy in 0..copies {
        for rec in records {
            let d = rec.data;
            // Ethernet (untagged) carrying IPv4 with a full header.
            if rec.link != capture::LinkType::Ethernet || d.len() < 34 || d[12..14] != [8, 0] {
                continue;
            }
            let mut frame = d.to_vec();
            for at in [26usize, 30] {
                frame[at + 1] = (copy >> 8) as u8 ^ d[at + 1];
                frame[at + 2] = copy as u8 ^ d[at + 2];
            }
            if let Ok(mut ip) = ipv4::Packet::new_checked(&mut frame[14..]) {
                ip.fill_checksum();
            }
            let ts = rec.ts_us - first + copy as u64 * span;
            for word in [
                (ts / 1_000_000) as u32,
                (ts % 1_000_000) as u32,
                frame.len() as u32,
                rec.orig_len.max(frame.len() as u32),
            ] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(&frame);
        }
    }
    out
}

pub fn run(args: &Args) -> Result<serde_json::Value, String> {
    let given = args
        .file
        .as_deref()
        .ok_or("dpi: give the capture to classify: patronus-bench dpi FILE")?;
    let original = std::fs::read(given).map_err(|e| format!("{}: {e}", given.display()))?;
    let original_records: Vec<Record<'_>> = capture::records(&original)
        .map_err(|e| format!("{}: {e}", given.display()))?
        .filter_map(Result::ok)
        .collect();
    let copies = TARGET_PACKETS.div_ceil(original_records.len().max(1));
    let replicated_path =
        std::env::temp_dir().join(format!("patronus-bench-dpi-{}.pcap", std::process::id()));
    let (file, bytes) = if copies > 1 {
        let bytes = replicate(&original_records, copies);
        std::fs::write(&replicated_path, &bytes)
            .map_err(|e| format!("{}: {e}", replicated_path.display()))?;
        (replicated_path.as_path(), bytes)
    } else {
        (given, original.clone())
    };
    let result = classify_file(args, given, file, &bytes, copies);
    if copies > 1 {
        let _ = std::fs::remove_file(&replicated_path);
    }
    result
}

fn classify_file(
    args: &Args,
    given: &std::path::Path,
    file: &std::path::Path,
    bytes: &[u8],
    copies: usize,
) -> Result<serde_json::Value, String> {
    let records: Vec<Record<'_>> = capture::records(bytes)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .filter_map(Result::ok)
        .collect();
    let mut index: HashMap<FlowKey, usize> = HashMap::new();
    let mut views = Vec::new();
    for rec in &records {
        if let Ok((key, view)) = capture::packet(rec.link, rec.data) {
            let n = index.len();
            let flow = *index.entry(key).or_insert(n);
            views.push((flow, view, rec.ts_us));
        }
    }
    if views.is_empty() {
        return Err(format!("{}: no IP packets to classify", file.display()));
    }
    let n_flows = index.len();
    let mut engine = DpiEngine::new(DpiConfig::default()).map_err(|e| e.to_string())?;
    let (_, decided) = pass_full(&mut engine, &records);

    // The start-up baseline: a pcap with a header and no records.
    let empty =
        std::env::temp_dir().join(format!("patronus-bench-empty-{}.pcap", std::process::id()));
    let mut header = Vec::with_capacity(24);
    for word in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 262_144, 1] {
        header.extend_from_slice(&word.to_le_bytes());
    }
    std::fs::write(&empty, &header).map_err(|e| format!("{}: {e}", empty.display()))?;
    let result = measure(
        args,
        file,
        &empty,
        &records,
        &views,
        n_flows,
        decided,
        &mut engine,
    );
    let _ = std::fs::remove_file(&empty);
    let mut result = result?;
    result["file"] = json!(given.display().to_string());
    result["copies"] = json!(copies);
    Ok(result)
}

#[allow(clippy::too_many_arguments)]
fn measure(
    args: &Args,
    file: &std::path::Path,
    empty: &std::path::Path,
    records: &[Record<'_>],
    views: &[(usize, PacketView<'_>, u64)],
    n_flows: usize,
    decided: u64,
    engine: &mut DpiEngine,
) -> Result<serde_json::Value, String> {
    let n_packets = views.len() as f64;
    // Enough ndpiReader loops for about `seconds` of packet work per
    // round, estimated from 10-loop runs.
    let t_file = ndpi_run(file, 1)?;
    let t_empty = ndpi_run(empty, 1)?;
    let per_pass = (t_file - t_empty).max(1e-5);
    let startup = t_empty;
    let loops = ((args.seconds / per_pass).ceil() as u32).clamp(1, 1000);
    eprintln!(
        "dpi: {} packets in {n_flows} flows ({decided} decided); ndpiReader start-up {:.0} ms per pass, {loops} passes per round",
        views.len(),
        startup * 1e3
    );

    let core = core_affinity::CoreId {
        id: args.worker_core,
    };
    let pinned = core_affinity::set_for_current(core);
    let (mut full, mut alone, mut ndpi) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let r_full = rate(args.seconds, || {
            std::hint::black_box(pass_full(engine, std::hint::black_box(records)));
        }) * n_packets;
        let r_alone = rate(args.seconds, || {
            std::hint::black_box(pass_engine(engine, std::hint::black_box(views), n_flows));
        }) * n_packets;
        // ndpiReader runs one detection thread for a pcap file.
        let base = ndpi_run(empty, loops)?;
        let long = ndpi_run(file, loops)?;
        let r_ndpi = n_packets * f64::from(loops) / (long - base).max(1e-9);
        eprintln!(
            "round {}: patronus {:.0} pkt/s (engine alone {:.0}), ndpiReader {:.0} pkt/s",
            round + 1,
            r_full,
            r_alone,
            r_ndpi
        );
        full.push(r_full);
        alone.push(r_alone);
        ndpi.push(r_ndpi);
    }
    let (full, alone, ndpi) = (median(full), median(alone), median(ndpi));
    Ok(json!({
        "scenario": "dpi",
        "file": file.display().to_string(),
        "packets": views.len(),
        "flows": n_flows,
        "flows_decided_by_engine": decided,
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "worker_core": args.worker_core,
        "pinned": pinned,
        "patronus_pps_parse_lookup_inspect": full.round(),
        "patronus_pps_engine_only": alone.round(),
        "ndpi_pps_loops_minus_empty_capture_loops": ndpi.round(),
        "ndpi_loops_per_round": loops,
        "ndpi_startup_seconds_per_loop": startup,
        "ratio_vs_ndpi": full / ndpi,
    }))
}
