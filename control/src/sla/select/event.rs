//! What the selector reports: SLA violations and recoveries of a path
//! against a class, path switches of a policy, and policies left without
//! a compliant path. Each carries the measurements that caused it, and
//! prints as one log line. [`EventRing`] keeps the latest ones, in fixed
//! memory, for the API.

use super::class::Metric;
use super::hrw::WeightedSet;
use core::fmt;
use std::sync::Arc;

/// A path's measurements at the time of an event.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    /// p95 RTT, milliseconds.
    pub rtt_ms: f64,
    pub jitter_ms: f64,
    pub loss_pct: f64,
}

impl fmt::Display for Metrics {
    /// Unmeasured figures (NaN: too few probes yet) print as "-".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = |x: f64, digits: usize, unit: &str| {
            if x.is_finite() {
                format!("{x:.digits$}{unit}")
            } else {
                "-".to_string()
            }
        };
        write!(
            f,
            "rtt_p95={} jitter={} loss={}",
            v(self.rtt_ms, 1, "ms"),
            v(self.jitter_ms, 1, "ms"),
            v(self.loss_pct, 2, "%")
        )
    }
}

/// Paths print by number, 1 first, as the config and the BFD and
/// WireGuard logs name them; the selector counts from 0.
struct PathNo(u8);

impl fmt::Display for PathNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", u32::from(self.0) + 1)
    }
}

/// What a policy's traffic is sent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice {
    /// No path is up.
    #[default]
    None,
    /// Every flow on this path.
    Pinned(u8),
    /// Flows spread over these paths by weight ([`super::hrw::pick`]).
    Spread(WeightedSet),
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::None => write!(f, "none"),
            Choice::Pinned(p) => write!(f, "path {}", PathNo(*p)),
            Choice::Spread(s) => {
                write!(f, "spread[")?;
                for (n, (i, w)) in s.iter().enumerate() {
                    if n > 0 {
                        write!(f, " ")?;
                    }
                    write!(f, "{}:{w}", PathNo(i))?;
                }
                write!(f, "]")
            }
        }
    }
}

/// Why a policy changed paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchReason {
    /// The first choice, or the first since no path was up.
    Initial,
    /// The path went down (BFD or probes): moved at once.
    Down,
    /// The path broke a hard limit of the class: moved at once to a
    /// compliant path, or after the hold to one not yet judged.
    HardLimit,
    /// A better-scoring path won by the margin for the hold time.
    Better,
    /// The preferred path stayed compliant for the failback delay.
    Failback,
    /// A compliant path appeared while the policy was degraded, or joined
    /// a spread set after the hold time.
    Compliant,
}

impl SwitchReason {
    pub const fn name(self) -> &'static str {
        match self {
            SwitchReason::Initial => "initial",
            SwitchReason::Down => "path-down",
            SwitchReason::HardLimit => "hard-limit",
            SwitchReason::Better => "better-score",
            SwitchReason::Failback => "failback",
            SwitchReason::Compliant => "compliant",
        }
    }
}

/// One event. `at_ns` is the `now` of the update that raised it.
#[derive(Debug, Clone, PartialEq)]
pub enum SlaEvent {
    /// `path` broke `class`'s limit on `metric`.
    Violation {
        at_ns: u64,
        class: Arc<str>,
        path: u8,
        metric: Metric,
        value: f64,
        limit: f64,
        metrics: Metrics,
    },
    /// `path` has met every limit of `class`, with the recovery margin,
    /// for the recovery hold time.
    Recovery {
        at_ns: u64,
        class: Arc<str>,
        path: u8,
        metrics: Metrics,
    },
    /// `policy` moved its traffic. `path` and `metrics` name the path that
    /// caused it: the one left (down, hard limit) or the one taken.
    Switch {
        at_ns: u64,
        policy: Arc<str>,
        from: Choice,
        to: Choice,
        reason: SwitchReason,
        path: Option<u8>,
        metrics: Option<Metrics>,
    },
    /// `policy` has no compliant path: it uses `path` (None if none is up).
    Degraded {
        at_ns: u64,
        policy: Arc<str>,
        path: Option<u8>,
        metrics: Option<Metrics>,
    },
}

impl SlaEvent {
    pub fn at_ns(&self) -> u64 {
        match self {
            SlaEvent::Violation { at_ns, .. }
            | SlaEvent::Recovery { at_ns, .. }
            | SlaEvent::Switch { at_ns, .. }
            | SlaEvent::Degraded { at_ns, .. } => *at_ns,
        }
    }
}

impl fmt::Display for SlaEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlaEvent::Violation {
                class,
                path,
                metric,
                value,
                limit,
                metrics,
                ..
            } => write!(
                f,
                "SLA violation: path {} class {class}: {} {value:.2}{u} > {limit:.2}{u} ({metrics})",
                PathNo(*path),
                metric.name(),
                u = metric.unit()
            ),
            SlaEvent::Recovery {
                class,
                path,
                metrics,
                ..
            } => write!(
                f,
                "SLA recovery: path {} class {class} ({metrics})",
                PathNo(*path)
            ),
            SlaEvent::Switch {
                policy,
                from,
                to,
                reason,
                path,
                metrics,
                ..
            } => {
                write!(
                    f,
                    "path switch: policy {policy}: {from} -> {to} ({})",
                    reason.name()
                )?;
                if let (Some(p), Some(m)) = (path, metrics) {
                    write!(f, " path {}: {m}", PathNo(*p))?;
                }
                Ok(())
            }
            SlaEvent::Degraded {
                policy,
                path,
                metrics,
                ..
            } => {
                write!(f, "SLA degraded: policy {policy}: no compliant path")?;
                match (path, metrics) {
                    (Some(p), Some(m)) => write!(f, ", using path {} ({m})", PathNo(*p)),
                    (Some(p), None) => write!(f, ", using path {}", PathNo(*p)),
                    _ => write!(f, ", no path up"),
                }
            }
        }
    }
}

