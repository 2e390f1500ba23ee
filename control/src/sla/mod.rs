//! SLA monitoring and SLA-driven path selection: the pure core, sans I/O.
//!
//! - [`probe`]: the authenticated probe packets nodes exchange on every
//!   path, and the per-path probe sender/reflector state.
//! - [`estimator`]: per path and direction, RTT, one-way delay variation,
//!   RFC 3550 interarrival jitter and loss, with p50/p95/p99 over a sliding
//!   window.
//! - [`select`]: SLA classes, policies, path scoring with hysteresis,
//!   failback delay and cooldown, and the events they raise.
//!
//! Nothing here reads a clock or touches a socket: the control thread's
//! driver passes `now` in and carries the packets.
#![forbid(unsafe_code)]

pub mod estimator;
pub mod probe;
pub mod select;
