//! Patronus data plane.
