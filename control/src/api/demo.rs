//! A fake but plausible node: three sites over two WAN ports, counters
//! that grow, measurements that wobble, one LTE path that keeps breaking
//! the voice class, and an event every few seconds. It stands in for the
//! daemon behind the real [`ApiState`] interface, for developing the
//! dashboard and for running schemathesis and the browser test
//! (`examples/api_demo.rs`, `scripts/api-check`) without DPDK.
//!
//! Everything is a function of the time since start, so a test can ask
//! for the snapshot at a given second.

use super::model::*;
use super::routes::apply_to;
use super::state::{ApiState, ConfigCommand, Snapshot};
use std::collections::BTreeMap;
use std::time::Instant;

struct Site {
    name: &'static str,
    key: &'static str,
    endpoint: &'static str,
    allowed: &'static str,
    /// Base RTT on (wan1 fibre, wan2 LTE), ms.
    rtt: (f64, f64),
    /// Traffic, bytes/s.
    rate: f64,
}

const SITES: [Site; 3] = [
    Site {
        name: "paris",
        key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
        endpoint: "198.51.100.10:51820",
        allowed: "10.1.0.0/16",
        rtt: (12.0, 48.0),
        rate: 2.5e6,
    },
    Site {
        name: "berlin",
        key: "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=",
        endpoint: "203.0.113.20:51820",
        allowed: "10.2.0.0/16",
        rtt: (24.0, 95.0),
        rate: 1.2e6,
    },
    Site {
        name: "datacenter",
        key: "gN65BkIKy1eCE9pP1wdc8ROUtkHLF2PfAqYdyYBz6EA=",
        endpoint: "192.0.2.30:51820",
        allowed: "10.9.0.0/16",
        rtt: (8.0, 61.0),
        rate: 9.0e6,
    },
];

const CLASSES: [&str; 5] = ["realtime", "interactive", "streaming", "standard", "bulk"];
const APPS: [(&str, &str, u64); 6] = [
    ("zoom", "VoIP", 40),
    ("teams", "VoIP", 35),
    ("youtube", "Video", 22),
    ("office365", "Web", 90),
    ("github", "Web", 30),
    ("ssh", "Interactive", 12),
];

/// The fake daemon.
#[derive(Debug)]
pub struct Demo {
    started: Instant,
    /// The configuration part of the snapshot (classes, policies) as the
    /// "daemon" holds it.
    config: Snapshot,
    events_sent: u64,
    /// Whether `step` reports readiness (ready half a second after start,
    /// as a node whose ports come up). Tests that own readiness turn it
    /// off, so the demo never overwrites what they set.
    manages_readiness: bool,
}

impl Default for Demo {
    fn default() -> Self {
        Demo::new()
    }
}

fn wobble(t: f64, period: f64, phase: f64) -> f64 {
    (t / period * std::f64::consts::TAU + phase).sin()
}

impl Demo {
    pub fn new() -> Demo {
        let class = |name: &str, lat, loss, jit| SlaClass {
            name: name.into(),
            max_latency_ms: lat,
            max_loss_pct: loss,
            max_jitter_ms: jit,
        };
        let config = Snapshot {
            sla_classes: vec![
                class("voice", Some(150.0), Some(1.0), Some(30.0)),
                class("business", Some(250.0), Some(2.0), None),
                class("bulk", None, Some(10.0), None),
            ],
            policies: vec![
                Policy {
                    name: "voice".into(),
                    sla_class: "voice".into(),
                    categories: vec!["VoIP".into()],
                    apps: vec![],
                    rules: vec![Rule {
                        protocol: Some("udp".into()),
                        dst_ports: Some("3478-3481".into()),
                        ..Rule::default()
                    }],
                    path_order: vec!["port:wan1".into(), "port:wan2".into()],
                    mode: Mode::BestPath,
                },
                Policy {
                    name: "backup".into(),
                    sla_class: "bulk".into(),
                    categories: vec!["FileTransfer".into()],
                    apps: vec![],
                    rules: vec![],
                    path_order: vec![],
                    mode: Mode::Spread,
                },
            ],
            ..Snapshot::default()
        };
        Demo {
            started: Instant::now(),
            config,
            events_sent: 0,
            manages_readiness: true,
        }
    }

    /// Leaves readiness to the caller.
    pub fn without_readiness(mut self) -> Demo {
        self.manages_readiness = false;
        self
    }

