//! `/metrics`: the node's counters and measurements in the Prometheus text
//! exposition format (version 0.0.4), rendered with the `prometheus` crate.
//!
//! Conventions (Prometheus "metric and label naming"): every name starts
//! with `patronus_`; values are in base units (seconds, bytes, ratios
//! 0–1, never ms or %); counters end in `_total`. Label cardinality is
//! bounded by configuration, never by traffic: ports, cores, peers, paths,
//! QoS classes and DPI categories are configured or fixed sets, and
//! applications are exported only for the top [`TOP_APPS`]. Per-flow data
//! is not exported at all (it is in `GET /api/v1/flows`, top N).
//!
//! A fresh registry is filled from the current snapshot on each scrape. A
//! long-lived registry updated by each publish would have to delete the
//! series of peers and paths that disappear, and counters would have to be
//! turned into deltas; the snapshot already is the state, and a scrape
//! every few seconds rebuilding a few thousand series costs microseconds
//! to milliseconds on the API thread, not on the workers.

use super::model::BfdState;
use super::state::{unix_now, ApiState, Snapshot};
use prometheus::core::Collector;
use prometheus::{CounterVec, GaugeVec, Opts, Registry, TextEncoder};

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Applications exported per scrape at most.
pub const TOP_APPS: usize = 20;

/// Non-snapshot inputs of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub version: String,
    pub ready: bool,
    pub start_time_unix: f64,
}

struct Families<'r> {
    registry: &'r Registry,
}

impl Families<'_> {
    fn register<C: Collector + Clone + 'static>(&self, c: C) -> prometheus::Result<C> {
        self.registry.register(Box::new(c.clone()))?;
        Ok(c)
    }

    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<GaugeVec> {
        self.register(GaugeVec::new(Opts::new(name, help), labels)?)
    }

    fn counter(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<CounterVec> {
        self.register(CounterVec::new(Opts::new(name, help), labels)?)
    }
}

/// Counters come from the daemon's absolute values; one that is negative
/// or not finite (a bug upstream) is left out rather than panicking the
/// crate's debug assertion or lying.
fn count(v: &CounterVec, labels: &[&str], value: f64) -> prometheus::Result<()> {
    if value.is_finite() && value >= 0.0 {
        v.get_metric_with_label_values(labels)?.inc_by(value);
    }
    Ok(())
}

