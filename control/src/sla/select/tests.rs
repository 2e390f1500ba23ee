//! The selector on simulated time: every test feeds path qualities every
//! 100 ms (the probe interval) and checks decisions and events.

use super::*;
use std::sync::Arc;

const S: u64 = NS_PER_S;
const MS: u64 = 1_000_000;
const STEP: u64 = 100 * MS;

fn q(rtt_ms: f64, jitter_ms: f64, loss_pct: f64) -> PathQuality {
    PathQuality {
        up: true,
        port: 0,
        rtt_ms,
        jitter_ms,
        loss_pct,
        // 10 s at 100 probes a second.
        samples: 1000,
        resolved_total: 0,
        lost_total: 0,
        capacity_bps: 100_000_000,
    }
}

/// `sel.update` with the cumulative probe counts filled in as if each
/// path had always had its current loss, at 100 probes a second (enough
/// for these tests, whose paths hold their loss for whole phases).
fn upd(sel: &mut Selector, t: u64, paths: &[PathQuality]) {
    let resolved = t / (10 * MS);
    let filled: Vec<PathQuality> = paths
        .iter()
        .map(|p| PathQuality {
            resolved_total: resolved,
            lost_total: (resolved as f64 * p.loss_pct / 100.0) as u64,
            ..*p
        })
        .collect();
    sel.update(t, &filled);
}

fn good() -> PathQuality {
    q(20.0, 2.0, 0.0)
}

fn down() -> PathQuality {
    PathQuality {
        up: false,
        ..good()
    }
}

fn policy(name: &str, sla: &str, order: &[u8], mode: Mode) -> PolicySpec {
    PolicySpec {
        name: Arc::from(name),
        matches: PolicyMatch::default(),
        sla: sla.into(),
        path_order: order.iter().map(|&p| PathRef::Path(p)).collect(),
        mode,
    }
}

fn voice(order: &[u8]) -> PolicySpec {
    policy("voice", "realtime", order, Mode::BestPath)
}

fn selector(policies: Vec<PolicySpec>) -> Selector {
    Selector::new(1, SelectorConfig::default(), SlaClass::defaults(), policies).unwrap()
}

/// Feeds `paths` every 100 ms over `[from, to)`; returns `to`.
fn run(sel: &mut Selector, from: u64, to: u64, paths: &[PathQuality]) -> u64 {
    let mut t = from;
    while t < to {
        upd(sel, t, paths);
        t += STEP;
    }
    to
}

fn drain(sel: &mut Selector) -> Vec<SlaEvent> {
    core::iter::from_fn(|| sel.poll_event()).collect()
}

fn switches(events: &[SlaEvent]) -> Vec<(Choice, Choice, SwitchReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            SlaEvent::Switch {
                from, to, reason, ..
            } => Some((*from, *to, *reason)),
            _ => None,
        })
        .collect()
}

/// 11 s of `paths`: long enough for clean paths to prove compliant.
fn warm(sel: &mut Selector, paths: &[PathQuality]) -> u64 {
    let t = run(sel, 0, 11 * S, paths);
    drain(sel);
    t
}

fn pinned(sel: &Selector, policy: usize) -> Option<u8> {
    sel.decision(policy).and_then(|d| d.pinned())
}

fn spread(sel: &Selector, policy: usize) -> WeightedSet {
    match sel.decision(policy).map(|d| d.choice) {
        Some(Choice::Spread(s)) => s,
        other => panic!("not spread: {other:?}"),
    }
}

/// xorshift64*: deterministic noise.
struct Rng(u64);

impl Rng {
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        lo + (hi - lo) * (x as f64 / (1u64 << 53) as f64)
    }
}

#[test]
fn paths_start_unproven_pinned_by_preference_without_a_degraded_event() {
    let mut sel = selector(vec![voice(&[1, 0])]);
    upd(&mut sel, 0, &[good(), good()]);
    assert_eq!(pinned(&sel, 0), Some(1));
    assert!(sel.decision(0).unwrap().degraded);
    let ev = drain(&mut sel);
    assert_eq!(
        switches(&ev),
        [(Choice::None, Choice::Pinned(1), SwitchReason::Initial)]
    );
    assert!(!ev.iter().any(|e| matches!(e, SlaEvent::Degraded { .. })));
    run(&mut sel, STEP, 10 * S, &[good(), good()]);
    assert!(sel.decision(0).unwrap().degraded);
    upd(&mut sel, 10 * S, &[good(), good()]);
    assert!(!sel.decision(0).unwrap().degraded);
    assert!(sel.is_compliant(0, 0) && sel.is_compliant(0, 1));
    // Proving an unproven path is silent, and nothing moved.
    assert!(drain(&mut sel).is_empty());
    assert_eq!(pinned(&sel, 0), Some(1));
}

