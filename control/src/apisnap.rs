//! The daemon's side of the management API (docs/api.md): the control
//! thread builds whole [`Snapshot`]s of the node from the ports, the
//! workers' counters and the drivers, forwards BFD and SLA events, and
//! applies the API's configuration commands (SLA classes and policies) to
//! the running SLA driver, saving them back to the config file on request.
//!
//! Nothing here runs on a worker: it reads the same atomics the stats
//! lines read.

use crate::api::model::{
    self, Bfd, BfdState, Cores, Directional, Event, Loss, PathSla, RttMs, Worker,
};
use crate::api::{ApiState, ConfigCommand, Snapshot};
use crate::bfd::packet::State;
use crate::config::Config;
use crate::controlplane::ControlPlane;
use crate::qosconfig::RuleFields;
use crate::sla::select::{Mode, PathRef, PolicySpec, SlaClass, SlaEvent};
use crate::slaconfig::{PathName, PolicyInput};
use patronus_dataplane::dpdk::Port;
use patronus_dataplane::dpi::types::{AppId, Category};
use patronus_dataplane::flowsample::{DecidedCounts, PolicyTelemetry, TopFlows};
use patronus_dataplane::qos::{QosClass, QosCounters};
use patronus_dataplane::stats::WorkerCounters;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// How often the API's snapshot is rebuilt.
pub const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Application names and ids, from the DPI engine's table.
#[derive(Default)]
pub struct AppNames {
    by_name: HashMap<String, AppId>,
    by_id: HashMap<u16, (String, Category)>,
}

impl AppNames {
    pub fn new(config: &Config) -> AppNames {
        let mut names = AppNames::default();
        let Some(d) = &config.dpi else {
            return names;
        };
        let Ok(engine) = patronus_dataplane::dpi::engine::DpiEngine::new(d.engine.clone()) else {
            return names;
        };
        for id in 0..engine.app_count() {
            let id = AppId(id as u16);
            if let Some(name) = engine.app_name(id) {
                let category = engine.app_category(id).unwrap_or(Category::Unknown);
                names.by_name.insert(name.to_string(), id);
                names.by_id.insert(id.0, (name.to_string(), category));
            }
        }
        names
    }

    pub fn name(&self, id: AppId) -> Option<&str> {
        self.by_id.get(&id.0).map(|(n, _)| n.as_str())
    }

    pub fn category(&self, id: AppId) -> Option<Category> {
        self.by_id.get(&id.0).map(|(_, c)| *c)
    }

    fn sorted_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_name.keys().cloned().collect();
        v.sort();
        v
    }
}

/// The control thread's link to the API thread.
pub struct ApiLink<'c> {
    pub state: Arc<ApiState>,
    config: &'c Config,
    apps: AppNames,
    tsc_hz: u64,
    bfd_events_seen: u64,
    sla_events_seen: u64,
    /// Per worker: DPI counters and flow samples.
    telemetry: Vec<Arc<PolicyTelemetry>>,
    top: TopFlows,
    started: std::time::Instant,
}

/// Flows in the API's top list, and applications in its DPI statistics.
pub const TOP_FLOWS: usize = 50;
pub const TOP_APPS: usize = 20;

