//! SLA steering on the workers: which of a peer's paths each SLA policy's
//! flows take. The control thread's SLA driver (control/src/sladriver.rs,
//! docs/sla.md) runs the selector and publishes, per (peer, policy), a
//! [`PathChoice`]; the worker's policy hook ([`crate::policy::AppPolicy`])
//! reads it for every packet it sends into a tunnel.
//!
//! # Publication
//!
//! Two kinds of change, two mechanisms:
//!
//! - **Path choices** change at the probe rate. Each (peer, policy) is one
//!   `AtomicU64` (the weighted set, [`MAX_PATHS`] = 8 weights of a byte) and
//!   one `AtomicU8` (the paths existing flows may stay on). A worker reads
//!   them with relaxed loads: a packet sees the old or the new choice, and
//!   either is a valid one.
//! - **The policy list** (which traffic belongs to which policy) changes
//!   with the configuration. The control thread builds a new
//!   [`SteerTable`] and swaps it in by epoch ([`SteerPublisher::replace`]);
//!   each worker compares the epoch once per burst ([`SteerReader::refresh`])
//!   and takes the new table between bursts. Nothing on the per-packet path
//!   locks, allocates or touches a reference count.
//!
//! # Existing flows stay on their path
//!
//! The rule: a flow stays on its path unless that path goes down or
//! stops being compliant. The worker remembers each flow's path in its flow
//! table (one byte beside the DPI state, [`crate::policy::PolicyFlow`]) and
//! keeps it while the published `keep` mask has it; only new flows, and
//! flows whose path left the mask, take the current choice. Without `[dpi]`
//! there is no flow table, so every packet takes the current choice: a
//! best-path switch then moves all of the policy's flows, and spreading is
//! still stable by rendezvous hashing ([`hrw`]).

pub mod hrw;

pub use hrw::{pick, WeightedSet};

use crate::dpi::types::{AppId, Category};
use crate::qos::rule::{FlowFields, MatchRule};
use crate::wg::datapath::MAX_PATHS;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

const _: () = assert!(MAX_PATHS == 8, "a weighted set is one u64");

/// No path remembered for a flow.
pub const NO_PATH: u8 = u8::MAX;

/// What traffic a policy takes: any of the listed categories,
/// applications or 5-tuple rules. (A rule's `class` field is ignored here:
/// the QoS class comes from the class map, the SLA class from the policy.)
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyMatch {
    pub categories: Vec<Category>,
    pub apps: Vec<AppId>,
    pub rules: Vec<MatchRule>,
}

impl PolicyMatch {
    /// Whether a flow with these fields (None if unparsed), DPI category
    /// and application falls under the policy.
    #[inline]
    pub fn matches(&self, fields: Option<&FlowFields>, category: Category, app: AppId) -> bool {
        (category != Category::Unknown && self.categories.contains(&category))
            || (!app.is_none() && self.apps.contains(&app))
            || fields.is_some_and(|f| self.rules.iter().any(|r| r.matches(f)))
    }
}

/// One (peer, policy)'s published choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathChoice {
    /// Where new flows go: one member is a pinned path, several are spread
    /// by weight, none leaves the flow to the data path's own spreading.
    pub set: WeightedSet,
    /// Bit `i`: path `i` is up and meets the policy's SLA class, so a flow
    /// already on it stays there.
    pub keep: u8,
}

/// The policies, in order (the first that takes a flow wins), and every
/// peer's current choice for each.
#[derive(Debug)]
pub struct SteerTable {
    matches: Vec<PolicyMatch>,
    peers: usize,
    sets: Box<[AtomicU64]>,
    keep: Box<[AtomicU8]>,
}

impl SteerTable {
    /// A table with no choice published yet: every flow follows the data
    /// path's own spreading until the driver publishes.
    pub fn new(matches: Vec<PolicyMatch>, peers: usize) -> SteerTable {
        let n = matches.len().saturating_mul(peers);
        SteerTable {
            matches,
            peers,
            sets: (0..n).map(|_| AtomicU64::new(0)).collect(),
            keep: (0..n).map(|_| AtomicU8::new(0)).collect(),
        }
    }

    pub fn policies(&self) -> usize {
        self.matches.len()
    }

    pub fn peers(&self) -> usize {
        self.peers
    }

    #[inline]
    fn index(&self, peer: u32, policy: usize) -> Option<usize> {
        let peer = peer as usize;
        (peer < self.peers && policy < self.matches.len())
            .then(|| peer * self.matches.len() + policy)
    }