#[test]
fn down_path_moves_flows_at_once_without_hold() {
    let mut sel = selector(vec![voice(&[])]);
    let t = warm(&mut sel, &[good(), good()]);
    assert_eq!(pinned(&sel, 0), Some(0));
    upd(&mut sel, t, &[down(), good()]);
    assert_eq!(pinned(&sel, 0), Some(1));
    assert!(!sel.decision(0).unwrap().degraded);
    let ev = drain(&mut sel);
    assert_eq!(
        switches(&ev),
        [(Choice::Pinned(0), Choice::Pinned(1), SwitchReason::Down)]
    );
    assert!(matches!(
        ev[0],
        SlaEvent::Switch { path: Some(0), at_ns, .. } if at_ns == t
    ));
    assert_eq!(sel.counters().forced_switches, 1);
    assert_eq!(sel.counters().switches, 0);
}

#[test]
fn hard_limit_break_moves_at_once() {
    let mut sel = selector(vec![voice(&[])]);
    let t = warm(&mut sel, &[good(), good()]);
    upd(&mut sel, t, &[q(400.0, 2.0, 0.0), good()]);
    assert_eq!(pinned(&sel, 0), Some(1));
    let ev = drain(&mut sel);
    assert_eq!(
        ev[0],
        SlaEvent::Violation {
            at_ns: t,
            class: Arc::from("realtime"),
            path: 0,
            metric: Metric::Latency,
            value: 400.0,
            limit: 150.0,
            metrics: q(400.0, 2.0, 0.0).metrics(),
        }
    );
    assert_eq!(
        switches(&ev),
        [(
            Choice::Pinned(0),
            Choice::Pinned(1),
            SwitchReason::HardLimit
        )]
    );
}

#[test]
fn slightly_better_path_does_not_win_within_the_margin() {
    let mut sel = selector(vec![voice(&[])]);
    let t = warm(&mut sel, &[q(40.0, 2.0, 0.0), q(40.0, 2.0, 0.0)]);
    assert_eq!(pinned(&sel, 0), Some(0));
    // Scores 0.147 vs 0.133: under both the 10 % and the 0.02 margins.
    run(
        &mut sel,
        t,
        t + 60 * S,
        &[q(40.0, 2.0, 0.0), q(36.0, 2.0, 0.0)],
    );
    assert_eq!(pinned(&sel, 0), Some(0));
    assert!(switches(&drain(&mut sel)).is_empty());
    assert_eq!(sel.poll_timeout(), None);
}

#[test]
fn clearly_better_path_wins_only_after_the_hold_time() {
    let mut sel = selector(vec![voice(&[])]);
    let t = warm(&mut sel, &[q(40.0, 2.0, 0.0), q(40.0, 2.0, 0.0)]);
    let better = [q(40.0, 2.0, 0.0), q(10.0, 2.0, 0.0)];
    upd(&mut sel, t, &better);
    assert_eq!(sel.poll_timeout(), Some(t + 2 * S));
    run(&mut sel, t + STEP, t + 2 * S, &better);
    assert_eq!(pinned(&sel, 0), Some(0));
    upd(&mut sel, t + 2 * S, &better);
    assert_eq!(pinned(&sel, 0), Some(1));
    assert_eq!(
        switches(&drain(&mut sel)),
        [(Choice::Pinned(0), Choice::Pinned(1), SwitchReason::Better)]
    );
    assert_eq!(sel.counters().switches, 1);
}

