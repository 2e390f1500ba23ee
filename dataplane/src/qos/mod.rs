//! Quality of service on the WAN egress: classification into five
//! classes, outer DSCP marking, and a per-worker, per-port scheduler that
//! shapes to the port's rate with strict priority, deficit round robin and
//! optional CoDel.
//!
//! - [`class`]: the classes and the [`ClassMap`] from 5-tuple rules, DPI
//!   application and category, and DSCP (RFC 2474/2475 DiffServ, RFC 4594
//!   service classes) to a class; [`rule`] the 5-tuple rules.
//! - [`dscp`]: the class → outer DSCP map (EF per RFC 3246, AF per RFC
//!   2597) and the in-place rewrite with RFC 1624 checksum update.
//! - [`scheduler`]: the [`Scheduler`], over [`token_bucket`]s, per-class
//!   rings, DRR (Shreedhar & Varghese 1995) and [`codel`] (RFC 8289).
//! - [`share`]: the port rate split among workers by recent demand.
//! - [`stats`]: per-class counters and the queueing-delay histogram.
//!
//! All of it is sans-I/O: time is TSC ticks passed in, nothing on the
//! per-packet path allocates, locks, or uses floating point. See
//! docs/qos.md.

#![forbid(unsafe_code)]

pub mod class;
pub mod codel;
pub mod dscp;
mod queue;
pub mod rule;
pub mod scheduler;
pub mod share;
pub mod stats;
pub mod token_bucket;

#[cfg(test)]
mod sim_tests;

pub use class::{ClassMap, QosClass};
pub use codel::CodelConfig;
pub use dscp::{set_dscp, DscpMap, MarkError};
pub use rule::{FlowFields, IpPrefix, MatchRule, PortRange};
pub use scheduler::{ClassConfig, ConfigError, Scheduler, SchedulerConfig};
pub use share::{max_min_shares, Demand, PortShares, ShareBalancer};
pub use stats::{ClassSnapshot, DropReason, QosCounters, QosSnapshot};
pub use token_bucket::TokenBucket;