    /// The first policy, in order, that takes the flow.
    #[inline]
    pub fn policy_for(
        &self,
        fields: Option<&FlowFields>,
        category: Category,
        app: AppId,
    ) -> Option<usize> {
        self.matches
            .iter()
            .position(|m| m.matches(fields, category, app))
    }

    /// Publishes `peer`'s choice for `policy` (the control thread).
    /// Out-of-range indexes are ignored.
    pub fn publish(&self, peer: u32, policy: usize, choice: PathChoice) {
        if let Some(i) = self.index(peer, policy) {
            self.keep[i].store(choice.keep, Relaxed);
            self.sets[i].store(choice.set.to_bits(), Relaxed);
        }
    }

    /// `peer`'s current choice for `policy`.
    #[inline]
    pub fn choice(&self, peer: u32, policy: usize) -> Option<PathChoice> {
        let i = self.index(peer, policy)?;
        Some(PathChoice {
            set: WeightedSet::from_bits(self.sets[i].load(Relaxed)),
            keep: self.keep[i].load(Relaxed),
        })
    }

    /// The path for a flow of `policy` towards `peer`: the flow's own path
    /// (`memo`) while the choice keeps it, otherwise the choice's pick for
    /// the flow hash, which becomes the flow's path. None: nothing
    /// published (or no path up); the data path spreads as without SLA.
    #[inline]
    pub fn steer(&self, peer: u32, policy: usize, flow: u64, memo: &mut u8) -> Option<u8> {
        let choice = self.choice(peer, policy)?;
        if *memo < MAX_PATHS as u8 && choice.keep & (1 << *memo) != 0 {
            return Some(*memo);
        }
        let path = choice.set.single().or_else(|| pick(&choice.set, flow))?;
        *memo = path;
        Some(path)
    }
}

/// The control thread's side: the current table and its epoch.
#[derive(Debug)]
pub struct SteerPublisher {
    current: ArcSwap<SteerTable>,
    epoch: AtomicU64,
}

impl SteerPublisher {
    pub fn new(table: SteerTable) -> SteerPublisher {
        SteerPublisher {
            current: ArcSwap::from_pointee(table),
            epoch: AtomicU64::new(0),
        }
    }

    /// The table choices are published into.
    pub fn table(&self) -> Arc<SteerTable> {
        self.current.load_full()
    }