#[test]
fn an_interrupted_lead_restarts_the_hold() {
    let mut sel = selector(vec![voice(&[])]);
    let even = [q(40.0, 2.0, 0.0), q(40.0, 2.0, 0.0)];
    let better = [q(40.0, 2.0, 0.0), q(10.0, 2.0, 0.0)];
    let t = warm(&mut sel, &even);
    let t = run(&mut sel, t, t + 1900 * MS, &better);
    upd(&mut sel, t, &even);
    let restart = t + STEP;
    let t = run(&mut sel, restart, restart + 2 * S, &better);
    assert_eq!(pinned(&sel, 0), Some(0));
    upd(&mut sel, t, &better);
    assert_eq!(pinned(&sel, 0), Some(1));
}

#[test]
fn cooldown_blocks_a_second_non_forced_switch() {
    let mut sel = selector(vec![voice(&[])]);
    let t = warm(&mut sel, &[q(40.0, 2.0, 0.0), q(40.0, 2.0, 0.0)]);
    let t1 = run(
        &mut sel,
        t,
        t + 2 * S,
        &[q(40.0, 2.0, 0.0), q(10.0, 2.0, 0.0)],
    );
    upd(&mut sel, t1, &[q(40.0, 2.0, 0.0), q(10.0, 2.0, 0.0)]);
    assert_eq!(pinned(&sel, 0), Some(1));
    drain(&mut sel);
    // Path 0 is now clearly better, and holds its lead for 2 s, but the
    // switch at t1 keeps the policy put until t1 + 10 s.
    let back = [q(10.0, 2.0, 0.0), q(40.0, 2.0, 0.0)];
    run(&mut sel, t1 + STEP, t1 + 10 * S, &back);
    assert_eq!(pinned(&sel, 0), Some(1));
    assert!(sel.counters().held_by_cooldown > 0);
    assert_eq!(sel.poll_timeout(), Some(t1 + 10 * S));
    upd(&mut sel, t1 + 10 * S, &back);
    assert_eq!(pinned(&sel, 0), Some(0));
    assert_eq!(
        switches(&drain(&mut sel)),
        [(Choice::Pinned(1), Choice::Pinned(0), SwitchReason::Better)]
    );
}

#[test]
fn cooldown_does_not_delay_a_forced_move() {
    let mut sel = selector(vec![voice(&[])]);
    let t = warm(&mut sel, &[good(), good(), good()]);
    upd(&mut sel, t, &[down(), good(), good()]);
    assert_eq!(pinned(&sel, 0), Some(1));
    upd(&mut sel, t + STEP, &[down(), down(), good()]);
    assert_eq!(pinned(&sel, 0), Some(2));
    assert_eq!(sel.counters().forced_switches, 2);
}

#[test]
fn failback_waits_its_delay() {
    let mut sel = selector(vec![voice(&[0, 1])]);
    let t = warm(&mut sel, &[good(), good()]);
    upd(&mut sel, t, &[down(), good()]);
    assert_eq!(pinned(&sel, 0), Some(1));
    let t2 = t + S;
    run(&mut sel, t + STEP, t2, &[down(), good()]);
    run(&mut sel, t2, t2 + 30 * S, &[good(), good()]);
    assert_eq!(pinned(&sel, 0), Some(1));
    upd(&mut sel, t2 + 30 * S, &[good(), good()]);
    assert_eq!(pinned(&sel, 0), Some(0));
    let sw = switches(&drain(&mut sel));
    assert_eq!(
        sw,
        [
            (Choice::Pinned(0), Choice::Pinned(1), SwitchReason::Down),
            (Choice::Pinned(1), Choice::Pinned(0), SwitchReason::Failback),
        ]
    );
}

#[test]
fn failback_is_cancelled_if_the_preferred_path_falls_out_again() {
    let mut sel = selector(vec![voice(&[0, 1])]);
    let t = warm(&mut sel, &[good(), good()]);
    upd(&mut sel, t, &[down(), good()]);
    let t2 = t + S;
    run(&mut sel, t + STEP, t2, &[down(), good()]);
    // Back for 20 s, then 100 ms of 5 % loss: the failback timer restarts,
    // behind the 10 s recovery hold.
    let t3 = run(&mut sel, t2, t2 + 20 * S, &[good(), good()]);
    upd(&mut sel, t3, &[q(20.0, 2.0, 5.0), good()]);
    let t4 = t3 + STEP;
    let recovered = t4 + 10 * S;
    run(&mut sel, t4, recovered + 30 * S, &[good(), good()]);
    assert_eq!(pinned(&sel, 0), Some(1), "failback did not restart");
    upd(&mut sel, recovered + 30 * S, &[good(), good()]);
    assert_eq!(pinned(&sel, 0), Some(0));
    let ev = drain(&mut sel);
    assert!(ev.iter().any(|e| matches!(
        e,
        SlaEvent::Violation {
            path: 0,
            metric: Metric::Loss,
            ..
        }
    )));
    assert!(ev.iter().any(|e| matches!(
        e,
        SlaEvent::Recovery { path: 0, at_ns, .. } if *at_ns == recovered
    )));
    assert_eq!(
        switches(&ev).last(),
        Some(&(Choice::Pinned(1), Choice::Pinned(0), SwitchReason::Failback))
    );
}

