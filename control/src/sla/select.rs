//! SLA-driven path selection for one peer, sans I/O: which of the peer's
//! paths each policy's traffic takes, given every path's BFD state and
//! measured quality. The driver calls [`Selector::update`] with `now` and
//! the paths' [`PathQuality`] (on every estimator update and at once on
//! every BFD state change), reads [`Selector::decision`] into the data
//! path's path table, and drains [`Selector::poll_event`] into the log and
//! the API's [`EventRing`].
//!
//! # Compliance (per SLA class and path)
//!
//! A path *breaks* a class when a measured metric exceeds the class's hard
//! limit: p95 RTT against [`SlaClass::max_latency_ms`] (round trip, not
//! one-way: see [`SlaClass`]), jitter (RFC 3550 §6.4.1 interarrival jitter,
//! as the estimator reports it) against `max_jitter_ms`, window loss
//! against `max_loss_pct`. Each (class, path) has a standing:
//!
//! - **unproven** at start: nothing is known yet;
//! - **violated** as soon as one metric exceeds its limit (an
//!   [`SlaEvent::Violation`], with the value and the limit); for loss,
//!   only with evidence: the Wilson lower bound (99.9 %) of the window's
//!   loss must be above the limit, because at 10 probes a second one lost
//!   probe is already 1 % of a 10 s window;
//! - **compliant** once every limited metric has stayed at or below
//!   `limit × (1 − recover_margin)` (default 10 %) for `recover_hold`
//!   (default 10 s) without a break, and the Wilson upper bound (99 %) of
//!   the loss since then is below that level too (a 1 % limit takes about
//!   a minute of clean probes at 10 a second, 6 s at 100): from violated
//!   this raises an [`SlaEvent::Recovery`]; from unproven it is silent.
//!
//! The gap between the limit and the recovery level, and the recovery hold,
//! are the debounce: a metric jittering around its limit (1 % random loss
//! against a 1 % limit) breaks it once and then stays violated, instead of
//! flipping the path in and out of the class on every update. Measurements
//! from fewer than `min_samples` (default 5) samples, or with a metric that
//! is NaN, infinite or negative, change no standing but restart the
//! recovery hold, as a path that is down does: recovery needs continuous
//! evidence.
//!
//! # Ranking and score
//!
//! Each policy ranks the paths that are up (BFD) by the key
//! `(tier, order, score)`, lowest first:
//!
//! 1. tier: compliant, then unproven, then violated: a path that breaks a
//!    hard limit only carries the class when nothing else can
//!    ("degraded");
//! 2. order: the path's position in the policy's `path_order` (by path
//!    index, or by WAN port); unlisted paths come after the listed ones;
//! 3. score, the weighted sum of the metrics normalised by the class's
//!    limits: `0.5·rtt/L + 0.2·jitter/J + 0.3·loss/P` (weights in
//!    [`ScoreWeights`]), each term clamped to [0, 4]. A metric the class
//!    does not limit is normalised by a reference value instead
//!    ([`Metric::reference`]: 300 ms, 50 ms, 5 %). A compliant path scores
//!    at most 1; an unmeasured path scores the maximum, 4, so it ranks
//!    last within its tier.
//!
//! # Hysteresis and timers (defaults in [`SelectorConfig::default`])
//!
//! - Forced moves, at once, no hold and no cooldown: the incumbent path went
//!   down, or it broke a hard limit while a compliant path exists. With
//!   10 ms BFD (detection 30 ms) failover is detection plus one update;
//!   with probe-only detection, the estimator's loss-of-probes time.
//! - Better score (same order, both compliant): the challenger must beat the
//!   incumbent's score by `margin` (10 %) and by at least `margin_abs`
//!   (0.02), continuously for `hold` (2 s); any update on which it does not
//!   restarts the hold.
//! - Better tier, off a violated incumbent only (to a path not yet judged;
//!   to a compliant one it is a forced move): `hold`. An unproven
//!   incumbent is not known to be bad, so a path that proves itself first
//!   does not take the traffic from it (at start that would be a move and,
//!   once the preferred path proves itself too, a failback: a flap).
//! - Failback, a path earlier in `path_order` (typically the preferred path
//!   recovering): it must stay the best, hence up and compliant,
//!   continuously for `failback_delay` (30 s); falling out cancels it. After
//!   a violation the recovery hold comes first, so failback takes
//!   `recover_hold + failback_delay`.
//! - Cooldown: no non-forced move within `cooldown` (10 s) of the policy's
//!   last move; a challenger that has served its hold waits for it.
//! - Degraded: with no compliant path the policy keeps its path while it is
//!   up. It moves only to a better tier (off a violated path to one not
//!   yet judged, after `hold`), never by score or order among paths that
//!   all miss the class: their differences are mostly noise, and moving
//!   would only move the damage around. It raises [`SlaEvent::Degraded`]
//!   when it loses its last compliant path. A policy starts degraded (all paths unproven) without
//!   an event. With no path up it has no path.
//!
//! Existing flows stay on their path unless it goes down or stops being
//! compliant: a pinned path only changes as above, and in
//! [`Mode::SpreadCompliant`] the set is mapped to flows by rendezvous
//! hashing ([`hrw`]), where a path leaving the set moves only its own
//! flows. Leaving is immediate (down or broken); joining moves about
//! `1/N` of the flows, so a path joins only after `hold` of compliance and
//! outside the cooldown. Weights follow capacity and are republished only
//! when a member's weight moves by more than 10 %.
//!
//! # Into the data path
//!
//! [`Choice::Pinned`]`(i)` is a `PolicyDecision { path: Some(i), .. }`;
//! [`Choice::Spread`] is `path: Some(hrw::pick(set, flow))` per flow;
//! [`Choice::None`] leaves the data path to spread over what is up.