fn set(v: &GaugeVec, labels: &[&str], value: f64) -> prometheus::Result<()> {
    if value.is_finite() {
        v.get_metric_with_label_values(labels)?.set(value);
    }
    Ok(())
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The scrape for the state's current snapshot.
pub fn render(api: &ApiState) -> prometheus::Result<String> {
    let snap = api.snapshot();
    let status = api.status();
    render_snapshot(
        &snap,
        &Meta {
            version: status.version,
            ready: status.ready,
            start_time_unix: unix_now() - status.uptime_seconds,
        },
    )
}

/// The exposition text of one snapshot.
pub fn render_snapshot(snap: &Snapshot, meta: &Meta) -> prometheus::Result<String> {
    let registry = Registry::new();
    let f = Families {
        registry: &registry,
    };

    let info = f.gauge(
        "patronus_build_info",
        "Always 1; the daemon's version as a label.",
        &["version"],
    )?;
    set(&info, &[&meta.version], 1.0)?;
    let start = f.gauge(
        "patronus_start_time_seconds",
        "When the daemon started, seconds since the Unix epoch.",
        &[],
    )?;
    set(&start, &[], meta.start_time_unix)?;
    let ready = f.gauge(
        "patronus_ready",
        "1 once every port is up and every worker polls.",
        &[],
    )?;
    set(&ready, &[], flag(meta.ready))?;

    // Ports.
    let link = f.gauge(
        "patronus_port_link_up",
        "1 if the port's link is up.",
        &["port", "role"],
    )?;
    let speed = f.gauge(
        "patronus_port_speed_bytes",
        "Link speed, bytes per second (0 when down or unknown).",
        &["port"],
    )?;
    let rx_p = f.counter(
        "patronus_port_rx_packets_total",
        "Packets received on the port.",
        &["port"],
    )?;
    let rx_b = f.counter(
        "patronus_port_rx_bytes_total",
        "Bytes received on the port.",
        &["port"],
    )?;
    let tx_p = f.counter(
        "patronus_port_tx_packets_total",
        "Packets sent on the port.",
        &["port"],
    )?;
    let tx_b = f.counter(
        "patronus_port_tx_bytes_total",
        "Bytes sent on the port.",
        &["port"],
    )?;
    let drops = f.counter(
        "patronus_port_dropped_packets_total",
        "Packets dropped on the port by the device or the workers.",
        &["port"],
    )?;
    for p in &snap.ports {
        let l = [p.name.as_str()];
        set(&link, &[&p.name, &p.role], flag(p.link_up))?;
        set(&speed, &l, p.speed_mbps as f64 * 1e6 / 8.0)?;
        count(&rx_p, &l, p.rx_packets as f64)?;
        count(&rx_b, &l, p.rx_bytes as f64)?;
        count(&tx_p, &l, p.tx_packets as f64)?;
        count(&tx_b, &l, p.tx_bytes as f64)?;
        count(&drops, &l, p.drops as f64)?;
    }

    // Worker cores.
    let polls = f.counter(
        "patronus_core_polls_total",
        "Poll-loop iterations of a worker.",
        &["core", "worker"],
    )?;
    let idle = f.counter(
        "patronus_core_idle_polls_total",
        "Poll-loop iterations that received nothing.",
        &["core", "worker"],
    )?;
    let busy = f.counter(
        "patronus_core_busy_seconds_total",
        "Time a worker spent in iterations that received packets; rate() of it is the core's busy ratio.",
        &["core", "worker"],
    )?;
    let w_rx = f.counter(
        "patronus_core_rx_packets_total",
        "Packets a worker received.",
        &["core", "worker"],
    )?;
    let w_tx = f.counter(
        "patronus_core_tx_packets_total",
        "Packets a worker sent.",
        &["core", "worker"],
    )?;
    let w_drop = f.counter(
        "patronus_core_dropped_packets_total",
        "Packets a worker dropped, any reason.",
        &["core", "worker"],
    )?;
    for w in &snap.cores.workers {
        let (core, id) = (w.core.to_string(), w.id.to_string());
        let l = [core.as_str(), id.as_str()];
        count(&polls, &l, w.polls as f64)?;
        count(&idle, &l, w.idle_polls as f64)?;
        count(&busy, &l, w.busy_seconds)?;
        count(&w_rx, &l, w.rx_packets as f64)?;
        count(&w_tx, &l, w.tx_packets as f64)?;
        count(&w_drop, &l, w.dropped as f64)?;
    }

    // Peers.
    let p_rx = f.counter(
        "patronus_peer_rx_bytes_total",
        "Bytes received from the peer (decrypted).",
        &["peer"],
    )?;
    let p_tx = f.counter(
        "patronus_peer_tx_bytes_total",
        "Bytes sent to the peer (before encryption).",
        &["peer"],
    )?;
    let hs = f.gauge(
        "patronus_peer_last_handshake_timestamp_seconds",
        "When the latest WireGuard handshake with the peer completed, seconds since the Unix epoch.",
        &["peer"],
    )?;
    let failovers = f.counter(
        "patronus_path_failovers_total",
        "Times a policy moved the peer's traffic off a path that went down or broke its SLA class.",
        &["peer"],
    )?;
    for p in &snap.peers {
        let l = [p.name.as_str()];
        count(&p_rx, &l, p.rx_bytes as f64)?;
        count(&p_tx, &l, p.tx_bytes as f64)?;
        count(&failovers, &l, p.failovers as f64)?;
        if let Some(t) = p.latest_handshake_unix {
            set(&hs, &l, t)?;
        }
    }

    // Paths.
    let up = f.gauge(
        "patronus_path_up",
        "1 if the path is usable (BFD and probes).",
        &["peer", "path", "port"],
    )?;
    let path_tx = f.counter(
        "patronus_path_tx_bytes_total",
        "Bytes sent on the path.",
        &["peer", "path", "port"],
    )?;
    let bfd = f.gauge(
        "patronus_path_bfd_state",
        "BFD session state as RFC 5880 codes it: 0 AdminDown, 1 Down, 2 Init, 3 Up.",
        &["peer", "path", "port"],
    )?;
    // Not `quantile`: promtool reserves that label for summaries, and these
    // are a sliding window's statistics, with no _sum/_count to go with them.
    let rtt = f.gauge(
        "patronus_path_rtt_seconds",
        "Round-trip time over the SLA window: stat is p50, p95, p99, mean, min or max.",
        &["peer", "path", "port", "stat"],
    )?;
    let jitter = f.gauge(
        "patronus_path_jitter_seconds",
        "RFC 3550 interarrival jitter per direction (forward: towards the peer).",
        &["peer", "path", "port", "direction"],
    )?;
    let loss = f.gauge(
        "patronus_path_loss_ratio",
        "Packet loss over the SLA window, 0-1, round trip and per direction.",
        &["peer", "path", "port", "direction"],
    )?;
    let samples = f.gauge(
        "patronus_path_probe_samples",
        "Probe replies in the SLA window.",
        &["peer", "path", "port"],
    )?;
    let compliant = f.gauge(
        "patronus_path_sla_compliant",
        "1 if the path meets the SLA class's limits.",
        &["peer", "path", "port", "class"],
    )?;
    for p in &snap.paths {
        let index = p.index.to_string();
        let l = [p.peer.as_str(), index.as_str(), p.port.as_str()];
        set(&up, &l, flag(p.up))?;
        count(&path_tx, &l, p.tx_bytes as f64)?;
        if let Some(b) = &p.bfd {
            set(&bfd, &l, f64::from(BfdState::code(b.state)))?;
        }
        if let Some(s) = &p.sla {
            let r = &s.rtt_ms;
            for (stat, v) in [
                ("p50", r.p50),
                ("p95", r.p95),
                ("p99", r.p99),
                ("mean", r.mean),
                ("min", r.min),
                ("max", r.max),
            ] {
                set(&rtt, &[l[0], l[1], l[2], stat], v / 1e3)?;
            }
            for (d, v) in [
                ("forward", s.jitter_ms.forward),
                ("reverse", s.jitter_ms.reverse),
            ] {
                set(&jitter, &[l[0], l[1], l[2], d], v / 1e3)?;
            }
            for (d, v) in [
                ("round_trip", s.loss_pct.round_trip),
                ("forward", s.loss_pct.forward),
                ("reverse", s.loss_pct.reverse),
            ] {
                set(&loss, &[l[0], l[1], l[2], d], v / 100.0)?;
            }
            set(&samples, &l, s.samples as f64)?;
            for (class, ok) in &s.compliant {
                set(&compliant, &[l[0], l[1], l[2], class], flag(*ok))?;
            }
        }
    }

    // QoS.
    let q_p = f.counter(
        "patronus_qos_sent_packets_total",
        "Packets the shaper sent, per port and class.",
        &["port", "class"],
    )?;
    let q_b = f.counter(
        "patronus_qos_sent_bytes_total",
        "Bytes the shaper sent, per port and class.",
        &["port", "class"],
    )?;
    let q_d = f.counter(
        "patronus_qos_dropped_packets_total",
        "Packets the shaper dropped (queue full, CoDel), per port and class.",
        &["port", "class"],
    )?;
    let q_delay = f.gauge(
        "patronus_qos_queue_delay_p99_seconds",
        "p99 of the time packets spent queued, recent window.",
        &["port", "class"],
    )?;
    for port in &snap.stats.qos {
        for c in &port.classes {
            let l = [port.port.as_str(), c.class.as_str()];
            count(&q_p, &l, c.sent_packets as f64)?;
            count(&q_b, &l, c.sent_bytes as f64)?;
            count(&q_d, &l, c.dropped_packets as f64)?;
            if let Some(us) = c.queue_delay_p99_us {
                set(&q_delay, &l, us / 1e6)?;
            }
        }
    }

    // DPI.
    let by_cat = f.counter(
        "patronus_dpi_flows_total",
        "Flows classified, per DPI category.",
        &["category"],
    )?;
    for c in &snap.stats.dpi.by_category {
        count(&by_cat, &[&c.category], c.flows as f64)?;
    }
    let app_flows = f.counter(
        "patronus_dpi_app_flows_total",
        "Flows classified per application, for the top applications only (bounded cardinality).",
        &["app"],
    )?;
    let app_bytes = f.counter(
        "patronus_dpi_app_bytes_total",
        "Bytes of the top applications' flows.",
        &["app"],
    )?;
    let mut apps: Vec<_> = snap.stats.dpi.top_apps.iter().collect();
    apps.sort_by_key(|a| std::cmp::Reverse(a.flows));
    for a in apps.into_iter().take(TOP_APPS) {
        count(&app_flows, &[&a.app], a.flows as f64)?;
        count(&app_bytes, &[&a.app], a.bytes as f64)?;
    }

    TextEncoder::new().encode_to_string(&registry.gather())
}