#[test]
fn voice_leaves_a_lossy_path_while_bulk_stays() {
    let bulk = policy("bulk", "bulk", &[0], Mode::BestPath);
    let mut sel = selector(vec![voice(&[0, 1]), bulk]);
    let t = warm(&mut sel, &[good(), good()]);
    assert_eq!((pinned(&sel, 0), pinned(&sel, 1)), (Some(0), Some(0)));
    let bad = [q(40.0, 10.0, 3.0), good()];
    upd(&mut sel, t, &bad);
    assert_eq!(pinned(&sel, 0), Some(1));
    assert_eq!(pinned(&sel, 1), Some(0));
    let ev = drain(&mut sel);
    assert!(matches!(
        &ev[0],
        SlaEvent::Violation { class, path: 0, metric: Metric::Loss, value, limit, .. }
            if &**class == "realtime" && *value == 3.0 && *limit == 1.0
    ));
    assert_eq!(
        switches(&ev),
        [(
            Choice::Pinned(0),
            Choice::Pinned(1),
            SwitchReason::HardLimit
        )]
    );
    assert_eq!(
        ev[1].to_string(),
        "path switch: policy voice: path 1 -> path 2 (hard-limit) \
         path 1: rtt_p95=40.0ms jitter=10.0ms loss=3.00%"
    );
    // Bulk tolerates it for good.
    run(&mut sel, t + STEP, t + 120 * S, &bad);
    assert_eq!((pinned(&sel, 0), pinned(&sel, 1)), (Some(1), Some(0)));
    assert!(sel.is_compliant(4, 0) && !sel.is_compliant(0, 0));
    assert!(switches(&drain(&mut sel)).is_empty());
}

/// Every path: loss uniformly 0.6–1.4 % around voice's 1 % limit, RTT and
/// jitter wobbling, a fresh draw every 100 ms for two minutes.
fn noisy(rng: &mut Rng) -> [PathQuality; 3] {
    core::array::from_fn(|_| {
        q(
            40.0 + rng.uniform(-5.0, 5.0),
            5.0 + rng.uniform(-1.0, 1.0),
            1.0 + rng.uniform(-0.4, 0.4),
        )
    })
}

#[test]
fn one_percent_loss_around_the_limit_on_every_path_causes_no_switch() {
    let mut sel = selector(vec![
        voice(&[]),
        policy("web", "standard", &[], Mode::BestPath),
    ]);
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let mut t = 0;
    while t < 120 * S {
        upd(&mut sel, t, &noisy(&mut rng));
        t += STEP;
    }
    let ev = drain(&mut sel);
    let sw = switches(&ev);
    assert!(
        sw.iter().all(|s| s.2 == SwitchReason::Initial),
        "switches: {sw:?}"
    );
    assert_eq!(sw.len(), 2);
    assert_eq!(sel.counters().switches + sel.counters().forced_switches, 0);
    // Each path broke voice's limit once and stayed out: no event storm.
    assert!(sel.counters().violations <= 3);
    assert_eq!(sel.counters().recoveries, 0);
    assert!(sel.decision(0).unwrap().degraded);
    assert!(!sel.decision(1).unwrap().degraded);
}

