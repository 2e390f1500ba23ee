//! The parts of the daemon that other crates use: the sans-I/O BFD core,
//! which `patronus-bench bfd` drives with the daemon's own loop, and the
//! sans-I/O SLA core (probes, estimators, path selection), and the
//! management API with metrics and dashboard.
#![forbid(unsafe_code)]

pub mod api;
pub mod bfd;
pub mod sla;
