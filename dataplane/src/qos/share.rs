//! Sharing one WAN port's rate among the N workers that send on it.
//!
//! Each worker shapes to its own share of the port rate (its scheduler's
//! port bucket), so no per-packet state is shared. The control thread
//! moves the shares toward the workers' demand: every worker publishes,
//! as cumulative single-writer counters, the wire bytes offered to its
//! scheduler and how often its port bucket held a packet back
//! ([`Scheduler::throttled`]); it reads its share from one relaxed atomic.
//! [`ShareBalancer::rebalance`] turns those into new shares, max-min fair:
//!
//! - a worker its bucket never held back is *satisfied*: it gets its
//!   offered rate plus 1/64 headroom (at least a small floor, so an idle
//!   worker can start sending and be seen);
//! - a worker held back is *limited*: it asks for its offered rate (which
//!   counts what was dropped) or twice its share, whichever is more, so a
//!   flooded worker gets its fill at once and a responsive (TCP) one ramps
//!   up by doubling;
//! - water-filling grants the smallest asks in full and splits what remains
//!   equally among the rest; if everyone is satisfied, the remainder is
//!   spread over all. The shares always add up to the port rate.
//!
//! Being held back is a crisp signal where comparing noisy rates is not: a
//! worker under its share keeps a full bucket. What satisfied workers are
//! given but do not use (the headroom and the floors) is at most 1/64 of
//! their demand plus 1/256 of the rate, so while any worker wants more the
//! port carries its configured rate within 2%. The headroom must exceed the
//! noise of one interval's measurement: with 1000-byte packets, an interval
//! should see a hundred or more of each worker's packets (50 to 100 ms at
//! 10 Mbit/s); a worker whose demand jumps waits one interval for more.
//!
//! Sans-I/O: `rebalance` takes `now` in ticks; [`max_min_shares`] is the
//! pure allocation.

use super::scheduler::Scheduler;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Most workers sharing one port.
pub const MAX_WORKERS: usize = 64;

/// What one worker wants for the next interval, as the balancer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demand {
    /// Offered this many bits per second and was never held back.
    Satisfied(u64),
    /// Was held back by its share: asks for this much.
    Limited(u64),
}