/// An event as the ring keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Increases by one per event pushed, across wraps.
    pub seq: u64,
    pub peer: u32,
    pub event: SlaEvent,
}

/// The latest events, oldest overwritten first. Its memory is allocated
/// once, at construction.
#[derive(Debug, Clone)]
pub struct EventRing {
    slots: Vec<Option<EventRecord>>,
    /// Index of the oldest record.
    head: usize,
    len: usize,
    next_seq: u64,
}

impl EventRing {
    /// The ring the daemon keeps for the API.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// A ring of `capacity` records (at least one).
    pub fn new(capacity: usize) -> EventRing {
        let capacity = capacity.max(1);
        EventRing {
            slots: vec![None; capacity],
            head: 0,
            len: 0,
            next_seq: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Events pushed over the ring's life, kept or overwritten.
    pub fn pushed(&self) -> u64 {
        self.next_seq
    }

    /// Keeps `event`, overwriting the oldest when full; returns its seq.
    pub fn push(&mut self, peer: u32, event: SlaEvent) -> u64 {
        let cap = self.slots.len();
        let seq = self.next_seq;
        self.next_seq += 1;
        let idx = (self.head + self.len) % cap;
        if let Some(slot) = self.slots.get_mut(idx) {
            *slot = Some(EventRecord { seq, peer, event });
        }
        if self.len == cap {
            self.head = (self.head + 1) % cap;
        } else {
            self.len += 1;
        }
        seq
    }

    /// The kept records, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &EventRecord> + '_ {
        let cap = self.slots.len();
        (0..self.len).filter_map(move |k| self.slots.get((self.head + k) % cap)?.as_ref())
    }

    /// The kept records with `seq >= from`, oldest first: what an API
    /// client that has seen everything before `from` asks for.
    pub fn since(&self, from: u64) -> impl Iterator<Item = &EventRecord> + '_ {
        self.iter().filter(move |r| r.seq >= from)
    }
}

impl Default for EventRing {
    fn default() -> Self {
        EventRing::new(EventRing::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recovery(at_ns: u64) -> SlaEvent {
        SlaEvent::Recovery {
            at_ns,
            class: Arc::from("realtime"),
            path: 1,
            metrics: Metrics::default(),
        }
    }

    #[test]
    fn events_ring_wraps_without_growing() {
        let mut r = EventRing::new(4);
        let cap_before = (r.capacity(), r.slots.capacity());
        assert!(r.is_empty());
        for t in 0..10 {
            assert_eq!(r.push(7, recovery(t)), t);
        }
        assert_eq!((r.capacity(), r.slots.capacity()), cap_before);
        assert_eq!(r.len(), 4);
        assert_eq!(r.pushed(), 10);
        let seqs: Vec<u64> = r.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [6, 7, 8, 9]);
        let times: Vec<u64> = r.iter().map(|e| e.event.at_ns()).collect();
        assert_eq!(times, [6, 7, 8, 9]);
        let since: Vec<u64> = r.since(8).map(|e| e.seq).collect();
        assert_eq!(since, [8, 9]);
        assert_eq!(r.since(0).count(), 4);
        assert_eq!(EventRing::new(0).capacity(), 1);
        assert_eq!(EventRing::default().capacity(), 1024);
    }

    #[test]
    fn events_print_with_their_measurements() {
        let m = Metrics {
            rtt_ms: 40.0,
            jitter_ms: 10.0,
            loss_pct: 3.0,
        };
        let v = SlaEvent::Violation {
            at_ns: 0,
            class: Arc::from("realtime"),
            path: 0,
            metric: Metric::Loss,
            value: 3.0,
            limit: 1.0,
            metrics: m,
        };
        assert_eq!(
            v.to_string(),
            "SLA violation: path 1 class realtime: loss 3.00% > 1.00% \
             (rtt_p95=40.0ms jitter=10.0ms loss=3.00%)"
        );
        let mut set = WeightedSet::EMPTY;
        set.set(1, 170);
        set.set(2, 85);
        let s = SlaEvent::Switch {
            at_ns: 0,
            policy: Arc::from("voice"),
            from: Choice::Pinned(0),
            to: Choice::Spread(set),
            reason: SwitchReason::HardLimit,
            path: Some(0),
            metrics: Some(m),
        };
        assert_eq!(
            s.to_string(),
            "path switch: policy voice: path 1 -> spread[2:170 3:85] (hard-limit) \
             path 1: rtt_p95=40.0ms jitter=10.0ms loss=3.00%"
        );
        let d = SlaEvent::Degraded {
            at_ns: 0,
            policy: Arc::from("voice"),
            path: None,
            metrics: None,
        };
        assert_eq!(
            d.to_string(),
            "SLA degraded: policy voice: no compliant path, no path up"
        );
    }
}
