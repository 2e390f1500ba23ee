//! `qos-worker`: RealTime's delay through the real worker loop when its
//! shaped WAN link is overloaded, against the same link unloaded in the
//! same run.
//!
//! Each round runs `ringbed::qos_overload` (the harness the `qos_worker`
//! test uses) on a 50 Mbit/s link with the default scheduler
//! (`SchedulerConfig::new`: RealTime capped at a third of the rate, the
//! default queues), a tenth of the packets RealTime and the rest Bulk: once
//! offered at half the link rate (the baseline: no queue builds) and once
//! at twice the rate (the overload: Bulk's queue stays full). Rounds
//! alternate between the two; the report gives the median over the rounds
//! of each figure, and the ratio of the overload's RealTime p99 to the
//! baseline's, which is what a noisy machine moves least. The delay is
//! injection → scheduler → tx ring, measured with the TSC by the
//! collector on the generator core.

use crate::{steal, Args};
use patronus_dataplane::dpdk::{self, Eal, Mempool};
use patronus_dataplane::qos::QosClass;
use patronus_dataplane::ringbed::qos_overload::{self, Outcome, Params};
use patronus_dataplane::ringbed::RingBed;
use patronus_dataplane::stats::DropReason;
use serde_json::json;

/// The shaped link's rate, bits per second.
pub const LINK_RATE_BPS: u64 = 50_000_000;
/// The overload's offered load over the link rate, and the baseline's.
pub const OVERLOAD: f64 = 2.0;
pub const BASELINE_LOAD: f64 = 0.5;
/// Every tenth packet is RealTime.
pub const REALTIME_EVERY: u64 = 10;
/// The frame size when `--size` is not given.
pub const DEFAULT_SIZE: u16 = 1000;
/// The rounds when `--rounds` is not given.
pub const DEFAULT_ROUNDS: u32 = 5;
/// Mbufs in the pool; the bed's rings hold as many, so none can overflow.
const POOL: u32 = 16383;

/// One round's figures.
#[derive(Debug, Clone, Copy)]
struct Round {
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    /// Carried bits per second over the link rate.
    carried_ratio: f64,
    realtime_drops: u64,
    bulk_drops: u64,
    /// Drops for any reason but a full QoS queue (expected 0).
    other_drops: u64,
    steal_percent: Option<f64>,
}

impl Round {
    fn from_outcome(o: &Outcome, steal_percent: Option<f64>) -> Round {
        let rt = QosClass::RealTime;
        let full = o.drops(DropReason::QosQueueFull);
        Round {
            p50_us: o.delay_percentile_us(rt, 50),
            p99_us: o.delay_percentile_us(rt, 99),
            max_us: o.delay_percentile_us(rt, 100),
            carried_ratio: o.carried_bps() / LINK_RATE_BPS as f64,
            // Whatever was offered and not sent is lost, whatever the
            // reason.
            realtime_drops: o.offered_realtime.saturating_sub(o.sent_count(rt)),
            bulk_drops: o.offered_bulk.saturating_sub(o.sent_count(QosClass::Bulk)),
            other_drops: o.counters.dropped().saturating_sub(full),
            steal_percent,
        }
    }
}

