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
//! Both read from the page cache and print nothing. Use a capture of
//! thousands of packets: with a handful the difference drowns in noise.

use crate::Args;
use patronus_dataplane::dpi::capture::{self, Record};
use patronus_dataplane::dpi::engine::{DpiConfig, DpiEngine, FlowDpi, Inspection, PacketView};
use patronus_dataplane::dpi::key::FlowKey;
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

pub fn run(args: &Args) -> Result<serde_json::Value, String> {
    let file = args
        .file
        .as_deref()
        .ok_or("dpi: give the capture to classify: patronus-bench dpi FILE")?;
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let records: Vec<Record<'_>> = capture::records(&bytes)
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
    result
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
    let t_file = ndpi_run(file, 10)?;
    let t_empty = ndpi_run(empty, 10)?;
    let per_pass = ((t_file - t_empty) / 10.0).max(1e-5);
    let startup = t_empty / 10.0;
    let loops = ((args.seconds / per_pass).ceil() as u32).clamp(10, 1000);
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