#[test]
fn one_percent_loss_arriving_on_proven_paths_does_not_flap() {
    let mut sel = selector(vec![voice(&[])]);
    let t0 = warm(&mut sel, &[good(), good(), good()]);
    let mut rng = Rng(0x0dd_ba11);
    let mut t = t0;
    let mut last_change = t0;
    let mut prev = pinned(&sel, 0);
    while t < t0 + 120 * S {
        upd(&mut sel, t, &noisy(&mut rng));
        if pinned(&sel, 0) != prev {
            prev = pinned(&sel, 0);
            last_change = t;
        }
        t += STEP;
    }
    // At most the one forced move off the first path seen to break the
    // limit while another still looked compliant; then every path is
    // violated and the policy stays put.
    let sw = switches(&drain(&mut sel));
    assert!(sw.len() <= 1, "switches: {sw:?}");
    assert!(last_change < t0 + 10 * S);
    assert_eq!(sel.counters().switches, 0);
}

#[test]
fn spread_weights_by_capacity_and_drops_a_non_compliant_path() {
    let mut sel = selector(vec![policy("bulk", "bulk", &[], Mode::SpreadCompliant)]);
    let mut paths = [good(), good(), good()];
    paths[1].capacity_bps = 50_000_000;
    paths[2].capacity_bps = 50_000_000;
    let t = warm(&mut sel, &paths);
    let before = spread(&sel, 0);
    assert_eq!(
        before.iter().collect::<Vec<_>>(),
        [(0, 128), (1, 64), (2, 64)]
    );
    let mut lossy = paths;
    lossy[1].loss_pct = 20.0;
    upd(&mut sel, t, &lossy);
    let after = spread(&sel, 0);
    assert_eq!(after.iter().collect::<Vec<_>>(), [(0, 170), (2, 85)]);
    assert_eq!(
        switches(&drain(&mut sel)),
        [(
            Choice::Spread(before),
            Choice::Spread(after),
            SwitchReason::HardLimit
        )]
    );
    // Flows on the surviving paths stay where they were.
    for flow in (0..5000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) {
        let (a, b) = (pick(&before, flow).unwrap(), pick(&after, flow).unwrap());
        assert!(a == 1 || a == b);
    }
    // Healed: 10 s to recover, then 2 s to rejoin.
    let rejoin = t + STEP + 12 * S;
    run(&mut sel, t + STEP, rejoin, &paths);
    assert_eq!(spread(&sel, 0), after);
    upd(&mut sel, rejoin, &paths);
    assert_eq!(spread(&sel, 0), before);
    let sw = switches(&drain(&mut sel));
    assert_eq!(sw.last().map(|s| s.2), Some(SwitchReason::Compliant));
}

#[test]
fn spread_rejoin_waits_for_the_cooldown() {
    let mut sel = selector(vec![policy("bulk", "bulk", &[], Mode::SpreadCompliant)]);
    let paths = [good(), good()];
    let t = warm(&mut sel, &paths);
    upd(&mut sel, t, &[down(), good()]);
    assert_eq!(spread(&sel, 0).mask(), 0b10);
    // Back up at once: down does not cost the standing, but joining is a
    // non-forced change inside the cooldown of the drop.
    run(&mut sel, t + STEP, t + 10 * S, &paths);
    assert_eq!(spread(&sel, 0).mask(), 0b10);
    upd(&mut sel, t + 10 * S, &paths);
    assert_eq!(spread(&sel, 0).mask(), 0b11);
}

#[test]
fn spread_capacity_wobble_does_not_republish_weights() {
    let mut sel = selector(vec![policy("bulk", "bulk", &[], Mode::SpreadCompliant)]);
    let mut paths = [good(), good()];
    let t = warm(&mut sel, &paths);
    let w = spread(&sel, 0);
    paths[1].capacity_bps = 95_000_000;
    upd(&mut sel, t, &paths);
    assert_eq!(spread(&sel, 0), w);
    paths[1].capacity_bps = 50_000_000;
    upd(&mut sel, t + STEP, &paths);
    assert_eq!(spread(&sel, 0).weight(0), 170);
    assert_eq!(sel.counters().reweights, 1);
}

#[test]
fn spread_with_no_compliant_path_pins_the_best_up_path() {
    let mut sel = selector(vec![policy(
        "voice",
        "realtime",
        &[],
        Mode::SpreadCompliant,
    )]);
    let t = warm(&mut sel, &[good(), good()]);
    assert_eq!(spread(&sel, 0).mask(), 0b11);
    upd(&mut sel, t, &[q(20.0, 2.0, 5.0), q(20.0, 2.0, 3.0)]);
    assert_eq!(pinned(&sel, 0), Some(1));
    assert!(sel.decision(0).unwrap().degraded);
    assert!(drain(&mut sel)
        .iter()
        .any(|e| matches!(e, SlaEvent::Degraded { path: Some(1), .. })));
}