/// The median of `f` over the rounds (the upper one of an even count).
fn median(rounds: &[Round], f: impl Fn(&Round) -> f64) -> f64 {
    let mut v: Vec<f64> = rounds.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The workload at `load` times the link rate, with the default scheduler.
fn params(args: &Args, tsc_hz: u64, load: f64) -> Params {
    let mut params = Params::new(tsc_hz, LINK_RATE_BPS);
    params.frame_size = usize::from(args.size);
    params.overload = load;
    params.realtime_every = REALTIME_EVERY;
    params.seconds = args.seconds;
    params.worker_cpu = args.worker_core;
    params
}

/// One run of the harness.
fn round(
    bed: &RingBed,
    pool: &Mempool,
    args: &Args,
    params: &Params,
    name: &str,
) -> Result<Round, String> {
    let steal0 = steal::seconds(args.worker_core);
    let t0 = std::time::Instant::now();
    let outcome = qos_overload::run(bed, pool, params)?;
    let steal = steal::percent(
        steal0,
        steal::seconds(args.worker_core),
        t0.elapsed().as_secs_f64(),
    );
    if outcome.offered != params.packets() || outcome.unread > 0 {
        return Err(format!(
            "{name}: offered {} of {} packets, {} never read: the worker stalled",
            outcome.offered,
            params.packets(),
            outcome.unread
        ));
    }
    let r = Round::from_outcome(&outcome, steal);
    eprintln!(
        "patronus-bench: qos-worker {name}: RealTime p50 {:.0} us, p99 {:.0} us, max {:.0} us; \
         carried {:.3} of the link; drops: {} RealTime, {} Bulk, {} other; {:.1}% steal",
        r.p50_us,
        r.p99_us,
        r.max_us,
        r.carried_ratio,
        r.realtime_drops,
        r.bulk_drops,
        r.other_drops,
        r.steal_percent.unwrap_or(0.0)
    );
    Ok(r)
}

/// The 1-minute load average, for the report's conditions.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn run(args: &Args) -> Result<serde_json::Value, String> {
    let load_before = load_average();
    let (_eal, memory) = crate::start_eal(args)?;
    let tsc_hz = dpdk::tsc_hz();
    if tsc_hz == 0 {
        return Err("EAL did not measure the TSC frequency".into());
    }
    let pool = Mempool::new("qosw_pool", POOL, 256, 2176).map_err(|e| e.to_string())?;
    let in_use_at_start = pool.in_use();
    let bed = RingBed::new("qosw", POOL, &pool).map_err(|e| e.to_string())?;
    let rounds = args.rounds;
    eprintln!(
        "patronus-bench: qos-worker: {}-byte frames on a {} Mbit/s link, RealTime 1 in \
         {REALTIME_EVERY}, offered {OVERLOAD}× (overload) and {BASELINE_LOAD}× (baseline), \
         {rounds} × {:.1} s each, worker on CPU {}...",
        args.size,
        LINK_RATE_BPS / 1_000_000,
        args.seconds,
        args.worker_core
    );
    let (overloaded, unloaded) = (
        params(args, tsc_hz, OVERLOAD),
        params(args, tsc_hz, BASELINE_LOAD),
    );
    let (mut overload, mut baseline) = (Vec::new(), Vec::new());
    for r in 1..=rounds {
        eprintln!("patronus-bench: round {r} of {rounds}");
        baseline.push(round(&bed, &pool, args, &unloaded, "baseline")?);
        overload.push(round(&bed, &pool, args, &overloaded, "overload")?);
    }
    drop(bed);
    let mbuf_leak = pool.in_use().saturating_sub(in_use_at_start);

    let p99 = median(&overload, |r| r.p99_us);
    let baseline_p99 = median(&baseline, |r| r.p99_us);
    let sum = |rounds: &[Round], f: fn(&Round) -> u64| rounds.iter().map(f).sum::<u64>();
    let all: Vec<Round> = overload.iter().chain(&baseline).copied().collect();
    let list = |rounds: &[Round], f: fn(&Round) -> f64| rounds.iter().map(f).collect::<Vec<_>>();
    let steal = |rounds: &[Round]| {
        rounds
            .iter()
            .any(|r| r.steal_percent.is_some())
            .then(|| median(rounds, |r| r.steal_percent.unwrap_or(0.0)))
    };
    Ok(json!({
        "scenario": "qos-worker",
        "packet_size": args.size,
        "rounds": rounds,
        "seconds": args.seconds,
        "link_rate_bps": LINK_RATE_BPS,
        "overload": OVERLOAD,
        "baseline_load": BASELINE_LOAD,
        "realtime_share": 1.0 / REALTIME_EVERY as f64,
        "scheduler": "SchedulerConfig::new (RealTime ceiling 1/3, default queues)",
        "realtime_delay_p50_us": median(&overload, |r| r.p50_us),
        "realtime_delay_p99_us": p99,
        "realtime_delay_max_us": median(&overload, |r| r.max_us),
        "baseline_realtime_delay_p50_us": median(&baseline, |r| r.p50_us),
        "baseline_realtime_delay_p99_us": baseline_p99,
        "baseline_realtime_delay_max_us": median(&baseline, |r| r.max_us),
        "realtime_p99_ratio_vs_unloaded": p99 / baseline_p99.max(f64::MIN_POSITIVE),
        "realtime_delay_p99_us_rounds": list(&overload, |r| r.p99_us),
        "baseline_realtime_delay_p99_us_rounds": list(&baseline, |r| r.p99_us),
        "carried_rate_ratio": median(&overload, |r| r.carried_ratio),
        "baseline_carried_rate_ratio": median(&baseline, |r| r.carried_ratio),
        "offered_realtime_per_round": overloaded.realtime_packets(),
        "offered_bulk_per_round": overloaded.packets() - overloaded.realtime_packets(),
        "bulk_drops": sum(&overload, |r| r.bulk_drops),
        "realtime_drops": sum(&overload, |r| r.realtime_drops),
        "baseline_drops": sum(&baseline, |r| r.bulk_drops + r.realtime_drops),
        "other_drops": sum(&all, |r| r.other_drops),
        "worker_steal_percent": steal(&all),
        "load_average_before": load_before,
        "tsc_hz": tsc_hz,
        "worker_core": args.worker_core,
        "generator_core": args.generator_core,
        "memory": format!("{:?}", memory.mode),
        "dpdk": Eal::version(),
        "mbuf_leak": mbuf_leak,
    }))
}
