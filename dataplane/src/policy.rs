//! The application-aware policy: on every packet between routing and
//! encryption, the worker's DPI engine names the flow's application and
//! category (on the flow's first packets; later packets only look up the
//! flow table), and the policy maps them to a QoS class and a preferred
//! WAN port. Packets leaving the tunnel towards the LAN are inspected too
//! ([`Policy::observe`]): servers speak first in several protocols.
//!
//! With `[sla]`, flows that fall under an SLA policy take the path the
//! control thread's selector chose for it ([`crate::steer`]); each flow
//! remembers its path in the flow table, so it stays there while the path
//! stays up and compliant.
//!
//! Per core, no locks: the flow table and engine belong to the worker.

use crate::dpi::capture::{self, LinkType};
use crate::dpi::engine::{DpiEngine, FlowDpi, Inspection};
use crate::dpi::flowtable::{FlowTable, FlowTableConfig};
use crate::dpi::types::{AppId, Category};
use crate::qos::rule::FlowFields;
use crate::qos::{ClassMap, QosClass};
use crate::steer::{SteerReader, NO_PATH};
use crate::wg::datapath::{Policy, PolicyDecision};

/// What the policy keeps per flow: the DPI state and the flow's SLA path.
#[derive(Debug, Clone, Copy)]
pub struct PolicyFlow {
    pub dpi: FlowDpi,
    /// The path SLA steering put the flow on ([`NO_PATH`]: none yet).
    pub path: u8,
}

impl Default for PolicyFlow {
    fn default() -> Self {
        PolicyFlow {
            dpi: FlowDpi::default(),
            path: NO_PATH,
        }
    }
}

// The 64-byte bound holds with the path byte.
const _: () = assert!(crate::dpi::flowtable::bytes_per_slot_x10::<PolicyFlow>() <= 640);

/// What the policy inspects with: one flow table and one engine per worker.
pub struct FlowInspector {
    pub flows: FlowTable<PolicyFlow>,
    pub engine: DpiEngine,
}

/// The policy of a worker.
pub struct AppPolicy {
    dpi: Option<FlowInspector>,
    classes: ClassMap,
    /// Indexed by `Category as usize`: the WAN port the category prefers.
    category_port: [Option<u8>; Category::ALL.len()],
    /// Sorted by application id.
    app_port: Vec<(AppId, u8)>,
    /// Flows decided by this worker's engine, by category (for stats).
    pub decided: [u64; Category::ALL.len()],
    /// SLA policies and the selector's path choices (`[sla]`).
    steer: Option<SteerReader>,
}

impl AppPolicy {
    pub fn new(dpi: Option<FlowInspector>, classes: ClassMap) -> AppPolicy {
        AppPolicy {
            dpi,
            classes,
            category_port: [None; Category::ALL.len()],
            app_port: Vec::new(),
            decided: [0; Category::ALL.len()],
            steer: None,
        }
    }

    /// Steers the flows of SLA policies onto the paths the control
    /// thread's selector publishes.
    pub fn with_steering(mut self, steer: SteerReader) -> AppPolicy {
        self.steer = Some(steer);
        self
    }

    /// Sends `category`'s flows out of WAN port `port` where the peer has a
    /// path there that is up.
    pub fn prefer_category(&mut self, category: Category, port: u8) {
        self.category_port[category as usize] = Some(port);
    }

    /// Like [`AppPolicy::prefer_category`] for one application; it wins
    /// over its category's preference.
    pub fn prefer_app(&mut self, app: AppId, port: u8) {
        match self.app_port.binary_search_by_key(&app.0, |(a, _)| a.0) {
            Ok(i) => self.app_port[i].1 = port,
            Err(i) => self.app_port.insert(i, (app, port)),
        }
    }

    pub fn inspector(&self) -> Option<&FlowInspector> {
        self.dpi.as_ref()
    }

    /// The flow's entry, after inspecting this packet if the flow is still
    /// undecided; None without DPI or for packets that are not IP.
    #[inline]
    fn inspect<'s>(
        dpi: &'s mut Option<FlowInspector>,
        decided: &mut [u64; Category::ALL.len()],
        ip: &[u8],
        now: u64,
    ) -> Option<&'s mut PolicyFlow> {
        let dpi = dpi.as_mut()?;
        let (key, view) = capture::packet(LinkType::Raw, ip).ok()?;
        let entry = dpi.flows.lookup_or_insert(&key, key.hash64(), now);
        let flow = entry.value;
        // Decided flows cost only the lookup, except FTP and SIP control
        // connections, whose later lines announce the flows to expect.
        if flow.dpi.wants_packets() {
            if let Inspection::Decided { class, .. } = dpi.engine.inspect(&mut flow.dpi, &view, now)
            {
                decided[class.category as usize] += 1;
            }
        }
        Some(flow)
    }

    fn port_for(&self, category: Category, app: AppId) -> Option<u8> {
        if !app.is_none() {
            if let Ok(i) = self.app_port.binary_search_by_key(&app.0, |(a, _)| a.0) {
                return Some(self.app_port[i].1);
            }
        }
        self.category_port[category as usize]
    }
}