    /// Seconds since start.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Answer pending commands, publish the snapshot, push the events that
    /// are due. Call it every few hundred milliseconds.
    pub fn step(&mut self, api: &ApiState) {
        while let Some((command, reply)) = api.try_recv_command() {
            apply_to(&mut self.config, &command);
            if command == ConfigCommand::Save {
                log::info!("demo: save requested (nothing written)");
            }
            reply.send(Ok(()));
        }
        let t = self.elapsed();
        api.publish(self.snapshot(t));
        if self.manages_readiness {
            api.set_ready(t >= 0.5);
        }
        // One event every 4 s.
        while (self.events_sent as f64) * 4.0 <= t {
            api.push_event(self.event(self.events_sent));
            self.events_sent += 1;
        }
    }

    fn event(&self, n: u64) -> Event {
        match n % 4 {
            0 => Event::new(
                "sla_violation",
                "path berlin/2 broke voice: loss 2.40% > 1.00%",
            )
            .peer("berlin")
            .path(2)
            .field("class", "voice")
            .field("metric", "loss")
            .field("value", "2.4")
            .field("limit", "1"),
            1 => Event::new(
                "path_switch",
                "policy voice on berlin: path 2 -> path 1 (hard-limit)",
            )
            .peer("berlin")
            .path(1)
            .policy("voice")
            .field("reason", "hard-limit"),
            2 => Event::new("sla_recovery", "path berlin/2 meets voice again")
                .peer("berlin")
                .path(2)
                .field("class", "voice"),
            _ => Event::new("bfd", "path paris/1 BFD up")
                .peer("paris")
                .path(1)
                .field("state", "up"),
        }
    }