impl<'c> ApiLink<'c> {
    pub fn new(
        state: Arc<ApiState>,
        config: &'c Config,
        tsc_hz: u64,
        telemetry: Vec<Arc<PolicyTelemetry>>,
    ) -> ApiLink<'c> {
        ApiLink {
            state,
            config,
            apps: AppNames::new(config),
            tsc_hz,
            bfd_events_seen: 0,
            sla_events_seen: 0,
            telemetry,
            top: TopFlows::default(),
            started: std::time::Instant::now(),
        }
    }

    /// Builds and publishes the node's snapshot, and forwards new events.
    pub fn publish(
        &mut self,
        ports: &[Port],
        counters: &[WorkerCounters],
        control: &ControlPlane<'_>,
        qos: &[(usize, usize, Arc<QosCounters>)],
    ) {
        self.forward_events(control);
        let now = self.started.elapsed().as_secs_f64();
        for t in &self.telemetry {
            self.top.drain(t, now);
        }
        self.top.expire(now);
        let flows = self.flows();
        let dpi = self.dpi();
        let snapshot = Snapshot {
            cores: self.cores(counters),
            ports: self.ports(ports),
            peers: self.peers(control),
            paths: self.paths(control),
            flows,
            stats: model::Stats {
                qos: self.qos(qos),
                dpi,
            },
            sla_classes: control
                .sla
                .as_ref()
                .map(|s| s.classes().iter().map(class_model).collect())
                .unwrap_or_default(),
            policies: control
                .sla
                .as_ref()
                .map(|s| {
                    s.policies()
                        .iter()
                        .map(|p| policy_model(p, self.config, &self.apps))
                        .collect()
                })
                .unwrap_or_default(),
            apps: self.apps.sorted_names(),
        };
        self.state.publish(snapshot);
    }

    /// The top flows by (sampled) bytes.
    fn flows(&self) -> Vec<model::Flow> {
        let peers = self.config.wireguard.as_ref().map(|w| &w.peers);
        self.top
            .top(TOP_FLOWS)
            .into_iter()
            .map(|(id, st)| model::Flow {
                src: id.src.to_string(),
                dst: id.dst.to_string(),
                protocol: protocol_name(id.proto),
                src_port: id.src_port,
                dst_port: id.dst_port,
                app: self.apps.name(st.app).map(str::to_string),
                category: st.category.name().to_string(),
                peer: peers
                    .and_then(|p| p.get(id.peer as usize))
                    .map(|p| p.name.clone()),
                path: st.path.map(|p| p + 1),
                qos_class: st
                    .class
                    .and_then(QosClass::from_u8)
                    .unwrap_or(QosClass::DEFAULT)
                    .name()
                    .to_string(),
                bytes: st.bytes,
                packets: st.packets,
            })
            .collect()
    }

    /// Flows decided per category and the top applications, summed over
    /// the workers; an application's bytes are its sampled flows' bytes.
    fn dpi(&self) -> model::Dpi {
        let mut decided = DecidedCounts::default();
        for t in &self.telemetry {
            decided.add(t);
        }
        let by_category = Category::ALL
            .iter()
            .map(|&c| model::CategoryCount {
                category: c.name().to_string(),
                flows: decided.category(c),
            })
            .filter(|c| c.flows > 0)
            .collect();
        let mut bytes_by_app: HashMap<u16, u64> = HashMap::new();
        for (_, st) in self.top.top(usize::MAX) {
            *bytes_by_app.entry(st.app.0).or_default() += st.bytes;
        }
        let mut apps: Vec<model::AppCount> = decided
            .by_app
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .filter_map(|(id, n)| {
                let id = AppId(id as u16);
                let name = self.apps.name(id)?.to_string();
                let category = self
                    .apps
                    .category(id)
                    .map_or("Unknown", |c| c.name())
                    .to_string();
                Some(model::AppCount {
                    app: name,
                    category,
                    flows: *n,
                    bytes: bytes_by_app.get(&id.0).copied().unwrap_or(0),
                })
            })
            .collect();
        apps.sort_by(|a, b| b.flows.cmp(&a.flows).then(b.bytes.cmp(&a.bytes)));
        apps.truncate(TOP_APPS);
        model::Dpi {
            by_category,
            top_apps: apps,
        }
    }

    fn cores(&self, counters: &[WorkerCounters]) -> Cores {
        Cores {
            control: self.config.control_core,
            workers: counters
                .iter()
                .enumerate()
                .map(|(w, c)| {
                    let s = c.snapshot();
                    Worker {
                        id: w,
                        core: self.config.worker_cores[w],
                        polls: s.polls,
                        idle_polls: s.idle_polls,
                        busy_seconds: s.busy_cycles as f64 / self.tsc_hz.max(1) as f64,
                        rx_packets: s.rx_packets(),
                        tx_packets: s.tx_packets(),
                        dropped: s.dropped(),
                    }
                })
                .collect(),
        }
    }

    fn ports(&self, ports: &[Port]) -> Vec<model::Port> {
        ports
            .iter()
            .zip(&self.config.ports)
            .map(|(port, pc)| {
                let link = port.link().ok();
                let stats = port.stats().ok().unwrap_or_default();
                // What the NIC dropped or failed: the workers' own drops
                // are per core (Cores), not per port.
                let drops = stats.rx_missed + stats.rx_errors + stats.tx_errors;
                model::Port {
                    name: pc.name.clone(),
                    role: format!("{:?}", pc.role).to_lowercase(),
                    link_up: link.is_some_and(|l| l.up),
                    speed_mbps: link.map_or(0, |l| u64::from(l.speed_mbps)),
                    mac: port
                        .mac_addr()
                        .map(|m| patronus_dataplane::wire::ethernet::Address(m).to_string())
                        .unwrap_or_default(),
                    addresses: pc
                        .addresses
                        .iter()
                        .map(|(a, l)| format!("{a}/{l}"))
                        .collect(),
                    rx_packets: stats.rx_packets,
                    tx_packets: stats.tx_packets,
                    rx_bytes: stats.rx_bytes,
                    tx_bytes: stats.tx_bytes,
                    drops,
                }
            })
            .collect()
    }

    fn peers(&self, control: &ControlPlane<'_>) -> Vec<model::Peer> {
        let (Some(wg), Some(wgc)) = (&control.wg, &self.config.wireguard) else {
            return Vec::new();
        };
        wgc.peers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let info = wg.peer_info(i as u32);
                let mut endpoints: Vec<String> =
                    p.paths.iter().map(|pc| pc.endpoint.to_string()).collect();
                if let Some(e) = info.endpoint {
                    let e = e.to_string();
                    if !endpoints.contains(&e) {
                        endpoints.insert(0, e);
                    }
                }
                model::Peer {
                    name: p.name.clone(),
                    public_key: p.public_key.to_string(),
                    endpoints,
                    allowed_ips: p
                        .allowed_ips
                        .iter()
                        .map(|(a, l)| format!("{a}/{l}"))
                        .collect(),
                    latest_handshake_unix: info.latest_handshake_unix,
                    rx_bytes: info.rx_bytes,
                    tx_bytes: info.tx_bytes,
                    paths: (1..=p.paths.len() as u8).collect(),
                    failovers: control.sla.as_ref().map_or(0, |s| s.failovers(i as u32)),
                }
            })
            .collect()
    }

    fn paths(&self, control: &ControlPlane<'_>) -> Vec<model::Path> {
        let Some(wgc) = &self.config.wireguard else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, p) in wgc.peers.iter().enumerate() {
            let peer = i as u32;
            for (j, pc) in p.paths.iter().enumerate() {
                let path = j as u8;
                let bfd = control.bfd.as_ref().and_then(|b| {
                    let s = b.peer_path_session(peer, path)?;
                    Some(Bfd {
                        state: bfd_state(s.state()),
                        remote_state: bfd_state(s.remote_state()),
                        diag: format!("{:?}", s.diag()),
                        interval_ms: f64::from(s.tx_interval_us()) / 1000.0,
                        multiplier: self.config.bfd.multiplier,
                    })
                });
                let report = control.sla.as_ref().and_then(|s| s.path_report(peer, path));
                let sla = report.as_ref().map(|r| {
                    let m = &r.metrics;
                    let rtt = m.rtt.unwrap_or(crate::sla::estimator::DelayStats {
                        samples: 0,
                        min_us: 0.0,
                        mean_us: 0.0,
                        max_us: 0.0,
                        p50_us: 0.0,
                        p95_us: 0.0,
                        p99_us: 0.0,
                    });
                    let ms = |us: f64| us / 1000.0;
                    let pct = |r: Option<f64>| r.map_or(0.0, |r| r * 100.0);
                    PathSla {
                        rtt_ms: RttMs {
                            p50: ms(rtt.p50_us),
                            p95: ms(rtt.p95_us),
                            p99: ms(rtt.p99_us),
                            mean: ms(rtt.mean_us),
                            min: ms(rtt.min_us),
                            max: ms(rtt.max_us),
                        },
                        jitter_ms: Directional {
                            forward: ms(m.forward.jitter_us.unwrap_or(0.0)),
                            reverse: ms(m.reverse.jitter_us.unwrap_or(0.0)),
                        },
                        loss_pct: Loss {
                            round_trip: pct(m.loss_ratio),
                            forward: pct(m.forward.loss_ratio),
                            reverse: pct(m.reverse.loss_ratio),
                        },
                        samples: m.received + m.lost,
                        compliant: r.compliant.iter().cloned().collect(),
                    }
                });
                // In use by the data path: neither BFD nor the probes say
                // down (a session that never came up leaves the path as
                // configured).
                let up = control.path_in_use(peer, path);
                let tx_bytes = control
                    .wg
                    .as_ref()
                    .map_or(0, |w| w.path_tx_bytes(peer, path));
                out.push(model::Path {
                    peer: p.name.clone(),
                    index: path + 1,
                    port: self.config.ports[pc.port].name.clone(),
                    local: format!("{}:{}", pc.local_ip, wgc.listen_port),
                    remote: pc.endpoint.to_string(),
                    up,
                    bfd,
                    sla,
                    tx_bytes,
                });
            }
        }
        out
    }

    fn qos(&self, qos: &[(usize, usize, Arc<QosCounters>)]) -> Vec<model::QosPort> {
        // Summed over the workers that share each port.
        let mut by_port: Vec<(usize, [model::QosClassStats; QosClass::COUNT])> = Vec::new();
        for (_, port, counters) in qos {
            let snap = counters.snapshot();
            let i = match by_port.iter().position(|(p, _)| p == port) {
                Some(i) => i,
                None => {
                    by_port.push((
                        *port,
                        QosClass::ALL.map(|c| model::QosClassStats {
                            class: c.name().to_string(),
                            ..model::QosClassStats::default()
                        }),
                    ));
                    by_port.len() - 1
                }
            };
            for class in QosClass::ALL {
                let k = snap.class(class);
                let out = &mut by_port[i].1[class as usize];
                out.sent_packets += k.sent_packets;
                out.sent_bytes += k.sent_bytes;
                out.dropped_packets += k.dropped_total();
                let p99 = k.delay_percentile_ns(99).map(|ns| ns as f64 / 1000.0);
                out.queue_delay_p99_us = match (out.queue_delay_p99_us, p99) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        by_port
            .into_iter()
            .map(|(port, classes)| model::QosPort {
                port: self.config.ports[port].name.clone(),
                classes: classes.into_iter().collect(),
            })
            .collect()
    }

    /// BFD state changes and SLA events since the last call, as API events.
    fn forward_events(&mut self, control: &ControlPlane<'_>) {
        if let Some(bfd) = &control.bfd {
            let total = bfd.stats.state_changes;
            let new = (total.saturating_sub(self.bfd_events_seen) as usize).min(bfd.events.len());
            self.bfd_events_seen = total;
            for e in bfd.events.iter().skip(bfd.events.len() - new) {
                let mut ev = Event::new(
                    "bfd",
                    format!("bfd: {} {:?} -> {:?} ({})", e.session, e.from, e.to, e.diag),
                )
                .field("session", &e.session)
                .field("from", format!("{:?}", e.from))
                .field("to", format!("{:?}", e.to))
                .field("diag", &e.diag);
                if let Some((peer, path)) = self.peer_path_of_session(&e.session) {
                    ev = ev.peer(&peer).path(path);
                }
                self.state.push_event(ev);
            }
        }
        if let Some(sla) = &control.sla {
            let mut last = self.sla_events_seen;
            for r in sla.events.since(self.sla_events_seen) {
                last = r.seq + 1;
                let peer = sla.peer_name(r.peer).unwrap_or("?").to_string();
                let message = format!("sla: {peer}: {}", r.event);
                let ev = match &r.event {
                    SlaEvent::Violation {
                        class,
                        path,
                        metric,
                        value,
                        limit,
                        ..
                    } => Event::new("sla_violation", message)
                        .path(path + 1)
                        .field("class", class)
                        .field("metric", metric.name())
                        .field("value", value)
                        .field("limit", limit),
                    SlaEvent::Recovery { class, path, .. } => Event::new("sla_recovery", message)
                        .path(path + 1)
                        .field("class", class),
                    SlaEvent::Switch {
                        policy,
                        from,
                        to,
                        reason,
                        path,
                        ..
                    } => {
                        let mut e = Event::new("path_switch", message)
                            .policy(policy)
                            .field("from", from)
                            .field("to", to)
                            .field("reason", reason.name());
                        if let Some(p) = path {
                            e = e.path(p + 1);
                        }
                        e
                    }
                    SlaEvent::Degraded { policy, path, .. } => {
                        let mut e = Event::new("sla_degraded", message).policy(policy);
                        if let Some(p) = path {
                            e = e.path(p + 1);
                        }
                        e
                    }
                };
                self.state.push_event(ev.peer(&peer));
            }
            self.sla_events_seen = last;
        }
    }

    /// "site-B path 1 (wan1)" → ("site-B", 1).
    fn peer_path_of_session(&self, session: &str) -> Option<(String, u8)> {
        let (peer, rest) = session.split_once(" path ")?;
        let n: u8 = rest.split_whitespace().next()?.parse().ok()?;
        Some((peer.to_string(), n))
    }

    /// Applies the API's pending configuration commands.
    pub fn poll_commands(&mut self, control: &mut ControlPlane<'_>) {
        while let Some((command, responder)) = self.state.try_recv_command() {
            let result = self.apply(command, control);
            if let Err(e) = &result {
                log::warn!("api: configuration change refused: {e}");
            }
            responder.send(result);
        }
    }

    fn apply(
        &mut self,
        command: ConfigCommand,
        control: &mut ControlPlane<'_>,
    ) -> Result<(), String> {
        if let ConfigCommand::Save = command {
            return self.save(control);
        }
        let Some(sla) = control.sla.as_mut() else {
            return Err(
                "SLA is not configured on this node: add an [sla] section (and sla = true on peers)"
                    .into(),
            );
        };
        match command {
            ConfigCommand::SetSlaClass(c) => {
                let class = crate::slaconfig::class(
                    "sla_class",
                    &c.name,
                    c.max_latency_ms,
                    c.max_loss_pct,
                    c.max_jitter_ms,
                )
                .map_err(|(f, m)| format!("{f}: {m}"))?;
                sla.set_class(class)?;
                log::info!("api: SLA class {} set", c.name);
            }
            ConfigCommand::RemoveSlaClass(name) => {
                sla.remove_class(&name)?;
                log::info!("api: SLA class {name} removed");
            }
            ConfigCommand::SetPolicy(p) => {
                let spec = policy_spec(&p, sla.classes(), self.config, &self.apps)?;
                sla.set_policy(spec)?;
                log::info!("api: SLA policy {} set", p.name);
            }
            ConfigCommand::RemovePolicy(name) => {
                sla.remove_policy(&name)?;
                log::info!("api: SLA policy {name} removed");
            }
            ConfigCommand::Save => unreachable!("handled above"),
        }
        Ok(())
    }

    /// Writes the running SLA classes and policies into the config file's
    /// `[sla]` section, keeping everything else (comments included).
    fn save(&self, control: &ControlPlane<'_>) -> Result<(), String> {
        let Some(sla) = control.sla.as_ref() else {
            return Err("nothing to save: SLA is not configured on this node".into());
        };
        let path = &self.config.path;
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let updated = save_sla(
            &text,
            sla.classes(),
            sla.policies(),
            self.config,
            &self.apps,
        )?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, updated)
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        if let Ok(meta) = std::fs::metadata(path) {
            let _ = std::fs::set_permissions(&tmp, meta.permissions());
        }
        std::fs::rename(&tmp, path)
            .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
        log::info!("api: SLA classes and policies saved to {}", path.display());
        Ok(())
    }
}

