//! Steal time: how long the hypervisor ran something else on one of our
//! virtual CPUs. The TSC keeps counting meanwhile, so a round with steal on
//! the worker's CPU reports inflated cycles per packet; the report says how
//! much there was, so such rounds can be recognised.

/// Clock ticks per second of /proc/stat (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// Steal time of `cpu` so far, in seconds (None off Linux or in a
/// container without the field).
pub fn seconds(cpu: usize) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let label = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))?;
    // cpuN user nice system idle iowait irq softirq steal ...
    let ticks: u64 = line.split_whitespace().nth(8)?.parse().ok()?;
    Some(ticks as f64 / USER_HZ)
}

/// Steal on `cpu` between two readings, as a percentage of `window` seconds.
pub fn percent(before: Option<f64>, after: Option<f64>, window: f64) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if window > 0.0 => Some(((a - b) / window * 100.0).max(0.0)),
        _ => None,
    }
}
