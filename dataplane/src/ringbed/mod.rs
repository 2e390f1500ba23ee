//! A LAN and a WAN port made of rte_rings (net_ring): a NIC pair whose wire
//! the caller holds both ends of. The DPDK integration tests inject packets
//! into `lan_rx`/`wan_rx` and collect what the worker sent from
//! `lan_tx`/`wan_tx`; the benchmarks feed them from a generator thread.
//! [`qos_overload`] is a whole run on it: a shaped WAN port under overload.

pub mod qos_overload;

use crate::dpdk::{ring_port, DpdkError, Mempool, Port, PortConfig, Ring};

/// Port index of the LAN port in [`RingBed::ports`].
pub const LAN: u8 = 0;
/// Port index of the WAN port in [`RingBed::ports`].
pub const WAN: u8 = 1;

pub struct RingBed {
    // Declared first so they are dropped (stopped and closed) before the
    // rings they read and write.
    pub ports: Vec<Port>,
    /// What the LAN port receives: push packets here.
    pub lan_rx: Ring,
    /// What the LAN port transmitted.
    pub lan_tx: Ring,
    pub wan_rx: Ring,
    pub wan_tx: Ring,
}

impl RingBed {
    /// Creates and starts the two ports, one queue pair each, with rings of
    /// `ring_capacity` packets. `tag` keeps DPDK object names unique.
    pub fn new(tag: &str, ring_capacity: u32, pool: &Mempool) -> Result<RingBed, DpdkError> {
        let ring = |side: &str| Ring::new(&format!("{tag}_{side}"), ring_capacity);
        let (lan_rx, lan_tx, wan_rx, wan_tx) =
            (ring("lrx")?, ring("ltx")?, ring("wrx")?, ring("wtx")?);
        let config = PortConfig {
            queues: 1,
            ..PortConfig::default()
        };
        let lan_id = ring_port(&format!("net_ring_{tag}_lan"), &lan_rx, &lan_tx)?;
        let lan = Port::start(lan_id, "lan", &config, pool)?;
        let wan_id = ring_port(&format!("net_ring_{tag}_wan"), &wan_rx, &wan_tx)?;
        let wan = Port::start(wan_id, "wan", &config, pool)?;
        Ok(RingBed {
            ports: vec![lan, wan],
            lan_rx,
            lan_tx,
            wan_rx,
            wan_tx,
        })
    }
}