fn bfd_state(s: State) -> BfdState {
    match s {
        State::AdminDown => BfdState::AdminDown,
        State::Down => BfdState::Down,
        State::Init => BfdState::Init,
        State::Up => BfdState::Up,
    }
}

fn class_model(c: &SlaClass) -> model::SlaClass {
    model::SlaClass {
        name: c.name.to_string(),
        max_latency_ms: c.max_latency_ms,
        max_loss_pct: c.max_loss_pct,
        max_jitter_ms: c.max_jitter_ms,
    }
}

fn protocol_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        n => n.to_string(),
    }
}

fn range(r: &patronus_dataplane::qos::PortRange) -> String {
    if r.first == r.last {
        r.first.to_string()
    } else {
        format!("{}-{}", r.first, r.last)
    }
}

/// A running policy as the API and the config file write it.
pub fn policy_model(p: &PolicySpec, config: &Config, apps: &AppNames) -> model::Policy {
    model::Policy {
        name: p.name.to_string(),
        sla_class: p.sla.clone(),
        categories: p
            .matches
            .categories
            .iter()
            .map(|c| c.name().to_string())
            .collect(),
        apps: p
            .matches
            .apps
            .iter()
            .filter_map(|a| apps.name(*a).map(str::to_string))
            .collect(),
        rules: p
            .matches
            .rules
            .iter()
            .map(|r| model::Rule {
                protocol: r.protocol.map(protocol_name),
                src: r.src.map(|x| x.to_string()),
                dst: r.dst.map(|x| x.to_string()),
                src_ports: r.src_ports.as_ref().map(range),
                dst_ports: r.dst_ports.as_ref().map(range),
                dscp: r.dscp,
            })
            .collect(),
        path_order: p
            .path_order
            .iter()
            .map(|r| match r {
                PathRef::Path(i) => format!("path:{}", u32::from(*i) + 1),
                PathRef::Port(port) => format!(
                    "port:{}",
                    config
                        .ports
                        .get(usize::from(*port))
                        .map_or("?", |p| p.name.as_str())
                ),
            })
            .collect(),
        mode: match p.mode {
            Mode::BestPath => model::Mode::BestPath,
            Mode::SpreadCompliant => model::Mode::Spread,
        },
    }
}