impl Policy for AppPolicy {
    #[inline]
    fn decide(&mut self, inner: &[u8], peer: u32, flow: u64, now: u64) -> PolicyDecision {
        let entry = Self::inspect(&mut self.dpi, &mut self.decided, inner, now);
        let (category, app) = entry
            .as_ref()
            .map_or((Category::Unknown, AppId::NONE), |f| {
                (f.dpi.class.category, f.dpi.class.app)
            });
        let fields = FlowFields::parse(inner);
        let class: QosClass = self.classes.classify(fields.as_ref(), category, app);
        let path = self.steer.as_ref().and_then(|s| {
            let table = s.table();
            let policy = table.policy_for(fields.as_ref(), category, app)?;
            let mut unremembered = NO_PATH;
            let memo = match entry {
                Some(f) => &mut f.path,
                None => &mut unremembered,
            };
            table.steer(peer, policy, flow, memo)
        });
        PolicyDecision {
            path,
            port: self.port_for(category, app),
            class: class as u8,
        }
    }

    #[inline]
    fn observe(&mut self, inner: &[u8], _peer: u32, now: u64) {
        Self::inspect(&mut self.dpi, &mut self.decided, inner, now);
    }

    /// Ages out idle flows a few buckets per burst.
    #[inline]
    fn poll(&mut self, now: u64) {
        if let Some(steer) = self.steer.as_mut() {
            steer.refresh();
        }
        if let Some(dpi) = self.dpi.as_mut() {
            dpi.flows.expire(now, 4);
        }
    }
}