pub mod class;
pub mod event;
pub use patronus_dataplane::steer::hrw;

pub use class::{policy_for, Metric, Mode, PathRef, PolicyMatch, PolicySpec, SlaClass};
pub use event::{Choice, EventRecord, EventRing, Metrics, SlaEvent, SwitchReason};
pub use hrw::{pick, WeightedSet};

use core::cmp::Ordering;
use core::fmt;
use patronus_dataplane::wg::datapath::MAX_PATHS;
use std::collections::VecDeque;

const NS_PER_S: u64 = 1_000_000_000;
/// Events kept for [`Selector::poll_event`] before the oldest is dropped.
const EVENT_QUEUE_LEN: usize = 256;
/// Largest value of one normalised score term.
const TERM_MAX: f64 = 4.0;

const TIER_COMPLIANT: u8 = 0;
const TIER_UNPROVEN: u8 = 1;
const TIER_VIOLATED: u8 = 2;

/// One path's state as the selector needs it: BFD plus the estimator's
/// window. A thin adapter fills it from the BFD session and the estimator.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PathQuality {
    /// BFD (or probe liveness) says the path is up.
    pub up: bool,
    /// Our WAN port the path leaves from, for [`PathRef::Port`].
    pub port: u8,
    /// p95 round-trip time over the window, milliseconds.
    pub rtt_ms: f64,
    /// Interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// Loss over the window, percent.
    pub loss_pct: f64,
    /// Probes the window's figures rest on.
    pub samples: u32,
    /// Probes resolved (answered or declared lost) since the path's probing
    /// began, and of those lost: cumulative, for the loss evidence of a
    /// recovery, which may span more than one window.
    pub resolved_total: u64,
    pub lost_total: u64,
    /// The path's capacity, for spreading; 0 if unknown.
    pub capacity_bps: u64,
}

impl PathQuality {
    pub fn metrics(&self) -> Metrics {
        Metrics {
            rtt_ms: self.rtt_ms,
            jitter_ms: self.jitter_ms,
            loss_pct: self.loss_pct,
        }
    }

    pub fn value(&self, m: Metric) -> f64 {
        match m {
            Metric::Latency => self.rtt_ms,
            Metric::Jitter => self.jitter_ms,
            Metric::Loss => self.loss_pct,
        }
    }

    /// Enough samples, and every metric a finite non-negative number.
    fn measured(&self, min_samples: u32) -> bool {
        self.samples >= min_samples
            && Metric::ALL
                .into_iter()
                .all(|m| self.value(m).is_finite() && self.value(m) >= 0.0)
    }
}

/// The score's weights (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreWeights {
    pub latency: f64,
    pub jitter: f64,
    pub loss: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights {
            latency: 0.5,
            jitter: 0.2,
            loss: 0.3,
        }
    }
}

impl ScoreWeights {
    fn of(&self, m: Metric) -> f64 {
        match m {
            Metric::Latency => self.latency,
            Metric::Jitter => self.jitter,
            Metric::Loss => self.loss,
        }
    }

    fn sum(&self) -> f64 {
        self.latency + self.jitter + self.loss
    }
}