/// The max-min fair split of `total` over `demands` into `out` (the
/// shorter of the two is used). The shares sum to exactly `total`.
pub fn max_min_shares(total: u64, demands: &[Demand], out: &mut [u64]) {
    let n = demands.len().min(out.len()).min(MAX_WORKERS);
    if n == 0 {
        return;
    }
    let floor = total / (256 * n as u64);
    let mut want = [0u64; MAX_WORKERS];
    let mut order = [0usize; MAX_WORKERS];
    for i in 0..n {
        want[i] = match demands[i] {
            Demand::Satisfied(d) => d.saturating_add(d / 64).max(floor),
            Demand::Limited(ask) => ask.max(floor),
        };
        order[i] = i;
    }
    let order = &mut order[..n];
    order.sort_unstable_by_key(|&i| (want[i], i));
    let (mut remaining, mut left) = (total, n as u64);
    let mut filled = 0;
    for &i in order.iter() {
        let fair = remaining / left;
        if want[i] > fair {
            break;
        }
        out[i] = want[i];
        remaining -= want[i];
        left -= 1;
        filled += 1;
    }
    // The rest split what remains equally; if nobody is left, everybody
    // shares the leftover.
    let rest: &[usize] = if left > 0 { &order[filled..] } else { order };
    let k = rest.len() as u64;
    let (each, extra) = (remaining / k, remaining % k);
    for (j, &i) in rest.iter().enumerate() {
        let add = each + u64::from((j as u64) < extra);
        out[i] = if left > 0 { add } else { out[i] + add };
    }
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct WorkerSlot {
    /// Written by the worker only: wire bytes offered, and dequeues its
    /// port bucket refused, both cumulative.
    offered: AtomicU64,
    throttled: AtomicU64,
    /// Written by the control thread only: this worker's rate, bit/s.
    share: AtomicU64,
}

/// The shares of one port, shared (in an `Arc`) by the control thread and
/// the workers. Lock-free: one writer per atomic, relaxed ordering (a share
/// read one interval late is harmless).
#[derive(Debug)]
pub struct PortShares {
    rate: AtomicU64,
    slots: Box<[WorkerSlot]>,
}

impl PortShares {
    /// `workers` (1..=[`MAX_WORKERS`]) start with equal shares of `rate_bps`.
    pub fn new(rate_bps: u64, workers: usize) -> Option<PortShares> {
        if !(1..=MAX_WORKERS).contains(&workers) {
            return None;
        }
        let shares = PortShares {
            rate: AtomicU64::new(rate_bps),
            slots: (0..workers).map(|_| WorkerSlot::default()).collect(),
        };
        let mut out = [0u64; MAX_WORKERS];
        max_min_shares(
            rate_bps,
            &[Demand::Limited(u64::MAX); MAX_WORKERS][..workers],
            &mut out,
        );
        for (slot, share) in shares.slots.iter().zip(out) {
            slot.share.store(share, Relaxed);
        }
        Some(shares)
    }

    pub fn workers(&self) -> usize {
        self.slots.len()
    }

    /// The configured port rate.
    pub fn rate_bps(&self) -> u64 {
        self.rate.load(Relaxed)
    }

    /// Changes the port rate; the next rebalance applies it.
    pub fn set_rate_bps(&self, rate_bps: u64) {
        self.rate.store(rate_bps, Relaxed);
    }

    /// Worker side: the rate to shape to (0 for an unknown worker).
    #[inline(always)]
    pub fn share_bps(&self, worker: usize) -> u64 {
        self.slots.get(worker).map_or(0, |s| s.share.load(Relaxed))
    }

    /// Worker side: publishes its scheduler's cumulative demand counters
    /// ([`Scheduler::offered_bytes`], [`Scheduler::throttled`]).
    #[inline(always)]
    pub fn publish<P>(&self, worker: usize, scheduler: &Scheduler<P>) {
        self.publish_demand(worker, scheduler.offered_bytes(), scheduler.throttled());
    }

    /// [`PortShares::publish`] from the raw counters.
    #[inline(always)]
    pub fn publish_demand(&self, worker: usize, offered_bytes: u64, throttled: u64) {
        if let Some(s) = self.slots.get(worker) {
            s.offered.store(offered_bytes, Relaxed);
            s.throttled.store(throttled, Relaxed);
        }
    }
}

/// The control thread's side: remembers the last sample of every worker.
#[derive(Debug)]
pub struct ShareBalancer {
    shares: Arc<PortShares>,
    ticks_per_second: u64,
    last: Option<u64>,
    last_offered: [u64; MAX_WORKERS],
    last_throttled: [u64; MAX_WORKERS],
}

impl ShareBalancer {
    pub fn new(shares: Arc<PortShares>, ticks_per_second: u64) -> ShareBalancer {
        ShareBalancer {
            shares,
            ticks_per_second: ticks_per_second.max(1),
            last: None,
            last_offered: [0; MAX_WORKERS],
            last_throttled: [0; MAX_WORKERS],
        }
    }

    pub fn shares(&self) -> &Arc<PortShares> {
        &self.shares
    }

    /// Measures each worker's offered rate since the last call and
    /// publishes new shares. The first call only takes the first sample.
    pub fn rebalance(&mut self, now: u64) {
        let n = self.shares.workers();
        let mut demands = [Demand::Satisfied(0); MAX_WORKERS];
        let elapsed = self.last.map(|t| now.saturating_sub(t));
        for (i, demand) in demands.iter_mut().enumerate().take(n) {
            let slot = &self.shares.slots[i];
            let offered = slot.offered.load(Relaxed);
            let throttled = slot.throttled.load(Relaxed);
            let delta = offered.saturating_sub(self.last_offered[i]);
            let held_back = throttled != self.last_throttled[i];
            self.last_offered[i] = offered;
            self.last_throttled[i] = throttled;
            let Some(dt) = elapsed.filter(|&dt| dt > 0) else {
                continue;
            };
            let bps = u128::from(delta) * 8 * u128::from(self.ticks_per_second) / u128::from(dt);
            let bps = bps.min(u128::from(u64::MAX)) as u64;
            let share = self.shares.share_bps(i);
            *demand = if held_back {
                Demand::Limited(bps.saturating_add(bps / 64).max(share.saturating_mul(2)))
            } else {
                Demand::Satisfied(bps)
            };
        }
        if elapsed.is_none_or(|dt| dt == 0) {
            self.last = Some(now);
            return;
        }
        self.last = Some(now);
        let mut out = [0u64; MAX_WORKERS];
        max_min_shares(self.shares.rate_bps(), &demands[..n], &mut out[..n]);
        for (slot, share) in self.shares.slots.iter().zip(out) {
            slot.share.store(share, Relaxed);
        }
    }
}
