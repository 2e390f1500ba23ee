//! Sending the control thread's own UDP (BFD, SLA probes) out of a data
//! port: the frame is built here, its next hop resolved from the workers'
//! neighbour tables, and it leaves through worker 0's inject ring. A frame
//! whose next hop is not resolved yet is handed to the neighbour driver,
//! which sends it once ARP answers.

use patronus_dataplane::buf::PacketBuf;
use patronus_dataplane::dpdk::{Mbuf, Mempool};
use patronus_dataplane::nexthop::Resolver;
use patronus_dataplane::punt::{InjectAction, Injected, WorkerRings};
use patronus_dataplane::synth::UdpFrame;
use patronus_dataplane::wire::ethernet::{self, Address};
use std::net::IpAddr;

/// What the IP and UDP headers say; the MACs are the injector's business.
#[derive(Debug, Clone, Copy)]
pub struct UdpHeaders {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub dscp: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

/// Why a datagram was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSent {
    /// No such port, or the headers do not make a frame.
    BadFrame,
    /// The mempool is empty.
    NoMbuf,
    /// Worker 0's inject ring is full.
    RingFull,
    /// The port has no route to the destination.
    NoRoute,
}

pub struct UdpInjector<'a> {
    port_macs: Vec<Address>,
    resolver: Resolver,
    rings: &'a [WorkerRings],
    pool: &'a Mempool,
    /// Frames whose next hop is not resolved yet, for the neighbour driver.
    unresolved: Vec<(u8, IpAddr, Mbuf)>,
}

impl<'a> UdpInjector<'a> {
    pub fn new(
        port_macs: Vec<Address>,
        resolver: Resolver,
        rings: &'a [WorkerRings],
        pool: &'a Mempool,
    ) -> UdpInjector<'a> {
        UdpInjector {
            port_macs,
            resolver,
            rings,
            pool,
            unresolved: Vec::new(),
        }
    }

    /// Sends `payload` out of `port`. A frame waiting for its next hop
    /// counts as sent ([`UdpInjector::take_unresolved`]).
    pub fn send(&mut self, port: u8, h: &UdpHeaders, payload: &[u8]) -> Result<(), NotSent> {
        let src_mac = *self
            .port_macs
            .get(usize::from(port))
            .ok_or(NotSent::BadFrame)?;
        let frame = UdpFrame {
            src_mac,
            dst_mac: Address([0; 6]),
            src: h.src,
            dst: h.dst,
            ttl: h.ttl,
            dscp: h.dscp,
            ident: 0,
            src_port: h.src_port,
            dst_port: h.dst_port,
        }
        .build(payload)
        .ok_or(NotSent::BadFrame)?;
        let mut m = self.pool.alloc().ok_or(NotSent::NoMbuf)?;
        m.append(frame.len())
            .map_err(|_| NotSent::BadFrame)?
            .copy_from_slice(&frame);
        self.resolver.refresh();
        match self.resolver.mac_for(port, h.dst) {
            Ok(mac) => {
                ethernet::Frame::new_unchecked(m.data_mut()).set_dst_addr(mac);
                let injected = Injected {
                    port,
                    action: InjectAction::Transmit,
                    mbuf: m,
                };
                match self.rings.first().map(|r| r.inject.push(injected)) {
                    Some(Ok(())) => Ok(()),
                    _ => Err(NotSent::RingFull),
                }
            }
            Err(Some(hop)) => {
                self.unresolved.push((port, hop, m));
                Ok(())
            }
            Err(None) => Err(NotSent::NoRoute),
        }
    }

    /// Frames waiting for their next hop's MAC.
    pub fn take_unresolved(&mut self) -> Vec<(u8, IpAddr, Mbuf)> {
        std::mem::take(&mut self.unresolved)
    }
}