/// Hysteresis and timers; see the module docs for their meaning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectorConfig {
    pub weights: ScoreWeights,
    /// Relative score margin a challenger must win by (0.10 = 10 %).
    pub margin: f64,
    /// Absolute score margin, so near-perfect paths do not trade places
    /// over noise.
    pub margin_abs: f64,
    pub hold_ns: u64,
    pub cooldown_ns: u64,
    pub failback_delay_ns: u64,
    /// A violated path recovers below `limit × (1 − recover_margin)`.
    pub recover_margin: f64,
    pub recover_hold_ns: u64,
    pub min_samples: u32,
    /// One-sided normal quantiles of the loss evidence: a loss limit is
    /// broken only when the Wilson lower bound of the window's loss at
    /// `loss_z_break` (3.09: 99.9 %) is above it, and met again (recovery,
    /// or first proof) only when the Wilson upper bound of the loss since
    /// the path came clean at `loss_z_meet` (2.326: 99 %) is below
    /// `limit × (1 − recover_margin)`. Breaking needs the stronger
    /// evidence: it moves traffic at once.
    pub loss_z_break: f64,
    pub loss_z_meet: f64,
}

impl Default for SelectorConfig {
    fn default() -> Self {
        SelectorConfig {
            weights: ScoreWeights::default(),
            margin: 0.10,
            margin_abs: 0.02,
            hold_ns: 2 * NS_PER_S,
            cooldown_ns: 10 * NS_PER_S,
            failback_delay_ns: 30 * NS_PER_S,
            recover_margin: 0.10,
            recover_hold_ns: 10 * NS_PER_S,
            min_samples: 5,
            loss_z_break: 3.09,
            loss_z_meet: 2.326,
        }
    }
}

/// A configuration the selector refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A policy names an SLA class that is not defined.
    UnknownClass { policy: String, class: String },
    /// A class limit is NaN, infinite or negative.
    InvalidLimit { class: String },
    /// A policy's `path_order` names a path index past [`MAX_PATHS`].
    PathOutOfRange { policy: String, path: u8 },
    /// A weight or margin is NaN, infinite or negative (or a margin ≥ 1).
    InvalidParameter(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownClass { policy, class } => {
                write!(f, "SLA policy {policy}: unknown SLA class {class}")
            }
            ConfigError::InvalidLimit { class } => {
                write!(f, "SLA class {class}: limits must be finite and >= 0")
            }
            ConfigError::PathOutOfRange { policy, path } => write!(
                f,
                "SLA policy {policy}: path {path} is past the {MAX_PATHS}-path maximum"
            ),
            ConfigError::InvalidParameter(what) => write!(f, "SLA selector: invalid {what}"),
        }
    }
}

/// A policy's current decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub choice: Choice,
    /// No compliant path: `choice` is the best path that is up, or none.
    pub degraded: bool,
}

impl Decision {
    /// The pinned path, if the choice is one path.
    pub fn pinned(&self) -> Option<u8> {
        match self.choice {
            Choice::Pinned(p) => Some(p),
            _ => None,
        }
    }
}

/// What the selector did, for the stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub updates: u64,
    pub violations: u64,
    pub recoveries: u64,
    /// Moves that skipped hold and cooldown: path down, hard limit.
    pub forced_switches: u64,
    /// Moves after hold / failback delay.
    pub switches: u64,
    /// Updates on which a challenger that had served its hold waited for
    /// the cooldown.
    pub held_by_cooldown: u64,
    pub degraded: u64,
    /// Spread weights republished without a membership change.
    pub reweights: u64,
    pub events_dropped: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Standing {
    #[default]
    Unproven,
    Compliant,
    Violated,
}

#[derive(Debug, Clone, Copy, Default)]
struct PathVerdict {
    standing: Standing,
    /// Since when every metric has been within the recovery level.
    clean_since: Option<u64>,
    /// The path's cumulative (resolved, lost) probes at `clean_since`.
    clean_base: (u64, u64),
}