/// An API policy as the SLA driver takes it: the same validation as the
/// config file's `[[sla.policy]]`.
fn policy_spec(
    p: &model::Policy,
    classes: &[SlaClass],
    config: &Config,
    apps: &AppNames,
) -> Result<PolicySpec, String> {
    let dscp: Vec<Option<toml::Value>> = p
        .rules
        .iter()
        .map(|r| r.dscp.map(|d| toml::Value::Integer(i64::from(d))))
        .collect();
    let rules = p
        .rules
        .iter()
        .zip(&dscp)
        .map(|(r, d)| RuleFields {
            protocol: r.protocol.as_deref(),
            src: r.src.as_deref(),
            dst: r.dst.as_deref(),
            src_ports: r.src_ports.as_deref(),
            dst_ports: r.dst_ports.as_deref(),
            dscp: d.as_ref(),
        })
        .collect();
    let mut paths = Vec::new();
    for (i, text) in p.path_order.iter().enumerate() {
        paths.push(match text.split_once(':') {
            Some(("path", n)) => PathName::Number(
                n.parse()
                    .map_err(|_| format!("path_order[{i}]: {text:?} is not path:N"))?,
            ),
            Some(("port", name)) => PathName::Port(name),
            _ => {
                return Err(format!(
                    "path_order[{i}]: {text:?} is not path:N or port:NAME"
                ))
            }
        });
    }
    let mode = match p.mode {
        model::Mode::BestPath => "best-path",
        model::Mode::Spread => "spread",
    };
    let input = PolicyInput {
        name: &p.name,
        class: &p.sla_class,
        categories: &p.categories,
        rules,
        paths,
        mode: Some(mode),
    };
    let mut spec = crate::slaconfig::policy("policy", &input, classes, &config.ports)
        .map_err(|(f, m)| format!("{f}: {m}"))?;
    if !p.categories.is_empty() && config.dpi.is_none() {
        return Err("policy.categories: policies by category need the [dpi] section".into());
    }
    for (i, name) in p.apps.iter().enumerate() {
        let Some(id) = apps.by_name.get(name) else {
            return Err(format!(
                "policy.apps[{i}]: {name:?} is not an application this node knows"
            ));
        };
        spec.matches.apps.push(*id);
    }
    Ok(spec)
}