#[test]
fn no_compliant_path_falls_back_to_the_best_up_path_with_an_event() {
    let mut sel = selector(vec![voice(&[])]);
    let t = warm(&mut sel, &[q(20.0, 2.0, 0.0), q(30.0, 2.0, 0.0)]);
    assert_eq!(pinned(&sel, 0), Some(0));
    let bad = [q(200.0, 2.0, 5.0), q(100.0, 2.0, 5.0)];
    upd(&mut sel, t, &bad);
    // Nothing complies: the incumbent stays while it is up...
    assert_eq!(pinned(&sel, 0), Some(0));
    let d = sel.decision(0).unwrap();
    assert!(d.degraded);
    let ev = drain(&mut sel);
    let deg: Vec<_> = ev
        .iter()
        .filter(|e| matches!(e, SlaEvent::Degraded { .. }))
        .collect();
    assert_eq!(deg.len(), 1);
    assert_eq!(
        deg[0].to_string(),
        "SLA degraded: policy voice: no compliant path, using path 1 \
         (rtt_p95=200.0ms jitter=2.0ms loss=5.00%)"
    );
    // ...and stays: between paths that both break the class, a better
    // score is mostly noise, so the policy does not move.
    run(&mut sel, t + STEP, t + 5 * S, &bad);
    assert_eq!(pinned(&sel, 0), Some(0));
    assert!(sel.decision(0).unwrap().degraded);
    assert_eq!(sel.counters().degraded, 1);
    // A compliant path is taken as soon as it has proven itself.
    let fixed = [q(200.0, 2.0, 5.0), good()];
    upd(&mut sel, t + 5 * S, &fixed);
    assert_eq!(pinned(&sel, 0), Some(0), "not proven yet");
    run(&mut sel, t + 5 * S, t + 16 * S, &fixed);
    assert_eq!(pinned(&sel, 0), Some(1));
    assert!(!sel.decision(0).unwrap().degraded);
}

#[test]
fn no_path_up_keeps_none_until_one_comes_back() {
    let mut sel = selector(vec![voice(&[])]);
    let t = warm(&mut sel, &[good(), good()]);
    upd(&mut sel, t, &[down(), down()]);
    let d = sel.decision(0).unwrap();
    assert_eq!((d.choice, d.degraded), (Choice::None, true));
    let ev = drain(&mut sel);
    assert_eq!(
        switches(&ev),
        [(Choice::Pinned(0), Choice::None, SwitchReason::Down)]
    );
    assert!(ev
        .iter()
        .any(|e| matches!(e, SlaEvent::Degraded { path: None, .. })));
    upd(&mut sel, t + STEP, &[down(), good()]);
    assert_eq!(sel.decision(0).unwrap().choice, Choice::Pinned(1));
    assert!(!sel.decision(0).unwrap().degraded);
}

