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
//!
//! With [`AppPolicy::with_telemetry`], the policy also counts the flows the
//! DPI decides per category and application and samples one packet in N
//! each way for the control thread's top-flows report
//! ([`crate::flowsample`]); without it, telemetry costs one branch per
//! packet.

use crate::dpi::capture::{self, LinkType};
use crate::dpi::engine::{DpiEngine, FlowDpi, Inspection};
use crate::dpi::flowtable::{FlowTable, FlowTableConfig};
use crate::dpi::types::{AppId, Category};
use crate::flowsample::{Direction, FlowSample, FlowSampler, PolicyTelemetry};
use crate::qos::rule::FlowFields;
use crate::qos::{ClassMap, QosClass};
use crate::steer::{SteerReader, NO_PATH};
use crate::wg::datapath::{Policy, PolicyDecision};
use std::sync::Arc;

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
    telemetry: Option<Telemetry>,
}

/// The worker's end of the telemetry: the shared counters and ring, and
/// its own sampling countdown.
struct Telemetry {
    shared: Arc<PolicyTelemetry>,
    sampler: FlowSampler,
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
            telemetry: None,
        }
    }

    /// Counts decided flows into `telemetry` and queues one packet sample
    /// in `sample_every` (0: none) there, each way through the tunnel.
    pub fn with_telemetry(
        mut self,
        telemetry: Arc<PolicyTelemetry>,
        sample_every: u32,
    ) -> AppPolicy {
        self.telemetry = Some(Telemetry {
            shared: telemetry,
            sampler: FlowSampler::new(sample_every),
        });
        self
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
        telemetry: Option<&Telemetry>,
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
                if let Some(t) = telemetry {
                    t.shared.count_decided(class.category, class.app);
                }
            }
        }
        Some(flow)
    }

    /// A packet out of the tunnel: the policy gave it no class, and the
    /// flow's path is the one its packets into the tunnel remembered.
    #[cold]
    fn sample_from_tunnel(t: &Telemetry, flow: Option<&PolicyFlow>, inner: &[u8], peer: u32) {
        let Some(f) = FlowFields::parse(inner) else {
            return;
        };
        let mut s = FlowSample::new(&f, Direction::FromTunnel, inner.len(), t.sampler.every());
        s.peer = peer;
        if let Some(flow) = flow {
            s.app = flow.dpi.class.app;
            s.category = flow.dpi.class.category;
            s.path = (flow.path != NO_PATH).then_some(flow.path);
        }
        t.shared.push_sample(s);
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
        let entry = Self::inspect(
            &mut self.dpi,
            &mut self.decided,
            self.telemetry.as_ref(),
            inner,
            now,
        );
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
        let decision = PolicyDecision {
            path,
            port: self.port_for(category, app),
            class: class as u8,
        };
        if let Some(t) = self.telemetry.as_mut() {
            if t.sampler.tick() {
                if let Some(f) = fields.as_ref() {
                    let mut s =
                        FlowSample::new(f, Direction::ToTunnel, inner.len(), t.sampler.every());
                    s.app = app;
                    s.category = category;
                    s.peer = peer;
                    s.path = decision.path;
                    s.class = Some(decision.class);
                    t.shared.push_sample(s);
                }
            }
        }
        decision
    }

    #[inline]
    fn observe(&mut self, inner: &[u8], peer: u32, now: u64) {
        let entry = Self::inspect(
            &mut self.dpi,
            &mut self.decided,
            self.telemetry.as_ref(),
            inner,
            now,
        );
        if let Some(t) = self.telemetry.as_mut() {
            if t.sampler.tick() {
                Self::sample_from_tunnel(t, entry.as_deref(), inner, peer);
            }
        }
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

    /// `p` with telemetry: a ring of `ring` samples, one in `every` packets.
    fn with_telemetry(p: AppPolicy, every: u32, ring: usize) -> (AppPolicy, Arc<PolicyTelemetry>) {
        let t = Arc::new(PolicyTelemetry::with_ring(
            p.inspector().map(|i| &i.engine),
            ring,
        ));
        (p.with_telemetry(Arc::clone(&t), every), t)
    }

    /// The packet the other way: addresses and ports swapped.
    fn reversed(p: &[u8]) -> Vec<u8> {
        let mut r = p.to_vec();
        r[12..16].copy_from_slice(&p[16..20]);
        r[16..20].copy_from_slice(&p[12..16]);
        r[20..22].copy_from_slice(&p[22..24]);
        r[22..24].copy_from_slice(&p[20..22]);
        r
    }

    #[test]
    fn telemetry_counts_a_decided_flow_by_category_and_application() {
        let (mut p, t) = with_telemetry(policy(true), 0, 16);
        let youtube = p.inspector().unwrap().engine.app_id("YouTube").unwrap();
        let hello = tcp_packet(
            40000,
            443,
            0,
            &client_hello_record("www.youtube.com", &["h2"]),
        );
        p.decide(&hello, 0, 0, 1);
        p.decide(&tcp_packet(40000, 443, 0, b"more"), 0, 0, 2);
        p.observe(&reversed(&hello), 0, 3);
        assert_eq!(t.decided_in(Category::Video), 1, "once per flow");
        assert_eq!(t.decided_as(youtube), 1);
        assert_eq!(t.app_name(youtube), Some("YouTube"));
        let d = t.decided();
        assert_eq!(d.by_category.iter().sum::<u64>(), 1);
        assert_eq!(d.by_app.iter().sum::<u64>(), 1);
        assert_eq!(p.decided[Category::Video as usize], 1);
        assert_eq!(t.samples_taken(), 0, "sampling off");
    }

    #[test]
    fn one_packet_in_n_into_the_tunnel_is_sampled_with_its_decision() {
        let (mut p, t) = with_telemetry(policy(true), 4, 16);
        let youtube = p.inspector().unwrap().engine.app_id("YouTube").unwrap();
        let hello = tcp_packet(
            40000,
            443,
            0,
            &client_hello_record("www.youtube.com", &["h2"]),
        );
        p.decide(&hello, 7, 0, 1);
        let data = tcp_packet(40000, 443, 0, b"\x17\x03\x03\x00\x05hello");
        for now in 2..4 {
            p.decide(&data, 7, 0, now);
        }
        assert_eq!(t.pop_sample(), None, "three packets: no sample yet");
        p.decide(&data, 7, 0, 4);
        let s = t.pop_sample().expect("the fourth packet is sampled");
        assert_eq!(t.pop_sample(), None);
        assert_eq!(s.direction, Direction::ToTunnel);
        assert_eq!(s.src_addr(), std::net::IpAddr::from([10, 1, 0, 2]));
        assert_eq!(s.dst_addr(), std::net::IpAddr::from([10, 2, 0, 2]));
        assert_eq!((s.src_port, s.dst_port, s.proto), (40000, 443, 6));
        assert_eq!((s.app, s.category), (youtube, Category::Video));
        assert_eq!((s.peer, s.path), (7, None));
        assert_eq!(s.class, Some(QosClass::Streaming as u8));
        assert_eq!((s.bytes, s.packets), (data.len() as u32 * 4, 4));
    }

    #[test]
    fn samples_from_the_tunnel_carry_the_flows_remembered_path() {
        use crate::steer::{PathChoice, PolicyMatch, SteerPublisher, SteerTable, WeightedSet};
        let table = SteerTable::new(
            vec![PolicyMatch {
                rules: vec![crate::qos::MatchRule::any(QosClass::RealTime)],
                ..PolicyMatch::default()
            }],
            1,
        );
        let publisher = Arc::new(SteerPublisher::new(table));
        let mut set = WeightedSet::EMPTY;
        set.set(1, 255);
        publisher
            .table()
            .publish(0, 0, PathChoice { set, keep: 0b10 });
        let p = policy(true).with_steering(SteerReader::new(Arc::clone(&publisher)));
        let (mut p, t) = with_telemetry(p, 1, 16);
        let out = tcp_packet(40020, 443, 0, b"a");
        assert_eq!(p.decide(&out, 0, 1, 1).path, Some(1));
        assert_eq!(t.pop_sample().unwrap().path, Some(1));
        let back = reversed(&out);
        p.observe(&back, 0, 2);
        let s = t.pop_sample().expect("every packet sampled");
        assert_eq!(s.direction, Direction::FromTunnel);
        assert_eq!((s.src_port, s.dst_port), (443, 40020));
        assert_eq!((s.path, s.class, s.peer), (Some(1), None, 0));
        assert_eq!((s.bytes, s.packets), (back.len() as u32, 1));
        // Both directions add up to one flow, oriented into the tunnel.
        let mut top = crate::flowsample::TopFlows::default();
        top.add(&s, 0.0);
        let (id, _) = top.top(1)[0];
        assert_eq!((id.src_port, id.dst_port), (40020, 443));
    }

    #[test]
    fn without_dpi_samples_carry_the_five_tuple_and_no_category() {
        let (mut p, t) = with_telemetry(policy(false), 1, 16);
        let pkt = tcp_packet(5000, 80, 0, b"x");
        p.decide(&pkt, 3, 0, 1);
        p.observe(&reversed(&pkt), 3, 1);
        for direction in [Direction::ToTunnel, Direction::FromTunnel] {
            let s = t.pop_sample().unwrap();
            assert_eq!(s.direction, direction);
            assert_eq!(
                (s.category, s.app, s.peer),
                (Category::Unknown, AppId::NONE, 3)
            );
            assert_eq!(s.proto, 6);
        }
        assert_eq!(t.app_slots(), 1);
        assert_eq!(t.decided().by_category, [0; Category::ALL.len()]);
    }

    #[test]
    fn a_full_sample_ring_counts_the_samples_it_drops() {
        let (mut p, t) = with_telemetry(policy(true), 1, 2);
        let pkt = tcp_packet(5000, 80, 0, b"x");
        for now in 0..5 {
            p.decide(&pkt, 0, 0, now);
        }
        assert_eq!((t.samples_taken(), t.samples_dropped()), (5, 3));
    }

    #[test]
    fn garbage_is_neither_sampled_nor_counted() {
        let (mut p, t) = with_telemetry(policy(true), 1, 16);
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let d = p.decide(&junk, 0, 0, 1);
            assert!(QosClass::from_u8(d.class).is_some());
            p.observe(&junk, 0, 1);
        }
        assert_eq!((t.samples_taken(), t.pop_sample()), (0, None));
        assert_eq!(t.decided().by_category, [0; Category::ALL.len()]);
    }
}
