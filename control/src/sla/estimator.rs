//! Placeholder: filled in by the SLA work.