    /// The node at `t` seconds after start.
    pub fn snapshot(&self, t: f64) -> Snapshot {
        let total: f64 = SITES.iter().map(|s| s.rate).sum();
        // Traffic counters grow as rate × w(t), where w' = 1 + 0.5 cos(2πt/20):
        // the rate swings ±50 % over 20 s, and counters never go backwards.
        let omega = std::f64::consts::TAU / 20.0;
        let w = t + 0.5 / omega * (omega * t).sin();
        let port = |name: &str, role: &str, mac: &str, addr: &str, share: f64| Port {
            name: name.into(),
            role: role.into(),
            link_up: true,
            speed_mbps: 10_000,
            mac: mac.into(),
            addresses: vec![addr.into()],
            rx_bytes: (total * share * w) as u64,
            tx_bytes: (total * share * 0.93 * w) as u64,
            rx_packets: (total * share * w / 800.0) as u64,
            tx_packets: (total * share * 0.93 * w / 800.0) as u64,
            drops: (t * 0.7 * share) as u64,
        };
        let ports = vec![
            port("lan", "lan", "02:00:00:00:00:01", "10.0.0.1/24", 1.0),
            port("wan1", "wan", "02:00:00:00:00:02", "192.0.2.1/24", 0.7),
            port("wan2", "wan", "02:00:00:00:00:03", "198.51.100.1/24", 0.3),
        ];
        let cores = Cores {
            control: 0,
            workers: (0..2)
                .map(|id| {
                    let polls = (t * 2.0e6) as u64;
                    Worker {
                        id,
                        core: id + 1,
                        polls,
                        idle_polls: polls / 10 * (6 + id as u64),
                        busy_seconds: t * (0.35 - 0.1 * id as f64),
                        rx_packets: (total * t / 1600.0) as u64,
                        tx_packets: (total * t / 1650.0) as u64,
                        dropped: (t * 0.3) as u64,
                    }
                })
                .collect(),
        };
        let mut peers = Vec::new();
        let mut paths = Vec::new();
        for (i, s) in SITES.iter().enumerate() {
            let phase = i as f64;
            for (index, (port, base)) in [("wan1", s.rtt.0), ("wan2", s.rtt.1)]
                .into_iter()
                .enumerate()
            {
                // berlin's LTE path goes bad for 8 s of every 16.
                let bad = s.name == "berlin" && index == 1 && (t % 16.0) >= 8.0;
                let rtt = base * (1.0 + 0.08 * wobble(t, 7.0, phase + index as f64));
                let jitter = base * 0.05 * (1.5 + wobble(t, 11.0, phase));
                let loss = if bad {
                    2.4
                } else {
                    0.05 * (1.0 + wobble(t, 13.0, phase))
                };
                let mut compliant = BTreeMap::new();
                for c in &self.config.sla_classes {
                    let ok = c.max_latency_ms.is_none_or(|l| rtt * 1.3 <= l)
                        && c.max_loss_pct.is_none_or(|l| loss <= l)
                        && c.max_jitter_ms.is_none_or(|l| jitter <= l);
                    compliant.insert(c.name.clone(), ok);
                }
                let share = if index == 0 { 0.75 } else { 0.25 };
                paths.push(Path {
                    peer: s.name.into(),
                    // Numbered from 1, as the daemon numbers paths.
                    index: index as u8 + 1,
                    port: port.into(),
                    local: if index == 0 {
                        "192.0.2.1:51820"
                    } else {
                        "198.51.100.1:51820"
                    }
                    .into(),
                    remote: s.endpoint.into(),
                    up: true,
                    bfd: Some(Bfd {
                        state: BfdState::Up,
                        remote_state: BfdState::Up,
                        diag: "no_diagnostic".into(),
                        interval_ms: 100.0,
                        multiplier: 3,
                    }),
                    sla: Some(PathSla {
                        rtt_ms: RttMs {
                            p50: rtt,
                            p95: rtt * 1.3,
                            p99: rtt * 1.6,
                            mean: rtt * 1.05,
                            min: rtt * 0.8,
                            max: rtt * 2.2,
                        },
                        jitter_ms: Directional {
                            forward: jitter,
                            reverse: jitter * 0.8,
                        },
                        loss_pct: Loss {
                            round_trip: loss,
                            forward: loss * 0.6,
                            reverse: loss * 0.4,
                        },
                        samples: 100,
                        compliant,
                    }),
                    tx_bytes: (s.rate * share * t) as u64,
                });
            }
            peers.push(Peer {
                name: s.name.into(),
                public_key: s.key.into(),
                endpoints: vec![s.endpoint.into()],
                allowed_ips: vec![s.allowed.into()],
                latest_handshake_unix: Some(super::state::unix_now() - (t % 120.0)),
                rx_bytes: (s.rate * 1.1 * t) as u64,
                tx_bytes: (s.rate * t) as u64,
                paths: vec![0, 1],
                failovers: if s.name == "berlin" {
                    (t / 16.0) as u64
                } else {
                    0
                },
            });
        }
        let flows = APPS
            .iter()
            .enumerate()
            .map(|(i, (app, category, weight))| Flow {
                src: format!("10.0.0.{}", 10 + i),
                dst: format!("10.{}.0.{}", i % 2 + 1, 20 + i),
                protocol: if *category == "VoIP" { "udp" } else { "tcp" }.into(),
                src_port: 40000 + i as u16,
                dst_port: if *category == "VoIP" { 3478 } else { 443 },
                app: Some((*app).into()),
                category: (*category).into(),
                peer: Some(SITES[i % 3].name.into()),
                path: Some(1),
                qos_class: if *category == "VoIP" {
                    "realtime"
                } else {
                    "standard"
                }
                .into(),
                bytes: (*weight as f64 * 1e4 * t) as u64,
                packets: (*weight as f64 * 12.0 * t) as u64,
            })
            .collect();
        let qos = ["wan1", "wan2"]
            .iter()
            .enumerate()
            .map(|(p, port)| QosPort {
                port: (*port).into(),
                classes: CLASSES
                    .iter()
                    .enumerate()
                    .map(|(c, class)| {
                        let rate =
                            total * [0.1, 0.1, 0.3, 0.4, 0.1][c] * if p == 0 { 0.7 } else { 0.3 };
                        QosClassStats {
                            class: (*class).into(),
                            sent_packets: (rate * w / 900.0) as u64,
                            sent_bytes: (rate * w) as u64,
                            dropped_packets: if c == 4 { (t * 3.0) as u64 } else { 0 },
                            queue_delay_p99_us: Some(150.0 * (c + 1) as f64),
                        }
                    })
                    .collect(),
            })
            .collect();
        let dpi = Dpi {
            by_category: [
                "Web",
                "Video",
                "VoIP",
                "Interactive",
                "FileTransfer",
                "Unknown",
            ]
            .iter()
            .enumerate()
            .map(|(i, c)| CategoryCount {
                category: (*c).into(),
                flows: ((60 - 9 * i) as f64 * t) as u64,
            })
            .collect(),
            top_apps: APPS
                .iter()
                .map(|(app, category, weight)| AppCount {
                    app: (*app).into(),
                    category: (*category).into(),
                    flows: (*weight as f64 * t / 3.0) as u64,
                    bytes: (*weight as f64 * 1e4 * t) as u64,
                })
                .collect(),
        };
        Snapshot {
            cores,
            ports,
            peers,
            paths,
            flows,
            stats: Stats { qos, dpi },
            sla_classes: self.config.sla_classes.clone(),
            policies: self.config.policies.clone(),
            apps: APPS.iter().map(|(a, _, _)| (*a).to_string()).collect(),
        }
    }
}