/// The config text with `[[sla.class]]` (the classes that differ from the
/// defaults) and `[[sla.policy]]` replaced by the running ones.
pub fn save_sla(
    text: &str,
    classes: &[SlaClass],
    policies: &[PolicySpec],
    config: &Config,
    apps: &AppNames,
) -> Result<String, String> {
    use toml_edit::{value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table};
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| format!("cannot parse {}: {e}", config.path.display()))?;
    let Some(sla) = doc.get_mut("sla").and_then(Item::as_table_mut) else {
        return Err(format!("{} has no [sla] table", config.path.display()));
    };
    let defaults = SlaClass::defaults();
    let mut class_tables = ArrayOfTables::new();
    for c in classes.iter().filter(|c| !defaults.contains(c)) {
        let mut t = Table::new();
        t["name"] = value(c.name.to_string());
        for (k, v) in [
            ("max_latency_ms", c.max_latency_ms),
            ("max_loss_pct", c.max_loss_pct),
            ("max_jitter_ms", c.max_jitter_ms),
        ] {
            if let Some(v) = v {
                t[k] = value(v);
            }
        }
        class_tables.push(t);
    }
    let mut policy_tables = ArrayOfTables::new();
    for p in policies {
        let m = policy_model(p, config, apps);
        let mut t = Table::new();
        t["name"] = value(m.name);
        t["class"] = value(m.sla_class);
        let strings = |v: &[String]| Array::from_iter(v.iter().map(String::as_str));
        if !m.categories.is_empty() {
            t["categories"] = value(strings(&m.categories));
        }
        if !m.apps.is_empty() {
            t["apps"] = value(strings(&m.apps));
        }
        if !m.rules.is_empty() {
            let mut rules = Array::new();
            for r in &m.rules {
                let mut it = InlineTable::new();
                for (k, v) in [
                    ("protocol", &r.protocol),
                    ("src", &r.src),
                    ("dst", &r.dst),
                    ("src_ports", &r.src_ports),
                    ("dst_ports", &r.dst_ports),
                ] {
                    if let Some(v) = v {
                        it.insert(k, v.as_str().into());
                    }
                }
                if let Some(d) = r.dscp {
                    it.insert("dscp", i64::from(d).into());
                }
                rules.push(it);
            }
            t["rules"] = value(rules);
        }
        if !p.path_order.is_empty() {
            let mut paths = Array::new();
            for r in &p.path_order {
                match r {
                    PathRef::Path(i) => paths.push(i64::from(*i) + 1),
                    PathRef::Port(port) => {
                        paths.push(config.ports[usize::from(*port)].name.as_str())
                    }
                }
            }
            t["paths"] = value(paths);
        }
        if p.mode == Mode::SpreadCompliant {
            t["mode"] = value("spread");
        }
        policy_tables.push(t);
    }
    sla.remove("class");
    sla.remove("policy");
    if !class_tables.is_empty() {
        sla.insert("class", Item::ArrayOfTables(class_tables));
    }
    if !policy_tables.is_empty() {
        sla.insert("policy", Item::ArrayOfTables(policy_tables));
    }
    Ok(doc.to_string())
}

