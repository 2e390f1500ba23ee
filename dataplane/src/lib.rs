//! The Patronus data plane.
//!
//! - [`buf`], [`wire`] and [`forward`] are pure packet logic: no I/O, no
//!   allocation per packet, the time passed in. They are unit-tested on
//!   [`buf::HeapBuf`] without DPDK.
//! - [`dpdk`] is the safe layer over DPDK and the only module with `unsafe`.
//! - [`worker`] is the poll-mode, run-to-completion loop that joins the two,
//!   and [`stats`] the per-core counters the control thread reads.
//!
//! See docs/architecture.md.

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod buf;
pub mod dpdk;
pub mod dpi;
pub mod flowsample;
pub mod forward;
pub mod fw;
pub mod icmp_error;
pub mod local;
pub mod nat;
pub mod neighbor;
pub mod nexthop;
pub mod policy;
pub mod punt;
pub mod qos;
pub mod ringbed;
pub mod stats;
pub mod steer;
pub mod synth;
pub mod wg;
pub mod wire;
pub mod worker;