    /// Swaps in a new policy list; workers take it before their next burst.
    pub fn replace(&self, table: SteerTable) {
        self.current.store(Arc::new(table));
        self.epoch
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// A worker's side: its own reference to the current table.
#[derive(Debug)]
pub struct SteerReader {
    source: Arc<SteerPublisher>,
    table: Arc<SteerTable>,
    epoch: u64,
}

impl SteerReader {
    pub fn new(source: Arc<SteerPublisher>) -> SteerReader {
        let epoch = source.epoch();
        let table = source.table();
        SteerReader {
            source,
            table,
            epoch,
        }
    }

    /// Once per burst: takes a newly published table. One atomic load when
    /// nothing changed.
    #[inline]
    pub fn refresh(&mut self) {
        let epoch = self.source.epoch();
        if epoch != self.epoch {
            self.epoch = epoch;
            self.table = self.source.table();
        }
    }

    #[inline]
    pub fn table(&self) -> &SteerTable {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qos::{PortRange, QosClass};

    fn voice_and_bulk() -> Vec<PolicyMatch> {
        let mut sip = MatchRule::any(QosClass::RealTime);
        sip.protocol = Some(17);
        sip.dst_ports = Some(PortRange::single(5060));
        vec![
            PolicyMatch {
                categories: vec![Category::VoIP],
                rules: vec![sip],
                ..PolicyMatch::default()
            },
            PolicyMatch {
                categories: vec![Category::FileTransfer],
                ..PolicyMatch::default()
            },
        ]
    }

    fn pinned(path: u8, keep: u8) -> PathChoice {
        let mut set = WeightedSet::EMPTY;
        set.set(path, 255);
        PathChoice { set, keep }
    }

    #[test]
    fn nothing_published_leaves_the_flow_to_the_data_path() {
        let t = SteerTable::new(voice_and_bulk(), 2);
        let mut memo = NO_PATH;
        assert_eq!(t.steer(0, 0, 1, &mut memo), None);
        assert_eq!(memo, NO_PATH);
        // Out of range peers and policies too.
        assert_eq!(t.steer(9, 0, 1, &mut memo), None);
        assert_eq!(t.steer(0, 9, 1, &mut memo), None);
    }

    #[test]
    fn flows_stay_on_a_kept_path_after_a_switch_and_leave_it_when_it_is_dropped() {
        let t = SteerTable::new(voice_and_bulk(), 2);
        t.publish(1, 0, pinned(0, 0b01));
        let mut old_flow = NO_PATH;
        assert_eq!(t.steer(1, 0, 7, &mut old_flow), Some(0));
        // A better path 1 wins: new flows go there, path 0 is still
        // compliant, so the old flow stays.
        t.publish(1, 0, pinned(1, 0b11));
        let mut new_flow = NO_PATH;
        assert_eq!(t.steer(1, 0, 8, &mut new_flow), Some(1));
        assert_eq!(t.steer(1, 0, 7, &mut old_flow), Some(0));
        // Path 0 breaks the class: the old flow moves.
        t.publish(1, 0, pinned(1, 0b10));
        assert_eq!(t.steer(1, 0, 7, &mut old_flow), Some(1));
        assert_eq!(old_flow, 1);
        // The other peer and policy were never published.
        assert_eq!(t.choice(0, 0), Some(PathChoice::default()));
    }

    #[test]
    fn spreading_picks_by_weight_and_joining_paths_do_not_take_existing_flows() {
        let t = SteerTable::new(voice_and_bulk(), 1);
        let mut set = WeightedSet::EMPTY;
        set.set(0, 100);
        set.set(1, 100);
        t.publish(0, 1, PathChoice { set, keep: 0b011 });
        let mut memos = [NO_PATH; 1000];
        for (f, m) in memos.iter_mut().enumerate() {
            t.steer(0, 1, hash(f as u64), m).unwrap();
        }
        let on0 = memos.iter().filter(|&&m| m == 0).count();
        assert!((400..600).contains(&on0), "{on0} of 1000 on path 0");
        let before = memos;
        set.set(2, 100);
        t.publish(0, 1, PathChoice { set, keep: 0b111 });
        for (f, m) in memos.iter_mut().enumerate() {
            t.steer(0, 1, hash(f as u64), m).unwrap();
        }
        assert_eq!(memos, before, "a joining path took existing flows");
        let mut fresh = NO_PATH;
        let on2 = (5000..6000u64)
            .filter(|&f| {
                fresh = NO_PATH;
                t.steer(0, 1, hash(f), &mut fresh) == Some(2)
            })
            .count();
        assert!(
            (230..430).contains(&on2),
            "{on2} of 1000 new flows on the new path"
        );
    }

    fn hash(x: u64) -> u64 {
        x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29) ^ 0x5851_f42d_4c95_7f2d
    }

    #[test]
    fn the_first_matching_policy_wins_and_unknown_matches_nothing() {
        let t = SteerTable::new(voice_and_bulk(), 1);
        let sip = FlowFields {
            protocol: 17,
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            src_port: 4000,
            dst_port: 5060,
            dscp: 0,
        };
        assert_eq!(
            t.policy_for(Some(&sip), Category::Unknown, AppId::NONE),
            Some(0)
        );
        assert_eq!(
            t.policy_for(None, Category::FileTransfer, AppId::NONE),
            Some(1)
        );
        assert_eq!(t.policy_for(None, Category::Unknown, AppId::NONE), None);
    }

    #[test]
    fn a_reader_takes_a_replaced_table_at_its_next_refresh() {
        let publisher = Arc::new(SteerPublisher::new(SteerTable::new(voice_and_bulk(), 1)));
        let mut reader = SteerReader::new(Arc::clone(&publisher));
        assert_eq!(reader.table().policies(), 2);
        publisher.replace(SteerTable::new(Vec::new(), 1));
        assert_eq!(reader.table().policies(), 2, "only between bursts");
        reader.refresh();
        assert_eq!(reader.table().policies(), 0);
        // Choices go into the current table.
        publisher.replace(SteerTable::new(voice_and_bulk(), 1));
        publisher.table().publish(0, 0, pinned(3, 0b1000));
        reader.refresh();
        let mut memo = NO_PATH;
        assert_eq!(reader.table().steer(0, 0, 1, &mut memo), Some(3));
    }
}