/// The Wilson score interval's bounds for `k` losses in `n` probes at
/// one-sided quantile `z` (E. B. Wilson, 1927): unlike the normal
/// approximation it stays inside [0, 1] and is sound for the few losses a
/// probe window holds. With no probes, [0, 1].
pub fn wilson_bounds(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = (k as f64 / n).min(1.0);
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// A path as one policy ranks it.
#[derive(Debug, Clone, Copy)]
struct Cand {
    path: u8,
    tier: u8,
    order: usize,
    score: f64,
}

fn rank(a: &Cand, b: &Cand) -> Ordering {
    a.tier
        .cmp(&b.tier)
        .then(a.order.cmp(&b.order))
        .then(a.score.total_cmp(&b.score))
        .then(a.path.cmp(&b.path))
}

#[derive(Debug, Clone)]
struct PolicyState {
    spec: PolicySpec,
    class: usize,
    decision: Decision,
    started: bool,
    /// The challenger and since when it has been winning.
    candidate: Option<(u8, u64)>,
    last_switch: Option<u64>,
    /// Spread mode: since when each compliant non-member has been one.
    joining: [Option<u64>; MAX_PATHS],
    /// The next time this policy may move without new measurements.
    deadline: Option<u64>,
}

/// Path selection for one peer's paths `0..N` and every policy.
#[derive(Debug, Clone)]
pub struct Selector {
    peer: u32,
    cfg: SelectorConfig,
    classes: Vec<SlaClass>,
    /// Whether a policy uses the class (only those are judged).
    class_used: Vec<bool>,
    /// Per class, per path.
    verdicts: Vec<[PathVerdict; MAX_PATHS]>,
    policies: Vec<PolicyState>,
    events: VecDeque<SlaEvent>,
    counters: Counters,
}

fn valid_fraction(x: f64, below_one: bool) -> bool {
    x.is_finite() && x >= 0.0 && (!below_one || x < 1.0)
}

impl Selector {
    /// A selector for `peer` (which only labels it) with these classes and
    /// policies, in the order policies match.
    pub fn new(
        peer: u32,
        cfg: SelectorConfig,
        classes: Vec<SlaClass>,
        policies: Vec<PolicySpec>,
    ) -> Result<Selector, ConfigError> {
        let w = cfg.weights;
        if ![w.latency, w.jitter, w.loss]
            .into_iter()
            .all(|x| valid_fraction(x, false))
        {
            return Err(ConfigError::InvalidParameter("score weight"));
        }
        if !valid_fraction(cfg.margin, true)
            || !valid_fraction(cfg.margin_abs, false)
            || !valid_fraction(cfg.recover_margin, true)
            || !valid_fraction(cfg.loss_z_break, false)
            || !valid_fraction(cfg.loss_z_meet, false)
        {
            return Err(ConfigError::InvalidParameter("margin"));
        }
        if let Some(c) = classes.iter().find(|c| !c.is_valid()) {
            return Err(ConfigError::InvalidLimit {
                class: c.name.to_string(),
            });
        }
        let mut class_used = vec![false; classes.len()];
        let mut states = Vec::with_capacity(policies.len());
        for spec in policies {
            let Some(class) = classes.iter().position(|c| *c.name == *spec.sla) else {
                return Err(ConfigError::UnknownClass {
                    policy: spec.name.to_string(),
                    class: spec.sla.clone(),
                });
            };
            for r in &spec.path_order {
                if let PathRef::Path(p) = *r {
                    if usize::from(p) >= MAX_PATHS {
                        return Err(ConfigError::PathOutOfRange {
                            policy: spec.name.to_string(),
                            path: p,
                        });
                    }
                }
            }
            if let Some(u) = class_used.get_mut(class) {
                *u = true;
            }
            states.push(PolicyState {
                spec,
                class,
                decision: Decision {
                    choice: Choice::None,
                    degraded: true,
                },
                started: false,
                candidate: None,
                last_switch: None,
                joining: [None; MAX_PATHS],
                deadline: None,
            });
        }
        Ok(Selector {
            peer,
            cfg,
            verdicts: vec![[PathVerdict::default(); MAX_PATHS]; classes.len()],
            classes,
            class_used,
            policies: states,
            events: VecDeque::with_capacity(EVENT_QUEUE_LEN),
            counters: Counters::default(),
        })
    }

    pub fn peer(&self) -> u32 {
        self.peer
    }

    pub fn config(&self) -> &SelectorConfig {
        &self.cfg
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn policy_count(&self) -> usize {
        self.policies.len()
    }

    pub fn policy(&self, policy: usize) -> Option<&PolicySpec> {
        self.policies.get(policy).map(|p| &p.spec)
    }

    /// Policy `policy`'s decision (policies in configuration order).
    pub fn decision(&self, policy: usize) -> Option<Decision> {
        self.policies.get(policy).map(|p| p.decision)
    }

    /// Every policy's decision, in configuration order.
    pub fn decisions(&self) -> impl Iterator<Item = Decision> + '_ {
        self.policies.iter().map(|p| p.decision)
    }

    /// Whether `path` currently counts as compliant with class `class`.
    pub fn is_compliant(&self, class: usize, path: u8) -> bool {
        self.verdicts
            .get(class)
            .and_then(|v| v.get(usize::from(path)))
            .is_some_and(|v| v.standing == Standing::Compliant)
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<SlaEvent> {
        self.events.pop_front()
    }

    /// The earliest time a decision or a standing may change without new
    /// measurements (a hold, delay, cooldown or recovery maturing). The
    /// driver may call [`Selector::update`] then with the same qualities.
    pub fn poll_timeout(&self) -> Option<u64> {
        let recover = self
            .verdicts
            .iter()
            .flatten()
            .filter(|v| v.standing != Standing::Compliant)
            .filter_map(|v| v.clean_since)
            .map(|t| t.saturating_add(self.cfg.recover_hold_ns));
        let policies = self.policies.iter().filter_map(|p| p.deadline);
        recover.chain(policies).min()
    }

    /// Takes in every path's state at `now` (index = path index; paths past
    /// [`MAX_PATHS`] are ignored, missing paths count as down) and updates
    /// standings and decisions.
    pub fn update(&mut self, now: u64, paths: &[PathQuality]) {
        self.counters.updates += 1;
        let paths = paths.get(..MAX_PATHS).unwrap_or(paths);
        for c in 0..self.classes.len() {
            if !self.class_used.get(c).copied().unwrap_or(false) {
                continue;
            }
            for i in 0..MAX_PATHS {
                match paths.get(i) {
                    Some(q) => self.judge(now, c, i as u8, q),
                    None => {
                        if let Some(v) = self.verdicts.get_mut(c).and_then(|v| v.get_mut(i)) {
                            *v = PathVerdict::default();
                        }
                    }
                }
            }
        }
        let mut policies = core::mem::take(&mut self.policies);
        for p in &mut policies {
            let cands = self.candidates(p, paths);
            p.deadline = None;
            match p.spec.mode {
                Mode::BestPath => self.step_best(now, p, &cands, paths),
                Mode::SpreadCompliant => self.step_spread(now, p, &cands, paths),
            }
            p.started = true;
        }
        self.policies = policies;
    }

    fn push(&mut self, e: SlaEvent) {
        if self.events.len() >= EVENT_QUEUE_LEN {
            self.events.pop_front();
            self.counters.events_dropped += 1;
        }
        self.events.push_back(e);
    }

    /// Updates the standing of `path` against class `c`.
    fn judge(&mut self, now: u64, c: usize, path: u8, q: &PathQuality) {
        let (Some(class), Some(v)) = (
            self.classes.get(c),
            self.verdicts
                .get(c)
                .and_then(|v| v.get(usize::from(path)))
                .copied(),
        ) else {
            return;
        };
        let mut v = v;
        let mut event = None;
        if !q.up || !q.measured(self.cfg.min_samples) {
            // No evidence: the standing holds, continuity is lost.
            v.clean_since = None;
        } else {
            // The worst break, by how far past its limit it is. Loss must
            // break its limit with evidence: at 10 probes a second one lost
            // probe is 1 % of a 10 s window, so the point estimate alone
            // would break a 1 % limit on noise.
            let (z_break, z_meet) = (self.cfg.loss_z_break, self.cfg.loss_z_meet);
            let breach = Metric::ALL
                .into_iter()
                .filter_map(|m| {
                    let limit = class.limit(m)?;
                    let value = q.value(m);
                    let evident = m != Metric::Loss || {
                        let n = u64::from(q.samples);
                        let k = (value / 100.0 * n as f64).round() as u64;
                        wilson_bounds(k, n, z_break).0 * 100.0 > limit
                    };
                    (value > limit && evident).then_some((m, value, limit))
                })
                .max_by(|a, b| (a.1 / a.2).total_cmp(&(b.1 / b.2)));
            let clean = Metric::ALL.into_iter().all(|m| {
                class
                    .limit(m)
                    .is_none_or(|l| q.value(m) <= l * (1.0 - self.cfg.recover_margin))
            });
            if let Some((metric, value, limit)) = breach {
                v.clean_since = None;
                if v.standing != Standing::Violated {
                    v.standing = Standing::Violated;
                    self.counters.violations += 1;
                    event = Some(SlaEvent::Violation {
                        at_ns: now,
                        class: class.name.clone(),
                        path,
                        metric,
                        value,
                        limit,
                        metrics: q.metrics(),
                    });
                }
            } else if v.standing != Standing::Compliant {
                if clean {
                    if v.clean_since.is_none() {
                        v.clean_since = Some(now);
                        v.clean_base = (q.resolved_total, q.lost_total);
                    }
                    let since = v.clean_since.unwrap_or(now);
                    // The loss since the path came clean must be below the
                    // recovery level with evidence, however long that
                    // takes at this probe rate (a 1 % limit at 10 probes a
                    // second: about a minute of clean probes).
                    let loss_proven = class.limit(Metric::Loss).is_none_or(|l| {
                        let n = q.resolved_total.saturating_sub(v.clean_base.0);
                        let k = q.lost_total.saturating_sub(v.clean_base.1);
                        wilson_bounds(k, n, z_meet).1 * 100.0 <= l * (1.0 - self.cfg.recover_margin)
                    });
                    if now.saturating_sub(since) >= self.cfg.recover_hold_ns && loss_proven {
                        if v.standing == Standing::Violated {
                            self.counters.recoveries += 1;
                            event = Some(SlaEvent::Recovery {
                                at_ns: now,
                                class: class.name.clone(),
                                path,
                                metrics: q.metrics(),
                            });
                        }
                        v.standing = Standing::Compliant;
                        v.clean_since = None;
                    }
                } else {
                    v.clean_since = None;
                }
            }
        }
        if let Some(slot) = self
            .verdicts
            .get_mut(c)
            .and_then(|s| s.get_mut(usize::from(path)))
        {
            *slot = v;
        }
        if let Some(e) = event {
            self.push(e);
        }
    }

    fn score(&self, class: &SlaClass, q: &PathQuality) -> f64 {
        let w = &self.cfg.weights;
        if !q.measured(self.cfg.min_samples) {
            return TERM_MAX * w.sum();
        }
        Metric::ALL
            .into_iter()
            .map(|m| {
                let scale = class.limit(m).filter(|l| *l > 0.0).unwrap_or(m.reference());
                w.of(m) * (q.value(m) / scale).clamp(0.0, TERM_MAX)
            })
            .sum()
    }

    /// The paths that are up and the policy may use, best first.
    fn candidates(&self, p: &PolicyState, paths: &[PathQuality]) -> Vec<Cand> {
        let Some(class) = self.classes.get(p.class) else {
            return Vec::new();
        };
        let order = &p.spec.path_order;
        let spread = p.spec.mode == Mode::SpreadCompliant;
        let mut cands: Vec<Cand> = paths
            .iter()
            .enumerate()
            .filter(|(_, q)| q.up)
            .filter_map(|(i, q)| {
                let path = i as u8;
                let pos = order
                    .iter()
                    .position(|r| *r == PathRef::Path(path) || *r == PathRef::Port(q.port));
                let order = match (spread, pos) {
                    (true, None) if !order.is_empty() => return None,
                    (true, _) => 0,
                    (false, pos) => pos.unwrap_or(order.len()),
                };
                let standing = self
                    .verdicts
                    .get(p.class)
                    .and_then(|v| v.get(i))
                    .map_or(Standing::Unproven, |v| v.standing);
                let tier = match standing {
                    Standing::Compliant => TIER_COMPLIANT,
                    Standing::Unproven => TIER_UNPROVEN,
                    Standing::Violated => TIER_VIOLATED,
                };
                Some(Cand {
                    path,
                    tier,
                    order,
                    score: self.score(class, q),
                })
            })
            .collect();
        cands.sort_by(rank);
        cands
    }

    fn beats(&self, challenger: f64, incumbent: f64) -> bool {
        let gap = incumbent - challenger;
        gap >= self.cfg.margin * incumbent && gap >= self.cfg.margin_abs
    }

    fn cooldown_end(&self, p: &PolicyState) -> u64 {
        p.last_switch
            .map_or(0, |t| t.saturating_add(self.cfg.cooldown_ns))
    }

    #[allow(clippy::too_many_arguments)]
    fn switch(
        &mut self,
        now: u64,
        p: &mut PolicyState,
        to: Choice,
        reason: SwitchReason,
        forced: bool,
        cause: Option<u8>,
        paths: &[PathQuality],
    ) {
        let from = p.decision.choice;
        if from == to {
            return;
        }
        p.decision.choice = to;
        p.last_switch = Some(now);
        p.candidate = None;
        match (reason, forced) {
            (SwitchReason::Initial, _) => {}
            (_, true) => self.counters.forced_switches += 1,
            (_, false) => self.counters.switches += 1,
        }
        let metrics = cause
            .and_then(|i| paths.get(usize::from(i)))
            .map(PathQuality::metrics);
        self.push(SlaEvent::Switch {
            at_ns: now,
            policy: p.spec.name.clone(),
            from,
            to,
            reason,
            path: cause,
            metrics,
        });
    }

    fn set_degraded(
        &mut self,
        now: u64,
        p: &mut PolicyState,
        degraded: bool,
        paths: &[PathQuality],
    ) {
        if degraded && !p.decision.degraded {
            self.counters.degraded += 1;
            let path = p.decision.pinned();
            self.push(SlaEvent::Degraded {
                at_ns: now,
                policy: p.spec.name.clone(),
                path,
                metrics: path
                    .and_then(|i| paths.get(usize::from(i)))
                    .map(PathQuality::metrics),
            });
        }
        p.decision.degraded = degraded;
    }

    /// One policy in [`Mode::BestPath`] (or a degraded spread policy).
    fn step_best(&mut self, now: u64, p: &mut PolicyState, cands: &[Cand], paths: &[PathQuality]) {
        let cur = p.decision.pinned();
        let Some(best) = cands.first().copied() else {
            self.switch(now, p, Choice::None, SwitchReason::Down, true, cur, paths);
            self.set_degraded(now, p, true, paths);
            return;
        };
        let inc = cur.and_then(|i| cands.iter().find(|c| c.path == i).copied());
        match inc {
            None => {
                let (reason, cause) = match cur {
                    Some(_) => (SwitchReason::Down, cur),
                    None => (SwitchReason::Initial, Some(best.path)),
                };
                let to = Choice::Pinned(best.path);
                self.switch(now, p, to, reason, true, cause, paths);
            }
            Some(c) if c.path == best.path => p.candidate = None,
            Some(c) if c.tier == TIER_VIOLATED && best.tier == TIER_COMPLIANT => {
                let to = Choice::Pinned(best.path);
                self.switch(
                    now,
                    p,
                    to,
                    SwitchReason::HardLimit,
                    true,
                    Some(c.path),
                    paths,
                );
            }
            Some(c) => {
                // An incumbent not yet judged (unproven) is not known to
                // be bad: leaving it for a path that happened to prove
                // itself first, and coming back when the preferred one
                // proves itself too, is the start-up flap. Tier moves are
                // off violated paths only.
                let challenge = if best.tier < c.tier && c.tier == TIER_VIOLATED {
                    // (A compliant challenger was a forced move above.)
                    Some((self.cfg.hold_ns, SwitchReason::HardLimit))
                } else if best.order < c.order && best.tier == TIER_COMPLIANT {
                    // Back to a preferred path only when it meets the
                    // class: between paths that both break it (or are both
                    // unproven), moving back and forth by order would be
                    // flapping on noise.
                    Some((self.cfg.failback_delay_ns, SwitchReason::Failback))
                } else if best.tier == TIER_COMPLIANT
                    && c.tier == TIER_COMPLIANT
                    && self.beats(best.score, c.score)
                {
                    // By score only among paths that meet the class: when
                    // none does, their scores differ mostly by noise, and
                    // moving would only move the damage around.
                    Some((self.cfg.hold_ns, SwitchReason::Better))
                } else {
                    None
                };
                match challenge {
                    None => p.candidate = None,
                    Some((wait, reason)) => {
                        let since = match p.candidate {
                            Some((path, since)) if path == best.path => since,
                            _ => {
                                p.candidate = Some((best.path, now));
                                now
                            }
                        };
                        let ready = since.saturating_add(wait);
                        let at = ready.max(self.cooldown_end(p));
                        if now >= at {
                            let to = Choice::Pinned(best.path);
                            self.switch(now, p, to, reason, false, Some(best.path), paths);
                        } else {
                            if now >= ready {
                                self.counters.held_by_cooldown += 1;
                            }
                            p.deadline = Some(at);
                        }
                    }
                }
            }
        }
        let tier = p
            .decision
            .pinned()
            .and_then(|i| cands.iter().find(|c| c.path == i))
            .map_or(TIER_VIOLATED, |c| c.tier);
        self.set_degraded(now, p, tier != TIER_COMPLIANT, paths);
    }

    /// One policy in [`Mode::SpreadCompliant`].
    fn step_spread(
        &mut self,
        now: u64,
        p: &mut PolicyState,
        cands: &[Cand],
        paths: &[PathQuality],
    ) {
        let compliant = cands
            .iter()
            .filter(|c| c.tier == TIER_COMPLIANT)
            .fold(0u8, |m, c| m | (1 << c.path));
        let down = |i: u8| paths.get(usize::from(i)).is_none_or(|q| !q.up);
        let lowest = |mask: u8| (mask != 0).then(|| mask.trailing_zeros() as u8);
        if compliant == 0 {
            p.joining = [None; MAX_PATHS];
            if let Choice::Spread(set) = p.decision.choice {
                // The last compliant member left: pin the best path up.
                let gone = lowest(set.mask());
                let reason = if gone.is_some_and(down) {
                    SwitchReason::Down
                } else {
                    SwitchReason::HardLimit
                };
                let to = cands
                    .first()
                    .map_or(Choice::None, |b| Choice::Pinned(b.path));
                self.switch(now, p, to, reason, true, gone, paths);
                self.set_degraded(now, p, true, paths);
                return;
            }
            return self.step_best(now, p, cands, paths);
        }
        let Choice::Spread(set) = p.decision.choice else {
            // Initial, or out of degraded: every compliant path at once.
            p.joining = [None; MAX_PATHS];
            let reason = if p.started {
                SwitchReason::Compliant
            } else {
                SwitchReason::Initial
            };
            let to = Choice::Spread(weights(compliant, paths));
            self.switch(now, p, to, reason, true, lowest(compliant), paths);
            self.set_degraded(now, p, false, paths);
            return;
        };
        let members = set.mask();
        let keep = members & compliant;
        let mut ready = 0u8;
        let mut next_join: Option<u64> = None;
        for (i, joining) in p.joining.iter_mut().enumerate() {
            let bit = 1u8 << i;
            if compliant & bit != 0 && members & bit == 0 {
                let since = *joining.get_or_insert(now);
                let at = since.saturating_add(self.cfg.hold_ns);
                if now >= at {
                    ready |= bit;
                } else {
                    next_join = Some(next_join.map_or(at, |t| t.min(at)));
                }
            } else {
                *joining = None;
            }
        }
        let mut new = keep;
        if keep == 0 {
            new = compliant;
        } else if ready != 0 {
            let cool = self.cooldown_end(p);
            if now >= cool {
                new |= ready;
            } else {
                self.counters.held_by_cooldown += 1;
                next_join = Some(next_join.map_or(cool, |t| t.min(cool)));
            }
        }
        p.deadline = next_join;
        let new_set = weights(new, paths);
        if new != members {
            let removed = members & !new;
            let added = new & !members;
            for (i, j) in p.joining.iter_mut().enumerate() {
                if added & (1 << i) != 0 {
                    *j = None;
                }
            }
            if let Some(gone) = lowest(removed) {
                let reason = if down(gone) {
                    SwitchReason::Down
                } else {
                    SwitchReason::HardLimit
                };
                let to = Choice::Spread(new_set);
                self.switch(now, p, to, reason, true, Some(gone), paths);
            } else {
                let to = Choice::Spread(new_set);
                let cause = lowest(added);
                self.switch(now, p, to, SwitchReason::Compliant, false, cause, paths);
            }
        } else if reweigh(&set, &new_set) {
            p.decision.choice = Choice::Spread(new_set);
            self.counters.reweights += 1;
        }
        self.set_degraded(now, p, false, paths);
    }
}

/// The members of `mask` weighted by capacity, scaled to sum to about 255
/// (each at least 1). An unknown (0) capacity counts as the smallest known
/// one; with none known the members share equally.
fn weights(mask: u8, paths: &[PathQuality]) -> WeightedSet {
    let cap = |i: usize| paths.get(i).map_or(0, |q| q.capacity_bps);
    let members = || (0..MAX_PATHS).filter(move |i| mask & (1 << i) != 0);
    let floor = members().map(cap).filter(|&c| c > 0).min().unwrap_or(1);
    let total: f64 = members().map(|i| cap(i).max(floor) as f64).sum();
    let mut set = WeightedSet::EMPTY;
    if total > 0.0 {
        for i in members() {
            let share = cap(i).max(floor) as f64 / total;
            set.set(i as u8, (share * 255.0).round().clamp(1.0, 255.0) as u8);
        }
    }
    set
}

/// Whether some member's weight moved by more than 10 % (and more than 1).
fn reweigh(old: &WeightedSet, new: &WeightedSet) -> bool {
    old.iter().any(|(i, w)| {
        let n = new.weight(i);
        n.abs_diff(w) > 1 && f64::from(n.abs_diff(w)) > 0.1 * f64::from(w)
    })
}

#[cfg(test)]
mod tests;
