//! The management API, Prometheus metrics and web dashboard (issue #9).
//!
//! - [`state::ApiState`] decouples it from the daemon: the control loop
//!   publishes [`state::Snapshot`]s, pushes [`model::Event`]s, sets
//!   readiness, and polls [`state::ConfigCommand`]s, all without async or
//!   blocking.
//! - [`server::spawn`] runs it on its own thread with a current-thread
//!   tokio runtime, over HTTP or HTTPS (rustls).
//! - Routes ([`routes`]): `/api/v1/*` JSON (documented by the OpenAPI 3.1
//!   document at `/api/v1/openapi.json`, [`openapi`]), `/metrics`
//!   (Prometheus text exposition format, [`metrics`]), `/healthz`,
//!   `/readyz`, and the dashboard at `/` ([`dashboard`]).
//! - [`auth`]: RFC 6750 bearer tokens, configured as argon2 hashes, with
//!   read-only and admin roles; [`config`]: the `[api]` section.
//! - [`demo`]: a fake node for the dashboard, schemathesis and browser tests.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod state;
pub mod validate;

#[cfg(test)]
mod tests;

pub use auth::{hash_token, Role, TokenConfig};
pub use config::{ApiConfig, ApiConfigError, ApiSection, TlsFiles};
pub use server::{spawn, ApiError, ApiHandle};
pub use state::{ApiState, ConfigCommand, Responder, Snapshot};
