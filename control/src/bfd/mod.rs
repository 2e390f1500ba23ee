//! Bidirectional Forwarding Detection: the pure protocol core, sans I/O.
//!
//! - [`packet`]: the Control packet codec (RFC 5880 §4.1–§4.4).
//! - [`auth`]: keyed SHA1 and meticulous keyed SHA1 (RFC 5880 §6.7, §6.7.4).
//! - [`jitter`]: transmit jitter (RFC 5880 §6.8.7).
//! - [`transport`]: ports and TTL rules for single-hop (RFC 5881) and
//!   multihop (RFC 5883) sessions over IPv4 and IPv6.
//! - [`counters`]: drop reasons (RFC 5880 §6.8.6) and counters.
//! - [`session`]: one session's state machine in asynchronous mode
//!   (RFC 5880 §6.1–§6.8).
//! - [`frame`]: the Ethernet / IP / UDP frames BFD travels in (RFC 5881,
//!   RFC 5883), built and parsed.
//! - [`registry`]: many sessions, demultiplexed by Your Discriminator or by
//!   addresses (RFC 5880 §6.8.6, RFC 5881 §3), with the next deadline over
//!   all of them.
//!
//! Nothing here reads a clock or touches a socket: the control thread's
//! driver passes `now` in (nanoseconds on any monotonic base), carries the
//! packets, and sleeps until the next deadline.
#![forbid(unsafe_code)]

pub mod auth;
pub mod counters;
pub mod frame;
pub mod jitter;
pub mod packet;
pub mod registry;
pub mod session;
pub mod transport;
