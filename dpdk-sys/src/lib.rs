//! Raw bindings to the system DPDK (22.11 or newer), generated at build time
//! by bindgen from the installed headers, plus `patronus_*` wrappers for the
//! static-inline functions that DPDK does not export (rx/tx burst, mbuf
//! alloc/free, prepend/adj/append/trim, ring bursts, lcore id, rte_errno,
//! TSC). See `shim/shim.h`.
//!
//! Everything here is `unsafe` and unchecked; the safe layer lives in
//! `patronus-dataplane::dpdk`.

#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(dead_code, clippy::all, unnecessary_transmutes)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
