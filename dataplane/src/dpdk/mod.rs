//! The safe layer over DPDK: the only module of this crate with `unsafe`.
//!
//! Each wrapper owns what it created and releases it on drop, and every
//! DPDK failure becomes a [`DpdkError`] carrying `rte_strerror`'s text.
//! Teardown order is the caller's: ports, then rings and mempools, then the
//! [`Eal`] (declare the `Eal` first so it is dropped last).

#![allow(unsafe_code)]

mod burst;
mod eal;
mod error;
mod lcore;
mod mbuf;
mod mem;
mod mempool;
mod port;
mod ring;

pub use burst::{MbufBurst, BURST_SIZE};
pub use eal::{Eal, EalMemory, MemoryMode};
pub use error::{DpdkError, Errno};
pub use lcore::{register_thread, tsc, tsc_hz, LcoreRegistration};
pub use mbuf::Mbuf;
pub use mem::{advise_huge_pages, prefetch};
pub use mempool::Mempool;
pub use port::{LinkStatus, Port, PortConfig, PortStats, RxQueue, TxQueue};
pub use ring::{ring_port, ring_port_multi, Ring};
