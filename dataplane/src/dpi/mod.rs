//! Deep packet inspection: which application a flow belongs to, decided on
//! its first few packets, on every worker at line rate.
//!
//! - [`flowtable`]: the per-core flow table (open addressing, cache-line
//!   buckets, idle aging, oldest-first eviction), keyed by a bidirectional
//!   5-tuple [`key::FlowKey`].
//! - [`types`]: what a decision says: [`types::Protocol`],
//!   [`types::Category`], [`types::AppId`], [`types::Confidence`].
//! - [`engine`]: the per-core inspection engine that runs the dissectors on
//!   a flow's first packets, and [`apps`]: hostname suffix rules that name
//!   applications and their categories.
//!
//! Everything here is sans-I/O: the time is passed in, nothing is allocated
//! per packet, and no input can make it panic. The offline classifier
//! (`patronus dpi FILE`) and the worker pipeline run the same code.

pub mod apps;
pub mod capture;
pub mod dissect;
pub mod engine;
pub mod flowtable;
pub mod key;
pub mod types;
