//! Placeholder: filled in by the DPI work.