#[test]
fn violation_clears_only_below_the_recovery_level_for_the_recovery_hold() {
    let mut sel = selector(vec![voice(&[])]);
    let t = warm(&mut sel, &[good()]);
    // 1.2 % over 1000 probes is not evidence of more than 1 %: no break.
    upd(&mut sel, t, &[q(20.0, 2.0, 1.2)]);
    assert!(sel.is_compliant(0, 0));
    upd(&mut sel, t + STEP, &[q(20.0, 2.0, 2.5)]);
    assert!(!sel.is_compliant(0, 0));
    // Under the limit but above limit × 0.9: still violated.
    let t = run(&mut sel, t + 2 * STEP, t + 60 * S, &[q(20.0, 2.0, 0.95)]);
    assert!(!sel.is_compliant(0, 0));
    // 0.5 % for twice the 10 s hold is not evidence of less than 0.9 %
    // (2000 probes, 10 lost: the 99 % upper bound is 1.02 %)...
    let t = run(&mut sel, t, t + 20 * S, &[q(20.0, 2.0, 0.5)]);
    assert!(!sel.is_compliant(0, 0));
    // ...and 10 s more without loss are.
    let t = run(&mut sel, t, t + 10 * S, &[q(20.0, 2.0, 0.0)]);
    upd(&mut sel, t, &[q(20.0, 2.0, 0.0)]);
    assert!(sel.is_compliant(0, 0));
    let ev = drain(&mut sel);
    let kinds: Vec<_> = ev
        .iter()
        .filter(|e| !matches!(e, SlaEvent::Switch { .. }))
        .map(|e| match e {
            SlaEvent::Violation { .. } => "violation",
            SlaEvent::Recovery { .. } => "recovery",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["violation", "other", "recovery"]);
    assert_eq!(sel.counters().recoveries, 1);
}

#[test]
fn garbage_input_neither_panics_nor_counts() {
    let mut sel = selector(vec![
        voice(&[7]),
        policy("s", "bulk", &[], Mode::SpreadCompliant),
    ]);
    upd(&mut sel, 0, &[]);
    assert_eq!(sel.decision(0).unwrap().choice, Choice::None);
    assert_eq!(sel.decision(1).unwrap().choice, Choice::None);
    let nan = q(f64::NAN, f64::INFINITY, -1.0);
    let few = PathQuality {
        samples: 1,
        ..q(999.0, 999.0, 99.0)
    };
    let many = [good(); 12];
    for (i, t) in (0..200u64).map(|i| (i, i * STEP)) {
        upd(&mut sel, t, &[nan, few, good()]);
        if i % 50 == 0 {
            upd(&mut sel, t, &many);
            // Time running backwards is survived too.
            upd(&mut sel, t / 2, &[nan, few, good()]);
        }
    }
    // The unmeasurable paths never broke or proved anything.
    assert!(!sel.is_compliant(0, 0) && !sel.is_compliant(0, 1));
    assert!(sel.is_compliant(0, 2));
    assert_eq!(sel.counters().violations, 0);
    assert_eq!(pinned(&sel, 0), Some(2));
    assert!(!sel.is_compliant(99, 0) && sel.decision(9).is_none());
}

#[test]
fn paths_are_preferred_by_wan_port_too() {
    let mut spec = voice(&[]);
    spec.path_order = vec![PathRef::Port(3)];
    let mut sel = selector(vec![spec]);
    let mut paths = [good(), good(), good()];
    paths[2].port = 3;
    upd(&mut sel, 0, &paths);
    assert_eq!(pinned(&sel, 0), Some(2));
}

#[test]
fn bad_configuration_is_refused() {
    let new = |classes: Vec<SlaClass>, p: PolicySpec, cfg: SelectorConfig| {
        Selector::new(0, cfg, classes, vec![p]).map(|_| ())
    };
    let d = SelectorConfig::default;
    assert_eq!(
        new(
            SlaClass::defaults(),
            policy("v", "voice", &[], Mode::BestPath),
            d()
        ),
        Err(ConfigError::UnknownClass {
            policy: "v".into(),
            class: "voice".into()
        })
    );
    let voice_class = SlaClass::new("voice", Some(150.0), Some(1.0), Some(30.0));
    assert!(new(
        vec![voice_class.clone()],
        policy("v", "voice", &[], Mode::BestPath),
        d()
    )
    .is_ok());
    assert!(matches!(
        new(
            vec![voice_class.clone()],
            policy("v", "voice", &[8], Mode::BestPath),
            d()
        ),
        Err(ConfigError::PathOutOfRange { path: 8, .. })
    ));
    let nan = SlaClass::new("voice", Some(f64::NAN), None, None);
    assert!(matches!(
        new(vec![nan], policy("v", "voice", &[], Mode::BestPath), d()),
        Err(ConfigError::InvalidLimit { .. })
    ));
    let cfg = SelectorConfig { margin: 1.0, ..d() };
    assert_eq!(
        new(
            vec![voice_class],
            policy("v", "voice", &[], Mode::BestPath),
            cfg
        ),
        Err(ConfigError::InvalidParameter("margin"))
    );
}

/// Probe-by-probe: 10 probes a second per path, each lost with `loss`
/// (round trip), a 10 s window of the last 100 resolved probes, and the
/// cumulative counts, as the driver feeds the selector.
struct ProbedPath {
    loss: f64,
    window: std::collections::VecDeque<bool>,
    resolved: u64,
    lost: u64,
}

impl ProbedPath {
    fn new(loss: f64) -> ProbedPath {
        ProbedPath {
            loss,
            window: std::collections::VecDeque::new(),
            resolved: 0,
            lost: 0,
        }
    }

    fn probe(&mut self, rng: &mut Rng) -> PathQuality {
        let lost = rng.uniform(0.0, 1.0) < self.loss;
        self.window.push_back(lost);
        if self.window.len() > 100 {
            self.window.pop_front();
        }
        self.resolved += 1;
        self.lost += u64::from(lost);
        let n = self.window.len();
        let k = self.window.iter().filter(|&&l| l).count();
        PathQuality {
            samples: n as u32,
            loss_pct: 100.0 * k as f64 / n as f64,
            resolved_total: self.resolved,
            lost_total: self.lost,
            ..q(40.0, 5.0, 0.0)
        }
    }
}

#[test]
fn one_percent_loss_probe_by_probe_never_brings_a_policy_back_in_two_minutes() {
    // What the lab's flap scenario does, over many seeds: 1 % loss on both
    // paths, 10 probes a second, a voice policy preferring path 1.
    let (mut moved, mut returned) = (0, 0);
    for seed in 0..300u64 {
        let mut sel = selector(vec![voice(&[0, 1])]);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let mut paths = [ProbedPath::new(0.01), ProbedPath::new(0.01)];
        let mut t = 0;
        while t < 120 * S {
            let qs = [paths[0].probe(&mut rng), paths[1].probe(&mut rng)];
            sel.update(t, &qs);
            t += STEP;
        }
        let sw: Vec<_> = switches(&drain(&mut sel))
            .into_iter()
            .filter(|s| s.2 != SwitchReason::Initial)
            .collect();
        if sw.len() > 1 {
            returned += 1;
        }
        moved += usize::from(!sw.is_empty());
    }
    eprintln!("{moved} of 300 runs moved, {returned} came back");
    // Moving once (off a path that broke the class with evidence, to one
    // not yet judged) is not flapping; coming back would be.
    assert!(
        returned == 0 && moved <= 90,
        "{moved} moved, {returned} came back"
    );
}

#[test]
fn paths_proving_themselves_in_any_order_at_start_do_not_move_a_policy() {
    // The lab's other flap: bulk (10 % loss limit) over two 1 % paths.
    // Whichever path proves compliant first, the policy stays on its
    // preferred path, which proves itself soon after.
    let mut moved = 0;
    for seed in 0..300u64 {
        let mut sel = selector(vec![
            policy("bulk", "bulk", &[0, 1], Mode::BestPath),
            voice(&[0, 1]),
        ]);
        let mut rng = Rng(0x5851_f42d_4c95_7f2d ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let mut paths = [ProbedPath::new(0.01), ProbedPath::new(0.01)];
        let mut t = 0;
        while t < 120 * S {
            let qs = [paths[0].probe(&mut rng), paths[1].probe(&mut rng)];
            sel.update(t, &qs);
            t += STEP;
        }
        let ev = drain(&mut sel);
        let bulk_moves = ev
            .iter()
            .filter(|e| {
                matches!(e, SlaEvent::Switch { policy, reason, .. }
                    if &**policy == "bulk" && *reason != SwitchReason::Initial)
            })
            .count();
        moved += bulk_moves;
        assert!(sel.is_compliant(
            sel.classes.iter().position(|c| &*c.name == "bulk").unwrap(),
            0
        ));
    }
    assert_eq!(moved, 0, "bulk moved {moved} times over 300 runs");
}

#[test]
fn three_percent_loss_at_ten_probes_a_second_is_still_left() {
    // The evidence rule must not hide a real breach at the default rate:
    // a 3 % path is left for a clean one within a minute (the clean one
    // must first prove itself: about a minute of clean probes for 1 %).
    let mut sel = selector(vec![voice(&[0, 1])]);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut paths = [ProbedPath::new(0.03), ProbedPath::new(0.0)];
    let mut t = 0;
    while t < 120 * S {
        let qs = [paths[0].probe(&mut rng), paths[1].probe(&mut rng)];
        sel.update(t, &qs);
        t += STEP;
    }
    assert_eq!(pinned(&sel, 0), Some(1));
}