/// A flow table and engine for a worker from the settings.
pub fn inspector(
    engine: DpiEngine,
    flows: usize,
    tsc_hz: u64,
    tcp_idle_secs: u64,
    other_idle_secs: u64,
) -> Result<FlowInspector, String> {
    let flows = FlowTable::new(&FlowTableConfig {
        capacity: flows,
        ticks_per_second: tsc_hz,
        tcp_idle_timeout: tcp_idle_secs.saturating_mul(tsc_hz),
        other_idle_timeout: other_idle_secs.saturating_mul(tsc_hz),
    })
    .map_err(|e| format!("dpi flow table: {e:?}"))?;
    Ok(FlowInspector { flows, engine })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpi::dissect::tls::tests::client_hello_record;
    use crate::dpi::engine::DpiConfig;

    /// An IPv4/TCP packet (no options) with `payload`, `dscp`, PSH+ACK.
    fn tcp_packet(sport: u16, dport: u16, dscp: u8, payload: &[u8]) -> Vec<u8> {
        let total = 40 + payload.len();
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[1] = dscp << 2;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p[24..28].copy_from_slice(&1000u32.to_be_bytes());
        p[32] = 5 << 4;
        p[33] = 0x18;
        p[40..].copy_from_slice(payload);
        p
    }

    fn policy(with_dpi: bool) -> AppPolicy {
        let dpi = with_dpi.then(|| {
            let engine = DpiEngine::new(DpiConfig {
                ticks_per_sec: 1_000,
                ..DpiConfig::default()
            })
            .unwrap();
            inspector(engine, 4096, 1_000, 300, 60).unwrap()
        });
        AppPolicy::new(dpi, ClassMap::default())
    }

    #[test]
    fn a_youtube_hello_makes_its_flow_streaming_and_takes_the_video_port() {
        let mut p = policy(true);
        p.prefer_category(Category::Video, 2);
        let hello = tcp_packet(
            40000,
            443,
            0,
            &client_hello_record("www.youtube.com", &["h2"]),
        );
        let d = p.decide(&hello, 0, 0, 1);
        assert_eq!(d.class, QosClass::Streaming as u8);
        assert_eq!(d.port, Some(2));
        // Later packets of the flow keep the decision from the table.
        let data = tcp_packet(40000, 443, 0, b"\x17\x03\x03\x00\x05hello");
        let d = p.decide(&data, 0, 0, 2);
        assert_eq!((d.class, d.port), (QosClass::Streaming as u8, Some(2)));
        assert_eq!(p.decided[Category::Video as usize], 1);
    }

    #[test]
    fn an_application_preference_beats_its_category() {
        let mut p = policy(true);
        p.prefer_category(Category::Video, 2);
        let app = p
            .inspector()
            .unwrap()
            .engine
            .app_id("YouTube")
            .expect("a built-in app");
        p.prefer_app(app, 3);
        let hello = tcp_packet(
            40001,
            443,
            0,
            &client_hello_record("www.youtube.com", &["h2"]),
        );
        assert_eq!(p.decide(&hello, 0, 0, 1).port, Some(3));
    }

    #[test]
    fn replies_from_the_tunnel_are_inspected_too() {
        // A MySQL server speaks first: its greeting arrives from the tunnel.
        let mut p = policy(true);
        let mut greeting = vec![0x4a, 0, 0, 0, 10];
        greeting.extend_from_slice(b"10.11.19-MariaDB\0");
        greeting.extend_from_slice(&[1, 0, 0, 0]);
        greeting.extend_from_slice(b"abcdefgh\0");
        greeting.extend_from_slice(&[0xff, 0xf7, 8, 2, 0, 0xff, 0x81, 0x15]);
        greeting.extend_from_slice(&[0; 10]);
        greeting.extend_from_slice(b"ijklmnopqrst\0");
        greeting.extend_from_slice(b"mysql_native_password\0");
        let len = greeting.len() - 4;
        greeting[0] = len as u8;
        let mut reply = tcp_packet(3306, 40002, 0, &greeting);
        // From the server (10.2.0.2) to the client (10.1.0.2).
        reply[12..16].copy_from_slice(&[10, 2, 0, 2]);
        reply[16..20].copy_from_slice(&[10, 1, 0, 2]);
        p.observe(&reply, 0, 1);
        let request = tcp_packet(40002, 3306, 0, b"");
        let d = p.decide(&request, 0, 0, 2);
        assert_eq!(
            d.class,
            QosClass::Standard as u8,
            "Database maps to Standard"
        );
        assert_eq!(
            p.decided[Category::Database as usize],
            1,
            "decided from the reply"
        );
    }

    #[test]
    fn sla_steering_keeps_a_flow_on_its_path_until_the_path_stops_qualifying() {
        use crate::steer::WeightedSet;
        use crate::steer::{PathChoice, PolicyMatch, SteerPublisher, SteerReader, SteerTable};
        use std::sync::Arc;
        let mut rule = crate::qos::MatchRule::any(QosClass::RealTime);
        rule.dst_ports = Some(crate::qos::PortRange::single(443));
        let table = SteerTable::new(
            vec![PolicyMatch {
                rules: vec![rule],
                ..PolicyMatch::default()
            }],
            1,
        );
        let publisher = Arc::new(SteerPublisher::new(table));
        let mut p = policy(true).with_steering(SteerReader::new(Arc::clone(&publisher)));
        let pinned = |path: u8, keep: u8| {
            let mut set = WeightedSet::EMPTY;
            set.set(path, 255);
            PathChoice { set, keep }
        };
        let flow_a = tcp_packet(40010, 443, 0, b"a");
        let flow_b = tcp_packet(40011, 443, 0, b"b");
        let other = tcp_packet(40012, 80, 0, b"c");
        // Nothing published: the data path decides.
        assert_eq!(p.decide(&flow_a, 0, 1, 1).path, None);
        publisher.table().publish(0, 0, pinned(0, 0b01));
        assert_eq!(p.decide(&flow_a, 0, 1, 2).path, Some(0));
        // A better path 1: new flows take it, flow a stays on path 0.
        publisher.table().publish(0, 0, pinned(1, 0b11));
        assert_eq!(p.decide(&flow_b, 0, 2, 3).path, Some(1));
        assert_eq!(p.decide(&flow_a, 0, 1, 4).path, Some(0));
        // Path 0 breaks the class: flow a moves.
        publisher.table().publish(0, 0, pinned(1, 0b10));
        assert_eq!(p.decide(&flow_a, 0, 1, 5).path, Some(1));
        // Traffic no policy takes is not steered.
        assert_eq!(p.decide(&other, 0, 3, 6).path, None);
        // A new policy list arrives by epoch, between bursts.
        publisher.replace(SteerTable::new(Vec::new(), 1));
        assert_eq!(p.decide(&flow_b, 0, 2, 7).path, Some(1));
        p.poll(8);
        assert_eq!(p.decide(&flow_b, 0, 2, 9).path, None);
    }

    #[test]
    fn without_dpi_the_dscp_decides() {
        let mut p = policy(false);
        let ef = tcp_packet(5060, 5060, crate::qos::dscp::codepoint::EF, b"x");
        assert_eq!(p.decide(&ef, 0, 0, 1).class, QosClass::RealTime as u8);
        let plain = tcp_packet(5061, 80, 0, b"x");
        let d = p.decide(&plain, 0, 0, 1);
        assert_eq!((d.class, d.port), (QosClass::DEFAULT as u8, None));
    }

    #[test]
    fn garbage_never_panics_and_gets_the_default() {
        let mut p = policy(true);
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let d = p.decide(&junk, 0, 0, 1);
            assert!(QosClass::from_u8(d.class).is_some());
            p.observe(&junk, 0, 1);
        }
    }
}
