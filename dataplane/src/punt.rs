//! Punt and inject: how workers hand control traffic to the control thread
//! and how the control thread transmits through a worker.
//!
//! Each worker has one bounded, lock-free ring in each direction
//! (crossbeam's `ArrayQueue`). A full punt ring drops the packet and counts
//! it (`punt_full`); the worker never blocks. Injected packets are taken up
//! to one burst per loop iteration.

use crate::dpdk::Mbuf;
use crossbeam_queue::ArrayQueue;

/// Why a worker handed a packet to the control thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PuntReason {
    /// A WireGuard handshake initiation, response or cookie reply.
    WgHandshake,
    /// A packet for a WireGuard peer without a usable session: the control
    /// thread queues it, starts a handshake, and injects it back for
    /// encryption once the keys are in place.
    WgNeedsSession { peer: u32 },
    /// Addressed to one of the node's own addresses (ICMP echo, ...).
    Local,
    /// ARP, or IPv6 neighbour discovery (ICMPv6 types 133 to 137).
    Neighbor,
    /// A finished frame for `port` whose next hop `hop` has no MAC yet: the
    /// control thread resolves it, fills in the destination MAC and injects
    /// the frame (or drops it when resolution fails).
    NeedsNextHop { port: u8, hop: std::net::IpAddr },
}

/// A packet on its way to the control thread.
#[derive(Debug)]
pub struct Punted {
    pub reason: PuntReason,
    /// Port index it arrived on.
    pub port: u8,
    pub mbuf: Mbuf,
}

/// What the worker does with an injected packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectAction {
    /// Transmit it as it is.
    Transmit,
    /// Run it through the processor's local-origin path (for WireGuard:
    /// encrypt the IP packet for this peer and send it to the peer).
    Process { aux: u32 },
}

/// A packet from the control thread.
#[derive(Debug)]
pub struct Injected {
    /// Port index to send it out of.
    pub port: u8,
    pub action: InjectAction,
    pub mbuf: Mbuf,
}

/// The two rings between one worker and the control thread.
#[derive(Debug)]
pub struct WorkerRings {
    pub punt: ArrayQueue<Punted>,
    pub inject: ArrayQueue<Injected>,
}

impl WorkerRings {
    pub fn new(capacity: usize) -> WorkerRings {
        WorkerRings {
            punt: ArrayQueue::new(capacity),
            inject: ArrayQueue::new(capacity),
        }
    }
}
