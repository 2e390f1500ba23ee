//! Next-hop MACs for the workers: a static MAC per port, or the neighbour
//! tables the control thread keeps by ARP and neighbour discovery
//! (`crate::neighbor`) and publishes by an RCU-style swap.
//!
//! The control thread stores a new immutable `NeighborSnapshot` for a port
//! and bumps the port's version; a worker compares the version once per loop
//! iteration (one relaxed load) and takes the new snapshot only when it
//! changed. Lookups are then plain reads of the worker's own copy: no locks
//! and no atomics per packet.

use crate::neighbor::NeighborSnapshot;
use crate::stats::MAX_PORTS;
use crate::wire::ethernet::Address;
use arc_swap::ArcSwap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How a port finds the MAC of a packet's next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// Always this MAC (a point-to-point link, or a configured gateway MAC).
    Static(Address),
    /// Destinations inside `subnets` are on the link and resolved
    /// themselves; everything else goes through `gateway` (resolved), or is
    /// unreachable without one.
    Resolved {
        subnets: Vec<(IpAddr, u8)>,
        gateway: Option<IpAddr>,
    },
}

/// Whether `addr` is inside `prefix/len`.
pub fn in_subnet(addr: IpAddr, (prefix, len): (IpAddr, u8)) -> bool {
    match (addr, prefix) {
        (IpAddr::V4(a), IpAddr::V4(p)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            u32::from(a) & mask == u32::from(p) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(p)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            u128::from(a) & mask == u128::from(p) & mask
        }
        _ => false,
    }
}

/// One port's published neighbour table.
#[derive(Debug)]
struct PortTable {
    current: ArcSwap<NeighborSnapshot>,
    version: AtomicU64,
}

/// The neighbour tables of all ports, shared by the control thread (which
/// publishes) and the workers (which read).
#[derive(Debug)]
pub struct NeighborTables {
    ports: Vec<PortTable>,
}

impl NeighborTables {
    pub fn new(ports: usize) -> Arc<NeighborTables> {
        Arc::new(NeighborTables {
            ports: (0..ports.min(MAX_PORTS))
                .map(|_| PortTable {
                    current: ArcSwap::from_pointee(NeighborSnapshot::default()),
                    version: AtomicU64::new(0),
                })
                .collect(),
        })
    }

    /// Publishes a new table for `port` (control thread).
    pub fn publish(&self, port: u8, snapshot: NeighborSnapshot) {
        if let Some(t) = self.ports.get(usize::from(port)) {
            t.current.store(Arc::new(snapshot));
            t.version.fetch_add(1, Ordering::Release);
        }
    }
}

/// A worker's view: the rules per port and its own copies of the tables.
#[derive(Debug, Clone)]
pub struct Resolver {
    tables: Arc<NeighborTables>,
    rules: Vec<NextHop>,
    copies: Vec<(u64, Arc<NeighborSnapshot>)>,
}

impl Resolver {
    /// `rules[i]` is port i's.
    pub fn new(tables: Arc<NeighborTables>, rules: Vec<NextHop>) -> Resolver {
        let copies = tables
            .ports
            .iter()
            .map(|t| (t.version.load(Ordering::Acquire), t.current.load_full()))
            .collect();
        Resolver {
            tables,
            rules,
            copies,
        }
    }

    /// Takes the tables the control thread published since the last call.
    /// Once per loop iteration: a relaxed load per port when nothing changed.
    #[inline]
    pub fn refresh(&mut self) {
        for (table, copy) in self.tables.ports.iter().zip(&mut self.copies) {
            let version = table.version.load(Ordering::Acquire);
            if version != copy.0 {
                *copy = (version, table.current.load_full());
            }
        }
    }

    /// The MAC to send a packet for `dst` to out of `port`, or the next-hop
    /// address that still needs resolving (`Err(Some(ip))`), or `Err(None)`
    /// when the port has no way to reach `dst` (off-link and no gateway).
    #[inline]
    pub fn mac_for(&self, port: u8, dst: IpAddr) -> Result<Address, Option<IpAddr>> {
        let Some(rule) = self.rules.get(usize::from(port)) else {
            return Err(None);
        };
        match rule {
            NextHop::Static(mac) => Ok(*mac),
            NextHop::Resolved { subnets, gateway } => {
                let hop = if subnets.iter().any(|s| in_subnet(dst, *s)) {
                    dst
                } else {
                    gateway
                        .filter(|g| g.is_ipv4() == dst.is_ipv4())
                        .ok_or(None)?
                };
                self.copies
                    .get(usize::from(port))
                    .and_then(|(_, table)| table.get(&hop))
                    .ok_or(Some(hop))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neighbor::NeighborCache;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    const GW_MAC: Address = Address([2, 0, 0, 0, 2, 254]);
    const HOST_MAC: Address = Address([2, 0, 0, 0, 2, 7]);

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn subnets_match_by_prefix() {
        assert!(in_subnet(v4(10, 10, 2, 7), (v4(10, 10, 2, 1), 24)));
        assert!(!in_subnet(v4(10, 10, 3, 7), (v4(10, 10, 2, 1), 24)));
        assert!(in_subnet(v4(192, 0, 2, 1), (v4(0, 0, 0, 0), 0)));
        assert!(!in_subnet("fd00::1".parse().unwrap(), (v4(10, 0, 0, 0), 8)));
        assert!(in_subnet(
            "fd00::1".parse().unwrap(),
            ("fd00::".parse().unwrap(), 64)
        ));
    }

    #[test]
    fn on_link_destinations_resolve_themselves_and_others_go_by_the_gateway() {
        let tables = NeighborTables::new(2);
        let rules = vec![
            NextHop::Static(Address([2, 0, 0, 0, 1, 2])),
            NextHop::Resolved {
                subnets: vec![(v4(10, 10, 2, 1), 24)],
                gateway: Some(v4(10, 10, 2, 254)),
            },
        ];
        let mut resolver = Resolver::new(tables.clone(), rules);
        assert_eq!(
            resolver.mac_for(0, v4(1, 2, 3, 4)),
            Ok(Address([2, 0, 0, 0, 1, 2]))
        );
        assert_eq!(
            resolver.mac_for(1, v4(10, 10, 2, 7)),
            Err(Some(v4(10, 10, 2, 7)))
        );
        assert_eq!(
            resolver.mac_for(1, v4(192, 0, 2, 9)),
            Err(Some(v4(10, 10, 2, 254)))
        );
        assert_eq!(
            resolver.mac_for(1, "2001:db8::1".parse().unwrap()),
            Err(None),
            "no IPv6 gateway"
        );

        // The control thread learns both and publishes; the worker sees it
        // only after refresh.
        let mut cache = NeighborCache::default();
        cache.learn(v4(10, 10, 2, 254), GW_MAC, Duration::ZERO, true);
        cache.learn(v4(10, 10, 2, 7), HOST_MAC, Duration::ZERO, true);
        tables.publish(1, cache.snapshot());
        assert!(resolver.mac_for(1, v4(10, 10, 2, 7)).is_err());
        resolver.refresh();
        assert_eq!(resolver.mac_for(1, v4(10, 10, 2, 7)), Ok(HOST_MAC));
        assert_eq!(resolver.mac_for(1, v4(192, 0, 2, 9)), Ok(GW_MAC));
    }
}