/// What the WireGuard driver knows of a peer, for the API.
pub struct PeerInfo {
    pub endpoint: Option<std::net::SocketAddrV4>,
    pub latest_handshake_unix: Option<f64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

impl crate::wgdriver::WgDriver<'_> {
    pub fn peer_info(&self, peer: u32) -> PeerInfo {
        let status = self.device().peer_status(peer);
        let a = self.shared().activity.get(peer as usize);
        PeerInfo {
            endpoint: self.device().peer_endpoint(peer),
            latest_handshake_unix: status.and_then(|s| s.last_handshake).and_then(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs_f64())
            }),
            rx_bytes: a.map_or(0, |a| a.rx_bytes.load(Relaxed)),
            tx_bytes: a.map_or(0, |a| a.tx_bytes.load(Relaxed)),
        }
    }

    pub fn path_tx_bytes(&self, peer: u32, path: u8) -> u64 {
        self.shared()
            .activity
            .get(peer as usize)
            .and_then(|a| a.path_tx_bytes.get(usize::from(path)))
            .map_or(0, |c| c.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
# A comment that must survive a save.
[cores]
control = 0
workers = [1]

[[port]]
name = "lan"
role = "lan"
device = "net_null0"
addresses = ["10.1.0.1/24"]

[[port]]
name = "wan1"
role = "wan"
device = "net_null1"
addresses = ["10.100.1.2/24"]

[sla]
key_file = "KEY"
probe_rate = 10   # kept

[[sla.policy]]
name = "old"
class = "bulk"
"#;

    fn config(text: &str) -> (Config, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let key = std::env::temp_dir().join(format!("patronus-apisnap-{}.key", std::process::id()));
        std::fs::write(&key, "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = text.replace("KEY", &key.display().to_string());
        let c = Config::parse(Path::new("node.toml"), &text, &[0, 1]).unwrap();
        (c, key)
    }

    #[test]
    fn api_policies_round_trip_and_save_rewrites_only_the_sla_tables() {
        let (c, key) = config(BASE);
        let sla = c.sla.as_ref().unwrap();
        let apps = AppNames::default();
        let api_policy = model::Policy {
            name: "voice".into(),
            sla_class: "realtime".into(),
            categories: vec![],
            apps: vec![],
            rules: vec![model::Rule {
                protocol: Some("udp".into()),
                dst: Some("10.2.0.0/24".into()),
                dst_ports: Some("16384-32767".into()),
                dscp: Some(46),
                ..model::Rule::default()
            }],
            path_order: vec!["path:2".into(), "port:wan1".into()],
            mode: model::Mode::Spread,
        };
        let spec = policy_spec(&api_policy, &sla.classes, &c, &apps).unwrap();
        assert_eq!(spec.path_order, [PathRef::Path(1), PathRef::Port(1)]);
        // And back to the API's form, unchanged.
        assert_eq!(policy_model(&spec, &c, &apps), api_policy);
        // Mistakes name the field.
        let mut bad = api_policy.clone();
        bad.path_order = vec!["path:9".into()];
        let e = policy_spec(&bad, &sla.classes, &c, &apps).unwrap_err();
        assert!(e.starts_with("policy.paths[0]"), "{e}");
        bad.path_order = vec!["lane:1".into()];
        assert!(policy_spec(&bad, &sla.classes, &c, &apps).is_err());

        let mut classes = sla.classes.clone();
        classes.push(SlaClass::new("gold", Some(50.0), Some(0.5), None));
        let text = BASE.replace("KEY", &key.display().to_string());
        let saved = save_sla(&text, &classes, &[spec], &c, &apps).unwrap();
        assert!(saved.contains("# A comment that must survive a save."));
        assert!(saved.contains("probe_rate = 10   # kept"));
        assert!(!saved.contains("\"old\""), "{saved}");
        // The saved file parses to the same running state.
        let again = Config::parse(Path::new("node.toml"), &saved, &[0, 1]).unwrap();
        let s2 = again.sla.as_ref().unwrap();
        assert_eq!(s2.classes, classes);
        assert_eq!(
            policy_model(&s2.policies[0], &again, &apps),
            api_policy,
            "{saved}"
        );
        let _ = std::fs::remove_file(key);
    }
}
